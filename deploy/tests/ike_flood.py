#!/usr/bin/env python3
"""Sends COUNT hostile datagrams at an IKE responder: random bytes, and
copies of real IKE messages (hex, one per line in SEEDS) with bytes flipped,
truncated or extended; on UDP 500 as they are and on UDP 4500 behind the
non-ESP marker. Bounded in count; prints what it sent.

usage: ike_flood.py TARGET SEEDS COUNT
"""
import random
import socket
import sys

target, seeds_file, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
seeds = [bytes.fromhex(l.strip().replace(":", "")) for l in open(seeds_file) if l.strip()]
family = socket.AF_INET6 if ":" in target else socket.AF_INET
rng = random.Random(0x1CE)
s500 = socket.socket(family, socket.SOCK_DGRAM)
s4500 = socket.socket(family, socket.SOCK_DGRAM)
sent = {"random": 0, "mutated": 0}
for i in range(count):
    if not seeds or i % 3 == 0:
        msg = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400)))
        kind = "random"
    else:
        msg = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 6)):
            msg[rng.randrange(len(msg))] ^= rng.randrange(1, 256)
        r = rng.random()
        if r < 0.2:
            msg = msg[: rng.randrange(len(msg) + 1)]
        elif r < 0.3:
            msg += bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 64)))
        msg = bytes(msg)
        kind = "mutated"
    try:
        if i % 2:
            s4500.sendto(b"\0\0\0\0" + msg, (target, 4500))
        else:
            s500.sendto(msg, (target, 500))
        sent[kind] += 1
    except OSError:
        pass
print(f"sent {sent['random']} random and {sent['mutated']} mutated datagrams to {target}")
