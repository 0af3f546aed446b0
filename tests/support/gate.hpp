// support/gate.hpp: a gate a test double's calls pass through: while it is closed they wait in it,
// so a test can hold calls in the middle of their work and build contention deterministically.
#pragma once

#include <condition_variable>
#include <mutex>

namespace larder::testing {

class Gate {
 public:
  /// Returns at once while the gate is open; else waits, counted as inside, until it opens.
  void pass() {
    std::unique_lock lock{mutex_};
    ++inside_;
    cv_.notify_all();
    cv_.wait(lock, [this] { return open_; });
    --inside_;
  }
  void close() {
    std::lock_guard lock{mutex_};
    open_ = false;
  }
  void open() {
    {
      std::lock_guard lock{mutex_};
      open_ = true;
    }
    cv_.notify_all();
  }
  /// Waits until n calls are held at the gate.
  void wait_inside(int n) {
    std::unique_lock lock{mutex_};
    cv_.wait(lock, [&] { return inside_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = true;
  int inside_ = 0;
};

}  // namespace larder::testing
