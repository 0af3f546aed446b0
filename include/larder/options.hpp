// options.hpp: the caching policy of one `Cached` function (larder::Options).
// Validated by the Cached constructor: a bad field throws std::invalid_argument naming it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace larder {

class Clock;
class Executor;

/// Who recomputes an entry that is stale (older than fresh_for, younger than ttl). Either way
/// exactly one computation per key runs at a time and every other caller is served the stale value
/// at once.
enum class Refresh {
  caller,      ///< the first caller that finds it stale recomputes and gets the fresh value
  background,  ///< the first caller gets the stale value too; the recompute runs on the executor
};

/// What a caller does when its key is cold (absent) and another caller is already computing it.
enum class OnCold {
  wait,       ///< wait up to cold_wait for that computation's result, then throw ColdCacheError
  fail_fast,  ///< throw ColdCacheError at once
};

/// What went wrong, told to Options::on_error. `key` is the rendered cache key; `what` never holds
/// a password or a value.
struct ErrorEvent {
  enum class Kind { store, decode, background_refresh, stale_served_on_error };
  Kind kind;
  std::string_view key;
  std::string_view what;
};

/// The policy of one cached function. Durations are milliseconds; 24h-style literals convert.
/// Example: {.ttl = 24h, .fresh_for = 1h, .jitter = 0.1}
struct Options {
  /// Hard lifetime: after it the entry is gone and the next call computes. Must be > 0. A lifetime
  /// too long for the clock (milliseconds::max(), centuries) means forever, here and below.
  std::chrono::milliseconds ttl{std::chrono::hours{1}};
  /// Soft lifetime: after it the value is stale and one caller recomputes while others are served
  /// it. 0 means "same as ttl" (never stale, only expired). Must be <= ttl.
  std::chrono::milliseconds fresh_for{0};
  /// Each write shortens ttl and fresh_for by a random fraction in [0, jitter), so that entries
  /// written together do not expire together. 0 disables; must be in [0, 0.5].
  double jitter{0.0};
  /// How long past fresh_for a failing recompute keeps serving the stale value (counted as
  /// stale_on_error) instead of throwing. 0: the caller that recomputed gets the exception.
  std::chrono::milliseconds stale_if_error{0};
  /// Who recomputes a stale entry. A background refresh holds owning copies of the arguments (a
  /// string_view as a std::string, a span as a std::vector); arguments it cannot own (pointers,
  /// containers of views) make the caller recompute. Other types are copied: they must own their
  /// data.
  Refresh refresh{Refresh::caller};
  /// What a caller does when its key is cold and another caller is computing it.
  OnCold on_cold{OnCold::wait};
  /// Longest wait for another caller's (or process's) computation when on_cold == wait. Must be >
  /// 0.
  std::chrono::milliseconds cold_wait{std::chrono::seconds{30}};
  /// Lease of the cross-process lock on a shared store: a crashed holder blocks others at most this
  /// long. Must be > 0; set it above your function's slowest run.
  std::chrono::milliseconds lock_lease{std::chrono::seconds{30}};
  /// How often a process waiting for another process's computation polls the shared store. > 0.
  /// A poll never sleeps past cold_wait: the wait ends on time even if lock_poll is longer.
  std::chrono::milliseconds lock_poll{std::chrono::milliseconds{20}};
  /// Application prefix, the first key segment: letters, digits, '_', '-', '.' only.
  std::string prefix{"larder"};
  /// Schema version, the second key segment ("v1"): bump it when the cached value's meaning
  /// changes.
  std::uint32_t schema_version{1};
  /// Keys longer than this (bytes) replace their params tail by a hash. Must be >= 64, and leave
  /// room for the head ("{prefix}:v{schema}:{Class}:{function}:") and a 33-byte hashed tail: then
  /// no key is longer. The Cached constructor throws std::invalid_argument otherwise.
  std::size_t max_key_length{250};
  /// Time source; nullptr means larder::SystemClock. Must outlive the Cached.
  Clock* clock{nullptr};
  /// Runs background refreshes; nullptr means larder::ThreadPool::shared(). Must outlive the
  /// Cached.
  Executor* executor{nullptr};
  /// Told of every store, decode and background failure (never stderr). May be empty.
  std::function<void(const ErrorEvent&)> on_error{};
};

}  // namespace larder
