//! UDP headers (RFC 768), with checksums over the IPv4 and IPv6 (RFC 8200
//! §8.1) pseudo-headers. The gateway uses UDP for NAT-T (RFC 3948, port
//! 4500) and IKE (port 500).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{be16, checksum, ip_proto, put16, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;

/// A zero-copy view over a UDP datagram.
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

    /// Wraps a buffer after checking the header fits, Length ≥ 8 and the
    /// buffer holds Length bytes.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if usize::from(packet.len()) < HEADER_LEN {
            return Err(Error::Malformed("UDP length shorter than header"));
        }
        if len < usize::from(packet.len()) {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length: header plus payload.
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Whether the payload is empty (Length is 8).
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// Checksum field as stored (0: none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram as Length says, bounded by the buffer.
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..usize::from(self.len()).min(data.len())]
    }

    /// Payload, bounded by Length (not the buffer).
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(HEADER_LEN..).unwrap_or(&[])
    }

    fn sum_v4(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> u16 {
        let pseudo = checksum::pseudo_header_v4(src, dst, ip_proto::UDP, u32::from(self.len()));
        checksum::combine(&[pseudo, checksum::data(self.datagram())])
    }

    fn sum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        let pseudo = checksum::pseudo_header_v6(src, dst, ip_proto::UDP, u32::from(self.len()));
        checksum::combine(&[pseudo, checksum::data(self.datagram())])
    }

    /// Verifies the checksum over the IPv4 pseudo-header; a zero checksum
    /// means the sender computed none and is accepted (RFC 768), which
    /// RFC 3948 §2.1 allows for UDP-encapsulated ESP.
    pub fn verify_checksum_v4(&self, src: &Ipv4Addr, dst: &Ipv4Addr) -> bool {
        self.checksum() == 0 || self.sum_v4(src, dst) == 0xffff
    }

    /// Verifies the checksum over the IPv6 pseudo-header; zero is invalid
    /// over IPv6 (RFC 8200 §8.1).
    pub fn verify_checksum_v6(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.checksum() != 0 && self.sum_v6(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, port: u16) {
        put16(self.buffer.as_mut(), field::SRC_PORT, port);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        put16(self.buffer.as_mut(), field::DST_PORT, port);
    }

    /// Sets Length.
    pub fn set_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the checksum field as given (0 to send none over IPv4).
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Mutable payload, bounded by Length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len()).min(self.buffer.as_ref().len());
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }

    /// Computes and writes the checksum over the IPv4 pseudo-header; a
    /// computed 0 is sent as `0xffff` since 0 means "none" (RFC 768).
    pub fn fill_checksum_v4(&mut self, src: &Ipv4Addr, dst: &Ipv4Addr) {
        self.set_checksum(0);
        let sum = !self.sum_v4(src, dst);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }

    /// Computes and writes the checksum over the IPv6 pseudo-header (a
    /// computed 0 is sent as `0xffff`).
    pub fn fill_checksum_v6(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let sum = !self.sum_v6(src, dst);
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
}

/// The meaning of a UDP header; the checksum is the caller's (it needs the
/// IP addresses, and NAT-T over IPv4 may send none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length (Length minus the 8-byte header).
    pub payload_len: usize,
}

impl Repr {
    /// Reads a checked datagram. The checksum is not verified here: that
    /// needs the addresses, see `verify_checksum_v4`/`_v6`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(packet.len());
        if len < HEADER_LEN {
            return Err(Error::Malformed("UDP length shorter than header"));
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: len - HEADER_LEN,
        })
    }

    /// Always 8.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the header with checksum 0; fill it afterwards with
    /// `fill_checksum_v4`/`_v6` once the payload is in place. The buffer must
    /// hold 8 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        packet.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A NAT-T datagram 10.0.0.1:4500 → 10.0.0.2:4500 with a 4-byte
    /// payload, sent without checksum.
    fn sample() -> (Ipv4Addr, Ipv4Addr, Vec<u8>) {
        let src = Ipv4Addr::new(10, 0, 0, 1);
        let dst = Ipv4Addr::new(10, 0, 0, 2);
        let bytes = vec![
            0x11, 0x94, 0x11, 0x94, 0x00, 0x0c, 0x00, 0x00, 0xde, 0xad, 0xbe, 0xef,
        ];
        (src, dst, bytes)
    }

    #[test]
    fn getters_read_the_header_and_bound_the_payload_by_length() {
        let (_, _, mut bytes) = sample();
        bytes.extend_from_slice(&[0; 4]);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.src_port(), 4500);
        assert_eq!(p.dst_port(), 4500);
        assert_eq!(p.len(), 12);
        assert_eq!(p.checksum(), 0);
        assert_eq!(p.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn checksum_matches_a_hand_computed_value() {
        // Sum: pseudo 0a00+0001+0a00+0002+0011+000c = 1420, header
        // 1194+1194+000c = 2334, payload dead+beef = 9d9d (folded) → d4f1,
        // checksum !d4f1 = 2b0e.
        let (src, dst, mut bytes) = sample();
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.fill_checksum_v4(&src, &dst);
        assert_eq!(p.checksum(), 0x2b0e);
        assert!(p.verify_checksum_v4(&src, &dst));
        p.payload_mut()[0] ^= 1;
        assert!(!p.verify_checksum_v4(&src, &dst));
    }

    #[test]
    fn zero_checksum_means_none_over_ipv4_but_is_invalid_over_ipv6() {
        let (src, dst, bytes) = sample();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(p.verify_checksum_v4(&src, &dst));
        assert!(!p.verify_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn ipv6_checksum_round_trips() {
        let (_, _, mut bytes) = sample();
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.fill_checksum_v6(&src, &dst);
        assert!(p.verify_checksum_v6(&src, &dst));
        assert!(!p.verify_checksum_v6(&dst, &Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn computed_zero_checksum_is_sent_as_all_ones() {
        // Choose a payload word that makes the sum 0xffff, so !sum == 0.
        let src = Ipv4Addr::new(0, 0, 0, 0);
        let dst = Ipv4Addr::new(0, 0, 0, 0);
        let mut bytes = vec![0, 0, 0, 0, 0, 10, 0, 0, 0, 0];
        let partial = checksum::combine(&[
            checksum::pseudo_header_v4(&src, &dst, ip_proto::UDP, 10),
            checksum::data(&bytes),
        ]);
        bytes[8..10].copy_from_slice(&(!partial).to_be_bytes());
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.fill_checksum_v4(&src, &dst);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum_v4(&src, &dst));
    }

    #[test]
    fn new_checked_rejects_short_buffers_and_lengths() {
        let (_, _, mut bytes) = sample();
        assert_eq!(Packet::new_checked(&bytes[..7]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&bytes[..11]), Err(Error::Truncated));
        bytes[5] = 7;
        assert!(matches!(
            Packet::new_checked(&bytes[..]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr {
            src_port: 4500,
            dst_port: 61_000,
            payload_len: 3,
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            repr
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload(), p.is_empty());
                let _ = p.verify_checksum_v4(&Ipv4Addr::LOCALHOST, &Ipv4Addr::LOCALHOST);
                let _ = p.verify_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST);
                let _ = Repr::parse(&p);
            }
        }
    }
}
