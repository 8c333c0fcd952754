//! The fixed 28-byte header both IKE versions share (RFC 2408 §3.1,
//! RFC 7296 §3.1), as a zero-copy view: enough to pick the version and
//! find the SA by its SPIs (cookies) before decoding or decrypting the
//! rest.
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Initiator SPI (IKEv1: cookie)                 |
//! |                                                               |
//! |                 Responder SPI (IKEv1: cookie)                 |
//! |                                                               |
//! |  Next Payload | MjVer | MnVer | Exchange Type |     Flags     |
//! |                          Message ID                           |
//! |                            Length                             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use super::{Error, Result};

mod field {
    use core::ops::Range;
    pub const INITIATOR_SPI: Range<usize> = 0..8;
    pub const RESPONDER_SPI: Range<usize> = 8..16;
    pub const NEXT_PAYLOAD: usize = 16;
    pub const VERSION: usize = 17;
    pub const EXCHANGE_TYPE: usize = 18;
    pub const FLAGS: usize = 19;
    pub const MESSAGE_ID: usize = 20;
    pub const LENGTH: usize = 24;
}

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;

/// Offset of the Next Payload field, which the encoders fill in last.
pub(crate) const NEXT_PAYLOAD_AT: usize = field::NEXT_PAYLOAD;

/// A zero-copy view over an IKE message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it; getters may panic if it is
    /// shorter than 28 bytes. Use [`Packet::new_checked`] for received data.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a datagram after checking the header fits and its Length is
    /// at least 28 and at most the datagram (bytes after Length are not
    /// part of the message and are ignored).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Packet::new_unchecked(buffer);
        let available = packet.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(Error::TruncatedHeader { len: available });
        }
        let length = packet.length();
        if (length as usize) < HEADER_LEN || length as usize > available {
            return Err(Error::BadMessageLength { length, available });
        }
        Ok(packet)
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn array8(&self, range: core::ops::Range<usize>) -> [u8; 8] {
        let mut out = [0u8; 8];
        out.copy_from_slice(&self.buffer.as_ref()[range]);
        out
    }

    /// Initiator's SPI (IKEv2) or cookie (IKEv1).
    pub fn initiator_spi(&self) -> [u8; 8] {
        self.array8(field::INITIATOR_SPI)
    }

    /// Responder's SPI (IKEv2) or cookie (IKEv1); zero in the first message.
    pub fn responder_spi(&self) -> [u8; 8] {
        self.array8(field::RESPONDER_SPI)
    }

    /// Type of the first payload.
    pub fn next_payload(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_PAYLOAD]
    }

    /// The version byte: major in the high nibble, minor in the low.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    /// Major version: 1 for ISAKMP/IKEv1, 2 for IKEv2.
    pub fn major_version(&self) -> u8 {
        self.version() >> 4
    }

    /// Minor version.
    pub fn minor_version(&self) -> u8 {
        self.version() & 0x0f
    }

    /// Exchange type (numbering differs between versions).
    pub fn exchange_type(&self) -> u8 {
        self.buffer.as_ref()[field::EXCHANGE_TYPE]
    }

    /// Flags (meaning differs between versions).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    fn be32(&self, at: usize) -> u32 {
        let d = self.buffer.as_ref();
        u32::from_be_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
    }

    /// Message ID.
    pub fn message_id(&self) -> u32 {
        self.be32(field::MESSAGE_ID)
    }

    /// Length of the whole message, header included.
    pub fn length(&self) -> u32 {
        self.be32(field::LENGTH)
    }

    /// The message as Length says (header and payloads).
    pub fn message(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..(self.length() as usize).min(data.len())]
    }

    /// The payloads after the header, bounded by Length.
    pub fn body(&self) -> &[u8] {
        self.message().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// The header fields an encoder writes; Next Payload and Length are
/// placeholders until the payloads are known.
pub(crate) struct HeaderFields {
    pub initiator_spi: [u8; 8],
    pub responder_spi: [u8; 8],
    pub version: u8,
    pub exchange_type: u8,
    pub flags: u8,
    pub message_id: u32,
}

impl HeaderFields {
    /// Appends the header with Next Payload 0 and Length 0.
    pub(crate) fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.initiator_spi);
        out.extend_from_slice(&self.responder_spi);
        out.extend_from_slice(&[0, self.version, self.exchange_type, self.flags]);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
    }
}

/// Writes the final message length into the header at the start of `out`.
pub(crate) fn patch_length(out: &mut [u8]) -> Result<()> {
    let len = u32::try_from(out.len()).map_err(|_| Error::TooLong { what: "message" })?;
    out[field::LENGTH..field::LENGTH + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(length: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        h[16] = 1;
        h[17] = 0x10;
        h[18] = 2;
        h[19] = 0x01;
        h[20..24].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        h[24..28].copy_from_slice(&length.to_be_bytes());
        h
    }

    #[test]
    fn getters_read_the_rfc_layout() {
        let mut d = header(30);
        d.extend_from_slice(&[0xaa, 0xbb, 0xcc]);
        let p = Packet::new_checked(&d[..]).unwrap();
        assert_eq!(p.initiator_spi(), [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(p.responder_spi(), [0; 8]);
        assert_eq!(
            (p.next_payload(), p.major_version(), p.minor_version()),
            (1, 1, 0)
        );
        assert_eq!((p.exchange_type(), p.flags()), (2, 1));
        assert_eq!((p.message_id(), p.length()), (0xdead_beef, 30));
        assert_eq!(
            p.body(),
            &[0xaa, 0xbb],
            "the byte after Length is not part of it"
        );
    }

    #[test]
    fn every_truncated_header_is_refused() {
        let d = header(28);
        for n in 0..HEADER_LEN {
            assert_eq!(
                Packet::new_checked(&d[..n]),
                Err(Error::TruncatedHeader { len: n })
            );
        }
    }

    #[test]
    fn length_below_the_header_or_past_the_datagram_is_refused() {
        for length in [0, 27, 29, u32::MAX] {
            assert_eq!(
                Packet::new_checked(&header(length)[..]),
                Err(Error::BadMessageLength {
                    length,
                    available: 28
                })
            );
        }
    }
}
