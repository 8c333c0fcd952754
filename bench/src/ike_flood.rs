//! `espada-bench ike-flood` and `espada-bench ike-responder`: an IKEv2
//! responder under a flood of spoofed IKE_SA_INIT requests, on real
//! sockets.
//!
//! `ike-flood` sends IKE_SA_INITs from random source addresses inside a
//! prefix (raw IPv4 socket, `IP_HDRINCL`, IP and UDP headers built here
//! with their checksums) at a responder, bounded by a packet count and a
//! duration (and optionally a rate), while an in-process IKEv2 initiator
//! ([`Engine`] on a [`UdpSocket`]) sets up IKE SA + first CHILD_SA with
//! the same responder several times: a few setups before the flood (the
//! baseline) and the rest during it. Each setup runs to the initiator's
//! `Install`, is timed, then deleted (INFORMATIONAL) before the next one.
//! The initiator's counters tell whether the responder demanded a COOKIE.
//!
//! Every address involved must be inside 198.18.0.0/15 (RFC 2544's
//! benchmarking range): the tool refuses anything else, so a mistyped
//! flag cannot spoof real addresses.
//!
//! `ike-responder` runs the IKEv2 engine as a responder on a UDP socket
//! (any peer with the one pre-shared key, any CHILD_SA), the target for
//! `ike-flood` until the daemon answers IKEv2 itself, and a load target of
//! its own; it prints its counters every second and at exit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use control::ike::crypto::DhGroup;
use control::ikev2::{Engine, Output, Stats};
use dataplane::spd::IpPrefix;

use crate::ikev2_bench::{self, flow, initiator_policy, responder_policy, TAG};
use crate::rng::Rng;

/// The only addresses the tools accept (RFC 2544 benchmarking range).
pub const LAB: &str = "198.18.0.0/15";
/// The initiator's and responder's protected networks (selectors only).
const INITIATOR_LAN: &str = "198.19.1.0/24";
const RESPONDER_LAN: &str = "198.19.2.0/24";

pub fn lab_prefix() -> IpPrefix {
    LAB.parse().expect("a prefix")
}

/// `addr` as IPv4 inside 198.18.0.0/15, or why not.
pub fn lab_addr(flag: &str, s: &str) -> Result<Ipv4Addr> {
    let a: Ipv4Addr = s
        .parse()
        .with_context(|| format!("{flag} {s:?}: an IPv4 address"))?;
    if !lab_prefix().contains(&IpAddr::V4(a)) {
        bail!("{flag} {a}: only {LAB} addresses may be used in this lab");
    }
    Ok(a)
}

/// The UDP socket on `local`; an address in use or not of this machine
/// is said with what to do (see [`bind_error`]). `other`: what to give
/// instead of a port in use (ike-responder: `--port`; ike-flood, whose
/// port is also the target's: another `--local`).
pub fn bind_udp(local: SocketAddr, other: &str) -> Result<UdpSocket> {
    UdpSocket::bind(local).map_err(|e| bind_error(local, other, &e))
}

/// One line for a UDP bind that failed, saying what to do.
pub fn bind_error(local: SocketAddr, other: &str, e: &std::io::Error) -> anyhow::Error {
    let (ip, port) = (local.ip(), local.port());
    match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "UDP port {port} on {ip} is in use (strongSwan's charon, or another espada-bench?): stop it or give {other}"
        ),
        std::io::ErrorKind::AddrNotAvailable => anyhow::anyhow!(
            "{ip} is not an address of this machine (or of this network namespace): add it to an interface (ip addr add {ip}/24 dev IF) or give one it has"
        ),
        _ => anyhow::anyhow!("bind UDP {local}: {e}"),
    }
}

/// A prefix inside 198.18.0.0/15 with at least 4 addresses.
pub fn lab_spoof_prefix(s: &str) -> Result<(Ipv4Addr, u8)> {
    let p: IpPrefix = s
        .parse()
        .map_err(|e| anyhow::anyhow!("--spoof-from {s:?}: {e:?}"))?;
    let IpAddr::V4(base) = p.addr() else {
        bail!("--spoof-from {s}: an IPv4 prefix");
    };
    let lab = lab_prefix();
    if p.prefix_len() < lab.prefix_len() || !lab.contains(&p.addr()) {
        bail!("--spoof-from {s}: must lie inside {LAB}");
    }
    if p.prefix_len() > 30 {
        bail!("--spoof-from {s}: give a prefix of /30 or shorter");
    }
    Ok((base, p.prefix_len()))
}

// ---------------------------------------------------------------- packets

/// The Internet checksum (RFC 1071) of `parts` concatenated; each part
/// but the last must be of even length.
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 + UDP datagram carrying `payload`, checksums filled in.
pub fn ipv4_udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    id: u16,
    payload: &[u8],
) -> Result<Vec<u8>> {
    let udp_len = u16::try_from(8 + payload.len()).context("payload too long for UDP")?;
    let total = u16::try_from(20 + 8 + payload.len()).context("payload too long for IPv4")?;
    let mut p = Vec::with_capacity(usize::from(total));
    p.extend_from_slice(&[0x45, 0]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
    p.extend_from_slice(&[64, 17, 0, 0]); // TTL, UDP, checksum
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let ip_sum = inet_checksum(&[&p[..20]]);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.octets());
    pseudo[4..8].copy_from_slice(&dst.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&udp_len.to_be_bytes());
    let mut sum = inet_checksum(&[&pseudo, &p[20..]]);
    if sum == 0 {
        sum = 0xffff; // RFC 768: zero means "no checksum"
    }
    p[26..28].copy_from_slice(&sum.to_be_bytes());
    Ok(p)
}

/// A raw IPv4 socket that takes whole IP datagrams (`IP_HDRINCL`).
struct RawSocket(OwnedFd);

impl RawSocket {
    fn new() -> Result<RawSocket> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error())
                .context("raw socket (IPPROTO_RAW): run as root (CAP_NET_RAW)");
        }
        // SAFETY: fd is a new, valid descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: a valid fd and a c_int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_HDRINCL,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("setsockopt IP_HDRINCL");
        }
        Ok(RawSocket(fd))
    }

    fn send(&self, packet: &[u8], dst: Ipv4Addr) -> std::io::Result<()> {
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst.octets()),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `packet` and `sa` are valid for the lengths given.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ flood

pub struct FloodOptions {
    pub target: Ipv4Addr,
    pub port: u16,
    pub local: Ipv4Addr,
    pub psk: String,
    pub spoof_base: Ipv4Addr,
    pub spoof_len: u8,
    pub count: u64,
    pub duration: Duration,
    /// Packets per second at most; 0 = as fast as the socket takes them.
    pub rate: u64,
    pub setups: usize,
    pub baseline_setups: usize,
    pub group: DhGroup,
    /// Flood time before the first legitimate setup under flood.
    pub lead: Duration,
    pub setup_timeout: Duration,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FloodCounters {
    pub sent: u64,
    pub send_errors: u64,
    pub seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SetupResult {
    /// Started while the flood ran (it may end during the setup).
    pub under_flood: bool,
    pub ok: bool,
    pub ms: f64,
    /// The responder answered IKE_SA_INIT with a COOKIE first.
    pub cookie: bool,
    pub retransmits: u64,
    /// The delete after it was answered.
    pub deleted: bool,
}

/// The spoofed request: a real IKE_SA_INIT of an initiator engine for
/// `local` → `target` (its SPI is replaced in each packet).
fn template(o: &FloodOptions) -> Result<Vec<u8>> {
    let mut e = new_initiator(o);
    e.acquire(Instant::now(), TAG, initiator_flow());
    while let Some(out) = e.poll_output() {
        if let Output::Send { data, .. } = out {
            return Ok(data);
        }
    }
    bail!("the initiator engine sent no IKE_SA_INIT")
}

fn lan(s: &str) -> IpPrefix {
    s.parse().expect("a prefix")
}

fn initiator_flow() -> dataplane::spd::FlowKey {
    flow(lan(INITIATOR_LAN), lan(RESPONDER_LAN))
}

fn new_initiator(o: &FloodOptions) -> Engine {
    let mut e = Engine::new(initiator_policy(
        o.group,
        o.local.into(),
        o.target.into(),
        lan(INITIATOR_LAN),
        lan(RESPONDER_LAN),
        o.psk.as_bytes(),
    ));
    e.set_ports(o.port, control::ikev2::engine::NAT_T_PORT);
    e
}

fn flood(o: &FloodOptions, template: &[u8], sent_now: &AtomicU64) -> Result<FloodCounters> {
    let sock = RawSocket::new()?;
    let mut rng = Rng::seeded();
    let host_bits = 32 - u32::from(o.spoof_len);
    let size = 1u64 << host_bits;
    let base = u32::from(o.spoof_base) & !((size - 1) as u32);
    let mut payload = template.to_vec();
    let mut c = FloodCounters::default();
    let start = Instant::now();
    let mut id: u16 = 0;
    while c.sent + c.send_errors < o.count && !STOP.load(Ordering::Relaxed) {
        let elapsed = start.elapsed();
        if elapsed >= o.duration {
            break;
        }
        if o.rate > 0 {
            let due = (elapsed.as_secs_f64() * o.rate as f64) as u64;
            if c.sent + c.send_errors >= due {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
        }
        let r = rng.next();
        // A host address of the prefix: neither all-zeros nor all-ones.
        let host = 1 + (r % (size - 2)) as u32;
        let src = Ipv4Addr::from(base | host);
        payload[..8].copy_from_slice(&rng.next().to_be_bytes());
        id = id.wrapping_add(1);
        let packet = ipv4_udp(src, o.target, o.port, o.port, id, &payload)?;
        match sock.send(&packet, o.target) {
            Ok(()) => c.sent += 1,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                c.send_errors += 1;
                std::thread::yield_now();
            }
            Err(e) => {
                c.send_errors += 1;
                if c.sent == 0 && c.send_errors >= 100 {
                    return Err(e).context("raw sendto keeps failing");
                }
            }
        }
        if c.sent % 1024 == 0 {
            sent_now.store(c.sent, Ordering::Relaxed);
        }
    }
    sent_now.store(c.sent, Ordering::Relaxed);
    c.seconds = start.elapsed().as_secs_f64();
    Ok(c)
}

/// The legitimate initiator on its socket.
struct Legit<'a> {
    o: &'a FloodOptions,
    sock: UdpSocket,
    local: SocketAddr,
    engine: Engine,
    buf: Vec<u8>,
    logs: Vec<String>,
}

impl<'a> Legit<'a> {
    fn new(o: &'a FloodOptions) -> Result<Legit<'a>> {
        let local = SocketAddr::V4(SocketAddrV4::new(o.local, o.port));
        let sock = bind_udp(local, "another --local address")?;
        Ok(Legit {
            o,
            sock,
            local,
            engine: new_initiator(o),
            buf: vec![0u8; 65_536],
            logs: Vec::new(),
        })
    }

    /// Carries out the engine's outputs; true when it installed a pair.
    fn drain(&mut self) -> bool {
        let mut installed = false;
        while let Some(out) = self.engine.poll_output() {
            match out {
                Output::Send {
                    local,
                    remote,
                    data,
                } => {
                    if local != self.local {
                        self.log(format!(
                            "not sent: from {local}, the socket is {}",
                            self.local
                        ));
                        continue;
                    }
                    if let Err(e) = self.sock.send_to(&data, remote) {
                        self.log(format!("send to {remote}: {e}"));
                    }
                }
                Output::Install { .. } => installed = true,
                Output::Log(l) => self.log(l),
                _ => {}
            }
        }
        installed
    }

    fn log(&mut self, l: String) {
        if self.logs.len() >= 20 {
            self.logs.remove(0);
        }
        self.logs.push(l);
    }

    /// Reads datagrams and runs timers until `done` or `deadline`.
    fn run_until(&mut self, deadline: Instant, mut done: impl FnMut(&mut Self, bool) -> bool) {
        loop {
            let installed = self.drain();
            if done(self, installed) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
                continue;
            }
            let mut wait = deadline - now;
            if let Some(t) = self.engine.poll_timeout() {
                wait = wait.min(t.saturating_duration_since(now));
            }
            let wait = wait.clamp(Duration::from_millis(1), Duration::from_millis(50));
            if self.sock.set_read_timeout(Some(wait)).is_err() {
                return;
            }
            match self.sock.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    let data = self.buf[..n].to_vec();
                    self.engine
                        .handle_datagram(Instant::now(), self.local, from, &data);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => {
                    self.log(format!("recv: {e}"));
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }

    /// One IKE_SA_INIT + IKE_AUTH to the initiator's Install, then the
    /// IKE SA deleted.
    fn setup(&mut self, under_flood: bool) -> SetupResult {
        let before: Stats = self.engine.stats().clone();
        let t0 = Instant::now();
        self.engine.acquire(t0, TAG, initiator_flow());
        let mut ok = false;
        self.run_until(t0 + self.o.setup_timeout, |_, installed| {
            ok |= installed;
            ok
        });
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        let after = self.engine.stats().clone();
        let now = Instant::now();
        self.engine.clear(now);
        let mut deleted = false;
        self.run_until(now + Duration::from_secs(3), |l, _| {
            deleted = l.engine.ike_sas().is_empty() && l.engine.poll_timeout().is_none();
            deleted
        });
        if !ok || !deleted {
            // Start the next setup from nothing (no hold-down, no SA).
            self.engine = new_initiator(self.o);
        }
        SetupResult {
            under_flood,
            ok,
            ms,
            cookie: after.cookie_retries > before.cookie_retries,
            retransmits: after.retransmitted - before.retransmitted,
            deleted,
        }
    }
}

pub struct FloodReport {
    pub flood: FloodCounters,
    pub setups: Vec<SetupResult>,
    pub initiator_stats: Stats,
    pub last_logs: Vec<String>,
}

pub fn run_flood(o: &FloodOptions, mut progress: impl FnMut(&str)) -> Result<FloodReport> {
    on_signals_stop();
    let template = template(o)?;
    let mut legit = Legit::new(o)?;
    let mut setups = Vec::new();
    for _ in 0..o.baseline_setups {
        let r = legit.setup(false);
        progress(&setup_line("baseline", &r));
        setups.push(r);
    }
    let sent_now = AtomicU64::new(0);
    let flood_result = std::thread::scope(|scope| {
        let handle = scope.spawn(|| flood(o, &template, &sent_now));
        let start = Instant::now();
        // Let the flood fill the responder's half-open table first.
        while start.elapsed() < o.lead && !handle.is_finished() {
            std::thread::sleep(Duration::from_millis(10));
        }
        progress(&format!(
            "flood running: {} spoofed IKE_SA_INITs sent in {:.2} s",
            sent_now.load(Ordering::Relaxed),
            start.elapsed().as_secs_f64()
        ));
        let span = o.duration.saturating_sub(o.lead);
        let step = span / u32::try_from(o.setups.max(1)).unwrap_or(u32::MAX);
        for i in 0..o.setups {
            if handle.is_finished() {
                progress("the flood ended before all setups under flood were made");
                break;
            }
            let at = o.lead + step * u32::try_from(i).unwrap_or(u32::MAX);
            while start.elapsed() < at && !handle.is_finished() {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Under flood: started while the flood ran.
            let r = legit.setup(true);
            progress(&setup_line(
                &format!("under flood ({} sent)", sent_now.load(Ordering::Relaxed)),
                &r,
            ));
            setups.push(r);
        }
        handle
            .join()
            .map_err(|_| anyhow::anyhow!("the flood thread panicked"))?
    })?;
    Ok(FloodReport {
        flood: flood_result,
        initiator_stats: legit.engine.stats().clone(),
        last_logs: legit.logs.clone(),
        setups,
    })
}

fn setup_line(what: &str, r: &SetupResult) -> String {
    format!(
        "setup {what}: {} in {:.1} ms, cookie {}, {} retransmission(s), deleted {}",
        if r.ok { "READY" } else { "FAILED" },
        r.ms,
        if r.cookie { "demanded" } else { "no" },
        r.retransmits,
        if r.deleted { "yes" } else { "no" }
    )
}

/// min/median/p95/max of `ms` (sorted here), or None when empty.
pub fn latency(ms: &mut [f64]) -> Option<[f64; 4]> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    Some([ms[0], q(0.5), q(0.95), ms[ms.len() - 1]])
}

// -------------------------------------------------------------- responder

pub struct ResponderOptions {
    pub listen: Ipv4Addr,
    pub port: u16,
    pub psk: String,
    pub groups: Vec<DhGroup>,
    pub cookie_threshold: usize,
    pub duration: Duration,
    pub quiet: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM end the flood or the responder at the next packet.
fn on_signals_stop() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

fn cpu_seconds() -> f64 {
    crate::ike_bench::thread_cpu_ns() as f64 / 1e9
}

pub fn run_responder(o: &ResponderOptions) -> Result<Stats> {
    on_signals_stop();
    let local = SocketAddr::V4(SocketAddrV4::new(o.listen, o.port));
    let sock = bind_udp(local, "--port")?;
    let mut policy = responder_policy(
        o.groups[0],
        o.listen.into(),
        lan(RESPONDER_LAN),
        o.psk.as_bytes(),
        o.cookie_threshold,
    );
    policy.proposals[0].groups = o.groups.clone();
    policy.maps[0].selectors = vec![ikev2_bench::sel(IpPrefix::any_v4(), IpPrefix::any_v4())];
    let mut engine = Engine::new(policy);
    engine.set_ports(o.port, control::ikev2::engine::NAT_T_PORT);
    eprintln!(
        "ike-responder: IKEv2 on {local}, groups {:?}, cookies above {} half-open SAs, for {:.0} s at most (SIGINT/SIGTERM end it)",
        o.groups.iter().map(|g| g.id()).collect::<Vec<_>>(),
        o.cookie_threshold,
        o.duration.as_secs_f64()
    );
    let mut buf = vec![0u8; 65_536];
    let start = Instant::now();
    let (mut send_errors, mut installs) = (0u64, 0u64);
    let mut last_report = (Instant::now(), cpu_seconds(), 0u64);
    while !STOP.load(Ordering::Relaxed) && start.elapsed() < o.duration {
        let now = Instant::now();
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        let mut wait = Duration::from_millis(100);
        if let Some(t) = engine.poll_timeout() {
            wait = wait.min(t.saturating_duration_since(now));
        }
        sock.set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .context("set_read_timeout")?;
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => engine.handle_datagram(Instant::now(), local, from, &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).context("recv"),
        }
        while let Some(out) = engine.poll_output() {
            match out {
                Output::Send {
                    local: l,
                    remote,
                    data,
                } if l != local || sock.send_to(&data, remote).is_err() => send_errors += 1,
                Output::Install { .. } => installs += 1,
                Output::Log(line) if !o.quiet && !line.contains("Initiating") => {
                    eprintln!("{line}")
                }
                _ => {}
            }
        }
        if last_report.0.elapsed() >= Duration::from_secs(1) {
            let s = engine.stats();
            let cpu = cpu_seconds();
            let wall = last_report.0.elapsed().as_secs_f64();
            eprintln!(
                "ike-responder: {:.0} s: received {} (+{:.0}/s), cookies demanded {}, IKE SAs established {}, CHILD_SAs installed {installs}, half-open limit drops {}, send errors {send_errors}, CPU {:.0}%",
                start.elapsed().as_secs_f64(),
                s.received,
                (s.received - last_report.2) as f64 / wall,
                s.cookies_sent,
                s.ike_established,
                s.half_open_limit,
                100.0 * (cpu - last_report.1) / wall
            );
            last_report = (Instant::now(), cpu, s.received);
        }
    }
    let s = engine.stats().clone();
    eprintln!(
        "ike-responder: done after {:.1} s, {:.2} s of CPU, {send_errors} send errors",
        start.elapsed().as_secs_f64(),
        cpu_seconds()
    );
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_verify() {
        // RFC 1071's example: 0001 f203 f4f5 f6f7 sums to ddf2.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(inet_checksum(&[&d]), !0xddf2);
        let p = ipv4_udp(
            "198.18.200.7".parse().unwrap(),
            "198.18.1.1".parse().unwrap(),
            500,
            500,
            7,
            b"hello, odd length",
        )
        .unwrap();
        assert_eq!(p.len(), 28 + 17);
        // A header with its checksum in sums to zero.
        assert_eq!(inet_checksum(&[&p[..20]]), 0);
        let mut pseudo = [0u8; 12];
        pseudo[..8].copy_from_slice(&p[12..20]);
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&p[24..26]);
        assert_eq!(inet_checksum(&[&pseudo, &p[20..]]), 0);
    }

    #[test]
    fn only_lab_addresses() {
        assert!(lab_addr("--target", "198.18.1.1").is_ok());
        assert!(lab_addr("--target", "198.19.255.1").is_ok());
        assert!(lab_addr("--target", "10.0.0.1").is_err());
        assert!(lab_addr("--target", "198.20.0.1").is_err());
        assert_eq!(
            lab_spoof_prefix("198.18.128.0/17").unwrap(),
            ("198.18.128.0".parse().unwrap(), 17)
        );
        assert!(lab_spoof_prefix("198.0.0.0/8").is_err());
        assert!(lab_spoof_prefix("192.0.2.0/24").is_err());
        assert!(lab_spoof_prefix("198.18.0.1/32").is_err());
    }

    #[test]
    fn a_port_in_use_or_a_foreign_address_says_what_to_do() {
        // A port really taken, on the loopback (nothing is sent).
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap();
        let e = bind_udp(taken, "--port").unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "UDP port {} on 127.0.0.1 is in use (strongSwan's charon, or another espada-bench?): stop it or give --port",
                taken.port()
            )
        );
        let local: SocketAddr = "198.18.1.1:500".parse().unwrap();
        let gone = std::io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
        let e = bind_error(local, "--port", &gone).to_string();
        assert!(
            e.starts_with("198.18.1.1 is not an address of this machine")
                && e.contains("add it to an interface")
                && !e.contains('\n'),
            "{e}"
        );
        let other = std::io::Error::from_raw_os_error(libc::EACCES);
        assert!(bind_error(local, "--port", &other)
            .to_string()
            .starts_with("bind UDP 198.18.1.1:500: "));
    }

    #[test]
    fn latency_quantiles() {
        assert_eq!(latency(&mut []), None);
        let mut v = vec![5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(latency(&mut v), Some([1.0, 3.0, 5.0, 5.0]));
    }
}
