// redis/bus.hpp (internal): RedisStore's invalidation bus. PUBLISH goes through the store's pool
// and breaker; the subscriber has a connection and a thread of its own (started by the first
// subscribe(), stopped by the destructor). See docs/redis.md, "Invalidation across instances".
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "larder/redis_store.hpp"
#include "redis/reply.hpp"

namespace larder::redis {

/// One invalidation message, as sent on the channel:
///   LRI1 <instance:16 hex> <origin:16 hex> <hash_check:16 hex> <hash:16 hex> <name>
struct BusMessage {
  std::uint64_t instance = 0;    // the publishing bus (one per RedisStore, random)
  std::uint64_t origin = 0;      // the publisher's own listener id, or 0
  std::uint64_t hash_check = 0;  // the publisher's hash fingerprint for the namespace
  std::uint64_t hash = 0;        // the key hash in the memory tier
  std::string_view name;         // the namespace (Cached key head)

  std::string encode() const;
  /// nullopt if `text` is not a message of this format.
  static std::optional<BusMessage> decode(std::string_view text) noexcept;
};

/// What the bus needs from its store.
struct BusHooks {
  /// A new connection (AUTH and SELECT done, larder replies, command_timeout set); throws Failure.
  std::function<ContextPtr()> connect;
  /// Sends PUBLISH channel message through the store's pool and breaker; throws StoreError.
  std::function<void(std::string_view channel, std::string_view message)> publish;
  /// The store's logger (never throws).
  std::function<void(LogLevel, std::string_view)> log;
};

class Bus final : public InvalidationBus {
 public:
  /// `options` must outlive the bus (the store's own).
  Bus(const RedisOptions& options, std::string endpoint, BusHooks hooks);
  ~Bus() override;
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;

  std::uint64_t subscribe(Listener listener) override;
  void unsubscribe(std::uint64_t id) noexcept override;
  void publish(std::string_view name, std::uint64_t hash_check, std::uint64_t hash,
               std::uint64_t origin) override;

  /// Fills the bus fields of s.
  void stats(RedisStats& s) const noexcept;
  const std::string& channel() const noexcept { return channel_; }

 private:
  void run() noexcept;
  /// Reads messages until the connection fails (returns why) or the bus stops (returns "").
  std::string listen(redisContext* c);
  void deliver(std::string_view payload);
  void flush_all();
  /// Sleeps up to d; false if the bus is stopping.
  bool pause(std::chrono::milliseconds d);

  const RedisOptions& opts_;
  const std::string endpoint_;
  const std::string channel_;
  const BusHooks hooks_;
  const std::uint64_t instance_;

  std::mutex listeners_mutex_;  // also held while a listener's callback runs
  std::vector<std::pair<std::uint64_t, Listener>> listeners_;
  std::uint64_t next_id_ = 1;

  std::mutex thread_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // under thread_mutex_
  std::atomic<bool> stop_{false};
  std::thread thread_;

  std::atomic<std::uint64_t> published_{0}, received_{0}, subscriptions_{0}, errors_{0};
  std::atomic<bool> subscribed_{false};
};

}  // namespace larder::redis
