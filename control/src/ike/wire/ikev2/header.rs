//! The IKEv2 header's meaning (RFC 7296 §3.1): exchange types and flags.
//! The view over the bytes is the shared [`crate::ike::wire::header::Packet`].

use core::ops::BitOr;

use crate::ike::wire::header::{HeaderFields, Packet};
use crate::ike::wire::{Error, Result};

open_enum! {
    /// Exchange Type (RFC 7296 §3.1).
    pub struct ExchangeType(u8) {
        /// IKE_SA_INIT.
        IKE_SA_INIT = 34,
        /// IKE_AUTH.
        IKE_AUTH = 35,
        /// CREATE_CHILD_SA.
        CREATE_CHILD_SA = 36,
        /// INFORMATIONAL.
        INFORMATIONAL = 37,
    }
}

/// The header's Flags byte, kept whole: RFC 7296 §3.1 says to ignore the
/// reserved bits on receipt, so they are kept rather than refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// I: sent by the original initiator of the IKE SA.
    pub const INITIATOR: Flags = Flags(0x08);
    /// V: the sender can speak a higher major version.
    pub const VERSION: Flags = Flags(0x10);
    /// R: this message is a response.
    pub const RESPONSE: Flags = Flags(0x20);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// The IKEv2 header without Next Payload and Length, which follow from the
/// payloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// IKE SA initiator's SPI.
    pub initiator_spi: [u8; 8],
    /// IKE SA responder's SPI (zero in the first IKE_SA_INIT).
    pub responder_spi: [u8; 8],
    /// Version byte: major 2 in the high nibble; the minor is kept as
    /// received, to be ignored (RFC 7296 §3.1). [`Header::VERSION`] to send.
    pub version: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags.
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
}

impl Header {
    /// Version 2.0.
    pub const VERSION: u8 = 0x20;

    /// Reads a checked header; a major version other than 2 is
    /// `UnsupportedVersion` (answer: INVALID_MAJOR_VERSION).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Header> {
        if packet.major_version() != 2 {
            return Err(Error::UnsupportedVersion(packet.version()));
        }
        Ok(Header {
            initiator_spi: packet.initiator_spi(),
            responder_spi: packet.responder_spi(),
            version: packet.version(),
            exchange: ExchangeType(packet.exchange_type()),
            flags: Flags(packet.flags()),
            message_id: packet.message_id(),
        })
    }

    pub(crate) fn fields(&self) -> Result<HeaderFields> {
        if self.version >> 4 != 2 {
            return Err(Error::UnsupportedVersion(self.version));
        }
        Ok(HeaderFields {
            initiator_spi: self.initiator_spi,
            responder_spi: self.responder_spi,
            version: self.version,
            exchange_type: self.exchange.0,
            flags: self.flags.0,
            message_id: self.message_id,
        })
    }
}
