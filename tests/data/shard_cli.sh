#!/usr/bin/env bash
# `dptrain shard FORMAT`: per-format help, usage errors (exit 2) and import errors (exit 1) that name the
# flag or file, progress and the summary line, a failed import leaving the old dataset, and a tiny IDX and CIFAR-10
# set in the exact layouts imported and trained on. Usage: shard_cli.sh path/to/dptrain
set -u
bin="$1"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
export OPENBLAS_NUM_THREADS=1
fails=0 passes=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }

expect() { # expect EXIT_CODE REGEX -- ARGS...
  local code="$1" re="$2"; shift 3
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$re" <<<"$out"; then
    fail "dptrain $* -> exit $rc (want $code, /$re/), output: $out"
  else
    passes=$((passes+1))
  fi
}

be32() { printf "\\x$(printf %02x $(($1>>24&255)))\\x$(printf %02x $(($1>>16&255)))\\x$(printf %02x $(($1>>8&255)))\\x$(printf %02x $(($1&255)))"; }
byte() { printf "\\x$(printf %02x "$1")"; }
# idx_pair PREFIX N LABEL_MOD: N images of 4x4 (image i all bytes i) and labels i % LABEL_MOD
idx_pair() {
  { be32 $((0x803)); be32 "$2"; be32 4; be32 4; for ((i = 0; i < $2; i++)); do for ((p = 0; p < 16; p++)); do byte "$i"; done; done; } >"$1-images"
  { be32 $((0x801)); be32 "$2"; for ((i = 0; i < $2; i++)); do byte $((i % $3)); done; } >"$1-labels"
}
# cifar_file FILE N [BAD_LABEL_AT]: N CIFAR-10 records, label i % 10 (or 10 at record BAD_LABEL_AT)
cifar_file() {
  : >"$1"
  for ((i = 0; i < $2; i++)); do
    if [ "$i" = "${3:--1}" ]; then byte 10; else byte $((i % 10)); fi
    head -c 3072 /dev/zero | tr '\0' "\\$(printf %03o $((i + 1)))"
  done >>"$1"
}

# --- help and usage errors (exit 2, nothing written) ---
expect 0 "idx +any u8 IDX" -- shard --help
expect 0 "cifar100" -- help shard
expect 0 "--val-split F" -- shard idx --help
expect 0 "--labels fine\|coarse" -- shard cifar100 --help
expect 0 "--idx DIR" -- shard fashion-mnist --help
expect 2 "name a dataset format" -- shard
expect 2 "unknown dataset 'bogus'" -- shard bogus
expect 2 "idx: missing arguments" -- shard idx a --out o
expect 2 "idx: unexpected argument 'c'" -- shard idx a b c --out o
expect 2 "idx: --out DIR is required" -- shard idx a b
expect 2 "--val-split: 1.5 is out of range" -- shard idx a b --out o --val-split 1.5
expect 2 "--val-split: 'x' is not a number" -- shard idx a b --out o --val-split x
expect 2 "--classes: -1 is out of range" -- shard idx a b --out o --classes -1
expect 2 "--test-images and --test-labels come together" -- shard idx a b --out o --test-images t
expect 2 "--val-split or a test pair" -- shard idx a b --out o --val-split 0.1 --test-images t --test-labels u
expect 2 "--labels: 'medium' is not fine or coarse" -- shard cifar100 d --labels medium
expect 2 "cifar10: missing arguments" -- shard cifar10
expect 2 "--shards: 0 is out of range" -- shard cifar10 d --shards 0
expect 2 "unknown or incomplete flag '--bogus'" -- shard cifar10 d --bogus
[ -e o ] && fail "a usage error created the output directory"

# --- IDX: good path, progress, summary, train on it ---
idx_pair tr 40 4; idx_pair te 8 4
out=$("$bin" shard idx tr-images tr-labels --test-images te-images --test-labels te-labels --out idx --shards 2 \
      --name tiny 2>err)
rc=$?
[ "$rc" -eq 0 ] || fail "idx import exit $rc: $out $(cat err)"
grep -qE "^shards: idx train=40 records in 2 shards, test=8 records in 2 shards, .* MB in, .* MB/s$" <<<"$out" \
  || fail "idx summary line: $out"
grep -qE "idx: (train|test) [0-9]+/[0-9]+ records, .* MB/s" err || fail "no progress on stderr: $(cat err)"
grep -q "^name tiny$" idx/manifest.txt || fail "--name not in the manifest"
grep -q "^schema image_u8 channels=1 height=4 width=4 classes=4$" idx/manifest.txt || fail "idx schema: $(cat idx/manifest.txt)"
out=$("$bin" shard idx tr-images tr-labels --val-split 0.25 --out val --shards 1 --quiet 2>err) || fail "val-split: $out $(cat err)"
[ -s err ] && fail "--quiet still printed: $(cat err)"
grep -q "train=32 records in 1 shards, test=8 records" <<<"$out" || fail "val-split counts: $out"
"$bin" train --data idx --model mlp --epochs 1 --batch 8 --quiet >log 2>&1 || fail "train on an imported IDX set: $(cat log)"
passes=$((passes+1))

# --- IDX: bad input (exit 1, naming the file) and no dataset left behind ---
head -c 100 tr-images >cut-images
old=$(cat idx/* | md5sum)
expect 1 "cut-images: offset 100: truncated" -- shard idx cut-images tr-labels --out idx --quiet
[ "$(cat idx/* | md5sum)" = "$old" ] || fail "a failed import changed the old dataset"
ls -d idx.tmp.* >/dev/null 2>&1 && fail "a failed import left its temporary directory"
# a gzip'd stream cut inside image 30: found while streaming, after shards were written
{ be32 $((0x803)); be32 40; be32 4; be32 4; head -c $((30 * 16 + 5)) /dev/zero; } | gzip >cut.gz
expect 1 "cut.gz: offset 501: truncated" -- shard idx cut.gz tr-labels --out fresh --shards 4 --quiet
[ -e fresh/manifest.txt ] && fail "a failed import left a manifest"
ls fresh/*.dps* >/dev/null 2>&1 && fail "a failed import left its shards: $(ls fresh)"
expect 1 "tr-labels: offset 0: bad IDX magic" -- shard idx tr-labels tr-labels --out idx
expect 1 "te-labels: offset 4: 8 labels but tr-images holds 40 images" -- shard idx tr-images te-labels --out idx
expect 1 "tr-labels: offset 10: record 2: label 2 outside \[0, 2\)" -- shard idx tr-images tr-labels --classes 2 --out idx
expect 1 "nothere: open" -- shard idx nothere tr-labels --out idx

# --- CIFAR-10 ---
mkdir c10
for k in 1 2 3 4 5; do cifar_file c10/data_batch_$k.bin 3; done
cifar_file c10/test_batch.bin 2
printf 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n' >c10/batches.meta.txt
out=$("$bin" shard cifar10 c10 --out cif --shards 4 --quiet 2>&1) || fail "cifar10 import: $out"
grep -q "train=15 records in 4 shards, test=2 records in 2 shards" <<<"$out" || fail "cifar10 summary: $out"
grep -q "^class 9 truck$" cif/manifest.txt || fail "cifar10 names: $(cat cif/manifest.txt)"
grep -qE "^mean [0-9.e-]+ [0-9.e-]+ [0-9.e-]+$" cif/manifest.txt || fail "cifar10 stats: $(cat cif/manifest.txt)"
"$bin" train --data cif --model cnn --epochs 1 --batch 8 --quiet >log 2>&1 || fail "train on CIFAR: $(cat log)"
passes=$((passes+1))
cifar_file c10/data_batch_2.bin 3 1
old=$(cat cif/* | md5sum)
expect 1 "data_batch_2.bin: record 1 at offset 3073: label 10 outside \[0, 10\)" -- shard cifar10 c10 --out cif
[ "$(cat cif/* | md5sum)" = "$old" ] || fail "a failed CIFAR import changed the old dataset"
expect 1 "data_batch_2.bin: record 1 at offset 3073: label 10" -- shard cifar10 c10 --out cif2 --shards 1
ls cif2/*.dps* >/dev/null 2>&1 && fail "a failed CIFAR import left its shards: $(ls cif2)"
cifar_file c10/data_batch_2.bin 3
head -c 9000 c10/data_batch_2.bin >c10/x && mv c10/x c10/data_batch_2.bin
expect 1 "data_batch_2.bin: record 2 at offset 6146: truncated \(2854 of 3073 bytes\)" -- shard cifar10 c10 --out cif
expect 1 "nowhere/data_batch_1.bin: open" -- shard cifar10 nowhere --out cif

echo "shard_cli: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
