//! `espada run`: start (or find) the dataplane, install what the config
//! compiled to ([`Compiled`]: SAs, SPD and NAT rules), then serve `show`
//! commands and log the dataplane's events until stopped. The dataplane is
//! a separate process in its own session: stopping or restarting `espada`
//! leaves installed SAs forwarding, and a restarted `espada` installs only
//! what is missing (re-adding an SA would reset its sequence number and
//! replay window).

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use dataplane::api::{Direction, EspMode, Event, Request, SaCounts, SaParams};
use dataplane::counters::DropReason;
use dataplane::spd::{IpPrefix, PortRange, TrafficSelector};

use crate::addrwatch::AddrWatch;
use crate::cliserver::CliListener;
use crate::config::Compiled;
use crate::dpclient::{DataplaneClient, DpError};
use crate::ikedriver::IkeDriver;
use crate::show::{self, EspSaView, Ident, IpsecSaView};

/// How `espada run` finds or starts the dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Connects to a running dataplane, or starts one for the config's
/// interfaces ([`Compiled::inside`], [`Compiled::outside`]) and waits for
/// its socket.
pub fn ensure_dataplane(o: &DaemonOptions, c: &Compiled) -> Result<DataplaneClient> {
    let sock = o.dataplane_socket();
    if let Ok(c) = DataplaneClient::connect(&sock) {
        println!(
            "espada: using the running dataplane ({}) at {}",
            c.dataplane_version,
            sock.display()
        );
        return Ok(c);
    }
    let Some(outside) = &c.outside else {
        bail!("no interface carries a crypto map: nothing for the dataplane to protect");
    };
    if c.inside.is_empty() {
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
        .arg(c.inside.join(","))
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

/// Installs the config's SAs that the dataplane lacks, then its SPD and
/// NAT rules (each replaced whole).
pub fn install(dp: &mut DataplaneClient, c: &Compiled) -> Result<InstallReport, DpError> {
    let present: HashSet<(u32, bool)> = dp
        .counters(None)?
        .iter()
        .map(|c| (c.spi, c.direction == Direction::Inbound))
        .collect();
    let mut report = InstallReport::default();
    for sa in &c.sas {
        if present.contains(&(sa.spi, sa.direction == Direction::Inbound)) {
            report.already += 1;
            continue;
        }
        dp.expect_ack("AddSa", Request::AddSa(Box::new(sa.clone())))?;
        report.added += 1;
    }
    dp.load_spd(&c.spd)?;
    dp.load_nat(&c.nat)?;
    Ok(report)
}

/// One SA pair as `show crypto ipsec sa` prints it: a manual entry's,
/// or one IKE negotiated.
pub struct PairView<'a> {
    pub interface: &'a str,
    pub map: &'a str,
    pub local: IpAddr,
    pub proxy: TrafficSelector,
    pub peer: IpAddr,
    pub peer_port: u16,
    /// Inbound then outbound, where present.
    pub sas: Vec<&'a SaParams>,
    /// Seconds since IKE installed the pair (`None` for manual SAs, whose
    /// age the control process does not know).
    pub age_secs: Option<u64>,
}

/// The pairs of the manual entries, then IKE's.
pub fn pair_views<'a>(c: &'a Compiled, ike: Option<&'a IkeDriver>) -> Vec<PairView<'a>> {
    let mut v: Vec<PairView<'a>> = c
        .entries
        .iter()
        .map(|e| PairView {
            interface: &e.interface,
            map: &e.map,
            local: e.local,
            proxy: e.proxy,
            peer: e.peer,
            peer_port: 500,
            sas: [
                (e.inbound_spi, Direction::Inbound),
                (e.outbound_spi, Direction::Outbound),
            ]
            .iter()
            .filter_map(|&(spi, dir)| c.sas.iter().find(|sa| sa.spi == spi && sa.direction == dir))
            .collect(),
            age_secs: None,
        })
        .collect();
    let outside = c.outside.as_deref().unwrap_or("");
    for (tag, proxy, inb, outb, age) in ike.into_iter().flat_map(IkeDriver::pairs) {
        let (local, peer) = match outb.mode {
            EspMode::Tunnel { local, remote } => (local, remote),
            EspMode::Transport => (proxy.src.addr(), proxy.dst.addr()),
        };
        let map = c.map_names.get(tag.map as usize).map_or("", String::as_str);
        // A VTI's pairs belong to its tunnel interface, as IOS shows them
        // (`interface: Tunnel23`, `Crypto map tag: Tunnel23-head-0`).
        let interface = map
            .strip_suffix("-head-0")
            .filter(|_| tag.seq == crate::config::compile::vti::VTI_SEQ)
            .unwrap_or(outside);
        v.push(PairView {
            interface,
            map,
            local,
            proxy: *proxy,
            peer,
            peer_port: outb.udp_encap.map_or(500, |u| u.dst_port),
            sas: vec![inb, outb],
            age_secs: Some(age),
        });
    }
    v
}

/// The dataplane's counters by SA, indexed once per `show` so that each
/// of a hub's thousands of SAs is found without scanning the others.
struct CountersBySa<'a>(HashMap<(u32, Direction), &'a SaCounts>);

impl<'a> CountersBySa<'a> {
    fn new(counters: &'a [SaCounts]) -> CountersBySa<'a> {
        CountersBySa(counters.iter().map(|c| ((c.spi, c.direction), c)).collect())
    }

    fn get(&self, spi: u32, direction: Direction) -> Option<&'a SaCounts> {
        self.0.get(&(spi, direction)).copied()
    }
}

/// Renders `show crypto ipsec sa` from the pairs and live counters; `mtu`
/// gives an interface's MTU (the path MTU IOS prints).
pub fn show_crypto_ipsec_sa(
    pairs: &[PairView<'_>],
    counters: &[SaCounts],
    mtu: &dyn Fn(&str) -> u16,
) -> String {
    let by_sa = CountersBySa::new(counters);
    let find = |spi: u32, dir: Direction| by_sa.get(spi, dir);
    let mut views = Vec::new();
    for (i, e) in pairs.iter().enumerate() {
        let mut v = IpsecSaView {
            interface: e.interface.to_string(),
            map_tag: e.map.to_string(),
            local_addr: e.local,
            local_ident: ident(e.proxy.src, e.proxy.src_ports, e.proxy.proto),
            remote_ident: ident(e.proxy.dst, e.proxy.dst_ports, e.proxy.proto),
            peer: e.peer,
            peer_port: e.peer_port,
            encaps: 0,
            encrypt: 0,
            digest: 0,
            decaps: 0,
            decrypt: 0,
            verify: 0,
            send_errors: 0,
            recv_errors: 0,
            path_mtu: mtu(e.interface),
            ip_mtu: mtu(e.interface),
            inbound: Vec::new(),
            outbound: Vec::new(),
            drops: Vec::new(),
        };
        let mut drops = dataplane::api::DropCounts::default();
        for (k, sa) in e.sas.iter().enumerate() {
            let conn_id = 2000 + (i as u32) * 10 + k as u32;
            let view = EspSaView {
                spi: sa.spi,
                enc: sa.enc,
                auth: sa.auth,
                tunnel: matches!(sa.mode, EspMode::Tunnel { .. }),
                conn_id,
                remaining_kb: sa.lifetime.hard_kilobytes.map(|kb| {
                    kb.saturating_sub(find(sa.spi, sa.direction).map_or(0, |c| c.bytes / 1024))
                }),
                remaining_secs: sa
                    .lifetime
                    .hard_seconds
                    .map(|s| s.saturating_sub(e.age_secs.unwrap_or(0))),
                replay_detection: sa.replay_window > 0,
            };
            if let Some(c) = find(sa.spi, sa.direction) {
                if c.path_mtu != 0 {
                    // A router on the way to the peer said so (ICMP).
                    v.path_mtu = v.path_mtu.min(c.path_mtu);
                }
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

/// Renders `show crypto engine connections active`: each established
/// ISAKMP SA and IKEv2 SA, then each ESP SA with the packets it encrypted
/// (outbound) or decrypted (inbound); the ESP SAs' ids are `show crypto
/// ipsec sa`'s conn ids.
pub fn show_crypto_engine_connections(
    pairs: &[PairView<'_>],
    counters: &[SaCounts],
    isakmp: &[show::IsakmpSaView],
    ikev2: &[crate::ikev2::Ikev2SaView],
) -> String {
    let mut rows: Vec<show::EngineConnView> = isakmp
        .iter()
        .filter(|sa| sa.status == "ACTIVE")
        .map(|sa| show::EngineConnView {
            id: sa.conn_id,
            interface: None,
            addr: None,
            algorithm: show::ike_engine_algorithm(&sa.encr, &sa.hash),
            encrypt: 0,
            decrypt: 0,
        })
        .collect();
    rows.extend(
        ikev2
            .iter()
            .filter(|sa| sa.status == "READY")
            .map(|sa| show::EngineConnView {
                id: sa.tunnel_id,
                interface: None,
                addr: None,
                algorithm: show::ikev2_engine_algorithm(sa.encr, sa.keysize, sa.hash),
                encrypt: 0,
                decrypt: 0,
            }),
    );
    let by_sa = CountersBySa::new(counters);
    for (i, e) in pairs.iter().enumerate() {
        for (k, sa) in e.sas.iter().enumerate() {
            let c = by_sa.get(sa.spi, sa.direction);
            rows.push(show::EngineConnView {
                id: 2000 + (i as u32) * 10 + k as u32,
                interface: Some(e.interface.to_string()),
                addr: Some(e.local),
                algorithm: show::esp_engine_algorithm(sa.enc, sa.auth),
                encrypt: match sa.direction {
                    Direction::Outbound => c.map_or(0, |c| c.encrypt),
                    Direction::Inbound => 0,
                },
                decrypt: match sa.direction {
                    Direction::Inbound => c.map_or(0, |c| c.decrypt),
                    Direction::Outbound => 0,
                },
            });
        }
    }
    show::crypto_engine_connections(&rows)
}

/// One side of an entry's proxy identities as IOS prints it: a port only
/// when the selector names exactly one.
fn ident(prefix: IpPrefix, ports: PortRange, proto: Option<u8>) -> Ident {
    Ident {
        prefix,
        proto: proto.unwrap_or(0),
        port: if ports.lo == ports.hi { ports.lo } else { 0 },
    }
}

/// An interface's MTU as the kernel reports it (1500 if unknown).
pub fn interface_mtu(name: &str) -> u16 {
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
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
    let _ = writeln!(
        out,
        "  TED probes: {} delivered to IKE, {} rate-limited, {} over one source's share",
        drops.get(DropReason::TedProbeDelivered),
        drops.get(DropReason::TedProbeRateLimited),
        drops.get(DropReason::TedProbeSourceLimited)
    );
    let _ = writeln!(
        out,
        "  ESP reassembly: {} fragments queued, {} datagrams given up, {} fragments of failed datagrams",
        drops.get(DropReason::FragmentQueued),
        drops.get(DropReason::ReassemblyTimeout),
        drops.get(DropReason::ReassemblyFailed)
    );
    let _ = writeln!(out, "Drops outside any SA:");
    let mut any = false;
    // Not losses: a probe handed to IKE, a fragment kept for its datagram.
    for (r, n) in drops.nonzero().filter(|(r, _)| r.is_loss()) {
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

/// An IOS-style log line for a dataplane event; `map_names` are
/// [`Compiled::map_names`], which name the crypto map of a policy tag.
pub fn event_log_line(e: &Event, map_names: &[String]) -> String {
    match e {
        Event::Acquire { tag, flow } => format!(
            "%CRYPTO-5-ACQUIRE: crypto map {} {}: no SA for {} -> {} (first packet dropped)",
            map_names
                .get(tag.map as usize)
                .cloned()
                .unwrap_or_else(|| format!("#{}", tag.map)),
            tag.seq,
            flow.src,
            flow.dst
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
        // Logged only; the IKE driver answers it (TED, seed 004).
        Event::TedProbe {
            from,
            original_dst,
            data,
        } => format!(
            "%CRYPTO-6-TED_PROBE: peer discovery probe from {from} for {original_dst} ({} bytes)",
            data.len()
        ),
    }
}

/// Answers one CLI command.
pub fn answer(
    cmd: &str,
    c: &Compiled,
    dp: &mut DataplaneClient,
    ike: Option<&IkeDriver>,
) -> String {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    match words.as_slice() {
        ["show", "crypto", "ipsec", "sa"] => match dp.counters(None) {
            Ok(counters) => show_crypto_ipsec_sa(&pair_views(c, ike), &counters, &interface_mtu),
            Err(e) => format!("% dataplane unreachable: {e}\n"),
        },
        ["show", "crypto", "engine", "connections"]
        | ["show", "crypto", "engine", "connections", "active"] => match dp.counters(None) {
            Ok(counters) => show_crypto_engine_connections(
                &pair_views(c, ike),
                &counters,
                &ike.map_or_else(Vec::new, |i| i.isakmp_sas(Instant::now())),
                &ike.map_or_else(Vec::new, |i| i.ikev2_sas(Instant::now())),
            ),
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
        ["show", "crypto", "map"] => show::crypto_map(&crypto_map_views(c, ike)),
        ["show", "crypto", "session"] | ["show", "crypto", "session", "detail"] => {
            match dp.counters(None) {
                Ok(counters) => show::crypto_session(
                    &session_views(c, ike, &counters),
                    words.len() == 4,
                ),
                Err(e) => format!("% dataplane unreachable: {e}\n"),
            }
        }
        [] => String::new(),
        _ => format!(
            "% Invalid input: {cmd:?}\n% supported: show crypto ipsec sa, show crypto isakmp sa [detail], \
             show crypto isakmp stats, show crypto session [detail], show crypto map, \
             show crypto engine connections active, show dataplane, \
             show crypto ikev2 sa [detailed], show crypto ikev2 session [detailed], \
             show crypto ikev2 stats, show ip nat statistics, show version, clear crypto sa, \
             clear crypto isakmp, clear crypto ikev2 sa, debug crypto isakmp, debug crypto ikev2, \
             debug crypto ipsec, undebug all\n"
        ),
    }
}

/// The `ipsec-isakmp` entries for `show crypto map`.
fn crypto_map_views(c: &Compiled, ike: Option<&IkeDriver>) -> Vec<show::CryptoMapView> {
    let pairs: Vec<_> = ike.into_iter().flat_map(IkeDriver::pair_infos).collect();
    c.ikev1
        .maps
        .iter()
        .chain(&c.ikev2.maps)
        .map(|e| show::CryptoMapView {
            map: e.map.clone(),
            seq: e.seq,
            dynamic: e.dynamic.clone(),
            discover: e.discover,
            peers: e.peers.clone(),
            current_peer: pairs
                .iter()
                .find(|p| p.tag == e.tag)
                .map(|p| p.peer)
                .or(e.peers.first().copied()),
            selectors: e
                .selectors
                .iter()
                .map(|t| (t.src.to_string(), t.dst.to_string(), t.proto))
                .collect(),
            lifetime_seconds: e.lifetime.seconds,
            lifetime_kilobytes: e.lifetime.kilobytes,
            pfs: e.pfs.map(|g| g.id()),
            transforms: e
                .transforms
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        format!("{} {}", t.enc.ios_name(), t.auth.ios_name()),
                    )
                })
                .collect(),
            interface: c.outside.clone().unwrap_or_default(),
        })
        .collect()
}

/// One session per IKE peer (ISAKMP SA and negotiated flows), for
/// `show crypto session`.
fn session_views(
    c: &Compiled,
    ike: Option<&IkeDriver>,
    counters: &[SaCounts],
) -> Vec<show::SessionView> {
    let Some(ike) = ike else {
        return Vec::new();
    };
    let now = Instant::now();
    let interface = c.outside.clone().unwrap_or_default();
    let sas = ike.isakmp_sas(now);
    let v2 = ike.ikev2_sas(now);
    // Everything by peer once: a hub has thousands.
    let by_sa = CountersBySa::new(counters);
    let endpoints = ike.endpoints_by_peer();
    let mut isakmp_of: HashMap<IpAddr, &show::IsakmpSaView> = HashMap::new();
    for s in sas.iter().filter(|s| s.status == "ACTIVE") {
        isakmp_of.entry(s.remote).or_insert(s);
    }
    let mut ikev2_of: HashMap<IpAddr, &crate::ikev2::Ikev2SaView> = HashMap::new();
    for s in v2.iter().filter(|s| s.status == "READY") {
        ikev2_of.entry(s.remote.ip()).or_insert(s);
    }
    let mut pairs_of: HashMap<IpAddr, Vec<&crate::ikev1::PairInfo>> = HashMap::new();
    for p in ike.pair_infos() {
        pairs_of.entry(p.peer).or_default().push(p);
    }
    let mut peers: Vec<IpAddr> = sas.iter().map(|s| s.remote).collect();
    peers.extend(v2.iter().map(|s| s.remote.ip()));
    peers.extend(pairs_of.keys().copied());
    peers.sort();
    peers.dedup();
    peers
        .into_iter()
        .map(|peer| {
            let sa = isakmp_of.get(&peer).copied();
            let (local, local_port, peer_port) =
                endpoints
                    .get(&peer)
                    .copied()
                    .unwrap_or((sa.map_or(peer, |s| s.local), 500, 500));
            let flows = pairs_of
                .get(&peer)
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .map(|p| {
                    let count = |spi: u32, d: Direction| by_sa.get(spi, d);
                    let out = count(p.outbound_spi, Direction::Outbound);
                    let inb = count(p.inbound_spi, Direction::Inbound);
                    (
                        format!(
                            "permit {} {} {}",
                            p.proxy.proto.map_or("ip".to_string(), |x| x.to_string()),
                            p.proxy.src,
                            p.proxy.dst
                        ),
                        usize::from(out.is_some()) + usize::from(inb.is_some()),
                        out.map_or(0, |x| x.encaps),
                        inb.map_or(0, |x| x.decaps),
                    )
                })
                .collect();
            let v2sa = ikev2_of.get(&peer).copied();
            let version = if sa.is_none() && v2sa.is_some() {
                "IKEv2"
            } else {
                "IKEv1"
            };
            show::SessionView {
                interface: interface.clone(),
                peer,
                peer_port,
                local,
                local_port,
                version,
                ike: sa.map(|_| "Active").or(v2sa.map(|_| "READY")),
                ike_conn_id: sa.map(|s| s.conn_id).or(v2sa.map(|s| s.tunnel_id)),
                flows,
            }
        })
        .collect()
}

/// Waits until one of `fds` is readable or `timeout` passes. EINTR (a
/// stop signal) counts as a timeout: the caller checks its stop flag.
fn wait_readable(fds: &[RawFd], timeout: Duration) {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `pfds` is a valid array of `pfds.len()` pollfd structs that
    // lives across the call.
    unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
}

/// How long the loop sleeps at most with nothing to do: the bound on how
/// late a stop signal is noticed.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// The kernel's addresses changed: the config compiled again against
/// them (`recompile`) replaces `c` when it compiles, its NAT rules go to
/// the dataplane if the PAT address moved, and IKE moves to the new local
/// addresses, dropping the SAs bound to the ones that went
/// ([`IkeDriver::addresses_changed`]).
fn follow_addresses(
    now: Instant,
    c: &mut Compiled,
    recompile: &mut dyn FnMut() -> Option<Compiled>,
    dp: &mut DataplaneClient,
    ike: Option<&mut IkeDriver>,
) {
    let Ok(k) = crate::config::KernelInterfaces::snapshot() else {
        return;
    };
    let present = k.addresses();
    let locals = |c: &Compiled| -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = c
            .ikev1
            .maps
            .iter()
            .chain(&c.ikev2.maps)
            .map(|m| m.local)
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let before = locals(c);
    let new = recompile();
    let lost = before.iter().any(|a| !present.contains(a));
    let moved = new.as_ref().is_some_and(|n| locals(n) != before);
    let nat = new.as_ref().is_some_and(|n| n.nat != c.nat);
    if !(lost || moved || nat) {
        return;
    }
    if let Some(n) = new.as_ref().filter(|_| nat) {
        match dp.load_nat(&n.nat) {
            Ok(()) => println!("espada: NAT rules reloaded for the new outside address"),
            Err(e) => eprintln!("espada: reloading NAT rules: {e}"),
        }
    }
    if let Some(ike) = ike {
        ike.addresses_changed(now, &present, new.as_ref(), dp);
    }
    if let Some(n) = new {
        if moved {
            let show: Vec<String> = locals(&n).iter().map(ToString::to_string).collect();
            println!(
                "espada: outside address changed: IKE now on {}",
                show.join(", ")
            );
        }
        *c = n;
    }
}

/// Serves the CLI, logs events and runs IKE until `stop` is set. A lost
/// dataplane connection is retried (the dataplane may be restarting).
/// When the kernel's addresses change (the outside interface's DHCP
/// lease), `recompile` compiles the config against them and the daemon
/// follows ([`follow_addresses`]).
pub fn serve(
    o: &DaemonOptions,
    c: &Compiled,
    recompile: &mut dyn FnMut() -> Option<Compiled>,
    mut dp: DataplaneClient,
    stop: &AtomicBool,
) -> Result<()> {
    let mut compiled = c.clone();
    let c = &mut compiled;
    let mut watch = match AddrWatch::subscribe() {
        Ok(w) => Some(w),
        Err(e) => {
            eprintln!("espada: not following address changes (rtnetlink: {e})");
            None
        }
    };
    let cli = CliListener::bind(&o.cli_socket())
        .with_context(|| format!("CLI socket {}", o.cli_socket().display()))?;
    println!("espada: CLI at {}", o.cli_socket().display());
    let mut ike = IkeDriver::start(c).context("starting IKE")?;
    if let Some(ike) = &ike {
        println!(
            "espada: IKE on {} ({} IKEv1 and {} IKEv2 entries)",
            ike.describe_sockets(),
            c.ikev1.maps.len(),
            c.ikev2.maps.len()
        );
    }
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let wait = ike
            .as_ref()
            .and_then(IkeDriver::next_timer)
            .map_or(IDLE_WAIT, |t| {
                t.saturating_duration_since(now).min(IDLE_WAIT)
            });
        // Events that came in while the last pass waited for replies are
        // queued already: the socket will not wake us for them.
        let wait = if dp.has_events() {
            Duration::ZERO
        } else {
            wait
        };
        let mut fds = vec![cli.as_raw_fd(), dp.as_raw_fd()];
        if let Some(ike) = &ike {
            fds.extend(ike.fds());
        }
        if let Some(w) = &watch {
            fds.push(w.fd());
        }
        wait_readable(&fds, wait);
        let now = Instant::now();
        cli.serve_pending(|cmd| {
            let words: Vec<&str> = cmd.split_whitespace().collect();
            if let Some(answer) = ike.as_mut().and_then(|i| i.command(now, &words)) {
                return answer;
            }
            answer(cmd, c, &mut dp, ike.as_ref())
        });
        match dp.poll_events() {
            Ok(()) => {}
            Err(e) => {
                eprintln!("espada: lost the dataplane ({e}); reconnecting");
                std::thread::sleep(Duration::from_secs(1));
                match DataplaneClient::connect(&o.dataplane_socket()) {
                    Ok(mut client) => {
                        match install(&mut client, c) {
                            Ok(r) => println!("espada: reinstalled {} SA(s)", r.added),
                            Err(e) => eprintln!("espada: reinstall failed: {e}"),
                        }
                        if let Err(e) = crate::tunnelif::install(&mut client, &c.tunnels) {
                            eprintln!("espada: tunnel interfaces: {e}");
                        }
                        if let Some(ike) = &mut ike {
                            match ike.reinstall(&mut client) {
                                Ok(n) => println!("espada: reinstalled {n} negotiated SA(s)"),
                                Err(e) => {
                                    eprintln!("espada: reinstalling negotiated SAs failed: {e}")
                                }
                            }
                        }
                        dp = client;
                    }
                    Err(e) => eprintln!("espada: {e}"),
                }
                continue;
            }
        }
        if watch.as_mut().is_some_and(AddrWatch::changed) {
            follow_addresses(now, c, recompile, &mut dp, ike.as_mut());
        }
        for e in dp.take_events() {
            // A TED probe is IKE's to report (debug crypto isakmp): a
            // line per probe would let any prober fill the log.
            if !matches!(e, Event::TedProbe { .. }) {
                println!("{}", event_log_line(&e, &c.map_names));
            }
            if let Some(ike) = &mut ike {
                ike.dataplane_event(now, &e);
            }
        }
        if let Some(ike) = &mut ike {
            ike.run(now, &mut dp);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, ConfigAddresses};
    use dataplane::api::DropCounts;

    /// gw_a of the lab, compiled against its own addresses.
    fn lab_a() -> Compiled {
        let cfg = config::parse(include_str!("../../deploy/configs/lab-gw-a.conf")).unwrap();
        config::compile(&cfg, &ConfigAddresses(&cfg)).unwrap()
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
            peer_port: 0,
            path_mtu: 0,
            drops,
        };
        // Entry VPN 10 of gw_a: inbound SPI 4097, outbound SPI 4096.
        let live = [
            counts(4097, Direction::Inbound, 7, drops),
            counts(4096, Direction::Outbound, 9, DropCounts::default()),
        ];
        let c = lab_a();
        let s = show_crypto_ipsec_sa(&pair_views(&c, None), &live, &|_| 1400);
        for line in [
            "interface: a-wan",
            "    Crypto map tag: VPN, local addr 198.18.0.1",
            "   current_peer 198.18.1.1 port 500",
            "    #pkts encaps: 9, #pkts encrypt: 9, #pkts digest: 9",
            "    #pkts decaps: 7, #pkts decrypt: 7, #pkts verify: 7",
            "    #send errors 0, #recv errors 4",
            "    #drops integrity-failed: 4",
            "     current outbound spi: 0x00001000(4096)",
            "     transform: esp-aes esp-sha-hmac ,",
            "   local  ident (addr/mask/prot/port): (198.19.1.0/255.255.255.0/0/0)",
            "   remote ident (addr/mask/prot/port): (198.19.2.0/255.255.255.0/0/0)",
            "   local  ident (addr/mask/prot/port): (fd00:a::/64/0/0)",
            "     path mtu 1400, ip mtu 1400, ip mtu idb a-wan",
        ] {
            assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
        }
    }

    #[test]
    fn engine_connections_list_each_sa_with_its_algorithm_and_packets() {
        let c = lab_a();
        let counts = |spi, direction, encrypt, decrypt| SaCounts {
            spi,
            direction,
            encaps: encrypt,
            encrypt,
            digest: encrypt,
            decaps: decrypt,
            decrypt,
            verify: decrypt,
            bytes: 0,
            last_used: 0,
            peer_port: 0,
            path_mtu: 0,
            drops: DropCounts::default(),
        };
        // Entry VPN 10 of gw_a (inbound SPI 4097, outbound 4096) after
        // 9 pings out and their 9 answers in; the IPv6 entry idle.
        let live = [
            counts(4097, Direction::Inbound, 0, 9),
            counts(4096, Direction::Outbound, 9, 0),
        ];
        let isakmp = |conn_id, status| show::IsakmpSaView {
            conn_id,
            dst: "198.18.1.1".parse().unwrap(),
            src: "198.18.0.1".parse().unwrap(),
            local: "198.18.0.1".parse().unwrap(),
            remote: "198.18.1.1".parse().unwrap(),
            state: "QM_IDLE",
            status,
            encr: "aes:256".into(),
            hash: "sha".into(),
            group: Some(14),
            lifetime_remaining: None,
            dpd: false,
            nat_t: false,
        };
        let ikev2 = |tunnel_id, status| crate::ikev2::Ikev2SaView {
            tunnel_id,
            local: "198.18.0.1:500".parse().unwrap(),
            remote: "198.18.2.1:500".parse().unwrap(),
            status,
            encr: "AES-CBC",
            keysize: Some(128),
            hash: "SHA96",
            dh_group: Some(2),
            lifetime: 86400,
            active_secs: 10,
            local_spi: [1; 8],
            remote_spi: [2; 8],
            local_next_msg_id: 2,
            remote_next_msg_id: 0,
            dpd: (0, 0),
            nat_t: false,
            initiator: true,
            local_id: "198.18.0.1".into(),
            remote_id: "198.18.2.1".into(),
        };
        let s = show_crypto_engine_connections(
            &pair_views(&c, None),
            &live,
            &[isakmp(1001, "ACTIVE"), isakmp(1002, "")],
            &[ikev2(1, "READY"), ikev2(2, "IN-NEG")],
        );
        // Each row's columns, one space apart.
        let rows: Vec<String> = s
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            rows[0], "1 <none> <none> set HMAC_SHA+AES_128_CB 0 0",
            "{s}"
        );
        assert_eq!(
            rows[1], "1001 <none> <none> set HMAC_SHA+AES_256_CB 0 0",
            "{s}"
        );
        assert_eq!(
            rows[2], "2000 a-wan 198.18.0.1 set HMAC_SHA+AES_128_CB 0 9",
            "{s}"
        );
        assert_eq!(
            rows[3], "2001 a-wan 198.18.0.1 set HMAC_SHA+AES_128_CB 9 0",
            "{s}"
        );
        // The IKE SAs still negotiating are not active; every other row
        // is an ESP SA of the config's entries.
        assert!(!s.contains("1002"), "{s}");
        assert!(!rows.iter().any(|r| r.starts_with("2 ")), "{s}");
        let esp = c.sas.len();
        assert_eq!(rows.len(), 2 + esp, "{s}");
        assert!(s.lines().nth(1).unwrap().split_whitespace().eq([
            "ID",
            "Interface",
            "IP-Address",
            "State",
            "Algorithm",
            "Encrypt",
            "Decrypt"
        ]));
    }

    #[test]
    fn events_become_ios_style_log_lines() {
        let names = lab_a().map_names;
        let l = event_log_line(
            &Event::IntegrityFailure {
                spi: 0x1001,
                count: 3,
            },
            &names,
        );
        assert!(l.starts_with("%CRYPTO-4-RECVD_PKT_MAC_ERR"), "{l}");
        assert!(l.contains("0x00001001"), "{l}");
        let flow = dataplane::spd::FlowKey {
            src: "198.19.1.10".parse().unwrap(),
            dst: "198.19.2.10".parse().unwrap(),
            proto: 1,
            src_port: 0,
            dst_port: 0,
        };
        let tag = dataplane::spd::PolicyTag { map: 0, seq: 10 };
        let l = event_log_line(&Event::Acquire { tag, flow }, &names);
        assert!(
            l.contains("crypto map VPN 10: no SA for 198.19.1.10 -> 198.19.2.10"),
            "{l}"
        );
    }

    #[test]
    fn ted_probes_are_logged_and_counted_apart_from_drops() {
        let l = event_log_line(
            &Event::TedProbe {
                from: "198.19.1.10:500".parse().unwrap(),
                original_dst: "198.19.2.10".parse().unwrap(),
                data: vec![0; 84],
            },
            &[],
        );
        assert_eq!(
            l,
            "%CRYPTO-6-TED_PROBE: peer discovery probe from 198.19.1.10:500 for 198.19.2.10 (84 bytes)"
        );
        let mut drops = dataplane::api::DropCounts::default();
        drops.set(DropReason::TedProbeDelivered, 4);
        drops.set(DropReason::TedProbeRateLimited, 2);
        drops.set(DropReason::TedProbeSourceLimited, 3);
        let s = show_dataplane(&[], &drops);
        assert!(
            s.contains(
                "  TED probes: 4 delivered to IKE, 2 rate-limited, 3 over one source's share\n"
            ),
            "{s}"
        );
        assert!(s.contains("ted-probe-source-limited"), "{s}");
        assert!(s.contains("ted-probe-rate-limited"), "{s}");
        assert!(!s.contains("ted-probes-delivered"), "{s}");
        drops.set(DropReason::FragmentQueued, 6);
        drops.set(DropReason::ReassemblyTimeout, 1);
        let s = show_dataplane(&[], &drops);
        assert!(
            s.contains("  ESP reassembly: 6 fragments queued, 1 datagrams given up, 0 fragments of failed datagrams\n"),
            "{s}"
        );
        assert!(s.contains("esp-reassembly-timeout"), "{s}");
        assert!(!s.contains("esp-fragment-queued"), "{s}");
    }

    #[test]
    fn the_dataplane_runs_on_the_interfaces_the_config_compiles_to() {
        let c = lab_a();
        assert_eq!(c.outside.as_deref(), Some("a-wan"));
        assert_eq!(c.inside, ["a-lan"]);
    }
}
