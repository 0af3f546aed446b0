// redis_store.hpp: larder::RedisStore, a ByteStore on Redis (hiredis, a pool of connections, a
// circuit breaker), and its options. Link larder::redis. No hiredis header is included here.
// Thread-safe: every member may be called concurrently. Throws StoreError on I/O or protocol
// failure; Cached catches it, counts it and computes the value itself. See docs/redis.md.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "larder/store.hpp"

namespace larder {

/// How serious a message to RedisOptions::logger is.
enum class LogLevel { debug, info, warn, error };

/// The circuit breaker's state. closed: calls go to Redis. open: Redis failed
/// breaker_failures times in a row (or timed out once); calls fail at once (available() is false)
/// until the cool-down ends. half_open: the cool-down ended and one probe call is under way; its
/// success closes the breaker, its failure opens it again.
enum class BreakerState { closed, open, half_open };

constexpr std::string_view to_string(BreakerState s) noexcept {
  switch (s) {
    case BreakerState::closed:
      return "closed";
    case BreakerState::open:
      return "open";
    case BreakerState::half_open:
      return "half_open";
  }
  return "unknown";
}

/// Where and how RedisStore connects. Validated by the RedisStore constructor: a bad field throws
/// std::invalid_argument naming it (never echoing the password).
/// Example: {.host = "10.0.0.5", .port = 6380, .password = "s3cret", .key_prefix = "shop:"}
struct RedisOptions {
  std::string host{"127.0.0.1"};  // TCP host (name or address); ignored when unix_socket is set
  int port{6379};                 // TCP port, 1-65535
  std::string unix_socket{};      // path of a unix socket; empty: TCP
  std::string user{};             // ACL user (Redis 6+); empty: the default user
  std::string password{};         // AUTH password; empty: no AUTH. Never logged nor thrown
  int db{0};                      // SELECT db on each new connection; >= 0
  std::chrono::milliseconds connect_timeout{200};  // max time to open a connection; > 0
  std::chrono::milliseconds command_timeout{100};  // max wait on the socket per send/receive; > 0
  std::size_t pool_size{8};  // most connections open at once, shared by all threads; >= 1
  std::chrono::milliseconds pool_wait_timeout{100};  // max wait for a free connection; 0: none
  std::string key_prefix{};               // prepended to every key (and lock) this store touches
  std::size_t max_value_size{16u << 20};  // larger values are not written (counted); 0: no bound
  int breaker_failures{3};                // consecutive failures that open the breaker; >= 1
  std::chrono::milliseconds breaker_cooldown{1000};  // open time before a probe; > 0
  /// A timeout opens the breaker at once, so that a call (even a Cached miss, which reads, locks
  /// and writes) pays at most one timeout. false: timeouts count like other failures.
  bool breaker_trip_on_timeout{true};
  /// Invalidations (a DEL, or an invalidation message's PUBLISH) that could not be sent (breaker
  /// open, Redis failing) are remembered, up to this many keys and as many messages, and sent as
  /// soon as Redis answers again, before any other read or write of this store. Beyond the bound
  /// one is dropped: reported, and its old value stays in Redis until its TTL. 0: none remembered.
  std::size_t max_pending_invalidations{4096};
  /// Told of connection failures, breaker changes and refused values (never stderr, never the
  /// password). May be empty. Called from the thread that saw the event; must be thread-safe.
  std::function<void(LogLevel, std::string_view)> logger{};
};

/// A snapshot of a RedisStore's counters.
struct RedisStats {
  std::uint64_t commands = 0;        ///< commands sent (a pipeline of n counts n; MGET counts 1)
  std::uint64_t errors = 0;          ///< failed calls (I/O, protocol, error replies, timeouts)
  std::uint64_t timeouts = 0;        ///< of which: a connect or command timeout
  std::uint64_t connections = 0;     ///< connections opened (reconnects included)
  std::uint64_t pool_timeouts = 0;   ///< calls that found no free connection in time (errors)
  std::uint64_t oversize = 0;        ///< values refused by max_value_size
  std::uint64_t breaker_opens = 0;   ///< times the breaker opened
  std::uint64_t short_circuits = 0;  ///< calls refused at once while the breaker was open
  BreakerState breaker = BreakerState::closed;
  // The invalidation bus (invalidation_bus()); its subscriber's connection is not counted above.
  std::uint64_t invalidations_published = 0;  ///< messages sent (a failed PUBLISH counts in errors)
  std::uint64_t invalidations_received = 0;   ///< messages from other instances, applied to L1
  std::uint64_t bus_subscriptions = 0;  ///< times the subscriber (re)subscribed; each flushed L1
  std::uint64_t bus_errors = 0;         ///< subscriber failures (connect, subscribe, lost link)
  bool bus_subscribed = false;          ///< the subscriber is subscribed now
  // Invalidations that could not be sent at once (see RedisOptions::max_pending_invalidations).
  std::uint64_t invalidations_pending = 0;   ///< remembered now: DELs and messages not yet sent
  std::uint64_t invalidations_deferred = 0;  ///< ever remembered (each also counted as a failure)
  std::uint64_t invalidations_retried = 0;   ///< remembered ones sent since (DEL keys, messages)
  std::uint64_t invalidations_dropped = 0;   ///< not remembered: over the bound (or store gone)
  // Locks this store may hold but could not take or release cleanly (a SET NX sent whose reply
  // was lost, a failed unlock), released by the store once Redis answers (see try_lock).
  std::uint64_t lock_releases_pending = 0;   ///< remembered now
  std::uint64_t lock_releases_deferred = 0;  ///< ever remembered
  std::uint64_t lock_releases_retried = 0;   ///< released since (the owner-only script sent)
};

/// A Redis-backed ByteStore. Connects lazily (a Redis that is down at start-up costs nothing until
/// a call), reconnects automatically, and bounds every call by the timeouts above. Values are
/// written with SET PX, read with GET (MGET for get_many); locks are SET NX PX with an owner token
/// and are released by a Lua script only by their owner.
///
/// Example:
///   larder::RedisStore redis{"redis://app:s3cret@127.0.0.1:6379/0"};
///   larder::Cached top{redis, "Author", "top_book_ids", &compute_top_book_ids, {.ttl = 24h}};
///   auto ids = top(author, 10);  // Redis hit: one GET; Redis down: computed, counted, returned
class RedisStore final : public ByteStore {
 public:
  using Options = RedisOptions;

  /// From an options struct. Throws std::invalid_argument if a field is out of range.
  explicit RedisStore(RedisOptions options);
  /// From a URL: `redis://[[user]:password@]host[:port][/db]` or
  /// `unix://[[user]:password@]/path/to.sock[?db=N]`; user and password may be %-encoded. The
  /// other fields come from `base`. Throws std::invalid_argument saying what is wrong.
  explicit RedisStore(std::string_view url, RedisOptions base = {});
  ~RedisStore() override;
  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;

  /// Fills `base` from a URL (see the constructor). Throws std::invalid_argument.
  static RedisOptions parse_url(std::string_view url, RedisOptions base = {});

  std::optional<std::string> get(std::string_view key) override;
  /// One MGET (one round trip) for all keys.
  std::vector<std::optional<std::string>> get_many(std::span<const std::string> keys) override;
  /// SET key bytes PX ttl. A value over max_value_size is not written: counted, logged, and
  /// StoreError thrown (which Cached counts as a store error).
  void set(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl) override;
  /// DEL key. If it cannot be sent (breaker open, Redis failing), the key is remembered (up to
  /// max_pending_invalidations) and StoreError thrown saying so; the DEL is sent as soon as Redis
  /// answers again (a thread of the store retries it), and before any later get, get_many, set or
  /// erase of this store, which fail rather than read past a DEL still pending.
  void erase(std::string_view key) override;
  /// SET NX PX. An attempt retried on a fresh connection (the pooled one was closed) that finds the
  /// key held takes it if it holds `token`: the first SET may have been applied, its reply lost.
  /// An attempt that fails (StoreError) after its SET was sent may have been applied too: the store
  /// remembers the key and token and releases it (as unlock() would) as soon as Redis answers, so
  /// that others do not wait for the lease. Tokens must be unique per attempt (Cached's are
  /// random): a token reused after a failed attempt could have its new lock released.
  bool try_lock(std::string_view key, std::string_view token,
                std::chrono::milliseconds lease) override;
  /// SET NX PX for every key, pipelined: one round trip (a retry reads back the keys found held,
  /// as try_lock does; a failed attempt's keys are released later, as try_lock's).
  std::vector<bool> try_lock_many(std::span<const std::string> keys, std::string_view token,
                                  std::chrono::milliseconds lease) override;
  /// Deletes the lock if it holds `token` (a script). If that fails (breaker open, Redis failing),
  /// throws StoreError, and the store sends the release again as soon as Redis answers.
  bool unlock(std::string_view key, std::string_view token) override;
  /// True when the breaker is closed, or open with its cool-down over (the next call probes).
  bool available() const noexcept override;

  /// The store's invalidation bus: PUBLISH on the channel "{key_prefix}larder:invalidate:{db}",
  /// and, once a listener subscribes (a Cached over a TieredStore on this store), a subscriber
  /// thread with its own connection that reconnects with backoff and, after each (re)subscription,
  /// flushes the listeners' namespaces (messages may have been missed). The thread is stopped and
  /// joined by ~RedisStore, within about 100 ms plus one connect attempt, even if Redis is down.
  /// A Cached directly on a RedisStore (no L1) publishes its invalidate() and refresh() here too.
  /// See docs/redis.md, "Invalidation across instances".
  InvalidationBus* invalidation_bus() noexcept override;

  /// Sends PING; throws StoreError if Redis cannot be reached or refuses the credentials. Use it to
  /// fail fast at start-up if you prefer.
  void ping();
  RedisStats stats() const noexcept;
  const RedisOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace larder
