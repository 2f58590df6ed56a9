#!/usr/bin/env bash
# A virtual cluster on one machine: run a command inside a network namespace of its
# own whose loopback is rate-limited with tc tbf, with Open MPI forced onto TCP over lo.
# Usage: launch/vcluster.sh [--rate 1gbit] [--burst 128kb] [--latency 50ms] [--keep] [--stats] -- CMD ARGS...
#        launch/vcluster.sh --nodes N [--ranks-per-node R] [--rate ...] [--keep] [--stats] -- mpirun -np P PROG...
#        launch/vcluster.sh --rate 1gbit -- mpirun -np 2 --oversubscribe build/dptrain train --data shards/fashion-mnist
#        launch/vcluster.sh --rate 10gbit -- launch/run.sh -np 2 -- train --data shards/fashion-mnist
#        launch/vcluster.sh --nodes 2 --ranks-per-node 2 --rate 1gbit -- mpirun -np 4 build/dptrain train --data ...
#   --rate R     tbf rate, a number and a tc unit (bit kbit mbit gbit tbit bps kbps mbps gbps tbps,
#                kibit .. tibps); "unlimited" or 0 = no qdisc (the baseline, same namespace). Default 1gbit.
#                Without --nodes: one bucket for ALL traffic on lo, shared by every rank (see README).
#                With --nodes: each node's link, each direction (a node's NIC).
#   --burst B    tbf bucket size (default 128kb);  --latency T  tbf queueing limit (default 50ms)
#   --keep       leave the namespace(s) for debugging;  --stats  print the qdisc counters at exit
#   --nodes N    N "nodes" (1..250): a namespace each (dpvc-PID-nK, address 10.77.0.K/24 on its link vc0),
#                veth links to a bridge in a switch namespace (dpvc-PID-sw), mpirun in a head namespace
#                (dpvc-PID-head, 10.77.0.254, link unlimited). Open MPI starts daemons on the nodes as on
#                hosts: OMPI_MCA_orte_default_hostfile (10.77.0.K slots=R) and OMPI_MCA_plm_rsh_agent (a
#                generated agent that runs the daemon in node K's namespace instead of ssh) are exported,
#                with btl self,vader,tcp and tcp/oob on 10.77.0.0/24: shared memory inside a node, TCP
#                over the limited links between nodes. CMD is an mpirun line without host arguments (a
#                --hostfile/--host/--mca btl on it replaces vcluster's: warned). Each node's daemon gets a
#                host name of its own (dpvc-PID-nK, UTS namespace) and DPVC_NODE=nK; binding defaults to
#                none (every node sees all cores). Open MPI only; needs unshare (util-linux).
#   --ranks-per-node R  slots per node in the hostfile (1..1024, default 1)
# Needs root (CAP_SYS_ADMIN), ip and tc (iproute2). Nothing is configured outside the namespaces made here.
# Exit code: the command's; 2 for bad arguments, 1 when the namespace cannot be set up.
set -uo pipefail
me=vcluster.sh
die() { echo "$me: $*" >&2; exit "${code:-1}"; }
usage() { sed -n '2,27p' "${BASH_SOURCE[0]}" >&2; exit 2; }

rate=1gbit burst=128kb latency=50ms keep=0 stats=0 nodes="" rpn=""
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    --rate|--burst|--latency)
      [ $# -ge 2 ] || code=2 die "$1 needs a value"
      case "$1" in --rate) rate="$2" ;; --burst) burst="$2" ;; --latency) latency="$2" ;; esac
      shift 2 ;;
    --nodes|--ranks-per-node)
      [ $# -ge 2 ] || code=2 die "$1 needs a value"
      case "$1" in --nodes) nodes="$2" ;; *) rpn="$2" ;; esac
      shift 2 ;;
    --nodes=*) nodes="${1#*=}"; shift ;;
    --ranks-per-node=*) rpn="${1#*=}"; shift ;;
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
if [ -n "$nodes" ]; then
  [[ "$nodes" =~ ^[0-9]+$ ]] && [ "${#nodes}" -le 4 ] && [ "$nodes" -ge 1 ] && [ "$nodes" -le 250 ] ||
    code=2 die "--nodes '$nodes': want a whole number of nodes from 1 to 250"
  nodes=$((10#$nodes))
fi
if [ -n "$rpn" ]; then
  [ -n "$nodes" ] || code=2 die "--ranks-per-node needs --nodes N (without --nodes every rank shares one namespace)"
  [[ "$rpn" =~ ^[0-9]+$ ]] && [ "${#rpn}" -le 5 ] && [ "$rpn" -ge 1 ] && [ "$rpn" -le 1024 ] ||
    code=2 die "--ranks-per-node '$rpn': want a whole number of ranks from 1 to 1024"
  rpn=$((10#$rpn))
fi

# --- refuse clearly when this cannot work ---
[ "${EUID:-$(id -u)}" -eq 0 ] ||
  die "must run as root: a network namespace and a tc qdisc need CAP_SYS_ADMIN/CAP_NET_ADMIN (try: sudo $0 ...)"
command -v ip >/dev/null 2>&1 || die "'ip' not found (apt-get install iproute2)"
command -v tc >/dev/null 2>&1 || die "'tc' not found (apt-get install iproute2)"
[ -z "$nodes" ] || command -v unshare >/dev/null 2>&1 || die "'unshare' not found (apt-get install util-linux): --nodes gives each node a host name of its own"

# ============ --nodes N: one namespace per node, veth links to a bridge, Open MPI across them ============
if [ -n "$nodes" ]; then
  rpn=${rpn:-1}
  pfx="dpvc-$$" net=10.77.0 head_ip=10.77.0.254
  sw="$pfx-sw" hd="$pfx-head"
  for n in "$sw" "$hd" $(seq -f "$pfx-n%g" 1 "$nodes"); do
    [ -e "/run/netns/$n" ] && die "namespace $n already exists (a stale run? remove it with: ip netns del $n)"
  done
  made=() tmpd="" child="" rc=1 up=0
  # counters of the tbf qdiscs: the node's egress (vc0, what it sent) and the bridge port's egress (what it
  # received); under --rate unlimited (no qdisc) the link's own counters
  node_stats() {
    local k sent recv drop
    for ((k = 1; k <= nodes; k++)); do
      if [ "$rate" = unlimited ]; then
        read -r sent recv drop < <(ip netns exec "$pfx-n$k" sh -c 'cd /sys/class/net/vc0/statistics &&
          echo $(cat tx_bytes) $(cat rx_bytes) $(cat tx_dropped)' 2>/dev/null)
        echo "$me: stats node n$k ($net.$k): sent_bytes=${sent:-?} received_bytes=${recv:-?} dropped=${drop:-?} (link counters, no qdisc)" >&2
        continue
      fi
      sent=$(tc -n "$pfx-n$k" -s qdisc show dev vc0 2>/dev/null | awk '/Sent/ {print $2; exit}')
      recv=$(tc -n "$sw" -s qdisc show dev "n$k" 2>/dev/null | awk '/Sent/ {print $2; exit}')
      drop=$(tc -n "$pfx-n$k" -s qdisc show dev vc0 2>/dev/null | awk '/dropped/ {sub(",", "", $7); print $7; exit}')
      echo "$me: stats node n$k ($net.$k): sent_bytes=${sent:-?} received_bytes=${recv:-?} dropped=${drop:-?}" >&2
    done
  }
  cleanup_nodes() {
    trap - EXIT INT TERM
    [ "${#made[@]}" -gt 0 ] || { [ -z "$tmpd" ] || rm -rf "$tmpd"; return 0; }
    if [ "$stats" = 1 ] && [ "$up" = 1 ]; then
      node_stats
    fi
    if [ "$keep" = 1 ]; then
      echo "$me: kept namespaces ${made[*]} and $tmpd (inspect: tc -n $pfx-n1 -s qdisc show dev vc0;" \
           "remove: for n in ${made[*]}; do ip netns del \$n; done; rm -rf $tmpd)" >&2
      return 0
    fi
    # what is left in them (mpirun, orted, ranks) is ours: end it, the head (mpirun) first
    local n pids
    for n in "${made[@]}"; do
      pids=$(ip netns pids "$n" 2>/dev/null || true)
      [ -z "$pids" ] || kill -TERM $pids 2>/dev/null
    done
    for n in "${made[@]}"; do
      pids=$(ip netns pids "$n" 2>/dev/null || true)
      [ -z "$pids" ] || { sleep 1; pids=$(ip netns pids "$n" 2>/dev/null || true); }
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    done
    # deleting a namespace deletes the veth ends in it, and with them their peers and the bridge
    for n in "${made[@]}"; do
      ip netns del "$n" 2>/dev/null || echo "$me: could not delete namespace $n (remove it with: ip netns del $n)" >&2
    done
    [ -z "$tmpd" ] || rm -rf "$tmpd"
  }
  on_exit_nodes() { local s=$?; cleanup_nodes; exit "$s"; }
  on_signal() { [ -n "$child" ] && kill -"$1" "$child" 2>/dev/null; [ -n "$child" ] || { rc=$((128 + $2)); exit "$rc"; }; }
  trap on_exit_nodes EXIT
  trap 'on_signal INT 2' INT
  trap 'on_signal TERM 15' TERM

  mkns() {
    local err
    made=("$1" "${made[@]}")   # newest first: the head is deleted before the nodes, the switch last
    if ! err=$(ip netns add "$1" 2>&1); then
      [ -e "/run/netns/$1" ] || made=("${made[@]:1}")
      die "cannot create network namespace $1: ${err:-unknown error} (needs CAP_SYS_ADMIN: root outside a restricted container)"
    fi
    ip -n "$1" link set lo up || die "cannot bring up lo in $1"
    # no IPv6 chatter (router solicitations, DAD) on the links: the counters then hold MPI's bytes
    ip netns exec "$1" sh -c 'echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6' 2>/dev/null || true
  }
  tbf() {  # tbf NS DEV
    local err
    [ "$rate" = unlimited ] && return 0
    err=$(tc -n "$1" qdisc add dev "$2" root tbf rate "$rate" burst "$burst" latency "$latency" 2>&1) ||
      die "tc refused 'tbf rate $rate burst $burst latency $latency' on $2 in $1: $err"
  }
  # link NS PORT ADDR LIMITED: veth vc0 in NS (made there, its peer PORT moved straight into the switch
  # namespace: no interface ever exists in the caller's namespace), PORT on the bridge
  link() {
    local err
    err=$(ip -n "$1" link add vc0 type veth peer name "$2" netns "$sw" 2>&1) ||
      die "cannot create the veth pair vc0/$2 for $1: $err (is the veth module available?)"
    ip -n "$sw" link set "$2" master br0 && ip -n "$sw" link set "$2" up &&
      ip -n "$1" addr add "$3/24" dev vc0 && ip -n "$1" link set vc0 up || die "cannot set up the link of $1"
    if [ "$4" = 1 ]; then tbf "$1" vc0; tbf "$sw" "$2"; fi
  }
  mkns "$sw"
  err=$(ip -n "$sw" link add br0 type bridge 2>&1) || die "cannot create a bridge in $sw: $err (is the bridge module available?)"
  ip -n "$sw" link set br0 up || die "cannot bring up the bridge in $sw"
  for ((k = 1; k <= nodes; k++)); do mkns "$pfx-n$k"; link "$pfx-n$k" "n$k" "$net.$k" 1; done
  mkns "$hd"; link "$hd" head "$head_ip" 0
  up=1
  if [ "$rate" != unlimited ]; then lim="tbf rate $rate burst $burst latency $latency each way"; else lim="unlimited"; fi
  echo "$me: $nodes nodes x $rpn slots: namespaces $pfx-n1..$pfx-n$nodes ($net.1..$net.$nodes, links $lim)," \
       "switch $sw, mpirun in $hd ($head_ip)" >&2

  tmpd=$(mktemp -d "${TMPDIR:-/tmp}/$pfx.XXXXXX") || die "cannot make a temporary directory"
  for ((k = 1; k <= nodes; k++)); do echo "$net.$k slots=$rpn"; done > "$tmpd/hostfile"
  # The launch agent: Open MPI calls it as ssh, "AGENT [options] HOST COMMAND...", COMMAND being a shell
  # command line for the remote shell. It runs that line in HOST's node namespace with the caller's
  # environment (mpirun's: PATH, LD_LIBRARY_PATH, OMPI_ALLOW_RUN_AS_ROOT*, OMPI_MCA_*), as ssh to a host
  # that shares the file system and the user's settings would.
  cat > "$tmpd/agent" <<AGENT
#!/usr/bin/env bash
# plm_rsh_agent of launch/vcluster.sh run $$ (nodes $net.1..$net.$nodes -> namespaces $pfx-n1..$pfx-n$nodes)
while [ \$# -gt 0 ]; do case "\$1" in -*) shift ;; *) break ;; esac; done
host="\${1:-}"; shift
k="\${host#$net.}"
if [ "\$k" = "\$host" ] || ! [[ "\$k" =~ ^[1-9][0-9]*\$ ]] || [ "\$k" -gt $nodes ]; then
  echo "vcluster agent: unknown host '\$host' (the nodes are $net.1..$net.$nodes)" >&2; exit 255
fi
export DPVC_NODE="n\$k"
# a host name of its own (UTS namespace) as on a real node: Open MPI names shared-memory segments and
# session directories by host name and node-local rank, which would collide between the nodes otherwise
# the line is run by the user's shell, as sshd would (Open MPI writes it in that shell's syntax)
exec ip netns exec "$pfx-n\$k" unshare --uts /bin/sh -c 'hostname "\$1" && exec "\$3" -c "\$2"' \\
  sh "$pfx-n\$k" "\$*" "\${SHELL:-/bin/sh}"
AGENT
  chmod 755 "$tmpd/agent"

  # Open MPI across the nodes, by environment: the user's mpirun line stays as it is (a --mca on it wins)
  export OMPI_MCA_plm_rsh_agent="$tmpd/agent" OMPI_MCA_orte_default_hostfile="$tmpd/hostfile"
  export OMPI_MCA_plm_rsh_no_tree_spawn=1        # every daemon started from the head, not from another node
  export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp   # ucx or an mtl would choose their own transports
  export OMPI_MCA_btl_tcp_if_include="$net.0/24" OMPI_MCA_oob_tcp_if_include="$net.0/24"
  # each node's daemon sees the whole machine: binding would put rank 0 of every node on the same core
  export OMPI_MCA_hwloc_base_binding_policy="${OMPI_MCA_hwloc_base_binding_policy:-none}"
  export DPVC_PREFIX="$pfx" DPVC_NODES="$nodes" DPVC_RANKS_PER_NODE="$rpn" DPVC_HOSTFILE="$tmpd/hostfile"
  if [ "$EUID" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
  for ((i = 2; i <= $#; i++)); do
    case "${!i}" in
      -H|-host|--host|-hostfile|--hostfile|-machinefile|--machinefile|-default-hostfile|--default-hostfile)
        echo "$me: warning: '${!i}' on the command line replaces the virtual nodes' hostfile" >&2 ;;
      -mca|--mca) j=$((i + 1))
        case "${!j:-}" in btl|pml|btl_tcp_if_include|oob_tcp_if_include|plm_rsh_agent)
          echo "$me: warning: --mca ${!j} on the command line replaces vcluster's (the links may be bypassed)" >&2 ;;
        esac ;;
      --) break ;;
    esac
  done

  (trap - INT; exec ip netns exec "$hd" "$@") &   # INT restored, as for one namespace (below)
  child=$!
  wait "$child"; rc=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done   # woken by a forwarded signal
  exit "$rc"
fi

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

# an asynchronous command of a script starts with INT ignored: restore it, so that INT can be passed on
(trap - INT; exec ip netns exec "$ns" "${cmd[@]}") &
child=$!
wait "$child"; rc=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; rc=$?; done   # woken by a forwarded signal
exit "$rc"
