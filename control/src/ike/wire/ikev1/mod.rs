//! ISAKMP / IKEv1 messages (RFC 2408 §3 with the IPsec DOI of RFC 2407 §4,
//! IKE's attributes of RFC 2409 Appendix A, NAT traversal of RFC 3947 and
//! its drafts, dead peer detection of RFC 3706), and Espada's Tunnel
//! Endpoint Discovery probe ([`ted`]).
//!
//! [`Message::decode`] reads a datagram into a [`Header`] and either the
//! typed [`Payload`]s or, when the E flag is set, the ciphertext for the
//! state machine to decrypt and hand to [`decode_decrypted`].
//! [`Message::encode`] and [`encode_payloads`] write them back, filling in
//! every Next Payload and length.

pub mod header;
pub mod iana;
pub mod message;
pub mod notify;
pub mod payload;
pub mod sa;
pub mod ted;

pub use header::{ExchangeType, Flags, Header};
pub use message::{decode_decrypted, decode_payloads, encode_payloads, Body, Decrypted, Message};
pub use notify::{Delete, Notification, NotifyType};
pub use payload::{Certificate, ConfigAttributes, Identification, NatOa, Payload, PayloadType};
pub use sa::{Proposal, ProtocolId, SecurityAssociation, Transform};
pub use ted::{TedError, TedMessage};

#[cfg(test)]
mod tests;
