#!/usr/bin/env bash
# Throughput figures of the two-gateway lab, all measured in one run on the
# same veths, for docs/performance.md (not a test: nothing is asserted):
#
#   - clear forwarding through one Espada dataplane (lan_a -> the WAN
#     router, PAT'ed by gw_a): the baseline of this machine's veth + AF_XDP
#     path without crypto;
#   - lan_a -> lan_b through the tunnel with AES-128-CBC + HMAC-SHA1-96
#     (deploy/configs/lab-gw-*.conf) and with AES-128-GCM-16 (the same
#     configs with esp-gcm keys);
#   - for each: iperf3 TCP (Mbit/s) and iperf3 UDP with 18-byte payloads,
#     i.e. 64-byte Ethernet frames with FCS, sent as fast as iperf3 can
#     (received packets per second).
#
#   sudo deploy/lab_figures.sh            5-second runs
#   ESPADA_FIGURE_SECONDS=10 deploy/lab_figures.sh
#
# Release binaries must be built (deploy/setup.sh does). One worker core per
# gateway; both gateways, the hosts and iperf3 share this machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }

prefix="espf$$"
work=$(mktemp -d /tmp/espada-figures.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
secs=${ESPADA_FIGURE_SECONDS:-5}
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    stop_gateways
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# iperf3 from lan_a to ADDR served in NS; prints "Mbit/s pps".
measure() { # ns addr iperf-client-args...
    local ns=$1 addr=$2
    shift 2
    bg_in_ns "$ns" iperf3 -s -1 -B "$addr" >/dev/null 2>&1
    server=$!
    sleep 0.5
    if ! in_ns lan_a timeout $((secs + 15)) iperf3 -c "$addr" -t "$secs" "$@" -J >"$work/r.json"; then
        kill "$server" 2>/dev/null
    fi
    wait "$server" 2>/dev/null || true
    server=
    /usr/bin/python3 - "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
end = r.get("end", {})
s = end.get("sum_received") or end.get("sum") or {}
secs = s.get("seconds") or 1
bps = s.get("bits_per_second", 0)
pkts = s.get("packets", 0) - s.get("lost_packets", 0)
rate = f" {pkts / secs:10.0f} pps" if pkts else ""
print(f"{bps / 1e6:8.1f} Mbit/s{rate}")
PY
}

run_set() { # label, server ns, server addr
    local label=$1 ns=$2 addr=$3
    printf '%-44s TCP %s\n' "$label" "$(measure "$ns" "$addr")"
    printf '%-44s UDP 64-byte frames %s\n' "$label" "$(measure "$ns" "$addr" -u -b 0 -l 18)"
}

gcm() { # conf: esp-gcm with 16-byte key + 4-byte salt, no authenticator
    sed -e 's/esp-aes esp-sha-hmac/esp-gcm 128/' \
        -e 's/\(cipher [0-9a-f]*\) authenticator \([0-9a-f]\{8\}\)[0-9a-f]*/\1\2/' "$1"
}

deploy/lab.sh up --prefix "$prefix" >/dev/null
echo "Espada lab figures, $(date -u +%Y-%m-%d), $(nproc) cores, ${secs}-second iperf3 runs"

start_gateway a deploy/configs/lab-gw-a.conf
start_gateway b deploy/configs/lab-gw-b.conf
in_ns lan_a ping -c 3 -i 0.2 -W 1 198.19.2.10 >/dev/null || true
in_ns lan_a ping -c 3 -i 0.2 -W 1 198.18.0.254 >/dev/null || true
run_set "clear, one dataplane (lan_a -> WAN, PAT)" wan 198.18.0.254
run_set "tunnel AES-128-CBC + HMAC-SHA1-96" lan_b 198.19.2.10
stop_gateways

gcm deploy/configs/lab-gw-a.conf >"$work/gcm-a.conf"
gcm deploy/configs/lab-gw-b.conf >"$work/gcm-b.conf"
start_gateway a "$work/gcm-a.conf"
start_gateway b "$work/gcm-b.conf"
in_ns lan_a ping -c 3 -i 0.2 -W 1 198.19.2.10 >/dev/null || true
run_set "tunnel AES-128-GCM-16" lan_b 198.19.2.10
