//! The kernel's links, addresses, routes and neighbours over rtnetlink
//! (RFC 3549; the message layouts of `linux/rtnetlink.h`).
//!
//! - [`wire`]: the message parser and the few requests we send. Pure, and
//!   property tested, since every byte of it comes from outside the
//!   process.

pub mod wire;

pub use wire::{Dump, IfAddr, KernelEvent, KernelRoute, Link, Neighbour, OperState, ParseError};
