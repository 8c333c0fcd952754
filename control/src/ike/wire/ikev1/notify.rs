//! Notification and Delete payloads (RFC 2408 §3.14-3.15) with the
//! notify types of RFC 2408 §3.14.1, the IPsec DOI (RFC 2407 §4.6.3) and
//! dead peer detection (RFC 3706 §5).
//!
//! ```text
//! Notification body: DOI (4) | Protocol-ID | SPI Size | Notify Type (2)
//!                    SPI (SPI Size bytes) | Notification Data ...
//! Delete body:       DOI (4) | Protocol-Id | SPI Size | # of SPIs (2)
//!                    SPIs (# of SPIs × SPI Size bytes)
//! ```

use crate::ike::wire::attribute::{self, Attribute};
use crate::ike::wire::codec::{count_u16, Reader};
use crate::ike::wire::{Error, Result};

use super::sa::{ProtocolId, MAX_SPI_LEN};
use crate::ike::wire::spi::{check_spis, split_spis};

const NOTIFICATION: u8 = 11;
const DELETE: u8 = 12;

open_enum! {
    /// Notify Message Type.
    pub struct NotifyType(u16) {
        /// RFC 2408 §3.14.1.
        INVALID_PAYLOAD_TYPE = 1,
        /// The SA's DOI is not supported.
        DOI_NOT_SUPPORTED = 2,
        /// The SA's situation is not supported.
        SITUATION_NOT_SUPPORTED = 3,
        /// Unknown cookies.
        INVALID_COOKIE = 4,
        /// Major version not supported.
        INVALID_MAJOR_VERSION = 5,
        /// Minor version not supported.
        INVALID_MINOR_VERSION = 6,
        /// Exchange type not valid here.
        INVALID_EXCHANGE_TYPE = 7,
        /// Flags not valid here.
        INVALID_FLAGS = 8,
        /// Message ID not valid.
        INVALID_MESSAGE_ID = 9,
        /// Protocol ID not valid.
        INVALID_PROTOCOL_ID = 10,
        /// SPI not valid.
        INVALID_SPI = 11,
        /// Transform ID not valid.
        INVALID_TRANSFORM_ID = 12,
        /// Attributes not supported.
        ATTRIBUTES_NOT_SUPPORTED = 13,
        /// None of the proposals is acceptable.
        NO_PROPOSAL_CHOSEN = 14,
        /// Proposal syntax is wrong.
        BAD_PROPOSAL_SYNTAX = 15,
        /// A payload could not be parsed.
        PAYLOAD_MALFORMED = 16,
        /// Key exchange data not valid.
        INVALID_KEY_INFORMATION = 17,
        /// Identification not valid.
        INVALID_ID_INFORMATION = 18,
        /// Certificate encoding not valid.
        INVALID_CERT_ENCODING = 19,
        /// Certificate not valid.
        INVALID_CERTIFICATE = 20,
        /// Certificate type not supported.
        CERT_TYPE_UNSUPPORTED = 21,
        /// Certificate authority not valid.
        INVALID_CERT_AUTHORITY = 22,
        /// Hash not valid.
        INVALID_HASH_INFORMATION = 23,
        /// Authentication failed.
        AUTHENTICATION_FAILED = 24,
        /// Signature not valid.
        INVALID_SIGNATURE = 25,
        /// Address notification.
        ADDRESS_NOTIFICATION = 26,
        /// SA lifetime notification.
        NOTIFY_SA_LIFETIME = 27,
        /// Certificate unavailable.
        CERTIFICATE_UNAVAILABLE = 28,
        /// Exchange type not supported.
        UNSUPPORTED_EXCHANGE_TYPE = 29,
        /// Payload lengths do not add up.
        UNEQUAL_PAYLOAD_LENGTHS = 30,
        /// Status: connected (RFC 2408 §3.14.1).
        CONNECTED = 16384,
        /// IPsec DOI: the responder's lifetime is shorter than proposed
        /// (RFC 2407 §4.6.3.1); data are SA attributes.
        RESPONDER_LIFETIME = 24576,
        /// IPsec DOI: replay detection status.
        REPLAY_STATUS = 24577,
        /// IPsec DOI: forget every earlier SA with this peer.
        INITIAL_CONTACT = 24578,
        /// Dead peer detection request (RFC 3706 §5); data: sequence number.
        R_U_THERE = 36136,
        /// Dead peer detection answer.
        R_U_THERE_ACK = 36137,
    }
}

impl NotifyType {
    /// The notification RFC 2408 §5 prescribes for a message that failed
    /// to decode with this error.
    pub fn for_error(error: &Error) -> NotifyType {
        match error {
            Error::UnsupportedVersion(_) => NotifyType::INVALID_MAJOR_VERSION,
            Error::UnsupportedDoi(_) => NotifyType::DOI_NOT_SUPPORTED,
            Error::UnsupportedSituation(_) => NotifyType::SITUATION_NOT_SUPPORTED,
            Error::BadSpiSize { .. } => NotifyType::INVALID_SPI,
            Error::IdLength { .. } => NotifyType::INVALID_ID_INFORMATION,
            Error::CountMismatch { payload: 2, .. }
            | Error::BadSubstructureChain { .. }
            | Error::PayloadTooShort { payload: 2 | 3, .. }
            | Error::PayloadPastEnd { payload: 2 | 3, .. }
            | Error::AttributePastEnd { .. } => NotifyType::BAD_PROPOSAL_SYNTAX,
            Error::PayloadPastEnd { .. } | Error::BadMessageLength { .. } => {
                NotifyType::UNEQUAL_PAYLOAD_LENGTHS
            }
            _ => NotifyType::PAYLOAD_MALFORMED,
        }
    }
}

/// A Notification payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// DOI (1 for IPsec; some implementations send 0 for ISAKMP-level
    /// notifications).
    pub doi: u32,
    /// What the SPI belongs to.
    pub protocol: ProtocolId,
    /// SPI: 0..=16 bytes (the two cookies for DPD and INITIAL-CONTACT).
    pub spi: Vec<u8>,
    /// Notify type.
    pub notify_type: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notification {
    /// The sequence number of an R-U-THERE / R-U-THERE-ACK (4 bytes of
    /// data, RFC 3706 §5).
    pub fn dpd_sequence(&self) -> Option<u32> {
        let is_dpd = matches!(
            self.notify_type,
            NotifyType::R_U_THERE | NotifyType::R_U_THERE_ACK
        );
        let bytes: [u8; 4] = self.data.as_slice().try_into().ok()?;
        is_dpd.then(|| u32::from_be_bytes(bytes))
    }

    /// The data read as SA attributes (RESPONDER-LIFETIME carries the
    /// life type and duration the responder imposes).
    pub fn attributes(&self) -> Result<Vec<Attribute>> {
        attribute::decode_list(NOTIFICATION, &self.data)
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Notification> {
        let mut r = Reader::new(body);
        let (Some(doi), Some(protocol), Some(spi_size), Some(notify_type)) =
            (r.u32(), r.u8(), r.u8(), r.u16())
        else {
            return Err(Error::PayloadTooShort {
                payload: NOTIFICATION,
                length: body.len() + 4,
                minimum: 12,
            });
        };
        let spi = take_spi(NOTIFICATION, &mut r, spi_size)?;
        Ok(Notification {
            doi,
            protocol: ProtocolId(protocol),
            spi: spi.to_vec(),
            notify_type: NotifyType(notify_type),
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        let spi_size = spi_size(NOTIFICATION, self.spi.len())?;
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.extend_from_slice(&[self.protocol.0, spi_size]);
        out.extend_from_slice(&self.notify_type.0.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

fn take_spi<'a>(payload: u8, r: &mut Reader<'a>, size: u8) -> Result<&'a [u8]> {
    let size = usize::from(size);
    if size > MAX_SPI_LEN {
        return Err(Error::BadSpiSize { payload, size });
    }
    let available = r.remaining();
    r.take(size).ok_or(Error::PayloadPastEnd {
        payload,
        length: size,
        available,
    })
}

fn spi_size(payload: u8, len: usize) -> Result<u8> {
    if len > MAX_SPI_LEN {
        return Err(Error::BadSpiSize { payload, size: len });
    }
    Ok(len as u8)
}

/// A Delete payload: SAs of one protocol the sender has removed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delete {
    /// DOI (1 for IPsec).
    pub doi: u32,
    /// Protocol of the SAs.
    pub protocol: ProtocolId,
    /// SPI size: 16 for the ISAKMP SA (the cookies), 4 for ESP/AH.
    pub spi_size: u8,
    /// The SPIs, each `spi_size` bytes.
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    pub(crate) fn decode(body: &[u8]) -> Result<Delete> {
        let mut r = Reader::new(body);
        let (Some(doi), Some(protocol), Some(spi_size), Some(declared)) =
            (r.u32(), r.u8(), r.u8(), r.u16())
        else {
            return Err(Error::PayloadTooShort {
                payload: DELETE,
                length: body.len() + 4,
                minimum: 12,
            });
        };
        let spis = split_spis(DELETE, spi_size, declared, r.rest(), MAX_SPI_LEN)?;
        Ok(Delete {
            doi,
            protocol: ProtocolId(protocol),
            spi_size,
            spis,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        check_spis(DELETE, self.spi_size, &self.spis, MAX_SPI_LEN)?;
        out.extend_from_slice(&self.doi.to_be_bytes());
        out.extend_from_slice(&[self.protocol.0, self.spi_size]);
        out.extend_from_slice(&count_u16(self.spis.len(), "SPIs in a Delete")?.to_be_bytes());
        self.spis.iter().for_each(|spi| out.extend_from_slice(spi));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_u_there_carries_cookies_and_a_sequence_number() {
        let mut body = vec![0, 0, 0, 1, 1, 16, 0x8d, 0x28];
        body.extend_from_slice(&[0xab; 16]);
        body.extend_from_slice(&7u32.to_be_bytes());
        let n = Notification::decode(&body).unwrap();
        assert_eq!(n.notify_type, NotifyType::R_U_THERE);
        assert_eq!(n.protocol, ProtocolId::ISAKMP);
        assert_eq!(n.spi, [0xab; 16]);
        assert_eq!(n.dpd_sequence(), Some(7));
        let mut out = Vec::new();
        n.encode(&mut out).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn responder_lifetime_data_reads_as_attributes() {
        let body = [
            0, 0, 0, 1, 3, 4, 0x60, 0, 1, 2, 3, 4, 0x80, 1, 0, 1, 0, 2, 0, 4, 0, 0, 0x0e, 0x10,
        ];
        let n = Notification::decode(&body).unwrap();
        assert_eq!(n.notify_type, NotifyType::RESPONDER_LIFETIME);
        let attrs = n.attributes().unwrap();
        assert_eq!(attrs[1].as_u64(), Some(3600));
    }

    #[test]
    fn notification_spi_past_the_end_or_too_long_is_refused() {
        let body = [0, 0, 0, 1, 3, 4, 0x60, 0, 1, 2];
        assert!(matches!(
            Notification::decode(&body),
            Err(Error::PayloadPastEnd {
                payload: NOTIFICATION,
                ..
            })
        ));
        let body = [0, 0, 0, 1, 3, 17, 0x60, 0];
        assert!(matches!(
            Notification::decode(&body),
            Err(Error::BadSpiSize { size: 17, .. })
        ));
        for n in 0..8 {
            assert!(matches!(
                Notification::decode(&body[..n]),
                Err(Error::PayloadTooShort { .. })
            ));
        }
    }

    #[test]
    fn delete_spi_count_must_match_the_spis() {
        let body = [0, 0, 0, 1, 3, 4, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8];
        let d = Delete::decode(&body).unwrap();
        assert_eq!(d.spis, [vec![1, 2, 3, 4], vec![5, 6, 7, 8]]);
        let mut out = Vec::new();
        d.encode(&mut out).unwrap();
        assert_eq!(out, body);

        let mut three = body;
        three[7] = 3;
        assert_eq!(
            Delete::decode(&three),
            Err(Error::CountMismatch {
                payload: DELETE,
                what: "SPI",
                declared: 3,
                found: 2
            })
        );
        assert!(matches!(
            Delete::decode(&body[..15]),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn delete_with_zero_size_spis_announced_is_refused() {
        let body = [0, 0, 0, 1, 3, 0, 0xff, 0xff];
        assert_eq!(
            Delete::decode(&body),
            Err(Error::BadSpiSize {
                payload: DELETE,
                size: 0
            })
        );
    }

    #[test]
    fn errors_map_to_the_rfc_2408_notifications() {
        assert_eq!(
            NotifyType::for_error(&Error::UnsupportedDoi(2)),
            NotifyType::DOI_NOT_SUPPORTED
        );
        assert_eq!(
            NotifyType::for_error(&Error::UnsupportedVersion(0x20)),
            NotifyType::INVALID_MAJOR_VERSION
        );
        assert_eq!(
            NotifyType::for_error(&Error::TrailingData { len: 1 }),
            NotifyType::PAYLOAD_MALFORMED
        );
    }
}
