//! IPv4 headers (RFC 791), with the forwarding-path helpers the gateway needs:
//! header checksum (RFC 1071), incremental TTL decrement (RFC 1624) and
//! fragment fields (RFC 791 §3.2).
//!
//! [`Packet::payload`] is bounded by Total Length, not by the buffer, so
//! Ethernet padding after a short packet never leaks into ESP or UDP.

use std::net::Ipv4Addr;

use super::{be16, checksum, put16, Error, Result};

mod field {
    use core::ops::Range;

    /// Version (4 bits) and IHL (4 bits, in 32-bit words).
    pub const VER_IHL: usize = 0;
    /// DSCP (6 bits) and ECN (2 bits), formerly Type of Service.
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    /// Flags (reserved, DF, MF) and Fragment Offset (13 bits, 8-byte units).
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view over an IPv4 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Getters may panic if the buffer is
    /// shorter than the header; use [`Packet::new_checked`] for received data.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking version 4, IHL ≥ 5, the header fits,
    /// Total Length ≥ header length and the buffer holds Total Length bytes
    /// (it may hold more: link-layer padding).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header()?;
        let len = packet.buffer.as_ref().len();
        if usize::from(packet.total_len()) < packet.header_len() {
            return Err(Error::Malformed("IPv4 total length shorter than header"));
        }
        if len < usize::from(packet.total_len()) {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Like [`Packet::new_checked`] but only requires the header itself:
    /// for the invoking packet quoted in an ICMP error, which is cut short
    /// (RFC 792) yet whose addresses, protocol and first payload bytes (the
    /// ESP SPI) are needed for path-MTU handling. `payload()` then returns
    /// whatever part of the payload the buffer holds.
    pub fn new_checked_header(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_header()?;
        Ok(packet)
    }

    fn check_header(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed("IP version is not 4"));
        }
        if self.header_len() < HEADER_LEN {
            return Err(Error::Malformed("IPv4 IHL below 5"));
        }
        if data.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// IP version (4 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole former TOS byte: DSCP and ECN, copied to the outer header
    /// in tunnel mode (RFC 4301 §5.1.2.1, RFC 6040).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Total Length: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification, shared by the fragments of one datagram.
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't Fragment: drives the DF-bit policy and PMTU discovery.
    pub fn dont_frag(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        be16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Whether this is any fragment (MF set or non-zero offset); transport
    /// ESP and SPD port selectors only apply to whole datagrams.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to Live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload (see [`super::ip_proto`]).
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Options bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(HEADER_LEN..self.header_len()).unwrap_or(&[])
    }

    /// The header bytes (options included), for checksumming or quoting.
    pub fn header(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..self.header_len().min(data.len())]
    }

    /// Payload, bounded by Total Length (and by the buffer, so a packet
    /// opened with [`Packet::new_checked_header`] or altered by setters
    /// never panics).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(data.len());
        data.get(self.header_len()..end).unwrap_or(&[])
    }

    /// Whether the header checksum is correct (the header sums to `0xffff`).
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the version nibble.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (rounded down to 4-byte words).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets Total Length.
    pub fn set_total_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets Identification.
    pub fn set_ident(&mut self, ident: u16) {
        put16(self.buffer.as_mut(), field::IDENT, ident);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let old = be16(self.buffer.as_ref(), field::FLG_OFF);
        let new = if on { old | flag } else { old & !flag };
        put16(self.buffer.as_mut(), field::FLG_OFF, new);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset in bytes (must be a multiple of 8).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let old = be16(self.buffer.as_ref(), field::FLG_OFF);
        put16(
            self.buffer.as_mut(),
            field::FLG_OFF,
            (old & !OFFSET_MASK) | ((offset >> 3) & OFFSET_MASK),
        );
    }

    /// Sets Time to Live (checksum not updated; see
    /// [`Packet::decrement_ttl_incremental`]).
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets Protocol.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Sets the checksum field as given.
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Recomputes the header checksum over the header and options.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.header());
        self.set_checksum(!sum);
    }

    /// Decrements TTL by one and patches the checksum with RFC 1624 instead
    /// of re-summing the header: the per-packet forwarding cost. Returns the
    /// new TTL. A TTL of zero is left unchanged (and 0 returned): the caller
    /// must answer TTL ≤ 1 with ICMP Time Exceeded rather than forward.
    pub fn decrement_ttl_incremental(&mut self) -> u8 {
        let ttl = self.ttl();
        if ttl == 0 {
            return 0;
        }
        let old_word = be16(self.buffer.as_ref(), field::TTL);
        self.set_ttl(ttl - 1);
        let new_word = be16(self.buffer.as_ref(), field::TTL);
        let patched = checksum::update(self.checksum(), old_word, new_word);
        self.set_checksum(patched);
        ttl - 1
    }

    /// Sets the ECN field (the low two bits of the DSCP/ECN byte) and
    /// patches the checksum with RFC 1624, as [`decrement_ttl_incremental`]
    /// does: a header that was right stays right, a damaged one stays
    /// damaged.
    ///
    /// [`decrement_ttl_incremental`]: Packet::decrement_ttl_incremental
    pub fn set_ecn_incremental(&mut self, ecn: u8) {
        let old_word = be16(self.buffer.as_ref(), field::VER_IHL);
        let tos = self.dscp_ecn();
        self.set_dscp_ecn((tos & !super::ecn::MASK) | (ecn & super::ecn::MASK));
        let new_word = be16(self.buffer.as_ref(), field::VER_IHL);
        let patched = checksum::update(self.checksum(), old_word, new_word);
        self.set_checksum(patched);
    }

    /// Mutable options bytes.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }

    /// Mutable payload, bounded like [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = usize::from(self.total_len()).min(self.buffer.as_ref().len());
        self.buffer.as_mut().get_mut(start..end).unwrap_or(&mut [])
    }
}

/// The meaning of an IPv4 header as the gateway builds it: no options, no
/// fragmentation (MF and offset are zero on emit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload (see [`super::ip_proto`]).
    pub protocol: u8,
    /// Payload length (Total Length minus header length).
    pub payload_len: usize,
    /// Time to Live.
    pub ttl: u8,
    /// DSCP and ECN byte.
    pub dscp_ecn: u8,
    /// Identification (unique per source while fragments may be in flight, RFC 6864).
    pub ident: u16,
    /// Don't Fragment; for tunnel mode set per the DF-bit policy (RFC 4301 §8.1).
    pub dont_frag: bool,
}

impl Repr {
    /// Reads a checked packet, verifying the header checksum: a corrupted
    /// header must not select an SA. Options are skipped (their length is
    /// excluded from `payload_len`); fragments are not rejected here, check
    /// [`Packet::is_fragment`] where it matters.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_header()?;
        let total = usize::from(packet.total_len());
        if total < packet.header_len() {
            return Err(Error::Malformed("IPv4 total length shorter than header"));
        }
        if !packet.verify_checksum() {
            return Err(Error::Malformed("bad IPv4 header checksum"));
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: total - packet.header_len(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Header length emitted: always 20 (no options).
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header with its checksum filled; the payload is the
    /// caller's. The buffer must hold at least 20 bytes, and `payload_len`
    /// at most 65515 (Total Length saturates at 65535 otherwise).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.buffer.as_mut()[..HEADER_LEN].fill(0);
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp_ecn(self.dscp_ecn);
        let total = u16::try_from(self.buffer_len()).unwrap_or(u16::MAX);
        packet.set_total_len(total);
        packet.set_ident(self.ident);
        packet.set_dont_frag(self.dont_frag);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip_proto;
    use proptest::prelude::*;

    /// A captured UDP packet header (192.168.0.1 → 192.168.0.199, 0x73 bytes).
    const HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00,
        0x01, 0xc0, 0xa8, 0x00, 0xc7,
    ];

    fn captured_packet() -> Vec<u8> {
        let mut bytes = HEADER.to_vec();
        bytes.resize(0x73, 0xab);
        bytes
    }

    #[test]
    fn captured_header_reads_every_field() {
        let bytes = captured_packet();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0);
        assert_eq!(packet.total_len(), 0x73);
        assert_eq!(packet.ident(), 0);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), ip_proto::UDP);
        assert_eq!(packet.checksum(), 0xb861);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload().len(), 0x73 - 20);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn fill_checksum_reproduces_the_captured_checksum() {
        let mut bytes = captured_packet();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_checksum(0);
        packet.fill_checksum();
        assert_eq!(packet.checksum(), 0xb861);
    }

    #[test]
    fn payload_stops_at_total_length_not_at_link_padding() {
        let mut bytes = captured_packet();
        bytes.extend_from_slice(&[0; 10]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload().len(), 0x73 - 20);
    }

    #[test]
    fn new_checked_rejects_bad_version_ihl_and_lengths() {
        let good = captured_packet();
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert!(matches!(
            Packet::new_checked(&v6[..]),
            Err(Error::Malformed(_))
        ));
        let mut short_ihl = good.clone();
        short_ihl[0] = 0x44;
        assert!(matches!(
            Packet::new_checked(&short_ihl[..]),
            Err(Error::Malformed(_))
        ));
        let mut small_total = good.clone();
        small_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&small_total[..]),
            Err(Error::Malformed(_))
        ));
        assert_eq!(Packet::new_checked(&good[..0x72]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&good[..19]), Err(Error::Truncated));
    }

    #[test]
    fn options_are_recognised_from_ihl() {
        let mut bytes = HEADER.to_vec();
        bytes[0] = 0x46;
        bytes.extend_from_slice(&[0x01, 0x01, 0x01, 0x00]);
        bytes.extend_from_slice(&[0xaa; 4]);
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_total_len(28);
        packet.fill_checksum();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x01, 0x01, 0x01, 0x00]);
        assert_eq!(packet.payload(), &[0xaa; 4]);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.payload_len, 4);
    }

    #[test]
    fn fragment_fields_read_and_write_in_bytes() {
        let mut bytes = captured_packet();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_dont_frag(false);
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert!(!packet.dont_frag());
        assert!(packet.more_frags());
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment());
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        let mut bytes = captured_packet();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        assert_eq!(packet.decrement_ttl_incremental(), 63);
        assert!(packet.verify_checksum());
        packet.set_ttl(0);
        packet.fill_checksum();
        assert_eq!(packet.decrement_ttl_incremental(), 0);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn ecn_change_keeps_the_checksum_valid_and_the_dscp() {
        let mut bytes = captured_packet();
        let mut packet = Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_dscp_ecn(0xb8 | crate::wire::ecn::ECT0);
        packet.fill_checksum();
        packet.set_ecn_incremental(crate::wire::ecn::CE);
        assert_eq!(packet.dscp_ecn(), 0xb8 | crate::wire::ecn::CE);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn corrupted_header_is_refused_by_repr_parse() {
        let mut bytes = captured_packet();
        bytes[8] = 1;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(matches!(Repr::parse(&packet), Err(Error::Malformed(_))));
    }

    #[test]
    fn quoted_header_opens_without_its_full_payload() {
        let bytes = captured_packet();
        let packet = Packet::new_checked_header(&bytes[..28]).unwrap();
        assert_eq!(packet.payload().len(), 8);
    }

    #[test]
    fn repr_round_trips() {
        let repr = Repr {
            src_addr: Ipv4Addr::new(203, 0, 113, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: ip_proto::ESP,
            payload_len: 12,
            ttl: 64,
            dscp_ecn: 0xb8,
            ident: 0x1234,
            dont_frag: true,
        };
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(Repr::parse(&packet).unwrap(), repr);
    }

    #[test]
    fn repr_parse_of_captured_header() {
        let bytes = captured_packet();
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.protocol, ip_proto::UDP);
        assert_eq!(repr.payload_len, 0x73 - 20);
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(&out[..20], &HEADER[..]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.version(), p.header_len(), p.dscp_ecn(), p.total_len(), p.ident());
                let _ = (p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment());
                let _ = (p.ttl(), p.protocol(), p.checksum(), p.src_addr(), p.dst_addr());
                let _ = (p.options(), p.payload(), p.verify_checksum(), p.header());
                let _ = Repr::parse(&p);
            }
            if let Ok(p) = Packet::new_checked_header(&bytes[..]) {
                let _ = (p.options(), p.payload(), p.verify_checksum());
            }
        }

        #[test]
        fn arbitrary_valid_headers_parse_after_checksum_fill(
            mut bytes in proptest::collection::vec(any::<u8>(), 20..80),
            ihl in 5u8..=15,
        ) {
            bytes[0] = 0x40 | ihl;
            let total = bytes.len() as u16;
            let mut p = Packet::new_unchecked(&mut bytes[..]);
            p.set_total_len(total);
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                p.fill_checksum();
                prop_assert!(p.verify_checksum());
                let p = Packet::new_checked(&bytes[..]).unwrap();
                prop_assert!(Repr::parse(&p).is_ok());
            }
        }
    }
}
