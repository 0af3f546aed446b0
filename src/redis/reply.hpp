// redis/reply.hpp (internal): owning handles for hiredis objects, larder's own reply objects, and
// the one function that maps every hiredis failure to a StoreError.
#pragma once

#include <hiredis/hiredis.h>
#include <signal.h>

#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "larder/error.hpp"

namespace larder::redis {

struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

/// A reply as larder's connections build it (see use_larder_replies): a bulk string lands directly
/// in a std::string, which get() then moves out, so a hit copies the value once (socket buffer to
/// string) instead of twice (to hiredis's redisReply, then to a string).
struct Reply {
  int type = 0;                  // REDIS_REPLY_*
  long long integer = 0;         // REDIS_REPLY_INTEGER
  std::string str;               // REDIS_REPLY_STRING, _STATUS, _ERROR
  std::vector<Reply*> elements;  // REDIS_REPLY_ARRAY; owned

  Reply() = default;
  Reply(const Reply&) = delete;
  Reply& operator=(const Reply&) = delete;
  ~Reply() {
    for (Reply* e : elements) delete e;
  }
};
// hiredis 1.x peeks at `((redisReply*)reply)->type` to spot RESP3 pushes: `type` must come first.
static_assert(std::is_standard_layout_v<Reply>,
              "Reply::type must be at offset 0, as in redisReply");
struct ReplyDeleter {
  void operator()(Reply* r) const noexcept { delete r; }
};
using ReplyPtr = std::unique_ptr<Reply, ReplyDeleter>;

/// Makes c's reader build Reply objects instead of redisReply: every reply that c returns (from
/// redisCommandArgv) is then a Reply*, to be freed with ReplyDeleter.
void use_larder_replies(redisContext* c) noexcept;

/// A StoreError that also says what the pool must do with the connection.
class Failure : public StoreError {
 public:
  Failure(const std::string& what, bool timeout, bool broken, bool retryable, bool pool = false)
      : StoreError(what), timeout_{timeout}, broken_{broken}, retryable_{retryable}, pool_{pool} {}
  /// A connect or command timeout.
  bool timeout() const noexcept { return timeout_; }
  /// The connection is unusable (hiredis context error): drop it.
  bool broken() const noexcept { return broken_; }
  /// The peer closed or reset an idle pooled connection (e.g. Redis restarted): one retry on a
  /// fresh connection is safe, since every command larder sends is idempotent.
  bool retryable() const noexcept { return retryable_; }
  /// No pooled connection came free within pool_wait_timeout: local contention, which says
  /// nothing of Redis's health (not a timeout, not a breaker failure).
  bool pool() const noexcept { return pool_; }

 private:
  bool timeout_, broken_, retryable_, pool_;
};

/// Keeps hiredis's write() from raising SIGPIPE (whose default action ends the process) in this
/// thread while it lives: SIGPIPE is blocked, and one raised meanwhile is consumed, unless one was
/// pending already. A server that closed the connection (FIN: Redis's `timeout`, CLIENT KILL, a
/// restart) answers the first bytes of a command with a reset; a command too large for one write
/// (arguments over kQuietWriteBytes) is then written again, and that write raised SIGPIPE. hiredis
/// 0.14 and 1.x write with write()/send() without MSG_NOSIGNAL. A smaller command is written in one
/// call into an idle socket's buffer: it needs no guard (three system calls on the hot path).
class SigpipeGuard {
 public:
  static constexpr std::size_t kQuietWriteBytes = 4096;
  /// Guards if `bytes` (the command's arguments) is over kQuietWriteBytes.
  explicit SigpipeGuard(std::size_t bytes) noexcept;
  ~SigpipeGuard();
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  bool active_ = false;
  bool was_pending_ = false;
  sigset_t old_{};
};

/// Maps a failure to a Failure: a context error (c->err) when reply is null, else an error reply.
/// `command` names the command (never its arguments), `endpoint` the server; any occurrence of
/// `secret` in a server's text is replaced by "***".
Failure map_error(const redisContext* c, const Reply* reply, std::string_view command,
                  std::string_view endpoint, std::string_view secret);

}  // namespace larder::redis
