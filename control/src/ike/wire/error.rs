//! Why a datagram is not an IKE message, or why a message cannot be
//! encoded. Payload types are the raw numbers of the version at hand, so
//! the state machine can name them in INVALID-PAYLOAD-TYPE /
//! UNSUPPORTED_CRITICAL_PAYLOAD notifications (see `NotifyType::for_error`
//! in each version).

/// A decoding or encoding failure; decoding never panics, it returns one
/// of these.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the fixed 28-byte header.
    #[error("{len} bytes is shorter than the 28-byte IKE header")]
    TruncatedHeader {
        /// Bytes in the datagram.
        len: usize,
    },
    /// The header's Length is below 28 or beyond the datagram.
    #[error("header length {length} does not fit a datagram of {available} bytes")]
    BadMessageLength {
        /// The Length field.
        length: u32,
        /// Bytes in the datagram.
        available: usize,
    },
    /// The major version is not the one this decoder speaks (the whole
    /// version byte, major in the high nibble); the answer is
    /// INVALID-MAJOR-VERSION.
    #[error("unsupported version {0:#04x}")]
    UnsupportedVersion(u8),
    /// The chain announces a payload but fewer than 4 bytes are left for
    /// its generic header.
    #[error("payload {payload}: generic header cut short ({available} bytes left)")]
    TruncatedPayloadHeader {
        /// Payload type announced by the previous Next Payload.
        payload: u8,
        /// Bytes left.
        available: usize,
    },
    /// A payload or substructure length below its fixed part.
    #[error("payload {payload}: length {length} is below its minimum {minimum}")]
    PayloadTooShort {
        /// Payload type (2 for a proposal, 3 for a transform).
        payload: u8,
        /// The Length field.
        length: usize,
        /// Smallest valid length.
        minimum: usize,
    },
    /// A payload or substructure length that runs past its container.
    #[error("payload {payload}: length {length} runs past the {available} bytes left")]
    PayloadPastEnd {
        /// Payload type (2 for a proposal, 3 for a transform).
        payload: u8,
        /// The Length field.
        length: usize,
        /// Bytes left in the container.
        available: usize,
    },
    /// A reserved field (or reserved bit) is not zero.
    #[error("payload {payload}: reserved field is not zero")]
    ReservedNotZero {
        /// Payload type (2 for a proposal, 3 for a transform).
        payload: u8,
    },
    /// Bytes after the last payload of a message that has no padding.
    #[error("{len} bytes after the last payload")]
    TrailingData {
        /// Bytes left over.
        len: usize,
    },
    /// An IKEv2 payload of a type this decoder does not know, with the
    /// critical bit set (RFC 7296 §2.5): the answer is
    /// UNSUPPORTED_CRITICAL_PAYLOAD carrying this type.
    #[error("unsupported critical payload {0}")]
    UnsupportedCriticalPayload(u8),
    /// A substructure's Next Payload / Last Substruc is neither "more" nor
    /// "last", or disagrees with what follows.
    #[error("payload {payload}: substructure chain: {reason}")]
    BadSubstructureChain {
        /// Payload type of the substructure (2 proposal, 3 transform).
        payload: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// A count field disagrees with the substructures found (transforms
    /// in a proposal, SPIs in a Delete, traffic selectors).
    #[error("payload {payload}: {what} count says {declared}, found {found}")]
    CountMismatch {
        /// Payload type.
        payload: u8,
        /// What is counted.
        what: &'static str,
        /// The count field.
        declared: usize,
        /// How many are really there.
        found: usize,
    },
    /// A data attribute (TV/TLV) header or value that runs past its
    /// container.
    #[error("payload {payload}: attribute {attr_type} needs {needed} bytes, {available} left")]
    AttributePastEnd {
        /// Payload type holding the attributes.
        payload: u8,
        /// Attribute type (without the AF bit), 0 if its header is cut.
        attr_type: u16,
        /// Bytes the attribute needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// An identification whose data length does not fit its ID type.
    #[error("ID type {id_type}: {length} bytes of identification data")]
    IdLength {
        /// The ID type.
        id_type: u8,
        /// Bytes of identification data.
        length: usize,
    },
    /// An SPI longer than the protocol allows, or an SPI size that does
    /// not fit the SPIs that follow.
    #[error("payload {payload}: SPI size {size} not allowed here")]
    BadSpiSize {
        /// Payload type.
        payload: u8,
        /// The SPI Size field.
        size: usize,
    },
    /// An IKEv1 SA payload for a DOI other than IPsec (answer:
    /// DOI-NOT-SUPPORTED).
    #[error("DOI {0} not supported")]
    UnsupportedDoi(u32),
    /// An IKEv1 IPsec situation other than SIT_IDENTITY_ONLY (answer:
    /// SITUATION-NOT-SUPPORTED).
    #[error("situation {0:#x} not supported")]
    UnsupportedSituation(u32),
    /// An IKEv2 Encrypted (or Encrypted Fragment) payload that is not the
    /// last one in the message (RFC 7296 §3.14).
    #[error("the Encrypted payload must be the last payload")]
    EncryptedNotLast,
    /// An Encrypted payload shorter than the IV and ICV the SA uses, or
    /// decrypted text whose Pad Length runs past its start.
    #[error("encrypted data of {available} bytes is shorter than the {needed} bytes needed")]
    EncryptedTooShort {
        /// Bytes needed (IV + ICV, or pad length + 1).
        needed: usize,
        /// Bytes there.
        available: usize,
    },
    /// A field value the format does not allow (the reason says which).
    #[error("payload {payload}: {reason}")]
    Malformed {
        /// Payload type (0 for the header).
        payload: u8,
        /// What is wrong.
        reason: &'static str,
    },
    /// Encoding only: a field too long for its length field (a payload
    /// over 65535 bytes, more than 255 transforms, ...).
    #[error("cannot encode: {what} too long for its length field")]
    TooLong {
        /// What overflowed.
        what: &'static str,
    },
}

/// Result of every decode and encode in `ike::wire`.
pub type Result<T> = core::result::Result<T, Error>;
