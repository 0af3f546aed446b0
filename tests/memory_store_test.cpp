// MemoryStore through Cached: bounds, sharing, expiry, and concurrent use.
#include <atomic>
#include <cstdint>
#include <larder/larder.hpp>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "support/catch.hpp"

using namespace std::chrono_literals;

TEST_CASE("MemoryStore rejects a zero bound", "[store]") {
  CHECK_THROWS_WITH(larder::MemoryStore({.max_entries = 0}), Catch::Contains("max_entries"));
}

TEST_CASE("MemoryStore never holds more than max_entries across functions", "[store]") {
  larder::MemoryStore store{{.max_entries = 10}};
  larder::Cached a{store, "A", "f", [](std::int64_t id) { return id; }};
  larder::Cached b{store, "B", "g", [](std::int64_t id) { return std::to_string(id); }};
  for (std::int64_t i = 0; i < 100; ++i) {
    a(i);
    b(i);
    CHECK(store.size() <= 10);
  }
  CHECK(store.size() == 10);
  CHECK(store.evictions() == 190);
}

TEST_CASE("MemoryStore keeps the values of different functions apart", "[store]") {
  larder::MemoryStore store;
  larder::Cached a{store, "A", "f", [](std::int64_t id) { return id; }};
  larder::Cached b{store, "A", "g", [](std::int64_t id) { return id * 2; }};
  CHECK(*a(5) == 5);
  CHECK(*b(5) == 10);
  CHECK(*a(5) == 5);
  CHECK(a(5).source() == larder::Source::memory);
}

TEST_CASE("MemoryStore keeps a large value shared, never copied", "[store]") {
  larder::MemoryStore store;
  std::atomic<int> copies{0};
  struct Big {
    std::vector<char> bytes;
    std::atomic<int>* copies;
    Big(std::size_t n, std::atomic<int>* c) : bytes(n), copies{c} {}
    Big(const Big& o) : bytes(o.bytes), copies{o.copies} { ++*copies; }
    Big(Big&& o) noexcept = default;
  };
  larder::Cached c{store, "Big", "make", [&](std::int64_t) { return Big{1 << 20, &copies}; }};
  c(1);
  for (int i = 0; i < 100; ++i) {
    auto r = c(1);
    CHECK(r->bytes.size() == (1u << 20));
  }
  CHECK(copies == 0);
}

TEST_CASE("A temporary handle's value is copied out, never referred into", "[store]") {
  // The entry is heavier than the whole store, so the handle is the value's only owner: a
  // reference into it (what `*` on a temporary returned before) dangles in a range-for.
  larder::MemoryStore store{{.max_entries = 10, .max_weight = 64}};
  larder::Cached c{store, "T", "ids", [](std::int64_t n) {
                     return std::vector<std::int64_t>(static_cast<std::size_t>(n), 1);
                   }};
  static_assert(std::is_same_v<decltype(*c(1000)), std::vector<std::int64_t>>);
  static_assert(std::is_same_v<decltype(*std::declval<const larder::Result<int>&>()), const int&>);
  std::int64_t sum = 0;
  for (auto id : *c(1000)) sum += id;  // ASan: heap-use-after-free if * referred into the handle
  CHECK(sum == 1000);
  CHECK(store.rejected() >= 1);
  const auto& v = *c(1000);  // bound to a copy whose life is extended
  CHECK(v.size() == 1000);
  auto r = c(1000);
  CHECK(&*r == &*r);  // an lvalue handle still gives a reference, no copy
  CHECK(r->size() == 1000);
}

TEST_CASE("Typed keys tell apart values that hash alike", "[store]") {
  // Strings with separators, empty strings and ranges: equality is checked on the stored parts.
  larder::MemoryStore store;
  larder::Cached c{store, "T", "join",
                   [](const std::string& id, const std::vector<std::string>& v) {
                     std::string out = id;
                     for (const auto& s : v) out += "|" + s;
                     return out;
                   }};
  CHECK(*c("x", std::vector<std::string>{"a", "b"}) == "x|a|b");
  CHECK(*c("x", std::vector<std::string>{"a,b"}) == "x|a,b");
  CHECK(*c("x", std::vector<std::string>{}) == "x");
  CHECK(*c("x", std::vector<std::string>{""}) == "x|");
  CHECK(*c("x", std::vector<std::string>{"a", "b"}) == "x|a|b");
}

TEST_CASE("MemoryStore loses no entry under concurrent puts and gets", "[store][concurrency]") {
  larder::MemoryStore store{{.max_entries = 100'000}};
  std::atomic<int> computed{0};
  larder::Cached c{store, "T", "f", [&](std::int64_t id) {
                     ++computed;
                     return id + 1;
                   }};
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (std::int64_t i = 0; i < 2000; ++i)
        if (*c(i) != i + 1) ++wrong;
    });
  }
  for (auto& th : threads) th.join();
  CHECK(wrong == 0);
  CHECK(computed == 2000);  // single-flight and no lost entry: each key computed exactly once
  CHECK(store.size() == 2000);
}
