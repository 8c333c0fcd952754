//! How often the neighbour resolution trigger may fire. A flood of
//! packets to an unresolved host must cost one request to the kernel per
//! interval, not one per packet: the kernel retries ARP/ND on its own
//! timers once asked, and every extra request is a netlink round trip on
//! the management thread.
//!
//! Each worker keeps one limiter (no locks, no allocation after
//! construction) and forwards to the management thread only the misses
//! it allows; the management thread may keep another so that N workers
//! missing on the same address ask once, not N times.

use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Slot {
    ifindex: u32,
    addr: IpAddr,
    at: Instant,
}

/// Allows one resolution per (interface, address) per interval, and at
/// most `per_interval` in all per interval (the bound when many addresses
/// miss at once, e.g. a scan, or when addresses collide in the table).
#[derive(Debug, Clone)]
pub struct ResolveLimiter {
    slots: Box<[Option<Slot>]>,
    interval: Duration,
    per_interval: u32,
    window: Option<Instant>,
    used: u32,
}

impl Default for ResolveLimiter {
    /// 1024 remembered addresses, once per second each, 256 per second in
    /// all.
    fn default() -> ResolveLimiter {
        ResolveLimiter::new(1024, Duration::from_secs(1), 256)
    }
}

impl ResolveLimiter {
    /// `slots` addresses remembered (at least one).
    pub fn new(slots: usize, interval: Duration, per_interval: u32) -> ResolveLimiter {
        ResolveLimiter {
            slots: vec![None; slots.max(1)].into_boxed_slice(),
            interval,
            per_interval,
            window: None,
            used: 0,
        }
    }

    fn index(&self, ifindex: u32, addr: &IpAddr) -> usize {
        // FNV-1a: cheap and good enough to spread addresses over slots.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        ifindex.to_ne_bytes().into_iter().for_each(&mut eat);
        match addr {
            IpAddr::V4(a) => a.octets().into_iter().for_each(&mut eat),
            IpAddr::V6(a) => a.octets().into_iter().for_each(&mut eat),
        }
        (h % self.slots.len() as u64) as usize
    }

    /// Whether to ask the kernel to resolve `addr` on `ifindex` now; a
    /// true answer counts as asked.
    pub fn allow(&mut self, ifindex: u32, addr: IpAddr, now: Instant) -> bool {
        let i = self.index(ifindex, &addr);
        if let Some(s) = self.slots[i] {
            if s.ifindex == ifindex
                && s.addr == addr
                && now.saturating_duration_since(s.at) < self.interval
            {
                return false;
            }
        }
        match self.window {
            Some(w) if now.saturating_duration_since(w) < self.interval => {
                if self.used >= self.per_interval {
                    return false;
                }
            }
            _ => {
                self.window = Some(now);
                self.used = 0;
            }
        }
        self.used += 1;
        self.slots[i] = Some(Slot {
            ifindex,
            addr,
            at: now,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_flood_to_one_address_asks_once_per_interval() {
        let mut l = ResolveLimiter::default();
        let t0 = Instant::now();
        let allowed = (0..10_000)
            .filter(|i| l.allow(2, a("198.18.0.9"), t0 + Duration::from_micros(*i)))
            .count();
        assert_eq!(allowed, 1);
        assert!(!l.allow(2, a("198.18.0.9"), t0 + Duration::from_millis(999)));
        assert!(l.allow(2, a("198.18.0.9"), t0 + Duration::from_millis(1000)));
    }

    #[test]
    fn other_addresses_and_interfaces_are_limited_apart() {
        let mut l = ResolveLimiter::default();
        let t0 = Instant::now();
        assert!(l.allow(2, a("198.18.0.9"), t0));
        assert!(l.allow(3, a("198.18.0.9"), t0));
        assert!(l.allow(2, a("198.18.0.10"), t0));
        assert!(l.allow(2, a("fd00::9"), t0));
        assert!(!l.allow(2, a("fd00::9"), t0));
    }

    #[test]
    fn a_scan_of_many_addresses_is_bounded_by_the_total_budget() {
        let mut l = ResolveLimiter::new(64, Duration::from_secs(1), 10);
        let t0 = Instant::now();
        let allowed = (0..1000u32)
            .filter(|i| l.allow(2, IpAddr::V4((0xc612_0000 + i).into()), t0))
            .count();
        assert_eq!(allowed, 10);
        let later = t0 + Duration::from_secs(1);
        let allowed = (1000..2000u32)
            .filter(|i| l.allow(2, IpAddr::V4((0xc612_0000 + i).into()), later))
            .count();
        assert_eq!(allowed, 10);
    }
}
