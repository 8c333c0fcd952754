#!/usr/bin/env python3
"""Decrypts captured ESP with tshark, using the keys of an Espada (IOS
ipsec-manual) config, and checks that the inner packets are the ICMP echo
requests that were sent.

    tshark_esp_check.py PCAP CONFIG INNER_SRC INNER_DST COUNT

tshark is the independent decoder: it gets only the SPIs, algorithms and
keys, written to a private Wireshark profile's ESP SA table.
"""
import os
import re
import subprocess
import sys
import tempfile

ENC = {
    ("esp-aes", "128"): "AES-CBC [RFC3602]",
    ("esp-aes", ""): "AES-CBC [RFC3602]",
    ("esp-aes", "256"): "AES-CBC [RFC3602]",
    ("esp-3des", ""): "TripleDES-CBC [RFC2451]",
    ("esp-des", ""): "DES-CBC [RFC2405]",
    ("esp-gcm", ""): "AES-GCM with 16 octet ICV [RFC4106]",
    ("esp-gcm", "128"): "AES-GCM with 16 octet ICV [RFC4106]",
    ("esp-gcm", "256"): "AES-GCM with 16 octet ICV [RFC4106]",
    ("esp-null", ""): "NULL",
}
AUTH = {
    "esp-sha-hmac": "HMAC-SHA-1-96 [RFC2404]",
    "esp-md5-hmac": "HMAC-MD5-96 [RFC2403]",
    "esp-sha256-hmac": "HMAC-SHA-256-128 [RFC4868]",
    "esp-sha384-hmac": "HMAC-SHA-384-192 [RFC4868]",
    "esp-sha512-hmac": "HMAC-SHA-512-256 [RFC4868]",
    None: "NULL",
}


def sa_rows(config):
    """One row per session key of every ipsec-manual crypto map entry."""
    text = open(config).read()
    transforms = {}
    for m in re.finditer(r"^crypto ipsec transform-set (\S+) (.*)$", text, re.M):
        words = m.group(2).split()
        enc, bits, auth = None, "", None
        for i, w in enumerate(words):
            if w in ("esp-aes", "esp-3des", "esp-des", "esp-gcm", "esp-null"):
                enc = w
                if i + 1 < len(words) and words[i + 1].isdigit():
                    bits = words[i + 1]
            elif w.endswith("-hmac"):
                auth = w
        transforms[m.group(1)] = (enc, bits, auth)
    rows = []
    blocks = re.split(r"^(?=crypto map )", text, flags=re.M)
    local = None
    for b in blocks:
        if not b.startswith("crypto map") or "ipsec-manual" not in b.splitlines()[0]:
            continue
        peer = re.search(r"set peer (\S+)", b).group(1)
        ts = re.search(r"set transform-set (\S+)", b).group(1)
        enc, bits, auth = transforms[ts]
        for m in re.finditer(
            r"set session-key (inbound|outbound) esp (\d+) cipher ([0-9a-fA-F]+)"
            r"(?: authenticator ([0-9a-fA-F]+))?",
            b,
        ):
            rows.append((m.group(1), peer, int(m.group(2)), ENC[(enc, bits)], m.group(3),
                         AUTH[auth], m.group(4) or ""))
    return rows


def main():
    pcap, config, src, dst, count = sys.argv[1:6]
    count = int(count)
    rows = sa_rows(config)
    if not rows:
        sys.exit(f"no session keys in {config}")
    home = tempfile.mkdtemp()
    wdir = os.path.join(home, ".config", "wireshark")
    os.makedirs(wdir)
    with open(os.path.join(wdir, "esp_sa"), "w") as f:
        for direction, peer, spi, enc, ekey, auth, akey in rows:
            fam = "IPv6" if ":" in peer else "IPv4"
            # Outbound SAs go to the peer; inbound come from it. The
            # address fields accept "*" as a wildcard.
            s, d = ("*", peer) if direction == "outbound" else (peer, "*")
            f.write(f'"{fam}","{s}","{d}","0x{spi:08x}","{enc}","0x{ekey}","{auth}","0x{akey}"\n')
    out = subprocess.run(
        ["tshark", "-r", pcap, "-o", "esp.enable_encryption_decode:TRUE",
         "-o", "esp.enable_authentication_check:TRUE",
         "-Y", "esp && icmp.type == 8", "-T", "fields",
         "-e", "esp.spi", "-e", "ip.src", "-e", "ip.dst", "-e", "esp.icv_good", "-e", "data.data"],
        env=dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config")),
        capture_output=True, text=True,
    )
    if out.returncode != 0:
        sys.exit(f"tshark failed: {out.stderr}")
    good = 0
    for line in out.stdout.splitlines():
        print(line)
        f = line.split("\t")
        # ip.src/ip.dst list the outer then the inner addresses.
        srcs, dsts = f[1].split(","), f[2].split(",")
        if len(srcs) >= 2 and srcs[-1] == src and dsts[-1] == dst:
            good += 1
    print(f"{good} decrypted ICMP echo requests {src} -> {dst}")
    sys.exit(0 if good >= count else 1)


if __name__ == "__main__":
    main()
