// detail/striped_counter.hpp: a counter many threads bump without sharing a cache line
// [Java's LongAdder]. A hit increments one; a shared atomic would bounce between cores.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <new>
#include <thread>

namespace larder::detail {

inline constexpr std::size_t kCacheLine = 64;  // bytes; std::hardware_destructive_interference_size
                                               // warns under gcc 12, so it is spelled out
inline constexpr std::size_t kStripes = 8;     // power of two; more stripes than cores is waste

/// This thread's stripe, fixed for its life. Handed out round-robin, so that up to kStripes live
/// threads never share a stripe (a hash of the thread id put two threads on one stripe 1 time in
/// 8).
inline std::size_t stripe_index() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed);
  return index & (kStripes - 1);
}

class StripedCounter {
 public:
  void add(std::uint64_t n = 1) noexcept {
    cells_[stripe_index()].value.fetch_add(n, std::memory_order_relaxed);
  }
  std::uint64_t load() const noexcept {
    std::uint64_t sum = 0;
    for (const auto& c : cells_) sum += c.value.load(std::memory_order_relaxed);
    return sum;
  }

 private:
  struct alignas(kCacheLine) Cell {
    std::atomic<std::uint64_t> value{0};
  };
  std::array<Cell, kStripes> cells_{};
};

}  // namespace larder::detail
