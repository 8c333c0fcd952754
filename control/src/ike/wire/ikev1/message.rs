//! Whole ISAKMP messages: header, then either the payload chain or, with
//! the E flag, ciphertext (RFC 2408 §3.1, §5; RFC 2409 Appendix B).
//!
//! An encrypted message is decoded in two steps, because only the state
//! machine has the key: [`Message::decode`] returns the ciphertext with
//! the header's Next Payload, the state machine decrypts it and calls
//! [`decode_decrypted`], which walks the chain from that type and reports
//! the block-cipher padding after the last payload. Sending is the
//! mirror: [`encode_payloads`], encrypt and pad, then
//! [`Message::encode`] with a [`Body::Encrypted`].

use crate::ike::wire::chain::{ChainWriter, Walker};
use crate::ike::wire::header::{self, Packet, HEADER_LEN, NEXT_PAYLOAD_AT};
use crate::ike::wire::{Error, Result};

use super::header::{Flags, Header};
use super::payload::{Payload, PayloadType};

/// An ISAKMP message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The header (Next Payload and Length follow from the body).
    pub header: Header,
    /// The payloads, or the ciphertext that holds them.
    pub body: Body,
}

/// What follows the header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Body {
    /// Clear payloads (E flag clear).
    Payloads(Vec<Payload>),
    /// Encrypted payloads (E flag set).
    Encrypted {
        /// Type of the first payload inside (the header's Next Payload).
        first_payload: PayloadType,
        /// Everything after the header, as sent.
        ciphertext: Vec<u8>,
    },
}

/// The payloads of a decrypted body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decrypted {
    /// The payloads.
    pub payloads: Vec<Payload>,
    /// Bytes of padding after the last payload.
    pub padding: usize,
}

impl Message {
    /// A message with clear payloads.
    pub fn new(header: Header, payloads: Vec<Payload>) -> Message {
        Message {
            header,
            body: Body::Payloads(payloads),
        }
    }

    /// Decodes a datagram. Bytes after the header's Length are ignored;
    /// a clear body must end exactly with its last payload.
    pub fn decode(datagram: &[u8]) -> Result<Message> {
        let packet = Packet::new_checked(datagram)?;
        let header = Header::parse(&packet)?;
        let first_payload = PayloadType(packet.next_payload());
        let body = if header.flags.contains(Flags::ENCRYPTION) {
            Body::Encrypted {
                first_payload,
                ciphertext: packet.body().to_vec(),
            }
        } else {
            Body::Payloads(decode_payloads(first_payload, packet.body())?)
        };
        Ok(Message { header, body })
    }

    /// Encodes the message: Next Payload fields, payload lengths and the
    /// header's Length are filled in, and the E flag follows the body.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let encrypted = matches!(self.body, Body::Encrypted { .. });
        let flags = self.header.flags.with(Flags::ENCRYPTION, encrypted);
        let mut out = Vec::with_capacity(HEADER_LEN);
        self.header.fields(flags)?.emit(&mut out);
        match &self.body {
            Body::Payloads(payloads) => {
                write_chain(&mut out, Some(NEXT_PAYLOAD_AT), payloads)?;
            }
            Body::Encrypted {
                first_payload,
                ciphertext,
            } => {
                out[NEXT_PAYLOAD_AT] = first_payload.0;
                out.extend_from_slice(ciphertext);
            }
        }
        header::patch_length(&mut out)?;
        Ok(out)
    }

    /// The clear payloads (none for an encrypted body).
    pub fn payloads(&self) -> &[Payload] {
        match &self.body {
            Body::Payloads(p) => p,
            Body::Encrypted { .. } => &[],
        }
    }
}

/// Decodes a payload chain starting with type `first` that must fill
/// `data` exactly.
pub fn decode_payloads(first: PayloadType, data: &[u8]) -> Result<Vec<Payload>> {
    let decrypted = decode_decrypted(first, data)?;
    match decrypted.padding {
        0 => Ok(decrypted.payloads),
        len => Err(Error::TrailingData { len }),
    }
}

/// Decodes a decrypted body: the chain starting with type `first`, then
/// any padding up to the end of `plaintext` (RFC 2409 Appendix B pads the
/// payloads to the cipher's block size; the padding's content is not
/// checked).
pub fn decode_decrypted(first: PayloadType, plaintext: &[u8]) -> Result<Decrypted> {
    let mut walker = Walker::new(first.0, plaintext);
    let mut payloads = Vec::new();
    while let Some(raw) = walker.next_payload()? {
        payloads.push(Payload::decode(raw)?);
    }
    Ok(Decrypted {
        payloads,
        padding: walker.remaining().len(),
    })
}

/// Encodes payloads as a bare chain, for encryption: returns the type of
/// the first payload (for the header's Next Payload) and the bytes, to be
/// padded and encrypted by the caller.
pub fn encode_payloads(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>)> {
    let mut out = Vec::new();
    let first = write_chain(&mut out, None, payloads)?;
    Ok((first, out))
}

fn write_chain(
    out: &mut Vec<u8>,
    link: Option<usize>,
    payloads: &[Payload],
) -> Result<PayloadType> {
    let mut chain = ChainWriter::new(out, link);
    for p in payloads {
        chain.payload(p.payload_type().0, 0, |o| p.encode_body(o))?;
    }
    Ok(PayloadType(chain.first()))
}
