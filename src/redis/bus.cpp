// redis/bus.cpp: RedisStore's invalidation bus on Redis PUBLISH/SUBSCRIBE.
//
// Publishing is one PUBLISH through the store's pool and breaker. Receiving is a thread with a
// connection of its own, started by the first subscribe(): it SUBSCRIBEs, then waits for messages
// with poll() in 100 ms slices (so a stop request is seen within 100 ms, and a timeout never
// breaks the hiredis context), and hands each message to the listeners of its namespace.
//
// Pub/sub is at most once: a message published while the subscriber is not subscribed is lost.
// So after every successful SUBSCRIBE (the first one included: a listener may have filled its L1
// before it) the bus flushes every listener's namespace. A lost connection is retried with a
// jittered exponential backoff from 20 ms up to breaker_cooldown.
#include "redis/bus.hpp"

#include <fmt/format.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <random>

#include "larder/clock.hpp"

namespace larder::redis {

namespace {

constexpr std::string_view kMagic = "LRI1";
constexpr int kPollMs = 100;  // how often a waiting subscriber looks at the stop flag
constexpr std::chrono::milliseconds kFirstBackoff{20};

std::uint64_t random_instance() {
  std::random_device rd;
  std::uint64_t id = 0;
  while (id == 0) id = (std::uint64_t{rd()} << 32) ^ rd();
  return id;
}

bool hex16(std::string_view text, std::uint64_t& out) noexcept {
  if (text.size() != 16) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, 16);
  return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

std::string BusMessage::encode() const {
  return fmt::format("{} {:016x} {:016x} {:016x} {:016x} {}", kMagic, instance, origin, hash_check,
                     hash, name);
}

std::optional<BusMessage> BusMessage::decode(std::string_view text) noexcept {
  // "LRI1" + 4 x (" " + 16 hex) + " " + name
  constexpr std::size_t kFixed = 4 + 4 * 17 + 1;
  if (text.size() <= kFixed || !text.starts_with(kMagic)) return std::nullopt;
  BusMessage m;
  std::uint64_t* fields[] = {&m.instance, &m.origin, &m.hash_check, &m.hash};
  std::size_t pos = kMagic.size();
  for (std::uint64_t* f : fields) {
    if (text[pos] != ' ' || !hex16(text.substr(pos + 1, 16), *f)) return std::nullopt;
    pos += 17;
  }
  if (text[pos] != ' ') return std::nullopt;
  m.name = text.substr(pos + 1);
  return m;
}

Bus::Bus(const RedisOptions& options, std::string endpoint, BusHooks hooks)
    : opts_{options},
      endpoint_{std::move(endpoint)},
      channel_{fmt::format("{}larder:invalidate:{}", options.key_prefix, options.db)},
      hooks_{std::move(hooks)},
      instance_{random_instance()} {}

Bus::~Bus() {
  {
    std::lock_guard lock{thread_mutex_};
    stopping_ = true;
    stop_.store(true, std::memory_order_release);
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::uint64_t Bus::subscribe(Listener listener) {
  std::uint64_t id = 0;
  {
    std::lock_guard lock{listeners_mutex_};
    id = next_id_++;
    listeners_.emplace_back(id, std::move(listener));
  }
  try {
    std::lock_guard lock{thread_mutex_};
    if (!thread_.joinable() && !stopping_) thread_ = std::thread{[this] { run(); }};
  } catch (...) {
    unsubscribe(id);  // no subscriber: the listener would never hear of an invalidation
    throw;
  }
  return id;
}

void Bus::unsubscribe(std::uint64_t id) noexcept {
  // Waits for a callback under way: deliver() and flush_all() hold this mutex while they call.
  std::lock_guard lock{listeners_mutex_};
  std::erase_if(listeners_, [id](const auto& l) { return l.first == id; });
}

void Bus::publish(std::string_view name, std::uint64_t hash_check, std::uint64_t hash,
                  std::uint64_t origin) {
  const BusMessage m{instance_, origin, hash_check, hash, name};
  hooks_.publish(channel_, m.encode());
  published_.fetch_add(1, std::memory_order_relaxed);
}

void Bus::stats(RedisStats& s) const noexcept {
  s.invalidations_published = published_.load(std::memory_order_relaxed);
  s.invalidations_received = received_.load(std::memory_order_acquire);
  s.bus_subscriptions = subscriptions_.load(std::memory_order_acquire);
  s.bus_errors = errors_.load(std::memory_order_relaxed);
  s.bus_subscribed = subscribed_.load(std::memory_order_acquire);
}

bool Bus::pause(std::chrono::milliseconds d) {
  std::unique_lock lock{thread_mutex_};
  const auto stopping = [this] { return stopping_; };
  // Not wait_for: it adds d to now unchecked (a backoff as long as an absurd breaker_cooldown
  // would overflow); a deadline at the end of time waits for the stop request alone.
  using SteadyNs = std::chrono::time_point<std::chrono::steady_clock, std::chrono::nanoseconds>;
  const SteadyNs deadline = detail::saturating_add(
      std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now()), d);
  if (deadline == SteadyNs::max()) {
    stop_cv_.wait(lock, stopping);
    return false;
  }
  return !stop_cv_.wait_until(lock, deadline, stopping);
}

void Bus::run() noexcept {
  std::mt19937_64 rng{instance_};
  auto backoff = kFirstBackoff;
  const auto max_backoff = std::max(opts_.breaker_cooldown, kFirstBackoff);
  bool failing = false;  // log the first failure of a streak as a warning, the others as debug
  // After a failure: wait a random time in [backoff/2, backoff], then double the backoff.
  auto wait = [&] {
    const auto half = backoff.count() / 2;
    const auto d = std::chrono::milliseconds{
        half + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(half + 1))};
    backoff = backoff > max_backoff / 2 ? max_backoff : backoff * 2;  // no overflow
    return pause(d);
  };
  auto fail = [&](std::string_view what) {
    errors_.fetch_add(1, std::memory_order_relaxed);
    try {
      hooks_.log(failing ? LogLevel::debug : LogLevel::warn,
                 fmt::format("larder::RedisStore: invalidation subscriber on {}: {}; retrying "
                             "(L1 entries are flushed once subscribed again)",
                             endpoint_, what));
    } catch (...) {
    }
    failing = true;
  };
  while (!stop_.load(std::memory_order_acquire)) {
    ContextPtr c;
    try {
      c = hooks_.connect();
      Reply* raw = nullptr;
      {
        const char* argv[] = {"SUBSCRIBE", channel_.c_str()};
        const std::size_t len[] = {9, channel_.size()};
        raw = static_cast<Reply*>(redisCommandArgv(c.get(), 2, argv, len));
      }
      if (raw == nullptr) throw map_error(c.get(), nullptr, "SUBSCRIBE", endpoint_, opts_.password);
      ReplyPtr reply{raw};
      if (reply->type != REDIS_REPLY_ARRAY || reply->elements.size() != 3 ||
          reply->elements[0]->str != "subscribe")
        throw map_error(c.get(), reply.get(), "SUBSCRIBE", endpoint_, opts_.password);
    } catch (const std::exception& e) {
      c.reset();
      fail(e.what());
      if (!wait()) break;
      continue;
    }
    // Messages published before this subscription took effect are lost: drop what they might
    // have invalidated. Entries filled from now on are covered by the messages that follow.
    flush_all();
    // Counted once flushed: whoever sees the count also sees the entries gone.
    subscriptions_.fetch_add(1, std::memory_order_release);
    subscribed_.store(true, std::memory_order_release);
    if (failing) {
      try {
        hooks_.log(LogLevel::info,
                   fmt::format("larder::RedisStore: invalidation subscriber on {} subscribed "
                               "again; L1 of the registered functions flushed",
                               endpoint_));
      } catch (...) {
      }
    }
    failing = false;
    backoff = kFirstBackoff;
    std::string why;
    try {
      why = listen(c.get());
    } catch (const std::exception& e) {
      why = e.what();
    }
    subscribed_.store(false, std::memory_order_release);
    c.reset();
    if (stop_.load(std::memory_order_acquire)) break;
    fail(fmt::format("connection lost ({})", why));
    if (!wait()) break;
  }
  subscribed_.store(false, std::memory_order_release);
}

std::string Bus::listen(redisContext* c) {
  for (;;) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(c, &raw) != REDIS_OK) return "protocol error";
    if (raw != nullptr) {
      ReplyPtr reply{static_cast<Reply*>(raw)};
      // ["message", channel, payload]; other pushes (subscribe confirmations) are ignored.
      if (reply->type == REDIS_REPLY_ARRAY && reply->elements.size() == 3 &&
          reply->elements[0]->str == "message" && reply->elements[2]->type == REDIS_REPLY_STRING)
        deliver(reply->elements[2]->str);
      continue;
    }
    if (stop_.load(std::memory_order_acquire)) return {};
    pollfd p{};
    p.fd = c->fd;
    p.events = POLLIN;
    const int n = ::poll(&p, 1, kPollMs);
    if (n < 0) {
      if (errno == EINTR) continue;
      return "poll failed";
    }
    if (n == 0) continue;
    // Readable (or closed): one read() that does not block; EOF and errors fail the context.
    if (redisBufferRead(c) != REDIS_OK) return c->errstr;
  }
}

void Bus::deliver(std::string_view payload) {
  const auto m = BusMessage::decode(payload);
  if (!m) {
    try {
      hooks_.log(LogLevel::debug,
                 fmt::format("larder::RedisStore: ignored a malformed message on {}", channel_));
    } catch (...) {
    }
    return;
  }
  const bool ours = m->instance == instance_;
  std::lock_guard lock{listeners_mutex_};
  for (auto& [id, l] : listeners_) {
    if (l.name != m->name || (ours && id == m->origin)) continue;
    try {
      if (l.hash_check == m->hash_check) {
        l.erase(m->hash);
      } else {
        l.flush();  // another hash function: the hash says nothing here
      }
    } catch (...) {
      // A listener that cannot drop its entry must not stop the others (nor the thread).
    }
  }
  // Counted once applied: whoever sees the count also sees the entries gone.
  if (!ours) received_.fetch_add(1, std::memory_order_release);
}

void Bus::flush_all() {
  std::lock_guard lock{listeners_mutex_};
  for (auto& [id, l] : listeners_) {
    try {
      l.flush();
    } catch (...) {
    }
  }
}

}  // namespace larder::redis
