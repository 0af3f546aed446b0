// ThreadPool and Warmer when an allocation fails. A ThreadPool whose thread cannot be started
// (an allocation for the thread's state, or std::system_error from the system) must stop and join
// the threads already started and throw, never std::terminate. A Warmer's pump that cannot copy a
// failure's message must still count the failure and end, or stop() and wait_idle() wait forever.
// Its own executable: it replaces the global operator new (to fail the n-th allocation of the
// calling thread on demand).
#include <chrono>
#include <cstdint>
#include <larder/executor.hpp>
#include <larder/warmer.hpp>
#include <new>
#include <stdexcept>

#include "support/catch.hpp"
#include "support/failing_new.hpp"

using larder::testing::allocations_before_failure;

TEST_CASE("ThreadPool: a thread that cannot be started throws, joining the others", "[executor]") {
  // Each n fails a later allocation of the constructor: the reserve, then each thread's state.
  for (int n = 0; n < 8; ++n) {
    CAPTURE(n);
    bool threw = false;
    allocations_before_failure = n;
    try {
      larder::ThreadPool pool{4};
      allocations_before_failure = -1;
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    allocations_before_failure = -1;
    if (!threw) break;  // n was past the constructor's last allocation
  }
  larder::ThreadPool pool{2};  // and the allocator is whole again
  SUCCEED();
}

TEST_CASE("Warmer: a failure whose message cannot be copied is still counted, and the pump ends",
          "[warmer]") {
  const auto warm = [](const std::int64_t& id, larder::WarmKind) {
    if (id == 2) throw 42;  // not a std::exception: "unknown exception"
    std::runtime_error e{"a message longer than any small-string buffer: " + std::to_string(id)};
    allocations_before_failure = 0;  // the pump's next allocation (copying the message) fails
    throw e;
  };
  larder::Warmer<std::int64_t> warmer{warm, {}, {.workers = 1}};
  CHECK(warmer.enqueue(1));
  CHECK(warmer.enqueue(2));
  const bool idle = warmer.wait_idle_for(std::chrono::seconds{10});
  allocations_before_failure = -1;
  REQUIRE(idle);
  const auto p = warmer.progress();
  CHECK(p.failed == 2);
  CHECK(p.done == 0);
}
