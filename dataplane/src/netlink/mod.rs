//! The kernel's links, addresses, routes and neighbours, mirrored into the
//! workers' [`Tables`](crate::pipeline::Tables) over rtnetlink (RFC 3549;
//! the message layouts of `linux/rtnetlink.h`), and the trigger that makes
//! the kernel resolve a neighbour the dataplane lacks.
//!
//! The pieces, boringtun style (pure core, thin shell):
//! - [`wire`]: the message parser and the few requests we send. Pure, and
//!   fuzzed (`fuzz/fuzz_targets/netlink_parse.rs`) and property tested,
//!   since every byte of it comes from outside the process.
//! - [`Mirror`]: sans-IO state of the management thread: [`KernelEvent`]s
//!   in, [`FibUpdate`]s out, plus the start-up [`Snapshot`]. It decides what
//!   the dataplane keeps (see its module doc: served interfaces only, every
//!   address, the whole main table, neighbours on served interfaces).
//! - [`RtNetlink`] / [`RtEvents`]: `NETLINK_ROUTE` sockets on libc, one for
//!   requests and one subscribed to `RTNLGRP_LINK`, `NEIGH`, `IPV4_IFADDR`,
//!   `IPV6_IFADDR`, `IPV4_ROUTE` and `IPV6_ROUTE`.
//! - [`ResolveLimiter`]: at most one resolution request per address per
//!   interval.
//!
//! Workers own their tables and take no locks: the management thread runs
//!
//! ```no_run
//! # use dataplane::netlink::*;
//! # use dataplane::route::PortRole;
//! # fn push(_: Vec<FibUpdate>) {}
//! # fn main() -> Result<(), MirrorError> {
//! let mut events = RtEvents::subscribe()?; // before the dump: nothing is missed
//! let mut nl = RtNetlink::open()?;
//! let mut mirror = Mirror::new([("lan0", PortRole::Inside), ("wan0", PortRole::Outside)]);
//! let snapshot = mirror.load(&mut nl)?; // each worker: snapshot.install(&mut tables)
//! # let _ = snapshot;
//! loop {
//!     events.wait(std::time::Duration::from_millis(100))?;
//!     let mut updates = Vec::new();
//!     mirror.follow(&mut events, &mut nl, &mut updates)?;
//!     push(updates); // to every worker's queue; workers call update.apply(&mut tables)
//! }
//! # }
//! ```
//!
//! and serves resolution requests from workers whose
//! [`Fib::resolve`](crate::route::Fib::resolve) answered
//! [`FibMiss::NoNeighbour`](crate::route::FibMiss::NoNeighbour) (the packet
//! itself is dropped and counted as `no-neighbour`) with
//! [`RtNetlink::resolve_neighbour`]: `RTM_NEWNEIGH` with `NTF_USE`, which
//! makes the kernel run the same `neigh_event_send` a packet of its own
//! would, so it sends the ARP request or Neighbour Solicitation with its own
//! retries; the answer comes back as a neighbour notification. No data
//! packet is sent anywhere. (The alternatives were worse: creating an
//! INCOMPLETE entry by hand sends nothing until something uses it, and a
//! UDP datagram to a discard port would put a packet on the wire.)
//!
//! Hand-written rather than the `netlink-packet-route` family of crates:
//! the subset read here is four fixed headers and a dozen attributes, the
//! crates' APIs have changed with most releases, and a parser of our own
//! follows the project's rule for parsers of outside input (no panics,
//! typed errors, a fuzz target), with no dependency beyond `libc`.

mod mirror;
mod resolve;
mod socket;
pub mod wire;

pub use mirror::{FibUpdate, Mirror, MirrorError, Snapshot};
pub use resolve::ResolveLimiter;
pub use socket::{NetlinkError, RtEvents, RtNetlink, REQUEST_TIMEOUT};
pub use wire::{Dump, IfAddr, KernelEvent, KernelRoute, Link, Neighbour, OperState, ParseError};
