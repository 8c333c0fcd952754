//! Espada's control process: IOS-dialect configuration, IKEv1 and IKEv2
//! (sans-IO state machines) and the CLI. The protocol modules arrive with
//! the IKE issues; the crate exists now so the workspace has its final shape.

/// Version string shared by `espada --version` and `show version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod cliserver;
pub mod config;
pub mod daemon;
pub mod dpclient;
pub mod ike;
pub mod show;
