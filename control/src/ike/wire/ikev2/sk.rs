//! The Encrypted payload, SK (RFC 7296 §3.14), and the Encrypted Fragment
//! payload, SKF (RFC 7383 §2.5).
//!
//! ```text
//! SK body:  Initialization Vector | Encrypted IKE Payloads
//!           (payloads, Padding, Pad Length) | Integrity Checksum Data
//! SKF body: Fragment Number (2) | Total Fragments (2) | same as SK
//! ```
//!
//! How long the IV and ICV are depends on the negotiated suite, so the
//! decoder keeps the body whole and [`Encrypted::parts`] splits it for the
//! lengths the caller gives. The payload's Next Payload names the first
//! payload inside ([`Encrypted::first_payload`]); it is always the last
//! payload of a message, so its body ends the message, which is what
//! [`Encrypted::layout`] uses to find what the ICV and an AEAD's
//! associated data cover (RFC 7296 §3.14, RFC 5282 §5.1).

use core::ops::Range;

use crate::ike::wire::codec::Reader;
use crate::ike::wire::{Error, Result};

use super::payload::PayloadType;

/// SK and SKF payloads have a 4-byte generic header.
const GENERIC_HEADER_LEN: usize = 4;

/// An Encrypted payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Encrypted {
    /// Type of the first payload inside.
    pub first_payload: PayloadType,
    /// IV, ciphertext and ICV, as sent.
    pub data: Vec<u8>,
}

/// An Encrypted Fragment payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptedFragment {
    /// Type of the first payload inside the reassembled message (fragment
    /// 1 only; 0 in the others).
    pub first_payload: PayloadType,
    /// Fragment number, from 1.
    pub number: u16,
    /// Total fragments.
    pub total: u16,
    /// IV, ciphertext and ICV of this fragment.
    pub data: Vec<u8>,
}

/// The three parts of an encrypted body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkParts<'a> {
    /// Initialization vector.
    pub iv: &'a [u8],
    /// Encrypted payloads with padding and Pad Length.
    pub ciphertext: &'a [u8],
    /// Integrity checksum (or AEAD tag).
    pub icv: &'a [u8],
}

/// Where the parts of the SK or SKF payload lie in the encoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkLayout {
    /// Header up to the end of the SK generic header (and of the SKF
    /// fragment fields): the associated data of an AEAD suite.
    pub associated_data: Range<usize>,
    /// The IV.
    pub iv: Range<usize>,
    /// The ciphertext.
    pub ciphertext: Range<usize>,
    /// The ICV; a non-AEAD checksum covers everything before it.
    pub icv: Range<usize>,
}

fn split(data: &[u8], iv_len: usize, icv_len: usize) -> Result<SkParts<'_>> {
    let needed = iv_len.saturating_add(icv_len);
    if data.len() < needed {
        return Err(Error::EncryptedTooShort {
            needed,
            available: data.len(),
        });
    }
    let (iv, rest) = data.split_at(iv_len);
    let (ciphertext, icv) = rest.split_at(rest.len() - icv_len);
    Ok(SkParts {
        iv,
        ciphertext,
        icv,
    })
}

/// Ranges of the parts when `data_len` bytes of SK/SKF data (after
/// `fixed` bytes of payload fields) end a `message_len`-byte message.
fn layout(
    message_len: usize,
    fixed: usize,
    data_len: usize,
    iv_len: usize,
    icv_len: usize,
) -> Result<SkLayout> {
    let needed = iv_len.saturating_add(icv_len);
    if data_len < needed {
        return Err(Error::EncryptedTooShort {
            needed,
            available: data_len,
        });
    }
    let start = message_len
        .checked_sub(data_len)
        .filter(|&s| s >= fixed + GENERIC_HEADER_LEN)
        .ok_or(Error::Malformed {
            payload: 46,
            reason: "encrypted data longer than the message",
        })?;
    let iv_end = start + iv_len;
    let icv_start = message_len - icv_len;
    Ok(SkLayout {
        associated_data: 0..start,
        iv: start..iv_end,
        ciphertext: iv_end..icv_start,
        icv: icv_start..message_len,
    })
}

impl Encrypted {
    /// Splits the body for an IV and ICV of these lengths.
    pub fn parts(&self, iv_len: usize, icv_len: usize) -> Result<SkParts<'_>> {
        split(&self.data, iv_len, icv_len)
    }

    /// Where IV, ciphertext and ICV lie in the `message_len`-byte encoded
    /// message this payload ends.
    pub fn layout(&self, message_len: usize, iv_len: usize, icv_len: usize) -> Result<SkLayout> {
        layout(message_len, 0, self.data.len(), iv_len, icv_len)
    }
}

impl EncryptedFragment {
    /// Splits the body for an IV and ICV of these lengths.
    pub fn parts(&self, iv_len: usize, icv_len: usize) -> Result<SkParts<'_>> {
        split(&self.data, iv_len, icv_len)
    }

    /// Where IV, ciphertext and ICV lie in the encoded message.
    pub fn layout(&self, message_len: usize, iv_len: usize, icv_len: usize) -> Result<SkLayout> {
        layout(message_len, 4, self.data.len(), iv_len, icv_len)
    }

    /// Fragment Number | Total Fragments | data; 1 ≤ number ≤ total
    /// (RFC 7383 §2.5).
    pub(crate) fn decode(first_payload: PayloadType, body: &[u8]) -> Result<EncryptedFragment> {
        let mut r = Reader::new(body);
        let (Some(number), Some(total)) = (r.u16(), r.u16()) else {
            return Err(Error::PayloadTooShort {
                payload: 53,
                length: body.len() + 4,
                minimum: 8,
            });
        };
        let fragment = EncryptedFragment {
            first_payload,
            number,
            total,
            data: r.rest().to_vec(),
        };
        fragment.check()?;
        Ok(fragment)
    }

    fn check(&self) -> Result<()> {
        if self.number == 0 || self.number > self.total {
            return Err(Error::Malformed {
                payload: 53,
                reason: "fragment number outside 1..=total",
            });
        }
        Ok(())
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        self.check()?;
        out.extend_from_slice(&self.number.to_be_bytes());
        out.extend_from_slice(&self.total.to_be_bytes());
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Strips the padding and Pad Length from decrypted SK contents
/// (RFC 7296 §3.14: the padding's content is not checked), leaving the
/// payloads for [`super::decode_payloads`].
pub fn unpad(plaintext: &[u8]) -> Result<&[u8]> {
    let Some((&pad_len, rest)) = plaintext.split_last() else {
        return Err(Error::EncryptedTooShort {
            needed: 1,
            available: 0,
        });
    };
    let keep = rest
        .len()
        .checked_sub(usize::from(pad_len))
        .ok_or(Error::EncryptedTooShort {
            needed: usize::from(pad_len) + 1,
            available: plaintext.len(),
        })?;
    Ok(&rest[..keep])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_split_at_the_lengths_given() {
        let sk = Encrypted {
            first_payload: PayloadType::IDI,
            data: (0u8..40).collect(),
        };
        let p = sk.parts(16, 12).unwrap();
        assert_eq!((p.iv.len(), p.ciphertext.len(), p.icv.len()), (16, 12, 12));
        assert_eq!((p.iv[0], p.ciphertext[0], p.icv[0]), (0, 16, 28));
        assert_eq!(
            sk.parts(16, 25),
            Err(Error::EncryptedTooShort {
                needed: 41,
                available: 40
            })
        );
        assert!(sk.parts(usize::MAX, 1).is_err());
    }

    #[test]
    fn layout_places_the_parts_at_the_end_of_the_message() {
        let sk = Encrypted {
            first_payload: PayloadType::IDI,
            data: vec![0; 40],
        };
        // 28-byte header, 4-byte SK header, 40 bytes of data.
        let l = sk.layout(72, 16, 12).unwrap();
        assert_eq!(l.associated_data, 0..32);
        assert_eq!((l.iv, l.ciphertext, l.icv), (32..48, 48..60, 60..72));
        assert!(sk.layout(40, 16, 12).is_err());
    }

    #[test]
    fn fragment_numbers_must_be_within_the_total() {
        for (n, t) in [(0u16, 1u16), (3, 2)] {
            let mut body = n.to_be_bytes().to_vec();
            body.extend_from_slice(&t.to_be_bytes());
            assert!(EncryptedFragment::decode(PayloadType(0), &body).is_err());
        }
        let f = EncryptedFragment::decode(PayloadType::IDI, &[0, 1, 0, 2, 9]).unwrap();
        assert_eq!((f.number, f.total, f.data.as_slice()), (1, 2, &[9][..]));
        assert!(EncryptedFragment::decode(PayloadType(0), &[0, 1, 0]).is_err());
    }

    #[test]
    fn unpad_removes_padding_and_pad_length() {
        assert_eq!(unpad(&[1, 2, 3, 0xaa, 0xbb, 2]), Ok(&[1, 2, 3][..]));
        assert_eq!(unpad(&[1, 0]), Ok(&[1][..]));
        assert!(unpad(&[]).is_err());
        assert!(unpad(&[1, 2, 3]).is_err());
    }
}
