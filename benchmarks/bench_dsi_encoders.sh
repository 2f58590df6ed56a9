#!/usr/bin/env bash
# The DSI query encoders side by side on one small Debian subset: for each
# encoder, the centralised model trained on --ranks ranks, then its training
# examples/s per rank, test Hits@1/10, model size, and dsi-query's latency
# (p50/p99 over --latency-queries test queries, one rank, --beams beams).
# Prints one table and writes a CSV.
#
#   benchmarks/bench_dsi_encoders.sh [--data DIR] [--limit-docs N] [--epochs N]
#       [--encoders "bag transformer"] [--ranks P] [--beams N] [--latency-queries N]
#       [--lexical "off on"] [--train-args "..."] [--tag NAME]
#
# --data        dataset dir (default benchmarks/out/debian-dsi-<limit-docs>; made with
#               launch/quickstart-dsi.sh's prepare step, --limit-docs N, when missing)
# --limit-docs  documents of the subset (default 2000)
# --epochs      training epochs (default 2)
# --encoders    the --encoder values to compare (default "bag transformer")
# --ranks       ranks of each training run (default 1)
# --lexical     the --lexical values to run with every encoder (default: dsi-train's own, auto)
# --train-args  extra dsi-train flags for every run (e.g. "--embed 64 --layers 1")
#
# Logs: benchmarks/out/dsi-encoders<tag>/; CSV: benchmarks/out/dsi-encoders<tag>.csv
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
me=bench_dsi_encoders
data="" limit=2000 epochs=2 encoders="bag transformer" ranks=1 beams=10 nlat=500 train_args="" tag="" lexicals=auto
dp_flags "$me" "--data=data --limit-docs=limit --epochs=epochs --encoders=encoders --ranks=ranks --beams=beams
  --latency-queries=nlat --lexical=lexicals --train-args=train_args --tag=tag" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --no-shards
dp="$build/dptrain"
dp_need_built "$dp"
data="${data:-$out/debian-dsi-$limit}"
if [ ! -f "$data/manifest.txt" ]; then
  DP_DSI_DATA="$data" DP_DSI_PREPARE_ONLY=1 "$root/launch/quickstart-dsi.sh" --limit-docs "$limit" ||
    die "preparing $data failed"
fi
runs="$out/dsi-encoders${tag:+_$tag}"; mkdir -p "$runs"
csv="$out/dsi-encoders${tag:+_$tag}.csv"
echo "encoder,lexical,ranks,epochs,docs,train_q,train_s,q_per_s_rank,test_hits1,test_hits10,params_mb,p50_ms,p99_ms,train_args" >"$csv"
head -n "$nlat" "$data/test.tsv" | cut -f1 >"$runs/latency-queries.txt" || true
echo "$me: $(date -u +%FT%TZ) data=$data epochs=$epochs ranks=$ranks train_args='$train_args'" >&2
for enc in $encoders; do for lex in $lexicals; do
  run="$runs/$enc-lexical-$lex"
  rm -rf "$run"
  # shellcheck disable=SC2086
  mpirun -np "$ranks" --oversubscribe -x OPENBLAS_NUM_THREADS=1 "$dp" dsi-train --data "$data" --encoder "$enc" \
    --lexical "$lex" --epochs "$epochs" --quiet --out "$run" $train_args >"$run.log" 2>&1 ||
    die "training $enc (lexical $lex) failed: $(tail -3 "$run.log")"
  read -r _ _ docs tq _ _ ts qps _ _ _ _ _ mb <<<"$(grep -E '^0 ' "$run.log" | tail -1)"
  # dsi-eval's figures, not dsi-train's: its end-of-run evaluation reads a lexical head's query words only up
  # to the first one the indexed text lacks, so it under-reports a model with a lexical head
  "$dp" dsi-eval --run "$run" --test "$data/test.tsv" --agg confidence --json >"$run.eval" ||
    die "evaluating $enc (lexical $lex) failed"
  h1=$(json_field hits1 <"$run.eval") h10=$(json_field hits10 <"$run.eval")
  "$dp" dsi-query --run "$run" --beams "$beams" --queries "$runs/latency-queries.txt" --latency >/dev/null 2>"$run.latency"
  p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' "$run.latency") p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' "$run.latency")
  echo "$enc,$lex,$ranks,$epochs,$docs,$tq,$ts,$qps,$h1,$h10,$mb,$p50,$p99,\"$train_args\"" >>"$csv"
done; done
column -s, -t <"$csv"
echo "$me: CSV $csv (one run each: timings are noisy; compare on a quiet machine)" >&2
