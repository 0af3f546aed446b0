// store.hpp: the interfaces every store implements. A Cached talks to a store through `Store`:
// an in-process tier that keeps decoded objects (MemoryStore), a shared tier that keeps bytes
// (ByteStore: Redis, memcached, a test double), or both (TieredStore).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larder/clock.hpp"

namespace larder {

class MemoryStore;
class ByteStore;
class InvalidationBus;

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
  /// The bus that carries invalidations between the instances sharing the byte tier, or nullptr.
  /// A Cached publishes its invalidate() and refresh() on it, and, when the store has a memory
  /// tier, drops from that tier what the other instances publish. See InvalidationBus.
  virtual InvalidationBus* invalidation_bus() noexcept { return nullptr; }
};

/// Carries invalidations between the instances (processes) that share a byte tier, so that each
/// drops an invalidated entry from its own memory tier (L1). Messages are at most once: a bus that
/// may have missed messages (its subscription was lost, then restored) calls every listener's
/// `flush`. Thread-safe. RedisStore has one (Redis PUBLISH/SUBSCRIBE; docs/redis.md,
/// "Invalidation across instances").
class InvalidationBus {
 public:
  /// One namespace's receiver (a Cached over a memory tier). The callbacks run on the bus's own
  /// thread, one at a time, never after unsubscribe() returned; they must not call the bus.
  struct Listener {
    /// The namespace: the Cached's key head, "{prefix}:v{schema}:{Class}:{function}:".
    std::string name;
    /// A fingerprint of the key hash function (the hash of a fixed key in this namespace). Two
    /// instances whose fingerprints differ (another larder version, another byte order) cannot
    /// match hashes: a message from such an instance flushes the namespace instead.
    std::uint64_t hash_check = 0;
    /// Drops the entries whose key hash is `hash` (a collision only drops more: harmless).
    std::function<void(std::uint64_t hash)> erase;
    /// Drops every entry of the namespace: messages for it may have been missed.
    std::function<void()> flush;
  };

  virtual ~InvalidationBus() = default;
  /// Registers a listener and returns its id (never 0). May start the bus's receiving side.
  virtual std::uint64_t subscribe(Listener listener) = 0;
  /// Removes a listener. When this returns, none of its callbacks is running or will run.
  virtual void unsubscribe(std::uint64_t id) noexcept = 0;
  /// Tells the other instances to drop the entries of namespace `name` with key hash `hash`.
  /// `origin` is the publisher's own listener id (0 if it has none): that listener is not called
  /// back. Throws StoreError if the message could not be sent.
  virtual void publish(std::string_view name, std::uint64_t hash_check, std::uint64_t hash,
                       std::uint64_t origin) = 0;
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
  /// try_lock for each key with one token, in as few round trips as the store allows; element i
  /// tells whether keys[i] was taken. A failure (StoreError) leaves unknown which were taken (their
  /// leases free them).
  virtual std::vector<bool> try_lock_many(std::span<const std::string> keys, std::string_view token,
                                          std::chrono::milliseconds lease) {
    std::vector<bool> taken;
    taken.reserve(keys.size());
    for (const auto& k : keys) taken.push_back(try_lock(k, token, lease));
    return taken;
  }
  /// Releases the lock `key` only if it still carries `token` (an expired lease that another
  /// holder took is left alone). True if released.
  virtual bool unlock(std::string_view key, std::string_view token) = 0;
  /// False while the store is known to be failing (an open circuit breaker): Cached then skips it,
  /// except for erase(), which it calls anyway so that the store may remember the invalidation.
  virtual bool available() const noexcept { return true; }
};

}  // namespace larder
