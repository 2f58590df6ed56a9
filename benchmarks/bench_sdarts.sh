#!/usr/bin/env bash
# The step cost of SD-DARTS' self-distillation: the same tiny search (dptrain
# search --limit L, first-order darts) plain and with --self-distill (each
# --voters value), runs alternating, one thread per rank. Epoch e has e - 1
# teachers (at most V), so every run has max(voters) + 1 epochs and the figure
# is the last epoch's seconds of steps (metrics.jsonl's epoch_s, evaluation
# excluded), all V voters active, and its ratio to the plain search's; also
# the median peak RSS per rank. Writes a CSV of every run. A smoke
# measurement unless the machine is quiet.
#
#   benchmarks/bench_sdarts.sh [--voters "1 3"] [--lambda 1] [--limit 512] [--layers 5] [--channels 8]
#       [--batch 64] [--ranks 1] [--reps 3] [--dp-args "..."] [--tag NAME]
#
# --voters    the --distill-voters values timed against the plain search (one teacher forward each per step)
# --dp-args   extra flags for every `dptrain search` (e.g. "--strategy gumbel" or "--partial-channels 4")
# Logs: benchmarks/out/sdarts-runs/; CSV: benchmarks/out/sdarts<tag>.csv.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
voters="1 3" lambda=1 limit=512 layers=5 channels=8 batch=64 ranks=1 reps=3 dp_args="" tag=""
dp_flags bench_sdarts "--voters=voters --lambda=lambda --limit=limit --layers=layers --channels=channels
  --batch=batch --ranks=ranks --reps=reps --dp-args=dp_args --tag=tag" "$@"
me=bench_sdarts
for v in limit layers channels batch ranks reps; do
  [[ "${!v}" =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "--$v must be an integer >= 1 (got '${!v}')"
done
for v in $voters; do
  [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -ge 1 ] && [ "$v" -le 16 ] || die "--voters: $v must be in [1, 16]"
done
[[ "$lambda" =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v l="$lambda" 'BEGIN{exit !(l > 0)}' || die "--lambda must be > 0 (got '$lambda')"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
logs="$out/sdarts-runs"; mkdir -p "$logs"
csv="$out/sdarts${tag:+_$tag}.csv"
epochs=$(( $(printf '%s\n' $voters | sort -n | tail -n1) + 1 ))
echo "voters,rep,ranks,last_epoch_s,peak_rss_mb,val_acc,distill_kl" >"$csv"
# the last epoch's "epoch_s" (or distill_kl) from a run directory's metrics.jsonl
last() { sed -n "s/.*\"kind\":\"epoch\",\"epoch\":$epochs,.*\"$1\":\([0-9.e+-]*\).*/\1/p" "$2/metrics.jsonl" | head -n1; }
for rep in $(seq 1 "$reps"); do
  for v in 0 $voters; do # 0: the plain search
    run="$logs/v${v}_r${rep}" log="$logs/v${v}_r${rep}.log"
    sd=""
    [ "$v" -eq 0 ] || sd="--self-distill $lambda --distill-voters $v"
    # shellcheck disable=SC2086
    dp_mpirun "$ranks" "$build/dptrain" search --data "$shards" --layers "$layers" --channels "$channels" \
      --batch "$batch" --limit "$limit" --epochs "$epochs" --eval-limit 256 --quiet --out "$run" --overwrite $sd $dp_args \
      >"$log" 2>&1 || { echo "$me: voters=$v failed:" >&2; tail -5 "$log" >&2; exit 1; }
    kl=$( [ "$v" -eq 0 ] && echo 0 || last distill_kl "$run")
    echo "$v,$rep,$ranks,$(last epoch_s "$run"),$(field peak_rss_mb "$log"),$(field val_acc "$log"),$kl" >>"$csv"
  done
done
printf "%-8s %12s %8s %12s %8s\n" voters "epoch${epochs}_s" ratio rss_mb ratio
base_s="" base_rss=""
for v in 0 $voters; do
  s=$(awk -F, -v v="$v" 'NR > 1 && $1 == v {print $4}' "$csv" | median)
  rss=$(awk -F, -v v="$v" 'NR > 1 && $1 == v {print $5}' "$csv" | median)
  [ -n "$base_s" ] || base_s="$s" base_rss="$rss"
  printf "%-8s %12.2f %8.2f %12.0f %8.2f\n" "$([ "$v" -eq 0 ] && echo plain || echo "$v")" "$s" \
    "$(awk -v a="$s" -v b="$base_s" 'BEGIN{print a/b}')" "$rss" "$(awk -v a="$rss" -v b="$base_rss" 'BEGIN{print a/b}')"
done
echo "csv: $csv"
