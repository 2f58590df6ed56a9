#!/usr/bin/env bash
# What the hardening costs per step: the non-finite check after the allreduce,
# the fault seam and the watchdog thread. Side by side in one run, interleaved
# repetitions, medians: this build with --watchdog 0 and with the default
# watchdog, and optionally an older build (--base DIR holding a dptrain built
# before the hardening) for the same flags.
#   benchmarks/bench_hardening.sh [--base DIR] [--ranks 2] [--reps 5] [--model cnn] [--limit 12800] [--plot]
# Writes benchmarks/out/hardening.csv (one row per run) and prints medians and ratios.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
base="" np=2 reps=5 model=cnn limit=12800 plot=0
dp_flags bench_hardening.sh "--base=base --ranks=np --reps=reps --model=model --limit=limit --plot=plot=1" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
csv="$out/hardening.csv" log="$out/hardening.log"
args=(train --data "$shards" --model "$model" --epochs 1 --limit "$limit" --test-limit 500 --quiet)
variants=("new-watchdog300|$build/dptrain|--watchdog 300" "new-watchdog0|$build/dptrain|--watchdog 0")
[ -n "$base" ] && variants+=("before-hardening|$base/dptrain|")
echo "variant,rep,train_samples_per_s,comm_wait_s" > "$csv"
for rep in $(seq 1 "$reps"); do
  for v in "${variants[@]}"; do
    IFS='|' read -r name bin extra <<<"$v"
    # shellcheck disable=SC2086
    dp_mpirun "$np" "$bin" "${args[@]}" $extra > "$log" 2>&1
    echo "$name,$rep,$(field train_samples_per_s "$log"),$(field comm_wait_s "$log")" >> "$csv"
  done
done
printf "%-18s %10s %8s\n" variant "samples/s" ratio
ref=$(awk -F, '$1 == "new-watchdog300" {print $3}' "$csv" | median)
for v in "${variants[@]}"; do
  name=${v%%|*}
  m=$(awk -F, -v n="$name" '$1 == n {print $3}' "$csv" | median)
  printf "%-18s %10.0f %8.3f\n" "$name" "$m" "$(awk -v a="$m" -v b="$ref" 'BEGIN{print a/b}')"
done
echo "csv: $csv ($reps reps each, $np ranks, $model, $limit images; ratio = median / median of new-watchdog300)"
if [ "$plot" = 1 ]; then
  dp_plot "$out/hardening.png" 700,400 <<GP
set datafile separator ","
set ylabel "samples/s"; set xlabel "repetition"; set key bottom right
plot for [v in "new-watchdog300 new-watchdog0 before-hardening"] "$csv" using (strcol(1) eq v ? \$2 : 1/0):3 with linespoints title v
GP
fi
