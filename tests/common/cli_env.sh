# Sourced first by the command-line test scripts (SCRIPT path/to/dptrain MPIEXEC): bin and mpiexec from the
# arguments, the environment every run needs (root may run mpirun; one OpenBLAS thread per rank), and a
# private temporary working directory removed on exit.
set -u
bin=$(realpath "$1") mpiexec="${2:-}"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
