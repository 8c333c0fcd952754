//! `espada`: the control process and its CLI.
//!
//!   espada run -c FILE [--run-dir DIR] [--dataplane-args "..."] [--once]
//!   espada config check [--kernel] FILE
//!   espada show|clear|debug|undebug ... [--run-dir DIR]
//!   espada --version

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use control::cli::{self, Command, USAGE};
use control::daemon::{self, DaemonOptions};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

fn main() {
    let command = match cli::parse_args(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("espada: {e}");
            std::process::exit(2);
        }
    };
    match execute(command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("espada: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Runs one command; the exit code on success.
fn execute(command: Command) -> Result<i32> {
    match command {
        Command::Version => println!("espada {}", control::VERSION),
        Command::Help => println!("{USAGE}"),
        Command::ConfigCheck { file, kernel } => {
            let ok = cli::config_check(
                &file,
                kernel,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )?;
            return Ok(if ok { 0 } else { 1 });
        }
        Command::Exec { line, run_dir } => {
            let socket = run_dir.join("espada.sock");
            let out = control::cliserver::ask(&socket, &line.join(" "))?;
            print!("{out}");
            return Ok(if out.starts_with('%') { 1 } else { 0 });
        }
        Command::Run { config, daemon } => return run(&config, daemon),
    }
    Ok(0)
}

/// `espada run`: compile against this machine's interfaces, start or find
/// the dataplane, install, then serve until SIGINT or SIGTERM.
fn run(file: &Path, o: DaemonOptions) -> Result<i32> {
    let Some((cfg, c)) = cli::load_config_and_compile(file, true, &mut std::io::stderr())? else {
        return Ok(1);
    };
    for w in &c.warnings {
        println!("{}: {w}", file.display());
    }
    daemon::prepare_run_dir(&o.run_dir)?;
    let mut dp = daemon::ensure_dataplane(&o, &c)?;
    let report = daemon::install(&mut dp, &c).context("installing the config in the dataplane")?;
    println!(
        "espada: {}: {} SA(s) added, {} already installed; {} SPD rule(s), {} NAT rule(s) loaded",
        file.display(),
        report.added,
        report.already,
        c.spd.len(),
        c.nat.len()
    );
    control::tunnelif::install(&mut dp, &c.tunnels).context("setting up the tunnel interfaces")?;
    for t in &c.tunnels {
        println!("espada: interface {} is up (mtu {})", t.name, t.mtu);
    }
    if o.once {
        return Ok(0);
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    // The outside address may change (DHCP): the daemon compiles the
    // same config again against the kernel's addresses then.
    let mut recompile = || {
        let k = control::config::KernelInterfaces::snapshot().ok()?;
        control::config::compile(&cfg, &k).ok()
    };
    daemon::serve(&o, &c, &mut recompile, dp, &STOP)?;
    println!("espada: stopped; the dataplane keeps forwarding with the installed SAs");
    Ok(0)
}
