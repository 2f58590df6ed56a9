#!/usr/bin/env bash
# Network descriptions from the command line: `dptrain summary` (layers, shapes, totals, errors) and
# `dptrain train --model FILE.json` for one short epoch at 1 and 2 ranks, with the description's content in
# the checkpoint (a resume with other content is refused). Usage: netdesc_cli.sh path/to/dptrain MPIEXEC
# Exit 77 (skipped) for the training part when the Fashion-MNIST package is not installed.
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"

expect() { # expect EXIT_CODE REGEX -- ARGS...: the exit code, and a line of the output matching REGEX
  local code="$1" re="$2"; shift 3
  local out rc
  out=$("$bin" "$@" 2>&1); rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$re" <<<"$out"; then
    echo "FAIL: dptrain $* -> exit $rc (want $code, /$re/), output:"; echo "$out" | head -20; fails=$((fails+1))
  else
    passes=$((passes+1))
  fi
}

# ---- summary
expect 0 "^Total params: 272,186$"  -- summary --model resnet20 --input 1x28x28
expect 0 "^Trainable params: 272,186$" -- summary --model resnet20 --input 1x28x28
expect 0 "^Buffers \(batch-norm running statistics\): 1,568$" -- summary --model resnet20 --input 1x28x28
expect 0 "^  layer2\.0\.shortcut +shortcut +\[32, 14, 14\] +576 +200,704$" -- summary --model resnet20 --input 1x28x28
expect 0 "^layer3\.2 +residual +\[64, 7, 7\] +73,984 " -- summary --model resnet20 --input 1x28x28
expect 0 "^fc +linear +\[100\] +6,500 +12,800$" -- summary --model resnet20 --input 3x32x32 --classes 100
expect 0 "^FLOPs per sample \(forward, 2 x multiply-adds of conv and linear\): 8,482,304$" -- summary --model cnn --input 1x28x28
expect 0 "^conv1 +conv +\[32, 28, 28\] +320 +451,584$" -- summary --model cnn --input 1x28x28
expect 0 "^Params size \(MB, float32\): 2.14$" -- summary --model mlp --input 1x28x28
expect 0 "--input CxHxW"            -- summary --help
expect 2 "--input CxHxW is required" -- summary --model cnn
expect 2 "--input: '1x28' is not CxHxW" -- summary --input 1x28
expect 2 "--classes: 0 is out of range" -- summary --input 1x28x28 --classes 0
expect 1 "unknown model 'resnet'"   -- summary --model resnet --input 1x28x28
expect 1 "cnn: the output|not divisible|larger than the input" -- summary --model cnn --input 1x2x2
printf '{"layers": [\n  {"type": "flatten"},\n  {"type": "linear" "out": 10}\n]}\n' > syntax.json
expect 1 "syntax.json: JSON syntax error at line 3, column 21" -- summary --model syntax.json --input 1x28x28
printf '{"layers": [{"type": "conv", "out": 4, "kernal": 5}]}' > typo.json
expect 1 "typo.json: layers\[0\] \(conv\): unknown field 'kernal'" -- summary --model typo.json --input 1x28x28
expect 1 "none.json"                -- summary --model none.json --input 1x28x28

# ---- train --model FILE.json: flag errors come before MPI starts
expect 2 "--model: unknown model 'resnet'" -- train --model resnet
expect 1 "typo.json: layers\[0\] \(conv\): unknown field 'kernal'" -- train --model typo.json
expect 1 "syntax.json: JSON syntax error at line 3" -- train --model syntax.json

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  echo "netdesc_cli: $passes passed, $fails failed; training skipped (no dataset-fashion-mnist)"
  [ "$fails" -eq 0 ] && exit 77 || exit 1
fi
"$bin" shard fashion-mnist --out fm --shards 4 >log 2>&1 || { cat log; exit 1; }
cat > tiny.json <<'JSON'
{"name": "tiny", "layers": [
  {"type": "conv", "name": "stem", "out": 4, "padding": 1, "bias": false},
  {"type": "batchnorm"}, {"type": "relu"}, {"type": "maxpool", "kernel": 2},
  {"type": "residual", "name": "block", "layers": [
    {"type": "conv", "out": 8, "stride": 2, "padding": 1, "bias": false}, {"type": "batchnorm"}, {"type": "relu"},
    {"type": "conv", "out": 8, "padding": 1, "bias": false}, {"type": "batchnorm"}]},
  {"type": "relu"}, {"type": "global_avgpool"}, {"type": "dropout", "p": 0.1},
  {"type": "linear", "name": "fc", "out": "classes"}]}
JSON
train=(train --data fm --model tiny.json --epochs 1 --limit 256 --test-limit 128 --batch 32 --seed 3)
for np in 1 2; do
  out=$("$mpiexec" -np "$np" "$bin" "${train[@]}" --out "run$np" 2>&1); rc=$?
  if [ "$rc" -ne 0 ] || ! grep -q "^final: epochs=1 .*ranks=$np " <<<"$out" || ! grep -q "dptrain train: tiny, " <<<"$out"; then
    echo "FAIL: train --model tiny.json at $np rank(s) -> exit $rc:"; echo "$out" | tail -5; fails=$((fails+1))
  else
    passes=$((passes+1))
  fi
done
# the same content under another path resumes; other content does not
"$bin" "${train[@]}" --epochs 2 --out resume --stop-after 3 --quiet >/dev/null 2>&1
sed 's/"p": 0.1/"p": 0.2/' tiny.json > tiny2.json && cp tiny2.json tiny.json.other
cp tiny.json tiny.keep && cp tiny2.json tiny.json
expect 1 "field 'model_json' differs" -- "${train[@]}" --epochs 2 --out resume --resume --quiet
cp tiny.keep tiny.json
expect 0 "^final: epochs=2 " -- "${train[@]}" --epochs 2 --out resume --resume --quiet
expect 1 "field 'model' differs" -- train --data fm --model cnn --epochs 2 --limit 256 --test-limit 128 --batch 32 --seed 3 --out resume --resume --quiet
tally_done netdesc_cli
