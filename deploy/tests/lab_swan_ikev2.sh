#!/usr/bin/env bash
# IKEv2 interoperability: Espada on gw_a (deploy/configs/lab-ikev2-gw-a.conf,
# crypto maps with set ikev2-profile) against strongSwan 5.9.8 on gw_b
# (deploy/configs/swan/gw-b-ikev2.conf, and variants of it written here) in
# the namespace lab:
#   - Espada initiates on the first packet (IPv4 and IPv6 outer):
#     IKE_SA_INIT and IKE_AUTH complete, ping and iperf3 pass both ways,
#     Espada shows the IKE SAs READY, strongSwan ESTABLISHED/INSTALLED;
#     strongSwan's kernel-libipsec only does ESP in UDP, so NAT-T's
#     encapsulation is used throughout;
#   - strongSwan's delete removes the SA on Espada; strongSwan initiates and
#     Espada responds;
#   - each of 3des-sha1-modp1024, aes128-sha1-modp1024,
#     aes256-sha256-modp2048 and aes128gcm16-prfsha256-ecp256 (ESP
#     aes128gcm16 against Espada's esp-gcm 128), strongSwan offering only
#     that one, each side initiating, traffic after each;
#   - INVALID_KE_PAYLOAD: strongSwan's key exchange guesses ecp256, Espada
#     wants group 14 (which strongSwan offers too): the retry succeeds;
#   - CHILD_SA rekey (strongSwan, every ~8 s) and IKE SA rekey
#     (strongSwan, every ~10 s) under a continuous ping: no ping lost, the
#     SPIs change; a CHILD_SA rekey by Espada (2560 KB lifetime) under 500
#     pings a second, none lost, the old pair deleted; both rekeying the
#     same CHILD_SA at once (RFC 7296 §2.8.1): one pair left, the same on
#     both sides;
#   - DPD: strongSwan's liveness checks are answered; Espada's (dpd 10 2
#     periodic) find a killed strongSwan dead and remove the SA;
#   - asymmetric pre-shared keys (pre-shared-key local / remote) work; a
#     wrong key gives no SA and Espada counts an authentication failure;
#   - FQDN identities: strongSwan is gw-b.espada.lab, Espada "identity
#     local fqdn gw-a.espada.lab" with "match identity remote fqdn" and a
#     keyring peer with "identity fqdn": each side initiating, traffic,
#     the identities in show crypto ikev2 sa detailed;
#   - NAT traversal: gw_a behind the wan router's NAT (the mirror of
#     deploy/lab.sh up --nat, which hides gw_b): Espada initiates, detects
#     the NAT, and traffic passes.
# Prints "lab strongSwan IKEv2 interop: N passed, M failed" for
# deploy/test.sh's summary. Root only; about 4 minutes.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
prefix="esv2$$"
work=$(mktemp -d /tmp/espada-swan-ikev2.XXXXXX)
# shellcheck source=deploy/lib/gateways.sh
. deploy/lib/gateways.sh
# shellcheck source=deploy/lib/checks.sh
. deploy/lib/checks.sh
# shellcheck source=deploy/lib/strongswan.sh
. deploy/lib/strongswan.sh

A_CONF=deploy/configs/lab-ikev2-gw-a.conf
B_CONF=deploy/configs/swan/gw-b-ikev2.conf
B=$(gw_ns b)
sb="$work/swan-b"
ping_pid=
lab_cleanup() {
    if [ -n "$ping_pid" ]; then
        kill "$ping_pid" 2>/dev/null
        wait "$ping_pid" 2>/dev/null
    fi
    swan_stop_all
}
lab_begin "strongSwan IKEv2 interop" "espada-a*.log with debug crypto ikev2, swan-b*/charon.log"

# swan_variant NAME SED-EXPRESSION...: $work/NAME.conf, the strongSwan
# config with those substitutions; fails if one of them changed nothing.
swan_variant() {
    local name=$1 e
    shift
    cp "$B_CONF" "$work/$name.conf"
    for e in "$@"; do
        sed -i "$e" "$work/$name.conf"
    done
    if cmp -s "$B_CONF" "$work/$name.conf" && [ $# -gt 0 ]; then
        echo "swan_variant $name: no substitution applied" >&2
        return 1
    fi
}
# start_a CONFIG: (re)starts Espada on gw_a with debug crypto ikev2 on; the
# log of each run is kept as espada-a.N.log.
a_runs=0
start_a() {
    if [ -f "$work/espada-a.log" ]; then
        a_runs=$((a_runs + 1))
        mv "$work/espada-a.log" "$work/espada-a.$a_runs.log"
    fi
    start_gateway a "$1" || return 1
    show a debug crypto ikev2 >/dev/null
}
# swan_fresh CONF: strongSwan forgets its SAs and loads CONF.
swan_fresh() {
    swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
    swan_terminate "$B" "$sb" vpn6 >/dev/null 2>&1 || true
    swan_load "$B" "$sb" "$1" >/dev/null
}
# espada_clear: Espada deletes every IKE and IPsec SA.
espada_clear() {
    show a clear crypto ikev2 sa >/dev/null
    show a clear crypto sa >/dev/null
}
swan_up() { # ike, child, [ESP suite regex]: ESTABLISHED IKEv2, child INSTALLED
    local esp=${3:-AES_CBC-128/HMAC_SHA1_96}
    swan_list_sas "$B" "$sb" --ike "$1" >"$work/sas.txt"
    cat "$work/sas.txt"
    grep -q "^$1: #[0-9]*, ESTABLISHED, IKEv2" "$work/sas.txt" &&
        grep -Eq "^  $2: #[0-9]+, reqid [0-9]+, INSTALLED, TUNNEL(-in-UDP)?, ESP:$esp$" "$work/sas.txt"
}
show_to() { # file, side, command...: the output, saved and printed
    local f=$1
    shift
    show "$@" >"$f"
    local rc=$?
    cat "$f"
    return $rc
}
espada_ready() { # remote address: Espada's IKE SA with it is READY
    show_to "$work/ikev2.txt" a show crypto ikev2 sa || return 1
    grep -Eq "^[0-9]+ +[^ ]+ +$1/[0-9]+ +none/none +READY" "$work/ikev2.txt"
}
espada_stat() { # counter name (regex), minimum
    show_to "$work/stats.txt" a show crypto ikev2 stats >/dev/null || return 1
    local n
    n=$(grep -E "^ +[0-9]+ +$1" "$work/stats.txt" | awk '{print $1}' | head -1)
    echo "$1: ${n:-none}"
    [ "${n:-0}" -ge "$2" ]
}
no_pair_with() { # remote address: Espada has no IPsec SA pair with it
    show_to "$work/ipsec.txt" a show crypto ipsec sa >/dev/null || return 1
    ! grep -q "current_peer $1 " "$work/ipsec.txt" || { cat "$work/ipsec.txt"; return 1; }
    show_to "$work/ikev2.txt" a show crypto ikev2 sa >/dev/null || return 1
    ! grep -Eq " $1/[0-9]+ " "$work/ikev2.txt" || { cat "$work/ikev2.txt"; return 1; }
    echo "no SA with $1"
}
# swan_spis ike|child: strongSwan's SPIs of vpn4 (the IKE SA's pair) or
# of its lan4 CHILD_SAs (their inbound SPIs).
swan_spis() {
    swan_list_sas "$B" "$sb" --ike vpn4 --raw >"$work/raw.txt" || return 1
    if [ "$1" = ike ]; then
        grep -Eo 'initiator-spi=[0-9a-f]+ responder-spi=[0-9a-f]+' "$work/raw.txt" | head -1
    else
        grep -Eo 'spi-in=[0-9a-f]+' "$work/raw.txt" | tr '\n' ' '
    fi
}
# ping_window SECONDS ADDRESS: 500 pings a second from lan_a in the
# background; ping_result then wants every reply back. A rekey's
# switch-over lasts about a millisecond: a slower ping would rarely be
# there to be lost when it goes wrong.
ping_window() {
    bg_in_ns lan_a ping -i 0.002 -c $(($1 * 500)) -W 2 "$2" >"$work/ping-window.txt" 2>&1
    ping_pid=$!
}
ping_result() {
    wait "$ping_pid"
    ping_pid=
    tail -3 "$work/ping-window.txt"
    grep -Eq '^([0-9]+) packets transmitted, \1 received' "$work/ping-window.txt"
}

deploy/lab.sh up --prefix "$prefix" >/dev/null || exit 1
swan_gateway_setup "$B"
check "strongSwan starts on gw_b" swan_start b "$B" "$sb"
check "strongSwan loads $B_CONF" swan_load "$B" "$sb" "$B_CONF"
start_a "$A_CONF" || exit 1

# 1. Espada initiates on the first packet.
check "Espada initiates on the first IPv4 packet; ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
check "Espada initiates on the first IPv6 packet; ping lan_a -> lan_b passes" pings lan_a 10 -6 fd00:b::10
check "strongSwan has vpn4 ESTABLISHED (IKEv2) with lan4 INSTALLED" swan_up vpn4 lan4
check "strongSwan has vpn6 ESTABLISHED (IKEv2) with lan6 INSTALLED" swan_up vpn6 lan6
check "Espada shows the IPv4 IKE SA READY" espada_ready 198.18.1.1
check "Espada shows the IPv6 IKE SA READY" espada_ready fd00:2::1
initiated_both() {
    show_to "$work/ikev2-d.txt" a show crypto ikev2 sa detailed || return 1
    [ "$(grep -c 'Initiator of SA : Yes' "$work/ikev2-d.txt")" = 2 ]
}
check "Espada's detailed view: it initiated both IKE SAs" initiated_both
check "ping lan_b -> lan_a (IPv4)" pings lan_b 15 198.19.1.10
check "ping lan_b -> lan_a (IPv6)" pings lan_b 15 -6 fd00:a::10
check "iperf3 TCP lan_a -> lan_b over IPv4" iperf_from lan_b 198.19.2.10
check "iperf3 TCP lan_a -> lan_b over IPv6" iperf_from lan_b fd00:b::10
check "iperf3 TCP lan_b -> lan_a over IPv4 (reverse)" iperf_from lan_b 198.19.2.10 -R
encapsulated() {
    show_to "$work/ipsec.txt" a show crypto ipsec sa >/dev/null || return 1
    grep 'current_peer' "$work/ipsec.txt"
    grep -q 'current_peer 198.18.1.1 port 4500' "$work/ipsec.txt" &&
        grep -q 'current_peer fd00:2::1 port 4500' "$work/ipsec.txt"
}
check "Espada's SAs carry UDP-encapsulated ESP (port 4500)" encapsulated
sessions_up() {
    show_to "$work/session.txt" a show crypto ikev2 session || return 1
    [ "$(grep -c 'Status:UP-ACTIVE' "$work/session.txt")" = 2 ]
}
check "show crypto ikev2 session lists both sessions UP-ACTIVE" sessions_up

# 8a. strongSwan deletes: Espada follows.
check "strongSwan terminates vpn4" swan_terminate "$B" "$sb" vpn4
sleep 1
check "Espada received strongSwan's delete" espada_stat "deletes received" 1
check "Espada removed the IPv4 IKE SA and its IPsec SAs" no_pair_with 198.18.1.1

# 2. strongSwan initiates: Espada responds.
check "strongSwan initiates lan4; Espada responds" swan_initiate "$B" "$sb" lan4
check "ping lan_b -> lan_a over the SAs strongSwan initiated" pings lan_b 10 198.19.1.10
three_negotiations() {
    espada_stat 'IKE SAs established' 3 && espada_stat 'CHILD_SAs established' 3
}
check "Espada counts three IKE SAs and CHILD_SAs (one as responder)" three_negotiations

# 4. Each suite alone: strongSwan initiates (Espada picks it from its
# policy), then Espada initiates (strongSwan accepts only that one).
suite_round() { # ike proposal, esp proposal, strongSwan's IKE name, ESP name
    local p=$1 esp=$2 want=$3 want_esp=$4
    swan_variant "only-$p" "s/^\( *proposals = \).*/\1$p/" \
        "s/^\( *esp_proposals = \).*/\1$esp/" || return 1
    swan_fresh "$work/only-$p.conf" || return 1
    espada_clear
    swan_initiate "$B" "$sb" lan4 || return 1
    swan_up vpn4 lan4 "$want_esp" >/dev/null || { cat "$work/sas.txt"; return 1; }
    grep -q "$want" "$work/sas.txt" || { echo "strongSwan did not negotiate $want"; cat "$work/sas.txt"; return 1; }
    pings lan_b 5 198.19.1.10 >/dev/null 2>&1 || { echo "no traffic after strongSwan initiated"; return 1; }
    swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1 || true
    espada_clear
    sleep 0.5
    pings lan_a 5 198.19.2.10 >/dev/null 2>&1 || { echo "no traffic after Espada initiated"; return 1; }
    swan_up vpn4 lan4 "$want_esp" >/dev/null || { cat "$work/sas.txt"; return 1; }
    grep -q "$want" "$work/sas.txt" || { echo "Espada's IKE_SA_INIT did not end on $want"; cat "$work/sas.txt"; return 1; }
    echo "$want, ESP $want_esp, both ways"
}
check "3des-sha1-modp1024, each side initiating" suite_round 3des-sha1-modp1024 aes128-sha1 \
    3DES_CBC/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024 AES_CBC-128/HMAC_SHA1_96
check "aes128-sha1-modp1024 (seed 002), each side initiating" suite_round aes128-sha1-modp1024 aes128-sha1 \
    AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024 AES_CBC-128/HMAC_SHA1_96
check "aes256-sha256-modp2048, each side initiating" suite_round aes256-sha256-modp2048 aes128-sha1 \
    AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048 AES_CBC-128/HMAC_SHA1_96
check "aes128gcm16-prfsha256-ecp256 with ESP aes128gcm16, each side initiating" suite_round \
    aes128gcm16-prfsha256-ecp256 aes128gcm16 AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256 AES_GCM_16-128
check "Espada's guesses of the group were corrected by INVALID_KE_PAYLOAD and retried" \
    espada_stat "INVALID_KE_PAYLOAD received" 1

# 5. strongSwan's key exchange guesses ecp256 (its first group); Espada's
# aes256/sha256 proposal has group 14 only, which strongSwan offers second.
invalid_ke_round() {
    swan_variant invalid-ke "s/^\( *proposals = \).*/\1aes256-sha256-ecp256-modp2048/" || return 1
    swan_fresh "$work/invalid-ke.conf" || return 1
    espada_clear
    swan_initiate "$B" "$sb" lan4 || return 1
    swan_up vpn4 lan4 >/dev/null || { cat "$work/sas.txt"; return 1; }
    grep -q "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" "$work/sas.txt" ||
        { cat "$work/sas.txt"; return 1; }
    grep -q "peer didn't accept DH group ECP_256, it requested MODP_2048" "$sb/charon.log" ||
        { echo "strongSwan saw no INVALID_KE_PAYLOAD"; return 1; }
    espada_stat "INVALID_KE_PAYLOAD sent" 1 || return 1
    pings lan_b 5 198.19.1.10 >/dev/null 2>&1 || return 1
    echo "ECP_256 refused, MODP_2048 retried and accepted"
}
check "INVALID_KE_PAYLOAD: strongSwan retries with group 14 and the SA comes up" invalid_ke_round

# 6. CHILD_SA rekey by strongSwan every ~8 s under a continuous ping.
child_rekey_variant() {
    swan_variant child-rekey "s/^\( *rekey_time = \)3240s/\18s\n                rand_time = 2s/" \
        "s/^\( *life_time = \)3600s/\116s/"
}
check "strongSwan config with CHILD_SA rekey every 6-8 s" child_rekey_variant
swan_fresh "$work/child-rekey.conf"
espada_clear
check "strongSwan initiates lan4 with short CHILD_SA lifetimes" swan_initiate "$B" "$sb" lan4
log_mark=$(($(wc -l <"$sb/charon.log") + 1))
spis_before=$(swan_spis child)
ping_window 13 198.19.2.10
sleep 13
check "no ping lost across CHILD_SA rekeys (13 s, 500 a second)" ping_result
spis_after=$(swan_spis child)
spis_changed() { # before, after, what
    echo "before: $1"
    echo "after:  $2"
    [ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ]
}
check "the CHILD_SA was rekeyed: its SPIs changed" spis_changed "$spis_before" "$spis_after"
child_rekeyed() {
    tail -n +"$log_mark" "$sb/charon.log" | grep -E 'CHILD_SA lan4\{[0-9]+\} (established|state change: REKEYING => REKEYED)' &&
        tail -n +"$log_mark" "$sb/charon.log" | grep -Eq 'CHILD_SA lan4\{[0-9]+\} state change: REKEYING => REKEYED'
}
check "strongSwan logs the CHILD_SA rekeyed" child_rekeyed
check "Espada still has exactly one IKE SA with gw_b, READY" espada_ready 198.18.1.1
check "strongSwan still has lan4 INSTALLED" swan_up vpn4 lan4

# 7. IKE SA rekey by strongSwan every ~10 s under a continuous ping.
ike_rekey_variant() {
    swan_variant ike-rekey "s/^\( *rekey_time = \)86400s/\110s\n        rand_time = 2s/" \
        "s/^\( *dpd_delay = \)10s/\15s/"
}
check "strongSwan config with IKE SA rekey every 8-10 s, DPD every 5 s" ike_rekey_variant
swan_fresh "$work/ike-rekey.conf"
espada_clear
check "strongSwan initiates vpn4 with a short IKE SA lifetime" swan_initiate "$B" "$sb" lan4
log_mark=$(($(wc -l <"$sb/charon.log") + 1))
spis_before=$(swan_spis ike)
ping_window 13 198.19.2.10
sleep 13
check "no ping lost across the IKE SA rekey (13 s, 500 a second)" ping_result
spis_after=$(swan_spis ike)
# New SPIs alone would also come from a fresh IKE SA (Espada initiating
# again after strongSwan let the old one expire): that one is no rekey.
ike_rekeyed_in_place() {
    spis_changed "$spis_before" "$spis_after" || return 1
    ! tail -n +"$log_mark" "$sb/charon.log" | grep 'is initiating an IKE_SA'
}
check "the IKE SA was rekeyed in place: its SPIs changed, no new IKE_SA_INIT" ike_rekeyed_in_place
ike_rekey_clean() {
    tail -n +"$log_mark" "$sb/charon.log" | grep -E 'IKE_SA vpn4\[[0-9]+\] state change: REKEYING|rekeying failed|notify error'
    tail -n +"$log_mark" "$sb/charon.log" | grep -Eq 'IKE_SA vpn4\[[0-9]+\] state change: REKEYING => REKEYED' &&
        ! tail -n +"$log_mark" "$sb/charon.log" | grep -Eq 'rekeying failed|notify error'
}
check "strongSwan logs the IKE_SA rekeyed, no failure" ike_rekey_clean
check "strongSwan still has vpn4 ESTABLISHED with lan4 INSTALLED" swan_up vpn4 lan4

# 8b. strongSwan's DPD (every 5 s without inbound traffic) is answered.
dpd_answered() {
    local n0 n1
    n0=$(grep -c 'sending DPD request' "$sb/charon.log")
    sleep 12
    n1=$(grep -c 'sending DPD request' "$sb/charon.log")
    echo "strongSwan sent $((n1 - n0)) DPD requests in 12 s of idle"
    [ "$n1" -gt "$n0" ] && swan_up vpn4 lan4 >/dev/null
}
check "after 12 s idle strongSwan's DPD requests were answered; its SA survives" dpd_answered
check "traffic still passes after the idle time" pings lan_a 5 198.19.2.10

# 8c. Espada's DPD finds a killed strongSwan dead.
dpd_detects() {
    local t0=$SECONDS _
    kill -KILL "$(cat "$sb/charon.pid")" || return 1
    for _ in $(seq 1 60); do
        if no_pair_with 198.18.1.1 >/dev/null 2>&1; then
            echo "Espada removed the SA $((SECONDS - t0)) s after strongSwan died"
            return 0
        fi
        sleep 1
    done
    show a show crypto ikev2 sa detailed
    echo "the SA is still there after 60 s"
    return 1
}
check "Espada's DPD (dpd 10 2 periodic) removes the SA of a killed strongSwan" dpd_detects
check "Espada counts the dead peer" espada_stat "peers declared dead" 1
swan_stop "$B" "$sb"

# 3. Asymmetric pre-shared keys: Espada sends with "local", verifies with
# "remote"; strongSwan finds both by the pair of IDs (the best match signs,
# every match is tried to verify).
sb="$work/swan-b2"
check "strongSwan starts again on gw_b" swan_start b "$B" "$sb"

# 9. CHILD_SA rekey by Espada: a 2 560 KB lifetime (IOS's least) on its
# SAs runs out under 1400-byte pings, 500 a second; Espada rekeys at 80%
# (CREATE_CHILD_SA with REKEY_SA to strongSwan) and deletes the old pair
# once the new one is in the dataplane, keeping its inbound SA for the
# replies strongSwan sends on it until our DELETE reaches it.
kb_variant() {
    sed 's/^crypto ipsec transform-set LAB esp-aes esp-sha-hmac$/crypto ipsec security-association lifetime kilobytes 2560\n&/' \
        "$A_CONF" >"$work/kb-a.conf"
    grep -q '^crypto ipsec security-association lifetime kilobytes 2560$' "$work/kb-a.conf"
}
check "Espada config with SA lifetimes of 2560 KB" kb_variant
stop_gateway a
start_a "$work/kb-a.conf" || exit 1
swan_load "$B" "$sb" "$B_CONF" >/dev/null
check "2560 KB lifetimes: Espada initiates, ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
spis_before=$(swan_spis child)
log_mark=$(($(wc -l <"$sb/charon.log") + 1))
kb_pings() {
    in_ns lan_a ping -c 2000 -i 0.002 -s 1400 -W 2 198.19.2.10 >"$work/kb-ping.txt" 2>&1
    tail -3 "$work/kb-ping.txt"
    grep -q '^2000 packets transmitted, 2000 received' "$work/kb-ping.txt"
}
check "no ping lost across Espada's CHILD_SA rekey (2000 of 1400 bytes in 4 s)" kb_pings
check "the CHILD_SA was rekeyed: strongSwan's SPIs changed" spis_changed "$spis_before" "$(swan_spis child)"
swan_answered_rekey() {
    tail -n +"$log_mark" "$sb/charon.log" | grep -E 'CREATE_CHILD_SA|CHILD_SA lan4\{[0-9]+\}' | head -20
    tail -n +"$log_mark" "$sb/charon.log" | grep -Eq 'parsed CREATE_CHILD_SA request .*N\(REKEY_SA\)'
}
check "strongSwan received Espada's CREATE_CHILD_SA with REKEY_SA" swan_answered_rekey
one_pair() {
    show_to "$work/ipsec.txt" a show crypto ipsec sa >/dev/null || return 1
    [ "$(grep -c 'current outbound spi' "$work/ipsec.txt")" = 1 ]
}
check "Espada keeps one pair with gw_b (the old one deleted)" one_pair
no_failed_rekey() {
    show_to "$work/stats.txt" a show crypto ikev2 stats >/dev/null || return 1
    grep -Eq '^ +0 +CHILD_SA rekeys failed' "$work/stats.txt"
}
check "Espada counts no failed CHILD_SA rekey" no_failed_rekey

# 9b. Both sides rekey the same CHILD_SA at once (RFC 7296 §2.8.1). The
# wan router drops Espada's CREATE_CHILD_SA messages to gw_b (not its
# ESP: IKE on port 4500 starts with the zero non-ESP marker) from before its next
# rekey (the 2560 KB lifetime again) until strongSwan has started its
# own rekey of the same pair (swanctl --rekey), and a little longer, so
# that our answer to strongSwan's request is lost as well: our
# retransmission (1 s) then reaches strongSwan while its exchange is
# open, and its own retransmission (4 s) completes it. Both exchanges
# complete; the one with the lowest nonce made the redundant pair,
# deleted by its maker. strongSwan logs "collision won" when that is
# ours, and "rekey/delete collision, deleting redundant child" when it is
# its own and our DELETE of the old pair came first (as here). Two
# rounds; which side wins is chance, and either must leave one pair, the
# same on both sides, and carry traffic.
# Only CREATE_CHILD_SA (exchange type 36, byte 22 of the UDP payload
# behind the marker and the SPIs): a liveness check (dpd 10 2 periodic)
# held back as well would queue the rekey behind it, and the rekeys
# would not cross.
ike_from_a() { # -A|-D: drop, or stop dropping, Espada's CREATE_CHILD_SA to gw_b
    in_ns wan iptables "$1" FORWARD -s 198.18.0.1 -d 198.18.1.1 -p udp --dport 4500 \
        -m u32 --u32 "0>>22&0x3C@8=0&&0>>22&0x3C@28>>8&0xFF=36" -j DROP
}
crossed_rekeys() {
    local a_mark s_mark _
    a_mark=$(($(wc -l <"$work/espada-a.log") + 1))
    s_mark=$(($(wc -l <"$sb/charon.log") + 1))
    ike_from_a -A || return 1
    # 1400-byte pings, 500 a second, until Espada's rekey starts (80% of
    # the 2560 KB); then 56-byte ones, 250 a second, through the crossing
    # and both switch-overs: the old pair must not reach its hard limit
    # while the rekeys wait for retransmissions.
    bg_in_ns lan_a ping -c 1600 -i 0.002 -s 1400 -W 2 198.19.2.10 >/dev/null 2>&1
    ping_pid=$!
    for _ in $(seq 1 500); do
        tail -n +"$a_mark" "$work/espada-a.log" | grep -q 'Rekeying CHILD_SA' && break
        sleep 0.02
    done
    kill "$ping_pid" 2>/dev/null
    wait "$ping_pid" 2>/dev/null
    bg_in_ns lan_a ping -c 1500 -i 0.004 -W 2 198.19.2.10 >"$work/cross-ping.$round.txt" 2>&1
    ping_pid=$!
    swan_ctl "$B" "$sb" --rekey --child lan4 >/dev/null
    sleep 0.4
    ike_from_a -D
    wait "$ping_pid"
    ping_pid=
    # strongSwan's retransmission (4 s) is in the ping's 6 s; then the
    # DELETEs and the 5 s standby limit.
    sleep 2
    tail -n +"$s_mark" "$sb/charon.log" >"$work/cross-swan.txt"
    tail -n +"$a_mark" "$work/espada-a.log" >"$work/cross-espada.txt"
    grep -E 'Rekeying CHILD_SA|rekey collision|HARD_EXPIRE' "$work/cross-espada.txt"
    grep -q 'rekey collision on inbound SPI' "$work/cross-espada.txt" &&
        grep -Eq 'detected CHILD_REKEY collision with CHILD_REKEY' "$work/cross-swan.txt" &&
        ! grep -q 'HARD_EXPIRE' "$work/cross-espada.txt"
}
cross_no_loss() {
    tail -2 "$work/cross-ping.$round.txt"
    grep -q '^1500 packets transmitted, 1500 received' "$work/cross-ping.$round.txt"
}
# The pair left is the winner's: the peer's new pair when Espada deleted
# its own, Espada's otherwise; strongSwan deleted what Espada did not
# keep (the old pair as winner, its own new one as loser).
cross_agreed() {
    local line theirs ours
    line=$(grep 'rekey collision on inbound SPI' "$work/cross-espada.txt" | tail -1)
    echo "$line"
    grep -E 'collision (won|lost)|redundant child' "$work/cross-swan.txt"
    theirs=$(echo "$line" | grep -Eo "the peer's new pair: 0x[0-9A-F]+" | grep -Eo '0x[0-9A-F]+')
    show_to "$work/ipsec.txt" a show crypto ipsec sa >/dev/null || return 1
    ours=$(grep -A1 'inbound esp sas:' "$work/ipsec.txt" | grep -Eo 'spi: 0x[0-9A-F]+' | grep -Eo '0x[0-9A-F]+')
    echo "Espada's inbound SPI now: $ours; the peer's new pair: $theirs"
    [ -n "$theirs" ] && [ -n "$ours" ] || return 1
    if echo "$line" | grep -q 'deleting our new pair'; then
        cross_outcomes="$cross_outcomes lost"
        [ "$ours" = "$theirs" ] && grep -q 'CHILD_SA rekey collision won' "$work/cross-swan.txt"
    else
        cross_outcomes="$cross_outcomes won"
        [ "$ours" != "$theirs" ] &&
            grep -Eq 'CHILD_SA rekey collision lost|collision, deleting redundant child' "$work/cross-swan.txt"
    fi
}
cross_one_pair() {
    local ours theirs
    show_to "$work/ipsec.txt" a show crypto ipsec sa >/dev/null || return 1
    ours=$(grep -Eo 'current outbound spi: 0x[0-9A-F]+' "$work/ipsec.txt" | grep -Eo '0x[0-9A-F]+' | tr 'A-F' 'a-f')
    swan_list_sas "$B" "$sb" --ike vpn4 --raw >"$work/raw.txt" || return 1
    theirs=$(grep -Eo 'lan4-[0-9]+ \{[^}]*state=INSTALLED[^}]*spi-in=[0-9a-f]+' "$work/raw.txt" |
        grep -Eo 'spi-in=[0-9a-f]+' | cut -d= -f2)
    echo "Espada's outbound SPIs: $ours; strongSwan's INSTALLED lan4 inbound SPIs: $theirs"
    [ "$(echo "$ours" | wc -w)" = 1 ] && [ "$(echo "$theirs" | wc -w)" = 1 ] && [ "$ours" = "0x$theirs" ]
}
cross_outcomes=
for round in 1 2; do
    check "round $round: Espada's and strongSwan's CHILD_SA rekeys of one pair cross" crossed_rekeys
    check "round $round: both agree which made the redundant pair, and keep the other" cross_agreed
    check "round $round: no ping lost (1500 in 6 s)" cross_no_loss
    check "round $round: one pair left on each side, the same one" cross_one_pair
    check "round $round: traffic passes on it" pings lan_a 5 198.19.2.10
done
echo "crossed CHILD_SA rekeys, Espada's outcomes:$cross_outcomes"
check "Espada counts the crossings" espada_stat "CHILD_SA rekeys crossing the peer's" 2
swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1
asym_variant() {
    swan_variant asym "/^secrets {/,\$d" || return 1
    cat >>"$work/asym.conf" <<'EOS'
secrets {
    # strongSwan signs with this one (both IDs match): Espada's "remote".
    ike-b-to-a {
        id-local = 198.18.1.1
        id-remote = 198.18.0.1
        secret = lab-key-from-b
    }
    # Espada's "local": strongSwan verifies Espada's AUTH with it.
    ike-a-to-b {
        id-remote = 198.18.0.1
        secret = lab-key-from-a
    }
    ike-vpn6 {
        id-local = fd00:2::1
        id-remote = fd00:1::1
        secret = espada-lab-psk6
    }
}
EOS
    sed -e 's/pre-shared-key local espada-lab-psk$/pre-shared-key local lab-key-from-a/' \
        -e 's/pre-shared-key remote espada-lab-psk$/pre-shared-key remote lab-key-from-b/' \
        "$A_CONF" >"$work/asym-a.conf"
    grep -q 'local lab-key-from-a' "$work/asym-a.conf" && grep -q 'remote lab-key-from-b' "$work/asym-a.conf"
}
check "asymmetric-key configs for both sides" asym_variant
stop_gateway a
start_a "$work/asym-a.conf" || exit 1
swan_load "$B" "$sb" "$work/asym.conf" >/dev/null
check "asymmetric keys: Espada initiates, ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
check "asymmetric keys: strongSwan has vpn4 up" swan_up vpn4 lan4
swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1
sleep 0.5
check "asymmetric keys: strongSwan initiates, Espada responds" swan_initiate "$B" "$sb" lan4
check "asymmetric keys: ping lan_b -> lan_a passes" pings lan_b 10 198.19.1.10
swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1

# A wrong "remote" key on Espada: strongSwan's AUTH does not verify.
stop_gateway a
sed 's/pre-shared-key remote lab-key-from-b$/pre-shared-key remote wrong-lab-key/' \
    "$work/asym-a.conf" >"$work/wrong-a.conf"
start_a "$work/wrong-a.conf" || exit 1
swan_refused() { ! swan_initiate "$B" "$sb" lan4 8; }
check "with a wrong key strongSwan cannot initiate" swan_refused
check "strongSwan was told AUTHENTICATION_FAILED" grep -q "received AUTHENTICATION_FAILED notify error" "$sb/charon.log"
check "Espada counts the authentication failure" espada_stat "authentication failures" 1
check "Espada has no SA with gw_b" no_pair_with 198.18.1.1

# 10. FQDN identities: strongSwan is gw-b.espada.lab, Espada says
# "identity local fqdn gw-a.espada.lab", its profile matches the remote
# identity by FQDN and its keyring peer names it with "identity fqdn" (the
# responder finds the key by identity first, IOS).
fqdn_variant() {
    swan_variant fqdn "s/^\( *id = \)198.18.1.1$/\1gw-b.espada.lab/" \
        "s/^\( *id = \)198.18.0.1$/\1gw-a.espada.lab/" "/^secrets {/,\$d" || return 1
    cat >>"$work/fqdn.conf" <<'EOS'
secrets {
    ike-fqdn {
        id-local = gw-b.espada.lab
        id-remote = gw-a.espada.lab
        secret = espada-lab-fqdn-key
    }
}
EOS
    sed -e 's/^ match identity remote address 198.18.1.1 255.255.255.255$/ match identity remote fqdn gw-b.espada.lab\n identity local fqdn gw-a.espada.lab/' \
        -e 's/^  address 198.18.1.1$/  address 198.18.1.1\n  identity fqdn gw-b.espada.lab/' \
        -e 's/ espada-lab-psk$/ espada-lab-fqdn-key/' \
        "$A_CONF" >"$work/fqdn-a.conf"
    grep -q '^ identity local fqdn gw-a.espada.lab$' "$work/fqdn-a.conf" &&
        grep -q '^  identity fqdn gw-b.espada.lab$' "$work/fqdn-a.conf" &&
        [ "$(grep -c 'espada-lab-fqdn-key' "$work/fqdn-a.conf")" = 2 ] &&
        grep -q 'id = gw-b.espada.lab' "$work/fqdn.conf"
}
swan_fqdn_up() {
    swan_up vpn4 lan4 >/dev/null || { cat "$work/sas.txt"; return 1; }
    grep -E "'gw-(a|b).espada.lab'" "$work/sas.txt"
    grep -q "'gw-b.espada.lab' @ 198.18.1.1" "$work/sas.txt" &&
        grep -q "'gw-a.espada.lab' @ 198.18.0.1" "$work/sas.txt"
}
espada_ids() { # Yes|No: who initiated
    show_to "$work/ikev2-fqdn.txt" a show crypto ikev2 sa detailed >/dev/null || return 1
    grep -E '^ *(Local|Remote) id:|Initiator of SA' "$work/ikev2-fqdn.txt"
    grep -q 'Local id: gw-a.espada.lab' "$work/ikev2-fqdn.txt" &&
        grep -q 'Remote id: gw-b.espada.lab' "$work/ikev2-fqdn.txt" &&
        grep -q "Initiator of SA : $1" "$work/ikev2-fqdn.txt"
}
check "FQDN identities: configs for both sides" fqdn_variant
stop_gateway a
start_a "$work/fqdn-a.conf" || exit 1
swan_fresh "$work/fqdn.conf"
check "FQDN identities: Espada initiates, ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
check "FQDN identities: strongSwan has vpn4 up between gw-b.espada.lab and gw-a.espada.lab" swan_fqdn_up
check "FQDN identities: Espada shows Local id gw-a.espada.lab, Remote id gw-b.espada.lab (initiator)" espada_ids Yes
swan_terminate "$B" "$sb" vpn4 >/dev/null 2>&1
sleep 0.5
check "FQDN identities: strongSwan initiates, Espada responds" swan_initiate "$B" "$sb" lan4
check "FQDN identities: ping lan_b -> lan_a passes" pings lan_b 10 198.19.1.10
check "FQDN identities: Espada shows both identities as responder" espada_ids No
check "FQDN identities: Espada chose profile PROF and the key by identity" \
    grep -q "Choosing IKE profile PROF; getting preshared key by identity gw-b.espada.lab" "$work/espada-a.log"

# 9. NAT-T: a fresh lab with gw_a behind the wan router's NAT.
swan_stop "$B" "$sb"
stop_gateways
deploy/lab.sh down --prefix "$prefix" >/dev/null 2>&1
deploy/lab.sh up --prefix "$prefix" >/dev/null || exit 1
# gw_a's outside address becomes wan's 198.18.1.254 on the way to gw_b.
in_ns wan iptables -t nat -A POSTROUTING -s 198.18.0.0/24 -o wan-b -j MASQUERADE
swan_gateway_setup "$B"
sb="$work/swan-b3"
check "NAT: strongSwan starts on gw_b" swan_start b "$B" "$sb"
# strongSwan sees Espada as the NAT's address; Espada's ID is still its own.
check "NAT: strongSwan config accepting gw_a from any address" \
    swan_variant nat "s/^\( *remote_addrs = \)198.18.0.1/\1%any/"
swan_load "$B" "$sb" "$work/nat.conf" >/dev/null
start_a "$A_CONF" || exit 1
check "NAT: Espada initiates from behind the NAT; ping lan_a -> lan_b passes" pings lan_a 10 198.19.2.10
nat_seen() {
    show_to "$work/ikev2-nat.txt" a show crypto ikev2 sa detailed || return 1
    grep -q "NAT-T is detected" "$work/ikev2-nat.txt" &&
        ! grep -q "NAT-T is not detected" "$work/ikev2-nat.txt" &&
        grep -Eq "198.18.1.1/4500 +none/none +READY" "$work/ikev2-nat.txt"
}
check "NAT: Espada's IKE SA (detailed) says NAT-T is detected, IKE moved to 4500" nat_seen
swan_sees_nat() {
    swan_list_sas "$B" "$sb" --ike vpn4 >"$work/sas.txt"
    cat "$work/sas.txt"
    grep -q '198.18.1.254\[4500\]' "$work/sas.txt"
}
check "NAT: strongSwan sees gw_a at the NAT's address" swan_sees_nat
check "NAT: ping lan_b -> lan_a passes" pings lan_b 10 198.19.1.10
check "NAT: iperf3 TCP lan_a -> lan_b" iperf_from lan_b 198.19.2.10

lab_end
