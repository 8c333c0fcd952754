#!/usr/bin/env python3
"""Independent reader of espada-bench gen's frames (bench/src/gen/frame.rs).

Reads a JSON list of hex Ethernet frames on stdin and writes a JSON list
with what scapy reads in each: addresses, ports, lengths, the probe fields,
and whether the IPv4 header and UDP/TCP checksums verify, computed here
with scapy's own code (the frame rebuilt with the checksums deleted),
never with Espada's.
"""
import json
import struct
import sys
import warnings

warnings.filterwarnings("ignore")

from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402


def recomputed(pkt, layer):
    """The checksum scapy computes for `layer` of `pkt`."""
    p = pkt.copy()
    del p[layer].chksum
    return Ether(bytes(p))[layer].chksum


def check(hexframe):
    raw = bytes.fromhex(hexframe)
    pkt = Ether(raw)
    out = {"len": len(raw)}
    if IP in pkt:
        ip = pkt[IP]
        out.update(family=4, src=ip.src, dst=ip.dst, ip_len=ip.len, df=bool(ip.flags.DF),
                   ip_checksum_ok=ip.chksum == recomputed(pkt, IP))
    elif IPv6 in pkt:
        ip = pkt[IPv6]
        out.update(family=6, src=ip.src, dst=ip.dst, ip_len=ip.plen + 40)
    else:
        return {"error": "neither IPv4 nor IPv6"}
    l4 = UDP if UDP in pkt else TCP if TCP in pkt else None
    if l4 is None:
        return {"error": "neither UDP nor TCP"}
    seg = pkt[l4]
    out.update(proto=l4.__name__.lower(), sport=seg.sport, dport=seg.dport,
               l4_checksum_ok=seg.chksum == recomputed(pkt, l4))
    if l4 is UDP:
        out["udp_len"] = seg.len
    payload = bytes(seg.payload)
    magic, run, flow, seq, tx = struct.unpack("!IHHQQ", payload[:24])
    out.update(magic=magic, run=run, flow=flow, seq=str(seq), tx_ns=str(tx),
               payload_len=len(payload))
    return out


json.dump([check(h) for h in json.load(sys.stdin)], sys.stdout)
