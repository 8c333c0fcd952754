//! Cache prefetch hints for the per-batch passes that ask for a whole
//! batch's table entries (SPD slots and rules, SADB slots, SAs, key
//! schedules) before any packet uses them, so their misses overlap.
//! Public so that `espada-bench`'s memory probe prices a line with the
//! very hint the pipeline uses.

/// Asks the CPU to bring `len` bytes from `p` into its caches (capped at
/// 1 KiB, plus the first line's misalignment): a hint that reads nothing
/// and cannot fault.
#[inline(always)]
pub fn prefetch_bytes(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        // Every line the range touches, from the one holding its first byte.
        let skew = p as usize % 64;
        let first = p.wrapping_sub(skew);
        let mut off = 0;
        while off < (skew + len.min(1024)) {
            // SAFETY: PREFETCHT0 is a hint: it has no architectural effect,
            // never faults, whatever the address, and reads nothing Rust sees.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    first.wrapping_add(off).cast::<i8>(),
                )
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}
