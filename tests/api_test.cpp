// The API example, started as a child process on a free loopback port and called over HTTP: the
// bytes it serves equal a fresh serialization of the same database (computed here, with
// nlohmann::json directly, from the file the server generated); a touch is visible once the warmer
// re-warmed it; missing ids are 404 with a JSON error, malformed ids 400; /metrics counts hits and
// misses in Prometheus text; bad flags exit 2.
#include <httplib.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "db.hpp"
#include "support/api_server.hpp"
#include "support/catch.hpp"

using namespace std::chrono_literals;

using larder::testing::ApiServer;
using larder::testing::metric_sample;

namespace {

double get_sample(httplib::Client& c, const std::string& name) {
  auto r = c.Get("/metrics");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  auto v = metric_sample(r->body, name);
  REQUIRE(v);
  return *v;
}

/// The fresh serialization, computed here from the server's database file.
std::string fresh_detail(api::Database& db, std::int64_t id) {
  auto foo = db.foo(id);
  REQUIRE(foo);
  return nlohmann::json(*foo).dump();
}
std::string fresh_list(api::Database& db) {
  std::vector<api::Foo> foos;
  for (auto id : db.foo_ids()) foos.push_back(*db.foo(id));
  return nlohmann::json(foos).dump();
}

const std::vector<std::string> kSmall{"--foos", "12",     "--big-foos", "1",      "--big-kb",
                                      "150",    "--bars", "4",          "--zabs", "3",
                                      "--bazs", "3",      "--threads",  "4"};

std::vector<std::string> with(std::vector<std::string> base, std::vector<std::string> more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

}  // namespace

TEST_CASE("api: detail and list bytes equal a fresh serialization of the database", "[api]") {
  ApiServer server{with(kSmall, {"--no-warm"})};
  auto c = server.client();
  api::Database db{server.db()};

  for (std::int64_t id : {1, 2, 7, 12}) {
    INFO("foo " << id);
    auto r = c.Get("/foos/" + std::to_string(id));  // a miss: computed and cached
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    CHECK(r->body == fresh_detail(db, id));
    auto again = c.Get("/foos/" + std::to_string(id));  // a hit: the cached bytes
    REQUIRE(again);
    CHECK(again->body == fresh_detail(db, id));
  }
  CHECK(fresh_detail(db, 1).size() > 100'000);  // the big one is big

  auto list = c.Get("/foos");
  REQUIRE(list);
  CHECK(list->status == 200);
  CHECK(list->body == fresh_list(db));
  CHECK(list->get_header_value("X-Items") == "12");
  CHECK(nlohmann::json::parse(list->body).size() == 12);

  // 4 ids once each, then the list computed the 8 others: 12 misses; 4 + 4 hits.
  CHECK(get_sample(c, "larder_json_misses_total") == 12);
  CHECK(get_sample(c, "larder_json_hits_total") == 8);
  CHECK(get_sample(c, "larder_json_loads_total") == 12);
  CHECK(server.stop() == 0);
}

TEST_CASE("api: a touch is visible once the warmer has re-warmed the Foo", "[api]") {
  ApiServer server{kSmall};
  auto c = server.client();
  api::Database db{server.db()};

  // Wait for the cold-start warming (warm_all) to finish: every Foo cached.
  for (int i = 0; i < 6000 && get_sample(c, "larder_warmer_done_total") < 12; ++i)
    std::this_thread::sleep_for(10ms);
  REQUIRE(get_sample(c, "larder_warmer_done_total") == 12);

  const std::string before = c.Get("/foos/3")->body;
  CHECK(nlohmann::json::parse(before).at("touched") == 0);

  auto t = c.Post("/foos/3/touch", "", "application/json");
  REQUIRE(t);
  CHECK(t->status == 202);
  for (int i = 0; i < 6000 && get_sample(c, "larder_warmer_done_total") < 13; ++i)
    std::this_thread::sleep_for(10ms);
  REQUIRE(get_sample(c, "larder_warmer_done_total") == 13);

  const double loads = get_sample(c, "larder_json_loads_total");
  auto after = c.Get("/foos/3");
  REQUIRE(after);
  CHECK(nlohmann::json::parse(after->body).at("touched") == 1);
  CHECK(after->body == fresh_detail(db, 3));
  CHECK(get_sample(c, "larder_json_loads_total") == loads);  // served from the re-warmed cache
  CHECK(get_sample(c, "larder_json_writes_total") == 1);
  CHECK(c.Get("/foos")->body == fresh_list(db));
}

TEST_CASE("api: with --on-write invalidate a touch is visible on the next read", "[api]") {
  ApiServer server{with(kSmall, {"--no-warm", "--on-write", "invalidate"})};
  auto c = server.client();
  api::Database db{server.db()};
  REQUIRE(c.Get("/foos/5")->status == 200);
  REQUIRE(c.Post("/foos/5/touch", "", "application/json")->status == 202);
  auto after = c.Get("/foos/5");
  CHECK(nlohmann::json::parse(after->body).at("touched") == 1);
  CHECK(after->body == fresh_detail(db, 5));
}

TEST_CASE("api: missing ids are 404 and malformed ids 400, with a JSON error", "[api]") {
  ApiServer server{with(kSmall, {"--no-warm"})};
  auto c = server.client();

  for (const char* path : {"/foos/13", "/foos/999999", "/foos/0"}) {
    INFO(path);
    auto r = c.Get(path);
    REQUIRE(r);
    CHECK(r->status == 404);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    const auto j = nlohmann::json::parse(r->body);
    CHECK(j.at("error").get<std::string>().find("not found") != std::string::npos);
    CHECK(j.at("status") == 404);
  }
  auto touch_missing = c.Post("/foos/999/touch", "", "application/json");
  REQUIRE(touch_missing);
  CHECK(touch_missing->status == 404);

  for (const char* path : {"/foos/abc", "/foos/-1", "/foos/1x", "/foos/%20", "/foos/1.5",
                           "/foos/99999999999999999999", "/foos/"}) {
    INFO(path);
    auto r = c.Get(path);
    REQUIRE(r);
    CHECK(r->status == 400);
    const auto j = nlohmann::json::parse(r->body);
    CHECK(j.at("error").get<std::string>().starts_with("malformed id"));
  }
  CHECK(c.Post("/foos/x/touch", "", "application/json")->status == 400);

  // Not-found ids are counted, and not cached: asking again is not a hit.
  CHECK(get_sample(c, "larder_json_not_found_total") == 3);  // 13, 999999, 0
  CHECK(c.Get("/foos/13")->status == 404);
  CHECK(get_sample(c, "larder_json_not_found_total") == 4);
  CHECK(get_sample(c, "larder_json_hits_total") == 0);
}

TEST_CASE("api: /metrics is Prometheus text with hit and miss counters", "[api]") {
  ApiServer server{with(kSmall, {"--no-warm"})};
  auto c = server.client();
  c.Get("/foos/4");
  c.Get("/foos/4");
  c.Get("/foos/4");
  auto r = c.Get("/metrics");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type").starts_with("text/plain"));
  CHECK(r->body.find("# TYPE larder_json_hits_total counter\n") != std::string::npos);
  CHECK(r->body.find("# TYPE larder_json_misses_total counter\n") != std::string::npos);
  CHECK(metric_sample(r->body, "larder_json_hits_total") == 2.0);
  CHECK(metric_sample(r->body, "larder_json_misses_total") == 1.0);
  // Every non-comment line is `name{labels} value`.
  std::size_t pos = 0;
  int lines = 0;
  while (pos < r->body.size()) {
    const auto end = r->body.find('\n', pos);
    REQUIRE(end != std::string::npos);
    const std::string line = r->body.substr(pos, end - pos);
    pos = end + 1;
    if (line.starts_with("#")) continue;
    ++lines;
    CHECK(std::regex_match(line, std::regex{R"([a-z_]+\{model="Foo"\} [0-9.eE+-]+)"}));
  }
  CHECK(lines >= 10);
}

TEST_CASE("api: bad flags print the usage and exit 2", "[api]") {
  auto run = [](const std::string& args) {
    const std::string cmd = std::string(LARDER_API_SERVER_BIN) + " " + args + " >/dev/null 2>&1";
    const int st = std::system(cmd.c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  CHECK(run("--no-such-flag") == 2);
  CHECK(run("--port abc") == 2);
  CHECK(run("--port 70000") == 2);
  CHECK(run("--foos 0") == 2);
  CHECK(run("--foos") == 2);
  CHECK(run("--foos 3 --big-foos 4") == 2);
  CHECK(run("--on-write sometimes") == 2);
  CHECK(run("--help") == 0);
}
