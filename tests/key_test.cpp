// Keys: order, escaping, injectivity, bounds, and the customization points.
#include <cmath>
#include <cstdint>
#include <larder/larder.hpp>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "support/catch.hpp"

using namespace std::chrono_literals;

namespace shop {
struct Author {
  std::int64_t id;
};
struct Isbn {
  std::string text;
};
struct Book {
  Isbn isbn;
};
std::string larder_id(const Book& b) { return b.isbn.text; }
struct Money {
  std::int64_t cents;
};
std::int64_t larder_key_part(const Money& m) { return m.cents; }
enum class Sort { by_sales = 1, by_date = 2 };
struct WithIdFunction {
  int id() const { return 7; }
};
}  // namespace shop

namespace {

std::vector<std::int64_t> top_ids(const shop::Author& a, int limit) {
  return std::vector<std::int64_t>(static_cast<std::size_t>(limit), a.id);
}
int two_strings(const std::string& id, const std::string& a, const std::string& b) {
  return static_cast<int>(a.size() + b.size() + id.size());
}

}  // namespace

TEST_CASE("Keys read class, function, params, then the entity id", "[key]") {
  larder::MemoryStore store;
  larder::Cached top{store, "Author", "top_book_ids", &top_ids};
  CHECK(top.key(shop::Author{42}, 10) == "larder:v1:Author:top_book_ids:10:42");

  larder::Cached other{
      store, "Author", "top_book_ids2", &top_ids, {.prefix = "shop", .schema_version = 3}};
  CHECK(other.key(shop::Author{42}, 10) == "shop:v3:Author:top_book_ids2:10:42");
}

TEST_CASE("Keys use the id customization points", "[key]") {
  larder::MemoryStore store;
  larder::Cached by_book{store, "Book", "price",
                         [](const shop::Book& b, shop::Money m, shop::Sort s) {
                           return static_cast<int>(b.isbn.text.size() + m.cents) + int(s);
                         }};
  CHECK(by_book.key(shop::Book{{"978-3"}}, shop::Money{250}, shop::Sort::by_date) ==
        "larder:v1:Book:price:250:2:978-3");

  larder::Cached by_fn{store, "W", "f", [](const shop::WithIdFunction&) { return 1; }};
  CHECK(by_fn.key(shop::WithIdFunction{}) == "larder:v1:W:f:7");

  larder::Cached by_string{store, "S", "len", [](const std::string& s) { return s.size(); }};
  CHECK(by_string.key("abc") == "larder:v1:S:len:abc");
}

TEST_CASE("Keys render ranges, floats, bools and empty strings distinctly", "[key]") {
  larder::MemoryStore store;
  larder::Cached f{store, "T", "f",
                   [](std::int64_t, const std::vector<std::string>& tags, double x, bool b) {
                     return tags.size() + static_cast<std::size_t>(x) + b;
                   }};
  CHECK(f.key(1, std::vector<std::string>{"a", "b"}, 0.5, true) ==
        "larder:v1:T:f:[a,b]:0.5:true:1");
  CHECK(f.key(1, std::vector<std::string>{}, -0.0, false) == "larder:v1:T:f:[]:-0:false:1");
  CHECK(f.key(1, std::vector<std::string>{""}, 1e300, false) ==
        "larder:v1:T:f:[\"\"]:1e+300:false:1");
}

TEST_CASE("Separators inside values are escaped", "[key]") {
  larder::MemoryStore store;
  larder::Cached f{store, "T", "two", &two_strings};
  // The entity comes first in the call and last in the key.
  const auto k1 = f.key("x", "a:b", "c");
  const auto k2 = f.key("x", "a", "b:c");
  CHECK(k1 == "larder:v1:T:two:a%3Ab:c:x");
  CHECK(k2 == "larder:v1:T:two:a:b%3Ac:x");
  CHECK(k1 != k2);
  CHECK(f.key("\n", "100%", " ") == "larder:v1:T:two:100%25:%20:%0A");
  CHECK(f.key("", "", "") == "larder:v1:T:two:\"\":\"\":\"\"");
  CHECK(f.key("\"\"", "", "") != f.key("", "", ""));
}

TEST_CASE("Over-long keys hash their params tail and stay bounded", "[key]") {
  larder::MemoryStore store;
  larder::Cached f{store, "T", "two", &two_strings, {.max_key_length = 100}};
  const std::string long_a(500, 'a');
  const auto k = f.key("42", long_a, "b");
  CHECK(k.size() <= 100);
  CHECK(k.starts_with("larder:v1:T:two:#"));
  CHECK(k.ends_with(":42"));  // the id stays readable when it fits
  CHECK(f.key("42", long_a, "c") != k);
  const std::string long_id(500, 'z');
  const auto k2 = f.key(long_id, "a", "b");
  CHECK(k2.size() <= 100);
  CHECK(f.key(long_id + "z", "a", "b") != k2);
  // Short keys are untouched.
  CHECK(f.key("c", "a", "b") == "larder:v1:T:two:a:b:c");
}

TEST_CASE("Property: different argument lists never share a key", "[key][property]") {
  larder::MemoryStore store;
  larder::Cached f{store,
                   "T",
                   "mix",
                   [](const std::string& id, const std::string& a, std::int64_t n,
                      const std::vector<std::string>& v, double d) {
                     return id.size() + a.size() + static_cast<std::size_t>(n) + v.size() +
                            static_cast<std::size_t>(d);
                   },
                   {.max_key_length = 120}};
  std::mt19937_64 rng{20261122};
  // A small alphabet full of separators and escape characters makes collisions likely if escaping
  // were wrong; long strings exercise the hashed tail.
  const std::string alphabet = "a:%,[]\"# b";
  auto random_string = [&] {
    std::string s;
    const auto len = rng() % 5 == 0 ? 40 + rng() % 80 : rng() % 5;
    for (std::size_t i = 0; i < len; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  using Args = std::tuple<std::string, std::string, std::int64_t, std::vector<std::string>, double>;
  std::map<std::string, Args> seen;
  const double doubles[] = {0.0, -0.0, 1.0, 0.1, 1e-7, -2.5};
  for (int i = 0; i < 40'000; ++i) {
    std::vector<std::string> v;
    for (std::size_t j = rng() % 3; j > 0; --j) v.push_back(random_string());
    Args args{random_string(), random_string(), static_cast<std::int64_t>(rng() % 7) - 3, v,
              doubles[rng() % 6]};
    const auto key = std::apply([&](const auto&... a) { return f.key(a...); }, args);
    auto [it, inserted] = seen.emplace(key, args);
    if (!inserted) {
      const bool same = std::get<0>(it->second) == std::get<0>(args) &&
                        std::get<1>(it->second) == std::get<1>(args) &&
                        std::get<2>(it->second) == std::get<2>(args) &&
                        std::get<3>(it->second) == std::get<3>(args) &&
                        std::signbit(std::get<4>(it->second)) == std::signbit(std::get<4>(args)) &&
                        std::get<4>(it->second) == std::get<4>(args);
      INFO("key " << key);
      REQUIRE(same);
    }
  }
  CHECK(seen.size() > 30'000);  // the generator really produced distinct argument lists
}

TEST_CASE("Member function pointers take the object as the entity", "[key]") {
  struct Author {
    std::int64_t id;
    std::vector<std::int64_t> top_book_ids(int limit) const {
      return std::vector<std::int64_t>(static_cast<std::size_t>(limit), id);
    }
  };
  larder::MemoryStore store;
  larder::Cached top{store, "Author", "top_book_ids", &Author::top_book_ids};
  const Author a{42};
  CHECK(top.key(a, 10) == "larder:v1:Author:top_book_ids:10:42");
  std::vector<std::int64_t> ids = top(a, 3);
  CHECK(ids == std::vector<std::int64_t>{42, 42, 42});
}

TEST_CASE("Bad names are rejected", "[key]") {
  larder::MemoryStore store;
  CHECK_THROWS_AS((larder::Cached{store, "Au:thor", "f", &top_ids}), std::invalid_argument);
  CHECK_THROWS_AS((larder::Cached{store, "Author", "", &top_ids}), std::invalid_argument);
  CHECK_THROWS_WITH((larder::Cached{store, "Author", "f", &top_ids, {.prefix = "a b"}}),
                    Catch::Contains("prefix"));
}

namespace {
enum class Shade : short { dark = -3 };
__extension__ typedef __int128 Int128;  // a GNU type: __extension__ keeps -Wpedantic quiet
int integers(std::int64_t, short, unsigned char, signed char, Shade, bool, std::uint64_t, Int128,
             double) {
  return 1;
}
}  // namespace

TEST_CASE("Integer key parts render in decimal at every width, extremes included", "[key]") {
  // Integers render through fmt::format_int (128-bit ones through fmt::format), not the engine
  // behind fmt::format_to: the text must be the same decimal either way.
  larder::MemoryStore store;
  larder::Cached c{store, "Num", "integers", &integers};
  const Int128 big = -(static_cast<Int128>(1) << 100);
  CHECK(c.key(std::numeric_limits<std::int64_t>::min(), std::numeric_limits<short>::min(),
              static_cast<unsigned char>(255), static_cast<signed char>(-128), Shade::dark, true,
              std::numeric_limits<std::uint64_t>::max(), big, -0.5) ==
        "larder:v1:Num:integers:-32768:255:-128:-3:true:18446744073709551615:"
        "-1267650600228229401496703205376:-0.5:-9223372036854775808");
  CHECK(c.key(0, short{0}, static_cast<unsigned char>(0), static_cast<signed char>(0), Shade{0},
              false, 0, 0, 0.0) == "larder:v1:Num:integers:0:0:0:0:false:0:0:0:0");
}
