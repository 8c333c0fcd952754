//! The ESP header and trailer (RFC 4303 §2).
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |               Security Parameters Index (SPI)                 |
//! |                      Sequence Number                          |
//! |                Payload Data (IV, ciphertext) ...              |
//! |    ...   Padding (0-255 bytes)   |  Pad Length   | Next Header |
//! |         Integrity Check Value (ICV) (variable)                |
//! ```
//!
//! The header is clear text; the trailer (padding, Pad Length, Next Header)
//! is inside the ciphertext, so [`parse_trailer`] and [`write_padding`] work
//! on the plaintext the crypto suite produced or will consume.

use super::{be32, put32, Error, Result};

mod field {
    pub const SPI: usize = 0;
    pub const SEQ: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// Length of the SPI and Sequence Number.
pub const HEADER_LEN: usize = 8;

/// Pad Length and Next Header.
pub const TRAILER_LEN: usize = 2;

/// Largest Pad Length the one-byte field can carry.
pub const MAX_PAD_LEN: usize = 255;

/// A zero-copy view over an ESP packet (header, then IV, ciphertext, ICV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Getters may panic if it is
    /// shorter than 8 bytes; use [`Packet::new_checked`] for received data.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer holding at least the 8-byte header. How long the IV
    /// and ICV are depends on the SA, so the rest is the caller's to check.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Security Parameters Index: selects the inbound SA (RFC 4303 §2.1).
    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SPI)
    }

    /// Low 32 bits of the sequence number, for anti-replay (RFC 4303 §2.2).
    pub fn seq(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ)
    }

    /// Everything after the header: IV, ciphertext and ICV.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }

    /// The 8 header bytes: the AAD of AEAD suites (RFC 4106 §5).
    pub fn header(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..HEADER_LEN.min(data.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, spi: u32) {
        put32(self.buffer.as_mut(), field::SPI, spi);
    }

    /// Sets the sequence number (low 32 bits with ESN).
    pub fn set_seq(&mut self, seq: u32) {
        put32(self.buffer.as_mut(), field::SEQ, seq);
    }

    /// Mutable payload after the header, where the IV and ciphertext go.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD..)
            .unwrap_or(&mut [])
    }
}

/// The ESP header's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Security Parameters Index.
    pub spi: u32,
    /// Low 32 bits of the sequence number.
    pub seq: u32,
}

impl Repr {
    /// Reads SPI and sequence number.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Repr {
            spi: packet.spi(),
            seq: packet.seq(),
        })
    }

    /// Always 8.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Always 8: IV, ciphertext and ICV are the crypto suite's.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes SPI and sequence number into the first 8 bytes (which the
    /// buffer must hold).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_spi(self.spi);
        packet.set_seq(self.seq);
    }
}

/// The decrypted trailer: how much padding to strip and what the payload is
/// (an inner IPv4/IPv6 packet in tunnel mode, TCP/UDP/... in transport mode,
/// or No Next Header for a dummy packet, RFC 4303 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Number of padding bytes before the trailer.
    pub pad_len: u8,
    /// Protocol of the payload (IP protocol number).
    pub next_header: u8,
}

/// Reads the trailer at the end of a decrypted ESP payload and checks the
/// padding: RFC 4303 §2.4 default padding is 1, 2, 3, ..., and a receiver
/// that checks it catches wrong keys and tampering on encryption-only SAs.
///
/// Returns the length of the payload before the padding and the trailer.
/// `Truncated` if fewer than 2 bytes; `BadPadding` if Pad Length does not
/// fit or any pad byte is wrong.
pub fn parse_trailer(plaintext: &[u8]) -> Result<(usize, Trailer)> {
    let [.., pad_len, next_header] = *plaintext else {
        return Err(Error::Truncated);
    };
    let pad_start = plaintext
        .len()
        .checked_sub(TRAILER_LEN + usize::from(pad_len))
        .ok_or(Error::BadPadding)?;
    let padding = &plaintext[pad_start..plaintext.len() - TRAILER_LEN];
    let monotonic = padding
        .iter()
        .zip(1..=u8::MAX)
        .all(|(&byte, expected)| byte == expected);
    if !monotonic {
        return Err(Error::BadPadding);
    }
    Ok((
        pad_start,
        Trailer {
            pad_len,
            next_header,
        },
    ))
}

/// Writes the self-describing padding `1, 2, ..., pad_len`, then Pad Length
/// and Next Header, into `buf`, which must be exactly `pad_len + 2` bytes
/// long with `pad_len` ≤ 255 (from [`pad_len_for`]). A mismatched buffer is a
/// caller bug: debug builds assert; release builds fill what fits from the
/// start of `buf` and write the two trailer bytes at its end.
pub fn write_padding(buf: &mut [u8], pad_len: usize, next_header: u8) {
    debug_assert_eq!(buf.len(), pad_len + TRAILER_LEN);
    debug_assert!(pad_len <= MAX_PAD_LEN);
    let pad_area = buf.len().saturating_sub(TRAILER_LEN);
    for (byte, value) in buf[..pad_area].iter_mut().zip(1..=u8::MAX) {
        *byte = value;
    }
    if let [.., pad, nh] = buf {
        *pad = u8::try_from(pad_len).unwrap_or(u8::MAX);
        *nh = next_header;
    }
}

/// Padding needed so that `payload_len + padding + 2` is a multiple of
/// `align` (the cipher block size: 4, 8 or 16). An `align` below 4 is
/// raised to 4 because RFC 4303 §2.4 requires the ciphertext to end on a
/// 4-byte boundary whatever the cipher.
pub fn pad_len_for(payload_len: usize, align: usize) -> usize {
    let align = align.max(4);
    let used = (payload_len % align + TRAILER_LEN) % align;
    (align - used) % align
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip_proto;
    use proptest::prelude::*;

    #[test]
    fn header_reads_spi_and_sequence_number() {
        let bytes = [0x00, 0x00, 0x10, 0x01, 0x00, 0x00, 0x00, 0x2a, 0xaa, 0xbb];
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.spi(), 0x1001);
        assert_eq!(p.seq(), 42);
        assert_eq!(p.payload(), &[0xaa, 0xbb]);
        assert_eq!(p.header(), &bytes[..8]);
    }

    #[test]
    fn short_buffer_is_truncated() {
        assert_eq!(Packet::new_checked(&[0u8; 7][..]), Err(Error::Truncated));
    }

    #[test]
    fn setters_and_repr_round_trip() {
        let repr = Repr {
            spi: 0xdead_beef,
            seq: 0xffff_fffe,
        };
        let mut bytes = [0u8; 12];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.payload_mut().fill(9);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            repr
        );
        assert_eq!(&bytes[8..], &[9; 4]);
    }

    #[test]
    fn pad_len_aligns_payload_and_trailer() {
        assert_eq!(pad_len_for(0, 4), 2);
        assert_eq!(pad_len_for(2, 4), 0);
        assert_eq!(pad_len_for(14, 16), 0);
        assert_eq!(pad_len_for(15, 16), 15);
        assert_eq!(pad_len_for(100, 8), 2);
        assert_eq!(pad_len_for(3, 1), 3);
        assert_eq!(pad_len_for(3, 0), 3);
    }

    #[test]
    fn written_padding_is_one_two_three_then_length_and_next_header() {
        let mut buf = [0u8; 5];
        write_padding(&mut buf, 3, ip_proto::IPV4);
        assert_eq!(buf, [1, 2, 3, 3, 4]);
    }

    #[test]
    fn trailer_of_a_known_plaintext_parses() {
        let plaintext = [0x45, 0x00, 0x01, 0x02, 0x02, ip_proto::IPV4];
        assert_eq!(
            parse_trailer(&plaintext),
            Ok((
                2,
                Trailer {
                    pad_len: 2,
                    next_header: ip_proto::IPV4
                }
            ))
        );
        assert_eq!(
            parse_trailer(&[0, 59]),
            Ok((
                0,
                Trailer {
                    pad_len: 0,
                    next_header: 59
                }
            ))
        );
    }

    #[test]
    fn trailer_with_pad_length_beyond_the_plaintext_is_bad_padding() {
        assert_eq!(parse_trailer(&[1, 2, 3, 41]), Err(Error::BadPadding));
        assert_eq!(parse_trailer(&[255, 4]), Err(Error::BadPadding));
    }

    #[test]
    fn maximum_padding_of_255_bytes_round_trips() {
        let mut plaintext = vec![0u8; 255 + TRAILER_LEN];
        write_padding(&mut plaintext, 255, ip_proto::TCP);
        assert_eq!(plaintext[254], 255);
        assert_eq!(
            parse_trailer(&plaintext),
            Ok((
                0,
                Trailer {
                    pad_len: 255,
                    next_header: ip_proto::TCP
                }
            ))
        );
    }

    #[test]
    fn trailer_shorter_than_two_bytes_is_truncated() {
        assert_eq!(parse_trailer(&[]), Err(Error::Truncated));
        assert_eq!(parse_trailer(&[4]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn padding_checker_accepts_what_write_padding_writes(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            align in prop_oneof![Just(4usize), Just(8), Just(16)],
            next_header in any::<u8>(),
        ) {
            let pad_len = pad_len_for(payload.len(), align);
            let mut plaintext = payload.clone();
            plaintext.resize(payload.len() + pad_len + TRAILER_LEN, 0);
            write_padding(&mut plaintext[payload.len()..], pad_len, next_header);
            prop_assert_eq!(plaintext.len() % align, 0);
            let (len, trailer) = parse_trailer(&plaintext).unwrap();
            prop_assert_eq!(len, payload.len());
            prop_assert_eq!(usize::from(trailer.pad_len), pad_len);
            prop_assert_eq!(trailer.next_header, next_header);
        }

        #[test]
        fn padding_checker_rejects_any_single_corrupted_pad_byte(
            pad_len in 1usize..=255,
            which in any::<proptest::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut plaintext = vec![0xaa; 3];
            plaintext.resize(3 + pad_len + TRAILER_LEN, 0);
            write_padding(&mut plaintext[3..], pad_len, ip_proto::IPV6);
            let at = 3 + which.index(pad_len);
            plaintext[at] ^= flip;
            prop_assert_eq!(parse_trailer(&plaintext), Err(Error::BadPadding));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_trailer(&bytes);
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.spi(), p.seq(), p.payload(), p.header());
                let _ = Repr::parse(&p);
            }
        }
    }
}
