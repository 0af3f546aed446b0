#!/usr/bin/env bash
# Builds and runs the demo on the embedded in-memory store. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DLARDER_BUILD_TESTS=OFF \
  -DLARDER_BUILD_BENCH=OFF -DLARDER_BUILD_EXAMPLES=ON >/dev/null
cmake --build build/demo --target bookshop -j"$(nproc)"
exec build/demo/examples/bookshop/bookshop "$@"
