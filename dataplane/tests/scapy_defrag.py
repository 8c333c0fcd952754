#!/usr/bin/env python3
"""Independent IPv4 reassembly for Espada's fragmentation cross-check
(tests/scapy_fragment.rs).

Reads a JSON list of cases {"id", "fragments": [hex, ...]} on stdin. For
each case checks every fragment's header checksum with scapy's checksum()
and reassembles the fragments with scapy's defragment(); writes a JSON list
of {"id", "bad_checksums": [fragment index, ...], "packets": [hex, ...]}
on stdout, "packets" being what defragment() returns (one packet when the
fragments reassemble, the fragments themselves when they do not).
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore")

from scapy.layers.inet import IP, defragment  # noqa: E402
from scapy.utils import checksum  # noqa: E402


def check(case):
    frags = [bytes.fromhex(h) for h in case["fragments"]]
    bad = [i for i, f in enumerate(frags) if checksum(f[: (f[0] & 0x0F) * 4]) != 0]
    whole = defragment([IP(f) for f in frags])
    return {
        "id": case["id"],
        "bad_checksums": bad,
        "packets": [bytes(p).hex() for p in whole],
    }


def main():
    json.dump([check(case) for case in json.load(sys.stdin)], sys.stdout)


if __name__ == "__main__":
    main()
