#!/usr/bin/env bash
# SIGTERM stops `search` (as `train`) after the current step with a checkpoint and exit 143; --resume
# then ends the search with the bits of one never stopped. Usage: signal_stop.sh path/to/dptrain
set -u
bin="$1"
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
