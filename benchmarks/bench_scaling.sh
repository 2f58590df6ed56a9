#!/usr/bin/env bash
# Training throughput against the number of ranks (dptrain only):
#   weak scaling   - fixed per-rank batch (64): global batch grows with P
#   strong scaling - fixed global batch (64): per-rank batch 64/P
#   indep (asked for with --modes) - P single-rank runs at once, one per core, that never
#                    communicate: the machine's own ceiling for weak scaling (shared caches,
#                    memory bandwidth, all-core clocks), so the rest of the loss is ours
# for our ring and MPI_Allreduce, overlap on and off.
# efficiency = throughput(P) / (P x throughput(1)), medians over --reps runs.
#
#   benchmarks/bench_scaling.sh [--models "mlp cnn"] [--ranks "1 2"] [--reps 3] [--plot]
#        [--limit-mlp 30000] [--limit-cnn 7500] [--weak-per-rank] [--modes "weak strong"]
#        [--combos "ring,on ring,off mpi,on mpi,off"] [--deadline SECONDS] [--tag NAME]
#
# --limit-*        training images of each run (a global count: fewer steps per rank as P grows)
# --weak-per-rank  in weak scaling the limits count per rank instead (limit x P, at most the
#                  60,000 training images), so every P runs the same number of steps: for many ranks
# --combos         which allreduce,overlap pairs run at P > 1 (1 rank always runs ring,on)
# --deadline       start no new run after this many seconds; the summary uses what ran (reps are
#                  the outer loop, so a cut run still has every configuration at least once)
# Writes benchmarks/out/scaling<tag>.csv (every run) and scaling<tag>_summary.csv.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
models="mlp cnn" ranks="1 2" reps=3 plot=0 lim_mlp=30000 lim_cnn=7500 per_rank=0 modes="weak strong"
combos_p="ring,on ring,off mpi,on mpi,off" deadline=0 tag=""
dp_flags bench_scaling "--models=models --ranks=ranks --reps=reps --limit-mlp=lim_mlp --limit-cnn=lim_cnn
  --weak-per-rank=per_rank=1 --modes=modes --combos=combos_p --deadline=deadline --tag=tag --plot=plot=1" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
csv="$out/scaling$tag.csv"
t_begin=$SECONDS
echo "model,mode,ranks,allreduce,overlap,rep,batch_per_rank,samples_per_s,comm_wait_s" > "$csv"

one() { # model mode np algo overlap rep
  local m="$1" mode="$2" np="$3" algo="$4" ov="$5" rep="$6" b=64 lim log
  [ "$mode" = strong ] && b=$((64 / np))
  [ "$m" = mlp ] && lim=$lim_mlp || lim=$lim_cnn
  if [ "$per_rank" = 1 ] && [ "$mode" = weak ]; then lim=$((lim * np)); [ "$lim" -gt 60000 ] && lim=60000; fi
  local flags=(--allreduce "$algo"); [ "$ov" = off ] && flags+=(--no-overlap)
  log=$(mktemp)
  dp_mpirun "$np" "$build/dptrain" train --data "$shards" --model "$m" --epochs 1 --batch "$b" \
    --limit "$lim" --test-limit 500 --quiet "${flags[@]}" >"$log" 2>&1 ||
    { echo "bench_scaling: run failed:" >&2; cat "$log" >&2; exit 1; }
  echo "$m,$mode,$np,$algo,$ov,$rep,$b,$(field train_samples_per_s "$log"),$(field comm_wait_s "$log")" >> "$csv"
  rm -f "$log"
}
# P single-rank processes at once, each bound to its own core: their summed samples/s
solo() { # model np rep
  local m="$1" np="$2" rep="$3" lim logs=() pids=() i sum=0 v
  [ "$m" = mlp ] && lim=$lim_mlp || lim=$lim_cnn
  [ "$per_rank" = 1 ] || lim=$((lim / np))
  for ((i = 0; i < np; i++)); do
    logs+=("$(mktemp)")
    local pin=(); command -v taskset >/dev/null && pin=(taskset -c "$i")
    "${pin[@]}" "$build/dptrain" train --data "$shards" --model "$m" --epochs 1 --batch 64 \
      --limit "$lim" --test-limit 500 --quiet --seed $((i + 1)) >"${logs[i]}" 2>&1 &
    pids+=($!)
  done
  for ((i = 0; i < np; i++)); do
    wait "${pids[i]}" || { echo "bench_scaling: solo run $i failed:" >&2; cat "${logs[i]}" >&2; exit 1; }
    v=$(field train_samples_per_s "${logs[i]}"); sum=$(awk -v a="$sum" -v b="$v" 'BEGIN{print a + b}')
  done
  rm -f "${logs[@]}"
  echo "$m,indep,$np,none,-,$rep,64,$sum,0" >> "$csv"
}
late() { [ "$deadline" -gt 0 ] && [ $((SECONDS - t_begin)) -ge "$deadline" ]; }

for rep in $(seq 1 "$reps"); do
  for m in $models; do
    for np in $ranks; do
      for mode in $modes; do
        late && break 4
        if [ "$mode" = indep ]; then solo "$m" "$np" "$rep"; continue; fi
        if [ "$np" = 1 ]; then one "$m" "$mode" 1 ring on "$rep"; continue; fi
        for c in $combos_p; do one "$m" "$mode" "$np" "${c%,*}" "${c#*,}" "$rep"; done
      done
    done
  done
done

[ "$deadline" -gt 0 ] && echo "bench_scaling: $((SECONDS - t_begin)) s, $(($(wc -l < "$csv") - 1)) runs"
summary="$out/scaling${tag}_summary.csv"
# rows MODEL MODE RANKS ALGO OVERLAP COLUMN: that column of every matching run
rows() { awk -F, -v m="$1" -v d="$2" -v p="$3" -v a="$4" -v o="$5" -v k="$6" \
  '$1==m && $2==d && $3==p && $4==a && $5==o {print $k}' "$csv"; }
echo "model,mode,ranks,allreduce,overlap,samples_per_s,efficiency,comm_wait_s,runs" > "$summary"
printf "%-4s %-6s %5s %-5s %-7s %12s %10s %10s %5s\n" model mode ranks algo overlap samples/s efficiency comm_wait runs
for m in $models; do
  for mode in $modes; do
    if [ "$mode" = indep ]; then base=$(rows "$m" indep 1 none - 8 | median)
    else base=$(rows "$m" "$mode" 1 ring on 8 | median); fi
    for np in $ranks; do
      combos="ring,on"; [ "$np" != 1 ] && combos="$combos_p"
      [ "$mode" = indep ] && combos="none,-"
      for c in $combos; do
        a=${c%,*} o=${c#*,}
        n=$(rows "$m" "$mode" "$np" "$a" "$o" 8 | wc -l)
        [ "$n" -gt 0 ] || continue
        sps=$(rows "$m" "$mode" "$np" "$a" "$o" 8 | median)
        cw=$(rows "$m" "$mode" "$np" "$a" "$o" 9 | median)
        eff=$(awk -v s="$sps" -v b="$base" -v p="$np" 'BEGIN{printf "%.3f", s/(p*b)}')
        echo "$m,$mode,$np,$a,$o,$sps,$eff,$cw,$n" >> "$summary"
        printf "%-4s %-6s %5s %-5s %-7s %12.0f %9.1f%% %10s %5s\n" "$m" "$mode" "$np" "$a" "$o" "$sps" \
          "$(awk -v e="$eff" 'BEGIN{print e*100}')" "$cw" "$n"
      done
    done
  done
done
echo; echo "csv: $csv and $summary"
if [ "$plot" = 1 ]; then
  dp_plot "$out/scaling$tag.png" 900,450 <<GP
set datafile separator ","; set grid; set key bottom left
set xlabel "ranks"; set ylabel "efficiency = thr(P) / (P thr(1))"; set yrange [0:1.1]
set title "dptrain scaling (ring, overlap on)"
plot for [m in "$models"] for [d in "$modes"] "$summary" using (strcol(1) eq m && strcol(2) eq d && strcol(4) eq "ring" && strcol(5) eq "on" ? \$3 : 1/0):7 with linespoints title m." ".d
GP
fi
