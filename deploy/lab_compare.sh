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
# Traffic (--traffic):
#
#   gen      (default) espada-bench gen on lan_a (AF_XDP, a-host, 64 flows,
#            pinned to core G) -> espada-bench sink on lan_b (b-host, core
#            S): for every size of --sizes (IP packet bytes, gen's --size:
#            64..1500 or imix; default 64,512,1400,imix) at the maximum rate
#            gen reaches, then one run at a fixed rate every path carries
#            (--fixed-rate PPS, default 2000, at --fixed-size, default 1400)
#            so that latencies compare paths, not queues (at the maximum
#            rate latency is queueing), and one at --cpu-rate PPS (default
#            20000, 0: none; --fixed-size bytes), a rate every path still
#            carries here, for the CPU each path spends per packet; with
#            --rfc2544 SIZES, then the RFC 2544 throughput of every path at
#            those sizes (espada-bench rfc2544: the highest rate that loses
#            at most --rfc2544-loss percent, default 0, in trials of
#            --rfc2544-trial seconds, default 10: a path with deep queues
#            passes 3-second trials at rates it cannot sustain, delivering
#            them during the settle time) and the latency there.
#            Received pps and Gbit/s (the sink's: Ethernet header + IP),
#            loss (1 - probes received / sent), the sink's one-way latency
#            percentiles, and CPU per received packet: of the gateways'
#            processes (Espada's control and dataplane processes, or
#            strongSwan's charon, on both gateways; /proc/PID/stat) and of
#            the whole machine (every core: user, system, irq, softirq;
#            gen and the sink included; /proc/stat);
#   iperf3   TCP (Mbit/s) and UDP at several Ethernet frame sizes (frame =
#            UDP payload + 46 bytes, FCS counted as in lab_figures.sh; default
#            64,512,1400), sent as fast as one iperf3 sender can. iperf3 is
#            the lab's ceiling: the forwarder measures no faster than the
#            tunnels.
#
#   sudo deploy/lab_compare.sh [--seconds N] [--sizes 64,512,1400,imix]
#        [--paths forwarder,espada,strongswan] [--suites aes128gcm16,aes128-sha1]
#        [--json FILE] [--traffic gen|iperf3] [--fixed-rate PPS] [--fixed-size N]
#        [--cpu-rate PPS] [--rfc2544 SIZES] [--rfc2544-trial SECS]
#        [--rfc2544-loss PCT] [--gw-cores A,B] [--host-cores G,S] [--swan-pin]
#
# Cores: gen runs on core G and the sink on core S (--host-cores, default
# 0,1); Espada's worker on gw_a on core A and on gw_b on core B
# (--gw-cores, default 1,0: each gateway on the core of the host it does
# not feed, so neither shares a core with the traffic that floods it; 0,0
# was this script's layout before and halves what every AF_XDP path
# carries). On a machine with more cores, give each its own. strongSwan's charon
# threads go where the kernel schedules them, or on the same cores as
# Espada's workers with --swan-pin.
#
# JSON (stdout, or --json FILE): {"date", "cores", "seconds", "traffic",
# "results": [{"path", "suite", "proto", "frame", "mbps", "pps",
# "retransmits"}...]}; gen rows also have "size" (gen's --size: "64",
# "imix"; "frame" is null for imix), "rate" (null at the maximum, else the
# fixed pps), "sent_pps", "loss" (0..1), "latency_us" (the sink's
# {samples, min, mean, p50, p90, p99, p99.9, max} or null) and "cpu_us"
# ({"gateways", "machine"}: CPU microseconds per received packet, or null);
# the top level then has "cpu_rate" (the CPU run's pps, or null),
# "gw_cores" ([A, B]), "host_cores" ([G, S]) and "rfc2544": [{"path", "suite", "size", "pps",
# "mbps" (the throughput found), "loss_pct" (accepted), "trial_seconds",
# "gen_max_pps", "trials", "converged", "retested", "limited_by_generator",
# "latency_sent_pps", "latency_loss_pct",
# "latency_us"}...] (empty without --rfc2544). Progress on
# stderr. `espada-bench report` reads it and computes the ratios (espada /
# forwarder, espada / strongswan) from the RFC 2544 rows where both paths
# have one at 1400 bytes, else from the maximum-rate rows.
#
# ESPADA_BENCH names espada-bench (default $CARGO_TARGET_DIR/release or
# target/release).
#
# Release binaries must be built (ESPADA, see deploy/lib/gateways.sh). One
# worker core per gateway; the gateways, hosts and traffic share this
# machine's cores. Root only (namespaces). Not a test: nothing is asserted,
# but a path whose tunnel does not come up is reported as an error.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root (network namespaces)" >&2; exit 1; }

secs=5
sizes=
fixed_rate=2000
fixed_size=1400
cpu_rate=20000
rfc_sizes=
rfc_trial=10
rfc_loss=0
gw_cores=1,0
host_cores=0,1
swan_pin=0
paths=forwarder,espada,strongswan
suites=aes128gcm16,aes128-sha1
json_out=
traffic=gen
while [ $# -gt 0 ]; do
    case $1 in
        --seconds) secs=$2; shift 2 ;;
        --sizes) sizes=$2; shift 2 ;;
        --paths) paths=$2; shift 2 ;;
        --suites) suites=$2; shift 2 ;;
        --json) json_out=$2; shift 2 ;;
        --traffic) traffic=$2; shift 2 ;;
        --fixed-rate) fixed_rate=$2; shift 2 ;;
        --fixed-size) fixed_size=$2; shift 2 ;;
        --cpu-rate) cpu_rate=$2; shift 2 ;;
        --rfc2544) rfc_sizes=$2; shift 2 ;;
        --rfc2544-trial) rfc_trial=$2; shift 2 ;;
        --rfc2544-loss) rfc_loss=$2; shift 2 ;;
        --gw-cores) gw_cores=$2; shift 2 ;;
        --host-cores) host_cores=$2; shift 2 ;;
        --swan-pin) swan_pin=1; shift ;;
        *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
case $secs in ''|*[!0-9]*) echo "--seconds takes whole seconds" >&2; exit 2 ;; esac
if [ "$secs" -lt 1 ] || [ "$secs" -gt 120 ]; then echo "--seconds: 1 to 120" >&2; exit 2; fi
case $fixed_rate in ''|*[!0-9]*) echo "--fixed-rate takes packets per second" >&2; exit 2 ;; esac
case $cpu_rate in ''|*[!0-9]*) echo "--cpu-rate takes packets per second (0: no CPU run)" >&2; exit 2 ;; esac
if [ "$cpu_rate" -gt 0 ] && [ "$cpu_rate" -eq "$fixed_rate" ]; then
    echo "--cpu-rate and --fixed-rate must differ (the report tells their rows apart by rate)" >&2
    exit 2
fi
case $rfc_trial in ''|*[!0-9]*) echo "--rfc2544-trial takes whole seconds" >&2; exit 2 ;; esac
if [ "${#rfc_trial}" -gt 3 ] || [ "$rfc_trial" -lt 1 ] || [ "$rfc_trial" -gt 120 ]; then
    echo "--rfc2544-trial: 1 to 120 seconds" >&2
    exit 2
fi
case $rfc_loss in ''|*[!0-9.]*|*.*.*) echo "--rfc2544-loss takes a percentage (0, 0.1, ...)" >&2; exit 2 ;; esac
# core_pair OPTION VALUE WHOSE: checks "N,M" (two cores of this machine)
# and prints "N M".
core_pair() {
    local first=${2%%,*} second=${2#*,}
    case $2 in
        [0-9]*,[0-9]*) ;;
        *) echo "$1 takes two core numbers, $3 (e.g. $4)" >&2; return 2 ;;
    esac
    case $first$second in *[!0-9]*) echo "$1 takes two core numbers" >&2; return 2 ;; esac
    if [ "${#first}" -gt 4 ] || [ "${#second}" -gt 4 ] ||
        [ "$first" -ge "$(nproc)" ] || [ "$second" -ge "$(nproc)" ]; then
        echo "$1: this machine has cores 0 to $(($(nproc) - 1))" >&2
        return 2
    fi
    echo "$first $second"
}
pair=$(core_pair --gw-cores "$gw_cores" "gw_a's and gw_b's" 1,0) || exit 2
read -r core_a core_b <<<"$pair"
pair=$(core_pair --host-cores "$host_cores" "gen's and the sink's" 0,1) || exit 2
read -r core_gen core_sink <<<"$pair"
bench=${ESPADA_BENCH:-${CARGO_TARGET_DIR:-target}/release/espada-bench}
case $traffic in
    gen)
        sizes=${sizes:-64,512,1400,imix}
        [ -x "$bench" ] || { echo "$bench: build it first (cargo build --release -p bench), or give ESPADA_BENCH" >&2; exit 1; }
        ;;
    iperf3)
        sizes=${sizes:-64,512,1400}
        [ -z "$rfc_sizes" ] || { echo "--rfc2544 needs --traffic gen (espada-bench's generator)" >&2; exit 2; }
        ;;
    *) echo "--traffic: gen or iperf3" >&2; exit 2 ;;
esac

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

# The PIDs of the current path's gateway processes (set per path below),
# whose CPU time traffic_gen counts.
gw_pids=
# cpu_ticks PID...: clock ticks of user and system time the processes have
# used, all their threads (fields 14 and 15 of /proc/PID/stat; the command
# name in parentheses may hold spaces, so fields count after it).
cpu_ticks() {
    local pid stats=()
    for pid in "$@"; do stats+=("/proc/$pid/stat"); done
    [ ${#stats[@]} -gt 0 ] || { echo 0; return; }
    cat "${stats[@]}" 2>/dev/null | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
# machine_ticks: busy clock ticks of every core (user, nice, system, irq,
# softirq; not idle, iowait or steal).
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# espada_pids: both gateways' espada control and dataplane processes.
espada_pids() {
    local side
    for side in a b; do
        cat "$work/espada-$side.pid" "$(gw_run_dir "$side")/dataplane.pid" 2>/dev/null || true
    done | tr '\n' ' '
}

# traffic_gen PATH SUITE RATE SIZE: espada-bench gen on lan_a (a-host) to
# the sink on lan_b (b-host) for $secs seconds at RATE (max or pps), gen's
# --size SIZE; prints the result's JSON row.
traffic_gen() {
    local path=$1 suite=$2 rate=$3 size=$4
    # One run id for gen and the sink: late packets of the run before
    # (strongSwan queues seconds of them at the maximum rate) are set apart.
    local run=$((RANDOM % 65536))
    rm -f "$work/g.json" "$work/s.json"
    in_ns lan_b "$bench" sink --dev b-host --idle 2 --duration $((secs + 30)) --cpu "$core_sink" \
        --run "$run" --json "$work/s.json" >/dev/null 2>"$work/s.err" &
    server=$!
    for _ in $(seq 1 100); do
        grep -q "sink: receiving" "$work/s.err" 2>/dev/null && break
        kill -0 "$server" 2>/dev/null || break
        sleep 0.1
    done
    local g0 m0 g1 m1
    # shellcheck disable=SC2086 # a list of PIDs
    g0=$(cpu_ticks $gw_pids)
    m0=$(machine_ticks)
    if ! in_ns lan_a timeout $((secs + 20)) "$bench" gen --dev a-host --src 198.19.1.10 \
        --dst 198.19.2.10 --cpu "$core_gen" --quiet --flows 64 --duration "$secs" --rate "$rate" \
        --size "$size" --run "$run" --json "$work/g.json" >/dev/null 2>"$work/g.err"; then
        log "gen failed: $(tail -n 1 "$work/g.err")"
        kill "$server" 2>/dev/null || true
    fi
    # shellcheck disable=SC2086
    g1=$(cpu_ticks $gw_pids)
    m1=$(machine_ticks)
    wait "$server" 2>/dev/null || log "sink: $(tail -n 1 "$work/s.err")"
    server=
    /usr/bin/python3 - "$work/g.json" "$work/s.json" "$path" "$suite" "$rate" "$size" \
        $((g1 - g0)) $((m1 - m0)) "$(getconf CLK_TCK)" "$(echo "$gw_pids" | wc -w)" <<'PY'
import json, sys
def load(p):
    try:
        return json.load(open(p))
    except Exception:
        return {}
g, s = load(sys.argv[1]), load(sys.argv[2])
path, suite, rate, size = sys.argv[3:7]
gw_ticks, machine_ticks, hz = int(sys.argv[7]), int(sys.argv[8]), int(sys.argv[9])
gw_count = int(sys.argv[10])
sent = g.get("packets", 0)
probes = s.get("probes", 0)
cpu = None
# No gateway PIDs, or one that exited during the run (its ticks vanish):
# no CPU figure rather than a wrong one.
if probes > 0 and gw_count > 0 and gw_ticks >= 0:
    per = lambda ticks: round(ticks / hz * 1e6 / probes, 3)
    cpu = {"gateways": per(gw_ticks), "machine": per(machine_ticks)}
print(json.dumps({
    "path": path, "suite": suite, "proto": "udp",
    "frame": int(size) if size.isdigit() else None, "size": size,
    "rate": None if rate == "max" else int(rate),
    "mbps": round(s.get("gbps_l2", 0) * 1000, 1), "pps": round(s.get("pps", 0)),
    "retransmits": 0, "sent_pps": round(g.get("pps", 0)),
    "loss": round(max(0.0, 1 - probes / sent), 4) if sent else 1.0,
    "latency_us": s.get("latency_us"),
    "cpu_us": cpu,
}))
l = s.get("latency_us") or {}
print(f"lab_compare: {path:<10} {suite:<12} {size:>5} {rate:>6}: {s.get('pps', 0):>9.0f} pps "
      f"{s.get('gbps_l2', 0) * 1000:>7.1f} Mbit/s (sent {g.get('pps', 0):.0f} pps), loss "
      f"{100 * (1 - probes / sent) if sent else 100:.1f}%, latency us p50 {l.get('p50', 0):.0f} "
      f"p99 {l.get('p99', 0):.0f}, CPU us/packet gateways {(cpu or {}).get('gateways', 0):.2f} "
      f"machine {(cpu or {}).get('machine', 0):.2f}", file=sys.stderr)
PY
}
results="$work/results.jsonl"
rfc_results="$work/rfc2544.jsonl"
: >"$results"
: >"$rfc_results"
# rfc2544_gen PATH SUITE: espada-bench rfc2544 (gen on lan_a, sink on
# lan_b, pinned as traffic_gen's) for every size of --rfc2544; prints one
# JSON row per size: the throughput RFC 2544 §26.1 finds (the highest rate
# with at most --rfc2544-loss percent lost) and the latency at that rate.
rfc2544_gen() {
    local path=$1 suite=$2
    rm -f "$work/rfc.json"
    # Up to 16 trials and a latency trial per size, each trial plus its
    # settle and start-up: a bound, not an estimate.
    local nsizes
    nsizes=$(echo "$rfc_sizes" | tr ',' '\n' | grep -c .)
    timeout $(((rfc_trial + 6) * 18 * nsizes + 120)) "$bench" rfc2544 --gen-netns "$prefix-lan_a" --gen-dev a-host \
        --sink-netns "$prefix-lan_b" --sink-dev b-host \
        --src 198.19.1.10 --dst 198.19.2.10 --flows 64 --cpu "$core_gen" --sink-cpu "$core_sink" \
        --sizes "$rfc_sizes" --trial "$rfc_trial" --loss "$rfc_loss" \
        --json "$work/rfc.json" >/dev/null 2>"$work/rfc.err" ||
        log "rfc2544 $path $suite: $(tail -n 1 "$work/rfc.err")"
    /usr/bin/python3 - "$work/rfc.json" "$path" "$suite" <<'PY'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
path, suite = sys.argv[2:4]
for s in r.get("results", []):
    lat = (s.get("latency") or {}).get("latency_us")
    print(json.dumps({
        "path": path, "suite": suite, "size": s["size"],
        # null: the path lost packets at every rate the search tried.
        "pps": None if s.get("throughput_pps") is None else round(s["throughput_pps"]),
        "mbps": round((s.get("throughput_gbps_l2") or 0) * 1000, 1),
        "loss_pct": r.get("loss_pct"), "trial_seconds": r.get("trial_seconds"),
        "gen_max_pps": round(s.get("max_pps") or 0),
        "trials": len(s.get("trials", [])),
        "converged": bool(s.get("converged")),
        "retested": s.get("retested", 0),
        "limited_by_generator": bool(s.get("limited_by_generator")),
        "latency_us": lat,
        # What the latency trial sent and lost: its percentiles are at the
        # throughput rate only if it sent that rate within the loss allowed.
        "latency_sent_pps": (s.get("latency") or {}).get("sent_pps"),
        "latency_loss_pct": (s.get("latency") or {}).get("loss_pct"),
    }))
    print(f"lab_compare: {path:<10} {suite:<12} {s['size']:>5} rfc2544: "
          f"{s.get('throughput_pps') or 0:>9.0f} pps "
          f"({(s.get('throughput_gbps_l2') or 0) * 1000:.1f} Mbit/s) at <= {r.get('loss_pct')}% loss, "
          f"{len(s.get('trials', []))} trials", file=sys.stderr)
PY
}
# measure PATH SUITE: with iperf3, TCP, then UDP at every size; with gen,
# every size at the maximum rate, then the fixed rate; appended to $results.
measure() {
    local path=$1 suite=$2 proto frame out row
    if [ "$traffic" = gen ]; then
        for frame in ${sizes//,/ } "fixed" "cpu"; do
            if [ "$frame" = fixed ]; then
                row=$(traffic_gen "$path" "$suite" "$fixed_rate" "$fixed_size")
            elif [ "$frame" = cpu ]; then
                [ "$cpu_rate" -gt 0 ] || continue
                row=$(traffic_gen "$path" "$suite" "$cpu_rate" "$fixed_size")
            else
                row=$(traffic_gen "$path" "$suite" max "$frame")
            fi
            printf '%s\n' "$row" >>"$results"
        done
        [ -z "$rfc_sizes" ] || rfc2544_gen "$path" "$suite" >>"$rfc_results"
        return
    fi
    for proto in tcp udp; do
        for frame in ${sizes//,/ }; do
            [ "$proto" = tcp ] && [ "$frame" != "${sizes##*,}" ] && continue
            out=$(traffic_iperf3 "$proto" "$frame") || out="0 0 0"
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
            start_gateway a "$work/clear-a.conf" --dataplane-args "--cores $core_a"
            start_gateway b "$work/clear-b.conf" --dataplane-args "--cores $core_b"
            reaches || log "forwarder: lan_a does not reach lan_b"
            gw_pids=$(espada_pids)
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
                start_gateway a "$work/esp-a.conf" --dataplane-args "--cores $core_a"
                start_gateway b "$work/esp-b.conf" --dataplane-args "--cores $core_b"
                reaches || log "espada $suite: lan_a does not reach lan_b"
                gw_pids=$(espada_pids)
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
                # A charon that did not start has no PID file: no CPU figure.
                gw_pids=$(cat "$da/charon.pid" "$db/charon.pid" 2>/dev/null | tr '\n' ' ' || true)
                if [ "$swan_pin" = 1 ]; then
                    # A charon that did not start has no PID to pin.
                    { [ -s "$da/charon.pid" ] &&
                        taskset -a -p -c "$core_a" "$(cat "$da/charon.pid")" >/dev/null; } ||
                        log "strongswan $suite: gw_a's charon not pinned"
                    { [ -s "$db/charon.pid" ] &&
                        taskset -a -p -c "$core_b" "$(cat "$db/charon.pid")" >/dev/null; } ||
                        log "strongswan $suite: gw_b's charon not pinned"
                fi
                measure strongswan "$suite"
                swan_stop "$A" "$da"
                swan_stop "$B" "$db"
            done
            ;;
        *) log "unknown path $path (forwarder, espada, strongswan)"; exit 2 ;;
    esac
done

json=$(/usr/bin/python3 - "$results" "$secs" "$traffic" "$(nproc)" "$cpu_rate" "$rfc_results" \
    "$core_a" "$core_b" "$core_gen" "$core_sink" <<'PY'
import datetime, json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rfc = [json.loads(l) for l in open(sys.argv[6]) if l.strip()]
cpu_rate = int(sys.argv[5])
print(json.dumps({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "cores": int(sys.argv[4]),
    "seconds": int(sys.argv[2]),
    "traffic": sys.argv[3],
    "cpu_rate": cpu_rate if cpu_rate > 0 and sys.argv[3] == "gen" else None,
    "gw_cores": [int(sys.argv[7]), int(sys.argv[8])],
    "host_cores": [int(sys.argv[9]), int(sys.argv[10])],
    "results": rows,
    "rfc2544": rfc,
}, indent=1))
PY
)
if [ -n "$json_out" ]; then
    printf '%s\n' "$json" >"$json_out"
    log "wrote $json_out"
else
    printf '%s\n' "$json"
fi
