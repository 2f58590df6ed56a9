#!/usr/bin/env bash
# benchmarks/darts_torch.py's PC-DARTS supernet is dptrain's (issue 22's side-by-side search benchmark):
#  - the per-edge node (PC-DARTS' code: a channel shuffle per edge, then the beta-weighted sum) and the fused
#    node (dptrain's: one shuffle of the beta-weighted sums) give the same forward and gradients (float64);
#  - for several layers x channels x K x edge normalisation, darts_torch.py --params-only counts the weights
#    and architecture parameters that `dptrain search` reports ("N weights + M alphas");
#  - both refuse a K that does not divide C/2, and so does bench_search.sh --ks.
# Usage: darts_torch_pc.sh path/to/dptrain. Skips (77) without Debian's python3-torch at /usr/bin/python3.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py="$here/../../benchmarks/darts_torch.py" bench="$here/../../benchmarks/bench_search.sh"
source "$here/../common/cli_env.sh"
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "darts_torch_pc: no torch for /usr/bin/python3: skipped"; exit 77; }
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

for k in 2 4; do
  o=$(/usr/bin/python3 "$py" --check-forms --partial-channels "$k" --layers 3 --channels 8 --image-size 8 --synthetic 2>&1)
  case "$o" in *" ok") ok "per-edge and fused node agree, K=$k: ${o#torch_search: }" ;;
               *) bad "check-forms K=$k: $o" ;; esac
done

"$bin" shard fashion-mnist --out fm --shards 4 >log 2>&1 || { cat log; bad "shard fashion-mnist"; tally_done darts_torch_pc; exit; }
# layers channels K edge-norm (- = the default: on iff K > 1)
for spec in "3 8 1 -" "3 8 4 -" "3 8 2 off" "3 8 1 on" "3 16 8 -" "5 8 4 -"; do
  read -r L C K en <<<"$spec"
  flags=(--layers "$L" --channels "$C" --partial-channels "$K")
  [ "$en" = - ] || flags+=(--edge-norm "$en")
  d=$("$bin" search --data fm "${flags[@]}" --batch 4 --limit 16 --eval-limit 8 --epochs 1 --out "s_$L$C$K$en" 2>&1 |
      sed -n 's/^dptrain search:.* \([0-9]*\) weights + \([0-9]*\) alphas.*/\1+\2/p')
  t=$(/usr/bin/python3 "$py" --params-only "${flags[@]}" 2>&1 | sed -n 's/.* params=\([0-9]*\) .*arch_params=\([0-9]*\).*/\1+\2/p')
  if [ -n "$d" ] && [ "$d" = "$t" ]; then ok "L=$L C=$C K=$K edge-norm $en: $d weights+arch on both sides"
  else bad "L=$L C=$C K=$K edge-norm $en: dptrain '${d}', darts_torch.py '${t}'"; fi
done

"$bin" search --data fm --layers 3 --channels 8 --partial-channels 3 --limit 16 --out s_bad >log 2>&1; rd=$?
/usr/bin/python3 "$py" --params-only --layers 3 --channels 8 --partial-channels 3 >tlog 2>&1; rt=$?
if [ "$rd" -ne 0 ] && [ "$rt" -ne 0 ] && grep -q -- "--partial-channels 3" tlog; then ok "K=3, C=8 refused by both"
else bad "K=3, C=8: dptrain exit $rd, darts_torch.py exit $rt: $(cat tlog)"; fi
"$bench" --configs 5x8 --ks 3 >blog 2>&1; rb=$?
if [ "$rb" -eq 2 ] && grep -q -- "--ks 3" blog; then ok "bench_search.sh --ks 3 with 5x8 refused"
else bad "bench_search.sh --ks 3: exit $rb: $(cat blog)"; fi
tally_done darts_torch_pc
