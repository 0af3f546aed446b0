// redis_invalidation_helper: "instance B" of the cross-process invalidation test. Subscribes (a
// TieredStore over its own MemoryStore and RedisStore), warms key 5 into its L1, creates
// <dir>/warm, then calls the cached function every millisecond until a call is no longer served
// from its L1 (the parent's refresh reached it), and writes "<value> <source> calls=<n>" to
// <dir>/result. Exits 0 if that happened within 20 s.
//   usage: redis_invalidation_helper <port> <dir>
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
#include <thread>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: redis_invalidation_helper <port> <dir>\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const std::filesystem::path dir = argv[2];
  int calls = 0;
  auto compute = [&](std::int64_t id) {
    ++calls;
    std::int64_t data = 0;
    std::ifstream{dir / "data"} >> data;
    return id * 100 + data;
  };
  larder::RedisStore redis{{.port = port, .connect_timeout = 2s, .command_timeout = 2s}};
  larder::MemoryStore memory;
  larder::TieredStore store{memory, redis};
  larder::Cached cached{store, "InvProc", "value", compute, {.ttl = 1h}};

  const auto deadline = std::chrono::steady_clock::now() + 20s;
  auto timed_out = [&] { return std::chrono::steady_clock::now() > deadline; };
  while (!redis.stats().bus_subscribed && !timed_out()) std::this_thread::sleep_for(1ms);
  if (timed_out()) return 3;
  if (*cached(5) != 501 || cached(5).source() != larder::Source::memory) return 4;
  std::ofstream{dir / "warm"} << "warm\n";

  for (;;) {
    auto r = cached(5);
    if (r.source() != larder::Source::memory) {
      std::ofstream{dir / "result"} << *r << ' ' << larder::to_string(r.source())
                                    << " calls=" << calls << '\n';
      return 0;
    }
    if (timed_out()) return 5;
    std::this_thread::sleep_for(1ms);
  }
}
