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
