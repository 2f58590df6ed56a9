#!/usr/bin/env bash
# De-DSI on the Debian package index (made by launch/quickstart-dsi.sh's
# prepare step when missing): BM25, the centralised DSI (atomic and semantic
# docids) and ensembles of 2, 4 and 8 members (confidence and vote), all
# scored on the same test queries. Prints one table (Hits@1/5/10, MRR@10,
# training time, examples/s per rank, model size) and writes a CSV; --plot
# draws Hits@10 per method (gnuplot).
#
#   benchmarks/bench_dsi.sh [--data DIR] [--epochs N] [--members "2 4 8"]
#       [--docids "atomic semantic"] [--train-args "..."] [--semantic-args "..."] [--central-ranks P]
#       [--abstain ALPHA] [--tag NAME] [--latency] [--reuse] [--plot [FILE.png]]
#
# --data        dataset dir (default benchmarks/out/debian-dsi)
# --epochs      training epochs of every DSI model (default 10)
# --members     ensemble sizes (each trained with one rank per member: mpirun -np S)
# --docids      docid schemes of the centralised model (ensembles use the first)
# --train-args  extra dsi-train flags (the lever under test: --token-drop, --index-ratio, ...)
# --semantic-args  further flags for semantic-docid runs only (e.g. their own --lr)
# --central-ranks  ranks of the centralised model (data-parallel, default 2)
# --abstain     also score every ensemble with members abstaining by coverage (dsi-eval --abstain ALPHA)
# --latency     also time dsi-query over 1000 test queries with 4 members and 5 beams (p50/p99)
# --reuse       keep models already trained in the runs dir (an interrupted benchmark goes on;
#               every evaluation is redone)
#
# Logs: benchmarks/out/dsi-runs<tag>/; CSV: benchmarks/out/dsi<tag>.csv
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
me=bench_dsi
data="" epochs=10 members="2 4 8" docids="atomic semantic" train_args="" sem_args="" central_ranks=2 tag="" latency=0
plot="" reuse=0 abstain=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) need_arg "$@"; data="$2"; shift 2 ;;
    --epochs) need_arg "$@"; epochs="$2"; shift 2 ;;
    --members) [ $# -ge 2 ] || die "--members needs a value"; members="$2"; shift 2 ;;
    --docids) need_arg "$@"; docids="$2"; shift 2 ;;
    --train-args) [ $# -ge 2 ] || die "--train-args needs a value"; train_args="$2"; shift 2 ;;
    --semantic-args) [ $# -ge 2 ] || die "--semantic-args needs a value"; sem_args="$2"; shift 2 ;;
    --central-ranks) need_arg "$@"; central_ranks="$2"; shift 2 ;;
    --abstain) need_arg "$@"; abstain="$2"; shift 2 ;;
    --tag) need_arg "$@"; tag="_$2"; shift 2 ;;
    --latency) latency=1; shift ;;
    --reuse) reuse=1; shift ;;
    --plot) if [ $# -ge 2 ] && [ "${2#--}" = "$2" ]; then plot="$2"; shift 2; else plot=default; shift; fi ;;
    -h|--help) dp_usage; exit 0 ;;
    *) die "unknown flag $1 (--help lists them)" ;;
  esac
done
source "$(dirname "$0")/common.sh" --no-shards  # DSI data only: no Fashion-MNIST shards
data="${data:-$out/debian-dsi}"
if [ ! -f "$data/manifest.txt" ]; then
  DP_DSI_DATA="$data" DP_DSI_PREPARE_ONLY=1 "$root/launch/quickstart-dsi.sh" || die "preparing $data failed"
fi
runs="$out/dsi-runs$tag"; mkdir -p "$runs"
csv="$out/dsi$tag.csv"
echo "method,members,docids,queries,hits1,hits5,hits10,mrr10,train_s,q_per_s_rank,params_mb,epochs,train_args" >"$csv"
echo "$me: $(date -u +%FT%TZ) data=$data epochs=$epochs train_args='$train_args' semantic_args='$sem_args'" >&2
dp="$build/dptrain"; dp_need_built "$dp"

# eval_rows NAME MEMBERS DOCIDS TRAIN_S QPS MB LOG: the JSON lines of a dsi-eval log into the CSV
eval_rows() {
  local name="$1" m="$2" ids="$3" ts="$4" qps="$5" mb="$6" log="$7"
  grep '^{' "$log" | while read -r j; do
    local method q h1 h5 h10 mrr
    method=$(json_field method <<<"$j") q=$(json_field queries <<<"$j")
    h1=$(json_field hits1 <<<"$j") h5=$(json_field hits5 <<<"$j") h10=$(json_field hits10 <<<"$j")
    mrr=$(json_field mrr10 <<<"$j")
    [ "$name" = "-" ] && n="${method//,//}" || n="$name-${method%%[0-9]*}"   # bm25(k1,b): no comma in a CSV field
    echo "$n,$m,$ids,$q,$h1,$h5,$h10,$mrr,$ts,$qps,$mb,$epochs,\"$train_args\"" >>"$csv"
  done
}

# train S DOCIDS RUNDIR [NP]: trains S members on NP ranks (default one each), prints
# "train_s q_per_s params_mb" (slowest member / mean per rank / summed)
train() {
  local s="$1" ids="$2" run="$3" np="${4:-$1}" extra=""
  [ "$ids" = semantic ] && extra="$sem_args"
  if [ "$reuse" = 1 ] && [ -f "$run/member-$((s - 1))/model.dsi" ] && [ -s "$run.log" ]; then
    echo "$me: reusing $run" >&2
  else
    # shellcheck disable=SC2086
    dp_mpirun "$np" "$dp" dsi-train --data "$data" --members "$s" --docids "$ids" --epochs "$epochs" \
      --out "$run" --overwrite --eval-limit 2000 --quiet $train_args $extra >"$run.log" 2>"$run.err" ||
      { cat "$run.err" >&2; die "dsi-train failed ($run)"; }
  fi
  awk 'NR>1 {t = $7 > t ? $7 : t; q += $8; mb += $14; n++} END {printf "%.1f %.0f %.1f\n", t, q / n, mb}' "$run.log"
}

echo "$me: BM25" >&2
for kb in "0.9 0.4" "1.5 0.75"; do
  set -- $kb
  "$dp" dsi-eval --bm25 "$data" --test "$data/test.tsv" --k1 "$1" --b "$2" --json >"$runs/bm25_$1_$2.log"
  eval_rows - 0 - 0 0 0 "$runs/bm25_$1_$2.log"
done
for ids in $docids; do
  echo "$me: centralised DSI ($ids)" >&2
  read -r ts qps mb < <(train 1 "$ids" "$runs/central-$ids" "$central_ranks")
  "$dp" dsi-eval --run "$runs/central-$ids" --test "$data/test.tsv" --agg confidence --json >"$runs/central-$ids.eval"
  eval_rows "central" 1 "$ids" "$ts" "$qps" "$mb" "$runs/central-$ids.eval"
done
first=${docids%% *}
for s in $members; do
  echo "$me: ensemble of $s members ($first)" >&2
  read -r ts qps mb < <(train "$s" "$first" "$runs/ens$s")
  dp_mpirun "$(( s < 2 ? s : 2 ))" "$dp" dsi-eval --run "$runs/ens$s" --test "$data/test.tsv" --abstain 0 --json \
    >"$runs/ens$s.eval"  # De-DSI's merges as published: no member abstains (dsi-eval's default is 32)
  eval_rows "ens$s" "$s" "$first" "$ts" "$qps" "$mb" "$runs/ens$s.eval"
  if [ -n "$abstain" ]; then
    dp_mpirun "$(( s < 2 ? s : 2 ))" "$dp" dsi-eval --run "$runs/ens$s" --test "$data/test.tsv" --abstain "$abstain" \
      --json >"$runs/ens$s-abstain.eval"
    eval_rows "ens$s+abstain$abstain" "$s" "$first" "$ts" "$qps" "$mb" "$runs/ens$s-abstain.eval"
  fi
  if [ "$s" = 4 ]; then # one member alone, on its own test queries
    "$dp" dsi-eval --run "$runs/ens4" --only 0 --test "$data/m4/0/test.tsv" --json >"$runs/ens4-member0.eval"
    eval_rows "ens4-member0-own-test" 1 "$first" "$ts" "$qps" "$mb" "$runs/ens4-member0.eval"
  fi
done
if [ "$latency" = 1 ] && [ -d "$runs/ens4" ]; then
  head -n 1000 "$data/test.tsv" | cut -f1 >"$runs/latency-queries.txt" # (cut | head: SIGPIPE under pipefail)
  "$dp" dsi-query --run "$runs/ens4" --beams 5 --queries "$runs/latency-queries.txt" --latency >/dev/null 2>"$runs/latency.log"
  cat "$runs/latency.log" >&2
fi
column -s, -t <"$csv"
echo "$me: wrote $csv" >&2
if [ -n "$plot" ]; then
  [ "$plot" = default ] && plot="$out/dsi$tag.png"
  gnuplot -e "set terminal pngcairo size 900,500; set output '$plot'; set datafile separator ','; \
    set style data histograms; set style fill solid; set ylabel 'Hits@10'; set xtics rotate by -30; \
    plot '$csv' using 7:xtic(1) title 'Hits@10'" && echo "$me: wrote $plot" >&2
fi
