// JsonCache: the cached text is the entity's dump() byte for byte, over the memory store and over a
// byte store (raw bytes after the envelope, never a quoted JSON string); get_many joins cached
// texts and loads only the missing ones in one repository call; missing entities are not cached;
// refresh skips the cache; a throwing repository leaves the cache untouched; a failing store
// never loses the caller's text; invalid IDs throw; written() invalidates or re-warms.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <future>
#include <larder/json_cache.hpp>
#include <larder/larder.hpp>
#include <larder/warmer.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/gate.hpp"
#include "support/map_byte_store.hpp"

using namespace std::chrono_literals;

namespace shop {

struct Baz {
  std::int64_t id = 0;
  std::string note;
  double value = 0;
};
struct Foo {
  std::int64_t id = 0;
  std::string name;
  std::vector<Baz> bazs;
  int touched = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Baz, id, note, value)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Foo, id, name, bazs, touched)

/// A repository double: a map answering in reverse order, counting calls and the IDs asked for,
/// failing on demand.
class FooRepository {
 public:
  using entity_type = Foo;
  using id_type = std::int64_t;

  std::vector<Foo> get_many(std::span<const std::int64_t> ids) {
    gate_.pass();
    std::lock_guard lock{mutex_};
    ++calls;
    asked.insert(asked.end(), ids.begin(), ids.end());
    last_ids.assign(ids.begin(), ids.end());
    if (failing) throw std::runtime_error("database down");
    std::vector<Foo> out;
    for (auto it = rows.rbegin(); it != rows.rend(); ++it)
      if (std::find(ids.begin(), ids.end(), it->first) != ids.end()) out.push_back(it->second);
    return out;
  }
  std::int64_t id_of(const Foo& f) const { return f.id; }
  std::vector<std::int64_t> all_ids() {
    std::lock_guard lock{mutex_};
    std::vector<std::int64_t> ids;
    for (const auto& [id, f] : rows) ids.push_back(id);
    return ids;
  }

  void put(Foo f) {
    std::lock_guard lock{mutex_};
    rows[f.id] = std::move(f);
  }
  void touch(std::int64_t id) {
    std::lock_guard lock{mutex_};
    ++rows.at(id).touched;
  }
  void remove(std::int64_t id) {
    std::lock_guard lock{mutex_};
    rows.erase(id);
  }
  Foo row(std::int64_t id) {
    std::lock_guard lock{mutex_};
    return rows.at(id);
  }
  int call_count() {
    std::lock_guard lock{mutex_};
    return calls;
  }
  std::vector<std::int64_t> last() {
    std::lock_guard lock{mutex_};
    return last_ids;
  }

  /// While closed, get_many blocks (to hold a warming in the middle of its work).
  void close_gate() { gate_.close(); }
  void open_gate() { gate_.open(); }
  void wait_inside(int n) { gate_.wait_inside(n); }

  std::atomic<bool> failing{false};

 private:
  larder::testing::Gate gate_;
  std::mutex mutex_;
  std::map<std::int64_t, Foo> rows;
  int calls = 0;
  std::vector<std::int64_t> asked;
  std::vector<std::int64_t> last_ids;
};

/// A Foo with `n` bazs and text that needs JSON escaping.
Foo make_foo(std::int64_t id, int n) {
  Foo f{id, "foo \"" + std::to_string(id) + "\"\n\u00e9", {}, 0};
  for (int i = 0; i < n; ++i)
    f.bazs.push_back(Baz{id * 1000 + i, "b:" + std::to_string(i), 0.1 * i});
  return f;
}

}  // namespace shop

namespace {

using shop::Foo;
using shop::FooRepository;
using shop::make_foo;

std::string fresh_dump(FooRepository& repo, std::int64_t id) {
  return nlohmann::json(repo.row(id)).dump();
}

void fill(FooRepository& repo, int n) {
  for (int id = 1; id <= n; ++id) repo.put(make_foo(id, id * 3));
}

}  // namespace

TEST_CASE("JsonCache: get returns the entity's dump() byte for byte, computed once", "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 5);
  larder::JsonCache<Foo> foos{store, "Foo", repo};

  auto first = foos.get(3);
  REQUIRE(first.has_value());
  CHECK(first->view() == fresh_dump(repo, 3));
  CHECK(repo.call_count() == 1);

  auto second = foos.get(3);
  REQUIRE(second.has_value());
  CHECK(repo.call_count() == 1);               // a hit: the repository was not asked again
  CHECK(second->shared() == first->shared());  // the same shared text, not a copy
  const auto s = foos.stats();
  CHECK(s.cache.hits == 1);
  CHECK(s.cache.misses == 1);
  CHECK(s.cache.loads == 1);
  CHECK(s.bytes_served == 2 * first->size());
  CHECK(foos.key(3) == "larder:v1:Foo:json:3");
}

TEST_CASE("JsonCache: a missing entity is nullopt and is not cached", "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 2);
  larder::JsonCache<Foo> foos{store, "Foo", repo};

  CHECK_FALSE(foos.get(7).has_value());
  CHECK_FALSE(foos.get(7).has_value());
  CHECK(repo.call_count() == 2);  // asked again: absence is not cached
  CHECK(foos.stats().not_found == 2);

  repo.put(make_foo(7, 1));  // created later: visible at once
  auto t = foos.get(7);
  REQUIRE(t.has_value());
  CHECK(t->view() == fresh_dump(repo, 7));
}

TEST_CASE("JsonCache: get_many joins cached texts and loads only the missing in one call",
          "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 6);
  larder::JsonCache<Foo> foos{store, "Foo", repo};

  REQUIRE(foos.get(2));
  REQUIRE(foos.get(4));
  const int before = repo.call_count();

  const std::vector<std::int64_t> ids{4, 1, 2, 99, 6, 1};
  auto list = foos.get_many(ids);
  CHECK(repo.call_count() == before + 1);  // one repository call for every missing ID
  auto asked = repo.last();
  std::sort(asked.begin(), asked.end());
  CHECK(asked == std::vector<std::int64_t>{1, 6, 99});  // only those not cached

  std::string expected = "[" + fresh_dump(repo, 4) + "," + fresh_dump(repo, 1) + "," +
                         fresh_dump(repo, 2) + "," + fresh_dump(repo, 6) + "," +
                         fresh_dump(repo, 1) + "]";
  CHECK(list.text == expected);
  CHECK(list.items == 5);
  CHECK(list.missing == std::vector<std::int64_t>{99});
  CHECK(nlohmann::json::parse(list.text).size() == 5);

  // All cached now (but 99): no repository call at all.
  const int after = repo.call_count();
  auto again = foos.get_many(std::vector<std::int64_t>{1, 2, 4, 6});
  CHECK(repo.call_count() == after);
  CHECK(again.items == 4);

  CHECK(foos.get_many(std::span<const std::int64_t>{}).text == "[]");
}

TEST_CASE("JsonCache: refresh skips the cache and stores the new text; invalidate drops it",
          "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 3);
  larder::JsonCache<Foo> foos{store, "Foo", repo};

  const std::string old_text{foos.get(1)->view()};
  repo.touch(1);
  CHECK(foos.get(1)->view() == old_text);  // cached: the write is not seen yet

  auto fresh = foos.refresh(1);
  REQUIRE(fresh);
  CHECK(fresh->view() == fresh_dump(repo, 1));
  CHECK(fresh->view() != old_text);
  CHECK(foos.get(1)->view() == fresh_dump(repo, 1));  // and stored

  repo.touch(1);
  foos.invalidate(1);
  CHECK(foos.get(1)->view() == fresh_dump(repo, 1));

  repo.remove(1);
  CHECK_FALSE(foos.refresh(1).has_value());
  CHECK_FALSE(foos.get(1).has_value());  // the old text was dropped, not served
}

TEST_CASE("JsonCache: a throwing repository reaches the caller and leaves the cache untouched",
          "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 3);
  larder::JsonCache<Foo> foos{store, "Foo", repo};
  const std::string cached{foos.get(1)->view()};

  repo.failing = true;
  repo.touch(1);
  CHECK_THROWS_WITH(foos.refresh(1), "database down");
  CHECK_THROWS_WITH(foos.get(2), "database down");
  CHECK_THROWS_WITH(foos.get_many(std::vector<std::int64_t>{1, 2}), "database down");
  CHECK(foos.stats().cache.load_failures == 3);

  repo.failing = false;
  CHECK(foos.get(1)->view() == cached);  // the failed refresh left the old text
  const int calls = repo.call_count();
  CHECK(foos.get(2)->view() == fresh_dump(repo, 2));  // nothing was cached for 2
  CHECK(repo.call_count() == calls + 1);
}

TEST_CASE("JsonCache: invalid IDs are rejected before any work", "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 1);
  larder::JsonCache<Foo> foos{store, "Foo", repo};
  CHECK_THROWS_AS(foos.get(-1), std::invalid_argument);
  CHECK_THROWS_WITH(foos.get(-1), Catch::Contains("'Foo'") && Catch::Contains(">= 0"));
  CHECK_THROWS_AS(foos.get_many(std::vector<std::int64_t>{1, -5}), std::invalid_argument);
  CHECK_THROWS_AS(foos.refresh(-1), std::invalid_argument);
  CHECK_THROWS_AS(foos.written(-1), std::invalid_argument);
  CHECK(repo.call_count() == 0);

  CHECK_THROWS_AS((larder::JsonCache<Foo>{store, "bad:model", repo}), std::invalid_argument);
  CHECK_THROWS_AS((larder::JsonCache<Foo>{store, "Foo2", repo, {.ttl = 0ms}}),
                  std::invalid_argument);
}

TEST_CASE("JsonCache: a custom serializer's output is what is cached", "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 2);
  larder::JsonCache<Foo> foos{store, "Foo", repo,
                              [](const Foo& f) { return nlohmann::json(f).dump(2); }};
  CHECK(foos.get(2)->view() == nlohmann::json(repo.row(2)).dump(2));
  CHECK(foos.serialize(repo.row(2)) == nlohmann::json(repo.row(2)).dump(2));
}

TEST_CASE("JsonCache over a byte store keeps the raw text and serves it to another process",
          "[json]") {
  larder::FakeClock clock;
  larder::testing::MapByteStore bytes{clock};
  FooRepository repo;
  fill(repo, 4);
  larder::Options opts{.ttl = 1h, .clock = &clock};

  larder::JsonCache<Foo> a{bytes, "Foo", repo, opts};
  const auto text = a.get(3);
  REQUIRE(text);
  CHECK(text->view() == fresh_dump(repo, 3));

  // The stored payload: the envelope header line, then exactly the text (not a quoted string).
  const auto stored = bytes.peek(a.key(3));
  REQUIRE(stored);
  const auto nl = stored->find('\n');
  REQUIRE(nl != std::string::npos);
  CHECK(stored->substr(nl + 1) == fresh_dump(repo, 3));

  // Another instance (another process's cache) over the same bytes: served without the repository.
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, bytes};
  larder::JsonCache<Foo> b{tiered, "Foo", repo, opts};
  const int calls = repo.call_count();
  auto list = b.get_many(std::vector<std::int64_t>{3});
  CHECK(repo.call_count() == calls);
  CHECK(list.text == "[" + fresh_dump(repo, 3) + "]");
  CHECK(b.stats().cache.hits == 1);
}

TEST_CASE("JsonCache: a missing entity costs the shared tier no write, delete or publish",
          "[json]") {
  larder::FakeClock clock;
  larder::testing::MapByteStore bytes{clock};
  larder::MemoryStore l1;
  larder::TieredStore tiered{l1, bytes};
  FooRepository repo;
  fill(repo, 2);
  larder::Options opts{.ttl = 1h, .clock = &clock};
  larder::JsonCache<Foo> foos{tiered, "Foo", repo, opts};

  for (int i = 0; i < 3; ++i) CHECK_FALSE(foos.get(7).has_value());
  auto list = foos.get_many(std::vector<std::int64_t>{7, 1, 8});
  CHECK(list.missing == std::vector<std::int64_t>{7, 8});
  CHECK(list.text == "[" + fresh_dump(repo, 1) + "]");
  CHECK(bytes.sets == 1);    // entity 1's text only
  CHECK(bytes.erases == 0);  // (before: a SET of an empty text, then a DEL, for each miss)
  CHECK(foos.stats().not_found == 5);
  CHECK(l1.size() == 1);

  repo.put(make_foo(7, 1));  // created later: visible at once
  REQUIRE(foos.get(7).has_value());

  // An empty text stored by an older larder (which kept it briefly) is still dropped on sight.
  larder::Cached<larder::JsonText (*)(const std::int64_t&)> old{
      bytes, "Foo", "json", [](const std::int64_t&) { return larder::JsonText{}; }, opts};
  CHECK(old(9)->empty());
  REQUIRE(bytes.peek(foos.key(9)).has_value());
  repo.put(make_foo(9, 1));
  CHECK_FALSE(foos.get(9).has_value());              // served from the tier as it was...
  CHECK_FALSE(bytes.peek(foos.key(9)).has_value());  // ...and dropped
  CHECK(foos.get(9).has_value());
}

TEST_CASE("JsonCache: a failing store never loses the caller's text", "[json]") {
  larder::FakeClock clock;
  larder::testing::MapByteStore bytes{clock};
  FooRepository repo;
  fill(repo, 3);
  std::atomic<int> errors{0};
  larder::JsonCache<Foo> foos{
      bytes, "Foo", repo, {.ttl = 1h, .clock = &clock, .on_error = [&](auto&) { ++errors; }}};
  bytes.failing = true;
  auto t = foos.get(2);
  REQUIRE(t);
  CHECK(t->view() == fresh_dump(repo, 2));
  auto list = foos.get_many(std::vector<std::int64_t>{1, 2});
  CHECK(list.text == "[" + fresh_dump(repo, 1) + "," + fresh_dump(repo, 2) + "]");
  CHECK(foos.stats().cache.store_errors > 0);
  CHECK(errors > 0);
}

TEST_CASE("JsonCache: garbage in the byte store is a miss, replaced by the fresh text", "[json]") {
  larder::FakeClock clock;
  larder::testing::MapByteStore bytes{clock};
  FooRepository repo;
  fill(repo, 2);
  larder::JsonCache<Foo> foos{bytes, "Foo", repo, {.ttl = 1h, .clock = &clock}};
  bytes.poke(foos.key(1), "not a larder payload");
  CHECK(foos.get(1)->view() == fresh_dump(repo, 1));
  CHECK(foos.stats().cache.decode_errors == 1);
}

TEST_CASE("JsonCache: written() invalidates, or re-warms through an attached warmer", "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 3);

  SECTION("invalidate: the next read computes the new text") {
    larder::JsonCache<Foo> foos{store, "Foo", repo};
    REQUIRE(foos.get(1));
    repo.touch(1);
    foos.written(1);
    CHECK(foos.get(1)->view() == fresh_dump(repo, 1));
    CHECK(foos.stats().writes == 1);
  }
  SECTION("rewarm: the warmer refreshes it; readers keep the old text until then") {
    larder::JsonCache<Foo> foos{store, "Foo", repo, {}, {.on_write = larder::OnWrite::rewarm}};
    const std::string old_text{foos.get(1)->view()};
    larder::Warmer warmer{foos, {.workers = 1}};
    repo.touch(1);
    foos.written(1);
    warmer.wait_idle();
    CHECK(warmer.progress().done == 1);
    const int calls = repo.call_count();
    CHECK(foos.get(1)->view() == fresh_dump(repo, 1));  // visible after re-warming
    CHECK(foos.get(1)->view() != old_text);
    CHECK(repo.call_count() == calls);  // and it was a hit: the warmer stored it
  }
  SECTION("rewarm without a warmer falls back to invalidate") {
    larder::JsonCache<Foo> foos{store, "Foo", repo, {}, {.on_write = larder::OnWrite::rewarm}};
    REQUIRE(foos.get(1));
    { larder::Warmer warmer{foos}; }  // attached, then detached by its destructor
    repo.touch(1);
    foos.written(1);
    CHECK(foos.get(1)->view() == fresh_dump(repo, 1));
  }
}

TEST_CASE("JsonCache: a second Warmer is refused while the first is attached", "[json]") {
  // It used to replace the first silently: written() then re-warmed through whichever attached
  // last, and the first's destructor left the second attached (or detached it, if it was last).
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 2);
  larder::JsonCache<Foo> foos{store, "Foo", repo, {}, {.on_write = larder::OnWrite::rewarm}};
  REQUIRE(foos.get(1));
  REQUIRE(foos.get(2));
  std::optional<larder::Warmer<std::int64_t>> first;
  first.emplace(foos, larder::WarmerOptions{.workers = 1});

  std::string refused;
  try {
    larder::Warmer second{foos, {.workers = 1}};
  } catch (const std::logic_error& e) {
    refused = e.what();
  }
  CHECK(refused.find("'Foo'") != std::string::npos);  // names the cache
  CHECK(refused.find("already") != std::string::npos);

  repo.touch(1);
  foos.written(1);  // still re-warmed through the first
  first->wait_idle();
  CHECK(first->progress().done == 1);
  int calls = repo.call_count();
  CHECK(foos.get(1)->view() == fresh_dump(repo, 1));
  CHECK(repo.call_count() == calls);

  first.reset();  // detached: another may attach now
  larder::Warmer second{foos, {.workers = 1}};
  repo.touch(2);
  foos.written(2);
  second.wait_idle();
  CHECK(second.progress().done == 1);
  calls = repo.call_count();
  CHECK(foos.get(2)->view() == fresh_dump(repo, 2));
  CHECK(repo.call_count() == calls);
}

TEST_CASE("JsonCache: a warmer stopped with queued re-warms drops those texts, not the writes",
          "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 3);
  larder::JsonCache<Foo> foos{store, "Foo", repo, {}, {.on_write = larder::OnWrite::rewarm}};
  REQUIRE(foos.get(1));
  REQUIRE(foos.get(2));
  std::optional<larder::Warmer<std::int64_t>> warmer;
  warmer.emplace(foos, larder::WarmerOptions{.workers = 1});

  repo.close_gate();
  repo.touch(1);
  foos.written(1);  // the pump takes it and blocks in the repository
  repo.wait_inside(1);
  repo.touch(2);
  foos.written(2);                                                       // queued behind it
  std::thread stopper{[&] { warmer->stop(larder::StopMode::cancel); }};  // as its destructor does
  while (warmer->progress().cancelled < 1) std::this_thread::yield();
  repo.open_gate();  // 1 finishes; stop() returns once its pump has ended
  stopper.join();
  CHECK(warmer->progress().done == 1);
  warmer.reset();

  const int calls = repo.call_count();
  CHECK(foos.get(1)->view() == fresh_dump(repo, 1));  // re-warmed before the warmer ended
  CHECK(repo.call_count() == calls);
  CHECK(foos.get(2)->view() == fresh_dump(repo, 2));  // dropped from the queue: invalidated,
  CHECK(repo.call_count() == calls + 1);              // so computed fresh on read, not stale
}

TEST_CASE("JsonCache: a written() blocked on a full warmer queue stalls no other written()",
          "[json]") {
  // written() used to hold the cache's warmer mutex while enqueue waited for room
  // (OnFull::block), so a written() that needed no room (its ID already queued), and the
  // warmer's destructor, waited behind it. The destructor must still wait for the blocked call
  // to leave the warmer.
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 3);
  larder::JsonCache<Foo> foos{store, "Foo", repo, {}, {.on_write = larder::OnWrite::rewarm}};
  for (std::int64_t id = 1; id <= 3; ++id) REQUIRE(foos.get(id));
  std::optional<larder::Warmer<std::int64_t>> warmer;
  warmer.emplace(foos, larder::WarmerOptions{.capacity = 1, .workers = 1});

  repo.close_gate();
  for (std::int64_t id = 1; id <= 3; ++id) repo.touch(id);
  foos.written(1);  // the pump takes it and blocks in the repository
  repo.wait_inside(1);
  foos.written(2);  // queued: the queue is full
  std::atomic<bool> blocked_returned{false};
  std::thread blocked{[&] {
    foos.written(3);  // waits for room
    blocked_returned = true;
  }};
  std::this_thread::sleep_for(50ms);  // not a timing assertion: it may only fail to catch a bug
  auto merged = std::async(std::launch::async, [&] { foos.written(2); });  // merges, needs no room
  CHECK(merged.wait_for(10s) == std::future_status::ready);
  CHECK_FALSE(blocked_returned);
  CHECK(warmer->progress().deduplicated == 1);

  // Destroying the warmer now waits for the blocked written() to leave it (ASan/TSan would see a
  // use after free otherwise), then cancels what is queued.
  std::thread destroyer{[&] { warmer.reset(); }};
  repo.open_gate();
  blocked.join();
  destroyer.join();
  merged.get();
  CHECK(blocked_returned);
  for (std::int64_t id = 1; id <= 3; ++id)
    CHECK(foos.get(id)->view() == fresh_dump(repo, id));  // re-warmed, or cancelled: invalidated
  CHECK(foos.stats().writes == 4);
}

TEST_CASE("JsonCache: a re-warm after a write that fails drops the pre-write text", "[json]") {
  // It used to keep it until its TTL: readers were served data known to be outdated. Now they
  // fill on read: the repository's error while it fails, the new text once it answers.
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 2);
  std::mutex m;
  std::vector<larder::WarmError> errors;
  larder::JsonCache<Foo> foos{store, "Foo", repo, {}, {.on_write = larder::OnWrite::rewarm}};
  REQUIRE(foos.get(1));
  REQUIRE(foos.get(2));
  larder::Warmer warmer{foos, {.workers = 1, .on_error = [&](const larder::WarmError& e) {
                                 std::lock_guard lock{m};
                                 errors.push_back(e);
                               }}};

  repo.touch(1);
  repo.failing = true;
  foos.written(1);
  warmer.wait_idle();
  CHECK(warmer.progress().failed == 1);
  {
    std::lock_guard lock{m};
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].what == "database down");  // the warming still fails with the cause
  }
  CHECK_THROWS_WITH(foos.get(1), "database down");  // not the pre-write text
  repo.failing = false;
  CHECK(foos.get(1)->view() == fresh_dump(repo, 1));
  const int calls = repo.call_count();
  CHECK(foos.get(2)->view() == fresh_dump(repo, 2));  // the others are left as they were
  CHECK(repo.call_count() == calls);
}

TEST_CASE("JsonCache: warm_all fills every entity; a later list makes no repository call",
          "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 20);
  larder::JsonCache<Foo> foos{store, "Foo", repo};
  larder::Warmer warmer{foos, {.capacity = 4, .workers = 2}};
  CHECK(warmer.warm_all() == 20);
  warmer.wait_idle();
  const auto p = warmer.progress();
  CHECK(p.total == 20);
  CHECK(p.done == 20);
  CHECK(p.failed == 0);

  const int calls = repo.call_count();
  auto ids = repo.all_ids();
  auto list = foos.get_many(ids);
  CHECK(repo.call_count() == calls);
  CHECK(list.items == 20);
  std::string expected = "[";
  for (auto id : ids) expected += (id == 1 ? "" : ",") + fresh_dump(repo, id);
  CHECK(list.text == expected + "]");
}

TEST_CASE("JsonCache: concurrent readers of a cold ID share one computation", "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 2);
  larder::JsonCache<Foo> foos{store, "Foo", repo};
  std::vector<std::thread> threads;
  std::atomic<int> good{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i)
        if (auto text = foos.get(1 + i % 2); text && !text->empty()) ++good;
    });
  for (auto& t : threads) t.join();
  CHECK(good == 8 * 200);
  CHECK(foos.stats().cache.loads == 2);
}

TEST_CASE("JsonCache: a warmer cancelled while the same ID is re-warmed keeps no pre-write text",
          "[json]") {
  // The pump is re-warming 1 with the row it read before a second write; that write queues 1 again
  // (it is running), and stop(cancel) drops the queued one. The running warming then stores its
  // pre-write text: the drop must invalidate after it, not before, or that text outlives the
  // warmer.
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 1);
  larder::testing::Gate serializing;
  larder::JsonCache<Foo> foos{store,
                              "Foo",
                              repo,
                              [&](const Foo& f) {
                                serializing.pass();
                                return nlohmann::json(f).dump();
                              },
                              {},
                              {.on_write = larder::OnWrite::rewarm}};
  REQUIRE(foos.get(1));
  std::optional<larder::Warmer<std::int64_t>> warmer;
  warmer.emplace(foos, larder::WarmerOptions{.workers = 1});

  serializing.close();
  repo.touch(1);
  foos.written(1);  // the pump reads touched == 1, then blocks serializing it
  serializing.wait_inside(1);
  repo.touch(1);    // a second write while it runs: touched == 2
  foos.written(1);  // queued again behind the running warming
  REQUIRE(warmer->progress().queued == 1);
  std::thread stopper{[&] { warmer->stop(larder::StopMode::cancel); }};
  while (warmer->progress().cancelled < 1) std::this_thread::yield();
  std::this_thread::sleep_for(50ms);  // let stop() hand the dropped refresh back meanwhile
  serializing.open();                 // the running warming stores its text (touched == 1)
  stopper.join();
  warmer.reset();

  CHECK(repo.row(1).touched == 2);
  CHECK(foos.get(1)->view() == fresh_dump(repo, 1));  // not the text of touched == 1
}

TEST_CASE("JsonCache: warming serves no bytes; only get and get_many count bytes_served",
          "[json]") {
  larder::MemoryStore store;
  FooRepository repo;
  fill(repo, 5);
  larder::JsonCache<Foo> foos{store, "Foo", repo};
  larder::Warmer warmer{foos, {.workers = 1}};
  CHECK(warmer.warm_all() == 5);  // fills
  warmer.wait_idle();
  CHECK(warmer.enqueue(1, larder::WarmKind::refresh));
  warmer.wait_idle();
  CHECK(warmer.progress().done == 6);
  CHECK(foos.stats().bytes_served == 0);
  const auto text = foos.get(2);
  REQUIRE(text);
  CHECK(foos.stats().bytes_served == text->size());
}

namespace shop {
struct Tag {
  std::string name;
  int uses = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Tag, name, uses)

/// A repository of tags keyed by their name, as a std::string or a std::string_view.
template <class IdT>
struct TagRepository {
  using entity_type = Tag;
  using id_type = IdT;
  std::map<std::string, Tag, std::less<>> rows;
  std::atomic<int> calls{0};
  std::vector<Tag> get_many(std::span<const IdT> ids) {
    ++calls;
    std::vector<Tag> out;
    for (const auto& id : ids)
      if (auto it = rows.find(std::string_view{id}); it != rows.end()) out.push_back(it->second);
    return out;
  }
  IdT id_of(const Tag& t) const { return IdT{t.name}; }
};
}  // namespace shop

TEST_CASE("JsonCache: a null const char* ID is refused with std::invalid_argument", "[json]") {
  // Converting a null char pointer to the Id is undefined (std::string_view) or libstdc++'s
  // std::logic_error (std::string): JsonCache refuses it as an invalid ID, before any work.
  larder::MemoryStore store;
  const char* null = nullptr;

  shop::TagRepository<std::string> owned_repo;
  owned_repo.rows["ada"] = shop::Tag{"ada", 3};
  larder::JsonCache<shop::Tag, std::string> owned{store, "Tag", owned_repo};
  CHECK_THROWS_AS(owned.get(null), std::invalid_argument);
  CHECK_THROWS_WITH(owned.get(null),
                    Catch::Contains("'Tag'") && Catch::Contains("null const char*"));
  CHECK_THROWS_AS(owned.refresh(null), std::invalid_argument);
  CHECK_THROWS_AS(owned.invalidate(null), std::invalid_argument);
  CHECK_THROWS_AS(owned.written(null), std::invalid_argument);
  CHECK_THROWS_AS(owned.key(null), std::invalid_argument);
  CHECK_THROWS_AS(owned.warm(null, larder::WarmKind::fill), std::invalid_argument);
  CHECK_THROWS_AS(owned.cancelled(null, larder::WarmKind::refresh), std::invalid_argument);
  CHECK_THROWS_AS(owned.get_many({"ada", null}), std::invalid_argument);
  CHECK(owned_repo.calls == 0);
  CHECK(owned.stats().cache.requests() == 0);
  CHECK(owned.stats().writes == 0);
  const char* ada = "ada";
  CHECK(owned.get_many({"ada", ada}).text ==
        R"([{"name":"ada","uses":3},{"name":"ada","uses":3}])");
  CHECK(owned.get(ada)->view() == R"({"name":"ada","uses":3})");
  CHECK(owned.key(ada) == owned.key("ada"));
  CHECK(owned.key(ada) == "larder:v1:Tag:json:ada");

  shop::TagRepository<std::string_view> view_repo;
  view_repo.rows["bob"] = shop::Tag{"bob", 4};
  larder::JsonCache<shop::Tag, std::string_view> viewed{store, "Tag", view_repo};
  CHECK_THROWS_AS(viewed.get(null), std::invalid_argument);
  CHECK_THROWS_WITH(viewed.get(null),
                    Catch::Contains("'Tag'") && Catch::Contains("null const char*"));
  CHECK_THROWS_AS(viewed.refresh(null), std::invalid_argument);
  CHECK_THROWS_AS(viewed.invalidate(null), std::invalid_argument);
  CHECK_THROWS_AS(viewed.written(null), std::invalid_argument);
  CHECK_THROWS_AS(viewed.key(null), std::invalid_argument);
  CHECK_THROWS_AS(viewed.warm(null, larder::WarmKind::fill), std::invalid_argument);
  CHECK_THROWS_AS(viewed.cancelled(null, larder::WarmKind::refresh), std::invalid_argument);
  CHECK_THROWS_AS(viewed.get_many({"bob", null}), std::invalid_argument);
  CHECK(view_repo.calls == 0);
  CHECK(viewed.stats().cache.requests() == 0);
  const char* bob = "bob";
  CHECK(viewed.get(bob)->view() == R"({"name":"bob","uses":4})");
  CHECK(viewed.get("bob").has_value());
  CHECK(viewed.stats().cache.hits == 1);
  CHECK_FALSE(viewed.get(std::string_view{"nobody"}).has_value());
  const auto list = viewed.get_many({bob, "nobody"});
  CHECK(list.text == R"([{"name":"bob","uses":4}])");
  CHECK(list.missing == std::vector<std::string_view>{"nobody"});
  CHECK_THROWS_AS(viewed.get(std::string_view{}), std::invalid_argument);  // empty, as before
  // written() with a non-owning Id: no Warmer can hold it, so the text is dropped (even when
  // on_write asks to re-warm), and the next get() reads the edited row.
  for (const auto on_write : {larder::OnWrite::invalidate, larder::OnWrite::rewarm}) {
    larder::MemoryStore own_store;
    larder::JsonCache<shop::Tag, std::string_view> edited{
        own_store, "Tag", view_repo, {}, larder::JsonCacheOptions{.on_write = on_write}};
    view_repo.rows["bob"] = shop::Tag{"bob", 4};
    CHECK(edited.get("bob")->view() == R"({"name":"bob","uses":4})");
    view_repo.rows["bob"].uses = 5;
    CHECK(edited.get("bob")->view() == R"({"name":"bob","uses":4})");  // cached
    edited.written(bob);
    CHECK(edited.stats().writes == 1);
    CHECK(edited.get("bob")->view() == R"({"name":"bob","uses":5})");
  }
}
