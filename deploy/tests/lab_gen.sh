#!/usr/bin/env bash
# espada-bench gen and sink (the AF_XDP packet generator and receiver) in
# network namespaces:
#   - over a veth pair: IPv4/UDP and IPv6/TCP-like IMIX flows at a modest
#     rate arrive complete (no loss, JSON summaries agree), also from two
#     TX queues to two RX queues, then a short run at the maximum rate (its
#     figure is printed, not asserted);
#   - through a kernel router that drops every 50th probe (iptables):
#     the sink's loss equals the router's drop counter; then one that
#     holds every 50th back (an HTB class): the sink counts them late;
#   - the tool's own errors: unknown interface, not root, an interface
#     whose XDP hook is taken, a rate above the link: one line each;
#   - through the two Espada gateways of deploy/lab.sh (manual keys,
#     deploy/configs/lab-gw-*.conf): lan_a -> lan_b over IPv4 and IPv6
#     arrives; a sink on the WAN counts gw_a's ESP by SPI;
#   - ESP mode: gen encrypts for gw_b's inbound SA and sends from the WAN
#     to gw_b's outside address; gw_b decrypts and forwards to lan_b, where
#     the sink counts the probes;
#   - espada-bench rfc2544 through the gateways, a short run (2 sizes,
#     1-s trials, 3 trials a size): a zero-loss rate above 0 and at most
#     the generator's maximum per size, and its latency.
# Prints "lab gen: N passed, M failed" for deploy/test.sh's summary.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="espg$$"
work=$(mktemp -d /tmp/espada-gen.XXXXXX)
BENCH=${ESPADA_BENCH:-target/release/espada-bench}
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
sink_pid=
lab_cleanup() {
    [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null
    for n in g1 g2 g3 r; do ip netns del "$prefix-$n" 2>/dev/null; done
}
lab_begin "gen"

# start_sink NS DEV NAME [sink args...]: a sink that ends 2 s after the
# traffic stops (40 s at most), its JSON in $work/NAME.json; waits until
# its sockets are registered.
start_sink() {
    local ns=$1 dev=$2 name=$3
    shift 3
    in_ns "$ns" "$BENCH" sink --dev "$dev" --idle 2 --duration 40 --cpu 1 \
        --json "$work/$name.json" "$@" 2>"$work/$name.err" &
    sink_pid=$!
    for _ in $(seq 1 100); do
        grep -q "sink: receiving" "$work/$name.err" 2>/dev/null && return 0
        kill -0 "$sink_pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$work/$name.err" >&2
    return 1
}
wait_sink() {
    local pid=$sink_pid
    sink_pid=
    # --duration bounds it; the wait cannot hang longer.
    wait "$pid"
}

# run NAME GEN_NS SINK_NS SINK_DEV -- gen args: one gen run into one sink.
run() {
    local name=$1 gns=$2 sns=$3 sdev=$4
    shift 5
    start_sink "$sns" "$sdev" "$name" || return 1
    in_ns "$gns" "$BENCH" gen --cpu 0 --json "$work/$name-gen.json" "$@" 2>"$work/$name-gen.err"
    local rc=$?
    wait_sink || rc=1
    [ $rc -eq 0 ] || { cat "$work/$name-gen.err" "$work/$name.err" >&2; return 1; }
}

# verdict NAME EXPR: python over gen (g) and sink (s) summaries.
verdict() {
    /usr/bin/python3 - "$work/$1-gen.json" "$work/$1.json" "$2" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
s = json.load(open(sys.argv[2]))
lat = s.get("latency_us") or {}
print(f"sent {g.get('packets')} at {g.get('pps', 0):.0f} pps; received {s['packets']} "
      f"(probes {s['probes']}, ESP {s['esp']['packets']}), lost {s['lost']}, reordered {s['reordered']}, "
      f"latency p50 {lat.get('p50', 0):.1f} p99 {lat.get('p99', 0):.1f} us")
sys.exit(0 if eval(sys.argv[3]) else 1)
PY
}

# ---- gen -> sink over a veth pair
for n in g1 g2; do
    ip netns add "$prefix-$n"
    in_ns "$n" ip link set lo up
done
# Two queues each way: a veth hands a frame sent on TX queue N to its
# peer's RX queue N, so a two-queue generator feeds both receiver workers.
ip link add g1 numtxqueues 2 numrxqueues 2 netns "$prefix-g1" type veth \
    peer name g2 numtxqueues 2 numrxqueues 2 netns "$prefix-g2"
in_ns g1 ip addr add 198.18.100.1/24 dev g1
in_ns g2 ip addr add 198.18.100.2/24 dev g2
in_ns g1 ip -6 addr add fd00:100::1/64 dev g1 nodad
in_ns g2 ip -6 addr add fd00:100::2/64 dev g2 nodad
in_ns g1 ip link set g1 up
in_ns g2 ip link set g2 up

v4() {
    run v4 g1 g2 g2 -- --dev g1 --src 198.18.100.1 --dst 198.18.100.2 \
        --rate 10000 --count 20000 --flows 16 --size 64 &&
        verdict v4 "g['packets'] == 20000 and s['probes'] == 20000 and s['lost'] == 0 and s['flows_seen'] == 16 and s['latency_us']['samples'] == 20000"
}
check "veth, IPv4/UDP, 16 flows at 10 kpps: all 20000 probes arrive, no loss" v4

v6() {
    run v6 g1 g2 g2 -- --dev g1 --src fd00:100::1 --dst fd00:100::2 --ipv6 \
        --proto tcp --size imix --rate 5000 --count 10000 --flows 8 &&
        verdict v6 "s['probes'] == g['packets'] == 10000 and s['lost'] == 0 and s['flows_seen'] == 8 and abs(s['bytes_l2'] / s['packets'] - (346 + 14 + 7 * 20 / 12)) < 1"
}
check "veth, IPv6/TCP-like IMIX, 8 flows at 5 kpps: all arrive, IMIX mean size" v6

queues2() {
    run q2 g1 g2 g2 -- --dev g1 --src 198.18.100.1 --dst 198.18.100.2 \
        --queues 2 --rate 10000 --count 20000 --flows 16 &&
        verdict q2 "g['queues'] == 2 and s['queues'] == 2 and s['probes'] == g['packets'] == 20000 and s['lost'] == 0 and s['flows_seen'] == 16"
}
check "veth, two queues each side: 16 flows from two workers arrive complete" queues2

# A sink counts one generator run: packets of another (an earlier run's
# still in the path) are set apart, not counted as loss or reordering.
other_run() {
    start_sink g2 g2 runs --run 7 || return 1
    local gen=("$BENCH" gen --cpu 0 --dev g1 --src 198.18.100.1 --dst 198.18.100.2 --rate 10000 --flows 4)
    in_ns g1 "${gen[@]}" --run 6 --count 3000 --quiet >/dev/null 2>"$work/runs-gen6.err" &&
        in_ns g1 "${gen[@]}" --run 7 --count 2000 --json "$work/runs-gen.json" 2>"$work/runs-gen.err"
    local rc=$?
    wait_sink || rc=1
    [ $rc -eq 0 ] || { cat "$work/runs-gen6.err" "$work/runs-gen.err" "$work/runs.err" >&2; return 1; }
    verdict runs "g['run'] == s['run'] == 7 and s['probes'] == 2000 and s['lost'] == 0 and s['reordered'] == 0 and s['other_run_probes'] == 3000"
}
check "veth, a sink given --run 7: another run's 3000 probes set apart, run 7's 2000 counted whole" other_run

# Loss the sink did not make up: a kernel router (namespace r) between g1
# and g3 drops every 50th probe with iptables (statistic nth, an
# independent counter), 400 of 20000, none of them a flow's last. The
# sink's gap count and gen-minus-sink must both equal iptables' count.
ip netns add "$prefix-r"
ip netns add "$prefix-g3"
in_ns r ip link set lo up
in_ns g3 ip link set lo up
ip link add g1r netns "$prefix-g1" type veth peer name ra netns "$prefix-r"
ip link add rb netns "$prefix-r" type veth peer name g3 netns "$prefix-g3"
in_ns g1 ip addr add 198.18.101.1/24 dev g1r
in_ns r ip addr add 198.18.101.254/24 dev ra
in_ns r ip addr add 198.18.102.254/24 dev rb
in_ns g3 ip addr add 198.18.102.2/24 dev g3
for l in "g1 g1r" "r ra" "r rb" "g3 g3"; do
    # shellcheck disable=SC2086 # "namespace device"
    set -- $l
    in_ns "$1" ip link set "$2" up
done
in_ns g1 ip route add 198.18.102.0/24 via 198.18.101.254 dev g1r
in_ns g3 ip route add 198.18.101.0/24 via 198.18.102.254 dev g3
in_ns r sysctl -qw net.ipv4.ip_forward=1
in_ns r iptables -A FORWARD -p udp -d 198.18.102.2 -m statistic --mode nth --every 50 --packet 25 -j DROP
# routed_run NAME COUNT TABLE CHAIN TARGET: gen on g1 -> the router -> a
# sink on g3, COUNT probes at 10 kpps in 16 flows; prints how many packets
# the router's TARGET rule in CHAIN matched (iptables' own counter), and
# fails without such a rule.
routed_run() {
    # The router learns g3's MAC (and g1 the router's) before the run.
    in_ns g1 ping -c 2 -i 0.2 -W 1 198.18.102.2 >/dev/null || return 1
    run "$1" g1 g3 g3 -- --dev g1r --src 198.18.101.1 --dst 198.18.102.2 \
        --rate 10000 --count "$2" --flows 16 >&2 || return 1
    local n
    n=$(in_ns r iptables -t "$3" -L "$4" -v -x -n | awk -v t="$5" '$3 == t { print $1 }')
    [ -n "$n" ] || { echo "no iptables $5 rule in $4" >&2; return 1; }
    echo "$n"
}
routed_loss() {
    local dropped
    dropped=$(routed_run loss 20000 filter FORWARD DROP) || return 1
    echo "iptables dropped $dropped"
    verdict loss "g['packets'] == 20000 and $dropped == 400 and s['lost'] == $dropped and g['packets'] - s['probes'] == $dropped and s['reordered'] == 0"
}
check "veth through a kernel router dropping every 50th probe: the sink's loss equals iptables' 400" routed_loss

# Reordering the sink did not make up: the router now holds every 50th
# probe back instead (iptables CLASSIFY into an HTB class of 16 kbit/s)
# and lets the rest through. The class earns 10 bytes of its 78-byte
# probes' worth in the 5 ms between two of them: after the first two
# (sent on its initial tokens) each waits behind the one before, tens of
# ms and more, while its flow's next probe comes 1.6 ms later. So all but
# about two of the 200 arrive late (CI: 198), and none is lost.
routed_reorder() {
    in_ns r iptables -F FORWARD
    # HTB warns of its classes' quanta on stderr: kept apart, shown on failure.
    { in_ns r tc qdisc add dev rb root handle 1: htb default 10 &&
        in_ns r tc class add dev rb parent 1: classid 1:10 htb rate 1gbit &&
        in_ns r tc class add dev rb parent 1: classid 1:20 htb rate 16kbit burst 100 cburst 100 &&
        in_ns r iptables -t mangle -A POSTROUTING -o rb -p udp -d 198.18.102.2 \
            -m statistic --mode nth --every 50 --packet 25 -j CLASSIFY --set-class 1:20; } \
        2>"$work/tc.err" || { cat "$work/tc.err"; return 1; }
    local held
    held=$(routed_run reorder 10000 mangle POSTROUTING CLASSIFY) || return 1
    echo "iptables held back $held"
    verdict reorder "$held == 200 and s['probes'] == g['packets'] == 10000 and s['lost'] == 0 and $held - 5 <= s['reordered'] <= $held"
}
check "veth through a kernel router holding every 50th probe back: the sink counts them late, none lost" routed_reorder

maxrate() {
    run max g1 g2 g2 -- --dev g1 --src 198.18.100.1 --dst 198.18.100.2 \
        --rate max --duration 3 --flows 64 --size 64 &&
        verdict max "s['probes'] > 0 and s['probes'] <= g['packets']"
}
check "veth, 64-byte packets at the maximum rate (figure, not asserted)" maxrate

# The tool's own errors: one line each, saying what to do.
one_line_error() { # expected text, command...
    local want=$1
    shift
    if "$@" >"$work/err.out" 2>&1; then
        echo "succeeded, expected an error"
        return 1
    fi
    cat "$work/err.out"
    [ "$(wc -l <"$work/err.out")" -eq 1 ] && grep -q -- "$want" "$work/err.out"
}
check "gen on an unknown interface: one-line error" \
    one_line_error "no interface \"nope0\"" in_ns g1 "$BENCH" gen --dev nope0 --src 198.18.100.1 --dst 198.18.100.2
check "gen without root: one-line error" \
    one_line_error "need root" setpriv --reuid=65534 --regid=65534 --clear-groups "$BENCH" gen --dev lo --src 198.18.100.1 --dst 198.18.100.2
busy() {
    start_sink g2 g2 busy || return 1
    one_line_error "already has an XDP program attached" in_ns g2 "$BENCH" sink --dev g2
    local rc=$?
    kill "$sink_pid"
    wait_sink
    return $rc
}
check "a second sink on the same interface: one-line error" busy
speed=$(in_ns g1 cat /sys/class/net/g1/speed 2>/dev/null || echo 0)
if [ "${speed:-0}" -gt 0 ] 2>/dev/null; then
    check "a rate above the link's $speed Mbit/s: one-line error" \
        one_line_error "give --rate" in_ns g1 "$BENCH" gen --dev g1 --src 198.18.100.1 --dst 198.18.100.2 --size 1500 --rate 1000000000
fi

# ---- through the two Espada gateways
# Delivery is asserted at 99%: the gateways' own rings are what they are on
# a machine shared with the generator, the receiver and everything else.
deploy/lab.sh up --prefix "$prefix" >/dev/null
start_gateway a deploy/configs/lab-gw-a.conf || exit 1
start_gateway b deploy/configs/lab-gw-b.conf || exit 1
# The pings also make the gateways learn the hosts' MACs: a dataplane
# drops what it cannot send yet while the kernel resolves a neighbour.
check "the tunnel is up (ping lan_a -> lan_b)" pings lan_a 5 198.19.2.10
check "the tunnel is up over IPv6" pings lan_a 5 -6 fd00:b::10

tunnel4() {
    run t4 lan_a lan_b b-host -- --dev a-host --src 198.19.1.10 --dst 198.19.2.10 \
        --rate 5000 --count 10000 --flows 8 --size imix &&
        verdict t4 "s['probes'] >= 0.99 * g['packets'] and g['packets'] == 10000 and s['flows_seen'] == 8"
}
check "gen lan_a -> gw_a -> ESP -> gw_b -> sink lan_b, IPv4 IMIX at 5 kpps" tunnel4

tunnel6() {
    run t6 lan_a lan_b b-host -- --dev a-host --src fd00:a::10 --dst fd00:b::10 --ipv6 \
        --rate 5000 --count 10000 --flows 4 --size 512 &&
        verdict t6 "s['probes'] >= 0.99 * g['packets'] and g['packets'] == 10000 and s['flows_seen'] == 4"
}
check "the same over IPv6 (512 bytes)" tunnel6

esp_counted() {
    # The sink takes the WAN router's side of gw_a: it sees the ESP gw_a
    # sends (SPI 4096 of lab-gw-a.conf) instead of the router forwarding it.
    run wan lan_a wan wan-a -- --dev a-host --src 198.19.1.10 --dst 198.19.2.10 \
        --rate 5000 --count 5000 --flows 2 &&
        verdict wan "s['esp']['by_spi'] == [{'spi': '0x00001000', 'packets': 5000}] and s['probes'] == 0"
}
check "a sink on the WAN counts gw_a's ESP by SPI (4096: 5000 packets)" esp_counted

# gw_b's inbound SA 4096 (lab-gw-b.conf), spoken by the generator from the
# WAN router in gw_a's name: only gw_b's decryption is exercised.
ESP_SA="spi=4096,suite=aes128-sha1,enc=000102030405060708090a0b0c0d0e0f,auth=101112131415161718191a1b1c1d1e1f20212223,peer=198.18.1.1,local=198.18.0.1"
esp_mode() {
    run esp wan lan_b b-host -- --dev wan-b --src 198.19.1.10 --dst 198.19.2.10 \
        --esp "$ESP_SA" --rate 5000 --count 10000 --flows 4 --size imix &&
        verdict esp "g['esp']['encap_errors'] == 0 and g['packets'] == 10000 and s['probes'] >= 0.99 * g['packets'] and s['flows_seen'] == 4"
}
decaps() { # gw_b's decapsulations, all SAs
    show b show crypto ipsec sa | awk '/#pkts decaps:/ {gsub(",", "", $3); s += $3} END {print s + 0}'
}
before=$(decaps)
check "gen --esp from the WAN to gw_b: gw_b decrypts, the sink on lan_b gets the probes" esp_mode
esp_decapped() {
    local after
    after=$(decaps)
    echo "gw_b decapsulations: $before before, $after after"
    [ $((after - before)) -ge 9900 ]
}
check "gw_b counted the generator's ESP as decapsulated" esp_decapped

# RFC 2544 through the tunnel, short: 2 sizes, 3 trials a size (the
# maximum, one halving, the 2 kpps lower bound if nothing passed), 1-s
# trials, then a latency trial at the rate found; about 25 s, 40 at most.
rfc2544_smoke() {
    local t0=$SECONDS
    timeout 40 "$BENCH" rfc2544 --gen-netns "$prefix-lan_a" --gen-dev a-host \
        --sink-netns "$prefix-lan_b" --sink-dev b-host --src 198.19.1.10 --dst 198.19.2.10 \
        --flows 8 --sizes 64,512 --trial 1 --settle 0.5 --max-trials 3 --min-rate 2000 \
        --warmup 200 --json "$work/rfc.json" >"$work/rfc.out" 2>"$work/rfc.err"
    local rc=$?
    cat "$work/rfc.err" "$work/rfc.out"
    [ $rc -eq 0 ] || return 1
    # The table has a row per size with the latency percentiles.
    grep -Eq '^64 .* [0-9]+/[0-9]+/[0-9]+/[0-9]+ ' "$work/rfc.out" &&
        grep -Eq '^512 .* [0-9]+/[0-9]+/[0-9]+/[0-9]+ ' "$work/rfc.out" &&
        /usr/bin/python3 - "$work/rfc.json" $((SECONDS - t0)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = [x["size"] for x in r["results"]] == ["64", "512"]
for x in r["results"]:
    best = [t for t in x["trials"] if t["pass"]]
    ok = ok and x["throughput_rate_pps"] is not None and 0 < x["throughput_rate_pps"] <= x["max_pps"]
    ok = ok and 0 < x["throughput_pps"] <= x["max_pps"]
    ok = ok and 1 <= len(x["trials"]) <= 3 and best and all(t["lost"] == 0 for t in best)
    ok = ok and x["latency"] is not None and x["latency"]["latency_us"]["samples"] > 0
print("; ".join(f"{x['size']} B: {x['throughput_pps'] or 0:.0f} pps of max {x['max_pps']:.0f}, "
                f"latency p50 {((x['latency'] or {}).get('latency_us') or {}).get('p50', 0):.0f} us"
                for x in r["results"]) + f"; {sys.argv[2]} s")
sys.exit(0 if ok else 1)
PY
}
check "rfc2544 lan_a -> lan_b through the gateways: a zero-loss rate > 0, <= the maximum, and its latency" rfc2544_smoke

lab_end
