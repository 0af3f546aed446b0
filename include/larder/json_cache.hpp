// json_cache.hpp: larder::JsonCache, pre-serialized JSON per entity: the dump() text of each entity
// is cached (as a shared, immutable larder::JsonText) and served as it is, never parsed or
// re-serialized; a list is one JSON array joined from cached texts. Thread-safe: every member may
// be called concurrently. See docs/json.md for when to use it, and when not.
//
// Built on larder::Cached: one cached function per model, keyed
// `{prefix}:v{schema}:{Model}:json:{id}` (e.g. larder:v1:Foo:json:42), over any Store: a
// MemoryStore keeps the text itself (a hit is a hash lookup and a reference count), a byte store
// (Redis) keeps the text's bytes raw after larder's envelope header (Codec<JsonText> below).
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "larder/cached.hpp"
#include "larder/codec.hpp"
#include "larder/error.hpp"
#include "larder/options.hpp"
#include "larder/repository.hpp"
#include "larder/stats.hpp"
#include "larder/store.hpp"
#include "larder/warmer.hpp"

namespace larder {

/// Serialized JSON text, shared and immutable: copying a JsonText copies a pointer, never the text.
/// Example:
///   larder::JsonText t = *foos.get(42);
///   res.set_content(t.data(), t.size(), "application/json");
class JsonText {
 public:
  /// An empty text (no JSON at all; JsonCache never returns one).
  JsonText() = default;
  explicit JsonText(std::string text)
      : text_{std::make_shared<const std::string>(std::move(text))} {}

  std::string_view view() const noexcept {
    return text_ ? std::string_view{*text_} : std::string_view{};
  }
  const char* data() const noexcept { return view().data(); }
  std::size_t size() const noexcept { return text_ ? text_->size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  /// The shared string itself, to keep it (or hand it to an I/O layer) without a copy.
  const std::shared_ptr<const std::string>& shared() const noexcept { return text_; }

  friend bool operator==(const JsonText& a, const JsonText& b) noexcept {
    return a.view() == b.view();
  }

 private:
  std::shared_ptr<const std::string> text_;
};

/// The memory store weighs a JsonText by its bytes.
inline std::uint64_t larder_weight(const JsonText& t) noexcept {
  return t.size() + sizeof(std::string) + 64;
}

/// JsonText's bytes are its text, stored raw (not re-encoded as a JSON string): what a byte store
/// holds after the envelope header is exactly what a client would be served.
template <>
struct Codec<JsonText> {
  static constexpr std::string_view name = "json-text";
  static constexpr std::uint32_t version = 1;
  static std::string encode(const JsonText& t) { return std::string{t.view()}; }
  static JsonText decode(std::string_view bytes) {
    return bytes.empty() ? JsonText{} : JsonText{std::string{bytes}};
  }
};

/// What JsonCache::written(id) does.
enum class OnWrite {
  invalidate,  ///< drop the cached text; the next read computes it (fill on read)
  rewarm,      ///< queue a refresh on the attached Warmer; readers get the previous text until it
               ///< lands (if it fails, the text is dropped: readers fill on read). Without a
               ///< warmer (or if its queue refuses the ID): invalidate
};

/// The knobs of a JsonCache beyond larder::Options.
struct JsonCacheOptions {
  OnWrite on_write{OnWrite::invalidate};  // what written(id) does
};

/// A list answered by JsonCache::get_many: one JSON array, joined from the entities' texts.
template <class Id>
struct JsonArray {
  std::string text;         ///< "[" + texts joined by "," + "]", in the order asked
  std::size_t items = 0;    ///< elements in the array
  std::vector<Id> missing;  ///< IDs asked for that the repository does not have (left out)
};

/// A snapshot of a JsonCache's counters.
struct JsonCacheStats {
  Stats cache;                     ///< the text cache: hits, misses, loads, load time, ...
  std::uint64_t not_found = 0;     ///< IDs asked for that the repository did not have
  std::uint64_t writes = 0;        ///< written() calls
  std::uint64_t bytes_served = 0;  ///< text bytes handed out by get() and get_many() (not warming)
};

/// Caches the serialized JSON of each entity of one model and serves it as bytes.
///
/// Where the text comes from: a larder::Repository (`get_many(ids)` returning the entities that
/// exist, `id_of(e)`; optionally `all_ids()` for warm_all) and a serializer, by default
/// `nlohmann::json(e).dump()` (the entity's to_json). The cached text is exactly the serializer's
/// output, byte for byte, whichever store holds it.
///
/// - get(id): the text, or nullopt if the repository has no such entity (not cached: the next
///   call asks again). A miss computes once however many threads ask (Cached's single flight).
/// - get_many(ids): one JSON array; cached texts are joined, and only the missing ones are loaded,
///   by ONE repository call.
/// - refresh(id): recompute now, skipping the cache, and store (after a write, or on demand).
/// - invalidate(id); written(id): the hook for the write path (OnWrite).
///
/// Failure: the repository (or the serializer) throws → the exception reaches the caller and the
/// cache is left as it was. A store failure (Redis down) is counted in stats().cache.store_errors
/// and the text is computed and returned anyway. An invalid ID (negative integer, empty string, a
/// null const char* for a std::string or std::string_view Id) throws std::invalid_argument before
/// anything else happens.
///
/// Example:
///   larder::MemoryStore store{{.max_entries = 10'000, .max_weight = 512 << 20}};
///   FooRepository repo{db};
///   larder::JsonCache<Foo> foos{store, "Foo", repo, {.ttl = 24h}};
///   if (auto text = foos.get(42)) res.set_content(text->data(), text->size(), "application/json");
///   auto list = foos.get_many(ids);   // list.text is a JSON array
template <class Entity, class Id = std::int64_t>
class JsonCache {
  /// An ID argument of type U that the null-checking overloads below take: a char pointer for a
  /// std::string or std::string_view Id.
  template <class U>
  static constexpr bool c_string_id = detail::converts_c_string<std::tuple<Id>, U>::value;

 public:
  using entity_type = Entity;
  using id_type = Id;
  using Serializer = std::function<std::string(const Entity&)>;

  /// Serializes with nlohmann::json(e).dump(). `repo` must outlive the cache. Throws
  /// std::invalid_argument for bad options or a bad model name (as Cached's class name).
  template <Repository Repo>
  requires std::same_as<typename Repo::entity_type, Entity> &&
      std::convertible_to<typename Repo::id_type, Id>
      JsonCache(Store& store, std::string_view model, Repo& repo, Options options = {},
                JsonCacheOptions json = {})
      : JsonCache(store, model, repo, default_serializer(), std::move(options), json) {}

  /// Serializes with `serialize` (must be thread-safe and deterministic).
  template <Repository Repo>
  requires std::same_as<typename Repo::entity_type, Entity> &&
      std::convertible_to<typename Repo::id_type, Id>
      JsonCache(Store& store, std::string_view model, Repo& repo, Serializer serialize,
                Options options = {}, JsonCacheOptions json = {})
      : model_{model},
        serialize_{std::move(serialize)},
        jopts_{json},
        cached_{store, model, "json", Compute{this}, std::move(options)} {
    if (!serialize_) throw std::invalid_argument("larder::JsonCache: the serializer is empty");
    // An absent entity's empty text is returned to its callers but never stored: a flood of
    // requests for missing IDs costs the shared tier no write, delete or publish.
    cached_.cache_if([](const JsonText& t) { return !t.empty(); });
    load_ = [&repo](std::span<const Id> ids) {
      std::vector<typename Repo::id_type> repo_ids(ids.begin(), ids.end());
      std::vector<Entity> out;
      for (auto&& e : repo.get_many(std::span<const typename Repo::id_type>{repo_ids}))
        out.push_back(std::forward<decltype(e)>(e));
      return out;
    };
    id_of_ = [&repo](const Entity& e) { return static_cast<Id>(repo.id_of(e)); };
    if constexpr (requires { repo.all_ids(); }) {
      all_ids_ = [&repo] {
        std::vector<Id> ids;
        for (auto&& id : repo.all_ids()) ids.push_back(static_cast<Id>(id));
        return ids;
      };
    }
  }

  JsonCache(const JsonCache&) = delete;
  JsonCache& operator=(const JsonCache&) = delete;

  /// The entity's JSON text, from the cache or computed (and cached) now; nullopt if the
  /// repository has no entity with this ID. Throws what the repository throws (nothing cached).
  std::optional<JsonText> get(const Id& id) {
    auto text = lookup(id);
    if (text) bytes_served_.fetch_add(text->size(), std::memory_order_relaxed);
    return text;
  }

  /// The members that take an ID, given a char pointer for a std::string or std::string_view Id:
  /// converting a null one is undefined (std::string throws std::logic_error), and happens before
  /// the member runs, so these overloads take the pointer as it is, throw std::invalid_argument
  /// for a null one (as Cached does), then convert.
  template <class U>
  requires(c_string_id<U>) std::optional<JsonText> get(const U& id) {
    return get(id_from_c_string(id));
  }
  template <class U>
  requires(c_string_id<U>) std::optional<JsonText> refresh(const U& id) {
    return refresh(id_from_c_string(id));
  }
  template <class U>
  requires(c_string_id<U>) void invalidate(const U& id) { invalidate(id_from_c_string(id)); }
  template <class U>
  requires(c_string_id<U>) void written(const U& id) { written(id_from_c_string(id)); }
  template <class U>
  requires(c_string_id<U>) std::string key(const U& id)
  const { return key(id_from_c_string(id)); }
  template <class U>
  requires(c_string_id<U>) void warm(const U& id, WarmKind kind) {
    warm(id_from_c_string(id), kind);
  }
  template <class U>
  requires(c_string_id<U>) void cancelled(const U& id, WarmKind kind) {
    cancelled(id_from_c_string(id), kind);
  }

  /// One JSON array of the entities' texts, in the order of `ids` (duplicates repeated; IDs the
  /// repository lacks are left out and listed in `missing`). Cached texts are joined as they are;
  /// the others are loaded by ONE repository get_many and cached. Throws std::invalid_argument
  /// for an invalid ID (before any work) and what the repository throws (nothing cached for the
  /// IDs it was loading).
  JsonArray<Id> get_many(std::span<const Id> ids) {
    for (const auto& id : ids) check_id(id);
    auto loader = [this](std::span<const Id> missing) { return compute_many(missing); };
    auto results = cached_.get_many(ids, loader);
    JsonArray<Id> out;
    std::size_t total = 2;
    for (const auto& r : results) total += r->size() + 1;
    out.text.reserve(total);
    out.text += '[';
    for (std::size_t i = 0; i < results.size(); ++i) {
      const JsonText& t = *results[i];
      if (t.empty()) {
        out.missing.push_back(ids[i]);
        forget_absent(ids[i], results[i].source());
        continue;
      }
      if (out.items++ > 0) out.text += ',';
      out.text += t.view();
    }
    out.text += ']';
    bytes_served_.fetch_add(out.text.size(), std::memory_order_relaxed);
    return out;
  }
  JsonArray<Id> get_many(std::initializer_list<Id> ids) {
    return get_many(std::span<const Id>{ids.begin(), ids.size()});
  }
  /// get_many({"a", p}) for a std::string or std::string_view Id: the char pointers are taken as
  /// they are (converting a null one to the Id would happen in the caller's list, before any check)
  /// and refused with std::invalid_argument if one is null, before any work.
  template <class U>
  requires(c_string_id<U>) JsonArray<Id> get_many(std::initializer_list<U> ids) {
    std::vector<Id> converted;
    converted.reserve(ids.size());
    for (const U& id : ids) converted.push_back(id_from_c_string(id));
    return get_many(std::span<const Id>{converted});
  }

  /// Recomputes the entity's text now, skipping the cache, and stores it (waiting first for a
  /// computation of this ID already under way, so the stored text was read after this call began).
  /// nullopt if the entity no longer exists (its entry is dropped). Throws what the repository
  /// throws; the cached text is then left as it was.
  std::optional<JsonText> refresh(const Id& id) {
    check_id(id);
    auto r = cached_.refresh(id);
    if (r->empty()) {
      forget_absent(id, r.source());
      return std::nullopt;
    }
    return *r;
  }

  /// Drops the entity's text from every tier of the store.
  void invalidate(const Id& id) {
    check_id(id);
    cached_.invalidate(id);
  }

  /// The write path's hook: call it after a write to the entity is committed. Per
  /// JsonCacheOptions::on_write, drops the text, or queues a refresh on the attached Warmer (and
  /// drops the text if there is none or its queue refuses the ID). A non-owning Id (such as
  /// std::string_view) can have no Warmer, whose queue keeps IDs: its text is dropped.
  void written(const Id& id) {
    check_id(id);
    writes_.fetch_add(1, std::memory_order_relaxed);
    if constexpr (detail::warmable_id<Id>) {  // else no Warmer<Id> exists to re-warm through
      if (jopts_.on_write == OnWrite::rewarm) {
        // Not under warmer_mutex_: with OnFull::block a full queue waits here, and the other
        // written() calls (and attach, detach) must not wait behind it. The use keeps the warmer
        // attached (its destructor's detach_warmer waits for it) until enqueue has returned.
        WarmerUse use{*this};
        if (use.warmer() && use.warmer()->enqueue(id, WarmKind::refresh)) return;
      }
    }
    cached_.invalidate(id);
  }

  /// Serializes an entity as the cache does: the cached text of an entity equals serialize(e).
  std::string serialize(const Entity& e) const { return serialize_(e); }

  /// The cache key of an ID, e.g. "larder:v1:Foo:json:42".
  std::string key(const Id& id) const { return cached_.key(id); }
  const std::string& model() const noexcept { return model_; }

  JsonCacheStats stats() const {
    JsonCacheStats s;
    s.cache = cached_.stats();
    s.not_found = not_found_.load(std::memory_order_relaxed);
    s.writes = writes_.load(std::memory_order_relaxed);
    s.bytes_served = bytes_served_.load(std::memory_order_relaxed);
    return s;
  }

  // ---- the Warmer's side (larder::WarmTarget) ----
  /// fill: as get(id); refresh: refresh(id). Hands no text out, so counts no bytes_served.
  /// A refresh that throws drops the cached text before the exception goes on to the warmer: a
  /// refresh is queued because of a write (written(), OnWrite::rewarm), so that text is known to
  /// be outdated, and readers must fill on read (fresh data, or the error) rather than be served
  /// it until its TTL. (refresh(id) called directly keeps it: its caller gets the error.)
  void warm(const Id& id, WarmKind kind) {
    if (kind == WarmKind::refresh) {
      try {
        refresh(id);
      } catch (...) {
        drop_outdated(id);
        throw;
      }
    } else {
      lookup(id);
    }
  }
  /// Every ID the repository lists (its all_ids()); throws std::logic_error if it has none.
  std::vector<Id> all_ids() const {
    if (!all_ids_)
      throw std::logic_error("larder::JsonCache '" + model_ +
                             "': the repository has no all_ids(), so it cannot be warmed whole");
    return all_ids_();
  }
  /// A refresh dropped by Warmer::stop(cancel): the text would be outdated, so drop it.
  void cancelled(const Id& id, WarmKind kind) {
    if (kind == WarmKind::refresh) cached_.invalidate(id);
  }
  /// Attaches `w` (the Warmer's constructor calls it): written() re-warms through it. One cache has
  /// at most one warmer: while another is attached this throws std::logic_error naming the cache
  /// (the Warmer's constructor then throws it); destroy the first one before attaching another.
  void attach_warmer(Warmer<Id>* w) {
    auto attachment = std::make_shared<Attachment>(w);
    std::lock_guard lock{warmer_mutex_};
    if (attached_ && attached_->warmer != w)
      throw std::logic_error("larder::JsonCache '" + model_ +
                             "': a Warmer is already attached (one per cache); destroy it before "
                             "attaching another");
    if (!attached_) attached_ = std::move(attachment);
  }
  /// Detaches `w` (the Warmer's destructor calls it); nothing if it is not the one attached.
  /// Returns once no written() is using it any more (one may be waiting for room in its queue).
  void detach_warmer(Warmer<Id>* w) {
    std::unique_lock lock{warmer_mutex_};
    if (!attached_ || attached_->warmer != w) return;
    const std::shared_ptr<Attachment> gone = std::move(attached_);  // attached_ is null now
    warmer_cv_.wait(lock, [&] { return gone->users == 0; });
  }

 private:
  /// An attached Warmer, and how many written() calls are using it (enqueueing outside the lock).
  struct Attachment {
    explicit Attachment(Warmer<Id>* w) : warmer{w} {}
    Warmer<Id>* const warmer;
    std::size_t users = 0;  // guarded by warmer_mutex_
  };

  /// A written() call's use of the attached warmer (none if none is attached): counted from
  /// construction to destruction, so that detach_warmer, and so the Warmer's destructor, waits.
  class WarmerUse {
   public:
    explicit WarmerUse(JsonCache& cache) : cache_{cache} {
      std::lock_guard lock{cache_.warmer_mutex_};
      attachment_ = cache_.attached_;
      if (attachment_) ++attachment_->users;
    }
    ~WarmerUse() {
      if (!attachment_) return;
      {
        std::lock_guard lock{cache_.warmer_mutex_};
        --attachment_->users;
      }
      cache_.warmer_cv_.notify_all();
    }
    WarmerUse(const WarmerUse&) = delete;
    WarmerUse& operator=(const WarmerUse&) = delete;
    Warmer<Id>* warmer() const noexcept { return attachment_ ? attachment_->warmer : nullptr; }

   private:
    JsonCache& cache_;
    std::shared_ptr<Attachment> attachment_;
  };

  /// The function Cached memoizes: an ID's text, or an empty JsonText when the entity is absent
  /// (never stored: see cache_if in the constructor).
  struct Compute {
    JsonCache* self;
    JsonText operator()(const Id& id) const { return self->compute_one(id); }
  };

  /// get() without counting the bytes (warming fills through it).
  std::optional<JsonText> lookup(const Id& id) {
    check_id(id);
    auto r = cached_(id);
    if (r->empty()) {
      forget_absent(id, r.source());
      return std::nullopt;
    }
    return *r;
  }

  static Serializer default_serializer() {
    return [](const Entity& e) { return nlohmann::json(e).dump(); };
  }

  JsonText compute_one(const Id& id) {
    const Id one[1] = {id};
    auto entities = load_(std::span<const Id>{one});
    for (const auto& e : entities)
      if (id_of_(e) == id) return JsonText{serialize_(e)};
    return JsonText{};
  }

  std::vector<JsonText> compute_many(std::span<const Id> ids) {
    auto entities = load_(ids);
    std::unordered_map<Id, const Entity*> by_id;
    by_id.reserve(entities.size());
    for (const auto& e : entities) by_id.emplace(id_of_(e), &e);
    std::vector<JsonText> out;
    out.reserve(ids.size());
    for (const auto& id : ids) {
      auto it = by_id.find(id);
      out.push_back(it == by_id.end() ? JsonText{} : JsonText{serialize_(*it->second)});
    }
    return out;
  }

  /// Drops a text known to be outdated after a failed refresh; best effort (what invalidate throws,
  /// an invalid ID say, is dropped: the caller rethrows the refresh's own error).
  void drop_outdated(const Id& id) noexcept {
    try {
      cached_.invalidate(id);
    } catch (...) {
      // The text then keeps its TTL, as before.
    }
  }

  /// An absent entity. A computed (or coalesced) empty text was stored nowhere (cache_if), and
  /// refresh() dropped the old text; one read from a store (written by a version of larder that
  /// kept them) is dropped, so that an entity created later is not hidden by a cached "absent".
  void forget_absent(const Id& id, Source source) {
    not_found_.fetch_add(1, std::memory_order_relaxed);
    if (source == Source::memory || source == Source::remote) cached_.invalidate(id);
  }

  /// The Id of a char pointer (see the overloads that take one); std::invalid_argument if null.
  template <class U>
  Id id_from_c_string(const U& id) const {
    if (id == nullptr)
      throw std::invalid_argument("larder::JsonCache '" + model_ +
                                  "': an ID must not be a null const char* (pass a string)");
    return static_cast<Id>(id);
  }

  void check_id(const Id& id) const {
    if constexpr (std::is_integral_v<Id> && std::is_signed_v<Id>) {
      if (id < 0)
        throw std::invalid_argument(
            fmt::format("larder::JsonCache '{}': an ID must be >= 0 (got {})", model_, id));
    } else if constexpr (std::is_convertible_v<const Id&, std::string_view>) {
      if (std::string_view{id}.empty())
        throw std::invalid_argument("larder::JsonCache '" + model_ + "': an ID must not be empty");
    }
  }

  std::string model_;
  Serializer serialize_;
  JsonCacheOptions jopts_;
  std::function<std::vector<Entity>(std::span<const Id>)> load_;
  std::function<Id(const Entity&)> id_of_;
  std::function<std::vector<Id>()> all_ids_;
  Cached<Compute> cached_;

  std::mutex warmer_mutex_;  // guards attached_ and its users; never held while enqueueing
  std::condition_variable warmer_cv_;     // a written() stopped using its attachment
  std::shared_ptr<Attachment> attached_;  // null: no warmer attached
  std::atomic<std::uint64_t> not_found_{0}, writes_{0}, bytes_served_{0};
};

}  // namespace larder
