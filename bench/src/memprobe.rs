//! What one cache line from beyond the caches costs on this machine,
//! measured in the same run as the SA-scaling test, so that the report
//! can tell how much of 100 000 SAs' extra cost per packet is the
//! machine's memory rather than Espada: a packet whose SA is not in the
//! caches reads about fourteen lines of tables and keys, and the same
//! code costs very different amounts on a host whose L3 holds them all
//! and on one where each is a trip to DRAM.
//!
//! Two figures over a table far larger than any L3 here, lines taken in
//! a random order: the latency of one line when each address depends on
//! the line before (a pointer chase: nothing overlaps), and the cost per
//! line when [`IN_FLIGHT`] independent lines are asked for together
//! with the pipeline's own prefetch, then read, as its passes over a
//! batch do (the misses overlap as far as the core allows).

use std::time::{Duration, Instant};

use dataplane::prefetch::prefetch_bytes;
use serde::{Deserialize, Serialize};

/// Lines asked for together, as the pipeline's passes ask for a batch's
/// (the bench's batch is 32 frames).
pub const IN_FLIGHT: usize = 32;

/// The table: larger than the caches of any machine this runs on, as the
/// tables and key schedules of 100 000 SAs (~150 MB) are.
pub const TABLE_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MemoryCost {
    /// Size of the table the lines were read from, MiB.
    pub table_mib: usize,
    /// One line when nothing overlaps it, ns.
    pub latency_ns: f64,
    /// Each line when [`IN_FLIGHT`] are asked for together, ns.
    pub line_ns: f64,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line {
    next: u64,
    _rest: [u64; 7],
}

/// A SplitMix64 step: the probe's addresses, reproducible run to run.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Measures over a table of `bytes` (at least [`IN_FLIGHT`] lines), each
/// figure for about half of `budget`.
pub fn measure(bytes: usize, budget: Duration) -> MemoryCost {
    let lines = (bytes / 64).max(IN_FLIGHT);
    let mut table = vec![
        Line {
            next: 0,
            _rest: [0; 7],
        };
        lines
    ];
    // One cycle through every line in a random order (Sattolo's shuffle):
    // the chase never settles into a part of the table the caches hold.
    let mut order: Vec<u64> = (0..lines as u64).collect();
    let mut rng = 0x5EED_u64;
    for i in (1..lines).rev() {
        let j = (splitmix(&mut rng) % i as u64) as usize;
        order.swap(i, j);
    }
    for (k, &at) in order.iter().enumerate() {
        table[at as usize].next = order[(k + 1) % lines];
    }
    drop(order);
    // Random line indexes for the overlapped figure, read in order (a
    // stream the hardware prefetcher follows, not a miss per index).
    let picks: Vec<u32> = (0..1 << 20)
        .map(|_| (splitmix(&mut rng) % lines as u64) as u32)
        .collect();
    let half = budget / 2;

    let (mut at, mut steps) = (0u64, 0u64);
    let t0 = Instant::now();
    while t0.elapsed() < half {
        for _ in 0..4096 {
            at = table[at as usize].next;
        }
        steps += 4096;
    }
    let latency_ns = t0.elapsed().as_nanos() as f64 / steps as f64;
    std::hint::black_box(at);

    let (mut sum, mut read) = (0u64, 0u64);
    let t0 = Instant::now();
    while t0.elapsed() < half {
        for group in picks.chunks_exact(IN_FLIGHT) {
            for &i in group {
                prefetch_bytes((&table[i as usize] as *const Line).cast(), 1);
            }
            for &i in group {
                sum = sum.wrapping_add(table[i as usize].next);
            }
        }
        read += (picks.len() / IN_FLIGHT * IN_FLIGHT) as u64;
    }
    let line_ns = t0.elapsed().as_nanos() as f64 / read as f64;
    std::hint::black_box(sum);

    MemoryCost {
        table_mib: (lines * 64) >> 20,
        latency_ns,
        line_ns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_beyond_the_caches_cost_more_than_lines_inside_them() {
        // 16 KiB stays in L1 everywhere; 256 MiB is beyond any L3 here.
        let small = measure(16 << 10, Duration::from_millis(100));
        let large = measure(TABLE_BYTES, Duration::from_millis(400));
        assert_eq!(large.table_mib, 256);
        assert!(small.latency_ns > 0.0 && small.line_ns > 0.0);
        assert!(
            large.latency_ns > 3.0 * small.latency_ns,
            "{small:?} {large:?}"
        );
        // Asked for together, lines overlap: each costs less than alone.
        assert!(large.line_ns < large.latency_ns, "{large:?}");
    }
}
