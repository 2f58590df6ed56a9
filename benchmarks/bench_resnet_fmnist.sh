#!/usr/bin/env bash
# ResNet-20 on Fashion-MNIST to convergence, dptrain against PyTorch DistributedDataParallel with the
# same recipe, side by side: NP ranks x batch 64, SGD with Nesterov momentum 0.9, weight decay 5e-4,
# a linear warm-up then cosine to 0, RandomCrop(padding) + RandomHorizontalFlip, one thread per rank.
# Prints each one's test accuracy per epoch and a table (test accuracy, wall time, samples/s, peak RSS of
# the largest process); CSV and a PNG of test accuracy against epoch. Each run is resumable: dptrain's
# from its run directory (--resume), PyTorch's is skipped when its log holds a final line.
# Wall times of a full run: benchmarks/RESULTS.md §15.
#
#   benchmarks/bench_resnet_fmnist.sh [--np 2] [--epochs 30] [--lr 0.1] [--crop-pad 2] [--seed 1]
#                                     [--impls "dptrain torch"] [--limit N (train images; 0 = all)]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
np=2 epochs=30 lr=0.1 pad=2 seed=1 impls="dptrain torch" limit=0
dp_flags bench_resnet_fmnist "--np=np --epochs=epochs --lr=lr --crop-pad=pad --seed=seed --impls=impls --limit=limit" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
runs="$out/resnet_fmnist"; mkdir -p "$runs"
warmup=$(( limit > 0 && limit < 60000 ? 1 : 200 ))
recipe=(--model resnet20 --epochs "$epochs" --batch 64 --lr "$lr" --momentum 0.9 --nesterov --weight-decay 5e-4
        --schedule cosine --warmup "$warmup" --augment --crop-pad "$pad" --seed "$seed" --limit "$limit")
csv="$out/resnet_fmnist.csv"
echo "impl,ranks,epochs,test_acc,wall_s,train_samples_per_s,peak_rss_mb" > "$csv"

run_dptrain() {
  local d="$runs/dptrain" resume=()
  [ -f "$d/checkpoint.dpc" ] && resume=(--resume)
  /usr/bin/time -v -o "$d.time" "$(command -v mpirun)" -np "$np" --oversubscribe --bind-to core --map-by core \
    "$build/dptrain" train --data "$shards" "${recipe[@]}" --out "$d" --quiet "${resume[@]}" > "$d.log" 2>&1 ||
    { echo "bench_resnet_fmnist: dptrain failed:" >&2; tail -n 5 "$d.log" >&2; exit 1; }
  sed -n 's/.*"kind":"epoch","epoch":\([0-9]*\).*"test_acc":\([0-9.]*\).*/\1 \2/p' "$d/metrics.jsonl" > "$d.acc"
}
run_torch() {
  local d="$runs/torch"
  grep -q "final:" "$d.log" 2>/dev/null && return 0
  need_torch
  # Debian's torchrun (Python 3.11) crashes at start without --redirects/--tee
  /usr/bin/time -v -o "$d.time" torchrun --nproc_per_node "$np" --redirects 0:1 --tee 0:1 \
    "$root/benchmarks/torch_ref.py" "${recipe[@]}" --threads 1 --log-epochs > "$d.log" 2>&1 ||
    { echo "bench_resnet_fmnist: torch failed:" >&2; tail -n 5 "$d.log" >&2; exit 1; }
  sed -n 's/.*epoch \([0-9]*\)\/[0-9]* test_acc=\([0-9.]*\).*/\1 \2/p' "$d.log" > "$d.acc"
}
for impl in $impls; do
  echo "== $impl: ${recipe[*]}, $np ranks"
  "run_$impl"
  cat "$runs/$impl.acc"
  log="$runs/$impl.log"
  echo "$impl,$np,$epochs,$(field test_acc "$log"),$(field wall_s "$log"),$(field train_samples_per_s "$log"),$(rss_mb "$runs/$impl.time")" >> "$csv"
done
echo
printf "%-8s %5s %7s %9s %8s %10s %8s\n" impl ranks epochs test_acc wall_s samples/s rss_MB
tail -n +2 "$csv" | while IFS=, read -r i p e a w s r; do
  printf "%-8s %5s %7s %9s %8s %10s %8s\n" "$i" "$p" "$e" "$a" "$w" "$s" "$r"
done
echo; echo "csv: $csv"
plots=""
for impl in $impls; do plots="$plots${plots:+, }\"$runs/$impl.acc\" using 1:2 with linespoints title \"$impl\""; done
dp_plot "$out/resnet_fmnist.png" 800,500 <<EOF
set xlabel "epoch"; set ylabel "test accuracy"; set key bottom right; set grid
plot $plots
EOF
