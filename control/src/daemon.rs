//! `espada run`: start (or find) the dataplane, install what the config
//! asks for, then serve `show` commands and log the dataplane's events
//! until stopped. The dataplane is a separate process in its own session:
//! stopping or restarting `espada` leaves installed SAs forwarding, and a
//! restarted `espada` installs only what is missing (re-adding an SA would
//! reset its sequence number and replay window).

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dataplane::api::{Direction, EspMode, Event, NatRule, Request, SaCounts, SaParams};
use dataplane::counters::DropReason;
use dataplane::spd::SpdRule;

use crate::cliserver::CliListener;
use crate::dpclient::{DataplaneClient, DpError};
use crate::show::{self, EspSaView, Ident, IpsecSaView};

/// One `crypto map NAME SEQ` entry as installed: what `show` prints.
#[derive(Debug, Clone)]
pub struct MapEntry {
    pub interface: String,
    pub map_name: String,
    pub seq: u32,
    pub local_addr: IpAddr,
    pub peer: IpAddr,
    pub local_ident: Ident,
    pub remote_ident: Ident,
    pub inbound: Vec<SaParams>,
    pub outbound: Vec<SaParams>,
    pub path_mtu: u16,
}

/// Everything a config asks the dataplane for.
#[derive(Debug, Clone, Default)]
pub struct Deployment {
    pub entries: Vec<MapEntry>,
    pub spd: Vec<SpdRule>,
    pub nat: Vec<NatRule>,
    /// Interfaces the dataplane forwards on, by role.
    pub inside: Vec<String>,
    pub outside: Vec<String>,
}

impl Deployment {
    fn sas(&self) -> impl Iterator<Item = &SaParams> {
        self.entries
            .iter()
            .flat_map(|e| e.inbound.iter().chain(e.outbound.iter()))
    }
}

/// How `espada run` finds or starts the dataplane.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Holds `dataplane.sock`, `espada.sock` and `dataplane.log`.
    pub run_dir: PathBuf,
    /// Extra `espada-dataplane run` flags (`--cores 0,1 --idle busy`).
    pub dataplane_args: Vec<String>,
    /// Install, print what was done, and exit (the dataplane keeps running).
    pub once: bool,
}

impl DaemonOptions {
    pub fn dataplane_socket(&self) -> PathBuf {
        self.run_dir.join("dataplane.sock")
    }
    pub fn cli_socket(&self) -> PathBuf {
        self.run_dir.join("espada.sock")
    }
}

/// The run directory, created 0700 if missing.
pub fn prepare_run_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", dir.display()))?;
    Ok(())
}

/// Connects to a running dataplane, or starts one for this deployment's
/// interfaces and waits for its socket.
pub fn ensure_dataplane(o: &DaemonOptions, d: &Deployment) -> Result<DataplaneClient> {
    let sock = o.dataplane_socket();
    if let Ok(c) = DataplaneClient::connect(&sock) {
        println!(
            "espada: using the running dataplane ({}) at {}",
            c.dataplane_version,
            sock.display()
        );
        return Ok(c);
    }
    let Some(outside) = d.outside.first() else {
        bail!("no interface carries a crypto map: nothing for the dataplane to protect");
    };
    if d.inside.is_empty() {
        bail!("no inside interface: configure an interface without a crypto map (the LAN side)");
    }
    let exe = std::env::current_exe().context("locating the espada binary")?;
    let bin = exe.with_file_name("espada-dataplane");
    let log_path = o.run_dir.join("dataplane.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("run")
        .arg("--inside")
        .arg(d.inside.join(","))
        .arg("--outside")
        .arg(outside)
        .arg("--socket")
        .arg(&sock)
        .args(&o.dataplane_args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the dataplane from
    // our session so it outlives us (and our terminal's signals).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    // Scripts stop the dataplane by this PID, never by name.
    let _ = std::fs::write(o.run_dir.join("dataplane.pid"), format!("{}\n", child.id()));
    println!(
        "espada: started {} (pid {}), log {}",
        bin.display(),
        child.id(),
        log_path.display()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "the dataplane exited ({status}) before its socket came up:\n{}",
                tail.join("\n")
            );
        }
        match DataplaneClient::connect(&sock) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).context("the dataplane did not open its socket within 15 s")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// What [`install`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct InstallReport {
    pub added: usize,
    pub already: usize,
}

/// Installs the deployment's SAs that the dataplane lacks, then its SPD
/// and NAT rules (each replaced whole).
pub fn install(dp: &mut DataplaneClient, d: &Deployment) -> Result<InstallReport, DpError> {
    let present: HashSet<(u32, bool)> = dp
        .counters(None)?
        .iter()
        .map(|c| (c.spi, c.direction == Direction::Inbound))
        .collect();
    let mut report = InstallReport::default();
    for sa in d.sas() {
        if present.contains(&(sa.spi, sa.direction == Direction::Inbound)) {
            report.already += 1;
            continue;
        }
        dp.expect_ack("AddSa", Request::AddSa(Box::new(sa.clone())))?;
        report.added += 1;
    }
    dp.expect_ack(
        "LoadSpd",
        Request::LoadSpd {
            rules: d.spd.clone(),
        },
    )?;
    dp.expect_ack(
        "LoadNat",
        Request::LoadNat {
            rules: d.nat.clone(),
        },
    )?;
    Ok(report)
}

/// Renders `show crypto ipsec sa` from the deployment and live counters.
pub fn show_crypto_ipsec_sa(d: &Deployment, counters: &[SaCounts]) -> String {
    let find =
        |spi: u32, dir: Direction| counters.iter().find(|c| c.spi == spi && c.direction == dir);
    let mut views = Vec::new();
    for (i, e) in d.entries.iter().enumerate() {
        let mut v = IpsecSaView {
            interface: e.interface.clone(),
            map_tag: e.map_name.clone(),
            local_addr: e.local_addr,
            local_ident: e.local_ident,
            remote_ident: e.remote_ident,
            peer: e.peer,
            peer_port: 500,
            encaps: 0,
            encrypt: 0,
            digest: 0,
            decaps: 0,
            decrypt: 0,
            verify: 0,
            send_errors: 0,
            recv_errors: 0,
            path_mtu: e.path_mtu,
            inbound: Vec::new(),
            outbound: Vec::new(),
            drops: Vec::new(),
        };
        let mut drops = dataplane::api::DropCounts::default();
        for (k, sa) in e.inbound.iter().chain(e.outbound.iter()).enumerate() {
            let conn_id = 2000 + (i as u32) * 10 + k as u32;
            let view = EspSaView {
                spi: sa.spi,
                enc: sa.enc,
                auth: sa.auth,
                tunnel: matches!(sa.mode, EspMode::Tunnel { .. }),
                conn_id,
                remaining_kb: sa.lifetime.hard_kilobytes,
                remaining_secs: sa.lifetime.hard_seconds,
                replay_detection: sa.replay_window > 0,
            };
            if let Some(c) = find(sa.spi, sa.direction) {
                v.encaps += c.encaps;
                v.encrypt += c.encrypt;
                v.digest += c.digest;
                v.decaps += c.decaps;
                v.decrypt += c.decrypt;
                v.verify += c.verify;
                for r in DropReason::ALL {
                    drops.set(r, drops.get(r) + c.drops.get(r));
                }
            }
            match sa.direction {
                Direction::Inbound => v.inbound.push(view),
                Direction::Outbound => v.outbound.push(view),
            }
        }
        v.recv_errors = drops.total();
        v.drops = drops.nonzero().map(|(r, n)| (r.name(), n)).collect();
        views.push(v);
    }
    show::crypto_ipsec_sa(&views)
}

/// `show dataplane`: SA totals and every drop reason that belongs to no
/// SA (no route, no neighbour, malformed, policy discard, ...).
pub fn show_dataplane(sas: &[SaCounts], drops: &dataplane::api::DropCounts) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let sum = |f: fn(&SaCounts) -> u64| sas.iter().map(f).sum::<u64>();
    let _ = writeln!(out, "Dataplane: {} SA(s) installed", sas.len());
    let _ = writeln!(
        out,
        "  #pkts encaps: {}, #pkts decaps: {}",
        sum(|c| c.encaps),
        sum(|c| c.decaps)
    );
    let _ = writeln!(out, "Drops outside any SA:");
    let mut any = false;
    for (r, n) in drops.nonzero() {
        any = true;
        let _ = writeln!(out, "  {:<20} {n}", r.name());
    }
    if !any {
        let _ = writeln!(out, "  (none)");
    }
    out
}

/// `show ip nat statistics`, in IOS's words where IOS has them: every
/// translation is dynamic and extended (PAT); "Misses" are packets that
/// found no entry and made one.
pub fn show_ip_nat_statistics(s: &dataplane::nat::NatStats) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let n = s.active_translations;
    let _ = writeln!(
        out,
        "Total active translations: {n} (0 static, {n} dynamic; {n} extended)"
    );
    let _ = writeln!(
        out,
        "Hits: {}  Misses: {}",
        s.hits(),
        s.translations_created
    );
    let _ = writeln!(out, "Expired translations: {}", s.expired_translations);
    let _ = writeln!(
        out,
        "Translated packets: {} inside to outside, {} outside to inside",
        s.hits_outbound, s.hits_inbound
    );
    let _ = writeln!(
        out,
        "Not translated: {} exempt (ACL deny), {} matched no rule",
        s.exempted, s.no_rule
    );
    let _ = writeln!(out, "Dropped: {}", s.total_drops());
    for r in dataplane::nat::NatDrop::ALL {
        let d = s.dropped(r);
        if d > 0 {
            let _ = writeln!(out, "  {:<24} {d}", r.name());
        }
    }
    out
}

/// An IOS-style log line for a dataplane event.
pub fn event_log_line(e: &Event) -> String {
    match e {
        Event::Acquire { tag, flow } => format!(
            "%CRYPTO-5-ACQUIRE: crypto map {}/{}: no SA for {} -> {} (first packet dropped)",
            tag.map, tag.seq, flow.src, flow.dst
        ),
        Event::SoftExpire { spi, direction } => format!(
            "%CRYPTO-5-SA_SOFT_EXPIRE: {direction:?} SA spi 0x{spi:08X} passed its soft lifetime"
        ),
        Event::HardExpire { spi, direction } => format!(
            "%CRYPTO-5-SA_HARD_EXPIRE: {direction:?} SA spi 0x{spi:08X} expired and was removed"
        ),
        Event::ReplayFailure { spi, count } => format!(
            "%CRYPTO-4-PKT_REPLAY_ERR: decrypt: replay check failed, spi 0x{spi:08X}, {count} packet(s)"
        ),
        Event::IntegrityFailure { spi, count } => format!(
            "%CRYPTO-4-RECVD_PKT_MAC_ERR: decrypt: mac verify failed, spi 0x{spi:08X}, {count} packet(s)"
        ),
        Event::Idle { spi, last_used } => {
            format!("%CRYPTO-6-SA_IDLE: SA spi 0x{spi:08X} idle since t={last_used}s")
        }
    }
}

/// Answers one CLI command.
pub fn answer(cmd: &str, d: &Deployment, dp: &mut DataplaneClient) -> String {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.as_slice() {
        ["show", "crypto", "ipsec", "sa"] => match dp.counters(None) {
            Ok(c) => show_crypto_ipsec_sa(d, &c),
            Err(e) => format!("% dataplane unreachable: {e}\n"),
        },
        ["show", "dataplane"] | ["show", "dataplane", "counters"] => match dp.all_counters(None) {
            Ok((sas, drops)) => show_dataplane(&sas, &drops),
            Err(e) => format!("% dataplane unreachable: {e}\n"),
        },
        ["show", "ip", "nat", "statistics"] => match dp.nat_stats() {
            Ok(stats) => show_ip_nat_statistics(&stats),
            Err(e) => format!("% dataplane unreachable: {e}\n"),
        },
        ["show", "version"] => format!("espada {}\n{}\n", crate::VERSION, dp.dataplane_version),
        [] => String::new(),
        _ => format!(
            "% Invalid input: {cmd:?}\n% supported: show crypto ipsec sa, show dataplane, show ip nat statistics, show version\n"
        ),
    }
}

/// Serves the CLI and logs events until `stop` is set. A lost dataplane
/// connection is retried (the dataplane may be restarting).
pub fn serve(
    o: &DaemonOptions,
    d: &Deployment,
    mut dp: DataplaneClient,
    stop: &AtomicBool,
) -> Result<()> {
    let cli = CliListener::bind(&o.cli_socket())
        .with_context(|| format!("CLI socket {}", o.cli_socket().display()))?;
    println!("espada: CLI at {}", o.cli_socket().display());
    while !stop.load(Ordering::Relaxed) {
        cli.serve_pending(|cmd| answer(cmd, d, &mut dp));
        match dp.wait_event(Duration::from_millis(100)) {
            Ok(Some(e)) => println!("{}", event_log_line(&e)),
            Ok(None) => {}
            Err(e) => {
                eprintln!("espada: lost the dataplane ({e}); reconnecting");
                std::thread::sleep(Duration::from_secs(1));
                match DataplaneClient::connect(&o.dataplane_socket()) {
                    Ok(mut c) => {
                        match install(&mut c, d) {
                            Ok(r) => println!("espada: reinstalled {} SA(s)", r.added),
                            Err(e) => eprintln!("espada: reinstall failed: {e}"),
                        }
                        dp = c;
                    }
                    Err(e) => eprintln!("espada: {e}"),
                }
            }
        }
        for e in dp.take_events() {
            println!("{}", event_log_line(&e));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::api::{DropCounts, Lifetime, SaKeys};
    use dataplane::crypto::{AuthAlg, EncAlg};

    fn sa(spi: u32, direction: Direction) -> SaParams {
        SaParams {
            spi,
            direction,
            enc: EncAlg::AesCbc128,
            auth: AuthAlg::HmacSha1_96,
            keys: SaKeys {
                enc: vec![1; 16],
                auth: vec![2; 20],
            },
            mode: EspMode::Tunnel {
                local: "198.18.0.1".parse().unwrap(),
                remote: "198.18.1.1".parse().unwrap(),
            },
            udp_encap: None,
            esn: false,
            replay_window: 64,
            lifetime: Lifetime::default(),
        }
    }

    fn deployment() -> Deployment {
        let ident = |p: &str| Ident {
            prefix: p.parse().unwrap(),
            proto: 0,
            port: 0,
        };
        Deployment {
            entries: vec![MapEntry {
                interface: "a-wan".into(),
                map_name: "VPN".into(),
                seq: 10,
                local_addr: "198.18.0.1".parse().unwrap(),
                peer: "198.18.1.1".parse().unwrap(),
                local_ident: ident("198.19.1.0/24"),
                remote_ident: ident("198.19.2.0/24"),
                inbound: vec![sa(0x1001, Direction::Inbound)],
                outbound: vec![sa(0x2001, Direction::Outbound)],
                path_mtu: 1500,
            }],
            inside: vec!["a-lan".into()],
            outside: vec!["a-wan".into()],
            ..Deployment::default()
        }
    }

    #[test]
    fn show_sums_the_live_counters_of_each_map_entrys_sas() {
        let mut drops = DropCounts::default();
        drops.set(DropReason::IntegrityFailed, 4);
        let counts = |spi, direction, n, drops| SaCounts {
            spi,
            direction,
            encaps: if direction == Direction::Outbound {
                n
            } else {
                0
            },
            encrypt: if direction == Direction::Outbound {
                n
            } else {
                0
            },
            digest: if direction == Direction::Outbound {
                n
            } else {
                0
            },
            decaps: if direction == Direction::Inbound {
                n
            } else {
                0
            },
            decrypt: if direction == Direction::Inbound {
                n
            } else {
                0
            },
            verify: if direction == Direction::Inbound {
                n
            } else {
                0
            },
            bytes: 0,
            last_used: 0,
            drops,
        };
        let live = [
            counts(0x1001, Direction::Inbound, 7, drops),
            counts(0x2001, Direction::Outbound, 9, DropCounts::default()),
        ];
        let s = show_crypto_ipsec_sa(&deployment(), &live);
        for line in [
            "interface: a-wan",
            "    Crypto map tag: VPN, local addr 198.18.0.1",
            "   current_peer 198.18.1.1 port 500",
            "    #pkts encaps: 9, #pkts encrypt: 9, #pkts digest: 9",
            "    #pkts decaps: 7, #pkts decrypt: 7, #pkts verify: 7",
            "    #send errors 0, #recv errors 4",
            "    #drops integrity-failed: 4",
            "     current outbound spi: 0x00002001(8193)",
            "     transform: esp-aes esp-sha-hmac ,",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
    }

    #[test]
    fn events_become_ios_style_log_lines() {
        let l = event_log_line(&Event::IntegrityFailure {
            spi: 0x1001,
            count: 3,
        });
        assert!(l.starts_with("%CRYPTO-4-RECVD_PKT_MAC_ERR"), "{l}");
        assert!(l.contains("0x00001001"), "{l}");
    }
}
