// redis/reply.cpp: the one place hiredis error codes become larder errors [redis-plus-plus
// throw_error].
#include "redis/reply.hpp"

#include <fmt/format.h>
#include <pthread.h>

#include <algorithm>
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

// The reader's object functions for Reply (hiredis's own build redisReply). Each attaches the new
// object to its parent array, as hiredis's do; a null return tells the reader "out of memory".
// An array grows as its elements arrive (the reader fills them in order): its announced length is
// the peer's word, and reserving it up front would let 14 bytes ("*200000000\r\n") cost 1.6 GB.
void attach(const redisReadTask* task, Reply* r) {
  if (task->parent == nullptr) return;
  auto& elements = static_cast<Reply*>(task->parent->obj)->elements;
  const auto idx = static_cast<std::size_t>(task->idx);
  if (idx >= elements.size()) elements.resize(idx + 1, nullptr);
  elements[idx] = r;
}
template <class F>
void* make(const redisReadTask* task, F&& fill) noexcept {
  Reply* r = nullptr;
  try {
    r = new Reply;
    r->type = task->type;
    fill(*r);
    attach(task, r);
    return r;
  } catch (...) {
    delete r;
    return nullptr;
  }
}
void* create_string(const redisReadTask* task, char* str, std::size_t len) {
  return make(task, [&](Reply& r) { r.str.assign(str, len); });
}
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
void* create_array(const redisReadTask* task, std::size_t n) {
#else
void* create_array(const redisReadTask* task, int n) {
#endif
  // Room for up to kReserve elements; more as they arrive (see attach).
  constexpr std::size_t kReserve = 1024;
  return make(
      task, [&](Reply& r) { r.elements.reserve(std::min(static_cast<std::size_t>(n), kReserve)); });
}
void* create_integer(const redisReadTask* task, long long v) {
  return make(task, [&](Reply& r) { r.integer = v; });
}
void* create_nil(const redisReadTask* task) {
  // The task's type is that of the nil bulk or array ('$-1', '*-1'); hiredis's own reply says NIL.
  return make(task, [](Reply& r) { r.type = REDIS_REPLY_NIL; });
}
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
// RESP3 only (larder never sends HELLO 3): a double is kept as the text the server sent (its
// parsed value is dropped), a boolean as integer 0 or 1.
void* create_double(const redisReadTask* task, double, char* str, std::size_t len) {
  return make(task, [&](Reply& r) { r.str.assign(str, len); });
}
void* create_bool(const redisReadTask* task, int v) {
  return make(task, [&](Reply& r) { r.integer = v; });
}
#endif
void free_object(void* r) { delete static_cast<Reply*>(r); }

redisReplyObjectFunctions kReplyFunctions = {
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
  create_string,
  create_array,
  create_integer,
  create_double,
  create_nil,
  create_bool,
  free_object,
#else
  create_string,
  create_array,
  create_integer,
  create_nil,
  free_object,
#endif
};

#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
// hiredis 1.x hands RESP3 push replies to the context's push callback, whose default frees them
// with freeReplyObject: wrong for a Reply built by the functions above. larder never sends HELLO 3,
// so no push should arrive; if one does, it is freed as what it is.
void free_push(void*, void* r) { free_object(r); }
#endif

}  // namespace

void use_larder_replies(redisContext* c) noexcept {
  c->reader->fn = &kReplyFunctions;
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
  redisSetPushCallback(c, free_push);
#endif
}

SigpipeGuard::SigpipeGuard(std::size_t bytes) noexcept {
  if (bytes <= kQuietWriteBytes) return;
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
  active_ = pthread_sigmask(SIG_BLOCK, &pipe, &old_) == 0;
}

SigpipeGuard::~SigpipeGuard() {
  if (!active_) return;
  sigset_t pending;
  sigemptyset(&pending);
  if (!was_pending_ && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    const timespec now{};
    while (sigtimedwait(&pipe, nullptr, &now) == -1 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

Failure map_error(const redisContext* c, const Reply* reply, std::string_view command,
                  std::string_view endpoint, std::string_view secret) {
  if (reply != nullptr) {
    // An error reply: the connection itself is fine. Keep the server's text short, scrubbed
    // first: a cut through the secret would leave its first part where scrub cannot see it.
    std::string text = reply->type == REDIS_REPLY_ERROR ? scrub(reply->str, secret)
                                                        : std::string{"unexpected reply type"};
    if (text.size() > 200) text.resize(200);
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
