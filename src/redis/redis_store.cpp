// redis/redis_store.cpp: RedisStore on hiredis.
//
// Call path. A call asks the breaker for admission, borrows a connection from the pool (opening
// one if fewer than pool_size are open), sends one binary-safe argv command and reads its reply
// (both bounded by command_timeout through SO_SNDTIMEO/SO_RCVTIMEO), and returns the connection.
//
// Failure. Any context error (I/O, EOF, timeout, protocol) leaves a hiredis context unusable, so
// the connection is dropped and the next call opens a new one: that is the reconnect. An idle
// pooled connection that the server closed (Redis restarted) is retried once on a fresh
// connection, since every command sent here is idempotent. Each failure feeds the circuit
// breaker: breaker_failures consecutive failures open it; while open, calls fail at once and
// available() is false (Cached then skips Redis); after breaker_cooldown one call probes (half
// open) and its outcome closes or reopens the breaker.
//
// A timeout opens the breaker at once (breaker_trip_on_timeout): a frozen or overloaded Redis then
// costs a Cached call one timeout, not one per command of its miss path (read, lock, write).
//
// Concurrency. The pool is a mutex-guarded stack of idle connections with a condition variable
// for waiters; the breaker and counters are atomics. See docs/redis.md.
//
// Invalidation bus (redis/bus.cpp): PUBLISH through run() like any command; the subscriber opens
// its own connections with open_connection(), outside the pool and the breaker.
//
// Pending invalidations. A DEL (erase) or an invalidation PUBLISH that cannot be sent (breaker
// open, Redis failing) is remembered, up to max_pending_invalidations keys and as many messages,
// and the call throws StoreError saying so. A thread (started by the first one) sends them as soon
// as the breaker admits a call again; until they are sent, every get, get_many, set, erase and
// PUBLISH sends them first, and fails if it cannot: nothing is read past a DEL still pending, and
// no value is written that the DEL would then remove. With none pending that costs one atomic load.
// A thread that cannot be started (std::thread throws) leaves them pending, said in the StoreError
// and logged: the next call sends them first, and the thread is tried again (wake_retrier()).
//
// Pending lock releases. A lock attempt (SET NX) that fails after its command was sent may have
// been applied with its reply lost (a timeout, a closed connection, with no retry or a failed
// one): the lock may be held by its token until its lease ends, and other instances would wait for
// it. So are locks whose unlock failed (breaker open, Redis failing). Such a key and token are
// remembered (up to kMaxPendingUnlocks) and the same thread releases them, with the owner-only
// script, once the breaker admits a call again. The script deletes the key only if it still holds
// that token, which no one else uses, so a release that comes late frees nothing it should not.
// Unlike invalidations, they hold no read or write back.
#include "larder/redis_store.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <new>
#include <numeric>
#include <stdexcept>
#include <thread>
#include <unordered_set>
#include <utility>

#include "larder/clock.hpp"
#include "redis/bus.hpp"
#include "redis/options.hpp"
#include "redis/reply.hpp"

namespace larder {

namespace {

using redis::ContextPtr;
using redis::Failure;
using redis::ReplyPtr;

// Deletes KEYS[1] only if it holds ARGV[1], the owner's token; its SHA1 is what EVALSHA names.
constexpr std::string_view kUnlockScript =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else "
    "return 0 end";
constexpr std::string_view kUnlockSha = "e9f69f2beb755be68b5e456ee2ce9aadfbc4ebf4";

// How long the pending-invalidation thread waits after a failed attempt, and while a probe of
// another call is under way (half-open breaker).
constexpr std::chrono::milliseconds kRetryPause{50};

/// A socket timeout as hiredis takes it. hiredis refuses a connect timeout whose milliseconds
/// overflow a long ("Invalid timeout specified": every connect failed) and polls with an int of
/// milliseconds, so a longer one (milliseconds::max(), a "forever") is cut to INT_MAX ms, 24 days.
timeval to_timeval(std::chrono::milliseconds ms) {
  ms = std::min(ms, std::chrono::milliseconds{std::numeric_limits<int>::max()});
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms.count() % 1000) * 1000);
  return tv;
}

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The steady clock in nanoseconds, as detail::saturating_add takes it.
using SteadyNs = std::chrono::time_point<std::chrono::steady_clock, std::chrono::nanoseconds>;

/// Now + d (d >= 0), saturated: an option too long for the clock (milliseconds::max()) means
/// "never", not a signed overflow into the past.
SteadyNs steady_after(std::chrono::milliseconds d) {
  return detail::saturating_add(
      std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now()), d);
}

/// The longest the pending-invalidation thread sleeps at once (it looks again after it): a wait
/// as long as an absurd breaker_cooldown would overflow the condition variable's deadline.
constexpr std::chrono::nanoseconds kMaxRetryWait = std::chrono::hours{1};

/// The most lock releases remembered at once (see the top of this file): beyond it one is not, and
/// its lock (if it was taken) ends with its lease.
constexpr std::size_t kMaxPendingUnlocks = 4096;

/// The pool's idle list is reserved for this many connections (or pool_size, if fewer) when the
/// store is made; a larger pool's grows as connections open (8 bytes each).
constexpr std::size_t kIdleReserve = 1024;

/// A command's arguments as hiredis wants them, without copying the bytes.
template <std::size_t N>
struct Argv {
  mutable std::array<const char*, N> ptr{};  // hiredis takes const char** (not const)
  std::array<std::size_t, N> len{};
  int n = 0;
  void add(std::string_view s) {
    ptr[static_cast<std::size_t>(n)] = s.data();
    len[static_cast<std::size_t>(n)] = s.size();
    ++n;
  }
};

/// A PX argument Redis accepts: it refuses an expiry past the end of its millisecond clock
/// ("invalid expire time"), so a longer ttl or lease (milliseconds::max(), a "forever") is cut to
/// 100 years, which outlives any deployment.
std::string px_of(std::chrono::milliseconds d) {
  constexpr std::chrono::milliseconds kLongest = std::chrono::hours{24 * 365 * 100};
  return std::to_string(std::min(d, kLongest).count());
}

/// SET key token NX PX lease: a lock attempt (the views must outlive the Argv).
Argv<6> lock_argv(std::string_view key, std::string_view token, std::string_view px) {
  Argv<6> argv;
  argv.add("SET");
  argv.add(key);
  argv.add(token);
  argv.add("NX");
  argv.add("PX");
  argv.add(px);
  return argv;
}

}  // namespace

struct RedisStore::Impl {
  explicit Impl(RedisOptions o) : opts{std::move(o)}, endpoint{redis::endpoint_of(opts)} {
    bus = std::make_unique<redis::Bus>(
        opts, endpoint,
        redis::BusHooks{.connect = [this] { return open_connection(); },
                        .publish = [this](std::string_view channel,
                                          std::string_view message) { publish(channel, message); },
                        .log = [this](LogLevel level,
                                      std::string_view message) { this->log(level, message); }});
    idle.reserve(std::min(opts.pool_size, kIdleReserve));
  }

  ~Impl() {
    stop_retrier();
    bus.reset();  // stops the subscriber thread before anything it uses goes
    std::lock_guard lock{pool_mutex};
    idle.clear();
  }

  RedisOptions opts;
  std::string endpoint;

  // ---- pool
  std::mutex pool_mutex;
  std::condition_variable pool_cv;
  std::vector<ContextPtr> idle;  // its capacity is >= open, so that release() never allocates
  std::size_t open = 0;

  // ---- breaker
  std::atomic<BreakerState> state{BreakerState::closed};
  std::atomic<int> consecutive{0};
  std::atomic<std::int64_t> reopen_at_ns{0};  // steady clock; when an open breaker may probe

  // ---- counters
  std::atomic<std::uint64_t> commands{0}, errors{0}, timeouts{0}, connections{0}, pool_timeouts{0},
      oversize{0}, breaker_opens{0}, short_circuits{0};

  void log(LogLevel level, std::string_view message) const noexcept {
    if (!opts.logger) return;
    try {
      opts.logger(level, message);
    } catch (...) {
      // A throwing logger must not turn a survived failure into a failed call.
    }
  }

  Failure error(const redisContext* c, const redis::Reply* r, std::string_view command) const {
    return redis::map_error(c, r, command, endpoint, opts.password);
  }

  /// Sends one command; throws Failure on a context error or an error reply.
  template <std::size_t N>
  ReplyPtr command(redisContext* c, const Argv<N>& argv, std::string_view name) {
    commands.fetch_add(1, std::memory_order_relaxed);
    std::size_t bytes = 0;
    for (int i = 0; i < argv.n; ++i) bytes += argv.len[static_cast<std::size_t>(i)];
    redis::Reply* raw = nullptr;
    {
      const redis::SigpipeGuard guard{bytes};
      raw =
          static_cast<redis::Reply*>(redisCommandArgv(c, argv.n, argv.ptr.data(), argv.len.data()));
    }
    if (raw == nullptr) throw error(c, nullptr, name);
    ReplyPtr reply{raw};
    if (reply->type == REDIS_REPLY_ERROR) throw error(c, reply.get(), name);
    return reply;
  }

  /// A pooled connection (counted in `connections`).
  ContextPtr connect() {
    ContextPtr c = open_connection();
    connections.fetch_add(1, std::memory_order_relaxed);
    return c;
  }

  /// A new connection: connected, larder replies, command_timeout, AUTH, SELECT. Throws Failure.
  ContextPtr open_connection() {
    const timeval tv = to_timeval(opts.connect_timeout);
    ContextPtr c{opts.unix_socket.empty()
                     ? redisConnectWithTimeout(opts.host.c_str(), opts.port, tv)
                     : redisConnectUnixWithTimeout(opts.unix_socket.c_str(), tv)};
    if (!c || c->err) throw error(c.get(), nullptr, "connect");
    redis::use_larder_replies(c.get());
    if (redisSetTimeout(c.get(), to_timeval(opts.command_timeout)) != REDIS_OK)
      throw error(c.get(), nullptr, "connect");
    if (opts.unix_socket.empty()) redisEnableKeepAlive(c.get());
    if (!opts.password.empty()) {
      Argv<3> auth;
      auth.add("AUTH");
      if (!opts.user.empty()) auth.add(opts.user);
      auth.add(opts.password);
      command(
          c.get(), auth,
          opts.user.empty() ? std::string("AUTH") : fmt::format("AUTH as user '{}'", opts.user));
    }
    if (opts.db != 0) {
      const std::string db = std::to_string(opts.db);
      Argv<2> select;
      select.add("SELECT");
      select.add(db);
      command(c.get(), select, "SELECT " + db);
    }
    return c;
  }

  /// A borrowed connection; reused tells a pooled one from a fresh one.
  struct Lease {
    ContextPtr conn;
    bool reused = false;
  };

  Lease acquire() {
    std::unique_lock lock{pool_mutex};
    const SteadyNs deadline = steady_after(opts.pool_wait_timeout);
    for (;;) {
      if (!idle.empty()) {
        Lease l{std::move(idle.back()), true};
        idle.pop_back();
        return l;
      }
      if (open < opts.pool_size) {
        // Room in idle for every open connection first (already there unless pool_size is over
        // kIdleReserve): release() must not allocate, or a failure there would lose the slot.
        if (idle.capacity() <= open)
          idle.reserve(std::min(opts.pool_size, std::max(open + 1, 2 * idle.capacity())));
        ++open;
        lock.unlock();
        try {
          return Lease{connect(), false};
        } catch (...) {
          lock.lock();
          --open;
          pool_cv.notify_one();
          throw;
        }
      }
      // A deadline at the end of time (pool_wait_timeout too long for the clock): no timeout.
      bool timed_out = false;
      if (deadline == SteadyNs::max())
        pool_cv.wait(lock);
      else
        timed_out = pool_cv.wait_until(lock, deadline) == std::cv_status::timeout;
      if (timed_out && idle.empty() && open >= opts.pool_size) {
        pool_timeouts.fetch_add(1, std::memory_order_relaxed);
        throw Failure{fmt::format("larder::RedisStore: no free connection to {} within {} ms "
                                  "(pool_size {})",
                                  endpoint, opts.pool_wait_timeout.count(), opts.pool_size),
                      false, false, false, true};
      }
    }
  }

  /// Returns a borrowed connection: to idle if healthy, else closed (its slot freed). Never
  /// allocates: idle has room for every open connection (see acquire()); were there none, the
  /// connection would be closed rather than its slot lost.
  void release(ContextPtr conn, bool healthy) noexcept {
    ContextPtr dropped;
    {
      std::lock_guard lock{pool_mutex};
      if (healthy && idle.size() < idle.capacity()) {
        idle.push_back(std::move(conn));
      } else {
        --open;
        dropped = std::move(conn);  // freed outside the lock
      }
    }
    pool_cv.notify_one();
  }

  void drop_idle() noexcept {
    {
      // Freed under the lock (closing a socket does not block): moving them out would take idle's
      // capacity with them, which release() relies on. A rare path: the server closed them.
      std::lock_guard lock{pool_mutex};
      open -= idle.size();
      idle.clear();
    }
    pool_cv.notify_all();
  }

  // ---- breaker

  bool available() const noexcept {
    switch (state.load(std::memory_order_acquire)) {
      case BreakerState::closed:
        return true;
      case BreakerState::open:
        return steady_ns() >= reopen_at_ns.load(std::memory_order_acquire);
      case BreakerState::half_open:
        return false;  // a probe is under way
    }
    return false;
  }

  /// True if a call may go to Redis now. An open breaker past its cool-down admits one probe.
  bool admit() noexcept {
    auto s = state.load(std::memory_order_acquire);
    if (s == BreakerState::closed) return true;
    if (s == BreakerState::open && steady_ns() >= reopen_at_ns.load(std::memory_order_acquire))
      return state.compare_exchange_strong(s, BreakerState::half_open, std::memory_order_acq_rel);
    return false;
  }

  void succeeded() noexcept {
    // Read before writing: on the hot path the line stays shared between threads.
    if (consecutive.load(std::memory_order_relaxed) != 0)
      consecutive.store(0, std::memory_order_relaxed);
    if (state.load(std::memory_order_acquire) != BreakerState::closed) {
      state.store(BreakerState::closed, std::memory_order_release);
      log(LogLevel::info,
          fmt::format("larder::RedisStore: {} answers again; circuit breaker closed", endpoint));
    }
  }

  void failed(const Failure& f) noexcept {
    errors.fetch_add(1, std::memory_order_relaxed);
    if (f.timeout()) timeouts.fetch_add(1, std::memory_order_relaxed);
    const int n = consecutive.fetch_add(1, std::memory_order_acq_rel) + 1;
    auto s = state.load(std::memory_order_acquire);
    const bool probe_failed = s == BreakerState::half_open;
    const bool trip = n >= opts.breaker_failures || (f.timeout() && opts.breaker_trip_on_timeout);
    if (probe_failed || (s == BreakerState::closed && trip)) {
      reopen_at_ns.store(steady_after(opts.breaker_cooldown).time_since_epoch().count(),
                         std::memory_order_release);
      if (state.compare_exchange_strong(s, BreakerState::open, std::memory_order_acq_rel)) {
        breaker_opens.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::error,
            fmt::format("larder::RedisStore: circuit breaker open after {} consecutive failure(s); "
                        "skipping Redis for {} ms (last: {})",
                        n, opts.breaker_cooldown.count(), f.what()));
        return;
      }
    }
    log(LogLevel::warn, f.what());
  }

  /// A call that found no free pooled connection: counted and logged, but the breaker is fed
  /// neither a failure nor a success (the connections' holders will report Redis's state). A probe
  /// that could not probe hands its turn to the next call.
  void contended(const Failure& f) noexcept {
    errors.fetch_add(1, std::memory_order_relaxed);
    auto s = BreakerState::half_open;
    state.compare_exchange_strong(s, BreakerState::open, std::memory_order_acq_rel);
    log(LogLevel::warn, f.what());
  }

  /// Runs f(context) under the breaker and the pool; f returns the call's result.
  template <class F>
  auto run(std::string_view what, F&& f) -> decltype(f(std::declval<redisContext*>())) {
    if (!admit()) {
      short_circuits.fetch_add(1, std::memory_order_relaxed);
      throw StoreError(fmt::format("larder::RedisStore: {} on {} skipped: circuit breaker open",
                                   what, endpoint));
    }
    for (int attempt = 0;; ++attempt) {
      Lease lease;
      try {
        lease = acquire();
        auto result = f(lease.conn.get());
        release(std::move(lease.conn), true);
        succeeded();
        return result;
      } catch (const Failure& e) {
        const bool reused = lease.reused;
        if (lease.conn) release(std::move(lease.conn), !e.broken());
        if (e.retryable() && reused && attempt == 0) {
          // The server closed an idle pooled connection (it restarted): the other idle ones are
          // likely closed too. Drop them all and retry once on a fresh connection.
          drop_idle();
          continue;
        }
        if (e.pool())
          contended(e);
        else
          failed(e);
        throw;
      } catch (...) {  // bad_alloc and the like: drop the connection, keep the breaker honest
        if (lease.conn) release(std::move(lease.conn), false);
        auto s = BreakerState::half_open;
        state.compare_exchange_strong(s, BreakerState::open, std::memory_order_acq_rel);
        throw;
      }
    }
  }

  /// Which of `keys` (full keys of locks) hold `token` now: one MGET. A lock attempt retried on a
  /// fresh connection (run(): the server closed the pooled one) asks it of the keys its SET NX
  /// found held, since the first attempt's SET may have been applied with its reply lost: the
  /// caller would otherwise wait for its own lock until the lease ends. The tokens are unique per
  /// attempt, so a key holding this one is this caller's lock, with the lease it asked for.
  std::vector<bool> held_by(redisContext* c, std::span<const std::string* const> keys,
                            std::string_view token) {
    std::vector<const char*> ptr{"MGET"};
    std::vector<std::size_t> len{4};
    ptr.reserve(keys.size() + 1);
    len.reserve(keys.size() + 1);
    for (const std::string* k : keys) {
      ptr.push_back(k->data());
      len.push_back(k->size());
    }
    commands.fetch_add(1, std::memory_order_relaxed);
    redis::Reply* raw = nullptr;
    {
      const redis::SigpipeGuard guard{std::accumulate(len.begin(), len.end(), std::size_t{0})};
      raw = static_cast<redis::Reply*>(
          redisCommandArgv(c, static_cast<int>(ptr.size()), ptr.data(), len.data()));
    }
    if (raw == nullptr) throw error(c, nullptr, "MGET");
    ReplyPtr reply{raw};
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements.size() != keys.size())
      throw error(c, reply.get(), "MGET");
    std::vector<bool> ours;
    ours.reserve(keys.size());
    for (const redis::Reply* e : reply->elements)
      ours.push_back(e->type == REDIS_REPLY_STRING && e->str == token);
    return ours;
  }

  /// Releases the lock `full` if it holds `token` (the owner-only script); true if it was deleted.
  bool release_lock(redisContext* c, std::string_view full, std::string_view token) {
    Argv<5> argv;
    argv.add("EVALSHA");
    argv.add(kUnlockSha);
    argv.add("1");
    argv.add(full);
    argv.add(token);
    ReplyPtr reply;
    try {
      reply = command(c, argv, "EVALSHA");
    } catch (const Failure& e) {
      // A server that has not seen the script yet (or flushed it) answers NOSCRIPT: send it.
      if (e.broken() || std::string_view{e.what()}.find("NOSCRIPT") == std::string_view::npos)
        throw;
      Argv<5> eval;
      eval.add("EVAL");
      eval.add(kUnlockScript);
      eval.add("1");
      eval.add(full);
      eval.add(token);
      reply = command(c, eval, "EVAL");
    }
    return reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
  }

  std::string full_key(std::string_view key) const {
    std::string k;
    k.reserve(opts.key_prefix.size() + key.size());
    k += opts.key_prefix;
    k += key;
    return k;
  }

  // ---- pending invalidations (see the top of this file)
  std::mutex pending_mutex;                      // guards the two sets; held while they are sent
  std::unordered_set<std::string> pending_keys;  // full keys whose DEL is pending
  std::unordered_set<std::string> pending_messages;  // PUBLISH payloads not yet sent
  std::atomic<bool> pending_any{false};              // either set is non-empty
  std::atomic<std::uint64_t> pending_now{0}, deferred{0}, retried{0}, dropped{0};

  // ---- pending lock releases (see the top of this file)
  struct PendingUnlock {
    std::string key;  // full key of the lock
    std::string token;
  };
  std::mutex unlock_mutex;  // guards pending_unlocks; not held while they are sent
  std::vector<PendingUnlock> pending_unlocks;
  std::atomic<bool> unlocks_any{false};  // pending_unlocks is non-empty
  std::atomic<std::uint64_t> unlocks_now{0}, unlocks_deferred{0}, unlocks_retried{0};

  std::mutex retry_mutex;
  std::condition_variable retry_cv;
  bool retry_stop = false;  // under retry_mutex
  std::thread retrier;      // started by the first deferral; under retry_mutex

  void send_publish(std::string_view channel, std::string_view message) {
    run("PUBLISH", [&](redisContext* c) {
      Argv<3> argv;
      argv.add("PUBLISH");
      argv.add(channel);
      argv.add(message);
      command(c, argv, "PUBLISH");
      return 0;
    });
  }

  /// The bus's PUBLISH: after the pending invalidations; remembered if it cannot be sent.
  void publish(std::string_view channel, std::string_view message) {
    try {
      settle("PUBLISH");
      send_publish(channel, message);
    } catch (const StoreError& e) {
      throw StoreError(defer(message_copy(message), true, e.what()));
    } catch (const std::bad_alloc&) {
      // As erase(): remembered if memory allows, else counted as dropped; the std::bad_alloc goes
      // on.
      defer(message_copy(message), true, "out of memory");
      throw;
    }
  }

  /// A copy of a message to remember; out of memory, counted as dropped (and the std::bad_alloc
  /// goes on).
  std::string message_copy(std::string_view message) {
    try {
      return std::string{message};
    } catch (...) {
      dropped_for_memory();
      throw;
    }
  }

  /// An invalidation that could not be remembered for want of memory: counted as dropped and
  /// logged; the caller's std::bad_alloc goes on (Cached reports it as a store error).
  void dropped_for_memory() noexcept {
    dropped.fetch_add(1, std::memory_order_relaxed);
    log(LogLevel::error,
        "larder::RedisStore: out of memory: an invalidation was NOT applied and will NOT be "
        "retried; the old value stays in Redis until its TTL");
  }

  /// Sends the pending invalidations (one DEL for all the keys, then one PUBLISH per message)
  /// before `what`; throws StoreError, naming `what` as not sent, if they could not all be sent.
  void settle(std::string_view what) {
    if (!pending_any.load(std::memory_order_acquire)) return;
    try {
      send_pending();
    } catch (const StoreError& e) {
      wake_retrier();  // in case it could not be started when they were deferred
      throw StoreError(
          fmt::format("larder::RedisStore: {} on {} not sent: the pending "
                      "invalidations must go first and could not ({})",
                      what, endpoint, e.what()));
    }
  }

  void send_pending() {
    std::lock_guard lock{pending_mutex};
    const std::size_t before = pending_keys.size() + pending_messages.size();
    if (!pending_keys.empty()) {
      std::vector<const char*> ptr{"DEL"};
      std::vector<std::size_t> len{3};
      for (const auto& k : pending_keys) {
        ptr.push_back(k.data());
        len.push_back(k.size());
      }
      run("DEL", [&](redisContext* c) {
        commands.fetch_add(1, std::memory_order_relaxed);
        const redis::SigpipeGuard guard{std::accumulate(len.begin(), len.end(), std::size_t{0})};
        auto* raw = static_cast<redis::Reply*>(
            redisCommandArgv(c, static_cast<int>(ptr.size()), ptr.data(), len.data()));
        if (raw == nullptr) throw error(c, nullptr, "DEL");
        ReplyPtr reply{raw};
        if (reply->type == REDIS_REPLY_ERROR) throw error(c, reply.get(), "DEL");
        return 0;
      });
      retried.fetch_add(pending_keys.size(), std::memory_order_relaxed);
      pending_keys.clear();
      pending_now.store(pending_messages.size(), std::memory_order_relaxed);
    }
    while (!pending_messages.empty()) {
      auto it = pending_messages.begin();
      send_publish(bus->channel(), *it);
      pending_messages.erase(it);
      retried.fetch_add(1, std::memory_order_relaxed);
      pending_now.store(pending_messages.size(), std::memory_order_relaxed);
    }
    pending_any.store(false, std::memory_order_release);
    if (before != 0)
      log(LogLevel::info, fmt::format("larder::RedisStore: {} pending invalidation(s) sent to {}",
                                      before, endpoint));
  }

  /// Remembers a DEL (a full key) or a PUBLISH (`message`) that could not be sent because of
  /// `why`; returns what to throw: it says the invalidation was NOT applied, and whether it will be
  /// retried or was dropped (over max_pending_invalidations). Out of memory it throws
  /// std::bad_alloc: if the item could not be remembered, counted as dropped and logged
  /// (dropped_for_memory()); if only the text could not be made, the item is pending and will be
  /// sent.
  std::string defer(std::string item, bool message, std::string_view why) {
    const std::string_view what = message ? "message" : "DEL";
    std::size_t n = 0;
    {
      std::lock_guard lock{pending_mutex};
      auto& set = message ? pending_messages : pending_keys;
      if (set.size() >= opts.max_pending_invalidations && !set.contains(item)) {
        std::string text;
        try {
          text = fmt::format(
              "{}; the invalidation ({}) was NOT applied and will NOT be retried: {} are pending "
              "already (max_pending_invalidations); the old value stays in Redis until its TTL",
              why, what, set.size());
        } catch (...) {
          dropped_for_memory();
          throw;
        }
        dropped.fetch_add(1, std::memory_order_relaxed);
        log(LogLevel::error, text);
        return text;
      }
      try {
        set.insert(std::move(item));
      } catch (...) {
        dropped_for_memory();
        throw;
      }
      n = pending_keys.size() + pending_messages.size();
      pending_now.store(n, std::memory_order_relaxed);
      pending_any.store(true, std::memory_order_release);
    }
    deferred.fetch_add(1, std::memory_order_relaxed);
    if (!wake_retrier())
      return fmt::format(
          "{}; the invalidation ({}) was NOT applied: it is pending ({} in all) and will be sent "
          "before this store reads or writes anything else (the store's retry thread could not be "
          "started, so not before that call)",
          why, what, n);
    return fmt::format(
        "{}; the invalidation ({}) was NOT applied: it is pending ({} in all) and will be retried "
        "as soon as Redis answers, before this store reads or writes anything else",
        why, what, n);
  }

  /// Remembers that the locks `keys` (full keys) may be held by `token` although this store could
  /// not take or release them (see the top of this file), for the retry thread to release. Never
  /// throws: a lock not remembered (over kMaxPendingUnlocks, no memory) is logged, and ends with
  /// its lease.
  void defer_unlocks(std::span<const std::string* const> keys, std::string_view token) noexcept {
    try {
      std::lock_guard lock{unlock_mutex};
      if (pending_unlocks.size() + keys.size() > kMaxPendingUnlocks) {
        log(LogLevel::warn,
            fmt::format("larder::RedisStore: {} lock release(s) not remembered: {} are pending "
                        "already; each lock, if it was taken, ends with its lease",
                        keys.size(), pending_unlocks.size()));
        return;
      }
      pending_unlocks.reserve(pending_unlocks.size() + keys.size());
      for (const std::string* k : keys) {
        pending_unlocks.push_back({*k, std::string{token}});
        unlocks_now.fetch_add(1, std::memory_order_relaxed);
        unlocks_deferred.fetch_add(1, std::memory_order_relaxed);
      }
      unlocks_any.store(true, std::memory_order_release);
    } catch (...) {
      log(LogLevel::error,
          "larder::RedisStore: out of memory remembering a lock to release: it ends with its "
          "lease");
      std::lock_guard lock{unlock_mutex};
      if (pending_unlocks.empty()) return;  // none of them went in
      unlocks_any.store(true, std::memory_order_release);
    }
    wake_retrier();
  }

  /// Releases the pending locks, one script call each; throws if Redis could not be asked (those
  /// not released stay pending). A release Redis answers with an error is not tried again: logged,
  /// the lock ends with its lease.
  void send_unlocks() {
    std::vector<PendingUnlock> batch;
    {
      std::lock_guard lock{unlock_mutex};
      batch.swap(pending_unlocks);
      unlocks_any.store(false, std::memory_order_release);
    }
    std::size_t done = 0;
    try {
      for (; done < batch.size(); ++done) {
        try {
          run("EVALSHA",
              [&](redisContext* c) { return release_lock(c, batch[done].key, batch[done].token); });
          unlocks_retried.fetch_add(1, std::memory_order_relaxed);
        } catch (const Failure& e) {
          if (e.broken() || e.timeout() || e.pool()) throw;
          log(LogLevel::warn, fmt::format("larder::RedisStore: a lock release refused ({}): the "
                                          "lock, if it was taken, ends with its lease",
                                          e.what()));
        }
        unlocks_now.fetch_sub(1, std::memory_order_relaxed);
      }
    } catch (...) {
      batch.erase(batch.begin(), batch.begin() + static_cast<std::ptrdiff_t>(done));
      std::lock_guard lock{unlock_mutex};
      try {
        if (pending_unlocks.empty())
          pending_unlocks.swap(batch);
        else
          pending_unlocks.insert(pending_unlocks.end(), std::make_move_iterator(batch.begin()),
                                 std::make_move_iterator(batch.end()));
      } catch (...) {
        unlocks_now.fetch_sub(batch.size(), std::memory_order_relaxed);
        log(LogLevel::error,
            "larder::RedisStore: out of memory keeping locks to release: they end with their "
            "lease");
      }
      if (!pending_unlocks.empty()) unlocks_any.store(true, std::memory_order_release);
      throw;
    }
  }

  /// Starts the pending-invalidation thread if it is not running, and wakes it. False if it could
  /// not be started (std::thread threw: no thread left to the process, or no memory): logged, and
  /// what is pending stays pending, sent first by the store's next get, get_many, set, erase or
  /// PUBLISH (settle()); the next deferral, or failed settle(), tries to start the thread again.
  bool wake_retrier() noexcept {
    try {
      std::lock_guard lock{retry_mutex};
      if (retry_stop) return true;  // the store is being destroyed: stop_retrier() reports them
      if (!retrier.joinable()) retrier = std::thread{[this] { retry_loop(); }};
    } catch (const std::exception& e) {
      try {
        log(LogLevel::error,
            fmt::format("larder::RedisStore: the thread that retries pending invalidations on {} "
                        "could not be started ({}); they are sent before this store's next call",
                        endpoint, e.what()));
      } catch (...) {
        log(LogLevel::error,
            "larder::RedisStore: the thread that retries pending invalidations could not be "
            "started; they are sent before this store's next call");
      }
      return false;
    }
    retry_cv.notify_all();
    return true;
  }

  /// The pending-invalidation thread: sends them (and the pending lock releases) once the breaker
  /// admits a call.
  void retry_loop() noexcept {
    std::unique_lock lock{retry_mutex};
    bool failed_last = false;
    auto stopping = [this] { return retry_stop; };
    auto work = [this] {
      return pending_any.load(std::memory_order_acquire) ||
             unlocks_any.load(std::memory_order_acquire);
    };
    while (!retry_stop) {
      if (!work()) {
        retry_cv.wait(lock, [&] { return retry_stop || work(); });
        continue;
      }
      if (failed_last) {
        failed_last = false;
        retry_cv.wait_for(lock, kRetryPause, stopping);
        continue;
      }
      if (!available()) {
        std::chrono::nanoseconds wait{kRetryPause};
        if (state.load(std::memory_order_acquire) == BreakerState::open)
          wait = std::min(std::chrono::nanoseconds{reopen_at_ns.load(std::memory_order_acquire) -
                                                   steady_ns()},
                          kMaxRetryWait) +
                 std::chrono::milliseconds{1};
        retry_cv.wait_for(lock, std::max(wait, std::chrono::nanoseconds{1'000'000}), stopping);
        continue;
      }
      lock.unlock();
      try {
        if (pending_any.load(std::memory_order_acquire)) send_pending();
        if (unlocks_any.load(std::memory_order_acquire)) send_unlocks();
      } catch (...) {
        failed_last = true;  // run() counted and logged it
      }
      lock.lock();
    }
  }

  void stop_retrier() noexcept {
    {
      std::lock_guard lock{retry_mutex};
      retry_stop = true;
    }
    retry_cv.notify_all();
    if (retrier.joinable()) retrier.join();
    if (const auto locks = unlocks_now.load(std::memory_order_relaxed); locks != 0)
      log(LogLevel::warn,
          fmt::format("larder::RedisStore: destroyed with {} lock release(s) never sent to {}: "
                      "each lock, if it was taken, ends with its lease",
                      locks, endpoint));
    std::lock_guard lock{pending_mutex};
    const std::size_t n = pending_keys.size() + pending_messages.size();
    if (n == 0) return;
    dropped.fetch_add(n, std::memory_order_relaxed);
    log(LogLevel::error,
        fmt::format("larder::RedisStore: destroyed with {} invalidation(s) never sent to {}: "
                    "their old values stay in Redis until their TTL",
                    n, endpoint));
  }

  // ---- invalidation bus (last: destroyed first, see ~Impl)
  std::unique_ptr<redis::Bus> bus;
};

RedisStore::RedisStore(RedisOptions options) {
  redis::validate(options);
  impl_ = std::make_unique<Impl>(std::move(options));
}

RedisStore::RedisStore(std::string_view url, RedisOptions base)
    : RedisStore(parse_url(url, std::move(base))) {}

RedisStore::~RedisStore() = default;

const RedisOptions& RedisStore::options() const noexcept { return impl_->opts; }

bool RedisStore::available() const noexcept { return impl_->available(); }

InvalidationBus* RedisStore::invalidation_bus() noexcept { return impl_->bus.get(); }

std::optional<std::string> RedisStore::get(std::string_view key) {
  const bool prefixed = !impl_->opts.key_prefix.empty();
  const std::string full = prefixed ? impl_->full_key(key) : std::string{};
  impl_->settle("GET");
  return impl_->run("GET", [&](redisContext* c) -> std::optional<std::string> {
    Argv<2> argv;
    argv.add("GET");
    argv.add(prefixed ? std::string_view{full} : key);
    auto reply = impl_->command(c, argv, "GET");
    if (reply->type == REDIS_REPLY_NIL) return std::nullopt;
    if (reply->type != REDIS_REPLY_STRING) throw impl_->error(c, reply.get(), "GET");
    return std::move(reply->str);  // built in place by the reader: no copy
  });
}

std::vector<std::optional<std::string>> RedisStore::get_many(std::span<const std::string> keys) {
  if (keys.empty()) return {};
  impl_->settle("MGET");
  std::vector<std::string> full;
  std::vector<const char*> ptr;
  std::vector<std::size_t> len;
  ptr.reserve(keys.size() + 1);
  len.reserve(keys.size() + 1);
  ptr.push_back("MGET");
  len.push_back(4);
  if (!impl_->opts.key_prefix.empty()) {
    full.reserve(keys.size());
    for (const auto& k : keys) full.push_back(impl_->full_key(k));
  }
  for (const auto& k : full.empty() ? keys : std::span<const std::string>{full}) {
    ptr.push_back(k.data());
    len.push_back(k.size());
  }
  return impl_->run("MGET", [&](redisContext* c) {
    impl_->commands.fetch_add(1, std::memory_order_relaxed);
    redis::Reply* raw = nullptr;
    {
      const redis::SigpipeGuard guard{std::accumulate(len.begin(), len.end(), std::size_t{0})};
      raw = static_cast<redis::Reply*>(
          redisCommandArgv(c, static_cast<int>(ptr.size()), ptr.data(), len.data()));
    }
    if (raw == nullptr) throw impl_->error(c, nullptr, "MGET");
    ReplyPtr reply{raw};
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements.size() != keys.size())
      throw impl_->error(c, reply.get(), "MGET");
    std::vector<std::optional<std::string>> out;
    out.reserve(keys.size());
    for (redis::Reply* e : reply->elements) {
      if (e->type == REDIS_REPLY_STRING)
        out.emplace_back(std::move(e->str));
      else
        out.emplace_back(std::nullopt);
    }
    return out;
  });
}

void RedisStore::set(std::string_view key, std::string_view bytes, std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0) throw std::invalid_argument("larder::RedisStore::set: ttl must be > 0");
  if (impl_->opts.max_value_size != 0 && bytes.size() > impl_->opts.max_value_size) {
    impl_->oversize.fetch_add(1, std::memory_order_relaxed);
    std::string msg = fmt::format(
        "larder::RedisStore: value of {} bytes under '{}' not written: over max_value_size ({})",
        bytes.size(), key, impl_->opts.max_value_size);
    impl_->log(LogLevel::warn, msg);
    throw StoreError(msg);
  }
  const std::string full = impl_->full_key(key);
  const std::string px = px_of(ttl);
  impl_->settle("SET");
  impl_->run("SET", [&](redisContext* c) {
    Argv<5> argv;
    argv.add("SET");
    argv.add(full);
    argv.add(bytes);
    argv.add("PX");
    argv.add(px);
    impl_->command(c, argv, "SET");
    return 0;
  });
}

void RedisStore::erase(std::string_view key) {
  std::string full = impl_->full_key(key);
  try {
    impl_->settle("DEL");
    impl_->run("DEL", [&](redisContext* c) {
      Argv<2> argv;
      argv.add("DEL");
      argv.add(full);
      impl_->command(c, argv, "DEL");
      return 0;
    });
  } catch (const StoreError& e) {
    throw StoreError(impl_->defer(std::move(full), false, e.what()));
  } catch (const std::bad_alloc&) {
    // Out of memory during the call (building its error, say): the DEL may not have been applied.
    // Remembered if memory allows (else counted as dropped); the caller gets the std::bad_alloc.
    impl_->defer(std::move(full), false, "out of memory");
    throw;
  }
}

bool RedisStore::try_lock(std::string_view key, std::string_view token,
                          std::chrono::milliseconds lease) {
  if (lease.count() <= 0)
    throw std::invalid_argument("larder::RedisStore::try_lock: lease must be > 0");
  const std::string full = impl_->full_key(key);
  const std::string px = px_of(lease);
  int attempt = 0;
  bool sent = false;
  const std::string* held[] = {&full};
  try {
    return impl_->run("SET NX", [&](redisContext* c) {
      const bool retry = attempt++ != 0;
      const Argv<6> argv = lock_argv(full, token, px);
      sent = true;
      auto reply = impl_->command(c, argv, "SET NX");
      if (reply->type == REDIS_REPLY_STATUS) return true;  // +OK; nil when someone holds it
      // A retry (see run()): the first SET may have been applied and its reply lost.
      return retry && impl_->held_by(c, held, token)[0];
    });
  } catch (...) {
    // Sent, then failed: it may have been applied, its reply lost. Released once Redis answers.
    if (sent) impl_->defer_unlocks(held, token);
    throw;
  }
}

std::vector<bool> RedisStore::try_lock_many(std::span<const std::string> keys,
                                            std::string_view token,
                                            std::chrono::milliseconds lease) {
  if (lease.count() <= 0)
    throw std::invalid_argument("larder::RedisStore::try_lock_many: lease must be > 0");
  if (keys.empty()) return {};
  std::vector<std::string> full;
  full.reserve(keys.size());
  for (const auto& k : keys) full.push_back(impl_->full_key(k));
  const std::string px = px_of(lease);
  int attempt = 0;
  bool sent = false;
  try {
    return impl_->run("SET NX", [&](redisContext* c) {
      const bool retry = attempt++ != 0;
      sent = true;
      for (const auto& k : full) {
        const Argv<6> argv = lock_argv(k, token, px);
        if (redisAppendCommandArgv(c, argv.n, argv.ptr.data(), argv.len.data()) != REDIS_OK)
          throw impl_->error(c, nullptr, "SET NX");
      }
      impl_->commands.fetch_add(full.size(), std::memory_order_relaxed);
      // Every reply is read before any is judged: a connection left with replies unread would hand
      // them to its next command.
      std::vector<ReplyPtr> replies;
      replies.reserve(full.size());
      std::size_t bytes = 0;
      for (const auto& k : full) bytes += k.size() + token.size();
      const redis::SigpipeGuard guard{bytes};  // the first redisGetReply writes them all
      for (std::size_t i = 0; i < full.size(); ++i) {
        void* raw = nullptr;
        if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr)
          throw impl_->error(c, nullptr, "SET NX");
        replies.emplace_back(static_cast<redis::Reply*>(raw));
      }
      std::vector<bool> taken;
      taken.reserve(full.size());
      for (const auto& reply : replies) {
        if (reply->type == REDIS_REPLY_ERROR) throw impl_->error(c, reply.get(), "SET NX");
        taken.push_back(reply->type == REDIS_REPLY_STATUS);  // +OK; nil when someone holds it
      }
      if (retry) {
        // The first pipeline may have been applied and its replies lost (see run()): a key found
        // held may be held by this token.
        std::vector<const std::string*> refused;
        for (std::size_t i = 0; i < full.size(); ++i)
          if (!taken[i]) refused.push_back(&full[i]);
        if (!refused.empty()) {
          const std::vector<bool> ours = impl_->held_by(c, refused, token);
          for (std::size_t i = 0, j = 0; i < full.size(); ++i)
            if (!taken[i]) taken[i] = ours[j++];
        }
      }
      return taken;
    });
  } catch (...) {
    // Sent, then failed: some may have been applied, their replies lost. Released once Redis
    // answers.
    if (sent) {
      try {
        std::vector<const std::string*> keys;
        keys.reserve(full.size());
        for (const auto& k : full) keys.push_back(&k);
        impl_->defer_unlocks(keys, token);
      } catch (...) {
        impl_->log(LogLevel::error,
                   "larder::RedisStore: out of memory remembering locks to release: they end "
                   "with their lease");
      }
    }
    throw;
  }
}

bool RedisStore::unlock(std::string_view key, std::string_view token) {
  const std::string full = impl_->full_key(key);
  const std::string* held[] = {&full};
  try {
    return impl_->run("EVALSHA",
                      [&](redisContext* c) { return impl_->release_lock(c, full, token); });
  } catch (const StoreError& e) {
    // The lock stays held until its lease ends, unless released later: once Redis answers.
    impl_->defer_unlocks(held, token);
    throw StoreError(fmt::format(
        "{}; the lock's release is retried as soon as Redis answers (else its lease ends it)",
        e.what()));
  } catch (...) {
    impl_->defer_unlocks(held, token);
    throw;
  }
}

void RedisStore::ping() {
  impl_->run("PING", [&](redisContext* c) {
    Argv<1> argv;
    argv.add("PING");
    impl_->command(c, argv, "PING");
    return 0;
  });
}

RedisStats RedisStore::stats() const noexcept {
  const auto& i = *impl_;
  RedisStats s;
  s.commands = i.commands.load(std::memory_order_relaxed);
  s.errors = i.errors.load(std::memory_order_relaxed);
  s.timeouts = i.timeouts.load(std::memory_order_relaxed);
  s.connections = i.connections.load(std::memory_order_relaxed);
  s.pool_timeouts = i.pool_timeouts.load(std::memory_order_relaxed);
  s.oversize = i.oversize.load(std::memory_order_relaxed);
  s.breaker_opens = i.breaker_opens.load(std::memory_order_relaxed);
  s.short_circuits = i.short_circuits.load(std::memory_order_relaxed);
  s.breaker = i.state.load(std::memory_order_acquire);
  s.invalidations_pending = i.pending_now.load(std::memory_order_relaxed);
  s.invalidations_deferred = i.deferred.load(std::memory_order_relaxed);
  s.invalidations_retried = i.retried.load(std::memory_order_relaxed);
  s.invalidations_dropped = i.dropped.load(std::memory_order_relaxed);
  s.lock_releases_pending = i.unlocks_now.load(std::memory_order_relaxed);
  s.lock_releases_deferred = i.unlocks_deferred.load(std::memory_order_relaxed);
  s.lock_releases_retried = i.unlocks_retried.load(std::memory_order_relaxed);
  i.bus->stats(s);
  return s;
}

}  // namespace larder
