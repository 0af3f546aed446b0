// key.hpp: how arguments become cache keys, and how to teach larder about your types.
//
// A key reads {prefix}:v{schema}:{Class}:{function}:{params...}:{entity id}, for example
// larder:v1:Author:top_book_ids:10:42. Two different argument lists never share a key.
//
// Customization points (found by argument-dependent lookup, in your type's namespace):
//   auto larder_id(const Author& a);          // the entity id: an integer or a string
//   auto larder_key_part(const Money& m);     // a parameter as a key part: arithmetic, enum,
//   string,
//                                             // or a range of those
// Without larder_id, an `id` data member or an `id()` member function is used; integers and strings
// are their own id. Arithmetic types, enums, strings and ranges of them need no customization.
#pragma once

#include <concepts>
#include <cstdint>
#include <ranges>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace larder {

/// True for the types a key part may be made of without customization.
template <class T>
concept KeyScalar =
    std::is_arithmetic_v<std::remove_cvref_t<T>> || std::is_enum_v<std::remove_cvref_t<T>> ||
    std::is_convertible_v < const std::remove_cvref_t<T>
&, std::string_view > ;

namespace detail {

template <class T>
concept KeyRange = !KeyScalar<T> && std::ranges::input_range<const std::remove_cvref_t<T>&>;

template <class T>
struct is_key_primitive : std::bool_constant<KeyScalar<T>> {};

template <class T>
requires KeyRange<T>
struct is_key_primitive<T>
    : is_key_primitive<std::ranges::range_value_t<const std::remove_cvref_t<T>&>> {
};

template <class T>
concept KeyPrimitive = is_key_primitive<std::remove_cvref_t<T>>::value;

template <class T>
concept HasAdlKeyPart = requires(const T& t) {
  { larder_key_part(t) } -> KeyPrimitive;
};

template <class T>
concept HasAdlId = requires(const T& t) {
  { larder_id(t) } -> KeyPrimitive;
};
template <class T>
concept HasIdMember = requires(const T& t) {
  { t.id } -> KeyPrimitive;
};
template <class T>
concept HasIdFunction = requires(const T& t) {
  { t.id() } -> KeyPrimitive;
};

template <class T>
constexpr bool kAlwaysFalse = false;

}  // namespace detail

/// Returns a parameter as a key part: its larder_key_part() if it has one, else itself.
template <class T>
decltype(auto) key_part(const T& v) {
  if constexpr (detail::HasAdlKeyPart<T>) {
    return larder_key_part(v);
  } else if constexpr (detail::KeyPrimitive<T>) {
    return (v);
  } else {
    static_assert(detail::kAlwaysFalse<T>,
                  "larder: this parameter type cannot be part of a cache key. Define "
                  "`auto larder_key_part(const T&)` in its namespace, returning an arithmetic "
                  "type, an enum, a string or a range of those.");
  }
}

/// Returns an entity's id: larder_id(e), else e.id, else e.id(), else e itself for integers, enums
/// and strings.
template <class T>
decltype(auto) entity_id(const T& e) {
  if constexpr (detail::HasAdlId<T>) {
    return larder_id(e);
  } else if constexpr (detail::HasIdMember<T>) {
    return (e.id);
  } else if constexpr (detail::HasIdFunction<T>) {
    return e.id();
  } else if constexpr (KeyScalar<T>) {
    return (e);
  } else {
    static_assert(
        detail::kAlwaysFalse<T>,
        "larder: cannot find the entity id of this type (the first argument of a cached "
        "function). Give it an `id` member or `id()`, or define `auto larder_id(const T&)` "
        "in its namespace, returning an integer or a string.");
  }
}

}  // namespace larder
