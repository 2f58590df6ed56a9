#!/usr/bin/env bash
# Set-up, then the whole test suite through ctest.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/launch/setup.sh"
cd "$root/build"
ctest --output-on-failure -j"${DP_TEST_JOBS:-1}"
