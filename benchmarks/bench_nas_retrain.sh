#!/usr/bin/env bash
# The NAS sanity check: the cell a search derived, retrained, against the
# hand-made cnn and against random cells of the same space retrained with the
# same budget (Li and Talwalkar 2019; Yang et al. 2020). One table, a CSV, and
# with --plot a PNG of test accuracy per epoch.
#
#   benchmarks/bench_nas_retrain.sh --genotype runs/search/genotype.json
#       [--ranks 2] [--epochs 6] [--layers 8] [--channels 16] [--random 3]
#       [--limit 0] [--extra "--drop-path 0.1 --cutout 8"] [--plot]
# Every network trains with the same recipe (SGD lr 0.025 momentum 0.9, cosine,
# weight decay 3e-4, global batch 64 x ranks) unless --extra overrides it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
genotype="" ranks=2 epochs=6 layers=8 channels=16 nrandom=3 limit=0 extra="" plot=0
dp_flags bench_nas_retrain "--genotype=genotype --ranks=ranks --epochs=epochs --layers=layers
  --channels=channels --random=nrandom --limit=limit --extra=extra --plot=plot=1" "$@"
[ -n "$genotype" ] && [ -f "$genotype" ] || { echo "bench_nas_retrain: --genotype FILE (from dptrain search) is required" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
runs="$out/nas-retrain"; mkdir -p "$runs"
csv="$out/nas_retrain.csv"
echo "network,epochs,ranks,params_note,test_acc,train_samples_per_s,wall_s" > "$csv"
recipe="--epochs $epochs --batch 64 --limit $limit --lr 0.025 --momentum 0.9 --weight-decay 3e-4 --schedule cosine --quiet"

train() { # name, then dptrain train flags
  local name="$1"; shift
  local dir="$runs/$name"; rm -rf "$dir"; mkdir -p "$dir"
  dp_mpirun "$ranks" "$build/dptrain" train --data "$shards" $recipe --out "$dir" "$@" $extra >"$dir/log" 2>&1 ||
    { echo "bench_nas_retrain: $name failed:" >&2; tail -5 "$dir/log" >&2; exit 1; }
  local acc sps wall
  acc=$(field test_acc "$dir/log"); sps=$(field train_samples_per_s "$dir/log"); wall=$(field wall_s "$dir/log")
  echo "$name,$epochs,$ranks,,$acc,$sps,$wall" >> "$csv"
  printf "%-12s %9s %12s %9s\n" "$name" "$acc" "$sps" "$wall"
}

printf "%-12s %9s %12s %9s\n" network test_acc samples/s wall_s
cp "$genotype" "$runs/derived.json"
train derived --arch "$runs/derived.json" --layers "$layers" --channels "$channels"
for i in $(seq 1 "$nrandom"); do
  "$build/dptrain" search --random-genotype "$runs/random$i.json" --seed "$((1000 + i))" >/dev/null
  train "random$i" --arch "$runs/random$i.json" --layers "$layers" --channels "$channels"
done
train cnn --model cnn
awk -F, 'NR>1 && $1 ~ /^random/ {s+=$5; n++} END{ if (n) printf "random mean %.4f over %d cells\n", s/n, n }' "$csv"
echo "csv: $csv"
if [ "$plot" = 1 ]; then
  plots=$(dp_curves 's/.*"kind":"epoch","epoch":\([0-9]*\).*"test_acc":\([0-9.]*\).*/\1 \2/p' "$runs"/*/)
  dp_plot "$out/nas_retrain.png" 900,560 <<GP
set xlabel "epoch"; set ylabel "test accuracy"; set key bottom right; set grid
plot $plots
GP
fi
