// support/counting_fn.hpp: a function double that counts its calls, can be slowed down, held at a
// gate, or made to throw [spdlog test_sink.h].
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>

#include "gate.hpp"

namespace larder::testing {

struct CountingFn {
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  std::atomic<std::int64_t> offset{0};  // added to results, to tell computations apart

  Gate gate;  // while closed, calls block in the function (to build contention deterministically)

  std::int64_t operator()(std::int64_t id) {
    ++calls;
    gate.pass();
    if (fail) throw std::runtime_error("database down");
    return id * 10 + offset;
  }
  void close_gate() { gate.close(); }
  void open_gate() { gate.open(); }
  /// Waits until n calls are blocked at the gate.
  void wait_inside(int n) { gate.wait_inside(n); }
};

/// A function that reads its "row" (`db`) first and then, on its first call only, waits at its
/// gate while closed: a computation that read the data before a write it is still computing when
/// the write's invalidation comes. Returns id * 100 + what it read.
struct ReadThenHoldFn {
  std::atomic<std::int64_t> db{1};
  std::atomic<int> calls{0};
  Gate gate;

  std::int64_t operator()(std::int64_t id) {
    const std::int64_t row = db.load();
    if (calls++ == 0) gate.pass();
    return id * 100 + row;
  }
};

}  // namespace larder::testing
