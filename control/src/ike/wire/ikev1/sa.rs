//! The Security Association payload of the IPsec DOI with its Proposal
//! and Transform substructures (RFC 2408 §3.4-3.6, RFC 2407 §4.6.1).
//!
//! ```text
//! SA body:        DOI (4) | Situation (4) | Proposal ...
//! Proposal:       Next 2/0 | RESERVED | Length (2)
//!                 Proposal # | Protocol-Id | SPI Size | # of Transforms
//!                 SPI (SPI Size bytes) | Transform ...
//! Transform:      Next 3/0 | RESERVED | Length (2)
//!                 Transform # | Transform-Id | RESERVED2 (2)
//!                 SA Attributes ...
//! ```
//!
//! Proposals sharing a number are one AND-ed suite (AH with ESP); the
//! transforms inside a proposal are alternatives (RFC 2408 §4.2).

use crate::ike::wire::attribute::{self, Attribute};
use crate::ike::wire::chain::{split_substructures, write_substructures};
use crate::ike::wire::codec::{count_u8, Reader};
use crate::ike::wire::{Error, Result};

open_enum! {
    /// Protocol-Id of a proposal, notification or delete (RFC 2407 §4.4.1).
    pub struct ProtocolId(u8) {
        /// The ISAKMP SA itself.
        ISAKMP = 1,
        /// AH.
        IPSEC_AH = 2,
        /// ESP.
        IPSEC_ESP = 3,
        /// IP compression.
        IPCOMP = 4,
    }
}

/// The IPsec Domain of Interpretation (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;

/// The only IPsec situation supported: no labelled secrecy or integrity
/// (RFC 2407 §4.2.1).
pub const SIT_IDENTITY_ONLY: u32 = 1;

/// Longest SPI accepted: 16 bytes, the two cookies of an ISAKMP SA; ESP
/// and AH use 4, IPComp 2.
pub const MAX_SPI_LEN: usize = 16;

const SA: u8 = 1;
const PROPOSAL: u8 = 2;
const TRANSFORM: u8 = 3;
/// Proposal and transform substructures are at least 8 bytes.
const SUBSTRUCTURE_MIN: usize = 8;

/// An SA payload: DOI IPsec, situation SIT_IDENTITY_ONLY, and proposals.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SecurityAssociation {
    /// Proposals in the sender's order of preference (at least one).
    pub proposals: Vec<Proposal>,
}

/// One proposal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Proposal number.
    pub number: u8,
    /// What the proposal is for.
    pub protocol: ProtocolId,
    /// The sender's SPI, 0..=16 bytes (empty in phase 1, 4 for ESP).
    pub spi: Vec<u8>,
    /// Alternatives, in order of preference.
    pub transforms: Vec<Transform>,
}

/// One transform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    /// Transform number.
    pub number: u8,
    /// Transform ID (`iana::transform_id`), meaning depends on the protocol.
    pub transform_id: u8,
    /// SA attributes (`iana::phase1` or `iana::phase2`).
    pub attributes: Vec<Attribute>,
}

impl SecurityAssociation {
    /// Reads an SA payload body.
    pub(crate) fn decode(body: &[u8]) -> Result<SecurityAssociation> {
        let mut r = Reader::new(body);
        let (Some(doi), Some(situation)) = (r.u32(), r.u32()) else {
            return Err(Error::PayloadTooShort {
                payload: SA,
                length: body.len() + 4,
                minimum: 12,
            });
        };
        if doi != DOI_IPSEC {
            return Err(Error::UnsupportedDoi(doi));
        }
        if situation != SIT_IDENTITY_ONLY {
            return Err(Error::UnsupportedSituation(situation));
        }
        let proposals = split_substructures(PROPOSAL, SUBSTRUCTURE_MIN, r.rest())?
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

    /// Appends the SA payload body.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.proposals.is_empty() {
            return Err(Error::Malformed {
                payload: SA,
                reason: "SA payload without a proposal",
            });
        }
        out.extend_from_slice(&DOI_IPSEC.to_be_bytes());
        out.extend_from_slice(&SIT_IDENTITY_ONLY.to_be_bytes());
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
        let (Some(number), Some(transform_id), Some(reserved)) = (r.u8(), r.u8(), r.u16()) else {
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
            number,
            transform_id,
            attributes: attribute::decode_list(TRANSFORM, r.rest())?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[self.number, self.transform_id, 0, 0]);
        attribute::encode_list(&self.attributes, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::wire::ikev1::iana::{phase1, transform_id};

    /// SA body: one ISAKMP proposal, one KEY_IKE transform with
    /// AES-128/SHA/PSK/group 2 and a 4-byte life duration.
    fn phase1_sa() -> Vec<u8> {
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 1];
        b.extend_from_slice(&[0, 0, 0, 44, 1, 1, 0, 1]);
        b.extend_from_slice(&[0, 0, 0, 36, 1, 1, 0, 0]);
        b.extend_from_slice(&[
            0x80, 1, 0, 7, 0x80, 14, 0, 128, 0x80, 2, 0, 2, 0x80, 3, 0, 1,
        ]);
        b.extend_from_slice(&[0x80, 4, 0, 2, 0, 12, 0, 4, 0, 1, 0x51, 0x80]);
        b
    }

    #[test]
    fn phase1_sa_decodes_into_its_attributes_and_back() {
        let body = phase1_sa();
        let sa = SecurityAssociation::decode(&body).unwrap();
        let t = &sa.proposals[0].transforms[0];
        assert_eq!(sa.proposals[0].protocol, ProtocolId::ISAKMP);
        assert_eq!(t.transform_id, transform_id::KEY_IKE);
        assert_eq!(
            attribute::find(&t.attributes, phase1::ENCRYPTION_ALGORITHM),
            Some(&Attribute::basic(1, phase1::encryption::AES_CBC))
        );
        assert_eq!(
            attribute::find(&t.attributes, phase1::LIFE_DURATION).and_then(Attribute::as_u64),
            Some(86_400)
        );
        let mut out = Vec::new();
        sa.encode(&mut out).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn transform_count_must_match_the_transforms_found() {
        let mut body = phase1_sa();
        body[15] = 2;
        assert_eq!(
            SecurityAssociation::decode(&body),
            Err(Error::CountMismatch {
                payload: PROPOSAL,
                what: "transform",
                declared: 2,
                found: 1
            })
        );
    }

    #[test]
    fn other_dois_and_situations_are_refused_by_name() {
        let mut body = phase1_sa();
        body[3] = 0;
        assert_eq!(
            SecurityAssociation::decode(&body),
            Err(Error::UnsupportedDoi(0))
        );
        let mut body = phase1_sa();
        body[7] = 2;
        assert_eq!(
            SecurityAssociation::decode(&body),
            Err(Error::UnsupportedSituation(2))
        );
    }

    #[test]
    fn short_sa_bodies_are_refused() {
        for n in 0..8 {
            assert!(matches!(
                SecurityAssociation::decode(&phase1_sa()[..n]),
                Err(Error::PayloadTooShort { payload: SA, .. })
            ));
        }
        assert!(matches!(
            SecurityAssociation::decode(&phase1_sa()[..8]),
            Err(Error::Malformed { payload: SA, .. })
        ));
    }

    #[test]
    fn an_spi_longer_than_sixteen_bytes_is_refused() {
        let mut body = phase1_sa();
        body[14] = 17;
        assert_eq!(
            SecurityAssociation::decode(&body),
            Err(Error::BadSpiSize {
                payload: PROPOSAL,
                size: 17
            })
        );
    }

    #[test]
    fn an_spi_past_the_proposal_is_refused() {
        // Proposal of 8 bytes announcing a 4-byte SPI and no transforms.
        let body = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 8, 1, 3, 4, 0];
        assert!(matches!(
            SecurityAssociation::decode(&body),
            Err(Error::PayloadPastEnd {
                payload: PROPOSAL,
                ..
            })
        ));
    }

    #[test]
    fn an_attribute_past_its_transform_is_refused() {
        let mut body = phase1_sa();
        let n = body.len();
        body[n - 5] = 5; // life duration TLV length 4 -> 5
        assert!(matches!(
            SecurityAssociation::decode(&body),
            Err(Error::AttributePastEnd {
                payload: TRANSFORM,
                attr_type: 12,
                ..
            })
        ));
    }

    #[test]
    fn transform_reserved_bytes_must_be_zero() {
        let mut body = phase1_sa();
        body[23] = 1;
        assert_eq!(
            SecurityAssociation::decode(&body),
            Err(Error::ReservedNotZero { payload: TRANSFORM })
        );
    }
}
