//! Espada's control process: IOS-dialect configuration ([`config`]), IKEv1
//! and IKEv2 (sans-IO state machines, arriving with the IKE issues) and the
//! CLI ([`cli`], [`show`]).

/// Version string shared by `espada --version` and `show version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod cli;
pub mod config;
pub mod show;
