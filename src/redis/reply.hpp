// redis/reply.hpp (internal): owning handles for hiredis objects and the one function that maps
// every hiredis failure to a StoreError.
#pragma once

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <string_view>

#include "larder/error.hpp"

namespace larder::redis {

struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

/// A StoreError that also says what the pool must do with the connection.
class Failure : public StoreError {
 public:
  Failure(const std::string& what, bool timeout, bool broken, bool retryable)
      : StoreError(what), timeout_{timeout}, broken_{broken}, retryable_{retryable} {}
  /// A connect or command timeout.
  bool timeout() const noexcept { return timeout_; }
  /// The connection is unusable (hiredis context error): drop it.
  bool broken() const noexcept { return broken_; }
  /// The peer closed or reset an idle pooled connection (e.g. Redis restarted): one retry on a
  /// fresh connection is safe, since every command larder sends is idempotent.
  bool retryable() const noexcept { return retryable_; }

 private:
  bool timeout_, broken_, retryable_;
};

/// Maps a failure to a Failure: a context error (c->err) when reply is null, else an error reply.
/// `command` names the command (never its arguments), `endpoint` the server; any occurrence of
/// `secret` in a server's text is replaced by "***".
Failure map_error(const redisContext* c, const redisReply* reply, std::string_view command,
                  std::string_view endpoint, std::string_view secret);

}  // namespace larder::redis
