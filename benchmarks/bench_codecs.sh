#!/usr/bin/env bash
# Time to accuracy with gradient compression on a slow network: the cnn trained
# data-parallel inside launch/vcluster.sh (rate-limited loopback), one run per
# codec (with and without --wire-zstd), recording step time, bytes on the wire
# per step, final test accuracy and wall time; a table, a CSV and a PNG of test
# accuracy against wall time (one point per epoch, from each run's metrics).
#
#   benchmarks/bench_codecs.sh [--rate 1gbit] [--ranks "2 4"] [--epochs 5]
#       [--codecs "none fp16 int8"] [--zstd "0 3"] [--model cnn] [--limit 0] [--seed S] [--tag NAME]
# Needs root (network namespaces). Per-rank batch 64/P keeps the global batch at 64.
# A codec "topk:F+dgc" runs --codec topk:F --dgc (DGC momentum correction).
# --seed S runs every codec with dptrain's --seed S (default 1): repeat a table over seeds to see how
# much of a final-accuracy difference is the seed's.
# --tag NAME writes codecs_RATE_NAME.csv (the plot shows every run kept under codec-runs/).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
rate=1gbit ranks="2" epochs=5 codecs="none fp16 bf16 int8" zstds="0 3" model=cnn limit=0 tag="" seed=""
dp_flags bench_codecs "--rate=rate --ranks=ranks --epochs=epochs --codecs=codecs --zstd=zstds --model=model
  --limit=limit --seed=seed --tag=tag" "$@"
tag="${tag:+_$tag}"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
csv="$out/codecs_${rate}${tag}.csv"
echo "ranks,codec,wire_zstd,steps,step_ms,wire_kb_per_step,raw_kb_per_step,test_acc,wall_s" > "$csv"
printf "%5s %-14s %4s %8s %14s %12s %9s %8s\n" ranks codec zstd step_ms wire_KiB/step vs_float32 test_acc wall_s
for np in $ranks; do
  for c in $codecs; do
    for z in $zstds; do
      # top-k pairs and PowerSGD factors are not byte-shuffled float arrays: no wire stage there
      case "$c" in topk:*|powersgd:*) [ "$z" = 0 ] || continue ;; esac
      run="$out/codec-runs/${rate}-np${np}-${c}-z${z}${seed:+-s$seed}"
      rm -rf "$run"; mkdir -p "$run"
      cflags=(--codec "${c%+dgc}"); [ "${c%+dgc}" = "$c" ] || cflags+=(--dgc)
      log="$run/log"
      "$root/launch/vcluster.sh" --rate "$rate" -- mpirun -np "$np" --oversubscribe \
        -x OPENBLAS_NUM_THREADS=1 "$build/dptrain" train --data "$shards" --model "$model" --epochs "$epochs" \
        --batch $((64 / np)) --limit "$limit" --schedule cosine --weight-decay 5e-4 "${cflags[@]}" \
        --wire-zstd "$z" --seed "${seed:-1}" --out "$run" --quiet >"$log" 2>&1 ||
        { echo "bench_codecs: run failed:" >&2; cat "$log" >&2; exit 1; }
      steps=$(field steps "$log") wall=$(field wall_s "$log") acc=$(field test_acc "$log")
      wire=$(field wire_kb_per_step "$log") raw=$(field raw_kb_per_step "$log")
      sps=$(field train_samples_per_s "$log")
      step_ms=$(awk -v s="$sps" -v b=64 'BEGIN{printf "%.1f", b/s*1000}')
      echo "$np,$c,$z,$steps,$step_ms,$wire,$raw,$acc,$wall" >> "$csv"
      printf "%5s %-14s %4s %8s %14s %11.1fx %9s %8s\n" "$np" "$c" "$z" "$step_ms" "$wire" \
        "$(awk -v w="$wire" -v r="$raw" 'BEGIN{print (w>0)? r/w : 0}')" "$acc" "$wall"
    done
  done
done
echo; echo "csv: $csv"
plots=$(dp_curves 's/.*"kind":"epoch".*"test_acc":\([0-9.]*\).*"wall_s":\([0-9.]*\).*/\2 \1/p' \
  "$out"/codec-runs/"${rate}"-np*/)
dp_plot "$out/codecs_${rate}.png" 900,500 <<GP
set xlabel "wall time (s)"; set ylabel "test accuracy"; set grid; set key bottom right
set title "$model under vcluster --rate $rate: test accuracy against wall time"
plot $plots
GP
