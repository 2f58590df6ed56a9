#!/usr/bin/env bash
# The trained model out and back in, without PyTorch (benchmarks/torch_check.py does the PyTorch side):
#   1. train a tiny cnn run A; `dptrain export` writes it as safetensors, and the parameters it wrote are
#      the checkpoint's (the same params_xxh3 as A's final line); its header holds the metadata (the
#      description, input shape, classes, normalisation) and PyTorch's names and layouts;
#   2. `train --init` reads the file back: the parameters it loads hash to A's again, and after one step
#      at --lr 1e-12 (which leaves the weights as they were) its evaluation is A's;
#   3. refusals, each naming the file and the tensor: a file of another model (extra tensors; with
#      --init-partial, a missing tensor and a shape that differs), a missing file, --init-partial without --init, a damaged
#      file; an extra tensor skipped and listed with --init-partial;
#   4. --resume checks the --init file's content; export without a checkpoint or without --out.
# Usage: export_roundtrip.sh path/to/dptrain
set -u
bin="$1"
export OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
# check NAME COND-EXIT-STATUS OUTPUT: reports, showing the output on failure
check() { if [ "$2" -eq 0 ]; then ok "$1"; else bad "$1"; printf '%s\n' "$3" | tail -5; fi; }
field() { sed -n "s/.*final:.* $1=\([0-9a-f.]*\).*/\1/p" <<<"$2"; }

"$bin" shard fashion-mnist --out "$tmp/fm" --shards 2 --quiet >/dev/null || { echo "FAIL: shard"; exit 1; }
train=(train --data "$tmp/fm" --epochs 1 --batch 64 --test-limit 300 --threads 1)

# 1. export = the checkpoint's parameters
a=$("$bin" "${train[@]}" --model cnn --limit 256 --out "$tmp/A" --quiet 2>&1) || { echo "FAIL: run A: $a"; exit 1; }
ha=$(field params_xxh3 "$a")
out=$("$bin" export --run "$tmp/A" --format safetensors --out "$tmp/a.safetensors" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "params_xxh3=$ha" <<<"$out" && [ ! -e "$tmp/a.safetensors.tmp" ]
check "export writes the checkpoint's parameters (params_xxh3=$ha)" $? "$out"
meta=$(head -c 4096 "$tmp/a.safetensors" | tr -d '\0')
for want in '"format":"pt"' '"dptrain.model":"cnn"' '"dptrain.description":"{\"name\":\"cnn\",\"layers\":[' \
            '"dptrain.input":"[1, 28, 28]"' '"dptrain.classes":"10"' '"dptrain.normalize":"{\"scale\": 255, \"mean\": [0.286], \"std\": [0.353]}"' \
            '"dptrain.class_names":"[\"T-shirt/top\",\"Trouser\",' \
            '"conv1.weight":{"dtype":"F32","shape":[32,1,3,3],"data_offsets":[0,1152]}'; do
  grep -qF -- "$want" <<<"$meta"
  check "the export's header holds $want" $? "$(head -c 600 <<<"$meta")"
done

# 2. read back by --init: the same bytes, the same evaluation
b=$("$bin" "${train[@]}" --model cnn --limit 64 --lr 1e-12 --init "$tmp/a.safetensors" --out "$tmp/B" 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "init: $tmp/a.safetensors: 8 tensors loaded (params_xxh3=$ha)" <<<"$b"
check "--init loads the exported bytes (params_xxh3=$ha)" $? "$b"
[ -n "$(field test_acc "$a")" ] && [ "$(field test_acc "$b")" = "$(field test_acc "$a")" ] &&
  [ "$(field test_loss "$b")" = "$(field test_loss "$a")" ]
check "--init evaluates as the exported run (test_acc=$(field test_acc "$a") test_loss=$(field test_loss "$a"))" $? "$b"
# without --init the same run starts elsewhere: the evaluation above is not a coincidence
c=$("$bin" "${train[@]}" --model cnn --limit 64 --lr 1e-12 --quiet 2>&1)
[ "$(field test_loss "$c")" != "$(field test_loss "$a")" ]
check "without --init the evaluation differs" $? "$c"

# 3. refusals
"$bin" "${train[@]}" --model mlp --limit 64 --out "$tmp/M" --quiet >/dev/null 2>&1 &&
  "$bin" export --run "$tmp/M" --out "$tmp/mlp.safetensors" >/dev/null 2>&1 || { echo "FAIL: mlp run"; exit 1; }
out=$("$bin" "${train[@]}" --model cnn --limit 64 --init "$tmp/mlp.safetensors" 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "error: --init $tmp/mlp.safetensors: tensor 'fc3.weight' \[10, 256\] is not a parameter or buffer of the model (--init-partial skips such tensors)" <<<"$out"
check "a file of another model: its extra tensor named" $? "$out"
out=$("$bin" "${train[@]}" --model cnn --limit 64 --init "$tmp/mlp.safetensors" --init-partial 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "the model's parameter 'conv1.weight' \[32, 1, 3, 3\] is not in the file" <<<"$out"
check "--init-partial: a tensor of the model missing from the file" $? "$out"
out=$("$bin" "${train[@]}" --model mlp --limit 64 --init "$tmp/a.safetensors" --init-partial 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "tensor 'fc1.weight' has shape \[128, 3136\] in the file, the model's is \[512, 784\]" <<<"$out"
check "--init-partial: a shape that differs, both shapes named" $? "$out"
out=$("$bin" "${train[@]}" --model cnn --limit 64 --init "$tmp/none.safetensors" 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "$tmp/none.safetensors: open: No such file" <<<"$out"
check "a missing --init file" $? "$out"
out=$("$bin" "${train[@]}" --model cnn --limit 64 --init-partial 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "\-\-init-partial needs --init FILE" <<<"$out"
check "--init-partial without --init" $? "$out"
head -c 1000 "$tmp/a.safetensors" > "$tmp/cut.safetensors"
out=$("$bin" "${train[@]}" --model cnn --limit 64 --init "$tmp/cut.safetensors" 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "$tmp/cut.safetensors: header length [0-9]* is past the end of the file (1000 bytes)" <<<"$out"
check "a truncated file" $? "$out"

# a.safetensors plus a tensor 'extra.weight' [1]: the header rewritten, the data appended to
n=$(od -An -tu8 -N8 "$tmp/a.safetensors" | tr -d ' ')
size=$(stat -c %s "$tmp/a.safetensors")
data=$((size - 8 - n))
hdr=$(dd if="$tmp/a.safetensors" bs=1 skip=8 count="$n" 2>/dev/null | sed 's/ *$//')
hdr="${hdr%\}},\"extra.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[$data,$((data + 4))]}}"
len=${#hdr}
{
  for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $(((len >> (8 * i)) & 255)))"; done
  printf '%s' "$hdr"
  tail -c "$data" "$tmp/a.safetensors"
  printf '\0\0\0\0'
} > "$tmp/extra.safetensors"
out=$("$bin" "${train[@]}" --model cnn --limit 64 --init "$tmp/extra.safetensors" 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "tensor 'extra.weight' \[1\] is not a parameter or buffer" <<<"$out"
check "an extra tensor is refused" $? "$out"
out=$("$bin" "${train[@]}" --model cnn --limit 64 --init "$tmp/extra.safetensors" --init-partial 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "skipped tensors the model does not have: extra.weight" <<<"$out" &&
  grep -q "params_xxh3=$ha" <<<"$out"
check "--init-partial skips and lists it, loading the rest" $? "$out"

# 4. resume checks the content of the --init file
r=(train --data "$tmp/fm" --model cnn --epochs 1 --batch 64 --limit 192 --test-limit 100 --out "$tmp/R" --quiet)
"$bin" "${r[@]}" --init "$tmp/a.safetensors" --stop-after 1 >/dev/null 2>&1
out=$("$bin" "${r[@]}" --init "$tmp/extra.safetensors" --init-partial --resume 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "field 'init' differs" <<<"$out"
check "--resume with an --init file of other content is refused" $? "$out"
cp "$tmp/a.safetensors" "$tmp/moved.safetensors"
out=$("$bin" "${r[@]}" --init "$tmp/moved.safetensors" --resume 2>&1); rc=$?
[ "$rc" -eq 0 ] && grep -q "final:" <<<"$out"
check "--resume with the same content under another name goes on" $? "$out"

out=$("$bin" export --run "$tmp/nothing" --out "$tmp/x.safetensors" 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "$tmp/nothing" <<<"$out" && [ ! -e "$tmp/x.safetensors" ]
check "export of a directory without a checkpoint" $? "$out"
out=$("$bin" export --run "$tmp/A" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "\-\-out FILE is required" <<<"$out"
check "export without --out" $? "$out"
out=$("$bin" export --run "$tmp/A" --format onnx --out "$tmp/x.onnx" 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "onnx" <<<"$out"
check "export to an unknown format" $? "$out"

echo "export_roundtrip: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
