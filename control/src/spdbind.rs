//! Binding negotiated outbound SAs to the crypto-map SPD.
//!
//! The compiled SPD says which flows each `ipsec-isakmp` entry protects,
//! with no SA yet (such packets raise an acquire). When IKE negotiates a
//! pair for an entry and a proxy-identity pair, the rules of that entry
//! inside the proxy must point at the new outbound SA:
//! - a rule the proxy covers whole gets the SA;
//! - a rule wider than the proxy (the peer narrowed it, or a dynamic
//!   entry's peer proposed its own) keeps no SA for the rest, and a rule
//!   for exactly the proxy, with the SA, goes before it;
//! - an entry with no rules of its own (a dynamic-map entry without
//!   `match address`: it protects what peers negotiate) gets a rule for
//!   the proxy after every compiled rule, so the static entries and their
//!   deny lines still come first, as they do in IOS when the dynamic map
//!   is the map's last entry;
//! - except for a route-based entry (a VTI): it protects only what is
//!   routed into the tunnel (its compiled rules), never the whole proxy
//!   it negotiated (any to any), so a VTI with no routes protects nothing.
//!
//! The dataplane replaces its SPD whole (`LoadSpd`), so this module only
//! computes the list to load; it is pure and every rule above is a test.

use dataplane::spd::{PolicyAction, PolicyTag, SpdRule, TrafficSelector};

use crate::config::compile::intersect;

/// One negotiated outbound SA and the flows it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    tag: PolicyTag,
    /// Local (source) to remote (destination), as SPD rules are written.
    proxy: TrafficSelector,
    spi: u32,
}

/// The compiled SPD plus the SAs negotiated since.
#[derive(Debug, Clone, Default)]
pub struct SpdBinder {
    base: Vec<SpdRule>,
    bound: Vec<Binding>,
    /// Entries whose bindings never add rules of their own (VTIs).
    route_based: Vec<PolicyTag>,
}

/// Whether `inner` matches no flow `outer` does not.
fn within(inner: &TrafficSelector, outer: &TrafficSelector) -> bool {
    intersect(inner, outer).as_ref() == Some(inner)
}

impl SpdBinder {
    pub fn new(base: Vec<SpdRule>) -> SpdBinder {
        SpdBinder {
            base,
            bound: Vec::new(),
            route_based: Vec::new(),
        }
    }

    /// Marks the entries `tags` as route-based (see the module doc).
    pub fn with_route_based(mut self, tags: impl IntoIterator<Item = PolicyTag>) -> SpdBinder {
        self.route_based.extend(tags);
        self
    }

    /// Replaces the compiled rules (a config reload); bindings stay.
    pub fn set_base(&mut self, base: Vec<SpdRule>) {
        self.base = base;
    }

    /// Points the entry's flows inside `proxy` at outbound SA `spi`,
    /// replacing the SA bound to the same entry and proxy before (a
    /// rekey). Returns the SPI it replaced.
    pub fn bind(&mut self, tag: PolicyTag, proxy: TrafficSelector, spi: u32) -> Option<u32> {
        if let Some(b) = self
            .bound
            .iter_mut()
            .find(|b| b.tag == tag && b.proxy == proxy)
        {
            return Some(std::mem::replace(&mut b.spi, spi));
        }
        self.bound.push(Binding { tag, proxy, spi });
        None
    }

    /// Forgets outbound SA `spi` (deleted or expired): its flows raise
    /// acquires again. Returns whether it was bound.
    pub fn unbind(&mut self, spi: u32) -> bool {
        let before = self.bound.len();
        self.bound.retain(|b| b.spi != spi);
        self.bound.len() != before
    }

    /// Whether any SA is bound now.
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }

    /// The SPD to load, first match wins.
    pub fn rules(&self) -> Vec<SpdRule> {
        let mut out = Vec::with_capacity(self.base.len() + self.bound.len());
        let mut placed = vec![false; self.bound.len()];
        for rule in &self.base {
            let PolicyAction::Protect { map, .. } = rule.action else {
                out.push(*rule);
                continue;
            };
            let mine = self.bound.iter().enumerate().filter(|(_, b)| b.tag == map);
            let mut whole = None;
            for (i, b) in mine {
                if within(&rule.selector, &b.proxy) {
                    whole = whole.or(Some(b.spi));
                    placed[i] = true;
                } else if within(&b.proxy, &rule.selector) {
                    out.push(SpdRule {
                        selector: b.proxy,
                        action: PolicyAction::Protect {
                            sa: Some(b.spi),
                            map,
                        },
                    });
                    placed[i] = true;
                }
            }
            out.push(SpdRule {
                selector: rule.selector,
                action: PolicyAction::Protect { sa: whole, map },
            });
        }
        for (b, _) in self
            .bound
            .iter()
            .zip(&placed)
            .filter(|(b, p)| !**p && !self.route_based.contains(&b.tag))
        {
            out.push(SpdRule {
                selector: b.proxy,
                action: PolicyAction::Protect {
                    sa: Some(b.spi),
                    map: b.tag,
                },
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::spd::PortRange;

    fn sel(src: &str, dst: &str) -> TrafficSelector {
        TrafficSelector {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        }
    }

    const A: PolicyTag = PolicyTag { map: 0, seq: 10 };
    const B: PolicyTag = PolicyTag { map: 0, seq: 20 };

    fn protect(s: TrafficSelector, tag: PolicyTag, sa: Option<u32>) -> SpdRule {
        SpdRule {
            selector: s,
            action: PolicyAction::Protect { sa, map: tag },
        }
    }

    fn base() -> Vec<SpdRule> {
        vec![
            SpdRule {
                selector: sel("198.19.1.5/32", "0.0.0.0/0"),
                action: PolicyAction::Bypass,
            },
            protect(sel("198.19.1.0/24", "198.19.2.0/24"), A, None),
            protect(sel("198.19.1.0/24", "198.19.3.0/24"), B, None),
        ]
    }

    #[test]
    fn a_proxy_equal_to_the_rule_gives_it_the_sa_and_a_rekey_replaces_it() {
        let mut b = SpdBinder::new(base());
        assert_eq!(
            b.bind(A, sel("198.19.1.0/24", "198.19.2.0/24"), 0x1000),
            None
        );
        let r = b.rules();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[1],
            protect(sel("198.19.1.0/24", "198.19.2.0/24"), A, Some(0x1000))
        );
        assert_eq!(r[2], base()[2], "the other entry still acquires");
        assert_eq!(
            b.bind(A, sel("198.19.1.0/24", "198.19.2.0/24"), 0x2000),
            Some(0x1000)
        );
        assert_eq!(
            b.rules()[1].action,
            PolicyAction::Protect {
                sa: Some(0x2000),
                map: A
            }
        );
        assert!(b.unbind(0x2000));
        assert_eq!(b.rules(), base());
        assert!(!b.unbind(0x2000));
    }

    #[test]
    fn a_narrower_proxy_goes_before_the_rule_which_still_acquires_for_the_rest() {
        let mut b = SpdBinder::new(base());
        b.bind(A, sel("198.19.1.0/25", "198.19.2.0/24"), 7);
        let r = b.rules();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[1],
            protect(sel("198.19.1.0/25", "198.19.2.0/24"), A, Some(7))
        );
        assert_eq!(
            r[2],
            protect(sel("198.19.1.0/24", "198.19.2.0/24"), A, None)
        );
    }

    #[test]
    fn a_vtis_any_to_any_proxy_binds_its_routes_and_adds_nothing_else() {
        let v = PolicyTag {
            map: 1,
            seq: 65_536,
        };
        let mut rules = vec![protect(sel("::/0", "fd00:b::/64"), v, None)];
        rules.extend(base());
        let mut b = SpdBinder::new(rules.clone()).with_route_based([v]);
        b.bind(v, sel("::/0", "::/0"), 5);
        let r = b.rules();
        assert_eq!(r.len(), rules.len(), "no catch-all any-to-any rule: {r:?}");
        assert_eq!(r[0], protect(sel("::/0", "fd00:b::/64"), v, Some(5)));
        assert_eq!(&r[1..], &base()[..]);
        // With no route into the tunnel, the SA protects nothing outbound.
        let mut b = SpdBinder::new(base()).with_route_based([v]);
        b.bind(v, sel("::/0", "::/0"), 5);
        assert_eq!(b.rules(), base());
    }

    #[test]
    fn a_dynamic_entrys_proxies_follow_every_compiled_rule() {
        let d = PolicyTag { map: 0, seq: 30 };
        let mut b = SpdBinder::new(base());
        b.bind(d, sel("198.19.1.0/24", "198.19.9.0/24"), 9);
        // A proxy of another entry that its rules do not contain is not
        // smuggled into them either.
        let r = b.rules();
        assert_eq!(&r[..3], &base()[..]);
        assert_eq!(
            r[3],
            protect(sel("198.19.1.0/24", "198.19.9.0/24"), d, Some(9))
        );
    }
}
