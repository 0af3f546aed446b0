// telemetry.hpp: is this cache helping? A verdict per cached function, a readable report, and the
// same counters as Prometheus text (no dependency: a string in the exposition format 0.0.4).
// Pure functions of Stats snapshots: thread-safe, cheap, never touch a hot path.
//
// Example:
//   std::vector<larder::NamedStats> all{larder::named_stats(top_book_ids),
//                                       larder::named_stats(order_json)};
//   res.set_content(larder::prometheus_text(all), "text/plain; version=0.0.4");
//   std::puts(larder::effectiveness_report(all).c_str());
//   // larder:v1:Author:top_book_ids  helping      hit ratio 97.2% (9,720 of 10,000 calls); ...
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "larder/stats.hpp"

namespace larder {

/// One cached function's name (its key head without the final ':', e.g.
/// "larder:v1:Author:top_book_ids") and a snapshot of its counters.
struct NamedStats {
  std::string function;
  Stats stats;
};

/// The snapshot of anything with stats() and key_prefix() (Cached, Rehydrated's inner Cached, ...).
template <class C>
requires requires(const C& c) {
  { c.stats() } -> std::convertible_to<Stats>;
  { c.key_prefix() } -> std::convertible_to<std::string_view>;
}
NamedStats named_stats(const C& cached) {
  std::string name{std::string_view{cached.key_prefix()}};
  if (!name.empty() && name.back() == ':') name.pop_back();
  return NamedStats{std::move(name), cached.stats()};
}

/// The thresholds of assess(). Defaults are conservative; each is documented with its unit.
struct AssessOptions {
  std::uint64_t min_requests = 100;  // fewer calls than this: too early to judge; >= 1
  double min_hit_ratio = 0.2;        // below it the cache mostly computes anyway; in [0, 1]
  /// What one hit costs the caller (memory store: well under 1 µs; Redis: a round trip, about
  /// 20-200 µs). A function whose mean computation takes no more than this (<=) gains nothing
  /// from a cache; >= 0.
  std::chrono::nanoseconds hit_cost{std::chrono::microseconds{1}};
  /// store errors or failed loads per call or refresh (see assess()) above this: failing
  double max_error_ratio = 0.01;
};

/// Whether a cache helps, and why, in one sentence.
struct Verdict {
  enum class Kind { helping, not_helping, too_early, failing };
  Kind kind = Kind::too_early;
  std::string reason;
};

inline std::string_view to_string(Verdict::Kind k) noexcept {
  switch (k) {
    case Verdict::Kind::helping:
      return "helping";
    case Verdict::Kind::not_helping:
      return "not helping";
    case Verdict::Kind::too_early:
      return "too early";
    case Verdict::Kind::failing:
      return "failing";
  }
  return "?";
}

namespace detail {
/// 1.5 µs, 12.3 ms, 4.2 s, 25 min, 2.1 h, 5556 h: three significant figures at most (whole hours
/// from 1000 h), never in e-notation. A unit is used while its value rounded to three figures stays
/// under the next unit; a value that rounds up to it is one of the next unit, so rounding never
/// carries past a unit's end: 999.97 µs reads "1 ms" (not "1e+03 µs"), 59.97 s "1 min" (not
/// "60 s"), 59.97 min "1 h".
inline std::string human_duration(std::chrono::nanoseconds d) {
  struct Unit {
    std::string_view name;
    double ns;    // nanoseconds in one of it
    double next;  // how many of it make the next unit
  };
  static constexpr Unit kUnits[] = {{"ns", 1, 1000}, {"µs", 1e3, 1000}, {"ms", 1e6, 1000},
                                    {"s", 1e9, 60},  {"min", 60e9, 60}, {"h", 3600e9, 1000}};
  static constexpr std::size_t kHours = std::size(kUnits) - 1;
  const double ns = static_cast<double>(d.count());
  for (std::size_t i = 0; i < kHours; ++i) {
    std::string text = fmt::format("{:.3g}", ns / kUnits[i].ns);
    if (std::strtod(text.c_str(), nullptr) < kUnits[i].next)
      return fmt::format("{} {}", text, kUnits[i].name);
    // Rounded, it is `next` of this unit: one of the next (it may read 0.9995 of that).
    if (ns / kUnits[i + 1].ns < 1) return fmt::format("1 {}", kUnits[i + 1].name);
  }
  const std::string hours = fmt::format("{:.3g}", ns / 3600e9);
  if (std::strtod(hours.c_str(), nullptr) < 1000) return hours + " h";
  return fmt::format("{:.0f} h", ns / 3600e9);
}
inline double share(std::uint64_t part, std::uint64_t whole) noexcept {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}
inline void validate(const AssessOptions& o) {
  if (o.min_requests < 1) throw std::invalid_argument("larder::AssessOptions: min_requests < 1");
  if (!(o.min_hit_ratio >= 0.0 && o.min_hit_ratio <= 1.0))
    throw std::invalid_argument("larder::AssessOptions: min_hit_ratio outside [0, 1]");
  if (o.hit_cost.count() < 0) throw std::invalid_argument("larder::AssessOptions: hit_cost < 0");
  if (!(o.max_error_ratio >= 0.0 && o.max_error_ratio <= 1.0))
    throw std::invalid_argument("larder::AssessOptions: max_error_ratio outside [0, 1]");
}
}  // namespace detail

/// Judges one function's counters, in this order: failing (the store errs, or computations fail,
/// counting the calls that waited for them, on more than max_error_ratio of calls and refreshes),
/// too early (fewer than min_requests calls), not helping (hit ratio under min_hit_ratio, or a mean
/// computation of no more than hit_cost), else helping. A refresh is a computation no call counted:
/// refresh() (a Warmer's, Rehydrated's) or the background recompute of a stale entry; each miss
/// computes once, so refreshes are loads + load_failures - misses. A function whose only
/// computations are refreshes that all throw is failing, not too early. Throws
/// std::invalid_argument for out-of-range options.
inline Verdict assess(const Stats& s, const AssessOptions& o = {}) {
  detail::validate(o);
  using K = Verdict::Kind;
  const std::uint64_t calls = s.requests();
  const std::uint64_t answered = s.answered();
  const std::uint64_t computations = s.loads + s.load_failures;
  const std::uint64_t refreshes = computations > s.misses ? computations - s.misses : 0;
  const std::uint64_t attempts = calls + refreshes;
  const std::string in_attempts = refreshes == 0
                                      ? fmt::format("{} calls", calls)
                                      : fmt::format("{} calls and {} refreshes", calls, refreshes);
  if (attempts > 0 && detail::share(s.store_errors, attempts) > o.max_error_ratio)
    return {K::failing, fmt::format("the store failed {} times in {}: values were computed "
                                    "instead (is the shared store down? see its own stats)",
                                    s.store_errors, in_attempts)};
  // A caller that waited for a computation which threw failed with it.
  const std::uint64_t failed = s.load_failures + s.coalesced_failures;
  if (attempts > 0 && detail::share(failed, attempts) > o.max_error_ratio) {
    std::string why = fmt::format("{} of {} computations threw", s.load_failures, computations);
    if (refreshes > 0) why += fmt::format(" ({} were refreshes)", refreshes);
    if (s.coalesced_failures > 0)
      why += fmt::format(" ({} calls waiting for them failed with them)", s.coalesced_failures);
    if (s.stale_on_error > 0)
      why += fmt::format(" ({} calls served stale instead)", s.stale_on_error);
    return {K::failing, std::move(why)};
  }
  if (calls < o.min_requests)
    return {K::too_early, fmt::format("{} calls so far (judged from {})", calls, o.min_requests)};
  const double ratio = s.hit_ratio();
  if (ratio < o.min_hit_ratio)
    return {K::not_helping,
            fmt::format("hit ratio {:.1f}% ({} of {} calls): keys rarely repeat within their "
                        "ttl; a longer ttl, a coarser key, or no cache",
                        ratio * 100, answered, calls)};
  if (s.loads > 0 && s.mean_load_time() <= o.hit_cost)
    return {K::not_helping,
            fmt::format("a computation takes {}, no more than a hit ({}): the cache saves nothing",
                        detail::human_duration(s.mean_load_time()),
                        detail::human_duration(o.hit_cost))};
  return {K::helping,
          fmt::format("hit ratio {:.1f}% ({} of {} calls); saved about {} of "
                      "computation (mean {} each)",
                      ratio * 100, answered, calls, detail::human_duration(s.time_saved()),
                      detail::human_duration(s.mean_load_time()))};
}

/// One line per function: name, verdict, reason. For logs and admin pages.
inline std::string effectiveness_report(std::span<const NamedStats> all,
                                        const AssessOptions& o = {}) {
  std::size_t width = 0;
  for (const auto& n : all) width = std::max(width, n.function.size());
  std::string out;
  for (const auto& n : all) {
    const Verdict v = assess(n.stats, o);
    out += fmt::format("{:<{}}  {:<11}  {}\n", n.function, width, to_string(v.kind), v.reason);
  }
  return out;
}

namespace detail {
/// A label value in the exposition format: backslash, double quote and newline escaped.
inline std::string prometheus_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}
}  // namespace detail

/// Every counter of every function in the Prometheus text exposition format (version 0.0.4), one
/// family per counter, labelled function="...". `metric_prefix` starts each metric name and must
/// match [a-zA-Z_:][a-zA-Z0-9_:]* (std::invalid_argument otherwise). Each entry's `function` must
/// be unique: two entries with the same name would be duplicate series, for which Prometheus
/// rejects the whole scrape, so std::invalid_argument naming the duplicate is thrown instead (as a
/// Prometheus client refuses a second registration). Summing them is not done: the same Cached
/// listed twice would silently count double. Two distinct Cached sharing a name (the same class
/// and function over two stores, say) need distinct `function` strings, or one merged Stats.
inline std::string prometheus_text(std::span<const NamedStats> all,
                                   std::string_view metric_prefix = "larder") {
  auto name_char = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
  };
  if (metric_prefix.empty()) throw std::invalid_argument("larder::prometheus_text: empty prefix");
  for (std::size_t i = 0; i < metric_prefix.size(); ++i)
    if (!name_char(metric_prefix[i], i == 0))
      throw std::invalid_argument("larder::prometheus_text: metric prefix '" +
                                  std::string(metric_prefix) + "' is not a metric name");
  std::vector<std::string_view> names;
  names.reserve(all.size());
  for (const auto& n : all) names.emplace_back(n.function);
  std::sort(names.begin(), names.end());
  if (auto dup = std::adjacent_find(names.begin(), names.end()); dup != names.end())
    throw std::invalid_argument(
        "larder::prometheus_text: function \"" + std::string(*dup) +
        "\" is listed twice (Prometheus rejects duplicate series); give each entry its own name");
  std::string out;
  auto family = [&](std::string_view name, std::string_view type, std::string_view help,
                    auto value_of) {
    out += fmt::format("# HELP {}_{} {}\n# TYPE {}_{} {}\n", metric_prefix, name, help,
                       metric_prefix, name, type);
    for (const auto& n : all)
      out += fmt::format("{}_{}{{function=\"{}\"}} {}\n", metric_prefix, name,
                         detail::prometheus_label(n.function), value_of(n.stats));
  };
  family("hits_total", "counter", "Calls served fresh from a store.",
         [](const Stats& s) { return s.hits; });
  family("misses_total", "counter", "Calls that found nothing usable and computed (or tried to).",
         [](const Stats& s) { return s.misses; });
  family("stale_serves_total", "counter", "Calls served a stale value while it was recomputed.",
         [](const Stats& s) { return s.stale_serves; });
  family("stale_on_error_total", "counter", "Stale values served because a recompute failed.",
         [](const Stats& s) { return s.stale_on_error; });
  family("loads_total", "counter", "Computations that succeeded.",
         [](const Stats& s) { return s.loads; });
  family("load_failures_total", "counter", "Computations that threw.",
         [](const Stats& s) { return s.load_failures; });
  family("load_seconds_total", "counter", "Time spent computing.",
         [](const Stats& s) { return std::chrono::duration<double>(s.load_time).count(); });
  family("coalesced_total", "counter", "Calls that received another caller's computation.",
         [](const Stats& s) { return s.coalesced; });
  family("coalesced_failures_total", "counter",
         "Calls that waited for another caller's computation and got its exception.",
         [](const Stats& s) { return s.coalesced_failures; });
  family("cold_rejections_total", "counter", "ColdCacheErrors thrown.",
         [](const Stats& s) { return s.cold_rejections; });
  family("store_errors_total", "counter", "Store failures survived by computing.",
         [](const Stats& s) { return s.store_errors; });
  family("decode_errors_total", "counter", "Stored bytes that did not decode.",
         [](const Stats& s) { return s.decode_errors; });
  family("waiting", "gauge", "Callers waiting for another's computation now.",
         [](const Stats& s) { return s.waiting; });
  family("store_available", "gauge", "1 unless the shared store is being skipped.",
         [](const Stats& s) { return s.store_available ? 1 : 0; });
  family("hit_ratio", "gauge", "(hits + stale serves + coalesced) / calls since start.",
         [](const Stats& s) { return s.hit_ratio(); });
  family("helping", "gauge", "1 if assess() says the cache helps, else 0.",
         [](const Stats& s) { return assess(s).kind == Verdict::Kind::helping ? 1 : 0; });
  return out;
}

}  // namespace larder
