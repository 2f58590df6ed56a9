#!/usr/bin/env bash
# What perturbation-based selection costs, and what it chooses: one search, then the cell chosen again
# from its checkpoint (--reselect) by alpha and by perturb at each --select-batches x --select-tune
# setting. A table (seconds, the cell's parameters and MFLOPs at 8 x 16, parameter-free ops
# in the normal cell, the genotype) and a CSV; the retrained accuracy of the cells is bench_nas_retrain.sh's.
#
#   benchmarks/bench_nas_select.sh [--ranks 2] [--epochs 3] [--limit 10000] [--layers 5] [--channels 8]
#       [--batches "4 8"] [--tunes "0 4"] [--extra "--arch-warmup 1"]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
ranks=2 epochs=3 limit=10000 layers=5 channels=8 batches="4 8" tunes="0 4" extra=""
dp_flags bench_nas_select "--ranks=ranks --epochs=epochs --limit=limit --layers=layers --channels=channels
  --batches=batches --tunes=tunes --extra=extra" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dir="$out/nas-select"; mkdir -p "$dir"
csv="$out/nas_select.csv"
flags=(--data "$shards" --epochs "$epochs" --limit "$limit" --layers "$layers" --channels "$channels" --out "$dir/search")
# shellcheck disable=SC2206
flags+=($extra)
dp_mpirun "$ranks" "$build/dptrain" search "${flags[@]}" --overwrite --quiet > "$dir/search.log" 2>&1 ||
  { echo "bench_nas_select: the search failed:" >&2; tail -5 "$dir/search.log" >&2; exit 1; }
echo "search: $(field wall_s "$dir/search.log") s, held-out acc $(field val_acc "$dir/search.log")"
echo "select,batches,tune,select_s,retrain_params,retrain_mflops,param_free,genotype" > "$csv"
printf "%-8s %7s %4s %8s %10s %8s %4s  %s\n" select batches tune select_s params mflops free genotype
row() { # select batches tune
  local log="$dir/$1-b$2-t$3.log"
  dp_mpirun "$ranks" "$build/dptrain" search "${flags[@]}" --reselect --select "$1" --select-batches "$2" \
    --select-tune "$3" > "$log" 2>&1 || { echo "bench_nas_select: $1 $2 $3 failed:" >&2; tail -5 "$log" >&2; exit 1; }
  local s p m f
  cp "$dir/search/genotype.json" "$dir/$1-b$2-t$3.json"
  s=$(field select_s "$log"); p=$(field retrain_params "$log"); m=$(field retrain_mflops "$log")
  f=$(field param_free "$log")
  echo "$1,$2,$3,$s,$p,$m,$f,$dir/$1-b$2-t$3.json" >> "$csv"
  printf "%-8s %7s %4s %8s %10s %8s %4s  %s\n" "$1" "$2" "$3" "$s" "$p" "$m" "$f" "$(tr -d ' \n' < "$dir/$1-b$2-t$3.json" | head -c 160)"
}
row alpha 1 0
for b in $batches; do for t in $tunes; do row perturb "$b" "$t"; done; done
echo "csv: $csv"
