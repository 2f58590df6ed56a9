#!/usr/bin/env bash
# Soak run: P ranks train for a fixed wall time with periodic checkpoints, and a
# sampler records every rank's RSS and open file descriptors and the window's
# throughput. What a leak or a slow-down looks like: RSS or fds that climb,
# samples/s that fall. The run ends with SIGTERM (checkpoint, exit 143), then a
# --resume of a few steps checks that the last checkpoint loads.
#   benchmarks/soak.sh [--seconds 3600] [--ranks 2] [--every 30] [--model cnn]
#                      [--checkpoint-every 2000] [--plot]
# Writes benchmarks/out/soak/{samples.csv,summary.txt,soak.png}.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
seconds=3600 np=2 every=30 model=cnn ckevery=2000 plot=0 batch=64
dp_flags soak.sh "--seconds=seconds --ranks=np --every=every --model=model --checkpoint-every=ckevery
  --plot=plot=1" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
dir="$out/soak"; rm -rf "$dir"; mkdir -p "$dir"
run="$dir/run" csv="$dir/samples.csv"
args=(train --data "$shards" --model "$model" --epochs 100000 --batch "$batch" --quiet --out "$run"
      --checkpoint-every "$ckevery" --keep-checkpoints 2 --check-replicas 500)
dp_mpirun "$np" "$build/dptrain" "${args[@]}" > "$dir/train.log" 2>&1 &
job=$!
tree_of() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; tree_of "$c"; done; } # the ranks: mpirun's children
pids=""
for _ in $(seq 1 100); do
  sleep 0.2
  pids=$(tree_of "$job" | while read -r p; do [ "$(cat /proc/"$p"/comm 2>/dev/null)" = dptrain ] && echo "$p"; done |
         tr '\n' ' ' || true)
  [ "$(wc -w <<<"$pids")" -ge "$np" ] && break
done
[ "$(wc -w <<<"$pids")" -ge "$np" ] || { echo "soak.sh: ranks did not start: $(cat "$dir/train.log")" >&2; exit 1; }

last_step() { { grep "\"kind\":\"step\"" "$run/metrics.jsonl" 2>/dev/null || true; } | tail -n1 | sed -n 's/.*"step":\([0-9]*\).*/\1/p'; }
echo "t_s,step,samples_per_s,checkpoints,$(for p in $pids; do printf 'rss_mb_%s,fds_%s,' "$p" "$p"; done | sed 's/,$//')" > "$csv"
t0=$(date +%s.%N); prev_t=$t0; prev_step=0
printf "%8s %8s %12s %6s %s\n" t_s step samples/s ckpts "per rank: RSS MB / fds"
while :; do
  sleep "$every"
  now=$(date +%s.%N); el=$(awk -v a="$t0" -v b="$now" 'BEGIN{printf "%.0f", b-a}')
  kill -0 "$job" 2>/dev/null || { echo "soak.sh: the job ended early: $(tail -5 "$dir/train.log")" >&2; exit 1; }
  step=$(last_step); step=${step:-0}
  sps=$(awk -v s="$step" -v ps="$prev_step" -v t="$now" -v pt="$prev_t" -v g=$((batch * np)) \
        'BEGIN{ printf "%.0f", (s - ps) * g / (t - pt) }')
  cks=$(grep -c . <(ls "$run"/checkpoint.dpc* 2>/dev/null) || true)
  row="$el,$step,$sps,$cks" show=""
  for p in $pids; do
    rss=$(awk '/^VmRSS/ {printf "%.1f", $2/1024}' /proc/"$p"/status 2>/dev/null || echo nan)
    fds=$( (ls /proc/"$p"/fd 2>/dev/null || true) | wc -l)
    row="$row,$rss,$fds" show="$show $rss/$fds"
  done
  echo "$row" >> "$csv"
  printf "%8s %8s %12s %6s %s\n" "$el" "$step" "$sps" "$cks" "$show"
  prev_t=$now prev_step=$step
  [ "$el" -ge "$seconds" ] && break
done
kill -TERM $pids; set +e; wait "$job"; rc=$?; set -e # the ranks agree to stop, checkpoint, exit 143
steps=$(sed -n 's/^stopped: steps=\([0-9]*\).*/\1/p' "$dir/train.log")
resume=$(dp_mpirun "$np" "$build/dptrain" "${args[@]}" --resume --stop-after $((steps + 10)) 2>&1 | tail -n1)

# first and last quarter of the samples: RSS, fds, throughput medians
n=$(( $(wc -l < "$csv") - 1 )); q=$(( n / 4 > 0 ? n / 4 : 1 ))
col() { tail -n +2 "$csv" | awk -F, "{ $1 }"; } # an awk expression over one sample row
totals='r=0; f=0; for (i=5; i<=NF; i+=2) { r+=$i; f+=$(i+1) }'
first_sps=$(col 'if ($3 > 0) print $3' | head -n "$q" | median); last_sps=$(col 'print $3' | tail -n "$q" | median)
# RSS from the first sample after the first checkpoint (its buffers are allocated then), to the last
rss=($(col "if (\$4 > 0) { $totals; print r }" | sed -n '1p;$p')); fds=($(col "$totals; print f" | sed -n '1p;$p'))
rss_from="after the first checkpoint"
if [ ${#rss[@]} -lt 2 ]; then # no checkpoint before the end: from the first sample
  rss=($(col "$totals; print r" | sed -n '1p;$p')); rss_from="first sample"
fi
rss_max=$(col "$totals; print r" | sort -g | tail -n1)
summary=$(
  echo "samples: $n over $(col 'print $1' | tail -n1) s"
  awk -v a="${rss[0]}" -v b="${rss[1]}" -v m="$rss_max" -v from="$rss_from" \
    'BEGIN { printf "RSS (all ranks, MB): %s %.1f, last %.1f (%+.1f%%), max %.1f\n", from, a, b, 100*(b-a)/a, m }'
  echo "open fds (all ranks): first ${fds[0]}, last ${fds[1]}"
  awk -v a="$first_sps" -v b="$last_sps" -v q="$q" \
    'BEGIN { printf "samples/s median: first %d samples %.0f, last %d samples %.0f (ratio %.3f)\n", q, a, q, b, b/a }')
{
  echo "soak: $np ranks x $seconds s, model $model, batch $batch/rank, checkpoint every $ckevery steps (keep 2)"
  echo "$summary"
  echo "end: SIGTERM -> exit $rc, $(grep -m1 '^stopped:' "$dir/train.log")"
  echo "resume check: $resume"
} | tee "$dir/summary.txt"

if [ "$plot" = 1 ]; then
  ncol=$(head -1 "$csv" | tr ',' '\n' | wc -l)
  dp_plot "$dir/soak.png" 900,600 <<GP
set datafile separator ","
set key noenhanced bottom right
set multiplot layout 3,1 title "soak: $np ranks, $model (machine shared with other work)"
set ylabel "samples/s"; set yrange [0:*]; plot "$csv" using 1:3 with lines notitle
set ylabel "RSS MB"; plot for [i=5:$ncol:2] "$csv" using 1:i with lines title columnheader(i)
set ylabel "open fds"; set xlabel "seconds"; plot for [i=6:$ncol:2] "$csv" using 1:i with lines title columnheader(i)
unset multiplot
GP
fi
