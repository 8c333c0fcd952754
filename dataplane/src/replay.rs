//! Anti-replay window (RFC 4303 §3.4.3 and Appendix A) in the bitmap layout
//! of RFC 6479, made lock-free so several workers can check packets of the
//! same SA at once: one tunnel scales across cores.
//!
//! The bitmap is a ring of `AtomicU64` slots. Each slot packs the low 32
//! bits of a block number (`seq >> 5`) in its high half and the 32-packet
//! bitmap of that block in its low half, so "is this block current, and is
//! this bit set" is one atomic word and one compare-and-swap updates it.
//! RFC 6479 clears a block when the window advances into it; here a slot
//! that still holds an older block is simply overwritten by the first newer
//! packet that lands in it (lazy clearing), which needs no global step.
//!
//! Why the slot count is enough: with `S = window/32 + 1` slots (rounded up
//! to a power of two), two blocks that share a slot are at least `S`
//! blocks apart, so their sequence numbers differ by at least
//! `32·S − 31 ≥ window + 1`. A packet whose slot was taken by a newer block
//! is therefore left of that newer packet's window and must be refused
//! anyway; and a packet inside the window never finds its slot taken by a
//! newer block.

use std::sync::atomic::{AtomicU64, Ordering};

use thiserror::Error;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ReplayError {
    /// Seen before inside the window.
    #[error("sequence number already received")]
    Replayed,
    /// Left of the window: too old to tell, so refused (RFC 4303 §3.4.3).
    #[error("sequence number left of the replay window")]
    TooOld,
    /// Sequence number 0 is never sent (the first packet carries 1).
    #[error("sequence number 0 is never valid")]
    Zero,
    /// Window sizes are multiples of 32 from 32 to 65536 packets.
    #[error("replay window {0} is not a multiple of 32 between 32 and 65536")]
    BadWindowSize(u32),
}

const BITS_PER_SLOT: u64 = 32;
const MAX_WINDOW: u32 = 65536;

/// A lock-free anti-replay window of one inbound SA.
#[derive(Debug)]
pub struct ReplayWindow {
    window: u64,
    /// Highest authenticated sequence number (full 64 bits).
    top: AtomicU64,
    slots: Box<[AtomicU64]>,
    slot_mask: u64,
}

/// Block tag relation of a slot to the packet's block, by wrapping
/// difference of the 32-bit tags (blocks are never 2^31 apart in a slot
/// that is still in use).
fn tag_cmp(slot_tag: u32, block_tag: u32) -> std::cmp::Ordering {
    (block_tag.wrapping_sub(slot_tag) as i32).cmp(&0).reverse()
}

impl ReplayWindow {
    /// Builds a window of `window` packets. Allocates once, at SA install.
    pub fn new(window: u32) -> Result<ReplayWindow, ReplayError> {
        if window == 0 || !window.is_multiple_of(32) || window > MAX_WINDOW {
            return Err(ReplayError::BadWindowSize(window));
        }
        let slots = (u64::from(window) / BITS_PER_SLOT + 1).next_power_of_two();
        Ok(ReplayWindow {
            window: u64::from(window),
            top: AtomicU64::new(0),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            slot_mask: slots - 1,
        })
    }

    /// Window size in packets.
    pub fn size(&self) -> u32 {
        self.window as u32
    }

    /// Highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top.load(Ordering::Acquire)
    }

    /// The slot word `seq` will be checked against (for a prefetch).
    pub fn slot_addr(&self, seq: u64) -> *const u8 {
        self.locate(seq).0.as_ptr().cast::<u8>().cast_const()
    }

    fn locate(&self, seq: u64) -> (&AtomicU64, u32, u64) {
        let block = seq / BITS_PER_SLOT;
        let slot = &self.slots[(block & self.slot_mask) as usize];
        (slot, block as u32, 1u64 << (seq % BITS_PER_SLOT))
    }

    fn left_of_window(&self, seq: u64) -> bool {
        seq.saturating_add(self.window) <= self.top()
    }

    /// Pre-check before the ICV is verified: refuses what is certainly a
    /// replay or too old, changes nothing (RFC 4303 §3.4.3: the window is
    /// updated only for authenticated packets).
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if self.left_of_window(seq) {
            return Err(ReplayError::TooOld);
        }
        let (slot, tag, bit) = self.locate(seq);
        let word = slot.load(Ordering::Acquire);
        match tag_cmp((word >> 32) as u32, tag) {
            std::cmp::Ordering::Equal if word & bit != 0 => Err(ReplayError::Replayed),
            std::cmp::Ordering::Greater => Err(ReplayError::TooOld),
            _ => Ok(()),
        }
    }

    /// After the ICV verified: marks `seq` as received, atomically with the
    /// duplicate test, so of several workers racing on the same sequence
    /// number exactly one wins.
    pub fn check_and_update(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Zero);
        }
        if self.left_of_window(seq) {
            return Err(ReplayError::TooOld);
        }
        let (slot, tag, bit) = self.locate(seq);
        let mut word = slot.load(Ordering::Acquire);
        loop {
            let new = match tag_cmp((word >> 32) as u32, tag) {
                std::cmp::Ordering::Equal if word & bit != 0 => return Err(ReplayError::Replayed),
                std::cmp::Ordering::Equal => word | bit,
                // The slot holds an older block: this packet starts the
                // block afresh (RFC 6479's clearing, done lazily).
                std::cmp::Ordering::Less => u64::from(tag) << 32 | bit,
                std::cmp::Ordering::Greater => return Err(ReplayError::TooOld),
            };
            match slot.compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(current) => word = current,
            }
        }
        self.top.fetch_max(seq, Ordering::AcqRel);
        Ok(())
    }

    /// The high 32 bits of an ESN sequence number from its transmitted low
    /// half (RFC 4303 Appendix A2.2): the window's position tells whether
    /// the packet belongs to the current 2^32 epoch, the next or the last.
    pub fn infer_seq_hi(&self, seq_lo: u32) -> u32 {
        let top = self.top();
        let (tl, th) = (top as u32, (top >> 32) as u32);
        let w = self.window as u32;
        let bottom = tl.wrapping_sub(w - 1);
        if tl >= w - 1 {
            // The window lies within one epoch.
            if seq_lo >= bottom {
                th
            } else {
                th.wrapping_add(1)
            }
        } else if seq_lo >= bottom {
            // The window spans the epoch boundary and the packet sits in its
            // older part; in epoch 0 there is no older part.
            th.saturating_sub(1)
        } else {
            th
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn in_order_packets_are_accepted_and_duplicates_refused() {
        let w = ReplayWindow::new(64).unwrap();
        for s in 1..=200 {
            assert_eq!(w.check(s), Ok(()));
            assert_eq!(w.check_and_update(s), Ok(()));
            assert_eq!(w.check(s), Err(ReplayError::Replayed));
            assert_eq!(w.check_and_update(s), Err(ReplayError::Replayed));
        }
        assert_eq!(w.top(), 200);
    }

    #[test]
    fn the_window_edge_is_exact_for_every_size() {
        for size in [32u32, 64, 1024, 4096, 65536] {
            let w = ReplayWindow::new(size).unwrap();
            let top = 1_000_000u64;
            w.check_and_update(top).unwrap();
            let s = u64::from(size);
            assert_eq!(w.check(top - s), Err(ReplayError::TooOld), "size {size}");
            assert_eq!(
                w.check_and_update(top - s),
                Err(ReplayError::TooOld),
                "size {size}"
            );
            assert_eq!(w.check_and_update(top - s + 1), Ok(()), "size {size}");
            assert_eq!(w.check_and_update(top - 1), Ok(()), "size {size}");
        }
    }

    #[test]
    fn late_packets_inside_the_window_are_accepted_once() {
        let w = ReplayWindow::new(64).unwrap();
        w.check_and_update(100).unwrap();
        for s in (40..100).rev() {
            assert_eq!(w.check_and_update(s), Ok(()), "{s}");
        }
        assert_eq!(w.check_and_update(36), Err(ReplayError::TooOld));
        for s in 40..=100 {
            assert_eq!(w.check_and_update(s), Err(ReplayError::Replayed), "{s}");
        }
    }

    #[test]
    fn sequence_number_zero_is_refused() {
        let w = ReplayWindow::new(64).unwrap();
        assert_eq!(w.check(0), Err(ReplayError::Zero));
        assert_eq!(w.check_and_update(0), Err(ReplayError::Zero));
    }

    #[test]
    fn window_sizes_outside_the_range_are_refused() {
        for bad in [0u32, 16, 33, 65536 + 32, u32::MAX] {
            assert_eq!(
                ReplayWindow::new(bad).unwrap_err(),
                ReplayError::BadWindowSize(bad)
            );
        }
    }

    #[test]
    fn check_alone_never_changes_the_window() {
        let w = ReplayWindow::new(64).unwrap();
        for s in [5u64, 1000, 3, 1000] {
            let _ = w.check(s);
        }
        assert_eq!(w.top(), 0);
        assert_eq!(w.check_and_update(5), Ok(()));
        assert_eq!(w.check_and_update(1000), Ok(()));
    }

    #[test]
    fn a_big_jump_forward_leaves_old_blocks_refused() {
        let w = ReplayWindow::new(64).unwrap();
        w.check_and_update(10).unwrap();
        w.check_and_update(10 + 32 * 1000).unwrap();
        assert_eq!(w.check_and_update(10), Err(ReplayError::TooOld));
        // A fresh packet landing in the slot block 0 used is accepted.
        assert_eq!(w.check_and_update(10 + 32 * 1000 - 5), Ok(()));
    }

    #[test]
    fn esn_high_bits_follow_appendix_a_across_the_2_to_the_32_boundary() {
        let w = ReplayWindow::new(64).unwrap();
        // Epoch 0, early: nothing older than epoch 0 exists.
        assert_eq!(w.infer_seq_hi(1), 0);
        assert_eq!(w.infer_seq_hi(u32::MAX - 10), 0);
        // Near the end of epoch 0.
        let near = u64::from(u32::MAX) - 5;
        w.check_and_update(near).unwrap();
        assert_eq!(w.infer_seq_hi(u32::MAX - 20), 0, "late packet, same epoch");
        assert_eq!(w.infer_seq_hi(u32::MAX), 0);
        assert_eq!(w.infer_seq_hi(3), 1, "wrapped: next epoch");
        // Just after the wrap: the window spans both epochs.
        w.check_and_update((1 << 32) + 2).unwrap();
        assert_eq!(
            w.infer_seq_hi(u32::MAX - 3),
            0,
            "late packet from the old epoch"
        );
        assert_eq!(w.infer_seq_hi(1), 1);
        assert_eq!(w.infer_seq_hi(100), 1);
        assert_eq!(w.check_and_update(u64::from(u32::MAX) - 3), Ok(()));
        assert_eq!(
            w.check_and_update(u64::from(u32::MAX) - 3),
            Err(ReplayError::Replayed)
        );
    }

    /// The RFC 4303 window as a set: accept if not seen and not left of
    /// the window of the highest accepted number.
    struct Reference {
        window: u64,
        top: u64,
        seen: BTreeSet<u64>,
    }

    impl Reference {
        fn accept(&mut self, seq: u64) -> bool {
            if seq == 0 || seq + self.window <= self.top || self.seen.contains(&seq) {
                return false;
            }
            self.seen.insert(seq);
            self.top = self.top.max(seq);
            true
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn verdicts_agree_with_the_reference_model(
            size in prop::sample::select(vec![32u32, 64, 128, 1024, 4096]),
            base in prop::sample::select(vec![0u64, (1u64 << 32) - 3000, 1u64 << 40]),
            steps in proptest::collection::vec(-5000i64..5000, 1..400),
        ) {
            let w = ReplayWindow::new(size).unwrap();
            let mut r = Reference { window: u64::from(size), top: 0, seen: BTreeSet::new() };
            let mut cur = base as i64 + 6000;
            for step in steps {
                // Mostly forward, sometimes back: reordering and replays.
                cur = (cur + step / 4 + 3).max(0);
                let seq = cur as u64;
                let pre = w.check(seq).is_ok();
                let got = w.check_and_update(seq).is_ok();
                let want = r.accept(seq);
                prop_assert_eq!(got, want, "seq {}", seq);
                prop_assert_eq!(pre, want, "pre-check of seq {}", seq);
            }
        }
    }
}
