// The core's guards when an allocation fails. Its own executable: it replaces the global operator
// new (to fail the n-th allocation of the calling thread on demand), which must not touch the
// other tests. (Cached's own, which need the whole library, are in memory_oom_test.cpp: this file
// stays a quick compile.)
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
    auto leader = std::move(lead.leader);
    allocations_before_failure = 0;  // the abandoned flight's error message cannot be allocated
  }  // ~Leader: it used to throw std::bad_alloc from a noexcept destructor (std::terminate)
  allocations_before_failure = -1;
  CHECK(follow.flight->done);
  CHECK(follow.flight->error);
  CHECK(flights.in_flight() == 0);
}
