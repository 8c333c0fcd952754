//! `espada-bench`: Espada's benchmarks. Every figure is printed next to a
//! baseline measured in the same run (here OpenSSL's single-core speed), as
//! a ratio, because absolute numbers on a shared 2-core machine mean little.
//!
//! ```text
//! espada-bench crypto [--suites LIST|all] [--sizes 64,512,1400,imix]
//!                     [--batch 32] [--duration SECS] [--openssl-seconds N]
//!                     [--no-openssl] [--quick] [--format text|json]
//! ```

mod crypto_bench;
mod openssl;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use mimalloc::MiMalloc;

use crypto_bench::{Measurement, Options, SizeSpec};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str = "usage: espada-bench crypto [--suites aes128-sha1,aes128gcm16,...|all] \
[--sizes 64,512,1400,imix] [--batch 32] [--duration SECS] [--openssl-seconds N] \
[--no-openssl] [--quick] [--format text|json]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("crypto") => crypto(&args[1..]),
        Some("--help") | Some("-h") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown benchmark {other:?}\n{USAGE}"),
    }
}

fn crypto(args: &[String]) -> Result<()> {
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
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
                .cloned()
        };
        match a.as_str() {
            "--suites" => {
                let v = value("--suites")?;
                opts.suites = if v == "all" {
                    crypto_bench::all_suite_names()
                } else {
                    split(&v)
                };
                for s in &opts.suites {
                    crypto_bench::parse_suite(s)?;
                }
            }
            "--sizes" => {
                opts.sizes = split(&value("--sizes")?)
                    .iter()
                    .map(|s| SizeSpec::parse(s))
                    .collect::<Result<_>>()?;
            }
            "--batch" => {
                opts.batch = value("--batch")?
                    .parse()
                    .context("--batch takes a number of packets")?
            }
            "--duration" => {
                let secs: f64 = value("--duration")?
                    .parse()
                    .context("--duration takes seconds")?;
                if !(0.01..=600.0).contains(&secs) {
                    bail!("--duration {secs}: give 0.01 to 600 seconds");
                }
                opts.duration = Duration::from_secs_f64(secs);
            }
            "--openssl-seconds" => {
                opts.openssl_seconds = value("--openssl-seconds")?
                    .parse()
                    .context("--openssl-seconds takes seconds")?
            }
            "--no-openssl" => opts.openssl = false,
            "--quick" => opts.duration = Duration::from_millis(100),
            "--format" => match value("--format")?.as_str() {
                "json" => json = true,
                "text" => json = false,
                other => bail!("--format {other:?}: text or json"),
            },
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    if !json {
        println!(
            "ESP on one core, batch {} packets, {:.2} s per point; OpenSSL = `openssl speed -evp` limit 1/(1/cipher+1/mac) on this machine, same run",
            opts.batch,
            opts.duration.as_secs_f64()
        );
        println!(
            "{:<14} {:<6} {:>5} {:>8} {:>8} {:>24} {:>9} {:>7}",
            "suite", "dir", "size", "Mpps", "Gbps", "batch p50/p99/p99.9 us", "OpenSSL", "ratio"
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
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_targets(&results);
    }
    Ok(())
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
    println!(
        "{:<14} {:<6} {:>5} {:>8.3} {:>8.2} {:>24} {:>9} {:>7}",
        m.suite, m.direction, m.size, m.mpps, m.gbps, lat, base, ratio
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
            println!("\ntargets at 1400 bytes:");
            header = true;
        }
        let verdict = if r >= want { "met" } else { "NOT met" };
        println!("  {suite:<12} {dir}: {r:.2}x OpenSSL (target {want:.1}x) {verdict}");
    }
}
