#!/usr/bin/env bash
# launch/vcluster.sh: refusals, and that the rate limit really bites.
#   1. refusals (always): a malformed --rate exits 2 with a message; not root exits 1 with a message
#      (as root: really run as 'nobody' through setpriv, skipped without setpriv); 'ip'/'tc' missing
#      (PATH emptied) and no CAP_SYS_ADMIN (root with sys_admin dropped from the bounding set) -> exit 1.
#   2. with root and namespaces: only lo exists inside, the tbf qdisc is on it, the exit code passes
#      through; MPI_Allreduce of 4 MiB at 2 ranks (bench_allreduce) under --rate 100mbit is >= 5x
#      slower than under --rate unlimited; a short 2-rank dptrain run trains under 1gbit; every
#      namespace that vcluster.sh announced is gone afterwards.
# The 5x bound is deliberately coarse: 100 Mbit/s shared by both ranks needs ~0.67 s for one 4 MiB
# allreduce (8 MiB cross lo), while TCP over an unlimited lo takes a few ms, a ratio > 100x. Only a
# broken limit (qdisc missing, traffic on shared memory instead of TCP/lo) falls below 5x; a loaded
# machine slowing the baseline 20-fold does not. No absolute time is asserted.
# Without root or namespaces, part 2 is skipped with the reason (exit 0).
# Usage: vcluster_test.sh path/to/dptrain path/to/bench_allreduce path/to/mpiexec
set -u
bin="$1" bench="$2" mpiexec="$3"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vc="$here/../../launch/vcluster.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0 skips=0
ok() { passes=$((passes+1)); echo "ok: $1"; }
bad() { fails=$((fails+1)); echo "FAIL: $1"; }
skip() { skips=$((skips+1)); echo "skip: $1"; }
finish() { echo "vcluster_test: $passes passed, $fails failed, $skips skipped"; [ "$fails" -eq 0 ]; exit; }
# expect NAME RC REGEX -- CMD...: CMD exits RC and says REGEX
expect() {
  local name="$1" want="$2" re="$3"; shift 4
  local out rc; out=$("$@" 2>&1); rc=$?
  if [ "$rc" -eq "$want" ] && grep -qE "$re" <<<"$out"; then ok "$name: exit $rc: $(grep -m1 -E "$re" <<<"$out")"
  else bad "$name: want exit $want and /$re/, got exit $rc: $out"; fi
}
# namespaces announced by vcluster.sh in a log ("namespace dpvc-N") that still exist
leftover() { local n; for n in $(grep -o 'namespace dpvc-[0-9]*' "$@" | awk '{print $2}' | sort -u); do
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$n" && echo "$n"; done; }

# --- 1. refusals ---
expect "malformed --rate" 2 "malformed --rate '1gigabit'" -- "$vc" --rate 1gigabit -- true
expect "zero --rate with a unit" 2 "is zero" -- "$vc" --rate 0mbit -- true
expect "malformed --burst" 2 "malformed --burst" -- "$vc" --rate 1gbit --burst lots -- true
if [ "$(id -u)" -ne 0 ]; then
  expect "not root" 1 "must run as root" -- "$vc" --rate 1gbit -- true
elif command -v setpriv >/dev/null && setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -r "$vc"; then
  expect "not root (as nobody)" 1 "must run as root" -- setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$vc" --rate 1gbit -- true
else
  skip "not root: root here and no setpriv (or 'nobody' cannot read $vc)"
fi
if [ "$(id -u)" -eq 0 ]; then
  mkdir "$tmp/empty"   # bash by absolute path; PATH without ip/tc (the checks before need no tool)
  expect "ip/tc missing" 1 "'ip' not found" -- env PATH="$tmp/empty" "$BASH" "$vc" --rate 1gbit -- true
  if command -v setpriv >/dev/null; then
    expect "no CAP_SYS_ADMIN" 1 "cannot create network namespace" -- setpriv --bounding-set=-sys_admin -- "$vc" --rate 1gbit -- true
  else skip "no CAP_SYS_ADMIN: no setpriv"; fi
fi

# --- 2. the limit, with root and namespaces ---
if [ "$(id -u)" -ne 0 ]; then skip "rate limit: not root, no network namespaces"; finish; fi
if ! out=$("$vc" --rate 1gbit -- true 2>&1); then
  skip "rate limit: namespaces unavailable here: $out"; finish
fi
out=$("$vc" --rate 100mbit -- sh -c 'echo "links: $(ip -o link | awk -F": " "{print \$2}" | tr "\n" " ")"; tc qdisc show dev lo; exit 7' 2>"$tmp/inside.err"); rc=$?
if [ "$rc" -eq 7 ] && grep -qx 'links: lo ' <<<"$out" && grep -q 'tbf .*rate 100Mbit' <<<"$out"; then
  ok "inside: only lo, tbf on it, exit code 7 passed through: $out"
else
  bad "inside: want only lo, tbf rate 100Mbit and exit 7; got exit $rc: $out $(cat "$tmp/inside.err")"
fi

# t_med (us) of the MPI_Allreduce row of a bench_allreduce log
tmed() { awk '$1 == "MPI_Allreduce" {print $3; exit}' "$1"; }
bargs=(--min 4M --max 4M --iters 3 --max-iters 3 --warmup 1 --no-check --cap 3)
for r in unlimited 100mbit; do
  start=$(date +%s)
  timeout 60 "$vc" --rate "$r" -- "$mpiexec" -np 2 "$bench" "${bargs[@]}" > "$tmp/$r.log" 2>&1; rc=$?
  t=$(tmed "$tmp/$r.log")
  [ "$rc" -eq 0 ] && [ -n "$t" ] || { bad "bench_allreduce under --rate $r: exit $rc: $(cat "$tmp/$r.log")"; finish; }
  echo "   MPI_Allreduce 4 MiB, 2 ranks, --rate $r: t_med ${t} us ($(( $(date +%s) - start )) s for the run)"
done
tu=$(tmed "$tmp/unlimited.log") tl=$(tmed "$tmp/100mbit.log")
if awk -v u="$tu" -v l="$tl" 'BEGIN {exit !(l >= 5 * u)}'; then
  ok "100mbit is $(awk -v u="$tu" -v l="$tl" 'BEGIN {printf "%.0f", l / u}')x slower than unlimited (${tl} vs ${tu} us; bound >= 5x)"
else
  bad "100mbit not >= 5x slower than unlimited: ${tl} vs ${tu} us"
fi

# a short training run under 1gbit
if "$bin" shard fashion-mnist --out "$tmp/fm" --shards 4 >/dev/null 2>&1; then
  timeout 60 "$vc" --rate 1gbit -- "$mpiexec" -np 2 "$bin" train --data "$tmp/fm" --model mlp \
    --limit 2000 --test-limit 200 --quiet --out "$tmp/run" > "$tmp/train.log" 2>&1; rc=$?
  if [ "$rc" -eq 0 ] && grep -q "^final: .*ranks=2" "$tmp/train.log"; then ok "train under 1gbit: $(grep -m1 '^final:' "$tmp/train.log")"
  else bad "train under 1gbit: exit $rc: $(cat "$tmp/train.log")"; fi
else
  skip "train under 1gbit: no fashion-mnist shards ($bin shard fashion-mnist failed)"
fi

left=$(leftover "$tmp"/*.log "$tmp/inside.err")
if [ -z "$left" ]; then ok "namespaces removed ($(grep -ho 'namespace dpvc-[0-9]*' "$tmp"/*.log "$tmp/inside.err" | wc -l) announced, none in ip netns list)"
else bad "namespaces left behind: $left"; fi
finish
