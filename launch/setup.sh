#!/usr/bin/env bash
# Installs the Debian packages dptrain needs (only those missing), then
# configures and builds into build/. Safe to run again: it only does what is
# left to do. Extra arguments go to cmake's configure step (e.g. -DDP_NATIVE=ON).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(libopenmpi-dev openmpi-bin libopenblas-dev libzstd-dev libcriterion-dev zlib1g-dev
          pkg-config cmake make gcc dataset-fashion-mnist gnuplot-nox iproute2 libcjson-dev graphviz libxxhash-dev)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build="${DP_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${DP_BUILD_TYPE:-Release}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "setup: built $build/dptrain"
