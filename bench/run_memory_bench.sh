#!/usr/bin/env bash
# Builds and runs the memory store's benchmarks, then prints the figures issue 6 sets targets for:
#   - Cached hit / floor (absl::flat_hash_map find, no lock) on one thread      target <= 1.5
#   - 2-thread / 1-thread rate of Cached and MemoryStore hits                    target >= 1.7
#   - Cached and MemoryStore vs tbb::concurrent_lru_cache                          target >= 3
#   - hit ratio on the Zipf(0.99) stream, 10,000 entries over 100,000 keys        target >= 0.79
#   - bytes per entry beyond an int64 key and an int64 value                      target <= 64
# and, if the trace replayer is built (bench/trace_replay.cpp), its hit-ratio table.
# Medians of 5 repetitions; each *_Hit row in two modes, chain:0 (throughput) and chain:1 (latency:
# each lookup waits for the previous one's value), see bench/memory_bench.cpp. Run it on a quiet machine (check `uptime`): two cores shared with a
# compiler give no honest 2-thread figure.
#   bench/run_memory_bench.sh [build-dir] [extra benchmark flags...]
# (NO_TRACES=1 skips the trace replay; rows a --benchmark_filter left out are not printed.)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-memory}
shift || true
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DLARDER_BUILD_TESTS=OFF -DLARDER_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)" --target memory_bench >/dev/null
json=$(mktemp)
trap 'rm -f "$json"' EXIT
echo "# uptime: $(uptime)"
# Pinned to the first two CPUs (the 2-thread runs need both); set PIN= to run unpinned.
pin=${PIN-"taskset -c 0,1"}
$pin "$dir/bench/memory_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
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
def shown(f):
    """Runs one row's print; a row whose benchmarks a --benchmark_filter left out is skipped."""
    try:
        f()
    except (TypeError, ZeroDivisionError):
        pass

def hit(name, threads=1, chain=0):
    r = med.get(f"{name}/chain:{chain}/real_time/threads:{threads}")
    return r and r["real_time"]
def hit_rate(name, threads, chain=0):
    r = med.get(f"{name}/chain:{chain}/real_time/threads:{threads}")
    return r and r["items_per_second"]

hits = ["BM_Floor_FlatHashMap_Hit", "BM_Floor_FlatHashMapPtr_Hit", "BM_Cached_Hit",
        "BM_Cached_Hit_EntityParam", "BM_MemoryStore_Hit", "BM_Peer_UnorderedMapMutex_Hit",
        "BM_Peer_LruListMutex_Hit", "BM_Peer_TbbConcurrentLru_Hit"]
print("\n== hit cost, ns per hit (medians; 2 threads: wall time per hit of both together) ==")
print(f"  {'benchmark':<32} {'1T':>8} {'2T':>8} {'1T chain':>9} {'2T chain':>9} {'2T/1T rate':>11}")
for n in hits:
    a, b, c, d = hit(n, 1), hit(n, 2), hit(n, 1, 1), hit(n, 2, 1)
    shown(lambda: print(f"  {n[3:]:<32} {a:8.1f} {b:8.1f} {c:9.1f} {d:9.1f}"
                        f" {hit_rate(n, 2) / hit_rate(n, 1):11.2f}"))

print("\n== issue 6 targets (medians) ==")
floor = hit("BM_Floor_FlatHashMap_Hit")
for chain, mode in ((0, "throughput"), (1, "latency (chain)")):
    f, fp = hit("BM_Floor_FlatHashMap_Hit", 1, chain), hit("BM_Floor_FlatHashMapPtr_Hit", 1, chain)
    for name in ("BM_Cached_Hit", "BM_MemoryStore_Hit"):
        def row(name=name, f=f, fp=fp, mode=mode, chain=chain):
            r = hit(name, 1, chain) / f
            line(f"{name[3:]} / floor, 1 thread, {mode}", f"{r:.2f}", "<= 1.5", r <= 1.5)
            r = hit(name, 1, chain) / fp
            line(f"{name[3:]} / floor with heap values, {mode}", f"{r:.2f}", "<= 1.5", r <= 1.5)
        shown(row)
for name in ("BM_Cached_Hit", "BM_MemoryStore_Hit", "BM_Floor_FlatHashMap_Hit"):
    def row(name=name):
        r = hit_rate(name, 2) / hit_rate(name, 1)
        line(f"{name[3:]} 2-thread / 1-thread rate", f"{r:.2f}", ">= 1.7", r >= 1.7)
    shown(row)
for threads in (1, 2):
    def row(threads=threads):
        r = hit_rate("BM_Cached_Hit", threads) / hit_rate("BM_Peer_TbbConcurrentLru_Hit", threads)
        line(f"Cached hit / tbb hit rate, {threads} thread(s)", f"{r:.2f}", ">= 3", r >= 3)
    shown(row)
    def row(threads=threads):
        tbb_zipf = rate("BM_Peer_TbbConcurrentLru_Zipf", threads)
        r = rate("BM_MemoryStore_Zipf", threads) / tbb_zipf
        line(f"MemoryStore / tbb get-or-insert rate (Zipf), {threads} thread(s)", f"{r:.2f}", ">= 3", r >= 3)
        r = rate("BM_Cached_Zipf", threads) / tbb_zipf
        line(f"Cached / tbb get-or-compute rate (Zipf), {threads} thread(s)", f"{r:.2f}", ">= 3", r >= 3)
    shown(row)
shown(lambda: print(
    f"  floor on the whole Zipf stream (lookups, misses included): {ns('BM_Floor_FlatHashMap_Zipf'):.1f} ns;"
    f" Cached get-or-compute {ns('BM_Cached_Zipf'):.1f} ns, MemoryStore get-or-insert"
    f" {ns('BM_MemoryStore_Zipf'):.1f} ns"))
for name in ("BM_MemoryStore_Zipf", "BM_Cached_Zipf", "BM_Peer_LruListMutex_Zipf",
             "BM_Peer_TbbConcurrentLru_Zipf"):
    def row(name=name):
        h = counter(name, "hit_ratio")
        line(f"{name} hit ratio", f"{h:.4f}", ">= 0.79", h >= 0.79)
    shown(row)
for name in ("BM_MemoryStore_BytesPerEntry", "BM_Peer_LruListMutex_BytesPerEntry",
             "BM_Peer_TbbConcurrentLru_BytesPerEntry", "BM_Floor_FlatHashMap_BytesPerEntry"):
    def row(name=name):
        o = counter(name, "overhead")
        b = counter(name, "bytes_per_entry")
        line(f"{name} bytes/entry {b:.1f}, overhead", f"{o:.1f}", "<= 64", o <= 64)
    shown(row)
EOF

if [[ -n ${NO_TRACES:-} ]]; then
  echo
  echo "(trace replay skipped: NO_TRACES is set)"
elif cmake --build "$dir" -j"$(nproc)" --target trace_replay >/dev/null 2>&1; then
  echo
  echo "== trace replay (bench/trace_replay) =="
  "$dir/bench/trace_replay"
else
  echo
  echo "(trace_replay not built: bench/trace_replay.cpp is not in this tree yet)"
fi
