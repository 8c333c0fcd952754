//! IKEv2 key derivation (RFC 7296): SKEYSEED and the seven SK_* keys
//! (§2.14), SKEYSEED of a rekeyed IKE SA (§2.18), CHILD_SA KEYMAT (§2.17)
//! and the pre-shared-key AUTH payload (§2.15).
//!
//! Nonces are the Nonce payload data, SPIs the 8-octet IKE SPIs as they
//! appear in the header, g^ir the padded shared secret from
//! [`DhPrivate::shared_secret`](super::DhPrivate::shared_secret). Every prf
//! here is an HMAC, so the special case of §2.14 for prfs with a fixed key
//! size (AES-XCBC, AES-CMAC: SKEYSEED keyed with half of each nonce) does
//! not arise.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::concat_secret;
use super::prf::{Prf, PrfPlusError};

/// SKEYSEED = prf(Ni | Nr, g^ir) (§2.14).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Zeroizing<Vec<u8>> {
    prf.prf(&concat_secret(&[ni, nr]), g_ir)
}

/// SKEYSEED of the new IKE SA when rekeying with CREATE_CHILD_SA (§2.18):
/// prf(SK_d (old), g^ir (new) | Ni | Nr), with the new exchange's nonces.
/// `old_prf` is the old IKE SA's prf: the exchange belongs to the old SA
/// (the new SA's prf then makes its SK_* with [`IkeSaKeys::derive`]).
pub fn rekey_skeyseed(
    old_prf: Prf,
    old_sk_d: &[u8],
    g_ir_new: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Zeroizing<Vec<u8>> {
    old_prf.prf_parts(old_sk_d, &[g_ir_new, ni, nr])
}

/// The negotiated lengths of the keys whose size depends on the
/// transforms: SK_ai/SK_ar (the integrity algorithm's key; 0 with an AEAD
/// cipher) and SK_ei/SK_er (the cipher's key, plus the salt for AEAD
/// ciphers, RFC 5282). SK_d, SK_pi and SK_pr take the prf's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyLengths {
    pub integ: usize,
    pub encr: usize,
}

/// The keys of one IKE SA (§2.14): SK_d derives CHILD_SA keys, SK_ai/SK_ar
/// protect the integrity and SK_ei/SK_er the confidentiality of each
/// direction's messages (i = sent by the original initiator), SK_pi/SK_pr
/// go into the AUTH payloads.
pub struct IkeSaKeys {
    pub sk_d: Zeroizing<Vec<u8>>,
    pub sk_ai: Zeroizing<Vec<u8>>,
    pub sk_ar: Zeroizing<Vec<u8>>,
    pub sk_ei: Zeroizing<Vec<u8>>,
    pub sk_er: Zeroizing<Vec<u8>>,
    pub sk_pi: Zeroizing<Vec<u8>>,
    pub sk_pr: Zeroizing<Vec<u8>>,
}

impl IkeSaKeys {
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
    ///     = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)  (§2.14),
    /// taken in that order with the lengths of `lengths` and the prf.
    pub fn derive(
        prf: Prf,
        skeyseed: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
        lengths: KeyLengths,
    ) -> Result<IkeSaKeys, PrfPlusError> {
        let n = prf.output_len();
        let cuts = [
            n,
            lengths.integ,
            lengths.integ,
            lengths.encr,
            lengths.encr,
            n,
            n,
        ];
        let seed = concat_secret(&[ni, nr, spi_i, spi_r]);
        let stream = prf.prf_plus(skeyseed, &seed, cuts.iter().sum())?;
        let [sk_d, sk_ai, sk_ar, sk_ei, sk_er, sk_pi, sk_pr] = split(&stream, cuts);
        Ok(IkeSaKeys {
            sk_d,
            sk_ai,
            sk_ar,
            sk_ei,
            sk_er,
            sk_pi,
            sk_pr,
        })
    }
}

impl fmt::Debug for IkeSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IkeSaKeys { <redacted> }")
    }
}

/// CHILD_SA KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (§2.17), `len`
/// octets; `g_ir_new` is the CREATE_CHILD_SA exchange's own DH secret when
/// it had one (PFS). For the CHILD_SA made with IKE_AUTH the nonces are
/// those of IKE_SA_INIT.
pub fn child_sa_keymat(
    prf: Prf,
    sk_d: &[u8],
    g_ir_new: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<Zeroizing<Vec<u8>>, PrfPlusError> {
    let seed = concat_secret(&[g_ir_new.unwrap_or(&[]), ni, nr]);
    prf.prf_plus(sk_d, &seed, len)
}

/// The keys of one ESP CHILD_SA pair, taken from KEYMAT as §2.17 orders
/// them: the initiator-to-responder SA's keys first, and within each SA
/// the encryption key before the integrity key.
pub struct ChildSaKeys {
    /// Protects traffic from the exchange's initiator to its responder.
    pub encr_i: Zeroizing<Vec<u8>>,
    pub integ_i: Zeroizing<Vec<u8>>,
    /// Protects traffic from the responder to the initiator.
    pub encr_r: Zeroizing<Vec<u8>>,
    pub integ_r: Zeroizing<Vec<u8>>,
}

impl ChildSaKeys {
    /// KEYMAT for both directions, split. `encr_len` includes the salt of
    /// AEAD ciphers (RFC 4106 §8.1); `integ_len` is 0 for them.
    pub fn derive(
        prf: Prf,
        sk_d: &[u8],
        g_ir_new: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        encr_len: usize,
        integ_len: usize,
    ) -> Result<ChildSaKeys, PrfPlusError> {
        let cuts = [encr_len, integ_len, encr_len, integ_len];
        let keymat = child_sa_keymat(prf, sk_d, g_ir_new, ni, nr, cuts.iter().sum())?;
        let [encr_i, integ_i, encr_r, integ_r] = split(&keymat, cuts);
        Ok(ChildSaKeys {
            encr_i,
            integ_i,
            encr_r,
            integ_r,
        })
    }
}

impl fmt::Debug for ChildSaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChildSaKeys { <redacted> }")
    }
}

/// Cuts `stream` into consecutive pieces of the given lengths; the caller
/// made the stream exactly as long as their sum.
fn split<const N: usize>(stream: &[u8], lengths: [usize; N]) -> [Zeroizing<Vec<u8>>; N] {
    let mut at = 0;
    lengths.map(|len| {
        let end = (at + len).min(stream.len());
        let piece = Zeroizing::new(stream[at.min(end)..end].to_vec());
        at = end;
        piece
    })
}

/// The octets an AUTH payload signs (§2.15): for the initiator
/// `RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)`, for the
/// responder `RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)`.
/// `message` is the signer's IKE_SA_INIT message as sent, `peer_nonce` the
/// other side's Nonce data, `sk_p` the signer's SK_pi or SK_pr, and
/// `id_body` the signer's ID payload after its generic header (ID type,
/// three reserved octets, identification data).
pub fn auth_signed_octets(
    prf: Prf,
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_body: &[u8],
) -> Vec<u8> {
    let maced_id = prf.prf(sk_p, id_body);
    [message, peer_nonce, &maced_id].concat()
}

/// The AUTH data for shared-key authentication (§2.15):
/// prf( prf(Shared Secret, "Key Pad for IKEv2"), <signed octets>).
/// The 17-octet pad has no terminating NUL.
pub fn psk_auth(prf: Prf, shared_secret: &[u8], signed_octets: &[u8]) -> Vec<u8> {
    let key = prf.prf(shared_secret, KEY_PAD);
    prf.prf(&key, signed_octets).to_vec()
}

/// Whether a peer's AUTH data is right, compared in constant time so its
/// timing tells an attacker nothing about how close a forgery came.
pub fn verify_psk_auth(
    prf: Prf,
    shared_secret: &[u8],
    signed_octets: &[u8],
    received: &[u8],
) -> bool {
    let expected = psk_auth(prf, shared_secret, signed_octets);
    expected.ct_eq(received).into()
}

const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::reference::{
        self, alg, cavs, hex_list, random_array, random_below, random_bytes,
    };
    use serde_json::{json, Value};

    fn prf_for_cavs(section: &str) -> Prf {
        match section {
            "SHA-1" => Prf::HmacSha1,
            "SHA-256" => Prf::HmacSha256,
            "SHA-384" => Prf::HmacSha384,
            "SHA-512" => Prf::HmacSha512,
            other => panic!("unexpected CAVS hash {other}"),
        }
    }

    /// NIST CAVS 17.3 "IKE v2" (SP 800-135 KDF): two vectors from each of
    /// the 9 sections, SHA-1 to SHA-512, 64- and 2048-bit nonces, g^ir of
    /// 256 and 8192 bits. Each vector checks SKEYSEED, the IKE SA's prf+
    /// stream (DKM), the CHILD_SA KEYMAT with and without a new DH secret,
    /// and the rekeyed SKEYSEED. CAVS takes SK_d as the first prf-length
    /// octets of DKM, as §2.14 does.
    #[test]
    fn derivations_match_nist_cavs_sp800_135_vectors() {
        let vectors = cavs::parse(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/ikev2.rsp"
        )));
        assert_eq!(vectors.len(), 18);
        let mut hashes = std::collections::BTreeSet::new();
        for v in &vectors {
            let prf = prf_for_cavs(&v.hash);
            hashes.insert(v.hash.clone());
            let name = format!("{} COUNT {}", v.hash, v.get("COUNT"));
            let (ni, nr, g_ir, g_ir_new) =
                (v.hex("Ni"), v.hex("Nr"), v.hex("g^ir"), v.hex("g^ir (new)"));
            let spi_i: [u8; 8] = v.hex("SPIi").try_into().expect("8-octet SPI");
            let spi_r: [u8; 8] = v.hex("SPIr").try_into().expect("8-octet SPI");
            let dkm = v.hex("DKM");

            let seed = skeyseed(prf, &ni, &nr, &g_ir);
            assert_eq!(hex::encode(&*seed), v.get("SKEYSEED"), "{name}");

            // The prf+ stream, cut by derive() with lengths that fit in DKM.
            let n = prf.output_len();
            let spare = dkm.len().saturating_sub(3 * n) / 4;
            let lengths = KeyLengths {
                integ: spare / 2,
                encr: spare - spare / 2,
            };
            let keys = IkeSaKeys::derive(prf, &seed, &ni, &nr, &spi_i, &spi_r, lengths)
                .expect("within prf+ limit");
            let all = [
                &keys.sk_d,
                &keys.sk_ai,
                &keys.sk_ar,
                &keys.sk_ei,
                &keys.sk_er,
                &keys.sk_pi,
                &keys.sk_pr,
            ]
            .map(|k| k.to_vec())
            .concat();
            let m = all.len().min(dkm.len());
            assert_eq!(hex::encode(&all[..m]), hex::encode(&dkm[..m]), "{name}");
            let stream = prf
                .prf_plus(&seed, &[&ni[..], &nr, &spi_i, &spi_r].concat(), dkm.len())
                .expect("within prf+ limit");
            assert_eq!(hex::encode(&*stream), v.get("DKM"), "{name}");

            let sk_d = &dkm[..n];
            let child_len = v.hex("DKM(Child SA)").len();
            let child = child_sa_keymat(prf, sk_d, None, &ni, &nr, child_len).expect("limit");
            assert_eq!(hex::encode(&*child), v.get("DKM(Child SA)"), "{name}");
            let child_dh =
                child_sa_keymat(prf, sk_d, Some(&g_ir_new), &ni, &nr, child_len).expect("limit");
            assert_eq!(
                hex::encode(&*child_dh),
                v.get("DKM(Child SA D-H)"),
                "{name}"
            );

            let rekeyed = rekey_skeyseed(prf, sk_d, &g_ir_new, &ni, &nr);
            assert_eq!(hex::encode(&*rekeyed), v.get("SKEYSEED(Rekey)"), "{name}");
        }
        assert_eq!(hashes.len(), 4, "every CAVS hash is covered");
    }

    #[test]
    fn child_sa_keys_are_taken_initiator_first_encryption_first() {
        let prf = Prf::HmacSha256;
        let keymat =
            child_sa_keymat(prf, b"sk_d", None, b"ni", b"nr", 2 * (16 + 20)).expect("limit");
        let keys = ChildSaKeys::derive(prf, b"sk_d", None, b"ni", b"nr", 16, 20).expect("limit");
        assert_eq!(&*keys.encr_i, &keymat[..16]);
        assert_eq!(&*keys.integ_i, &keymat[16..36]);
        assert_eq!(&*keys.encr_r, &keymat[36..52]);
        assert_eq!(&*keys.integ_r, &keymat[52..72]);
    }

    #[test]
    fn oversized_key_requests_are_errors_not_panics() {
        let prf = Prf::HmacMd5;
        let too_long = KeyLengths {
            integ: 2000,
            encr: 2000,
        };
        assert!(IkeSaKeys::derive(prf, b"s", b"ni", b"nr", &[0; 8], &[1; 8], too_long).is_err());
        assert!(ChildSaKeys::derive(prf, b"d", None, b"ni", b"nr", 2000, 2000).is_err());
    }

    #[test]
    fn psk_auth_verifies_only_the_right_value() {
        let prf = Prf::HmacSha1;
        let octets = auth_signed_octets(prf, b"message", b"nonce", b"sk_pi", b"\x01\0\0\0id");
        let auth = psk_auth(prf, b"cisco123", &octets);
        assert_eq!(auth.len(), 20);
        assert!(verify_psk_auth(prf, b"cisco123", &octets, &auth));
        assert!(!verify_psk_auth(prf, b"cisco124", &octets, &auth));
        assert!(!verify_psk_auth(prf, b"cisco123", &octets, &auth[..19]));
        let mut flipped = auth.clone();
        flipped[0] ^= 1;
        assert!(!verify_psk_auth(prf, b"cisco123", &octets, &flipped));
    }

    #[test]
    fn debug_output_shows_no_keys() {
        let keys = IkeSaKeys::derive(
            Prf::HmacSha1,
            b"seed",
            b"ni",
            b"nr",
            &[0; 8],
            &[1; 8],
            KeyLengths {
                integ: 20,
                encr: 16,
            },
        )
        .expect("limit");
        assert_eq!(format!("{keys:?}"), "IkeSaKeys { <redacted> }");
        let child =
            ChildSaKeys::derive(Prf::HmacSha1, b"d", None, b"n", b"n", 16, 20).expect("limit");
        assert_eq!(format!("{child:?}"), "ChildSaKeys { <redacted> }");
    }

    /// Every derivation of this module against the Python reference with
    /// random inputs for every prf, AEAD-like (integ 0) and classic
    /// lengths, PFS on and off.
    #[test]
    fn every_derivation_matches_the_python_reference() {
        let mut requests = Vec::new();
        let mut expected: Vec<Value> = Vec::new();
        for prf in Prf::ALL {
            for _ in 0..6 {
                let a = alg(prf);
                let (ni, nr) = (
                    random_bytes(16 + random_below(240)),
                    random_bytes(16 + random_below(240)),
                );
                let g_ir = random_bytes([96, 128, 256, 32, 48][random_below(5)]);
                let (spi_i, spi_r) = (random_array::<8>(), random_array::<8>());
                let seed = skeyseed(prf, &ni, &nr, &g_ir);
                requests.push(
                    json!({"op": "v2_skeyseed", "alg": a, "ni": hex::encode(&ni),
                    "nr": hex::encode(&nr), "gir": hex::encode(&g_ir)}),
                );
                expected.push(hex::encode(&*seed).into());

                let lengths = KeyLengths {
                    integ: [0, 16, 20, 32, 48, 64][random_below(6)],
                    encr: [8, 16, 24, 32, 36][random_below(5)],
                };
                let keys = IkeSaKeys::derive(prf, &seed, &ni, &nr, &spi_i, &spi_r, lengths)
                    .expect("limit");
                requests.push(
                    json!({"op": "v2_ike_sa_keys", "alg": a, "skeyseed": hex::encode(&*seed),
                    "ni": hex::encode(&ni), "nr": hex::encode(&nr), "spi_i": hex::encode(spi_i),
                    "spi_r": hex::encode(spi_r), "integ": lengths.integ, "encr": lengths.encr}),
                );
                expected.push(hex_list(&[
                    &keys.sk_d,
                    &keys.sk_ai,
                    &keys.sk_ar,
                    &keys.sk_ei,
                    &keys.sk_er,
                    &keys.sk_pi,
                    &keys.sk_pr,
                ]));

                let (ni2, nr2) = (random_bytes(32), random_bytes(32));
                let g_new = random_bytes(g_ir.len());
                requests.push(json!({"op": "v2_rekey_skeyseed", "alg": a, "sk_d": hex::encode(&*keys.sk_d),
                    "gir_new": hex::encode(&g_new), "ni": hex::encode(&ni2), "nr": hex::encode(&nr2)}));
                expected.push(
                    hex::encode(&*rekey_skeyseed(prf, &keys.sk_d, &g_new, &ni2, &nr2)).into(),
                );

                for pfs in [false, true] {
                    let (encr, integ) = (lengths.encr, lengths.integ);
                    let child = ChildSaKeys::derive(
                        prf,
                        &keys.sk_d,
                        pfs.then_some(&g_new[..]),
                        &ni2,
                        &nr2,
                        encr,
                        integ,
                    )
                    .expect("limit");
                    let mut r = json!({"op": "v2_child_keys", "alg": a, "sk_d": hex::encode(&*keys.sk_d),
                        "ni": hex::encode(&ni2), "nr": hex::encode(&nr2), "encr": encr, "integ": integ});
                    if pfs {
                        r["gir_new"] = hex::encode(&g_new).into();
                    }
                    requests.push(r);
                    expected.push(hex_list(&[
                        &child.encr_i,
                        &child.integ_i,
                        &child.encr_r,
                        &child.integ_r,
                    ]));
                }

                let message = random_bytes(200 + random_below(400));
                let id_body = [&[1u8, 0, 0, 0][..], &random_bytes(4)].concat();
                let psk = random_bytes(1 + random_below(40));
                let octets = auth_signed_octets(prf, &message, &nr, &keys.sk_pi, &id_body);
                let fields = json!({"alg": a, "message": hex::encode(&message), "nonce": hex::encode(&nr),
                    "sk_p": hex::encode(&*keys.sk_pi), "id_body": hex::encode(&id_body),
                    "psk": hex::encode(&psk)});
                let mut r = fields.clone();
                r["op"] = "v2_signed_octets".into();
                requests.push(r);
                expected.push(hex::encode(&octets).into());
                let mut r = fields;
                r["op"] = "v2_psk_auth".into();
                requests.push(r);
                expected.push(hex::encode(psk_auth(prf, &psk, &octets)).into());
            }
        }
        reference::check(&requests, &expected);
    }
}
