//! The security association database (RFC 4301 §4.4.2).
//!
//! Inbound SAs are found by SPI in O(1) (a hash map with a multiplicative
//! hash: our inbound SPIs are chosen by us at random, so no adversary picks
//! the keys), and the destination address is checked on a hit as RFC 4301
//! §4.1 allows for unicast SAs. Outbound SAs are reached from SPD entries by
//! their SPI. What never changes (keys, SPIs, endpoints) is immutable and
//! shared through `Arc`; the sequence number, counters and replay window are
//! atomics so any worker can process any SA without a lock.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use thiserror::Error;

use crate::api::{Direction, EspMode, Lifetime, SaParams, UdpEncap};
use crate::counters::SaCounters;
use crate::crypto::{new_suite, CryptoError, EspSuite};
use crate::prefetch::prefetch_bytes;
use crate::replay::{ReplayError, ReplayWindow};
use crate::spd::{InnerPolicy, IpPrefix, TrafficSelector};

/// Why an SA could not be installed. Each message says the reason
/// itself, so the reason is not also the error's `source()`: a caller
/// printing the chain (`{e:#}`) would say it twice, one printing the
/// message alone (`to_string()`) would lose it otherwise.
#[derive(Debug, Error)]
pub enum SaError {
    #[error("SA 0x{spi:08x}: {reason}")]
    Crypto { spi: u32, reason: CryptoError },
    #[error("SA 0x{spi:08x}: replay window: {reason}")]
    Replay { spi: u32, reason: ReplayError },
    #[error("SPI 0x{0:08x} is reserved (RFC 4303 §2.1: 1-255)")]
    ReservedSpi(u32),
    #[error("SA 0x{0:08x} is {1:?}, installed in the wrong table")]
    WrongDirection(u32, Direction),
    #[error("an SA with SPI 0x{0:08x} in that direction is already installed")]
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
///
/// Laid out in declaration order (`repr(C)`), what every packet reads or
/// writes first (the suite pointer, SPI, mode, the per-packet counters),
/// then the drop counters and the lifetime, read once a tick: with many
/// SAs each line of an SA is a cache miss, and the pipeline prefetches
/// only the hot lines ([`SaCore::HOT_END`]), those read before the crypto
/// loop (up to the mode, [`EARLY_LEN`]) first.
#[repr(C)]
struct SaCore {
    suite: Box<dyn EspSuite>,
    spi: u32,
    /// The suite's [`EspSuite::hot_bytes`] (offset, length), asked once
    /// here: asking the suite per packet would read the very line the
    /// prefetch is for.
    suite_hot: (u32, u32),
    /// The suite's lengths, asked once here for the same reason: the MTU
    /// check and the ESP framing need them before the keys.
    shape: SuiteShape,
    esn: bool,
    udp_encap: Option<UdpEncap>,
    mode: EspMode,
    counters: SaCounters,
    lifetime: LifetimeLimits,
    installed_at: u64,
}

/// An SA's ESP framing lengths (RFC 4303 §2): what its suite adds around
/// a payload, held in the SA's hot lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuiteShape {
    iv_len: u8,
    icv_len: u8,
    block_align: u8,
}

impl SuiteShape {
    fn of(suite: &dyn EspSuite) -> SuiteShape {
        // Every suite's lengths are a few dozen bytes at most (and
        // `encapsulated_len_is_exact...` in esp/tests.rs checks the framing
        // these give against every suite's real output).
        let narrow = |v: usize| u8::try_from(v).unwrap_or(u8::MAX);
        SuiteShape {
            iv_len: narrow(suite.iv_len()),
            icv_len: narrow(suite.icv_len()),
            block_align: narrow(suite.block_align()),
        }
    }

    /// Bytes of IV after the ESP header.
    pub fn iv_len(self) -> usize {
        usize::from(self.iv_len)
    }

    /// Bytes of ICV at the end of the ESP packet.
    pub fn icv_len(self) -> usize {
        usize::from(self.icv_len)
    }

    /// What the payload, padding, pad length and next header are padded to.
    pub fn block_align(self) -> usize {
        usize::from(self.block_align)
    }
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
        .map_err(|reason| SaError::Crypto {
            spi: params.spi,
            reason,
        })?;
        let (at, len) = suite.hot_bytes();
        let narrow = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(SaCore {
            spi: params.spi,
            suite_hot: (narrow(at), narrow(len)),
            shape: SuiteShape::of(suite.as_ref()),
            suite,
            mode: params.mode,
            udp_encap: params.udp_encap,
            esn: params.esn,
            lifetime: LifetimeLimits::new(params.lifetime),
            installed_at: now_secs,
            counters: SaCounters::default(),
        })
    }

    fn lifetime_state(&self, now_secs: u64, soft_ahead_bytes: u64) -> LifetimeState {
        let age = now_secs.saturating_sub(self.installed_at);
        let bytes = SaCounters::read(&self.counters.bytes);
        let kb = bytes / 1024;
        let soft_kb = bytes.saturating_add(soft_ahead_bytes) / 1024;
        let past = |limit: Option<u64>, value: u64| limit.is_some_and(|l| value >= l);
        let lt = self.lifetime.get();
        if past(lt.hard_seconds, age) || past(lt.hard_kilobytes, kb) {
            LifetimeState::Hard
        } else if past(lt.soft_seconds, age) || past(lt.soft_kilobytes, soft_kb) {
            LifetimeState::Soft
        } else {
            LifetimeState::Fresh
        }
    }
}

impl SaCore {
    /// End of the per-packet fields: up to and including the counters
    /// every packet updates (the drop counters follow them).
    const HOT_END: usize =
        std::mem::offset_of!(SaCore, counters) + std::mem::offset_of!(SaCounters, drops);

    /// Prefetches the part of the SA's suite a packet reads (its key
    /// schedules; [`EspSuite::hot_bytes`]).
    #[inline(always)]
    fn prefetch_suite(&self) {
        let suite: &dyn EspSuite = self.suite.as_ref();
        let (at, len) = self.suite_hot;
        prefetch_bytes(
            (suite as *const dyn EspSuite)
                .cast::<u8>()
                .wrapping_add(at as usize),
            len as usize,
        );
    }
}

/// Bytes from the start of an SA that the stages before the crypto loop
/// read: the MTU check (mode, shape, UDP encapsulation and the peer's
/// port), the key and replay-slot prefetches (suite, its hot range, the
/// replay window's head). Only these are asked for in the batch's burst
/// of SA prefetches ([`OutboundSa::prefetch_state`]); the rest of the
/// hot lines (an inbound SA's counters; an outbound SA's hot state all
/// fits in these) come with the keys, a few packets ahead of their use,
/// where the crypto hides them. With 100 000 SAs, when both directions had
/// three hot lines, moving the third out of the burst took 10-45 ns off a
/// packet (`espada-bench scale --sas 1,100000 --size 1400`), and asking
/// for one line instead of two put 80-100 ns on it: the MTU check and
/// the key prefetch then waited for the rest.
const EARLY_LEN: usize = 128;

/// Accessors shared by both directions.
macro_rules! sa_accessors {
    () => {
        /// Brings the SA's own state into the cache ahead of use. With
        /// many SAs every one is a cache miss; the pipeline asks for a
        /// whole batch's SAs first ([`Self::prefetch_state`], then
        /// [`Self::prefetch_keys`] once the SA itself has arrived) so that
        /// the misses overlap instead of stalling each packet in turn.
        /// Only the lines read before the crypto loop (`EARLY_LEN`; the
        /// SA is cache-line aligned and its per-packet fields come first).
        #[inline(always)]
        pub fn prefetch_state(&self) {
            prefetch_bytes(
                (self as *const Self).cast::<u8>(),
                Self::HOT_LEN.min(EARLY_LEN),
            );
        }
        /// Brings the SA's suite (key schedules) and the rest of its
        /// per-packet lines into the cache; reads the SA to find them, so
        /// ask [`Self::prefetch_state`] first.
        #[inline(always)]
        pub fn prefetch_keys(&self) {
            let sa = (self as *const Self).cast::<u8>();
            prefetch_bytes(
                sa.wrapping_add(EARLY_LEN),
                Self::HOT_LEN.saturating_sub(EARLY_LEN),
            );
            self.core.prefetch_suite();
        }
        pub fn spi(&self) -> u32 {
            self.core.spi
        }
        pub fn suite(&self) -> &dyn EspSuite {
            self.core.suite.as_ref()
        }
        /// The suite's framing lengths, without reading the suite.
        pub fn shape(&self) -> SuiteShape {
            self.core.shape
        }
        pub fn mode(&self) -> EspMode {
            self.core.mode
        }
        pub fn esn(&self) -> bool {
            self.core.esn
        }
        pub fn counters(&self) -> &SaCounters {
            &self.core.counters
        }
        /// Checked by the management thread once a tick, not per packet;
        /// `soft_ahead_bytes` more bytes count toward the soft limit (what
        /// the SA will carry before the next tick).
        pub fn lifetime_state(&self, now_secs: u64, soft_ahead_bytes: u64) -> LifetimeState {
            self.core.lifetime_state(now_secs, soft_ahead_bytes)
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

/// An SA this gateway encrypts with. Cache-line aligned, the sequence
/// number and [`SaCore`]'s per-packet fields first.
#[repr(C, align(64))]
pub struct OutboundSa {
    /// Last sequence number used; the next packet takes `seq + 1`.
    seq: AtomicU64,
    /// The peer's UDP port when the SA is UDP-encapsulated: its NAT may
    /// move it while the SA is in use ([`Self::set_peer_port`]).
    peer_port: AtomicU16,
    /// The path MTU to the peer that ICMP taught ([`Self::path_mtu`]):
    /// the MTU in the low 16 bits (0: none), when it was learned in the
    /// high 16 (dataplane-clock seconds / 16). In the padding before
    /// `core`, so the per-packet lines stay 2.
    path_mtu: AtomicU32,
    core: SaCore,
}

/// How long a path MTU learned from ICMP holds before the link's MTU is
/// tried again (RFC 1191 §6.3 suggests 10 minutes; Linux's
/// `mtu_expires` is 10 minutes too).
pub const PATH_MTU_AGE_SECS: u64 = 600;

impl OutboundSa {
    /// Bytes from the start of the SA that every packet touches.
    const HOT_LEN: usize = std::mem::offset_of!(OutboundSa, core) + SaCore::HOT_END;

    pub fn new(params: &SaParams, now_secs: u64) -> Result<OutboundSa, SaError> {
        if params.direction != Direction::Outbound {
            return Err(SaError::WrongDirection(params.spi, params.direction));
        }
        Ok(OutboundSa {
            core: SaCore::new(params, now_secs)?,
            seq: AtomicU64::new(0),
            peer_port: AtomicU16::new(params.udp_encap.map_or(0, |u| u.dst_port)),
            path_mtu: AtomicU32::new(0),
        })
    }

    sa_accessors!();

    /// ESP-in-UDP ports (RFC 3948), the peer's as it is now; `None`: plain
    /// ESP.
    pub fn udp_encap(&self) -> Option<UdpEncap> {
        self.core.udp_encap.map(|u| UdpEncap {
            dst_port: self.peer_port.load(Ordering::Relaxed),
            ..u
        })
    }

    /// Sends to `port` of the peer from the next packet on: its NAT mapped
    /// it anew (the control process saw an authentic, fresh IKE message or
    /// ESP from there). Returns false, changing nothing, for an SA that is
    /// not UDP-encapsulated.
    pub fn set_peer_port(&self, port: u16) -> bool {
        if self.core.udp_encap.is_none() {
            return false;
        }
        self.peer_port.store(port, Ordering::Relaxed);
        true
    }

    /// The path MTU to the peer, if ICMP taught one within the last
    /// [`PATH_MTU_AGE_SECS`]; an older one is forgotten here.
    pub fn path_mtu(&self, now_secs: u64) -> Option<u16> {
        let v = self.path_mtu.load(Ordering::Relaxed);
        let mtu = (v & 0xffff) as u16;
        if mtu == 0 {
            return None;
        }
        // Wraps after 12 days: an SA idle that long may take an old value
        // for a fresh one, for at most one more age.
        let age = u64::from(((now_secs / 16) as u16).wrapping_sub((v >> 16) as u16)) * 16;
        if age >= PATH_MTU_AGE_SECS {
            let _ = self
                .path_mtu
                .compare_exchange(v, 0, Ordering::Relaxed, Ordering::Relaxed);
            return None;
        }
        Some(mtu)
    }

    /// Sends packets of at most `mtu` bytes to the peer from now on, for
    /// [`PATH_MTU_AGE_SECS`] (the caller has checked the ICMP error that
    /// says so).
    pub fn set_path_mtu(&self, mtu: u16, now_secs: u64) {
        let at = u32::from((now_secs / 16) as u16);
        self.path_mtu
            .store(u32::from(mtu) | at << 16, Ordering::Relaxed);
    }

    /// The last sequence number used.
    pub fn last_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

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

// The per-packet lines must stay 2 (outbound) and 3 (inbound): with
// 100 000 SAs every line is a miss per packet, so a per-packet field moved
// behind the cold ones (or a counter added in front of the drops) fails
// the build here. What the stages before the crypto loop read must lie in
// the lines `prefetch_state` asks for.
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(std::mem::align_of::<InboundSa>() == 64);
    assert!(std::mem::align_of::<OutboundSa>() == 64);
    assert!(offset_of!(SaCounters, drops) == 32);
    assert!(InboundSa::HOT_LEN <= 3 * 64);
    assert!(OutboundSa::HOT_LEN <= 2 * 64);
    let early_end = offset_of!(SaCore, mode) + size_of::<EspMode>();
    assert!(offset_of!(SaCore, suite) < offset_of!(SaCore, mode));
    assert!(offset_of!(SaCore, suite_hot) < offset_of!(SaCore, mode));
    assert!(offset_of!(SaCore, shape) < offset_of!(SaCore, mode));
    assert!(offset_of!(SaCore, udp_encap) < offset_of!(SaCore, mode));
    assert!(offset_of!(OutboundSa, core) + early_end <= EARLY_LEN);
    assert!(offset_of!(OutboundSa, peer_port) + size_of::<AtomicU16>() <= EARLY_LEN);
    assert!(offset_of!(InboundSa, replay) + size_of::<Option<ReplayWindow>>() <= EARLY_LEN);
    assert!(offset_of!(InboundSa, core) + early_end <= EARLY_LEN);
    // An inbound SA's counters start a line (see `inner_policy`).
    assert!((offset_of!(InboundSa, core) + offset_of!(SaCore, counters)) % 64 == 0);
};

/// An SA this gateway decrypts with. Cache-line aligned, the replay
/// window's head and [`SaCore`]'s per-packet fields first.
#[repr(C, align(64))]
pub struct InboundSa {
    /// `None` when the SA was installed with a window of 0 (no replay check,
    /// RFC 4303 §3.4.3 lets the receiver disable it).
    replay: Option<ReplayWindow>,
    /// The UDP source port of the authenticated ESP-in-UDP packet with the
    /// highest sequence number so far, in the low 16 bits, that sequence
    /// number (low 48 bits) above them; 0: none yet. When the peer's NAT
    /// maps it anew, the control process sees the new port here and moves
    /// the pair's outbound ESP to it; a late packet from before the change
    /// cannot put the old port back.
    peer_port: AtomicU64,
    /// What decrypted packets the SA may deliver; `None`: any (read only
    /// when a packet is delivered, in a line the burst already asked for).
    /// Its 8 bytes also put the core's counters, which every delivered
    /// packet writes, at the start of a line of their own: the line before
    /// them (SPI, mode, the suite's vtable) stays read-only, so workers
    /// sharing the SA do not bounce it. Line 0 (the replay window's head,
    /// which every verified packet moves) still goes between them.
    inner_policy: Option<Box<InnerPolicy>>,
    core: SaCore,
}

/// What an inbound SA's decrypted packets are checked against. Transport
/// mode through a NAT rebuilds packets with the NAT's address, not the
/// one the peer negotiated (RFC 3947's NAT-OA): there only the protocol
/// and ports can be judged (the addresses are the tunnel's own anyway).
fn inner_selectors(params: &SaParams) -> Vec<TrafficSelector> {
    let natted_transport = params.mode == EspMode::Transport && params.udp_encap.is_some();
    if !natted_transport {
        return params.selectors.clone();
    }
    let any = |p: &IpPrefix| match p.addr() {
        IpAddr::V4(_) => IpPrefix::any_v4(),
        IpAddr::V6(_) => IpPrefix::any_v6(),
    };
    params
        .selectors
        .iter()
        .map(|s| TrafficSelector {
            src: any(&s.src),
            dst: any(&s.dst),
            ..*s
        })
        .collect()
}

impl InboundSa {
    /// Bytes from the start of the SA that every packet touches.
    const HOT_LEN: usize = std::mem::offset_of!(InboundSa, core) + SaCore::HOT_END;

    /// ESP-in-UDP ports (RFC 3948) as negotiated; `None`: plain ESP.
    pub fn udp_encap(&self) -> Option<UdpEncap> {
        self.core.udp_encap
    }

    /// The UDP source port of the newest authenticated ESP-in-UDP packet
    /// (by sequence number); 0 when none came, or the SA is plain ESP.
    pub fn peer_port_seen(&self) -> u16 {
        (self.peer_port.load(Ordering::Relaxed) & 0xffff) as u16
    }

    /// Records the source port of packet `seq`, which passed the ICV and
    /// the replay window, when it differs from the one recorded and the
    /// packet is newer than the one that recorded it: the peer numbers
    /// its packets in the order it sends them, so every packet sent
    /// before its NAT moved it is older than the first one after. Written
    /// only on a change, so workers sharing the SA do not bounce the line
    /// (two workers racing may keep either: the next packet settles it).
    pub(crate) fn note_peer_port(&self, port: u16, seq: u64) {
        let cur = self.peer_port.load(Ordering::Relaxed);
        let (cur_seq, cur_port) = (cur >> 16, (cur & 0xffff) as u16);
        let seq = seq & ((1 << 48) - 1);
        if port != cur_port && (cur == 0 || seq > cur_seq) {
            self.peer_port
                .store(seq << 16 | u64::from(port), Ordering::Relaxed);
        }
    }

    /// The tunnel's remote endpoint (tunnel mode), whose packets alone may
    /// report a port.
    pub fn remote_addr(&self) -> Option<IpAddr> {
        match self.core.mode {
            EspMode::Tunnel { remote, .. } => Some(remote),
            EspMode::Transport => None,
        }
    }

    pub fn new(params: &SaParams, now_secs: u64) -> Result<InboundSa, SaError> {
        if params.direction != Direction::Inbound {
            return Err(SaError::WrongDirection(params.spi, params.direction));
        }
        let replay = match params.replay_window {
            0 => None,
            w => Some(ReplayWindow::new(w).map_err(|reason| SaError::Replay {
                spi: params.spi,
                reason,
            })?),
        };
        Ok(InboundSa {
            core: SaCore::new(params, now_secs)?,
            replay,
            peer_port: AtomicU64::new(0),
            inner_policy: InnerPolicy::new(&inner_selectors(params)).map(Box::new),
        })
    }

    sa_accessors!();

    /// What decrypted packets the SA may deliver (`None`: any).
    pub fn inner_policy(&self) -> Option<&InnerPolicy> {
        self.inner_policy.as_deref()
    }

    /// [`Self::prefetch_keys`], plus the replay window's slot for `seq`
    /// and the SA's [`InnerPolicy`].
    #[inline(always)]
    pub fn prefetch_keys_and_window(&self, seq: u64) {
        self.prefetch_keys();
        if let Some(w) = &self.replay {
            prefetch_bytes(w.slot_addr(seq), 8);
        }
        if let Some(policy) = &self.inner_policy {
            let line: *const InnerPolicy = &**policy;
            prefetch_bytes(line.cast(), std::mem::size_of::<InnerPolicy>());
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
    /// [`InboundSa::peer_port_seen`]; 0 for an outbound SA.
    pub fn peer_port_seen(&self) -> u16 {
        match self {
            SaRef::Inbound(sa) => sa.peer_port_seen(),
            SaRef::Outbound(_) => 0,
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
    pub fn lifetime_state(&self, now_secs: u64, soft_ahead_bytes: u64) -> LifetimeState {
        match self {
            SaRef::Inbound(sa) => sa.lifetime_state(now_secs, soft_ahead_bytes),
            SaRef::Outbound(sa) => sa.lifetime_state(now_secs, soft_ahead_bytes),
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

/// SAs by SPI: open addressing with linear probing, the SPI stored inline
/// next to the SA's pointer (16 bytes a slot, 4 to a cache line), at most
/// half full. A lookup is one cache line in the common case, and which
/// one follows from the SPI alone, so the pipeline can prefetch a whole
/// batch's slots before it looks any up ([`Sadb::prefetch_inbound`]).
/// The hash is Fibonacci hashing (one multiply): our inbound SPIs are
/// chosen by us at random, so no adversary picks the keys. Removal shifts
/// the following entries back (no tombstones). Grows (allocates) only when
/// an SA is installed, never on lookup.
struct SpiTable<T> {
    slots: Box<[Slot<T>]>,
    /// log2 of `slots.len()`.
    bits: u32,
    len: usize,
}

#[repr(C, align(16))]
struct Slot<T> {
    spi: u32,
    sa: Option<Arc<T>>,
}

impl<T> Slot<T> {
    fn empty() -> Slot<T> {
        Slot { spi: 0, sa: None }
    }
}

impl<T> Default for SpiTable<T> {
    fn default() -> SpiTable<T> {
        SpiTable::with_bits(4)
    }
}

impl<T> SpiTable<T> {
    fn with_bits(bits: u32) -> SpiTable<T> {
        SpiTable {
            slots: (0..1usize << bits).map(|_| Slot::empty()).collect(),
            bits,
            len: 0,
        }
    }

    #[inline(always)]
    fn home(&self, spi: u32) -> usize {
        (u64::from(spi).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    /// The slot holding `spi`, or the empty slot that ends its probe run.
    #[inline]
    fn find(&self, spi: u32) -> usize {
        let mut i = self.home(spi);
        // At most half full: an empty slot always ends the run.
        loop {
            let slot = &self.slots[i];
            if slot.sa.is_none() || slot.spi == spi {
                return i;
            }
            i = (i + 1) & self.mask();
        }
    }

    #[inline]
    fn get(&self, spi: u32) -> Option<&Arc<T>> {
        let slot = &self.slots[self.find(spi)];
        slot.sa.as_ref()
    }

    /// Asks for the cache line where the lookup of `spi` starts.
    #[inline(always)]
    fn prefetch(&self, spi: u32) {
        prefetch_bytes(
            (&self.slots[self.home(spi)] as *const Slot<T>).cast::<u8>(),
            1,
        );
    }

    fn contains_key(&self, spi: u32) -> bool {
        self.get(spi).is_some()
    }

    /// Inserts or replaces; returns the SA replaced.
    fn insert(&mut self, spi: u32, sa: Arc<T>) -> Option<Arc<T>> {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let i = self.find(spi);
        let old = self.slots[i].sa.replace(sa);
        self.slots[i].spi = spi;
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    fn grow(&mut self) {
        let old = std::mem::replace(self, SpiTable::with_bits(self.bits + 1));
        for slot in old.slots.into_vec() {
            if let Some(sa) = slot.sa {
                let i = self.find(slot.spi);
                self.slots[i] = Slot {
                    spi: slot.spi,
                    sa: Some(sa),
                };
                self.len += 1;
            }
        }
    }

    fn remove(&mut self, spi: u32) -> Option<Arc<T>> {
        let mut hole = self.find(spi);
        let sa = self.slots[hole].sa.take()?;
        self.len -= 1;
        // Backward shift: move up every later entry of the run whose home
        // is not between the hole and itself (cyclically), so that no
        // probe run is broken by the new empty slot.
        let mask = self.mask();
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            if self.slots[j].sa.is_none() {
                break;
            }
            let home = self.home(self.slots[j].spi);
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots.swap(hole, j);
                hole = j;
            }
        }
        Some(sa)
    }

    fn len(&self) -> usize {
        self.len
    }

    fn values(&self) -> impl Iterator<Item = &Arc<T>> {
        self.slots.iter().filter_map(|s| s.sa.as_ref())
    }
}

/// Inbound and outbound SAs of one dataplane.
#[derive(Default)]
pub struct Sadb {
    inbound: SpiTable<InboundSa>,
    outbound: SpiTable<OutboundSa>,
}

impl Sadb {
    pub fn new() -> Sadb {
        Sadb::default()
    }

    /// Installs an SA from negotiated (or manual) parameters.
    pub fn install(&mut self, params: &SaParams, now_secs: u64) -> Result<(), SaError> {
        match params.direction {
            Direction::Inbound => {
                if self.inbound.contains_key(params.spi) {
                    return Err(SaError::DuplicateSpi(params.spi));
                }
                let sa = InboundSa::new(params, now_secs)?;
                self.inbound.insert(params.spi, Arc::new(sa));
            }
            Direction::Outbound => {
                // Outbound SPIs are chosen by peers and may collide across
                // peers, but the SPD names an outbound SA by SPI: a second
                // SA with the same SPI would take over the first one's
                // flows, so it is refused as the management thread does.
                if self.outbound.contains_key(params.spi) {
                    return Err(SaError::DuplicateSpi(params.spi));
                }
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
        if self.inbound.contains_key(sa.spi()) {
            return Err(SaError::DuplicateSpi(sa.spi()));
        }
        self.inbound.insert(sa.spi(), sa);
        Ok(())
    }

    /// Adds an outbound SA; one with the same SPI is replaced. The
    /// management thread, which feeds the workers, has refused a second SA
    /// with an SPI already installed (`Mgmt::add_sa`).
    pub fn insert_outbound(&mut self, sa: Arc<OutboundSa>) -> Option<Arc<OutboundSa>> {
        self.outbound.insert(sa.spi(), sa)
    }

    /// Removes an SA and returns it, so the caller chooses where the last
    /// reference (and the key material) is dropped.
    pub fn take(&mut self, direction: Direction, spi: u32) -> Option<SaRef> {
        match direction {
            Direction::Inbound => self.inbound.remove(spi).map(SaRef::Inbound),
            Direction::Outbound => self.outbound.remove(spi).map(SaRef::Outbound),
        }
    }

    pub fn remove(&mut self, direction: Direction, spi: u32) -> bool {
        match direction {
            Direction::Inbound => self.inbound.remove(spi).is_some(),
            Direction::Outbound => self.outbound.remove(spi).is_some(),
        }
    }

    /// RFC 4301 §4.1: the SPI alone identifies a unicast SA; the destination
    /// is checked by the caller against [`InboundSa::local_addr`].
    pub fn inbound(&self, spi: u32) -> Option<&Arc<InboundSa>> {
        self.inbound.get(spi)
    }

    pub fn outbound(&self, spi: u32) -> Option<&Arc<OutboundSa>> {
        self.outbound.get(spi)
    }

    /// Brings the table slot where [`Self::inbound`] looks `spi` up into
    /// the cache: a hint, so that a batch's lookups overlap their misses.
    #[inline(always)]
    pub fn prefetch_inbound(&self, spi: u32) {
        self.inbound.prefetch(spi)
    }

    /// [`Self::prefetch_inbound`] for [`Self::outbound`].
    #[inline(always)]
    pub fn prefetch_outbound(&self, spi: u32) {
        self.outbound.prefetch(spi)
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

    #[test]
    fn transport_mode_through_a_nat_checks_the_protocol_not_the_addresses() {
        let sel = crate::spd::TrafficSelector {
            src: "198.18.0.1/32".parse().unwrap(),
            dst: "198.18.0.2/32".parse().unwrap(),
            proto: Some(47),
            src_ports: crate::spd::PortRange::ANY,
            dst_ports: crate::spd::PortRange::ANY,
        };
        let mut p = params(0x1000, Direction::Inbound);
        p.selectors = vec![sel];
        assert!(InboundSa::new(&p, 0).unwrap().inner_policy().is_some());
        p.mode = EspMode::Transport;
        assert!(InboundSa::new(&p, 0).unwrap().inner_policy().is_some());
        // The rebuilt packet carries the NAT's address, not the peer's:
        // only the protocol is judged.
        p.udp_encap = Some(UdpEncap::default());
        let sa = InboundSa::new(&p, 0).unwrap();
        let policy = sa.inner_policy().expect("protocol still checked");
        let from_nat = |proto| crate::spd::FlowKey {
            src: "203.0.113.7".parse().unwrap(),
            dst: "198.18.0.1".parse().unwrap(),
            proto,
            src_port: 0,
            dst_port: 0,
        };
        assert!(policy.admits(&from_nat(47), false));
        assert!(!policy.admits(&from_nat(6), false));
    }

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
            selectors: Vec::new(),
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
    fn spi_table_keeps_every_entry_findable_through_inserts_and_removals() {
        let mut t: SpiTable<u32> = SpiTable::default();
        // Clustered SPIs (consecutive) and spread ones, so probe runs form
        // and wrap around the end of the table.
        let spis: Vec<u32> = (0..5000u32)
            .map(|i| {
                if i % 2 == 0 {
                    0x100 + i
                } else {
                    i.wrapping_mul(0x9E37_79B1) | 0x100
                }
            })
            .collect();
        for &spi in &spis {
            assert!(t.insert(spi, Arc::new(spi)).is_none());
        }
        assert_eq!(t.len(), spis.len());
        // Replacing keeps one entry and returns the old one.
        assert_eq!(t.insert(spis[7], Arc::new(7)).map(|a| *a), Some(spis[7]));
        assert_eq!(t.len(), spis.len());
        // Remove every third (in a scrambled order), then check all.
        let mut order: Vec<usize> = (0..spis.len()).filter(|i| i % 3 == 0).collect();
        order.sort_by_key(|&i| (i as u32).wrapping_mul(0x85EB_CA6B));
        for &i in &order {
            assert!(t.remove(spis[i]).is_some(), "remove {:#x}", spis[i]);
            assert!(t.remove(spis[i]).is_none());
        }
        for (i, &spi) in spis.iter().enumerate() {
            let want = match (i % 3, i) {
                (0, _) => None,
                (_, 7) => Some(7),
                _ => Some(spi),
            };
            assert_eq!(t.get(spi).map(|a| **a), want, "spi {spi:#x}");
        }
        assert_eq!(t.len(), spis.len() - order.len());
        assert_eq!(t.values().count(), t.len());
        assert!(t.get(0x0bad_0000).is_none());
    }

    #[test]
    fn reserved_spis_and_duplicate_spis_are_refused() {
        let mut db = Sadb::new();
        assert!(matches!(
            db.install(&params(255, Direction::Inbound), 0),
            Err(SaError::ReservedSpi(255))
        ));
        for direction in [Direction::Inbound, Direction::Outbound] {
            db.install(&params(0x100, direction), 0).unwrap();
            assert!(matches!(
                db.install(&params(0x100, direction), 0),
                Err(SaError::DuplicateSpi(0x100))
            ));
        }
    }

    /// The message and its chain of sources, as `{e:#}` prints an error.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut next = e.source();
        while let Some(c) = next {
            s += &format!(": {c}");
            next = c.source();
        }
        s
    }

    #[test]
    fn a_bad_replay_window_or_key_is_said_once_whether_or_not_the_chain_is_printed() {
        let mut p = params(0x4243, Direction::Inbound);
        p.replay_window = u32::MAX;
        let err = InboundSa::new(&p, 0).err().expect("refused");
        let want = "SA 0x00004243: replay window: replay window 4294967295 is not a multiple of 32 between 32 and 65536";
        assert_eq!(err.to_string(), want);
        assert_eq!(chain(&err), want);
        let mut p = params(0x4244, Direction::Outbound);
        p.keys.enc.truncate(15);
        let err = OutboundSa::new(&p, 0).err().expect("refused");
        assert_eq!(chain(&err), err.to_string());
        assert!(err.to_string().len() > "SA 0x00004244: ".len(), "{err}");
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
        assert_eq!(sa.lifetime_state(1050, 0), LifetimeState::Fresh);
        assert_eq!(sa.lifetime_state(1100, 0), LifetimeState::Soft);
        assert_eq!(sa.lifetime_state(1120, 0), LifetimeState::Hard);
        SaCounters::add(&sa.counters().bytes, 6 * 1024);
        assert_eq!(sa.lifetime_state(1000, 0), LifetimeState::Fresh);
        // 4 KiB more expected before the next look: soft now.
        assert_eq!(sa.lifetime_state(1000, 4 * 1024), LifetimeState::Soft);
        SaCounters::add(&sa.counters().bytes, 4 * 1024);
        assert_eq!(sa.lifetime_state(1000, 0), LifetimeState::Soft);
        // The look-ahead never brings the hard limit forward.
        assert_eq!(sa.lifetime_state(1000, 100 * 1024), LifetimeState::Soft);
        SaCounters::add(&sa.counters().bytes, 10 * 1024);
        assert_eq!(sa.lifetime_state(1000, 0), LifetimeState::Hard);
    }

    #[test]
    fn key_material_is_not_printed_by_debug() {
        let p = params(0x500, Direction::Inbound);
        let shown = format!("{p:?}");
        assert!(shown.contains("<16 bytes>"), "{shown}");
        assert!(!shown.contains("7, 7, 7"), "{shown}");
    }
}
