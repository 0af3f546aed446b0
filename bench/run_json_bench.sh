#!/usr/bin/env bash
# Builds and runs json_bench (Release) pinned to one CPU, with repetitions interleaved at random so
# that drifting load on a shared machine hits both sides alike; the ratios use the medians.
#   bench/run_json_bench.sh [build-dir] [extra flags: benchmark flags, --foos N --big-foos N --big-kb N]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-json}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLARDER_BUILD_TESTS=OFF -DLARDER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target json_bench >/dev/null
exec taskset -c 0 "$dir/bench/json_bench" --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true "$@"
