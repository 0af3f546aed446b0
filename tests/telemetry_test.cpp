// Telemetry: the verdict of assess() on real and constructed counters, the report, and the
// Prometheus text (format, escaping, bad prefixes).
#include <chrono>
#include <cstdint>
#include <larder/larder.hpp>
#include <larder/telemetry.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"

using namespace std::chrono_literals;
using K = larder::Verdict::Kind;

namespace {
larder::Stats stats(std::uint64_t hits, std::uint64_t misses, std::chrono::nanoseconds load_time,
                    std::uint64_t failures = 0) {
  larder::Stats s;
  s.hits = hits;
  s.misses = misses;
  s.loads = misses - failures;
  s.load_failures = failures;
  s.load_time = load_time;
  return s;
}
}  // namespace

TEST_CASE("assess: helping, not helping, too early, failing", "[telemetry]") {
  const auto helping = larder::assess(stats(900, 100, 100 * 5ms));
  CHECK(helping.kind == K::helping);
  CHECK(helping.reason.find("90.0%") != std::string::npos);
  CHECK(helping.reason.find("4.5 s") != std::string::npos);  // 900 hits x 5 ms saved

  const auto rare = larder::assess(stats(10, 990, 990 * 5ms));
  CHECK(rare.kind == K::not_helping);
  CHECK(rare.reason.find("1.0%") != std::string::npos);

  const auto cheap = larder::assess(stats(900, 100, 100 * 200ns));
  CHECK(cheap.kind == K::not_helping);
  CHECK(cheap.reason.find("200 ns") != std::string::npos);
  // Judged against the cost of a Redis hit instead, a 5 ms function still helps and a 50 µs one
  // does not.
  CHECK(larder::assess(stats(900, 100, 100 * 5ms), {.hit_cost = 100us}).kind == K::helping);
  CHECK(larder::assess(stats(900, 100, 100 * 50us), {.hit_cost = 100us}).kind == K::not_helping);

  CHECK(larder::assess(stats(5, 5, 5 * 1ms)).kind == K::too_early);
  CHECK(larder::assess(larder::Stats{}).kind == K::too_early);

  const auto throwing = larder::assess(stats(100, 100, 100 * 1ms, 50));
  CHECK(throwing.kind == K::failing);
  CHECK(throwing.reason.find("50 of 100 computations threw") != std::string::npos);

  auto down = stats(0, 500, 500 * 1ms);
  down.store_errors = 500;
  CHECK(larder::assess(down).kind == K::failing);
}

TEST_CASE("assess: a computation costing exactly a hit is not helping", "[telemetry]") {
  // "no more than a hit": a mean equal to hit_cost saves nothing; one nanosecond more helps.
  const auto equal = larder::assess(stats(900, 100, 100 * 1us));
  CHECK(equal.kind == K::not_helping);
  CHECK(equal.reason.find("no more than a hit (1 µs)") != std::string::npos);
  CHECK(larder::assess(stats(900, 100, 100 * 1001ns)).kind == K::helping);
  CHECK(larder::assess(stats(900, 100, 100 * 100us), {.hit_cost = 100us}).kind == K::not_helping);
  CHECK(larder::assess(stats(900, 100, 100 * 101us), {.hit_cost = 100us}).kind == K::helping);
}

TEST_CASE("assess: refreshes that always fail are failing, not too early", "[telemetry]") {
  // A function only a Warmer or Rehydrated computes calls refresh(): no call is counted (a
  // refresh is not one), only the failed computations. That used to read "too early" forever.
  larder::MemoryStore store;
  larder::Cached broken{store, "Book", "price", [](std::int64_t id) -> std::int64_t {
                          throw std::runtime_error("database down for " + std::to_string(id));
                        }};
  for (std::int64_t id = 0; id < 3; ++id) CHECK_THROWS_AS(broken.refresh(id), std::runtime_error);
  const larder::Stats s = broken.stats();
  CHECK(s.requests() == 0);
  CHECK(s.load_failures == 3);
  const auto v = larder::assess(s);
  CAPTURE(v.reason);
  CHECK(v.kind == K::failing);
  CHECK(v.reason.find("3 of 3 computations threw (3 were refreshes)") != std::string::npos);

  // Refreshes count beside the calls: 20 failures in 100 calls and 1000 good refreshes is 1.8%.
  larder::Stats busy;
  busy.hits = 99;
  busy.misses = 1;
  busy.loads = 1001;
  busy.load_failures = 20;
  busy.load_time = 1021 * 1ms;
  CHECK(larder::assess(busy).kind == K::failing);
  busy.load_failures = 5;  // 0.5%
  CHECK(larder::assess(busy).kind == K::helping);
  // A store failing only under refreshes is failing too.
  larder::Stats down;
  down.loads = 10;
  down.store_errors = 10;
  const auto store_down = larder::assess(down);
  CHECK(store_down.kind == K::failing);
  CHECK(store_down.reason.find("10 times in 0 calls and 10 refreshes") != std::string::npos);
}

TEST_CASE("assess: callers that got a failed computation's exception count as failures",
          "[telemetry]") {
  // One computation threw under a stampede of 999 waiters: 1000 of 10,000 calls failed.
  larder::Stats s;
  s.hits = 9000;
  s.misses = 1;
  s.load_failures = 1;
  s.coalesced_failures = 999;
  s.load_time = 1ms;
  CHECK(s.requests() == 10'000);
  CHECK(s.hit_ratio() == 0.9);
  const auto v = larder::assess(s);
  CAPTURE(v.reason);
  CHECK(v.kind == K::failing);
  CHECK(v.reason.find("1 of 1 computations threw (999 calls waiting for them failed with them)") !=
        std::string::npos);
  const std::vector<larder::NamedStats> all{{"f", s}};
  const std::string text = larder::prometheus_text(all);
  CHECK(text.find("larder_coalesced_failures_total{function=\"f\"} 999\n") != std::string::npos);
  CHECK(text.find("larder_hit_ratio{function=\"f\"} 0.9\n") != std::string::npos);
}

TEST_CASE("assess rejects out-of-range thresholds", "[telemetry]") {
  CHECK_THROWS_AS(larder::assess({}, {.min_requests = 0}), std::invalid_argument);
  CHECK_THROWS_AS(larder::assess({}, {.min_hit_ratio = 1.5}), std::invalid_argument);
  CHECK_THROWS_AS(larder::assess({}, {.hit_cost = -1ns}), std::invalid_argument);
  CHECK_THROWS_AS(larder::assess({}, {.max_error_ratio = -0.1}), std::invalid_argument);
}

TEST_CASE("Report and Prometheus text from real cached functions", "[telemetry]") {
  larder::MemoryStore store;
  larder::Cached slow{store, "Author", "top_book_ids", [](std::int64_t id) {
                        std::this_thread::sleep_for(2ms);
                        return std::vector<std::int64_t>{id, id + 1};
                      }};
  larder::Cached once{store, "Book", "price", [](std::int64_t id) { return id * 2; }};
  for (int round = 0; round < 50; ++round)
    for (std::int64_t id = 0; id < 4; ++id) (void)slow(id);  // 4 misses, 196 hits
  (void)once(1);

  const std::vector<larder::NamedStats> all{larder::named_stats(slow), larder::named_stats(once)};
  CHECK(all[0].function == "larder:v1:Author:top_book_ids");
  CHECK(all[0].stats.hits == 196);

  const std::string report = larder::effectiveness_report(all);
  CHECK(report.find("larder:v1:Author:top_book_ids  helping") != std::string::npos);
  CHECK(report.find("larder:v1:Book:price") != std::string::npos);
  CHECK(report.find("too early") != std::string::npos);

  const std::string text = larder::prometheus_text(all);
  CHECK(text.find("# TYPE larder_hits_total counter\n") != std::string::npos);
  CHECK(text.find("larder_hits_total{function=\"larder:v1:Author:top_book_ids\"} 196\n") !=
        std::string::npos);
  CHECK(text.find("larder_misses_total{function=\"larder:v1:Author:top_book_ids\"} 4\n") !=
        std::string::npos);
  CHECK(text.find("larder_helping{function=\"larder:v1:Author:top_book_ids\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("larder_helping{function=\"larder:v1:Book:price\"} 0\n") != std::string::npos);
  // Every line is a comment or `name{labels} value`.
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto end = text.find('\n', pos);
    REQUIRE(end != std::string::npos);
    const std::string line = text.substr(pos, end - pos);
    CHECK((line.starts_with("# HELP ") || line.starts_with("# TYPE ") ||
           (line.starts_with("larder_") && line.find("{function=\"") != std::string::npos &&
            line.find("\"} ") != std::string::npos)));
    pos = end + 1;
  }
}

TEST_CASE("Prometheus labels are escaped; bad metric prefixes rejected", "[telemetry]") {
  const std::vector<larder::NamedStats> odd{{"a\"b\\c\nd", {}}};
  const std::string text = larder::prometheus_text(odd, "svc_cache");
  CHECK(text.find("svc_cache_hits_total{function=\"a\\\"b\\\\c\\nd\"} 0\n") != std::string::npos);
  CHECK_THROWS_AS(larder::prometheus_text(odd, ""), std::invalid_argument);
  CHECK_THROWS_AS(larder::prometheus_text(odd, "9lives"), std::invalid_argument);
  CHECK_THROWS_AS(larder::prometheus_text(odd, "has-dash"), std::invalid_argument);
}

TEST_CASE("Prometheus text refuses two entries for one function", "[telemetry]") {
  // Duplicate series make Prometheus reject the whole scrape: refused here, naming the function.
  larder::MemoryStore store;
  larder::Cached price{store, "Book", "price", [](std::int64_t id) { return id * 2; }};
  (void)price(1);
  const std::vector<larder::NamedStats> twice{
      larder::named_stats(price), {"other", {}}, larder::named_stats(price)};
  CHECK_THROWS_WITH(larder::prometheus_text(twice),
                    Catch::Contains("\"larder:v1:Book:price\" is listed twice"));
  CHECK_THROWS_AS(larder::prometheus_text(twice), std::invalid_argument);
  // Distinct names, even ones that differ only in escaped characters, are distinct series.
  const std::vector<larder::NamedStats> distinct{{"a\"b", {}}, {"a\\\"b", {}}, {"a", {}}};
  CHECK_NOTHROW(larder::prometheus_text(distinct));
}

TEST_CASE("Durations in verdicts read as numbers and never in e-notation", "[telemetry]") {
  // 1500 hits x 1 s saved is 25 minutes, not "1.5e+03 s"; a mean just under 1 ms is "1 ms".
  const auto long_saved = larder::assess(stats(1500, 100, 100 * 1s));
  CHECK(long_saved.kind == K::helping);
  CAPTURE(long_saved.reason);
  CHECK(long_saved.reason.find("e+") == std::string::npos);
  CHECK(long_saved.reason.find("25 min") != std::string::npos);

  const auto just_under_ms = larder::assess(stats(900, 100, 100 * 999'999ns));
  CAPTURE(just_under_ms.reason);
  CHECK(just_under_ms.reason.find("e+") == std::string::npos);
  CHECK(just_under_ms.reason.find("mean 1 ms each") != std::string::npos);

  // A service saving thousands of hours: whole hours, not "5.56e+03 h".
  const auto years = larder::assess(stats(1'000'000'000, 1000, 1000 * 20ms));
  CAPTURE(years.reason);
  CHECK(years.reason.find("e+") == std::string::npos);
  CHECK(years.reason.find("5556 h") != std::string::npos);
}

TEST_CASE("Durations never round up to the end of their unit", "[telemetry]") {
  using larder::detail::human_duration;
  CHECK(human_duration(0ns) == "0 ns");
  CHECK(human_duration(999ns) == "999 ns");
  CHECK(human_duration(1000ns) == "1 µs");
  CHECK(human_duration(999'400ns) == "999 µs");
  CHECK(human_duration(999'700ns) == "1 ms");  // 999.7 µs
  CHECK(human_duration(999'970ns) == "1 ms");  // 999.97 µs
  CHECK(human_duration(999'400us) == "999 ms");
  CHECK(human_duration(999'970us) == "1 s");
  CHECK(human_duration(59'940ms) == "59.9 s");
  CHECK(human_duration(59'970ms) == "1 min");  // was "60 s"
  CHECK(human_duration(60s) == "1 min");
  CHECK(human_duration(90s) == "1.5 min");
  CHECK(human_duration(59min + 56s) == "59.9 min");
  CHECK(human_duration(59min + 58s) == "1 h");  // 59.97 min, was "60 min"
  CHECK(human_duration(999h + 24min) == "999 h");
  CHECK(human_duration(999h + 42min) == "1000 h");  // 999.7 h: whole hours from 1000
  CHECK(human_duration(5556h) == "5556 h");
}

TEST_CASE("time_saved saturates instead of overflowing", "[telemetry]") {
  // A 10 s function answered 10^9 times from the cache saved 10^19 ns: more than nanoseconds can
  // hold. The answer is the largest duration, not a signed overflow (a negative "saving").
  auto s = stats(1'000'000'000, 10, 10 * 10s);
  CHECK(s.mean_load_time() == 10s);
  CHECK(s.time_saved() == std::chrono::nanoseconds::max());
  CHECK(larder::assess(s).kind == K::helping);
  s.hits = std::uint64_t{1} << 63;  // more hits than an int64 holds
  CHECK(s.time_saved() == std::chrono::nanoseconds::max());
  s.hits = 3;
  CHECK(s.time_saved() == 30s);
  CHECK(larder::Stats{}.time_saved() == 0ns);
}
