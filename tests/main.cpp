// The test runner's main().
#ifndef LARDER_CATCH_V3
#define CATCH_CONFIG_MAIN
#endif
#include "support/catch.hpp"
