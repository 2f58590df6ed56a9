#!/usr/bin/env bash
# The bits every workload ends with, for fixed seeds at 1 and 2 ranks: train (mlp, cnn, a genotype's
# network), search (darts, gumbel, gold) and dsi-train (central and two members). One line per case,
# "case digest": the final parameters' XXH3 for train, that of the weights and alpha and the md5 of
# genotype.json for search, the md5 of every member's model.dsi for dsi-train.
#
#   same_bits.sh BIN MPIEXEC                 print the digests of BIN
#   same_bits.sh --check PINS BIN MPIEXEC    compare them with the lines of PINS recorded for the
#                                            OpenBLAS kernels BIN runs (`BIN --version`); fail on any
#                                            difference, naming the case
#   same_bits.sh --record PINS BIN MPIEXEC   add (or replace) those kernels' lines in PINS
#
# Digests depend on the OpenBLAS kernels (sgemm's rounding differs between them), so PINS keys every
# line by kernel name. Kernels with no line in PINS are reported as skipped (exit 77): record them
# from a build whose bits are known to be right, as docs/ARCHITECTURE.md says.
set -u
mode=print pins=
case "${1:-}" in
  --check) mode=check; pins="$2"; shift 2 ;;
  --record) mode=record; pins="$2"; shift 2 ;;
  -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
esac
[ $# -eq 2 ] || { echo "usage: same_bits.sh [--check|--record PINS] BIN MPIEXEC" >&2; exit 2; }
bin="$1" mpiexec="$2"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
export DP_CONV=gemm # the pins are of the GEMM convolution path (the AVX-512 kernels sum in another order)
# DP_OPENBLAS_CORE names the kernels of a build older than --version
core=${DP_OPENBLAS_CORE:-$("$bin" --version 2>/dev/null | sed -n 's/^openblas_core //p')}
[ -n "$core" ] || { echo "same_bits: '$bin --version' names no OpenBLAS core" >&2; exit 2; }
bin=$(realpath "$bin") pins=${pins:+$(realpath -m "$pins")}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cd "$tmp" # paths are relative from here: checkpoints hold the flags, and so the paths, of their run
mpi() { local np="$1"; shift; "$mpiexec" -np "$np" "$@"; }
die() { echo "same_bits: $1 failed:" >&2; cat "$tmp/log" >&2; exit 1; }
md5() { cat "$@" | md5sum | cut -c1-16; }

"$bin" shard fashion-mnist --out fm --shards 4 >"$tmp/log" 2>&1 || die shard
"$bin" search --random-genotype g.json --seed 5 >"$tmp/log" 2>&1 || die random-genotype
# 300 documents, 4 queries each, words drawn from a document's own small vocabulary
awk 'BEGIN { srand(7); for (d = 0; d < 300; d++) for (q = 0; q < 4; q++) {
       s = ""; for (w = 0; w < 5; w++) s = s (w ? " " : "") "w" (d * 3 + int(rand() * 6)) "x" int(rand() * 2);
       printf "%s\tdoc%d\n", s, d } }' >q.tsv
# the pinned computation is the first split and the plain model (dsi-train's defaults moved to the
# measured recipe, dsi-prepare's to the text split, after these digests were recorded)
"$bin" dsi-prepare --queries q.tsv --out dsi --members 2 --buckets 65536 --split queries >"$tmp/log" 2>&1 || die dsi-prepare
plain=(--head dot --head-init random --head-scale 16 --lexical off --encoder bag)

out="$tmp/digests"
: >"$out"
train=(train --data fm --epochs 1 --test-limit 200 --seed 3 --quiet)
for np in 1 2; do
  for c in "mlp|--model mlp --limit 2000 --accumulate 2" "mlp_powersgd|--model mlp --limit 1000 --codec powersgd:2" \
           "cnn|--model cnn --limit 512" "arch|--arch g.json --layers 3 --channels 4 --limit 256 --batch 32"; do
    name=${c%%|*}
    read -ra args <<<"${c#*|}"
    mpi "$np" "$bin" "${train[@]}" "${args[@]}" >"$tmp/log" 2>&1 || die "train $name np$np"
    echo "train_${name}_np$np $(sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' "$tmp/log")" >>"$out"
  done
  for s in darts gumbel gold; do
    extra=()
    [ "$s" = gold ] && extra=(--warmup-epochs 0 --prune-every 3)
    d="search_${s}_$np"
    mpi "$np" "$bin" search --data fm --strategy "$s" --layers 2 --channels 4 --limit 256 --batch 16 \
      --epochs 2 --eval-limit 64 --seed 3 --quiet --out "$d" "${extra[@]}" >"$tmp/log" 2>&1 || die "search $s np$np"
    echo "search_${s}_np$np $(sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' "$tmp/log")-$(md5 "$d/genotype.json")" >>"$out"
  done
  mpi "$np" "$bin" dsi-train --data dsi --epochs 2 --batch 32 --embed 16 --hidden 32 --embed-rows 4096 "${plain[@]}" \
    --seed 3 --quiet --eval-limit 100 --out "dsi_c$np" >"$tmp/log" 2>&1 || die "dsi-train central np$np"
  echo "dsi_central_np$np $(md5 "dsi_c$np"/member-0/model.dsi)" >>"$out"
done
mpi 2 "$bin" dsi-train --data dsi --members 2 --epochs 2 --batch 32 --embed 16 --hidden 32 --embed-rows 4096 \
  "${plain[@]}" --seed 3 --quiet --eval-limit 100 --out dsi_m2 >"$tmp/log" 2>&1 || die "dsi-train members"
echo "dsi_members2_np2 $(md5 dsi_m2/member-0/model.dsi dsi_m2/member-1/model.dsi)" >>"$out"

case "$mode" in
  print) sed "s/^/$core /" "$out" ;;
  record)
    { [ -f "$pins" ] && grep -v "^$core " "$pins"; sed "s/^/$core /" "$out"; } >"$tmp/pins"
    cp "$tmp/pins" "$pins"; echo "same_bits: recorded $(wc -l <"$out") cases for $core in $pins" ;;
  check)
    grep -q "^$core " "$pins" 2>/dev/null || { echo "same_bits: no pinned digests for OpenBLAS core $core in $pins: skipped"; exit 77; }
    fails=0 n=0
    while read -r c digest; do
      n=$((n + 1))
      want=$(awk -v k="$core" -v c="$c" '$1 == k && $2 == c { print $3 }' "$pins")
      if [ "$digest" = "$want" ]; then echo "ok: $c $digest"
      else echo "FAIL: $c: $digest, pinned ${want:-nothing}"; fails=$((fails + 1)); fi
    done <"$out"
    echo "$((n - fails)) passed, $fails failed"
    [ "$fails" -eq 0 ] ;;
esac
