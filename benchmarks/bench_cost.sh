#!/usr/bin/env bash
# Resource-aware search: the same short search at several cost weights lambda
# (alpha objective + lambda * E[cost]), one table of what it buys: the derived
# cells' MFLOPs per image against the supernet's held-out accuracy (the
# retrained accuracy of each cell is bench_nas_retrain.sh's job). With
# --cost-table the cost is the latency table of `dptrain search --profile-ops`.
#
#   benchmarks/bench_cost.sh [--lambdas "0 0.05 0.2"] [--strategy darts] [--limit 4000]
#       [--epochs 2] [--ranks 2] [--layers 5] [--channels 8] [--cost-table FILE] [--args "..."]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
lambdas="0 0.05 0.2" strategy=darts limit=4000 epochs=2 ranks=2 layers=5 channels=8 table="" args=""
dp_flags bench_cost "--lambdas=lambdas --strategy=strategy --limit=limit --epochs=epochs --ranks=ranks
  --layers=layers --channels=channels --cost-table=table --args=args" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
csv="$out/cost_${strategy}.csv"
echo "lambda,strategy,cost,derived_mflops,heldout_acc,skips,wall_s" > "$csv"
printf "%8s %-8s %-8s %15s %12s %6s %8s\n" lambda strategy cost derived_MFLOPs heldout_acc skips wall_s
for l in $lambdas; do
  dir="$out/cost-runs/${strategy}-l$l"; rm -rf "$dir"; mkdir -p "$dir"
  extra=""; [ -n "$table" ] && extra="--cost-table $table"
  dp_mpirun "$ranks" "$build/dptrain" search --data "$shards" --layers "$layers" --channels "$channels" \
    --strategy "$strategy" --epochs "$epochs" --limit "$limit" --batch $((64 / ranks)) --sampler global \
    --cost-weight "$l" $extra $args --out "$dir" --quiet >"$dir/log" 2>&1 ||
    { echo "bench_cost: lambda $l failed:" >&2; tail -5 "$dir/log" >&2; exit 1; }
  mf=$(field derived_mflops "$dir/log") acc=$(field val_acc "$dir/log") sk=$(field skips "$dir/log") w=$(field wall_s "$dir/log")
  kind=$([ -n "$table" ] && echo latency || echo flops)
  echo "$l,$strategy,$kind,$mf,$acc,$sk,$w" >> "$csv"
  printf "%8s %-8s %-8s %15s %12s %6s %8s\n" "$l" "$strategy" "$kind" "$mf" "$acc" "$sk" "$w"
done
echo "csv: $csv"
