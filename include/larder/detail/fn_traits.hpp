// detail/fn_traits.hpp: the result and argument types of what Cached wraps.
#pragma once

#include <functional>
#include <type_traits>

namespace larder::detail {

/// R(A...) with A the arguments of the cache key (the entity first: for a member function, the
/// object).
template <class R, class... A>
struct Signature {};

template <class Fn>
struct fn_traits {
  static_assert(sizeof(Fn) == 0,
                "larder::Cached wraps a function pointer, a const member function pointer, or a "
                "callable object with exactly one (non-template) operator()");
};

template <class R, class... A>
struct fn_traits<R (*)(A...)> {
  using type = Signature<R, A...>;
};
template <class R, class... A>
struct fn_traits<R (*)(A...) noexcept> : fn_traits<R (*)(A...)> {};

#define LARDER_MEMBER_TRAITS(QUALS)                 \
  template <class R, class C, class... A>           \
  struct fn_traits<R (C::*)(A...) QUALS> {          \
    using type = Signature<R, const C&, A...>;      \
  };                                                \
  template <class R, class C, class... A>           \
  struct fn_traits<R (C::*)(A...) QUALS noexcept> { \
    using type = Signature<R, const C&, A...>;      \
  };
LARDER_MEMBER_TRAITS(const)
LARDER_MEMBER_TRAITS(const&)
#undef LARDER_MEMBER_TRAITS

template <class Op>
struct call_operator_traits;
#define LARDER_CALL_OPERATOR_TRAITS(QUALS)            \
  template <class R, class C, class... A>             \
  struct call_operator_traits<R (C::*)(A...) QUALS> { \
    using type = Signature<R, A...>;                  \
  };
LARDER_CALL_OPERATOR_TRAITS()
LARDER_CALL_OPERATOR_TRAITS(const)
LARDER_CALL_OPERATOR_TRAITS(noexcept)
LARDER_CALL_OPERATOR_TRAITS(const noexcept)
#undef LARDER_CALL_OPERATOR_TRAITS

template <class Fn>
requires std::is_class_v<Fn> && requires { &Fn::operator(); }
struct fn_traits<Fn> : call_operator_traits<decltype(&Fn::operator())> {};

template <class Fn>
using signature_t = typename fn_traits<std::decay_t<Fn>>::type;

/// How a Cached call takes an argument: small scalars by value, everything else by const reference.
template <class A>
using param_t = std::conditional_t<std::is_scalar_v<std::remove_cvref_t<A>>, std::remove_cvref_t<A>,
                                   const std::remove_cvref_t<A>&>;

}  // namespace larder::detail
