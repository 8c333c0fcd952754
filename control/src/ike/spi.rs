//! Inbound SPIs: the IKEv1 and IKEv2 engines allocate from halves of the
//! space of their own, so an IKEv1 pair and an IKEv2 pair never get the
//! same inbound SPI. Each engine keeps its own half free of duplicates;
//! without the split the dataplane would refuse the second pair, and an
//! expiry or delete naming the SPI would reach both engines.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;

use crate::ike::crypto::random;

/// Which engine's half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpiSpace {
    /// 0x0000_0100..=0x7fff_ffff.
    Ikev1,
    /// 0x8000_0000..=0xffff_ffff.
    Ikev2,
}

impl SpiSpace {
    /// A random SPI of this half; never 0-255, which RFC 4303 §2.1
    /// reserves.
    pub fn random(self) -> u32 {
        loop {
            let r = u32::from_be_bytes(random());
            let spi = match self {
                SpiSpace::Ikev1 => r & 0x7fff_ffff,
                SpiSpace::Ikev2 => r | 0x8000_0000,
            };
            if spi >= 0x100 {
                return spi;
            }
        }
    }

    pub fn contains(self, spi: u32) -> bool {
        match self {
            SpiSpace::Ikev1 => (0x100..0x8000_0000).contains(&spi),
            SpiSpace::Ikev2 => spi >= 0x8000_0000,
        }
    }
}

/// Hands out inbound SPIs of one half that none of the engine's SAs or
/// negotiations holds, in constant time per SPI however many SAs a hub
/// has: it remembers every SPI it handed out (a superset of those in
/// use) and, whenever that set has doubled, forgets the ones no longer
/// in use by asking the engine which are.
///
/// Interior mutability: engines allocate while they hold other parts of
/// themselves borrowed.
#[derive(Debug)]
pub struct SpiAllocator {
    space: SpiSpace,
    handed_out: RefCell<HashSet<u32>>,
    /// The size at which `handed_out` is next rebuilt from the SPIs in use.
    rebuild_at: Cell<usize>,
    #[cfg(test)]
    forced: Cell<Option<u32>>,
}

impl SpiAllocator {
    pub fn new(space: SpiSpace) -> SpiAllocator {
        SpiAllocator {
            space,
            handed_out: RefCell::new(HashSet::new()),
            rebuild_at: Cell::new(1024),
            #[cfg(test)]
            forced: Cell::new(None),
        }
    }

    /// A fresh SPI. `in_use` lists every SPI of the engine's SAs and
    /// negotiations; it is called only when the set is rebuilt.
    pub fn alloc<I: IntoIterator<Item = u32>>(&self, in_use: impl FnOnce() -> I) -> u32 {
        let mut handed_out = self.handed_out.borrow_mut();
        if handed_out.len() >= self.rebuild_at.get() {
            *handed_out = in_use().into_iter().collect();
            self.rebuild_at.set(2 * handed_out.len() + 1024);
        }
        #[cfg(test)]
        if let Some(spi) = self.forced.take() {
            handed_out.insert(spi);
            return spi;
        }
        loop {
            let spi = self.space.random();
            if handed_out.insert(spi) {
                return spi;
            }
        }
    }

    /// The next SPI [`SpiAllocator::alloc`] hands out (tests).
    #[cfg(test)]
    pub fn force_next(&self, spi: u32) {
        self.forced.set(Some(spi));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set it remembers is rebuilt from what is in use, so it stays
    /// bounded across rekeys, and it always holds every SPI in use (which
    /// is what keeps one from being handed out twice: a random SPI in the
    /// set is drawn again).
    #[test]
    fn spis_in_use_are_never_handed_out_and_the_rest_is_forgotten() {
        let a = SpiAllocator::new(SpiSpace::Ikev2);
        let mut live: Vec<u32> = Vec::new();
        for round in 0..20_000 {
            let spi = a.alloc(|| live.clone());
            assert!(SpiSpace::Ikev2.contains(spi));
            assert!(!live.contains(&spi));
            live.push(spi);
            let remembered = a.handed_out.borrow();
            assert!(live.iter().all(|s| remembered.contains(s)), "{round}");
            drop(remembered);
            // SAs come and go: 100 in use at any time.
            if live.len() > 100 {
                live.remove(round % 100);
            }
            assert!(a.handed_out.borrow().len() <= 2 * 100 + 1024 + 1);
        }
        // A forced SPI (tests) also counts as handed out.
        a.force_next(0x8000_1234);
        assert_eq!(a.alloc(Vec::new), 0x8000_1234);
        assert!(a.handed_out.borrow().contains(&0x8000_1234));
    }

    #[test]
    fn the_halves_are_disjoint_and_skip_the_reserved_spis() {
        for space in [SpiSpace::Ikev1, SpiSpace::Ikev2] {
            for _ in 0..10_000 {
                assert!(space.contains(space.random()));
            }
        }
        for spi in [0, 0xff, 0x100, 0x7fff_ffff, 0x8000_0000, u32::MAX] {
            let owners = [SpiSpace::Ikev1, SpiSpace::Ikev2]
                .into_iter()
                .filter(|s| s.contains(spi))
                .count();
            assert_eq!(owners, usize::from(spi >= 0x100), "{spi:#x}");
        }
    }
}
