#!/usr/bin/env bash
# The issue's lab comparison, every path measured in one run on the same
# veths of the two-gateway lab (deploy/lab.sh), lan_a -> lan_b:
#
#   forwarder    no crypto: gw_a's Espada dataplane forwards the clear
#                traffic (AF_XDP, inside -> outside), the WAN router routes
#                the LANs, gw_b forwards it (outside -> inside is the
#                kernel's: the XDP program passes clear transit to it);
#   espada       Espada on both gateways (encrypt on gw_a, decrypt on gw_b),
#                AES-128-GCM-16 and AES-128-CBC + HMAC-SHA1-96, manual keys
#                (deploy/configs/lab-gw-*.conf);
#   strongswan   strongSwan 5.9 with kernel-libipsec (user-space ESP behind
#                a TUN device, ESP in UDP 4500) on both gateways, IKEv2
#                (deploy/configs/swan/gw-*-ikev2.conf), the same two suites.
#
# For each: TCP (Mbit/s) and UDP at several Ethernet frame sizes (frame =
# UDP payload + 46 bytes, FCS counted as in lab_figures.sh), sent as fast as
# the traffic source can, received Mbit/s and packets per second.
#
#   sudo deploy/lab_compare.sh [--seconds N] [--sizes 64,512,1400]
#        [--paths forwarder,espada,strongswan] [--suites aes128gcm16,aes128-sha1]
#        [--json FILE] [--traffic iperf3]
#
# JSON (stdout, or --json FILE): {"date", "cores", "seconds", "traffic",
# "results": [{"path", "suite", "proto", "frame", "mbps", "pps",
# "retransmits"}...]}; progress on stderr. `espada-bench report` reads it
# and computes the ratios (espada / forwarder, espada / strongswan).
#
# The traffic source is one function, traffic_iperf3; a packet generator
# (espada-bench gen/sink) can be added as traffic_gen with the same
# arguments and output, and chosen with --traffic gen.
#
# Release binaries must be built (ESPADA, see deploy/lib/gateways.sh). One
# worker core per gateway; the gateways, hosts and traffic share this
# machine's cores. Root only (namespaces). Not a test: nothing is asserted,
# but a path whose tunnel does not come up is reported as an error.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }

secs=5
sizes=64,512,1400
paths=forwarder,espada,strongswan
suites=aes128gcm16,aes128-sha1
json_out=
traffic=iperf3
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) secs=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        --paths) paths=$2; shift 2 ;;
        --suites) suites=$2; shift 2 ;;
        --json) json_out=$2; shift 2 ;;
        --traffic) traffic=$2; shift 2 ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case $secs in ''|*[!0-9]*) echo "--seconds takes whole seconds" >&2; exit 2 ;; esac
if [ "$secs" -lt 1 ] || [ "$secs" -gt 120 ]; then echo "--seconds: 1 to 120" >&2; exit 2; fi

prefix="espc$$"
work=$(mktemp -d /tmp/espada-compare.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/strongswan.sh
. deploy/lib/strongswan.sh
A=$(gw_ns a)
B=$(gw_ns b)
server=
cleanup() {
    trap '' INT TERM
    [ -n "$server" ] && kill "$server" 2>/dev/null
    stop_gateways
    swan_stop_all
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "lab_compare: $*" >&2; }

# traffic_iperf3 PROTO FRAME: iperf3 from lan_a to lan_b (198.19.2.10) for
# $secs seconds; prints "MBPS PPS RETRANSMITS" (PPS 0 for TCP).
traffic_iperf3() {
    local proto=$1 frame=$2 args=()
    if [ "$proto" = udp ]; then
        args=(-u -b 0 -l $((frame - 46)))
    fi
    in_ns lan_b iperf3 -s -1 -B 198.19.2.10 >/dev/null 2>&1 &
    server=$!
    sleep 0.5
    if ! in_ns lan_a timeout $((secs + 15)) iperf3 -c 198.19.2.10 -t "$secs" "${args[@]}" -J \
        >"$work/r.json" 2>/dev/null; then
        kill "$server" 2>/dev/null || true
    fi
    wait "$server" 2>/dev/null || true
    server=
    /usr/bin/python3 - "$work/r.json" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    print("0 0 0")
    sys.exit(0)
end = r.get("end", {})
s = end.get("sum_received") or end.get("sum") or {}
secs = s.get("seconds") or 1
bps = s.get("bits_per_second", 0)
pkts = s.get("packets", 0) - s.get("lost_packets", 0)
rtx = (end.get("sum_sent") or {}).get("retransmits", 0)
print(f"{bps / 1e6:.1f} {pkts / secs:.0f} {rtx}")
PY
}

# traffic_gen PROTO FRAME: the AF_XDP generator, once espada-bench has it.
traffic_gen() {
    echo "lab_compare: --traffic gen needs espada-bench gen/sink (not built yet)" >&2
    return 1
}

results="$work/results.jsonl"
: >"$results"
# measure PATH SUITE: TCP, then UDP at every size, appended to $results.
measure() {
    local path=$1 suite=$2 proto frame out
    for proto in tcp udp; do
        for frame in ${sizes//,/ }; do
            [ "$proto" = tcp ] && [ "$frame" != "${sizes##*,}" ] && continue
            out=$("traffic_$traffic" "$proto" "$frame") || out="0 0 0"
            read -r mbps pps rtx <<<"$out"
            log "$(printf '%-10s %-12s %s %5s  %8s Mbit/s %9s pps' "$path" "$suite" "$proto" "$frame" "$mbps" "$pps")"
            printf '{"path":"%s","suite":"%s","proto":"%s","frame":%s,"mbps":%s,"pps":%s,"retransmits":%s}\n' \
                "$path" "$suite" "$proto" "$([ "$proto" = tcp ] && echo null || echo "$frame")" \
                "$mbps" "$pps" "${rtx:-0}" >>"$results"
        done
    done
}

# The Espada configurations of deploy/configs, per suite.
espada_conf() { # side suite
    local conf="deploy/configs/lab-gw-$1.conf"
    case $2 in
        aes128-sha1) cat "$conf" ;;
        aes128gcm16)
            sed -e 's/esp-aes esp-sha-hmac/esp-gcm 128/' \
                -e 's/\(cipher [0-9a-f]*\) authenticator \([0-9a-f]\{8\}\)[0-9a-f]*/\1\2/' "$conf" ;;
        *) echo "lab_compare: suite $2: aes128gcm16 or aes128-sha1" >&2; return 1 ;;
    esac
}
# The same gateways without NAT, and with crypto maps that protect another
# LAN (198.19.3.0/24, fd00:c::/64: espada wants a crypto map), so lan_a ->
# lan_b is looked up in the SPD, bypassed and forwarded in the clear.
clear_conf() { # side
    sed -E -e '/^access-list 101 /s/198\.19\.[12]\.0 0\.0\.0\.255$/198.19.3.0 0.0.0.255/' \
        -e '/^ permit ipv6 /s/fd00:[ab]::\/64$/fd00:c::\/64/' \
        -e '/^ ?ip nat /d' -e '/^access-list 110 /d' "deploy/configs/lab-gw-$1.conf"
}
reaches() { in_ns lan_a ping -c 3 -i 0.2 -W 1 198.19.2.10 >/dev/null 2>&1; }

deploy/lab.sh up --prefix "$prefix" >/dev/null
log "$(date -u +%FT%TZ), $(nproc) cores, ${secs}-second runs, traffic: $traffic"

for path in ${paths//,/ }; do
    case $path in
        forwarder)
            # The WAN router and the gateways route the LANs, for this path only.
            in_ns wan ip route add 198.19.1.0/24 via 198.18.0.1
            in_ns wan ip route add 198.19.2.0/24 via 198.18.1.1
            in_ns gw_a ip route add 198.19.2.0/24 via 198.18.0.254
            in_ns gw_b ip route add 198.19.1.0/24 via 198.18.1.254
            clear_conf a >"$work/clear-a.conf"
            clear_conf b >"$work/clear-b.conf"
            start_gateway a "$work/clear-a.conf"
            start_gateway b "$work/clear-b.conf"
            reaches || log "forwarder: lan_a does not reach lan_b"
            measure forwarder none
            stop_gateways
            in_ns wan ip route del 198.19.1.0/24
            in_ns wan ip route del 198.19.2.0/24
            in_ns gw_a ip route del 198.19.2.0/24
            in_ns gw_b ip route del 198.19.1.0/24
            ;;
        espada)
            for suite in ${suites//,/ }; do
                espada_conf a "$suite" >"$work/esp-a.conf"
                espada_conf b "$suite" >"$work/esp-b.conf"
                start_gateway a "$work/esp-a.conf"
                start_gateway b "$work/esp-b.conf"
                reaches || log "espada $suite: lan_a does not reach lan_b"
                measure espada "$suite"
                stop_gateways
            done
            ;;
        strongswan)
            swan_gateway_setup "$A"
            swan_gateway_setup "$B"
            for suite in ${suites//,/ }; do
                for side in a b; do
                    sed "s/esp_proposals = aes128-sha1/esp_proposals = $suite/" \
                        "deploy/configs/swan/gw-$side-ikev2.conf" >"$work/swan-$side.conf"
                done
                da="$work/swan-$suite-a" db="$work/swan-$suite-b"
                swan_start a "$A" "$da" && swan_start b "$B" "$db" &&
                    swan_load "$A" "$da" "$work/swan-a.conf" >/dev/null &&
                    swan_load "$B" "$db" "$work/swan-b.conf" >/dev/null &&
                    swan_initiate "$A" "$da" lan4 20 >/dev/null ||
                    log "strongswan $suite: the tunnel did not come up"
                reaches || log "strongswan $suite: lan_a does not reach lan_b"
                measure strongswan "$suite"
                swan_stop "$A" "$da"
                swan_stop "$B" "$db"
            done
            ;;
        *) log "unknown path $path (forwarder, espada, strongswan)"; exit 2 ;;
    esac
done

json=$(/usr/bin/python3 - "$results" "$secs" "$traffic" "$(nproc)" <<'PY'
import datetime, json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(json.dumps({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "cores": int(sys.argv[4]),
    "seconds": int(sys.argv[2]),
    "traffic": sys.argv[3],
    "results": rows,
}, indent=1))
PY
)
if [ -n "$json_out" ]; then
    printf '%s\n' "$json" >"$json_out"
    log "wrote $json_out"
else
    printf '%s\n' "$json"
fi
