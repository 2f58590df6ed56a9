#!/usr/bin/env bash
# A/B of two dptrain binaries on the same one-thread training run (ResNet-20 by default, batch 64,
# Fashion-MNIST): the runs alternate OLD, NEW, OLD, NEW, ... for --rounds rounds, and each one's user
# CPU seconds (/usr/bin/time %U: less disturbed by other load than wall time) and final parameter
# digest are printed, then the medians, NEW/OLD, and whether the digests agree (a change meant to
# keep the training bits must show "same bits").
#
#   benchmarks/bench_step_ab.sh --old BIN --new BIN [--rounds 5] [--limit 3200] [--model resnet20]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
old="" new="" rounds=5 limit=3200 model=resnet20
dp_flags bench_step_ab "--old=old --new=new --rounds=rounds --limit=limit --model=model" "$@"
[ -x "$old" ] && [ -x "$new" ] || { echo "bench_step_ab: --old and --new must name dptrain binaries" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
declare -A times digests
for r in $(seq "$rounds"); do
  for which in old new; do
    bin=${!which}
    /usr/bin/time -f %U -o "$tmp/t" "$bin" train --data "$shards" --model "$model" --epochs 1 --batch 64 --lr 0.05 \
      --threads 1 --limit "$limit" --test-limit 200 --quiet --out "$tmp/run" --overwrite > "$tmp/log" 2>&1 ||
      { echo "bench_step_ab: $which failed:" >&2; tail -n 5 "$tmp/log" >&2; exit 1; }
    t=$(tail -n 1 "$tmp/t") d=$(sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' "$tmp/log")
    echo "round $r $which user_s=$t params_xxh3=$d"
    times[$which]+="$t "; digests[$which]+="$d "
  done
done
mo=$(echo "${times[old]}" | tr ' ' '\n' | grep . | median) mn=$(echo "${times[new]}" | tr ' ' '\n' | grep . | median)
bits="same bits"
[ "$(echo "${digests[old]} ${digests[new]}" | tr ' ' '\n' | grep . | sort -u | wc -l)" -eq 1 ] || bits="different bits"
awk -v o="$mo" -v n="$mn" -v b="$bits" 'BEGIN { printf "median user s: old %.2f new %.2f, new/old %.3f; %s\n", o, n, n / o, b }'
