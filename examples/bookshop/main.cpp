// The bookshop demo: a real SQLite bookshop, a slow top_book_ids(author), and the seed's load test
// (no cache, larder, a stampede, freshness). The README's first command runs it.
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "load.hpp"

namespace {

constexpr const char* kUsage = R"(usage: bookshop [options]

Fills a SQLite bookshop (1,000 authors, 5,000 books), then runs a load test of worker threads doing
a random mix of index, author and book pages, in four phases: 1. no cache, 2. larder (cached IDs,
fresh rows), 3. a stampede on one cold key, 4. freshness (a book deleted, another repriced).

  --workers N     worker threads (default 30)
  --seconds S     length of phases 1 and 2, in seconds; phase 4 runs S/4 (default 20)
  --delay-ms D    extra time the slow top_book_ids takes, in ms (default 100)
  --redis URL     use Redis (redis://host:port/db) instead of the embedded memory store
  --json          print the summary as one JSON object on stdout (the table is not printed)
  --svg PATH      where to write the latency chart (default: a file in the temp directory)
  --short         a quick run for tests: 6 workers, 1 s phases, 5 ms delay (flags still override)
  --no-progress   no live progress line on stderr
  --help          this text
)";

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "bookshop: %s\n\n%s", why.c_str(), kUsage);
  std::exit(2);
}

template <class T>
T number(std::string_view flag, const char* text, T min, T max) {
  T v{};
  const std::string_view s{text};
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || ptr != s.data() + s.size() || v < min || v > max)
    usage_error(std::string(flag) + " needs a number from " + std::to_string(min) + " to " +
                std::to_string(max) + " (got '" + std::string(s) + "')");
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  bookshop::Config cfg;
  bool short_mode = false;
  std::optional<int> workers;
  std::optional<double> seconds;
  std::optional<int> delay;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) usage_error(std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--workers") {
      workers = number<int>(a, value(), 1, 1000);
    } else if (a == "--seconds") {
      seconds = number<double>(a, value(), 0.1, 3600);
    } else if (a == "--delay-ms") {
      delay = number<int>(a, value(), 0, 60'000);
    } else if (a == "--redis") {
      cfg.redis_url = value();
    } else if (a == "--json") {
      cfg.json = true;
    } else if (a == "--svg") {
      cfg.svg_path = value();
    } else if (a == "--short") {
      short_mode = true;
    } else if (a == "--no-progress") {
      cfg.progress = false;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else {
      usage_error("unknown option '" + std::string(a) + "'");
    }
  }
  if (short_mode) {
    cfg.workers = 6;
    cfg.seconds = 1;
    cfg.delay = std::chrono::milliseconds{5};
  }
  if (workers) cfg.workers = *workers;
  if (seconds) cfg.seconds = *seconds;
  if (delay) cfg.delay = std::chrono::milliseconds{*delay};
#ifndef LARDER_BOOKSHOP_REDIS
  if (!cfg.redis_url.empty()) {
    std::fprintf(stderr,
                 "bookshop: --redis: this build has no Redis support (larder::redis was not "
                 "built; reconfigure with -DLARDER_REDIS=ON and hiredis installed)\n");
    return 2;
  }
#endif
  if (cfg.svg_path.empty())
    cfg.svg_path = (std::filesystem::temp_directory_path() / "bookshop-latency.svg").string();

  try {
    const bookshop::Summary s = bookshop::run_load_test(cfg);
    bookshop::write_svg(s, cfg.svg_path);
    if (cfg.json) {
      std::printf("%s\n", bookshop::to_json(s).c_str());
      std::fprintf(stderr, "chart: %s\n", cfg.svg_path.c_str());
    } else {
      bookshop::print_table(s, stdout);
      std::printf("chart: %s\n", cfg.svg_path.c_str());
    }
    return s.phases.size() == 4 && s.first_error.empty() ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bookshop: %s\n", e.what());
    return 1;
  }
}
