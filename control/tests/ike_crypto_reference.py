#!/usr/bin/python3
"""Independent reference for Espada's IKE key exchange and key derivation.

Written from the RFC text (RFC 2409, RFC 3526, RFC 7296) with nothing but
Python's own integers, `hmac` and `hashlib`, and deliberately not from
the Rust code it checks (control/src/ike/crypto/). The Rust unit tests
run it with a JSON array of requests on stdin, e.g.

    [{"op": "prf", "alg": "sha1", "key": "0b0b", "data": "4869"}]

and read a JSON array of answers (hex strings, or lists of them) on stdout.
"""

import hashlib
import hmac
import json
import sys

HASHES = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}


def prf(alg, key, data):
    return hmac.new(key, data, HASHES[alg]).digest()


def prf_plus(alg, key, seed, length):
    # RFC 7296 2.13: T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n).
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = prf(alg, key, t + seed + bytes([n]))
        out += t
        n += 1
    return out[:length]


# --- MODP groups ----------------------------------------------------------
#
# RFC 2409 6.1/6.2 and RFC 3526 2/3 define each prime by a formula:
#   p = 2^n - 2^(n-64) - 1 + 2^64 * { [2^(n-130) pi] + c }
# The primes are rebuilt from that formula here (pi from Machin's formula in
# integers), so a mistyped hex digit in the Rust constants cannot hide.

MODP = {1: (768, 149686), 2: (1024, 129093), 5: (1536, 741804), 14: (2048, 124476)}


def floor_pi_times_2_to(bits):
    guard = 64
    one = 1 << (bits + guard)

    def arctan_inverse(x):
        total = term = one // x
        n, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * n + 1))
            sign, n = -sign, n + 1
        return total

    return (4 * (4 * arctan_inverse(5) - arctan_inverse(239))) >> guard


def is_probable_prime(n, rounds=16):
    if n % 2 == 0:
        return n == 2
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in range(2, 2 + rounds):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


_primes = {}


def modp_prime(group):
    if group not in _primes:
        n, c = MODP[group]
        p = 2**n - 2 ** (n - 64) - 1 + 2**64 * (floor_pi_times_2_to(n - 130) + c)
        # Both RFCs choose safe primes: p and (p-1)/2 are prime.
        if not (is_probable_prime(p) and is_probable_prime((p - 1) // 2)):
            raise SystemExit(f"group {group}: the formula gave a non-safe prime")
        _primes[group] = p
    return _primes[group]


def modp_bytes(group, value):
    # The KE payload and g^xy: big-endian, zero-padded to the prime's length.
    n, _ = MODP[group]
    return value.to_bytes(n // 8, "big")


# --- IKEv1, RFC 2409 ------------------------------------------------------


def v1_skeyid_dae(alg, skeyid, gxy, cky_i, cky_r):
    # Section 5: SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0), then _a
    # and _e each chain the previous one in front.
    d = prf(alg, skeyid, gxy + cky_i + cky_r + b"\x00")
    a = prf(alg, skeyid, d + gxy + cky_i + cky_r + b"\x01")
    e = prf(alg, skeyid, a + gxy + cky_i + cky_r + b"\x02")
    return d, a, e


def v1_encryption_key(alg, skeyid_e, length):
    # Appendix B: SKEYID_e itself when long enough, else Ka = K1 | K2 | ...
    # with K1 = prf(SKEYID_e, 0) (a single zero octet), Kn = prf(SKEYID_e, Kn-1).
    if length <= len(skeyid_e):
        return skeyid_e[:length]
    out, k = b"", b"\x00"
    while len(out) < length:
        k = prf(alg, skeyid_e, k)
        out += k
    return out[:length]


def v1_keymat(alg, skeyid_d, g_qm, protocol, spi, ni_b, nr_b, length):
    # Section 5.5: K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b),
    # Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b).
    tail = g_qm + bytes([protocol]) + spi + ni_b + nr_b
    out, k = b"", b""
    while len(out) < length:
        k = prf(alg, skeyid_d, k + tail)
        out += k
    return out[:length]


# --- IKEv2, RFC 7296 ------------------------------------------------------


def v2_child_keys(alg, sk_d, gir_new, ni, nr, encr, integ):
    # 2.17: KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr); initiator-to-
    # responder keys first, and within a direction encryption before
    # integrity.
    keymat = prf_plus(alg, sk_d, gir_new + ni + nr, 2 * (encr + integ))
    cuts = [encr, integ, encr, integ]
    keys, at = [], 0
    for n in cuts:
        keys.append(keymat[at : at + n])
        at += n
    return keys


def v2_signed_octets(alg, message, nonce, sk_p, id_body):
    # 2.15: RealMessage | Nonce(peer)Data | prf(SK_px, RestOfIDPayload).
    return message + nonce + prf(alg, sk_p, id_body)


def v2_psk_auth(alg, psk, octets):
    # 2.15: AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <octets>).
    return prf(alg, prf(alg, psk, b"Key Pad for IKEv2"), octets)


# --- the request loop -----------------------------------------------------


def answer(r):
    h = lambda name: bytes.fromhex(r.get(name, ""))
    alg, op = r.get("alg"), r["op"]
    if op == "prf":
        return prf(alg, h("key"), h("data"))
    if op == "hash":
        return HASHES[alg](h("data")).digest()
    if op == "prf_plus":
        return prf_plus(alg, h("key"), h("seed"), r["len"])
    if op == "modp_prime":
        return modp_bytes(r["group"], modp_prime(r["group"]))
    if op == "modp_public":
        p = modp_prime(r["group"])
        return modp_bytes(r["group"], pow(2, int.from_bytes(h("x"), "big"), p))
    if op == "modp_shared":
        p = modp_prime(r["group"])
        x, y = int.from_bytes(h("x"), "big"), int.from_bytes(h("y"), "big")
        return modp_bytes(r["group"], pow(y, x, p))
    if op == "v1_skeyid_psk":
        # Section 5: SKEYID = prf(pre-shared-key, Ni_b | Nr_b).
        return prf(alg, h("psk"), h("ni_b") + h("nr_b"))
    if op == "v1_skeyid_dae":
        return list(v1_skeyid_dae(alg, h("skeyid"), h("gxy"), h("cky_i"), h("cky_r")))
    if op == "v1_encryption_key":
        return v1_encryption_key(alg, h("skeyid_e"), r["len"])
    if op == "v1_phase1_iv":
        # Appendix B: hash(g^xi | g^xr), as long as the cipher's block.
        return HASHES[alg](h("gxi") + h("gxr")).digest()[: r["block"]]
    if op == "v1_phase2_iv":
        # Appendix B: hash(last phase 1 CBC block | M-ID), M-ID as sent.
        mid = r["mid"].to_bytes(4, "big")
        return HASHES[alg](h("last_block") + mid).digest()[: r["block"]]
    if op == "v1_hash_i":
        # Section 5: HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
        return prf(
            alg,
            h("skeyid"),
            h("gxi") + h("gxr") + h("cky_i") + h("cky_r") + h("sai_b") + h("id_b"),
        )
    if op == "v1_hash_r":
        # HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
        return prf(
            alg,
            h("skeyid"),
            h("gxr") + h("gxi") + h("cky_r") + h("cky_i") + h("sai_b") + h("id_b"),
        )
    if op == "v1_qm_hash1":
        # Section 5.5: HASH(1) = prf(SKEYID_a, M-ID | <the rest of the message>)
        mid = r["mid"].to_bytes(4, "big")
        return prf(alg, h("skeyid_a"), mid + h("rest"))
    if op == "v1_qm_hash2":
        # HASH(2) = prf(SKEYID_a, M-ID | Ni_b | <the rest of the message>)
        mid = r["mid"].to_bytes(4, "big")
        return prf(alg, h("skeyid_a"), mid + h("ni_b") + h("rest"))
    if op == "v1_qm_hash3":
        # HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
        mid = r["mid"].to_bytes(4, "big")
        return prf(alg, h("skeyid_a"), b"\x00" + mid + h("ni_b") + h("nr_b"))
    if op == "v1_keymat":
        return v1_keymat(
            alg,
            h("skeyid_d"),
            h("g_qm"),
            r["protocol"],
            h("spi"),
            h("ni_b"),
            h("nr_b"),
            r["len"],
        )
    if op == "v2_skeyseed":
        # 2.14: SKEYSEED = prf(Ni | Nr, g^ir)
        return prf(alg, h("ni") + h("nr"), h("gir"))
    if op == "v2_ike_sa_keys":
        # 2.14: {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
        #        = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
        n = HASHES[alg]().digest_size
        cuts = [n, r["integ"], r["integ"], r["encr"], r["encr"], n, n]
        stream = prf_plus(
            alg, h("skeyseed"), h("ni") + h("nr") + h("spi_i") + h("spi_r"), sum(cuts)
        )
        keys, at = [], 0
        for c in cuts:
            keys.append(stream[at : at + c])
            at += c
        return keys
    if op == "v2_rekey_skeyseed":
        # 2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
        return prf(alg, h("sk_d"), h("gir_new") + h("ni") + h("nr"))
    if op == "v2_child_keys":
        return v2_child_keys(
            alg, h("sk_d"), h("gir_new"), h("ni"), h("nr"), r["encr"], r["integ"]
        )
    if op == "v2_signed_octets":
        return v2_signed_octets(alg, h("message"), h("nonce"), h("sk_p"), h("id_body"))
    if op == "v2_psk_auth":
        octets = v2_signed_octets(alg, h("message"), h("nonce"), h("sk_p"), h("id_body"))
        return v2_psk_auth(alg, h("psk"), octets)
    raise SystemExit(f"unknown op {op!r}")


def encode(value):
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value.hex()


def main():
    requests = json.load(sys.stdin)
    json.dump([encode(answer(r)) for r in requests], sys.stdout)


if __name__ == "__main__":
    main()
