// service.hpp: the HTTP API over the database: GET /foos, GET /foos/{id}, POST /foos/{id}/touch,
// GET /metrics, served from a larder::JsonCache<Foo> with a larder::Warmer re-warming after writes.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <larder/json_cache.hpp>
#include <larder/warmer.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "db.hpp"

namespace api {

struct ServiceOptions {
  larder::OnWrite on_write = larder::OnWrite::rewarm;  // what a touch does to the cached text
  std::size_t warm_workers = 2;                        // the warmer's threads
  std::size_t warm_capacity = 4096;                    // the warmer's queue
};

/// Parses a path id: 1-18 decimal digits, nothing else (so no sign, no overflow). nullopt if not.
std::optional<std::int64_t> parse_id(std::string_view text);

/// The routes and what they serve from. Thread-safe: httplib calls handlers from its pool.
class Service {
 public:
  Service(Database& db, larder::Store& store, ServiceOptions options = {});
  ~Service();

  /// Installs the routes on `server`.
  void install(httplib::Server& server);
  /// Queues every Foo for warming (blocks while the warmer's queue is full).
  std::size_t warm_all() { return warmer_.warm_all(); }
  /// Stops the warmer: the queue is dropped, an ID being warmed finishes.
  void stop() { warmer_.stop(larder::StopMode::cancel); }
  /// The Prometheus text of GET /metrics.
  std::string metrics() const;

  larder::JsonCache<Foo>& foos() noexcept { return foos_; }

 private:
  Database* db_;
  FooRepository repo_;
  larder::JsonCache<Foo> foos_;
  larder::Warmer<std::int64_t> warmer_;
};

}  // namespace api
