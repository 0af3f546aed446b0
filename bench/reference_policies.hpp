// reference_policies.hpp: ARC and LIRS over dense key ids, for bench/trace_replay's reference
// columns (issue 6 asks larder to aim past the field's policies; these are the two best-known
// adaptive ones besides W-TinyLFU). Straight from the papers, single-threaded, O(1) per request:
//
//   ARC: N. Megiddo, D. Modha, "ARC: A Self-Tuning, Low Overhead Replacement Cache", FAST 2003
//        (Figure 4: the four lists T1, T2, B1, B2 and the adaptive target p).
//   LIRS: S. Jiang, X. Zhang, "LIRS: An Efficient Low Inter-reference Recency Set Replacement
//        Policy to Improve Buffer Cache Performance", SIGMETRICS 2002 (section 3: stack S, queue
//        Q, 1% of the cache for resident HIR blocks; non-resident HIR entries in S unbounded).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace larder::bench {

/// Doubly linked lists over ids 0..n-1; an id is in at most one list of a given ListSet.
class ListSet {
 public:
  static constexpr std::uint32_t kNil = ~std::uint32_t{0};
  struct List {
    std::uint32_t head = kNil;  // most recent
    std::uint32_t tail = kNil;  // least recent
    std::size_t size = 0;
  };

  explicit ListSet(std::uint32_t n) : prev_(n, kNil), next_(n, kNil) {}

  void push_front(List& l, std::uint32_t x) {
    prev_[x] = kNil;
    next_[x] = l.head;
    if (l.head != kNil) prev_[l.head] = x;
    l.head = x;
    if (l.tail == kNil) l.tail = x;
    ++l.size;
  }
  void unlink(List& l, std::uint32_t x) {
    if (prev_[x] != kNil) {
      next_[prev_[x]] = next_[x];
    } else {
      l.head = next_[x];
    }
    if (next_[x] != kNil) {
      prev_[next_[x]] = prev_[x];
    } else {
      l.tail = prev_[x];
    }
    prev_[x] = next_[x] = kNil;
    --l.size;
  }
  std::uint32_t pop_back(List& l) {
    const std::uint32_t x = l.tail;
    unlink(l, x);
    return x;
  }

 private:
  std::vector<std::uint32_t> prev_, next_;
};

/// ARC's hit ratio on `ids` (dense ids below `distinct`) with room for `capacity` entries.
inline double arc_hits(const std::vector<std::uint32_t>& ids, std::uint32_t distinct,
                       std::size_t capacity) {
  enum Where : std::uint8_t { none, t1, t2, b1, b2 };
  std::vector<Where> where(distinct, none);
  ListSet lists{distinct};
  ListSet::List T1, T2, B1, B2;
  auto list = [&](Where w) -> ListSet::List& {
    return w == t1 ? T1 : w == t2 ? T2 : w == b1 ? B1 : B2;
  };
  auto move = [&](std::uint32_t x, Where to) {
    if (where[x] != none) lists.unlink(list(where[x]), x);
    where[x] = to;
    if (to != none) lists.push_front(list(to), x);
  };
  const auto c = static_cast<double>(capacity);
  double p = 0;  // the target size of T1
  // Moves T1's or T2's least recent entry to its ghost list (the paper's REPLACE).
  auto replace = [&](bool in_b2) {
    const auto s1 = static_cast<double>(T1.size);
    if (T1.size >= 1 && ((in_b2 && s1 == p) || s1 > p)) {
      move(T1.tail, b1);
    } else if (T2.size >= 1) {
      move(T2.tail, b2);
    } else {
      move(T1.tail, b1);
    }
  };
  std::size_t hits = 0;
  for (const std::uint32_t x : ids) {
    switch (where[x]) {
      case t1:
      case t2:
        ++hits;
        move(x, t2);
        break;
      case b1: {
        const double delta =
            std::max(1.0, static_cast<double>(B2.size) / static_cast<double>(B1.size));
        p = std::min(c, p + delta);
        replace(false);
        move(x, t2);
        break;
      }
      case b2: {
        const double delta =
            std::max(1.0, static_cast<double>(B1.size) / static_cast<double>(B2.size));
        p = std::max(0.0, p - delta);
        replace(true);
        move(x, t2);
        break;
      }
      case none: {
        const std::size_t l1 = T1.size + B1.size;
        const std::size_t total = l1 + T2.size + B2.size;
        if (l1 == capacity) {
          if (T1.size < capacity) {
            move(B1.tail, none);
            replace(false);
          } else {
            move(T1.tail, none);
          }
        } else if (total >= capacity) {
          if (total == 2 * capacity) move(B2.tail, none);
          replace(false);
        }
        move(x, t1);
        break;
      }
    }
  }
  return static_cast<double>(hits) / static_cast<double>(ids.size());
}

/// LIRS's hit ratio on `ids` with room for `capacity` entries, 1% of them (at least one) for
/// resident HIR blocks, as in the paper.
inline double lirs_hits(const std::vector<std::uint32_t>& ids, std::uint32_t distinct,
                        std::size_t capacity) {
  if (capacity < 2) throw std::invalid_argument("lirs_hits: a capacity of at least 2");
  const std::size_t hir_room = std::max<std::size_t>(1, capacity / 100);
  const std::size_t lir_room = capacity - hir_room;
  struct Block {
    bool lir = false;
    bool resident = false;
    bool in_s = false;
    bool in_q = false;
  };
  std::vector<Block> b(distinct);
  ListSet s_links{distinct}, q_links{distinct};
  ListSet::List S, Q;  // S: the LIRS stack (head = top); Q: resident HIR blocks (tail = front)
  std::size_t lir_count = 0, resident = 0, hits = 0;
  auto s_top = [&](std::uint32_t x) {
    if (b[x].in_s) s_links.unlink(S, x);
    s_links.push_front(S, x);
    b[x].in_s = true;
  };
  auto q_end = [&](std::uint32_t x) {
    if (b[x].in_q) q_links.unlink(Q, x);
    q_links.push_front(Q, x);
    b[x].in_q = true;
  };
  auto q_remove = [&](std::uint32_t x) {
    if (!b[x].in_q) return;
    q_links.unlink(Q, x);
    b[x].in_q = false;
  };
  // Stack pruning: HIR blocks leave the bottom of S until an LIR block is there.
  auto prune = [&] {
    while (S.size > 0 && !b[S.tail].lir) {
      const std::uint32_t y = s_links.pop_back(S);
      b[y].in_s = false;
    }
  };
  // The LIR block at the bottom of S becomes a resident HIR block at the end of Q.
  auto demote_bottom = [&] {
    const std::uint32_t y = s_links.pop_back(S);
    b[y].in_s = false;
    b[y].lir = false;
    --lir_count;
    q_end(y);
    prune();
  };
  for (const std::uint32_t x : ids) {
    Block& k = b[x];
    if (k.lir) {
      ++hits;
      const bool was_bottom = S.tail == x;
      s_top(x);
      if (was_bottom) prune();
      continue;
    }
    if (k.resident) {  // a resident HIR block
      ++hits;
      if (k.in_s) {
        s_top(x);
        q_remove(x);
        k.lir = true;
        ++lir_count;
        demote_bottom();
      } else {
        s_top(x);
        q_end(x);
      }
      continue;
    }
    // A miss: make room by evicting the resident HIR block at the front of Q.
    if (resident >= capacity) {
      const std::uint32_t v = Q.tail;
      q_remove(v);
      b[v].resident = false;
      --resident;
    }
    k.resident = true;
    ++resident;
    if (lir_count < lir_room) {  // the LIR set is not full yet (warm-up)
      k.lir = true;
      ++lir_count;
      s_top(x);
    } else if (k.in_s) {  // a non-resident HIR block still in S: its IRR beats the bottom LIR's
      k.lir = true;
      ++lir_count;
      s_top(x);
      demote_bottom();
    } else {
      s_top(x);
      q_end(x);
    }
  }
  return static_cast<double>(hits) / static_cast<double>(ids.size());
}

}  // namespace larder::bench
