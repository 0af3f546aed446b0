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

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

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
    }
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
