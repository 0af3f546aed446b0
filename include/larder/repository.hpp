// repository.hpp: larder::Repository, what you supply so that cached IDs become fresh entities:
// fetch many entities by ID in one call, and tell an entity's ID. See rehydrated.hpp.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <ranges>
#include <span>

namespace larder {

/// A source of truth (usually the database) that larder::Rehydrated asks for fresh entities.
///
/// Contract:
///   - `typename R::entity_type`, `typename R::id_type` (hashable and equality-comparable: an
///     integer or a std::string, typically);
///   - `repo.get_many(std::span<const id_type>)` returns a range of entity_type holding the
///     entities that still exist among those IDs, in any order (missing IDs are simply absent).
///     It is called once per request, never once per ID. It may throw (database down): the
///     exception reaches the caller of Rehydrated and the cached IDs are left as they were. It may
///     be called from many threads at once;
///   - `repo.id_of(const entity_type&)` returns the entity's ID.
///
/// Example:
///   struct BookRepository {
///     using entity_type = Book;
///     using id_type = std::int64_t;
///     std::vector<Book> get_many(std::span<const std::int64_t> ids);  // SELECT ... WHERE id IN
///     (...) std::int64_t id_of(const Book& b) const { return b.id; }
///   };
///   static_assert(larder::Repository<BookRepository>);
template <class R>
concept Repository = requires(R& repo, std::span<const typename R::id_type> ids,
                              const typename R::entity_type& entity,
                              const typename R::id_type& id) {
  { repo.get_many(ids) } -> std::ranges::input_range;
  { repo.id_of(entity) } -> std::convertible_to<typename R::id_type>;
  { std::hash<typename R::id_type>{}(id) } -> std::convertible_to<std::size_t>;
  requires std::equality_comparable<typename R::id_type>;
  requires std::convertible_to < std::ranges::range_reference_t<decltype(repo.get_many(ids))>,
  typename R::entity_type > ;
};

}  // namespace larder
