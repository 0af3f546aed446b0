// stats.hpp: what one cached function's cache did (a snapshot), and whether it helps.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

namespace larder {

/// A consistent-enough snapshot of one Cached's counters (each counter is exact; they are read one
/// after the other, so a snapshot taken under load may be off by the calls in between).
///
/// Every call (every key of a get_many; a key repeated within one get_many counts once) is counted
/// in exactly one of hits, stale_serves, misses, coalesced, coalesced_failures and cold_rejections.
struct Stats {
  std::uint64_t hits = 0;            ///< served fresh from a store
  std::uint64_t misses = 0;          ///< found nothing usable and computed (or tried to) itself
  std::uint64_t stale_serves = 0;    ///< served a stale value while a recompute ran or was due
  std::uint64_t stale_on_error = 0;  ///< served stale because the recompute failed (stale_if_error)
  /// computations of the function that succeeded: a miss's, or a refresh's (refresh(), a
  /// background recompute of a stale entry), which is not a call
  std::uint64_t loads = 0;
  std::uint64_t load_failures = 0;  ///< computations that threw (a miss's or a refresh's)
  /// calls that received another caller's computation: a thread of this process (single flight),
  /// or another process that held the shared tier's lock
  std::uint64_t coalesced = 0;
  std::uint64_t cold_rejections = 0;  ///< ColdCacheError thrown (fail_fast, or the wait ran out)
  std::uint64_t store_errors = 0;   ///< store I/O failures survived (the value was computed anyway)
  std::uint64_t decode_errors = 0;  ///< stored bytes that did not decode (treated as misses)
  std::chrono::nanoseconds load_time{0};  ///< total time spent computing
  std::uint64_t waiting = 0;  ///< gauge: callers waiting right now for another's computation
  /// gauge: false while the byte store is skipped (RedisStore's circuit breaker is open; see
  /// RedisStore::stats() for its state and counters). True without a byte store.
  bool store_available = true;
  /// calls that waited for another caller's computation in this process and got its exception
  /// (other than ColdCacheError, a cold rejection): not answered, and not a computation of theirs
  std::uint64_t coalesced_failures = 0;

  /// Calls that got an answer, computed one, or waited for one that failed: hits + stale serves +
  /// misses + coalesced + coalesced failures (cold rejections are counted apart).
  std::uint64_t requests() const noexcept { return answered() + misses + coalesced_failures; }
  /// Calls answered without running the function for them: hits + stale serves + coalesced (a
  /// caller that waited for another's computation was spared one; Guava and Caffeine count such a
  /// waiter as a miss; one that got the computation's exception was not answered, see
  /// coalesced_failures).
  std::uint64_t answered() const noexcept { return hits + stale_serves + coalesced; }
  /// Share of calls answered without computing: answered() / requests(); 0 when idle.
  double hit_ratio() const noexcept {
    const auto r = requests();
    return r == 0 ? 0.0 : static_cast<double>(answered()) / static_cast<double>(r);
  }
  /// Mean time of one computation; 0 before the first.
  std::chrono::nanoseconds mean_load_time() const noexcept {
    const auto n = loads + load_failures;
    return n == 0 ? std::chrono::nanoseconds{0} : load_time / static_cast<std::int64_t>(n);
  }
  /// Computation time the cache saved: answered calls times the mean load time, saturated at
  /// nanoseconds::max() (about 292 years) where the product does not fit.
  std::chrono::nanoseconds time_saved() const noexcept {
    const std::int64_t mean = mean_load_time().count();
    const std::uint64_t spared = answered();
    if (mean <= 0 || spared == 0) return std::chrono::nanoseconds{0};
    if (spared > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / mean))
      return std::chrono::nanoseconds::max();
    return std::chrono::nanoseconds{mean * static_cast<std::int64_t>(spared)};
  }
};

}  // namespace larder
