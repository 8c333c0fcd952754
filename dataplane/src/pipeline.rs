//! The stages a worker runs over one received batch, VPP style: classify
//! every frame, decapsulate what came in as ESP, decrement TTLs, encrypt
//! per SA, then route and rewrite the link layer. Each stage does one job
//! for the whole batch, frames keep their order, nothing allocates, and
//! every frame ends with an [`Action`] (transmit, give to the kernel, or a
//! counted drop).
//!
//! One frame may have to become several: an IPv4 packet without DF that
//! is too big for its tunnel or next link is fragmented (see
//! [`FragmentPlan`]). The pipeline cannot take frames from the worker's
//! free list, so such a frame ends as [`Action::Fragment`] and the worker,
//! which owns the free frames, lends some to [`fragment_frames`]: a second,
//! small pass that writes the fragments and encrypts and routes them like
//! any other frame.
//!
//! The stages are pure: the frames come from and go to whichever I/O
//! backend the worker runs (AF_XDP, or memory in tests).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_channel::Sender;

mod frag;
mod icmp;
mod pat;
pub mod pmtu;

pub use frag::{
    fragment_ipv4, fragments_needed, inner_mtu, FragError, FragmentPlan, MAX_FRAGMENTS,
};
pub use icmp::{IcmpError, IcmpLimiter};
pub use pat::PatState;

use crate::api::{EspMode, Event, MAX_TED_PROBE_LEN};
use crate::clock;
use crate::counters::{DropCounters, DropReason};
use crate::crypto::{same_suite_type, EspSuite};
use crate::esp::{
    decap, decap_across, decap_batch_where, encap_across, encap_batch_where, encap_single,
    encapsulated_len, esp_spi_seq, Decapped, PacketBuf, ACROSS,
};
use crate::reassembly::{Fed, Reassembly};
use crate::route::{Fib, FibMiss, NextHop, PortRole};
use crate::sa::{InboundSa, OutboundSa, Sadb};
use crate::spd::{flow_of, is_link_local, FlowKey, PolicyAction, PolicyTag, Spd};
use crate::tunif::TunnelPorts;
use crate::wire::{ethernet, ip_proto, ipv4, ipv6};

/// Frames handled per pass; larger batches are cut into passes.
pub const MAX_BATCH: usize = 256;

/// What a worker needs to decide a frame's fate.
#[derive(Default)]
pub struct Tables {
    pub fib: Fib,
    pub spd: Spd,
    pub sadb: Sadb,
    /// The gateway's own addresses: traffic to them is the kernel's (or,
    /// on the outside, ESP for us to decrypt); decrypted traffic to them
    /// reaches the kernel only through a tunnel interface
    /// ([`Self::tunnels`]), else it is dropped ([`DropReason::ForGateway`]).
    pub local: Vec<IpAddr>,
    /// The tunnel interfaces: TUN devices through which the gateway's own
    /// traffic uses a virtual tunnel interface ([`crate::tunif`]).
    pub tunnels: TunnelPorts,
    /// Addresses per interface: the source of ICMP errors we originate.
    pub iface_addrs: Vec<(u32, IpAddr)>,
    /// Where a worker asks for a neighbour the FIB lacks (bounded,
    /// lock-free; the management thread has the kernel resolve it).
    pub resolve: Option<Sender<NeighbourRequest>>,
    /// Where a worker reports protected traffic with no SA (bounded,
    /// lock-free, drained by the management thread).
    pub acquire: Option<Sender<AcquireRequest>>,
    /// Port address translation: this worker's rules and table. `None`:
    /// the dataplane runs without NAT and nothing is translated.
    pub pat: Option<PatState>,
    /// Where a worker hands Tunnel Endpoint Discovery probes caught in
    /// transit (bounded, lock-free, drained by the management thread, which
    /// raises [`Event::TedProbe`]). `None`: probes are dropped as
    /// rate-limited.
    pub ted: Option<Sender<TedProbeRequest>>,
    /// ESP that arrives in IP fragments, put back together before it is
    /// decrypted.
    pub reassembly: Reassembly,
}

/// A Tunnel Endpoint Discovery probe caught in transit: an IKEv1 datagram
/// to UDP 500 of a host behind us, arriving on the outside. The payload is
/// copied into the request itself, so a bounded channel (whose slots are
/// allocated up front) carries it without allocating on the worker.
#[derive(Clone, Copy)]
pub struct TedProbeRequest {
    /// The probe's source address and port.
    pub from: SocketAddr,
    /// Where it was going: the protected host, not this gateway.
    pub original_dst: IpAddr,
    len: u16,
    data: [u8; MAX_TED_PROBE_LEN],
}

impl TedProbeRequest {
    /// `None` when `payload` is longer than [`MAX_TED_PROBE_LEN`].
    pub fn new(from: SocketAddr, original_dst: IpAddr, payload: &[u8]) -> Option<Self> {
        let mut data = [0u8; MAX_TED_PROBE_LEN];
        data.get_mut(..payload.len())?.copy_from_slice(payload);
        Some(TedProbeRequest {
            from,
            original_dst,
            len: payload.len() as u16,
            data,
        })
    }

    /// The UDP payload (the ISAKMP message).
    pub fn payload(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// The control-socket event the management thread raises for it.
    pub fn event(&self) -> Event {
        Event::TedProbe {
            from: self.from,
            original_dst: self.original_dst,
            data: self.payload().to_vec(),
        }
    }
}

impl std::fmt::Debug for TedProbeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TedProbeRequest")
            .field("from", &self.from)
            .field("original_dst", &self.original_dst)
            .field("len", &self.len)
            .finish()
    }
}

/// TED probes one worker hands to the control process per second at most;
/// the rest are dropped as [`DropReason::TedProbeRateLimited`]. Discovery
/// needs one probe per protected flow and retry; this bounds what a flood
/// of forged probes costs the worker and the IKE daemon.
pub const TED_PROBES_PER_SEC: u32 = 16;

/// Of those, at most this many from one source address (by bucket, see
/// [`TedLimiter`]); the rest are dropped as
/// [`DropReason::TedProbeSourceLimited`], so that one prober flooding
/// cannot use up the whole budget and keep the other gateways' probes
/// from being answered.
pub const TED_PROBES_PER_SOURCE_PER_SEC: u32 = 4;

/// Source buckets of [`TedLimiter`].
const TED_SOURCE_BUCKETS: usize = 64;

/// A per-worker budget of [`TED_PROBES_PER_SEC`] probes in each second of
/// the dataplane clock, and of [`TED_PROBES_PER_SOURCE_PER_SEC`] per
/// source bucket (a hash of the source address picks one of 64; sources
/// that share a bucket share its budget). Relaxed atomics: only its
/// worker takes from it. A forger spoofing many sources is bounded by the
/// total budget only.
#[derive(Debug)]
pub struct TedLimiter {
    second: AtomicU64,
    used: AtomicU32,
    /// (second, used) per source bucket.
    sources: [(AtomicU64, AtomicU32); TED_SOURCE_BUCKETS],
}

impl Default for TedLimiter {
    fn default() -> TedLimiter {
        TedLimiter {
            second: AtomicU64::new(0),
            used: AtomicU32::new(0),
            sources: std::array::from_fn(|_| (AtomicU64::new(0), AtomicU32::new(0))),
        }
    }
}

/// What [`TedLimiter::admit`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TedAdmit {
    Yes,
    /// The worker's budget for this second is spent.
    OverTotal,
    /// The source's share of it is.
    OverSource,
}

impl TedLimiter {
    /// Takes one probe from `source` from the budget of second `now`.
    pub fn admit(&self, now: u64, source: IpAddr) -> TedAdmit {
        if self.second.load(Ordering::Relaxed) != now {
            self.second.store(now, Ordering::Relaxed);
            self.used.store(0, Ordering::Relaxed);
        }
        let used = self.used.load(Ordering::Relaxed);
        if used >= TED_PROBES_PER_SEC {
            return TedAdmit::OverTotal;
        }
        let (second, from_source) = &self.sources[ted_source_bucket(source)];
        if second.load(Ordering::Relaxed) != now {
            second.store(now, Ordering::Relaxed);
            from_source.store(0, Ordering::Relaxed);
        }
        let n = from_source.load(Ordering::Relaxed);
        if n >= TED_PROBES_PER_SOURCE_PER_SEC {
            return TedAdmit::OverSource;
        }
        from_source.store(n + 1, Ordering::Relaxed);
        self.used.store(used + 1, Ordering::Relaxed);
        TedAdmit::Yes
    }
}

/// The bucket of a source address (Fibonacci hashing of its bits).
fn ted_source_bucket(a: IpAddr) -> usize {
    let x = match a {
        IpAddr::V4(v) => u64::from(u32::from(v)),
        IpAddr::V6(v) => {
            let b = u128::from(v);
            (b as u64) ^ ((b >> 64) as u64)
        }
    };
    // The top 6 bits of the product: 64 buckets.
    (x.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize
}

/// Traffic a crypto map protects but no SA covers yet: the management
/// thread raises an acquire for IKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcquireRequest {
    pub tag: PolicyTag,
    pub flow: FlowKey,
}

/// A next hop with no link-layer address yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighbourRequest {
    pub ifindex: u32,
    pub addr: IpAddr,
}

impl Tables {
    /// Our address of the given family on an interface.
    pub fn addr_on(&self, ifindex: u32, v6: bool) -> Option<IpAddr> {
        self.iface_addrs
            .iter()
            .find(|(i, a)| *i == ifindex && a.is_ipv6() == v6)
            .map(|(_, a)| *a)
    }
}

/// The end of a frame's way through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the frame (now `start..start + len`, link layer written) out
    /// of this interface.
    Transmit { ifindex: u32 },
    /// Not for the dataplane (ARP, IKE, traffic to the gateway): hand the
    /// frame, unchanged, to the kernel.
    ToKernel,
    /// Dropped, and counted under this reason.
    Drop(DropReason),
    /// Too big for its tunnel or next link, and allowed to be fragmented:
    /// the worker lends [`FragmentJob::count`]` - 1` free frames and calls
    /// [`fragment_frames`], which gives every fragment its own action.
    Fragment(FragmentJob),
    /// Return traffic of a translation another worker holds (its port is
    /// in that worker's slice): the worker copies the whole frame, link
    /// layer included, to that worker, which runs it through its pipeline.
    Handoff { worker: usize },
    /// For the gateway itself: the worker writes the IP packet (now
    /// `start..start + len`, no link layer) into the tunnel interface with
    /// this ifindex, where the kernel receives it.
    ToTunnel { ifindex: u32 },
}

/// A packet [`process_batch`] decided to fragment, and what becomes of its
/// fragments: each encapsulated with the SA the whole packet matched, or
/// forwarded in the clear. Only the pipeline makes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentJob {
    count: u8,
    max_ip_len: u16,
    then: AfterFragmenting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFragmenting {
    Encap(u32),
    Forward { bypass: bool },
}

impl FragmentJob {
    /// How many fragments the packet becomes; the frame itself carries the
    /// first, so the worker needs `count() - 1` free frames.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }
}

/// Per-worker totals beside the per-SA counters.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    pub rx: AtomicU64,
    pub tx: AtomicU64,
    pub to_kernel: AtomicU64,
    pub encapsulated: AtomicU64,
    pub decapsulated: AtomicU64,
    /// Forwarded in the clear (SPD bypass, or no rule matched).
    pub bypassed: AtomicU64,
    /// ICMP errors sent back (time exceeded, fragmentation needed).
    pub icmp_sent: AtomicU64,
    /// Packets split into fragments (before encryption, or forwarded in
    /// the clear onto a smaller link).
    pub fragmented: AtomicU64,
    /// Fragments those packets became; each is also counted as a frame
    /// (`tx`, `encapsulated`, a drop) like any other.
    pub fragments: AtomicU64,
    /// ESP datagrams put back together from fragments (each then counted
    /// as the packet it is).
    pub reassembled: AtomicU64,
    pub icmp: IcmpLimiter,
    /// The budget of TED probes handed to the control process.
    pub ted: TedLimiter,
    /// Drops that belong to no SA (per-SA drops are on the SA).
    pub drops: DropCounters,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds a batch's tally: one locked add per batch instead of one per
/// packet (a locked add waits for the packet's stores to drain).
fn add(c: &AtomicU64, n: u64) {
    if n > 0 {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Decap,
    /// Outside, for us, not ESP: return traffic of a translation, or the
    /// kernel's. The link-layer header was this long.
    NatIn {
        link_len: u8,
    },
    Encap(u32),
    Forward {
        bypass: bool,
    },
    Done(Action),
}

/// Runs the pipeline over frames received on `rx_ifindex`; `actions[i]`
/// receives the fate of `frames[i]`.
pub fn process_batch(
    t: &mut Tables,
    rx_ifindex: u32,
    frames: &mut [PacketBuf<'_>],
    actions: &mut [Action],
    c: &PipelineCounters,
) {
    for (chunk, acts) in frames
        .chunks_mut(MAX_BATCH)
        .zip(actions.chunks_mut(MAX_BATCH))
    {
        process_chunk(t, rx_ifindex, chunk, acts, c);
    }
}

fn process_chunk(
    t: &mut Tables,
    rx_ifindex: u32,
    frames: &mut [PacketBuf<'_>],
    actions: &mut [Action],
    c: &PipelineCounters,
) {
    let n = frames.len().min(actions.len());
    let frames = &mut frames[..n];
    let mut stage = [Stage::Done(Action::ToKernel); MAX_BATCH];
    let role = t.fib.interface(rx_ifindex).map(|i| i.role);
    // What the kernel sent into a tunnel interface: the gateway's own.
    let tunnel = role
        .is_none()
        .then(|| t.tunnels.tag_of(rx_ifindex))
        .flatten();
    c.rx.fetch_add(n as u64, Ordering::Relaxed);

    let now = clock::now_secs();
    if role == Some(PortRole::Inside) {
        prefetch_spd(t, frames);
    }
    let outside = role == Some(PortRole::Outside);
    for (s, f) in stage.iter_mut().zip(frames.iter_mut()) {
        *s = match (outside.then(|| reassemble(t, f, now, c)).flatten(), tunnel) {
            (Some(done), _) => done,
            (None, Some(tag)) => classify_from_tunnel(t, tag, f, c),
            (None, None) => classify(t, role, f, now, c),
        };
    }
    for (s, f) in stage.iter_mut().zip(frames.iter_mut()) {
        if let Stage::NatIn { link_len } = *s {
            *s = match t.pat.as_mut() {
                Some(pat) => pat.inbound(f, rx_ifindex, usize::from(link_len), now),
                None => Stage::Done(Action::ToKernel),
            };
            if let Stage::Done(Action::Drop(reason)) = *s {
                c.drops.inc(reason);
            }
        }
    }
    let esp = prefetch_sas(t, &stage[..n], frames);
    for i in 0..KEYS_AHEAD {
        prefetch_decap_keys(t, &stage[..n], &esp, i);
    }
    let decapping: [bool; MAX_BATCH] = std::array::from_fn(|i| stage[i] == Stage::Decap);
    let decapsulated = decrypt(t, frames, &mut stage[..n], &esp, c);
    add(&c.decapsulated, decapsulated);
    deliver_for_gateway(t, frames, &mut stage[..n], &decapping, &esp, c);
    let from_inside = role == Some(PortRole::Inside);
    for (s, f) in stage.iter_mut().zip(frames.iter_mut()) {
        // The gateway's own packets have no hop behind them to count.
        if tunnel.is_none() && matches!(s, Stage::Forward { .. } | Stage::Encap(_)) {
            if let Err(reason) = decrement_ttl(f.frame, f.start, f.len) {
                c.drops.inc(reason);
                // Time exceeded goes back to inside senders; a decapsulated
                // packet's sender sits behind the peer and is not answered.
                *s = if from_inside && send_icmp(t, rx_ifindex, f, IcmpError::TimeExceeded, c) {
                    Stage::Forward { bypass: false }
                } else {
                    Stage::Done(Action::Drop(reason))
                };
            }
        }
    }
    check_tunnel_mtu(t, rx_ifindex, frames, &mut stage[..n], now, c);
    encrypt(t, frames, &mut stage[..n], c);
    for (s, f) in stage.iter_mut().zip(frames.iter_mut()) {
        if let Stage::Forward { bypass } = *s {
            // Only clear traffic from the inside is translated (crypto first).
            let translate = from_inside && bypass;
            *s = forward(t, rx_ifindex, f, bypass, translate, now, c);
        }
    }
    let (mut tx, mut to_kernel) = (0, 0);
    for (a, s) in actions.iter_mut().zip(&stage[..n]) {
        *a = match *s {
            Stage::Done(action) => action,
            // Every stage above ends in Done; keep the type total anyway.
            _ => Action::Drop(DropReason::Malformed),
        };
        match a {
            Action::Transmit { .. } => tx += 1,
            Action::ToKernel => to_kernel += 1,
            // Counted per fragment by `fragment_frames`; handed-off frames
            // by the worker that takes them.
            Action::Drop(_)
            | Action::Fragment(_)
            | Action::Handoff { .. }
            | Action::ToTunnel { .. } => {}
        }
    }
    add(&c.tx, tx);
    add(&c.to_kernel, to_kernel);
}

/// Frames from the inside are looked up in the SPD: asks for the index
/// slots of the whole batch's destinations, then (the slots at hand) their
/// first candidate rules, before any is classified. With many rules both
/// are cache misses; asked for together they overlap (see
/// [`prefetch_sas`]). Only hints: a frame that does not parse is left to
/// `classify`.
fn prefetch_spd(t: &Tables, frames: &[PacketBuf<'_>]) {
    if t.spd.is_empty() {
        return;
    }
    let mut dst: [Option<IpAddr>; MAX_BATCH] = [None; MAX_BATCH];
    for (d, f) in dst.iter_mut().zip(frames) {
        *d = frame_dst(f.data());
        if let Some(a) = d {
            t.spd.prefetch_index(a);
        }
    }
    for a in dst.iter().take(frames.len()).flatten() {
        t.spd.prefetch_rules(a);
    }
}

/// The destination address of an Ethernet frame's IP packet, read without
/// checks beyond bounds (for a prefetch; `classify` validates).
fn frame_dst(frame: &[u8]) -> Option<IpAddr> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let ip = frame.get(eth.header_len()..)?;
    match ip.first()? >> 4 {
        4 => <[u8; 4]>::try_from(ip.get(16..20)?).ok().map(IpAddr::from),
        6 => <[u8; 16]>::try_from(ip.get(24..40)?).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Asks for the SAs of the batch's ESP frames and of the frames to encrypt
/// before any is used, in two passes: the SADB slots (found from the SPI
/// alone), then the SAs' lines that the stages before the crypto loop
/// read ([`crate::sa::OutboundSa::prefetch_state`]). With many SAs each
/// of these is a cache miss; requested together they overlap instead of
/// stalling every packet in turn (`espada-bench scale`: 100 000 SAs in
/// random order). The key schedules, the bulk (9 lines for AES-GCM),
/// and an inbound SA's counter line are asked for by the crypto loops
/// themselves, [`KEYS_AHEAD`] packets ahead
/// ([`prefetch_decap_keys`], [`prefetch_encap_keys`]), so that they
/// arrive while earlier packets are decrypted or encrypted instead of
/// queueing behind each other here. Only hints: nothing is checked here.
/// Returns the SPI and sequence number (low 32 bits) of each frame to
/// decapsulate, read once for the key and replay-slot prefetches and to
/// group the frames by SA (`decap` reads them again, and checks them).
fn prefetch_sas(t: &Tables, stage: &[Stage], frames: &[PacketBuf<'_>]) -> EspHeaders {
    let mut esp: EspHeaders = [None; MAX_BATCH];
    let mut any = false;
    for (i, (s, f)) in stage.iter().zip(frames).enumerate() {
        match *s {
            Stage::Decap => {
                esp[i] = esp_spi_seq(f.data());
                if let Some((spi, _)) = esp[i] {
                    t.sadb.prefetch_inbound(spi);
                    any = true;
                }
            }
            Stage::Encap(spi) => {
                t.sadb.prefetch_outbound(spi);
                any = true;
            }
            _ => {}
        }
    }
    if !any {
        return esp;
    }
    for (s, header) in stage.iter().zip(esp) {
        match *s {
            Stage::Decap => {
                if let Some(sa) = header.and_then(|(spi, _)| t.sadb.inbound(spi)) {
                    sa.prefetch_state();
                }
            }
            Stage::Encap(spi) => {
                if let Some(sa) = t.sadb.outbound(spi) {
                    sa.prefetch_state();
                }
            }
            _ => {}
        }
    }
    esp
}

/// How many packets ahead the crypto loops ask for a later packet's key
/// schedules: one packet's crypto (~300 ns) is time enough for its lines
/// to arrive, and a few packets' worth stays well inside L1.
const KEYS_AHEAD: usize = 3;

/// The SPI and sequence number (low 32 bits) of each frame of a batch to
/// decapsulate, as [`prefetch_sas`] read them.
type EspHeaders = [Option<(u32, u32)>; MAX_BATCH];

fn spi_of(header: Option<(u32, u32)>) -> Option<u32> {
    header.map(|(spi, _)| spi)
}

/// Asks for the key schedules and replay-window slot that frame `i` will
/// use if it is to be decrypted. Reads its SA, which [`prefetch_sas`]
/// asked for earlier.
fn prefetch_decap_keys(t: &Tables, stage: &[Stage], esp: &EspHeaders, i: usize) {
    if stage.get(i) != Some(&Stage::Decap) {
        return;
    }
    let header = esp.get(i).copied().flatten();
    if let Some((sa, seq)) = header.and_then(|(spi, seq)| Some((t.sadb.inbound(spi)?, seq))) {
        sa.prefetch_keys_and_window(u64::from(seq));
    }
}

/// Asks for the key schedules frame `i` will use if it is to be
/// encrypted (see [`prefetch_decap_keys`]).
fn prefetch_encap_keys(t: &Tables, stage: &[Stage], i: usize) {
    if let Some(Stage::Encap(spi)) = stage.get(i) {
        if let Some(sa) = t.sadb.outbound(*spi) {
            sa.prefetch_keys();
        }
    }
}

/// Routes a frame in the clear (or one just encrypted): next hop, MTU
/// (an ICMP error back to an inside sender, or fragmentation), PAT when
/// `translate` (the packet leaves the inside unprotected), link layer.
fn forward(
    t: &mut Tables,
    rx_ifindex: u32,
    f: &mut PacketBuf<'_>,
    bypass: bool,
    translate: bool,
    now: u64,
    c: &PipelineCounters,
) -> Stage {
    let drop = |reason| {
        c.drops.inc(reason);
        Stage::Done(Action::Drop(reason))
    };
    let hop = match next_hop(t, f) {
        Ok(hop) => hop,
        Err(reason) => return drop(reason),
    };
    let mut hop = hop;
    if f.len > usize::from(hop.mtu) {
        if !must_not_fragment(f.data()) {
            // Translated whole, then split: every fragment carries the
            // translated header and needs no NAT of its own.
            if translate {
                if let Some(Err(reason)) = t.pat.as_mut().map(|p| p.outbound(f, hop.ifindex, now)) {
                    return drop(reason);
                }
            }
            let then = AfterFragmenting::Forward { bypass };
            return fragment_stage(f.data(), usize::from(hop.mtu), then, c);
        }
        // Too big and must not be fragmented: the inside sender learns the
        // MTU (the error quotes its own, untranslated, packet).
        let mtu = hop.mtu;
        if !(rx_is_inside(t, rx_ifindex)
            && send_icmp(t, rx_ifindex, f, IcmpError::TooBig { mtu }, c))
        {
            return drop(DropReason::TooBig);
        }
        // The packet is gone, replaced by the error about it.
        c.drops.inc(DropReason::TooBig);
        hop = match next_hop(t, f) {
            Ok(hop) if f.len <= usize::from(hop.mtu) => hop,
            Ok(_) => return drop(DropReason::TooBig),
            Err(reason) => return drop(reason),
        };
    } else if translate {
        if let Some(Err(reason)) = t.pat.as_mut().map(|p| p.outbound(f, hop.ifindex, now)) {
            return drop(reason);
        }
    }
    match write_link_header(f, &hop) {
        Ok(()) => {
            if bypass {
                bump(&c.bypassed);
            }
            Stage::Done(Action::Transmit {
                ifindex: hop.ifindex,
            })
        }
        Err(reason) => drop(reason),
    }
}

fn rx_is_inside(t: &Tables, rx_ifindex: u32) -> bool {
    t.fib.interface(rx_ifindex).map(|i| i.role) == Some(PortRole::Inside)
}

/// The second pass for a frame whose action was [`Action::Fragment`]. The
/// worker calls it with that frame, as [`process_batch`] left it, in
/// `frames[0]` and `job.count() - 1` fresh frames behind it, each with
/// `start` at its headroom (their `len` is ignored). Fragments 1.. are
/// written into the fresh frames, frame 0 is cut down to fragment 0 in
/// place (no copy), then each is encrypted (when the packet was for an SA)
/// and routed as one small batch; `actions[i]` receives the fate of
/// `frames[i]`.
///
/// Returns how many frames were used, always at least frame 0 when given
/// one; the caller takes the others back untouched. With too few frames
/// the packet is dropped as [`DropReason::NoFreeFrame`].
pub fn fragment_frames(
    t: &Tables,
    job: FragmentJob,
    frames: &mut [PacketBuf<'_>],
    actions: &mut [Action],
    c: &PipelineCounters,
) -> usize {
    let n = job.count();
    if frames.is_empty() || actions.is_empty() {
        return 0;
    }
    let refused = if frames.len() < n || actions.len() < n {
        Some(DropReason::NoFreeFrame)
    } else if n > MAX_FRAGMENTS {
        Some(DropReason::TooBig)
    } else {
        split_into(&mut frames[..n], usize::from(job.max_ip_len))
            .err()
            .map(FragError::drop_reason)
    };
    if let Some(reason) = refused {
        c.drops.inc(reason);
        actions[0] = Action::Drop(reason);
        return 1;
    }
    bump(&c.fragmented);
    c.fragments.fetch_add(n as u64, Ordering::Relaxed);
    let (frames, actions) = (&mut frames[..n], &mut actions[..n]);
    let mut stage = [Stage::Done(Action::ToKernel); MAX_FRAGMENTS];
    let stage = &mut stage[..n];
    stage.fill(match job.then {
        AfterFragmenting::Encap(spi) => Stage::Encap(spi),
        AfterFragmenting::Forward { bypass } => Stage::Forward { bypass },
    });
    encrypt(t, frames, stage, c);
    for ((a, s), f) in actions.iter_mut().zip(stage.iter()).zip(frames.iter_mut()) {
        *a = match *s {
            // Fragments were cut to fit: no ICMP, no second split.
            Stage::Forward { bypass } => match route(t, f) {
                Ok(ifindex) => {
                    if bypass {
                        bump(&c.bypassed);
                    }
                    Action::Transmit { ifindex }
                }
                Err(reason) => {
                    c.drops.inc(reason);
                    Action::Drop(reason)
                }
            },
            Stage::Done(action) => action,
            _ => Action::Drop(DropReason::Malformed),
        };
        if let Action::Transmit { .. } = a {
            bump(&c.tx);
        }
    }
    n
}

/// Writes fragments 1.. of the packet in `frames[0]` into the other
/// frames, then cuts `frames[0]` to fragment 0; on error frame 0 is left
/// as it was.
fn split_into(frames: &mut [PacketBuf<'_>], max_ip_len: usize) -> Result<(), FragError> {
    let (first, rest) = frames
        .split_first_mut()
        .ok_or(FragError::Malformed("no frame"))?;
    let plan = FragmentPlan::new(first.data(), max_ip_len)?;
    if plan.count() != rest.len() + 1 {
        return Err(FragError::TooManyFragments {
            needed: plan.count(),
        });
    }
    for (i, f) in rest.iter_mut().enumerate() {
        let out = f
            .frame
            .get_mut(f.start..)
            .ok_or(FragError::BufferTooSmall)?;
        f.len = plan.write(first.data(), i + 1, out)?;
        f.verdict = Ok(());
    }
    let end = first.start.saturating_add(first.len);
    let packet = first
        .frame
        .get_mut(first.start..end)
        .ok_or(FragError::Malformed("packet outside its frame"))?;
    first.len = plan.cut_to_first(packet)?;
    Ok(())
}

/// Plans the split of a too-big packet for `max_ip_len`: the frame ends as
/// [`Action::Fragment`], or as a counted drop when it cannot be split.
fn fragment_stage(
    packet: &[u8],
    max_ip_len: usize,
    then: AfterFragmenting,
    c: &PipelineCounters,
) -> Stage {
    let max_ip_len = max_ip_len.min(usize::from(u16::MAX));
    let reason = match FragmentPlan::new(packet, max_ip_len) {
        Ok(plan) if plan.count() <= MAX_FRAGMENTS => {
            return Stage::Done(Action::Fragment(FragmentJob {
                // Both bounded just above.
                count: plan.count() as u8,
                max_ip_len: max_ip_len as u16,
                then,
            }));
        }
        Ok(_) => DropReason::TooBig,
        Err(e) => e.drop_reason(),
    };
    c.drops.inc(reason);
    Stage::Done(Action::Drop(reason))
}

/// A frame from the outside that is a fragment of ESP to us goes to
/// reassembly: `Some` when that is its end (held, or dropped); `None`
/// for every other frame, and for the one that completed its datagram,
/// which now holds all of it and is classified as any ESP packet.
fn reassemble(
    t: &mut Tables,
    f: &mut PacketBuf<'_>,
    now: u64,
    c: &PipelineCounters,
) -> Option<Stage> {
    let hl = ethernet::Frame::new_checked(f.data())
        .ok()
        .filter(|eth| {
            let ty = eth.ethertype();
            // Tagged frames are `classify`'s to drop, whole or in pieces.
            eth.outer_tpid().is_none()
                && (ty == ethernet::ethertype::IPV4 || ty == ethernet::ethertype::IPV6)
        })?
        .header_len();
    let at = f.start + hl;
    let len = f.len.checked_sub(hl)?;
    let fed = t.reassembly.feed(f.frame, at, len, &t.local, now, &c.drops);
    let reason = match fed {
        Fed::NotFragment => return None,
        Fed::Complete(ip_len) => {
            bump(&c.reassembled);
            f.len = hl + ip_len;
            return None;
        }
        Fed::Queued => DropReason::FragmentQueued,
        Fed::Dropped(reason) => reason,
    };
    c.drops.inc(reason);
    Some(Stage::Done(Action::Drop(reason)))
}

/// Ethernet and IP parsing plus the policy decision. On success the frame
/// is narrowed to its IP packet.
fn classify(
    t: &Tables,
    role: Option<PortRole>,
    f: &mut PacketBuf<'_>,
    now: u64,
    c: &PipelineCounters,
) -> Stage {
    let drop = |reason| {
        c.drops.inc(reason);
        Stage::Done(Action::Drop(reason))
    };
    let Ok(eth) = ethernet::Frame::new_checked(f.data()) else {
        return drop(DropReason::Malformed);
    };
    let (ethertype, hl) = (eth.ethertype(), eth.header_len());
    if ethertype != ethernet::ethertype::IPV4 && ethertype != ethernet::ethertype::IPV6 {
        return Stage::Done(Action::ToKernel);
    }
    // The XDP program looks through one tag, but Espada has no VLAN
    // configuration: a tagged frame would be handled as if it came from
    // the interface's own network, and whatever it became would leave
    // untagged. Neither forwarded nor decrypted.
    if eth.outer_tpid().is_some() {
        return drop(DropReason::VlanTagged);
    }
    let packet = &f.data()[hl..];
    let Some((flow, portless)) = flow_of(packet) else {
        return drop(DropReason::Malformed);
    };
    let to_us = t.local.contains(&flow.dst);
    let stage = match (role, to_us) {
        // `decap` checks the outer header itself.
        (Some(PortRole::Outside), true) if is_esp(&flow) => Stage::Decap,
        // What the dataplane forwards, encrypts, translates or hands on
        // (RFC 1812 §5.2.2): a damaged IPv4 header is dropped here, not
        // passed on with its TTL decremented (whose incremental update
        // keeps a wrong checksum wrong) or sealed into ESP.
        (Some(PortRole::Outside), _) | (Some(PortRole::Inside), false)
            if !ipv4_header_intact(packet) =>
        {
            return drop(DropReason::BadIpChecksum);
        }
        // ICMP about ESP we sent: path MTU discovery.
        (Some(PortRole::Outside), true)
            if flow.proto == ip_proto::ICMP || flow.proto == ip_proto::ICMPV6 =>
        {
            match pmtu::parse(packet) {
                Some(m) => return drop(learn_path_mtu(t, &m, now)),
                None => Stage::NatIn { link_len: hl as u8 },
            }
        }
        // The XDP program sends only PAT return traffic besides ESP.
        (Some(PortRole::Outside), true) => Stage::NatIn { link_len: hl as u8 },
        // Transit on the outside: the XDP program sends only TED probes.
        (Some(PortRole::Outside), false)
            if flow.proto == ip_proto::UDP && flow.dst_port == IKE_PORT =>
        {
            return ted_probe(t, &f.data()[hl..], &flow, now, c);
        }
        // RFC 4291 §2.5.6: a router forwards nothing link-local (nor
        // puts it into a tunnel: VTIs protect fe80::/10 for the gateway's
        // own link-local traffic only).
        (Some(PortRole::Inside), false) if is_link_local(&flow.src) || is_link_local(&flow.dst) => {
            return drop(DropReason::NoRoute);
        }
        (Some(PortRole::Inside), false) => match policy(&t.spd, &flow, portless) {
            Some(PolicyAction::Protect { sa: Some(spi), .. }) => Stage::Encap(spi),
            // IOS drops the first packet and starts IKE (acquire).
            Some(PolicyAction::Protect { sa: None, map }) => {
                if let Some(tx) = &t.acquire {
                    // Full queue: acquires are already waiting; IKE needs one.
                    let _ = tx.try_send(AcquireRequest { tag: map, flow });
                }
                return drop(DropReason::NoOutboundSa);
            }
            Some(PolicyAction::Discard) => return drop(DropReason::PolicyDiscard),
            Some(PolicyAction::Bypass) | None => Stage::Forward { bypass: true },
        },
        _ => return Stage::Done(Action::ToKernel),
    };
    // The IP packet only: a frame under Ethernet's 60-byte minimum comes
    // padded, and the pad must neither be encrypted nor forwarded as
    // part of the packet (in transport mode the peer would hand it to
    // TCP as data). `flow_of` checked the IP length against the frame.
    let ip_len = ip_packet_len(&f.data()[hl..]).unwrap_or(f.len - hl);
    f.start += hl;
    f.len = ip_len.min(f.len - hl);
    stage
}

/// Applies an ICMP error's path MTU to its SA ([`pmtu::learn`]), given
/// the MTU of the route to the peer now.
fn learn_path_mtu(t: &Tables, m: &pmtu::TooBig, now_secs: u64) -> DropReason {
    pmtu::learn(&t.sadb, m, route_mtu(t, &m.to), now_secs)
}

/// The MTU of the interface the route to `dst` leaves by.
fn route_mtu(t: &Tables, dst: &IpAddr) -> Option<u16> {
    t.fib
        .route(dst)
        .and_then(|r| t.fib.interface(r.ifindex))
        .map(|i| i.mtu)
}

/// Whether an IPv4 header sums right; IPv6 has no header checksum. The
/// packet has passed [`flow_of`], so its header is whole.
fn ipv4_header_intact(packet: &[u8]) -> bool {
    packet.first().map(|b| b >> 4) != Some(4)
        || ipv4::Packet::new_checked(packet).is_ok_and(|ip| ip.verify_checksum())
}

/// The length an IP packet's header gives it: IPv4's total length, IPv6's
/// fixed header and payload length.
fn ip_packet_len(packet: &[u8]) -> Option<usize> {
    match packet.first()? >> 4 {
        4 => Some(usize::from(u16::from_be_bytes([
            *packet.get(2)?,
            *packet.get(3)?,
        ]))),
        6 => Some(
            ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?])),
        ),
        _ => None,
    }
}

/// What the SPD does with an inside packet's flow.
fn policy(spd: &Spd, flow: &FlowKey, portless: bool) -> Option<PolicyAction> {
    let rule = if portless {
        spd.lookup_portless(flow)
    } else {
        spd.lookup(flow)
    };
    rule.map(|(_, r)| r.action)
}

const IKE_PORT: u16 = 500;

/// ISAKMP (RFC 2408 §3.1): a 28-byte header whose byte 17 is the version,
/// 0x10 for IKEv1.
const ISAKMP_HEADER_LEN: usize = 28;
const ISAKMP_V1: u8 = 0x10;
/// The private-use exchange type of Espada's TED probes and responses
/// (`control::ike::wire::ikev1::ted`): other IKE in transit is not ours.
const ISAKMP_EXCHANGE_TED: u8 = 243;

/// Transit UDP/500 arriving on the outside. An IKEv1 message (a Tunnel
/// Endpoint Discovery probe for a host behind us) is not forwarded: it goes
/// to the management thread, which raises [`Event::TedProbe`] for the
/// control process, within the worker's per-second budget. Anything else
/// follows the outside transit path (the kernel's).
fn ted_probe(t: &Tables, packet: &[u8], flow: &FlowKey, now: u64, c: &PipelineCounters) -> Stage {
    let drop = |reason| {
        c.drops.inc(reason);
        Stage::Done(Action::Drop(reason))
    };
    let Some(payload) = udp_payload(packet) else {
        return Stage::Done(Action::ToKernel);
    };
    if payload.len() < ISAKMP_HEADER_LEN
        || payload[17] != ISAKMP_V1
        || payload[18] != ISAKMP_EXCHANGE_TED
    {
        return Stage::Done(Action::ToKernel);
    }
    let from = SocketAddr::new(flow.src, flow.src_port);
    let Some(req) = TedProbeRequest::new(from, flow.dst, payload) else {
        return Stage::Done(Action::ToKernel);
    };
    match c.ted.admit(now, flow.src) {
        TedAdmit::Yes => {}
        TedAdmit::OverTotal => return drop(DropReason::TedProbeRateLimited),
        TedAdmit::OverSource => return drop(DropReason::TedProbeSourceLimited),
    }
    // A full queue: the management thread is behind; the peer retries.
    match &t.ted {
        Some(tx) if tx.try_send(req).is_ok() => drop(DropReason::TedProbeDelivered),
        _ => drop(DropReason::TedProbeRateLimited),
    }
}

/// The payload of an unfragmented UDP datagram (`None` for anything else,
/// or when the UDP length does not fit the IP packet).
fn udp_payload(packet: &[u8]) -> Option<&[u8]> {
    let l4 = match packet.first()? >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(packet).ok()?;
            if ip.protocol() != ip_proto::UDP || ip.more_frags() || ip.frag_offset() != 0 {
                return None;
            }
            packet.get(ip.header_len()..usize::from(ip.total_len()))?
        }
        6 => {
            let ip = ipv6::Packet::new_checked(packet).ok()?;
            let walk = ip.walk_ext_headers().ok()?;
            if walk.upper_proto != ip_proto::UDP || walk.fragment.is_some() {
                return None;
            }
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            packet.get(walk.upper_offset..end)?
        }
        _ => return None,
    };
    let ulen = usize::from(u16::from_be_bytes([*l4.get(4)?, *l4.get(5)?]));
    l4.get(8..ulen)
}

/// ESP, or UDP-encapsulated ESP (the XDP program passes IKE and
/// keepalives on 4500 to the kernel, so what comes here on 4500 is ESP).
fn is_esp(flow: &FlowKey) -> bool {
    flow.proto == ip_proto::ESP || (flow.proto == ip_proto::UDP && flow.dst_port == 4500)
}

/// Addresses, protocol and ports of an IP packet; ports are 0 when the
/// protocol has none or the packet is a non-first fragment.
pub fn flow_key(packet: &[u8]) -> Option<FlowKey> {
    flow_of(packet).map(|(flow, _)| flow)
}

/// Replaces the frame's packet with an ICMP error about it, sent from our
/// address on the interface it came in on.
fn send_icmp(
    t: &Tables,
    rx_ifindex: u32,
    f: &mut PacketBuf<'_>,
    error: IcmpError,
    c: &PipelineCounters,
) -> bool {
    let v6 = f.data().first().is_some_and(|b| b >> 4 == 6);
    let Some(from) = t.addr_on(rx_ifindex, v6) else {
        return false;
    };
    let sent = icmp::make_error(f, error, from, &c.icmp, clock::now_ms());
    if sent {
        bump(&c.icmp_sent);
    }
    sent
}

/// IPv6 is never fragmented by routers; IPv4 only without DF.
fn must_not_fragment(packet: &[u8]) -> bool {
    match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4::Packet::new_checked(packet).is_ok_and(|ip| ip.dont_frag()),
        _ => true,
    }
}

fn dst_of(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => Some(IpAddr::V4(
            ipv4::Packet::new_checked(packet).ok()?.dst_addr(),
        )),
        6 => Some(IpAddr::V6(
            ipv6::Packet::new_checked(packet).ok()?.dst_addr(),
        )),
        _ => None,
    }
}

/// Before encrypting: a packet whose ESP form would not fit the outer
/// link gets "fragmentation needed" / "packet too big" with the inner MTU
/// that fits (RFC 4301 §8.2 PMTU for tunnels). An IPv4 packet without DF
/// for a tunnel-mode SA is fragmented to that inner MTU instead, each
/// fragment encrypted on its own (IOS "fragmentation before-encryption").
/// Transport mode protects whole datagrams only (RFC 4303 §3.3.4, and
/// `esp` refuses fragments there), so such a packet is dropped as too big.
fn check_tunnel_mtu(
    t: &Tables,
    rx_ifindex: u32,
    frames: &mut [PacketBuf<'_>],
    stage: &mut [Stage],
    now_secs: u64,
    c: &PipelineCounters,
) {
    for (s, f) in stage.iter_mut().zip(frames.iter_mut()) {
        let Stage::Encap(spi) = *s else { continue };
        let Some(sa) = t.sadb.outbound(spi) else {
            continue;
        };
        let outer_dst = match sa.mode() {
            EspMode::Tunnel { remote, .. } => Some(remote),
            EspMode::Transport => dst_of(f.data()),
        };
        let Some(link_mtu) = outer_dst.and_then(|d| route_mtu(t, &d)) else {
            continue; // the route stage reports the missing route
        };
        // What a router on the way said, if less (path MTU discovery).
        let mtu = usize::from(sa.path_mtu(now_secs).map_or(link_mtu, |p| p.min(link_mtu)));
        if encapsulated_len(sa, f.len) <= mtu {
            continue;
        }
        let inner_mtu = inner_mtu(sa, mtu);
        let tunnel = matches!(sa.mode(), EspMode::Tunnel { .. });
        if tunnel && !must_not_fragment(f.data()) {
            *s = fragment_stage(f.data(), inner_mtu, AfterFragmenting::Encap(spi), c);
            continue;
        }
        c.drops.inc(DropReason::TooBig);
        let mtu = inner_mtu as u16;
        *s = if must_not_fragment(f.data())
            && send_icmp(t, rx_ifindex, f, IcmpError::TooBig { mtu }, c)
        {
            // The gateway's own packet: its kernel learns the MTU.
            if t.tunnels.tag_of(rx_ifindex).is_some() {
                Stage::Done(Action::ToTunnel {
                    ifindex: rx_ifindex,
                })
            } else {
                Stage::Forward { bypass: false }
            }
        } else {
            Stage::Done(Action::Drop(DropReason::TooBig))
        };
    }
}

/// Routers decrement the TTL (hop limit) of what they forward, before
/// encapsulating it; a packet that would reach zero is dropped.
fn decrement_ttl(frame: &mut [u8], start: usize, len: usize) -> Result<(), DropReason> {
    let packet = frame
        .get_mut(start..start + len)
        .ok_or(DropReason::Malformed)?;
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let mut ip = ipv4::Packet::new_unchecked(packet);
            if ip.ttl() <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            ip.decrement_ttl_incremental();
        }
        Some(6) => {
            let mut ip = ipv6::Packet::new_unchecked(packet);
            let hops = ip.hop_limit();
            if hops <= 1 {
                return Err(DropReason::TtlExceeded);
            }
            ip.set_hop_limit(hops - 1);
        }
        _ => return Err(DropReason::Malformed),
    }
    Ok(())
}

/// Hash buckets of [`SpiCounts`]. In a worker's batch of 64 frames of
/// distinct SAs a frame shares its bucket with another about 6% of the
/// time (then the batch is scanned for it as before); at 256, about 22%.
const SPI_BUCKETS: usize = 1024;
const _: () = assert!(SPI_BUCKETS.is_power_of_two() && SPI_BUCKETS > 1);

/// How many of a batch's frames fall in each SPI hash bucket. A frame
/// whose bucket holds only itself has its SA to itself in the batch,
/// known without scanning the rest of the batch for another of its SA:
/// that scan per frame is quadratic when every frame has its own SA,
/// which is the many-SA case.
struct SpiCounts([u8; SPI_BUCKETS]);

impl SpiCounts {
    fn new(spis: impl Iterator<Item = u32>) -> Self {
        let mut counts = [0u8; SPI_BUCKETS];
        for spi in spis {
            let c = &mut counts[Self::bucket(spi)];
            *c = c.saturating_add(1);
        }
        Self(counts)
    }

    /// The top 10 bits of a multiplicative hash: SPIs handed out in
    /// sequence spread as well as random ones.
    fn bucket(spi: u32) -> usize {
        (spi.wrapping_mul(0x9e37_79b9) >> (32 - SPI_BUCKETS.trailing_zeros())) as usize
    }

    /// False only when no other frame counted can have `spi`.
    fn maybe_shared(&self, spi: u32) -> bool {
        self.0[Self::bucket(spi)] > 1
    }
}

/// The SAs of a batch with one packet each, waiting to be sealed
/// ([`encap_across`]) or opened ([`decap_across`]) together: every SA's
/// suite of one concrete type that takes a key per lane.
struct Lone<'t, S> {
    at: [usize; ACROSS],
    sas: [Option<&'t S>; ACROSS],
    /// The first one's suite, which the others' must match.
    kind: Option<&'t dyn EspSuite>,
    n: usize,
}

impl<'t, S> Lone<'t, S> {
    fn new() -> Self {
        Lone {
            at: [0; ACROSS],
            sas: [None; ACROSS],
            kind: None,
            n: 0,
        }
    }

    /// Takes frame `i` of `sa` (whose suite is `suite`) if its suite goes
    /// with those taken; `false` when it does not (the caller handles it
    /// alone).
    fn take(&mut self, i: usize, sa: &'t S, suite: &'t dyn EspSuite) -> bool {
        if !suite.lanes_across() || self.kind.is_some_and(|k| !same_suite_type(k, suite)) {
            return false;
        }
        self.kind.get_or_insert(suite);
        self.at[self.n] = i;
        self.sas[self.n] = Some(sa);
        self.n += 1;
        true
    }

    fn full(&self) -> bool {
        self.n == ACROSS
    }
}

impl Lone<'_, InboundSa> {
    /// Decrypts what was taken, each frame's outcome into `stage` by
    /// `to_stage`.
    fn flush(
        &mut self,
        sadb: &Sadb,
        frames: &mut [PacketBuf<'_>],
        stage: &mut [Stage],
        drops: &DropCounters,
        mut to_stage: impl FnMut(Result<Decapped, DropReason>) -> Stage,
    ) {
        if self.n == 0 {
            return;
        }
        let out = decap_across(sadb, frames, &self.at[..self.n], drops);
        for (&i, r) in self.at[..self.n].iter().zip(out) {
            stage[i] = to_stage(r);
        }
        *self = Lone::new();
    }
}

/// Decapsulates per SA: an SA with several packets in the batch has them
/// opened in one batched call (its suite may verify their ICVs side by
/// side); SAs with a single packet (traffic over many SAs) have theirs
/// opened together, a key per lane, where the suite can
/// ([`Lone`]), or one at a time, as [`encrypt`] does. Returns how
/// many were decrypted.
fn decrypt(
    t: &Tables,
    frames: &mut [PacketBuf<'_>],
    stage: &mut [Stage],
    esp: &EspHeaders,
    c: &PipelineCounters,
) -> u64 {
    let n = stage.len().min(frames.len());
    if !stage[..n].contains(&Stage::Decap) {
        return 0;
    }
    let counts = SpiCounts::new(
        (0..n)
            .filter(|&j| stage[j] == Stage::Decap)
            .filter_map(|j| spi_of(esp[j])),
    );
    let mut decapsulated = 0;
    let mut out = [Ok(Decapped::NotEsp); MAX_BATCH];
    let to_stage = |r: Result<Decapped, DropReason>, count: &mut u64| match r {
        Ok(Decapped::Inner { .. }) => {
            *count += 1;
            Stage::Forward { bypass: false }
        }
        Ok(_) => Stage::Done(Action::ToKernel),
        Err(reason) => Stage::Done(Action::Drop(reason)),
    };
    let mut across = Lone::<InboundSa>::new();
    for i in 0..n {
        prefetch_decap_keys(t, stage, esp, i + KEYS_AHEAD);
        if stage[i] != Stage::Decap {
            continue;
        }
        // Earlier packets of this SA are done already: look from `i` on.
        let mine = spi_of(esp[i]);
        let ours = |j: usize| stage[j] == Stage::Decap && spi_of(esp[j]) == mine;
        let shared = mine.is_some_and(|spi| counts.maybe_shared(spi));
        if !shared || !(i + 1..n).any(ours) {
            let sa = mine.and_then(|spi| t.sadb.inbound(spi));
            if sa.is_some_and(|sa| across.take(i, sa, sa.suite())) {
                if across.full() {
                    across.flush(&t.sadb, frames, stage, &c.drops, |r| {
                        to_stage(r, &mut decapsulated)
                    });
                }
                continue;
            }
            // `decap` counts its own drops (on the SA, or globally).
            stage[i] = to_stage(decap(&t.sadb, &mut frames[i], &c.drops), &mut decapsulated);
            continue;
        }
        let picked: [bool; MAX_BATCH] = std::array::from_fn(|j| j >= i && j < n && ours(j));
        decap_batch_where(
            &t.sadb,
            &mut frames[i..n],
            |j| picked[i + j],
            &mut out[i..n],
            &c.drops,
        );
        for j in i..n {
            if picked[j] {
                stage[j] = to_stage(out[j], &mut decapsulated);
            }
        }
    }
    across.flush(&t.sadb, frames, stage, &c.drops, |r| {
        to_stage(r, &mut decapsulated)
    });
    decapsulated
}

/// Decrypted packets addressed to one of the gateway's own addresses are
/// not forwarded (the route to our own address would only fail for want
/// of a neighbour). They go to the kernel through a tunnel interface
/// ([`crate::tunif`]) when its tunnel would carry the kernel's answer
/// back: the SPD protects the answer's flow with that interface's crypto
/// map entry, or the packet goes from link-local to a link-local address
/// of that interface (`ping FE80::23:3` over Tunnel23, seeds 000/001).
/// The SA that decrypted it must be that interface's: a VTI's SAs take
/// any inner source, so another peer could otherwise have its packets
/// taken for this tunnel's. Any other is dropped as
/// [`DropReason::ForGateway`]: handed to the kernel, its answer would
/// leave in the clear. `decapping` marks the frames that were given to
/// [`decrypt`], `esp` their SPIs.
fn deliver_for_gateway(
    t: &Tables,
    frames: &[PacketBuf<'_>],
    stage: &mut [Stage],
    decapping: &[bool; MAX_BATCH],
    esp: &EspHeaders,
    c: &PipelineCounters,
) {
    for (((s, f), _), header) in stage
        .iter_mut()
        .zip(frames)
        .zip(decapping)
        .zip(esp)
        .filter(|((_, &was), _)| was)
    {
        if *s != (Stage::Forward { bypass: false }) {
            continue;
        }
        let Some(dst) = dst_of(f.data()) else {
            continue;
        };
        if !t.local.contains(&dst) {
            continue;
        }
        let port = tunnel_for_gateway(t, f.data(), dst)
            .filter(|&(_, tag)| spi_of(*header).is_some_and(|spi| decrypted_by(t, spi, tag)));
        *s = match port {
            Some((ifindex, _)) => Stage::Done(Action::ToTunnel { ifindex }),
            None => {
                c.drops.inc(DropReason::ForGateway);
                Stage::Done(Action::Drop(DropReason::ForGateway))
            }
        };
    }
}

/// The tunnel interface (ifindex, crypto map entry) a decrypted packet
/// for the gateway (to `dst`) is delivered through, if any: see
/// [`deliver_for_gateway`].
fn tunnel_for_gateway(t: &Tables, packet: &[u8], dst: IpAddr) -> Option<(u32, PolicyTag)> {
    if t.tunnels.is_empty() {
        return None;
    }
    let (flow, portless) = flow_of(packet)?;
    if is_link_local(&flow.src) && is_link_local(&dst) {
        let mut on = t
            .iface_addrs
            .iter()
            .filter(|(_, a)| *a == dst)
            .filter_map(|&(i, _)| Some((i, t.tunnels.tag_of(i)?)));
        return match (on.next(), on.next()) {
            (Some(port), None) => Some(port),
            // The same link-local address on two tunnels: which one the
            // answer would take is not ours to guess.
            _ => None,
        };
    }
    let answer = FlowKey {
        src: flow.dst,
        dst: flow.src,
        proto: flow.proto,
        src_port: flow.dst_port,
        dst_port: flow.src_port,
    };
    match policy(&t.spd, &answer, portless)? {
        PolicyAction::Protect { map, .. } => Some((t.tunnels.ifindex_of(map)?, map)),
        PolicyAction::Bypass | PolicyAction::Discard => None,
    }
}

/// The outbound SA of a VTI's entry: `None` when the entry has no SPD
/// rule, `Some(None)` while nothing is negotiated. Its rules come first in
/// the SPD, so the scan is short.
fn vti_outbound(t: &Tables, tag: PolicyTag) -> Option<Option<u32>> {
    t.spd.rules().iter().find_map(|r| match r.action {
        PolicyAction::Protect { sa, map } if map == tag => Some(sa),
        _ => None,
    })
}

/// Whether inbound SA `spi` is one of entry `tag`'s: it comes from the
/// peer that the entry's outbound SA goes to (a VTI has one peer).
fn decrypted_by(t: &Tables, spi: u32, tag: PolicyTag) -> bool {
    let Some(inbound) = t.sadb.inbound(spi) else {
        return false;
    };
    let Some(outbound) = vti_outbound(t, tag)
        .flatten()
        .and_then(|o| t.sadb.outbound(o))
    else {
        return false;
    };
    match (inbound.mode(), outbound.mode()) {
        (EspMode::Tunnel { remote: from, .. }, EspMode::Tunnel { remote: to, .. }) => from == to,
        _ => false,
    }
}

/// A packet the kernel sent into a tunnel interface: the gateway's own,
/// encrypted with the interface's crypto map entry whatever its
/// destination (the kernel's routes put it there, link-local included),
/// after the checks an inside packet gets. The frame is the reader's
/// (`tunif`): a zeroed Ethernet header, then the packet.
fn classify_from_tunnel(
    t: &Tables,
    tag: PolicyTag,
    f: &mut PacketBuf<'_>,
    c: &PipelineCounters,
) -> Stage {
    let drop = |reason| {
        c.drops.inc(reason);
        Stage::Done(Action::Drop(reason))
    };
    let hl = ethernet::HEADER_LEN;
    let Some(packet) = f.data().get(hl..) else {
        return drop(DropReason::Malformed);
    };
    let Some((flow, _)) = flow_of(packet) else {
        return drop(DropReason::Malformed);
    };
    if !ipv4_header_intact(packet) {
        return drop(DropReason::BadIpChecksum);
    }
    if flow.dst.is_multicast() {
        return drop(DropReason::TunnelMulticast);
    }
    let stage = match vti_outbound(t, tag) {
        Some(Some(spi)) => Stage::Encap(spi),
        Some(None) => {
            if let Some(tx) = &t.acquire {
                let _ = tx.try_send(AcquireRequest { tag, flow });
            }
            return drop(DropReason::NoOutboundSa);
        }
        None => return drop(DropReason::TunnelNoPolicy),
    };
    let ip_len = ip_packet_len(packet).unwrap_or(packet.len());
    f.start += hl;
    f.len = ip_len.min(f.len - hl);
    stage
}

impl Lone<'_, OutboundSa> {
    /// Encrypts what was taken; returns how many were encapsulated.
    fn flush(&mut self, frames: &mut [PacketBuf<'_>], stage: &mut [Stage]) -> u64 {
        let Some(first) = self.sas[0] else {
            return 0;
        };
        let picked: [(usize, &OutboundSa); ACROSS] =
            std::array::from_fn(|j| (self.at[j], self.sas[j].unwrap_or(first)));
        encap_across(frames, &picked[..self.n]);
        let mut encapsulated = 0;
        for &i in &self.at[..self.n] {
            stage[i] = encap_stage(frames[i].verdict, &mut encapsulated);
        }
        *self = Lone::new();
        encapsulated
    }
}

/// A frame's stage after encapsulation, counting the encapsulated.
fn encap_stage(verdict: Result<(), DropReason>, count: &mut u64) -> Stage {
    match verdict {
        Ok(()) => {
            *count += 1;
            Stage::Forward { bypass: false }
        }
        Err(reason) => Stage::Done(Action::Drop(reason)),
    }
}

/// Encrypts per SA, each SA's packets in one batched call, frames staying
/// where they are. SAs with one packet in the batch (traffic over many
/// SAs) have theirs encrypted together, a key per lane, where the suite
/// can ([`Lone`]), or one at a time, not as batches of one.
fn encrypt(t: &Tables, frames: &mut [PacketBuf<'_>], stage: &mut [Stage], c: &PipelineCounters) {
    let encap_spi = |s: &Stage| match *s {
        Stage::Encap(spi) => Some(spi),
        _ => None,
    };
    if !stage.iter().any(|s| encap_spi(s).is_some()) {
        return;
    }
    let counts = SpiCounts::new(stage.iter().filter_map(encap_spi));
    for i in 0..KEYS_AHEAD {
        prefetch_encap_keys(t, stage, i);
    }
    let mut encapsulated = 0;
    let to_stage = encap_stage;
    let mut across = Lone::<OutboundSa>::new();
    for i in 0..stage.len() {
        prefetch_encap_keys(t, stage, i + KEYS_AHEAD);
        let Stage::Encap(spi) = stage[i] else {
            continue;
        };
        // Earlier packets of this SA are done already: look from `i` on.
        let mine = Stage::Encap(spi);
        let alone = !counts.maybe_shared(spi) || !stage[i + 1..].contains(&mine);
        match t.sadb.outbound(spi) {
            Some(sa) if alone => {
                // Its fate is its own: no pass over the rest of the batch
                // (with every packet its SA's only one, that pass made
                // the loop quadratic in the batch).
                if across.take(i, sa, sa.suite()) {
                    if across.full() {
                        encapsulated += across.flush(frames, stage);
                    }
                    continue;
                }
                encap_single(sa, &mut frames[i]);
                stage[i] = to_stage(frames[i].verdict, &mut encapsulated);
                continue;
            }
            Some(sa) => encap_batch_where(sa, &mut frames[i..], |j| stage[i + j] == mine),
            None => {
                // The SPD names an SA that was deleted: as if none yet.
                for (f, _) in frames[i..]
                    .iter_mut()
                    .zip(&stage[i..])
                    .filter(|(_, s)| **s == mine)
                {
                    f.verdict = Err(DropReason::NoOutboundSa);
                    c.drops.inc(DropReason::NoOutboundSa);
                }
            }
        }
        for (s, f) in stage[i..].iter_mut().zip(frames[i..].iter()) {
            if *s == mine {
                *s = to_stage(f.verdict, &mut encapsulated);
            }
        }
    }
    encapsulated += across.flush(frames, stage);
    add(&c.encapsulated, encapsulated);
}

/// Looks the destination up, checks the MTU and writes the Ethernet header
/// in front of the packet.
fn route(t: &Tables, f: &mut PacketBuf<'_>) -> Result<u32, DropReason> {
    let hop = next_hop(t, f)?;
    if f.len > usize::from(hop.mtu) {
        return Err(DropReason::TooBig);
    }
    write_link_header(f, &hop)?;
    Ok(hop.ifindex)
}

/// The next hop of the packet's destination; a missing neighbour is asked
/// of the kernel (through the management thread) and reported.
fn next_hop(t: &Tables, f: &PacketBuf<'_>) -> Result<NextHop, DropReason> {
    let dst = dst_of(f.data()).ok_or(DropReason::Malformed)?;
    t.fib.resolve(&dst).map_err(|miss| match miss {
        FibMiss::NoRoute => DropReason::NoRoute,
        FibMiss::NoNeighbour { ifindex, addr } => {
            // Ask the management thread to have the kernel resolve it; a
            // full queue means a request is already on its way.
            if let Some(tx) = &t.resolve {
                let _ = tx.try_send(NeighbourRequest { ifindex, addr });
            }
            DropReason::NoNeighbour
        }
    })
}

/// Writes the Ethernet header for `hop` in front of the packet.
fn write_link_header(f: &mut PacketBuf<'_>, hop: &NextHop) -> Result<(), DropReason> {
    let ethertype = match f.data().first().map(|b| b >> 4) {
        Some(4) => ethernet::ethertype::IPV4,
        Some(6) => ethernet::ethertype::IPV6,
        _ => return Err(DropReason::Malformed),
    };
    if f.start < ethernet::HEADER_LEN {
        return Err(DropReason::NoRoom);
    }
    f.start -= ethernet::HEADER_LEN;
    f.len += ethernet::HEADER_LEN;
    let repr = ethernet::Repr {
        src_addr: hop.src_mac,
        dst_addr: hop.dst_mac,
        ethertype,
        vlan_id: None,
        inner_vlan_id: None,
    };
    let end = f.start + f.len;
    let frame = f.frame.get_mut(f.start..end).ok_or(DropReason::Malformed)?;
    repr.emit(&mut ethernet::Frame::new_unchecked(frame));
    Ok(())
}

#[cfg(test)]
mod tests;
