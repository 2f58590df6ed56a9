#!/usr/bin/env bash
# Two dptrain builds side by side on the same machine, alternating runs so that noise hits both alike:
# train samples/s (mlp and cnn, 1 and 2 ranks) and search images/s (1 rank), median of --reps runs each.
# Prints a table (median A, median B, B/A) and writes CSV (and a PNG with gnuplot, when installed).
#   benchmarks/bench_builds.sh OLD_DPTRAIN NEW_DPTRAIN [--reps N] [--tag T]
set -euo pipefail
[ "${1:-}" = -h ] || [ "${1:-}" = --help ] && { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
[ $# -ge 2 ] || { echo "usage: bench_builds.sh OLD NEW [--reps N] [--tag T]" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2"); shift 2
reps=3 tag=builds
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "bench_builds.sh: unknown option '$1'" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/benchmarks/out"; mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$b" shard fashion-mnist --out "$tmp/fm" --shards 4 >/dev/null
csv="$out/bench_builds_$tag.csv"
echo "case,build,rep,rate" >"$csv"
cases=("train_mlp_np1|1|train --model mlp --limit 30000 --test-limit 100"
       "train_mlp_np2|2|train --model mlp --limit 30000 --test-limit 100"
       "train_cnn_np1|1|train --model cnn --limit 6000 --test-limit 100"
       "train_cnn_np2|2|train --model cnn --limit 6000 --test-limit 100"
       "search_darts_np1|1|search --layers 3 --channels 8 --limit 1024 --eval-limit 64")
rate() { # train: samples/s over the steps; search: weight-step images/s
  sed -n 's/.*train_samples_per_s=\([0-9.]*\).*/\1/p; s/.*train_images_per_s=\([0-9.]*\).*/\1/p' <<<"$1" | head -1
}
for c in "${cases[@]}"; do
  IFS='|' read -r name np args <<<"$c"
  for ((r = 1; r <= reps; r++)); do
    for which in A B; do
      bin=$a; [ "$which" = B ] && bin=$b
      # shellcheck disable=SC2086
      res=$(mpirun --oversubscribe --bind-to none -np "$np" "$bin" $args --data "$tmp/fm" --epochs 1 --seed 1 --quiet 2>&1)
      echo "$name,$which,$r,$(rate "$res")" >>"$csv"
    done
  done
done
printf '%-18s %12s %12s %8s\n' case "A median" "B median" "B/A"
awk -F, 'NR > 1 { v[$1 "," $2] = v[$1 "," $2] " " $4; seen[$1] = 1; order[++n] = $1 }
  function med(s,   x, k, i, j, t) { k = split(s, x, " "); for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
                                   return k % 2 ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2 }
  END { for (i = 1; i <= n; i++) { c = order[i]; if (done[c]++) continue
          ma = med(v[c ",A"]); mb = med(v[c ",B"]); printf "%-18s %12.1f %12.1f %8.3f\n", c, ma, mb, mb / ma } }' "$csv" | tee "$out/bench_builds_$tag.txt"
echo "csv: $csv"
if command -v gnuplot >/dev/null; then
  awk '{ if ($1 != "case") print NR, $1, $4 }' "$out/bench_builds_$tag.txt" >"$tmp/plot.dat"
  gnuplot -e "set terminal png size 800,400 noenhanced; set key top left; set output '$out/bench_builds_$tag.png'; set style data histograms;
    set style fill solid; set yrange [0.5:1.5]; set ylabel 'B / A (median rate)'; set xtics rotate by -20;
    plot '$tmp/plot.dat' using 3:xtic(2) title 'new build / old build'" && echo "plot: $out/bench_builds_$tag.png"
fi
