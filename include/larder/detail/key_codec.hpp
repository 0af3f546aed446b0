// detail/key_codec.hpp: key parts stored, hashed, compared and rendered.
//
// The in-memory tier never renders a key: it hashes the parts and compares them with the parts
// stored in the entry (typed equality). Rendering happens for shared stores, for key() and for
// error messages and reports (single flight keys by the typed key too). Rendering is injective:
// every part escapes the separators it could contain, so `f("a:b", "c")` and `f("a", "b:c")`
// differ. See docs/design.md, "Keys".
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <ranges>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "larder/detail/hash.hpp"
#include "larder/key.hpp"

namespace larder::detail {

// ---- the stored (owning) form of a key primitive ------------------------------------------------

template <class T>
struct stored;

template <class T>
requires(std::is_arithmetic_v<T> || std::is_enum_v<T>) struct stored<T> {
  using type = T;
};

template <class T>
requires(!std::is_arithmetic_v<T> && !std::is_enum_v<T> &&
         std::is_convertible_v<const T&, std::string_view>) struct stored<T> {
  using type = std::string;
};

template <class T>
requires KeyRange<T>
struct stored<T> {
  using type =
      std::vector<typename stored<std::remove_cvref_t<std::ranges::range_value_t<const T&>>>::type>;
};

template <class T>
using stored_t = typename stored<std::remove_cvref_t<T>>::type;

template <class T>
stored_t<T> to_stored(const T& v) {
  using S = stored_t<T>;
  if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T>) {
    return v;
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return S{std::string_view{v}};
  } else {
    S out;
    for (const auto& e : v) out.push_back(to_stored(e));
    return out;
  }
}

// ---- null C strings -----------------------------------------------------------------------------

/// A char pointer (or nullptr): a key part that may be null, from which no string can be made.
template <class T>
inline constexpr bool is_c_string_v =
    std::is_same_v<std::remove_cv_t<T>, std::nullptr_t> ||
    (std::is_pointer_v<std::remove_cv_t<T>> &&
     std::is_same_v<std::remove_cv_t<std::remove_pointer_t<std::remove_cv_t<T>>>, char>);

/// True if a key part of type T is, or holds, a char pointer.
template <class T>
constexpr bool holds_c_string() {
  using U = std::remove_cvref_t<T>;
  if constexpr (is_c_string_v<U>) {
    return true;
  } else if constexpr (KeyRange<U>) {
    return holds_c_string<std::ranges::range_value_t<const U&>>();
  } else {
    return false;
  }
}

/// A std::string or std::string_view parameter given a char pointer: the conversion itself is
/// undefined for a null pointer (std::string throws std::logic_error), so Cached checks first.
/// Not a literal nullptr: GCC diagnoses its conversion at compile time (-Wnonnull), and C++23
/// deletes it.
template <class Param, class Arg>
inline constexpr bool string_from_c_string_v =
    std::is_pointer_v<std::remove_cvref_t<Arg>>&& is_c_string_v<std::remove_cvref_t<Arg>> &&
    (std::is_same_v<std::remove_cvref_t<Param>, std::string> ||
     std::is_same_v<std::remove_cvref_t<Param>, std::string_view>);

[[noreturn]] inline void throw_null_c_string(std::size_t position) {
  throw std::invalid_argument(
      fmt::format("larder: null const char* argument (argument {} of the cached call): a cache "
                  "key cannot be made from a null string; pass a string (\"\" for an empty one)",
                  position));
}

/// Throws std::invalid_argument if a key part is, or holds, a null char pointer. `position`
/// counts the call's arguments from 1 (the entity).
template <class T>
void check_not_null(const T& part, std::size_t position) {
  if constexpr (is_c_string_v<T>) {
    if (part == nullptr) throw_null_c_string(position);
  } else if constexpr (holds_c_string<T>()) {
    for (const auto& e : part) check_not_null(e, position);
  }
}

/// check_not_null for each argument about to be converted to its parameter P (a std::string or
/// std::string_view given a char pointer), counting positions from `first`.
template <class P, class U>
void check_c_string_arg(const U& arg, std::size_t position) {
  if constexpr (string_from_c_string_v<P, U>) {
    if (arg == nullptr) throw_null_c_string(position);
  }
}
template <class... P, class... U>
void check_c_string_args(std::size_t first, const U&... args) {
  static_assert(sizeof...(P) == sizeof...(U));
  std::size_t position = first;
  (check_c_string_arg<P>(args, position++), ...);
}

// ---- hashing ------------------------------------------------------------------------------------

template <class T>
std::uint64_t hash_part(const T& v) noexcept {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(v)) return 0x7ff8dead7ff8deadULL;  // every NaN is one key, as rendered ("nan")
    return mix64(std::bit_cast<std::uint64_t>(static_cast<double>(v)));  // -0.0 and 0.0 differ
  } else if constexpr (std::is_arithmetic_v<T>) {
    return mix64(static_cast<std::uint64_t>(v));
  } else if constexpr (std::is_enum_v<T>) {
    return mix64(static_cast<std::uint64_t>(static_cast<std::underlying_type_t<T>>(v)));
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return hash_bytes(std::string_view{v});
  } else {
    std::uint64_t h = 0x5bd1e9955bd1e995ULL;
    std::uint64_t n = 0;
    for (const auto& e : v) {
      h = hash_combine(h, hash_part(e));
      ++n;
    }
    return hash_combine(h, n);
  }
}

// ---- equality between a stored part and a live one ----------------------------------------------

template <class S, class T>
bool part_equal(const S& stored, const T& live) noexcept {
  if constexpr (std::is_floating_point_v<T>) {
    // As rendered: all NaNs are one value, and -0.0 differs from 0.0.
    if (std::isnan(live) || std::isnan(stored)) return std::isnan(live) && std::isnan(stored);
    return stored == live && std::signbit(stored) == std::signbit(live);
  } else if constexpr (std::is_arithmetic_v<T> || std::is_enum_v<T>) {
    return stored == live;
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    return std::string_view{stored} == std::string_view{live};
  } else {
    auto it = std::ranges::begin(stored);
    const auto end = std::ranges::end(stored);
    for (const auto& e : live) {
      if (it == end || !part_equal(*it, e)) return false;
      ++it;
    }
    return it == end;
  }
}

// ---- rendering ----------------------------------------------------------------------------------

/// Characters that never appear unescaped inside a rendered part: the separators of the key grammar
/// (':' between parts, ',' '[' ']' inside ranges, '"' for the empty string, '#' for a hashed tail),
/// '%' itself, and bytes that would be unreadable in redis-cli.
constexpr bool needs_escape(unsigned char c) noexcept {
  return c <= 0x20 || c >= 0x7f || c == '%' || c == ':' || c == ',' || c == '[' || c == ']' ||
         c == '"' || c == '#' || c == '{' || c == '}';
}

inline void render_string(std::string& out, std::string_view s) {
  if (s.empty()) {
    out += "\"\"";  // so that an empty string still occupies its place visibly
    return;
  }
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (needs_escape(c)) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
}

/// An integer in decimal. Not fmt::format_to(std::back_inserter(out), ...): that instantiates
/// fmt's whole formatting engine (detail::vformat_to, floats included) in every translation unit
/// that renders a key, about 80 KB of code and seconds of compile time per unit; fmt::format_int
/// is a few lines, and fmt::format calls the engine compiled into libfmt.
template <class T>
void render_integer(std::string& out, T v) {
  if constexpr (sizeof(T) <= sizeof(long long)) {
    if constexpr (std::is_signed_v<T>) {
      const fmt::format_int text{static_cast<long long>(v)};
      out.append(text.data(), text.size());
    } else {
      const fmt::format_int text{static_cast<unsigned long long>(v)};
      out.append(text.data(), text.size());
    }
  } else {
    out += fmt::format("{}", v);  // __int128
  }
}

template <class T>
void render_part(std::string& out, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    out += v ? "true" : "false";
  } else if constexpr (std::is_same_v<T, char> || std::is_same_v<T, signed char> ||
                       std::is_same_v<T, unsigned char>) {
    render_integer(out, static_cast<int>(v));
  } else if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(v)) {
      out += "nan";  // one spelling for every NaN, as part_equal treats them
    } else {
      out += fmt::format("{}", v);  // the shortest round-trip form
    }
  } else if constexpr (std::is_arithmetic_v<T>) {
    render_integer(out, v);
  } else if constexpr (std::is_enum_v<T>) {
    render_integer(out, static_cast<std::underlying_type_t<T>>(v));
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    render_string(out, std::string_view{v});
  } else {
    out += '[';
    bool first = true;
    for (const auto& e : v) {
      if (!first) out += ',';
      first = false;
      render_part(out, e);
    }
    out += ']';
  }
}

/// The size of hash_tail()'s result: '#' and 32 hex digits.
inline constexpr std::size_t kHashTailSize = 33;

/// 128 bits of hash as 32 hex digits: used in place of a key tail that is too long.
inline std::string hash_tail(std::string_view s) {
  return fmt::format("#{:016x}{:016x}", hash_bytes(s, 0x243f6a8885a308d3ULL),
                     hash_bytes(s, 0x13198a2e03707344ULL));
}

/// Validates a segment given by the programmer (prefix, class, function name).
inline bool valid_name(std::string_view s) noexcept {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

}  // namespace larder::detail
