// RedisStore when the process runs out of resources: an allocation that fails inside a call (the
// connection's pool slot must not be lost) and a thread that cannot be started (a pending
// invalidation must be reported as a StoreError and kept). Its own executable: it replaces the
// global operator new (to fail the n-th allocation of the calling thread on demand) and, without
// sanitizers (whose runtimes intercept it), pthread_create (to refuse threads on demand), which
// must not touch the other tests. The server is a FakeRedis: no redis-server is needed.
#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <larder/larder.hpp>
#include <larder/redis_store.hpp>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/failing_new.hpp"
#include "support/fake_redis.hpp"

using larder::testing::allocations_before_failure;

using namespace std::chrono_literals;

namespace {

larder::RedisOptions options(int port) {
  return larder::RedisOptions{.port = port, .connect_timeout = 1s, .command_timeout = 1s};
}

}  // namespace

TEST_CASE("An allocation failing anywhere in a call never loses the connection's pool slot",
          "[redis][pool][oom]") {
  // One pooled connection: a call that lost its slot would leave every later call waiting for a
  // connection that never comes back (a pool timeout). The n-th allocation of the call fails, for
  // every n the call reaches; the call may fail, the next one must not. The call runs on a new
  // connection, on a pooled one, or on a pooled one the server closed (it is retried on a new one).
  larder::testing::FakeRedis fake{"+PONG\r\n"};
  std::mutex mutex;
  std::vector<int> commands;  // per connection
  larder::testing::FakeRedis closing{
      [&](std::size_t conn, const std::vector<std::string>&) -> std::optional<std::string> {
        std::lock_guard lock{mutex};
        if (commands.size() <= conn) commands.resize(conn + 1);
        if (++commands[conn] == 2) return std::nullopt;  // closed before its second command
        return "+PONG\r\n";
      }};
  for (const std::string_view mode : {"new", "pooled", "closed"}) {
    auto o = options(mode == "closed" ? closing.port() : fake.port());
    o.pool_size = 1;
    o.pool_wait_timeout = 20ms;
    int tried = 0;
    for (int n = 0; n < 1000; ++n) {
      INFO(mode << " connection; allocation " << n << " of the call fails");
      larder::RedisStore store{o};
      if (mode != "new") store.ping();
      allocations_before_failure = n;
      try {
        store.ping();
      } catch (const std::exception&) {
      }
      const bool reached = allocations_before_failure < 0;
      allocations_before_failure = -1;
      CHECK_NOTHROW(store.ping());
      CHECK(store.stats().pool_timeouts == 0);
      if (!reached) break;  // the call makes n allocations or fewer: each was made to fail
      ++tried;
    }
    CHECK(tried >= 1);
  }
}

TEST_CASE("An allocation failing in a failed lock call or unlock is thrown, never std::terminate",
          "[redis][lock][oom]") {
  // SET NX and the unlock script are refused (error replies): each call fails after its command
  // was sent, and the store remembers its lock for a later release (defer_unlocks, noexcept), which
  // allocates. The n-th allocation of the call fails, for every n the call reaches: the call
  // throws StoreError or std::bad_alloc, the process goes on, and the pool keeps its slot.
  larder::testing::FakeRedis fake{
      [](std::size_t, const std::vector<std::string>& argv) -> std::optional<std::string> {
        if (argv[0] == "PING") return "+PONG\r\n";
        return "-ERR failing\r\n";
      }};
  for (const std::string_view call : {"try_lock", "try_lock_many", "unlock"}) {
    auto o = options(fake.port());
    o.pool_size = 1;
    o.pool_wait_timeout = 20ms;
    o.breaker_failures = 1000;  // every call goes to the server
    int tried = 0;
    for (int n = 0; n < 1000; ++n) {
      INFO(call << "; allocation " << n << " of the call fails");
      larder::RedisStore store{o};
      store.ping();
      const std::vector<std::string> keys{"A", "B"};
      bool other = false;
      allocations_before_failure = n;
      try {
        if (call == "try_lock")
          (void)store.try_lock("L", "mine", 10s);
        else if (call == "try_lock_many")
          (void)store.try_lock_many(keys, "mine", 10s);
        else
          (void)store.unlock("L", "mine");
      } catch (const larder::StoreError&) {
      } catch (const std::bad_alloc&) {
      } catch (...) {
        other = true;
      }
      const bool reached = allocations_before_failure < 0;
      allocations_before_failure = -1;
      CHECK_FALSE(other);
      CHECK_NOTHROW(store.ping());
      CHECK(store.stats().pool_timeouts == 0);
      if (!reached) {
        CHECK(store.stats().lock_releases_deferred >= 1);  // with memory: remembered
        break;
      }
      ++tried;
    }
    CHECK(tried >= 1);
  }
}

TEST_CASE("An invalidation that runs out of memory is remembered, or counted as dropped",
          "[redis][invalidation][oom]") {
  // DEL is refused (an error reply), so erase() remembers the key (defer()), which allocates. The
  // n-th allocation of the call fails, for every n the call reaches: a StoreError means the DEL is
  // pending; a std::bad_alloc means it is pending, or counted as dropped (and logged), or was never
  // sent: never lost without a trace.
  std::mutex mutex;
  int dels = 0;
  larder::testing::FakeRedis fake{
      [&](std::size_t, const std::vector<std::string>& argv) -> std::optional<std::string> {
        if (argv[0] == "PING") return "+PONG\r\n";
        std::lock_guard lock{mutex};
        if (argv[0] == "DEL") ++dels;
        return "-ERR failing\r\n";
      }};
  auto o = options(fake.port());
  o.breaker_failures = 1000;  // every call goes to the server
  int tried = 0;
  for (int n = 0; n < 1000; ++n) {
    INFO("allocation " << n << " of erase() fails");
    larder::RedisStore store{o};
    store.ping();
    {
      std::lock_guard lock{mutex};
      dels = 0;
    }
    bool store_error = false;
    bool bad_alloc = false;
    allocations_before_failure = n;
    try {
      store.erase("k");
    } catch (const larder::StoreError&) {
      store_error = true;
    } catch (const std::bad_alloc&) {
      bad_alloc = true;
    }
    const bool reached = allocations_before_failure < 0;
    allocations_before_failure = -1;
    const auto s = store.stats();
    CHECK((store_error || bad_alloc));
    if (store_error) CHECK(s.invalidations_pending == 1);
    if (bad_alloc && s.invalidations_pending == 0 && s.invalidations_dropped == 0) {
      std::lock_guard lock{mutex};
      CHECK(dels == 0);
    }
    if (!reached) break;
    ++tried;
  }
  CHECK(tried >= 1);
}

#ifndef LARDER_NO_THREAD_INTERPOSITION

namespace {
std::atomic<bool> refuse_threads{false};
std::atomic<int> threads_refused{0};
}  // namespace

// std::thread starts its thread with pthread_create (from libstdc++): refused on demand, as when
// the process is at its thread limit (EAGAIN: std::system_error), else passed on.
extern "C" int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*start)(void*),
                              void* arg) noexcept {
  using Real = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);
  static const Real real = [] {
    Real f = nullptr;
    void* sym = ::dlsym(RTLD_NEXT, "pthread_create");
    std::memcpy(&f, &sym, sizeof f);
    return f;
  }();
  if (refuse_threads.load()) {
    threads_refused.fetch_add(1);
    return EAGAIN;
  }
  return real(thread, attr, start, arg);
}

TEST_CASE("An invalidation whose retry thread cannot start is a StoreError, kept and sent later",
          "[redis][invalidation]") {
  // DEL fails (an error reply) until `redis_back`; every command is recorded.
  std::mutex mutex;
  bool redis_back = false;
  std::vector<std::string> seen;
  larder::testing::FakeRedis fake{
      [&](std::size_t, const std::vector<std::string>& argv) -> std::optional<std::string> {
        std::lock_guard lock{mutex};
        seen.push_back(argv[0] + (argv.size() > 1 ? " " + argv[1] : ""));
        if (argv[0] == "DEL") return redis_back ? ":1\r\n" : "-ERR failing\r\n";
        if (argv[0] == "PUBLISH") return redis_back ? ":0\r\n" : "-ERR failing\r\n";
        if (argv[0] == "GET") return "$-1\r\n";
        return "+PONG\r\n";
      }};
  auto o = options(fake.port());
  o.breaker_failures = 100;  // the failures below must not open the breaker
  larder::RedisStore store{o};

  // The DEL fails, is remembered, and the thread that would retry it cannot be started: the call
  // reports a StoreError (not std::system_error) that says the DEL is pending.
  refuse_threads = true;
  std::string what;
  bool other_exception = false;
  try {
    store.erase("k");
  } catch (const larder::StoreError& e) {
    what = e.what();
  } catch (const std::exception& e) {
    other_exception = true;
    what = e.what();
  }
  INFO(what);
  CHECK_FALSE(other_exception);
  CHECK(threads_refused.load() >= 1);
  CHECK(what.find("NOT applied") != std::string::npos);
  CHECK(what.find("pending") != std::string::npos);
  CHECK(store.stats().invalidations_pending == 1);
  CHECK(store.stats().invalidations_dropped == 0);

  // Through Cached (directly on the store: it DELs and publishes): never thrown, counted.
  larder::Cached c{store, "T", "fault", [](std::int64_t id) { return id * 10; }, {.ttl = 1h}};
  CHECK_NOTHROW(c.invalidate(7));
  CHECK(c.stats().store_errors >= 1);
  refuse_threads = false;
  const auto pending = store.stats().invalidations_pending;
  CHECK(pending >= 2);  // k and c's key (and the message, if its PUBLISH was tried)

  // Redis answers again: the next read sends the pending invalidations first.
  {
    std::lock_guard lock{mutex};
    redis_back = true;
    seen.clear();
  }
  CHECK(store.get("other") == std::nullopt);
  CHECK(store.stats().invalidations_pending == 0);
  CHECK(store.stats().invalidations_retried == pending);
  {
    std::lock_guard lock{mutex};
    REQUIRE_FALSE(seen.empty());
    CHECK(seen.front().rfind("DEL ", 0) == 0);
    CHECK(seen.back() == "GET other");
  }

  // Once threads can be started again, a call that finds Redis still failing starts the retry
  // thread, which then sends what is pending with no further call.
  {
    std::lock_guard lock{mutex};
    redis_back = false;
  }
  refuse_threads = true;
  CHECK_THROWS_AS(store.erase("k2"), larder::StoreError);
  refuse_threads = false;
  CHECK_THROWS_AS(store.get("other"), larder::StoreError);  // the pending DEL fails first
  {
    std::lock_guard lock{mutex};
    redis_back = true;
  }
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (store.stats().invalidations_pending != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  CHECK(store.stats().invalidations_pending == 0);
  CHECK(store.stats().invalidations_dropped == 0);
}

#endif
