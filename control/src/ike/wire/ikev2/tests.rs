//! Whole-message tests for IKEv2: IKE_SA_INIT and IKE_AUTH as seed 002
//! exchanges them, the critical-bit rule and the Encrypted payload at
//! message level, every malformed length, and property tests (random
//! valid messages round-trip; arbitrary and mutated bytes never panic,
//! and whatever decodes re-encodes to the same bytes).

use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::iana::{dh, encr, integ, prf, KEY_LENGTH};
use super::*;
use crate::ike::wire::attribute::Attribute;
use crate::ike::wire::ident::{IdType, Identity};
use crate::ike::wire::vendor::KnownVendor;
use crate::ike::wire::Error;

fn header(exchange: ExchangeType, message_id: u32) -> Header {
    Header {
        initiator_spi: [0x11; 8],
        responder_spi: [0; 8],
        version: Header::VERSION,
        exchange,
        flags: Flags::INITIATOR,
        message_id,
    }
}

fn ike_proposal(number: u8, cipher: Transform) -> Proposal {
    Proposal {
        number,
        protocol: ProtocolId::IKE,
        spi: vec![],
        transforms: vec![
            cipher,
            Transform::new(TransformType::PRF, prf::HMAC_SHA1),
            Transform::new(TransformType::INTEG, integ::HMAC_SHA1_96),
            Transform::new(TransformType::DH, dh::MODP_1024),
        ],
    }
}

/// IKE_SA_INIT request of seed 002: proposals AES-CBC-128 and 3DES with
/// SHA1 and group 2, KE, nonce, Cisco's vendor ID, NAT-D.
fn ike_sa_init() -> Message {
    let aes = Transform {
        transform_type: TransformType::ENCR,
        transform_id: encr::AES_CBC,
        attributes: vec![Attribute::basic(KEY_LENGTH, 128)],
    };
    let des3 = Transform::new(TransformType::ENCR, encr::TRIPLE_DES);
    Message::new(
        header(ExchangeType::IKE_SA_INIT, 0),
        [
            PayloadBody::Sa(SecurityAssociation {
                proposals: vec![ike_proposal(1, aes), ike_proposal(2, des3)],
            }),
            PayloadBody::KeyExchange(KeyExchange {
                group: dh::MODP_1024,
                data: vec![0xab; 128],
            }),
            PayloadBody::Nonce(vec![0x4e; 32]),
            PayloadBody::VendorId(KnownVendor::CiscoDeleteReason.id().to_vec()),
            PayloadBody::Notify(Notify::new(NotifyType::NAT_DETECTION_SOURCE_IP, [1; 20])),
            PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                [2; 20],
            )),
            PayloadBody::Notify(Notify::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, [])),
        ],
    )
}

/// The payloads an IKE_AUTH request carries inside SK.
fn ike_auth_inner() -> Vec<Payload> {
    let esp = Proposal {
        number: 1,
        protocol: ProtocolId::ESP,
        spi: vec![0xc0, 0xff, 0xee, 0x02],
        transforms: vec![
            Transform::new(TransformType::ENCR, encr::TRIPLE_DES),
            Transform::new(TransformType::INTEG, integ::HMAC_SHA1_96),
            Transform::new(TransformType::ESN, 0),
        ],
    };
    [
        PayloadBody::IdInitiator(Identity::Ipv4(Ipv4Addr::new(198, 18, 0, 1))),
        PayloadBody::Notify(Notify::new(NotifyType::INITIAL_CONTACT, [])),
        PayloadBody::Auth(Authentication {
            method: AuthMethod::SHARED_KEY_MIC,
            data: vec![0xa7; 20],
        }),
        PayloadBody::Sa(SecurityAssociation {
            proposals: vec![esp],
        }),
        PayloadBody::TsInitiator(vec![TrafficSelector::ipv4_any(
            Ipv4Addr::new(198, 18, 1, 0),
            Ipv4Addr::new(198, 18, 1, 255),
        )]),
        PayloadBody::TsResponder(vec![TrafficSelector::ipv6_any(
            "fd00:2::".parse().unwrap(),
            "fd00:2::ffff".parse().unwrap(),
        )]),
    ]
    .into_iter()
    .map(Payload::from)
    .collect()
}

#[test]
fn ike_sa_init_round_trips_with_chained_types_and_lengths() {
    let m = ike_sa_init();
    let bytes = m.encode().unwrap();
    assert_eq!(
        u32::from_be_bytes(bytes[24..28].try_into().unwrap()) as usize,
        bytes.len()
    );
    assert_eq!(
        (bytes[16], bytes[17], bytes[18], bytes[19]),
        (33, 0x20, 34, 0x08)
    );
    assert_eq!(bytes[28], 34, "SA is followed by KE");
    // First proposal: more follow (2), IKE, no SPI, 4 transforms.
    assert_eq!(bytes[32], 2);
    assert_eq!(&bytes[36..40], &[1, 1, 0, 4]);
    let back = Message::decode(&bytes).unwrap();
    assert_eq!(back, m);
    let Some(PayloadBody::Sa(sa)) = back.bodies().next() else {
        panic!()
    };
    assert_eq!(sa.proposals[0].transforms[0].key_length(), Some(128));
}

#[test]
fn ike_auth_travels_in_sk_and_decodes_in_two_steps() {
    let inner = ike_auth_inner();
    let (first, mut plain) = encode_payloads(&inner).unwrap();
    assert_eq!(first, PayloadType::IDI);
    // Pad to 16 with Pad Length last, "encrypt", add IV and ICV.
    let pad = 15 - plain.len() % 16;
    plain.extend(std::iter::repeat_n(0, pad));
    plain.push(pad as u8);
    let mut data = vec![0x1f; 16];
    data.extend(plain.iter().map(|b| b ^ 0x3c));
    data.extend_from_slice(&[0x1c; 12]);
    let m = Message::new(
        header(ExchangeType::IKE_AUTH, 1),
        [PayloadBody::Encrypted(Encrypted {
            first_payload: first,
            data,
        })],
    );
    let bytes = m.encode().unwrap();
    assert_eq!(bytes[16], 46);
    assert_eq!(
        bytes[28], 35,
        "SK's Next Payload names the first inner payload"
    );
    let back = Message::decode(&bytes).unwrap();
    assert_eq!(back, m);
    let Some(PayloadBody::Encrypted(sk)) = back.bodies().next() else {
        panic!()
    };
    let parts = sk.parts(16, 12).unwrap();
    let layout = sk.layout(bytes.len(), 16, 12).unwrap();
    assert_eq!(&bytes[layout.iv], parts.iv);
    assert_eq!(&bytes[layout.ciphertext.clone()], parts.ciphertext);
    assert_eq!(&bytes[layout.icv], parts.icv);
    assert_eq!(layout.associated_data, 0..32);
    let plain: Vec<u8> = parts.ciphertext.iter().map(|b| b ^ 0x3c).collect();
    let payloads = decode_payloads(sk.first_payload, sk::unpad(&plain).unwrap()).unwrap();
    assert_eq!(payloads, inner);
}

#[test]
fn unknown_payloads_follow_the_critical_bit_rule_in_a_message() {
    let mut m = ike_sa_init();
    m.payloads.insert(
        1,
        Payload {
            critical: false,
            body: PayloadBody::Unknown {
                payload_type: PayloadType(150),
                body: vec![1, 2, 3],
            },
        },
    );
    let bytes = m.encode().unwrap();
    assert_eq!(Message::decode(&bytes).unwrap(), m, "skipped but kept");
    m.payloads[1].critical = true;
    let bytes = m.encode().unwrap();
    let err = Message::decode(&bytes).unwrap_err();
    assert_eq!(err, Error::UnsupportedCriticalPayload(150));
    assert_eq!(Notify::for_error(&err).data, [150]);
}

#[test]
fn the_encrypted_payload_must_be_last() {
    let sk = PayloadBody::Encrypted(Encrypted {
        first_payload: PayloadType::IDI,
        data: vec![0; 32],
    });
    let m = Message::new(
        header(ExchangeType::IKE_AUTH, 1),
        [sk.clone(), PayloadBody::Nonce(vec![1; 16])],
    );
    assert_eq!(m.encode(), Err(Error::EncryptedNotLast));
    // Forge it: an SK followed by a Nonce on the wire.
    let good = Message::new(header(ExchangeType::IKE_AUTH, 1), [sk])
        .encode()
        .unwrap();
    let mut forged = good.clone();
    forged.extend_from_slice(&[0, 0, 0, 4]);
    let len = forged.len() as u32;
    forged[24..28].copy_from_slice(&len.to_be_bytes());
    assert_eq!(Message::decode(&forged), Err(Error::EncryptedNotLast));
}

#[test]
fn encrypted_payloads_cannot_nest() {
    let sk = Payload::from(PayloadBody::Encrypted(Encrypted {
        first_payload: PayloadType(0),
        data: vec![],
    }));
    assert!(matches!(
        encode_payloads(std::slice::from_ref(&sk)),
        Err(Error::Malformed { payload: 46, .. })
    ));
    assert!(matches!(
        decode_payloads(PayloadType::SK, &[0, 0, 0, 4]),
        Err(Error::Malformed { payload: 46, .. })
    ));
}

/// A header announcing `first` and a body of `body` bytes.
fn with_body(first: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0x11; 8];
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[first, 0x20, 37, 0x08, 0, 0, 0, 2]);
    m.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn truncated_headers_and_bad_lengths_are_refused() {
    let bytes = ike_sa_init().encode().unwrap();
    for n in 0..28 {
        assert_eq!(
            Message::decode(&bytes[..n]),
            Err(Error::TruncatedHeader { len: n })
        );
    }
    assert!(matches!(
        Message::decode(&bytes[..bytes.len() - 1]),
        Err(Error::BadMessageLength { .. })
    ));
    let mut padded = bytes.clone();
    padded.push(0);
    assert_eq!(Message::decode(&padded).unwrap().encode().unwrap(), bytes);
}

#[test]
fn ikev1_and_future_versions_are_refused_but_minor_versions_kept() {
    let mut bytes = ike_sa_init().encode().unwrap();
    bytes[17] = 0x10;
    assert_eq!(
        Message::decode(&bytes),
        Err(Error::UnsupportedVersion(0x10))
    );
    assert_eq!(
        Notify::for_error(&Error::UnsupportedVersion(0x30)).notify_type,
        NotifyType::INVALID_MAJOR_VERSION
    );
    bytes[17] = 0x21;
    assert_eq!(Message::decode(&bytes).unwrap().header.version, 0x21);
}

#[test]
fn payload_length_errors_are_refused_in_a_message() {
    for len in 0u8..4 {
        assert!(matches!(
            Message::decode(&with_body(40, &[0, 0, 0, len])),
            Err(Error::PayloadTooShort { payload: 40, .. })
        ));
    }
    assert!(matches!(
        Message::decode(&with_body(40, &[0, 0, 0, 5])),
        Err(Error::PayloadPastEnd { payload: 40, .. })
    ));
    assert_eq!(
        Message::decode(&with_body(40, &[0, 0, 0, 4, 9])),
        Err(Error::TrailingData { len: 1 })
    );
    assert!(matches!(
        Message::decode(&with_body(40, &[41, 0, 0, 4])),
        Err(Error::TruncatedPayloadHeader { payload: 41, .. })
    ));
}

#[test]
fn short_fixed_parts_are_refused_in_a_message() {
    // Notify, KE, IDi, AUTH, TSi, Delete, SKF with 0..3 body bytes.
    for ty in [41u8, 34, 35, 39, 44, 42, 53] {
        for n in 0..4u8 {
            let mut body = vec![0, 0, 0, 4 + n];
            body.extend(std::iter::repeat_n(0, usize::from(n)));
            let err = Message::decode(&with_body(ty, &body)).unwrap_err();
            assert!(
                matches!(err, Error::PayloadTooShort { payload, .. } if payload == ty),
                "type {ty}, {n} body bytes: {err:?}"
            );
        }
    }
}

// ---- property tests ----

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(t, v)| Attribute::basic(t, v)),
        (0u16..0x8000, bytes(6)).prop_map(|(t, v)| Attribute::variable(t, v)),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        any::<u8>(),
        any::<u16>(),
        prop::collection::vec(attribute(), 0..3),
    )
        .prop_map(|(t, transform_id, attributes)| Transform {
            transform_type: TransformType(t),
            transform_id,
            attributes,
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u8>(),
        any::<u8>(),
        bytes(16),
        prop::collection::vec(transform(), 0..6),
    )
        .prop_map(|(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        })
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| Identity::Ipv4(Ipv4Addr::from(a))),
        bytes(30).prop_map(Identity::Fqdn),
        bytes(30).prop_map(Identity::UserFqdn),
        any::<[u8; 16]>().prop_map(|a| Identity::Ipv6(Ipv6Addr::from(a))),
        bytes(30).prop_map(Identity::KeyId),
        (
            prop_oneof![Just(0u8), Just(4), 6u8..=10, 12u8..=255],
            bytes(30)
        )
            .prop_map(|(t, data)| Identity::Other {
                id_type: IdType(t),
                data
            }),
    ]
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    prop_oneof![
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 4]>(),
            any::<[u8; 4]>()
        )
            .prop_map(
                |(ip_protocol, start_port, end_port, s, e)| TrafficSelector::Ipv4 {
                    ip_protocol,
                    start_port,
                    end_port,
                    start: s.into(),
                    end: e.into(),
                }
            ),
        (
            any::<u8>(),
            any::<u16>(),
            any::<u16>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>()
        )
            .prop_map(
                |(ip_protocol, start_port, end_port, s, e)| TrafficSelector::Ipv6 {
                    ip_protocol,
                    start_port,
                    end_port,
                    start: s.into(),
                    end: e.into(),
                }
            ),
        (prop_oneof![0u8..=6, 9u8..=255], any::<u8>(), bytes(12)).prop_map(
            |(ts_type, ip_protocol, data)| TrafficSelector::Other {
                ts_type,
                ip_protocol,
                data,
            }
        ),
    ]
}

fn delete() -> impl Strategy<Value = Delete> {
    prop_oneof![
        any::<u8>().prop_map(|p| Delete {
            protocol: ProtocolId(p),
            spi_size: 0,
            spis: vec![],
        }),
        (any::<u8>(), 1usize..=16, 0usize..4, any::<u8>()).prop_map(|(p, size, n, fill)| Delete {
            protocol: ProtocolId(p),
            spi_size: size as u8,
            spis: (0..n)
                .map(|i| vec![fill.wrapping_add(i as u8); size])
                .collect(),
        }),
    ]
}

fn clear_body() -> impl Strategy<Value = PayloadBody> {
    prop_oneof![
        prop::collection::vec(proposal(), 1..4)
            .prop_map(|proposals| PayloadBody::Sa(SecurityAssociation { proposals })),
        (any::<u16>(), bytes(64))
            .prop_map(|(group, data)| PayloadBody::KeyExchange(KeyExchange { group, data })),
        identity().prop_map(PayloadBody::IdInitiator),
        identity().prop_map(PayloadBody::IdResponder),
        (any::<u8>(), bytes(20)).prop_map(|(encoding, data)| {
            PayloadBody::Certificate(Certificate { encoding, data })
        }),
        (any::<u8>(), bytes(20)).prop_map(|(encoding, data)| {
            PayloadBody::CertificateRequest(Certificate { encoding, data })
        }),
        (any::<u8>(), bytes(20)).prop_map(|(m, data)| PayloadBody::Auth(Authentication {
            method: AuthMethod(m),
            data
        })),
        bytes(32).prop_map(PayloadBody::Nonce),
        (any::<u8>(), bytes(16), any::<u16>(), bytes(20)).prop_map(|(p, spi, t, data)| {
            PayloadBody::Notify(Notify {
                protocol: ProtocolId(p),
                spi,
                notify_type: NotifyType(t),
                data,
            })
        }),
        delete().prop_map(PayloadBody::Delete),
        bytes(20).prop_map(PayloadBody::VendorId),
        prop::collection::vec(selector(), 0..4).prop_map(PayloadBody::TsInitiator),
        prop::collection::vec(selector(), 0..4).prop_map(PayloadBody::TsResponder),
        (
            any::<u8>(),
            prop::collection::vec(
                (0u16..0x8000, bytes(8))
                    .prop_map(|(attr_type, value)| ConfigAttribute { attr_type, value }),
                0..4
            )
        )
            .prop_map(
                |(cfg_type, attributes)| PayloadBody::Configuration(Configuration {
                    cfg_type,
                    attributes
                })
            ),
        bytes(20).prop_map(PayloadBody::Eap),
    ]
}

fn clear_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<bool>(), clear_body()).prop_map(|(critical, body)| Payload { critical, body }),
        (prop_oneof![1u8..=32, 49u8..=52, 54u8..=255], bytes(20)).prop_map(|(t, body)| {
            Payload::from(PayloadBody::Unknown {
                payload_type: PayloadType(t),
                body,
            })
        }),
    ]
}

fn encrypted_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<bool>(), any::<u8>(), bytes(80)).prop_map(|(critical, first, data)| Payload {
            critical,
            body: PayloadBody::Encrypted(Encrypted {
                first_payload: PayloadType(first),
                data,
            }),
        }),
        (any::<u8>(), 1u16..=8, 0u16..8, bytes(80)).prop_map(|(first, total, n, data)| {
            Payload::from(PayloadBody::EncryptedFragment(EncryptedFragment {
                first_payload: PayloadType(first),
                number: 1 + n % total,
                total,
                data,
            }))
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 8]>(),
        0u8..16,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
        prop::collection::vec(clear_payload(), 0..7),
        prop::option::of(encrypted_payload()),
    )
        .prop_map(
            |(i, r, minor, exchange, flags, message_id, mut payloads, sk)| {
                payloads.extend(sk);
                Message {
                    header: Header {
                        initiator_spi: i,
                        responder_spi: r,
                        version: 0x20 | minor,
                        exchange: ExchangeType(exchange),
                        flags: Flags(flags),
                        message_id,
                    },
                    payloads,
                }
            },
        )
}

fn decodes_losslessly_or_not_at_all(datagram: &[u8]) {
    if let Ok(m) = Message::decode(datagram) {
        let len = u32::from_be_bytes(datagram[24..28].try_into().unwrap()) as usize;
        assert_eq!(m.encode().unwrap(), &datagram[..len]);
    }
}

proptest! {
    #[test]
    fn valid_messages_round_trip(m in message()) {
        let bytes = m.encode().unwrap();
        let back = Message::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode().unwrap(), bytes);
    }

    #[test]
    fn inner_chains_round_trip(payloads in prop::collection::vec(clear_payload(), 0..7)) {
        let (first, plain) = encode_payloads(&payloads).unwrap();
        prop_assert_eq!(decode_payloads(first, &plain).unwrap(), payloads);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(300)) {
        decodes_losslessly_or_not_at_all(&data);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        first in any::<u8>(),
        body in bytes(300),
        iv in 0usize..40,
        icv in 0usize..40,
    ) {
        let d = with_body(first, &body);
        decodes_losslessly_or_not_at_all(&d);
        if let Ok(inner) = decode_payloads(PayloadType(first), &body) {
            prop_assert_eq!(encode_payloads(&inner).unwrap().1, body.clone());
        }
        if let Ok(plain) = sk::unpad(&body) {
            let _ = decode_payloads(PayloadType(first), plain);
        }
        let sk = Encrypted { first_payload: PayloadType(first), data: body };
        let _ = sk.parts(iv, icv);
        let _ = sk.layout(d.len(), iv, icv);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        m in message(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = m.encode().unwrap();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        decodes_losslessly_or_not_at_all(&bytes);
        let n = cut.index(bytes.len() + 1);
        decodes_losslessly_or_not_at_all(&bytes[..n]);
    }
}
