//! The management thread's view of the kernel: it turns [`KernelEvent`]s
//! into the [`FibUpdate`]s workers apply, sans-IO (events in, updates
//! out), so every rule below is a unit test without a kernel.
//!
//! What is mirrored, and why:
//! - Interfaces: only the ones the dataplane serves (by name, with the
//!   role the configuration gives them) and only Ethernet ones. A served
//!   interface that is renamed away, deleted or re-created under a new
//!   index follows its name.
//! - Addresses: all of them, on every interface. Any address of the host
//!   is "to the gateway" (Linux's weak host model: the kernel accepts
//!   traffic to any of its addresses on any interface), and per interface
//!   they give ICMP errors their source.
//! - Routes: the whole main table, also routes via interfaces the
//!   dataplane does not serve. Keeping them keeps longest-prefix match in
//!   agreement with the kernel: a packet the kernel would send out of an
//!   unserved interface resolves to [`FibMiss::NoRoute`] and is dropped
//!   and counted, rather than following a shorter route out of the wrong
//!   port. Of several routes to one prefix, the lowest metric is
//!   installed (the first one on a tie, as the kernel uses the first).
//! - Neighbours: unicast ones on served interfaces only. The kernel makes
//!   entries for multicast groups (`ff02::16`, `ff02::2`, ...) as it sends
//!   to them, without announcing them on the event socket; the dataplane
//!   never forwards to a group, so they are left out of both the dump and
//!   the events, and the followed tables stay equal to a fresh dump.
//!
//! The kernel does not report everything it removes: IPv4 routes via a
//! link vanish without `RTM_DELROUTE` when the link is set down or
//! deleted, so the mirror removes them itself (and the link's neighbours
//! and addresses with it; duplicates of what the kernel does report are
//! harmless since updates are idempotent).
//!
//! [`FibMiss::NoRoute`]: crate::route::FibMiss::NoRoute

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use thiserror::Error;

use super::socket::{NetlinkError, RtEvents, RtNetlink};
use super::wire::{IfAddr, KernelEvent, KernelRoute, Link, Neighbour};
use crate::pipeline::Tables;
use crate::route::{Fib, Interface, PortRole, Route};
use crate::spd::{is_link_local, IpPrefix};
use crate::wire::ethernet::EthernetAddress;

/// One change a worker applies to its [`Tables`] between batches.
/// Applying an update twice, or one that changes nothing, is harmless.
#[derive(Debug, Clone, PartialEq)]
pub enum FibUpdate {
    /// A served interface appeared or changed (MAC, MTU).
    Interface(Interface),
    /// A served interface is gone (deleted, renamed, no longer Ethernet),
    /// with its neighbours.
    InterfaceGone {
        ifindex: u32,
    },
    /// An address of the host, on any interface.
    Addr {
        ifindex: u32,
        addr: IpAddr,
    },
    AddrGone {
        ifindex: u32,
        addr: IpAddr,
    },
    /// The route now installed for its prefix (adds or replaces).
    Route(Route),
    /// No route remains for the prefix.
    RouteGone(IpPrefix),
    Neighbour {
        ifindex: u32,
        addr: IpAddr,
        mac: EthernetAddress,
    },
    NeighbourGone {
        ifindex: u32,
        addr: IpAddr,
    },
    /// Replace everything mirrored with a fresh snapshot: after a resync
    /// (lost events), or at start-up.
    Reset(Box<Snapshot>),
}

/// The mirrored part of a worker's [`Tables`]: a complete copy, as built at
/// start-up or after a resync.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub fib: Fib,
    /// Every address of the host, once each.
    pub local: Vec<IpAddr>,
    /// (ifindex, address) for every address; on each interface the
    /// addresses other than IPv6 link-local come first, so
    /// [`Tables::addr_on`] picks a routable source for ICMP errors.
    pub iface_addrs: Vec<(u32, IpAddr)>,
}

impl PartialEq for Snapshot {
    /// Same interfaces, routes, neighbours and addresses, in any order.
    fn eq(&self, other: &Snapshot) -> bool {
        fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
            v.sort();
            v
        }
        let ifaces = |s: &Snapshot| {
            sorted(
                s.fib
                    .interfaces()
                    .map(|i| (i.ifindex, i.mac, i.mtu, i.role == PortRole::Inside))
                    .collect(),
            )
        };
        let routes = |s: &Snapshot| {
            sorted(
                s.fib
                    .routes()
                    .map(|r| (r.prefix.to_string(), r.ifindex, r.gateway))
                    .collect(),
            )
        };
        ifaces(self) == ifaces(other)
            && routes(self) == routes(other)
            && sorted(self.fib.neighbours().collect()) == sorted(other.fib.neighbours().collect())
            && sorted(self.local.clone()) == sorted(other.local.clone())
            && sorted(self.iface_addrs.clone()) == sorted(other.iface_addrs.clone())
    }
}

impl Snapshot {
    /// Puts the snapshot in place of the worker's mirrored tables
    /// (SPD and SADB are left alone).
    pub fn install(&self, t: &mut Tables) {
        t.fib = self.fib.clone();
        t.local = self.local.clone();
        t.iface_addrs = self.iface_addrs.clone();
    }
}

/// Not a multicast group, nor IPv4 limited broadcast.
fn is_unicast(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => !v4.is_multicast() && !v4.is_broadcast(),
        IpAddr::V6(v6) => !v6.is_multicast(),
    }
}

impl FibUpdate {
    /// Applies the update to a worker's tables.
    pub fn apply(&self, t: &mut Tables) {
        self.apply_to(&mut t.fib, &mut t.local, &mut t.iface_addrs);
    }

    fn apply_to(
        &self,
        fib: &mut Fib,
        local: &mut Vec<IpAddr>,
        iface_addrs: &mut Vec<(u32, IpAddr)>,
    ) {
        match self {
            FibUpdate::Interface(i) => fib.add_interface(i.clone()),
            FibUpdate::InterfaceGone { ifindex } => fib.remove_interface(*ifindex),
            FibUpdate::Addr { ifindex, addr } => {
                if !iface_addrs.contains(&(*ifindex, *addr)) {
                    let at = if is_link_local(addr) {
                        iface_addrs.len()
                    } else {
                        iface_addrs
                            .iter()
                            .position(|(i, a)| i == ifindex && is_link_local(a))
                            .unwrap_or(iface_addrs.len())
                    };
                    iface_addrs.insert(at, (*ifindex, *addr));
                }
                if !local.contains(addr) {
                    local.push(*addr);
                }
            }
            FibUpdate::AddrGone { ifindex, addr } => {
                iface_addrs.retain(|e| *e != (*ifindex, *addr));
                if !iface_addrs.iter().any(|(_, a)| a == addr) {
                    local.retain(|a| a != addr);
                }
            }
            FibUpdate::Route(r) => fib.add_route(*r),
            FibUpdate::RouteGone(p) => fib.remove_route(p),
            FibUpdate::Neighbour { ifindex, addr, mac } => fib.set_neighbour(*ifindex, *addr, *mac),
            FibUpdate::NeighbourGone { ifindex, addr } => fib.remove_neighbour(*ifindex, *addr),
            FibUpdate::Reset(s) => {
                *fib = s.fib.clone();
                *local = s.local.clone();
                *iface_addrs = s.iface_addrs.clone();
            }
        }
    }
}

/// Why a snapshot could not be taken.
#[derive(Debug, Error)]
pub enum MirrorError {
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    #[error("interface {0:?} is not an Ethernet device")]
    NotEthernet(String),
}

#[derive(Debug, Clone)]
struct LinkSeen {
    name: String,
    admin_up: bool,
    ethernet: bool,
}

/// The kernel state the management thread has seen, filtered to what the
/// dataplane forwards by.
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    wanted: Vec<(String, PortRole)>,
    links: HashMap<u32, LinkSeen>,
    served: HashMap<u32, Interface>,
    addrs: HashSet<(u32, IpAddr)>,
    /// Every main-table route per prefix, in arrival order.
    routes: HashMap<IpPrefix, Vec<KernelRoute>>,
    neighbours: HashMap<(u32, IpAddr), EthernetAddress>,
}

fn best(candidates: &[KernelRoute]) -> Option<Route> {
    candidates.iter().min_by_key(|r| r.metric).map(|r| r.route)
}

impl Mirror {
    /// A mirror serving the named interfaces in the given roles.
    pub fn new<S: Into<String>>(interfaces: impl IntoIterator<Item = (S, PortRole)>) -> Mirror {
        Mirror {
            wanted: interfaces.into_iter().map(|(n, r)| (n.into(), r)).collect(),
            ..Mirror::default()
        }
    }

    /// The interfaces served now.
    pub fn served(&self) -> impl Iterator<Item = &Interface> {
        self.served.values()
    }

    /// Dumps the kernel's tables and builds a snapshot from them. Open the
    /// event subscription first and apply what it received afterwards: an
    /// event seen both in the dump and on the subscription is applied
    /// twice, harmlessly, but one between the dump and a later
    /// subscription would be lost.
    pub fn load(&mut self, nl: &mut RtNetlink) -> Result<Snapshot, MirrorError> {
        let dump = nl.dump_all()?;
        self.snapshot(dump)
    }

    /// One turn of the management thread's loop: the notifications queued
    /// on `events` become updates appended to `out`. If some were lost
    /// (overrun, or a message that did not parse) the tables are dumped
    /// again and `out` gets a [`FibUpdate::Reset`] instead.
    pub fn follow(
        &mut self,
        events: &mut RtEvents,
        nl: &mut RtNetlink,
        out: &mut Vec<FibUpdate>,
    ) -> Result<(), MirrorError> {
        let mut got = Vec::new();
        match events.drain(&mut got) {
            Ok(_) => {
                for e in got {
                    self.update(e, out);
                }
                Ok(())
            }
            Err(NetlinkError::Overrun | NetlinkError::Parse(_) | NetlinkError::Truncated(_)) => {
                let snapshot = self.load(nl)?;
                out.push(FibUpdate::Reset(Box::new(snapshot)));
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Forgets what was seen and builds a snapshot from a complete dump
    /// (links first). Every served interface must be in it.
    pub fn snapshot(
        &mut self,
        dump: impl IntoIterator<Item = KernelEvent>,
    ) -> Result<Snapshot, MirrorError> {
        *self = Mirror {
            wanted: std::mem::take(&mut self.wanted),
            ..Mirror::default()
        };
        let mut updates = Vec::new();
        for ev in dump {
            self.update(ev, &mut updates);
        }
        for (name, _) in &self.wanted {
            let served = self
                .links
                .iter()
                .any(|(i, l)| l.name == *name && self.served.contains_key(i));
            if !served {
                return Err(match self.links.values().find(|l| l.name == *name) {
                    Some(l) if !l.ethernet => MirrorError::NotEthernet(name.clone()),
                    _ => MirrorError::NoSuchInterface(name.clone()),
                });
            }
        }
        let mut s = Snapshot::default();
        for u in &updates {
            u.apply_to(&mut s.fib, &mut s.local, &mut s.iface_addrs);
        }
        Ok(s)
    }

    /// Turns one kernel event into the updates (none, one or several)
    /// that bring the workers' tables in line with it.
    pub fn update(&mut self, event: KernelEvent, out: &mut Vec<FibUpdate>) {
        match event {
            KernelEvent::Link(l) => self.link(l, out),
            KernelEvent::LinkGone { ifindex } => {
                self.links.remove(&ifindex);
                self.flush_link(ifindex, out);
                self.purge_addrs(ifindex, out);
                if self.served.remove(&ifindex).is_some() {
                    out.push(FibUpdate::InterfaceGone { ifindex });
                }
            }
            KernelEvent::Addr(IfAddr { ifindex, addr, .. }) => {
                if self.addrs.insert((ifindex, addr)) {
                    out.push(FibUpdate::Addr { ifindex, addr });
                }
            }
            KernelEvent::AddrGone(IfAddr { ifindex, addr, .. }) => {
                if self.addrs.remove(&(ifindex, addr)) {
                    out.push(FibUpdate::AddrGone { ifindex, addr });
                }
            }
            KernelEvent::Route { route, replace } => self.route(route, replace, out),
            KernelEvent::RouteGone(route) => self.route_gone(route, out),
            KernelEvent::Neighbour(Neighbour { ifindex, addr, mac }) => {
                if self.served.contains_key(&ifindex)
                    && is_unicast(&addr)
                    && self.neighbours.insert((ifindex, addr), mac) != Some(mac)
                {
                    out.push(FibUpdate::Neighbour { ifindex, addr, mac });
                }
            }
            KernelEvent::NeighbourGone { ifindex, addr } => {
                if self.neighbours.remove(&(ifindex, addr)).is_some() {
                    out.push(FibUpdate::NeighbourGone { ifindex, addr });
                }
            }
        }
    }

    fn link(&mut self, l: Link, out: &mut Vec<FibUpdate>) {
        let was_up = self.links.get(&l.ifindex).is_some_and(|s| s.admin_up);
        self.links.insert(
            l.ifindex,
            LinkSeen {
                name: l.name.clone(),
                admin_up: l.admin_up,
                ethernet: l.mac.is_some(),
            },
        );
        if was_up && !l.admin_up {
            self.flush_link(l.ifindex, out);
        }
        let role = self
            .wanted
            .iter()
            .find(|(n, _)| *n == l.name)
            .map(|(_, r)| *r);
        match (role, l.mac) {
            (Some(role), Some(mac)) => {
                let iface = Interface {
                    ifindex: l.ifindex,
                    mac,
                    mtu: u16::try_from(l.mtu).unwrap_or(u16::MAX),
                    role,
                };
                if self.served.get(&l.ifindex) != Some(&iface) {
                    self.served.insert(l.ifindex, iface.clone());
                    out.push(FibUpdate::Interface(iface));
                }
            }
            _ => {
                if self.served.remove(&l.ifindex).is_some() {
                    self.purge_neighbours(l.ifindex, out);
                    out.push(FibUpdate::InterfaceGone { ifindex: l.ifindex });
                }
            }
        }
    }

    /// What the kernel drops silently when a link goes down or away: its
    /// routes and neighbours.
    fn flush_link(&mut self, ifindex: u32, out: &mut Vec<FibUpdate>) {
        let prefixes: Vec<IpPrefix> = self
            .routes
            .iter()
            .filter(|(_, c)| c.iter().any(|r| r.route.ifindex == ifindex))
            .map(|(p, _)| *p)
            .collect();
        for p in prefixes {
            self.change_routes(p, out, |c| c.retain(|r| r.route.ifindex != ifindex));
        }
        self.purge_neighbours(ifindex, out);
    }

    fn purge_neighbours(&mut self, ifindex: u32, out: &mut Vec<FibUpdate>) {
        let gone: Vec<IpAddr> = self
            .neighbours
            .keys()
            .filter(|(i, _)| *i == ifindex)
            .map(|(_, a)| *a)
            .collect();
        for addr in gone {
            self.neighbours.remove(&(ifindex, addr));
            out.push(FibUpdate::NeighbourGone { ifindex, addr });
        }
    }

    fn purge_addrs(&mut self, ifindex: u32, out: &mut Vec<FibUpdate>) {
        let gone: Vec<IpAddr> = self
            .addrs
            .iter()
            .filter(|(i, _)| *i == ifindex)
            .map(|(_, a)| *a)
            .collect();
        for addr in gone {
            self.addrs.remove(&(ifindex, addr));
            out.push(FibUpdate::AddrGone { ifindex, addr });
        }
    }

    /// Edits the candidates for `prefix` and reports the installed route
    /// if it changed.
    fn change_routes(
        &mut self,
        prefix: IpPrefix,
        out: &mut Vec<FibUpdate>,
        edit: impl FnOnce(&mut Vec<KernelRoute>),
    ) {
        let c = self.routes.entry(prefix).or_default();
        let before = best(c);
        edit(c);
        let after = best(c);
        if c.is_empty() {
            self.routes.remove(&prefix);
        }
        if before != after {
            out.push(match after {
                Some(r) => FibUpdate::Route(r),
                None => FibUpdate::RouteGone(prefix),
            });
        }
    }

    fn route(&mut self, kr: KernelRoute, replace: bool, out: &mut Vec<FibUpdate>) {
        self.change_routes(kr.route.prefix, out, |c| {
            if replace {
                // NLM_F_REPLACE replaces the route of the same metric.
                if let Some(old) = c.iter_mut().find(|r| r.metric == kr.metric) {
                    *old = kr;
                    return;
                }
            }
            if !c.contains(&kr) {
                c.push(kr);
            }
        });
    }

    fn route_gone(&mut self, kr: KernelRoute, out: &mut Vec<FibUpdate>) {
        self.change_routes(kr.route.prefix, out, |c| {
            if let Some(at) = c.iter().position(|r| *r == kr) {
                c.remove(at);
            }
        });
    }
}

#[cfg(test)]
mod tests;
