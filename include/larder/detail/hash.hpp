// detail/hash.hpp: fast non-cryptographic hashing of key parts (never rendered on the hot path).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace larder::detail {

/// The 64-bit finalizer of MurmurHash3 (fmix64): a bijection with full avalanche.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

/// Folds v into the running hash h (order-sensitive).
constexpr std::uint64_t hash_combine(std::uint64_t h, std::uint64_t v) noexcept {
  return mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// Hashes bytes 8 at a time; seeded so that two independent hashes can form a 128-bit digest.
inline std::uint64_t hash_bytes(std::string_view s, std::uint64_t seed = 0) noexcept {
  std::uint64_t h = mix64(seed ^ (s.size() * 0x9e3779b97f4a7c15ULL));
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    h = mix64(h ^ load64(p)) * 0x9fb21c651e98df25ULL;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t tail = 0;
    std::memcpy(&tail, p, n);
    h = mix64(h ^ tail ^ (std::uint64_t{n} << 56));
  }
  return mix64(h);
}

}  // namespace larder::detail
