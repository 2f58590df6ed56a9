#!/usr/bin/env bash
# Import speed of `dptrain shard`: generates a JPEG folder, CIFAR-10-layout binary batches, a CSV and an
# NPY pair of stated sizes, imports each (--shards 16, the default order) and prints a table (format,
# records, input MB, seconds, images/s, MB/s of input) and a CSV. Seconds are wall time of the whole
# command, headers pass and fsyncs included; the input files are read once before timing (page cache warm).
#
#   benchmarks/bench_import.sh [--images 20000] [--image-size 64x64] [--cifar-records 10000]
#       [--rows 100000] [--features 50] [--tag NAME] [--keep]
# --images N JPEGs (RGB, quality 90, 10 classes) of --image-size, imported at their size (no --size).
# --cifar-records per batch: data_batch_1..5.bin + test_batch.bin (6 x that many records of 3,073 bytes).
# --rows x --features: the CSV (%.7g, label in the last column) and the NPY pair (float32 X, int64 Y).
# Generation needs build/tests/shard_png (a test tool) and /usr/bin/python3 with numpy (python3-numpy).
# The generated inputs stay in benchmarks/out/import-in/ with --keep (else they are removed).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
images=20000 image_size=64x64 cifar_records=10000 rows=100000 features=50 tag="" keep=0
dp_flags bench_import "--images=images --image-size=image_size --cifar-records=cifar_records --rows=rows
  --features=features --tag=tag --keep=keep=1" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
tool="$build/tests/shard_png"
[ -x "$tool" ] || { echo "bench_import: needs $tool (configure with tests on)" >&2; exit 1; }
/usr/bin/python3 -c 'import numpy' 2>/dev/null ||
  { echo "bench_import: needs /usr/bin/python3 with numpy (apt-get install python3-numpy)" >&2; exit 1; }
in="$out/import-in" res="$out/import-out"
rm -rf "$in" "$res"; mkdir -p "$in" "$res"
csv="$out/import${tag:+_$tag}.csv"

echo "bench_import: generating inputs in $in" >&2
"$tool" jpegs "$in/jpeg" "$images" "$image_size" 10
/usr/bin/python3 - "$in" "$cifar_records" "$rows" "$features" <<'PY'
import os, sys
import numpy as np
d, n, rows, f = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(1)
os.makedirs(f"{d}/cifar", exist_ok=True)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    rec = rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, size=n)
    rec.tofile(f"{d}/cifar/{name}")
x = rng.standard_normal((rows, f), dtype=np.float32)
y = rng.integers(0, 10, size=rows)
np.save(f"{d}/x.npy", x)
np.save(f"{d}/y.npy", y.astype(np.int64))
with open(f"{d}/table.csv", "w") as fh:
    fh.write(",".join([f"f{i}" for i in range(f)] + ["label"]) + "\n")
    np.savetxt(fh, np.column_stack([x, y]), fmt=["%.7g"] * f + ["%d"], delimiter=",")
PY

mb() { du -cb "$@" | tail -n1 | awk '{printf "%.1f", $1 / 1e6}'; }
echo "format,records,input_mb,seconds,images_per_s,mb_per_s" >"$csv"
printf "%-14s %9s %9s %8s %10s %8s\n" format records input_MB seconds images/s MB/s
run() { # run NAME IMAGES(1|0) INPUT... -- ARGS...
  local name="$1" img="$2" inputs=() log="$res/$1.log"; shift 2
  while [ "$1" != "--" ]; do inputs+=("$1"); shift; done; shift
  cat "${inputs[@]}" >/dev/null 2>&1 || find "${inputs[@]}" -type f -exec cat {} + >/dev/null
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$build/dptrain" shard "$@" --out "$res/$name" >"$log" 2>&1; then
    echo "bench_import: $name failed:" >&2; tail -n5 "$log" >&2; exit 1
  fi
  t1=$(date +%s.%N)
  local n mbin
  n=$(sed -n 's/.*train=\([0-9]*\) records.*test=\([0-9]*\) records.*/\1 \2/p' "$log" | awk '{print $1 + $2}')
  mbin=$(mb "${inputs[@]}")
  awk -v f="$name" -v n="$n" -v m="$mbin" -v a="$t0" -v b="$t1" -v img="$img" -v csv="$csv" 'BEGIN{
    s = b - a; ips = img ? sprintf("%.0f", n / s) : "-"
    printf "%-14s %9d %9.1f %8.2f %10s %8.1f\n", f, n, m, s, ips, m / s
    printf "%s,%d,%.1f,%.3f,%s,%.2f\n", f, n, m, s, (img ? n / s : ""), m / s >> csv }'
}
run jpeg-folder 1 "$in/jpeg" -- image-folder "$in/jpeg" --val-split 0.1
if "$build/dptrain" shard cifar10 --help >/dev/null 2>&1; then
  run cifar10 1 "$in/cifar" -- cifar10 "$in/cifar"
else
  echo "cifar10        (no 'dptrain shard cifar10' in this build: skipped)"
fi
run csv 0 "$in/table.csv" -- csv "$in/table.csv" --label label --val-split 0.1
run npy 0 "$in/x.npy" "$in/y.npy" -- npy "$in/x.npy" "$in/y.npy" --val-split 0.1
echo; echo "csv: $csv"
[ "$keep" = 1 ] || rm -rf "$in"
rm -rf "$res"
