#!/usr/bin/env bash
# Builds and runs larder's whole test suite: format check, a normal build with warnings as errors
# (tests, examples, benchmarks compiled), then the suite again under ASan+UBSan and under TSan, then
# a consumer project built against the installed package. Redis tests start their own redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
jobs=$(nproc)
started=$SECONDS
step() { printf '\n== %s (%ds)\n' "$*" $((SECONDS - started)); }

step "format check"
mapfile -t sources < <(git ls-files '*.hpp' '*.cpp' '*.h' 2>/dev/null || find include src tests examples bench -name '*.[hc]pp')
clang-format --dry-run --Werror "${sources[@]}"

# The -O2 builds keep line tables only (-g1): what sanitizer reports and backtraces need. Full -g's
# variable tracking took a quarter of their compile time (a test file at -O2: 37 s with -g, 27 s
# with -g1, the same as without debug information; the ASan+UBSan build at -O0 gains nothing).
release_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")

build() {  # build DIR extra-cmake-args...
  local dir=$1
  shift
  cmake -S . -B "$dir" -DLARDER_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
}

step "normal build (-O2 -g1, -Werror)"
build build/ci-normal "${release_flags[@]}" -DCMAKE_INSTALL_PREFIX="$PWD/build/ci-install"
step "normal tests"
ctest --test-dir build/ci-normal --output-on-failure -j"$jobs"

step "ASan+UBSan build"
build build/ci-asan -DCMAKE_BUILD_TYPE=Debug -DLARDER_SANITIZE="address;undefined" \
  -DLARDER_BUILD_BENCH=OFF -DLARDER_BUILD_EXAMPLES=OFF -DLARDER_INSTALL=OFF
step "ASan+UBSan tests"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/ci-asan --output-on-failure -j"$jobs"

# TSan at -O1, the level its documentation names as the least for reasonable speed: it compiles in
# two thirds of -O2's time (cached_test.cpp: 66 s against 101 s), and it builds every test and the
# headers under -Werror at a second level (GCC's flow warnings differ per level: at -O1 they caught
# a -Wmaybe-uninitialized in memory_store.hpp that users' -O1 -Werror builds would have hit).
tsan_flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG")

step "TSan build (-O1 -g1, -Werror)"
build build/ci-tsan "${tsan_flags[@]}" -DLARDER_SANITIZE=thread \
  -DLARDER_BUILD_BENCH=OFF -DLARDER_BUILD_EXAMPLES=OFF -DLARDER_INSTALL=OFF
step "TSan tests"
# TSan's shadow memory needs a narrower mmap randomisation than recent kernels default to.
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  setarch "$(uname -m)" -R ctest --test-dir build/ci-tsan --output-on-failure -j"$jobs"

step "consumer builds: installed package, add_subdirectory, FetchContent, pkg-config"
rm -rf build/ci-install
cmake --install build/ci-normal >/dev/null
# The four builds are small and mostly serial (configure, one or a few files): they run side by
# side, each logging to build/ci-consumer-<mode>.log, which is printed if it fails.
consumer() {  # consumer MODE: configure, build and run tests/consumer the MODE way
  local mode=$1 dir="build/ci-consumer-$1"
  rm -rf "$dir"
  if [[ $mode == pkgconfig ]]; then
    # pkg-config users: the header-only part (larder) and the compiled Redis store (larder-redis).
    local lib="$PWD/build/ci-install/lib"
    local pc_path="$lib/pkgconfig:$lib/x86_64-linux-gnu/pkgconfig"
    mkdir -p "$dir"
    PKG_CONFIG_PATH="$pc_path" pkg-config --exists --print-errors larder larder-redis
    # shellcheck disable=SC2046  # the flags are words
    c++ -DCONSUMER_HAS_REDIS tests/consumer/main.cpp -o "$dir/consumer" \
      $(PKG_CONFIG_PATH="$pc_path" pkg-config --cflags --libs larder-redis)
  else
    cmake -S tests/consumer -B "$dir" -DLARDER_CONSUME="$mode" \
      -DCMAKE_PREFIX_PATH="$PWD/build/ci-install"
    cmake --build "$dir"
  fi
  "$dir/consumer"
}
modes=(package subdirectory fetchcontent pkgconfig)
pids=()
for mode in "${modes[@]}"; do
  (set -e; consumer "$mode") >"build/ci-consumer-$mode.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!modes[@]}"; do
  if wait "${pids[$i]}"; then
    tail -n 1 "build/ci-consumer-${modes[$i]}.log"
  else
    printf '\n-- consumer build "%s" failed:\n' "${modes[$i]}"
    cat "build/ci-consumer-${modes[$i]}.log"
    failed=1
  fi
done
((failed == 0))

step "all passed"
