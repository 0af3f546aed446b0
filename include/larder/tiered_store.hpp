// tiered_store.hpp: larder::TieredStore, an in-process MemoryStore (L1) over a shared ByteStore
// (L2, e.g. RedisStore). Thread-safe as its two tiers are.
#pragma once

#include "larder/memory_store.hpp"
#include "larder/store.hpp"

namespace larder {

/// A Store with both tiers: a Cached looks in `memory` first (a hash lookup, no decoding), then in
/// `bytes` (one round trip), then computes and fills both. Neither tier is owned: both must outlive
/// the TieredStore and every Cached using it. Several TieredStores (one per process, say) may share
/// one ByteStore; invalidate() on one drops the entry from its own L1 and from L2, not from the
/// other processes' L1.
///
/// Example:
///   larder::MemoryStore l1{{.max_entries = 50'000}};
///   larder::RedisStore l2{"redis://127.0.0.1:6379"};
///   larder::TieredStore store{l1, l2};
///   larder::Cached top{store, "Author", "top_book_ids", &compute_top_book_ids, {.ttl = 24h}};
class TieredStore final : public Store {
 public:
  TieredStore(MemoryStore& memory, ByteStore& bytes) noexcept : memory_{&memory}, bytes_{&bytes} {}

  MemoryStore* memory_tier() noexcept override { return memory_; }
  ByteStore* byte_tier() noexcept override { return bytes_; }

 private:
  MemoryStore* memory_;
  ByteStore* bytes_;
};

}  // namespace larder
