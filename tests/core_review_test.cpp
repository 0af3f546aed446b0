// Regression tests of the core review: each case failed before its fix (see the commit that added
// it). Cached's slow paths, held arguments of background refreshes, values a codec cannot encode.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <initializer_list>
#include <larder/larder.hpp>
#include <larder/tiered_store.hpp>
#include <limits>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/counting_fn.hpp"
#include "support/forwarding_byte_store.hpp"
#include "support/gate.hpp"
#include "support/manual_executor.hpp"
#include "support/map_byte_store.hpp"
#include "support/teardown.hpp"

using namespace std::chrono_literals;
using larder::Source;
using larder::testing::CountingFn;
using larder::testing::destroys_within;
using larder::testing::ManualExecutor;
using larder::testing::MapByteStore;
using larder::testing::Touchy;

namespace {

[[maybe_unused]] auto wrap(CountingFn& fn) {
  return [&fn](std::int64_t id) { return fn(id); };
}

/// A value the default codec refuses: its to_json throws. (A std::string that is not UTF-8 was
/// one, until the codec wrote such strings in a form of its own.)
struct Refused {
  std::string s;
  bool operator==(const Refused&) const = default;
};
[[maybe_unused]] void to_json(nlohmann::json&, const Refused&) {
  throw std::domain_error("Refused cannot be encoded");
}
[[maybe_unused]] void from_json(const nlohmann::json& j, Refused& r) { r.s = j.get<std::string>(); }

}  // namespace

TEST_CASE("A std::initializer_list argument is not held by a background refresh",
          "[review][freshness]") {
  // An initializer_list is a view of the caller's temporary array: copying it copies a pointer.
  CHECK_FALSE(larder::detail::Ownable<const std::initializer_list<int>&>);
  CHECK(larder::detail::Ownable<const std::vector<int>&>);

  larder::FakeClock clock;
  larder::MemoryStore store;
  ManualExecutor executor;
  std::atomic<int> calls{0};
  larder::Cached c{store,
                   "T",
                   "list",
                   [&calls](std::int64_t id, std::initializer_list<int> xs) {
                     ++calls;
                     std::int64_t s = id;
                     for (int x : xs) s += x;
                     return s;
                   },
                   {.ttl = 24h,
                    .fresh_for = 1h,
                    .refresh = larder::Refresh::background,
                    .clock = &clock,
                    .executor = &executor}};
  CHECK(*c(1, {1, 2, 3}) == 7);
  clock.advance(2h);
  auto r = c(1, {1, 2, 3});
  CHECK_FALSE(r.stale());  // recomputed by the caller: the list could not be held for later
  CHECK(*r == 7);
  CHECK(calls == 2);
  CHECK(executor.run_all() == 0);
}

TEST_CASE("A std::string that is not UTF-8 is cached in the byte tier and read back exactly",
          "[review][bytes][codec]") {
  // nlohmann_json refuses to dump it (type_error 316): it was never cached, and counted as a store
  // error on every call.
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  auto binary = [&](std::int64_t id) { return all + std::to_string(fn(id)); };
  const larder::Options o{.ttl = 1h, .clock = &clock};
  larder::Cached a{shared, "T", "bin", binary, o};
  CHECK(*a(1) == all + "10");
  CHECK(a.stats().store_errors == 0);
  CHECK(shared.peek(a.key(1)));
  larder::Cached b{shared, "T", "bin", binary, o};  // another instance on the same bytes
  auto r = b(1);
  CHECK(r.source() == Source::remote);
  CHECK(*r == all + "10");
  CHECK(fn.calls == 1);
  CHECK(b.stats().decode_errors == 0);
}

TEST_CASE("A value the codec cannot encode is returned and counted, never thrown",
          "[review][bytes][failure]") {
  // Its to_json throws (see Refused).
  const std::string kJunk = "\xff\xfe";
  larder::FakeClock clock;
  MapByteStore shared{clock};
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, shared};
  CountingFn fn;
  std::vector<std::string> errors;
  const larder::Options o{.ttl = 1h, .clock = &clock, .on_error = [&](const larder::ErrorEvent& e) {
                            errors.emplace_back(e.what);
                          }};
  auto binary = [&fn](std::int64_t id) { return Refused{"\xff\xfe" + std::to_string(fn(id))}; };
  larder::Cached c{tiered, "T", "binary", binary, o};

  fn.close_gate();
  auto leader = std::async(std::launch::async, [&] { return c(1); });
  fn.wait_inside(1);
  auto waiter = std::async(std::launch::async, [&] { return c(1); });
  while (c.stats().waiting == 0) std::this_thread::sleep_for(1ms);
  fn.open_gate();
  Refused first, second;
  CHECK_NOTHROW(first = *leader.get());
  CHECK_NOTHROW(second = *waiter.get());
  CHECK(first.s == kJunk + "10");
  CHECK(second == first);
  CHECK(c.stats().store_errors == 1);
  CHECK(errors.size() == 1);
  CHECK(c(1).source() == Source::memory);  // the memory tier needs no encoding
  CHECK(fn.calls == 1);
  CHECK_FALSE(shared.peek(c.key(1)));
  CHECK_FALSE(shared.peek(c.key(1) + ":#lock"));

  // A byte-only store computes each time, and each call succeeds.
  larder::Cached bytes_only{shared, "T", "binary2", binary, o};
  CHECK((*bytes_only(2)).s == kJunk + "20");
  CHECK((*bytes_only(2)).s == kJunk + "20");
  CHECK(bytes_only.stats().store_errors == 2);
  // get_many, and refresh(), which then deletes the old shared value instead.
  CHECK((*bytes_only.get_many(std::vector<std::int64_t>{3})[0]).s == kJunk + "30");
  CHECK((*bytes_only.refresh(3)).s == kJunk + "30");
}

TEST_CASE(
    "A caller waiting for a leader that gives up on another process's lock gets "
    "ColdCacheError",
    "[review][bytes][cold]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, shared};
  CountingFn fn;
  larder::Cached c{tiered,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 1h, .cold_wait = 400ms, .lock_poll = 5ms, .clock = &clock}};
  REQUIRE(shared.try_lock(c.key(1) + ":#lock", "another-process", 1h));
  auto leader = std::async(std::launch::async, [&] { return c(1); });
  std::this_thread::sleep_for(50ms);  // it leads this process's flight and polls the shared tier
  auto waiter = std::async(std::launch::async, [&] { return c(1); });
  CHECK_THROWS_AS(leader.get(), larder::ColdCacheError);
  CHECK_THROWS_AS(waiter.get(), larder::ColdCacheError);
  CHECK(fn.calls == 0);
  const auto s = c.stats();
  CHECK(s.cold_rejections == 2);
  CHECK(s.coalesced == 0);
  CHECK(s.requests() == 0);
}

TEST_CASE("A lock_poll longer than cold_wait does not stretch the wait", "[review][bytes][cold]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  larder::Cached c{shared,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 1h, .cold_wait = 50ms, .lock_poll = 20s, .clock = &clock}};
  REQUIRE(shared.try_lock(c.key(1) + ":#lock", "another-process", 1h));
  auto t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c(1), larder::ColdCacheError);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  t0 = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(c.get_many(std::vector<std::int64_t>{1}), larder::ColdCacheError);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(fn.calls == 0);
}

namespace {
struct TouchyFn {
  std::atomic<int>* calls;
  std::int64_t operator()(const Touchy& t) const {
    ++*calls;
    return t.id * 10;
  }
};
}  // namespace

TEST_CASE("Arguments a background refresh cannot copy make the caller recompute",
          "[review][freshness]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  ManualExecutor executor;
  std::atomic<int> calls{0};
  auto c = std::make_unique<larder::Cached<TouchyFn>>(
      store, "T", "touchy", TouchyFn{&calls},
      larder::Options{.ttl = 24h,
                      .fresh_for = 1h,
                      .refresh = larder::Refresh::background,
                      .clock = &clock,
                      .executor = &executor});
  CHECK(*(*c)(Touchy{1}) == 10);
  clock.advance(2h);
  Touchy::refuse_copies = true;
  bool threw = true;
  try {
    auto r = (*c)(Touchy{1});
    threw = false;
    CHECK_FALSE(r.stale());
    CHECK(*r == 10);
  } catch (...) {
  }
  Touchy::refuse_copies = false;
  CHECK_FALSE(threw);
  CHECK(calls == 2);
  CHECK(executor.run_all() == 0);
  CHECK(destroys_within(std::move(c), 5s));  // no refresh left pending
}

TEST_CASE("get_many counts a key repeated in one call once, hit or not", "[review][bulk][stats]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 24h, .fresh_for = 1h, .clock = &clock}};
  c(5);
  auto rs = c.get_many(std::vector<std::int64_t>{5, 5, 6, 5});
  REQUIRE(rs.size() == 4);
  CHECK(*rs[1] == 50);
  auto s = c.stats();
  CHECK(s.hits == 1);
  CHECK(s.misses == 2);  // the single call and key 6
  CHECK(s.requests() == 3);
  clock.advance(2h);  // stale: the caller refreshes key 5 once, and key 6
  rs = c.get_many(std::vector<std::int64_t>{5, 6, 5});
  CHECK(*rs[2] == 50);
  s = c.stats();
  CHECK(s.requests() == 5);
  CHECK(fn.calls == 4);
}

namespace weigh {
/// A value whose weight cannot always be taken (larder_weight throws while `fails` is set).
struct Page {
  std::string html;
};
inline std::atomic<bool> fails{false};
inline std::uint64_t larder_weight(const Page& p) {
  if (fails) throw std::runtime_error("cannot weigh");
  return p.html.size();
}
}  // namespace weigh

TEST_CASE("A memory tier that cannot store a computed value fails no call", "[review][failure]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  std::vector<std::string> errors;
  larder::Cached c{store,
                   "T",
                   "page",
                   [&fn](std::int64_t id) { return weigh::Page{std::to_string(fn(id))}; },
                   {.ttl = 1h, .clock = &clock, .on_error = [&](const larder::ErrorEvent& e) {
                      errors.emplace_back(e.what);
                    }}};
  fn.close_gate();
  weigh::fails = true;
  auto leader = std::async(std::launch::async, [&] { return c(1); });
  fn.wait_inside(1);
  auto waiter = std::async(std::launch::async, [&] { return c(1); });
  while (c.stats().waiting == 0) std::this_thread::sleep_for(1ms);
  fn.open_gate();
  std::string first, second;
  CHECK_NOTHROW(first = leader.get()->html);
  CHECK_NOTHROW(second = waiter.get()->html);
  weigh::fails = false;
  CHECK(first == "10");
  CHECK(second == "10");
  CHECK(c.stats().store_errors == 1);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("cannot weigh") != std::string::npos);
  CHECK(c(1).source() == Source::computed);  // nothing was stored
  CHECK(c(1).source() == Source::memory);
}

namespace {
/// A byte store whose set() breaks its contract (throws something other than StoreError) while
/// `set_fails` is set.
class RudeByteStore final : public larder::testing::ForwardingByteStore {
 public:
  explicit RudeByteStore(MapByteStore& inner) : ForwardingByteStore{inner} {}
  void set(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl) override {
    if (set_fails) throw std::runtime_error("rude store");
    ForwardingByteStore::set(key, bytes, ttl);
  }
  bool unlock(std::string_view key, std::string_view token) override {
    if (unlock_fails) throw std::runtime_error("rude unlock");
    return ForwardingByteStore::unlock(key, token);
  }
  std::atomic<bool> set_fails{false};
  std::atomic<bool> unlock_fails{false};
};

/// Runs tasks when told, and keeps them afterwards (as an executor may destroy a task late).
struct KeepingExecutor final : larder::Executor {
  std::vector<std::function<void()>> tasks, ran;
  void submit(std::function<void()> task) override { tasks.push_back(std::move(task)); }
  void run_all() {
    auto now = std::move(tasks);
    tasks.clear();
    for (auto& t : now) {
      t();
      ran.push_back(std::move(t));
    }
  }
};
}  // namespace

TEST_CASE("A background refresh that fails outside fn ends its flight before it counts as done",
          "[review][freshness][failure]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  RudeByteStore rude{shared};
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, rude};
  KeepingExecutor executor;
  CountingFn fn;
  std::vector<std::string> errors;
  larder::Cached c{tiered,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 24h,
                    .fresh_for = 1h,
                    .refresh = larder::Refresh::background,
                    .cold_wait = 50ms,
                    .clock = &clock,
                    .executor = &executor,
                    .on_error = [&](const larder::ErrorEvent& e) { errors.emplace_back(e.what); }}};
  c(1);
  clock.advance(2h);
  CHECK(c(1).stale());
  REQUIRE(executor.tasks.size() == 1);
  rude.set_fails = true;
  executor.run_all();  // fn ran; storing its value threw
  rude.set_fails = false;
  CHECK(errors == std::vector<std::string>{"rude store"});
  // The task is done with the key (though its object lives on in the executor): a cold call
  // computes it rather than wait for that flight.
  c.invalidate(1);
  larder::Result<std::int64_t> r{std::int64_t{0}, Source::memory, false, {}, {}};
  CHECK_NOTHROW(r = c(1));
  CHECK(*r == 10);
  CHECK(r.source() == Source::computed);
  executor.ran.clear();
}

namespace strict {
/// A value whose from_json validates what it reads and throws std::invalid_argument (not a
/// nlohmann exception), as user code does.
struct Stock {
  std::int64_t count = 0;
};
inline void to_json(nlohmann::json& j, const Stock& s) { j = nlohmann::json{{"count", s.count}}; }
inline void from_json(const nlohmann::json& j, Stock& s) {
  s.count = j.at("count").get<std::int64_t>();
  if (s.count < 0) throw std::invalid_argument("a stock count is never negative");
}
}  // namespace strict

TEST_CASE("A from_json that throws its own exception makes a decode error, a miss",
          "[review][bytes][codec]") {
  CHECK_THROWS_AS(larder::Codec<strict::Stock>::decode(R"({"count":-1})"), larder::DecodeError);
  CHECK(larder::Codec<strict::Stock>::decode(R"({"count":3})").count == 3);

  // One process stored a value that the other's from_json refuses (a newer deploy's validation).
  larder::FakeClock clock;
  MapByteStore shared{clock};
  larder::MemoryStore l1_a, l1_b;
  larder::TieredStore one{l1_a, shared}, two{l1_b, shared};
  std::atomic<std::int64_t> next{-1};
  auto stock = [&next](std::int64_t) { return strict::Stock{next.load()}; };
  larder::Cached a{one, "T", "stock", stock, {.ttl = 1h, .clock = &clock}};
  larder::Cached b{two, "T", "stock", stock, {.ttl = 1h, .clock = &clock}};
  CHECK(a(1)->count == -1);
  next = 5;
  larder::Result<strict::Stock> r{
      std::make_shared<const strict::Stock>(), Source::memory, false, {}, {}};
  CHECK_NOTHROW(r = b(1));
  CHECK(r->count == 5);
  CHECK(r.source() == Source::computed);
  CHECK(b.stats().decode_errors == 1);
  CHECK(b.get_many(std::vector<std::int64_t>{1})[0]->count == 5);  // memory now
}

TEST_CASE("A lock release that throws something other than StoreError escapes no destructor",
          "[review][bytes][lock]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  RudeByteStore rude{shared};
  CountingFn fn;
  std::vector<std::string> errors;
  larder::Cached c{rude,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 1h, .clock = &clock, .on_error = [&](const larder::ErrorEvent& e) {
                      errors.emplace_back(e.what);
                    }}};
  rude.unlock_fails = true;
  CHECK(*c(1) == 10);                                         // RemoteUnlock
  CHECK(*c.get_many(std::vector<std::int64_t>{2})[0] == 20);  // HeldLocks
  rude.unlock_fails = false;
  CHECK(c.stats().store_errors == 2);
  CHECK(errors == std::vector<std::string>{"rude unlock", "rude unlock"});
}

TEST_CASE("A key with a NaN param is invalidated and replaced like any other",
          "[review][key][invalidate]") {
  // Keys treat every NaN as one value (rendered "nan"); the memory tier's writes and erases must
  // agree with its reads, whereas NaN == NaN is false.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  larder::FakeClock clock;
  larder::MemoryStore store;
  std::atomic<int> calls{0};
  std::atomic<std::int64_t> offset{0};
  larder::Cached c{store,
                   "T",
                   "nan",
                   [&](std::int64_t id, double) {
                     ++calls;
                     return id + offset.load();
                   },
                   {.ttl = 1h, .clock = &clock}};
  CHECK(*c(1, nan) == 1);
  CHECK(c(1, nan).source() == Source::memory);
  offset = 100;
  c.invalidate(1, nan);
  auto r = c(1, nan);
  CHECK(r.source() == Source::computed);
  CHECK(*r == 101);
  offset = 200;
  CHECK(*c.refresh(1, nan) == 201);
  CHECK(*c(1, nan) == 201);  // the refreshed value replaced the old one
  CHECK(store.size() == 1);
  CHECK(calls == 3);
}

TEST_CASE("get_many computes the other keys when a stale key's refresh fails, then throws",
          "[review][bulk][failure]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  std::atomic<std::int64_t> fail_id{-1};
  std::atomic<int> calls{0};
  larder::Cached c{store,
                   "T",
                   "f",
                   [&](std::int64_t id) {
                     ++calls;
                     if (id == fail_id) throw std::runtime_error("database down");
                     return id * 10;
                   },
                   {.ttl = 24h, .fresh_for = 1h, .clock = &clock}};
  c(1);
  clock.advance(2h);  // key 1 is stale: this caller refreshes it, and that fails
  fail_id = 1;
  CHECK_THROWS_WITH(c.get_many(std::vector<std::int64_t>{1, 2}), "database down");
  fail_id = -1;
  CHECK(calls == 3);                         // key 2 was computed all the same
  CHECK(c(2).source() == Source::memory);    // and stored
  CHECK(c(1).source() == Source::computed);  // the failed stale entry was dropped
}

namespace {
/// The counters in which Stats promises each call (each distinct key of a get_many) is counted
/// exactly once.
std::uint64_t calls_counted(const larder::Stats& s) {
  return s.hits + s.stale_serves + s.misses + s.coalesced + s.coalesced_failures +
         s.cold_rejections;
}

/// Waits until a get_many running in `bulk` waits for another caller's computation, or returns.
template <class C, class Future>
void until_waiting_or_done(const C& c, Future& bulk) {
  while (c.stats().waiting == 0 && bulk.wait_for(1ms) != std::future_status::ready) {
  }
}
}  // namespace

TEST_CASE("get_many waits for and counts the keys it joined when another of its keys fails",
          "[review][bulk][stats]") {
  larder::MemoryStore store;
  larder::testing::Gate gate;
  auto fn = [&gate](std::int64_t id) -> std::int64_t {
    if (id == 1) gate.pass();
    if (id == 2) throw std::runtime_error("database down");
    return id * 10;
  };
  larder::Cached c{store, "T", "f", fn, {.cold_wait = 60s}};
  gate.close();
  auto single = std::async(std::launch::async, [&] { return *c(1); });
  gate.wait_inside(1);  // the single call leads key 1 and is held inside fn: counted (a miss)
  const std::uint64_t before = calls_counted(c.stats());
  auto bulk = std::async(std::launch::async, [&] {
    return c.get_many(std::vector<std::int64_t>{1, 2, 1, 3});
  });
  // get_many computes 2 (which throws) and 3, then waits for 1, which the single call computes.
  until_waiting_or_done(c, bulk);
  gate.open();
  CHECK_THROWS_WITH(bulk.get(), "database down");
  CHECK(single.get() == 10);
  const auto s = c.stats();
  CHECK(calls_counted(s) - before == 3);  // keys 1, 2 and 3, each once
  CHECK(s.coalesced == 1);                // key 1, answered by the single call
  CHECK(s.misses == 3);                   // the single call, keys 2 and 3
  CHECK(s.waiting == 0);
}

TEST_CASE("get_many waits for and counts every key it joined when a joined computation fails",
          "[review][bulk][stats]") {
  larder::MemoryStore store;
  larder::testing::Gate gate;
  auto fn = [&gate](std::int64_t id) -> std::int64_t {
    if (id == 1 || id == 3) gate.pass();
    if (id == 1) throw std::runtime_error("database down");
    return id * 10;
  };
  larder::Cached c{store, "T", "f", fn, {.cold_wait = 60s}};
  gate.close();
  auto one = std::async(std::launch::async, [&] { return *c(1); });
  auto three = std::async(std::launch::async, [&] { return *c(3); });
  gate.wait_inside(2);  // single calls lead keys 1 and 3, held inside fn
  const std::uint64_t before = calls_counted(c.stats());
  auto bulk = std::async(std::launch::async, [&] {
    return c.get_many(std::vector<std::int64_t>{1, 3, 2, 3});
  });
  // get_many computes 2, then waits for 1 (whose computation throws) and for 3.
  until_waiting_or_done(c, bulk);
  gate.open();
  CHECK_THROWS_WITH(bulk.get(), "database down");
  CHECK_THROWS_WITH(one.get(), "database down");
  CHECK(three.get() == 30);
  const auto s = c.stats();
  CHECK(calls_counted(s) - before == 3);  // keys 1, 2 and 3, each once
  CHECK(s.coalesced_failures == 1);       // key 1: its computation threw
  CHECK(s.coalesced == 1);                // key 3, answered by the single call
  CHECK(s.misses == 3);                   // the single calls, key 2
  CHECK(s.waiting == 0);
  CHECK(c(3).source() == Source::memory);
}
