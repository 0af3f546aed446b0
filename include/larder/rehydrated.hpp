// rehydrated.hpp: larder::Rehydrated caches the ID list a slow function decides on, and returns
// fresh entities for it from a Repository in one batch: a deleted row never appears, an edited row
// is current. Thread-safe: every member may be called concurrently.
//
// Why: caching objects serves deleted rows and old prices. The decision ("which ten books?") costs
// seconds; fetching ten rows by primary key costs milliseconds. Cache the first, redo the second.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <mutex>
#include <ranges>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "larder/cached.hpp"
#include "larder/detail/striped_counter.hpp"
#include "larder/executor.hpp"
#include "larder/options.hpp"
#include "larder/repository.hpp"
#include "larder/result.hpp"
#include "larder/stats.hpp"
#include "larder/store.hpp"

namespace larder {

/// What Rehydrated does beyond caching the IDs.
struct RehydrateOptions {
  /// Share (0, 1] of a cached ID list found missing from the repository at which the list is
  /// recomputed on the executor (at most one recompute per key at a time; the current caller is
  /// still answered from the cached list). 0 disables: deleted rows are only dropped and counted.
  double recompute_when_missing = 0.0;
};

/// One answer of a Rehydrated call: fresh entities in the cached order, and what was dropped.
template <class Entity, class IdList>
struct Rehydration {
  std::vector<Entity> entities;      ///< fresh from the repository, in the cached order
  std::size_t missing = 0;           ///< cached IDs the repository no longer has (dropped)
  Result<IdList> ids;                ///< the cached ID list: source(), stale(), age()
  bool recompute_scheduled = false;  ///< this call scheduled a recompute of the ID list

  auto begin() const noexcept { return entities.begin(); }
  auto end() const noexcept { return entities.end(); }
  std::size_t size() const noexcept { return entities.size(); }
  bool empty() const noexcept { return entities.empty(); }
  const Entity& operator[](std::size_t i) const noexcept { return entities[i]; }
};

/// A snapshot of a Rehydrated's counters.
struct RehydrateStats {
  Stats ids;                              ///< the ID list cache (hits, misses, loads, ...)
  std::uint64_t requests = 0;             ///< calls
  std::uint64_t repository_calls = 0;     ///< Repository::get_many calls (one per non-empty list)
  std::uint64_t repository_failures = 0;  ///< of which threw (propagated to the caller)
  std::uint64_t entities = 0;             ///< entities returned to callers
  std::uint64_t missing = 0;              ///< cached IDs dropped because their row was gone
  std::uint64_t recomputes = 0;           ///< ID-list recomputes scheduled by the threshold
};

template <class Fn, Repository Repo, class Sig = detail::signature_t<Fn>>
class Rehydrated;

/// Caches the ID list fn(args...) returns (through a larder::Cached, with all its policy: TTL,
/// freshness, single flight, stores) and answers each call with the entities for those IDs, fetched
/// fresh by ONE call of repo.get_many(ids), in the cached order. IDs the repository no longer has
/// are dropped and counted (Rehydration::missing, RehydrateStats::missing); with
/// RehydrateOptions::recompute_when_missing, a list missing too many is recomputed in the
/// background. An empty list makes no repository call.
///
/// Failure: fn throws → as Cached (propagates, nothing cached). The repository throws → the
/// exception propagates to this caller, counted in repository_failures, and the cached IDs are left
/// as they were (the next call retries the fetch, not the slow function).
/// Concurrency: a cold key computes once however many threads ask (Cached's single flight); each
/// caller then makes its own repository call, so every answer is as fresh as its own fetch.
///
/// Example:
///   BookRepository books{db};
///   larder::Rehydrated top_books{store, "Author", "top_book_ids", &top_book_ids, books,
///                                {.ttl = 24h, .fresh_for = 1h}};
///   for (const Book& b : top_books(author_id)) render(b);   // never a deleted book, current price
template <class Fn, Repository Repo, class R, class... A>
class Rehydrated<Fn, Repo, detail::Signature<R, A...>> {
 private:
  /// Calls with arguments U... that the null-checking overload of operator() takes.
  template <class... U>
  static constexpr bool c_string_call = detail::converts_c_string<std::tuple<A...>, U...>::value;

 public:
  using entity_type = typename Repo::entity_type;
  using id_type = typename Repo::id_type;
  using id_list_type = std::remove_cvref_t<R>;
  using result_type = Rehydration<entity_type, id_list_type>;

  static_assert(
      std::ranges::forward_range<const id_list_type&> &&
          std::convertible_to<std::ranges::range_reference_t<const id_list_type&>, id_type>,
      "larder::Rehydrated: the function must return a range of the repository's "
      "id_type (e.g. std::vector<std::int64_t>)");

  /// Throws std::invalid_argument for bad options (as Cached, and recompute_when_missing outside
  /// [0, 1]). `repo` must outlive this object.
  Rehydrated(Store& store, std::string_view class_name, std::string_view function_name, Fn fn,
             Repo& repo, Options options = {}, RehydrateOptions rehydrate = {})
      : Rehydrated(store, class_name, function_name, std::move(fn), repo, std::move(options),
                   rehydrate, 0) {}
  /// Over the in-memory store alone: its ID lists are never encoded, so the byte tier's codec is
  /// not compiled (see Cached's constructor of the same shape).
  Rehydrated(MemoryStore& store, std::string_view class_name, std::string_view function_name, Fn fn,
             Repo& repo, Options options = {}, RehydrateOptions rehydrate = {})
      : Rehydrated(store, class_name, function_name, std::move(fn), repo, std::move(options),
                   rehydrate, 0) {}

 private:
  template <class S>  // Store or MemoryStore: the Cached constructor the store's type picks
  Rehydrated(S& store, std::string_view class_name, std::string_view function_name, Fn fn,
             Repo& repo, Options options, RehydrateOptions rehydrate, int)
      : ids_{store, class_name, function_name, std::move(fn), std::move(options)},
        repo_{&repo},
        ropts_{rehydrate} {
    if (!(ropts_.recompute_when_missing >= 0.0 && ropts_.recompute_when_missing <= 1.0))
      throw std::invalid_argument(
          "larder::RehydrateOptions: recompute_when_missing must be in [0, 1] (got " +
          std::to_string(ropts_.recompute_when_missing) + ")");
  }

 public:
  Rehydrated(const Rehydrated&) = delete;
  Rehydrated& operator=(const Rehydrated&) = delete;

  /// Waits for the recomputes this object scheduled.
  ~Rehydrated() {
    std::unique_lock lock{mutex_};
    cv_.wait(lock, [this] { return pending_ == 0; });
  }

  /// operator() given a char pointer for a std::string or std::string_view parameter: converting a
  /// null one is undefined, and happens before the member runs, so this overload takes the
  /// pointers as they are, throws std::invalid_argument for a null one (as Cached does), then
  /// converts.
  template <class... U>
  requires(c_string_call<U...>) result_type operator()(const U&... args) {
    detail::check_c_string_args<A...>(1, args...);
    return (*this)(static_cast<detail::param_t<A>>(args)...);
  }

  /// The fresh entities for the cached IDs of fn(args...). Throws what fn or the repository throws,
  /// and ColdCacheError per Options::on_cold.
  result_type operator()(detail::param_t<A>... args) {
    requests_.add();
    result_type out{{}, 0, ids_(args...), false};
    const id_list_type& list = *out.ids;

    std::vector<id_type> converted;
    std::span<const id_type> ids;
    if constexpr (std::is_same_v<id_list_type, std::vector<id_type>>) {
      ids = std::span<const id_type>{list};
    } else {
      for (auto&& id : list) converted.push_back(static_cast<id_type>(id));
      ids = std::span<const id_type>{converted};
    }
    if (ids.empty()) return out;

    repository_calls_.add();
    auto rows = fetch(ids);

    // Restore the cached order: index the rows by ID, then walk the IDs.
    std::vector<entity_type> pool;
    std::unordered_map<id_type, std::size_t> at;
    at.reserve(ids.size());
    for (auto&& row : rows) {
      entity_type e(std::forward<decltype(row)>(row));
      id_type id = repo_->id_of(e);
      if (at.try_emplace(std::move(id), pool.size()).second) pool.push_back(std::move(e));
    }
    std::vector<std::size_t> placed(pool.size(), kNotPlaced);
    out.entities.reserve(ids.size());
    for (const id_type& id : ids) {
      auto it = at.find(id);
      if (it == at.end()) {
        ++out.missing;
        continue;
      }
      const std::size_t k = it->second;
      if (placed[k] == kNotPlaced) {  // first time: move it in
        placed[k] = out.entities.size();
        out.entities.push_back(std::move(pool[k]));
      } else {  // a repeated ID: copy the entity already placed
        out.entities.push_back(out.entities[placed[k]]);
      }
    }
    entities_.add(out.entities.size());
    if (out.missing > 0) {
      missing_.add(out.missing);
      if (ropts_.recompute_when_missing > 0.0 &&
          static_cast<double>(out.missing) >=
              ropts_.recompute_when_missing * static_cast<double>(ids.size()))
        out.recompute_scheduled = schedule_recompute(args...);
    }
    return out;
  }

  /// The rendered key of the ID list, e.g. "larder:v1:Author:top_book_ids:42".
  std::string key(detail::param_t<A>... args) const { return ids_.key(args...); }
  /// Drops the cached ID list: the next call recomputes it.
  void invalidate(detail::param_t<A>... args) { ids_.invalidate(args...); }
  /// The ID-list cache itself (refresh, get_many, options).
  Cached<Fn>& ids() noexcept { return ids_; }

  RehydrateStats stats() const {
    RehydrateStats s;
    s.ids = ids_.stats();
    s.requests = requests_.load();
    s.repository_calls = repository_calls_.load();
    s.repository_failures = repository_failures_.load();
    s.entities = entities_.load();
    s.missing = missing_.load();
    s.recomputes = recomputes_.load();
    return s;
  }

 private:
  static constexpr std::size_t kNotPlaced = static_cast<std::size_t>(-1);

  decltype(auto) fetch(std::span<const id_type> ids) {
    try {
      return repo_->get_many(ids);
    } catch (...) {
      repository_failures_.add();
      throw;
    }
  }

  /// Recomputes the ID list on the executor, once per key at a time. False if one is already
  /// pending for the key. The task holds owning copies of the arguments (a string_view's text, a
  /// span's elements): the caller's may be gone by the time it runs. Arguments that cannot be held
  /// (a view type, or a copy that throws) drop the cached list instead: the next call recomputes.
  bool schedule_recompute(detail::param_t<A>... args) {
    auto drop = [&] {
      ids_.invalidate(args...);
      recomputes_.add();
      return true;
    };
    if constexpr (!(detail::Ownable<A> && ...)) {
      return drop();
    } else {
      std::string key;
      std::function<void()> task;
      try {
        // Built before the key counts as pending: a copy that throws leaves nothing to undo (it
        // used to leave the key marked and pending_ raised, so ~Rehydrated waited for ever and
        // the key was never recomputed again).
        key = ids_.key(args...);
        task = make_recompute(key, args...);
        std::lock_guard lock{mutex_};
        if (!recomputing_.insert(key).second) return false;
        ++pending_;
      } catch (...) {
        return drop();
      }
      recomputes_.add();
      Executor* executor = ids_.options().executor;
      try {
        (executor ? *executor : ThreadPool::shared()).submit(task);
      } catch (...) {
        task();  // the executor refused it: recompute here (Executor's contract)
      }
      return true;
    }
  }

  /// The recompute task of schedule_recompute: refreshes the list, then unmarks the key.
  std::function<void()> make_recompute(const std::string& key, detail::param_t<A>... args) {
    return [this, key, held = detail::HeldArgs<A...>{detail::hold<A>(args)...}]() mutable {
      try {
        std::apply([&](auto&... a) { ids_.refresh(detail::lend<A>(a)...); }, held);
      } catch (const std::exception& e) {
        report(key, e.what());
      } catch (...) {
        report(key, "unknown exception");
      }
      std::lock_guard lock{mutex_};
      recomputing_.erase(key);
      --pending_;
      cv_.notify_all();
    };
  }

  void report(std::string_view key, std::string_view what) {
    const auto& on_error = ids_.options().on_error;
    if (!on_error) return;
    try {
      on_error(ErrorEvent{ErrorEvent::Kind::background_refresh, key, what});
    } catch (...) {
      // A throwing logger must not break the recompute's bookkeeping.
    }
  }

  Cached<Fn> ids_;
  Repo* repo_;
  RehydrateOptions ropts_;
  detail::StripedCounter requests_, repository_calls_, repository_failures_, entities_, missing_,
      recomputes_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::unordered_set<std::string> recomputing_;
  std::size_t pending_ = 0;
};

template <class Fn, class Repo>
Rehydrated(Store&, std::string_view, std::string_view, Fn, Repo&, Options = {},
           RehydrateOptions = {}) -> Rehydrated<Fn, Repo>;
template <class Fn, class Repo>
Rehydrated(MemoryStore&, std::string_view, std::string_view, Fn, Repo&, Options = {},
           RehydrateOptions = {}) -> Rehydrated<Fn, Repo>;

}  // namespace larder
