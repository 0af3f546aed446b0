// MemoryStore and Cached under concurrent stress: races the existing tests do not cover. Each case
// is bounded by a count of operations (no timing), and its assertions hold in every interleaving;
// the sanitizer builds (thread; address;undefined) catch what the assertions cannot.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <larder/larder.hpp>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "support/catch.hpp"

using namespace std::chrono_literals;

namespace {

using Key = std::tuple<std::int64_t>;

std::uint64_t hash_of(std::int64_t k) {
  return larder::detail::mix64(static_cast<std::uint64_t>(k) * 0x9e3779b97f4a7c15ULL + 1);
}

/// The typed interface as Cached drives it, with the key's hash chosen by the caller (keys that
/// share a hash share a chain, told apart by their typed key).
template <class V>
class Raw {
 public:
  Raw(larder::MemoryStore& store, const char* name)
      : store_{store}, ns_{store.template namespace_id<Key, V>(name)} {}

  void put(std::int64_t k, V v, larder::TimePoint now, std::chrono::nanoseconds ttl = 1h) {
    put_hashed(hash_of(k), k, std::move(v), now, ttl);
  }
  void put_hashed(std::uint64_t h, std::int64_t k, V v, larder::TimePoint now,
                  std::chrono::nanoseconds ttl = 1h) {
    store_.template put<Key, V>(ns_, h, eq(k), Key{k}, std::make_shared<const V>(std::move(v)),
                                larder::Stamps{now, now + ttl, now + ttl});
  }
  std::optional<larder::Found<V>> find(std::int64_t k, larder::TimePoint now) {
    return find_hashed(hash_of(k), k, now);
  }
  std::optional<larder::Found<V>> find_hashed(std::uint64_t h, std::int64_t k,
                                              larder::TimePoint now) {
    return store_.template find<Key, V>(ns_, h, eq(k), now);
  }
  bool erase(std::int64_t k) { return store_.template erase<Key, V>(ns_, hash_of(k), eq(k)); }
  std::uint32_t ns() const noexcept { return ns_; }

 private:
  static auto eq(std::int64_t k) {
    return [k](const Key& key) { return std::get<0>(key) == k; };
  }
  larder::MemoryStore& store_;
  std::uint32_t ns_;
};

std::string text_of(std::int64_t k, std::int64_t version) {
  // Longer than the small-string buffer: a freed value is heap memory the sanitizers watch.
  return "value of key " + std::to_string(k) + " version " + std::to_string(version) +
         " padded past SSO";
}
bool text_is_of(const std::string& s, std::int64_t k) {
  const std::string head = "value of key " + std::to_string(k) + " version ";
  return s.compare(0, head.size(), head) == 0 && s.ends_with(" padded past SSO");
}

const larder::TimePoint kNow{std::chrono::hours{24 * 365 * 56}};

}  // namespace

TEST_CASE("A read racing the replacement of its key finds the old or the new value, never a miss",
          "[memory][concurrency][stress]") {
  // Every key shares one hash, so they share one chain: the replaced key sits behind the others
  // (each round puts it, then puts the others over it), and a reader walks past them to reach it.
  // The key is in the store from the first put on; a find must never miss it.
  larder::MemoryStore store{{.max_entries = 1000}};
  Raw<std::string> d{store, "stress:replace"};
  constexpr std::uint64_t kHash = 0x1234'5678'9abc'def0ULL;
  constexpr std::int64_t kTarget = 0;
  constexpr std::int64_t kOthers = 12;
  for (std::int64_t k = 0; k <= kOthers; ++k) d.put_hashed(kHash, k, text_of(k, 0), kNow);
  std::atomic<bool> done{false};
  std::atomic<int> misses{0};
  std::atomic<int> wrong{0};
  std::thread reader{[&] {
    while (!done.load(std::memory_order_relaxed)) {
      auto f = d.find_hashed(kHash, kTarget, kNow);
      if (!f) {
        misses.fetch_add(1, std::memory_order_relaxed);
      } else if (!text_is_of(*f->value, kTarget)) {
        wrong.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }};
  for (std::int64_t round = 1; round <= 1500; ++round) {
    d.put_hashed(kHash, kTarget, text_of(kTarget, round), kNow);
    for (std::int64_t k = 1; k <= kOthers; ++k) d.put_hashed(kHash, k, text_of(k, round), kNow);
  }
  done = true;
  reader.join();
  CHECK(misses == 0);
  CHECK(wrong == 0);
  CHECK(store.size() == static_cast<std::size_t>(kOthers + 1));
  CHECK_NOTHROW(store.check_invariants());
}
