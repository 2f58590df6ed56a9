#!/usr/bin/env bash
# Faults across ranks end the job with a message and a non-zero exit within a
# bounded time, never a hang, and lose nothing already saved:
#   1. ranks started with different flags (MPMD) -> the configuration check names rank and field;
#   2. a rank SIGKILLed at 2 and 4 ranks, during forward, while the allreduce is in flight, and
#      halfway through a checkpoint write -> the job ends within 30 s naming the lost rank, and
#      --resume ends with the same parameter bits (XXH3) as a run never interrupted;
#   3. the newest checkpoint damaged -> --resume falls back to the previous one, same bits;
#   4. a NaN planted on one rank -> every rank stops at that step naming the tensor; with
#      --on-nonfinite skip the step is dropped, the loss scale halved, replicas stay equal;
#      fp16 overflow under a large --loss-scale is skipped until the scale fits;
#   5. a rank hung in compute, or stopped (SIGSTOP), mid-step, or hung loading its data before the first
#      step -> the watchdog names it and aborts
#      (dptrain train, and dptrain search).
# Faults are planted with DP_FAULT (include/dptrain/fault.h). Every case prints one line
# "case | ranks | what happened | seconds from the fault to the end of the job" for
# docs/RELIABILITY.md.
# Usage: mpi_faults.sh path/to/dptrain path/to/mpiexec [GROUPS]
#   GROUPS: the numbered groups above to run, comma-separated (e.g. 3,4: the sanitized build's subset);
#   all of them by default.
set -u
bin="$1" mpiexec="$2" only="${3:-}"
want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
mpi() { local np="$1"; shift; "$mpiexec" -np "$np" "$@"; }
hash_of() { sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' <<<"$1"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

"$bin" shard fashion-mnist --out "$tmp/fm" --shards 4 >/dev/null || { echo "FAIL: shard"; exit 1; }
common=(train --data "$tmp/fm" --model mlp --epochs 1 --limit 2000 --test-limit 200 --quiet)
loud=(train --data "$tmp/fm" --model mlp --epochs 3 --limit 2000 --test-limit 200 --checkpoint-every 3)
run=("${loud[@]}" --quiet)

# 1. mismatched configuration (MPMD: rank 1 gets another batch size)
if want 1; then
start=$(now)
out=$(timeout 60 "$mpiexec" -np 1 "$bin" "${common[@]}" --batch 32 : \
      -np 1 "$bin" "${common[@]}" --batch 16 2>&1); rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "rank 1 has batch=16, rank 0 has batch=32" <<<"$out"; then
  ok "mismatched --batch | 2 | exit $rc: $(grep -m1 'ranks disagree' <<<"$out") | $(secs "$start" "$(now)")"
else
  bad "mismatched --batch: exit $rc, output: $out"
fi
fi # group 1

# 2. SIGKILL at three points, 2 and 4 ranks; then resume and compare the bits.
if want 2; then
for np in 2 4; do
  ref=$(mpi "$np" "$bin" "${run[@]}" --out "$tmp/ref$np" 2>&1); want=$(hash_of "$ref")
  [ -n "$want" ] || { bad "reference run at $np ranks: $ref"; continue; }
  [ "$np" = 2 ] && ref2_hash=$want # group 3's reference too
  steps=$(sed -n 's/.* steps=\([0-9]*\).*/\1/p' <<<"$ref")
  # forward on the last rank, allreduce on rank 1, the checkpoint write on rank 0 (the writer)
  for point in forward allreduce write; do
    case $point in
      forward) victim=$((np - 1)) step=$((steps / 2 + 1)) ;;
      allreduce) victim=1 step=$((steps / 3 + 2)) ;;
      write) victim=0 step=$(( (steps / 2) / 3 * 3 )) ;; # a step that writes a checkpoint
    esac
    dir="$tmp/kill-$point-$np"
    start=$(now)
    out=$(DP_FAULT="kill@$point:rank=$victim:step=$step" timeout 60 \
          "$mpiexec" -np "$np" "$bin" "${run[@]}" --out "$dir" 2>&1); rc=$?
    took=$(secs "$(sed -n 's/.*DP_FAULT: .* time \([0-9.]*\)$/\1/p' <<<"$out" | head -1)" "$(now)")
    if [ "$rc" -eq 124 ]; then bad "kill@$point rank $victim of $np: job still running after 60 s (hang)"; continue; fi
    if [ "$rc" -eq 0 ] || ! grep -qE "rank $victim .*(signal 9|Killed)" <<<"$out" ||
       awk -v t="$took" 'BEGIN { exit !(t > 30) }'; then
      bad "kill@$point rank $victim of $np at step $step: exit $rc after ${took}s, output: $out"; continue
    fi
    if [ "$point" = write ] && [ ! -f "$dir/checkpoint.dpc.tmp" ]; then
      bad "kill@write: no half-written checkpoint.dpc.tmp was left, so the kill missed the write"; continue
    fi
    res=$(timeout 120 "$mpiexec" -np "$np" "$bin" "${loud[@]}" --out "$dir" --resume \
          --progress plain 2>&1 | grep -v '^epoch [0-9]*/[0-9]*')
    got=$(hash_of "$res")
    if [ "$got" = "$want" ]; then
      ok "kill@$point | $np | rank $victim killed at step $step, job ended (exit $rc) naming it: '$(grep -m1 -oE "process rank $victim[^.]*" <<<"$out")'; resumed $(grep -m1 -oE 'at epoch [0-9]+, step [0-9]+' <<<"$res" || echo "from the start (no checkpoint yet)") to params_xxh3=$got = uninterrupted | $took"
    else
      bad "kill@$point at $np ranks: resumed run ended with $got, uninterrupted $want: $res"
    fi
  done
done
fi # group 2

# 3. the newest checkpoint damaged: resume from checkpoint.dpc.1, same bits
if want 3; then
dir="$tmp/damaged"
mpi 2 "$bin" "${run[@]}" --out "$dir" --stop-after 17 >/dev/null 2>&1
truncate -s 100 "$dir/checkpoint.dpc"
res=$(mpi 2 "$bin" "${run[@]}" --out "$dir" --resume 2>&1)
# the uninterrupted run's bits: group 2's reference at 2 ranks (same flags) when it ran
[ -n "${ref2_hash:-}" ] || ref2_hash=$(hash_of "$(mpi 2 "$bin" "${run[@]}" --out "$tmp/ref2b" 2>&1)")
if [ -n "$ref2_hash" ] && [ "$(hash_of "$res")" = "$ref2_hash" ] &&
   grep -q "resuming from the older .*checkpoint.dpc.1" <<<"$res"; then
  ok "damaged newest checkpoint | 2 | $(grep -m1 -o 'offset.*resuming from the older' <<<"$res") .1, same bits | -"
else
  bad "damaged newest checkpoint: $res"
fi
fi # group 3

# 4. NaN / Inf
if want 4; then
start=$(now)
out=$(DP_FAULT="nan@forward:rank=1:step=7" timeout 60 "$mpiexec" -np 2 "$bin" "${common[@]}" 2>&1); rc=$?
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "step 7 (epoch 1): non-finite gradient after the allreduce, first in 'fc1.weight'" <<<"$out" &&
   [ "$(grep -c 'dptrain train: error' <<<"$out")" -eq 1 ]; then
  ok "NaN, --on-nonfinite stop | 2 | exit $rc: $(grep -m1 -o 'step 7.*fc1.weight.' <<<"$out") | $(secs "$start" "$(now)")"
else
  bad "NaN stop: exit $rc, output: $out"
fi
out=$(DP_FAULT="nan@forward:rank=1:step=7" timeout 60 "$mpiexec" -np 2 "$bin" "${common[@]}" --on-nonfinite skip --check-replicas 1 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q "skipped_steps=1 loss_scale=0.5 " <<<"$out"; then
  ok "NaN, --on-nonfinite skip | 2 | step 7 skipped, loss scale 1 -> 0.5, replicas equal every step | -"
else
  bad "NaN skip: exit $rc, output: $out"
fi
# the scale grows back: 5 clean steps after the skip at step 7 double it to --loss-scale again (with the int8
# codec's error-feedback residuals, which follow the scale both ways)
out=$(DP_FAULT="nan@forward:rank=0:step=7" timeout 60 "$mpiexec" -np 2 "$bin" "${common[@]}" --codec int8 --loss-scale 4 --loss-scale-growth 5 --on-nonfinite skip --check-replicas 1 --out "$tmp/grow" 2>&1); rc=$?
events=$(grep -oE '"kind":"(skip|loss_scale)","step":[0-9]+,"loss_scale":[0-9.]+' "$tmp/grow/metrics.jsonl" 2>/dev/null | tr '\n' ' ')
if [ "$rc" -eq 0 ] && grep -q "skipped_steps=1 loss_scale=4 " <<<"$out" && grep -Eq "test_acc=0\.[1-9]" <<<"$out" &&
   [ "$events" = '"kind":"skip","step":7,"loss_scale":2 "kind":"loss_scale","step":12,"loss_scale":4 ' ]; then
  ok "NaN, skip, then --loss-scale-growth 5 (int8 codec) | 2 | scale 4 -> 2 at step 7, back to 4 at step 12, replicas equal | -"
else
  bad "loss-scale growth: exit $rc, events: $events, output: $out"
fi
out=$(timeout 60 "$mpiexec" -np 2 "$bin" "${common[@]}" --codec fp16 --loss-scale 16777216 --on-nonfinite skip 2>&1); rc=$?
sk=$(sed -n 's/.*skipped_steps=\([0-9]*\).*/\1/p' <<<"$out"); ls=$(sed -n 's/.*loss_scale=\([0-9.e+]*\).*/\1/p' <<<"$out")
if [ "$rc" -eq 0 ] && [ "${sk:-0}" -ge 1 ] && awk -v s="$ls" 'BEGIN { exit !(s < 16777216) }'; then
  ok "fp16 overflow, --loss-scale 2^24 skip | 2 | $sk steps skipped until the scale fit: loss_scale=$ls | -"
else
  bad "fp16 loss-scale skip: exit $rc, output: $out"
fi
fi # group 4

# 5. the watchdog: a rank hung in compute (3 ranks), a rank stopped (2 ranks)
if want 5; then
for fault in "hang@forward:rank=1:step=5 3 not waiting on other ranks: in forward/backward of step 5" \
             "stop@allreduce:rank=1:step=5 2 rank 1: no answer"; do
  read -r spec np expect <<<"$fault"
  start=$(now)
  out=$(DP_FAULT="$spec" timeout 60 "$mpiexec" -np "$np" "$bin" "${common[@]}" \
        --watchdog 4 2>&1); rc=$?
  took=$(secs "$(sed -n 's/.*DP_FAULT: .* time \([0-9.]*\)$/\1/p' <<<"$out" | head -1)" "$(now)")
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "$expect" <<<"$out" && grep -q "suspect rank(s): 1 " <<<"$out"; then
    ok "watchdog, ${spec%%@*} | $np | exit $rc: $(grep -m1 'waiting .* in the gradient allreduce' <<<"$out" | sed 's/^ *//'); $(grep -m1 'suspect' <<<"$out" | sed 's/dptrain watchdog: //') | $took"
  else
    bad "watchdog $spec: exit $rc after ${took}s, output: $out"
  fi
done

# a rank stuck before the first step (loading its shards): the others wait in a set-up agreement
out=$(DP_FAULT="hang@load:rank=1" timeout 60 "$mpiexec" -np 2 "$bin" "${common[@]}" \
      --watchdog 4 2>&1); rc=$?
took=$(secs "$(sed -n 's/.*DP_FAULT: .* time \([0-9.]*\)$/\1/p' <<<"$out" | head -1)" "$(now)")
line=$(grep -m1 "rank 0: waiting .* before the first step" <<<"$out" | sed 's/^ *//')
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ -n "$line" ] &&
   grep -q "rank 1: not waiting on other ranks: in loading the data before the first step" <<<"$out" &&
   grep -q "suspect rank(s): 1 " <<<"$out"; then
  ok "watchdog, hang while loading the data | 2 | exit $rc: $line | $took"
else
  bad "watchdog at set-up: exit $rc after ${took}s, output: $out"
fi

# with --allreduce mpi the watchdog still names the bucket (MPI_Allreduce does not say whom it waits for)
out=$(DP_FAULT="hang@forward:rank=1:step=5" timeout 60 "$mpiexec" -np 2 "$bin" "${common[@]}" \
      --allreduce mpi --watchdog 4 2>&1); rc=$?
took=$(secs "$(sed -n 's/.*DP_FAULT: .* time \([0-9.]*\)$/\1/p' <<<"$out" | head -1)" "$(now)")
line=$(grep -m1 -E "rank 0: waiting .* in the gradient allreduce of step 5, bucket [0-9]+ of [0-9]+$" <<<"$out" | sed 's/^ *//')
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ -n "$line" ] && grep -q "suspect rank(s): 1 " <<<"$out"; then
  ok "watchdog, hang, --allreduce mpi | 2 | exit $rc: $line | $took"
else
  bad "watchdog with --allreduce mpi: exit $rc after ${took}s, output: $out"
fi

# the same watchdog in the architecture search (its weights' sync carries it)
out=$(DP_FAULT="hang@forward:rank=1:step=1" timeout 60 "$mpiexec" -np 2 "$bin" search \
      --data "$tmp/fm" --layers 2 --channels 4 --epochs 1 --limit 800 --eval-limit 100 --quiet --watchdog 4 2>&1); rc=$?
took=$(secs "$(sed -n 's/.*DP_FAULT: .* time \([0-9.]*\)$/\1/p' <<<"$out" | head -1)" "$(now)")
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "rank 1: not waiting on other ranks" <<<"$out" &&
   grep -q "suspect rank(s): 1 " <<<"$out"; then
  ok "watchdog in search, hang | 2 | exit $rc: $(grep -m1 'rank 0: waiting' <<<"$out" | sed 's/^ *//') | $took"
else
  bad "search watchdog: exit $rc after ${took}s, output: $out"
fi
fi # group 5

[ "$((passes + fails))" -gt 0 ] || { echo "mpi_faults: no case in groups '$only'"; exit 1; }
echo "mpi_faults: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
