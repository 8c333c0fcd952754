//! The daemon's side of IKE: the sans-IO IKEv1 and IKEv2 engines wired to
//! their shared UDP sockets, the dataplane's events and the dataplane's SA
//! and SPD tables.
//!
//! - datagrams from [`IkeSockets`] go to the engine of their version (the
//!   ISAKMP header's major version: both share ports 500 and 4500, as on
//!   IOS); the dataplane's acquires and expiry events go to both (each
//!   knows only its own entries and SAs);
//! - what comes out is carried out here: datagrams sent, SA pairs
//!   installed, bound, deleted and followed to new NAT ports through the
//!   [`Installer`] (its module says what it guarantees);
//! - nothing the driver does per SA scans every other SA: a hub holds one
//!   pair per peer, thousands of them, and the once-a-second look at the
//!   inbound SAs' counters and the `show` commands are linear in their
//!   number (the engines' own scans: `docs/performance.md`);
//! - `debug crypto isakmp|ikev2` lines are printed only while the operator
//!   asked for them, as IOS does.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::time::Instant;

use dataplane::api::{
    ConnError, Direction, Event, Request, SaCounts, SaParams, MAX_INJECTED_ESP_LEN,
};
use dataplane::spd::{FlowKey, PolicyTag, TrafficSelector};

use crate::config::compile::Compiled;
use crate::config::compile::VTI_SEQ;
use crate::dpclient::{DataplaneClient, DpError};
use crate::ike::packet_log::ikev2_packet_lines;
use crate::ikesock::{IkeSockets, IKE_PORT, NAT_T_PORT};
use crate::ikev1::{self, Output, PairInfo};
use crate::ikev2;
use crate::installer::{InstallMode, Installer};
use crate::show;
use crate::spdbind::SpdBinder;

/// What the driver asks of an IKE engine, whatever its version.
trait Negotiator {
    fn acquire(&mut self, now: Instant, tag: PolicyTag, flow: FlowKey);
    fn sa_expired(&mut self, now: Instant, direction: Direction, spi: u32, hard: bool);
    fn poll_timeout(&self) -> Option<Instant>;
    fn handle_timeout(&mut self, now: Instant);
}

macro_rules! negotiator {
    ($engine:ty) => {
        impl Negotiator for $engine {
            fn acquire(&mut self, now: Instant, tag: PolicyTag, flow: FlowKey) {
                <$engine>::acquire(self, now, tag, flow)
            }
            fn sa_expired(&mut self, now: Instant, direction: Direction, spi: u32, hard: bool) {
                <$engine>::sa_expired(self, now, direction, spi, hard)
            }
            fn poll_timeout(&self) -> Option<Instant> {
                <$engine>::poll_timeout(self)
            }
            fn handle_timeout(&mut self, now: Instant) {
                <$engine>::handle_timeout(self, now)
            }
        }
    };
}
negotiator!(ikev1::Engine);
negotiator!(ikev2::Engine);

/// The IKE major version of a datagram (the ISAKMP header's high nibble
/// at octet 17), `None` when too short to say.
fn ike_major_version(m: &[u8]) -> Option<u8> {
    m.get(17).map(|v| v >> 4)
}

/// IKE in the daemon.
pub struct IkeDriver {
    v1: ikev1::Engine,
    v2: ikev2::Engine,
    socks: IkeSockets,
    installer: Installer,
    /// `debug crypto isakmp` (IKEv1) / `debug crypto ikev2` is on.
    pub debug_v1: bool,
    pub debug_v2: bool,
    /// Datagrams of neither version 1 nor 2.
    pub bad_version: u64,
    /// Failures carrying out the engine's outputs (send or dataplane
    /// errors), for `show crypto isakmp stats`-like reports.
    pub failures: u64,
    /// UDP-encapsulated ESP that reached the NAT-T sockets (it came in IP
    /// fragments, reassembled by the kernel) and went to the dataplane,
    /// and what did not (over [`ESP_RATE`], longer than a dataplane
    /// frame holds, or refused).
    pub esp_injected: u64,
    pub esp_not_injected: u64,
    /// Such ESP for an SPI that names no inbound SA of ours: junk (a
    /// flood of fragments to port 4500) or an SA already gone, dropped
    /// without a dataplane request.
    pub esp_no_sa: u64,
    esp_budget: EspBudget,
    /// Per inbound SA, what the dataplane reported at the last look: its
    /// packet count (ESP from a peer is news for on-demand DPD) and peer
    /// port (only a change is news: a report from before a move the IKE
    /// engine made must not move the SA back).
    inbound_seen: std::collections::HashMap<u32, (u64, u16)>,
    next_esp_check: Option<Instant>,
    /// IKEv2 VTI entries, brought up at start and kept up (IOS brings a
    /// tunnel interface's SA up without waiting for traffic).
    vtis: Vec<VtiKeeper>,
    next_vti_check: Option<Instant>,
    /// The local addresses of the IKEv1 `discover` entries: where
    /// intercepted TED probes are answered from.
    ted_locals: Vec<IpAddr>,
    /// The local addresses of the config as last compiled.
    locals: BTreeSet<IpAddr>,
    timers: TimerGate,
}

/// ESP datagrams from the NAT-T sockets handed to the dataplane per
/// second at most, and at once: each is a request the loop waits for, so
/// a flood of fragmented datagrams to port 4500 must not keep IKE
/// waiting (the daemon's IKE output goes out before them).
const ESP_RATE: u32 = 20_000;
const ESP_BURST: u32 = 1_000;

/// The SPI of the ESP a NAT-T socket received (the socket passes only
/// datagrams of at least 8 bytes with a non-zero first word as ESP).
fn esp_spi(esp: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(esp.get(..4)?.try_into().ok()?))
}

/// A token bucket of [`ESP_RATE`] and [`ESP_BURST`].
#[derive(Debug)]
struct EspBudget {
    tokens: u32,
    /// When `tokens` was last brought up to date.
    at: Option<Instant>,
}

impl Default for EspBudget {
    fn default() -> EspBudget {
        EspBudget {
            tokens: ESP_BURST,
            at: None,
        }
    }
}

impl EspBudget {
    /// Whether one more datagram may go at `now`.
    fn take(&mut self, now: Instant) -> bool {
        let at = *self.at.get_or_insert(now);
        let rate = u128::from(ESP_RATE);
        let earned = now.saturating_duration_since(at).as_micros() * rate / 1_000_000;
        if earned > 0 {
            let total = u128::from(self.tokens) + earned;
            if total >= u128::from(ESP_BURST) {
                self.tokens = ESP_BURST;
                self.at = Some(now);
            } else {
                // Below the burst, so it fits.
                self.tokens = u32::try_from(total).unwrap_or(ESP_BURST);
                let spent = u64::try_from(earned * 1_000_000 / rate).unwrap_or(u64::MAX);
                self.at = Some(at + std::time::Duration::from_micros(spent));
            }
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

/// How often the IKEv2 VTIs are looked at.
const VTI_CHECK: std::time::Duration = std::time::Duration::from_secs(1);
/// How long the side with the higher address lets a VTI stay down before
/// it initiates: both ends of a VTI want it up, and if both initiated at
/// once there would be two IKE SAs. The lower address goes first; the
/// higher one only steps in when the lower one does not.
const VTI_DEFER: std::time::Duration = std::time::Duration::from_secs(10);

/// How often, at most, the engines' timers are walked (see `TimerGate`).
pub const TIMER_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// When to walk the engines' timers. An engine finds its next deadline by
/// walking every SA, so a hub must not ask on every pass of the daemon's
/// loop (four walks of 10 000 SAs per received datagram): the walks are
/// at most one per [`TIMER_TICK`], which delays a deadline by at most
/// that (IKE's shortest timer is a one-second retransmission), and the
/// deadline found is kept until something arrives that may set a new one.
#[derive(Debug, Default)]
struct TimerGate {
    /// The last walk.
    walked_at: Option<Instant>,
    /// The engines' earliest deadline as that walk found it.
    due: Option<Instant>,
    /// A datagram, event or command arrived since: a timer may have been
    /// set that `due` does not know of.
    input: bool,
}

impl TimerGate {
    /// When the engines' timers must next be walked.
    fn next(&self, now: Instant) -> Option<Instant> {
        let Some(last) = self.walked_at else {
            return Some(now);
        };
        let floor = last + TIMER_TICK;
        if self.input {
            return Some(floor);
        }
        self.due.map(|t| t.max(floor))
    }

    fn input(&mut self) {
        self.input = true;
    }

    /// The walk at `now` found `due`.
    fn walked(&mut self, now: Instant, due: Option<Instant>) {
        self.walked_at = Some(now);
        self.due = due;
        self.input = false;
    }
}

/// One IKEv2 VTI entry kept up.
struct VtiKeeper {
    tag: PolicyTag,
    /// The tunnel destination.
    peer: Option<IpAddr>,
    /// Wait this long after the tunnel went down before initiating.
    defer: std::time::Duration,
    down_since: Option<Instant>,
}

impl IkeDriver {
    /// Binds the IKE sockets on every local address the config's IKE
    /// entries (IKEv1 or IKEv2) use. `None` when there are none.
    pub fn start(c: &Compiled) -> io::Result<Option<IkeDriver>> {
        Self::start_on(c, IKE_PORT, NAT_T_PORT)
    }

    /// As [`IkeDriver::start`], on other ports (tests).
    pub fn start_on(c: &Compiled, ike: u16, nat_t: u16) -> io::Result<Option<IkeDriver>> {
        let maps = || c.ikev1.maps.iter().chain(&c.ikev2.maps);
        if maps().next().is_none() {
            return Ok(None);
        }
        let local_set: BTreeSet<IpAddr> = maps().map(|m| m.local).collect();
        let locals: Vec<IpAddr> = local_set.iter().copied().collect();
        let mut v1 = ikev1::Engine::new(c.ikev1.clone());
        let mut v2 = ikev2::Engine::new(c.ikev2.clone());
        v1.set_ports(ike, nat_t);
        v2.set_ports(ike, nat_t);
        Ok(Some(IkeDriver {
            v1,
            v2,
            socks: IkeSockets::bind(&locals, ike, nat_t)?,
            installer: Installer::new(
                SpdBinder::new(c.spd.clone())
                    .with_route_based(maps().filter(|m| m.seq == VTI_SEQ).map(|m| m.tag)),
            ),
            debug_v1: false,
            debug_v2: false,
            bad_version: 0,
            failures: 0,
            esp_injected: 0,
            esp_not_injected: 0,
            esp_no_sa: 0,
            esp_budget: EspBudget::default(),
            inbound_seen: std::collections::HashMap::new(),
            next_esp_check: None,
            vtis: c
                .ikev2
                .maps
                .iter()
                .filter(|m| m.seq == VTI_SEQ)
                .map(|m| VtiKeeper {
                    tag: m.tag,
                    peer: m.peers.first().copied(),
                    defer: if m.peers.first().is_some_and(|p| m.local > *p) {
                        VTI_DEFER
                    } else {
                        std::time::Duration::ZERO
                    },
                    down_since: None,
                })
                .collect(),
            next_vti_check: None,
            ted_locals: c
                .ikev1
                .maps
                .iter()
                .filter(|m| m.discover)
                .map(|m| m.local)
                .collect(),
            locals: local_set,
            timers: TimerGate::default(),
        }))
    }

    /// `198.18.0.1:500, 198.18.0.1:4500, ...` for the start-up line.
    pub fn describe_sockets(&self) -> String {
        self.socks
            .locals()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.socks.fds()
    }

    fn engines(&mut self) -> [&mut dyn Negotiator; 2] {
        [&mut self.v1, &mut self.v2]
    }

    /// When an engine, the VTI keeper or the installer (a retired
    /// inbound SA to remove, a waiting pair to bind) next needs
    /// [`IkeDriver::run`] without input.
    pub fn next_timer(&self) -> Option<Instant> {
        let now = Instant::now();
        let vti = if self.vtis.is_empty() {
            None
        } else {
            Some(self.next_vti_check.unwrap_or(now))
        };
        [self.timers.next(now), vti, self.installer.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Feeds a dataplane event to the engine: acquires start
    /// negotiations, expiries rekey or remove SAs.
    pub fn dataplane_event(&mut self, now: Instant, e: &Event) {
        self.timers.input();
        if let Event::TedProbe {
            from,
            original_dst,
            data,
        } = e
        {
            // TED is IKEv1 (seed 004): the probe arrived on the outside
            // interface; answer from the address of a discover entry of
            // the probe's family.
            let outside = self
                .ted_locals
                .iter()
                .copied()
                .find(|a| a.is_ipv4() == from.is_ipv4());
            if let Some(local) = outside {
                self.v1
                    .handle_ted_probe(now, local, *from, *original_dst, data);
            }
            return;
        }
        for engine in self.engines() {
            match *e {
                Event::Acquire { tag, flow } => engine.acquire(now, tag, flow),
                Event::SoftExpire { spi, direction } => {
                    engine.sa_expired(now, direction, spi, false)
                }
                Event::HardExpire { spi, direction } => {
                    engine.sa_expired(now, direction, spi, true)
                }
                _ => {}
            }
        }
    }

    /// Reads the sockets, runs due timers, and carries out everything the
    /// engine asks.
    pub fn run(&mut self, now: Instant, dp: &mut DataplaneClient) {
        let IkeDriver {
            v1,
            v2,
            socks,
            bad_version,
            debug_v2,
            esp_not_injected,
            esp_no_sa,
            esp_budget,
            installer,
            ..
        } = self;
        let mut esp: Vec<(SocketAddr, SocketAddr, Vec<u8>)> = Vec::new();
        let received = socks.drain(
            |local, remote, m| match ike_major_version(m) {
                Some(2) => {
                    if *debug_v2 {
                        print_lines(ikev2_packet_lines(false, local, remote, m));
                    }
                    v2.handle_datagram(now, local, remote, m)
                }
                // Version 1 and the malformed: IKEv1 counts what it drops.
                Some(1) | None => v1.handle_datagram(now, local, remote, m),
                Some(_) => *bad_version += 1,
            },
            |_, _| {},
            |local, remote, e| {
                if !esp_spi(e).is_some_and(|spi| installer.has_inbound(spi)) {
                    *esp_no_sa += 1;
                } else if e.len() <= MAX_INJECTED_ESP_LEN && esp_budget.take(now) {
                    esp.push((local, remote, e.to_vec()));
                } else {
                    *esp_not_injected += 1;
                }
            },
        );
        if received > 0 {
            self.timers.input();
        }
        if self.next_esp_check.is_none_or(|t| t <= now) {
            self.next_esp_check = Some(now + std::time::Duration::from_secs(1));
            self.watch_esp(now, dp);
            self.timers.input();
        }
        if !self.vtis.is_empty() && self.next_vti_check.is_none_or(|t| t <= now) {
            self.next_vti_check = Some(now + VTI_CHECK);
            self.keep_vtis_up(now);
            self.timers.input();
        }
        if self.timers.next(now).is_some_and(|t| t <= now) {
            for engine in self.engines() {
                if engine.poll_timeout().is_some_and(|t| t <= now) {
                    engine.handle_timeout(now);
                }
            }
            let due = [self.v1.poll_timeout(), self.v2.poll_timeout()];
            self.timers.walked(now, due.into_iter().flatten().min());
        }
        self.flush(now, dp);
        self.inject_esp(esp, dp);
    }

    /// Hands ESP from the NAT-T sockets to the dataplane, one request
    /// each; a lost connection (or one that does not answer) ends the
    /// pass: the rest would wait as long each.
    fn inject_esp(
        &mut self,
        esp: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
        dp: &mut DataplaneClient,
    ) {
        let mut esp = esp.into_iter();
        for (to, from, esp) in esp.by_ref() {
            match dp.expect_ack("InjectEsp", Request::InjectEsp { from, to, esp }) {
                Ok(()) => self.esp_injected += 1,
                Err(DpError::Conn(ConnError::Timeout | ConnError::Closed | ConnError::Io(_))) => {
                    self.esp_not_injected += 1;
                    break;
                }
                Err(_) => self.esp_not_injected += 1,
            }
        }
        self.esp_not_injected += esp.len() as u64;
    }

    /// Initiates each IKEv2 VTI that has no CHILD_SA once it has been
    /// down for its deferral (the engine ignores a start already under
    /// way).
    fn keep_vtis_up(&mut self, now: Instant) {
        // An IKE SA with the peer in any state (ours or the peer's, still
        // negotiating) means the tunnel is on its way up.
        let sas = self.v2.ikev2_sas(now);
        for k in &mut self.vtis {
            let negotiating = sas.iter().any(|s| Some(s.remote.ip()) == k.peer);
            if negotiating || self.v2.pairs().any(|p| p.tag == k.tag) {
                k.down_since = None;
                continue;
            }
            let since = *k.down_since.get_or_insert(now);
            if now.duration_since(since) >= k.defer {
                self.v2.initiate_entry(now, k.tag);
            }
        }
    }

    /// Once a second: which peers' inbound SAs decapsulated something
    /// since the last look (one counters request, not per packet), and
    /// from which UDP port (a NAT that mapped the peer anew).
    fn watch_esp(&mut self, now: Instant, dp: &mut DataplaneClient) {
        if self.installer.pairs().is_empty() {
            return;
        }
        let Ok(counters) = dp.counters(None) else {
            return;
        };
        let inbound: HashMap<u32, &SaCounts> = counters
            .iter()
            .filter(|c| c.direction == Direction::Inbound)
            .map(|c| (c.spi, c))
            .collect();
        let mut heard = HashSet::new();
        let mut moved = Vec::new();
        for p in self.installer.pairs().iter() {
            let Some(c) = inbound.get(&p.inbound.spi) else {
                continue;
            };
            let (decaps_before, port_before) = self
                .inbound_seen
                .insert(p.inbound.spi, (c.decaps, c.peer_port))
                .unzip();
            if c.decaps > decaps_before.unwrap_or(0) {
                if let dataplane::api::EspMode::Tunnel { remote, .. } = p.inbound.mode {
                    heard.insert(remote);
                }
            }
            // Newer authenticated ESP from a port other than the one we
            // send to: the peer's NAT mapped it anew.
            let sending_to = p.outbound.udp_encap.map(|u| u.dst_port);
            if c.peer_port != 0
                && port_before != Some(c.peer_port)
                && sending_to.is_some_and(|port| port != c.peer_port)
            {
                moved.push((p.inbound.spi, c.peer_port));
            }
        }
        self.v1.esp_received(now, &heard);
        self.v2.esp_received(now, &heard);
        for (spi, port) in moved {
            self.v1.esp_from_port(spi, port);
            self.v2.esp_from_port(spi, port);
        }
        let live: HashSet<u32> = self
            .installer
            .pairs()
            .iter()
            .map(|p| p.inbound.spi)
            .collect();
        self.inbound_seen.retain(|spi, _| live.contains(spi));
    }

    fn flush(&mut self, now: Instant, dp: &mut DataplaneClient) {
        let mut installed = false;
        loop {
            let (o, debug, v2) = match self.v1.poll_output() {
                Some(o) => (o, self.debug_v1, false),
                None => match self.v2.poll_output() {
                    Some(o) => (o, self.debug_v2, true),
                    None => break,
                },
            };
            match o {
                Output::Send {
                    local,
                    remote,
                    data,
                } => {
                    if v2 && debug {
                        print_lines(ikev2_packet_lines(true, local, remote, &data));
                    }
                    if let Err(e) = self.socks.send(local, remote, &data) {
                        self.failures += 1;
                        eprintln!("espada: IKE send {local} -> {remote}: {e}");
                    }
                }
                Output::InstallInbound(sa) => self.installer.install_inbound(dp, &sa),
                Output::Install {
                    tag,
                    proxy,
                    inbound,
                    outbound,
                    inbound_ready,
                    keep_sending_on,
                } => {
                    installed = true;
                    let mode = InstallMode {
                        inbound_ready,
                        keep_sending_on,
                    };
                    let result = self
                        .installer
                        .install(dp, tag, proxy, &inbound, &outbound, mode);
                    if result.is_err() {
                        // The engine deletes it and tells the peer (or,
                        // for an IKEv2 request it has not answered yet,
                        // answers TEMPORARY_FAILURE), which negotiates
                        // again (with other SPIs); the delete's
                        // retransmission is a timer the walk must see.
                        if v2 {
                            self.v2.pair_refused(now, inbound.spi);
                        } else {
                            self.v1.pair_refused(now, inbound.spi);
                        }
                        self.timers.input();
                    }
                }
                Output::Delete {
                    inbound_spi,
                    outbound_spi,
                    ..
                } => self.installer.delete(inbound_spi, outbound_spi),
                Output::Retire {
                    inbound_spi,
                    outbound_spi,
                } => self.installer.retire(inbound_spi, outbound_spi),
                Output::PeerPort { outbound_spi, port } => {
                    self.installer.peer_port(dp, outbound_spi, port)
                }
                Output::Keepalive { local, remote } => {
                    if let Err(e) = self.socks.send_keepalive(local, remote) {
                        self.failures += 1;
                        eprintln!("espada: NAT keepalive {local} -> {remote}: {e}");
                    }
                }
                Output::Log(line) => {
                    if debug {
                        println!("{line}");
                    }
                }
            }
        }
        self.installer.settle(dp, now);
        if installed {
            // A rekeyed pair's install lets the engine delete the old one
            // (or try the rekey again): a retransmission or retry timer
            // set while this loop took its outputs.
            self.timers.input();
        }
    }

    /// After the dataplane restarted: every negotiated pair and the bound
    /// SPD again.
    pub fn reinstall(&mut self, dp: &mut DataplaneClient) -> Result<usize, DpError> {
        self.installer.reinstall(dp)
    }

    /// The machine's addresses changed (the outside interface was
    /// re-leased an address). `present` is every address the kernel has
    /// now; `recompiled` the config compiled against them, `None` when it
    /// does not compile now (the outside interface has no address yet).
    ///
    /// IKE's local addresses become the recompiled entries' (without a
    /// recompiled config: the current ones the kernel still has). Every
    /// local address that goes takes its ISAKMP SAs and SA pairs with it
    /// (they are deleted from the dataplane here), and its sockets are
    /// closed; the new addresses' sockets are bound and the engines
    /// negotiate from them on the next packet. Returns the addresses lost.
    pub fn addresses_changed(
        &mut self,
        now: Instant,
        present: &[IpAddr],
        recompiled: Option<&Compiled>,
        dp: &mut DataplaneClient,
    ) -> Vec<IpAddr> {
        self.timers.input();
        let mut current: BTreeSet<IpAddr> = self.socks.locals().map(|(a, _)| a.ip()).collect();
        // The last compiled addresses too: an acquire that came while the
        // outside interface had no address started from the old one.
        current.extend(self.locals.iter().copied());
        let locals: BTreeSet<IpAddr> = match recompiled {
            Some(c) => c
                .ikev1
                .maps
                .iter()
                .chain(&c.ikev2.maps)
                .map(|m| m.local)
                .collect(),
            None => current
                .iter()
                .copied()
                .filter(|a| present.contains(a))
                .collect(),
        };
        if let Some(c) = recompiled {
            self.locals = locals.clone();
            self.v1.set_policy(c.ikev1.clone());
            self.v2.set_policy(c.ikev2.clone());
            self.installer.set_base(c.spd.clone());
            self.ted_locals = c
                .ikev1
                .maps
                .iter()
                .filter(|m| m.discover)
                .map(|m| m.local)
                .collect();
        }
        let gone: Vec<IpAddr> = current.difference(&locals).copied().collect();
        for &a in &gone {
            let (isakmp, pairs) = self.v1.local_address_gone(now, a);
            if isakmp + pairs > 0 {
                println!(
                    "espada: local address {a} is gone: {isakmp} ISAKMP SA(s) and {pairs} IKEv1 SA pair(s) deleted"
                );
            }
            // IKEv2 SAs cannot move either; new ones come from the new
            // address, and SAs on other addresses stay.
            let ikev2 = self.v2.local_address_gone(a);
            if ikev2 > 0 {
                println!("espada: local address {a} is gone: {ikev2} IKEv2 SA(s) deleted");
            }
        }
        // Deletes first, while the old sockets still exist.
        self.flush(now, dp);
        let locals: Vec<IpAddr> = locals.into_iter().collect();
        if let Err(e) = self.socks.rebind(&locals) {
            self.failures += 1;
            eprintln!("espada: IKE sockets: {e}");
        }
        gone
    }

    /// The CLI commands IKE answers; `None` for the others.
    pub fn command(&mut self, now: Instant, words: &[&str]) -> Option<String> {
        self.timers.input();
        Some(match words {
            ["show", "crypto", "isakmp", "sa"] => {
                show::crypto_isakmp_sa(&self.v1.isakmp_sas(now), false)
            }
            ["show", "crypto", "isakmp", "sa", "detail"] => {
                show::crypto_isakmp_sa(&self.v1.isakmp_sas(now), true)
            }
            ["show", "crypto", "isakmp", "stats"] => self.stats_text(self.v1.stats().lines()),
            ["show", "crypto", "ikev2", "sa"] => {
                show::crypto_ikev2_sa(&self.v2.ikev2_sas(now), false)
            }
            ["show", "crypto", "ikev2", "sa", "detailed"] => {
                show::crypto_ikev2_sa(&self.v2.ikev2_sas(now), true)
            }
            ["show", "crypto", "ikev2", "session"] => self.ikev2_session(now, false),
            ["show", "crypto", "ikev2", "session", "detailed"] => self.ikev2_session(now, true),
            ["show", "crypto", "ikev2", "stats"] => self.stats_text(self.v2.stats().lines()),
            ["clear", "crypto", "sa"] | ["clear", "crypto", "session"] => {
                self.v1.clear_sa(now);
                // IKEv2 CHILD_SAs go with their IKE SA.
                self.v2.clear(now);
                String::new()
            }
            ["clear", "crypto", "isakmp"] => {
                self.v1.clear_isakmp(now);
                String::new()
            }
            ["clear", "crypto", "ikev2", "sa"] => {
                self.v2.clear(now);
                String::new()
            }
            ["debug", "crypto", "isakmp"] => {
                self.debug_v1 = true;
                "Crypto ISAKMP debugging is on\n".to_string()
            }
            ["debug", "crypto", "ikev2", ..] => {
                self.debug_v2 = true;
                "IKEv2 default debugging is on\n".to_string()
            }
            ["debug", "crypto", "ipsec"] => {
                self.debug_v1 = true;
                self.debug_v2 = true;
                "Crypto IPSEC debugging is on\n".to_string()
            }
            ["undebug", "all"] | ["no", "debug", "all"] | ["undebug", "crypto", ..] => {
                self.debug_v1 = false;
                self.debug_v2 = false;
                "All possible debugging has been turned off\n".to_string()
            }
            _ => return None,
        })
    }

    fn stats_text(&self, lines: Vec<(&'static str, u64)>) -> String {
        let mut s = String::new();
        for (name, n) in lines {
            s.push_str(&format!("{n:>12}  {name}\n"));
        }
        s.push_str(&format!(
            "{:>12}  datagrams of an unknown IKE version\n{:>12}  dataplane or socket errors \
             carrying out IKE\n{:>12}  rekeyed inbound SAs removed before their grace \
             (over {} waiting)\n{:>12}  NAT-T ESP datagrams the kernel reassembled, passed \
             to the dataplane\n{:>12}  NAT-T ESP datagrams the kernel reassembled, dropped \
             (over {}/s, longer than {} bytes, or refused)\n{:>12}  NAT-T ESP datagrams \
             the kernel reassembled for no inbound SA, dropped\n",
            self.bad_version,
            self.failures + self.installer.failures,
            self.installer.retired_early,
            crate::installer::RETIRING_LIMIT,
            self.esp_injected,
            self.esp_not_injected,
            ESP_RATE,
            MAX_INJECTED_ESP_LEN,
            self.esp_no_sa
        ));
        s
    }

    /// `show crypto ikev2 session [detailed]`: each IKE SA with its
    /// CHILD_SAs.
    fn ikev2_session(&self, now: Instant, detailed: bool) -> String {
        let sas = self.v2.ikev2_sas(now);
        let mut children = self.v2.children_by_tunnel();
        let sessions: Vec<show::Ikev2SessionView> = sas
            .iter()
            .map(|sa| show::Ikev2SessionView {
                sa: sa.clone(),
                children: children.remove(&sa.tunnel_id).unwrap_or_default(),
            })
            .collect();
        show::crypto_ikev2_session(&sessions, detailed)
    }

    /// The ISAKMP SAs, for `show crypto session`.
    pub fn isakmp_sas(&self, now: Instant) -> Vec<show::IsakmpSaView> {
        self.v1.isakmp_sas(now)
    }

    /// The IKEv2 SAs, for `show crypto session`.
    pub fn ikev2_sas(&self, now: Instant) -> Vec<ikev2::Ikev2SaView> {
        self.v2.ikev2_sas(now)
    }

    /// Both engines' view of the installed pairs (peer, proxy, SPIs).
    pub fn pair_infos(&self) -> impl Iterator<Item = &PairInfo> {
        self.v1.pairs().chain(self.v2.pairs())
    }

    /// Per peer, our address and port and the peer's port of its IKE SA
    /// (an established ISAKMP SA first, then an IKEv2 SA).
    pub fn endpoints_by_peer(&self) -> HashMap<IpAddr, (IpAddr, u16, u16)> {
        let mut by_peer = HashMap::new();
        for (peer, e) in self.v1.established_endpoints() {
            by_peer.entry(peer).or_insert(e);
        }
        for (l, r, _) in self.v2.ike_sas() {
            by_peer
                .entry(r.ip())
                .or_insert((l.ip(), l.port(), r.port()));
        }
        by_peer
    }

    /// The negotiated pairs with their age in seconds, for `show crypto
    /// ipsec sa`.
    pub fn pairs(
        &self,
    ) -> impl Iterator<Item = (PolicyTag, &TrafficSelector, &SaParams, &SaParams, u64)> {
        self.installer.pairs().iter().map(|p| {
            let age = p.installed_at.elapsed().as_secs();
            (p.tag, &p.proxy, &p.inbound, &p.outbound, age)
        })
    }
}

fn print_lines(lines: Vec<String>) {
    for l in lines {
        println!("{l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_esp_budget_allows_its_burst_then_its_rate() {
        let mut b = EspBudget::default();
        let t0 = Instant::now();
        let burst = (0..5 * ESP_BURST).filter(|_| b.take(t0)).count();
        assert_eq!(burst, ESP_BURST as usize);
        // 10 ms later: 1 % of the rate.
        let t1 = t0 + std::time::Duration::from_millis(10);
        let more = (0..ESP_BURST).filter(|_| b.take(t1)).count();
        assert_eq!(more, (ESP_RATE / 100) as usize);
        // Every 50 µs one more, with nothing lost to rounding.
        let mut got = 0;
        for k in 1..=2_000u64 {
            let t = t1 + std::time::Duration::from_micros(k * 50);
            got += usize::from(b.take(t)) + usize::from(b.take(t));
        }
        assert_eq!(got, 2_000);
        // Idle a while: back to the burst, not beyond.
        let t2 = t1 + std::time::Duration::from_secs(60);
        assert_eq!(
            (0..5 * ESP_BURST).filter(|_| b.take(t2)).count(),
            ESP_BURST as usize
        );
    }

    /// An IKEv1 entry on the loopback address.
    const LOOPBACK_CONFIG: &str = "\
crypto isakmp policy 10
 encr aes
 hash sha
 authentication pre-share
 group 14
crypto isakmp key lab-only address 127.0.0.2
crypto ipsec transform-set T esp-aes esp-sha-hmac
access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255
crypto map VPN 10 ipsec-isakmp
 set peer 127.0.0.2
 set transform-set T
 match address 101
interface lo
 ip address 127.0.0.1 255.0.0.0
 crypto map VPN
";

    /// ESP the kernel reassembled reaches the NAT-T socket: only what
    /// names an inbound SA of ours costs a dataplane request; the rest
    /// (junk, the peer's SPIs) is counted and dropped.
    #[test]
    fn nat_t_esp_goes_to_the_dataplane_only_for_an_inbound_sa_of_ours() {
        use crate::dpclient::test_dataplane::TestDataplane;
        use crate::installer::InstallMode;
        use dataplane::crypto::{AuthAlg, EncAlg};
        use dataplane::testkit;

        let cfg = crate::config::parse(LOOPBACK_CONFIG).unwrap();
        let c = crate::config::compile(&cfg, &crate::config::ConfigAddresses(&cfg)).unwrap();
        let mut ike = IkeDriver::start_on(&c, 0, 0)
            .unwrap()
            .expect("an IKE entry");
        let nat_t = ike.socks.locals().find(|&(_, n)| n).unwrap().0;
        let mut d = TestDataplane::start();
        let (mut out, mut inb) = testkit::sa_pair(
            EncAlg::AesCbc128,
            AuthAlg::HmacSha1_96,
            testkit::tunnel(false),
            false,
            false,
            64,
        );
        (inb.spi, out.spi) = (0x100, 0x9000);
        let proxy = TrafficSelector {
            src: "198.19.1.0/24".parse().unwrap(),
            dst: "198.19.2.0/24".parse().unwrap(),
            proto: None,
            src_ports: dataplane::spd::PortRange::ANY,
            dst_ports: dataplane::spd::PortRange::ANY,
        };
        let tag = c.ikev1.maps[0].tag;
        ike.installer
            .install(&mut d.dp, tag, proxy, &inb, &out, InstallMode::default())
            .unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for spi in [0x100u32, 0x200, 0x9000] {
            let mut esp = spi.to_be_bytes().to_vec();
            esp.extend_from_slice(&[0, 0, 0, 1]);
            esp.extend_from_slice(&[0xa5; 48]);
            peer.send_to(&esp, nat_t).unwrap();
        }
        let t0 = Instant::now();
        while ike.esp_no_sa + ike.esp_injected + ike.esp_not_injected < 3 {
            assert!(t0.elapsed() < Duration::from_secs(2), "not all received");
            ike.run(Instant::now(), &mut d.dp);
        }
        assert_eq!(ike.esp_no_sa, 2, "an unknown SPI and the peer's");
        assert_eq!(d.dp.sent("InjectEsp"), 1, "SA 0x100's ESP only");
        assert_eq!(ike.esp_injected + ike.esp_not_injected, 1);
        assert!(ike.stats_text(Vec::new()).contains(
            "           2  NAT-T ESP datagrams the kernel reassembled for no inbound SA, dropped"
        ));
        d.stop();
    }

    #[test]
    fn timers_are_walked_at_once_then_at_most_once_a_tick() {
        let t0 = Instant::now();
        let mut g = TimerGate::default();
        assert_eq!(g.next(t0), Some(t0), "the first pass walks");
        // Nothing pending: no walk until something arrives.
        g.walked(t0, None);
        assert_eq!(g.next(t0), None);
        // Input may have set a timer: a walk within a tick.
        g.input();
        assert_eq!(g.next(t0), Some(t0 + TIMER_TICK));
        // A deadline found is kept, with no walk before it...
        let later = t0 + Duration::from_secs(5);
        g.walked(t0 + TIMER_TICK, Some(later));
        assert_eq!(g.next(t0 + TIMER_TICK), Some(later));
        // ...but one due at every instant (thousands of peers' DPD) is
        // walked once a tick, not on every pass.
        let t1 = t0 + Duration::from_secs(6);
        g.walked(t1, Some(t1));
        assert_eq!(g.next(t1), Some(t1 + TIMER_TICK));
        // Input pulls a far deadline in to the next tick.
        let t2 = t1 + TIMER_TICK;
        g.walked(t2, Some(t2 + Duration::from_secs(5)));
        assert_eq!(g.next(t2), Some(t2 + Duration::from_secs(5)));
        g.input();
        assert_eq!(g.next(t2), Some(t2 + TIMER_TICK));
    }
}
