//! Whole IKEv2 messages: header and payload chain (RFC 7296 §3.1-3.2).
//!
//! A protected message decodes to its clear payloads (usually none) and
//! an [`super::Encrypted`] payload last; the state machine checks the ICV,
//! decrypts, strips the padding ([`super::sk::unpad`]) and decodes the
//! inner chain with [`decode_payloads`] from the SK payload's
//! `first_payload`. For sending, [`encode_payloads`] gives the inner
//! chain to encrypt, and [`Message::encode`] the datagram.

use crate::ike::wire::chain::{ChainWriter, Walker};
use crate::ike::wire::header::{self, Packet, HEADER_LEN, NEXT_PAYLOAD_AT};
use crate::ike::wire::{Error, Result};

use super::header::Header;
use super::payload::{Payload, PayloadBody, PayloadType};

/// An IKEv2 message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The header (Next Payload and Length follow from the payloads).
    pub header: Header,
    /// The payloads; an Encrypted or Encrypted Fragment payload can only
    /// be the last.
    pub payloads: Vec<Payload>,
}

impl Message {
    /// A message of non-critical payloads.
    pub fn new(header: Header, payloads: impl IntoIterator<Item = PayloadBody>) -> Message {
        Message {
            header,
            payloads: payloads.into_iter().map(Payload::from).collect(),
        }
    }

    /// Decodes a datagram. Bytes after the header's Length are ignored;
    /// the payloads must end exactly at Length.
    pub fn decode(datagram: &[u8]) -> Result<Message> {
        let packet = Packet::new_checked(datagram)?;
        let header = Header::parse(&packet)?;
        let payloads = decode_chain(packet.next_payload(), packet.body(), true)?;
        Ok(Message { header, payloads })
    }

    /// Encodes the message with every Next Payload, payload length and
    /// the header's Length filled in.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        self.header.fields()?.emit(&mut out);
        write_chain(&mut out, Some(NEXT_PAYLOAD_AT), &self.payloads, true)?;
        header::patch_length(&mut out)?;
        Ok(out)
    }

    /// The payload bodies, in order.
    pub fn bodies(&self) -> impl Iterator<Item = &PayloadBody> {
        self.payloads.iter().map(|p| &p.body)
    }
}

/// Decodes the payloads found inside an Encrypted payload, starting with
/// type `first`, after decryption and [`super::sk::unpad`]: they must fill
/// `plaintext` exactly, and cannot themselves be encrypted.
pub fn decode_payloads(first: PayloadType, plaintext: &[u8]) -> Result<Vec<Payload>> {
    decode_chain(first.0, plaintext, false)
}

/// Encodes payloads as a bare chain, for encryption: returns the type of
/// the first (the SK payload's Next Payload) and the bytes.
pub fn encode_payloads(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>)> {
    let mut out = Vec::new();
    let first = write_chain(&mut out, None, payloads, false)?;
    Ok((first, out))
}

fn is_encrypted(body: &PayloadBody) -> bool {
    matches!(
        body,
        PayloadBody::Encrypted(_) | PayloadBody::EncryptedFragment(_)
    )
}

const NESTED: Error = Error::Malformed {
    payload: 46,
    reason: "an Encrypted payload inside an Encrypted payload",
};

fn decode_chain(first: u8, data: &[u8], allow_encrypted: bool) -> Result<Vec<Payload>> {
    let mut walker = Walker::new(first, data);
    let mut payloads = Vec::new();
    while let Some(raw) = walker.next_payload()? {
        let payload = Payload::decode(raw)?;
        if is_encrypted(&payload.body) {
            if !allow_encrypted {
                return Err(NESTED);
            }
            // Its Next Payload names the first payload inside, not the
            // next one out here: nothing may follow it (RFC 7296 §3.14).
            if !walker.remaining().is_empty() {
                return Err(Error::EncryptedNotLast);
            }
            walker.stop();
        }
        payloads.push(payload);
    }
    match walker.remaining().len() {
        0 => Ok(payloads),
        len => Err(Error::TrailingData { len }),
    }
}

fn write_chain(
    out: &mut Vec<u8>,
    link: Option<usize>,
    payloads: &[Payload],
    allow_encrypted: bool,
) -> Result<PayloadType> {
    let mut chain = ChainWriter::new(out, link);
    for p in payloads {
        let ty = p.body.payload_type().0;
        let first_inner = match &p.body {
            PayloadBody::Encrypted(sk) => Some(sk.first_payload),
            PayloadBody::EncryptedFragment(skf) => Some(skf.first_payload),
            _ => None,
        };
        match first_inner {
            Some(_) if !allow_encrypted => return Err(NESTED),
            Some(inner) => chain.last_payload(ty, p.flags(), inner.0, |o| p.body.encode_body(o))?,
            None => chain.payload(ty, p.flags(), |o| p.body.encode_body(o))?,
        }
    }
    Ok(PayloadType(chain.first()))
}
