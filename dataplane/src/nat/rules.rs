//! The NAT rule list, compiled from the [`NatRule`]s the control process
//! derives from `ip nat inside source list ACL interface IF overload`
//! (seed 003): the ACL's `deny` lines become [`NatAction::Exempt`], its
//! `permit` lines [`NatAction::Pat`]. First match wins, as in the ACL.

use std::net::{IpAddr, Ipv4Addr};

use thiserror::Error;

use crate::api::{NatAction, NatRule};
use crate::spd::{FlowKey, TrafficSelector};

/// Why a rule list cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum NatRuleError {
    /// PAT is IPv4 only (module docs): a PAT rule with an IPv6 outside
    /// address or IPv6 selectors would never translate anything, so it is
    /// refused rather than silently ignored.
    #[error("NAT rule {index}: port address translation is IPv4 only")]
    Ipv6Pat { index: usize },
}

/// A rule's action with the outside address already known to be IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    Exempt,
    Pat { outside_addr: Ipv4Addr },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compiled {
    Exempt,
    Pat {
        outside_ifindex: u32,
        outside_addr: Ipv4Addr,
    },
}

/// The compiled, immutable NAT rule list: built once per configuration
/// change and shared by every worker (pass `&NatRules` per call; it holds
/// no per-flow state). Lookup scans the IPv4 rules in order and allocates
/// nothing.
#[derive(Debug, Clone, Default)]
pub struct NatRules {
    rules: Vec<(TrafficSelector, Compiled)>,
    /// Every (interface, address) a PAT rule translates to: the addresses
    /// whose inbound traffic may be return traffic.
    pat_addrs: Vec<(u32, Ipv4Addr)>,
}

impl NatRules {
    /// Compiles a rule list, keeping its order. Exemption rules over IPv6
    /// selectors are accepted and change nothing (IPv6 is never
    /// translated); PAT rules must be IPv4 throughout.
    pub fn compile(rules: &[NatRule]) -> Result<NatRules, NatRuleError> {
        let mut out = NatRules::default();
        for (index, rule) in rules.iter().enumerate() {
            let v6_selector = rule.selector.src.is_ipv6() || rule.selector.dst.is_ipv6();
            let compiled = match rule.action {
                NatAction::Exempt if v6_selector => continue,
                NatAction::Exempt => Compiled::Exempt,
                NatAction::Pat {
                    outside_ifindex,
                    outside_addr: IpAddr::V4(outside_addr),
                } if !v6_selector => {
                    if !out.pat_addrs.contains(&(outside_ifindex, outside_addr)) {
                        out.pat_addrs.push((outside_ifindex, outside_addr));
                    }
                    Compiled::Pat {
                        outside_ifindex,
                        outside_addr,
                    }
                }
                NatAction::Pat { .. } => return Err(NatRuleError::Ipv6Pat { index }),
            };
            out.rules.push((rule.selector, compiled));
        }
        Ok(out)
    }

    /// What the list says about a flow leaving through `egress_ifindex`:
    /// the first rule whose selector matches decides, except that a PAT
    /// rule only applies to packets leaving through its own outside
    /// interface (its address would be wrong on any other link; a rule
    /// for another interface is passed over, like a route-map with `match
    /// interface`). `None`: no rule matched, the flow is not translated.
    pub fn lookup(&self, flow: &FlowKey, egress_ifindex: u32) -> Option<NatAction> {
        self.decide(flow, egress_ifindex).map(|d| match d {
            Decision::Exempt => NatAction::Exempt,
            Decision::Pat { outside_addr } => NatAction::Pat {
                outside_ifindex: egress_ifindex,
                outside_addr: IpAddr::V4(outside_addr),
            },
        })
    }

    pub(super) fn decide(&self, flow: &FlowKey, egress_ifindex: u32) -> Option<Decision> {
        self.rules.iter().find_map(|(selector, action)| {
            if !selector.matches(flow) {
                return None;
            }
            match *action {
                Compiled::Exempt => Some(Decision::Exempt),
                Compiled::Pat {
                    outside_ifindex,
                    outside_addr,
                } if outside_ifindex == egress_ifindex => Some(Decision::Pat { outside_addr }),
                Compiled::Pat { .. } => None,
            }
        })
    }

    /// Whether `addr` is a PAT address on `ifindex`: only traffic arriving
    /// there for such an address can be return traffic of a translation.
    pub fn is_pat_address(&self, ifindex: u32, addr: Ipv4Addr) -> bool {
        self.pat_addrs.contains(&(ifindex, addr))
    }

    /// Number of rules in use (IPv6 exemptions excluded).
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is in use: nothing is ever translated.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}
