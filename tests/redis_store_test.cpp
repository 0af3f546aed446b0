// RedisStore against a real redis-server (tests/support/redis_server.hpp): the ByteStore contract,
// one command per hit, MGET, the lock, bad bytes, a multi-process stampede, Redis killed, restarted
// and frozen, AUTH, URLs and options, the value size guard, and TieredStore.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <larder/larder.hpp>
#include <larder/redis_store.hpp>
#include <larder/tiered_store.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/counting_fn.hpp"
#include "support/fake_redis.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using larder::testing::CountingFn;
using larder::testing::elapsed_since;
using larder::testing::local;
using larder::testing::Log;
using larder::testing::RawRedis;
using larder::testing::RedisServer;
using larder::testing::shared_server;

namespace {

auto wrap(CountingFn& fn) {
  return [&fn](std::int64_t id) { return fn(id); };
}

/// What RedisStore{url} is refused with (std::invalid_argument's text), or "" if it is accepted.
std::string url_rejection(const std::string& url) {
  try {
    larder::RedisStore store{url};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("RedisStore round-trips binary bytes and expires them with PX", "[redis]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  const std::string bytes{"a\0b\r\n\xff end", 10};
  store.set("rt:bin", bytes, 10s);
  CHECK(store.get("rt:bin") == bytes);
  CHECK_FALSE(store.get("rt:absent").has_value());

  auto raw = server.client();
  const auto pttl = std::stoll(raw.command({"PTTL", "rt:bin"}));
  CHECK(pttl > 9000);
  CHECK(pttl <= 10000);

  // Real Redis expiry, kept short. A loaded machine may stall between the SET and the GET longer
  // than the ttl: then the ttl is doubled and the round tried again (bounded), until the GET came
  // in time (the SET was sent after t0, so the value cannot have expired before t0 + ttl).
  bool seen = false;
  for (auto ttl = 60ms; !seen && ttl <= 8s; ttl *= 2) {
    const auto t0 = std::chrono::steady_clock::now();
    store.set("rt:short", "x", ttl);
    const auto got = store.get("rt:short");
    if (elapsed_since(t0) >= ttl) continue;
    CHECK(got == "x");
    seen = true;
    const auto t1 = std::chrono::steady_clock::now();
    while (store.get("rt:short").has_value() && elapsed_since(t1) < ttl + 10s)
      std::this_thread::sleep_for(5ms);
  }
  REQUIRE(seen);
  CHECK_FALSE(store.get("rt:short").has_value());

  store.erase("rt:bin");
  CHECK_FALSE(store.get("rt:bin").has_value());
  store.erase("rt:bin");  // absent: no error
  CHECK(store.stats().errors == 0);
}

TEST_CASE("RedisStore puts its key_prefix before every key and lock", "[redis]") {
  auto& server = shared_server();
  auto o = local(server.port());
  o.key_prefix = "tenant7:";
  larder::RedisStore store{o};
  store.set("k", "v", 10s);
  auto raw = server.client();
  CHECK(raw.command({"GET", "tenant7:k"}) == "v");
  CHECK(raw.command({"GET", "k"}) == "(nil)");
  CHECK(store.try_lock("k:#lock", "tok", 10s));
  CHECK(raw.command({"GET", "tenant7:k:#lock"}) == "tok");
  CHECK(store.unlock("k:#lock", "tok"));
  store.set("k2", "v2", 10s);
  CHECK(store.get_many(std::vector<std::string>{"k", "nope", "k2"}) ==
        std::vector<std::optional<std::string>>{"v", std::nullopt, "v2"});
}

TEST_CASE("get_many reads a batch with one MGET, in order", "[redis]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  std::vector<std::string> keys;
  for (int i = 0; i < 50; ++i) {
    keys.push_back("batch:" + std::to_string(i));
    if (i % 3 != 0) store.set(keys.back(), "v" + std::to_string(i), 10s);
  }
  auto raw = server.client();
  raw.command({"CONFIG", "RESETSTAT"});
  const auto sent = store.stats().commands;
  const auto got = store.get_many(keys);
  CHECK(raw.calls("mget") == 1);
  CHECK(raw.total_calls() == 1);
  CHECK(store.stats().commands - sent == 1);
  REQUIRE(got.size() == keys.size());
  for (int i = 0; i < 50; ++i) {
    if (i % 3 == 0)
      CHECK_FALSE(got[static_cast<std::size_t>(i)].has_value());
    else
      CHECK(got[static_cast<std::size_t>(i)] == "v" + std::to_string(i));
  }
  CHECK(store.get_many({}).empty());
  CHECK(raw.total_calls() == 1);  // an empty batch sends nothing
}

TEST_CASE("Cached::get_many over Redis reads the whole batch with one MGET", "[redis][cached]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  CountingFn fn;
  larder::Cached c{store, "T", "batch", wrap(fn), {.ttl = 1h}};
  std::vector<std::int64_t> ids;
  for (std::int64_t i = 1; i <= 20; ++i) {
    ids.push_back(i);
    c.invalidate(i);
    c(i);  // warm
  }
  auto raw = server.client();
  raw.command({"CONFIG", "RESETSTAT"});
  const auto results = c.get_many(std::span<const std::int64_t>{ids});
  CHECK(raw.calls("mget") == 1);
  CHECK(raw.total_calls() == 1);
  REQUIRE(results.size() == ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    CHECK(*results[i] == ids[i] * 10);
    CHECK(results[i].source() == larder::Source::remote);
  }
  CHECK(fn.calls == 20);
}

TEST_CASE("Cached over Redis: values and stamps round-trip, freshness and TTL follow the stamps",
          "[redis][cached]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  larder::FakeClock clock;
  CountingFn fn;
  larder::Options o{.ttl = 1h, .fresh_for = 30min, .prefix = "fresh", .clock = &clock};
  larder::Cached writer{store, "T", "f", wrap(fn), o};
  larder::Cached reader{store, "T", "f", wrap(fn), o};  // another instance, same Redis
  writer.invalidate(3);

  CHECK(writer(3).source() == larder::Source::computed);
  clock.advance(10min);
  auto r = reader(3);
  CHECK(*r == 30);
  CHECK(r.source() == larder::Source::remote);
  CHECK(r.age() == 10min);  // the stamps travelled with the value
  CHECK_FALSE(r.stale());
  CHECK(fn.calls == 1);

  // Redis keeps the entry for the whole ttl (SET PX), whatever the fake clock says.
  auto raw = server.client();
  const auto pttl = std::stoll(raw.command({"PTTL", writer.key(3)}));
  CHECK(pttl > 3'500'000);
  CHECK(pttl <= 3'600'000);

  clock.advance(25min);  // 35 min: stale; the caller recomputes (Refresh::caller)
  fn.offset = 1;
  auto s = reader(3);
  CHECK(*s == 31);
  CHECK(s.source() == larder::Source::computed);
  CHECK(fn.calls == 2);
  CHECK(*writer(3) == 31);  // the refresh reached Redis

  clock.advance(2h);  // past ttl by the stamps: a miss, computed again
  fn.offset = 2;
  auto t = writer(3);
  CHECK(*t == 32);
  CHECK(t.source() == larder::Source::computed);
}

TEST_CASE("A std::string that is not UTF-8 is cached in Redis and read back byte for byte",
          "[redis][cached][codec]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  std::string all{"\0embedded", 9};
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  CountingFn fn;
  auto binary = [&](std::int64_t id) { return all + std::to_string(fn(id)); };
  larder::Cached a{store, "T", "binary", binary, {.ttl = 1h}};
  a.invalidate(1);
  CHECK(*a(1) == all + "10");
  CHECK(a.stats().store_errors == 0);  // it was a store error: nlohmann_json refused to encode it
  larder::Cached b{store, "T", "binary", binary, {.ttl = 1h}};  // another instance
  auto r = b(1);
  CHECK(r.source() == larder::Source::remote);
  CHECK(*r == all + "10");
  CHECK(fn.calls == 1);
}

TEST_CASE("A Redis hit through Cached sends exactly one command", "[redis][cached]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  CountingFn fn;
  larder::Cached c{store, "T", "one_cmd", wrap(fn), {.ttl = 1h}};
  c.invalidate(5);
  CHECK(*c(5) == 50);
  auto raw = server.client();
  raw.command({"CONFIG", "RESETSTAT"});
  const auto sent = store.stats().commands;
  for (int i = 0; i < 20; ++i) {
    auto r = c(5);
    CHECK(*r == 50);
    CHECK(r.source() == larder::Source::remote);
  }
  CHECK(raw.calls("get") == 20);
  CHECK(raw.total_calls() == 20);  // no TTL, EXISTS or lock traffic on a hit
  CHECK(store.stats().commands - sent == 20);
  CHECK(fn.calls == 1);
}

TEST_CASE("The lock: owner-only release, lease expiry, NOSCRIPT fallback", "[redis][lock]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  auto raw = server.client();
  CHECK(raw.command({"SCRIPT", "LOAD",
                     "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', "
                     "KEYS[1]) else return 0 end"}) == "e9f69f2beb755be68b5e456ee2ce9aadfbc4ebf4");
  raw.command({"SCRIPT", "FLUSH"});  // the first unlock must fall back from EVALSHA to EVAL

  // Alice's lease is short; a loaded machine may stall past it before the checks of her hold are
  // done: then the round is tried again with a doubled lease (bounded), on a fresh key.
  std::string key;
  bool checked = false;
  for (auto lease = 150ms; !checked && lease <= 10s; lease *= 2) {
    key = "L" + std::to_string(lease.count());
    const auto t0 = std::chrono::steady_clock::now();
    const bool alice = store.try_lock(key, "alice", lease);
    const bool bob = store.try_lock(key, "bob", 10s);
    const bool bob_freed = store.unlock(key, "bob");  // not bob's
    const std::string held_by = raw.command({"GET", key});
    if (elapsed_since(t0) >= lease) {
      raw.command({"DEL", key});  // whoever holds it: the next round uses another key
      continue;
    }
    CHECK(alice);
    CHECK_FALSE(bob);
    CHECK_FALSE(bob_freed);
    CHECK(held_by == "alice");
    checked = true;
  }
  REQUIRE(checked);
  // Alice's lease runs out (she "crashed"): Redis drops the key on its own.
  const auto t1 = std::chrono::steady_clock::now();
  while (raw.command({"EXISTS", key}) != "0" && elapsed_since(t1) < 30s)
    std::this_thread::sleep_for(5ms);
  CHECK(store.try_lock(key, "bob", 10s));
  CHECK_FALSE(store.unlock(key, "alice"));  // a holder whose lease ran out frees nothing
  CHECK(raw.command({"GET", key}) == "bob");
  CHECK(store.unlock(key, "bob"));
  CHECK(raw.command({"GET", key}) == "(nil)");
  CHECK_FALSE(store.unlock(key, "bob"));
  CHECK(store.stats().errors == 0);
}

TEST_CASE("A ttl or lease too long for Redis's clock is kept for a century", "[redis][ttl]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  auto raw = server.client();
  const auto forever = std::chrono::milliseconds::max();
  store.set("long:value", "v", forever);  // Redis refuses PX past its clock ("invalid expire")
  CHECK(store.get("long:value") == "v");
  CHECK(std::stoll(raw.command({"PTTL", "long:value"})) > 3'000'000'000'000);  // 95 years
  CHECK(store.try_lock("long:lock", "alice", forever));
  CHECK(store.try_lock_many(std::vector<std::string>{"long:lock2"}, "alice", forever) ==
        std::vector<bool>{true});
  CHECK_FALSE(store.try_lock("long:lock", "bob", 10s));
  CHECK(store.unlock("long:lock", "alice"));
  CHECK(store.unlock("long:lock2", "alice"));
  CHECK(store.stats().errors == 0);

  // Through Cached: a "forever" ttl and lease are stored, locked and hit without a store error.
  CountingFn fn;
  larder::Cached c{store, "T", "forever", wrap(fn), {.ttl = forever, .lock_lease = forever}};
  c.invalidate(1);
  CHECK(*c(1) == 10);
  CHECK(c(1).source() == larder::Source::remote);
  CHECK(fn.calls == 1);
  CHECK(c.stats().store_errors == 0);
}

TEST_CASE("try_lock_many takes the free locks in one pipelined round trip", "[redis][lock]") {
  auto& server = shared_server();
  auto o = local(server.port());
  o.key_prefix = "many:";
  larder::RedisStore store{o};
  auto raw = server.client();
  for (const char* k : {"A", "B", "C"}) raw.command({"DEL", std::string{"many:"} + k});
  REQUIRE(store.try_lock("B", "bob", 10s));
  const std::vector<std::string> keys{"A", "B", "C"};
  CHECK(store.try_lock_many(keys, "alice", 10s) == std::vector<bool>{true, false, true});
  CHECK(raw.command({"GET", "many:A"}) == "alice");
  CHECK(raw.command({"GET", "many:B"}) == "bob");
  CHECK(raw.command({"PTTL", "many:C"}) != "-1");  // with its lease
  // The connection is clean for the next command (every pipelined reply was read).
  CHECK(store.unlock("A", "alice"));
  CHECK(store.unlock("C", "alice"));
  CHECK(store.try_lock_many({}, "alice", 10s).empty());
  CHECK_THROWS_AS(store.try_lock_many(keys, "alice", 0ms), std::invalid_argument);
  CHECK(store.stats().errors == 0);
}

namespace {

/// A FakeRedis handler that keeps strings (SET [NX] [PX], GET, MGET, PING) and can lose replies:
/// while `lose` > 0, each SET is applied (or refused, as Redis would) and its reply lost: the
/// connection is closed at the last lost one. With `thief`, a SET whose reply is lost stores the
/// thief's token instead (this caller's lease ran out and another process took the lock).
struct LossyRedis {
  std::mutex mutex;
  std::map<std::string, std::string> data;
  std::vector<std::string> commands;  // names, in order
  int lose = 0;
  bool thief = false;

  static std::string bulk(const std::string* s) {
    return s ? "$" + std::to_string(s->size()) + "\r\n" + *s + "\r\n" : "$-1\r\n";
  }
  std::optional<std::string> operator()(std::size_t, const std::vector<std::string>& argv) {
    std::lock_guard lock{mutex};
    commands.push_back(argv[0]);
    std::string reply = "-ERR unknown command\r\n";
    if (argv[0] == "PING") {
      reply = "+PONG\r\n";
    } else if (argv[0] == "SET") {
      const bool nx = std::find(argv.begin(), argv.end(), "NX") != argv.end();
      if (nx && data.contains(argv[1])) {
        reply = "$-1\r\n";
      } else {
        data[argv[1]] = lose > 0 && thief ? "thief" : argv[2];
        reply = "+OK\r\n";
      }
      if (lose > 0) return --lose > 0 ? std::optional<std::string>{""} : std::nullopt;
    } else if (argv[0] == "GET" || argv[0] == "MGET") {
      reply = argv[0] == "MGET" ? "*" + std::to_string(argv.size() - 1) + "\r\n" : "";
      for (std::size_t i = 1; i < argv.size(); ++i) {
        const auto it = data.find(argv[i]);
        reply += bulk(it == data.end() ? nullptr : &it->second);
      }
    }
    return reply;
  }
  /// The next `n` SET replies are lost (see above); with `stolen`, by a thief.
  void lose_next(int n, bool stolen = false) {
    std::lock_guard lock{mutex};
    lose = n;
    thief = stolen;
  }
  auto handler() {
    return [this](std::size_t c, const std::vector<std::string>& argv) { return (*this)(c, argv); };
  }
};

}  // namespace

TEST_CASE("A lock whose SET NX reply was lost is this caller's on the retry, not another's",
          "[redis][lock]") {
  // The server applies the SET NX sent on a pooled connection, then closes it unanswered (the
  // reply is lost). The store retries once on a fresh connection, where SET NX finds the key held:
  // by this caller's own token, so the lock is taken (not waited for until its lease ends); by
  // another's, so it is not.
  LossyRedis redis;
  larder::testing::FakeRedis fake{redis.handler()};
  larder::RedisStore store{local(fake.port())};

  store.ping();  // a pooled connection: a closed one is retried
  redis.lose_next(1);
  CHECK(store.try_lock("L", "mine", 10s));
  store.ping();
  redis.lose_next(1, true);
  CHECK_FALSE(store.try_lock("T", "mine", 10s));

  // The same for a batch: the whole pipeline applied, every reply lost; B was held by bob.
  store.ping();
  {
    std::lock_guard lock{redis.mutex};
    redis.data["B"] = "bob";
  }
  redis.lose_next(3);
  const std::vector<std::string> keys{"A", "B", "C"};
  CHECK(store.try_lock_many(keys, "mine", 10s) == std::vector<bool>{true, false, true});
  {
    std::lock_guard lock{redis.mutex};
    CHECK(redis.data["A"] == "mine");
    CHECK(redis.data["B"] == "bob");
    CHECK(redis.data["C"] == "mine");
    CHECK(redis.data["L"] == "mine");
  }
  // No lost reply: a held key is refused with no further command.
  const auto sent = store.stats().commands;
  CHECK_FALSE(store.try_lock("B", "mine", 10s));
  CHECK(store.stats().commands == sent + 1);
  CHECK(store.stats().errors == 0);  // each lost reply was retried, not failed
}

TEST_CASE("A crashed holder's lock delays a cold key by its lease, no more", "[redis][lock]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  CountingFn fn;
  larder::Cached c{store,
                   "T",
                   "crashed",
                   wrap(fn),
                   {.ttl = 1h, .cold_wait = 10s, .lock_lease = 10s, .lock_poll = 10ms}};
  c.invalidate(9);
  // A process took the lock with a 300 ms lease and died. Timed from before the lock is taken: a
  // stall between taking it and the call would otherwise eat into the lease the call waits out.
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(store.try_lock(c.key(9) + ":#lock", "dead-process", 300ms));
  auto r = c(9);
  const auto took = elapsed_since(t0);
  CHECK(*r == 90);
  CHECK(r.source() == larder::Source::computed);
  CHECK(took >= 290ms);  // waited for the lease (Redis counts it from the SET, after t0)
  CHECK(took < 8s);      // and not for cold_wait (10 s)
  CHECK(fn.calls == 1);
}

TEST_CASE("Garbage, foreign-key and old-schema bytes in Redis are misses, counted, overwritten",
          "[redis][decode]") {
  auto& server = shared_server();
  larder::RedisStore store{local(server.port())};
  CountingFn fn;
  larder::Cached c{store, "T", "bad", wrap(fn), {.ttl = 1h}};
  larder::Cached v2{store, "T", "bad", wrap(fn), {.ttl = 1h, .schema_version = 2}};
  const auto key = c.key(1);
  auto raw = server.client();

  store.set(key, std::string{"\x00\x01garbage\xff", 11}, 1h);
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 1);
  CHECK(raw.command({"GET", key}).starts_with("LRD1 "));  // overwritten
  CHECK(c(1).source() == larder::Source::remote);

  c.invalidate(2);
  c(2);
  store.set(key, *store.get(c.key(2)), 1h);  // bytes written for another key
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 2);

  v2.invalidate(1);
  v2(1);
  auto old = *store.get(v2.key(1));  // another deploy's schema, planted under our key
  old.replace(old.find("larder:v2:"), 10, "larder:v1:");
  store.set(key, old, 1h);
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 3);

  store.set(key, "LRD1 ffff 1 2 3", 1h);  // truncated header
  CHECK(*c(1) == 10);
  CHECK(c.stats().decode_errors == 4);
  CHECK(c.stats().store_errors == 0);
  CHECK(c(1).source() == larder::Source::remote);
}

namespace {
/// Runs 4 helper processes x 4 threads (redis_stampede_helper) on cold keys, all at once, and
/// returns how many times each key was computed (the helpers log every computation).
std::map<std::int64_t, int> run_stampede(const std::vector<std::int64_t>& keys, bool bulk) {
  auto& server = shared_server();
  const auto dir =
      std::filesystem::temp_directory_path() / ("larder-stampede-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  larder::RedisStore store{local(server.port())};
  for (std::int64_t k : keys) {
    store.erase("larder:v1:Stampede:value:" + std::to_string(k));
    store.erase("larder:v1:Stampede:value:" + std::to_string(k) + ":#lock");
  }

  constexpr int kProcesses = 4;
  constexpr int kThreads = 4;
  std::vector<pid_t> pids;
  const std::string port = std::to_string(server.port());
  const std::string threads = std::to_string(kThreads);
  const std::string dir_s = dir.string();
  const std::string mode = "bulk";
  for (int p = 0; p < kProcesses; ++p) {
    // posix_spawn (fork+exec): the child is a fresh program, which TSan and ASan are happy with.
    std::vector<char*> argv{const_cast<char*>(LARDER_STAMPEDE_HELPER),
                            const_cast<char*>(port.c_str()), const_cast<char*>(threads.c_str()),
                            const_cast<char*>(dir_s.c_str())};
    if (bulk) argv.push_back(const_cast<char*>(mode.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    REQUIRE(::posix_spawn(&pid, LARDER_STAMPEDE_HELPER, nullptr, nullptr, argv.data(), environ) ==
            0);
    pids.push_back(pid);
  }
  // Start them together once all are ready (connected stores, threads about to run).
  auto ready = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir))
      n += e.path().filename().string().starts_with("ready.") ? 1 : 0;
    return n;
  };
  const auto t0 = std::chrono::steady_clock::now();
  while (ready() < kProcesses && elapsed_since(t0) < 30s) std::this_thread::sleep_for(5ms);
  CHECK(ready() == kProcesses);
  std::ofstream{dir / "go"} << "go\n";

  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  CHECK(failed == 0);
  std::map<std::int64_t, int> computations;
  std::ifstream log{dir / "computations"};
  for (long pid = 0, id = 0; log >> pid >> id;) ++computations[id];
  std::filesystem::remove_all(dir);
  return computations;
}
}  // namespace

TEST_CASE("Processes x threads on one cold key compute it exactly once", "[redis][stampede]") {
  auto computed = run_stampede({42}, /*bulk=*/false);
  CHECK(computed.size() == 1);
  CHECK(computed[42] == 1);
}

TEST_CASE("Processes x threads on cold keys in bulk compute each exactly once",
          "[redis][stampede]") {
  // get_many locks the keys it computes in Redis, as single calls do, and awaits the others.
  auto computed = run_stampede({41, 42, 43}, /*bulk=*/true);
  CHECK(computed.size() == 3);
  for (std::int64_t k : {41, 42, 43}) {
    INFO("key " << k);
    CHECK(computed[k] == 1);
  }
}

TEST_CASE("Redis killed and restarted mid-run: right values, bounded latency, hits resume",
          "[redis][failure]") {
  RedisServer server;
  Log log;
  larder::RedisStore store{{.port = server.port(),
                            .connect_timeout = 200ms,
                            .command_timeout = 200ms,
                            .breaker_failures = 2,
                            .breaker_cooldown = 100ms,
                            .logger = log.hook()}};
  CountingFn fn;
  std::atomic<int> reported{0};
  larder::Cached c{
      store, "T", "restart", wrap(fn), {.ttl = 1h, .on_error = [&](const larder::ErrorEvent&) {
                                          ++reported;
                                        }}};
  CHECK(c(1).source() == larder::Source::computed);
  CHECK(c(1).source() == larder::Source::remote);

  server.kill();
  // A call touches the store at most three times (read, lock, write), each bounded by the
  // timeouts; a refused connection costs far less. A loaded machine may stall one call past the
  // bound: then the 20 calls are made again (at most three rounds, the bound kept), since a call
  // that waits too long by design does so in every round.
  std::string worsts;
  bool within = false;
  for (int round = 0; round < 3 && !within; ++round) {
    std::chrono::milliseconds worst{0};
    for (int i = 0; i < 20; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      CHECK(*c(1) == 10);
      worst = std::max(worst, elapsed_since(t0));
    }
    worsts += (worsts.empty() ? "" : ", ") + std::to_string(worst.count()) + " ms";
    within = worst < 1500ms;
  }
  INFO("slowest call of each round: " << worsts);
  CHECK(within);
  CHECK(store.stats().errors >= 2);
  CHECK(store.stats().breaker_opens >= 1);
  CHECK(c.stats().store_errors >= 1);
  CHECK(reported >= 1);
  CHECK(log.mentions("circuit breaker open"));

  server.restart();
  bool hit = false;
  const auto t0 = std::chrono::steady_clock::now();
  while (!hit && elapsed_since(t0) < 5s) {
    auto r = c(1);
    CHECK(*r == 10);
    hit = r.source() == larder::Source::remote;
    if (!hit) std::this_thread::sleep_for(20ms);
  }
  CHECK(hit);
  CHECK(store.stats().breaker == larder::BreakerState::closed);
  CHECK(log.mentions("circuit breaker closed"));
}

TEST_CASE("After a restart, stale pooled connections are replaced without a failed call",
          "[redis][failure]") {
  RedisServer server;
  auto o = local(server.port());
  o.pool_size = 4;
  larder::RedisStore store{o};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) store.set("restart:k", "v", 1min);
    });
  for (auto& t : threads) t.join();
  const auto before = store.stats();
  server.stop();  // closes every client connection
  server.restart();
  CHECK_FALSE(store.get("restart:k").has_value());  // no persistence: empty, but no error
  store.set("restart:k", "w", 1min);
  CHECK(store.get("restart:k") == "w");
  const auto after = store.stats();
  CHECK(after.errors == 0);
  CHECK(after.connections == before.connections + 1);  // one fresh connection served them all
}

TEST_CASE("Redis frozen (SIGSTOP): calls bounded by the timeout, breaker opens, then recovers",
          "[redis][failure]") {
  RedisServer server;
  Log log;
  larder::RedisStore store{{.port = server.port(),
                            .connect_timeout = 100ms,
                            .command_timeout = 100ms,
                            .breaker_failures = 5,
                            // Long enough that no stall of a loaded machine ends it before the
                            // checks of the open breaker below are done (each would see a probe).
                            .breaker_cooldown = 2s,
                            .logger = log.hook()}};
  CountingFn fn;
  larder::Cached c{store, "T", "frozen", wrap(fn), {.ttl = 1h}};
  CHECK(c(1).source() == larder::Source::computed);
  CHECK(c(1).source() == larder::Source::remote);

  server.freeze();
  const auto sent = store.stats().commands;
  std::chrono::milliseconds first{0};
  {
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(*c(1) == 10);  // the GET times out and opens the breaker: no lock, no write
    first = elapsed_since(t0);
  }
  CHECK(first >= 90ms);
  CHECK(first < 1s);
  const auto s = store.stats();
  CHECK(s.commands - sent == 1);  // one timeout, not one per command of the miss path
  CHECK(s.timeouts == 1);
  CHECK(s.breaker_opens == 1);
  CHECK(s.breaker == larder::BreakerState::open);
  CHECK_FALSE(store.available());
  CHECK_FALSE(c.stats().store_available);
  {
    const auto t0 = std::chrono::steady_clock::now();
    const auto before = store.stats();
    for (int i = 0; i < 10; ++i) CHECK(*c(1) == 10);   // Redis skipped: computed at once
    CHECK(store.stats().commands == before.commands);  // not one command sent
    CHECK(elapsed_since(t0) < 1s);                     // ten timeouts would take 1 s
  }
  CHECK(store.stats().breaker_opens == 1);

  server.thaw();
  bool hit = false;
  const auto t0 = std::chrono::steady_clock::now();
  while (!hit && elapsed_since(t0) < 15s) {
    auto r = c(1);
    CHECK(*r == 10);
    hit = r.source() == larder::Source::remote;
    if (!hit) std::this_thread::sleep_for(20ms);
  }
  CHECK(hit);
  CHECK(store.available());
  CHECK(c.stats().store_available);
  CHECK(store.stats().breaker == larder::BreakerState::closed);
}

TEST_CASE("AUTH with an ACL user; a wrong password fails clearly and names no secret",
          "[redis][auth]") {
  auto& server = shared_server();
  auto raw = server.client();
  REQUIRE(raw.command({"ACL", "SETUSER", "larder_app", "reset", "on", ">s3cret-Pa55", "~*",
                       "+@all"}) == "OK");

  larder::RedisStore good{
      "redis://larder_app:s3cret-Pa55@127.0.0.1:" + std::to_string(server.port()) + "/2"};
  good.set("auth:k", "v", 10s);
  CHECK(good.get("auth:k") == "v");
  CHECK(raw.command({"GET", "auth:k"}) == "(nil)");  // SELECT 2 took effect
  CHECK(raw.command({"ACL", "WHOAMI"}) == "default");

  Log log;
  larder::RedisStore bad{
      "redis://larder_app:Wrong-Guess-99@127.0.0.1:" + std::to_string(server.port()),
      {.logger = log.hook()}};
  std::string what;
  try {
    bad.ping();
  } catch (const larder::StoreError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("WRONGPASS") != std::string::npos);
  CHECK(what.find("larder_app") != std::string::npos);
  CHECK(what.find("Wrong-Guess-99") == std::string::npos);
  CHECK_FALSE(log.mentions("Wrong-Guess-99"));

  // Through Cached: the call still answers; the report names no secret.
  CountingFn fn;
  std::vector<std::string> reports;
  larder::Cached c{
      bad, "T", "auth", wrap(fn), {.ttl = 1h, .on_error = [&](const larder::ErrorEvent& e) {
                                     reports.emplace_back(e.what);
                                   }}};
  CHECK(*c(4) == 40);
  REQUIRE_FALSE(reports.empty());
  for (const auto& r : reports) CHECK(r.find("Wrong-Guess-99") == std::string::npos);
}

TEST_CASE("RedisStore connects through a unix socket URL", "[redis]") {
  auto& server = shared_server();
  larder::RedisStore store{"unix://" + server.socket_path() + "?db=3"};
  store.set("unix:k", "v", 10s);
  CHECK(store.get("unix:k") == "v");
  auto raw = server.client();
  raw.command({"SELECT", "3"});
  CHECK(raw.command({"GET", "unix:k"}) == "v");
}

TEST_CASE("URLs and options: parsed, or rejected saying what is wrong and never the password",
          "[redis][options]") {
  using larder::RedisStore;
  auto o = RedisStore::parse_url("redis://u%40x:p%3Aw@cache.local:6380/4");
  CHECK(o.host == "cache.local");
  CHECK(o.port == 6380);
  CHECK(o.db == 4);
  CHECK(o.user == "u@x");
  CHECK(o.password == "p:w");
  o = RedisStore::parse_url("redis://:pw@[::1]:7000");
  CHECK(o.host == "::1");
  CHECK(o.port == 7000);
  CHECK(o.user.empty());
  CHECK(o.password == "pw");
  o = RedisStore::parse_url("redis://h");
  CHECK(o.port == 6379);
  CHECK(o.db == 0);
  o = RedisStore::parse_url("unix://app:pw@/run/redis.sock?db=2");
  CHECK(o.unix_socket == "/run/redis.sock");
  CHECK(o.db == 2);
  CHECK(o.user == "app");

  auto rejects = [](const std::string& url, const std::string& says) {
    const std::string what = url_rejection(url);
    INFO(url << " -> " << what);
    CHECK(what.find(says) != std::string::npos);
    CHECK(what.find("TopSecret") == std::string::npos);
  };
  rejects("http://u:TopSecret@h:1", "must start with redis:// or unix://");
  rejects("redis://u:TopSecret@h:99999", "port '99999'");
  rejects("redis://u:TopSecret@h:12x", "port '12x'");
  rejects("redis://u:TopSecret@h:1/zero", "database 'zero'");
  rejects("redis://u:TopSecret@:6379", "no host");
  rejects("redis://u:TopSecret@h:1?x=1", "no query string");
  rejects("redis://u:TopSecret%zz@h", "bad %-escape");
  rejects("unix://u:TopSecret@relative.sock", "must be absolute");
  rejects("unix:///s.sock?db=x", "database 'x'");
  rejects("TopSecret", "must start with");

  auto bad_option = [](larder::RedisOptions opts, const std::string& says) {
    std::string what;
    try {
      RedisStore store{opts};
    } catch (const std::invalid_argument& e) {
      what = e.what();
    }
    INFO(what);
    CHECK(what.find(says) != std::string::npos);
    CHECK(what.find("TopSecret") == std::string::npos);
  };
  bad_option({.port = 0, .password = "TopSecret"}, "port must be in 1-65535");
  bad_option({.password = "TopSecret", .command_timeout = 0ms}, "command_timeout must be > 0");
  bad_option({.connect_timeout = -1ms}, "connect_timeout must be > 0");
  bad_option({.pool_size = 0}, "pool_size must be >= 1");
  bad_option({.breaker_failures = 0}, "breaker_failures must be >= 1");
  bad_option({.user = "u"}, "needs a password");
  bad_option({.db = -1}, "db must be >= 0");
  bad_option({.host = ""}, "host must not be empty");
}

TEST_CASE(
    "A password with '/' or '?' in a redis:// URL is the password, never echoed as a "
    "port or a database",
    "[redis][url]") {
  using larder::RedisStore;
  // Generated secrets (base64) contain '/': the userinfo ends at the last '@', as redact() sees
  // it, not at the first '/'. Before, "app:Top" became host "app", port "Top" (echoed).
  auto o = RedisStore::parse_url("redis://app:Top/Secret+x==@cache.local:6380/3");
  CHECK(o.user == "app");
  CHECK(o.password == "Top/Secret+x==");
  CHECK(o.host == "cache.local");
  CHECK(o.port == 6380);
  CHECK(o.db == 3);
  o = RedisStore::parse_url("redis://:1234/Secret@h");
  CHECK(o.password == "1234/Secret");
  CHECK(o.host == "h");
  CHECK(o.port == 6379);
  CHECK(o.db == 0);
  o = RedisStore::parse_url("redis://:Top?Secret@h/2");
  CHECK(o.password == "Top?Secret");
  CHECK(o.db == 2);
  auto rejects = [](const std::string& url, const std::string& says) {
    const std::string what = url_rejection(url);
    INFO(url << " -> " << what);
    CHECK(what.find(says) != std::string::npos);
    CHECK(what.find("Top") == std::string::npos);
    CHECK(what.find("Secret") == std::string::npos);
  };
  rejects("redis://app:Top/Secret@h:99999", "port '99999'");
  rejects("redis://app:Top/Secret@h/x", "database 'x'");
  rejects("redis://app:Top/Secret@h?db=1", "no query string");
  rejects("redis://app:Top/Secret@", "no host");
  // unix://: the userinfo ends at the last "@/" (before: the first, so the password's tail became
  // the socket path, shown in every error as the endpoint).
  o = RedisStore::parse_url("unix://app:Top@/Secret@/run/redis.sock?db=1");
  CHECK(o.user == "app");
  CHECK(o.password == "Top@/Secret");
  CHECK(o.unix_socket == "/run/redis.sock");
  CHECK(o.db == 1);
  rejects("unix://app:Top@/Secret@/run/redis.sock?db=x", "database 'x'");
}

TEST_CASE("A value over max_value_size is not written: counted and reported", "[redis]") {
  auto& server = shared_server();
  Log log;
  auto o = local(server.port());
  o.max_value_size = 256;
  o.logger = log.hook();
  larder::RedisStore store{o};
  CHECK_THROWS_AS(store.set("big", std::string(300, 'x'), 10s), larder::StoreError);
  CHECK_FALSE(store.get("big").has_value());
  CHECK(store.stats().oversize == 1);
  CHECK(store.stats().errors == 0);  // not a Redis failure: the breaker is not fed
  CHECK(log.mentions("max_value_size"));

  auto big = [](std::int64_t n) {
    return std::vector<std::int64_t>(static_cast<std::size_t>(n), n);
  };
  larder::Cached c{store, "T", "big", big, {.ttl = 1h}};
  c.invalidate(100);
  CHECK(c(100)->size() == 100);  // computed and returned anyway
  CHECK(c.stats().store_errors == 1);
  CHECK(store.stats().oversize == 2);
  CHECK_FALSE(store.get(c.key(100)).has_value());
  CHECK(c(3).source() == larder::Source::computed);
  CHECK(c(3).source() == larder::Source::remote);  // small values still go through
}

TEST_CASE("Many threads share a small connection pool", "[redis][pool]") {
  auto& server = shared_server();
  auto o = local(server.port());
  o.pool_size = 2;
  o.pool_wait_timeout = 5s;
  larder::RedisStore store{o};
  store.set("pool:k", "v", 1min);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i)
        if (store.get("pool:k") != "v") ++wrong;
    });
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
  CHECK(store.stats().connections <= 2);
  CHECK(store.stats().errors == 0);
}

TEST_CASE("TieredStore: the second call from memory, a fresh instance from Redis",
          "[redis][tiered]") {
  auto& server = shared_server();
  larder::RedisStore redis{local(server.port())};
  CountingFn fn;
  larder::Options o{.ttl = 1h, .prefix = "tiered"};
  larder::MemoryStore memory_a;
  larder::TieredStore a{memory_a, redis};
  larder::Cached first{a, "T", "f", wrap(fn), o};
  // The bus flushes every L1 of its listeners once subscribed (a message may have been missed
  // before): wait for that, or it may drop the entry `first` is about to fill.
  const auto t0 = std::chrono::steady_clock::now();
  while (!redis.stats().bus_subscribed && elapsed_since(t0) < 10s) std::this_thread::sleep_for(2ms);
  REQUIRE(redis.stats().bus_subscribed);
  first.invalidate(6);
  CHECK(first(6).source() == larder::Source::computed);
  CHECK(first(6).source() == larder::Source::memory);

  larder::MemoryStore memory_b;  // another process: an empty L1, the same Redis
  larder::TieredStore b{memory_b, redis};
  larder::Cached second{b, "T", "f", wrap(fn), o};
  auto r = second(6);
  CHECK(*r == 60);
  CHECK(r.source() == larder::Source::remote);
  CHECK(second(6).source() == larder::Source::memory);
  CHECK(fn.calls == 1);
}

namespace {

/// Opens `store`'s breaker deterministically: Redis frozen, one call times out (a timeout opens it
/// at once), Redis thawed. The breaker stays open for its cool-down although Redis answers again.
/// Returns a time taken before the freeze: the cool-down runs from the timeout, after it, so checks
/// of the open breaker all done within the cool-down of that time saw it open throughout.
template <class C>
std::chrono::steady_clock::time_point open_breaker(RedisServer& server, C& cached) {
  const auto t0 = std::chrono::steady_clock::now();
  server.freeze();
  cached(999);  // its GET times out: computed, the breaker opens
  server.thaw();
  return t0;
}

/// What open_breaker left, read at once (see breaker_round).
struct OpenBreaker {
  std::chrono::steady_clock::time_point since;
  larder::BreakerState state;
  bool available;
};

template <class C>
OpenBreaker opened_breaker(RedisServer& server, larder::RedisStore& store, C& cached) {
  const auto since = open_breaker(server, cached);
  return {since, store.stats().breaker, store.available()};
}

void check_open(const OpenBreaker& b) {
  CHECK(b.state == larder::BreakerState::open);
  CHECK_FALSE(b.available);
}

/// Runs round(cooldown), a test whose checks need the breaker to stay open for a while, with a 1 s
/// breaker_cooldown. A loaded machine may stall past the cool-down before those checks are done:
/// the round then returns false before checking anything, and is run again on a fresh server and
/// store with the cool-down doubled (bounded). At least one round must have been in time.
template <class Round>
void breaker_rounds(Round&& round) {
  bool checked = false;
  for (std::chrono::milliseconds cooldown = 1s; !checked && cooldown <= 8s; cooldown *= 2)
    checked = round(cooldown);
  REQUIRE(checked);
}

/// The on_error messages of a Cached, kept for the test to read.
struct Events {
  std::mutex mutex;
  std::vector<std::string> what;
  std::function<void(const larder::ErrorEvent&)> hook() {
    return [this](const larder::ErrorEvent& e) {
      std::lock_guard lock{mutex};
      what.emplace_back(e.what);
    };
  }
  std::size_t size() {
    std::lock_guard lock{mutex};
    return what.size();
  }
  bool mention(std::string_view s) {
    std::lock_guard lock{mutex};
    for (const auto& w : what)
      if (w.find(s) != std::string::npos) return true;
    return false;
  }
};

bool wait_until_available(larder::RedisStore& store, std::chrono::milliseconds limit = 10s) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!store.available()) {
    if (elapsed_since(t0) > limit) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

larder::RedisOptions breaker_options(int port, Log& log, std::chrono::milliseconds cooldown = 1s) {
  return {.port = port,
          .connect_timeout = 200ms,
          .command_timeout = 100ms,
          .breaker_cooldown = cooldown,
          .logger = log.hook()};
}

}  // namespace

TEST_CASE("invalidate() with the breaker open is reported, remembered, and applied before a read",
          "[redis][failure][invalidation]") {
  breaker_rounds([](std::chrono::milliseconds cooldown) {
    RedisServer server;
    Log log;
    larder::RedisStore store{breaker_options(server.port(), log, cooldown)};
    CountingFn fn;
    Events events;
    larder::Cached c{store, "T", "pending", wrap(fn), {.ttl = 24h, .on_error = events.hook()}};
    CHECK(*c(1) == 10);  // Redis holds 10 for a day
    const OpenBreaker open = opened_breaker(server, store, c);

    fn.offset = 1;  // the data behind key 1 changed; the application invalidates, as documented
    const auto errors = c.stats().store_errors;
    const auto reported = events.size();
    c.invalidate(1);
    const auto errors_now = c.stats().store_errors;
    const auto reported_now = events.size();
    const auto s = store.stats();
    if (elapsed_since(open.since) >= cooldown) return false;  // stalled: not a test of an open one
    check_open(open);
    // The DEL (and the PUBLISH) were not sent: counted, and reported as not applied.
    CHECK(errors_now == errors + 2);
    CHECK(reported_now == reported + 2);
    CHECK(events.mention("NOT applied"));
    CHECK(events.mention("will be retried"));
    CHECK(s.invalidations_pending == 2);  // the key's DEL and the message
    CHECK(s.invalidations_deferred == 2);

    REQUIRE(wait_until_available(store, cooldown + 10s));  // the cool-down is over
    CountingFn fn2;
    fn2.offset = 1;
    larder::Cached reader{store, "T", "pending", wrap(fn2), {.ttl = 24h}};
    SECTION("a single read") {
      auto r = reader(1);
      CHECK(*r == 11);  // never the invalidated 10
      CHECK(r.source() == larder::Source::computed);
    }
    SECTION("a bulk read") {
      const std::vector<std::int64_t> ids{1};
      auto rs = reader.get_many(std::span<const std::int64_t>{ids});
      CHECK(*rs[0] == 11);
      CHECK(rs[0].source() == larder::Source::computed);
    }
    CHECK(fn2.calls == 1);
    // Sent by the reader's read, or, if the store's own probe was under way (half-open: the reader
    // skipped Redis), by that probe, which may still be finishing on a loaded machine.
    const auto t0 = std::chrono::steady_clock::now();
    while (store.stats().invalidations_pending != 0 && elapsed_since(t0) < 10s)
      std::this_thread::sleep_for(5ms);
    CHECK(store.stats().invalidations_pending == 0);
    CHECK(store.stats().invalidations_retried == 2);
    // Once the DEL is done: 11, or nothing if the reader's write met the store's own probe
    // (half-open): never the old 10. (Read before that, Redis may still hold 10 while the probe's
    // DEL is under way: the reader skipped Redis then, and read nothing from it.)
    const std::string now = server.client().command({"GET", c.key(1)});
    INFO("Redis holds: " << now);
    CHECK((now == "(nil)" || now.ends_with("\n11")));
    return true;
  });
}

TEST_CASE("refresh() on a TieredStore with the breaker open: Redis never keeps the old value",
          "[redis][failure][invalidation][tiered]") {
  breaker_rounds([](std::chrono::milliseconds cooldown) {
    RedisServer server;
    Log log;
    larder::RedisStore store{breaker_options(server.port(), log, cooldown)};
    larder::MemoryStore l1;
    larder::TieredStore tiered{l1, store, {.broadcast_invalidations = false}};
    CountingFn fn;
    Events events;
    larder::Cached c{tiered, "T", "pending", wrap(fn), {.ttl = 24h, .on_error = events.hook()}};
    CHECK(*c(1) == 10);
    const OpenBreaker open = opened_breaker(server, store, c);

    fn.offset = 2;
    const auto errors = c.stats().store_errors;
    const auto reported = events.size();
    const auto refreshed = c.refresh(1);
    const auto errors_now = c.stats().store_errors;
    const auto reported_now = events.size();
    const auto pending = store.stats().invalidations_pending;
    if (elapsed_since(open.since) >= cooldown) return false;  // stalled: not a test of an open one
    check_open(open);
    CHECK(*refreshed == 12);
    CHECK(errors_now == errors + 1);  // the write was skipped: counted once
    CHECK(reported_now == reported + 1);
    CHECK(events.mention("NOT applied"));
    CHECK(events.mention("will be retried"));
    CHECK(c(1).source() == larder::Source::memory);  // this L1 holds the new value
    CHECK(pending == 1);

    // With no call from this process, the store deletes the old value once Redis may be used
    // again. Its retrier counts and logs that after the DEL is done: wait for all three, not the
    // first.
    auto raw = server.client();
    const auto t0 = std::chrono::steady_clock::now();
    while ((raw.command({"GET", c.key(1)}) != "(nil)" || store.stats().invalidations_pending != 0 ||
            !log.mentions("pending invalidation(s) sent")) &&
           elapsed_since(t0) < cooldown + 10s)
      std::this_thread::sleep_for(5ms);
    CHECK(raw.command({"GET", c.key(1)}) == "(nil)");
    CHECK(store.stats().invalidations_pending == 0);
    CHECK(log.mentions("pending invalidation(s) sent"));
    CountingFn fn2;
    fn2.offset = 2;
    larder::Cached reader{store, "T", "pending", wrap(fn2), {.ttl = 24h}};
    auto r = reader(1);
    CHECK(*r == 12);
    CHECK(r.source() == larder::Source::computed);
    return true;
  });
}

TEST_CASE("Pending invalidations are bounded: one over the bound is dropped and says so",
          "[redis][failure][invalidation]") {
  breaker_rounds([](std::chrono::milliseconds cooldown) {
    RedisServer server;
    Log log;
    auto o = breaker_options(server.port(), log, cooldown);
    o.max_pending_invalidations = 1;
    larder::RedisStore store{o};
    CountingFn fn;
    Events events;
    larder::Cached c{store, "T", "bounded", wrap(fn), {.ttl = 24h, .on_error = events.hook()}};
    CHECK(*c(1) == 10);
    CHECK(*c(2) == 20);
    const OpenBreaker open = opened_breaker(server, store, c);

    c.invalidate(1);  // remembered: its DEL and its message
    const bool dropped_first = events.mention("will NOT be retried");
    c.invalidate(1);  // the same ones again: still within the bound
    const auto dropped_again = store.stats().invalidations_dropped;
    c.invalidate(2);  // over the bound: dropped, and reported as such
    const auto s = store.stats();
    if (elapsed_since(open.since) >= cooldown) return false;  // stalled: not a test of an open one
    check_open(open);
    CHECK_FALSE(dropped_first);
    CHECK(dropped_again == 0);
    CHECK(events.mention("will NOT be retried"));
    CHECK(log.mentions("max_pending_invalidations"));
    CHECK(s.invalidations_pending == 2);
    CHECK(s.invalidations_dropped == 2);

    auto raw = server.client();
    const auto t0 = std::chrono::steady_clock::now();
    while (store.stats().invalidations_pending != 0 && elapsed_since(t0) < cooldown + 10s)
      std::this_thread::sleep_for(5ms);
    CHECK(raw.command({"GET", c.key(1)}) == "(nil)");
    CHECK(raw.command({"GET", c.key(2)}) != "(nil)");  // the dropped one: until its TTL
    return true;
  });
}

TEST_CASE("While an invalidation is pending, reads and writes fail rather than pass it",
          "[redis][failure][invalidation]") {
  RedisServer server;
  Log log;
  larder::RedisStore store{breaker_options(server.port(), log)};
  store.set("p:k", "old", 1h);
  server.freeze();
  CHECK_THROWS_AS(store.get("p:other"), larder::StoreError);  // times out: the breaker opens
  CHECK_THROWS_WITH(store.erase("p:k"), Catch::Contains("NOT applied"));
  // Redis is frozen when the breaker lets a call through: the pending DEL fails first, so the
  // GET is not sent. The store's retry thread takes the breaker's probes too (about 1 ms after
  // each cool-down ends), so this thread asks until it gets one instead of waiting for
  // available() and hoping to ask first (which lost every round for 10 s once under TSan).
  std::string refused;
  const auto asked = std::chrono::steady_clock::now();
  while (refused.find("pending invalidations must go first") == std::string::npos &&
         elapsed_since(asked) < 20s) {
    std::optional<std::string> read;
    try {
      read = store.get("p:k");
      FAIL("a read passed the pending invalidation: " << read.value_or("(nil)"));
    } catch (const larder::StoreError& e) {
      refused = e.what();  // the open breaker's refusal, until a probe is ours
    }
    std::this_thread::yield();
  }
  CHECK_THAT(refused, Catch::Contains("pending invalidations must go first"));
  server.thaw();
  REQUIRE(wait_until_available(store));
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<std::string> v{"unread"};
  while (elapsed_since(t0) < 10s) {
    try {
      v = store.get("p:k");
      break;
    } catch (const larder::StoreError&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  CHECK_FALSE(v.has_value());  // never "old"
}

TEST_CASE("A lock a failed call may hold is released once Redis answers, not held for its lease",
          "[redis][lock][failure]") {
  // A SET NX sent to a frozen Redis times out; Redis applies it once thawed, and nobody would
  // release the lock before its lease (an hour here): other instances would wait for it. Likewise
  // an unlock that could not be sent (breaker open). The store releases each, with the owner-only
  // script, as soon as Redis answers, with no further call from the caller.
  RedisServer server;
  Log log;
  larder::RedisStore store{breaker_options(server.port(), log)};
  auto raw = server.client();
  raw.command({"CONFIG", "RESETSTAT"});
  store.ping();
  auto released = [&](std::initializer_list<std::string_view> keys) {
    const auto t0 = std::chrono::steady_clock::now();
    auto held = [&] {
      for (auto k : keys)
        if (raw.command({"EXISTS", k}) != "0") return true;
      return store.stats().lock_releases_pending != 0;
    };
    while (held() && elapsed_since(t0) < 20s) std::this_thread::sleep_for(5ms);
    return !held();
  };

  SECTION("try_lock: its SET NX applied, its reply lost") {
    server.freeze();
    CHECK_THROWS_AS(store.try_lock("lost", "mine", 1h), larder::StoreError);  // times out
    server.thaw();
    CHECK(store.stats().lock_releases_deferred == 1);
    CHECK(released({"lost"}));
    CHECK(raw.calls("set") == 1);  // it was applied: the release, not Redis, ended it
    CHECK(store.stats().lock_releases_retried == 1);
  }
  SECTION("try_lock_many: the pipeline applied, its replies lost") {
    server.freeze();
    const std::vector<std::string> keys{"lostA", "lostB"};
    CHECK_THROWS_AS(store.try_lock_many(keys, "mine", 1h), larder::StoreError);
    server.thaw();
    CHECK(store.stats().lock_releases_deferred == 2);
    CHECK(released({"lostA", "lostB"}));
    CHECK(raw.calls("set") == 2);
    CHECK(store.stats().lock_releases_retried == 2);
  }
  SECTION("unlock with the breaker open") {
    REQUIRE(store.try_lock("held", "mine", 1h));
    server.freeze();
    CHECK_THROWS_AS(store.get("other"), larder::StoreError);  // times out: the breaker opens
    // Refused by the open breaker (or, after a stall past the cool-down, sent and timed out).
    CHECK_THROWS_WITH(store.unlock("held", "mine"), Catch::Contains("retried"));
    server.thaw();
    CHECK(store.stats().lock_releases_deferred == 1);
    CHECK(released({"held"}));
  }
  SECTION("never another's lock") {
    server.freeze();
    CHECK_THROWS_AS(store.try_lock("taken", "mine", 1h), larder::StoreError);
    server.thaw();
    // Another process holds it now (this caller's lease ran out, say): the release leaves it.
    raw.command({"SET", "taken", "thief"});
    const auto t0 = std::chrono::steady_clock::now();
    while (store.stats().lock_releases_pending != 0 && elapsed_since(t0) < 20s)
      std::this_thread::sleep_for(5ms);
    CHECK(store.stats().lock_releases_pending == 0);
    CHECK(raw.command({"GET", "taken"}) == "thief");
  }
  // An attempt that was not sent (no connection) leaves nothing to release.
  server.kill();
  larder::RedisStore down{breaker_options(server.port(), log)};
  CHECK_THROWS_AS(down.try_lock("refused", "mine", 1h), larder::StoreError);
  CHECK_THROWS_AS(down.unlock("refused", "mine"), larder::StoreError);  // but a release is kept
  CHECK(down.stats().lock_releases_deferred == 1);
}

TEST_CASE("A breaker_cooldown too long for the clock keeps the breaker open; nothing overflows",
          "[redis][failure]") {
  // breaker_cooldown = milliseconds::max() (or centuries): "once open, stay open". The reopen time
  // and the pending-invalidation thread's wait must saturate, not overflow into the past.
  RedisServer server;
  Log log;
  larder::RedisStore store{{.port = server.port(),
                            .connect_timeout = 200ms,
                            .command_timeout = 100ms,
                            .breaker_cooldown = std::chrono::milliseconds::max(),
                            .logger = log.hook()}};
  CountingFn fn;
  larder::Cached c{store, "T", "cooldown", wrap(fn), {.ttl = 24h}};
  CHECK(*c(1) == 10);
  const OpenBreaker open = opened_breaker(server, store, c);
  check_open(open);  // for good: no stall can outlast this cool-down
  c.invalidate(1);   // not sent: pending, and the retrier waits for the (endless) cool-down
  std::this_thread::sleep_for(300ms);
  for (int i = 0; i < 5; ++i) {
    auto r = c(1);
    CHECK(*r == 10);
    CHECK(r.source() == larder::Source::computed);  // Redis skipped
  }
  const auto s = store.stats();
  CHECK(s.breaker == larder::BreakerState::open);
  CHECK(s.breaker_opens == 1);
  CHECK(s.short_circuits >= 1);
  CHECK(s.invalidations_pending >= 1);
  CHECK_FALSE(store.available());
  CHECK(log.mentions("circuit breaker open"));
}

TEST_CASE("A pool_wait_timeout too long for the clock waits for a connection", "[redis][pool]") {
  auto& server = shared_server();
  auto o = local(server.port());
  o.pool_size = 1;
  o.pool_wait_timeout = std::chrono::milliseconds::max();
  larder::RedisStore store{o};
  store.set("poolwait:k", "v", 1min);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i)
        if (store.get("poolwait:k") != "v") ++wrong;
    });
  for (auto& t : threads) t.join();
  CHECK(wrong == 0);
  CHECK(store.stats().pool_timeouts == 0);
  CHECK(store.stats().errors == 0);
}

namespace {
/// The process's peak resident set, in MiB.
long peak_rss_mib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}
}  // namespace

TEST_CASE("A reply announcing a huge array allocates nothing for the elements never sent",
          "[redis][reply]") {
  // 14 bytes that announce 200 million elements, and none of them: the store must not reserve
  // 1.6 GB on the word of its peer; it waits for the elements, times out and drops the connection.
  larder::testing::FakeRedis fake{"*200000000\r\n"};
  auto o = local(fake.port());
  o.command_timeout = 200ms;
  larder::RedisStore store{o};
  const long before = peak_rss_mib();
  CHECK_THROWS_AS(store.get("k"), larder::StoreError);
  const std::vector<std::string> keys{"a", "b"};
  CHECK_THROWS_AS(store.get_many(keys), larder::StoreError);
  CHECK(peak_rss_mib() - before < 256);
  CHECK(store.stats().timeouts >= 1);
}

TEST_CASE("No free pooled connection is not a Redis timeout: the breaker stays closed",
          "[redis][pool][breaker]") {
  // A peer that never answers: the one pooled connection stays busy for command_timeout.
  larder::testing::FakeRedis fake{""};
  auto o = local(fake.port());
  o.pool_size = 1;
  o.pool_wait_timeout = 20ms;
  o.command_timeout = 2s;
  larder::RedisStore store{o};
  std::atomic<bool> holder_failed{false};
  std::thread holder{[&] {
    try {
      store.get("held");
    } catch (const larder::StoreError&) {
      holder_failed = true;
    }
  }};
  while (store.stats().commands == 0) std::this_thread::sleep_for(1ms);  // it has the connection
  CHECK_THROWS_AS(store.get("k"), larder::StoreError);  // no free connection within 20 ms
  const auto s = store.stats();
  CHECK(s.pool_timeouts == 1);
  CHECK(s.errors == 1);
  CHECK(s.timeouts == 0);  // "a connect or command timeout": local contention is neither
  CHECK(s.breaker == larder::BreakerState::closed);
  CHECK(s.breaker_opens == 0);
  CHECK(store.available());
  holder.join();  // its command timeout is Redis's: that one opens the breaker
  CHECK(holder_failed);
  CHECK(store.stats().timeouts == 1);
  CHECK(store.stats().breaker == larder::BreakerState::open);
}

TEST_CASE("connect_timeout and command_timeout too long for hiredis mean no bound, not failure",
          "[redis][timeout]") {
  auto& server = shared_server();
  for (auto [connect, command] :
       {std::pair{std::chrono::milliseconds::max(), 1000ms},
        std::pair{1000ms, std::chrono::milliseconds::max()},
        std::pair{std::chrono::milliseconds::max(), std::chrono::milliseconds::max()}}) {
    INFO("connect_timeout " << connect.count() << " ms, command_timeout " << command.count()
                            << " ms");
    auto o = local(server.port());
    o.connect_timeout = connect;
    o.command_timeout = command;
    larder::RedisStore store{o};
    CHECK_NOTHROW(store.ping());
    store.set("forever:k", "v", 1min);
    CHECK(store.get("forever:k") == "v");
    CHECK(store.stats().errors == 0);
  }
}

TEST_CASE("A large SET on a pooled connection the server closed does not raise SIGPIPE",
          "[redis][failure]") {
  // The server closes an idle connection (CLIENT KILL here; Redis's `timeout`, a restart): it
  // answers the first bytes of the next command with a reset, and hiredis's next write() to
  // that socket raised SIGPIPE, whose default action ends the process.
  auto& server = shared_server();
  auto o = local(server.port());
  o.pool_size = 1;
  o.max_value_size = 0;
  larder::RedisStore store{o};
  const std::string big(32u << 20, 'x');
  for (int round = 0; round < 3; ++round) {
    store.ping();  // one idle pooled connection
    auto raw = server.client();
    CHECK(std::stoll(raw.command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"})) >= 1);
    try {
      store.set("sigpipe:k", big, 1min);  // retried once on a fresh connection
    } catch (const larder::StoreError&) {
    }
  }
  store.set("sigpipe:k", "v", 1min);
  CHECK(store.get("sigpipe:k") == "v");
}

TEST_CASE("A long server error text is cut after the password is scrubbed from it, not before",
          "[redis][secret]") {
  // The message keeps 200 bytes of the server's text; scrubbing after the cut missed a password
  // that straddled byte 200, and its first part was thrown and logged.
  const std::string password = "TopSecretPassword";
  larder::testing::FakeRedis fake{"-ERR " + std::string(190, 'a') + " " + password + "\r\n"};
  Log log;
  auto o = local(fake.port());
  o.password = password;
  o.logger = log.hook();
  larder::RedisStore store{o};
  std::string what;
  try {
    store.ping();
  } catch (const larder::StoreError& e) {
    what = e.what();
  }
  INFO(what);
  CHECK(what.find("AUTH") != std::string::npos);
  CHECK(what.find("TopS") == std::string::npos);  // the cut falls inside the password
  CHECK_FALSE(log.mentions("TopS"));
}
