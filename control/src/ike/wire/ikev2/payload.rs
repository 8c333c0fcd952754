//! IKEv2 payload types, the typed [`Payload`] with its critical bit, and
//! the small payloads (RFC 7296 §3.2, §3.4-3.9, §3.12, §3.15, §3.16).

use crate::ike::wire::chain::RawPayload;
use crate::ike::wire::codec::{count_u16, Reader};
use crate::ike::wire::ident::{IdSpace, IdType, Identity};
use crate::ike::wire::{Error, Result};

use super::notify::{Delete, Notify};
use super::sa::SecurityAssociation;
use super::sk::{Encrypted, EncryptedFragment};
use super::ts::{self, TrafficSelector};

/// The critical bit of the generic payload header.
const CRITICAL: u8 = 0x80;

open_enum! {
    /// Next Payload type (RFC 7296 §3.2, RFC 7383 §2.5).
    pub struct PayloadType(u8) {
        /// End of the chain.
        NONE = 0,
        /// Security Association.
        SA = 33,
        /// Key Exchange.
        KE = 34,
        /// Identification - Initiator.
        IDI = 35,
        /// Identification - Responder.
        IDR = 36,
        /// Certificate.
        CERT = 37,
        /// Certificate Request.
        CERTREQ = 38,
        /// Authentication.
        AUTH = 39,
        /// Nonce.
        NONCE = 40,
        /// Notify.
        NOTIFY = 41,
        /// Delete.
        DELETE = 42,
        /// Vendor ID.
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator.
        TSI = 44,
        /// Traffic Selector - Responder.
        TSR = 45,
        /// Encrypted and Authenticated.
        SK = 46,
        /// Configuration.
        CP = 47,
        /// Extensible Authentication.
        EAP = 48,
        /// Encrypted and Authenticated Fragment (RFC 7383).
        SKF = 53,
    }
}

open_enum! {
    /// Auth Method (RFC 7296 §3.8, RFC 7427).
    pub struct AuthMethod(u8) {
        /// RSA digital signature.
        RSA_DIGITAL_SIGNATURE = 1,
        /// Shared key message integrity code (PSK).
        SHARED_KEY_MIC = 2,
        /// DSS digital signature.
        DSS_DIGITAL_SIGNATURE = 3,
        /// ECDSA with SHA-256 on P-256 (RFC 4754).
        ECDSA_SHA256_P256 = 9,
        /// ECDSA with SHA-384 on P-384.
        ECDSA_SHA384_P384 = 10,
        /// ECDSA with SHA-512 on P-521.
        ECDSA_SHA512_P521 = 11,
        /// Digital signature (RFC 7427).
        DIGITAL_SIGNATURE = 14,
    }
}

/// A payload with its critical bit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Payload {
    /// C: the receiver must reject the message if it does not know the
    /// type (ignored for known types, but kept).
    pub critical: bool,
    /// The payload.
    pub body: PayloadBody,
}

impl From<PayloadBody> for Payload {
    /// A non-critical payload.
    fn from(body: PayloadBody) -> Payload {
        Payload {
            critical: false,
            body,
        }
    }
}

/// A Key Exchange payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyExchange {
    /// Diffie-Hellman group (`iana::dh`).
    pub group: u16,
    /// The public value.
    pub data: Vec<u8>,
}

/// An Authentication payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Authentication {
    /// Method.
    pub method: AuthMethod,
    /// Authentication data (for PSK: prf(prf(key, pad), signed octets)).
    pub data: Vec<u8>,
}

/// A Certificate or Certificate Request payload, kept opaque.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Certificate {
    /// Certificate encoding (RFC 7296 §3.6).
    pub encoding: u8,
    /// Data.
    pub data: Vec<u8>,
}

/// A Configuration payload (RFC 7296 §3.15).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Configuration {
    /// CFG_REQUEST 1, CFG_REPLY 2, CFG_SET 3, CFG_ACK 4.
    pub cfg_type: u8,
    /// Attributes.
    pub attributes: Vec<ConfigAttribute>,
}

/// One configuration attribute: R bit (reserved) | type (15) | length | value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConfigAttribute {
    /// Attribute type (15 bits).
    pub attr_type: u16,
    /// Value (empty in a request).
    pub value: Vec<u8>,
}

/// The typed contents of an IKEv2 payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PayloadBody {
    /// Security Association.
    Sa(SecurityAssociation),
    /// Key Exchange.
    KeyExchange(KeyExchange),
    /// IDi.
    IdInitiator(Identity),
    /// IDr.
    IdResponder(Identity),
    /// Certificate.
    Certificate(Certificate),
    /// Certificate Request.
    CertificateRequest(Certificate),
    /// Authentication.
    Auth(Authentication),
    /// Nonce.
    Nonce(Vec<u8>),
    /// Notify.
    Notify(Notify),
    /// Delete.
    Delete(Delete),
    /// Vendor ID (see [`crate::ike::wire::vendor::KnownVendor`]).
    VendorId(Vec<u8>),
    /// TSi.
    TsInitiator(Vec<TrafficSelector>),
    /// TSr.
    TsResponder(Vec<TrafficSelector>),
    /// Encrypted (must be the last payload).
    Encrypted(Encrypted),
    /// Configuration.
    Configuration(Configuration),
    /// EAP message, kept opaque.
    Eap(Vec<u8>),
    /// Encrypted Fragment (must be the last payload).
    EncryptedFragment(EncryptedFragment),
    /// A non-critical payload of a type this decoder does not read.
    Unknown {
        /// Payload type (never one of the typed ones above, never 0).
        payload_type: PayloadType,
        /// Body after the generic header.
        body: Vec<u8>,
    },
}

impl PayloadBody {
    /// The payload type this is sent as.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            PayloadBody::Sa(_) => PayloadType::SA,
            PayloadBody::KeyExchange(_) => PayloadType::KE,
            PayloadBody::IdInitiator(_) => PayloadType::IDI,
            PayloadBody::IdResponder(_) => PayloadType::IDR,
            PayloadBody::Certificate(_) => PayloadType::CERT,
            PayloadBody::CertificateRequest(_) => PayloadType::CERTREQ,
            PayloadBody::Auth(_) => PayloadType::AUTH,
            PayloadBody::Nonce(_) => PayloadType::NONCE,
            PayloadBody::Notify(_) => PayloadType::NOTIFY,
            PayloadBody::Delete(_) => PayloadType::DELETE,
            PayloadBody::VendorId(_) => PayloadType::VENDOR_ID,
            PayloadBody::TsInitiator(_) => PayloadType::TSI,
            PayloadBody::TsResponder(_) => PayloadType::TSR,
            PayloadBody::Encrypted(_) => PayloadType::SK,
            PayloadBody::Configuration(_) => PayloadType::CP,
            PayloadBody::Eap(_) => PayloadType::EAP,
            PayloadBody::EncryptedFragment(_) => PayloadType::SKF,
            PayloadBody::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Whether the decoder reads this type into a typed variant.
    pub(crate) fn is_typed(payload_type: PayloadType) -> bool {
        matches!(payload_type.0, 33..=48 | 53)
    }

    /// Decodes a payload from the chain. The critical bit is the
    /// caller's; here only the reserved bits (must be 0).
    pub(crate) fn decode(raw: RawPayload<'_>) -> Result<PayloadBody> {
        if raw.flags & !CRITICAL != 0 {
            return Err(Error::ReservedNotZero {
                payload: raw.payload_type,
            });
        }
        let body = raw.body;
        let payload_type = PayloadType(raw.payload_type);
        Ok(match payload_type {
            PayloadType::SA => PayloadBody::Sa(SecurityAssociation::decode(body)?),
            PayloadType::KE => PayloadBody::KeyExchange(KeyExchange::decode(body)?),
            PayloadType::IDI => PayloadBody::IdInitiator(decode_id(35, body)?),
            PayloadType::IDR => PayloadBody::IdResponder(decode_id(36, body)?),
            PayloadType::CERT => PayloadBody::Certificate(Certificate::decode(37, body)?),
            PayloadType::CERTREQ => PayloadBody::CertificateRequest(Certificate::decode(38, body)?),
            PayloadType::AUTH => PayloadBody::Auth(Authentication::decode(body)?),
            PayloadType::NONCE => PayloadBody::Nonce(body.to_vec()),
            PayloadType::NOTIFY => PayloadBody::Notify(Notify::decode(body)?),
            PayloadType::DELETE => PayloadBody::Delete(Delete::decode(body)?),
            PayloadType::VENDOR_ID => PayloadBody::VendorId(body.to_vec()),
            PayloadType::TSI => PayloadBody::TsInitiator(ts::decode(44, body)?),
            PayloadType::TSR => PayloadBody::TsResponder(ts::decode(45, body)?),
            PayloadType::SK => PayloadBody::Encrypted(Encrypted {
                first_payload: PayloadType(raw.next_payload),
                data: body.to_vec(),
            }),
            PayloadType::CP => PayloadBody::Configuration(Configuration::decode(body)?),
            PayloadType::EAP => PayloadBody::Eap(body.to_vec()),
            PayloadType::SKF => PayloadBody::EncryptedFragment(EncryptedFragment::decode(
                PayloadType(raw.next_payload),
                body,
            )?),
            _ => PayloadBody::Unknown {
                payload_type,
                body: body.to_vec(),
            },
        })
    }

    /// Appends the body, everything after the generic header, exactly as
    /// it is sent (and, for a decoded payload, as it was received). For
    /// IDi/IDr this is the RestOfInitIDPayload / RestOfRespIDPayload that
    /// AUTH signs (RFC 7296 §2.15).
    pub fn encode_body(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            PayloadBody::Sa(sa) => sa.encode(out)?,
            PayloadBody::KeyExchange(ke) => {
                out.extend_from_slice(&ke.group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ke.data);
            }
            PayloadBody::IdInitiator(id) => encode_id(35, id, out)?,
            PayloadBody::IdResponder(id) => encode_id(36, id, out)?,
            PayloadBody::Certificate(c) | PayloadBody::CertificateRequest(c) => {
                out.push(c.encoding);
                out.extend_from_slice(&c.data);
            }
            PayloadBody::Auth(a) => {
                out.extend_from_slice(&[a.method.0, 0, 0, 0]);
                out.extend_from_slice(&a.data);
            }
            PayloadBody::Notify(n) => n.encode(out)?,
            PayloadBody::Delete(d) => d.encode(out)?,
            PayloadBody::TsInitiator(t) | PayloadBody::TsResponder(t) => ts::encode(t, out)?,
            PayloadBody::Encrypted(sk) => out.extend_from_slice(&sk.data),
            PayloadBody::Configuration(cp) => cp.encode(out)?,
            PayloadBody::EncryptedFragment(skf) => skf.encode(out)?,
            PayloadBody::Nonce(d) | PayloadBody::VendorId(d) | PayloadBody::Eap(d) => {
                out.extend_from_slice(d)
            }
            PayloadBody::Unknown { payload_type, body } => {
                if payload_type.0 == 0 || PayloadBody::is_typed(*payload_type) {
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

impl Payload {
    /// The generic header's flags byte.
    pub(crate) fn flags(&self) -> u8 {
        if self.critical {
            CRITICAL
        } else {
            0
        }
    }

    /// Decodes a payload, applying the critical-bit rule of RFC 7296
    /// §2.5 to types this decoder does not read.
    pub(crate) fn decode(raw: RawPayload<'_>) -> Result<Payload> {
        let critical = raw.flags & CRITICAL != 0;
        if critical && !PayloadBody::is_typed(PayloadType(raw.payload_type)) {
            return Err(Error::UnsupportedCriticalPayload(raw.payload_type));
        }
        Ok(Payload {
            critical,
            body: PayloadBody::decode(raw)?,
        })
    }
}

fn short(payload: u8, body: &[u8], minimum: usize) -> Error {
    Error::PayloadTooShort {
        payload,
        length: body.len() + 4,
        minimum,
    }
}

/// ID Type | RESERVED (3) | Identification Data (RFC 7296 §3.5).
fn decode_id(payload: u8, body: &[u8]) -> Result<Identity> {
    let mut r = Reader::new(body);
    let (Some(id_type), Some(reserved)) = (r.u8(), r.array::<3>()) else {
        return Err(short(payload, body, 8));
    };
    if reserved != [0; 3] {
        return Err(Error::ReservedNotZero { payload });
    }
    Identity::decode(IdSpace::V2, IdType(id_type), r.rest())
}

fn encode_id(payload: u8, id: &Identity, out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&[id.id_type().0, 0, 0, 0]);
    id.encode(IdSpace::V2, payload, out)
}

impl KeyExchange {
    /// DH Group Num (2) | RESERVED (2) | Key Exchange Data.
    fn decode(body: &[u8]) -> Result<KeyExchange> {
        let mut r = Reader::new(body);
        let (Some(group), Some(reserved)) = (r.u16(), r.u16()) else {
            return Err(short(34, body, 8));
        };
        if reserved != 0 {
            return Err(Error::ReservedNotZero { payload: 34 });
        }
        Ok(KeyExchange {
            group,
            data: r.rest().to_vec(),
        })
    }
}

impl Authentication {
    /// Auth Method | RESERVED (3) | Authentication Data.
    fn decode(body: &[u8]) -> Result<Authentication> {
        let mut r = Reader::new(body);
        let (Some(method), Some(reserved)) = (r.u8(), r.array::<3>()) else {
            return Err(short(39, body, 8));
        };
        if reserved != [0; 3] {
            return Err(Error::ReservedNotZero { payload: 39 });
        }
        Ok(Authentication {
            method: AuthMethod(method),
            data: r.rest().to_vec(),
        })
    }
}

impl Certificate {
    fn decode(payload: u8, body: &[u8]) -> Result<Certificate> {
        let Some((&encoding, data)) = body.split_first() else {
            return Err(short(payload, body, 5));
        };
        Ok(Certificate {
            encoding,
            data: data.to_vec(),
        })
    }
}

impl Configuration {
    /// CFG Type | RESERVED (3) | Configuration Attributes.
    fn decode(body: &[u8]) -> Result<Configuration> {
        let mut r = Reader::new(body);
        let (Some(cfg_type), Some(reserved)) = (r.u8(), r.array::<3>()) else {
            return Err(short(47, body, 8));
        };
        if reserved != [0; 3] {
            return Err(Error::ReservedNotZero { payload: 47 });
        }
        let mut attributes = Vec::new();
        while r.remaining() > 0 {
            let available = r.remaining();
            let (Some(raw_type), Some(len)) = (r.u16(), r.u16()) else {
                return Err(Error::AttributePastEnd {
                    payload: 47,
                    attr_type: 0,
                    needed: 4,
                    available,
                });
            };
            if raw_type & 0x8000 != 0 {
                return Err(Error::ReservedNotZero { payload: 47 });
            }
            let value = r.take(usize::from(len)).ok_or(Error::AttributePastEnd {
                payload: 47,
                attr_type: raw_type,
                needed: 4 + usize::from(len),
                available,
            })?;
            attributes.push(ConfigAttribute {
                attr_type: raw_type,
                value: value.to_vec(),
            });
        }
        Ok(Configuration {
            cfg_type,
            attributes,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        out.extend_from_slice(&[self.cfg_type, 0, 0, 0]);
        for a in &self.attributes {
            if a.attr_type & 0x8000 != 0 {
                return Err(Error::Malformed {
                    payload: 47,
                    reason: "configuration attribute type above 15 bits",
                });
            }
            out.extend_from_slice(&a.attr_type.to_be_bytes());
            out.extend_from_slice(
                &count_u16(a.value.len(), "configuration attribute")?.to_be_bytes(),
            );
            out.extend_from_slice(&a.value);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn raw(payload_type: u8, flags: u8, body: &[u8]) -> RawPayload<'_> {
        RawPayload {
            payload_type,
            next_payload: 0,
            flags,
            body,
        }
    }

    fn round_trip(payload_type: u8, body: &[u8]) -> PayloadBody {
        let p = PayloadBody::decode(raw(payload_type, 0, body)).unwrap();
        assert_eq!(p.payload_type().0, payload_type);
        let mut out = Vec::new();
        p.encode_body(&mut out).unwrap();
        assert_eq!(out, body, "{p:?}");
        p
    }

    #[test]
    fn unknown_critical_payload_is_an_error_carrying_its_type() {
        assert_eq!(
            Payload::decode(raw(200, 0x80, &[1, 2])),
            Err(Error::UnsupportedCriticalPayload(200))
        );
        let p = Payload::decode(raw(200, 0, &[1, 2])).unwrap();
        assert_eq!(
            p.body,
            PayloadBody::Unknown {
                payload_type: PayloadType(200),
                body: vec![1, 2]
            }
        );
        // A known type with the critical bit is accepted, and the bit kept.
        let p = Payload::decode(raw(40, 0x80, &[1; 16])).unwrap();
        assert!(p.critical);
        assert_eq!(p.flags(), 0x80);
    }

    #[test]
    fn reserved_bits_of_the_generic_header_must_be_zero() {
        assert_eq!(
            Payload::decode(raw(40, 0x01, &[])),
            Err(Error::ReservedNotZero { payload: 40 })
        );
    }

    #[test]
    fn ke_carries_group_and_data() {
        let p = round_trip(34, &[0, 2, 0, 0, 0xaa, 0xbb]);
        assert_eq!(
            p,
            PayloadBody::KeyExchange(KeyExchange {
                group: 2,
                data: vec![0xaa, 0xbb]
            })
        );
        assert!(matches!(
            PayloadBody::decode(raw(34, 0, &[0, 2, 0])),
            Err(Error::PayloadTooShort { payload: 34, .. })
        ));
        assert_eq!(
            PayloadBody::decode(raw(34, 0, &[0, 2, 0, 1])),
            Err(Error::ReservedNotZero { payload: 34 })
        );
    }

    #[test]
    fn ids_decode_by_type_and_refuse_wrong_lengths() {
        let p = round_trip(35, &[1, 0, 0, 0, 198, 18, 0, 1]);
        assert_eq!(
            p,
            PayloadBody::IdInitiator(Identity::Ipv4(Ipv4Addr::new(198, 18, 0, 1)))
        );
        round_trip(36, &[2, 0, 0, 0, b'g', b'w']);
        round_trip(36, &[3, 0, 0, 0, b'a', b'@', b'b']);
        round_trip(36, &[11, 0, 0, 0, 1, 2, 3]);
        round_trip(36, &[9, 0, 0, 0, 0x30, 0]);
        assert_eq!(
            PayloadBody::decode(raw(35, 0, &[5, 0, 0, 0, 0xfd, 0])),
            Err(Error::IdLength {
                id_type: 5,
                length: 2
            })
        );
        assert!(matches!(
            PayloadBody::decode(raw(35, 0, &[1, 0, 0])),
            Err(Error::PayloadTooShort { payload: 35, .. })
        ));
        assert_eq!(
            PayloadBody::decode(raw(35, 0, &[2, 0, 1, 0, b'x'])),
            Err(Error::ReservedNotZero { payload: 35 })
        );
    }

    #[test]
    fn auth_carries_method_and_data() {
        let p = round_trip(39, &[2, 0, 0, 0, 1, 2, 3]);
        let PayloadBody::Auth(a) = p else { panic!() };
        assert_eq!(a.method, AuthMethod::SHARED_KEY_MIC);
        assert!(PayloadBody::decode(raw(39, 0, &[2, 0, 0])).is_err());
    }

    #[test]
    fn configuration_attributes_round_trip_and_are_bounded() {
        // CFG_REQUEST: INTERNAL_IP4_ADDRESS (empty), INTERNAL_IP4_DNS (4 bytes).
        round_trip(47, &[1, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 4, 198, 18, 0, 53]);
        assert!(matches!(
            PayloadBody::decode(raw(47, 0, &[1, 0, 0, 0, 0, 3, 0, 5, 198, 18, 0, 53])),
            Err(Error::AttributePastEnd { payload: 47, .. })
        ));
        assert_eq!(
            PayloadBody::decode(raw(47, 0, &[1, 0, 0, 0, 0x80, 3, 0, 0])),
            Err(Error::ReservedNotZero { payload: 47 })
        );
    }

    #[test]
    fn opaque_payloads_keep_their_bytes() {
        for ty in [40, 43, 48] {
            round_trip(ty, &[]);
            round_trip(ty, &[1, 2, 3]);
        }
        round_trip(37, &[4, 0x30]);
        round_trip(38, &[4]);
        assert!(PayloadBody::decode(raw(37, 0, &[])).is_err());
    }
}
