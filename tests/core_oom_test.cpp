// The core's guards when an allocation fails. Its own executable: it replaces the global operator
// new (to fail the n-th allocation of the calling thread on demand), which must not touch the
// other tests.
#include <chrono>
#include <cstdint>
#include <larder/detail/single_flight.hpp>
#include <larder/larder.hpp>
#include <new>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/failing_new.hpp"

using larder::testing::allocations_before_failure;

TEST_CASE("A Leader abandoned when no memory is left still fails its flight, without throwing",
          "[review][single_flight]") {
  larder::detail::SingleFlight<int> flights;
  auto lead = flights.join("k");
  REQUIRE(lead.leader);
  auto follow = flights.join("k");
  REQUIRE_FALSE(follow.leader);
  {
    larder::detail::SingleFlight<int>::Leader leader{flights, "k", lead.flight};
    allocations_before_failure = 0;  // the abandoned flight's error message cannot be allocated
  }  // ~Leader: it used to throw std::bad_alloc from a noexcept destructor (std::terminate)
  allocations_before_failure = -1;
  CHECK(follow.flight->done);
  CHECK(follow.flight->error);
  CHECK(flights.in_flight() == 0);
}

namespace {

/// Runs `step` with the n-th allocation of this thread failing, for n = 0, 1, ... until a run
/// throws no std::bad_alloc; after each run, `check` (with allocations back on) must pass.
template <class Step, class Check>
void fail_each_allocation(Step&& step, Check&& check) {
  for (int n = 0;; ++n) {
    REQUIRE(n < 2000);
    bool failed = false;
    allocations_before_failure = n;
    try {
      step();
    } catch (const std::bad_alloc&) {
      failed = true;
    }
    allocations_before_failure = -1;
    check();
    if (!failed) return;
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
