// trace_replay.cpp: larder's hit ratio on recorded and synthetic request streams, beside exact LRU,
// ARC, LIRS (bench/reference_policies.hpp) and Belady's OPT (with bypass), all computed here, and
// Caffeine 2.6.2's published figures.
//
//   trace_replay [--traces DIR] [--only NAME[,NAME...]] [--driver both|store|policy]
//                [--window SHARE [--margin M]] [--no-traces] [--no-synthetic]
//
// DIR defaults to ../shared/traces next to the source tree; each NAME.trace.xz there is one key
// per line (decompressed by running `xz -dc`), and sizes.tsv names the cache sizes in entries.
//
// Two larder columns (driver `both`, the default). `store` replays the stream through the real
// larder::MemoryStore: a request is a find, and a miss is a put of the key, exactly as Cached does
// it, so the lossy read buffers, their batched replay and the store's W-TinyLFU
// (detail/store_policy.hpp) are all in the figure; the targets are judged on it. `policy` drives
// detail::StorePolicy directly, every access in order (the same policy code without the table and
// the buffers), and shows the window share, admission margin and sketch history (capacities of
// requests between agings) it ended with (window/m/h). --window SHARE drives the policy with a
// fixed window share and no adaptation (0.01 with the default --margin 0 is Caffeine 2.6's
// configuration); --margin M (-1, 0 or 1) fixes the admission margin with it.
//
// OPT with bypass: on a miss with a full cache, the entry (resident or the requested one) whose
// next request is furthest away is the one not kept; that is the best any policy can do, admission
// included. Computed with next-use indices and a lazy max-heap, O(n log n).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <larder/larder.hpp>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <queue>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "reference_policies.hpp"

#ifndef LARDER_SOURCE_DIR
#define LARDER_SOURCE_DIR "."
#endif

namespace {

using Stream = std::vector<std::uint32_t>;  // dense ids 0..distinct-1

struct Trace {
  std::string name;
  Stream ids;
  std::uint32_t distinct = 0;
};

// ---- input ----------------------------------------------------------------------------------

/// Renumbers raw keys densely in order of first appearance (a bijection: hit ratios unchanged).
class Densifier {
 public:
  std::uint32_t operator()(std::uint64_t key) {
    auto [it, fresh] = ids_.try_emplace(key, static_cast<std::uint32_t>(ids_.size()));
    return it->second;
  }
  std::uint32_t size() const { return static_cast<std::uint32_t>(ids_.size()); }

 private:
  std::unordered_map<std::uint64_t, std::uint32_t> ids_;
};

Trace read_trace(const std::string& dir, const std::string& name) {
  const std::string path = dir + "/" + name + ".trace.xz";
  if (!std::ifstream{path}) throw std::runtime_error("cannot read " + path);
  const std::string cmd = "xz -dc '" + path + "'";
  FILE* in = popen(cmd.c_str(), "r");
  if (in == nullptr) throw std::runtime_error("cannot run: " + cmd);
  Trace t{name, {}, 0};
  Densifier dense;
  std::vector<char> buf(1 << 20);
  std::uint64_t key = 0;
  bool in_number = false;
  for (;;) {
    const std::size_t n = std::fread(buf.data(), 1, buf.size(), in);
    if (n == 0) break;
    for (std::size_t i = 0; i < n; ++i) {
      const char c = buf[i];
      if (c >= '0' && c <= '9') {
        key = key * 10 + static_cast<std::uint64_t>(c - '0');
        in_number = true;
      } else if (in_number) {
        t.ids.push_back(dense(key));
        key = 0;
        in_number = false;
      }
    }
  }
  if (in_number) t.ids.push_back(dense(key));
  if (pclose(in) != 0) throw std::runtime_error("xz failed on " + path);
  t.distinct = dense.size();
  return t;
}

std::vector<std::pair<std::string, std::vector<std::size_t>>> read_sizes(const std::string& dir) {
  std::ifstream in{dir + "/sizes.tsv"};
  if (!in) throw std::runtime_error("cannot read " + dir + "/sizes.tsv");
  std::vector<std::pair<std::string, std::vector<std::size_t>>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    std::vector<std::size_t> sizes;
    std::stringstream list{line.substr(tab + 1)};
    std::string item;
    while (std::getline(list, item, ',')) sizes.push_back(std::stoull(item));
    out.emplace_back(line.substr(0, tab), sizes);
  }
  return out;
}

// ---- reference policies -----------------------------------------------------------------------

double lru_hits(const Trace& t, std::size_t capacity) {
  constexpr std::uint32_t kNil = ~std::uint32_t{0};
  std::vector<std::uint32_t> prev(t.distinct, kNil), next(t.distinct, kNil);
  std::vector<bool> in(t.distinct, false);
  std::uint32_t head = kNil, tail = kNil;  // head: most recent
  std::size_t size = 0, hits = 0;
  auto unlink = [&](std::uint32_t x) {
    if (prev[x] != kNil)
      next[prev[x]] = next[x];
    else
      head = next[x];
    if (next[x] != kNil)
      prev[next[x]] = prev[x];
    else
      tail = prev[x];
  };
  auto push_front = [&](std::uint32_t x) {
    prev[x] = kNil;
    next[x] = head;
    if (head != kNil) prev[head] = x;
    head = x;
    if (tail == kNil) tail = x;
  };
  for (const std::uint32_t x : t.ids) {
    if (in[x]) {
      ++hits;
      unlink(x);
    } else {
      in[x] = true;
      if (++size > capacity) {
        const std::uint32_t v = tail;
        unlink(v);
        in[v] = false;
        --size;
      }
    }
    push_front(x);
  }
  return static_cast<double>(hits) / static_cast<double>(t.ids.size());
}

/// next[i]: the index of the next request for the key of request i (n if none).
std::vector<std::uint32_t> next_uses(const Trace& t) {
  const auto n = static_cast<std::uint32_t>(t.ids.size());
  std::vector<std::uint32_t> next(n), last(t.distinct, n);
  for (std::uint32_t i = n; i-- > 0;) {
    next[i] = last[t.ids[i]];
    last[t.ids[i]] = i;
  }
  return next;
}

double opt_hits(const Trace& t, const std::vector<std::uint32_t>& next, std::size_t capacity) {
  const auto n = static_cast<std::uint32_t>(t.ids.size());
  std::vector<std::uint32_t> due(t.distinct, 0);  // the resident key's next request
  std::vector<bool> in(t.distinct, false);
  std::priority_queue<std::pair<std::uint32_t, std::uint32_t>> heap;  // (next request, key)
  std::size_t size = 0, hits = 0;
  auto top_live = [&] {
    while (!heap.empty() && (!in[heap.top().second] || due[heap.top().second] != heap.top().first))
      heap.pop();
  };
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t x = t.ids[i];
    if (in[x]) {
      ++hits;
    } else if (size < capacity) {
      in[x] = true;
      ++size;
    } else {
      top_live();
      if (heap.empty() || next[i] >= heap.top().first) continue;  // bypass: x is needed last
      in[heap.top().second] = false;
      heap.pop();
      in[x] = true;
    }
    due[x] = next[i];
    heap.emplace(next[i], x);
  }
  return static_cast<double>(hits) / static_cast<double>(n);
}

// ---- larder -------------------------------------------------------------------------------------

std::uint64_t key_hash(std::uint64_t k) {
  return larder::detail::mix64(k * 0x9e3779b97f4a7c15ULL + 1);  // as an int64 key part hashes
}

struct Replay {
  double hit_ratio = 0;
  double window = 0;     // the window's final share (policy driver only; -1 otherwise)
  int margin = 0;        // the final admission margin (policy driver only)
  unsigned history = 0;  // the sketch's final history, in capacities (policy driver only)
};

/// Through the real store, get-or-put as Cached does (no TTL pressure: entries live for a year).
Replay replay_store(const Trace& t, std::size_t capacity) {
  using Key = std::tuple<std::uint64_t>;
  larder::MemoryStore store{{.max_entries = capacity}};
  const std::uint32_t ns = store.namespace_id<Key, std::uint32_t>("trace_replay");
  const larder::TimePoint now{std::chrono::hours{24}};
  const larder::Stamps stamps{now, now + std::chrono::hours{24 * 365},
                              now + std::chrono::hours{24 * 365}};
  std::size_t hits = 0;
  for (const std::uint32_t x : t.ids) {
    const std::uint64_t k = x;
    const std::uint64_t h = key_hash(k);
    auto eq = [k](const Key& key) { return std::get<0>(key) == k; };
    if (store.find<Key, std::uint32_t>(ns, h, eq, now)) {
      ++hits;
    } else {
      store.put<Key, std::uint32_t>(ns, h, eq, Key{k}, std::make_shared<const std::uint32_t>(x),
                                    stamps);
    }
  }
  store.maintain(now);
  store.check_invariants();
  return {static_cast<double>(hits) / static_cast<double>(t.ids.size()), -1};
}

/// Straight into the policy the store uses.
double fixed_window = -1;  // --window
int fixed_margin = 0;      // --margin (with --window)

Replay replay_policy(const Trace& t, std::size_t capacity) {
  struct Node : larder::detail::StoreHook {
    std::uint64_t hash = 0;
    bool resident = false;
  };
  std::vector<Node> nodes(t.distinct);
  for (std::uint32_t i = 0; i < t.distinct; ++i) {
    nodes[i].hash = key_hash(i);
    nodes[i].weight = 1;
  }
  larder::detail::WTinyLfu::Config config{.max_entries = capacity, .max_weight = 0};
  if (fixed_window >= 0) {  // --window: a fixed share, no adaptation (1% = Caffeine 2.6)
    config.initial_window = fixed_window;
    config.admission_margin = fixed_margin;
    config.adaptive = false;
  }
  larder::detail::StorePolicy policy{config};
  std::vector<larder::detail::StoreHook*> victims;
  std::size_t hits = 0;
  for (const std::uint32_t x : t.ids) {
    Node& n = nodes[x];
    if (n.resident) {
      ++hits;
      policy.access(&n);
      continue;
    }
    n.resident = true;
    victims.clear();
    policy.insert(&n, victims);
    for (auto* v : victims) static_cast<Node*>(v)->resident = false;
  }
  policy.check_invariants();
  return {static_cast<double>(hits) / static_cast<double>(t.ids.size()),
          policy.policy().window_fraction(), policy.policy().admission_margin(),
          policy.policy().sketch().history()};
}

// ---- synthetic workloads ------------------------------------------------------------------------

class Zipf {
 public:
  Zipf(std::size_t keys, double skew) : cdf_(keys) {
    double sum = 0;
    for (std::size_t r = 0; r < keys; ++r) cdf_[r] = sum += 1.0 / std::pow(double(r + 1), skew);
    for (auto& c : cdf_) c /= sum;
  }
  std::size_t operator()(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>{0.0, 1.0}(rng);
    return std::min<std::size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin(),
                                 cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

/// Hot keys are scattered over the key space (rank r is key perm[r]), as in memory_bench.
std::vector<std::uint64_t> shuffled_keys(std::size_t n, std::uint64_t seed, std::uint64_t base) {
  std::vector<std::uint64_t> keys(n);
  std::iota(keys.begin(), keys.end(), base);
  std::mt19937_64 rng{seed};
  std::shuffle(keys.begin(), keys.end(), rng);
  return keys;
}

Trace finish(std::string name, const std::vector<std::uint64_t>& raw) {
  Trace t{std::move(name), {}, 0};
  Densifier dense;
  t.ids.reserve(raw.size());
  for (const auto k : raw) t.ids.push_back(dense(k));
  t.distinct = dense.size();
  return t;
}

constexpr std::size_t kSynthKeys = 100'000;
constexpr std::size_t kSynthEntries = 10'000;
constexpr std::size_t kSynthRequests = 2'000'000;

Trace zipf_trace(double skew, std::uint64_t seed) {
  const Zipf z{kSynthKeys, skew};
  const auto keys = shuffled_keys(kSynthKeys, seed + 1, 1'000'000);
  std::mt19937_64 rng{seed};
  std::vector<std::uint64_t> raw(kSynthRequests);
  for (auto& k : raw) k = keys[z(rng)];
  char name[32];
  std::snprintf(name, sizeof name, "zipf-%.2f", skew);
  return finish(name, raw);
}

/// Zipf(0.9) traffic; every 100,000 requests a scan of 20,000 keys never seen before.
Trace zipf_scan_trace(std::uint64_t seed) {
  const Zipf z{kSynthKeys, 0.9};
  const auto keys = shuffled_keys(kSynthKeys, seed + 1, 1'000'000);
  std::mt19937_64 rng{seed};
  std::vector<std::uint64_t> raw;
  std::uint64_t fresh = 1ULL << 40;
  while (raw.size() < kSynthRequests) {
    for (int i = 0; i < 100'000; ++i) raw.push_back(keys[z(rng)]);
    for (int i = 0; i < 20'000; ++i) raw.push_back(fresh++);
  }
  return finish("zipf-0.90+scans", raw);
}

/// Zipf(0.9) whose hot set moves: every 250,000 requests the ranks map to other keys.
Trace shifting_trace(std::uint64_t seed) {
  const Zipf z{kSynthKeys, 0.9};
  std::mt19937_64 rng{seed};
  std::vector<std::uint64_t> raw;
  for (std::uint64_t phase = 0; raw.size() < kSynthRequests; ++phase) {
    const auto keys = shuffled_keys(kSynthKeys, seed + 100 + phase, phase * kSynthKeys);
    for (int i = 0; i < 250'000; ++i) raw.push_back(keys[z(rng)]);
  }
  return finish("zipf-0.90-shifting", raw);
}

/// A loop over 12,000 keys (LRU gets nothing with 10,000 entries; OPT keeps most).
Trace loop_trace() {
  std::vector<std::uint64_t> raw(kSynthRequests);
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = i % 12'000;
  return finish("loop-12000", raw);
}

/// Recency-heavy: 20% of requests are new keys, the rest revisit one of the last 15,000 keys,
/// the nearer the likelier (a stack-distance model where LRU does well).
Trace recency_trace(std::uint64_t seed) {
  std::mt19937_64 rng{seed};
  std::vector<std::uint64_t> recent;
  std::vector<std::uint64_t> raw;
  raw.reserve(kSynthRequests);
  std::uint64_t fresh = 0;
  std::exponential_distribution<double> depth{1.0 / 3000.0};
  std::bernoulli_distribution is_new{0.2};
  while (raw.size() < kSynthRequests) {
    std::uint64_t k;
    if (recent.size() < 15'000 || is_new(rng)) {
      k = fresh++;
    } else {
      const auto d = std::min<std::size_t>(static_cast<std::size_t>(depth(rng)), 14'999);
      k = recent[recent.size() - 1 - d];
    }
    raw.push_back(k);
    recent.push_back(k);
    if (recent.size() > 60'000) recent.erase(recent.begin(), recent.begin() + 30'000);
  }
  return finish("recency-stack", raw);
}

// ---- output -------------------------------------------------------------------------------------

/// Caffeine 2.6.2's hit ratios (% hits) on the eight traces, as issue 6 gives them.
const std::map<std::pair<std::string, std::size_t>, double>& caffeine_262() {
  static const std::map<std::pair<std::string, std::size_t>, double> m{
      {{"multi2", 250}, 40.63},       {{"multi2", 500}, 49.84},
      {{"multi2", 1000}, 57.93},      {{"multi2", 2000}, 69.10},
      {{"sprite", 100}, 31.51},       {{"sprite", 200}, 49.61},
      {{"sprite", 400}, 68.67},       {{"loop", 250}, 23.54},
      {{"loop", 500}, 47.82},         {{"loop", 750}, 72.92},
      {{"oltp", 1000}, 35.59},        {{"oltp", 5000}, 52.61},
      {{"oltp", 15000}, 62.34},       {{"p3", 100000}, 40.82},
      {{"p3", 150000}, 49.55},        {{"p3", 300000}, 64.33},
      {{"w106", 25}, 32.74},          {{"w106", 250}, 60.26},
      {{"w106", 2500}, 79.28},        {{"w106", 25000}, 92.24},
      {{"web12", 100}, 30.74},        {{"web12", 500}, 57.82},
      {{"web12", 2000}, 73.67},       {{"scarab-recs", 1000}, 32.53},
      {{"scarab-recs", 5000}, 46.48}, {{"scarab-recs", 25000}, 59.90}};
  return m;
}

struct Options {
  std::string traces = LARDER_SOURCE_DIR "/../shared/traces";
  std::vector<std::string> only;
  bool store = true;   // replay through larder::MemoryStore
  bool policy = true;  // replay through detail::StorePolicy alone
  bool run_traces = true;
  bool run_synthetic = true;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--traces") {
      o.traces = value();
    } else if (a == "--only") {
      std::stringstream list{value()};
      std::string item;
      while (std::getline(list, item, ',')) o.only.push_back(item);
    } else if (a == "--driver") {
      const std::string d = value();
      if (d != "store" && d != "policy" && d != "both")
        throw std::invalid_argument("--driver store|policy|both");
      o.store = d != "policy";
      o.policy = d != "store";
    } else if (a == "--window") {
      fixed_window = std::stod(value());
      o.store = false;
      o.policy = true;
    } else if (a == "--margin") {
      fixed_margin = std::stoi(value());
      if (fixed_margin < -1 || fixed_margin > 1) throw std::invalid_argument("--margin -1|0|1");
    } else if (a == "--no-traces") {
      o.run_traces = false;
    } else if (a == "--no-synthetic") {
      o.run_synthetic = false;
    } else {
      throw std::invalid_argument(
          "usage: trace_replay [--traces DIR] [--only NAME,...] [--driver both|store|policy] "
          "[--window SHARE [--margin M]] [--no-traces] [--no-synthetic]");
    }
  }
  return o;
}

struct Row {
  double store = NAN, policy = NAN, lru = 0, arc = 0, lirs = 0, opt = 0, window = -1;
  int margin = 0;
  unsigned history = 0;
  /// The figure the targets are judged on: the store's, else the policy's.
  double larder() const { return std::isnan(store) ? policy : store; }
};

Row measure(const Trace& t, const std::vector<std::uint32_t>& next, std::size_t size,
            const Options& o) {
  Row r;
  if (o.store) r.store = 100 * replay_store(t, size).hit_ratio;
  if (o.policy) {
    const Replay p = replay_policy(t, size);
    r.policy = 100 * p.hit_ratio;
    r.window = p.window;
    r.margin = p.margin;
    r.history = p.history;
  }
  r.lru = 100 * lru_hits(t, size);
  r.arc = 100 * larder::bench::arc_hits(t.ids, t.distinct, size);
  r.lirs = 100 * larder::bench::lirs_hits(t.ids, t.distinct, size);
  r.opt = 100 * opt_hits(t, next, size);
  return r;
}

void print_percent(double v) {
  if (std::isnan(v)) {
    std::printf(" %8s", "-");
  } else {
    std::printf(" %7.2f%%", v);
  }
}

void print_window(double w, int margin, unsigned history) {
  if (w < 0) {
    std::printf(" %13s", "-");
  } else {
    std::printf(" %5.1f%% %+d %2u", 100 * w, margin, history);
  }
}

}  // namespace

int main(int argc, char** argv) try {
  const Options o = parse(argc, argv);
  const auto started = std::chrono::steady_clock::now();
  std::printf(
      "# larder trace replay. store: hit %% through larder::MemoryStore (find, put on a miss);\n"
      "# policy: detail::StorePolicy driven directly. window/m/h: the window share, admission\n"
      "# margin and sketch history (capacities of requests between agings) it ended with%s.\n"
      "# Targets are judged on the store column when it is run.\n",
      fixed_window >= 0 ? ", fixed by --window" : "");
  bool all_pass = true;
  if (o.run_traces) {
    const auto sizes = read_sizes(o.traces);
    const auto& caffeine = caffeine_262();
    std::printf("\n%-12s %7s %9s %8s %8s %8s %8s %8s %8s %8s %8s %8s %13s\n", "trace", "size",
                "requests", "store", "policy", "LRU", "ARC", "LIRS", "OPT", "Caffeine", "vs OPT",
                "vs best", "window/m/h");
    double gap_sum = 0;
    // Gaps to OPT of the references, and of the best reference picked per row after the fact.
    double lru_gap = 0, arc_gap = 0, lirs_gap = 0, caffeine_gap = 0, oracle_gap = 0,
           oracle_all_gap = 0;
    int rows = 0, bad_rows = 0, caffeine_rows = 0;
    for (const auto& [name, list] : sizes) {
      if (!o.only.empty() && std::find(o.only.begin(), o.only.end(), name) == o.only.end())
        continue;
      const Trace t = read_trace(o.traces, name);
      const auto next = next_uses(t);
      for (const std::size_t size : list) {
        const Row r = measure(t, next, size, o);
        const auto it = caffeine.find({name, size});
        const double caff = it == caffeine.end() ? NAN : it->second;
        const double best = std::isnan(caff) ? r.lru : std::max(r.lru, caff);
        const double vs_best = r.larder() - best;
        std::printf("%-12s %7zu %9zu", name.c_str(), size, t.ids.size());
        print_percent(r.store);
        print_percent(r.policy);
        print_percent(r.lru);
        print_percent(r.arc);
        print_percent(r.lirs);
        print_percent(r.opt);
        print_percent(caff);
        std::printf(" %+8.2f %+8.2f", r.larder() - r.opt, vs_best);
        lru_gap += r.opt - r.lru;
        arc_gap += r.opt - r.arc;
        lirs_gap += r.opt - r.lirs;
        if (!std::isnan(caff)) {
          caffeine_gap += r.opt - caff;
          ++caffeine_rows;
        }
        oracle_gap += r.opt - std::max({best, r.arc, r.lirs});
        oracle_all_gap += r.opt - std::max({best, r.arc, r.lirs, r.larder()});
        print_window(r.window, r.margin, r.history);
        std::printf("%s\n", vs_best < -1.0 ? "  << more than 1 point below best" : "");
        std::fflush(stdout);
        gap_sum += r.opt - r.larder();
        ++rows;
        if (vs_best < -1.0) ++bad_rows;
      }
    }
    if (rows > 0) {
      const double mean_gap = gap_sum / rows;
      std::printf("\n%d rows. Mean gap to OPT: %.2f points.\n", rows, mean_gap);
      std::printf("References' mean gap to OPT: LRU %.2f, ARC %.2f, LIRS %.2f", lru_gap / rows,
                  arc_gap / rows, lirs_gap / rows);
      if (caffeine_rows == rows) std::printf(", Caffeine 2.6.2 %.2f", caffeine_gap / rows);
      std::printf(
          ";\nthe best of LRU, ARC, LIRS and Caffeine picked per row after the fact: %.2f (and "
          "larder: %.2f).\n",
          oracle_gap / rows, oracle_all_gap / rows);
      const bool gap_ok = mean_gap <= 8.0;
      std::printf("%s  mean hit ratio at most 8 points below OPT (%.2f)\n",
                  gap_ok ? "PASS" : "FAIL", mean_gap);
      std::printf("%s  no row more than 1 point below max(LRU, Caffeine 2.6.2) (%d such rows)\n",
                  bad_rows == 0 ? "PASS" : "FAIL", bad_rows);
      all_pass = all_pass && gap_ok && bad_rows == 0;
    }
  }
  if (o.run_synthetic) {
    std::printf("\nsynthetic: %zu requests, %zu entries\n", kSynthRequests, kSynthEntries);
    std::printf("%-20s %9s %8s %8s %8s %8s %8s %8s %8s %8s %13s\n", "workload", "keys", "store",
                "policy", "LRU", "ARC", "LIRS", "OPT", "vs OPT", "vs LRU", "window/m/h");
    std::vector<Trace> synth;
    for (const double s : {0.6, 0.8, 0.99, 1.2}) synth.push_back(zipf_trace(s, 42));
    synth.push_back(zipf_scan_trace(43));
    synth.push_back(shifting_trace(44));
    synth.push_back(loop_trace());
    synth.push_back(recency_trace(45));
    double zipf99 = -1;
    for (const Trace& t : synth) {
      const auto next = next_uses(t);
      const Row r = measure(t, next, kSynthEntries, o);
      std::printf("%-20s %9u", t.name.c_str(), t.distinct);
      print_percent(r.store);
      print_percent(r.policy);
      print_percent(r.lru);
      print_percent(r.arc);
      print_percent(r.lirs);
      print_percent(r.opt);
      std::printf(" %+8.2f %+8.2f", r.larder() - r.opt, r.larder() - r.lru);
      print_window(r.window, r.margin, r.history);
      std::printf("\n");
      std::fflush(stdout);
      if (t.name == "zipf-0.99") zipf99 = r.larder() / 100;
    }
    const bool ok = zipf99 >= 0.79;
    std::printf("\n%s  Zipf(0.99), 100,000 keys, 10,000 entries: hit ratio %.4f (target >= 0.79)\n",
                ok ? "PASS" : "FAIL", zipf99);
    all_pass = all_pass && ok;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("\n%s (%.0f s)\n", all_pass ? "all targets met" : "some targets missed", secs);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "trace_replay: %s\n", e.what());
  return 2;
}
