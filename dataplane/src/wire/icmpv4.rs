//! ICMP for IPv4 (RFC 792): the messages the gateway answers or generates
//! itself — Echo, Destination Unreachable (with the RFC 1191 next-hop MTU of
//! "fragmentation needed", the heart of path-MTU discovery through a
//! tunnel) and Time Exceeded — sized per RFC 1812 §4.3.2.3.

use super::{be16, checksum, ipv4, put16, Error, Result};

/// ICMP message types used by the gateway.
pub mod message {
    /// Echo Reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination Unreachable.
    pub const DST_UNREACHABLE: u8 = 3;
    /// Redirect (passed to the kernel).
    pub const REDIRECT: u8 = 5;
    /// Echo Request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time Exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter Problem.
    pub const PARAM_PROBLEM: u8 = 12;
}

/// Destination Unreachable codes (RFC 792, RFC 1812 §5.2.7.1).
pub mod unreachable {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set; carries the next-hop MTU (RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Communication administratively prohibited (e.g. an SPD discard).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Time Exceeded codes.
pub mod time_exceeded {
    /// TTL reached zero in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY: u8 = 1;
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// The 4 "rest of header" bytes: identifier and sequence number of an
    /// Echo; unused(2) and next-hop MTU(2) of fragmentation needed.
    pub const REST: usize = 4;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQ: usize = 6;
    pub const NEXT_HOP_MTU: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// Type, code, checksum and the 4-byte rest of header.
pub const HEADER_LEN: usize = 8;

/// Largest IPv4 datagram an ICMP error should make (RFC 1812 §4.3.2.3).
pub const ERROR_LIMIT: usize = 576;

/// A zero-copy view over an ICMP message.
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

    /// Wraps a buffer holding at least the 8-byte header. Pass the IPv4
    /// payload: the message ends where the IP packet does.
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

    /// The 4 rest-of-header bytes as one big-endian word.
    pub fn rest_of_header(&self) -> u32 {
        super::be32(self.buffer.as_ref(), field::REST)
    }

    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQ)
    }

    /// Next-hop MTU of a fragmentation-needed message (0 from pre-RFC 1191
    /// routers).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU)
    }

    /// Data after the header: echo data, or the invoking packet of an error.
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(field::PAYLOAD..).unwrap_or(&[])
    }

    /// Whether the message sums to `0xffff` over all its bytes.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0xffff
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

    /// Sets the 4 rest-of-header bytes.
    pub fn set_rest_of_header(&mut self, value: u32) {
        super::put32(self.buffer.as_mut(), field::REST, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQ, value);
    }

    /// Sets the next-hop MTU.
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        put16(self.buffer.as_mut(), field::NEXT_HOP_MTU, value);
    }

    /// Mutable data after the header.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD..)
            .unwrap_or(&mut [])
    }

    /// Computes and writes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }
}

/// How many bytes of `invoking` (an IPv4 packet) an ICMP error quotes so the
/// whole error datagram (20-byte IPv4 header + 8-byte ICMP header + quote)
/// stays within `limit` (usually [`ERROR_LIMIT`]), but never less than the
/// invoking header plus 8 bytes (RFC 792; with ESP, its SPI and sequence
/// number) when the packet has them, and never past its Total Length.
pub fn quote_len(invoking: &[u8], limit: usize) -> usize {
    let (header_len, total_len) = match ipv4::Packet::new_checked_header(invoking) {
        Ok(p) => (p.header_len(), usize::from(p.total_len())),
        Err(_) => (ipv4::HEADER_LEN, invoking.len()),
    };
    let available = total_len.min(invoking.len());
    let room = limit.saturating_sub(ipv4::HEADER_LEN + HEADER_LEN);
    room.max(header_len + 8).min(available)
}

/// The meaning of the ICMP messages the gateway handles.
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
    /// Destination Unreachable; `next_hop_mtu` is meaningful for
    /// [`unreachable::FRAG_NEEDED`] and 0 otherwise. `data` is the quoted
    /// invoking packet (see [`quote_len`]).
    DstUnreachable {
        /// Message code.
        code: u8,
        /// Next-hop MTU (RFC 1191).
        next_hop_mtu: u16,
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
}

impl<'a> Repr<'a> {
    /// Reads a message, verifying its checksum. Types other than Echo,
    /// Destination Unreachable and Time Exceeded are `Malformed("unsupported
    /// ICMP type")`: the gateway passes them to the kernel unparsed.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        let data = packet.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if !packet.verify_checksum() {
            return Err(Error::Malformed("bad ICMP checksum"));
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
                next_hop_mtu: if code == unreachable::FRAG_NEEDED {
                    packet.next_hop_mtu()
                } else {
                    0
                },
                data: payload,
            }),
            (message::TIME_EXCEEDED, code) => Ok(Repr::TimeExceeded {
                code,
                data: payload,
            }),
            _ => Err(Error::Malformed("unsupported ICMP type")),
        }
    }

    /// Builds a Destination Unreachable quoting as much of `invoking` as
    /// [`quote_len`] allows for `limit`.
    pub fn dst_unreachable(code: u8, next_hop_mtu: u16, invoking: &'a [u8], limit: usize) -> Self {
        let data = invoking
            .get(..quote_len(invoking, limit))
            .unwrap_or(invoking);
        Repr::DstUnreachable {
            code,
            next_hop_mtu,
            data,
        }
    }

    /// Builds a Time Exceeded quoting as much of `invoking` as fits `limit`.
    pub fn time_exceeded(code: u8, invoking: &'a [u8], limit: usize) -> Self {
        let data = invoking
            .get(..quote_len(invoking, limit))
            .unwrap_or(invoking);
        Repr::TimeExceeded { code, data }
    }

    fn data(&self) -> &'a [u8] {
        match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. } => data,
        }
    }

    /// Always 8.
    pub fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus data.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes the whole message with its checksum; the buffer must be
    /// exactly [`Repr::buffer_len`] bytes (the checksum covers all of it).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_rest_of_header(0);
        match *self {
            Repr::EchoRequest { ident, seq_no, .. } | Repr::EchoReply { ident, seq_no, .. } => {
                let msg_type = if matches!(self, Repr::EchoRequest { .. }) {
                    message::ECHO_REQUEST
                } else {
                    message::ECHO_REPLY
                };
                packet.set_msg_type(msg_type);
                packet.set_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
            }
            Repr::DstUnreachable {
                code, next_hop_mtu, ..
            } => {
                packet.set_msg_type(message::DST_UNREACHABLE);
                packet.set_code(code);
                packet.set_next_hop_mtu(next_hop_mtu);
            }
            Repr::TimeExceeded { code, .. } => {
                packet.set_msg_type(message::TIME_EXCEEDED);
                packet.set_code(code);
            }
        }
        let data = self.data();
        let payload = packet.payload_mut();
        let n = data.len().min(payload.len());
        payload[..n].copy_from_slice(&data[..n]);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip_proto;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// An echo request: id 0x1234, seq 1, data "abcd"; checksum by hand:
    /// !(0800 + 1234 + 0001 + 6162 + 6364 = defb) = 2104.
    const ECHO: [u8; 12] = [
        0x08, 0x00, 0x21, 0x04, 0x12, 0x34, 0x00, 0x01, b'a', b'b', b'c', b'd',
    ];

    fn emit(repr: &Repr<'_>) -> Vec<u8> {
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        bytes
    }

    fn invoking_packet(payload_len: usize) -> Vec<u8> {
        let repr = ipv4::Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(192, 0, 2, 9),
            protocol: ip_proto::ESP,
            payload_len,
            ttl: 1,
            dscp_ecn: 0,
            ident: 7,
            dont_frag: true,
        };
        let mut bytes = vec![0x5a; repr.buffer_len()];
        repr.emit(&mut ipv4::Packet::new_unchecked(&mut bytes[..]));
        bytes
    }

    #[test]
    fn known_echo_request_parses_and_verifies() {
        let p = Packet::new_checked(&ECHO[..]).unwrap();
        assert_eq!(p.msg_type(), message::ECHO_REQUEST);
        assert_eq!(p.code(), 0);
        assert!(p.verify_checksum());
        assert_eq!(
            Repr::parse(&p).unwrap(),
            Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }
        );
    }

    #[test]
    fn echo_request_and_reply_round_trip() {
        for repr in [
            Repr::EchoRequest {
                ident: 1,
                seq_no: 2,
                data: b"hello",
            },
            Repr::EchoReply {
                ident: 0xffff,
                seq_no: 0,
                data: b"",
            },
        ] {
            let bytes = emit(&repr);
            assert_eq!(
                Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
                repr
            );
        }
        assert_eq!(
            emit(&Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data: b"abcd"
            }),
            ECHO
        );
    }

    #[test]
    fn frag_needed_carries_the_next_hop_mtu_and_round_trips() {
        let invoking = invoking_packet(1400);
        let repr = Repr::dst_unreachable(unreachable::FRAG_NEEDED, 1438, &invoking, ERROR_LIMIT);
        let bytes = emit(&repr);
        let p = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.next_hop_mtu(), 1438);
        assert_eq!(Repr::parse(&p).unwrap(), repr);
        // 576 - 20 (IP) - 8 (ICMP) = 548 bytes of the invoking packet.
        assert_eq!(p.payload().len(), 548);
        let quoted = ipv4::Packet::new_checked_header(p.payload()).unwrap();
        assert_eq!(quoted.protocol(), ip_proto::ESP);
    }

    #[test]
    fn time_exceeded_round_trips() {
        let invoking = invoking_packet(30);
        let repr = Repr::time_exceeded(time_exceeded::TTL, &invoking, ERROR_LIMIT);
        assert_eq!(
            repr,
            Repr::TimeExceeded {
                code: 0,
                data: &invoking
            }
        );
        let bytes = emit(&repr);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap(),
            repr
        );
    }

    #[test]
    fn quote_keeps_header_plus_eight_bytes_even_under_a_tiny_limit() {
        let invoking = invoking_packet(100);
        assert_eq!(quote_len(&invoking, 0), 28);
        assert_eq!(quote_len(&invoking[..24], 0), 24);
        assert_eq!(quote_len(&invoking, 10_000), 120);
    }

    #[test]
    fn bad_checksum_and_unknown_types_are_refused() {
        let mut bytes = ECHO;
        bytes[9] ^= 1;
        assert!(matches!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
            Err(Error::Malformed(_))
        ));
        let mut redirect = [message::REDIRECT, 0, 0, 0, 0, 0, 0, 0];
        Packet::new_unchecked(&mut redirect[..]).fill_checksum();
        assert!(Repr::parse(&Packet::new_checked(&redirect[..]).unwrap()).is_err());
        assert_eq!(Packet::new_checked(&ECHO[..7]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Packet::new_checked(&bytes[..]) {
                let _ = (p.msg_type(), p.code(), p.checksum(), p.rest_of_header());
                let _ = (p.echo_ident(), p.echo_seq_no(), p.next_hop_mtu(), p.payload());
                let _ = Repr::parse(&p);
            }
            if let Ok(mut p) = Packet::new_checked(&mut bytes[..]) {
                p.fill_checksum();
                let p = Packet::new_checked(&bytes[..]).unwrap();
                if let Ok(repr) = Repr::parse(&p) {
                    let again = emit(&repr);
                    prop_assert_eq!(Repr::parse(&Packet::new_checked(&again[..]).unwrap()), Ok(repr));
                }
            }
            let _ = quote_len(&bytes, ERROR_LIMIT);
        }
    }
}
