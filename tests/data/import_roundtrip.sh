#!/usr/bin/env bash
# Round trip: Fashion-MNIST shards -> a PNG folder (shard_png export: class folders named by the label,
# zero-padded) -> `dptrain shard image-folder` -> the same records bit for bit, compared per split as
# multisets (sorted "label xxh64(pixels)" lines: the importer writes in a hashed order). Then the
# command line of `shard image-folder | csv | npy`: good runs and refusals with exit codes.
#
# Usage: import_roundtrip.sh DPTRAIN SHARD_PNG [--full]
#   default: the first 2,000 train and 1,000 test images; --full: all 70,000 (for RESULTS.md).
# Exit 77 (skip) when the Fashion-MNIST package is not installed.
set -u
bin="$1" tool="$2" full="${3:-}"
idx="${DP_FMNIST_IDX:-/usr/share/datasets/fashion-mnist}"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
ok() { passes=$((passes+1)); }

expect() { # expect EXIT_CODE REGEX -- ARGS...
  local code="$1" re="$2"; shift 3
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [ "$rc" -ne "$code" ] || ! tr "\n" " " <<<"$out" | grep -qE -- "$re"; then
    fail "dptrain $* -> exit $rc (want $code), output: $out"
  else ok; fi
}

# ---------------------------------------------------------------- round trip
if [ -f "$idx/train-images-idx3-ubyte.gz" ]; then
  ntrain=2000 ntest=1000
  [ "$full" = "--full" ] && ntrain=0 ntest=0
  "$bin" shard fashion-mnist --idx "$idx" --out "$tmp/fm" --shards 4 >/dev/null || fail "shard fashion-mnist"
  # export takes the first N of each split: one limit for both, then trim train's extra from the test side
  t0=$(date +%s.%N)
  "$tool" export "$tmp/fm" "$tmp/png" "$ntrain" || fail "shard_png export"
  if [ "$ntest" -gt 0 ]; then # drop test images past the first ntest (names are the record index)
    find "$tmp/png/test" -name '*.png' | awk -F/ -v n="$ntest" '{f=$NF; sub(/\.png$/,"",f); if (f+0 >= n) print}' |
      xargs -r rm -f
  fi
  t1=$(date +%s.%N)
  "$bin" shard image-folder "$tmp/png" --out "$tmp/back" --shards 3 2>"$tmp/progress.txt" >"$tmp/back.txt" ||
    fail "shard image-folder: $(cat "$tmp/progress.txt")"
  t2=$(date +%s.%N)
  grep -q "images/s" "$tmp/progress.txt" && ok || fail "no images/s progress on stderr"
  grep -q "^schema image_u8 channels=1 height=28 width=28 classes=10$" "$tmp/back/manifest.txt" && ok ||
    fail "schema of the re-imported set: $(grep schema "$tmp/back/manifest.txt")"
  for split in train test; do
    lim=$ntrain; [ "$split" = test ] && lim=$ntest
    "$tool" hashes "$tmp/fm" "$split" "$lim" | sort >"$tmp/a.$split"
    "$tool" hashes "$tmp/back" "$split" | sort >"$tmp/b.$split"
    n=$(wc -l <"$tmp/a.$split")
    if [ "$n" -gt 0 ] && cmp -s "$tmp/a.$split" "$tmp/b.$split"; then ok
    else fail "$split: records differ ($n vs $(wc -l <"$tmp/b.$split") lines)"; diff "$tmp/a.$split" "$tmp/b.$split" | head -5; fi
    echo "roundtrip $split: $n images identical"
  done
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v n="$(cat "$tmp"/a.* | wc -l)" \
    'BEGIN{printf "roundtrip: %d images, export %.1f s, import %.1f s (%.0f images/s)\n", n, b-a, c-b, n/(c-b)}'
  # --size 28x28 is the identity; --channels 3 replicates grey
  "$bin" shard image-folder "$tmp/png" --out "$tmp/rgb" --shards 1 --channels 3 --size 14x14 --keep-order \
    >/dev/null 2>&1 && grep -q "channels=3 height=14 width=14" "$tmp/rgb/manifest.txt" && ok ||
    fail "image-folder --channels 3 --size 14x14"
  rm -rf "$tmp/png" "$tmp/rgb" "$tmp/fm" "$tmp/back"
else
  echo "skip round trip: no Fashion-MNIST in $idx"
  skipped=1
fi

# ------------------------------------------------------- command-line checks
mkdir -p "$tmp/e/a" "$tmp/e/b"
"$tool" jpegs "$tmp/f" 6 8x8 2 || fail "shard_png jpegs"
cp "$tmp/f/c000/0000000.jpg" "$tmp/e/a/x.jpg"
expect 0 "usage: dptrain shard image-folder" -- shard image-folder --help
expect 0 "usage: dptrain shard csv"          -- shard csv --help
expect 0 "usage: dptrain shard npy"          -- shard npy --help
expect 2 "image-folder: missing arguments"   -- shard image-folder
expect 2 "--size: '32' , want HxW|--size: '32', want HxW" -- shard image-folder "$tmp/f" --size 32
expect 2 "--channels: '2' is not auto, 1 or 3" -- shard image-folder "$tmp/f" --channels 2
expect 2 "--val-split: .* out of range"      -- shard image-folder "$tmp/f" --val-split 1
expect 2 "--label COL is required"           -- shard csv "$tmp/t.csv"
expect 2 "npy: missing arguments"            -- shard npy "$tmp/x.npy" --out "$tmp/o"
expect 2 "--test-x and --test-y come together" -- shard npy a.npy b.npy --test-x c.npy
expect 2 "--val-split or --test, not both"   -- shard csv a.csv --label 0 --test b.csv --val-split 0.2
expect 2 "unknown dataset 'imagefolder'"     -- shard imagefolder "$tmp/f"
expect 1 "$tmp/e/b: empty class"             -- shard image-folder "$tmp/e" --out "$tmp/o"
expect 0 "6 images in .* images/s.*train=4 records .* test=2 records" -- shard image-folder "$tmp/f" --out "$tmp/o" --val-split 0.34 --shards 2
grep -q "^class 0 c000$" "$tmp/o/manifest.txt" && ok || fail "class names in the manifest"
printf 'x,y,label\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,dog\n' >"$tmp/t.csv"
expect 0 "train=2 records .* test=2 records" -- shard csv "$tmp/t.csv" --label label --out "$tmp/c" --val-split 0.5
grep -q "^schema vector_f32 features=2 classes=2$" "$tmp/c/manifest.txt" && ok || fail "csv schema"
printf '1,2,cat\n3,4\n' >"$tmp/r.csv"
expect 1 "$tmp/r.csv:2: ragged row"          -- shard csv "$tmp/r.csv" --label 2 --no-header --out "$tmp/c2"
[ ! -e "$tmp/c2/manifest.txt" ] && ok || fail "a manifest after a failed csv import"
npy() { # npy FILE DICT DATA(printf escapes): a version 1.0 file, header padded to 128 bytes
  printf '\x93NUMPY\x01\x00\x76\x00%s%*s\n' "$2" $((117 - ${#2})) '' >"$1"
  printf "$3" >>"$1"
}
npy "$tmp/x.npy" "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }" '\x00\x00\x80\x3f\x00\x00\x00\x40'
npy "$tmp/y.npy" "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }" '\x01\x00'
expect 0 "train=2 records in 1 shards"       -- shard npy "$tmp/x.npy" "$tmp/y.npy" --out "$tmp/n" --shards 1
grep -q "^schema vector_f32 features=1 classes=2$" "$tmp/n/manifest.txt" && ok || fail "npy schema"
expect 1 "$tmp/x.npy: dtype '<f4' not supported for labels" -- shard npy "$tmp/x.npy" "$tmp/x.npy" --out "$tmp/n2"

echo "import_roundtrip: $passes passed, $fails failed"
[ "$fails" -eq 0 ] || exit 1
[ "${skipped:-0}" -eq 1 ] && exit 77
exit 0
