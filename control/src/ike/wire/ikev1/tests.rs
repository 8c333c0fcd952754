//! Whole-message tests for IKEv1: realistic messages, every malformed
//! length at message level, the encrypted two-step decode, and property
//! tests (random valid messages round-trip through the encoder; arbitrary
//! and mutated bytes never panic, and whatever decodes re-encodes to the
//! same bytes).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::iana::{phase1, phase2, transform_id};
use super::*;
use crate::ike::wire::attribute::Attribute;
use crate::ike::wire::ident::{IdType, Identity};
use crate::ike::wire::vendor::KnownVendor;
use crate::ike::wire::Error;

fn header(exchange: ExchangeType) -> Header {
    Header {
        initiator_cookie: [0x11; 8],
        responder_cookie: [0; 8],
        version: Header::VERSION,
        exchange,
        flags: Flags::default(),
        message_id: 0,
    }
}

/// Main Mode message 1 as an IOS initiator sends it (seed 000): one
/// proposal with AES-128/SHA/PSK/group 2 and a 3DES fallback transform,
/// then the vendor IDs.
fn main_mode_1() -> Message {
    let aes = Transform {
        number: 1,
        transform_id: transform_id::KEY_IKE,
        attributes: vec![
            Attribute::basic(phase1::ENCRYPTION_ALGORITHM, phase1::encryption::AES_CBC),
            Attribute::basic(phase1::KEY_LENGTH, 128),
            Attribute::basic(phase1::HASH_ALGORITHM, phase1::hash::SHA),
            Attribute::basic(
                phase1::AUTHENTICATION_METHOD,
                phase1::auth_method::PRE_SHARED_KEY,
            ),
            Attribute::basic(phase1::GROUP_DESCRIPTION, phase1::group::MODP_1024),
            Attribute::basic(phase1::LIFE_TYPE, phase1::life_type::SECONDS),
            Attribute::variable(phase1::LIFE_DURATION, 86_400u32.to_be_bytes()),
        ],
    };
    let des3 = Transform {
        number: 2,
        transform_id: transform_id::KEY_IKE,
        attributes: vec![
            Attribute::basic(
                phase1::ENCRYPTION_ALGORITHM,
                phase1::encryption::TRIPLE_DES_CBC,
            ),
            Attribute::basic(phase1::HASH_ALGORITHM, phase1::hash::MD5),
        ],
    };
    let sa = SecurityAssociation {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ISAKMP,
            spi: vec![],
            transforms: vec![aes, des3],
        }],
    };
    let mut payloads = vec![Payload::Sa(sa)];
    for v in [
        KnownVendor::NatTraversalRfc3947,
        KnownVendor::Dpd,
        KnownVendor::CiscoUnity,
        KnownVendor::Xauth,
    ] {
        payloads.push(Payload::VendorId(v.id().to_vec()));
    }
    Message::new(header(ExchangeType::MAIN_MODE), payloads)
}

#[test]
fn main_mode_1_encodes_with_chained_types_and_lengths() {
    let bytes = main_mode_1().encode().unwrap();
    assert_eq!(
        u32::from_be_bytes(bytes[24..28].try_into().unwrap()) as usize,
        bytes.len()
    );
    assert_eq!(bytes[16], 1, "first payload is the SA");
    assert_eq!((bytes[17], bytes[18], bytes[19]), (0x10, 2, 0));
    // SA generic header: next is a vendor ID, DOI 1, situation 1.
    assert_eq!(bytes[28], 13);
    assert_eq!(&bytes[32..40], &[0, 0, 0, 1, 0, 0, 0, 1]);
    // Proposal 1: last, ISAKMP, no SPI, two transforms.
    assert_eq!(bytes[40], 0);
    assert_eq!(&bytes[44..48], &[1, 1, 0, 2]);
    // First transform says another follows.
    assert_eq!(bytes[48], 3);
    let back = Message::decode(&bytes).unwrap();
    assert_eq!(back, main_mode_1());
    let vids: Vec<_> = back
        .payloads()
        .iter()
        .filter_map(|p| match p {
            Payload::VendorId(v) => KnownVendor::identify(v),
            _ => None,
        })
        .collect();
    assert_eq!(vids.len(), 4);
}

#[test]
fn payload_bodies_re_encode_to_the_bytes_ikev1_hashes() {
    use crate::ike::wire::chain::Walker;
    let mut m = main_mode_1();
    let Body::Payloads(payloads) = &mut m.body else {
        unreachable!()
    };
    payloads.push(Payload::Identification(Identification {
        protocol: 17,
        port: 500,
        identity: Identity::Ipv4(Ipv4Addr::new(198, 18, 0, 1)),
    }));
    let bytes = m.encode().unwrap();
    let decoded = Message::decode(&bytes).unwrap();
    let mut walker = Walker::new(bytes[16], &bytes[28..]);
    for p in decoded.payloads() {
        let raw = walker.next_payload().unwrap().unwrap();
        let mut body = Vec::new();
        p.encode_body(&mut body).unwrap();
        assert_eq!(body, raw.body, "{:?}", p.payload_type());
    }
}

#[test]
fn vendor_id_message_has_the_exact_rfc_layout() {
    let m = Message::new(
        header(ExchangeType::INFORMATIONAL),
        vec![Payload::VendorId(vec![0xaf, 0xca])],
    );
    let bytes = m.encode().unwrap();
    let mut expected = vec![0x11; 8];
    expected.extend_from_slice(&[0; 8]);
    expected.extend_from_slice(&[13, 0x10, 5, 0, 0, 0, 0, 0, 0, 0, 0, 34]);
    expected.extend_from_slice(&[0, 0, 0, 6, 0xaf, 0xca]);
    assert_eq!(bytes, expected);
}

/// Quick Mode message 1 as sent in the clear before encryption: HASH(1),
/// SA with an ESP proposal, nonce, KE for PFS, client IDs.
fn quick_mode_payloads() -> Vec<Payload> {
    let esp = Transform {
        number: 1,
        transform_id: transform_id::ESP_AES,
        attributes: vec![
            Attribute::basic(phase2::SA_LIFE_TYPE, phase2::life_type::SECONDS),
            Attribute::variable(phase2::SA_LIFE_DURATION, 3600u32.to_be_bytes()),
            Attribute::basic(
                phase2::ENCAPSULATION_MODE,
                phase2::encapsulation_mode::UDP_TUNNEL_DRAFT,
            ),
            Attribute::basic(
                phase2::AUTHENTICATION_ALGORITHM,
                phase2::auth_algorithm::HMAC_SHA,
            ),
            Attribute::basic(phase2::KEY_LENGTH, 256),
            Attribute::basic(phase2::GROUP_DESCRIPTION, 2),
        ],
    };
    vec![
        Payload::Hash(vec![0x5a; 20]),
        Payload::Sa(SecurityAssociation {
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::IPSEC_ESP,
                spi: vec![0xc0, 0xff, 0xee, 0x01],
                transforms: vec![esp],
            }],
        }),
        Payload::Nonce(vec![7; 24]),
        Payload::KeyExchange(vec![9; 128]),
        Payload::Identification(Identification {
            protocol: 0,
            port: 0,
            identity: Identity::Ipv4Subnet {
                addr: Ipv4Addr::new(198, 18, 1, 0),
                mask: Ipv4Addr::new(255, 255, 255, 0),
            },
        }),
        Payload::Identification(Identification {
            protocol: 0,
            port: 0,
            identity: Identity::Ipv6Subnet {
                addr: "fd00:2::".parse().unwrap(),
                mask: "ffff:ffff:ffff:ffff::".parse().unwrap(),
            },
        }),
    ]
}

#[test]
fn encrypted_quick_mode_decodes_in_two_steps_with_padding() {
    let payloads = quick_mode_payloads();
    let (first, mut plain) = encode_payloads(&payloads).unwrap();
    assert_eq!(first, PayloadType::HASH);
    // "Encrypt": pad to 16 bytes as RFC 2409 App. B does, and XOR.
    let pad = 16 - plain.len() % 16;
    plain.extend(std::iter::repeat_n(0u8, pad));
    let ciphertext: Vec<u8> = plain.iter().map(|b| b ^ 0x5c).collect();
    let mut h = header(ExchangeType::QUICK_MODE);
    h.message_id = 0x1234_5678;
    let m = Message {
        header: h,
        body: Body::Encrypted {
            first_payload: first,
            ciphertext,
        },
    };
    let bytes = m.encode().unwrap();
    assert_eq!(bytes[19] & 1, 1, "the encoder sets the E flag");
    let back = Message::decode(&bytes).unwrap();
    let Body::Encrypted {
        first_payload,
        ciphertext,
    } = &back.body
    else {
        panic!("{back:?}")
    };
    assert!(back.payloads().is_empty());
    let plain: Vec<u8> = ciphertext.iter().map(|b| b ^ 0x5c).collect();
    let decrypted = decode_decrypted(*first_payload, &plain).unwrap();
    assert_eq!(decrypted.payloads, payloads);
    assert_eq!(decrypted.padding, pad);
    // The same padding in a clear message is trailing junk.
    assert_eq!(
        decode_payloads(*first_payload, &plain),
        Err(Error::TrailingData { len: pad })
    );
}

#[test]
fn informational_with_dpd_delete_and_initial_contact_round_trips() {
    let cookies: Vec<u8> = [[0x11u8; 8], [0x22; 8]].concat();
    let m = Message::new(
        header(ExchangeType::INFORMATIONAL),
        vec![
            Payload::Hash(vec![1; 20]),
            Payload::Notification(Notification {
                doi: 1,
                protocol: ProtocolId::ISAKMP,
                spi: cookies.clone(),
                notify_type: NotifyType::R_U_THERE,
                data: 42u32.to_be_bytes().to_vec(),
            }),
            Payload::Notification(Notification {
                doi: 1,
                protocol: ProtocolId::ISAKMP,
                spi: cookies.clone(),
                notify_type: NotifyType::INITIAL_CONTACT,
                data: vec![],
            }),
            Payload::Delete(Delete {
                doi: 1,
                protocol: ProtocolId::IPSEC_ESP,
                spi_size: 4,
                spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
            }),
            Payload::NatD(vec![3; 20]),
            Payload::NatOaDraft(NatOa(IpAddr::V6(Ipv6Addr::LOCALHOST))),
        ],
    );
    let bytes = m.encode().unwrap();
    let back = Message::decode(&bytes).unwrap();
    assert_eq!(back, m);
    let Payload::Notification(dpd) = &back.payloads()[1] else {
        panic!()
    };
    assert_eq!(dpd.dpd_sequence(), Some(42));
}

fn mm1_bytes() -> Vec<u8> {
    main_mode_1().encode().unwrap()
}

#[test]
fn every_truncated_header_is_refused() {
    let bytes = mm1_bytes();
    for n in 0..28 {
        assert_eq!(
            Message::decode(&bytes[..n]),
            Err(Error::TruncatedHeader { len: n })
        );
    }
}

#[test]
fn header_length_must_fit_the_datagram_and_may_be_shorter() {
    let bytes = mm1_bytes();
    let cut = &bytes[..bytes.len() - 1];
    assert!(matches!(
        Message::decode(cut),
        Err(Error::BadMessageLength { .. })
    ));
    let mut short = bytes.clone();
    short[24..28].copy_from_slice(&27u32.to_be_bytes());
    assert!(matches!(
        Message::decode(&short),
        Err(Error::BadMessageLength { length: 27, .. })
    ));
    // Bytes after Length are not part of the message.
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0xee; 5]);
    let m = Message::decode(&longer).unwrap();
    assert_eq!(m.encode().unwrap(), bytes);
}

#[test]
fn other_major_versions_are_refused() {
    let mut bytes = mm1_bytes();
    bytes[17] = 0x20;
    assert_eq!(
        Message::decode(&bytes),
        Err(Error::UnsupportedVersion(0x20))
    );
    // A different minor version is kept for the state machine to judge.
    bytes[17] = 0x11;
    assert_eq!(Message::decode(&bytes).unwrap().header.version, 0x11);
}

/// A header announcing `first` and a body of `body` bytes.
fn with_body(first: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0x11; 8];
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[first, 0x10, 5, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn payload_lengths_zero_to_three_are_refused_in_a_message() {
    for len in 0u8..4 {
        assert_eq!(
            Message::decode(&with_body(13, &[0, 0, 0, len, 0])),
            Err(Error::PayloadTooShort {
                payload: 13,
                length: usize::from(len),
                minimum: 4
            })
        );
    }
}

#[test]
fn payload_length_past_the_message_is_refused() {
    assert_eq!(
        Message::decode(&with_body(13, &[0, 0, 0, 9, 1, 2, 3, 4])),
        Err(Error::PayloadPastEnd {
            payload: 13,
            length: 9,
            available: 8
        })
    );
    // Past Length even though the datagram has the bytes.
    let mut d = with_body(13, &[0, 0, 0, 6, 1]);
    d.push(2);
    assert!(matches!(
        Message::decode(&d),
        Err(Error::PayloadPastEnd { .. })
    ));
}

#[test]
fn a_chain_announcing_more_than_the_message_holds_is_refused() {
    assert_eq!(
        Message::decode(&with_body(13, &[8, 0, 0, 4])),
        Err(Error::TruncatedPayloadHeader {
            payload: 8,
            available: 0
        })
    );
    assert_eq!(
        Message::decode(&with_body(13, &[])),
        Err(Error::TruncatedPayloadHeader {
            payload: 13,
            available: 0
        })
    );
}

#[test]
fn bytes_after_the_last_payload_are_refused() {
    assert_eq!(
        Message::decode(&with_body(13, &[0, 0, 0, 4, 0xff])),
        Err(Error::TrailingData { len: 1 })
    );
    assert_eq!(
        Message::decode(&with_body(0, &[0xff])),
        Err(Error::TrailingData { len: 1 })
    );
}

#[test]
fn generic_header_reserved_byte_must_be_zero() {
    assert_eq!(
        Message::decode(&with_body(13, &[0, 1, 0, 4])),
        Err(Error::ReservedNotZero { payload: 13 })
    );
}

#[test]
fn sa_errors_surface_through_the_message() {
    let mut bytes = mm1_bytes();
    bytes[47] = 3; // the proposal's transform count
    assert!(matches!(
        Message::decode(&bytes),
        Err(Error::CountMismatch { payload: 2, .. })
    ));
    assert_eq!(
        NotifyType::for_error(&Message::decode(&bytes).unwrap_err()),
        NotifyType::BAD_PROPOSAL_SYNTAX
    );
}

#[test]
fn a_payload_too_long_for_sixteen_bits_is_not_encoded() {
    let m = Message::new(
        header(ExchangeType::INFORMATIONAL),
        vec![Payload::VendorId(vec![0; 70_000])],
    );
    assert_eq!(m.encode(), Err(Error::TooLong { what: "payload" }));
}

#[test]
fn the_e_flag_follows_the_body() {
    let mut m = main_mode_1();
    m.header.flags = Flags::ENCRYPTION | Flags::COMMIT;
    let bytes = m.encode().unwrap();
    assert_eq!(bytes[19], Flags::COMMIT.0);
}

// ---- property tests ----

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(t, v)| Attribute::basic(t, v)),
        (0u16..0x8000, bytes(10)).prop_map(|(t, v)| Attribute::variable(t, v)),
    ]
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(attribute(), 0..6),
    )
        .prop_map(|(number, transform_id, attributes)| Transform {
            number,
            transform_id,
            attributes,
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u8>(),
        any::<u8>(),
        bytes(16),
        prop::collection::vec(transform(), 0..4),
    )
        .prop_map(|(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        })
}

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn identity() -> impl Strategy<Value = Identity> {
    prop_oneof![
        ipv4().prop_map(Identity::Ipv4),
        bytes(30).prop_map(Identity::Fqdn),
        bytes(30).prop_map(Identity::UserFqdn),
        (ipv4(), ipv4()).prop_map(|(addr, mask)| Identity::Ipv4Subnet { addr, mask }),
        ipv6().prop_map(Identity::Ipv6),
        (ipv6(), ipv6()).prop_map(|(addr, mask)| Identity::Ipv6Subnet { addr, mask }),
        (ipv4(), ipv4()).prop_map(|(start, end)| Identity::Ipv4Range { start, end }),
        (ipv6(), ipv6()).prop_map(|(start, end)| Identity::Ipv6Range { start, end }),
        bytes(30).prop_map(Identity::KeyId),
        (prop_oneof![Just(0u8), 9u8..=10, 12u8..=255], bytes(30)).prop_map(|(t, data)| {
            Identity::Other {
                id_type: IdType(t),
                data,
            }
        }),
    ]
}

fn delete() -> impl Strategy<Value = Delete> {
    prop_oneof![
        (any::<u32>(), any::<u8>()).prop_map(|(doi, p)| Delete {
            doi,
            protocol: ProtocolId(p),
            spi_size: 0,
            spis: vec![],
        }),
        (
            any::<u32>(),
            any::<u8>(),
            1usize..=16,
            0usize..4,
            any::<u8>()
        )
            .prop_map(|(doi, p, size, n, fill)| Delete {
                doi,
                protocol: ProtocolId(p),
                spi_size: size as u8,
                spis: (0..n)
                    .map(|i| vec![fill.wrapping_add(i as u8); size])
                    .collect(),
            }),
    ]
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        prop::collection::vec(proposal(), 1..4)
            .prop_map(|proposals| Payload::Sa(SecurityAssociation { proposals })),
        bytes(64).prop_map(Payload::KeyExchange),
        (any::<u8>(), any::<u16>(), identity()).prop_map(|(protocol, port, identity)| {
            Payload::Identification(Identification {
                protocol,
                port,
                identity,
            })
        }),
        (any::<u8>(), bytes(20))
            .prop_map(|(encoding, data)| Payload::Certificate(Certificate { encoding, data })),
        (any::<u8>(), bytes(20)).prop_map(|(encoding, data)| {
            Payload::CertificateRequest(Certificate { encoding, data })
        }),
        bytes(20).prop_map(Payload::Hash),
        bytes(20).prop_map(Payload::Signature),
        bytes(32).prop_map(Payload::Nonce),
        (
            any::<u32>(),
            any::<u8>(),
            bytes(16),
            any::<u16>(),
            bytes(12)
        )
            .prop_map(
                |(doi, p, spi, t, data)| Payload::Notification(Notification {
                    doi,
                    protocol: ProtocolId(p),
                    spi,
                    notify_type: NotifyType(t),
                    data,
                })
            ),
        delete().prop_map(Payload::Delete),
        bytes(20).prop_map(Payload::VendorId),
        (
            any::<u8>(),
            any::<u16>(),
            prop::collection::vec(attribute(), 0..4)
        )
            .prop_map(|(cfg_type, identifier, attributes)| Payload::Attributes(
                ConfigAttributes {
                    cfg_type,
                    identifier,
                    attributes,
                }
            )),
        bytes(20).prop_map(Payload::NatD),
        bytes(20).prop_map(Payload::NatDDraft),
        prop_oneof![ipv4().prop_map(IpAddr::V4), ipv6().prop_map(IpAddr::V6)]
            .prop_map(|a| Payload::NatOa(NatOa(a))),
        ipv4().prop_map(|a| Payload::NatOaDraft(NatOa(IpAddr::V4(a)))),
        (
            prop_oneof![2u8..=3, 15u8..=19, 22u8..=129, 132u8..=255],
            bytes(20)
        )
            .prop_map(|(t, body)| Payload::Unknown {
                payload_type: PayloadType(t),
                body,
            }),
    ]
}

fn any_header() -> impl Strategy<Value = Header> {
    (
        any::<[u8; 8]>(),
        any::<[u8; 8]>(),
        0u8..16,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(|(i, r, minor, exchange, flags, message_id)| Header {
            initiator_cookie: i,
            responder_cookie: r,
            version: 0x10 | minor,
            exchange: ExchangeType(exchange),
            flags: Flags(flags),
            message_id,
        })
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        3 => prop::collection::vec(payload(), 0..7).prop_map(Body::Payloads),
        1 => (any::<u8>(), bytes(80)).prop_map(|(first, ciphertext)| Body::Encrypted {
            first_payload: PayloadType(first),
            ciphertext,
        }),
    ];
    (any_header(), body).prop_map(|(mut header, body)| {
        let encrypted = matches!(body, Body::Encrypted { .. });
        header.flags = header.flags.with(Flags::ENCRYPTION, encrypted);
        Message { header, body }
    })
}

/// Decodes, and if that works checks the message re-encodes to exactly
/// the bytes up to the header's Length.
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
    fn payload_chains_round_trip_with_padding(
        payloads in prop::collection::vec(payload(), 0..7),
        pad in 0usize..16,
    ) {
        let (first, mut plain) = encode_payloads(&payloads).unwrap();
        plain.extend(std::iter::repeat_n(0xa5, pad));
        let d = decode_decrypted(first, &plain).unwrap();
        prop_assert_eq!(d.payloads, payloads);
        prop_assert_eq!(d.padding, pad);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(300)) {
        decodes_losslessly_or_not_at_all(&data);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        first in any::<u8>(),
        flags in any::<u8>(),
        body in bytes(300),
    ) {
        let mut d = with_body(first, &body);
        d[19] = flags;
        decodes_losslessly_or_not_at_all(&d);
        let _ = decode_decrypted(PayloadType(first), &body);
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
