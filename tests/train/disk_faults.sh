#!/usr/bin/env bash
# A full disk or an unwritable run directory is reported at start-up or at the
# failing write, naming the file, and the previous checkpoint survives (a
# resume from it ends with the same parameter bits as a run never disturbed).
#   1. ENOSPC planted halfway through a checkpoint write (DP_FAULT=enospc@write): any user;
#   2. a real full disk: a small tmpfs filled so the third checkpoint cannot be written;
#   3. a disk too small for one checkpoint: refused at start-up with the sizes;
#   4. a read-only run directory: refused at start-up naming the file.
# Cases 2-4 mount a tmpfs and need root; without it they are skipped (reported as such).
# Usage: disk_faults.sh path/to/dptrain path/to/mpiexec
set -u
bin="$1" mpiexec="$2"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
mnt="$tmp/mnt"; mkdir -p "$mnt"
cleanup() { mountpoint -q "$mnt" && umount "$mnt"; rm -rf "$tmp"; }
trap cleanup EXIT
fails=0 passes=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
mpi() { "$mpiexec" -np 2 "$bin" "$@"; }
hash_of() { sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' <<<"$1"; }

"$bin" shard fashion-mnist --out "$tmp/fm" --shards 2 >/dev/null || { echo "FAIL: shard"; exit 1; }
run=(train --data "$tmp/fm" --model mlp --epochs 1 --limit 2000 --test-limit 200 --quiet --checkpoint-every 3)
want=$(hash_of "$(mpi "${run[@]}" --out "$tmp/ref" 2>&1)")
[ -n "$want" ] || { echo "FAIL: reference run"; exit 1; }
ck_bytes=$(stat -c %s "$tmp/ref/checkpoint.dpc")

# resume_same DIR: copies DIR to a roomy disk, resumes there, compares the bits
resume_same() {
  rm -rf "$tmp/copy"; cp -a "$1" "$tmp/copy"
  local res; res=$(mpi "${run[@]}" --out "$tmp/copy" --resume 2>&1)
  [ "$(hash_of "$res")" = "$want" ]
}

# 1. planted ENOSPC at the write of step 9's checkpoint
out=$(DP_FAULT="enospc@write:rank=0:step=9" mpi "${run[@]}" --out "$tmp/enospc" 2>&1); rc=$?
if [ "$rc" -ne 0 ] && grep -q "checkpoint of step 9 not written (.*checkpoint.dpc.tmp: offset [0-9]*: write: No space left on device); .*checkpoint.dpc still holds step 6" <<<"$out" &&
   [ ! -e "$tmp/enospc/checkpoint.dpc.tmp" ] && resume_same "$tmp/enospc"; then
  ok "ENOSPC planted at a checkpoint write | exit $rc: $(grep -m1 -o 'checkpoint of step.*' <<<"$out"); temp file removed; resumed from step 6 to the same bits"
else
  bad "planted ENOSPC: exit $rc, output: $out"
fi

if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=1m tmpfs "$mnt" 2>/dev/null; then
  echo "skip: cases 2-4 need root and tmpfs mounts"
  echo "disk_faults: $passes passed, $fails failed"
  [ "$fails" -eq 0 ]; exit
fi
umount "$mnt"

# 2. a real full disk: room for about 2.5 checkpoints; --keep-checkpoints 2 holds two and
#    writes the third next to them, so the checkpoint of step 9 hits ENOSPC.
size_kb=$(( ck_bytes * 5 / 2 / 1024 + 256 ))
mount -t tmpfs -o size=${size_kb}k tmpfs "$mnt"
out=$(mpi "${run[@]}" --keep-checkpoints 2 --out "$mnt/run" 2>&1); rc=$?
if [ "$rc" -ne 0 ] && grep -q "checkpoint of step 9 not written (.*checkpoint.dpc.tmp: .*No space left on device); .*checkpoint.dpc still holds step 6" <<<"$out" &&
   [ ! -e "$mnt/run/checkpoint.dpc.tmp" ] && resume_same "$mnt/run"; then
  ok "full disk (tmpfs ${size_kb} KiB, checkpoints of $((ck_bytes / 1024)) KiB) | exit $rc: $(grep -m1 -o 'checkpoint of step.*' <<<"$out"); resumed from step 6 to the same bits"
else
  bad "full disk: exit $rc, output: $out"
fi
umount "$mnt"

# 3. a disk smaller than a checkpoint and the one being written: refused at start-up
mount -t tmpfs -o size=$(( ck_bytes / 1024 ))k tmpfs "$mnt"
out=$(mpi "${run[@]}" --out "$mnt/run" 2>&1); rc=$?
if [ "$rc" -ne 0 ] && grep -q "$mnt/run: .* MiB free, a checkpoint needs about .* MiB" <<<"$out" && [ ! -e "$mnt/run/checkpoint.dpc" ]; then
  ok "disk too small at start-up | exit $rc: $(grep -m1 -o "$mnt/run: .*MiB free[^(]*" <<<"$out")"
else
  bad "small disk at start-up: exit $rc, output: $out"
fi
umount "$mnt"

# 4. a read-only run directory holding a checkpoint: refused at start-up, checkpoint untouched
mount -t tmpfs -o size=64m tmpfs "$mnt"
mpi "${run[@]}" --out "$mnt/run" --stop-after 6 >/dev/null 2>&1
before=$(md5sum < "$mnt/run/checkpoint.dpc")
mount -o remount,ro "$mnt"
out=$(mpi "${run[@]}" --out "$mnt/run" --resume 2>&1); rc=$?
if [ "$rc" -ne 0 ] && grep -q "$mnt/run/lock: cannot open the run directory.s lock file: Read-only file system" <<<"$out" &&
   [ "$(md5sum < "$mnt/run/checkpoint.dpc")" = "$before" ] && resume_same "$mnt/run"; then
  ok "read-only run directory | exit $rc: $(grep -m1 -o "$mnt/run/lock: .*" <<<"$out"); checkpoint unchanged, resumes to the same bits elsewhere"
else
  bad "read-only directory: exit $rc, output: $out"
fi

echo "disk_faults: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
