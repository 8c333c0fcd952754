//! IKEv2 (RFC 7296) with pre-shared keys, sans-IO: datagrams and time in;
//! datagrams, SA installs and log lines out, in the shape of
//! [`crate::ikev1`] so one driver can carry out both engines.
//!
//! Not wired into the daemon or `config::compile` yet: that is later work
//! (issue 6). What is here: IKE_SA_INIT (INVALID_KE_PAYLOAD retry,
//! NO_PROPOSAL_CHOSEN, NAT detection, cookies), IKE_AUTH with asymmetric
//! PSKs and the first CHILD_SA (traffic-selector narrowing), INFORMATIONAL
//! (deletes, liveness checks), retransmission and duplicate answers,
//! CREATE_CHILD_SA for new CHILD_SAs and CHILD_SA rekeys (PFS when
//! configured), the `show crypto ikev2 sa [detailed]` view. Not yet: IKE
//! SA rekey, IKE fragmentation, on-demand DPD, NAT keepalives.

pub mod crypt;
pub mod engine;
pub mod policy;
pub mod proposal;
pub mod selectors;
pub mod stats;

pub use engine::{Engine, Ikev2SaView, Output, Stats};
pub use policy::{IkeEncr, IkeInteg, Ikev2Policy, Ikev2Proposal, KeyringPeer};

#[cfg(test)]
mod tests;
