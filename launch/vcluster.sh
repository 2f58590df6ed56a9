#!/usr/bin/env bash
# A virtual cluster on one machine: run a command inside a network namespace of its
# own whose loopback is rate-limited with tc tbf, with Open MPI forced onto TCP over lo.
# Usage: launch/vcluster.sh [--rate 1gbit] [--burst 128kb] [--latency 50ms] [--keep] [--stats] -- CMD ARGS...
#        launch/vcluster.sh --rate 1gbit -- mpirun -np 2 --oversubscribe build/dptrain train --data shards/fashion-mnist
#        launch/vcluster.sh --rate 10gbit -- launch/run.sh -np 2 -- train --data shards/fashion-mnist
#   --rate R     tbf rate, a number and a tc unit (bit kbit mbit gbit tbit bps kbps mbps gbps tbps,
#                kibit .. tibps); "unlimited" or 0 = no qdisc (the baseline, same namespace). Default 1gbit.
#                The limit is one bucket for ALL traffic on lo, i.e. shared by every rank (see README).
#   --burst B    tbf bucket size (default 128kb);  --latency T  tbf queueing limit (default 50ms)
#   --keep       leave the namespace (dpvc-PID) for debugging;  --stats  print the qdisc counters at exit
# Needs root (CAP_SYS_ADMIN), ip and tc (iproute2). Only the namespace's loopback exists: nothing leaves it.
# Exit code: the command's; 2 for bad arguments, 1 when the namespace cannot be set up.
set -uo pipefail
me=vcluster.sh
die() { echo "$me: $*" >&2; exit "${code:-1}"; }
usage() { sed -n '2,13p' "${BASH_SOURCE[0]}" >&2; exit 2; }

rate=1gbit burst=128kb latency=50ms keep=0 stats=0
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --rate|--burst|--latency)
      [ $# -ge 2 ] || code=2 die "$1 needs a value"
      case "$1" in --rate) rate="$2" ;; --burst) burst="$2" ;; --latency) latency="$2" ;; esac
      shift 2 ;;
    --rate=*) rate="${1#*=}"; shift ;;
    --burst=*) burst="${1#*=}"; shift ;;
    --latency=*) latency="${1#*=}"; shift ;;
    --keep) keep=1; shift ;;
    --stats) stats=1; shift ;;
    -h|--help) usage ;;
    -*) code=2 die "unknown option '$1' (the command goes after --)" ;;
    *) break ;;   # first non-option: the command
  esac
done
[ $# -gt 0 ] || { echo "$me: no command given" >&2; usage; }

# --- validate the tbf parameters before touching anything (plain bash: no external tool) ---
shopt -s nocasematch
num='([0-9]+([.][0-9]+)?|[.][0-9]+)'
case "$rate" in unlimited|none|0) rate=unlimited ;; esac
if [ "$rate" != unlimited ]; then
  [[ "$rate" =~ ^${num}(bit|[kmgt]i?bit|bps|[kmgt]i?bps)$ ]] ||
    code=2 die "malformed --rate '$rate': want a number and a unit, e.g. 100mbit, 1gbit, 10gbit, 125mbps, or 'unlimited'"
  [[ "${BASH_REMATCH[1]}" =~ [1-9] ]] || code=2 die "--rate '$rate' is zero: use --rate unlimited for no limit"
  [[ "$burst" =~ ^${num}(b|[kmg]b?|[kmg]bit)?$ ]] && [[ "${BASH_REMATCH[1]}" =~ [1-9] ]] ||
    code=2 die "malformed --burst '$burst': want a size, e.g. 64kb, 128kb, 1mb"
  [[ "$latency" =~ ^${num}(s|sec|secs|ms|msec|msecs|us|usec|usecs)?$ ]] ||
    code=2 die "malformed --latency '$latency': want a time, e.g. 50ms, 200ms, 1s"
fi
shopt -u nocasematch

# --- refuse clearly when this cannot work ---
[ "${EUID:-$(id -u)}" -eq 0 ] ||
  die "must run as root: a network namespace and a tc qdisc need CAP_SYS_ADMIN/CAP_NET_ADMIN (try: sudo $0 ...)"
command -v ip >/dev/null 2>&1 || die "'ip' not found (apt-get install iproute2)"
command -v tc >/dev/null 2>&1 || die "'tc' not found (apt-get install iproute2)"

ns="dpvc-$$"
[ -e "/run/netns/$ns" ] && die "namespace $ns already exists (a stale run? remove it with: ip netns del $ns)"
created=0 child="" rc=1
cleanup() {
  trap - EXIT INT TERM
  [ "$created" = 1 ] || return 0
  if [ "$stats" = 1 ] && [ "$rate" != unlimited ]; then
    ip netns exec "$ns" tc -s qdisc show dev lo 2>/dev/null |
      awk '/Sent/ {print "'"$me"': lo qdisc: " $0}' | sed 's/  */ /g' >&2
  fi
  if [ "$keep" = 1 ]; then
    echo "$me: kept namespace $ns (inspect: ip netns exec $ns tc -s qdisc show dev lo; remove: ip netns del $ns)" >&2
    return 0
  fi
  # processes left behind in the namespace are ours (daemons of the command): end them first
  local pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  if [ -n "$pids" ]; then
    kill -TERM $pids 2>/dev/null; sleep 1
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
  fi
  ip netns del "$ns" 2>/dev/null || echo "$me: could not delete namespace $ns (remove it with: ip netns del $ns)" >&2
}
on_exit() { local s=$?; cleanup; exit "$s"; }
# INT/TERM: pass the signal on to the command and keep waiting for it; the namespace goes once it has ended
on_signal() { [ -n "$child" ] && kill -"$1" "$child" 2>/dev/null; [ -n "$child" ] || { rc=$((128 + $2)); exit "$rc"; }; }
trap on_exit EXIT
trap 'on_signal INT 2' INT
trap 'on_signal TERM 15' TERM

created=1   # from here on, try to delete it even if `ip netns add` fails half-way
if ! err=$(ip netns add "$ns" 2>&1); then
  [ -e "/run/netns/$ns" ] || created=0
  die "cannot create network namespace $ns: ${err:-unknown error} (needs CAP_SYS_ADMIN: root outside a restricted container)"
fi
ip netns exec "$ns" ip link set lo up || die "cannot bring up lo in $ns"
if [ "$rate" != unlimited ]; then
  err=$(ip netns exec "$ns" tc qdisc add dev lo root tbf rate "$rate" burst "$burst" latency "$latency" 2>&1) ||
    die "tc refused 'tbf rate $rate burst $burst latency $latency': $err"
  echo "$me: namespace $ns: lo limited by tbf rate $rate burst $burst latency $latency" >&2
else
  echo "$me: namespace $ns: lo unlimited (no qdisc)" >&2
fi

# Open MPI onto TCP over lo: flags for a direct mpirun/mpiexec (or launch/run.sh, which passes
# everything before its -- to mpirun), and the same as MCA environment variables for nested launches.
# A key the command already sets with --mca/-mca is left to it (mpirun refuses a key given twice).
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
if [ "$EUID" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
cmd=("$@")
launcher=0
case "${1##*/}" in mpirun|mpiexec|orterun|mpirun.openmpi|mpiexec.openmpi) launcher=1 ;; esac
[ "$(readlink -f -- "$(command -v -- "$1")" 2>/dev/null)" = "$(readlink -f -- "${BASH_SOURCE[0]%/*}/run.sh")" ] && launcher=1
case "$launcher" in
  1)
    declare -A given=() hint=()
    for ((i = 2; i < $#; i++)); do
      case "${!i}" in -mca|--mca) j=$((i + 1)); [ -z "${!j}" ] || given[${!j}]=1 ;; --) break ;; esac
    done
    mca=() hint=([btl]=" (anything but tcp,self bypasses the rate limit)")
    for kv in btl=tcp,self btl_tcp_if_include=lo oob_tcp_if_include=lo; do
      [ -n "${given[${kv%%=*}]:-}" ] && { echo "$me: leaving --mca ${kv%%=*} to the command${hint[${kv%%=*}]:-}" >&2; continue; }
      mca+=(--mca "${kv%%=*}" "${kv#*=}")
    done
    cmd=("$1" "${mca[@]}" "${@:2}") ;;
esac

ip netns exec "$ns" "${cmd[@]}" &
child=$!
wait "$child"; rc=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done   # woken by a forwarded signal
exit "$rc"
