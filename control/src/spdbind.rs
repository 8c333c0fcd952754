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

use std::collections::{BTreeMap, HashMap};

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
///
/// A hub binds one SA per peer, so binding, unbinding and listing cost
/// no more per SA with 100 000 of them bound than with one: the
/// bindings are kept in bind order (a dynamic entry's proxies go into
/// the SPD in that order) and found through two indexes.
#[derive(Debug, Clone, Default)]
pub struct SpdBinder {
    base: Vec<SpdRule>,
    /// By bind order: the number `next` had when the entry and proxy
    /// were first bound (a rekey keeps the place).
    bound: BTreeMap<u64, Binding>,
    by_proxy: HashMap<(PolicyTag, TrafficSelector), u64>,
    by_spi: HashMap<u32, u64>,
    next: u64,
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
            ..SpdBinder::default()
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
    ///
    /// An SPI names one SA, which carries one proxy: binding an SPI
    /// already bound elsewhere moves it (the dataplane refuses a second
    /// SA with the same SPI, so this only happens after a lost unbind).
    pub fn bind(&mut self, tag: PolicyTag, proxy: TrafficSelector, spi: u32) -> Option<u32> {
        if let Some(b) = self.by_spi.get(&spi).and_then(|s| self.bound.get(s)) {
            if (b.tag, b.proxy) != (tag, proxy) {
                self.unbind(spi);
            }
        }
        if let Some(&seq) = self.by_proxy.get(&(tag, proxy)) {
            let b = self.bound.get_mut(&seq)?;
            let old = std::mem::replace(&mut b.spi, spi);
            self.by_spi.remove(&old);
            self.by_spi.insert(spi, seq);
            return Some(old);
        }
        let seq = self.next;
        self.next += 1;
        self.bound.insert(seq, Binding { tag, proxy, spi });
        self.by_proxy.insert((tag, proxy), seq);
        self.by_spi.insert(spi, seq);
        None
    }

    /// Forgets outbound SA `spi` (deleted or expired): its flows raise
    /// acquires again. Returns whether it was bound.
    pub fn unbind(&mut self, spi: u32) -> bool {
        let Some(seq) = self.by_spi.remove(&spi) else {
            return false;
        };
        if let Some(b) = self.bound.remove(&seq) {
            self.by_proxy.remove(&(b.tag, b.proxy));
        }
        true
    }

    /// Whether outbound SA `spi` carries flows now.
    pub fn is_bound(&self, spi: u32) -> bool {
        self.by_spi.contains_key(&spi)
    }

    /// The outbound SA the entry's flows inside `proxy` are bound to.
    pub fn bound_to(&self, tag: PolicyTag, proxy: TrafficSelector) -> Option<u32> {
        let seq = self.by_proxy.get(&(tag, proxy))?;
        self.bound.get(seq).map(|b| b.spi)
    }

    /// Whether any SA is bound now.
    pub fn is_empty(&self) -> bool {
        self.bound.is_empty()
    }

    /// The SPD to load, first match wins.
    pub fn rules(&self) -> Vec<SpdRule> {
        let mut out = Vec::with_capacity(self.base.len() + self.bound.len());
        let mut placed = vec![false; self.bound.len()];
        // Each entry's bindings in bind order, by their place in it.
        let mut of_entry: HashMap<PolicyTag, Vec<(usize, &Binding)>> = HashMap::new();
        for (i, b) in self.bound.values().enumerate() {
            of_entry.entry(b.tag).or_default().push((i, b));
        }
        for rule in &self.base {
            let PolicyAction::Protect { map, .. } = rule.action else {
                out.push(*rule);
                continue;
            };
            let mut whole = None;
            for &(i, b) in of_entry.get(&map).map_or(&[][..], Vec::as_slice) {
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
            .values()
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

    #[test]
    fn a_dynamic_entrys_proxies_keep_their_bind_order_through_rekeys_and_unbinds() {
        let d = PolicyTag { map: 0, seq: 30 };
        let mut b = SpdBinder::new(base());
        // Overlapping proxies: the first bound matches first.
        b.bind(d, sel("198.19.1.0/24", "198.19.8.0/22"), 1);
        b.bind(d, sel("198.19.1.0/24", "198.19.9.0/24"), 2);
        b.bind(d, sel("198.19.1.0/24", "198.19.10.0/24"), 3);
        assert_eq!(b.bind(d, sel("198.19.1.0/24", "198.19.8.0/22"), 4), Some(1));
        assert!(b.unbind(2));
        assert!(!b.unbind(1), "replaced by the rekey");
        b.bind(d, sel("198.19.1.0/24", "198.19.9.0/24"), 5);
        let sas: Vec<_> = b.rules()[3..]
            .iter()
            .map(|r| match r.action {
                PolicyAction::Protect { sa, .. } => sa,
                _ => None,
            })
            .collect();
        assert_eq!(sas, [Some(4), Some(3), Some(5)]);
    }

    #[test]
    fn an_spi_bound_again_elsewhere_moves() {
        let d = PolicyTag { map: 0, seq: 30 };
        let mut b = SpdBinder::new(Vec::new());
        b.bind(d, sel("198.19.1.0/24", "198.19.8.0/24"), 7);
        b.bind(d, sel("198.19.1.0/24", "198.19.9.0/24"), 7);
        assert_eq!(
            b.rules(),
            [protect(sel("198.19.1.0/24", "198.19.9.0/24"), d, Some(7))]
        );
        assert!(b.unbind(7));
        assert!(b.is_empty());
    }

    /// A hub's dynamic entry with 100 000 peers, each its own /24, bound,
    /// rekeyed and deleted one by one. Each of those 300 000 steps scanned
    /// every binding before (about 10 s for the binds alone in a release
    /// build); the listing must also come out in bind order.
    #[test]
    fn a_hub_of_100_000_peers_binds_rekeys_and_unbinds() {
        const PEERS: u32 = 100_000;
        let d = PolicyTag { map: 0, seq: 30 };
        let peer = |i: u32| {
            let mut s = sel("198.18.0.0/24", "10.0.0.0/24");
            s.dst = dataplane::spd::IpPrefix::new(
                std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8)).into(),
                24,
            )
            .unwrap();
            s
        };
        let mut b = SpdBinder::new(base());
        for i in 0..PEERS {
            assert_eq!(b.bind(d, peer(i), 0x1000_0000 + i), None);
        }
        for i in (0..PEERS).step_by(2) {
            assert_eq!(b.bind(d, peer(i), 0x2000_0000 + i), Some(0x1000_0000 + i));
        }
        let r = b.rules();
        assert_eq!(r.len(), base().len() + PEERS as usize);
        for (i, rule) in (0..PEERS).zip(&r[base().len()..]) {
            let sa = if i % 2 == 0 { 0x2000_0000 } else { 0x1000_0000 } + i;
            assert_eq!(*rule, protect(peer(i), d, Some(sa)));
        }
        for i in 0..PEERS {
            let sa = if i % 2 == 0 { 0x2000_0000 } else { 0x1000_0000 } + i;
            assert!(b.unbind(sa));
        }
        assert!(b.is_empty());
        assert_eq!(b.rules(), base());
    }
}
