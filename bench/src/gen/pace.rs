//! Rate control: a token bucket on the monotonic clock. Credit accrues at
//! the target rate and is spent a batch at a time; it is capped at one
//! burst, so a worker that fell behind (descheduled, ring full) catches up
//! by at most one burst instead of flooding. Pure arithmetic on the times
//! it is given, so it is tested without a clock.

/// The burst a worker sending `rate` packets a second in batches of
/// `batch` may catch up by: two batches, or 5 ms of traffic if more. A
/// worker sleeps between batches, and on a busy machine a sleep overruns
/// by a millisecond or more: with only two batches of credit (1.28 ms at
/// 100 kpps) every overrun was rate lost for good, 3-11% of a run.
pub fn burst(rate: u64, batch: usize) -> u64 {
    (batch as u64 * 2).max(rate / 200)
}

const NS: u128 = 1_000_000_000;

pub struct Pacer {
    /// Packets per second; 0 = no limit.
    rate: u64,
    /// Most packets that may be sent back to back.
    burst: u64,
    /// Credit in packet-nanoseconds (packets × 10⁹), so no rounding is
    /// lost between calls.
    credit: u128,
    last_ns: u64,
}

impl Pacer {
    pub fn new(rate: u64, burst: u64, now_ns: u64) -> Pacer {
        Pacer {
            rate,
            burst: burst.max(1),
            credit: 0,
            last_ns: now_ns,
        }
    }

    fn refill(&mut self, now_ns: u64) {
        let elapsed = u128::from(now_ns.saturating_sub(self.last_ns));
        self.last_ns = self.last_ns.max(now_ns);
        let cap = u128::from(self.burst) * NS;
        self.credit = (self.credit + elapsed * u128::from(self.rate)).min(cap);
    }

    /// Takes up to `want` packets' worth of credit at `now_ns`; returns how
    /// many may be sent now.
    pub fn take(&mut self, now_ns: u64, want: u64) -> u64 {
        if self.rate == 0 {
            return want;
        }
        self.refill(now_ns);
        let n = (self.credit / NS).min(u128::from(want)) as u64;
        self.credit -= u128::from(n) * NS;
        n
    }

    /// Nanoseconds from the last call until `want` packets are allowed.
    pub fn wait_ns(&self, want: u64) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        let need = u128::from(want.min(self.burst)) * NS;
        if self.credit >= need {
            return 0;
        }
        let ns = (need - self.credit).div_ceil(u128::from(self.rate));
        ns.min(u128::from(u64::MAX)) as u64
    }
}

/// Whether `pps` frames a second of `mean_l2_len` bytes (Ethernet header
/// and IP packet) fit a link of `speed_mbps`, counting the 24 bytes per
/// frame the wire adds (FCS, preamble, gap). `None`: the speed is unknown
/// (virtual devices), nothing to check.
pub fn check_link_rate(pps: u64, mean_l2_len: f64, speed_mbps: Option<u64>) -> Result<(), String> {
    let Some(speed) = speed_mbps.filter(|&s| s > 0) else {
        return Ok(());
    };
    let per_frame_bits = (mean_l2_len + super::frame::WIRE_OVERHEAD as f64) * 8.0;
    let max_pps = (speed as f64 * 1e6 / per_frame_bits).floor() as u64;
    if pps > max_pps {
        return Err(format!(
            "--rate {pps} pps at {mean_l2_len:.0}-byte frames needs {:.2} Gbit/s on the wire, the link does {:.2}: give --rate {max_pps} or less, or --rate max",
            pps as f64 * per_frame_bits / 1e9,
            speed as f64 / 1e3
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulated worker: every `step` ns it sends batches of 64 until
    /// the credit runs out, for `total` ns.
    fn run(rate: u64, burst: u64, step: u64, total: u64) -> u64 {
        let mut p = Pacer::new(rate, burst, 0);
        let mut sent = 0;
        let mut t = 0;
        while t <= total {
            loop {
                let n = p.take(t, 64);
                if n == 0 {
                    break;
                }
                sent += n;
            }
            t += step;
        }
        sent
    }

    #[test]
    fn over_a_second_the_rate_is_what_was_asked_whatever_the_polling_step() {
        for rate in [1_000, 100_000, 1_000_000, 14_880_952] {
            for step in [1_000, 37_000, 250_000] {
                if step * rate / 1_000_000_000 > 1024 {
                    continue; // polled too rarely for the burst: below
                }
                let sent = run(rate, 1024, step, 1_000_000_000);
                // Never above the rate; below it by at most the part of a
                // step after the last poll.
                let slack = step * rate / 1_000_000_000 + 1;
                assert!(
                    sent <= rate && rate - sent <= slack,
                    "rate {rate} step {step}: {sent}"
                );
            }
        }
    }

    #[test]
    fn polling_slower_than_a_burst_loses_rate_rather_than_bursting() {
        // 1 Mpps polled every 10 ms with a 1000-packet burst: 1000 per poll.
        assert_eq!(run(1_000_000, 1_000, 10_000_000, 1_000_000_000), 100_000);
    }

    #[test]
    fn sleeps_that_overrun_by_milliseconds_keep_the_rate() {
        // A worker polled every 3 ms (its sleeps overran): with the burst
        // sized in time it still sends 100 kpps; with two batches it lost
        // over half.
        let b = burst(100_000, 64);
        assert_eq!(b, 500);
        let sent = run(100_000, b, 3_000_000, 1_000_000_000);
        assert!((99_700..=100_000).contains(&sent), "{sent}");
        assert!(run(100_000, 128, 3_000_000, 1_000_000_000) < 50_000);
        // Slow rates keep two batches.
        assert_eq!(burst(1_000, 64), 128);
    }

    #[test]
    fn credit_is_capped_at_one_burst_after_a_stall() {
        let mut p = Pacer::new(1_000_000, 128, 0);
        // Ten seconds without asking: at most one burst goes out at once.
        assert_eq!(p.take(10_000_000_000, 1_000), 128);
        assert_eq!(p.take(10_000_000_000, 1_000), 0);
        // 1 µs later at 1 Mpps: exactly one more.
        assert_eq!(p.take(10_000_001_000, 1_000), 1);
    }

    #[test]
    fn wait_says_how_long_until_a_batch_is_allowed() {
        let mut p = Pacer::new(1_000, 64, 0);
        assert_eq!(p.take(0, 64), 0);
        assert_eq!(p.wait_ns(64), 64_000_000);
        assert_eq!(p.take(32_000_000, 64), 32);
        assert_eq!(p.wait_ns(64), 64_000_000);
        let mut unlimited = Pacer::new(0, 64, 0);
        assert_eq!(unlimited.take(0, 64), 64);
        assert_eq!(unlimited.wait_ns(64), 0);
    }

    #[test]
    fn time_going_backwards_grants_nothing_extra() {
        let mut p = Pacer::new(1_000_000, 1_000, 5_000_000);
        assert_eq!(p.take(6_000_000, 10_000), 1_000);
        assert_eq!(p.take(1_000, 10_000), 0);
        assert_eq!(p.take(6_100_000, 10_000), 100);
    }

    #[test]
    fn a_rate_above_the_link_is_refused_with_the_most_it_can_do() {
        // 10 Gbit/s, 64-byte IP packets: 78-byte frames + 24 = 816 bits.
        assert!(check_link_rate(12_000_000, 78.0, Some(10_000)).is_ok());
        let e = check_link_rate(13_000_000, 78.0, Some(10_000)).unwrap_err();
        assert!(e.contains("give --rate 12254901 or less"), "{e}");
        // Unknown speed (veth reports none, or -1): nothing to check.
        assert!(check_link_rate(u64::MAX / 2, 1514.0, None).is_ok());
        assert!(check_link_rate(u64::MAX / 2, 1514.0, Some(0)).is_ok());
    }
}
