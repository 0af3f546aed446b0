#!/usr/bin/env bash
# Builds and runs redis_bench with the client and its redis-server pinned to one CPU (the server
# inherits the affinity), so that the ratio compares work, not scheduling across cores. Repetitions
# of the benchmarks are interleaved at random, so that drifting load on a shared machine hits the
# baseline and the Cached hit alike; the ratios use the medians.
#   bench/run_redis_bench.sh [build-dir] [extra benchmark flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-redis}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLARDER_BUILD_TESTS=OFF -DLARDER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target redis_bench >/dev/null
exec taskset -c 0 "$dir/bench/redis_bench" --benchmark_repetitions=5 --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true "$@"
