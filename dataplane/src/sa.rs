//! The security association database (RFC 4301 §4.4.2).
//!
//! Inbound SAs are found by SPI in O(1) (a hash map with a multiplicative
//! hash: our inbound SPIs are chosen by us at random, so no adversary picks
//! the keys), and the destination address is checked on a hit as RFC 4301
//! §4.1 allows for unicast SAs. Outbound SAs are reached from SPD entries by
//! their SPI. What never changes (keys, SPIs, endpoints) is immutable and
//! shared through `Arc`; the sequence number, counters and replay window are
//! atomics so any worker can process any SA without a lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use thiserror::Error;

use crate::api::{Direction, EspMode, Lifetime, SaParams, UdpEncap};
use crate::counters::SaCounters;
use crate::crypto::{new_suite, CryptoError, EspSuite};
use crate::replay::{ReplayError, ReplayWindow};

/// Why an SA could not be installed.
#[derive(Debug, Error)]
pub enum SaError {
    #[error("SA 0x{spi:08x}: {source}")]
    Crypto { spi: u32, source: CryptoError },
    #[error("SA 0x{spi:08x}: replay window: {source}")]
    Replay { spi: u32, source: ReplayError },
    #[error("SPI 0x{0:08x} is reserved (RFC 4303 §2.1: 1-255)")]
    ReservedSpi(u32),
    #[error("SA 0x{0:08x} is {1:?}, installed in the wrong table")]
    WrongDirection(u32, Direction),
    #[error("inbound SPI 0x{0:08x} is already installed")]
    DuplicateSpi(u32),
}

/// Where an SA stands against its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeState {
    Fresh,
    /// Past the soft limit: the control plane should rekey.
    Soft,
    /// Past the hard limit: the SA must not carry traffic any more.
    Hard,
}

/// What the SA needs from its parameters at run time, common to both
/// directions.
struct SaCore {
    spi: u32,
    suite: Box<dyn EspSuite>,
    mode: EspMode,
    udp_encap: Option<UdpEncap>,
    esn: bool,
    lifetime: LifetimeLimits,
    installed_at: u64,
    counters: SaCounters,
}

/// [`Lifetime`] in atomics (`u64::MAX` = no limit), so the control process
/// can change an installed SA's limits (IOS responder-lifetime, a rekey
/// extending the old SA) while workers use it.
struct LifetimeLimits([AtomicU64; 4]);

impl LifetimeLimits {
    fn new(l: Lifetime) -> LifetimeLimits {
        let limits = LifetimeLimits(Default::default());
        limits.set(l);
        limits
    }

    fn set(&self, l: Lifetime) {
        let v = [
            l.soft_seconds,
            l.hard_seconds,
            l.soft_kilobytes,
            l.hard_kilobytes,
        ];
        for (slot, v) in self.0.iter().zip(v) {
            slot.store(v.unwrap_or(u64::MAX), Ordering::Relaxed);
        }
    }

    fn get(&self) -> Lifetime {
        let v = |i: usize| Some(self.0[i].load(Ordering::Relaxed)).filter(|&v| v != u64::MAX);
        Lifetime {
            soft_seconds: v(0),
            hard_seconds: v(1),
            soft_kilobytes: v(2),
            hard_kilobytes: v(3),
        }
    }
}

impl SaCore {
    fn new(params: &SaParams, now_secs: u64) -> Result<SaCore, SaError> {
        if params.spi < 256 {
            return Err(SaError::ReservedSpi(params.spi));
        }
        let suite = new_suite(
            params.enc,
            &params.keys.enc,
            params.auth,
            &params.keys.auth,
            params.esn,
        )
        .map_err(|source| SaError::Crypto {
            spi: params.spi,
            source,
        })?;
        Ok(SaCore {
            spi: params.spi,
            suite,
            mode: params.mode,
            udp_encap: params.udp_encap,
            esn: params.esn,
            lifetime: LifetimeLimits::new(params.lifetime),
            installed_at: now_secs,
            counters: SaCounters::default(),
        })
    }

    fn lifetime_state(&self, now_secs: u64) -> LifetimeState {
        let age = now_secs.saturating_sub(self.installed_at);
        let kb = SaCounters::read(&self.counters.bytes) / 1024;
        let past = |limit: Option<u64>, value: u64| limit.is_some_and(|l| value >= l);
        let lt = self.lifetime.get();
        if past(lt.hard_seconds, age) || past(lt.hard_kilobytes, kb) {
            LifetimeState::Hard
        } else if past(lt.soft_seconds, age) || past(lt.soft_kilobytes, kb) {
            LifetimeState::Soft
        } else {
            LifetimeState::Fresh
        }
    }
}

/// Asks the CPU to bring `len` bytes from `p` into its caches (capped at
/// 1 KiB): a hint that reads nothing and cannot fault.
#[inline(always)]
fn prefetch_bytes(p: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut off = 0;
        while off < len.min(1024) {
            // SAFETY: PREFETCHT0 is a hint: it has no architectural effect,
            // never faults, whatever the address, and reads nothing Rust sees.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    p.wrapping_add(off).cast::<i8>(),
                )
            };
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

impl SaCore {
    /// Prefetches the SA's suite (cipher and MAC key schedules).
    #[inline(always)]
    fn prefetch_suite(&self) {
        let suite: &dyn EspSuite = self.suite.as_ref();
        prefetch_bytes(
            (suite as *const dyn EspSuite).cast::<u8>(),
            std::mem::size_of_val(suite),
        );
    }
}

/// Accessors shared by both directions.
macro_rules! sa_accessors {
    () => {
        /// Brings the SA's own state into the cache ahead of use. With
        /// many SAs every one is a cache miss; the pipeline asks for a
        /// whole batch's SAs first ([`Self::prefetch_state`], then
        /// [`Self::prefetch_keys`] once the SA itself has arrived) so that
        /// the misses overlap instead of stalling each packet in turn.
        #[inline(always)]
        pub fn prefetch_state(&self) {
            prefetch_bytes(
                (self as *const Self).cast::<u8>(),
                std::mem::size_of::<Self>(),
            );
        }
        /// Brings the SA's suite (key schedules) into the cache; reads the
        /// SA to find it, so ask [`Self::prefetch_state`] first.
        #[inline(always)]
        pub fn prefetch_keys(&self) {
            self.core.prefetch_suite();
        }
        pub fn spi(&self) -> u32 {
            self.core.spi
        }
        pub fn suite(&self) -> &dyn EspSuite {
            self.core.suite.as_ref()
        }
        pub fn mode(&self) -> EspMode {
            self.core.mode
        }
        pub fn udp_encap(&self) -> Option<UdpEncap> {
            self.core.udp_encap
        }
        pub fn esn(&self) -> bool {
            self.core.esn
        }
        pub fn counters(&self) -> &SaCounters {
            &self.core.counters
        }
        /// Checked by the management thread once a tick, not per packet.
        pub fn lifetime_state(&self, now_secs: u64) -> LifetimeState {
            self.core.lifetime_state(now_secs)
        }
        pub fn lifetime(&self) -> Lifetime {
            self.core.lifetime.get()
        }
        /// New limits, counted from the original install time.
        pub fn set_lifetime(&self, lifetime: Lifetime) {
            self.core.lifetime.set(lifetime)
        }
        /// Dataplane-clock second the SA was installed.
        pub fn installed_at(&self) -> u64 {
            self.core.installed_at
        }
    };
}

/// An SA this gateway encrypts with.
pub struct OutboundSa {
    core: SaCore,
    /// Last sequence number used; the next packet takes `seq + 1`.
    seq: AtomicU64,
}

impl OutboundSa {
    pub fn new(params: &SaParams, now_secs: u64) -> Result<OutboundSa, SaError> {
        if params.direction != Direction::Outbound {
            return Err(SaError::WrongDirection(params.spi, params.direction));
        }
        Ok(OutboundSa {
            core: SaCore::new(params, now_secs)?,
            seq: AtomicU64::new(0),
        })
    }

    sa_accessors!();

    /// Takes the next sequence number, or `None` when the space is spent:
    /// RFC 4303 §3.3.3 forbids cycling, the SA must be rekeyed instead.
    pub fn next_seq(&self) -> Option<u64> {
        let limit = if self.core.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let seq = self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        (seq != 0 && seq <= limit).then_some(seq)
    }

    /// Lets tests and benchmarks start near a wrap-around.
    pub fn set_last_seq(&self, seq: u64) {
        self.seq.store(seq, Ordering::Relaxed);
    }
}

/// An SA this gateway decrypts with.
pub struct InboundSa {
    core: SaCore,
    /// `None` when the SA was installed with a window of 0 (no replay check,
    /// RFC 4303 §3.4.3 lets the receiver disable it).
    replay: Option<ReplayWindow>,
}

impl InboundSa {
    pub fn new(params: &SaParams, now_secs: u64) -> Result<InboundSa, SaError> {
        if params.direction != Direction::Inbound {
            return Err(SaError::WrongDirection(params.spi, params.direction));
        }
        let replay = match params.replay_window {
            0 => None,
            w => Some(ReplayWindow::new(w).map_err(|source| SaError::Replay {
                spi: params.spi,
                source,
            })?),
        };
        Ok(InboundSa {
            core: SaCore::new(params, now_secs)?,
            replay,
        })
    }

    sa_accessors!();

    /// [`Self::prefetch_keys`], plus the replay window's slot for `seq`.
    #[inline(always)]
    pub fn prefetch_keys_and_window(&self, seq: u64) {
        self.prefetch_keys();
        if let Some(w) = &self.replay {
            prefetch_bytes(w.slot_addr(seq), 8);
        }
    }

    pub fn replay(&self) -> Option<&ReplayWindow> {
        self.replay.as_ref()
    }

    /// The address inbound packets of this SA must be sent to, when the SA
    /// pins one (tunnel mode: our tunnel endpoint).
    pub fn local_addr(&self) -> Option<IpAddr> {
        match self.core.mode {
            EspMode::Tunnel { local, .. } => Some(local),
            EspMode::Transport => None,
        }
    }
}

/// Either direction's SA, shared.
#[derive(Clone)]
pub enum SaRef {
    Inbound(Arc<InboundSa>),
    Outbound(Arc<OutboundSa>),
}

impl SaRef {
    pub fn spi(&self) -> u32 {
        match self {
            SaRef::Inbound(sa) => sa.spi(),
            SaRef::Outbound(sa) => sa.spi(),
        }
    }
    pub fn direction(&self) -> Direction {
        match self {
            SaRef::Inbound(_) => Direction::Inbound,
            SaRef::Outbound(_) => Direction::Outbound,
        }
    }
    pub fn counters(&self) -> &SaCounters {
        match self {
            SaRef::Inbound(sa) => sa.counters(),
            SaRef::Outbound(sa) => sa.counters(),
        }
    }
    pub fn lifetime_state(&self, now_secs: u64) -> LifetimeState {
        match self {
            SaRef::Inbound(sa) => sa.lifetime_state(now_secs),
            SaRef::Outbound(sa) => sa.lifetime_state(now_secs),
        }
    }
    pub fn set_lifetime(&self, lifetime: Lifetime) {
        match self {
            SaRef::Inbound(sa) => sa.set_lifetime(lifetime),
            SaRef::Outbound(sa) => sa.set_lifetime(lifetime),
        }
    }
    pub fn installed_at(&self) -> u64 {
        match self {
            SaRef::Inbound(sa) => sa.installed_at(),
            SaRef::Outbound(sa) => sa.installed_at(),
        }
    }
}

/// Fibonacci hashing of a 32-bit SPI: one multiply, good spread for the
/// random SPIs we allocate.
#[derive(Default)]
pub struct SpiHasher(u64);

impl Hasher for SpiHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type SpiMap<V> = HashMap<u32, V, BuildHasherDefault<SpiHasher>>;

/// Inbound and outbound SAs of one dataplane.
#[derive(Default)]
pub struct Sadb {
    inbound: SpiMap<Arc<InboundSa>>,
    outbound: SpiMap<Arc<OutboundSa>>,
}

impl Sadb {
    pub fn new() -> Sadb {
        Sadb::default()
    }

    /// Installs an SA from negotiated (or manual) parameters.
    pub fn install(&mut self, params: &SaParams, now_secs: u64) -> Result<(), SaError> {
        match params.direction {
            Direction::Inbound => {
                if self.inbound.contains_key(&params.spi) {
                    return Err(SaError::DuplicateSpi(params.spi));
                }
                let sa = InboundSa::new(params, now_secs)?;
                self.inbound.insert(params.spi, Arc::new(sa));
            }
            Direction::Outbound => {
                // Outbound SPIs are chosen by peers and may collide across
                // peers; the control plane keys them by SPI per rule, a
                // rekey replaces the old SA.
                let sa = OutboundSa::new(params, now_secs)?;
                self.outbound.insert(params.spi, Arc::new(sa));
            }
        }
        Ok(())
    }

    /// Adds an SA built elsewhere (the management thread builds each SA
    /// once and hands the same `Arc` to every worker, so all workers share
    /// its sequence number, replay window and counters).
    pub fn insert_inbound(&mut self, sa: Arc<InboundSa>) -> Result<(), SaError> {
        if self.inbound.contains_key(&sa.spi()) {
            return Err(SaError::DuplicateSpi(sa.spi()));
        }
        self.inbound.insert(sa.spi(), sa);
        Ok(())
    }

    /// Adds or replaces (rekey with the same peer SPI) an outbound SA.
    pub fn insert_outbound(&mut self, sa: Arc<OutboundSa>) -> Option<Arc<OutboundSa>> {
        self.outbound.insert(sa.spi(), sa)
    }

    /// Removes an SA and returns it, so the caller chooses where the last
    /// reference (and the key material) is dropped.
    pub fn take(&mut self, direction: Direction, spi: u32) -> Option<SaRef> {
        match direction {
            Direction::Inbound => self.inbound.remove(&spi).map(SaRef::Inbound),
            Direction::Outbound => self.outbound.remove(&spi).map(SaRef::Outbound),
        }
    }

    pub fn remove(&mut self, direction: Direction, spi: u32) -> bool {
        match direction {
            Direction::Inbound => self.inbound.remove(&spi).is_some(),
            Direction::Outbound => self.outbound.remove(&spi).is_some(),
        }
    }

    /// RFC 4301 §4.1: the SPI alone identifies a unicast SA; the destination
    /// is checked by the caller against [`InboundSa::local_addr`].
    pub fn inbound(&self, spi: u32) -> Option<&Arc<InboundSa>> {
        self.inbound.get(&spi)
    }

    pub fn outbound(&self, spi: u32) -> Option<&Arc<OutboundSa>> {
        self.outbound.get(&spi)
    }

    pub fn inbound_len(&self) -> usize {
        self.inbound.len()
    }

    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }

    pub fn inbound_sas(&self) -> impl Iterator<Item = &Arc<InboundSa>> {
        self.inbound.values()
    }

    pub fn outbound_sas(&self) -> impl Iterator<Item = &Arc<OutboundSa>> {
        self.outbound.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SaKeys;
    use crate::crypto::{AuthAlg, EncAlg};

    fn params(spi: u32, direction: Direction) -> SaParams {
        SaParams {
            spi,
            direction,
            enc: EncAlg::AesCbc128,
            auth: AuthAlg::HmacSha1_96,
            keys: SaKeys {
                enc: vec![7; 16],
                auth: vec![9; 20],
            },
            mode: EspMode::Tunnel {
                local: "198.18.0.1".parse().unwrap(),
                remote: "198.18.0.2".parse().unwrap(),
            },
            udp_encap: None,
            esn: false,
            replay_window: 64,
            lifetime: Lifetime::default(),
        }
    }

    #[test]
    fn inbound_lookup_finds_every_one_of_100000_sas_by_spi() {
        let mut db = Sadb::new();
        // One suite per SA is what a gateway holds; NULL+MD5 keeps the test fast.
        for i in 0..100_000u32 {
            let mut p = params(0x1000 + i * 7, Direction::Inbound);
            p.enc = EncAlg::Null;
            p.auth = AuthAlg::HmacMd5_96;
            p.keys = SaKeys {
                enc: vec![],
                auth: vec![1; 16],
            };
            db.install(&p, 0).unwrap();
        }
        assert_eq!(db.inbound_len(), 100_000);
        for i in (0..100_000u32).step_by(997) {
            assert_eq!(
                db.inbound(0x1000 + i * 7).map(|s| s.spi()),
                Some(0x1000 + i * 7)
            );
        }
        assert!(db.inbound(0x1000 + 1).is_none());
    }

    #[test]
    fn reserved_spis_and_duplicate_inbound_spis_are_refused() {
        let mut db = Sadb::new();
        assert!(matches!(
            db.install(&params(255, Direction::Inbound), 0),
            Err(SaError::ReservedSpi(255))
        ));
        db.install(&params(0x100, Direction::Inbound), 0).unwrap();
        assert!(matches!(
            db.install(&params(0x100, Direction::Inbound), 0),
            Err(SaError::DuplicateSpi(0x100))
        ));
    }

    #[test]
    fn bad_key_length_is_refused_with_the_spi_named() {
        let mut p = params(0x4242, Direction::Outbound);
        p.keys.enc.truncate(15);
        let err = Sadb::new().install(&p, 0).unwrap_err();
        assert!(err.to_string().contains("0x00004242"), "{err}");
    }

    #[test]
    fn sequence_numbers_stop_at_the_32_bit_limit_without_esn() {
        let sa = OutboundSa::new(&params(0x300, Direction::Outbound), 0).unwrap();
        assert_eq!(sa.next_seq(), Some(1));
        sa.set_last_seq(u64::from(u32::MAX) - 1);
        assert_eq!(sa.next_seq(), Some(u64::from(u32::MAX)));
        assert_eq!(sa.next_seq(), None);
        assert_eq!(sa.next_seq(), None);
    }

    #[test]
    fn sequence_numbers_pass_2_to_the_32_with_esn() {
        let mut p = params(0x301, Direction::Outbound);
        p.esn = true;
        let sa = OutboundSa::new(&p, 0).unwrap();
        sa.set_last_seq(u64::from(u32::MAX));
        assert_eq!(sa.next_seq(), Some(1 << 32));
    }

    #[test]
    fn lifetime_reaches_soft_then_hard_by_seconds_and_by_kilobytes() {
        let mut p = params(0x400, Direction::Outbound);
        p.lifetime = Lifetime {
            soft_seconds: Some(100),
            hard_seconds: Some(120),
            soft_kilobytes: Some(10),
            hard_kilobytes: Some(20),
        };
        let sa = OutboundSa::new(&p, 1000).unwrap();
        assert_eq!(sa.lifetime_state(1050), LifetimeState::Fresh);
        assert_eq!(sa.lifetime_state(1100), LifetimeState::Soft);
        assert_eq!(sa.lifetime_state(1120), LifetimeState::Hard);
        SaCounters::add(&sa.counters().bytes, 10 * 1024);
        assert_eq!(sa.lifetime_state(1000), LifetimeState::Soft);
        SaCounters::add(&sa.counters().bytes, 10 * 1024);
        assert_eq!(sa.lifetime_state(1000), LifetimeState::Hard);
    }

    #[test]
    fn key_material_is_not_printed_by_debug() {
        let p = params(0x500, Direction::Inbound);
        let shown = format!("{p:?}");
        assert!(shown.contains("<16 bytes>"), "{shown}");
        assert!(!shown.contains("7, 7, 7"), "{shown}");
    }
}
