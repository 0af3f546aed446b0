// tiered_store.hpp: larder::TieredStore, an in-process MemoryStore (L1) over a shared ByteStore
// (L2, e.g. RedisStore). Thread-safe as its two tiers are.
#pragma once

#include "larder/memory_store.hpp"
#include "larder/store.hpp"

namespace larder {

/// How a TieredStore shares invalidations.
struct TieredOptions {
  /// Publish this instance's invalidate() and refresh() to the other instances sharing the byte
  /// tier, and drop from this L1 what they publish (and everything of the registered functions
  /// after a lost subscription). Takes effect only if the byte tier has an invalidation bus
  /// (RedisStore does; a generic ByteStore has none). false: each L1 keeps its entries until their
  /// TTL, whatever the other instances invalidate.
  bool broadcast_invalidations = true;
};

/// A Store with both tiers: a Cached looks in `memory` first (a hash lookup, no decoding), then in
/// `bytes` (one round trip), then computes and fills both. Neither tier is owned: both must outlive
/// the TieredStore and every Cached using it. Several TieredStores (one per process, say) may share
/// one Redis: with a RedisStore as `bytes`, invalidate() and refresh() on one instance drop the
/// entry from its own L1, from Redis, and (through the store's invalidation bus, within
/// milliseconds) from the other instances' L1. See docs/redis.md, "Invalidation across instances".
///
/// Example:
///   larder::MemoryStore l1{{.max_entries = 50'000}};
///   larder::RedisStore l2{"redis://127.0.0.1:6379"};
///   larder::TieredStore store{l1, l2};
///   larder::Cached top{store, "Author", "top_book_ids", &compute_top_book_ids, {.ttl = 24h}};
class TieredStore final : public Store {
 public:
  TieredStore(MemoryStore& memory, ByteStore& bytes, TieredOptions options = {}) noexcept
      : memory_{&memory},
        bytes_{&bytes},
        bus_{options.broadcast_invalidations ? bytes.invalidation_bus() : nullptr} {}

  MemoryStore* memory_tier() noexcept override { return memory_; }
  ByteStore* byte_tier() noexcept override { return bytes_; }
  /// The byte tier's bus when broadcast_invalidations is on, else nullptr.
  InvalidationBus* invalidation_bus() noexcept override { return bus_; }

 private:
  MemoryStore* memory_;
  ByteStore* bytes_;
  InvalidationBus* bus_;
};

}  // namespace larder
