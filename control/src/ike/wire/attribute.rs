//! Data attributes (RFC 2408 §3.3), the TV/TLV pairs inside IKEv1
//! transforms and Mode Config payloads, and inside IKEv2 transforms
//! (RFC 7296 §3.3.5, same encoding):
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |A|       Attribute Type        |    AF=0  Attribute Length     |
//! |F|                             |    AF=1  Attribute Value      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! .                   AF=0  Attribute Value                       .
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The form (basic TV or variable TLV) is kept, so a life duration sent
//! as a 4-byte TLV comes back out as one.

use super::codec::Reader;
use super::{Error, Result};

/// The Attribute Format bit: set for the basic (TV) form.
const AF: u16 = 0x8000;

/// One data attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Attribute type, 15 bits (without the AF bit).
    pub attr_type: u16,
    /// Value, in the form it is (or will be) sent.
    pub value: AttributeValue,
}

/// An attribute value in basic or variable form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    /// TV: a two-byte value in place of the length (AF = 1).
    Basic(u16),
    /// TLV: a length and that many bytes (AF = 0).
    Variable(Vec<u8>),
}

impl Attribute {
    /// A basic (TV) attribute.
    pub fn basic(attr_type: u16, value: u16) -> Attribute {
        Attribute {
            attr_type,
            value: AttributeValue::Basic(value),
        }
    }

    /// A variable-length (TLV) attribute.
    pub fn variable(attr_type: u16, value: impl Into<Vec<u8>>) -> Attribute {
        Attribute {
            attr_type,
            value: AttributeValue::Variable(value.into()),
        }
    }

    /// The value as an integer: a basic value, or a variable one of at
    /// most 8 bytes read big-endian (life durations are often 4 bytes,
    /// RFC 2407 §4.5). `None` for longer values.
    pub fn as_u64(&self) -> Option<u64> {
        match &self.value {
            AttributeValue::Basic(v) => Some(u64::from(*v)),
            AttributeValue::Variable(bytes) if bytes.len() <= 8 => {
                Some(bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
            }
            AttributeValue::Variable(_) => None,
        }
    }

    /// Bytes this attribute takes on the wire.
    pub fn encoded_len(&self) -> usize {
        match &self.value {
            AttributeValue::Basic(_) => 4,
            AttributeValue::Variable(bytes) => 4 + bytes.len(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        if self.attr_type & AF != 0 {
            return Err(Error::Malformed {
                payload: 0,
                reason: "attribute type above 15 bits",
            });
        }
        match &self.value {
            AttributeValue::Basic(v) => {
                out.extend_from_slice(&(self.attr_type | AF).to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            AttributeValue::Variable(bytes) => {
                let len = u16::try_from(bytes.len()).map_err(|_| Error::TooLong {
                    what: "attribute value",
                })?;
                out.extend_from_slice(&self.attr_type.to_be_bytes());
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(bytes);
            }
        }
        Ok(())
    }
}

/// The first attribute of a type, if any.
pub fn find(attributes: &[Attribute], attr_type: u16) -> Option<&Attribute> {
    attributes.iter().find(|a| a.attr_type == attr_type)
}

/// Decodes attributes filling `data` exactly; `payload` names the
/// container in errors.
pub(crate) fn decode_list(payload: u8, data: &[u8]) -> Result<Vec<Attribute>> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    while r.remaining() > 0 {
        let available = r.remaining();
        let (Some(raw_type), Some(word)) = (r.u16(), r.u16()) else {
            return Err(Error::AttributePastEnd {
                payload,
                attr_type: 0,
                needed: 4,
                available,
            });
        };
        let attr_type = raw_type & !AF;
        let value = if raw_type & AF != 0 {
            AttributeValue::Basic(word)
        } else {
            let len = usize::from(word);
            let bytes = r.take(len).ok_or(Error::AttributePastEnd {
                payload,
                attr_type,
                needed: 4 + len,
                available,
            })?;
            AttributeValue::Variable(bytes.to_vec())
        };
        out.push(Attribute { attr_type, value });
    }
    Ok(out)
}

/// Appends attributes in order.
pub(crate) fn encode_list(attributes: &[Attribute], out: &mut Vec<u8>) -> Result<()> {
    attributes.iter().try_for_each(|a| a.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_variable_forms_decode_and_keep_their_form() {
        // Encryption AES-CBC (TV), life duration 86400 s as a 4-byte TLV.
        let data = [
            0x80, 0x01, 0x00, 0x07, 0x00, 0x0c, 0x00, 0x04, 0, 1, 0x51, 0x80,
        ];
        let attrs = decode_list(3, &data).unwrap();
        assert_eq!(
            attrs,
            [
                Attribute::basic(1, 7),
                Attribute::variable(12, [0, 1, 0x51, 0x80])
            ]
        );
        assert_eq!(attrs[1].as_u64(), Some(86_400));
        let mut out = Vec::new();
        encode_list(&attrs, &mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn tlv_length_past_the_end_is_refused() {
        let data = [0x00, 0x0c, 0x00, 0x05, 0, 1, 0x51, 0x80];
        assert_eq!(
            decode_list(3, &data),
            Err(Error::AttributePastEnd {
                payload: 3,
                attr_type: 12,
                needed: 9,
                available: 8
            })
        );
    }

    #[test]
    fn a_cut_attribute_header_is_refused() {
        for n in 1..4 {
            assert_eq!(
                decode_list(3, &[0x80, 0x01, 0x00][..n]),
                Err(Error::AttributePastEnd {
                    payload: 3,
                    attr_type: 0,
                    needed: 4,
                    available: n
                })
            );
        }
    }

    #[test]
    fn variable_values_longer_than_eight_bytes_have_no_integer() {
        assert_eq!(Attribute::variable(12, [1; 9]).as_u64(), None);
        assert_eq!(Attribute::variable(12, []).as_u64(), Some(0));
    }

    #[test]
    fn a_type_using_the_af_bit_cannot_be_encoded() {
        let mut out = Vec::new();
        assert!(encode_list(&[Attribute::basic(0x8001, 1)], &mut out).is_err());
    }
}
