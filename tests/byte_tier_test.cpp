// The byte tier (shared store) path of Cached, on an in-process ByteStore double: payload round
// trip, cross-"process" sharing, the lock, bad bytes, and store failures that must not fail a call.
#include <atomic>
#include <cstdint>
#include <future>
#include <larder/larder.hpp>
#include <larder/tiered_store.hpp>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/counting_fn.hpp"
#include "support/forwarding_byte_store.hpp"
#include "support/gate.hpp"
#include "support/map_byte_store.hpp"
#include "support/sealed_codec.hpp"

using namespace std::chrono_literals;
using larder::testing::CountingFn;
using larder::testing::MapByteStore;

namespace {
auto wrap(CountingFn& fn) {
  return [&fn](std::int64_t id) { return fn(id); };
}

/// L1 memory over L2 bytes, as a service instance would have.
struct Tiered final : larder::Store {
  larder::MemoryStore memory;
  MapByteStore& bytes;
  explicit Tiered(MapByteStore& b) : bytes{b} {}
  larder::MemoryStore* memory_tier() noexcept override { return &memory; }
  larder::ByteStore* byte_tier() noexcept override { return &bytes; }
};

/// A value for Sealed (support/sealed_codec.hpp).
struct Doubled {
  std::int64_t v = 0;
};

/// No to_json/from_json, so no Codec.
struct Opaque {
  std::int64_t v = 0;
};
static_assert(!larder::Encodable<Opaque>);
}  // namespace

TEST_CASE("A value written by one instance is read by another from the byte store", "[bytes]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  Tiered one{shared}, two{shared};
  CountingFn fn;
  larder::Options o{.ttl = 1h, .fresh_for = 30min, .clock = &clock};
  larder::Cached a{one, "T", "f", wrap(fn), o};
  larder::Cached b{two, "T", "f", wrap(fn), o};
  CHECK(*a(4) == 40);
  clock.advance(5min);
  auto r = b(4);
  CHECK(*r == 40);
  CHECK(r.source() == larder::Source::remote);
  CHECK(r.age() == 5min);  // the stamps travelled with the value
  CHECK(b(4).source() == larder::Source::memory);
  CHECK(fn.calls == 1);
  // Served from the shared tier without running fn: a hit, not a miss, whatever the tier.
  CHECK(a.stats().misses == 1);
  CHECK(b.stats().misses == 0);
  CHECK(b.stats().hits == 2);
  CHECK(b.stats().loads == 0);
  const auto raw = shared.peek(a.key(4));
  REQUIRE(raw);
  CHECK(raw->starts_with("LRD1 "));
  CHECK(raw->find("larder:v1:T:f:4\n40") != std::string::npos);
}

TEST_CASE("A byte-only store works without a memory tier", "[bytes]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  larder::Cached c{shared, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  CHECK(*c(1) == 10);
  CHECK(c(1).source() == larder::Source::remote);
  CHECK(fn.calls == 1);
  clock.advance(61min);
  CHECK(c(1).source() == larder::Source::computed);
}

TEST_CASE("stale_if_error on a byte-only store reports the stale value's tier",
          "[bytes][failure]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  larder::Cached c{shared,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 10h, .fresh_for = 1h, .stale_if_error = 1h, .clock = &clock}};
  c(1);
  clock.advance(90min);
  fn.fail = true;
  auto r = c(1);
  CHECK(r.stale());
  CHECK(*r == 10);
  CHECK(r.source() == larder::Source::remote);
  CHECK(c.stats().stale_on_error == 1);
}

TEST_CASE("Garbage, foreign keys and other schemas are misses, counted and overwritten",
          "[bytes][decode]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  larder::Cached c{shared, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  larder::Cached v2{shared, "T", "f", wrap(fn), {.ttl = 1h, .schema_version = 2, .clock = &clock}};
  const auto key = c.key(1);

  shared.poke(key, "\x01\x02garbage");
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 1);
  CHECK(shared.peek(key)->starts_with("LRD1 "));  // overwritten

  // Bytes written for another key (a collision or foreign data).
  c(2);
  shared.poke(key, *shared.peek(c.key(2)));
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 2);

  // Another deploy's schema under this key: the fingerprint differs.
  v2(1);
  shared.poke(key, [&] {
    auto bytes = *shared.peek(v2.key(1));
    auto pos = bytes.find("larder:v2:T:f:1");
    bytes.replace(pos, 15, "larder:v1:T:f:1");
    return bytes;
  }());
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 3);

  // A valid envelope whose value does not decode as the type.
  auto bytes = *shared.peek(key);
  shared.poke(key, bytes.substr(0, bytes.find('\n') + 1) + "\"not a number\"");
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 4);
}

TEST_CASE("A hashed key's payload carries the whole key, so colliding calls never share a value",
          "[bytes][decode]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  std::atomic<int> calls{0};
  auto search = [&calls](std::int64_t id, const std::string& query) {
    ++calls;
    return query.substr(0, 3) + std::to_string(id);
  };
  larder::Cached c{shared, "T", "search", search, {.ttl = 1h, .clock = &clock}};
  const std::string a(300, 'a'), b(300, 'b');
  CHECK(*c(1, a) == "aaa1");
  const auto key_a = c.key(1, a);
  CHECK(key_a.size() <= c.options().max_key_length);
  CHECK(key_a.find('#') != std::string::npos);  // its tail is hashed
  const auto raw = shared.peek(key_a);
  REQUIRE(raw);
  CHECK(raw->find(" larder:v1:T:search:" + a + ":1\n\"aaa1\"") != std::string::npos);
  // A collision, made by hand: a's payload under b's key. Only the whole key tells them apart.
  shared.poke(c.key(1, b), *raw);
  CHECK(*c(1, b) == "bbb1");
  CHECK(c.stats().decode_errors == 1);
  CHECK(*c(1, a) == "aaa1");
  CHECK(calls == 2);  // a's value was still served to a
}

TEST_CASE("Stamps beyond the clock's range in a payload are decode errors, never served",
          "[bytes][decode]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  larder::Cached c{shared, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  const auto key = c.key(1);
  c(1);
  const std::string good = *shared.peek(key);
  // "LRD1 <fp> <written> <fresh_until> <expires> <key length> <key>\n<value>": field 2..4 are
  // the stamps, in Unix ms. A TimePoint (ns in an int64) ends at 9223372036854 ms; a larger stamp
  // was never written by larder, and converting it to ns overflowed (UB) into some other time.
  auto with_field = [&](int field, std::string_view text) {
    std::size_t begin = 0;
    for (int i = 0; i < field; ++i) begin = good.find(' ', begin) + 1;
    const std::size_t end = good.find(' ', begin);
    std::string bytes = good;
    bytes.replace(begin, end - begin, text);
    return bytes;
  };
  int errors = 0;
  for (int field : {2, 3, 4}) {
    for (std::string_view stamp : {"9223372036855", "99999999999999", "18446744073709551615"}) {
      INFO("field " << field << " = " << stamp);
      shared.poke(key, with_field(field, stamp));
      const int before = fn.calls;
      auto r = c(1);
      CHECK(*r == 10);
      CHECK(r.source() == larder::Source::computed);
      CHECK(fn.calls == before + 1);
      CHECK(c.stats().decode_errors == static_cast<std::uint64_t>(++errors));
      c.invalidate(1);
    }
  }
  // The largest stamp larder writes (a TimePoint::max() expiry) still decodes.
  shared.poke(key, with_field(4, "9223372036854"));
  CHECK(c(1).source() == larder::Source::remote);
  CHECK(c.stats().decode_errors == static_cast<std::uint64_t>(errors));
}

TEST_CASE("A failing byte store never fails the call", "[bytes][failure]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  std::vector<std::string> errors;
  larder::Cached c{shared,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 1h, .clock = &clock, .on_error = [&](const larder::ErrorEvent& e) {
                      errors.emplace_back(e.what);
                    }}};
  shared.failing = true;
  CHECK(*c(1) == 10);
  CHECK(*c(1) == 10);
  CHECK(fn.calls == 2);
  CHECK(c.stats().store_errors >= 2);
  REQUIRE_FALSE(errors.empty());
  CHECK(errors.front() == "map store: injected failure");
  shared.failing = false;
  CHECK(*c(1) == 10);
  CHECK(c(1).source() == larder::Source::remote);
}

TEST_CASE("A cold key locked by another process is polled, not recomputed", "[bytes][lock]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  Tiered one{shared}, two{shared};
  CountingFn fn;
  larder::Options o{.ttl = 1h, .lock_poll = 1ms, .clock = &clock};
  larder::Cached a{one, "T", "f", wrap(fn), o};
  larder::Cached b{two, "T", "f", wrap(fn), o};
  fn.close_gate();
  auto first = std::async(std::launch::async, [&] { return a(3); });
  fn.wait_inside(1);  // instance one holds the lock and computes
  auto second = std::async(std::launch::async, [&] { return b(3); });
  std::this_thread::sleep_for(20ms);  // instance two polls meanwhile
  fn.open_gate();
  CHECK(*first.get() == 30);
  auto r = second.get();
  CHECK(*r == 30);
  CHECK(r.source() == larder::Source::remote);
  CHECK(fn.calls == 1);
  CHECK_FALSE(shared.peek(a.key(3) + ":#lock"));  // released by its owner
}

TEST_CASE("fail_fast refuses to wait for another process", "[bytes][lock]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  larder::Cached c{shared,
                   "T",
                   "f",
                   wrap(fn),
                   {.ttl = 1h, .on_cold = larder::OnCold::fail_fast, .clock = &clock}};
  REQUIRE(shared.try_lock(c.key(5) + ":#lock", "someone-else", 10s));
  CHECK_THROWS_AS(c(5), larder::ColdCacheError);
  CHECK(fn.calls == 0);
  clock.advance(11s);  // the holder crashed: its lease ran out
  CHECK(*c(5) == 50);
}

TEST_CASE("A stale shared entry is refreshed by one process only", "[bytes][freshness]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  CountingFn fn;
  larder::Cached c{shared, "T", "f", wrap(fn), {.ttl = 24h, .fresh_for = 1h, .clock = &clock}};
  c(1);
  clock.advance(2h);
  // Another process holds the refresh lock: we are served the stale value and do not compute.
  REQUIRE(shared.try_lock(c.key(1) + ":#lock", "other", 1min));
  auto r = c(1);
  CHECK(r.stale());
  CHECK(*r == 10);
  CHECK(fn.calls == 1);
  REQUIRE(shared.unlock(c.key(1) + ":#lock", "other"));
  fn.offset = 1;
  auto fresh = c(1);
  CHECK(*fresh == 11);
  CHECK_FALSE(fresh.stale());
}

TEST_CASE("A stale memory copy another instance already refreshed is taken from the shared tier",
          "[bytes][freshness]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  Tiered one{shared}, two{shared};
  CountingFn fn;
  larder::Options o{.ttl = 24h, .fresh_for = 1h, .clock = &clock};
  larder::Cached a{one, "T", "f", wrap(fn), o};
  larder::Cached b{two, "T", "f", wrap(fn), o};
  CHECK(*a(1) == 10);
  CHECK(b(1).source() == larder::Source::remote);  // both memory tiers hold the value now
  clock.advance(2h);                               // and both copies are stale
  fn.offset = 1;
  auto refreshed = a(1);  // the shared copy is as old as a's own: a recomputes
  CHECK(*refreshed == 11);
  CHECK(refreshed.source() == larder::Source::computed);
  CHECK(fn.calls == 2);
  clock.advance(1min);
  // b's memory copy is stale, but a refreshed the key a minute ago: b takes that value.
  auto r = b(1);
  CHECK(*r == 11);
  CHECK_FALSE(r.stale());
  CHECK(r.source() == larder::Source::remote);
  CHECK(r.age() == 1min);
  CHECK(fn.calls == 2);
  CHECK(b.stats().misses == 0);
  CHECK(b.stats().loads == 0);
  CHECK(b.stats().hits == 2);
  CHECK(b(1).source() == larder::Source::memory);  // and keeps it in its memory tier
  // The lock b took to refresh was released: a later refresh by a is not kept waiting.
  CHECK(shared.try_lock(b.key(1) + ":#lock", "probe", 1min));
}

namespace {
/// A byte store over `inner` whose next get(), once armed, waits at `gate` and throws
/// std::bad_alloc (what a store's allocation of the bytes read may throw: not a StoreError).
class OutOfMemoryGet final : public larder::testing::ForwardingByteStore {
 public:
  explicit OutOfMemoryGet(MapByteStore& inner) : ForwardingByteStore{inner} {}
  std::optional<std::string> get(std::string_view key) override {
    if (fail_next_get.exchange(false)) {
      gate.pass();
      throw std::bad_alloc();
    }
    return ForwardingByteStore::get(key);
  }
  std::atomic<bool> fail_next_get{false};
  larder::testing::Gate gate;
};
}  // namespace

TEST_CASE("A stale memory copy whose shared-tier re-read throws releases the lock and the flight",
          "[bytes][freshness][failure]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  OutOfMemoryGet oom{shared};
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, oom};
  CountingFn fn;
  larder::Cached c{
      tiered, "T", "f", wrap(fn), {.ttl = 24h, .fresh_for = 1h, .cold_wait = 60s, .clock = &clock}};
  CHECK(*c(1) == 10);
  clock.advance(2h);  // the memory copy is stale: the next call takes the shared tier's lock and
                      // reads the shared tier again (another instance may have refreshed it)
  oom.gate.close();
  oom.fail_next_get = true;
  auto refresher = std::async(std::launch::async, [&] { return c(1); });
  oom.gate.wait_inside(1);  // in that re-read, holding the lock and leading the key's flight
  l1.clear();               // so that the next caller finds nothing and joins that flight
  auto waiter = std::async(std::launch::async, [&] { return c(1); });
  while (c.stats().waiting == 0) std::this_thread::sleep_for(1ms);
  oom.gate.open();
  CHECK_THROWS_AS(refresher.get(), std::bad_alloc);
  // The flight ended with the re-read's exception (not "computation abandoned")...
  CHECK_THROWS_AS(waiter.get(), std::bad_alloc);
  CHECK(c.stats().coalesced_failures == 1);
  // ...and the lock is free at once, not held until its lease (lock_lease, 30 s) runs out.
  const bool lock_free = shared.try_lock(c.key(1) + ":#lock", "probe", 1min);
  CHECK(lock_free);
  if (lock_free) CHECK(shared.unlock(c.key(1) + ":#lock", "probe"));
  CHECK(fn.calls == 1);
  fn.offset = 1;
  auto r = c(1);  // the key is free in this process and across processes: it is computed at once
  CHECK(*r == 11);
  CHECK(r.source() == larder::Source::computed);
}

TEST_CASE("An invalidate() during a computation keeps its result out of both tiers",
          "[bytes][invalidate]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, shared};
  larder::testing::ReadThenHoldFn fn;
  larder::Cached c{
      tiered, "T", "f", [&fn](std::int64_t id) { return fn(id); }, {.ttl = 1h, .clock = &clock}};
  fn.gate.close();
  auto before = std::async(std::launch::async, [&] { return c(1); });
  fn.gate.wait_inside(1);  // it read row 1, holding the key's lock in the shared tier
  fn.db = 2;
  c.invalidate(1);
  fn.gate.open();
  CHECK(*before.get() == 101);
  CHECK_FALSE(shared.peek(c.key(1)));  // not written to the shared tier
  const auto after = c(1);             // nor to memory
  CHECK(*after == 102);
  CHECK(after.source() == larder::Source::computed);
  CHECK(shared.peek(c.key(1)));  // a computation begun later is written
  CHECK(fn.calls == 2);
}

namespace {
/// A byte store over `inner` whose get() waits at `gate` (while closed) after it read the bytes.
class HeldGet final : public larder::testing::ForwardingByteStore {
 public:
  explicit HeldGet(MapByteStore& inner) : ForwardingByteStore{inner} {}
  std::optional<std::string> get(std::string_view key) override {
    auto bytes = ForwardingByteStore::get(key);
    gate.pass();
    return bytes;
  }
  larder::testing::Gate gate;
};
}  // namespace

TEST_CASE("A shared-tier read under way when its key is invalidated is not copied into memory",
          "[bytes][invalidate]") {
  larder::FakeClock clock;
  MapByteStore shared{clock};
  HeldGet held{shared};
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, held};
  CountingFn fn;
  larder::Cached c{tiered, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  larder::Cached other{shared, "T", "f", wrap(fn), {.ttl = 1h, .clock = &clock}};
  CHECK(*other(1) == 10);  // another instance cached row version 0
  held.gate.close();
  auto before = std::async(std::launch::async, [&] { return c(1); });
  held.gate.wait_inside(1);  // it read version 0's bytes
  fn.offset = 1;
  c.invalidate(1);  // deletes them from the shared tier; memory has nothing yet
  held.gate.open();
  const auto old = before.get();
  CHECK(*old == 10);
  CHECK(old.source() == larder::Source::remote);
  const auto after = c(1);  // memory did not keep version 0
  CHECK(*after == 11);
  CHECK(after.source() == larder::Source::computed);
  CHECK(fn.calls == 2);
}

TEST_CASE("A Cached over a MemoryStore does not compile its value's codec", "[bytes][codec]") {
  // This file builds only if constructing over a MemoryStore (the constructor class template
  // argument deduction picks for it, and the one named explicitly) compiles neither encode nor
  // decode of a Sealed value's codec.
  larder::MemoryStore store;
  int calls = 0;
  auto fn = [&calls](std::int64_t id) {
    ++calls;
    return larder::testing::Sealed<Doubled>{{id * 2}};
  };
  larder::Cached deduced{store, "Sealed", "deduced", fn};
  CHECK(deduced(21)->v == 42);
  CHECK(deduced(21)->v == 42);
  CHECK(deduced(21).source() == larder::Source::memory);
  larder::Cached<decltype(fn)> named{store, "Sealed", "named", fn};
  CHECK(named(4)->v == 8);
  CHECK(calls == 2);
}

TEST_CASE("A result type without a codec is refused by a byte store, and cached in memory",
          "[bytes][codec]") {
  auto fn = [](std::int64_t id) { return Opaque{id + 1}; };
  larder::FakeClock clock;
  MapByteStore bytes{clock};
  Tiered tiered{bytes};
  try {
    larder::Cached c{tiered, "Opaque", "of", fn};
    FAIL("a byte store took a value it cannot encode");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(),
               Catch::Contains("larder:v1:Opaque:of:") && Catch::Contains("has no larder::Codec"));
  }
  CHECK_THROWS_AS((larder::Cached{bytes, "Opaque", "bytes_only", fn}), std::invalid_argument);
  larder::MemoryStore memory;
  larder::Cached in_memory{memory, "Opaque", "of", fn};
  CHECK(in_memory(1)->v == 2);
  CHECK(in_memory(1).source() == larder::Source::memory);
}
