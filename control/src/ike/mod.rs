//! What IKEv1 and IKEv2 share: the message codecs for untrusted input
//! (`wire`) and the key-exchange and key-derivation primitives (`crypto`).

pub mod crypto;
pub mod lifetime;
pub mod packet_log;
pub mod spi;
pub mod table;
#[cfg(test)]
pub(crate) mod test_nat;
#[cfg(test)]
pub(crate) mod test_pairs;
pub mod wire;
