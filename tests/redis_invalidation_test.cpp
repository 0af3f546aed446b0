// Invalidation across instances: TieredStores (own MemoryStore L1, own RedisStore connection) over
// one real redis-server (tests/support/redis_server.hpp). invalidate() and refresh() on instance A
// reach instance B's L1 through RedisStore's invalidation bus; a lost subscription flushes B's L1
// once subscribed again; another process gets the message too; destruction never hangs.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <larder/larder.hpp>
#include <larder/redis_store.hpp>
#include <larder/tiered_store.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/counting_fn.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using larder::Source;
using larder::testing::CountingFn;
using larder::testing::elapsed_since;
using larder::testing::local;
using larder::testing::Log;
using larder::testing::RedisServer;
using larder::testing::shared_server;

namespace {

auto wrap(CountingFn& fn) {
  return [&fn](std::int64_t id) { return fn(id); };
}

/// Polls cond every 2 ms until it holds or `limit` passes; returns its last value.
template <class F>
bool eventually(F&& cond, std::chrono::milliseconds limit = 10s) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!cond()) {
    if (elapsed_since(t0) > limit) return cond();
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

/// Runs round(), which returns how long what it bounds took, until a run is within `bound`, at
/// most three times. A loaded machine may stall one run past the bound; what hangs, or waits longer
/// than the bound by design, is past it every time. The bound itself is never widened.
template <class Round>
void within_bound_once(std::chrono::milliseconds bound, Round&& round) {
  std::string took;
  bool within = false;
  for (int run = 0; run < 3 && !within; ++run) {
    const std::chrono::milliseconds t = round();
    took += (took.empty() ? "" : ", ") + std::to_string(t.count()) + " ms";
    within = t < bound;
  }
  INFO("took " << took << "; bound " << bound.count() << " ms");
  CHECK(within);
}

/// One service instance: its own L1, its own Redis connection(s) and bus, one cached function.
struct Instance {
  Instance(int port, const std::string& prefix, larder::TieredOptions t = {},
           larder::RedisOptions ro = {})
      : redis{with_port(std::move(ro), port)},
        store{memory, redis, t},
        cached{store, "Inv", "f", wrap(fn), {.ttl = 1h, .prefix = prefix}} {}
  static larder::RedisOptions with_port(larder::RedisOptions o, int port) {
    o.port = port;
    if (o.connect_timeout == 200ms) o.connect_timeout = 1s;
    if (o.command_timeout == 100ms) o.command_timeout = 1s;
    return o;
  }
  bool subscribed() const { return redis.stats().bus_subscribed; }

  CountingFn fn;
  larder::MemoryStore memory;
  larder::RedisStore redis;
  larder::TieredStore store;
  larder::Cached<decltype(wrap(std::declval<CountingFn&>()))> cached;
};

}  // namespace

TEST_CASE("invalidate() on one instance drops the entry from another instance's L1",
          "[redis][invalidation]") {
  auto& server = shared_server();
  Instance a{server.port(), "inv1"};
  Instance b{server.port(), "inv1"};
  REQUIRE(eventually([&] { return b.subscribed(); }));  // B hears from now on

  {
    // A's message reaches B's L1 whenever B's subscriber reads it: wait, or it may drop the copy
    // B is about to fill below.
    const auto received = b.redis.stats().invalidations_received;
    a.cached.invalidate(7);
    REQUIRE(eventually([&] { return b.redis.stats().invalidations_received > received; }));
  }
  CHECK(a.cached(7).source() == Source::computed);
  CHECK(b.cached(7).source() == Source::remote);
  CHECK(*b.cached(7) == 70);
  CHECK(b.cached(7).source() == Source::memory);  // B's L1 copy
  CHECK(b.fn.calls == 0);

  a.fn.offset = b.fn.offset = 1;  // the data behind key 7 changed
  const auto received = b.redis.stats().invalidations_received;
  a.cached.invalidate(7);
  CHECK(a.redis.stats().invalidations_published >= 2);
  REQUIRE(eventually([&] { return b.redis.stats().invalidations_received > received; }));
  auto r = b.cached(7);
  CHECK(r.source() == Source::computed);  // not its L1 copy; Redis has nothing either
  CHECK(*r == 71);
  CHECK(b.fn.calls == 1);
  CHECK(a.redis.stats().invalidations_received == 0);  // A ignores its own messages
  CHECK(a.cached.stats().store_errors == 0);
  CHECK(b.cached.stats().store_errors == 0);
}

TEST_CASE("refresh() on one instance makes another instance read the new value from Redis",
          "[redis][invalidation]") {
  auto& server = shared_server();
  Instance a{server.port(), "inv2"};
  Instance b{server.port(), "inv2"};
  REQUIRE(eventually([&] { return a.subscribed() && b.subscribed(); }));
  {
    const auto received = b.redis.stats().invalidations_received;
    a.cached.invalidate(3);  // its message reaches B's L1 when it does: wait for it
    REQUIRE(eventually([&] { return b.redis.stats().invalidations_received > received; }));
  }
  CHECK(*a.cached(3) == 30);
  CHECK(*b.cached(3) == 30);
  CHECK(b.cached(3).source() == Source::memory);

  a.fn.offset = b.fn.offset = 5;
  const auto received = b.redis.stats().invalidations_received;
  auto fresh = a.cached.refresh(3);
  CHECK(*fresh == 35);
  CHECK(fresh.source() == Source::computed);
  REQUIRE(eventually([&] { return b.redis.stats().invalidations_received > received; }));
  auto r = b.cached(3);
  CHECK(*r == 35);
  CHECK(r.source() == Source::remote);  // read from Redis, not recomputed
  CHECK(b.fn.calls == 0);
  CHECK(a.fn.calls == 2);
  // A keeps its own refreshed copy: its own message is not applied to it.
  CHECK(a.cached(3).source() == Source::memory);
}

TEST_CASE("Two TieredStores on one RedisStore: the other L1 gets the message, the sender's not",
          "[redis][invalidation]") {
  auto& server = shared_server();
  larder::RedisStore redis{local(server.port())};
  CountingFn fa, fb;
  larder::MemoryStore ma, mb;
  larder::TieredStore ta{ma, redis}, tb{mb, redis};
  larder::Options o{.ttl = 1h, .prefix = "inv3"};
  larder::Cached a{ta, "Inv", "f", wrap(fa), o};
  larder::Cached b{tb, "Inv", "f", wrap(fb), o};
  REQUIRE(eventually([&] { return redis.stats().bus_subscribed; }));
  // A cold key, without a.invalidate(1): its message would come back to B's listener at a moment
  // of the subscriber's choosing (perhaps right after B's L1 is filled below), and this bus does
  // not count its own messages, so the test could not wait for it.
  redis.erase(a.key(1));
  CHECK(*a(1) == 10);
  CHECK(b(1).source() == Source::remote);
  CHECK(b(1).source() == Source::memory);
  fa.offset = fb.offset = 2;
  a.refresh(1);
  // The message comes back to this very bus: B's listener applies it, A's own is skipped.
  REQUIRE(eventually([&] { return b(1).source() != Source::memory; }));
  CHECK(*b(1) == 12);
  CHECK(a(1).source() == Source::memory);
  CHECK(*a(1) == 12);
}

TEST_CASE("A killed subscription: B's L1 is flushed once subscribed again, then serves new values",
          "[redis][invalidation][failure]") {
  auto& server = shared_server();
  Log log;
  Instance b{server.port(), "inv4", {}, {.logger = log.hook()}};
  REQUIRE(eventually([&] { return b.subscribed(); }));
  // A writer that does not broadcast (broadcast_invalidations = false): its refresh reaches Redis
  // but no L1, as a message lost while B was not subscribed would.
  Instance quiet{server.port(), "inv4", {.broadcast_invalidations = false}};
  quiet.cached.invalidate(9);
  CHECK(*b.cached(9) == 90);
  CHECK(b.cached(9).source() == Source::memory);
  quiet.fn.offset = 4;
  CHECK(*quiet.cached.refresh(9) == 94);
  CHECK(*b.cached(9) == 90);  // B still serves its L1 copy: nobody told it
  CHECK(b.cached(9).source() == Source::memory);
  CHECK(quiet.redis.stats().invalidations_published == 0);

  const auto before = b.redis.stats();
  CHECK(before.bus_subscriptions >= 1);
  auto raw = server.client();
  CHECK(std::stoll(raw.command({"CLIENT", "KILL", "TYPE", "pubsub"})) >= 1);
  REQUIRE(eventually([&] {
    const auto s = b.redis.stats();
    return s.bus_subscriptions > before.bus_subscriptions && s.bus_subscribed;
  }));
  CHECK(b.redis.stats().bus_errors > before.bus_errors);
  auto r = b.cached(9);
  CHECK(r.source() == Source::remote);  // L1 flushed: read again from Redis
  CHECK(*r == 94);
  CHECK(b.fn.calls == 1);
  CHECK(log.mentions("invalidation subscriber"));
  CHECK(b.cached.stats().store_errors == 0);
}

TEST_CASE("Redis restarted: B resubscribes, its L1 is flushed, and invalidations flow again",
          "[redis][invalidation][failure]") {
  RedisServer server;
  Instance a{server.port(), "inv5", {}, {.breaker_cooldown = 200ms}};
  Instance b{server.port(), "inv5", {}, {.breaker_cooldown = 200ms}};
  REQUIRE(eventually([&] { return a.subscribed() && b.subscribed(); }));
  CHECK(*a.cached(2) == 20);
  CHECK(*b.cached(2) == 20);
  CHECK(b.cached(2).source() == Source::memory);
  const auto before = b.redis.stats().bus_subscriptions;

  server.stop();
  REQUIRE(eventually([&] { return !b.subscribed(); }));
  CHECK(b.cached(2).source() == Source::memory);  // L1 keeps serving while Redis is down
  server.restart();
  REQUIRE(eventually([&] { return b.redis.stats().bus_subscriptions > before && b.subscribed(); }));
  // Redis restarted empty, and B's L1 was flushed: B computes (the breaker may still be open).
  b.fn.offset = 1;
  auto r = b.cached(2);
  CHECK(r.source() != Source::memory);
  CHECK(*r == 21);

  // Invalidations reach B again.
  REQUIRE(eventually([&] { return a.subscribed() && a.redis.available(); }));
  CHECK(b.cached(2).source() == Source::memory);
  a.fn.offset = b.fn.offset = 3;
  const auto received = b.redis.stats().invalidations_received;
  REQUIRE(eventually([&] {
    a.cached.invalidate(2);  // retried while A's breaker may still be cooling down
    return eventually([&] { return b.redis.stats().invalidations_received > received; }, 200ms);
  }));
  auto s = b.cached(2);
  CHECK(s.source() == Source::computed);
  CHECK(*s == 23);
}

TEST_CASE("A message from another larder build (other hash fingerprint) flushes the namespace",
          "[redis][invalidation]") {
  auto& server = shared_server();
  Instance b{server.port(), "inv6"};
  CountingFn other_fn;
  larder::Cached other{b.store, "Inv", "other", wrap(other_fn), {.ttl = 1h, .prefix = "inv6"}};
  REQUIRE(eventually([&] { return b.subscribed(); }));
  for (std::int64_t k : {1, 2}) {
    b.cached.invalidate(k);
    CHECK(*b.cached(k) == k * 10);
  }
  other.invalidate(1);
  CHECK(*other(1) == 10);
  CHECK(b.cached(1).source() == Source::memory);
  CHECK(other(1).source() == Source::memory);

  auto raw = server.client();
  const std::string channel = "larder:invalidate:0";
  const auto received = b.redis.stats().invalidations_received;
  // Malformed: ignored. Then a well-formed message whose hash fingerprint is not ours.
  CHECK(raw.command({"PUBLISH", channel, "LRI1 garbage"}) == "1");
  CHECK(raw.command({"PUBLISH", channel,
                     "LRI1 00000000000000aa 0000000000000000 0000000000000000 0000000000000001 "
                     "inv6:v1:Inv:f:"}) == "1");
  REQUIRE(eventually([&] { return b.redis.stats().invalidations_received > received; }));
  CHECK(b.cached(1).source() == Source::remote);  // every key of Inv:f dropped from L1
  CHECK(b.cached(2).source() == Source::remote);
  CHECK(other(1).source() == Source::memory);  // another function: left alone
}

TEST_CASE("Publishing to a Redis that is down: counted as a store error, never thrown",
          "[redis][invalidation][failure]") {
  RedisServer server;
  const int port = server.port();
  Instance a{port, "inv7", {}, {.connect_timeout = 200ms, .command_timeout = 200ms}};
  CHECK(*a.cached(1) == 10);
  server.kill();
  const auto errors = a.cached.stats().store_errors;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_NOTHROW(a.cached.invalidate(1));
  CHECK_NOTHROW(a.cached.refresh(1));
  CHECK(elapsed_since(t0) < 3s);
  CHECK(a.cached.stats().store_errors >= errors + 2);  // at least the two publishes
  CHECK(a.cached(1).source() == Source::memory);       // the refreshed value
}

TEST_CASE("Destroying instances never hangs: Redis down, frozen, or never there",
          "[redis][invalidation][failure]") {
  const larder::RedisOptions quick{.connect_timeout = 200ms, .command_timeout = 200ms};
  SECTION("Redis killed while subscribed") {
    within_bound_once(1500ms, [&] {
      RedisServer server;
      auto a = std::make_unique<Instance>(server.port(), "inv8", larder::TieredOptions{}, quick);
      REQUIRE(eventually([&] { return a->subscribed(); }));
      server.kill();
      REQUIRE(eventually([&] { return a->redis.stats().bus_errors >= 2; }));  // retrying
      const auto t0 = std::chrono::steady_clock::now();
      a.reset();
      return elapsed_since(t0);
    });
  }
  SECTION("Redis frozen (SIGSTOP) while subscribed") {
    within_bound_once(1500ms, [&] {
      RedisServer server;
      auto a = std::make_unique<Instance>(server.port(), "inv8", larder::TieredOptions{}, quick);
      REQUIRE(eventually([&] { return a->subscribed(); }));
      // Drop the subscription, then freeze: the subscriber's next SUBSCRIBE waits for a reply that
      // does not come (bounded by command_timeout) while the store is being destroyed.
      server.client().command({"CLIENT", "KILL", "TYPE", "pubsub"});
      server.freeze();
      REQUIRE(eventually([&] { return a->redis.stats().bus_errors >= 1; }));
      const auto t0 = std::chrono::steady_clock::now();
      a.reset();
      const auto took = elapsed_since(t0);
      server.thaw();
      return took;
    });
  }
  SECTION("Redis never there") {
    within_bound_once(1500ms, [&] {
      int port = 0;
      {
        RedisServer server;  // a port that was free a moment ago, and nothing listens on it now
        port = server.port();
      }
      auto a = std::make_unique<Instance>(port, "inv8", larder::TieredOptions{}, quick);
      CHECK(*a->cached(4) == 40);
      REQUIRE(eventually([&] { return a->redis.stats().bus_errors >= 1; }));
      CHECK_FALSE(a->subscribed());
      const auto t0 = std::chrono::steady_clock::now();
      a.reset();
      return elapsed_since(t0);
    });
  }
}

TEST_CASE("Cached objects come and go while invalidations arrive: no callback outlives its Cached",
          "[redis][invalidation]") {
  auto& server = shared_server();
  Instance a{server.port(), "inv9"};
  larder::RedisStore redis_b{local(server.port())};
  larder::MemoryStore memory_b;
  larder::TieredStore store_b{memory_b, redis_b};
  {
    CountingFn fn;  // the first listener starts B's subscriber
    larder::Cached b{store_b, "Inv", "f", wrap(fn), {.ttl = 1h, .prefix = "inv9"}};
    REQUIRE(eventually([&] { return redis_b.stats().bus_subscribed; }));
  }
  std::atomic<bool> done{false};
  std::thread publisher{[&] {
    for (std::int64_t i = 0; !done; ++i) a.cached.invalidate(i % 4);
  }};
  // At least 50 rounds, and on until B has received 50 messages (bounded).
  const auto t0 = std::chrono::steady_clock::now();
  for (int round = 0;
       round < 50 || (redis_b.stats().invalidations_received < 50 && elapsed_since(t0) < 20s);
       ++round) {
    CountingFn fn;
    larder::Cached b{store_b, "Inv", "f", wrap(fn), {.ttl = 1h, .prefix = "inv9"}};
    for (std::int64_t k = 0; k < 4; ++k) CHECK(*b(k) == k * 10);
  }  // each ~Cached unsubscribes while messages for its namespace keep coming
  done = true;
  publisher.join();
  CHECK(redis_b.stats().invalidations_received >= 50);
}

#ifdef LARDER_INVALIDATION_HELPER
extern char** environ;

TEST_CASE("Across processes: a refresh here reaches another process's L1",
          "[redis][invalidation][process]") {
  auto& server = shared_server();
  const auto dir =
      std::filesystem::temp_directory_path() / ("larder-inval-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ofstream{dir / "data"} << 1 << '\n';  // the "database": results are id * 100 + data

  std::int64_t data = 1;
  auto compute = [&](std::int64_t id) { return id * 100 + data; };
  larder::RedisStore redis{local(server.port())};
  larder::MemoryStore memory;
  larder::TieredStore store{memory, redis};
  larder::Cached a{store, "InvProc", "value", compute, {.ttl = 1h}};
  // Subscribed first: the flush that a (re)subscription makes also refuses the stores of the
  // computations under way (an invalidation may have been missed), and the helper is to find
  // 501 in Redis.
  REQUIRE(eventually([&] { return redis.stats().bus_subscribed; }));
  a.invalidate(5);
  CHECK(*a(5) == 501);

  const std::string port = std::to_string(server.port());
  const std::string dir_s = dir.string();
  std::vector<char*> argv{const_cast<char*>(LARDER_INVALIDATION_HELPER),
                          const_cast<char*>(port.c_str()), const_cast<char*>(dir_s.c_str()),
                          nullptr};
  pid_t pid = 0;
  REQUIRE(::posix_spawn(&pid, LARDER_INVALIDATION_HELPER, nullptr, nullptr, argv.data(), environ) ==
          0);
  // The helper subscribes, warms key 5 into its L1 (from Redis), then says "warm".
  const bool warm = eventually([&] { return std::filesystem::exists(dir / "warm"); }, 30s);
  CHECK(warm);
  if (warm) {
    data = 2;
    std::ofstream{dir / "data"} << 2 << '\n';
    CHECK(*a.refresh(5) == 502);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  std::ifstream result{dir / "result"};
  std::string line;
  std::getline(result, line);
  CHECK(line == "502 remote calls=0");  // the new value, read from Redis, not computed
  std::filesystem::remove_all(dir);
}
#endif

TEST_CASE(
    "An invalidation skipped by an open breaker reaches the other instances once Redis is back",
    "[redis][invalidation][failure]") {
  RedisServer server;
  const larder::RedisOptions quick{
      .connect_timeout = 200ms, .command_timeout = 100ms, .breaker_cooldown = 1s};
  Instance a{server.port(), "inv9", {}, quick};
  Instance b{server.port(), "inv9", {}, quick};
  REQUIRE(eventually([&] { return a.subscribed() && b.subscribed(); }));
  {
    const auto received = b.redis.stats().invalidations_received;
    a.cached.invalidate(1);  // its message reaches B's L1 when it does: wait for it
    REQUIRE(eventually([&] { return b.redis.stats().invalidations_received > received; }));
  }
  CHECK(*a.cached(1) == 10);
  CHECK(*b.cached(1) == 10);
  CHECK(b.cached(1).source() == Source::memory);  // B's L1 copy

  // A brief hiccup opens A's breaker (B's subscription survives it).
  server.freeze();
  a.cached(2);
  server.thaw();
  REQUIRE(a.redis.stats().breaker == larder::BreakerState::open);

  a.fn.offset = b.fn.offset = 1;  // the data behind key 1 changed
  const auto errors = a.cached.stats().store_errors;
  const auto received = b.redis.stats().invalidations_received;
  a.cached.invalidate(1);  // neither the DEL nor the PUBLISH can be sent now
  CHECK(a.cached.stats().store_errors == errors + 2);
  // A makes no further call: the store applies the DEL and sends the message on its own.
  REQUIRE(eventually([&] { return b.redis.stats().invalidations_received > received; }, 5s));
  auto r = b.cached(1);
  CHECK(*r == 11);
  CHECK(r.source() == Source::computed);  // not B's L1 copy, not the old value in Redis
}
