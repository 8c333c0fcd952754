#!/usr/bin/env bash
# The two-gateway demo: builds Espada, brings up the namespace lab
# (lan_a — gw_a — wan — gw_b — lan_b), starts an Espada gateway on gw_a and
# gw_b with IKEv1 crypto maps (deploy/configs/lab-ike-gw-*.conf: the first
# packets negotiate Main Mode and Quick Mode, as on IOS), sends ping (IPv4
# and IPv6) and a 10-second iperf3 TCP run from lan_a to lan_b through the
# tunnel, prints `show crypto isakmp sa` and `show crypto ipsec sa` from
# both gateways and the measured throughput, and tears everything down.
#
#   sudo deploy/demo.sh                 setup, build, run the demo
#   sudo deploy/demo.sh --manual        manually keyed SAs instead of IKE
#                                       (deploy/configs/lab-gw-*.conf)
#   ESPADA_DEMO_SECONDS=30 deploy/demo.sh   a longer iperf3 run
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "the demo builds network namespaces: run it as root (sudo deploy/demo.sh)" >&2
    exit 1
fi
configs=(deploy/configs/lab-ike-gw-a.conf deploy/configs/lab-ike-gw-b.conf)
case "${1:-}" in
    --manual) configs=(deploy/configs/lab-gw-a.conf deploy/configs/lab-gw-b.conf) ;;
    "") ;;
    *)
        echo "usage: deploy/demo.sh [--manual]" >&2
        exit 2
        ;;
esac
deploy/setup.sh
if ! command -v cargo >/dev/null 2>&1; then . "$HOME/.cargo/env"; fi

prefix=demo$$
work=$(mktemp -d /tmp/espada-demo.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
iperf_pid=
cleanup() {
    [ -n "$iperf_pid" ] && kill "$iperf_pid" 2>/dev/null
    stop_gateways
    deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n=== %s\n' "$*"; }

step "lab up"
deploy/lab.sh up --prefix "$prefix"

step "starting Espada on gw_a and gw_b"
start_gateway a "${configs[0]}"
start_gateway b "${configs[1]}"
sed 's/^/gw_a: /' "$work/espada-a.log"
sed 's/^/gw_b: /' "$work/espada-b.log"

step "ping lan_a (198.19.1.10) -> lan_b (198.19.2.10) through the tunnel"
# The first packets start IKE (or neighbour resolution) and are dropped,
# as on IOS.
in_ns lan_a ping -c 5 -i 0.2 -W 1 198.19.2.10 || true
step "ping lan_a (fd00:a::10) -> lan_b (fd00:b::10), IPv6 inner"
in_ns lan_a ping -6 -c 5 -i 0.2 -W 1 fd00:b::10 || true

secs=${ESPADA_DEMO_SECONDS:-10}
step "iperf3 TCP, ${secs} s, lan_a -> lan_b"
bg_in_ns lan_b iperf3 -s -1 -B 198.19.2.10 >/dev/null 2>&1
iperf_pid=$!
sleep 0.5
in_ns lan_a iperf3 -c 198.19.2.10 -t "$secs" -f m | tee "$work/iperf.txt"
wait "$iperf_pid" 2>/dev/null || true
iperf_pid=

if [ "${configs[0]}" = deploy/configs/lab-ike-gw-a.conf ]; then
    step "show crypto isakmp sa (gw_a)"
    show a show crypto isakmp sa
    step "show crypto session (gw_b)"
    show b show crypto session
fi
step "show crypto ipsec sa (gw_a)"
show a show crypto ipsec sa
step "show crypto ipsec sa (gw_b)"
show b show crypto ipsec sa

step "result"
rate=$(awk '/receiver/ {print $(NF-2), $(NF-1)}' "$work/iperf.txt" | tail -1)
cores=$(nproc)
echo "iperf3 TCP through the Espada tunnel: ${rate:-n/a} (AES-128-CBC + HMAC-SHA1-96; one worker core per gateway, $cores cores shared by both gateways, the hosts and iperf3)"
