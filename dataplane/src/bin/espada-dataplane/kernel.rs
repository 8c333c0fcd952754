//! The kernel's tables as `run` uses them: subscribed to rtnetlink first
//! (so no change is missed), then dumped into a snapshot every worker
//! starts from; afterwards each change becomes a [`FibUpdate`] for the
//! workers, and neighbours the workers miss are resolved by the kernel,
//! rate-limited.

use std::net::IpAddr;
use std::time::Instant;

use anyhow::{Context, Result};
use crossbeam_channel::{bounded, Receiver, Sender};
use dataplane::netlink::{FibUpdate, Mirror, ResolveLimiter, RtEvents, RtNetlink, Snapshot};
use dataplane::pipeline::{NeighbourRequest, Tables};

use crate::run::Port;

pub struct Kernel {
    nl: RtNetlink,
    events: RtEvents,
    mirror: Mirror,
    snapshot: Snapshot,
    limiter: ResolveLimiter,
    resolve_tx: Sender<NeighbourRequest>,
    resolve_rx: Receiver<NeighbourRequest>,
    /// Resolutions asked of the kernel, and refused by the limiter.
    pub resolves: u64,
    pub resolves_limited: u64,
}

impl Kernel {
    pub fn open(ports: &[Port]) -> Result<Kernel> {
        let events = RtEvents::subscribe().context("subscribing to rtnetlink")?;
        let mut nl = RtNetlink::open().context("opening rtnetlink")?;
        let mut mirror = Mirror::new(ports.iter().map(|p| (p.name.clone(), p.role)));
        let snapshot = mirror
            .load(&mut nl)
            .context("dumping links, addresses, routes, neighbours")?;
        let (resolve_tx, resolve_rx) = bounded(1024);
        Ok(Kernel {
            nl,
            events,
            mirror,
            snapshot,
            limiter: ResolveLimiter::default(),
            resolve_tx,
            resolve_rx,
            resolves: 0,
            resolves_limited: 0,
        })
    }

    /// A worker's starting tables: the snapshot, and the queue on which it
    /// asks for missing neighbours.
    pub fn tables(&self) -> Tables {
        let mut t = Tables::default();
        self.snapshot.install(&mut t);
        t.resolve = Some(self.resolve_tx.clone());
        t
    }

    /// The gateway's own addresses at start.
    pub fn local(&self) -> &[IpAddr] {
        &self.snapshot.local
    }

    /// Kernel changes since the last call.
    pub fn poll(&mut self) -> Vec<FibUpdate> {
        let mut out = Vec::new();
        if let Err(e) = self.mirror.follow(&mut self.events, &mut self.nl, &mut out) {
            eprintln!("rtnetlink: {e}");
        }
        if let Some(FibUpdate::Reset(s)) =
            out.iter().rev().find(|u| matches!(u, FibUpdate::Reset(_)))
        {
            self.snapshot = (**s).clone();
        }
        out
    }

    /// Has the kernel resolve what the workers asked for.
    pub fn resolve_pending(&mut self) {
        let now = Instant::now();
        while let Ok(r) = self.resolve_rx.try_recv() {
            if !self.limiter.allow(r.ifindex, r.addr, now) {
                self.resolves_limited += 1;
                continue;
            }
            self.resolves += 1;
            if let Err(e) = self.nl.resolve_neighbour(r.ifindex, r.addr) {
                eprintln!("resolving {} on ifindex {}: {e}", r.addr, r.ifindex);
            }
        }
    }
}
