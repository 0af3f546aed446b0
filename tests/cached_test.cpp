// Cached: hits, freshness and TTL on a fake clock, single-flight, failures, invalidate/refresh,
// stats and the result handle.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <future>
#include <larder/larder.hpp>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "support/catch.hpp"
#include "support/counting_fn.hpp"
#include "support/gate.hpp"
#include "support/manual_executor.hpp"

using namespace std::chrono_literals;
using larder::testing::CountingFn;
using larder::testing::ManualExecutor;

namespace {

struct RefusingExecutor final : larder::Executor {
  void submit(std::function<void()>) override { throw std::runtime_error("queue full"); }
};

auto wrap(CountingFn& fn) {
  return [&fn](std::int64_t id) { return fn(id); };
}

}  // namespace

TEST_CASE("A second call hits and does not compute", "[cached]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};

  auto first = c(4);
  CHECK(*first == 40);
  CHECK(first.source() == larder::Source::computed);
  CHECK_FALSE(first.stale());
  auto second = c(4);
  CHECK(*second == 40);
  CHECK(second.source() == larder::Source::memory);
  // An int64 is small and trivially copyable: the handle holds it by value (no reference count on
  // a hit), and shared() makes a shared copy on demand.
  CHECK(*second.shared() == *first.shared());
  CHECK(second.shared() == second.shared());
  CHECK(fn.calls == 1);
  std::int64_t plain = c(4);  // converts to the value
  CHECK(plain == 40);
  CHECK(c(5).value() == 50);
  CHECK(fn.calls == 2);
}

TEST_CASE("A hit on a large value shares the stored object", "[cached]") {
  larder::MemoryStore store;
  int calls = 0;
  larder::Cached c{store, "T", "vec", [&calls](std::int64_t id) {
                     ++calls;
                     return std::vector<std::int64_t>(8, id);
                   }};
  auto first = c(3);
  auto second = c(3);
  CHECK(second.source() == larder::Source::memory);
  CHECK(second.shared() == first.shared());  // the same object: nothing copied
  std::vector<std::int64_t> copy = c(3);     // converts where the caller asks for a value
  CHECK(copy == *first);
  CHECK(calls == 1);
}

TEST_CASE("The hard TTL removes the entry", "[cached][ttl]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 10min, .clock = &clock}};
  c(1);
  clock.advance(9min);
  auto r = c(1);
  CHECK(r.source() == larder::Source::memory);
  CHECK(r.age() == 9min);
  clock.advance(1min);
  CHECK(c(1).source() == larder::Source::computed);
  CHECK(fn.calls == 2);
  CHECK(store.expirations() == 1);
}

TEST_CASE("A stale entry is served while one caller recomputes", "[cached][freshness]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 24h, .fresh_for = 1h, .clock = &clock}};
  c(1);
  clock.advance(2h);
  fn.offset = 1;
  fn.close_gate();
  // The first caller that finds it stale recomputes (blocked at the gate)...
  auto refresher = std::async(std::launch::async, [&] { return c(1); });
  fn.wait_inside(1);
  // ...while every other caller is served the stale value at once.
  for (int i = 0; i < 5; ++i) {
    auto r = c(1);
    CHECK(*r == 10);
    CHECK(r.stale());
    CHECK(r.age() == 2h);
  }
  fn.open_gate();
  auto fresh = refresher.get();
  CHECK(*fresh == 11);
  CHECK_FALSE(fresh.stale());
  CHECK(fresh.source() == larder::Source::computed);
  CHECK(*c(1) == 11);
  CHECK(fn.calls == 2);
  const auto s = c.stats();
  CHECK(s.stale_serves == 5);
  CHECK(s.loads == 2);
}

TEST_CASE("A background refresh serves the stale value to every caller", "[cached][freshness]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  ManualExecutor executor;
  CountingFn fn;
  larder::Cached c{store,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 24h,
                    .fresh_for = 1h,
                    .refresh = larder::Refresh::background,
                    .clock = &clock,
                    .executor = &executor}};
  c(1);
  clock.advance(2h);
  fn.offset = 5;
  CHECK(*c(1) == 10);  // stale, refresh scheduled
  CHECK(*c(1) == 10);  // stale, refresh already scheduled: not scheduled twice
  CHECK(executor.run_all() == 1);
  auto r = c(1);
  CHECK(*r == 15);
  CHECK_FALSE(r.stale());
  CHECK(fn.calls == 2);
  CHECK(c.stats().stale_serves == 2);
}

TEST_CASE("An executor that refuses the refresh makes the caller recompute", "[cached]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  RefusingExecutor executor;
  CountingFn fn;
  larder::Cached c{store,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 24h,
                    .fresh_for = 1h,
                    .refresh = larder::Refresh::background,
                    .clock = &clock,
                    .executor = &executor}};
  c(1);
  clock.advance(2h);
  fn.offset = 5;
  CHECK(*c(1) == 15);
  CHECK(fn.calls == 2);
}

TEST_CASE("An executor that breaks its contract neither refreshes twice nor hangs ~Cached",
          "[cached]") {
  // Executor's contract: a throw from submit() means the task was not taken. These break it.
  struct RunsThenThrows final : larder::Executor {
    void submit(std::function<void()> task) override {
      task();
      throw std::runtime_error("ran it, then failed");
    }
  };
  struct KeepsThenThrows final : larder::Executor {
    std::vector<std::function<void()>> kept;
    void submit(std::function<void()> task) override {
      kept.push_back(std::move(task));
      throw std::runtime_error("kept it, then failed");
    }
  };
  struct Drops final : larder::Executor {
    int dropped = 0;
    void submit(std::function<void()>) override { ++dropped; }  // destroyed, never run
  };
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  // A Cached whose entry for 1 (10) is stale, and whose next computation gives 15.
  auto stale_cached = [&](larder::Executor& executor) {
    auto c = std::make_unique<larder::Cached<decltype(wrap(fn))>>(
        store, "T", "f", wrap(fn),
        larder::Options{.ttl = 24h,
                        .fresh_for = 1h,
                        .refresh = larder::Refresh::background,
                        .clock = &clock,
                        .executor = &executor});
    (*c)(1);
    clock.advance(2h);
    fn.offset = 5;
    return c;
  };

  SECTION("it ran the task before throwing: that was the refresh, the caller is served stale") {
    RunsThenThrows executor;
    auto c = stale_cached(executor);
    auto r = (*c)(1);
    CHECK(*r == 10);
    CHECK(r.stale());
    CHECK(fn.calls == 2);  // once by the task, not again by the caller
    CHECK(*(*c)(1) == 15);
    CHECK(c->stats().stale_serves == 1);
    c.reset();  // returns: the refresh is not counted as pending twice (nor as never ended)
  }
  SECTION("it kept the task before throwing: the caller refreshes, the kept task does nothing") {
    KeepsThenThrows executor;
    auto c = stale_cached(executor);
    auto r = (*c)(1);
    CHECK(*r == 15);
    CHECK_FALSE(r.stale());
    REQUIRE(executor.kept.size() == 1);
    fn.offset = 7;
    executor.kept.front()();
    CHECK(fn.calls == 2);
    CHECK(*(*c)(1) == 15);
    executor.kept.clear();
    c.reset();  // returns once the executor let go of the task
  }
  SECTION("it dropped the task: the flight ends and ~Cached does not wait for it") {
    Drops executor;
    auto c = stale_cached(executor);
    CHECK((*c)(1).stale());
    CHECK(executor.dropped == 1);
    CHECK((*c)(1).stale());  // the key is not stuck behind the dropped refresh: another is queued
    CHECK(executor.dropped == 2);
    CHECK(fn.calls == 1);
    c.reset();
  }
}

TEST_CASE("The shared background pool refreshes and the destructor waits for it", "[cached]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  {
    larder::Cached c{
        store,
        "T",
        "f",
        wrap(fn),
        {.ttl = 24h, .fresh_for = 1h, .refresh = larder::Refresh::background, .clock = &clock}};
    c(1);
    clock.advance(2h);
    CHECK(c(1).stale());
  }  // ~Cached waits for the refresh
  CHECK(fn.calls == 2);
}

TEST_CASE("Single-flight: 64 threads on a cold key compute once", "[cached][concurrency]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h}};
  constexpr int kThreads = 64;
  fn.close_gate();
  std::vector<std::future<larder::Result<std::int64_t>>> results;
  for (int i = 0; i < kThreads; ++i)
    results.push_back(std::async(std::launch::async, [&] { return c(9); }));
  fn.wait_inside(1);
  while (c.stats().waiting < kThreads - 1) std::this_thread::yield();  // all joined the flight
  fn.open_gate();
  int computed = 0;
  for (auto& f : results) {
    auto r = f.get();
    CHECK(*r == 90);
    if (r.source() == larder::Source::computed) ++computed;
  }
  CHECK(fn.calls == 1);
  CHECK(computed == 1);
  const auto s = c.stats();
  CHECK(s.loads == 1);
  CHECK(s.misses == 1);
  CHECK(s.coalesced == kThreads - 1);
  CHECK(s.waiting == 0);
  // Every call counted once; the 63 that waited were spared a computation.
  CHECK(s.requests() == kThreads);
  CHECK(s.answered() == kThreads - 1);
  CHECK(s.hit_ratio() == static_cast<double>(kThreads - 1) / kThreads);
}

TEST_CASE("Single-flight table: flights of many keys are joined and removed by their key",
          "[cached][concurrency]") {
  // The table is sharded by key: every operation on a key must reach the same shard.
  larder::detail::SingleFlight<int> flights;
  constexpr std::size_t kKeys = 200;
  std::vector<larder::detail::SingleFlight<int>::Ticket> led;
  for (std::size_t i = 0; i < kKeys; ++i) {
    auto ticket = flights.join("k:" + std::to_string(i));
    REQUIRE(ticket.leader);
    led.push_back(std::move(ticket));  // a Leader moves without ending its flight
  }
  CHECK(flights.in_flight() == kKeys);
  for (std::size_t i = 0; i < kKeys; ++i) {
    const std::string key = "k:" + std::to_string(i);
    auto again = flights.join(key);
    CHECK_FALSE(again.leader);
    CHECK(again.flight == led[i].flight);
    CHECK_FALSE(flights.try_lead(key));
    CHECK(led[i].leader.pending());
  }
  for (std::size_t i = 0; i < kKeys; i += 2)
    led[i].leader.complete(std::make_shared<const int>(static_cast<int>(i)), {});
  CHECK(flights.in_flight() == kKeys / 2);
  for (std::size_t i = 1; i < kKeys; i += 2)
    led[i].leader.fail(std::make_exception_ptr(std::runtime_error("x")));
  CHECK(flights.in_flight() == 0);
  CHECK(*led[4].flight->value == 4);
  CHECK(led[5].flight->error != nullptr);
  CHECK_FALSE(led[4].leader.pending());
  // A finished key starts a new flight.
  CHECK(flights.join("k:4").leader);
}

TEST_CASE(
    "Single-flight table: a Leader moved, assigned over, dropped or ended twice ends its "
    "flight once",
    "[cached][concurrency]") {
  using Flights = larder::detail::SingleFlight<int>;
  Flights flights;
  auto a = flights.join("a");
  Flights::Leader moved{std::move(a.leader)};
  CHECK_FALSE(a.leader);  // the moved-from Leader leads nothing, and its destructor does nothing
  CHECK(moved.pending());
  CHECK(flights.in_flight() == 1);

  // Assigning over a pending Leader abandons its flight: its waiters wake with an error.
  auto b = flights.join("b");
  auto b_waiter = flights.join("b");
  REQUIRE_FALSE(b_waiter.leader);
  b.leader = std::move(moved);
  CHECK(b_waiter.flight->done);
  CHECK(b_waiter.flight->error != nullptr);
  CHECK(flights.in_flight() == 1);  // "a", now led by b.leader

  auto a_waiter = flights.join("a");
  REQUIRE_FALSE(a_waiter.leader);
  b.leader.complete(std::make_shared<const int>(7), {});
  CHECK(*a_waiter.flight->value == 7);
  CHECK(flights.in_flight() == 0);

  // Ending a flight twice, or through a moved-from Leader, does nothing.
  auto a_again = flights.join("a");  // a new flight of "a"
  REQUIRE(a_again.leader);
  b.leader.complete(std::make_shared<const int>(8), {});
  a.leader.fail(std::make_exception_ptr(std::runtime_error("x")));
  CHECK(*a_waiter.flight->value == 7);
  CHECK_FALSE(a_again.flight->done);
  CHECK(flights.in_flight() == 1);
  a_again.leader.complete(std::make_shared<const int>(9), {});
  CHECK(flights.in_flight() == 0);

  // A Leader dropped while pending fails its flight, so the next caller leads a new one.
  {
    auto c = flights.try_lead("c");
    REQUIRE(c);
  }
  CHECK(flights.in_flight() == 0);
  CHECK(flights.try_lead("c"));
}

TEST_CASE(
    "Single-flight keys a computation as the memory tier keys its entry: -0.0 and 0.0 "
    "apart, every NaN together",
    "[cached][concurrency]") {
  // Flights are keyed by the call's typed key and hash, not by its rendered string: two calls
  // share a computation exactly when they would share an entry.
  larder::MemoryStore store;
  larder::testing::Gate gate;
  std::atomic<int> calls{0};
  larder::Cached c{store, "T", "f", [&](std::int64_t id, double x) {
                     ++calls;
                     gate.pass();
                     return id + (std::signbit(x) ? 100 : 0);
                   }};
  const auto wait_for_calls = [&](int n) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (calls.load() < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    return calls.load();
  };

  gate.close();
  auto zero = std::async(std::launch::async, [&] { return c(1, 0.0); });
  gate.wait_inside(1);
  auto negative_zero = std::async(std::launch::async, [&] { return c(1, -0.0); });
  CHECK(wait_for_calls(2) == 2);  // its own computation, not a wait on 0.0's
  gate.open();
  CHECK(*zero.get() == 1);
  CHECK(*negative_zero.get() == 101);
  CHECK(c.stats().coalesced == 0);

  gate.close();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto first = std::async(std::launch::async, [&] { return c(2, nan); });
  gate.wait_inside(1);
  auto other = std::async(std::launch::async, [&] { return c(2, -nan); });  // another NaN
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.stats().waiting < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  CHECK(c.stats().waiting == 1);  // it joined the computation under way
  gate.open();
  CHECK(*first.get() == 2);
  const auto joined = other.get();
  CHECK(*joined == 2);
  CHECK(joined.source() == larder::Source::coalesced);
  CHECK(calls.load() == 3);
}

TEST_CASE("Error reports and refusals of a memory-only Cached carry the call's rendered key",
          "[cached][failure]") {
  // Without a byte store a miss renders no key string; one is rendered when a report or an error
  // message needs it, and it is the key key() gives, its over-long tail hashed.
  larder::FakeClock clock;
  larder::MemoryStore store;
  ManualExecutor executor;
  std::vector<std::pair<larder::ErrorEvent::Kind, std::string>> events;
  bool fail = false;
  larder::testing::Gate gate;
  larder::Cached c{store,
                   "T",
                   "f",
                   [&](std::int64_t id, const std::string& p) {
                     gate.pass();
                     if (fail) throw std::runtime_error("database down");
                     return id + static_cast<std::int64_t>(p.size());
                   },
                   {.ttl = 24h,
                    .fresh_for = 1h,
                    .stale_if_error = 2h,
                    .refresh = larder::Refresh::background,
                    .on_cold = larder::OnCold::fail_fast,
                    .clock = &clock,
                    .executor = &executor,
                    .on_error = [&](const larder::ErrorEvent& e) {
                      events.emplace_back(e.kind, std::string{e.key});
                    }}};
  const std::string long_param(300, 'p');
  const std::string key = c.key(7, long_param);
  CHECK(key.find('#') != std::string::npos);  // hashed: longer than max_key_length
  CHECK(*c(7, long_param) == 307);
  clock.advance(90min);
  fail = true;
  CHECK(*c(7, long_param) == 307);  // stale; the refresh is queued
  CHECK(executor.run_all() == 1);   // and fails: stale_if_error keeps the stale value
  REQUIRE(events.size() == 1);
  CHECK(events[0].first == larder::ErrorEvent::Kind::stale_served_on_error);
  CHECK(events[0].second == key);

  clock.advance(3h);  // past stale_if_error: the background refresh's failure is reported
  CHECK(*c(7, long_param) == 307);
  CHECK(executor.run_all() == 1);
  REQUIRE(events.size() == 2);
  CHECK(events[1].first == larder::ErrorEvent::Kind::background_refresh);
  CHECK(events[1].second == key);

  fail = false;
  gate.close();
  auto leader = std::async(std::launch::async, [&] { return c(8, long_param); });
  gate.wait_inside(1);
  CHECK_THROWS_WITH(c(8, long_param), Catch::Contains(c.key(8, long_param)));
  gate.open();
  CHECK(*leader.get() == 308);
}

TEST_CASE("A memory-only report renders the key of every kind of part as key() does",
          "[cached][failure][key]") {
  // The report's key is rendered from the stored (owning) parts, key() from the live ones.
  enum class Color : std::uint8_t { red, blue };
  larder::FakeClock clock;
  larder::MemoryStore store;
  ManualExecutor executor;
  std::vector<std::string> reported;
  bool fail = false;
  using Lists = std::vector<std::vector<int>>;
  larder::Cached c{
      store,
      "T",
      "parts",
      [&](std::int64_t id, double x, char ch, bool b, Color color, std::string_view s,
          const Lists& lists) {
        if (fail) throw std::runtime_error("database down");
        return id + static_cast<std::int64_t>(lists.size() + s.size()) + (std::isnan(x) ? 1 : 0) +
               ch + b + static_cast<int>(color);
      },
      {.ttl = 24h,
       .fresh_for = 1h,
       .refresh = larder::Refresh::background,
       .clock = &clock,
       .executor = &executor,
       .on_error = [&](const larder::ErrorEvent& e) { reported.emplace_back(e.key); }}};
  const Lists lists{{1, 2}, {}, {-3}};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto expect_reported_key = [&](auto... args) {
    fail = false;
    (void)c(args...);
    clock.advance(2h);  // stale: served, and its refresh queued
    fail = true;
    (void)c(args...);
    reported.clear();
    CHECK(executor.run_all() == 1);
    REQUIRE(reported.size() == 1);
    CHECK(reported[0] == c.key(args...));
  };
  expect_reported_key(std::int64_t{1}, nan, ':', true, Color::blue, std::string_view{"a:b,c"},
                      lists);
  expect_reported_key(std::int64_t{-2}, -0.0, '\0', false, Color::red, std::string_view{}, Lists{});
  expect_reported_key(std::int64_t{3}, 0.1, 'x', true, Color::red, std::string_view{"[]"},
                      Lists{{}, {}});
}

TEST_CASE("An exception reaches every waiter and nothing is cached", "[cached][failure]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h}};
  fn.fail = true;
  fn.close_gate();
  std::vector<std::future<larder::Result<std::int64_t>>> results;
  results.push_back(std::async(std::launch::async, [&] { return c(3); }));
  fn.wait_inside(1);
  for (int i = 0; i < 8; ++i)
    results.push_back(std::async(std::launch::async, [&] { return c(3); }));
  while (c.stats().waiting < 8) std::this_thread::yield();
  fn.open_gate();
  for (auto& f : results) CHECK_THROWS_WITH(f.get(), "database down");
  CHECK(fn.calls == 1);  // the waiters shared the one failed computation...
  const auto s = c.stats();
  CHECK(s.load_failures == 1);
  // ...and were not answered: each counted once, as a failed wait, not as coalesced.
  CHECK(s.misses == 1);
  CHECK(s.coalesced == 0);
  CHECK(s.coalesced_failures == 8);
  CHECK(s.requests() == 9);
  CHECK(s.answered() == 0);
  CHECK(s.hit_ratio() == 0.0);
  fn.fail = false;
  CHECK(*c(3) == 30);  // ...and the next call tries again
  CHECK(fn.calls == 2);
}

TEST_CASE("fail_fast refuses to wait for another caller's computation", "[cached][cold]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .on_cold = larder::OnCold::fail_fast}};
  fn.close_gate();
  auto leader = std::async(std::launch::async, [&] { return c(2); });
  fn.wait_inside(1);
  CHECK_THROWS_AS(c(2), larder::ColdCacheError);
  CHECK(c.stats().cold_rejections == 1);
  fn.open_gate();
  CHECK(*leader.get() == 20);
  CHECK(*c(2) == 20);  // warm now: no error
}

TEST_CASE("A waiter gives up after cold_wait with ColdCacheError", "[cached][cold]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .cold_wait = 30ms}};
  fn.close_gate();
  auto leader = std::async(std::launch::async, [&] { return c(2); });
  fn.wait_inside(1);
  CHECK_THROWS_WITH(c(2), Catch::Contains("still cold after waiting 30 ms"));
  fn.open_gate();
  CHECK(*leader.get() == 20);
  CHECK(fn.calls == 1);
}

TEST_CASE("stale_if_error serves the stale value for a bounded time", "[cached][failure]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  std::vector<larder::ErrorEvent::Kind> events;
  larder::Cached c{store,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 24h,
                    .fresh_for = 1h,
                    .stale_if_error = 2h,
                    .clock = &clock,
                    .on_error = [&](const larder::ErrorEvent& e) { events.push_back(e.kind); }}};
  c(1);
  fn.fail = true;
  clock.advance(90min);  // stale, inside the stale_if_error window
  auto r = c(1);
  CHECK(*r == 10);
  CHECK(r.stale());
  CHECK(c.stats().stale_on_error == 1);
  REQUIRE(events.size() == 1);
  CHECK(events[0] == larder::ErrorEvent::Kind::stale_served_on_error);
  clock.advance(2h);  // past fresh_for + stale_if_error: the failure now propagates
  CHECK_THROWS_WITH(c(1), "database down");
  CHECK_THROWS_WITH(c(1), "database down");  // the stale entry is gone: a plain miss now
  fn.fail = false;
  CHECK(*c(1) == 10);
}

TEST_CASE("Without stale_if_error a failing refresh throws to its caller", "[cached][failure]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 24h, .fresh_for = 1h, .clock = &clock}};
  c(1);
  fn.fail = true;
  clock.advance(2h);
  CHECK_THROWS_WITH(c(1), "database down");
  CHECK(c.stats().load_failures == 1);
}

TEST_CASE("invalidate drops the entry and refresh recomputes", "[cached]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h}};
  c(1);
  c(2);
  c.invalidate(1);
  CHECK(c(1).source() == larder::Source::computed);
  CHECK(c(2).source() == larder::Source::memory);  // only the invalidated key
  fn.offset = 7;
  auto r = c.refresh(2);
  CHECK(*r == 27);
  CHECK(r.source() == larder::Source::computed);
  CHECK(*c(2) == 27);
  CHECK(fn.calls == 4);
  fn.fail = true;
  CHECK_THROWS(c.refresh(2));
  CHECK(*c(2) == 27);  // a failed refresh leaves the entry as it was
}

namespace {
/// The race of an invalidate() during a computation, set up: the first computation of key 1 read
/// row 1 and is held in the function; then the row is written (row 2) and the key invalidated.
/// The destructor lets the held computation go, so a failed check cannot leave it waiting.
struct InvalidatedWhileComputing {
  struct Forward {
    larder::testing::ReadThenHoldFn* fn;
    std::int64_t operator()(std::int64_t id) const { return (*fn)(id); }
  };
  larder::MemoryStore store;
  larder::testing::ReadThenHoldFn fn;
  larder::Cached<Forward> c{store, "T", "f", Forward{&fn}, {.ttl = 1h}};
  std::future<larder::Result<std::int64_t>> before;  // the held call

  InvalidatedWhileComputing() {
    fn.gate.close();
    before = std::async(std::launch::async, [this] { return c(1); });
    fn.gate.wait_inside(1);
    fn.db = 2;
    c.invalidate(1);
  }
  ~InvalidatedWhileComputing() { fn.gate.open(); }
};
}  // namespace

TEST_CASE("A computation under way when its key is invalidated stores nothing",
          "[cached][invalidate][concurrency]") {
  // Its result must not be cached, or the row as it was is served until fresh_for runs out.
  InvalidatedWhileComputing race;
  race.fn.gate.open();
  CHECK(*race.before.get() == 101);  // its caller asked before the write
  const auto after = race.c(1);
  CHECK(*after == 102);
  CHECK(after.source() == larder::Source::computed);
  CHECK(race.c(1).source() == larder::Source::memory);  // a computation begun later is stored
  CHECK(race.fn.calls == 2);
}

TEST_CASE("A call after invalidate() is not answered with the invalidated computation",
          "[cached][invalidate][concurrency]") {
  InvalidatedWhileComputing race;
  auto& c = race.c;
  // It finds the computation under way and waits for it (one computation per key at a time)...
  auto after = std::async(std::launch::async, [&] { return c(1); });
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.stats().waiting < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  CHECK(c.stats().waiting == 1);
  race.fn.gate.open();
  CHECK(*race.before.get() == 101);
  // ...but is not answered with it: that one read row 1, before the write.
  const auto fresh = after.get();
  CHECK(*fresh == 102);
  CHECK(fresh.source() == larder::Source::computed);
  const auto cached = c(1);
  CHECK(*cached == 102);
  CHECK(cached.source() == larder::Source::memory);
  CHECK(c.stats().coalesced == 0);
  CHECK(race.fn.calls == 2);
}

TEST_CASE("A call that begins after invalidate() returns sees the data that invalidate() followed",
          "[cached][invalidate][concurrency]") {
  // A writer bumps a row's version and invalidates, over and over, while readers call: a call
  // that begins after the writer's invalidate() of version v returned must get v or later,
  // whether it hits, computes or joins a computation.
  larder::MemoryStore store;
  std::atomic<std::int64_t> row{0};
  larder::Cached c{store, "T", "f", [&row](std::int64_t) {
                     const std::int64_t v = row.load();
                     std::this_thread::yield();  // widen the window between reading and storing
                     return v;
                   }};
  std::atomic<std::int64_t> invalidated{0};  // the version whose invalidate() has returned
  std::atomic<bool> stop{false};
  std::atomic<int> older{0};
  std::atomic<long> reads{0};
  auto reader = [&] {
    while (!stop.load()) {
      const std::int64_t floor = invalidated.load();
      if (*c(1) < floor) ++older;
      ++reads;
    }
  };
  std::thread r1{reader}, r2{reader};
  for (std::int64_t v = 1; v <= 3000; ++v) {
    row = v;
    c.invalidate(1);
    invalidated = v;
    const long target = reads.load() + 2;  // let the readers call in between
    while (reads.load() < target) std::this_thread::yield();
  }
  stop = true;
  r1.join();
  r2.join();
  CHECK(older.load() == 0);
  CHECK(reads.load() > 0);
  CHECK(*c(1) == 3000);
}

TEST_CASE("cache_if: a refused result is returned and shared with waiters, never stored",
          "[cached][cache_if]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h}};
  c.cache_if([](std::int64_t v) { return v % 10 == 0; });  // offset 0 kept, any other refused
  fn.offset = 3;
  fn.close_gate();
  std::vector<std::future<larder::Result<std::int64_t>>> results;
  results.push_back(std::async(std::launch::async, [&] { return c(4); }));
  fn.wait_inside(1);
  for (int i = 0; i < 4; ++i)
    results.push_back(std::async(std::launch::async, [&] { return c(4); }));
  while (c.stats().waiting < 4) std::this_thread::yield();
  fn.open_gate();
  for (auto& f : results) CHECK(*f.get() == 43);
  CHECK(fn.calls == 1);  // the waiters shared the refused value...
  CHECK(store.size() == 0);
  CHECK(c(4).source() == larder::Source::computed);  // ...which was not stored
  CHECK(fn.calls == 2);
  fn.offset = 0;
  CHECK(*c(4) == 40);  // an accepted one is
  CHECK(c(4).source() == larder::Source::memory);
  CHECK(fn.calls == 3);
}

TEST_CASE("cache_if: a refused refresh or stale recompute drops the entry it replaces",
          "[cached][cache_if]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 24h, .fresh_for = 1h, .clock = &clock}};
  c.cache_if([](std::int64_t v) { return v % 10 == 0; });
  CHECK(*c(1) == 10);
  CHECK(*c(2) == 20);
  fn.offset = 5;
  CHECK(*c.refresh(1) == 15);  // refused: the old 10 must not be served afterwards
  CHECK(c(1).source() == larder::Source::computed);
  clock.advance(2h);  // 2 is stale: its recompute (on the caller) is refused, and the stale 20 goes
  auto r = c(2);
  CHECK(*r == 25);
  CHECK_FALSE(r.stale());
  CHECK(c(2).source() == larder::Source::computed);
  CHECK(store.size() == 0);
}

TEST_CASE("cache_if: a throwing predicate fails the computation like fn", "[cached][cache_if]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h}};
  c.cache_if([](std::int64_t v) -> bool {
    if (v == 70) throw std::runtime_error("cannot judge 70");
    return true;
  });
  CHECK_THROWS_WITH(c(7), "cannot judge 70");
  CHECK(c.stats().load_failures == 1);
  CHECK(*c(8) == 80);
  CHECK(c(8).source() == larder::Source::memory);
  c.cache_if({});  // empty: keep everything (nothing judges 70 now)
  CHECK(*c(7) == 70);
  CHECK(c(7).source() == larder::Source::memory);
}

TEST_CASE("stats count hits, misses, loads and load time", "[cached][stats]") {
  larder::MemoryStore store;
  larder::Cached c{store, "T", "slow", [](std::int64_t id) {
                     std::this_thread::sleep_for(2ms);
                     return id;
                   }};
  c(1);
  c(1);
  c(1);
  c(2);
  const auto s = c.stats();
  CHECK(s.hits == 2);
  CHECK(s.misses == 2);
  CHECK(s.loads == 2);
  CHECK(s.load_failures == 0);
  CHECK(s.load_time >= 4ms);
  CHECK(s.hit_ratio() == 0.5);  // 2 of 4, exact in binary
  CHECK(s.mean_load_time() >= 2ms);
  CHECK(s.time_saved() >= 4ms);
}

TEST_CASE("Jitter shortens lifetimes by at most the given fraction", "[cached][ttl]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  larder::Cached c{store,
                   "T",
                   "f",
                   [](std::int64_t id) { return id; },
                   {.ttl = 100min, .jitter = 0.2, .clock = &clock}};
  for (std::int64_t id = 0; id < 50; ++id) c(id);
  clock.advance(79min);  // every entry lives at least 80 minutes
  for (std::int64_t id = 0; id < 50; ++id) CHECK(c(id).source() == larder::Source::memory);
  clock.advance(21min);  // and at most 100
  for (std::int64_t id = 0; id < 50; ++id) CHECK(c(id).source() == larder::Source::computed);
}

TEST_CASE("Two functions with one name and different types are refused", "[cached]") {
  larder::MemoryStore store;
  larder::Cached a{store, "T", "f", [](std::int64_t id) { return id; }};
  CHECK_THROWS_AS((larder::Cached{store, "T", "f", [](std::int64_t id) { return double(id); }}),
                  std::invalid_argument);
  larder::Cached same{store, "T", "f", [](std::int64_t id) { return id + 1; }};
  a(1);
  CHECK(*same(1) == 1);  // same key space and types: they share entries, as in a shared store
}

TEST_CASE("Concurrent hits, misses and invalidations stay consistent", "[cached][concurrency]") {
  larder::MemoryStore store{{.max_entries = 64}};
  larder::Cached c{store, "T", "f", [](std::int64_t id) { return id * 3; }, {.ttl = 1h}};
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 4000; ++i) {
        const std::int64_t id = (i * 7 + t) % 100;
        if (i % 50 == 0) c.invalidate(id);
        if (*c(id) != id * 3) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  CHECK(store.size() <= 64);
}

TEST_CASE("A background refresh owns its arguments: views outlive no caller",
          "[cached][freshness]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  ManualExecutor executor;
  const larder::Options opts{.ttl = 24h,
                             .fresh_for = 1h,
                             .refresh = larder::Refresh::background,
                             .clock = &clock,
                             .executor = &executor};
  auto sum = [](std::span<const int> v) {
    int s = 0;
    for (int x : v) s += x;
    return s;
  };
  larder::Cached by_view{store, "T", "view",
                         [](std::string_view name, std::string_view tag) {
                           return std::string(name) + "/" + std::string(tag);
                         },
                         opts};
  larder::Cached by_pointer{store, "T", "ptr",
                            [](const char* name) { return std::string("hello ") + name; }, opts};
  larder::Cached by_span{store, "T", "span",
                         [&](std::int64_t id, std::span<const int> v) { return id + sum(v); },
                         opts};
  // The caller's buffers are reused after each call returns, as a request's would be.
  std::string name(40, 'n');
  std::string tag(40, 't');
  std::vector<int> v{1, 2, 3};
  by_view(name, tag);
  by_pointer(name.c_str());
  by_span(7, v);
  clock.advance(2h);  // stale: each call below schedules a refresh
  CHECK(by_view(name, tag).stale());
  CHECK(by_pointer(name.c_str()).stale());
  CHECK(by_span(7, v).stale());
  name.assign(40, 'X');
  tag.assign(40, 'Y');
  v.assign({100, 200, 300});
  CHECK(executor.run_all() == 3);
  const std::string n(40, 'n');
  const std::string t(40, 't');
  auto r = by_view(n, t);
  CHECK_FALSE(r.stale());
  CHECK(*r == n + "/" + t);
  CHECK(*by_pointer(n.c_str()) == "hello " + n);
  CHECK(*by_span(7, std::vector<int>{1, 2, 3}) == 13);
  CHECK(by_view.stats().loads == 2);
  CHECK(by_span.stats().loads == 2);
}

TEST_CASE("A background refresh of a borrowing argument it cannot own runs on the caller",
          "[cached][freshness]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  ManualExecutor executor;
  larder::Cached c{store,
                   "T",
                   "words",
                   [](std::int64_t id, const std::vector<std::string_view>& words) {
                     std::string out = std::to_string(id);
                     for (auto w : words) out += std::string(w);
                     return out;
                   },
                   {.ttl = 24h,
                    .fresh_for = 1h,
                    .refresh = larder::Refresh::background,
                    .clock = &clock,
                    .executor = &executor}};
  std::string a = "a", b = "b";
  c(1, std::vector<std::string_view>{a, b});
  clock.advance(2h);
  auto r = c(1, std::vector<std::string_view>{a, b});
  CHECK_FALSE(r.stale());  // recomputed by this caller: the views could not be held for later
  CHECK(*r == "1ab");
  CHECK(executor.run_all() == 0);
}

TEST_CASE("A ttl too long for the clock means forever with or without jitter", "[cached][ttl]") {
  using Ms = std::chrono::milliseconds;
  const Ms forever = Ms::max();
  const Ms centuries = std::chrono::duration_cast<Ms>(std::chrono::hours{24 * 365 * 300});
  const Ms decades = std::chrono::duration_cast<Ms>(std::chrono::hours{24 * 365 * 250});
  for (const Ms ttl : {forever, centuries, decades}) {
    for (const double jitter : {0.0, 0.5}) {
      for (const bool fresh_too : {false, true}) {
        CAPTURE(ttl.count(), jitter, fresh_too);
        larder::FakeClock clock;
        larder::MemoryStore store;
        CountingFn fn;
        larder::Cached c{store,
                         "T",
                         "f",
                         wrap(fn),
                         {.ttl = ttl,
                          .fresh_for = fresh_too ? ttl : Ms{0},
                          .jitter = jitter,
                          .stale_if_error = forever,
                          .clock = &clock}};
        CHECK(c(1).source() == larder::Source::computed);
        clock.advance(std::chrono::hours{24 * 365 * 100});
        auto r = c(1);
        CHECK(r.source() == larder::Source::memory);
        CHECK_FALSE(r.stale());
        CHECK(fn.calls == 1);
      }
    }
  }
}

TEST_CASE("A stale_if_error too long for the clock serves the stale value on error",
          "[cached][failure]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = std::chrono::milliseconds::max(),
                    .fresh_for = 1h,
                    .stale_if_error = std::chrono::milliseconds::max(),
                    .clock = &clock}};
  c(1);
  clock.advance(2h);
  fn.fail = true;
  auto r = c(1);
  CHECK(r.stale());
  CHECK(*r == 10);
  CHECK(c.stats().stale_on_error == 1);
}

TEST_CASE("A cold_wait too long for the clock waits for the computation", "[cached][cold]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{
      store, "T", "f", wrap(fn), {.ttl = 1h, .cold_wait = std::chrono::milliseconds::max()}};
  fn.close_gate();
  auto leader = std::async(std::launch::async, [&] { return c(2); });
  fn.wait_inside(1);
  auto waiter = std::async(std::launch::async, [&] { return c(2); });
  std::this_thread::sleep_for(50ms);
  fn.open_gate();
  CHECK(*leader.get() == 20);
  CHECK(*waiter.get() == 20);  // not ColdCacheError: the wait did not end at once
  CHECK(c.stats().cold_rejections == 0);
}

TEST_CASE("A null const char* argument is refused before anything is computed", "[cached][key]") {
  // Converting a null char pointer to a string is undefined (std::string_view) or a logic_error
  // (std::string): Cached refuses it with std::invalid_argument, computing and storing nothing.
  larder::MemoryStore store;
  const char* null = nullptr;
  auto refused = [](auto&& call) {
    try {
      call();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  auto null_c_string = Catch::StartsWith("larder: null const char* argument (argument ");

  int calls = 0;
  larder::Cached view{store, "T", "view", [&calls](std::int64_t id, std::string_view name) {
                        ++calls;
                        return std::to_string(id) + std::string(name);
                      }};
  CHECK_THAT(refused([&] { (void)view(1, null); }), null_c_string);
  CHECK_THAT(refused([&] { (void)view.key(1, null); }), null_c_string);
  CHECK_THAT(refused([&] { view.invalidate(1, null); }), null_c_string);
  CHECK_THAT(refused([&] { (void)view.refresh(1, null); }), null_c_string);
  const std::vector<std::int64_t> ids{1, 2};
  CHECK_THAT(refused([&] { (void)view.get_many(ids, null); }), null_c_string);
  CHECK_THAT(refused([&] {
               (void)view.get_many(
                   ids,
                   [](std::span<const std::int64_t> e, std::string_view) {
                     return std::vector<std::string>(e.size());
                   },
                   null);
             }),
             null_c_string);
  CHECK(calls == 0);
  CHECK(view.stats().requests() == 0);
  CHECK(view.stats().loads + view.stats().load_failures == 0);
  // A valid pointer still works, and is the same key as a literal or a std::string.
  const char* ada = "ada";
  CHECK(view(1, ada).value() == "1ada");
  CHECK(view(1, "ada").value() == "1ada");
  CHECK(view(1, std::string("ada")).value() == "1ada");
  CHECK(view.key(1, ada) == view.key(1, "ada"));
  CHECK(view.get_many(ids, ada).size() == 2);
  CHECK(calls == 2);  // 1 and 2 with "ada"

  larder::Cached owned{store, "T", "owned", [](std::int64_t id, const std::string& name) {
                         return name + "!" + std::to_string(id);
                       }};
  CHECK_THAT(refused([&] { (void)owned(1, null); }), null_c_string);
  CHECK(owned(1, ada).value() == "ada!1");

  // A const char* parameter, as the entity or within a range, is checked in the key itself.
  larder::Cached entity{store, "T", "entity",
                        [](const char* name) { return std::string(name).size(); }};
  CHECK_THAT(refused([&] { (void)entity(null); }), Catch::Contains("(argument 1 of"));
  CHECK(entity(ada).value() == 3);
  const std::vector<const char*> names{"a", nullptr};
  CHECK_THAT(refused([&] { (void)entity.get_many(names); }), null_c_string);
  larder::Cached ranged{store, "T", "ranged", [](std::int64_t id, std::vector<const char*> parts) {
                          return id + static_cast<std::int64_t>(parts.size());
                        }};
  CHECK_THAT(refused([&] { (void)ranged(1, names); }), Catch::Contains("(argument 2 of"));
  CHECK(entity.stats().requests() == 1);
  CHECK(ranged.stats().requests() == 0);
}
