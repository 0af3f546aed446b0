// load.hpp: the bookshop load test: worker threads doing the seed's random mix of index,
// author-detail and book-detail requests, in four phases (no cache, larder, a stampede, freshness),
// and the summary they produce (a table, one JSON object, an SVG chart).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace bookshop {

struct Config {
  int workers = 30;                      // worker threads (the seed's 30 gunicorn workers)
  double seconds = 20.0;                 // length of phases 1 and 2; phase 4 runs a quarter
  std::chrono::milliseconds delay{100};  // extra time top_book_ids takes (pretend ranking)
  std::string redis_url;                 // empty: the embedded MemoryStore
  bool json = false;                     // print the summary as one JSON object
  std::string svg_path;                  // where the chart goes (empty: a temp file)
  bool progress = true;                  // the live progress line on stderr
  int authors = 1000;                    // rows seeded, like the seed's showcase
  int books = 5000;
  std::uint32_t seed = 42;  // data and request mix are deterministic per seed
};

/// Latency percentiles of one slice of time within a phase.
struct Bucket {
  double t = 0;  // seconds since the phase began (slice start)
  std::uint64_t count = 0;
  double p50_ms = 0, p95_ms = 0, p99_ms = 0;
};

struct PhaseResult {
  std::string key;    // no_cache, larder, stampede, freshness
  std::string title;  // for the table and chart
  double seconds = 0;
  std::uint64_t requests = 0;
  double rps = 0;
  double p50_ms = 0, p95_ms = 0, p99_ms = 0, max_ms = 0;
  double hit_ratio = 0;            // top_book_ids calls answered without computing
  std::uint64_t computations = 0;  // top_book_ids runs (the slow function)
  std::uint64_t errors = 0;        // requests that threw
  std::uint64_t repository_calls = 0;
  std::vector<Bucket> timeline;                   // for the chart
  std::vector<std::pair<double, double>> points;  // (t, ms) of every request, when few
};

struct Summary {
  Config config;
  std::string store;  // "memory" or "redis"
  std::string db_path;
  std::vector<PhaseResult> phases;
  std::uint64_t stampede_workers = 0;
  std::uint64_t stampede_computations = 0;
  std::uint64_t stale_rows_served = 0;  // phase 4: a deleted book, or an old price, shown
  std::uint64_t fresh_price_seen = 0;   // phase 4: responses showing the edited book's new price
  std::uint64_t deleted_dropped = 0;    // phase 4: cached ids dropped because the row was gone
  std::uint64_t freshness_id_list_computations = 0;  // phase 4: recomputes of the edited list
  std::int64_t deleted_book = 0, repriced_book = 0, freshness_author = 0;
  std::string first_error;
  double total_seconds = 0;
};

/// Seeds a SQLite database in a temp directory and runs the four phases. Throws on setup failure
/// (no database, Redis unreachable); request failures are counted, not thrown.
Summary run_load_test(const Config& config);

void print_table(const Summary& s, std::FILE* out);
std::string to_json(const Summary& s);
/// Writes the latency-over-time chart; throws std::runtime_error if the file cannot be written.
void write_svg(const Summary& s, const std::string& path);

}  // namespace bookshop
