#!/usr/bin/env bash
# An IKEv2 responder under a flood of spoofed IKE_SA_INITs, in two network
# namespaces made for the run and deleted after it (not a test: nothing is
# asserted; figures for docs/performance.md):
#
#   NS-c (client)  veth 198.18.0.1/24  ----  198.18.1.1/24 veth  NS-g (gateway)
#
#   - NS-g runs `espada-bench ike-responder` (the IKEv2 engine on UDP 500,
#     cookies above --cookie-threshold half-open SAs);
#   - NS-c runs `espada-bench ike-flood`: spoofed IKE_SA_INITs from random
#     addresses of 198.18.128.0/17 (raw socket) while its own initiator sets
#     up IKE SA + CHILD_SA with the responder a few times, before and during
#     the flood.
#
# Only 198.18.0.0/15 addresses are used and the namespaces have no route
# out. The responder's answers to spoofed addresses go to the client
# namespace (a route via 198.18.0.1), whose kernel drops them.
#
#   sudo deploy/bench_ike_flood.sh [ike-flood options...]
#   ESPADA_FLOOD_THRESHOLD=16 ESPADA_FLOOD_GROUP=14 deploy/bench_ike_flood.sh --count 200000 --duration 10
#
# Release binaries must be built (cargo build --release -p bench).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces, raw socket)" >&2; exit 1; }

bin=${CARGO_TARGET_DIR:-target}/release/espada-bench
[ -x "$bin" ] || { echo "$bin: build it first (cargo build --release -p bench)" >&2; exit 1; }
threshold=${ESPADA_FLOOD_THRESHOLD:-16}
group=${ESPADA_FLOOD_GROUP:-14}
psk=espada-flood-psk

prefix="fl$$"
ns_c="$prefix-c"
ns_g="$prefix-g"
work=$(mktemp -d /tmp/espada-flood.XXXXXX)
responder=
cleanup() {
    if [ -n "$responder" ]; then
        kill "$responder" 2>/dev/null || true
        wait "$responder" 2>/dev/null || true
    fi
    ip netns del "$ns_c" 2>/dev/null || true
    ip netns del "$ns_g" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns_c"
ip netns add "$ns_g"
ip link add "$prefix-vc" netns "$ns_c" type veth peer name "$prefix-vg" netns "$ns_g"
ip -n "$ns_c" link set lo up
ip -n "$ns_g" link set lo up
ip -n "$ns_c" addr add 198.18.0.1/24 dev "$prefix-vc"
ip -n "$ns_g" addr add 198.18.1.1/24 dev "$prefix-vg"
ip -n "$ns_c" link set "$prefix-vc" up
ip -n "$ns_g" link set "$prefix-vg" up
ip -n "$ns_c" route add 198.18.1.0/24 dev "$prefix-vc"
ip -n "$ns_g" route add 198.18.0.0/24 dev "$prefix-vg"
# Answers to spoofed sources: to the client, whose kernel drops them
# (one neighbour entry, not one per spoofed address).
ip -n "$ns_g" route add 198.18.128.0/17 via 198.18.0.1 dev "$prefix-vg"

ip netns exec "$ns_g" "$bin" ike-responder --listen 198.18.1.1 --psk "$psk" \
    --groups "$group" --cookie-threshold "$threshold" --duration 600 --quiet \
    >"$work/responder.out" 2>"$work/responder.err" &
responder=$!
for _ in $(seq 50); do
    ip netns exec "$ns_g" ss -Hlun 'sport = :500' | grep -q 198.18.1.1 && break
    sleep 0.1
done

echo "== ike-flood (client namespace $ns_c -> responder 198.18.1.1:500 in $ns_g, cookie threshold $threshold, group $group)"
rc=0
ip netns exec "$ns_c" "$bin" ike-flood --target 198.18.1.1 --local 198.18.0.1 --psk "$psk" \
    --spoof-from 198.18.128.0/17 --group "$group" "$@" || rc=$?

kill -TERM "$responder" 2>/dev/null || true
wait "$responder" 2>/dev/null || true
responder=
echo "== responder (espada-bench ike-responder), per second and its counters at exit"
cat "$work/responder.err"
cat "$work/responder.out"
echo "== responder namespace UDP counters (RcvbufErrors = datagrams the responder could not keep up with)"
ip netns exec "$ns_g" awk '/^Udp:/ { if (!h) { split($0, k); h = 1 } else { for (i = 2; i <= NF; i++) printf "%s=%s ", k[i], $i; print "" } }' /proc/net/snmp
exit "$rc"
