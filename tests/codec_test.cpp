// Codecs: the default nlohmann_json codec and the fast one for lists of integers, which must write
// the very bytes nlohmann_json writes and read anything nlohmann_json reads.
#include <cstdint>
#include <larder/codec.hpp>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/catch.hpp"

TEST_CASE("Integer lists encode to the bytes nlohmann_json writes, and read back", "[codec]") {
  using C = larder::Codec<std::vector<std::int64_t>>;
  std::mt19937_64 rng{42};
  for (int round = 0; round < 500; ++round) {
    std::vector<std::int64_t> v(rng() % 40);
    for (auto& x : v) {
      switch (rng() % 3) {
        case 0:
          x = static_cast<std::int64_t>(rng());
          break;
        case 1:
          x = static_cast<std::int64_t>(rng() % 1000) - 500;
          break;
        default:
          x = rng() % 2 ? std::numeric_limits<std::int64_t>::min()
                        : std::numeric_limits<std::int64_t>::max();
      }
    }
    const std::string bytes = C::encode(v);
    REQUIRE(bytes == nlohmann::json(v).dump());
    REQUIRE(C::decode(bytes) == v);
  }
  CHECK(C::encode({}) == "[]");
  CHECK(C::decode("[]").empty());
}

TEST_CASE("Integer lists read what other JSON writers produce", "[codec]") {
  using C = larder::Codec<std::vector<int>>;
  CHECK(C::decode("[ 1, 2 ,3 ]") == std::vector<int>{1, 2, 3});
  CHECK(C::decode(" [7]") == std::vector<int>{7});
  CHECK(larder::Codec<std::vector<unsigned>>::decode("[4294967295]") ==
        std::vector<unsigned>{4294967295U});
}

TEST_CASE("Bad integer lists are DecodeErrors, never wrong values", "[codec]") {
  using C = larder::Codec<std::vector<std::int16_t>>;
  CHECK_THROWS_AS(C::decode("[70000]"), larder::DecodeError);  // out of range for int16
  CHECK_THROWS_AS(C::decode("[1,2"), larder::DecodeError);
  CHECK_THROWS_AS(C::decode("[1,,2]"), larder::DecodeError);
  CHECK_THROWS_AS(C::decode("\x01garbage"), larder::DecodeError);
  CHECK_THROWS_AS(C::decode(""), larder::DecodeError);
  CHECK_THROWS_AS(C::decode("[1.5]"), larder::DecodeError);
  CHECK_THROWS_AS(C::decode("{\"a\":1}"), larder::DecodeError);
  CHECK_THROWS_AS(larder::Codec<std::vector<unsigned>>::decode("[-1]"), larder::DecodeError);
}
