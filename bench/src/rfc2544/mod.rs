//! `espada-bench rfc2544`: RFC 2544 throughput (§26.1) and latency
//! (§26.2) through a path, on the AF_XDP generator and receiver of `gen/`.
//!
//! Per frame size: a trial at the generator's maximum rate first; if that
//! loses more than `--loss`, a binary search of the offered rate between a
//! lower bound and that maximum, until the bracket is within
//! `--resolution` percent of its low end or `--max-trials` is spent (a
//! verdict contradicting an earlier one is tried again first). Then
//! one more trial at the rate found, for the latency percentiles. The
//! bracket moves by the rates gen actually sent, not the ones asked: on a
//! loaded machine the generator falls short of its target, and the next
//! ask is scaled up by the last trial's shortfall.
//!
//! Each trial runs `espada-bench sink` and `espada-bench gen` as child
//! processes of this very binary (`ip netns exec NS` when a namespace is
//! given), the sink first, and reads their JSON summaries: the receiver
//! and the generator stay the tools that are tested on their own, and each
//! runs in its interface's namespace. A trial: the sink attaches, gen sends
//! at the rate for `--trial` seconds, the sink keeps counting for
//! `--settle` seconds (late packets, RFC 2544 §23 asks for two), then is
//! stopped by SIGTERM and prints its summary. Loss is what gen sent minus
//! the probes the sink received (a flow's lost tail included).
//!
//! Before anything is sent, every size is put to `gen --check` (the
//! interface, route, MTU and ESP overhead), so that a size the path cannot
//! take is refused before the first search, not after it. Then a warm-up
//! (RFC 2544 §23's learning frames) sends `--warmup` packets at 1000 pps
//! so ARP/ND and the gateways' neighbours are settled; nothing arriving at
//! all is an error, not a zero rate. An error after the warm-up still
//! prints (and writes to `--json FILE`) the sizes already done.

use crate::flags::Flags;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::gen::frame::Size;
use crate::gen::{self, net};

mod search;

use search::{passes, search, Offer, SearchConfig};

pub const USAGE: &str = "espada-bench rfc2544 --gen-dev IF --sink-dev IF [--gen-netns NS] [--sink-netns NS] \
--src ADDR --dst ADDR [--sizes 64,128,256,512,1024,1280,1400,imix] [--trial SECS (5)] [--loss PCT (0)] \
[--resolution PCT (1)] [--min-rate PPS (resolution)] [--max-trials N (16)] [--settle SECS (2)] \
[--warmup N (1000)] [--no-latency] [gen options: --flows N --proto udp|tcp --ipv6 --dst-port P --src-mac MAC \
--dst-mac MAC --queues N --batch N --cpu N --zero-copy --esp SPEC] [--sink-cpu N (1)] [--sink-queues N] \
[--xdp-mode auto|native|generic] [--format text|json] [--json FILE]";

const DEFAULT_SIZES: &str = "64,128,256,512,1024,1280,1400,imix";
/// Most trials per size; the search needs about log2(100 / resolution) + 2.
pub const MAX_TRIALS_LIMIT: u32 = 64;
/// The warm-up's rate: slow enough for any path that works at all.
const WARMUP_PPS: u64 = 1000;

// ---------------------------------------------------------------- options

#[derive(Debug, Clone)]
pub struct Options {
    pub gen_netns: Option<String>,
    pub gen_dev: String,
    pub sink_netns: Option<String>,
    pub sink_dev: String,
    pub sizes: Vec<Size>,
    pub trial: Duration,
    pub loss_pct: f64,
    pub search: SearchConfig,
    pub settle: Duration,
    pub warmup: u64,
    pub latency: bool,
    /// Passed to every `gen` as they are (validated by `gen`'s parser).
    pub gen_args: Vec<String>,
    pub sink_args: Vec<String>,
    pub json: bool,
    pub json_file: Option<PathBuf>,
    /// gen's `--queues`: every rate offered is at least one per queue.
    pub gen_queues: u32,
}

fn percent(name: &str, v: &str, min: f64, max: f64) -> Result<f64> {
    match v.trim_end_matches('%').parse::<f64>() {
        Ok(p) if (min..=max).contains(&p) => Ok(p),
        _ => bail!("{name} {v:?}: give a percentage from {min} to {max}"),
    }
}

fn netns_name(name: &str, v: String) -> Result<String> {
    if v.is_empty() || v.contains('/') || v.starts_with('.') {
        bail!("{name} {v:?}: a network namespace name (ip netns list)");
    }
    Ok(v)
}

pub fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        gen_netns: None,
        gen_dev: String::new(),
        sink_netns: None,
        sink_dev: String::new(),
        sizes: Vec::new(),
        trial: Duration::from_secs(5),
        loss_pct: 0.0,
        search: SearchConfig {
            min_rate: None,
            resolution_pct: 1.0,
            max_trials: 16,
        },
        settle: Duration::from_secs(2),
        warmup: 1000,
        latency: true,
        gen_args: Vec::new(),
        sink_args: vec!["--cpu".into(), "1".into()],
        json: false,
        json_file: None,
        gen_queues: 1,
    };
    let (mut gen_dev, mut sink_dev) = (None, None);
    let mut sizes = DEFAULT_SIZES.to_string();
    let mut sizes_given = false;
    let mut flags = Flags::new(args, " (espada-bench rfc2544 --help)");
    while let Some(a) = flags.next_flag() {
        match a {
            "--gen-netns" => o.gen_netns = Some(netns_name(a, flags.value(a)?)?),
            "--sink-netns" => o.sink_netns = Some(netns_name(a, flags.value(a)?)?),
            "--gen-dev" => gen_dev = Some(flags.value(a)?),
            "--sink-dev" => sink_dev = Some(flags.value(a)?),
            "--sizes" => {
                sizes = flags.value(a)?;
                sizes_given = true;
            }
            "--trial" => o.trial = flags.seconds(a, 0.1, 3600.0)?,
            "--settle" => o.settle = flags.seconds(a, 0.0, 60.0)?,
            "--loss" => o.loss_pct = percent(a, &flags.value(a)?, 0.0, 100.0)?,
            "--resolution" => {
                o.search.resolution_pct = percent(a, &flags.value(a)?, 0.01, 50.0)?;
            }
            "--min-rate" => {
                let v = flags.value(a)?;
                o.search.min_rate = Some(match v.parse::<u64>() {
                    Ok(n) if n > 0 => n,
                    _ => bail!("--min-rate {v:?}: packets per second above 0"),
                });
            }
            "--max-trials" => {
                let v = flags.value(a)?;
                o.search.max_trials = match v.parse::<u32>() {
                    Ok(n) if (2..=MAX_TRIALS_LIMIT).contains(&n) => n,
                    _ => bail!("--max-trials {v:?}: give 2 to {MAX_TRIALS_LIMIT} trials per size (the first is at the maximum rate)"),
                };
            }
            "--warmup" => {
                let v = flags.value(a)?;
                o.warmup =
                    v.parse().ok().filter(|&n| n <= 1_000_000).ok_or_else(|| {
                        anyhow!("--warmup {v:?}: give 0 (none) to 1000000 packets")
                    })?;
            }
            "--no-latency" => o.latency = false,
            "--format" => match flags.value(a)?.as_str() {
                "json" => o.json = true,
                "text" => o.json = false,
                other => bail!("--format {other:?}: text or json"),
            },
            "--json" => o.json_file = Some(PathBuf::from(flags.value(a)?)),
            // The generator's own options, checked by its parser below.
            "--src" | "--dst" | "--src-mac" | "--dst-mac" | "--flows" | "--proto"
            | "--dst-port" | "--queues" | "--batch" | "--cpu" | "--esp" => {
                let v = flags.value(a)?;
                o.gen_args.extend([a.to_string(), v]);
            }
            "--ipv6" | "--zero-copy" => o.gen_args.push(a.to_string()),
            "--sink-cpu" | "--sink-queues" | "--xdp-mode" => {
                let v = flags.value(a)?;
                let name = match a {
                    "--sink-cpu" => "--cpu",
                    "--sink-queues" => "--queues",
                    _ => "--xdp-mode",
                };
                o.sink_args.extend([name.to_string(), v]);
            }
            "--size" | "--rate" | "--duration" | "--count" | "--dev" => {
                bail!("{a}: rfc2544 sets it per trial (--sizes, --trial; --gen-dev, --sink-dev)")
            }
            other => bail!("unknown option {other:?} (espada-bench rfc2544 --help)"),
        }
    }
    o.gen_dev =
        gen_dev.ok_or_else(|| anyhow!("--gen-dev IF is required: the interface gen sends on"))?;
    o.sink_dev = sink_dev
        .ok_or_else(|| anyhow!("--sink-dev IF is required: the interface the sink receives on"))?;
    if o.gen_netns == o.sink_netns && o.gen_dev == o.sink_dev {
        bail!(
            "--gen-dev and --sink-dev are both {} in one namespace: the sink receives on the far side of the path (another namespace, or another interface)",
            o.gen_dev
        );
    }
    let default_sizes = !sizes_given;
    o.sizes = Size::parse_list(&sizes, "--sizes")?;
    if o.sizes.is_empty() {
        bail!("--sizes: give a list such as 64,512,1400,imix");
    }
    // gen's and sink's own checks, on the arguments every trial passes
    // (IMIX fits any family and protocol: the sizes are checked next).
    let g = gen::parse_gen(&gen_args(&o, Size::Imix, Offer::Max, o.trial, 0))?;
    let min = crate::gen::frame::min_ip_len(g.src.is_ipv6(), g.proto);
    if default_sizes {
        // As gen's default size: the sizes below what the headers need
        // (IPv6: 72, 84 with TCP) become that, once.
        let mut raised: Vec<Size> = Vec::new();
        for s in &o.sizes {
            let s = match *s {
                Size::Fixed(n) => Size::Fixed(n.max(min)),
                Size::Imix => Size::Imix,
            };
            if !raised.contains(&s) {
                raised.push(s);
            }
        }
        o.sizes = raised;
    }
    for &s in &o.sizes {
        s.pattern(g.src.is_ipv6(), g.proto)
            .map_err(|e| anyhow!("--sizes: {e}"))?;
    }
    gen::parse_sink(&sink_args(&o, Duration::from_secs(60), 0))?;
    o.gen_queues = g.queues;
    if let Some(min) = o.search.min_rate {
        if min > 100_000_000 {
            bail!("--min-rate {min}: 100000000 pps at most");
        }
        if min < u64::from(g.queues) {
            bail!(
                "--min-rate {min} is below --queues {}: each queue sends at least 1 pps, give --min-rate {} or more",
                g.queues,
                g.queues
            );
        }
    }
    Ok(o)
}

/// A fresh run id for each trial (`gen --run`, `sink --run`): the sink
/// then counts only the trial's own probes, not late ones of the trial
/// before still queued in the path (at overload strongSwan's queue holds
/// seconds of traffic, more than the settle time), which would hide this
/// trial's loss.
fn next_run() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let seed = u32::from(gen::clock_run_id());
    let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
    (NEXT.fetch_add(1, Ordering::Relaxed) & 0xffff) as u16
}

fn gen_args(o: &Options, size: Size, offer: Offer, duration: Duration, run: u16) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--dev".into(),
        o.gen_dev.clone(),
        "--run".into(),
        run.to_string(),
        "--size".into(),
        size.label(),
        "--rate".into(),
        match offer {
            Offer::Max => "max".into(),
            // The search's floor or a retest may fall below one packet a
            // second per queue, which gen refuses.
            Offer::Pps(r) => r.max(u64::from(o.gen_queues)).to_string(),
        },
        "--duration".into(),
        format!("{:.3}", duration.as_secs_f64()),
        "--quiet".into(),
    ];
    a.extend(o.gen_args.iter().cloned());
    a
}

fn sink_args(o: &Options, duration: Duration, run: u16) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--dev".into(),
        o.sink_dev.clone(),
        "--run".into(),
        run.to_string(),
        "--duration".into(),
        format!("{:.0}", duration.as_secs_f64().ceil()),
    ];
    a.extend(o.sink_args.iter().cloned());
    a
}

// ---------------------------------------------------------------- trials

/// The fields of `gen`'s JSON summary used here.
#[derive(Debug, Deserialize)]
struct GenJson {
    packets: u64,
    pps: f64,
    gbps_l2: f64,
    gbps_wire: f64,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq)]
pub struct LatencyJson {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
}

#[derive(Debug, Deserialize)]
struct SinkJson {
    probes: u64,
    reordered: u64,
    other_run_probes: u64,
    latency_us: Option<LatencyJson>,
}

/// One trial's figures, as kept in the JSON summary.
#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    pub offered: Offer,
    /// What the generator achieved.
    pub sent_pps: f64,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub reordered: u64,
    /// Probes of an earlier trial that arrived during this one (not
    /// counted as received).
    pub late_from_before: u64,
    pub gbps_l2: f64,
    pub gbps_wire: f64,
    pub latency_us: Option<LatencyJson>,
    pub pass: bool,
}

fn command(netns: &Option<String>, exe: &PathBuf, args: &[String]) -> Command {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    c.args(args);
    c
}

/// The last line a child wrote on stderr: its one-line error.
fn last_line(s: &str) -> &str {
    s.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(no message)")
}

struct SinkChild {
    child: Child,
    /// stderr lines after "sink: receiving", kept for errors.
    err: mpsc::Receiver<String>,
}

impl SinkChild {
    fn start(o: &Options, exe: &PathBuf, duration: Duration, run: u16) -> Result<SinkChild> {
        let mut args = vec!["sink".to_string()];
        args.extend(sink_args(o, duration, run));
        let mut child = command(&o.sink_netns, exe, &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting the sink")?;
        let stderr = child.stderr.take().context("the sink's stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.starts_with("sink: receiving") => break,
                Ok(l) => seen.push(l),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.wait();
                    bail!("sink: {}", last_line(&seen.join("\n")));
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the sink did not start receiving in 15 s");
            }
        }
        Ok(SinkChild { child, err: rx })
    }

    /// SIGTERM, then its summary (the sink prints it on the signal).
    fn finish(mut self) -> Result<SinkJson> {
        let pid = libc::pid_t::try_from(self.child.id()).context("the sink's pid")?;
        // SAFETY: signals our own child, still unreaped (its pid is ours).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            s.read_to_string(&mut out).context("the sink's output")?;
        }
        let status = self.child.wait().context("waiting for the sink")?;
        let err: Vec<String> = self.err.try_iter().collect();
        if !status.success() {
            bail!("sink: {}", last_line(&err.join("\n")));
        }
        serde_json::from_str(&out).map_err(|e| anyhow!("the sink's summary: {e}"))
    }

    fn abort(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_trial(
    o: &Options,
    exe: &PathBuf,
    size: Size,
    offer: Offer,
    duration: Duration,
) -> Result<TrialReport> {
    let run = next_run();
    let sink = SinkChild::start(o, exe, duration + o.settle + Duration::from_secs(30), run)?;
    let mut args = vec!["gen".to_string()];
    args.extend(gen_args(o, size, offer, duration, run));
    let out = match command(&o.gen_netns, exe, &args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            sink.abort();
            bail!("starting gen: {e}");
        }
    };
    if !out.status.success() {
        sink.abort();
        bail!("gen: {}", last_line(&String::from_utf8_lossy(&out.stderr)));
    }
    std::thread::sleep(o.settle);
    let s = sink.finish()?;
    let g: GenJson =
        serde_json::from_slice(&out.stdout).map_err(|e| anyhow!("gen's summary: {e}"))?;
    let lost = g.packets.saturating_sub(s.probes);
    Ok(TrialReport {
        offered: offer,
        sent_pps: g.pps,
        sent: g.packets,
        received: s.probes,
        lost,
        loss_pct: if g.packets > 0 {
            lost as f64 * 100.0 / g.packets as f64
        } else {
            0.0
        },
        reordered: s.reordered,
        late_from_before: s.other_run_probes,
        gbps_l2: g.gbps_l2,
        gbps_wire: g.gbps_wire,
        latency_us: s.latency_us,
        pass: passes(g.packets, s.probes, o.loss_pct),
    })
}

// ---------------------------------------------------------------- report

#[derive(Serialize)]
pub struct SizeReport {
    pub size: String,
    /// What the generator achieved at its maximum rate.
    pub max_pps: f64,
    /// The highest offered rate that passed, as requested and as sent.
    pub throughput_rate_pps: Option<u64>,
    pub throughput_pps: Option<f64>,
    pub throughput_gbps_l2: Option<f64>,
    pub throughput_gbps_wire: Option<f64>,
    pub percent_of_max: Option<f64>,
    pub limited_by_generator: bool,
    pub converged: bool,
    pub stalled: bool,
    pub bracket_pps: (u64, u64),
    pub resolution_pps: u64,
    /// Rates tried twice because their verdict contradicted an earlier one.
    pub retested: u32,
    pub trials: Vec<TrialReport>,
    /// The latency trial at the throughput rate.
    pub latency: Option<TrialReport>,
}

#[derive(Serialize)]
struct Report<'a> {
    tool: &'static str,
    gen_netns: &'a Option<String>,
    gen_dev: &'a str,
    sink_netns: &'a Option<String>,
    sink_dev: &'a str,
    gen_args: &'a [String],
    trial_seconds: f64,
    settle_seconds: f64,
    loss_pct: f64,
    resolution_pct: f64,
    max_trials: u32,
    warmup_packets: u64,
    warmup_received: Option<u64>,
    results: &'a [SizeReport],
    /// The error that ended the run before its last size (absent when
    /// every size was done).
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by: Option<String>,
}

fn where_(ns: &Option<String>, dev: &str) -> String {
    match ns {
        Some(n) => format!("{n}:{dev}"),
        None => dev.to_string(),
    }
}

fn progress(size: Size, n: usize, t: &TrialReport, what: &str) {
    eprintln!(
        "rfc2544 {:>4} {what} {:>2}: offered {:>12} (sent {} at {:.0} pps), received {}, lost {} ({:.3}%): {}",
        size.label(),
        n,
        t.offered.label(),
        t.sent,
        t.sent_pps,
        t.received,
        t.lost,
        t.loss_pct,
        if t.pass { "pass" } else { "LOSS" }
    );
}

fn print_table(o: &Options, results: &[SizeReport]) {
    outln!(
        "RFC 2544 throughput: {} -> {}, trials {:.1} s (+{:.1} s settle), accepted loss {}%, resolution {}% of the rate found",
        where_(&o.gen_netns, &o.gen_dev),
        where_(&o.sink_netns, &o.sink_dev),
        o.trial.as_secs_f64(),
        o.settle.as_secs_f64(),
        o.loss_pct,
        o.search.resolution_pct
    );
    outln!(
        "{:<5} {:>11} {:>14} {:>6} {:>9} {:>6} {:>30}  note",
        "size",
        "gen max pps",
        "throughput pps",
        "% max",
        "Mbit/s L2",
        "trials",
        "latency us p50/p90/p99/max"
    );
    for r in results {
        let lat = r
            .latency
            .as_ref()
            .and_then(|t| t.latency_us)
            .map_or("n/a".to_string(), |l| {
                format!("{:.0}/{:.0}/{:.0}/{:.0}", l.p50, l.p90, l.p99, l.max)
            });
        let mut note = Vec::new();
        if r.limited_by_generator {
            note.push("no loss at the generator's maximum".to_string());
        }
        if r.throughput_pps.is_none() {
            note.push(format!("loss even at {} pps", r.bracket_pps.0));
        }
        if r.retested > 0 {
            note.push(format!("{} verdicts retested", r.retested));
        }
        if r.stalled {
            note.push(format!(
                "gen sent no more than {} pps below its max {} pps",
                r.bracket_pps.0, r.bracket_pps.1
            ));
        } else if !r.converged {
            note.push(format!(
                "trial cap: between {} and {} pps",
                r.bracket_pps.0, r.bracket_pps.1
            ));
        }
        if let (Some(rate), Some(pps)) = (r.throughput_rate_pps, r.throughput_pps) {
            if !r.limited_by_generator && pps < 0.95 * rate as f64 {
                note.push(format!("gen sent {pps:.0} of {rate} pps asked"));
            }
        }
        if let Some(l) = &r.latency {
            if l.lost > 0 {
                note.push(format!("latency trial lost {:.3}%", l.loss_pct));
            }
        }
        outln!(
            "{:<5} {:>11.0} {:>14} {:>6} {:>9} {:>6} {:>30}  {}",
            r.size,
            r.max_pps,
            r.throughput_pps.map_or("0".into(), |p| format!("{p:.0}")),
            r.percent_of_max.map_or("0".into(), |p| format!("{p:.1}")),
            r.throughput_gbps_l2
                .map_or("0".into(), |g| format!("{:.1}", g * 1000.0)),
            r.trials.len(),
            lat,
            note.join("; ")
        );
    }
    outln!("latency: one-way (sink's receive time - the probe's transmit time, one clock), in a trial at the throughput rate");
}

/// Runs `espada-bench rfc2544`; an error is one line, exit code 1.
pub fn main(args: &[String]) -> Result<()> {
    if let Err(e) = run(args) {
        eprintln!("espada-bench rfc2544: {e}");
        std::process::exit(1);
    }
    Ok(())
}

fn run(args: &[String]) -> Result<()> {
    let o = parse(args)?;
    let mut json_file = gen::open_json(&o.json_file)?;
    net::require_root(net::euid())?;
    for (name, ns) in [
        ("--gen-netns", &o.gen_netns),
        ("--sink-netns", &o.sink_netns),
    ] {
        if let Some(ns) = ns {
            if !std::path::Path::new("/run/netns").join(ns).exists() {
                bail!("{name} {ns}: no such network namespace (ip netns list)");
            }
        }
    }
    let exe = std::env::current_exe().context("finding espada-bench's own path")?;
    let m = measure(
        &o,
        |size| check_size(&o, &exe, size),
        |size, offer, duration| run_trial(&o, &exe, size, offer, duration),
    )?;
    let written = report(&o, &m, json_file.as_mut());
    match (m.error, written) {
        (Some(e), Err(w)) => {
            eprintln!("espada-bench rfc2544: {w}");
            Err(e)
        }
        (Some(e), Ok(())) => Err(e),
        (None, written) => written,
    }
}

/// `gen --check` of one size: what gen would refuse for it (the MTU, ESP
/// overhead, the interface, route and next hop), without sending.
fn check_size(o: &Options, exe: &PathBuf, size: Size) -> Result<()> {
    let mut args = vec!["gen".to_string()];
    args.extend(gen_args(o, size, Offer::Max, o.trial, 0));
    args.push("--check".into());
    let out = command(&o.gen_netns, exe, &args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| anyhow!("starting gen: {e}"))?;
    if !out.status.success() {
        bail!("gen: {}", last_line(&String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// What a run measured: the warm-up, every size done, and the error that
/// ended it before the last size, if one did.
struct Measured {
    warmup_received: Option<u64>,
    results: Vec<SizeReport>,
    error: Option<anyhow::Error>,
}

/// The run apart from how a size is checked and a trial run: every size
/// checked (`check`) before anything is sent, the warm-up, then per size
/// the search and the latency trial (`trial`). An error before the first
/// search is returned as it is; a later one is kept in [`Measured`] with
/// the sizes done before it.
fn measure(
    o: &Options,
    mut check: impl FnMut(Size) -> Result<()>,
    mut trial: impl FnMut(Size, Offer, Duration) -> Result<TrialReport>,
) -> Result<Measured> {
    for &size in &o.sizes {
        check(size).map_err(|e| anyhow!("size {}: {e}", size.label()))?;
    }
    let mut warmup_received = None;
    if o.warmup > 0 {
        let secs = (o.warmup as f64 / WARMUP_PPS as f64).max(0.1);
        let t = trial(
            o.sizes[0],
            Offer::Pps(WARMUP_PPS),
            Duration::from_secs_f64(secs),
        )
        .map_err(|e| anyhow!("warm-up: {e}"))?;
        eprintln!(
            "rfc2544 warm-up: sent {} at {WARMUP_PPS} pps, received {}",
            t.sent, t.received
        );
        if t.received == 0 {
            bail!(
                "warm-up: none of {} packets reached the sink on {}: is the path up (routes, tunnel, addresses)?",
                t.sent,
                where_(&o.sink_netns, &o.sink_dev)
            );
        }
        warmup_received = Some(t.received);
    }
    let mut results = Vec::new();
    for &size in &o.sizes {
        match measure_size(o, size, &mut trial) {
            Ok(r) => results.push(r),
            Err(e) => {
                return Ok(Measured {
                    warmup_received,
                    results,
                    error: Some(e),
                })
            }
        }
    }
    Ok(Measured {
        warmup_received,
        results,
        error: None,
    })
}

/// One size's search and latency trial.
fn measure_size(
    o: &Options,
    size: Size,
    trial: &mut impl FnMut(Size, Offer, Duration) -> Result<TrialReport>,
) -> Result<SizeReport> {
    let r = search(&o.search, |offer, n| {
        let t = trial(size, offer, o.trial)?;
        progress(size, n + 1, &t, "trial");
        Ok((t.pass, t.sent_pps, t))
    })
    .map_err(|e| anyhow!("size {}: {e}", size.label()))?;
    let best = r.best.map(|i| &r.trials[i].data);
    let latency = match (o.latency, r.throughput_rate()) {
        (true, Some(rate)) => {
            let offer = if r.limited_by_generator {
                Offer::Max
            } else {
                Offer::Pps(rate)
            };
            let t = trial(size, offer, o.trial)
                .map_err(|e| anyhow!("size {}: latency trial: {e}", size.label()))?;
            progress(size, 0, &t, "latency");
            Some(t)
        }
        _ => None,
    };
    Ok(SizeReport {
        size: size.label(),
        max_pps: r.max_pps,
        throughput_rate_pps: r.throughput_rate(),
        throughput_pps: best.map(|t| t.sent_pps),
        throughput_gbps_l2: best.map(|t| t.gbps_l2),
        throughput_gbps_wire: best.map(|t| t.gbps_wire),
        percent_of_max: best.map(|t| t.sent_pps * 100.0 / r.max_pps.max(1e-9)),
        limited_by_generator: r.limited_by_generator,
        converged: r.converged,
        stalled: r.stalled,
        bracket_pps: r.bracket,
        resolution_pps: r.resolution_pps,
        retested: r.retested,
        trials: r.trials.into_iter().map(|t| t.data).collect(),
        latency,
    })
}

/// The table (or the JSON summary) of the sizes done on stdout, and the
/// JSON summary to `--json FILE`; nothing when no size was done.
fn report(o: &Options, m: &Measured, json_file: Option<&mut gen::JsonFile>) -> Result<()> {
    if m.results.is_empty() {
        return Ok(());
    }
    let report = Report {
        tool: "espada-bench rfc2544",
        gen_netns: &o.gen_netns,
        gen_dev: &o.gen_dev,
        sink_netns: &o.sink_netns,
        sink_dev: &o.sink_dev,
        gen_args: &o.gen_args,
        trial_seconds: o.trial.as_secs_f64(),
        settle_seconds: o.settle.as_secs_f64(),
        loss_pct: o.loss_pct,
        resolution_pct: o.search.resolution_pct,
        max_trials: o.search.max_trials,
        warmup_packets: o.warmup,
        warmup_received: m.warmup_received,
        results: &m.results,
        stopped_by: m.error.as_ref().map(|e| e.to_string()),
    };
    let text = serde_json::to_string_pretty(&report)?;
    // The file first: a reader that closes stdout early (`| head`) ends
    // the tool at the next line, and hours of trials must not go with it.
    if let Some(f) = json_file {
        f.write(&text)?;
    }
    if o.json {
        outln!("{text}");
    } else {
        print_table(o, &m.results);
        if m.error.is_some() {
            outln!(
                "stopped after {} of {} sizes by the error below",
                m.results.len(),
                o.sizes.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    const BASE: &str = "--gen-netns a --gen-dev a-host --sink-netns b --sink-dev b-host --src 198.19.1.10 --dst 198.19.2.10";

    #[test]
    fn options_parse_with_their_defaults() {
        let o = parse(&args(BASE)).unwrap();
        assert_eq!(o.sizes.len(), 8);
        assert_eq!(o.sizes[7], Size::Imix);
        assert_eq!(
            (o.trial, o.settle, o.loss_pct),
            (Duration::from_secs(5), Duration::from_secs(2), 0.0)
        );
        let defaults = SearchConfig {
            min_rate: None,
            resolution_pct: 1.0,
            max_trials: 16,
        };
        assert_eq!(o.search, defaults);
        assert_eq!(o.gen_args, args("--src 198.19.1.10 --dst 198.19.2.10"));
        let o = parse(&args(&format!(
            "{BASE} --sizes 64,imix --trial 60 --loss 0.5% --resolution 0.1 --min-rate 1000 --max-trials 30 --flows 64 --ipv6x"
        )));
        assert!(o
            .unwrap_err()
            .to_string()
            .contains("unknown option \"--ipv6x\""));
        let o = parse(&args(&format!(
            "{BASE} --sizes 64,imix --trial 60 --loss 0.5% --resolution 0.1 --min-rate 1000 --max-trials 30 --flows 64 --sink-cpu 0 --format json"
        )))
        .unwrap();
        assert_eq!(o.sizes, [Size::Fixed(64), Size::Imix]);
        assert_eq!((o.trial, o.loss_pct), (Duration::from_secs(60), 0.5));
        assert_eq!(
            o.search,
            SearchConfig {
                min_rate: Some(1000),
                resolution_pct: 0.1,
                max_trials: 30
            }
        );
        assert!(o.json);
        assert_eq!(
            sink_args(&o, Duration::from_secs(9), 65535),
            args("--dev b-host --run 65535 --duration 9 --cpu 1 --cpu 0")
        );
        assert_eq!(
            gen_args(&o, Size::Imix, Offer::Pps(5000), Duration::from_secs(1), 65535),
            args("--dev a-host --run 65535 --size imix --rate 5000 --duration 1.000 --quiet --src 198.19.1.10 --dst 198.19.2.10 --flows 64")
        );
        // Each trial its own run id.
        assert_ne!(next_run(), next_run());
    }

    #[test]
    fn bad_options_say_what_to_give() {
        for (bad, says) in [
            (
                "--gen-dev a --src 198.19.1.10 --dst 198.19.2.10",
                "--sink-dev IF is required",
            ),
            (
                "--sink-dev b --src 198.19.1.10 --dst 198.19.2.10",
                "--gen-dev IF is required",
            ),
            (
                "--gen-dev a --sink-dev a --src 198.19.1.10 --dst 198.19.2.10",
                "both a in one namespace",
            ),
            (&format!("{BASE} --sizes 64,40"), "--sizes: --size \"40\""),
            (&format!("{BASE} --sizes ,"), "give a list"),
            (&format!("{BASE} --trial 0"), "--trial 0: give 0.1 to 3600"),
            (&format!("{BASE} --trial x"), "give seconds"),
            (&format!("{BASE} --loss 101"), "percentage from 0 to 100"),
            (&format!("{BASE} --resolution 0"), "percentage from 0.01"),
            (&format!("{BASE} --max-trials 1"), "give 2 to 64"),
            (&format!("{BASE} --min-rate 0"), "above 0"),
            (&format!("{BASE} --warmup -1"), "--warmup"),
            (&format!("{BASE} --rate 5"), "sets it per trial"),
            (&format!("{BASE} --flows 0"), "--flows 0: give 1 to"),
            (&format!("{BASE} --format xml"), "text or json"),
            (
                &format!("{BASE} --xdp-mode turbo"),
                "auto, native or generic",
            ),
            (&format!("{BASE} --ipv6"), "IPv6"),
            (
                "--gen-dev a --sink-dev b --src 198.19.1.10",
                "--dst ADDR is required",
            ),
            (&format!("{BASE} --gen-netns ../x"), "namespace name"),
            (&format!("{BASE} --src fd00:a::10"), "one family"),
            (
                "--gen-dev a --sink-dev b --src fd00:a::10 --dst fd00:b::10 --ipv6 --sizes 64",
                "give 72 or more",
            ),
            (&format!("{BASE} --trial"), "--trial needs a value"),
        ] {
            let e = parse(&args(bad))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(says), "{bad}: {e:?}");
            assert_eq!(e.lines().count(), 1, "{bad}: one line: {e:?}");
        }
    }

    #[test]
    fn ipv6_raises_the_default_sizes_to_what_its_headers_need() {
        let v6 = "--gen-dev a --sink-dev b --src fd00:a::10 --dst fd00:b::10";
        let o = parse(&args(v6)).unwrap();
        assert_eq!(o.sizes[..2], [Size::Fixed(72), Size::Fixed(128)]);
        assert_eq!(o.sizes.len(), 8);
        let o = parse(&args(&format!("{v6} --proto tcp"))).unwrap();
        assert_eq!(o.sizes[0], Size::Fixed(84));
        // IPv4 keeps them as they are; a list given is checked, not raised.
        assert_eq!(parse(&args(BASE)).unwrap().sizes[0], Size::Fixed(64));
        let e = parse(&args(&format!("{v6} --sizes 64,128")))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("--sizes: --size 64 cannot hold IPv6/UDP and the 24-byte probe header: give 72 or more")
        );
        // The default list given by hand is a list given: checked.
        let e = parse(&args(&format!("{v6} --sizes {DEFAULT_SIZES}")));
        assert!(e.is_err(), "{:?}", e.map(|o| o.sizes));
    }

    /// gen sends at least 1 pps per queue: a floor below that is refused
    /// when parsed, and a rate the search or a retest goes down to is
    /// offered as one per queue, not refused by gen mid-run.
    #[test]
    fn rates_below_one_per_queue_are_refused_or_raised() {
        let e = parse(&args(&format!("{BASE} --queues 8 --flows 8 --min-rate 4")))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("--min-rate 4 is below --queues 8: each queue sends at least 1 pps, give --min-rate 8 or more")
        );
        let o = parse(&args(&format!("{BASE} --queues 8 --flows 8"))).unwrap();
        let a = gen_args(
            &o,
            Size::Fixed(64),
            Offer::Pps(3),
            Duration::from_secs(1),
            1,
        );
        let rate = a
            .iter()
            .position(|x| x == "--rate")
            .map(|i| a[i + 1].as_str());
        assert_eq!(rate, Some("8"));
        crate::gen::parse_gen(&a).expect("gen takes it");
    }

    fn a_trial(offer: Offer, pass: bool) -> TrialReport {
        TrialReport {
            offered: offer,
            sent_pps: 1000.0,
            sent: 1000,
            received: if pass { 1000 } else { 900 },
            lost: if pass { 0 } else { 100 },
            loss_pct: if pass { 0.0 } else { 10.0 },
            reordered: 0,
            late_from_before: 0,
            gbps_l2: 0.1,
            gbps_wire: 0.1,
            latency_us: None,
            pass,
        }
    }

    #[test]
    fn every_size_is_checked_before_anything_is_sent() {
        let o = parse(&args(&format!("{BASE} --sizes 64,1500"))).unwrap();
        let mut trials = 0;
        let e = measure(
            &o,
            |size| match size {
                Size::Fixed(1500) => bail!("gen: --size 1500: ESP makes 1500-byte packets 1574 bytes, above a-host's MTU 1500: give a smaller --size"),
                _ => Ok(()),
            },
            |_, offer, _| {
                trials += 1;
                Ok(a_trial(offer, true))
            },
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(trials, 0, "no trial, not even the warm-up");
        assert!(
            e.as_ref()
                .is_some_and(|e| e.starts_with("size 1500: gen: --size 1500: ESP")),
            "{e:?}"
        );
    }

    #[test]
    fn a_later_error_keeps_the_sizes_done_and_a_json_file_gets_them() {
        let o = parse(&args(&format!("{BASE} --sizes 64,512,1400 --no-latency"))).unwrap();
        let m = measure(
            &o,
            |_| Ok(()),
            |size, offer, _| match size {
                Size::Fixed(512) if offer == Offer::Max => bail!("gen: the interface went away"),
                _ => Ok(a_trial(offer, true)),
            },
        )
        .unwrap();
        assert_eq!(m.warmup_received, Some(1000));
        let sizes: Vec<&str> = m.results.iter().map(|r| r.size.as_str()).collect();
        assert_eq!(sizes, ["64"]);
        let e = m.error.as_ref().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("size 512: gen: the interface went away"));

        let dir = std::env::temp_dir().join(format!("espada-rfc2544-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        let mut f = gen::JsonFile::create(&path).unwrap();
        report(&o, &m, Some(&mut f)).unwrap();
        drop(f);
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(j["results"][0]["size"], "64");
        assert_eq!(j["stopped_by"], "size 512: gen: the interface went away");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_json_file_is_refused_before_the_run() {
        let e = run(&args(&format!(
            "{BASE} --json /nonexistent-espada-dir/rfc2544.json"
        )))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("--json /nonexistent-espada-dir/rfc2544.json: cannot write it"),
            "{e}"
        );
    }

    #[test]
    fn a_child_error_is_its_last_line() {
        assert_eq!(
            last_line("noise\nespada-bench gen: no interface \"x\"\n\n"),
            "espada-bench gen: no interface \"x\""
        );
        assert_eq!(last_line(""), "(no message)");
    }
}
