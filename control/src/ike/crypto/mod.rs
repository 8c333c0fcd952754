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
pub mod v1;
pub mod v2;

pub use dh::{DhError, DhGroup, DhPrivate};
pub use prf::{Prf, PrfPlusError};

/// Concatenates byte strings into a buffer that is wiped when dropped: the
/// inputs of the derivations (g^xy, nonces, keys) are secret more often
/// than not, so every concatenation is treated as one.
pub(crate) fn concat_secret(parts: &[&[u8]]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// `N` random octets from the OS RNG: cookies, SPIs, nonces, message IDs.
/// A machine whose RNG fails cannot run IKE at all, hence the panic.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the OS random number generator failed");
    b
}

/// `n` random octets from the OS RNG (nonces of configurable length).
pub(crate) fn random_vec(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    getrandom::getrandom(&mut b).expect("the OS random number generator failed");
    b
}

#[cfg(test)]
pub(crate) mod reference;
