//! The rtnetlink message format (`linux/netlink.h`, `linux/rtnetlink.h`,
//! `if_link.h`, `if_addr.h`, `neighbour.h`; RFC 3549 describes the
//! framing): the parser that turns the kernel's datagrams into
//! [`KernelEvent`]s, and the few requests we send.
//!
//! Only the fields the dataplane mirrors are read. Everything is parsed
//! with bounds-checked reads: a short or inconsistent message is a
//! [`ParseError`], never a panic, and nothing is trusted to be aligned.
//! Integers in netlink headers are in host byte order.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use thiserror::Error;

use crate::route::{Route, REJECT_IFINDEX};
use crate::spd::IpPrefix;
use crate::wire::ethernet::EthernetAddress;

/// `struct nlmsghdr`: length, type, flags, sequence, port id.
pub const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTMSG_LEN: usize = 12;
const NDMSG_LEN: usize = 12;
const RTNEXTHOP_LEN: usize = 8;
const RTA_HDRLEN: usize = 4;

/// Message types (`linux/netlink.h`, `linux/rtnetlink.h`).
pub mod msg {
    pub const NOOP: u16 = 1;
    pub const ERROR: u16 = 2;
    pub const DONE: u16 = 3;
    pub const OVERRUN: u16 = 4;
    pub const NEWLINK: u16 = 16;
    pub const DELLINK: u16 = 17;
    pub const GETLINK: u16 = 18;
    pub const NEWADDR: u16 = 20;
    pub const DELADDR: u16 = 21;
    pub const GETADDR: u16 = 22;
    pub const NEWROUTE: u16 = 24;
    pub const DELROUTE: u16 = 25;
    pub const GETROUTE: u16 = 26;
    pub const NEWNEIGH: u16 = 28;
    pub const DELNEIGH: u16 = 29;
    pub const GETNEIGH: u16 = 30;
}

/// `nlmsg_flags` bits.
pub mod flags {
    pub const REQUEST: u16 = 0x01;
    pub const MULTI: u16 = 0x02;
    pub const ACK: u16 = 0x04;
    pub const DUMP_INTR: u16 = 0x10;
    /// `NLM_F_ROOT | NLM_F_MATCH`.
    pub const DUMP: u16 = 0x300;
    pub const REPLACE: u16 = 0x100;
    pub const CREATE: u16 = 0x400;
}

/// The multicast groups the mirror listens to (`enum rtnetlink_groups`).
pub mod group {
    pub const LINK: u32 = 1;
    pub const NEIGH: u32 = 3;
    pub const IPV4_IFADDR: u32 = 5;
    pub const IPV4_ROUTE: u32 = 7;
    pub const IPV6_IFADDR: u32 = 9;
    pub const IPV6_ROUTE: u32 = 11;
    pub const ALL: [u32; 6] = [
        LINK,
        NEIGH,
        IPV4_IFADDR,
        IPV4_ROUTE,
        IPV6_IFADDR,
        IPV6_ROUTE,
    ];
}

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const ARPHRD_ETHER: u16 = 1;
const IFF_UP: u32 = 0x1;
const RT_TABLE_MAIN: u32 = 254;
const RTM_F_CLONED: u32 = 0x200;
/// Attribute type bits that are flags, not part of the type.
const NLA_TYPE_MASK: u16 = 0x3fff;

mod ifla {
    pub const ADDRESS: u16 = 1;
    pub const IFNAME: u16 = 3;
    pub const MTU: u16 = 4;
    pub const OPERSTATE: u16 = 16;
}

mod ifa {
    pub const ADDRESS: u16 = 1;
    pub const LOCAL: u16 = 2;
}

mod rta {
    pub const DST: u16 = 1;
    pub const OIF: u16 = 4;
    pub const GATEWAY: u16 = 5;
    pub const PRIORITY: u16 = 6;
    pub const MULTIPATH: u16 = 9;
    pub const TABLE: u16 = 15;
    pub const VIA: u16 = 18;
}

mod rtn {
    pub const UNICAST: u8 = 1;
    pub const BLACKHOLE: u8 = 6;
    pub const UNREACHABLE: u8 = 7;
    pub const PROHIBIT: u8 = 8;
}

mod nda {
    pub const DST: u16 = 1;
    pub const LLADDR: u16 = 2;
}

/// Neighbour states (`NUD_*`) and flags (`NTF_*`).
pub mod nud {
    pub const NONE: u16 = 0x00;
    pub const INCOMPLETE: u16 = 0x01;
    pub const REACHABLE: u16 = 0x02;
    pub const STALE: u16 = 0x04;
    pub const DELAY: u16 = 0x08;
    pub const PROBE: u16 = 0x10;
    pub const FAILED: u16 = 0x20;
    pub const NOARP: u16 = 0x40;
    pub const PERMANENT: u16 = 0x80;
    /// States in which the link-layer address may be used to send:
    /// STALE, DELAY and PROBE still hold the last known address while the
    /// kernel re-confirms it, as the kernel itself sends to them.
    pub const USABLE: u16 = REACHABLE | STALE | DELAY | PROBE | PERMANENT | NOARP;
    pub const NTF_USE: u8 = 0x01;
    pub const NTF_PROXY: u8 = 0x08;
}

/// Why a netlink datagram could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("netlink message header truncated: {have} of {NLMSG_HDRLEN} bytes")]
    TruncatedHeader { have: usize },
    #[error(
        "netlink message length {len} is below the header or past the datagram's {have} bytes"
    )]
    BadMessageLength { len: u32, have: usize },
    #[error("{what} truncated: {have} of {need} bytes")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    #[error("attribute length {len} at offset {at} is invalid ({have} bytes left)")]
    BadAttribute { at: usize, len: usize, have: usize },
    #[error("{what} attribute {kind} has a bad length {len}")]
    BadAttributeValue {
        what: &'static str,
        kind: u16,
        len: usize,
    },
    #[error("{what} lacks attribute {kind}")]
    MissingAttribute { what: &'static str, kind: u16 },
    #[error("interface name is not UTF-8")]
    BadName,
    #[error("prefix length {len} is too long for the address family")]
    BadPrefixLength { len: u8 },
}

fn bytes<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// Exactly `N` bytes: attribute values of fixed size.
fn exact<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    v.try_into().ok()
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    bytes(buf, at).map(u16::from_ne_bytes)
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    bytes(buf, at).map(u32::from_ne_bytes)
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

/// One netlink message: its header fields and the bytes after the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    pub body: &'a [u8],
}

/// Iterates over the messages of a datagram; stops after the first error.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

/// The messages packed in one datagram.
pub fn messages(datagram: &[u8]) -> Messages<'_> {
    Messages { rest: datagram }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Message<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let buf = std::mem::take(&mut self.rest);
        let (Some(len), Some(kind), Some(flags), Some(seq), Some(pid)) = (
            u32_at(buf, 0),
            u16_at(buf, 4),
            u16_at(buf, 6),
            u32_at(buf, 8),
            u32_at(buf, 12),
        ) else {
            return Some(Err(ParseError::TruncatedHeader { have: buf.len() }));
        };
        let n = len as usize;
        if n < NLMSG_HDRLEN || n > buf.len() {
            return Some(Err(ParseError::BadMessageLength {
                len,
                have: buf.len(),
            }));
        }
        self.rest = buf.get(align4(n)..).unwrap_or_default();
        Some(Ok(Message {
            kind,
            flags,
            seq,
            pid,
            body: &buf[NLMSG_HDRLEN..n],
        }))
    }
}

/// Iterates over `struct rtattr`s: (type without flag bits, payload).
#[derive(Debug, Clone)]
struct Attrs<'a> {
    buf: &'a [u8],
    at: usize,
}

fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { buf, at: 0 }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.buf.get(self.at..).unwrap_or_default();
        if rest.is_empty() {
            return None;
        }
        let at = self.at;
        self.at = self.buf.len();
        let (Some(len), Some(kind)) = (u16_at(rest, 0), u16_at(rest, 2)) else {
            return Some(Err(ParseError::BadAttribute {
                at,
                len: rest.len(),
                have: rest.len(),
            }));
        };
        let len = usize::from(len);
        if len < RTA_HDRLEN || len > rest.len() {
            return Some(Err(ParseError::BadAttribute {
                at,
                len,
                have: rest.len(),
            }));
        }
        self.at = at + align4(len).min(rest.len());
        Some(Ok((kind & NLA_TYPE_MASK, &rest[RTA_HDRLEN..len])))
    }
}

/// A link's operational state (RFC 2863 `ifOperStatus`, `IF_OPER_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperState {
    Unknown,
    NotPresent,
    Down,
    LowerLayerDown,
    Testing,
    Dormant,
    Up,
    Other(u8),
}

impl From<u8> for OperState {
    fn from(v: u8) -> OperState {
        match v {
            0 => OperState::Unknown,
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            o => OperState::Other(o),
        }
    }
}

/// A network interface as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// The MAC of an Ethernet device; `None` for any other kind (loopback,
    /// tun, ...), which the dataplane cannot forward on.
    pub mac: Option<EthernetAddress>,
    pub mtu: u32,
    /// `IFF_UP`: the administrator's up/down.
    pub admin_up: bool,
    pub oper: OperState,
}

/// An address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// A main-table route, with the metric the kernel chooses among routes to
/// the same prefix by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelRoute {
    pub route: Route,
    pub metric: u32,
}

/// A neighbour entry whose link-layer address may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Neighbour {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub mac: EthernetAddress,
}

/// What one kernel message said, reduced to what the dataplane mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    Link(Link),
    LinkGone {
        ifindex: u32,
    },
    Addr(IfAddr),
    AddrGone(IfAddr),
    /// A new route, or (`replace`, `NLM_F_REPLACE`) one that takes the
    /// place of the route with the same prefix and metric: the kernel
    /// sends no deletion for the route it replaced.
    Route {
        route: KernelRoute,
        replace: bool,
    },
    RouteGone(KernelRoute),
    Neighbour(Neighbour),
    /// The entry was deleted, or is in a state without a usable
    /// link-layer address (INCOMPLETE, FAILED, NONE).
    NeighbourGone {
        ifindex: u32,
        addr: IpAddr,
    },
}

/// The meaning of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Event(KernelEvent),
    /// A message or object the mirror does not use: another table, a
    /// local/broadcast route, a bridge FDB entry, `NLMSG_NOOP`, ...
    Ignored,
    /// `NLMSG_DONE`: the end of a dump.
    Done,
    /// `NLMSG_ERROR` with error 0: the acknowledgement of a request.
    Ack,
    /// `NLMSG_ERROR` (or a failed dump's `NLMSG_DONE`): the positive errno.
    Error(i32),
    /// `NLMSG_OVERRUN`: data was lost.
    Overrun,
}

/// Decodes one message.
pub fn decode(m: &Message<'_>) -> Result<Decoded, ParseError> {
    match m.kind {
        msg::DONE => Ok(match bytes::<4>(m.body, 0).map(i32::from_ne_bytes) {
            Some(e) if e < 0 => Decoded::Error(e.saturating_neg()),
            _ => Decoded::Done,
        }),
        msg::ERROR => {
            let e = bytes::<4>(m.body, 0)
                .map(i32::from_ne_bytes)
                .ok_or(ParseError::Truncated {
                    what: "nlmsgerr",
                    need: 4,
                    have: m.body.len(),
                })?;
            Ok(if e == 0 {
                Decoded::Ack
            } else {
                Decoded::Error(e.saturating_neg())
            })
        }
        msg::OVERRUN => Ok(Decoded::Overrun),
        msg::NEWLINK | msg::DELLINK => link(m.kind, m.body),
        msg::NEWADDR | msg::DELADDR => addr(m.kind, m.body),
        msg::NEWROUTE | msg::DELROUTE => route(m.kind, m.flags, m.body),
        msg::NEWNEIGH | msg::DELNEIGH => neighbour(m.kind, m.body),
        _ => Ok(Decoded::Ignored),
    }
}

fn body<'a>(what: &'static str, b: &'a [u8], need: usize) -> Result<&'a [u8], ParseError> {
    if b.len() < need {
        return Err(ParseError::Truncated {
            what,
            need,
            have: b.len(),
        });
    }
    Ok(b)
}

fn ip(what: &'static str, kind: u16, family: u8, v: &[u8]) -> Result<IpAddr, ParseError> {
    let bad = ParseError::BadAttributeValue {
        what,
        kind,
        len: v.len(),
    };
    match family {
        AF_INET => exact::<4>(v)
            .map(|b| IpAddr::V4(Ipv4Addr::from(b)))
            .ok_or(bad),
        AF_INET6 => exact::<16>(v)
            .map(|b| IpAddr::V6(Ipv6Addr::from(b)))
            .ok_or(bad),
        _ => Err(bad),
    }
}

fn u32_attr(what: &'static str, kind: u16, v: &[u8]) -> Result<u32, ParseError> {
    exact::<4>(v)
        .map(u32::from_ne_bytes)
        .ok_or(ParseError::BadAttributeValue {
            what,
            kind,
            len: v.len(),
        })
}

fn link(kind: u16, b: &[u8]) -> Result<Decoded, ParseError> {
    const WHAT: &str = "ifinfomsg";
    let b = body(WHAT, b, IFINFOMSG_LEN)?;
    // Bridge port messages (AF_BRIDGE) describe a port's bridge role,
    // not the link: a bridge DELLINK means "left the bridge".
    if b[0] != AF_UNSPEC {
        return Ok(Decoded::Ignored);
    }
    let link_type = u16_at(b, 2).unwrap_or_default();
    let ifindex = u32_at(b, 4).unwrap_or_default();
    let ifi_flags = u32_at(b, 8).unwrap_or_default();
    if kind == msg::DELLINK {
        return Ok(Decoded::Event(KernelEvent::LinkGone { ifindex }));
    }
    let (mut name, mut mac, mut mtu, mut oper) = (None, None, None, OperState::Unknown);
    for a in attrs(&b[IFINFOMSG_LEN..]) {
        let (t, v) = a?;
        match t {
            ifla::IFNAME => {
                let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
                name = Some(
                    std::str::from_utf8(&v[..end])
                        .map_err(|_| ParseError::BadName)?
                        .to_owned(),
                );
            }
            ifla::ADDRESS if link_type == ARPHRD_ETHER => {
                mac = Some(EthernetAddress(exact::<6>(v).ok_or(
                    ParseError::BadAttributeValue {
                        what: WHAT,
                        kind: t,
                        len: v.len(),
                    },
                )?));
            }
            ifla::MTU => mtu = Some(u32_attr(WHAT, t, v)?),
            ifla::OPERSTATE => {
                oper = OperState::from(*v.first().ok_or(ParseError::BadAttributeValue {
                    what: WHAT,
                    kind: t,
                    len: 0,
                })?)
            }
            _ => {}
        }
    }
    let missing = |kind| ParseError::MissingAttribute { what: WHAT, kind };
    Ok(Decoded::Event(KernelEvent::Link(Link {
        ifindex,
        name: name.ok_or(missing(ifla::IFNAME))?,
        mac,
        mtu: mtu.ok_or(missing(ifla::MTU))?,
        admin_up: ifi_flags & IFF_UP != 0,
        oper,
    })))
}

fn addr(kind: u16, b: &[u8]) -> Result<Decoded, ParseError> {
    const WHAT: &str = "ifaddrmsg";
    let b = body(WHAT, b, IFADDRMSG_LEN)?;
    let (family, prefix_len) = (b[0], b[1]);
    if family != AF_INET && family != AF_INET6 {
        return Ok(Decoded::Ignored);
    }
    let ifindex = u32_at(b, 4).unwrap_or_default();
    // IFA_LOCAL is our address; IFA_ADDRESS is the peer's on
    // point-to-point links and ours otherwise (IPv6 sends only it).
    let (mut local, mut address) = (None, None);
    for a in attrs(&b[IFADDRMSG_LEN..]) {
        let (t, v) = a?;
        match t {
            ifa::LOCAL => local = Some(ip(WHAT, t, family, v)?),
            ifa::ADDRESS => address = Some(ip(WHAT, t, family, v)?),
            _ => {}
        }
    }
    let Some(addr) = local.or(address) else {
        return Err(ParseError::MissingAttribute {
            what: WHAT,
            kind: ifa::ADDRESS,
        });
    };
    if IpPrefix::new(addr, prefix_len).is_none() {
        return Err(ParseError::BadPrefixLength { len: prefix_len });
    }
    let a = IfAddr {
        ifindex,
        addr,
        prefix_len,
    };
    Ok(Decoded::Event(if kind == msg::DELADDR {
        KernelEvent::AddrGone(a)
    } else {
        KernelEvent::Addr(a)
    }))
}

/// The first hop of `RTA_MULTIPATH`: (ifindex, gateway).
fn first_nexthop(family: u8, v: &[u8]) -> Result<Option<(u32, Option<IpAddr>)>, ParseError> {
    const WHAT: &str = "rtnexthop";
    if v.is_empty() {
        return Ok(None);
    }
    let v = body(WHAT, v, RTNEXTHOP_LEN)?;
    let len = usize::from(u16_at(v, 0).unwrap_or_default());
    if len < RTNEXTHOP_LEN || len > v.len() {
        return Err(ParseError::BadAttribute {
            at: 0,
            len,
            have: v.len(),
        });
    }
    let ifindex = u32_at(v, 4).unwrap_or_default();
    let mut gateway = None;
    for a in attrs(&v[RTNEXTHOP_LEN..len]) {
        let (t, val) = a?;
        match t {
            rta::GATEWAY => gateway = Some(ip(WHAT, t, family, val)?),
            rta::VIA => gateway = Some(via(val)?),
            _ => {}
        }
    }
    Ok(Some((ifindex, gateway)))
}

/// `struct rtvia`: a gateway of another family (an IPv4 route via an IPv6
/// next hop, RFC 5549).
fn via(v: &[u8]) -> Result<IpAddr, ParseError> {
    let family = u16_at(v, 0).ok_or(ParseError::BadAttributeValue {
        what: "rtvia",
        kind: rta::VIA,
        len: v.len(),
    })?;
    let family = u8::try_from(family).unwrap_or(u8::MAX);
    ip("rtvia", rta::VIA, family, &v[2..])
}

fn route(kind: u16, nl_flags: u16, b: &[u8]) -> Result<Decoded, ParseError> {
    const WHAT: &str = "rtmsg";
    let b = body(WHAT, b, RTMSG_LEN)?;
    let (family, dst_len, src_len, tos, table, rtype) = (b[0], b[1], b[2], b[3], b[4], b[7]);
    let rtm_flags = u32_at(b, 8).unwrap_or_default();
    if family != AF_INET && family != AF_INET6 {
        return Ok(Decoded::Ignored);
    }
    let (mut dst, mut oif, mut gateway, mut metric, mut table) =
        (None, None, None, 0, u32::from(table));
    let mut multipath = None;
    for a in attrs(&b[RTMSG_LEN..]) {
        let (t, v) = a?;
        match t {
            rta::DST => dst = Some(ip(WHAT, t, family, v)?),
            rta::OIF => oif = Some(u32_attr(WHAT, t, v)?),
            rta::GATEWAY => gateway = Some(ip(WHAT, t, family, v)?),
            rta::VIA => gateway = Some(via(v)?),
            rta::PRIORITY => metric = u32_attr(WHAT, t, v)?,
            rta::TABLE => table = u32_attr(WHAT, t, v)?,
            rta::MULTIPATH => multipath = first_nexthop(family, v)?,
            _ => {}
        }
    }
    // Only what the kernel forwards by for every packet: the main table,
    // no per-TOS or source-specific routes, no route-cache clones.
    if table != RT_TABLE_MAIN || tos != 0 || src_len != 0 || rtm_flags & RTM_F_CLONED != 0 {
        return Ok(Decoded::Ignored);
    }
    let unspecified = if family == AF_INET {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let prefix = IpPrefix::new(dst.unwrap_or(unspecified), dst_len)
        .ok_or(ParseError::BadPrefixLength { len: dst_len })?;
    let route = match rtype {
        rtn::UNICAST => {
            // Multipath: the first hop only (the dataplane does no ECMP).
            if let Some((i, g)) = multipath {
                oif = oif.or(Some(i));
                gateway = gateway.or(g);
            }
            // A route through a nexthop object without
            // nexthop_compat_mode names no device: nothing to forward by.
            let Some(ifindex) = oif.filter(|&i| i != REJECT_IFINDEX) else {
                return Ok(Decoded::Ignored);
            };
            Route {
                prefix,
                ifindex,
                gateway,
            }
        }
        rtn::BLACKHOLE | rtn::UNREACHABLE | rtn::PROHIBIT => Route {
            prefix,
            ifindex: REJECT_IFINDEX,
            gateway: None,
        },
        // local, broadcast, anycast, multicast (the gateway's own
        // addresses come from the address messages), throw, nat.
        _ => return Ok(Decoded::Ignored),
    };
    let route = KernelRoute { route, metric };
    Ok(Decoded::Event(if kind == msg::DELROUTE {
        KernelEvent::RouteGone(route)
    } else {
        KernelEvent::Route {
            route,
            replace: nl_flags & flags::REPLACE != 0,
        }
    }))
}

fn neighbour(kind: u16, b: &[u8]) -> Result<Decoded, ParseError> {
    const WHAT: &str = "ndmsg";
    let b = body(WHAT, b, NDMSG_LEN)?;
    let family = b[0];
    let ifindex = u32_at(b, 4).unwrap_or_default();
    let state = u16_at(b, 8).unwrap_or_default();
    let ndm_flags = b[10];
    if (family != AF_INET && family != AF_INET6) || ndm_flags & nud::NTF_PROXY != 0 {
        return Ok(Decoded::Ignored);
    }
    let (mut dst, mut lladdr) = (None, None);
    for a in attrs(&b[NDMSG_LEN..]) {
        let (t, v) = a?;
        match t {
            nda::DST => dst = Some(ip(WHAT, t, family, v)?),
            nda::LLADDR => lladdr = exact::<6>(v),
            _ => {}
        }
    }
    let addr = dst.ok_or(ParseError::MissingAttribute {
        what: WHAT,
        kind: nda::DST,
    })?;
    let gone = KernelEvent::NeighbourGone { ifindex, addr };
    if kind == msg::DELNEIGH || state & nud::USABLE == 0 {
        return Ok(Decoded::Event(gone));
    }
    // A usable state without an Ethernet address (a non-Ethernet device):
    // nothing the dataplane can write into a frame.
    Ok(Decoded::Event(match lladdr {
        Some(mac) => KernelEvent::Neighbour(Neighbour {
            ifindex,
            addr,
            mac: EthernetAddress(mac),
        }),
        None => gone,
    }))
}

/// What a dump request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    Links,
    Addresses,
    Routes,
    Neighbours,
}

fn header(buf: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    buf.clear();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, fixed up by finish
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
}

fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = RTA_HDRLEN + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

fn finish(buf: &mut [u8]) {
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
}

/// A dump request of both address families (`AF_UNSPEC`).
pub fn dump_request(buf: &mut Vec<u8>, what: Dump, seq: u32) {
    let (kind, body_len) = match what {
        Dump::Links => (msg::GETLINK, IFINFOMSG_LEN),
        Dump::Addresses => (msg::GETADDR, IFADDRMSG_LEN),
        Dump::Routes => (msg::GETROUTE, RTMSG_LEN),
        Dump::Neighbours => (msg::GETNEIGH, NDMSG_LEN),
    };
    header(buf, kind, flags::REQUEST | flags::DUMP, seq);
    buf.resize(NLMSG_HDRLEN + body_len, 0);
    finish(buf);
}

/// `RTM_NEWNEIGH` with `NTF_USE` (what `ip neigh replace ADDR dev DEV use`
/// sends): the kernel looks the entry up, creating it if needed
/// (`NLM_F_CREATE`), and runs `neigh_event_send` on it, the path a
/// packet without a resolved neighbour takes. A new, stale or failed entry
/// goes to INCOMPLETE (or DELAY) and the kernel sends an ARP request or a
/// Neighbour Solicitation, with its own retries and timers; the state
/// field is not applied (NUD_NONE is sent), so no permanent entry is made.
pub fn resolve_request(buf: &mut Vec<u8>, seq: u32, ifindex: u32, addr: IpAddr) {
    header(
        buf,
        msg::NEWNEIGH,
        flags::REQUEST | flags::ACK | flags::CREATE | flags::REPLACE,
        seq,
    );
    let family = if addr.is_ipv4() { AF_INET } else { AF_INET6 };
    buf.extend_from_slice(&[family, 0, 0, 0]);
    buf.extend_from_slice(&ifindex.to_ne_bytes());
    buf.extend_from_slice(&nud::NONE.to_ne_bytes());
    buf.extend_from_slice(&[nud::NTF_USE, 0]);
    match addr {
        IpAddr::V4(a) => attr(buf, nda::DST, &a.octets()),
        IpAddr::V6(a) => attr(buf, nda::DST, &a.octets()),
    }
    finish(buf);
}

/// Builders of kernel-style messages, for tests and the fuzz target's
/// seeds: the inverse of [`decode`] for the fields it reads.
#[doc(hidden)]
pub mod build {
    use super::*;

    fn family(a: &IpAddr) -> u8 {
        if a.is_ipv4() {
            AF_INET
        } else {
            AF_INET6
        }
    }

    fn octets(a: &IpAddr) -> Vec<u8> {
        match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    /// A kernel message for `ev` appended to `out`.
    pub fn event(out: &mut Vec<u8>, ev: &KernelEvent, seq: u32) {
        let mut m = Vec::new();
        match ev {
            KernelEvent::Link(l) => {
                header(&mut m, msg::NEWLINK, 0, seq);
                m.extend_from_slice(&[AF_UNSPEC, 0]);
                let ltype = if l.mac.is_some() { ARPHRD_ETHER } else { 772 };
                m.extend_from_slice(&ltype.to_ne_bytes());
                m.extend_from_slice(&l.ifindex.to_ne_bytes());
                m.extend_from_slice(&u32::from(l.admin_up).to_ne_bytes());
                m.extend_from_slice(&0u32.to_ne_bytes());
                let mut name = l.name.as_bytes().to_vec();
                name.push(0);
                attr(&mut m, ifla::IFNAME, &name);
                attr(&mut m, ifla::MTU, &l.mtu.to_ne_bytes());
                attr(
                    &mut m,
                    ifla::ADDRESS,
                    &l.mac.map(|m| m.0).unwrap_or_default(),
                );
                let oper = match l.oper {
                    OperState::Unknown => 0,
                    OperState::NotPresent => 1,
                    OperState::Down => 2,
                    OperState::LowerLayerDown => 3,
                    OperState::Testing => 4,
                    OperState::Dormant => 5,
                    OperState::Up => 6,
                    OperState::Other(o) => o,
                };
                attr(&mut m, ifla::OPERSTATE, &[oper]);
            }
            KernelEvent::LinkGone { ifindex } => {
                header(&mut m, msg::DELLINK, 0, seq);
                m.extend_from_slice(&[AF_UNSPEC, 0, 1, 0]);
                m.extend_from_slice(&ifindex.to_ne_bytes());
                m.extend_from_slice(&[0; 8]);
            }
            KernelEvent::Addr(a) | KernelEvent::AddrGone(a) => {
                let kind = if matches!(ev, KernelEvent::Addr(_)) {
                    msg::NEWADDR
                } else {
                    msg::DELADDR
                };
                header(&mut m, kind, 0, seq);
                m.extend_from_slice(&[family(&a.addr), a.prefix_len, 0, 0]);
                m.extend_from_slice(&a.ifindex.to_ne_bytes());
                attr(&mut m, ifa::ADDRESS, &octets(&a.addr));
            }
            KernelEvent::Route { route, .. } | KernelEvent::RouteGone(route) => {
                let (kind, fl) = match ev {
                    KernelEvent::Route { replace: true, .. } => (msg::NEWROUTE, flags::REPLACE),
                    KernelEvent::Route { .. } => (msg::NEWROUTE, 0),
                    _ => (msg::DELROUTE, 0),
                };
                let r = &route.route;
                let reject = r.ifindex == REJECT_IFINDEX;
                let rtype = if reject {
                    rtn::UNREACHABLE
                } else {
                    rtn::UNICAST
                };
                header(&mut m, kind, fl, seq);
                let f = family(&r.prefix.addr());
                m.extend_from_slice(&[f, r.prefix.prefix_len(), 0, 0, 254, 3, 0, rtype]);
                m.extend_from_slice(&0u32.to_ne_bytes());
                attr(&mut m, rta::TABLE, &RT_TABLE_MAIN.to_ne_bytes());
                attr(&mut m, rta::PRIORITY, &route.metric.to_ne_bytes());
                if r.prefix.prefix_len() > 0 {
                    attr(&mut m, rta::DST, &octets(&r.prefix.addr()));
                }
                if !reject {
                    attr(&mut m, rta::OIF, &r.ifindex.to_ne_bytes());
                }
                match r.gateway {
                    Some(g) if family(&g) == f => attr(&mut m, rta::GATEWAY, &octets(&g)),
                    Some(g) => {
                        let mut v = u16::from(family(&g)).to_ne_bytes().to_vec();
                        v.extend_from_slice(&octets(&g));
                        attr(&mut m, rta::VIA, &v);
                    }
                    None => {}
                }
            }
            KernelEvent::Neighbour(n) => {
                header(&mut m, msg::NEWNEIGH, 0, seq);
                m.extend_from_slice(&[family(&n.addr), 0, 0, 0]);
                m.extend_from_slice(&n.ifindex.to_ne_bytes());
                m.extend_from_slice(&nud::REACHABLE.to_ne_bytes());
                m.extend_from_slice(&[0, 1]);
                attr(&mut m, nda::DST, &octets(&n.addr));
                attr(&mut m, nda::LLADDR, &n.mac.0);
            }
            KernelEvent::NeighbourGone { ifindex, addr } => {
                header(&mut m, msg::DELNEIGH, 0, seq);
                m.extend_from_slice(&[family(addr), 0, 0, 0]);
                m.extend_from_slice(&ifindex.to_ne_bytes());
                m.extend_from_slice(&nud::FAILED.to_ne_bytes());
                m.extend_from_slice(&[0, 1]);
                attr(&mut m, nda::DST, &octets(addr));
            }
        }
        finish(&mut m);
        out.extend_from_slice(&m);
    }

    /// `NLMSG_DONE` ending a dump.
    pub fn done(out: &mut Vec<u8>, seq: u32) {
        let mut m = Vec::new();
        header(&mut m, msg::DONE, flags::MULTI, seq);
        m.extend_from_slice(&0i32.to_ne_bytes());
        finish(&mut m);
        out.extend_from_slice(&m);
    }
}

#[cfg(test)]
mod tests;
