#!/usr/bin/env bash
# One run of the rank-count benchmarks on a machine with many cores (made for the 16-core
# device machine, whose time is lent in minutes: everything in one go, under a time budget):
#   1. bench_scaling: mlp and cnn, weak (per-rank limits: every P runs the same steps) and
#      strong, at each of --ranks, ring and MPI_Allreduce, overlap on and off (ring)
#   2. bench_allreduce: our ring against MPI_Allreduce at each rank count above 1
#   3. bench_search: DARTS (darts and gumbel) seconds per step and peak memory per rank
# plus what the machine is (lscpu). Copies every table, CSV and log into --results.
#
#   benchmarks/bench_manycore.sh [--ranks "1 2 4 8 16"] [--scaling-s 210] [--reps 3]
#       [--idx DIR] [--results DIR] [--skip "allreduce search"]
#
# --scaling-s  bench_scaling's --deadline (the other two parts take about 2 minutes at 16 cores)
# --idx        the Fashion-MNIST .gz IDX files when the machine has no dataset-fashion-mnist
# --results    where the outputs go (default benchmarks/out/manycore)
# DP_BUILD_DIR selects the binaries, as for every benchmark (default build/).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
ranks="1 2 4 8 16" scaling_s=210 reps=3 idx=/usr/share/datasets/fashion-mnist results="" skip=""
dp_flags bench_manycore "--ranks=ranks --scaling-s=scaling_s --reps=reps --idx=idx --results=results
  --skip=skip" "$@"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export DP_FMNIST_IDX="$idx"
source "$here/common.sh"
results="${results:-$out/manycore}"
mkdir -p "$results"
skipped() { case " $skip " in *" $1 "*) return 0 ;; esac; return 1; }
t0=$SECONDS
{ date -u; nproc; lscpu; mpirun --version | head -n1; } > "$results/machine.txt" 2>&1

# 58 steps of 64 per rank at every P (16 x 3,750 = the 60,000 training images)
echo "== scaling ($scaling_s s)"
"$here/bench_scaling.sh" --models "cnn mlp" --ranks "$ranks" --reps "$reps" --weak-per-rank \
  --limit-cnn 3750 --limit-mlp 3750 --combos "ring,on ring,off mpi,on" --deadline "$scaling_s" \
  --tag _manycore > "$results/scaling.txt" 2>&1
tail -n +1 "$results/scaling.txt"
cp "$out"/scaling_manycore*.csv "$results/" 2>/dev/null

if ! skipped allreduce; then
  echo "== allreduce ($((SECONDS - t0)) s)"
  for np in $ranks; do
    [ "$np" -gt 1 ] || continue
    dp_mpirun "$np" --timeout 60 "$build/benchmarks/bench_allreduce" --min 4K --max 64M --factor 4 \
      --iters 10 --cap 1 --csv "$results/allreduce_np$np.csv" > "$results/allreduce_np$np.txt" 2>&1
    echo "np=$np rc=$?"; cat "$results/allreduce_np$np.txt"
  done
fi

if ! skipped search; then
  for strat in darts gumbel; do
    echo "== search $strat ($((SECONDS - t0)) s)"
    timeout 150 "$here/bench_search.sh" --impls dptrain --ranks "$ranks" --steps 3 --warmup 1 --reps 1 \
      --dp-args "--strategy $strat" --tag "manycore_$strat" > "$results/search_$strat.txt" 2>&1
    echo "rc=$?"; tail -n 12 "$results/search_$strat.txt"
    cp "$out"/search_manycore_"$strat"*.csv "$results/" 2>/dev/null
  done
fi
echo "== done in $((SECONDS - t0)) s"
