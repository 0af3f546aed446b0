// Codecs: the default nlohmann_json codec and the fast one for lists of integers, which must write
// the very bytes nlohmann_json writes and read anything nlohmann_json reads.
#include <cstdint>
#include <larder/codec.hpp>
#include <limits>
#include <map>
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

namespace {

/// Every byte value 0..255, each once, and invalid UTF-8 sequences: a lone continuation byte, a
/// truncated sequence, an overlong NUL, a surrogate (U+D800 in UTF-8 form), a code point past
/// U+10FFFF, and bytes that look like the codec's own mark.
std::vector<std::string> binary_strings() {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  std::vector<std::string> out{all,
                               std::string{"a\0b\0", 4},
                               std::string{"\0", 1},
                               "\x80",
                               "\xc3",
                               "caf\xc3",
                               std::string{"\xc0\x80", 2},
                               "\xed\xa0\x80",
                               "\xf4\x90\x80\x80",
                               "\xff",
                               "\xff\"x\"",
                               "\xef\xbb\xbf\xff",
                               "ok \xc3\xa9 then \xe9"};
  for (int b = 0x80; b < 256; ++b) out.emplace_back(1, static_cast<char>(b));
  return out;
}

}  // namespace

TEST_CASE("Strings that are not UTF-8 round-trip through the default codec byte for byte",
          "[codec][binary]") {
  using C = larder::Codec<std::string>;
  for (const auto& s : binary_strings()) {
    INFO("size " << s.size());
    std::string bytes;
    REQUIRE_NOTHROW(bytes = C::encode(s));
    CHECK(C::decode(bytes) == s);
  }
  // Strings nested anywhere in a value, object keys included.
  using Nested = std::map<std::string, std::vector<std::string>>;
  Nested nested;
  for (const auto& s : binary_strings()) nested[s] = {s, "plain", s + "\xfe"};
  nested["utf-8 \xc3\xa9"] = {"\xe2\x82\xac", ""};
  const std::string bytes = larder::Codec<Nested>::encode(nested);
  CHECK(larder::Codec<Nested>::decode(bytes) == nested);
  const std::vector<std::string> list{"x", "\xff\xfe", std::string{"\0\x80", 2}};
  CHECK(larder::Codec<std::vector<std::string>>::decode(
            larder::Codec<std::vector<std::string>>::encode(list)) == list);
}

TEST_CASE("UTF-8 values encode to the very bytes nlohmann_json writes, as before",
          "[codec][binary]") {
  // Values written before the binary form existed (or by another instance) still read back, and
  // this codec writes nothing else for them.
  using C = larder::Codec<std::string>;
  for (const std::string& s :
       {std::string{}, std::string{"plain"},
        std::string{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8d\x9e"},
        std::string{"quote \" backslash \\ tab \t"}, std::string{"\0\x1f\x7f", 3},
        std::string{"\xef\xbb\xbf"
                    "bom"}}) {
    const std::string bytes = C::encode(s);
    CHECK(bytes == nlohmann::json(s).dump());
    CHECK(C::decode(bytes) == s);
    CHECK(C::decode(nlohmann::json(s).dump()) == s);
  }
  const std::map<std::string, int> m{{"caf\xc3\xa9", 1}, {"b", 2}};
  CHECK(larder::Codec<std::map<std::string, int>>::encode(m) == nlohmann::json(m).dump());
  // The binary form starts with a byte no JSON text starts with.
  CHECK(C::encode("\xff").front() == '\xff');
}

TEST_CASE("Bad bytes in the binary form are DecodeErrors, never wrong values", "[codec][binary]") {
  using C = larder::Codec<std::string>;
  CHECK_THROWS_AS(C::decode("\xff"), larder::DecodeError);          // no JSON after the mark
  CHECK_THROWS_AS(C::decode("\xff\"\xff\""), larder::DecodeError);  // not UTF-8 after it
  CHECK_THROWS_AS(C::decode("\xff\"\xe2\x82\xac\""), larder::DecodeError);  // over U+00FF
  CHECK_THROWS_AS(C::decode("\xff[1]"), larder::DecodeError);               // not a string
  CHECK(C::decode("\xff\"\xc3\xbf\"") == "\xff");
  // Deep nesting after the mark costs heap, not stack (the parser and the walk are iterative).
  std::string deep(1, '\xff');
  deep += std::string(100'000, '[') + std::string(100'000, ']');
  CHECK_THROWS_AS(C::decode(deep), larder::DecodeError);
}
