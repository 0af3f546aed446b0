// detail/single_flight.hpp: at most one computation per key in this process.
//
// Call path. A caller that finds nothing usable calls join(key). The first gets the flight's Leader
// and computes; later callers get the same Flight and wait on it (or refuse to, per OnCold). A
// caller that finds a stale value calls try_lead(key): it gets a Leader for a refresh only if
// nobody is computing that key, and otherwise is served the stale value at once.
//
// Invalidation. A flight carries the tag its creator passed (Cached: its write-fence ticket), so
// that a waiter can tell a computation that began before an invalidation it followed, and compute
// anew after it (one computation per key at a time still holds: the flight has ended by then).
//
// Failure. The leader always completes its flight, with a value or with the exception its
// computation threw. Waiters rethrow that exception; nothing is cached; the flight is removed
// before waiters wake, so the next call starts a new computation. The table creates a flight and
// its Leader together, and a Leader destroyed while pending fails its flight, so a flight always
// ends and no waiter hangs.
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
#include <type_traits>
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
    Flight(K k, std::uint64_t t) noexcept(std::is_nothrow_move_constructible_v<K>)
        : key{std::move(k)}, tag{t} {}

    const K key;  // its entry in the table, which the leader removes
    // What the caller that created it passed to join() or try_lead(): Cached's write-fence
    // ticket, which tells a waiter whether the computation began before an invalidation that the
    // waiter followed.
    const std::uint64_t tag;
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

  /// The leadership of one flight: whoever holds it completes or fails the flight, and only the
  /// table creates one, together with the flight, so no flight is ever without its leader. It
  /// moves (into a background task, a container) without allocating; an empty Leader leads nothing.
  /// If it is destroyed still pending (its holder unwound past complete() and fail()), it fails
  /// the flight, so that no waiter hangs: waiters then get a logic_error, because
  /// std::current_exception() is empty during unwinding.
  class Leader {
   public:
    Leader() noexcept = default;
    Leader(Leader&& other) noexcept
        : sf_{other.sf_}, flight_{std::exchange(other.flight_, nullptr)} {}
    Leader& operator=(Leader&& other) noexcept {
      if (this != &other) {
        abandon();
        sf_ = other.sf_;
        flight_ = std::exchange(other.flight_, nullptr);
      }
      return *this;
    }
    Leader(const Leader&) = delete;
    Leader& operator=(const Leader&) = delete;
    ~Leader() { abandon(); }

    /// Ends the flight with a value or an error; on a Leader that leads nothing (empty, moved
    /// from, or ended already), does nothing.
    void complete(std::shared_ptr<const V> value, const Stamps& stamps) {
      if (!flight_) return;
      sf_->finish(std::exchange(flight_, nullptr), [&](Flight& f) {
        f.value = std::move(value);
        f.stamps = stamps;
      });
    }
    void fail(std::exception_ptr error) {
      if (!flight_) return;
      sf_->finish(std::exchange(flight_, nullptr), [&](Flight& f) { f.error = std::move(error); });
    }
    /// True until complete() or fail() was called (false for an empty Leader).
    bool pending() const noexcept { return flight_ != nullptr; }
    explicit operator bool() const noexcept { return pending(); }

   private:
    friend class SingleFlight;
    Leader(SingleFlight& sf, FlightPtr flight) noexcept : sf_{&sf}, flight_{std::move(flight)} {}

    void abandon() noexcept {
      if (flight_) fail(abandoned());
    }
    /// The error of an abandoned flight; when even its message cannot be allocated, the
    /// std::bad_alloc (a destructor must not throw it).
    static std::exception_ptr abandoned() noexcept {
      try {
        return std::make_exception_ptr(std::logic_error("larder: computation abandoned"));
      } catch (...) {
        return std::current_exception();
      }
    }

    SingleFlight* sf_ = nullptr;
    FlightPtr flight_;
  };

  struct Ticket {
    FlightPtr flight;  // to wait on, when this caller does not lead it
    Leader leader;     // non-empty when this caller leads the flight
  };

  /// Joins the flight for key, creating it (and leading it, tagged `tag`) if there is none.
  Ticket join(K key, std::uint64_t tag = 0) {
    Shard& s = shard_of(key);
    std::lock_guard lock{s.mutex};
    auto [it, inserted] = s.flights.try_emplace(key);
    if (!inserted) return {it->second, Leader{}};
    it->second = new_flight(s, it, std::move(key), tag);
    return {it->second, Leader{*this, it->second}};
  }

  /// Leads a new flight for key, tagged `tag`, or returns an empty Leader if one is under way.
  Leader try_lead(K key, std::uint64_t tag = 0) {
    Shard& s = shard_of(key);
    std::lock_guard lock{s.mutex};
    auto [it, inserted] = s.flights.try_emplace(key);
    if (!inserted) return {};
    it->second = new_flight(s, it, std::move(key), tag);
    return Leader{*this, it->second};
  }

  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const Shard& s : shards_) {
      std::lock_guard lock{s.mutex};
      n += s.flights.size();
    }
    return n;
  }

 private:
  /// Removes the flight from the table, then sets its outcome and wakes its waiters. Allocates
  /// nothing, so a Leader can end its flight when no memory is left.
  template <class Set>
  void finish(FlightPtr flight, Set&& set) {
    {
      Shard& s = shard_of(flight->key);
      std::lock_guard lock{s.mutex};
      auto it = s.flights.find(flight->key);
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
  static FlightPtr new_flight(Shard& s, It it, K&& key, std::uint64_t tag) {
    try {
      return std::make_shared<Flight>(std::move(key), tag);
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
