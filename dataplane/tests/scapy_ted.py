#!/usr/bin/env python3
"""Independent frame builder for Espada's TED interception cross-check.

Reads a JSON list of specs on stdin and writes, per spec, the Ethernet
frame scapy builds and what scapy itself reads in it: the source address
and port, the destination, the UDP payload, and whether scapy dissects the
payload as an IKEv1 (ISAKMP version 0x10) message.

Spec fields: family (4 or 6), src, dst, sport, dport, kind:
  probe   ISAKMP header (Identity Protection) + SA, ID and vendor ID payloads
  ikev2   the same bytes with the version byte set to 0x20
  short   the first 27 bytes of a probe
  dns     a DNS query (not IKE)
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.layers.dns import DNS, DNSQR  # noqa: E402
from scapy.layers.isakmp import (  # noqa: E402
    ISAKMP,
    ISAKMP_payload_ID,
    ISAKMP_payload_SA,
    ISAKMP_payload_VendorID,
)
from scapy.packet import Raw  # noqa: E402


def isakmp_probe():
    return bytes(
        ISAKMP(init_cookie=bytes.fromhex("0011223344556677"), exch_type=243)
        / ISAKMP_payload_SA()
        / ISAKMP_payload_ID(IDtype=1, ProtoID=17, Port=500, load=bytes([198, 18, 0, 1]))
        / ISAKMP_payload_VendorID(load=bytes.fromhex("12f5f28c457168a9702d9fe274cc0100"))
    )


def payload(kind):
    if kind == "probe":
        return isakmp_probe()
    if kind == "main-mode":
        p = bytearray(isakmp_probe())
        p[18] = 2
        return bytes(p)
    if kind == "ikev2":
        p = bytearray(isakmp_probe())
        p[17] = 0x20
        return bytes(p)
    if kind == "short":
        return isakmp_probe()[:27]
    if kind == "dns":
        return bytes(DNS(rd=1, qd=DNSQR(qname="espada.example")))
    raise ValueError(kind)


def build(spec):
    l3 = IP(src=spec["src"], dst=spec["dst"], ttl=64) if spec["family"] == 4 else IPv6(
        src=spec["src"], dst=spec["dst"], hlim=64
    )
    frame = (
        Ether(src="02:00:00:00:00:fe", dst="02:00:00:00:00:22")
        / l3
        / UDP(sport=spec["sport"], dport=spec["dport"])
        / Raw(payload(spec["kind"]))
    )
    wire = bytes(frame)
    # What scapy reads back from the bytes it built.
    parsed = Ether(wire)
    udp = parsed[UDP]
    data = bytes(udp.payload)
    reread = ISAKMP(data) if len(data) >= 28 else None
    # scapy's reading decides: IKEv1 (version 0x10) in Espada's TED
    # exchange (243).
    is_ted = reread is not None and reread.version == 0x10 and reread.exch_type == 243
    return {
        "hex": wire.hex(),
        "src": parsed[1].src,
        "dst": parsed[1].dst,
        "sport": udp.sport,
        "payload": data.hex(),
        "ted": bool(is_ted and udp.dport == 500),
    }


def main():
    specs = json.load(sys.stdin)
    json.dump([build(s) for s in specs], sys.stdout)


if __name__ == "__main__":
    main()
