#!/usr/bin/env bash
# Builds and runs the hit-ratio replayer (bench/trace_replay.cpp): for every trace in
# ../shared/traces and every cache size of sizes.tsv, larder's hit ratio through the real
# MemoryStore beside exact LRU, Belady's OPT with bypass and Caffeine 2.6.2's figures, then the
# synthetic workloads (Zipf at four skews, Zipf + scans, a shifting hot set, a loop, a recency
# stack), and a PASS/FAIL line per issue-6 target. About half a minute on a quiet machine.
#   bench/run_trace_replay.sh [build-dir] [trace_replay options...]
#   e.g. bench/run_trace_replay.sh build/trace-replay --only loop,multi2 --no-synthetic
# JOBS=N sets the build's parallelism (default: every core).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build/trace-replay
if [[ $# -gt 0 && $1 != --* ]]; then
  dir=$1
  shift
fi
command -v xz >/dev/null || { echo "run_trace_replay: needs xz (xz-utils)" >&2; exit 1; }
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLARDER_BUILD_TESTS=OFF -DLARDER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j"${JOBS:-$(nproc)}" --target trace_replay >/dev/null
exec "$dir/bench/trace_replay" "$@"
