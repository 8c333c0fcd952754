#!/usr/bin/env python3
"""Independent packet builder and checker for Espada's NAT cross-check.

Reads a JSON list of operations on stdin and writes a JSON list with one
result per operation on stdout:

  {"build": SPEC}  -> {"hex": packet built by scapy}
  {"check": HEX}   -> what scapy reads in the packet: addresses, ports or
                      echo identifier, and whether each checksum verifies,
                      computed here with scapy's own checksum code, never
                      with Espada's; for ICMP errors, the same for the
                      quoted packet.

SPEC kinds: udp, tcp, echo (a new packet), reply (the answer a remote end
gives to a packet), error (an ICMP error quoting given bytes).
"""
import json
import socket
import sys
import warnings

warnings.filterwarnings("ignore")

from scapy.layers.inet import ICMP, IP, TCP, UDP, in4_chksum  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import checksum  # noqa: E402


def ip(spec):
    return IP(src=spec["src"], dst=spec["dst"], id=0x4242, flags="DF", ttl=64)


def build(spec):
    kind = spec["kind"]
    payload = bytes.fromhex(spec.get("payload", ""))
    if kind == "udp":
        p = ip(spec) / UDP(sport=spec["sport"], dport=spec["dport"]) / Raw(payload)
        if not spec["checksum"]:
            p[UDP].chksum = 0
    elif kind == "tcp":
        options = []
        if spec.get("options"):
            options = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)),
                       ("NOP", None), ("WScale", 7)]
        p = ip(spec) / TCP(sport=spec["sport"], dport=spec["dport"], flags=spec["flags"],
                           seq=1000, ack=0, options=options) / Raw(payload)
    elif kind == "echo":
        p = ip(spec) / ICMP(type=spec["type"], id=spec["id"], seq=spec["seq"]) / Raw(payload)
    elif kind == "reply":
        q = IP(bytes.fromhex(spec["packet"]))
        back = IP(src=q.dst, dst=q.src, id=0x1111, ttl=57)
        if UDP in q:
            p = back / UDP(sport=q[UDP].dport, dport=q[UDP].sport) / Raw(b"answer")
        elif TCP in q:
            p = back / TCP(sport=q[TCP].dport, dport=q[TCP].sport, flags="SA",
                           seq=5000, ack=q[TCP].seq + 1)
        else:
            p = back / ICMP(type=0, id=q[ICMP].id, seq=q[ICMP].seq) / Raw(q[Raw].load)
    elif kind == "error":
        p = IP(src=spec["src"], dst=spec["dst"], ttl=250) / \
            ICMP(type=spec["type"], code=spec["code"]) / Raw(bytes.fromhex(spec["quote"]))
    else:
        raise ValueError(kind)
    return {"hex": bytes(p).hex()}


def transport(proto, layer_bytes):
    """Ports, or the echo identifier, read straight from the bytes."""
    if proto in (6, 17) and len(layer_bytes) >= 4:
        return {"sport": int.from_bytes(layer_bytes[0:2], "big"),
                "dport": int.from_bytes(layer_bytes[2:4], "big")}
    if proto == 1 and len(layer_bytes) >= 8 and layer_bytes[0] in (0, 8):
        return {"type": layer_bytes[0], "id": int.from_bytes(layer_bytes[4:6], "big")}
    return {}


def l4_ok(proto, ip_layer, l4):
    if proto == 17 and int.from_bytes(l4[6:8], "big") == 0:
        return "none"
    if proto in (6, 17):
        return in4_chksum(proto, ip_layer, l4) == 0
    if proto == 1:
        return checksum(l4) == 0
    return None


def rebuilt_equal(raw):
    """Second opinion: scapy recomputes the checksums it is asked to and
    must produce the same bytes."""
    p = IP(raw)
    del p.chksum
    for layer in (TCP, UDP, ICMP):
        if layer in p and not (layer is UDP and p[UDP].chksum == 0):
            del p[layer].chksum
            break
    return bytes(p) == raw


def check(raw):
    p = IP(raw)
    ihl = p.ihl * 4
    l4 = raw[ihl:p.len]
    out = {"src": p.src, "dst": p.dst, "proto": p.proto,
           "ip_ok": checksum(raw[:ihl]) == 0,
           "l4_ok": l4_ok(p.proto, p, l4),
           "rebuilt_equal": rebuilt_equal(raw[:p.len])}
    out.update(transport(p.proto, l4))
    if p.proto == 1 and l4[0] in (3, 11, 12):
        out["type"] = l4[0]
        quote = l4[8:]
        q = p[ICMP].payload  # scapy's IPerror
        qihl = (quote[0] & 0x0F) * 4
        quoted = {"src": q.src, "dst": q.dst, "proto": q.proto,
                  "src_bytes": socket.inet_ntoa(quote[12:16]),
                  "ip_ok": checksum(quote[:qihl]) == 0,
                  "complete": len(quote) == q.len}
        quoted.update(transport(q.proto, quote[qihl:]))
        if quoted["complete"]:
            quoted["l4_ok"] = l4_ok(q.proto, q, quote[qihl:])
        out["quoted"] = quoted
    return out


def main():
    ops = json.load(sys.stdin)
    results = []
    for op in ops:
        if "build" in op:
            results.append(build(op["build"]))
        else:
            results.append(check(bytes.fromhex(op["check"])))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
