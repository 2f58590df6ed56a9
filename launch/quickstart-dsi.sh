#!/usr/bin/env bash
# The DSI default end to end, from this machine's own Debian package index:
# set-up and build, the English package descriptions fetched (root) or taken
# from the lists apt already has, `dptrain dsi-prepare` (docid = package name,
# queries = its short description and the sentences of its long description,
# text = the whole description with the test sentences cut out; central dataset
# plus 2-, 4- and 8-member splits), then a DSI model trained
# data-parallel and evaluated on the test queries, next to BM25.
# Environment: DP_DSI_DATA (dataset dir, default benchmarks/out/debian-dsi),
# RUN (default runs/dsi-quickstart), EPOCHS (default 4), DP_DSI_PREPARE_ONLY=1
# (stop after the datasets are written); extra arguments go
# to `dptrain dsi-prepare` (e.g. --kmeans-members, --limit-docs 5000).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
launch/setup.sh
bin=build/dptrain
data="${DP_DSI_DATA:-benchmarks/out/debian-dsi}"
run="${RUN:-runs/dsi-quickstart}"
work="$data.src"   # the raw Packages / Translation-en text, kept for reruns
mkdir -p "$work"

# 1. English long descriptions: apt on this machine may be set to fetch no
#    translations, so ask for them explicitly when we can.
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq -o Acquire::Languages=en
else
  echo "quickstart-dsi: not root: using the package lists apt already has" \
       "(for all long descriptions run: sudo apt-get update -o Acquire::Languages=en)" >&2
fi
translations=()
for f in /var/lib/apt/lists/*_i18n_Translation-en*; do
  [ -f "$f" ] || continue            # the glob matched nothing, or a .diff directory
  case "$f" in *.diff*) continue ;; esac
  translations+=("$f")
done
if [ ${#translations[@]} -eq 0 ]; then
  echo "quickstart-dsi: no Translation-en lists in /var/lib/apt/lists: only short descriptions," \
       "so almost every package will be dropped (run apt-get update -o Acquire::Languages=en as root)" >&2
  : > "$work/Translation-en"
else
  # cat-file reads every compression apt uses (lz4, gz, xz, plain)
  /usr/lib/apt/apt-helper cat-file "${translations[@]}" > "$work/Translation-en"
fi
apt-cache dumpavail > "$work/Packages"

# 2. The datasets: $data (every package) and $data/m{2,4,8}/<k>/. 2^22 token ids
#    fold onto the model's 2^18 embedding rows: the members' vocabularies (which
#    decide --abstain below) stay nearly collision-free (RESULTS section 9).
$bin dsi-prepare --debian-packages "$work/Packages" --debian-translations "$work/Translation-en" \
  --out "$data" --members 2,4,8 --buckets 4194304 "$@"

[ -n "${DP_DSI_PREPARE_ONLY:-}" ] && exit 0

# 3. Train and evaluate: the centralised model data-parallel on 2 ranks, then a
#    2-member ensemble (one rank each), both scored on every test query next to
#    BM25. dsi-train's and dsi-eval's defaults are the recipe measured in
#    benchmarks/RESULTS.md section 9 (prototype head init, cosine head at s = 64,
#    members abstaining at 32).
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
flags=(--epochs "${EPOCHS:-4}")
rm -rf "$run"
mpirun -np 2 --oversubscribe -x OPENBLAS_NUM_THREADS=1 $bin dsi-train --data "$data" --out "$run/central" "${flags[@]}"
mpirun -np 2 --oversubscribe -x OPENBLAS_NUM_THREADS=1 $bin dsi-train --data "$data" --members 2 --out "$run/m2" "${flags[@]}"
$bin dsi-eval --bm25 "$data" --test "$data/test.tsv"
$bin dsi-eval --run "$run/central" --test "$data/test.tsv" --agg confidence
mpirun -np 2 --oversubscribe -x OPENBLAS_NUM_THREADS=1 $bin dsi-eval --run "$run/m2" --test "$data/test.tsv"
