set -u
D=$PWD/.devcarry
tar xzf $D/mpi-runtime.tgz -C /
export LD_LIBRARY_PATH=/opt/dpdeps/lib:$D/lib OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mkdir -p benchmarks/out
$D/new/dptrain shard fashion-mnist --idx $D/idx --out benchmarks/out/fashion-mnist --shards 16 >/dev/null
{ nproc; lscpu; } > $OUT/machine.txt 2>&1
T0=$SECONDS
common=(--models "mlp cnn" --ranks "1 8 16" --reps 1 --weak-per-rank --limit-cnn 3750 --limit-mlp 3750 --modes weak)
for rep in 1 2 3; do
  for b in new old; do
    [ $((SECONDS - T0)) -lt 250 ] || break 2
    c="ring,on"; [ $b = new ] && c="ring,on ring,off"
    DP_BUILD_DIR=$D/$b benchmarks/bench_scaling.sh "${common[@]}" --combos "$c" --tag _${b}_r$rep 2>&1 | grep -E "weak|fail"
    echo "[$((SECONDS - T0)) s] $b rep $rep"
  done
done
DP_BUILD_DIR=$D/new benchmarks/bench_scaling.sh --models "mlp cnn" --ranks "1 8 16" --reps 1 --weak-per-rank \
  --limit-cnn 3750 --limit-mlp 3750 --modes indep --tag _indep 2>&1 | grep -E "indep|fail"
echo "[$((SECONDS - T0)) s] done"
tar czf $OUT/res.tgz benchmarks/out/*.csv
