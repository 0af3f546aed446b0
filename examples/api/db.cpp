// db.cpp: SQLite access for the API example (plain sqlite3 C API, a pool of connections).
#include "db.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <unordered_map>
#include <utility>

namespace api {

namespace {

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw DbError(fmt::format("api db: {}: {}", what, db ? sqlite3_errmsg(db) : "no handle"));
}

/// A prepared statement, finalized on destruction.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt() = default;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(s); }
};

sqlite3_stmt* prepare(sqlite3* db, Stmt& st, const char* sql) {
  if (st.s == nullptr &&
      sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st.s, nullptr) != SQLITE_OK)
    fail(db, std::string("prepare '") + sql + "'");
  sqlite3_reset(st.s);
  sqlite3_clear_bindings(st.s);
  return st.s;
}

std::string text(sqlite3_stmt* s, int col) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
  return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, col))) : std::string{};
}

void step_done(sqlite3* db, sqlite3_stmt* s, const char* what) {
  if (sqlite3_step(s) != SQLITE_DONE) fail(db, what);
  sqlite3_reset(s);
}

}  // namespace

struct Database::Connection {
  sqlite3* db = nullptr;
  Stmt foo, bars, zabs, bazs, ids, touch;
  // close_v2 defers the close until the statements (members, finalized after this body) are gone.
  ~Connection() { sqlite3_close_v2(db); }
};

/// A connection borrowed from the pool, returned on destruction.
class Database::Lease {
 public:
  Lease(Database& db, std::unique_ptr<Connection> c) : db_{&db}, c_{std::move(c)} {}
  Lease(Lease&&) = default;
  ~Lease() {
    if (c_) {
      std::lock_guard lock{db_->mutex_};
      db_->idle_.push_back(std::move(c_));
    }
  }
  Connection& operator*() const noexcept { return *c_; }
  Connection* operator->() const noexcept { return c_.get(); }

 private:
  Database* db_;
  std::unique_ptr<Connection> c_;
};

Database::Database(std::string path) : path_{std::move(path)} { (void)lease(); }

Database::~Database() = default;

Database::Lease Database::lease() {
  {
    std::lock_guard lock{mutex_};
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return Lease{*this, std::move(c)};
    }
  }
  auto c = std::make_unique<Connection>();
  if (sqlite3_open_v2(path_.c_str(), &c->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    fail(c->db, "open " + path_);
  sqlite3_busy_timeout(c->db, 5000);
  char* err = nullptr;
  if (sqlite3_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", nullptr, nullptr,
                   &err) != SQLITE_OK) {
    std::string msg = err ? err : "?";
    sqlite3_free(err);
    throw DbError("api db: pragma: " + msg);
  }
  return Lease{*this, std::move(c)};
}

void Database::generate(const DataSize& size) {
  auto c = lease();
  auto exec = [&](const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(c->db, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw DbError(fmt::format("api db: '{}': {}", sql, msg));
    }
  };
  exec(
      "DROP TABLE IF EXISTS baz; DROP TABLE IF EXISTS zab; DROP TABLE IF EXISTS bar;"
      "DROP TABLE IF EXISTS foo;"
      "CREATE TABLE foo(id INTEGER PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,"
      "  touched INTEGER NOT NULL DEFAULT 0);"
      "CREATE TABLE bar(id INTEGER PRIMARY KEY, foo_id INTEGER NOT NULL, name TEXT NOT NULL,"
      "  status TEXT NOT NULL);"
      "CREATE INDEX bar_by_foo ON bar(foo_id, id);"
      "CREATE TABLE zab(id INTEGER PRIMARY KEY, bar_id INTEGER NOT NULL, label TEXT NOT NULL,"
      "  rank INTEGER NOT NULL);"
      "CREATE INDEX zab_by_bar ON zab(bar_id, id);"
      "CREATE TABLE baz(id INTEGER PRIMARY KEY, zab_id INTEGER NOT NULL, code TEXT NOT NULL,"
      "  amount REAL NOT NULL, qty INTEGER NOT NULL);"
      "CREATE INDEX baz_by_zab ON baz(zab_id, id);");
  exec("BEGIN");
  Stmt ifoo, ibar, izab, ibaz;
  std::mt19937 rng{size.seed};
  auto upto = [&](int n) { return std::uniform_int_distribution<int>{1, n}(rng); };
  static constexpr const char* kStatus[] = {"open", "closed", "pending", "archived"};
  // A big Foo: 100 Bars x 25 Zabs x k Bazs, k chosen so that the JSON is near big_kb (a Baz is
  // ~62 bytes of JSON, a Zab ~50 more, a Bar ~60 more).
  const int big_bars = 100, big_zabs = 25;
  const int big_bazs = std::max(
      1, static_cast<int>((static_cast<double>(size.big_kb) * 1024.0 / (big_bars * big_zabs) - 50) /
                          62.0));
  std::int64_t bar_id = 0, zab_id = 0, baz_id = 0;
  for (int f = 1; f <= size.foos; ++f) {
    const bool big = f <= size.big_foos;
    auto* s = prepare(c->db, ifoo, "INSERT INTO foo(id, name, description) VALUES (?, ?, ?)");
    sqlite3_bind_int64(s, 1, f);
    const std::string name = fmt::format("Foo {}{}", f, big ? " (big)" : "");
    const std::string desc =
        fmt::format("The \"{}\" account: a Foo with its Bars, Zabs and Bazs", f);
    sqlite3_bind_text(s, 2, name.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, desc.c_str(), -1, SQLITE_TRANSIENT);
    step_done(c->db, s, "insert foo");
    const int bars = big ? big_bars : upto(size.max_bars);
    for (int b = 0; b < bars; ++b) {
      s = prepare(c->db, ibar, "INSERT INTO bar(id, foo_id, name, status) VALUES (?, ?, ?, ?)");
      sqlite3_bind_int64(s, 1, ++bar_id);
      sqlite3_bind_int64(s, 2, f);
      const std::string bname = fmt::format("bar-{}-{}", f, b);
      sqlite3_bind_text(s, 3, bname.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_bind_text(s, 4, kStatus[rng() % 4], -1, SQLITE_STATIC);
      step_done(c->db, s, "insert bar");
      const int zabs = big ? big_zabs : upto(size.max_zabs);
      for (int z = 0; z < zabs; ++z) {
        s = prepare(c->db, izab, "INSERT INTO zab(id, bar_id, label, rank) VALUES (?, ?, ?, ?)");
        sqlite3_bind_int64(s, 1, ++zab_id);
        sqlite3_bind_int64(s, 2, bar_id);
        const std::string label = fmt::format("zab {}/{}", b, z);
        sqlite3_bind_text(s, 3, label.c_str(), -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 4, static_cast<std::int64_t>(rng() % 1000));
        step_done(c->db, s, "insert zab");
        const int bazs = big ? big_bazs : upto(size.max_bazs);
        for (int k = 0; k < bazs; ++k) {
          s = prepare(c->db, ibaz,
                      "INSERT INTO baz(id, zab_id, code, amount, qty) VALUES (?, ?, ?, ?, ?)");
          sqlite3_bind_int64(s, 1, ++baz_id);
          sqlite3_bind_int64(s, 2, zab_id);
          const std::string code = fmt::format("BZ-{:08d}", baz_id);
          sqlite3_bind_text(s, 3, code.c_str(), -1, SQLITE_TRANSIENT);
          sqlite3_bind_double(s, 4, static_cast<double>(rng() % 100000) / 100.0);
          sqlite3_bind_int64(s, 5, static_cast<std::int64_t>(rng() % 100));
          step_done(c->db, s, "insert baz");
        }
      }
    }
  }
  exec("COMMIT");
}

std::vector<std::int64_t> Database::foo_ids() {
  auto c = lease();
  auto* s = prepare(c->db, c->ids, "SELECT id FROM foo ORDER BY id");
  std::vector<std::int64_t> out;
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) out.push_back(sqlite3_column_int64(s, 0));
  if (rc != SQLITE_DONE) fail(c->db, "select foo ids");
  sqlite3_reset(s);
  return out;
}

Foo Database::load(Connection& c, std::int64_t id, bool& found) {
  Foo foo;
  found = false;
  auto* s = prepare(c.db, c.foo, "SELECT id, name, description, touched FROM foo WHERE id = ?");
  sqlite3_bind_int64(s, 1, id);
  int rc = sqlite3_step(s);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(s);
    return foo;
  }
  if (rc != SQLITE_ROW) fail(c.db, "select foo");
  foo.id = sqlite3_column_int64(s, 0);
  foo.name = text(s, 1);
  foo.description = text(s, 2);
  foo.touched = sqlite3_column_int64(s, 3);
  sqlite3_reset(s);
  found = true;

  std::unordered_map<std::int64_t, std::size_t> bar_at;
  s = prepare(c.db, c.bars, "SELECT id, name, status FROM bar WHERE foo_id = ? ORDER BY id");
  sqlite3_bind_int64(s, 1, id);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    bar_at.emplace(sqlite3_column_int64(s, 0), foo.bars.size());
    foo.bars.push_back(Bar{sqlite3_column_int64(s, 0), text(s, 1), text(s, 2), {}});
  }
  if (rc != SQLITE_DONE) fail(c.db, "select bars");
  sqlite3_reset(s);

  std::unordered_map<std::int64_t, Zab*> zab_at;
  s = prepare(c.db, c.zabs,
              "SELECT zab.id, zab.bar_id, zab.label, zab.rank FROM zab JOIN bar ON zab.bar_id = "
              "bar.id WHERE bar.foo_id = ? ORDER BY zab.bar_id, zab.id");
  sqlite3_bind_int64(s, 1, id);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    auto& bar = foo.bars[bar_at.at(sqlite3_column_int64(s, 1))];
    bar.zabs.push_back(Zab{sqlite3_column_int64(s, 0), text(s, 2), sqlite3_column_int64(s, 3), {}});
  }
  if (rc != SQLITE_DONE) fail(c.db, "select zabs");
  sqlite3_reset(s);
  // Pointers only now: the vectors no longer grow.
  for (auto& bar : foo.bars)
    for (auto& zab : bar.zabs) zab_at.emplace(zab.id, &zab);

  s = prepare(c.db, c.bazs,
              "SELECT baz.id, baz.zab_id, baz.code, baz.amount, baz.qty FROM baz "
              "JOIN zab ON baz.zab_id = zab.id JOIN bar ON zab.bar_id = bar.id "
              "WHERE bar.foo_id = ? ORDER BY baz.zab_id, baz.id");
  sqlite3_bind_int64(s, 1, id);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    zab_at.at(sqlite3_column_int64(s, 1))
        ->bazs.push_back(Baz{sqlite3_column_int64(s, 0), text(s, 2), sqlite3_column_double(s, 3),
                             sqlite3_column_int64(s, 4)});
  }
  if (rc != SQLITE_DONE) fail(c.db, "select bazs");
  sqlite3_reset(s);
  return foo;
}

std::vector<Foo> Database::foos(std::span<const std::int64_t> ids) {
  auto c = lease();
  std::vector<Foo> out;
  out.reserve(ids.size());
  for (auto id : ids) {
    bool found = false;
    Foo f = load(*c, id, found);
    if (found) out.push_back(std::move(f));
  }
  return out;
}

std::optional<Foo> Database::foo(std::int64_t id) {
  auto c = lease();
  bool found = false;
  Foo f = load(*c, id, found);
  if (!found) return std::nullopt;
  return f;
}

bool Database::touch(std::int64_t id) {
  auto c = lease();
  auto* s = prepare(c->db, c->touch, "UPDATE foo SET touched = touched + 1 WHERE id = ?");
  sqlite3_bind_int64(s, 1, id);
  step_done(c->db, s, "touch foo");
  return sqlite3_changes(c->db) > 0;
}

std::string list_uncached(Database& db) {
  const auto ids = db.foo_ids();
  return nlohmann::json(db.foos(ids)).dump();
}

std::optional<std::string> detail_uncached(Database& db, std::int64_t id) {
  auto foo = db.foo(id);
  if (!foo) return std::nullopt;
  return nlohmann::json(*foo).dump();
}

}  // namespace api
