// cached.hpp: larder::Cached, the front door: memoizes a slow per-entity function in one line.
// Thread-safe: every member may be called concurrently. See docs/design.md for the call path.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "larder/clock.hpp"
#include "larder/codec.hpp"
#include "larder/detail/envelope.hpp"
#include "larder/detail/fn_traits.hpp"
#include "larder/detail/hash.hpp"
#include "larder/detail/held_args.hpp"
#include "larder/detail/key_codec.hpp"
#include "larder/detail/single_flight.hpp"
#include "larder/detail/striped_counter.hpp"
#include "larder/detail/write_fence.hpp"
#include "larder/error.hpp"
#include "larder/executor.hpp"
#include "larder/key.hpp"
#include "larder/memory_store.hpp"
#include "larder/options.hpp"
#include "larder/result.hpp"
#include "larder/stats.hpp"
#include "larder/store.hpp"

namespace larder {

namespace detail {

/// Validates Options and the names; throws std::invalid_argument naming the field.
inline void validate(const Options& o, std::string_view cls, std::string_view fn) {
  auto bad = [](const std::string& what) {
    throw std::invalid_argument("larder::Options: " + what);
  };
  using std::chrono::milliseconds;
  if (o.ttl <= milliseconds{0}) bad(fmt::format("ttl must be > 0 (got {} ms)", o.ttl.count()));
  if (o.fresh_for < milliseconds{0})
    bad(fmt::format("fresh_for must be >= 0 (got {} ms)", o.fresh_for.count()));
  if (o.fresh_for > o.ttl)
    bad(fmt::format("fresh_for ({} ms) must not exceed ttl ({} ms)", o.fresh_for.count(),
                    o.ttl.count()));
  if (!(o.jitter >= 0.0 && o.jitter <= 0.5))
    bad(fmt::format("jitter must be in [0, 0.5] (got {})", o.jitter));
  if (o.stale_if_error < milliseconds{0})
    bad(fmt::format("stale_if_error must be >= 0 (got {} ms)", o.stale_if_error.count()));
  if (o.cold_wait <= milliseconds{0})
    bad(fmt::format("cold_wait must be > 0 (got {} ms)", o.cold_wait.count()));
  if (o.lock_lease <= milliseconds{0})
    bad(fmt::format("lock_lease must be > 0 (got {} ms)", o.lock_lease.count()));
  if (o.lock_poll <= milliseconds{0})
    bad(fmt::format("lock_poll must be > 0 (got {} ms)", o.lock_poll.count()));
  if (!valid_name(o.prefix))
    bad("prefix must be 1-64 characters of letters, digits, '_', '-' or '.' (got '" + o.prefix +
        "')");
  if (o.max_key_length < 64)
    bad(fmt::format("max_key_length must be >= 64 (got {})", o.max_key_length));
  if (!valid_name(cls))
    throw std::invalid_argument(
        "larder::Cached: the class name must be 1-64 characters of letters, "
        "digits, '_', '-' or '.' (got '" +
        std::string(cls) + "')");
  if (!valid_name(fn))
    throw std::invalid_argument(
        "larder::Cached: the function name must be 1-64 characters of "
        "letters, digits, '_', '-' or '.' (got '" +
        std::string(fn) + "')");
}

/// A random 128-bit token: the owner tag of a cross-process lock.
inline std::string lock_token() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   std::hash<std::thread::id>{}(std::this_thread::get_id())};
  return fmt::format("{:016x}{:016x}", rng(), rng());
}

/// Whether a call with arguments U... of a function taking A... (as a std::tuple) gives a char
/// pointer to a std::string or std::string_view parameter, and converts implicitly otherwise: the
/// call overloads of Cached and Rehydrated that check it for null before converting.
template <class Params, class... U>
struct converts_c_string : std::false_type {};
template <class... A, class... U>
requires(sizeof...(A) == sizeof...(U)) struct converts_c_string<std::tuple<A...>, U...>
    : std::bool_constant<(string_from_c_string_v<A, U> || ...) &&
                         (std::is_convertible_v<const U&, param_t<A>> && ...)> {
};

}  // namespace detail

template <class Fn, class Sig = detail::signature_t<Fn>>
class Cached;

/// Memoizes fn per argument list. The first argument is the entity (its id ends the key); the
/// others are params. For a const member function pointer, the object is the entity.
///
/// A call returns fn(args...), computing it at most once per key at a time across threads (and
/// across processes when the store is shared) while the entry lives. A fresh hit costs a hash
/// lookup and copies nothing. A stale entry is served while exactly one caller (or a background
/// task) recomputes. If fn throws, nothing is stored, every waiter gets the exception, and the next
/// call tries again. If the store fails, the failure is counted and reported to Options::on_error,
/// and fn runs anyway: a cache failure never fails the call.
///
/// Example:
///   larder::MemoryStore store;
///   larder::Cached top_book_ids{store, "Author", "top_book_ids", &compute_top_book_ids,
///                               {.ttl = 24h, .fresh_for = 1h}};
///   std::vector<std::int64_t> ids = top_book_ids(author, 10);  // computes once, then hits
template <class Fn, class R, class... A>
class Cached<Fn, detail::Signature<R, A...>> {
  static_assert(sizeof...(A) >= 1,
                "larder::Cached: the function needs at least one argument, the entity whose id "
                "ends the cache key");
  static_assert(!std::is_void_v<R>,
                "larder::Cached: a function returning void has nothing to cache");
  static_assert(((!std::is_lvalue_reference_v<A> ||
                  std::is_const_v<std::remove_reference_t<A>>)&&...),
                "larder::Cached: arguments are passed as const; the function must not take a "
                "non-const reference");

  /// Calls with arguments U... that the null-checking overloads below take.
  template <class... U>
  static constexpr bool c_string_call = detail::converts_c_string<std::tuple<A...>, U...>::value;

 public:
  using value_type = std::remove_cvref_t<R>;
  using result_type = Result<value_type>;

  Cached(Store& store, std::string_view class_name, std::string_view function_name, Fn fn,
         Options options = {})
      : Cached{store, class_name, function_name, std::move(fn), std::move(options), codec_ops()} {}

  /// The same over the in-memory store alone, which never encodes a value: the byte tier's codec
  /// is not compiled (for the default codec, nlohmann_json's parser and serializer: about a
  /// quarter of the compile time of a file with one Cached, docs/design.md, Compile time).
  Cached(MemoryStore& store, std::string_view class_name, std::string_view function_name, Fn fn,
         Options options = {})
      : Cached{store, class_name, function_name, std::move(fn), std::move(options), CodecOps{}} {}

 private:
  /// How this Cached encodes and decodes values for a byte tier: Codec<value_type>, through
  /// pointers set only by the constructor that may meet a byte tier, so that a Cached made over
  /// a MemoryStore does not instantiate the codec. Null in a Cached made over a MemoryStore, and
  /// for a value type without a codec (which a byte tier refuses at construction).
  struct CodecOps {
    std::string (*encode)(const value_type&) = nullptr;
    std::shared_ptr<const value_type> (*decode)(std::string_view) = nullptr;
  };
  static CodecOps codec_ops() {
    if constexpr (Encodable<value_type>) {
      return {[](const value_type& v) -> std::string { return Codec<value_type>::encode(v); },
              [](std::string_view b) -> std::shared_ptr<const value_type> {
                return std::make_shared<const value_type>(Codec<value_type>::decode(b));
              }};
    } else {
      return {};
    }
  }

  Cached(Store& store, std::string_view class_name, std::string_view function_name, Fn fn,
         Options options, CodecOps codec)
      : fn_{std::move(fn)}, opts_{std::move(options)}, store_{&store}, codec_{codec} {
    detail::validate(opts_, class_name, function_name);
    clock_ = opts_.clock ? opts_.clock : &SystemClock::instance();
    system_clock_ = clock_ == &SystemClock::instance();
    executor_ = opts_.executor;
    mem_ = store.memory_tier();
    bytes_ = store.byte_tier();
    if (!mem_ && !bytes_)
      throw std::invalid_argument("larder::Cached: the store has neither a memory nor a byte tier");
    head_ =
        fmt::format("{}:v{}:{}:{}:", opts_.prefix, opts_.schema_version, class_name, function_name);
    // The longest key is the head and a hashed tail: if that cannot fit, no bound holds.
    if (head_.size() + detail::kHashTailSize > opts_.max_key_length)
      throw std::invalid_argument(fmt::format(
          "larder::Options: max_key_length ({}) is too short for '{}': the prefix, schema, "
          "class and function take {} bytes and a hashed tail {} more; raise max_key_length to "
          "at least {} or shorten the names",
          opts_.max_key_length, head_, head_.size(), detail::kHashTailSize,
          head_.size() + detail::kHashTailSize));
    seed_ = detail::hash_bytes(head_);
    if (mem_) ns_ = mem_->template namespace_id<Key, value_type>(head_);
    if constexpr (Encodable<value_type>) {
      if constexpr (requires { Codec<value_type>::version; }) {
        fingerprint_ = detail::hash_combine(seed_, Codec<value_type>::version);
      } else {
        fingerprint_ = seed_;
      }
      fingerprint_ = detail::hash_combine(
          fingerprint_, detail::hash_bytes(std::string_view{Codec<value_type>::name}));
      fingerprint_ =
          detail::hash_combine(fingerprint_, detail::hash_bytes(typeid(value_type).name()));
    }
    if (bytes_ && codec_.decode == nullptr) {
      throw std::invalid_argument(
          "larder::Cached: '" + head_ +
          "' uses a byte store (Redis) but its result type has no larder::Codec: give it "
          "to_json/from_json or specialize larder::Codec");
    }
    // Last, so that nothing after it throws: invalidate() and refresh() publish on the store's
    // bus, and, with a memory tier, this function drops what other instances invalidate.
    bus_ = store.invalidation_bus();
    if (bus_) {
      // A fixed key's hash: instances agree on key hashes only where they agree on this.
      hash_check_ = hash_of(std::int64_t{0x6c61726465720001}, std::string_view{"larder"}, 0.5);
      if (mem_)
        bus_id_ = bus_->subscribe(InvalidationBus::Listener{
            head_, hash_check_, [this](std::uint64_t h) { drop_hash(h); }, [this] { drop_all(); }});
    }
  }

 public:
  Cached(const Cached&) = delete;
  Cached& operator=(const Cached&) = delete;

  /// Leaves the store's invalidation bus (no callback of it runs after this), then waits for this
  /// function's background refreshes: until the executor has run (or dropped) and destroyed each.
  ~Cached() {
    if (bus_id_ != 0) bus_->unsubscribe(bus_id_);
    std::unique_lock lock{background_mutex_};
    background_cv_.wait(lock, [this] { return background_pending_ == 0; });
  }

  /// Returns fn(args...), from the cache when it holds a usable entry. Throws what fn throws
  /// (nothing is cached then) and ColdCacheError per Options::on_cold; never a store's error.
  /// A null char pointer argument (to a const char*, std::string or std::string_view parameter,
  /// or within a range) throws std::invalid_argument before anything is looked up or computed.
  result_type operator()(detail::param_t<A>... args) {
    return with_parts(
        [&](const auto& id, const auto&... params) -> result_type {
          const std::uint64_t h = hash_of(id, params...);
          const TimePoint now = clock_now();
          if (mem_) {
            Probe probe = probe_memory(h, now, id, params...);
            if (probe.value) {
              hits_.add();
              return result_type{std::move(*probe.value), Source::memory, false, probe.written,
                                 now};
            }
            if (probe.stale)
              return on_stale_probe(h, now, std::forward_as_tuple(id, params...), args...);
          }
          return on_miss(make_call(h, id, params...), now, args...);
        },
        args...);
  }

  /// The calls above, key(), invalidate() and refresh() given a char pointer for a std::string or
  /// std::string_view parameter: converting a null one is undefined (std::string throws
  /// std::logic_error), and happens before the member runs, so these overloads take the pointers
  /// as they are, throw std::invalid_argument for a null one, then convert.
  template <class... U>
  requires(c_string_call<U...>) result_type operator()(const U&... args) {
    detail::check_c_string_args<A...>(1, args...);
    return (*this)(static_cast<detail::param_t<A>>(args)...);
  }
  template <class... U>
  requires(c_string_call<U...>) std::string key(const U&... args)
  const {
    detail::check_c_string_args<A...>(1, args...);
    return key(static_cast<detail::param_t<A>>(args)...);
  }
  template <class... U>
  requires(c_string_call<U...>) void invalidate(const U&... args) {
    detail::check_c_string_args<A...>(1, args...);
    invalidate(static_cast<detail::param_t<A>>(args)...);
  }
  template <class... U>
  requires(c_string_call<U...>) result_type refresh(const U&... args) {
    detail::check_c_string_args<A...>(1, args...);
    return refresh(static_cast<detail::param_t<A>>(args)...);
  }

  /// The rendered key of a call, e.g. "larder:v1:Author:top_book_ids:10:42".
  std::string key(detail::param_t<A>... args) const {
    return with_parts([&](const auto& id, const auto&... params) { return render(id, params...); },
                      args...);
  }

  /// Drops the entry from every tier, and, when the store has an invalidation bus (TieredStore
  /// over RedisStore), from the other instances' memory tiers (a failed publish is counted as a
  /// store error, never thrown).
  ///
  /// A computation of the key already under way (it may have read the data before the write that
  /// prompted this call) stores nothing: its result goes only to the calls that were waiting for
  /// it before. A call that begins after invalidate() returns is not answered with it: if it
  /// finds that computation under way, it waits for it to end (one computation per key at a time)
  /// and then computes. (Across instances the same holds once the bus message arrives: a
  /// computation that stored its value before then is dropped from the other memory tiers by the
  /// message, but may stay in the shared tier.)
  void invalidate(detail::param_t<A>... args) {
    with_parts(
        [&](const auto& id, const auto&... params) {
          Call call = make_call(hash_of(id, params...), id, params...);
          fence_.invalidate(call.hash);  // first: see detail/write_fence.hpp
          erase_everywhere(call);
          broadcast(call);
        },
        args...);
  }

  /// Computes fn(args...) now, skipping the cache, and stores the result. If another computation of
  /// this key is under way, waits for it to end first, so the value stored was computed after this
  /// call began. Throws what fn throws (the entry is then left as it was). Once stored, the other
  /// instances are told to drop their memory copy (as invalidate() does), so they read the new one.
  /// If the new value cannot be written to the shared tier, the old one is deleted there instead
  /// (RedisStore retries that DEL until Redis answers), counted and reported as a store error.
  result_type refresh(detail::param_t<A>... args) {
    return with_parts(
        [&](const auto& id, const auto&... params) -> result_type {
          Call call = make_call(hash_of(id, params...), id, params...);
          for (;;) {
            // Taken anew each time: an invalidate() while it waited for another computation is
            // older than its own, and must not refuse its store.
            call.ticket = fence_.ticket(call.hash);
            auto ticket = flights_.join(call.flight_key(), call.ticket);
            if (ticket.leader) {
              RefreshWrite write{&call};
              result_type r = compute_and_store(call, ticket.leader, std::nullopt, args...);
              if (bytes_ && !write.written) erase_remote(call.key(), /*refresh=*/true);
              broadcast(call);
              return r;
            }
            ticket.flight->wait_for(opts_.cold_wait);
          }
        },
        args...);
  }

  /// A snapshot of the counters.
  Stats stats() const {
    Stats s;
    s.hits = hits_.load();
    s.misses = misses_.load();
    s.stale_serves = stale_serves_.load();
    s.stale_on_error = stale_on_error_.load();
    s.loads = loads_.load();
    s.load_failures = load_failures_.load();
    s.coalesced = coalesced_.load();
    s.cold_rejections = cold_rejections_.load();
    s.coalesced_failures = coalesced_failures_.load();
    s.store_errors = store_errors_.load();
    s.decode_errors = decode_errors_.load();
    s.load_time = std::chrono::nanoseconds{static_cast<std::int64_t>(load_time_ns_.load())};
    s.waiting = waiting_.load(std::memory_order_relaxed);
    s.store_available = bytes_ == nullptr || bytes_->available();
    return s;
  }

  /// Keeps only the results `keep` accepts (Spring's @Cacheable `unless`, inverted): a computed
  /// value it refuses is returned, and handed to the callers waiting for the same key, but stored
  /// in no tier, and the entry it was computed to replace (a stale entry, or the old value under
  /// refresh()) is dropped instead. For results that must not be remembered, such as "not found"
  /// (JsonCache uses it so that a missing entity costs the shared tier nothing). Other processes
  /// waiting on the key's shared-tier lock find no value and compute it themselves, one at a
  /// time. `keep` runs after fn, on the computing thread; if it throws, the computation failed
  /// (as if fn had thrown). An empty function keeps every result (the default). Set it before
  /// the Cached is shared between threads: it is not synchronized.
  Cached& cache_if(std::function<bool(const value_type&)> keep) {
    keep_ = std::move(keep);
    return *this;
  }

  const Options& options() const noexcept { return opts_; }
  /// "{prefix}:v{schema}:{Class}:{function}:", the start of every key of this function.
  const std::string& key_prefix() const noexcept { return head_; }

  // ---- bulk get-or-compute ----
  /// The first argument's type without const or reference: what a bulk call takes a span of.
  using entity_type = std::remove_cvref_t<std::tuple_element_t<0, std::tuple<A...>>>;

  /// Returns fn(e, params...) for each entity e, in the order given (duplicates included: a key
  /// repeated in the list is read, computed and counted in stats() once, then copied). Reads
  /// every key from the memory tier, then the keys it lacked from the byte tier in ONE
  /// ByteStore::get_many, then computes only the keys still missing, once each. A key that a
  /// concurrent call is computing is joined (as a single call would wait for it), and single calls
  /// made meanwhile join the computations of this one. Stale entries follow the single-call path
  /// (served stale while one caller or task refreshes them). With a shared tier, the keys this call
  /// computes are locked there first, as single calls lock them: a key another process is computing
  /// is awaited (its value polled from the shared tier, one get_many per Options::lock_poll) rather
  /// than computed again, and fails with ColdCacheError per Options::on_cold and cold_wait; one
  /// whose holder gave up without a value is computed here.
  /// Failure: if fn throws for a key, the other keys are still computed and stored, and the keys
  /// joined from concurrent calls are still waited for (each counted in stats() as a single call
  /// waiting for it would be), then the first exception propagates (nothing is stored for the
  /// failing key). ColdCacheError as for a single call, per Options::on_cold. Store errors are
  /// counted and never thrown.
  /// Example:
  ///   std::vector<Author> authors = ...;
  ///   auto lists = top_book_ids.get_many(authors, 10);  // lists[i] is top_book_ids(authors[i],
  ///   10)
  template <class... P>
  requires(sizeof...(P) + 1 ==
           sizeof...(A)) std::vector<result_type> get_many(std::span<const entity_type> entities,
                                                           const P&... params) {
    bulk_params<A...>::check(params...);
    return bulk_get(entities, static_cast<BulkNoLoader*>(nullptr), BulkParams{params...});
  }

  /// As above, but the missing keys are computed by ONE call of `loader(missing, params...)`, which
  /// must return a std::vector<value_type> holding the value of missing[i] at index i (fn itself is
  /// not called). If the loader throws, or returns another number of values, every key it was to
  /// compute fails with that exception (a std::logic_error for a wrong count), concurrent callers
  /// waiting for those keys get it too, nothing is stored for them, and it propagates.
  /// Example:
  ///   auto lists = top_book_ids.get_many(authors, &top_book_ids_for_many, 10);  // one SQL query
  template <class Loader, class... P>
  requires(sizeof...(P) + 1 == sizeof...(A)) &&
      std::invocable<Loader&, std::span<const entity_type>, const P&...> std::vector<
          result_type> get_many(std::span<const entity_type> entities, Loader&& loader,
                                const P&... params) {
    bulk_params<A...>::check(params...);
    return bulk_get(entities, &loader, BulkParams{params...});
  }
  // ---- bulk get-or-compute ----

 private:
  template <class T>
  using id_t = std::remove_cvref_t<decltype(entity_id(std::declval<const T&>()))>;
  template <class T>
  using part_t = std::remove_cvref_t<decltype(key_part(std::declval<const T&>()))>;

  template <class First, class... Rest>
  struct key_of {
    using type = std::tuple<detail::stored_t<id_t<std::remove_cvref_t<First>>>,
                            detail::stored_t<part_t<std::remove_cvref_t<Rest>>>...>;
  };
  /// The key as the memory store keeps it: the entity id, then the params, in owning form.
  using Key = typename key_of<A...>::type;

  /// What single flight keys a call's computation by: its typed key and its memory-tier hash (no
  /// rendered string: a miss without a byte store renders none). Compared as the memory tier
  /// compares keys (stored_equal), so two calls share a flight exactly when they share an entry.
  struct FlightKey {
    std::uint64_t hash;
    Key key;
  };
  struct FlightKeyHash {
    std::size_t operator()(const FlightKey& k) const noexcept {
      return static_cast<std::size_t>(k.hash);
    }
  };
  struct FlightKeyEqual {
    bool operator()(const FlightKey& a, const FlightKey& b) const noexcept {
      return a.hash == b.hash && stored_equal(a.key, b.key);
    }
  };
  using Flights = detail::SingleFlight<value_type, FlightKey, FlightKeyHash, FlightKeyEqual>;
  // A flight's key is moved into it once its entry is in the table (detail/single_flight.hpp).
  static_assert(std::is_nothrow_move_constructible_v<FlightKey>);

  /// A stale entry being recomputed, and the tier it was read from (what stale_if_error serves).
  struct Stale {
    Found<value_type> found;
    Source source;
  };

  /// What the slow paths need to know of a call. Its key string is rendered when first asked for:
  /// at once when there is a byte store, which keys by it; without one, only for an error message
  /// or report (a miss in memory alone renders nothing). A Call belongs to one thread (a
  /// background refresh gets a copy of its own): key() writes its mutable members unguarded.
  struct Call {
    std::uint64_t hash;
    Key stored_key;
    const Cached* owner;
    // Taken when the call began (before it read the shared tier or computed): what it stores is
    // refused if the key was invalidated since (detail/write_fence.hpp).
    detail::WriteFence::Ticket ticket;
    mutable std::string rendered{};  // key(), once rendered (never empty then: it has the head)
    mutable std::string identity{};  // when key() is hashed: the whole rendered key; else empty

    /// The rendered key (its tail hashed if too long): the byte store's key.
    const std::string& key() const {
      if (rendered.empty()) {
        rendered =
            std::apply([&](const auto&... parts) { return owner->render_to(&identity, parts...); },
                       stored_key);
      }
      return rendered;
    }
    /// The call's full rendered key, which no other call shares: what a byte-store payload must
    /// carry (a hashed key() might collide; this cannot).
    const std::string& identity_key() const {
      const std::string& k = key();
      return identity.empty() ? k : identity;
    }
    FlightKey flight_key() const { return FlightKey{hash, stored_key}; }
  };

  template <class Id, class... P>
  Call make_call(std::uint64_t h, const Id& id, const P&... params) const {
    Call call{h, make_key(id, params...), this, fence_.ticket(h)};
    if (bytes_) (void)call.key();  // the byte store keys by it
    return call;
  }

  /// A cross-process lock attempt: held, or taken by someone else. try_remote_lock returns nullopt
  /// when the store could not be asked (down, breaker open): this process then computes without
  /// coordination.
  struct RemoteLock {
    std::string key;
    std::string token;
    bool held;
  };

  // ---- key parts
  // ---------------------------------------------------------------------------------

  /// Calls f(id, params...): the entity's id and each param's key part, alive for the whole call.
  template <class F>
  static decltype(auto) with_parts(F&& f, detail::param_t<A>... args) {
    return with_parts_impl(std::forward<F>(f), args...);
  }
  template <class F, class First, class... Rest>
  static decltype(auto) with_parts_impl(F&& f, const First& first, const Rest&... rest) {
    return checked_parts(std::forward<F>(f), entity_id(first), key_part(rest)...);
  }
  /// f(parts...) once no part is a null char pointer (std::invalid_argument): nothing is looked
  /// up, computed or stored for such a call. Free for calls without char pointers.
  template <class F, class... P>
  static decltype(auto) checked_parts(F&& f, const P&... parts) {
    if constexpr ((detail::holds_c_string<P>() || ...)) {
      std::size_t position = 1;
      (detail::check_not_null(parts, position++), ...);
    }
    return std::forward<F>(f)(parts...);
  }

  /// The key's hash in the memory tier (never rendered): each part folded into the function's seed
  /// with one multiply (an integer part as it is, any other through detail::hash_part), then one
  /// full mix. Parts are folded in order, so (a, b) and (b, a) differ.
  template <class Id, class... P>
  std::uint64_t hash_of(const Id& id, const P&... params) const noexcept {
    std::uint64_t h = fold(seed_, id);
    ((h = fold(h, params)), ...);
    return detail::mix64(h);
  }
  template <class T>
  static std::uint64_t fold(std::uint64_t h, const T& part) noexcept {
    std::uint64_t v;
    if constexpr (std::is_integral_v<T>) {
      v = static_cast<std::uint64_t>(part);
    } else if constexpr (std::is_enum_v<T>) {
      v = static_cast<std::uint64_t>(static_cast<std::underlying_type_t<T>>(part));
    } else {
      v = detail::hash_part(part);
    }
    // Odd multiplier: a bijection of h ^ v; the rotation carries high bits into the next fold.
    return std::rotl((h ^ v) * 0x9e3779b97f4a7c15ULL, 29);
  }

  /// The clock: the default one without a virtual call (SystemClock is final).
  TimePoint clock_now() const noexcept {
    if (system_clock_) return static_cast<const SystemClock*>(clock_)->now();
    return clock_->now();
  }

  /// What the memory tier holds for a key: a fresh hit (its value, held as the store holds it, and
  /// its write time), or `stale` (the entry is past fresh_for: the caller takes the slow path), or
  /// neither. The caller builds the Result in its return statement, so a hit moves nothing twice.
  struct Probe {
    std::optional<detail::held_value_t<value_type>> value;
    TimePoint written{};
    bool stale = false;
  };
  template <class Id, class... P>
  Probe probe_memory(std::uint64_t h, TimePoint now, const Id& id, const P&... params) {
    Probe probe;
    auto eq = [&](const Key& k) { return key_equal(k, id, params...); };
    mem_->template read<Key, value_type>(
        ns_, h, eq, now, [&](const detail::held_value_t<value_type>& held, const Stamps& stamps) {
          if (stamps.fresh(now)) {
            probe.value.emplace(held);
            probe.written = stamps.written;
          } else {
            probe.stale = true;
          }
        });
    return probe;
  }

  /// The probe found a stale entry: look it up again as a shared value (it may have been refreshed
  /// or removed in between) and serve it per the stale rules, or miss.
  template <class Id, class... P>
  [[gnu::noinline]] result_type on_stale_probe(std::uint64_t h, TimePoint now,
                                               std::tuple<const Id&, const P&...> parts,
                                               detail::param_t<A>... args) {
    auto eq = [&](const Key& k) {
      return std::apply([&](const auto&... p) { return key_equal(k, p...); }, parts);
    };
    Call call = std::apply([&](const auto&... p) { return make_call(h, p...); }, parts);
    if (auto found = mem_->template find<Key, value_type>(ns_, h, eq, now)) {
      if (found->stamps.fresh(now)) {
        hits_.add();
        return result_type{std::move(found->value), Source::memory, false, found->stamps.written,
                           now};
      }
      return on_stale(std::move(call), std::move(*found), Source::memory, now, args...);
    }
    return on_miss(std::move(call), now, args...);
  }

  template <class Id, class... P>
  static bool key_equal(const Key& k, const Id& id, const P&... params) noexcept {
    return key_equal_impl(k, std::index_sequence_for<P...>{}, id, params...);
  }
  template <std::size_t... I, class Id, class... P>
  static bool key_equal_impl(const Key& k, std::index_sequence<I...>, const Id& id,
                             const P&... params) noexcept {
    return detail::part_equal(std::get<0>(k), id) &&
           (detail::part_equal(std::get<I + 1>(k), params) && ...);
  }

  /// Two stored keys compared as key_equal compares a stored key with live parts (every NaN one
  /// value, -0.0 not 0.0), never with Key's operator==, for which NaN != NaN: the memory tier's
  /// writes and erases must find the entries its reads find.
  static bool stored_equal(const Key& a, const Key& b) noexcept {
    return std::apply([&](const auto&... parts) { return key_equal(a, parts...); }, b);
  }

  template <class Id, class... P>
  static Key make_key(const Id& id, const P&... params) {
    return Key{detail::to_stored(id), detail::to_stored(params)...};
  }

  /// {head}{params...}:{id}, with an over-long tail hashed (params first, then params and id).
  template <class Id, class... P>
  std::string render(const Id& id, const P&... params) const {
    return render_to(nullptr, id, params...);
  }
  /// render(); if it hashes the tail and `identity` is given, *identity gets the unhashed key.
  template <class Id, class... P>
  std::string render_to(std::string* identity, const Id& id, const P&... params) const {
    std::string tail;
    ((detail::render_part(tail, params), tail += ':'), ...);
    std::string id_text;
    detail::render_part(id_text, id);
    std::string out;
    out.reserve(head_.size() + tail.size() + id_text.size());
    out += head_;
    if (head_.size() + tail.size() + id_text.size() <= opts_.max_key_length) {
      out += tail;
      out += id_text;
      return out;
    }
    if (identity) *identity = head_ + tail + id_text;
    if constexpr (sizeof...(P) > 0) {
      std::string hashed = detail::hash_tail(tail);
      if (head_.size() + hashed.size() + 1 + id_text.size() <= opts_.max_key_length) {
        out += hashed;
        out += ':';
        out += id_text;
        return out;
      }
    }
    out += detail::hash_tail(tail + id_text);
    return out;
  }

  // ---- slow paths
  // --------------------------------------------------------------------------------

  /// Nothing usable in memory: look in the shared tier, else compute (once). Kept out of line (as
  /// on_stale_probe is), so that the hit path in operator() stays small.
  [[gnu::noinline]] result_type on_miss(Call call, TimePoint now, detail::param_t<A>... args) {
    for (;;) {
      auto ticket = flights_.join(call.flight_key(), call.ticket);
      if (!ticket.leader) {
        if (auto r = wait_for_other(call, *ticket.flight, now)) return std::move(*r);
        // That computation began before an invalidation this call followed: compute anew (its
        // flight has ended), reading the data as of now.
        call.ticket = fence_.ticket(call.hash);
        now = clock_->now();
        continue;
      }
      typename Flights::Leader& leader = ticket.leader;
      try {
        return lead_miss(std::move(call), leader, now, args...);
      } catch (...) {
        // What stopped this leader (a ColdCacheError after waiting for another process, say) is
        // what its waiters get, rather than the Leader guard's "computation abandoned".
        leader.fail(std::current_exception());  // nothing if it ended the flight already
        throw;
      }
    }
  }

  /// on_miss as the leader of the key's flight.
  result_type lead_miss(Call call, typename Flights::Leader& leader, TimePoint now,
                        detail::param_t<A>... args) {
    // Another leader may have stored the value between our lookup and our join.
    if (mem_) {
      auto eq = [&](const Key& k) { return stored_equal(k, call.stored_key); };
      if (auto found = mem_->template find<Key, value_type>(ns_, call.hash, eq, now);
          found && found->stamps.fresh(now)) {
        hits_.add();
        leader.complete(found->value, found->stamps);
        return result_type{std::move(found->value), Source::memory, false, found->stamps.written,
                           now};
      }
    }
    if (bytes_) {
      if (auto remote = read_remote(call, now)) {
        fill_memory(call, remote->value, remote->stamps);
        leader.complete(remote->value, remote->stamps);
        if (remote->stamps.fresh(now)) {
          hits_.add();  // a hit in the shared tier is a hit: the function did not run for it
          return result_type{std::move(remote->value), Source::remote, false,
                             remote->stamps.written, now};
        }
        return on_stale(std::move(call), std::move(*remote), Source::remote, now, args...);
      }
      return compute_with_remote_lock(call, leader, now, args...);  // counts a miss or a wait
    }
    misses_.add();
    return compute_and_store(call, leader, std::nullopt, args...);
  }

  /// Another caller in this process is computing the key: wait for it, or refuse to. Nothing if
  /// that computation's value may predate the data this call must see: it began before an
  /// invalidation of the key that this call followed (the flight's tag, its creator's ticket, is
  /// not this call's ticket). The caller then computes anew.
  std::optional<result_type> wait_for_other(const Call& call, typename Flights::Flight& flight,
                                            TimePoint now) {
    if (opts_.on_cold == OnCold::fail_fast) throw cold_refusal(call, "caller", false);
    waiting_.fetch_add(1, std::memory_order_relaxed);
    const bool done = flight.wait_for(opts_.cold_wait);
    waiting_.fetch_sub(1, std::memory_order_relaxed);
    if (!done) throw cold_refusal(call, "caller", true);
    if (flight.error) {
      try {
        std::rethrow_exception(flight.error);
      } catch (const ColdCacheError&) {
        cold_rejections_.add();  // the leader gave up waiting for another process: so does this
        throw;
      } catch (...) {
        coalesced_failures_.add();  // it was not answered: the computation it waited for threw
        throw;
      }
    }
    if (flight.tag != call.ticket) return std::nullopt;
    coalesced_.add();
    return result_type{flight.value, Source::coalesced, !flight.stamps.fresh(now),
                       flight.stamps.written, now};
  }

  /// A stale entry (memory or remote): serve it, and have exactly one caller or task recompute it.
  result_type on_stale(Call call, Found<value_type> stale, Source source, TimePoint now,
                       detail::param_t<A>... args) {
    auto leader = flights_.try_lead(call.flight_key(), call.ticket);
    if (!leader) {  // somebody in this process is refreshing it already
      stale_serves_.add();
      return result_type{std::move(stale.value), source, true, stale.stamps.written, now};
    }
    std::optional<RemoteLock> lock;
    if (bytes_) {
      lock = try_remote_lock(call.key());
      if (lock && !lock->held) {  // another process is refreshing it: its result will reach us
        leader.complete(stale.value, stale.stamps);
        stale_serves_.add();
        return result_type{std::move(stale.value), source, true, stale.stamps.written, now};
      }
      if (lock && source == Source::memory) {
        // Another instance may have refreshed it a moment ago (and released the lock): its value
        // is then in the shared tier, fresh and newer than this memory copy. Take it instead of
        // computing again, or every instance would recompute the key once per fresh_for window,
        // one after another. If the read throws (std::bad_alloc, a store's exception other than
        // StoreError), the lock is released at once rather than held until its lease, and the
        // flight ends with that exception, which its waiters get; it then propagates. (Not an
        // optional assigned inside a try: GCC 12's -Wmaybe-uninitialized fires on that.)
        auto fresh = [&] {
          try {
            return refreshed_elsewhere(call, stale);
          } catch (...) {
            unlock_remote(*lock, call.key());
            fail_pending(leader);
            throw;
          }
        }();
        if (fresh) {
          RemoteUnlock unlock{this, lock, call};
          leader.complete(fresh->value, fresh->stamps);
          hits_.add();  // answered from the shared tier without running fn
          return result_type{std::move(fresh->value), Source::remote, false, fresh->stamps.written,
                             clock_->now()};
        }
      }
    }
    // Arguments that cannot be held for later (see detail/held_args.hpp) refresh on the caller.
    if constexpr ((detail::Ownable<A> && ...)) {
      if (opts_.refresh == Refresh::background &&
          submit_refresh(call, Stale{stale, source}, leader, lock, args...)) {
        stale_serves_.add();
        return result_type{std::move(stale.value), source, true, stale.stamps.written, now};
      }
    }
    misses_.add();
    RemoteUnlock unlock{this, lock, call};
    return compute_and_store(call, leader, Stale{std::move(stale), source}, args...);
  }

  /// The shared tier's value of a call whose memory copy is `stale`, if it is fresh and was written
  /// after that copy (another instance refreshed it); it is put in the memory tier. A store error
  /// (counted, as any) or an undecodable value (not counted again: it was when first read) is
  /// nothing, and the caller recomputes.
  std::optional<Found<value_type>> refreshed_elsewhere(const Call& call,
                                                       const Found<value_type>& stale) {
    const TimePoint now = clock_->now();
    auto remote = read_remote(call, now, /*count_errors=*/false);
    if (!remote || !remote->stamps.fresh(now) || !(stale.stamps.written < remote->stamps.written))
      return std::nullopt;
    fill_memory(call, remote->value, remote->stamps);
    return remote;
  }

  /// What a background refresh shares with its task (a std::function must be copyable, a Leader
  /// is not): the flight's leadership, and whether the task or the caller took it. The refresh
  /// counts as pending (background_pending_, which ~Cached waits for) exactly as long as this
  /// lives, so until the executor has run or destroyed every copy of the task, whatever it does:
  /// even an executor that breaks its contract (throws from submit() after it ran or kept the
  /// task, or drops a task) can neither make ~Cached wait for ever nor let a task touch a
  /// destroyed Cached.
  struct Background {
    Background(Cached& c, typename Flights::Leader&& l) : self{c}, leader{std::move(l)} {
      std::lock_guard guard{self.background_mutex_};
      ++self.background_pending_;
    }
    Background(const Background&) = delete;
    Background& operator=(const Background&) = delete;
    ~Background() {
      // A task never run ends its flight here ("computation abandoned" to its waiters), while
      // the flight table still exists: before the count below lets ~Cached return.
      { const typename Flights::Leader gone = std::move(leader); }
      std::lock_guard guard{self.background_mutex_};
      --self.background_pending_;
      self.background_cv_.notify_all();
    }
    Cached& self;
    typename Flights::Leader leader;
    std::atomic<bool> taken{false};  // by the task when it starts, or by the caller if refused
  };

  /// Hands the refresh, the flight's leadership and the remote lock to the executor. False if the
  /// executor refused the task: the caller then holds the leadership again and recomputes itself.
  /// The task holds owning copies of the arguments (a string_view's text, a span's elements): the
  /// caller's may be gone by then.
  bool submit_refresh(const Call& call, const Stale& stale, typename Flights::Leader& leader,
                      std::optional<RemoteLock>& lock, detail::param_t<A>... args) {
    // Built first: allocating the shared state or copying the arguments may throw (a user type's
    // copy, std::bad_alloc), and then the caller recomputes, as when the executor refuses the task.
    std::shared_ptr<Background> shared;
    std::function<void()> task;
    try {
      shared = std::make_shared<Background>(*this, std::move(leader));
      task = make_refresh_task(call, stale, shared, lock, args...);
    } catch (...) {
      if (shared) leader = std::move(shared->leader);
      return false;
    }
    try {
      (executor_ ? *executor_ : ThreadPool::shared()).submit(std::move(task));
    } catch (...) {
      // Refused: the task never runs, unless the executor ran or kept it all the same. Whichever
      // of the two takes the leadership first refreshes; the other leaves it alone.
      if (!shared->taken.exchange(true)) {
        leader = std::move(shared->leader);
        return false;
      }
    }
    lock.reset();  // the task owns it now
    return true;
  }

  /// The background refresh of submit_refresh. It does nothing if the caller took the refresh
  /// back (the executor threw from submit() but ran the task later).
  std::function<void()> make_refresh_task(const Call& call, const Stale& stale,
                                          const std::shared_ptr<Background>& shared,
                                          const std::optional<RemoteLock>& lock,
                                          detail::param_t<A>... args) {
    return [this, call, stale, shared, lock,
            held = detail::HeldArgs<A...>{detail::hold<A>(args)...}]() mutable {
      if (shared->taken.exchange(true)) return;
      RemoteUnlock unlock{this, lock, call};
      try {
        std::apply(
            [&](auto&... a) {
              compute_and_store(call, shared->leader, stale, detail::lend<A>(a)...);
            },
            held);
      } catch (const std::exception& e) {
        fail_pending(shared->leader);
        report(ErrorEvent::Kind::background_refresh, call, e.what());
      } catch (...) {
        fail_pending(shared->leader);
        report(ErrorEvent::Kind::background_refresh, call, "unknown exception");
      }
    };
  }

  /// Fails the flight with the exception being handled if its leader did not end it (an exception
  /// from storing the value, after fn): its waiters get that exception, and the key is free.
  static void fail_pending(typename Flights::Leader& leader) noexcept {
    leader.fail(std::current_exception());  // nothing if the leader ended it already
  }

  /// The shared tier's lock of an entry: its key and ":#lock", which no data key can end with.
  static std::string lock_key(const std::string& key) { return key + ":#lock"; }

  /// A cold key this call will not compute, because another caller in this process or another
  /// process computes it (`by`), and OnCold::fail_fast refuses to wait or (`waited`) cold_wait ran
  /// out: counted, and the error to throw.
  ColdCacheError cold_refusal(const Call& call, std::string_view by, bool waited) {
    cold_rejections_.add();  // before the key is rendered (which may throw std::bad_alloc)
    const std::string& key = call.key();
    if (!waited)
      return ColdCacheError(
          fmt::format("larder: '{}' is cold and being computed by another {}", key, by));
    return ColdCacheError(
        fmt::format("larder: '{}' still cold after waiting {} ms for another {}'s computation", key,
                    opts_.cold_wait.count(), by));
  }

  std::optional<RemoteLock> try_remote_lock(const std::string& key) {
    RemoteLock lock{lock_key(key), detail::lock_token(), false};
    try {
      if (!bytes_->available()) return std::nullopt;
      lock.held = bytes_->try_lock(lock.key, lock.token, opts_.lock_lease);
    } catch (const StoreError& e) {
      store_error(key, e);
      return std::nullopt;
    }
    return lock;
  }
  /// Releases a held remote lock when it goes out of scope. Takes the Call, not its key: a lock
  /// is held only with a byte store, whose calls' keys are rendered in make_call, so the key is
  /// asked for (and never rendered, never allocated) only when there is a lock to release.
  struct RemoteUnlock {
    RemoteUnlock(Cached* s, const std::optional<RemoteLock>& l, const Call& c)
        : self{s}, lock{l}, call{c} {}
    Cached* self;
    const std::optional<RemoteLock>& lock;
    const Call& call;
    RemoteUnlock(const RemoteUnlock&) = delete;
    RemoteUnlock& operator=(const RemoteUnlock&) = delete;
    ~RemoteUnlock() {
      if (lock && lock->held) self->unlock_remote(*lock, call.key());
    }
  };

  /// A cold key with a shared tier: one process computes under the lock; the others poll the
  /// shared store for its result, up to cold_wait. The call is counted once: a miss if it computes,
  /// coalesced if another process's value reaches it, a cold rejection if it gives up.
  result_type compute_with_remote_lock(const Call& call, typename Flights::Leader& leader,
                                       TimePoint now, detail::param_t<A>... args) {
    const auto deadline = detail::saturating_add(std::chrono::steady_clock::now(), opts_.cold_wait);
    for (;;) {
      const std::optional<RemoteLock> lock = try_remote_lock(call.key());
      if (!lock) break;  // store unreachable: compute without coordination
      if (lock->held) {
        RemoteUnlock unlock{this, lock, call};
        // The previous holder may have stored the value just before we took the lock (a second
        // read of bytes already found undecodable is not counted again).
        if (auto remote = read_remote(call, clock_->now(), /*count_errors=*/false)) {
          fill_memory(call, remote->value, remote->stamps);
          leader.complete(remote->value, remote->stamps);
          coalesced_.add();
          return result_type{std::move(remote->value), Source::remote, !remote->stamps.fresh(now),
                             remote->stamps.written, now};
        }
        misses_.add();
        return compute_and_store(call, leader, std::nullopt, args...);
      }
      if (opts_.on_cold == OnCold::fail_fast) throw cold_refusal(call, "process", false);
      if (std::chrono::steady_clock::now() >= deadline) throw cold_refusal(call, "process", true);
      poll_pause(deadline);
      if (auto remote = read_remote(call, clock_->now())) {
        fill_memory(call, remote->value, remote->stamps);
        leader.complete(remote->value, remote->stamps);
        coalesced_.add();
        return result_type{std::move(remote->value), Source::remote, !remote->stamps.fresh(now),
                           remote->stamps.written, now};
      }
    }
    misses_.add();
    return compute_and_store(call, leader, std::nullopt, args...);
  }

  /// Sleeps one lock_poll, or until `deadline` (cold_wait's end) if that comes sooner: a lock_poll
  /// longer than cold_wait must not stretch the wait past it.
  void poll_pause(std::chrono::steady_clock::time_point deadline) const {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    const auto left = deadline - now;
    // Compared in milliseconds: lock_poll in nanoseconds could overflow (milliseconds::max()).
    if (std::chrono::duration_cast<std::chrono::milliseconds>(left) >= opts_.lock_poll) {
      std::this_thread::sleep_for(opts_.lock_poll);
    } else {
      std::this_thread::sleep_for(left);
    }
  }

  /// Runs fn, stores the value everywhere, completes the flight. On failure: serves `stale` if
  /// stale_if_error allows, else drops the stale entry and rethrows.
  result_type compute_and_store(const Call& call, typename Flights::Leader& leader,
                                std::optional<Stale> stale, detail::param_t<A>... args) {
    const auto t0 = std::chrono::steady_clock::now();
    std::shared_ptr<const value_type> value;
    bool keep = true;
    try {
      value = std::make_shared<const value_type>(std::invoke(fn_, args...));
      if (keep_) keep = keep_(*value);
    } catch (...) {
      load_time_ns_.add(elapsed_ns(t0));
      load_failures_.add();
      const TimePoint now = clock_->now();
      if (stale && opts_.stale_if_error.count() > 0 && !stale->found.stamps.expired(now) &&
          now < detail::saturating_add(stale->found.stamps.fresh_until, opts_.stale_if_error)) {
        stale_on_error_.add();
        report_current(ErrorEvent::Kind::stale_served_on_error, call);
        leader.complete(stale->found.value, stale->found.stamps);
        return result_type{std::move(stale->found.value), stale->source, true,
                           stale->found.stamps.written, now};
      }
      if (stale) erase_everywhere(call);
      leader.fail(std::current_exception());
      throw;
    }
    load_time_ns_.add(elapsed_ns(t0));
    loads_.add();
    const Stamps stamps = make_stamps(clock_->now());
    if (keep) {
      fill_memory(call, value, stamps);
      write_remote(call, *value, stamps);
    } else if (stale) {
      erase_everywhere(call);  // the stale entry must not outlive what replaced it
    } else if (RefreshWrite::of(call) != nullptr) {
      // refresh(): its old value must go too (refresh deletes the shared tier's copy itself,
      // as nothing was written there). A cold miss has nothing to drop.
      erase_memory(call);
    }
    leader.complete(value, stamps);
    return result_type{std::move(value), Source::computed, false, stamps.written, stamps.written};
  }

  // ---- tiers
  // -------------------------------------------------------------------------------------

  /// Stores the value in the memory tier, unless the key was invalidated since the call began
  /// (Call::ticket). Never throws: a value that cannot be stored (out of memory, a larder_weight
  /// that throws) is counted and reported as a store error, and the call goes on with its value,
  /// as it does when the shared tier fails.
  void fill_memory(const Call& call, const std::shared_ptr<const value_type>& value,
                   const Stamps& stamps) noexcept {
    if (!mem_) return;
    try {
      auto eq = [&](const Key& k) { return stored_equal(k, call.stored_key); };
      auto current = [&]() noexcept { return fence_.valid(call.hash, call.ticket); };
      mem_->template put_if<Key, value_type>(ns_, call.hash, eq, call.stored_key, value, stamps,
                                             current);
    } catch (...) {
      store_errors_.add();
      try {
        report_current(ErrorEvent::Kind::store, call);
      } catch (...) {
        // No memory even for the report.
      }
    }
  }

  std::optional<Found<value_type>> read_remote(const Call& call, TimePoint now,
                                               bool count_errors = true) {
    if constexpr (Encodable<value_type>) {
      if (!bytes_ || !bytes_->available()) return std::nullopt;
      const std::string& key = call.key();
      std::optional<std::string> bytes;
      try {
        bytes = bytes_->get(key);
      } catch (const StoreError& e) {
        store_error(key, e);
        return std::nullopt;
      }
      if (!bytes) return std::nullopt;
      try {
        auto env = detail::decode_envelope(*bytes, call.identity_key(), fingerprint_);
        if (env.stamps.expired(now)) return std::nullopt;
        return Found<value_type>{codec_.decode(env.value), env.stamps};
      } catch (const DecodeError& e) {
        if (count_errors) {
          decode_errors_.add();
          report(ErrorEvent::Kind::decode, key, e.what());
        }
        return std::nullopt;  // a miss; the next write overwrites it
      }
    } else {
      (void)call;
      (void)now;
      (void)count_errors;
      return std::nullopt;
    }
  }

  /// Set by refresh() on its thread while it computes and stores: write_remote marks whether the
  /// refresh's own write (its Call, by address) reached the shared tier.
  struct RefreshWrite {
    explicit RefreshWrite(const Call* c) : call{c}, outer{current} { current = this; }
    ~RefreshWrite() { current = outer; }
    RefreshWrite(const RefreshWrite&) = delete;
    RefreshWrite& operator=(const RefreshWrite&) = delete;
    const Call* call;
    RefreshWrite* outer;  // a refresh under way further up this thread (fn called refresh())
    bool written = false;
    static inline thread_local RefreshWrite* current = nullptr;
    /// The refresh under way on this thread whose Call is `call` (by address), or null.
    static RefreshWrite* of(const Call& call) noexcept {
      return current != nullptr && current->call == &call ? current : nullptr;
    }
  };

  /// Writes the value to the shared tier, unless the key was invalidated since the call began
  /// (Call::ticket); if it is invalidated while the write is under way, deletes it again.
  void write_remote(const Call& call, const value_type& value, const Stamps& stamps) {
    if constexpr (Encodable<value_type>) {
      if (!bytes_ || !bytes_->available() || !fence_.valid(call.hash, call.ticket)) return;
      const std::string& key = call.key();
      // The payload carries the call's whole key: a reader whose hashed key collides with this
      // one's rejects it (DecodeError: a miss), never serves it. A value the codec refuses (a
      // to_json that throws) is not cached there: counted and reported as a store error, as a
      // failed write is, never thrown at the caller.
      std::string payload;
      try {
        payload = detail::encode_envelope(call.identity_key(), fingerprint_, stamps,
                                          codec_.encode(value));
      } catch (const std::exception& e) {
        store_errors_.add();
        report(ErrorEvent::Kind::store, key,
               fmt::format("larder: the value of '{}' could not be encoded: {}", key, e.what()));
        return;
      } catch (...) {
        store_errors_.add();
        report(ErrorEvent::Kind::store, key,
               fmt::format("larder: the value of '{}' could not be encoded", key));
        return;
      }
      try {
        const auto ttl =
            std::chrono::duration_cast<std::chrono::milliseconds>(stamps.expires - stamps.written);
        bytes_->set(key, payload, std::max(ttl, std::chrono::milliseconds{1}));
      } catch (const StoreError& e) {
        store_error(key, e);
        return;
      }
      // An invalidate() between the check above and the write may have deleted the key before
      // the write landed: then this deletes it. (The check is a store lock's job in the memory
      // tier; the shared tier has none.)
      if (!fence_.valid(call.hash, call.ticket)) {
        erase_remote(key, /*refresh=*/false);
        return;
      }
      if (RefreshWrite* w = RefreshWrite::of(call)) w->written = true;
    } else {
      (void)call;
      (void)value;
      (void)stamps;
    }
  }

  void erase_everywhere(const Call& call) {
    erase_memory(call);
    if (bytes_) erase_remote(call.key(), /*refresh=*/false);
  }

  void erase_memory(const Call& call) {
    if (!mem_) return;
    auto eq = [&](const Key& k) { return stored_equal(k, call.stored_key); };
    mem_->template erase<Key, value_type>(ns_, call.hash, eq);
  }

  /// Deletes the key from the shared tier, even while it is unavailable: a RedisStore remembers a
  /// DEL it cannot send and sends it as soon as Redis answers (its error says so). A failure is a
  /// store error, reported as an invalidation NOT applied.
  void erase_remote(const std::string& key, bool refresh) {
    try {
      bytes_->erase(key);
    } catch (const StoreError& e) {
      store_errors_.add();
      report(ErrorEvent::Kind::store, key,
             fmt::format("larder: {} '{}' NOT applied in the shared tier: {}",
                         refresh ? "the refresh's write (replaced by a DEL of the old value) of"
                                 : "the invalidation of",
                         key, e.what()));
    }
  }

  /// Tells the other instances to drop this key from their memory tiers (InvalidationBus). A
  /// failure is counted and reported as a store error, never thrown.
  void broadcast(const Call& call) {
    if (!bus_) return;
    try {
      bus_->publish(head_, hash_check_, call.hash, bus_id_);
    } catch (const std::exception& e) {
      store_errors_.add();
      report(ErrorEvent::Kind::store, call, e.what());
    }
  }

  /// From the bus: another instance invalidated a key with this hash. Drops every entry with that
  /// hash, unseen (the bus carries no key: a collision drops one more entry, which is harmless).
  void drop_hash(std::uint64_t h) {
    fence_.invalidate(h);  // as invalidate() does: a computation under way stores nothing
    auto any = [](const Key&) { return true; };
    while (mem_->template erase<Key, value_type>(ns_, h, any)) {
    }
  }

  /// From the bus: this instance may have missed invalidations (its subscription was lost). Drops
  /// every entry of this function, as if each key were invalidated.
  void drop_all() {
    fence_.invalidate_all();
    mem_->erase_namespace(ns_);
  }

  /// Called from destructors (RemoteUnlock, HeldLocks): never throws. A failure is a store error;
  /// the lease frees the lock.
  void unlock_remote(const RemoteLock& lock, const std::string& key) noexcept {
    try {
      bytes_->unlock(lock.key, lock.token);
    } catch (...) {
      store_errors_.add();
      try {
        report_current(ErrorEvent::Kind::store, key);
      } catch (...) {
        // No memory even for the report.
      }
    }
  }

  Stamps make_stamps(TimePoint now) {
    double shrink = 1.0;
    if (opts_.jitter > 0.0) {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      shrink -= std::uniform_real_distribution<double>{0.0, opts_.jitter}(rng);
    }
    // now + d * shrink, saturated at TimePoint::max(): a lifetime too long for the clock
    // (milliseconds::max(), centuries) means "until the end of time". Without jitter d is added
    // exactly; with it, d * shrink is taken in double nanoseconds (no overflow), truncated.
    auto until = [&](std::chrono::milliseconds d) {
      if (shrink == 1.0) return detail::saturating_add(now, d);
      return detail::saturating_add(now, std::chrono::duration<double, std::nano>{d} * shrink);
    };
    const TimePoint expires = until(opts_.ttl);
    const TimePoint fresh_until = opts_.fresh_for.count() == 0 ? expires : until(opts_.fresh_for);
    return Stamps{now, fresh_until, expires};
  }

  static std::uint64_t elapsed_ns(std::chrono::steady_clock::time_point t0) {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
            .count());
  }

  void store_error(const std::string& key, const StoreError& e) {
    store_errors_.add();
    report(ErrorEvent::Kind::store, key, e.what());
  }
  /// The text of a report's key: a key string, or a Call's key, rendered only now (if nobody
  /// listens, never) when it has not been yet.
  static std::string_view key_text(std::string_view key) noexcept { return key; }
  static const std::string& key_text(const Call& call) { return call.key(); }
  /// Tells on_error, if set; `key` is the key (a string) or the Call.
  template <class KeyOrCall>
  void report(ErrorEvent::Kind kind, const KeyOrCall& key, std::string_view what) {
    if (!opts_.on_error) return;
    try {
      opts_.on_error(ErrorEvent{kind, key_text(key), what});
    } catch (...) {
      // A throwing logger must not turn a survived failure into a failed call; nor may a Call's
      // key that cannot be rendered (no memory).
    }
  }
  /// report() of the exception being handled; `key` is the key (a string) or the Call.
  template <class KeyOrCall>
  void report_current(ErrorEvent::Kind kind, const KeyOrCall& key) {
    if (!opts_.on_error) return;
    try {
      throw;
    } catch (const std::exception& e) {
      report(kind, key, e.what());
    } catch (...) {
      report(kind, key, "unknown exception");
    }
  }

  // ---- bulk get-or-compute ----
  template <class First, class... Rest>
  struct bulk_params {
    using type = std::tuple<std::remove_cvref_t<Rest>...>;
    /// A null char pointer given for a string param: std::invalid_argument before converting it.
    template <class... P>
    static void check(const P&... params) {
      detail::check_c_string_args<Rest...>(2, params...);
    }
  };
  /// The params of a bulk call (every argument but the entity), converted to their declared types
  /// once, so that keys hash exactly as a single call's do.
  using BulkParams = typename bulk_params<A...>::type;
  struct BulkNoLoader {};
  /// An entity of a bulk call that found nothing usable in memory.
  struct BulkMiss {
    std::size_t index;  // into the caller's span
    Call call;
  };
  /// The keys a bulk call leads (computes, or awaits from another process) and their flights.
  using Led = std::vector<std::pair<const BulkMiss*, typename Flights::Leader>>;
  static std::vector<const BulkMiss*> misses_of(const Led& led) {
    std::vector<const BulkMiss*> misses;
    misses.reserve(led.size());
    for (const auto& entry : led) misses.push_back(entry.first);
    return misses;
  }

  /// The shared tier's locks a bulk call holds: released when it goes out of scope, after the
  /// values were stored.
  struct HeldLocks {
    explicit HeldLocks(Cached* s) : self{s} {}
    HeldLocks(const HeldLocks&) = delete;
    HeldLocks& operator=(const HeldLocks&) = delete;
    ~HeldLocks() {
      for (const auto& [lock, key] : locks) self->unlock_remote(lock, key);
    }
    Cached* self;
    std::vector<std::pair<RemoteLock, std::string>> locks;  // each lock and its entry's key
  };

  /// Takes the shared tier's lock of every led key; returns the keys to compute here (their lock
  /// held, or the store could not be asked) and moves those another process holds to `awaited`.
  /// As a single call does, the keys locked here are read once more (one get_many): a value that
  /// the previous holder stored between the bulk read and the lock is served, not computed again.
  Led lock_remote(Led& led, Led& awaited, HeldLocks& locks,
                  std::vector<std::optional<result_type>>& out, TimePoint now) {
    std::vector<std::optional<RemoteLock>> attempts = try_remote_locks(misses_of(led));
    Led here;
    Led locked;
    for (std::size_t i = 0; i < led.size(); ++i) {
      std::optional<RemoteLock>& lock = attempts[i];
      if (lock && !lock->held) {
        awaited.push_back(std::move(led[i]));
      } else if (lock) {
        locks.locks.emplace_back(std::move(*lock), led[i].first->call.key());
        locked.push_back(std::move(led[i]));
      } else {
        here.push_back(std::move(led[i]));
      }
    }
    if (locked.empty()) return here;
    // Bytes already found undecodable in the bulk read are not counted again. A value found now
    // was stored by the lock's previous holder: another process's computation.
    const std::size_t was_locked = locked.size();
    Led missing = serve_stored(locked, out, now, /*count_errors=*/false);
    coalesced_.add(was_locked - missing.size());
    for (auto& entry : missing) here.push_back(std::move(entry));
    return here;
  }

  /// Reads the led keys from the shared tier (one get_many) and serves the values found: copied
  /// into memory, their flights completed, their results set. Returns the keys still without one.
  Led serve_stored(Led& led, std::vector<std::optional<result_type>>& out, TimePoint now,
                   bool count_errors) {
    auto remote = bulk_read_remote(misses_of(led), clock_->now(), count_errors);
    Led missing;
    for (std::size_t k = 0; k < led.size(); ++k) {
      auto& [m, leader] = led[k];
      if (auto& found = remote[k]) {
        fill_memory(m->call, found->value, found->stamps);
        leader.complete(found->value, found->stamps);
        out[m->index].emplace(std::move(found->value), Source::remote, !found->stamps.fresh(now),
                              found->stamps.written, now);
      } else {
        missing.push_back(std::move(led[k]));
      }
    }
    return missing;
  }

  /// try_remote_lock for many keys in one ByteStore::try_lock_many (one round trip on Redis):
  /// element i is the attempt for misses[i], or nullopt when the store could not be asked.
  std::vector<std::optional<RemoteLock>> try_remote_locks(
      const std::vector<const BulkMiss*>& misses) {
    std::vector<std::optional<RemoteLock>> locks(misses.size());
    if (misses.empty()) return locks;
    std::vector<std::string> keys;
    keys.reserve(misses.size());
    for (const BulkMiss* m : misses) keys.push_back(lock_key(m->call.key()));
    const std::string token = detail::lock_token();
    try {
      if (!bytes_->available()) return locks;
      const std::vector<bool> taken =
          bytes_->try_lock_many(std::span<const std::string>{keys}, token, opts_.lock_lease);
      for (std::size_t i = 0; i < misses.size() && i < taken.size(); ++i)
        locks[i] = RemoteLock{std::move(keys[i]), token, taken[i]};
    } catch (const StoreError& e) {
      store_error(misses.front()->call.key(), e);
    }
    return locks;
  }

  /// Computes the led keys (one loader call, or fn per key) and completes their flights. The first
  /// failure is kept in first_error; the other keys are still computed and stored.
  template <class Loader>
  void bulk_compute(std::span<const entity_type> entities, Loader* loader, const BulkParams& held,
                    Led& led, std::vector<std::optional<result_type>>& out,
                    std::exception_ptr& first_error) {
    if (led.empty()) return;
    misses_.add(led.size());
    if constexpr (std::is_same_v<Loader, BulkNoLoader>) {
      (void)loader;
      for (auto& [m, leader] : led) {
        try {
          with_bulk_args(entities[m->index], held, [&](const auto&... args) {
            out[m->index].emplace(compute_and_store(m->call, leader, std::nullopt, args...));
          });
        } catch (...) {
          if (!first_error) first_error = std::current_exception();
        }
      }
    } else {
      try {
        bulk_load(entities, *loader, held, led, out);
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
      }
    }
  }

  /// Keys another process is computing: polls the shared tier for their values (one get_many per
  /// Options::lock_poll) until Options::cold_wait. A key whose lock frees up with no value stored
  /// (its holder failed, or died and its lease ran out) is computed here. With OnCold::fail_fast,
  /// or once cold_wait is over, the keys still cold fail with ColdCacheError, as single calls do.
  template <class Loader>
  void await_remote(std::span<const entity_type> entities, Loader* loader, const BulkParams& held,
                    Led& awaited, std::vector<std::optional<result_type>>& out, TimePoint now,
                    std::exception_ptr& first_error) {
    auto refuse = [&](bool waited) {
      for (auto& [m, leader] : awaited) {
        auto error = std::make_exception_ptr(cold_refusal(m->call, "process", waited));
        leader.fail(error);
        if (!first_error) first_error = error;
      }
      awaited.clear();
    };
    if (opts_.on_cold == OnCold::fail_fast) {
      refuse(false);
      return;
    }
    const auto deadline = detail::saturating_add(std::chrono::steady_clock::now(), opts_.cold_wait);
    while (!awaited.empty()) {
      if (std::chrono::steady_clock::now() >= deadline) {
        refuse(true);
        return;
      }
      poll_pause(deadline);
      Led missing = serve_stored(awaited, out, now, /*count_errors=*/true);
      coalesced_.add(awaited.size() - missing.size());  // served by another process's computation
      // Still no value: a key whose lock is free now (its holder gave up) is computed here.
      awaited.clear();
      HeldLocks locks{this};
      Led here = lock_remote(missing, awaited, locks, out, now);
      bulk_compute(entities, loader, held, here, out, first_error);
    }
  }

  template <class G>
  decltype(auto) with_bulk_args(const entity_type& e, const BulkParams& held, G&& g) {
    return std::apply([&](const auto&... p) -> decltype(auto) { return g(e, p...); }, held);
  }

  template <class Loader>
  std::vector<result_type> bulk_get(std::span<const entity_type> entities, Loader* loader,
                                    const BulkParams& held) {
    std::vector<std::optional<result_type>> out(entities.size());
    std::vector<BulkMiss> misses;
    std::vector<std::pair<std::size_t, std::size_t>> duplicates;  // (index, index it repeats)
    std::exception_ptr first_error;  // rethrown once every other key was computed
    const TimePoint now = clock_now();

    // 0. Each key's hash, and the keys repeated in the list: a repeat is looked up, computed and
    //    counted once, at its first index, and copied from there at the end.
    std::vector<std::uint64_t> hashes(entities.size());
    for (std::size_t i = 0; i < entities.size(); ++i) {
      with_bulk_args(entities[i], held, [&](const auto&... args) {
        with_parts([&](const auto&... parts) { hashes[i] = hash_of(parts...); }, args...);
      });
    }
    const std::vector<std::size_t> first = first_occurrences(entities, held, hashes);

    // 1. The memory tier, key by key (a hash lookup each).
    for (std::size_t i = 0; i < entities.size(); ++i) {
      if (first[i] != i) {
        duplicates.emplace_back(i, first[i]);
        continue;
      }
      with_bulk_args(entities[i], held, [&](const auto&... args) {
        with_parts(
            [&](const auto& id, const auto&... parts) {
              const std::uint64_t h = hashes[i];
              if (mem_) {
                Probe probe = probe_memory(h, now, id, parts...);
                if (probe.value) {
                  hits_.add();
                  out[i].emplace(std::move(*probe.value), Source::memory, false, probe.written,
                                 now);
                  return;
                }
                if (probe.stale) {
                  try {
                    out[i].emplace(
                        on_stale_probe(h, now, std::forward_as_tuple(id, parts...), args...));
                  } catch (...) {  // its refresh failed: the other keys are computed first
                    if (!first_error) first_error = std::current_exception();
                  }
                  return;
                }
              }
              misses.push_back(BulkMiss{i, make_call(h, id, parts...)});
            },
            args...);
      });
    }

    // 2. The byte tier: one get_many for every key memory lacked.
    if (bytes_ && !misses.empty()) {
      std::vector<const BulkMiss*> asked;
      asked.reserve(misses.size());
      for (const BulkMiss& m : misses) asked.push_back(&m);
      auto remote = bulk_read_remote(asked, now);
      std::vector<BulkMiss> still;
      for (std::size_t m = 0; m < misses.size(); ++m) {
        if (!remote[m]) {
          still.push_back(std::move(misses[m]));
          continue;
        }
        const std::size_t i = misses[m].index;
        fill_memory(misses[m].call, remote[m]->value, remote[m]->stamps);
        if (remote[m]->stamps.fresh(now)) {
          hits_.add();
          out[i].emplace(std::move(remote[m]->value), Source::remote, false,
                         remote[m]->stamps.written, now);
        } else {
          try {
            with_bulk_args(entities[i], held, [&](const auto&... args) {
              out[i].emplace(on_stale(std::move(misses[m].call), std::move(*remote[m]),
                                      Source::remote, now, args...));
            });
          } catch (...) {
            if (!first_error) first_error = std::current_exception();
          }
        }
      }
      misses = std::move(still);
    }

    // 3. Lead the keys nobody computes yet; join the others.
    // (Reserved first, so that no flight is taken before the room to keep its Leader is.)
    Led led;
    std::vector<std::pair<const BulkMiss*, typename Flights::FlightPtr>> joined;
    led.reserve(misses.size());
    joined.reserve(misses.size());
    for (const BulkMiss& m : misses) {
      auto ticket = flights_.join(m.call.flight_key(), m.call.ticket);
      if (!ticket.leader) {
        joined.emplace_back(&m, std::move(ticket.flight));
        continue;
      }
      typename Flights::Leader& leader = ticket.leader;
      if (mem_) {  // another leader may have stored it between our lookup and our join
        auto eq = [&](const Key& k) { return stored_equal(k, m.call.stored_key); };
        if (auto found = mem_->template find<Key, value_type>(ns_, m.call.hash, eq, now);
            found && found->stamps.fresh(now)) {
          hits_.add();
          leader.complete(found->value, found->stamps);
          out[m.index].emplace(std::move(found->value), Source::memory, false,
                               found->stamps.written, now);
          continue;
        }
      }
      led.emplace_back(&m, std::move(leader));  // counted where it is computed or served
    }

    // 4. Compute what we lead: one loader call, or fn per key. With a shared tier, each key is
    //    locked there first; the keys another process holds are awaited instead.
    Led awaited;
    {
      HeldLocks locks{this};
      if constexpr (Encodable<value_type>) {
        if (bytes_ && !led.empty()) led = lock_remote(led, awaited, locks, out, now);
      }
      bulk_compute(entities, loader, held, led, out, first_error);
    }  // the locks are released here, their values stored
    if (!awaited.empty()) await_remote(entities, loader, held, awaited, out, now, first_error);

    // 5. Wait for the keys other callers compute, every one of them even when a key failed above
    //    or one of these waits throws: wait_for_other counts each (coalesced, coalesced failure or
    //    cold rejection), so every key of the call is counted once. Then rethrow the first failure,
    //    or copy the duplicates.
    for (auto& [m, flight] : joined) {
      try {
        if (auto r = wait_for_other(m->call, *flight, now)) {
          out[m->index].emplace(std::move(*r));
        } else {  // computed before an invalidation this call followed: this key as a single call
          Call call = m->call;
          call.ticket = fence_.ticket(call.hash);
          with_bulk_args(entities[m->index], held, [&](const auto&... args) {
            out[m->index].emplace(on_miss(std::move(call), clock_->now(), args...));
          });
        }
      } catch (...) {
        if (!first_error) first_error = std::current_exception();
      }
    }
    if (first_error) std::rethrow_exception(first_error);
    for (auto [i, from] : duplicates) out[i].emplace(*out[from]);

    std::vector<result_type> results;
    results.reserve(out.size());
    for (auto& r : out) results.push_back(std::move(*r));
    return results;
  }

  /// For each entity of a bulk call, the first index whose key equals its key (itself if none
  /// does). Keys are compared typed, as the memory tier compares them, and only where their hashes
  /// are equal.
  std::vector<std::size_t> first_occurrences(std::span<const entity_type> entities,
                                             const BulkParams& held,
                                             const std::vector<std::uint64_t>& hashes) {
    std::vector<std::size_t> first(entities.size());
    for (std::size_t i = 0; i < first.size(); ++i) first[i] = i;
    if (entities.size() < 2) return first;
    std::vector<std::pair<std::uint64_t, std::size_t>> by_hash(entities.size());
    for (std::size_t i = 0; i < by_hash.size(); ++i) by_hash[i] = {hashes[i], i};
    std::sort(by_hash.begin(), by_hash.end());  // by hash, then by index
    auto key_at = [&](std::size_t i) {
      return with_bulk_args(entities[i], held, [&](const auto&... args) {
        return with_parts([&](const auto&... parts) { return make_key(parts...); }, args...);
      });
    };
    auto equals_key = [&](const Key& k, std::size_t i) {
      return with_bulk_args(entities[i], held, [&](const auto&... args) {
        return with_parts([&](const auto&... parts) { return key_equal(k, parts...); }, args...);
      });
    };
    for (std::size_t b = 0; b < by_hash.size();) {
      std::size_t e = b + 1;
      while (e < by_hash.size() && by_hash[e].first == by_hash[b].first) ++e;
      for (std::size_t x = b; x + 1 < e; ++x) {
        const std::size_t i = by_hash[x].second;
        if (first[i] != i) continue;  // a repeat of an earlier one
        const Key k = key_at(i);
        for (std::size_t y = x + 1; y < e; ++y) {
          const std::size_t j = by_hash[y].second;
          if (first[j] == j && equals_key(k, j)) first[j] = i;
        }
      }
      b = e;
    }
    return first;
  }

  /// One ByteStore::get_many for the misses; a failed read or an undecodable entry is a miss.
  std::vector<std::optional<Found<value_type>>> bulk_read_remote(
      const std::vector<const BulkMiss*>& misses, TimePoint now, bool count_errors = true) {
    std::vector<std::optional<Found<value_type>>> found(misses.size());
    if constexpr (Encodable<value_type>) {
      if (!bytes_->available()) return found;
      std::vector<std::string> keys;
      keys.reserve(misses.size());
      for (const BulkMiss* m : misses) keys.push_back(m->call.key());
      std::vector<std::optional<std::string>> bytes;
      try {
        bytes = bytes_->get_many(std::span<const std::string>{keys});
      } catch (const StoreError& e) {
        store_error(keys.front(), e);
        return found;
      }
      for (std::size_t m = 0; m < misses.size() && m < bytes.size(); ++m) {
        if (!bytes[m]) continue;
        try {
          auto env =
              detail::decode_envelope(*bytes[m], misses[m]->call.identity_key(), fingerprint_);
          if (env.stamps.expired(now)) continue;
          found[m] = Found<value_type>{codec_.decode(env.value), env.stamps};
        } catch (const DecodeError& e) {
          if (!count_errors) continue;
          decode_errors_.add();
          report(ErrorEvent::Kind::decode, keys[m], e.what());
        }
      }
    } else {
      (void)now;
      (void)count_errors;
    }
    return found;
  }

  /// Computes the led keys with one call of the batched loader and completes their flights.
  template <class Loader, class Led>
  void bulk_load(std::span<const entity_type> entities, Loader& loader, const BulkParams& held,
                 Led& led, std::vector<std::optional<result_type>>& out) {
    std::vector<entity_type> batch;
    batch.reserve(led.size());
    for (auto& [m, leader] : led) batch.push_back(entities[m->index]);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<value_type> values;
    std::vector<bool> keep;  // cache_if's verdicts (none: keep all), taken here so that a
                             // throwing one fails them all
    try {
      values = std::apply(
          [&](const auto&... p) {
            return std::vector<value_type>(
                std::invoke(loader, std::span<const entity_type>{batch}, p...));
          },
          held);
      if (values.size() != batch.size())
        throw std::logic_error(
            fmt::format("larder: the batched loader of '{}' returned {} values for {} entities",
                        head_, values.size(), batch.size()));
      if (keep_)
        for (const value_type& v : values) keep.push_back(keep_(v));
    } catch (...) {
      load_time_ns_.add(elapsed_ns(t0));
      load_failures_.add(led.size());
      for (auto& [m, leader] : led) leader.fail(std::current_exception());
      throw;
    }
    load_time_ns_.add(elapsed_ns(t0));
    loads_.add(led.size());
    for (std::size_t k = 0; k < led.size(); ++k) {
      auto& [m, leader] = led[k];
      auto value = std::make_shared<const value_type>(std::move(values[k]));
      const Stamps stamps = make_stamps(clock_->now());
      if (keep.empty() || keep[k]) {  // led keys are cold: a refused one has nothing to replace
        fill_memory(m->call, value, stamps);
        write_remote(m->call, *value, stamps);
      }
      leader.complete(value, stamps);
      out[m->index].emplace(std::move(value), Source::computed, false, stamps.written,
                            stamps.written);
    }
  }
  // ---- bulk get-or-compute ----

  Fn fn_;
  Options opts_;
  std::function<bool(const value_type&)> keep_;  // cache_if; empty: keep every result
  Store* store_;
  Clock* clock_ = nullptr;
  bool system_clock_ = false;  // clock_ is SystemClock::instance(): read it without a virtual call
  Executor* executor_ = nullptr;
  MemoryStore* mem_ = nullptr;
  ByteStore* bytes_ = nullptr;
  CodecOps codec_;  // set whenever bytes_ is
  std::string head_;
  std::uint64_t seed_ = 0;
  std::uint64_t fingerprint_ = 0;
  std::uint32_t ns_ = 0;
  InvalidationBus* bus_ = nullptr;  // the store's invalidation bus, or nullptr
  std::uint64_t bus_id_ = 0;        // our listener on bus_ (0: none)
  std::uint64_t hash_check_ = 0;    // see InvalidationBus::Listener::hash_check
  Flights flights_;
  detail::WriteFence fence_;  // see invalidate()

  detail::StripedCounter hits_, misses_, stale_serves_, stale_on_error_, loads_, load_failures_,
      coalesced_, coalesced_failures_, cold_rejections_, store_errors_, decode_errors_,
      load_time_ns_;
  std::atomic<std::uint64_t> waiting_{0};

  std::mutex background_mutex_;
  std::condition_variable background_cv_;
  std::size_t background_pending_ = 0;
};

template <class Fn>
Cached(Store&, std::string_view, std::string_view, Fn, Options = {}) -> Cached<Fn>;
template <class Fn>
Cached(MemoryStore&, std::string_view, std::string_view, Fn, Options = {}) -> Cached<Fn>;

}  // namespace larder
