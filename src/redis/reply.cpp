// redis/reply.cpp: the one place hiredis error codes become larder errors [redis-plus-plus
// throw_error].
#include "redis/reply.hpp"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

namespace larder::redis {

namespace {

std::string scrub(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3))
    text.replace(pos, secret.size(), "***");
  return text;
}

bool contains(std::string_view text, int err) { return text.find(std::strerror(err)) != text.npos; }

}  // namespace

Failure map_error(const redisContext* c, const redisReply* reply, std::string_view command,
                  std::string_view endpoint, std::string_view secret) {
  if (reply != nullptr) {
    // An error reply: the connection itself is fine. Keep the server's text short.
    std::string_view text = reply->type == REDIS_REPLY_ERROR
                                ? std::string_view{reply->str, reply->len}
                                : std::string_view{"unexpected reply type"};
    if (text.size() > 200) text = text.substr(0, 200);
    return Failure{
        scrub(fmt::format("larder::RedisStore: {} on {} failed: {}", command, endpoint, text),
              secret),
        false, false, false};
  }
  if (c == nullptr)
    return Failure{fmt::format("larder::RedisStore: {} on {}: out of memory", command, endpoint),
                   false, true, false};
  const std::string_view errstr{c->errstr};
  bool timeout = false;
  bool retryable = false;
  std::string_view kind = "I/O error";
  switch (c->err) {
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
    case REDIS_ERR_TIMEOUT:
      timeout = true;
      kind = "timed out";
      break;
#endif
    case REDIS_ERR_IO:
      // hiredis 0.14 has no REDIS_ERR_TIMEOUT: REDIS_ERR_IO with EAGAIN (SO_RCVTIMEO ran out) or
      // ETIMEDOUT (connect's poll ran out) means a timeout.
      if (contains(errstr, EAGAIN) || contains(errstr, EWOULDBLOCK) ||
          contains(errstr, ETIMEDOUT)) {
        timeout = true;
        kind = "timed out";
      } else if (contains(errstr, ECONNRESET) || contains(errstr, EPIPE)) {
        retryable = true;
      }
      break;
    case REDIS_ERR_EOF:
      retryable = true;
      kind = "connection closed";
      break;
    case REDIS_ERR_PROTOCOL:
      kind = "protocol error";
      break;
    case REDIS_ERR_OOM:
      kind = "out of memory";
      break;
    default:
      kind = "error";
      break;
  }
  return Failure{
      scrub(fmt::format("larder::RedisStore: {} on {}: {} ({})", command, endpoint, kind, errstr),
            secret),
      timeout, true, retryable};
}

}  // namespace larder::redis
