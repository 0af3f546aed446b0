// detail/weight.hpp: how much an entry weighs in the memory store.
//
// A user who knows better names the weight of a type with an ADL function found next to it:
//   std::uint64_t larder_weight(const Page& p) { return p.html.size(); }
// Otherwise the weight is an estimate of the bytes the key and the value occupy: sizeof, plus the
// heap blocks of strings (beyond the small-string buffer), vectors and other contiguous ranges
// (their capacity), recursively, plus the parts of tuples, pairs and optionals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace larder::detail {

template <class T>
concept UserWeighed = requires(const T& v) {
  { larder_weight(v) } -> std::convertible_to<std::uint64_t>;
};

template <class T>
struct is_tuple_like : std::false_type {};
template <class... T>
struct is_tuple_like<std::tuple<T...>> : std::true_type {};
template <class A, class B>
struct is_tuple_like<std::pair<A, B>> : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

/// Bytes owned by v outside sizeof(v): heap blocks of strings and contiguous containers.
template <class T>
std::uint64_t heap_bytes(const T& v) noexcept {
  if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T>) {
    return 0;
  } else if constexpr (requires {
                         v.capacity();
                         v.data();
                         typename T::traits_type;
                       }) {
    // A string: its buffer is on the heap unless data() points into the object itself.
    const auto* p = reinterpret_cast<const unsigned char*>(v.data());
    const auto* self = reinterpret_cast<const unsigned char*>(&v);
    if (p >= self && p < self + sizeof(T)) return 0;
    return (v.capacity() + 1) * sizeof(typename T::value_type);
  } else if constexpr (std::ranges::contiguous_range<const T&> && requires { v.capacity(); }) {
    using E = std::remove_cvref_t<std::ranges::range_value_t<const T&>>;
    std::uint64_t n = static_cast<std::uint64_t>(v.capacity()) * sizeof(E);
    if constexpr (!std::is_trivially_copyable_v<E>)
      for (const auto& e : v) n += heap_bytes(e);
    return n;
  } else if constexpr (is_tuple_like<T>::value) {
    return std::apply([](const auto&... e) { return (std::uint64_t{0} + ... + heap_bytes(e)); }, v);
  } else if constexpr (is_optional<T>::value) {
    return v ? heap_bytes(*v) : 0;
  } else {
    return 0;  // unknown type: sizeof only; give it a larder_weight for a better figure
  }
}

/// sizeof(v) plus its heap blocks.
template <class T>
std::uint64_t estimate_memory(const T& v) noexcept {
  return sizeof(T) + heap_bytes(v);
}

/// The weight of an entry: larder_weight(value) if the value type has one (in the user's units),
/// else the estimated bytes of key and value.
template <class K, class V>
std::uint64_t entry_weight(const K& key, const V& value) {
  if constexpr (UserWeighed<V>) {
    return static_cast<std::uint64_t>(larder_weight(value));
  } else {
    return estimate_memory(key) + estimate_memory(value);
  }
}

}  // namespace larder::detail
