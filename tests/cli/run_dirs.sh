#!/usr/bin/env bash
# A run directory (--out of train, search, dsi-train) belongs to one run (issue 24):
#   1. a second run on a locked --out is refused at start-up naming the holder (host, pid), at 1 and 2 ranks;
#   2. an --out holding a run is refused without --resume, naming --resume and --overwrite; --overwrite
#      starts over;
#   3. a damaged checkpoint.dpc that --resume falls back from is kept aside, and the good older one survives
#      the next checkpoint;
#   4. symbolic links at the files a run writes (checkpoint.dpc.tmp, metrics.jsonl, lock, alpha.csv) are
#      refused, their targets untouched;
#   5. --out "" is refused;
#   6. --resume of a finished run says so with its last figures, exit 1.
# Usage: run_dirs.sh path/to/dptrain path/to/mpiexec
set -u
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"
bg=""
cleanup() { [ -n "$bg" ] && kill "$bg" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
mpi_timeout=120
md5() { md5sum <"$1" | cut -c1-32; }

"$bin" shard fashion-mnist --out fm --shards 2 >log 2>&1 || { echo "FAIL: shard"; cat log; exit 1; }
awk 'BEGIN { srand(7); for (d = 0; d < 60; d++) for (q = 0; q < 4; q++) printf "w%d w%dx q%d\tdoc%d\n", d, d, q, d }' >q.tsv
"$bin" dsi-prepare --queries q.tsv --out dsi --buckets 4096 >log 2>&1 || { echo "FAIL: dsi-prepare"; cat log; exit 1; }
train=(train --data fm --model mlp --limit 2000 --test-limit 200 --quiet --seed 1)
search=(search --data fm --layers 2 --channels 4 --limit 256 --batch 16 --epochs 1 --eval-limit 16 --quiet)
dsi=(dsi-train --data dsi --epochs 1 --batch 32 --embed 16 --hidden 32 --embed-rows 4096 --quiet --eval-limit 20)

# 1. the lock: a long run holds "same"; a second train (1 and 2 ranks), a search and a dsi-train are refused
"$bin" "${train[@]}" --epochs 1000 --out same >bg.log 2>&1 &
bg=$!
for _ in $(seq 600); do [ -s same/lock ] && break; sleep 0.1; done
out=$("$bin" "${train[@]}" --epochs 1 --seed 2 --out same 2>&1); rc=$?
if [ "$rc" -ne 0 ] && grep -q "same: in use by another run (host $(hostname), pid $bg; lock file same/lock)" <<<"$out"; then
  ok "second train on a locked --out | exit $rc: $out"
else
  bad "second train on a locked --out: exit $rc, output: $out"
fi
out=$(mpi 2 "$bin" "${train[@]}" --epochs 1 --out same 2>&1); rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ "$(grep -c "in use by another run (host .*, pid $bg" <<<"$out")" -eq 1 ]; then
  ok "second train at 2 ranks | exit $rc, said once"
else
  bad "second train at 2 ranks: exit $rc, output: $out"
fi
out=$("$bin" "${search[@]}" --out same 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "in use by another run (host .*, pid $bg" <<<"$out" && ok "search on a locked --out | exit $rc" ||
  bad "search on a locked --out: exit $rc, output: $out"
kill -TERM "$bg"; wait "$bg"; bg=""
[ -e same/lock ] && [ ! -s same/lock ] && ok "the lock file names no one once its run has ended" || bad "lock file after the run: $(cat same/lock)"
[ "$(grep -c '"kind":"epoch","epoch":1,' same/metrics.jsonl)" -le 1 ] || bad "the second run wrote into the first one's metrics.jsonl"
mkdir -p dl/member-0
flock dl/member-0/lock sleep 30 &
bg=$!
sleep 0.5
out=$("$bin" "${dsi[@]}" --out dl 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "dl/member-0: in use by another run" <<<"$out" && ok "dsi-train on a locked --out | exit $rc" ||
  bad "dsi-train on a locked --out: exit $rc, output: $out"
kill "$bg"; wait "$bg" 2>/dev/null; bg=""

# 2. no silent clobbering; --overwrite starts over
"$bin" "${train[@]}" --epochs 1 --out x >log 2>&1 || { cat log; bad "train x"; }
sums="$(md5 x/checkpoint.dpc) $(md5 x/metrics.jsonl)"
out=$("$bin" "${train[@]}" --epochs 1 --seed 2 --out x 2>&1); rc=$?
if [ "$rc" -ne 0 ] && grep -q "x: holds a run already (x/checkpoint.dpc): --resume continues it, --overwrite starts over" <<<"$out" &&
   [ "$(md5 x/checkpoint.dpc) $(md5 x/metrics.jsonl)" = "$sums" ]; then
  ok "train on an --out holding a run, without --resume | exit $rc, checkpoint and metrics unchanged"
else
  bad "train on a finished --out: exit $rc, output: $out"
fi
out=$("$bin" "${train[@]}" --epochs 1 --seed 2 --out x --overwrite 2>&1); rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c '"kind":"epoch"' x/metrics.jsonl)" -eq 1 ] && [ "$(md5 x/checkpoint.dpc)" != "${sums%% *}" ]; then
  ok "--overwrite starts over (one run's metrics, a new checkpoint)"
else
  bad "--overwrite: exit $rc, output: $out"
fi
out=$("$bin" "${train[@]}" --out x --overwrite --resume 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--overwrite and --resume exclude each other" <<<"$out" && ok "--overwrite with --resume refused" ||
  bad "--overwrite --resume: exit $rc, output: $out"
mkdir e; : >e/metrics.jsonl # a run that ended before its first line leaves nothing to lose
"$bin" "${train[@]}" --epochs 1 --out e >log 2>&1 && ok "an empty metrics.jsonl is no run" || bad "empty metrics.jsonl: $(cat log)"
mkdir -p s d/member-0
echo '{"kind":"epoch"}' >s/metrics.jsonl
echo '{"epoch":1}' >d/member-0/metrics.jsonl
out=$("$bin" "${search[@]}" --out s 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "s: holds a run already (s/metrics.jsonl).*--overwrite" <<<"$out" && [ "$(cat s/metrics.jsonl)" = '{"kind":"epoch"}' ] &&
  ok "search on an --out holding a run | exit $rc" || bad "search on an --out holding a run: exit $rc, output: $out"
out=$("$bin" "${dsi[@]}" --out d 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "d/member-0: holds a run already (d/member-0/metrics.jsonl).*--overwrite" <<<"$out" &&
  ok "dsi-train on an --out holding a run | exit $rc" || bad "dsi-train on an --out holding a run: exit $rc, output: $out"
out=$("$bin" "${dsi[@]}" --out d --overwrite 2>&1); rc=$?
[ "$rc" -eq 0 ] && [ -s d/member-0/model.dsi ] && ! grep -q '^{"epoch":1}$' d/member-0/metrics.jsonl &&
  ok "dsi-train --overwrite" || bad "dsi-train --overwrite: exit $rc, output: $out"

# 3. a damaged newest checkpoint: resume falls back to .1, keeps the damaged file aside, and .1 survives
ck=(--epochs 2 --checkpoint-every 3 --keep-checkpoints 2)
"$bin" "${train[@]}" "${ck[@]}" --stop-after 6 --out fb >log 2>&1 || { cat log; bad "train fb"; }
good=$(md5 fb/checkpoint.dpc.1)
truncate -s 100 fb/checkpoint.dpc
out=$("$bin" "${train[@]}" "${ck[@]}" --stop-after 5 --out fb --resume 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q "resuming from the older fb/checkpoint.dpc.1" <<<"$out" && [ -f fb/checkpoint.dpc.1 ] &&
   [ "$(md5 fb/checkpoint.dpc.1)" = "$good" ] && [ "$(stat -c %s fb/checkpoint.dpc.damaged)" -eq 100 ]; then
  ok "fall-back: the damaged file kept as checkpoint.dpc.damaged, the good .1 kept"
else
  bad "fall-back: exit $rc, files: $(ls -l fb | tr '\n' ' '), output: $out"
fi
truncate -s 100 fb/checkpoint.dpc
out=$("$bin" "${train[@]}" "${ck[@]}" --out fb --resume 2>&1); rc=$?
[ "$rc" -eq 0 ] && [ -s fb/checkpoint.dpc.damaged.1 ] && ok "a second damaged file kept as .damaged.1; the run ends" ||
  bad "second fall-back: exit $rc, files: $(ls fb | tr '\n' ' '), output: $out"

# 4. symbolic links where a run writes
echo victim >victim.txt; echo victim2 >victim2.txt; echo victim3 >victim3.txt
mkdir run; ln -s "$PWD/victim.txt" run/checkpoint.dpc.tmp; ln -s "$PWD/victim2.txt" run/metrics.jsonl
out=$("$bin" "${train[@]}" --epochs 1 --out run 2>&1); rc=$?
[ "$rc" -ne 0 ] && [ "$(cat victim.txt victim2.txt)" = "$(printf 'victim\nvictim2')" ] &&
  ok "links at checkpoint.dpc.tmp and metrics.jsonl (the issue's case) | exit $rc: $out" || bad "links: exit $rc, output: $out"
mkdir tl; ln -s "$PWD/victim.txt" tl/checkpoint.dpc.tmp
out=$("$bin" "${train[@]}" --epochs 1 --out tl 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "tl/checkpoint.dpc.tmp: a symbolic link is in the way of the temporary file: refused" <<<"$out" &&
  [ "$(cat victim.txt)" = victim ] && ok "link at checkpoint.dpc.tmp | exit $rc" || bad "link at the temp file: exit $rc, output: $out"
"$bin" "${train[@]}" --epochs 2 --stop-after 3 --out ml >log 2>&1
rm ml/metrics.jsonl; ln -s "$PWD/victim2.txt" ml/metrics.jsonl
out=$("$bin" "${train[@]}" --epochs 2 --out ml --resume 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "ml/metrics.jsonl: a symbolic link: refused" <<<"$out" && [ "$(cat victim2.txt)" = victim2 ] &&
  ok "link at metrics.jsonl on --resume | exit $rc" || bad "link at metrics.jsonl: exit $rc, output: $out"
mkdir ll; ln -s "$PWD/victim3.txt" ll/lock
out=$("$bin" "${train[@]}" --epochs 1 --out ll 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "ll/lock: a symbolic link: refused" <<<"$out" && [ "$(cat victim3.txt)" = victim3 ] &&
  ok "link at the lock file | exit $rc" || bad "link at the lock: exit $rc, output: $out"
mkdir sl; ln -s "$PWD/victim3.txt" sl/alpha.csv
out=$("$bin" "${search[@]}" --out sl 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "sl/alpha.csv: a symbolic link: refused" <<<"$out" && [ "$(cat victim3.txt)" = victim3 ] &&
  ok "link at a search output | exit $rc" || bad "link at alpha.csv: exit $rc, output: $out"

# 5. --out ""
for cmd in train search dsi-train; do
  out=$("$bin" "$cmd" --out "" 2>&1); rc=$?
  [ "$rc" -eq 2 ] && grep -q -- "--out: an empty value" <<<"$out" && ok "$cmd --out \"\" | exit $rc: $out" ||
    bad "$cmd --out \"\": exit $rc, output: $out"
done

# 6. resuming a finished run (x, trained above with --overwrite): exit 1 with its last epoch; --epochs 2 goes on
out=$("$bin" "${train[@]}" --epochs 1 --seed 2 --out x --resume 2>&1); rc=$?
if [ "$rc" -eq 1 ] && grep -q "x/checkpoint.dpc: this run is complete (1 of 1 epochs, step 32): nothing to resume; its last epoch in metrics.jsonl: .*\"test_acc\"" <<<"$out" &&
   ! grep -q "^final:" <<<"$out"; then
  ok "--resume of a finished run | exit $rc"
else
  bad "--resume of a finished run: exit $rc, output: $out"
fi
out=$("$bin" "${train[@]}" --epochs 2 --seed 2 --out x --resume 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "^final: epochs=2 steps=64" <<<"$out" && ok "a finished run goes on with more --epochs" ||
  bad "more --epochs: exit $rc, output: $out"

tally_done run_dirs
