// bench/reference_policies.hpp: the ARC and LIRS that bench/trace_replay prints beside larder's
// hit ratio. What the papers say of them, checked on small streams.
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "../bench/reference_policies.hpp"
#include "support/catch.hpp"

namespace {

using larder::bench::arc_hits;
using larder::bench::lirs_hits;

std::vector<std::uint32_t> loop(std::uint32_t keys, std::uint32_t rounds) {
  std::vector<std::uint32_t> ids;
  for (std::uint32_t r = 0; r < rounds; ++r)
    for (std::uint32_t k = 0; k < keys; ++k) ids.push_back(k);
  return ids;
}

}  // namespace

TEST_CASE("ARC and LIRS miss only first requests when every key fits", "[reference]") {
  const auto ids = loop(100, 10);  // 1,000 requests of 100 keys
  CHECK(arc_hits(ids, 100, 100) == Approx(0.9));
  CHECK(lirs_hits(ids, 100, 100) == Approx(0.9));
  CHECK(arc_hits(ids, 100, 150) == Approx(0.9));
  CHECK(lirs_hits(ids, 100, 150) == Approx(0.9));
}

TEST_CASE("LIRS keeps most of a loop slightly longer than the cache; ARC does not", "[reference]") {
  // A loop of 201 keys through 200 entries: LRU (and ARC, whose lists are LRU) misses every
  // request; LIRS keeps its 198 LIR blocks and misses the other three keys of each round.
  const auto ids = loop(201, 50);
  const double lirs = lirs_hits(ids, 201, 200);
  CHECK(lirs > 0.95);
  CHECK(lirs < 1.0);
  CHECK(arc_hits(ids, 201, 200) < 0.05);
}

TEST_CASE("ARC keeps a hot set through a one-off scan", "[reference]") {
  // 50 hot keys read twice each, then a scan of 1,000 new keys, repeated: ARC's T2 keeps the hot
  // keys (they were seen twice), so after the first round every hot read hits.
  std::vector<std::uint32_t> ids;
  std::uint32_t next_new = 50;
  for (int round = 0; round < 20; ++round) {
    for (int twice = 0; twice < 2; ++twice)
      for (std::uint32_t k = 0; k < 50; ++k) ids.push_back(k);
    for (int i = 0; i < 1000; ++i) ids.push_back(next_new++);
  }
  // Every hot read but the first round's first 50 hits: 1,950 of 22,000 requests; LRU gets 1,000.
  const double all_hot = 1950.0 / static_cast<double>(ids.size());
  CHECK(arc_hits(ids, next_new, 100) == Approx(all_hot));
  CHECK(lirs_hits(ids, next_new, 100) == Approx(all_hot));
}

TEST_CASE("LIRS refuses a cache of one entry", "[reference]") {
  const std::vector<std::uint32_t> ids{0, 1, 0};
  CHECK_THROWS_AS(lirs_hits(ids, 2, 1), std::invalid_argument);
}
