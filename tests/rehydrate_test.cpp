// Rehydrated: cached IDs become fresh entities, with a repository double and with the bookshop's
// SQLite repository. Order kept, deleted rows dropped and counted, edited rows fresh, one
// repository call per request, failures propagated with the cached IDs kept, the recompute
// threshold.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <larder/larder.hpp>
#include <larder/rehydrated.hpp>
#include <map>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "db.hpp"
#include "support/catch.hpp"
#include "support/manual_executor.hpp"
#include "support/sealed_codec.hpp"
#include "support/teardown.hpp"

using namespace std::chrono_literals;
using larder::testing::destroys_within;
using larder::testing::ManualExecutor;
using larder::testing::Touchy;

namespace {

struct Item {
  std::int64_t id;
  std::string name;
  int price;
};

/// The repository double: a map, answering in reverse id order (any order is allowed), counting
/// its calls, failing on demand.
class MapRepository {
 public:
  using entity_type = Item;
  using id_type = std::int64_t;

  std::vector<Item> get_many(std::span<const std::int64_t> ids) {
    std::lock_guard lock{mutex_};
    ++calls;
    last_ids.assign(ids.begin(), ids.end());
    if (failing) throw std::runtime_error("database down");
    std::vector<Item> out;
    for (auto it = rows.rbegin(); it != rows.rend(); ++it)
      if (std::find(ids.begin(), ids.end(), it->first) != ids.end()) out.push_back(it->second);
    return out;
  }
  std::int64_t id_of(const Item& i) const { return i.id; }

  void put(std::int64_t id, std::string name, int price) {
    std::lock_guard lock{mutex_};
    rows[id] = Item{id, std::move(name), price};
  }
  void remove(std::int64_t id) {
    std::lock_guard lock{mutex_};
    rows.erase(id);
  }

  std::atomic<int> calls{0};
  std::atomic<bool> failing{false};
  std::vector<std::int64_t> last_ids;

 private:
  std::mutex mutex_;
  std::map<std::int64_t, Item> rows;
};
static_assert(larder::Repository<MapRepository>);
static_assert(larder::Repository<bookshop::BookRepository>);
static_assert(!larder::Repository<int>);

/// The slow function double: a fixed ID list per "author", counting computations.
struct Decider {
  std::atomic<int>* calls;
  std::map<std::int64_t, std::vector<std::int64_t>>* lists;
  std::vector<std::int64_t> operator()(std::int64_t author) const {
    ++*calls;
    return lists->at(author);
  }
};

std::vector<std::int64_t> ids_of(const std::vector<Item>& items) {
  std::vector<std::int64_t> out;
  for (const auto& i : items) out.push_back(i.id);
  return out;
}

struct Fixture {
  larder::FakeClock clock;
  larder::MemoryStore store;
  MapRepository repo;
  std::atomic<int> calls{0};
  std::map<std::int64_t, std::vector<std::int64_t>> lists{{1, {30, 10, 20}}, {2, {}}};
  Fixture() {
    repo.put(10, "ten", 100);
    repo.put(20, "twenty", 200);
    repo.put(30, "thirty", 300);
  }
  Decider decider() { return Decider{&calls, &lists}; }
};

}  // namespace

TEST_CASE("Rehydrated returns fresh entities in the cached order with one repository call",
          "[rehydrate]") {
  Fixture f;
  larder::Rehydrated top{f.store, "Author", "top", f.decider(), f.repo, {.clock = &f.clock}};

  auto first = top(1);
  CHECK(ids_of(first.entities) == std::vector<std::int64_t>{30, 10, 20});
  CHECK(first.missing == 0);
  CHECK(first.ids.source() == larder::Source::computed);
  CHECK(f.repo.calls == 1);
  CHECK(f.repo.last_ids == std::vector<std::int64_t>{30, 10, 20});

  auto second = top(1);
  CHECK(ids_of(second.entities) == std::vector<std::int64_t>{30, 10, 20});
  CHECK(second.ids.source() == larder::Source::memory);
  CHECK(f.calls == 1);       // the decision was cached
  CHECK(f.repo.calls == 2);  // the rows were fetched again, once
  CHECK(second.size() == 3);
  CHECK(second[0].name == "thirty");
}

TEST_CASE("Rehydrated drops and counts deleted rows and shows edited ones fresh", "[rehydrate]") {
  Fixture f;
  larder::Rehydrated top{f.store, "Author", "top", f.decider(), f.repo, {.clock = &f.clock}};
  top(1);
  f.repo.remove(10);
  f.repo.put(20, "twenty", 250);

  auto r = top(1);
  CHECK(ids_of(r.entities) == std::vector<std::int64_t>{30, 20});
  CHECK(r.entities[1].price == 250);
  CHECK(r.missing == 1);
  CHECK_FALSE(r.recompute_scheduled);  // no threshold set
  CHECK(f.calls == 1);                 // the ID list stayed cached
  const auto s = top.stats();
  CHECK(s.requests == 2);
  CHECK(s.repository_calls == 2);
  CHECK(s.missing == 1);
  CHECK(s.entities == 5);
  CHECK(s.ids.hits == 1);
}

TEST_CASE("Rehydrated makes no repository call for an empty list", "[rehydrate]") {
  Fixture f;
  larder::Rehydrated top{f.store, "Author", "top", f.decider(), f.repo};
  CHECK(top(2).empty());
  CHECK(f.repo.calls == 0);
}

TEST_CASE("Rehydrated keeps repeated IDs and ignores rows it did not ask for", "[rehydrate]") {
  Fixture f;
  f.lists[3] = {20, 10, 20};
  larder::Rehydrated top{f.store, "Author", "top", f.decider(), f.repo};
  auto r = top(3);
  CHECK(ids_of(r.entities) == std::vector<std::int64_t>{20, 10, 20});
  CHECK(r.entities[2].name == "twenty");
  CHECK(f.repo.calls == 1);
}

TEST_CASE("A failing repository propagates and leaves the cached IDs as they were", "[rehydrate]") {
  Fixture f;
  larder::Rehydrated top{f.store, "Author", "top", f.decider(), f.repo};
  top(1);
  f.repo.failing = true;
  CHECK_THROWS_WITH(top(1), "database down");
  CHECK(top.stats().repository_failures == 1);
  f.repo.failing = false;
  auto r = top(1);
  CHECK(ids_of(r.entities) == std::vector<std::int64_t>{30, 10, 20});
  CHECK(r.ids.source() == larder::Source::memory);
  CHECK(f.calls == 1);  // never recomputed because of the outage
}

TEST_CASE("A failing repository on a cold key still caches the IDs it computed", "[rehydrate]") {
  Fixture f;
  larder::Rehydrated top{f.store, "Author", "top", f.decider(), f.repo};
  f.repo.failing = true;
  CHECK_THROWS_WITH(top(1), "database down");
  f.repo.failing = false;
  CHECK(top(1).size() == 3);
  CHECK(f.calls == 1);
}

TEST_CASE("Rehydrated schedules one recompute when too many rows are missing", "[rehydrate]") {
  Fixture f;
  ManualExecutor executor;
  larder::Rehydrated top{f.store,
                         "Author",
                         "top",
                         f.decider(),
                         f.repo,
                         {.clock = &f.clock, .executor = &executor},
                         {.recompute_when_missing = 0.5}};
  top(1);
  f.repo.remove(10);  // 1 of 3 missing: below the threshold
  CHECK_FALSE(top(1).recompute_scheduled);
  CHECK(executor.tasks.empty());

  f.repo.remove(30);  // 2 of 3 missing
  f.lists[1] = {20};  // what a recompute now decides
  auto r = top(1);
  CHECK(ids_of(r.entities) == std::vector<std::int64_t>{20});  // answered from the cached list
  CHECK(r.missing == 2);
  CHECK(r.recompute_scheduled);
  CHECK_FALSE(top(1).recompute_scheduled);  // one pending per key
  CHECK(executor.run_all() == 1);
  CHECK(f.calls == 2);

  auto after = top(1);
  CHECK(ids_of(after.entities) == std::vector<std::int64_t>{20});
  CHECK(after.missing == 0);
  CHECK(top.stats().recomputes == 1);
}

TEST_CASE("A scheduled recompute owns its arguments: a view outlives no caller", "[rehydrate]") {
  Fixture f;
  ManualExecutor executor;
  // The list depends on the tag's text: a recompute that read another string would cache 10.
  auto by_tag = [&f](std::string_view tag) {
    ++f.calls;
    return tag.front() == 't' ? std::vector<std::int64_t>{20} : std::vector<std::int64_t>{10};
  };
  larder::Rehydrated top{f.store,
                         "Tag",
                         "ids",
                         by_tag,
                         f.repo,
                         {.clock = &f.clock, .executor = &executor},
                         {.recompute_when_missing = 0.5}};
  std::string tag(40, 't');  // a request's string: reused once the call returns
  CHECK(ids_of(top(tag).entities) == std::vector<std::int64_t>{20});
  f.repo.remove(20);
  CHECK(top(tag).recompute_scheduled);
  tag.assign(40, 'X');
  f.clock.advance(1min);
  CHECK(executor.run_all() == 1);
  CHECK(f.calls == 2);
  auto ids = top.ids()(std::string(40, 't'));
  CHECK(*ids == std::vector<std::int64_t>{20});
  CHECK(ids.age() == 0min);  // recomputed for the caller's tag, just now
  // and nothing was cached under the key of what the caller's buffer held later
  CHECK(top.ids()(std::string(40, 'X')).source() == larder::Source::computed);
}

TEST_CASE("Rehydrated refuses a null const char* argument before computing", "[rehydrate]") {
  Fixture f;
  auto by_tag = [&f](std::string_view tag) {
    ++f.calls;
    return tag.empty() ? std::vector<std::int64_t>{} : std::vector<std::int64_t>{10};
  };
  larder::Rehydrated top{f.store, "Tag", "ids", by_tag, f.repo, {.clock = &f.clock}};
  const char* missing = nullptr;
  CHECK_THROWS_WITH(top(missing), Catch::Contains("null const char* argument (argument 1"));
  CHECK(f.calls == 0);
  CHECK(f.repo.calls == 0);
  const char* tag = "t";
  CHECK(ids_of(top(tag).entities) == std::vector<std::int64_t>{10});
  CHECK(f.calls == 1);
}

TEST_CASE("A recompute whose arguments cannot be copied drops the list instead of hanging",
          "[rehydrate]") {
  Fixture f;
  ManualExecutor executor;
  auto decide = [&f](const Touchy& author) {
    ++f.calls;
    return f.lists.at(author.id);
  };
  auto top = std::make_unique<larder::Rehydrated<decltype(decide), MapRepository>>(
      f.store, "Author", "top", decide, f.repo,
      larder::Options{.clock = &f.clock, .executor = &executor},
      larder::RehydrateOptions{.recompute_when_missing = 0.5});
  (*top)(Touchy{1});
  f.repo.remove(10);
  f.repo.remove(30);  // 2 of 3 missing
  f.lists[1] = {20};
  Touchy::refuse_copies = true;
  bool threw = true;
  try {
    auto r = (*top)(Touchy{1});
    threw = false;
    CHECK(r.recompute_scheduled);
    CHECK(ids_of(r.entities) == std::vector<std::int64_t>{20});
  } catch (...) {
  }
  Touchy::refuse_copies = false;
  CHECK_FALSE(threw);
  CHECK(executor.tasks.empty());   // nothing could be scheduled: the list was dropped
  auto after = (*top)(Touchy{1});  // recomputed here, and the key is not stuck as pending
  CHECK(f.calls == 2);
  CHECK(after.missing == 0);
  f.repo.remove(20);
  CHECK((*top)(Touchy{1}).recompute_scheduled);
  CHECK(executor.run_all() == 1);
  // ~Rehydrated waits for pending recomputes: none may be left (it hung before).
  CHECK(destroys_within(std::move(top), 5s));
}

TEST_CASE("Rehydrated rejects a threshold outside [0, 1]", "[rehydrate]") {
  Fixture f;
  auto make = [&](double t) {
    larder::Rehydrated top{
        f.store, "Author", "top", f.decider(), f.repo, {}, {.recompute_when_missing = t}};
  };
  CHECK_THROWS_AS(make(1.5), std::invalid_argument);
  CHECK_THROWS_AS(make(-0.1), std::invalid_argument);
  CHECK_NOTHROW(make(1.0));
}

TEST_CASE("Rehydrated accepts any range of ids from the function", "[rehydrate]") {
  Fixture f;
  auto deque_of = [](std::int64_t) { return std::deque<int>{20, 30}; };
  larder::Rehydrated top{f.store, "Author", "deque", deque_of, f.repo};
  CHECK(ids_of(top(1).entities) == std::vector<std::int64_t>{20, 30});
  CHECK(f.repo.calls == 1);
}

TEST_CASE("A Rehydrated over a MemoryStore does not compile its ID list's codec", "[rehydrate]") {
  // This file builds only if constructing over a MemoryStore compiles neither encode nor decode
  // of a Sealed ID list's codec.
  Fixture f;
  auto sealed_of = [](std::int64_t) {
    larder::testing::Sealed<std::vector<std::int64_t>> ids;
    ids.assign({20, 10});
    return ids;
  };
  larder::Rehydrated top{f.store, "Author", "sealed", sealed_of, f.repo};
  CHECK(ids_of(top(1).entities) == std::vector<std::int64_t>{20, 10});
  CHECK(top(1).ids.source() == larder::Source::memory);
}

TEST_CASE("Concurrent callers of a cold list compute it once and each get fresh rows",
          "[rehydrate]") {
  Fixture f;
  larder::Rehydrated top{f.store, "Author", "top", f.decider(), f.repo};
  std::vector<std::future<std::size_t>> results;
  for (int i = 0; i < 8; ++i)
    results.push_back(std::async(std::launch::async, [&] { return top(1).size(); }));
  for (auto& r : results) CHECK(r.get() == 3);
  CHECK(f.calls == 1);
  CHECK(f.repo.calls == 8);
}

TEST_CASE("Rehydrated over the bookshop's SQLite repository serves fresh rows", "[rehydrate]") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("larder-rehydrate-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  {
    bookshop::Database db{(dir / "shop.db").string()};
    db.fill(20, 100, 7);
    bookshop::BookRepository repo{db};
    bookshop::ComputationCounter counter{20};
    larder::MemoryStore store;
    larder::Rehydrated top{store, "Author", "top_book_ids",
                           bookshop::TopBookIds{&db, 0ms, &counter}, repo};

    // The author with the most books.
    std::int64_t author = 1;
    for (std::int64_t a = 1; a <= 20; ++a)
      if (db.best_sellers(a, 10).size() > db.best_sellers(author, 10).size()) author = a;
    const auto expected = db.best_sellers(author, 10);
    REQUIRE(expected.size() >= 3);

    auto first = top(author, 10);
    std::vector<std::int64_t> got;
    for (const auto& b : first) got.push_back(b.id);
    CHECK(got == expected);  // best first: the cached order, not SQLite's IN order
    CHECK(repo.calls() == 1);

    db.delete_book(expected[0]);
    const auto old_price = db.book(expected[1])->price_cents;
    db.set_price(expected[1], old_price + 1000);

    auto second = top(author, 10);
    CHECK(second.missing == 1);
    REQUIRE(second.size() == expected.size() - 1);
    CHECK(second[0].id == expected[1]);
    CHECK(second[0].price_cents == old_price + 1000);
    for (const auto& b : second) CHECK(b.id != expected[0]);
    CHECK(counter.of(author) == 1);  // the ID list stayed cached
    CHECK(repo.calls() == 2);
  }
  std::filesystem::remove_all(dir);
}
