#!/usr/bin/env bash
# dptrain against PyTorch DistributedDataParallel (gloo), side by side in one
# run: the same mlp, cnn or resnet20, batch 64 per rank, one thread per rank, at 1 and
# P ranks. Prints median training samples/s of each, the ratio, and each
# one's weak-scaling efficiency thr(P) / (P thr(1)).
#
#   benchmarks/compare_ddp.sh [--np 2] [--reps 3] [--models "mlp cnn resnet20"] [--limit-mlp 30000]
#                             [--limit-cnn 7500] [--limit-resnet20 2560]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/usage.sh"
np=2 reps=3 models="mlp cnn" lim_mlp=30000 lim_cnn=7500 lim_resnet20=2560
dp_flags compare_ddp "--np=np --reps=reps --models=models --limit-mlp=lim_mlp --limit-cnn=lim_cnn \
  --limit-resnet20=lim_resnet20" "$@"
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
need_torch
csv="$out/compare_ddp.csv"
echo "model,impl,ranks,rep,samples_per_s" > "$csv"
run() { # impl model ranks rep
  local impl="$1" m="$2" p="$3" lim log
  case "$m" in mlp) lim=$lim_mlp ;; resnet20) lim=$lim_resnet20 ;; *) lim=$lim_cnn ;; esac
  log=$(mktemp)
  if [ "$impl" = dptrain ]; then
    dp_mpirun "$p" "$build/dptrain" train --data "$shards" --model "$m" --epochs 1 --batch 64 --limit "$lim" \
      --test-limit 500 --quiet >"$log" 2>&1
  else
    # Debian's torchrun (Python 3.11) crashes at start without --redirects/--tee
    torchrun --nproc_per_node "$p" --redirects 0:1 --tee 0:1 "$root/benchmarks/torch_ref.py" --model "$m" \
      --epochs 1 --batch 64 --limit "$lim" --threads 1 >"$log" 2>&1
  fi || { echo "compare_ddp: $impl $m $p failed:" >&2; cat "$log" >&2; exit 1; }
  echo "$m,$impl,$p,$4,$(field train_samples_per_s "$log")" >> "$csv"
  rm -f "$log"
}
for rep in $(seq 1 "$reps"); do
  for m in $models; do
    for p in 1 "$np"; do
      if [ $((rep % 2)) -eq 1 ]; then order="dptrain torch"; else order="torch dptrain"; fi
      for impl in $order; do run "$impl" "$m" "$p" "$rep"; done
    done
  done
done
med() { awk -F, -v m="$1" -v i="$2" -v p="$3" '$1==m && $2==i && $3==p {print $5}' "$csv" | median; }
summary="$out/compare_ddp_summary.csv"
echo "model,ranks,dptrain_sps,torch_sps,ratio,dptrain_weak_eff,torch_weak_eff" > "$summary"
printf "%-5s %5s %12s %12s %7s %10s %10s\n" model ranks dptrain/s ddp/s ratio dp_eff ddp_eff
for m in $models; do
  d1=$(med "$m" dptrain 1) t1=$(med "$m" torch 1) d=$(med "$m" dptrain "$np") t=$(med "$m" torch "$np")
  line=$(awk -v m="$m" -v p="$np" -v d="$d" -v t="$t" -v d1="$d1" -v t1="$t1" \
         'BEGIN{printf "%s,%s,%.0f,%.0f,%.2f,%.3f,%.3f", m, p, d, t, d/t, d/(p*d1), t/(p*t1)}')
  echo "$line" >> "$summary"
  IFS=, read -r _ _ d t ratio de te <<<"$line"
  printf "%-5s %5s %12s %12s %6sx %9.0f%% %9.0f%%\n" "$m" "$np" "$d" "$t" "$ratio" \
    "$(awk -v x="$de" 'BEGIN{print x*100}')" "$(awk -v x="$te" 'BEGIN{print x*100}')"
done
echo; echo "csv: $csv and $summary"
