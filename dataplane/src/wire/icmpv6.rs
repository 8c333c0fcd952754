//! ICMP for IPv6 (RFC 4443): Echo, Destination Unreachable, Packet Too Big
//! (path-MTU discovery through the tunnel, RFC 8201) and Time Exceeded, plus
//! recognition of Neighbor Discovery (RFC 4861) so the dataplane can hand
//! Router/Neighbor Solicitations, Advertisements and Redirects to the kernel.
//!
//! The checksum covers the IPv6 pseudo-header (RFC 8200 §8.1), so parsing
//! and emitting take the source and destination addresses.

use std::net::Ipv6Addr;

use super::{be16, be32, checksum, ip_proto, ipv6, put16, put32, Error, Result};

/// ICMPv6 message types used by the gateway.
pub mod message {
    /// Destination Unreachable.
    pub const DST_UNREACHABLE: u8 = 1;
    /// Packet Too Big (RFC 4443 §3.2).
    pub const PKT_TOO_BIG: u8 = 2;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Parameter Problem.
    pub const PARAM_PROBLEM: u8 = 4;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router Solicitation (RFC 4861 §4.1).
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Router Advertisement (RFC 4861 §4.2).
    pub const ROUTER_ADVERT: u8 = 134;
    /// Neighbor Solicitation (RFC 4861 §4.3).
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbor Advertisement (RFC 4861 §4.4).
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// Redirect (passed to the kernel).
    pub const REDIRECT: u8 = 137;

    /// Whether `msg_type` is a Neighbor Discovery message (RFC 4861 §4),
    /// which the kernel, not the dataplane, must answer.
    pub fn is_neighbor_discovery(msg_type: u8) -> bool {
        (ROUTER_SOLICIT..=REDIRECT).contains(&msg_type)
    }

    /// Whether `msg_type` is an error message (RFC 4443 §2.1: high bit
    /// clear); errors are never sent in response to errors.
    pub fn is_error(msg_type: u8) -> bool {
        msg_type < 128
    }
}

/// Destination Unreachable codes (RFC 4443 §3.1).
pub mod unreachable {
    /// No route to destination.
    pub const NO_ROUTE: u8 = 0;
    /// Communication administratively prohibited (e.g. an SPD discard).
    pub const ADMIN_PROHIBITED: u8 = 1;
    /// Address unreachable.
    pub const ADDRESS: u8 = 3;
    /// Port unreachable.
    pub const PORT: u8 = 4;
}

/// Time Exceeded codes (RFC 4443 §3.3).
pub mod time_exceeded {
    /// Hop limit reached zero in transit.
    pub const HOP_LIMIT: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY: u8 = 1;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// The 4 "message body" bytes after the checksum.
    pub const REST: usize = 4;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const MTU: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// Type, code, checksum and the 4-byte rest of header.
pub const HEADER_LEN: usize = 8;

/// IPv6 minimum link MTU (RFC 8200 §5): the most an ICMPv6 error packet,
/// IPv6 header included, may take (RFC 4443 §2.4 (c)).
pub const MIN_MTU: usize = 1280;

/// A zero-copy view over an ICMPv6 message.
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

    /// Wraps a buffer holding at least the 8-byte header. Pass the upper
    /// layer part of the IPv6 packet: the message ends where it does.
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

    /// Message type (see [`message`]).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field as stored.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The 4 bytes after the checksum as one big-endian word.
    pub fn rest_of_header(&self) -> u32 {
        be32(self.buffer.as_ref(), field::REST)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// MTU of a Packet Too Big.
    pub fn mtu(&self) -> u32 {
        be32(self.buffer.as_ref(), field::MTU)
    }

    /// Data after the 8-byte header.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }

    /// Whether this is a Neighbor Discovery message for the kernel.
    pub fn is_neighbor_discovery(&self) -> bool {
        message::is_neighbor_discovery(self.msg_type())
    }

    fn sum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> u16 {
        let data = self.buffer.as_ref();
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let pseudo = checksum::pseudo_header_v6(src, dst, ip_proto::ICMPV6, len);
        checksum::combine(&[pseudo, checksum::data(data)])
    }

    /// Whether the checksum over pseudo-header and message is correct.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> bool {
        self.sum(src, dst) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    /// Sets the code.
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field as given.
    pub fn set_checksum(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the 4 bytes after the checksum.
    pub fn set_rest_of_header(&mut self, value: u32) {
        put32(self.buffer.as_mut(), field::REST, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQ, value);
    }

    /// Sets the MTU of a Packet Too Big.
    pub fn set_mtu(&mut self, value: u32) {
        put32(self.buffer.as_mut(), field::MTU, value);
    }

    /// Mutable data after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD..)
            .unwrap_or(&mut [])
    }

    /// Computes and writes the checksum with the IPv6 pseudo-header.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst);
        self.set_checksum(!sum);
    }
}

/// How many bytes of `invoking` (an IPv6 packet) an ICMPv6 error quotes so
/// the error packet (40-byte IPv6 header + 8-byte ICMPv6 header + quote)
/// stays within `limit` (usually [`MIN_MTU`], RFC 4443 §2.4 (c)); never less
/// than the fixed header plus 8 bytes when present, never past the packet's
/// Payload Length.
pub fn quote_len(invoking: &[u8], limit: usize) -> usize {
    let available = match ipv6::Packet::new_checked_header(invoking) {
        Ok(p) => (ipv6::HEADER_LEN + usize::from(p.payload_len())).min(invoking.len()),
        Err(_) => invoking.len(),
    };
    let room = limit.saturating_sub(ipv6::HEADER_LEN + HEADER_LEN);
    room.max(ipv6::HEADER_LEN + 8).min(available)
}

/// The meaning of the ICMPv6 messages the gateway handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// Echo Request: answered by the gateway for its own addresses.
    EchoRequest {
        /// Echo identifier, echoed back unchanged.
        ident: u16,
        /// Echo sequence number, echoed back unchanged.
        seq_no: u16,
        /// Echo data, returned unchanged in the reply.
        data: &'a [u8],
    },
    /// Echo Reply.
    EchoReply {
        /// Echo identifier, echoed back unchanged.
        ident: u16,
        /// Echo sequence number, echoed back unchanged.
        seq_no: u16,
        /// Echo data, returned unchanged in the reply.
        data: &'a [u8],
    },
    /// Destination Unreachable; `data` is the quoted invoking packet.
    DstUnreachable {
        /// Message code.
        code: u8,
        /// The quoted invoking packet (see `quote_len`).
        data: &'a [u8],
    },
    /// Packet Too Big with the MTU of the next hop.
    PktTooBig {
        /// MTU of the next hop, which the sender's path MTU must not exceed.
        mtu: u32,
        /// The quoted invoking packet (see `quote_len`).
        data: &'a [u8],
    },
    /// Time Exceeded: hop limit reached, or reassembly timed out.
    TimeExceeded {
        /// Message code.
        code: u8,
        /// The quoted invoking packet (see `quote_len`).
        data: &'a [u8],
    },
    /// A Neighbor Discovery message (types 133–137), kept raw: `body` is
    /// everything after the checksum, for the kernel to interpret.
    Ndisc {
        /// Message type (133–137).
        msg_type: u8,
        /// Message code.
        code: u8,
        /// Everything after the checksum, options included.
        body: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Reads a message, verifying its checksum over the pseudo-header.
    /// Types not listed in [`Repr`] are `Malformed("unsupported ICMPv6
    /// type")`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        packet: &Packet<&'a T>,
    ) -> Result<Repr<'a>> {
        let data = packet.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Malformed("bad ICMPv6 checksum"));
        }
        let payload = &data[field::PAYLOAD..];
        match (packet.msg_type(), packet.code()) {
            (message::ECHO_REQUEST, 0) => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data: payload,
            }),
            (message::ECHO_REPLY, 0) => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data: payload,
            }),
            (message::DST_UNREACHABLE, code) => Ok(Repr::DstUnreachable {
                code,
                data: payload,
            }),
            (message::PKT_TOO_BIG, 0) => Ok(Repr::PktTooBig {
                mtu: packet.mtu(),
                data: payload,
            }),
            (message::TIME_EXCEEDED, code) => Ok(Repr::TimeExceeded {
                code,
                data: payload,
            }),
            (msg_type, code) if message::is_neighbor_discovery(msg_type) => Ok(Repr::Ndisc {
                msg_type,
                code,
                body: &data[field::REST..],
            }),
            _ => Err(Error::Malformed("unsupported ICMPv6 type")),
        }
    }

    /// Builds a Packet Too Big quoting as much of `invoking` as fits `limit`.
    pub fn pkt_too_big(mtu: u32, invoking: &'a [u8], limit: usize) -> Self {
        let data = invoking
            .get(..quote_len(invoking, limit))
            .unwrap_or(invoking);
        Repr::PktTooBig { mtu, data }
    }

    /// Builds a Destination Unreachable quoting as much of `invoking` as fits.
    pub fn dst_unreachable(code: u8, invoking: &'a [u8], limit: usize) -> Self {
        let data = invoking
            .get(..quote_len(invoking, limit))
            .unwrap_or(invoking);
        Repr::DstUnreachable { code, data }
    }

    /// Builds a Time Exceeded quoting as much of `invoking` as fits.
    pub fn time_exceeded(code: u8, invoking: &'a [u8], limit: usize) -> Self {
        let data = invoking
            .get(..quote_len(invoking, limit))
            .unwrap_or(invoking);
        Repr::TimeExceeded { code, data }
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::PktTooBig { data, .. }
            | Repr::TimeExceeded { data, .. } => HEADER_LEN + data.len(),
            Repr::Ndisc { body, .. } => field::REST + body.len().max(HEADER_LEN - field::REST),
        }
    }

    /// Always 8.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the whole message with its checksum over the pseudo-header of
    /// `src` → `dst`; the buffer must be exactly [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
        packet: &mut Packet<&mut T>,
    ) {
        packet.set_rest_of_header(0);
        let (msg_type, code, data) = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (message::ECHO_REQUEST, 0, data)
            }
            Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (message::ECHO_REPLY, 0, data)
            }
            Repr::DstUnreachable { code, data } => (message::DST_UNREACHABLE, code, data),
            Repr::PktTooBig { mtu, data } => {
                packet.set_mtu(mtu);
                (message::PKT_TOO_BIG, 0, data)
            }
            Repr::TimeExceeded { code, data } => (message::TIME_EXCEEDED, code, data),
            Repr::Ndisc {
                msg_type,
                code,
                body,
            } => {
                let out = packet
                    .buffer
                    .as_mut()
                    .get_mut(field::REST..)
                    .unwrap_or(&mut []);
                let n = body.len().min(out.len());
                out[..n].copy_from_slice(&body[..n]);
                (msg_type, code, &[][..])
            }
        };
        packet.set_msg_type(msg_type);
        packet.set_code(code);
        let payload = packet.payload_mut();
        let n = data.len().min(payload.len());
        payload[..n].copy_from_slice(&data[..n]);
        packet.fill_checksum(src, dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        ("fe80::1".parse().unwrap(), "fe80::2".parse().unwrap())
    }

    fn emit(repr: &Repr<'_>) -> Vec<u8> {
        let (src, dst) = addrs();
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&src, &dst, &mut Packet::new_unchecked(&mut bytes[..]));
        bytes
    }

    fn parse(bytes: &[u8]) -> Result<Repr<'_>> {
        let (src, dst) = addrs();
        Repr::parse(&src, &dst, &Packet::new_checked(bytes)?)
    }

    fn invoking_packet(payload_len: usize) -> Vec<u8> {
        let repr = ipv6::Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "2001:db8::2".parse().unwrap(),
            next_header: ip_proto::ESP,
            payload_len,
            hop_limit: 1,
            traffic_class: 0,
            flow_label: 0,
        };
        let mut bytes = vec![0x5a; repr.buffer_len()];
        repr.emit(&mut ipv6::Packet::new_unchecked(&mut bytes[..]));
        bytes
    }

    #[test]
    fn echo_request_checksum_matches_an_independent_computation() {
        // ping6 fe80::1 → fe80::2, id 0x1234, seq 1, data "abcd"; the
        // expected checksum is summed word by word here, pseudo-header
        // (addresses' non-zero words, length 12, next header 58) first.
        let mut bytes = [
            0x80, 0x00, 0x00, 0x00, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
        ];
        let (src, dst) = addrs();
        let mut words: u32 = 0xfe80 + 0x0001 + 0xfe80 + 0x0002 + 12 + 58;
        for pair in bytes.chunks(2) {
            words += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while words > 0xffff {
            words = (words & 0xffff) + (words >> 16);
        }
        let expected = !(words as u16);
        Packet::new_unchecked(&mut bytes[..]).fill_checksum(&src, &dst);
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap().checksum(),
            expected
        );
        assert_eq!(
            parse(&bytes).unwrap(),
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
    }

    #[test]
    fn echo_round_trips() {
        for repr in [
            Repr::EchoRequest {
                ident: 7,
                seq_no: 9,
                data: b"payload",
            },
            Repr::EchoReply {
                ident: 7,
                seq_no: 9,
                data: b"",
            },
        ] {
            assert_eq!(parse(&emit(&repr)).unwrap(), repr);
        }
    }

    #[test]
    fn packet_too_big_carries_the_mtu_and_quotes_up_to_1280_bytes() {
        let invoking = invoking_packet(1460);
        let repr = Repr::pkt_too_big(1400, &invoking, MIN_MTU);
        let bytes = emit(&repr);
        assert_eq!(bytes.len() + ipv6::HEADER_LEN, MIN_MTU);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.mtu(), 1400);
        assert_eq!(parse(&bytes).unwrap(), repr);
        let quoted = ipv6::Packet::new_checked_header(p.payload()).unwrap();
        assert_eq!(quoted.next_header(), ip_proto::ESP);
    }

    #[test]
    fn errors_round_trip_and_small_packets_are_quoted_whole() {
        let invoking = invoking_packet(16);
        for repr in [
            Repr::time_exceeded(time_exceeded::HOP_LIMIT, &invoking, MIN_MTU),
            Repr::dst_unreachable(unreachable::ADMIN_PROHIBITED, &invoking, MIN_MTU),
        ] {
            assert_eq!(parse(&emit(&repr)).unwrap(), repr);
        }
        assert_eq!(quote_len(&invoking, MIN_MTU), invoking.len());
        assert_eq!(quote_len(&invoking, 0), 48);
    }

    #[test]
    fn neighbor_discovery_is_recognised_for_the_kernel() {
        // Neighbor Solicitation for 2001:db8::2: reserved, target address.
        let mut body = vec![0u8; 4];
        body.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        let repr = Repr::Ndisc {
            msg_type: message::NEIGHBOR_SOLICIT,
            code: 0,
            body: &body,
        };
        let bytes = emit(&repr);
        assert_eq!(bytes.len(), 24);
        assert!(Packet::new_checked(&bytes[..])
            .unwrap()
            .is_neighbor_discovery());
        assert_eq!(parse(&bytes).unwrap(), repr);
        for t in [133, 134, 135, 136, 137] {
            assert!(message::is_neighbor_discovery(t));
        }
        assert!(!message::is_neighbor_discovery(message::ECHO_REQUEST));
    }

    #[test]
    fn wrong_addresses_fail_the_checksum() {
        let bytes = emit(&Repr::EchoRequest {
            ident: 1,
            seq_no: 1,
            data: b"x",
        });
        let other: Ipv6Addr = "fe80::3".parse().unwrap();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert!(matches!(
            Repr::parse(&other, &other, &p),
            Err(Error::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (src, dst) = addrs();
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header(), p.mtu());
                let _ = (p.echo_ident(), p.echo_seq_no(), p.payload(), p.is_neighbor_discovery());
                let _ = Repr::parse(&src, &dst, &p);
            }
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                p.fill_checksum(&src, &dst);
                if let Ok(repr) = parse(&bytes) {
                    let again = emit(&repr);
                    prop_assert_eq!(parse(&again), Ok(repr));
                }
            }
            let _ = quote_len(&bytes, MIN_MTU);
        }
    }
}
