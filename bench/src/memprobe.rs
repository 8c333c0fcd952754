//! What one cache line from beyond the caches costs on this machine,
//! measured in the same run as the SA-scaling test, so that the report
//! can tell how much of 100 000 SAs' extra cost per packet is the
//! machine's memory rather than Espada: a packet whose SA is not in the
//! caches reads about fourteen lines of tables and keys, and the same
//! code costs very different amounts on a host whose L3 holds them all
//! and on one where each is a trip to DRAM.
//!
//! Two figures over a table larger than 100 000 SAs' tables and keys,
//! lines taken in a random order: the latency of one line when each
//! address depends on the line before (a pointer chase: nothing
//! overlaps), and the cost per line when [`IN_FLIGHT`] independent lines
//! are asked for together with the pipeline's own prefetch, then read, as
//! its passes over a batch do (the misses overlap as far as the core
//! allows). Both in thread CPU time, as `scale` counts a packet's cost.

use std::time::{Duration, Instant};

use dataplane::prefetch::prefetch_bytes;
use serde::{Deserialize, Serialize};

use crate::ike_bench::thread_cpu_ns;
use crate::rng::Rng;

/// Lines asked for together, as the pipeline's passes ask for a batch's
/// (the bench's batch is 32 frames).
pub const IN_FLIGHT: usize = 32;

/// The table: larger than the tables and key schedules of 100 000 SAs
/// (~150 MB), and than the L3 of most machines.
pub const TABLE_BYTES: usize = 256 << 20;

/// A line's cost from beyond the caches, as [`measure`] found it.
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
    next: u32,
    _rest: [u32; 15],
}

/// Measures over a table of `bytes` (at least [`IN_FLIGHT`] lines, at
/// most 2^32), each figure for about half of `budget` (building the
/// table comes on top: ~1 s for [`TABLE_BYTES`]).
pub fn measure(bytes: usize, budget: Duration) -> MemoryCost {
    let lines = (bytes / 64).clamp(IN_FLIGHT, u32::MAX as usize);
    let mut table = vec![
        Line {
            next: 0,
            _rest: [0; 15],
        };
        lines
    ];
    // Every line once, in a random order: the chase follows it as one
    // cycle, and the overlapped figure reads it in groups, so both cover
    // the whole table and neither settles into a part the caches hold.
    let mut order: Vec<u32> = (0..lines as u32).collect();
    Rng(0x5EED).shuffle(&mut order);
    for (k, &at) in order.iter().enumerate() {
        table[at as usize].next = order[(k + 1) % lines];
    }
    let half = budget / 2;

    let (mut at, mut steps) = (order[0], 0u64);
    let (t0, c0) = (Instant::now(), thread_cpu_ns());
    while t0.elapsed() < half {
        for _ in 0..4096 {
            at = table[at as usize].next;
        }
        steps += 4096;
    }
    let latency_ns = (thread_cpu_ns() - c0) as f64 / steps as f64;
    std::hint::black_box(at);

    let (mut sum, mut read) = (0u64, 0u64);
    let (t0, c0) = (Instant::now(), thread_cpu_ns());
    'timed: loop {
        for group in order.chunks_exact(IN_FLIGHT) {
            for &i in group {
                prefetch_bytes((&table[i as usize] as *const Line).cast(), 1);
            }
            for &i in group {
                sum = sum.wrapping_add(u64::from(table[i as usize].next));
            }
            read += IN_FLIGHT as u64;
            if read % (1 << 16) == 0 && t0.elapsed() >= half {
                break 'timed;
            }
        }
    }
    let line_ns = (thread_cpu_ns() - c0) as f64 / read as f64;
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
        // 16 KiB stays in L1 everywhere; 64 MiB is beyond every L2 (and
        // most L3s), which is enough to tell the two apart.
        let small = measure(16 << 10, Duration::from_millis(100));
        let large = measure(64 << 20, Duration::from_millis(400));
        assert_eq!((small.table_mib, large.table_mib), (0, 64));
        assert!(small.latency_ns > 0.0 && small.line_ns > 0.0);
        assert!(
            large.latency_ns > 3.0 * small.latency_ns,
            "{small:?} {large:?}"
        );
        // Asked for together, lines overlap: each costs less than alone.
        assert!(large.line_ns < large.latency_ns, "{large:?}");
    }
}
