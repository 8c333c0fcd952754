#!/usr/bin/env bash
# Packet-rate figures with espada-bench gen and sink (not a test: figures
# for docs/performance.md), each a SECS-second run (default 5) with 64 flows,
# gen pinned to core 0 and sink to core 1:
#
#   - gen -> veth -> sink in two namespaces of their own: 64-byte packets
#     and IMIX at the maximum rate, 64-byte packets at 100 kpps;
#   - through the two Espada gateways of deploy/lab.sh (manual keys,
#     deploy/configs/lab-gw-*.conf, AES-128-CBC + HMAC-SHA1-96): gen on
#     lan_a, sink on lan_b, 64 bytes and IMIX at the maximum rate, 64 bytes
#     at 50 kpps;
#   - gw_b's decryption alone: gen on the WAN router sends ESP for gw_b's
#     inbound SA 4096 (`--esp`), sink on lan_b, 64 bytes and IMIX at the
#     maximum rate.
#
#   sudo deploy/bench_gen.sh [SECS]
#
# Release binaries must be built (cargo build --release). Namespaces and
# processes it makes are removed at the end.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces, AF_XDP)" >&2; exit 1; }
secs=${1:-5}
bench=${ESPADA_BENCH:-${CARGO_TARGET_DIR:-target}/release/espada-bench}
ESPADA=${ESPADA:-${CARGO_TARGET_DIR:-target}/release/espada}
[ -x "$bench" ] || { echo "$bench: build it first (cargo build --release)" >&2; exit 1; }
prefix="egb$$"
work=$(mktemp -d /tmp/espada-bench-gen.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
cleanup() {
    stop_gateways
    for n in g1 g2; do ip netns del "$prefix-$n" 2>/dev/null; done
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

one() { # label gen_ns sink_ns sink_dev -- gen args...
    local label=$1 gns=$2 sns=$3 sdev=$4 sp run=$((RANDOM % 65536))
    shift 5
    in_ns "$sns" "$bench" sink --dev "$sdev" --idle 1 --duration $((secs + 30)) --cpu 1 \
        --run "$run" --quiet --json "$work/s.json" 2>"$work/s.err" &
    sp=$!
    sleep 1
    in_ns "$gns" "$bench" gen --cpu 0 --quiet --duration "$secs" --flows 64 \
        --run "$run" --json "$work/g.json" "$@" || { kill "$sp"; wait "$sp"; return 1; }
    wait "$sp"
    /usr/bin/python3 - "$label" "$work/g.json" "$work/s.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[2]))
s = json.load(open(sys.argv[3]))
l = s["latency_us"] or {}
print(f"{sys.argv[1]:<22} gen {g['pps']:>9.0f} pps {g['gbps_l2']:6.3f} Gbps | sink {s['pps']:>9.0f} pps "
      f"{s['gbps_l2']:6.3f} Gbps, {s['probes']}/{g['packets']} = {100 * s['probes'] / max(1, g['packets']):.1f}%, "
      f"reordered {s['reordered']}, latency us p50 {l.get('p50', 0):.0f} p99 {l.get('p99', 0):.0f} "
      f"p99.9 {l.get('p99.9', 0):.0f} max {l.get('max', 0):.0f}")
PY
}

echo "$(date -u '+%F %T') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), ${secs}s per run"
for n in g1 g2; do ip netns add "$prefix-$n"; done
ip link add g1 netns "$prefix-g1" type veth peer name g2 netns "$prefix-g2"
in_ns g1 ip addr add 198.18.100.1/24 dev g1
in_ns g2 ip addr add 198.18.100.2/24 dev g2
in_ns g1 ip link set g1 up
in_ns g2 ip link set g2 up
v="--dev g1 --src 198.18.100.1 --dst 198.18.100.2"
# shellcheck disable=SC2086
{
    one "veth, 64 B, max" g1 g2 g2 -- $v --rate max --size 64
    one "veth, IMIX, max" g1 g2 g2 -- $v --rate max --size imix
    one "veth, 64 B, 100 kpps" g1 g2 g2 -- $v --rate 100000 --size 64
}

deploy/lab.sh up --prefix "$prefix" >/dev/null
start_gateway a deploy/configs/lab-gw-a.conf || exit 1
start_gateway b deploy/configs/lab-gw-b.conf || exit 1
# Lets both gateways learn the hosts' MACs before the runs.
in_ns lan_a ping -c 3 -i 0.2 198.19.2.10 >/dev/null
t="--dev a-host --src 198.19.1.10 --dst 198.19.2.10"
e="--dev wan-b --src 198.19.1.10 --dst 198.19.2.10 --esp spi=4096,suite=aes128-sha1,enc=000102030405060708090a0b0c0d0e0f,auth=101112131415161718191a1b1c1d1e1f20212223,peer=198.18.1.1,local=198.18.0.1"
# shellcheck disable=SC2086
{
    one "tunnel, 64 B, max" lan_a lan_b b-host -- $t --rate max --size 64
    one "tunnel, IMIX, max" lan_a lan_b b-host -- $t --rate max --size imix
    one "tunnel, 64 B, 50 kpps" lan_a lan_b b-host -- $t --rate 50000 --size 64
    one "ESP to gw_b, 64 B, max" wan lan_b b-host -- $e --rate max --size 64
    one "ESP to gw_b, IMIX, max" wan lan_b b-host -- $e --rate max --size imix
}
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
