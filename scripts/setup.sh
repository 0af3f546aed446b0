#!/usr/bin/env bash
# Installs what larder needs to build, test and run its demo on Debian 12 (run as root).
# Installs only what is missing, so a second run costs a second.
set -euo pipefail

packages=(
  g++ cmake make pkg-config xz-utils clang-format
  libfmt-dev nlohmann-json3-dev catch2 libbenchmark-dev
  libhiredis-dev redis-server
  libsqlite3-dev libcpp-httplib-dev
  libabsl-dev libtbb-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "larder setup: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "larder setup: run as root (or install these packages first)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Do not let the redis-server package start a system-wide server: tests start their own.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
