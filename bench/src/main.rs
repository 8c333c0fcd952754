//! `espada-bench`: Espada's benchmarks. Every figure is printed next to a
//! baseline measured in the same run (OpenSSL's single-core speed for ESP,
//! the Diffie-Hellman work alone for IKE), as a ratio, because absolute
//! numbers on a shared 2-core machine mean little.
//!
//! ```text
//! espada-bench crypto [--suites LIST|all] [--sizes 64,512,1400,imix]
//!                     [--batch 32] [--duration SECS] [--openssl-seconds N]
//!                     [--no-openssl] [--quick] [--format text|json]
//! espada-bench ike    [--ikev2] [--groups 2,14] [--duration SECS] [--held N]
//!                     [--quick] [--format text|json]
//! espada-bench gen    --dev IF --src ADDR --dst ADDR [--rate PPS|max] ...
//! espada-bench sink   --dev IF [--duration SECS] [--idle SECS] ...
//! espada-bench rfc2544 --gen-dev IF --sink-dev IF --src ADDR --dst ADDR ...
//! ```
//!
//! `gen` / `sink`: the AF_XDP packet generator and receiver (`gen/`).
//!
//! `crypto`: ESP encapsulation and decapsulation per suite and size, against
//! `openssl speed`. `ike`: IKEv1 Main Mode + Quick Mode setups per second of
//! one core on the responder side, per DH group, against the responder's
//! Diffie-Hellman work per Main Mode (one key generation and one shared
//! secret) on the same core; `--duration` is per group (default 5 s, plus
//! a warm-up), `--held` how many setups the responder keeps before
//! forgetting them (default 64), `--quick` a smoke run of about two
//! seconds in all. `ike --ikev2`: the same for IKEv2 (IKE_SA_INIT +
//! IKE_AUTH with the first CHILD_SA), groups 14 and 19 unless `--groups`
//! (2, 5, 14, 19, 20, 31), the baseline being the responder's DH work per
//! IKE_SA_INIT. `scale`: the dataplane pipeline's per-packet cost with 1,
//! 1 000 and 100 000 SAs, 1 against 2 workers, one SA shared by 2 workers
//! (see `scale.rs`).

/// `println!` that never panics: when stdout cannot be written (a full
/// disk, `> /dev/full`) the tool ends with a one-line error, exit code 1.
/// (A closed pipe ends it by SIGPIPE first: see [`restore_default_sigpipe`].)
macro_rules! outln {
    () => {
        $crate::stdout_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout_line(format_args!($($arg)*))
    };
}

mod crypto_bench;
mod flags;
mod gen;
mod ike_bench;
mod ike_flood;
mod ikev2_bench;
mod memprobe;
mod openssl;
mod report;
mod rfc2544;
mod rng;
mod scale;
#[cfg(test)]
#[path = "../../dataplane/tests/common/scapy.rs"]
mod scapy;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use mimalloc::MiMalloc;

use crypto_bench::{Measurement, Options, SizeSpec};
use flags::Flags;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str = "usage: espada-bench crypto [--suites aes128-sha1,aes128gcm16,...|all] \
[--sizes 64,512,1400,imix] [--batch 32] [--duration SECS] [--openssl-seconds N] \
[--no-openssl] [--quick] [--format text|json]
       espada-bench ike [--ikev2] [--groups 2,14 (IKEv1) | 14,19 (--ikev2)] \
[--duration SECS per group] [--held 64] [--quick] [--format text|json]
       espada-bench ike-flood --target 198.18.1.1 --local 198.18.0.1 --psk KEY \
[--spoof-from 198.18.128.0/17] [--count 200000] [--duration 10] [--rate 20000 (PPS, 0 = no cap)] \
[--setups 5] [--baseline-setups 3] [--group 14] [--port 500] [--lead 1] [--setup-timeout 10] \
[--format text|json]
       espada-bench ike-responder --listen 198.18.1.1 --psk KEY [--groups 14,19] \
[--cookie-threshold 16] [--port 500] [--duration 300] [--quiet]
(ike-flood and ike-responder: IKEv2 on real sockets; addresses in 198.18.0.0/15 only; \
ike-flood needs root for its raw socket)
       espada-bench gen --dev IF --src ADDR --dst ADDR [--rate PPS|max] [--size 64..1500|imix] \
[--flows N] [--esp spi=N,suite=S,enc=HEX,auth=HEX,peer=ADDR] ... (gen --help)
       espada-bench sink --dev IF [--duration SECS] [--idle SECS] [--json FILE] ... (sink --help) \
(AF_XDP packet generator and receiver, root; docs/performance.md)
       espada-bench rfc2544 --gen-netns NS --gen-dev IF --sink-netns NS --sink-dev IF --src ADDR --dst ADDR \
[--sizes 64,...,imix] [--trial 5] [--loss 0] [--resolution 1] ... (rfc2544 --help: RFC 2544 throughput and \
latency through a path, with gen and sink)";

/// Errors end the run with their message (context chain on one line; a
/// usage error adds the usage) and exit 1, so a mistyped flag never shows
/// a backtrace even with `RUST_BACKTRACE` set.
fn main() {
    restore_default_sigpipe();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("espada-bench: {e:#}");
        std::process::exit(1);
    }
}

/// Puts SIGPIPE back to its default action (Rust's runtime ignores it,
/// so a write to a closed pipe would fail, and `println!` abort the tool):
/// `espada-bench ... | head` then ends quietly, as other Unix tools do.
fn restore_default_sigpipe() {
    // SAFETY: installs the default action, no handler of ours runs; called
    // before any thread is started. signal() is async-signal-safe, so the
    // tests may call this in a forked child.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// One line on stdout (what [`outln!`] expands to); a failed write ends
/// the tool with a one-line error instead of a panic. (Tests print
/// through the harness, which captures it.)
pub fn stdout_line(args: std::fmt::Arguments) {
    #[cfg(test)]
    println!("{args}");
    #[cfg(not(test))]
    if let Err(e) = write_line(&mut std::io::stdout().lock(), args) {
        eprintln!("espada-bench: {e}");
        std::process::exit(1);
    }
}

/// `args` and a newline to `out`, or the one-line error to give.
fn write_line(out: &mut impl std::io::Write, args: std::fmt::Arguments) -> Result<()> {
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| {
            anyhow::anyhow!("writing to stdout: {e}: send the output to a writable file or pipe")
        })
}

/// What a subcommand's `--help` prints: its own usage text where it has
/// one, the tool's otherwise.
fn usage_of(subcommand: &str) -> Option<String> {
    let own = |usage: &str| format!("usage: {usage}");
    match subcommand {
        "scale" => Some(scale::USAGE.into()),
        "report" => Some(report::USAGE.into()),
        "gen" => Some(own(gen::GEN_USAGE)),
        "sink" => Some(own(gen::sink::SINK_USAGE)),
        "rfc2544" => Some(own(rfc2544::USAGE)),
        "crypto" | "ike" | "ike-flood" | "ike-responder" => Some(USAGE.into()),
        _ => None,
    }
}

fn run(args: &[String]) -> Result<()> {
    if let Some(sub) = args.first() {
        let help = args[1..].iter().any(|a| a == "--help" || a == "-h");
        if let (true, Some(usage)) = (help, usage_of(sub)) {
            outln!("{usage}");
            return Ok(());
        }
    }
    match args.first().map(String::as_str) {
        Some("crypto") => crypto(&args[1..]),
        Some("ike") => ike(&args[1..]),
        Some("ike-flood") => ike_flood(&args[1..]),
        Some("ike-responder") => ike_responder(&args[1..]),
        Some("gen") => gen::gen_main(&args[1..]),
        Some("sink") => gen::sink_main(&args[1..]),
        Some("rfc2544") => rfc2544::main(&args[1..]),
        Some("scale") => scale::cli(&args[1..]),
        Some("report") => report::cli(&args[1..]),
        None | Some("--help" | "-h") => {
            // The subcommands with their own usage text say it in full.
            let own = [scale::USAGE, report::USAGE].map(|u| u.replacen("usage: ", "       ", 1));
            outln!("{USAGE}\n{}", own.join("\n"));
            Ok(())
        }
        Some(other) => bail!("unknown benchmark {other:?}\n{USAGE}"),
    }
}

/// `espada-bench crypto`'s options and whether JSON was asked for; every
/// value is checked here, before anything is measured or printed.
fn parse_crypto(args: &[String]) -> Result<(Options, bool)> {
    let mut opts = Options {
        suites: crypto_bench::all_suite_names(),
        sizes: vec![
            SizeSpec::Fixed(64),
            SizeSpec::Fixed(512),
            SizeSpec::Fixed(1400),
            SizeSpec::Imix,
        ],
        batch: 32,
        duration: Duration::from_millis(1000),
        openssl_seconds: 1,
        openssl: true,
    };
    let mut json = false;
    let mut flags = Flags::new(args, format!("\n{USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--suites" => {
                let v = flags.value("--suites")?;
                opts.suites = if v == "all" {
                    crypto_bench::all_suite_names()
                } else {
                    split(&v)
                };
                if opts.suites.is_empty() {
                    bail!("--suites: give a list such as aes128-sha1,aes128gcm16, or all");
                }
                for s in &opts.suites {
                    crypto_bench::parse_suite(s)?;
                }
            }
            "--sizes" => {
                opts.sizes = split(&flags.value("--sizes")?)
                    .iter()
                    .map(|s| SizeSpec::parse(s))
                    .collect::<Result<_>>()?;
                if opts.sizes.is_empty() {
                    bail!("--sizes: give a list such as 64,512,1400,imix");
                }
            }
            "--batch" => opts.batch = flags.parsed("--batch", "a number of packets")?,
            "--duration" => opts.duration = flags.seconds("--duration", 0.01, 600.0)?,
            "--openssl-seconds" => {
                opts.openssl_seconds = flags.parsed("--openssl-seconds", "seconds")?
            }
            "--no-openssl" => opts.openssl = false,
            "--quick" => opts.duration = Duration::from_millis(100),
            "--format" => match flags.value("--format")?.as_str() {
                "json" => json = true,
                "text" => json = false,
                other => bail!("--format {other:?}: text or json"),
            },
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    if !(1..=crypto_bench::MAX_BATCH).contains(&opts.batch) {
        bail!(
            "--batch {}: give 1 to {} packets",
            opts.batch,
            crypto_bench::MAX_BATCH
        );
    }
    Ok((opts, json))
}

fn crypto(args: &[String]) -> Result<()> {
    let (opts, json) = parse_crypto(args)?;
    if !json {
        outln!(
            "ESP on one core, batch {} packets, {:.2} s per point; OpenSSL = `openssl speed -evp` limit 1/(1/cipher+1/mac) on this machine, same run",
            opts.batch,
            opts.duration.as_secs_f64()
        );
        outln!(
            "{:<14} {:<6} {:>5} {:>8} {:>8} {:>24} {:>9} {:>7}",
            "suite",
            "dir",
            "size",
            "Mpps",
            "Gbps",
            "batch p50/p99/p99.9 us",
            "OpenSSL",
            "ratio"
        );
    }
    let results = crypto_bench::run(&opts, |m| {
        if !json {
            print_row(m);
        } else {
            eprintln!("{} {} {}: {:.2} Gbps", m.suite, m.direction, m.size, m.gbps);
        }
    })?;
    if json {
        print_json("espada-bench crypto", &results)?;
    } else {
        print_targets(&results);
    }
    Ok(())
}

fn ike(args: &[String]) -> Result<()> {
    let mut opts = ike_bench::Options {
        groups: Vec::new(),
        duration: Duration::from_secs(5),
        held: 64,
        max_setups: None,
    };
    let mut json = false;
    let mut v2 = false;
    let mut groups: Option<Vec<String>> = None;
    let mut flags = Flags::new(args, format!("\n{USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--ikev2" => v2 = true,
            "--groups" => {
                let g = split(&flags.value("--groups")?);
                if g.is_empty() {
                    bail!("--groups: give a list such as 2,14 (IKEv1) or 14,19 (--ikev2)");
                }
                groups = Some(g);
            }
            // Per group.
            "--duration" => opts.duration = flags.seconds("--duration", 0.1, 600.0)?,
            "--held" => opts.held = flags.parsed("--held", "a number of setups")?,
            "--quick" => opts.duration = Duration::from_millis(500),
            "--format" => match flags.value("--format")?.as_str() {
                "json" => json = true,
                "text" => json = false,
                other => bail!("--format {other:?}: text or json"),
            },
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let groups = groups.unwrap_or_else(|| {
        let default: &[u16] = if v2 {
            &ikev2_bench::DEFAULT_GROUPS
        } else {
            &ike_bench::GROUPS
        };
        default.iter().map(u16::to_string).collect()
    });
    opts.groups = groups
        .iter()
        .map(|g| {
            if v2 {
                ikev2_bench::parse_group(g)
            } else {
                ike_bench::parse_group(g)
            }
        })
        .collect::<Result<_>>()?;
    if !(1..=ike_bench::MAX_HELD).contains(&opts.held) {
        bail!(
            "--held {}: give 1 to {} setups",
            opts.held,
            ike_bench::MAX_HELD
        );
    }
    let clock_ns = ike_bench::clock_read_ns();
    // Progress on stderr for runs long enough to wonder about.
    let long = opts.duration >= Duration::from_secs(2);
    let (exchange, suite, dh_what) = if v2 {
        (
            "IKEv2 IKE_SA_INIT + IKE_AUTH (first CHILD_SA)",
            ikev2_bench::SUITE,
            "IKE_SA_INIT",
        )
    } else {
        (
            "IKEv1 Main Mode + Quick Mode",
            ike_bench::SUITE,
            "Main Mode",
        )
    };
    if !json {
        outln!(
            "{exchange} setups on one core, responder side: its thread CPU time in handle_datagram/poll_timeout/poll_output, {:.2} s per group",
            opts.duration.as_secs_f64()
        );
        outln!(
            "{suite}; the responder forgets its SAs every {} setups",
            opts.held
        );
        outln!(
            "baseline: DH = one key generation + one shared secret in the group (what a responder must do per {dh_what}), same core, same run, interleaved; clock read {clock_ns:.0} ns"
        );
    }
    let report = |p: &ike_bench::Progress| {
        if long || json {
            eprintln!(
                "group {} round {}/{}: {} setups, {:.1} setups/s, {:.2}x DH",
                p.group, p.round, p.rounds, p.setups, p.setups_per_sec, p.ratio_to_dh
            );
        }
    };
    let results = if v2 {
        ikev2_bench::run(&opts, report)?
    } else {
        ike_bench::run(&opts, report)?
    };
    if json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            tool: &'static str,
            ike_version: u8,
            suite: &'static str,
            clock_read_ns: f64,
            results: &'a [ike_bench::Measurement],
        }
        let report = Report {
            tool: "espada-bench ike",
            ike_version: if v2 { 2 } else { 1 },
            suite,
            clock_read_ns: clock_ns,
            results: &results,
        };
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        // The table after the progress lines, so they do not split it.
        outln!(
            "{:<15} {:>7} {:>9} {:>20} {:>9} {:>13} {:>6} {:>15} {:>6} {:>7}",
            "group",
            "setups",
            "setups/s",
            "p50/p99/max ms",
            "DH ops/s",
            "DH op mean/p50",
            "ratio",
            "rounds min-max",
            "p50",
            "rest us"
        );
        for m in &results {
            print_ike_row(m);
        }
        outln!(
            "\nratio = setups/s ÷ DH ops/s: the share of the responder's CPU per setup that is its Diffie-Hellman work (1.00x = nothing else);\nrounds = the ratio's min-max over the interleaved engine/baseline rounds (count); p50 = median DH op ÷ median setup, the same ratio robust to a few disturbed samples;\nrest = median setup - median DH op: the responder's CPU per setup besides the DH (parsing, PRFs and key derivation, HMACs, encryption, bookkeeping, debug lines)"
        );
    }
    Ok(())
}

/// `espada-bench ike-flood`'s options, the spoofed prefix as given and
/// whether JSON was asked for.
fn parse_ike_flood(args: &[String]) -> Result<(ike_flood::FloodOptions, String, bool)> {
    let mut target = None;
    let mut local = None;
    let mut psk = None;
    let mut spoof = "198.18.128.0/17".to_string();
    let mut o = ike_flood::FloodOptions {
        target: std::net::Ipv4Addr::UNSPECIFIED,
        port: 500,
        local: std::net::Ipv4Addr::UNSPECIFIED,
        psk: String::new(),
        spoof_base: std::net::Ipv4Addr::UNSPECIFIED,
        spoof_len: 0,
        count: 200_000,
        duration: Duration::from_secs(10),
        rate: 20_000,
        setups: 5,
        baseline_setups: 3,
        group: control::ike::crypto::DhGroup::Modp2048,
        lead: Duration::from_secs(1),
        setup_timeout: Duration::from_secs(10),
    };
    let mut json = false;
    let mut flags = Flags::new(args, format!("\n{USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--target" => target = Some(flags.value("--target")?),
            "--local" => local = Some(flags.value("--local")?),
            "--psk" => psk = Some(flags.value("--psk")?),
            "--spoof-from" => spoof = flags.value("--spoof-from")?,
            "--count" => o.count = flags.parsed("--count", "a number of packets")?,
            "--duration" => o.duration = flags.seconds("--duration", 0.0, 600.0)?,
            "--rate" => o.rate = flags.parsed("--rate", "packets per second")?,
            "--setups" => o.setups = flags.parsed("--setups", "a number")?,
            "--baseline-setups" => {
                o.baseline_setups = flags.parsed("--baseline-setups", "a number")?
            }
            "--group" => o.group = ikev2_bench::parse_group(&flags.value("--group")?)?,
            "--port" => o.port = flags.parsed("--port", "a port")?,
            "--lead" => o.lead = flags.seconds("--lead", 0.0, 60.0)?,
            "--setup-timeout" => o.setup_timeout = flags.seconds("--setup-timeout", 0.0, 120.0)?,
            "--format" => match flags.value("--format")?.as_str() {
                "json" => json = true,
                "text" => json = false,
                other => bail!("--format {other:?}: text or json"),
            },
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    o.target = ike_flood::lab_addr("--target", &target.context("--target is required")?)?;
    o.local = ike_flood::lab_addr("--local", &local.context("--local is required")?)?;
    o.psk = psk.context("--psk is required")?;
    (o.spoof_base, o.spoof_len) = ike_flood::lab_spoof_prefix(&spoof)?;
    if o.setups > 1000 || o.baseline_setups > 1000 {
        bail!("--setups/--baseline-setups: 1000 at most");
    }
    if o.count == 0 || o.duration.is_zero() {
        bail!("--count and --duration must be above 0: the flood is what is measured");
    }
    if o.setup_timeout < Duration::from_secs(1) {
        bail!("--setup-timeout: 1 s at least");
    }
    if o.port == 0 {
        bail!(
            "--port 0: give the responder's IKE port, 1 to 65535 (500 unless it listens elsewhere)"
        );
    }
    Ok((o, spoof, json))
}

fn ike_flood(args: &[String]) -> Result<()> {
    let (o, spoof, json) = parse_ike_flood(args)?;
    let report = ike_flood::run_flood(&o, |line| eprintln!("ike-flood: {line}"))?;
    let f = &report.flood;
    let (base, flood): (Vec<_>, Vec<_>) = report.setups.iter().partition(|s| !s.under_flood);
    let lat = |v: &[&ike_flood::SetupResult]| {
        let mut ms: Vec<f64> = v.iter().filter(|s| s.ok).map(|s| s.ms).collect();
        ike_flood::latency(&mut ms)
    };
    let (lat_base, lat_flood) = (lat(&base), lat(&flood));
    let cookies = report.setups.iter().filter(|s| s.cookie).count();
    let rate = f.sent as f64 / f.seconds.max(1e-9);
    if json {
        #[derive(serde::Serialize)]
        struct Results<'a> {
            flood: &'a ike_flood::FloodCounters,
            spoofed_per_sec: f64,
            setups: &'a [ike_flood::SetupResult],
            latency_ms_baseline: Option<[f64; 4]>,
            latency_ms_under_flood: Option<[f64; 4]>,
            cookies_demanded_in_setups: usize,
        }
        #[derive(serde::Serialize)]
        struct Report<'a> {
            tool: &'static str,
            target: String,
            spoof_from: &'a str,
            group: u16,
            results: Results<'a>,
        }
        let r = Report {
            tool: "espada-bench ike-flood",
            target: format!("{}:{}", o.target, o.port),
            spoof_from: &spoof,
            group: o.group.id(),
            results: Results {
                flood: f,
                spoofed_per_sec: rate,
                setups: &report.setups,
                latency_ms_baseline: lat_base,
                latency_ms_under_flood: lat_flood,
                cookies_demanded_in_setups: cookies,
            },
        };
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    outln!(
        "IKEv2 IKE_SA_INIT flood at {}:{} from random addresses of {spoof}, group {}",
        o.target,
        o.port,
        o.group.id()
    );
    outln!(
        "spoofed IKE_SA_INITs sent: {} in {:.2} s = {:.0}/s ({} send errors; bounds: --count {} --duration {:.0} s{})",
        f.sent,
        f.seconds,
        rate,
        f.send_errors,
        o.count,
        o.duration.as_secs_f64(),
        if o.rate > 0 {
            format!(" --rate {}", o.rate)
        } else {
            String::new()
        }
    );
    let fmt = |l: Option<[f64; 4]>| {
        l.map_or("n/a".to_string(), |l| {
            format!("{:.1}/{:.1}/{:.1}/{:.1}", l[0], l[1], l[2], l[3])
        })
    };
    outln!(
        "{:<12} {:>9} {:>9} {:>26} {:>8} {:>13}",
        "setups",
        "attempted",
        "succeeded",
        "min/median/p95/max ms",
        "cookie",
        "retransmits"
    );
    for (name, v, l) in [
        ("no flood", &base, lat_base),
        ("under flood", &flood, lat_flood),
    ] {
        outln!(
            "{:<12} {:>9} {:>9} {:>26} {:>8} {:>13}",
            name,
            v.len(),
            v.iter().filter(|s| s.ok).count(),
            fmt(l),
            v.iter().filter(|s| s.cookie).count(),
            v.iter().map(|s| s.retransmits).sum::<u64>()
        );
    }
    if let (Some(b), Some(f)) = (lat_base, lat_flood) {
        outln!(
            "median setup latency under flood = {:.2}x the one without",
            f[1] / b[1]
        );
    }
    outln!(
        "COOKIE demanded by the responder in {cookies} of {} legitimate setups ({})",
        report.setups.len(),
        if cookies > 0 {
            "the initiator repeated IKE_SA_INIT with it"
        } else {
            "none seen"
        }
    );
    let s = &report.initiator_stats;
    outln!(
        "initiator: sent {}, received {}, retransmissions {}, cookie retries {}, IKE SAs established {}, CHILD_SAs {}",
        s.sent, s.received, s.retransmitted, s.cookie_retries, s.ike_established, s.child_established
    );
    if report.setups.iter().any(|s| !s.ok) {
        outln!("last initiator lines:\n  {}", report.last_logs.join("\n  "));
    }
    Ok(())
}

/// `espada-bench ike-responder`'s options, every value checked.
fn parse_ike_responder(args: &[String]) -> Result<ike_flood::ResponderOptions> {
    let mut listen = None;
    let mut psk = None;
    let mut o = ike_flood::ResponderOptions {
        listen: std::net::Ipv4Addr::UNSPECIFIED,
        port: 500,
        psk: String::new(),
        groups: Vec::new(),
        cookie_threshold: control::ikev2::policy::DEFAULT_COOKIE_THRESHOLD,
        duration: Duration::from_secs(300),
        quiet: false,
    };
    let mut groups = "14,19".to_string();
    let mut flags = Flags::new(args, format!("\n{USAGE}"));
    while let Some(a) = flags.next_flag() {
        match a {
            "--listen" => listen = Some(flags.value("--listen")?),
            "--psk" => psk = Some(flags.value("--psk")?),
            "--groups" => groups = flags.value("--groups")?,
            "--cookie-threshold" => {
                o.cookie_threshold =
                    flags.parsed("--cookie-threshold", "a number of half-open SAs")?
            }
            "--port" => o.port = flags.parsed("--port", "a port")?,
            "--duration" => o.duration = flags.seconds("--duration", 0.0, 3600.0)?,
            "--quiet" => o.quiet = true,
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    o.listen = ike_flood::lab_addr("--listen", &listen.context("--listen is required")?)?;
    o.psk = psk.context("--psk is required")?;
    o.groups = split(&groups)
        .iter()
        .map(|g| ikev2_bench::parse_group(g))
        .collect::<Result<_>>()?;
    if o.groups.is_empty() {
        bail!("--groups: give at least one group");
    }
    if o.port == 0 {
        bail!("--port 0: give the UDP port to listen on, 1 to 65535 (500 unless another IKE daemon holds it)");
    }
    if o.duration.is_zero() {
        bail!("--duration 0: give how long to answer, above 0 up to 3600 seconds");
    }
    Ok(o)
}

fn ike_responder(args: &[String]) -> Result<()> {
    let o = parse_ike_responder(args)?;
    let stats = ike_flood::run_responder(&o)?;
    for (name, v) in stats.lines() {
        outln!("{name:<34} {v}");
    }
    Ok(())
}

fn print_ike_row(m: &ike_bench::Measurement) {
    let lat = format!(
        "{:.3}/{:.3}/{:.3}",
        m.setup_p50_us / 1000.0,
        m.setup_p99_us / 1000.0,
        m.setup_max_us / 1000.0
    );
    let dh = format!(
        "{:.3}/{:.3}",
        m.dh_op_mean_us / 1000.0,
        m.dh_op_p50_us / 1000.0
    );
    let rounds = format!(
        "{:.2}-{:.2} ({})",
        m.round_ratio_min, m.round_ratio_max, m.rounds
    );
    outln!(
        "{:<15} {:>7} {:>9.1} {:>20} {:>9.1} {:>13} {:>5.2}x {:>15} {:>5.2}x {:>7.0}",
        format!("{} ({})", m.group, m.group_name),
        m.setups,
        m.setups_per_sec,
        lat,
        m.dh_ops_per_sec,
        dh,
        m.ratio_to_dh,
        rounds,
        m.p50_ratio_to_dh,
        m.setup_p50_us - m.dh_op_p50_us
    );
}

fn split(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn print_row(m: &Measurement) {
    let lat = format!(
        "{:.1}/{:.1}/{:.1}",
        m.batch_p50_us, m.batch_p99_us, m.batch_p999_us
    );
    let base = m
        .openssl_gbps
        .map_or("n/a".to_string(), |g| format!("{g:.2}"));
    let ratio = m
        .ratio_to_openssl
        .map_or("n/a".to_string(), |r| format!("{r:.2}x"));
    outln!(
        "{:<14} {:<6} {:>5} {:>8.3} {:>8.2} {:>24} {:>9} {:>7}",
        m.suite,
        m.direction,
        m.size,
        m.mpps,
        m.gbps,
        lat,
        base,
        ratio
    );
}

/// The issue's targets, stated against what was just measured.
fn print_targets(results: &[Measurement]) {
    let targets = [
        ("aes128-sha1", "encap", 1.0),
        ("aes128-sha1", "decap", 0.9),
        ("aes128gcm16", "encap", 0.8),
    ];
    let mut header = false;
    for (suite, dir, want) in targets {
        let Some(m) = results
            .iter()
            .find(|m| m.suite == suite && m.direction == dir && m.size == "1400")
        else {
            continue;
        };
        let Some(r) = m.ratio_to_openssl else {
            continue;
        };
        if !header {
            outln!("\ntargets at 1400 bytes:");
            header = true;
        }
        let verdict = if r >= want { "met" } else { "NOT met" };
        outln!("  {suite:<12} {dir}: {r:.2}x OpenSSL (target {want:.1}x) {verdict}");
    }
}

/// Prints a tool's results as every tool's JSON is shaped: an object
/// naming the tool, its figures under `results` (rfc2544 and ike add
/// their parameters beside them).
pub fn print_json<T: serde::Serialize + ?Sized>(tool: &str, results: &T) -> Result<()> {
    #[derive(serde::Serialize)]
    struct Tagged<'a, T: ?Sized> {
        tool: &'a str,
        results: &'a T,
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&Tagged { tool, results })?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    /// The error of a parse that should fail, as main prints it.
    fn err<T>(r: Result<T>) -> String {
        r.err().map(|e| format!("{e:#}")).unwrap_or_default()
    }

    #[test]
    fn a_closed_pipe_ends_the_tool_by_sigpipe_not_an_abort() {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: a valid array of two fds for pipe(); the child below
        // calls only async-signal-safe functions (signal, write, _exit)
        // before it ends, as a fork of a threaded process must.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                restore_default_sigpipe();
                libc::write(fds[1], b"x".as_ptr().cast(), 1);
                // Reached only if the write did not end the process.
                libc::_exit(3);
            }
            libc::close(fds[1]);
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(
                libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGPIPE,
                "status {status:#x}: the writer must end by SIGPIPE"
            );
        }
    }

    #[test]
    fn a_full_stdout_is_a_one_line_error() {
        let mut full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let e = write_line(&mut full, format_args!("usage: ...")).unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("writing to stdout: No space left on device")
                && e.ends_with("send the output to a writable file or pipe")
                && !e.contains('\n'),
            "{e}"
        );
        let mut buf = Vec::new();
        write_line(&mut buf, format_args!("{} {}", "a", 1)).unwrap();
        assert_eq!(buf, b"a 1\n");
    }

    #[test]
    fn crypto_options_are_checked_when_parsed() {
        let (o, json) = parse_crypto(&args(
            "--suites aes128-sha1 --sizes 64,imix --batch 8 --format json",
        ))
        .unwrap();
        assert_eq!(
            (o.suites.len(), o.sizes.len(), o.batch, json),
            (1, 2, 8, true)
        );
        for (bad, says) in [
            ("--batch 0", "--batch 0: give 1 to 256 packets"),
            ("--batch 257", "--batch 257: give 1 to 256 packets"),
            (
                "--suites ,",
                "--suites: give a list such as aes128-sha1,aes128gcm16, or all",
            ),
            ("--sizes ,", "--sizes: give a list such as 64,512,1400,imix"),
            (
                "--sizes 20",
                "size \"20\": give an inner IP packet size from 28 to 1500 bytes, or imix",
            ),
        ] {
            assert_eq!(err(parse_crypto(&args(bad))), says, "{bad}");
        }
    }

    #[test]
    fn ike_responder_and_flood_refuse_port_and_duration_zero() {
        let base = "--listen 198.18.1.1 --psk k";
        let o = parse_ike_responder(&args(&format!("{base} --port 4500 --duration 2"))).unwrap();
        assert_eq!((o.port, o.duration), (4500, Duration::from_secs(2)));
        assert_eq!(
            err(parse_ike_responder(&args(&format!("{base} --port 0")))),
            "--port 0: give the UDP port to listen on, 1 to 65535 (500 unless another IKE daemon holds it)"
        );
        assert_eq!(
            err(parse_ike_responder(&args(&format!("{base} --duration 0")))),
            "--duration 0: give how long to answer, above 0 up to 3600 seconds"
        );
        let flood = "--target 198.18.1.1 --local 198.18.0.1 --psk k";
        let (o, spoof, json) = parse_ike_flood(&args(flood)).unwrap();
        assert_eq!(
            (o.port, spoof.as_str(), json),
            (500, "198.18.128.0/17", false)
        );
        assert!(err(parse_ike_flood(&args(&format!("{flood} --port 0")))).starts_with("--port 0: "));
    }
}
