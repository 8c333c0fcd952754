//! The IKEv2 Security Association payload: proposals of transforms
//! (RFC 7296 §3.3).
//!
//! ```text
//! Proposal:  Last Substruc 0/2 | RESERVED | Proposal Length (2)
//!            Proposal Num | Protocol ID | SPI Size | Num Transforms
//!            SPI (SPI Size bytes) | Transforms ...
//! Transform: Last Substruc 0/3 | RESERVED | Transform Length (2)
//!            Transform Type | RESERVED | Transform ID (2)
//!            Transform Attributes ...
//! ```
//!
//! The proposals are alternatives; inside one, the responder picks one
//! transform of each type (RFC 7296 §3.3.6). Proposal numbering and which
//! transform types a protocol needs are the negotiation's to check.

use crate::ike::wire::attribute::{self, Attribute};
use crate::ike::wire::chain::{split_substructures, write_substructures};
use crate::ike::wire::codec::{count_u8, Reader};
use crate::ike::wire::{Error, Result};

open_enum! {
    /// Protocol ID of a proposal, notify or delete (RFC 7296 §3.3.1).
    pub struct ProtocolId(u8) {
        /// The IKE SA.
        IKE = 1,
        /// AH.
        AH = 2,
        /// ESP.
        ESP = 3,
    }
}

open_enum! {
    /// Transform Type (RFC 7296 §3.3.2).
    pub struct TransformType(u8) {
        /// Encryption algorithm.
        ENCR = 1,
        /// Pseudorandom function.
        PRF = 2,
        /// Integrity algorithm.
        INTEG = 3,
        /// Diffie-Hellman group.
        DH = 4,
        /// Extended sequence numbers.
        ESN = 5,
    }
}

/// Longest SPI accepted: 8 bytes for the IKE SA (rekeying), 4 for
/// ESP/AH; 16 leaves room and matches IKEv1.
pub const MAX_SPI_LEN: usize = 16;

const SA: u8 = 33;
const PROPOSAL: u8 = 2;
const TRANSFORM: u8 = 3;
const SUBSTRUCTURE_MIN: usize = 8;

/// An SA payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityAssociation {
    /// Proposals (at least one), in the sender's order of preference.
    pub proposals: Vec<Proposal>,
}

/// One proposal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Proposal number (1, 2, ... in a request; the chosen one's in a reply).
    pub number: u8,
    /// Protocol.
    pub protocol: ProtocolId,
    /// The sender's SPI: empty in IKE_SA_INIT, 8 bytes when rekeying the
    /// IKE SA, 4 for ESP/AH.
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<Transform>,
}

/// One transform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    /// Transform type.
    pub transform_type: TransformType,
    /// Transform ID (`iana::encr`, `iana::prf`, ...).
    pub transform_id: u16,
    /// Attributes (only Key Length is defined).
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: TransformType, transform_id: u16) -> Transform {
        Transform {
            transform_type,
            transform_id,
            attributes: Vec::new(),
        }
    }

    /// The Key Length attribute, in bits.
    pub fn key_length(&self) -> Option<u16> {
        attribute::find(&self.attributes, super::iana::KEY_LENGTH)
            .and_then(Attribute::as_u64)
            .and_then(|v| u16::try_from(v).ok())
    }
}

impl SecurityAssociation {
    pub(crate) fn decode(body: &[u8]) -> Result<SecurityAssociation> {
        let proposals = split_substructures(PROPOSAL, SUBSTRUCTURE_MIN, body)?
            .into_iter()
            .map(Proposal::decode)
            .collect::<Result<Vec<_>>>()?;
        if proposals.is_empty() {
            return Err(Error::Malformed {
                payload: SA,
                reason: "SA payload without a proposal",
            });
        }
        Ok(SecurityAssociation { proposals })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.proposals.is_empty() {
            return Err(Error::Malformed {
                payload: SA,
                reason: "SA payload without a proposal",
            });
        }
        write_substructures(PROPOSAL, &self.proposals, out, Proposal::encode)
    }
}

impl Proposal {
    fn decode(body: &[u8]) -> Result<Proposal> {
        let mut r = Reader::new(body);
        let (Some(number), Some(protocol), Some(spi_size), Some(declared)) =
            (r.u8(), r.u8(), r.u8(), r.u8())
        else {
            // The splitter guarantees 4 body bytes (minimum length 8).
            return Err(Error::PayloadTooShort {
                payload: PROPOSAL,
                length: body.len() + 4,
                minimum: SUBSTRUCTURE_MIN,
            });
        };
        let spi_size = usize::from(spi_size);
        if spi_size > MAX_SPI_LEN {
            return Err(Error::BadSpiSize {
                payload: PROPOSAL,
                size: spi_size,
            });
        }
        let spi = r.take(spi_size).ok_or(Error::PayloadPastEnd {
            payload: PROPOSAL,
            length: SUBSTRUCTURE_MIN + spi_size,
            available: body.len() + 4,
        })?;
        let transforms = split_substructures(TRANSFORM, SUBSTRUCTURE_MIN, r.rest())?
            .into_iter()
            .map(Transform::decode)
            .collect::<Result<Vec<_>>>()?;
        if transforms.len() != usize::from(declared) {
            return Err(Error::CountMismatch {
                payload: PROPOSAL,
                what: "transform",
                declared: usize::from(declared),
                found: transforms.len(),
            });
        }
        Ok(Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi: spi.to_vec(),
            transforms,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.spi.len() > MAX_SPI_LEN {
            return Err(Error::BadSpiSize {
                payload: PROPOSAL,
                size: self.spi.len(),
            });
        }
        let count = count_u8(self.transforms.len(), "transforms in a proposal")?;
        out.extend_from_slice(&[self.number, self.protocol.0, self.spi.len() as u8, count]);
        out.extend_from_slice(&self.spi);
        write_substructures(TRANSFORM, &self.transforms, out, Transform::encode)
    }
}

impl Transform {
    fn decode(body: &[u8]) -> Result<Transform> {
        let mut r = Reader::new(body);
        let (Some(transform_type), Some(reserved), Some(transform_id)) = (r.u8(), r.u8(), r.u16())
        else {
            return Err(Error::PayloadTooShort {
                payload: TRANSFORM,
                length: body.len() + 4,
                minimum: SUBSTRUCTURE_MIN,
            });
        };
        if reserved != 0 {
            return Err(Error::ReservedNotZero { payload: TRANSFORM });
        }
        Ok(Transform {
            transform_type: TransformType(transform_type),
            transform_id,
            attributes: attribute::decode_list(TRANSFORM, r.rest())?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[self.transform_type.0, 0]);
        out.extend_from_slice(&self.transform_id.to_be_bytes());
        attribute::encode_list(&self.attributes, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::wire::ikev2::iana::{dh, encr, integ, prf};

    /// Seed 002's IKEv2 proposal: AES-CBC-128, SHA1, SHA1-96, group 2; then
    /// a second proposal with 3DES.
    fn seed_002_sa() -> Vec<u8> {
        let mut b = vec![2, 0, 0, 44, 1, 1, 0, 4];
        b.extend_from_slice(&[3, 0, 0, 12, 1, 0, 0, 12, 0x80, 14, 0, 128]);
        b.extend_from_slice(&[3, 0, 0, 8, 2, 0, 0, 2]);
        b.extend_from_slice(&[3, 0, 0, 8, 3, 0, 0, 2]);
        b.extend_from_slice(&[0, 0, 0, 8, 4, 0, 0, 2]);
        b.extend_from_slice(&[0, 0, 0, 16, 2, 1, 0, 1]);
        b.extend_from_slice(&[0, 0, 0, 8, 1, 0, 0, 3]);
        b
    }

    #[test]
    fn proposals_decode_with_their_transforms_and_key_length() {
        let body = seed_002_sa();
        let sa = SecurityAssociation::decode(&body).unwrap();
        assert_eq!(sa.proposals.len(), 2);
        let t = &sa.proposals[0].transforms;
        assert_eq!(
            (t[0].transform_type, t[0].transform_id, t[0].key_length()),
            (TransformType::ENCR, encr::AES_CBC, Some(128))
        );
        assert_eq!(
            (t[1].transform_type, t[1].transform_id),
            (TransformType::PRF, prf::HMAC_SHA1)
        );
        assert_eq!(t[2].transform_id, integ::HMAC_SHA1_96);
        assert_eq!(t[3].transform_id, dh::MODP_1024);
        assert_eq!(sa.proposals[1].transforms[0].transform_id, encr::TRIPLE_DES);
        let mut out = Vec::new();
        sa.encode(&mut out).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn last_substruc_must_agree_with_what_follows() {
        let mut body = seed_002_sa();
        body[0] = 0; // first proposal claims to be the last
        assert!(matches!(
            SecurityAssociation::decode(&body),
            Err(Error::BadSubstructureChain {
                payload: PROPOSAL,
                ..
            })
        ));
        let mut body = seed_002_sa();
        body[44] = 2; // last proposal claims more follow
        assert!(matches!(
            SecurityAssociation::decode(&body),
            Err(Error::BadSubstructureChain {
                payload: PROPOSAL,
                ..
            })
        ));
    }

    #[test]
    fn transform_count_must_match() {
        let mut body = seed_002_sa();
        body[7] = 3;
        assert_eq!(
            SecurityAssociation::decode(&body),
            Err(Error::CountMismatch {
                payload: PROPOSAL,
                what: "transform",
                declared: 3,
                found: 4
            })
        );
    }

    #[test]
    fn transform_lengths_below_eight_or_past_the_proposal_are_refused() {
        let mut body = seed_002_sa();
        body[11] = 7;
        assert!(matches!(
            SecurityAssociation::decode(&body),
            Err(Error::PayloadTooShort {
                payload: TRANSFORM,
                ..
            })
        ));
        let mut body = seed_002_sa();
        body[39] = 9; // the last transform of proposal 1 grows past it
        assert!(matches!(
            SecurityAssociation::decode(&body),
            Err(Error::PayloadPastEnd {
                payload: TRANSFORM,
                ..
            })
        ));
    }

    #[test]
    fn an_empty_sa_is_refused() {
        assert!(matches!(
            SecurityAssociation::decode(&[]),
            Err(Error::Malformed { payload: SA, .. })
        ));
    }

    #[test]
    fn reserved_transform_byte_must_be_zero() {
        let mut body = seed_002_sa();
        body[13] = 1;
        assert_eq!(
            SecurityAssociation::decode(&body),
            Err(Error::ReservedNotZero { payload: TRANSFORM })
        );
    }
}
