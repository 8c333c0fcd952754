//! IKE key exchange and key derivation, shared by IKEv1 and IKEv2: the
//! Diffie-Hellman groups ([`dh`]), the HMAC pseudo-random functions and
//! IKEv2's prf+ ([`prf`]), and the RFC-exact derivations of each version
//! ([`v1`]: RFC 2409 SKEYID family, IVs, HASHes and KEYMAT; [`v2`]:
//! RFC 7296 SKEYSEED, SK_*, CHILD_SA KEYMAT and the PSK AUTH payload).
//!
//! Every secret lives in a `Zeroizing` buffer or a type that wipes itself
//! on drop, and no `Debug` output shows key bytes: these values end up in
//! logs and `show` output far from where they were made.

pub mod dh;
pub mod prf;

pub use dh::{DhError, DhGroup, DhPrivate};
pub use prf::{Prf, PrfPlusError};

#[cfg(test)]
pub(crate) mod reference;
