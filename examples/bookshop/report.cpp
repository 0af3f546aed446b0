// report.cpp: the bookshop summary as a table, as one JSON object, and as an SVG chart of latency
// over time per phase (as a load-test tool's UI shows it).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "load.hpp"

namespace bookshop {

namespace {

std::string ms_text(double ms) {
  if (ms >= 1000) return fmt::format("{:.2f} s", ms / 1000);
  if (ms >= 10) return fmt::format("{:.0f} ms", ms);
  if (ms >= 1) return fmt::format("{:.1f} ms", ms);
  return fmt::format("{:.3f} ms", ms);
}

/// A power of ten of milliseconds as an axis label: "0.01 ms", "10 ms", "1 s".
std::string axis_text(double ms) {
  if (ms >= 1000) return fmt::format("{:g} s", ms / 1000);
  return fmt::format("{:g} ms", ms);
}

std::string thousands(double v) {
  // Built forwards, not with insert(): GCC 12 warns (-Wrestrict) on string::insert here.
  const std::string digits = std::to_string(static_cast<std::uint64_t>(std::llround(v)));
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string xml_escape(const std::string& in) {
  std::string out;
  for (char c : in) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

void print_table(const Summary& s, std::FILE* out) {
  const auto& c = s.config;
  fmt::print(out,
             "\nbookshop: {} authors, {} books in SQLite; top_book_ids takes {} ms + SQL; {} "
             "workers; store: {}\n\n",
             c.authors, c.books, c.delay.count(), c.workers, s.store);
  fmt::print(out, "| {:<12} | {:>10} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>12} | {:>6} |\n",
             "phase", "requests", "req/s", "p50", "p95", "p99", "hit ratio", "computations",
             "errors");
  fmt::print(out, "|{:-<14}|{:->12}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->14}|{:->8}|\n", "",
             ":", ":", ":", ":", ":", ":", ":", ":");
  int n = 0;
  for (const auto& p : s.phases) {
    fmt::print(out,
               "| {:<12} | {:>10} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8.2f}% | {:>12} | {:>6} |\n",
               fmt::format("{}. {}", ++n, p.title), thousands(static_cast<double>(p.requests)),
               thousands(p.rps), ms_text(p.p50_ms), ms_text(p.p95_ms), ms_text(p.p99_ms),
               100 * p.hit_ratio, p.computations, p.errors);
  }
  fmt::print(out, "\n");
  if (s.phases.size() >= 2 && s.phases[0].rps > 0 && s.phases[1].p50_ms > 0)
    fmt::print(out, "larder vs no cache: {:.0f}x the requests/s; p50 {} -> {}, p99 {} -> {}.\n",
               s.phases[1].rps / s.phases[0].rps, ms_text(s.phases[0].p50_ms),
               ms_text(s.phases[1].p50_ms), ms_text(s.phases[0].p99_ms),
               ms_text(s.phases[1].p99_ms));
  fmt::print(out, "stampede: {} workers asked for one cold key at once: {} computation(s).\n",
             s.stampede_workers, s.stampede_computations);
  fmt::print(
      out,
      "freshness: book {} deleted and book {} repriced in the database; the cached ID list of "
      "author {} was recomputed {} times; {} deleted-row IDs dropped from answers, the new "
      "price shown {} times, stale rows served: {}.\n",
      s.deleted_book, s.repriced_book, s.freshness_author, s.freshness_id_list_computations,
      s.deleted_dropped, s.fresh_price_seen, s.stale_rows_served);
  if (!s.first_error.empty()) fmt::print(out, "first error: {}\n", s.first_error);
}

std::string to_json(const Summary& s) {
  nlohmann::ordered_json j;
  const auto& c = s.config;
  j["config"] = {{"workers", c.workers}, {"seconds", c.seconds}, {"delay_ms", c.delay.count()},
                 {"store", s.store},     {"authors", c.authors}, {"books", c.books}};
  auto& phases = j["phases"] = nlohmann::ordered_json::object();
  for (const auto& p : s.phases) {
    phases[p.key] = {{"seconds", p.seconds},
                     {"requests", p.requests},
                     {"rps", p.rps},
                     {"p50_ms", p.p50_ms},
                     {"p95_ms", p.p95_ms},
                     {"p99_ms", p.p99_ms},
                     {"max_ms", p.max_ms},
                     {"hit_ratio", p.hit_ratio},
                     {"computations", p.computations},
                     {"repository_calls", p.repository_calls},
                     {"errors", p.errors}};
  }
  j["stampede_workers"] = s.stampede_workers;
  j["stampede_computations"] = s.stampede_computations;
  j["stale_rows_served"] = s.stale_rows_served;
  j["fresh_price_seen"] = s.fresh_price_seen;
  j["deleted_rows_dropped"] = s.deleted_dropped;
  j["freshness_id_list_computations"] = s.freshness_id_list_computations;
  j["first_error"] = s.first_error;
  j["total_seconds"] = s.total_seconds;
  j["svg"] = c.svg_path;
  return j.dump(2);
}

void write_svg(const Summary& s, const std::string& path) {
  // Panels side by side, one per phase, sharing a log-scale latency axis.
  constexpr double kW = 1100, kH = 460, kLeft = 70, kRight = 20, kTop = 110, kBottom = 60,
                   kGap = 14;
  constexpr double kMinPanel = 120;
  const double plot_h = kH - kTop - kBottom;
  const std::size_t n = s.phases.size();
  const double avail = kW - kLeft - kRight - kGap * static_cast<double>(n ? n - 1 : 0);
  double total = 0;
  for (const auto& p : s.phases) total += p.seconds;
  std::vector<double> widths;
  double fixed = 0, flexible = 0;
  for (const auto& p : s.phases) {
    const double w = total > 0 ? avail * p.seconds / total : avail / static_cast<double>(n);
    if (w < kMinPanel) {
      fixed += kMinPanel;
    } else {
      flexible += p.seconds;
    }
    widths.push_back(w);
  }
  for (std::size_t i = 0; i < n; ++i)
    widths[i] =
        widths[i] < kMinPanel ? kMinPanel : (avail - fixed) * s.phases[i].seconds / flexible;

  double lo = 1e9, hi = 0;
  for (const auto& p : s.phases) {
    for (const auto& b : p.timeline) {
      lo = std::min(lo, b.p50_ms);
      hi = std::max(hi, b.p99_ms);
    }
    for (const auto& [t, ms] : p.points) {
      lo = std::min(lo, ms);
      hi = std::max(hi, ms);
    }
  }
  if (hi <= 0) hi = 1;
  const double ylo = std::pow(10, std::floor(std::log10(std::max(lo, 1e-3))));
  const double yhi = std::pow(10, std::ceil(std::log10(hi * 1.01)));
  auto y_of = [&](double ms) {
    const double v = std::clamp(ms, ylo, yhi);
    return kTop +
           plot_h * (1 - (std::log10(v) - std::log10(ylo)) / (std::log10(yhi) - std::log10(ylo)));
  };

  std::string svg;
  auto out = std::back_inserter(svg);
  fmt::format_to(out,
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
                 "viewBox=\"0 0 {0} {1}\" font-family=\"Helvetica, Arial, sans-serif\">\n"
                 "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
                 kW, kH);
  const auto& c = s.config;
  fmt::format_to(out,
                 "<text x=\"{}\" y=\"26\" font-size=\"17\" font-weight=\"bold\">bookshop: request "
                 "latency over time, per phase</text>\n",
                 kLeft);
  fmt::format_to(out,
                 "<text x=\"{}\" y=\"48\" font-size=\"12\" fill=\"#555\">{} workers, top_book_ids "
                 "= SQL + {} ms, store: {}; log scale; each point is one time slice "
                 "(stampede: one dot per request)</text>\n",
                 kLeft, c.workers, c.delay.count(), xml_escape(s.store));
  // Y grid (powers of ten) and labels.
  for (double v = ylo; v <= yhi * 1.0001; v *= 10) {
    const double y = y_of(v);
    fmt::format_to(out,
                   "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#ddd\"/>\n"
                   "<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\" "
                   "fill=\"#333\">{}</text>\n",
                   kLeft, y, kW - kRight, y, kLeft - 6, y + 4, axis_text(v));
  }
  fmt::format_to(out,
                 "<text x=\"16\" y=\"{:.1f}\" font-size=\"12\" fill=\"#333\" "
                 "transform=\"rotate(-90 16 {:.1f})\" text-anchor=\"middle\">latency</text>\n",
                 kTop + plot_h / 2, kTop + plot_h / 2);

  const char* colors[] = {"#1f77b4", "#ff7f0e", "#d62728"};
  const char* names[] = {"p50", "p95", "p99"};
  double x0 = kLeft;
  for (std::size_t i = 0; i < n; ++i) {
    const auto& p = s.phases[i];
    const double w = widths[i];
    const double dur = std::max(p.seconds, 1e-3);
    auto x_of = [&](double t) { return x0 + w * std::clamp(t / dur, 0.0, 1.0); };
    fmt::format_to(out,
                   "<rect x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" height=\"{}\" fill=\"{}\" "
                   "stroke=\"#999\"/>\n",
                   x0, kTop, w, plot_h, i % 2 ? "#f7f7f7" : "#fbfbfb");
    fmt::format_to(out,
                   "<text x=\"{:.1f}\" y=\"{}\" font-size=\"12\" font-weight=\"bold\" "
                   "text-anchor=\"middle\">{}. {}</text>\n"
                   "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" fill=\"#555\" "
                   "text-anchor=\"middle\">{} req/s</text>\n"
                   "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" fill=\"#555\" "
                   "text-anchor=\"middle\">hit ratio {:.2f}%</text>\n",
                   x0 + w / 2, kTop - 34, i + 1, xml_escape(p.title), x0 + w / 2, kTop - 20,
                   thousands(p.rps), x0 + w / 2, kTop - 7, 100 * p.hit_ratio);
    if (p.key == "stampede")
      fmt::format_to(out,
                     "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" fill=\"#333\" "
                     "text-anchor=\"middle\">{} at once:</text>\n"
                     "<text x=\"{:.1f}\" y=\"{}\" font-size=\"11\" fill=\"#333\" "
                     "text-anchor=\"middle\">{} computation</text>\n",
                     x0 + w / 2, kTop + plot_h - 34, s.stampede_workers, x0 + w / 2,
                     kTop + plot_h - 20, s.stampede_computations);
    // X ticks: phase start and end, in seconds since the phase began.
    fmt::format_to(out,
                   "<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" fill=\"#555\">0</text>\n"
                   "<text x=\"{:.1f}\" y=\"{}\" font-size=\"10\" fill=\"#555\" "
                   "text-anchor=\"end\">{:.1f} s</text>\n",
                   x0 + 2, kTop + plot_h + 14, x0 + w - 2, kTop + plot_h + 14, p.seconds);
    if (!p.timeline.empty()) {
      for (int k = 2; k >= 0; --k) {
        std::string pts;
        for (const auto& b : p.timeline) {
          const double v = k == 0 ? b.p50_ms : k == 1 ? b.p95_ms : b.p99_ms;
          const double slice = p.timeline.size() > 1 ? p.timeline[1].t - p.timeline[0].t : dur;
          pts += fmt::format("{:.1f},{:.1f} ", x_of(b.t + slice / 2), y_of(v));
        }
        fmt::format_to(out,
                       "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" "
                       "stroke-width=\"{}\"/>\n",
                       pts, colors[k], k == 0 ? 2.2 : 1.4);
      }
    }
    for (const auto& [t, ms] : p.points)
      fmt::format_to(out,
                     "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\" opacity=\"0.6\"/>\n",
                     x0 + w * (0.1 + 0.8 * std::clamp(t / dur, 0.0, 1.0)), y_of(ms), colors[0]);
    x0 += w + kGap;
  }
  // Legend.
  const double ly = kH - 22;
  double lx = kLeft;
  for (int k = 0; k < 3; ++k) {
    fmt::format_to(out,
                   "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" "
                   "stroke-width=\"3\"/><text x=\"{4}\" y=\"{5}\" font-size=\"12\">{6} latency "
                   "per slice</text>\n",
                   lx, ly, lx + 24, colors[k], lx + 30, ly + 4, names[k]);
    lx += 170;
  }
  fmt::format_to(out,
                 "<text x=\"{}\" y=\"{}\" font-size=\"12\" fill=\"#555\">x: seconds since the "
                 "phase began</text>\n",
                 lx + 10, ly + 4);
  svg += "</svg>\n";

  std::ofstream f{path};
  if (!f) throw std::runtime_error("cannot write " + path);
  f << svg;
  if (!f) throw std::runtime_error("cannot write " + path);
}

}  // namespace bookshop
