//! The ISAKMP header's meaning (RFC 2408 §3.1): exchange types and flags.
//! The view over the bytes is the shared [`crate::ike::wire::header::Packet`].

use core::ops::BitOr;

use crate::ike::wire::header::{HeaderFields, Packet};
use crate::ike::wire::{Error, Result};

open_enum! {
    /// Exchange Type (RFC 2408 §3.1, RFC 2409 §5, §5.5, §9).
    pub struct ExchangeType(u8) {
        /// Base exchange.
        BASE = 1,
        /// Identity Protection: IKE Main Mode.
        IDENTITY_PROTECTION = 2,
        /// Authentication Only.
        AUTHENTICATION_ONLY = 3,
        /// Aggressive Mode.
        AGGRESSIVE = 4,
        /// Informational (notifications, deletes, DPD).
        INFORMATIONAL = 5,
        /// Transaction: XAUTH and Mode Config (draft-ietf-ipsec-isakmp-mode-cfg).
        TRANSACTION = 6,
        /// Quick Mode (RFC 2409 §5.5).
        QUICK_MODE = 32,
        /// New Group Mode (RFC 2409 §5.6).
        NEW_GROUP_MODE = 33,
    }
}

impl ExchangeType {
    /// Main Mode, IKE's name for Identity Protection.
    pub const MAIN_MODE: ExchangeType = ExchangeType::IDENTITY_PROTECTION;
}

/// The header's Flags byte, kept whole (bits 3-7 are unused but kept as
/// received so the message re-encodes to the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// E: everything after the header is encrypted.
    pub const ENCRYPTION: Flags = Flags(0x01);
    /// C: commit, the sender wants to hear the SA is established.
    pub const COMMIT: Flags = Flags(0x02);
    /// A: authentication only (no encryption of the payloads).
    pub const AUTHENTICATION_ONLY: Flags = Flags(0x04);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// With the bits of `other` set (`on`) or cleared.
    pub fn with(self, other: Flags, on: bool) -> Flags {
        if on {
            Flags(self.0 | other.0)
        } else {
            Flags(self.0 & !other.0)
        }
    }
}

impl BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// The ISAKMP header without Next Payload and Length, which follow from
/// the payloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Initiator cookie.
    pub initiator_cookie: [u8; 8],
    /// Responder cookie (zero in the first message).
    pub responder_cookie: [u8; 8],
    /// Version byte: major 1 in the high nibble; the minor is kept as
    /// received ([`Header::VERSION`] to send).
    pub version: u8,
    /// Exchange type.
    pub exchange: ExchangeType,
    /// Flags; the encoder sets or clears E from the message body.
    pub flags: Flags,
    /// Message ID (zero in phase 1).
    pub message_id: u32,
}

impl Header {
    /// Version 1.0, the only one defined.
    pub const VERSION: u8 = 0x10;

    /// Reads a checked header; major version other than 1 is
    /// `UnsupportedVersion` (answer: INVALID-MAJOR-VERSION).
    pub fn parse<T: AsRef<[u8]>>(packet: &Packet<T>) -> Result<Header> {
        if packet.major_version() != 1 {
            return Err(Error::UnsupportedVersion(packet.version()));
        }
        Ok(Header {
            initiator_cookie: packet.initiator_spi(),
            responder_cookie: packet.responder_spi(),
            version: packet.version(),
            exchange: ExchangeType(packet.exchange_type()),
            flags: Flags(packet.flags()),
            message_id: packet.message_id(),
        })
    }

    pub(crate) fn fields(&self, flags: Flags) -> Result<HeaderFields> {
        if self.version >> 4 != 1 {
            return Err(Error::UnsupportedVersion(self.version));
        }
        Ok(HeaderFields {
            initiator_spi: self.initiator_cookie,
            responder_spi: self.responder_cookie,
            version: self.version,
            exchange_type: self.exchange.0,
            flags: flags.0,
            message_id: self.message_id,
        })
    }
}
