// Warmer: a bounded queue (blocking or rejecting when full), de-duplicated IDs, progress and
// errors, a user-supplied executor, and clean stops (drain, cancel, destructor) with no task left
// running. Contention is built with a gate, never with sleeps that a slow machine could outrun.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <larder/executor.hpp>
#include <larder/warmer.hpp>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/gate.hpp"
#include "support/manual_executor.hpp"
#include "support/teardown.hpp"

using namespace std::chrono_literals;
using larder::StopMode;
using larder::WarmKind;

namespace {

/// A warm function double: records what it warmed, blocks while its gate is closed, throws for
/// the IDs in `poison`.
struct Recorder {
  larder::testing::Gate gate;
  std::mutex mutex;  // guards the vectors
  std::vector<std::pair<std::int64_t, WarmKind>> warmed;
  std::vector<std::pair<std::int64_t, WarmKind>> cancelled;
  std::set<std::int64_t> poison;

  void warm(std::int64_t id, WarmKind kind) {
    gate.pass();
    std::lock_guard lock{mutex};
    if (poison.count(id)) throw std::runtime_error("boom " + std::to_string(id));
    warmed.emplace_back(id, kind);
  }
  void close() { gate.close(); }
  void release() { gate.open(); }
  /// Waits until n calls are held at the gate.
  void wait_inside(int n) { gate.wait_inside(n); }
  std::size_t count(std::int64_t id) {
    std::lock_guard lock{mutex};
    return static_cast<std::size_t>(
        std::count_if(warmed.begin(), warmed.end(), [&](auto& w) { return w.first == id; }));
  }
  std::size_t size() {
    std::lock_guard lock{mutex};
    return warmed.size();
  }
};

larder::Warmer<std::int64_t> make_warmer(Recorder& r, larder::WarmerOptions o,
                                         std::vector<std::int64_t> all = {}) {
  return larder::Warmer<std::int64_t>{[&r](const std::int64_t& id, WarmKind k) { r.warm(id, k); },
                                      [all] { return all; }, std::move(o),
                                      [&r](const std::int64_t& id, WarmKind k) {
                                        std::lock_guard lock{r.mutex};
                                        r.cancelled.emplace_back(id, k);
                                      }};
}

/// An executor that counts its tasks and runs them on threads of its own (joined on destruction).
class CountingExecutor final : public larder::Executor {
 public:
  void submit(std::function<void()> task) override {
    ++submitted;
    std::lock_guard lock{mutex_};
    threads_.emplace_back([this, task = std::move(task)] {
      task();
      ++finished;
    });
  }
  ~CountingExecutor() override {
    for (auto& t : threads_) t.join();
  }
  std::atomic<int> submitted{0};
  std::atomic<int> finished{0};

 private:
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

/// An executor that refuses every task.
class RefusingExecutor final : public larder::Executor {
 public:
  void submit(std::function<void()>) override { throw std::runtime_error("full"); }
};

}  // namespace

TEST_CASE("Warmer: warms every ID once and reports progress", "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.workers = 3});
  for (std::int64_t id = 1; id <= 50; ++id) CHECK(w.enqueue(id));
  w.wait_idle();
  const auto p = w.progress();
  CHECK(p.total == 50);
  CHECK(p.done == 50);
  CHECK(p.failed == 0);
  CHECK(p.queued == 0);
  CHECK(p.running == 0);
  CHECK(p.remaining() == 0);
  for (std::int64_t id = 1; id <= 50; ++id) CHECK(r.count(id) == 1);
}

TEST_CASE("Warmer: an ID queued twice is warmed once; a refresh wins over a fill", "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.workers = 1});
  r.close();
  CHECK(w.enqueue(100, WarmKind::fill));  // taken by the pump, held at the gate
  r.wait_inside(1);
  for (int i = 0; i < 10; ++i) CHECK(w.enqueue(7, WarmKind::fill));
  CHECK(w.enqueue(7, WarmKind::refresh));
  CHECK(w.enqueue(100, WarmKind::fill));  // running now, so queued again (a write may follow it)
  CHECK(w.progress().deduplicated == 10);
  CHECK(w.progress().queued == 2);
  r.release();
  w.wait_idle();
  CHECK(r.count(7) == 1);
  CHECK(r.count(100) == 2);
  {
    std::lock_guard lock{r.mutex};
    auto it = std::find_if(r.warmed.begin(), r.warmed.end(), [](auto& x) { return x.first == 7; });
    CHECK(it->second == WarmKind::refresh);
  }
  CHECK(w.progress().total == 3);
}

TEST_CASE("Warmer: a full queue rejects with OnFull::reject", "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.capacity = 3, .on_full = larder::OnFull::reject, .workers = 1});
  r.close();
  CHECK(w.enqueue(1));
  r.wait_inside(1);  // 1 is running: the queue is empty again
  CHECK(w.enqueue(2));
  CHECK(w.enqueue(3));
  CHECK(w.enqueue(4));
  CHECK_FALSE(w.enqueue(5));  // full
  CHECK(w.enqueue(3));        // already queued: merged, not refused
  CHECK(w.progress().rejected == 1);
  r.release();
  w.wait_idle();
  CHECK(r.size() == 4);
  CHECK(r.count(5) == 0);
}

TEST_CASE("Warmer: a full queue blocks the enqueuer until a pump takes an ID", "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.capacity = 2, .workers = 1});
  r.close();
  CHECK(w.enqueue(1));
  r.wait_inside(1);
  CHECK(w.enqueue(2));
  CHECK(w.enqueue(3));
  std::atomic<bool> returned{false};
  std::thread writer{[&] {
    CHECK(w.enqueue(4));
    returned = true;
  }};
  std::this_thread::sleep_for(50ms);  // not a timing assertion: it may only fail to catch a bug
  CHECK_FALSE(returned);
  r.release();
  writer.join();
  CHECK(returned);
  w.wait_idle();
  CHECK(r.count(4) == 1);
  CHECK(w.progress().done == 4);
}

TEST_CASE("Warmer: a failing ID is counted and reported, the others are warmed", "[warmer]") {
  Recorder r;
  r.poison = {3, 5};
  std::mutex m;
  std::vector<larder::WarmError> errors;
  auto w = make_warmer(r, {.workers = 2, .on_error = [&](const larder::WarmError& e) {
                             std::lock_guard lock{m};
                             errors.push_back(e);
                           }});
  for (std::int64_t id = 1; id <= 6; ++id) w.enqueue(id);
  w.wait_idle();
  const auto p = w.progress();
  CHECK(p.done == 4);
  CHECK(p.failed == 2);
  CHECK(p.last_error.starts_with("boom "));
  std::lock_guard lock{m};
  REQUIRE(errors.size() == 2);
  std::set<std::string> ids{errors[0].id, errors[1].id};
  CHECK(ids == std::set<std::string>{"3", "5"});
  CHECK(errors[0].what.starts_with("boom "));
}

TEST_CASE("Warmer: stop(drain) warms everything queued, then refuses new IDs", "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.capacity = 100, .workers = 2});
  r.close();
  for (std::int64_t id = 1; id <= 20; ++id) w.enqueue(id);
  r.wait_inside(2);
  std::thread stopper{[&] { w.stop(StopMode::drain); }};
  r.release();
  stopper.join();
  CHECK(r.size() == 20);
  CHECK(w.progress().done == 20);
  CHECK_FALSE(w.enqueue(21));
  CHECK(w.progress().rejected == 1);
}

TEST_CASE("Warmer: stop(cancel) drops the queue, hands refreshes back, finishes the running",
          "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.capacity = 100, .workers = 1});
  r.close();
  w.enqueue(1, WarmKind::refresh);
  r.wait_inside(1);
  w.enqueue(2, WarmKind::refresh);
  w.enqueue(3, WarmKind::fill);
  std::thread stopper{[&] { w.stop(StopMode::cancel); }};
  // stop() must wait for the running ID 1: release it only once the queue is gone.
  for (;;) {
    if (w.progress().queued == 0) break;
    std::this_thread::yield();
  }
  r.release();
  stopper.join();
  const auto p = w.progress();
  CHECK(p.done == 1);
  CHECK(p.cancelled == 2);
  CHECK(r.count(1) == 1);  // the running one finished whole
  CHECK(r.count(2) == 0);
  std::lock_guard lock{r.mutex};
  CHECK(r.cancelled.size() == 2);
  CHECK(std::count(r.cancelled.begin(), r.cancelled.end(),
                   std::pair<std::int64_t, WarmKind>{2, WarmKind::refresh}) == 1);
}

TEST_CASE("Warmer: runs on a user executor; no task is left after destruction", "[warmer]") {
  Recorder r;
  CountingExecutor ex;
  std::thread releaser;
  {
    auto w = make_warmer(r, {.workers = 2, .executor = &ex}, {1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(w.warm_all() == 8);
    w.wait_idle();
    CHECK(w.progress().done == 8);
    CHECK(ex.submitted >= 1);
    CHECK(ex.submitted <= 8);
    r.close();
    w.enqueue(9);
    r.wait_inside(1);
    releaser = std::thread{[&] {
      std::this_thread::sleep_for(20ms);
      r.release();
    }};
    // The destructor (stop(cancel)) waits for the running ID 9.
  }
  CHECK(r.count(9) == 1);
  releaser.join();
  // Every pump the warmer submitted has ended (the thread may still be unwinding the lambda).
  CHECK(ex.submitted.load() >= 2);
}

TEST_CASE("Warmer: an executor that refuses makes the caller run the pump", "[warmer]") {
  Recorder r;
  RefusingExecutor ex;
  auto w = make_warmer(r, {.workers = 1, .executor = &ex});
  CHECK(w.enqueue(1));
  CHECK(r.count(1) == 1);  // warmed on this thread before enqueue returned
  CHECK(w.progress().done == 1);
}

TEST_CASE("Warmer: bad options and a missing lister throw", "[warmer]") {
  Recorder r;
  CHECK_THROWS_AS(make_warmer(r, {.capacity = 0}), std::invalid_argument);
  CHECK_THROWS_AS(make_warmer(r, {.workers = 0}), std::invalid_argument);
  larder::Warmer<std::int64_t> no_list{[](const std::int64_t&, WarmKind) {}};
  CHECK_THROWS_AS(no_list.warm_all(), std::logic_error);
}

TEST_CASE("Warmer: stop() or wait_idle() from inside its own warming throws, not deadlocks",
          "[warmer]") {
  // Each would wait for the warming that calls it: stop() for its pump to end, wait_idle() for
  // running == 0. A bounded wait catches the deadlock they used to be; the warmer then leaks.
  using W = larder::Warmer<std::int64_t>;
  std::atomic<W*> self{nullptr};
  std::mutex m;
  std::vector<larder::WarmError> errors;
  auto w = std::make_unique<W>(
      [&](const std::int64_t& id, WarmKind) {
        W& me = *self.load();
        if (id == 1) me.stop();
        if (id == 2) me.stop(StopMode::cancel);
        if (id == 3) me.wait_idle();
        if (id == 4) me.wait_idle_for(std::chrono::hours::max());
        if (id == 5) me.wait_idle_for(0ms);
      },
      W::ListFn{}, larder::WarmerOptions{.workers = 1, .on_error = [&](const larder::WarmError& e) {
                                           std::lock_guard lock{m};
                                           errors.push_back(e);
                                         }});
  self = w.get();
  for (std::int64_t id = 1; id <= 6; ++id) CHECK(w->enqueue(id));
  CHECK(w->wait_idle_for(10s));
  const auto p = w->progress();
  CHECK(p.failed == 5);
  CHECK(p.done == 1);  // 6: the warmer still runs
  {
    std::lock_guard lock{m};
    CHECK(errors.size() == 5);
    for (const auto& e : errors) {
      INFO(e.what);
      CHECK(e.what.find("inside one of its own warmings") != std::string::npos);
    }
  }
  CHECK(w->enqueue(7));  // not stopped by the refused stop()
  CHECK(w->wait_idle_for(10s));
  CHECK(larder::testing::destroys_within(std::move(w), 10s));
}

TEST_CASE(
    "Warmer: a blocking enqueue from inside its own warming throws where nobody can make room",
    "[warmer]") {
  // workers = 1: the only pump is the one enqueuing, so a full queue would never drain. A bounded
  // wait catches the deadlock this used to be; the warmer then leaks.
  using W = larder::Warmer<std::int64_t>;
  std::atomic<W*> self{nullptr};
  std::atomic<bool> queued_2{false};
  std::mutex m;
  std::vector<larder::WarmError> errors;
  auto w = std::make_unique<W>(
      [&](const std::int64_t& id, WarmKind) {
        if (id != 1) return;
        W& me = *self.load();
        queued_2 = me.enqueue(2);  // the pump took 1 off the queue: room for one
        me.enqueue(3);             // full, and no other pump: throws
      },
      W::ListFn{},
      larder::WarmerOptions{.capacity = 1,
                            .on_full = larder::OnFull::block,
                            .workers = 1,
                            .on_error = [&](const larder::WarmError& e) {
                              std::lock_guard lock{m};
                              errors.push_back(e);
                            }});
  self = w.get();
  CHECK(w->enqueue(1));
  CHECK(w->wait_idle_for(10s));
  const auto p = w->progress();
  CHECK(p.failed == 1);
  CHECK(p.done == 1);  // 2
  CHECK(queued_2);
  {
    std::lock_guard lock{m};
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].id == "1");
    CHECK(errors[0].what.find("no other worker free to make room") != std::string::npos);
  }
  CHECK(w->enqueue(4));  // the warmer goes on
  CHECK(w->wait_idle_for(10s));
  CHECK(larder::testing::destroys_within(std::move(w), 10s));
}

TEST_CASE("Warmer: a blocking enqueue from inside a warming waits while another pump can make room",
          "[warmer]") {
  // Two workers: pump A warms 1 and enqueues 10 (pump B takes it and is held at the gate), then 12
  // (queued) and 11 (the queue is full: A waits, since B will take 12 once released).
  using W = larder::Warmer<std::int64_t>;
  std::atomic<W*> self{nullptr};
  larder::testing::Gate gate;
  gate.close();
  std::atomic<bool> enqueued_11{false};
  std::mutex m;
  std::vector<std::int64_t> warmed;
  auto w = std::make_unique<W>(
      [&](const std::int64_t& id, WarmKind) {
        if (id == 10) gate.pass();
        if (id == 1) {
          W& me = *self.load();
          const bool a = me.enqueue(10);
          gate.wait_inside(1);  // B holds 10: the queue is empty again
          const bool b = me.enqueue(12);
          const bool c = me.enqueue(11);  // full: waits for B
          enqueued_11 = a && b && c;
        }
        std::lock_guard lock{m};
        warmed.push_back(id);
      },
      W::ListFn{}, larder::WarmerOptions{.capacity = 1, .workers = 2});
  self = w.get();
  CHECK(w->enqueue(1));
  std::this_thread::sleep_for(50ms);  // not a timing assertion: it may only fail to catch a bug
  CHECK_FALSE(enqueued_11);
  gate.open();
  CHECK(w->wait_idle_for(10s));
  CHECK(enqueued_11);
  const auto p = w->progress();
  CHECK(p.failed == 0);
  CHECK(p.done == 4);
  {
    std::lock_guard lock{m};
    std::sort(warmed.begin(), warmed.end());
    CHECK(warmed == std::vector<std::int64_t>{1, 10, 11, 12});
  }
  CHECK(larder::testing::destroys_within(std::move(w), 10s));
}

TEST_CASE("Warmer: a blocking enqueue inside a pump nested in another on one thread throws",
          "[warmer]") {
  // The executor refuses every pump, so each runs on the thread that enqueued: 1's warming
  // enqueues 2, whose pump runs inside it. Two pumps, one thread: neither can make room for 4.
  // The first enqueue runs on a thread of its own, so that a deadlock fails a bounded wait (the
  // warmer and the thread are then leaked).
  using W = larder::Warmer<std::int64_t>;
  RefusingExecutor ex;
  std::atomic<W*> self{nullptr};
  std::atomic<bool> threw{false};
  auto w = std::make_unique<W>(
      [&](const std::int64_t& id, WarmKind) {
        W& me = *self.load();
        if (id == 1) me.enqueue(2);
        if (id == 2) {
          me.enqueue(3);  // queued: both pumps are running
          try {
            me.enqueue(4);  // full
          } catch (const std::logic_error& e) {
            threw = std::string{e.what()}.find("no other worker free") != std::string::npos;
            throw;
          }
        }
      },
      W::ListFn{}, larder::WarmerOptions{.capacity = 1, .workers = 2, .executor = &ex});
  self = w.get();
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  std::thread([&w, done] {
    w->enqueue(1);
    done->set_value();
  }).detach();
  const bool returned = finished.wait_for(10s) == std::future_status::ready;
  CHECK(returned);
  if (!returned) {
    (void)w.release();  // still in use by the stuck thread
    return;
  }
  CHECK(threw);
  const auto p = w->progress();
  CHECK(p.failed == 1);  // 2
  CHECK(p.done == 2);    // 1 and 3
}

TEST_CASE("ThreadPool: 0 threads or more than max_threads is std::invalid_argument", "[executor]") {
  // 0 threads would be a pool that never runs a task (every wait on one hangs); an absurd count
  // used to reach vector::reserve (std::length_error) or start threads until the system refused.
  REQUIRE_THROWS_AS(larder::ThreadPool{std::numeric_limits<std::size_t>::max()},
                    std::invalid_argument);
  CHECK_THROWS_AS(larder::ThreadPool{0}, std::invalid_argument);
  CHECK_THROWS_AS(larder::ThreadPool{larder::ThreadPool::max_threads + 1}, std::invalid_argument);
  try {
    larder::ThreadPool pool{larder::ThreadPool::max_threads + 1};
  } catch (const std::invalid_argument& e) {
    CHECK(std::string{e.what()}.find("at most") != std::string::npos);
  }
  std::atomic<int> ran{0};
  {
    larder::ThreadPool pool{1};
    pool.submit([&] { ++ran; });
  }  // the destructor runs every queued task
  CHECK(ran == 1);
  // A warmer that owns its pool says which option is wrong; with an executor of yours, `workers`
  // only bounds the pump tasks and may be large.
  Recorder r;
  CHECK_THROWS_AS(make_warmer(r, {.workers = std::numeric_limits<std::size_t>::max()}),
                  std::invalid_argument);
  try {
    make_warmer(r, {.workers = larder::ThreadPool::max_threads + 1});
  } catch (const std::invalid_argument& e) {
    CHECK(std::string{e.what()}.find("WarmerOptions: workers") != std::string::npos);
  }
  larder::testing::ManualExecutor ex;
  auto w = make_warmer(r, {.workers = std::numeric_limits<std::size_t>::max(), .executor = &ex});
  CHECK(w.enqueue(1));
  while (ex.run_all() > 0) {
  }
  CHECK(r.count(1) == 1);
}

TEST_CASE("Warmer: many threads enqueue overlapping IDs while it runs and stops", "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.capacity = 16, .workers = 3});
  std::vector<std::thread> threads;
  std::atomic<int> accepted{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i)
        if (w.enqueue((i * 7 + t) % 64, i % 3 ? WarmKind::fill : WarmKind::refresh)) ++accepted;
    });
  for (auto& t : threads) t.join();
  w.stop(StopMode::drain);
  const auto p = w.progress();
  CHECK(accepted == 2000);
  CHECK(p.total + p.deduplicated == 2000);
  CHECK(p.done == p.total);
  CHECK(r.size() == p.total);
  for (std::int64_t id = 0; id < 64; ++id) CHECK(r.count(id) >= 1);
}

TEST_CASE("Warmer: wait_idle_for a duration too long for the clock waits until idle", "[warmer]") {
  // A timeout longer than the steady clock can add to now (nanoseconds::max(), hours::max(), a
  // double duration of centuries) means "wait as long as it takes", not "give up at once".
  const auto run = [](auto timeout) {
    Recorder r;
    auto w = make_warmer(r, {.workers = 1});
    r.close();
    CHECK(w.enqueue(1));
    r.wait_inside(1);
    std::thread opener{[&] {
      std::this_thread::sleep_for(50ms);
      r.release();
    }};
    const auto t0 = std::chrono::steady_clock::now();
    const bool idle = w.wait_idle_for(timeout);
    const auto waited = std::chrono::steady_clock::now() - t0;
    opener.join();
    CHECK(idle);
    CHECK(waited >= 40ms);
    CHECK(w.progress().done == 1);
  };
  SECTION("nanoseconds::max()") { run(std::chrono::nanoseconds::max()); }
  SECTION("milliseconds::max()") { run(std::chrono::milliseconds::max()); }
  SECTION("hours::max()") { run(std::chrono::hours::max()); }
  SECTION("a double duration of centuries") {
    run(std::chrono::duration<double, std::ratio<3600>>{24.0 * 365 * 1000});
  }
}

TEST_CASE("Warmer: wait_idle_for with a zero or negative timeout answers at once", "[warmer]") {
  Recorder r;
  auto w = make_warmer(r, {.workers = 1});
  CHECK(w.wait_idle_for(0ms));
  CHECK(w.wait_idle_for(-1h));
  CHECK(w.wait_idle_for(std::chrono::milliseconds::min()));
  r.close();
  CHECK(w.enqueue(1));
  r.wait_inside(1);
  CHECK_FALSE(w.wait_idle_for(0ms));
  CHECK_FALSE(w.wait_idle_for(-1h));
  CHECK_FALSE(w.wait_idle_for(std::chrono::milliseconds::min()));
  CHECK_FALSE(w.wait_idle_for(20ms));
  r.release();
  CHECK(w.wait_idle_for(10s));
}

TEST_CASE("Warmer: wait_idle_for a duration finer than a nanosecond waits only that long",
          "[warmer]") {
  // 2 ms in picoseconds (an integer count): the bound must hold, not be read as "too long for
  // the clock" (converting nanoseconds::max() to picoseconds to compare overflows).
  Recorder r;
  auto w = make_warmer(r, {.workers = 1});
  r.close();
  CHECK(w.enqueue(1));
  r.wait_inside(1);
  std::thread opener{[&] {
    std::this_thread::sleep_for(500ms);
    r.release();
  }};
  const bool idle = w.wait_idle_for(std::chrono::duration<std::int64_t, std::pico>{2'000'000'000});
  opener.join();
  CHECK_FALSE(idle);  // it gave up after 2 ms, before the release
  CHECK(w.wait_idle_for(10s));
}
