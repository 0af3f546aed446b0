// support/counting_fn.hpp: a function double that counts its calls, can be slowed down, held at a
// gate, or made to throw [spdlog test_sink.h].
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

namespace larder::testing {

struct CountingFn {
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  std::atomic<std::int64_t> offset{0};  // added to results, to tell computations apart

  // A gate: while closed, calls block in the function (to build contention deterministically).
  std::mutex mutex;
  std::condition_variable cv;
  bool open = true;
  int inside = 0;

  std::int64_t operator()(std::int64_t id) {
    ++calls;
    {
      std::unique_lock lock{mutex};
      ++inside;
      cv.notify_all();
      cv.wait(lock, [this] { return open; });
      --inside;
    }
    if (fail) throw std::runtime_error("database down");
    return id * 10 + offset;
  }
  void close_gate() {
    std::lock_guard lock{mutex};
    open = false;
  }
  void open_gate() {
    {
      std::lock_guard lock{mutex};
      open = true;
    }
    cv.notify_all();
  }
  /// Waits until n calls are blocked at the gate.
  void wait_inside(int n) {
    std::unique_lock lock{mutex};
    cv.wait(lock, [&] { return inside >= n; });
  }
};

}  // namespace larder::testing
