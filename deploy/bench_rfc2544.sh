#!/usr/bin/env bash
# RFC 2544 throughput and latency with espada-bench rfc2544 (not a test:
# figures for docs/performance.md), gen on lan_a (core 0), sink on lan_b
# (core 1), 64 flows:
#
#   - plain forwarding for reference: the same lab, no Espada, the kernel
#     routing lan_a -> gw_a -> wan -> gw_b -> lan_b (routes added here);
#   - through the two Espada gateways of deploy/lab.sh (manual keys,
#     deploy/configs/lab-gw-*.conf, AES-128-CBC + HMAC-SHA1-96).
#
#   sudo deploy/bench_rfc2544.sh [TRIAL_SECS [SIZES]]
#
# TRIAL_SECS defaults to 5 (RFC 2544 asks for 60), SIZES to
# 64,128,256,512,1024,1280,1400,imix (IP packet sizes). Release binaries
# must be built (cargo build --release). Namespaces and processes it makes
# are removed at the end; the JSON summaries are left in
# /tmp/espada-rfc2544-{plain,tunnel}.json.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces, AF_XDP)" >&2; exit 1; }
trial=${1:-5}
sizes=${2:-64,128,256,512,1024,1280,1400,imix}
bench=${ESPADA_BENCH:-${CARGO_TARGET_DIR:-target}/release/espada-bench}
ESPADA=${ESPADA:-${CARGO_TARGET_DIR:-target}/release/espada}
[ -x "$bench" ] || { echo "$bench: build it first (cargo build --release)" >&2; exit 1; }
prefix="erf$$"
work=$(mktemp -d /tmp/espada-bench-rfc2544.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
cleanup() {
    stop_gateways
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

rfc() { # label
    local label=$1
    echo "== $label"
    "$bench" rfc2544 --gen-netns "$prefix-lan_a" --gen-dev a-host \
        --sink-netns "$prefix-lan_b" --sink-dev b-host \
        --src 198.19.1.10 --dst 198.19.2.10 --flows 64 --cpu 0 --sink-cpu 1 \
        --sizes "$sizes" --trial "$trial" --json "/tmp/espada-rfc2544-$label.json"
}

echo "$(date -u '+%F %T') UTC, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), ${trial}s trials"
deploy/lab.sh up --prefix "$prefix" >/dev/null

# Plain forwarding: the kernel routes the LANs through the same namespaces.
plain_routes() { # add|del
    in_ns gw_a ip route "$1" 198.19.2.0/24 via 198.18.0.254
    in_ns wan ip route "$1" 198.19.2.0/24 via 198.18.1.1
    in_ns wan ip route "$1" 198.19.1.0/24 via 198.18.0.1
    in_ns gw_b ip route "$1" 198.19.1.0/24 via 198.18.1.254
}
plain_routes add
in_ns lan_a ping -c 3 -i 0.2 198.19.2.10 >/dev/null || echo "plain path: ping lan_a -> lan_b failed" >&2
rfc plain
plain_routes del

# Each gateway's worker on the core of the host it does not feed (gen is
# on core 0, the sink on core 1), as deploy/lab_compare.sh's --gw-cores 1,0.
start_gateway a deploy/configs/lab-gw-a.conf --dataplane-args "--cores 1" || exit 1
start_gateway b deploy/configs/lab-gw-b.conf --dataplane-args "--cores 0" || exit 1
# Lets both gateways learn the hosts' MACs before the runs.
in_ns lan_a ping -c 3 -i 0.2 198.19.2.10 >/dev/null || echo "tunnel: ping lan_a -> lan_b failed" >&2
rfc tunnel
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
