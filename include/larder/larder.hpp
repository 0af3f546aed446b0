// larder.hpp: everything a user of larder needs, in one include.
#pragma once

#include "larder/cached.hpp"
#include "larder/clock.hpp"
#include "larder/codec.hpp"
#include "larder/error.hpp"
#include "larder/executor.hpp"
#include "larder/key.hpp"
#include "larder/memory_store.hpp"
#include "larder/options.hpp"
#include "larder/result.hpp"
#include "larder/stats.hpp"
#include "larder/store.hpp"
#include "larder/version.hpp"
