//! Traffic Selector payloads, TSi and TSr (RFC 7296 §3.13).
//!
//! ```text
//! TS body:  Number of TSs | RESERVED (3) | Traffic Selectors ...
//! Selector: TS Type | IP Protocol ID | Selector Length (2)
//!           Start Port (2) | End Port (2)
//!           Starting Address | Ending Address   (4 + 4 or 16 + 16)
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ike::wire::codec::{count_u16, count_u8, Reader};
use crate::ike::wire::{Error, Result};

/// TS_IPV4_ADDR_RANGE.
pub const TS_IPV4_ADDR_RANGE: u8 = 7;
/// TS_IPV6_ADDR_RANGE.
pub const TS_IPV6_ADDR_RANGE: u8 = 8;

const SELECTOR_HEADER_LEN: usize = 4;
const IPV4_LEN: usize = 16;
const IPV6_LEN: usize = 40;

/// One traffic selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE.
    Ipv4 {
        /// IP protocol, 0 for any.
        ip_protocol: u8,
        /// First port (0 for any).
        start_port: u16,
        /// Last port (65535 for any).
        end_port: u16,
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// TS_IPV6_ADDR_RANGE.
    Ipv6 {
        /// IP protocol, 0 for any.
        ip_protocol: u8,
        /// First port.
        start_port: u16,
        /// Last port.
        end_port: u16,
        /// First address.
        start: Ipv6Addr,
        /// Last address.
        end: Ipv6Addr,
    },
    /// Another selector type (e.g. TS_FC_ADDR_RANGE), kept as sent.
    Other {
        /// TS Type.
        ts_type: u8,
        /// The byte after TS Type (IP Protocol ID for address selectors).
        ip_protocol: u8,
        /// Everything after Selector Length.
        data: Vec<u8>,
    },
}

impl TrafficSelector {
    /// Every port of every protocol between two IPv4 addresses.
    pub fn ipv4_any(start: Ipv4Addr, end: Ipv4Addr) -> TrafficSelector {
        TrafficSelector::Ipv4 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start,
            end,
        }
    }

    /// Every port of every protocol between two IPv6 addresses.
    pub fn ipv6_any(start: Ipv6Addr, end: Ipv6Addr) -> TrafficSelector {
        TrafficSelector::Ipv6 {
            ip_protocol: 0,
            start_port: 0,
            end_port: u16::MAX,
            start,
            end,
        }
    }

    fn decode(payload: u8, ts_type: u8, ip_protocol: u8, data: &[u8]) -> Result<TrafficSelector> {
        let expected = match ts_type {
            TS_IPV4_ADDR_RANGE => IPV4_LEN,
            TS_IPV6_ADDR_RANGE => IPV6_LEN,
            _ => {
                return Ok(TrafficSelector::Other {
                    ts_type,
                    ip_protocol,
                    data: data.to_vec(),
                })
            }
        };
        if data.len() + SELECTOR_HEADER_LEN != expected {
            return Err(Error::Malformed {
                payload,
                reason: "traffic selector length does not fit its type",
            });
        }
        let mut r = Reader::new(data);
        let (Some(start_port), Some(end_port)) = (r.u16(), r.u16()) else {
            return Err(Error::Malformed {
                payload,
                reason: "traffic selector length does not fit its type",
            });
        };
        let addrs = r.rest();
        let half = addrs.len() / 2;
        Ok(if ts_type == TS_IPV4_ADDR_RANGE {
            TrafficSelector::Ipv4 {
                ip_protocol,
                start_port,
                end_port,
                start: Ipv4Addr::from(<[u8; 4]>::try_from(&addrs[..half]).unwrap_or_default()),
                end: Ipv4Addr::from(<[u8; 4]>::try_from(&addrs[half..]).unwrap_or_default()),
            }
        } else {
            TrafficSelector::Ipv6 {
                ip_protocol,
                start_port,
                end_port,
                start: Ipv6Addr::from(<[u8; 16]>::try_from(&addrs[..half]).unwrap_or_default()),
                end: Ipv6Addr::from(<[u8; 16]>::try_from(&addrs[half..]).unwrap_or_default()),
            }
        })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            TrafficSelector::Ipv4 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => {
                out.extend_from_slice(&[TS_IPV4_ADDR_RANGE, *ip_protocol, 0, IPV4_LEN as u8]);
                out.extend_from_slice(&start_port.to_be_bytes());
                out.extend_from_slice(&end_port.to_be_bytes());
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TrafficSelector::Ipv6 {
                ip_protocol,
                start_port,
                end_port,
                start,
                end,
            } => {
                out.extend_from_slice(&[TS_IPV6_ADDR_RANGE, *ip_protocol, 0, IPV6_LEN as u8]);
                out.extend_from_slice(&start_port.to_be_bytes());
                out.extend_from_slice(&end_port.to_be_bytes());
                out.extend_from_slice(&start.octets());
                out.extend_from_slice(&end.octets());
            }
            TrafficSelector::Other {
                ts_type,
                ip_protocol,
                data,
            } => {
                if matches!(*ts_type, TS_IPV4_ADDR_RANGE | TS_IPV6_ADDR_RANGE) {
                    return Err(Error::Malformed {
                        payload: 0,
                        reason: "an Other traffic selector must not have an address-range type",
                    });
                }
                let len = count_u16(SELECTOR_HEADER_LEN + data.len(), "traffic selector")?;
                out.extend_from_slice(&[*ts_type, *ip_protocol]);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(data);
            }
        }
        Ok(())
    }
}

/// Reads a TSi/TSr body (`payload` 44 or 45): the count must match the
/// selectors, which must fill the body exactly.
pub(crate) fn decode(payload: u8, body: &[u8]) -> Result<Vec<TrafficSelector>> {
    let mut r = Reader::new(body);
    let (Some(declared), Some(reserved)) = (r.u8(), r.array::<3>()) else {
        return Err(Error::PayloadTooShort {
            payload,
            length: body.len() + 4,
            minimum: 8,
        });
    };
    if reserved != [0; 3] {
        return Err(Error::ReservedNotZero { payload });
    }
    let mut selectors = Vec::new();
    while r.remaining() > 0 {
        let available = r.remaining();
        let (Some(ts_type), Some(ip_protocol), Some(length)) = (r.u8(), r.u8(), r.u16()) else {
            return Err(Error::PayloadPastEnd {
                payload,
                length: SELECTOR_HEADER_LEN,
                available,
            });
        };
        let length = usize::from(length);
        if length < SELECTOR_HEADER_LEN {
            return Err(Error::PayloadTooShort {
                payload,
                length,
                minimum: SELECTOR_HEADER_LEN,
            });
        }
        let data = r
            .take(length - SELECTOR_HEADER_LEN)
            .ok_or(Error::PayloadPastEnd {
                payload,
                length,
                available,
            })?;
        selectors.push(TrafficSelector::decode(
            payload,
            ts_type,
            ip_protocol,
            data,
        )?);
    }
    if selectors.len() != usize::from(declared) {
        return Err(Error::CountMismatch {
            payload,
            what: "traffic selector",
            declared: usize::from(declared),
            found: selectors.len(),
        });
    }
    Ok(selectors)
}

/// Appends a TSi/TSr body.
pub(crate) fn encode(selectors: &[TrafficSelector], out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&[count_u8(selectors.len(), "traffic selectors")?, 0, 0, 0]);
    selectors.iter().try_for_each(|ts| ts.encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lan_a() -> TrafficSelector {
        TrafficSelector::ipv4_any(Ipv4Addr::new(198, 18, 1, 0), Ipv4Addr::new(198, 18, 1, 255))
    }

    #[test]
    fn ipv4_and_ipv6_ranges_round_trip() {
        let v6 = TrafficSelector::Ipv6 {
            ip_protocol: 17,
            start_port: 500,
            end_port: 500,
            start: "fd00::1".parse().unwrap(),
            end: "fd00::ffff".parse().unwrap(),
        };
        let mut body = Vec::new();
        encode(&[lan_a(), v6.clone()], &mut body).unwrap();
        assert_eq!(body.len(), 4 + 16 + 40);
        assert_eq!(&body[..8], &[2, 0, 0, 0, 7, 0, 0, 16]);
        assert_eq!(decode(44, &body).unwrap(), [lan_a(), v6]);
    }

    #[test]
    fn count_must_match_the_selectors() {
        let mut body = Vec::new();
        encode(&[lan_a()], &mut body).unwrap();
        body[0] = 2;
        assert_eq!(
            decode(44, &body),
            Err(Error::CountMismatch {
                payload: 44,
                what: "traffic selector",
                declared: 2,
                found: 1
            })
        );
    }

    #[test]
    fn selector_lengths_must_fit_type_and_payload() {
        let mut body = Vec::new();
        encode(&[lan_a()], &mut body).unwrap();
        let mut short = body.clone();
        short[7] = 12;
        assert!(matches!(decode(44, &short), Err(Error::Malformed { .. })));
        let mut long = body.clone();
        long[7] = 17;
        assert!(matches!(
            decode(44, &long),
            Err(Error::PayloadPastEnd { .. })
        ));
        let mut tiny = body.clone();
        tiny[7] = 3;
        assert!(matches!(
            decode(44, &tiny),
            Err(Error::PayloadTooShort { .. })
        ));
        assert!(matches!(
            decode(44, &body[..6]),
            Err(Error::PayloadPastEnd { .. })
        ));
        assert!(matches!(
            decode(44, &body[..3]),
            Err(Error::PayloadTooShort { .. })
        ));
        let mut reserved = body;
        reserved[2] = 1;
        assert_eq!(
            decode(45, &reserved),
            Err(Error::ReservedNotZero { payload: 45 })
        );
    }

    #[test]
    fn other_selector_types_are_kept() {
        let body = [1, 0, 0, 0, 9, 0, 0, 8, 1, 2, 3, 4];
        let ts = decode(44, &body).unwrap();
        assert_eq!(
            ts,
            [TrafficSelector::Other {
                ts_type: 9,
                ip_protocol: 0,
                data: vec![1, 2, 3, 4]
            }]
        );
        let mut out = Vec::new();
        encode(&ts, &mut out).unwrap();
        assert_eq!(out, body);
    }
}
