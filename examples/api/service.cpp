// service.cpp: the API's routes. Cached JSON is written to the socket as it is: the detail route
// hands httplib the shared text (no copy); the list route joins cached texts into one array.
#include "service.hpp"

#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

namespace api {

namespace {

void json_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  res.set_content(nlohmann::json{{"error", message}, {"status", status}}.dump(),
                  "application/json");
}

/// Sends a shared text without copying it into the response.
void send_text(httplib::Response& res, const larder::JsonText& text) {
  auto owner = text.shared();
  res.set_content_provider(
      text.size(), "application/json",
      [owner](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
        return sink.write(owner->data() + offset, length);
      });
}

}  // namespace

std::optional<std::int64_t> parse_id(std::string_view text) {
  if (text.empty() || text.size() > 18) return std::nullopt;
  std::int64_t v = 0;
  for (char ch : text) {
    if (ch < '0' || ch > '9') return std::nullopt;
    v = v * 10 + (ch - '0');
  }
  return v;
}

Service::Service(Database& db, larder::Store& store, ServiceOptions options)
    : db_{&db},
      repo_{db},
      foos_{store, "Foo", repo_, {.ttl = std::chrono::hours{24}}, {.on_write = options.on_write}},
      warmer_{foos_, {.capacity = options.warm_capacity, .workers = options.warm_workers}} {}

Service::~Service() = default;

void Service::install(httplib::Server& server) {
  server.Get("/foos", [this](const httplib::Request&, httplib::Response& res) {
    const auto ids = db_->foo_ids();  // the cheap part (one indexed query); the JSON is cached
    auto list = foos_.get_many(ids);
    res.set_header("X-Items", std::to_string(list.items));
    res.set_content(std::move(list.text), "application/json");
  });
  server.Get(R"(/foos/([^/]*))", [this](const httplib::Request& req, httplib::Response& res) {
    const auto id = parse_id(req.matches[1].str());
    if (!id) return json_error(res, 400, fmt::format("malformed id '{}'", req.matches[1].str()));
    auto text = foos_.get(*id);
    if (!text) return json_error(res, 404, fmt::format("foo {} not found", *id));
    send_text(res, *text);
  });
  server.Post(
      R"(/foos/([^/]*)/touch)", [this](const httplib::Request& req, httplib::Response& res) {
        const auto id = parse_id(req.matches[1].str());
        if (!id)
          return json_error(res, 400, fmt::format("malformed id '{}'", req.matches[1].str()));
        if (!db_->touch(*id)) return json_error(res, 404, fmt::format("foo {} not found", *id));
        foos_.written(*id);  // the write hook: re-warm (or invalidate)
        res.status = 202;
        res.set_content(nlohmann::json{{"id", *id}, {"touched", true}}.dump(), "application/json");
      });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4");
  });
  server.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty() && !res.content_provider_)
      json_error(res, res.status, res.status == 404 ? "no such route" : "error");
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        json_error(res, 500, what);
      });
}

std::string Service::metrics() const {
  const auto s = foos_.stats();
  const auto w = warmer_.progress();
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, auto value) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n{}{{model=\"Foo\"}} {}\n",
                   name, help, name, type, name, value);
  };
  metric("larder_json_hits_total", "counter", "Requests answered from cached JSON.", s.cache.hits);
  metric("larder_json_misses_total", "counter", "Requests that found no cached JSON.",
         s.cache.misses);
  metric("larder_json_stale_serves_total", "counter", "Stale JSON served.", s.cache.stale_serves);
  metric("larder_json_loads_total", "counter", "JSON texts computed (query + serialize).",
         s.cache.loads);
  metric("larder_json_load_failures_total", "counter", "Computations that threw.",
         s.cache.load_failures);
  metric("larder_json_load_seconds_total", "counter", "Time spent computing JSON.",
         std::chrono::duration<double>(s.cache.load_time).count());
  metric("larder_json_store_errors_total", "counter", "Store failures survived.",
         s.cache.store_errors);
  metric("larder_json_not_found_total", "counter", "IDs asked for that do not exist.", s.not_found);
  metric("larder_json_writes_total", "counter", "Writes reported to the cache.", s.writes);
  metric("larder_json_bytes_served_total", "counter", "JSON bytes served.", s.bytes_served);
  metric("larder_json_hit_ratio", "gauge", "Hits / requests since start.", s.cache.hit_ratio());
  metric("larder_warmer_total", "counter", "IDs accepted by the warmer.", w.total);
  metric("larder_warmer_done_total", "counter", "IDs warmed.", w.done);
  metric("larder_warmer_failed_total", "counter", "Warmings that failed.", w.failed);
  metric("larder_warmer_deduplicated_total", "counter", "Enqueues merged into a queued ID.",
         w.deduplicated);
  metric("larder_warmer_rejected_total", "counter", "Enqueues refused.", w.rejected);
  metric("larder_warmer_queued", "gauge", "IDs waiting to be warmed.", w.queued);
  metric("larder_warmer_running", "gauge", "IDs being warmed.", w.running);
  return out;
}

}  // namespace api
