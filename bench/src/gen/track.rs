//! The receiver's accounting: per-flow sequence tracking (loss and
//! reordering), one-way latency, ESP by SPI. One [`Tally`] per worker,
//! allocated before the first packet; [`Tally::merge`] adds them up at the
//! end.
//!
//! Per flow: `next` is one past the highest sequence number seen. A packet
//! at or above `next` moves it (the numbers it skipped are missing for
//! now); one below it is reordered (late, or a duplicate). Loss is
//! `next - received` summed over flows: packets missing below the highest
//! number seen. A flow's tail lost after its last received packet is not
//! seen here; the generator's `packets` is the reference for that.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::frame::{Probe, Received};

/// The largest forward jump of a flow's sequence number taken as loss;
/// gen sends at most a few million packets a second per flow, so a jump
/// of 2^32 is never a real gap.
const MAX_SEQ_JUMP: u64 = 1 << 32;

/// Flow ids the receiver tracks (the generator sends fewer).
pub const FLOW_SLOTS: usize = 65_536;
/// Distinct SPIs counted one by one; more land in `other_spis`.
pub const SPI_SLOTS: usize = 16;
/// Latencies above this (60 s) are clamped: a wrong clock, not a path.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Which generator run the receiver counts (the probe's run id, fresh
/// for each `gen` run): the one given, or the first one seen. Probes of
/// any other run (late packets of an earlier run still queued in the
/// path, or a second generator) are counted apart, not as this run's
/// loss, reordering or latency. Shared by the receiver's workers.
#[derive(Debug)]
pub struct RunFilter(AtomicU32);

/// [`RunFilter`]'s "none seen yet" (run ids are 16 bits).
const ANY_RUN: u32 = u32::MAX;

impl RunFilter {
    pub fn new(run: Option<u16>) -> RunFilter {
        RunFilter(AtomicU32::new(run.map_or(ANY_RUN, u32::from)))
    }

    /// The run counted, once known.
    pub fn run(&self) -> Option<u16> {
        u16::try_from(self.0.load(Ordering::Relaxed)).ok()
    }

    #[inline]
    fn admits(&self, run: u16) -> bool {
        let run = u32::from(run);
        match self.0.load(Ordering::Relaxed) {
            r if r == run => true,
            ANY_RUN => {
                match self
                    .0
                    .compare_exchange(ANY_RUN, run, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => true,
                    Err(now) => now == run,
                }
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct FlowTrack {
    next: u64,
    received: u64,
    reordered: u64,
}

pub struct Tally {
    flows: Vec<FlowTrack>,
    pub packets: u64,
    pub bytes: u64,
    pub probes: u64,
    pub other: u64,
    /// Σ next over flows, kept up to date for the live progress line.
    pub expected: u64,
    pub reordered: u64,
    /// Probes of another generator run than the one counted.
    pub other_runs: u64,
    runs: Arc<RunFilter>,
    /// Probes stamped after they arrived (different clocks): not in the
    /// latency histogram.
    pub future_stamps: u64,
    pub esp: u64,
    spis: [(u32, u64); SPI_SLOTS],
    pub other_spis: u64,
    pub latency_ns: Histogram<u64>,
    pub first_ns: Option<u64>,
    pub last_ns: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// A tally of the first run it sees.
    pub fn new() -> Tally {
        Tally::of_runs(Arc::new(RunFilter::new(None)))
    }

    /// A tally of the run `runs` admits.
    pub fn of_runs(runs: Arc<RunFilter>) -> Tally {
        Tally {
            flows: vec![FlowTrack::default(); FLOW_SLOTS],
            packets: 0,
            bytes: 0,
            probes: 0,
            other: 0,
            expected: 0,
            reordered: 0,
            other_runs: 0,
            runs,
            future_stamps: 0,
            esp: 0,
            spis: [(0, 0); SPI_SLOTS],
            other_spis: 0,
            // 1 ns to 60 s at 3 significant digits: fixed size, no
            // allocation while recording.
            latency_ns: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .expect("constant histogram bounds are valid"),
            first_ns: None,
            last_ns: 0,
        }
    }

    /// Accounts one received frame of `len` bytes at `now_ns`.
    #[inline]
    pub fn record(&mut self, what: Received, len: usize, now_ns: u64) {
        self.packets += 1;
        self.bytes += len as u64;
        if self.first_ns.is_none() {
            self.first_ns = Some(now_ns);
        }
        self.last_ns = self.last_ns.max(now_ns);
        match what {
            Received::Probe(p) => self.probe(p, now_ns),
            Received::Esp { spi } => self.esp(spi),
            Received::Other => self.other += 1,
        }
    }

    fn probe(&mut self, p: Probe, now_ns: u64) {
        if !self.runs.admits(p.run) {
            self.other_runs += 1;
            return;
        }
        // Flow ids are 16 bits: every one has its slot.
        let Some(f) = self.flows.get_mut(p.flow as usize) else {
            self.other += 1;
            return;
        };
        if p.seq.saturating_sub(f.next) > MAX_SEQ_JUMP {
            // Not a packet of this run (a stray or corrupted frame that
            // happens to carry the magic): it would count as billions lost.
            self.other += 1;
            return;
        }
        self.probes += 1;
        f.received += 1;
        if p.seq >= f.next {
            let next = p.seq.saturating_add(1);
            self.expected = self.expected.saturating_add(next - f.next);
            f.next = next;
        } else {
            f.reordered += 1;
            self.reordered += 1;
        }
        match now_ns.checked_sub(p.tx_ns) {
            Some(l) => {
                let _ = self.latency_ns.record(l.clamp(1, MAX_LATENCY_NS));
            }
            None => self.future_stamps += 1,
        }
    }

    fn esp(&mut self, spi: u32) {
        self.add_spi(spi, 1);
    }

    fn add_spi(&mut self, spi: u32, n: u64) {
        self.esp += n;
        for slot in self.spis.iter_mut() {
            if slot.1 == 0 {
                *slot = (spi, n);
                return;
            }
            if slot.0 == spi {
                slot.1 += n;
                return;
            }
        }
        self.other_spis += n;
    }

    /// Probes missing below the highest sequence number seen, per flow.
    pub fn lost(&self) -> u64 {
        self.flows
            .iter()
            .map(|f| f.next.saturating_sub(f.received))
            .sum()
    }

    pub fn flows_seen(&self) -> usize {
        self.flows.iter().filter(|f| f.received > 0).count()
    }

    /// ESP packets per SPI, in order of first arrival.
    pub fn spis(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.spis.iter().copied().filter(|s| s.1 > 0)
    }

    /// Adds another worker's tally. A flow seen by two workers (two rx
    /// queues) keeps the highest `next`; reordering across queues is not
    /// seen.
    pub fn merge(&mut self, o: &Tally) {
        for (a, b) in self.flows.iter_mut().zip(&o.flows) {
            a.next = a.next.max(b.next);
            a.received += b.received;
            a.reordered += b.reordered;
        }
        self.expected = self.flows.iter().map(|f| f.next).sum();
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.probes += o.probes;
        self.other += o.other;
        self.reordered += o.reordered;
        self.other_runs += o.other_runs;
        self.future_stamps += o.future_stamps;
        for (spi, n) in o.spis() {
            self.add_spi(spi, n);
        }
        self.other_spis += o.other_spis;
        self.esp += o.other_spis;
        let _ = self.latency_ns.add(&o.latency_ns);
        self.first_ns = match (self.first_ns, o.first_ns) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_ns = self.last_ns.max(o.last_ns);
    }
}

/// Latency percentiles in microseconds (read back by `report` from the
/// sink's JSON).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub samples: u64,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Option<Latency> {
        if h.is_empty() {
            return None;
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Some(Latency {
            samples: h.len(),
            min: us(h.min()),
            mean: h.mean() / 1000.0,
            p50: us(h.value_at_quantile(0.5)),
            p90: us(h.value_at_quantile(0.9)),
            p99: us(h.value_at_quantile(0.99)),
            p99_9: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(flow: u32, seq: u64, tx_ns: u64) -> Received {
        Received::Probe(Probe {
            run: 7,
            flow,
            seq,
            tx_ns,
        })
    }

    #[test]
    fn probes_of_another_run_are_set_apart_not_counted_as_this_ones() {
        // The first run seen is counted; a late packet of an earlier run
        // (its sequence numbers far ahead or behind) changes nothing.
        let late = |seq| {
            Received::Probe(Probe {
                run: 6,
                flow: 0,
                seq,
                tx_ns: 0,
            })
        };
        let mut t = Tally::new();
        t.record(probe(0, 0, 0), 64, 10);
        t.record(late(5_000), 64, 10);
        t.record(probe(0, 1, 0), 64, 10);
        t.record(late(0), 64, 10);
        assert_eq!(
            (t.probes, t.lost(), t.reordered, t.other_runs),
            (2, 0, 0, 2)
        );
        assert_eq!(t.latency_ns.len(), 2);
        // A run given up front: even the first packet seen must match,
        // and every worker's tally follows the one filter.
        let runs = Arc::new(RunFilter::new(Some(7)));
        let (mut a, mut b) = (Tally::of_runs(runs.clone()), Tally::of_runs(runs));
        a.record(late(0), 64, 10);
        b.record(probe(0, 0, 0), 64, 10);
        a.record(probe(0, 1, 0), 64, 10);
        a.merge(&b);
        assert_eq!((a.probes, a.lost(), a.other_runs), (2, 0, 1));
        // Without one, two workers agree on the first run either saw.
        let runs = Arc::new(RunFilter::new(None));
        let (mut a, mut b) = (Tally::of_runs(runs.clone()), Tally::of_runs(runs.clone()));
        b.record(late(0), 64, 10);
        a.record(probe(0, 0, 0), 64, 10);
        assert_eq!((a.probes, a.other_runs, b.probes), (0, 1, 1));
        assert_eq!(runs.run(), Some(6));
    }

    #[test]
    fn in_order_delivery_has_no_loss_and_no_reordering() {
        let mut t = Tally::new();
        for seq in 0..100 {
            for flow in 0..3 {
                t.record(probe(flow, seq, 1_000), 100, 2_000);
            }
        }
        assert_eq!(
            (t.probes, t.lost(), t.reordered, t.flows_seen()),
            (300, 0, 0, 3)
        );
        assert_eq!(t.expected, 300);
        assert_eq!(t.bytes, 30_000);
    }

    #[test]
    fn a_stray_probe_with_a_huge_sequence_number_is_not_counted_as_loss() {
        let mut t = Tally::new();
        t.record(probe(7, 0, 0), 64, 10);
        t.record(probe(7, u64::MAX - 1, 0), 64, 10);
        t.record(probe(7, u64::MAX, 0), 64, 10);
        t.record(probe(7, 1, 0), 64, 10);
        assert_eq!((t.probes, t.lost(), t.reordered, t.other), (2, 0, 0, 2));
        assert_eq!(t.expected, 2);
    }

    #[test]
    fn gaps_are_loss_until_the_late_packet_arrives_then_reordering() {
        let mut t = Tally::new();
        for seq in [0, 1, 4, 5] {
            t.record(probe(7, seq, 0), 64, 10);
        }
        assert_eq!(t.lost(), 2);
        assert_eq!(t.expected - t.probes, 2, "live loss agrees");
        t.record(probe(7, 2, 0), 64, 10);
        assert_eq!((t.lost(), t.reordered), (1, 1));
        // A duplicate of the highest: reordered, and it hides one loss
        // (a receiver without per-packet state cannot tell them apart).
        t.record(probe(7, 5, 0), 64, 10);
        assert_eq!((t.lost(), t.reordered), (0, 2));
        // Another flow's gap is its own.
        t.record(probe(8, 9, 0), 64, 10);
        assert_eq!(t.lost(), 9);
    }

    #[test]
    fn latency_is_receive_minus_transmit_time_and_future_stamps_are_set_aside() {
        let mut t = Tally::new();
        for i in 0..1000u64 {
            t.record(probe(0, i, 1_000_000), 64, 1_000_000 + 10_000 + i * 10);
        }
        t.record(probe(0, 1000, 5_000), 64, 4_000);
        let l = Latency::of(&t.latency_ns).unwrap();
        assert_eq!(l.samples, 1000);
        assert!((l.min - 10.0).abs() < 0.02, "{l:?}");
        assert!((l.p50 - 15.0).abs() < 0.05, "{l:?}");
        assert!((l.max - 19.99).abs() < 0.05, "{l:?}");
        assert_eq!(t.future_stamps, 1);
        assert!(Latency::of(&Tally::new().latency_ns).is_none());
    }

    #[test]
    fn esp_is_counted_by_spi_and_other_traffic_apart() {
        let mut t = Tally::new();
        for spi in [0x1000, 0x1000, 0x2000] {
            t.record(Received::Esp { spi }, 120, 1);
        }
        for spi in 0..SPI_SLOTS as u32 + 3 {
            t.record(Received::Esp { spi: 0x9000 + spi }, 120, 1);
        }
        t.record(Received::Other, 60, 1);
        assert_eq!(t.esp, 3 + SPI_SLOTS as u64 + 3);
        let spis: Vec<_> = t.spis().take(2).collect();
        assert_eq!(spis, [(0x1000, 2), (0x2000, 1)]);
        assert_eq!(t.other_spis, 5);
        assert_eq!((t.other, t.packets, t.probes), (1, t.esp + 1, 0));
    }

    #[test]
    fn merged_tallies_add_up_and_keep_each_flows_highest_number() {
        let (mut a, mut b) = (Tally::new(), Tally::new());
        a.record(probe(1, 0, 0), 100, 50);
        a.record(probe(1, 3, 0), 100, 60);
        b.record(probe(1, 1, 0), 100, 40);
        b.record(probe(2, 0, 0), 100, 70);
        a.record(Received::Esp { spi: 5 }, 10, 55);
        b.record(Received::Esp { spi: 5 }, 10, 55);
        b.record(Received::Esp { spi: 6 }, 10, 55);
        a.merge(&b);
        assert_eq!((a.packets, a.probes, a.lost(), a.expected), (7, 4, 1, 5));
        assert_eq!(a.spis().collect::<Vec<_>>(), [(5, 2), (6, 1)]);
        assert_eq!(a.esp, 3);
        assert_eq!((a.first_ns, a.last_ns), (Some(40), 70));
        assert_eq!(a.latency_ns.len(), 4);
    }
}
