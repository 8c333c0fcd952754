//! Espada's control process: IOS-dialect configuration ([`config`]), the
//! daemon that installs it in the dataplane ([`daemon`], talking over
//! [`dpclient`]), IKEv1 and IKEv2 (sans-IO state machines, arriving with
//! the IKE issues) and the CLI ([`cli`], [`cliserver`], [`show`]).

/// Version string shared by `espada --version` and `show version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub mod addrwatch;
pub mod cli;
pub mod cliserver;
pub mod config;
pub mod daemon;
pub mod dpclient;
pub mod ike;
pub mod ikedriver;
pub mod ikesock;
pub mod ikev1;
pub mod ikev2;
pub mod installed;
pub mod installer;
pub mod show;
pub mod spdbind;
pub mod tunnelif;
