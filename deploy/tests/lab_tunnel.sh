#!/usr/bin/env bash
# Traffic through two Espada gateways in the namespace lab, manual keys
# (deploy/configs/lab-gw-*.conf):
#   - ping and iperf3 (TCP and UDP) lan_a -> lan_b, IPv4 and IPv6 inner;
#   - the ESP captured on the WAN is decrypted by tshark with the SA keys
#     and the inner packets are the ones sent;
#   - stopping the control process leaves traffic flowing, and a restarted
#     one adds no SA twice;
#   - wrong keys on one side: no traffic, integrity failures counted.
# Prints "N passed, M failed" for deploy/test.sh's summary.
set -uo pipefail
cd "$(dirname "$0")/../.."
prefix="espl$$"
work=$(mktemp -d /tmp/espada-lab.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
passed=0
failed=0
check() { # description, command...
    local what=$1
    shift
    if "$@" >"$work/check.out" 2>&1; then
        passed=$((passed + 1))
        echo "ok: $what ($(tail -1 "$work/check.out"))"
    else
        failed=$((failed + 1))
        echo "FAIL: $what" >&2
        sed 's/^/    /' "$work/check.out" | tail -20 >&2
    fi
}
bg_pids=()
cleanup() {
    for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null; done
    stop_gateways
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Pings until `want` replies come back (the first packets may be spent on
# neighbour resolution), at most 20 tries.
pings() { # ns, want, ping args...
    local ns=$1 want=$2
    shift 2
    in_ns "$ns" ping -c 20 -i 0.1 -W 1 "$@" | tee /dev/stderr |
        awk -v w="$want" '/received/ {split($0, a, ","); split(a[2], b, " "); exit !(b[1] >= w)}'
}
iperf() { # server address, client args...
    local addr=$1
    shift
    in_ns lan_b iperf3 -s -1 -B "$addr" >/dev/null 2>&1 &
    local s=$!
    sleep 0.5
    in_ns lan_a timeout 20 iperf3 -c "$addr" -t 3 "$@" -J >"$work/iperf.json"
    local rc=$?
    wait "$s" 2>/dev/null
    [ $rc -eq 0 ] || return 1
    /usr/bin/python3 - "$work/iperf.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["end"]
s = r.get("sum_received") or r.get("sum")
print(f"{s['bits_per_second']/1e6:.1f} Mbit/s, lost {s.get('lost_percent', 0)}%")
sys.exit(0 if s["bits_per_second"] > 1e6 else 1)
PY
}

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

# tshark decrypts what crosses the WAN with the configured keys.
esp_capture() {
    in_ns wan timeout 8 tshark -i wan-a -w "$work/esp.pcap" -a duration:6 -f "ip proto 50" >/dev/null 2>&1 &
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

# Wrong keys: gw_b's inbound authenticator differs.
stop_gateways
sed 's/\(set session-key inbound esp [0-9]* cipher [0-9a-fA-F]* authenticator \)[0-9a-fA-F]/\10/' \
    deploy/configs/lab-gw-b.conf >"$work/wrong-b.conf"
check "the wrong-key config differs from the right one" sh -c "! cmp -s deploy/configs/lab-gw-b.conf $work/wrong-b.conf"
start_gateway a deploy/configs/lab-gw-a.conf
start_gateway b "$work/wrong-b.conf"
check "with a wrong key on gw_b no ping gets through" sh -c "! ip netns exec $prefix-lan_a ping -c 5 -i 0.2 -W 1 198.19.2.10"
check "gw_b counts integrity failures" sh -c "ip netns exec $(gw_ns b) $ESPADA show crypto ipsec sa --run-dir $(gw_run_dir b) | grep -E '#drops integrity-failed: [1-9]'"

echo "lab tunnel: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
