#!/usr/bin/env bash
# dptrain against PyTorch 1.13 (Debian's python3-torch), one thread each, side
# by side in one run: the same mlp and cnn trained for one epoch of
# Fashion-MNIST (batch 64, SGD lr 0.05 momentum 0.9). Prints a table and a CSV
# of median training samples/s, the ratio, each run's fraction of the sgemm
# bound, and peak RSS (/usr/bin/time -v).
#
#   benchmarks/compare_torch.sh [--reps N] [--models "mlp cnn resnet20"] [--limit N] [--plot]
#
# The bound: single-thread sgemm GFLOP/s (bench_sgemm, measured in the same
# run) divided by the model's training FLOPs per sample (3 x forward).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
reps=3 models="mlp cnn" limit=0 plot=0
dp_flags compare_torch "--reps=reps --models=models --limit=limit --plot=plot=1" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_torch
peak=$("$build/benchmarks/bench_sgemm" | sed -n 's/^peak_gflops=//p')
# training FLOPs per sample = 3 x forward (forward, grad wrt inputs, grad wrt weights)
declare -A mflop=([mlp]=3.21 [cnn]=25.44 [resnet20]=186.13)

run() { # run dptrain|torch MODEL -> "samples_per_s rss_kb test_acc"
  local log; log=$(mktemp)
  if [ "$1" = dptrain ]; then
    /usr/bin/time -v "$build/dptrain" train --data "$shards" --model "$2" --epochs 1 --batch 64 --lr 0.05 \
      --threads 1 --limit "$limit" --quiet >"$log" 2>&1
  else
    /usr/bin/time -v /usr/bin/python3 "$root/benchmarks/torch_ref.py" --model "$2" --epochs 1 --batch 64 \
      --lr 0.05 --threads 1 --limit "$limit" >"$log" 2>&1
  fi
  local sps rss acc
  sps=$(field train_samples_per_s "$log"); acc=$(field test_acc "$log"); rss=$(rss_mb "$log")
  [ -n "$sps" ] || { echo "compare_torch: $1 $2 failed:" >&2; cat "$log" >&2; exit 1; }
  rm -f "$log"; echo "$sps $rss $acc"
}

csv="$out/compare_torch.csv"
echo "model,impl,rep,samples_per_s,peak_rss_mb,test_acc" > "$csv"
for m in $models; do
  for r in $(seq 1 "$reps"); do
    # alternate the order so drift on a shared machine hits both sides
    if [ $((r % 2)) -eq 1 ]; then order="dptrain torch"; else order="torch dptrain"; fi
    for impl in $order; do
      read -r sps rss acc < <(run "$impl" "$m")
      echo "$m,$impl,$r,$sps,$rss,$acc" >> "$csv"
    done
  done
done

printf "\nsgemm bound: %.1f GFLOP/s single thread (bench_sgemm, this run); reps=%s limit=%s\n\n" "$peak" "$reps" "$limit"
printf "%-5s %12s %12s %7s %10s %9s %9s %10s %10s\n" model dptrain/s torch/s ratio bound/s dp_bound% pt_bound% dp_rss_MB pt_rss_MB
summary="$out/compare_torch_summary.csv"
echo "model,dptrain_sps,torch_sps,ratio,bound_sps,dptrain_frac_bound,torch_frac_bound,dptrain_rss_mb,torch_rss_mb" > "$summary"
for m in $models; do
  d=$(awk -F, -v m="$m" '$1==m && $2=="dptrain"{print $4}' "$csv" | median)
  t=$(awk -F, -v m="$m" '$1==m && $2=="torch"{print $4}' "$csv" | median)
  dr=$(awk -F, -v m="$m" '$1==m && $2=="dptrain"{print $5}' "$csv" | median)
  tr=$(awk -F, -v m="$m" '$1==m && $2=="torch"{print $5}' "$csv" | median)
  line=$(awk -v d="$d" -v t="$t" -v p="$peak" -v f="${mflop[$m]}" -v dr="$dr" -v tr="$tr" -v m="$m" 'BEGIN{
    b = p * 1e3 / f; printf "%s,%.0f,%.0f,%.2f,%.0f,%.2f,%.2f,%.0f,%.0f", m, d, t, d/t, b, d/b, t/b, dr, tr }')
  echo "$line" >> "$summary"
  IFS=, read -r _ d t ratio b fd ft dr tr <<<"$line"
  printf "%-5s %12s %12s %6sx %10s %8.0f%% %8.0f%% %10s %10s\n" "$m" "$d" "$t" "$ratio" "$b" \
    "$(awk -v x="$fd" 'BEGIN{print x*100}')" "$(awk -v x="$ft" 'BEGIN{print x*100}')" "$dr" "$tr"
done
echo; echo "csv: $csv and $summary"
if [ "$plot" = 1 ]; then
  dp_plot "$out/compare_torch.png" 800,450 <<GP
set style data histograms; set style histogram clustered gap 1; set style fill solid 0.8
set datafile separator ","; set ylabel "training samples/s (1 thread)"; set grid ytics; set key top right
set title "dptrain vs PyTorch 1.13, one epoch Fashion-MNIST, batch 64"
plot "$summary" every ::1 using 2:xtic(1) title "dptrain", "" every ::1 using 3 title "PyTorch", "" every ::1 using 5 title "sgemm bound"
GP
fi
