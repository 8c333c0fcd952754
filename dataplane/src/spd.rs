//! The security policy database (RFC 4301 §4.4.1) with the semantics of an
//! IOS crypto map: an ordered list of rules over source and destination
//! prefixes, protocol and port ranges; the first rule that matches decides
//! (an ACL `permit` line becomes *protect*, a `deny` line *bypass*), even if
//! a later rule is more specific.
//!
//! Lookup keeps IPv4 and IPv6 rules apart and, within a family, indexes
//! the rules by destination prefix: one hash probe per distinct
//! destination prefix length (usually one to three) finds the few rules
//! whose destination can match, and the first of those that matches, in
//! rule order, decides. A hub with 100 000 per-peer rules therefore costs
//! about what one rule does (`espada-bench scale`). Lookup allocates
//! nothing, and where it starts follows from the destination alone, so
//! the pipeline prefetches a batch's index slots and rules before it looks
//! any up.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;

use thiserror::Error;

use crate::prefetch::prefetch_bytes;
use crate::wire::{ip_proto, ipv4, ipv6};

/// A prefix such as `198.18.0.0/15` or `fd00::/8`. Host bits are masked off
/// when parsing, as IOS does for ACL wildcards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpPrefix {
    addr: IpAddr,
    len: u8,
}

/// Why a prefix did not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrefixError {
    #[error("{0:?} is not an IP address")]
    BadAddress(String),
    #[error("prefix length {len} is too long for {addr}")]
    BadLength { addr: IpAddr, len: String },
}

fn mask_v4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn mask_v6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

impl IpPrefix {
    /// A prefix; `None` if `len` is longer than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<IpPrefix> {
        match addr {
            IpAddr::V4(a) if len <= 32 => Some(IpPrefix {
                addr: IpAddr::V4((u32::from(a) & mask_v4(len)).into()),
                len,
            }),
            IpAddr::V6(a) if len <= 128 => Some(IpPrefix {
                addr: IpAddr::V6((u128::from(a) & mask_v6(len)).into()),
                len,
            }),
            _ => None,
        }
    }

    /// `0.0.0.0/0`: IOS `any` for IPv4.
    pub fn any_v4() -> IpPrefix {
        IpPrefix {
            addr: IpAddr::V4(0.into()),
            len: 0,
        }
    }

    /// `::/0`: IOS `any` for IPv6.
    pub fn any_v6() -> IpPrefix {
        IpPrefix {
            addr: IpAddr::V6(0u128.into()),
            len: 0,
        }
    }

    /// A single host (`host A` in an ACL).
    pub fn host(addr: IpAddr) -> IpPrefix {
        IpPrefix {
            addr,
            len: if addr.is_ipv4() { 32 } else { 128 },
        }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    pub fn is_ipv6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// Whether `ip` lies in the prefix; addresses of the other family never do.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(p), IpAddr::V4(a)) => u32::from(*a) & mask_v4(self.len) == u32::from(p),
            (IpAddr::V6(p), IpAddr::V6(a)) => u128::from(*a) & mask_v6(self.len) == u128::from(p),
            _ => false,
        }
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    /// `A/L`, or a bare address meaning a host.
    fn from_str(s: &str) -> Result<IpPrefix, PrefixError> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| PrefixError::BadAddress(a.to_string()))?;
        let Some(l) = l else {
            return Ok(IpPrefix::host(addr));
        };
        let bad = || PrefixError::BadLength {
            addr,
            len: l.to_string(),
        };
        let len: u8 = l.parse().map_err(|_| bad())?;
        IpPrefix::new(addr, len).ok_or_else(bad)
    }
}

impl std::fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// An inclusive port range (`eq`, `range`, or any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange {
        lo: 0,
        hi: u16::MAX,
    };

    pub const fn single(port: u16) -> PortRange {
        PortRange { lo: port, hi: port }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// What identifies a packet for policy: addresses, protocol and ports.
/// Ports are 0 for protocols that have none (ICMP included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// One ACL line's match part (RFC 4301 traffic selector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub src: IpPrefix,
    pub dst: IpPrefix,
    /// `None` matches every protocol (`ip` in an IOS ACL).
    pub proto: Option<u8>,
    pub src_ports: PortRange,
    pub dst_ports: PortRange,
}

impl TrafficSelector {
    pub fn matches(&self, flow: &FlowKey) -> bool {
        self.matches_addresses(flow)
            && self.src_ports.contains(flow.src_port)
            && self.dst_ports.contains(flow.dst_port)
    }

    /// Addresses and protocol only.
    fn matches_addresses(&self, flow: &FlowKey) -> bool {
        self.src.contains(&flow.src)
            && self.dst.contains(&flow.dst)
            && self.proto.is_none_or(|p| p == flow.proto)
    }

    fn names_ports(&self) -> bool {
        self.src_ports != PortRange::ANY || self.dst_ports != PortRange::ANY
    }
}

impl SpdRule {
    /// Whether the rule takes a packet whose ports cannot be read (a
    /// fragment after the first, or a first one cut before them), as an
    /// IOS ACL line does: a line without ports as usual; a `permit` line
    /// with ports (protect, or discard) when the addresses and protocol
    /// match, so that a protected flow's later fragments are protected
    /// too; a `deny` line with ports (bypass) never, so they are not sent
    /// in the clear on the strength of ports they may not have.
    fn takes_portless(&self, flow: &FlowKey) -> bool {
        if !self.selector.names_ports() {
            return self.selector.matches(flow);
        }
        !matches!(self.action, PolicyAction::Bypass) && self.selector.matches_addresses(flow)
    }
}

/// What an inbound SA may deliver: the selectors of its pair (proxy
/// identities, traffic selectors, a manual map's `permit` lines) as the
/// outbound SPD reads them. RFC 4301 §5.2 has a decrypted packet checked
/// against its SA's selectors: without it a peer could send anything
/// through its tunnel, to any host behind us or out of another port in
/// the clear, under addresses that are not its own.
///
/// One cache line, its first selector inline: with many SAs it is one
/// more line per decrypted packet, which the crypto loop asks for with
/// the SA's keys ([`crate::sa::InboundSa::prefetch_keys_and_window`]), not
/// a chain of misses after the packet is decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct InnerPolicy {
    /// Selectors after the first (IKEv2 may narrow to several, a manual
    /// map's ACL may have several `permit` lines).
    rest: Box<[TrafficSelector]>,
    first: TrafficSelector,
}

const _: () = assert!(std::mem::size_of::<InnerPolicy>() == 64);

impl InnerPolicy {
    /// `None` when nothing is excluded: no selectors, or one that takes
    /// every packet of both families.
    pub fn new(selectors: &[TrafficSelector]) -> Option<InnerPolicy> {
        let everything = |sel: &TrafficSelector| {
            sel.src.prefix_len() == 0
                && sel.dst.prefix_len() == 0
                && sel.proto.is_none()
                && !sel.names_ports()
        };
        let v4 = |sel: &TrafficSelector| sel.src.addr().is_ipv4();
        let all_v4 = selectors.iter().any(|s| everything(s) && v4(s));
        let all_v6 = selectors.iter().any(|s| everything(s) && !v4(s));
        let (first, rest) = selectors.split_first()?;
        if all_v4 && all_v6 {
            return None;
        }
        Some(InnerPolicy {
            rest: rest.into(),
            first: *first,
        })
    }

    /// Whether the decrypted IP packet `packet` is traffic of the SA: one
    /// selector, read from the peer's side, takes its flow (its ports
    /// unknown for a later fragment, see [`Spd::lookup_portless`]). An
    /// ICMP error is judged by the packet it quotes, which we sent into
    /// the tunnel, as it stands (RFC 4301 §6.2): a router inside the
    /// peer's network, or the peer's gateway, reports on our traffic from
    /// an address outside the selectors, and with a protocol of its own.
    pub fn admits_packet(&self, packet: &[u8]) -> bool {
        if let Some((quoted, portless, to)) = icmp_error_about(packet) {
            // And it goes back to the quoted packet's sender, nowhere else.
            return to == quoted.src && self.takes(&quoted, portless);
        }
        flow_of(packet).is_some_and(|(flow, portless)| self.admits(&flow, portless))
    }

    /// Whether a decrypted packet of `flow` (its ports unknown when
    /// `portless`) is traffic of the SA, read from the peer's side.
    pub fn admits(&self, flow: &FlowKey, portless: bool) -> bool {
        let ours = FlowKey {
            src: flow.dst,
            dst: flow.src,
            proto: flow.proto,
            src_port: flow.dst_port,
            dst_port: flow.src_port,
        };
        self.takes(&ours, portless)
    }

    /// Whether a selector takes `ours`, a flow as we send it.
    fn takes(&self, ours: &FlowKey, portless: bool) -> bool {
        std::iter::once(&self.first)
            .chain(self.rest.iter())
            .any(|sel| {
                if portless {
                    sel.matches_addresses(ours)
                } else {
                    sel.matches(ours)
                }
            })
    }
}

/// Which crypto map entry a rule came from (`crypto map NAME SEQ`), as
/// small ids: names are the control plane's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PolicyTag {
    pub map: u32,
    pub seq: u32,
}

/// What a matching packet gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyAction {
    /// Encrypt with the outbound SA `sa` (its SPI); `None` while no SA is
    /// negotiated yet: the packet is dropped and an acquire is raised, as
    /// IOS does.
    Protect { sa: Option<u32>, map: PolicyTag },
    /// Forward in the clear (an ACL `deny` line, or NAT exemption).
    Bypass,
    /// Drop.
    Discard,
}

/// One SPD entry. Exactly one cache line, aligned to one, so a lookup
/// that reads a rule misses the cache once, not twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(64))]
pub struct SpdRule {
    pub selector: TrafficSelector,
    pub action: PolicyAction,
}

/// One slot of a [`NetTable`]: two to a cache line, never across two.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(32))]
struct NetSlot {
    key: u128,
    /// One rule: its index; several: where their indexes start in
    /// [`NetTable::lists`].
    at: u32,
    /// How many rules; 0 for an empty slot.
    count: u32,
}

/// Destination network (masked) to the indexes of its rules, ascending:
/// open addressing with linear probing, at most half full, so the slot a
/// lookup starts from follows from the address alone and a whole batch's
/// slots can be prefetched before any is read ([`Spd::prefetch_index`]).
/// Keys are addresses the configuration chose, not attacker input.
#[derive(Debug, Clone)]
struct NetTable {
    slots: Box<[NetSlot]>,
    mask: usize,
    lists: Vec<u32>,
}

impl NetTable {
    fn new(nets: HashMap<u128, Vec<u32>>) -> NetTable {
        let size = (nets.len() * 2).next_power_of_two().max(2);
        let mut t = NetTable {
            slots: vec![NetSlot::default(); size].into_boxed_slice(),
            mask: size - 1,
            lists: Vec::new(),
        };
        for (key, rules) in nets {
            let slot = match rules.as_slice() {
                [one] => NetSlot {
                    key,
                    at: *one,
                    count: 1,
                },
                _ => {
                    let at = t.lists.len() as u32;
                    t.lists.extend_from_slice(&rules);
                    NetSlot {
                        key,
                        at,
                        count: rules.len() as u32,
                    }
                }
            };
            let mut i = t.home(key);
            while t.slots[i].count != 0 {
                i = (i + 1) & t.mask;
            }
            t.slots[i] = slot;
        }
        t
    }

    /// Where the probe for `key` starts (multiply-shift of the folded key).
    fn home(&self, key: u128) -> usize {
        let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    /// The rule indexes of network `key`, ascending; empty if none.
    fn get(&self, key: u128) -> &[u32] {
        let mut i = self.home(key);
        loop {
            let slot = &self.slots[i];
            if slot.count == 0 {
                return &[];
            }
            if slot.key == key {
                return if slot.count == 1 {
                    std::slice::from_ref(&slot.at)
                } else {
                    let at = slot.at as usize;
                    &self.lists[at..at + slot.count as usize]
                };
            }
            i = (i + 1) & self.mask;
        }
    }

    fn prefetch(&self, key: u128) {
        let slot: *const NetSlot = &self.slots[self.home(key)];
        prefetch_bytes(slot.cast(), std::mem::size_of::<NetSlot>());
    }
}

// What the layout promises above: a rule is one line, a slot half of one.
const _: () = {
    assert!(std::mem::size_of::<SpdRule>() == 64);
    assert!(std::mem::size_of::<NetSlot>() == 32);
};

/// A family's rules by destination prefix: per distinct destination prefix
/// length, longest first, the rule indexes of each destination network.
#[derive(Debug, Clone, Default)]
struct DstIndex {
    by_len: Vec<(u8, NetTable)>,
}

/// An address as a u128 key (IPv4 in the low 32 bits), masked to `len`.
fn masked(addr: &IpAddr, len: u8) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(*a) & mask_v4(len)),
        IpAddr::V6(a) => u128::from(*a) & mask_v6(len),
    }
}

/// How many prefix lengths a prefetch pass asks for: a policy with more
/// distinct lengths than this is still looked up whole, only less of it
/// is fetched ahead.
const PREFETCH_LENS: usize = 4;

impl DstIndex {
    fn new(rules: &[SpdRule], v6: bool) -> DstIndex {
        let mut lens: Vec<(u8, HashMap<u128, Vec<u32>>)> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let sel = &r.selector;
            // A rule whose selectors mix families can never match.
            if sel.src.is_ipv6() != v6 || sel.dst.is_ipv6() != v6 {
                continue;
            }
            let len = sel.dst.prefix_len();
            let at = match lens.iter().position(|(l, _)| *l == len) {
                Some(at) => at,
                None => {
                    lens.push((len, HashMap::new()));
                    lens.len() - 1
                }
            };
            // Rule indexes fit u32: the control socket bounds a rule list
            // far below that.
            lens[at]
                .1
                .entry(masked(&sel.dst.addr(), len))
                .or_default()
                .push(i as u32);
        }
        // Longest first: host rules are the common case of many rules.
        lens.sort_by_key(|l| std::cmp::Reverse(l.0));
        DstIndex {
            by_len: lens
                .into_iter()
                .map(|(len, m)| (len, NetTable::new(m)))
                .collect(),
        }
    }

    /// The lowest index of a rule that `takes` `flow`.
    fn first_match(
        &self,
        rules: &[SpdRule],
        flow: &FlowKey,
        takes: impl Fn(&SpdRule, &FlowKey) -> bool,
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (len, table) in &self.by_len {
            for &i in table.get(masked(&flow.dst, *len)) {
                let i = i as usize;
                if best.is_some_and(|b| i >= b) {
                    break;
                }
                if takes(&rules[i], flow) {
                    best = Some(i);
                    break;
                }
            }
        }
        best
    }

    fn prefetch_slots(&self, dst: &IpAddr) {
        for (len, table) in self.by_len.iter().take(PREFETCH_LENS) {
            table.prefetch(masked(dst, *len));
        }
    }

    fn prefetch_rules(&self, rules: &[SpdRule], dst: &IpAddr) {
        for (len, table) in self.by_len.iter().take(PREFETCH_LENS) {
            if let Some(rule) = table
                .get(masked(dst, *len))
                .first()
                .and_then(|&i| rules.get(i as usize))
            {
                prefetch_bytes(
                    (rule as *const SpdRule).cast(),
                    std::mem::size_of::<SpdRule>(),
                );
            }
        }
    }
}

/// An IPv6 link-local unicast address (fe80::/10): never forwarded, and
/// meaningful only with the interface it is on.
pub fn is_link_local(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

/// The [`FlowKey`] of an IP packet (ports 0 when the protocol has none or
/// they cannot be read), and whether the ports are unknown rather than
/// absent: a TCP or UDP packet cut before them, or any fragment after the
/// first ([`Spd::lookup_portless`], [`InnerPolicy::admits`]).
pub fn flow_of(packet: &[u8]) -> Option<(FlowKey, bool)> {
    let (src, dst, proto, l4, later_fragment) = match packet.first()? >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(packet).ok()?;
            let body = packet.get(ip.header_len()..usize::from(ip.total_len()));
            let later = ip.frag_offset() != 0;
            let l4 = if later { &[][..] } else { body.unwrap_or(&[]) };
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.protocol(),
                l4,
                later,
            )
        }
        6 => {
            let ip = ipv6::Packet::new_checked(packet).ok()?;
            let walk = ip.walk_ext_headers().ok()?;
            let later = walk.fragment.is_some_and(|fr| fr.offset != 0);
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            let l4 = if later {
                &[][..]
            } else {
                packet.get(walk.upper_offset..end).unwrap_or(&[])
            };
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                walk.upper_proto,
                l4,
                later,
            )
        }
        _ => return None,
    };
    let ((src_port, dst_port), portless) = match ports_of(proto, l4) {
        Some(ports) => (ports, later_fragment),
        None => ((0, 0), true),
    };
    let flow = FlowKey {
        src,
        dst,
        proto,
        src_port,
        dst_port,
    };
    Some((flow, portless))
}

/// The flow of the packet an ICMP error quotes (ICMPv4 destination
/// unreachable, source quench, redirect, time exceeded, parameter
/// problem; ICMPv6 types 1-4), as that packet's sender sent it, and
/// whether its ports are unknown (cut off, or a later fragment), and the
/// error's own destination. `None`: not such an error, or too short to
/// tell.
fn icmp_error_about(packet: &[u8]) -> Option<(FlowKey, bool, IpAddr)> {
    let icmp = match packet.first()? >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(packet).ok()?;
            if ip.protocol() != ip_proto::ICMP || ip.frag_offset() != 0 {
                return None;
            }
            let icmp = packet.get(ip.header_len()..usize::from(ip.total_len()))?;
            let icmp = matches!(*icmp.first()?, 3 | 4 | 5 | 11 | 12).then_some(icmp)?;
            (icmp, IpAddr::V4(ip.dst_addr()))
        }
        6 => {
            let ip = ipv6::Packet::new_checked(packet).ok()?;
            let walk = ip.walk_ext_headers().ok()?;
            if walk.upper_proto != ip_proto::ICMPV6 || walk.fragment.is_some_and(|f| f.offset != 0)
            {
                return None;
            }
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            let icmp = packet.get(walk.upper_offset..end)?;
            let icmp = (1..=4).contains(icmp.first()?).then_some(icmp)?;
            (icmp, IpAddr::V6(ip.dst_addr()))
        }
        _ => return None,
    };
    let (icmp, to) = icmp;
    let quoted = icmp.get(8..)?;
    let (src, dst, proto, l4) = match quoted.first()? >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked_header(quoted).ok()?;
            let l4 = match ip.frag_offset() {
                0 => quoted.get(ip.header_len()..).unwrap_or(&[]),
                _ => &[][..],
            };
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.protocol(),
                l4,
            )
        }
        6 => {
            // The quoted packet's protocol is the one after its extension
            // headers (a fragment header, say), which the quote holds: it
            // is cut at 1280 bytes of the error (RFC 4443 §3).
            let ip = ipv6::Packet::new_checked_header(quoted).ok()?;
            let walk = ip.walk_ext_headers().ok()?;
            let l4 = match walk.fragment {
                Some(f) if f.offset != 0 => &[][..],
                _ => quoted.get(walk.upper_offset..).unwrap_or(&[]),
            };
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                walk.upper_proto,
                l4,
            )
        }
        _ => return None,
    };
    let ((src_port, dst_port), portless) = match ports_of(proto, l4) {
        Some(ports) => (ports, false),
        None => ((0, 0), true),
    };
    let flow = FlowKey {
        src,
        dst,
        proto,
        src_port,
        dst_port,
    };
    Some((flow, portless, to))
}

/// The source and destination ports at the start of `l4`, the transport
/// header of protocol `proto`: (0, 0) for a protocol without ports,
/// `None` for TCP or UDP cut before them.
fn ports_of(proto: u8, l4: &[u8]) -> Option<(u16, u16)> {
    match (proto, l4) {
        (ip_proto::TCP | ip_proto::UDP, [a, b, c, d, ..]) => {
            Some((u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])))
        }
        (ip_proto::TCP | ip_proto::UDP, _) => None,
        _ => Some((0, 0)),
    }
}

/// The ordered rule list, indexed per family by destination prefix.
#[derive(Debug, Clone, Default)]
pub struct Spd {
    rules: Vec<SpdRule>,
    v4: DstIndex,
    v6: DstIndex,
}

impl Spd {
    pub fn new(rules: Vec<SpdRule>) -> Spd {
        let v4 = DstIndex::new(&rules, false);
        let v6 = DstIndex::new(&rules, true);
        Spd { rules, v4, v6 }
    }

    /// The first rule that matches, with its index; `None` when no rule
    /// matches (the caller applies its default: forward in the clear).
    pub fn lookup(&self, flow: &FlowKey) -> Option<(usize, &SpdRule)> {
        self.index(&flow.dst)
            .first_match(&self.rules, flow, |r, f| r.selector.matches(f))
            .map(|i| (i, &self.rules[i]))
    }

    /// [`Self::lookup`] for a packet whose ports are unknown (`flow`'s are
    /// 0): a fragment after the first, or a first fragment too short to
    /// hold them. See [`SpdRule::takes_portless`]: a later fragment of a
    /// flow a port-specific rule protects must not go out in the clear.
    pub fn lookup_portless(&self, flow: &FlowKey) -> Option<(usize, &SpdRule)> {
        self.index(&flow.dst)
            .first_match(&self.rules, flow, SpdRule::takes_portless)
            .map(|i| (i, &self.rules[i]))
    }

    /// Asks for the index slots a lookup toward `dst` starts from. The
    /// pipeline calls it for a whole batch, then [`Self::prefetch_rules`],
    /// then looks up: with many rules each step is a cache miss, and asked
    /// for together the misses overlap. Only hints.
    pub fn prefetch_index(&self, dst: &IpAddr) {
        self.index(dst).prefetch_slots(dst)
    }

    /// Asks for the first candidate rule of each index slot toward `dst`
    /// (reads the slots: ask [`Self::prefetch_index`] first).
    pub fn prefetch_rules(&self, dst: &IpAddr) {
        self.index(dst).prefetch_rules(&self.rules, dst)
    }

    fn index(&self, dst: &IpAddr) -> &DstIndex {
        if dst.is_ipv6() {
            &self.v6
        } else {
            &self.v4
        }
    }

    /// Attaches (or detaches) the outbound SA of a protect rule once IKE
    /// has negotiated it. Returns false if the rule is not a protect rule.
    pub fn set_sa(&mut self, index: usize, sa: Option<u32>) -> bool {
        match self.rules.get_mut(index).map(|r| &mut r.action) {
            Some(PolicyAction::Protect { sa: slot, .. }) => {
                *slot = sa;
                true
            }
            _ => false,
        }
    }

    pub fn rules(&self) -> &[SpdRule] {
        &self.rules
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TAG: PolicyTag = PolicyTag { map: 1, seq: 10 };

    fn sel(src: &str, dst: &str, proto: Option<u8>, dports: PortRange) -> TrafficSelector {
        TrafficSelector {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            src_ports: PortRange::ANY,
            dst_ports: dports,
        }
    }

    fn flow(src: &str, dst: &str, proto: u8, dport: u16) -> FlowKey {
        FlowKey {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto,
            src_port: 40000,
            dst_port: dport,
        }
    }

    #[test]
    fn the_network_table_finds_every_key_through_collisions_and_nothing_else() {
        // 3 000 networks in 8 192 slots: many probe chains; some networks
        // with several rules (kept in the overflow list, in order).
        let mut nets: HashMap<u128, Vec<u32>> = HashMap::new();
        for k in 0..3000u32 {
            let rules = if k % 7 == 0 {
                vec![k, k + 5000, k + 9000]
            } else {
                vec![k]
            };
            nets.insert(u128::from(k) << 8, rules);
        }
        let t = NetTable::new(nets.clone());
        assert_eq!(t.slots.len(), 8192);
        for (key, rules) in &nets {
            assert_eq!(t.get(*key), rules.as_slice(), "{key:#x}");
        }
        for miss in [1u128, 3000 << 8, u128::MAX] {
            assert!(t.get(miss).is_empty());
        }
        assert!(NetTable::new(HashMap::new()).get(0).is_empty());
    }

    #[test]
    fn an_inner_policy_admits_the_peers_side_of_its_selectors_only() {
        let any4 = sel("0.0.0.0/0", "0.0.0.0/0", None, PortRange::ANY);
        let any6 = sel("::/0", "::/0", None, PortRange::ANY);
        assert_eq!(InnerPolicy::new(&[]), None);
        assert_eq!(
            InnerPolicy::new(&[any4, any6]),
            None,
            "both families, everything"
        );
        let v4_only = InnerPolicy::new(&[any4]).expect("IPv6 excluded");
        assert!(v4_only.admits(&flow("198.19.2.1", "198.19.1.1", 6, 22), false));
        assert!(!v4_only.admits(&flow("fd00:2::1", "fd00:1::1", 6, 22), false));
        // Ours: udp 198.19.1.0/24 -> 198.19.2.0/24 port 5000. The peer's
        // packets come from 198.19.2.x port 5000 to 198.19.1.x.
        let p = InnerPolicy::new(&[sel(
            "198.19.1.0/24",
            "198.19.2.0/24",
            Some(17),
            PortRange::single(5000),
        )])
        .expect("narrow");
        let from_peer = |src_port| FlowKey {
            src: "198.19.2.7".parse().unwrap(),
            dst: "198.19.1.7".parse().unwrap(),
            proto: 17,
            src_port,
            dst_port: 40000,
        };
        assert!(p.admits(&from_peer(5000), false));
        assert!(!p.admits(&from_peer(5001), false));
        assert!(
            p.admits(&from_peer(0), true),
            "a later fragment: addresses decide"
        );
        assert!(!p.admits(
            &FlowKey {
                proto: 6,
                ..from_peer(5000)
            },
            false
        ));
        let turned = FlowKey {
            src: "198.19.1.7".parse().unwrap(),
            dst: "198.19.2.7".parse().unwrap(),
            ..from_peer(5000)
        };
        assert!(
            !p.admits(&turned, false),
            "our side's addresses as the source"
        );
    }

    /// An IPv6 header (40 bytes) from `src` to `dst`, `next` after it and
    /// `payload_len` bytes of payload announced.
    fn v6_header(src: &str, dst: &str, next: u8, payload_len: u16) -> Vec<u8> {
        let mut h = vec![0x60, 0, 0, 0];
        h.extend_from_slice(&payload_len.to_be_bytes());
        h.extend_from_slice(&[next, 64]);
        for a in [src, dst] {
            h.extend_from_slice(&a.parse::<std::net::Ipv6Addr>().unwrap().octets());
        }
        h
    }

    /// An ICMPv6 packet too big (MTU 1280) quoting `quoted`, from a router
    /// on the peer's side, outside the selectors, to fd00:1::7.
    fn too_big_quoting(quoted: &[u8]) -> Vec<u8> {
        let mut pkt = v6_header("fd00:99::1", "fd00:1::7", 58, 8 + quoted.len() as u16);
        pkt.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0x05, 0x00]);
        pkt.extend_from_slice(quoted);
        pkt
    }

    #[test]
    fn an_icmpv6_error_is_judged_by_the_packet_it_quotes() {
        // Ours: fd00:1::/64 -> fd00:2::/64, UDP to port 5000.
        let p = InnerPolicy::new(&[sel(
            "fd00:1::/64",
            "fd00:2::/64",
            Some(17),
            PortRange::single(5000),
        )])
        .expect("narrow");
        let too_big = |quoted_dst: &str, dport: u16| {
            let mut quoted = v6_header("fd00:1::7", quoted_dst, 17, 8);
            quoted.extend_from_slice(&[0x9c, 0x40]);
            quoted.extend_from_slice(&dport.to_be_bytes());
            quoted.extend_from_slice(&[0, 8, 0, 0]);
            too_big_quoting(&quoted)
        };
        assert!(p.admits_packet(&too_big("fd00:2::7", 5000)));
        assert!(
            !p.admits_packet(&too_big("fd00:2::7", 5001)),
            "not the SA's traffic"
        );
        assert!(!p.admits_packet(&too_big("fd00:3::7", 5000)));
        // A quoted fragment: its protocol follows the Fragment header.
        let too_big_fragment = |offset: u16, dport: u16| {
            let mut quoted = v6_header("fd00:1::7", "fd00:2::7", 44, 16);
            quoted.extend_from_slice(&[17, 0]);
            quoted.extend_from_slice(&(offset << 3 | 1).to_be_bytes());
            quoted.extend_from_slice(&[0, 0, 0, 9]);
            quoted.extend_from_slice(&[0x9c, 0x40]);
            quoted.extend_from_slice(&dport.to_be_bytes());
            quoted.extend_from_slice(&[0, 8, 0, 0]);
            too_big_quoting(&quoted)
        };
        assert!(p.admits_packet(&too_big_fragment(0, 5000)));
        assert!(!p.admits_packet(&too_big_fragment(0, 5001)));
        // A later fragment's bytes are data, not ports: judged on its
        // addresses and protocol.
        assert!(p.admits_packet(&too_big_fragment(185, 5001)));
        // The router's own packet, not an error, is judged as it stands.
        let mut echo = v6_header("fd00:99::1", "fd00:1::7", 58, 8);
        echo.extend_from_slice(&[128, 0, 0, 0, 0, 0, 0, 0]);
        assert!(!p.admits_packet(&echo));
    }

    #[test]
    fn a_packet_without_ports_meets_a_permit_with_ports_and_passes_a_deny_with_them() {
        let protect = PolicyAction::Protect {
            sa: Some(7),
            map: PolicyTag { map: 1, seq: 10 },
        };
        let spd = Spd::new(vec![
            SpdRule {
                // deny udp ... eq 53: says nothing about a later fragment.
                selector: sel(
                    "198.19.1.0/24",
                    "198.19.2.0/24",
                    Some(17),
                    PortRange::single(53),
                ),
                action: PolicyAction::Bypass,
            },
            SpdRule {
                selector: sel(
                    "198.19.1.0/24",
                    "198.19.2.0/24",
                    Some(17),
                    PortRange::single(5000),
                ),
                action: protect,
            },
            SpdRule {
                selector: sel("198.19.1.0/24", "198.19.3.0/24", None, PortRange::ANY),
                action: PolicyAction::Bypass,
            },
        ]);
        let later = flow("198.19.1.1", "198.19.2.1", 17, 0);
        assert!(
            spd.lookup(&later).is_none(),
            "with ports 0 as real ports: no rule"
        );
        assert_eq!(spd.lookup_portless(&later).map(|(i, _)| i), Some(1));
        let tcp = flow("198.19.1.1", "198.19.2.1", 6, 0);
        assert!(spd.lookup_portless(&tcp).is_none(), "another protocol");
        let clear = flow("198.19.1.1", "198.19.3.1", 17, 0);
        assert_eq!(spd.lookup_portless(&clear).map(|(i, _)| i), Some(2));
    }

    #[test]
    fn prefixes_parse_mask_host_bits_and_refuse_bad_lengths() {
        let p: IpPrefix = "198.18.1.7/16".parse().unwrap();
        assert_eq!(p.to_string(), "198.18.0.0/16");
        assert!(p.contains(&"198.18.200.1".parse().unwrap()));
        assert!(!p.contains(&"198.19.0.1".parse().unwrap()));
        assert!(!p.contains(&"fd00::1".parse().unwrap()));
        let h: IpPrefix = "fd00::5".parse().unwrap();
        assert_eq!(h.prefix_len(), 128);
        assert!(matches!(
            "198.18.0.0/33".parse::<IpPrefix>(),
            Err(PrefixError::BadLength { .. })
        ));
        assert!(matches!(
            "fd00::/129".parse::<IpPrefix>(),
            Err(PrefixError::BadLength { .. })
        ));
        assert!(matches!(
            "nonsense/8".parse::<IpPrefix>(),
            Err(PrefixError::BadAddress(_))
        ));
        assert!(IpPrefix::any_v6().contains(&"fd00::1".parse().unwrap()));
    }

    #[test]
    fn first_match_wins_even_over_a_more_specific_later_rule() {
        // IOS: deny (bypass) before permit, like seed 003's NAT exemption ACL.
        let spd = Spd::new(vec![
            SpdRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24", None, PortRange::ANY),
                action: PolicyAction::Bypass,
            },
            SpdRule {
                selector: sel(
                    "198.19.1.5/32",
                    "198.19.2.5/32",
                    Some(6),
                    PortRange::single(22),
                ),
                action: PolicyAction::Protect { sa: None, map: TAG },
            },
        ]);
        let (i, r) = spd
            .lookup(&flow("198.19.1.5", "198.19.2.5", 6, 22))
            .unwrap();
        assert_eq!(i, 0);
        assert_eq!(r.action, PolicyAction::Bypass);
    }

    #[test]
    fn protocol_and_port_ranges_select_and_no_match_is_none() {
        let spd = Spd::new(vec![
            SpdRule {
                selector: sel(
                    "0.0.0.0/0",
                    "198.19.2.0/24",
                    Some(17),
                    PortRange { lo: 5000, hi: 5999 },
                ),
                action: PolicyAction::Protect {
                    sa: Some(0x1000),
                    map: TAG,
                },
            },
            SpdRule {
                selector: sel("0.0.0.0/0", "198.19.2.0/24", Some(1), PortRange::ANY),
                action: PolicyAction::Discard,
            },
        ]);
        assert_eq!(
            spd.lookup(&flow("198.19.1.1", "198.19.2.1", 17, 5500))
                .unwrap()
                .0,
            0
        );
        assert_eq!(
            spd.lookup(&flow("198.19.1.1", "198.19.2.1", 1, 0))
                .unwrap()
                .1
                .action,
            PolicyAction::Discard
        );
        assert!(spd
            .lookup(&flow("198.19.1.1", "198.19.2.1", 17, 6000))
            .is_none());
        assert!(spd
            .lookup(&flow("198.19.1.1", "198.19.3.1", 17, 5500))
            .is_none());
    }

    #[test]
    fn ipv6_rules_match_ipv6_flows_only() {
        let spd = Spd::new(vec![
            SpdRule {
                selector: sel("0.0.0.0/0", "0.0.0.0/0", None, PortRange::ANY),
                action: PolicyAction::Bypass,
            },
            SpdRule {
                selector: sel("fd00:1::/64", "fd00:2::/64", None, PortRange::ANY),
                action: PolicyAction::Protect { sa: None, map: TAG },
            },
        ]);
        assert_eq!(
            spd.lookup(&flow("fd00:1::1", "fd00:2::1", 58, 0))
                .unwrap()
                .0,
            1
        );
        assert!(spd.lookup(&flow("fd00:1::1", "fd00:3::1", 58, 0)).is_none());
        assert_eq!(
            spd.lookup(&flow("198.19.1.1", "198.19.2.1", 6, 80))
                .unwrap()
                .0,
            0
        );
    }

    #[test]
    fn an_sa_is_attached_to_a_protect_rule_only() {
        let mut spd = Spd::new(vec![
            SpdRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24", None, PortRange::ANY),
                action: PolicyAction::Protect { sa: None, map: TAG },
            },
            SpdRule {
                selector: sel("0.0.0.0/0", "0.0.0.0/0", None, PortRange::ANY),
                action: PolicyAction::Bypass,
            },
        ]);
        assert!(spd.set_sa(0, Some(0xabcd)));
        assert!(!spd.set_sa(1, Some(0xabcd)));
        assert!(!spd.set_sa(7, None));
        assert_eq!(
            spd.lookup(&flow("198.19.1.1", "198.19.2.1", 6, 80))
                .unwrap()
                .1
                .action,
            PolicyAction::Protect {
                sa: Some(0xabcd),
                map: TAG
            }
        );
    }

    fn arb_rule() -> impl Strategy<Value = SpdRule> {
        (
            any::<bool>(),
            any::<u32>(),
            0u8..=32,
            any::<u32>(),
            0u8..=32,
            prop::option::of(prop::sample::select(vec![1u8, 6, 17, 58])),
            any::<u16>(),
            any::<u16>(),
            0u8..3,
        )
            .prop_map(|(v6, s, sl, d, dl, proto, a, b, act)| {
                let (src, dst) = if v6 {
                    let s6 = IpAddr::V6((0xfd00u128 << 112 | u128::from(s)).into());
                    let d6 = IpAddr::V6((0xfd00u128 << 112 | u128::from(d)).into());
                    (
                        IpPrefix::new(s6, 96 + sl).unwrap(),
                        IpPrefix::new(d6, 96 + dl).unwrap(),
                    )
                } else {
                    (
                        IpPrefix::new(IpAddr::V4(s.into()), sl).unwrap(),
                        IpPrefix::new(IpAddr::V4(d.into()), dl).unwrap(),
                    )
                };
                let action = match act {
                    0 => PolicyAction::Bypass,
                    1 => PolicyAction::Discard,
                    _ => PolicyAction::Protect {
                        sa: Some(u32::from(a)),
                        map: TAG,
                    },
                };
                SpdRule {
                    selector: TrafficSelector {
                        src,
                        dst,
                        proto,
                        src_ports: PortRange::ANY,
                        dst_ports: PortRange {
                            lo: a.min(b),
                            hi: a.max(b),
                        },
                    },
                    action,
                }
            })
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_a_plain_first_match_scan(
            rules in proptest::collection::vec(arb_rule(), 0..40),
            flows in proptest::collection::vec((any::<bool>(), any::<u32>(), any::<u32>(), prop::sample::select(vec![1u8, 6, 17, 58]), any::<u16>()), 1..50),
        ) {
            let spd = Spd::new(rules.clone());
            for (v6, s, d, proto, port) in flows {
                let (src, dst) = if v6 {
                    (IpAddr::V6((0xfd00u128 << 112 | u128::from(s)).into()), IpAddr::V6((0xfd00u128 << 112 | u128::from(d)).into()))
                } else {
                    (IpAddr::V4(s.into()), IpAddr::V4(d.into()))
                };
                let f = FlowKey { src, dst, proto, src_port: 1, dst_port: port };
                let want = rules.iter().position(|r| r.selector.matches(&f));
                // The pipeline's prefetch passes come first: hints that
                // must not disturb (or panic on) any address.
                spd.prefetch_index(&f.dst);
                spd.prefetch_rules(&f.dst);
                prop_assert_eq!(spd.lookup(&f).map(|(i, _)| i), want);
                let portless = FlowKey { src_port: 0, dst_port: 0, ..f };
                let want = rules.iter().position(|r| r.takes_portless(&portless));
                prop_assert_eq!(spd.lookup_portless(&portless).map(|(i, _)| i), want);
            }
        }

        /// Flows aimed inside the rules' own prefixes, so the index's
        /// buckets hold several candidates and many flows match: the
        /// first match in rule order must still win, across prefix lengths.
        #[test]
        fn lookup_inside_the_rules_prefixes_agrees_with_a_plain_scan(
            rules in proptest::collection::vec(arb_rule(), 1..60),
            picks in proptest::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u32>(), any::<u32>(), prop::sample::select(vec![1u8, 6, 17, 58]), any::<u16>()), 1..60),
        ) {
            let spd = Spd::new(rules.clone());
            for (a, b, s_low, d_low, proto, port) in picks {
                let (sr, dr) = (&rules[a.index(rules.len())], &rules[b.index(rules.len())]);
                // Keep the prefix, vary the host bits.
                let inside = |p: &IpPrefix, low: u32| match p.addr() {
                    IpAddr::V4(x) => IpAddr::V4((u32::from(x) | (low & !mask_v4(p.prefix_len()))).into()),
                    IpAddr::V6(x) => IpAddr::V6((u128::from(x) | (u128::from(low) & !mask_v6(p.prefix_len()))).into()),
                };
                let src = inside(&sr.selector.src, s_low);
                let mut dst = inside(&dr.selector.dst, d_low);
                if src.is_ipv6() != dst.is_ipv6() {
                    dst = inside(&sr.selector.dst, d_low);
                }
                let f = FlowKey { src, dst, proto, src_port: 1, dst_port: port };
                let want = rules.iter().position(|r| r.selector.matches(&f));
                // The pipeline's prefetch passes come first: hints that
                // must not disturb (or panic on) any address.
                spd.prefetch_index(&f.dst);
                spd.prefetch_rules(&f.dst);
                prop_assert_eq!(spd.lookup(&f).map(|(i, _)| i), want);
            }
        }
    }

    #[test]
    fn a_hundred_thousand_host_rules_find_their_own_rule_and_an_earlier_bypass_wins() {
        let host = |i: u32| IpPrefix::host(IpAddr::V4((0xC612_1000 + i).into()));
        let mut rules = vec![SpdRule {
            // A deny line before them for one host: it must still win.
            selector: sel("198.19.255.0/24", "198.18.16.5/32", None, PortRange::ANY),
            action: PolicyAction::Bypass,
        }];
        rules.extend((0..100_000).map(|i| SpdRule {
            selector: TrafficSelector {
                src: "198.19.255.0/24".parse().unwrap(),
                dst: host(i),
                proto: None,
                src_ports: PortRange::ANY,
                dst_ports: PortRange::ANY,
            },
            action: PolicyAction::Protect {
                sa: Some(i + 1),
                map: TAG,
            },
        }));
        // A catch-all at the end, of another prefix length.
        rules.push(SpdRule {
            selector: sel("0.0.0.0/0", "0.0.0.0/0", None, PortRange::ANY),
            action: PolicyAction::Discard,
        });
        let spd = Spd::new(rules);
        for i in [0u32, 1, 77_777, 99_999] {
            let f = flow("198.19.255.10", &host(i).addr().to_string(), 17, 5001);
            assert_eq!(spd.lookup(&f).unwrap().0, i as usize + 1);
        }
        let f = flow("198.19.255.10", "198.18.16.5", 17, 5001);
        assert_eq!(spd.lookup(&f).unwrap().1.action, PolicyAction::Bypass);
        let f = flow("198.19.254.10", "198.18.16.7", 17, 5001);
        assert_eq!(spd.lookup(&f).unwrap().1.action, PolicyAction::Discard);
    }
}
