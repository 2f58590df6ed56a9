#!/usr/bin/env bash
# dptrain <-> PyTorch through safetensors (benchmarks/torch_check.py), for each model: a short run is
# trained and exported, PyTorch rebuilds it from the file's metadata and must give dptrain predict's logits
# on the test images (a); a PyTorch-initialised network saved as safetensors must give dptrain train --init
# the same first-step loss as PyTorch's (b). Relative difference <= 1e-4; exits non-zero on a mismatch.
#
#   benchmarks/torch_check.sh [--models "mlp cnn every_layer"] [--limit N] [--test-limit N] [--batch B]
#
# --models: shipped names (mlp cnn resnet20), description files, or every_layer (benchmarks/every_layer.json:
# conv with dilation and groups, batch-norm 2d and 1d, gelu, tanh, sigmoid, avg/max/global pooling, a
# residual block with a projection shortcut, linear).
# --limit: training images of the short run (default 512); --test-limit: test images compared (default
# 1000); --batch: the first-step batch of (b) (default 64). Needs Debian's python3-torch, numpy and zstd
# (the command: the script decodes the shards' zstd frames with it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
models="mlp cnn every_layer" limit=512 test_limit=1000 batch=64
dp_flags torch_check "--models=models --limit=limit --test-limit=test_limit --batch=batch" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_torch
command -v zstd >/dev/null || { echo "torch_check: needs the zstd command to read shards (apt-get install zstd)" >&2; exit 1; }
status=0
for m in $models; do
  # a shipped name, a description file, or NAME for benchmarks/NAME.json (every_layer: each layer type once)
  [ -f "$m" ] || [ ! -f "$root/benchmarks/$m.json" ] || m="$root/benchmarks/$m.json"
  work="$out/torch_check/$(basename "$m" .json)"
  rm -rf "$work"; mkdir -p "$work"
  "$build/dptrain" train --data "$shards" --model "$m" --epochs 1 --batch 64 --limit "$limit" \
    --test-limit "$test_limit" --threads 1 --out "$work/run" --quiet > "$work/train.log" 2>&1 ||
    { echo "torch_check: training $m failed:" >&2; cat "$work/train.log" >&2; exit 1; }
  echo "== $(basename "$m" .json)"
  /usr/bin/python3 "$root/benchmarks/torch_check.py" --dptrain "$build/dptrain" --data "$shards" --work "$work" \
    --run "$work/run" --test-limit "$test_limit" --model "$m" --batch "$batch" || status=1
done
exit "$status"
