// result.hpp: what a Cached call returns: the value (shared, never copied) and where it came from.
#pragma once

#include <chrono>
#include <memory>
#include <string_view>
#include <utility>

#include "larder/clock.hpp"

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

/// A light handle to a cached value: one shared_ptr, so a hit copies nothing large. It converts to
/// `const T&`, so `std::vector<int> v = cached(x);` still compiles (and copies, as asked).
/// Keep the handle (not a reference into it) for as long as you use the value.
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
      : value_{std::move(value)}, written_{written}, now_{now}, source_{source}, stale_{stale} {}

  const T& value() const& noexcept { return *value_; }
  const T& operator*() const& noexcept { return *value_; }
  const T* operator->() const noexcept { return value_.get(); }
  operator const T&() const& noexcept { return *value_; }  // NOLINT(google-explicit-constructor)
  /// From a temporary handle: a copy, so that no reference outlives the handle.
  T value() && { return *value_; }
  operator T() && { return *value_; }  // NOLINT(google-explicit-constructor)

  /// The shared value itself, to keep it beyond the handle without a copy.
  const std::shared_ptr<const T>& shared() const noexcept { return value_; }
  Source source() const noexcept { return source_; }
  /// True when the value was older than fresh_for (a recompute is running or just failed).
  bool stale() const noexcept { return stale_; }
  /// How long ago the value was computed (0 for a value computed by this call).
  std::chrono::nanoseconds age() const noexcept { return now_ - written_; }
  TimePoint written_at() const noexcept { return written_; }

 private:
  std::shared_ptr<const T> value_;
  TimePoint written_;
  TimePoint now_;
  Source source_;
  bool stale_;
};

}  // namespace larder
