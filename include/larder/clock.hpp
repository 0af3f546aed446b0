// clock.hpp: where larder reads the time, so that tests can move it by hand.
// Thread-safe: now() may be called concurrently.
#pragma once

#include <atomic>
#include <chrono>
#include <ctime>
#include <ratio>

namespace larder {

/// Wall-clock time with nanosecond ticks. Wall time (not steady time) because freshness stamps
/// travel between processes through a shared store.
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::nanoseconds>;

/// A source of the current time [Caffeine `Ticker`]. Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const noexcept = 0;
};

/// The default clock: CLOCK_REALTIME_COARSE where available (a few ns per read, 1-4 ms resolution,
/// ample for TTLs), else std::chrono::system_clock.
class SystemClock final : public Clock {
 public:
  TimePoint now() const noexcept override {
#if defined(CLOCK_REALTIME_COARSE)
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return TimePoint{std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds { ts.tv_nsec }};
#else
    return std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now());
#endif
  }

  /// The process-wide instance used when no clock is injected.
  static SystemClock& instance() noexcept {
    static SystemClock clock;
    return clock;
  }
};

/// A clock that moves only when told to: for tests and simulations.
/// Example:
///   larder::FakeClock clock;
///   larder::Cached c{store, "A", "f", &f, {.ttl = 1h, .clock = &clock}};
///   clock.advance(2h);   // the entry has now expired
class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint{std::chrono::hours{24 * 365 * 56}}) noexcept
      : now_ns_{start.time_since_epoch().count()} {}
  TimePoint now() const noexcept override {
    return TimePoint{std::chrono::nanoseconds{now_ns_.load(std::memory_order_acquire)}};
  }
  void advance(std::chrono::nanoseconds d) noexcept {
    now_ns_.fetch_add(d.count(), std::memory_order_acq_rel);
  }
  void set(TimePoint t) noexcept {
    now_ns_.store(t.time_since_epoch().count(), std::memory_order_release);
  }

 private:
  std::atomic<std::int64_t> now_ns_;
};

namespace detail {

/// t + d, or the latest time point the clock can hold where the sum does not fit: a duration too
/// long for the clock (milliseconds::max(), centuries on a nanosecond clock) means "never".
/// d must be >= 0.
template <class C, class Rep, class Period>
constexpr std::chrono::time_point<C, std::chrono::nanoseconds> saturating_add(
    std::chrono::time_point<C, std::chrono::nanoseconds> t,
    std::chrono::duration<Rep, Period> d) noexcept {
  using Tp = std::chrono::time_point<C, std::chrono::nanoseconds>;
  using std::chrono::nanoseconds;
  if constexpr (std::chrono::treat_as_floating_point_v<Rep> ||
                std::ratio_greater_equal_v<Period, std::nano>) {
    // The most of d's units that fit in nanoseconds, without converting d (which could overflow).
    const auto fits = std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(
        nanoseconds::max() - std::chrono::duration_cast<nanoseconds>(std::chrono::seconds{1}));
    if (d >= fits) return Tp::max();
  }
  // else an integer count of units finer than a nanosecond: converting it divides, never
  // overflows (while converting nanoseconds::max() to those units would).
  const nanoseconds dn = std::chrono::duration_cast<nanoseconds>(d);
  if (t.time_since_epoch() > nanoseconds::max() - dn) return Tp::max();
  return t + dn;
}

}  // namespace detail

}  // namespace larder
