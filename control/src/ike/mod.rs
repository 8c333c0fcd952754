//! What IKEv1 and IKEv2 share: the key-exchange and key-derivation
//! primitives (and, beside them, the payload codecs).

pub mod crypto;
