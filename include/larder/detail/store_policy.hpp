// detail/store_policy.hpp: the eviction policy as the memory store drives it. Single-threaded: the
// store calls it under its policy mutex only.
//
// The store bounds entries by count (max_entries) and by weight (max_weight, 0 = unbounded). This
// adapter is the one place that knows the policy's interface; the store sees insert (returns
// victims), access, remove, and the totals. The policy is W-TinyLFU whose window share and
// admission margin are chosen by miniature simulations (detail/tinylfu.hpp); bench/trace_replay.cpp
// measures it against LRU and Belady's OPT.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "larder/detail/tinylfu.hpp"

namespace larder::detail {

/// What the policy keeps in each node: queue links, weight, region and the folded key hash.
using StoreHook = TinyLfuHook;

/// W-TinyLFU bounded by count and weight.
class StorePolicy {
 public:
  StorePolicy(std::size_t max_entries, std::uint64_t max_weight)
      : policy_{WTinyLfu::Config{.max_entries = max_entries, .max_weight = max_weight}} {}
  explicit StorePolicy(const WTinyLfu::Config& config) : policy_{config} {}

  /// Adds n (the newest entry; its weight and key_hash set) and appends to victims the entries to
  /// drop (possibly n itself), each already removed from the policy.
  void insert(StoreHook* n, std::vector<StoreHook*>& victims) { policy_.insert(n, victims); }

  /// The same for a node that carries its key's hash in `hash` (the store's nodes keep the 64-bit
  /// hash folded to 32 bits; folding that again changes nothing): the sketch counts the key by
  /// that hash, so a key evicted and put again keeps its history.
  template <class Node>
  requires std::derived_from<Node, StoreHook> && requires(const Node& n) {
    { n.hash } -> std::convertible_to<std::uint64_t>;
  }
  void insert(Node* n, std::vector<StoreHook*>& victims) {
    n->key_hash = StoreHook::fold(n->hash);
    policy_.insert(n, victims);
  }

  void access(StoreHook* n) noexcept { policy_.access(n); }
  void remove(StoreHook* n) noexcept { policy_.remove(n); }
  std::size_t count() const noexcept { return policy_.count(); }
  std::uint64_t weight() const noexcept { return policy_.weight(); }
  void check_invariants() const { policy_.check_invariants(); }

  /// The policy itself (tests and the trace replayer read its window share and sketch).
  const WTinyLfu& policy() const noexcept { return policy_; }

 private:
  WTinyLfu policy_;
};

}  // namespace larder::detail
