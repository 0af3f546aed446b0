// ThreadPool and Warmer when an allocation fails. A ThreadPool whose thread cannot be started
// (an allocation for the thread's state, or std::system_error from the system) must stop and join
// the threads already started and throw, never std::terminate. A Warmer's pump that cannot copy a
// failure's message must still count the failure and end, or stop() and wait_idle() wait forever;
// its destructor must not let a failed allocation out (std::terminate).
// Its own executable: it replaces the global operator new (to fail the n-th allocation of the
// calling thread on demand).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <larder/executor.hpp>
#include <larder/warmer.hpp>
#include <new>
#include <stdexcept>
#include <thread>

#include "support/catch.hpp"
#include "support/failing_new.hpp"
#include "support/gate.hpp"

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

TEST_CASE("Warmer: a destructor that cannot hold the cancelled IDs drains them instead",
          "[warmer]") {
  // ~Warmer is stop(cancel), which collects the queued IDs to hand them back; if that allocation
  // fails, the exception must not leave the destructor (std::terminate). The queued IDs are then
  // warmed rather than dropped: either way no refresh asked for is lost.
  larder::testing::Gate gate;
  std::atomic<int> warmed{0};
  std::atomic<int> cancelled{0};
  std::thread opener;
  {
    larder::Warmer<std::int64_t> warmer{
        [&](const std::int64_t&, larder::WarmKind) {
          gate.pass();
          ++warmed;
        },
        {},
        {.workers = 1},
        [&](const std::int64_t&, larder::WarmKind) { ++cancelled; }};
    gate.close();
    CHECK(warmer.enqueue(1));
    gate.wait_inside(1);
    CHECK(warmer.enqueue(2));
    CHECK(warmer.enqueue(3));
    opener = std::thread{[&] {
      std::this_thread::sleep_for(std::chrono::milliseconds{50});
      gate.open();
    }};
    allocations_before_failure = 0;  // the destructor's first allocation fails
  }
  allocations_before_failure = -1;
  opener.join();
  CHECK(warmed == 3);
  CHECK(cancelled == 0);
}
