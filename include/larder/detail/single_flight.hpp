// detail/single_flight.hpp: at most one computation per key in this process.
//
// Call path. A caller that finds nothing usable calls join(key). The first becomes the leader and
// computes; later callers get the same Flight and wait on it (or refuse to, per OnCold). A caller
// that finds a stale value calls try_lead(key): it leads a refresh only if nobody is computing that
// key, and otherwise is served the stale value at once.
//
// Failure. The leader always completes its flight, with a value or with the exception its
// computation threw. Waiters rethrow that exception; nothing is cached; the flight is removed
// before waiters wake, so the next call starts a new computation. If the leader itself dies
// unexpectedly, the Leader guard fails the flight so that no waiter hangs.
//
// Concurrency. The table is split into kShards shards by the key's hash, each guarded by its own
// mutex (held for a hash lookup, never during a computation), so threads that miss on different
// keys do not queue on one lock; each flight has its own mutex and condition variable. Keys are
// of any hashable type: Cached keys its flights by the call's typed key and its 64-bit hash, so a
// miss renders no key string unless a byte store or an error report needs one. See
// docs/design.md, "Concurrency".
#pragma once

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>

#include "larder/clock.hpp"
#include "larder/detail/hash.hpp"
#include "larder/detail/striped_counter.hpp"
#include "larder/store.hpp"

namespace larder::detail {

template <class V, class K = std::string, class Hash = std::hash<K>, class Eq = std::equal_to<K>>
class SingleFlight {
 public:
  struct Flight {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    std::shared_ptr<const V> value;
    Stamps stamps;
    std::exception_ptr error;

    /// Waits until done or until `timeout` passes; true if done. A timeout too long for the
    /// steady clock waits without one (cv.wait_for would overflow and return at once).
    bool wait_for(std::chrono::milliseconds timeout) {
      std::unique_lock lock{mutex};
      const auto now = std::chrono::steady_clock::now();
      const auto deadline = saturating_add(now, timeout);
      if (deadline == std::chrono::steady_clock::time_point::max()) {
        cv.wait(lock, [this] { return done; });
        return true;
      }
      return cv.wait_until(lock, deadline, [this] { return done; });
    }
  };
  using FlightPtr = std::shared_ptr<Flight>;

  struct Ticket {
    FlightPtr flight;
    bool leader;
  };

  /// Joins the flight for key, creating it (and becoming its leader) if there is none.
  Ticket join(const K& key) {
    Shard& s = shard_of(key);
    std::lock_guard lock{s.mutex};
    auto [it, inserted] = s.flights.try_emplace(key);
    if (inserted) it->second = new_flight(s, it);
    return {it->second, inserted};
  }

  /// Becomes the leader of a new flight for key, or returns null if one is under way.
  FlightPtr try_lead(const K& key) {
    Shard& s = shard_of(key);
    std::lock_guard lock{s.mutex};
    auto [it, inserted] = s.flights.try_emplace(key);
    if (!inserted) return nullptr;
    it->second = new_flight(s, it);
    return it->second;
  }

  void complete(const K& key, const FlightPtr& flight, std::shared_ptr<const V> value,
                const Stamps& stamps) {
    finish(key, flight, [&](Flight& f) {
      f.value = std::move(value);
      f.stamps = stamps;
    });
  }

  void fail(const K& key, const FlightPtr& flight, std::exception_ptr error) {
    finish(key, flight, [&](Flight& f) { f.error = std::move(error); });
  }

  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const Shard& s : shards_) {
      std::lock_guard lock{s.mutex};
      n += s.flights.size();
    }
    return n;
  }

  /// Completes the flight on every path. The leader completes or fails it explicitly (from a catch
  /// block, where the exception is known); if it unwinds past that, waiters get a logic_error
  /// rather than hang (std::current_exception() is empty during unwinding).
  class Leader {
   public:
    Leader(SingleFlight& sf, K key, FlightPtr flight)
        : sf_{sf}, key_{std::move(key)}, flight_{std::move(flight)} {}
    Leader(const Leader&) = delete;
    Leader& operator=(const Leader&) = delete;
    ~Leader() {
      if (!flight_) return;
      sf_.fail(key_, flight_, abandoned());
    }
    void complete(std::shared_ptr<const V> value, const Stamps& stamps) {
      sf_.complete(key_, flight_, std::move(value), stamps);
      flight_.reset();
    }
    void fail(std::exception_ptr error) {
      sf_.fail(key_, flight_, std::move(error));
      flight_.reset();
    }
    const K& key() const noexcept { return key_; }
    /// True until complete() or fail() was called.
    bool pending() const noexcept { return flight_ != nullptr; }

   private:
    /// The error of an abandoned flight; when even its message cannot be allocated, the
    /// std::bad_alloc (a destructor must not throw it).
    static std::exception_ptr abandoned() noexcept {
      try {
        return std::make_exception_ptr(std::logic_error("larder: computation abandoned"));
      } catch (...) {
        return std::current_exception();
      }
    }

    SingleFlight& sf_;
    K key_;
    FlightPtr flight_;
  };

 private:
  template <class Set>
  void finish(const K& key, const FlightPtr& flight, Set&& set) {
    {
      Shard& s = shard_of(key);
      std::lock_guard lock{s.mutex};
      auto it = s.flights.find(key);
      if (it != s.flights.end() && it->second == flight) s.flights.erase(it);
    }
    {
      std::lock_guard lock{flight->mutex};
      set(*flight);
      flight->done = true;
    }
    flight->cv.notify_all();
  }

  /// The Flight of a key just inserted at `it`; if it cannot be allocated, the entry goes again
  /// (left with a null flight, the next caller of the key would wait on nothing) and
  /// std::bad_alloc propagates.
  template <class Shard, class It>
  static FlightPtr new_flight(Shard& s, It it) {
    try {
      return std::make_shared<Flight>();
    } catch (...) {
      s.flights.erase(it);
      throw;
    }
  }

  static constexpr std::size_t kShards = 16;  // a power of two
  struct alignas(kCacheLine) Shard {
    mutable std::mutex mutex;
    std::unordered_map<K, FlightPtr, Hash, Eq> flights;
  };
  Shard& shard_of(const K& key) noexcept {
    // Remixed, so the shard does not follow the bits the shard's map picks its bucket with (and a
    // 32-bit size_t works the same).
    return shards_[mix64(Hash{}(key)) & (kShards - 1)];
  }

  std::array<Shard, kShards> shards_;
};

}  // namespace larder::detail
