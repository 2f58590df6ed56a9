#!/usr/bin/env bash
# launch/vcluster.sh --nodes: a cluster of network namespaces on one machine.
#   1. refusals (always): bad --nodes / --ranks-per-node exit 2 naming the flag; not root exits 1.
#   2. with root and namespaces (else exit 77, ctest's skip): the layout (each node: lo and vc0 with
#      10.77.0.K/24 and a tbf on it, no default route; the bridge and its ports in the switch namespace;
#      the caller's interfaces unchanged); 2 nodes x 2 ranks of topo_probe: MPI_Comm_split_type(SHARED)
#      finds 2 nodes of 2, each node's ranks share a network namespace and host name that the other
#      node's do not; at --rate 100mbit a 2 MiB MPI_Sendrecv between nodes is > 3x slower than inside a
#      node, and --stats shows at least the exchanged bytes through each node's limited link; INT ends a
#      run and --keep keeps the namespaces (the printed command removes them); nothing is left behind.
# The 3x bound is a ratio, not a time: 100 Mbit/s moves 2 MiB in ~0.17 s, shared memory in ~1 ms (a
# ratio > 50x here). Only traffic between nodes that bypasses the links (shared memory across nodes, a
# missing qdisc) comes near 1x; a loaded machine slowing both sides alike does not.
# Usage: vcluster_nodes_test.sh path/to/topo_probe path/to/mpiexec (Open MPI's)
set -u
probe="$1" mpiexec="$2"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vc="$here/../../launch/vcluster.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0 skips=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
skip() { skips=$((skips+1)); echo "skip: $1"; }
finish() { echo "vcluster_nodes_test: $passes passed, $fails failed, $skips skipped"; [ "$fails" -eq 0 ] || exit 1; exit "${1:-0}"; }
expect() {  # expect NAME RC REGEX -- CMD...: CMD exits RC and says REGEX
  local name="$1" want="$2" re="$3"; shift 4
  local out rc; out=$("$@" 2>&1); rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE -- "$re" <<<"$out"; then ok "$name: exit $rc: $(grep -m1 -E -- "$re" <<<"$out")"
  else bad "$name: want exit $want and /$re/, got exit $rc: $out"; fi
}
# namespaces announced in logs (prefix dpvc-PID) that still exist, and our temporary directories
leftover() {
  local p
  for p in $(grep -ho 'dpvc-[0-9]*-sw' "$@" | sed 's/-sw$//' | sort -u); do
    ip netns list 2>/dev/null | awk '{print $1}' | grep "^$p-"
    ls -d "${TMPDIR:-/tmp}/$p".* 2>/dev/null
  done
}

# --- 1. refusals ---
expect "--nodes 0" 2 "--nodes '0'" -- "$vc" --nodes 0 -- true
expect "--nodes x" 2 "--nodes 'x'" -- "$vc" --nodes x -- true
expect "--nodes 251" 2 "--nodes '251'.*1 to 250" -- "$vc" --nodes 251 -- true
expect "--nodes without a value" 2 "--nodes needs a value" -- "$vc" --nodes
expect "--ranks-per-node 0" 2 "--ranks-per-node '0'" -- "$vc" --nodes 2 --ranks-per-node 0 -- true
expect "--ranks-per-node=-1" 2 "--ranks-per-node '-1'" -- "$vc" --nodes 2 --ranks-per-node=-1 -- true
expect "--ranks-per-node without --nodes" 2 "--ranks-per-node needs --nodes" -- "$vc" --ranks-per-node 2 -- true
expect "--nodes with a bad --rate" 2 "malformed --rate" -- "$vc" --nodes 2 --rate fast -- true
if [ "$(id -u)" -ne 0 ]; then
  expect "not root" 1 "must run as root" -- "$vc" --nodes 2 -- true
  skip "namespaces: not root"; finish 77
elif command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -r "$vc"; then
  expect "not root (as nobody)" 1 "must run as root" -- setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$vc" --nodes 2 -- true
fi
mkdir "$tmp/empty"
expect "ip/tc missing" 1 "'ip' not found" -- env PATH="$tmp/empty" "$BASH" "$vc" --nodes 2 -- true

# --- 2. with root and namespaces ---
if ! out=$("$vc" --nodes 1 -- true 2>&1); then skip "namespaces unavailable here: $out"; finish 77; fi
if ! "$mpiexec" --version 2>&1 | grep -q 'Open MPI\|OpenRTE'; then skip "$mpiexec is not Open MPI's (--nodes drives Open MPI)"; finish 77; fi
host_links() { ip -o link | awk -F': ' '{print $2}' | sort | tr '\n' ' '; }
before=$(host_links)

# the layout, seen from the command (which runs in the head namespace)
layout='for k in 1 2; do n=$DPVC_PREFIX-n$k
  echo "n$k links: $(ip -n $n -o link | awk -F": " "{print \$2}" | sed "s/@.*//" | tr "\n" " ")"
  echo "n$k addr: $(ip -n $n -o -4 addr show dev vc0 | awk "{print \$4}")"
  echo "n$k routes: $(ip -n $n route | tr "\n" ";")"
  echo "n$k qdisc: $(tc -n $n qdisc show dev vc0)"
  echo "sw port n$k: $(tc -n $DPVC_PREFIX-sw qdisc show dev n$k) master $(ip -n $DPVC_PREFIX-sw -o link show n$k | grep -o "master [a-z0-9]*")"
done
echo "head addr: $(ip -o -4 addr show dev vc0 | awk "{print \$4}") routes: $(ip route | tr "\n" ";")"
echo "hostfile: $(tr "\n" ";" < $DPVC_HOSTFILE)"
exit 7'
out=$("$vc" --nodes 2 --ranks-per-node 2 --rate 100mbit -- bash -c "$layout" 2>"$tmp/layout.log"); rc=$?
during=$(host_links)
want_ok=1
for k in 1 2; do
  grep -qx "n$k links: lo vc0 " <<<"$out" && grep -qx "n$k addr: 10.77.0.$k/24" <<<"$out" &&
    grep -qx "n$k routes: 10.77.0.0/24 dev vc0 proto kernel scope link src 10.77.0.$k ;" <<<"$out" &&
    grep -q "^n$k qdisc: qdisc tbf .*rate 100Mbit" <<<"$out" &&
    grep -q "^sw port n$k: qdisc tbf .*rate 100Mbit.* master br0" <<<"$out" || want_ok=0
done
grep -q '^head addr: 10.77.0.254/24 routes: 10.77.0.0/24 dev vc0 [^;]*;$' <<<"$out" &&
  grep -qx 'hostfile: 10.77.0.1 slots=2;10.77.0.2 slots=2;' <<<"$out" || want_ok=0
if [ "$rc" -eq 7 ] && [ "$want_ok" = 1 ]; then ok "layout: 2 nodes (lo + vc0, 10.77.0.K/24, tbf 100Mbit both ends, no default route), head 10.77.0.254, exit code 7 passed through"
else bad "layout: exit $rc (want 7): $out $(cat "$tmp/layout.log")"; fi
[ "$before" = "$during" ] && ok "the caller's interfaces unchanged while the cluster is up ($before)" ||
  bad "the caller's interfaces changed: before '$before', during '$during'"

# 2 nodes x 2 ranks: the node communicator, and inter-node bytes on the limited links
timeout 60 "$vc" --nodes 2 --ranks-per-node 2 --rate 100mbit --stats -- \
  "$mpiexec" -np 4 "$probe" --bytes 2M --iters 2 > "$tmp/probe.log" 2>&1; rc=$?
cat "$tmp/probe.log"
[ "$rc" -eq 0 ] || bad "topo_probe 2x2: exit $rc"
if grep -qx 'nodes: 2 of sizes 2 2' "$tmp/probe.log"; then ok "MPI_Comm_split_type(SHARED): 2 nodes of 2"
else bad "MPI_Comm_split_type(SHARED): want 'nodes: 2 of sizes 2 2'"; fi
# rank W ... net NET host H vnode V: ranks 0,1 on one node, 2,3 on the other (by slot), each pair one namespace
where() { awk -v r="$1" '$1 == "rank" && $2 == r {print $12, $14, $16}' "$tmp/probe.log"; }
w0=$(where 0) w1=$(where 1) w2=$(where 2) w3=$(where 3)
if [ -n "$w0" ] && [ "$w0" = "$w1" ] && [ -n "$w2" ] && [ "$w2" = "$w3" ] && [ "$w0" != "$w2" ] &&
   [ "${w0%% *}" != "${w2%% *}" ]; then ok "ranks 0,1 in '$w0', ranks 2,3 in '$w2' (net namespace, host name, node)"
else bad "placement: want ranks 0,1 and 2,3 each in one namespace, the pairs apart: '$w0' '$w1' '$w2' '$w3'"; fi
line=$(grep -m1 '^exchange ' "$tmp/probe.log")
ratio=$(awk '{print $NF}' <<<"$line")
if [[ "$ratio" =~ ^[0-9.]+$ ]] && awk -v r="$ratio" 'BEGIN {exit !(r > 3)}'; then ok "between nodes ${ratio}x slower than inside one at 100mbit (bound > 3x): $line"
else bad "between nodes not > 3x slower than inside one: '$line'"; fi
# rank 0 sent (1 untimed + 2 timed) x 2 MiB to rank 2 and received as much: each node's link carried it
min=$((3 * 2 * 1048576))
for k in 1 2; do
  s=$(grep -o "stats node n$k .*" "$tmp/probe.log" | sed -n 's/.*sent_bytes=\([0-9]*\).*/\1/p')
  r=$(grep -o "stats node n$k .*" "$tmp/probe.log" | sed -n 's/.*received_bytes=\([0-9]*\).*/\1/p')
  if [ -n "$s" ] && [ -n "$r" ] && [ "$s" -ge "$min" ] && [ "$r" -ge "$min" ]; then ok "--stats: node n$k's link sent $s and received $r bytes (>= $min)"
  else bad "--stats: node n$k: want sent and received >= $min, got '${s:-none}' '${r:-none}'"; fi
done

# INT and TERM: the run ends, its namespaces go (job control on: a background job of a script would
# otherwise start with INT ignored, which no trap can undo)
for sig in INT TERM; do
  set -m
  "$vc" --nodes 2 -- sh -c 'echo $$ > "$1"; exec sleep 30' sh "$tmp/$sig.ready" > "$tmp/$sig.log" 2>&1 &
  pid=$!
  set +m
  for _ in $(seq 100); do [ -s "$tmp/$sig.ready" ] && break; sleep 0.1; done   # the command runs
  start=$(date +%s)
  kill -"$sig" "$pid"; wait "$pid"; rc=$?
  if [ "$rc" -ne 0 ] && [ $(( $(date +%s) - start )) -lt 10 ]; then ok "$sig ends the run (exit $rc)"
  else bad "$sig: exit $rc after $(( $(date +%s) - start )) s: $(cat "$tmp/$sig.log")"; fi
done

# --keep: the namespaces stay, and the printed command removes them
"$vc" --nodes 2 --keep -- true > "$tmp/keep.log" 2>&1
kept=$(leftover "$tmp/keep.log" | grep -c '^dpvc-')
cmd=$(sed -n 's/.*remove: \(.*\))$/\1/p' "$tmp/keep.log")
if [ "$kept" -eq 4 ] && [ -n "$cmd" ] && bash -c "$cmd" && [ -z "$(leftover "$tmp/keep.log")" ]; then ok "--keep kept 4 namespaces; '$cmd' removed them"
else bad "--keep: $kept namespaces kept (want 4), remove command '$cmd': $(cat "$tmp/keep.log")"; fi

left=$(leftover "$tmp"/*.log)
after=$(host_links)
if [ -z "$left" ] && [ "$after" = "$before" ]; then ok "nothing left: no dpvc namespace or temporary directory of these runs, the caller's interfaces as before"
else bad "left behind: ${left:-no namespace}; interfaces before '$before', after '$after'"; fi
finish 0
