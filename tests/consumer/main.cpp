// Builds against larder as a user would and checks that one cached call computes once.
#include <larder/larder.hpp>
#ifdef CONSUMER_HAS_REDIS
#include <larder/redis_store.hpp>
#endif

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

using namespace std::chrono_literals;

static int computations = 0;

static std::vector<std::int64_t> compute_top_book_ids(std::int64_t author, int limit) {
  ++computations;
  return std::vector<std::int64_t>(static_cast<std::size_t>(limit), author);
}

int main() {
  larder::MemoryStore store{{.max_entries = 100}};
  larder::Cached top_book_ids{
      store, "Author", "top_book_ids", &compute_top_book_ids, {.ttl = 24h, .fresh_for = 1h}};
  std::vector<std::int64_t> a = top_book_ids(42, 10);
  std::vector<std::int64_t> b = top_book_ids(42, 10);
  if (a != b || a.size() != 10 || computations != 1 ||
      top_book_ids.key(42, 10) != "larder:v1:Author:top_book_ids:10:42") {
    std::puts("consumer: FAILED");
    return 1;
  }
#ifdef CONSUMER_HAS_REDIS
  // Links the compiled Redis store and hiredis; a RedisStore connects on its first command only.
  larder::RedisStore redis{"redis://127.0.0.1:6390/3"};
  if (redis.options().db != 3 || redis.options().port != 6390) {
    std::puts("consumer: FAILED (redis options)");
    return 1;
  }
#endif
  std::puts("consumer: ok");
  return 0;
}
