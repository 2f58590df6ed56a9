#!/usr/bin/env bash
# Stragglers (issue 21): what one slow rank costs a synchronous job, and what local SGD buys back.
# At --np ranks: (a) no delay, (b) rank 1 delayed by D ms every step (DP_FAULT=delay@step:rank=1:ms=D),
# (c) delayed + --sync-every H for each H of --h, (d) jitter: every rank delayed D ms on a fraction --p of its
# steps (DP_FAULT=delay@step:ms=D:p=P, a hash of rank and step), at H=1 and each H, (e) no delay + the
# largest H; each with --rank-times epoch. A rank slow on every step gains nothing from local SGD (each window
# still waits for its H delays); jitter that moves between ranks is what averaging over H steps absorbs.
# Prints a table (step time, samples/s, final test accuracy, the slowest rank and how often, the longest
# mean wait per step of any rank, lost_ms: slowest compute less the median per step) and the delay's cost
# against D; writes CSV (and a PNG with gnuplot, when installed).
#   benchmarks/bench_straggler.sh [--bin DPTRAIN] [--np P] [--model mlp|cnn] [--limit N] [--epochs E]
#                                 [--delay D] [--p P] [--h "2 4 8"] [--batch B] [--tag T]
# Smoke (tiny): --limit 1000 --epochs 1 --delay 10 --h "4"
set -euo pipefail
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/build/dptrain" np=2 model=mlp limit=20000 epochs=2 delay=20 hs="2 4 8" batch=64 p=0.25 tag=straggler
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --limit) limit="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --delay) delay="$2"; shift 2 ;;
    --h) hs="$2"; shift 2 ;;
    --batch) batch="$2"; shift 2 ;;
    --p) p="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "bench_straggler.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
[ "$np" -ge 2 ] || { echo "bench_straggler.sh: --np must be >= 2 (rank 1 is the one delayed)" >&2; exit 2; }
bin=$(realpath "$bin")
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
out="$root/benchmarks/out"; mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$bin" shard fashion-mnist --out "$tmp/fm" --shards "$((np > 4 ? np : 4))" >/dev/null 2>&1
hmax=1; for h in $hs; do [ "$h" -gt "$hmax" ] && hmax=$h; done
# name|delay ms|H|DP_FAULT
cases=("base|0|1|" "delay|$delay|1|delay@step:rank=1:ms=$delay")
for h in $hs; do cases+=("delay_h$h|$delay|$h|delay@step:rank=1:ms=$delay"); done
cases+=("jitter|$delay|1|delay@step:ms=$delay:p=$p")
for h in $hs; do cases+=("jitter_h$h|$delay|$h|delay@step:ms=$delay:p=$p"); done
[ "$hmax" -gt 1 ] && cases+=("base_h$hmax|0|$hmax|")
csv="$out/bench_straggler_$tag.csv"
echo "case,np,delay_ms,sync_every,step_ms,samples_per_s,test_acc,slowest_rank,slowest_pct,max_wait_ms,lost_ms" >"$csv"
for c in "${cases[@]}"; do
  IFS='|' read -r name d h fault <<<"$c"
  res=$(DP_FAULT="$fault" mpirun --oversubscribe --bind-to none -np "$np" "$bin" train --data "$tmp/fm" --model "$model" \
          --limit "$limit" --epochs "$epochs" --batch "$batch" --test-limit 2000 --seed 1 --quiet \
          --sync-every "$h" --rank-times epoch 2>&1) || { echo "$name failed: $res" >&2; exit 1; }
  sps=$(sed -n 's/.*train_samples_per_s=\([0-9.]*\).*/\1/p' <<<"$res")
  acc=$(sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' <<<"$res")
  # rank times: slowest rank R in X% of N steps, ...; then one line per rank with its wait
  slow=$(sed -n 's/^rank times: slowest rank \([0-9]*\) in \([0-9.]*\)%.*/\1,\2/p' <<<"$res")
  lost=$(sed -n 's/.*stragglers cost \([0-9.]*\) ms a step.*/\1/p' <<<"$res")
  fwait=$(sed -n 's/^  rank [0-9]*: .* wait \([0-9.]*\) ms per step/\1/p' <<<"$res" | sort -g | tail -1)
  step_ms=$(awk -v s="$sps" -v b="$batch" -v p="$np" 'BEGIN { printf "%.2f", (s > 0 ? 1000 * b * p / s : 0) }')
  echo "$name,$np,$d,$h,$step_ms,$sps,$acc,${slow:-,},${fwait:-},${lost:-}" >>"$csv"
done
printf '%-12s %3s %6s %4s %9s %10s %8s %8s %9s %10s %8s\n' case np delay H step_ms samples/s test_acc slowest "% steps" \
  "max wait" lost_ms
awk -F, 'NR > 1 { printf "%-12s %3s %6s %4s %9s %10s %8s %8s %9s %10s %8s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$csv" |
  tee "$out/bench_straggler_$tag.txt"
awk -F, -v d="$delay" -v p="$p" 'NR > 1 { s[$1] = $5 }
  END { if (s["base"] && s["delay"])
          printf "rank 1 delayed %s ms a step: the job'"'"'s step rose %.2f ms (synchronous: expect ~%s)\n", d, s["delay"] - s["base"], d
        if (s["base"] && s["jitter"])
          printf "jitter (each rank %s ms on a fraction %s of its steps): the job'"'"'s step rose %.2f ms\n", d, p, s["jitter"] - s["base"]
        for (k in s) if (k ~ /^jitter_h/) printf "%s: step %.2f ms, %.0f%% of the jitter'"'"'s cost recovered\n", k, s[k],
          (s["jitter"] > s["base"] ? 100 * (s["jitter"] - s[k]) / (s["jitter"] - s["base"]) : 0)
        for (k in s) if (k ~ /^delay_h/) printf "%s: step %.2f ms, %.0f%% of the delay'"'"'s cost recovered\n", k, s[k],
          (s["delay"] > s["base"] ? 100 * (s["delay"] - s[k]) / (s["delay"] - s["base"]) : 0) }' "$csv" |
  tee -a "$out/bench_straggler_$tag.txt"
if command -v gnuplot >/dev/null; then
  gnuplot <<GP || true
set terminal png size 800,450; set output "$out/bench_straggler_$tag.png"
set datafile separator ","; set style data histogram; set style fill solid; set ylabel "step (ms)"
set title "one rank delayed $delay ms/step, $np ranks, $model"; set xtics rotate by -30
plot "$csv" every ::1 using 5:xtic(1) title "step ms"
GP
fi
echo "CSV: $csv"
