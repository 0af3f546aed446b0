// detail/striped_counter.hpp: a counter many threads bump without sharing a cache line
// [Java's LongAdder]. A hit increments one; a shared atomic would bounce between cores.
//
// A thread owns a stripe (one of kStripes) while it lives, if one is free: its increments are then
// a plain load and store of its own cell, with no locked instruction. Threads beyond kStripes
// (none on a machine with fewer cores) share one overflow cell and add to it atomically.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace larder::detail {

inline constexpr std::size_t kCacheLine = 64;  // bytes; std::hardware_destructive_interference_size
                                               // warns under gcc 12, so it is spelled out
inline constexpr std::size_t kStripes = 8;     // power of two; more stripes than cores is waste

/// The calling thread's stripe. `owned`: no other live thread has it (its cells may be bumped with
/// a plain load and store). A thread that found every stripe taken gets `owned == false` and an
/// index shared with others, handed out round-robin.
struct ThreadStripe {
  std::size_t index;
  bool owned;
};

class StripeRegistry {
 public:
  /// Constant-initialized, so that the fast path is one thread-local load and no guard.
  static const ThreadStripe& current() noexcept {
    ThreadStripe& stripe = cell();
    if (stripe.index == kUnset) [[unlikely]]
      stripe = first_use();
    return stripe;
  }
  /// The calling thread's stripe if it has claimed one, else null. Never claims, never calls: for
  /// a fast path that leaves the first use to its slow path.
  static const ThreadStripe* claimed() noexcept {
    const ThreadStripe& stripe = cell();
    return stripe.index == kUnset ? nullptr : &stripe;
  }

 private:
  static constexpr std::size_t kUnset = ~std::size_t{0};

  /// The calling thread's stripe (trivially destructible: usable in every thread-local destructor).
  static ThreadStripe& cell() noexcept {
    thread_local ThreadStripe stripe{kUnset, false};
    return stripe;
  }

  /// Claims a stripe for the thread, released when the thread exits.
  [[gnu::noinline]] static ThreadStripe first_use() noexcept {
    thread_local const Claim claim;
    return claim.stripe;
  }

  struct Claim {
    Claim() noexcept : stripe{claim()} {}
    /// Releases the stripe. A thread-local object constructed before the thread's first use is
    /// destroyed after this and may still count: it then shares the stripe as an unowned thread
    /// (atomically), since another thread may own it by then.
    ~Claim() {
      if (!stripe.owned) return;
      cell().owned = false;
      taken().fetch_and(~(std::uint32_t{1} << stripe.index), std::memory_order_release);
    }
    Claim(const Claim&) = delete;
    Claim& operator=(const Claim&) = delete;
    ThreadStripe stripe;
  };
  static_assert(kStripes <= 32);

  static std::atomic<std::uint32_t>& taken() noexcept {
    static std::atomic<std::uint32_t> bits{0};
    return bits;
  }
  static ThreadStripe claim() noexcept {
    std::uint32_t bits = taken().load(std::memory_order_relaxed);
    for (;;) {
      std::size_t free = 0;
      while (free < kStripes && (bits & (std::uint32_t{1} << free)) != 0) ++free;
      if (free == kStripes) break;
      // Acquire: the cells' last owner's stores happen before this thread's loads of them.
      if (taken().compare_exchange_weak(bits, bits | (std::uint32_t{1} << free),
                                        std::memory_order_acquire, std::memory_order_relaxed))
        return ThreadStripe{free, true};
    }
    static std::atomic<std::size_t> next{0};
    return ThreadStripe{next.fetch_add(1, std::memory_order_relaxed) & (kStripes - 1), false};
  }
};

/// This thread's stripe index, fixed for its life (see ThreadStripe).
inline std::size_t stripe_index() noexcept { return StripeRegistry::current().index; }

class StripedCounter {
 public:
  [[gnu::always_inline]] void add(std::uint64_t n = 1) noexcept {
    const ThreadStripe& t = StripeRegistry::current();
    if (t.owned) {
      auto& v = cells_[t.index].value;  // only this thread writes it: no locked instruction
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    } else {
      cells_[kStripes].value.fetch_add(n, std::memory_order_relaxed);
    }
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
  std::array<Cell, kStripes + 1> cells_{};  // the last one: the threads without a stripe
};

}  // namespace larder::detail
