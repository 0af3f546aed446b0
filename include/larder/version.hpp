// version.hpp: larder's version.
#pragma once

#define LARDER_VERSION_MAJOR 0
#define LARDER_VERSION_MINOR 1
#define LARDER_VERSION_PATCH 0

namespace larder {
inline constexpr int kVersionMajor = LARDER_VERSION_MAJOR;
inline constexpr int kVersionMinor = LARDER_VERSION_MINOR;
inline constexpr int kVersionPatch = LARDER_VERSION_PATCH;
}  // namespace larder
