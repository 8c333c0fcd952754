//! IKE message codecs for untrusted input: ISAKMP / IKEv1 (RFC 2408 §3,
//! RFC 2407 §4, RFC 2409 Appendix A, RFC 3947, RFC 3706) and IKEv2
//! (RFC 7296 §3, RFC 7383).
//!
//! Every datagram that reaches UDP 500 or 4500 comes through here first,
//! from anyone, before any SA is known. So, as in `dataplane::wire`:
//!
//! - nothing panics on any input: a short or inconsistent buffer is an
//!   [`Error`] naming the protocol condition (and the payload type, so the
//!   state machine can answer with the right notification);
//! - nothing allocates from a length or count field: decoders only copy
//!   bytes that are really in the datagram, and counts are checked against
//!   what was actually found;
//! - lengths are strict: a payload length below its minimum or past the
//!   end of its container, a count that disagrees with the substructures,
//!   bytes left over after the last payload, and reserved fields inside
//!   payloads that are not zero are all errors.
//!
//! Decoding is lossless: for every message the decoder accepts,
//! `encode(decode(bytes)) == bytes`. The state machines rely on it (IKEv1
//! hashes the SA payload body as received, RFC 2409 §5) and the property
//! tests and fuzz targets check it. This is why reserved fields inside
//! payloads are refused rather than ignored as RFC 7296 §3 asks of IKEv2
//! receivers: no implementation we interoperate with sets them, and a
//! decoder that dropped them could not reproduce the bytes. Header flags
//! and minor versions are kept as received instead, since RFC 7296 §3.1
//! makes ignoring those matter for interoperability with later versions.
//!
//! Layout: the pieces both versions share ([`header`] view, the generic
//! payload [`chain`], data [`attribute`]s, [`ident`]ities, known
//! [`vendor`] IDs), then one module per version with a file per payload
//! family. Each version's `message` module is the entry point:
//! [`ikev1::Message`] and [`ikev2::Message`].

/// A protocol number space where every value is legal on the wire but some
/// have RFC names: a `Copy` newtype with one constant per named value, so
/// unknown values survive a decode/encode round trip and `Debug` prints
/// the name where there is one (like rustls' `enum_builder!`).
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident($repr:ty) {
            $( $(#[$vmeta:meta])* $konst:ident = $value:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis struct $name(pub $repr);

        impl $name {
            $( $(#[$vmeta])* pub const $konst: $name = $name($value); )*

            /// The RFC name of this value, `None` for values this module
            /// has no name for.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $( $value => Some(stringify!($konst)), )*
                    _ => None,
                }
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                match self.name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}", self.0),
                }
            }
        }

        impl From<$repr> for $name {
            fn from(value: $repr) -> $name {
                $name(value)
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> $repr {
                value.0
            }
        }
    };
}

pub mod attribute;
pub mod chain;
mod codec;
pub mod error;
pub mod header;
pub mod ident;
pub mod ikev1;
pub mod ikev2;
mod spi;
pub mod vendor;

pub use error::{Error, Result};
