// support/catch.hpp: Catch2 v2 (Debian 12) or v3, one spelling for the tests.
#pragma once

#ifdef LARDER_CATCH_V3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
