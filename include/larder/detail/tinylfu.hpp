// detail/tinylfu.hpp: W-TinyLFU with an adaptive window, the memory store's admission and eviction
// policy (docs/memory_store.md explains it and shows its hit ratios against LRU and OPT).
//
// Three LRU queues share the capacity: a small admission *window* that every new entry enters, and
// a segmented LRU *main* space (probation, protected). When the window overflows, its LRU entry
// moves to probation as a *candidate*; when the whole cache overflows, the candidate meets a
// *victim* (the least frequent of probation's four oldest entries) and the one a count-min sketch
// says was requested less often leaves. So a burst of one-off keys (a scan) passes through the
// window and out again, while keys with a history stay. The window's share of the capacity and
// the admission margin (how far the candidate must lead) are tuned at run time by miniature
// simulations on a sample of the keys (ShadowTuner): recency-heavy workloads (shifting hot sets)
// grow the window towards plain LRU, frequency-heavy ones (Zipf, loops longer than the cache)
// shrink it towards plain TinyLFU. The same simulations choose how long the sketch remembers
// (10 or 40 capacities of requests between agings): stable popularity rewards the longer memory.
//
// Single-threaded: the owner serializes every call (the memory store calls it under its policy
// lock). Every operation is O(1) amortized: the sketch's aging touches the whole table once per
// 10 (or 40) x capacity additions, a window resize moves entries lazily, one eviction at a time,
// and the shadows cost a bounded number of shadow operations per request.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "larder/detail/hash.hpp"

namespace larder::detail {

/// A count-min sketch of 4-bit counters with periodic aging (TinyLFU's frequency histogram).
///
/// Each key has four counters, one in each of four 64-bit words picked by four hashes of the key,
/// and all four within the same 16-counter lane pattern chosen by the key. A key's frequency is the
/// least of its counters (over-estimated only by collisions). After `sample_size()` increments
/// every counter is halved, so the sketch forgets old popularity at a fixed rate: what counts is
/// the frequency over about the last `history()` (10 unless set) capacities of requests.
class FrequencySketch {
 public:
  /// Room for about `capacity` keys (rounded up to a power of two words, at least 16).
  explicit FrequencySketch(std::size_t capacity = 16) { resize(capacity); }

  /// Grows the table to fit `capacity` keys (never shrinks). Growing forgets every count.
  void ensure_capacity(std::size_t capacity) {
    if (capacity > capacity_) resize(capacity);
  }

  /// Frees the table; the sketch must not be used afterwards (a policy reading a shared sketch
  /// drops its own this way).
  void release() noexcept {
    std::vector<std::uint64_t>{}.swap(table_);
    mask_ = 0;
    capacity_ = 0;
  }

  /// The estimated number of increments of `key` (0..15) since aging discounted older ones.
  unsigned frequency(std::uint64_t key) const noexcept {
    const std::uint64_t h = spread(key);
    const unsigned lane = static_cast<unsigned>(h & 3) << 2;
    unsigned f = 15;
    for (unsigned i = 0; i < 4; ++i) {
      const unsigned shift = (lane + i) << 2;
      f = std::min(f, static_cast<unsigned>((table_[index(h, i)] >> shift) & 0xF));
    }
    return f;
  }

  /// Counts one occurrence of `key`; halves every counter once sample_size() were counted.
  void increment(std::uint64_t key) noexcept {
    const std::uint64_t h = spread(key);
    const unsigned lane = static_cast<unsigned>(h & 3) << 2;
    std::size_t at[4];
    unsigned count[4];
    unsigned least = 15;
    for (unsigned i = 0; i < 4; ++i) {
      at[i] = index(h, i);
      count[i] = static_cast<unsigned>((table_[at[i]] >> ((lane + i) << 2)) & 0xF);
      least = std::min(least, count[i]);
    }
    if (least == 15) return;
    for (unsigned i = 0; i < 4; ++i) {
      if (count[i] != least) continue;  // conservative update: only the smallest counters grow
      table_[at[i]] += std::uint64_t{1} << ((lane + i) << 2);
    }
    if (++additions_ >= sample_size_) age();
  }
  /// Halves every counter (and the count of additions, less what the halving truncated).
  void age() noexcept {
    std::uint64_t odd = 0;
    for (std::uint64_t& word : table_) {
      odd += static_cast<std::uint64_t>(std::popcount(word & 0x1111111111111111ULL));
      word = (word >> 1) & 0x7777777777777777ULL;
    }
    const std::uint64_t half = additions_ >> 1;
    const std::uint64_t lost = odd >> 2;
    additions_ = half > lost ? half - lost : 0;
    ++agings_;
  }

  /// Increments between two agings: history() per key of capacity.
  std::uint64_t sample_size() const noexcept { return sample_size_; }
  /// Increments between two agings per key of capacity (10 at the start).
  unsigned history() const noexcept { return static_cast<unsigned>(history_); }
  /// Ages every `history` x capacity increments from now on; the counts are kept (if more were
  /// counted since the last aging, the next increment ages).
  void set_history(unsigned history) noexcept {
    history_ = std::max(1U, history);
    sample_size_ = history_ * static_cast<std::uint64_t>(capacity_);
  }
  std::size_t capacity() const noexcept { return capacity_; }
  std::uint64_t agings() const noexcept { return agings_; }

 private:
  static constexpr std::uint64_t kSeeds[4] = {0xc3a5c85c97cb3127ULL, 0xb492b66fbe98f273ULL,
                                              0x9ae16a3b2f90404fULL, 0xcbf29ce484222325ULL};

  /// A full-avalanche remix (the murmur3 finalizer), so a weak key hash still spreads.
  static std::uint64_t spread(std::uint64_t x) noexcept { return mix64(x); }
  std::size_t index(std::uint64_t h, unsigned i) const noexcept {
    std::uint64_t x = (h + kSeeds[i]) * kSeeds[i];
    x ^= x >> 32;
    return static_cast<std::size_t>(x & mask_);
  }
  void resize(std::size_t capacity) {
    capacity = std::clamp<std::size_t>(capacity, 16, std::size_t{1} << 30);
    const std::size_t words = std::bit_ceil(capacity);
    table_.assign(words, 0);
    mask_ = words - 1;
    capacity_ = capacity;
    sample_size_ = history_ * static_cast<std::uint64_t>(capacity);
    additions_ = 0;
  }

  std::vector<std::uint64_t> table_;
  std::uint64_t mask_ = 0;
  std::size_t capacity_ = 0;
  std::uint64_t history_ = 10;
  std::uint64_t sample_size_ = 0;
  std::uint64_t additions_ = 0;
  std::uint64_t agings_ = 0;
};

/// What W-TinyLFU keeps in each entry: its queue links, weight, region and a 32-bit fold of the
/// key's 64-bit hash (enough for the sketch: two keys sharing a fold only share counters).
struct TinyLfuHook {
  TinyLfuHook* prev = nullptr;
  TinyLfuHook* next = nullptr;
  std::uint64_t weight = 0;
  std::uint32_t key_hash = 0;
  std::uint8_t region = 0;

  static constexpr std::uint32_t fold(std::uint64_t hash) noexcept {
    return static_cast<std::uint32_t>(hash ^ (hash >> 32));
  }
};

class ShadowTuner;

/// W-TinyLFU over TinyLfuHook nodes, bounded by count and (optionally) by total weight.
///
/// Beyond Caffeine 2.6's W-TinyLFU: the sketch uses conservative update, the victim a candidate
/// meets is the least frequent of probation's four oldest entries (not just the oldest), and the
/// window's share, the admission margin and the sketch's history length are chosen by
/// ShadowTuner's miniature simulations instead of being fixed (Caffeine 2.6: a 1% window, margin
/// 0, ten capacities of requests between agings).
class WTinyLfu {
 public:
  enum Region : std::uint8_t { kWindow = 0, kProbation = 1, kProtected = 2, kNone = 3 };

  struct Config {
    std::size_t max_entries = 10'000;
    std::uint64_t max_weight = 0;  // 0: no bound by weight
    /// The window's starting share of the capacity (Caffeine's 1%).
    double initial_window = 0.01;
    /// Tune the window share and the admission margin by miniature simulation (false: keep
    /// initial_window and admission_margin, as Caffeine 2.6 did with 1% and 0).
    bool adaptive = true;
    /// Seeds the generator of the rare random admissions (hash-flooding defence): a fixed seed
    /// makes the policy deterministic.
    std::uint64_t seed = 0x5eed;
    /// The candidate needs a frequency above the victim's plus this (-1, 0 or 1) to enter; the
    /// shadow tuner moves it when adaptive. 0 is TinyLFU's rule and the start.
    int admission_margin = 0;
  };

  explicit WTinyLfu(Config config)
      : config_{config},
        own_sketch_{initial_sketch_capacity(config)},
        rng_{config.seed | 1},
        window_{std::clamp(config.initial_window, 0.0, 1.0)} {
    for (auto& q : queues_) q.head.prev = q.head.next = &q.head;
    apply_window();
    if (config.adaptive) tuner_ = std::make_unique<ShadowTuner>(config);
  }
  ~WTinyLfu();
  WTinyLfu(const WTinyLfu&) = delete;
  WTinyLfu& operator=(const WTinyLfu&) = delete;

  /// Adds n (n->weight and n->key_hash set) to the window, counts its key, and appends to victims
  /// the entries that must leave to respect the bounds (possibly n itself), each already removed.
  void insert(TinyLfuHook* n, std::vector<TinyLfuHook*>& victims) {
    if (counts_) {
      if (count_ >= sketch_->capacity() && sketch_->capacity() < config_.max_entries)
        sketch_->ensure_capacity(std::min(config_.max_entries, 2 * (count_ + 1)));
      sketch_->increment(n->key_hash);
    }
    push_back(kWindow, n);
    ++count_;
    weight_ += n->weight;
    if (tuner_) record(n);
    evict(victims);
  }

  /// A hit on n: counts its key and refreshes its recency (probation promotes it to protected).
  void access(TinyLfuHook* n) noexcept {
    if (counts_) sketch_->increment(n->key_hash);
    switch (n->region) {
      case kWindow:
      case kProtected:
        move_to_newest(n);
        break;
      case kProbation:
        unlink(n);
        push_back(kProtected, n);
        demote_protected();
        break;
      default:
        break;
    }
    if (tuner_) record(n);
  }

  /// Drops n (erased, replaced or expired).
  void remove(TinyLfuHook* n) noexcept {
    unlink(n);
    --count_;
    weight_ -= n->weight;
  }

  std::size_t count() const noexcept { return count_; }
  std::uint64_t weight() const noexcept { return weight_; }
  /// The window's current share of the capacity, in [0, 1].
  double window_fraction() const noexcept { return window_; }
  int admission_margin() const noexcept { return margin_; }
  void set_admission_margin(int margin) noexcept { margin_ = std::clamp(margin, -1, 1); }
  /// Sets the window's share (clamped to [0, 1]); entries move lazily, as evictions happen.
  void set_window_fraction(double share) noexcept {
    window_ = std::clamp(share, 0.0, 1.0);
    apply_window();
    demote_protected();
  }
  std::size_t region_count(Region r) const noexcept { return queues_[r].count; }
  std::uint64_t region_weight(Region r) const noexcept { return queues_[r].weight; }
  const FrequencySketch& sketch() const noexcept { return *sketch_; }
  /// Reads frequencies from `shared` from now on and leaves the counting to its owner (the shadow
  /// caches of one tuner all see the same requests, so one sketch serves them all).
  void share_sketch(FrequencySketch* shared) noexcept {
    sketch_ = shared;
    counts_ = false;
    own_sketch_.release();  // never read again
  }

  /// Throws std::logic_error if links, regions or totals disagree, or the bounds do not hold.
  void check_invariants() const {
    std::size_t total = 0;
    std::uint64_t total_weight = 0;
    for (unsigned r = 0; r < 3; ++r) {
      const Queue& q = queues_[r];
      std::size_t n = 0;
      std::uint64_t w = 0;
      for (const TinyLfuHook* p = q.head.next; p != &q.head; p = p->next) {
        if (p->next->prev != p || p->prev->next != p)
          throw std::logic_error("WTinyLfu: broken links");
        if (p->region != r) throw std::logic_error("WTinyLfu: entry in the wrong region");
        ++n;
        w += p->weight;
      }
      if (n != q.count || w != q.weight) throw std::logic_error("WTinyLfu: region totals disagree");
      total += n;
      total_weight += w;
    }
    if (total != count_ || total_weight != weight_)
      throw std::logic_error("WTinyLfu: totals disagree");
    if (over_capacity()) throw std::logic_error("WTinyLfu: over capacity");
    if (!(window_ >= 0.0 && window_ <= 1.0)) throw std::logic_error("WTinyLfu: window share");
  }

 private:
  struct Queue {
    TinyLfuHook head;  // sentinel: head.next is the LRU end, head.prev the MRU end
    std::size_t count = 0;
    std::uint64_t weight = 0;
  };

  static constexpr double kProtectedShare = 0.80;  // of the main space
  static constexpr unsigned kWarmCandidate = 6;    // frequency from which a loser may be admitted
  static constexpr unsigned kVictimSample = 4;  // oldest probation entries a victim is taken from

  static std::size_t initial_sketch_capacity(const Config& c) {
    // Bounded by count only: size for the capacity now. With a weight bound the count may stay far
    // below max_entries, so the sketch grows with the entries actually held.
    return c.max_weight == 0 ? c.max_entries : std::min<std::size_t>(c.max_entries, 1024);
  }

  // ---- queues
  void push_back(unsigned r, TinyLfuHook* n) noexcept {
    Queue& q = queues_[r];
    n->region = static_cast<std::uint8_t>(r);
    n->next = &q.head;
    n->prev = q.head.prev;
    q.head.prev->next = n;
    q.head.prev = n;
    ++q.count;
    q.weight += n->weight;
  }
  void unlink(TinyLfuHook* n) noexcept {
    Queue& q = queues_[n->region];
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = nullptr;
    --q.count;
    q.weight -= n->weight;
    n->region = kNone;
  }
  /// Moves n to the newest end of its own queue: a splice (the queue's count and weight stay), and
  /// nothing at all when n is the newest already (a hot entry replayed twice in a row).
  void move_to_newest(TinyLfuHook* n) noexcept {
    Queue& q = queues_[n->region];
    if (q.head.prev == n) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = &q.head;
    n->prev = q.head.prev;
    q.head.prev->next = n;
    q.head.prev = n;
  }
  TinyLfuHook* front(unsigned r) noexcept {
    Queue& q = queues_[r];
    return q.head.next == &q.head ? nullptr : q.head.next;
  }
  /// The entry after n towards the MRU end, or null.
  TinyLfuHook* newer(TinyLfuHook* n) noexcept {
    return n->next == &queues_[n->region].head ? nullptr : n->next;
  }
  /// The entry before n towards the LRU end, or null.
  TinyLfuHook* older(TinyLfuHook* n) noexcept {
    return n->prev == &queues_[n->region].head ? nullptr : n->prev;
  }

  // ---- bounds
  bool over_capacity() const noexcept {
    return count_ > config_.max_entries ||
           (config_.max_weight != 0 && weight_ > config_.max_weight);
  }
  bool over(unsigned r, std::size_t max_count, std::uint64_t max_weight) const noexcept {
    const Queue& q = queues_[r];
    return q.count > max_count || (config_.max_weight != 0 && q.weight > max_weight);
  }
  /// Recomputes the region limits from the window share. Like Caffeine, the main space is the
  /// rounded-down share, so a tiny cache still has a window of one entry at the 1% start.
  void apply_window() noexcept {
    const auto main_count =
        static_cast<std::size_t>((1.0 - window_) * static_cast<double>(config_.max_entries));
    window_count_ = config_.max_entries - main_count;
    protected_count_ = static_cast<std::size_t>(kProtectedShare * static_cast<double>(main_count));
    const auto main_weight =
        static_cast<std::uint64_t>((1.0 - window_) * static_cast<double>(config_.max_weight));
    window_weight_ = config_.max_weight - main_weight;
    protected_weight_ =
        static_cast<std::uint64_t>(kProtectedShare * static_cast<double>(main_weight));
  }

  void demote_protected() noexcept {
    while (over(kProtected, protected_count_, protected_weight_)) {
      TinyLfuHook* p = front(kProtected);
      unlink(p);
      push_back(kProbation, p);
    }
  }

  // ---- eviction (Caffeine's evictFromWindow + evictFromMain)
  void evict(std::vector<TinyLfuHook*>& victims) {
    std::size_t candidates = 0;
    while (over(kWindow, window_count_, window_weight_)) {
      TinyLfuHook* e = front(kWindow);
      unlink(e);
      push_back(kProbation, e);
      ++candidates;
    }
    auto drop = [&](TinyLfuHook* e) {
      remove(e);
      victims.push_back(e);
    };
    TinyLfuHook* candidate = candidates > 0 ? queues_[kProbation].head.prev : nullptr;
    while (over_capacity()) {
      if (candidates == 0 || candidate == nullptr) {
        // No candidate left to judge: the LRU entry of probation goes, else protected's, else
        // the window's.
        TinyLfuHook* v = front(kProbation);
        if (v == nullptr) v = front(kProtected);
        if (v == nullptr) v = front(kWindow);
        if (v == nullptr) break;  // cannot happen while over capacity
        drop(v);
        continue;
      }
      TinyLfuHook* victim = pick_victim(candidate);
      --candidates;
      if (victim != nullptr && admit(candidate->key_hash, victim->key_hash)) {
        drop(victim);  // first: the victim may be the candidate's older neighbour
        candidate = older(candidate);
      } else {
        TinyLfuHook* e = candidate;
        candidate = older(candidate);
        drop(e);
      }
    }
  }

  /// The least frequent of the kVictimSample oldest entries of probation (other than `skip`), the
  /// oldest among equals; null if probation holds nothing else.
  TinyLfuHook* pick_victim(TinyLfuHook* skip) noexcept {
    TinyLfuHook* best = nullptr;
    unsigned best_frequency = 16;
    unsigned seen = 0;
    for (TinyLfuHook* p = front(kProbation); p != nullptr && seen < kVictimSample; p = newer(p)) {
      if (p == skip) continue;
      ++seen;
      const unsigned f = sketch_->frequency(p->key_hash);
      if (f < best_frequency) {
        best = p;
        best_frequency = f;
      }
    }
    return best;
  }

  /// TinyLFU: the candidate enters if its key was requested more often than the victim's (by more
  /// than the admission margin: -1 admits on a tie, +1 wants a lead of two). A warm
  /// candidate that loses still enters with probability 1/128, so an attacker who floods the
  /// sketch to make one victim look hot cannot lock new keys out forever (Caffeine's defence).
  bool admit(std::uint32_t candidate, std::uint32_t victim) noexcept {
    const unsigned cf = sketch_->frequency(candidate);
    const unsigned vf = sketch_->frequency(victim);
    if (static_cast<int>(cf) > static_cast<int>(vf) + margin_) return true;
    if (cf < kWarmCandidate) return false;
    return (next_random() & 127) == 0;
  }

  std::uint64_t next_random() noexcept {  // xorshift64*
    rng_ ^= rng_ >> 12;
    rng_ ^= rng_ << 25;
    rng_ ^= rng_ >> 27;
    return rng_ * 0x2545f4914f6cdd1dULL;
  }

  friend class ShadowTuner;
  void record(const TinyLfuHook* n) noexcept;  // defined after ShadowTuner

  Config config_;
  FrequencySketch own_sketch_;
  FrequencySketch* sketch_ = &own_sketch_;
  bool counts_ = true;  // false: a shared sketch, counted by its owner
  std::uint64_t rng_;
  Queue queues_[3];
  std::size_t count_ = 0;
  std::uint64_t weight_ = 0;

  double window_;  // share of the capacity
  std::size_t window_count_ = 0;
  std::uint64_t window_weight_ = 0;
  std::size_t protected_count_ = 0;
  std::uint64_t protected_weight_ = 0;

  int margin_ = std::clamp(config_.admission_margin, -1, 1);
  std::unique_ptr<ShadowTuner> tuner_;
};

/// Chooses the window's share, the admission margin and the sketch's history length by
/// miniature simulation.
///
/// Shadow W-TinyLFU caches replay a spatially sampled subset of the requests: the keys whose
/// remixed hash falls in a fixed fraction R = min(1, kShadowEntries / max_entries) of the hash
/// space, against R times the bounds (SHARDS-style: a sampled key's whole history is in the
/// sample, so a shadow behaves like a scaled-down copy of the real cache). Seven shadows differ in
/// the window share, from 0% (pure TinyLFU) to 85% (nearly LRU), all with the current admission
/// margin and history; three more run the current share and history with margins -1 (admit on a
/// tie: leans to recency), 0 (TinyLFU's rule) and +1 (keep the incumbent unless the newcomer
/// leads by two: steadier, which loops and stable popularity reward); one runs the current share
/// and margin with the other history length (its sketch ages every 40 shadow capacities of
/// requests instead of 10, or the reverse). The margin shadow of the current margin is the
/// current configuration, the *reference*: every request that exactly one of a shadow and the
/// reference hits is a win or a loss for that shadow (the requests both hit or both miss say
/// nothing about which is better). Every period (ten shadow capacities of sampled requests), with
/// the wins and losses of past periods decayed by half each period, the real cache switches to the
/// other history if that shadow clearly leads, else to the best share and the best margin, each
/// only if its lead is clear: wins - losses > 2 sqrt(wins + losses) (a sign test: if the two were
/// as good, each such request would be a fair coin's toss), so near-ties do not make it flap. The
/// shadows see the same requests at the same time, so a comparison has none of the drift that
/// makes a hill climber (one configuration now against another one earlier) chase noise, and
/// pairing them request by request removes the noise of the requests themselves: a lead of a
/// few tenths of a point is found where comparing the two hit counts would need several points.
///
/// Cost: the shadows share two sketches (one per history length; they count the same requests),
/// each counted once per sampled request; then each shadow does a lookup and a queue operation:
/// kShadows x R of them per request, 0.55 at 10,000 entries but 11 for a store of at most 512
/// entries (where R = 1). Memory: kShadows x (R x max_entries + 1) hooks of 32 bytes plus their
/// index slots, under 300 KB.
class ShadowTuner {
 public:
  static constexpr double kShares[] = {0, 0.01, 0.03, 0.08, 0.20, 0.45, 0.85};
  static constexpr std::size_t kWindows = std::size(kShares);
  static constexpr std::size_t kShadows = kWindows + 4;  // + one per margin, + the other history
  static constexpr std::size_t kHistoryShadow = kShadows - 1;
  /// The sketch's history lengths: increments between two agings per key of capacity.
  static constexpr unsigned kHistories[2] = {10, 40};
  static constexpr std::size_t kShadowEntries = 512;
  static constexpr double kConfidence = 2;  // standard deviations a lead must exceed

  struct Choice {
    double share;
    int margin;
    unsigned history;
  };

  explicit ShadowTuner(const WTinyLfu::Config& main)
      : margin_{std::clamp(main.admission_margin, -1, 1)} {
    const double rate =
        std::min(1.0, static_cast<double>(kShadowEntries) / static_cast<double>(main.max_entries));
    threshold_ = static_cast<std::uint64_t>(rate * 65536.0);
    const auto entries = std::max<std::size_t>(
        1, static_cast<std::size_t>(std::llround(rate * static_cast<double>(main.max_entries))));
    const auto weight =
        main.max_weight == 0
            ? std::uint64_t{0}
            : std::max<std::uint64_t>(1, static_cast<std::uint64_t>(std::llround(
                                             rate * static_cast<double>(main.max_weight))));
    current_ = kWindows;  // the share nearest the main cache's start
    for (std::size_t i = 0; i < kWindows; ++i)
      if (current_ == kWindows || std::abs(kShares[i] - main.initial_window) <
                                      std::abs(kShares[current_] - main.initial_window))
        current_ = i;
    for (std::size_t i = 0; i < kShadows; ++i) {
      const bool at_current_share = i >= kWindows;
      const bool margin_shadow = at_current_share && i != kHistoryShadow;
      shadows_[i].init(
          WTinyLfu::Config{.max_entries = entries,
                           .max_weight = weight,
                           .initial_window = kShares[at_current_share ? current_ : i],
                           .adaptive = false,
                           .seed = main.seed + i + 1,
                           .admission_margin = margin_shadow ? margin_of(i) : margin_});
    }
    victims_.reserve(entries + 2);  // at most every entry and the new one: no allocation later
    for (std::size_t i = 0; i < 2; ++i) {
      sketches_[i].ensure_capacity(entries);
      sketches_[i].set_history(kHistories[i]);
    }
    share_sketches();
    period_ = 10 * static_cast<std::uint64_t>(entries);
  }

  /// One request for `key` (an entry of `weight`). True at the end of a period: `out` then holds
  /// the share, margin and history to use from now on. Only the keys of the spatial sample reach
  /// the shadows: the test is inline, so that the common case (19 requests in 20 at 10,000
  /// entries) costs no call.
  bool record(std::uint32_t key, std::uint64_t weight, Choice& out) noexcept {
    return samples(key) && record_sampled(key, weight, out);
  }

  /// Whether requests for `key` are in the spatial sample.
  bool samples(std::uint32_t key) const noexcept {
    std::uint64_t h = key * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    return (h >> 48) < threshold_;
  }

 private:
  /// record() for a key of the sample.
  [[gnu::noinline]] bool record_sampled(std::uint32_t key, std::uint64_t weight,
                                        Choice& out) noexcept {
    for (FrequencySketch& sketch : sketches_) sketch.increment(key);
    bool hit[kShadows];
    for (std::size_t i = 0; i < kShadows; ++i) hit[i] = shadows_[i].request(key, weight, victims_);
    const bool reference_hit = hit[margin_shadow(margin_)];
    for (std::size_t i = 0; i < kShadows; ++i) {
      shadows_[i].wins += hit[i] && !reference_hit;
      shadows_[i].losses += !hit[i] && reference_hit;
    }
    if (++sampled_ < period_) return false;
    sampled_ = 0;
    for (Shadow& s : shadows_) s.end_period();
    if (clear_lead(kHistoryShadow)) {
      // The other history: its shadow and the reference trade places (so the shadows keep their
      // contents), the others switch sketch, and the share and margin wait for a period measured
      // with the new history.
      std::swap(shadows_[kHistoryShadow], shadows_[margin_shadow(margin_)]);
      history_ ^= 1;
      share_sketches();
      for (Shadow& s : shadows_) s.forget_comparison();
      out = {kShares[current_], margin_, kHistories[history_]};
      return true;
    }
    // The share: the best window shadow, if its lead over the reference is clear.
    std::size_t best = current_;
    for (std::size_t i = 0; i < kWindows; ++i)
      if (shadows_[i].lead() > shadows_[best].lead()) best = i;
    if (!clear_lead(best)) best = current_;
    // The margin: the best of the three margin shadows (all at the current share), if clear.
    int margin = margin_;
    for (std::size_t i = kWindows; i < kHistoryShadow; ++i)
      if (shadows_[i].lead() > shadows_[margin_shadow(margin)].lead()) margin = margin_of(i);
    if (!clear_lead(margin_shadow(margin))) margin = margin_;
    if (margin != margin_ || best != current_) {
      // A new reference: the wins and losses counted against the old one no longer apply.
      for (Shadow& s : shadows_) s.forget_comparison();
    }
    if (margin != margin_) {
      margin_ = margin;
      for (std::size_t i = 0; i < kWindows; ++i) shadows_[i].cache->set_admission_margin(margin_);
      shadows_[kHistoryShadow].cache->set_admission_margin(margin_);
    }
    if (best != current_) {
      current_ = best;
      for (std::size_t i = kWindows; i < kShadows; ++i)
        shadows_[i].cache->set_window_fraction(kShares[current_]);
    }
    out = {kShares[current_], margin_, kHistories[history_]};
    return true;
  }

  /// One shadow cache with its own fixed pool of hooks and key index (open addressing).
  struct Shadow {
    std::unique_ptr<WTinyLfu> cache;
    std::vector<TinyLfuHook> hooks;    // never resized after init: the cache links into it
    TinyLfuHook* free = nullptr;       // unused hooks, linked through `next`
    std::vector<std::uint32_t> slots;  // hook index + 1; 0 = empty
    std::size_t mask = 0;
    // Against the reference: requests only this shadow hit (wins) and only the reference hit
    // (losses), in this period, and over the past ones with decay.
    std::uint64_t wins = 0;
    std::uint64_t losses = 0;
    double win_score = 0;
    double loss_score = 0;

    double lead() const noexcept { return win_score - loss_score; }
    void forget_comparison() noexcept { win_score = loss_score = 0; }

    void init(const WTinyLfu::Config& config) {
      cache = std::make_unique<WTinyLfu>(config);
      hooks.resize(config.max_entries + 1);
      for (std::size_t i = hooks.size(); i-- > 0;) push_free(hooks[i]);
      // At most two thirds full (linear probing stays short), at most hooks.size() keys.
      slots.assign(std::bit_ceil(hooks.size() + hooks.size() / 2), 0);
      mask = slots.size() - 1;
    }
    std::size_t home(std::uint32_t key) const noexcept {
      return static_cast<std::size_t>((key * 0x9e3779b97f4a7c15ULL) >> 32) & mask;
    }
    /// One request; true on a hit.
    bool request(std::uint32_t key, std::uint64_t weight,
                 std::vector<TinyLfuHook*>& victims) noexcept {
      std::size_t slot = home(key);
      while (slots[slot] != 0 && hooks[slots[slot] - 1].key_hash != key) slot = (slot + 1) & mask;
      if (slots[slot] != 0) {
        cache->access(&hooks[slots[slot] - 1]);
        return true;
      }
      // The cache holds at most max_entries keys between requests, so one of the max_entries + 1
      // hooks is free.
      TinyLfuHook& hook = *free;
      free = hook.next;
      slots[slot] = static_cast<std::uint32_t>(&hook - hooks.data()) + 1;
      hook.key_hash = key;
      hook.weight = weight;
      victims.clear();
      cache->insert(&hook, victims);  // victims: capacity reserved, no allocation past warm-up
      for (TinyLfuHook* v : victims) release(static_cast<std::size_t>(v - hooks.data()));
      return false;
    }
    /// Deletes the hook's key (linear probing, backward-shift deletion) and frees the hook.
    void release(std::size_t at) noexcept {
      std::size_t hole = home(hooks[at].key_hash);
      while (slots[hole] != at + 1) hole = (hole + 1) & mask;
      for (std::size_t next = (hole + 1) & mask; slots[next] != 0; next = (next + 1) & mask) {
        const std::size_t want = home(hooks[slots[next] - 1].key_hash);
        // Move the entry back into the hole unless its home lies cyclically in (hole, next].
        if (((next - want) & mask) >= ((next - hole) & mask)) {
          slots[hole] = slots[next];
          hole = next;
        }
      }
      slots[hole] = 0;
      push_free(hooks[at]);
    }
    void push_free(TinyLfuHook& hook) noexcept {
      hook.next = free;
      free = &hook;
    }
    void end_period() noexcept {
      win_score = win_score / 2 + static_cast<double>(wins);
      loss_score = loss_score / 2 + static_cast<double>(losses);
      wins = losses = 0;
    }
  };

  /// Whether shadow i beats the reference by more than noise (a sign test on the requests only
  /// one of the two hit).
  bool clear_lead(std::size_t i) const noexcept {
    const Shadow& s = shadows_[i];
    return s.lead() > kConfidence * std::sqrt(s.win_score + s.loss_score);
  }

  /// The shadows read the current history's sketch, the history shadow the other one.
  void share_sketches() noexcept {
    for (std::size_t i = 0; i < kShadows; ++i)
      shadows_[i].cache->share_sketch(&sketches_[i == kHistoryShadow ? history_ ^ 1 : history_]);
  }

  /// Margin shadows kWindows, +1, +2 run margins -1, 0, +1.
  static int margin_of(std::size_t shadow) noexcept {
    return static_cast<int>(shadow - kWindows) - 1;
  }
  static std::size_t margin_shadow(int margin) noexcept {
    return kWindows + static_cast<std::size_t>(margin + 1);
  }

  Shadow shadows_[kShadows];
  FrequencySketch sketches_[2];  // one per history length, counting the same sampled requests
  std::size_t history_ = 0;      // index of the current history in kHistories
  std::vector<TinyLfuHook*> victims_;
  int margin_ = 0;
  std::size_t current_ = 0;      // index of the current share in kShares
  std::uint64_t threshold_ = 0;  // sampled when the top 16 bits of the remixed key are below
  std::uint64_t period_ = 0;
  std::uint64_t sampled_ = 0;
};

inline WTinyLfu::~WTinyLfu() = default;

inline void WTinyLfu::record(const TinyLfuHook* n) noexcept {
  ShadowTuner::Choice choice{};
  if (!tuner_->record(n->key_hash, n->weight, choice)) return;
  margin_ = choice.margin;
  if (choice.history != own_sketch_.history()) own_sketch_.set_history(choice.history);
  if (choice.share != window_) set_window_fraction(choice.share);
}

}  // namespace larder::detail
