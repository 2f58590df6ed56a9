#!/usr/bin/env bash
# `dptrain eval` and `predict` on a trained run: eval's accuracy is the one the training run reported for
# its final evaluation, the same at 1 and 2 ranks (the whole confusion matrix too); predict's top-1 agrees
# with eval; --png draws the matrix; and every bad input fails with a message naming what is wrong.
#   trained_cli.sh path/to/dptrain MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"
expect() { # expect EXIT_CODE REGEX -- ARGS...
  local code="$1" re="$2"; shift 3
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$re" <<<"$out"; then bad "dptrain $* -> exit $rc (want $code), output: $out"
  else ok; fi
}
field() { sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p"; }

"$bin" shard fashion-mnist --out fm --shards 4 >log 2>&1 || { cat log; exit 1; }
# a cnn (batch norm: eval mode matters) trained at 2 ranks, evaluated on the first 300 test images
mpi 2 "$bin" train --data fm --model cnn --limit 768 --test-limit 300 --epochs 2 --out run --quiet >train.log 2>&1 ||
  { cat train.log; exit 1; }
train_acc=$(sed -n 's/.*test_acc=\([0-9.]*\).*/\1/p' train.log)
train_loss=$(sed -n 's/.*test_loss=\([0-9.]*\).*/\1/p' train.log)

# --- eval: the training run's final figures, at 1 and 2 ranks
"$bin" eval --run run --limit 300 >e1.txt 2>&1 || bad "eval: $(cat e1.txt)"
grep -q "^loss $train_loss accuracy $train_acc " e1.txt && ok || bad "eval prints $(sed -n 2p e1.txt), train reported loss $train_loss acc $train_acc"
"$bin" eval --run run --limit 300 --json >e1.json 2>&1 || bad "eval --json: $(cat e1.json)"
mpi 2 "$bin" eval --run run --limit 300 --json --eval-batch 64 >e2.json 2>e2.err || bad "eval at 2 ranks: $(cat e2.err)"
[ "$(wc -l <e2.json)" -eq 1 ] && ok || bad "eval at 2 ranks printed $(wc -l <e2.json) lines (rank 0 only prints)"
c1=$(field correct <e1.json) c2=$(field correct <e2.json)
[ -n "$c1" ] && [ "$c1" = "$c2" ] && ok || bad "correct at 1 rank '$c1', at 2 ranks '$c2'"
m1=$(sed 's/.*"confusion"://' e1.json) m2=$(sed 's/.*"confusion"://' e2.json)
[ "$m1" = "$m2" ] && ok || bad "confusion matrices differ between 1 and 2 ranks"
python3 - e1.json "$train_acc" <<'PY' && ok || bad "eval --json is not what it says"
import json, sys
r = json.load(open(sys.argv[1]))
cm = r["confusion"]
assert r["images"] == 300 and sum(map(sum, cm)) == 300, r["images"]
assert sum(cm[k][k] for k in range(10)) == r["correct"]
assert f'{r["accuracy"]:.4f}' == sys.argv[2], (r["accuracy"], sys.argv[2])
for k, c in enumerate(r["classes"]):
    assert c["images"] == sum(cm[k]) and abs(c["accuracy"] - cm[k][k] / max(1, sum(cm[k]))) < 1e-9
PY
if command -v gnuplot >/dev/null; then
  # (50 images: the plot and its 100 cells are checked here, the counts above)
  "$bin" eval --run run --limit 50 --png cm.png >/dev/null 2>&1 || bad "eval --png"
  [ "$(head -c 4 cm.png | tail -c 3)" = "PNG" ] && ok || bad "cm.png is not a PNG"
  [ "$(grep -vc '^#\|^$' cm.png.dat)" -eq 100 ] && ok || bad "cm.png.dat does not hold 100 cells"
fi
# without gnuplot on PATH: the data file, and a warning that says so (PATH keeps the rest: a singleton's
# MPI_Init starts Open MPI's daemon from it)
mkdir nogp
IFS=: read -ra dirs <<<"$PATH"
for d in "${dirs[@]}"; do for f in "$d"/*; do
  case "${f##*/}" in gnuplot*) ;; *) [ -e "nogp/${f##*/}" ] || ln -s "$f" "nogp/${f##*/}" 2>/dev/null ;; esac
done; done
out=$(PATH="$tmp/nogp" "$bin" eval --run run --limit 50 --png nog.png 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "gnuplot is not installed" <<<"$out" && [ -s nog.png.dat ] && [ ! -e nog.png ] && ok ||
  bad "eval --png without gnuplot -> exit $rc: $out"

# --- predict: one line per image, top-1 agrees with eval's accuracy
"$bin" predict --run run --data fm --limit 300 --top 3 --logits >p.jsonl 2>p.err || bad "predict: $(cat p.err)"
python3 - p.jsonl "$c1" <<'PY' && ok || bad "predict's lines are not what they say"
import json, math, sys
names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 300 and [l["index"] for l in lines] == list(range(300))
hits = 0
for l in lines:
    z = l["logits"]; assert len(z) == 10 and len(l["top"]) == 3
    m = max(z); e = [math.exp(v - m) for v in z]; s = sum(e)
    ps = [t["p"] for t in l["top"]]
    assert ps == sorted(ps, reverse=True)
    for t in l["top"]:
        assert abs(t["p"] - e[t["class"]] / s) < 1e-5 and t["name"] == names[t["class"]]
    hits += l["top"][0]["class"] == l["label"]
assert hits == int(sys.argv[2]), (hits, sys.argv[2])
PY
expect 0 '^\{"index":0,"label":9,"top":\[\{"class":[0-9],"name":"[A-Za-z /-]+","p":[0-9.e-]*\}\]\}$' -- predict --run run --data fm --limit 1 --top 1
grep -q '"name":"Ankle boot"' e1.json && ok || bad "eval --json lacks the manifest's class names"

# --- predict on image files: test image 0 as a PNG (grey), 2x larger (area-averaged back exactly) and as RGB
# (R = G = B: luma gives the grey back) gives the logits of the shard set's image 0
python3 - <<'PY' || bad "could not write the PNG files"
import gzip, struct, zlib
raw = gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").read()
img = [raw[16 + 28 * y: 16 + 28 * y + 28] for y in range(28)]
def png(path, rows, w, h, colour):  # 8-bit grey (0) or RGB (2), filter 0 on every row
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    data = b"".join(b"\0" + bytes(r) for r in rows)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))
png("img0.png", img, 28, 28, 0)
png("img0x2.png", [bytes(v for v in r for _ in (0, 1)) for r in img for _ in (0, 1)], 56, 56, 0)
png("img0rgb.png", [bytes(v for v in r for _ in (0, 1, 2)) for r in img], 28, 28, 2)
PY
want=$("$bin" predict --run run --data fm --limit 1 --top 2 --logits 2>&1 | sed 's/.*"logits"://')
"$bin" predict --run run --top 2 --logits img0.png img0x2.png img0rgb.png >pf.jsonl 2>&1 || bad "predict FILE...: $(cat pf.jsonl)"
[ "$(grep -c "\"logits\":$(sed 's/[][]/\\&/g' <<<"$want")" pf.jsonl)" -eq 3 ] && ok ||
  bad "image files' logits differ from the shard set's image 0 ($want): $(cat pf.jsonl)"
grep -q '^{"file":"img0x2.png","top":\[{"class":[0-9],"name":"' pf.jsonl && ok || bad "predict FILE line: $(head -c 300 pf.jsonl)"
echo "not an image" >text.png
expect 1 "text.png: .*(not a PNG|PNG or JPEG|signature)" -- predict --run run img0.png text.png
mpi 2 "$bin" predict --run run --data fm --limit 4 --top 1 >p2.jsonl 2>&1 && [ "$(wc -l <p2.jsonl)" -eq 4 ] && ok ||
  bad "predict under mpirun -np 2: $(cat p2.jsonl)"

# --- bad inputs
mkdir empty
expect 2 "--run DIR is required"                 -- eval
expect 2 "--run DIR is required"                 -- predict --data fm
expect 1 "$tmp/nowhere: run directory"           -- eval --run "$tmp/nowhere"
expect 1 "empty: no checkpoint in the run directory" -- eval --run empty
expect 1 "empty: no checkpoint in the run directory" -- predict --run empty --data fm
# a damaged checkpoint with no older one kept
"$bin" train --data fm --model mlp --limit 128 --test-limit 50 --out one --keep-checkpoints 1 --quiet >/dev/null 2>&1
printf '\xff' | dd of=one/checkpoint.dpc bs=1 seek=200 conv=notrunc status=none
expect 1 "one/checkpoint.dpc: offset .*(crc32|zstd)"   -- eval --run one
expect 1 "one/checkpoint.dpc: offset .*(crc32|zstd)"   -- predict --run one --data fm
mpi 2 "$bin" eval --run one >m.out 2>&1; rc=$?
[ "$rc" -eq 1 ] && [ "$(grep -c 'checkpoint.dpc: offset' m.out)" -eq 1 ] && ok || bad "eval -np 2 of a damaged run -> exit $rc: $(cat m.out)"
# data of another shape or other classes than the run's (the manifest says so before any shard is read)
mkdir small five
sed 's/height=28 width=28/height=14 width=14/' fm/manifest.txt >small/manifest.txt
sed 's/classes=10/classes=5/; /^class [5-9] /d' fm/manifest.txt >five/manifest.txt
expect 1 "small: images are 1x14x14 \(CxHxW\), the run's model takes 1x28x28" -- eval --run run --data small
expect 1 "five: 5 classes, the run's model has 10" -- predict --run run --data five
expect 1 "$tmp/none/manifest.txt"                -- eval --run run --data "$tmp/none"
expect 1 "split 'nope'|'nope'"                    -- eval --run run --split nope
expect 2 "--top: 0 must be >= 1"                 -- predict --run run --data fm --top 0
expect 1 "--top: 11 is out of range \[1, 10\]"   -- predict --run run --data fm --top 11
expect 1 "nofile.png: No such file"              -- predict --run run nofile.png
expect 2 "--data DIR and image FILEs"            -- predict --run run --data fm p.jsonl
expect 2 "name the inputs: --data DIR"           -- predict --run run
expect 1 "$tmp/no/dir/cm.png.dat"                -- eval --run run --limit 10 --png "$tmp/no/dir/cm.png"
expect 2 "--limit: -1 is out of range"           -- eval --run run --limit -1

tally_done trained_cli
