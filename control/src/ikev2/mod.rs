//! IKEv2 (RFC 7296) with pre-shared keys, sans-IO: datagrams and time in;
//! datagrams, SA installs and log lines out, in the shape of
//! [`crate::ikev1`] so one driver can carry out both engines.
//!
//! Not wired into the daemon or `config::compile` yet: that is later work
//! (issue 6). What is here: IKE_SA_INIT (INVALID_KE_PAYLOAD retry,
//! NO_PROPOSAL_CHOSEN, NAT detection, cookies), IKE_AUTH with asymmetric
//! PSKs and the first CHILD_SA (traffic-selector narrowing,
//! INITIAL_CONTACT), INFORMATIONAL (deletes, liveness checks),
//! retransmission and duplicate answers, CREATE_CHILD_SA for new
//! CHILD_SAs and CHILD_SA rekeys (PFS when configured), IKE SA rekeys in
//! both roles (the IKE SA's initiator at 85-95% of the lifetime, the
//! responder at the lifetime; simultaneous rekeys by RFC 7296 §2.8.1;
//! the CHILD_SAs move over untouched), periodic and on-demand DPD (ESP
//! counts as life on demand), NAT keepalives when configured and behind a
//! NAT, bringing a map entry up without traffic (`initiate_entry`), the
//! `show crypto ikev2 sa [detailed]` view. Not yet: IKE fragmentation;
//! on-demand DPD does not wait for outbound traffic (the engine does not
//! see it) but checks an SA idle both ways for `interval`.

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
