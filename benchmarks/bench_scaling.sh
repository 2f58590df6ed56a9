#!/usr/bin/env bash
# Training throughput against the number of ranks (dptrain only):
#   weak scaling   - fixed per-rank batch (64): global batch grows with P
#   strong scaling - fixed global batch (64): per-rank batch 64/P
# for our ring and MPI_Allreduce, overlap on and off.
# efficiency = throughput(P) / (P x throughput(1)), medians over --reps runs.
#
#   benchmarks/bench_scaling.sh [--models "mlp cnn"] [--ranks "1 2"] [--reps 3] [--plot]
#        [--limit-mlp 30000] [--limit-cnn 7500]
# Writes benchmarks/out/scaling.csv (every run) and scaling_summary.csv.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
models="mlp cnn" ranks="1 2" reps=3 plot=0 lim_mlp=30000 lim_cnn=7500
while [ $# -gt 0 ]; do
  case "$1" in
    --models) models="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --limit-mlp) lim_mlp="$2"; shift 2 ;;
    --limit-cnn) lim_cnn="$2"; shift 2 ;;
    --plot) plot=1; shift ;;
    -h|--help) dp_usage; exit 0 ;;
    *) echo "bench_scaling: unknown flag $1 (--help lists them)" >&2; exit 2 ;;
  esac
done
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
csv="$out/scaling.csv"
echo "model,mode,ranks,allreduce,overlap,rep,batch_per_rank,samples_per_s,comm_wait_s" > "$csv"

one() { # model mode np algo overlap rep
  local m="$1" mode="$2" np="$3" algo="$4" ov="$5" rep="$6" b=64 lim log
  [ "$mode" = strong ] && b=$((64 / np))
  [ "$m" = mlp ] && lim=$lim_mlp || lim=$lim_cnn
  local flags=(--allreduce "$algo"); [ "$ov" = off ] && flags+=(--no-overlap)
  log=$(mktemp)
  dp_mpirun "$np" "$build/dptrain" train --data "$shards" --model "$m" --epochs 1 --batch "$b" \
    --limit "$lim" --test-limit 500 --quiet "${flags[@]}" >"$log" 2>&1 ||
    { echo "bench_scaling: run failed:" >&2; cat "$log" >&2; exit 1; }
  echo "$m,$mode,$np,$algo,$ov,$rep,$b,$(field train_samples_per_s "$log"),$(field comm_wait_s "$log")" >> "$csv"
  rm -f "$log"
}

for rep in $(seq 1 "$reps"); do
  for m in $models; do
    for np in $ranks; do
      for mode in weak strong; do
        if [ "$np" = 1 ]; then one "$m" "$mode" 1 ring on "$rep"; continue; fi
        for algo in ring mpi; do for ov in on off; do one "$m" "$mode" "$np" "$algo" "$ov" "$rep"; done; done
      done
    done
  done
done

summary="$out/scaling_summary.csv"
echo "model,mode,ranks,allreduce,overlap,samples_per_s,efficiency,comm_wait_s" > "$summary"
printf "%-4s %-6s %5s %-5s %-7s %12s %10s %10s\n" model mode ranks algo overlap samples/s efficiency comm_wait
for m in $models; do
  for mode in weak strong; do
    base=$(awk -F, -v m="$m" -v d="$mode" '$1==m && $2==d && $3==1 {print $8}' "$csv" | median)
    for np in $ranks; do
      combos="ring,on"; [ "$np" != 1 ] && combos="ring,on ring,off mpi,on mpi,off"
      for c in $combos; do
        a=${c%,*} o=${c#*,}
        sps=$(awk -F, -v m="$m" -v d="$mode" -v p="$np" -v a="$a" -v o="$o" \
              '$1==m && $2==d && $3==p && $4==a && $5==o {print $8}' "$csv" | median)
        cw=$(awk -F, -v m="$m" -v d="$mode" -v p="$np" -v a="$a" -v o="$o" \
              '$1==m && $2==d && $3==p && $4==a && $5==o {print $9}' "$csv" | median)
        eff=$(awk -v s="$sps" -v b="$base" -v p="$np" 'BEGIN{printf "%.3f", s/(p*b)}')
        echo "$m,$mode,$np,$a,$o,$sps,$eff,$cw" >> "$summary"
        printf "%-4s %-6s %5s %-5s %-7s %12.0f %9.1f%% %10s\n" "$m" "$mode" "$np" "$a" "$o" "$sps" \
          "$(awk -v e="$eff" 'BEGIN{print e*100}')" "$cw"
      done
    done
  done
done
echo; echo "csv: $csv and $summary"
if [ "$plot" = 1 ] && command -v gnuplot >/dev/null; then
  gnuplot <<GP
set terminal pngcairo size 900,450 noenhanced
set output "$out/scaling.png"
set datafile separator ","; set grid; set key bottom left
set xlabel "ranks"; set ylabel "efficiency = thr(P) / (P thr(1))"; set yrange [0:1.1]
set title "dptrain scaling (ring, overlap on)"
plot for [m in "$models"] for [d in "weak strong"] "$summary" using (strcol(1) eq m && strcol(2) eq d && strcol(4) eq "ring" && strcol(5) eq "on" ? \$3 : 1/0):7 with linespoints title m." ".d
GP
  echo "plot: $out/scaling.png"
fi
