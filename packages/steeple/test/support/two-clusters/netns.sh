#!/usr/bin/env bash
# The network of the two-cluster test: cluster A and cluster B in their own network
# namespaces, joined through a third "router" namespace that masquerades A's traffic
# towards B (so B sees A's calls from the router's address, as across a NAT gateway) and
# forwards one port of its B-side address to A's bundle endpoint (as a gateway would
# publish a service behind NAT). B has no route to A's network at all.
#
#   <prefix>-a                 <prefix>-r (router)                   <prefix>-b
#   eth0 10.231.1.2/24 ─── to-a 10.231.1.1   to-b 10.231.2.1 ─── eth0 10.231.2.2/24
#   default via .1.1           MASQUERADE -s 10.231.1.0/24 -o to-b   (no default route)
#                              DNAT 10.231.2.1:PORT → 10.231.1.2:PORT
#
# Only these addresses (and loopback) are used. The iptables rules live in the router
# namespace, so deleting the namespaces removes them; nothing changes in the root namespace.
#
# Usage (root, iproute2 and iptables):
#   netns.sh up PREFIX A_BUNDLE_PORT   create the three namespaces (fails if any exists)
#   netns.sh down PREFIX               kill what still runs in them and delete them
#   netns.sh clean-stale BASE          `down` every BASE-<pid> network whose <pid> is gone
set -euo pipefail

A_NET=10.231.1
B_NET=10.231.2

die() {
  echo "netns.sh: $*" >&2
  exit 1
}

up() {
  local p=$1 port=$2
  [[ $port =~ ^[0-9]+$ ]] || die "A_BUNDLE_PORT must be a number, got '$port'"
  for ns in "$p-a" "$p-b" "$p-r"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip link add eth0 netns "$p-a" type veth peer name to-a netns "$p-r"
  ip link add eth0 netns "$p-b" type veth peer name to-b netns "$p-r"
  ip -n "$p-a" addr add "$A_NET.2/24" dev eth0
  ip -n "$p-r" addr add "$A_NET.1/24" dev to-a
  ip -n "$p-b" addr add "$B_NET.2/24" dev eth0
  ip -n "$p-r" addr add "$B_NET.1/24" dev to-b
  ip -n "$p-a" link set eth0 up
  ip -n "$p-b" link set eth0 up
  ip -n "$p-r" link set to-a up
  ip -n "$p-r" link set to-b up
  ip -n "$p-a" route add default via "$A_NET.1"
  # /proc/sys/net is per network namespace: this turns forwarding on in the router only.
  ip netns exec "$p-r" sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
  ip netns exec "$p-r" iptables -t nat -A POSTROUTING -s "$A_NET.0/24" -o to-b -j MASQUERADE
  ip netns exec "$p-r" iptables -t nat -A PREROUTING -i to-b -d "$B_NET.1" -p tcp --dport "$port" \
    -j DNAT --to-destination "$A_NET.2:$port"
}

down() {
  local p=$1
  for ns in "$p-a" "$p-b" "$p-r"; do
    ip netns list | grep -qE "^$ns( |\$)" || continue
    # Processes keep a deleted namespace alive: end the ones still in it (by pid) first.
    local pids
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$ns" || true
  done
}

clean_stale() {
  local base=$1 ns pid
  for ns in $(ip netns list | awk '{print $1}'); do
    [[ $ns =~ ^$base-([0-9]+)-[abr]$ ]] || continue
    pid=${BASH_REMATCH[1]}
    if ! kill -0 "$pid" 2>/dev/null; then
      down "$base-$pid"
    fi
  done
}

case ${1:-} in
up) up "${2:?PREFIX}" "${3:?A_BUNDLE_PORT}" ;;
down) down "${2:?PREFIX}" ;;
clean-stale) clean_stale "${2:?BASE}" ;;
*) die "usage: netns.sh up PREFIX A_BUNDLE_PORT | down PREFIX | clean-stale BASE" ;;
esac
