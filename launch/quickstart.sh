#!/usr/bin/env bash
# The embedded default end to end: set-up, Fashion-MNIST from the Debian
# package into shards, the CNN trained data-parallel on every core of this
# machine (one MPI rank per core) with a progress bar, test accuracy printed,
# checkpoint and metrics written, curves drawn to PNG.
# Environment: EPOCHS (default 5), MODEL (cnn), RUN (runs/quickstart), NP
# (ranks, default: cores); extra arguments are passed to `dptrain train`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
launch/setup.sh
shards=shards/fashion-mnist
[ -f "$shards/manifest.txt" ] || build/dptrain shard fashion-mnist --out "$shards" --shards 16
run="${RUN:-runs/quickstart}"
rm -rf "$run"
np="${NP:-$(nproc)}"
# The per-rank batch keeps the global batch at 64 whatever the core count.
batch=$(( 64 / np > 0 ? 64 / np : 1 ))
# Under mpirun the ranks' stderr is a pipe: ask for the bar when ours is a terminal.
progress=(); [ -t 2 ] && progress=(--progress bar)
launch/run.sh -np "$np" -- train "${progress[@]}" --data "$shards" --model "${MODEL:-cnn}" --epochs "${EPOCHS:-5}" \
  --batch "$batch" --schedule cosine --weight-decay 5e-4 --out "$run" "$@"
launch/plot.sh "$run"
