//! `espada-bench sink`: the receiver half of the generator (see the
//! parent module): the dataplane's XDP program in its capture role sends
//! every TCP, UDP and ESP packet to the interface's unicast MAC to an
//! AF_XDP socket, one per RX queue listened on (`--queues`; by default
//! all, 64 at most: see [`default_queues`]); one pinned worker per socket accounts each packet
//! (`track::Tally`), a progress line a second and a JSON summary at the
//! end.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use dataplane::io::xdp::{AttachMode, XdpSteer};
use dataplane::io::xsk::{BindMode, Desc, Umem, XskSocket};
use serde::Serialize;

use super::frame::{self, Received, WIRE_OVERHEAD};
use super::track::{Latency, RunFilter, Tally};
use super::{
    catch_signals, frame_base, gbps, net, now_ns, number, open_json, pin, write_json, Live,
    MAX_BATCH, MAX_QUEUES, SIGNALLED,
};
use crate::flags::Flags;

/// The receiver buffers more than gen does (`super::FRAMES`, `RING`): a
/// descheduled sink (a shared machine) must not turn a modest rate into
/// loss. 4096 packets are 400 ms at 10 kpps.
const SINK_FRAMES: u32 = 8192;
const SINK_RING: u32 = 4096;

pub const SINK_USAGE: &str =
    "espada-bench sink --dev IF [--queues N (all, 64 at most)] [--duration SECS (60)] \
[--idle SECS (0 = off)] [--count N] [--run ID (the first seen)] [--cpu FIRST (1)] [--zero-copy] \
[--xdp-mode auto|native|generic] [--json FILE] [--quiet]";

pub struct SinkOptions {
    pub dev: String,
    pub queues: Option<u32>,
    pub duration: Duration,
    pub idle: Option<Duration>,
    pub count: Option<u64>,
    /// The generator run to count (`gen --run`); `None`: the first seen.
    pub run: Option<u16>,
    pub cpu: usize,
    pub zero_copy: bool,
    pub attach: AttachMode,
    pub json: Option<PathBuf>,
    pub quiet: bool,
}

pub fn parse_sink(args: &[String]) -> Result<SinkOptions> {
    let mut o = SinkOptions {
        dev: String::new(),
        queues: None,
        duration: Duration::from_secs(60),
        idle: None,
        count: None,
        run: None,
        // gen's default is core 0: on two cores each gets one.
        cpu: 1,
        zero_copy: false,
        attach: AttachMode::Auto,
        json: None,
        quiet: false,
    };
    let (mut dev, mut queues) = (None, None);
    let mut flags = Flags::new(args, format!("\nusage: {SINK_USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--dev" => dev = Some(flags.value("--dev")?),
            "--queues" => queues = Some(number::<u64>("--queues", &flags.value("--queues")?)?),
            "--duration" => o.duration = flags.seconds("--duration", 0.0, 86_400.0)?,
            "--idle" => {
                let d = flags.seconds("--idle", 0.0, 86_400.0)?;
                o.idle = (!d.is_zero()).then_some(d);
            }
            "--count" => o.count = Some(number("--count", &flags.value("--count")?)?),
            "--run" => {
                let v = flags.value("--run")?;
                o.run =
                    Some(v.parse().map_err(|_| {
                        anyhow!("--run {v:?}: the run id gen printed (0 to 65535)")
                    })?);
            }
            "--cpu" => o.cpu = number("--cpu", &flags.value("--cpu")?)?,
            "--zero-copy" => o.zero_copy = true,
            "--xdp-mode" => {
                o.attach = match flags.value("--xdp-mode")?.as_str() {
                    "auto" => AttachMode::Auto,
                    "native" => AttachMode::Native,
                    "generic" => AttachMode::Generic,
                    other => bail!("--xdp-mode {other:?}: auto, native or generic"),
                }
            }
            "--json" => o.json = Some(PathBuf::from(flags.value("--json")?)),
            "--quiet" => o.quiet = true,
            other => bail!("unknown option {other:?}\nusage: {SINK_USAGE}"),
        }
    }
    o.dev = dev.ok_or_else(|| anyhow!("--dev IF is required: the interface to receive on"))?;
    if o.duration.is_zero() {
        bail!("--duration must be above 0");
    }
    if let Some(q) = queues {
        o.queues = Some(match u32::try_from(q) {
            Ok(n) if (1..=MAX_QUEUES).contains(&n) => n,
            _ => bail!("--queues {q}: give 1 to {MAX_QUEUES}"),
        });
    }
    if o.count == Some(0) {
        bail!("--count 0: give the packets to stop after, above 0 (or leave it out)");
    }
    Ok(o)
}

/// How many RX queues the sink listens on without `--queues`: all the
/// device's, up to [`MAX_QUEUES`] as `--queues` takes (each queue's
/// socket holds a 32 MiB UMEM, populated). Not capped at the CPUs'
/// count: workers beyond it share cores, but a queue not listened on is
/// traffic not counted, which would read as loss.
pub fn default_queues(rx_queues: u32) -> u32 {
    rx_queues.clamp(1, MAX_QUEUES)
}

fn rx_worker(
    mut sock: XskSocket,
    umem: Umem,
    runs: Arc<RunFilter>,
    stop: &AtomicBool,
    live: &Live,
) -> Tally {
    let mut tally = Tally::of_runs(runs);
    let mut free: Vec<u64> = umem.frame_addrs().collect();
    let mut descs = [Desc {
        addr: 0,
        len: 0,
        options: 0,
    }; MAX_BATCH];
    let refill = |sock: &mut XskSocket, free: &mut Vec<u64>| {
        let room = (sock.fill_free() as usize).min(free.len());
        if room > 0 {
            let from = free.len() - room;
            let n = sock.fill(&free[from..]);
            free.drain(from..from + n);
        }
    };
    refill(&mut sock, &mut free);
    while !stop.load(Ordering::Relaxed) && !SIGNALLED.load(Ordering::Relaxed) {
        let n = sock.recv(&mut descs);
        if n == 0 {
            let mut pfd = libc::pollfd {
                fd: sock.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; a 50 ms timeout bounds the wait.
            unsafe { libc::poll(&mut pfd, 1, 50) };
            continue;
        }
        let now = now_ns();
        for d in &descs[..n] {
            let base = frame_base(d.addr);
            let off = (d.addr - base) as usize;
            // SAFETY: the frame came off the RX ring: ours until refilled.
            let what = match unsafe { umem.chunk_mut(base) } {
                Some(chunk) => chunk
                    .get(off..off + d.len as usize)
                    .map_or(Received::Other, frame::classify),
                None => Received::Other,
            };
            tally.record(what, d.len as usize, now);
            free.push(base);
        }
        refill(&mut sock, &mut free);
        live.packets.store(tally.packets, Ordering::Relaxed);
        live.bytes.store(tally.bytes, Ordering::Relaxed);
        live.probes.store(tally.probes, Ordering::Relaxed);
        live.expected.store(tally.expected, Ordering::Relaxed);
        live.reordered.store(tally.reordered, Ordering::Relaxed);
        live.esp.store(tally.esp, Ordering::Relaxed);
    }
    drop(sock);
    drop(umem);
    tally
}

#[derive(Serialize)]
struct SpiCount {
    spi: String,
    packets: u64,
}

#[derive(Serialize)]
struct EspCounts {
    packets: u64,
    by_spi: Vec<SpiCount>,
    other_spis: u64,
}

#[derive(Serialize)]
struct SinkSummary {
    tool: &'static str,
    interface: String,
    queues: u32,
    xdp_mode: String,
    /// From the first to the last packet received: what rates are over.
    seconds: f64,
    packets: u64,
    bytes_l2: u64,
    pps: f64,
    gbps_l2: f64,
    gbps_wire: f64,
    probes: u64,
    flows_seen: usize,
    lost: u64,
    loss_ratio: f64,
    reordered: u64,
    latency_us: Option<Latency>,
    latency_future_stamps: u64,
    /// The generator run counted (`None`: no probe seen).
    run: Option<u16>,
    /// Probes of another run: late packets of an earlier one still
    /// queued in the path, or another generator.
    other_run_probes: u64,
    esp: EspCounts,
    other_packets: u64,
}

/// Runs `espada-bench sink` (errors: see [`super::sink_main`]).
pub(super) fn run(args: &[String]) -> Result<()> {
    let o = parse_sink(args)?;
    let mut json = open_json(&o.json)?;
    net::require_root(net::euid())?;
    let ifindex = net::interface(&o.dev)?;
    let rx_queues = net::queue_count(&o.dev, "rx");
    let queues = o.queues.unwrap_or(default_queues(rx_queues));
    if queues > rx_queues {
        bail!(
            "{} has {rx_queues} RX queue(s): give --queues {rx_queues} or less",
            o.dev
        );
    }
    if o.queues.is_none() && queues < rx_queues && !o.quiet {
        eprintln!(
            "sink: listening on {queues} of {}'s {rx_queues} RX queues ({MAX_QUEUES} at most): packets on the others are not counted; spread the traffic over fewer (ethtool -L {} combined {MAX_QUEUES})",
            o.dev,
            o.dev
        );
    }
    let attached = XdpSteer::attached_programs(ifindex)
        .map_err(|e| anyhow!("querying XDP programs on {}: {e}", o.dev))?;
    if let Some((id, name)) = attached.first() {
        bail!("{} already has an XDP program attached ({name}, id {id}: an Espada dataplane or another sink?): stop it first, or receive on another interface", o.dev);
    }
    let mut steer = XdpSteer::load().map_err(|e| anyhow!("loading the XDP program: {e}"))?;
    let mode = steer.attach_with(ifindex, o.attach).map_err(|e| {
        anyhow!(
            "attaching XDP to {}: {e}: is another program attached? (ip link show {})",
            o.dev,
            o.dev
        )
    })?;
    steer
        .set_capture(ifindex)
        .map_err(|e| anyhow!("configuring capture on {}: {e}", o.dev))?;
    let bind = if o.zero_copy {
        BindMode::Auto
    } else {
        BindMode::Copy
    };
    let mut socks = Vec::new();
    for q in 0..queues {
        let umem = Umem::new(SINK_FRAMES).map_err(|e| anyhow!("allocating the UMEM: {e}"))?;
        let sock = XskSocket::new(&umem, None, ifindex, q, SINK_RING, bind)
            .map_err(|e| net::xsk_error(e, &o.dev, q))?;
        steer
            .register_xsk(ifindex, q, sock.fd())
            .map_err(|e| anyhow!("registering the socket of queue {q}: {e}"))?;
        socks.push((sock, umem));
    }
    if !o.quiet {
        eprintln!(
            "sink: receiving on {} ({} XDP, {queues} queue(s)), up to {:.0} s{}",
            o.dev,
            mode,
            o.duration.as_secs_f64(),
            o.idle.map_or(String::new(), |i| format!(
                ", ending {:.1} s after traffic stops",
                i.as_secs_f64()
            ))
        );
    }
    catch_signals();
    let stop = Arc::new(AtomicBool::new(false));
    let lives: Arc<Vec<Live>> = Arc::new((0..queues).map(|_| Live::default()).collect());
    let runs = Arc::new(RunFilter::new(o.run));
    let mut handles = Vec::new();
    for (q, (sock, umem)) in socks.into_iter().enumerate() {
        let (stop, lives, runs) = (stop.clone(), lives.clone(), runs.clone());
        let core = o.cpu + q;
        handles.push(
            std::thread::Builder::new()
                .name(format!("sink-q{q}"))
                .spawn(move || {
                    pin(core);
                    rx_worker(sock, umem, runs, &stop, &lives[q])
                })?,
        );
    }
    let start = Instant::now();
    let mut next_report = start + Duration::from_secs(1);
    let mut last = (0u64, 0u64, Instant::now());
    let mut last_change = (0u64, Instant::now());
    let sum = |f: fn(&Live) -> &AtomicU64| -> u64 {
        lives.iter().map(|l| f(l).load(Ordering::Relaxed)).sum()
    };
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let p = sum(|l| &l.packets);
        let now = Instant::now();
        if p != last_change.0 {
            last_change = (p, now);
        }
        let idle_over = o
            .idle
            .is_some_and(|i| p > 0 && now.duration_since(last_change.1) >= i);
        let done = SIGNALLED.load(Ordering::Relaxed)
            || now.duration_since(start) >= o.duration
            || o.count.is_some_and(|c| p >= c)
            || idle_over
            || handles.iter().any(|h| h.is_finished());
        if now >= next_report || done {
            next_report += Duration::from_secs(1);
            let b = sum(|l| &l.bytes);
            let dt = last.2.elapsed().as_secs_f64().max(1e-9);
            let lost = sum(|l| &l.expected).saturating_sub(sum(|l| &l.probes));
            if !o.quiet {
                eprintln!(
                    "sink {:5.1}s: {:>10.0} pps {:>7.3} Gbps (L2)  received {p}, lost {lost}, reordered {}, ESP {}",
                    start.elapsed().as_secs_f64(),
                    (p - last.0) as f64 / dt,
                    gbps((b - last.1) as f64, dt),
                    sum(|l| &l.reordered),
                    sum(|l| &l.esp)
                );
            }
            last = (p, b, Instant::now());
        }
        if done {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::new();
    for h in handles {
        let t = h
            .join()
            .map_err(|_| anyhow!("a receiver worker panicked"))?;
        total.merge(&t);
    }
    drop(steer);
    let seconds = match total.first_ns {
        Some(f) if total.last_ns > f => (total.last_ns - f) as f64 / 1e9,
        _ => 0.0,
    };
    let lost = total.lost();
    let summary = SinkSummary {
        tool: "espada-bench sink",
        interface: o.dev.clone(),
        queues,
        xdp_mode: mode.to_string(),
        seconds,
        packets: total.packets,
        bytes_l2: total.bytes,
        pps: if seconds > 0.0 {
            total.packets as f64 / seconds
        } else {
            0.0
        },
        gbps_l2: gbps(total.bytes as f64, seconds),
        gbps_wire: gbps(
            (total.bytes + total.packets * WIRE_OVERHEAD as u64) as f64,
            seconds,
        ),
        probes: total.probes,
        flows_seen: total.flows_seen(),
        lost,
        loss_ratio: if total.expected > 0 {
            lost as f64 / total.expected as f64
        } else {
            0.0
        },
        reordered: total.reordered,
        latency_us: Latency::of(&total.latency_ns),
        latency_future_stamps: total.future_stamps,
        run: runs.run(),
        other_run_probes: total.other_runs,
        esp: EspCounts {
            packets: total.esp,
            by_spi: total
                .spis()
                .map(|(spi, packets)| SpiCount {
                    spi: format!("0x{spi:08x}"),
                    packets,
                })
                .collect(),
            other_spis: total.other_spis,
        },
        other_packets: total.other,
    };
    if !o.quiet {
        let lat = summary.latency_us.map_or("no probes".to_string(), |l| {
            format!(
                "latency us p50 {:.1} p90 {:.1} p99 {:.1} p99.9 {:.1} max {:.1}",
                l.p50, l.p90, l.p99, l.p99_9, l.max
            )
        });
        eprintln!(
            "sink: {} packets ({} probes, {} ESP) in {:.2} s: {:.0} pps, {:.3} Gbps L2; lost {}, reordered {}; {lat}",
            summary.packets, summary.probes, summary.esp.packets, seconds, summary.pps, summary.gbps_l2, lost, summary.reordered
        );
        if let (Some(run), n @ 1..) = (summary.run, summary.other_run_probes) {
            eprintln!("sink: counted gen run {run}; {n} probes of other runs set apart (late packets of an earlier run, or another generator: give --run to choose)");
        }
    }
    write_json(&summary, json.as_mut())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn a_count_of_zero_and_queues_out_of_range_are_refused() {
        let e = parse_sink(&args("--dev b --count 0"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("--count 0: give the packets to stop after, above 0 (or leave it out)")
        );
        assert_eq!(
            parse_sink(&args("--dev b --count 5")).unwrap().count,
            Some(5)
        );
        for (bad, says) in [
            ("--dev b --queues 0", "--queues 0: give 1 to 64"),
            ("--dev b --queues 65", "--queues 65: give 1 to 64"),
            (
                "--dev b --queues 99999999999",
                "--queues 99999999999: give 1 to 64",
            ),
            (
                "--dev b --count 99999999999999999999",
                "--count 99999999999999999999: too large, give at most 18446744073709551615",
            ),
        ] {
            let e = parse_sink(&args(bad)).err().map(|e| e.to_string());
            assert_eq!(e.as_deref(), Some(says), "{bad}");
        }
    }

    #[test]
    fn by_default_the_sink_listens_on_every_queue_up_to_64() {
        assert_eq!(default_queues(0), 1);
        assert_eq!(default_queues(2), 2);
        assert_eq!(default_queues(64), 64);
        assert_eq!(default_queues(128), 64);
    }
}
