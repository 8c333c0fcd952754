#!/usr/bin/env bash
# IKEv1 interoperability: Espada on gw_a (deploy/configs/lab-ike-gw-a.conf,
# IOS dialect) against strongSwan on gw_b (deploy/configs/swan/
# gw-b-ikev1.conf, the same policy in swanctl.conf) in the namespace lab:
#   - Espada initiates on the first packet (IPv4 and IPv6 peers), Main Mode
#     and Quick Mode complete, ping and iperf3 pass both ways;
#   - strongSwan 5.9.8's kernel-libipsec only does ESP in UDP: NAT
#     traversal (RFC 3947) moves IKE to 4500 and Espada encapsulates;
#   - strongSwan's delete removes the pair on Espada; strongSwan initiates
#     and Espada responds;
#   - Main Mode with each of 3des-sha1-modp1024, aes128-sha1-modp1024 and
#     aes256-sha256-modp2048 (strongSwan offering only that one), Espada
#     responding and initiating, traffic after each;
#   - strongSwan initiates Aggressive Mode; Espada answers it;
#   - strongSwan's DPD R-U-THEREs are answered (its SA survives 25 s of
#     idle with a 20 s DPD timeout);
#   - a wrong pre-shared key on Espada: no SA, the failure is counted.
# Prints "N passed, M failed" for deploy/test.sh's summary. Root only.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="essw$$"
work=$(mktemp -d /tmp/espada-swan-ikev1.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
# shellcheck source=deploy/lib/strongswan.sh
. deploy/lib/strongswan.sh

B=$(gw_ns b)
sb="$work/swan-b"
lab_cleanup() {
    swan_stop_all
}
lab_begin "strongSwan IKEv1 interop" "espada-a.log, swan-b/charon.log"

deploy/lab.sh up --prefix "$prefix" >/dev/null
swan_gateway_setup "$B"
check "strongSwan starts on gw_b" swan_start b "$B" "$sb"
check "strongSwan loads deploy/configs/swan/gw-b-ikev1.conf" swan_load "$B" "$sb" deploy/configs/swan/gw-b-ikev1.conf
start_gateway a deploy/configs/lab-ike-gw-a.conf || exit 1
show a debug crypto isakmp >/dev/null

swan_up() { # ike, child: ESTABLISHED IKEv1 with the child installed
    swan_list_sas "$B" "$sb" --ike "$1" >"$work/sas.txt"
    cat "$work/sas.txt"
    grep -q "^$1: #[0-9]*, ESTABLISHED, IKEv1" "$work/sas.txt" &&
        grep -Eq "^  $2: #[0-9]+, reqid [0-9]+, INSTALLED, TUNNEL(-in-UDP)?, ESP:AES_CBC-128/HMAC_SHA1_96$" "$work/sas.txt"
}
espada_sa() { # grep pattern over show crypto isakmp sa detail
    show a show crypto isakmp sa detail >"$work/isakmp.txt"
    cat "$work/isakmp.txt"
    grep -Eq "$1" "$work/isakmp.txt"
}
espada_stat() { # counter name (regex), minimum
    show a show crypto isakmp stats >"$work/stats.txt"
    local n
    n=$(grep -E "^ +[0-9]+ +$1" "$work/stats.txt" | awk '{print $1}' | head -1)
    echo "$1: ${n:-none}"
    [ "${n:-0}" -ge "$2" ]
}
espada_stat_none() { # counter name (regex): zero or not shown
    show a show crypto isakmp stats >"$work/stats.txt"
    local n
    n=$(grep -E "^ +[0-9]+ +$1" "$work/stats.txt" | awk '{print $1}' | head -1)
    echo "$1: ${n:-0}"
    [ "${n:-0}" -eq 0 ]
}

check "Espada initiates on the first IPv4 packet; ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
check "Espada initiates on the first IPv6 packet; ping lan_a -> lan_b passes" pings lan_a 10 -6 fd00:b::10
check "strongSwan has vpn4 ESTABLISHED with lan4 INSTALLED" swan_up vpn4 lan4
check "strongSwan has vpn6 ESTABLISHED with lan6 INSTALLED" swan_up vpn6 lan6
check "Espada shows the ISAKMP SAs ACTIVE with aes:256/sha256/group 14, NAT-T and DPD" \
    espada_sa "ACTIVE aes:256 sha256 psk  14 .* DN"
check "ping lan_b -> lan_a (IPv4)" pings lan_b 15 198.19.1.10
check "ping lan_b -> lan_a (IPv6)" pings lan_b 15 -6 fd00:a::10
check "iperf3 TCP lan_a -> lan_b over IPv4" iperf_from lan_b 198.19.2.10
check "iperf3 TCP lan_a -> lan_b over IPv6" iperf_from lan_b fd00:b::10
check "iperf3 TCP lan_b -> lan_a over IPv4 (reverse)" iperf_from lan_b 198.19.2.10 -R
check "Espada's SAs carry UDP-encapsulated ESP (port 4500)" \
    sh -c "ip netns exec $(gw_ns a) $ESPADA show crypto ipsec sa --run-dir $(gw_run_dir a) | grep -q 'current_peer 198.18.1.1 port 4500'"

# strongSwan deletes: Espada follows.
check "strongSwan terminates vpn4" swan_terminate "$B" "$sb" vpn4
sleep 1
check "Espada received the deletes" espada_stat "deletes received" 1
no_v4_pair() {
    show a show crypto ipsec sa >"$work/ipsec.txt"
    ! grep -q "current_peer 198.18.1.1" "$work/ipsec.txt"
}
check "Espada removed the IPv4 pair" no_v4_pair

# strongSwan initiates: Espada responds.
check "strongSwan initiates lan4; Espada responds" swan_initiate "$B" "$sb" lan4
check "ping lan_b -> lan_a over the SAs strongSwan initiated" pings lan_b 10 198.19.1.10
three_negotiations() {
    espada_stat 'phase 1 SAs established' 3 && espada_stat 'phase 2 SA pairs established' 3
}
check "Espada counts three phase 1 and three phase 2 negotiations (one each as responder)" three_negotiations

# Each IKE proposal alone: strongSwan initiates (Espada picks it from its
# policies), then Espada initiates (strongSwan accepts only that one).
proposal_round() { # strongswan proposal, strongSwan's name of it
    local p=$1 want=$2
    sed "s/^\( *proposals = \).*/\1$p/" deploy/configs/swan/gw-b-ikev1.conf >"$work/only-$p.conf"
    swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
    show a clear crypto sa >/dev/null
    show a clear crypto isakmp >/dev/null
    swan_load "$B" "$sb" "$work/only-$p.conf" >/dev/null || return 1
    swan_initiate "$B" "$sb" lan4 || return 1
    swan_list_sas "$B" "$sb" --ike vpn4 | grep -q "$want" || { echo "strongSwan did not negotiate $want"; return 1; }
    pings lan_b 5 198.19.1.10 || return 1
    swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
    show a clear crypto sa >/dev/null
    show a clear crypto isakmp >/dev/null
    sleep 0.5
    pings lan_a 5 198.19.2.10 || return 1
    swan_list_sas "$B" "$sb" --ike vpn4 | grep -q "$want" || { echo "Espada's Main Mode did not end on $want"; return 1; }
    echo "$want both ways"
}
check "3des-sha1-modp1024, each side initiating" proposal_round 3des-sha1-modp1024 3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024
check "aes128-sha1-modp1024, each side initiating" proposal_round aes128-sha1-modp1024 AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024
check "aes256-sha256-modp2048, each side initiating" proposal_round aes256-sha256-modp2048 AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048

# Aggressive Mode: strongSwan initiates it, Espada answers.
aggressive_round() {
    sed "s/^\( *aggressive = \)no/\1yes/" deploy/configs/swan/gw-b-ikev1.conf >"$work/aggressive.conf"
    grep -q "aggressive = yes" "$work/aggressive.conf" || return 1
    swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
    show a clear crypto sa >/dev/null
    show a clear crypto isakmp >/dev/null
    swan_load "$B" "$sb" "$work/aggressive.conf" >/dev/null || return 1
    swan_initiate "$B" "$sb" lan4 || return 1
    grep -q "initiating Aggressive Mode IKE_SA vpn4" "$sb/charon.log" || { echo "strongSwan did not use Aggressive Mode"; return 1; }
    pings lan_b 5 198.19.1.10
}
check "strongSwan initiates Aggressive Mode and Espada answers; traffic flows" aggressive_round
swan_load "$B" "$sb" deploy/configs/swan/gw-b-ikev1.conf >/dev/null

# DPD: strongSwan asks every 10 s and gives up after 20 s without answer.
sleep 25
check "after 25 s idle strongSwan's DPD still finds Espada alive" swan_up vpn4 lan4
check "Espada answered R-U-THEREs" espada_stat "notifications received" 2

# Quick Mode rekeys under 500 pings a second (a switch-over that drops
# a packet lasts about a millisecond; a slower ping would rarely see it).
# ping_window SECONDS: pings from lan_a in the background; ping_result
# then wants every reply back.
ping_window() {
    bg_in_ns lan_a ping -i 0.002 -c $(($1 * 500)) -W 2 198.19.2.10 >"$work/ping-window.txt" 2>&1
    ping_pid=$!
}
ping_result() {
    wait "$ping_pid"
    tail -3 "$work/ping-window.txt"
    grep -Eq '^([0-9]+) packets transmitted, \1 received' "$work/ping-window.txt"
}
child_spis() { # strongSwan's inbound SPIs of lan4
    swan_list_sas "$B" "$sb" --ike vpn4 --raw | grep -Eo 'spi-in=[0-9a-f]+' | tr '\n' ' '
}
spis_changed() { # before, after
    echo "before: $1 after: $2"
    [ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ]
}
# 1. strongSwan rekeys lan4 every 6-8 s (its Quick Mode lifetime 16 s,
# which Espada accepts as the lower one).
sed -e "s/^\( *life_time = \)3600s/\116s/" -e "s/^\( *rekey_time = \)3240s/\18s\n                rand_time = 2s/" \
    deploy/configs/swan/gw-b-ikev1.conf >"$work/child-rekey.conf"
swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
show a clear crypto sa >/dev/null
swan_load "$B" "$sb" "$work/child-rekey.conf" >/dev/null
check "strongSwan initiates lan4 with a 16 s Quick Mode lifetime" swan_initiate "$B" "$sb" lan4
spis_before=$(child_spis)
ping_window 13
sleep 13
check "no ping lost across strongSwan's Quick Mode rekeys (13 s, 500 a second)" ping_result
check "strongSwan's lan4 SPIs changed: it rekeyed" spis_changed "$spis_before" "$(child_spis)"
swan_load "$B" "$sb" deploy/configs/swan/gw-b-ikev1.conf >/dev/null
# 2. Espada rekeys: a 2560 KB lifetime (IOS's least) runs out under
# 1400-byte pings at 500 a second; Espada starts Quick Mode at 80%.
stop_gateways
sed 's/^crypto isakmp keepalive.*/&\ncrypto ipsec security-association lifetime kilobytes 2560/' \
    deploy/configs/lab-ike-gw-a.conf >"$work/kb-a.conf"
start_gateway a "$work/kb-a.conf" || exit 1
swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
check "2560 KB lifetimes: Espada initiates; ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
spis_before=$(child_spis)
kb_pings() {
    in_ns lan_a ping -c 2000 -i 0.002 -s 1400 -W 2 198.19.2.10 >"$work/kb-ping.txt" 2>&1
    tail -3 "$work/kb-ping.txt"
    grep -q '^2000 packets transmitted, 2000 received' "$work/kb-ping.txt"
}
check "no ping lost across Espada's Quick Mode rekey (2000 of 1400 bytes in 4 s)" kb_pings
check "strongSwan's lan4 SPIs changed: Espada rekeyed" spis_changed "$spis_before" "$(child_spis)"
check "Espada counts the rekey's phase 2" espada_stat "phase 2 SA pairs established" 2
check "and no failed rekey" espada_stat_none "phase 2 rekeys failed"

# A wrong pre-shared key on Espada.
stop_gateways
sed 's/espada-lab-psk /wrong-lab-psk /' deploy/configs/lab-ike-gw-a.conf >"$work/wrong-a.conf"
start_gateway a "$work/wrong-a.conf" || exit 1
# strongSwan still holds the ISAKMP SA of the Espada that was stopped:
# drop it so the next initiate runs Main Mode with the wrong key.
swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
swan_refused() { ! swan_initiate "$B" "$sb" lan4 8; }
check "with a wrong key strongSwan cannot initiate" swan_refused
check "Espada counts the failure" espada_stat "(decryption failures|hash/authentication failures)" 1

lab_end
