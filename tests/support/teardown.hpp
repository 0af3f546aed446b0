// support/teardown.hpp: helpers for tests of what must never hang or leak when copies fail.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

namespace larder::testing {

/// Destroys `p` on another thread; true if that finished within `limit` (else `p` is leaked to
/// the blocked thread, so that the test can fail instead of hang).
template <class T>
bool destroys_within(std::unique_ptr<T> p, std::chrono::milliseconds limit) {
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  std::thread([raw = p.release(), done] {
    delete raw;
    done->set_value();
  }).detach();
  return finished.wait_for(limit) == std::future_status::ready;
}

/// An argument whose copies throw while `refuse_copies` is set (a copy that allocates, under
/// memory pressure).
struct Touchy {
  explicit Touchy(std::int64_t i) : id{i} {}
  Touchy(const Touchy& o) : id{o.id} {
    if (refuse_copies) throw std::runtime_error("no copies");
  }
  Touchy& operator=(const Touchy&) = default;
  std::int64_t id;
  static inline std::atomic<bool> refuse_copies{false};
};

}  // namespace larder::testing
