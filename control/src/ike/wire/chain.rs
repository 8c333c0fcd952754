//! The generic payload header and the Next Payload chain (RFC 2408 §3.2,
//! RFC 7296 §3.2), the same four bytes in both versions:
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Next Payload  |C|  RESERVED   |         Payload Length        |
//! +---------------+---------------+-------------------------------+
//! ```
//!
//! IKEv1 has a whole RESERVED byte where IKEv2 has the critical bit; the
//! version decoders judge that byte, this module only walks the lengths.
//! Each step consumes at least four bytes, so a walk always ends.

use super::codec::patch_len16;
use super::{Error, Result};

/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// One payload as found in the chain, before its body is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// This payload's type (from the previous Next Payload field).
    pub payload_type: u8,
    /// Its own Next Payload field.
    pub next_payload: u8,
    /// The byte after Next Payload: RESERVED (IKEv1), C + RESERVED (IKEv2).
    pub flags: u8,
    /// The body after the generic header, exactly Payload Length - 4 bytes.
    pub body: &'a [u8],
}

/// Walks a payload chain from a first type over `data`.
#[derive(Debug, Clone)]
pub struct Walker<'a> {
    rest: &'a [u8],
    next: u8,
}

impl<'a> Walker<'a> {
    /// A walk starting with a payload of type `first` (the header's Next
    /// Payload) at the start of `data`.
    pub fn new(first: u8, data: &'a [u8]) -> Walker<'a> {
        Walker {
            rest: data,
            next: first,
        }
    }

    /// The next payload, `Ok(None)` when the last one had Next Payload 0.
    pub fn next_payload(&mut self) -> Result<Option<RawPayload<'a>>> {
        if self.next == 0 {
            return Ok(None);
        }
        let payload_type = self.next;
        let available = self.rest.len();
        let Some(&[next_payload, flags, len_hi, len_lo]) = self.rest.get(..GENERIC_HEADER_LEN)
        else {
            return Err(Error::TruncatedPayloadHeader {
                payload: payload_type,
                available,
            });
        };
        let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if length < GENERIC_HEADER_LEN {
            return Err(Error::PayloadTooShort {
                payload: payload_type,
                length,
                minimum: GENERIC_HEADER_LEN,
            });
        }
        if length > available {
            return Err(Error::PayloadPastEnd {
                payload: payload_type,
                length,
                available,
            });
        }
        let (this, rest) = self.rest.split_at(length);
        self.rest = rest;
        self.next = next_payload;
        Ok(Some(RawPayload {
            payload_type,
            next_payload,
            flags,
            body: &this[GENERIC_HEADER_LEN..],
        }))
    }

    /// The bytes after the payloads walked so far: after the last payload,
    /// padding (decrypted IKEv1 text) or junk.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// Ends the walk: the last Next Payload was not a link in this chain
    /// (the IKEv2 Encrypted payload's names the first inner payload).
    pub fn stop(&mut self) {
        self.next = 0;
    }
}

/// Appends payloads with their generic headers, filling in each Next
/// Payload and Payload Length.
pub(crate) struct ChainWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Where the next payload's type goes: the header's Next Payload, the
    /// previous payload's, or nowhere yet.
    link: Option<usize>,
    first: u8,
    closed: bool,
}

impl<'o> ChainWriter<'o> {
    /// Appends to `out`; `link` is the offset of the header's Next Payload
    /// byte, or `None` for a bare chain (plaintext to be encrypted).
    pub(crate) fn new(out: &'o mut Vec<u8>, link: Option<usize>) -> ChainWriter<'o> {
        ChainWriter {
            out,
            link,
            first: 0,
            closed: false,
        }
    }

    /// Appends one payload whose body `body` writes.
    pub(crate) fn payload(
        &mut self,
        payload_type: u8,
        flags: u8,
        body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.write(payload_type, flags, 0, body)?;
        Ok(())
    }

    /// Appends a payload that must be the last one and whose own Next
    /// Payload is `next` (IKEv2 Encrypted: the first inner payload).
    pub(crate) fn last_payload(
        &mut self,
        payload_type: u8,
        flags: u8,
        next: u8,
        body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        self.write(payload_type, flags, next, body)?;
        self.link = None;
        self.closed = true;
        Ok(())
    }

    fn write(
        &mut self,
        payload_type: u8,
        flags: u8,
        next: u8,
        body: impl FnOnce(&mut Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        if self.closed {
            return Err(Error::EncryptedNotLast);
        }
        if let Some(at) = self.link {
            self.out[at] = payload_type;
        }
        if self.first == 0 {
            self.first = payload_type;
        }
        let start = self.out.len();
        self.out.extend_from_slice(&[next, flags, 0, 0]);
        body(self.out)?;
        patch_len16(self.out, start + 2, start, "payload")?;
        self.link = Some(start);
        Ok(())
    }

    /// Type of the first payload written, 0 if none (for a bare chain).
    pub(crate) fn first(&self) -> u8 {
        self.first
    }
}

/// Splits the substructures inside an SA payload, proposals (`kind` 2)
/// or transforms (`kind` 3), which both versions chain the same way
/// (RFC 2408 §3.5-3.6, RFC 7296 §3.3.1): a first byte of `kind` if more
/// follow or 0 for the last, a RESERVED byte, a two-byte length of at
/// least `minimum`. Returns each body after those four bytes; the
/// substructures must fill `data` exactly.
pub(crate) fn split_substructures(kind: u8, minimum: usize, data: &[u8]) -> Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(&[more, reserved, len_hi, len_lo]) = rest.get(..GENERIC_HEADER_LEN) {
        let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        if length < minimum {
            return Err(Error::PayloadTooShort {
                payload: kind,
                length,
                minimum,
            });
        }
        if length > rest.len() {
            return Err(Error::PayloadPastEnd {
                payload: kind,
                length,
                available: rest.len(),
            });
        }
        if reserved != 0 {
            return Err(Error::ReservedNotZero { payload: kind });
        }
        let (this, tail) = rest.split_at(length);
        out.push(&this[GENERIC_HEADER_LEN..]);
        rest = tail;
        match (more, rest.is_empty()) {
            (0, true) => return Ok(out),
            (0, false) => {
                return Err(Error::BadSubstructureChain {
                    payload: kind,
                    reason: "bytes after the last substructure",
                })
            }
            (m, false) if m == kind => {}
            (m, true) if m == kind => {
                return Err(Error::BadSubstructureChain {
                    payload: kind,
                    reason: "more substructures announced than present",
                })
            }
            _ => {
                return Err(Error::BadSubstructureChain {
                    payload: kind,
                    reason: "substructure type is neither more nor last",
                })
            }
        }
    }
    if rest.is_empty() && out.is_empty() {
        return Ok(out);
    }
    Err(Error::TruncatedPayloadHeader {
        payload: kind,
        available: rest.len(),
    })
}

/// Appends substructures of a `kind` (2 proposals, 3 transforms), each
/// with its four-byte header, the first byte saying whether more follow.
pub(crate) fn write_substructures<T>(
    kind: u8,
    items: &[T],
    out: &mut Vec<u8>,
    mut body: impl FnMut(&T, &mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    for (i, item) in items.iter().enumerate() {
        let more = if i + 1 < items.len() { kind } else { 0 };
        let start = out.len();
        out.extend_from_slice(&[more, 0, 0, 0]);
        body(item, out)?;
        patch_len16(out, start + 2, start, "substructure")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_yields_each_body_and_ends_at_next_payload_zero() {
        let data = [13, 0, 0, 6, 0xaa, 0xbb, 0, 0, 0, 4, 0xff];
        let mut w = Walker::new(8, &data);
        let p = w.next_payload().unwrap().unwrap();
        assert_eq!(
            (p.payload_type, p.next_payload, p.body),
            (8, 13, &[0xaa, 0xbb][..])
        );
        let p = w.next_payload().unwrap().unwrap();
        assert_eq!((p.payload_type, p.next_payload, p.body), (13, 0, &[][..]));
        assert_eq!(w.next_payload(), Ok(None));
        assert_eq!(w.remaining(), &[0xff]);
    }

    #[test]
    fn payload_lengths_zero_to_three_are_refused() {
        for len in 0u8..4 {
            let data = [0, 0, 0, len, 0, 0, 0, 0];
            assert_eq!(
                Walker::new(10, &data).next_payload(),
                Err(Error::PayloadTooShort {
                    payload: 10,
                    length: usize::from(len),
                    minimum: 4
                })
            );
        }
    }

    #[test]
    fn payload_length_past_the_end_is_refused() {
        let data = [0, 0, 0, 9, 1, 2, 3, 4];
        assert_eq!(
            Walker::new(10, &data).next_payload(),
            Err(Error::PayloadPastEnd {
                payload: 10,
                length: 9,
                available: 8
            })
        );
    }

    #[test]
    fn announced_payload_without_room_for_its_header_is_refused() {
        for n in 0..4 {
            let data = vec![0u8; n];
            assert_eq!(
                Walker::new(13, &data).next_payload(),
                Err(Error::TruncatedPayloadHeader {
                    payload: 13,
                    available: n
                })
            );
        }
    }

    #[test]
    fn writer_links_payloads_and_fills_lengths() {
        let mut out = vec![0u8; 2];
        let mut w = ChainWriter::new(&mut out, Some(0));
        w.payload(8, 0, |o| {
            o.extend_from_slice(&[1, 2]);
            Ok(())
        })
        .unwrap();
        w.payload(13, 0, |_| Ok(())).unwrap();
        assert_eq!(out, [8, 0, 13, 0, 0, 6, 1, 2, 0, 0, 0, 4]);
    }

    #[test]
    fn nothing_may_follow_a_last_payload() {
        let mut out = Vec::new();
        let mut w = ChainWriter::new(&mut out, None);
        w.last_payload(46, 0, 35, |_| Ok(())).unwrap();
        assert_eq!(w.first(), 46);
        assert_eq!(w.payload(41, 0, |_| Ok(())), Err(Error::EncryptedNotLast));
    }

    #[test]
    fn substructures_split_and_check_their_chain() {
        let data = [3, 0, 0, 5, 9, 0, 0, 0, 4];
        assert_eq!(
            split_substructures(3, 4, &data).unwrap(),
            [&[9][..], &[][..]]
        );
        let mut out = Vec::new();
        write_substructures(3, &[vec![9u8], vec![]], &mut out, |b, o| {
            o.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, data);
        assert_eq!(split_substructures(3, 4, &[]).unwrap(), Vec::<&[u8]>::new());
    }

    #[test]
    fn substructure_chain_errors_are_typed() {
        let bad = |data: &[u8]| split_substructures(2, 8, data).unwrap_err();
        // Last says more, but nothing follows.
        assert!(matches!(
            bad(&[2, 0, 0, 8, 1, 1, 0, 0]),
            Error::BadSubstructureChain { payload: 2, .. }
        ));
        // Says last, but bytes follow.
        assert!(matches!(
            bad(&[0, 0, 0, 8, 1, 1, 0, 0, 0]),
            Error::BadSubstructureChain { payload: 2, .. }
        ));
        // Neither 2 nor 0.
        assert!(matches!(
            bad(&[3, 0, 0, 8, 1, 1, 0, 0]),
            Error::BadSubstructureChain { payload: 2, .. }
        ));
        assert_eq!(
            bad(&[0, 1, 0, 8, 1, 1, 0, 0]),
            Error::ReservedNotZero { payload: 2 }
        );
        assert!(matches!(
            bad(&[0, 0, 0, 7, 1, 1, 0]),
            Error::PayloadTooShort { .. }
        ));
        assert!(matches!(
            bad(&[0, 0, 0, 9, 1, 1, 0, 0]),
            Error::PayloadPastEnd { .. }
        ));
        assert!(matches!(
            bad(&[0, 0, 0]),
            Error::TruncatedPayloadHeader { .. }
        ));
    }
}
