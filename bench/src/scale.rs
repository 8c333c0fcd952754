//! `espada-bench scale`: the dataplane's per-packet cost through the
//! workers' own pipeline (`pipeline::process_batch`: classify, SPD lookup
//! by selector, outbound SA by SPI, encapsulation, TTL, routing, link
//! layer; on the way in: inbound SA by SPI, decapsulation, the anti-replay
//! window, routing) with 1, 1 000 and 100 000 SAs installed, traffic spread
//! over every SA in a random order, on one core; then 1 against 2 worker
//! threads, and one SA shared by 2 workers (the lock-free replay window)
//! against one worker.
//!
//! Two gateways are built in memory, like the pipeline's own tests: gateway
//! A has `n` crypto-map rules (LAN 198.19.255.0/24 to host `i`) each with
//! its outbound SA to peer 198.18.1.1; gateway B holds the `n` matching
//! inbound SAs. Frames are copied into the batch's buffers before each pass
//! (as a NIC writes a received frame), and that copy is timed.

use crate::flags::Flags;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dataplane::api::{Direction, EspMode, Lifetime, SaKeys, SaParams};
use dataplane::counters::DropReason;
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::esp::PacketBuf;
use dataplane::pipeline::{process_batch, Action, PipelineCounters, Tables};
use dataplane::replay::ReplayWindow;
use dataplane::route::{Interface, PortRole, Route};
use dataplane::sa::InboundSa;
use dataplane::spd::{IpPrefix, PolicyAction, PolicyTag, PortRange, Spd, SpdRule, TrafficSelector};
use dataplane::testkit::{keys, udp_v4, FRAME, HEADROOM};
use dataplane::wire::ethernet::{self, EthernetAddress};
use dataplane::wire::ipv4;
use serde::Serialize;

use crate::ike_bench::thread_cpu_ns;
use crate::rng::Rng;

const LAN_IF: u32 = 1;
const WAN_IF: u32 = 2;
const TAG: PolicyTag = PolicyTag { map: 1, seq: 10 };
/// Gateway A's and B's WAN addresses.
const WAN_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const WAN_B: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The protected hosts behind B: 198.18.16.0 + i (100 000 fit below
/// 198.19.255.0, the LANs' subnet here; nothing leaves memory).
const HOSTS: u32 = 0xC612_1000;
const LAN_HOST: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 10);
/// Largest SA count accepted.
pub const MAX_SAS: usize = 1_000_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub sa_counts: Vec<usize>,
    /// Inner IP packet sizes in bytes the SA-count test runs at, each
    /// against its own 1-SA figure: small packets show the table and key
    /// misses at their starkest, 1400 bytes is the size the targets name.
    pub sa_sizes: Vec<usize>,
    /// Inner IP packet size in bytes of the worker tests.
    pub size: usize,
    pub batch: usize,
    /// Per measurement point.
    pub duration: Duration,
    pub enc: EncAlg,
    pub auth: AuthAlg,
    pub suite: String,
    /// SAs per worker in the worker-scaling test.
    pub worker_sas: usize,
    /// Replay window of the inbound SAs (packets).
    pub replay_window: u32,
}

/// One measurement point. `test`: "sas" (one core, `sas` SAs), "workers"
/// (`workers` threads, each with its own `sas` SAs, encap), "shared_sa"
/// (one inbound SA decapsulated by `workers` threads at once).
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub test: &'static str,
    pub suite: String,
    pub direction: &'static str,
    pub size: usize,
    pub sas: usize,
    pub workers: usize,
    pub packets: u64,
    /// Wall time of the measurement (the longest worker's).
    pub seconds: f64,
    /// Thread CPU time, all workers together.
    pub cpu_seconds: f64,
    /// Million packets per second: per CPU second with one worker, per
    /// wall second (all workers) with several.
    pub mpps: f64,
    /// CPU nanoseconds per packet (all workers' CPU over all packets).
    pub ns_per_packet: f64,
    /// Against the first point of the same test and direction (1 SA, or
    /// 1 worker): cost ratio for "sas" (ns/packet over the 1-SA figure),
    /// throughput ratio for "workers" and "shared_sa".
    pub ratio: f64,
    /// CPU per packet against the first point of the same test and
    /// direction: 1.0 means no extra cost (contention, cache misses).
    pub cpu_ratio: f64,
    /// Packets the replay window refused (shared_sa only: a worker that
    /// falls behind the other by more than the window).
    pub replay_drops: u64,
}

fn mac(b: u8) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, b])
}

fn host(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(HOSTS + i as u32)
}

/// SPIs spread over 28 bits (an odd multiplier is a bijection), as random
/// SPIs are: the SADB hash must not see a friendly sequence.
fn spi(i: usize) -> u32 {
    0x1000_0000 | ((i as u32).wrapping_mul(0x9E37_79B1) & 0x0FFF_FFFF)
}

/// SA `i`'s keys: each SA its own, as a hub's are (the crypto that takes
/// packets of different SAs side by side must give each its own key).
fn sa_keys(o: &Options, i: usize) -> SaKeys {
    let mut k = keys(o.enc, o.auth);
    for (j, b) in k.enc.iter_mut().chain(k.auth.iter_mut()).enumerate() {
        *b ^= (i >> (8 * (j % 4))) as u8;
    }
    k
}

fn sa_params(o: &Options, i: usize, direction: Direction) -> SaParams {
    let (a, b) = (IpAddr::V4(WAN_A), IpAddr::V4(WAN_B));
    let (local, remote) = match direction {
        Direction::Outbound => (a, b),
        Direction::Inbound => (b, a),
    };
    SaParams {
        spi: spi(i),
        direction,
        enc: o.enc,
        auth: o.auth,
        keys: sa_keys(o, i),
        mode: EspMode::Tunnel { local, remote },
        udp_encap: None,
        esn: false,
        replay_window: match direction {
            Direction::Outbound => 0,
            Direction::Inbound => o.replay_window,
        },
        lifetime: Lifetime::default(),
        // The pair's crypto-map line, read from each gateway's side: B's
        // inbound SAs check every decrypted packet against it.
        selectors: vec![match direction {
            Direction::Outbound => pair_selector(LAN, host(i)),
            Direction::Inbound => {
                let s = pair_selector(LAN, host(i));
                TrafficSelector {
                    src: s.dst,
                    dst: s.src,
                    ..s
                }
            }
        }],
    }
}

/// The interfaces, routes and neighbours of side 1 (A) or 2 (B): LAN
/// 198.19.255.0/24 inside, WAN 198.18.(side-1).1/24 outside. A routes
/// everything else to the WAN router, B (where the protected hosts are) to
/// a LAN router.
fn base_tables(side: u8) -> Result<Tables> {
    let mut t = Tables::default();
    let wan_me = IpAddr::V4(Ipv4Addr::new(198, 18, side - 1, 1));
    let wan_router = IpAddr::V4(Ipv4Addr::new(198, 18, side - 1, 254));
    let lan_router = IpAddr::V4(Ipv4Addr::new(198, 19, 255, 254));
    let lan_me = IpAddr::V4(Ipv4Addr::new(198, 19, 255, 1));
    for (ifindex, role) in [(LAN_IF, PortRole::Inside), (WAN_IF, PortRole::Outside)] {
        t.fib.add_interface(Interface {
            ifindex,
            mac: mac(side * 16 + ifindex as u8),
            mtu: 1500,
            role,
        });
    }
    let prefix = |a: IpAddr, len| IpPrefix::new(a, len).context("prefix");
    t.fib.add_route(Route {
        prefix: prefix(lan_me, 24)?,
        ifindex: LAN_IF,
        gateway: None,
    });
    t.fib.add_route(Route {
        prefix: prefix(wan_me, 24)?,
        ifindex: WAN_IF,
        gateway: None,
    });
    let default = if side == 1 {
        (WAN_IF, wan_router)
    } else {
        // B reaches A's WAN through its router, the hosts through the LAN.
        t.fib.add_route(Route {
            prefix: prefix(IpAddr::V4(WAN_A), 24)?,
            ifindex: WAN_IF,
            gateway: Some(wan_router),
        });
        (LAN_IF, lan_router)
    };
    t.fib.add_route(Route {
        prefix: IpPrefix::any_v4(),
        ifindex: default.0,
        gateway: Some(default.1),
    });
    t.fib.set_neighbour(WAN_IF, wan_router, mac(0xfe));
    t.fib.set_neighbour(LAN_IF, lan_router, mac(0xfd));
    t.fib
        .set_neighbour(LAN_IF, IpAddr::V4(LAN_HOST), mac(side * 16 + 10));
    t.local = vec![wan_me, lan_me];
    t.iface_addrs = vec![(LAN_IF, lan_me), (WAN_IF, wan_me)];
    Ok(t)
}

/// A's LAN, where the traffic comes from.
const LAN: Ipv4Addr = Ipv4Addr::new(198, 19, 255, 0);

/// Crypto-map line `i` as A reads it: A's LAN to host `i`.
fn pair_selector(lan: Ipv4Addr, host: Ipv4Addr) -> TrafficSelector {
    TrafficSelector {
        src: IpPrefix::new(IpAddr::V4(lan), 24).unwrap_or_else(IpPrefix::any_v4),
        dst: IpPrefix::host(IpAddr::V4(host)),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

/// Gateway A with `n` crypto-map rules, one outbound SA each.
fn gateway_a(o: &Options, n: usize) -> Result<Tables> {
    let mut t = base_tables(1)?;
    let rules = (0..n)
        .map(|i| SpdRule {
            selector: pair_selector(LAN, host(i)),
            action: PolicyAction::Protect {
                sa: Some(spi(i)),
                map: TAG,
            },
        })
        .collect();
    t.spd = Spd::new(rules);
    for i in 0..n {
        t.sadb
            .install(&sa_params(o, i, Direction::Outbound), 0)
            .context("outbound SA")?;
    }
    Ok(t)
}

/// Gateway B with the `n` inbound SAs.
fn gateway_b(o: &Options, n: usize) -> Result<Tables> {
    let mut t = base_tables(2)?;
    for i in 0..n {
        t.sadb
            .install(&sa_params(o, i, Direction::Inbound), 0)
            .context("inbound SA")?;
    }
    Ok(t)
}

/// Frames laid out at a fixed stride in one buffer.
struct FrameSet {
    data: Vec<u8>,
    lens: Vec<u16>,
    stride: usize,
}

impl FrameSet {
    fn new(stride: usize) -> FrameSet {
        FrameSet {
            data: Vec::new(),
            lens: Vec::new(),
            stride,
        }
    }
    fn push(&mut self, frame: &[u8]) -> Result<()> {
        if frame.len() > self.stride {
            bail!("frame of {} bytes over the stride", frame.len());
        }
        let at = self.data.len();
        self.data.resize(at + self.stride, 0);
        self.data[at..at + frame.len()].copy_from_slice(frame);
        self.lens.push(frame.len() as u16);
        Ok(())
    }
    fn len(&self) -> usize {
        self.lens.len()
    }
    fn get(&self, i: usize) -> &[u8] {
        &self.data[i * self.stride..i * self.stride + usize::from(self.lens[i])]
    }
}

/// The frame host 198.19.255.10 sends gateway A for host `i`.
fn clear_frame(o: &Options, i: usize) -> Vec<u8> {
    let payload = vec![0x5a; o.size.saturating_sub(28)];
    let mut f = vec![0u8; ethernet::HEADER_LEN];
    f[0..6].copy_from_slice(&mac(0x11).0);
    f[6..12].copy_from_slice(&mac(0x1a).0);
    f[12..14].copy_from_slice(&ethernet::ethertype::IPV4.to_be_bytes());
    f.extend_from_slice(&udp_v4(LAN_HOST, host(i), 40000, 5001, &payload));
    f
}

/// Frame slots in gateway A's receive ring: the dataplane's default UMEM
/// frames per worker (`espada-dataplane --frames`).
const RX_RING: usize = 8192;

/// The clear frames gateway A receives, as a receive ring holds them:
/// `RX_RING` frame slots used in turn, each written with the next packet
/// as it arrives. Packets go to the hosts of `hosts` (every SA equally
/// often, at least `min` packets, in a random order), so the frames read
/// are the same 12 MB (at 1400 bytes) with 1 SA or 100 000; a ring
/// with a frame per packet (one per SA at 100 000 SAs, ~150 MB at 1400
/// bytes) would instead make the larger count stream its frames from
/// memory and charge that to the SAs.
struct Traffic {
    ring: FrameSet,
    hosts: Vec<u32>,
}

impl Traffic {
    fn new(o: &Options, n: usize, min: usize, rng: &mut Rng) -> Result<Traffic> {
        let packets = n.max(min).next_multiple_of(n);
        let mut hosts: Vec<u32> = (0..packets).map(|k| (k % n) as u32).collect();
        rng.shuffle(&mut hosts);
        let mut ring = FrameSet::new((o.size + ethernet::HEADER_LEN).next_multiple_of(64));
        for &h in hosts.iter().take(RX_RING) {
            ring.push(&clear_frame(o, h as usize))?;
        }
        Ok(Traffic { ring, hosts })
    }

    /// How many packets: `receive` takes positions `0..len`.
    fn len(&self) -> usize {
        self.hosts.len()
    }
}

/// Where a benchmark's received frames come from.
trait Source {
    /// Writes packet `i` as received into `buf`; returns its length.
    fn receive(&self, i: usize, buf: &mut [u8]) -> usize;
}

/// Frames received as they were laid out (gateway B's ESP).
impl Source for FrameSet {
    fn receive(&self, i: usize, buf: &mut [u8]) -> usize {
        let f = self.get(i);
        buf[..f.len()].copy_from_slice(f);
        f.len()
    }
}

/// Packet `i` in ring slot `i % RX_RING`, addressed to its host: every
/// clear frame is one template but for the destination (UDP checksum 0),
/// so writing the address and the IPv4 checksum makes it that host's.
impl Source for Traffic {
    fn receive(&self, i: usize, buf: &mut [u8]) -> usize {
        let len = self.ring.receive(i % self.ring.len(), buf);
        let mut ip = ipv4::Packet::new_unchecked(&mut buf[ethernet::HEADER_LEN..len]);
        ip.set_dst_addr(host(self.hosts[i] as usize));
        ip.fill_checksum();
        len
    }
}

/// Runs received frames through a gateway's pipeline a batch at a time,
/// in frame buffers reused from batch to batch (as a worker's UMEM).
struct Runner {
    bufs: Vec<u8>,
    actions: Vec<Action>,
    counters: PipelineCounters,
    batch: usize,
}

impl Runner {
    fn new(batch: usize) -> Runner {
        Runner {
            bufs: vec![0u8; batch * FRAME],
            actions: vec![Action::ToKernel; batch],
            counters: PipelineCounters::default(),
            batch,
        }
    }

    /// One batch of the frames `idx` (at most `batch`) of `src` received
    /// on `rx`; calls `out` with each frame's action and bytes.
    fn run(
        &mut self,
        t: &mut Tables,
        rx: u32,
        src: &impl Source,
        idx: &[u32],
        mut out: impl FnMut(Action, &[u8]),
    ) {
        let n = idx.len().min(self.batch);
        // A Vec of borrowed buffers per batch (`process_batch` takes a
        // slice): the benchmark's allocation, not the dataplane's (the
        // worker keeps its frames in an array); ~1 ns per packet.
        let mut frames: Vec<PacketBuf<'_>> = self
            .bufs
            .chunks_mut(FRAME)
            .zip(&idx[..n])
            .map(|(chunk, &i)| {
                let len = src.receive(i as usize, &mut chunk[HEADROOM..]);
                PacketBuf::new(chunk, HEADROOM, len)
            })
            .collect();
        process_batch(t, rx, &mut frames, &mut self.actions[..n], &self.counters);
        for (a, f) in self.actions[..n].iter().zip(&frames) {
            out(*a, f.data());
        }
    }
}

fn is_transmit(a: Action, ifindex: u32) -> bool {
    a == Action::Transmit { ifindex }
}

/// Encap on one thread for `duration`: frames of all `n` SAs in a random
/// order. Returns (packets, wall seconds, thread CPU seconds).
fn encap_loop(
    t: &mut Tables,
    traffic: &Traffic,
    batch: usize,
    duration: Duration,
    start: Option<&Barrier>,
) -> Result<(u64, f64, f64)> {
    let mut r = Runner::new(batch);
    let mut bad = 0u64;
    let order: Vec<u32> = (0..traffic.len() as u32).collect();
    // Warm-up: one pass over every SA (caches and branch predictors as a
    // running gateway has them), untimed.
    for chunk in order.chunks(batch) {
        r.run(t, LAN_IF, traffic, chunk, |a, _| {
            bad += u64::from(!is_transmit(a, WAN_IF))
        });
    }
    if let Some(b) = start {
        b.wait();
    }
    let (mut packets, mut pos) = (0u64, 0usize);
    let t0 = Instant::now();
    let c0 = thread_cpu_ns();
    loop {
        for _ in 0..64 {
            let end = (pos + batch).min(order.len());
            r.run(t, LAN_IF, traffic, &order[pos..end], |a, _| {
                bad += u64::from(!is_transmit(a, WAN_IF))
            });
            packets += (end - pos) as u64;
            pos = if end == order.len() { 0 } else { end };
        }
        if t0.elapsed() >= duration {
            break;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - c0) as f64 / 1e9;
    if bad > 0 {
        bail!("{bad} frames were not encrypted and sent to the WAN");
    }
    Ok((packets, secs, cpu))
}

/// ESP frames as gateway B receives them: `rounds` rounds, in each every
/// SA of `a` sends one packet (so sequence number r+1), SAs in a fresh
/// random order per round; produced by gateway A's own pipeline.
fn esp_frames(o: &Options, n: usize, rounds: usize, rng: &mut Rng) -> Result<FrameSet> {
    let mut a = gateway_a(o, n)?;
    let mut clear = FrameSet::new(FRAME);
    for i in 0..n {
        clear.push(&clear_frame(o, i))?;
    }
    let mut out = FrameSet::new(o.size + 128);
    let mut r = Runner::new(o.batch);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut failed = None;
    for _ in 0..rounds {
        rng.shuffle(&mut order);
        for chunk in order.chunks(o.batch) {
            r.run(&mut a, LAN_IF, &clear, chunk, |act, f| {
                if !is_transmit(act, WAN_IF) {
                    failed = Some(format!("{act:?}"));
                    return;
                }
                // The WAN router forwards it to B's outside interface.
                let mut f = f.to_vec();
                f[0..6].copy_from_slice(&mac(0x22).0);
                f[6..12].copy_from_slice(&mac(0xfe).0);
                if let Err(e) = out.push(&f) {
                    failed = Some(e.to_string());
                }
            });
            if let Some(e) = failed {
                bail!("gateway A did not encrypt: {e}");
            }
        }
    }
    Ok(out)
}

/// Decap of every frame of `set` (indexes `idx`, in order) through `t`.
/// Returns (delivered, replay drops, wall seconds, thread CPU seconds).
fn decap_pass(
    t: &mut Tables,
    set: &FrameSet,
    idx: &[u32],
    batch: usize,
) -> Result<(u64, u64, f64, f64)> {
    let mut r = Runner::new(batch);
    let (mut ok, mut bad, mut other) = (0u64, 0u64, None);
    let t0 = Instant::now();
    let c0 = thread_cpu_ns();
    for chunk in idx.chunks(batch) {
        r.run(t, WAN_IF, set, chunk, |a, _| match a {
            Action::Transmit { ifindex: LAN_IF } => ok += 1,
            Action::Drop(DropReason::Replay) => bad += 1,
            other_action => other = Some(other_action),
        });
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns() - c0) as f64 / 1e9;
    if let Some(a) = other {
        bail!("gateway B: a frame ended as {a:?}, not delivered");
    }
    Ok((ok, bad, secs, cpu))
}

#[allow(clippy::too_many_arguments)]
fn point(
    o: &Options,
    test: &'static str,
    direction: &'static str,
    sas: usize,
    workers: usize,
    packets: u64,
    seconds: f64,
    cpu_seconds: f64,
) -> Measurement {
    // One core: per CPU second of the thread (time it was preempted on a
    // shared machine does not count); several: per wall second, all of
    // them together.
    let mpps = if workers == 1 {
        packets as f64 / cpu_seconds / 1e6
    } else {
        packets as f64 / seconds / 1e6
    };
    Measurement {
        test,
        suite: o.suite.clone(),
        direction,
        size: o.size,
        sas,
        workers,
        packets,
        seconds,
        cpu_seconds,
        mpps,
        ns_per_packet: cpu_seconds * 1e9 / packets.max(1) as f64,
        ratio: 1.0,
        cpu_ratio: 1.0,
        replay_drops: 0,
    }
}

/// Rounds of the SA test: each SA count is measured once per round, for
/// a slice of `--duration`, the counts in turn.
const SA_ROUNDS: u32 = 4;

/// Packets, wall seconds and thread CPU seconds, summed over rounds.
#[derive(Debug, Clone, Copy, Default)]
struct Tally(u64, f64, f64);

impl Tally {
    fn add(&mut self, (packets, secs, cpu): (u64, f64, f64)) {
        self.0 += packets;
        self.1 += secs;
        self.2 += cpu;
    }
}

/// Gateway B with `n` SAs decapsulates `esp` (every SA's first packets a
/// warm-up, untimed) until `duration` of thread CPU time, at least one
/// pass; each pass needs fresh replay windows, so a new gateway B
/// (untimed). Returns (packets, wall seconds, CPU seconds).
fn decap_for(o: &Options, n: usize, esp: &FrameSet, duration: Duration) -> Result<(u64, f64, f64)> {
    let idx: Vec<u32> = (0..esp.len() as u32).collect();
    let mut total = Tally::default();
    let deadline = Instant::now() + duration * 4;
    while total.0 == 0 || (Instant::now() < deadline && total.2 < duration.as_secs_f64()) {
        let mut b = gateway_b(o, n)?;
        let warm = n.min(idx.len());
        decap_pass(&mut b, esp, &idx[..warm], o.batch)?;
        let (ok, drops, s, c) = decap_pass(&mut b, esp, &idx[warm..], o.batch)?;
        if drops > 0 || ok != (idx.len() - warm) as u64 {
            bail!("decap with {n} SAs: {drops} refused as replays");
        }
        total.add((ok, s, c));
    }
    Ok((total.0, total.1, total.2))
}

/// Time the memory probe (`memprobe`) measures for, beside the SA test
/// (before it in `scale`, after it in `report`); building its table
/// takes about as long again.
pub const MEMORY_BUDGET: Duration = Duration::from_secs(1);

/// Packets gateway B decapsulates per pass in the SA test.
const DECAP_PACKETS: usize = 1 << 18;

pub fn run(o: &Options, mut progress: impl FnMut(&Measurement)) -> Result<Vec<Measurement>> {
    check(o)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out: Vec<Measurement> = Vec::new();
    let mut push = |mut m: Measurement, out: &mut Vec<Measurement>| {
        if let Some(first) = out
            .iter()
            .find(|b| b.test == m.test && b.direction == m.direction && b.size == m.size)
        {
            m.cpu_ratio = m.ns_per_packet / first.ns_per_packet;
            m.ratio = if m.test == "sas" {
                m.cpu_ratio
            } else {
                m.mpps / first.mpps
            };
        }
        progress(&m);
        out.push(m);
    };

    // SA count, one core, per size: encap and decap of every count in
    // each of SA_ROUNDS rounds in turn, so that a slow spell of this shared
    // machine falls on all counts alike rather than on one of them (their
    // ratio is the figure that matters).
    let sized: Vec<Options> = o
        .sa_sizes
        .iter()
        .map(|&size| Options { size, ..o.clone() })
        .collect();
    for o in &sized {
        // Every count's frames are held at once (at 1400 bytes, ~1.3 GB of
        // ESP for 1, 1 000 and 100 000 SAs): the price of interleaving.
        let slice = o.duration / SA_ROUNDS;
        let mut senders = Vec::new();
        let mut received = Vec::new();
        for &n in &o.sa_counts {
            let a = gateway_a(o, n)?;
            senders.push((a, Traffic::new(o, n, 1 << 16, &mut rng)?));
            received.push(esp_frames(o, n, DECAP_PACKETS.div_ceil(n), &mut rng)?);
        }
        let mut encap = vec![Tally::default(); o.sa_counts.len()];
        let mut decap = encap.clone();
        for _ in 0..SA_ROUNDS {
            for (k, &n) in o.sa_counts.iter().enumerate() {
                let (a, traffic) = &mut senders[k];
                encap[k].add(encap_loop(a, traffic, o.batch, slice, None)?);
                decap[k].add(decap_for(o, n, &received[k], slice)?);
            }
        }
        for (k, &n) in o.sa_counts.iter().enumerate() {
            let (e, d) = (encap[k], decap[k]);
            push(point(o, "sas", "encap", n, 1, e.0, e.1, e.2), &mut out);
            push(point(o, "sas", "decap", n, 1, d.0, d.1, d.2), &mut out);
        }
    }

    // Workers: each thread its own gateway A with `worker_sas` SAs.
    for workers in [1usize, 2] {
        let barrier = Barrier::new(workers);
        let results: Vec<Result<(u64, f64, f64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let barrier = &barrier;
                    s.spawn(move || -> Result<(u64, f64, f64)> {
                        let n = o.worker_sas;
                        let mut a = gateway_a(o, n)?;
                        let mut rng = Rng(0x1234_5678 + w as u64);
                        let traffic = Traffic::new(o, n, 1 << 14, &mut rng)?;
                        encap_loop(&mut a, &traffic, o.batch, o.duration, Some(barrier))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| bail!("worker thread panicked")))
                .collect()
        });
        let (mut packets, mut secs, mut cpu) = (0, 0f64, 0f64);
        for r in results {
            let (p, s, c) = r?;
            packets += p;
            secs = secs.max(s);
            cpu += c;
        }
        push(
            point(
                o,
                "workers",
                "encap",
                o.worker_sas,
                workers,
                packets,
                secs,
                cpu,
            ),
            &mut out,
        );
    }

    // One SA, decapsulated by 1 then 2 workers sharing its replay window:
    // the workers claim the next batch of the one sequence from a shared
    // counter, as RSS hands each core the packets that arrive for it.
    let esp = esp_frames(o, 1, DECAP_PACKETS, &mut rng)?;
    let idx: Vec<u32> = (0..esp.len() as u32).collect();
    for workers in [1usize, 2] {
        let (mut packets, mut drops, mut secs, mut cpu) = (0u64, 0u64, 0f64, 0f64);
        let deadline = Instant::now() + o.duration * 4;
        while packets == 0 || (Instant::now() < deadline && secs < o.duration.as_secs_f64()) {
            let sa = Arc::new(InboundSa::new(&sa_params(o, 0, Direction::Inbound), 0)?);
            let mut tables = (0..workers)
                .map(|_| {
                    let mut t = base_tables(2)?;
                    t.sadb.insert_inbound(sa.clone())?;
                    Ok(t)
                })
                .collect::<Result<Vec<_>>>()?;
            let batch = o.batch;
            let go = Barrier::new(workers);
            let next = AtomicUsize::new(0);
            let results: Vec<Result<(u64, u64, f64, f64)>> = std::thread::scope(|s| {
                let handles: Vec<_> = tables
                    .iter_mut()
                    .map(|t| {
                        let (esp, idx, go, next) = (&esp, &idx, &go, &next);
                        s.spawn(move || {
                            go.wait();
                            let (mut ok, mut d) = (0u64, 0u64);
                            let t0 = Instant::now();
                            let c0 = thread_cpu_ns();
                            loop {
                                let at = next.fetch_add(batch, Ordering::Relaxed);
                                if at >= idx.len() {
                                    break;
                                }
                                let end = (at + batch).min(idx.len());
                                let (o, dr, _, _) = decap_pass(t, esp, &idx[at..end], batch)?;
                                ok += o;
                                d += dr;
                            }
                            let cpu = (thread_cpu_ns() - c0) as f64 / 1e9;
                            Ok((ok, d, t0.elapsed().as_secs_f64(), cpu))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| bail!("worker thread panicked")))
                    .collect()
            });
            let mut wall: f64 = 0.0;
            for r in results {
                let (ok, d, s, c) = r?;
                packets += ok + d;
                drops += d;
                wall = wall.max(s);
                cpu += c;
            }
            secs += wall;
        }
        let mut m = point(o, "shared_sa", "decap", 1, workers, packets, secs, cpu);
        m.replay_drops = drops;
        push(m, &mut out);
    }
    Ok(out)
}

pub const USAGE: &str = "usage: espada-bench scale [--sas 1,1000,100000] [--suite aes128gcm16] \
[--size 64[,1400...] (inner IP bytes; the SA test runs at each, the worker tests at the first)] [--batch 32] [--duration SECS per point] [--worker-sas 1000] \
[--replay-window 1024] [--quick] [--format text|json]";

/// `espada-bench scale`'s options and whether JSON was asked for; every
/// value is checked here, before the memory probe or any measurement.
pub fn parse(args: &[String]) -> Result<(Options, bool)> {
    let mut o = Options {
        sa_counts: vec![1, 1000, 100_000],
        sa_sizes: vec![64],
        size: 64,
        batch: 32,
        duration: Duration::from_secs(2),
        enc: EncAlg::AesGcm128(dataplane::crypto::GcmIcv::B16),
        auth: AuthAlg::None,
        suite: "aes128gcm16".into(),
        worker_sas: 1000,
        replay_window: 1024,
    };
    let mut json = false;
    let mut flags = Flags::new(args, format!("\n{USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--sas" => {
                o.sa_counts = flags
                    .value("--sas")?
                    .split(',')
                    .map(|c| parse_count(c).map_err(|e| anyhow!("--sas: {e}")))
                    .collect::<Result<_>>()?
            }
            "--suite" => {
                o.suite = flags.value("--suite")?;
                (o.enc, o.auth) = crate::crypto_bench::parse_suite(&o.suite)?;
            }
            "--size" => {
                o.sa_sizes = flags
                    .value("--size")?
                    .split(',')
                    .map(|v| {
                        v.trim()
                            .parse()
                            .context("--size takes bytes, comma-separated")
                    })
                    .collect::<Result<_>>()?;
                o.size = o.sa_sizes.first().copied().unwrap_or(64);
            }
            "--batch" => o.batch = flags.parsed("--batch", "packets")?,
            "--duration" => o.duration = flags.seconds("--duration", 0.01, 600.0)?,
            "--worker-sas" => {
                o.worker_sas = parse_count(&flags.value("--worker-sas")?)
                    .map_err(|e| anyhow!("--worker-sas: {e}"))?
            }
            "--replay-window" => o.replay_window = flags.parsed("--replay-window", "packets")?,
            "--quick" => {
                o.duration = Duration::from_millis(100);
                o.sa_counts = vec![1, 1000, 10_000];
            }
            "--format" => match flags.value("--format")?.as_str() {
                "json" => json = true,
                "text" => json = false,
                other => bail!("--format {other:?}: text or json"),
            },
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    if o.worker_sas == 0 || o.worker_sas > MAX_SAS {
        bail!("--worker-sas: 1 to {MAX_SAS}");
    }
    check(&o)?;
    if o.replay_window != 0 && ReplayWindow::new(o.replay_window).is_err() {
        bail!(
            "--replay-window {}: give a multiple of 32 from 32 to 65536 packets, or 0 for none",
            o.replay_window
        );
    }
    Ok((o, json))
}

/// What [`run`] refuses: the batch, the sizes and the SA counts.
fn check(o: &Options) -> Result<()> {
    if !(1..=256).contains(&o.batch) {
        bail!("--batch {}: give 1 to 256 packets", o.batch);
    }
    if let Some(bad) = std::iter::once(&o.size)
        .chain(&o.sa_sizes)
        .find(|s| !(28..=1400).contains(*s))
    {
        bail!("--size {bad}: give 28 to 1400 bytes");
    }
    if o.sa_counts.is_empty() || o.sa_counts.iter().any(|&n| n == 0 || n > MAX_SAS) {
        bail!("--sas: give counts from 1 to {MAX_SAS}");
    }
    Ok(())
}

/// `espada-bench scale ARGS`.
pub fn cli(args: &[String]) -> Result<()> {
    let (o, json) = parse(args)?;
    if !json {
        outln!(
            "dataplane pipeline per packet, {}, {}-byte inner packets, batch {}, {:.2} s per point; SAs visited in random order",
            o.suite,
            o.sa_sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            o.batch,
            o.duration.as_secs_f64()
        );
        if o.sa_counts.iter().any(|&n| n > 1) {
            let m = crate::memprobe::measure(
                crate::memprobe::TABLE_BYTES,
                o.duration.min(MEMORY_BUDGET),
            );
            outln!(
                "memory: a random line of a {} MiB table {:.0} ns alone, {:.1} ns each {} at a time \
                 (what a packet's SA, table and key lines cost once the SAs outgrow the caches)",
                m.table_mib,
                m.latency_ns,
                m.line_ns,
                crate::memprobe::IN_FLIGHT
            );
        }
        outln!(
            "{:<10} {:<6} {:>5} {:>7} {:>7} {:>9} {:>8} {:>8} {:>9} {:>12}",
            "test",
            "dir",
            "bytes",
            "SAs",
            "workers",
            "CPU ns/pkt",
            "Mpps",
            "ratio",
            "CPU ratio",
            "replay drops"
        );
    }
    let r = run(&o, |m| {
        if json {
            eprintln!(
                "scale {} {} {} B {} SAs {} workers: {:.1} ns/packet",
                m.test, m.direction, m.size, m.sas, m.workers, m.ns_per_packet
            );
        } else {
            outln!(
                "{:<10} {:<6} {:>5} {:>7} {:>7} {:>9.1} {:>8.3} {:>7.2}x {:>8.2}x {:>12}",
                m.test,
                m.direction,
                m.size,
                m.sas,
                m.workers,
                m.ns_per_packet,
                m.mpps,
                m.ratio,
                m.cpu_ratio,
                m.replay_drops
            );
        }
    })?;
    if json {
        crate::print_json("espada-bench scale", &r)?;
    }
    Ok(())
}

/// Parses a count such as `100000`, `100k` or `1m`.
pub fn parse_count(s: &str) -> Result<usize> {
    let s = s.trim().to_ascii_lowercase().replace('_', "");
    let (num, mul) = if let Some(n) = s.strip_suffix('k') {
        (n, 1_000)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 1_000_000)
    } else {
        (s.as_str(), 1)
    };
    let too_large = || anyhow!("{s:?} is too large a count: give at most {MAX_SAS}");
    let n: usize = num.parse().map_err(|_| {
        if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
            too_large()
        } else {
            anyhow!("{s:?} is not a count: give a number such as 1000, 100k or 1m")
        }
    })?;
    n.checked_mul(mul).ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            sa_counts: vec![1, 50],
            sa_sizes: vec![64],
            size: 64,
            batch: 32,
            duration: Duration::from_millis(10),
            enc: EncAlg::AesCbc128,
            auth: AuthAlg::HmacSha1_96,
            suite: "aes128-sha1".into(),
            worker_sas: 8,
            replay_window: 1024,
        }
    }

    #[test]
    fn the_receive_ring_delivers_each_packet_as_built_for_its_host() {
        for size in [64, 1400] {
            let o = Options { size, ..opts() };
            // More packets than ring slots, so slots are written again.
            let traffic = Traffic::new(&o, 3000, RX_RING + 500, &mut Rng(11)).unwrap();
            assert_eq!(traffic.ring.len(), RX_RING);
            let mut seen = vec![0u32; 3000];
            let mut buf = vec![0u8; FRAME];
            for i in 0..traffic.len() {
                let len = traffic.receive(i, &mut buf);
                let h = traffic.hosts[i] as usize;
                seen[h] += 1;
                assert_eq!(&buf[..len], &clear_frame(&o, h)[..], "packet {i}");
            }
            // Every SA equally often (3 times: 8 692 packets rounded up).
            assert!(seen.iter().all(|&k| k == 3), "{:?}", &seen[..8]);
        }
    }

    #[test]
    fn every_sa_encrypts_and_the_other_gateway_decrypts_it() {
        let o = opts();
        let mut rng = Rng(7);
        let esp = esp_frames(&o, 50, 2, &mut rng).unwrap();
        assert_eq!(esp.len(), 100);
        let mut b = gateway_b(&o, 50).unwrap();
        let idx: Vec<u32> = (0..100).collect();
        let (ok, drops, _, _) = decap_pass(&mut b, &esp, &idx, 32).unwrap();
        assert_eq!((ok, drops), (100, 0));
        // The same frames again are replays, every one.
        let (ok, drops, _, _) = decap_pass(&mut b, &esp, &idx, 32).unwrap();
        assert_eq!((ok, drops), (0, 100));
        // Each SA's inbound counters saw its own two packets.
        for i in 0..50 {
            let sa = b.sadb.inbound(spi(i)).unwrap();
            assert_eq!(sa.replay().unwrap().top(), 2, "SA {i}");
        }
    }

    #[test]
    fn a_run_reports_every_test_with_ratios_against_its_first_point() {
        let r = run(&opts(), |_| {}).unwrap();
        let tests: Vec<_> = r
            .iter()
            .map(|m| (m.test, m.direction, m.sas, m.workers))
            .collect();
        assert_eq!(
            tests,
            [
                ("sas", "encap", 1, 1),
                ("sas", "decap", 1, 1),
                ("sas", "encap", 50, 1),
                ("sas", "decap", 50, 1),
                ("workers", "encap", 8, 1),
                ("workers", "encap", 8, 2),
                ("shared_sa", "decap", 1, 1),
                ("shared_sa", "decap", 1, 2),
            ]
        );
        assert!(r.iter().all(|m| m.packets > 0 && m.mpps > 0.0));
        assert_eq!(r[0].ratio, 1.0);
        let want = r[2].ns_per_packet / r[0].ns_per_packet;
        assert!((r[2].ratio - want).abs() < 1e-9);
    }

    #[test]
    fn each_size_of_the_sa_test_is_against_its_own_one_sa_figure() {
        let o = Options {
            sa_sizes: vec![64, 400],
            ..opts()
        };
        let r = run(&o, |_| {}).unwrap();
        let sas: Vec<_> = r
            .iter()
            .filter(|m| m.test == "sas")
            .map(|m| (m.direction, m.size, m.sas))
            .collect();
        assert_eq!(
            sas,
            [
                ("encap", 64, 1),
                ("decap", 64, 1),
                ("encap", 64, 50),
                ("decap", 64, 50),
                ("encap", 400, 1),
                ("decap", 400, 1),
                ("encap", 400, 50),
                ("decap", 400, 50),
            ]
        );
        // The 400-byte 1-SA rows are baselines, not ratios to 64 bytes.
        assert_eq!((r[4].ratio, r[5].ratio), (1.0, 1.0));
        let want = r[6].ns_per_packet / r[4].ns_per_packet;
        assert!((r[6].ratio - want).abs() < 1e-9);
        // The worker tests run at `size` only.
        assert!(r.iter().filter(|m| m.test != "sas").all(|m| m.size == 64));
        let bad = Options {
            sa_sizes: vec![64, 1500],
            ..opts()
        };
        let e = run(&bad, |_| {}).unwrap_err().to_string();
        assert!(e.contains("--size 1500"), "{e}");
    }

    #[test]
    fn counts_take_k_and_m_suffixes() {
        assert_eq!(parse_count("100k").unwrap(), 100_000);
        assert_eq!(parse_count("1_000").unwrap(), 1000);
        assert_eq!(parse_count("1M").unwrap(), 1_000_000);
        assert!(parse_count("lots").is_err());
        // 18446744073709552 × 1000 wraps to 384 in a usize: refused.
        let e = parse_count("18446744073709552k").unwrap_err().to_string();
        assert_eq!(
            e,
            "\"18446744073709552k\" is too large a count: give at most 1000000"
        );
        assert!(parse_count("99999999999999999999")
            .unwrap_err()
            .to_string()
            .contains("too large"));
    }

    #[test]
    fn options_are_checked_when_parsed_before_anything_runs() {
        let args = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
        let (o, json) = parse(&args("--sas 1,10k --size 64,1400 --format json")).unwrap();
        assert_eq!(
            (o.sa_counts, o.sa_sizes, o.size, json),
            (vec![1, 10_000], vec![64, 1400], 64, true)
        );
        for (bad, says) in [
            ("--batch 0", "--batch 0: give 1 to 256 packets"),
            ("--size 0", "--size 0: give 28 to 1400 bytes"),
            ("--size 64,1500", "--size 1500: give 28 to 1400 bytes"),
            (
                "--sas 18446744073709552k",
                "--sas: \"18446744073709552k\" is too large a count: give at most 1000000",
            ),
            ("--sas 0", "--sas: give counts from 1 to 1000000"),
            (
                "--worker-sas 99999999999999999999",
                "--worker-sas: \"99999999999999999999\" is too large a count: give at most 1000000",
            ),
            (
                "--replay-window 4294967295 --sas 1",
                "--replay-window 4294967295: give a multiple of 32 from 32 to 65536 packets, or 0 for none",
            ),
            (
                "--replay-window 100",
                "--replay-window 100: give a multiple of 32 from 32 to 65536 packets, or 0 for none",
            ),
        ] {
            let e = parse(&args(bad)).err().map(|e| format!("{e:#}"));
            assert_eq!(e.as_deref(), Some(says), "{bad}");
        }
        assert_eq!(
            parse(&args("--replay-window 0")).unwrap().0.replay_window,
            0
        );
    }
}
