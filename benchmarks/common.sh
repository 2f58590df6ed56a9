# Shared by the benchmark scripts: paths, the shard set, mpirun defaults and
# small helpers. Source it; it defines root, build, out, shards, me (unless set).
# `source common.sh --no-shards`: the paths, the environment and the helpers only, for
# scripts that train nothing (the allreduce and cost-model measurements): dptrain need
# not be built and no Fashion-MNIST shards are made.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${DP_BUILD_DIR:-$root/build}"
out="$root/benchmarks/out"; mkdir -p "$out"
shards="$out/fashion-mnist"
: "${me:=${0##*/}}"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# as root (the virtual cluster needs it) Open MPI refuses to start without these
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
# dp_need_built PROGRAM...: exits with an error naming the first program that is not built
dp_need_built() {
  local x
  for x in "$@"; do [ -x "$x" ] || { echo "$me: $x missing: build first (cmake --build build)" >&2; exit 1; }; done
}
if [ "${1:-}" != --no-shards ]; then
  [ -x "$build/dptrain" ] || { echo "${0##*/}: build first (launch/setup.sh)" >&2; exit 1; }
  # DP_FMNIST_IDX: the .gz IDX files, where the machine has no dataset-fashion-mnist package
  [ -f "$shards/manifest.txt" ] ||
    "$build/dptrain" shard fashion-mnist --idx "${DP_FMNIST_IDX:-/usr/share/datasets/fashion-mnist}" --out "$shards" \
      --shards 16 >/dev/null || { echo "${0##*/}: cannot make the shards in $shards" >&2; exit 1; }
fi

need_torch() {
  /usr/bin/python3 -c 'import torch' 2>/dev/null ||
    { echo "${0##*/}: needs Debian's python3-torch (apt-get install python3-torch)" >&2; exit 1; }
}
# median of the numbers on stdin
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "nan"; else print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2 }'; }
# field KEY FILE: the value of KEY=... on the first "final:" line
field() { sed -n "s/.*final:.* $1=\([0-9.e+-]*\).*/\1/p" "$2" | head -n1; }
# json_field KEY: the value of "KEY": in the one-line JSON object on stdin (a number or a string)
json_field() { sed -n -e "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" -e t -e "s/.*\"$1\":\([^,}]*\).*/\1/p" | head -n1; }
# peak RSS in MB from /usr/bin/time -v output
rss_mb() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1" | awk '{s+=$1} END{printf "%.1f", s/1024}'; }
# mpirun for dptrain, one rank per core, bound (unbound when there are more ranks than cores:
# Open MPI refuses to bind two ranks to one core; and with DP_MPIRUN_UNBOUND set, where several
# mpiruns run at once and would each bind their ranks to the same first cores)
dp_mpirun() {
  local np="$1"; shift
  if [ "$np" -le "$(nproc)" ] && [ -z "${DP_MPIRUN_UNBOUND:-}" ]; then mpirun -np "$np" --oversubscribe --bind-to core --map-by core "$@"
  else mpirun -np "$np" --oversubscribe --bind-to none "$@"; fi
}
# dp_plot PNG WIDTH,HEIGHT: draws the gnuplot commands on stdin into PNG and says where; nothing when gnuplot
# is not installed (the CSVs hold the same numbers)
dp_plot() {
  command -v gnuplot >/dev/null || return 0
  { echo "set terminal pngcairo size $2 noenhanced; set output \"$1\""; cat; } | gnuplot
  echo "plot: $1"
}
# dp_curves SED RUN_DIR...: the points (x y) that the sed -n script SED takes from each run's metrics.jsonl,
# into RUN_DIR/acc.dat; prints the gnuplot plot list, a line per run titled with the run's directory
dp_curves() {
  local sed_xy="$1" d plots=""
  shift
  for d in "$@"; do
    [ -f "$d/metrics.jsonl" ] || continue
    sed -n "$sed_xy" "$d/metrics.jsonl" > "$d/acc.dat"
    plots="$plots${plots:+, }\"$d/acc.dat\" using 1:2 with linespoints title \"$(basename "$d")\""
  done
  echo "$plots"
}
