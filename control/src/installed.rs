//! The SA pairs the daemon installed in the dataplane: kept (keys
//! included, zeroized on drop) so that a restarted dataplane gets them
//! back, listed by `show crypto ipsec sa` in the order they came, and
//! found by outbound SPI when one is deleted or its peer moves, and by
//! inbound SPI when ESP for it reaches the daemon. A hub has one pair per
//! peer, so none of that scans the others.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use dataplane::api::SaParams;
use dataplane::spd::{PolicyTag, TrafficSelector};

/// One negotiated pair in the dataplane.
pub struct Installed {
    pub tag: PolicyTag,
    pub proxy: TrafficSelector,
    pub inbound: SaParams,
    pub outbound: SaParams,
    /// For the remaining lifetime `show crypto ipsec sa` prints.
    pub installed_at: Instant,
}

/// The installed pairs in install order, by outbound SPI and by inbound
/// SPI.
#[derive(Default)]
pub struct InstalledPairs {
    by_order: BTreeMap<u64, Installed>,
    by_outbound: HashMap<u32, u64>,
    /// Inbound SPIs are ours and unique among the pairs, but a pair
    /// whose SPI is reused may go after its successor came: an entry is
    /// removed only by the pair it names.
    by_inbound: HashMap<u32, u64>,
    next: u64,
}

impl InstalledPairs {
    /// Adds a pair, unless another has its outbound SPI (the dataplane
    /// holds one SA per SPI): returns whether it was added.
    pub fn insert(&mut self, pair: Installed) -> bool {
        if self.has_outbound(pair.outbound.spi) {
            return false;
        }
        let seq = self.next;
        self.next += 1;
        self.by_outbound.insert(pair.outbound.spi, seq);
        self.by_inbound.insert(pair.inbound.spi, seq);
        self.by_order.insert(seq, pair);
        true
    }

    /// Whether an installed pair has this outbound SPI.
    pub fn has_outbound(&self, outbound_spi: u32) -> bool {
        self.by_outbound.contains_key(&outbound_spi)
    }

    /// Whether an installed pair has this inbound SPI.
    pub fn has_inbound(&self, inbound_spi: u32) -> bool {
        self.by_inbound.contains_key(&inbound_spi)
    }

    /// Removes the pair of these two SPIs. Returns whether it was there.
    pub fn remove(&mut self, inbound_spi: u32, outbound_spi: u32) -> bool {
        let Some(&seq) = self.by_outbound.get(&outbound_spi) else {
            return false;
        };
        if self.by_order.get(&seq).map(|p| p.inbound.spi) != Some(inbound_spi) {
            return false;
        }
        self.by_outbound.remove(&outbound_spi);
        if self.by_inbound.get(&inbound_spi) == Some(&seq) {
            self.by_inbound.remove(&inbound_spi);
        }
        self.by_order.remove(&seq);
        true
    }

    pub fn by_outbound_mut(&mut self, outbound_spi: u32) -> Option<&mut Installed> {
        let seq = self.by_outbound.get(&outbound_spi)?;
        self.by_order.get_mut(seq)
    }

    /// In install order.
    pub fn iter(&self) -> impl Iterator<Item = &Installed> {
        self.by_order.values()
    }

    pub fn len(&self) -> usize {
        self.by_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::crypto::{AuthAlg, EncAlg};
    use dataplane::spd::PortRange;
    use dataplane::testkit;

    fn pair(inbound_spi: u32, outbound_spi: u32) -> Installed {
        let (mut outbound, mut inbound) = testkit::sa_pair(
            EncAlg::AesCbc128,
            AuthAlg::HmacSha1_96,
            testkit::tunnel(false),
            false,
            false,
            64,
        );
        (inbound.spi, outbound.spi) = (inbound_spi, outbound_spi);
        let any = "0.0.0.0/0".parse().unwrap();
        Installed {
            tag: PolicyTag { map: 0, seq: 10 },
            proxy: TrafficSelector {
                src: any,
                dst: any,
                proto: None,
                src_ports: PortRange::ANY,
                dst_ports: PortRange::ANY,
            },
            inbound,
            outbound,
            installed_at: Instant::now(),
        }
    }

    fn spis(p: &InstalledPairs) -> Vec<(u32, u32)> {
        p.iter().map(|x| (x.inbound.spi, x.outbound.spi)).collect()
    }

    #[test]
    fn pairs_stay_in_install_order_and_go_only_with_both_spis() {
        let mut p = InstalledPairs::default();
        for i in 1..=4 {
            assert!(p.insert(pair(0x100 + i, 0x200 + i)));
        }
        assert!(!p.remove(0x102, 0x203), "not one pair");
        assert!(p.remove(0x102, 0x202));
        assert!(!p.remove(0x102, 0x202), "gone already");
        assert!(p.insert(pair(0x105, 0x205)));
        assert_eq!(
            spis(&p),
            [
                (0x101, 0x201),
                (0x103, 0x203),
                (0x104, 0x204),
                (0x105, 0x205)
            ]
        );
        assert_eq!(p.by_outbound_mut(0x203).map(|x| x.inbound.spi), Some(0x103));
        assert!(p.by_outbound_mut(0x202).is_none());
        // Another pair with an outbound SPI in use is refused.
        assert!(p.has_outbound(0x201));
        assert!(!p.insert(pair(0x106, 0x201)));
        assert_eq!(p.len(), 4);
        assert!(!p.remove(0x106, 0x201));
        assert!(p.remove(0x101, 0x201));
        assert!(!p.has_outbound(0x201));
    }

    #[test]
    fn inbound_spis_are_found_while_their_pair_is_in() {
        let mut p = InstalledPairs::default();
        assert!(p.insert(pair(0x101, 0x201)));
        assert!(p.insert(pair(0x102, 0x202)));
        assert!(p.has_inbound(0x101) && p.has_inbound(0x102));
        assert!(!p.has_inbound(0x201), "an outbound SPI is not ours");
        assert!(!p.insert(pair(0x103, 0x201)), "refused");
        assert!(!p.has_inbound(0x103), "a refused pair's SPI is not in");
        assert!(p.remove(0x101, 0x201));
        assert!(!p.has_inbound(0x101));
        // A pair reusing an inbound SPI keeps it when the older one goes.
        assert!(p.insert(pair(0x102, 0x203)));
        assert!(p.remove(0x102, 0x202));
        assert!(p.has_inbound(0x102));
        assert!(p.remove(0x102, 0x203));
        assert!(!p.has_inbound(0x102));
    }
}
