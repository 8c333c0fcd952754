#!/usr/bin/env bash
# Seed 003 between two Espada gateways in the namespace lab, gw_b behind
# the `wan` router's NAT (deploy/lab.sh up --nat):
#   gw_a = the seed's IOS router, the hub (deploy/configs/lab-seed003-gw-a.conf:
#          dynamic crypto map, wildcard pre-shared key, PAT with the VPN
#          exempt by ACL 100's deny line);
#   gw_b = the seed's PIX, the spoke (deploy/configs/lab-seed003-gw-b.conf:
#          static crypto map toward the hub, PAT with the VPN exempt).
# Checks:
#   - the hub's dynamic map cannot initiate: lan_a -> lan_b gets nowhere
#     before the spoke has spoken;
#   - traffic lan_b -> lan_a makes the spoke initiate; ping then passes
#     both ways and iperf3 TCP runs through the tunnel;
#   - NAT traversal: both sides show the N capability, the hub knows the
#     spoke as the NAT's address 198.18.0.254, ESP travels in UDP 4500
#     on the hub's side of the NAT (tshark) and never as IP protocol 50,
#     and `show crypto ipsec sa` shows the UDP port and counters moving;
#   - the hub's side of the NAT cut to 1 280 bytes: the router fragments
#     the spoke's UDP-encapsulated ESP, the hub's kernel reassembles it
#     for the IKE daemon's NAT-T socket, which passes it to the
#     dataplane, and 1 300-byte pings pass;
#   - PAT on both gateways for non-VPN traffic (the WAN router has no
#     route back to either LAN: replies come back only if translated),
#     while the VPN traffic reaches lan_a with lan_b's own address;
#   - the NAT forgets its mappings and maps the spoke to a new UDP port:
#     the hub follows it (ISAKMP SA and ESP) on the spoke's first ESP
#     from there, and traffic resumes on the same pair within seconds;
#   - `clear crypto sa` on the spoke deletes the pair on both sides and
#     the next packet renegotiates;
#   - DPD: with the spoke's gateway stopped, the hub declares it dead and
#     drops its SAs within a bounded time.
# Prints "lab seed 003: N passed, M failed". Root only; about a minute.
# The logs (espada-a.log, espada-b.log, with debug crypto isakmp on) are
# kept when a check fails, or always with KEEP_LOGS=1.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="es3$$"
work=$(mktemp -d /tmp/espada-seed003.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh

HUB_CONF=deploy/configs/lab-seed003-gw-a.conf
SPOKE_CONF=deploy/configs/lab-seed003-gw-b.conf
NAT_ADDR=198.18.0.254 # the spoke's address as the hub sees it
cap_pid=
lab_cleanup() {
    if [ -n "$cap_pid" ]; then
        kill "$cap_pid" 2>/dev/null
        wait "$cap_pid" 2>/dev/null
    fi
}
lab_begin "seed 003" "espada-a.log, espada-b.log with debug crypto isakmp"

# show_to FILE SIDE COMMAND...: the command's output, saved and printed.
show_to() {
    local f=$1
    shift
    show "$@" >"$f"
    local rc=$?
    cat "$f"
    return $rc
}
# stat_at_least SIDE COUNTER-REGEX MIN: a `show crypto isakmp stats` counter.
stat_at_least() {
    local n
    show_to "$work/stats-$1.txt" "$1" show crypto isakmp stats >/dev/null || return 1
    n=$(grep -E "^ +[0-9]+ +$2" "$work/stats-$1.txt" | awk '{print $1}' | head -1)
    echo "gw_$1 $2: ${n:-none}"
    [ "${n:-0}" -ge "$3" ]
}
pairs_on() { # side: number of IPsec SA pairs shown
    show "$1" show crypto ipsec sa | grep -c 'current_peer'
}

deploy/lab.sh up --nat --prefix "$prefix" >/dev/null || exit 1

# Both configs compile against the lab's interfaces (as `espada run` does).
config_ok() { # side conf
    install -m 600 "$2" "$work/check-$1.conf"
    ip netns exec "$(gw_ns "$1")" "$ESPADA" config check --kernel "$work/check-$1.conf" 2>&1 |
        grep -v 'warning\|^ *[0-9]* |\|^ *|\|^$' | tail -3
    ip netns exec "$(gw_ns "$1")" "$ESPADA" config check --kernel "$work/check-$1.conf" >/dev/null 2>&1
}
check "the hub's config (seed 003 router) compiles on gw_a" config_ok a "$HUB_CONF"
check "the spoke's config (seed 003 PIX, in IOS) compiles on gw_b" config_ok b "$SPOKE_CONF"

start_gateway a "$HUB_CONF" || exit 1
start_gateway b "$SPOKE_CONF" || exit 1
show a debug crypto isakmp >/dev/null
show b debug crypto isakmp >/dev/null

# IKE and ESP on the hub's side of the NAT, from the start.
in_ns wan timeout 40 tshark -i wan-a -s 128 -w "$work/wan-a.pcap" \
    -f "udp port 500 or udp port 4500 or ip proto 50" >/dev/null 2>&1 &
cap_pid=$!
sleep 2

# The hub's dynamic map has no peer to go to: nothing is negotiated, and
# lan_a's packets for lan_b are not protected (the WAN router drops them).
hub_cannot_initiate() {
    ! in_ns lan_a ping -c 3 -i 0.3 -W 1 198.19.2.10 || return 1
    show_to "$work/isakmp-a0.txt" a show crypto isakmp sa || return 1
    ! grep -q 'ACTIVE\|MM_\|QM_' "$work/isakmp-a0.txt" && stat_at_least a 'packets sent' 0 &&
        ! stat_at_least a 'packets sent' 1
}
check "the hub cannot initiate: lan_a -> lan_b fails, the hub sends no IKE" hub_cannot_initiate

check "lan_b -> lan_a: the spoke initiates through the NAT, then ping passes" pings lan_b 10 198.19.1.10
check "lan_a -> lan_b: ping passes over the SAs the spoke negotiated" pings lan_a 10 198.19.2.10
spoke_initiated() {
    stat_at_least b 'phase 1 SAs established' 1 && stat_at_least b 'phase 2 SA pairs established' 1 &&
        stat_at_least a 'phase 2 SA pairs established' 1 &&
        grep -q 'IKE_P1_COMPLETE' "$work/espada-b.log"
}
check "both sides count the negotiation (phase 1 and 2)" spoke_initiated

# NAT traversal, as each side sees it. Seed policy 10: des, md5, group 1.
hub_sees_nat() {
    show_to "$work/isakmp-a.txt" a show crypto isakmp sa detail || return 1
    # C-id Local Remote ... Status Encr Hash Auth DH Lifetime Cap.
    ! grep -q '198\.18\.1\.1' "$work/isakmp-a.txt" &&
        grep -E "^[0-9]+ +198\.18\.0\.1 +$NAT_ADDR .*ACTIVE +des +md5 +psk +1 .*N" "$work/isakmp-a.txt"
}
check "hub: show crypto isakmp sa detail has the peer as the NAT's $NAT_ADDR, des/md5/group 1, NAT-T (N)" hub_sees_nat
spoke_sees_nat() {
    show_to "$work/isakmp-b.txt" b show crypto isakmp sa detail || return 1
    grep -E "^[0-9]+ +198\.18\.1\.1 +198\.18\.0\.1 .*ACTIVE +des +md5 +psk +1 .*N" "$work/isakmp-b.txt"
}
check "spoke: show crypto isakmp sa detail has the hub 198.18.0.1 with NAT-T (N)" spoke_sees_nat
hub_isakmp_brief() {
    show_to "$work/isakmp-a1.txt" a show crypto isakmp sa || return 1
    grep -E "^198\.18\.0\.1 +$NAT_ADDR +QM_IDLE .*ACTIVE" "$work/isakmp-a1.txt"
}
check "hub: show crypto isakmp sa: dst 198.18.0.1 src $NAT_ADDR QM_IDLE ACTIVE" hub_isakmp_brief

encaps_of() { # file: the first pair's #pkts encaps and decaps
    awk '/#pkts encaps:/ {gsub(",", "", $3); e=$3} /#pkts decaps:/ {gsub(",", "", $3); d=$3; print e, d; exit}' "$1"
}
hub_udp_encap_counting() {
    show_to "$work/ipsec-a1.txt" a show crypto ipsec sa || return 1
    grep -Eq "current_peer $NAT_ADDR port [0-9]+" "$work/ipsec-a1.txt" || return 1
    # UDP-encapsulated: the NAT's port, not 500 (and no bare ESP).
    local port
    port=$(awk '/current_peer/ {print $4; exit}' "$work/ipsec-a1.txt")
    [ "$port" != 500 ] || return 1
    local e1 d1 e2 d2
    read -r e1 d1 < <(encaps_of "$work/ipsec-a1.txt")
    in_ns lan_a ping -c 5 -i 0.1 -W 1 198.19.2.10 >/dev/null || return 1
    show a show crypto ipsec sa >"$work/ipsec-a2.txt" || return 1
    read -r e2 d2 < <(encaps_of "$work/ipsec-a2.txt")
    echo "hub: current_peer $NAT_ADDR port $port; encaps $e1 -> $e2, decaps $d1 -> $d2 across 5 pings"
    [ $((e2 - e1)) -ge 5 ] && [ $((d2 - d1)) -ge 5 ]
}
check "hub: show crypto ipsec sa has current_peer $NAT_ADDR with the NAT's UDP port, counters moving" hub_udp_encap_counting
spoke_udp_encap() {
    show_to "$work/ipsec-b.txt" b show crypto ipsec sa || return 1
    grep 'current_peer 198.18.0.1 port 4500' "$work/ipsec-b.txt"
}
check "spoke: show crypto ipsec sa has current_peer 198.18.0.1 port 4500" spoke_udp_encap

kill "$cap_pid" 2>/dev/null
wait "$cap_pid" 2>/dev/null
cap_pid=
nat_t_on_the_wire() {
    local ike500 ike4500 esp_udp esp_raw
    ike500=$(tshark -r "$work/wan-a.pcap" -Y "isakmp && udp.port == 500 && ip.src == $NAT_ADDR" 2>/dev/null | wc -l)
    ike4500=$(tshark -r "$work/wan-a.pcap" -Y "isakmp && udp.port == 4500 && ip.src == $NAT_ADDR" 2>/dev/null | wc -l)
    esp_udp=$(tshark -r "$work/wan-a.pcap" -Y "esp && udp.port == 4500" 2>/dev/null | wc -l)
    esp_raw=$(tshark -r "$work/wan-a.pcap" -Y "ip.proto == 50" 2>/dev/null | wc -l)
    echo "from $NAT_ADDR: IKE on 500: $ike500, IKE on 4500: $ike4500; ESP in UDP 4500: $esp_udp, bare ESP: $esp_raw"
    [ "$ike500" -ge 1 ] && [ "$ike4500" -ge 1 ] && [ "$esp_udp" -ge 20 ] && [ "$esp_raw" -eq 0 ]
}
check "tshark on the hub's side of the NAT: IKE moves from 500 to 4500, ESP only in UDP 4500" nat_t_on_the_wire

# A smaller link on the hub's side of the NAT: the router fragments the
# spoke's UDP-encapsulated ESP of 1 300-byte pings sent without DF (the
# outer header copies it). A later fragment carries no port, so the
# hub's XDP program leaves them all to the kernel, which reassembles the
# datagram for the IKE daemon's NAT-T socket; the daemon hands the ESP
# to the dataplane, which decrypts it. The hub's replies fit, fragmented
# before encryption (both ends of the veth change: it refuses frames
# above its own MTU).
in_ns wan ip link set wan-a mtu 1280
in_ns gw_a ip link set a-wan mtu 1280
sleep 1
check "1 300-byte pings from behind the NAT cross a 1 280-byte link as fragmented NAT-T ESP" \
    pings lan_b 15 -M dont -s 1300 198.19.1.10
nat_t_fragments_passed() {
    stat_at_least a 'NAT-T ESP datagrams the kernel reassembled, passed' 15 &&
        ! stat_at_least a 'NAT-T ESP datagrams the kernel reassembled, dropped' 1
}
check "hub: the daemon passed the fragmented NAT-T ESP to the dataplane, none dropped" nat_t_fragments_passed
# With DF set (copied to the outer header) the router cannot fragment:
# it answers the spoke with "fragmentation needed" (MTU 1 280), quoting
# the spoke's UDP-encapsulated ESP. The spoke's XDP program hands that to
# the dataplane, whose SA keeps to 1 280 from then on: the next DF ping
# from lan_b gets "fragmentation needed" with the inner MTU back from the
# spoke, lan_b's kernel learns it, and pings of a fitting size pass.
pmtu_learned() {
    in_ns lan_b ping -c 4 -i 0.3 -W 1 -M do -s 1300 198.19.1.10 >"$work/pmtu-ping.txt" 2>&1
    cat "$work/pmtu-ping.txt"
    show_to "$work/ipsec-b-pmtu.txt" b show crypto ipsec sa >/dev/null || return 1
    grep 'path mtu' "$work/ipsec-b-pmtu.txt"
    show b show dataplane | grep -E 'pmtu-(learned|refused)'
    grep -Eq 'Frag needed and DF set \(mtu = 1[12][0-9]{2}\)|message too long, mtu=1[12][0-9]{2}' \
        "$work/pmtu-ping.txt" &&
        grep -q 'path mtu 1280, ip mtu 1500' "$work/ipsec-b-pmtu.txt"
}
check "spoke: DF pings over the 1 280-byte link teach its SA the path MTU, and lan_b the inner MTU" pmtu_learned
pmtu_route() {
    in_ns lan_b ip route get 198.19.1.10 | tee /dev/stderr | grep -Eq 'mtu 1[12][0-9]{2}'
}
check "lan_b's kernel keeps the inner MTU the spoke sent it" pmtu_route
check "DF pings of a size that fits the path then pass" pings lan_b 15 -M do -s 1150 198.19.1.10
in_ns wan ip link set wan-a mtu 1500
in_ns gw_a ip link set a-wan mtu 1500

check "iperf3 TCP lan_a -> lan_b through the tunnel" iperf_from lan_b 198.19.2.10
check "iperf3 TCP lan_b -> lan_a through the tunnel (reverse)" iperf_from lan_b 198.19.2.10 -R

# PAT for everything else. The WAN router has no route to either LAN:
# replies come back only because a gateway translated the source.
pat_sources() { # iface host-ns dest expected-source
    bg_in_ns wan timeout 8 tshark -i "$1" -w "$work/pat-$1.pcap" -a duration:4 -f "icmp" >/dev/null 2>&1
    local t=$!
    sleep 1.5
    in_ns "$2" ping -c 3 -i 0.2 -W 1 "$3" >/dev/null
    wait $t
    local srcs
    srcs=$(tshark -r "$work/pat-$1.pcap" -Y "icmp.type == 8" -T fields -e ip.src 2>/dev/null | sort -u | tr '\n' ' ')
    echo "echo requests on $1 came from: $srcs"
    [ "$srcs" = "$4 " ]
}
check "spoke PAT: ping lan_b -> the WAN router 198.18.1.254 passes" pings lan_b 10 198.18.1.254
check "spoke PAT: the WAN router sees gw_b's 198.18.1.1, not lan_b" pat_sources wan-b lan_b 198.18.1.254 198.18.1.1
check "hub PAT: ping lan_a -> the WAN router 198.18.0.254 passes" pings lan_a 10 198.18.0.254
check "hub PAT: the WAN router sees gw_a's 198.18.0.1, not lan_a" pat_sources wan-a lan_a 198.18.0.254 198.18.0.1
vpn_exempt() {
    bg_in_ns lan_a timeout 8 tshark -i a-host -w "$work/lan-a.pcap" -a duration:4 -f "icmp" >/dev/null 2>&1
    local t=$!
    sleep 1.5
    in_ns lan_b ping -c 3 -i 0.2 -W 1 198.19.1.10 >/dev/null
    wait $t
    local srcs
    srcs=$(tshark -r "$work/lan-a.pcap" -Y "icmp.type == 8" -T fields -e ip.src 2>/dev/null | sort -u | tr '\n' ' ')
    echo "echo requests from lan_b reached lan_a from: $srcs"
    [ "$srcs" = "198.19.2.10 " ]
}
check "NAT exemption: the VPN's packets reach lan_a from lan_b's own 198.19.2.10" vpn_exempt
# Each side ran two pings to the WAN router (two ICMP identifiers): two
# translations made ("Misses"), none for the VPN's pings and iperf3 flows.
# (The protected traffic never reaches NAT at all: Espada looks the SPD up
# first, so the "exempt (ACL deny)" counter stays at 0 for it.)
nat_counts() { # side
    show_to "$work/nat-$1.txt" "$1" show ip nat statistics || return 1
    grep -Eq 'Translated packets: [1-9][0-9]* inside to outside, [1-9][0-9]* outside' "$work/nat-$1.txt" &&
        grep -E '^Hits: [0-9]+ +Misses: 2$' "$work/nat-$1.txt"
}
check "spoke: show ip nat statistics: translations both ways, made only for the 2 PAT ping runs" nat_counts b
check "hub: show ip nat statistics: translations both ways, made only for the 2 PAT ping runs" nat_counts a

# The WAN router's NAT forgets its mappings (as a rebooted NAT does) and
# maps UDP to 40000-40100 from now on: the spoke's IKE and ESP come from
# a new port. The hub learns it from the spoke's first authenticated ESP
# packet from there (the dataplane reports its source port, the control
# process looks once a second; RFC 7296 §2.23) and moves the ISAKMP SA and
# the pair's outbound ESP there: traffic resumes on the same SAs within
# seconds. (Without that, the spoke's next DPD R-U-THERE, ~10 s, would.)
p2_hub() {
    show a show crypto isakmp stats | awk '/phase 2 SA pairs established/ {print $1; exit}'
}
p2_before=$(p2_hub)
in_ns wan iptables -t nat -I POSTROUTING 1 -p udp -s 198.18.1.0/24 -o wan-a -j MASQUERADE --to-ports 40000-40100
if ! command -v conntrack >/dev/null; then
    echo "conntrack is missing: deploy/setup.sh installs it" >&2
fi
in_ns wan conntrack -D -p udp >/dev/null
rebind_t0=$SECONDS
mapping_followed() {
    local replied=1
    for _ in $(seq 1 40); do
        if in_ns lan_b ping -c 1 -W 1 198.19.1.10 >/dev/null; then
            replied=0
            break
        fi
    done
    local took=$((SECONDS - rebind_t0)) port
    show_to "$work/ipsec-a-rebound.txt" a show crypto ipsec sa >/dev/null || return 1
    port=$(awk '/current_peer/ {print $4; exit}' "$work/ipsec-a-rebound.txt")
    grep -m1 "NAT mapping moved" "$work/espada-a.log"
    echo "lan_b -> lan_a answered again ${took} s after the NAT changed; hub sends to $NAT_ADDR port $port; phase 2 pairs $p2_before -> $(p2_hub)"
    [ "$replied" = 0 ] && [ "$took" -le 6 ] && [ "${port:-0}" -ge 40000 ] && [ "${port:-0}" -le 40100 ] &&
        [ "$(p2_hub)" = "$p2_before" ] && [ "$(pairs_on a)" -eq 1 ] &&
        grep -q "NAT mapping moved from port 4500 to $port (ESP): ISAKMP SA and 1 IPsec SA" "$work/espada-a.log"
}
check "NAT remapped: the hub follows the spoke's ESP to its new port within 6 s; ping resumes on the same pair" mapping_followed
check "NAT remapped: ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10

# clear crypto sa on the spoke: both sides drop the pair (delete
# notification), and the next packet from lan_b negotiates a new one.
show b clear crypto sa >/dev/null
cleared_both() {
    for _ in $(seq 1 20); do
        [ "$(pairs_on b)" -eq 0 ] && [ "$(pairs_on a)" -eq 0 ] && break
        sleep 0.25
    done
    echo "pairs: spoke $(pairs_on b), hub $(pairs_on a)"
    [ "$(pairs_on b)" -eq 0 ] && [ "$(pairs_on a)" -eq 0 ] && stat_at_least a 'deletes received' 1
}
check "after clear crypto sa on the spoke, neither side holds a pair (the hub got the deletes)" cleared_both
check "the next packets from lan_b negotiate a new pair; ping passes" pings lan_b 10 198.19.1.10
renegotiated() {
    stat_at_least b 'phase 2 SA pairs established' 2 && [ "$(pairs_on a)" -eq 1 ] &&
        show a show crypto ipsec sa | grep -q "current_peer $NAT_ADDR port"
}
check "the spoke counts a second phase 2 and the hub holds one pair again" renegotiated
check "ping lan_a -> lan_b over the new pair" pings lan_a 10 198.19.2.10

# DPD: the spoke's whole gateway goes away without a word. The hub sends
# R-U-THERE after 10 s of silence, retries every 2 s, and after 5 retries
# declares the peer dead: its SAs go. Allow 40 s.
stop_gateway b
dpd_t0=$SECONDS
hub_declares_dead() {
    for _ in $(seq 1 80); do
        if [ "$(pairs_on a)" -eq 0 ]; then
            break
        fi
        sleep 0.5
    done
    local took=$((SECONDS - dpd_t0))
    show_to "$work/ipsec-a-dead.txt" a show crypto ipsec sa >/dev/null
    show_to "$work/isakmp-a-dead.txt" a show crypto isakmp sa >/dev/null
    echo "hub: $(pairs_on a) pairs, $(grep -c ACTIVE "$work/isakmp-a-dead.txt") ACTIVE ISAKMP SAs, ${took} s after the spoke stopped"
    # (The hub must still answer: an empty answer is no proof.)
    grep -q 'Crypto ISAKMP SA' "$work/isakmp-a-dead.txt" && [ "$(pairs_on a)" -eq 0 ] &&
        ! grep -q ACTIVE "$work/isakmp-a-dead.txt" && [ "$took" -le 40 ]
}
check "DPD: within 40 s of the spoke stopping, the hub holds no pair and no ISAKMP SA" hub_declares_dead
check "DPD: show crypto isakmp stats on the hub counts a dead peer" stat_at_least a 'peers declared dead' 1
check "DPD: the hub's debug log names the dead peer $NAT_ADDR" \
    grep -m1 "IKE_DPD.*peer $NAT_ADDR is dead" "$work/espada-a.log"

lab_end
