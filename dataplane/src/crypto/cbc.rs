//! CBC mode for ESP: AES-CBC (RFC 3602), 3DES-CBC (RFC 2451) and DES-CBC
//! (RFC 2405), in place on the packet buffer.
//!
//! CBC encryption is serial inside a packet (each block needs the previous
//! ciphertext block) but independent across packets, so [`encrypt_multi`]
//! interleaves up to [`LANES`] packets: block `i` of every packet still
//! running goes through one `encrypt_blocks` call, which the `aes` crate
//! pipelines eight blocks deep on AES-NI. Decryption needs no such trick:
//! every plaintext block depends only on two ciphertext blocks, so
//! [`decrypt`] runs the block cipher over whole runs of blocks at once.

use aes::cipher::inout::InOutBuf;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};

use super::{CryptoError, EncAlg};

/// Packets interleaved by [`encrypt_multi`]; AES-NI pipelines 8 blocks.
pub(crate) const LANES: usize = 8;

/// Largest cipher block (AES); sizes the per-lane chaining values.
pub(crate) const MAX_BLOCK: usize = 16;

/// Blocks decrypted per block-cipher call in [`decrypt`]; bounded so the
/// saved ciphertext fits a small stack buffer (512 bytes for AES).
const DECRYPT_RUN: usize = 32;

/// A block cipher usable in CBC mode for ESP, keyed once per SA.
///
/// The methods work on byte slices (whole blocks) so the CBC code is written
/// once for 8- and 16-byte blocks and monomorphised per cipher, with no
/// dynamic dispatch per block.
pub(crate) trait CbcCipher: Send + Sync + Sized + 'static {
    const ALG: EncAlg;
    const BLOCK: usize;

    /// Fails with `BadKeyLength` unless `key` is exactly `ALG.key_len()`.
    fn with_key(key: &[u8]) -> Result<Self, CryptoError>;
    /// ECB-encrypts every whole block of `buf` in place.
    fn encrypt_blocks(&self, buf: &mut [u8]);
    /// ECB-decrypts every whole block of `buf` in place.
    fn decrypt_blocks(&self, buf: &mut [u8]);
}

macro_rules! cbc_cipher {
    ($(#[$m:meta])* $name:ident, $inner:ty, $alg:expr, $block:expr) => {
        $(#[$m])*
        pub(crate) struct $name($inner);

        impl CbcCipher for $name {
            const ALG: EncAlg = $alg;
            const BLOCK: usize = $block;

            fn with_key(key: &[u8]) -> Result<Self, CryptoError> {
                <$inner as KeyInit>::new_from_slice(key)
                    .map(Self)
                    .map_err(|_| CryptoError::BadKeyLength {
                        got: key.len(),
                        expected: $alg.key_len(),
                    })
            }

            #[inline]
            fn encrypt_blocks(&self, buf: &mut [u8]) {
                let (blocks, _) = InOutBuf::from(buf).into_chunks();
                self.0.encrypt_blocks_inout(blocks);
            }

            #[inline]
            fn decrypt_blocks(&self, buf: &mut [u8]) {
                let (blocks, _) = InOutBuf::from(buf).into_chunks();
                self.0.decrypt_blocks_inout(blocks);
            }
        }
    };
}

cbc_cipher!(
    /// AES-128 (RFC 3602); runtime-dispatched to AES-NI when present.
    Aes128Cbc, aes::Aes128, EncAlg::AesCbc128, 16
);
cbc_cipher!(Aes192Cbc, aes::Aes192, EncAlg::AesCbc192, 16);
cbc_cipher!(Aes256Cbc, aes::Aes256, EncAlg::AesCbc256, 16);
cbc_cipher!(
    /// DES-EDE3 with three independent keys K1 || K2 || K3 (RFC 2451 §2.2).
    TripleDesCbc, des::TdesEde3, EncAlg::TripleDesCbc, 8
);
cbc_cipher!(
    /// Single DES (RFC 2405): kept only for interoperability with old peers.
    DesCbc, des::Des, EncAlg::DesCbc, 8
);

#[inline]
fn xor_in_place(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// CBC-encrypts `data` (whole blocks) in place with chaining value `iv`.
/// Callers check `data.len() % C::BLOCK == 0`; a partial tail is left as is.
pub(crate) fn encrypt<C: CbcCipher>(cipher: &C, iv: &[u8], data: &mut [u8]) {
    let b = C::BLOCK;
    let mut prev = [0u8; MAX_BLOCK];
    prev[..b].copy_from_slice(&iv[..b]);
    for block in data.chunks_exact_mut(b) {
        xor_in_place(block, &prev[..b]);
        cipher.encrypt_blocks(block);
        prev[..b].copy_from_slice(block);
    }
}

/// CBC-decrypts `data` (whole blocks) in place.
///
/// Decrypting in place destroys the ciphertext that the next block's XOR
/// needs, so each run of up to [`DECRYPT_RUN`] blocks is copied to a stack
/// buffer first; the block cipher then sees whole runs (parallel AES-NI).
pub(crate) fn decrypt<C: CbcCipher>(cipher: &C, iv: &[u8], data: &mut [u8]) {
    let b = C::BLOCK;
    let whole = data.len() - data.len() % b;
    let mut prev = [0u8; MAX_BLOCK];
    prev[..b].copy_from_slice(&iv[..b]);
    let mut saved = [0u8; DECRYPT_RUN * MAX_BLOCK];
    for run in data[..whole].chunks_mut(DECRYPT_RUN * b) {
        let n = run.len();
        saved[..n].copy_from_slice(run);
        cipher.decrypt_blocks(run);
        xor_in_place(&mut run[..b], &prev[..b]);
        xor_in_place(&mut run[b..], &saved[..n - b]);
        prev[..b].copy_from_slice(&saved[n - b..n]);
    }
}

/// One packet in a multi-buffer encryption: its payload (whole blocks) and
/// its chaining value, which starts as the IV.
pub(crate) struct Lane<'a> {
    pub data: &'a mut [u8],
    pub chain: [u8; MAX_BLOCK],
}

impl Default for Lane<'_> {
    fn default() -> Self {
        Self {
            data: &mut [],
            chain: [0u8; MAX_BLOCK],
        }
    }
}

/// CBC-encrypts several packets at once, interleaved.
///
/// At step `i` block `i` of each packet long enough to have one is XORed with
/// that packet's chaining value and all of them are encrypted by a single
/// `encrypt_blocks` call, so packets of different lengths share a batch and
/// simply drop out when they end. The result is bit-identical to
/// [`encrypt`] on each packet alone.
pub(crate) fn encrypt_multi<C: CbcCipher>(cipher: &C, lanes: &mut [Lane<'_>]) {
    let b = C::BLOCK;
    let mut scratch = [0u8; LANES * MAX_BLOCK];
    for group in lanes.chunks_mut(LANES) {
        let longest = group.iter().map(|l| l.data.len()).max().unwrap_or(0);
        let mut off = 0;
        while off + b <= longest {
            let mut k = 0;
            for lane in group.iter() {
                if off + b <= lane.data.len() {
                    let dst = &mut scratch[k * b..(k + 1) * b];
                    dst.copy_from_slice(&lane.data[off..off + b]);
                    xor_in_place(dst, &lane.chain[..b]);
                    k += 1;
                }
            }
            cipher.encrypt_blocks(&mut scratch[..k * b]);
            let mut j = 0;
            for lane in group.iter_mut() {
                if off + b <= lane.data.len() {
                    let src = &scratch[j * b..(j + 1) * b];
                    lane.data[off..off + b].copy_from_slice(src);
                    lane.chain[..b].copy_from_slice(src);
                    j += 1;
                }
            }
            off += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn kat<C: CbcCipher>(key: &str, iv: &str, plain: &[u8], cipher_hex: &str) {
        let c = C::with_key(&h(key)).unwrap();
        let iv = h(iv);
        let mut buf = plain.to_vec();
        encrypt(&c, &iv, &mut buf);
        assert_eq!(hex::encode(&buf), cipher_hex);
        decrypt(&c, &iv, &mut buf);
        assert_eq!(buf, plain);
    }

    #[test]
    fn aes_cbc_matches_rfc3602_cases_1_to_4() {
        kat::<Aes128Cbc>(
            "06a9214036b8a15b512e03d534120006",
            "3dafba429d9eb430b422da802c9fac41",
            b"Single block msg",
            "e353779c1079aeb82708942dbe77181a",
        );
        kat::<Aes128Cbc>(
            "c286696d887c9aa0611bbb3e2025a45a",
            "562e17996d093d28ddb3ba695a2e6f58",
            &(0u8..32).collect::<Vec<_>>(),
            "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1",
        );
        kat::<Aes128Cbc>(
            "6c3ea0477630ce21a2ce334aa746c2cd",
            "c782dc4c098c66cbd9cd27d825682c81",
            b"This is a 48-byte message (exactly 3 AES blocks)",
            "d0a02b3836451753d493665d33f0e8862dea54cdb293abc7506939276772f8d5\
             021c19216bad525c8579695d83ba2684",
        );
        kat::<Aes128Cbc>(
            "56e47a38c5598974bc46903dba290349",
            "8ce82eefbea0da3c44699ed7db51b7d9",
            &(0xa0u8..=0xdf).collect::<Vec<_>>(),
            "c30e32ffedc0774e6aff6af0869f71aa0f3af07a9a31a9c684db207eb0ef8e4e\
             35907aa632c3ffdf868bb7b29d3d46ad83ce9f9a102ee99d49a53e87f4c3da55",
        );
    }

    #[test]
    fn aes_192_and_256_cbc_match_sp800_38a_f2() {
        let plain = h(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                       30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        kat::<Aes192Cbc>(
            "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
            "000102030405060708090a0b0c0d0e0f",
            &plain,
            "4f021db243bc633d7178183a9fa071e8b4d9ada9ad7dedf4e5e738763f69145a\
             571b242012fb7ae07fa9baac3df102e008b0e27988598881d920a9e64f5615cd",
        );
        kat::<Aes256Cbc>(
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
            "000102030405060708090a0b0c0d0e0f",
            &plain,
            "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
             39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b",
        );
    }

    /// Parses NIST CAVP `TCBCMMT3.rsp` (tdesmmt.zip): every record of both
    /// the ENCRYPT and DECRYPT sections.
    fn tdes_mmt3() -> Vec<(bool, [Vec<u8>; 5])> {
        let text = include_str!("testdata/TCBCMMT3.rsp");
        let mut out = Vec::new();
        let mut encrypt_section = true;
        let mut rec: std::collections::HashMap<&str, Vec<u8>> = Default::default();
        for line in text.lines().map(str::trim) {
            if line == "[ENCRYPT]" {
                encrypt_section = true;
            } else if line == "[DECRYPT]" {
                encrypt_section = false;
            } else if let Some((k, v)) = line.split_once(" = ") {
                if k != "COUNT" {
                    rec.insert(k, h(v));
                }
            }
            if rec.len() == 6 {
                let mut key = rec["KEY1"].clone();
                key.extend(&rec["KEY2"]);
                key.extend(&rec["KEY3"]);
                out.push((
                    encrypt_section,
                    [
                        key,
                        rec["IV"].clone(),
                        rec["PLAINTEXT"].clone(),
                        rec["CIPHERTEXT"].clone(),
                        Vec::new(),
                    ],
                ));
                rec.clear();
            }
        }
        out
    }

    #[test]
    fn triple_des_cbc_matches_every_nist_cavp_tcbcmmt3_vector() {
        let vectors = tdes_mmt3();
        assert_eq!(vectors.len(), 20);
        for (enc, [key, iv, plain, cipher, _]) in vectors {
            let c = TripleDesCbc::with_key(&key).unwrap();
            let mut buf = if enc { plain.clone() } else { cipher.clone() };
            if enc {
                encrypt(&c, &iv, &mut buf);
                assert_eq!(buf, cipher);
            } else {
                decrypt(&c, &iv, &mut buf);
                assert_eq!(buf, plain);
            }
        }
    }

    #[test]
    fn des_cbc_matches_the_fips81_now_is_the_time_vector() {
        kat::<DesCbc>(
            "0123456789abcdef",
            "1234567890abcdef",
            b"Now is the time for all ",
            "e5c7cdde872bf27c43e934008c389c0f683788499a7c05f6",
        );
    }

    #[test]
    fn wrong_key_lengths_are_refused_with_the_expected_length() {
        assert_eq!(
            Aes128Cbc::with_key(&[0; 15]).err(),
            Some(CryptoError::BadKeyLength {
                got: 15,
                expected: 16
            })
        );
        assert!(Aes192Cbc::with_key(&[0; 32]).is_err());
        assert!(Aes256Cbc::with_key(&[0; 24]).is_err());
        assert!(TripleDesCbc::with_key(&[0; 16]).is_err());
        assert!(DesCbc::with_key(&[0; 7]).is_err());
    }

    fn multi_equals_single<C: CbcCipher>(key: &[u8], packets: &[(Vec<u8>, [u8; 16])]) {
        let c = C::with_key(key).unwrap();
        let mut single: Vec<Vec<u8>> = packets.iter().map(|p| p.0.clone()).collect();
        for (buf, (_, iv)) in single.iter_mut().zip(packets) {
            encrypt(&c, iv, buf);
        }
        let mut multi: Vec<Vec<u8>> = packets.iter().map(|p| p.0.clone()).collect();
        let mut lanes: Vec<Lane<'_>> = multi
            .iter_mut()
            .zip(packets)
            .map(|(data, (_, iv))| Lane { data, chain: *iv })
            .collect();
        encrypt_multi(&c, &mut lanes);
        assert_eq!(multi, single);
        for (buf, (plain, iv)) in multi.iter_mut().zip(packets) {
            decrypt(&c, iv, buf);
            assert_eq!(buf, plain);
        }
    }

    fn packets(block: usize) -> impl Strategy<Value = Vec<(Vec<u8>, [u8; 16])>> {
        prop::collection::vec(
            (0usize..100, any::<u8>(), any::<[u8; 16]>()).prop_map(move |(n, fill, iv)| {
                let data = (0..n * block).map(|i| fill.wrapping_add(i as u8)).collect();
                (data, iv)
            }),
            0..20,
        )
    }

    proptest! {
        #[test]
        fn multi_buffer_aes_encryption_equals_one_packet_at_a_time(p in packets(16)) {
            multi_equals_single::<Aes128Cbc>(&[1; 16], &p);
            multi_equals_single::<Aes256Cbc>(&[2; 32], &p);
        }

        #[test]
        fn multi_buffer_des_encryption_equals_one_packet_at_a_time(p in packets(8)) {
            multi_equals_single::<TripleDesCbc>(&[3; 24], &p);
            multi_equals_single::<DesCbc>(&[4; 8], &p);
        }

        #[test]
        fn decryption_inverts_encryption_across_run_boundaries(n in 0usize..80, iv in any::<[u8; 16]>()) {
            let plain: Vec<u8> = (0..n * 16).map(|i| i as u8).collect();
            let c = Aes192Cbc::with_key(&[5; 24]).unwrap();
            let mut buf = plain.clone();
            encrypt(&c, &iv, &mut buf);
            decrypt(&c, &iv, &mut buf);
            prop_assert_eq!(buf, plain);
        }
    }
}
