#!/usr/bin/env bash
# Stragglers (issue 21): --rank-times, the delay fault and local SGD (--sync-every).
# - --sync-every 1 ends with the bits of a run without the flag (1 and 2 ranks);
# - --sync-every H at 2 ranks: the replica check at every sync passes (the replicas are averaged to the same
#   bits), with H dividing the epoch and not; the run differs from H=1 (local steps happened), learns (test
#   accuracy well above chance, the second epoch's train loss below the first's), a run stopped at a sync
#   and resumed ends with the bits of one never stopped, and a NaN on one rank in a local step stops every
#   rank at the next sync;
# - refusals: --sync-every 0 / x (exit 2), with --on-nonfinite skip, with a --stop-after not a multiple of H,
#   search --sync-every 2 (non-zero, naming the flag);
# - --rank-times step: one "ranks" record per step with one value per rank, all >= 0, and an epoch summary;
#   DP_FAULT=delay@step:rank=R:ms=40 makes rank R (R = 1, then 0) the slowest in >= 75% of the steps (a
#   ratio, not a timed bound), the end-of-run summary names it, and the epoch's lost_s (slowest compute less the
#   median, mean per step) is at least 8 ms (half the sleep's 40 ms gap, loosely); with :p=0.5 (jitter) each rank is the
#   slowest in some steps; a p outside (0, 1], or p on another action, is refused.
#   straggler.sh path/to/dptrain MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"
hash_of() { sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' "$1"; }
field() { sed -n "s/.* $1=\([-0-9.e]*\).*/\1/p" "$2"; }

"$bin" shard fashion-mnist --out fm --shards 4 >log 2>&1 || { cat log; exit 1; }
train=(train --data fm --model mlp --limit 1000 --epochs 1 --test-limit 200 --seed 3 --quiet)

# --- --sync-every 1 = today's gradient averaging, bit for bit
for np in 1 2; do
  mpi "$np" "$bin" "${train[@]}" >a.log 2>&1 || { bad "np $np: $(cat a.log)"; continue; }
  mpi "$np" "$bin" "${train[@]}" --sync-every 1 >b.log 2>&1 || { bad "np $np --sync-every 1: $(cat b.log)"; continue; }
  [ -n "$(hash_of a.log)" ] && [ "$(hash_of a.log)" = "$(hash_of b.log)" ] && ok ||
    bad "np $np: --sync-every 1 params_xxh3 $(hash_of b.log), without the flag $(hash_of a.log)"
done

# --- local SGD at 2 ranks (8 steps an epoch)
two=("${train[@]}" --epochs 2)
mpi 2 "$bin" "${two[@]}" >h1.log 2>&1 || bad "2 epochs, H=1: $(cat h1.log)"
for h in 4 3; do
  mpi 2 "$bin" "${two[@]}" --sync-every "$h" --check-replicas 1 --out "h$h" >"h$h.log" 2>&1 ||
    { bad "--sync-every $h --check-replicas 1: $(cat "h$h.log")"; continue; }
  ok
  [ "$(hash_of "h$h.log")" != "$(hash_of h1.log)" ] && ok || bad "--sync-every $h ends with H=1's bits: no local steps?"
  acc=$(field test_acc "h$h.log")
  awk -v a="$acc" 'BEGIN { exit !(a != "" && a > 0.5) }' && ok || bad "--sync-every $h: test_acc $acc (chance 0.1)"
  l1=$(sed -n 's/.*"kind":"epoch","epoch":1,.*"train_loss":\([-0-9.e]*\).*/\1/p' "h$h/metrics.jsonl")
  l2=$(sed -n 's/.*"kind":"epoch","epoch":2,.*"train_loss":\([-0-9.e]*\).*/\1/p' "h$h/metrics.jsonl")
  awk -v a="$l1" -v b="$l2" 'BEGIN { exit !(a != "" && b != "" && b < a) }' && ok ||
    bad "--sync-every $h: train_loss epoch 1 '$l1', epoch 2 '$l2' (must fall)"
done
# stopped at a sync (step 4) and resumed: the bits of the run never stopped
mpi 2 "$bin" "${two[@]}" --sync-every 4 --out s --stop-after 4 >s1.log 2>&1
grep -q "^stopped: steps=4" s1.log && ok || bad "--stop-after 4 --sync-every 4: $(cat s1.log)"
mpi 2 "$bin" "${two[@]}" --sync-every 4 --out s --resume >s2.log 2>&1 || bad "--resume --sync-every 4: $(cat s2.log)"
[ -n "$(hash_of s2.log)" ] && [ "$(hash_of s2.log)" = "$(hash_of h4.log)" ] && ok ||
  bad "stopped at step 4 and resumed: params_xxh3 $(hash_of s2.log), never stopped $(hash_of h4.log)"
mpi 2 "$bin" "${two[@]}" --sync-every 2 --out s --resume >s3.log 2>&1
[ $? -ne 0 ] && grep -q -- "--sync-every" s3.log && ok || bad "--resume with another --sync-every: $(cat s3.log)"

# a NaN on rank 1 at local step 3: every rank stops at the sync of step 4, naming it, no hang
DP_FAULT=nan@forward:rank=1:step=3 timeout 60 "$mpiexec" -np 2 "$bin" "${train[@]}" --sync-every 4 >n.log 2>&1
rc=$?; [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q "step 4 (epoch 1): 1 non-finite local step(s) since the last parameter average" n.log &&
  ok || bad "NaN at local step 3, --sync-every 4: exit $rc: $(cat n.log)"

# --- refusals
for v in 0 x -1; do
  "$bin" "${train[@]}" --sync-every "$v" >r.log 2>&1
  rc=$?; [ $rc -eq 2 ] && grep -q -- "--sync-every" r.log && ok || bad "--sync-every $v: exit $rc: $(cat r.log)"
done
"$bin" "${train[@]}" --sync-every 2 --on-nonfinite skip >r.log 2>&1
rc=$?; [ $rc -eq 2 ] && grep -q -- "--on-nonfinite stop" r.log && ok || bad "--sync-every 2 --on-nonfinite skip: exit $rc: $(cat r.log)"
"$bin" "${train[@]}" --sync-every 4 --out o --stop-after 6 >r.log 2>&1
rc=$?; [ $rc -eq 2 ] && grep -q -- "not a multiple of --sync-every 4" r.log && ok || bad "--stop-after 6 --sync-every 4: exit $rc: $(cat r.log)"
"$bin" search --data fm --strategy darts --layers 2 --channels 4 --limit 64 --batch 16 --epochs 1 --eval-limit 16 \
  --quiet --sync-every 2 >r.log 2>&1
rc=$?; [ $rc -ne 0 ] && grep -q -- "--sync-every 2: search has no local SGD" r.log && ok || bad "search --sync-every 2: exit $rc: $(cat r.log)"
"$bin" "${train[@]}" --rank-times sometimes >r.log 2>&1
rc=$?; [ $rc -eq 2 ] && grep -q -- "--rank-times" r.log && ok || bad "--rank-times sometimes: exit $rc: $(cat r.log)"

# --- --rank-times: well-formed records; a delayed rank is the slowest
# check_records DIR STEPS: every "ranks" record has 2 compute and 2 wait values >= 0, one record per step
check_records() {
  awk -v steps="$2" '
    /"kind":"ranks"/ {
      n++
      for (k = 1; k <= 2; k++) {
        key = k == 1 ? "compute_s" : "wait_s"
        s = $0; sub(".*\"" key "\":\\[", "", s); sub("\\].*", "", s)
        m = split(s, v, ",")
        if (m != 2) { print "record " n ": " key " has " m " values"; bad = 1 }
        for (i = 1; i <= m; i++) if (v[i] !~ /^[0-9.e+-]+$/ || v[i] + 0 < 0) { print "record " n ": " key " " v[i]; bad = 1 }
      }
    }
    /"kind":"ranks_epoch"/ { e++ }
    END { if (n != steps) print n " ranks records for " steps " steps"; if (!e) print "no ranks_epoch record"
          exit bad || n != steps || !e }' "$1/metrics.jsonl"
}
for r in 1 0; do
  DP_FAULT=delay@step:rank=$r:ms=40 mpi 2 "$bin" "${train[@]}" --rank-times step --out "t$r" >"t$r.log" 2>&1 ||
    { bad "delay on rank $r: $(cat "t$r.log")"; continue; }
  out=$(check_records "t$r" 8) && ok || bad "rank $r delayed: records: $out"
  # slowest_steps of the epoch summary: [rank 0's, rank 1's]
  counts=$(sed -n 's/.*"kind":"ranks_epoch".*"slowest_steps":\[\([0-9,]*\)\].*/\1/p' "t$r/metrics.jsonl")
  awk -v c="$counts" -v r="$r" 'BEGIN { split(c, v, ","); exit !(v[r + 1] >= 0.75 * (v[1] + v[2]) && v[1] + v[2] == 8) }' && ok ||
    bad "rank $r delayed 40 ms a step: slowest_steps [$counts]"
  grep -q "rank times: slowest rank $r in" "t$r.log" && ok || bad "rank $r delayed: summary: $(cat "t$r.log")"
  # at 2 ranks the cost is half the gap: ~20 ms of the 40 (a lower bound from a sleep, loosely)
  lost=$(sed -n 's/.*"kind":"ranks_epoch".*"lost_s":\([0-9.e+-]*\)}.*/\1/p' "t$r/metrics.jsonl")
  awk -v l="$lost" 'BEGIN { exit !(l != "" && l >= 0.008) }' && ok || bad "rank $r delayed 40 ms: lost_s '$lost' (want >= 0.008)"
done
# a delay needs its length
DP_FAULT=delay@step:rank=1 "$bin" "${train[@]}" >r.log 2>&1
grep -q "ignoring DP_FAULT='delay@step:rank=1'" r.log && ok || bad "delay without ms: $(cat r.log)"
DP_FAULT=delay@step:ms=5:p=1.5 "$bin" "${train[@]}" >r.log 2>&1
grep -q "ignoring DP_FAULT='delay@step:ms=5:p=1.5'" r.log && ok || bad "delay with p=1.5: $(cat r.log)"
DP_FAULT=hang@step:p=0.5 "$bin" "${train[@]}" >r.log 2>&1
grep -q "ignoring DP_FAULT='hang@step:p=0.5'" r.log && ok || bad "hang with p: $(cat r.log)"
# jitter: each rank delayed on about half its steps (a hash of rank and step), so neither is always slowest
DP_FAULT=delay@step:ms=40:p=0.5 mpi 2 "$bin" "${train[@]}" --epochs 2 --rank-times epoch --out j >j.log 2>&1 ||
  bad "jitter: $(cat j.log)"
jc=$(sed -n 's/.*"kind":"ranks_epoch".*"slowest_steps":\[\([0-9,]*\)\].*/\1/p' j/metrics.jsonl | tr '\n' ',')
awk -v c="$jc" 'BEGIN { n = split(c, v, ","); for (i = 1; i <= n; i++) s[i % 2] += v[i]
                        exit !(s[1] >= 2 && s[0] >= 2) }' && ok || bad "jitter on both ranks: slowest_steps per epoch [$jc]"

tally_done straggler
