//! Per-packet CBC IVs without a per-packet syscall.
//!
//! RFC 3602 §3 and RFC 2451 §2.3 require the CBC IV to be unpredictable to
//! an attacker (a predictable IV enables the chosen-plaintext attack on CBC
//! that BEAST made famous), while RFC 4303 only requires it to be carried in
//! the packet. A random read per packet would cost a `getrandom` syscall in
//! the hot path, so each IV is instead
//!
//! ```text
//! IV = AES-128_K(nonce || seq)        (first 8 bytes for 64-bit-block ciphers)
//! ```
//!
//! with `K` (128 bits) and `nonce` (64 bits) drawn from the OS once per SA.
//! AES is a pseudo-random permutation, so under a secret key the outputs are
//! indistinguishable from random; since the sequence number never repeats on
//! an SA, neither does the input, and no two IVs of an SA collide. This is
//! the construction of NIST SP 800-38A Appendix C (encrypting a nonce).

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use zeroize::{Zeroize, Zeroizing};

use super::CryptoError;

/// IVs per `encrypt_blocks` call: what AES-NI pipelines in one go.
pub(crate) const IV_BATCH: usize = 8;

/// Makes unpredictable, never-repeating CBC IVs for one SA.
///
/// Its key schedule lives in an `aes::Aes128`, wiped on drop by the `aes`
/// crate's `zeroize` feature (enabled in the workspace); the raw key is held
/// in a [`Zeroizing`] buffer only while the schedule is built.
pub struct IvGenerator {
    cipher: Aes128,
    nonce: [u8; 8],
}

impl IvGenerator {
    /// Draws a fresh key and nonce from the OS; called once per SA, never per
    /// packet. The only failure is the OS refusing randomness, reported as an
    /// unusable suite because `CryptoError` has no variant for it.
    pub fn new() -> Result<Self, CryptoError> {
        let mut seed = Zeroizing::new([0u8; 24]);
        getrandom::getrandom(&mut seed[..])
            .map_err(|_| CryptoError::InvalidSuite("no randomness for the IV generator"))?;
        let mut key = Zeroizing::new([0u8; 16]);
        key.copy_from_slice(&seed[..16]);
        let mut nonce = [0u8; 8];
        nonce.copy_from_slice(&seed[16..]);
        Ok(Self::from_parts(&key, nonce))
    }

    /// Deterministic generator for known-answer tests and benchmarks.
    pub(crate) fn from_parts(key: &[u8; 16], nonce: [u8; 8]) -> Self {
        Self {
            cipher: Aes128::new(key.into()),
            nonce,
        }
    }

    fn input(&self, seq: u64) -> [u8; 16] {
        let mut block = [0u8; 16];
        block[..8].copy_from_slice(&self.nonce);
        block[8..].copy_from_slice(&seq.to_be_bytes());
        block
    }

    /// The 16-byte IV for the packet with sequence number `seq`; 64-bit-block
    /// ciphers take its first 8 bytes.
    pub fn iv(&self, seq: u64) -> [u8; 16] {
        let mut block = self.input(seq).into();
        self.cipher.encrypt_block(&mut block);
        block.into()
    }

    /// IVs for several packets, eight per AES call so the pipelined AES-NI
    /// path is used. Fills `min(seqs.len(), out.len())` entries.
    pub fn ivs(&self, seqs: &[u64], out: &mut [[u8; 16]]) {
        let n = seqs.len().min(out.len());
        for (seqs, out) in seqs[..n]
            .chunks(IV_BATCH)
            .zip(out[..n].chunks_mut(IV_BATCH))
        {
            let mut blocks = [aes::Block::default(); IV_BATCH];
            for (b, &seq) in blocks.iter_mut().zip(seqs) {
                *b = self.input(seq).into();
            }
            let k = seqs.len();
            self.cipher.encrypt_blocks(&mut blocks[..k]);
            for (o, b) in out.iter_mut().zip(&blocks[..k]) {
                o.copy_from_slice(b);
            }
        }
    }
}

impl Drop for IvGenerator {
    fn drop(&mut self) {
        self.nonce.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iv_is_aes_of_the_nonce_and_sequence_number() {
        // FIPS-197 Appendix C.1: AES-128(000102..0f, 00112233..ff) = 69c4e0d8...
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let gen = IvGenerator::from_parts(&key, [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77]);
        let iv = gen.iv(0x8899_aabb_ccdd_eeff);
        assert_eq!(hex::encode(iv), "69c4e0d86a7b0430d8cdb78070b4c55a");
    }

    #[test]
    fn batched_ivs_equal_single_ivs_for_every_batch_size() {
        let gen = IvGenerator::new().unwrap();
        for n in 0..=20u64 {
            let seqs: Vec<u64> = (0..n).map(|i| i * 0x1_0000_0001 + 3).collect();
            let mut out = vec![[0u8; 16]; n as usize];
            gen.ivs(&seqs, &mut out);
            for (s, iv) in seqs.iter().zip(&out) {
                assert_eq!(*iv, gen.iv(*s));
            }
        }
    }

    #[test]
    fn ivs_do_not_repeat_across_sequence_numbers_or_sas() {
        let a = IvGenerator::new().unwrap();
        let b = IvGenerator::new().unwrap();
        let mut seen = std::collections::HashSet::new();
        for seq in 0..10_000u64 {
            assert!(seen.insert(a.iv(seq)));
            assert!(seen.insert(b.iv(seq)));
        }
    }

    #[test]
    fn mismatched_batch_lengths_fill_only_the_common_prefix() {
        let gen = IvGenerator::new().unwrap();
        let mut out = [[0u8; 16]; 3];
        gen.ivs(&[1, 2, 3, 4, 5], &mut out);
        assert_eq!(out[2], gen.iv(3));
        let mut out = [[0u8; 16]; 5];
        gen.ivs(&[1, 2], &mut out);
        assert_eq!(out[1], gen.iv(2));
        assert_eq!(out[2], [0u8; 16]);
    }
}
