//! Unit and property tests of the control-socket encoding: every message
//! round-trips, hostile bytes never panic the decoder nor make it
//! allocate, and each kind of malformed datagram gets its own error.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

use proptest::prelude::*;

use super::wire::{msg_type, HEADER_LEN, MAGIC};
use super::*;
use crate::counters::DropReason;
use crate::crypto::{AuthAlg, EncAlg, GcmIcv};
use crate::spd::{FlowKey, IpPrefix, PolicyAction, PolicyTag, PortRange, SpdRule, TrafficSelector};

// ---------------------------------------------------------------------------
// An allocator that remembers the largest single allocation made by the
// current thread, so a test can show that a hostile count reserves nothing.

struct LargestAllocation;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// wrapper only records sizes in a thread-local `Cell` (no allocation).
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// The largest allocation `f` makes on this thread.
fn largest_allocation_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(|l| l.get()))
}

// ---------------------------------------------------------------------------
// Strategies.

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(a.into())),
        any::<u128>().prop_map(|a| IpAddr::V6(a.into())),
    ]
}

fn arb_prefix() -> impl Strategy<Value = IpPrefix> {
    (arb_ip(), any::<u8>()).prop_map(|(ip, len)| {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        IpPrefix::new(ip, len % (max + 1)).expect("length in range")
    })
}

fn arb_ports() -> impl Strategy<Value = PortRange> {
    (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
        lo: a.min(b),
        hi: a.max(b),
    })
}

fn arb_selector() -> impl Strategy<Value = TrafficSelector> {
    (
        arb_prefix(),
        arb_prefix(),
        any::<Option<u8>>(),
        arb_ports(),
        arb_ports(),
    )
        .prop_map(|(src, dst, proto, src_ports, dst_ports)| TrafficSelector {
            src,
            dst,
            proto,
            src_ports,
            dst_ports,
        })
}

fn arb_tag() -> impl Strategy<Value = PolicyTag> {
    (any::<u32>(), any::<u32>()).prop_map(|(map, seq)| PolicyTag { map, seq })
}

fn arb_spd_rule() -> impl Strategy<Value = SpdRule> {
    let action = prop_oneof![
        Just(PolicyAction::Bypass),
        Just(PolicyAction::Discard),
        (any::<Option<u32>>(), arb_tag()).prop_map(|(sa, map)| PolicyAction::Protect { sa, map }),
    ];
    (arb_selector(), action).prop_map(|(selector, action)| SpdRule { selector, action })
}

fn arb_nat_rule() -> impl Strategy<Value = NatRule> {
    let action = prop_oneof![
        Just(NatAction::Exempt),
        (any::<u32>(), arb_ip()).prop_map(|(outside_ifindex, outside_addr)| NatAction::Pat {
            outside_ifindex,
            outside_addr
        }),
    ];
    (arb_selector(), action).prop_map(|(selector, action)| NatRule { selector, action })
}

fn arb_part() -> impl Strategy<Value = ListPart> {
    (any::<u32>(), any::<bool>()).prop_map(|(offset, more)| ListPart { offset, more })
}

fn arb_direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::Inbound), Just(Direction::Outbound)]
}

fn arb_lifetime() -> impl Strategy<Value = Lifetime> {
    any::<[Option<u64>; 4]>().prop_map(|[a, b, c, d]| Lifetime {
        soft_seconds: a,
        hard_seconds: b,
        soft_kilobytes: c,
        hard_kilobytes: d,
    })
}

fn arb_sa() -> impl Strategy<Value = SaParams> {
    let mode = prop_oneof![
        Just(EspMode::Transport),
        (arb_ip(), arb_ip()).prop_map(|(local, remote)| EspMode::Tunnel { local, remote }),
    ];
    let udp = any::<Option<(u16, u16)>>()
        .prop_map(|u| u.map(|(src_port, dst_port)| UdpEncap { src_port, dst_port }));
    let mut auths = vec![AuthAlg::None];
    auths.extend(AuthAlg::ALL);
    let algs = (
        prop::sample::select(EncAlg::ALL.to_vec()),
        prop::sample::select(auths),
    )
        .prop_flat_map(|(enc, auth)| {
            (
                Just(enc),
                Just(auth),
                prop::collection::vec(any::<u8>(), enc.key_len()),
                prop::collection::vec(any::<u8>(), auth.key_len()),
            )
        });
    (
        any::<u32>(),
        arb_direction(),
        algs,
        mode,
        udp,
        any::<bool>(),
        any::<u32>(),
        arb_lifetime(),
        proptest::collection::vec(arb_selector(), 0..4),
    )
        .prop_map(
            |(
                spi,
                direction,
                (enc, auth, ek, ak),
                mode,
                udp_encap,
                esn,
                replay_window,
                lifetime,
                selectors,
            )| {
                SaParams {
                    spi,
                    direction,
                    enc,
                    auth,
                    keys: SaKeys { enc: ek, auth: ak },
                    mode,
                    udp_encap,
                    esn,
                    replay_window,
                    lifetime,
                    selectors,
                }
            },
        )
}

fn arb_drops() -> impl Strategy<Value = DropCounts> {
    prop::collection::vec(prop_oneof![Just(0u64), any::<u64>()], DropReason::COUNT).prop_map(|v| {
        let mut counts = [0u64; DropReason::COUNT];
        counts.copy_from_slice(&v);
        DropCounts(counts)
    })
}

fn arb_sa_counts() -> impl Strategy<Value = SaCounts> {
    (
        any::<u32>(),
        arb_direction(),
        any::<[u64; 8]>(),
        any::<u16>(),
        arb_drops(),
    )
        .prop_map(
            |(
                spi,
                direction,
                [encaps, encrypt, digest, decaps, decrypt, verify, bytes, last_used],
                peer_port,
                drops,
            )| {
                SaCounts {
                    spi,
                    direction,
                    encaps,
                    encrypt,
                    digest,
                    decaps,
                    decrypt,
                    verify,
                    bytes,
                    last_used,
                    peer_port,
                    path_mtu: peer_port.rotate_left(3),
                    drops,
                }
            },
        )
}

fn arb_flow() -> impl Strategy<Value = FlowKey> {
    (arb_ip(), arb_ip(), any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
        |(src, dst, proto, src_port, dst_port)| FlowKey {
            src,
            dst,
            proto,
            src_port,
            dst_port,
        },
    )
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u16>().prop_map(|version| Request::Hello { version }),
        arb_sa().prop_map(|sa| Request::AddSa(Box::new(sa))),
        (arb_direction(), any::<u32>(), arb_lifetime()).prop_map(|(direction, spi, lifetime)| {
            Request::UpdateSa {
                direction,
                spi,
                lifetime,
            }
        }),
        (arb_direction(), any::<u32>())
            .prop_map(|(direction, spi)| Request::DeleteSa { direction, spi }),
        (any::<u32>(), any::<u16>()).prop_map(|(spi, port)| Request::SetPeerPort { spi, port }),
        (arb_part(), prop::collection::vec(arb_spd_rule(), 0..20))
            .prop_map(|(part, rules)| Request::LoadSpd { part, rules }),
        (arb_part(), prop::collection::vec(arb_nat_rule(), 0..20))
            .prop_map(|(part, rules)| Request::LoadNat { part, rules }),
        any::<Option<u32>>().prop_map(|spi| Request::GetCounters { spi }),
        Just(Request::Ping),
        Just(Request::GetNatStats),
        (
            arb_ip(),
            any::<u16>(),
            arb_ip(),
            any::<u16>(),
            prop::collection::vec(any::<u8>(), 0..=MAX_INJECTED_ESP_LEN)
        )
            .prop_map(|(a, p, b, q, esp)| Request::InjectEsp {
                from: std::net::SocketAddr::new(a, p),
                to: std::net::SocketAddr::new(b, q),
                esp,
            }),
        prop::collection::vec(
            (
                "[A-Za-z][A-Za-z0-9._-]{0,14}",
                any::<u32>(),
                any::<u32>(),
                any::<u16>()
            )
                .prop_map(|(name, map, seq, mtu)| TunnelInterface {
                    name,
                    tag: PolicyTag { map, seq },
                    mtu,
                }),
            0..5
        )
        .prop_map(|tunnels| Request::SetTunnelInterfaces { tunnels }),
    ]
}

fn arb_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u16>(), ".{0,40}").prop_map(|(version, dataplane_version)| Reply::HelloAck {
            version,
            dataplane_version
        }),
        Just(Reply::Ack),
        (prop::sample::select(ErrorCode::ALL.to_vec()), ".{0,80}")
            .prop_map(|(code, message)| Reply::Error { code, message }),
        (
            prop::collection::vec(arb_sa_counts(), 0..10),
            arb_drops(),
            any::<bool>()
        )
            .prop_map(|(sas, global_drops, more)| Reply::Counters {
                sas,
                global_drops,
                more
            }),
        (
            prop::array::uniform7(any::<u64>()),
            prop::array::uniform6(any::<u64>())
        )
            .prop_map(|(v, drops)| Reply::NatStats(crate::nat::NatStats {
                active_translations: v[0],
                translations_created: v[1],
                expired_translations: v[2],
                hits_outbound: v[3],
                hits_inbound: v[4],
                exempted: v[5],
                no_rule: v[6],
                drops,
            })),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (arb_tag(), arb_flow()).prop_map(|(tag, flow)| Event::Acquire { tag, flow }),
        (any::<u32>(), arb_direction())
            .prop_map(|(spi, direction)| Event::SoftExpire { spi, direction }),
        (any::<u32>(), arb_direction())
            .prop_map(|(spi, direction)| Event::HardExpire { spi, direction }),
        (any::<u32>(), any::<u64>()).prop_map(|(spi, count)| Event::ReplayFailure { spi, count }),
        (any::<u32>(), any::<u64>())
            .prop_map(|(spi, count)| Event::IntegrityFailure { spi, count }),
        (any::<u32>(), any::<u64>()).prop_map(|(spi, last_used)| Event::Idle { spi, last_used }),
        (
            arb_ip(),
            any::<u16>(),
            arb_ip(),
            prop::collection::vec(any::<u8>(), 0..=MAX_TED_PROBE_LEN)
        )
            .prop_map(|(ip, port, original_dst, data)| Event::TedProbe {
                from: std::net::SocketAddr::new(ip, port),
                original_dst,
                data,
            }),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    let payload = prop_oneof![
        arb_request().prop_map(Payload::Request),
        arb_reply().prop_map(Payload::Reply),
        arb_event().prop_map(Payload::Event),
    ];
    (any::<u32>(), payload).prop_map(|(request_id, payload)| Message {
        request_id,
        payload,
    })
}

// ---------------------------------------------------------------------------
// Helpers.

/// A datagram with the given header fields around `body`; `body_len`
/// is the true length.
fn datagram(version: u16, t: u16, request_id: u32, body: &[u8]) -> Vec<u8> {
    let mut d = MAGIC.to_vec();
    d.extend_from_slice(&version.to_be_bytes());
    d.extend_from_slice(&t.to_be_bytes());
    d.extend_from_slice(&request_id.to_be_bytes());
    d.extend_from_slice(&(body.len() as u32).to_be_bytes());
    d.extend_from_slice(body);
    d
}

fn v1(t: u16, body: &[u8]) -> Vec<u8> {
    datagram(PROTOCOL_VERSION, t, 7, body)
}

/// If `bytes` decode, the message re-encodes and decodes to itself.
fn reencodes_if_valid(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = decode(bytes) {
        let again = encode(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(decode(&again), Ok(m));
    }
    Ok(())
}

/// An AddSa body for AES-CBC-128 + HMAC-SHA1, transport mode, with the
/// given key lengths (all key bytes 0x11).
fn add_sa_body(enc_key_len: u16, auth_key_len: u16) -> Vec<u8> {
    let mut b = vec![];
    b.extend_from_slice(&0x1000u32.to_be_bytes()); // spi
    b.push(0); // inbound
    b.push(EncAlg::AesCbc128.code());
    b.push(AuthAlg::HmacSha1_96.code());
    b.push(0); // esn
    b.extend_from_slice(&64u32.to_be_bytes()); // replay window
    b.push(0); // transport
    b.push(0); // no udp encap
    b.extend_from_slice(&[0, 0, 0, 0]); // no lifetimes
    b.extend_from_slice(&0u32.to_be_bytes()); // no selectors: any traffic
    b.extend_from_slice(&enc_key_len.to_be_bytes());
    b.extend(std::iter::repeat_n(0x11, enc_key_len.into()));
    b.extend_from_slice(&auth_key_len.to_be_bytes());
    b.extend(std::iter::repeat_n(0x11, auth_key_len.into()));
    b
}

fn v4_rule(i: u32) -> SpdRule {
    SpdRule {
        selector: TrafficSelector {
            src: IpPrefix::host(IpAddr::V4(i.into())),
            dst: IpPrefix::any_v4(),
            proto: Some(6),
            src_ports: PortRange::ANY,
            dst_ports: PortRange::single(22),
        },
        action: PolicyAction::Protect {
            sa: Some(i),
            map: PolicyTag { map: 1, seq: i },
        },
    }
}

fn one_of_each_type() -> Vec<Message> {
    let sa = SaParams {
        spi: 0xdead_beef,
        direction: Direction::Outbound,
        enc: EncAlg::AesGcm256(GcmIcv::B16),
        auth: AuthAlg::None,
        keys: SaKeys {
            enc: vec![0x42; 36],
            auth: vec![],
        },
        mode: EspMode::Tunnel {
            local: "198.18.0.1".parse().expect("literal"),
            remote: "fd00::2".parse().expect("literal"),
        },
        udp_encap: Some(UdpEncap::default()),
        esn: true,
        replay_window: 1024,
        lifetime: Lifetime {
            soft_seconds: Some(3300),
            hard_seconds: Some(3600),
            soft_kilobytes: None,
            hard_kilobytes: Some(4_608_000),
        },
        selectors: vec![TrafficSelector {
            src: "198.19.1.0/24".parse().expect("literal"),
            dst: "198.19.2.0/24".parse().expect("literal"),
            proto: Some(17),
            src_ports: PortRange::ANY,
            dst_ports: PortRange::single(5000),
        }],
    };
    let mut drops = DropCounts::default();
    drops.set(DropReason::Replay, 3);
    drops.set(DropReason::BadIpChecksum, 1);
    let flow = FlowKey {
        src: "198.18.1.1".parse().expect("literal"),
        dst: "198.19.2.2".parse().expect("literal"),
        proto: 17,
        src_port: 5000,
        dst_port: 53,
    };
    let req = |r| Message::request(1, r);
    let rep = |r| Message::reply(1, r);
    vec![
        req(Request::Hello { version: 1 }),
        req(Request::AddSa(Box::new(sa))),
        req(Request::UpdateSa {
            direction: Direction::Inbound,
            spi: 9,
            lifetime: Lifetime::default(),
        }),
        req(Request::DeleteSa {
            direction: Direction::Inbound,
            spi: 9,
        }),
        req(Request::LoadSpd {
            part: ListPart {
                offset: 1800,
                more: true,
            },
            rules: vec![v4_rule(1), v4_rule(2)],
        }),
        req(Request::LoadNat {
            part: ListPart::WHOLE,
            rules: vec![NatRule {
                selector: v4_rule(1).selector,
                action: NatAction::Pat {
                    outside_ifindex: 3,
                    outside_addr: "198.18.0.1".parse().expect("literal"),
                },
            }],
        }),
        req(Request::GetCounters { spi: None }),
        req(Request::Ping),
        rep(Reply::HelloAck {
            version: 1,
            dataplane_version: "espada-dataplane 0.1.0".into(),
        }),
        rep(Reply::Ack),
        rep(Reply::Error {
            code: ErrorCode::UnknownSa,
            message: "no such SA".into(),
        }),
        rep(Reply::Counters {
            sas: vec![SaCounts {
                spi: 9,
                direction: Direction::Inbound,
                encaps: 0,
                encrypt: 0,
                digest: 0,
                decaps: 10,
                decrypt: 10,
                verify: 10,
                bytes: 1000,
                last_used: 77,
                peer_port: 4500,
                path_mtu: 1400,
                drops,
            }],
            global_drops: drops,
            more: false,
        }),
        Message::event(Event::Acquire {
            tag: PolicyTag { map: 1, seq: 10 },
            flow,
        }),
        Message::event(Event::SoftExpire {
            spi: 9,
            direction: Direction::Outbound,
        }),
        Message::event(Event::HardExpire {
            spi: 9,
            direction: Direction::Outbound,
        }),
        Message::event(Event::ReplayFailure { spi: 9, count: 2 }),
        Message::event(Event::IntegrityFailure { spi: 9, count: 5 }),
        Message::event(Event::Idle {
            spi: 9,
            last_used: 1234,
        }),
        Message::event(Event::TedProbe {
            from: "198.19.1.10:500".parse().unwrap(),
            original_dst: "198.19.2.10".parse().unwrap(),
            data: vec![0x10; 28],
        }),
        Message::event(Event::TedProbe {
            from: "[fd00:1::10]:4500".parse().unwrap(),
            original_dst: "fd00:2::10".parse().unwrap(),
            data: Vec::new(),
        }),
    ]
}

// ---------------------------------------------------------------------------
// Round trips.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips_through_the_wire(m in arb_message()) {
        let bytes = encode(&m).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
        let header = wire::Header::parse(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(header.version, PROTOCOL_VERSION);
        prop_assert_eq!(header.request_id, m.request_id);
        prop_assert_eq!(header.body_len as usize, bytes.len() - HEADER_LEN);
        prop_assert_eq!(decode(&bytes), Ok(m));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        reencodes_if_valid(&bytes)?;
    }

    #[test]
    fn random_bodies_behind_a_valid_header_never_panic_and_reencode_faithfully(
        t in prop::sample::select(vec![
            msg_type::HELLO, msg_type::ADD_SA, msg_type::UPDATE_SA, msg_type::DELETE_SA,
            msg_type::LOAD_SPD, msg_type::LOAD_NAT, msg_type::GET_COUNTERS, msg_type::PING,
            msg_type::HELLO_ACK, msg_type::ACK, msg_type::ERROR, msg_type::COUNTERS,
            msg_type::ACQUIRE, msg_type::SOFT_EXPIRE, msg_type::HARD_EXPIRE,
            msg_type::REPLAY_FAILURE, msg_type::INTEGRITY_FAILURE, msg_type::IDLE,
            msg_type::TED_PROBE,
        ]),
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        reencodes_if_valid(&v1(t, &body))?;
    }

    #[test]
    fn corrupted_valid_messages_never_panic_the_decoder(
        m in arb_message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = encode(&m).map_err(|e| TestCaseError::fail(e.to_string()))?.to_vec();
        for (i, x) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        reencodes_if_valid(&bytes)?;
    }

    #[test]
    fn hostile_vector_counts_are_refused_without_allocating(
        t in prop::sample::select(vec![msg_type::LOAD_SPD, msg_type::LOAD_NAT]),
        count in 100u32..,
        tail in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut body = vec![0, 0, 0, 0, 0]; // the whole list: offset 0, no more
        body.extend_from_slice(&count.to_be_bytes());
        body.extend_from_slice(&tail);
        let bytes = v1(t, &body);
        let (result, largest) = largest_allocation_of(|| decode(&bytes));
        let is_count_too_large = matches!(result, Err(DecodeError::CountTooLarge { .. }));
        prop_assert!(is_count_too_large, "{:?}", result);
        prop_assert!(largest < 1024, "decoding allocated {} bytes", largest);
    }

    #[test]
    fn hostile_counts_inside_counters_replies_are_refused_without_allocating(
        count in 1000u32..,
    ) {
        let mut body = vec![0, 0]; // more = false, no global drops
        body.extend_from_slice(&count.to_be_bytes());
        let bytes = v1(msg_type::COUNTERS, &body);
        let (result, largest) = largest_allocation_of(|| decode(&bytes));
        let is_count_too_large = matches!(result, Err(DecodeError::CountTooLarge { .. }));
        prop_assert!(is_count_too_large, "{:?}", result);
        prop_assert!(largest < 1024, "decoding allocated {} bytes", largest);
    }
}

#[test]
fn one_message_of_each_type_round_trips() {
    let all = one_of_each_type();
    let mut types: Vec<u16> = Vec::new();
    for m in &all {
        let bytes = encode(m).expect("encodes");
        types.push(wire::Header::parse(&bytes).expect("header").msg_type);
        assert_eq!(decode(&bytes).as_ref(), Ok(m), "{}", m.name());
    }
    types.sort();
    types.dedup();
    assert_eq!(types.len(), 19, "every message type is in the list");
}

#[test]
fn every_algorithm_drop_reason_and_error_code_round_trips_through_its_code() {
    for a in EncAlg::ALL {
        assert_eq!(EncAlg::from_code(a.code()), Some(a));
    }
    assert_eq!(EncAlg::from_code(12), None);
    for a in AuthAlg::ALL.into_iter().chain([AuthAlg::None]) {
        assert_eq!(AuthAlg::from_code(a.code()), Some(a));
    }
    assert_eq!(AuthAlg::from_code(6), None);
    for r in DropReason::ALL {
        assert_eq!(DropReason::from_code(r.code()), Some(r));
    }
    assert_eq!(DropReason::from_code(DropReason::COUNT as u8), None);
    for c in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_code(c.code()), Some(c));
    }
    assert_eq!(ErrorCode::from_code(0), None);
}

#[test]
fn add_sa_keys_are_carried_and_hidden_from_debug() {
    let bytes = v1(msg_type::ADD_SA, &add_sa_body(16, 20));
    let m = decode(&bytes).expect("valid AddSa");
    let Payload::Request(Request::AddSa(sa)) = &m.payload else {
        panic!("not an AddSa: {m:?}");
    };
    assert_eq!(sa.keys.enc, vec![0x11; 16]);
    assert_eq!(sa.keys.auth, vec![0x11; 20]);
    assert!(!format!("{m:?}").contains("17, 17"), "keys leak into Debug");
}

// ---------------------------------------------------------------------------
// Malformed datagrams, one error each.

#[test]
fn a_datagram_shorter_than_the_header_is_refused() {
    assert_eq!(
        decode(b"ESPD\x00\x01"),
        Err(DecodeError::ShortHeader { len: 6 })
    );
    assert_eq!(decode(b""), Err(DecodeError::ShortHeader { len: 0 }));
}

#[test]
fn wrong_magic_is_refused() {
    let mut d = v1(msg_type::PING, &[]);
    d[..4].copy_from_slice(b"IKE!");
    assert_eq!(decode(&d), Err(DecodeError::BadMagic { found: *b"IKE!" }));
}

#[test]
fn another_protocol_version_is_refused_with_a_message_naming_both_versions() {
    let d = datagram(2, msg_type::HELLO, 42, &2u16.to_be_bytes());
    let err = decode(&d).expect_err("version 2 is unknown");
    assert_eq!(err, DecodeError::UnsupportedVersion { version: 2 });
    let text = err.to_string();
    assert!(
        text.contains("version 2") && text.contains("version 1"),
        "{text}"
    );
    // The header is still readable, so the refusal answers the right request.
    let reply =
        Message::decode_error_reply(wire::Header::parse(&d).ok().map(|h| h.request_id), &err);
    assert_eq!(reply.request_id, 42);
    assert!(matches!(
        reply.payload,
        Payload::Reply(Reply::Error {
            code: ErrorCode::UnsupportedVersion,
            ..
        })
    ));
}

#[test]
fn a_body_length_that_disagrees_with_the_datagram_is_refused() {
    let mut d = v1(msg_type::DELETE_SA, &[0, 0, 0, 0, 9]);
    d[12..16].copy_from_slice(&4u32.to_be_bytes());
    assert_eq!(
        decode(&d),
        Err(DecodeError::BodyLength {
            declared: 4,
            actual: 5
        })
    );
    d[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        decode(&d),
        Err(DecodeError::BodyLength {
            declared: u32::MAX,
            actual: 5
        })
    );
}

#[test]
fn a_datagram_over_64_kib_is_refused() {
    let d = v1(msg_type::PING, &vec![0; MAX_MESSAGE_LEN]);
    assert_eq!(
        decode(&d),
        Err(DecodeError::TooLarge {
            len: MAX_MESSAGE_LEN + HEADER_LEN
        })
    );
}

#[test]
fn an_unknown_message_type_is_refused() {
    assert_eq!(
        decode(&v1(0x0999, &[])),
        Err(DecodeError::UnknownType { msg_type: 0x0999 })
    );
}

#[test]
fn a_truncated_field_names_what_and_where() {
    // DeleteSa: direction (1) then spi (4); only 2 spi bytes.
    assert_eq!(
        decode(&v1(msg_type::DELETE_SA, &[1, 0, 0])),
        Err(DecodeError::Truncated {
            msg: "DeleteSa",
            what: "spi",
            offset: 1,
            need: 4,
            left: 2
        })
    );
    // A string whose length runs past the body.
    assert!(matches!(
        decode(&v1(msg_type::ERROR, &[0, 1, 0, 9, b'x'])),
        Err(DecodeError::Truncated {
            what: "error message",
            offset: 4,
            need: 9,
            left: 1,
            ..
        })
    ));
}

#[test]
fn trailing_bytes_after_a_body_are_refused() {
    assert_eq!(
        decode(&v1(msg_type::PING, &[0])),
        Err(DecodeError::TrailingBytes {
            msg: "Ping",
            offset: 0,
            left: 1
        })
    );
    let mut body = add_sa_body(16, 20);
    body.push(0);
    assert!(matches!(
        decode(&v1(msg_type::ADD_SA, &body)),
        Err(DecodeError::TrailingBytes { left: 1, .. })
    ));
}

#[test]
fn unknown_enum_codes_are_refused_with_their_position() {
    assert_eq!(
        decode(&v1(msg_type::DELETE_SA, &[7, 0, 0, 0, 1])),
        Err(DecodeError::UnknownCode {
            msg: "DeleteSa",
            what: "direction",
            code: 7,
            offset: 0
        })
    );
    let mut body = add_sa_body(16, 20);
    body[5] = 99; // encryption algorithm
    assert_eq!(
        decode(&v1(msg_type::ADD_SA, &body)),
        Err(DecodeError::UnknownCode {
            msg: "AddSa",
            what: "encryption algorithm",
            code: 99,
            offset: 5
        })
    );
    assert!(matches!(
        decode(&v1(msg_type::GET_COUNTERS, &[2, 0, 0, 0, 0])),
        Err(DecodeError::UnknownCode {
            what: "option tag",
            ..
        })
    ));
    assert!(matches!(
        decode(&v1(msg_type::ERROR, &[0, 0, 0, 0])),
        Err(DecodeError::UnknownCode {
            what: "error code",
            ..
        })
    ));
}

#[test]
fn a_key_whose_length_does_not_match_its_algorithm_is_refused() {
    assert_eq!(
        decode(&v1(msg_type::ADD_SA, &add_sa_body(15, 20))),
        Err(DecodeError::KeyLength {
            msg: "AddSa",
            which: "encryption",
            alg: "esp-aes",
            got: 15,
            expected: 16
        })
    );
    assert!(matches!(
        decode(&v1(msg_type::ADD_SA, &add_sa_body(16, 32))),
        Err(DecodeError::KeyLength {
            which: "integrity",
            got: 32,
            expected: 20,
            ..
        })
    ));
}

#[test]
fn non_canonical_values_are_refused() {
    // A prefix with host bits set: 198.18.0.1/16.
    let mut sel = vec![4, 198, 18, 0, 1, 16];
    sel.extend_from_slice(&[4, 0, 0, 0, 0, 0]); // 0.0.0.0/0
    sel.push(0); // any protocol
    sel.extend_from_slice(&[0, 0, 0xff, 0xff, 0, 0, 0xff, 0xff]);
    sel.push(0); // exempt
    let mut body = vec![0, 0, 0, 0, 0]; // the whole list: offset 0, no more
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&sel);
    assert!(matches!(
        decode(&v1(msg_type::LOAD_NAT, &body)),
        Err(DecodeError::Invalid {
            what: "prefix",
            why: "host bits set",
            offset: 9,
            ..
        })
    ));
    // A reversed port range.
    body[9 + 4] = 0; // fix the prefix: 198.18.0.0/16
    body[9 + 13..9 + 17].copy_from_slice(&[0, 9, 0, 8]);
    assert!(matches!(
        decode(&v1(msg_type::LOAD_NAT, &body)),
        Err(DecodeError::Invalid {
            what: "port range",
            ..
        })
    ));
    // A boolean that is neither 0 nor 1.
    assert!(matches!(
        decode(&v1(msg_type::COUNTERS, &[2, 0, 0, 0, 0, 0])),
        Err(DecodeError::UnknownCode {
            what: "boolean",
            ..
        })
    ));
    // Drop counters out of order.
    let mut body = vec![0, 2, 3];
    body.extend_from_slice(&1u64.to_be_bytes());
    body.push(1);
    body.extend_from_slice(&1u64.to_be_bytes());
    body.extend_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        decode(&v1(msg_type::COUNTERS, &body)),
        Err(DecodeError::Invalid {
            what: "drop counters",
            ..
        })
    ));
    // A string that is not UTF-8.
    assert!(matches!(
        decode(&v1(msg_type::ERROR, &[0, 1, 0, 1, 0xff])),
        Err(DecodeError::Invalid {
            what: "error message",
            why: "not UTF-8",
            ..
        })
    ));
}

// ---------------------------------------------------------------------------
// Size limits.

/// The largest rules the wire can carry, to check the size bounds.
fn widest_selector() -> TrafficSelector {
    let v6: IpAddr = "fd00::1".parse().expect("literal");
    TrafficSelector {
        src: IpPrefix::host(v6),
        dst: IpPrefix::host(v6),
        proto: Some(17),
        src_ports: PortRange::single(500),
        dst_ports: PortRange::single(4500),
    }
}

fn widest_spd_rule() -> SpdRule {
    SpdRule {
        selector: widest_selector(),
        action: PolicyAction::Protect {
            sa: Some(u32::MAX),
            map: PolicyTag {
                map: u32::MAX,
                seq: u32::MAX,
            },
        },
    }
}

fn widest_nat_rule() -> NatRule {
    NatRule {
        selector: widest_selector(),
        action: NatAction::Pat {
            outside_ifindex: u32::MAX,
            outside_addr: "fd00::2".parse().expect("literal"),
        },
    }
}

/// Bytes one more rule adds to a list message.
fn rule_len(one: Request, two: Request) -> usize {
    let len = |r| encode(&Message::request(1, r)).expect("fits").len();
    len(two) - len(one)
}

#[test]
fn the_rule_size_bounds_are_the_widest_rules_encoded() {
    let spd = |n| Request::LoadSpd {
        part: ListPart::WHOLE,
        rules: vec![widest_spd_rule(); n],
    };
    let nat = |n| Request::LoadNat {
        part: ListPart::WHOLE,
        rules: vec![widest_nat_rule(); n],
    };
    assert_eq!(rule_len(spd(1), spd(2)), wire::SPD_RULE_MAX_LEN);
    assert_eq!(rule_len(nat(1), nat(2)), wire::NAT_RULE_MAX_LEN);
}

#[test]
fn one_message_too_large_is_refused_by_the_encoder() {
    // An IPv4 rule like these takes 36 bytes: 1800 fit, 1900 do not.
    let fits: Vec<SpdRule> = (0..1800).map(v4_rule).collect();
    let m = Message::request(
        1,
        Request::LoadSpd {
            part: ListPart::WHOLE,
            rules: fits,
        },
    );
    assert!(encode(&m).expect("fits").len() <= MAX_MESSAGE_LEN);

    let too_many: Vec<SpdRule> = (0..1900).map(v4_rule).collect();
    let m = Message::request(
        1,
        Request::LoadSpd {
            part: ListPart::WHOLE,
            rules: too_many,
        },
    );
    match encode(&m) {
        Err(EncodeError::TooLarge { msg, len }) => {
            assert_eq!(msg, "LoadSpd");
            assert!(len > MAX_MESSAGE_LEN);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn a_long_list_is_split_into_parts_that_fit_and_join_in_order() {
    // 5 000 of the widest rules: five parts of the SPD, six of NAT.
    let spd = vec![widest_spd_rule(); 5000];
    let parts = Request::load_spd(&spd);
    assert_eq!(
        parts.len(),
        5000usize.div_ceil(Request::SPD_RULES_PER_MESSAGE)
    );
    let mut joined = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let bytes = encode(&Message::request(1, p.clone())).expect("each part fits");
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
        match p {
            Request::LoadSpd { part, rules } => {
                assert_eq!(part.offset as usize, joined.len());
                assert_eq!(part.more, i + 1 < parts.len());
                joined.extend_from_slice(rules);
            }
            other => panic!("not LoadSpd: {other:?}"),
        }
    }
    assert_eq!(joined, spd);

    let nat = vec![widest_nat_rule(); 5000];
    let parts = Request::load_nat(&nat);
    assert_eq!(
        parts.len(),
        5000usize.div_ceil(Request::NAT_RULES_PER_MESSAGE)
    );
    for p in &parts {
        let bytes = encode(&Message::request(1, p.clone())).expect("each part fits");
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
    }

    // An empty list is still one request: it clears the table.
    assert_eq!(
        Request::load_spd(&[]),
        vec![Request::LoadSpd {
            part: ListPart::WHOLE,
            rules: vec![],
        }]
    );
}

#[test]
fn a_counters_answer_for_many_sas_is_split_into_messages_that_fit() {
    let mut drops = DropCounts::default();
    for r in DropReason::ALL {
        drops.set(r, u64::MAX);
    }
    let sa = |spi| SaCounts {
        spi,
        direction: Direction::Inbound,
        encaps: u64::MAX,
        encrypt: u64::MAX,
        digest: u64::MAX,
        decaps: u64::MAX,
        decrypt: u64::MAX,
        verify: u64::MAX,
        bytes: u64::MAX,
        last_used: u64::MAX,
        peer_port: u16::MAX,
        path_mtu: u16::MAX,
        drops,
    };
    let sas: Vec<SaCounts> = (0..1000).map(sa).collect();
    let replies = Reply::counters(5, &sas, drops);
    assert_eq!(replies.len(), 1000usize.div_ceil(Reply::SAS_PER_COUNTERS));
    assert!(replies.len() > 1);
    let mut seen = Vec::new();
    for (i, m) in replies.iter().enumerate() {
        let bytes = encode(m).expect("every part fits");
        let Ok(Message {
            request_id: 5,
            payload: Payload::Reply(Reply::Counters { sas, more, .. }),
        }) = decode(&bytes)
        else {
            panic!("not a Counters reply");
        };
        assert_eq!(more, i != replies.len() - 1);
        seen.extend(sas);
    }
    assert_eq!(seen.len(), 1000);
    assert_eq!(Reply::counters(5, &[], drops).len(), 1);
}

#[test]
fn a_ted_probe_longer_than_1500_bytes_is_refused_both_ways() {
    let m = Message::event(Event::TedProbe {
        from: "198.19.1.10:500".parse().unwrap(),
        original_dst: "198.19.2.10".parse().unwrap(),
        data: vec![0; MAX_TED_PROBE_LEN + 1],
    });
    assert!(matches!(
        encode(&m),
        Err(EncodeError::FieldTooLong {
            what: "TED probe",
            ..
        })
    ));
    // Hand-built: IPv4 from, port, IPv4 destination, 1501 bytes.
    let mut body = vec![4, 198, 19, 1, 10, 1, 0xf4, 4, 198, 19, 2, 10];
    body.extend_from_slice(&1501u16.to_be_bytes());
    body.extend(std::iter::repeat_n(0u8, 1501));
    assert!(matches!(
        decode(&v1(msg_type::TED_PROBE, &body)),
        Err(DecodeError::Invalid {
            what: "TED probe",
            ..
        })
    ));
    body.truncate(12);
    body.extend_from_slice(&1500u16.to_be_bytes());
    body.extend(std::iter::repeat_n(0x10u8, 1500));
    let Ok(Message {
        payload: Payload::Event(Event::TedProbe { from, data, .. }),
        ..
    }) = decode(&v1(msg_type::TED_PROBE, &body))
    else {
        panic!("a 1500-byte probe decodes");
    };
    assert_eq!(from, "198.19.1.10:500".parse().unwrap());
    assert_eq!(data.len(), 1500);
}

#[test]
fn an_oversized_string_is_refused_by_the_encoder() {
    let m = Message::reply(
        1,
        Reply::Error {
            code: ErrorCode::Internal,
            message: "x".repeat(70_000),
        },
    );
    assert!(matches!(
        encode(&m),
        Err(EncodeError::FieldTooLong {
            what: "error message",
            ..
        })
    ));
}

#[test]
fn a_tunnel_interface_name_linux_would_refuse_is_refused_on_decode() {
    let set = |name: &str| {
        Message::request(
            3,
            Request::SetTunnelInterfaces {
                tunnels: vec![TunnelInterface {
                    name: name.to_string(),
                    tag: PolicyTag { map: 1, seq: 65536 },
                    mtu: 1400,
                }],
            },
        )
    };
    let ok = set("Tunnel23");
    assert_eq!(decode(&encode(&ok).unwrap()).unwrap(), ok);
    for bad in ["", "Tunnel1234567890", "a/b", "a b"] {
        let err = decode(&encode(&set(bad)).unwrap()).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Invalid {
                    what: "tunnel interface name",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn injected_esp_longer_than_its_limit_is_refused_both_ways() {
    let inject = |len: usize| {
        Message::request(
            7,
            Request::InjectEsp {
                from: "198.18.0.9:4500".parse().unwrap(),
                to: "[fd00::1]:4500".parse().unwrap(),
                esp: vec![0x5a; len],
            },
        )
    };
    assert!(matches!(
        encode(&inject(MAX_INJECTED_ESP_LEN + 1)),
        Err(EncodeError::FieldTooLong {
            what: "injected ESP",
            ..
        })
    ));
    let at_limit = encode(&inject(MAX_INJECTED_ESP_LEN)).unwrap();
    assert_eq!(decode(&at_limit).unwrap(), inject(MAX_INJECTED_ESP_LEN));
    // Hand-built: IPv4 from and port, IPv4 to and port, one byte too many.
    let mut body = vec![4, 198, 18, 0, 9, 0x11, 0x94, 4, 198, 18, 0, 1, 0x11, 0x94];
    body.extend_from_slice(&(MAX_INJECTED_ESP_LEN as u16 + 1).to_be_bytes());
    body.extend(std::iter::repeat_n(0u8, MAX_INJECTED_ESP_LEN + 1));
    assert!(matches!(
        decode(&v1(msg_type::INJECT_ESP, &body)),
        Err(DecodeError::Invalid {
            what: "injected ESP",
            ..
        })
    ));
}
