//! `espada-bench report`: runs the benchmarks (crypto, scale, ike, and the
//! lab comparison when it can), keeps their data, draws SVG plots and
//! regenerates the generated section of docs/performance.md, whose
//! "Targets" table states each of the benchmark issue's targets as met or
//! missed, with the reason.
//!
//! ```text
//! espada-bench report [--quick] [--no-lab] [--lab-seconds 5]
//!                     [--lab-traffic gen|iperf3]
//!                     [--doc docs/performance.md] [--plots docs/bench]
//!                     [--from REPORT.json]
//! ```
//!
//! `--quick`: a smoke run (short points, no OpenSSL baseline, no lab).
//! `--lab-traffic`: the lab's traffic source, `gen` (default: this
//! binary's AF_XDP generator and sink) or `iperf3`.
//! `--from`: render a saved `report.json` again without measuring.

mod markdown;
mod plots;

use crate::flags::Flags;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::crypto_bench::{self, SizeSpec};
use crate::gen::frame::Size;
use crate::memprobe::{self, MemoryCost};
use crate::{ike_bench, ikev2_bench, scale};

pub const USAGE: &str = "usage: espada-bench report [--quick] [--no-lab] [--lab-seconds 5] \
[--lab-traffic gen|iperf3] [--rfc2544-sizes 1400] [--doc docs/performance.md] [--plots docs/bench] \
[--from REPORT.json]";

/// Suites the report measures: the targets' two.
const SUITES: [&str; 2] = ["aes128gcm16", "aes128-sha1"];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CryptoRow {
    pub suite: String,
    pub direction: String,
    pub size: String,
    pub mpps: f64,
    pub gbps: f64,
    pub batch_p50_us: f64,
    pub batch_p99_us: f64,
    pub batch_p999_us: f64,
    pub openssl_gbps: Option<f64>,
    pub ratio_to_openssl: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRow {
    pub test: String,
    pub direction: String,
    /// Inner IP packet bytes (reports before sizes were recorded ran 64).
    #[serde(default = "scale_default_size")]
    pub size: usize,
    pub sas: usize,
    pub workers: usize,
    pub ns_per_packet: f64,
    pub mpps: f64,
    pub ratio: f64,
    pub cpu_ratio: f64,
    pub replay_drops: u64,
}

fn scale_default_size() -> usize {
    64
}

/// The packet size the targets name ("at 1400-byte frames").
const TARGET_SIZE: usize = 1400;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IkeRow {
    #[serde(default)]
    pub ike_version: u8,
    pub group: u16,
    pub group_name: String,
    pub setups_per_sec: f64,
    pub dh_ops_per_sec: f64,
    pub ratio_to_dh: f64,
    pub p50_ratio_to_dh: f64,
    pub setup_p50_us: f64,
    pub setup_p99_us: f64,
}

/// `deploy/lab_compare.sh`'s JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabData {
    pub date: String,
    pub cores: usize,
    pub seconds: u32,
    pub traffic: String,
    /// The pps of the run that measures CPU per packet (gen only).
    #[serde(default)]
    pub cpu_rate: Option<u64>,
    /// The cores of gw_a's and gw_b's workers (absent in older data: both 0).
    #[serde(default)]
    pub gw_cores: Option<[usize; 2]>,
    /// The cores of gen and the sink (absent in older data: 0 and 1).
    #[serde(default)]
    pub host_cores: Option<[usize; 2]>,
    pub results: Vec<LabRow>,
    /// RFC 2544 throughput per path (`--rfc2544`; absent in older data).
    #[serde(default)]
    pub rfc2544: Vec<LabRfcRow>,
}

/// One path's RFC 2544 throughput at one size: the highest offered rate
/// that lost at most `loss_pct` percent, found by `espada-bench rfc2544`.
/// This, not what a flooded path still delivers, is RFC 1242's throughput.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRfcRow {
    pub path: String,
    pub suite: String,
    pub size: String,
    /// `None`: the path lost packets at every rate the search tried.
    pub pps: Option<f64>,
    pub mbps: f64,
    pub loss_pct: f64,
    pub trial_seconds: f64,
    /// What gen reached at its maximum rate: the search's ceiling.
    pub gen_max_pps: f64,
    pub trials: u32,
    pub converged: bool,
    /// Rates tried twice because their verdict contradicted an earlier
    /// one (a noisy path); absent from runs before it was counted.
    #[serde(default)]
    pub retested: u32,
    /// The path took everything gen could send: a lower bound.
    pub limited_by_generator: bool,
    pub latency_us: Option<crate::rfc2544::LatencyJson>,
    /// What the latency trial sent and lost (absent before they were
    /// kept): its percentiles are at the throughput rate only if it sent
    /// that rate.
    #[serde(default)]
    pub latency_sent_pps: Option<f64>,
    #[serde(default)]
    pub latency_loss_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabRow {
    pub path: String,
    pub suite: String,
    pub proto: String,
    /// Ethernet frame size for UDP; `None` for TCP.
    pub frame: Option<u32>,
    pub mbps: f64,
    pub pps: f64,
    #[serde(default)]
    pub retransmits: u64,
    /// gen's `--size` ("64", "imix"); `None` in iperf3 data.
    #[serde(default)]
    pub size: Option<String>,
    /// The fixed rate in pps; `None` at the maximum rate (and for iperf3).
    #[serde(default)]
    pub rate: Option<u64>,
    /// What gen sent, pps.
    #[serde(default)]
    pub sent_pps: Option<f64>,
    /// 1 - probes received / sent (gen only).
    #[serde(default)]
    pub loss: Option<f64>,
    /// The sink's one-way latency percentiles (gen only).
    #[serde(default)]
    pub latency_us: Option<LabLatency>,
    /// CPU microseconds per received packet (gen only).
    #[serde(default)]
    pub cpu_us: Option<LabCpu>,
}

/// CPU time per received packet, microseconds: what each path costs when
/// the machine's cores are not the limit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct LabCpu {
    /// The gateways' own processes (Espada's control and dataplane, or
    /// strongSwan's charon), both gateways.
    pub gateways: f64,
    /// Every core of the machine: gen, the sink, interrupts included.
    pub machine: f64,
}

/// The sink's latency summary, microseconds, as the sink's JSON has it.
pub type LabLatency = crate::gen::track::Latency;

impl LabLatency {
    /// (microseconds, fraction of packets at or below) points of the CDF
    /// the percentiles give.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        vec![
            (self.min, 0.0),
            (self.p50, 0.5),
            (self.p90, 0.9),
            (self.p99, 0.99),
            (self.p99_9, 0.999),
            (self.max, 1.0),
        ]
    }
}

impl LabRow {
    /// The size as shown: gen's size, else the frame, else "TCP".
    pub fn size_label(&self) -> String {
        match (&self.size, self.frame) {
            (Some(s), _) => s.clone(),
            (None, Some(f)) => f.to_string(),
            (None, None) => "TCP".into(),
        }
    }

    /// "espada GCM", "forwarder", "strongswan CBC".
    pub fn path_label(&self) -> String {
        let suite = match self.suite.as_str() {
            "none" => "",
            "aes128gcm16" => " GCM",
            "aes128-sha1" => " CBC",
            s => s,
        };
        format!("{}{suite}", self.path)
    }
}

impl LabData {
    /// `r`'s Mbit/s over the same traffic's on path `against` (the
    /// forwarder has one row, suite "none"; strongSwan one per suite).
    pub fn ratio(&self, r: &LabRow, against: &str) -> Option<f64> {
        if r.path == against || r.path == "forwarder" {
            return None;
        }
        if r.rate.is_some() {
            // A fixed rate is the same on every path: compare latencies.
            return None;
        }
        let base = self.results.iter().find(|b| {
            b.path == against
                && b.rate.is_none()
                && b.proto == r.proto
                && b.frame == r.frame
                && b.size == r.size
                && (against == "forwarder" || b.suite == r.suite)
        })?;
        (base.mbps > 0.0).then(|| r.mbps / base.mbps)
    }

    /// The maximum-rate row of `path`/`suite` at `frame`.
    pub fn find(&self, path: &str, suite: &str, frame: Option<u32>) -> Option<&LabRow> {
        self.results
            .iter()
            .find(|r| r.path == path && r.suite == suite && r.frame == frame && r.rate.is_none())
    }

    /// The row of `path`/`suite` at `size` and `rate` (`None`: maximum)
    /// that measured CPU per packet.
    pub fn cpu_row(
        &self,
        path: &str,
        suite: &str,
        size: &str,
        rate: Option<u64>,
    ) -> Option<&LabRow> {
        self.results.iter().find(|r| {
            r.path == path
                && r.suite == suite
                && r.size.as_deref() == Some(size)
                && r.rate == rate
                && r.cpu_us.is_some()
        })
    }

    /// How many times the gateways' CPU per packet of `r` strongSwan's
    /// gateways spend for the same suite, size and rate.
    pub fn cpu_ratio_to_strongswan(&self, r: &LabRow) -> Option<f64> {
        let mine = r.cpu_us?.gateways;
        let size = r.size.as_deref()?;
        let swan = self
            .cpu_row("strongswan", &r.suite, size, r.rate)?
            .cpu_us?
            .gateways;
        (mine > 0.0 && r.path != "strongswan").then(|| swan / mine)
    }

    /// The RFC 2544 row of `path`/`suite` at `size`.
    pub fn rfc(&self, path: &str, suite: &str, size: &str) -> Option<&LabRfcRow> {
        self.rfc2544
            .iter()
            .find(|r| r.path == path && r.suite == suite && r.size == size)
    }

    /// `r`'s RFC 2544 throughput over path `against`'s at the same size
    /// (the forwarder's suite is "none"; strongSwan's the same as `r`'s).
    pub fn rfc_ratio(&self, r: &LabRfcRow, against: &str) -> Option<f64> {
        if r.path == against || r.path == "forwarder" {
            return None;
        }
        let suite = if against == "forwarder" {
            "none"
        } else {
            &r.suite
        };
        let (mine, base) = (r.pps?, self.rfc(against, suite, &r.size)?.pps?);
        (base > 0.0).then(|| mine / base)
    }

    /// Whether the data came from espada-bench gen (not iperf3).
    pub fn is_gen(&self) -> bool {
        self.traffic == "gen"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Met,
    Missed,
    NotMeasured,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub measured: Option<f64>,
    pub verdict: Verdict,
    pub why: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportData {
    pub date: String,
    pub cores: usize,
    pub load: String,
    pub quick: bool,
    pub crypto: Vec<CryptoRow>,
    pub scale: Vec<ScaleRow>,
    pub ike: Vec<IkeRow>,
    pub lab: Option<LabData>,
    pub lab_skipped: Option<String>,
    pub targets: Vec<Target>,
    /// This machine's cost of a line from beyond its caches, measured
    /// right after `scale` (absent from reports made before it was).
    #[serde(default)]
    pub memory: Option<MemoryCost>,
}

#[derive(Debug)]
struct Options {
    quick: bool,
    lab: bool,
    lab_seconds: u32,
    lab_traffic: String,
    /// Sizes of the lab's RFC 2544 searches: the targets name 1400; each
    /// more size adds some ten minutes (five paths, 10-second trials).
    rfc_sizes: String,
    doc: PathBuf,
    plots: PathBuf,
    from: Option<PathBuf>,
}

pub fn cli(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let data = match &o.from {
        Some(p) => {
            let mut d: ReportData = serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not a report", p.display()))?;
            // The verdicts and their reasons as this version states them.
            d.targets = targets(&d);
            d
        }
        None => measure(&o)?,
    };
    write(&o, &data)
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        quick: false,
        lab: true,
        lab_seconds: 5,
        lab_traffic: "gen".into(),
        rfc_sizes: "1400".into(),
        doc: "docs/performance.md".into(),
        plots: "docs/bench".into(),
        from: None,
    };
    let mut rfc_sizes_given = false;
    let mut flags = Flags::new(args, format!("\n{USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--quick" => o.quick = true,
            "--no-lab" => o.lab = false,
            "--lab-seconds" => {
                o.lab_seconds = flags
                    .value("--lab-seconds")?
                    .parse()
                    .context("--lab-seconds takes whole seconds")?;
                if !(1..=120).contains(&o.lab_seconds) {
                    bail!("--lab-seconds: 1 to 120");
                }
            }
            "--lab-traffic" => {
                o.lab_traffic = flags.value("--lab-traffic")?;
                if !["gen", "iperf3"].contains(&o.lab_traffic.as_str()) {
                    bail!("--lab-traffic: gen or iperf3");
                }
            }
            "--rfc2544-sizes" => {
                o.rfc_sizes = rfc_sizes(&flags.value("--rfc2544-sizes")?)?;
                rfc_sizes_given = true;
            }
            "--doc" => o.doc = flags.value("--doc")?.into(),
            "--plots" => o.plots = flags.value("--plots")?.into(),
            "--from" => o.from = Some(flags.value("--from")?.into()),
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let no_search = if o.quick {
        Some("--quick")
    } else if !o.lab {
        Some("--no-lab")
    } else if o.from.is_some() {
        Some("--from")
    } else if o.lab_traffic != "gen" {
        Some("--lab-traffic iperf3")
    } else {
        None
    };
    if let (true, Some(why)) = (rfc_sizes_given, no_search) {
        bail!("--rfc2544-sizes: no RFC 2544 search runs with {why} (it runs in the lab, with gen)");
    }
    Ok(o)
}

/// `--rfc2544-sizes`: sizes as rfc2544 reads them, each once, 1400 among
/// them; returns the list in rfc2544's spelling.
fn rfc_sizes(list: &str) -> Result<String> {
    let sizes = Size::parse_list(list, "--rfc2544-sizes")?;
    for (i, s) in sizes.iter().enumerate() {
        if sizes[..i].contains(s) {
            bail!("--rfc2544-sizes: {} is listed twice", s.label());
        }
    }
    if !sizes.contains(&Size::Fixed(1400)) {
        bail!("--rfc2544-sizes: include 1400, the size the targets are judged at");
    }
    Ok(sizes
        .iter()
        .map(|s| s.label())
        .collect::<Vec<_>>()
        .join(","))
}

fn progress(what: &str) {
    eprintln!("report: {what}");
}

fn to_rows<T: Serialize, R: for<'de> Deserialize<'de>>(v: &[T]) -> Result<Vec<R>> {
    Ok(serde_json::from_value(serde_json::to_value(v)?)?)
}

fn measure(o: &Options) -> Result<ReportData> {
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    progress("crypto");
    let copts = crypto_bench::Options {
        suites: SUITES.iter().map(|s| s.to_string()).collect(),
        sizes: if o.quick {
            vec![SizeSpec::Fixed(64), SizeSpec::Fixed(1400)]
        } else {
            vec![
                SizeSpec::Fixed(64),
                SizeSpec::Fixed(512),
                SizeSpec::Fixed(1400),
                SizeSpec::Imix,
            ]
        },
        batch: 32,
        duration: Duration::from_millis(if o.quick { 50 } else { 500 }),
        openssl_seconds: 1,
        openssl: !o.quick,
    };
    let crypto: Vec<CryptoRow> = to_rows(&crypto_bench::run(&copts, |m| {
        progress(&format!(
            "crypto {} {} {}: {:.2} Gbps",
            m.suite, m.direction, m.size, m.gbps
        ))
    })?)?;

    progress("scale");
    let (enc, auth) = crypto_bench::parse_suite("aes128gcm16")?;
    let sopts = scale::Options {
        sa_counts: if o.quick {
            vec![1, 1000, 10_000]
        } else {
            vec![1, 1000, 100_000]
        },
        sa_sizes: if o.quick {
            vec![64]
        } else {
            vec![64, TARGET_SIZE]
        },
        size: 64,
        batch: 32,
        duration: Duration::from_millis(if o.quick { 50 } else { 2000 }),
        enc,
        auth,
        suite: "aes128gcm16".into(),
        worker_sas: 1000,
        replay_window: 1024,
    };
    let scale: Vec<ScaleRow> = to_rows(&scale::run(&sopts, |m| {
        progress(&format!(
            "scale {} {} {} B {} SAs {} workers: {:.0} ns/packet",
            m.test, m.direction, m.size, m.sas, m.workers, m.ns_per_packet
        ))
    })?)?;

    progress("memory");
    let memory = memprobe::measure(
        memprobe::TABLE_BYTES,
        if o.quick {
            Duration::from_millis(200)
        } else {
            scale::MEMORY_BUDGET
        },
    );
    progress(&format!(
        "memory: a line {:.0} ns alone, {:.1} ns each {} at a time",
        memory.latency_ns,
        memory.line_ns,
        memprobe::IN_FLIGHT
    ));

    progress("ike");
    let mut ike = Vec::new();
    for v2 in [false, true] {
        let groups: &[&str] = match (v2, o.quick) {
            (false, true) => &["2"],
            (false, false) => &["2", "14"],
            (true, true) => &["19"],
            (true, false) => &["14", "19"],
        };
        let iopts = ike_bench::Options {
            groups: groups
                .iter()
                .map(|g| {
                    if v2 {
                        ikev2_bench::parse_group(g)
                    } else {
                        ike_bench::parse_group(g)
                    }
                })
                .collect::<Result<_>>()?,
            duration: Duration::from_millis(if o.quick { 300 } else { 1000 }),
            held: 64,
            max_setups: None,
        };
        let ms = if v2 {
            ikev2_bench::run(&iopts, |_| {})?
        } else {
            ike_bench::run(&iopts, |_| {})?
        };
        let mut rows: Vec<IkeRow> = to_rows(&ms)?;
        for r in &mut rows {
            r.ike_version = if v2 { 2 } else { 1 };
        }
        ike.extend(rows);
    }

    let (lab, lab_skipped) = if o.quick || !o.lab {
        (
            None,
            Some(if o.quick { "--quick" } else { "--no-lab" }.to_string()),
        )
    } else {
        match run_lab(o.lab_seconds, &o.lab_traffic, &o.rfc_sizes) {
            Ok(l) => (Some(l), None),
            Err(e) => {
                progress(&format!("lab not run: {e:#}"));
                (None, Some(format!("{e:#}")))
            }
        }
    };

    let mut d = ReportData {
        date: utc_now(),
        cores,
        load,
        quick: o.quick,
        crypto,
        scale,
        ike,
        lab,
        lab_skipped,
        targets: Vec::new(),
        memory: Some(memory),
    };
    d.targets = targets(&d);
    Ok(d)
}

/// Runs `deploy/lab_compare.sh` (root, from the repository root).
fn run_lab(seconds: u32, traffic: &str, rfc_sizes: &str) -> Result<LabData> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        bail!("not root (the lab needs network namespaces)");
    }
    let script = Path::new("deploy/lab_compare.sh");
    if !script.exists() {
        bail!("deploy/lab_compare.sh not found (run from the repository root)");
    }
    let espada = std::env::var("ESPADA").unwrap_or_else(|_| "target/release/espada".into());
    if !Path::new(&espada).exists() {
        bail!("{espada} is missing (build the release binaries, or set ESPADA)");
    }
    progress("lab comparison (deploy/lab_compare.sh)");
    let out = std::env::temp_dir().join(format!("espada-report-lab-{}.json", std::process::id()));
    let mut cmd = Command::new(script);
    cmd.args([
        "--seconds",
        &seconds.to_string(),
        "--traffic",
        traffic,
        "--json",
    ])
    .arg(&out);
    if traffic == "gen" {
        // RFC 2544 throughput at the size the targets name, and any others
        // asked for.
        cmd.args(["--rfc2544", rfc_sizes]);
    }
    if std::env::var_os("ESPADA_BENCH").is_none() {
        // The generator and sink of this very build.
        if let Ok(me) = std::env::current_exe() {
            cmd.env("ESPADA_BENCH", me);
        }
    }
    let status = cmd.status().context("running deploy/lab_compare.sh")?;
    if !status.success() {
        bail!("deploy/lab_compare.sh failed ({status})");
    }
    let text = std::fs::read_to_string(&out).context("reading the lab's JSON")?;
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).context("the lab's JSON")
}

fn write(o: &Options, d: &ReportData) -> Result<()> {
    std::fs::create_dir_all(&o.plots).with_context(|| format!("creating {}", o.plots.display()))?;
    std::fs::write(
        o.plots.join("report.json"),
        serde_json::to_string_pretty(d)? + "\n",
    )?;
    plots::draw_all(d, &o.plots)?;
    let doc = std::fs::read_to_string(&o.doc).unwrap_or_else(|_| "# Performance\n".into());
    // Links from the document to the plots, relative to the document.
    let rel = relative(&o.plots, o.doc.parent().unwrap_or(Path::new(".")));
    let out = markdown::splice(&doc, &markdown::render(d, &rel))?;
    std::fs::write(&o.doc, out).with_context(|| format!("writing {}", o.doc.display()))?;
    for t in &d.targets {
        outln!(
            "{:<80} {:>8} {:?}",
            t.name,
            t.measured.map_or("n/a".into(), |m| format!("{m:.2}x")),
            t.verdict
        );
    }
    outln!(
        "wrote {} and the plots in {}",
        o.doc.display(),
        o.plots.display()
    );
    Ok(())
}

/// `path` relative to `base` when `path` lies under it, else as given.
fn relative(path: &Path, base: &Path) -> String {
    let p = path.strip_prefix(base).unwrap_or(path);
    p.to_string_lossy().trim_end_matches('/').to_string()
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn target(
    name: String,
    measured: Option<f64>,
    met: impl Fn(f64) -> bool,
    why: String,
    absent: &str,
) -> Target {
    match measured {
        None => Target {
            name,
            measured,
            verdict: Verdict::NotMeasured,
            why: absent.to_string(),
        },
        Some(m) if met(m) => Target {
            name,
            measured,
            verdict: Verdict::Met,
            why: String::new(),
        },
        Some(_) => Target {
            name,
            measured,
            verdict: Verdict::Missed,
            why,
        },
    }
}

/// Why a suite's crypto falls short of OpenSSL's, as far as the code
/// knows it (the crypto section of docs/performance.md has the figures).
fn openssl_reason(suite: &str, dir: &str) -> String {
    if suite != "aes128-sha1" {
        return "see the crypto section of this page".into();
    }
    let lanes = cfg!(target_arch = "x86_64") && {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    };
    match (dir, lanes) {
        ("decap", true) => "see the crypto section of this page: HMAC-SHA1 (SHA-NI, one packet at \
             a time) bounds decap as it bounds OpenSSL, plus two compression blocks per packet and \
             the frame copy; encap hashes a batch's packets side by side in AVX-512 lanes, decap does \
             not yet (its ICV check sits between each packet's replay check and its decryption)"
            .into(),
        _ => "see the crypto section of this page: HMAC-SHA1 (SHA-NI, one packet at a time on this \
             CPU) bounds the suite as it bounds OpenSSL, plus two compression blocks per packet and \
             the frame copy"
            .into(),
    }
}

/// "1.23x", or "n/a" when there is nothing to divide.
fn opt_x(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |m| format!("{m:.2}x"))
}

/// The benchmark issue's targets against what was measured.
pub fn targets(d: &ReportData) -> Vec<Target> {
    let mut t = Vec::new();
    let lab_absent = format!(
        "lab not run: {}",
        d.lab_skipped.as_deref().unwrap_or("no lab data")
    );
    let crypto_gbps = |suite: &str, dir: &str| {
        d.crypto
            .iter()
            .find(|c| c.suite == suite && c.direction == dir && c.size == "1400")
            .map(|c| c.gbps)
    };
    let gen = d.lab.as_ref().is_some_and(LabData::is_gen);
    // RFC 1242's throughput is the highest rate without loss: where the
    // lab has RFC 2544 rows at 1400 bytes for Espada's suite and the path
    // it is compared with, that target is judged on them, and the
    // maximum-rate figures (what a flooded path still delivers) are given
    // beside them; otherwise on the maximum-rate rows.
    let find = |path: &str, suite: &str| d.lab.as_ref()?.find(path, suite, Some(1400));
    let rfc = |path: &str, suite: &str| d.lab.as_ref()?.rfc(path, suite, "1400");
    let base_suite = |against: &str, suite: &'static str| {
        if against == "forwarder" {
            "none"
        } else {
            suite
        }
    };
    let by_rfc = |suite: &'static str, against: &str| {
        rfc("espada", suite).is_some() && rfc(against, base_suite(against, suite)).is_some()
    };
    let unit = |by_rfc: bool| {
        if by_rfc {
            "1400-byte packets, RFC 2544 throughput (espada-bench rfc2544)"
        } else if gen {
            "1400-byte packets (espada-bench gen, maximum rate)"
        } else {
            "UDP 1400-byte frames"
        }
    };
    // The judged ratio of Espada's `suite` over `against`.
    let lab_ratio = |suite: &'static str, against: &str| {
        let l = d.lab.as_ref()?;
        if by_rfc(suite, against) {
            l.rfc_ratio(rfc("espada", suite)?, against)
        } else {
            l.ratio(find("espada", suite)?, against)
        }
    };
    // Why a target has no figure.
    let absent = |suite: &'static str, against: &str, label: &str| {
        if d.lab.is_none() {
            return lab_absent.clone();
        }
        if !by_rfc(suite, against) {
            return format!(
                "the lab has no maximum-rate rows at 1400 bytes for Espada {suite} and {label}"
            );
        }
        let lossy: Vec<&str> = [
            (rfc("espada", suite), "Espada"),
            (rfc(against, base_suite(against, suite)), label),
        ]
        .iter()
        .filter(|(r, _)| r.is_some_and(|r| r.pps.is_none()))
        .map(|(_, who)| *who)
        .collect();
        format!(
            "{} lost packets at every rate the RFC 2544 search tried: no throughput to divide",
            lossy.join(" and ")
        )
    };
    let max_ratio =
        |suite: &str, against: &str| d.lab.as_ref()?.ratio(find("espada", suite)?, against);
    // "N pps (M Mbit/s, L% lost)" of a gen row, "M Mbit/s" of iperf3's.
    let carried = |r: Option<&LabRow>| match r {
        None => "nothing".to_string(),
        Some(r) if gen => format!(
            "{:.0} pps ({:.0} Mbit/s, {:.1}% lost)",
            r.pps,
            r.mbps,
            100.0 * r.loss.unwrap_or(0.0)
        ),
        Some(r) => format!("{:.0} Mbit/s", r.mbps),
    };
    // "N pps (M Mbit/s)" of an RFC 2544 row.
    let rfc_carried = |r: Option<&LabRfcRow>| match r.map(|r| (r.pps, r.mbps)) {
        None => "not searched".to_string(),
        Some((None, _)) => "no rate without loss".to_string(),
        Some((Some(pps), mbps)) => format!("{pps:.0} pps ({mbps:.0} Mbit/s)"),
    };
    let rfc_terms = d
        .lab
        .as_ref()
        .and_then(|l| l.rfc2544.first())
        .map_or(String::new(), |r| {
            format!(
                "at most {}% lost, {:.0}-second trials",
                r.loss_pct, r.trial_seconds
            )
        });
    let cores = d.lab.as_ref().map_or(d.cores, |l| l.cores);
    for (suite, label, want) in [
        ("aes128gcm16", "AES-128-GCM-16", 0.5),
        ("aes128-sha1", "AES-128-CBC + HMAC-SHA1-96", 0.35),
    ] {
        let row = find("espada", suite);
        let rfc_judged = by_rfc(suite, "forwarder");
        let why = if rfc_judged {
            format!(
                "RFC 2544 throughput ({rfc_terms}): Espada {}, the forwarder {}; at the maximum \
                 rate Espada received {} and the forwarder {} ({}); one core's ESP limit here is \
                 {:.1} Gbps (encap, crypto table): gen, the sink and both gateways' workers share \
                 {cores} cores, and the tunnel crosses two AF_XDP dataplanes where the forwarder's \
                 clear traffic crosses one (gw_b passes it to the kernel)",
                rfc_carried(rfc("espada", suite)),
                rfc_carried(rfc("forwarder", "none")),
                carried(row),
                carried(find("forwarder", "none")),
                opt_x(max_ratio(suite, "forwarder")),
                crypto_gbps(suite, "encap").unwrap_or(0.0),
            )
        } else if gen {
            format!(
                "Espada received {}, the forwarder {}; one core's ESP limit here is {:.1} Gbps \
                 (encap, crypto table): gen, the sink and both gateways' workers share {cores} \
                 cores, and the tunnel crosses two AF_XDP dataplanes where the forwarder's clear \
                 traffic crosses one (gw_b passes it to the kernel)",
                carried(row),
                carried(find("forwarder", "none")),
                crypto_gbps(suite, "encap").unwrap_or(0.0),
            )
        } else {
            format!(
                "Espada carried {:.0} Mbit/s; one core's ESP limit here is {:.1} Gbps (encap, crypto table), \
                 so the tunnel is not crypto-bound: both gateways' workers, both hosts and iperf3 share 2 cores \
                 and the encrypting path crosses two AF_XDP dataplanes (the forwarder one)",
                row.map_or(0.0, |r| r.mbps),
                crypto_gbps(suite, "encap").unwrap_or(0.0)
            )
        };
        t.push(target(
            format!(
                "{label} through the lab, {} ≥ {want:.2}x the forwarder",
                unit(rfc_judged)
            ),
            lab_ratio(suite, "forwarder"),
            |m| m >= want,
            why,
            &absent(suite, "forwarder", "the forwarder"),
        ));
    }
    for (suite, label) in [
        ("aes128gcm16", "AES-128-GCM-16"),
        ("aes128-sha1", "AES-128-CBC + HMAC-SHA1-96"),
    ] {
        let row = find("espada", suite);
        let swan = find("strongswan", suite);
        let fwd = find("forwarder", "none");
        let rfc_judged = by_rfc(suite, "strongswan");
        let why = if gen {
            let cpu = d.lab.as_ref().and_then(|l| {
                let mine = l.cpu_row("espada", suite, "1400", None)?;
                let at_rate = l.cpu_rate.and_then(|rate| {
                    let r = l.cpu_row("espada", suite, "1400", Some(rate))?;
                    Some(format!(
                        ", {:.1}x at {rate} pps",
                        l.cpu_ratio_to_strongswan(r)?
                    ))
                });
                // The split into crossings and ESP uses the rows of the
                // rate every path carries without loss (at the maximum
                // rate CPU per received packet includes the dropped ones).
                let split_rate = l.cpu_rate.filter(|&r| {
                    l.cpu_row("espada", suite, "1400", Some(r)).is_some()
                        && l.cpu_row("forwarder", "none", "1400", Some(r)).is_some()
                });
                let mine_s = l.cpu_row("espada", suite, "1400", split_rate)?.cpu_us?.gateways;
                let fwd_s = l.cpu_row("forwarder", "none", "1400", split_rate)?.cpu_us?.gateways;
                let at = split_rate.map_or("the maximum rate".to_string(), |r| format!("{r} pps"));
                let esp = mine_s - 2.0 * fwd_s;
                let split = if esp > 0.0 {
                    format!("the tunnel crosses two, which leaves about {esp:.1} µs for ESP on both gateways")
                } else {
                    "the tunnel crosses two, and these figures leave nothing to put on ESP: the \
                     two-crossing split does not fit them"
                        .to_string()
                };
                Some(format!(
                    ". CPU per received packet of the gateways' processes, strongSwan ÷ Espada: \
                     {:.1}x at the maximum rate{}. At {at} Espada's gateways spend {mine_s:.1} µs \
                     per packet, the forwarder {fwd_s:.1} for the one AF_XDP crossing of its path \
                     (veth and copy-mode AF_XDP: three copies per hop); {split}; zero-copy AF_XDP \
                     on a real NIC, which this machine does not have, is what lowers the crossings",
                    l.cpu_ratio_to_strongswan(mine)?,
                    at_rate.unwrap_or_default(),
                ))
            });
            // The forwarder is the most any tunnel through this lab can
            // carry: its ratio to strongSwan bounds what can be shown here.
            let ceiling = (|| {
                let (f, s) = if rfc_judged {
                    (
                        rfc("forwarder", "none")?.pps?,
                        rfc("strongswan", suite)?.pps?,
                    )
                } else {
                    (fwd?.pps, swan?.pps)
                };
                (s > 0.0).then(|| f / s)
            })();
            let measured = if rfc_judged {
                format!(
                    "RFC 2544 throughput ({rfc_terms}): strongSwan {}, Espada {}, the forwarder \
                     without crypto {}; at the maximum rate strongSwan received {}, Espada {} \
                     ({}), the forwarder {}",
                    rfc_carried(rfc("strongswan", suite)),
                    rfc_carried(rfc("espada", suite)),
                    rfc_carried(rfc("forwarder", "none")),
                    carried(swan),
                    carried(row),
                    opt_x(max_ratio(suite, "strongswan")),
                    carried(fwd),
                )
            } else {
                format!(
                    "strongSwan received {}, Espada {} and the forwarder without crypto {}",
                    carried(swan),
                    carried(row),
                    carried(fwd)
                )
            };
            let bound = match ceiling {
                Some(c) if c < 10.0 => format!(
                    "The forwarder, which does no crypto, carries {c:.2}x strongSwan's rate in \
                     this lab: no tunnel through it can show more, so this target cannot be shown \
                     on this machine"
                ),
                Some(c) => format!(
                    "The forwarder, which does no crypto, carries {c:.2}x strongSwan's rate in \
                     this lab, so the lab could show the target: Espada's own cost per packet is \
                     what is short"
                ),
                None => "The data give no ceiling for this lab (the forwarder's or strongSwan's \
                         rate is missing, or one lost packets at every rate tried)"
                    .to_string(),
            };
            format!(
                "{measured}. {bound} (gen, the sink, both gateways and strongSwan's daemons share \
                 {cores} cores and veths; one core encrypts {:.1} Gbps in the crypto table){}",
                crypto_gbps(suite, "encap").unwrap_or(0.0),
                cpu.unwrap_or_default()
            )
        } else {
            format!(
                "strongSwan carried {:.0} Mbit/s, Espada {:.0} and the forwarder without crypto {:.0}: \
                 Espada runs at the lab's ceiling, not its dataplane's (one iperf3 sender and every namespace \
                 on 2 shared cores; one core encrypts {:.1} Gbps in the crypto table), so the ratio is that \
                 ceiling over strongSwan; showing the gap needs a sender faster than iperf3 (espada-bench gen)",
                swan.map_or(0.0, |r| r.mbps),
                row.map_or(0.0, |r| r.mbps),
                fwd.map_or(0.0, |r| r.mbps),
                crypto_gbps(suite, "encap").unwrap_or(0.0)
            )
        };
        t.push(target(
            format!(
                "{label} through the lab, {} ≥ 10x strongSwan kernel-libipsec",
                unit(rfc_judged)
            ),
            lab_ratio(suite, "strongswan"),
            |m| m >= 10.0,
            why,
            &absent(suite, "strongswan", "strongSwan"),
        ));
    }
    // The targets name 1400-byte frames; a report without that size
    // judges its largest.
    let sizes: Vec<usize> = d
        .scale
        .iter()
        .filter(|s| s.test == "sas")
        .map(|s| s.size)
        .collect();
    let judged = if sizes.contains(&TARGET_SIZE) {
        TARGET_SIZE
    } else {
        sizes.iter().copied().max().unwrap_or(TARGET_SIZE)
    };
    let smallest = sizes.iter().copied().min().unwrap_or(judged);
    let sa_rows = |dir: &'static str, size: usize| {
        d.scale
            .iter()
            .filter(move |s| s.test == "sas" && s.direction == dir && s.size == size)
    };
    let extremes = |dir: &'static str, size: usize| {
        let base = sa_rows(dir, size).find(|s| s.sas == 1);
        let big = sa_rows(dir, size)
            .max_by_key(|s| s.sas)
            .filter(|b| b.sas > 1);
        (base, big)
    };
    for dir in ["encap", "decap"] {
        let (base, big) = extremes(dir, judged);
        let n = big.map_or(0, |b| b.sas);
        // Against the 1-SA figure of the same size; without one, nothing
        // to judge.
        let measured = big
            .zip(base)
            .map(|(b, a)| b.ns_per_packet / a.ns_per_packet);
        let worst = match extremes(dir, smallest) {
            (Some(a), Some(b)) if smallest != judged => format!(
                " At {smallest} bytes, where the crypto is shortest, {:.0} ns more ({:.2}x).",
                b.ns_per_packet - a.ns_per_packet,
                b.ns_per_packet / a.ns_per_packet
            ),
            _ => String::new(),
        };
        // The lines listed below: encap's SPD slot and rule, SADB slot, 2
        // SA lines and 9 of keys; decap's SADB slot, 3 SA lines, replay
        // slot, the pair's selectors and 9 of keys.
        let lines = if dir == "decap" { 15 } else { 14 };
        let memory = d.memory.map_or(String::new(), |m| {
            format!(
                " This run measured a random line of a {} MiB table at {:.0} ns alone and \
                 {:.1} ns each when {} are asked for together: at that rate the {lines} lines \
                 below cost ~{:.0} ns a packet when they come from memory, less what the crypto \
                 hides.",
                m.table_mib,
                m.latency_ns,
                m.line_ns,
                memprobe::IN_FLIGHT,
                m.line_ns * f64::from(lines)
            )
        });
        let why = format!(
            "{:.0} ns more per {judged}-byte packet with {n} SAs visited in random order (the \
             worst case: every packet of a batch a different SA).{worst}{memory} What such a \
             packet reads from beyond the core's caches: {}its SADB slot (1 line), the SA's \
             per-packet state ({}), {}its cipher's key schedule (9 lines for AES-128-GCM, \
             ring's round keys and GHASH table). All of it is prefetched: the SPD slots and rules, the SADB slots \
             and the SAs of a whole batch in passes before use, the key schedules {}three \
             packets ahead inside the crypto loop, where they overlap the encryption.{} Asking \
             for the table lines a slice \
             earlier did not measurably help (docs/performance.md lists what \
             was measured and tried: no prefetches, huge pages, batch sizes, prefetch depth, a \
             cycle count per stage, the next slice's lookups during this one's crypto, the next \
             batch's lookups during this batch's crypto, a shared key). Bursts of one flow \
             share their SA's lines",
            big.zip(base)
                .map_or(0.0, |(b, a)| b.ns_per_packet - a.ns_per_packet),
            if dir == "encap" {
                "the SPD index slot and rule (2 lines), "
            } else {
                ""
            },
            if dir == "encap" { "2 lines" } else { "3 lines" },
            if dir == "decap" {
                "its replay slot (1 line), its pair's selectors (1 line, which every \
                 decrypted packet is checked against), "
            } else {
                ""
            },
            if dir == "decap" {
                "and the SA's counters and selectors "
            } else {
                ""
            },
            if dir == "encap" {
                " With every SA sharing one key, encap measured ~0.03 lower on a machine whose \
                 L3 held every table (300 MB) and 0.10-0.35 lower on one with a 32 MiB L3, \
                 where the key schedules come from DRAM; what is left is mostly the SPD's \
                 index slots and rules, each pass over the batch waiting for the lines the \
                 pass before asked for."
            } else {
                ""
            },
        );
        t.push(target(
            format!(
                "{dir}: per-packet cost with {n} SAs within 10% of 1 SA (≤ 1.10x), \
                 {judged}-byte packets"
            ),
            measured,
            |m| m <= 1.10,
            why,
            if sizes.is_empty() {
                "scale not run"
            } else {
                "no 1-SA and many-SA rows of that size to compare"
            },
        ));
    }
    for (suite, dir, want) in [
        ("aes128-sha1", "encap", 1.0),
        ("aes128-sha1", "decap", 0.9),
        ("aes128gcm16", "encap", 0.8),
    ] {
        let r = d
            .crypto
            .iter()
            .find(|c| c.suite == suite && c.direction == dir && c.size == "1400");
        t.push(target(
            // The issue asks for a comparison with OpenSSL, not a ratio:
            // these thresholds are the project's own.
            format!(
                "{suite} {dir} at 1400 bytes ≥ {want:.1}x OpenSSL's single-core limit \
                 (the project's own threshold)"
            ),
            r.and_then(|r| r.ratio_to_openssl),
            |m| m >= want,
            openssl_reason(suite, dir),
            "OpenSSL baseline not measured (--quick)",
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2544_sizes_are_checked_and_must_hold_the_targets_size() {
        let opts = |a: &str| options(&a.split(' ').map(String::from).collect::<Vec<_>>());
        assert_eq!(opts("--quick").unwrap().rfc_sizes, "1400");
        assert_eq!(
            opts("--rfc2544-sizes 64,512,01400,IMIX,")
                .unwrap()
                .rfc_sizes,
            "64,512,1400,imix"
        );
        let err = |a: &str| opts(a).unwrap_err().to_string();
        let e = err("--rfc2544-sizes 64,512");
        assert!(e.contains("include 1400"), "{e}");
        let e = err("--rfc2544-sizes 63,1400");
        assert!(e.contains("64 to 1500"), "{e}");
        let e = err("--rfc2544-sizes 1400,1400");
        assert!(e.contains("1400 is listed twice"), "{e}");
        for other in [
            "--quick",
            "--no-lab",
            "--lab-traffic iperf3",
            "--from r.json",
        ] {
            let e = err(&format!("--rfc2544-sizes 64,1400 {other}"));
            assert!(e.contains("no RFC 2544 search runs with"), "{other}: {e}");
        }
    }

    pub(super) fn sample() -> ReportData {
        let lab_row = |path: &str, suite: &str, frame: Option<u32>, mbps: f64| LabRow {
            path: path.into(),
            suite: suite.into(),
            proto: if frame.is_some() { "udp" } else { "tcp" }.into(),
            frame,
            mbps,
            pps: mbps * 1e6 / 8.0 / 1400.0,
            retransmits: 0,
            size: None,
            rate: None,
            sent_pps: None,
            loss: None,
            latency_us: None,
            cpu_us: None,
        };
        let scale_row = |dir: &str, sas, ns| ScaleRow {
            test: "sas".into(),
            direction: dir.into(),
            size: 64,
            sas,
            workers: 1,
            ns_per_packet: ns,
            mpps: 1e3 / ns,
            ratio: ns / 500.0,
            cpu_ratio: ns / 500.0,
            replay_drops: 0,
        };
        let mut d = ReportData {
            date: "2026-12-05 12:00 UTC".into(),
            cores: 2,
            load: "1.00 1.00 1.00".into(),
            quick: false,
            crypto: vec![CryptoRow {
                suite: "aes128-sha1".into(),
                direction: "encap".into(),
                size: "1400".into(),
                mpps: 0.6,
                gbps: 7.0,
                batch_p50_us: 50.0,
                batch_p99_us: 60.0,
                batch_p999_us: 70.0,
                openssl_gbps: Some(5.0),
                ratio_to_openssl: Some(1.4),
            }],
            scale: vec![
                scale_row("encap", 1, 500.0),
                scale_row("encap", 100_000, 550.0),
            ],
            ike: Vec::new(),
            lab: Some(LabData {
                date: "x".into(),
                cores: 2,
                seconds: 5,
                traffic: "iperf3".into(),
                cpu_rate: None,
                gw_cores: None,
                host_cores: None,
                rfc2544: Vec::new(),
                results: vec![
                    lab_row("forwarder", "none", Some(1400), 1000.0),
                    lab_row("espada", "aes128gcm16", Some(1400), 620.0),
                    lab_row("strongswan", "aes128gcm16", Some(1400), 200.0),
                    lab_row("espada", "aes128gcm16", None, 900.0),
                ],
            }),
            lab_skipped: None,
            targets: Vec::new(),
            memory: None,
        };
        d.targets = targets(&d);
        d.lab = None;
        d.lab_skipped = Some("not root".into());
        d
    }

    /// A report whose lab ran with espada-bench gen: maximum-rate rows at
    /// 64 and 1400 bytes and IMIX, and one fixed-rate row per path.
    pub(super) fn sample_gen() -> ReportData {
        let row = |path: &str, suite: &str, size: &str, rate: Option<u64>, pps: f64, p50: f64| {
            let frame: Option<u32> = size.parse().ok();
            let bytes = f64::from(frame.unwrap_or(360)) + 14.0;
            LabRow {
                path: path.into(),
                suite: suite.into(),
                proto: "udp".into(),
                frame,
                mbps: pps * bytes * 8.0 / 1e6,
                pps,
                retransmits: 0,
                size: Some(size.into()),
                rate,
                sent_pps: Some(rate.map_or(800_000.0, |r| r as f64)),
                loss: Some(if rate.is_some() { 0.0 } else { 0.25 }),
                latency_us: Some(LabLatency {
                    samples: 1000,
                    min: p50 / 2.0,
                    mean: p50,
                    p50,
                    p90: p50 * 2.0,
                    p99: p50 * 4.0,
                    p99_9: p50 * 8.0,
                    max: p50 * 10.0,
                }),
                cpu_us: None,
            }
        };
        let with_cpu = |mut r: LabRow, gateways: f64, machine: f64| {
            r.cpu_us = Some(LabCpu { gateways, machine });
            r
        };
        let mut d = sample();
        d.lab = Some(LabData {
            date: "2026-12-05T12:00:00Z".into(),
            cores: 2,
            seconds: 5,
            traffic: "gen".into(),
            cpu_rate: Some(20_000),
            gw_cores: Some([1, 0]),
            host_cores: None,
            rfc2544: Vec::new(),
            results: vec![
                with_cpu(
                    row("forwarder", "none", "1400", Some(20_000), 20_000.0, 300.0),
                    9.0,
                    60.0,
                ),
                with_cpu(
                    row(
                        "espada",
                        "aes128gcm16",
                        "1400",
                        Some(20_000),
                        20_000.0,
                        400.0,
                    ),
                    10.0,
                    60.0,
                ),
                with_cpu(
                    row(
                        "strongswan",
                        "aes128gcm16",
                        "1400",
                        Some(20_000),
                        20_000.0,
                        900.0,
                    ),
                    15.0,
                    19.0,
                ),
                row("forwarder", "none", "64", None, 500_000.0, 900.0),
                with_cpu(
                    row(
                        "forwarder",
                        "none",
                        "1400",
                        None,
                        1120e6 / 8.0 / 1414.0,
                        900.0,
                    ),
                    4.0,
                    8.0,
                ),
                row("forwarder", "none", "imix", None, 300_000.0, 900.0),
                row("forwarder", "none", "1400", Some(2000), 2000.0, 100.0),
                with_cpu(
                    row(
                        "espada",
                        "aes128gcm16",
                        "1400",
                        None,
                        700e6 / 8.0 / 1414.0,
                        5000.0,
                    ),
                    5.0,
                    15.0,
                ),
                row("espada", "aes128gcm16", "1400", Some(2000), 2000.0, 150.0),
                with_cpu(
                    row(
                        "strongswan",
                        "aes128gcm16",
                        "1400",
                        None,
                        56e6 / 8.0 / 1414.0,
                        50_000.0,
                    ),
                    20.0,
                    40.0,
                ),
                row(
                    "strongswan",
                    "aes128gcm16",
                    "1400",
                    Some(2000),
                    1990.0,
                    3000.0,
                ),
            ],
        });
        d.lab_skipped = None;
        d.targets = targets(&d);
        d
    }

    #[test]
    fn gen_targets_come_from_the_maximum_rate_rows_at_1400_bytes() {
        let d = sample_gen();
        let by = |prefix: &str| {
            d.targets
                .iter()
                .find(|t| t.name.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}"))
        };
        let close = |m: Option<f64>, want: f64| m.is_some_and(|m| (m - want).abs() < 1e-9);
        let fwd = by("AES-128-GCM-16 through the lab, 1400-byte packets (espada-bench gen, maximum rate) ≥ 0.50x the forwarder");
        assert!(close(fwd.measured, 0.625), "{:?}", fwd.measured);
        assert_eq!(fwd.verdict, Verdict::Met);
        let swan = by("AES-128-GCM-16 through the lab, 1400-byte packets (espada-bench gen, maximum rate) ≥ 10x");
        assert!(close(swan.measured, 12.5), "{:?}", swan.measured);
        assert_eq!(swan.verdict, Verdict::Met);
        let cbc = by("AES-128-CBC + HMAC-SHA1-96 through the lab, 1400-byte packets");
        assert_eq!(cbc.verdict, Verdict::NotMeasured);
        // A fixed-rate row has no ratio: every path carries the same rate.
        let l = d.lab.as_ref().unwrap();
        let fixed = l
            .results
            .iter()
            .find(|r| r.rate.is_some() && r.path == "espada")
            .unwrap();
        assert_eq!(l.ratio(fixed, "forwarder"), None);
        // IMIX compares with IMIX only (no espada IMIX row here).
        let imix = l
            .results
            .iter()
            .find(|r| r.size.as_deref() == Some("imix"))
            .unwrap();
        assert_eq!(l.ratio(imix, "forwarder"), None);
    }

    #[test]
    fn a_missed_gen_target_says_what_each_path_received() {
        let mut d = sample_gen();
        let l = d.lab.as_mut().unwrap();
        for r in &mut l.results {
            if r.path == "strongswan" && r.rate.is_none() {
                r.pps *= 4.0;
                r.mbps *= 4.0;
            }
        }
        d.targets = targets(&d);
        let swan = d
            .targets
            .iter()
            .find(|t| {
                t.name.starts_with("AES-128-GCM-16")
                    && t.name.ends_with("strongSwan kernel-libipsec")
            })
            .unwrap();
        assert_eq!(swan.verdict, Verdict::Missed);
        assert!(close_to(swan.measured, 3.125));
        assert!(
            swan.why.starts_with("strongSwan received 19802 pps (224 Mbit/s, 25.0% lost), Espada 61881 pps (700 Mbit/s, 25.0% lost) and the forwarder without crypto 99010 pps (1120 Mbit/s, 25.0% lost)"),
            "{}",
            swan.why
        ); // And what each path's gateways spend per packet, at both rates.
        assert_says(
            swan,
            "strongSwan ÷ Espada: 4.0x at the maximum rate, 1.5x at 20000 pps",
        );
        assert_says(
            swan,
            "At 20000 pps Espada's gateways spend 10.0 µs per packet, the forwarder 9.0 for \
                 the one AF_XDP crossing of its path",
        );
        // 10 µs is less than two of the forwarder's 9 µs crossings.
        assert_says(
            swan,
            "leave nothing to put on ESP: the two-crossing split does not fit them",
        );
    }

    /// Asserts that a target's reason says `text`, showing the reason
    /// when it does not.
    fn assert_says(t: &Target, text: &str) {
        assert!(t.why.contains(text), "{}", t.why);
    }

    /// The target whose name starts with `prefix`.
    fn named<'a>(d: &'a ReportData, prefix: &str) -> &'a Target {
        d.targets
            .iter()
            .find(|t| t.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no target {prefix}: {:#?}", d.targets))
    }

    /// `sample_gen` with RFC 2544 rows at 1400 bytes (pps): the forwarder,
    /// Espada GCM and strongSwan GCM.
    fn with_rfc2544(mut d: ReportData, fwd: f64, espada: f64, swan: f64) -> ReportData {
        let row = |path: &str, suite: &str, pps: f64| LabRfcRow {
            path: path.into(),
            suite: suite.into(),
            size: "1400".into(),
            pps: Some(pps),
            mbps: pps * 1414.0 * 8.0 / 1e6,
            loss_pct: 0.0,
            trial_seconds: 3.0,
            gen_max_pps: 900_000.0,
            trials: 8,
            converged: true,
            retested: 0,
            limited_by_generator: false,
            latency_us: None,
            latency_sent_pps: None,
            latency_loss_pct: None,
        };
        let l = d.lab.as_mut().unwrap();
        l.rfc2544 = vec![
            row("forwarder", "none", fwd),
            row("espada", "aes128gcm16", espada),
            row("strongswan", "aes128gcm16", swan),
        ];
        d.targets = targets(&d);
        d
    }

    #[test]
    fn with_rfc2544_rows_the_throughput_targets_are_judged_on_them() {
        // Maximum rate: Espada 0.625x the forwarder and 12.5x strongSwan;
        // RFC 2544: 0.45x and 6x, with a ceiling of 13.3x.
        let d = with_rfc2544(sample_gen(), 200_000.0, 90_000.0, 15_000.0);
        let by = |prefix: &str| {
            d.targets
                .iter()
                .find(|t| t.name.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}: {:#?}", d.targets))
        };
        let unit = "1400-byte packets, RFC 2544 throughput (espada-bench rfc2544)";
        let fwd = by(&format!(
            "AES-128-GCM-16 through the lab, {unit} ≥ 0.50x the forwarder"
        ));
        assert!(close_to(fwd.measured, 0.45), "{:?}", fwd.measured);
        assert_eq!(fwd.verdict, Verdict::Missed);
        assert!(
            fwd.why.starts_with(
                "RFC 2544 throughput (at most 0% lost, 3-second trials): Espada 90000 pps (1018 \
                 Mbit/s), the forwarder 200000 pps (2262 Mbit/s); at the maximum rate Espada \
                 received 61881 pps (700 Mbit/s, 25.0% lost) and the forwarder 99010 pps (1120 \
                 Mbit/s, 25.0% lost) (0.62x)"
            ),
            "{}",
            fwd.why
        );
        let swan = by(&format!("AES-128-GCM-16 through the lab, {unit} ≥ 10x"));
        assert!(close_to(swan.measured, 6.0), "{:?}", swan.measured);
        assert_eq!(swan.verdict, Verdict::Missed);
        assert_says(swan, "(12.50x), the forwarder");
        assert_says(
            swan,
            "The forwarder, which does no crypto, carries 13.33x strongSwan's rate in this \
                 lab, so the lab could show the target",
        );
        // A lab whose forwarder itself is under 10x strongSwan cannot show it.
        let low = with_rfc2544(sample_gen(), 200_000.0, 90_000.0, 25_000.0);
        let swan = named(
            &low,
            &format!("AES-128-GCM-16 through the lab, {unit} ≥ 10x"),
        );
        assert_says(
            swan,
            "carries 8.00x strongSwan's rate in this lab: no tunnel through it can show more",
        );
        // No CBC search: judged on the maximum-rate rows, which have no
        // CBC either: not measured, saying so.
        let cbc = by("AES-128-CBC + HMAC-SHA1-96 through the lab, 1400-byte packets (espada-bench gen, maximum rate) ≥ 0.35x");
        assert_eq!(cbc.verdict, Verdict::NotMeasured);
        assert_says(
            cbc,
            "no maximum-rate rows at 1400 bytes for Espada aes128-sha1",
        );
        // A path that lost packets at every rate has no throughput: the
        // target says who, not that nothing was searched.
        let mut lossy = d.clone();
        let l = lossy.lab.as_mut().unwrap();
        l.rfc2544
            .iter_mut()
            .find(|r| r.path == "strongswan")
            .unwrap()
            .pps = None;
        lossy.targets = targets(&lossy);
        let swan = named(
            &lossy,
            &format!("AES-128-GCM-16 through the lab, {unit} ≥ 10x"),
        );
        assert_eq!(swan.verdict, Verdict::NotMeasured);
        assert!(
            swan.why
                .starts_with("strongSwan lost packets at every rate the RFC 2544 search tried"),
            "{}",
            swan.why
        );
        assert!(markdown::render(&lossy, "plots")
            .contains("| strongswan | aes128gcm16 | 1400 | none without loss |"));
        // The table shows every row with its ratios.
        let md = markdown::render(&d, "plots");
        assert!(
            md.contains("| espada | aes128gcm16 | 1400 | 90000 | 1018.1 | 900000 | 8 | n/a | n/a | 0.45x | 6.00x |"),
            "{md}"
        );
        assert!(
            md.contains("gw_a's worker on core 1, gw_b's on core 0"),
            "{md}"
        );
        assert!(!md.contains("Latency trials that did not run"), "{md}");
        // A noisy search and a latency trial off its rate are shown.
        let mut noisy = d.clone();
        let lab = noisy.lab.as_mut().unwrap();
        lab.rfc2544[1].retested = 2;
        lab.rfc2544[1].latency_sent_pps = Some(83_700.0);
        lab.rfc2544[1].latency_loss_pct = Some(0.0);
        lab.rfc2544[2].latency_sent_pps = Some(15_100.0);
        lab.rfc2544[2].latency_loss_pct = Some(0.4);
        lab.rfc2544[0].latency_sent_pps = Some(201_000.0);
        lab.rfc2544[0].latency_loss_pct = Some(0.0);
        let md = markdown::render(&noisy, "plots");
        assert!(
            md.contains(
                "| espada | aes128gcm16 | 1400 | 90000 | 1018.1 | 900000 | 8 (2 retested) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("so their percentiles are at another load: espada aes128gcm16 1400: 83700 pps (-7.0%), 0.00% lost; strongswan aes128gcm16 1400: 15100 pps (+0.7%), 0.40% lost."),
            "{md}"
        );
    }

    fn close_to(m: Option<f64>, want: f64) -> bool {
        m.is_some_and(|m| (m - want).abs() < 1e-9)
    }

    #[test]
    fn lab_json_of_both_traffic_sources_parses() {
        let iperf = r#"{"date":"d","cores":2,"seconds":5,"traffic":"iperf3","results":[
            {"path":"forwarder","suite":"none","proto":"udp","frame":1400,"mbps":813.0,"pps":72000,"retransmits":0}]}"#;
        let l: LabData = serde_json::from_str(iperf).unwrap();
        assert!(!l.is_gen());
        assert_eq!(
            (l.results[0].rate, l.results[0].size_label()),
            (None, "1400".into())
        );
        let gen = r#"{"date":"d","cores":2,"seconds":5,"traffic":"gen","results":[
            {"path":"espada","suite":"aes128gcm16","proto":"udp","frame":null,"size":"imix","rate":null,
             "mbps":500.5,"pps":170000,"retransmits":0,"sent_pps":900000,"loss":0.81,"latency_us":null},
            {"path":"espada","suite":"aes128gcm16","proto":"udp","frame":1400,"size":"1400","rate":2000,
             "mbps":22.6,"pps":2000,"retransmits":0,"sent_pps":2000,"loss":0.0,"latency_us":
             {"samples":10000,"min":80.1,"mean":300.0,"p50":250.0,"p90":400.0,"p99":900.0,"p99.9":2000.5,"max":3000.0}}]}"#;
        let l: LabData = serde_json::from_str(gen).unwrap();
        assert!(l.is_gen());
        assert_eq!(l.results[0].size_label(), "imix");
        assert_eq!(l.results[0].latency_us, None);
        assert_eq!(l.results[1].rate, Some(2000));
        assert_eq!(l.results[1].latency_us.unwrap().p99_9, 2000.5);
        assert_eq!(l.results[1].path_label(), "espada GCM");
        // find() is the maximum-rate row only.
        assert!(l.find("espada", "aes128gcm16", Some(1400)).is_none());
        // Data from before the RFC 2544 rows and the core layout.
        assert!(l.rfc2544.is_empty() && l.gw_cores.is_none());
        let rfc = r#"{"date":"d","cores":2,"seconds":5,"traffic":"gen","gw_cores":[1,0],"results":[],
            "rfc2544":[{"path":"espada","suite":"aes128gcm16","size":"1400","pps":234597,"mbps":2653.8,
             "loss_pct":0.0,"trial_seconds":3.0,"gen_max_pps":298000,"trials":9,"converged":true,
             "limited_by_generator":false,"latency_us":{"samples":9000,"p50":410.0,"p90":500.0,
             "p99":700.0,"p99.9":900.0,"max":1000.0}}]}"#;
        let l: LabData = serde_json::from_str(rfc).unwrap();
        assert_eq!(l.gw_cores, Some([1, 0]));
        let r = l.rfc("espada", "aes128gcm16", "1400").unwrap();
        assert_eq!(
            (r.pps, r.trials, r.latency_us.unwrap().p99),
            (Some(234597.0), 9, 700.0)
        );
    }

    #[test]
    fn targets_are_met_missed_or_not_measured_from_the_data() {
        let d = sample();
        let by = |prefix: &str| {
            d.targets
                .iter()
                .find(|t| t.name.starts_with(prefix))
                .unwrap_or_else(|| panic!("no target {prefix}"))
        };
        let gcm = by("AES-128-GCM-16 through the lab, UDP 1400-byte frames ≥ 0.50x");
        assert_eq!((gcm.measured, gcm.verdict), (Some(0.62), Verdict::Met));
        let swan = by("AES-128-GCM-16 through the lab, UDP 1400-byte frames ≥ 10x");
        assert_eq!((swan.measured, swan.verdict), (Some(3.1), Verdict::Missed));
        assert!(swan.why.contains(
            "strongSwan carried 200 Mbit/s, Espada 620 and the forwarder without crypto 1000"
        ));
        // No CBC rows in the lab: not measured, with the reason.
        let cbc = by("AES-128-CBC + HMAC-SHA1-96 through the lab, UDP 1400-byte frames ≥ 0.35x");
        assert_eq!(cbc.verdict, Verdict::NotMeasured);
        let sas = by("encap: per-packet cost with 100000 SAs");
        assert_eq!((sas.measured, sas.verdict), (Some(1.1), Verdict::Met));
        assert_eq!(by("decap: per-packet cost").verdict, Verdict::NotMeasured);
        let sha = by("aes128-sha1 encap at 1400 bytes");
        assert_eq!((sha.measured, sha.verdict), (Some(1.4), Verdict::Met));
        assert_eq!(by("aes128-sha1 decap").verdict, Verdict::NotMeasured);
    }

    #[test]
    fn the_sa_count_target_is_judged_at_1400_bytes_when_measured() {
        let mut d = sample();
        let big = |size, sas, ratio: f64| ScaleRow {
            size,
            sas,
            ns_per_packet: 600.0 * ratio,
            ratio,
            cpu_ratio: ratio,
            ..d.scale[0].clone()
        };
        d.scale = vec![
            big(64, 1, 1.0),
            big(64, 100_000, 1.4),
            big(1400, 1, 1.0),
            big(1400, 100_000, 1.18),
        ];
        d.targets = targets(&d);
        let without = d.targets.clone();
        d.memory = Some(MemoryCost {
            table_mib: 256,
            latency_ns: 190.0,
            line_ns: 10.5,
        });
        d.targets = targets(&d);
        let sas = d
            .targets
            .iter()
            .find(|t| t.name.starts_with("encap: per-packet cost"))
            .unwrap();
        assert!(sas.name.ends_with("1400-byte packets"), "{}", sas.name);
        assert!((sas.measured.unwrap() - 1.18).abs() < 1e-9);
        assert_eq!(sas.verdict, Verdict::Missed);
        assert!(
            sas.why.starts_with("108 ns more per 1400-byte packet"),
            "{}",
            sas.why
        );
        assert!(sas
            .why
            .contains("At 64 bytes, where the crypto is shortest, 240 ns more (1.40x)."));
        // The same run's memory figures put a price on the lines listed.
        assert!(
            sas.why.contains(
                "This run measured a random line of a 256 MiB table at 190 ns alone and 10.5 ns \
                 each when 32 are asked for together: at that rate the 14 lines below cost ~147 \
                 ns a packet when they come from memory, less what the crypto hides."
            ),
            "{}",
            sas.why
        );
        let before = without
            .iter()
            .find(|t| t.name == sas.name)
            .map(|t| t.why.as_str());
        assert!(before.is_some_and(|w| !w.contains("This run measured")));
        // Old reports carry no size: their rows were 64 bytes.
        let old: ScaleRow = serde_json::from_value(serde_json::json!({
            "test": "sas", "direction": "encap", "sas": 1, "workers": 1,
            "ns_per_packet": 300.0, "mpps": 3.3, "ratio": 1.0, "cpu_ratio": 1.0,
            "replay_drops": 0
        }))
        .unwrap();
        assert_eq!(old.size, 64);
        // No 1-SA row at the judged size: nothing to compare with.
        d.scale.retain(|r| !(r.size == 1400 && r.sas == 1));
        d.targets = targets(&d);
        let sas = d
            .targets
            .iter()
            .find(|t| t.name.starts_with("encap: per-packet cost"))
            .unwrap();
        assert_eq!(sas.verdict, Verdict::NotMeasured);
    }

    #[test]
    fn a_report_round_trips_through_its_json_and_draws_its_plots() {
        let d = sample();
        let back: ReportData = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back.targets.len(), d.targets.len());
        let dir = std::env::temp_dir().join(format!("espada-report-test-{}", std::process::id()));
        let doc = dir.join("performance.md");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&doc, "# Performance\n\nProse.\n").unwrap();
        let o = Options {
            quick: true,
            lab: false,
            lab_seconds: 1,
            lab_traffic: "gen".into(),
            rfc_sizes: "1400".into(),
            doc: doc.clone(),
            plots: dir.join("bench"),
            from: None,
        };
        write(&o, &d).unwrap();
        let md = std::fs::read_to_string(&doc).unwrap();
        assert!(md.starts_with("# Performance\n\nProse.\n"));
        assert!(md.contains("(bench/scale-sas.svg)"));
        let svg = std::fs::read_to_string(dir.join("bench/scale-sas.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("100000"), "{svg}");
        assert!(dir.join("bench/report.json").exists());
        // With gen lab data: the per-size and latency plots, and their links.
        write(&o, &sample_gen()).unwrap();
        let md = std::fs::read_to_string(&doc).unwrap();
        for plot in ["lab.svg", "lab-pps.svg", "lab-gbps.svg", "lab-latency.svg"] {
            assert!(md.contains(&format!("(bench/{plot})")), "{plot}: {md}");
            let svg = std::fs::read_to_string(dir.join("bench").join(plot)).unwrap();
            assert!(svg.starts_with("<svg"), "{plot}");
        }
        let svg = std::fs::read_to_string(dir.join("bench/lab-latency.svg")).unwrap();
        assert!(svg.contains("strongswan GCM (1400 B, 2000 pps)"), "{svg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dates_are_civil_utc() {
        let d = utc_now();
        assert_eq!(d.len(), "2026-12-05 12:00 UTC".len());
        assert!(d.starts_with("20") && d.ends_with(" UTC"));
    }
}
