// warmer.hpp: larder::Warmer, a background warmer: a bounded, de-duplicating queue of IDs worked
// off by a few tasks on an Executor (yours, or a pool the warmer owns), with progress and errors.
// Thread-safe: every member may be called concurrently. See docs/json.md, "The warmer".
//
// Call path: enqueue(id) puts the ID in the queue unless it is already queued (then the two
// requests merge), and starts a pump task on the executor if fewer than `workers` run. A pump pops
// IDs and calls the target's warm(id, kind) until the queue is empty, then ends: an idle warmer
// holds no task and no thread of the executor.
//
// Failure: an exception from warm() is counted (WarmerProgress::failed), told to on_error, and the
// pump goes on with the next ID. An executor that refuses the pump (throws from submit) makes the
// enqueuing thread run it itself, as the Executor contract says.
//
// Stopping: stop(drain) works off the queue, stop(cancel) drops it (an ID queued for a refresh
// after a write is handed to the target's cancelled(), which invalidates it, so no pre-write value
// outlives the warmer: it does so once the running warmings have ended, since one of the same ID
// may store a text read before the write); either way an ID being warmed finishes (its entry is
// written whole or not at all) and stop() returns only when no pump task is left. The destructor
// is stop(cancel). stop() and wait_idle() throw std::logic_error when called from inside one of the
// warmer's own warmings (they would wait for themselves), and so does a blocking enqueue there that
// finds the queue full with no other pump free to make room.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "larder/clock.hpp"
#include "larder/detail/held_args.hpp"
#include "larder/detail/key_codec.hpp"
#include "larder/executor.hpp"

namespace larder {

namespace detail {
/// The warmers whose pump runs on this thread, innermost first (a pump runs inside another's
/// warming when an executor refuses it and the enqueuing thread runs it): what lets stop() and
/// wait_idle() refuse to wait for the warming that calls them.
struct PumpFrame {
  const void* warmer;
  const PumpFrame* outer;
};
inline thread_local const PumpFrame* pump_frames = nullptr;
}  // namespace detail

/// What warming an ID means.
enum class WarmKind {
  fill,     ///< compute it only if the cache lacks it (a cold start: warm_all)
  refresh,  ///< recompute it, skipping the cache (after a write: the cached value is outdated)
};

/// What enqueue() does when the queue holds `capacity` IDs.
enum class OnFull {
  block,   ///< wait until a pump takes an ID (backpressure on the writer); false if stopped
           ///< meanwhile
  reject,  ///< return false at once (counted as rejected); the caller decides what to do
};

/// How stop() treats the IDs still queued.
enum class StopMode {
  drain,   ///< warm every queued ID, then stop
  cancel,  ///< drop them (counted as cancelled; refreshes are handed to the target's cancelled())
};

/// A warming that failed, told to WarmerOptions::on_error.
struct WarmError {
  std::string id;  ///< the ID, rendered as in a cache key
  std::string what;
};

/// The knobs of a Warmer. Validated by its constructor (std::invalid_argument naming the field).
struct WarmerOptions {
  std::size_t capacity{1024};     // most IDs queued and not yet started; >= 1
  OnFull on_full{OnFull::block};  // what enqueue does when the queue is full
  std::size_t workers{2};         // most IDs warmed at once (pump tasks on the executor); >= 1,
                                  // and <= ThreadPool::max_threads without an executor
  /// Where the pumps run; nullptr: the warmer owns a ThreadPool of `workers` threads. Must outlive
  /// the Warmer and must run every task it accepts (stop() waits for them).
  Executor* executor{nullptr};
  /// Told of every failed warming, from the pump's thread. May be empty; must not throw.
  std::function<void(const WarmError&)> on_error{};
};

/// A consistent snapshot of a Warmer's progress (read under its lock).
struct WarmerProgress {
  std::uint64_t total = 0;         ///< IDs accepted into the queue (after de-duplication)
  std::uint64_t done = 0;          ///< warmed
  std::uint64_t failed = 0;        ///< warm() threw (told to on_error)
  std::uint64_t cancelled = 0;     ///< dropped from the queue by stop(cancel)
  std::uint64_t deduplicated = 0;  ///< enqueues merged into the same ID already queued
  std::uint64_t rejected = 0;  ///< enqueues refused (queue full with OnFull::reject, or stopped)
  std::size_t queued = 0;      ///< gauge: IDs waiting
  std::size_t running = 0;     ///< gauge: IDs being warmed now
  std::string last_error;      ///< the latest failure's message, "" if none

  /// IDs accepted and not finished yet.
  std::uint64_t remaining() const noexcept { return total - done - failed - cancelled; }
};

/// What a Warmer warms: `t.warm(id, kind)` (may throw) and `t.all_ids()` (a range of IDs, for
/// warm_all). Optional: `t.cancelled(id, kind)` for IDs dropped by stop(cancel), and
/// `t.attach_warmer(Warmer*)` / `t.detach_warmer(Warmer*)`, called by the warmer's constructor and
/// destructor (JsonCache uses them to re-warm after writes). larder::JsonCache is one.
template <class T, class Id>
concept WarmTarget = requires(T& t, const Id& id) {
  t.warm(id, WarmKind::fill);
  { t.all_ids() } -> std::ranges::input_range;
};

/// Warms IDs in the background: a bounded queue, de-duplicated, worked off by up to
/// `workers` tasks on an executor.
///
/// Example:
///   larder::JsonCache<Foo> foos{store, "Foo", repo};
///   larder::Warmer warmer{foos, {.capacity = 4096, .workers = 2}};
///   warmer.warm_all();                 // cold start: every Foo's JSON, in the background
///   ...
///   db.touch(42); foos.written(42);    // the write path: 42 is re-warmed (OnWrite::rewarm)
///   auto p = warmer.progress();        // p.done of p.total, p.failed, p.last_error
namespace detail {
/// Whether a Warmer<Id> can exist: its queue keeps IDs after enqueue() returns, so they must own
/// their data. JsonCache::written() asks it too (for an Id without a Warmer, it invalidates).
template <class Id>
inline constexpr bool warmable_id = hold_of<Id>() == Hold::copy;
}  // namespace detail

template <class Id>
class Warmer {
  static_assert(detail::warmable_id<Id>,
                "larder::Warmer: the queue keeps IDs after enqueue() returns, so the id type must "
                "own its data (std::string, not std::string_view or const char*)");

 public:
  using id_type = Id;
  using WarmFn = std::function<void(const Id&, WarmKind)>;
  using ListFn = std::function<std::vector<Id>()>;
  using CancelFn = std::function<void(const Id&, WarmKind)>;

  /// Warms with `warm`; warm_all() asks `all_ids` (may be empty: warm_all then throws
  /// std::logic_error); `cancelled` is told of IDs dropped by stop(cancel) (may be empty).
  explicit Warmer(WarmFn warm, ListFn all_ids = {}, WarmerOptions options = {},
                  CancelFn cancelled = {})
      : warm_{std::move(warm)},
        all_ids_{std::move(all_ids)},
        cancelled_fn_{std::move(cancelled)},
        opts_{std::move(options)} {
    if (!warm_) throw std::invalid_argument("larder::Warmer: the warm function is empty");
    start();
  }

  /// Warms `target` (a JsonCache, say), which must outlive the Warmer. If the target can attach a
  /// warmer, it is attached until the Warmer is destroyed; if the target refuses (a JsonCache that
  /// already has a Warmer throws std::logic_error), so does this constructor.
  template <class T>
  requires WarmTarget<T, Id>
  explicit Warmer(T& target, WarmerOptions options = {})
      : warm_{[&target](const Id& id, WarmKind kind) { target.warm(id, kind); }},
        all_ids_{[&target] {
          std::vector<Id> ids;
          for (auto&& id : target.all_ids()) ids.push_back(static_cast<Id>(id));
          return ids;
        }},
        opts_{std::move(options)} {
    if constexpr (requires(const Id& id) { target.cancelled(id, WarmKind::fill); })
      cancelled_fn_ = [&target](const Id& id, WarmKind kind) { target.cancelled(id, kind); };
    start();
    if constexpr (requires { target.attach_warmer(this); }) {
      target.attach_warmer(this);
      detach_ = [this, &target] { target.detach_warmer(this); };
    }
  }

  Warmer(const Warmer&) = delete;
  Warmer& operator=(const Warmer&) = delete;

  /// Detaches from the target, then stop(StopMode::cancel); no task or owned thread is left after.
  ~Warmer() {
    if (detach_) detach_();
    stop(StopMode::cancel);
    pool_.reset();  // joins the owned threads (idle: every pump has ended)
  }

  /// Queues `id` for warming. If it is already queued (not yet started), the requests merge (a
  /// refresh wins over a fill) and nothing is added; an ID being warmed right now is queued again,
  /// so a warming that starts after this call always follows. When the queue is full: waits for
  /// room (OnFull::block) or returns false (OnFull::reject). Returns false after stop().
  /// Called from inside one of this warmer's own warmings with OnFull::block and the queue full,
  /// it waits only while another of its pumps is free to make room, and otherwise throws
  /// std::logic_error (with workers = 1 it always does): it would wait for itself. With an
  /// Executor of your own, a pump the executor has queued but not started counts as free.
  bool enqueue(const Id& id, WarmKind kind = WarmKind::refresh) {
    std::unique_lock lock{mutex_};
    for (;;) {
      if (stopping_) {
        ++rejected_;
        return false;
      }
      if (auto it = queued_.find(id); it != queued_.end()) {
        if (kind == WarmKind::refresh) it->second = WarmKind::refresh;
        ++deduplicated_;
        return true;
      }
      if (queue_.size() < opts_.capacity) break;
      if (opts_.on_full == OnFull::reject) {
        ++rejected_;
        return false;
      }
      if (const std::size_t own = own_pumps_here(); own != 0) {
        // Only another pump can make room: not this thread's (this one, and those it runs inside
        // when an executor refused a pump), nor those waiting here too. If none is left (with
        // workers = 1, never), waiting would never end.
        if (pumps_ <= blocked_inside_ + own)
          throw std::logic_error(
              "larder::Warmer::enqueue: called from inside one of its own warmings with the queue "
              "full and no other worker free to make room, it would wait for itself (use "
              "OnFull::reject, more workers or a larger capacity)");
        blocked_inside_ += own;
        room_cv_.wait(lock);
        blocked_inside_ -= own;
        continue;
      }
      room_cv_.wait(lock);
    }
    queue_.push_back(id);
    queued_.emplace(id, kind);
    ++total_;
    const bool launch = pumps_ < opts_.workers;
    if (launch) ++pumps_;
    lock.unlock();
    if (launch) launch_pump();
    return true;
  }

  /// Queues every ID in `ids`; returns how many were accepted (queued or merged).
  template <std::ranges::input_range R>
  std::size_t enqueue_many(R&& ids, WarmKind kind = WarmKind::refresh) {
    std::size_t n = 0;
    for (auto&& id : ids) n += enqueue(static_cast<Id>(id), kind) ? 1 : 0;
    return n;
  }

  /// A cold start: queues every ID the target lists, as WarmKind::fill (IDs already cached are not
  /// recomputed). Blocks while the queue is full (OnFull::block); call it from a thread of its own
  /// not to wait. Returns how many were accepted. Throws what listing the IDs throws.
  std::size_t warm_all() {
    if (!all_ids_) throw std::logic_error("larder::Warmer: warm_all needs a function listing IDs");
    return enqueue_many(all_ids_(), WarmKind::fill);
  }

  /// Waits until nothing is queued or running. Throws std::logic_error if called from inside one of
  /// this warmer's own warmings (its warm function or on_error): it would wait for itself.
  void wait_idle() {
    refuse_inside_warming("wait_idle");
    std::unique_lock lock{mutex_};
    idle_cv_.wait(lock, [this] { return idle_locked(); });
  }
  /// As wait_idle(), for at most `timeout`; true if idle. A timeout of zero or less answers at
  /// once; one too long for the steady clock (nanoseconds::max(), hours::max()) waits as
  /// wait_idle() does. Throws std::logic_error from inside one of this warmer's own warmings (it
  /// cannot be idle while its caller runs).
  template <class Rep, class Period>
  bool wait_idle_for(std::chrono::duration<Rep, Period> timeout) {
    refuse_inside_warming("wait_idle_for");
    const auto idle = [this] { return idle_locked(); };
    std::unique_lock lock{mutex_};
    if (!(timeout > timeout.zero())) return idle();  // (also a NaN)
    // Not cv.wait_for: it adds the timeout to now unchecked (signed overflow for a huge one).
    using SteadyNs = std::chrono::time_point<std::chrono::steady_clock, std::chrono::nanoseconds>;
    const SteadyNs deadline = detail::saturating_add(
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now()),
        timeout);
    if (deadline == SteadyNs::max()) {
      idle_cv_.wait(lock, idle);
      return true;
    }
    return idle_cv_.wait_until(lock, deadline, idle);
  }

  /// Stops taking IDs (enqueue returns false), then drains or cancels the queue, and returns when
  /// no pump task is left (an ID being warmed finishes first). The IDs cancelled are handed to the
  /// `cancelled` function after that, so that its invalidation follows whatever a running warming
  /// of the same ID stored. Idempotent; a second stop(cancel) after stop(drain) cancels what is
  /// left. If memory runs out collecting the IDs to cancel, they are drained instead (stop()
  /// throws nothing, so neither does the destructor). Called from inside one of this warmer's own
  /// warmings (its warm function or on_error, on the pump's thread), it would wait for itself
  /// forever: it throws std::logic_error instead and changes nothing (the destructor, which must
  /// not throw, terminates there: never destroy a Warmer from inside its own warming).
  void stop(StopMode mode = StopMode::drain) {
    refuse_inside_warming("stop");
    std::vector<std::pair<Id, WarmKind>> dropped;
    {
      std::unique_lock lock{mutex_};
      stopping_ = true;
      if (mode == StopMode::cancel) {
        try {
          dropped.reserve(queue_.size());
          for (auto& id : queue_) dropped.emplace_back(std::move_if_noexcept(id), queued_.at(id));
        } catch (...) {
          // Out of memory: the IDs cannot be held to be handed back, and the destructor must not
          // throw. Warm them instead (as drain does): no refresh asked for is lost either way.
          dropped.clear();
          mode = StopMode::drain;
        }
      }
      if (mode == StopMode::cancel) {
        cancelled_ += queue_.size();
        queue_.clear();
        queued_.clear();
      }
      room_cv_.notify_all();
      idle_cv_.notify_all();
      idle_cv_.wait(lock, [this] { return pumps_ == 0; });
    }
    // Only now that no warming runs: one of the same ID (queued again because a write came while
    // it ran) may have read the row before that write, and stores its text when it ends, which
    // would undo an invalidation made before.
    if (cancelled_fn_) {
      for (const auto& [id, kind] : dropped) {
        try {
          cancelled_fn_(id, kind);
        } catch (...) {
          // Best effort: the entry then keeps its older value until its TTL.
        }
      }
    }
  }

  WarmerProgress progress() const {
    std::lock_guard lock{mutex_};
    WarmerProgress p;
    p.total = total_;
    p.done = done_;
    p.failed = failed_;
    p.cancelled = cancelled_;
    p.deduplicated = deduplicated_;
    p.rejected = rejected_;
    p.queued = queue_.size();
    p.running = running_;
    p.last_error = last_error_;
    return p;
  }

  const WarmerOptions& options() const noexcept { return opts_; }

 private:
  /// Throws std::logic_error if this thread is running one of this warmer's pumps (`what` waits
  /// for them to end, so it would wait for itself).
  void refuse_inside_warming(const char* what) const {
    if (own_pumps_here() != 0)
      throw std::logic_error(std::string{"larder::Warmer::"} + what +
                             ": called from inside one of its own warmings (the warm function "
                             "or on_error), it would wait for itself");
  }
  /// How many of this warmer's pumps this thread is running (one inside another when an executor
  /// refused a pump and the enqueuing warming ran it).
  std::size_t own_pumps_here() const noexcept {
    std::size_t n = 0;
    for (const detail::PumpFrame* f = detail::pump_frames; f != nullptr; f = f->outer)
      n += f->warmer == this ? 1 : 0;
    return n;
  }

  /// Nothing queued or running; mutex_ held.
  bool idle_locked() const { return queue_.empty() && running_ == 0; }
  void start() {
    if (opts_.capacity == 0)
      throw std::invalid_argument("larder::WarmerOptions: capacity must be at least 1");
    if (opts_.workers == 0)
      throw std::invalid_argument("larder::WarmerOptions: workers must be at least 1");
    if (!opts_.executor && opts_.workers > ThreadPool::max_threads)
      throw std::invalid_argument("larder::WarmerOptions: workers must be at most " +
                                  std::to_string(ThreadPool::max_threads) +
                                  " when the warmer owns its threads (no executor)");
    if (opts_.executor) {
      executor_ = opts_.executor;
    } else {
      pool_ = std::make_unique<ThreadPool>(opts_.workers);
      executor_ = pool_.get();
    }
  }

  void launch_pump() {
    try {
      executor_->submit([this] { pump(); });
    } catch (...) {
      pump();  // the executor refused: run it here (the Executor contract)
    }
  }

  /// Takes IDs off the queue and warms them until it is empty. The last thing it does is to leave
  /// pumps_ (under the lock): after that it never touches the Warmer again, so stop() may return.
  void pump() {
    // Marks this thread as in this warmer's pump until it returns (restored last: it touches only
    // the thread's own variable, so it is safe after the Warmer may be gone).
    const detail::PumpFrame frame{this, detail::pump_frames};
    struct Restore {
      const detail::PumpFrame* outer;
      ~Restore() { detail::pump_frames = outer; }
    } restore{frame.outer};
    detail::pump_frames = &frame;
    std::unique_lock lock{mutex_};
    for (;;) {
      if (queue_.empty()) {
        --pumps_;
        idle_cv_.notify_all();
        return;
      }
      Id id = std::move(queue_.front());
      queue_.pop_front();
      auto it = queued_.find(id);
      const WarmKind kind = it->second;
      queued_.erase(it);
      ++running_;
      room_cv_.notify_one();
      lock.unlock();

      std::string error;
      bool ok = false;
      try {
        warm_(id, kind);
        ok = true;
      } catch (const std::exception& e) {
        error = describe(e.what());
      } catch (...) {
        error = describe("unknown exception");
      }
      if (!ok && opts_.on_error) {
        try {
          std::string rendered;
          detail::render_part(rendered, id);
          opts_.on_error(WarmError{std::move(rendered), error});
        } catch (...) {
          // A throwing logger must not stop the warmer.
        }
      }

      lock.lock();
      --running_;
      if (ok) {
        ++done_;
      } else {
        ++failed_;
        last_error_ = std::move(error);
      }
      if (idle_locked()) idle_cv_.notify_all();
    }
  }

  /// A failure's message for last_error; "" if even copying it fails (out of memory): the pump
  /// must still count the failure and go on, or stop() and wait_idle() would wait for it forever.
  static std::string describe(const char* what) noexcept {
    try {
      return std::string{what};
    } catch (...) {
      return {};
    }
  }

  WarmFn warm_;
  ListFn all_ids_;
  CancelFn cancelled_fn_;
  std::function<void()> detach_;
  WarmerOptions opts_;
  std::unique_ptr<ThreadPool> pool_;
  Executor* executor_ = nullptr;

  mutable std::mutex mutex_;
  std::condition_variable room_cv_;  // a slot freed in the queue, or stopping
  std::condition_variable idle_cv_;  // the queue ran dry with nothing running, or a pump ended
  std::deque<Id> queue_;
  std::unordered_map<Id, WarmKind> queued_;  // the IDs in queue_, with what they are queued for
  std::size_t pumps_ = 0;                    // pump tasks submitted and not ended
  std::size_t running_ = 0;
  std::size_t blocked_inside_ = 0;  // pumps whose thread waits in enqueue for room
  bool stopping_ = false;
  std::uint64_t total_ = 0, done_ = 0, failed_ = 0, cancelled_ = 0, deduplicated_ = 0,
                rejected_ = 0;
  std::string last_error_;
};

template <class T>
Warmer(T&, WarmerOptions = {}) -> Warmer<typename T::id_type>;

}  // namespace larder
