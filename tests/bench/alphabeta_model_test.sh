#!/usr/bin/env bash
# bench_alphabeta -> allreduce_model, end to end at 2 ranks on this machine, tiny sizes (no timing is
# asserted: the figures of a loaded machine mean nothing):
#   1. bench_alphabeta --out writes a parameter file with the intra-node link and gamma, and says that one
#      node gives intra-node figures only;
#   2. allreduce_model time reads it and predicts every algorithm at 1 node x 2 ranks (finite, > 0);
#      and refuses 2 nodes (no inter-node link in the file), naming what to give;
#   3. a damaged parameter file makes allreduce_model exit 2 naming the file, the line and the field;
#   4. allreduce_model scale writes the CSV header and one row per model x rate x rpn x nodes x (algorithms + auto);
#   5. allreduce_model check compares a bench_allreduce CSV row by row (an exact row 0%, a row 2x off -50%,
#      an unknown variant skipped) and refuses a CSV of another rank count.
# Usage: alphabeta_model_test.sh path/to/bench_alphabeta path/to/allreduce_model path/to/mpiexec
set -u
ab="$1" model="$2" mpiexec="$3"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }

out=$("$mpiexec" -np 2 "$ab" --max-bytes 64K --budget 0.05 --reps 5 --gamma-big 1M --out "$tmp/p" 2>&1); rc=$?
[ $rc -eq 0 ] && ok "bench_alphabeta at 2 ranks exits 0" || { bad "bench_alphabeta exit $rc: $out"; }
grep -q "intra-node figures only" <<<"$out" && ok "one node: says intra-node figures only" || bad "no one-node notice: $out"
for k in alpha_intra beta_intra resid_intra gamma_cache gamma_mem seg_bytes; do
  grep -qE "^$k=[0-9.e+-]+$" "$tmp/p" && ok "file has $k" || bad "file lacks $k: $(cat "$tmp/p")"
done
grep -q "^beta_inter=" "$tmp/p" && bad "one node but beta_inter written" || ok "one node: no beta_inter"

pred=$("$model" time --params "$tmp/p" --nodes 1 --rpn 2 --bytes 4K,1M 2>&1); rc=$?
rows=$(awk '$1 == 4096 || $1 == 1048576' <<<"$pred")
if [ $rc -eq 0 ] && [ "$(wc -l <<<"$rows")" -eq 2 ] &&
   awk '{for (i = 2; i <= 9; i++) if (!($i + 0 > 0)) exit 1}' <<<"$rows"; then ok "model predicts 8 algorithms > 0 at 1x2"
else bad "model time: rc $rc: $pred"; fi
msg=$("$model" time --params "$tmp/p" --nodes 2 --rpn 2 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "inter-node link" <<<"$msg" && ok "2 nodes without an inter link refused: $msg" || bad "2 nodes: rc $rc: $msg"

sed 's/^beta_intra=.*/beta_intra=quick/' "$tmp/p" > "$tmp/bad"
line=$(grep -n '^beta_intra=' "$tmp/bad" | cut -d: -f1)
msg=$("$model" time --params "$tmp/bad" 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "$tmp/bad:$line: field 'beta_intra'" <<<"$msg" && ok "bad value: $msg" || bad "bad value: rc $rc: $msg"

printf 'm1 1000000 0.01 0.5 0 0 test\nm2 50000 0.002 0.7 0 10\n' > "$tmp/c"
"$model" scale --params "$tmp/p" --compute "$tmp/c" --gbit 10,100 --rpn 1,2 --max-nodes 8 --csv "$tmp/s.csv" > "$tmp/s.txt" 2>&1; rc=$?
# 2 models x 2 rates x 2 rpn x 4 node counts x 9 (8 algorithms + auto)
n=$(($(wc -l < "$tmp/s.csv") - 1))
[ $rc -eq 0 ] && [ "$n" -eq $((2 * 2 * 2 * 4 * 9)) ] && head -1 "$tmp/s.csv" | grep -q '^model,gbit,rpn,nodes,ranks,algo,step_s,efficiency' &&
  ok "scale CSV: $n rows" || bad "scale: rc $rc, $n rows: $(head -3 "$tmp/s.txt")"
awk -F, 'NR > 1 && $4 == 1 && $3 == 1 && $8 != 1 {exit 1}' "$tmp/s.csv" && ok "one rank: efficiency 1" || bad "one rank's efficiency is not 1"
# the README table: --at 2,8 -> one row per model x rate x rpn x (4 algorithms + auto), 2 node columns
"$model" scale --params "$tmp/p" --compute "$tmp/c" --gbit 10 --rpn 2 --max-nodes 8 --at 2,8 > "$tmp/t.txt" 2>&1; rc=$?
rows=$(grep -c '^| m[12] | 10 | 2 |' "$tmp/t.txt")
[ $rc -eq 0 ] && [ "$rows" -eq 10 ] && grep -q '^| model | Gbit/s | ranks/node | algorithm | 2 nodes | 8 nodes |$' "$tmp/t.txt" &&
  grep -qE '^\| m1 \| 10 \| 2 \| \*\*auto\*\* \| \*\*[0-9.]+\*\* (ring|rd|hier|hier-rd) \|' "$tmp/t.txt" &&
  ok "scale --at: the README table" || bad "scale --at: rc $rc, $rows rows: $(tail -12 "$tmp/t.txt")"
# check: a bench_allreduce CSV against the model; the prediction for a 2-rank ring with no alpha and no
# gamma is exactly 2 * (M/2) * beta_intra, so a row "measured" at that time is off by 0%
printf 'alpha_intra=0\nbeta_intra=1e-9\ngamma_cache=0\ngamma_mem=0\n' > "$tmp/exact"
{ echo "bytes,variant,name,seg_bytes,iters,busbw_GBs,t_med_us,ratio,t_min_us,algbw_GBs,busbw_peak_GBs,ranks,mpi_alg"
  echo "1048576,0,ring/256K,262144,10,1,1048.576,1,1,1,1,2,ring"
  echo "1048576,1,MPI_Allreduce,0,10,1,2097.152,0,1,1,1,2,rabenseifner"
  echo "1048576,2,int8,262144,10,1,500,0,1,1,1,2,"; } > "$tmp/ar.csv"
msg=$("$model" check --params "$tmp/exact" --nodes 1 --rpn 2 --measured "$tmp/ar.csv" 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -qE "^ +1048576 ring/256K +ring .* \+0%$" <<<"$msg" &&
   grep -qE "MPI_Allreduce +rabenseifner .* -50%  > 25%" <<<"$msg" && grep -q "int8 .*(skipped)" <<<"$msg" &&
   grep -q "2 rows compared: 1 within 25%, worst -50%; 1 skipped" <<<"$msg"; then ok "check: errors per row"
else bad "check: rc $rc: $msg"; fi
msg=$("$model" check --params "$tmp/exact" --nodes 1 --rpn 4 --measured "$tmp/ar.csv" 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "a run on 2 ranks, but --nodes x --rpn is 4" <<<"$msg" && ok "check: rank mismatch refused" ||
  bad "check mismatch: rc $rc: $msg"
echo "alphabeta_model_test: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
