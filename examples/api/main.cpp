// main.cpp: the API example's server. Generates a SQLite database of Foos (a few near 2 MB of
// JSON), then serves it on 127.0.0.1 with the JSON cached per Foo (larder::JsonCache), warmed in
// the background at start and re-warmed after each touch. Prints "listening on 127.0.0.1:<port>" on
// stdout once it accepts connections (--port 0 picks a free port); SIGINT/SIGTERM stop it cleanly.
//
//   api_server --port 8080                          # then: curl 127.0.0.1:8080/foos/1
//   api_server --port 0 --foos 20 --big-foos 1 --big-kb 300 --db /tmp/api.db
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <larder/larder.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "db.hpp"
#include "service.hpp"

#ifdef LARDER_API_REDIS
#include <larder/redis_store.hpp>
#include <larder/tiered_store.hpp>
#endif

namespace {

constexpr const char* kUsage = R"(usage: api_server [options]
  --port N         TCP port on 127.0.0.1 (0: any free port; default 8080)
  --db PATH        SQLite file to generate (default: a temporary file, removed at exit)
  --foos N         Foos to generate (default 60)
  --big-foos N     of which near --big-kb of JSON each (default 3)
  --big-kb N       JSON size of a big Foo, approximately, in KB (default 2000)
  --bars N         most Bars per ordinary Foo (default 8)
  --zabs N         most Zabs per ordinary Bar (default 6)
  --bazs N         most Bazs per ordinary Zab (default 5)
  --seed N         data generator seed (default 42)
  --threads N      HTTP worker threads (default 8)
  --on-write W     what a touch does: rewarm (default) or invalidate
  --no-warm        do not warm every Foo at start (fill on read only)
  --redis URL      cache in Redis (memory over Redis), e.g. redis://127.0.0.1:6379
  --help           this text
)";

struct Args {
  int port = 8080;
  std::string db;
  api::DataSize size;
  int threads = 8;
  larder::OnWrite on_write = larder::OnWrite::rewarm;
  bool warm = true;
  std::string redis;
};

[[noreturn]] void usage_error(const std::string& why) {
  std::cerr << "api_server: " << why << "\n" << kUsage;
  std::exit(2);
}

int to_int(std::string_view flag, std::string_view v, int lo, int hi) {
  int out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc{} || p != v.data() + v.size() || out < lo || out > hi)
    usage_error(std::string(flag) + " needs a number in [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "], got '" + std::string(v) + "'");
  return out;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help") {
      std::cout << kUsage;
      std::exit(0);
    }
    if (flag == "--no-warm") {
      a.warm = false;
      continue;
    }
    if (i + 1 >= argc) usage_error("unknown flag or missing value: " + std::string(flag));
    const std::string_view v = argv[++i];
    if (flag == "--port") {
      a.port = to_int(flag, v, 0, 65535);
    } else if (flag == "--db") {
      a.db = v;
    } else if (flag == "--foos") {
      a.size.foos = to_int(flag, v, 1, 1'000'000);
    } else if (flag == "--big-foos") {
      a.size.big_foos = to_int(flag, v, 0, 1'000);
    } else if (flag == "--big-kb") {
      a.size.big_kb = to_int(flag, v, 1, 100'000);
    } else if (flag == "--bars") {
      a.size.max_bars = to_int(flag, v, 1, 10'000);
    } else if (flag == "--zabs") {
      a.size.max_zabs = to_int(flag, v, 1, 10'000);
    } else if (flag == "--bazs") {
      a.size.max_bazs = to_int(flag, v, 1, 10'000);
    } else if (flag == "--seed") {
      a.size.seed = static_cast<std::uint32_t>(to_int(flag, v, 0, 2'000'000'000));
    } else if (flag == "--threads") {
      a.threads = to_int(flag, v, 1, 256);
    } else if (flag == "--on-write") {
      if (v == "rewarm") {
        a.on_write = larder::OnWrite::rewarm;
      } else if (v == "invalidate") {
        a.on_write = larder::OnWrite::invalidate;
      } else {
        usage_error("--on-write is rewarm or invalidate, got '" + std::string(v) + "'");
      }
    } else if (flag == "--redis") {
#ifdef LARDER_API_REDIS
      a.redis = v;
#else
      usage_error("--redis needs larder::redis, which this build lacks");
#endif
    } else {
      usage_error("unknown flag: " + std::string(flag));
    }
  }
  if (a.size.big_foos > a.size.foos) usage_error("--big-foos must not exceed --foos");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);

  // Block the stop signals in every thread; one thread waits for them (sigwait) and stops the
  // server, so nothing runs in a signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGUSR1);  // sent by main itself when the server ends otherwise
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  const bool temp_db = args.db.empty();
  const std::string db_path = temp_db ? (std::filesystem::temp_directory_path() /
                                         ("larder-api-" + std::to_string(::getpid()) + ".db"))
                                            .string()
                                      : args.db;
  auto remove_db = [&] {
    if (!temp_db) return;
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db_path + suffix, ec);
  };

  int rc = 0;
  try {
    const auto t0 = std::chrono::steady_clock::now();
    api::Database db{db_path};
    db.generate(args.size);
    std::cerr << "api_server: generated " << args.size.foos << " Foos (" << args.size.big_foos
              << " of ~" << args.size.big_kb << " KB) in "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0)
                     .count()
              << " ms into " << db_path << "\n";

    larder::MemoryStore memory{{.max_entries = 1'000'000, .max_weight = std::uint64_t{2} << 30}};
    larder::Store* store = &memory;
#ifdef LARDER_API_REDIS
    std::unique_ptr<larder::RedisStore> redis;
    std::unique_ptr<larder::TieredStore> tiered;
    if (!args.redis.empty()) {
      redis = std::make_unique<larder::RedisStore>(
          args.redis, larder::RedisOptions{.command_timeout = std::chrono::milliseconds{2000}});
      tiered = std::make_unique<larder::TieredStore>(memory, *redis);
      store = tiered.get();
    }
#endif

    api::Service service{db, *store, {.on_write = args.on_write}};
    httplib::Server server;
    const int threads = args.threads;
    server.new_task_queue = [threads] {
      return new httplib::ThreadPool(static_cast<std::size_t>(threads));
    };
    service.install(server);
#ifdef LARDER_API_REDIS
    // Serve once this instance hears the others' invalidations: until its subscription is in, it
    // does not, and the subscription's flush refuses to store what is being computed at that
    // moment (docs/redis.md, "Invalidation across instances"). Bounded: Redis may be down.
    if (redis) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{2};
      while (!redis->stats().bus_subscribed && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
#endif

    int port = args.port;
    if (port == 0) {
      port = server.bind_to_any_port("127.0.0.1");
      if (port < 0) throw std::runtime_error("cannot bind 127.0.0.1 to any port");
    } else if (!server.bind_to_port("127.0.0.1", port)) {
      throw std::runtime_error("cannot bind 127.0.0.1:" + std::to_string(port));
    }

    std::atomic<bool> signalled{false};
    std::thread waiter{[&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      signalled = sig != SIGUSR1;
      server.stop();
    }};
    std::thread warm;
    if (args.warm)
      warm = std::thread{[&] {
        try {
          service.warm_all();
        } catch (const std::exception& e) {
          std::cerr << "api_server: warm_all failed: " << e.what() << "\n";
        }
      }};

    std::printf("listening on 127.0.0.1:%d\n", port);
    std::fflush(stdout);
    const bool ok = server.listen_after_bind();
    if (!signalled) pthread_kill(waiter.native_handle(), SIGUSR1);
    waiter.join();
    service.stop();  // queued warmings are dropped; the one running finishes
    if (warm.joinable()) warm.join();
    if (!ok && !signalled) throw std::runtime_error("the server stopped unexpectedly");
    const auto s = service.foos().stats();
    std::cerr << "api_server: stopped; hits " << s.cache.hits << ", misses " << s.cache.misses
              << ", loads " << s.cache.loads << "\n";
  } catch (const std::exception& e) {
    std::cerr << "api_server: " << e.what() << "\n";
    rc = 1;
  }
  remove_db();
  return rc;
}
