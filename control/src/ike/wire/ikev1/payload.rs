//! IKEv1 payload types and the typed [`Payload`]: the dispatch from a raw
//! payload in the chain to its codec, and the small payloads that need no
//! file of their own (RFC 2408 §3.7-3.13, §3.16; RFC 2407 §4.6.2; RFC 3947
//! §3.2, §5.2; Mode Config of draft-ietf-ipsec-isakmp-mode-cfg-05 §3.2).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ike::wire::attribute::{self, Attribute};
use crate::ike::wire::chain::RawPayload;
use crate::ike::wire::codec::Reader;
use crate::ike::wire::ident::{IdSpace, IdType, Identity};
use crate::ike::wire::{Error, Result};

use super::notify::{Delete, Notification};
use super::sa::SecurityAssociation;

open_enum! {
    /// Next Payload type (RFC 2408 §3.1, RFC 3947 §3.2, §5.2).
    pub struct PayloadType(u8) {
        /// End of the chain.
        NONE = 0,
        /// Security Association.
        SA = 1,
        /// Proposal (only inside an SA).
        PROPOSAL = 2,
        /// Transform (only inside a proposal).
        TRANSFORM = 3,
        /// Key Exchange.
        KEY_EXCHANGE = 4,
        /// Identification.
        IDENTIFICATION = 5,
        /// Certificate.
        CERTIFICATE = 6,
        /// Certificate Request.
        CERTIFICATE_REQUEST = 7,
        /// Hash.
        HASH = 8,
        /// Signature.
        SIGNATURE = 9,
        /// Nonce.
        NONCE = 10,
        /// Notification.
        NOTIFICATION = 11,
        /// Delete.
        DELETE = 12,
        /// Vendor ID.
        VENDOR_ID = 13,
        /// Mode Config / XAUTH attributes.
        ATTRIBUTES = 14,
        /// NAT-D (RFC 3947).
        NAT_D = 20,
        /// NAT-OA (RFC 3947).
        NAT_OA = 21,
        /// NAT-D as numbered by draft-ietf-ipsec-nat-t-ike-02/03.
        NAT_D_DRAFT = 130,
        /// NAT-OA as numbered by the drafts.
        NAT_OA_DRAFT = 131,
    }
}

/// An Identification payload: the ID type's data plus the protocol and
/// port it is restricted to (RFC 2407 §4.6.2; both 0 in phase 1 or UDP
/// 500, as peers differ).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identification {
    /// IP protocol, 0 for any.
    pub protocol: u8,
    /// Port, 0 for any.
    pub port: u16,
    /// The identity (its variant gives the ID type).
    pub identity: Identity,
}

/// A Certificate or Certificate Request payload, kept opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Certificate {
    /// Certificate encoding (RFC 2408 §3.9).
    pub encoding: u8,
    /// Certificate data, or the acceptable authority for a request.
    pub data: Vec<u8>,
}

/// A NAT-OA payload: the original address the sender sees for itself or
/// its peer (RFC 3947 §5.2), for transport-mode checksum fix-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatOa(pub IpAddr);

/// A Mode Config / XAUTH attributes payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigAttributes {
    /// ISAKMP_CFG_REQUEST 1, REPLY 2, SET 3, ACK 4.
    pub cfg_type: u8,
    /// Identifier pairing a reply with its request.
    pub identifier: u16,
    /// The attributes (XAUTH user name, password, status...).
    pub attributes: Vec<Attribute>,
}

/// One IKEv1 payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Security Association.
    Sa(SecurityAssociation),
    /// Key Exchange data (the DH public value).
    KeyExchange(Vec<u8>),
    /// Identification.
    Identification(Identification),
    /// Certificate.
    Certificate(Certificate),
    /// Certificate Request.
    CertificateRequest(Certificate),
    /// Hash (HASH_I/HASH_R, HASH(1)...).
    Hash(Vec<u8>),
    /// Signature.
    Signature(Vec<u8>),
    /// Nonce.
    Nonce(Vec<u8>),
    /// Notification.
    Notification(Notification),
    /// Delete.
    Delete(Delete),
    /// Vendor ID (see [`crate::ike::wire::vendor::KnownVendor`]).
    VendorId(Vec<u8>),
    /// Mode Config / XAUTH attributes.
    Attributes(ConfigAttributes),
    /// NAT-D hash (RFC 3947).
    NatD(Vec<u8>),
    /// NAT-OA (RFC 3947).
    NatOa(NatOa),
    /// NAT-D hash, draft numbering (payload 130).
    NatDDraft(Vec<u8>),
    /// NAT-OA, draft numbering (payload 131).
    NatOaDraft(NatOa),
    /// A payload of a type this decoder does not read, body kept as sent.
    /// The state machine answers INVALID-PAYLOAD-TYPE if it matters.
    Unknown {
        /// Payload type (never one of the typed ones above, never 0).
        payload_type: PayloadType,
        /// Body after the generic header.
        body: Vec<u8>,
    },
}

impl Payload {
    /// The payload type this payload is sent as.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::KeyExchange(_) => PayloadType::KEY_EXCHANGE,
            Payload::Identification(_) => PayloadType::IDENTIFICATION,
            Payload::Certificate(_) => PayloadType::CERTIFICATE,
            Payload::CertificateRequest(_) => PayloadType::CERTIFICATE_REQUEST,
            Payload::Hash(_) => PayloadType::HASH,
            Payload::Signature(_) => PayloadType::SIGNATURE,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notification(_) => PayloadType::NOTIFICATION,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::Attributes(_) => PayloadType::ATTRIBUTES,
            Payload::NatD(_) => PayloadType::NAT_D,
            Payload::NatOa(_) => PayloadType::NAT_OA,
            Payload::NatDDraft(_) => PayloadType::NAT_D_DRAFT,
            Payload::NatOaDraft(_) => PayloadType::NAT_OA_DRAFT,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Whether the decoder reads this type into a typed variant.
    fn is_typed(payload_type: PayloadType) -> bool {
        matches!(payload_type.0, 1 | 4..=14 | 20 | 21 | 130 | 131)
    }

    /// Decodes one payload from the chain; its RESERVED byte must be 0
    /// (RFC 2408 §3.2).
    pub(crate) fn decode(raw: RawPayload<'_>) -> Result<Payload> {
        if raw.flags != 0 {
            return Err(Error::ReservedNotZero {
                payload: raw.payload_type,
            });
        }
        let body = raw.body;
        let payload_type = PayloadType(raw.payload_type);
        Ok(match payload_type {
            PayloadType::SA => Payload::Sa(SecurityAssociation::decode(body)?),
            PayloadType::KEY_EXCHANGE => Payload::KeyExchange(body.to_vec()),
            PayloadType::IDENTIFICATION => Payload::Identification(Identification::decode(body)?),
            PayloadType::CERTIFICATE => Payload::Certificate(Certificate::decode(6, body)?),
            PayloadType::CERTIFICATE_REQUEST => {
                Payload::CertificateRequest(Certificate::decode(7, body)?)
            }
            PayloadType::HASH => Payload::Hash(body.to_vec()),
            PayloadType::SIGNATURE => Payload::Signature(body.to_vec()),
            PayloadType::NONCE => Payload::Nonce(body.to_vec()),
            PayloadType::NOTIFICATION => Payload::Notification(Notification::decode(body)?),
            PayloadType::DELETE => Payload::Delete(Delete::decode(body)?),
            PayloadType::VENDOR_ID => Payload::VendorId(body.to_vec()),
            PayloadType::ATTRIBUTES => Payload::Attributes(ConfigAttributes::decode(body)?),
            PayloadType::NAT_D => Payload::NatD(body.to_vec()),
            PayloadType::NAT_OA => Payload::NatOa(NatOa::decode(21, body)?),
            PayloadType::NAT_D_DRAFT => Payload::NatDDraft(body.to_vec()),
            PayloadType::NAT_OA_DRAFT => Payload::NatOaDraft(NatOa::decode(131, body)?),
            _ => Payload::Unknown {
                payload_type,
                body: body.to_vec(),
            },
        })
    }

    /// Appends the body, everything after the generic header, exactly as
    /// it is sent (and, for a decoded payload, as it was received). This
    /// is what IKEv1 hashes as SAi_b and IDii_b (RFC 2409 §5).
    pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Payload::Sa(sa) => sa.encode(out)?,
            Payload::Identification(id) => id.encode(out)?,
            Payload::Certificate(c) | Payload::CertificateRequest(c) => {
                out.push(c.encoding);
                out.extend_from_slice(&c.data);
            }
            Payload::Notification(n) => n.encode(out)?,
            Payload::Delete(d) => d.encode(out)?,
            Payload::Attributes(a) => a.encode(out)?,
            Payload::NatOa(oa) | Payload::NatOaDraft(oa) => oa.encode(out),
            Payload::KeyExchange(d)
            | Payload::Hash(d)
            | Payload::Signature(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::NatD(d)
            | Payload::NatDDraft(d) => out.extend_from_slice(d),
            Payload::Unknown { payload_type, body } => {
                if payload_type.0 == 0 || Payload::is_typed(*payload_type) {
                    return Err(Error::Malformed {
                        payload: payload_type.0,
                        reason: "an Unknown payload must have a type the decoder does not read",
                    });
                }
                out.extend_from_slice(body);
            }
        }
        Ok(())
    }
}

impl Identification {
    /// ID Type | Protocol ID | Port (2) | Identification Data.
    fn decode(body: &[u8]) -> Result<Identification> {
        let mut r = Reader::new(body);
        let (Some(id_type), Some(protocol), Some(port)) = (r.u8(), r.u8(), r.u16()) else {
            return Err(Error::PayloadTooShort {
                payload: 5,
                length: body.len() + 4,
                minimum: 8,
            });
        };
        Ok(Identification {
            protocol,
            port,
            identity: Identity::decode(IdSpace::V1, IdType(id_type), r.rest())?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.push(self.identity.id_type().0);
        out.push(self.protocol);
        out.extend_from_slice(&self.port.to_be_bytes());
        self.identity.encode(IdSpace::V1, 5, out)
    }
}

impl Certificate {
    fn decode(payload: u8, body: &[u8]) -> Result<Certificate> {
        let Some((&encoding, data)) = body.split_first() else {
            return Err(Error::PayloadTooShort {
                payload,
                length: 4,
                minimum: 5,
            });
        };
        Ok(Certificate {
            encoding,
            data: data.to_vec(),
        })
    }
}

impl NatOa {
    /// ID Type | RESERVED (1) | RESERVED (2) | address (RFC 3947 §5.2).
    fn decode(payload: u8, body: &[u8]) -> Result<NatOa> {
        let mut r = Reader::new(body);
        let (Some(id_type), Some(reserved)) = (r.u8(), r.array::<3>()) else {
            return Err(Error::PayloadTooShort {
                payload,
                length: body.len() + 4,
                minimum: 12,
            });
        };
        if reserved != [0; 3] {
            return Err(Error::ReservedNotZero { payload });
        }
        let addr = r.rest();
        let ip = match (IdType(id_type), addr.len()) {
            (IdType::IPV4_ADDR, 4) => IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(addr).unwrap_or_default(),
            )),
            (IdType::IPV6_ADDR, 16) => IpAddr::V6(Ipv6Addr::from(
                <[u8; 16]>::try_from(addr).unwrap_or_default(),
            )),
            (IdType::IPV4_ADDR | IdType::IPV6_ADDR, length) => {
                return Err(Error::IdLength { id_type, length })
            }
            _ => {
                return Err(Error::Malformed {
                    payload,
                    reason: "NAT-OA ID type must be ID_IPV4_ADDR or ID_IPV6_ADDR",
                })
            }
        };
        Ok(NatOa(ip))
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self.0 {
            IpAddr::V4(a) => {
                out.extend_from_slice(&[IdType::IPV4_ADDR.0, 0, 0, 0]);
                out.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                out.extend_from_slice(&[IdType::IPV6_ADDR.0, 0, 0, 0]);
                out.extend_from_slice(&a.octets());
            }
        }
    }
}

impl ConfigAttributes {
    /// Type | RESERVED | Identifier (2) | Attributes.
    fn decode(body: &[u8]) -> Result<ConfigAttributes> {
        let mut r = Reader::new(body);
        let (Some(cfg_type), Some(reserved), Some(identifier)) = (r.u8(), r.u8(), r.u16()) else {
            return Err(Error::PayloadTooShort {
                payload: 14,
                length: body.len() + 4,
                minimum: 8,
            });
        };
        if reserved != 0 {
            return Err(Error::ReservedNotZero { payload: 14 });
        }
        Ok(ConfigAttributes {
            cfg_type,
            identifier,
            attributes: attribute::decode_list(14, r.rest())?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[self.cfg_type, 0]);
        out.extend_from_slice(&self.identifier.to_be_bytes());
        attribute::encode_list(&self.attributes, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(payload_type: u8, body: &[u8]) -> RawPayload<'_> {
        RawPayload {
            payload_type,
            next_payload: 0,
            flags: 0,
            body,
        }
    }

    fn round_trip(payload_type: u8, body: &[u8]) -> Payload {
        let p = Payload::decode(raw(payload_type, body)).unwrap();
        assert_eq!(p.payload_type().0, payload_type);
        let mut out = Vec::new();
        p.encode_body(&mut out).unwrap();
        assert_eq!(out, body, "{p:?}");
        p
    }

    #[test]
    fn phase1_ipv4_identification_round_trips() {
        let p = round_trip(5, &[1, 17, 1, 0xf4, 198, 18, 0, 1]);
        let Payload::Identification(id) = p else {
            panic!("{p:?}")
        };
        assert_eq!((id.protocol, id.port), (17, 500));
        assert_eq!(id.identity, Identity::Ipv4(Ipv4Addr::new(198, 18, 0, 1)));
    }

    #[test]
    fn identification_too_short_for_its_header_or_type_is_refused() {
        for n in 0..4 {
            assert!(matches!(
                Payload::decode(raw(5, &[1, 0, 0, 0][..n])),
                Err(Error::PayloadTooShort { payload: 5, .. })
            ));
        }
        assert_eq!(
            Payload::decode(raw(5, &[1, 0, 0, 0, 198, 18, 0])),
            Err(Error::IdLength {
                id_type: 1,
                length: 3
            })
        );
        assert_eq!(
            Payload::decode(raw(5, &[6, 0, 0, 0, 0xfd, 0, 0, 0])),
            Err(Error::IdLength {
                id_type: 6,
                length: 4
            })
        );
    }

    #[test]
    fn opaque_payloads_keep_their_bytes() {
        for ty in [4, 8, 9, 10, 13, 20, 130] {
            round_trip(ty, &[1, 2, 3, 4, 5]);
            round_trip(ty, &[]);
        }
        round_trip(6, &[4, 0x30, 0x82]);
        round_trip(7, &[4]);
    }

    #[test]
    fn nat_oa_carries_one_address_of_its_type() {
        let p = round_trip(21, &[1, 0, 0, 0, 198, 18, 0, 9]);
        assert_eq!(p, Payload::NatOa(NatOa("198.18.0.9".parse().unwrap())));
        let mut v6 = vec![5, 0, 0, 0];
        v6.extend_from_slice(&"fd00::9".parse::<Ipv6Addr>().unwrap().octets());
        round_trip(131, &v6);
        assert!(matches!(
            Payload::decode(raw(21, &[1, 0, 0, 0, 198, 18, 0])),
            Err(Error::IdLength { id_type: 1, .. })
        ));
        assert!(matches!(
            Payload::decode(raw(21, &[2, 0, 0, 0, 198, 18, 0, 9])),
            Err(Error::Malformed { payload: 21, .. })
        ));
        assert_eq!(
            Payload::decode(raw(21, &[1, 0, 1, 0, 198, 18, 0, 9])),
            Err(Error::ReservedNotZero { payload: 21 })
        );
    }

    #[test]
    fn xauth_attributes_round_trip() {
        // REQUEST, identifier 0x1234, XAUTH-TYPE (TV 0), USER-NAME and
        // PASSWORD (empty TLVs).
        let p = round_trip(
            14,
            &[
                1, 0, 0x12, 0x34, 0xc0, 0x88, 0, 0, 0x40, 0x89, 0, 0, 0x40, 0x8a, 0, 0,
            ],
        );
        let Payload::Attributes(a) = p else { panic!() };
        assert_eq!(
            (a.cfg_type, a.identifier, a.attributes.len()),
            (1, 0x1234, 3)
        );
    }

    #[test]
    fn unknown_types_are_kept_and_reserved_must_be_zero() {
        let p = round_trip(15, &[9, 9]);
        assert!(matches!(p, Payload::Unknown { .. }));
        round_trip(2, &[]);
        let mut r = raw(13, &[]);
        r.flags = 1;
        assert_eq!(
            Payload::decode(r),
            Err(Error::ReservedNotZero { payload: 13 })
        );
        let bad = Payload::Unknown {
            payload_type: PayloadType::NONCE,
            body: vec![],
        };
        assert!(bad.encode_body(&mut Vec::new()).is_err());
    }
}
