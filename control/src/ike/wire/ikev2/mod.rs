//! IKEv2 messages (RFC 7296 §3, with the Encrypted Fragment payload of
//! RFC 7383 §2.5).
//!
//! [`Message::decode`] reads a datagram into a [`Header`] and typed
//! [`Payload`]s; an Encrypted payload (SK) is the last one and exposes its
//! IV, ciphertext and ICV for the lengths the SA's suite uses
//! ([`Encrypted::parts`], [`Encrypted::layout`]). The decrypted contents go
//! to [`decode_payloads`]; [`encode_payloads`] and [`Message::encode`]
//! build the other direction with every Next Payload and length filled in.
//!
//! Unknown payload types follow RFC 7296 §2.5: with the critical bit they
//! fail the decode with [`crate::ike::wire::Error::UnsupportedCriticalPayload`]
//! (answer: UNSUPPORTED_CRITICAL_PAYLOAD), without it they are kept as
//! [`PayloadBody::Unknown`] and the state machine skips them.

pub mod header;
pub mod iana;
pub mod message;
pub mod notify;
pub mod payload;
pub mod sa;
pub mod sk;
pub mod ts;

pub use header::{ExchangeType, Flags, Header};
pub use message::{decode_payloads, encode_payloads, Message};
pub use notify::{Delete, Notify, NotifyType};
pub use payload::{
    AuthMethod, Authentication, Certificate, ConfigAttribute, Configuration, KeyExchange, Payload,
    PayloadBody, PayloadType,
};
pub use sa::{Proposal, ProtocolId, SecurityAssociation, Transform, TransformType};
pub use sk::{Encrypted, EncryptedFragment, SkLayout, SkParts};
pub use ts::TrafficSelector;

#[cfg(test)]
mod tests;
