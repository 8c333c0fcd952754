//! The ISAKMP SA's encryption (RFC 2409 Appendix B): CBC over the payload
//! chain with the negotiated DES, 3DES or AES key, zero padding to the
//! block size, and the IV chained from the last ciphertext block of the
//! previous message of the same exchange.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::config::ike::IkeCipher;

/// A ciphertext that cannot be decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CipherError {
    #[error("ciphertext of {len} octets is not a whole number of {block}-octet blocks")]
    NotBlockAligned { len: usize, block: usize },
    #[error("the key is {got} octets, {expected} expected")]
    KeyLength { got: usize, expected: usize },
}

/// The ISAKMP SA's cipher and key.
pub struct IsakmpCipher {
    alg: IkeCipher,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IsakmpCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IsakmpCipher({:?}, <key>)", self.alg)
    }
}

/// Key length in octets of a phase 1 cipher.
pub fn key_len(alg: IkeCipher) -> usize {
    match alg {
        IkeCipher::Des => 8,
        IkeCipher::TripleDes => 24,
        IkeCipher::AesCbc(bits) => usize::from(bits) / 8,
    }
}

/// Block length in octets of a phase 1 cipher (the IV length too).
pub fn block_len(alg: IkeCipher) -> usize {
    match alg {
        IkeCipher::Des | IkeCipher::TripleDes => 8,
        IkeCipher::AesCbc(_) => 16,
    }
}

impl IsakmpCipher {
    pub fn new(alg: IkeCipher, key: Zeroizing<Vec<u8>>) -> Result<IsakmpCipher, CipherError> {
        let expected = key_len(alg);
        if key.len() != expected
            || !matches!(
                alg,
                IkeCipher::Des | IkeCipher::TripleDes | IkeCipher::AesCbc(128 | 192 | 256)
            )
        {
            return Err(CipherError::KeyLength {
                got: key.len(),
                expected,
            });
        }
        Ok(IsakmpCipher { alg, key })
    }

    pub fn block_len(&self) -> usize {
        block_len(self.alg)
    }

    /// Pads `plaintext` with zeros to the block size and encrypts it
    /// with `iv`; returns the ciphertext (its last block is the next IV).
    pub fn encrypt(&self, iv: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let bl = self.block_len();
        let mut data = plaintext.to_vec();
        data.resize(plaintext.len().div_ceil(bl) * bl, 0);
        let mut prev = iv.to_vec();
        for block in data.chunks_mut(bl) {
            for (b, p) in block.iter_mut().zip(&prev) {
                *b ^= p;
            }
            self.block(block, true);
            prev.copy_from_slice(block);
        }
        data
    }

    /// Decrypts `ciphertext` with `iv` (padding is left for the payload
    /// decoder to skip).
    pub fn decrypt(&self, iv: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CipherError> {
        let bl = self.block_len();
        if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(bl) || iv.len() != bl {
            return Err(CipherError::NotBlockAligned {
                len: ciphertext.len(),
                block: bl,
            });
        }
        let mut out = Zeroizing::new(ciphertext.to_vec());
        let mut prev = iv.to_vec();
        for (block, ct) in out.chunks_mut(bl).zip(ciphertext.chunks(bl)) {
            self.block(block, false);
            for (b, p) in block.iter_mut().zip(&prev) {
                *b ^= p;
            }
            prev.copy_from_slice(ct);
        }
        Ok(out)
    }

    fn block(&self, block: &mut [u8], encrypt: bool) {
        macro_rules! run {
            ($c:ty) => {{
                let c = <$c>::new_from_slice(&self.key).expect("key length checked in new");
                let b = GenericArray::from_mut_slice(block);
                if encrypt {
                    c.encrypt_block(b)
                } else {
                    c.decrypt_block(b)
                }
            }};
        }
        match self.alg {
            IkeCipher::Des => run!(des::Des),
            IkeCipher::TripleDes => run!(des::TdesEde3),
            IkeCipher::AesCbc(128) => run!(aes::Aes128),
            IkeCipher::AesCbc(192) => run!(aes::Aes192),
            IkeCipher::AesCbc(_) => run!(aes::Aes256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// NIST SP 800-38A F.2.1/F.2.2 (CBC-AES128) and F.2.5 (CBC-AES256).
    #[test]
    fn aes_cbc_matches_sp800_38a() {
        let iv = unhex("000102030405060708090a0b0c0d0e0f");
        let pt = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51");
        for (bits, key, ct) in [
            (
                128,
                "2b7e151628aed2a6abf7158809cf4f3c",
                "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2",
            ),
            (
                256,
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d",
            ),
        ] {
            let c = IsakmpCipher::new(IkeCipher::AesCbc(bits), Zeroizing::new(unhex(key))).unwrap();
            assert_eq!(c.encrypt(&iv, &pt), unhex(ct));
            assert_eq!(&c.decrypt(&iv, &unhex(ct)).unwrap()[..], &pt[..]);
        }
    }

    /// 3DES and DES cross-checked against OpenSSL (3DES in the default
    /// provider; DES through a 3DES key whose three parts are equal, which
    /// is single DES by construction).
    #[test]
    fn des_and_3des_match_openssl() {
        use openssl::symm::{encrypt, Cipher};
        let key = unhex("0123456789abcdef23456789abcdef01456789abcdef0123");
        let iv = unhex("1234567890abcdef");
        let pt = b"IKE phase 1 payloads, 32 octets".to_vec();
        let pt = [pt.as_slice(), &[0]].concat();
        let ours = IsakmpCipher::new(IkeCipher::TripleDes, Zeroizing::new(key.clone())).unwrap();
        let mut theirs = encrypt(Cipher::des_ede3_cbc(), &key, Some(&iv), &pt).unwrap();
        theirs.truncate(pt.len());
        assert_eq!(ours.encrypt(&iv, &pt), theirs);
        let single = unhex("0123456789abcdef");
        let des = IsakmpCipher::new(IkeCipher::Des, Zeroizing::new(single.clone())).unwrap();
        let k3 = [single.as_slice(), &single, &single].concat();
        let mut theirs = encrypt(Cipher::des_ede3_cbc(), &k3, Some(&iv), &pt).unwrap();
        theirs.truncate(pt.len());
        assert_eq!(des.encrypt(&iv, &pt), theirs);
    }

    #[test]
    fn padding_and_bad_lengths() {
        let c = IsakmpCipher::new(IkeCipher::AesCbc(128), Zeroizing::new(vec![7; 16])).unwrap();
        let iv = [1u8; 16];
        let ct = c.encrypt(&iv, b"short");
        assert_eq!(ct.len(), 16);
        let pt = c.decrypt(&iv, &ct).unwrap();
        assert_eq!(&pt[..5], b"short");
        assert!(pt[5..].iter().all(|&b| b == 0));
        assert!(c.decrypt(&iv, &ct[..15]).is_err());
        assert!(c.decrypt(&iv, &[]).is_err());
        assert!(IsakmpCipher::new(IkeCipher::AesCbc(128), Zeroizing::new(vec![0; 8])).is_err());
    }
}
