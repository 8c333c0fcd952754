#!/usr/bin/env bash
# Traffic through two Espada gateways in the namespace lab, manual keys
# (deploy/configs/lab-gw-*.conf):
#   - ping and iperf3 (TCP and UDP) lan_a -> lan_b, IPv4 and IPv6 inner;
#   - the ESP captured on the WAN is decrypted by tshark with the SA keys
#     and the inner packets are the ones sent;
#   - stopping the control process leaves traffic flowing, and a restarted
#     one adds no SA twice;
#   - a 3 001-line crypto ACL loads (its SPD in several control messages)
#     and traffic matching its last line is encrypted;
#   - traffic from lan_a to the WAN itself is port-address-translated to
#     gw_a's outside address (ping, TCP, UDP), tunnel traffic is not;
#   - ESP that the WAN router fragments onto a 1 280-byte link is
#     reassembled by gw_b;
#   - wrong keys on one side: no traffic, integrity failures counted.
# Prints "N passed, M failed" for deploy/test.sh's summary.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="espl$$"
work=$(mktemp -d /tmp/espada-lab.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
iperf() { # server address, client args...
    iperf_from lan_b "$@"
}
bg_pids=()
lab_cleanup() {
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
}
# Pings lan_a -> lan_b; gw_a's encapsulations must grow by the pings.
encaps_grow_with_ping() {
    local before after
    before=$(encaps_a)
    pings lan_a 10 198.19.2.10 || return 1
    after=$(encaps_a)
    echo "gw_a encaps: $before -> $after"
    [ "$after" -ge $((before + 10)) ]
}
encaps_a() {
    show a show crypto ipsec sa | awk '/#pkts encaps:/ { sub(",", "", $3); n += $3 } END { print n + 0 }'
}
lab_begin "tunnel"

deploy/lab.sh up --prefix "$prefix" >/dev/null
start_gateway a deploy/configs/lab-gw-a.conf || exit 1
start_gateway b deploy/configs/lab-gw-b.conf || exit 1

check "IPv4 ping lan_a -> lan_b through the tunnel" pings lan_a 15 198.19.2.10
check "IPv6 ping lan_a -> lan_b through the tunnel" pings lan_a 15 -6 fd00:b::10
check "IPv4 ping lan_b -> lan_a" pings lan_b 15 198.19.1.10
check "iperf3 TCP over IPv4" iperf 198.19.2.10
check "iperf3 UDP over IPv4 (100 Mbit/s)" iperf 198.19.2.10 -u -b 100M
check "iperf3 TCP over IPv6" iperf fd00:b::10
check "iperf3 UDP over IPv6 (100 Mbit/s)" iperf fd00:b::10 -u -b 100M
check "gw_a counted encapsulations" sh -c "ip netns exec $(gw_ns a) $ESPADA show crypto ipsec sa --run-dir $(gw_run_dir a) | grep -E '#pkts encaps: [1-9]'"

# A smaller link on the path: the link between the WAN router and gw_b
# carries 1 280 bytes, so the router fragments gw_a's ESP of 1 300-byte
# pings sent without DF (the outer header copies it) and gw_b reassembles
# it before decrypting (RFC 4303 §3.4.1). gw_b's replies fit, fragmented
# before encryption for the link's new MTU (a veth refuses to take frames
# above its own MTU, so both ends change).
in_ns wan ip link set wan-b mtu 1280
in_ns gw_b ip link set b-wan mtu 1280
sleep 1
check "1 300-byte pings cross a 1 280-byte link as fragmented ESP" pings lan_a 15 -M dont -s 1300 198.19.2.10
reassembled_on_b() {
    show b show dataplane | tee /dev/stderr |
        grep -Eq 'ESP reassembly: [1-9][0-9]* fragments queued, 0 datagrams given up, 0 fragments of failed datagrams'
}
check "gw_b counts the fragments it reassembled" reassembled_on_b
in_ns wan ip link set wan-b mtu 1500
in_ns gw_b ip link set b-wan mtu 1500

# PAT (seed 003): lan_a -> the WAN router, which has no route back to
# lan_a: replies only come back because gw_a translated the source to its
# own address (198.18.0.1) and translates the replies back.
pat_seen_on_wan() {
    bg_in_ns wan timeout 8 tshark -i wan-a -w "$work/pat.pcap" -a duration:5 -f "icmp or udp port 5201" >/dev/null 2>&1
    local t=$!
    sleep 2
    in_ns lan_a ping -c 3 -i 0.2 198.18.0.254 >/dev/null
    wait $t
    local srcs
    srcs=$(tshark -r "$work/pat.pcap" -Y "icmp.type == 8" -T fields -e ip.src 2>/dev/null | sort -u | tr '\n' ' ')
    echo "echo requests on the WAN came from: $srcs"
    [ "$srcs" = "198.18.0.1 " ]
}
check "PAT: ping lan_a -> the WAN router (no route back to lan_a)" pings lan_a 15 198.18.0.254
check "PAT: the WAN sees gw_a's address, not lan_a's" pat_seen_on_wan
check "PAT: iperf3 TCP lan_a -> WAN router" iperf_from wan 198.18.0.254
check "PAT: iperf3 UDP lan_a -> WAN router (50 Mbit/s)" iperf_from wan 198.18.0.254 -u -b 50M
check "PAT: show ip nat statistics counts translations both ways" sh -c "ip netns exec $(gw_ns a) $ESPADA show ip nat statistics --run-dir $(gw_run_dir a) | tee /dev/stderr | grep -E 'Translated packets: [1-9][0-9]* inside to outside, [1-9][0-9]* outside'"

# tshark decrypts what crosses the WAN with the configured keys.
esp_capture() {
    bg_in_ns wan timeout 8 tshark -i wan-a -w "$work/esp.pcap" -a duration:6 -f "ip proto 50" >/dev/null 2>&1
    local t=$!
    sleep 2
    in_ns lan_a ping -c 5 -i 0.2 -p 45737061646121 198.19.2.10 >/dev/null
    wait $t
    /usr/bin/python3 deploy/tests/tshark_esp_check.py "$work/esp.pcap" "$work/gw_a.conf" \
        198.19.1.10 198.19.2.10 5
}
check "ESP on the WAN decrypts (tshark) to the ICMP that lan_a sent" esp_capture

# The control process may go away: the dataplane keeps forwarding.
stop_control a
check "with espada stopped on gw_a, traffic still flows" pings lan_a 15 198.19.2.10
start_gateway a deploy/configs/lab-gw-a.conf
check "a restarted espada finds its SAs installed and adds none" grep -q "0 SA(s) added, 4 already installed" "$work/espada-a.log"
check "traffic flows after the restart" pings lan_a 15 198.19.2.10

# A crypto ACL as long as a hub's (3 000 more lines before the LAN's):
# its SPD takes several control messages, loaded whole at the last.
stop_control a
awk '/^access-list 101 permit/ {
        for (x = 100; x < 112; x++)
            for (y = 1; y <= 250; y++)
                printf "access-list 101 deny ip host 198.19.1.99 host 198.19.%d.%d\n", x, y
     } { print }' deploy/configs/lab-gw-a.conf >"$work/long-acl-a.conf"
check "espada starts with a 3 001-line crypto ACL" start_gateway a "$work/long-acl-a.conf"
check "it loaded the 3 002 SPD rules into the dataplane" \
    grep -q "4 already installed; 3002 SPD rule(s)" "$work/espada-a.log"
check "traffic matching the ACL's last line is still encrypted" encaps_grow_with_ping

# Wrong keys: gw_b's inbound authenticator differs.
stop_gateways
sed 's/\(set session-key inbound esp [0-9]* cipher [0-9a-fA-F]* authenticator \)[0-9a-fA-F]/\10/' \
    deploy/configs/lab-gw-b.conf >"$work/wrong-b.conf"
check "the wrong-key config differs from the right one" sh -c "! cmp -s deploy/configs/lab-gw-b.conf $work/wrong-b.conf"
start_gateway a deploy/configs/lab-gw-a.conf
start_gateway b "$work/wrong-b.conf"
check "with a wrong key on gw_b no ping gets through" sh -c "! ip netns exec $prefix-lan_a ping -c 5 -i 0.2 -W 1 198.19.2.10"
check "gw_b counts integrity failures" sh -c "ip netns exec $(gw_ns b) $ESPADA show crypto ipsec sa --run-dir $(gw_run_dir b) | grep -E '#drops integrity-failed: [1-9]'"

lab_end
