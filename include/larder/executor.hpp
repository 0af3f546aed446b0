// executor.hpp: where larder runs background work (stale-while-revalidate refreshes, warming).
// Thread-safe: submit() may be called concurrently.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace larder {

/// Runs tasks somewhere else. Replace it to use your service's own pool [FusionCache, Caffeine
/// `executor`]. A task must not be dropped silently: an executor that cannot take a task throws
/// from submit(), and larder then runs the work on the calling thread. (One that breaks this, by
/// running or keeping a task and throwing, or by dropping one, costs a refresh at worst: larder
/// never refreshes twice for it and never waits for ever for a task it dropped.)
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void submit(std::function<void()> task) = 0;
};

/// A fixed pool of threads with an unbounded FIFO queue. The destructor runs every queued task,
/// then joins the threads: no task is lost and no thread outlives the pool.
class ThreadPool final : public Executor {
 public:
  /// The most threads a pool may have. A pool runs background refreshes and warmings, bounded by
  /// the database they query; a count above this is a bug (a negative number converted, a size
  /// passed for a count), refused before any thread starts.
  static constexpr std::size_t max_threads = 1024;

  /// Starts `threads` threads. Throws std::invalid_argument for 0 (a pool that would never run a
  /// task) or more than max_threads, and what starting a thread throws (std::system_error,
  /// std::bad_alloc) after stopping and joining the ones started.
  explicit ThreadPool(std::size_t threads = 2) {
    if (threads == 0) throw std::invalid_argument("larder::ThreadPool: threads must be at least 1");
    if (threads > max_threads)
      throw std::invalid_argument("larder::ThreadPool: threads must be at most " +
                                  std::to_string(max_threads) + " (got " + std::to_string(threads) +
                                  ")");
    try {
      workers_.reserve(threads);
      for (std::size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
    } catch (...) {
      shutdown();  // a joinable std::thread destroyed unjoined would be std::terminate
      throw;
    }
  }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() override { shutdown(); }

  void submit(std::function<void()> task) override {
    {
      std::lock_guard lock{mutex_};
      if (stopping_) throw std::runtime_error("larder::ThreadPool: submit after shutdown");
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  /// The process-wide pool larder uses when Options::executor is null (two threads, started on
  /// first use).
  static ThreadPool& shared() {
    static ThreadPool pool{2};
    return pool;
  }

 private:
  /// Lets the threads drain the queue and end, then joins them.
  void shutdown() noexcept {
    {
      std::lock_guard lock{mutex_};
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock{mutex_};
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping and drained
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      try {
        task();
      } catch (...) {
        // Tasks report their own failures; an escaped exception must not kill the worker.
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace larder
