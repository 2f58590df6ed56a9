#!/usr/bin/env bash
# Draws a run's loss and accuracy curves from runs/NAME/metrics.jsonl to
# runs/NAME/curves.png with gnuplot.
set -euo pipefail
run="${1:?usage: launch/plot.sh runs/NAME}"
m="$run/metrics.jsonl"
[ -s "$m" ] || { echo "plot: $m is missing or empty" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "plot: gnuplot is not installed (apt-get install gnuplot-nox)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# One JSON object per line, flat: pull named numeric fields into columns.
field() { sed -n "s/.*\"$1\":\([-0-9.eE+]*\).*/\1/p"; }
grep '"kind":"step"' "$m" > "$tmp/s" || true
grep '"kind":"epoch"' "$m" > "$tmp/e" || true
paste <(field step < "$tmp/s") <(field loss < "$tmp/s") > "$tmp/steps.dat"
paste <(field step < "$tmp/e") <(field train_loss < "$tmp/e") <(field test_loss < "$tmp/e") \
      <(field train_acc < "$tmp/e") <(field test_acc < "$tmp/e") > "$tmp/epochs.dat"
# a one-epoch run has a single epoch point: gnuplot warns about its empty x range
gnuplot 2> >(grep -v "empty x range" >&2) <<GP
set terminal pngcairo size 1200,450 noenhanced
set output "$run/curves.png"
set multiplot layout 1,2 title "$run"
set xlabel "step"; set ylabel "loss"; set grid
plot "$tmp/steps.dat" using 1:2 with lines title "train loss (mean of 50 steps)", \
     "$tmp/epochs.dat" using 1:3 with linespoints title "test loss"
set ylabel "accuracy"; set key bottom right
plot "$tmp/epochs.dat" using 1:4 with linespoints title "train acc", \
     "$tmp/epochs.dat" using 1:5 with linespoints title "test acc"
unset multiplot
GP
echo "plot: $run/curves.png"
