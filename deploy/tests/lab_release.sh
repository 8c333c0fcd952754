#!/usr/bin/env bash
# Seed 003's spoke re-leases its outside address (the PIX's "ip address
# dhcp"; here the test changes the address on gw_b's b-wan by hand, as a
# DHCP client would: old address deleted, new one added, route back).
#   gw_a = the hub (deploy/configs/lab-seed003-gw-a.conf: dynamic crypto
#          map, wildcard key, DPD);
#   gw_b = the spoke (deploy/configs/lab-seed003-gw-b.conf: it initiates).
# With IKE=v2 the same over IKEv2 (lab-ikev2-dyn-gw-a.conf, a dynamic map
# with a wildcard keyring, and lab-ikev2-dyn-gw-b.conf): "ISAKMP SA"
# below is then the IKE SA, "pair" the CHILD_SA pair.
# Three moves, each followed by the same checks:
#   (a) no NAT: 198.18.1.1 -> 198.18.1.2;
#   (b) the WAN router starts masquerading, then 198.18.1.2 -> 198.18.1.3:
#       the hub now sees the spoke as the NAT's 198.18.0.254;
#   (c) behind that NAT, 198.18.1.3 -> 198.18.1.4: the same NAT address,
#       new ports (the old mappings still hold the old ones).
# After each move: the spoke drops the SAs of its lost address and says
# so (debug line, counter), ping lan_b -> lan_a recovers within 15 s
# (the first packet negotiates from the new address), the hub holds
# exactly one ISAKMP SA and one pair, both with the new peer address and
# port (the stale ones replaced, counted), ping lan_a -> lan_b passes, and
# tshark on the hub's side sees no ESP to the old address or port from the
# hub's first ESP to the new peer on. Not from the move itself: the
# spoke's dataplane learns of the lost address from the control process,
# and a packet it sends on the old SA in that moment is authentic, so the
# hub answers it on the old pair (seen in CI in (b) and (c), one reply
# each), before the spoke has negotiated from its new address.
# Prints "lab re-lease: N passed, M failed" ("lab IKEv2 re-lease" with
# IKE=v2). Root only; about a minute.
# Logs (espada-a.log, espada-b.log, debug crypto isakmp|ikev2 on) are
# kept when a check fails, or always with KEEP_LOGS=1.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="erl$$"
work=$(mktemp -d /tmp/espada-release.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh

IKE=${IKE:-v1}
if [ "$IKE" = v2 ]; then
    HUB_CONF=deploy/configs/lab-ikev2-dyn-gw-a.conf
    SPOKE_CONF=deploy/configs/lab-ikev2-dyn-gw-b.conf
    name="IKEv2 re-lease" debug=ikev2 stats="crypto ikev2 stats" sa_name="IKE SA"
    replaced="CHILD_SA pairs replaced"
    # `show crypto ikev2 sa` (seed 002's layout): its rows, and ours
    # with the peer's address (%s) READY.
    sa_show="crypto ikev2 sa" sa_row='^ *[0-9]+ +[0-9a-f.:]+/[0-9]+ '
    sa_ours='^ *[0-9]+ +198\.18\.0\.1/[0-9]+ +%s/[0-9]+ .* READY'
else
    HUB_CONF=deploy/configs/lab-seed003-gw-a.conf
    SPOKE_CONF=deploy/configs/lab-seed003-gw-b.conf
    name="re-lease" debug=isakmp stats="crypto isakmp stats" sa_name="ISAKMP SA"
    replaced="SA pairs replaced"
    sa_show="crypto isakmp sa" sa_row='^[0-9a-f.:]+ +[0-9a-f.:]+ +[A-Z_]+'
    sa_ours='^198\.18\.0\.1 +%s +QM_IDLE .*ACTIVE'
fi
NAT_ADDR=198.18.0.254
cap_pid=
lab_cleanup() {
    if [ -n "$cap_pid" ]; then
        kill "$cap_pid" 2>/dev/null
        wait "$cap_pid" 2>/dev/null
    fi
}
lab_begin "$name" "espada-a.log, espada-b.log with debug crypto $debug"

stat_of() { # side counter-regex: a `show crypto isakmp|ikev2 stats` counter
    # shellcheck disable=SC2086 # "crypto isakmp stats": three words
    show "$1" show $stats | grep -E "^ +[0-9]+ +$2" | awk '{print $1}' | head -1
}

deploy/lab.sh up --prefix "$prefix" >/dev/null || exit 1
start_gateway a "$HUB_CONF" || exit 1
start_gateway b "$SPOKE_CONF" || exit 1
show a debug crypto "$debug" >/dev/null
show b debug crypto "$debug" >/dev/null

# IKE and ESP on the hub's side of the WAN, for the whole test.
in_ns wan timeout 180 tshark -i wan-a -s 128 -w "$work/wan-a.pcap" \
    -f "udp or ip proto 50" >/dev/null 2>&1 &
cap_pid=$!
sleep 2

check "before any move: lan_b -> lan_a, the spoke initiates from 198.18.1.1" pings lan_b 10 198.19.1.10

# hub_holds PEER: exactly one ISAKMP SA and one pair on the hub, both
# with PEER; prints the pair's peer port.
hub_holds() {
    local peer=$1
    # shellcheck disable=SC2086 # "crypto isakmp sa": three words
    show a show $sa_show >"$work/ike-a.txt" || return 1
    show a show crypto ipsec sa >"$work/ipsec-a.txt" || return 1
    cat "$work/ike-a.txt"
    grep current_peer "$work/ipsec-a.txt"
    [ "$(grep -Ec "$sa_row" "$work/ike-a.txt")" -eq 1 ] &&
        grep -Eq "${sa_ours//%s/${peer//./\\.}}" "$work/ike-a.txt" &&
        [ "$(grep -c current_peer "$work/ipsec-a.txt")" -eq 1 ] &&
        grep -q "current_peer $peer port" "$work/ipsec-a.txt"
}
peer_port() { # the hub's one pair's peer port
    show a show crypto ipsec sa | awk '/current_peer/ {print $4; exit}'
}
check "the hub holds one $sa_name and one pair, with 198.18.1.1" hub_holds 198.18.1.1

# move OLD NEW: the spoke's b-wan address changes as a DHCP re-lease does.
move() {
    in_ns gw_b ip addr del "$1/24" dev b-wan &&
        in_ns gw_b ip addr add "$2/24" dev b-wan &&
        in_ns gw_b ip route replace 198.18.0.0/24 via 198.18.1.254
}

# recovers: pings from lan_b until one passes (the first packet starts
# the negotiation), at most 15 s; prints how long it took.
recovers() {
    local t0=$SECONDS i
    for i in $(seq 1 30); do
        if in_ns lan_b ping -c 1 -W 1 198.19.1.10 >/dev/null 2>&1; then
            echo "first reply $((SECONDS - t0)) s after the move (try $i)"
            pings lan_b 10 198.19.1.10 >/dev/null 2>&1
            return
        fi
        sleep 0.2
    done
    echo "no reply in 15 s"
    return 1
}

spoke_dropped_old() { # old address, lost count expected at least
    local n
    n=$(stat_of b 'local addresses lost')
    echo "spoke: local addresses lost with SAs: ${n:-none}"
    if [ "$IKE" = v2 ]; then
        grep -q "Local address $1 is gone: deleted 1 IKE SA(s) bound to it" "$work/espada-b.log"
    else
        grep -q "local address $1 is gone: deleted 1 ISAKMP SA(s) and 1 SA pair(s)" "$work/espada-b.log"
    fi && [ "${n:-0}" -ge "$2" ]
}
hub_replaced() { # at least N pairs replaced
    local n
    n=$(stat_of a "$replaced")
    echo "hub: $replaced by a peer at a new address: ${n:-none}"
    [ "${n:-0}" -ge "$1" ] && grep -Eq "(IPSEC\(delete_sa\): |IKEv2:\(SESSION ID = 0\):)dynamic peer .* replaces" "$work/espada-a.log"
}
# no_esp_to FILTER SINCE: ESP from the hub not matching FILTER after
# epoch SINCE (the move) goes to the new peer; from the first of it on, no
# ESP matches FILTER (the old peer), and there are at least 10 (the
# recovery's and lan_a's pings each pass on 10 replies: the capture works).
no_esp_to() {
    local to_new="esp && frame.time_epoch > $2 && ip.src == 198.18.0.1 && !($1)"
    local times first stale fresh
    sleep 1.5 # tshark's buffer
    times=$(tshark -r "$work/wan-a.pcap" -Y "$to_new" -T fields -e frame.time_epoch 2>/dev/null)
    first=$(head -1 <<<"$times")
    [ -n "$first" ] || { echo "no ESP from the hub to the new peer"; return 1; }
    fresh=$(wc -l <<<"$times")
    stale=$(tshark -r "$work/wan-a.pcap" -Y "esp && frame.time_epoch >= $first && ($1)" 2>/dev/null | wc -l)
    echo "ESP from the hub after the move: $fresh to the new peer; to the old one from the first of those on: $stale"
    [ "$stale" -eq 0 ] && [ "$fresh" -ge 10 ]
}

# (a) no NAT.
t_a=$(date +%s.%N)
check "(a) the spoke's b-wan moves 198.18.1.1 -> 198.18.1.2" move 198.18.1.1 198.18.1.2
check "(a) ping lan_b -> lan_a recovers within 15 s" recovers
check "(a) the spoke dropped the SAs of 198.18.1.1 (debug line, counter)" spoke_dropped_old 198.18.1.1 1
check "(a) the hub holds one $sa_name and one pair, with 198.18.1.2 only" hub_holds 198.18.1.2
check "(a) the hub replaced the stale pair (counter, debug line)" hub_replaced 1
check "(a) ping lan_a -> lan_b passes over the new pair" pings lan_a 10 198.19.2.10
check "(a) tshark: no ESP from the hub to 198.18.1.1 after the new pair's first packet" no_esp_to "ip.dst == 198.18.1.1" "$t_a"

# (b) behind a NAT from now on (new flows only: conntrack keeps the
# existing ones untranslated, and the next move makes new ones).
in_ns wan iptables -t nat -A POSTROUTING -s 198.18.1.0/24 -o wan-a -j MASQUERADE
t_b=$(date +%s.%N)
check "(b) behind the NAT, the spoke's b-wan moves 198.18.1.2 -> 198.18.1.3" move 198.18.1.2 198.18.1.3
check "(b) ping lan_b -> lan_a recovers within 15 s (NAT-T)" recovers
check "(b) the spoke dropped the SAs of 198.18.1.2" spoke_dropped_old 198.18.1.2 2
check "(b) the hub holds one $sa_name and one pair, with the NAT's $NAT_ADDR only" hub_holds "$NAT_ADDR"
check "(b) the hub replaced the stale pair" hub_replaced 2
check "(b) ping lan_a -> lan_b passes over the new pair" pings lan_a 10 198.19.2.10
check "(b) tshark: no ESP from the hub to 198.18.1.2 after the new pair's first packet" no_esp_to "ip.dst == 198.18.1.2" "$t_b"
old_port=$(peer_port)

# (c) behind the same NAT: the NAT's address stays, its ports change.
t_c=$(date +%s.%N)
check "(c) behind the same NAT, the spoke's b-wan moves 198.18.1.3 -> 198.18.1.4" move 198.18.1.3 198.18.1.4
check "(c) ping lan_b -> lan_a recovers within 15 s" recovers
check "(c) the spoke dropped the SAs of 198.18.1.3" spoke_dropped_old 198.18.1.3 3
check "(c) the hub holds one $sa_name and one pair, with $NAT_ADDR" hub_holds "$NAT_ADDR"
new_port_differs() {
    local p
    p=$(peer_port)
    echo "the hub's peer port: $old_port before the move, $p after"
    [ -n "$p" ] && [ -n "$old_port" ] && [ "$p" != "$old_port" ]
}
check "(c) the hub's pair has the NAT's new port (was $old_port)" new_port_differs
check "(c) the hub replaced the stale pair" hub_replaced 3
check "(c) ping lan_a -> lan_b passes over the new pair" pings lan_a 10 198.19.2.10
check "(c) tshark: no ESP from the hub to $NAT_ADDR port $old_port after the new pair's first packet" \
    no_esp_to "ip.dst == $NAT_ADDR && udp.dstport == $old_port" "$t_c"

lab_end
