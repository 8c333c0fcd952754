#!/usr/bin/env bash
# Self-test of the lab's strongSwan side (deploy/lib/strongswan.sh and
# deploy/configs/swan/), with strongSwan on BOTH gateways and no Espada, so
# that a later interop test can trust it when gw_a runs Espada:
#   - IKEv1 (Main Mode, PSK, address IDs): gw_a initiates the IPv4 child
#     (198.18.0.1 -> 198.18.1.1), gw_b the IPv6 one (fd00:2::1 ->
#     fd00:1::1); both get the proposals of the IOS configurations, and
#     Main Mode proposes IOS's 86400 s lifetime;
#   - ping lan_a <-> lan_b both ways, IPv4 and IPv6, and meanwhile on the
#     WAN only ESP (in UDP 4500: kernel-libipsec) crosses, no LAN address in
#     clear; the CHILD_SA packet counters moved;
#   - charon stops by PID and leaves no ipsec0, table 220 route or rule;
#   - the same with IKEv2.
# Prints "N passed, M failed" for deploy/test.sh's summary. Root only.
set -euo pipefail
cd "$(dirname "$0")/../.."
prefix="esw$$"
work=$(mktemp -d /tmp/espada-swan.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
# shellcheck source=deploy/lib/strongswan.sh
. deploy/lib/strongswan.sh

A=$(gw_ns a)
B=$(gw_ns b)
capture_pid=
lab_cleanup() {
    if [ -n "$capture_pid" ]; then kill "$capture_pid" 2>/dev/null || true; fi
    swan_stop_all
}
lab_begin "strongSwan self-test" "charon.log of each gateway and IKE version"

deploy/lab.sh up --prefix "$prefix" >/dev/null
swan_gateway_setup "$A"
swan_gateway_setup "$B"

# capture_start NAME: everything on the WAN next to gw_a, until capture_stop.
capture_start() {
    bg_in_ns wan tshark -i wan-a -w "$work/$1.pcap" -a duration:60 >"$work/$1.tshark" 2>&1
    capture_pid=$!
    local _
    for _ in $(seq 1 50); do
        grep -q "Capturing on" "$work/$1.tshark" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "tshark did not start capturing in 5 s" >&2
    return 1
}
capture_stop() {
    [ -n "$capture_pid" ] || return 0
    # Not SIGINT: a background job of a script starts with SIGINT ignored.
    kill -TERM "$capture_pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 50); do
        kill -0 "$capture_pid" 2>/dev/null || break
        sleep 0.1
    done
    wait "$capture_pid" 2>/dev/null || true
    capture_pid=
}
pcap_count() { # pcap, display filter
    tshark -r "$1" -Y "$2" -T fields -e frame.number 2>/dev/null | wc -l
}

# IKE_SA NAME is up with the expected proposal and its child CHILD installed
# with AES-128-CBC + HMAC-SHA1-96 in tunnel mode.
sa_up() { # ns, dir, version, ike, child
    swan_list_sas "$1" "$2" --ike "$4" >"$work/sas.txt"
    cat "$work/sas.txt"
    grep -q "^$4: #[0-9]*, ESTABLISHED, IKEv$3" "$work/sas.txt" &&
        grep -q "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" "$work/sas.txt" &&
        grep -Eq "^  $5: #[0-9]+, reqid [0-9]+, INSTALLED, TUNNEL(-in-UDP)?, ESP:AES_CBC-128/HMAC_SHA1_96$" "$work/sas.txt" &&
        echo "$4 ESTABLISHED IKEv$3, $5 INSTALLED $(grep -Eo 'TUNNEL(-in-UDP)?' "$work/sas.txt" | head -1)"
}
counters_moved() { # ns, dir, child
    local c pin pout
    c=$(swan_child_packets "$1" "$2" "$3")
    echo "$3 packets in/out: $c"
    read -r pin pout <<<"$c"
    [ "${pin:-0}" -ge 30 ] && [ "${pout:-0}" -ge 30 ]
}
wire_is_esp() { # pcap, v4|v6
    local pcap=$1 fam=$2 outer lan esp clear
    if [ "$fam" = v4 ]; then
        outer="ip.src == 198.18.0.1 && ip.dst == 198.18.1.1"
        lan="ip.addr == 198.19.0.0/16"
    else
        outer="ipv6.src == fd00:1::1 && ipv6.dst == fd00:2::1"
        lan="ipv6.addr == fd00:a::/64 || ipv6.addr == fd00:b::/64"
    fi
    esp=$(pcap_count "$pcap" "esp && $outer")
    clear=$(pcap_count "$pcap" "$lan")
    echo "$esp ESP packets from gw_a ($(pcap_count "$pcap" "esp && udp.port == 4500 && $outer") in UDP 4500), $clear with a LAN address in clear"
    [ "$esp" -ge 30 ] && [ "$clear" -eq 0 ]
}
ikev1_main_mode_lifetime() { # pcap
    local modes life
    # Exchange type 2 is Identity Protection (Main Mode), 32 Quick Mode.
    modes=$(tshark -r "$1" -Y "isakmp" -T fields -e isakmp.exchangetype 2>/dev/null | sort -un | tr '\n' ' ')
    life=$(tshark -r "$1" -Y "isakmp.exchangetype == 2" -T fields -e isakmp.ike.attr.life_duration 2>/dev/null | tr ',' '\n' | grep . | sort -u | tr '\n' ' ')
    echo "exchange types seen: $modes; Main Mode life durations: $life"
    [[ " $modes " == *" 2 "* ]] && [[ " $modes " == *" 32 "* ]] && [ "$life" = "86400 " ]
}
ikev2_exchanges() { # pcap
    local modes
    # 34 IKE_SA_INIT, 35 IKE_AUTH, 36 CREATE_CHILD_SA.
    modes=$(tshark -r "$1" -Y "isakmp" -T fields -e isakmp.exchangetype 2>/dev/null | sort -un | tr '\n' ' ')
    echo "exchange types seen: $modes"
    [[ " $modes " == *" 34 "* ]] && [[ " $modes " == *" 35 "* ]]
}
stopped_clean() { # ns, dir
    local ns=$1 dir=$2 pid
    pid=$(cat "$dir/charon.pid")
    swan_stop "$ns" "$dir"
    if kill -0 "$pid" 2>/dev/null; then echo "charon PID $pid still runs"; return 1; fi
    if ip netns exec "$ns" ip link show ipsec0 >/dev/null 2>&1; then echo "ipsec0 left in $ns"; return 1; fi
    if ip netns exec "$ns" ip rule | grep -q 'lookup 220' ||
        ip netns exec "$ns" ip -6 rule | grep -q 'lookup 220'; then
        echo "rule to table 220 left in $ns"
        return 1
    fi
    if [ -n "$(ip netns exec "$ns" ip route show table 220)$(ip netns exec "$ns" ip -6 route show table 220)" ]; then
        echo "routes left in table 220 of $ns"
        return 1
    fi
    echo "charon PID $pid gone, no ipsec0, no table 220 route or rule"
}

run_version() { # 1|2
    local v=$1 t0=$SECONDS
    local da="$work/ikev$v-gw_a" db="$work/ikev$v-gw_b"
    check "IKEv$v: charon starts on gw_a" swan_start a "$A" "$da"
    check "IKEv$v: charon starts on gw_b" swan_start b "$B" "$db"
    check "IKEv$v: gw_a loads deploy/configs/swan/gw-a-ikev$v.conf" \
        swan_load "$A" "$da" "deploy/configs/swan/gw-a-ikev$v.conf"
    check "IKEv$v: gw_b loads deploy/configs/swan/gw-b-ikev$v.conf" \
        swan_load "$B" "$db" "deploy/configs/swan/gw-b-ikev$v.conf"
    capture_start "ikev$v" || true
    # Each side initiates one child, so both configurations are tried as
    # initiator and as responder.
    check "IKEv$v: gw_a initiates lan4 (198.18.0.1 -> 198.18.1.1)" swan_initiate "$A" "$da" lan4
    check "IKEv$v: gw_b initiates lan6 (fd00:2::1 -> fd00:1::1)" swan_initiate "$B" "$db" lan6
    check "IKEv$v: responder gw_b has vpn4 up with the IOS proposals" sa_up "$B" "$db" "$v" vpn4 lan4
    check "IKEv$v: responder gw_a has vpn6 up with the IOS proposals" sa_up "$A" "$da" "$v" vpn6 lan6
    check "IKEv$v: IPv4 ping lan_a -> lan_b through the tunnel" pings lan_a 15 198.19.2.10
    check "IKEv$v: IPv4 ping lan_b -> lan_a" pings lan_b 15 198.19.1.10
    check "IKEv$v: IPv6 ping lan_a -> lan_b through the tunnel" pings lan_a 15 -6 fd00:b::10
    check "IKEv$v: IPv6 ping lan_b -> lan_a" pings lan_b 15 -6 fd00:a::10
    capture_stop
    check "IKEv$v: the WAN saw IPv4 ESP only, no LAN address in clear" wire_is_esp "$work/ikev$v.pcap" v4
    check "IKEv$v: the WAN saw IPv6 ESP only, no LAN address in clear" wire_is_esp "$work/ikev$v.pcap" v6
    if [ "$v" = 1 ]; then
        check "IKEv1: Main Mode and Quick Mode on the wire, Main Mode proposes 86400 s" \
            ikev1_main_mode_lifetime "$work/ikev1.pcap"
    else
        check "IKEv2: IKE_SA_INIT and IKE_AUTH on the wire" ikev2_exchanges "$work/ikev2.pcap"
    fi
    check "IKEv$v: gw_a's lan4 counters moved" counters_moved "$A" "$da" lan4
    check "IKEv$v: gw_b's lan6 counters moved" counters_moved "$B" "$db" lan6
    check "IKEv$v: gw_a's charon stops and cleans up" stopped_clean "$A" "$da"
    check "IKEv$v: gw_b's charon stops and cleans up" stopped_clean "$B" "$db"
    check "IKEv$v: without strongSwan no ping gets through" \
        sh -c "! ip netns exec $prefix-lan_a ping -c 2 -i 0.2 -W 1 198.19.2.10"
    echo "IKEv$v part: $((SECONDS - t0)) s"
}

run_version 1
run_version 2

deploy/lab.sh down --prefix "$prefix" >/dev/null
check "the lab's namespaces are gone" sh -c "! ip netns list | grep -q '^$prefix-'"
lab_end
