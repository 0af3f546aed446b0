// detail/epoch.hpp: epoch-based reclamation [Fraser 2004; crossbeam-epoch], so that readers of the
// memory store take no lock and write no shared cache line.
//
// Readers: a thread enters a read section by announcing the global epoch in a record of its own
// (one uncontended atomic exchange on a line nobody else writes) and leaves it with a plain store.
// Inside, it may follow any pointer it loaded from a shared structure.
//
// Writers: a node unlinked from every shared structure is *retired* with the epoch current at that
// moment; it may be freed once the global epoch has moved two steps past it, because the epoch only
// moves when every thread inside a read section has announced the current epoch, so every section
// that could have seen the node has ended by then.
//
// On Linux the read side has no fence at all: entering is a plain store, and the writer that wants
// to move the epoch first runs membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which makes every
// thread of the process execute a full barrier [liburcu's urcu-memb flavour, folly's asymmetric
// fences]. After it, an announcement a reader made is visible, and a reader whose announcement is
// not visible has not loaded anything yet. Where membarrier is missing, entering is an atomic
// exchange.
//
// Records are never freed: a thread's record returns to a free list when the thread exits and is
// reused by the next thread, so the list is as long as the most threads ever alive at once (plus
// one for each thread that read a store from a thread-local destructor after its record was
// released: see Holder).
#pragma once

#include <atomic>
#include <cstdint>

#if defined(__linux__)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "larder/detail/striped_counter.hpp"

namespace larder::detail {

class EpochDomain {
 public:
  static constexpr std::uint64_t kIdle = ~std::uint64_t{0};

  struct alignas(kCacheLine) Record {
    std::atomic<std::uint64_t> epoch{kIdle};  // the epoch announced while in a section, else kIdle
    std::atomic<bool> in_use{true};
    Record* next = nullptr;  // immutable once published
  };

  /// The process-wide domain every MemoryStore uses.
  static EpochDomain& global() noexcept {
    static EpochDomain domain;
    return domain;
  }

  /// This thread's record, claimed on first use and released when the thread exits.
  /// (The fast path is one constant-initialized thread-local load, with no guard.)
  Record& record() {
    Record*& cached = cached_record();
    if (cached == nullptr) [[unlikely]]
      cached = claim_record();
    return *cached;
  }

  /// Marks the calling thread as reading until the guard dies. Not reentrant per thread.
  class Guard {
   public:
    explicit Guard(EpochDomain& d) : rec_{&d.record()} {
      const std::uint64_t e = d.epoch_.load(std::memory_order_relaxed);
      if (d.asymmetric_) {
        rec_->epoch.store(e, std::memory_order_relaxed);
        std::atomic_signal_fence(
            std::memory_order_seq_cst);  // the writer's membarrier does the rest
      } else {
        // The exchange orders the announcement before every later load of shared pointers.
        rec_->epoch.exchange(e, std::memory_order_seq_cst);
      }
    }
    ~Guard() { leave(); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

    /// Ends the read section before the guard dies (the destructor then marks the thread idle
    /// again, which changes nothing). Not an optional<Guard> reset: GCC 12 at -O1 warns that the
    /// optional's guard may be used uninitialized (-Wmaybe-uninitialized, in users' builds too).
    void leave() noexcept { rec_->epoch.store(kIdle, std::memory_order_release); }

   private:
    Record* rec_;
  };

  std::uint64_t current() const noexcept { return epoch_.load(std::memory_order_seq_cst); }

  /// Moves the epoch one step if every thread in a read section has seen the current one. Returns
  /// the epoch after the attempt. Nodes retired at an epoch e are free to delete when the returned
  /// value is >= e + 2.
  std::uint64_t try_advance() noexcept {
    const std::uint64_t e = epoch_.load(std::memory_order_seq_cst);
    // The caller unlinked nodes before this; a reader announces, then loads pointers. Neither side
    // may miss the other's write (a store-buffering pattern), so each needs a full barrier between
    // its write and its read: the membarrier runs one on every reader; without it the reader's
    // exchange is one, and this fence is the writer's (an x86 locked instruction gave it for free,
    // weaker orderings such as ARM's do not).
    if (asymmetric_)
      heavy_barrier();
    else
      full_fence();
    for (Record* r = head_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      const std::uint64_t seen = r->epoch.load(std::memory_order_seq_cst);
      if (seen != kIdle && seen != e) return e;
    }
    std::uint64_t expected = e;
    epoch_.compare_exchange_strong(expected, e + 1, std::memory_order_seq_cst);
    return epoch_.load(std::memory_order_seq_cst);
  }

 private:
  /// Releases the thread's record when the thread exits. A thread-local object constructed before
  /// the thread's first read is destroyed after this, and may still read a store: it then reads
  /// under a record of its own (see claim_record), not under the released one, which another
  /// thread may have claimed (two threads on one record: one's exit from a read section would end
  /// the other's, and the node it reads could be freed).
  struct Holder {
    explicit Holder(EpochDomain& d) : record{d.acquire_record()} {}
    ~Holder() {
      cached_record() = nullptr;
      exited() = true;
      record->in_use.store(false, std::memory_order_release);
    }
    Record* record;
  };

  /// The calling thread's record, or null before its first read (trivially destructible: usable
  /// in every thread-local destructor).
  static Record*& cached_record() noexcept {
    thread_local Record* cached = nullptr;
    return cached;
  }
  /// True once the calling thread's Holder is destroyed.
  static bool& exited() noexcept {
    thread_local bool gone = false;
    return gone;
  }

  [[gnu::noinline]] Record* claim_record() {
    // Reads after the holder is gone (thread-local destructors) take a record for good: nothing
    // is left in the thread to release it. One record per such thread, never freed.
    if (exited()) return acquire_record();
    thread_local Holder holder{*this};
    return holder.record;
  }

  Record* acquire_record() {
    for (Record* r = head_.load(std::memory_order_acquire); r != nullptr; r = r->next) {
      bool expected = false;
      if (r->in_use.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) return r;
    }
    auto* fresh = new Record;  // never freed: see the header comment
    Record* head = head_.load(std::memory_order_relaxed);
    do {
      fresh->next = head;
    } while (!head_.compare_exchange_weak(head, fresh, std::memory_order_acq_rel,
                                          std::memory_order_relaxed));
    return fresh;
  }

  EpochDomain() noexcept : asymmetric_{register_membarrier()} {}

  static bool register_membarrier() noexcept {
#if defined(__linux__) && defined(__NR_membarrier) && !defined(LARDER_NO_MEMBARRIER)
    const long cmds = ::syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (cmds < 0 || (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return ::syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
  }

  /// A full barrier on this thread. ThreadSanitizer does not model fences (GCC refuses them under
  /// -fsanitize=thread, -Werror=tsan), so there a seq_cst read-modify-write stands in for it.
  void full_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
    epoch_.fetch_add(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }

  /// A full barrier on every thread of the process (only called when asymmetric_).
  static void heavy_barrier() noexcept {
#if defined(__linux__) && defined(__NR_membarrier)
    ::syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
#endif
  }

  const bool asymmetric_;
  std::atomic<std::uint64_t> epoch_{1};
  std::atomic<Record*> head_{nullptr};
};

}  // namespace larder::detail
