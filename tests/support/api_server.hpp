// support/api_server.hpp: the API example's server (examples/api) as a child process for the
// tests: started with `--port 0 --db <temp file>` plus the test's flags, its port read from the
// first line it prints, stopped by its PID (SIGTERM) and reaped; the database file is removed.
#pragma once

#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace larder::testing {

/// The value of the Prometheus sample `name{model="Foo"}` in the server's /metrics text, or
/// nullopt if it is absent.
inline std::optional<double> metric_sample(const std::string& metrics, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(metrics, m,
                         std::regex{"\n" + name + R"(\{model="Foo"\} ([0-9.eE+-]+)\n)"}))
    return std::nullopt;
  return std::stod(m[1].str());
}

/// The api_server child process: started with `args` plus `--port 0 --db <temp file>`, stopped by
/// its PID (SIGTERM) and reaped; its stdout's first line gives the port.
class ApiServer {
 public:
  explicit ApiServer(std::vector<std::string> args) {
    static int serial = 0;
    db_ =
        (std::filesystem::temp_directory_path() /
         ("larder-api-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial) + ".db"))
            .string();
    std::vector<std::string> all{LARDER_API_SERVER_BIN, "--port", "0", "--db", db_};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addclose(&actions, out[1]);
    const int rc = ::posix_spawn(&pid_, all[0].c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    if (rc != 0) {
      ::close(out[0]);
      throw std::runtime_error("cannot spawn api_server");
    }
    out_ = out[0];
    // The first line: "listening on 127.0.0.1:<port>" (written once the socket is bound).
    std::string line;
    char ch;
    while (::read(out_, &ch, 1) == 1 && ch != '\n') line += ch;
    std::smatch m;
    if (!std::regex_match(line, m, std::regex{R"(listening on 127\.0\.0\.1:(\d+))"})) {
      stop();
      throw std::runtime_error("api_server did not start: '" + line + "'");
    }
    port_ = std::stoi(m[1].str());
  }
  ~ApiServer() {
    stop();
    if (out_ >= 0) ::close(out_);
    std::error_code ec;
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(db_ + suffix, ec);
  }
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  /// SIGTERM, then waits for the exit; returns the exit status (-1 if it did not exit by itself).
  int stop() {
    if (pid_ <= 0) return status_;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 3000; ++i) {  // up to 30 s (sanitizer builds are slow)
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return status_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return status_ = -1;
  }

  int port() const { return port_; }
  const std::string& db() const { return db_; }
  httplib::Client client() const {
    httplib::Client c{"127.0.0.1", port_};
    c.set_read_timeout(60, 0);
    c.set_decompress(false);
    return c;
  }

 private:
  std::string db_;
  pid_t pid_ = -1;
  int out_ = -1;
  int port_ = 0;
  int status_ = -1;
};

}  // namespace larder::testing
