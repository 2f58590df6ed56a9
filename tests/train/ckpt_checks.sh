#!/usr/bin/env bash
# What a checkpoint holds is checked against the run that resumes from it (issue 24): the data set by its
# manifest's hash, every field of the state in range, each section of its exact size and once, the flags a
# search must keep named by flag. Checkpoints are forged by ckpt_forge through the project's own writer, so
# their checksums are valid. Every refusal leaves the checkpoint as it was.
# Usage: ckpt_checks.sh path/to/dptrain path/to/ckpt_forge
set -u
bin="$1" forge="$2"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
fails=0
die() { echo "FAIL: $*"; cat log 2>/dev/null; exit 1; }
fail() { echo "FAIL: $*"; sed 's/^/  | /' log; fails=$((fails + 1)); }
"$bin" shard fashion-mnist --out fm --shards 4 >log 2>&1 || die shard
train=(train --model mlp --data fm --limit 1000 --test-limit 200 --epochs 2 --seed 1 --quiet)
"$bin" "${train[@]}" --stop-after 5 --out run >log 2>&1 || die "first run"

# resume(EDIT...) -- PATTERN: a copy of run with its checkpoint forged by EDIT (none: as it is), resumed with
# the flags after EDIT's "--"; the exit status must be non-zero and stderr must match PATTERN (grep -E).
refused() {
    local edit=() extra=() pat
    while [ "$1" != "--" ]; do edit+=("$1"); shift; done
    shift
    while [ $# -gt 1 ]; do extra+=("$1"); shift; done
    pat="$1"
    rm -rf r && cp -r run r && rm -f r/checkpoint.dpc.*
    if [ ${#edit[@]} -gt 0 ]; then "$forge" run/checkpoint.dpc r/checkpoint.dpc "${edit[@]}" >log 2>&1 || die "forge ${edit[*]}"; fi
    cp r/checkpoint.dpc before.dpc
    "$bin" "${train[@]}" --out r --resume "${extra[@]}" >log 2>&1
    local rc=$?
    if [ "$rc" -eq 0 ]; then fail "[${edit[*]} ${extra[*]}] resumed (exit 0), want a refusal matching '$pat'"
    elif ! grep -Eq -- "$pat" log; then fail "[${edit[*]} ${extra[*]}] exit $rc without '$pat'"
    elif ! cmp -s before.dpc r/checkpoint.dpc; then fail "[${edit[*]} ${extra[*]}] the refusal changed the checkpoint"
    elif grep -Eq "runtime error|Sanitizer" log; then fail "[${edit[*]} ${extra[*]}] a sanitizer report"
    fi
}

# 1. The data: the same shards with two lines of the manifest swapped (same files, other order, other bits).
cp -r fm fm2
awk '/^shard train/ && !a {a = $0; next} /^shard train/ && a && !b {print; print a; b = 1; next} {print}' \
    fm/manifest.txt >fm2/manifest.txt
cmp -s fm/manifest.txt fm2/manifest.txt && die "the manifest's order did not change"
refused -- --data fm2 "other data: the manifest of --data fm2 hashes to [0-9a-f]{16}, the checkpoint was written on fm with manifest hash [0-9a-f]{16}"
# a checkpoint older than the manifest's hash resumes, with a warning that its data is not checked
rm -rf r && cp -r run r && rm -f r/checkpoint.dpc.*
"$forge" run/checkpoint.dpc r/checkpoint.dpc drop-line manifest >log 2>&1 || die "forge drop-line"
"$bin" "${train[@]}" --out r --resume >log 2>&1 || fail "an old checkpoint (no manifest) does not resume"
grep -q "warning: r/checkpoint.dpc names no data set" log || fail "an old checkpoint resumes without a warning"

# 2. Every field in range: the state (step, counters, loss scale), sections of exact size, each once.
refused state step 9223372036854775807 -- "state field 'step' out of range"
refused state step -1 -- "state field 'step' out of range"
refused state step 100 -- "state field 'step' out of range for this run: 100, more than the run's 32 steps"
refused state skipped 6 -- "state field 'skipped' out of range"
refused state skip_run 1000 -- "state field 'skip_run' out of range"
refused state loss_scale nan -- "state field 'loss_scale' out of range"
refused state loss_scale 4 -- "state field 'loss_scale' out of range"
refused state ep_correct 100000 -- "state field 'ep_correct' out of range"
refused i64 8 -1 -- "optimizer step count -1 out of range"
refused i64 8 6 -- "optimizer step count 6 out of range"
refused halve 6 -- "the streams section has [0-9]+ bytes, this run needs [0-9]+"
refused halve 5 -- "the optimizer section has [0-9]+ bytes, this run needs [0-9]+"
refused dup 3 -- "section tag 3 appears twice"
refused dup 6 -- "section tag 6 appears twice"
refused copy 8 30 -- "section 7 has tag 30, which this run does not read"
# a flag of the arithmetic named as the flag
refused -- --lr 0.1 "--lr is 0.1[0-9]* in this run, 0.05[0-9]* in the checkpoint"

# 3. search: a resume with another --lr or --arch-lr names the flag, not the configuration's key.
search=(search --data fm --layers 1 --channels 4 --limit 128 --batch 16 --epochs 2 --eval-limit 32 --seed 3 --quiet)
"$bin" "${search[@]}" --stop-after 1 --out s >log 2>&1 || die "search --stop-after 1"
for f in "--lr 0.05:--lr is 0.05 in this run, 0.025 in the checkpoint" \
         "--arch-lr 0.001:--arch-lr is 0.001 in this run, 0.0003 in the checkpoint" \
         "--arch-clip 3:--arch-clip is 3 in this run, 10 in the checkpoint" \
         "--t-end 0.5:--t-end is 0.5 in this run"; do
    cp s/search.dpc before.dpc
    # shellcheck disable=SC2086 # the flag and its value
    "$bin" "${search[@]}" --out s --resume ${f%%:*} >log 2>&1 && fail "search --resume ${f%%:*}: exit 0"
    grep -q -- "${f#*:}" log || fail "search --resume ${f%%:*}: the refusal does not say '${f#*:}'"
    cmp -s before.dpc s/search.dpc || fail "search --resume ${f%%:*}: the refusal changed the checkpoint"
done
rm -rf s2 && cp -r s s2 && rm -f s2/search.dpc.*
"$forge" s/search.dpc s2/search.dpc i64 8 -2 >log 2>&1 || die "forge search counters"
"$bin" "${search[@]}" --out s2 --resume >log 2>&1 && fail "a search checkpoint with last_prune -2 resumed"
grep -q "counters: 'last_prune' out of range" log || fail "search counters: the refusal does not name last_prune"

[ "$fails" -eq 0 ] || { echo "ckpt_checks: $fails failure(s)"; exit 1; }
echo "ckpt_checks: other data, forged fields and sections, and changed flags refused by name"
