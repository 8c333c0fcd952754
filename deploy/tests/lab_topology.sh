#!/usr/bin/env bash
# Checks deploy/lab.sh itself: the topology comes up, the outside networks
# reach each other (directly and through the NAT), the LANs reach their
# gateways, nothing has a route out of the lab, and `down` removes every
# namespace it made; with --three, the third gateway and LAN too, and the
# default topology has neither.
set -uo pipefail
cd "$(dirname "$0")/../.."
prefix="espt$$"
passed=0
failed=0
check() { # description, command...
    local what=$1
    shift
    if "$@" >/dev/null 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $what" >&2
    fi
}
fails() { ! "$@"; }
trap 'deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1' EXIT

for nat in "" "--nat"; do
    deploy/lab.sh up $nat --prefix "$prefix" >/dev/null
    n() { ip netns exec "$prefix-$1" "${@:2}"; }
    check "gw_a reaches gw_b over IPv4 $nat" n gw_a ping -c1 -W2 198.18.1.1
    check "gw_b reaches gw_a over IPv4 $nat" n gw_b ping -c1 -W2 198.18.0.1
    check "gw_a reaches gw_b over IPv6 $nat" n gw_a ping -6 -c1 -W2 fd00:2::1
    check "lan_a reaches gw_a" n lan_a ping -c1 -W2 198.19.1.1
    check "lan_b reaches gw_b over IPv6" n lan_b ping -6 -c1 -W2 fd00:b::1
    # Without Espada the LANs are not routed to each other.
    check "lan_a cannot reach lan_b without a tunnel" fails n lan_a ping -c1 -W1 198.19.2.10
    for node in gw_a wan gw_b; do
        check "$node has no route out of the lab" fails n "$node" ip route get 192.0.2.1
        check "$node has no IPv6 route out of the lab" fails n "$node" ip -6 route get 2001:db8::1
    done
    if [ -n "$nat" ]; then
        check "the NAT rule is installed" n wan iptables -t nat -C POSTROUTING -s 198.18.1.0/24 -o wan-a -j MASQUERADE
    fi
    deploy/lab.sh down --prefix "$prefix" >/dev/null
    check "down removes every namespace" fails sh -c "ip netns list | grep -q '^$prefix-'"
done
deploy/lab.sh up --three --prefix "$prefix" >/dev/null
check "gw_c reaches gw_a over IPv4 (--three)" n gw_c ping -c1 -W2 198.18.0.1
check "gw_b reaches gw_c over IPv4 (--three)" n gw_b ping -c1 -W2 198.18.2.1
check "gw_a reaches gw_c over IPv6 (--three)" n gw_a ping -6 -c1 -W2 fd00:3::1
check "lan_c reaches gw_c over IPv4 and IPv6" sh -c "ip netns exec $prefix-lan_c ping -c1 -W2 198.19.3.1 && ip netns exec $prefix-lan_c ping -6 -c1 -W2 fd00:c::1"
check "gw_c has no route out of the lab" fails n gw_c ip route get 192.0.2.1
deploy/lab.sh down --prefix "$prefix" >/dev/null
check "down removes the third gateway's namespaces too" fails sh -c "ip netns list | grep -q '^$prefix-'"
deploy/lab.sh up --prefix "$prefix" >/dev/null
check "the default topology has no third gateway" fails sh -c "ip netns list | grep -Eq '^$prefix-(gw_c|lan_c)'"
deploy/lab.sh down --prefix "$prefix" >/dev/null
echo "lab topology: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
