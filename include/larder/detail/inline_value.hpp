// detail/inline_value.hpp: which values larder keeps by value rather than behind a shared_ptr.
//
// A small trivially copyable value (an id, a count, a pair of numbers) is cheaper to copy than to
// share: copying 8 bytes costs less than the two atomic reference-count updates of a shared_ptr,
// and two threads reading one hot entry then write no shared cache line. The memory store keeps
// such values inside the entry (no separate allocation, no control block), and Result holds them
// by value. Every other type stays shared (std::shared_ptr<const T>): a hit never copies it.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>

namespace larder::detail {

template <class T>
inline constexpr bool inline_value_v =
    std::is_trivially_copyable_v<T>&& std::is_copy_constructible_v<T>&&
        std::is_copy_assignable_v<T>&& std::is_trivially_destructible_v<T> &&
    sizeof(T) <= 2 * sizeof(void*) && alignof(T) <= alignof(std::max_align_t);

/// How a value is held in a store entry: T itself, or a shared_ptr to it.
template <class T>
using held_value_t = std::conditional_t<inline_value_v<T>, T, std::shared_ptr<const T>>;

/// The held value as a shared_ptr (a copy for an inline value: for slow paths only).
template <class T>
std::shared_ptr<const T> share_held(const held_value_t<T>& held) {
  if constexpr (inline_value_v<T>) {
    return std::make_shared<const T>(held);
  } else {
    return held;
  }
}

/// The value a held value stands for.
template <class T>
const T& deref_held(const held_value_t<T>& held) noexcept {
  if constexpr (inline_value_v<T>) {
    return held;
  } else {
    return *held;
  }
}

}  // namespace larder::detail
