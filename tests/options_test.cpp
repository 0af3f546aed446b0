// Options: every invalid field is refused with std::invalid_argument naming it.
#include <cstdint>
#include <larder/larder.hpp>
#include <limits>
#include <string>

#include "support/catch.hpp"

using namespace std::chrono_literals;

namespace {
std::int64_t ident(std::int64_t id) { return id; }

std::string error_of(const larder::Options& o) {
  larder::MemoryStore store;
  try {
    larder::Cached c{store, "T", "f", &ident, o};
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}
}  // namespace

TEST_CASE("Invalid options are rejected, naming the field", "[options]") {
  CHECK_THAT(error_of({.ttl = 0ms}), Catch::Contains("ttl"));
  CHECK_THAT(error_of({.ttl = -5ms}), Catch::Contains("ttl"));
  CHECK_THAT(error_of({.ttl = 1h, .fresh_for = 2h}), Catch::Contains("fresh_for"));
  CHECK_THAT(error_of({.fresh_for = -1ms}), Catch::Contains("fresh_for"));
  CHECK_THAT(error_of({.jitter = 0.9}), Catch::Contains("jitter"));
  CHECK_THAT(error_of({.jitter = -0.1}), Catch::Contains("jitter"));
  CHECK_THAT(error_of({.jitter = std::numeric_limits<double>::quiet_NaN()}),
             Catch::Contains("jitter"));
  CHECK_THAT(error_of({.stale_if_error = -1ms}), Catch::Contains("stale_if_error"));
  CHECK_THAT(error_of({.cold_wait = 0ms}), Catch::Contains("cold_wait"));
  CHECK_THAT(error_of({.lock_lease = 0ms}), Catch::Contains("lock_lease"));
  CHECK_THAT(error_of({.lock_poll = 0ms}), Catch::Contains("lock_poll"));
  CHECK_THAT(error_of({.prefix = ""}), Catch::Contains("prefix"));
  CHECK_THAT(error_of({.prefix = "a:b"}), Catch::Contains("prefix"));
  CHECK_THAT(error_of({.max_key_length = 10}), Catch::Contains("max_key_length"));
  CHECK(error_of({.ttl = 24h, .fresh_for = 1h, .jitter = 0.1}) == "accepted");
  CHECK(error_of({}) == "accepted");
}

TEST_CASE("max_key_length bounds every key or the constructor refuses it", "[options][key]") {
  larder::MemoryStore store;
  const std::string cls(40, 'C');
  const std::string fn(40, 'f');
  auto join = [](std::int64_t id, const std::string& a) { return a + std::to_string(id); };
  // The head alone ("larder:v1:" + 40 + ":" + 40 + ":") is 92 bytes: no key of 64 can hold it.
  try {
    larder::Cached c{store, cls, fn, join, {.max_key_length = 64}};
    FAIL("accepted a max_key_length of 64 under a head of 92 bytes: key() is "
         << c.key(1, "p").size() << " bytes");
  } catch (const std::invalid_argument& e) {
    CHECK_THAT(e.what(), Catch::Contains("max_key_length"));
  }
  // 92 + the 33 bytes of a hashed tail fit in 125: then every key does.
  CHECK_THROWS_AS((larder::Cached{store, cls, fn, join, {.max_key_length = 124}}),
                  std::invalid_argument);
  larder::Cached c{store, cls, fn, join, {.max_key_length = 125}};
  for (std::size_t n : {0, 1, 10, 31, 32, 33, 40, 100, 1000}) {
    for (std::int64_t id : {std::int64_t{1}, std::numeric_limits<std::int64_t>::min()}) {
      CAPTURE(n, id);
      CHECK(c.key(id, std::string(n, 'p')).size() <= 125);
    }
  }
}
