//! Inbound SPIs: the IKEv1 and IKEv2 engines allocate from halves of the
//! space of their own, so an IKEv1 pair and an IKEv2 pair never get the
//! same inbound SPI. Each engine keeps its own half free of duplicates;
//! without the split the dataplane would refuse the second pair, and an
//! expiry or delete naming the SPI would reach both engines.

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

#[cfg(test)]
mod tests {
    use super::*;

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
