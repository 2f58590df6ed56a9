#!/usr/bin/env bash
# Installs the Debian packages dptrain needs (only those missing), then
# configures and builds into build/. Safe to run again: it only does what is
# left to do. Extra arguments go to cmake's configure step (e.g. -DDP_NATIVE=ON).
# DP_SETUP_PACKAGES_ONLY=1: the packages only.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
packages=(libopenmpi-dev openmpi-bin libopenblas-dev libzstd-dev libcriterion-dev zlib1g-dev
          pkg-config cmake make gcc dataset-fashion-mnist gnuplot-nox iproute2 libcjson-dev graphviz libxxhash-dev
          libpng-dev libjpeg62-turbo-dev)

source "$root/launch/apt.sh"
dp_apt_install "${packages[@]}"
[ "${DP_SETUP_PACKAGES_ONLY:-0}" = 1 ] && exit 0 # launch/check.sh --mpich: it builds its own way

build="${DP_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE="${DP_BUILD_TYPE:-Release}" "$@" >/dev/null
cmake --build "$build" -j"$(nproc)"
echo "setup: built $build/dptrain"
