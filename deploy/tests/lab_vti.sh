#!/usr/bin/env bash
# VTIs over IKEv1 between two Espada gateways in the namespace lab
# (deploy/configs/lab-vti-gw-*.conf: seed 001's configuration, a VTI over
# IPv6 with `tunnel mode ipsec ipv6`, plus an IPv4 VTI; routes into the
# tunnels select what is protected):
#   - the first packets to lan_b start IKE, then ping passes (IPv6 over
#     the IPv6 VTI, IPv4 over the IPv4 VTI);
#   - `show crypto isakmp sa` shows QM_IDLE on both gateways;
#   - the negotiated proxies are any to any (`show crypto ipsec sa`
#     idents ::/0 and 0.0.0.0/0), tunnel mode although the transform set
#     says `mode transport`;
#   - iperf3 TCP passes over the IPv6 VTI;
#   - tshark sees ESP between fd00:1::1 and fd00:2::1;
#   - the gateways' own traffic through the tunnel interfaces (TUN
#     devices): ping fe80::23:3%Tunnel23 as seed 001 does, the IPv4 tunnel
#     address, lan_b from gw_a's LAN address, iperf3 from gw_a;
#   - seed 001 as written (no route into Tunnel23): its ping passes.
# Prints "lab vti: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="espv$$"
work=$(mktemp -d /tmp/espada-vti.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
cap_pid=
lab_cleanup() {
    [ -n "$cap_pid" ] && kill "$cap_pid" 2>/dev/null
}
lab_begin "vti"

deploy/lab.sh up --prefix "$prefix" >/dev/null
start_gateway a deploy/configs/lab-vti-gw-a.conf || exit 1
start_gateway b deploy/configs/lab-vti-gw-b.conf || exit 1
show a debug crypto isakmp >/dev/null

bg_in_ns wan timeout 40 tshark -i any -w "$work/wan.pcap" -f "udp port 500 or ip proto 50 or ip6 proto 50" >/dev/null 2>&1
cap_pid=$!
sleep 2

check "IPv6 VTI: the first packets start IKE, then ping lan_a -> lan_b passes" pings lan_a 10 -6 fd00:b::10
check "IPv4 VTI: ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
check "ping lan_b -> lan_a over the IPv6 VTI" pings lan_b 10 -6 fd00:a::10
for side in a b; do
    check "gw_$side: show crypto isakmp sa has QM_IDLE SAs with both peers" \
        sh -c "ip netns exec $(gw_ns $side) $ESPADA show crypto isakmp sa --run-dir $(gw_run_dir $side) | tee /dev/stderr | grep -c 'QM_IDLE' | grep -qx 2"
done
any_any_proxies() {
    show "$1" show crypto ipsec sa >"$work/ipsec-$1.txt"
    cat "$work/ipsec-$1.txt" >&2
    grep -q 'local  ident (addr/mask/prot/port): (::/0/0/0)' "$work/ipsec-$1.txt" &&
        grep -q 'remote ident (addr/mask/prot/port): (::/0/0/0)' "$work/ipsec-$1.txt" &&
        grep -q 'local  ident (addr/mask/prot/port): (0.0.0.0/0.0.0.0/0/0)' "$work/ipsec-$1.txt" &&
        grep -q 'remote ident (addr/mask/prot/port): (0.0.0.0/0.0.0.0/0/0)' "$work/ipsec-$1.txt" &&
        grep -q 'Crypto map tag: Tunnel23-head-0' "$work/ipsec-$1.txt" &&
        grep -q '^interface: Tunnel23$' "$work/ipsec-$1.txt" &&
        grep -q 'in use settings ={Tunnel' "$work/ipsec-$1.txt" &&
        ! grep -q 'Transport' "$work/ipsec-$1.txt"
}
check "gw_a: the negotiated proxies are any/any, in tunnel mode" any_any_proxies a
check "gw_b: the negotiated proxies are any/any, in tunnel mode" any_any_proxies b
check "iperf3 TCP over the IPv6 VTI" iperf_from lan_b fd00:b::10

# The gateways' own traffic (seed 001: R2 pings FE80::23:3 over Tunnel23).
tunnel_interface() { # side, name, address, route
    local out
    out=$(in_ns "gw_$1" ip -d addr show dev "$2" 2>&1)
    echo "$out" >&2
    echo "$out" | grep -q '^ *tun ' && echo "$out" | grep -q "inet6\? $3" &&
        in_ns "gw_$1" ip route show table all dev "$2" | tee /dev/stderr | grep -q "^$4 "
}
check "gw_a: Tunnel23 is a TUN device with fe80::23:2 and the route to fd00:b::/64" \
    tunnel_interface a Tunnel23 fe80::23:2/64 fd00:b::/64
check "gw_a: Tunnel24 is a TUN device with 198.18.24.2/24 and the route to 198.19.2.0/24" \
    tunnel_interface a Tunnel24 198.18.24.2/24 198.19.2.0/24
check "gw_a pings the peer's tunnel link-local address over Tunnel23 (seed 001's ping FE80::23:3)" \
    pings gw_a 18 -6 fe80::23:3%Tunnel23
check "gw_b pings gw_a's tunnel link-local address over Tunnel23" \
    pings gw_b 18 -6 fe80::23:2%Tunnel23
check "gw_a pings the peer's IPv4 tunnel address over Tunnel24" pings gw_a 18 198.18.24.3
check "gw_a pings lan_b from its LAN address through the IPv6 VTI" pings gw_a 18 -6 -I fd00:a::1 fd00:b::10
check "gw_a pings lan_b from its LAN address through the IPv4 VTI" pings gw_a 18 -I 198.19.1.1 198.19.2.10
check "lan_b pings gw_a's LAN address through the IPv6 VTI" pings lan_b 18 -6 fd00:a::1
check "iperf3 TCP from gw_a itself to lan_b over the IPv4 VTI" \
    iperf_from_ns gw_a lan_b 198.19.2.10 -B 198.19.1.1
gateway_traffic_counted() {
    local out
    out=$(show a show dataplane)
    echo "$out" >&2
    # Every decrypted packet for gw_a delivered, and nothing the kernel
    # sent into a tunnel refused for want of a policy. (TCP from gw_a may
    # outrun the device's queue: handoff-full is not checked.)
    ! echo "$out" | grep -Eq '(for-gateway|tunnel-interface-full|tunnel-no-policy)'
}
check "gw_a: no packet for the gateway itself was dropped" gateway_traffic_counted
mld_kept_home() {
    # The kernel's MLD reports (to ff02::16) would start IKE and cross the
    # tunnel: the tunnel interfaces are set up so that it sends none.
    ! grep -h 'ACQUIRE.*ff02::' "$work/espada-a.log" "$work/espada-b.log"
}
check "the kernels' multicast into a tunnel (MLD) started no IKE" mld_kept_home
check "gw_a: the IKE debug shows the any/any proxy of the sa_request" \
    grep -q 'local_proxy= ::/0' "$work/espada-a.log"

sleep 1
kill "$cap_pid" 2>/dev/null
wait "$cap_pid" 2>/dev/null
cap_pid=
esp_v6_on_the_wire() {
    local ab ba
    ab=$(tshark -r "$work/wan.pcap" -Y "esp && ipv6.src == fd00:1::1 && ipv6.dst == fd00:2::1" 2>/dev/null | wc -l)
    ba=$(tshark -r "$work/wan.pcap" -Y "esp && ipv6.src == fd00:2::1 && ipv6.dst == fd00:1::1" 2>/dev/null | wc -l)
    echo "ESP packets fd00:1::1 -> fd00:2::1: $ab, fd00:2::1 -> fd00:1::1: $ba"
    [ "$ab" -ge 20 ] && [ "$ba" -ge 20 ]
}
check "tshark sees ESP both ways between fd00:1::1 and fd00:2::1" esp_v6_on_the_wire
no_clear_lan_traffic() {
    local n
    n=$(tshark -r "$work/wan.pcap" -Y "ipv6.dst == fd00:b::10 || ipv6.src == fd00:b::10" 2>/dev/null | wc -l)
    echo "clear packets to or from fd00:b::10 on the WAN: $n"
    [ "$n" -eq 0 ]
}
check "no lan_b IPv6 traffic crosses the WAN in the clear" no_clear_lan_traffic

# Seed 001 as written: Tunnel23 with only its link-local address and no
# route into it. The router's own `ping FE80::23:3` negotiates the tunnel
# and passes. (The dataplanes restart, so the devices go and come back.)
stop_gateway a
stop_gateway b
check "the tunnel interfaces go with the dataplane" \
    sh -c "! ip netns exec $(gw_ns a) ip link show Tunnel23"
for side in a b; do
    grep -Ev '^ip(v6)? route' "deploy/configs/lab-vti-gw-$side.conf" >"$work/seed001-$side.conf"
done
start_gateway a "$work/seed001-a.conf" || exit 1
start_gateway b "$work/seed001-b.conf" || exit 1
sleep 1
# The first packets start IKE (IOS drops them too).
in_ns gw_a ping -6 -c 4 -i 0.5 -W 1 fe80::23:3%Tunnel23 >/dev/null 2>&1
check "seed 001 (no route, link-local only): gw_a pings FE80::23:3 over Tunnel23" \
    pings gw_a 18 -6 fe80::23:3%Tunnel23

lab_end
