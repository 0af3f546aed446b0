// ThreadPool and Warmer when an allocation fails. A ThreadPool whose thread cannot be started
// (an allocation for the thread's state, or std::system_error from the system) must stop and join
// the threads already started and throw, never std::terminate. Its own executable: it replaces
// the global operator new (to fail the n-th allocation of the calling thread on demand).
#include <larder/executor.hpp>
#include <new>

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
