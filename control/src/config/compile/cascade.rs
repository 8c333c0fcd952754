//! Flattening IOS first-match chains with "deny means: not this entry,
//! try the next" into the dataplane's flat first-match lists, and the
//! selector intersections that takes.

use dataplane::spd::{IpPrefix, PortRange, TrafficSelector};

use super::super::error::Span;
use super::super::model::{Acl, AclAction};

/// Upper bound on compiled rules: the deny cascade multiplies rules, and a
/// pathological config must fail with a message, not exhaust memory.
pub(super) const MAX_RULES: usize = 65_536;

/// One ACL line: action, selector, and where it is written.
pub(super) type AclLine = (AclAction, TrafficSelector, Span);

/// An ACL's lines as (action, selector, where), the cascade's input.
pub(super) fn acl_lines(acl: &Acl) -> Vec<AclLine> {
    acl.entries
        .iter()
        .map(|l| {
            let selector = TrafficSelector {
                src: l.src,
                dst: l.dst,
                proto: l.protocol,
                src_ports: l.src_ports,
                dst_ports: l.dst_ports,
            };
            (l.action, selector, l.span)
        })
        .collect()
}

/// Every IPv4 flow (`ip any any`).
pub(super) fn any_v4() -> TrafficSelector {
    TrafficSelector {
        src: IpPrefix::any_v4(),
        dst: IpPrefix::any_v4(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

/// One entry of an IOS first-match chain: its ACL lines and what a permit
/// line does.
pub(super) struct Stage<A> {
    pub(super) lines: Vec<AclLine>,
    pub(super) on_permit: A,
}

/// Flattens a chain of entries into a first-match rule list with the IOS
/// meaning of `deny` ("not this entry; try the next"), as the module doc
/// describes. `deny_action` is what a deny line finally does when no later
/// entry takes the traffic.
pub(super) fn cascade<A: Copy>(
    stages: &[Stage<A>],
    deny_action: A,
) -> Result<Vec<(TrafficSelector, A)>, ()> {
    let mut suffix: Vec<(TrafficSelector, A)> = Vec::new();
    for stage in stages.iter().rev() {
        let mut rules = Vec::new();
        for (action, sel, _) in &stage.lines {
            match action {
                AclAction::Permit => rules.push((*sel, stage.on_permit)),
                AclAction::Deny => {
                    rules.extend(
                        suffix
                            .iter()
                            .filter_map(|(s, a)| intersect(s, sel).map(|i| (i, *a))),
                    );
                    rules.push((*sel, deny_action));
                }
            }
            if rules.len() + suffix.len() > MAX_RULES {
                return Err(());
            }
        }
        rules.extend(suffix);
        suffix = rules;
    }
    Ok(suffix)
}

/// The flows both selectors match, if any.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let proto = match (a.proto, b.proto) {
        (None, p) | (p, None) => p,
        (Some(p), Some(q)) if p == q => Some(p),
        _ => return None,
    };
    Some(TrafficSelector {
        src: prefix_intersect(&a.src, &b.src)?,
        dst: prefix_intersect(&a.dst, &b.dst)?,
        proto,
        src_ports: ports_intersect(a.src_ports, b.src_ports)?,
        dst_ports: ports_intersect(a.dst_ports, b.dst_ports)?,
    })
}

/// Two prefixes overlap only if one contains the other; the overlap is the
/// longer one.
fn prefix_intersect(a: &IpPrefix, b: &IpPrefix) -> Option<IpPrefix> {
    if a.prefix_len() <= b.prefix_len() && a.contains(&b.addr()) {
        Some(*b)
    } else if b.prefix_len() <= a.prefix_len() && b.contains(&a.addr()) {
        Some(*a)
    } else {
        None
    }
}

fn ports_intersect(a: PortRange, b: PortRange) -> Option<PortRange> {
    let lo = a.lo.max(b.lo);
    let hi = a.hi.min(b.hi);
    (lo <= hi).then_some(PortRange { lo, hi })
}
