//! IPv6 headers (RFC 8200 §3) and the extension-header walk (RFC 8200 §4)
//! that finds the upper-layer protocol and where transport-mode ESP goes
//! (RFC 4303 §3.1.1: after the per-hop part — Hop-by-Hop, Routing and any
//! Destination Options before Routing — and before everything else).

use std::net::Ipv6Addr;

use super::{be16, be32, ip_proto, put16, put32, Error, Result};

mod field {
    use core::ops::Range;

    /// Version (4 bits), Traffic Class (8), Flow Label (20).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: usize = 4;
    /// The fixed header's Next Header field; [`super::ExtWalk`] reports
    /// offsets of this kind.
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;

    /// Within an extension header: Next Header, then Hdr Ext Len.
    pub const EXT_NXT_HDR: usize = 0;
    pub const EXT_LEN: usize = 1;
    /// Within a Fragment header: offset (13 bits, 8-byte units), res, M.
    pub const FRAG_OFF_M: usize = 2;
    pub const FRAG_IDENT: usize = 4;
    pub const FRAG_HEADER_LEN: usize = 8;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;

/// Most extension headers the walk follows before giving up: a legitimate
/// packet carries a handful, and a bound keeps per-packet work constant
/// against header chains built to exhaust a worker.
pub const MAX_EXT_HEADERS: usize = 16;

/// A zero-copy view over an IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// The Fragment header (RFC 8200 §4.5) found during the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentInfo {
    /// Offset of this fragment's data in bytes.
    pub offset: u16,
    /// More Fragments.
    pub more: bool,
    /// Identification, shared by the fragments of one packet.
    pub ident: u32,
}

/// Where things are in an IPv6 packet's header chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtWalk {
    /// First protocol that is not a walked extension header (TCP, UDP, ICMPv6,
    /// ESP, No Next Header, ...). For a non-first fragment, the Next Header
    /// of the Fragment header (its bytes are not a header).
    pub upper_proto: u8,
    /// Offset of that protocol's header from the start of the IPv6 header.
    pub upper_offset: usize,
    /// End of the unfragmentable, per-hop part (RFC 8200 §4.5): where
    /// transport-mode ESP is inserted (RFC 4303 §3.1.1). 40 when there is
    /// neither Hop-by-Hop nor Routing header.
    pub unfragmentable_len: usize,
    /// Offset of the Next Header field that points past the unfragmentable
    /// part: the one to set to ESP (50) when inserting ESP; 6 for the fixed
    /// header.
    pub unfragmentable_nh_offset: usize,
    /// The Fragment header, if any.
    pub fragment: Option<FragmentInfo>,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it. Getters may panic if it is
    /// shorter than 40 bytes; use [`Packet::new_checked`] for received data.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking version 6 and that it holds the header
    /// plus Payload Length bytes (it may hold more: link-layer padding).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_checked_header(buffer)?;
        if packet.buffer.as_ref().len() < HEADER_LEN + usize::from(packet.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(packet)
    }

    /// Checks only the fixed header: for a packet quoted in an ICMPv6 error,
    /// which is usually cut short (RFC 4443 §2.4 (c)).
    pub fn new_checked_header(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::Malformed("IP version is not 6"));
        }
        Ok(packet)
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        be32(self.buffer.as_ref(), field::VER_TC_FLOW.start)
    }

    /// IP version (6 for a checked packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic Class (DSCP and ECN), copied to the outer header in tunnel
    /// mode (RFC 4301 §5.1.2.1).
    pub fn traffic_class(&self) -> u8 {
        ((self.ver_tc_flow() >> 20) & 0xff) as u8
    }

    /// Flow Label (20 bits).
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload Length: everything after the fixed header, extension headers
    /// included.
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next Header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    /// Hop Limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(octets)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(octets)
    }

    /// End of the packet: header plus Payload Length, bounded by the buffer.
    fn end(&self) -> usize {
        let data = self.buffer.as_ref();
        (HEADER_LEN + usize::from(self.payload_len())).min(data.len())
    }

    /// Everything after the fixed header, bounded by Payload Length.
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(HEADER_LEN..self.end()).unwrap_or(&[])
    }

    /// Walks the extension-header chain (Hop-by-Hop, Routing, Fragment,
    /// Destination Options, AH) up to [`MAX_EXT_HEADERS`] headers.
    ///
    /// Errors: a header running past Payload Length is `Truncated`; a
    /// Hop-by-Hop header anywhere but first, a second Fragment header or a
    /// chain longer than the bound is `Malformed`. The walk stops after the
    /// Fragment header of a non-first fragment, whose following bytes are
    /// data, not headers.
    pub fn walk_ext_headers(&self) -> Result<ExtWalk> {
        let data = self.buffer.as_ref();
        let end = self.end();
        let mut walk = ExtWalk {
            upper_proto: self.next_header(),
            upper_offset: HEADER_LEN,
            unfragmentable_len: HEADER_LEN,
            unfragmentable_nh_offset: field::NXT_HDR,
            fragment: None,
        };
        // Once a Fragment or AH header is seen, later headers are in the
        // fragmentable (end-to-end) part even if they are Routing headers.
        let mut per_hop_part_over = false;
        for _ in 0..MAX_EXT_HEADERS {
            let offset = walk.upper_offset;
            let header_len = match walk.upper_proto {
                ip_proto::HOP_BY_HOP | ip_proto::ROUTING | ip_proto::DEST_OPTS => {
                    if walk.upper_proto == ip_proto::HOP_BY_HOP && offset != HEADER_LEN {
                        return Err(Error::Malformed("Hop-by-Hop header not first"));
                    }
                    let len_byte = *data.get(offset + field::EXT_LEN).ok_or(Error::Truncated)?;
                    (usize::from(len_byte) + 1) * 8
                }
                ip_proto::AH => {
                    let len_byte = *data.get(offset + field::EXT_LEN).ok_or(Error::Truncated)?;
                    (usize::from(len_byte) + 2) * 4
                }
                ip_proto::FRAGMENT => field::FRAG_HEADER_LEN,
                _ => return Ok(walk),
            };
            if offset + header_len > end {
                return Err(Error::Truncated);
            }
            let proto = walk.upper_proto;
            walk.upper_proto = data[offset + field::EXT_NXT_HDR];
            walk.upper_offset = offset + header_len;
            match proto {
                ip_proto::HOP_BY_HOP | ip_proto::ROUTING if !per_hop_part_over => {
                    walk.unfragmentable_len = offset + header_len;
                    walk.unfragmentable_nh_offset = offset + field::EXT_NXT_HDR;
                }
                ip_proto::AH => per_hop_part_over = true,
                ip_proto::FRAGMENT => {
                    if walk.fragment.is_some() {
                        return Err(Error::Malformed("second IPv6 Fragment header"));
                    }
                    per_hop_part_over = true;
                    let off_m = be16(data, offset + field::FRAG_OFF_M);
                    let info = FragmentInfo {
                        offset: off_m & 0xfff8,
                        more: off_m & 0x0001 != 0,
                        ident: be32(data, offset + field::FRAG_IDENT),
                    };
                    walk.fragment = Some(info);
                    if info.offset != 0 {
                        return Ok(walk);
                    }
                }
                _ => {}
            }
        }
        match walk.upper_proto {
            ip_proto::HOP_BY_HOP
            | ip_proto::ROUTING
            | ip_proto::DEST_OPTS
            | ip_proto::AH
            | ip_proto::FRAGMENT => Err(Error::Malformed("too many IPv6 extension headers")),
            _ => Ok(walk),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        put32(self.buffer.as_mut(), field::VER_TC_FLOW.start, value);
    }

    /// Sets the version nibble.
    pub fn set_version(&mut self, version: u8) {
        let v = (self.ver_tc_flow() & 0x0fff_ffff) | (u32::from(version & 0x0f) << 28);
        self.set_ver_tc_flow(v);
    }

    /// Sets Traffic Class.
    pub fn set_traffic_class(&mut self, tc: u8) {
        let v = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(tc) << 20);
        self.set_ver_tc_flow(v);
    }

    /// Sets Flow Label (low 20 bits kept).
    pub fn set_flow_label(&mut self, label: u32) {
        let v = (self.ver_tc_flow() & 0xfff0_0000) | (label & 0x000f_ffff);
        self.set_ver_tc_flow(v);
    }

    /// Sets Payload Length.
    pub fn set_payload_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the fixed header's Next Header.
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = nh;
    }

    /// Sets Hop Limit (IPv6 has no header checksum to patch).
    pub fn set_hop_limit(&mut self, hop_limit: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = hop_limit;
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Mutable payload, bounded like [`Packet::payload`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.end();
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }
}

/// The meaning of a fixed IPv6 header (extension headers are payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next Header of the fixed header (first extension or upper protocol).
    pub next_header: u8,
    /// Payload Length (extension headers included).
    pub payload_len: usize,
    /// Hop Limit.
    pub hop_limit: u8,
    /// Traffic Class (DSCP and ECN).
    pub traffic_class: u8,
    /// Flow Label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads the fixed header of a checked packet.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if packet.version() != 6 {
            return Err(Error::Malformed("IP version is not 6"));
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Always 40.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte fixed header; the buffer must hold 40 bytes and
    /// `payload_len` fit in 16 bits (it saturates otherwise).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_ver_tc_flow(0);
        packet.set_version(6);
        packet.set_traffic_class(self.traffic_class);
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(u16::try_from(self.payload_len).unwrap_or(u16::MAX));
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn repr(next_header: u8, payload_len: usize) -> Repr {
        Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8:ffff::2".parse().unwrap(),
            next_header,
            payload_len,
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        }
    }

    /// Builds a packet whose payload is `ext` (extension headers and upper data).
    fn packet_with(next_header: u8, ext: &[u8]) -> Vec<u8> {
        let r = repr(next_header, ext.len());
        let mut bytes = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes[HEADER_LEN..].copy_from_slice(ext);
        bytes
    }

    /// An 8-byte options header (Hop-by-Hop or Dest Opts) with PadN.
    fn opts(next: u8) -> [u8; 8] {
        [next, 0, 1, 4, 0, 0, 0, 0]
    }

    /// A Type 0-style routing header with no addresses (8 bytes).
    fn routing(next: u8) -> [u8; 8] {
        [next, 0, 0, 0, 0, 0, 0, 0]
    }

    #[test]
    fn captured_icmpv6_echo_header_reads_every_field() {
        // ping6 from 2001:db8::1 to 2001:db8::2, 64-byte payload.
        let mut bytes = vec![
            0x60, 0x0b, 0x12, 0x34, 0x00, 0x40, 0x3a, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02,
        ];
        bytes.resize(40 + 64, 0x80);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x00);
        assert_eq!(p.flow_label(), 0xb1234);
        assert_eq!(p.payload_len(), 64);
        assert_eq!(p.next_header(), ip_proto::ICMPV6);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.src_addr(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload().len(), 64);
    }

    #[test]
    fn repr_round_trips() {
        let r = repr(ip_proto::ESP, 16);
        let mut bytes = vec![0u8; r.buffer_len()];
        r.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            r
        );
    }

    #[test]
    fn new_checked_rejects_wrong_version_and_short_payload() {
        let mut bytes = packet_with(ip_proto::UDP, &[0; 8]);
        assert_eq!(Packet::new_checked(&bytes[..47]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&bytes[..39]), Err(Error::Truncated));
        bytes[0] = 0x45;
        assert!(matches!(
            Packet::new_checked(&bytes[..]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn walk_without_extension_headers_stops_at_the_upper_protocol() {
        let bytes = packet_with(ip_proto::TCP, &[0; 20]);
        let walk = Packet::new_checked(&bytes[..])
            .unwrap()
            .walk_ext_headers()
            .unwrap();
        assert_eq!(walk.upper_proto, ip_proto::TCP);
        assert_eq!(walk.upper_offset, 40);
        assert_eq!(walk.unfragmentable_len, 40);
        assert_eq!(walk.unfragmentable_nh_offset, 6);
        assert_eq!(walk.fragment, None);
    }

    #[test]
    fn esp_goes_after_hop_by_hop_dest_opts_and_routing_but_before_final_dest_opts() {
        let mut ext = Vec::new();
        ext.extend_from_slice(&opts(ip_proto::DEST_OPTS)); // HBH at 40
        ext.extend_from_slice(&opts(ip_proto::ROUTING)); // DO at 48
        ext.extend_from_slice(&routing(ip_proto::DEST_OPTS)); // RH at 56
        ext.extend_from_slice(&opts(ip_proto::UDP)); // DO at 64
        ext.extend_from_slice(&[0; 8]); // UDP at 72
        let bytes = packet_with(ip_proto::HOP_BY_HOP, &ext);
        let walk = Packet::new_checked(&bytes[..])
            .unwrap()
            .walk_ext_headers()
            .unwrap();
        assert_eq!(walk.upper_proto, ip_proto::UDP);
        assert_eq!(walk.upper_offset, 72);
        assert_eq!(walk.unfragmentable_len, 64);
        assert_eq!(walk.unfragmentable_nh_offset, 56);
    }

    #[test]
    fn dest_opts_without_routing_stay_after_esp() {
        let mut ext = opts(ip_proto::TCP).to_vec();
        ext.extend_from_slice(&[0; 20]);
        let bytes = packet_with(ip_proto::DEST_OPTS, &ext);
        let walk = Packet::new_checked(&bytes[..])
            .unwrap()
            .walk_ext_headers()
            .unwrap();
        assert_eq!(walk.upper_proto, ip_proto::TCP);
        assert_eq!(walk.upper_offset, 48);
        assert_eq!(walk.unfragmentable_len, 40);
        assert_eq!(walk.unfragmentable_nh_offset, 6);
    }

    #[test]
    fn fragment_header_is_reported_and_ends_the_per_hop_part() {
        let mut ext = opts(ip_proto::FRAGMENT).to_vec();
        // Fragment: next UDP, offset 0, M=1, ident 0xdeadbeef.
        ext.extend_from_slice(&[ip_proto::UDP, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        ext.extend_from_slice(&[0; 8]);
        let bytes = packet_with(ip_proto::HOP_BY_HOP, &ext);
        let walk = Packet::new_checked(&bytes[..])
            .unwrap()
            .walk_ext_headers()
            .unwrap();
        assert_eq!(walk.upper_proto, ip_proto::UDP);
        assert_eq!(walk.upper_offset, 56);
        assert_eq!(walk.unfragmentable_len, 48);
        assert_eq!(walk.unfragmentable_nh_offset, 40);
        assert_eq!(
            walk.fragment,
            Some(FragmentInfo {
                offset: 0,
                more: true,
                ident: 0xdead_beef
            })
        );
    }

    #[test]
    fn non_first_fragment_stops_the_walk_at_its_data() {
        // Offset 1480 bytes = 185 units → 185 << 3 = 0x05c8; the "data" looks
        // like a Hop-by-Hop header but must not be walked.
        let mut ext = vec![ip_proto::HOP_BY_HOP, 0, 0x05, 0xc8, 0, 0, 0, 1];
        ext.extend_from_slice(&[0xff; 16]);
        let bytes = packet_with(ip_proto::FRAGMENT, &ext);
        let walk = Packet::new_checked(&bytes[..])
            .unwrap()
            .walk_ext_headers()
            .unwrap();
        assert_eq!(walk.upper_offset, 48);
        assert_eq!(
            walk.fragment.map(|f| (f.offset, f.more)),
            Some((1480, false))
        );
    }

    #[test]
    fn ah_length_counts_four_byte_units_plus_two() {
        // AH with payload len 4 → (4 + 2) * 4 = 24 bytes.
        let mut ext = vec![ip_proto::ESP, 4];
        ext.resize(24, 0);
        ext.extend_from_slice(&[0; 8]);
        let bytes = packet_with(ip_proto::AH, &ext);
        let walk = Packet::new_checked(&bytes[..])
            .unwrap()
            .walk_ext_headers()
            .unwrap();
        assert_eq!(walk.upper_proto, ip_proto::ESP);
        assert_eq!(walk.upper_offset, 64);
    }

    #[test]
    fn header_running_past_payload_length_is_truncated() {
        let mut ext = opts(ip_proto::UDP).to_vec();
        ext[1] = 1; // claims 16 bytes, only 8 present
        let bytes = packet_with(ip_proto::HOP_BY_HOP, &ext);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.walk_ext_headers(), Err(Error::Truncated));
        let bytes = packet_with(ip_proto::ROUTING, &[]);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.walk_ext_headers(), Err(Error::Truncated));
    }

    #[test]
    fn hop_by_hop_after_another_header_is_malformed() {
        let mut ext = opts(ip_proto::HOP_BY_HOP).to_vec();
        ext.extend_from_slice(&opts(ip_proto::UDP));
        let bytes = packet_with(ip_proto::DEST_OPTS, &ext);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(matches!(p.walk_ext_headers(), Err(Error::Malformed(_))));
    }

    #[test]
    fn endless_dest_opts_chain_is_bounded() {
        let mut ext = Vec::new();
        for _ in 0..40 {
            ext.extend_from_slice(&opts(ip_proto::DEST_OPTS));
        }
        let bytes = packet_with(ip_proto::DEST_OPTS, &ext);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(matches!(p.walk_ext_headers(), Err(Error::Malformed(_))));
    }

    #[test]
    fn exactly_the_bound_of_headers_is_accepted() {
        let mut ext = Vec::new();
        for i in 0..MAX_EXT_HEADERS {
            let next = if i + 1 == MAX_EXT_HEADERS {
                ip_proto::NO_NEXT_HEADER
            } else {
                ip_proto::DEST_OPTS
            };
            ext.extend_from_slice(&opts(next));
        }
        let bytes = packet_with(ip_proto::DEST_OPTS, &ext);
        let walk = Packet::new_checked(&bytes[..])
            .unwrap()
            .walk_ext_headers()
            .unwrap();
        assert_eq!(walk.upper_proto, ip_proto::NO_NEXT_HEADER);
        assert_eq!(walk.upper_offset, 40 + 8 * MAX_EXT_HEADERS);
    }

    #[test]
    fn setters_write_every_field() {
        let mut bytes = packet_with(ip_proto::UDP, &[0; 8]);
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_traffic_class(0x2e);
        p.set_flow_label(0xfffff);
        p.set_hop_limit(1);
        p.set_next_header(ip_proto::ESP);
        p.set_src_addr(Ipv6Addr::LOCALHOST);
        p.set_dst_addr(Ipv6Addr::UNSPECIFIED);
        p.payload_mut()[0] = 7;
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0x2e);
        assert_eq!(p.flow_label(), 0xfffff);
        assert_eq!(p.hop_limit(), 1);
        assert_eq!(p.next_header(), ip_proto::ESP);
        assert_eq!(p.src_addr(), Ipv6Addr::LOCALHOST);
        assert_eq!(p.dst_addr(), Ipv6Addr::UNSPECIFIED);
        assert_eq!(p.payload()[0], 7);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.version(), p.traffic_class(), p.flow_label(), p.payload_len());
                let _ = (p.next_header(), p.hop_limit(), p.src_addr(), p.dst_addr(), p.payload());
                let _ = Repr::parse(&p);
                let _ = p.walk_ext_headers();
            }
        }

        #[test]
        fn walk_never_panics_on_arbitrary_extension_chains(
            next_header in prop_oneof![Just(0u8), Just(43), Just(44), Just(60), Just(51), any::<u8>()],
            mut chain in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(43), Just(44), Just(60), Just(51), Just(0), Just(1), any::<u8>()],
                0..300,
            ),
            cut in any::<proptest::sample::Index>(),
        ) {
            let bytes = packet_with(next_header, &chain);
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                if let Ok(walk) = p.walk_ext_headers() {
                    prop_assert!(walk.upper_offset <= bytes.len());
                    prop_assert!(walk.unfragmentable_len <= walk.upper_offset);
                    prop_assert!(walk.unfragmentable_nh_offset < walk.unfragmentable_len);
                }
            }
            // Payload Length larger than what the chain holds.
            let keep = cut.index(chain.len() + 1);
            chain.truncate(keep);
            let mut bytes = packet_with(next_header, &chain);
            let mut p = Packet::new_unchecked(&mut bytes[..]);
            p.set_payload_len(u16::MAX);
            let _ = Packet::new_checked_header(&bytes[..]).map(|p| p.walk_ext_headers());
        }
    }
}
