//! Notify and Delete payloads (RFC 7296 §3.10, §3.11) and the notify
//! message types of §3.10.1 plus the extensions Espada speaks (RFC 7383
//! fragmentation).
//!
//! ```text
//! Notify body: Protocol ID | SPI Size | Notify Message Type (2)
//!              SPI (SPI Size bytes) | Notification Data ...
//! Delete body: Protocol ID | SPI Size | Num of SPIs (2) | SPIs ...
//! ```

use crate::ike::wire::codec::{count_u16, Reader};
use crate::ike::wire::spi::{check_spis, split_spis};
use crate::ike::wire::{Error, Result};

use super::sa::{ProtocolId, MAX_SPI_LEN};

const NOTIFY: u8 = 41;
const DELETE: u8 = 42;

open_enum! {
    /// Notify Message Type: errors below 16384, status types above.
    pub struct NotifyType(u16) {
        /// Data: the one-byte type of the payload not understood.
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        /// No IKE SA for these SPIs.
        INVALID_IKE_SPI = 4,
        /// The major version is not supported.
        INVALID_MAJOR_VERSION = 5,
        /// The message could not be parsed.
        INVALID_SYNTAX = 7,
        /// Message ID out of the window.
        INVALID_MESSAGE_ID = 9,
        /// An ESP/AH SPI that is not known.
        INVALID_SPI = 11,
        /// None of the proposals is acceptable.
        NO_PROPOSAL_CHOSEN = 14,
        /// Wrong DH group in KE; data: the two-byte group accepted.
        INVALID_KE_PAYLOAD = 17,
        /// Authentication failed.
        AUTHENTICATION_FAILED = 24,
        /// Only one pair of traffic selectors accepted.
        SINGLE_PAIR_REQUIRED = 34,
        /// No more Child SAs accepted.
        NO_ADDITIONAL_SAS = 35,
        /// No internal address could be assigned.
        INTERNAL_ADDRESS_FAILURE = 36,
        /// A CP payload was required.
        FAILED_CP_REQUIRED = 37,
        /// The traffic selectors are not acceptable.
        TS_UNACCEPTABLE = 38,
        /// Traffic selectors of a packet do not match the SA.
        INVALID_SELECTORS = 39,
        /// Try again later (simultaneous rekey, RFC 7296 §2.25).
        TEMPORARY_FAILURE = 43,
        /// The Child SA to rekey does not exist.
        CHILD_SA_NOT_FOUND = 44,
        /// The sender forgets every earlier IKE SA with this peer.
        INITIAL_CONTACT = 16384,
        /// Window size for outstanding requests.
        SET_WINDOW_SIZE = 16385,
        /// More traffic selectors would have been accepted.
        ADDITIONAL_TS_POSSIBLE = 16386,
        /// IPComp supported.
        IPCOMP_SUPPORTED = 16387,
        /// NAT-D: hash of the sender's SPIs, address and port.
        NAT_DETECTION_SOURCE_IP = 16388,
        /// NAT-D: hash of the SPIs and the receiver's address and port.
        NAT_DETECTION_DESTINATION_IP = 16389,
        /// Anti-DoS cookie (RFC 7296 §2.6).
        COOKIE = 16390,
        /// Transport mode requested.
        USE_TRANSPORT_MODE = 16391,
        /// Certificate lookup by URL supported.
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        /// The SA being rekeyed (protocol and SPI).
        REKEY_SA = 16393,
        /// TFC padding not supported.
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        /// Non-first fragments also wanted.
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// IKEv2 fragmentation supported (RFC 7383 §2.3).
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// Signature hash algorithms (RFC 7427).
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

impl NotifyType {
    /// Whether this is an error type (RFC 7296 §3.10.1: below 16384).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// A Notify payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notify {
    /// What the SPI belongs to (0 when there is no SPI).
    pub protocol: ProtocolId,
    /// The SPI concerned (empty for the IKE SA).
    pub spi: Vec<u8>,
    /// The notify type.
    pub notify_type: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

impl Notify {
    /// A notify without SPI.
    pub fn new(notify_type: NotifyType, data: impl Into<Vec<u8>>) -> Notify {
        Notify {
            protocol: ProtocolId(0),
            spi: Vec::new(),
            notify_type,
            data: data.into(),
        }
    }

    /// The notification RFC 7296 §2.21 answers a message with when it
    /// failed to decode with this error: UNSUPPORTED_CRITICAL_PAYLOAD with
    /// the payload type, INVALID_MAJOR_VERSION, or INVALID_SYNTAX.
    pub fn for_error(error: &Error) -> Notify {
        match error {
            Error::UnsupportedCriticalPayload(t) => {
                Notify::new(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, [*t])
            }
            Error::UnsupportedVersion(_) => Notify::new(NotifyType::INVALID_MAJOR_VERSION, []),
            _ => Notify::new(NotifyType::INVALID_SYNTAX, []),
        }
    }

    /// INVALID_KE_PAYLOAD telling the initiator which group to use.
    pub fn invalid_ke(accepted_group: u16) -> Notify {
        Notify::new(NotifyType::INVALID_KE_PAYLOAD, accepted_group.to_be_bytes())
    }

    /// The group an INVALID_KE_PAYLOAD asks for.
    pub fn accepted_group(&self) -> Option<u16> {
        let bytes: [u8; 2] = self.data.as_slice().try_into().ok()?;
        (self.notify_type == NotifyType::INVALID_KE_PAYLOAD).then(|| u16::from_be_bytes(bytes))
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Notify> {
        let mut r = Reader::new(body);
        let (Some(protocol), Some(spi_size), Some(notify_type)) = (r.u8(), r.u8(), r.u16()) else {
            return Err(Error::PayloadTooShort {
                payload: NOTIFY,
                length: body.len() + 4,
                minimum: 8,
            });
        };
        let spi_size = usize::from(spi_size);
        if spi_size > MAX_SPI_LEN {
            return Err(Error::BadSpiSize {
                payload: NOTIFY,
                size: spi_size,
            });
        }
        let available = r.remaining();
        let spi = r.take(spi_size).ok_or(Error::PayloadPastEnd {
            payload: NOTIFY,
            length: spi_size,
            available,
        })?;
        Ok(Notify {
            protocol: ProtocolId(protocol),
            spi: spi.to_vec(),
            notify_type: NotifyType(notify_type),
            data: r.rest().to_vec(),
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.spi.len() > MAX_SPI_LEN {
            return Err(Error::BadSpiSize {
                payload: NOTIFY,
                size: self.spi.len(),
            });
        }
        out.extend_from_slice(&[self.protocol.0, self.spi.len() as u8]);
        out.extend_from_slice(&self.notify_type.0.to_be_bytes());
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// A Delete payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Delete {
    /// IKE (SPI size 0, no SPIs: the SA the message travels in), ESP or AH.
    pub protocol: ProtocolId,
    /// SPI size: 0 for IKE, 4 for ESP/AH.
    pub spi_size: u8,
    /// The inbound SPIs of the sender's Child SAs being deleted.
    pub spis: Vec<Vec<u8>>,
}

impl Delete {
    pub(crate) fn decode(body: &[u8]) -> Result<Delete> {
        let mut r = Reader::new(body);
        let (Some(protocol), Some(spi_size), Some(declared)) = (r.u8(), r.u8(), r.u16()) else {
            return Err(Error::PayloadTooShort {
                payload: DELETE,
                length: body.len() + 4,
                minimum: 8,
            });
        };
        Ok(Delete {
            protocol: ProtocolId(protocol),
            spi_size,
            spis: split_spis(DELETE, spi_size, declared, r.rest(), MAX_SPI_LEN)?,
        })
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        check_spis(DELETE, self.spi_size, &self.spis, MAX_SPI_LEN)?;
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
    fn invalid_ke_payload_carries_the_accepted_group() {
        let n = Notify::invalid_ke(14);
        let mut body = Vec::new();
        n.encode(&mut body).unwrap();
        assert_eq!(body, [0, 0, 0, 17, 0, 14]);
        let back = Notify::decode(&body).unwrap();
        assert_eq!(back.accepted_group(), Some(14));
        assert!(back.notify_type.is_error());
    }

    #[test]
    fn rekey_sa_carries_the_child_spi() {
        let body = [3, 4, 0x40, 0x09, 0xca, 0xfe, 0xba, 0xbe];
        let n = Notify::decode(&body).unwrap();
        assert_eq!(
            (n.protocol, n.notify_type, n.spi.as_slice()),
            (
                ProtocolId::ESP,
                NotifyType::REKEY_SA,
                &[0xca, 0xfe, 0xba, 0xbe][..]
            )
        );
        assert!(!n.notify_type.is_error());
    }

    #[test]
    fn notify_spi_past_the_payload_is_refused() {
        assert_eq!(
            Notify::decode(&[3, 4, 0x40, 0x09, 0xca]),
            Err(Error::PayloadPastEnd {
                payload: NOTIFY,
                length: 4,
                available: 1
            })
        );
        for n in 0..4 {
            assert!(matches!(
                Notify::decode(&[3, 4, 0x40, 0x09][..n]),
                Err(Error::PayloadTooShort { .. })
            ));
        }
    }

    #[test]
    fn errors_map_to_rfc_7296_notifications() {
        let n = Notify::for_error(&Error::UnsupportedCriticalPayload(99));
        assert_eq!(
            (n.notify_type, n.data),
            (NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD, vec![99])
        );
        assert_eq!(
            Notify::for_error(&Error::UnsupportedVersion(0x30)).notify_type,
            NotifyType::INVALID_MAJOR_VERSION
        );
        assert_eq!(
            Notify::for_error(&Error::TrailingData { len: 3 }).notify_type,
            NotifyType::INVALID_SYNTAX
        );
    }

    #[test]
    fn deleting_the_ike_sa_has_no_spis_and_child_sas_have_four_bytes() {
        let ike = Delete::decode(&[1, 0, 0, 0]).unwrap();
        assert!(ike.spis.is_empty());
        let child = Delete::decode(&[3, 4, 0, 1, 1, 2, 3, 4]).unwrap();
        assert_eq!(child.spis, [vec![1, 2, 3, 4]]);
        assert!(matches!(
            Delete::decode(&[3, 4, 0, 2, 1, 2, 3, 4]),
            Err(Error::CountMismatch {
                declared: 2,
                found: 1,
                ..
            })
        ));
    }
}
