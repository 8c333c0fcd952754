//! The responder's half-open IKE SAs (answered IKE_SA_INIT, no IKE_AUTH
//! yet) and the cookies that guard them (RFC 7296 §2.6).
//!
//! Each half-open SA costs a Diffie-Hellman computation and a slot of a
//! bounded table, before the peer has proven anything. Three limits keep
//! a flood from shutting real peers out:
//! - above `crypto ikev2 cookie-challenge` half-open SAs, an IKE_SA_INIT
//!   must return a cookie, so only a sender that receives at its address
//!   gets further;
//! - such a sender (one address) holds at most [`PER_ADDRESS_LIMIT`] of
//!   them; spoofed senders, which never return a cookie, count for no
//!   address, so they cannot use up a real peer's share;
//! - at [`HALF_OPEN_LIMIT`](super::HALF_OPEN_LIMIT) the oldest half-open
//!   SA makes room for the new one, as the IKEv1 engine does: a real peer
//!   answers within a round trip, a flood's SAs wait out their 30 s.
//!
//! The cookie secret changes every [`COOKIE_ROTATION`] (the previous one
//! is still accepted), so cookies collected once do not open SAs forever.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use crate::ike::crypto::Prf;

use super::random;

/// Half-open SAs one address may hold once cookies are demanded.
/// A site-to-site peer has one at a time; several gateways behind one
/// NAT (a dynamic entry's spokes) may have a few.
pub(super) const PER_ADDRESS_LIMIT: usize = 16;
/// How long a cookie secret is used; cookies of the one before stay
/// valid as long again.
pub(super) const COOKIE_ROTATION: Duration = Duration::from_secs(120);

/// Counts and ages the half-open SAs; makes and checks cookies.
pub(super) struct HalfOpen {
    count: usize,
    /// Per peer address, its half-open SAs admitted with a valid cookie.
    cookied: HashMap<IpAddr, usize>,
    /// Our SPIs in the order the SAs were admitted. Entries of SAs that
    /// are no longer half-open are skipped when met, and swept when they
    /// outnumber the rest.
    order: VecDeque<[u8; 8]>,
    secret: [u8; 32],
    /// The generation and secret before, accepted one rotation more.
    previous: Option<(u8, [u8; 32])>,
    /// The first octet of every cookie: which secret made it.
    generation: u8,
    rotated_at: Option<Instant>,
}

impl Default for HalfOpen {
    fn default() -> HalfOpen {
        HalfOpen {
            count: 0,
            cookied: HashMap::new(),
            order: VecDeque::new(),
            secret: random(),
            previous: None,
            generation: 1,
            rotated_at: None,
        }
    }
}

fn ip_octets(a: SocketAddr) -> Vec<u8> {
    match a.ip() {
        IpAddr::V4(x) => x.octets().to_vec(),
        IpAddr::V6(x) => x.octets().to_vec(),
    }
}

/// Cookie = generation | HMAC-SHA256(secret, Ni | IPi | SPIi) (§2.6).
fn make(
    generation: u8,
    secret: &[u8; 32],
    ni: &[u8],
    remote: SocketAddr,
    spi_i: &[u8; 8],
) -> Vec<u8> {
    let mut c = vec![generation];
    c.extend_from_slice(&Prf::HmacSha256.prf_parts(secret, &[ni, &ip_octets(remote), spi_i]));
    c
}

impl HalfOpen {
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// Half-open SAs that `ip` holds by returning cookies.
    pub(super) fn cookied_from(&self, ip: IpAddr) -> usize {
        self.cookied.get(&ip).copied().unwrap_or(0)
    }

    /// The cookie to demand from `remote` now.
    pub(super) fn cookie(
        &mut self,
        now: Instant,
        ni: &[u8],
        remote: SocketAddr,
        spi_i: &[u8; 8],
    ) -> Vec<u8> {
        self.rotate(now);
        make(self.generation, &self.secret, ni, remote, spi_i)
    }

    /// Whether `got` is a cookie we made for this request, with the
    /// current secret or the one before.
    pub(super) fn cookie_valid(
        &mut self,
        now: Instant,
        got: &[u8],
        ni: &[u8],
        remote: SocketAddr,
        spi_i: &[u8; 8],
    ) -> bool {
        self.rotate(now);
        let secret = match got.first() {
            Some(&g) if g == self.generation => Some(&self.secret),
            Some(&g) => self.previous.as_ref().filter(|p| p.0 == g).map(|p| &p.1),
            None => None,
        };
        secret.is_some_and(|s| {
            let want = make(got[0], s, ni, remote, spi_i);
            bool::from(want.ct_eq(got))
        })
    }

    /// Rotated when a cookie is made or checked: after a long quiet
    /// spell the secret before is older than two rotations and goes too.
    fn rotate(&mut self, now: Instant) {
        let at = *self.rotated_at.get_or_insert(now);
        let age = now.saturating_duration_since(at);
        if age >= COOKIE_ROTATION {
            let old = std::mem::replace(&mut self.secret, random());
            self.previous = (age < 2 * COOKIE_ROTATION).then_some((self.generation, old));
            // Never 0, so that no generation is confused with "none".
            self.generation = self.generation.wrapping_add(1).max(1);
            self.rotated_at = Some(now);
        }
    }

    /// SA `k` from `ip` is half-open now; `cookied`: it returned a cookie.
    /// `still_half_open` tells the sweep which entries are live.
    pub(super) fn admitted(
        &mut self,
        k: [u8; 8],
        ip: IpAddr,
        cookied: bool,
        still_half_open: impl Fn(&[u8; 8]) -> bool,
    ) {
        self.count += 1;
        if cookied {
            *self.cookied.entry(ip).or_default() += 1;
        }
        self.order.push_back(k);
        if self.order.len() > 2 * self.count.max(64) {
            self.order.retain(|k| still_half_open(k));
        }
    }

    /// A half-open SA from `ip` authenticated or went.
    pub(super) fn left(&mut self, ip: IpAddr, cookied: bool) {
        self.count -= 1;
        if cookied {
            if let Some(n) = self.cookied.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.cookied.remove(&ip);
                }
            }
        }
    }

    /// The oldest SA still half-open, taken off the order (the caller
    /// removes it).
    pub(super) fn oldest(&mut self, still_half_open: impl Fn(&[u8; 8]) -> bool) -> Option<[u8; 8]> {
        while let Some(k) = self.order.pop_front() {
            if still_half_open(&k) {
                return Some(k);
            }
        }
        None
    }

    /// The sweep's bound holds (tests).
    #[cfg(test)]
    pub(super) fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_last_two_rotations_and_name_their_request() {
        let mut h = HalfOpen::default();
        let t0 = Instant::now();
        let from: SocketAddr = "198.18.0.9:500".parse().unwrap();
        let (ni, spi) = ([7u8; 32], [1u8; 8]);
        let c = h.cookie(t0, &ni, from, &spi);
        assert!(h.cookie_valid(t0, &c, &ni, from, &spi));
        assert!(
            !h.cookie_valid(t0, &c, &[8u8; 32], from, &spi),
            "another nonce"
        );
        assert!(
            !h.cookie_valid(t0, &c, &ni, "198.18.0.8:500".parse().unwrap(), &spi),
            "another address"
        );
        assert!(!h.cookie_valid(t0, &c, &ni, from, &[2u8; 8]), "another SPI");
        assert!(
            !h.cookie_valid(t0, &c[..c.len() - 1], &ni, from, &spi),
            "cut"
        );
        assert!(!h.cookie_valid(t0, &[], &ni, from, &spi));
        let t1 = t0 + COOKIE_ROTATION;
        assert!(h.cookie_valid(t1, &c, &ni, from, &spi), "the secret before");
        let c1 = h.cookie(t1, &ni, from, &spi);
        assert_ne!(c1, c);
        let t2 = t1 + COOKIE_ROTATION;
        assert!(
            !h.cookie_valid(t2, &c, &ni, from, &spi),
            "two rotations old"
        );
        assert!(h.cookie_valid(t2, &c1, &ni, from, &spi));
        // After a long quiet spell the secret before goes too.
        let c2 = h.cookie(t2, &ni, from, &spi);
        let t3 = t2 + 3 * COOKIE_ROTATION;
        assert!(!h.cookie_valid(t3, &c2, &ni, from, &spi), "hours old");
        // Across the generation's wrap (255 -> 1) the one before holds.
        let mut t = t3;
        for _ in 0..300 {
            let before = h.cookie(t, &ni, from, &spi);
            t += COOKIE_ROTATION;
            assert!(
                h.cookie_valid(t, &before, &ni, from, &spi),
                "generation {}",
                before[0]
            );
        }
    }

    #[test]
    fn the_order_stays_bounded_when_sas_leave_by_authenticating() {
        let mut h = HalfOpen::default();
        let ip: IpAddr = "198.18.0.9".parse().unwrap();
        for i in 0..10_000u64 {
            h.admitted(i.to_be_bytes(), ip, true, |_| false);
            h.left(ip, true);
        }
        assert_eq!(h.count(), 0);
        assert_eq!(h.cookied_from(ip), 0);
        assert!(h.order_len() <= 129, "{}", h.order_len());
        assert_eq!(h.oldest(|_| false), None);
    }
}
