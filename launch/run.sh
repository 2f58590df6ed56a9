#!/usr/bin/env bash
# A thin wrapper over mpirun with sane defaults for dptrain:
#   - one rank per core, bound to it (--bind-to core --map-by core), one
#     OpenBLAS/OpenMP thread per rank;
#   - OMPI_ALLOW_RUN_AS_ROOT* only when run as root;
#   - --oversubscribe only when asked (DP_OVERSUBSCRIBE=1 or --oversubscribe).
# Usage: launch/run.sh [-np P] [--hostfile FILE] [--oversubscribe] [mpirun flags...] -- dptrain-args...
#        launch/run.sh -np 4 -- train --data shards/fashion-mnist --model cnn --epochs 5
# Everything before `--` goes to mpirun, everything after to build/dptrain. Without -np, P = number of cores.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="${DP_BIN:-$root/build/dptrain}"
mpi_args=() np="" over="${DP_OVERSUBSCRIBE:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -np|-n) np="$2"; shift 2 ;;
    --oversubscribe) over=1; shift ;;
    *) mpi_args+=("$1"); shift ;;
  esac
done
[ $# -gt 0 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
[ -x "$bin" ] || { echo "run.sh: $bin not built (run launch/setup.sh)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "run.sh: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
[ -n "$np" ] || np=$(nproc)
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
[ "$over" = 1 ] && mpi_args+=(--oversubscribe)
exec mpirun -np "$np" --bind-to core --map-by core \
  -x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1 "${mpi_args[@]}" "$bin" "$@"
