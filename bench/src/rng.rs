//! xorshift64*: the benchmarks' random numbers (addresses, SPIs, the
//! order traffic visits its SAs, the memory probe's lines). Fast, fixed
//! seeds where a run must be repeatable, and no dependency.

/// The generator's state; any value but 0.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// Seeded from the kernel (the time if that fails): for traffic that
    /// must differ run to run, such as a flood's spoofed sources.
    pub(crate) fn seeded() -> Rng {
        let mut b = [0u8; 8];
        // SAFETY: `b` is 8 writable bytes.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        let seed = if n == 8 {
            u64::from_ne_bytes(b)
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
        };
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fisher-Yates: every order of `v` equally likely.
    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}
