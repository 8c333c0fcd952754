//! Espada's packet path: everything between a received frame and a frame to
//! transmit, kept free of sockets and threads so it can be tested, fuzzed and
//! benchmarked alone (the boringtun split); only `io`, `worker` and `tunif`
//! touch sockets, devices and threads.
//!
//! - [`wire`]: zero-copy views over Ethernet, IPv4/6, UDP, ESP, ICMP (smoltcp style).
//! - [`crypto`]: ESP cipher/integrity suites behind one batched trait.
//! - [`esp`]: RFC 4303 encapsulation and decapsulation, tunnel and transport,
//!   RFC 3948 UDP encapsulation.
//! - [`sa`], [`replay`], [`spd`]: the SADB, the RFC 6479 anti-replay window and
//!   the crypto-map policy database.
//! - [`route`]: interfaces, routes and neighbours (the kernel's, mirrored).
//! - [`netlink`]: the kernel's links, addresses, routes and neighbours
//!   mirrored over rtnetlink, and the neighbour resolution trigger.
//! - [`pipeline`]: the stages a worker runs over a received batch.
//! - [`io`], [`worker`]: AF_XDP sockets on a shared UMEM and the poll loop
//!   that moves frames between them through the pipeline.
//! - [`tunif`]: TUN devices for virtual tunnel interfaces: the gateway's own
//!   traffic through a tunnel.
//! - [`api`]: the SA and policy definitions shared with the control process.

pub mod api;
pub mod clock;
pub mod counters;
pub mod crypto;
pub mod esp;
pub mod handoff;
pub mod inject;
pub mod io;
pub mod mgmt;
pub mod nat;
pub mod netlink;
pub mod pipeline;
pub mod prefetch;
pub mod reassembly;
pub mod replay;
pub mod route;
pub mod sa;
pub mod spd;
#[doc(hidden)]
pub mod testkit;
pub mod tunif;
pub mod update;
pub mod wire;
pub mod worker;
