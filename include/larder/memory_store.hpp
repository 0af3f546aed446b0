// memory_store.hpp: the embedded default store: bounded by entry count and by weight, in-process,
// TTL-aware, keeping decoded values (std::shared_ptr<const T>), so a hit never parses or copies a
// value. Thread-safe: every member may be called concurrently. Never throws StoreError.
//
// Example:
//   larder::MemoryStore store{{.max_entries = 10'000, .max_weight = 256 << 20}};
//   larder::Cached top{store, "Author", "top_book_ids", &compute_top_book_ids, {.ttl = 1h}};
//
// Design (docs/memory_store.md has the measurements):
//
// Reads take no lock. The table is split into shards; each shard is a chained hash table of atomic
// pointers. A reader announces itself in an epoch record of its own (detail/epoch.hpp), walks a
// chain, copies the value's shared_ptr and the stamps, and notes the node in a lossy read buffer
// (one store into a slot of its own stripe) unless this thread already noted it in the current
// generation (see record_read). A shard's sequence number tells a reader that a resize
// moved the chains under it, so a miss is only reported from a stable table. A node keeps what
// readers load (hash, stamps, key, value) apart from what the policy writes (queue links), so a
// replay on one core does not write the lines a reader on another core holds.
//
// Writes lock one shard to link or unlink a node, then the policy mutex to tell the eviction policy
// (detail/store_policy.hpp), which names the victims. A put of a new key that finds the policy
// mutex held leaves the node in a small write buffer for the holder to admit when it lets go
// (Caffeine's write buffer), so threads that miss at once do not queue for the policy; until then
// the node is in the table, pending, and the store may hold up to 64 entries beyond its bounds.
// Readers' accesses reach the policy in
// batches: a thread that has read a buffer's worth of entries try-locks the policy mutex and
// replays every stripe's buffer (entries overwritten before that are lost, which only blurs recency
// a little).
//
// Expiry: every entry sits in a calendar bucket of ~1.07 s by its expiry time; maintenance pops the
// buckets that are wholly past, so an expired entry leaves without any scan of the store, and a
// find never returns an expired entry.
//
// Reclamation: an unlinked node is retired with the current epoch and freed two epochs later, after
// the read buffers were emptied, so neither a reader nor a buffered pointer ever sees freed memory.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeindex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "larder/clock.hpp"
#include "larder/detail/epoch.hpp"
#include "larder/detail/inline_value.hpp"
#include "larder/detail/spin_lock.hpp"
#include "larder/detail/store_policy.hpp"
#include "larder/detail/striped_counter.hpp"
#include "larder/detail/weight.hpp"
#include "larder/store.hpp"

namespace larder {

struct MemoryStoreOptions {
  /// Most entries kept at once, across every Cached using the store. Must be >= 1.
  std::size_t max_entries = 10'000;
  /// Most total weight kept at once (bytes, unless the value type has a larder_weight); 0: no bound
  /// by weight. An entry heavier than this alone is not stored (see MemoryStore::rejected()).
  std::uint64_t max_weight = 0;
};

/// A value found in the store with its stamps.
template <class V>
struct Found {
  std::shared_ptr<const V> value;
  Stamps stamps;
};

class MemoryStore final : public Store {
 public:
  using Options = MemoryStoreOptions;

  explicit MemoryStore(Options options = {})
      : options_{options}, policy_{options.max_entries, options.max_weight} {
    if (options_.max_entries == 0)
      throw std::invalid_argument("larder::MemoryStoreOptions::max_entries must be at least 1");
    for (auto& s : shards_) s.table.store(new Table{kInitialBuckets}, std::memory_order_relaxed);
  }
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  ~MemoryStore() override {
    for (auto& s : shards_) {
      Table* t = s.table.load(std::memory_order_relaxed);
      for (std::size_t i = 0; i <= t->mask; ++i) {
        Node* n = t->slots[i].load(std::memory_order_relaxed);
        while (n != nullptr) {
          Node* next = n->chain.load(std::memory_order_relaxed);
          free_node(n);
          n = next;
        }
      }
      delete t;
    }
    for (auto& r : retired_) free_retired(r);
  }

  MemoryStore* memory_tier() noexcept override { return this; }

  // ---- the typed interface Cached uses ----------------------------------------------------------
  // Entries live in namespaces (one per cached function): a namespace fixes the key and value
  // types, so an entry found by (namespace, hash) can be compared by its typed key. `hash` is the
  // key's 64-bit hash; the store keeps it folded to 32 bits, so entries are matched by that fold
  // and by eq: eq must tell the key apart (Cached's compares the stored parts), and an eq that
  // accepts any key (Cached's drop by hash) may also meet keys whose hashes fold alike. The
  // namespace id passed to put, find, read and erase must come from namespace_id<K, V> with the
  // same K and V (put checks it: std::invalid_argument).

  /// The namespace id for `name` with key type K and value type V. Registering the same name with
  /// other types throws std::invalid_argument (two functions would share keys); a store holds at
  /// most 65,535 namespaces (std::length_error beyond).
  template <class K, class V>
  std::uint32_t namespace_id(std::string_view name) {
    std::lock_guard lock{namespaces_mutex_};
    auto it = namespaces_.find(std::string(name));
    if (it != namespaces_.end()) {
      if (it->second.key != typeid(K) || it->second.value != typeid(V))
        throw std::invalid_argument(
            "larder: the key space '" + std::string(name) +
            "' is already used by a cached function with other argument or "
            "result types; give one of them another class or function name");
      return it->second.id;
    }
    const std::size_t id = namespaces_.size() + 1;
    if (id > kMaxNamespaces)
      throw std::length_error("larder::MemoryStore: more than 65,535 cached functions share it");
    auto& chunk = destroy_chunks_[id / kDestroyChunk];
    if (chunk == nullptr) {
      chunk = std::make_unique<std::atomic<Destroy>[]>(kDestroyChunk);
      destroyers_[id / kDestroyChunk].store(chunk.get(), std::memory_order_release);
    }
    namespaces_.emplace(std::string(name),
                        NamespaceInfo{static_cast<std::uint32_t>(id), typeid(K), typeid(V)});
    chunk[id % kDestroyChunk].store(&TypedNode<K, V>::destroy, std::memory_order_release);
    return static_cast<std::uint32_t>(id);
  }

  /// The live entry of namespace ns whose hash is `hash` and whose key satisfies eq, or nullopt.
  /// An entry past its expiry is not returned (and is removed). Takes no lock (see the top).
  template <class K, class V, class Eq>
  std::optional<Found<V>> find(std::uint32_t ns, std::uint64_t hash, const Eq& eq, TimePoint now) {
    std::optional<Found<V>> out;
    read<K, V>(ns, hash, eq, now, [&](const detail::held_value_t<V>& held, const Stamps& stamps) {
      out.emplace(Found<V>{detail::share_held<V>(held), stamps});
    });
    return out;
  }

  /// The hit path: calls f(held, stamps) on the live entry of namespace ns whose hash is `hash` and
  /// whose key satisfies eq, and returns true; false (f not called) if there is none. `held` is a
  /// `const detail::held_value_t<V>&`: the value itself when it is small and trivially copyable
  /// (detail/inline_value.hpp), else the entry's `std::shared_ptr<const V>`; f copies what it needs
  /// (no reference count is touched unless f copies the shared_ptr). An entry past its expiry is
  /// removed, not shown. f runs inside the store's read section: it must be short and must not
  /// call into any MemoryStore, and `held` must not be kept beyond it.
  template <class K, class V, class Eq, class F>
  bool read(std::uint32_t ns, std::uint64_t hash, const Eq& eq, TimePoint now, F&& f) {
    bool maintain = false;
    {
      detail::EpochDomain::Guard guard{epochs()};
      Node* n = lookup<K, V>(ns, fold_hash(hash), eq);
      if (n == nullptr) return false;
      if (n->stamps.expired(now)) {
        if (unlink_node(n)) {
          std::lock_guard lock{policy_mutex_};
          release_locked(n);
          expirations_.fetch_add(1, std::memory_order_relaxed);
        }
        return false;
      }
      const auto& typed = static_cast<const TypedNode<K, V>&>(*n);
      std::forward<F>(f)(typed.value, typed.stamps);
      maintain = record_read(n, hash);
    }
    if (maintain) replay_reads(now);
    return true;
  }

  /// Inserts or replaces the entry, then evicts what the policy chooses beyond max_entries and
  /// max_weight (possibly the new entry itself). An entry heavier than max_weight is not stored:
  /// the old entry under its key is removed and rejected() counts it.
  template <class K, class V, class Eq>
  void put(std::uint32_t ns, std::uint64_t hash, const Eq& eq, K key,
           std::shared_ptr<const V> value, const Stamps& stamps) {
    put_if(ns, hash, eq, std::move(key), std::move(value), stamps, []() noexcept { return true; });
  }

  /// put(), if admit() returns true; else stores nothing and leaves the key's entry as it is.
  /// admit() runs under the lock that erase() of the same key takes, so an erase either removes
  /// what this put stored or happens before admit() is asked: Cached asks "was this key
  /// invalidated since the value was computed?", so that an invalidate() that comes while a
  /// computation runs keeps its result out. admit() must be short, must not throw and must not
  /// call into any MemoryStore. Returns whether admit() allowed the put (an entry heavier than
  /// max_weight is refused before admit() is asked: false).
  template <class K, class V, class Eq, class Admit>
  bool put_if(std::uint32_t ns, std::uint64_t hash, const Eq& eq, K key,
              std::shared_ptr<const V> value, const Stamps& stamps, const Admit& admit) {
    static_assert(std::is_nothrow_invocable_r_v<bool, const Admit&>,
                  "MemoryStore::put_if: admit() must be callable as bool() noexcept");
    if (destroyer(ns) != &TypedNode<K, V>::destroy)
      throw std::invalid_argument(
          "larder::MemoryStore::put: the namespace id was not registered with these key and value "
          "types (namespace_id<K, V>)");
    const std::uint64_t weight = detail::entry_weight(key, *value);
    if (options_.max_weight != 0 && weight > options_.max_weight) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      erase<K, V>(ns, hash, eq);
      return false;
    }
    const std::uint32_t h = fold_hash(hash);
    auto owned = std::make_unique<TypedNode<K, V>>(ns, h, stamps, std::move(key), std::move(value));
    TypedNode<K, V>* const node = owned.get();
    node->weight = weight;
    // Between the shard lock and the policy lock, another thread may evict and retire `old`: the
    // guard keeps it alive until this call is done with it. (`node` needs no guard: until it is
    // admitted it is pending, and nothing frees a pending entry but its admission.)
    detail::EpochDomain::Guard guard{epochs()};
    Node* old = nullptr;
    Table* old_table = nullptr;
    Shard& s = shard_of(h);
    {
      std::lock_guard lock{s.mutex};
      if (!admit()) return false;  // `node` was never linked: `owned` deletes it
      old = find_locked<K, V>(s, ns, h, eq);
      if (old != nullptr) {
        replace_locked(s, old, node);
      } else {
        link_locked(s, node);
      }
      owned.release();  // the table's now
      // Grow at load factor 3/4: a chain hop is a cache miss on the hit path.
      const std::size_t buckets = s.table.load(std::memory_order_relaxed)->mask + 1;
      if (s.count.load(std::memory_order_relaxed) * 4 > buckets * 3) {
        try {
          old_table = grow_locked(s);
        } catch (const std::bad_alloc&) {
          // No memory for a bigger table: the chains are only longer (a later put tries again).
          // Throwing here would leave `node` linked and never admitted.
        }
      }
    }
    if (!policy_mutex_.try_lock()) {
      // Another thread holds the policy: a new key (no old entry, no table to retire) waits in the
      // write buffer for that thread, or whoever takes the lock next, to admit it (Caffeine's write
      // buffer), instead of this thread waiting for the lock. A full buffer, or one that a holder
      // letting go is admitting (WriteBuffer::closed), makes it wait.
      if (old == nullptr && old_table == nullptr &&
          !write_buffer_.closed.load(std::memory_order_relaxed) && write_buffer_.push(node)) {
        // If the holder let go before it could see the entry, take the lock and admit it here
        // (PolicyMutex::unlock is the other half of this hand-off).
        if (policy_mutex_.try_lock()) {
          std::lock_guard lock{policy_mutex_, std::adopt_lock};
          drain_writes_locked();
        }
        return true;
      }
      policy_mutex_.lock();
    }
    std::lock_guard lock{policy_mutex_, std::adopt_lock};
    try {
      drain_writes_locked();
      if (old_table != nullptr) retire(old_table);
      if (old != nullptr) release_locked(old);
      // This thread's buffered reads first, so the policy weighs the new entry against
      // frequencies that include them (Caffeine drains its read buffer before a write, too).
      drain_stripe_locked(read_buffer_[detail::stripe_index()]);
      admit_locked(node);
    } catch (...) {
      abandon_locked(node);
      throw;
    }
    // Done with old and node: leave the read section, or this thread's own stale announcement would
    // keep the epoch from moving in the maintenance below.
    guard.leave();
    if (retired_.size() >= reclaim_at_ || calendar_due(stamps.written))
      maintain_locked(stamps.written);
    return true;
  }

  /// Removes the entry; true if there was one.
  template <class K, class V, class Eq>
  bool erase(std::uint32_t ns, std::uint64_t hash, const Eq& eq) {
    const std::uint32_t h = fold_hash(hash);
    Shard& s = shard_of(h);
    Node* n = nullptr;
    detail::EpochDomain::Guard guard{epochs()};  // n stays alive until release_locked
    {
      std::lock_guard lock{s.mutex};
      n = find_locked<K, V>(s, ns, h, eq);
      if (n == nullptr) return false;
      unlink_locked(s, n);
    }
    std::lock_guard lock{policy_mutex_};
    release_locked(n);
    return true;
  }

  // ---- housekeeping -----------------------------------------------------------------------------

  /// Entries in the table. While puts run, this may exceed max_entries: by one until a put's own
  /// eviction ran, and by the entries waiting in the write buffer (at most 64; see put).
  std::size_t size() const noexcept {
    std::size_t n = 0;
    for (const auto& s : shards_) n += s.count.load(std::memory_order_relaxed);
    return n;
  }
  std::size_t max_entries() const noexcept { return options_.max_entries; }
  std::uint64_t max_weight() const noexcept { return options_.max_weight; }
  /// The total weight of the entries the policy holds.
  std::uint64_t weighted_size() const {
    std::lock_guard lock{policy_mutex_};
    return policy_.weight();
  }
  /// Entries dropped to respect the bounds (including new entries the policy declined).
  std::uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }
  /// Entries dropped because their TTL passed.
  std::uint64_t expirations() const noexcept {
    return expirations_.load(std::memory_order_relaxed);
  }
  /// Entries not stored because each alone weighed more than max_weight.
  std::uint64_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }

  /// Removes every entry.
  void clear() {
    std::lock_guard lock{policy_mutex_};
    drain_writes_locked();
    for (auto& s : shards_) {
      std::lock_guard shard_lock{s.mutex};
      Table* t = s.table.load(std::memory_order_relaxed);
      for (std::size_t i = 0; i <= t->mask; ++i) {
        Node* n = t->slots[i].load(std::memory_order_relaxed);
        t->slots[i].store(nullptr, std::memory_order_release);
        while (n != nullptr) {
          Node* next = n->chain.load(std::memory_order_relaxed);
          n->linked = false;
          release_locked(n);
          n = next;
        }
      }
      s.count.store(0, std::memory_order_relaxed);
    }
    reclaim_locked();
  }

  /// Removes every entry of namespace ns and returns how many; other namespaces are left alone.
  /// For a function whose invalidations may have been missed (InvalidationBus flush).
  std::size_t erase_namespace(std::uint32_t ns) {
    std::size_t removed = 0;
    for (auto& s : shards_) {
      std::lock_guard lock{policy_mutex_};  // per shard: a put waits for one shard's walk at most
      std::lock_guard shard_lock{s.mutex};
      Table* t = s.table.load(std::memory_order_relaxed);
      for (std::size_t i = 0; i <= t->mask; ++i) {
        std::atomic<Node*>* link = &t->slots[i];
        for (Node* n = link->load(std::memory_order_relaxed); n != nullptr;
             n = link->load(std::memory_order_relaxed)) {
          if (n->ns != ns) {
            link = &n->chain;
            continue;
          }
          // As unlink_locked: readers standing on n keep walking (n->chain is left as it was).
          link->store(n->chain.load(std::memory_order_relaxed), std::memory_order_release);
          n->linked = false;
          s.count.store(s.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
          release_locked(n);
          ++removed;
        }
      }
    }
    std::lock_guard lock{policy_mutex_};
    if (retired_.size() >= reclaim_at_) reclaim_locked();
    return removed;
  }

  /// Runs the pending maintenance now (replays buffered reads, expires entries past `now`, frees
  /// retired memory). Reads and writes do this on their own; tests call it to reach a quiet state.
  void maintain(TimePoint now) {
    std::lock_guard lock{policy_mutex_};
    maintain_locked(now, /*reclaim_all=*/true);
  }

  /// Checks the store's invariants and throws std::logic_error naming the first one broken: every
  /// linked entry is known to the policy and the calendar and vice versa, the counts agree, and the
  /// bounds hold. For tests; call it while no other thread uses the store.
  void check_invariants() const {
    std::lock_guard lock{policy_mutex_};
    auto fail = [](const std::string& what) {
      throw std::logic_error("larder::MemoryStore invariant: " + what);
    };
    std::size_t linked = 0;
    std::uint64_t weight = 0;
    for (const auto& s : shards_) {
      std::lock_guard shard_lock{s.mutex};
      const Table* t = s.table.load(std::memory_order_relaxed);
      std::size_t in_shard = 0;
      for (std::size_t i = 0; i <= t->mask; ++i) {
        for (const Node* n = t->slots[i].load(std::memory_order_relaxed); n != nullptr;
             n = n->chain.load(std::memory_order_relaxed)) {
          if (&shard_of(n->hash) != &s || (n->hash & t->mask) != i) fail("entry in wrong bucket");
          if (!n->linked || n->state != State::live) fail("linked entry not live");
          ++in_shard;
          weight += n->weight;
        }
      }
      if (in_shard != s.count.load(std::memory_order_relaxed)) fail("shard count");
      linked += in_shard;
    }
    for (const auto& slot : write_buffer_.slots)
      if (slot.load(std::memory_order_relaxed) != nullptr) fail("entry left in the write buffer");
    policy_.check_invariants();
    if (policy_.count() != linked) fail("policy count differs from the table");
    if (policy_.weight() != weight) fail("policy weight differs from the table");
    if (linked > options_.max_entries) fail("more entries than max_entries");
    if (options_.max_weight != 0 && weight > options_.max_weight) fail("weight over max_weight");
    std::size_t timed = 0;
    for (const auto& [tick, head] : calendar_) {
      if (head == nullptr) fail("empty calendar bucket");
      for (const Node* n = head; n != nullptr; n = n->timer_next) {
        if (tick_of(n->stamps) != tick) fail("entry in wrong calendar bucket");
        ++timed;
      }
    }
    if (timed != linked) fail("calendar count differs from the table");
  }

 private:
  enum class State : std::uint8_t {
    pending,  // linked in the table, not yet admitted to the policy
    live,     // in the policy and the calendar
    removed   // out of the policy; retired, or to be retired by its admission (put or write buffer)
  };

  struct Node;

  /// What the policy, the calendar and the writers keep per entry (written under the policy mutex
  /// or the shard mutex). It sits in front of the part readers load, so that the policy's queue
  /// moves (every replayed read writes the links of the entry and of its neighbours) do not write
  /// the cache lines a reader on another core is using.
  struct WriterPart : detail::StoreHook {
    Node* timer_prev = nullptr;  // the calendar bucket's list (policy mutex)
    Node* timer_next = nullptr;
  };
  /// What a reader loads: the chain link, the hash and namespace it compares, and the stamps; the
  /// typed key and value follow it. The state bytes are written only when the entry is linked,
  /// admitted or removed.
  struct ReaderPart {
    ReaderPart(std::uint32_t n, std::uint32_t h, const Stamps& s)
        : hash{h}, ns{static_cast<std::uint16_t>(n)}, stamps{s} {}
    std::atomic<Node*> chain{nullptr};  // the shard's chain
    const std::uint32_t hash;           // the key's hash, folded (fold_hash)
    const std::uint16_t ns;
    State state = State::pending;  // policy mutex
    bool linked = true;            // shard mutex
    const Stamps stamps;
  };
  struct Node : WriterPart, ReaderPart {
    Node(std::uint32_t n, std::uint32_t h, const Stamps& s) : ReaderPart{n, h, s} {}
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;
  };
  template <class K, class V>
  struct TypedNode final : Node {
    TypedNode(std::uint32_t n, std::uint32_t h, const Stamps& s, K k, std::shared_ptr<const V> v)
        : Node{n, h, s}, key{std::move(k)}, value{hold(std::move(v))} {}
    static void destroy(Node* self) noexcept { delete static_cast<TypedNode*>(self); }
    static detail::held_value_t<V> hold(std::shared_ptr<const V> v) {
      if constexpr (detail::inline_value_v<V>) {
        return *v;  // small and trivially copyable: kept in the entry, no control block
      } else {
        return v;
      }
    }
    const K key;
    const detail::held_value_t<V> value;
  };

  struct Table {
    explicit Table(std::size_t buckets)
        : mask{buckets - 1}, slots{std::make_unique<std::atomic<Node*>[]>(buckets)} {}
    std::size_t mask;
    std::unique_ptr<std::atomic<Node*>[]> slots;
  };

  /// Readers load seq and table only; writers' lock and count sit on another cache line, so a put
  /// into a shard does not evict its readers' copy of seq and table.
  struct alignas(detail::kCacheLine) Shard {
    std::atomic<std::uint32_t> seq{0};   // odd while a resize moves chains
    std::atomic<Table*> table{nullptr};  // replaced (and retired) by a resize
    alignas(detail::kCacheLine) mutable detail::SpinLock mutex;  // writers
    std::atomic<std::size_t> count{0};  // linked entries; written under mutex
  };

  /// New entries put while another thread held the policy lock, waiting to be admitted (see put).
  /// Producers claim a slot with a compare-and-swap from null; the policy lock's holder empties
  /// the slots. `pending` counts what was pushed and not yet taken, so that an empty buffer costs
  /// the holder one load (it may dip below zero for a moment: a slot taken before its push was
  /// counted).
  struct WriteBuffer {
    static constexpr std::size_t kSlots = 64;  // a power of two
    alignas(detail::kCacheLine) std::atomic<std::uint32_t> next{0};
    std::atomic<std::int64_t> pending{0};
    // Set from the second round a holder letting go admits the buffer (PolicyMutex::unlock): puts
    // then wait for the lock instead of buffering, so that thread's extra work is about two
    // buffers' worth, not an endless stream of other threads' entries.
    std::atomic<bool> closed{false};
    alignas(detail::kCacheLine) std::array<std::atomic<Node*>, kSlots> slots{};

    /// False if the few slots tried were all taken (the buffer is about full).
    bool push(Node* n) noexcept {
      for (int tries = 0; tries < 4; ++tries) {
        auto& slot = slots[next.fetch_add(1, std::memory_order_relaxed) & (kSlots - 1)];
        Node* empty = nullptr;
        if (slot.compare_exchange_strong(empty, n, std::memory_order_release,
                                         std::memory_order_relaxed)) {
          // Sequentially consistent, as PolicyMutex's unlock and try_lock: either this thread's
          // try_lock after the push finds the lock free, or the holder's unlock sees the count.
          pending.fetch_add(1, std::memory_order_seq_cst);
          return true;
        }
      }
      return false;
    }
  };

  /// The policy lock: a spin lock (detail/spin_lock.hpp) whose unlock admits the entries pushed
  /// into the write buffer while it was held. A put that pushes an entry and then fails to take the
  /// lock leaves the entry to the holder; the holder, after letting go, checks the buffer and, if
  /// it is not empty, takes the lock again (unless another thread has) and admits it. The unlock
  /// and try_lock are sequentially consistent, as the push's count, so at least one of the two
  /// sees the other and no entry is left in the buffer after both calls return.
  class PolicyMutex {
   public:
    explicit PolicyMutex(MemoryStore& store) noexcept : store_{store} {}
    void lock() noexcept { lock_.lock(); }
    bool try_lock() noexcept { return lock_.try_lock_seq_cst(); }
    void unlock() noexcept {
      lock_.unlock_seq_cst();
      WriteBuffer& buffer = store_.write_buffer_;
      for (int round = 0; buffer.pending.load(std::memory_order_seq_cst) > 0 && try_lock();
           ++round) {
        if (round > 0) buffer.closed.store(true, std::memory_order_relaxed);
        bool drained = true;
        try {
          store_.drain_writes_locked();
        } catch (...) {
          drained = false;  // out of memory: what is left waits for the next holder's drain
        }
        buffer.closed.store(false, std::memory_order_relaxed);
        lock_.unlock_seq_cst();
        if (!drained) break;
      }
    }

   private:
    MemoryStore& store_;
    detail::SpinLock lock_;
  };

  struct NamespaceInfo {
    std::uint32_t id;
    std::type_index key;
    std::type_index value;
  };

  /// Memory waiting for the readers that might see it.
  struct Retired {
    std::uint64_t epoch;
    Node* node;
    Table* table;
  };
  void free_retired(const Retired& r) const noexcept {
    if (r.node != nullptr) free_node(r.node);
    delete r.table;
  }

  /// Deletes a node as the TypedNode its namespace was registered with (the entry keeps no
  /// function pointer or vtable of its own).
  using Destroy = void (*)(Node*) noexcept;
  static constexpr std::size_t kMaxNamespaces = 0xFFFF;  // ids fit ReaderPart::ns
  static constexpr std::size_t kDestroyChunk = 256;
  /// The destroy function of namespace ns, or null if ns was never registered. Takes no lock:
  /// put() checks an id it was given while another thread may be registering one.
  Destroy destroyer(std::uint32_t ns) const noexcept {
    if (ns == 0 || ns > kMaxNamespaces) return nullptr;
    const std::atomic<Destroy>* chunk =
        destroyers_[ns / kDestroyChunk].load(std::memory_order_acquire);
    return chunk == nullptr ? nullptr : chunk[ns % kDestroyChunk].load(std::memory_order_acquire);
  }
  void free_node(Node* n) const noexcept { destroyer(n->ns)(n); }

  static constexpr std::size_t kShardBits = 4;
  static constexpr std::size_t kShards = std::size_t{1} << kShardBits;
  static constexpr std::size_t kInitialBuckets = 16;     // per shard; doubles at load factor 1
  static constexpr std::size_t kReadSlots = 32;          // per stripe; a power of two
  static constexpr unsigned kTickShift = 30;             // calendar bucket: 2^30 ns, about 1.07 s
  static constexpr std::size_t kGenerationDivisor = 16;  // see record_read
  static constexpr std::size_t kNotedAnyway = 64;        // a power of two; see record_read
  static constexpr std::size_t kBackoffReads = 4 * kReadSlots;  // see record_read
  static constexpr std::size_t kMinMarks = 64;                  // see grow_marks
  static constexpr std::size_t kMaxMarks = 8192;                // 64 KiB per reading thread

  static std::uint64_t next_id() noexcept {
    static std::atomic<std::uint64_t> last{0};
    return last.fetch_add(1, std::memory_order_relaxed) + 1;
  }

  /// The process-wide epoch domain, held by reference (no static-initialization guard per read).
  detail::EpochDomain& epochs() const noexcept { return epochs_; }

  /// The store keeps a key's 64-bit hash folded to 32 bits (the policy's sketch counts keys by
  /// the same fold): the shard is picked by its top bits, the bucket by its low bits.
  static std::uint32_t fold_hash(std::uint64_t hash) noexcept {
    return detail::StoreHook::fold(hash);
  }
  Shard& shard_of(std::uint32_t h) noexcept { return shards_[h >> (32 - kShardBits)]; }
  const Shard& shard_of(std::uint32_t h) const noexcept { return shards_[h >> (32 - kShardBits)]; }

  // ---- table
  // --------------------------------------------------------------------------------------

  /// Lock-free lookup; call inside an epoch guard.
  template <class K, class V, class Eq>
  Node* lookup(std::uint32_t ns, std::uint32_t hash, const Eq& eq) const {
    const Shard& s = shard_of(hash);
    for (;;) {
      const std::uint32_t seq = s.seq.load(std::memory_order_acquire);
      if ((seq & 1) != 0) continue;  // a resize is moving chains: wait for it
      const Table* t = s.table.load(std::memory_order_acquire);
      for (Node* n = t->slots[hash & t->mask].load(std::memory_order_acquire); n != nullptr;
           n = n->chain.load(std::memory_order_acquire)) {
        if (n->hash == hash && n->ns == ns && eq(static_cast<const TypedNode<K, V>&>(*n).key))
          return n;
      }
      if (s.seq.load(std::memory_order_acquire) == seq) return nullptr;
    }
  }

  template <class K, class V, class Eq>
  Node* find_locked(Shard& s, std::uint32_t ns, std::uint32_t hash, const Eq& eq) {
    const Table* t = s.table.load(std::memory_order_relaxed);
    for (Node* n = t->slots[hash & t->mask].load(std::memory_order_relaxed); n != nullptr;
         n = n->chain.load(std::memory_order_relaxed)) {
      if (n->hash == hash && n->ns == ns && eq(static_cast<const TypedNode<K, V>&>(*n).key))
        return n;
    }
    return nullptr;
  }

  static void link_locked(Shard& s, Node* n) {
    const Table* t = s.table.load(std::memory_order_relaxed);
    auto& head = t->slots[n->hash & t->mask];
    n->chain.store(head.load(std::memory_order_relaxed), std::memory_order_relaxed);
    head.store(n, std::memory_order_release);
    s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  /// The link that points to n: its bucket's head or its predecessor's chain.
  static std::atomic<Node*>& link_to_locked(const Shard& s, const Node* n) {
    const Table* t = s.table.load(std::memory_order_relaxed);
    std::atomic<Node*>* link = &t->slots[n->hash & t->mask];
    for (Node* p = link->load(std::memory_order_relaxed); p != n;
         p = link->load(std::memory_order_relaxed)) {
      if (p == nullptr) throw std::logic_error("larder::MemoryStore: unlinking a missing entry");
      link = &p->chain;
    }
    return *link;
  }

  /// Unlinks n from its chain. Readers standing on n keep walking: n->chain is left as it was.
  static void unlink_locked(Shard& s, Node* n) {
    link_to_locked(s, n).store(n->chain.load(std::memory_order_relaxed), std::memory_order_release);
    n->linked = false;
    s.count.store(s.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }

  /// Puts n in old's place in its chain with one store, so that a reader finds one or the other,
  /// never neither. (Linking n at the head and then unlinking old let a reader that had passed the
  /// head before the link, and reached old's predecessor after the unlink, miss both: a key present
  /// all along reported missing.) Readers standing on old keep walking: old->chain is left as it
  /// was.
  static void replace_locked(Shard& s, Node* old, Node* n) {
    std::atomic<Node*>& link = link_to_locked(s, old);
    n->chain.store(old->chain.load(std::memory_order_relaxed), std::memory_order_relaxed);
    link.store(n, std::memory_order_release);
    old->linked = false;
  }

  /// Unlinks n if it is still linked; true if this call did.
  bool unlink_node(Node* n) {
    Shard& s = shard_of(n->hash);
    std::lock_guard lock{s.mutex};
    if (!n->linked) return false;
    unlink_locked(s, n);
    return true;
  }

  /// Doubles the shard's table; returns the old one, to retire.
  static Table* grow_locked(Shard& s) {
    Table* old = s.table.load(std::memory_order_relaxed);
    auto* bigger = new Table{(old->mask + 1) * 2};
    // Odd while moving. No fence: every store a reader could observe below is a release store, so
    // a reader that sees a moved link also sees the odd sequence number when it checks again.
    s.seq.store(s.seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    for (std::size_t i = 0; i <= old->mask; ++i) {
      Node* n = old->slots[i].load(std::memory_order_relaxed);
      while (n != nullptr) {
        Node* next = n->chain.load(std::memory_order_relaxed);
        auto& head = bigger->slots[n->hash & bigger->mask];
        n->chain.store(head.load(std::memory_order_relaxed), std::memory_order_release);
        head.store(n, std::memory_order_relaxed);
        n = next;
      }
    }
    s.table.store(bigger, std::memory_order_release);
    s.seq.store(s.seq.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    return old;
  }

  // ---- read buffers
  // -------------------------------------------------------------------------------

  /// A stripe of the read buffer and the counters of the thread that owns it (detail/
  /// striped_counter.hpp): its position in the slots, the reads the generation filter dropped and
  /// its back-off. They are the store's, not the thread's, so a thread that alternates between
  /// stores keeps its place in each (relaxed atomics: the few threads beyond kStripes share
  /// stripes, and then count approximately, which a lossy buffer allows).
  struct alignas(detail::kCacheLine) ReadStripe {
    std::array<std::atomic<Node*>, kReadSlots> slots{};
    std::atomic<std::uint32_t> reads{0};
    std::atomic<std::uint32_t> dropped{0};
    std::atomic<std::uint32_t> backoff{0};
  };
  static std::uint32_t bump(std::atomic<std::uint32_t>& counter) noexcept {
    const std::uint32_t old = counter.load(std::memory_order_relaxed);
    // A load and a store, no locked add: the stripe's owner alone writes it (threads that share a
    // stripe lose a count now and then).
    counter.store(old + 1, std::memory_order_relaxed);
    return old;
  }

  /// A thread's generation filter (see record_read), one for every store it reads: the marks are
  /// salted with the store's id, so another store's marks never match and need no clearing.
  /// Trivially destructible, so that it outlives every thread-local destructor of its thread (one
  /// may read a store): the grown slots are freed by a MarksOwner, which puts the filter back on
  /// its inline slots for the reads after it.
  struct ThreadMarks {
    std::uint64_t* slots = nullptr;  // `small` or `grown`; mask + 1 of them
    std::size_t mask = 0;
    std::size_t failed = 0;          // the size whose allocation failed last (not tried again)
    std::uint64_t* grown = nullptr;  // owned by this thread's MarksOwner
    bool exited = false;             // the MarksOwner is gone: never grown again
    std::array<std::uint64_t, kMinMarks> small{};
  };
  /// Frees a thread's grown filter when the thread exits. Constructed when the filter first grows:
  /// a thread-local object constructed before that is destroyed after it, and reads on the inline
  /// slots (it used to read the freed array: heap-use-after-free).
  struct MarksOwner {
    ThreadMarks& marks;
    ~MarksOwner() {
      marks.slots = marks.small.data();
      marks.mask = marks.small.size() - 1;
      marks.exited = true;
      delete[] std::exchange(marks.grown, nullptr);
    }
  };
  static ThreadMarks& marks_cell() noexcept {
    thread_local ThreadMarks marks;
    return marks;
  }
  bool marks_need_growth(const ThreadMarks& marks) const noexcept {
    return marks.mask + 1 < mark_slots_ && mark_slots_ != marks.failed;
  }
  /// The calling thread's filter, sized for this store: its first use and its growth.
  [[gnu::noinline, gnu::cold]] void grow_marks(ThreadMarks& marks) const noexcept {
    if (marks.slots == nullptr) {
      marks.slots = marks.small.data();
      marks.mask = marks.small.size() - 1;
    }
    // Grown to what this store's generations need; if memory is short, the smaller filter only
    // notes more reads (a slot two keys share drops neither), and that size is not tried again on
    // every read (a store needing another size tries once).
    if (marks.mask + 1 < mark_slots_ && !marks.exited) {
      if (auto* bigger = new (std::nothrow) std::uint64_t[mark_slots_]()) {
        thread_local MarksOwner owner{marks};
        delete[] std::exchange(marks.grown, bigger);
        marks.slots = bigger;
        marks.mask = mark_slots_ - 1;
      } else {
        marks.failed = mark_slots_;
      }
    }
  }

  /// This thread filled its stripe: replays it if the policy is free; if another thread holds
  /// the policy, backs off (see record_read) instead of waiting.
  void replay_reads(TimePoint now) {
    if (policy_mutex_.try_lock()) {
      std::lock_guard lock{policy_mutex_, std::adopt_lock};
      maintain_after_reads_locked(now);
    } else {
      read_buffer_[detail::stripe_index()].backoff.store(kBackoffReads, std::memory_order_relaxed);
    }
  }

  /// Notes a read for the policy; true when this thread should try to run maintenance.
  ///
  /// Reads that would tell the policy nothing new are dropped before they cost a buffer slot and
  /// a replay (a sketch increment and a queue move, which writes the links of the entry and of its
  /// neighbours): a read of a key this thread already noted in the current *generation* (a
  /// generation ends after max(1, max_entries / kGenerationDivisor) replayed reads). Under a skewed
  /// load the hottest entries are read many times per generation, and their frequency counters
  /// saturate while their place stays near the most recent end of their queue. So an entry reaches
  /// the policy about once per generation per reading thread, and recency is kept to within a
  /// generation (1/16 of the capacity in replayed reads).
  ///
  /// The filter is the thread's own: a direct-mapped table of marks, each the high 48 bits of a
  /// salted key hash and the generation of its last noted read. Checking it writes nothing another
  /// core reads. (It used to be a generation stamp in each entry, written by the replay: every
  /// replayed entry's line then moved to the replaying core, and the other core's next hit on it
  /// missed; two threads ran no faster than one.) A slot two keys share only notes more reads.
  /// bench/trace_replay's `store` column (through this path) beside its `policy` column (every
  /// access replayed) shows what the filter costs in hit ratio.
  bool record_read(const Node* n, std::uint64_t hash) noexcept {
    // The fast path makes no call, so it saves no registers: a thread's first read (it claims a
    // stripe) and its filter's growth go through record_read_first (callgrind: 18 instructions
    // per hit fewer than with them inlined here).
    const detail::ThreadStripe* t = detail::StripeRegistry::claimed();
    ThreadMarks& marks = marks_cell();
    if (t == nullptr || marks_need_growth(marks)) [[unlikely]]
      return record_read_first(n, hash);
    return note_read(read_buffer_[t->index], marks, n, hash);
  }
  [[gnu::noinline, gnu::cold]] bool record_read_first(const Node* n, std::uint64_t hash) noexcept {
    ReadStripe& stripe = read_buffer_[detail::stripe_index()];
    ThreadMarks& marks = marks_cell();
    // As before this split: a thread backing off does not grow its filter (note_read drops the
    // read before it looks at the filter).
    if (stripe.backoff.load(std::memory_order_relaxed) == 0 && marks_need_growth(marks))
      grow_marks(marks);
    return note_read(stripe, marks, n, hash);
  }
  [[gnu::always_inline]] bool note_read(ReadStripe& stripe, ThreadMarks& marks, const Node* n,
                                        std::uint64_t hash) noexcept {
    // After a replay found the policy busy (another thread replaying), this thread notes nothing
    // for a while: the policy cannot keep up with every read of every core, and the reads it
    // would be shown are a sample anyway (a lossy buffer, as Caffeine's). One thread alone is
    // never turned away, so a single-threaded run (bench/trace_replay) replays the same reads.
    if (const std::uint32_t wait = stripe.backoff.load(std::memory_order_relaxed); wait != 0)
        [[unlikely]] {
      stripe.backoff.store(wait - 1, std::memory_order_relaxed);
      return false;
    }
    // Keys are told apart by their hash (the caller's 64 bits, not the node's folded 32), not by
    // the node's address: the same requests drop the same reads in every run (by address, hit
    // ratios varied with the heap layout).
    const std::uint64_t mark = ((hash + filter_salt_) & ~std::uint64_t{0xFFFF}) |
                               generation_.value.load(std::memory_order_relaxed);
    std::uint64_t& slot = marks.slots[static_cast<std::size_t>(hash) & marks.mask];
    // One read in kNotedAnyway that the filter drops is noted all the same: generations end by
    // replayed reads, so a load whose every read is dropped (a hot set smaller than a generation,
    // no misses) would otherwise never end one, and its entries' counts would stop.
    if (slot == mark && ((bump(stripe.dropped) + 1) & (kNotedAnyway - 1)) != 0) return false;
    slot = mark;
    const std::uint32_t i = bump(stripe.reads);
    stripe.slots[i & (kReadSlots - 1)].store(const_cast<Node*>(n), std::memory_order_release);
    return (i & (kReadSlots - 1)) == kReadSlots - 1;
  }

  void drain_reads_locked() {
    for (auto& stripe : read_buffer_) drain_stripe_locked(stripe);
  }

  void drain_stripe_locked(ReadStripe& stripe) {
    // Take the buffered nodes first and prefetch their policy parts (a reader loaded only the
    // other end of the node), so the replays below overlap their cache misses instead of taking
    // them one after another.
    std::array<Node*, kReadSlots> nodes;
    std::size_t count = 0;
    for (auto& slot : stripe.slots) {
      // A load and a store, not an exchange: a read noted in between is lost, which a lossy
      // buffer allows; a pointer noted before the last epoch move is always cleared.
      Node* n = slot.load(std::memory_order_acquire);
      if (n == nullptr) continue;
      slot.store(nullptr, std::memory_order_relaxed);
      __builtin_prefetch(static_cast<detail::StoreHook*>(n), 1);
      nodes[count++] = n;
    }
    for (std::size_t i = 0; i < count; ++i) {
      Node* n = nodes[i];
      if (n->state != State::live) continue;
      policy_.access(n);
      if (++replayed_ >= generation_length_) {
        replayed_ = 0;
        // 0 is skipped: a filter slot no read has marked yet (zero) must match no mark.
        const std::uint16_t g = generation_.value.load(std::memory_order_relaxed);
        generation_.value.store(static_cast<std::uint16_t>(g == 0xFFFF ? 1 : g + 1),
                                std::memory_order_relaxed);
      }
    }
  }

  // ---- policy (all under policy_mutex_)
  // ------------------------------------------------------------

  void admit_locked(Node* n) {
    if (n->state == State::removed) {  // erased between its link and now
      retire(n);
      return;
    }
    // The steps that allocate come first and are undone if they throw, so an entry that could not
    // be admitted is still pending (drain_writes_locked retries it).
    calendar_add(n);
    victims_.clear();
    try {
      policy_.insert(n, victims_);
    } catch (...) {
      calendar_remove(n);
      throw;
    }
    n->state = State::live;
    for (detail::StoreHook* h : victims_) {
      Node* v = static_cast<Node*>(h);
      calendar_remove(v);
      v->state = State::removed;
      if (unlink_node(v)) evictions_.fetch_add(1, std::memory_order_relaxed);
      retire(v);
    }
  }

  /// Admits the entries in the write buffer. A slot is emptied only once its entry was admitted
  /// (no put can claim it meanwhile): if admitting one throws (out of memory) before that, the
  /// entry stays in its slot for the next holder, and the exception propagates.
  void drain_writes_locked() {
    if (write_buffer_.pending.load(std::memory_order_relaxed) <= 0) return;
    auto taken = [this](std::atomic<Node*>& slot) {
      slot.store(nullptr, std::memory_order_relaxed);
      write_buffer_.pending.fetch_sub(1, std::memory_order_relaxed);
    };
    for (auto& slot : write_buffer_.slots) {
      Node* n = slot.load(std::memory_order_acquire);
      if (n == nullptr) continue;
      try {
        admit_locked(n);
      } catch (...) {
        if (n->state == State::live) taken(slot);  // admitted; a victim's retirement threw
        throw;
      }
      taken(slot);
    }
  }

  /// Out of memory in a put before its entry was admitted: the entry is linked and pending, and
  /// nothing else would admit it (it would stay in the table, never evicted nor expired, and leak
  /// once erased). Hands it to the write buffer, whose next drain (this lock's unlock) retries it;
  /// if the buffer is full, or the entry was erased meanwhile, takes it out and retires it (if that
  /// allocation fails too, the entry leaks).
  void abandon_locked(Node* n) noexcept {
    if (n->state == State::live) return;
    if (n->state == State::pending && write_buffer_.push(n)) return;
    unlink_node(n);
    n->state = State::removed;
    try {
      retire(n);
    } catch (...) {
    }
  }

  /// n was unlinked by the caller: drop it from the policy.
  void release_locked(Node* n) {
    switch (n->state) {
      case State::live:
        policy_.remove(n);
        calendar_remove(n);
        n->state = State::removed;
        retire(n);
        break;
      case State::pending:
        n->state = State::removed;  // the put that linked it retires it
        break;
      case State::removed:
        break;  // an eviction got there first and retired it
    }
  }

  /// A reader filled its stripe: replays that stripe only (the other stripes' lines stay in their
  /// threads' caches; each thread replays its own), then expires and reclaims as maintain_locked.
  void maintain_after_reads_locked(TimePoint now) {
    drain_writes_locked();
    drain_stripe_locked(read_buffer_[detail::stripe_index()]);
    expire_locked(now);
    if (retired_.size() >= reclaim_at_) reclaim_locked();
  }

  /// Replays the read buffers, expires what is due, and frees retired memory once enough piled up
  /// (moving the epoch costs a membarrier, so it is batched).
  void maintain_locked(TimePoint now, bool reclaim_all = false) {
    drain_writes_locked();
    drain_reads_locked();
    expire_locked(now);
    if (retired_.size() >= reclaim_at_ || (reclaim_all && !retired_.empty())) reclaim_locked();
  }

  /// True when the oldest calendar bucket is wholly past.
  bool calendar_due(TimePoint now) const noexcept {
    const auto now_ns = now.time_since_epoch().count();
    return !calendar_.empty() && now_ns > 0 &&
           calendar_.begin()->first <= (static_cast<std::uint64_t>(now_ns) >> kTickShift);
  }

  void reclaim_locked() {
    const std::uint64_t safe = epochs().try_advance();
    drain_reads_locked();  // after the epoch check: buffered pointers to what we free are gone
    reclaim_up_to(safe);
  }

  void reclaim_up_to(std::uint64_t current) {
    // Retired in epoch order: free from the front.
    while (!retired_.empty() && retired_.front().epoch + 2 <= current) {
      free_retired(retired_.front());
      retired_.pop_front();
    }
    // If readers held the epoch back, try again only after another half batch, not on every put.
    reclaim_at_ = retired_.size() + reclaim_batch_ / 2;
  }

  void retire(Node* n) { retired_.push_back(Retired{epochs().current(), n, nullptr}); }
  void retire(Table* t) { retired_.push_back(Retired{epochs().current(), nullptr, t}); }

  // ---- expiry calendar (policy mutex)
  // -------------------------------------------------------------

  /// The bucket of an entry: every entry of bucket k expires before k << kTickShift.
  static std::uint64_t tick_of(const Stamps& s) noexcept {
    const auto ns = s.expires.time_since_epoch().count();
    return ns <= 0 ? 0 : (static_cast<std::uint64_t>(ns) >> kTickShift) + 1;
  }

  void calendar_add(Node* n) {
    Node*& head = calendar_[tick_of(n->stamps)];
    n->timer_prev = nullptr;
    n->timer_next = head;
    if (head != nullptr) head->timer_prev = n;
    head = n;
  }

  void calendar_remove(Node* n) {
    if (n->timer_next != nullptr) n->timer_next->timer_prev = n->timer_prev;
    if (n->timer_prev != nullptr) {
      n->timer_prev->timer_next = n->timer_next;
    } else {
      auto it = calendar_.find(tick_of(n->stamps));
      if (n->timer_next == nullptr) {
        calendar_.erase(it);
      } else {
        it->second = n->timer_next;
      }
    }
    n->timer_prev = n->timer_next = nullptr;
  }

  void expire_locked(TimePoint now) {
    const auto now_ns = now.time_since_epoch().count();
    if (now_ns <= 0) return;
    const std::uint64_t past = static_cast<std::uint64_t>(now_ns) >> kTickShift;
    while (!calendar_.empty() && calendar_.begin()->first <= past) {
      Node* n = calendar_.begin()->second;
      calendar_.erase(calendar_.begin());
      while (n != nullptr) {
        Node* next = n->timer_next;
        n->timer_prev = n->timer_next = nullptr;
        policy_.remove(n);
        n->state = State::removed;
        if (unlink_node(n)) expirations_.fetch_add(1, std::memory_order_relaxed);
        retire(n);
        n = next;
      }
    }
  }

  Options options_;
  detail::EpochDomain& epochs_ = detail::EpochDomain::global();
  // Added to key hashes in a thread's generation filter: distinct per store (an odd multiple of a
  // number no other store of the process had: a new store may reuse a destroyed one's address).
  const std::uint64_t filter_salt_ = next_id() * 0x9e3779b97f4a7c15ULL;
  // Replayed reads per generation (see record_read).
  const std::size_t generation_length_ =
      std::max<std::size_t>(1, options_.max_entries / kGenerationDivisor);
  // Slots of a reading thread's generation filter: twice the most keys a generation can replay.
  const std::size_t mark_slots_ =
      std::clamp<std::size_t>(std::bit_ceil(2 * generation_length_), kMinMarks, kMaxMarks);
  // Retired nodes that make maintenance move the epoch (a membarrier, ~1 us): 1/8 of the capacity,
  // within [16, 512].
  std::size_t reclaim_batch_ = std::clamp<std::size_t>(options_.max_entries / 8, 16, 512);
  std::array<Shard, kShards> shards_;
  std::array<ReadStripe, detail::kStripes> read_buffer_;
  /// The current generation (see record_read), on a line of its own: readers load it on every hit,
  /// the policy (under its mutex) writes it once per generation.
  struct alignas(detail::kCacheLine) Generation {
    std::atomic<std::uint16_t> value{1};
  } generation_;

  WriteBuffer write_buffer_;                 // see put
  mutable PolicyMutex policy_mutex_{*this};  // guards everything below
  detail::StorePolicy policy_;
  std::map<std::uint64_t, Node*> calendar_;
  std::vector<detail::StoreHook*> victims_;
  std::deque<Retired> retired_;              // in epoch order
  std::size_t reclaim_at_ = reclaim_batch_;  // retired_.size() that triggers a reclaim
  std::size_t replayed_ = 0;                 // reads replayed in this generation (see record_read)

  std::atomic<std::uint64_t> evictions_{0};
  std::atomic<std::uint64_t> expirations_{0};
  std::atomic<std::uint64_t> rejected_{0};

  std::mutex namespaces_mutex_;
  std::unordered_map<std::string, NamespaceInfo> namespaces_;
  // Each namespace's destroy function, by id, in chunks allocated as ids are handed out (written
  // under namespaces_mutex_ before the id is returned; an entry never changes after that). Read
  // without the lock, through destroyers_, so that a put() given an id not yet registered (misuse)
  // gets its std::invalid_argument rather than a data race.
  static constexpr std::size_t kDestroyChunks = kMaxNamespaces / kDestroyChunk + 1;
  std::array<std::unique_ptr<std::atomic<Destroy>[]>, kDestroyChunks> destroy_chunks_;
  std::array<std::atomic<const std::atomic<Destroy>*>, kDestroyChunks> destroyers_{};
};

}  // namespace larder
