// codec.hpp: how values become bytes for a shared store (Redis). The in-memory store never encodes.
//
// The default codec uses nlohmann_json: any type with to_json/from_json works. Specialize
// larder::Codec<T> for speed or for another format:
//   template <> struct larder::Codec<Price> {
//     static constexpr std::string_view name = "price-bin";  // part of the payload fingerprint
//     static constexpr std::uint32_t version = 1;             // bump when the byte format changes
//     static std::string encode(const Price& p);
//     static Price decode(std::string_view bytes);           // throws larder::DecodeError
//   };
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <limits>
#include <new>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "larder/error.hpp"

namespace larder {

template <class T>
struct Codec;

namespace detail {

/// The first byte of the default codec's form for a value with a string that is not UTF-8. 0xFF is
/// never in UTF-8, so no JSON text (nor its byte order mark) starts with it: the form cannot be
/// mistaken for what nlohmann_json writes, and a reader without it (an older larder) sees a
/// DecodeError, a miss, never a wrong value.
inline constexpr char kLatin1JsonMark = '\xff';

/// Calls f on every string of j, object keys included (an object is rebuilt with the new keys).
/// Not recursive: the depth of j costs heap, not stack.
template <class F>
void for_each_json_string(nlohmann::json& j, F&& f) {
  std::vector<nlohmann::json*> todo{&j};
  while (!todo.empty()) {
    nlohmann::json* n = todo.back();
    todo.pop_back();
    if (n->is_string()) {
      f(n->get_ref<std::string&>());
    } else if (n->is_array()) {
      for (auto& e : *n) todo.push_back(&e);
    } else if (n->is_object()) {
      nlohmann::json rebuilt = nlohmann::json::object();
      for (auto& [k, v] : n->items()) {
        std::string key = k;
        f(key);
        rebuilt[std::move(key)] = std::move(v);
      }
      *n = std::move(rebuilt);
      for (auto& [k, v] : n->items()) todo.push_back(&v);
    }
  }
}

/// Each byte as the code point of the same value (Latin-1), in UTF-8: any bytes become valid UTF-8,
/// one to one.
inline void latin1_to_utf8(std::string& s) {
  std::string out;
  out.reserve(s.size() * 2);
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x80) {
      out += c;
    } else {
      out += static_cast<char>(0xC0 | (b >> 6));
      out += static_cast<char>(0x80 | (b & 0x3F));
    }
  }
  s = std::move(out);
}

/// The inverse of latin1_to_utf8; DecodeError for a code point over U+00FF (s is valid UTF-8: the
/// JSON parser checked it).
inline void utf8_to_latin1(std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out += s[i];
    } else if ((b == 0xC2 || b == 0xC3) && i + 1 < s.size()) {
      out += static_cast<char>(((b & 0x03) << 6) | (static_cast<unsigned char>(s[++i]) & 0x3F));
    } else {
      throw DecodeError(
          "larder: cached JSON did not decode: a byte string holds a code point "
          "over U+00FF");
    }
  }
  s = std::move(out);
}

}  // namespace detail

/// The nlohmann_json codec, chosen for every type nlohmann can convert both ways.
///
/// nlohmann_json writes only UTF-8 strings (dump() throws type_error 316 otherwise, and its
/// error handlers `replace` and `ignore` would change the value). So a value whose JSON has a
/// string that is not UTF-8 (a std::string of binary bytes, anywhere in the value) is written in
/// another form: the byte 0xFF, then the JSON text of the value with every string (keys included)
/// turned into UTF-8 byte by byte, as if it were Latin-1. decode() undoes it exactly. Every other
/// value is written as the very bytes nlohmann_json writes, as before that form existed.
template <class T>
requires requires(nlohmann::json& j, const T& v) {
  nlohmann::json(v);
  j.get<T>();
}
struct Codec<T> {
  static constexpr std::string_view name = "json";
  static constexpr std::uint32_t version = 1;
  static std::string encode(const T& v) {
    nlohmann::json j(v);
    try {
      return j.dump();
    } catch (const nlohmann::json::type_error& e) {
      if (e.id != 316) throw;  // 316: a string that is not UTF-8
    }
    detail::for_each_json_string(j, detail::latin1_to_utf8);
    std::string out(1, detail::kLatin1JsonMark);
    out += j.dump();
    return out;
  }
  static T decode(std::string_view bytes) {
    try {
      if (!bytes.empty() && bytes.front() == detail::kLatin1JsonMark) {
        auto j = nlohmann::json::parse(bytes.substr(1));
        detail::for_each_json_string(j, detail::utf8_to_latin1);
        return j.get<T>();
      }
      return nlohmann::json::parse(bytes).get<T>();
    } catch (const nlohmann::json::exception& e) {
      throw DecodeError(std::string("larder: cached JSON did not decode: ") + e.what());
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const DecodeError&) {
      throw;
    } catch (const std::exception& e) {
      // A from_json of the user's that refuses what it reads (std::invalid_argument, say): the
      // bytes do not decode, which is a miss, not the call's failure.
      throw DecodeError(std::string("larder: cached JSON did not decode: ") + e.what());
    }
  }
};

namespace detail {
template <class I>
concept IdInteger =
    std::same_as<I, short> || std::same_as<I, unsigned short> || std::same_as<I, int> ||
    std::same_as<I, unsigned> || std::same_as<I, long> || std::same_as<I, unsigned long> ||
    std::same_as<I, long long> || std::same_as<I, unsigned long long>;
}  // namespace detail

/// Lists of integers (the cached-IDs case) in the very bytes nlohmann_json writes ("[3,1,2]"), so
/// values written by either codec read back with the other, but without building a json tree:
/// std::to_chars out, std::from_chars in. Anything the fast parser does not expect (whitespace,
/// say) goes through nlohmann_json; a number out of the element type's range is a DecodeError.
template <detail::IdInteger I>
struct Codec<std::vector<I>> {
  static constexpr std::string_view name = "json";
  static constexpr std::uint32_t version = 1;
  static std::string encode(const std::vector<I>& v) {
    std::string out;
    out.resize(2 + v.size() * 21);  // 20 digits and a sign at most, plus a comma
    char* p = out.data();
    char* const end = out.data() + out.size();
    *p++ = '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) *p++ = ',';
      p = std::to_chars(p, end, v[i]).ptr;
    }
    *p++ = ']';
    out.resize(static_cast<std::size_t>(p - out.data()));
    return out;
  }
  static std::vector<I> decode(std::string_view bytes) {
    std::vector<I> out;
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    if (bytes.size() >= 2 && *p == '[' && end[-1] == ']') {
      ++p;
      if (p == end - 1) return out;
      for (;;) {
        I v{};
        auto [next, ec] = std::from_chars(p, end - 1, v);
        if (ec == std::errc::result_out_of_range) out_of_range();
        if (ec != std::errc{}) break;
        out.push_back(v);
        p = next;
        if (p == end - 1) return out;
        if (*p++ != ',') break;
      }
    }
    return decode_any(bytes);
  }

 private:
  // Not the shape the encoder writes: let nlohmann_json parse it, but check every element's type
  // and range (nlohmann's own conversion would wrap -1 into an unsigned, or truncate 1.5).
  static std::vector<I> decode_any(std::string_view bytes) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(bytes);
    } catch (const nlohmann::json::exception& e) {
      throw DecodeError(std::string("larder: cached JSON did not decode: ") + e.what());
    }
    if (!j.is_array()) throw DecodeError("larder: cached JSON is not an array of integers");
    std::vector<I> out;
    out.reserve(j.size());
    for (const auto& e : j) {
      if (e.is_number_unsigned()) {
        const auto u = e.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<I>::max())) out_of_range();
        out.push_back(static_cast<I>(u));
      } else if (e.is_number_integer()) {
        const auto x = e.get<std::int64_t>();
        if (std::cmp_less(x, std::numeric_limits<I>::min()) ||
            std::cmp_greater(x, std::numeric_limits<I>::max()))
          out_of_range();
        out.push_back(static_cast<I>(x));
      } else {
        throw DecodeError("larder: cached JSON is not an array of integers");
      }
    }
    return out;
  }
  [[noreturn]] static void out_of_range() {
    throw DecodeError("larder: cached JSON did not decode: a number is out of range");
  }
};

/// True when T has a usable Codec.
template <class T>
concept Encodable = requires(const T& v, std::string_view bytes) {
  { Codec<T>::name } -> std::convertible_to<std::string_view>;
  { Codec<T>::encode(v) } -> std::convertible_to<std::string>;
  { Codec<T>::decode(bytes) } -> std::convertible_to<T>;
};

}  // namespace larder
