#!/usr/bin/env bash
# What the program reads and the datasets it writes (issue 24):
#   1. a shard that is a symbolic link (to a file outside its dataset directory) is refused;
#   2. a FIFO given as a shard, manifest.txt, --arch, --model FILE.json or --init is refused at once,
#      naming it, at 1 and 2 ranks (it used to block in open() forever);
#   3. a rank stuck in a file open at start-up is reported by the watchdog, at 1 and 2 ranks
#      (DP_FAULT=hang@open: every rank stuck, none waiting on another);
#   4. dsi-prepare and shard refuse an --out holding another dataset or other files unless --overwrite,
#      re-write the same dataset in place, and a failed import leaves the old dataset as it was.
# Usage: input_files.sh path/to/dptrain path/to/mpiexec
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"
run_np() { local np="$1"; shift; if [ "$np" -eq 1 ]; then "$bin" "$@"; else mpi "$np" "$bin" "$@"; fi; }
md5() { cat "$@" | md5sum | cut -c1-16; }
# expect_refused NAME NP WANT-TEXT ARGS...: exits non-zero within 60 s with WANT-TEXT in its output
expect_refused() {
  local name="$1" np="$2" want="$3"; shift 3
  local out rc
  out=$(timeout 60 bash -c "$(declare -f run_np mpi); bin='$bin' mpiexec='$mpiexec'; run_np $np \"\$@\"" _ "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -qF -- "$want" <<<"$out"; then ok "$name, $np rank(s): exit $rc"
  else bad "$name, $np rank(s): exit $rc (124: blocked), want '$want'; output: $(tail -5 <<<"$out")"; fi
}

"$bin" shard fashion-mnist --out fm --shards 2 --quiet >log 2>&1 || { cat log; echo "FAIL: shard"; exit 1; }
train=(train --model mlp --epochs 1 --limit 2000 --test-limit 200 --quiet)

# 1. a shard that links outside its directory
mkdir ln && cp fm/manifest.txt fm/train-00001.dps fm/test-0000*.dps ln/ && ln -s "$tmp/fm/train-00000.dps" ln/
expect_refused "shard symlinked outside its directory" 1 "ln/train-00000.dps: a symbolic link" \
  "${train[@]}" --data ln --out r_ln

# 2. FIFOs: a shard, the manifest, --arch, --model FILE.json, --init
mkdir ff fm2 && cp fm/manifest.txt fm/train-00001.dps fm/test-0000*.dps ff/ && mkfifo ff/train-00000.dps
cp fm/*.dps fm2/ && mkfifo fm2/manifest.txt pipe.json pipe.safetensors
for np in 1 2; do
  expect_refused "FIFO as a shard" "$np" "ff/train-00000.dps: a FIFO, not a regular file" \
    "${train[@]}" --data ff --out "r_ff$np"
  expect_refused "FIFO as manifest.txt" "$np" "fm2/manifest.txt: a FIFO" "${train[@]}" --data fm2 --out "r_fm2$np"
  expect_refused "FIFO as --arch" "$np" "pipe.json: a FIFO" \
    train --data fm --arch pipe.json --epochs 1 --limit 2000 --test-limit 200 --quiet --out "r_arch$np"
  expect_refused "FIFO as --model FILE.json" "$np" "pipe.json: a FIFO" \
    train --data fm --model pipe.json --epochs 1 --limit 2000 --test-limit 200 --quiet --out "r_model$np"
  expect_refused "FIFO as --init" "$np" "pipe.safetensors: a FIFO" "${train[@]}" --data fm --init pipe.safetensors \
    --out "r_init$np"
done

# 3. every rank stuck opening a file before the first step: the watchdog names the file and aborts
for np in 1 2; do
  start=$(date +%s)
  out=$(DP_FAULT=hang@open timeout 60 bash -c "$(declare -f run_np mpi); bin='$bin' mpiexec='$mpiexec'; \
        run_np $np \"\$@\"" _ "${train[@]}" --data fm --watchdog 3 --out "r_wd$np" 2>&1); rc=$?
  took=$(( $(date +%s) - start ))
  line=$(grep -m1 'stuck .* opening fm/manifest.txt' <<<"$out" | sed 's/^ *//')
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ -n "$line" ] && grep -q 'aborting the job' <<<"$out"; then
    ok "watchdog, every rank stuck opening a file | $np | exit $rc: $line | ${took}s"
  else bad "watchdog at a stuck open, $np rank(s): exit $rc after ${took}s (124: never fired); output: $out"; fi
done

# 4. datasets written over others
awk 'BEGIN { for (d = 0; d < 40; d++) for (q = 0; q < 4; q++) printf "w%d x%d y%d\tdoc%d\n", d, q, d % 7, d }' >q.tsv
before=$(md5 fm/*)
expect_refused "dsi-prepare onto an image shard set" 1 "holds another dataset ('fashion-mnist', image_u8" \
  dsi-prepare --queries q.tsv --out fm
[ "$(md5 fm/*)" = "$before" ] && ok "the image shard set is untouched" || bad "dsi-prepare changed fm/"
fmi=/usr/share/datasets/fashion-mnist
expect_refused "shard idx onto another dataset" 1 "holds another dataset ('fashion-mnist', image_u8; this one is 'idx'" \
  shard idx "$fmi/t10k-images-idx3-ubyte.gz" "$fmi/t10k-labels-idx1-ubyte.gz" --out fm --quiet
mkdir mine && echo "keep me" >mine/notes.txt
expect_refused "shard onto a directory of other files" 1 "holds 'notes.txt'" shard fashion-mnist --out mine --quiet
[ -f mine/notes.txt ] || bad "notes.txt was removed"
# the same dataset again is fine, and replaces the old copy whole
touch fm/train-00007.dps
if "$bin" shard fashion-mnist --out fm --shards 2 --quiet >log 2>&1 && [ ! -e fm/train-00007.dps ] \
   && [ "$(md5 fm/*)" = "$before" ]; then ok "shard fashion-mnist re-written in place (stale shard gone)"
else bad "re-running shard fashion-mnist: $(cat log)"; fi
# a failed import leaves the old dataset as it was, and no temporary directory
if ! "$bin" shard fashion-mnist --idx "$tmp/none" --out fm --quiet >log 2>&1 && [ "$(md5 fm/*)" = "$before" ] \
   && ! ls -d fm.tmp.* >/dev/null 2>&1; then ok "a failed import leaves the old dataset"
else bad "failed import: fm/ changed or a temporary directory is left: $(cat log; ls)"; fi
# dsi-prepare: once, again into its own output, then --overwrite onto the image set
if "$bin" dsi-prepare --queries q.tsv --out dsi --members 2 >log 2>&1 \
   && "$bin" dsi-prepare --queries q.tsv --out dsi --members 2 >log 2>&1 && [ -f dsi/m2/1/manifest.txt ]; then
  ok "dsi-prepare re-written in place"
else bad "dsi-prepare twice: $(cat log)"; fi
if "$bin" dsi-prepare --queries q.tsv --out fm --overwrite >log 2>&1 && grep -q '^name dsi' fm/manifest.txt \
   && [ ! -e fm/train-00001.dps ] && ! ls -d fm.tmp.* fm.old.* >/dev/null 2>&1; then
  ok "dsi-prepare --overwrite replaces the whole directory"
else bad "dsi-prepare --overwrite: $(cat log; ls fm)"; fi

[ "$fails" -eq 0 ] || { echo "input_files: $fails failure(s)"; exit 1; }
echo "input_files: all passed"
