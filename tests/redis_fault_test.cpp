// RedisStore when the process runs out of resources: an allocation that fails inside a call (the
// connection's pool slot must not be lost). Its own executable: it replaces the global operator
// new (to fail the n-th allocation of the calling thread on demand), which must not touch the
// other tests. The server is a FakeRedis: no redis-server is needed.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <larder/redis_store.hpp>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support/catch.hpp"
#include "support/fake_redis.hpp"

namespace {
// Allocations of this thread still allowed before one fails; negative: none fails.
thread_local int allocations_before_failure = -1;
void* allocate(std::size_t n) {
  if (allocations_before_failure >= 0 && allocations_before_failure-- == 0) throw std::bad_alloc{};
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
}  // namespace

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }

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
