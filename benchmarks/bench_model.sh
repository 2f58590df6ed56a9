#!/usr/bin/env bash
# bench_model.sh: the cost model of issue 21 end to end. Measures alpha/beta/gamma with
# bench_alphabeta on this machine (and optionally across virtual nodes), then predicts with
# allreduce_model the weak-scaling efficiency of every compute-file model at 1..4,096 nodes x
# {1,8,32,64} ranks per node x {10,25,100} Gbit/s for each allreduce algorithm and `auto`.
#
#   benchmarks/bench_model.sh [--np 2] [--max-bytes 64M] [--vcluster "--nodes 2 --ranks-per-node 1 --rate 1gbit"]
#                             [--params FILE]... [--compute FILE] [--alpha-inter S] [--gbit 10,25,100]
#                             [--rpn 1,8,32,64] [--max-nodes 4096] [--bucket-mb 4] [--tag model]
#   --np P         ranks of the host measurement (intra-node alpha/beta; default 2)
#   --vcluster A   also measure across virtual nodes: launch/vcluster.sh A -- mpirun -np N*R bench_alphabeta
#                  (root only); its parameters are read after the host's, and allreduce_model time predicts
#                  that shape (TAG_vc_predict.txt) for comparison with bench_allreduce runs there
#   --params FILE  skip the host measurement and read FILE instead (repeatable, in order)
#   --compute FILE per-model compute times (default benchmarks/model_compute.txt: smoke figures, see there)
#   --alpha-inter S the inter-node latency for the 10/25/100 Gbit/s predictions (default: the model's
#                  assumed 10 us)
# Checking the model against a measured run (issue 21's 25% criterion), e.g. 2 nodes x 2 ranks at 1 Gbit/s:
#   launch/vcluster.sh --nodes 2 --ranks-per-node 2 --rate 1gbit -- mpirun -np 4 build/benchmarks/bench_allreduce \
#       --max 64M --csv benchmarks/out/ar_2x2.csv
#   build/benchmarks/allreduce_model check --params benchmarks/out/model_host.params \
#       --params benchmarks/out/model_vc.params --nodes 2 --rpn 2 --measured benchmarks/out/ar_2x2.csv
# Writes into benchmarks/out: TAG_host.params, TAG_vc.params, TAG.txt (tables), TAG.csv, TAG_rpnR.png,
# TAG_summary.md (auto's efficiency at 64, 256, 1,024 and 4,096 nodes, a markdown table), TAG_readme.md
# (allreduce_model scale's table of every algorithm and auto at those node counts).
#
# The whole validation (issue 21: the model within 25% of every point we can measure), one command:
#   benchmarks/bench_model.sh --validate [--shapes 1x2,2x1,2x2,4x1] [--rates 1gbit,10gbit] [--max-bytes 16M]
#                             [--budget 0.3] [--tag validate]
# For each shape NxR (1xR: this machine, no namespace; N >= 2: launch/vcluster.sh, root, at each rate):
# bench_alphabeta measures the parameters in that placement (TAG_NxR[_RATE].params), bench_allreduce times
# ring, rd, hier, hier-rd and MPI_Allreduce from 4 KiB to --max-bytes (x4), and allreduce_model check
# compares. Prints (and writes TAG_errors.md) the error of every point, (predicted - measured)/measured,
# and the rows within 25% per shape and algorithm. One rank has nothing to model (no message moves).
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --no-shards
# shellcheck source=usage.sh
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
ab="$build/benchmarks/bench_alphabeta" model="$build/benchmarks/allreduce_model"

np=2 max=64M vc="" compute="$root/benchmarks/model_compute.txt" tag=model
params=() scale_opts=() validate=0 shapes=1x2,2x1,2x2,4x1 rates=1gbit,10gbit budget=0.3 max_set=0
while [ $# -gt 0 ]; do
  case "$1" in -h|--help) dp_usage; exit 0 ;; esac
  [ "$1" = --validate ] && { validate=1; shift; continue; }
  [ $# -ge 2 ] || { echo "$me: $1 needs a value (see the header of $0)" >&2; exit 2; }
  case "$1" in
    --np) np="$2" ;;
    --max-bytes) max="$2"; max_set=1 ;;
    --shapes) shapes="$2" ;;
    --rates) rates="$2" ;;
    --budget) budget="$2" ;;
    --vcluster) vc="$2" ;;
    --params) params+=(--params "$2") ;;
    --compute) compute="$2" ;;
    --tag) tag="$2" ;;
    --alpha-inter|--gbit|--rpn|--max-nodes|--bucket-mb) scale_opts+=("$1" "$2") ;;
    *) echo "$me: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
[[ "$np" =~ ^[1-9][0-9]*$ ]] || { echo "$me: --np '$np': want a rank count" >&2; exit 2; }
[[ "$tag" =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "$me: --tag '$tag': letters, digits, _ . - only" >&2; exit 2; }
dp_need_built "$ab" "$model"

if [ "$validate" = 1 ]; then
  [ "$tag" = model ] && tag=validate
  [ "$max_set" = 1 ] || max=16M
  ar="$build/benchmarks/bench_allreduce"
  dp_need_built "$ar"
  [[ "$budget" =~ ^[0-9]*[.]?[0-9]+$ ]] || { echo "$me: --budget '$budget': seconds" >&2; exit 2; }
  IFS=, read -r -a shape_list <<<"$shapes"; IFS=, read -r -a rate_list <<<"$rates"
  for sh in "${shape_list[@]}"; do
    [[ "$sh" =~ ^([1-9][0-9]*)x([1-9][0-9]*)$ ]] || { echo "$me: --shapes: '$sh' is not NxR" >&2; exit 2; }
    [ "${BASH_REMATCH[1]}${BASH_REMATCH[2]}" != 11 ] || { echo "$me: --shapes: 1x1 moves no message: nothing to model" >&2; exit 2; }
    [ "${BASH_REMATCH[1]}" = 1 ] || [ "$(id -u)" -eq 0 ] || { echo "$me: --shapes $sh: the virtual cluster needs root" >&2; exit 2; }
  done
  ab_opts=(--factor 4 --min-bytes 4 --max-bytes "$max" --budget "$budget" --gamma-big 8M) # the same sizes x4 as below
  ar_opts=(--min 4K --max "$max" --factor 4 --iters 5 --cap 2 --warmup 2 --algos rd,hier,hier-rd)
  errs="$out/${tag}_errors.txt"; : > "$errs"
  for sh in "${shape_list[@]}"; do
    n=${sh%x*} r=${sh#*x}
    if [ "$n" = 1 ]; then runs=(host); else runs=("${rate_list[@]}"); fi
    for rate in "${runs[@]}"; do
      if [ "$rate" = host ]; then
        name="${tag}_${sh}" launch=(); where="this machine"
      else
        name="${tag}_${sh}_$rate" launch=("$root/launch/vcluster.sh" --nodes "$n" --ranks-per-node "$r" --rate "$rate" --)
        where="virtual cluster at $rate"
      fi
      echo "== $sh ($where): bench_alphabeta, bench_allreduce, allreduce_model check"
      "${launch[@]}" mpirun -np $((n * r)) --oversubscribe --bind-to none "$ab" "${ab_opts[@]}" --out "$out/$name.params" \
        > "$out/${name}_ab.txt" 2>&1 || { echo "$me: bench_alphabeta failed: $out/${name}_ab.txt" >&2; tail -5 "$out/${name}_ab.txt" >&2; exit 1; }
      "${launch[@]}" mpirun -np $((n * r)) --oversubscribe --bind-to none "$ar" "${ar_opts[@]}" --csv "$out/$name.csv" \
        > "$out/${name}_ar.txt" 2>&1 || { echo "$me: bench_allreduce failed: $out/${name}_ar.txt" >&2; tail -5 "$out/${name}_ar.txt" >&2; exit 1; }
      "$model" check --params "$out/$name.params" --nodes "$n" --rpn "$r" --measured "$out/$name.csv" > "$out/${name}_check.txt" ||
        { echo "$me: allreduce_model check failed" >&2; exit 1; }
      grep '^# intra\|^# flat\|^# gamma' "$out/${name}_check.txt"
      grep '^# .* rows' "$out/${name}_check.txt"
      awk -v sh="$sh" -v rate="${rate/host/-}" '$1 ~ /^[0-9]+$/ && $3 != "(skipped)" {
          e = $6; sub("%", "", e); print sh, rate, $3, $1, $4, $5, e }' "$out/${name}_check.txt" >> "$errs"
    done
  done
  # one row per shape, rate and algorithm; a column per size: the error in %, * where |error| > 25%
  awk '
    function h(b) { return b >= 1048576 ? b / 1048576 "M" : b / 1024 "K" }
    { k = $1 SUBSEP $2 SUBSEP $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
      if (!($4 in sz)) { sz[$4] = 1; sizes[++ns] = $4 }
      e[k, $4] = sprintf("%+.0f%s", $7, ($7 > 25 || $7 < -25) ? "*" : ""); tot++; ok += ($7 <= 25 && $7 >= -25) }
    END {
      for (i = 1; i <= ns; i++) for (j = i + 1; j <= ns; j++) if (sizes[j] + 0 < sizes[i] + 0) { t = sizes[i]; sizes[i] = sizes[j]; sizes[j] = t }
      printf "| shape | rate | algorithm |"; for (i = 1; i <= ns; i++) printf " %s |", h(sizes[i]); printf "\n"
      printf "|---|---|---|"; for (i = 1; i <= ns; i++) printf "---:|"; printf "\n"
      for (r = 1; r <= n; r++) { split(order[r], f, SUBSEP); printf "| %s | %s | %s |", f[1], f[2], f[3]
        for (i = 1; i <= ns; i++) printf " %s |", ((order[r], sizes[i]) in e) ? e[order[r], sizes[i]] : "-"; printf "\n" }
      printf "\nmodel error (predicted - measured) / measured in %%, * beyond 25%%: %d of %d points within 25%%\n", ok, tot
    }' "$errs" | tee "$out/${tag}_errors.md"
  echo "per-row detail: $out/${tag}_*_check.txt; parameters: $out/${tag}_*.params; error table: $out/${tag}_errors.md"
  exit 0
fi

if [ ${#params[@]} -eq 0 ]; then
  echo "== bench_alphabeta on this machine, $np ranks"
  mpirun -np "$np" --oversubscribe --bind-to none "$ab" --max-bytes "$max" --out "$out/${tag}_host.params" |
    tee "$out/${tag}_host.txt"
  params=(--params "$out/${tag}_host.params")
fi
if [ -n "$vc" ]; then
  # N*R from the vcluster arguments
  n=$(sed -n 's/.*--nodes[ =]\([0-9]*\).*/\1/p' <<<"$vc"); r=$(sed -n 's/.*--ranks-per-node[ =]\([0-9]*\).*/\1/p' <<<"$vc")
  [ -n "$n" ] || { echo "$me: --vcluster '$vc' has no --nodes N" >&2; exit 2; }
  r=${r:-1}
  echo "== bench_alphabeta on the virtual cluster: $vc ($((n * r)) ranks)"
  # shellcheck disable=SC2086  # vc is a list of vcluster options
  "$root/launch/vcluster.sh" $vc -- mpirun -np $((n * r)) "$ab" --max-bytes "$max" --out "$out/${tag}_vc.params" |
    tee "$out/${tag}_vc.txt"
  params+=(--params "$out/${tag}_vc.params")
  "$model" time "${params[@]}" --nodes "$n" --rpn "$r" --bytes 4K,64K,1M,4M,16M,64M | tee "$out/${tag}_vc_predict.txt"
fi

echo "== allreduce_model scale"
"$model" scale "${params[@]}" --compute "$compute" "${scale_opts[@]}" --csv "$out/$tag.csv" > "$out/$tag.txt"
echo "tables: $out/$tag.txt"
sed -n '/^## Predicted weak-scaling efficiency/,$p' "$out/$tag.txt" > "$out/${tag}_readme.md"
echo "README table (every algorithm and auto at 64, 256, 1,024, 4,096 nodes): $out/${tag}_readme.md"
# the README's question: what to expect at 64, 256, 1,024 and 4,096 nodes (auto's efficiency and its choice
# for the largest bucket)
awk -F, -v tag="$tag" '
  NR == 1 { next }
  $6 == "auto" && ($4 == 64 || $4 == 256 || $4 == 1024 || $4 == 4096) {
    k = $1 SUBSEP $2 SUBSEP $3; if (!(k in seen)) { seen[k] = 1; order[++n] = k }
    e[k, $4] = sprintf("%.2f %s", $8, $10)
  }
  END {
    print "| model | Gbit/s | ranks/node | 64 nodes | 256 | 1,024 | 4,096 |"
    print "|---|---|---|---|---|---|---|"
    for (i = 1; i <= n; i++) { split(order[i], f, SUBSEP)
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", f[1], f[2], f[3], e[order[i], 64], e[order[i], 256],
             e[order[i], 1024], e[order[i], 4096] }
    print ""; print "predicted weak-scaling efficiency T1/TP with auto (and its algorithm for the largest bucket); " \
      "allreduce_model, " tag
  }' "$out/$tag.csv" > "$out/${tag}_summary.md"
echo "summary: $out/${tag}_summary.md"

command -v gnuplot >/dev/null || { echo "$me: no gnuplot: no PNG (the CSV holds the numbers)"; exit 0; }
csv="$out/$tag.csv"
models=$(awk -F, 'NR > 1 && !s[$1]++ {print $1}' "$csv")
rates=$(awk -F, 'NR > 1 && !s[$2]++ {print $2}' "$csv")
rpns=$(awk -F, 'NR > 1 && !s[$3]++ {print $3}' "$csv")
algos=$(awk -F, 'NR > 1 && !s[$6]++ {print $6}' "$csv")
nm=$(wc -w <<<"$models") nr=$(wc -w <<<"$rates")
for rpn in $rpns; do
  png="$out/${tag}_rpn$rpn.png"
  {
    echo "set terminal pngcairo size $((420 * nr)),$((330 * nm)) noenhanced; set output \"$png\""
    echo "set datafile separator ','; set logscale x 2; set yrange [0:1.05]; set key bottom left font ',8'"
    echo "set grid; set xlabel 'nodes'; set ylabel 'efficiency T1/TP'"
    echo "set multiplot layout $nm,$nr title 'predicted weak-scaling efficiency, $rpn ranks per node (allreduce_model, $tag)'"
    first=1
    for m in $models; do
      for g in $rates; do
        # one legend, in the first panel: the same algorithms have the same colours in every panel
        if [ $first = 1 ]; then echo "set key bottom left font ',8'"; first=0; else echo "set key off"; fi
        echo "set title '$m, $g Gbit/s'"
        plots=""
        for a in $algos; do
          case "$a" in  # a colour per algorithm, the same in every panel
            ring) lc='#1b9e77' ;; hier) lc='#377eb8' ;; hier-rd) lc='#ff7f00' ;; rd) lc='#7570b3' ;;
            rabenseifner) lc='#e7298a' ;; recdoubling) lc='#a6761d' ;; tree) lc='#e41a1c' ;; mpi-ring) lc='#66a61e' ;;
            auto) lc='#000000' ;; *) lc='#999999' ;;
          esac
          w="lines lw 1.5 lc rgb '$lc'"; [ "$a" = auto ] && w="linespoints lw 2 pt 7 ps 0.5 dt 2 lc rgb '$lc'"
          plots="$plots${plots:+, }'< awk -F, \"\\\$1==\\\"$m\\\" && \\\$2==$g && \\\$3==$rpn && \\\$6==\\\"$a\\\"\" $csv' using 4:8 with $w title '$a'"
        done
        echo "plot $plots"
      done
    done
    echo "unset multiplot"
  } | gnuplot
  echo "plot: $png"
done
