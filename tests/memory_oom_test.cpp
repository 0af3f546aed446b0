// MemoryStore when an allocation fails inside a put: the entry must not be left in the table
// outside the policy; and Cached's single flight when an allocation of a call fails. Its own
// executable: it replaces the global operator new (to fail the n-th allocation of the calling
// thread on demand), which must not touch the other tests.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <larder/larder.hpp>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <vector>

#include "support/catch.hpp"
#include "support/failing_new.hpp"
#include "support/manual_executor.hpp"

using larder::testing::allocations_before_failure;

using namespace std::chrono_literals;

namespace {
using Key = std::tuple<std::int64_t>;

/// store.put of k -> 2k (stored under `hash`, expiring after `ttl`). With `fail`, the put's own
/// node allocation succeeds and the next allocation of this thread fails.
void put_entry(larder::MemoryStore& store, std::uint32_t ns, std::int64_t k, std::uint64_t hash,
               larder::TimePoint now, std::chrono::nanoseconds ttl, bool fail) {
  auto value = std::make_shared<const std::int64_t>(k * 2);
  const larder::Stamps stamps{now, now + ttl, now + ttl};
  auto eq = [k](const Key& key) { return std::get<0>(key) == k; };
  allocations_before_failure = fail ? 1 : -1;
  try {
    store.put<Key, std::int64_t>(ns, hash, eq, Key{k}, value, stamps);
  } catch (...) {
    allocations_before_failure = -1;
    throw;
  }
  allocations_before_failure = -1;
}
}  // namespace

TEST_CASE("A put whose admission runs out of memory leaves no entry outside the policy",
          "[memory][failure]") {
  larder::MemoryStore store{{.max_entries = 100}};
  const std::uint32_t ns = store.namespace_id<Key, std::int64_t>("oom:f");
  const larder::TimePoint now{std::chrono::hours{24 * 365 * 56}};
  // With `fail`, the allocation that fails is the entry's calendar bucket (a new expiry tick).
  auto put = [&](std::int64_t k, std::chrono::nanoseconds ttl, bool fail) {
    put_entry(store, ns, k, larder::detail::mix64(static_cast<std::uint64_t>(k)), now, ttl, fail);
  };
  put(1, 1h, false);  // warms up the thread's epoch record, stripe and filter
  CHECK_THROWS_AS(put(2, 2h, true), std::bad_alloc);
  // The failed entry may be admitted later or dropped, but nothing may be in the table that the
  // policy and the calendar do not know (it would never be evicted nor expire).
  store.maintain(now);
  CHECK_NOTHROW(store.check_invariants());
  put(3, 3h, false);
  store.maintain(now);
  CHECK_NOTHROW(store.check_invariants());
}

TEST_CASE("A put whose table growth runs out of memory stores its entry all the same",
          "[memory][failure]") {
  larder::MemoryStore store{{.max_entries = 100}};
  const std::uint32_t ns = store.namespace_id<Key, std::int64_t>("oom:g");
  const larder::TimePoint now{std::chrono::hours{24 * 365 * 56}};
  // Hashes below 2^28 fold to themselves and all fall in the first shard (16 buckets, grown when
  // a 13th entry arrives). With `fail`, the allocation that fails is the bigger table.
  auto put = [&](std::int64_t k, bool fail) {
    put_entry(store, ns, k, static_cast<std::uint64_t>(k), now, 1h, fail);
  };
  for (std::int64_t k = 1; k <= 12; ++k) put(k, false);
  // A bigger table is an optimisation: without memory for it, the chains are only longer.
  CHECK_NOTHROW(put(13, true));
  CHECK_NOTHROW(store.check_invariants());
  for (std::int64_t k = 14; k <= 40; ++k) put(k, false);  // grows on a later put
  store.maintain(now);
  CHECK(store.size() == 40);
  CHECK_NOTHROW(store.check_invariants());
}

namespace {

/// Runs `step` with the n-th allocation of this thread failing, for n = 0, 1, ... until a run
/// makes fewer than n + 1 allocations; after each run, `check` (with allocations back on) must
/// pass. (Not until a run throws no std::bad_alloc: a failure the library absorbs, computing on the
/// caller when a background refresh cannot be queued, say, must not end the sweep early.)
template <class Step, class Check>
void fail_each_allocation(Step&& step, Check&& check) {
  for (int n = 0;; ++n) {
    REQUIRE(n < 2000);
    allocations_before_failure = n;
    try {
      step();
    } catch (const std::bad_alloc&) {
    }
    const bool reached = allocations_before_failure < 0;  // the n-th allocation was made: failed
    allocations_before_failure = -1;
    check();
    if (!reached) return;
  }
}

}  // namespace

TEST_CASE(
    "Whatever allocation of a miss, a stale recompute or get_many fails, no flight is left "
    "behind",
    "[review][single_flight]") {
  // A flight left in the table without a leader (or with no Flight at all, when its allocation
  // failed after the key was inserted) made every later call of the key wait on it: ColdCacheError
  // at once with fail_fast, a null dereference when the Flight was missing, and a stale entry never
  // refreshed again.
  using namespace std::chrono_literals;
  larder::FakeClock clock;
  larder::MemoryStore store;
  std::int64_t offset = 0;
  larder::Cached c{
      store,
      "T",
      "f",
      [&](std::int64_t id) { return id * 10 + offset; },
      {.ttl = 24h, .fresh_for = 1h, .on_cold = larder::OnCold::fail_fast, .clock = &clock}};

  SECTION("a miss") {
    fail_each_allocation(
        [&] {
          c.invalidate(1);
          (void)c(1);
        },
        [&] { CHECK(*c(1) == 10); });
  }
  SECTION("a stale recompute") {
    (void)c(1);
    fail_each_allocation(
        [&] {
          clock.advance(2h);  // stale
          ++offset;
          (void)c(1);
        },
        [&] {
          clock.advance(2h);  // stale whatever the run stored: this call must recompute it
          ++offset;
          const auto r = c(1);
          CHECK_FALSE(r.stale());
          CHECK(*r == 10 + offset);
        });
  }
  SECTION("a background refresh") {
    // The refresh task takes the flight's Leader; when the task cannot be built or queued, the
    // caller gets it back and recomputes. Lost, the key would be served stale for ever.
    larder::testing::ManualExecutor executor;
    larder::Cached bg{store,
                      "T",
                      "g",
                      [&](std::int64_t id) { return id * 10 + offset; },
                      {.ttl = 24h,
                       .fresh_for = 1h,
                       .refresh = larder::Refresh::background,
                       .on_cold = larder::OnCold::fail_fast,
                       .clock = &clock,
                       .executor = &executor}};
    (void)bg(1);
    fail_each_allocation(
        [&] {
          clock.advance(2h);  // stale
          ++offset;
          (void)bg(1);
          executor.run_all();
        },
        [&] {
          executor.run_all();
          clock.advance(2h);  // stale whatever the run stored: the next call refreshes it
          ++offset;
          (void)bg(1);  // served stale (and refreshed by the task), or computed if a run dropped it
          executor.run_all();
          const auto r = bg(1);
          CHECK_FALSE(r.stale());
          CHECK(*r == 10 + offset);
        });
  }
  SECTION("get_many") {
    const std::vector<std::int64_t> ids{1, 2, 3};
    fail_each_allocation(
        [&] {
          for (std::int64_t id : ids) c.invalidate(id);
          (void)c.get_many(ids);
        },
        [&] {
          for (std::int64_t id : ids) CHECK(*c(id) == id * 10);
        });
  }
}
