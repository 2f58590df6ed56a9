# Sourced first by the command-line test scripts (SCRIPT path/to/dptrain MPIEXEC): bin and mpiexec from the
# arguments, the environment every run needs (root may run mpirun; one OpenBLAS thread per rank), and a
# private temporary working directory removed on exit.
set -u
bin=$(realpath "$1") mpiexec="${2:-}"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

# The tally every script keeps: ok/bad count the cases (ok's name is printed when given; ok always returns
# 0 so `cond && ok || bad` cannot count both), tally_done NAME prints the counts and is the exit status.
fails=0 passes=0
ok() { passes=$((passes+1)); if [ $# -gt 0 ]; then echo "ok: $*"; fi; }
bad() { fails=$((fails+1)); echo "FAIL: $*"; }
tally_done() { echo "$1: $passes passed, $fails failed"; [ "$fails" -eq 0 ]; }
# mpi NP ARGS...: under the test's mpiexec; a script sets mpi_timeout=S to turn a hang into exit 124
mpi_timeout=""
mpi() { local np="$1"; shift; ${mpi_timeout:+timeout "$mpi_timeout"} "$mpiexec" -np "$np" "$@"; }
