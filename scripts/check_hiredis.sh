#!/usr/bin/env bash
# Compiles (syntax only, warnings as errors) every larder file that uses hiredis against a set of
# hiredis 1.x headers, since CI has only Debian 12's hiredis 0.14:
#
#   scripts/check_hiredis.sh DIR     # DIR/hiredis/hiredis.h, read.h, sds.h, alloc.h of 1.x
#
# It configures build/check-hiredis with a pkg-config file that points hiredis at DIR (so the
# compile flags are CMake's own, with -DLARDER_WERROR=ON), then runs each compile command that
# uses those headers with -fsyntax-only and a forced include that fails unless HIREDIS_MAJOR >= 1.
# Nothing is linked or run: that needs a hiredis 1.x library. Not part of scripts/test.sh (CI
# cannot fetch the headers). Prints one line; exits 0 only if every file compiled.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "check_hiredis: FAILED: $*"
  exit 1
}

[[ $# -eq 1 ]] || fail "usage: scripts/check_hiredis.sh DIR (DIR/hiredis/hiredis.h of hiredis 1.x)"
dir=$(cd "$1" 2>/dev/null && pwd) || fail "no directory $1"
[[ -f $dir/hiredis/hiredis.h ]] || fail "no $dir/hiredis/hiredis.h"
build=build/check-hiredis
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The version of the headers, and a forced include that makes any compile fail which resolves
# <hiredis/hiredis.h> to another copy (the system's 0.14).
version=$(printf '#include <hiredis/hiredis.h>\nHIREDIS_MAJOR.HIREDIS_MINOR.HIREDIS_PATCH\n' |
  c++ -E -P -isystem "$dir" -x c++ - 2>/dev/null | tail -n 1 | tr -d ' ') ||
  fail "$dir/hiredis/hiredis.h does not preprocess"
[[ $version =~ ^[1-9][0-9]*\.[0-9]+\.[0-9]+$ ]] || fail "$dir holds hiredis '$version', not 1.x"
cat >"$work/probe.hpp" <<'EOF'
#include <hiredis/hiredis.h>
static_assert(HIREDIS_MAJOR >= 1, "check_hiredis: compiled against hiredis 0.x, not the 1.x headers");
EOF

# hiredis as CMake finds it, but from DIR (Libs are never used: nothing is linked).
mkdir -p "$work/pc"
cat >"$work/pc/hiredis.pc" <<EOF
Name: hiredis
Description: hiredis $version headers for scripts/check_hiredis.sh
Version: $version
Libs: -lhiredis
Cflags: -I$dir/hiredis -I$dir -D_FILE_OFFSET_BITS=64
EOF
rm -rf "$build"
PKG_CONFIG_PATH="$work/pc" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DLARDER_WERROR=ON \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >"$work/cmake.log" 2>&1 ||
  fail "cmake configure failed (see: PKG_CONFIG_PATH=... cmake -S . -B $build)"

# Each compile command that names DIR, run with -fsyntax-only (CMake parses the JSON: no jq or
# python needed). Output of failing files goes to $build/check-hiredis.log.
cat >"$work/run.cmake" <<'EOF'
file(READ "${BUILD}/compile_commands.json" json)
string(JSON n LENGTH "${json}")
math(EXPR last "${n} - 1")
set(checked 0)
set(failed "")
file(WRITE "${BUILD}/check-hiredis.log" "")
foreach(i RANGE ${last})
  string(JSON cmd GET "${json}" ${i} command)
  string(JSON wd GET "${json}" ${i} directory)
  string(JSON src GET "${json}" ${i} file)
  string(FIND "${cmd}" "${DIR}" at)
  if(at EQUAL -1)
    continue()
  endif()
  separate_arguments(args UNIX_COMMAND "${cmd}")
  execute_process(COMMAND ${args} -fsyntax-only -include "${PROBE}" WORKING_DIRECTORY "${wd}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  math(EXPR checked "${checked} + 1")
  file(RELATIVE_PATH rel "${SOURCE}" "${src}")
  if(NOT rc EQUAL 0 OR NOT out STREQUAL "")
    list(APPEND failed "${rel}")
    file(APPEND "${BUILD}/check-hiredis.log" "== ${rel}\n${out}\n")
  endif()
endforeach()
list(LENGTH failed nfailed)
string(REPLACE ";" " " failed "${failed}")
file(WRITE "${BUILD}/check-hiredis.result" "${checked} ${nfailed} ${failed}")
EOF
cmake -DBUILD="$PWD/$build" -DDIR="$dir" -DPROBE="$work/probe.hpp" -DSOURCE="$PWD" \
  -P "$work/run.cmake" || fail "could not run the compile commands"
read -r checked nfailed failed <"$build/check-hiredis.result" || true  # no newline at its end
((checked > 0)) || fail "no compile command uses $dir (is LARDER_REDIS on?)"
if ((nfailed > 0)); then
  fail "$nfailed of $checked files do not compile against hiredis $version: $failed" \
    "(see $build/check-hiredis.log)"
fi
echo "check_hiredis: OK: $checked files compile (-fsyntax-only, warnings as errors) against" \
  "hiredis $version headers in $dir"
