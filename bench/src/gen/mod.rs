//! `espada-bench gen` and `espada-bench sink`: an AF_XDP packet generator
//! and receiver on the dataplane's own AF_XDP code (`dataplane::io::xsk`).
//!
//! gen: one worker per TX queue, pinned to a core, sends batches straight
//! from its UMEM (TX ring only). Every UMEM frame is built once for one
//! size of the pattern (`frame::Template`); per packet only the flow's
//! source port, the probe header (flow, sequence number, CLOCK_MONOTONIC
//! transmit time) and the checksum are written. A token bucket
//! (`pace::Pacer`) holds the target rate. With `--esp` every packet is
//! encrypted for the given SA (tunnel mode, to a gateway's outside
//! address) by `dataplane::esp::encap_batch`, so a gateway's decryption
//! path can be driven alone.
//!
//! sink: the dataplane's XDP program in its capture role sends every TCP,
//! UDP and ESP packet of the interface to one AF_XDP socket per RX queue;
//! workers account each packet (`track::Tally`): per-flow sequence numbers
//! (loss, reordering), one-way latency (both ends on one host, one
//! monotonic clock), ESP by SPI.
//!
//! Both print a progress line a second on stderr and a JSON summary on
//! stdout (or `--json FILE`). Rates: `gbps_l2` counts Ethernet header + IP
//! packet (what AF_XDP sends and receives, no FCS); `gbps_wire` adds 24
//! bytes per frame (FCS 4, preamble and delimiter 8, inter-frame gap 12),
//! what the frames occupy on a physical link.

pub mod frame;
pub mod net;
pub mod pace;
pub mod sink;
pub mod track;

pub use sink::parse_sink;

use crate::flags::Flags;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use dataplane::api::{Direction, EspMode, Lifetime, SaKeys, SaParams, UdpEncap};
use dataplane::esp::{encap_batch, PacketBuf};
use dataplane::io::xsk::{BindMode, Desc, Umem, XskSocket, FRAME_SIZE};
use dataplane::netlink::RtNetlink;
use dataplane::sa::OutboundSa;
use serde::Serialize;

use frame::{FlowSpec, Proto, Size, Template, ETH_LEN, MAX_FLOWS, WIRE_OVERHEAD};

/// UMEM frames per worker: a multiple of the IMIX pattern's 12, so every
/// size keeps its share when frames rotate.
const FRAMES: u32 = 4080;
const RING: u32 = 2048;
const MAX_BATCH: usize = 256;
/// Most queues gen and sink take (`--queues`).
pub const MAX_QUEUES: u32 = 64;
/// Where an ESP packet's inner IP packet is written in its frame: room in
/// front for the outer headers encapsulation adds and the Ethernet header.
const ESP_HEADROOM: usize = 256;

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

/// Ctrl-C / SIGTERM end the run cleanly (summary printed, XDP detached).
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe).
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall): the clock both ends
/// stamp with, so one-way latency is meaningful on one host.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pins the calling worker to `core`, modulo the cores there are (a
/// small machine runs every queue anyway); says so on stderr when it
/// wraps or the kernel refuses, since the figures then share a core.
fn pin(core: usize) {
    let ids = core_affinity::get_core_ids().unwrap_or_default();
    let Some(id) = ids.get(core % ids.len().max(1)) else {
        eprintln!("espada-bench: cannot list the cores: worker for core {core} not pinned");
        return;
    };
    if core >= ids.len() {
        eprintln!(
            "espada-bench: core {core} does not exist ({} cores): pinned to core {} instead",
            ids.len(),
            id.id
        );
    }
    if !core_affinity::set_for_current(*id) {
        eprintln!(
            "espada-bench: pinning a worker to core {} failed: it runs unpinned",
            id.id
        );
    }
}

/// A probe run id for a run started now: the clock's microseconds, fresh
/// enough that two runs in a row differ.
pub fn clock_run_id() -> u16 {
    (now_ns() / 1_000) as u16
}

fn gbps(bytes: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes * 8.0 / secs / 1e9
    } else {
        0.0
    }
}

/// A `--json FILE`, opened (created if need be) before the run, so that
/// a path that cannot be written is refused before anything is measured
/// rather than after. Its old content stays until the summary replaces
/// it; a file this run created and never wrote (the run failed) is
/// removed again.
pub struct JsonFile {
    path: PathBuf,
    file: std::fs::File,
    created: bool,
    written: bool,
}

impl JsonFile {
    pub fn create(path: &Path) -> Result<JsonFile> {
        let refused = |e: std::io::Error| {
            anyhow!(
                "--json {}: cannot write it ({e}): give a path in a directory you can write",
                path.display()
            )
        };
        // Created here only if no one else had it, in one step: a file
        // (or a symlink's target) another run made is never removed.
        let open = |new: bool| {
            let mut o = std::fs::OpenOptions::new();
            o.write(true);
            if new {
                o.create_new(true);
            } else {
                // A symlink whose target is missing: made, not ours to
                // remove.
                o.create(true);
            }
            o.open(path)
        };
        let (file, created) = match open(true) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                (open(false).map_err(refused)?, false)
            }
            Err(e) => return Err(refused(e)),
        };
        Ok(JsonFile {
            path: path.to_path_buf(),
            file,
            created,
            written: false,
        })
    }

    /// Replaces the file's content with `text` and a newline (a pipe or
    /// a terminal, `/dev/stdout`, is just written to).
    pub fn write(&mut self, text: &str) -> Result<()> {
        use std::io::{Seek, Write};
        self.written = true;
        let f = &mut self.file;
        let mut replace = || -> std::io::Result<()> {
            if f.metadata()?.is_file() {
                f.set_len(0)?;
                f.seek(std::io::SeekFrom::Start(0))?;
            }
            f.write_all(format!("{text}\n").as_bytes())
        };
        replace().map_err(|e| anyhow!("writing --json {}: {e}", self.path.display()))
    }
}

impl Drop for JsonFile {
    fn drop(&mut self) {
        // Still empty: another run given the same path may have written
        // its summary to the file this one created.
        let empty = self.file.metadata().is_ok_and(|m| m.len() == 0);
        if self.created && !self.written && empty {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The `--json FILE` of `path`, opened now (see [`JsonFile`]).
pub fn open_json(path: &Option<PathBuf>) -> Result<Option<JsonFile>> {
    path.as_deref().map(JsonFile::create).transpose()
}

/// A summary to its `--json FILE`, or to stdout. When the file cannot be
/// written the summary goes to stdout all the same, before the error.
fn write_json<T: Serialize>(v: &T, file: Option<&mut JsonFile>) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    match file {
        Some(f) => f.write(&text).map_err(|e| {
            outln!("{text}");
            anyhow!("{e}: the summary is on stdout instead")
        }),
        None => {
            outln!("{text}");
            Ok(())
        }
    }
}

// ---------------------------------------------------------------- options

/// `--esp spi=N,suite=S,enc=HEX[,auth=HEX],peer=ADDR[,local=ADDR][,natt][,seq=N]`.
#[derive(Debug, Clone)]
pub struct EspSpec {
    pub spi: u32,
    pub suite: String,
    pub keys: SaKeys,
    pub enc: dataplane::crypto::EncAlg,
    pub auth: dataplane::crypto::AuthAlg,
    pub peer: IpAddr,
    pub local: Option<IpAddr>,
    pub natt: bool,
    /// The first sequence number sent (1 unless given): an SA with an
    /// anti-replay window that has carried traffic drops anything at or
    /// below what it has seen, so a second run starts above the first.
    pub first_seq: u64,
}

impl EspSpec {
    pub fn parse(s: &str) -> Result<EspSpec> {
        let (mut spi, mut suite, mut enc, mut auth, mut peer, mut local, mut natt) =
            (None, None, None, None, None, None, false);
        let mut first_seq = 1u64;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            match k {
                "spi" => {
                    let n = match v.strip_prefix("0x") {
                        Some(h) => u32::from_str_radix(h, 16).ok(),
                        None => v.parse().ok(),
                    };
                    spi = Some(n.filter(|&n| n >= 256).ok_or_else(|| {
                        anyhow!("--esp spi={v}: give the SPI the gateway expects, 256 to 4294967295 (decimal or 0x hex)")
                    })?);
                }
                "suite" => suite = Some(v.to_string()),
                "enc" => enc = Some(net::parse_hex("--esp enc", v)?),
                "auth" => auth = Some(net::parse_hex("--esp auth", v)?),
                "peer" => {
                    peer = Some(v.parse::<IpAddr>().map_err(|_| {
                        anyhow!(
                        "--esp peer={v}: an IPv4 or IPv6 address (the gateway's outside address)"
                    )
                    })?)
                }
                "local" => {
                    local = Some(
                        v.parse::<IpAddr>()
                            .map_err(|_| anyhow!("--esp local={v}: an IPv4 or IPv6 address"))?,
                    )
                }
                "natt" if part.contains('=') => {
                    bail!("--esp {part}: natt is a flag: give natt alone for ESP in UDP (port 4500), or leave it out")
                }
                "natt" => natt = true,
                "seq" => {
                    first_seq = v.parse().ok().filter(|&n: &u64| (1..=u64::from(u32::MAX)).contains(&n)).ok_or_else(|| {
                        anyhow!("--esp seq={v}: the first sequence number, 1 to 4294967295 (above the highest the gateway's SA has seen)")
                    })?;
                }
                other => {
                    bail!("--esp: unknown key {other:?} (spi, suite, enc, auth, peer, local, natt, seq)")
                }
            }
        }
        let spi = spi.context("--esp needs spi=N")?;
        let suite = suite.context("--esp needs suite= (aes128-sha1, aes128gcm16, ...)")?;
        let (e, a) = crate::crypto_bench::parse_suite(&suite)?;
        let keys = SaKeys {
            enc: enc.unwrap_or_default(),
            auth: auth.unwrap_or_default(),
        };
        if keys.enc.len() != e.key_len() {
            bail!("--esp enc: {suite} needs a {}-byte cipher key (hex; AES-GCM: key + 4-byte salt), got {}", e.key_len(), keys.enc.len());
        }
        if keys.auth.len() != a.key_len() {
            bail!(
                "--esp auth: {suite} needs a {}-byte integrity key (hex), got {}",
                a.key_len(),
                keys.auth.len()
            );
        }
        Ok(EspSpec {
            spi,
            suite,
            keys,
            enc: e,
            auth: a,
            peer: peer.context("--esp needs peer=ADDR (the gateway's outside address)")?,
            local,
            natt,
            first_seq,
        })
    }

    /// The outbound SA the generator encrypts with.
    pub fn sa(&self, local: IpAddr) -> Result<OutboundSa> {
        if local.is_ipv4() != self.peer.is_ipv4() {
            bail!("--esp local= and peer= must be of one family");
        }
        let params = SaParams {
            spi: self.spi,
            direction: Direction::Outbound,
            enc: self.enc,
            auth: self.auth,
            keys: self.keys.clone(),
            mode: EspMode::Tunnel {
                local,
                remote: self.peer,
            },
            udp_encap: self.natt.then(UdpEncap::default),
            esn: false,
            replay_window: 0,
            lifetime: Lifetime::default(),
            selectors: Vec::new(),
        };
        let sa = OutboundSa::new(&params, 0).map_err(|e| anyhow!("--esp: {e}"))?;
        sa.set_last_seq(self.first_seq - 1);
        Ok(sa)
    }
}

pub struct GenOptions {
    pub dev: String,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_mac: Option<[u8; 6]>,
    pub dst_mac: Option<[u8; 6]>,
    /// Packets per second in all; `None` = as fast as possible.
    pub rate: Option<u64>,
    pub size: Size,
    pub flows: u32,
    pub proto: Proto,
    pub dst_port: u16,
    pub duration: Duration,
    pub count: Option<u64>,
    pub queues: u32,
    pub batch: usize,
    pub cpu: usize,
    pub zero_copy: bool,
    pub esp: Option<EspSpec>,
    /// Stamped in every probe, so that a sink tells this run's packets
    /// from an earlier run's still in the path.
    pub run: u16,
    pub json: Option<PathBuf>,
    pub quiet: bool,
    /// `--check`: the checks of a run up to the sockets (root, interface,
    /// route and MAC, MTU, ESP, link speed), then exit: no probe is sent
    /// (resolving the next hop may send ARP/ND), no queue opened.
    pub check: bool,
}

pub const GEN_USAGE: &str = "espada-bench gen --dev IF --src ADDR --dst ADDR [--dst-mac MAC] [--src-mac MAC] \
[--rate PPS|max (100000)] [--size 64..1500|imix (IP bytes; 64, over IPv6 72, 84 with TCP)] [--flows N (1)] [--proto udp|tcp] [--ipv6] \
[--dst-port 9000] [--duration SECS (10)] [--count N] [--queues N (1)] [--batch 64] [--cpu FIRST (0)] \
[--zero-copy] [--esp spi=N,suite=S,enc=HEX[,auth=HEX],peer=ADDR[,local=ADDR][,natt][,seq=N]] [--run ID (from the clock)] \
[--json FILE] [--quiet] [--check (checks only, sends no probe)]";

/// The unsigned integer types options are parsed into, with the largest
/// value each holds (for the message when a number is too large).
pub(crate) trait Unsigned: std::str::FromStr {
    const MAX: u64;
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(impl Unsigned for $t { const MAX: u64 = <$t>::MAX as u64; })*};
}
unsigned!(u16, u32, u64, usize);

/// A flag's value as a number: a bad one says to give a number, one too
/// large for the type says so and gives the limit.
pub(crate) fn number<T: Unsigned>(name: &str, v: &str) -> Result<T> {
    v.parse().map_err(|_| {
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            anyhow!("{name} {v}: too large, give at most {}", T::MAX)
        } else {
            anyhow!("{name} {v:?}: give a number")
        }
    })
}

/// `total` (packets, packets a second) split over `queues`: queue `q`'s
/// share, the remainder one more for each of the first queues, so the
/// shares add up to the total.
pub fn share(total: u64, queues: u32, q: u32) -> u64 {
    let n = u64::from(queues.max(1));
    total / n + u64::from(u64::from(q) < total % n)
}

pub fn parse_gen(args: &[String]) -> Result<GenOptions> {
    let mut o = GenOptions {
        dev: String::new(),
        src: IpAddr::from([0, 0, 0, 0]),
        dst: IpAddr::from([0, 0, 0, 0]),
        src_mac: None,
        dst_mac: None,
        rate: Some(100_000),
        size: Size::Fixed(frame::MIN_SIZE),
        flows: 1,
        proto: Proto::Udp,
        dst_port: 9000,
        duration: Duration::from_secs(10),
        count: None,
        queues: 1,
        batch: 64,
        cpu: 0,
        zero_copy: false,
        esp: None,
        run: clock_run_id(),
        json: None,
        quiet: false,
        check: false,
    };
    let (mut dev, mut src, mut dst, mut ipv6) = (None, None, None, false);
    // Checked against their limits below, once the flags are all read.
    let (mut size, mut flows, mut queues) = (None, 1u64, 1u64);
    let mut flags = Flags::new(args, format!("\nusage: {GEN_USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--dev" => dev = Some(flags.value("--dev")?),
            "--src" => src = Some(flags.value("--src")?),
            "--dst" => dst = Some(flags.value("--dst")?),
            "--src-mac" => o.src_mac = Some(net::parse_mac(&flags.value("--src-mac")?)?),
            "--dst-mac" => o.dst_mac = Some(net::parse_mac(&flags.value("--dst-mac")?)?),
            "--rate" => {
                let v = flags.value("--rate")?;
                o.rate = if v == "max" {
                    None
                } else {
                    match v.parse::<u64>() {
                        Ok(n) if n > 0 => Some(n),
                        _ => bail!("--rate {v:?}: packets per second above 0, or max"),
                    }
                }
            }
            "--size" => size = Some(Size::parse(&flags.value("--size")?)?),
            "--flows" => flows = number("--flows", &flags.value("--flows")?)?,
            "--proto" => o.proto = Proto::parse(&flags.value("--proto")?)?,
            "--ipv6" => ipv6 = true,
            "--dst-port" => o.dst_port = number("--dst-port", &flags.value("--dst-port")?)?,
            "--duration" => o.duration = flags.seconds("--duration", 0.0, 86_400.0)?,
            "--count" => o.count = Some(number("--count", &flags.value("--count")?)?),
            "--queues" => queues = number("--queues", &flags.value("--queues")?)?,
            "--batch" => o.batch = number("--batch", &flags.value("--batch")?)?,
            "--cpu" => o.cpu = number("--cpu", &flags.value("--cpu")?)?,
            "--zero-copy" => o.zero_copy = true,
            "--esp" => o.esp = Some(EspSpec::parse(&flags.value("--esp")?)?),
            "--run" => {
                let v = flags.value("--run")?;
                o.run = v
                    .parse()
                    .map_err(|_| anyhow!("--run {v:?}: a run id, 0 to 65535"))?;
            }
            "--json" => o.json = Some(PathBuf::from(flags.value("--json")?)),
            "--quiet" => o.quiet = true,
            "--check" => o.check = true,
            other => bail!("unknown option {other:?}\nusage: {GEN_USAGE}"),
        }
    }
    o.dev = dev.ok_or_else(|| anyhow!("--dev IF is required: the interface to send on"))?;
    let addr = |name: &str, v: Option<String>| -> Result<IpAddr> {
        let v = v.ok_or_else(|| anyhow!("{name} ADDR is required"))?;
        v.parse()
            .map_err(|_| anyhow!("{name} {v:?}: an IPv4 or IPv6 address"))
    };
    o.src = addr("--src", src)?;
    o.dst = addr("--dst", dst)?;
    if o.src.is_ipv4() != o.dst.is_ipv4() {
        bail!("--src {} and --dst {} must be of one family", o.src, o.dst);
    }
    if ipv6 && o.src.is_ipv4() {
        bail!("--ipv6: give IPv6 --src and --dst addresses");
    }
    o.flows = match u32::try_from(flows) {
        Ok(n) if (1..=MAX_FLOWS).contains(&n) => n,
        _ if flows > u64::from(MAX_FLOWS) => {
            bail!("--flows {flows}: too many, give 1 to {MAX_FLOWS}")
        }
        _ => bail!("--flows {flows}: give 1 to {MAX_FLOWS}"),
    };
    o.queues = match u32::try_from(queues) {
        Ok(n) if (1..=MAX_QUEUES).contains(&n) => n,
        _ => bail!("--queues {queues}: give 1 to {MAX_QUEUES}"),
    };
    // Unless given, the size is the default 64, or what the headers need
    // when that is more (IPv6: 72, 84 with TCP), as IMIX's 64s grow.
    let min = frame::min_ip_len(o.src.is_ipv6(), o.proto);
    o.size = size.unwrap_or(Size::Fixed(frame::MIN_SIZE.max(min)));
    o.size.pattern(o.src.is_ipv6(), o.proto)?;
    if o.flows < o.queues {
        bail!("--flows {} < --queues {}: each queue sends flows of its own, give at least one flow per queue", o.flows, o.queues);
    }
    if !(1..=MAX_BATCH).contains(&o.batch) {
        bail!("--batch {}: give 1 to {MAX_BATCH}", o.batch);
    }
    if o.count == Some(0) || o.duration.is_zero() {
        bail!("--count and --duration must be above 0");
    }
    if let Some(rate) = o.rate.filter(|&r| r < u64::from(o.queues)) {
        bail!(
            "--rate {rate} is below --queues {}: each queue sends at least 1 pps, give --rate {} or more (or fewer --queues)",
            o.queues,
            o.queues
        );
    }
    if o.proto == Proto::Udp && o.dst_port == frame::NATT_PORT {
        bail!("--dst-port {}: ESP-in-UDP's port (RFC 3948), a sink would count the probes as ESP: give another port", frame::NATT_PORT);
    }
    Ok(o)
}

// ---------------------------------------------------------------- gen

/// Per-worker counters the progress line reads (relaxed stores once a
/// batch: no locks on the packet path).
#[derive(Default)]
struct Live {
    packets: AtomicU64,
    bytes: AtomicU64,
    /// sink only: probes, Σ next (expected), reordered, ESP.
    probes: AtomicU64,
    expected: AtomicU64,
    reordered: AtomicU64,
    esp: AtomicU64,
}

/// What every generator worker shares.
struct TxPlan {
    templates: Vec<Template>,
    /// With `--esp`: the SA, the Ethernet addresses (destination, source)
    /// and the outer ethertype.
    esp: Option<(Arc<OutboundSa>, [u8; 12], u16)>,
    flows: u32,
    queues: u32,
    batch: usize,
    run: u16,
}

struct TxResult {
    packets: u64,
    bytes: u64,
    encap_errors: u64,
    /// CLOCK_MONOTONIC of the first and the last batch sent: what the
    /// rate is over (not the setup before, nor the TX drain after).
    first_ns: Option<u64>,
    last_ns: u64,
    /// The first batch's packets and bytes: sent at `first_ns`, they are
    /// not part of the rate over [first_ns, last_ns].
    first_packets: u64,
    first_bytes: u64,
}

/// A fixed-capacity FIFO of free frame addresses: frames rotate through
/// the UMEM in order, so each size of the pattern keeps its share.
struct FreeFrames {
    buf: Vec<u64>,
    head: usize,
    len: usize,
}

impl FreeFrames {
    fn full(addrs: impl Iterator<Item = u64>) -> FreeFrames {
        let buf: Vec<u64> = addrs.collect();
        let len = buf.len();
        FreeFrames { buf, head: 0, len }
    }

    fn pop(&mut self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let a = self.buf[self.head];
        self.head = (self.head + 1) % self.buf.len();
        self.len -= 1;
        Some(a)
    }

    fn push(&mut self, a: u64) {
        if self.len == self.buf.len() {
            return; // cannot happen: every frame is in here or in flight
        }
        let tail = (self.head + self.len) % self.buf.len();
        self.buf[tail] = a;
        self.len += 1;
    }
}

fn frame_base(addr: u64) -> u64 {
    addr & !(u64::from(FRAME_SIZE) - 1)
}

#[allow(clippy::too_many_arguments)]
fn tx_worker(
    plan: &TxPlan,
    worker: u32,
    mut sock: XskSocket,
    umem: Umem,
    quota: Option<u64>,
    rate: Option<u64>,
    deadline_ns: u64,
    stop: &AtomicBool,
    live: &Live,
) -> TxResult {
    let n_templates = plan.templates.len();
    let template_of = |base: u64| (base / u64::from(FRAME_SIZE)) as usize % n_templates;
    // Plain frames are written once; ESP frames are encrypted in place and
    // rewritten per packet.
    if plan.esp.is_none() {
        for base in umem.frame_addrs() {
            let t = &plan.templates[template_of(base)];
            // SAFETY: no ring holds any frame yet; one slice at a time.
            if let Some(chunk) = unsafe { umem.chunk_mut(base) } {
                chunk[..t.len()].copy_from_slice(&t.bytes);
            }
        }
    }
    let mut free = FreeFrames::full(umem.frame_addrs());
    // Flows of this worker: worker, worker + queues, ...
    let my_flows: Vec<u32> = (worker..plan.flows).step_by(plan.queues as usize).collect();
    let mut seqs = vec![0u64; my_flows.len()];
    let mut next_flow = 0usize;
    let rate = rate.unwrap_or(0);
    let mut pacer = pace::Pacer::new(rate, pace::burst(rate, plan.batch), now_ns());
    let mut comp = [0u64; MAX_BATCH];
    let mut descs = [Desc {
        addr: 0,
        len: 0,
        options: 0,
    }; MAX_BATCH];
    let mut res = TxResult {
        packets: 0,
        bytes: 0,
        encap_errors: 0,
        first_ns: None,
        last_ns: 0,
        first_packets: 0,
        first_bytes: 0,
    };
    loop {
        if stop.load(Ordering::Relaxed) || SIGNALLED.load(Ordering::Relaxed) {
            break;
        }
        let left = quota.map_or(u64::MAX, |q| q - res.packets);
        if left == 0 {
            break;
        }
        let n = sock.completed(&mut comp);
        for &a in &comp[..n] {
            free.push(frame_base(a));
        }
        let room = (RING - sock.tx_pending()) as usize;
        let want = plan.batch.min(free.len).min(room).min(left as usize) as u64;
        let now = now_ns();
        if now >= deadline_ns {
            break;
        }
        if want == 0 {
            sock.kick_tx();
            std::hint::spin_loop();
            continue;
        }
        let n = pacer.take(now, want) as usize;
        if n == 0 {
            sock.kick_tx();
            let wait = pacer.wait_ns(want);
            if wait > 200_000 {
                std::thread::sleep(Duration::from_nanos((wait - 100_000).min(10_000_000)));
            } else {
                std::thread::yield_now();
            }
            continue;
        }
        let mut m = 0;
        let mut bytes = 0u64;
        match &plan.esp {
            None => {
                for _ in 0..n {
                    let Some(base) = free.pop() else { break };
                    let t = &plan.templates[template_of(base)];
                    let slot = next_flow;
                    next_flow = (next_flow + 1) % my_flows.len();
                    // SAFETY: the frame came off the free list: ours alone.
                    if let Some(chunk) = unsafe { umem.chunk_mut(base) } {
                        t.stamp(chunk, plan.run, my_flows[slot], seqs[slot], now);
                    }
                    seqs[slot] += 1;
                    descs[m] = Desc {
                        addr: base,
                        len: t.len() as u32,
                        options: 0,
                    };
                    bytes += t.len() as u64;
                    m += 1;
                }
            }
            Some((sa, macs, ethertype)) => {
                let mut pkts: [PacketBuf<'_>; MAX_BATCH] =
                    std::array::from_fn(|_| PacketBuf::new(&mut [], 0, 0));
                let mut bases = [0u64; MAX_BATCH];
                let mut k = 0;
                for _ in 0..n {
                    let Some(base) = free.pop() else { break };
                    let t = &plan.templates[template_of(base)];
                    let slot = next_flow;
                    next_flow = (next_flow + 1) % my_flows.len();
                    // SAFETY: the frame came off the free list: ours alone,
                    // and each frame is taken once per batch.
                    let Some(chunk) = (unsafe { umem.chunk_mut(base) }) else {
                        continue;
                    };
                    let ip_len = t.len() - ETH_LEN;
                    chunk[ESP_HEADROOM..ESP_HEADROOM + ip_len].copy_from_slice(&t.bytes[ETH_LEN..]);
                    t.stamp(
                        &mut chunk[ESP_HEADROOM - ETH_LEN..],
                        plan.run,
                        my_flows[slot],
                        seqs[slot],
                        now,
                    );
                    seqs[slot] += 1;
                    pkts[k] = PacketBuf::new(chunk, ESP_HEADROOM, ip_len);
                    bases[k] = base;
                    k += 1;
                }
                encap_batch(sa, &mut pkts[..k]);
                for (p, &base) in pkts[..k].iter_mut().zip(&bases[..k]) {
                    if p.verdict.is_err() || p.start < ETH_LEN {
                        res.encap_errors += 1;
                        free.push(base);
                        continue;
                    }
                    let eth = p.start - ETH_LEN;
                    p.frame[eth..eth + 12].copy_from_slice(macs);
                    p.frame[eth + 12..eth + 14].copy_from_slice(&ethertype.to_be_bytes());
                    let len = p.len + ETH_LEN;
                    descs[m] = Desc {
                        addr: base + eth as u64,
                        len: len as u32,
                        options: 0,
                    };
                    bytes += len as u64;
                    m += 1;
                }
            }
        }
        let sent = sock.send(&descs[..m]);
        // `room` made space for all of them; anything refused goes back.
        for d in &descs[sent..m] {
            free.push(frame_base(d.addr));
        }
        sock.kick_tx();
        let sent_bytes = if sent == m {
            bytes
        } else {
            descs[..sent].iter().map(|d| u64::from(d.len)).sum()
        };
        if sent > 0 {
            if res.first_ns.is_none() {
                res.first_ns = Some(now);
                res.first_packets = sent as u64;
                res.first_bytes = sent_bytes;
            }
            res.last_ns = now;
        }
        res.packets += sent as u64;
        res.bytes += sent_bytes;
        live.packets.store(res.packets, Ordering::Relaxed);
        live.bytes.store(res.bytes, Ordering::Relaxed);
    }
    // Let the kernel finish what is queued (copy mode sends on kicks).
    let deadline = Instant::now() + Duration::from_secs(1);
    while sock.tx_pending() > 0 && Instant::now() < deadline {
        sock.kick_tx();
        let _ = sock.completed(&mut comp);
        std::thread::sleep(Duration::from_micros(50));
    }
    drop(sock);
    drop(umem);
    res
}

#[derive(Serialize)]
struct EspSummary {
    spi: String,
    suite: String,
    local: IpAddr,
    peer: IpAddr,
    natt: bool,
    encap_errors: u64,
}

#[derive(Serialize)]
struct GenSummary {
    tool: &'static str,
    interface: String,
    queues: u32,
    src: IpAddr,
    dst: IpAddr,
    src_mac: String,
    dst_mac: String,
    proto: &'static str,
    size: String,
    mean_ip_len: f64,
    flows: u32,
    /// The run id in every probe (`sink --run`).
    run: u16,
    rate_target_pps: Option<u64>,
    seconds: f64,
    packets: u64,
    bytes_l2: u64,
    pps: f64,
    gbps_l2: f64,
    gbps_wire: f64,
    esp: Option<EspSummary>,
}

/// Runs `espada-bench gen`. An error is one line on stderr (no "Caused
/// by" chain, no backtrace, whatever RUST_BACKTRACE says) and exit code 1:
/// the tool's own errors say what to do, and nothing more is needed.
pub fn gen_main(args: &[String]) -> Result<()> {
    one_line("gen", gen_run(args))
}

/// Runs `espada-bench sink`; errors as for [`gen_main`].
pub fn sink_main(args: &[String]) -> Result<()> {
    one_line("sink", sink::run(args))
}

fn one_line(tool: &str, r: Result<()>) -> Result<()> {
    if let Err(e) = r {
        eprintln!("espada-bench {tool}: {e}");
        std::process::exit(1);
    }
    Ok(())
}

fn gen_run(args: &[String]) -> Result<()> {
    let o = parse_gen(args)?;
    let mut json = if o.check { None } else { open_json(&o.json)? };
    net::require_root(net::euid())?;
    let ifindex = net::interface(&o.dev)?;
    let mut nl = RtNetlink::open().map_err(|e| anyhow!("netlink: {e}"))?;
    let iface = net::iface_info(&mut nl, &o.dev, ifindex)?;
    let tx_queues = net::queue_count(&o.dev, "tx");
    if o.queues > tx_queues {
        bail!(
            "{} has {tx_queues} TX queue(s): give --queues {tx_queues} or less",
            o.dev
        );
    }
    let v6 = o.src.is_ipv6();
    let pattern = o.size.pattern(v6, o.proto)?;
    // Outer addresses: the flows' own, or the ESP tunnel's.
    let (outer_local, outer_dst) = match &o.esp {
        Some(e) => {
            let local = match e.local {
                Some(l) => l,
                None => iface
                    .addrs
                    .iter()
                    .copied()
                    .find(|a| a.is_ipv4() == e.peer.is_ipv4())
                    .ok_or_else(|| {
                        anyhow!(
                            "{} has no IPv{} address for the ESP tunnel: give --esp ...,local=ADDR",
                            o.dev,
                            if e.peer.is_ipv4() { 4 } else { 6 }
                        )
                    })?,
            };
            (local, e.peer)
        }
        None => (o.src, o.dst),
    };
    let src_mac = o.src_mac.unwrap_or(iface.mac);
    let dst_mac = match o.dst_mac {
        Some(m) => m,
        None => {
            let hop = net::next_hop(&mut nl, &o.dev, ifindex, outer_dst)?;
            net::resolve_mac(&mut nl, &o.dev, ifindex, hop)?
        }
    };
    let spec = FlowSpec {
        src: o.src,
        dst: o.dst,
        src_mac,
        dst_mac,
        proto: o.proto,
        dst_port: o.dst_port,
    };
    let templates = pattern
        .iter()
        .map(|&n| Template::build(&spec, n))
        .collect::<Result<Vec<_>>>()?;
    let mut esp_state = None;
    let mut l2_mean = frame::mean_len(&pattern) + ETH_LEN as f64;
    if let Some(e) = &o.esp {
        let sa = e.sa(outer_local)?;
        let longest = pattern.iter().copied().max().unwrap_or(0);
        let outer = dataplane::esp::encapsulated_len(&sa, longest);
        if outer > iface.mtu as usize {
            bail!("--size {}: ESP makes {longest}-byte packets {outer} bytes, above {}'s MTU {}: give a smaller --size (or imix, whose largest is 1400)", o.size.label(), o.dev, iface.mtu);
        }
        l2_mean = pattern
            .iter()
            .map(|&n| dataplane::esp::encapsulated_len(&sa, n) + ETH_LEN)
            .sum::<usize>() as f64
            / pattern.len() as f64;
        let mut macs = [0u8; 12];
        macs[..6].copy_from_slice(&dst_mac);
        macs[6..].copy_from_slice(&src_mac);
        let ethertype = if outer_local.is_ipv4() {
            0x0800
        } else {
            0x86dd
        };
        esp_state = Some((Arc::new(sa), macs, ethertype));
    } else if pattern.iter().any(|&n| n > iface.mtu as usize) {
        bail!(
            "--size {}: above {}'s MTU {}: give {} or less",
            o.size.label(),
            o.dev,
            iface.mtu,
            iface.mtu
        );
    }
    if let Some(rate) = o.rate {
        pace::check_link_rate(rate, l2_mean, net::link_speed_mbps(&o.dev))
            .map_err(|e| anyhow!("{e}"))?;
    }
    if o.check {
        if !o.quiet {
            eprintln!(
                "gen: --check: size {} from {} to {} on {} can be sent ({} -> {}); no probe sent",
                o.size.label(),
                o.src,
                o.dst,
                o.dev,
                net::fmt_mac(&src_mac),
                net::fmt_mac(&dst_mac)
            );
        }
        return Ok(());
    }
    let mode = if o.zero_copy {
        BindMode::Auto
    } else {
        BindMode::Copy
    };
    // Sockets first, all of them: a busy queue fails before any traffic.
    let mut socks = Vec::new();
    for q in 0..o.queues {
        let umem = Umem::new(FRAMES).map_err(|e| anyhow!("allocating the UMEM: {e}"))?;
        let sock = XskSocket::new(&umem, None, ifindex, q, RING, mode)
            .map_err(|e| net::xsk_error(e, &o.dev, q))?;
        socks.push((sock, umem));
    }
    let esp_summary = o.esp.as_ref().map(|e| EspSummary {
        spi: format!("0x{:08x}", e.spi),
        suite: e.suite.clone(),
        local: outer_local,
        peer: e.peer,
        natt: e.natt,
        encap_errors: 0,
    });
    let plan = Arc::new(TxPlan {
        templates,
        esp: esp_state,
        flows: o.flows,
        queues: o.queues,
        batch: o.batch,
        run: o.run,
    });
    if !o.quiet {
        eprintln!(
            "gen: run {}: {} -> {} on {} ({} -> {}), {} flows, size {} ({}), rate {}, {} queue(s){}",
            o.run,
            o.src,
            o.dst,
            o.dev,
            net::fmt_mac(&src_mac),
            net::fmt_mac(&dst_mac),
            o.flows,
            o.size.label(),
            o.proto.name(),
            o.rate.map_or("max".to_string(), |r| format!("{r} pps")),
            o.queues,
            o.esp.as_ref().map_or(String::new(), |e| format!(
                ", ESP SPI 0x{:08x} {} to {}",
                e.spi, e.suite, e.peer
            ))
        );
    }
    catch_signals();
    let stop = Arc::new(AtomicBool::new(false));
    let lives: Arc<Vec<Live>> = Arc::new((0..o.queues).map(|_| Live::default()).collect());
    let start = Instant::now();
    let start_ns = now_ns();
    let deadline_ns = start_ns + o.duration.as_nanos() as u64;
    let mut handles = Vec::new();
    for (q, (sock, umem)) in socks.into_iter().enumerate() {
        let q = q as u32;
        let quota = o.count.map(|c| share(c, o.queues, q));
        // At least 1 each: parse_gen refuses a rate below the queues.
        let rate = o.rate.map(|r| share(r, o.queues, q).max(1));
        let (plan, stop, lives) = (plan.clone(), stop.clone(), lives.clone());
        let core = o.cpu + q as usize;
        handles.push(
            std::thread::Builder::new()
                .name(format!("gen-q{q}"))
                .spawn(move || {
                    pin(core);
                    tx_worker(
                        &plan,
                        q,
                        sock,
                        umem,
                        quota,
                        rate,
                        deadline_ns,
                        &stop,
                        &lives[q as usize],
                    )
                })?,
        );
    }
    let mut last = (0u64, 0u64, Instant::now());
    let mut next_report = start + Duration::from_secs(1);
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let p: u64 = lives
                .iter()
                .map(|l| l.packets.load(Ordering::Relaxed))
                .sum();
            let b: u64 = lives.iter().map(|l| l.bytes.load(Ordering::Relaxed)).sum();
            let dt = last.2.elapsed().as_secs_f64();
            if !o.quiet {
                eprintln!(
                    "gen {:5.1}s: {:>10.0} pps {:>7.3} Gbps (L2)  sent {p}",
                    start.elapsed().as_secs_f64(),
                    (p - last.0) as f64 / dt,
                    gbps((b - last.1) as f64, dt)
                );
            }
            last = (p, b, Instant::now());
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut total = TxResult {
        packets: 0,
        bytes: 0,
        encap_errors: 0,
        first_ns: None,
        last_ns: 0,
        first_packets: 0,
        first_bytes: 0,
    };
    for h in handles {
        let r = h
            .join()
            .map_err(|_| anyhow!("a generator worker panicked"))?;
        total.packets += r.packets;
        total.bytes += r.bytes;
        total.encap_errors += r.encap_errors;
        // The span starts at the earliest worker's first batch: that batch
        // alone is left out of the rate.
        if r.first_ns.is_some() && total.first_ns.is_none_or(|f| r.first_ns < Some(f)) {
            total.first_ns = r.first_ns;
            total.first_packets = r.first_packets;
            total.first_bytes = r.first_bytes;
        }
        total.last_ns = total.last_ns.max(r.last_ns);
    }
    // The rate is over the time from the first batch sent to the last, of
    // the packets sent after that first batch: N batches span N - 1
    // intervals. A run of one batch has no span: its elapsed
    // time then.
    let (seconds, rated_packets, rated_bytes) = match total.first_ns {
        Some(f) if total.last_ns > f => (
            (total.last_ns - f) as f64 / 1e9,
            total.packets - total.first_packets,
            total.bytes - total.first_bytes,
        ),
        _ => (elapsed, total.packets, total.bytes),
    };
    let summary = GenSummary {
        tool: "espada-bench gen",
        interface: o.dev.clone(),
        queues: o.queues,
        src: o.src,
        dst: o.dst,
        src_mac: net::fmt_mac(&src_mac),
        dst_mac: net::fmt_mac(&dst_mac),
        proto: o.proto.name(),
        size: o.size.label(),
        mean_ip_len: frame::mean_len(&pattern),
        flows: o.flows,
        run: o.run,
        rate_target_pps: o.rate,
        seconds,
        packets: total.packets,
        bytes_l2: total.bytes,
        pps: rated_packets as f64 / seconds.max(1e-9),
        gbps_l2: gbps(rated_bytes as f64, seconds),
        gbps_wire: gbps(
            (rated_bytes + rated_packets * WIRE_OVERHEAD as u64) as f64,
            seconds,
        ),
        esp: esp_summary.map(|mut e| {
            e.encap_errors = total.encap_errors;
            e
        }),
    };
    if !o.quiet {
        eprintln!(
            "gen: sent {} packets in {:.2} s: {:.0} pps, {:.3} Gbps L2, {:.3} Gbps on the wire",
            summary.packets, seconds, summary.pps, summary.gbps_l2, summary.gbps_wire
        );
        if let Some(short) = rate_shortfall(o.rate, summary.pps, o.count, total.packets) {
            eprintln!("gen: {short}");
        }
    }
    write_json(&summary, json.as_mut())
}

/// A paced run that sent less than 99% of its target rate (a busy
/// machine: the workers were not scheduled in time), said in one line;
/// `None` when the rate was met, not paced, or the run ended on its
/// `--count` before a rate could be measured.
fn rate_shortfall(target: Option<u64>, pps: f64, count: Option<u64>, sent: u64) -> Option<String> {
    let target = target?;
    if count.is_some_and(|c| sent >= c && (c as f64) < target as f64) || pps >= 0.99 * target as f64
    {
        return None;
    }
    Some(format!(
        "sent {pps:.0} pps, {:.1}% below the {target} asked: the workers were not scheduled in time (a busy machine); give them cores of their own (--cpu) or a lower --rate",
        100.0 * (1.0 - pps / target as f64)
    ))
}

#[cfg(test)]
mod tests {
    use super::frame::Received;
    use super::*;
    use dataplane::counters::DropCounters;
    use dataplane::esp::{decap, Decapped};
    use dataplane::sa::Sadb;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_paced_run_below_its_rate_says_so() {
        assert!(rate_shortfall(Some(100_000), 99_500.0, None, 995_000).is_none());
        let says = rate_shortfall(Some(100_000), 88_674.0, None, 443_370).unwrap();
        assert!(says.contains("11.3% below the 100000"), "{says}");
        assert!(rate_shortfall(None, 5.0, None, 5).is_none());
        // --count 1000 at 100 kpps: done in one batch or so, no rate.
        assert!(rate_shortfall(Some(100_000), 50_000.0, Some(1_000), 1_000).is_none());
    }

    #[test]
    fn gen_options_parse_and_bad_ones_say_what_to_give() {
        let o = parse_gen(&args("--dev a-host --src 198.19.1.10 --dst 198.19.2.10 --rate max --size imix --flows 100 --queues 2 --count 1000")).unwrap();
        assert_eq!(
            (o.rate, o.size, o.flows, o.queues, o.count),
            (None, Size::Imix, 100, 2, Some(1000))
        );
        for (bad, says) in [
            (
                "--src 198.19.1.10 --dst 198.19.2.10",
                "--dev IF is required",
            ),
            ("--dev x --src 198.19.1.10 --dst fd00::1", "one family"),
            ("--dev x --src 198.19.1.10 --dst 198.19.2.10 --ipv6", "IPv6"),
            (
                "--dev x --src 198.19.1.10 --dst 198.19.2.10 --dst-port 4500",
                "ESP-in-UDP's port",
            ),
            (
                "--dev x --src 198.19.1.10 --dst 198.19.2.10 --rate 0",
                "above 0",
            ),
            (
                "--dev x --src 198.19.1.10 --dst 198.19.2.10 --flows 60000",
                "1 to 50000",
            ),
            (
                "--dev x --src 198.19.1.10 --dst 198.19.2.10 --flows 1 --queues 2",
                "at least one flow per queue",
            ),
            (
                "--dev x --src 198.19.1.10 --dst 198.19.2.10 --size 40",
                "64 to 1500",
            ),
            (
                "--dev x --src 198.19.1.10 --dst 198.19.2.10 --bogus",
                "unknown option",
            ),
            (
                "--dev x --src 198.19.1.10 --dst 198.19.2.10 --dst-mac 1:2",
                "MAC",
            ),
        ] {
            let e = parse_gen(&args(bad))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let s = parse_sink(&args("--dev b-host --idle 2 --duration 30")).unwrap();
        assert_eq!(
            (s.idle, s.duration),
            (Some(Duration::from_secs(2)), Duration::from_secs(30))
        );
        assert!(parse_sink(&args("--idle 2")).is_err());
    }

    #[test]
    fn without_size_ipv6_gets_the_smallest_packet_its_headers_allow() {
        let size = |a: &str| parse_gen(&args(a)).map(|o| o.size);
        let base = "--dev x --src fd00:a::10 --dst fd00:b::10";
        assert_eq!(size(base).unwrap(), Size::Fixed(72));
        assert_eq!(
            size(&format!("{base} --proto tcp")).unwrap(),
            Size::Fixed(84)
        );
        assert_eq!(
            size("--dev x --src 198.19.1.10 --dst 198.19.2.10").unwrap(),
            Size::Fixed(64)
        );
        assert_eq!(
            size(&format!("{base} --size 100")).unwrap(),
            Size::Fixed(100)
        );
        // A size given is not raised: refused when parsed, with the minimum.
        let e = size(&format!("{base} --size 64")).unwrap_err().to_string();
        assert_eq!(
            e,
            "--size 64 cannot hold IPv6/UDP and the 24-byte probe header: give 72 or more"
        );
        let e = size(&format!("{base} --proto tcp --size 72"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("give 84 or more"), "{e}");
    }

    #[test]
    fn a_rate_is_split_over_the_queues_to_the_last_packet() {
        for (total, queues) in [(100u64, 64u32), (3, 2), (7, 4), (100_000, 3), (64, 64)] {
            let shares: Vec<u64> = (0..queues).map(|q| share(total, queues, q)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{total} over {queues}");
            let (lo, hi) = (shares.iter().min(), shares.iter().max());
            assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "{shares:?}");
        }
        assert_eq!(share(100, 64, 0), 2);
        assert_eq!(share(100, 64, 63), 1);
        let base = "--dev x --src 198.19.1.10 --dst 198.19.2.10 --flows 8";
        let e = parse_gen(&args(&format!("{base} --rate 3 --queues 4")))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("--rate 3 is below --queues 4: each queue sends at least 1 pps, give --rate 4 or more (or fewer --queues)")
        );
        let o = parse_gen(&args(&format!("{base} --rate 4 --queues 4"))).unwrap();
        assert_eq!((o.rate, o.queues), (Some(4), 4));
    }

    #[test]
    fn numbers_too_large_say_so_with_the_limit() {
        let base = "--dev x --src 198.19.1.10 --dst 198.19.2.10";
        for (bad, says) in [
            (
                "--flows 99999999999",
                "--flows 99999999999: too many, give 1 to 50000",
            ),
            ("--flows 0", "--flows 0: give 1 to 50000"),
            ("--queues 99999999999", "--queues 99999999999: give 1 to 64"),
            (
                "--count 99999999999999999999",
                "--count 99999999999999999999: too large, give at most 18446744073709551615",
            ),
            (
                "--dst-port 70000",
                "--dst-port 70000: too large, give at most 65535",
            ),
            ("--flows many", "--flows \"many\": give a number"),
        ] {
            let e = parse_gen(&args(&format!("{base} {bad}")))
                .err()
                .map(|e| e.to_string());
            assert_eq!(e.as_deref(), Some(says), "{bad}");
        }
    }

    #[test]
    fn a_json_file_is_opened_before_the_run_and_refused_when_it_cannot_be() {
        let bad = PathBuf::from("/nonexistent-espada-dir/gen.json");
        let e = open_json(&Some(bad)).err().map(|e| e.to_string());
        assert!(
            e.as_ref().is_some_and(|e| e
                .starts_with("--json /nonexistent-espada-dir/gen.json: cannot write it (")
                && e.ends_with("give a path in a directory you can write")
                && !e.contains('\n')),
            "{e:?}"
        );
        // gen and sink refuse it before their root and interface checks.
        let base = "--dev espgen-nope0 --json /nonexistent-espada-dir/gen.json";
        let e = gen_run(&args(&format!(
            "{base} --src 198.19.1.10 --dst 198.19.2.10"
        )))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--json /nonexistent-espada-dir/gen.json"),
            "{e}"
        );
        let e = sink::run(&args(base)).unwrap_err().to_string();
        assert!(
            e.starts_with("--json /nonexistent-espada-dir/gen.json"),
            "{e}"
        );

        let dir = std::env::temp_dir().join(format!("espada-bench-json-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Created for a run that then failed: removed again.
        let path = dir.join("unused.json");
        drop(JsonFile::create(&path).unwrap());
        assert!(!path.exists());
        // An old summary stays until the new one replaces it whole.
        let path = dir.join("summary.json");
        std::fs::write(&path, "an older, longer summary\n").unwrap();
        let mut f = JsonFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "an older, longer summary\n"
        );
        f.write("{}").unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n");
        // Another run's file, made after this one opened its own path
        // (two runs given one --json): never removed by this one.
        let path = dir.join("shared.json");
        let first = JsonFile::create(&path).unwrap();
        let mut second = JsonFile::create(&path).unwrap();
        second.write("{\"second\": true}").unwrap();
        drop(second);
        drop(first);
        assert!(
            path.exists(),
            "the first run created it, but the second wrote it"
        );
        // A symlink whose target is missing: the target is made, and
        // the link stays.
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(dir.join("target.json"), &link).unwrap();
        drop(JsonFile::create(&link).unwrap());
        assert!(std::fs::symlink_metadata(&link).is_ok(), "the link stays");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn esp_options_check_keys_against_the_suite() {
        let e = EspSpec::parse("spi=4096,suite=aes128-sha1,enc=000102030405060708090a0b0c0d0e0f,auth=101112131415161718191a1b1c1d1e1f20212223,peer=198.18.1.1").unwrap();
        assert_eq!(
            (e.spi, e.natt, e.local, e.first_seq),
            (4096, false, None, 1)
        );
        // A second run toward an SA with a replay window starts above
        // the first: the SA sends from the number given.
        let e = EspSpec::parse("spi=4096,suite=aes128-sha1,enc=000102030405060708090a0b0c0d0e0f,auth=101112131415161718191a1b1c1d1e1f20212223,peer=198.18.1.1,seq=500001").unwrap();
        let sa = e.sa("198.18.0.1".parse().unwrap()).unwrap();
        assert_eq!(sa.next_seq(), Some(500_001));
        for (bad, says) in [
            ("spi=4096,suite=aes128-sha1,peer=198.18.1.1,seq=0", "1 to 4294967295"),
            ("spi=4096,suite=aes128-sha1,peer=198.18.1.1,seq=4294967296", "1 to 4294967295"),
            ("spi=12,suite=aes128-sha1,peer=198.18.1.1", "256 to"),
            ("spi=4096,suite=aes128-sha1,enc=00,auth=00,peer=198.18.1.1", "16-byte cipher key"),
            ("spi=4096,suite=aes128gcm16,enc=00112233445566778899aabbccddeeff,peer=198.18.1.1", "20-byte"),
            ("spi=4096,suite=aes128-sha1,enc=000102030405060708090a0b0c0d0e0f,auth=101112131415161718191a1b1c1d1e1f20212223", "peer="),
            ("spi=0x1000,suite=rot13", "unknown cipher"),
            // natt is a flag: natt=no must not turn NAT-T on.
            ("spi=4096,suite=aes128-sha1,peer=198.18.1.1,natt=no", "--esp natt=no: natt is a flag"),
            ("spi=4096,suite=aes128-sha1,peer=198.18.1.1,natt=", "--esp natt=: natt is a flag"),
        ] {
            let e = EspSpec::parse(bad).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    /// What the generator sends with `--esp` decrypts, with the gateway's
    /// inbound SA, to the very packet it built: right SPI, keys, tunnel
    /// addresses, and the probe intact.
    #[test]
    fn esp_frames_decrypt_with_the_same_sa_to_the_stamped_probe() {
        for (suite, enc, auth, natt, local, peer) in [
            (
                "aes128-sha1",
                "000102030405060708090a0b0c0d0e0f",
                "101112131415161718191a1b1c1d1e1f20212223",
                false,
                "198.18.0.1",
                "198.18.1.1",
            ),
            (
                "aes128gcm16",
                "000102030405060708090a0b0c0d0e0f10111213",
                "",
                true,
                "198.18.0.1",
                "198.18.1.1",
            ),
            // IPv4 flows in an IPv6 tunnel.
            (
                "aes256-sha256",
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
                false,
                "fd00:1::1",
                "fd00:2::1",
            ),
        ] {
            let spec = EspSpec::parse(&format!(
                "spi=4096,suite={suite},enc={enc},auth={auth},peer={peer}{}",
                if natt { ",natt" } else { "" }
            ))
            .unwrap();
            let local: IpAddr = local.parse().unwrap();
            let sa = spec.sa(local).unwrap();
            let t = Template::build(&frame::test_spec(false, Proto::Udp), 100).unwrap();
            let mut buf = vec![0u8; 2048];
            buf[ESP_HEADROOM..ESP_HEADROOM + 100].copy_from_slice(&t.bytes[ETH_LEN..]);
            t.stamp(&mut buf[ESP_HEADROOM - ETH_LEN..], 1, 5, 42, 777);
            let inner = buf[ESP_HEADROOM..ESP_HEADROOM + 100].to_vec();
            let mut pkts = [PacketBuf::new(&mut buf, ESP_HEADROOM, 100)];
            encap_batch(&sa, &mut pkts);
            assert!(pkts[0].verdict.is_ok());
            let (start, len) = (pkts[0].start, pkts[0].len);
            assert_eq!(len, dataplane::esp::encapsulated_len(&sa, 100));
            let outer = buf[start..start + len].to_vec();

            let mut inbound = SaParams {
                spi: 4096,
                direction: Direction::Inbound,
                enc: spec.enc,
                auth: spec.auth,
                keys: spec.keys.clone(),
                mode: EspMode::Tunnel {
                    local: spec.peer,
                    remote: local,
                },
                udp_encap: natt.then(UdpEncap::default),
                esn: false,
                replay_window: 64,
                lifetime: Lifetime::default(),
                selectors: Vec::new(),
            };
            let mut sadb = Sadb::new();
            sadb.install(&inbound, 0).unwrap();
            let mut frame = vec![0u8; 2048];
            frame[64..64 + outer.len()].copy_from_slice(&outer);
            let mut p = PacketBuf::new(&mut frame, 64, outer.len());
            let got = decap(&sadb, &mut p, &DropCounters::default());
            assert_eq!(
                got,
                Ok(Decapped::Inner {
                    spi: 4096,
                    inner_version: 4
                }),
                "{suite}"
            );
            assert_eq!(p.data(), &inner[..], "{suite}");
            // The sink counts the ESP frame by SPI before any decryption.
            let mut eth = vec![0u8; ETH_LEN];
            let ethertype: u16 = if local.is_ipv4() { 0x0800 } else { 0x86dd };
            eth[12..14].copy_from_slice(&ethertype.to_be_bytes());
            eth.extend_from_slice(&outer);
            assert_eq!(frame::classify(&eth), Received::Esp { spi: 4096 });
            // A wrong key does not decrypt.
            inbound.keys.enc[0] ^= 1;
            let mut sadb = Sadb::new();
            sadb.install(&inbound, 0).unwrap();
            let mut frame = vec![0u8; 2048];
            frame[64..64 + outer.len()].copy_from_slice(&outer);
            let mut p = PacketBuf::new(&mut frame, 64, outer.len());
            assert!(
                decap(&sadb, &mut p, &DropCounters::default()).is_err(),
                "{suite}"
            );
        }
    }

    #[test]
    fn free_frames_rotate_in_order() {
        let mut f = FreeFrames::full([0u64, 1, 2].into_iter());
        assert_eq!((f.pop(), f.pop()), (Some(0), Some(1)));
        f.push(0);
        assert_eq!((f.pop(), f.pop(), f.pop()), (Some(2), Some(0), None));
        f.push(7);
        f.push(8);
        f.push(9);
        f.push(10); // over capacity: dropped, cannot happen in use
        assert_eq!(f.len, 3);
    }

    #[test]
    fn frames_cycle_through_the_imix_pattern_in_its_proportions() {
        // Frame k holds pattern[k % 12]; FRAMES is a multiple of 12.
        assert_eq!(FRAMES % 12, 0);
        let p = Size::Imix.pattern(false, Proto::Udp).unwrap();
        let mut counts = std::collections::HashMap::new();
        for k in 0..FRAMES as usize {
            *counts.entry(p[k % p.len()]).or_insert(0) += 1;
        }
        let f = FRAMES as usize / 12;
        assert_eq!(
            (counts[&64], counts[&576], counts[&1400]),
            (7 * f, 4 * f, f)
        );
    }
}
