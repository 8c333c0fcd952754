//! IKEv1 (RFC 2407, 2408, 2409) with pre-shared keys, sans-IO: datagrams
//! and time in; datagrams, SA installs and log lines out. The daemon owns
//! the sockets, the clock and the dataplane connection.

pub mod cipher;
pub mod engine;
pub mod policy;
pub mod proposal;
pub mod proxy;

pub use engine::{Engine, Output, PairInfo, Stats};
pub use policy::{
    Dpd, EspTransform, Ikev1Policy, IpsecLifetime, IsakmpProposal, MapEntry, PresharedKey,
};

#[cfg(test)]
mod tests;
