//! IKE pieces shared by the IKEv1 and IKEv2 state machines.

pub mod wire;
