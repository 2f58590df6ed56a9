#!/usr/bin/env bash
# bench_auto.sh: issue 21's allreduce criteria end to end, with the commands of RESULTS §15.
#   1. 2 ranks on this machine: `dptrain tune-allreduce` writes TAG_table.txt, then bench_allreduce
#      --algos rd,auto --allreduce-table TAG_table.txt from 4 KiB to 256 MiB; prints auto's busbw ratio
#      to MPI_Allreduce per size (issue 21: >= 1.0 at every size).
#   2. (root only; --no-vcluster skips it) 2 nodes x 2 ranks at 1 Gbit/s on launch/vcluster.sh: the flat
#      ring, hier and hier-rd from 1 to 64 MiB; prints hier / ring (issue 21: >= 1.4) and hier-rd / hier.
#
#   benchmarks/bench_auto.sh [--quick] [--no-vcluster] [--tag auto]
#   --quick   a smoke run: 4 KiB .. 1 MiB on this machine, 1 and 4 MiB on the cluster, few iterations
# Writes benchmarks/out/TAG_tune.txt, TAG_table.txt, TAG_2ranks.{txt,csv}, TAG_vc.{txt,csv}.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --no-shards
# shellcheck source=usage.sh
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
dp="$build/dptrain" bench="$build/benchmarks/bench_allreduce"

quick=0 vc=1 tag=auto
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) dp_usage; exit 0 ;;
    --quick) quick=1; shift ;;
    --no-vcluster) vc=0; shift ;;
    --tag) [ $# -ge 2 ] || { echo "$me: --tag needs a value" >&2; exit 2; }; tag="$2"; shift 2 ;;
    *) echo "$me: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
dp_need_built "$dp" "$bench"
if [ "$quick" = 1 ]; then max=1M tune_extra=(--reps 3) bench_extra=(--iters 5 --cap 1) vmax=4M vit=2
else max=256M tune_extra=() bench_extra=() vmax=64M vit=5; fi

# bench_allreduce's CSV: bytes, then name busbw [ratio] for each variant
summary() {
  awk -F, 'NR > 1 { row[$1] = row[$1] sprintf("  %s %.3f%s", $3, $6, $8 > 0 ? sprintf(" (%.2fx)", $8) : "");
                    if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 } }
           END { for (i = 1; i <= n; i++) printf "%10d%s\n", order[i], row[order[i]] }' "$1"
}

echo "== 1. 2 ranks: tune-allreduce, then auto against MPI_Allreduce (busbw GB/s, ratio to MPI)"
mpirun -np 2 --bind-to core "$dp" tune-allreduce --max "$max" "${tune_extra[@]}" --out "$out/${tag}_table.txt" |
  tee "$out/${tag}_tune.txt"
mpirun -np 2 --bind-to core "$bench" --min 4K --max "$max" --factor 4 --algos rd,auto \
  --allreduce-table "$out/${tag}_table.txt" --csv "$out/${tag}_2ranks.csv" "${bench_extra[@]}" >"$out/${tag}_2ranks.txt"
summary "$out/${tag}_2ranks.csv"
awk -F, 'NR > 1 && $3 == "auto" { n++; if ($8 < 1.0) { bad++; list = list " " $1 } }
         END { printf "auto >= 1.0x MPI_Allreduce at %d of %d sizes%s\n", n - bad, n, bad ? " (below at" list ")" : "" }' \
  "$out/${tag}_2ranks.csv"

if [ "$vc" = 1 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "$me: the virtual cluster needs root: skipped"; exit 0; fi
  echo "== 2. 2 nodes x 2 ranks at 1 Gbit/s: ring, hier, hier-rd (busbw GB/s)"
  "$root/launch/vcluster.sh" --nodes 2 --ranks-per-node 2 --rate 1gbit -- mpirun -np 4 "$bench" --min 1M \
    --max "$vmax" --factor 4 --iters "$vit" --cap 8 --algos hier,hier-rd --csv "$out/${tag}_vc.csv" >"$out/${tag}_vc.txt"
  summary "$out/${tag}_vc.csv"
  awk -F, 'NR > 1 { b[$1] = 1; if ($3 ~ /^ring/) r[$1] = $6; if ($3 == "hier") h[$1] = $6; if ($3 == "hier-rd") d[$1] = $6 }
           END { for (x in b) if (r[x] > 0 && h[x] > 0)
                   printf "%10d  hier / ring %.2fx (want >= 1.4)  hier-rd / hier %.2fx (want >= 1.0)\n", x, h[x] / r[x], d[x] / h[x] }' \
    "$out/${tag}_vc.csv" | sort -n
fi
