#!/usr/bin/env bash
# The two-gateway lab in network namespaces:
#
#   lan_a ──(a-lan)── gw_a ──(a-wan)── wan ──(b-wan)── gw_b ──(b-lan)── lan_b
#   198.19.1.0/24          198.18.0.0/24  198.18.1.0/24         198.19.2.0/24
#   fd00:a::/64            fd00:1::/64    fd00:2::/64           fd00:b::/64
#
# `wan` is a router between the two outside networks; with --nat it also
# masquerades gw_b's side (gw_b sits behind a NAT, as in seed 003), so
# gateways must use NAT-T. --three adds a third gateway on a third outside
# network (seed 004's TED between three LANs):
#
#   wan ──(c-wan)── gw_c ──(c-lan)── lan_c
#       198.18.2.0/24        198.19.3.0/24
#       fd00:3::/64          fd00:c::/64
#
# Addresses come only from 198.18.0.0/15 and fd00::/8; no namespace has a
# route out of the lab.
#
#   deploy/lab.sh up [--nat] [--three] [--prefix P]   build the topology
#   deploy/lab.sh down [--prefix P]   delete it (only namespaces it made)
#   deploy/lab.sh status [--prefix P] show namespaces and addresses
#
# The prefix (default "esp") names every namespace (esp-lan_a, ...) so tests
# running side by side do not collide.
set -euo pipefail

usage() {
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
nat=0
three=0
prefix=esp
while [ $# -gt 0 ]; do
    case "$1" in
        --nat) nat=1 ;;
        --three) three=1 ;;
        --prefix) prefix=${2:?--prefix needs a value}; shift ;;
        *) echo "lab.sh: unknown option $1" >&2; usage ;;
    esac
    shift
done
if [ "$(id -u)" -ne 0 ]; then
    echo "lab.sh: network namespaces need root: sudo deploy/lab.sh $cmd" >&2
    exit 1
fi

NODES=(lan_a gw_a wan gw_b lan_b)
[ "$three" = 1 ] && NODES+=(gw_c lan_c)
# `down` deletes the third gateway's namespaces too, whichever way the
# lab was built.
ALL_NODES=(lan_a gw_a wan gw_b lan_b gw_c lan_c)
ns() { echo "$prefix-$1"; }
inns() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }

# veth name, its namespace, peer name, peer namespace.
LINKS=(
    "a-lan gw_a a-host lan_a"
    "a-wan gw_a wan-a wan"
    "b-wan gw_b wan-b wan"
    "b-lan gw_b b-host lan_b"
)
[ "$three" = 1 ] && LINKS+=(
    "c-wan gw_c wan-c wan"
    "c-lan gw_c c-host lan_c"
)

down() {
    for n in "${ALL_NODES[@]}"; do
        if ip netns list | grep -qw "$(ns "$n")"; then
            ip netns del "$(ns "$n")"
        fi
    done
}

addr() { # node dev v4/len v6/len
    inns "$1" ip addr add "$3" dev "$2"
    inns "$1" ip -6 addr add "$4" dev "$2" nodad
    inns "$1" ip link set "$2" up
}

up() {
    down
    for n in "${NODES[@]}"; do
        ip netns add "$(ns "$n")"
        inns "$n" ip link set lo up
        inns "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    for l in "${LINKS[@]}"; do
        read -r a ans b bns <<<"$l"
        ip link add "$a" netns "$(ns "$ans")" type veth peer name "$b" netns "$(ns "$bns")"
    done

    addr lan_a a-host 198.19.1.10/24 fd00:a::10/64
    addr gw_a a-lan 198.19.1.1/24 fd00:a::1/64
    addr gw_a a-wan 198.18.0.1/24 fd00:1::1/64
    addr wan wan-a 198.18.0.254/24 fd00:1::fe/64
    addr wan wan-b 198.18.1.254/24 fd00:2::fe/64
    addr gw_b b-wan 198.18.1.1/24 fd00:2::1/64
    addr gw_b b-lan 198.19.2.1/24 fd00:b::1/64
    addr lan_b b-host 198.19.2.10/24 fd00:b::10/64
    if [ "$three" = 1 ]; then
        addr wan wan-c 198.18.2.254/24 fd00:3::fe/64
        addr gw_c c-wan 198.18.2.1/24 fd00:3::1/64
        addr gw_c c-lan 198.19.3.1/24 fd00:c::1/64
        addr lan_c c-host 198.19.3.10/24 fd00:c::10/64
    fi

    # A veth hands the kernel's half-done (CHECKSUM_PARTIAL) TCP/UDP
    # checksums to its peer as metadata that AF_XDP does not carry; a real
    # wire carries finished checksums. Make the hosts finish them, as a NIC
    # would, so the gateways forward what a physical LAN would deliver.
    inns lan_a ethtool -K a-host tx off >/dev/null
    inns lan_b ethtool -K b-host tx off >/dev/null
    # The WAN router too: its replies to PAT'ed flows cross AF_XDP.
    inns wan ethtool -K wan-a tx off >/dev/null
    inns wan ethtool -K wan-b tx off >/dev/null
    if [ "$three" = 1 ]; then
        inns lan_c ethtool -K c-host tx off >/dev/null
        inns wan ethtool -K wan-c tx off >/dev/null
    fi

    # Hosts reach everything through their gateway; gateways reach the
    # other outside network through `wan`. Nothing routes past the lab.
    inns lan_a ip route add default via 198.19.1.1
    inns lan_a ip -6 route add default via fd00:a::1
    inns lan_b ip route add default via 198.19.2.1
    inns lan_b ip -6 route add default via fd00:b::1
    inns gw_a ip route add 198.18.1.0/24 via 198.18.0.254
    inns gw_a ip -6 route add fd00:2::/64 via fd00:1::fe
    inns gw_b ip route add 198.18.0.0/24 via 198.18.1.254
    inns gw_b ip -6 route add fd00:1::/64 via fd00:2::fe
    if [ "$three" = 1 ]; then
        inns lan_c ip route add default via 198.19.3.1
        inns lan_c ip -6 route add default via fd00:c::1
        inns gw_a ip route add 198.18.2.0/24 via 198.18.0.254
        inns gw_a ip -6 route add fd00:3::/64 via fd00:1::fe
        inns gw_b ip route add 198.18.2.0/24 via 198.18.1.254
        inns gw_b ip -6 route add fd00:3::/64 via fd00:2::fe
        inns gw_c ip route add 198.18.0.0/24 via 198.18.2.254
        inns gw_c ip -6 route add fd00:1::/64 via fd00:3::fe
        inns gw_c ip route add 198.18.1.0/24 via 198.18.2.254
        inns gw_c ip -6 route add fd00:2::/64 via fd00:3::fe
    fi
    for n in gw_a gw_b wan $([ "$three" = 1 ] && echo gw_c); do
        inns "$n" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    done

    if [ "$nat" = 1 ]; then
        # gw_b behind a NAT: its outside address is rewritten to wan's on
        # the way to gw_a's network (seed 003's DHCP-addressed peer).
        inns wan iptables -t nat -A POSTROUTING -s 198.18.1.0/24 -o wan-a -j MASQUERADE
    fi
    echo "lab up: namespaces $(printf '%s ' "${NODES[@]/#/$prefix-}")(nat=$nat three=$three)"
}

status() {
    for n in "${ALL_NODES[@]}"; do
        if ip netns list | grep -qw "$(ns "$n")"; then
            echo "== $(ns "$n")"
            inns "$n" ip -br addr show | grep -v '^lo'
        fi
    done
}

case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) usage ;;
esac
