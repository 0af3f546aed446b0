// load.cpp: the four phases of the bookshop load test.
#include "load.hpp"

#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <filesystem>
#include <larder/larder.hpp>
#include <larder/rehydrated.hpp>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "db.hpp"

#ifdef LARDER_BOOKSHOP_REDIS
#include <larder/redis_store.hpp>
#endif

namespace bookshop {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using TopBooks = larder::Rehydrated<TopBookIds, BookRepository>;

constexpr int kLimit = 10;  // top_book_ids(author, 10)

/// Picks ranks 0..n-1 with probability ~ 1/(rank+1) (Zipf, s = 1): a few very popular items and a
/// long tail, like real traffic.
class Zipf {
 public:
  explicit Zipf(std::size_t n) : cdf_(n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) cdf_[i] = sum += 1.0 / static_cast<double>(i + 1);
    for (auto& c : cdf_) c /= sum;
  }
  template <class Rng>
  std::size_t operator()(Rng& rng) const {
    const double u = std::uniform_real_distribution<double>{0.0, 1.0}(rng);
    return std::min<std::size_t>(
        static_cast<std::size_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin()),
        cdf_.size() - 1);
  }

 private:
  std::vector<double> cdf_;
};

/// Phase 4's watch: a deleted book and a repriced one must never be shown stale.
struct Freshness {
  std::atomic<bool> active{false};
  std::int64_t deleted = 0;
  std::int64_t repriced = 0;
  std::int64_t new_price = 0;
  std::atomic<std::uint64_t> stale{0};
  std::atomic<std::uint64_t> fresh_seen{0};

  void check(const Book& b) {
    if (!active.load(std::memory_order_relaxed)) return;
    if (b.id == deleted) stale.fetch_add(1);
    if (b.id == repriced) (b.price_cents == new_price ? fresh_seen : stale).fetch_add(1);
  }
};

/// Live counters of the running phase (read by the progress line).
struct Live {
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> top_calls{0};
  std::atomic<std::uint64_t> top_hits{0};
  std::atomic<std::uint64_t> errors{0};
  void reset() {
    requests = 0;
    top_calls = 0;
    top_hits = 0;
    errors = 0;
  }
};

struct Sample {
  float t;   // seconds since the phase began
  float ms;  // latency
};

/// The shop's "views", over either the uncached function or larder.
class Shop {
 public:
  Shop(Database& db, BookRepository& repo, TopBookIds slow, Freshness& fresh, Live& live)
      : db_{db}, repo_{repo}, slow_{slow}, fresh_{fresh}, live_{live} {}

  void use_cache(TopBooks* cached) { cached_ = cached; }

  /// An author's best-selling books, fresh from the database.
  std::vector<Book> top_books(std::int64_t author) {
    live_.top_calls.fetch_add(1, std::memory_order_relaxed);
    if (cached_ == nullptr) {  // the seed's v0: compute every time
      auto ids = slow_(author, kLimit);
      auto rows = repo_.get_many(ids);
      std::unordered_map<std::int64_t, Book> by_id;
      for (auto& b : rows) by_id.emplace(b.id, std::move(b));
      std::vector<Book> out;
      for (auto id : ids)
        if (auto it = by_id.find(id); it != by_id.end()) out.push_back(std::move(it->second));
      return out;
    }
    auto r = (*cached_)(author, kLimit);
    if (r.ids.source() != larder::Source::computed)
      live_.top_hits.fetch_add(1, std::memory_order_relaxed);
    return std::move(r.entities);
  }

  /// "/": three featured authors with their best-sellers.
  std::size_t index(std::int64_t a, std::int64_t b, std::int64_t c) {
    std::string page;
    for (auto author : {a, b, c}) {
      auto who = db_.author(author);
      page += who ? who->name : "?";
      render(page, top_books(author));
    }
    return page.size();
  }

  /// "/authors/<id>".
  std::size_t author_page(std::int64_t author) {
    auto who = db_.author(author);
    if (!who) return 0;  // 404
    std::string page = who->name;
    render(page, top_books(author));
    return page.size();
  }

  /// "/books/<id>".
  std::size_t book_page(std::int64_t id) {
    auto book = db_.book(id);
    if (!book) return 0;  // 404 (a deleted book)
    fresh_.check(*book);
    std::string page;
    render(page, {*book});
    return page.size();
  }

 private:
  void render(std::string& page, const std::vector<Book>& books) {
    for (const auto& b : books) {
      fresh_.check(b);
      page += fmt::format("\n{} ${}.{:02}", b.title, b.price_cents / 100, b.price_cents % 100);
    }
  }

  Database& db_;
  BookRepository& repo_;
  TopBookIds slow_;
  Freshness& fresh_;
  Live& live_;
  TopBooks* cached_ = nullptr;
};

double percentile(const std::vector<float>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto i = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size()))) - 1;
  return sorted[std::min(i, sorted.size() - 1)];
}

/// A temp directory removed on destruction.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bookshop-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("cannot create a temp dir");
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace

Summary run_load_test(const Config& cfg) {
  const auto started = Clock::now();
  Summary sum;
  sum.config = cfg;
  TempDir dir;
  Database db{(dir.path / "bookshop.db").string()};
  sum.db_path = db.path();
  db.fill(cfg.authors, cfg.books, cfg.seed);
  BookRepository repo{db};
  ComputationCounter counter{static_cast<std::size_t>(cfg.authors)};
  const TopBookIds slow{&db, cfg.delay, &counter};

  // Popularity: authors and books in a shuffled order, picked by Zipf rank.
  std::mt19937_64 setup_rng{cfg.seed};
  std::vector<std::int64_t> authors(static_cast<std::size_t>(cfg.authors));
  std::iota(authors.begin(), authors.end(), 1);
  std::shuffle(authors.begin(), authors.end(), setup_rng);
  const std::vector<std::int64_t> books = db.book_ids_by_purchases();
  const Zipf author_rank{authors.size()};
  const Zipf book_rank{books.size()};

  // The store: embedded by default, Redis on request.
  std::unique_ptr<larder::Store> store;
  sum.store = "memory";
  if (!cfg.redis_url.empty()) {
#ifdef LARDER_BOOKSHOP_REDIS
    larder::RedisOptions base;
    base.pool_size = static_cast<std::size_t>(cfg.workers) + 2;
    base.key_prefix = fmt::format("bookshop-{}-{}:", ::getpid(),
                                  std::chrono::system_clock::now().time_since_epoch().count());
    auto redis = std::make_unique<larder::RedisStore>(cfg.redis_url, base);
    redis->ping();  // fail now, clearly, rather than run a "cached" phase that never caches
    store = std::move(redis);
    sum.store = "redis";
#else
    throw std::runtime_error("this bookshop was not built with Redis (larder::redis was missing)");
#endif
  } else {
    store =
        std::make_unique<larder::MemoryStore>(larder::MemoryStoreOptions{.max_entries = 50'000});
  }
  TopBooks top_books{*store,
                     "Author",
                     "top_book_ids",
                     slow,
                     repo,
                     {.ttl = 10min, .fresh_for = 5min, .cold_wait = 60s, .prefix = "bookshop"},
                     {.recompute_when_missing = 0.5}};

  Freshness fresh;
  Live live;
  Shop shop{db, repo, slow, fresh, live};

  // Workers wait at `sync` for a phase, run it, and meet at `sync` again.
  enum class Mode { mix, stampede, stop };
  Mode mode = Mode::mix;
  Clock::time_point phase_start{}, deadline{};
  std::int64_t stampede_author = 0;
  std::barrier sync{cfg.workers + 1};
  std::vector<std::vector<Sample>> samples(static_cast<std::size_t>(cfg.workers));
  std::mutex error_mutex;
  std::string first_error;

  auto worker = [&](int w) {
    std::mt19937_64 rng{cfg.seed * 7919 + static_cast<std::uint64_t>(w)};
    std::uniform_int_distribution<int> kind{0, 99};
    auto& mine = samples[static_cast<std::size_t>(w)];
    auto pick_author = [&] { return authors[author_rank(rng)]; };
    for (;;) {
      sync.arrive_and_wait();
      if (mode == Mode::stop) return;
      const bool once = mode == Mode::stampede;
      do {
        const auto t0 = Clock::now();
        try {
          if (once) {
            shop.author_page(stampede_author);
          } else if (const int k = kind(rng); k < 20) {
            shop.index(pick_author(), pick_author(), pick_author());
          } else if (k < 70) {
            shop.author_page(pick_author());
          } else {
            shop.book_page(books[book_rank(rng)]);
          }
        } catch (const std::exception& e) {
          live.errors.fetch_add(1);
          std::lock_guard lock{error_mutex};
          if (first_error.empty()) first_error = e.what();
        }
        const auto t1 = Clock::now();
        mine.push_back({std::chrono::duration<float>(t0 - phase_start).count(),
                        std::chrono::duration<float, std::milli>(t1 - t0).count()});
        live.requests.fetch_add(1, std::memory_order_relaxed);
      } while (!once && Clock::now() < deadline);
      sync.arrive_and_wait();
    }
  };
  std::vector<std::jthread> threads;
  for (int w = 0; w < cfg.workers; ++w) threads.emplace_back(worker, w);
  // Whatever happens below, release the workers before their threads are joined.
  struct Release {
    Mode& mode;
    std::barrier<>& sync;
    ~Release() {
      mode = Mode::stop;
      sync.arrive_and_wait();
    }
  };
  std::optional<Release> release{std::in_place, mode, sync};

  const bool tty = ::isatty(STDERR_FILENO) == 1;
  auto progress = [&](int n, const char* title, double elapsed, bool final) {
    if (!cfg.progress) return;
    const auto calls = live.top_calls.load();
    const double ratio = calls ? static_cast<double>(live.top_hits.load()) / calls : 0.0;
    const std::string line =
        fmt::format("[phase {}/4 {:<10}] {:5.1f} s  requests {:>9}  hit ratio {:5.1f}%  errors {}",
                    n, title, elapsed, live.requests.load(), 100 * ratio, live.errors.load());
    if (tty) {
      std::fprintf(stderr, "\r%s%s", line.c_str(), final ? "\n" : "");
    } else if (final) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::fflush(stderr);
  };

  auto run_phase = [&](int n, const char* key, const char* title, Mode m, double seconds) {
    PhaseResult res;
    res.key = key;
    res.title = title;
    live.reset();
    for (auto& s : samples) s.clear();
    const auto computed0 = counter.total.load();
    const auto repo0 = repo.calls();
    mode = m;
    phase_start = Clock::now();
    deadline = phase_start +
               std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    sync.arrive_and_wait();  // go
    if (m == Mode::mix) {
      while (Clock::now() < deadline) {
        std::this_thread::sleep_for(200ms);
        progress(n, title, std::chrono::duration<double>(Clock::now() - phase_start).count(),
                 false);
      }
    }
    sync.arrive_and_wait();  // every worker is done
    const double elapsed = std::chrono::duration<double>(Clock::now() - phase_start).count();
    progress(n, title, elapsed, true);

    res.seconds = elapsed;
    res.requests = live.requests.load();
    res.rps = static_cast<double>(res.requests) / elapsed;
    res.errors = live.errors.load();
    res.computations = counter.total.load() - computed0;
    res.repository_calls = repo.calls() - repo0;
    const auto calls = live.top_calls.load();
    res.hit_ratio = calls ? static_cast<double>(live.top_hits.load()) / calls : 0.0;

    std::vector<Sample> all;
    for (auto& s : samples) all.insert(all.end(), s.begin(), s.end());
    std::vector<float> ms;
    ms.reserve(all.size());
    for (auto& s : all) ms.push_back(s.ms);
    std::sort(ms.begin(), ms.end());
    res.p50_ms = percentile(ms, 0.50);
    res.p95_ms = percentile(ms, 0.95);
    res.p99_ms = percentile(ms, 0.99);
    res.max_ms = ms.empty() ? 0 : ms.back();
    if (all.size() < 200) {
      for (auto& s : all) res.points.emplace_back(s.t, s.ms);
    } else {  // ~60 slices per phase
      const double width = std::max(0.05, elapsed / 60);
      const auto slices = static_cast<std::size_t>(std::ceil(elapsed / width));
      std::vector<std::vector<float>> by(slices);
      for (auto& s : all)
        by[std::min(slices - 1, static_cast<std::size_t>(s.t / width))].push_back(s.ms);
      for (std::size_t i = 0; i < slices; ++i) {
        if (by[i].empty()) continue;
        std::sort(by[i].begin(), by[i].end());
        res.timeline.push_back(Bucket{static_cast<double>(i) * width, by[i].size(),
                                      percentile(by[i], 0.5), percentile(by[i], 0.95),
                                      percentile(by[i], 0.99)});
      }
    }
    sum.phases.push_back(std::move(res));
  };

  // 1. No cache: every author page computes top_book_ids.
  run_phase(1, "no_cache", "no cache", Mode::mix, cfg.seconds);

  // 2. larder: the same traffic through Rehydrated (cached ids, fresh rows).
  shop.use_cache(&top_books);
  run_phase(2, "larder", "larder", Mode::mix, cfg.seconds);

  // 3. Stampede: every worker asks for one cold key at the same moment.
  stampede_author = authors[1];  // the second most popular author: surely cached by now
  top_books.invalidate(stampede_author, kLimit);
  const auto stampede0 = counter.of(stampede_author);
  run_phase(3, "stampede", "stampede", Mode::stampede, 0);
  sum.stampede_workers = static_cast<std::uint64_t>(cfg.workers);
  sum.stampede_computations = counter.of(stampede_author) - stampede0;

  // 4. Freshness: delete one of the most popular author's books and reprice another, in the
  // database only. The cached ID list stays; the rows served must be the new ones.
  std::int64_t victim = 0;
  std::vector<std::int64_t> list;
  for (auto a : authors) {  // by popularity: the first with two books or more
    list = *top_books.ids()(a, kLimit);
    if (list.size() >= 2) {
      victim = a;
      break;
    }
  }
  if (victim == 0) throw std::runtime_error("no author with two books to test freshness on");
  const auto before = db.book(list[1]);
  fresh.deleted = list[0];
  fresh.repriced = list[1];
  fresh.new_price = (before ? before->price_cents : 0) + 1000;
  db.delete_book(fresh.deleted);
  db.set_price(fresh.repriced, fresh.new_price);
  fresh.active = true;
  const auto victim0 = counter.of(victim);
  const auto missing0 = top_books.stats().missing;
  run_phase(4, "freshness", "freshness", Mode::mix, std::max(1.0, cfg.seconds / 4));
  fresh.active = false;
  sum.freshness_author = victim;
  sum.deleted_book = fresh.deleted;
  sum.repriced_book = fresh.repriced;
  sum.stale_rows_served = fresh.stale.load();
  sum.fresh_price_seen = fresh.fresh_seen.load();
  sum.deleted_dropped = top_books.stats().missing - missing0;
  sum.freshness_id_list_computations = counter.of(victim) - victim0;

  release.reset();
  threads.clear();
  sum.first_error = first_error;
  sum.total_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  return sum;
}

}  // namespace bookshop
