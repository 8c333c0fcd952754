//! IKEv2 (RFC 7296) with pre-shared keys: the building blocks of the
//! engine (policy, proposals, traffic selectors, the Encrypted payload).
//! Not wired into the daemon or `config::compile` yet (issue 6).

pub mod crypt;
pub mod policy;
pub mod proposal;
pub mod selectors;

pub use policy::{IkeEncr, IkeInteg, Ikev2Policy, Ikev2Proposal, KeyringPeer};
