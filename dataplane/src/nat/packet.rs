//! Where the fields NAT rewrites sit in an IPv4 packet, and the rewrites
//! themselves, each patching every checksum that covers the changed word
//! with the RFC 1624 incremental update instead of summing the packet again.
//!
//! The parse only records offsets and values; nothing is written until the
//! caller has decided to translate, so a packet NAT leaves alone is never
//! touched. Every offset handed out here has been checked against the
//! packet's Total Length, so the rewrites cannot index out of bounds.

use std::net::Ipv4Addr;

use crate::wire::{checksum, icmpv4, ip_proto, ipv4};

/// Offsets in an IPv4 header (RFC 791 §3.1).
mod field {
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: usize = 12;
    pub const DST_ADDR: usize = 16;
}

/// Offsets in TCP (RFC 9293 §3.1), UDP (RFC 768) and ICMP (RFC 792) headers.
mod l4 {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const TCP_FLAGS: usize = 13;
    pub const TCP_CHECKSUM: usize = 16;
    pub const TCP_HEADER_LEN: usize = 20;
    pub const UDP_CHECKSUM: usize = 6;
    pub const UDP_HEADER_LEN: usize = 8;
    pub const ICMP_CHECKSUM: usize = 2;
    pub const ICMP_ECHO_IDENT: usize = 4;
    pub const ICMP_HEADER_LEN: usize = 8;
    /// What RFC 792 promises an ICMP error quotes after the IP header.
    pub const QUOTED_L4_LEN: usize = 8;
}

/// The packet cannot be read as far as NAT needs (counted as malformed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Malformed;

fn be16(p: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([p[at], p[at + 1]])
}

fn put16(p: &mut [u8], at: usize, value: u16) {
    p[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// A checksum field that covers a word NAT changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sum {
    at: usize,
    /// UDP over IPv4: a zero field means "no checksum" and stays zero, and
    /// a computed zero is sent as `0xffff` (RFC 768).
    zero_means_none: bool,
    /// The bytes the checksum covers, when they alone could all be zero
    /// (an ICMP message has no pseudo-header): see [`Sum::adjust`].
    covers: Option<(usize, usize)>,
}

impl Sum {
    const fn plain(at: usize) -> Sum {
        Sum {
            at,
            zero_means_none: false,
            covers: None,
        }
    }

    /// An ICMP checksum over `start..end`.
    const fn icmp(at: usize, start: usize, end: usize) -> Sum {
        Sum {
            at,
            zero_means_none: false,
            covers: Some((start, end)),
        }
    }

    /// Whether every covered byte but the checksum field itself is zero.
    fn covers_only_zeros(self, p: &[u8]) -> bool {
        let Some((start, end)) = self.covers else {
            return false;
        };
        let zero = |r: std::ops::Range<usize>| p.get(r).is_some_and(|b| b.iter().all(|&x| x == 0));
        zero(start..self.at) && zero(self.at + 2..end)
    }

    /// Patches the field for one 16-bit word that went from `old` to `new`.
    fn adjust(self, p: &mut [u8], old: u16, new: u16) {
        if old == new {
            // update() would turn 0xffff into 0x0000: equal in ones'
            // complement, but a needless change of the bits on the wire.
            return;
        }
        let current = be16(p, self.at);
        if self.zero_means_none && current == 0 {
            return;
        }
        let mut patched = checksum::update(current, old, new);
        if patched == 0 && (self.zero_means_none || self.covers_only_zeros(p)) {
            // Eqn. 3 yields 0x0000 whenever the data sum is a ones'
            // complement zero. Data summing to -0 (0xffff) verifies with
            // either 0x0000 or 0xffff, but data of all zero bytes sums to
            // +0 and verifies only with 0xffff (an echo reply with
            // identifier, sequence number and data all zero); the scan runs
            // only in that one-in-65536 case.
            patched = 0xffff;
        }
        put16(p, self.at, patched);
    }
}

/// Writes a 16-bit word and patches the checksums that cover it.
fn put_word(p: &mut [u8], at: usize, new: u16, sums: &[Option<Sum>]) {
    let old = be16(p, at);
    if old == new {
        return;
    }
    put16(p, at, new);
    for sum in sums.iter().flatten() {
        sum.adjust(p, old, new);
    }
}

/// Writes an IPv4 address (two words) and patches the checksums that cover it.
fn put_addr(p: &mut [u8], at: usize, addr: Ipv4Addr, sums: &[Option<Sum>]) {
    let o = addr.octets();
    put_word(p, at, u16::from_be_bytes([o[0], o[1]]), sums);
    put_word(p, at + 2, u16::from_be_bytes([o[2], o[3]]), sums);
}

/// Which end of a packet a rewrite changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Src,
    Dst,
}

impl Side {
    fn addr_offset(self) -> usize {
        match self {
            Side::Src => field::SRC_ADDR,
            Side::Dst => field::DST_ADDR,
        }
    }
}

/// The IPv4 header fields NAT reads, taken from a packet that passed
/// `ipv4::Packet::new_checked` (so `end` ≤ the buffer length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    /// Header length (IHL × 4): where the transport header starts.
    pub ihl: usize,
    /// Total Length: where the packet ends (link padding excluded).
    pub end: usize,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    /// Any fragment (MF set or a non-zero offset).
    pub fragment: bool,
    /// Offset zero: the transport header is in this packet.
    pub first_fragment: bool,
}

/// Reads the IPv4 header; the caller has checked the version nibble.
pub(super) fn header(p: &[u8]) -> Result<Header, Malformed> {
    let ip = ipv4::Packet::new_checked(p).map_err(|_| Malformed)?;
    Ok(Header {
        ihl: ip.header_len(),
        end: usize::from(ip.total_len()),
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto: ip.protocol(),
        fragment: ip.is_fragment(),
        first_fragment: ip.frag_offset() == 0,
    })
}

/// Source and destination port as an ACL line sees them: TCP and UDP
/// ports when the packet holds them, 0 otherwise (ICMP, non-first
/// fragments, truncated headers) — the same rule as `pipeline::flow_key`,
/// so the NAT list and the crypto map see the same flow.
pub(super) fn acl_ports(p: &[u8], h: &Header) -> Option<(u16, u16)> {
    if !h.first_fragment || !matches!(h.proto, ip_proto::TCP | ip_proto::UDP) {
        return None;
    }
    let at = h.ihl;
    if h.end < at + 4 {
        return None;
    }
    Some((be16(p, at + l4::SRC_PORT), be16(p, at + l4::DST_PORT)))
}

/// The transport fields that name a flow: TCP or UDP ports, or the
/// identifier of an ICMP echo, which NAT treats as the port of the end
/// that chose it (the requester): for an echo request it is the source
/// "port" and the destination port is 0; for a reply it is the other way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Transport {
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    sport_at: Option<usize>,
    dport_at: Option<usize>,
    /// The transport checksum, if the bytes hold it (a quote may not).
    sum: Option<Sum>,
    /// Whether that checksum covers the IP addresses (TCP and UDP
    /// pseudo-header; ICMPv4 has none).
    pseudo: bool,
    /// TCP flags (0 for other protocols or a quote too short to have them).
    pub tcp_flags: u8,
}

impl Transport {
    /// Whether the source end has a port NAT can rewrite (outbound flows:
    /// TCP, UDP, echo requests).
    pub fn has_src_port(&self) -> bool {
        self.sport_at.is_some()
    }

    /// Whether the destination end has one (inbound flows: TCP, UDP,
    /// echo replies).
    pub fn has_dst_port(&self) -> bool {
        self.dport_at.is_some()
    }

    fn port_at(&self, side: Side) -> Option<usize> {
        match side {
            Side::Src => self.sport_at,
            Side::Dst => self.dport_at,
        }
    }
}

/// Reads the transport header at `at`. `Ok(None)`: a protocol or ICMP
/// type NAT does not translate. In a quote (`quoted`), only the first 8
/// bytes are promised (RFC 792), so a TCP checksum may be missing.
fn transport(
    p: &[u8],
    at: usize,
    end: usize,
    proto: u8,
    quoted: bool,
) -> Result<Option<Transport>, Malformed> {
    let avail = end.saturating_sub(at);
    let ports = |sum: Option<Sum>, tcp_flags| Transport {
        proto,
        sport: be16(p, at + l4::SRC_PORT),
        dport: be16(p, at + l4::DST_PORT),
        sport_at: Some(at + l4::SRC_PORT),
        dport_at: Some(at + l4::DST_PORT),
        sum,
        pseudo: true,
        tcp_flags,
    };
    match proto {
        ip_proto::TCP => {
            let need = if quoted {
                l4::QUOTED_L4_LEN
            } else {
                l4::TCP_HEADER_LEN
            };
            if avail < need {
                return Err(Malformed);
            }
            let sum = (avail >= l4::TCP_CHECKSUM + 2).then_some(Sum::plain(at + l4::TCP_CHECKSUM));
            let flags = if avail > l4::TCP_FLAGS {
                p[at + l4::TCP_FLAGS]
            } else {
                0
            };
            Ok(Some(ports(sum, flags)))
        }
        ip_proto::UDP => {
            if avail < l4::UDP_HEADER_LEN {
                return Err(Malformed);
            }
            let sum = Sum {
                at: at + l4::UDP_CHECKSUM,
                zero_means_none: true,
                covers: None,
            };
            Ok(Some(ports(Some(sum), 0)))
        }
        ip_proto::ICMP => {
            if avail < l4::ICMP_HEADER_LEN {
                return Err(Malformed);
            }
            let (msg_type, code) = (p[at], p[at + 1]);
            let ident_at = at + l4::ICMP_ECHO_IDENT;
            let ident = be16(p, ident_at);
            // A quote may be cut short, so the bytes its checksum covers
            // are not all known; an error quoting an all-zero echo reply
            // is not worth more.
            let sum = Some(if quoted {
                Sum::plain(at + l4::ICMP_CHECKSUM)
            } else {
                Sum::icmp(at + l4::ICMP_CHECKSUM, at, end)
            });
            let echo = |sport, dport, sport_at, dport_at| Transport {
                proto,
                sport,
                dport,
                sport_at,
                dport_at,
                sum,
                pseudo: false,
                tcp_flags: 0,
            };
            Ok(match (msg_type, code) {
                (icmpv4::message::ECHO_REQUEST, 0) => Some(echo(ident, 0, Some(ident_at), None)),
                (icmpv4::message::ECHO_REPLY, 0) => Some(echo(0, ident, None, Some(ident_at))),
                _ => None,
            })
        }
        _ => Ok(None),
    }
}

/// The packet an ICMP error quotes (RFC 792): its IP header and at least
/// the first 8 bytes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Quoted {
    /// Offset of the quoted IP header in the packet.
    at: usize,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub t: Transport,
}

/// What follows the IPv4 header, as far as NAT is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum L4 {
    /// TCP, UDP or an ICMP echo: the ports (or identifier) name the flow.
    Flow(Transport),
    /// An ICMP error (destination unreachable, time exceeded, parameter
    /// problem) quoting a TCP, UDP or echo packet.
    Error { icmp_sum: Sum, quoted: Quoted },
    /// Anything else: other protocols, other ICMP types, errors quoting
    /// something without ports, non-first fragments.
    Other,
}

/// Reads the transport header of a packet whose IPv4 header is `h`.
pub(super) fn transport_of(p: &[u8], h: &Header) -> Result<L4, Malformed> {
    if !h.first_fragment {
        return Ok(L4::Other);
    }
    let at = h.ihl;
    if h.proto == ip_proto::ICMP {
        if h.end < at + l4::ICMP_HEADER_LEN {
            return Err(Malformed);
        }
        if matches!(
            p[at],
            icmpv4::message::DST_UNREACHABLE
                | icmpv4::message::TIME_EXCEEDED
                | icmpv4::message::PARAM_PROBLEM
        ) {
            let icmp_sum = Sum::plain(at + l4::ICMP_CHECKSUM);
            return Ok(match quoted(p, at + l4::ICMP_HEADER_LEN, h.end)? {
                Some(quoted) => L4::Error { icmp_sum, quoted },
                None => L4::Other,
            });
        }
    }
    Ok(transport(p, at, h.end, h.proto, false)?.map_or(L4::Other, L4::Flow))
}

/// Reads the packet quoted from `at` to `end`. Its own Total Length
/// describes the original packet, not the quote, so the quote is bounded
/// by the ICMP message. `Ok(None)`: nothing NAT could have translated (a
/// non-first fragment, an ICMP error about an ICMP error, ...).
fn quoted(p: &[u8], at: usize, end: usize) -> Result<Option<Quoted>, Malformed> {
    let bytes = p.get(at..end).ok_or(Malformed)?;
    let ip = ipv4::Packet::new_checked_header(bytes).map_err(|_| Malformed)?;
    if ip.frag_offset() != 0 {
        return Ok(None);
    }
    let t = transport(p, at + ip.header_len(), end, ip.protocol(), true)?;
    Ok(t.map(|t| Quoted {
        at,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        t,
    }))
}

/// Rewrites one end (address and port) of the packet's own flow: the
/// source on the way out, the destination on the way back. Patches the IP
/// header checksum and the transport checksum (which covers the address
/// through the pseudo-header for TCP and UDP, and the port or identifier).
pub(super) fn rewrite_flow(p: &mut [u8], t: &Transport, side: Side, addr: Ipv4Addr, port: u16) {
    rewrite_end(p, 0, t, side, addr, port, None);
}

/// Rewrites an ICMP error: the outer address on `outer` (the destination
/// of an error coming back in, the source of one going out) becomes
/// `outer_addr`, and the quoted packet's `quoted_side` end becomes
/// `addr`/`port`, so the host that receives the error recognises its own
/// packet in it (RFC 5508 §7, RFC 3022 §4.3). Every checksum stays valid:
/// the outer IP header's, the quoted IP header's, the quoted transport
/// checksum if quoted, and the ICMP checksum, which covers all the quoted
/// bytes including those checksums.
#[allow(clippy::too_many_arguments)]
pub(super) fn rewrite_error(
    p: &mut [u8],
    outer: Side,
    outer_addr: Ipv4Addr,
    icmp_sum: Sum,
    q: &Quoted,
    quoted_side: Side,
    addr: Ipv4Addr,
    port: u16,
) {
    // The ICMP checksum has no pseudo-header: the outer address change
    // touches the outer IP header checksum only.
    let ip_sum = Some(Sum::plain(field::CHECKSUM));
    put_addr(p, outer.addr_offset(), outer_addr, &[ip_sum]);

    let quoted_ip_sum = q.at + field::CHECKSUM;
    let before_ip = be16(p, quoted_ip_sum);
    let before_l4 = q.t.sum.map(|s| be16(p, s.at));
    rewrite_end(p, q.at, &q.t, quoted_side, addr, port, Some(icmp_sum));
    // The quoted checksum fields changed too, and the ICMP checksum covers them.
    icmp_sum.adjust(p, before_ip, be16(p, quoted_ip_sum));
    if let (Some(sum), Some(before)) = (q.t.sum, before_l4) {
        icmp_sum.adjust(p, before, be16(p, sum.at));
    }
}

/// Rewrites the address and port on `side` of the IP packet at `ip_at`,
/// patching its IP and transport checksums and, for a quoted packet, the
/// enclosing ICMP checksum (`outer`).
fn rewrite_end(
    p: &mut [u8],
    ip_at: usize,
    t: &Transport,
    side: Side,
    addr: Ipv4Addr,
    port: u16,
    outer: Option<Sum>,
) {
    let ip_sum = Some(Sum::plain(ip_at + field::CHECKSUM));
    let pseudo_sum = if t.pseudo { t.sum } else { None };
    put_addr(
        p,
        ip_at + side.addr_offset(),
        addr,
        &[ip_sum, pseudo_sum, outer],
    );
    if let Some(at) = t.port_at(side) {
        put_word(p, at, port, &[t.sum, outer]);
    }
}
