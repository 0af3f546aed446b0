// redis/options.hpp (internal): RedisOptions validation and description.
#pragma once

#include <string>

#include "larder/redis_store.hpp"

namespace larder::redis {

/// Throws std::invalid_argument naming the first bad field (never the password).
void validate(const RedisOptions& o);
/// "host:port" or "unix:/path", for messages (no credentials).
std::string endpoint_of(const RedisOptions& o);

}  // namespace larder::redis
