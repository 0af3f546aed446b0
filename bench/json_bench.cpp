// json_bench: the API example's list and detail endpoints, serialize-per-request (query the object
// graph from SQLite, nlohmann::json, dump) against larder::JsonCache (cached texts joined or handed
// out), on the same generated database in the same run. Prints the ratios at the end.
//   json_bench [benchmark flags] [--foos N] [--big-foos N] [--big-kb N] [--db PATH]
// Defaults are the api_server's: 60 Foos, 3 of them near 2 MB of JSON. Run it pinned with
// bench/run_json_bench.sh.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <filesystem>
#include <larder/json_cache.hpp>
#include <larder/memory_store.hpp>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "db.hpp"

namespace {

struct Fixture {
  std::unique_ptr<api::Database> db;
  std::unique_ptr<api::FooRepository> repo;
  std::unique_ptr<larder::MemoryStore> store;
  std::unique_ptr<larder::JsonCache<api::Foo>> foos;
  std::int64_t big_id = 1;
  std::int64_t small_id = 1;
  std::size_t list_bytes = 0;
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

/// GET /foos without a cache: the list's object graphs queried and serialized on every request.
void BM_Json_List_SerializePerRequest(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    std::string body = api::list_uncached(*f.db);
    benchmark::DoNotOptimize(body.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.list_bytes));
}

/// GET /foos with JsonCache: the ID query, then the cached texts joined into one array.
void BM_Json_List_Cached(benchmark::State& state) {
  auto& f = fixture();
  for (auto _ : state) {
    const auto ids = f.db->foo_ids();
    auto list = f.foos->get_many(ids);
    benchmark::DoNotOptimize(list.text.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * f.list_bytes));
}

std::int64_t detail_id(const benchmark::State& state) {
  return state.range(0) == 0 ? fixture().big_id : fixture().small_id;
}

/// GET /foos/{id} without a cache.
void BM_Json_Detail_SerializePerRequest(benchmark::State& state) {
  auto& f = fixture();
  const auto id = detail_id(state);
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto body = api::detail_uncached(*f.db, id);
    bytes = body->size();
    benchmark::DoNotOptimize(body->data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.SetLabel(state.range(0) == 0 ? "big" : "small");
}

/// GET /foos/{id} with JsonCache, copying the text into a response body (the server itself hands
/// httplib the shared text without this copy, so this is an upper bound).
void BM_Json_Detail_Cached(benchmark::State& state) {
  auto& f = fixture();
  const auto id = detail_id(state);
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto text = f.foos->get(id);
    std::string body{text->view()};
    bytes = body.size();
    benchmark::DoNotOptimize(body.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.SetLabel(state.range(0) == 0 ? "big" : "small");
}

BENCHMARK(BM_Json_List_SerializePerRequest)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Json_List_Cached)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Json_Detail_SerializePerRequest)
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_Json_Detail_Cached)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();

/// The console reporter, also keeping each benchmark's real time per iteration (the median when
/// repetitions are aggregated, else the last run) for the ratios.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(::isatty(1) ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.error_occurred) continue;
      const std::string name = r.run_name.str();
      const double ns = r.GetAdjustedRealTime() * (r.time_unit == benchmark::kMillisecond   ? 1e6
                                                   : r.time_unit == benchmark::kMicrosecond ? 1e3
                                                                                            : 1.0);
      if (r.run_type == Run::RT_Aggregate) {
        if (r.aggregate_name == "median") median_[name] = ns;
      } else {
        last_[name] = ns;
      }
    }
  }
  double time(const std::string& name) const {
    if (auto it = median_.find(name); it != median_.end()) return it->second;
    if (auto it = last_.find(name); it != last_.end()) return it->second;
    return 0;
  }

 private:
  std::map<std::string, double> median_, last_;
};

int flag_value(std::string_view v) {
  int out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size() || out < 0) {
    std::fprintf(stderr, "json_bench: bad number '%.*s'\n", static_cast<int>(v.size()), v.data());
    std::exit(2);
  }
  return out;
}

std::string human(double ns) {
  char buf[64];
  if (ns >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.2f ms", ns / 1e6);
  } else if (ns >= 1e3) {
    std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f ns", ns);
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  api::DataSize size;  // the api_server's defaults
  std::string path;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "json_bench: unknown flag %s\n", argv[i]);
      return 2;
    }
    const std::string_view v = argv[++i];
    if (a == "--foos") {
      size.foos = flag_value(v);
    } else if (a == "--big-foos") {
      size.big_foos = flag_value(v);
    } else if (a == "--big-kb") {
      size.big_kb = flag_value(v);
    } else if (a == "--db") {
      path = v;
    } else {
      std::fprintf(stderr, "json_bench: unknown flag %s\n", argv[i - 1]);
      return 2;
    }
  }
  if (size.foos < 1 || size.big_foos > size.foos) {
    std::fprintf(stderr, "json_bench: need --foos >= 1 and --big-foos <= --foos\n");
    return 2;
  }
  const bool temp = path.empty();
  if (temp)
    path = (std::filesystem::temp_directory_path() /
            ("larder-json-bench-" + std::to_string(::getpid()) + ".db"))
               .string();

  auto& f = fixture();
  f.db = std::make_unique<api::Database>(path);
  f.db->generate(size);
  f.repo = std::make_unique<api::FooRepository>(*f.db);
  f.store = std::make_unique<larder::MemoryStore>(
      larder::MemoryStoreOptions{.max_entries = 1'000'000, .max_weight = std::uint64_t{4} << 30});
  f.foos = std::make_unique<larder::JsonCache<api::Foo>>(*f.store, "Foo", *f.repo);
  f.big_id = size.big_foos > 0 ? 1 : size.foos;
  f.small_id = size.foos;
  // Warm the cache, and check once that it serves what serializing gives.
  const auto warm = f.foos->get_many(f.db->foo_ids());
  const std::string fresh = api::list_uncached(*f.db);
  if (warm.text != fresh) {
    std::fprintf(stderr, "json_bench: the cached list differs from a fresh serialization\n");
    return 1;
  }
  f.list_bytes = fresh.size();
  std::fprintf(stderr,
               "data: %d Foos (%d of ~%d KB); list %.2f MB; detail big %zu bytes, small %zu "
               "bytes\n",
               size.foos, size.big_foos, size.big_kb, static_cast<double>(f.list_bytes) / 1e6,
               f.foos->get(f.big_id)->size(), f.foos->get(f.small_id)->size());

  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();

  std::printf("\nratios (serialize-per-request time / cached time, same data, same run):\n");
  auto ratio = [&](const char* what, const std::string& slow, const std::string& fast) {
    const double s = reporter.time(slow), c = reporter.time(fast);
    if (s <= 0 || c <= 0) return;
    std::printf("  %-22s %12s / %10s = %8.0fx\n", what, human(s).c_str(), human(c).c_str(), s / c);
  };
  ratio("list (GET /foos)", "BM_Json_List_SerializePerRequest/real_time",
        "BM_Json_List_Cached/real_time");
  ratio("detail, big Foo", "BM_Json_Detail_SerializePerRequest/0/real_time",
        "BM_Json_Detail_Cached/0/real_time");
  ratio("detail, small Foo", "BM_Json_Detail_SerializePerRequest/1/real_time",
        "BM_Json_Detail_Cached/1/real_time");

  f.foos.reset();
  f.db.reset();
  if (temp) {
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix, ec);
  }
  return 0;
}
