// Cached::get_many: bulk get-or-compute. Only the missing keys are computed (by fn, or by one call
// of a batched loader), the byte tier is read with one get_many, and in-flight computations are
// shared with concurrent single calls in both directions. Failures propagate.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <larder/larder.hpp>
#include <larder/tiered_store.hpp>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "support/catch.hpp"
#include "support/counting_fn.hpp"
#include "support/forwarding_byte_store.hpp"
#include "support/map_byte_store.hpp"

using namespace std::chrono_literals;
using larder::Source;
using larder::testing::CountingFn;
using larder::testing::MapByteStore;

namespace {

using Ids = std::vector<std::int64_t>;

auto wrap(CountingFn& fn) {
  return [&fn](std::int64_t id) { return fn(id); };
}

/// A batched loader double: records each batch it was asked for.
struct BatchLoader {
  std::mutex mutex;
  std::vector<Ids> batches;
  std::int64_t fail_on = -1;  // throws if asked for this id
  bool short_answer = false;  // returns one value too few
  std::vector<std::int64_t> operator()(std::span<const std::int64_t> ids) {
    {
      std::lock_guard lock{mutex};
      batches.emplace_back(ids.begin(), ids.end());
    }
    std::vector<std::int64_t> out;
    for (auto id : ids) {
      if (id == fail_on) throw std::runtime_error("database down");
      out.push_back(id * 10);
    }
    if (short_answer && !out.empty()) out.pop_back();
    return out;
  }
};

/// A byte store that counts how it is read (MapByteStore answers). `before_lock`, if set, runs
/// once, at the first try_lock_many, before the locks are taken: another process storing values in
/// the window between a bulk call's read and its locks.
class CountingByteStore final : public larder::testing::ForwardingByteStore {
 public:
  explicit CountingByteStore(MapByteStore& inner) : ForwardingByteStore{inner} {}
  std::optional<std::string> get(std::string_view key) override {
    ++gets;
    return ForwardingByteStore::get(key);
  }
  std::vector<std::optional<std::string>> get_many(std::span<const std::string> keys) override {
    ++get_manys;
    batches.push_back(keys.size());
    std::vector<std::optional<std::string>> out;
    for (const auto& k : keys) out.push_back(ForwardingByteStore::get(k));
    return out;
  }
  std::vector<bool> try_lock_many(std::span<const std::string> keys, std::string_view token,
                                  std::chrono::milliseconds lease) override {
    if (auto hook = std::exchange(before_lock, nullptr)) hook();
    return inner().try_lock_many(keys, token, lease);
  }
  std::function<void()> before_lock;
  std::atomic<int> gets{0};
  std::atomic<int> get_manys{0};
  std::vector<std::size_t> batches;  // the size of each get_many
};

std::vector<Source> sources_of(const std::vector<larder::Result<std::int64_t>>& rs) {
  std::vector<Source> out;
  for (const auto& r : rs) out.push_back(r.source());
  return out;
}
std::vector<std::int64_t> values_of(const std::vector<larder::Result<std::int64_t>>& rs) {
  std::vector<std::int64_t> out;
  for (const auto& r : rs) out.push_back(*r);
  return out;
}

/// A shared byte tier and one "process" over it (its own memory tier), on a fake clock.
struct OneProcess {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  larder::MemoryStore l1;
  larder::TieredStore store{l1, shared};
};

/// Two "processes" over one shared byte tier, each with its own memory tier and function, on a fake
/// clock; process a reaches the tier through a CountingByteStore.
struct TwoProcesses {
  using Fn = decltype(wrap(std::declval<CountingFn&>()));
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingByteStore counted{shared};
  larder::MemoryStore l1_a, l1_b;
  larder::TieredStore one{l1_a, counted}, two{l1_b, shared};
  CountingFn fn_a, fn_b;
  larder::Options o{.ttl = 1h, .lock_poll = 1ms, .clock = &clock};
  larder::Cached<Fn> a{one, "T", "f", wrap(fn_a), o};
  larder::Cached<Fn> b{two, "T", "f", wrap(fn_b), o};
};

}  // namespace

TEST_CASE("get_many computes only the keys that are missing, in the order given", "[bulk]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  c(1);
  c(2);
  REQUIRE(fn.calls == 2);

  auto rs = c.get_many(Ids{3, 1, 4, 2});
  CHECK(values_of(rs) == Ids{30, 10, 40, 20});
  CHECK(sources_of(rs) ==
        std::vector{Source::computed, Source::memory, Source::computed, Source::memory});
  CHECK(fn.calls == 4);
  const auto s = c.stats();
  CHECK(s.hits == 2);
  CHECK(s.misses == 4);
  CHECK(s.loads == 4);

  // Now everything is cached: nothing computes, and single calls hit what the bulk call stored.
  auto again = c.get_many(Ids{1, 2, 3, 4});
  CHECK(values_of(again) == Ids{10, 20, 30, 40});
  CHECK(c(4).source() == Source::memory);
  CHECK(fn.calls == 4);
}

TEST_CASE("get_many computes a key repeated in the list once", "[bulk]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn)};
  auto rs = c.get_many(Ids{5, 5, 6, 5});
  CHECK(values_of(rs) == Ids{50, 50, 60, 50});
  CHECK(fn.calls == 2);
  CHECK(c.get_many(Ids{}).empty());
}

TEST_CASE("get_many keys params exactly as single calls do", "[bulk]") {
  larder::MemoryStore store;
  std::atomic<int> calls{0};
  larder::Cached c{store, "T", "f", [&calls](std::int64_t id, std::int64_t limit) {
                     ++calls;
                     return id * 100 + limit;
                   }};
  c(1, 7);
  // An int literal for an int64 param: converted before hashing, so the key matches.
  auto rs = c.get_many(Ids{1, 2}, 7);
  CHECK(values_of(rs) == Ids{107, 207});
  CHECK(rs[0].source() == Source::memory);
  CHECK(calls == 2);
  CHECK(c(2, 7).source() == Source::memory);
  CHECK(c.get_many(Ids{1}, 8)[0].source() == Source::computed);  // another param, another key
}

TEST_CASE("get_many with a batched loader makes one call for all the missing keys", "[bulk]") {
  larder::MemoryStore store;
  CountingFn fn;
  BatchLoader loader;
  larder::Cached c{store, "T", "f", wrap(fn)};
  c(2);

  auto rs = c.get_many(Ids{1, 2, 3, 1}, std::ref(loader));
  CHECK(values_of(rs) == Ids{10, 20, 30, 10});
  CHECK(sources_of(rs) ==
        std::vector{Source::computed, Source::memory, Source::computed, Source::computed});
  REQUIRE(loader.batches.size() == 1);
  CHECK(loader.batches[0] == Ids{1, 3});
  CHECK(fn.calls == 1);  // only the warm-up: the loader replaced fn
  CHECK(c.stats().loads == 3);

  // All present: the loader is not called at all.
  c.get_many(Ids{1, 2, 3}, std::ref(loader));
  CHECK(loader.batches.size() == 1);
}

TEST_CASE("get_many stores none of the values cache_if refuses, in either tier",
          "[bulk][cache_if]") {
  OneProcess p;
  auto& [clock, shared, l1, store] = p;
  CountingFn fn;
  BatchLoader loader;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  c.cache_if([](std::int64_t v) { return v != 30; });
  for (auto* with_loader : {&loader, static_cast<BatchLoader*>(nullptr)}) {
    INFO((with_loader ? "batched loader" : "fn per key"));
    const int sets = shared.sets;
    auto rs = with_loader ? c.get_many(Ids{1, 3, 5}, std::ref(loader)) : c.get_many(Ids{6, 3, 7});
    CHECK(values_of(rs)[1] == 30);  // returned all the same
    CHECK(shared.sets - sets == 2);
    CHECK_FALSE(shared.peek(c.key(3)).has_value());
    CHECK(l1.size() == (with_loader ? 2u : 4u));
  }
  const int calls = fn.calls;
  auto again = c.get_many(Ids{1, 3, 5});
  CHECK(sources_of(again) == std::vector{Source::memory, Source::computed, Source::memory});
  CHECK(fn.calls == calls + 1);
}

TEST_CASE("get_many reads the byte tier with one get_many call, and the keys it locks once more",
          "[bulk]") {
  larder::FakeClock clock;
  MapByteStore map{clock};
  CountingByteStore bytes{map};
  CountingFn fn;
  {  // another process computed 1 and 2 into the shared tier
    larder::MemoryStore l1;
    larder::TieredStore other{l1, bytes};
    larder::Cached c{other, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
    c(1);
    c(2);
  }
  REQUIRE(fn.calls == 2);
  bytes.gets = 0;
  bytes.get_manys = 0;

  larder::MemoryStore l1;
  larder::TieredStore store{l1, bytes};
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  c(3);  // in this process's memory already: not asked of the byte tier by the bulk call
  bytes.gets = 0;
  auto rs = c.get_many(Ids{1, 2, 3, 4});
  CHECK(values_of(rs) == Ids{10, 20, 30, 40});
  CHECK(sources_of(rs) ==
        std::vector{Source::remote, Source::remote, Source::memory, Source::computed});
  // 1, 2 and 4 in one read; then 4, the one key left to compute, again under its lock.
  CHECK(bytes.batches == std::vector<std::size_t>{3, 1});
  CHECK(bytes.gets == 0);
  CHECK(fn.calls == 4);
  // 1 and 2 were copied into memory; 4 was written to the shared tier.
  CHECK(c(1).source() == Source::memory);
  CHECK(map.peek(c.key(4)).has_value());
}

TEST_CASE("get_many survives a failing byte tier by computing", "[bulk]") {
  larder::FakeClock clock;
  MapByteStore bytes{clock};
  larder::MemoryStore l1;
  larder::TieredStore store{l1, bytes};
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  bytes.failing = true;
  auto rs = c.get_many(Ids{1, 2});
  CHECK(values_of(rs) == Ids{10, 20});
  CHECK(fn.calls == 2);
  CHECK(c.stats().store_errors >= 1);
}

TEST_CASE("get_many joins a single call's computation instead of computing again", "[bulk]") {
  larder::MemoryStore store;
  CountingFn fn;
  BatchLoader loader;
  larder::Cached c{store, "T", "f", wrap(fn)};
  fn.close_gate();
  auto single = std::async(std::launch::async, [&] { return *c(7); });
  fn.wait_inside(1);  // the single call leads key 7 and is held inside fn

  auto bulk = std::async(std::launch::async, [&] {
    return c.get_many(Ids{7, 8}, std::ref(loader));
  });
  // The bulk call computes 8 through the loader, then waits for 7.
  while (c.stats().waiting == 0) std::this_thread::sleep_for(1ms);
  fn.open_gate();
  auto rs = bulk.get();
  CHECK(single.get() == 70);
  CHECK(values_of(rs) == Ids{70, 80});
  CHECK(rs[0].source() == Source::coalesced);
  REQUIRE(loader.batches.size() == 1);
  CHECK(loader.batches[0] == Ids{8});
  CHECK(fn.calls == 1);
}

TEST_CASE("get_many is not answered with a computation its key's invalidate() came after",
          "[bulk][invalidate]") {
  larder::MemoryStore store;
  larder::testing::ReadThenHoldFn fn;
  larder::Cached c{store, "T", "f", [&fn](std::int64_t id) { return fn(id); }};
  fn.gate.close();
  auto single = std::async(std::launch::async, [&] { return *c(7); });
  fn.gate.wait_inside(1);  // it read row 1 and is held
  fn.db = 2;
  c.invalidate(7);
  auto bulk = std::async(std::launch::async, [&] { return c.get_many(Ids{7, 8}); });
  while (c.stats().waiting == 0) std::this_thread::sleep_for(1ms);  // it waits for 7...
  fn.gate.open();
  CHECK(single.get() == 701);
  auto rs = bulk.get();
  CHECK(values_of(rs) == Ids{702, 802});  // ...then computes 7 again
  CHECK(rs[0].source() == Source::computed);
  CHECK(c.stats().coalesced == 0);
  CHECK(fn.calls == 3);
  CHECK(*c(7) == 702);
}

TEST_CASE("A single call joins a bulk call's computation", "[bulk]") {
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn)};
  std::promise<void> entered;
  std::promise<void> release;
  auto release_future = release.get_future().share();
  auto loader = [&](std::span<const std::int64_t> ids) {
    entered.set_value();
    release_future.wait();
    std::vector<std::int64_t> out;
    for (auto id : ids) out.push_back(id * 10 + 1);
    return out;
  };
  auto bulk = std::async(std::launch::async, [&] { return c.get_many(Ids{9, 10}, loader); });
  entered.get_future().wait();
  auto single = std::async(std::launch::async, [&] { return c(10); });
  while (c.stats().waiting == 0) std::this_thread::sleep_for(1ms);
  release.set_value();
  CHECK(values_of(bulk.get()) == Ids{91, 101});
  auto r = single.get();
  CHECK(*r == 101);
  CHECK(r.source() == Source::coalesced);
  CHECK(fn.calls == 0);
}

TEST_CASE("get_many stores the keys that computed and rethrows the first failure", "[bulk]") {
  larder::MemoryStore store;
  std::atomic<int> calls{0};
  larder::Cached c{store, "T", "f", [&calls](std::int64_t id) {
                     ++calls;
                     if (id == 13) throw std::runtime_error("database down");
                     return id * 10;
                   }};
  CHECK_THROWS_WITH(c.get_many(Ids{12, 13, 14}), "database down");
  CHECK(calls == 3);
  CHECK(c(12).source() == Source::memory);
  CHECK(c(14).source() == Source::memory);
  CHECK_THROWS_WITH(c(13), "database down");  // nothing was cached for it
  CHECK(calls == 4);
  CHECK(c.stats().load_failures == 2);
}

TEST_CASE("A failing batched loader fails its keys and caches nothing", "[bulk]") {
  larder::MemoryStore store;
  CountingFn fn;
  BatchLoader loader;
  larder::Cached c{store, "T", "f", wrap(fn)};
  loader.fail_on = 2;
  CHECK_THROWS_WITH(c.get_many(Ids{1, 2, 3}, std::ref(loader)), "database down");
  CHECK(c.stats().load_failures == 3);
  CHECK(c(1).source() == Source::computed);  // not cached by the failed batch

  loader.fail_on = -1;
  loader.short_answer = true;
  CHECK_THROWS_AS(c.get_many(Ids{4, 5}, std::ref(loader)), std::logic_error);
  CHECK(c(4).source() == Source::computed);
  loader.short_answer = false;
  CHECK(values_of(c.get_many(Ids{4, 5, 6}, std::ref(loader))) == Ids{40, 50, 60});
}

TEST_CASE("get_many recomputes a stale entry and serves fresh ones", "[bulk]") {
  larder::FakeClock clock;
  larder::MemoryStore store;
  CountingFn fn;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .fresh_for = 10min, .clock = &clock}};
  c(1);
  clock.advance(11min);
  c(2);
  fn.offset = 5;
  auto rs = c.get_many(Ids{1, 2});
  CHECK(values_of(rs) == Ids{15, 20});  // 1 was stale: the caller refreshed it (Refresh::caller)
  CHECK(rs[0].source() == Source::computed);
  CHECK(rs[1].source() == Source::memory);
}

TEST_CASE("get_many with fail_fast refuses a key another caller is computing", "[bulk]") {
  larder::MemoryStore store;
  CountingFn fn;
  BatchLoader loader;
  larder::Cached c{store, "T", "f", wrap(fn), {.on_cold = larder::OnCold::fail_fast}};
  fn.close_gate();
  auto single = std::async(std::launch::async, [&] { return *c(7); });
  fn.wait_inside(1);
  CHECK_THROWS_AS(c.get_many(Ids{7, 8}, std::ref(loader)), larder::ColdCacheError);
  fn.open_gate();
  CHECK(single.get() == 70);
  CHECK(c(8).source() == Source::memory);  // computed before the refusal, and kept
}

// ---- across processes: the shared tier's lock (two Cached on one shared store, as two processes)

TEST_CASE("get_many awaits a key another process is computing instead of computing it again",
          "[bulk][lock]") {
  TwoProcesses p;
  auto [fn_a, fn_b, a, b] = std::tie(p.fn_a, p.fn_b, p.a, p.b);
  auto& shared = p.shared;
  fn_a.close_gate();
  auto single = std::async(std::launch::async, [&] { return *a(2); });
  fn_a.wait_inside(1);  // process one holds the lock of 2 and computes it
  auto bulk = std::async(std::launch::async, [&] { return b.get_many(Ids{1, 2, 3}); });
  // Process two computes 1 and 3, then polls for 2.
  while (fn_b.calls < 2) std::this_thread::sleep_for(1ms);
  std::this_thread::sleep_for(10ms);
  fn_a.open_gate();
  CHECK(single.get() == 20);
  auto rs = bulk.get();
  CHECK(values_of(rs) == Ids{10, 20, 30});
  CHECK(sources_of(rs) == std::vector{Source::computed, Source::remote, Source::computed});
  CHECK(fn_a.calls == 1);
  CHECK(fn_b.calls == 2);  // 2 was not computed again
  // Each key counted once: 1 and 3 computed here, 2 received from process one.
  const auto s = b.stats();
  CHECK(s.coalesced == 1);
  CHECK(s.misses == 2);
  CHECK(s.requests() == 3);
  CHECK(a.stats().misses == 1);
  for (std::int64_t k : {1, 2, 3}) CHECK_FALSE(shared.peek(b.key(k) + ":#lock"));  // released
  CHECK(b(2).source() == Source::memory);  // the awaited value was copied into memory
}

TEST_CASE("get_many with a batched loader loads only the keys no other process holds",
          "[bulk][lock]") {
  OneProcess p;
  auto& [clock, shared, l1, store] = p;
  CountingFn fn;
  BatchLoader loader;
  larder::Cached c{store, "T", "f", wrap(fn), {.ttl = 1h, .lock_poll = 1ms, .clock = &clock}};
  REQUIRE(shared.try_lock(c.key(5) + ":#lock", "someone-else", 10s));
  auto bulk = std::async(std::launch::async, [&] {
    return c.get_many(Ids{4, 5, 6}, std::ref(loader));
  });
  auto batches = [&] {
    std::lock_guard lock{loader.mutex};
    return loader.batches.size();
  };
  while (batches() < 1) std::this_thread::sleep_for(1ms);  // 4 and 6 loaded; 5 is polled
  clock.advance(11s);  // the holder died without storing 5: its lease runs out
  auto rs = bulk.get();
  CHECK(values_of(rs) == Ids{40, 50, 60});
  REQUIRE(loader.batches.size() == 2);
  CHECK(loader.batches[0] == Ids{4, 6});  // 5 was held elsewhere
  CHECK(loader.batches[1] == Ids{5});     // and computed here once its lease ran out
  CHECK(fn.calls == 0);
  CHECK_FALSE(shared.peek(c.key(5) + ":#lock"));
}

TEST_CASE("get_many refuses a key another process holds per on_cold, and keeps the rest",
          "[bulk][lock]") {
  OneProcess p;
  auto& [clock, shared, l1, store] = p;
  CountingFn fn;
  SECTION("fail_fast refuses at once") {
    larder::Cached c{store,
                     "T",
                     "f",
                     wrap(fn),
                     {.ttl = 1h, .on_cold = larder::OnCold::fail_fast, .clock = &clock}};
    REQUIRE(shared.try_lock(c.key(8) + ":#lock", "someone-else", 10s));
    CHECK_THROWS_AS(c.get_many(Ids{7, 8}), larder::ColdCacheError);
    CHECK(fn.calls == 1);
    CHECK(shared.peek(c.key(7)).has_value());  // computed before the refusal, and stored
    const auto s = c.stats();
    CHECK(s.cold_rejections == 1);
    CHECK(s.misses == 1);  // each key counted once: 7 computed, 8 refused
    CHECK(s.requests() == 1);
  }
  SECTION("wait gives up after cold_wait") {
    larder::Cached c{store,
                     "T",
                     "f",
                     wrap(fn),
                     {.ttl = 1h, .cold_wait = 30ms, .lock_poll = 1ms, .clock = &clock}};
    REQUIRE(shared.try_lock(c.key(8) + ":#lock", "someone-else", 10s));
    CHECK_THROWS_AS(c.get_many(Ids{7, 8}), larder::ColdCacheError);
    CHECK(fn.calls == 1);
    CHECK(c.stats().misses == 1);
    CHECK(c.stats().cold_rejections == 1);
    CHECK(c(7).source() == Source::memory);
  }
}

TEST_CASE("A call served by another process's computation counts as coalesced, not as a miss",
          "[bulk][lock][stats]") {
  TwoProcesses p;
  auto [fn_a, fn_b, a, b] = std::tie(p.fn_a, p.fn_b, p.a, p.b);
  fn_a.close_gate();
  auto first = std::async(std::launch::async, [&] { return *a(5); });
  fn_a.wait_inside(1);  // process one holds the lock of 5 and computes it
  auto second = std::async(std::launch::async, [&] { return b(5); });
  std::this_thread::sleep_for(10ms);  // process two polls the shared tier
  fn_a.open_gate();
  CHECK(first.get() == 50);
  CHECK(second.get().source() == Source::remote);
  CHECK(fn_b.calls == 0);
  const auto s = b.stats();
  CHECK(s.coalesced == 1);
  CHECK(s.misses == 0);
  CHECK(s.requests() == 1);
  CHECK(s.hit_ratio() == 1.0);
  CHECK(a.stats().misses == 1);
  CHECK(a.stats().requests() == 1);
}

TEST_CASE("get_many serves a value another process stored between its read and its lock",
          "[bulk][lock]") {
  TwoProcesses p;
  auto [fn_a, fn_b, a, b] = std::tie(p.fn_a, p.fn_b, p.a, p.b);
  auto [shared, late] = std::tie(p.shared, p.counted);
  // a's bulk read finds nothing; before a locks 1, 2 and 3, process b computes and stores 2 (and
  // releases its lock).
  late.before_lock = [&] { CHECK(*b(2) == 20); };
  auto rs = a.get_many(Ids{1, 2, 3});
  CHECK(values_of(rs) == Ids{10, 20, 30});
  CHECK(sources_of(rs) == std::vector{Source::computed, Source::remote, Source::computed});
  CHECK(fn_b.calls == 1);
  CHECK(fn_a.calls == 2);           // 2 was not computed again
  CHECK(late.get_manys == 2);       // the bulk read, and the second read of the keys it locked
  CHECK(a.stats().misses == 2);     // 1 and 3
  CHECK(a.stats().coalesced == 1);  // 2: process b's computation
  for (std::int64_t k : {1, 2, 3}) CHECK_FALSE(shared.peek(a.key(k) + ":#lock"));  // released
  CHECK(a(2).source() == Source::memory);  // the value read under the lock went into memory
}
