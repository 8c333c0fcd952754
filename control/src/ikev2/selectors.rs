//! Traffic selectors: the dataplane's prefix selectors of a map entry to
//! and from IKEv2 address ranges, and the responder's narrowing
//! (RFC 7296 §2.9) of the initiator's TSi/TSr to its own policy.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::spd::{IpPrefix, PortRange, TrafficSelector};

use crate::ike::wire::ikev2::TrafficSelector as Ts;

/// An address range of one family with protocol and port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    v6: bool,
    start: u128,
    end: u128,
    proto: u8,
    lo: u16,
    hi: u16,
}

fn bits(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn addr(v6: bool, x: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

fn prefix_range(p: &IpPrefix, proto: Option<u8>, ports: PortRange) -> Range {
    let (v6, start) = bits(p.addr());
    let width = if v6 { 128 } else { 32 };
    let host = width - u32::from(p.prefix_len());
    let span = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    Range {
        v6,
        start,
        end: start | span,
        proto: proto.unwrap_or(0),
        lo: ports.lo,
        hi: ports.hi,
    }
}

fn range_prefix(r: &Range) -> Option<IpPrefix> {
    let width: u32 = if r.v6 { 128 } else { 32 };
    let span = r.end.wrapping_sub(r.start);
    if r.end < r.start {
        return None;
    }
    let host = if span == u128::MAX {
        128
    } else {
        128 - (span + 1).leading_zeros() - 1
    };
    if span != u128::MAX && ((span + 1).count_ones() != 1 || r.start & span != 0) {
        return None;
    }
    let len = u8::try_from(width.checked_sub(host)?).ok()?;
    IpPrefix::new(addr(r.v6, r.start), len)
}

fn to_wire(r: &Range) -> Ts {
    if r.v6 {
        Ts::Ipv6 {
            ip_protocol: r.proto,
            start_port: r.lo,
            end_port: r.hi,
            start: Ipv6Addr::from(r.start),
            end: Ipv6Addr::from(r.end),
        }
    } else {
        Ts::Ipv4 {
            ip_protocol: r.proto,
            start_port: r.lo,
            end_port: r.hi,
            start: Ipv4Addr::from(r.start as u32),
            end: Ipv4Addr::from(r.end as u32),
        }
    }
}

fn from_wire(t: &Ts) -> Option<Range> {
    Some(match *t {
        Ts::Ipv4 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => Range {
            v6: false,
            start: u128::from(u32::from(start)),
            end: u128::from(u32::from(end)),
            proto: ip_protocol,
            lo: start_port,
            hi: end_port,
        },
        Ts::Ipv6 {
            ip_protocol,
            start_port,
            end_port,
            start,
            end,
        } => Range {
            v6: true,
            start: u128::from(start),
            end: u128::from(end),
            proto: ip_protocol,
            lo: start_port,
            hi: end_port,
        },
        Ts::Other { .. } => return None,
    })
}

fn intersect(a: &Range, b: &Range) -> Option<Range> {
    let proto = match (a.proto, b.proto) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let r = Range {
        v6: a.v6,
        start: a.start.max(b.start),
        end: a.end.min(b.end),
        proto,
        lo: a.lo.max(b.lo),
        hi: a.hi.min(b.hi),
    };
    (a.v6 == b.v6 && r.start <= r.end && r.lo <= r.hi).then_some(r)
}

/// Initiator: (TSi, TSr) for a map entry's selector (src local, dst remote).
pub fn propose(sel: &TrafficSelector) -> (Vec<Ts>, Vec<Ts>) {
    (
        vec![to_wire(&prefix_range(&sel.src, sel.proto, sel.src_ports))],
        vec![to_wire(&prefix_range(&sel.dst, sel.proto, sel.dst_ports))],
    )
}

fn to_selector(local: &Range, remote: &Range) -> Option<TrafficSelector> {
    if local.proto != remote.proto {
        return None;
    }
    Some(TrafficSelector {
        src: range_prefix(local)?,
        dst: range_prefix(remote)?,
        proto: (local.proto != 0).then_some(local.proto),
        src_ports: PortRange {
            lo: local.lo,
            hi: local.hi,
        },
        dst_ports: PortRange {
            lo: remote.lo,
            hi: remote.hi,
        },
    })
}

/// Every IPv4 and every IPv6 flow: what a dynamic entry without a
/// crypto ACL protects: the peer's proposal, not narrowed at all.
pub fn any() -> [TrafficSelector; 2] {
    [IpPrefix::any_v4(), IpPrefix::any_v6()].map(|p| TrafficSelector {
        src: p,
        dst: p,
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    })
}

/// Responder: the initiator's TSi (its local side) and TSr narrowed to
/// one of `policy` (our local → remote selectors). Returns the selector
/// to install (our view) and the (TSi, TSr) to answer with.
///
/// An initiator that starts the SA for a packet puts that packet's
/// selectors first, a single address each way (RFC 7296 §2.9; strongSwan
/// does for its trap policies), and what it wants protected after them.
/// The rest are narrowed then, to a result that holds the packet: the
/// packet alone would be one host pair's flow, and every other flow of the
/// same networks would need a CHILD_SA of its own.
pub fn narrow(
    policy: &[TrafficSelector],
    tsi: &[Ts],
    tsr: &[Ts],
) -> Option<(TrafficSelector, Vec<Ts>, Vec<Ts>)> {
    if let ([ti, more_i @ ..], [tr, more_r @ ..]) = (tsi, tsr) {
        let packet = from_wire(ti).zip(from_wire(tr));
        if let Some((ti, tr)) = packet.filter(|(i, r)| i.start == i.end && r.start == r.end) {
            if !more_i.is_empty() && !more_r.is_empty() {
                let holding = |tsi, tsr| {
                    policy
                        .iter()
                        .find_map(|sel| narrow_to(sel, tsi, tsr, Some((&ti, &tr))))
                };
                // The subnets, else at least the packet itself (§2.9: the
                // answer must include it when a policy takes it).
                if let Some(found) = holding(more_i, more_r).or_else(|| holding(tsi, tsr)) {
                    return Some(found);
                }
            }
        }
    }
    policy.iter().find_map(|sel| narrow_to(sel, tsi, tsr, None))
}

/// Whether range `outer` holds every flow of `inner`.
fn holds(outer: &Range, inner: &Range) -> bool {
    outer.v6 == inner.v6
        && outer.start <= inner.start
        && inner.end <= outer.end
        && (outer.proto == 0 || outer.proto == inner.proto)
        && outer.lo <= inner.lo
        && inner.hi <= outer.hi
}

/// [`narrow`] against one selector of ours; with `packet` (its TSi and
/// TSr), only to a result that holds it.
fn narrow_to(
    sel: &TrafficSelector,
    tsi: &[Ts],
    tsr: &[Ts],
    packet: Option<(&Range, &Range)>,
) -> Option<(TrafficSelector, Vec<Ts>, Vec<Ts>)> {
    let ours_local = prefix_range(&sel.src, sel.proto, sel.src_ports);
    let ours_remote = prefix_range(&sel.dst, sel.proto, sel.dst_ports);
    for r in tsr.iter().filter_map(from_wire) {
        let Some(local) = intersect(&ours_local, &r) else {
            continue;
        };
        for i in tsi.iter().filter_map(from_wire) {
            let Some(remote) = intersect(&ours_remote, &i) else {
                continue;
            };
            if local.proto != 0 && remote.proto != 0 && local.proto != remote.proto {
                // One protocol each way: no flow is in both.
                continue;
            }
            let proto = if local.proto != 0 {
                local.proto
            } else {
                remote.proto
            };
            let local = Range { proto, ..local };
            let remote = Range { proto, ..remote };
            if packet.is_some_and(|(pi, pr)| !holds(&remote, pi) || !holds(&local, pr)) {
                continue;
            }
            if let Some(s) = to_selector(&local, &remote) {
                return Some((s, vec![to_wire(&remote)], vec![to_wire(&local)]));
            }
        }
    }
    None
}

/// Initiator: the responder's answer, which must lie inside what was
/// proposed; the selector to install (our view).
pub fn accept(proposed: &TrafficSelector, tsi: &[Ts], tsr: &[Ts]) -> Option<TrafficSelector> {
    let (pi, pr) = propose(proposed);
    let [i] = tsi else { return None };
    let [r] = tsr else { return None };
    let (i, r) = (from_wire(i)?, from_wire(r)?);
    let (pi, pr) = (from_wire(&pi[0])?, from_wire(&pr[0])?);
    if intersect(&i, &pi)? != i || intersect(&r, &pr)? != r {
        return None;
    }
    to_selector(&i, &r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        let (a, l) = s.split_once('/').unwrap();
        IpPrefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
    }

    #[test]
    fn prefix_round_trip() {
        for s in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "192.0.2.1/32",
            "::/0",
            "fd00::/8",
        ] {
            let r = prefix_range(&p(s), None, PortRange::ANY);
            assert_eq!(range_prefix(&r), Some(p(s)), "{s}");
        }
        let r = Range {
            v6: false,
            start: 1,
            end: 2,
            proto: 0,
            lo: 0,
            hi: 65535,
        };
        assert_eq!(range_prefix(&r), None);
    }

    fn ts(prefix: &str, proto: u8) -> Ts {
        to_wire(&prefix_range(&p(prefix), Some(proto), PortRange::ANY))
    }

    #[test]
    fn any_takes_the_proposal_of_either_family_as_it_is() {
        for (i, r) in [
            ("198.19.1.0/24", "198.19.2.0/24"),
            ("fd00:a::/64", "fd00:b::/64"),
        ] {
            let (sel, tsi, tsr) = narrow(&any(), &[ts(i, 0)], &[ts(r, 0)]).unwrap();
            assert_eq!((sel.src, sel.dst, sel.proto), (p(r), p(i), None));
            assert_eq!((tsi, tsr), (vec![ts(i, 0)], vec![ts(r, 0)]));
        }
        // TCP one way and UDP the other: nothing to protect.
        let tsi = [ts("198.19.1.0/24", 6)];
        let tsr = [ts("198.19.2.0/24", 17)];
        assert!(narrow(&any(), &tsi, &tsr).is_none());
        let tsr = [ts("198.19.2.0/24", 6)];
        assert_eq!(narrow(&any(), &tsi, &tsr).unwrap().0.proto, Some(6));
    }

    /// strongSwan's trap-triggered request: the packet's addresses (TCP,
    /// its ports) first, then its subnets. The answer is the subnets,
    /// narrowed to our policy, not the one flow.
    #[test]
    fn the_triggering_packet_picks_the_policy_and_the_subnets_are_narrowed() {
        let host = |a: &str, proto: u8, port: u16| {
            let r = prefix_range(&p(a), Some(proto), PortRange::single(port));
            to_wire(&r)
        };
        let policy = [
            sel("198.19.2.0/24", "198.19.1.0/24"),
            sel("198.19.2.0/24", "198.19.9.0/24"),
        ];
        let tsi = [host("198.19.9.7/32", 6, 40000), ts("198.19.0.0/16", 0)];
        let tsr = [host("198.19.2.10/32", 6, 22), ts("198.19.2.0/24", 0)];
        let (s, ri, rr) = narrow(&policy, &tsi, &tsr).unwrap();
        assert_eq!(
            (s.src, s.dst, s.proto),
            (p("198.19.2.0/24"), p("198.19.9.0/24"), None)
        );
        assert_eq!(
            (ri, rr),
            (vec![ts("198.19.9.0/24", 0)], vec![ts("198.19.2.0/24", 0)])
        );
        // No policy holds the packet: as if there were no packet.
        let tsi = [host("198.19.7.7/32", 6, 40000), ts("198.19.0.0/16", 0)];
        let (s, _, _) = narrow(&policy, &tsi, &tsr).unwrap();
        assert_eq!(s.dst, p("198.19.1.0/24"));
        // The subnets after it miss the packet's policy: the packet's
        // own flow, not another policy's subnets.
        let tsi = [host("198.19.9.7/32", 6, 40000), ts("198.19.1.0/24", 0)];
        let (s, _, _) = narrow(&policy, &tsi, &tsr).unwrap();
        assert_eq!((s.src, s.dst), (p("198.19.2.10/32"), p("198.19.9.7/32")));
        // One selector each way is not a packet and a subnet: narrowed as
        // it is, even when it is a single host.
        let tsi = [host("198.19.9.7/32", 6, 40000)];
        let tsr = [host("198.19.2.10/32", 6, 22)];
        let (s, _, _) = narrow(&policy, &tsi, &tsr).unwrap();
        assert_eq!(
            (s.src, s.dst, s.proto),
            (p("198.19.2.10/32"), p("198.19.9.7/32"), Some(6))
        );
    }

    fn sel(src: &str, dst: &str) -> TrafficSelector {
        TrafficSelector {
            src: p(src),
            dst: p(dst),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        }
    }
}
