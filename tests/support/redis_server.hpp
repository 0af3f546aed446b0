// support/redis_server.hpp: a real redis-server for the [redis] tests, started on 127.0.0.1 on a
// free port (and a unix socket) with no persistence, and stopped by its PID; plus RawRedis, a bare
// hiredis client to look behind the store's back (INFO commandstats, ACL, planting bytes).
#pragma once

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <larder/redis_store.hpp>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

extern char** environ;

namespace larder::testing {

/// A bare hiredis connection; command() returns the reply as text ("(nil)" for nil, "-ERR..."
/// for an error reply, elements joined by '\n' for an array).
class RawRedis {
 public:
  explicit RawRedis(int port) {
    timeval tv{1, 0};
    ctx_.reset(redisConnectWithTimeout("127.0.0.1", port, tv));
    if (!ctx_ || ctx_->err) throw std::runtime_error("RawRedis: cannot connect");
    redisSetTimeout(ctx_.get(), tv);
  }
  std::string command(std::initializer_list<std::string_view> args) {
    std::vector<const char*> ptr;
    std::vector<std::size_t> len;
    for (auto a : args) {
      ptr.push_back(a.data());
      len.push_back(a.size());
    }
    auto* r = static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(ptr.size()), ptr.data(), len.data()));
    if (r == nullptr) throw std::runtime_error(std::string("RawRedis: ") + ctx_->errstr);
    std::string out = text(r);
    freeReplyObject(r);
    return out;
  }
  /// Calls of `name` (lower case, e.g. "get") since the last CONFIG RESETSTAT.
  long long calls(std::string_view name) {
    const std::string info = command({"INFO", "commandstats"});
    const std::string tag = "cmdstat_" + std::string(name) + ":calls=";
    const auto pos = info.find(tag);
    return pos == std::string::npos ? 0 : std::atoll(info.c_str() + pos + tag.size());
  }
  /// Calls of every command except INFO and CONFIG (this client's own probes).
  long long total_calls() {
    const std::string info = command({"INFO", "commandstats"});
    long long total = 0;
    for (std::size_t pos = info.find("cmdstat_"); pos != std::string::npos;
         pos = info.find("cmdstat_", pos + 1)) {
      const auto colon = info.find(':', pos);
      const std::string name = info.substr(pos + 8, colon - pos - 8);
      // Not cache traffic: the test's own probes, and an invalidation bus subscribing (its
      // subscriber thread may (re)subscribe at any moment, e.g. right after a CONFIG RESETSTAT).
      if (name == "info" || name.starts_with("config") || name == "subscribe") continue;
      total += std::atoll(info.c_str() + info.find("calls=", pos) + 6);
    }
    return total;
  }

 private:
  static std::string text(const redisReply* r) {
    switch (r->type) {
      case REDIS_REPLY_NIL:
        return "(nil)";
      case REDIS_REPLY_INTEGER:
        return std::to_string(r->integer);
      case REDIS_REPLY_ERROR:
        return "-" + std::string(r->str, r->len);
      case REDIS_REPLY_ARRAY: {
        std::string out;
        for (std::size_t i = 0; i < r->elements; ++i) {
          if (i) out += '\n';
          out += text(r->element[i]);
        }
        return out;
      }
      default:
        return std::string(r->str, r->len);
    }
  }
  struct Free {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  std::unique_ptr<redisContext, Free> ctx_;
};

/// A redis-server child process. Never binds anything but 127.0.0.1 and its own unix socket.
class RedisServer {
 public:
  explicit RedisServer(std::vector<std::string> extra = {}) : extra_{std::move(extra)} {
    dir_ = std::filesystem::temp_directory_path() /
           ("larder-redis-" + std::to_string(::getpid()) + "-" + std::to_string(++serial()));
    std::filesystem::create_directories(dir_);
    for (int attempt = 0;; ++attempt) {
      port_ = free_port();
      if (start_process()) return;
      if (attempt == 4) throw std::runtime_error("RedisServer: redis-server did not start");
    }
  }
  ~RedisServer() {
    stop();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string socket_path() const { return (dir_ / "redis.sock").string(); }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  RawRedis client() const { return RawRedis{port_}; }

  /// SIGTERM, then SIGKILL after 2 s; reaps the child.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    kill();
  }
  /// SIGKILL at once (a crash).
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  /// Starts again on the same port (after stop or kill).
  void restart() {
    for (int attempt = 0; attempt < 50; ++attempt) {
      if (start_process()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
    }
    throw std::runtime_error("RedisServer: redis-server did not restart");
  }
  void freeze() { ::kill(pid_, SIGSTOP); }
  void thaw() { ::kill(pid_, SIGCONT); }

 private:
  static int& serial() {
    static int n = 0;
    return n;
  }
  /// A port the kernel just handed out for 127.0.0.1 (bind to port 0, read it, close).
  static int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ::close(fd);
      throw std::runtime_error("RedisServer: no free port");
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  bool start_process() {
    std::vector<std::string> args{"redis-server",
                                  "--port",
                                  std::to_string(port_),
                                  "--bind",
                                  "127.0.0.1",
                                  "--save",
                                  "",
                                  "--appendonly",
                                  "no",
                                  "--dir",
                                  dir_.string(),
                                  "--unixsocket",
                                  socket_path(),
                                  "--unixsocketperm",
                                  "700"};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    const int rc = ::posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("RedisServer: cannot spawn redis-server (installed?)");
    // Wait until it answers (or exits: the port was taken meanwhile). The answer must be its own:
    // another program's redis-server may have taken the port between free_port() and the bind,
    // and would answer PING while this child is still failing to start (two test programs, each
    // on a port the other then stops, restarts or flushes).
    const std::string own = "process_id:" + std::to_string(pid_) + "\r\n";
    for (int i = 0; i < 500; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      timeval tv{0, 100'000};
      if (redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv)) {
        bool ok = false;
        if (!c->err) {
          redisSetTimeout(c, tv);
          if (auto* r = static_cast<redisReply*>(redisCommand(c, "INFO server"))) {
            ok = r->type == REDIS_REPLY_STRING &&
                 std::string_view{r->str, r->len}.find(own) != std::string_view::npos;
            freeReplyObject(r);
          }
        }
        redisFree(c);
        if (ok) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    kill();
    return false;
  }

  std::vector<std::string> extra_;
  std::filesystem::path dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

/// Collects a RedisStore's logger messages (thread-safe).
struct Log {
  std::mutex mutex;
  std::vector<std::string> lines;
  std::function<void(larder::LogLevel, std::string_view)> hook() {
    return [this](larder::LogLevel, std::string_view m) {
      std::lock_guard lock{mutex};
      lines.emplace_back(m);
    };
  }
  bool mentions(std::string_view s) {
    std::lock_guard lock{mutex};
    for (const auto& l : lines)
      if (l.find(s) != std::string::npos) return true;
    return false;
  }
};

/// The server shared by a test program's tests that do not kill, freeze or reconfigure it.
inline RedisServer& shared_server() {
  static RedisServer server;
  return server;
}

/// Options for a store on a test server: generous timeouts, so a loaded machine does not fail it.
inline larder::RedisOptions local(int port) {
  using namespace std::chrono_literals;
  return larder::RedisOptions{.port = port, .connect_timeout = 1s, .command_timeout = 1s};
}

inline std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

}  // namespace larder::testing
