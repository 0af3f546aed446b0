// support/failing_new.hpp: replaces the global operator new and delete so that a test can make the
// n-th allocation of its thread fail (std::bad_alloc, or nullptr from the nothrow forms). Include
// it in exactly one translation unit of a test executable of its own: a replaced operator new is
// program-wide, and must not be inline.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>

namespace larder::testing {
/// Allocations of this thread still allowed before one fails; negative: none fails.
inline thread_local int allocations_before_failure = -1;

inline void* allocate_or_fail(std::size_t n) {
  if (allocations_before_failure >= 0 && allocations_before_failure-- == 0) throw std::bad_alloc{};
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc{};
}
}  // namespace larder::testing

void* operator new(std::size_t n) { return larder::testing::allocate_or_fail(n); }
void* operator new[](std::size_t n) { return larder::testing::allocate_or_fail(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return larder::testing::allocate_or_fail(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
// Inlined into a delete-expression, these pair free() with operator new, and GCC 12 at -O1 warns
// that the pointer came from a mismatched allocation function: it does not, operator new above
// is malloc.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop
