// detail/held_args.hpp: the arguments of a call that runs after the call returned (a background
// refresh, a scheduled recompute), held in owning form. A std::string_view, a const char*, a
// std::span or another borrowed view copies only a pointer: by the time the task runs, what it
// pointed to (a request's string, a caller's vector) may be gone or reused. Such arguments are held
// as std::string / std::vector and lent back to the function as the parameter type it declares.
//
// Ownable<T>: larder knows how to hold a T. Not ownable (the task is then not deferred: the caller
// recomputes, or the entry is invalidated): a non-char pointer, a std::reference_wrapper, a view it
// cannot rebuild from a std::vector, a std::initializer_list, and a container of any of those
// (std::vector<string_view>).
// A class type is copied as it is: it must own its data (see docs/guide.md, "Background refresh").
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <ranges>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace larder::detail {

template <class T>
inline constexpr bool is_char_v =
    std::is_same_v<T, char> || std::is_same_v<T, wchar_t> || std::is_same_v<T, char8_t> ||
    std::is_same_v<T, char16_t> || std::is_same_v<T, char32_t>;

template <class T>
struct is_string_view : std::false_type {};
template <class C, class Tr>
struct is_string_view<std::basic_string_view<C, Tr>> : std::true_type {};

template <class T>
struct is_span : std::false_type {};
template <class E, std::size_t N>
struct is_span<std::span<E, N>> : std::true_type {};

template <class T>
struct is_initializer_list : std::false_type {};
template <class E>
struct is_initializer_list<std::initializer_list<E>> : std::true_type {};

template <class T>
struct is_reference_wrapper : std::false_type {};
template <class T>
struct is_reference_wrapper<std::reference_wrapper<T>> : std::true_type {};

/// How an argument of type T is held until the deferred call.
enum class Hold {
  copy,    ///< as it is (it owns its data)
  string,  ///< a char pointer or a string view, as a std::basic_string
  range,   ///< a span or another borrowed view, as a std::vector of its elements
  none,    ///< cannot be held safely
};

template <class T>
consteval Hold hold_of() {
  if constexpr (std::is_pointer_v<T>) {
    return is_char_v<std::remove_cv_t<std::remove_pointer_t<T>>> ? Hold::string : Hold::none;
  } else if constexpr (is_string_view<T>::value) {
    return Hold::string;
  } else if constexpr (is_reference_wrapper<T>::value || std::is_reference_v<T> ||
                       is_initializer_list<T>::value) {
    // An initializer_list is a view of the caller's temporary array (neither a std::ranges::view
    // nor a borrowed_range, so the test below would take it for a container), and it cannot be
    // rebuilt from a std::vector.
    return Hold::none;
  } else if constexpr (std::ranges::range<T>) {
    using V = std::remove_cvref_t<std::ranges::range_value_t<T>>;
    if constexpr (std::is_same_v<V, T>) {
      return Hold::copy;  // a range of itself (std::filesystem::path): a value type
    } else if constexpr (hold_of<V>() != Hold::copy) {
      return Hold::none;  // elements that borrow (a vector of string_views)
    } else if constexpr (is_span<T>::value) {
      return Hold::range;
    } else if constexpr (std::ranges::view<T> || std::ranges::borrowed_range<T>) {
      return std::is_constructible_v<T, std::vector<V>&> ? Hold::range : Hold::none;
    } else {
      return Hold::copy;  // a container owns its elements
    }
  } else {
    return Hold::copy;
  }
}

template <class T, Hold H = hold_of<T>()>
struct held_arg {};
template <class T>
struct held_arg<T, Hold::copy> {
  using type = T;
};
template <class T>
struct held_arg<T, Hold::string> {  // a char pointer
  using type = std::basic_string<std::remove_cv_t<std::remove_pointer_t<T>>>;
};
template <class C, class Tr>
struct held_arg<std::basic_string_view<C, Tr>, Hold::string> {
  using type = std::basic_string<C, Tr>;
};
template <class T>
struct held_arg<T, Hold::range> {
  using type = std::vector<std::remove_cvref_t<std::ranges::range_value_t<T>>>;
};

/// True if an argument declared as A can be held for a deferred call.
template <class A>
concept Ownable = hold_of<std::remove_cvref_t<A>>()
!= Hold::none&& std::is_copy_constructible_v<std::remove_cvref_t<A>>;

/// The owning form of an argument declared as A.
template <class A>
using held_t = typename held_arg<std::remove_cvref_t<A>>::type;

/// An argument declared as A, held: a copy of everything it refers to.
template <class A>
held_t<A> hold(const std::remove_cvref_t<A>& v) {
  using T = std::remove_cvref_t<A>;
  constexpr Hold h = hold_of<T>();
  if constexpr (h == Hold::copy) {
    return v;
  } else if constexpr (h == Hold::string) {
    return held_t<A>(v);
  } else {
    held_t<A> out;
    T view = v;  // some views iterate only when not const
    for (auto&& e : view) out.push_back(e);
    return out;
  }
}

/// A held argument, lent back as the type the function declares (alive as long as `held`).
template <class A>
decltype(auto) lend(held_t<A>& held) {
  using T = std::remove_cvref_t<A>;
  constexpr Hold h = hold_of<T>();
  if constexpr (h == Hold::copy) {
    return static_cast<const T&>(held);
  } else if constexpr (h == Hold::string) {
    if constexpr (std::is_pointer_v<T>) {
      return T{held.data()};  // NUL-terminated; writable if the parameter is
    } else {
      return T{held};
    }
  } else if constexpr (is_span<T>::value) {
    return T{held.data(), held.size()};
  } else {
    return T{held};
  }
}

/// The arguments of a deferred call, held (see above).
template <class... A>
using HeldArgs = std::tuple<held_t<A>...>;

}  // namespace larder::detail
