//! The management thread's state: the master copy of the SADB, SPD and NAT
//! rules, the queues to every worker, and what turns control-socket
//! requests into table updates and SA lifetimes and counters into events.
//!
//! [`Mgmt`] owns no socket (the loop in [`server`] does), so every request
//! and every tick is a plain function call in the tests.

pub mod server;
pub mod staging;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::api::{
    Direction, DropCounts, ErrorCode, Event, ListPart, Message, NatAction, NatRule, Reply, Request,
    SaCounts, SaParams, TunnelInterface, PROTOCOL_VERSION,
};
use crate::counters::{DropReason, SaCounters};
use crate::handoff::HandoffSender;
use crate::inject;
use crate::nat::{NatCounters, NatRules, NatStats};
use crate::pipeline::AcquireRequest;
use crate::sa::{InboundSa, LifetimeState, OutboundSa, SaRef};
use crate::spd::{PolicyTag, Spd, SpdRule};
use crate::tunif::{TunDevice, TunReader, TunnelPort, TunnelPorts};
use crate::update::TableUpdate;
use crate::worker::WorkerCounters;

/// No packet on an SA for this long raises [`Event::Idle`] (once, until it
/// carries traffic again): the control process's cue for DPD.
pub const DEFAULT_IDLE_SECS: u64 = 10;

/// What the management thread remembers about one installed SA beyond the
/// SA itself: which events it already raised.
struct SaEntry {
    sa: SaRef,
    soft_sent: bool,
    /// The SA's byte count at the last tick: the bytes of one tick, which
    /// the next one is expected to carry too.
    bytes_seen: u64,
    idle_sent_for: Option<u64>,
    replay_seen: u64,
    integrity_seen: u64,
}

/// The management thread's state.
pub struct Mgmt {
    workers: Vec<Sender<TableUpdate>>,
    worker_counters: Vec<Arc<WorkerCounters>>,
    sas: HashMap<(Direction, u32), SaEntry>,
    spd: Vec<SpdRule>,
    nat: Vec<NatRule>,
    /// Bumped by every accepted NAT rule list, so the owner of the XDP
    /// program knows when to re-steer the PAT interfaces.
    nat_generation: u64,
    /// Every worker's NAT counters, summed for `GetNatStats`.
    nat_counters: Vec<Arc<NatCounters>>,
    idle_secs: u64,
    /// Last acquire raised per crypto map entry and address pair, so a
    /// flow of packets waiting for IKE raises one acquire a second.
    acquires: HashMap<(PolicyTag, IpAddr, IpAddr), u64>,
    /// Updates a full worker queue refused (the worker is wedged); counted,
    /// never blocking the management thread.
    pub queue_full: u64,
    /// Where [`Request::InjectEsp`] goes; `None` in tests without workers.
    injector: Option<Injector>,
    /// The tunnel interfaces' devices and their readers, in the order of
    /// the last [`Request::SetTunnelInterfaces`].
    tunnels: Vec<Tunnel>,
}

/// One tunnel interface the management thread keeps: its device, the
/// workers' view of it, and the thread reading it (none in tests without
/// workers).
struct Tunnel {
    port: TunnelPort,
    mtu: u16,
    _reader: Option<TunReader>,
}

/// The way ESP handed over by the control process reaches the workers
/// ([`crate::inject`]).
pub struct Injector {
    workers: HandoffSender,
    /// The outside interface: the frame is taken for one that arrived
    /// there.
    outside_ifindex: u32,
    frame: Box<[u8]>,
}

impl Injector {
    pub fn new(workers: HandoffSender, outside_ifindex: u32) -> Injector {
        Injector {
            workers,
            outside_ifindex,
            frame: vec![0; inject::MAX_FRAME].into_boxed_slice(),
        }
    }

    /// Hands `esp` to a worker as a frame from `from` to `to` on the
    /// outside interface. One SA's packets go to one worker (spread over
    /// several they could leave out of order; it need not be the worker
    /// the NIC gives the SA's whole ESP to). That worker behind, the next
    /// with room takes it.
    fn inject(&mut self, from: SocketAddr, to: SocketAddr, esp: &[u8]) -> Reply {
        let len = match inject::esp_in_udp_frame(from, to, esp, &mut self.frame) {
            Ok(len) => len,
            Err(e) => return error(ErrorCode::Malformed, format!("injected ESP: {e}")),
        };
        let n = self.workers.workers();
        let first = inject::worker_of(from, esp, n);
        for k in 0..n {
            let w = (first + k) % n;
            if self
                .workers
                .send(w, self.outside_ifindex, &self.frame[..len])
            {
                return Reply::Ack;
            }
        }
        error(
            ErrorCode::Internal,
            "every worker is behind (its handoff queue is full): injected ESP dropped".to_string(),
        )
    }
}

impl Mgmt {
    pub fn new(
        workers: Vec<Sender<TableUpdate>>,
        worker_counters: Vec<Arc<WorkerCounters>>,
    ) -> Mgmt {
        Mgmt {
            workers,
            worker_counters,
            sas: HashMap::new(),
            spd: Vec::new(),
            nat: Vec::new(),
            nat_generation: 0,
            nat_counters: Vec::new(),
            idle_secs: DEFAULT_IDLE_SECS,
            acquires: HashMap::new(),
            queue_full: 0,
            injector: None,
            tunnels: Vec::new(),
        }
    }

    /// The tunnel interfaces now: name, ifindex and crypto map entry.
    pub fn tunnels(&self) -> impl Iterator<Item = (&str, u32, PolicyTag)> {
        self.tunnels
            .iter()
            .map(|t| (t.port.device.name(), t.port.device.ifindex(), t.port.tag))
    }

    /// Makes the tunnel interfaces the list says: devices kept by name
    /// (their addresses and routes stay; a changed entry or MTU is
    /// applied), new ones created, the others closed. All or nothing: a
    /// device that cannot be made leaves the previous set in force.
    fn set_tunnels(&mut self, wanted: Vec<TunnelInterface>) -> Reply {
        for (i, w) in wanted.iter().enumerate() {
            if wanted[..i].iter().any(|o| o.name == w.name) {
                return error(
                    ErrorCode::InvalidRules,
                    format!("tunnel interface {} is listed twice", w.name),
                );
            }
            if wanted[..i].iter().any(|o| o.tag == w.tag) {
                return error(
                    ErrorCode::InvalidRules,
                    format!(
                        "tunnel interfaces {} and {} name the same crypto map entry",
                        wanted[..i]
                            .iter()
                            .find(|o| o.tag == w.tag)
                            .map_or("", |o| &o.name),
                        w.name
                    ),
                );
            }
            if w.mtu < 68 || w.mtu > crate::tunif::MAX_MTU {
                return error(
                    ErrorCode::InvalidRules,
                    format!(
                        "tunnel interface {}: MTU {} is not within 68 (IPv4's least) and {}",
                        w.name,
                        w.mtu,
                        crate::tunif::MAX_MTU
                    ),
                );
            }
        }
        let mut old = std::mem::take(&mut self.tunnels);
        let before: Vec<String> = old
            .iter()
            .map(|t| t.port.device.name().to_string())
            .collect();
        let mut next: Vec<Tunnel> = Vec::with_capacity(wanted.len());
        for w in &wanted {
            let tunnel = match old.iter().position(|t| t.port.device.name() == w.name) {
                Some(at) => {
                    let mut t = old.swap_remove(at);
                    if t.mtu != w.mtu {
                        if let Err(e) = t.port.device.set_mtu(w.mtu) {
                            self.tunnels = next
                                .into_iter()
                                .filter(|t| before.iter().any(|n| n == t.port.device.name()))
                                .chain(old)
                                .chain([t])
                                .collect();
                            return error(ErrorCode::Internal, e.to_string());
                        }
                        t.mtu = w.mtu;
                    }
                    t.port.tag = w.tag;
                    t
                }
                None => match self.open_tunnel(w) {
                    Ok(t) => t,
                    Err(msg) => {
                        // The devices made for this list close; the ones
                        // there before stay (a changed MTU or entry of
                        // theirs already applied is harmless).
                        self.tunnels = next
                            .into_iter()
                            .filter(|t| before.iter().any(|n| n == t.port.device.name()))
                            .chain(old)
                            .collect();
                        return error(ErrorCode::Internal, msg);
                    }
                },
            };
            next.push(tunnel);
        }
        // What is left of `old` closes here (readers stopped and joined);
        // each device when the last worker lets go of it.
        drop(old);
        self.tunnels = next;
        let ports = TunnelPorts::new(self.tunnels.iter().map(|t| t.port.clone()).collect());
        for w in 0..self.workers.len() {
            self.send(w, TableUpdate::ReplaceTunnels(ports.clone()));
        }
        Reply::Ack
    }

    fn open_tunnel(&self, w: &TunnelInterface) -> Result<Tunnel, String> {
        let device = Arc::new(TunDevice::create(&w.name, w.mtu).map_err(|e| e.to_string())?);
        let reader = match (&self.injector, self.worker_counters.first()) {
            (Some(i), Some(c)) => Some(
                TunReader::spawn(Arc::clone(&device), i.workers.clone(), Arc::clone(c))
                    .map_err(|e| format!("tunnel interface {}: no reader thread: {e}", w.name))?,
            ),
            _ => None,
        };
        Ok(Tunnel {
            port: TunnelPort { device, tag: w.tag },
            mtu: w.mtu,
            _reader: reader,
        })
    }

    /// Lets [`Request::InjectEsp`] reach the workers.
    pub fn set_injector(&mut self, injector: Injector) {
        self.injector = Some(injector);
    }

    pub fn set_idle_secs(&mut self, secs: u64) {
        self.idle_secs = secs;
    }

    pub fn spd(&self) -> &[SpdRule] {
        &self.spd
    }

    pub fn nat(&self) -> &[NatRule] {
        &self.nat
    }

    /// The workers' NAT counters (from their tables), for `GetNatStats`.
    pub fn set_nat_counters(&mut self, counters: Vec<Arc<NatCounters>>) {
        self.nat_counters = counters;
    }

    /// Changes with every NAT rule list loaded.
    pub fn nat_generation(&self) -> u64 {
        self.nat_generation
    }

    /// The outside interfaces some PAT rule translates to: their return
    /// traffic must be steered to the dataplane.
    pub fn pat_interfaces(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .nat
            .iter()
            .filter_map(|r| match r.action {
                NatAction::Pat {
                    outside_ifindex, ..
                } => Some(outside_ifindex),
                NatAction::Exempt => None,
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Answers one request; the replies go back on the connection it came
    /// from (several for a large counters answer).
    pub fn handle(&mut self, request_id: u32, req: Request, now: u64) -> Vec<Message> {
        let reply = match req {
            Request::Hello { version } if version == PROTOCOL_VERSION => Reply::HelloAck {
                version,
                dataplane_version: format!("espada-dataplane {}", env!("CARGO_PKG_VERSION")),
            },
            Request::Hello { version } => error(
                ErrorCode::UnsupportedVersion,
                format!("dataplane speaks version {PROTOCOL_VERSION}, not {version}"),
            ),
            Request::AddSa(params) => self.add_sa(&params, now),
            Request::UpdateSa {
                direction,
                spi,
                lifetime,
            } => match self.sas.get_mut(&(direction, spi)) {
                Some(e) => {
                    e.sa.set_lifetime(lifetime);
                    e.soft_sent = false;
                    Reply::Ack
                }
                None => unknown_sa(direction, spi),
            },
            Request::SetPeerPort { port: 0, .. } => {
                error(ErrorCode::InvalidSa, "peer port 0".to_string())
            }
            Request::SetPeerPort { spi, port } => {
                match self.sas.get(&(Direction::Outbound, spi)).map(|e| &e.sa) {
                    Some(SaRef::Outbound(sa)) if sa.set_peer_port(port) => Reply::Ack,
                    Some(_) => error(
                        ErrorCode::InvalidSa,
                        format!(
                            "outbound SA 0x{spi:08x} is not UDP-encapsulated: no peer port to set"
                        ),
                    ),
                    None => unknown_sa(Direction::Outbound, spi),
                }
            }
            Request::DeleteSa { direction, spi } => {
                if self.delete_sa(direction, spi) {
                    Reply::Ack
                } else {
                    unknown_sa(direction, spi)
                }
            }
            Request::LoadSpd { part, .. } | Request::LoadNat { part, .. }
                if part != ListPart::WHOLE =>
            {
                error(
                    ErrorCode::Unexpected,
                    "a part of a rule list reached the tables before it was joined".to_string(),
                )
            }
            Request::LoadSpd { rules, .. } => {
                self.spd = rules;
                for w in 0..self.workers.len() {
                    self.send(
                        w,
                        TableUpdate::ReplaceSpd(Box::new(Spd::new(self.spd.clone()))),
                    );
                }
                Reply::Ack
            }
            Request::LoadNat { rules, .. } => match NatRules::compile(&rules) {
                Ok(compiled) => {
                    self.nat = rules;
                    self.nat_generation += 1;
                    for w in 0..self.workers.len() {
                        self.send(w, TableUpdate::ReplaceNat(Box::new(compiled.clone())));
                    }
                    Reply::Ack
                }
                Err(e) => error(ErrorCode::InvalidRules, e.to_string()),
            },
            Request::GetCounters { spi } => {
                let now_secs = crate::clock::now_secs();
                let mut sas: Vec<SaCounts> = self
                    .sas
                    .values()
                    .filter(|e| spi.is_none_or(|s| s == e.sa.spi()))
                    .map(|e| SaCounts {
                        path_mtu: match &e.sa {
                            SaRef::Outbound(sa) => sa.path_mtu(now_secs).unwrap_or(0),
                            SaRef::Inbound(_) => 0,
                        },
                        ..SaCounts::snapshot(
                            e.sa.spi(),
                            e.sa.direction(),
                            e.sa.counters(),
                            e.sa.peer_port_seen(),
                        )
                    })
                    .collect();
                sas.sort_by_key(|c| (c.spi, c.direction == Direction::Outbound));
                return Reply::counters(request_id, &sas, self.global_drops());
            }
            Request::GetNatStats => {
                let mut total = NatStats::default();
                for c in &self.nat_counters {
                    total.merge(&c.snapshot());
                }
                Reply::NatStats(total)
            }
            Request::Ping => Reply::Ack,
            Request::SetTunnelInterfaces { tunnels } => self.set_tunnels(tunnels),
            Request::InjectEsp { from, to, esp } => match self.injector.as_mut() {
                Some(i) => i.inject(from, to, &esp),
                None => error(
                    ErrorCode::Unexpected,
                    "this dataplane has no workers to take injected ESP".to_string(),
                ),
            },
        };
        vec![Message::reply(request_id, reply)]
    }

    fn add_sa(&mut self, params: &SaParams, now: u64) -> Reply {
        let key = (params.direction, params.spi);
        // Outbound too: the SPD names an outbound SA by its SPI, which the
        // peer chose and which is unique only among that peer's SAs.
        // Replacing would hand another peer's flows to the newcomer (an
        // authenticated peer that saw the SPI on the wire could ask for it
        // on purpose); the control process renegotiates instead.
        if self.sas.contains_key(&key) {
            return error(
                ErrorCode::DuplicateSa,
                format!(
                    "{} SPI 0x{:08x} is already installed",
                    match params.direction {
                        Direction::Inbound => "inbound",
                        Direction::Outbound => "outbound",
                    },
                    params.spi
                ),
            );
        }
        let sa = match params.direction {
            Direction::Inbound => {
                InboundSa::new(params, now).map(|sa| SaRef::Inbound(Arc::new(sa)))
            }
            Direction::Outbound => {
                OutboundSa::new(params, now).map(|sa| SaRef::Outbound(Arc::new(sa)))
            }
        };
        let sa = match sa {
            Ok(sa) => sa,
            Err(e) => return error(ErrorCode::InvalidSa, e.to_string()),
        };
        for w in 0..self.workers.len() {
            let u = match &sa {
                SaRef::Inbound(s) => TableUpdate::AddInbound(s.clone()),
                SaRef::Outbound(s) => TableUpdate::AddOutbound(s.clone()),
            };
            self.send(w, u);
        }
        self.sas.insert(
            key,
            SaEntry {
                sa,
                soft_sent: false,
                bytes_seen: 0,
                idle_sent_for: None,
                replay_seen: 0,
                integrity_seen: 0,
            },
        );
        Reply::Ack
    }

    fn delete_sa(&mut self, direction: Direction, spi: u32) -> bool {
        if self.sas.remove(&(direction, spi)).is_none() {
            return false;
        }
        for w in 0..self.workers.len() {
            self.send(w, TableUpdate::RemoveSa { direction, spi });
        }
        true
    }

    fn send(&mut self, worker: usize, u: TableUpdate) {
        match self.workers[worker].try_send(u) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.queue_full += 1;
            }
        }
    }

    /// A worker saw protected traffic with no SA: an [`Event::Acquire`],
    /// at most one a second per map entry and address pair.
    pub fn acquire(&mut self, req: AcquireRequest, now: u64) -> Option<Event> {
        let key = (req.tag, req.flow.src, req.flow.dst);
        if self.acquires.get(&key).is_some_and(|&t| now < t + 1) {
            return None;
        }
        if self.acquires.len() >= 4096 {
            self.acquires.retain(|_, t| now < *t + 1);
        }
        self.acquires.insert(key, now);
        Some(Event::Acquire {
            tag: req.tag,
            flow: req.flow,
        })
    }

    /// Drops that belong to no SA, summed over the workers.
    pub fn global_drops(&self) -> DropCounts {
        let mut d = DropCounts::default();
        for c in &self.worker_counters {
            for r in DropReason::ALL {
                d.set(r, d.get(r) + c.pipeline.drops.get(r));
            }
        }
        d
    }

    /// Once a second: lifetimes (soft → event; hard → event and the SA is
    /// removed from every worker), replay and integrity failures since the
    /// last tick, and SAs gone idle.
    pub fn tick(&mut self, now: u64) -> Vec<Event> {
        let mut events = Vec::new();
        let mut expired = Vec::new();
        for (&(direction, spi), e) in &mut self.sas {
            // A kilobyte limit is looked at once a tick: the soft one
            // counts the bytes the next tick will likely bring, or a busy
            // SA would pass soft and hard between two ticks and never be
            // rekeyed (at 6 Mbit/s, IOS's least lifetime, 2560 KB, has
            // under a second between 80% and 100%).
            let bytes = SaCounters::read(&e.sa.counters().bytes);
            let ahead = bytes.saturating_sub(std::mem::replace(&mut e.bytes_seen, bytes));
            match e.sa.lifetime_state(now, ahead) {
                LifetimeState::Hard => {
                    events.push(Event::HardExpire { spi, direction });
                    expired.push((direction, spi));
                    continue;
                }
                LifetimeState::Soft if !e.soft_sent => {
                    e.soft_sent = true;
                    events.push(Event::SoftExpire { spi, direction });
                }
                _ => {}
            }
            let c = e.sa.counters();
            let replay = c.drops.get(DropReason::Replay);
            if replay > e.replay_seen {
                events.push(Event::ReplayFailure {
                    spi,
                    count: replay - e.replay_seen,
                });
                e.replay_seen = replay;
            }
            let integrity = c.drops.get(DropReason::IntegrityFailed);
            if integrity > e.integrity_seen {
                events.push(Event::IntegrityFailure {
                    spi,
                    count: integrity - e.integrity_seen,
                });
                e.integrity_seen = integrity;
            }
            let last_used =
                crate::counters::SaCounters::read(&c.last_used).max(e.sa.installed_at());
            if direction == Direction::Inbound
                && now.saturating_sub(last_used) >= self.idle_secs
                && e.idle_sent_for != Some(last_used)
            {
                e.idle_sent_for = Some(last_used);
                events.push(Event::Idle { spi, last_used });
            }
        }
        for (direction, spi) in expired {
            self.delete_sa(direction, spi);
        }
        events
    }
}

fn error(code: ErrorCode, message: String) -> Reply {
    Reply::Error { code, message }
}

fn unknown_sa(direction: Direction, spi: u32) -> Reply {
    let dir = match direction {
        Direction::Inbound => "inbound",
        Direction::Outbound => "outbound",
    };
    error(
        ErrorCode::UnknownSa,
        format!("no {dir} SA with SPI 0x{spi:08x}"),
    )
}

#[cfg(test)]
mod tests;
