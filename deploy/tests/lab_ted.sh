#!/usr/bin/env bash
# Seed 004 in the lab: Tunnel Endpoint Discovery between two Espada
# gateways, each with the seed's configuration (deploy/configs/seeds/
# 004-daphne.conf on gw_a, 004-fred.conf on gw_b: a dynamic crypto map
# with `discover`, the wildcard key, no peer configured anywhere):
#   - the first packet lan_a -> lan_b is dropped and starts a TED probe
#     toward the destination host; gw_b's dataplane intercepts the probe
#     in transit (XDP -> AF_XDP -> control), its control process answers
#     with its address, gw_a runs Main Mode and Quick Mode with the
#     discovered peer, and ping passes both ways, iperf3 too;
#   - tshark sees the probe addressed to the host (198.19.2.10), never
#     delivered to lan_b, and the answer from gw_b to gw_a;
#   - `show crypto isakmp sa` has the discovered peer, `show crypto map`
#     says "Discover enabled", `show dataplane` counts the probe;
#   - with gw_b's gateway stopped, probes go unanswered: retried with
#     back-off, given up and counted.
# TED probes carry the protected hosts' addresses, so (as the seed says)
# the LANs must be routable across the outside network: the test adds
# those routes to the gateways and the wan router.
# Prints "lab ted: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="estd$$"
work=$(mktemp -d /tmp/espada-ted.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
cap_pid=
lan_cap=
lab_cleanup() {
    [ -n "$cap_pid" ] && kill "$cap_pid" 2>/dev/null
    [ -n "$lan_cap" ] && kill "$lan_cap" 2>/dev/null
}
lab_begin "ted"

deploy/lab.sh up --prefix "$prefix" >/dev/null
in_ns gw_a ip route add 198.19.2.0/24 via 198.18.0.254
in_ns gw_b ip route add 198.19.1.0/24 via 198.18.1.254
in_ns wan ip route add 198.19.1.0/24 via 198.18.0.1
in_ns wan ip route add 198.19.2.0/24 via 198.18.1.1
# $! is the capture itself (see bg_in_ns), so kill stops it: timeout
# passes the signal on to tshark.
bg_in_ns wan timeout 40 tshark -i any -w "$work/wan.pcap" -f "udp port 500" >/dev/null 2>&1
cap_pid=$!
bg_in_ns lan_b timeout 40 tshark -i any -w "$work/lanb.pcap" -f "udp port 500" >/dev/null 2>&1
lan_cap=$!
sleep 2
start_gateway a deploy/configs/seeds/004-daphne.conf || exit 1
start_gateway b deploy/configs/seeds/004-fred.conf || exit 1
show a debug crypto isakmp >/dev/null
show b debug crypto isakmp >/dev/null

check "TED: the first packets discover gw_b, then ping lan_a -> lan_b passes" pings lan_a 12 198.19.2.10
check "ping lan_b -> lan_a over the discovered tunnel" pings lan_b 18 198.19.1.10
check "iperf3 TCP over the discovered tunnel" iperf_from lan_b 198.19.2.10
discovered() {
    show a show crypto isakmp sa | tee /dev/stderr | grep -Eq '198.18.1.1 +198.18.0.1 +QM_IDLE|198.18.0.1 +198.18.1.1 +QM_IDLE'
}
check "gw_a: show crypto isakmp sa has the discovered peer gw_b in QM_IDLE" discovered
map_discover() { show a show crypto map | tee /dev/stderr | grep -q 'Discover enabled'; }
check "gw_a: show crypto map says Discover enabled" map_discover
probe_counted() { show b show dataplane | tee /dev/stderr | grep -Eq 'TED probes: [1-9][0-9]* delivered to IKE'; }
check "gw_b: show dataplane counts the intercepted probe" probe_counted
debug_lines() {
    grep -q 'tunnel discover request' "$work/espada-a.log" &&
        grep -q 'received response to my peer discovery probe' "$work/espada-a.log" &&
        grep -q 'responding to peer discovery probe' "$work/espada-b.log"
}
check "debug crypto isakmp prints the seed's probe and response lines" debug_lines

sleep 1
kill "$cap_pid" "$lan_cap" 2>/dev/null
wait "$cap_pid" "$lan_cap" 2>/dev/null
cap_pid=
lan_cap=
probe_on_the_wire() {
    local probes answers at_host
    probes=$(tshark -r "$work/wan.pcap" -Y "isakmp.exchangetype == 243 && ip.src == 198.18.0.1 && ip.dst == 198.19.2.10" 2>/dev/null | wc -l)
    answers=$(tshark -r "$work/wan.pcap" -Y "isakmp.exchangetype == 243 && ip.src == 198.18.1.1 && ip.dst == 198.18.0.1" 2>/dev/null | wc -l)
    at_host=$(tshark -r "$work/lanb.pcap" 2>/dev/null | wc -l)
    echo "probes gw_a -> 198.19.2.10: $probes, answers gw_b -> gw_a: $answers, UDP 500 seen in lan_b: $at_host"
    [ "$probes" -ge 1 ] && [ "$answers" -ge 1 ] && [ "$at_host" -eq 0 ]
}
check "tshark: the probe went to the host, gw_b answered, nothing reached lan_b" probe_on_the_wire

# gw_b gone: gw_a's probes go unanswered, are retried and given up.
stop_gateway b
show a clear crypto sa >/dev/null
unanswered_count() { show a show crypto isakmp stats | awk '/TED probes unanswered/ {print $1}'; }
before=$(unanswered_count)
unanswered() {
    local i after
    in_ns lan_a ping -c 3 -i 0.3 -W 1 198.19.2.10 >/dev/null 2>&1
    for i in $(seq 1 60); do
        after=$(unanswered_count)
        [ "${after:-0}" -gt "${before:-0}" ] && break
        sleep 0.25
    done
    echo "TED probes unanswered: before ${before:-0}, after ${after:-0}"
    grep -q 'resending packet to 198.19.2.10' "$work/espada-a.log" &&
        [ "${after:-0}" -gt "${before:-0}" ]
}
check "with gw_b stopped, the probe is resent, then given up and counted" unanswered

lab_end
