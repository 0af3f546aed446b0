// store.hpp: the interfaces every store implements. A Cached talks to a store through `Store`:
// an in-process tier that keeps decoded objects (MemoryStore), a shared tier that keeps bytes
// (ByteStore: Redis, memcached, a test double), or both (TieredStore).
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larder/clock.hpp"

namespace larder {

class MemoryStore;
class ByteStore;

/// When an entry was written, until when it is fresh, and when it expires.
struct Stamps {
  TimePoint written{};
  TimePoint fresh_until{};
  TimePoint expires{};

  bool expired(TimePoint now) const noexcept { return now >= expires; }
  bool fresh(TimePoint now) const noexcept { return now < fresh_until; }
};

/// What a Cached needs to know of a store: which tiers it has. A Cached looks in the memory tier
/// first (a hit there costs a hash lookup), then in the byte tier, then computes.
class Store {
 public:
  virtual ~Store() = default;
  /// The in-process tier (decoded objects), or nullptr.
  virtual MemoryStore* memory_tier() noexcept { return nullptr; }
  /// The shared tier (encoded bytes), or nullptr.
  virtual ByteStore* byte_tier() noexcept { return nullptr; }
};

/// A store of bytes under string keys, shared between processes. Every member may be called
/// concurrently and throws StoreError on I/O or protocol failure (never for a miss).
class ByteStore : public Store {
 public:
  ByteStore* byte_tier() noexcept override { return this; }

  /// The bytes under key, or nullopt.
  virtual std::optional<std::string> get(std::string_view key) = 0;
  /// The bytes under each key, in order, in as few round trips as the store allows.
  virtual std::vector<std::optional<std::string>> get_many(std::span<const std::string> keys) {
    std::vector<std::optional<std::string>> out;
    out.reserve(keys.size());
    for (const auto& k : keys) out.push_back(get(k));
    return out;
  }
  /// Stores bytes under key for ttl (> 0), replacing any value.
  virtual void set(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl) = 0;
  /// Removes key; no error if absent.
  virtual void erase(std::string_view key) = 0;
  /// Takes the lock `key` for `lease` if nobody holds it, tagging it with `token`. True if taken.
  virtual bool try_lock(std::string_view key, std::string_view token,
                        std::chrono::milliseconds lease) = 0;
  /// Releases the lock `key` only if it still carries `token` (an expired lease that another
  /// holder took is left alone). True if released.
  virtual bool unlock(std::string_view key, std::string_view token) = 0;
  /// False while the store is known to be failing (an open circuit breaker): Cached then skips it.
  virtual bool available() const noexcept { return true; }
};

}  // namespace larder
