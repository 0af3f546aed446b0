// memory_store.hpp: the embedded default store: bounded, in-process, TTL-aware, keeping decoded
// values (std::shared_ptr<const T>), so a hit never parses or copies a value.
// Thread-safe: every member may be called concurrently. Never throws StoreError.
//
// Example:
//   larder::MemoryStore store{{.max_entries = 10'000}};
//   larder::Cached top{store, "Author", "top_book_ids", &compute_top_book_ids, {.ttl = 1h}};
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <typeindex>
#include <unordered_map>
#include <utility>

#include "larder/clock.hpp"
#include "larder/store.hpp"

namespace larder {

struct MemoryStoreOptions {
  /// Most entries kept at once, across every Cached using the store. Must be >= 1.
  std::size_t max_entries = 10'000;
};

/// A value found in the store with its stamps.
template <class V>
struct Found {
  std::shared_ptr<const V> value;
  Stamps stamps;
};

class MemoryStore final : public Store {
 public:
  using Options = MemoryStoreOptions;

  explicit MemoryStore(Options options = {}) : options_{options} {
    if (options_.max_entries == 0)
      throw std::invalid_argument("larder::MemoryStoreOptions::max_entries must be at least 1");
  }
  MemoryStore(const MemoryStore&) = delete;
  MemoryStore& operator=(const MemoryStore&) = delete;

  MemoryStore* memory_tier() noexcept override { return this; }

  // ---- the typed interface Cached uses
  // ----------------------------------------------------------- Entries live in namespaces (one per
  // cached function): a namespace fixes the key and value types, so an entry found by (namespace,
  // hash) can be compared by its typed key.

  /// The namespace id for `name` with key type K and value type V. Registering the same name with
  /// other types throws std::invalid_argument (two functions would share keys).
  template <class K, class V>
  std::uint32_t namespace_id(std::string_view name) {
    std::lock_guard lock{mutex_};
    auto it = namespaces_.find(std::string(name));
    if (it != namespaces_.end()) {
      if (it->second.key != typeid(K) || it->second.value != typeid(V))
        throw std::invalid_argument(
            "larder: the key space '" + std::string(name) +
            "' is already used by a cached function with other argument or "
            "result types; give one of them another class or function name");
      return it->second.id;
    }
    const auto id = static_cast<std::uint32_t>(namespaces_.size() + 1);
    namespaces_.emplace(std::string(name), NamespaceInfo{id, typeid(K), typeid(V)});
    return id;
  }

  /// The live entry of namespace ns whose hash is `hash` and whose key satisfies eq, or nullopt.
  /// An entry past its expiry is removed and not returned.
  template <class K, class V, class Eq>
  std::optional<Found<V>> find(std::uint32_t ns, std::uint64_t hash, const Eq& eq, TimePoint now) {
    std::lock_guard lock{mutex_};
    auto range = index_.equal_range(hash);
    for (auto it = range.first; it != range.second; ++it) {
      auto& node = **it->second;
      if (node.ns != ns) continue;
      auto& typed = static_cast<TypedNode<K, V>&>(node);
      if (!eq(typed.key)) continue;
      if (typed.stamps.expired(now)) {
        lru_.erase(it->second);
        index_.erase(it);
        ++expirations_;
        return std::nullopt;
      }
      lru_.splice(lru_.begin(), lru_, it->second);  // most recently used first
      return Found<V>{typed.value, typed.stamps};
    }
    return std::nullopt;
  }

  /// Inserts or replaces the entry, evicting the least recently used ones beyond max_entries.
  template <class K, class V, class Eq>
  void put(std::uint32_t ns, std::uint64_t hash, const Eq& eq, K key,
           std::shared_ptr<const V> value, const Stamps& stamps) {
    auto fresh =
        std::make_unique<TypedNode<K, V>>(ns, hash, stamps, std::move(key), std::move(value));
    std::lock_guard lock{mutex_};
    erase_locked<K, V>(ns, hash, eq);
    lru_.push_front(std::move(fresh));
    index_.emplace(hash, lru_.begin());
    while (lru_.size() > options_.max_entries) {
      auto victim = std::prev(lru_.end());
      remove_from_index(victim);
      lru_.erase(victim);
      ++evictions_;
    }
  }

  /// Removes the entry; true if there was one.
  template <class K, class V, class Eq>
  bool erase(std::uint32_t ns, std::uint64_t hash, const Eq& eq) {
    std::lock_guard lock{mutex_};
    return erase_locked<K, V>(ns, hash, eq);
  }

  // ---- housekeeping
  // ------------------------------------------------------------------------------

  std::size_t size() const {
    std::lock_guard lock{mutex_};
    return lru_.size();
  }
  std::size_t max_entries() const noexcept { return options_.max_entries; }
  std::uint64_t evictions() const {
    std::lock_guard lock{mutex_};
    return evictions_;
  }
  std::uint64_t expirations() const {
    std::lock_guard lock{mutex_};
    return expirations_;
  }
  void clear() {
    std::lock_guard lock{mutex_};
    index_.clear();
    lru_.clear();
  }

 private:
  struct Node {
    Node(std::uint32_t n, std::uint64_t h, const Stamps& s) : ns{n}, hash{h}, stamps{s} {}
    virtual ~Node() = default;
    std::uint32_t ns;
    std::uint64_t hash;
    Stamps stamps;
  };
  template <class K, class V>
  struct TypedNode final : Node {
    TypedNode(std::uint32_t n, std::uint64_t h, const Stamps& s, K k, std::shared_ptr<const V> v)
        : Node{n, h, s}, key{std::move(k)}, value{std::move(v)} {}
    K key;
    std::shared_ptr<const V> value;
  };
  using List = std::list<std::unique_ptr<Node>>;

  struct NamespaceInfo {
    std::uint32_t id;
    std::type_index key;
    std::type_index value;
  };

  template <class K, class V, class Eq>
  bool erase_locked(std::uint32_t ns, std::uint64_t hash, const Eq& eq) {
    auto range = index_.equal_range(hash);
    for (auto it = range.first; it != range.second; ++it) {
      auto& node = **it->second;
      if (node.ns != ns || !eq(static_cast<TypedNode<K, V>&>(node).key)) continue;
      lru_.erase(it->second);
      index_.erase(it);
      return true;
    }
    return false;
  }

  void remove_from_index(List::iterator pos) {
    auto range = index_.equal_range((*pos)->hash);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == pos) {
        index_.erase(it);
        return;
      }
    }
  }

  Options options_;
  mutable std::mutex mutex_;
  List lru_;
  std::unordered_multimap<std::uint64_t, List::iterator> index_;
  std::unordered_map<std::string, NamespaceInfo> namespaces_;
  std::uint64_t evictions_ = 0;
  std::uint64_t expirations_ = 0;
};

}  // namespace larder
