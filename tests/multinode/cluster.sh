#!/bin/bash
# cluster.sh - a cluster of N "nodes" on one machine, for tests that cross hosts (issue 18):
# each node is a Linux network namespace with its own address on a bridge, and each process
# started there gets its own hostname (UTS namespace) and its own private /tmp (mount
# namespace), so nothing can lean on a shared /tmp or on the hostname. Open MPI starts its
# daemons there through this script as its launch agent instead of ssh. Needs root.
#
#   cluster.sh up N PREFIX      nodes PREFIX-a, PREFIX-b, ... on 10.77.X.0/24 (X from PREFIX)
#   cluster.sh down PREFIX      removes the namespaces, the bridge and the /etc/hosts lines
#   cluster.sh agent HOST CMD   (Open MPI's plm_rsh_agent) runs CMD on HOST
#   cluster.sh mpirun PREFIX ARGS...  mpirun across the nodes, IVL_NODE_SLOTS (default 2)
#                               slots each, filled in order (ranks 0,1 on -a, 2,3 on -b, ...)
#   cluster.sh kill HOST        SIGKILL to every process of that node
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
net_of() { echo $(( $(echo -n "$1" | cksum | cut -d' ' -f1) % 200 + 20 )); }   # 10.77.X
nodes_of() { ip netns list | awk '{print $1}' | grep "^$1-[a-z]$" | sort || true; }

case "${1:-}" in
up)
  n=$2 p=$3 x=$(net_of "$3") br=${3:0:8}br
  ip link add "$br" type bridge
  ip addr add 10.77.$x.1/24 dev "$br"
  ip link set "$br" up
  i=0
  for l in $(echo a b c d e f | cut -d' ' -f1-"$n"); do
    i=$((i + 1)); h=$p-$l
    ip netns add "$h"
    ip link add "v$x$l" type veth peer name eth0 netns "$h"
    ip link set "v$x$l" master "$br" up
    ip netns exec "$h" ip addr add 10.77.$x.$((i + 1))/24 dev eth0
    ip netns exec "$h" ip link set eth0 up
    ip netns exec "$h" ip link set lo up
    echo "10.77.$x.$((i + 1)) $h # ivl-cluster $p" >> /etc/hosts
  done
  ;;
down)
  p=$2 x=$(net_of "$2") br=${2:0:8}br
  for h in $(nodes_of "$p"); do
    ip netns pids "$h" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$h" 2>/dev/null || true
  done
  ip link del "$br" 2>/dev/null || true
  sed -i "/# ivl-cluster $p\$/d" /etc/hosts
  ;;
agent)
  # Open MPI calls: AGENT [options] HOST COMMAND...; skip ssh-style options it may add.
  shift
  while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
  h=$1; shift
  exec ip netns exec "$h" unshare --uts --mount --propagation private \
    bash -c 'hostname "$0"; mount -t tmpfs tmpfs /tmp; exec bash -c "$*"' "$h" "$@"
  ;;
mpirun)
  p=$2; shift 2
  x=$(net_of "$p")
  hf=$(mktemp); for h in $(nodes_of "$p"); do echo "$h slots=${IVL_NODE_SLOTS:-2}"; done > "$hf"
  rc=0
  mpirun --allow-run-as-root --oversubscribe --hostfile "$hf" \
    --mca plm_rsh_agent "$HERE/cluster.sh agent" --mca plm_rsh_no_tree_spawn 1 \
    --mca routed direct --mca oob_tcp_if_include 10.77.$x.0/24 \
    --mca btl_tcp_if_include 10.77.$x.0/24 --mca btl self,vader,tcp "$@" || rc=$?
  rm -f "$hf"
  exit $rc
  ;;
kill)
  ip netns pids "$2" | xargs -r kill -9
  ;;
*) sed -n '2,15p' "$0"; exit 2 ;;
esac
