// support/sealed_codec.hpp: a value type whose larder::Codec does not compile. A test file that
// instantiates its encode or decode fails to build, so a test that uses Sealed<T> checks at
// compile time that a path never reaches the codec (a Cached over a MemoryStore, say).
#pragma once

#include <larder/codec.hpp>
#include <string>
#include <string_view>

namespace larder::testing {

/// T itself (its members and constructors), under a codec that must not be compiled.
template <class T>
struct Sealed : T {};

/// False for every T, but only known once instantiated.
template <class T>
inline constexpr bool kNever = false;

}  // namespace larder::testing

template <class T>
struct larder::Codec<larder::testing::Sealed<T>> {
  static constexpr std::string_view name = "sealed";
  static std::string encode(const larder::testing::Sealed<T>&) {
    static_assert(larder::testing::kNever<T>, "the codec of a Sealed value was compiled");
    return {};
  }
  static larder::testing::Sealed<T> decode(std::string_view) {
    static_assert(larder::testing::kNever<T>, "the codec of a Sealed value was compiled");
    return {};
  }
};
