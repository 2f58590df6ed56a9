#!/usr/bin/env bash
# --allreduce hier | hier-rd | rd through the trainers, against the ring and MPI_Allreduce:
# - at 2 ranks every element's sum is one addition, so all algorithms must give the ring's final
#   parameters bit for bit (params_xxh3), with simulated nodes of 1 rank (DP_RANKS_PER_NODE=1: the
#   inter-node leg runs) and with MPI's own node detection (one node: the intra-node legs run);
#   search and dsi-train likewise;
# - at 4 ranks as 2 nodes of 2, hier and hier-rd form the same sums (their inter-node legs add two
#   node sums), so they agree bit for bit; against the ring (another order of four additions) the
#   test loss must agree to 1e-3;
# - refusals: an unknown --allreduce value (exit 2, naming flag and value), a bad DP_RANKS_PER_NODE
#   (non-zero exit, naming the variable, its value and the world size), a ring codec with hier-rd, rd or mpi;
# - codecs on hier's inter-node leg: at 2 ranks, 1 per node, hier + fp16/int8 = ring + fp16/int8 bit for bit; at
#   4 ranks as 2 nodes of 2, hier + fp16 reaches the ring's test loss to 1e-2, and a run stopped after step 7
#   and resumed ends with the uninterrupted run's bits (int8 and fp16, error feedback from the checkpoint).
#   allreduce_algos.sh path/to/dptrain MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/../common/cli_env.sh"
hash_of() { sed -n 's/.*params_xxh3=\([0-9a-f]*\).*/\1/p' "$1"; }
field() { sed -n "s/.* $1=\([-0-9.e]*\).*/\1/p" "$2"; }

"$bin" shard fashion-mnist --out fm --shards 4 >log 2>&1 || { cat log; exit 1; }
train=(train --data fm --model mlp --limit 1000 --epochs 1 --test-limit 200 --seed 3 --quiet)

# --- 2 ranks: every algorithm = the ring, bit for bit
mpi 2 "$bin" "${train[@]}" --allreduce ring >ring2.log 2>&1 || { cat ring2.log; exit 1; }
want=$(hash_of ring2.log)
[ -n "$want" ] || { echo "no params_xxh3 in: $(cat ring2.log)"; exit 1; }
for rpn in 1 ""; do
  for a in mpi hier hier-rd rd; do
    DP_RANKS_PER_NODE=$rpn mpi 2 "$bin" "${train[@]}" --allreduce "$a" >a.log 2>&1 || { bad "train --allreduce $a (DP_RANKS_PER_NODE='$rpn'): $(cat a.log)"; continue; }
    got=$(hash_of a.log)
    [ "$got" = "$want" ] && ok || bad "train --allreduce $a at 2 ranks, DP_RANKS_PER_NODE='$rpn': params_xxh3 $got, ring $want"
  done
done
sopts=(search --data fm --strategy darts --layers 2 --channels 4 --limit 128 --batch 16 --epochs 1 --eval-limit 32 --seed 3 --quiet)
for a in ring hier; do
  DP_RANKS_PER_NODE=1 mpi 2 "$bin" "${sopts[@]}" --out "s_$a" --allreduce "$a" >"s_$a.log" 2>&1 || bad "search --allreduce $a: $(cat "s_$a.log")"
done
[ -n "$(hash_of s_ring.log)" ] && [ "$(hash_of s_hier.log)" = "$(hash_of s_ring.log)" ] && ok ||
  bad "search --allreduce hier: params_xxh3 $(hash_of s_hier.log), ring $(hash_of s_ring.log)"
awk 'BEGIN { srand(7); for (d = 0; d < 100; d++) for (q = 0; q < 4; q++) {
       s = ""; for (w = 0; w < 5; w++) s = s (w ? " " : "") "w" (d * 3 + int(rand() * 6)) "x" int(rand() * 2);
       printf "%s\tdoc%d\n", s, d } }' >q.tsv
"$bin" dsi-prepare --queries q.tsv --out dsi --buckets 65536 >log 2>&1 || { cat log; exit 1; }
for a in ring hier-rd; do
  DP_RANKS_PER_NODE=1 mpi 2 "$bin" dsi-train --data dsi --epochs 1 --batch 32 --embed 16 --hidden 32 --embed-rows 4096 \
    --seed 3 --quiet --eval-limit 50 --out "d_$a" --allreduce "$a" >"d_$a.log" 2>&1 || bad "dsi-train --allreduce $a: $(cat "d_$a.log")"
done
cmp -s d_ring/member-0/model.dsi d_hier-rd/member-0/model.dsi && ok || bad "dsi-train --allreduce hier-rd: model.dsi differs from the ring's"

# --- 4 ranks, 2 nodes of 2: hier = hier-rd exactly, and the ring's loss to 1e-3
for a in ring hier hier-rd; do
  DP_RANKS_PER_NODE=2 mpi 4 "$bin" "${train[@]}" --allreduce "$a" >"f_$a.log" 2>&1 || bad "4 ranks --allreduce $a: $(cat "f_$a.log")"
done
[ -n "$(hash_of f_hier.log)" ] && [ "$(hash_of f_hier.log)" = "$(hash_of f_hier-rd.log)" ] && ok ||
  bad "4 ranks, 2 nodes of 2: hier $(hash_of f_hier.log) vs hier-rd $(hash_of f_hier-rd.log)"
lr=$(field test_loss f_ring.log) lh=$(field test_loss f_hier.log)
awk -v a="$lr" -v b="$lh" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 1e-3) }' && ok ||
  bad "4 ranks: test_loss ring $lr, hier $lh (more than 1e-3 apart)"

# --- refusals
out=$("$bin" train --data fm --allreduce tree 2>&1); rc=$?
[ "$rc" -eq 2 ] && grep -q -- "--allreduce: 'tree'" <<<"$out" && ok || bad "--allreduce tree: exit $rc, $out"
out=$(DP_RANKS_PER_NODE=3 mpi 2 "$bin" "${train[@]}" --allreduce hier 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "DP_RANKS_PER_NODE='3'.*world size 2" <<<"$out" && ok || bad "DP_RANKS_PER_NODE=3 at 2 ranks: exit $rc, $out"
out=$(DP_RANKS_PER_NODE=x "$bin" "${train[@]}" --allreduce hier-rd 2>&1); rc=$?
[ "$rc" -ne 0 ] && grep -q "DP_RANKS_PER_NODE='x'.*world size 1" <<<"$out" && ok || bad "DP_RANKS_PER_NODE=x: exit $rc, $out"
for a in hier-rd rd mpi; do
  out=$("$bin" "${train[@]}" --allreduce "$a" --codec fp16 2>&1); rc=$?
  [ "$rc" -eq 2 ] && grep -q -- "--codec fp16 / --wire-zstd need --allreduce ring or hier, not --allreduce $a" <<<"$out" && ok ||
    bad "--codec fp16 --allreduce $a: exit $rc, $out"
done

# --- codecs on hier's inter-node leg
# 2 ranks, 1 per node: the inter-node ring is the flat ring, so hier + codec = ring + codec bit for bit
for c in fp16 int8; do
  mpi 2 "$bin" "${train[@]}" --allreduce ring --codec "$c" >"cr_$c.log" 2>&1 || bad "ring --codec $c: $(cat "cr_$c.log")"
  DP_RANKS_PER_NODE=1 mpi 2 "$bin" "${train[@]}" --allreduce hier --codec "$c" >"ch_$c.log" 2>&1 ||
    bad "hier --codec $c: $(cat "ch_$c.log")"
  [ -n "$(hash_of "cr_$c.log")" ] && [ "$(hash_of "ch_$c.log")" = "$(hash_of "cr_$c.log")" ] && ok ||
    bad "2 ranks, 1 per node, --codec $c: hier $(hash_of "ch_$c.log"), ring $(hash_of "cr_$c.log")"
done
# 4 ranks as 2 nodes of 2: hier + fp16 reaches the ring's test loss (to 1e-2: fp16 and another order of sums)
DP_RANKS_PER_NODE=2 mpi 4 "$bin" "${train[@]}" --allreduce hier --codec fp16 >f_hier16.log 2>&1 ||
  bad "4 ranks --allreduce hier --codec fp16: $(cat f_hier16.log)"
lh=$(field test_loss f_hier16.log)
awk -v a="$lr" -v b="$lh" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a != "" && b != "" && d <= 1e-2) }' && ok ||
  bad "4 ranks: test_loss ring $lr, hier --codec fp16 $lh (more than 1e-2 apart)"
# resume: stopped after step 7 and resumed (error feedback from the checkpoint) = uninterrupted, bit for bit
for c in int8 fp16; do # --batch 16: 15 steps at 4 ranks
  DP_RANKS_PER_NODE=2 mpi 4 "$bin" "${train[@]}" --batch 16 --allreduce hier --codec "$c" --out "rf_$c" >"rf_$c.log" 2>&1 ||
    bad "hier --codec $c (full): $(cat "rf_$c.log")"
  DP_RANKS_PER_NODE=2 mpi 4 "$bin" "${train[@]}" --batch 16 --allreduce hier --codec "$c" --out "rp_$c" --stop-after 7 >"rp_$c.log" 2>&1 ||
    bad "hier --codec $c (stop after 7): $(cat "rp_$c.log")"
  DP_RANKS_PER_NODE=2 mpi 4 "$bin" "${train[@]}" --batch 16 --allreduce hier --codec "$c" --out "rp_$c" --resume >"rr_$c.log" 2>&1 ||
    bad "hier --codec $c (resume): $(cat "rr_$c.log")"
  [ -n "$(hash_of "rf_$c.log")" ] && [ "$(hash_of "rr_$c.log")" = "$(hash_of "rf_$c.log")" ] && ok ||
    bad "4 ranks, 2 nodes of 2, hier --codec $c: resumed $(hash_of "rr_$c.log"), uninterrupted $(hash_of "rf_$c.log")"
done

tally_done allreduce_algos
