// db.hpp: the bookshop's database: a real SQLite file (authors, books with prices and purchase
// counts), one connection per thread, the deliberately slow `top_book_ids`, and the BookRepository
// larder::Rehydrated fetches fresh rows from. Thread-safe: every member may be called concurrently.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace bookshop {

struct Author {
  std::int64_t id = 0;
  std::string name;
};

struct Book {
  std::int64_t id = 0;
  std::int64_t author_id = 0;
  std::string title;
  std::int64_t price_cents = 0;
  std::int64_t purchases = 0;
};

/// A SQLite error, with the statement and SQLite's message.
class DbError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One SQLite database file shared by many threads. Each thread gets a connection of its own
/// (opened on first use, closed with the Database), so readers never share a handle; the file is in
/// WAL mode so that they read while a writer writes.
class Database {
 public:
  /// Opens (creating if needed) the database file at `path`.
  explicit Database(std::string path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// Creates the schema and fills it like the seed's showcase: `authors` authors and `books` books
  /// with prices and (skewed) purchase counts. Deterministic for a given seed. Replaces any data.
  void fill(int authors, int books, std::uint32_t seed = 42);

  std::optional<Author> author(std::int64_t id);
  std::optional<Book> book(std::int64_t id);
  /// The books with these ids that exist, in no particular order: ONE query (WHERE id IN (...)).
  std::vector<Book> books(std::span<const std::int64_t> ids);
  /// The ids of an author's best-selling books, best first: the fast part of top_book_ids.
  std::vector<std::int64_t> best_sellers(std::int64_t author_id, int limit);
  /// All book ids, best-selling first (the load test picks popular books more often).
  std::vector<std::int64_t> book_ids_by_purchases();

  void delete_book(std::int64_t id);
  void set_price(std::int64_t id, std::int64_t price_cents);

  /// Queries run on this database (all threads).
  std::uint64_t queries() const noexcept { return queries_.load(std::memory_order_relaxed); }

  const std::string& path() const noexcept { return path_; }

 private:
  struct Connection;
  Connection& local();
  void exec(const char* sql);

  std::string path_;
  std::uint64_t serial_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::atomic<std::uint64_t> queries_{0};
};

/// The repository larder::Rehydrated asks for fresh books (satisfies larder::Repository).
class BookRepository {
 public:
  using entity_type = Book;
  using id_type = std::int64_t;

  explicit BookRepository(Database& db) : db_{&db} {}
  std::vector<Book> get_many(std::span<const std::int64_t> ids) {
    calls_.fetch_add(1, std::memory_order_relaxed);
    return db_->books(ids);
  }
  std::int64_t id_of(const Book& b) const noexcept { return b.id; }
  std::uint64_t calls() const noexcept { return calls_.load(std::memory_order_relaxed); }

 private:
  Database* db_;
  std::atomic<std::uint64_t> calls_{0};
};

/// Counts computations of top_book_ids, per author and in total.
struct ComputationCounter {
  explicit ComputationCounter(std::size_t authors) : per_author(authors + 1) {}
  std::atomic<std::uint64_t> total{0};
  std::vector<std::atomic<std::uint64_t>> per_author;
  std::uint64_t of(std::int64_t author) const {
    return per_author.at(static_cast<std::size_t>(author)).load();
  }
};

/// The deliberately slow function: the ids of an author's `limit` best-selling books, after `delay`
/// of pretend ranking work (the seed's seconds of SQL and scoring).
struct TopBookIds {
  Database* db;
  std::chrono::milliseconds delay;
  ComputationCounter* counter;

  std::vector<std::int64_t> operator()(std::int64_t author_id, int limit) const;
};

}  // namespace bookshop
