// The README's one-liner, runnable: a slow function made fast with larder::Cached.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <larder/larder.hpp>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct Author {
  std::int64_t id;
};

// Stands in for seconds of SQL and ranking.
std::vector<std::int64_t> compute_top_book_ids(const Author& author, int limit) {
  std::this_thread::sleep_for(200ms);
  std::vector<std::int64_t> ids;
  for (int i = 0; i < limit; ++i) ids.push_back(author.id * 1000 + i);
  return ids;
}

int main() {
  larder::MemoryStore store{{.max_entries = 10'000}};
  larder::Cached top_book_ids{
      store, "Author", "top_book_ids", &compute_top_book_ids, {.ttl = 24h, .fresh_for = 1h}};

  const Author author{42};
  for (int call = 1; call <= 3; ++call) {
    const auto t0 = std::chrono::steady_clock::now();
    auto ids = top_book_ids(author, 10);
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    std::printf("call %d: %zu ids from %-8s in %8lld us\n", call, ids->size(),
                std::string(larder::to_string(ids.source())).c_str(), static_cast<long long>(us));
  }
  std::printf("key: %s\n", top_book_ids.key(author, 10).c_str());
  const auto s = top_book_ids.stats();
  std::printf("hits %llu, misses %llu, loads %llu, hit ratio %.2f\n",
              static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
              static_cast<unsigned long long>(s.loads), s.hit_ratio());
  return 0;
}
