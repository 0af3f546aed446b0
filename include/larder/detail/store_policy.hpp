// detail/store_policy.hpp: the eviction policy as the memory store drives it. Single-threaded: the
// store calls it under its policy mutex only.
//
// The store bounds entries by count (max_entries) and by weight (max_weight, 0 = unbounded). This
// adapter is the one place that knows the policy's interface; the store sees insert (returns
// victims), access, remove, and the totals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace larder::detail {

/// What the policy keeps in each node.
struct StoreHook {
  StoreHook* prev = nullptr;
  StoreHook* next = nullptr;
  std::uint64_t weight = 0;
};

/// Weighted LRU bounded by count and weight.
class StorePolicy {
 public:
  StorePolicy(std::size_t max_entries, std::uint64_t max_weight)
      : max_entries_{max_entries}, max_weight_{max_weight} {
    head_.prev = head_.next = &head_;
  }

  /// Adds n (the most recent) and appends to victims the entries to drop (possibly n itself), each
  /// already removed from the policy.
  void insert(StoreHook* n, std::vector<StoreHook*>& victims) {
    link_front(n);
    ++count_;
    weight_ += n->weight;
    while (count_ > max_entries_ || (max_weight_ != 0 && weight_ > max_weight_)) {
      StoreHook* v = head_.prev;
      remove(v);
      victims.push_back(v);
    }
  }
  void access(StoreHook* n) noexcept {
    unlink(n);
    link_front(n);
  }
  void remove(StoreHook* n) noexcept {
    unlink(n);
    --count_;
    weight_ -= n->weight;
  }
  std::size_t count() const noexcept { return count_; }
  std::uint64_t weight() const noexcept { return weight_; }
  void check_invariants() const {
    std::size_t n = 0;
    std::uint64_t w = 0;
    for (const StoreHook* p = head_.next; p != &head_; p = p->next) {
      if (p->next->prev != p) throw std::logic_error("StorePolicy: broken links");
      ++n;
      w += p->weight;
    }
    if (n != count_ || w != weight_) throw std::logic_error("StorePolicy: totals disagree");
  }

 private:
  void link_front(StoreHook* n) noexcept {
    n->prev = &head_;
    n->next = head_.next;
    head_.next->prev = n;
    head_.next = n;
  }
  static void unlink(StoreHook* n) noexcept {
    n->prev->next = n->next;
    n->next->prev = n->prev;
  }

  std::size_t max_entries_;
  std::uint64_t max_weight_;
  StoreHook head_;
  std::size_t count_ = 0;
  std::uint64_t weight_ = 0;
};

}  // namespace larder::detail
