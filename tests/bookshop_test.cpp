// The bookshop demo, run in its short mode: its JSON summary must show the cache working (a high
// hit ratio), exactly one computation in the stampede, no stale rows, no errors; bad flags exit 2.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "support/catch.hpp"

namespace {

struct Run {
  int status = -1;
  std::string out;
};

/// Runs the demo with `args` (stderr discarded unless asked), returning its exit code and stdout.
Run run_demo(const std::string& args) {
  const std::string cmd = std::string(LARDER_BOOKSHOP_BIN) + " " + args;
  Run r;
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

}  // namespace

TEST_CASE("The bookshop demo's short run shows the cache working and fresh rows", "[bookshop]") {
  const auto svg = std::filesystem::temp_directory_path() /
                   ("larder-bookshop-test-" + std::to_string(::getpid()) + ".svg");
  const Run r = run_demo("--short --json --no-progress --svg " + svg.string());
  INFO(r.out);
  REQUIRE(r.status == 0);
  const auto j = nlohmann::json::parse(r.out);

  const auto& phases = j.at("phases");
  for (const char* name : {"no_cache", "larder", "stampede", "freshness"}) {
    INFO(name);
    const auto& p = phases.at(name);
    for (const char* field : {"rps", "p50_ms", "p95_ms", "p99_ms", "hit_ratio", "computations"})
      CHECK(p.contains(field));
    CHECK(p.at("errors").get<int>() == 0);
    CHECK(p.at("requests").get<int>() > 0);
  }
  CHECK(phases.at("no_cache").at("hit_ratio").get<double>() == 0.0);
  CHECK(phases.at("no_cache").at("computations").get<int>() > 0);
  // Structural, not timed (a sanitizer build on a busy machine does few requests per second): with
  // larder each author's list is computed at most once in the phase, and requests are served
  // without computing; without it every author page computes.
  const auto& larder = phases.at("larder");
  const auto& none = phases.at("no_cache");
  CHECK(larder.at("computations").get<int>() <= j.at("config").at("authors").get<int>());
  CHECK(larder.at("hit_ratio").get<double>() > 0.0);
  CHECK(larder.at("computations").get<double>() / larder.at("requests").get<double>() <
        none.at("computations").get<double>() / none.at("requests").get<double>());
  CHECK(j.at("stampede_computations").get<int>() == 1);
  CHECK(phases.at("stampede").at("computations").get<int>() == 1);
  CHECK(j.at("stale_rows_served").get<int>() == 0);
  CHECK(j.at("deleted_rows_dropped").get<int>() > 0);  // the deleted book was asked for, dropped
  CHECK(j.at("fresh_price_seen").get<int>() > 0);      // and the new price was shown
  CHECK(j.at("freshness_id_list_computations").get<int>() == 0);

  std::ifstream f{svg};
  std::stringstream text;
  text << f.rdbuf();
  CHECK(text.str().find("<svg") != std::string::npos);
  CHECK(text.str().find("polyline") != std::string::npos);
  std::filesystem::remove(svg);
}

TEST_CASE("The bookshop demo rejects bad flags with its usage and exit code 2", "[bookshop]") {
  CHECK(run_demo("--no-such-flag 2>/dev/null").status == 2);
  CHECK(run_demo("--workers 0 2>/dev/null").status == 2);
  CHECK(run_demo("--seconds abc 2>/dev/null").status == 2);
  CHECK(run_demo("--workers 2>/dev/null").status == 2);
  const Run help = run_demo("--help");
  CHECK(help.status == 0);
  CHECK(help.out.find("--workers") != std::string::npos);
}
