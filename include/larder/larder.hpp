// larder.hpp: everything a user of the header-only larder::larder needs, in one include.
// The Redis store is compiled (link larder::redis) and has its own header:
// <larder/redis_store.hpp>.
#pragma once

#include "larder/cached.hpp"
#include "larder/clock.hpp"
#include "larder/codec.hpp"
#include "larder/error.hpp"
#include "larder/executor.hpp"
#include "larder/json_cache.hpp"
#include "larder/key.hpp"
#include "larder/memory_store.hpp"
#include "larder/options.hpp"
#include "larder/rehydrated.hpp"
#include "larder/repository.hpp"
#include "larder/result.hpp"
#include "larder/stats.hpp"
#include "larder/store.hpp"
#include "larder/telemetry.hpp"
#include "larder/tiered_store.hpp"
#include "larder/version.hpp"
#include "larder/warmer.hpp"
