// db.cpp: SQLite access for the bookshop demo (plain sqlite3 C API, one connection per thread).
#include "db.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <utility>

namespace bookshop {

namespace {

std::atomic<std::uint64_t> next_serial{1};

/// A prepared statement, reset after each use.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

}  // namespace

struct Database::Connection {
  sqlite3* db = nullptr;
  // Statements prepared once per connection.
  Stmt author, book, best, del, price;
  std::vector<std::unique_ptr<Stmt>> books_by_count;  // index: number of ids (1..kMaxIn)

  // close_v2 defers the close until the statements (members, finalized after this body) are gone.
  ~Connection() { sqlite3_close_v2(db); }
};

namespace {

constexpr std::size_t kMaxIn = 64;  // longest IN list prepared as one statement

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw DbError(fmt::format("bookshop db: {}: {}", what, db ? sqlite3_errmsg(db) : "no handle"));
}

sqlite3_stmt* prepare(sqlite3* db, Stmt& st, const std::string& sql) {
  if (st.s == nullptr && sqlite3_prepare_v3(db, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &st.s,
                                            nullptr) != SQLITE_OK)
    fail(db, "prepare '" + sql + "'");
  sqlite3_reset(st.s);
  sqlite3_clear_bindings(st.s);
  return st.s;
}

void bind(sqlite3* db, sqlite3_stmt* s, int i, std::int64_t v) {
  if (sqlite3_bind_int64(s, i, v) != SQLITE_OK) fail(db, "bind");
}

Book read_book(sqlite3_stmt* s) {
  Book b;
  b.id = sqlite3_column_int64(s, 0);
  b.author_id = sqlite3_column_int64(s, 1);
  b.title = reinterpret_cast<const char*>(sqlite3_column_text(s, 2));
  b.price_cents = sqlite3_column_int64(s, 3);
  b.purchases = sqlite3_column_int64(s, 4);
  return b;
}

/// Steps a statement that returns no rows.
void run(sqlite3* db, sqlite3_stmt* s, const char* what) {
  const int rc = sqlite3_step(s);
  if (rc != SQLITE_DONE) fail(db, what);
  sqlite3_reset(s);
}

constexpr const char* kBookColumns = "id, author_id, title, price_cents, purchases";

}  // namespace

Database::Database(std::string path) : path_{std::move(path)}, serial_{next_serial++} {
  exec("PRAGMA journal_mode=WAL");
}

Database::~Database() = default;

Database::Connection& Database::local() {
  // Each thread caches its connection for the Database it last used; the serial (never reused)
  // tells a new Database at the same address from an old one.
  thread_local std::vector<std::pair<std::uint64_t, Connection*>> mine;
  for (auto& [serial, conn] : mine)
    if (serial == serial_) return *conn;
  auto conn = std::make_unique<Connection>();
  if (sqlite3_open_v2(path_.c_str(), &conn->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    fail(conn->db, "open " + path_);
  sqlite3_busy_timeout(conn->db, 5000);
  Connection* raw = conn.get();
  {
    std::lock_guard lock{mutex_};
    connections_.push_back(std::move(conn));
  }
  mine.emplace_back(serial_, raw);
  return *raw;
}

void Database::exec(const char* sql) {
  Connection& c = local();
  char* err = nullptr;
  queries_.fetch_add(1, std::memory_order_relaxed);
  if (sqlite3_exec(c.db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    throw DbError(fmt::format("bookshop db: '{}': {}", sql, msg));
  }
}

void Database::fill(int authors, int books, std::uint32_t seed) {
  exec(
      "DROP TABLE IF EXISTS books; DROP TABLE IF EXISTS authors;"
      "CREATE TABLE authors (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
      "CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER NOT NULL REFERENCES "
      "authors(id), title TEXT NOT NULL, price_cents INTEGER NOT NULL, purchases INTEGER NOT NULL);"
      "CREATE INDEX books_by_author ON books(author_id, purchases DESC);");
  Connection& c = local();
  exec("BEGIN");
  std::mt19937 rng{seed};
  {
    Stmt ins;
    sqlite3_stmt* s = prepare(c.db, ins, "INSERT INTO authors (id, name) VALUES (?, ?)");
    for (int a = 1; a <= authors; ++a) {
      const std::string name = fmt::format("Author {}", a);
      bind(c.db, s, 1, a);
      sqlite3_bind_text(s, 2, name.c_str(), -1, SQLITE_TRANSIENT);
      run(c.db, s, "insert author");
    }
  }
  {
    Stmt ins;
    sqlite3_stmt* s = prepare(c.db, ins,
                              "INSERT INTO books (id, author_id, title, price_cents, purchases) "
                              "VALUES (?, ?, ?, ?, ?)");
    std::uniform_int_distribution<int> author_of{1, authors};
    std::uniform_int_distribution<int> price{499, 4999};
    std::lognormal_distribution<double> sales{6.0, 1.5};  // a few best-sellers, a long tail
    for (int b = 1; b <= books; ++b) {
      // Every author gets at least one book; the rest are spread at random.
      const int author = b <= authors ? b : author_of(rng);
      const std::string title = fmt::format("Book {} by author {}", b, author);
      bind(c.db, s, 1, b);
      bind(c.db, s, 2, author);
      sqlite3_bind_text(s, 3, title.c_str(), -1, SQLITE_TRANSIENT);
      bind(c.db, s, 4, price(rng));
      bind(c.db, s, 5, static_cast<std::int64_t>(std::min(sales(rng), 1e6)));
      run(c.db, s, "insert book");
    }
  }
  exec("COMMIT");
  exec("ANALYZE");
}

std::optional<Author> Database::author(std::int64_t id) {
  Connection& c = local();
  sqlite3_stmt* s = prepare(c.db, c.author, "SELECT id, name FROM authors WHERE id = ?");
  bind(c.db, s, 1, id);
  queries_.fetch_add(1, std::memory_order_relaxed);
  std::optional<Author> out;
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    out = Author{sqlite3_column_int64(s, 0),
                 reinterpret_cast<const char*>(sqlite3_column_text(s, 1))};
  } else if (rc != SQLITE_DONE) {
    fail(c.db, "select author");
  }
  sqlite3_reset(s);
  return out;
}

std::optional<Book> Database::book(std::int64_t id) {
  Connection& c = local();
  sqlite3_stmt* s =
      prepare(c.db, c.book, fmt::format("SELECT {} FROM books WHERE id = ?", kBookColumns));
  bind(c.db, s, 1, id);
  queries_.fetch_add(1, std::memory_order_relaxed);
  std::optional<Book> out;
  const int rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    out = read_book(s);
  } else if (rc != SQLITE_DONE) {
    fail(c.db, "select book");
  }
  sqlite3_reset(s);
  return out;
}

std::vector<Book> Database::books(std::span<const std::int64_t> ids) {
  std::vector<Book> out;
  if (ids.empty()) return out;
  Connection& c = local();
  out.reserve(ids.size());
  // One statement per IN-list length, prepared once; a list longer than kMaxIn (never, in the
  // demo) is fetched in chunks of kMaxIn.
  for (std::size_t start = 0; start < ids.size(); start += kMaxIn) {
    const std::size_t n = std::min(kMaxIn, ids.size() - start);
    if (c.books_by_count.size() <= n) c.books_by_count.resize(n + 1);
    auto& slot = c.books_by_count[n];
    if (!slot) slot = std::make_unique<Stmt>();
    std::string marks;
    for (std::size_t i = 0; i < n; ++i) marks += i == 0 ? "?" : ",?";
    sqlite3_stmt* s = prepare(
        c.db, *slot, fmt::format("SELECT {} FROM books WHERE id IN ({})", kBookColumns, marks));
    for (std::size_t i = 0; i < n; ++i) bind(c.db, s, static_cast<int>(i + 1), ids[start + i]);
    queries_.fetch_add(1, std::memory_order_relaxed);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.push_back(read_book(s));
    if (rc != SQLITE_DONE) fail(c.db, "select books");
    sqlite3_reset(s);
  }
  return out;
}

std::vector<std::int64_t> Database::best_sellers(std::int64_t author_id, int limit) {
  Connection& c = local();
  sqlite3_stmt* s = prepare(
      c.db, c.best, "SELECT id FROM books WHERE author_id = ? ORDER BY purchases DESC, id LIMIT ?");
  bind(c.db, s, 1, author_id);
  bind(c.db, s, 2, limit);
  queries_.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::int64_t> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.push_back(sqlite3_column_int64(s, 0));
  if (rc != SQLITE_DONE) fail(c.db, "select best sellers");
  sqlite3_reset(s);
  return out;
}

std::vector<std::int64_t> Database::book_ids_by_purchases() {
  Connection& c = local();
  Stmt st;
  sqlite3_stmt* s = prepare(c.db, st, "SELECT id FROM books ORDER BY purchases DESC, id");
  queries_.fetch_add(1, std::memory_order_relaxed);
  std::vector<std::int64_t> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.push_back(sqlite3_column_int64(s, 0));
  if (rc != SQLITE_DONE) fail(c.db, "select book ids");
  return out;
}

void Database::delete_book(std::int64_t id) {
  Connection& c = local();
  sqlite3_stmt* s = prepare(c.db, c.del, "DELETE FROM books WHERE id = ?");
  bind(c.db, s, 1, id);
  queries_.fetch_add(1, std::memory_order_relaxed);
  run(c.db, s, "delete book");
}

void Database::set_price(std::int64_t id, std::int64_t price_cents) {
  Connection& c = local();
  sqlite3_stmt* s = prepare(c.db, c.price, "UPDATE books SET price_cents = ? WHERE id = ?");
  bind(c.db, s, 1, price_cents);
  bind(c.db, s, 2, id);
  queries_.fetch_add(1, std::memory_order_relaxed);
  run(c.db, s, "update price");
}

std::vector<std::int64_t> TopBookIds::operator()(std::int64_t author_id, int limit) const {
  if (counter) {
    counter->total.fetch_add(1, std::memory_order_relaxed);
    if (author_id >= 0 && static_cast<std::size_t>(author_id) < counter->per_author.size())
      counter->per_author[static_cast<std::size_t>(author_id)].fetch_add(1);
  }
  auto ids = db->best_sellers(author_id, limit);
  std::this_thread::sleep_for(delay);  // the seed's seconds of ranking, scaled down
  return ids;
}

}  // namespace bookshop
