//! The dataplane's coarse clock: whole seconds since the process started,
//! read by workers with one relaxed load (no syscall per packet) and
//! advanced by the management thread's tick. SA install times, last-use
//! times (DPD) and lifetimes are all on this clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();
static NOW_SECS: AtomicU64 = AtomicU64::new(0);

/// Seconds since start as of the last [`tick`].
#[inline]
pub fn now_secs() -> u64 {
    NOW_SECS.load(Ordering::Relaxed)
}

/// Milliseconds since start, read from the monotonic clock (a vDSO
/// call, no syscall): for the few per-packet decisions finer than a
/// second, such as the ICMP error budget, which only ask when they act.
pub fn now_ms() -> u64 {
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Advances the clock from the monotonic clock; returns the new value.
/// Called by the management thread a few times a second.
pub fn tick() -> u64 {
    let start = START.get_or_init(Instant::now);
    let now = start.elapsed().as_secs();
    NOW_SECS.fetch_max(now, Ordering::Relaxed);
    now_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_goes_backwards() {
        let a = tick();
        let b = tick();
        assert!(b >= a);
        assert!(now_secs() >= b);
    }
}
