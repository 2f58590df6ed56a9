#!/usr/bin/env bash
# SIGTERM stops `search` (as `train`) after the current step with a checkpoint and exit 143; --resume
# then ends the search with the bits of one never stopped. With mpiexec: SIGTERM to one rank that is not
# rank 0 stops every rank with a checkpoint and the job exits 143 too (rank 0 exits with the agreed signal).
# Usage: signal_stop.sh path/to/dptrain [path/to/mpiexec]
set -u
bin="$1" mpiexec="${2:-}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
die() { echo "FAIL: $*"; cat log 2>/dev/null; exit 1; }
"$bin" shard fashion-mnist --out fm --shards 4 >log 2>&1 || die shard
flags=(search --data fm --layers 2 --channels 4 --limit 1024 --batch 16 --epochs 2 --eval-limit 64 --seed 3 --quiet)
"$bin" "${flags[@]}" --out whole >whole.log 2>&1 || die "search without a stop"
# signalled once the run directory exists (the handler is in place by then): it stops after a step
"$bin" "${flags[@]}" --out s >log 2>&1 &
for _ in $(seq 600); do [ -e s/metrics.jsonl ] && break; sleep 0.1; done
kill -TERM $!; wait $!; rc=$?
[ "$rc" -eq 143 ] || die "stopped search: exit $rc, want 143"
grep -q "stopped after epoch" log && [ -s s/search.dpc ] || die "no checkpoint after SIGTERM"
"$bin" "${flags[@]}" --out s --resume >log 2>&1 || die "resume"
hash() { sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' "$1"; }
[ "$(hash log)" = "$(hash whole.log)" ] || die "resumed search ends at $(hash log), one never stopped at $(hash whole.log)"
echo "signal_stop: search stopped by SIGTERM (exit 143), resumed to the same bits"
[ -n "$mpiexec" ] || exit 0

# train at 2 ranks, SIGTERM to rank 1 only: the stop is agreed, rank 0 writes the checkpoint and exits 143
train=(train --model mlp --data fm --limit 16384 --test-limit 256 --epochs 2 --seed 1 --quiet)
"$mpiexec" -np 2 "$bin" "${train[@]}" --out m >log 2>&1 &
job=$!
for _ in $(seq 600); do [ -e m/metrics.jsonl ] && break; sleep 0.1; done
rank1=
for _ in $(seq 100); do
    for p in $(pgrep -P "$job"); do
        tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && rank1=$p
    done
    [ -n "$rank1" ] && break
    sleep 0.1
done
[ -n "$rank1" ] || { kill "$job"; die "rank 1 of the mpiexec job not found"; }
kill -TERM "$rank1"; wait "$job"; rc=$?
[ "$rc" -eq 143 ] || die "2 ranks, SIGTERM to rank 1: the job exits $rc, want 143"
grep -q "^stopped: steps=" log && [ -s m/checkpoint.dpc ] || die "2 ranks, SIGTERM to rank 1: no checkpoint"
"$mpiexec" -np 2 "$bin" "${train[@]}" --out m --resume >log 2>&1 || die "2 ranks: resume"
grep -q "^final: epochs=2" log || die "2 ranks: the resumed run did not finish"
echo "signal_stop: 2 ranks, SIGTERM to rank 1: checkpoint, exit 143, resumed"
