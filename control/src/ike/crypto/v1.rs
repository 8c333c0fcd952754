//! IKEv1 key derivation for pre-shared keys (RFC 2409): the SKEYID family
//! (§5), the encryption key and IVs (Appendix B), HASH_I/HASH_R (§5),
//! the Quick Mode hashes and KEYMAT (§5.5).
//!
//! Inputs are named as the RFC names them: `_b` is the body of a payload
//! without its generic header (Ni_b, SAi_b, IDii_b); g^xi and g^xr are the
//! KE payload values; g^xy is the padded shared secret from
//! [`DhPrivate::shared_secret`](super::DhPrivate::shared_secret). The prf
//! is the HMAC of the negotiated hash ([`Prf::from_ikev1_hash`]), and
//! "hash" (for IVs) the plain hash under it.

use std::fmt;

use zeroize::Zeroizing;

use super::concat_secret;
use super::prf::Prf;

/// SKEYID and the three keys made from it (RFC 2409 §5): SKEYID_d for
/// Quick Mode KEYMAT, SKEYID_a for the HASH payloads of later exchanges,
/// SKEYID_e for the ISAKMP encryption key.
pub struct Phase1Keys {
    pub skeyid: Zeroizing<Vec<u8>>,
    pub skeyid_d: Zeroizing<Vec<u8>>,
    pub skeyid_a: Zeroizing<Vec<u8>>,
    pub skeyid_e: Zeroizing<Vec<u8>>,
}

impl Phase1Keys {
    /// Pre-shared key authentication: SKEYID = prf(pre-shared-key, Ni_b | Nr_b),
    /// then [`Phase1Keys::from_skeyid`].
    pub fn derive_psk(
        prf: Prf,
        psk: &[u8],
        ni_b: &[u8],
        nr_b: &[u8],
        g_xy: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
    ) -> Phase1Keys {
        Phase1Keys::from_skeyid(prf, skeyid_psk(prf, psk, ni_b, nr_b), g_xy, cky_i, cky_r)
    }

    /// The SKEYID_d/_a/_e chain from SKEYID, whatever the authentication
    /// method that produced SKEYID:
    /// SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0),
    /// SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1),
    /// SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2).
    pub fn from_skeyid(
        prf: Prf,
        skeyid: Zeroizing<Vec<u8>>,
        g_xy: &[u8],
        cky_i: &[u8; 8],
        cky_r: &[u8; 8],
    ) -> Phase1Keys {
        let skeyid_d = prf.prf_parts(&skeyid, &[g_xy, cky_i, cky_r, &[0]]);
        let skeyid_a = prf.prf_parts(&skeyid, &[&skeyid_d, g_xy, cky_i, cky_r, &[1]]);
        let skeyid_e = prf.prf_parts(&skeyid, &[&skeyid_a, g_xy, cky_i, cky_r, &[2]]);
        Phase1Keys {
            skeyid,
            skeyid_d,
            skeyid_a,
            skeyid_e,
        }
    }
}

impl fmt::Debug for Phase1Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Phase1Keys { <redacted> }")
    }
}

/// SKEYID for pre-shared keys: prf(pre-shared-key, Ni_b | Nr_b) (§5).
pub fn skeyid_psk(prf: Prf, psk: &[u8], ni_b: &[u8], nr_b: &[u8]) -> Zeroizing<Vec<u8>> {
    prf.prf_parts(psk, &[ni_b, nr_b])
}

/// The ISAKMP SA's encryption key of `key_len` octets (Appendix B): the
/// first octets of SKEYID_e when it is long enough, otherwise
/// Ka = K1 | K2 | ... with K1 = prf(SKEYID_e, 0) (one zero octet) and
/// Kn = prf(SKEYID_e, Kn-1). 3DES and AES-192/256 with SHA-1 need the
/// expansion.
pub fn encryption_key(prf: Prf, skeyid_e: &[u8], key_len: usize) -> Zeroizing<Vec<u8>> {
    if key_len <= skeyid_e.len() {
        return Zeroizing::new(skeyid_e[..key_len].to_vec());
    }
    let mut out = Zeroizing::new(Vec::with_capacity(key_len + prf.output_len()));
    let mut k = prf.prf(skeyid_e, &[0]);
    loop {
        out.extend_from_slice(&k);
        if out.len() >= key_len {
            break;
        }
        k = prf.prf(skeyid_e, &k);
    }
    out.truncate(key_len);
    out
}

/// The IV of the first encrypted Phase 1 message (Appendix B):
/// hash(g^xi | g^xr), cut to the cipher's block length.
pub fn phase1_iv(prf: Prf, g_xi: &[u8], g_xr: &[u8], block_len: usize) -> Vec<u8> {
    truncated(prf.hash(&[g_xi, g_xr]), block_len)
}

/// The IV of the first message of a Quick Mode or Informational exchange
/// (Appendix B): hash(last Phase 1 CBC output block | M-ID), cut to the
/// block length. `message_id` is the header's Message ID as sent.
pub fn phase2_iv(prf: Prf, last_phase1_block: &[u8], message_id: u32, block_len: usize) -> Vec<u8> {
    truncated(
        prf.hash(&[last_phase1_block, &message_id.to_be_bytes()]),
        block_len,
    )
}

fn truncated(mut v: Vec<u8>, len: usize) -> Vec<u8> {
    v.truncate(len);
    v
}

/// What both Main Mode hashes cover besides the identity (§5): the KE
/// values, the cookies and the initiator's SA payload body (all its
/// proposals, as the initiator sent them).
#[derive(Debug, Clone, Copy)]
pub struct Phase1Transcript<'a> {
    pub g_xi: &'a [u8],
    pub g_xr: &'a [u8],
    pub cky_i: &'a [u8; 8],
    pub cky_r: &'a [u8; 8],
    pub sai_b: &'a [u8],
}

/// HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b) (§5).
pub fn hash_i(prf: Prf, skeyid: &[u8], t: &Phase1Transcript<'_>, idii_b: &[u8]) -> Vec<u8> {
    prf.prf_parts(skeyid, &[t.g_xi, t.g_xr, t.cky_i, t.cky_r, t.sai_b, idii_b])
        .to_vec()
}

/// HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b) (§5):
/// the mirror of HASH_I, except that SAi_b stays the initiator's.
pub fn hash_r(prf: Prf, skeyid: &[u8], t: &Phase1Transcript<'_>, idir_b: &[u8]) -> Vec<u8> {
    prf.prf_parts(skeyid, &[t.g_xr, t.g_xi, t.cky_r, t.cky_i, t.sai_b, idir_b])
        .to_vec()
}

/// Quick Mode HASH(1) = prf(SKEYID_a, M-ID | <the message after the HASH
/// payload>) (§5.5). Informational exchanges use the same form (§5.7).
pub fn qm_hash1(prf: Prf, skeyid_a: &[u8], message_id: u32, after_hash: &[u8]) -> Vec<u8> {
    prf.prf_parts(skeyid_a, &[&message_id.to_be_bytes(), after_hash])
        .to_vec()
}

/// Quick Mode HASH(2) = prf(SKEYID_a, M-ID | Ni_b | <the message after the
/// HASH payload>) (§5.5); Ni_b is the initiator's Quick Mode nonce.
pub fn qm_hash2(
    prf: Prf,
    skeyid_a: &[u8],
    message_id: u32,
    ni_b: &[u8],
    after_hash: &[u8],
) -> Vec<u8> {
    prf.prf_parts(skeyid_a, &[&message_id.to_be_bytes(), ni_b, after_hash])
        .to_vec()
}

/// Quick Mode HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b) (§5.5).
pub fn qm_hash3(prf: Prf, skeyid_a: &[u8], message_id: u32, ni_b: &[u8], nr_b: &[u8]) -> Vec<u8> {
    prf.prf_parts(skeyid_a, &[&[0], &message_id.to_be_bytes(), ni_b, nr_b])
        .to_vec()
}

/// What one SA's KEYMAT is made from (§5.5).
#[derive(Clone, Copy)]
pub struct KeymatInput<'a> {
    /// g(qm)^xy of the Quick Mode's own key exchange when PFS is on.
    pub g_qm_xy: Option<&'a [u8]>,
    /// The IPsec protocol ID from the proposal (3 for ESP).
    pub protocol: u8,
    /// The SPI of this SA: the one its receiver chose, so the two
    /// directions get different keys.
    pub spi: &'a [u8],
    /// The Quick Mode nonces.
    pub ni_b: &'a [u8],
    pub nr_b: &'a [u8],
}

impl fmt::Debug for KeymatInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeymatInput")
            .field("pfs", &self.g_qm_xy.is_some())
            .field("protocol", &self.protocol)
            .field("spi", &self.spi)
            .finish_non_exhaustive()
    }
}

/// KEYMAT of `len` octets for one SA (§5.5): K1 | K2 | ... where
/// K1 = prf(SKEYID_d, [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b) and
/// Kn = prf(SKEYID_d, Kn-1 | [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b).
/// The ESP keys are then taken in order: encryption key, integrity key.
pub fn keymat(
    prf: Prf,
    skeyid_d: &[u8],
    input: &KeymatInput<'_>,
    len: usize,
) -> Zeroizing<Vec<u8>> {
    let tail = concat_secret(&[
        input.g_qm_xy.unwrap_or(&[]),
        &[input.protocol],
        input.spi,
        input.ni_b,
        input.nr_b,
    ]);
    let mut out = Zeroizing::new(Vec::with_capacity(len + prf.output_len()));
    let mut k = Zeroizing::new(Vec::new());
    while out.len() < len {
        k = prf.prf_parts(skeyid_d, &[&k, &tail]);
        out.extend_from_slice(&k);
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::reference::{self, alg, random_array, random_below, random_bytes};
    use serde_json::{json, Value};

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test vector is hex")
    }

    fn cookie(s: &str) -> [u8; 8] {
        unhex(s).try_into().expect("8-octet cookie")
    }

    fn prf_for_cavs(section: &str) -> Prf {
        match section {
            "SHA-1" => Prf::HmacSha1,
            "SHA-256" => Prf::HmacSha256,
            "SHA-384" => Prf::HmacSha384,
            "SHA-512" => Prf::HmacSha512,
            other => panic!("unexpected CAVS hash {other}"),
        }
    }

    /// NIST CAVS 17.3 "IKE v1 Pre-shared Key Authentication" (SP 800-135
    /// KDF): two vectors from each of the 17 sections, SHA-1 to SHA-512,
    /// g^xy of 256, 2048 and 8192 bits, 64- and 2048-bit nonces.
    #[test]
    fn psk_keys_match_nist_cavs_sp800_135_vectors() {
        let vectors = reference::cavs::parse(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/ikev1_psk.rsp"
        )));
        assert_eq!(vectors.len(), 34);
        let mut hashes = std::collections::BTreeSet::new();
        for v in &vectors {
            let prf = prf_for_cavs(&v.hash);
            hashes.insert(v.hash.clone());
            let keys = Phase1Keys::derive_psk(
                prf,
                &v.hex("pre-shared-key"),
                &v.hex("Ni"),
                &v.hex("Nr"),
                &v.hex("g^xy"),
                &cookie(v.get("CKY_I")),
                &cookie(v.get("CKY_R")),
            );
            let name = format!("{} COUNT {}", v.hash, v.get("COUNT"));
            assert_eq!(hex::encode(&*keys.skeyid), v.get("SKEYID"), "{name}");
            assert_eq!(hex::encode(&*keys.skeyid_d), v.get("SKEYID_d"), "{name}");
            assert_eq!(hex::encode(&*keys.skeyid_a), v.get("SKEYID_a"), "{name}");
            assert_eq!(hex::encode(&*keys.skeyid_e), v.get("SKEYID_e"), "{name}");
        }
        assert_eq!(hashes.len(), 4, "every CAVS hash is covered");
    }

    /// CAVS 17.3 "IKE v1 Digital Signature Authentication", SHA-1 COUNT 0
    /// (SKEYID = prf(Ni_b | Nr_b, g^xy)): the SKEYID_d/_a/_e chain alone.
    #[test]
    fn skeyid_chain_matches_the_cavs_signature_vector() {
        let prf = Prf::HmacSha1;
        let g_xy = unhex("8ba4cbc73c0187301dc19a975823854dbd641c597f637f8d053a83b9514673eb");
        let skeyid = prf.prf_parts(&unhex("69a62284195f168080c94ba25c8abda5"), &[&g_xy]);
        assert_eq!(
            hex::encode(&*skeyid),
            "707197817fb2d90cf54d1842606bdea59b9f4823"
        );
        let keys = Phase1Keys::from_skeyid(
            prf,
            skeyid,
            &g_xy,
            &cookie("8c3bcd3a69831d7f"),
            &cookie("d2d9a7ff4fbe95a7"),
        );
        assert_eq!(
            hex::encode(&*keys.skeyid_d),
            "384be709a8a5e63c3ed160cfe3921c4b37d5b32d"
        );
        assert_eq!(
            hex::encode(&*keys.skeyid_a),
            "48b327575abe3adba0f279849e289022a13e2b47"
        );
        assert_eq!(
            hex::encode(&*keys.skeyid_e),
            "a4a415c8e0c38c0da847c356cc61c24df8025560"
        );
    }

    #[test]
    fn encryption_key_is_skeyid_e_itself_when_long_enough() {
        let e = [7u8; 20];
        assert_eq!(&*encryption_key(Prf::HmacSha1, &e, 16), &e[..16]);
        assert_eq!(&*encryption_key(Prf::HmacSha1, &e, 20), &e[..]);
        // 3DES with SHA-1: 24 > 20, so the Appendix B expansion.
        let k = encryption_key(Prf::HmacSha1, &e, 24);
        assert_eq!(&k[..20], &Prf::HmacSha1.prf(&e, &[0])[..]);
        assert_ne!(&k[..20], &e[..]);
    }

    #[test]
    fn debug_output_shows_no_keys() {
        let keys = Phase1Keys::derive_psk(
            Prf::HmacSha1,
            b"secret",
            b"ni",
            b"nr",
            b"gxy",
            &[1; 8],
            &[2; 8],
        );
        let shown = format!("{keys:?}");
        assert_eq!(shown, "Phase1Keys { <redacted> }");
    }

    /// Every derivation of this module against the Python reference, with
    /// random inputs for every prf: random key lengths around the prf
    /// output (so both branches of Appendix B run), random block sizes,
    /// message IDs, SPIs, PFS on and off.
    #[test]
    fn every_derivation_matches_the_python_reference() {
        let mut requests = Vec::new();
        let mut expected: Vec<Value> = Vec::new();
        for prf in Prf::ALL {
            for _ in 0..6 {
                let a = alg(prf);
                let psk = random_bytes(1 + random_below(64));
                let (ni_b, nr_b) = (
                    random_bytes(8 + random_below(56)),
                    random_bytes(8 + random_below(56)),
                );
                let g_xy = random_bytes([96, 128, 256, 32][random_below(4)]);
                let (cky_i, cky_r) = (random_array::<8>(), random_array::<8>());
                let keys = Phase1Keys::derive_psk(prf, &psk, &ni_b, &nr_b, &g_xy, &cky_i, &cky_r);

                requests.push(
                    json!({"op": "v1_skeyid_psk", "alg": a, "psk": hex::encode(&psk),
                    "ni_b": hex::encode(&ni_b), "nr_b": hex::encode(&nr_b)}),
                );
                expected.push(hex::encode(&*keys.skeyid).into());
                requests.push(json!({"op": "v1_skeyid_dae", "alg": a, "skeyid": hex::encode(&*keys.skeyid),
                    "gxy": hex::encode(&g_xy), "cky_i": hex::encode(cky_i), "cky_r": hex::encode(cky_r)}));
                expected.push(reference::hex_list(&[
                    &keys.skeyid_d,
                    &keys.skeyid_a,
                    &keys.skeyid_e,
                ]));

                let key_len = random_below(3 * prf.output_len() + 1);
                requests.push(json!({"op": "v1_encryption_key", "alg": a,
                    "skeyid_e": hex::encode(&*keys.skeyid_e), "len": key_len}));
                expected.push(hex::encode(&*encryption_key(prf, &keys.skeyid_e, key_len)).into());

                let (g_xi, g_xr) = (random_bytes(g_xy.len()), random_bytes(g_xy.len()));
                let block = [8, 16][random_below(2)];
                requests.push(
                    json!({"op": "v1_phase1_iv", "alg": a, "gxi": hex::encode(&g_xi),
                    "gxr": hex::encode(&g_xr), "block": block}),
                );
                expected.push(hex::encode(phase1_iv(prf, &g_xi, &g_xr, block)).into());

                let last_block = random_bytes(block);
                let mid = u32::from_be_bytes(random_array::<4>());
                requests.push(
                    json!({"op": "v1_phase2_iv", "alg": a, "last_block": hex::encode(&last_block),
                    "mid": mid, "block": block}),
                );
                expected.push(hex::encode(phase2_iv(prf, &last_block, mid, block)).into());

                let sai_b = random_bytes(random_below(200));
                let (idii_b, idir_b) = (
                    random_bytes(random_below(40)),
                    random_bytes(random_below(40)),
                );
                let t = Phase1Transcript {
                    g_xi: &g_xi,
                    g_xr: &g_xr,
                    cky_i: &cky_i,
                    cky_r: &cky_r,
                    sai_b: &sai_b,
                };
                let common = json!({"alg": a, "skeyid": hex::encode(&*keys.skeyid), "gxi": hex::encode(&g_xi),
                    "gxr": hex::encode(&g_xr), "cky_i": hex::encode(cky_i), "cky_r": hex::encode(cky_r),
                    "sai_b": hex::encode(&sai_b)});
                let with = |op: &str, id: &[u8]| {
                    let mut r = common.clone();
                    r["op"] = op.into();
                    r["id_b"] = hex::encode(id).into();
                    r
                };
                requests.push(with("v1_hash_i", &idii_b));
                expected.push(hex::encode(hash_i(prf, &keys.skeyid, &t, &idii_b)).into());
                requests.push(with("v1_hash_r", &idir_b));
                expected.push(hex::encode(hash_r(prf, &keys.skeyid, &t, &idir_b)).into());

                let rest = random_bytes(random_below(300));
                let (qni, qnr) = (
                    random_bytes(16 + random_below(48)),
                    random_bytes(16 + random_below(48)),
                );
                let sk_a = hex::encode(&*keys.skeyid_a);
                requests.push(json!({"op": "v1_qm_hash1", "alg": a, "skeyid_a": sk_a, "mid": mid, "rest": hex::encode(&rest)}));
                expected.push(hex::encode(qm_hash1(prf, &keys.skeyid_a, mid, &rest)).into());
                requests.push(
                    json!({"op": "v1_qm_hash2", "alg": a, "skeyid_a": sk_a, "mid": mid,
                    "ni_b": hex::encode(&qni), "rest": hex::encode(&rest)}),
                );
                expected.push(hex::encode(qm_hash2(prf, &keys.skeyid_a, mid, &qni, &rest)).into());
                requests.push(
                    json!({"op": "v1_qm_hash3", "alg": a, "skeyid_a": sk_a, "mid": mid,
                    "ni_b": hex::encode(&qni), "nr_b": hex::encode(&qnr)}),
                );
                expected.push(hex::encode(qm_hash3(prf, &keys.skeyid_a, mid, &qni, &qnr)).into());

                for pfs in [false, true] {
                    let g_qm = random_bytes(g_xy.len());
                    let spi = random_array::<4>();
                    let len = random_below(4 * prf.output_len() + 1);
                    let input = KeymatInput {
                        g_qm_xy: pfs.then_some(&g_qm[..]),
                        protocol: 3,
                        spi: &spi,
                        ni_b: &qni,
                        nr_b: &qnr,
                    };
                    let mut r = json!({"op": "v1_keymat", "alg": a, "skeyid_d": hex::encode(&*keys.skeyid_d),
                        "protocol": 3, "spi": hex::encode(spi), "ni_b": hex::encode(&qni),
                        "nr_b": hex::encode(&qnr), "len": len});
                    if pfs {
                        r["g_qm"] = hex::encode(&g_qm).into();
                    }
                    requests.push(r);
                    expected.push(hex::encode(&*keymat(prf, &keys.skeyid_d, &input, len)).into());
                }
            }
        }
        reference::check(&requests, &expected);
    }
}
