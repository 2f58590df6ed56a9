#!/usr/bin/env bash
# Faults across ranks end the job with a message and a non-zero exit within a
# bounded time, never a hang:
#   1. ranks started with different flags (MPMD) -> the configuration check names rank and field;
#   2. a rank killed with SIGKILL mid-training -> mpirun ends the job and names the lost rank.
# Usage: mpi_faults.sh path/to/dptrain path/to/mpiexec
set -u
bin="$1" mpiexec="$2"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }

"$bin" shard fashion-mnist --out "$tmp/fm" --shards 4 >/dev/null || { echo "FAIL: shard"; exit 1; }
common=(train --data "$tmp/fm" --model mlp --epochs 1 --limit 2000 --test-limit 200 --quiet)

# 1. mismatched configuration (MPMD: rank 1 gets another batch size)
start=$(date +%s)
out=$(timeout 60 "$mpiexec" --oversubscribe -np 1 "$bin" "${common[@]}" --batch 32 : \
      -np 1 "$bin" "${common[@]}" --batch 16 2>&1); rc=$?
took=$(( $(date +%s) - start ))
if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q "rank 1 has batch=16, rank 0 has batch=32" <<<"$out"; then
  ok "mismatched --batch: exit $rc after ${took}s: $(grep -m1 'ranks disagree' <<<"$out")"
else
  bad "mismatched --batch: exit $rc after ${took}s, output: $out"
fi

# 2. a rank killed mid-training (SIGKILL): the job must end, non-zero, naming the rank
"$mpiexec" --oversubscribe -np 2 "$bin" train --data "$tmp/fm" --model cnn --epochs 50 --limit 4000 \
  --test-limit 200 --quiet --out "$tmp/killed" > "$tmp/kill.log" 2>&1 &
mpi_pid=$!
victim=""
for _ in $(seq 1 100); do   # wait until both ranks are training (the run directory exists)
  sleep 0.2
  pids=$(pgrep -f -- "--out $tmp/killed" | grep -v "^$mpi_pid$" || true)
  [ -d "$tmp/killed" ] && [ "$(wc -w <<<"$pids")" -ge 2 ] && { victim=$(tail -n1 <<<"$pids"); break; }
done
sleep 1
if [ -z "$victim" ]; then
  bad "kill: ranks never started: $(cat "$tmp/kill.log")"; kill -9 "$mpi_pid" 2>/dev/null
else
  start=$(date +%s)
  kill -9 "$victim"
  # bounded: mpirun must notice and end the job within 30 s
  for _ in $(seq 1 300); do kill -0 "$mpi_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$mpi_pid" 2>/dev/null; then
    bad "kill: job still running 30 s after rank pid $victim was killed (hang)"; kill -9 "$mpi_pid"
  else
    wait "$mpi_pid"; rc=$?; took=$(( $(date +%s) - start ))
    if [ "$rc" -ne 0 ] && grep -qiE "rank [0-9]+|process rank" "$tmp/kill.log"; then
      ok "killed rank: job ended with exit $rc after ${took}s: $(grep -m1 -iE 'rank' "$tmp/kill.log")"
    else
      bad "killed rank: exit $rc, output: $(cat "$tmp/kill.log")"
    fi
  fi
fi
echo "mpi_faults: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
