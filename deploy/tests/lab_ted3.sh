#!/usr/bin/env bash
# Seed 004 with three LANs behind three gateways (deploy/lab.sh --three):
# Tunnel Endpoint Discovery between every pair, and forged answers.
# gw_a, gw_b and gw_c run the seed's routers (deploy/configs/lab-ted3-
# gw-*.conf: a dynamic crypto map with `discover`, the wildcard key, no
# peer anywhere; each ACL protects its LAN towards 198.19.0.0/16):
#   - forgery first, with gw_c not yet running: lan_a pings lan_c, gw_a
#     probes 198.19.3.10, and from the wan namespace deploy/tests/
#     ted_forge.py answers gw_a three times (naming another gateway than
#     its sender; spoofed from gw_c's address with a wrong nonce; a probe
#     id never used). gw_a counts all three as "TED responses matching no
#     probe (dropped)", starts no ISAKMP exchange with anyone (tshark),
#     and gives the probe up;
#   - then every pair discovers itself, each gateway probing once:
#     gw_a -> gw_b (lan_a pings lan_b), gw_b -> gw_c, gw_c -> gw_a; ping
#     passes both ways over each tunnel and iperf3 runs through each;
#   - every gateway has two ISAKMP SAs in QM_IDLE, discovered one peer
#     and answered another; tshark sees each answer;
#   - `show crypto engine connections active` lists the ISAKMP SAs and
#     the ESP SAs (HMAC_MD5+DES_56_CB, the seed's transform) with packets
#     encrypted and decrypted on both tunnels;
#   - 12 probes from one source and 1 from another at once: gw_a's
#     dataplane passes 4 of the flood (its per-source share), counts the
#     rest, and the other prober is answered.
# Prints "lab ted3: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="est3$$"
work=$(mktemp -d /tmp/espada-ted3.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
cap_pid=
forge_pid=
lab_cleanup() {
    [ -n "$cap_pid" ] && kill "$cap_pid" 2>/dev/null
    [ -n "$forge_pid" ] && kill "$forge_pid" 2>/dev/null
}
lab_begin "ted3"

deploy/lab.sh up --three --prefix "$prefix" >/dev/null
# TED probes carry the protected hosts' addresses: the LANs are routable
# across the outside network (as the seed requires).
in_ns gw_a ip route add 198.19.0.0/16 via 198.18.0.254
in_ns gw_b ip route add 198.19.0.0/16 via 198.18.1.254
in_ns gw_c ip route add 198.19.0.0/16 via 198.18.2.254
in_ns wan ip route add 198.19.1.0/24 via 198.18.0.1
in_ns wan ip route add 198.19.2.0/24 via 198.18.1.1
in_ns wan ip route add 198.19.3.0/24 via 198.18.2.1

isakmp_stat() { # gateway, counter name (as `show crypto isakmp stats` prints it)
    show "$1" show crypto isakmp stats | awk -v n="$2" '{v=$1; $1=""; sub(/^ +/, "")} $0 == n {print v}'
}
wait_stat() { # gateway, counter, at least, tries of 0.25 s
    local v
    for _ in $(seq 1 "$4"); do
        v=$(isakmp_stat "$1" "$2")
        [ "${v:-0}" -ge "$3" ] && break
        sleep 0.25
    done
    echo "$2 on gw_$1: ${v:-0}"
    [ "${v:-0}" -ge "$3" ]
}

# --- Forged answers, while gw_a's probe for lan_c is outstanding. ---
# Started without a shell function around it, so that $! is the capture
# (ip netns exec execs timeout, which passes the kill on to tshark).
ip netns exec "$prefix-wan" timeout 30 tshark -i any -w "$work/forge.pcap" -f "udp port 500" >/dev/null 2>&1 &
cap_pid=$!
start_gateway a deploy/configs/lab-ted3-gw-a.conf || exit 1
start_gateway b deploy/configs/lab-ted3-gw-b.conf || exit 1
show a debug crypto isakmp >/dev/null
show b debug crypto isakmp >/dev/null
in_ns wan /usr/bin/python3 deploy/tests/ted_forge.py answers wan-a 198.18.0.1 198.19.3.10 \
    198.18.0.254 198.18.2.1 "$work/forge.ready" >"$work/forge.out" 2>&1 &
forge_pid=$!
for _ in $(seq 1 80); do
    [ -e "$work/forge.ready" ] && break
    sleep 0.25
done
sleep 0.5
in_ns lan_a ping -c 2 -i 0.3 -W 1 198.19.3.10 >/dev/null 2>&1
wait "$forge_pid"
forge_rc=$?
forge_pid=
forged() {
    cat "$work/forge.out"
    [ "$forge_rc" -eq 0 ] && wait_stat a "TED responses matching no probe (dropped)" 3 40 &&
        [ "$(grep -c 'matches no probe of ours: ignored' "$work/espada-a.log")" -eq 3 ]
}
check "gw_a counts the 3 forged TED answers as dropped (and logs them)" forged
# The real probe is resent, then given up: nobody in front of lan_c yet.
check "gw_a gives its unanswered probe for lan_c up" \
    wait_stat a "TED probes unanswered" 1 60
sleep 1
kill "$cap_pid" 2>/dev/null
wait "$cap_pid" 2>/dev/null
cap_pid=
no_ike_with_forgers() {
    local forged_in ike_out sas
    forged_in=$(tshark -r "$work/forge.pcap" -Y "isakmp.exchangetype == 243 && ip.dst == 198.18.0.1" 2>/dev/null | wc -l)
    ike_out=$(tshark -r "$work/forge.pcap" -Y "isakmp && ip.src == 198.18.0.1 && !(isakmp.exchangetype == 243)" 2>/dev/null | wc -l)
    sas=$(show a show crypto isakmp sa)
    echo "$sas"
    echo "$sas" | grep -Eq '198\.18\.(0\.254|2\.1)' && return 1
    echo "forged answers on the wire: $forged_in, ISAKMP packets gw_a sent but TED: $ike_out"
    [ "$forged_in" -ge 3 ] && [ "$ike_out" -eq 0 ]
}
check "tshark: no ISAKMP SA started toward the forged addresses" no_ike_with_forgers

# --- Discovery between every pair. ---
ip netns exec "$prefix-wan" timeout 60 tshark -i any -w "$work/wan.pcap" -f "udp port 500" >/dev/null 2>&1 &
cap_pid=$!
start_gateway c deploy/configs/lab-ted3-gw-c.conf || exit 1
show c debug crypto isakmp >/dev/null
sleep 1
check "a -> b: lan_a's first packets discover gw_b, then ping passes" pings lan_a 12 198.19.2.10
check "b -> c: lan_b's first packets discover gw_c, then ping passes" pings lan_b 12 198.19.3.10
check "c -> a: lan_c's first packets discover gw_a, then ping passes" pings lan_c 12 198.19.1.10
check "ping lan_b -> lan_a over the discovered tunnel" pings lan_b 18 198.19.1.10
check "ping lan_c -> lan_b over the discovered tunnel" pings lan_c 18 198.19.2.10
check "ping lan_a -> lan_c over the discovered tunnel" pings lan_a 18 198.19.3.10
iperf_pair() { # client namespace, server namespace, server address
    bg_in_ns "$2" iperf3 -s -1 -B "$3" >/dev/null 2>&1
    local s=$! rc
    sleep 0.5
    in_ns "$1" timeout 15 iperf3 -c "$3" -t 2 -J >"$work/iperf.json"
    rc=$?
    [ $rc -eq 0 ] || kill "$s" 2>/dev/null
    wait "$s" 2>/dev/null
    [ $rc -eq 0 ] || return 1
    /usr/bin/python3 - "$work/iperf.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["end"]["sum_received"]
print(f"{s['bits_per_second']/1e6:.1f} Mbit/s")
sys.exit(0 if s["bits_per_second"] > 1e6 else 1)
PY
}
check "iperf3 TCP lan_a -> lan_b" iperf_pair lan_a lan_b 198.19.2.10
check "iperf3 TCP lan_b -> lan_c" iperf_pair lan_b lan_c 198.19.3.10
check "iperf3 TCP lan_c -> lan_a" iperf_pair lan_c lan_a 198.19.1.10

two_peers() { # gateway, its address, the other two
    local s
    s=$(show "$1" show crypto isakmp sa)
    echo "$s"
    for p in "$3" "$4"; do
        echo "$s" | grep -Eq "$p +$2 +QM_IDLE|$2 +$p +QM_IDLE" || return 1
    done
}
check "gw_a: ISAKMP SAs in QM_IDLE with gw_b and gw_c" two_peers a 198.18.0.1 198.18.1.1 198.18.2.1
check "gw_b: ISAKMP SAs in QM_IDLE with gw_a and gw_c" two_peers b 198.18.1.1 198.18.0.1 198.18.2.1
check "gw_c: ISAKMP SAs in QM_IDLE with gw_a and gw_b" two_peers c 198.18.2.1 198.18.0.1 198.18.1.1
discovered_and_answered() {
    local g d a
    for g in a b c; do
        d=$(isakmp_stat "$g" "TED peers discovered")
        a=$(isakmp_stat "$g" "TED probes answered")
        echo "gw_$g: discovered ${d:-0}, answered ${a:-0}"
        [ "${d:-0}" -eq 1 ] && [ "${a:-0}" -ge 1 ] || return 1
    done
}
check "each gateway discovered one peer and answered another's probe" discovered_and_answered
debug_lines() {
    local g
    for g in a b c; do
        if ! grep -q 'received response to my peer discovery probe' "$work/espada-$g.log" ||
            ! grep -q 'responding to peer discovery probe' "$work/espada-$g.log"; then
            echo "gw_$g lacks a probe or response line"
            return 1
        fi
    done
    grep -q 'initiating IKE to 198.18.2.1 in response to probe' "$work/espada-b.log" &&
        echo "probe, response and 'initiating IKE' lines on all three"
}
check "debug crypto isakmp: each gateway's probe-response and response lines" debug_lines

engine_rows() {
    local s
    s=$(show a show crypto engine connections active)
    echo "$s"
    echo "$s" | sed -n 2p | grep -Eq '^ +ID +Interface +IP-Address +State +Algorithm +Encrypt +Decrypt$' || return 1
    # Two ISAKMP SAs; four ESP SAs on a-wan, each pair encrypting out and
    # decrypting in.
    [ "$(echo "$s" | grep -cE '<none> +<none> +set +HMAC_SHA\+DES_56_CB')" -eq 2 ] || return 1
    [ "$(echo "$s" | awk '$2 == "a-wan" && $3 == "198.18.0.1" && $5 == "HMAC_MD5+DES_56_CB" && $6 > 5 && $7 == 0' | wc -l)" -eq 2 ] || return 1
    [ "$(echo "$s" | awk '$2 == "a-wan" && $3 == "198.18.0.1" && $5 == "HMAC_MD5+DES_56_CB" && $6 == 0 && $7 > 5' | wc -l)" -eq 2 ]
}
check "gw_a: show crypto engine connections active has both tunnels' SAs moving packets" engine_rows

# One prober flooding gw_a with (well-formed) probes for lan_a: gw_a's
# dataplane hands on 4 a second from it, drops the rest as over its
# share, and still takes the next prober's probe, which is answered.
flood() {
    local before after s
    before=$(show a show dataplane | sed -n "s/.*, \([0-9]*\) over one source's share/\1/p")
    in_ns wan /usr/bin/python3 deploy/tests/ted_forge.py probes 198.19.1.10 198.19.9.0/24 \
        198.18.0.254:12 198.18.1.254:1 || return 1
    for _ in $(seq 1 40); do
        grep -q "peer's address is 198.18.1.254" "$work/espada-a.log" && break
        sleep 0.25
    done
    s=$(show a show dataplane)
    after=$(echo "$s" | sed -n "s/.*, \([0-9]*\) over one source's share/\1/p")
    local flooder other
    flooder=$(grep -c "peer's address is 198.18.0.254" "$work/espada-a.log")
    other=$(grep -c "peer's address is 198.18.1.254" "$work/espada-a.log")
    echo "$s" | grep 'TED probes'
    echo "over one source's share: ${before:-?} -> ${after:-?}; answered: flooder $flooder, the other $other"
    [ "${after:-0}" -ge $((${before:-0} + 4)) ] && [ "$flooder" -ge 1 ] && [ "$flooder" -le 8 ] &&
        [ "$other" -eq 1 ]
}
check "gw_a: a flooding prober gets its share (4/s), the next prober is still answered" flood

sleep 1
kill "$cap_pid" 2>/dev/null
wait "$cap_pid" 2>/dev/null
cap_pid=
answers_on_the_wire() {
    local from to n
    for pair in "198.18.1.1 198.18.0.1" "198.18.2.1 198.18.1.1" "198.18.0.1 198.18.2.1"; do
        read -r from to <<<"$pair"
        n=$(tshark -r "$work/wan.pcap" -Y "isakmp.exchangetype == 243 && ip.src == $from && ip.dst == $to" 2>/dev/null | wc -l)
        echo "TED answers $from -> $to: $n"
        [ "$n" -ge 1 ] || return 1
    done
}
check "tshark: gw_b answered gw_a, gw_c answered gw_b, gw_a answered gw_c" answers_on_the_wire

lab_end
