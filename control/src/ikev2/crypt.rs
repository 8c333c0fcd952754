//! The IKE SA's Encrypted payload (RFC 7296 §3.14, RFC 5282 for AES-GCM):
//! CBC with an HMAC ICV over the whole message, or AES-GCM with the
//! header up to the SK payload's generic header as associated data.
//! The wire module finds the parts ([`Encrypted::layout`]); this module
//! seals and opens them.

use openssl::symm::{self, Cipher};
use zeroize::Zeroizing;

use crate::ike::crypto::Prf;
use crate::ike::wire::ikev2::Encrypted;
use crate::ike::wire::ikev2::{
    decode_payloads, encode_payloads, sk, Header, Message, Payload, PayloadBody,
};

use super::policy::{IkeEncr, IkeInteg};

/// One direction's keys of an IKE SA.
pub struct SkKeys {
    pub encr: IkeEncr,
    pub integ: Option<IkeInteg>,
    pub ek: Zeroizing<Vec<u8>>,
    pub ak: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SkKeys({:?}, {:?}, <keys>)", self.encr, self.integ)
    }
}

/// Key length (with the GCM salt) of an IKE cipher.
pub fn encr_key_len(e: IkeEncr) -> usize {
    match e {
        IkeEncr::TripleDes => 24,
        IkeEncr::AesCbc(bits) => usize::from(bits) / 8,
        IkeEncr::AesGcm16(bits) => usize::from(bits) / 8 + 4,
    }
}

pub fn integ_prf(i: IkeInteg) -> Prf {
    match i {
        IkeInteg::Sha1_96 => Prf::HmacSha1,
        IkeInteg::Sha256_128 => Prf::HmacSha256,
        IkeInteg::Sha384_192 => Prf::HmacSha384,
        IkeInteg::Sha512_256 => Prf::HmacSha512,
    }
}

pub fn integ_key_len(i: IkeInteg) -> usize {
    integ_prf(i).output_len()
}

pub fn integ_icv_len(i: IkeInteg) -> usize {
    match i {
        IkeInteg::Sha1_96 => 12,
        IkeInteg::Sha256_128 => 16,
        IkeInteg::Sha384_192 => 24,
        IkeInteg::Sha512_256 => 32,
    }
}

fn iv_len(e: IkeEncr) -> usize {
    match e {
        IkeEncr::TripleDes | IkeEncr::AesGcm16(_) => 8,
        IkeEncr::AesCbc(_) => 16,
    }
}

fn block_len(e: IkeEncr) -> usize {
    match e {
        IkeEncr::TripleDes => 8,
        IkeEncr::AesCbc(_) => 16,
        IkeEncr::AesGcm16(_) => 1,
    }
}

fn cbc_cipher(e: IkeEncr) -> Option<Cipher> {
    Some(match e {
        IkeEncr::TripleDes => Cipher::des_ede3_cbc(),
        IkeEncr::AesCbc(128) => Cipher::aes_128_cbc(),
        IkeEncr::AesCbc(192) => Cipher::aes_192_cbc(),
        IkeEncr::AesCbc(256) => Cipher::aes_256_cbc(),
        _ => return None,
    })
}

fn gcm_cipher(bits: u16) -> Option<Cipher> {
    match bits {
        128 => Some(Cipher::aes_128_gcm()),
        256 => Some(Cipher::aes_256_gcm()),
        _ => None,
    }
}

impl SkKeys {
    fn icv_len(&self) -> usize {
        match (self.encr, self.integ) {
            (IkeEncr::AesGcm16(_), _) => 16,
            (_, Some(i)) => integ_icv_len(i),
            (_, None) => 0,
        }
    }

    /// The whole message: `header` with an SK payload carrying `payloads`.
    pub fn seal(&self, header: Header, payloads: &[Payload]) -> Option<Vec<u8>> {
        let (first, mut plain) = encode_payloads(payloads).ok()?;
        let bl = block_len(self.encr);
        let pad = (bl - (plain.len() + 1) % bl) % bl;
        plain.extend(std::iter::repeat_n(0u8, pad));
        plain.push(pad as u8);
        let ivl = iv_len(self.encr);
        let icvl = self.icv_len();
        let mut iv = vec![0u8; ivl];
        getrandom::getrandom(&mut iv).ok()?;
        // Encode with placeholder ciphertext of the right size to get the
        // header (lengths filled in), then fill in the parts.
        let data = vec![0u8; ivl + plain.len() + icvl];
        let msg = Message::new(
            header,
            [PayloadBody::Encrypted(Encrypted {
                first_payload: first,
                data,
            })],
        );
        let mut out = msg.encode().ok()?;
        let n = out.len();
        let ct_start = n - icvl - plain.len();
        let iv_start = ct_start - ivl;
        out[iv_start..ct_start].copy_from_slice(&iv);
        match self.encr {
            IkeEncr::AesGcm16(bits) => {
                let (key, salt) = self.ek.split_at(self.ek.len() - 4);
                let nonce = [salt, &iv].concat();
                let mut tag = [0u8; 16];
                let ct = symm::encrypt_aead(
                    gcm_cipher(bits)?,
                    key,
                    Some(&nonce),
                    &out[..iv_start],
                    &plain,
                    &mut tag,
                )
                .ok()?;
                out[ct_start..n - icvl].copy_from_slice(&ct);
                out[n - icvl..].copy_from_slice(&tag);
            }
            _ => {
                let mut c = symm::Crypter::new(
                    cbc_cipher(self.encr)?,
                    symm::Mode::Encrypt,
                    &self.ek,
                    Some(&iv),
                )
                .ok()?;
                c.pad(false);
                let mut ct = vec![0u8; plain.len() + bl];
                let mut k = c.update(&plain, &mut ct).ok()?;
                k += c.finalize(&mut ct[k..]).ok()?;
                out[ct_start..ct_start + k].copy_from_slice(&ct[..k]);
                let icv = integ_prf(self.integ?).prf(&self.ak, &out[..n - icvl]);
                out[n - icvl..].copy_from_slice(&icv[..icvl]);
            }
        }
        Some(out)
    }

    /// The payloads inside `msg`'s SK payload (the datagram as received),
    /// or `None` when it does not verify or decrypt.
    pub fn open(&self, datagram: &[u8], msg: &Message) -> Option<Vec<Payload>> {
        let Some(PayloadBody::Encrypted(sk)) = msg.payloads.last().map(|p| &p.body) else {
            return None;
        };
        let len =
            usize::try_from(u32::from_be_bytes(datagram.get(24..28)?.try_into().ok()?)).ok()?;
        let datagram = datagram.get(..len)?;
        let ivl = iv_len(self.encr);
        let icvl = self.icv_len();
        let layout = sk.layout(datagram.len(), ivl, icvl).ok()?;
        let iv = &datagram[layout.iv.clone()];
        let ct = &datagram[layout.ciphertext.clone()];
        let icv = &datagram[layout.icv.clone()];
        let plain = match self.encr {
            IkeEncr::AesGcm16(bits) => {
                let (key, salt) = self.ek.split_at(self.ek.len() - 4);
                let nonce = [salt, iv].concat();
                Zeroizing::new(
                    symm::decrypt_aead(
                        gcm_cipher(bits)?,
                        key,
                        Some(&nonce),
                        &datagram[layout.associated_data.clone()],
                        ct,
                        icv,
                    )
                    .ok()?,
                )
            }
            _ => {
                let expected = integ_prf(self.integ?).prf(&self.ak, &datagram[..layout.icv.start]);
                let ok: bool = subtle::ConstantTimeEq::ct_eq(&expected[..icvl], icv).into();
                if !ok || ct.is_empty() || ct.len() % block_len(self.encr) != 0 {
                    return None;
                }
                let mut c = symm::Crypter::new(
                    cbc_cipher(self.encr)?,
                    symm::Mode::Decrypt,
                    &self.ek,
                    Some(iv),
                )
                .ok()?;
                c.pad(false);
                let mut pt = Zeroizing::new(vec![0u8; ct.len() + block_len(self.encr)]);
                let mut k = c.update(ct, &mut pt).ok()?;
                k += c.finalize(&mut pt[k..]).ok()?;
                pt.truncate(k);
                pt
            }
        };
        let body = sk::unpad(&plain).ok()?;
        decode_payloads(sk.first_payload, body).ok()
    }
}
