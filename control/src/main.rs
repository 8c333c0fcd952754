//! `espada`: the control process and its CLI.
//!
//!   espada run -c FILE [--run-dir DIR] [--dataplane-args "..."]
//!   espada config check FILE
//!   espada show crypto ipsec sa [--run-dir DIR]
//!   espada --version

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{bail, Context, Result};
use control::config::{self, resolver::KernelResolver, ConfigOnly};
use control::daemon::{self, DaemonOptions};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const USAGE: &str = "\
usage: espada run -c FILE [--run-dir DIR] [--dataplane-args \"--cores 0,1 --idle busy\"]
       espada config check FILE
       espada show crypto ipsec sa [--run-dir DIR]
       espada show version [--run-dir DIR]
       espada --version

  --run-dir DIR   where the sockets live (default /run/espada): one per gateway";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run_cli(&args) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("espada: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Pulls `--run-dir DIR` out of the arguments.
fn run_dir(args: &mut Vec<String>) -> Result<PathBuf> {
    match args.iter().position(|a| a == "--run-dir") {
        Some(i) => {
            let dir = args
                .get(i + 1)
                .context("--run-dir needs a directory")?
                .clone();
            args.drain(i..i + 2);
            Ok(PathBuf::from(dir))
        }
        None => Ok(PathBuf::from("/run/espada")),
    }
}

fn run_cli(args: &[String]) -> Result<i32> {
    let mut args = args.to_vec();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => {
            println!("espada {}", control::VERSION);
            Ok(0)
        }
        Some("config") if args.get(1).map(String::as_str) == Some("check") => {
            let file = args.get(2).context("usage: espada config check FILE")?;
            config_check(&PathBuf::from(file))
        }
        Some("show") => {
            let dir = run_dir(&mut args)?;
            let out = control::cliserver::ask(&dir.join("espada.sock"), &args.join(" "))?;
            print!("{out}");
            Ok(if out.starts_with('%') { 1 } else { 0 })
        }
        Some("run") => {
            let dir = run_dir(&mut args)?;
            let mut file = None;
            let mut dp_args = Vec::new();
            let mut once = false;
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "-c" | "--config" => {
                        file = Some(PathBuf::from(it.next().context("-c needs a file")?))
                    }
                    "--dataplane-args" => dp_args.extend(
                        it.next()
                            .context("--dataplane-args needs a value")?
                            .split_whitespace()
                            .map(str::to_string),
                    ),
                    "--once" => once = true,
                    other => bail!("unknown option {other:?}\n\n{USAGE}"),
                }
            }
            let file = file.with_context(|| format!("-c FILE is required\n\n{USAGE}"))?;
            run(
                &file,
                DaemonOptions {
                    run_dir: dir,
                    dataplane_args: dp_args,
                    once,
                },
            )?;
            Ok(0)
        }
        _ => {
            eprintln!("{USAGE}");
            Ok(2)
        }
    }
}

fn config_check(file: &Path) -> Result<i32> {
    // Checked against the config's own addresses: the machine running the
    // check need not be the gateway.
    match config::load(file, &ConfigOnly) {
        Ok(l) => {
            for w in &l.warnings {
                println!("{}: {w}", file.display());
            }
            let sas: usize = l
                .deployment
                .entries
                .iter()
                .map(|e| e.inbound.len() + e.outbound.len())
                .sum();
            println!(
                "{}: OK, {} crypto map entries, {sas} SAs, {} ACL rules, {} NAT rules",
                file.display(),
                l.deployment.entries.len(),
                l.acl_rules,
                l.deployment.nat.len()
            );
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

fn run(file: &Path, o: DaemonOptions) -> Result<()> {
    let loaded = config::load(file, &KernelResolver)?;
    for w in &loaded.warnings {
        println!("{}: {w}", file.display());
    }
    let d = loaded.deployment;
    daemon::prepare_run_dir(&o.run_dir)?;
    let mut dp = daemon::ensure_dataplane(&o, &d)?;
    let report = daemon::install(&mut dp, &d).context("installing the config in the dataplane")?;
    println!(
        "espada: {}: {} SA(s) added, {} already installed; {} SPD rule(s), {} NAT rule(s) loaded",
        file.display(),
        report.added,
        report.already,
        d.spd.len(),
        d.nat.len()
    );
    if o.once {
        return Ok(());
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    daemon::serve(&o, &d, dp, &STOP)?;
    println!("espada: stopped; the dataplane keeps forwarding with the installed SAs");
    Ok(())
}
