//! `espada-bench ike`: IKEv1 Main Mode + Quick Mode setups per second of
//! one core on the responder side, for each Diffie-Hellman group, set
//! against the Diffie-Hellman work alone measured on the same core in the
//! same run.
//!
//! One responder [`Engine`] (a dynamic crypto map and a wildcard
//! pre-shared key, as a hub answering many sites has) negotiates with one
//! fresh initiator engine per setup, each from an address the responder
//! holds nothing for, so every setup is a full Main Mode (6 messages) and
//! Quick Mode (3 messages). All
//! of it runs in memory on one thread; only the responder's part is timed:
//! the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`, so time the thread is
//! preempted on a shared machine does not count) inside the responder's
//! `handle_datagram` and the `poll_output` drain, as the daemon's driver
//! calls them for each datagram, and its walk of the timers
//! (`poll_timeout`, and `handle_timeout` had it been due), which the
//! driver does at most once per `TIMER_TICK` (100 ms). Every setup must end with the responder's
//! `Output::Install` and the initiator's, after exactly five datagrams in
//! and four out of the responder, or the run fails.
//!
//! The responder forgets its SAs (`clear_sa`, `clear_isakmp`, untimed,
//! after checking it holds exactly `held` established ISAKMP SAs of the
//! group and `held` pairs) every `held` setups, so memory stays bounded.
//! The engine keeps its SAs in vectors it scans per message, so the cost
//! per setup grows with `held`. A warm-up of one batch (256 setups at
//! most), not counted, grows those vectors first: the kernel's first touch
//! of new memory can take milliseconds of system time, once per process.
//!
//! The baseline is what a responder cannot avoid per Main Mode: one key
//! generation and one shared-secret computation in the group
//! (`DhGroup::generate`, `DhPrivate::shared_secret`, the calls the engine
//! makes), timed with the same clock. Engine and baseline run in
//! alternating slices so the machine's load weighs on both alike.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use control::config::ike::{IkeCipher, IkeHash};
use control::config::model::SecretBytes;
use control::ike::crypto::DhGroup;
use control::ikedriver::TIMER_TICK;
use control::ikev1::{
    Engine, EspTransform, Ikev1Policy, IpsecLifetime, IsakmpProposal, MapEntry, Output,
    PresharedKey,
};
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{FlowKey, IpPrefix, PolicyTag, PortRange, TrafficSelector};
use hdrhistogram::Histogram;
use serde::Serialize;

/// The groups `--groups` accepts, by IANA number.
pub const GROUPS: [u16; 2] = [2, 14];

/// What both sides negotiate (besides the group): the ISAKMP and ESP
/// suites of the engine's own two-engine tests.
pub const SUITE: &str =
    "ISAKMP aes-256/sha256/pre-share, ESP aes128-sha1 tunnel, no PFS, dynamic map";

/// The one crypto map entry of the IKEv1 and IKEv2 setup benchmarks.
pub const TAG: PolicyTag = PolicyTag { map: 1, seq: 10 };
const PSK: &[u8] = b"espada-bench-psk";
const RESPONDER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The responder's protected network.
const RESPONDER_LAN: &str = "198.19.0.0/16";
/// Peers are 100.64.0.0 + n + 1, their networks 10.0.0.0 + n·256 / 24.
pub const MAX_HELD: usize = 65_535;
/// Setups of the warm-up, at most (one batch of `held`).
const WARM_UP_MAX: usize = 256;

pub struct Options {
    pub groups: Vec<DhGroup>,
    /// Wall time per group, engine and baseline slices together.
    pub duration: Duration,
    /// Setups the responder holds before it forgets them all.
    pub held: usize,
    /// Stop each group after this many setups (tests).
    pub max_setups: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Measurement {
    pub group: u16,
    pub group_name: String,
    /// Complete Main Mode + Quick Mode setups, every one verified.
    pub setups: u64,
    /// The responder's thread CPU time over all of them.
    pub responder_cpu_seconds: f64,
    /// Setups per second of one core's CPU time on the responder side.
    pub setups_per_sec: f64,
    pub setup_mean_us: f64,
    pub setup_p50_us: f64,
    pub setup_p99_us: f64,
    pub setup_max_us: f64,
    /// Baseline: key generation + shared secret, per second of CPU time.
    pub dh_ops: u64,
    pub dh_cpu_seconds: f64,
    pub dh_ops_per_sec: f64,
    pub dh_op_mean_us: f64,
    pub dh_op_p50_us: f64,
    /// setups/s ÷ DH ops/s: 1.0 would be a responder doing nothing but
    /// its Diffie-Hellman work.
    pub ratio_to_dh: f64,
    /// The same from the medians (median DH op ÷ median setup), which a
    /// few disturbed setups or DH ops on a shared machine do not move.
    pub p50_ratio_to_dh: f64,
    /// The same ratio in each engine/baseline round: its spread shows the
    /// run's noise.
    pub round_ratio_min: f64,
    pub round_ratio_max: f64,
    pub rounds: u32,
    /// Setups the responder held before forgetting them.
    pub held: usize,
    pub wall_seconds: f64,
}

/// Reported after each round.
pub struct Progress {
    pub group: u16,
    pub round: u32,
    pub rounds: u32,
    pub setups: u64,
    pub setups_per_sec: f64,
    pub ratio_to_dh: f64,
}

/// The calling thread's CPU time in nanoseconds.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The mean cost of one [`thread_cpu_ns`] call, in nanoseconds: each
/// timed responder call includes about one such read.
pub fn clock_read_ns() -> f64 {
    let n = 2000;
    let t0 = thread_cpu_ns();
    for _ in 0..n {
        black_box(thread_cpu_ns());
    }
    (thread_cpu_ns() - t0) as f64 / f64::from(n + 1)
}

pub fn parse_group(s: &str) -> Result<DhGroup> {
    match s.parse::<u16>().ok().and_then(DhGroup::from_id) {
        Some(g) if GROUPS.contains(&g.id()) => Ok(g),
        _ => bail!("group {s:?}: give 2 (MODP 1024) or 14 (MODP 2048)"),
    }
}

pub fn group_name(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Modp768 => "MODP 768",
        DhGroup::Modp1024 => "MODP 1024",
        DhGroup::Modp1536 => "MODP 1536",
        DhGroup::Modp2048 => "MODP 2048",
        DhGroup::Ecp256 => "ECP 256",
        DhGroup::Ecp384 => "ECP 384",
        DhGroup::Curve25519 => "Curve25519",
    }
}

pub fn run(opts: &Options, mut progress: impl FnMut(&Progress)) -> Result<Vec<Measurement>> {
    if !(1..=MAX_HELD).contains(&opts.held) {
        bail!("--held {}: give 1 to {MAX_HELD} setups", opts.held);
    }
    let mut out = Vec::new();
    for &group in &opts.groups {
        let m =
            measure(group, opts, &mut progress).with_context(|| format!("group {}", group.id()))?;
        out.push(m);
    }
    Ok(out)
}

fn measure(
    group: DhGroup,
    opts: &Options,
    progress: &mut impl FnMut(&Progress),
) -> Result<Measurement> {
    let mut rig = Rig::new(group, group, opts.held);
    measure_rig(group, opts, &mut rig, progress)
}

/// What a setup measurement asks of an IKE engine, whatever its version
/// (both engines share their driver-facing shape and `Output`).
pub trait SansIo {
    fn handle_datagram(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]);
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
    fn poll_output(&mut self) -> Option<Output>;
}

macro_rules! sans_io {
    ($engine:ty) => {
        impl SansIo for $engine {
            fn handle_datagram(
                &mut self,
                now: Instant,
                local: SocketAddr,
                remote: SocketAddr,
                data: &[u8],
            ) {
                <$engine>::handle_datagram(self, now, local, remote, data)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$engine>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$engine>::handle_timeout(self, now)
            }
            fn poll_output(&mut self) -> Option<Output> {
                <$engine>::poll_output(self)
            }
        }
    };
}
sans_io!(control::ikev1::Engine);
sans_io!(control::ikev2::Engine);

/// When the daemon would walk the responder's timers: at most once per
/// [`TIMER_TICK`] (`control::ikedriver`), counted here in the responder's
/// CPU time.
#[derive(Default)]
pub struct TimerWalks {
    since_ns: u64,
}

impl TimerWalks {
    fn due(&self) -> bool {
        u128::from(self.since_ns) >= TIMER_TICK.as_nanos()
    }

    fn spent(&mut self, ns: u64) {
        if self.due() {
            self.since_ns = 0;
        }
        self.since_ns += ns;
    }
}

/// What one setup exchanged, for the caller's checks.
pub struct Exchange {
    /// Responder thread CPU time, nanoseconds.
    pub cpu: u64,
    pub r_in: u32,
    pub r_out: u32,
    pub r_installs: u32,
    pub r_inbound: u32,
    pub i_installs: u32,
}

/// Keeps the last 40 debug lines for a failure report.
pub fn push_log(logs: &mut Vec<String>, who: &str, line: String) {
    if logs.len() >= 40 {
        logs.remove(0);
    }
    logs.push(format!("{who}: {line}"));
}

/// Carries datagrams between a fresh initiator (which has been asked to
/// start) and the responder until both are quiet, timing only what the
/// daemon's driver would ask of the responder per datagram. `outs` is a
/// reused buffer. Errors say what went wrong, for the caller's report.
#[allow(clippy::too_many_arguments)]
pub fn exchange(
    init: &mut impl SansIo,
    responder: &mut impl SansIo,
    now: Instant,
    responder_addr: SocketAddr,
    peer_ip: IpAddr,
    outs: &mut Vec<Output>,
    timers: &mut TimerWalks,
    log: &mut dyn FnMut(&str, String),
) -> std::result::Result<Exchange, String> {
    let mut x = Exchange {
        cpu: 0,
        r_in: 0,
        r_out: 0,
        r_installs: 0,
        r_inbound: 0,
        i_installs: 0,
    };
    let mut to_responder = Vec::new();
    for _ in 0..20 {
        while let Some(o) = init.poll_output() {
            match o {
                Output::Send {
                    local,
                    remote,
                    data,
                } => to_responder.push((local, remote, data)),
                Output::Install { .. } => x.i_installs += 1,
                Output::Log(l) => log("initiator", l),
                other => return Err(format!("initiator: unexpected {other:?}")),
            }
        }
        if to_responder.is_empty() {
            break;
        }
        for (local, remote, data) in to_responder.drain(..) {
            if remote != responder_addr || local.ip() != peer_ip {
                return Err(format!("initiator sent {local} -> {remote}"));
            }
            x.r_in += 1;
            // Timed: what the daemon's driver asks of the engine for one
            // datagram, and its walk of the engine's timers once per
            // `TIMER_TICK` (ikedriver's gate), which under a full load of
            // setups is once per `TIMER_TICK` of the responder's time.
            let t0 = thread_cpu_ns();
            responder.handle_datagram(now, remote, local, &data);
            if timers.due() {
                if responder.poll_timeout().is_some_and(|t| t <= now) {
                    responder.handle_timeout(now);
                }
                black_box(responder.poll_timeout());
            }
            while let Some(o) = responder.poll_output() {
                outs.push(o);
            }
            let spent = thread_cpu_ns() - t0;
            x.cpu += spent;
            timers.spent(spent);
            for o in outs.drain(..) {
                match o {
                    Output::Send {
                        local: rl,
                        remote: rr,
                        data,
                    } => {
                        x.r_out += 1;
                        init.handle_datagram(now, rr, rl, &data);
                    }
                    Output::InstallInbound(_) => x.r_inbound += 1,
                    Output::Install { inbound_ready, .. } => {
                        if !inbound_ready {
                            return Err(
                                "the responder's Install came without its InstallInbound".into()
                            );
                        }
                        x.r_installs += 1;
                    }
                    Output::Log(l) => log("responder", l),
                    other => return Err(format!("responder: unexpected {other:?}")),
                }
            }
        }
    }
    Ok(x)
}

/// One responder under test: [`measure_rig`] asks it for setups and
/// makes it forget what it holds, untimed, at the end of the warm-up and
/// of the run.
pub trait SetupRig {
    /// One complete, verified setup with a new peer: the responder's CPU
    /// time for it in nanoseconds (also recorded in `hist`).
    fn setup(&mut self, hist: &mut Histogram<u64>) -> Result<u64>;
    /// Checks what the responder holds, then makes it forget (untimed).
    fn forget(&mut self) -> Result<()>;
}

impl SetupRig for Rig {
    fn setup(&mut self, hist: &mut Histogram<u64>) -> Result<u64> {
        Rig::setup(self, hist)
    }
    fn forget(&mut self) -> Result<()> {
        Rig::forget(self)
    }
}

/// The warm-up, then engine and baseline rounds interleaved for one
/// group: shared by the IKEv1 and IKEv2 benchmarks.
pub fn measure_rig(
    group: DhGroup,
    opts: &Options,
    rig: &mut impl SetupRig,
    progress: &mut impl FnMut(&Progress),
) -> Result<Measurement> {
    let wall = Instant::now();
    let peer = group.generate().context("DH key generation")?;
    let peer_public = peer.public_value().to_vec();
    // Warm-up, not counted: code paged in, libcrypto's tables built, and
    // the responder's tables grown to `held` entries once (they keep their
    // capacity when cleared). The kernel's first touch of that memory can
    // cost milliseconds of system time on this machine, once per process.
    let mut scratch = Histogram::<u64>::new(4)?;
    for _ in 0..opts.held.min(WARM_UP_MAX) {
        rig.setup(&mut scratch)?;
    }
    rig.forget()?;
    for _ in 0..2 {
        dh_op(group, &peer_public)?;
    }

    // Half-second rounds (one second on long runs), three quarters of each
    // for the engine (the initiators' untimed work takes wall time too).
    let round = if opts.duration >= Duration::from_secs(4) {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(250).max(opts.duration / 4)
    };
    let rounds = (opts.duration.as_secs_f64() / round.as_secs_f64())
        .round()
        .max(1.0) as u32;
    let engine_slice = round.mul_f64(0.75);
    let dh_slice = round.mul_f64(0.25);

    let mut hist = Histogram::<u64>::new(4)?;
    let mut dh_hist = Histogram::<u64>::new(4)?;
    let (mut setups, mut setup_ns) = (0u64, 0u64);
    let (mut dh_ops, mut dh_ns) = (0u64, 0u64);
    let (mut rmin, mut rmax) = (f64::INFINITY, 0.0f64);
    let mut done = 0;
    for r in 0..rounds {
        let (mut n, mut ns) = (0u64, 0u64);
        let start = Instant::now();
        loop {
            ns += rig.setup(&mut hist)?;
            n += 1;
            let limit = opts.max_setups.is_some_and(|m| setups + n >= m);
            if limit || start.elapsed() >= engine_slice {
                break;
            }
        }
        let (mut d, mut dns, start) = (0u64, 0u64, Instant::now());
        loop {
            let t0 = thread_cpu_ns();
            dh_op(group, &peer_public)?;
            let t = thread_cpu_ns() - t0;
            dh_hist.record(t.max(1))?;
            dns += t;
            d += 1;
            if start.elapsed() >= dh_slice || opts.max_setups.is_some() {
                break;
            }
        }
        setups += n;
        setup_ns += ns;
        dh_ops += d;
        dh_ns += dns;
        done = r + 1;
        let ratio = (n as f64 / ns as f64) / (d as f64 / dns as f64);
        rmin = rmin.min(ratio);
        rmax = rmax.max(ratio);
        progress(&Progress {
            group: group.id(),
            round: r + 1,
            rounds,
            setups,
            setups_per_sec: setups as f64 / (setup_ns as f64 / 1e9),
            ratio_to_dh: (setups as f64 / setup_ns as f64) / (dh_ops as f64 / dh_ns as f64),
        });
        if opts.max_setups.is_some_and(|m| setups >= m) {
            break;
        }
    }
    rig.forget()?;

    let setups_per_sec = setups as f64 / (setup_ns as f64 / 1e9);
    let dh_ops_per_sec = dh_ops as f64 / (dh_ns as f64 / 1e9);
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(Measurement {
        group: group.id(),
        group_name: group_name(group).into(),
        setups,
        responder_cpu_seconds: setup_ns as f64 / 1e9,
        setups_per_sec,
        setup_mean_us: setup_ns as f64 / setups as f64 / 1000.0,
        setup_p50_us: us(hist.value_at_quantile(0.5)),
        setup_p99_us: us(hist.value_at_quantile(0.99)),
        setup_max_us: us(hist.max()),
        dh_ops,
        dh_cpu_seconds: dh_ns as f64 / 1e9,
        dh_ops_per_sec,
        dh_op_mean_us: dh_ns as f64 / dh_ops as f64 / 1000.0,
        dh_op_p50_us: us(dh_hist.value_at_quantile(0.5)),
        ratio_to_dh: setups_per_sec / dh_ops_per_sec,
        p50_ratio_to_dh: dh_hist.value_at_quantile(0.5) as f64 / hist.value_at_quantile(0.5) as f64,
        round_ratio_min: rmin,
        round_ratio_max: rmax,
        rounds: done,
        held: opts.held,
        wall_seconds: wall.elapsed().as_secs_f64(),
    })
}

/// The responder's unavoidable Diffie-Hellman work for one Main Mode.
pub fn dh_op(group: DhGroup, peer_public: &[u8]) -> Result<()> {
    let ours = group.generate().context("DH key generation")?;
    let shared = ours
        .shared_secret(peer_public)
        .context("DH shared secret")?;
    black_box(&shared);
    Ok(())
}

fn sel(src: IpPrefix, dst: IpPrefix) -> TrafficSelector {
    TrafficSelector {
        src,
        dst,
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

fn isakmp(group: DhGroup) -> Vec<IsakmpProposal> {
    vec![IsakmpProposal {
        priority: 10,
        cipher: IkeCipher::AesCbc(256),
        hash: IkeHash::Sha256,
        group,
        lifetime: 86_400,
    }]
}

/// The crypto map entry both setup benchmarks negotiate (the same
/// `MapEntry` type serves IKEv1 and IKEv2).
pub fn map_entry(local: IpAddr, peers: Vec<IpAddr>, selectors: Vec<TrafficSelector>) -> MapEntry {
    MapEntry {
        tag: TAG,
        map: "BENCH".into(),
        seq: 10,
        dynamic: None,
        peers,
        discover: false,
        local,
        transforms: vec![EspTransform {
            name: "AES128-SHA1".into(),
            enc: EncAlg::AesCbc128,
            auth: AuthAlg::HmacSha1_96,
            tunnel: true,
        }],
        selectors,
        pfs: None,
        lifetime: IpsecLifetime::default(),
        replay_window: 64,
    }
}

/// A hub: any peer with the wildcard key, any proxy it proposes.
fn responder_policy(group: DhGroup) -> Ikev1Policy {
    let mut entry = map_entry(RESPONDER.into(), Vec::new(), Vec::new());
    entry.dynamic = Some(("BENCH-DYN".into(), 10));
    Ikev1Policy {
        isakmp: isakmp(group),
        keys: vec![PresharedKey {
            peer: IpPrefix::any_v4(),
            key: SecretBytes::new(PSK.to_vec()),
        }],
        maps: vec![entry],
        // No DPD, no NAT keepalives, Main Mode: the defaults.
        ..Ikev1Policy::default()
    }
}

/// Site `n`: IKE from 100.64.0.0 + n + 1, network 10.0.0.0 + n·256 / 24.
fn site(n: usize) -> (IpAddr, IpPrefix) {
    let n = u32::try_from(n).expect("held is at most 65 535");
    let ike = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + n + 1);
    let lan = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (n << 8));
    let lan = IpPrefix::new(lan.into(), 24).expect("a /24 of 10/8");
    (ike.into(), lan)
}

fn initiator_policy(group: DhGroup, n: usize) -> Ikev1Policy {
    let (local, lan) = site(n);
    let remote: IpPrefix = RESPONDER_LAN.parse().expect("a prefix");
    Ikev1Policy {
        isakmp: isakmp(group),
        keys: vec![PresharedKey {
            peer: IpPrefix::host(RESPONDER.into()),
            key: SecretBytes::new(PSK.to_vec()),
        }],
        maps: vec![map_entry(
            local,
            vec![RESPONDER.into()],
            vec![sel(lan, remote)],
        )],
        ..Ikev1Policy::default()
    }
}

/// The responder and what it has been through since it last forgot.
struct Rig {
    initiator_group: DhGroup,
    group: DhGroup,
    responder: Engine,
    now: Instant,
    held_limit: usize,
    held: usize,
    outs: Vec<Output>,
    timers: TimerWalks,
    /// The last debug lines of both sides, for a failure's report.
    logs: Vec<String>,
}

impl Rig {
    fn new(initiator_group: DhGroup, group: DhGroup, held_limit: usize) -> Rig {
        Rig {
            initiator_group,
            group,
            responder: Engine::new(responder_policy(group)),
            now: Instant::now(),
            held_limit,
            held: 0,
            outs: Vec::with_capacity(16),
            timers: TimerWalks::default(),
            logs: Vec::new(),
        }
    }

    fn fail(&self, why: String) -> anyhow::Error {
        anyhow::anyhow!(
            "{why}\nresponder stats: {:?}\nlast debug lines:\n  {}",
            self.responder.stats(),
            self.logs.join("\n  ")
        )
    }

    /// One complete Main Mode + Quick Mode with a new peer. Returns the
    /// responder's CPU time for it in nanoseconds (also recorded in
    /// `hist`).
    fn setup(&mut self, hist: &mut Histogram<u64>) -> Result<u64> {
        self.logs.clear();
        let n = self.held;
        let (peer_ip, lan) = site(n);
        let mut init = Engine::new(initiator_policy(self.initiator_group, n));
        let responder_addr = SocketAddr::new(RESPONDER.into(), 500);
        let flow = FlowKey {
            src: lan.addr(),
            dst: "198.19.0.10".parse().expect("an address"),
            proto: 1,
            src_port: 0,
            dst_port: 0,
        };
        let before = self.responder.stats().phase2_established;
        init.acquire(self.now, TAG, flow);
        let mut logs = std::mem::take(&mut self.logs);
        let ran = exchange(
            &mut init,
            &mut self.responder,
            self.now,
            responder_addr,
            peer_ip,
            &mut self.outs,
            &mut self.timers,
            &mut |who, line| push_log(&mut logs, who, line),
        );
        self.logs = logs;
        let Exchange {
            cpu,
            r_in,
            r_out,
            r_installs,
            r_inbound,
            i_installs,
        } = ran.map_err(|why| self.fail(why))?;
        let established = self.responder.stats().phase2_established - before;
        if (r_in, r_out, r_installs, r_inbound, i_installs, established) != (5, 4, 1, 1, 1, 1) {
            return Err(self.fail(format!(
                "group {} setup {n} with {peer_ip} did not complete: responder took {r_in} datagrams (5 expected), sent {r_out} (4), installed {r_installs} pair(s) and {r_inbound} inbound SA(s) (1, 1), phase 2 established {established} (1); initiator installed {i_installs} (1)",
                self.group.id()
            )));
        }
        hist.record(cpu.max(1))?;
        self.held += 1;
        if self.held >= self.held_limit {
            self.forget()?;
        }
        Ok(cpu)
    }

    /// Checks what the responder holds, then makes it forget (untimed).
    fn forget(&mut self) -> Result<()> {
        let sas = self.responder.isakmp_sas(self.now);
        let pairs = self.responder.pairs().count();
        let good = sas
            .iter()
            .filter(|s| s.state == "QM_IDLE" && s.group == Some(self.group.id()))
            .count();
        if sas.len() != self.held || good != self.held || pairs != self.held {
            return Err(self.fail(format!(
                "the responder holds {} ISAKMP SAs ({good} established in group {}) and {pairs} pairs after {} setups",
                sas.len(),
                self.group.id(),
                self.held
            )));
        }
        self.responder.clear_sa(self.now);
        self.responder.clear_isakmp(self.now);
        let mut deletes = 0;
        while let Some(o) = self.responder.poll_output() {
            if matches!(o, Output::Delete { .. }) {
                deletes += 1;
            }
        }
        if deletes != self.held
            || self.responder.pairs().count() != 0
            || !self.responder.isakmp_sas(self.now).is_empty()
        {
            return Err(self.fail(format!(
                "clearing {} setups gave {deletes} deletes",
                self.held
            )));
        }
        self.held = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(groups: Vec<DhGroup>, held: usize, max: u64) -> Options {
        Options {
            groups,
            duration: Duration::from_secs(5),
            held,
            max_setups: Some(max),
        }
    }

    #[test]
    fn every_setup_completes_and_the_responder_forgets_what_it_held() {
        let mut reports = Vec::new();
        let ms = run(
            &opts(vec![DhGroup::Modp1024, DhGroup::Modp2048], 3, 7),
            |p| reports.push((p.group, p.setups)),
        )
        .expect("the benchmark runs");
        assert_eq!(ms.len(), 2);
        assert_eq!((ms[0].group, ms[1].group), (2, 14));
        for m in &ms {
            // Seven setups, each verified (Install on both sides), the
            // responder holding three at most and checked and cleared
            // each time.
            assert_eq!(m.setups, 7, "group {}", m.group);
            assert_eq!(m.held, 3);
            assert!(m.rounds >= 1 && m.dh_ops >= u64::from(m.rounds));
            assert!(m.setups_per_sec > 0.0 && m.ratio_to_dh > 0.0);
            assert!(m.round_ratio_min > 0.0 && m.round_ratio_min <= m.round_ratio_max);
            // Progress after every round, the last one with the total.
            let last = reports.iter().rfind(|r| r.0 == m.group);
            assert_eq!(last, Some(&(m.group, 7)));
            let n = reports.iter().filter(|r| r.0 == m.group).count();
            assert_eq!(n, m.rounds as usize);
        }
    }

    #[test]
    fn a_negotiation_that_does_not_complete_fails_the_run() {
        // The initiator offers group 2 to a group-14 responder: Main Mode
        // is refused with NO-PROPOSAL-CHOSEN and nothing is installed.
        let mut rig = Rig::new(DhGroup::Modp1024, DhGroup::Modp2048, 10);
        let mut hist = Histogram::new(3).expect("histogram");
        let err = rig.setup(&mut hist).expect_err("the setup cannot complete");
        let text = format!("{err:#}");
        assert!(text.contains("did not complete"), "{text}");
        assert!(text.contains("no_proposal_chosen: 1"), "{text}");
    }

    #[test]
    fn groups_other_than_2_and_14_are_refused() {
        assert_eq!(parse_group("2").unwrap(), DhGroup::Modp1024);
        assert_eq!(parse_group("14").unwrap(), DhGroup::Modp2048);
        for bad in ["5", "19", "x", ""] {
            assert!(parse_group(bad).is_err(), "{bad}");
        }
    }
}
