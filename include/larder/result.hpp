// result.hpp: what a Cached call returns: the value (shared, or held by value when it is small)
// and where it came from.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string_view>
#include <utility>

#include "larder/clock.hpp"
#include "larder/detail/inline_value.hpp"

namespace larder {

/// Where a value came from.
enum class Source {
  memory,    ///< the in-process store
  remote,    ///< a shared store (Redis)
  computed,  ///< computed by this call
  coalesced  ///< computed by another caller's concurrent call, and handed to this one
};

constexpr std::string_view to_string(Source s) noexcept {
  switch (s) {
    case Source::memory:
      return "memory";
    case Source::remote:
      return "remote";
    case Source::computed:
      return "computed";
    case Source::coalesced:
      return "coalesced";
  }
  return "unknown";
}

namespace detail {

/// Where a Result keeps its value: a shared_ptr, or (for small trivially copyable T) the value.
template <class T, bool Inline = inline_value_v<T>>
class ResultBox {
 public:
  explicit ResultBox(std::shared_ptr<const T> p) noexcept : p_{std::move(p)} {}
  const T& get() const noexcept { return *p_; }
  const T* ptr() const noexcept { return p_.get(); }
  const std::shared_ptr<const T>& shared() const noexcept { return p_; }

 private:
  std::shared_ptr<const T> p_;
};

template <class T>
class ResultBox<T, true> {
 public:
  explicit ResultBox(const std::shared_ptr<const T>& p) noexcept : v_{*p} {}
  explicit ResultBox(const T& v) noexcept : v_{v} {}
  ResultBox(const ResultBox& o) noexcept : v_{o.v_} {}
  // Moves take the shared copy along; a moved-from handle is used by one thread only.
  ResultBox(ResultBox&& o) noexcept : v_{o.v_}, lazy_{o.take()} {}
  ResultBox& operator=(const ResultBox& o) noexcept {
    if (this != &o) {
      drop();
      v_ = o.v_;
    }
    return *this;
  }
  ResultBox& operator=(ResultBox&& o) noexcept {
    if (this != &o) {
      drop();
      v_ = o.v_;
      lazy_.store(o.take(), std::memory_order_relaxed);
    }
    return *this;
  }
  ~ResultBox() { drop(); }

  const T& get() const noexcept { return v_; }
  const T* ptr() const noexcept { return &v_; }
  /// A shared copy, made on the first call (thread-safe) and kept for the handle's life.
  const std::shared_ptr<const T>& shared() const {
    auto* p = lazy_.load(std::memory_order_acquire);
    if (p != nullptr) return *p;
    auto* fresh = new std::shared_ptr<const T>(std::make_shared<const T>(v_));
    if (lazy_.compare_exchange_strong(p, fresh, std::memory_order_acq_rel,
                                      std::memory_order_acquire))
      return *fresh;
    delete fresh;
    return *p;
  }

 private:
  std::shared_ptr<const T>* take() noexcept {
    auto* p = lazy_.load(std::memory_order_relaxed);
    if (p != nullptr) lazy_.store(nullptr, std::memory_order_relaxed);
    return p;
  }
  void drop() noexcept {
    if (auto* p = lazy_.load(std::memory_order_relaxed)) {
      delete p;
      lazy_.store(nullptr, std::memory_order_relaxed);
    }
  }
  T v_;
  mutable std::atomic<std::shared_ptr<const T>*> lazy_{nullptr};
};

}  // namespace detail

/// A light handle to a cached value. It converts to `const T&`, so `std::vector<int> v =
/// cached(x);` still compiles (and copies, as asked). Keep the handle (not a reference into it) for
/// as long as you use the value: on a temporary handle, `*` and `value()` return a copy.
///
/// The handle holds one `std::shared_ptr<const T>`, so a hit copies nothing large. A small
/// trivially copyable T (an id, a count: at most 16 bytes, see detail/inline_value.hpp) is held by
/// value instead: copying it is cheaper than a reference count, which two threads reading one hot
/// entry would bounce between their cores. For such a T, `shared()` makes a shared copy on its
/// first call.
/// Example:
///   auto r = top_book_ids(author, 10);
///   for (auto id : *r) ...;
///   log("{} from {}, {} ms old{}", r->size(), to_string(r.source()), r.age() / 1ms,
///       r.stale() ? " (stale)" : "");
template <class T>
class Result {
 public:
  Result(std::shared_ptr<const T> value, Source source, bool stale, TimePoint written,
         TimePoint now) noexcept
      : box_{std::move(value)}, written_{written}, now_{now}, source_{source}, stale_{stale} {}
  /// For a small trivially copyable T: the value itself.
  Result(const T& value, Source source, bool stale, TimePoint written,
         TimePoint now) noexcept requires detail::inline_value_v<T>
      : box_{value}, written_{written}, now_{now}, source_{source}, stale_{stale} {}

  const T& value() const& noexcept { return box_.get(); }
  const T& operator*() const& noexcept { return box_.get(); }
  const T* operator->() const noexcept { return box_.ptr(); }
  operator const T&() const& noexcept { return box_.get(); }  // NOLINT(google-explicit-constructor)
  /// From a temporary handle: a copy, so that no reference outlives the handle. The handle may be
  /// the value's last owner (an entry the store did not keep, or evicted meanwhile), so
  /// `for (auto id : *cached(x))` and `const auto& v = *cached(x);` must not refer into it.
  T value() && { return box_.get(); }
  T operator*() && { return box_.get(); }
  operator T() && { return box_.get(); }  // NOLINT(google-explicit-constructor)

  /// The shared value itself, to keep it beyond the handle without a copy (for a small trivially
  /// copyable T, a shared copy made once per handle).
  const std::shared_ptr<const T>& shared() const noexcept(!detail::inline_value_v<T>) {
    return box_.shared();
  }
  Source source() const noexcept { return source_; }
  /// True when the value was older than fresh_for (a recompute is running or just failed).
  bool stale() const noexcept { return stale_; }
  /// How long ago the value was computed (0 for a value computed by this call).
  std::chrono::nanoseconds age() const noexcept { return now_ - written_; }
  TimePoint written_at() const noexcept { return written_; }

 private:
  detail::ResultBox<T> box_;
  TimePoint written_;
  TimePoint now_;
  Source source_;
  bool stale_;
};

}  // namespace larder
