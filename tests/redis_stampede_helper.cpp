// redis_stampede_helper: one "service instance" of the multi-process stampede test. Runs `threads`
// threads that all call a Cached over TieredStore(MemoryStore, RedisStore) on one cold key (42),
// or with `bulk`, get_many on three (41, 42, 43), once the parent creates <dir>/go. Each
// computation appends a line "<pid> <id>" to <dir>/computations. Exits 0 if every call returned
// the right values.
//   usage: redis_stampede_helper <port> <threads> <dir> [bulk]
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <larder/larder.hpp>
#include <larder/redis_store.hpp>
#include <larder/tiered_store.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 4 && !(argc == 5 && std::string_view{argv[4]} == "bulk")) {
    std::fprintf(stderr, "usage: redis_stampede_helper <port> <threads> <dir> [bulk]\n");
    return 2;
  }
  const bool bulk = argc == 5;
  const int port = std::atoi(argv[1]);
  const int threads = std::atoi(argv[2]);
  const std::filesystem::path dir = argv[3];
  const std::string log = (dir / "computations").string();

  larder::RedisStore redis{{.port = port,
                            .connect_timeout = 2s,
                            .command_timeout = 2s,
                            .pool_size = static_cast<std::size_t>(threads)}};
  larder::MemoryStore memory;
  larder::TieredStore store{memory, redis};
  auto compute = [&](std::int64_t id) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0600);
    const std::string line = std::to_string(::getpid()) + " " + std::to_string(id) + "\n";
    if (fd >= 0) {
      (void)!::write(fd, line.data(), line.size());
      ::close(fd);
    }
    std::this_thread::sleep_for(300ms);  // a slow function: the others must wait, not compute
    return id * 7;
  };
  larder::Cached cached{store,
                        "Stampede",
                        "value",
                        compute,
                        {.ttl = 1min, .cold_wait = 30s, .lock_lease = 30s, .lock_poll = 5ms}};

  // Subscribed before the stampede: the subscription's flush would refuse the store of the one
  // computation under way, and the other processes would then compute too.
  const auto subscribe_by = std::chrono::steady_clock::now() + 20s;
  while (!redis.stats().bus_subscribed && std::chrono::steady_clock::now() < subscribe_by)
    std::this_thread::sleep_for(1ms);
  std::ofstream{dir / ("ready." + std::to_string(::getpid()))} << "ready\n";
  while (!std::filesystem::exists(dir / "go")) std::this_thread::sleep_for(1ms);

  std::atomic<int> wrong{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      try {
        if (bulk) {
          const std::vector<std::int64_t> ids{41, 42, 43};
          const auto results = cached.get_many(ids);
          for (std::size_t i = 0; i < ids.size(); ++i)
            if (*results[i] != ids[i] * 7) ++wrong;
        } else if (*cached(42) != 294) {
          ++wrong;
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "helper %d: %s\n", static_cast<int>(::getpid()), e.what());
        ++wrong;
      }
    });
  for (auto& th : pool) th.join();
  const auto s = cached.stats();
  std::printf("helper %d: loads=%llu coalesced=%llu misses=%llu store_errors=%llu wrong=%d\n",
              static_cast<int>(::getpid()), static_cast<unsigned long long>(s.loads),
              static_cast<unsigned long long>(s.coalesced),
              static_cast<unsigned long long>(s.misses),
              static_cast<unsigned long long>(s.store_errors), wrong.load());
  return wrong == 0 && s.store_errors == 0 ? 0 : 1;
}
