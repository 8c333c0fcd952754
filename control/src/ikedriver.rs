//! The daemon's side of IKEv1: the sans-IO [`Engine`] wired to its UDP
//! sockets, the dataplane's events and the dataplane's SA and SPD tables.
//!
//! - datagrams from [`IkeSockets`] and the dataplane's acquires and expiry
//!   events go into the engine;
//! - what comes out is carried out here: datagrams sent, a negotiated
//!   pair installed (inbound first, so the peer's first packet is never
//!   dropped for want of the SA it just keyed, then outbound) and bound to
//!   its crypto-map rules with one `LoadSpd`; a deleted pair unbound first
//!   and then removed, so no rule ever names a missing SA;
//! - the installed pairs are kept (keys included, zeroized on drop) so a
//!   restarted dataplane gets them back;
//! - `debug crypto isakmp` lines are printed only while the operator asked
//!   for them, as IOS does.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::time::Instant;

use dataplane::api::{Direction, Event, Request, SaParams};
use dataplane::spd::{PolicyTag, TrafficSelector};

use crate::config::compile::Compiled;
use crate::config::compile::VTI_SEQ;
use crate::dpclient::{DataplaneClient, DpError};
use crate::ikesock::{IkeSockets, IKE_PORT, NAT_T_PORT};
use crate::ikev1::{Engine, Output};
use crate::show;
use crate::spdbind::SpdBinder;

/// One negotiated pair in the dataplane.
struct Installed {
    tag: PolicyTag,
    proxy: TrafficSelector,
    inbound: SaParams,
    outbound: SaParams,
    /// For the remaining lifetime `show crypto ipsec sa` prints.
    installed_at: Instant,
}

/// IKEv1 in the daemon.
pub struct IkeDriver {
    engine: Engine,
    socks: IkeSockets,
    spd: SpdBinder,
    installed: Vec<Installed>,
    /// `debug crypto isakmp` is on.
    pub debug: bool,
    /// Failures carrying out the engine's outputs (send or dataplane
    /// errors), for `show crypto isakmp stats`-like reports.
    pub failures: u64,
    /// Inbound SA packet counts at the last look, and when that was:
    /// ESP from a peer is news for on-demand DPD.
    decaps_seen: std::collections::HashMap<u32, u64>,
    next_esp_check: Option<Instant>,
}

impl IkeDriver {
    /// Binds the IKE sockets on every local address the config's
    /// `ipsec-isakmp` entries use. `None` when there are none.
    pub fn start(c: &Compiled) -> io::Result<Option<IkeDriver>> {
        Self::start_on(c, IKE_PORT, NAT_T_PORT)
    }

    /// As [`IkeDriver::start`], on other ports (tests).
    pub fn start_on(c: &Compiled, ike: u16, nat_t: u16) -> io::Result<Option<IkeDriver>> {
        if c.ikev1.maps.is_empty() {
            return Ok(None);
        }
        let locals: BTreeSet<IpAddr> = c.ikev1.maps.iter().map(|m| m.local).collect();
        let locals: Vec<IpAddr> = locals.into_iter().collect();
        Ok(Some(IkeDriver {
            engine: Engine::new(c.ikev1.clone()),
            socks: IkeSockets::bind(&locals, ike, nat_t)?,
            spd: SpdBinder::new(c.spd.clone()).with_route_based(
                c.ikev1
                    .maps
                    .iter()
                    .filter(|m| m.seq == VTI_SEQ)
                    .map(|m| m.tag),
            ),
            installed: Vec::new(),
            debug: false,
            failures: 0,
            decaps_seen: std::collections::HashMap::new(),
            next_esp_check: None,
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

    /// When the engine next needs [`IkeDriver::run`] without input.
    pub fn next_timer(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    /// Feeds a dataplane event to the engine: acquires start
    /// negotiations, expiries rekey or remove SAs.
    pub fn dataplane_event(&mut self, now: Instant, e: &Event) {
        match *e {
            Event::Acquire { tag, flow } => self.engine.acquire(now, tag, flow),
            Event::SoftExpire { spi, .. } => self.engine.sa_expired(now, spi, false),
            Event::HardExpire { spi, .. } => self.engine.sa_expired(now, spi, true),
            _ => {}
        }
    }

    /// Reads the sockets, runs due timers, and carries out everything the
    /// engine asks.
    pub fn run(&mut self, now: Instant, dp: &mut DataplaneClient) {
        let IkeDriver { engine, socks, .. } = self;
        socks.drain(
            |local, remote, m| engine.handle_datagram(now, local, remote, m),
            |_, _| {},
        );
        if self.next_esp_check.is_none_or(|t| t <= now) {
            self.next_esp_check = Some(now + std::time::Duration::from_secs(1));
            self.watch_esp(now, dp);
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.flush(dp);
    }

    /// Once a second: which peers' inbound SAs decapsulated something
    /// since the last look (one counters request, not per packet).
    fn watch_esp(&mut self, now: Instant, dp: &mut DataplaneClient) {
        if self.installed.is_empty() {
            return;
        }
        let Ok(counters) = dp.counters(None) else {
            return;
        };
        for p in &self.installed {
            let Some(c) = counters
                .iter()
                .find(|c| c.spi == p.inbound.spi && c.direction == Direction::Inbound)
            else {
                continue;
            };
            let before = self
                .decaps_seen
                .insert(p.inbound.spi, c.decaps)
                .unwrap_or(0);
            if c.decaps > before {
                if let dataplane::api::EspMode::Tunnel { remote, .. } = p.inbound.mode {
                    self.engine.esp_received(now, remote);
                }
            }
        }
        let live: std::collections::HashSet<u32> =
            self.installed.iter().map(|p| p.inbound.spi).collect();
        self.decaps_seen.retain(|spi, _| live.contains(spi));
    }

    fn flush(&mut self, dp: &mut DataplaneClient) {
        let mut spd_changed = false;
        while let Some(o) = self.engine.poll_output() {
            match o {
                Output::Send {
                    local,
                    remote,
                    data,
                } => {
                    if let Err(e) = self.socks.send(local, remote, &data) {
                        self.failures += 1;
                        eprintln!("espada: IKE send {local} -> {remote}: {e}");
                    }
                }
                Output::InstallInbound(sa) => {
                    if let Err(e) = dp.expect_ack("AddSa", Request::AddSa(sa.clone())) {
                        self.failures += 1;
                        eprintln!("espada: installing inbound SA {:#010x}: {e}", sa.spi);
                    }
                }
                Output::Install {
                    tag,
                    proxy,
                    inbound,
                    outbound,
                    inbound_ready,
                } => {
                    let added = if inbound_ready {
                        dp.expect_ack("AddSa", Request::AddSa(outbound.clone()))
                    } else {
                        add_pair(dp, &inbound, &outbound)
                    };
                    if let Err(e) = added {
                        self.failures += 1;
                        eprintln!(
                            "espada: installing SA pair {:#010x}/{:#010x}: {e}",
                            inbound.spi, outbound.spi
                        );
                        continue;
                    }
                    self.spd.bind(tag, proxy, outbound.spi);
                    self.installed.push(Installed {
                        tag,
                        proxy,
                        inbound: *inbound,
                        outbound: *outbound,
                        installed_at: Instant::now(),
                    });
                    spd_changed = true;
                }
                Output::Delete {
                    inbound_spi,
                    outbound_spi,
                    ..
                } => {
                    if self.spd.unbind(outbound_spi) {
                        spd_changed = true;
                    }
                    // The rules must stop naming the SA before it goes.
                    if spd_changed {
                        self.load_spd(dp);
                        spd_changed = false;
                    }
                    for (direction, spi) in [
                        (Direction::Outbound, outbound_spi),
                        (Direction::Inbound, inbound_spi),
                    ] {
                        // Gone already (expired, dataplane restarted) is fine.
                        let _ = dp.expect_ack("DeleteSa", Request::DeleteSa { direction, spi });
                    }
                    self.installed.retain(|p| {
                        !(p.inbound.spi == inbound_spi && p.outbound.spi == outbound_spi)
                    });
                }
                Output::Keepalive { local, remote } => {
                    if let Err(e) = self.socks.send_keepalive(local, remote) {
                        self.failures += 1;
                        eprintln!("espada: NAT keepalive {local} -> {remote}: {e}");
                    }
                }
                Output::Log(line) => {
                    if self.debug {
                        println!("{line}");
                    }
                }
            }
        }
        if spd_changed {
            self.load_spd(dp);
        }
    }

    fn load_spd(&mut self, dp: &mut DataplaneClient) {
        let rules = self.spd.rules();
        if let Err(e) = dp.expect_ack("LoadSpd", Request::LoadSpd { rules }) {
            self.failures += 1;
            eprintln!("espada: loading the SPD: {e}");
        }
    }

    /// After the dataplane restarted: every negotiated pair and the bound
    /// SPD again.
    pub fn reinstall(&mut self, dp: &mut DataplaneClient) -> Result<usize, DpError> {
        for p in &self.installed {
            add_pair(dp, &p.inbound, &p.outbound)?;
        }
        dp.expect_ack(
            "LoadSpd",
            Request::LoadSpd {
                rules: self.spd.rules(),
            },
        )?;
        Ok(self.installed.len())
    }

    /// The CLI commands IKE answers; `None` for the others.
    pub fn command(&mut self, now: Instant, words: &[&str]) -> Option<String> {
        Some(match words {
            ["show", "crypto", "isakmp", "sa"] => {
                show::crypto_isakmp_sa(&self.engine.isakmp_sas(now), false)
            }
            ["show", "crypto", "isakmp", "sa", "detail"] => {
                show::crypto_isakmp_sa(&self.engine.isakmp_sas(now), true)
            }
            ["show", "crypto", "isakmp", "stats"] => {
                let mut s = String::new();
                for (name, n) in self.engine.stats().lines() {
                    s.push_str(&format!("{n:>12}  {name}\n"));
                }
                s.push_str(&format!(
                    "{:>12}  dataplane or socket errors carrying out IKE\n",
                    self.failures
                ));
                s
            }
            ["clear", "crypto", "sa"] => {
                self.engine.clear_sa(now);
                String::new()
            }
            ["clear", "crypto", "isakmp"] => {
                self.engine.clear_isakmp(now);
                String::new()
            }
            ["debug", "crypto", "isakmp"] | ["debug", "crypto", "ipsec"] => {
                self.debug = true;
                "Crypto ISAKMP debugging is on\n".to_string()
            }
            ["undebug", "all"] | ["no", "debug", "all"] | ["undebug", "crypto", ..] => {
                self.debug = false;
                "All possible debugging has been turned off\n".to_string()
            }
            _ => return None,
        })
    }

    /// The ISAKMP SAs, for `show crypto session`.
    pub fn isakmp_sas(&self, now: Instant) -> Vec<show::IsakmpSaView> {
        self.engine.isakmp_sas(now)
    }

    /// The engine's view of the installed pairs (peer, proxy, SPIs).
    pub fn pair_infos(&self) -> impl Iterator<Item = &crate::ikev1::PairInfo> {
        self.engine.pairs()
    }

    /// Our address and port and the peer's port for `peer`'s ISAKMP SA.
    pub fn endpoints(&self, peer: IpAddr) -> Option<(IpAddr, u16, u16)> {
        self.engine.endpoints(peer)
    }

    /// The negotiated pairs with their age in seconds, for `show crypto
    /// ipsec sa`.
    pub fn pairs(
        &self,
    ) -> impl Iterator<Item = (PolicyTag, &TrafficSelector, &SaParams, &SaParams, u64)> {
        self.installed.iter().map(|p| {
            let age = p.installed_at.elapsed().as_secs();
            (p.tag, &p.proxy, &p.inbound, &p.outbound, age)
        })
    }
}

fn add_pair(
    dp: &mut DataplaneClient,
    inbound: &SaParams,
    outbound: &SaParams,
) -> Result<(), DpError> {
    dp.expect_ack("AddSa", Request::AddSa(Box::new(inbound.clone())))?;
    dp.expect_ack("AddSa", Request::AddSa(Box::new(outbound.clone())))
}
