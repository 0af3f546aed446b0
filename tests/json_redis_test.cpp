// JsonCache over a real Redis (label redis): Redis holds the entity's text raw after larder's
// envelope header (not a quoted JSON string), another process's cache serves it without the
// repository, a list of N texts is one MGET; and the API example in --redis mode serves the same
// bytes as a fresh serialization, which a second instance then reads from Redis.
#include <httplib.h>

#include <cstdint>
#include <larder/json_cache.hpp>
#include <larder/memory_store.hpp>
#include <larder/redis_store.hpp>
#include <larder/tiered_store.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <span>
#include <string>
#include <vector>

#include "db.hpp"
#include "support/api_server.hpp"
#include "support/catch.hpp"
#include "support/redis_server.hpp"

using namespace std::chrono_literals;
using larder::testing::ApiServer;
using larder::testing::metric_sample;
using larder::testing::RawRedis;
using larder::testing::RedisServer;
using larder::testing::shared_server;

namespace {

/// FooRepository counting its calls.
struct CountingRepo {
  using entity_type = api::Foo;
  using id_type = std::int64_t;
  api::FooRepository inner;
  int calls = 0;
  std::vector<api::Foo> get_many(std::span<const std::int64_t> ids) {
    ++calls;
    return inner.get_many(ids);
  }
  std::int64_t id_of(const api::Foo& f) const { return f.id; }
};

/// The value bytes of a larder payload: what follows the header line.
std::string payload_value(const std::string& bytes) {
  const auto nl = bytes.find('\n');
  REQUIRE(nl != std::string::npos);
  return bytes.substr(nl + 1);
}

}  // namespace

TEST_CASE("JsonCache over Redis stores raw text and serves other processes", "[redis][json]") {
  auto& server = shared_server();
  RawRedis raw = server.client();
  raw.command({"FLUSHALL"});
  const auto db_path = std::filesystem::temp_directory_path() /
                       ("larder-json-redis-" + std::to_string(::getpid()) + ".db");
  {
    api::Database db{db_path.string()};
    db.generate({.foos = 8, .big_foos = 1, .big_kb = 100, .max_bars = 3});
    larder::RedisStore redis{
        larder::RedisOptions{.port = server.port(), .connect_timeout = 1s, .command_timeout = 2s}};

    CountingRepo repo_a{api::FooRepository{db}};
    larder::JsonCache<api::Foo> a{redis, "Foo", repo_a};
    const auto text = a.get(1);
    REQUIRE(text);
    const std::string fresh = nlohmann::json(*db.foo(1)).dump();
    CHECK(text->view() == fresh);
    CHECK(payload_value(raw.command({"GET", "larder:v1:Foo:json:1"})) == fresh);

    // Another process: its own memory tier over the same Redis.
    larder::MemoryStore l1;
    larder::TieredStore tiered{l1, redis};
    CountingRepo repo_b{api::FooRepository{db}};
    larder::JsonCache<api::Foo> b{tiered, "Foo", repo_b};
    CHECK(b.get(1)->view() == fresh);
    CHECK(repo_b.calls == 0);

    // A list: the texts a lacks in Redis are computed by one repository call; then a list read
    // by b is one MGET.
    const std::vector<std::int64_t> ids{1, 2, 3, 4, 5};
    a.get_many(ids);
    CHECK(repo_a.calls == 2);
    raw.command({"CONFIG", "RESETSTAT"});
    larder::MemoryStore l1c;
    larder::TieredStore tiered_c{l1c, redis};
    CountingRepo repo_c{api::FooRepository{db}};
    larder::JsonCache<api::Foo> c{tiered_c, "Foo", repo_c};
    auto list = c.get_many(ids);
    CHECK(repo_c.calls == 0);
    CHECK(raw.calls("mget") == 1);
    CHECK(raw.total_calls() == 1);
    std::vector<api::Foo> foos;
    for (auto id : ids) foos.push_back(*db.foo(id));
    CHECK(list.text == nlohmann::json(foos).dump());
  }
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm"})
    std::filesystem::remove(db_path.string() + suffix, ec);
}

TEST_CASE("The API in --redis mode serves fresh bytes, and a second instance reads them from Redis",
          "[redis][json][api]") {
  auto& server = shared_server();
  RawRedis raw = server.client();
  raw.command({"FLUSHALL"});
  const std::vector<std::string> flags{"--foos", "6",         "--big-foos", "1",         "--big-kb",
                                       "100",    "--no-warm", "--redis",    server.url()};
  ApiServer first{flags};
  auto c1 = first.client();
  api::Database db{first.db()};
  auto r = c1.Get("/foos/1");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body == nlohmann::json(*db.foo(1)).dump());
  CHECK(payload_value(raw.command({"GET", "larder:v1:Foo:json:1"})) == r->body);

  ApiServer second{flags};  // same seed: the same data, and the same Redis
  auto c2 = second.client();
  auto r2 = c2.Get("/foos/1");
  REQUIRE(r2);
  CHECK(r2->body == r->body);
  const auto metrics = c2.Get("/metrics")->body;
  CHECK(metric_sample(metrics, "larder_json_loads_total") ==
        0.0);  // served from Redis, not computed
  CHECK(metric_sample(metrics, "larder_json_hits_total") == 1.0);
  CHECK(first.stop() == 0);
  CHECK(second.stop() == 0);
}
