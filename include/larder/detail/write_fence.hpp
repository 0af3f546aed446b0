// detail/write_fence.hpp: whether a key was invalidated since a computation of it began.
//
// The race it closes: a call misses and computes from the database as it is; the database is
// written and invalidate() erases the key (nothing is cached yet); then the computation ends and
// stores what it read before the write, served until fresh_for runs out. With the fence, a call
// takes a ticket for its key before it reads the shared tier or computes, and its result is stored
// only while the key's counter still holds that ticket; invalidate() moves the counter before it
// erases. The memory tier checks the ticket under the lock its erase takes
// (MemoryStore::put_if), so either the erase removes what was stored or the store is refused.
//
// One counter serves every key whose hash falls on it (256 per Cached): an invalidation also
// refuses the store of another key's computation under way on the same counter. That costs one
// more miss later, never a wrong value.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "larder/detail/hash.hpp"

namespace larder::detail {

class WriteFence {
 public:
  using Ticket = std::uint32_t;

  /// Taken before a computation (or a read of the shared tier) whose result may be stored.
  Ticket ticket(std::uint64_t hash) const noexcept { return slot(hash).load(); }
  /// False if a key with this hash was invalidated since the ticket was taken.
  bool valid(std::uint64_t hash, Ticket t) const noexcept { return slot(hash).load() == t; }
  /// Called before the key's entries are erased.
  void invalidate(std::uint64_t hash) noexcept { slot(hash).fetch_add(1); }
  void invalidate_all() noexcept {
    for (auto& s : slots_) s.fetch_add(1);
  }

 private:
  static constexpr std::size_t kSlots = 256;  // a power of two
  std::atomic<Ticket>& slot(std::uint64_t hash) const noexcept {
    return slots_[static_cast<std::size_t>(mix64(hash)) & (kSlots - 1)];
  }
  // Sequentially consistent throughout (the defaults): the argument above orders a ticket check
  // against an invalidation's increment through the memory store's shard lock.
  mutable std::array<std::atomic<Ticket>, kSlots> slots_{};
};

}  // namespace larder::detail
