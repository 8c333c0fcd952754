#!/usr/bin/env bash
# Installs everything Espada's build and tests need on Debian, then builds the
# workspace in release mode. Idempotent and quick when all is already there:
# packages are checked with dpkg before apt runs, cargo only rebuilds changes.
#
#   deploy/setup.sh            install + release build
#   ESPADA_SKIP_BUILD=1 ...    install only
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "deploy/setup.sh installs Debian packages: run it as root (sudo deploy/setup.sh)" >&2
    exit 1
fi

# Build: clang/llvm/libelf/zlib/pkg-config/m4/libpcap for the C XDP program,
# libssl-dev for the OpenSSL-backed 3DES/DES/MD5/SHA-512 code. Tests: scapy
# + cryptography (independent ESP decoder), tshark (ESP/IKE dissection), iperf3 and ping for the lab,
# iproute2 for namespaces, iptables for the lab's NAT box (conntrack to make it forget
# its mappings, as a rebooted NAT does), openssl for the benchmark baseline.
# strongSwan is the IKE interop peer in the lab (deploy/lib/strongswan.sh): the
# kernel has no ESP, so charon runs with kernel-libipsec (libcharon-extra-plugins);
# libstrongswan-standard-plugins brings the openssl plugin (3DES, MODP, AES-GCM),
# which --no-install-recommends would otherwise leave out.
PACKAGES=(
    build-essential clang llvm libelf-dev zlib1g-dev pkg-config m4 libpcap-dev libssl-dev
    python3 python3-scapy python3-cryptography tshark
    iperf3 iputils-ping iproute2 iptables conntrack ethtool openssl ca-certificates
    strongswan strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins
)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer it up front.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "Debian packages present"
fi

# The lab starts its own charons, one per gateway namespace, each with its
# own strongswan.conf; a system-wide charon in the root namespace would only
# get in the way. Debian enables strongswan-starter (ipsec.service): disable
# it, and stop it where systemd runs (in a container policy-rc.d usually kept
# it from starting at all).
if [ -f /lib/systemd/system/strongswan-starter.service ] && command -v systemctl >/dev/null 2>&1; then
    if [ "$(systemctl is-enabled strongswan-starter.service 2>/dev/null || true)" = enabled ]; then
        log "disabling the system-wide strongswan-starter service"
        systemctl disable strongswan-starter.service >/dev/null 2>&1 || true
    fi
    if [ -d /run/systemd/system ]; then
        systemctl stop strongswan-starter.service >/dev/null 2>&1 || true
    fi
fi
if [ -x /etc/init.d/ipsec ] && command -v update-rc.d >/dev/null 2>&1 && ls /etc/rc[2-5].d/S*ipsec >/dev/null 2>&1; then
    update-rc.d ipsec disable >/dev/null 2>&1 || true
fi

# The Rust toolchain comes with the machine (rustup); make it visible to
# non-login shells such as CI.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install a Rust toolchain (rustup) first" >&2
    exit 1
fi

# cargo-fuzz drives the parser fuzz targets in deploy/test.sh (nightly).
if rustup toolchain list 2>/dev/null | grep -q nightly; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        log "installing cargo-fuzz"
        cargo install --quiet --locked cargo-fuzz
    fi
fi

if [ "${ESPADA_SKIP_BUILD:-0}" != 1 ]; then
    log "building the workspace (release)"
    cargo build --release --workspace --quiet
    log "built: $(ls target/release/espada target/release/espada-dataplane target/release/espada-bench | tr '\n' ' ')"
fi
