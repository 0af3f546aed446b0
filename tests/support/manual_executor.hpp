// support/manual_executor.hpp: an Executor whose tasks run when the test says so.
#pragma once

#include <cstddef>
#include <functional>
#include <larder/executor.hpp>
#include <mutex>
#include <utility>
#include <vector>

namespace larder::testing {

/// Queues every task; run_all() runs the ones queued so far, on the calling thread.
struct ManualExecutor final : larder::Executor {
  std::mutex mutex;
  std::vector<std::function<void()>> tasks;
  void submit(std::function<void()> task) override {
    std::lock_guard lock{mutex};
    tasks.push_back(std::move(task));
  }
  std::size_t run_all() {
    std::vector<std::function<void()>> now;
    {
      std::lock_guard lock{mutex};
      now.swap(tasks);
    }
    for (auto& t : now) t();
    return now.size();
  }
};

}  // namespace larder::testing
