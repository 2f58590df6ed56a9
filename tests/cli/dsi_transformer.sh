#!/usr/bin/env bash
# dsi-train --encoder transformer learns: on a toy corpus (60 documents, each with four words of its own mixed
# with filler every document uses) the training loss falls to under half its first epoch's and the held-out
# queries (other mixes of the same words) reach Hits@10 well above chance (10/60); then dsi-query and dsi-eval
# load the member (the encoder section of its file) and answer. Bad flags are refused naming them.
#   dsi_transformer.sh path/to/dptrain MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"
fails=0 passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $(head -c 800 <<<"$*")"; fails=$((fails+1)); }

awk 'BEGIN { srand(11); split("the a tool for with data files library and support", f, " ");
       for (d = 0; d < 60; d++) for (q = 0; q < 6; q++) {
         s = f[1 + int(rand() * 10)] " w" d "x" int(rand() * 4) " " f[1 + int(rand() * 10)] " w" d "x" int(rand() * 4);
         printf "%s\tdoc%d\n", s, d } }' >q.tsv
"$bin" dsi-prepare --queries q.tsv --out dsi >log 2>&1 || { cat log; exit 1; }

# 2 ranks: the data-parallel path (dense gradients through the ring, embedding rows through the rows allreduce)
timeout 300 "$mpiexec" -np 2 "$bin" dsi-train --data dsi --encoder transformer --embed 16 --heads 2 --hidden 32 \
  --layers 1 --epochs 30 --batch 32 --lr 3e-3 --embed-rows 4096 --quiet --out run >train.log 2>&1; rc=$?
[ $rc -eq 0 ] && ok || { bad "dsi-train --encoder transformer: exit $rc: $(cat train.log)"; }
row=$(grep -E '^0 ' train.log | tail -1)
read -r _ _ docs _ _ _ _ _ _ train_h1 _ test_h10 _ <<<"$row"
awk -v h="${test_h10:-0}" -v t="${train_h1:-0}" 'BEGIN { exit !(h >= 0.5 && t >= 0.5) }' && ok ||
  bad "transformer did not learn: train Hits@1 ${train_h1:-?}, test Hits@10 ${test_h10:-?} (chance 0.167): $row"
[ "${docs:-0}" = 60 ] && ok || bad "60 documents expected: $row"
first=$(grep -o '"loss":[0-9.]*' run/member-0/metrics.jsonl | head -1 | cut -d: -f2)
last=$(grep -o '"loss":[0-9.]*' run/member-0/metrics.jsonl | tail -1 | cut -d: -f2)
awk -v a="${first:-0}" -v b="${last:-1e9}" 'BEGIN { exit !(a > 0 && b < a / 2) }' && ok ||
  bad "training loss did not halve: first epoch ${first:-?}, last ${last:-?}"

# the member loads and answers: a document's own words find it
out=$(printf 'w7x0 w7x1 w7x2\n' | "$bin" dsi-query --run run -k 3 2>&1); rc=$?
[ $rc -eq 0 ] && grep -qE $'^1\t1\tdoc7\t' <<<"$out" && ok || bad "dsi-query: exit $rc, output: $out"
out=$("$bin" dsi-eval --run run --test dsi/test.tsv 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "confidence" <<<"$out" && ok || bad "dsi-eval: exit $rc, output: $out"

# flags
out=$("$bin" dsi-train --data dsi --encoder transformer --embed 30 --heads 4 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--heads 4 does not divide --embed 30" <<<"$out" && ok || bad "--heads 4 --embed 30: exit $rc: $out"
out=$("$bin" dsi-train --data dsi --encoder lstm 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--encoder" <<<"$out" && ok || bad "--encoder lstm: exit $rc: $out"

echo "dsi_transformer: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
