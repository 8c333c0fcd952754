#!/usr/bin/env bash
# The Espada daemon as IKEv2 responder under a flood of spoofed
# IKE_SA_INITs, in the namespace lab (deploy/lab.sh, made for the run and
# deleted after it; not a test: figures for docs/performance.md):
#
#   - gw_b runs espada with deploy/configs/lab-ikev2-flood-gw-b.conf
#     (cookies above 16 half-open IKE SAs);
#   - gw_a runs `espada-bench ike-flood`: spoofed IKE_SA_INITs from random
#     addresses of 198.18.0.128/25 (gw_a's WAN subnet, so the wan router
#     forwards them and drops the answers it cannot deliver) while its own
#     initiator (198.18.0.1) sets up IKE SA + CHILD_SA with gw_b, before
#     and during the flood;
#   - afterwards: gw_b's `show crypto ikev2 stats` (cookies demanded,
#     half-open drops, SAs established).
#
#   sudo deploy/bench_ike_flood_lab.sh [ike-flood options, e.g. --count 200000 --duration 10]
#
# Release binaries must be built (cargo build --release).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces, raw socket)" >&2; exit 1; }
bench=${CARGO_TARGET_DIR:-target}/release/espada-bench
[ -x "$bench" ] || { echo "$bench: build it first (cargo build --release)" >&2; exit 1; }
prefix="efl$$"
work=$(mktemp -d /tmp/espada-flood-lab.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
cleanup() {
    stop_gateways
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

deploy/lab.sh up --prefix "$prefix" >/dev/null
start_gateway b deploy/configs/lab-ikev2-flood-gw-b.conf || exit 1
echo "== ike-flood from gw_a (198.18.0.1, spoofing 198.18.0.128/25) at the espada daemon on gw_b (198.18.1.1:500)"
rc=0
ip netns exec "$(gw_ns a)" "$bench" ike-flood --target 198.18.1.1 --local 198.18.0.1 \
    --psk espada-flood-psk --spoof-from 198.18.0.128/25 --group 14 "$@" || rc=$?
echo "== gw_b: show crypto ikev2 stats"
show b show crypto ikev2 stats
echo "== gw_b: show crypto ikev2 sa"
show b show crypto ikev2 sa | head -12
exit "$rc"
