//! Tunnel Endpoint Discovery (TED) probe and response, Espada's format.
//!
//! Cisco IOS's TED (`crypto map M N ipsec-isakmp dynamic D discover`) is
//! proprietary and unpublished. What its debug output (seed 004) shows:
//! the probe is an unencrypted ISAKMP message in its own exchange
//! (`PEER_DISCOVERY`), sent towards the destination host of the packet
//! that raised the acquire, carrying a Cisco vendor ID and ID payloads:
//! the prober's own address (`ID_IPV4_ADDR`, UDP 500) and its proxy
//! (`ID_IPV4_ADDR_SUBNET`); the gateway in front of that host intercepts
//! it and answers to the address in the payload with an ID payload of its
//! own address, and the prober then runs Main Mode with it. The exchange
//! type number, the vendor ID's bytes, the payload order and how a
//! response is bound to its probe are not in any public source we could
//! find (Wireshark's ISAKMP dissector knows no TED exchange either).
//!
//! So this is a **documented Espada format, not IOS's**: Espada gateways
//! discover each other; interoperability with IOS TED is not claimed. It
//! follows what IOS shows as closely as the evidence goes:
//!
//! ```text
//! HDR  CKY-I = probe id (random, non-zero), CKY-R = 0 in the probe and
//!      random non-zero in the response; exchange type 243 (private use,
//!      RFC 2408 §3.1: 240-255); flags 0 (never encrypted); Message ID 0
//! VID  "Espada TED v1" padded with zeros to 16 octets
//! NONCE  8-64 random octets chosen by the prober, echoed by the responder
//! ID   the sender's gateway (outside) address: ID_IPV4_ADDR/ID_IPV6_ADDR,
//!      protocol 17, port 500 (IOS's "1st ID")
//! ID   the sender's local proxy, the protected side of its crypto ACL line
//!      (IOS's "2nd ID"), with the line's protocol and port
//! ID   the sender's remote proxy: the other side of that line
//! ```
//!
//! A response is bound to its probe by CKY-I and the nonce (both random,
//! 64 + at least 64 bits the responder only learns from the probe), and
//! its proxies must fit the probed ones. Other vendor IDs are ignored;
//! any other payload, a second TED vendor ID or a missing ID is an error.

use std::net::IpAddr;

use crate::ike::wire::ident::Identity;
use crate::ike::wire::Error;

use super::header::{ExchangeType, Flags, Header};
use super::message::{Body, Message};
use super::payload::{Identification, Payload};

impl ExchangeType {
    /// Espada's TED exchange (private use range, RFC 2408 §3.1).
    pub const ESPADA_TED: ExchangeType = ExchangeType(243);
}

/// The vendor ID every TED message carries.
pub const TED_VENDOR_ID: [u8; 16] = *b"Espada TED v1\0\0\0";

/// Nonce lengths accepted (the prober sends [`TED_NONCE_LEN`]).
pub const TED_NONCE_MIN: usize = 8;
pub const TED_NONCE_MAX: usize = 64;
pub const TED_NONCE_LEN: usize = 16;

/// Why bytes are not a TED message.
#[derive(Debug, thiserror::Error)]
pub enum TedError {
    /// Not even an ISAKMP message.
    #[error(transparent)]
    Wire(#[from] Error),
    /// An ISAKMP message of another exchange.
    #[error("exchange type {0} is not TED")]
    NotTed(u8),
    /// A TED message that breaks the format above.
    #[error("TED message: {0}")]
    Invalid(&'static str),
}

/// A probe (`responder_cookie` zero) or a response.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TedMessage {
    /// The probe's id, chosen by the prober (CKY-I).
    pub probe_id: [u8; 8],
    /// Zero in a probe; the responder's random cookie in a response.
    pub responder_cookie: [u8; 8],
    /// The prober's nonce (echoed in the response).
    pub nonce: Vec<u8>,
    /// The sender's outside address: where to answer / run IKE with.
    pub gateway: IpAddr,
    /// The sender's protected side.
    pub local_proxy: Identification,
    /// The other side, as the sender's ACL line names it.
    pub remote_proxy: Identification,
}

impl TedMessage {
    /// A probe, or the answer to one.
    pub fn is_probe(&self) -> bool {
        self.responder_cookie == [0; 8]
    }

    /// Whether `data` is an ISAKMP header of the TED exchange (cheap; for
    /// dispatch before [`TedMessage::decode`]).
    pub fn is_ted(data: &[u8]) -> bool {
        data.len() >= 28 && data[17] >> 4 == 1 && data[18] == ExchangeType::ESPADA_TED.0
    }

    pub fn encode(&self) -> Result<Vec<u8>, TedError> {
        if self.probe_id == [0; 8] {
            return Err(TedError::Invalid("probe id is zero"));
        }
        if !(TED_NONCE_MIN..=TED_NONCE_MAX).contains(&self.nonce.len()) {
            return Err(TedError::Invalid("nonce length out of range"));
        }
        let header = Header {
            initiator_cookie: self.probe_id,
            responder_cookie: self.responder_cookie,
            version: Header::VERSION,
            exchange: ExchangeType::ESPADA_TED,
            flags: Flags::default(),
            message_id: 0,
        };
        let payloads = vec![
            Payload::VendorId(TED_VENDOR_ID.to_vec()),
            Payload::Nonce(self.nonce.clone()),
            Payload::Identification(gateway_id(self.gateway)),
            Payload::Identification(self.local_proxy.clone()),
            Payload::Identification(self.remote_proxy.clone()),
        ];
        Ok(Message::new(header, payloads).encode()?)
    }

    pub fn decode(data: &[u8]) -> Result<TedMessage, TedError> {
        let msg = Message::decode(data)?;
        let h = &msg.header;
        if h.exchange != ExchangeType::ESPADA_TED {
            return Err(TedError::NotTed(h.exchange.0));
        }
        if h.initiator_cookie == [0; 8] {
            return Err(TedError::Invalid("probe id is zero"));
        }
        if h.message_id != 0 {
            return Err(TedError::Invalid("message ID is not zero"));
        }
        let Body::Payloads(payloads) = msg.body else {
            return Err(TedError::Invalid("encrypted"));
        };
        let mut vid = false;
        let mut nonce = None;
        let mut ids = Vec::new();
        for p in payloads {
            match p {
                Payload::VendorId(v) if v == TED_VENDOR_ID => {
                    if vid {
                        return Err(TedError::Invalid("two TED vendor IDs"));
                    }
                    vid = true;
                }
                Payload::VendorId(_) => {}
                Payload::Nonce(n) => {
                    if nonce.is_some() {
                        return Err(TedError::Invalid("two nonces"));
                    }
                    nonce = Some(n);
                }
                Payload::Identification(id) => ids.push(id),
                _ => return Err(TedError::Invalid("unexpected payload")),
            }
        }
        if !vid {
            return Err(TedError::Invalid("no TED vendor ID"));
        }
        let nonce = nonce.ok_or(TedError::Invalid("no nonce"))?;
        if !(TED_NONCE_MIN..=TED_NONCE_MAX).contains(&nonce.len()) {
            return Err(TedError::Invalid("nonce length out of range"));
        }
        let [gw, local_proxy, remote_proxy]: [Identification; 3] = ids
            .try_into()
            .map_err(|_| TedError::Invalid("not exactly three ID payloads"))?;
        let gateway = match gw.identity {
            Identity::Ipv4(a) => IpAddr::V4(a),
            Identity::Ipv6(a) => IpAddr::V6(a),
            _ => return Err(TedError::Invalid("gateway ID is not an address")),
        };
        if gateway.is_unspecified() || gateway.is_multicast() {
            return Err(TedError::Invalid(
                "gateway address is not a unicast address",
            ));
        }
        Ok(TedMessage {
            probe_id: h.initiator_cookie,
            responder_cookie: h.responder_cookie,
            nonce,
            gateway,
            local_proxy,
            remote_proxy,
        })
    }
}

/// The gateway's ID payload: its address, UDP 500 (as IOS's "1st ID").
pub fn gateway_id(addr: IpAddr) -> Identification {
    Identification {
        protocol: 17,
        port: 500,
        identity: match addr {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn subnet(a: [u8; 4], m: [u8; 4]) -> Identification {
        Identification {
            protocol: 0,
            port: 0,
            identity: Identity::Ipv4Subnet {
                addr: Ipv4Addr::from(a),
                mask: Ipv4Addr::from(m),
            },
        }
    }

    fn probe() -> TedMessage {
        TedMessage {
            probe_id: [1, 2, 3, 4, 5, 6, 7, 8],
            responder_cookie: [0; 8],
            nonce: vec![0xab; TED_NONCE_LEN],
            gateway: "11.11.11.1".parse().unwrap(),
            local_proxy: subnet([13, 13, 13, 0], [255, 255, 255, 0]),
            remote_proxy: subnet([12, 12, 12, 0], [255, 255, 255, 0]),
        }
    }

    #[test]
    fn a_probe_round_trips_and_reads_as_documented() {
        let p = probe();
        let bytes = p.encode().unwrap();
        assert!(TedMessage::is_ted(&bytes));
        assert_eq!(bytes[18], 243);
        assert_eq!(bytes[19], 0, "never encrypted");
        assert_eq!(&bytes[0..8], &p.probe_id);
        assert_eq!(&bytes[8..16], &[0; 8]);
        assert_eq!(bytes[16], 13, "the vendor ID comes first");
        let back = TedMessage::decode(&bytes).unwrap();
        assert_eq!(back, p);
        assert!(back.is_probe());
        // The gateway's ID is IOS's "1st ID": ID_IPV4_ADDR, UDP 500,
        // 12 octets with its header.
        let id = gateway_id(p.gateway);
        assert_eq!((id.protocol, id.port), (17, 500));
    }

    #[test]
    fn a_response_round_trips() {
        let r = TedMessage {
            responder_cookie: [9; 8],
            gateway: "2001:db8::2".parse().unwrap(),
            local_proxy: Identification {
                protocol: 6,
                port: 443,
                identity: Identity::Ipv6Subnet {
                    addr: Ipv6Addr::from([0x2001, 0xdb8, 2, 0, 0, 0, 0, 0]),
                    mask: Ipv6Addr::from([0xffff, 0xffff, 0xffff, 0, 0, 0, 0, 0]),
                },
            },
            ..probe()
        };
        let back = TedMessage::decode(&r.encode().unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(!back.is_probe());
    }

    #[test]
    fn broken_messages_are_refused() {
        // Another exchange.
        let mut b = probe().encode().unwrap();
        b[18] = 2;
        assert!(matches!(TedMessage::decode(&b), Err(TedError::NotTed(2))));
        // No TED vendor ID.
        let h = Header {
            initiator_cookie: [1; 8],
            responder_cookie: [0; 8],
            version: Header::VERSION,
            exchange: ExchangeType::ESPADA_TED,
            flags: Flags::default(),
            message_id: 0,
        };
        let p = probe();
        let ids = vec![
            Payload::Identification(gateway_id(p.gateway)),
            Payload::Identification(p.local_proxy.clone()),
            Payload::Identification(p.remote_proxy.clone()),
        ];
        let mut no_vid = vec![Payload::Nonce(vec![1; 16])];
        no_vid.extend(ids.clone());
        let b = Message::new(h.clone(), no_vid).encode().unwrap();
        assert!(matches!(
            TedMessage::decode(&b),
            Err(TedError::Invalid("no TED vendor ID"))
        ));
        // Two IDs only.
        let two = vec![
            Payload::VendorId(TED_VENDOR_ID.to_vec()),
            Payload::Nonce(vec![1; 16]),
            ids[0].clone(),
            ids[1].clone(),
        ];
        let b = Message::new(h.clone(), two).encode().unwrap();
        assert!(TedMessage::decode(&b).is_err());
        // A gateway that is a subnet.
        let bad_gw = vec![
            Payload::VendorId(TED_VENDOR_ID.to_vec()),
            Payload::Nonce(vec![1; 16]),
            ids[1].clone(),
            ids[1].clone(),
            ids[2].clone(),
        ];
        let b = Message::new(h.clone(), bad_gw).encode().unwrap();
        assert!(TedMessage::decode(&b).is_err());
        // A short nonce, a zero probe id, an unspecified gateway.
        assert!(TedMessage {
            nonce: vec![1; 4],
            ..probe()
        }
        .encode()
        .is_err());
        assert!(TedMessage {
            probe_id: [0; 8],
            ..probe()
        }
        .encode()
        .is_err());
        let b = TedMessage {
            gateway: "0.0.0.0".parse().unwrap(),
            ..probe()
        }
        .encode()
        .unwrap();
        assert!(TedMessage::decode(&b).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = TedMessage::decode(&data);
            let _ = TedMessage::is_ted(&data);
        }

        #[test]
        fn mutated_probes_never_panic_and_decode_to_what_they_encode(
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = probe().encode().unwrap();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Ok(m) = TedMessage::decode(&bytes) {
                // Whatever decodes re-encodes and decodes the same.
                if let Ok(again) = m.encode() {
                    prop_assert_eq!(TedMessage::decode(&again).unwrap(), m);
                }
            }
            let n = cut.index(bytes.len() + 1);
            let _ = TedMessage::decode(&bytes[..n]);
        }

        #[test]
        fn any_probe_round_trips(
            id in any::<[u8; 8]>().prop_filter("non-zero", |c| *c != [0; 8]),
            resp in any::<[u8; 8]>(),
            nonce in prop::collection::vec(any::<u8>(), TED_NONCE_MIN..=TED_NONCE_MAX),
            gw in any::<[u8; 4]>().prop_filter("unicast", |a| {
                let a = Ipv4Addr::from(*a);
                !a.is_unspecified() && !a.is_multicast()
            }),
            a in any::<[u8; 4]>(),
            len in 0u32..=32,
        ) {
            let mask = (u32::MAX.checked_shl(32 - len).unwrap_or(0)).to_be_bytes();
            let m = TedMessage {
                probe_id: id,
                responder_cookie: resp,
                nonce,
                gateway: IpAddr::V4(Ipv4Addr::from(gw)),
                local_proxy: subnet(a, mask),
                remote_proxy: subnet(mask, a),
            };
            prop_assert_eq!(TedMessage::decode(&m.encode().unwrap()).unwrap(), m);
        }
    }
}
