// detail/spin_lock.hpp: a test-and-test-and-set lock for critical sections of a few hundred
// nanoseconds (the memory store's shard and policy locks), where a futex sleep and wake would cost
// more than the work. Spins on a plain load (no cache-line ping-pong while held), then yields, so
// it stays fair enough on an oversubscribed machine. Meets Lockable: use it with std::lock_guard.
#pragma once

#include <atomic>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace larder::detail {

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

class SpinLock {
 public:
  void lock() noexcept {
    for (;;) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 64) {
          cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

  /// try_lock and unlock whose load, exchange and store are sequentially consistent, for a
  /// hand-off that pairs them with another variable's sequentially consistent accesses (the memory
  /// store's write buffer: memory_store.hpp, PolicyMutex).
  bool try_lock_seq_cst() noexcept {
    return !locked_.load(std::memory_order_seq_cst) &&
           !locked_.exchange(true, std::memory_order_seq_cst);
  }
  void unlock_seq_cst() noexcept { locked_.store(false, std::memory_order_seq_cst); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace larder::detail
