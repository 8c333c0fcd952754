#!/usr/bin/python3
"""Forged TED answers and a probe flood for deploy/tests/lab_ted3.sh.

  ted_forge.py answers IFACE PROBER HOST FORGER OTHER READY_FILE
  ted_forge.py probes HOST PROXY_NET SRC:COUNT...

`answers`, run in the lab's `wan` namespace, waits for the prober's TED probe to a
host (Espada's format, control/src/ike/wire/ikev1/ted.rs: exchange 243,
VID, NONCE, ID gateway, ID local proxy, ID remote proxy), then sends the
prober three answers it must ignore:

  1. the probe's id and nonce, the proxies mirrored, but naming another
     gateway than the address it comes from;
  2. from that other gateway's address (spoofed) and naming it, with the
     probe's id but a wrong nonce;
  3. a probe id the prober never used (matches no outstanding probe).

Prints one line per answer sent; exits 1 if no probe was seen in 20 s.

`probes` sends COUNT well-formed probes from each SRC (naming itself, as
an honest prober does) to HOST, all at once, each with a fresh probe id
and nonce, for PROXY_NET (the prober's side) towards HOST's /16: what a
flooding gateway and then an ordinary one would send.
"""

import os
import socket
import struct
import sys

from scapy.all import IP, UDP, AsyncSniffer, Raw, conf, send

conf.verb = 0
ID = 5
NONCE = 10


def parse(b):
    """ISAKMP header and [type, body] payloads."""
    hdr, nxt, off, pl = bytearray(b[:28]), b[16], 28, []
    while nxt:
        length = struct.unpack("!H", b[off + 2 : off + 4])[0]
        pl.append([nxt, bytearray(b[off + 4 : off + length])])
        nxt, off = b[off], off + length
    return hdr, pl


def build(hdr, pl):
    body = b""
    for i, (t, data) in enumerate(pl):
        nxt = pl[i + 1][0] if i + 1 < len(pl) else 0
        body += struct.pack("!BBH", nxt, 0, len(data) + 4) + bytes(data)
    hdr = bytearray(hdr)
    hdr[16] = pl[0][0]
    hdr[24:28] = struct.pack("!I", 28 + len(body))
    return bytes(hdr) + body


def answer(probe, gateway, new_id=False, bad_nonce=False):
    """The probe turned into a response naming `gateway`."""
    hdr, pl = parse(probe)
    hdr[8:16] = os.urandom(7) + b"\x01"  # responder cookie: non-zero
    if new_id:
        hdr[0:8] = os.urandom(7) + b"\x02"
    for p in pl:
        if p[0] == NONCE and bad_nonce:
            p[1][0] ^= 0xFF
    ids = [p for p in pl if p[0] == ID]
    ids[0][1][4:8] = socket.inet_aton(gateway)
    ids[1][1], ids[2][1] = ids[2][1], ids[1][1]
    return build(hdr, pl)


def probe(gateway, local_net, remote_net):
    """A probe from `gateway` for local_net -> remote_net (a.b.c.d/len)."""

    def subnet(net):
        addr, length = net.split("/")
        mask = (0xFFFFFFFF << (32 - int(length))) & 0xFFFFFFFF
        # ID_IPV4_ADDR_SUBNET (4), protocol 0, port 0.
        return bytearray(struct.pack("!BBH", 4, 0, 0) + socket.inet_aton(addr) + struct.pack("!I", mask))

    hdr = bytearray(os.urandom(7) + b"\x03" + bytes(8) + bytes([0, 0x10, 243, 0]) + bytes(8))
    pl = [
        [13, bytearray(b"Espada TED v1\0\0\0")],
        [NONCE, bytearray(os.urandom(16))],
        # ID_IPV4_ADDR (1), UDP, port 500.
        [ID, bytearray(struct.pack("!BBH", 1, 17, 500) + socket.inet_aton(gateway))],
        [ID, subnet(local_net)],
        [ID, subnet(remote_net)],
    ]
    return build(hdr, pl)


def flood(args):
    host, local_net = args[0], args[1]
    remote_net = ".".join(host.split(".")[:2]) + ".0.0/16"
    packets = []
    for spec in args[2:]:
        src, count = spec.split(":")
        packets += [
            IP(src=src, dst=host) / UDP(sport=500, dport=500) / Raw(probe(src, local_net, remote_net))
            for _ in range(int(count))
        ]
    send(packets)
    print(f"sent {len(packets)} probes to {host}: {' '.join(args[2:])}")
    return 0


def main():
    if sys.argv[1] == "probes":
        return flood(sys.argv[2:])
    iface, prober, host, forger, other, ready = sys.argv[2:8]
    sniffer = AsyncSniffer(
        iface=iface,
        filter=f"udp dst port 500 and src host {prober} and dst host {host}",
        count=1,
        timeout=20,
        started_callback=lambda: open(ready, "w").close(),
    )
    sniffer.start()
    sniffer.join()
    got = sniffer.results or []
    if not got:
        print(f"no probe from {prober} to {host} seen")
        return 1
    probe = bytes(got[0][UDP].payload)
    forged = [
        (forger, answer(probe, other), f"from {forger} naming {other}, right id and nonce"),
        (other, answer(probe, other, bad_nonce=True), f"from {other} (spoofed), wrong nonce"),
        (forger, answer(probe, forger, new_id=True), f"from {forger}, a probe id never used"),
    ]
    for src, data, what in forged:
        send(IP(src=src, dst=prober) / UDP(sport=500, dport=500) / Raw(data))
        print(f"forged TED answer to {prober}: {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
