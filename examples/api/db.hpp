// db.hpp: the API's SQLite database (foo, bar, zab, baz tables, generated at start), a small pool
// of connections, the FooRepository a JsonCache loads from, and the uncached handlers
// (query + serialize on every request) the cache is compared with. Thread-safe: every member may be
// called concurrently.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "model.hpp"

namespace api {

/// A SQLite error, with what was being done and SQLite's message.
class DbError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How much data generate() writes. A Foo is "big" (near big_kb of JSON) or ordinary (1 to
/// max_bars x max_zabs x max_bazs children, a few KB).
struct DataSize {
  int foos = 60;            // Foos in all; >= 1
  int big_foos = 3;         // of which big (ids 1..big_foos); 0..foos
  int big_kb = 2000;        // JSON size of a big Foo, approximately (KB); >= 1
  int max_bars = 8;         // Bars per ordinary Foo, at most; >= 1
  int max_zabs = 6;         // Zabs per ordinary Bar, at most; >= 1
  int max_bazs = 5;         // Bazs per ordinary Zab, at most; >= 1
  std::uint32_t seed = 42;  // the generator's seed: same seed, same data
};

/// One SQLite file shared by many threads through a pool of connections (WAL mode: readers read
/// while a writer writes).
class Database {
 public:
  /// Opens (creating if needed) the database file at `path`.
  explicit Database(std::string path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// Creates the schema and fills it per `size` (deterministic for a seed). Replaces any data.
  void generate(const DataSize& size);

  /// Every Foo id, ascending.
  std::vector<std::int64_t> foo_ids();
  /// The full object graphs of the Foos with these ids that exist, in the order given (missing ids
  /// left out): 4 indexed queries per Foo (the Foo, its Bars, its Zabs, its Bazs).
  std::vector<Foo> foos(std::span<const std::int64_t> ids);
  std::optional<Foo> foo(std::int64_t id);
  /// A write: increments the Foo's `touched`. False if there is no such Foo.
  bool touch(std::int64_t id);

  const std::string& path() const noexcept { return path_; }

 private:
  struct Connection;
  class Lease;
  Lease lease();
  Foo load(Connection& c, std::int64_t id, bool& found);

  std::string path_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

/// The repository a larder::JsonCache<Foo> loads from (satisfies larder::Repository).
class FooRepository {
 public:
  using entity_type = Foo;
  using id_type = std::int64_t;
  explicit FooRepository(Database& db) : db_{&db} {}
  std::vector<Foo> get_many(std::span<const std::int64_t> ids) { return db_->foos(ids); }
  std::int64_t id_of(const Foo& f) const noexcept { return f.id; }
  std::vector<std::int64_t> all_ids() { return db_->foo_ids(); }

 private:
  Database* db_;
};

/// Without a cache: GET /foos, queried and serialized on every request.
std::string list_uncached(Database& db);
/// Without a cache: GET /foos/{id}; nullopt if there is no such Foo.
std::optional<std::string> detail_uncached(Database& db, std::int64_t id);

}  // namespace api
