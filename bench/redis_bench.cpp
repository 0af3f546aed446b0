// redis_bench: what a Redis hit through Cached costs over the bare round trip. Every benchmark
// talks to the same local redis-server, started here (tests/support/redis_server.hpp).
//   BM_Baseline_RawGet/N        hiredis GET of the very bytes Cached reads (N = value bytes)
//   BM_Redis_CachedHit_Blob/N   Cached<fn returning Blob> over RedisStore: GET + envelope + a
//                               pass-through codec (the transport overhead of larder)
//   BM_Redis_CachedHit_Json/N   the same with the default JSON codec (std::vector<int64_t>)
//   BM_Redis_GetMany/N          RedisStore::get_many of N keys (one MGET)
//   BM_Redis_GetSingles/N       N RedisStore::get calls
// After the run it prints CachedHit/RawGet and GetSingles/GetMany ratios (medians when run with
// --benchmark_repetitions). Target: CachedHit_Blob / RawGet <= 1.15.
#include <benchmark/benchmark.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <larder/larder.hpp>
#include <larder/redis_store.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/redis_server.hpp"

using namespace std::chrono_literals;

struct Blob {
  std::string bytes;
};

/// A pass-through codec: the value is its bytes.
template <>
struct larder::Codec<Blob> {
  static constexpr std::string_view name = "blob";
  static constexpr std::uint32_t version = 1;
  static std::string encode(const Blob& b) { return b.bytes; }
  static Blob decode(std::string_view bytes) { return Blob{std::string(bytes)}; }
};

namespace {

larder::testing::RedisServer* g_server = nullptr;

larder::RedisStore& store() {
  static larder::RedisStore s{{.port = g_server->port()}};
  return s;
}

Blob make_blob(std::int64_t n) { return Blob{std::string(static_cast<std::size_t>(n), 'b')}; }
std::vector<std::int64_t> make_ids(std::int64_t n) {
  // About n bytes of JSON: ids of 7 digits and a comma.
  return std::vector<std::int64_t>(static_cast<std::size_t>(n / 8 + 1), 1234567);
}

struct Raw {
  explicit Raw(int port) {
    ctx.reset(redisConnect("127.0.0.1", port));
    if (!ctx || ctx->err) throw std::runtime_error("raw connect failed");
  }
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, Free> ctx;
};

void BM_Baseline_RawGet(benchmark::State& state) {
  larder::Cached c{store(), "Bench", "blob", &make_blob, {.ttl = 1h}};
  c(state.range(0));  // the same key and payload the Cached benchmark reads
  const std::string key = c.key(state.range(0));
  Raw raw{g_server->port()};
  const char* argv[] = {"GET", key.c_str()};
  const std::size_t len[] = {3, key.size()};
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw.ctx.get(), 2, argv, len));
    if (r == nullptr || r->type != REDIS_REPLY_STRING) {
      state.SkipWithError("raw GET failed");
      break;
    }
    bytes = r->len;
    benchmark::DoNotOptimize(r->str);
    freeReplyObject(r);
  }
  state.counters["payload"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Baseline_RawGet)->Arg(64)->Arg(1024)->Arg(16384);

void BM_Redis_CachedHit_Blob(benchmark::State& state) {
  larder::Cached c{store(), "Bench", "blob", &make_blob, {.ttl = 1h}};
  c(state.range(0));
  for (auto _ : state) {
    auto r = c(state.range(0));
    if (r.source() != larder::Source::remote) {
      state.SkipWithError("not a Redis hit");
      break;
    }
    benchmark::DoNotOptimize(r->bytes.data());
  }
  state.counters["payload"] = static_cast<double>(store().get(c.key(state.range(0)))->size());
}
BENCHMARK(BM_Redis_CachedHit_Blob)->Arg(64)->Arg(1024)->Arg(16384);

void BM_Baseline_RawGet_Json(benchmark::State& state) {
  larder::Cached c{store(), "Bench", "ids", &make_ids, {.ttl = 1h}};
  c(state.range(0));
  const std::string key = c.key(state.range(0));
  Raw raw{g_server->port()};
  const char* argv[] = {"GET", key.c_str()};
  const std::size_t len[] = {3, key.size()};
  for (auto _ : state) {
    auto* r = static_cast<redisReply*>(redisCommandArgv(raw.ctx.get(), 2, argv, len));
    if (r == nullptr || r->type != REDIS_REPLY_STRING) {
      state.SkipWithError("raw GET failed");
      break;
    }
    benchmark::DoNotOptimize(r->str);
    freeReplyObject(r);
  }
}
BENCHMARK(BM_Baseline_RawGet_Json)->Arg(64)->Arg(1024);

void BM_Redis_CachedHit_Json(benchmark::State& state) {
  larder::Cached c{store(), "Bench", "ids", &make_ids, {.ttl = 1h}};
  c(state.range(0));
  for (auto _ : state) {
    auto r = c(state.range(0));
    benchmark::DoNotOptimize(r->data());
  }
}
BENCHMARK(BM_Redis_CachedHit_Json)->Arg(64)->Arg(1024);

std::vector<std::string> batch_keys(std::int64_t n) {
  std::vector<std::string> keys;
  for (std::int64_t i = 0; i < n; ++i) {
    keys.push_back("bench:batch:" + std::to_string(i));
    store().set(keys.back(), std::string(256, 'v'), 1h);
  }
  return keys;
}

void BM_Redis_GetMany(benchmark::State& state) {
  const auto keys = batch_keys(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(store().get_many(keys));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Redis_GetMany)->Arg(10)->Arg(100);

void BM_Redis_GetSingles(benchmark::State& state) {
  const auto keys = batch_keys(state.range(0));
  for (auto _ : state)
    for (const auto& k : keys) benchmark::DoNotOptimize(store().get(k));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Redis_GetSingles)->Arg(10)->Arg(100);

/// Prints as usual and remembers each benchmark's time per iteration (the median aggregate if
/// repetitions were asked for).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      std::string name = r.run_name.str();
      if (r.run_type == Run::RT_Aggregate) {
        if (r.aggregate_name != "median") continue;
        median_seen_[name] = true;
      } else if (median_seen_.count(name) != 0) {
        continue;
      }
      times_[name] = r.GetAdjustedRealTime();
    }
  }
  void ratio(const std::string& num, const std::string& den, const char* what) const {
    auto a = times_.find(num), b = times_.find(den);
    if (a == times_.end() || b == times_.end() || b->second <= 0) return;
    std::printf("%-44s %-32s %6.3fx\n", what, (num + " / " + den).c_str(), a->second / b->second);
  }

 private:
  std::map<std::string, double> times_;
  std::map<std::string, bool> median_seen_;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::unique_ptr<larder::testing::RedisServer> server;
  try {
    server = std::make_unique<larder::testing::RedisServer>();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_bench: %s\n", e.what());
    return 1;
  }
  g_server = server.get();
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\nratios (target for the Blob hit: <= 1.15x)\n");
  for (const char* n : {"64", "1024", "16384"})
    reporter.ratio(std::string("BM_Redis_CachedHit_Blob/") + n,
                   std::string("BM_Baseline_RawGet/") + n, "Cached Redis hit vs raw GET (blob)");
  for (const char* n : {"64", "1024"})
    reporter.ratio(std::string("BM_Redis_CachedHit_Json/") + n,
                   std::string("BM_Baseline_RawGet_Json/") + n,
                   "Cached Redis hit vs raw GET (json)");
  for (const char* n : {"10", "100"})
    reporter.ratio(std::string("BM_Redis_GetSingles/") + n, std::string("BM_Redis_GetMany/") + n,
                   "N single GETs vs one MGET");
  store().stats();
  g_server = nullptr;
  return 0;
}
