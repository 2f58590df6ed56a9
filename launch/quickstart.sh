#!/usr/bin/env bash
# The embedded default end to end: set-up, Fashion-MNIST from the Debian
# package into shards, the CNN trained with a progress bar, test accuracy
# printed, checkpoint and metrics written, curves drawn to PNG.
# Environment: EPOCHS (default 5), MODEL (cnn), RUN (runs/quickstart); extra
# arguments are passed to `dptrain train`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
launch/setup.sh
shards=shards/fashion-mnist
[ -f "$shards/manifest.txt" ] || build/dptrain shard fashion-mnist --out "$shards" --shards 16
run="${RUN:-runs/quickstart}"
rm -rf "$run"
build/dptrain train --data "$shards" --model "${MODEL:-cnn}" --epochs "${EPOCHS:-5}" \
  --schedule cosine --weight-decay 5e-4 --out "$run" "$@"
launch/plot.sh "$run"
