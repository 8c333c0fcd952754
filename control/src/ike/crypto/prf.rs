//! The pseudo-random functions IKE negotiates (HMAC, RFC 2104, over MD5,
//! SHA-1 and SHA-2) and IKEv2's prf+ expansion (RFC 7296 §2.13).
//!
//! IKEv1 has no prf attribute in practice: RFC 2409 §4 makes the prf the
//! HMAC of the negotiated hash, so [`Prf::from_ikev1_hash`] maps the hash
//! attribute; IKEv2 negotiates the prf as transform type 2
//! ([`Prf::from_ikev2_prf`]). Only HMAC prfs exist here, so every prf takes
//! a key of any length (the fixed-key-size rules of RFC 7296 §2.14 for
//! AES-XCBC/CMAC do not apply).
//!
//! Outputs are wiped when dropped; the keyed HMAC state inside the `hmac`
//! crate is not (it has no zeroize support), and lives only for one call.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

/// An HMAC pseudo-random function, named as the RFCs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prf {
    HmacMd5,
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// prf+ was asked for more than its one-octet counter can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("prf+ can produce at most {max} octets with this prf, {requested} were asked for")]
pub struct PrfPlusError {
    pub requested: usize,
    pub max: usize,
}

impl Prf {
    /// Every prf, for tests and for listing what the daemon supports.
    pub const ALL: [Prf; 5] = [
        Prf::HmacMd5,
        Prf::HmacSha1,
        Prf::HmacSha256,
        Prf::HmacSha384,
        Prf::HmacSha512,
    ];

    /// The prf IKEv1 uses for a negotiated hash algorithm (class 2 of
    /// RFC 2409 Appendix A: 1 MD5, 2 SHA, 4/5/6 SHA2-256/384/512 per the
    /// IANA registry); `None` for Tiger (3) and unknown values.
    pub fn from_ikev1_hash(id: u16) -> Option<Prf> {
        match id {
            1 => Some(Prf::HmacMd5),
            2 => Some(Prf::HmacSha1),
            4 => Some(Prf::HmacSha256),
            5 => Some(Prf::HmacSha384),
            6 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// The IKEv1 hash attribute value this prf is the HMAC of.
    pub fn ikev1_hash_id(self) -> u16 {
        match self {
            Prf::HmacMd5 => 1,
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 4,
            Prf::HmacSha384 => 5,
            Prf::HmacSha512 => 6,
        }
    }

    /// The prf for an IKEv2 transform type 2 ID (RFC 7296 §3.3.2, RFC 4868):
    /// 1 HMAC_MD5, 2 HMAC_SHA1, 5/6/7 HMAC_SHA2_256/384/512; `None` for
    /// Tiger, AES-XCBC, AES-CMAC and unknown IDs.
    pub fn from_ikev2_prf(id: u16) -> Option<Prf> {
        match id {
            1 => Some(Prf::HmacMd5),
            2 => Some(Prf::HmacSha1),
            5 => Some(Prf::HmacSha256),
            6 => Some(Prf::HmacSha384),
            7 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// The IKEv2 transform ID of this prf.
    pub fn ikev2_prf_id(self) -> u16 {
        match self {
            Prf::HmacMd5 => 1,
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    /// Output length in octets; also the "preferred key length" of the prf,
    /// which fixes the length of IKEv2's SK_d, SK_pi and SK_pr (§2.14).
    pub fn output_len(self) -> usize {
        match self {
            Prf::HmacMd5 => 16,
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// `prf(key, data)`. The output is key material more often than not,
    /// so it is wiped when dropped.
    pub fn prf(self, key: &[u8], data: &[u8]) -> Zeroizing<Vec<u8>> {
        self.prf_parts(key, &[data])
    }

    /// `prf(key, parts[0] | parts[1] | ...)` without building the
    /// concatenation: the RFC formulas are written as such concatenations,
    /// and some parts (g^xy) are secret.
    pub fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
        match self {
            Prf::HmacMd5 => hmac_parts::<Hmac<Md5>>(key, parts),
            Prf::HmacSha1 => hmac_parts::<Hmac<Sha1>>(key, parts),
            Prf::HmacSha256 => hmac_parts::<Hmac<Sha256>>(key, parts),
            Prf::HmacSha384 => hmac_parts::<Hmac<Sha384>>(key, parts),
            Prf::HmacSha512 => hmac_parts::<Hmac<Sha512>>(key, parts),
        }
    }

    /// The plain hash under the HMAC. IKEv1 derives its CBC IVs with "the
    /// negotiated hash" (RFC 2409 Appendix B), which is this function.
    pub fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        match self {
            Prf::HmacMd5 => hash_parts::<Md5>(parts),
            Prf::HmacSha1 => hash_parts::<Sha1>(parts),
            Prf::HmacSha256 => hash_parts::<Sha256>(parts),
            Prf::HmacSha384 => hash_parts::<Sha384>(parts),
            Prf::HmacSha512 => hash_parts::<Sha512>(parts),
        }
    }

    /// The most prf+ can produce: 255 blocks, because its counter is one
    /// octet (RFC 7296 §2.13).
    pub fn prf_plus_max(self) -> usize {
        255 * self.output_len()
    }

    /// IKEv2's prf+ (RFC 7296 §2.13): `T1 | T2 | ...` truncated to `len`,
    /// where `T1 = prf(K, S | 0x01)` and `Tn = prf(K, Tn-1 | S | n)`.
    pub fn prf_plus(
        self,
        key: &[u8],
        seed: &[u8],
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, PrfPlusError> {
        let max = self.prf_plus_max();
        if len > max {
            return Err(PrfPlusError {
                requested: len,
                max,
            });
        }
        let mut out = Zeroizing::new(Vec::with_capacity(len + self.output_len()));
        let mut block = Zeroizing::new(Vec::new());
        let mut counter = 1u8;
        while out.len() < len {
            block = self.prf_parts(key, &[&block, seed, &[counter]]);
            out.extend_from_slice(&block);
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        Ok(out)
    }
}

fn hmac_parts<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Zeroizing<Vec<u8>> {
    // HMAC hashes long keys and pads short ones (RFC 2104 §2): every key
    // length is valid, so this cannot fail, whatever the peer sent.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    let mut out = mac.finalize().into_bytes();
    let result = Zeroizing::new(out.to_vec());
    out.as_mut_slice().zeroize();
    result
}

fn hash_parts<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
    let mut hasher = D::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::reference;

    /// RFC 2202 §2 (HMAC-MD5) and §3 (HMAC-SHA-1), test cases 1, 2, 3 and 6.
    #[test]
    fn hmac_md5_and_sha1_match_rfc_2202() {
        let long_key_data: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";
        let cases: [(Prf, Vec<u8>, Vec<u8>, &str); 8] = [
            (
                Prf::HmacMd5,
                vec![0x0b; 16],
                b"Hi There".to_vec(),
                "9294727a3638bb1c13f48ef8158bfc9d",
            ),
            (
                Prf::HmacMd5,
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "750c783e6ab0b503eaa86e310a5db738",
            ),
            (
                Prf::HmacMd5,
                vec![0xaa; 16],
                vec![0xdd; 50],
                "56be34521d144c88dbb8c733f0e8b3f6",
            ),
            (
                Prf::HmacMd5,
                vec![0xaa; 80],
                long_key_data.to_vec(),
                "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd",
            ),
            (
                Prf::HmacSha1,
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
            (
                Prf::HmacSha1,
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                Prf::HmacSha1,
                vec![0xaa; 20],
                vec![0xdd; 50],
                "125d7342b9ac11cd91a39af48aa17b4f63f175d3",
            ),
            (
                Prf::HmacSha1,
                vec![0xaa; 80],
                long_key_data.to_vec(),
                "aa4ae5e15272d00e95705637ce8a3b55ed402112",
            ),
        ];
        for (prf, key, data, want) in cases {
            assert_eq!(hex::encode(&*prf.prf(&key, &data)), want, "{prf:?}");
        }
    }

    /// RFC 4231 §4.2, §4.3 and §4.7 (test cases 1, 2 and 6).
    #[test]
    fn hmac_sha2_matches_rfc_4231() {
        let long_key_data: &[u8] = b"Test Using Larger Than Block-Size Key - Hash Key First";
        let inputs: [(Vec<u8>, &[u8]); 3] = [
            (vec![0x0b; 20], b"Hi There"),
            (b"Jefe".to_vec(), b"what do ya want for nothing?"),
            (vec![0xaa; 131], long_key_data),
        ];
        let want: [[&str; 3]; 3] = [
            [
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ],
            [
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ],
            [
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                 0c2ef6ab4030fe8296248df163f44952",
                "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                 6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
            ],
        ];
        for ((key, data), want) in inputs.iter().zip(want) {
            for (prf, want) in [Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512]
                .into_iter()
                .zip(want)
            {
                assert_eq!(hex::encode(&*prf.prf(key, data)), want, "{prf:?}");
                assert_eq!(prf.prf(key, data).len(), prf.output_len());
            }
        }
    }

    #[test]
    fn prf_parts_is_the_prf_of_the_concatenation() {
        for prf in Prf::ALL {
            assert_eq!(
                prf.prf_parts(b"key", &[b"ab", b"", b"cde"]),
                prf.prf(b"key", b"abcde")
            );
        }
    }

    #[test]
    fn negotiated_ids_map_both_ways() {
        for prf in Prf::ALL {
            assert_eq!(Prf::from_ikev1_hash(prf.ikev1_hash_id()), Some(prf));
            assert_eq!(Prf::from_ikev2_prf(prf.ikev2_prf_id()), Some(prf));
        }
        // Tiger in both versions, AES-XCBC and AES-CMAC in IKEv2.
        assert_eq!(Prf::from_ikev1_hash(3), None);
        assert_eq!(Prf::from_ikev2_prf(3), None);
        assert_eq!(Prf::from_ikev2_prf(4), None);
        assert_eq!(Prf::from_ikev2_prf(8), None);
        assert_eq!(Prf::from_ikev1_hash(2), Some(Prf::HmacSha1));
        assert_eq!(Prf::from_ikev2_prf(5), Some(Prf::HmacSha256));
    }

    #[test]
    fn prf_plus_refuses_more_than_255_blocks() {
        let prf = Prf::HmacSha1;
        assert_eq!(
            prf.prf_plus(b"k", b"s", 255 * 20).map(|v| v.len()),
            Ok(5100)
        );
        assert_eq!(
            prf.prf_plus(b"k", b"s", 255 * 20 + 1),
            Err(PrfPlusError {
                requested: 5101,
                max: 5100
            })
        );
    }

    #[test]
    fn prf_plus_starts_with_the_prf_of_seed_and_counter_one() {
        for prf in Prf::ALL {
            let out = prf.prf_plus(b"key", b"seed", 3).expect("short");
            assert_eq!(&out[..], &prf.prf(b"key", b"seed\x01")[..3]);
            assert!(prf.prf_plus(b"key", b"seed", 0).expect("empty").is_empty());
        }
    }

    /// HMAC, the hash and prf+ against Python's `hmac`/`hashlib` with random
    /// keys, data and lengths (including lengths that are not a multiple
    /// of the output and ones that need many blocks).
    #[test]
    fn prf_hash_and_prf_plus_match_the_python_reference() {
        let mut cases = Vec::new();
        let mut expected: Vec<serde_json::Value> = Vec::new();
        for prf in Prf::ALL {
            for round in 0..12 {
                let key = reference::random_bytes(reference::random_below(200));
                let data = reference::random_bytes(reference::random_below(300));
                let len = match round {
                    0 => 0,
                    1 => prf.prf_plus_max(),
                    _ => reference::random_below(600),
                };
                cases.push(serde_json::json!({
                    "op": "prf", "alg": reference::alg(prf),
                    "key": hex::encode(&key), "data": hex::encode(&data),
                }));
                expected.push(hex::encode(&*prf.prf(&key, &data)).into());
                cases.push(serde_json::json!({
                    "op": "hash", "alg": reference::alg(prf), "data": hex::encode(&data),
                }));
                expected.push(hex::encode(prf.hash(&[&data])).into());
                cases.push(serde_json::json!({
                    "op": "prf_plus", "alg": reference::alg(prf),
                    "key": hex::encode(&key), "seed": hex::encode(&data), "len": len,
                }));
                let plus = prf.prf_plus(&key, &data, len).expect("within limit");
                expected.push(hex::encode(&*plus).into());
            }
        }
        reference::check(&cases, &expected);
    }
}
