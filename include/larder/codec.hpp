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

/// The nlohmann_json codec, chosen for every type nlohmann can convert both ways.
template <class T>
requires requires(nlohmann::json& j, const T& v) {
  nlohmann::json(v);
  j.get<T>();
}
struct Codec<T> {
  static constexpr std::string_view name = "json";
  static constexpr std::uint32_t version = 1;
  static std::string encode(const T& v) { return nlohmann::json(v).dump(); }
  static T decode(std::string_view bytes) {
    try {
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
