#!/usr/bin/env bash
# Builds and runs the memory store's benchmarks, then prints the figures issue 6 sets targets for:
#   - Cached hit / floor (absl::flat_hash_map find, no lock) on one thread      target <= 1.5
#   - 2-thread / 1-thread rate of Cached and MemoryStore hits                    target >= 1.7
#   - Cached and MemoryStore vs tbb::concurrent_lru_cache                          target >= 3
#   - hit ratio on the Zipf(0.99) stream, 10,000 entries over 100,000 keys        target >= 0.79
#   - bytes per entry beyond an int64 key and an int64 value                      target <= 64
# and, if the trace replayer is built (bench/trace_replay.cpp), its hit-ratio table.
# Medians of 5 repetitions. Run it on a quiet machine (check `uptime`): two cores shared with a
# compiler give no honest 2-thread figure.
#   bench/run_memory_bench.sh [build-dir] [extra benchmark flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-memory}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLARDER_BUILD_TESTS=OFF -DLARDER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target memory_bench >/dev/null
json=$(mktemp)
trap 'rm -f "$json"' EXIT
echo "# uptime: $(uptime)"
"$dir/bench/memory_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_out="$json" --benchmark_out_format=json "$@"

python3 - "$json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["benchmarks"]
med = {r["run_name"]: r for r in rows if r.get("aggregate_name") == "median"}
def rate(name, threads):
    r = med.get(f"{name}/real_time/threads:{threads}")
    return r and r["items_per_second"]
def ns(name, threads=1):
    r = med.get(f"{name}/real_time/threads:{threads}")
    return r and r["real_time"]
def counter(name, key, threads=1):
    r = med.get(f"{name}/real_time/threads:{threads}") or med.get(f"{name}/iterations:1")
    return r and r.get(key)
def line(label, value, target, ok):
    print(f"  {label:<58} {value:>8}   target {target:<8} {'met' if ok else 'NOT met'}")

print("\n== issue 6 targets (medians) ==")
floor = ns("BM_Baseline_FlatHashMap_Hit")
floor_zipf = ns("BM_Baseline_FlatHashMap_Zipf")
cached = ns("BM_Cached_Hit")
store = ns("BM_MemoryStore_Hit")
print(f"  floor: flat_hash_map hit {floor:.1f} ns; on the whole Zipf stream {floor_zipf:.1f} ns")
print(f"  MemoryStore hit {store:.1f} ns, Cached hit {cached:.1f} ns (1 thread)")
r = cached / floor
line("Cached hit / floor (all-hit stream)", f"{r:.2f}", "<= 1.5", r <= 1.5)
r = cached / floor_zipf
line("Cached hit / floor on the whole Zipf stream", f"{r:.2f}", "<= 1.5", r <= 1.5)
for name in ("BM_Cached_Hit", "BM_MemoryStore_Hit", "BM_Baseline_FlatHashMap_Hit"):
    r = rate(name, 2) / rate(name, 1)
    line(f"{name} 2-thread / 1-thread rate", f"{r:.2f}", ">= 1.7", r >= 1.7)
for threads in (1, 2):
    tbb_hit = rate("BM_Peer_TbbConcurrentLru_Hit", threads)
    tbb_zipf = rate("BM_Peer_TbbConcurrentLru_Zipf", threads)
    r = rate("BM_Cached_Hit", threads) / tbb_hit
    line(f"Cached hit / tbb hit rate, {threads} thread(s)", f"{r:.2f}", ">= 3", r >= 3)
    r = rate("BM_MemoryStore_Zipf", threads) / tbb_zipf
    line(f"MemoryStore / tbb get-or-insert rate (Zipf), {threads} thread(s)", f"{r:.2f}", ">= 3", r >= 3)
    r = rate("BM_Cached_Zipf", threads) / tbb_zipf
    line(f"Cached / tbb get-or-compute rate (Zipf), {threads} thread(s)", f"{r:.2f}", ">= 3", r >= 3)
for name in ("BM_MemoryStore_Zipf", "BM_Cached_Zipf", "BM_Peer_LruListMutex_Zipf",
             "BM_Peer_TbbConcurrentLru_Zipf"):
    h = counter(name, "hit_ratio")
    line(f"{name} hit ratio", f"{h:.4f}", ">= 0.79", h >= 0.79)
for name in ("BM_MemoryStore_BytesPerEntry", "BM_Peer_LruListMutex_BytesPerEntry",
             "BM_Peer_TbbConcurrentLru_BytesPerEntry", "BM_Baseline_FlatHashMap_BytesPerEntry"):
    o = counter(name, "overhead")
    line(f"{name} overhead (bytes)", f"{o:.1f}", "<= 64", o <= 64)
EOF

if cmake --build "$dir" -j"$(nproc)" --target trace_replay >/dev/null 2>&1; then
  echo
  echo "== trace replay (bench/trace_replay) =="
  "$dir/bench/trace_replay"
else
  echo
  echo "(trace_replay not built: bench/trace_replay.cpp is not in this tree yet)"
fi
