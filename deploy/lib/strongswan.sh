# shellcheck shell=bash
# Shared by the lab tests: run strongSwan (charon + swanctl) as an IKE peer
# inside one of deploy/lab.sh's gateway namespaces. Source it; it needs no
# variables of its own (the caller passes namespace and directory).
#
#   swan_gateway_setup NS            sysctls a kernel-libipsec gateway needs
#   swan_start SIDE NS DIR           write DIR/strongswan.conf, start charon
#                                    in NS, wait for its vici socket
#   swan_load NS DIR SWANCTL_CONF    load connections and secrets
#   swan_initiate NS DIR CHILD [TIMEOUT_S]  negotiate a CHILD_SA (and its IKE_SA)
#   swan_terminate NS DIR IKE        delete an IKE_SA and its children
#   swan_list_sas NS DIR [ARGS...]   swanctl --list-sas (ARGS e.g. --raw)
#   swan_child_packets NS DIR CHILD  "IN OUT" packet counters of CHILD
#   swan_ctl NS DIR ARGS...          any other swanctl command (bounded by
#                                    $SWAN_CTL_TIMEOUT seconds, 30 by default)
#   swan_stop NS DIR                 stop that charon, clean up after it
#   swan_stop_all                    stop every charon started here
#
# The kernel has no ESP, so charon uses kernel-libipsec: ESP is done in user
# space behind a TUN device `ipsec0`; routes to the remote traffic selectors
# go to table 220, reached by the rule `not fwmark 0x42 lookup 220`, and
# charon's own UDP sockets mark their packets 0x42 so IKE and ESP-in-UDP skip
# that table. strongSwan 5.9.8's kernel-libipsec sends ESP only inside UDP
# (port 4500, RFC 3948): charon fakes the NAT detection payloads so that the
# peer agrees to encapsulate (raw ESP needs 5.9.11 or later). Its libipsec
# raises no acquire either: a trap policy (start_action = trap, swanctl
# --install) routes the first packet into ipsec0, where it is dropped
# ("could not find an outbound IPsec SA") and nothing is negotiated. So
# strongSwan only initiates when told to (swan_initiate); it always responds.
#
# Every charon runs in a private mount namespace with DIR/run bound over
# /var/run (its pid file path is fixed), is recorded by PID in DIR/charon.pid
# and stopped by that PID only.

SWAN_CHARON=${SWAN_CHARON:-/usr/lib/ipsec/charon}
SWAN_SWANCTL=${SWAN_SWANCTL:-swanctl}
SWAN_DIRS=()

swan_uri() { echo "unix://$1/charon.vici"; }

# swan_gateway_setup NS: a gateway that forwards between its LAN and the
# ipsec0 TUN device. Decrypted packets come out of ipsec0 with the remote
# LAN's source address, so strict reverse-path filtering must not drop them.
swan_gateway_setup() {
    local ns=$1
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    [ -c /dev/net/tun ] || { echo "swan: /dev/net/tun is missing (kernel-libipsec needs TUN)" >&2; return 1; }
}

# swan_write_conf SIDE DIR: DIR/strongswan.conf for one charon.
swan_write_conf() {
    local side=$1 dir=$2
    cat >"$dir/strongswan.conf" <<EOF
# strongSwan for the lab's gw_$side (written by deploy/lib/strongswan.sh).
# Nothing from /etc/strongswan.d is included: this charon is self-contained.
charon {
    # The recipe's list, less des and curve25519, which Debian 5.9.8 does not
    # ship as plugins (openssl provides 3DES and X25519 there).
    load = random nonce openssl aes sha1 sha2 md5 hmac gmp gcm kdf kernel-libipsec kernel-netlink socket-default vici updown
    install_routes = yes
    install_virtual_ip = no
    # Keep the default 16 threads: kernel-netlink, kernel-libipsec, the
    # sockets and vici each block some for good; with 8 the vici socket
    # accepts connections but never answers.
    threads = 16
    plugins {
        kernel-netlink {
            # Routing rule "not fwmark 0x42 lookup 220" (table 220 holds the
            # routes into ipsec0).
            fwmark = !0x42
        }
        socket-default {
            # IKE and ESP-in-UDP leave charon marked, so they bypass table 220.
            fwmark = 0x42
        }
        kernel-libipsec {
            # ipsec0's MTU (the plugin's default too).
            mtu = 1400
        }
        vici {
            socket = unix://$dir/charon.vici
        }
    }
    filelog {
        lab {
            path = $dir/charon.log
            time_format = %H:%M:%S
            ike_name = yes
            append = no
            flush_line = yes
            default = 1
            ike = 2
            cfg = 2
            knl = 2
            net = 1
            esp = 1
            chd = 2
        }
    }
}
# swanctl (run with STRONGSWAN_CONF pointing here): only plugins that exist,
# so it does not complain about a dozen missing ones on every call.
swanctl {
    load = random nonce openssl pem pkcs1 pkcs8 x509
    socket = unix://$dir/charon.vici
}
EOF
}

# swan_start SIDE NS DIR: starts charon in namespace NS with DIR as its
# private directory (config, log, vici socket, /var/run). Waits up to 10 s
# for the vici socket to answer.
swan_start() {
    local side=$1 ns=$2 dir=$3 pid _
    mkdir -p "$dir/run"
    dir=$(cd "$dir" && pwd -P)
    if [ -f "$dir/charon.pid" ] && kill -0 "$(cat "$dir/charon.pid")" 2>/dev/null; then
        echo "swan: a charon already runs for $dir (PID $(cat "$dir/charon.pid"))" >&2
        return 1
    fi
    rm -f "$dir/charon.vici" "$dir/run/charon.pid" "$dir/run/charon.ctl"
    swan_write_conf "$side" "$dir"
    # ip netns exec and unshare exec in place and sh execs charon, so $! is
    # charon's own PID. The netns first, then the mount namespace: the other
    # way round /var/run/netns would be gone.
    # shellcheck disable=SC2016 # $1 and $2 are the inner sh's arguments
    STRONGSWAN_CONF="$dir/strongswan.conf" ip netns exec "$ns" \
        unshare -m sh -c 'mount --bind "$1/run" /var/run && exec "$2"' sh "$dir" "$SWAN_CHARON" \
        >"$dir/charon.out" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/charon.pid"
    SWAN_DIRS+=("$ns|$dir")
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "swan: charon for gw_$side ($ns) exited:" >&2
            tail -n 20 "$dir/charon.out" "$dir/charon.log" >&2 2>/dev/null
            return 1
        fi
        if [ -S "$dir/charon.vici" ] &&
            STRONGSWAN_CONF="$dir/strongswan.conf" timeout 5 "$SWAN_SWANCTL" --stats \
                --uri "$(swan_uri "$dir")" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "swan: charon for gw_$side ($ns, PID $pid) did not answer on $dir/charon.vici in 10 s:" >&2
    tail -n 20 "$dir/charon.out" "$dir/charon.log" >&2 2>/dev/null
    return 1
}

# swan_ctl NS DIR ARGS...: swanctl against the charon of DIR. The vici
# socket is a file, so swanctl would work from any namespace; it runs in NS
# to keep every lab command inside the lab.
swan_ctl() {
    local ns=$1 dir=$2
    shift 2
    STRONGSWAN_CONF="$dir/strongswan.conf" timeout "${SWAN_CTL_TIMEOUT:-30}" \
        ip netns exec "$ns" "$SWAN_SWANCTL" "$@" --uri "$(swan_uri "$dir")"
}

# swan_load NS DIR SWANCTL_CONF: loads connections and secrets (replacing
# those loaded before; established SAs stay). swanctl looks for credential
# directories (x509, private, ...) next to the file it loads, so the file is
# copied to DIR/swanctl/ with those, empty: no certificates in the lab, and
# the copy stays with the logs.
swan_load() {
    local ns=$1 dir=$2 conf=$3 d
    for d in x509 x509ca x509ocsp x509aa x509ac x509crl pubkey private rsa ecdsa bliss pkcs8 pkcs12; do
        mkdir -p "$dir/swanctl/$d"
    done
    install -m 600 "$conf" "$dir/swanctl/swanctl.conf"
    swan_ctl "$ns" "$dir" --load-all --noprompt --file "$dir/swanctl/swanctl.conf"
}

# swan_initiate NS DIR CHILD [TIMEOUT_S]: negotiates CHILD (and its IKE_SA
# if none is up); fails if it is not established within TIMEOUT_S (10).
swan_initiate() {
    local ns=$1 dir=$2 child=$3 t=${4:-10}
    swan_ctl "$ns" "$dir" --initiate --child "$child" --timeout "$t"
}

# swan_terminate NS DIR IKE: deletes the IKE_SA named IKE (and its children).
swan_terminate() {
    swan_ctl "$1" "$2" --terminate --ike "$3" --timeout 5
}

swan_list_sas() {
    local ns=$1 dir=$2
    shift 2
    swan_ctl "$ns" "$dir" --list-sas "$@"
}

# swan_child_packets NS DIR CHILD: prints "IN OUT", the packet counters of
# the installed CHILD_SA named CHILD (summed if there are several).
swan_child_packets() {
    swan_list_sas "$1" "$2" --child "$3" --raw |
        grep -Eo 'packets-(in|out)=[0-9]+' |
        awk -F= '/packets-in/ {i += $2} /packets-out/ {o += $2} END {print i + 0, o + 0}'
}

# swan_stop NS DIR: stops the charon recorded in DIR/charon.pid (SIGTERM,
# then SIGKILL after 5 s), then removes what a killed charon leaves in NS:
# the ipsec0 device, the routes of table 220 and the rule that leads there.
swan_stop() {
    local ns=$1 dir=$2 pid _
    if [ -f "$dir/charon.pid" ]; then
        pid=$(cat "$dir/charon.pid")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                echo "swan: charon PID $pid ignored SIGTERM for 5 s, killing it" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        wait "$pid" 2>/dev/null || true
        rm -f "$dir/charon.pid"
    fi
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
        if ip netns exec "$ns" ip link show ipsec0 >/dev/null 2>&1; then
            ip netns exec "$ns" ip link del ipsec0 2>/dev/null || true
        fi
        local fam
        for fam in -4 -6; do
            ip netns exec "$ns" ip "$fam" route flush table 220 2>/dev/null || true
            for _ in 1 2 3 4; do
                ip netns exec "$ns" ip "$fam" rule del table 220 2>/dev/null || break
            done
        done
    fi
}

# swan_stop_all: every charon swan_start started in this shell.
swan_stop_all() {
    local e
    for e in "${SWAN_DIRS[@]}"; do
        swan_stop "${e%%|*}" "${e#*|}"
    done
    SWAN_DIRS=()
}
