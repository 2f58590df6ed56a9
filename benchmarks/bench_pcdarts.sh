#!/usr/bin/env bash
# PC-DARTS' partial channels against the full mixed op: the same tiny search
# (dptrain search --limit L --epochs 1, first-order darts) with
# --partial-channels 1 (DARTS) and K, runs alternating, one thread per rank.
# Prints per K the median training images/s (weight-step images, all ranks)
# and the median peak RSS per rank, and their ratio to K = 1; writes a CSV of
# every run. A smoke measurement unless the machine is quiet.
#
#   benchmarks/bench_pcdarts.sh [--ks "1 4"] [--limit 512] [--layers 5] [--channels 8]
#       [--batch 64] [--ranks 1] [--reps 3] [--dp-args "..."] [--tag NAME]
#
# --ks        the K values (each must divide --channels / 2; 1 first: the ratios are to it)
# --dp-args   extra flags for every `dptrain search` (e.g. "--edge-norm off" or "--strategy gumbel")
# Logs: benchmarks/out/pcdarts-runs/; CSV: benchmarks/out/pcdarts<tag>.csv.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
ks="1 4" limit=512 layers=5 channels=8 batch=64 ranks=1 reps=3 dp_args="" tag=""
dp_flags bench_pcdarts "--ks=ks --limit=limit --layers=layers --channels=channels --batch=batch --ranks=ranks
  --reps=reps --dp-args=dp_args --tag=tag" "$@"
me=bench_pcdarts
for v in limit layers channels batch ranks reps; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "--$v must be an integer >= 1 (got '${!v}')"
done
for k in $ks; do
  [[ "$k" =~ ^[0-9]+$ ]] && [ "$k" -ge 1 ] && [ $((channels % (2 * k))) -eq 0 ] ||
    die "--ks: $k must be >= 1 and divide --channels/2 = $((channels / 2))"
done
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
logs="$out/pcdarts-runs"; mkdir -p "$logs"
csv="$out/pcdarts${tag:+_$tag}.csv"
echo "k,rep,ranks,images_per_s,peak_rss_mb,epoch_s,val_acc" >"$csv"
for rep in $(seq 1 "$reps"); do
  for k in $ks; do
    log="$logs/k${k}_r${rep}.log"
    # shellcheck disable=SC2086
    dp_mpirun "$ranks" "$build/dptrain" search --data "$shards" --layers "$layers" --channels "$channels" \
      --batch "$batch" --limit "$limit" --epochs 1 --eval-limit 256 --partial-channels "$k" --quiet $dp_args \
      >"$log" 2>&1 || { echo "$me: K=$k failed:" >&2; tail -5 "$log" >&2; exit 1; }
    echo "$k,$rep,$ranks,$(field train_images_per_s "$log"),$(field peak_rss_mb "$log"),$(field epoch_s "$log"),$(field val_acc "$log")" >>"$csv"
  done
done
printf "%-4s %12s %8s %12s %8s\n" K images/s ratio rss_mb ratio
base_ips="" base_rss=""
for k in $ks; do
  ips=$(awk -F, -v k="$k" 'NR > 1 && $1 == k {print $4}' "$csv" | median)
  rss=$(awk -F, -v k="$k" 'NR > 1 && $1 == k {print $5}' "$csv" | median)
  [ -n "$base_ips" ] || base_ips="$ips" base_rss="$rss"
  printf "%-4s %12.1f %8.2f %12.0f %8.2f\n" "$k" "$ips" "$(awk -v a="$ips" -v b="$base_ips" 'BEGIN{print a/b}')" \
    "$rss" "$(awk -v a="$rss" -v b="$base_rss" 'BEGIN{print a/b}')"
done
echo "csv: $csv"
