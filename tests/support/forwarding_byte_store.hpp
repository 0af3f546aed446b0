// support/forwarding_byte_store.hpp: a ByteStore that passes each call to another one (usually a
// MapByteStore). Test doubles derive from it and override only the calls they change; get_many and
// try_lock_many keep ByteStore's defaults, which go through get and try_lock (so an override of
// those sees the bulk calls too) unless a double overrides them as well.
#pragma once

#include <chrono>
#include <larder/store.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace larder::testing {

class ForwardingByteStore : public ByteStore {
 public:
  explicit ForwardingByteStore(ByteStore& inner) : inner_{inner} {}
  std::optional<std::string> get(std::string_view key) override { return inner_.get(key); }
  void set(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl) override {
    inner_.set(key, bytes, ttl);
  }
  void erase(std::string_view key) override { inner_.erase(key); }
  bool try_lock(std::string_view key, std::string_view token,
                std::chrono::milliseconds lease) override {
    return inner_.try_lock(key, token, lease);
  }
  bool unlock(std::string_view key, std::string_view token) override {
    return inner_.unlock(key, token);
  }

 protected:
  ByteStore& inner() noexcept { return inner_; }

 private:
  ByteStore& inner_;
};

}  // namespace larder::testing
