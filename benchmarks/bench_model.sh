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
# TAG_summary.md (auto's efficiency at 64, 256, 1,024 and 4,096 nodes, a markdown table).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${DP_BUILD_DIR:-$root/build}"
out="$root/benchmarks/out"
mkdir -p "$out"
me=${0##*/}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
ab="$build/benchmarks/bench_alphabeta" model="$build/benchmarks/allreduce_model"
for x in "$ab" "$model"; do [ -x "$x" ] || { echo "$me: $x missing: build first (cmake --build build)" >&2; exit 1; }; done

np=2 max=64M vc="" compute="$root/benchmarks/model_compute.txt" tag=model
params=() scale_opts=()
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || { echo "$me: $1 needs a value (see the header of $0)" >&2; exit 2; }
  case "$1" in
    --np) np="$2" ;;
    --max-bytes) max="$2" ;;
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
            ring) lc='#1b9e77' ;; hier_ring) lc='#377eb8' ;; hier_rhd) lc='#ff7f00' ;; rabenseifner) lc='#e7298a' ;;
            recdoubling) lc='#a6761d' ;; tree) lc='#e41a1c' ;; auto) lc='#000000' ;; *) lc='#999999' ;;
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
