// support/map_byte_store.hpp: a ByteStore on a std::map, with a fake clock for TTLs, command
// counters and failure injection [spdlog test_sink.h]. The reference the byte tier is tested on.
#pragma once

#include <atomic>
#include <larder/clock.hpp>
#include <larder/error.hpp>
#include <larder/store.hpp>
#include <map>
#include <mutex>
#include <string>

namespace larder::testing {

class MapByteStore final : public ByteStore {
 public:
  explicit MapByteStore(const Clock& clock) : clock_{clock} {}

  std::optional<std::string> get(std::string_view key) override {
    ++gets;
    maybe_fail();
    std::lock_guard lock{mutex_};
    auto it = data_.find(std::string(key));
    if (it == data_.end() || clock_.now() >= it->second.expires) return std::nullopt;
    return it->second.bytes;
  }
  void set(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl) override {
    ++sets;
    maybe_fail();
    std::lock_guard lock{mutex_};
    data_[std::string(key)] =
        Item{std::string(bytes), larder::detail::saturating_add(clock_.now(), ttl)};
  }
  void erase(std::string_view key) override {
    ++erases;
    maybe_fail();
    std::lock_guard lock{mutex_};
    data_.erase(std::string(key));
  }
  bool try_lock(std::string_view key, std::string_view token,
                std::chrono::milliseconds lease) override {
    maybe_fail();
    std::lock_guard lock{mutex_};
    auto it = data_.find(std::string(key));
    if (it != data_.end() && clock_.now() < it->second.expires) return false;
    data_[std::string(key)] =
        Item{std::string(token), larder::detail::saturating_add(clock_.now(), lease)};
    return true;
  }
  bool unlock(std::string_view key, std::string_view token) override {
    maybe_fail();
    std::lock_guard lock{mutex_};
    auto it = data_.find(std::string(key));
    if (it == data_.end() || it->second.bytes != token) return false;
    data_.erase(it);
    return true;
  }

  /// Writes raw bytes under key (to plant garbage or foreign data).
  void poke(const std::string& key, std::string bytes) {
    std::lock_guard lock{mutex_};
    data_[key] = Item{std::move(bytes), clock_.now() + std::chrono::hours{1}};
  }
  std::optional<std::string> peek(const std::string& key) {
    std::lock_guard lock{mutex_};
    auto it = data_.find(key);
    if (it == data_.end()) return std::nullopt;
    return it->second.bytes;
  }

  std::atomic<bool> failing{false};  // every call throws StoreError while set
  std::atomic<int> gets{0};
  std::atomic<int> sets{0};
  std::atomic<int> erases{0};

 private:
  void maybe_fail() const {
    if (failing) throw StoreError("map store: injected failure");
  }
  struct Item {
    std::string bytes;
    TimePoint expires;
  };
  const Clock& clock_;
  std::mutex mutex_;
  std::map<std::string, Item> data_;
};

}  // namespace larder::testing
