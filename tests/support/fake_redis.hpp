// support/fake_redis.hpp: a TCP server on a free 127.0.0.1 port, for tests of what RedisStore does
// with replies no real Redis sends (malformed, hostile) or with failures a real one cannot be made
// to show on cue (a command applied whose reply never arrives). One thread; stopped and joined by
// the destructor. Two modes:
// - canned: every chunk of bytes read is answered with one fixed reply;
// - scripted: each command (a RESP array of bulk strings, as hiredis sends them) is handed to a
//   handler with the index of its connection (0 for the first accepted); the handler returns the
//   reply's bytes, or std::nullopt to close that connection without answering. It runs on the
//   server's thread: state it shares with the test needs a mutex.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace larder::testing {

class FakeRedis {
 public:
  using Handler = std::function<std::optional<std::string>(std::size_t connection,
                                                           const std::vector<std::string>& argv)>;

  /// Canned: answers every chunk it reads with `reply`.
  explicit FakeRedis(std::string reply) : reply_{std::move(reply)} { start(); }
  /// Scripted: answers each command with what `handler` returns (see the top of this file).
  explicit FakeRedis(Handler handler) : handler_{std::move(handler)} { start(); }
  ~FakeRedis() {
    stop_ = true;
    thread_.join();
    for (const auto& c : clients_) ::close(c.fd);
    ::close(listen_fd_);
  }
  FakeRedis(const FakeRedis&) = delete;
  FakeRedis& operator=(const FakeRedis&) = delete;

  int port() const { return port_; }

 private:
  struct Client {
    int fd;
    std::size_t index;  // order of acceptance
    std::string in;     // bytes read, not yet a whole command
  };

  void start() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (listen_fd_ < 0 ||
        ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 16) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (listen_fd_ >= 0) ::close(listen_fd_);
      throw std::runtime_error("FakeRedis: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread{[this] { run(); }};
  }

  /// Takes one whole command (`*N\r\n` then N `$len\r\nbytes\r\n`) off the front of `in`;
  /// std::nullopt if it is not all there yet.
  static std::optional<std::vector<std::string>> next_command(std::string& in) {
    std::size_t pos = 0;
    auto line = [&]() -> std::optional<std::string> {
      const auto end = in.find("\r\n", pos);
      if (end == std::string::npos) return std::nullopt;
      std::string l = in.substr(pos, end - pos);
      pos = end + 2;
      return l;
    };
    const auto head = line();
    if (!head || head->empty() || (*head)[0] != '*') return std::nullopt;
    const std::size_t n = std::stoul(head->substr(1));
    std::vector<std::string> argv;
    for (std::size_t i = 0; i < n; ++i) {
      const auto size = line();
      if (!size) return std::nullopt;
      const std::size_t bytes = std::stoul(size->substr(1));
      if (in.size() < pos + bytes + 2) return std::nullopt;
      argv.push_back(in.substr(pos, bytes));
      pos += bytes + 2;
    }
    in.erase(0, pos);
    return argv;
  }

  /// Answers what `c` sent; false if `c` is to be closed.
  bool serve(Client& c, const char* data, std::size_t n) {
    if (!handler_) {
      (void)!::write(c.fd, reply_.data(), reply_.size());
      return true;
    }
    c.in.append(data, n);
    while (auto argv = next_command(c.in)) {
      const auto reply = handler_(c.index, *argv);
      if (!reply) return false;
      (void)!::write(c.fd, reply->data(), reply->size());
    }
    return true;
  }

  void run() {
    std::size_t accepted = 0;
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (const auto& c : clients_) fds.push_back({c.fd, POLLIN, 0});
      if (::poll(fds.data(), fds.size(), 20) <= 0) continue;
      for (std::size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Client& c = clients_[i - 1];
        char buf[4096];
        const ssize_t n = ::read(c.fd, buf, sizeof buf);
        if (n <= 0 || !serve(c, buf, static_cast<std::size_t>(n))) {
          ::close(c.fd);
          c.fd = -1;
        }
      }
      std::erase_if(clients_, [](const Client& c) { return c.fd < 0; });
      if (fds[0].revents & POLLIN) {
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) clients_.push_back({fd, accepted++, {}});
      }
    }
  }

  std::string reply_;
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::vector<Client> clients_;  // only the thread touches it until it is joined
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace larder::testing
