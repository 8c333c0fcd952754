#!/usr/bin/env python3
"""Independent fragmentation for Espada's reassembly cross-check
(tests/scapy_reassembly.rs).

Reads a JSON list of cases {"id", "v6", "esp_len", "fragsize"} on stdin.
For each builds an ESP packet from 198.18.1.1 (fd00:2::1) to 198.18.0.1
(fd00:1::1) with scapy, "esp_len" bytes of ESP (SPI, sequence number and
patterned data), and cuts it with scapy's fragment() (IPv4, fragsize
bytes of data per fragment) or fragment6() (IPv6, fragments of at most
fragsize bytes); writes a JSON list of {"id", "packet": hex,
"fragments": [hex, ...]} on stdout.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

from scapy.layers.inet import IP, fragment  # noqa: E402
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6  # noqa: E402
from scapy.layers.ipsec import ESP  # noqa: E402
from scapy.packet import Raw  # noqa: E402


def esp(n):
    data = bytes((i * 7 + i // 251) % 256 for i in range(n - 8))
    return ESP(spi=0x1000, seq=1) / Raw(data)


def cut(case):
    body = esp(case["esp_len"])
    if case["v6"]:
        ip6 = IPv6(src="fd00:2::1", dst="fd00:1::1", hlim=64)
        whole = IPv6(bytes(ip6 / body))
        frags = fragment6(ip6 / IPv6ExtHdrFragment(id=0x5A5A) / body, case["fragsize"])
    else:
        whole = IP(bytes(IP(src="198.18.1.1", dst="198.18.0.1", ttl=64, id=0x1234) / body))
        frags = fragment(whole, fragsize=case["fragsize"])
    return {
        "id": case["id"],
        "packet": bytes(whole).hex(),
        "fragments": [bytes(f).hex() for f in frags],
    }


def main():
    json.dump([cut(case) for case in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
