#!/usr/bin/env bash
# `dptrain tune-allreduce` and `train --allreduce auto` (issue 21):
#   1. tune-allreduce at 2 ranks with tiny sizes writes a table that parses (header, shape, ascending rules),
#      atomically (no temporary left);
#   2. train --allreduce auto --allreduce-table FILE uses it (the startup line names the table and what it picked)
#      and ends with the ring's params_xxh3 (at 2 ranks every algorithm adds the same two floats);
#      a hand-made table that sends the bucket to MPI_Allreduce is obeyed; DP_ALLREDUCE_TABLE is read;
#   3. a table of another shape: a warning (once), the built-in rule, the run goes on;
#   4. a malformed table: exit 2 naming file, line and field, said once; a missing one exit 1;
#      --allreduce-table without auto: exit 2.
# Usage: tune_allreduce.sh path/to/dptrain path/to/mpiexec
set -u
bin=$(realpath "$1") mpiexec="$2"
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OPENBLAS_NUM_THREADS=1
unset DP_ALLREDUCE_TABLE DP_RANKS_PER_NODE
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
fails=0 passes=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
mpi() { timeout 120 "$mpiexec" -np "$@"; }
xxh() { grep -o 'params_xxh3=[0-9a-f]*' <<<"$1"; }

"$bin" shard fashion-mnist --out fm --shards 2 >log 2>&1 || { echo "FAIL: shard"; cat log; exit 1; }
train=(train --data fm --model mlp --limit 1000 --test-limit 100 --seed 3 --progress plain)

# 1. the tuner
out=$(mpi 2 "$bin" tune-allreduce --max 64K --reps 2 --out tab.txt 2>&1); rc=$?
rules=$(grep -E '^[0-9]+ (ring|mpi|rd|hier|hier-rd)$' tab.txt 2>/dev/null | cut -d' ' -f1)
if [ "$rc" -eq 0 ] && [ "$(head -1 tab.txt)" = "dptrain-allreduce-table 1" ] && grep -qx "nodes 1" tab.txt &&
   grep -qx "ranks_per_node 2" tab.txt && grep -q '^hosts [0-9a-f]\{16\}$' tab.txt && grep -q '^mpi ' tab.txt &&
   [ -n "$rules" ] && [ "$rules" = "$(sort -n -u <<<"$rules")" ] && [ "$(tail -n1 <<<"$rules")" = 65536 ] &&
   [ ! -e tab.txt.tmp ] && [ "$(grep -c '^ *[0-9]* .* \(ring\|mpi\|rd\)$' <<<"$out")" -ge 5 ]; then
  ok "tune-allreduce wrote a parseable table: $(tr '\n' ' ' <<<"$rules")"
else
  bad "tune-allreduce: exit $rc, table: $(cat tab.txt 2>&1), output: $out"
fi

# 2. train uses it
ring=$(mpi 2 "$bin" "${train[@]}" --allreduce ring 2>&1) || bad "ring run: $ring"
out=$(mpi 2 "$bin" "${train[@]}" --allreduce auto --allreduce-table tab.txt 2>&1); rc=$?
last=$(grep -E '^[0-9]+ ' tab.txt | tail -n1 | cut -d' ' -f2)
if [ "$rc" -eq 0 ] && grep -q "allreduce auto ($last for 1 bucket(s) up to [0-9]* KiB; table tab.txt)" <<<"$out" &&
   [ -n "$(xxh "$ring")" ] && [ "$(xxh "$out")" = "$(xxh "$ring")" ]; then
  ok "train --allreduce auto --allreduce-table: $last for the bucket, $(xxh "$out") as the ring's"
else
  bad "train auto with the tuned table: exit $rc, ring $(xxh "$ring"), output: $out"
fi
printf 'dptrain-allreduce-table 1\nnodes 1\nranks_per_node 2\n1024 ring\n1073741824 mpi\n' >mpi.txt
out=$(DP_ALLREDUCE_TABLE=mpi.txt mpi 2 "$bin" "${train[@]}" --allreduce auto 2>&1); rc=$?
if [ "$rc" -eq 0 ] && grep -q "allreduce auto (mpi for 1 bucket(s) up to [0-9]* KiB; table mpi.txt)" <<<"$out" &&
   [ "$(xxh "$out")" = "$(xxh "$ring")" ]; then
  ok "DP_ALLREDUCE_TABLE sending the bucket to MPI_Allreduce is obeyed"
else
  bad "DP_ALLREDUCE_TABLE=mpi.txt: exit $rc, output: $out"
fi

# 3. another shape
printf 'dptrain-allreduce-table 1\nnodes 2\nranks_per_node 1\n1 rd\n' >shape.txt
out=$(mpi 2 "$bin" "${train[@]}" --allreduce auto --allreduce-table shape.txt 2>&1); rc=$?
if [ "$rc" -eq 0 ] && [ "$(grep -c 'allreduce table shape.txt was measured on 2 node(s) x 1 rank(s) per node, this run is 1 x 2: using the built-in rule' <<<"$out")" -eq 1 ] &&
   grep -q "table built-in)" <<<"$out"; then
  ok "a table of another shape: warned once, built-in rule"
else
  bad "another shape: exit $rc, output: $out"
fi

# 4. refusals
printf 'dptrain-allreduce-table 1\nnodes 1\nranks_per_node 2\n4096 tree\n' >bad.txt
out=$(mpi 2 "$bin" "${train[@]}" --allreduce auto --allreduce-table bad.txt 2>&1); rc=$?
[ "$rc" -eq 2 ] && [ "$(grep -c 'allreduce-table: bad.txt:4: algorithm:' <<<"$out")" -eq 1 ] &&
  ok "malformed table: exit 2, once | $out" || bad "malformed table: exit $rc, output: $out"
out=$("$bin" "${train[@]}" --allreduce auto --allreduce-table none.txt 2>&1); rc=$?
[ "$rc" -eq 1 ] && grep -q "none.txt" <<<"$out" && ok "missing table: exit 1 | $out" || bad "missing table: exit $rc, $out"
out=$("$bin" "${train[@]}" --allreduce ring --allreduce-table tab.txt 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q "needs --allreduce auto" <<<"$out" && ok "--allreduce-table without auto: exit 2" ||
  bad "--allreduce-table without auto: exit $rc, $out"

echo "tune_allreduce: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
