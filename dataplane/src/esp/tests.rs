//! Round trips through encap and decap for every mode, family pairing and
//! encapsulation, and the drop path for every kind of bad packet. The
//! independent cross-check against scapy lives in `dataplane/tests/`.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::api::{Direction, EspMode, SaCounts, SaParams};
use crate::counters::{DropCounters, DropReason, SaCounters};
use crate::crypto::{AuthAlg, EncAlg, GcmIcv};
use crate::sa::Sadb;
use crate::testkit::*;
use crate::wire::{ip_proto, ipv4};

/// The workhorse suite of the seeds (esp-aes esp-sha-hmac), no ESN, window 64.
fn aes_sha1(mode: EspMode, udp: bool) -> (SaParams, SaParams) {
    sa_pair(
        EncAlg::AesCbc128,
        AuthAlg::HmacSha1_96,
        mode,
        udp,
        false,
        64,
    )
}

fn install(out: &SaParams, inb: &SaParams) -> (Sadb, Sadb) {
    let mut a = Sadb::new();
    a.install(out, 0).unwrap();
    let mut b = Sadb::new();
    b.install(inb, 0).unwrap();
    (a, b)
}

#[test]
fn every_suite_round_trips_in_every_tunnel_family_pairing_with_and_without_udp() {
    for (enc, auth) in all_suites() {
        for outer_v6 in [false, true] {
            for inner_is_v6 in [false, true] {
                for udp in [false, true] {
                    let (o, i) = sa_pair(enc, auth, tunnel(outer_v6), udp, false, 64);
                    let (a, b) = install(&o, &i);
                    let sa = a.outbound(o.spi).unwrap();
                    let inner = if inner_is_v6 {
                        inner_v6(100)
                    } else {
                        inner_v4(100)
                    };
                    let outer = encap_one(sa, &inner).unwrap();
                    let g = DropCounters::default();
                    let (r, got) = decap_one(&b, &outer, &g);
                    let what = format!(
                        "{enc:?}/{auth:?} outer_v6={outer_v6} inner_v6={inner_is_v6} udp={udp}"
                    );
                    assert_eq!(
                        r,
                        Ok(Decapped::Inner {
                            spi: o.spi,
                            inner_version: if inner_is_v6 { 6 } else { 4 }
                        }),
                        "{what}"
                    );
                    assert_eq!(got, inner, "{what}");
                    let isa = b.inbound(i.spi).unwrap();
                    assert_eq!(SaCounters::read(&isa.counters().packets), 1, "{what}");
                    assert_eq!(SaCounters::read(&sa.counters().packets), 1, "{what}");
                }
            }
        }
    }
}

#[test]
fn transport_mode_round_trips_for_ipv4_and_ipv6_with_and_without_udp() {
    for v6 in [false, true] {
        for udp in [false, true] {
            for (enc, auth) in [
                (EncAlg::AesCbc128, AuthAlg::HmacSha1_96),
                (EncAlg::AesGcm256(GcmIcv::B16), AuthAlg::None),
                (EncAlg::TripleDesCbc, AuthAlg::HmacMd5_96),
            ] {
                let (o, i) = sa_pair(enc, auth, EspMode::Transport, udp, false, 64);
                let (a, b) = install(&o, &i);
                let inner = if v6 { inner_v6(57) } else { inner_v4(57) };
                let outer = encap_one(a.outbound(o.spi).unwrap(), &inner).unwrap();
                // The IP header stays, its protocol becomes ESP or UDP.
                let proto = if udp { ip_proto::UDP } else { ip_proto::ESP };
                if v6 {
                    assert_eq!(outer[6], proto);
                    assert_eq!(&outer[8..40], &inner[8..40]);
                } else {
                    assert_eq!(outer[9], proto);
                    assert!(ipv4::Packet::new_checked(&outer[..])
                        .unwrap()
                        .verify_checksum());
                }
                let (r, got) = decap_one(&b, &outer, &DropCounters::default());
                assert!(matches!(r, Ok(Decapped::Inner { .. })), "{r:?}");
                assert_eq!(got, inner, "v6={v6} udp={udp} {enc:?}");
            }
        }
    }
}

#[test]
fn extended_sequence_numbers_cross_the_32_bit_boundary() {
    for (enc, auth) in [
        (EncAlg::AesCbc256, AuthAlg::HmacSha256_128),
        (EncAlg::AesGcm128(GcmIcv::B16), AuthAlg::None),
    ] {
        let (o, i) = sa_pair(enc, auth, tunnel(false), false, true, 64);
        let (a, b) = install(&o, &i);
        let sa = a.outbound(o.spi).unwrap();
        sa.set_last_seq(u64::from(u32::MAX) - 3);
        let g = DropCounters::default();
        for _ in 0..8 {
            let outer = encap_one(sa, &inner_v4(20)).unwrap();
            let (r, _) = decap_one(&b, &outer, &g);
            assert!(r.is_ok(), "{enc:?} {r:?}");
        }
        assert_eq!(
            b.inbound(i.spi).unwrap().replay().unwrap().top(),
            (1 << 32) + 4
        );
    }
}

#[test]
fn a_receiver_without_esn_refuses_what_an_esn_sender_authenticated_with_high_bits() {
    let (o, mut i) = sa_pair(
        EncAlg::AesCbc128,
        AuthAlg::HmacSha1_96,
        tunnel(false),
        false,
        true,
        64,
    );
    i.esn = false;
    let (a, b) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    sa.set_last_seq(5 << 32);
    let outer = encap_one(sa, &inner_v4(20)).unwrap();
    let (r, _) = decap_one(&b, &outer, &DropCounters::default());
    assert_eq!(r, Err(DropReason::IntegrityFailed));
}

#[test]
fn replayed_packet_is_dropped_and_counted() {
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, b) = install(&o, &i);
    let outer = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(10)).unwrap();
    let g = DropCounters::default();
    assert!(decap_one(&b, &outer, &g).0.is_ok());
    assert_eq!(decap_one(&b, &outer, &g).0, Err(DropReason::Replay));
    let c = b.inbound(i.spi).unwrap().counters();
    assert_eq!(c.drops.get(DropReason::Replay), 1);
    assert_eq!(SaCounters::read(&c.packets), 1);
}

#[test]
fn forged_packet_is_dropped_and_does_not_move_the_replay_window() {
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, b) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    let good = encap_one(sa, &inner_v4(10)).unwrap();
    // A forgery with a far-ahead sequence number must not shift the window.
    let mut forged = good.clone();
    forged[24..28].copy_from_slice(&1000u32.to_be_bytes());
    let g = DropCounters::default();
    assert_eq!(
        decap_one(&b, &forged, &g).0,
        Err(DropReason::IntegrityFailed)
    );
    assert!(decap_one(&b, &good, &g).0.is_ok());
    let c = b.inbound(i.spi).unwrap().counters();
    assert_eq!(c.drops.get(DropReason::IntegrityFailed), 1);
}

#[test]
fn unknown_spi_is_counted_globally() {
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, _) = install(&o, &i);
    let outer = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(10)).unwrap();
    let g = DropCounters::default();
    assert_eq!(decap_one(&Sadb::new(), &outer, &g).0, Err(DropReason::NoSa));
    assert_eq!(g.get(DropReason::NoSa), 1);
}

#[test]
fn packet_for_another_tunnel_endpoint_is_refused() {
    let (o, mut i) = aes_sha1(tunnel(false), false);
    i.mode = EspMode::Tunnel {
        local: "198.18.0.9".parse().unwrap(),
        remote: IpAddr::V4(V4_A),
    };
    let (a, b) = install(&o, &i);
    let outer = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(10)).unwrap();
    assert_eq!(
        decap_one(&b, &outer, &DropCounters::default()).0,
        Err(DropReason::WrongDestination)
    );
}

#[test]
fn a_new_peer_port_takes_effect_from_the_next_packet() {
    let (o, i) = aes_sha1(tunnel(false), true);
    let (a, b) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    // Outer IPv4 (20 bytes), then UDP: source port, destination port.
    let ports = |outer: &[u8]| {
        (
            u16::from_be_bytes([outer[20], outer[21]]),
            u16::from_be_bytes([outer[22], outer[23]]),
        )
    };
    let first = encap_one(sa, &inner_v4(100)).unwrap();
    assert_eq!(ports(&first), (4500, 4500));
    assert!(sa.set_peer_port(61_234));
    let second = encap_one(sa, &inner_v4(100)).unwrap();
    assert_eq!(ports(&second), (4500, 61_234));
    // The peer's NAT forwards the new port to its 4500 (the UDP checksum
    // is zero over IPv4, RFC 3948 §2.1, so nothing else changes) and the
    // peer decrypts both packets: its SA does not look at our ports.
    let mut natted = second.clone();
    assert_eq!(&natted[26..28], &[0, 0]);
    natted[22..24].copy_from_slice(&4500u16.to_be_bytes());
    for outer in [&first, &natted] {
        let (r, _) = decap_one(&b, outer, &DropCounters::default());
        assert!(matches!(r, Ok(Decapped::Inner { .. })), "{r:?}");
    }
    // The peer's SA records the source port of what it authenticated:
    // the control process compares it with where it sends.
    let isa = b.inbound(i.spi).unwrap();
    assert_eq!(isa.peer_port_seen(), 4500);
    let mut from_new_port = first.clone();
    from_new_port[20..22].copy_from_slice(&40_061u16.to_be_bytes());
    // A forged copy (bad ICV) from yet another port changes nothing.
    let mut forged = encap_one(sa, &inner_v4(100)).unwrap();
    forged[20..22].copy_from_slice(&50_000u16.to_be_bytes());
    forged[22..24].copy_from_slice(&4500u16.to_be_bytes());
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let g = DropCounters::default();
    assert_eq!(
        decap_one(&b, &forged, &g).0,
        Err(DropReason::IntegrityFailed)
    );
    assert_eq!(isa.peer_port_seen(), 4500);
    // A replayed packet (seq 1 again) from another port neither.
    assert_eq!(decap_one(&b, &from_new_port, &g).0, Err(DropReason::Replay));
    assert_eq!(isa.peer_port_seen(), 4500);
    // A fresh authentic one does.
    let mut fresh = encap_one(sa, &inner_v4(100)).unwrap();
    fresh[20..22].copy_from_slice(&40_061u16.to_be_bytes());
    fresh[22..24].copy_from_slice(&4500u16.to_be_bytes());
    assert!(matches!(
        decap_one(&b, &fresh, &g).0,
        Ok(Decapped::Inner { .. })
    ));
    assert_eq!(isa.peer_port_seen(), 40_061);
    // Out of order: the newer packet from 40062, then an older one (still
    // in the window) from the old port, which must not put it back.
    let from_port = |port: u16| {
        let mut p = encap_one(sa, &inner_v4(100)).unwrap();
        p[20..22].copy_from_slice(&port.to_be_bytes());
        p[22..24].copy_from_slice(&4500u16.to_be_bytes());
        p
    };
    let (older, newer) = (from_port(4500), from_port(40_062));
    for p in [&newer, &older] {
        assert!(matches!(decap_one(&b, p, &g).0, Ok(Decapped::Inner { .. })));
    }
    assert_eq!(isa.peer_port_seen(), 40_062);
    // Authentic, but from another address than the tunnel's peer: not
    // recorded (only the peer's own NAT mapping may move us).
    let mut elsewhere = from_port(40_063);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut elsewhere[..]);
        ip.set_src_addr(std::net::Ipv4Addr::new(198, 18, 0, 77));
        ip.fill_checksum();
    }
    assert!(matches!(
        decap_one(&b, &elsewhere, &g).0,
        Ok(Decapped::Inner { .. })
    ));
    assert_eq!(isa.peer_port_seen(), 40_062);
    // Plain ESP has no port to move.
    let (plain, _) = aes_sha1(tunnel(false), false);
    let (a, _) = install(&plain, &i);
    let sa = a.outbound(plain.spi).unwrap();
    assert!(!sa.set_peer_port(61_234));
    assert_eq!(sa.udp_encap(), None);
}

#[test]
fn nat_keepalive_and_ike_on_port_4500_are_recognised_not_dropped() {
    let (_, i) = aes_sha1(tunnel(false), true);
    let (_, b) = install(
        &sa_pair(
            EncAlg::Null,
            AuthAlg::HmacSha1_96,
            tunnel(false),
            true,
            false,
            0,
        )
        .0,
        &i,
    );
    let udp_packet = |payload: &[u8]| {
        let mut buf = vec![0u8; 28 + payload.len()];
        ipv4::Repr {
            src_addr: V4_A,
            dst_addr: V4_B,
            protocol: ip_proto::UDP,
            payload_len: 8 + payload.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 1,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
        buf[20..22].copy_from_slice(&4500u16.to_be_bytes());
        buf[22..24].copy_from_slice(&4500u16.to_be_bytes());
        buf[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        buf[28..].copy_from_slice(payload);
        buf
    };
    let g = DropCounters::default();
    assert_eq!(
        decap_one(&b, &udp_packet(&[0xff]), &g).0,
        Ok(Decapped::NattKeepalive)
    );
    let mut ike = vec![0u8; 4];
    ike.extend_from_slice(&[1u8; 28]);
    assert_eq!(decap_one(&b, &udp_packet(&ike), &g).0, Ok(Decapped::Ike));
    assert_eq!(g.total(), 0);
}

#[test]
fn tfc_dummy_packet_is_dropped_and_counted() {
    // Build a valid ESP packet whose next header is 59 by encapsulating in
    // transport mode an IPv4 packet with protocol 59.
    let (o, i) = aes_sha1(EspMode::Transport, false);
    let (a, b) = install(&o, &i);
    let mut inner = inner_v4(16);
    inner[9] = ip_proto::NO_NEXT_HEADER;
    ipv4::Packet::new_unchecked(&mut inner[..]).fill_checksum();
    let outer = encap_one(a.outbound(o.spi).unwrap(), &inner).unwrap();
    assert_eq!(
        decap_one(&b, &outer, &DropCounters::default()).0,
        Err(DropReason::DummyPacket)
    );
    assert_eq!(
        b.inbound(i.spi)
            .unwrap()
            .counters()
            .drops
            .get(DropReason::DummyPacket),
        1
    );
}

#[test]
fn bad_padding_behind_a_valid_icv_is_dropped_and_counted() {
    // NULL encryption lets the test write the plaintext trailer directly
    // and then re-seal it with a valid ICV.
    let (o, i) = sa_pair(
        EncAlg::Null,
        AuthAlg::HmacSha1_96,
        tunnel(false),
        false,
        false,
        64,
    );
    let (a, b) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    let mut outer = encap_one(sa, &inner_v4(11)).unwrap();
    let len = outer.len();
    let icv = sa.suite().icv_len();
    let pad_len = outer[len - icv - 2] as usize;
    assert!(pad_len > 0);
    outer[len - icv - 3] ^= 0x40;
    sa.suite().seal(&mut outer[20..], 1).unwrap();
    assert_eq!(
        decap_one(&b, &outer, &DropCounters::default()).0,
        Err(DropReason::BadPadding)
    );
    // Then one packet that goes through. The IOS counters: the bad one
    // was decrypted and verified but not decapsulated.
    let good = encap_one(sa, &inner_v4(11)).unwrap();
    assert!(decap_one(&b, &good, &DropCounters::default()).0.is_ok());
    let isa = b.inbound(i.spi).unwrap();
    let inbound = SaCounts::snapshot(i.spi, Direction::Inbound, isa.counters(), 0);
    let outbound = SaCounts::snapshot(o.spi, Direction::Outbound, sa.counters(), 0);
    let ios = |c: &SaCounts| [c.encaps, c.encrypt, c.digest, c.decaps, c.decrypt, c.verify];
    assert_eq!(ios(&inbound), [0, 0, 0, 1, 2, 2]);
    assert_eq!(ios(&outbound), [2, 2, 2, 0, 0, 0]);
    assert_eq!(inbound.drops.0[DropReason::BadPadding as usize], 1);
}

#[test]
fn encap_without_headroom_is_refused_not_overrun() {
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, _) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    let inner = inner_v4(64);
    let mut frame = vec![0u8; inner.len() + 200];
    frame[10..10 + inner.len()].copy_from_slice(&inner);
    let mut pkts = [PacketBuf::new(&mut frame, 10, inner.len())];
    encap_batch(sa, &mut pkts);
    assert_eq!(pkts[0].verdict, Err(DropReason::NoRoom));
    assert_eq!(sa.counters().drops.get(DropReason::NoRoom), 1);
}

#[test]
fn sequence_number_exhaustion_stops_the_sa_instead_of_cycling() {
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, _) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    sa.set_last_seq(u64::from(u32::MAX));
    assert_eq!(encap_one(sa, &inner_v4(8)), Err(DropReason::SeqOverflow));
}

#[test]
fn encapsulated_packets_carry_the_ip_fields_the_rfcs_ask_for() {
    let (o, i) = aes_sha1(tunnel(false), true);
    let (a, _) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    let inner = inner_v4(100);
    let outer = encap_one(sa, &inner).unwrap();
    let ip = ipv4::Packet::new_checked(&outer[..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.protocol(), ip_proto::UDP);
    assert_eq!(ip.dscp_ecn(), 0xb8, "DSCP/ECN copied from the inner header");
    assert!(ip.dont_frag(), "DF copied from the inner header");
    assert_eq!(usize::from(ip.total_len()), outer.len());
    // UDP 4500 -> 4500 with a zero checksum (RFC 3948 §2.1), then SPI/seq.
    assert_eq!(&outer[20..24], &[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(&outer[26..28], &[0, 0]);
    assert_eq!(&outer[28..36], &[0x12, 0x34, 0x56, 0x78, 0, 0, 0, 1]);
    // 20 outer + 8 UDP + 8 ESP + 16 IV + 128 (100+28 inner) + pad 14 + 2 + 12 ICV.
    assert_eq!(outer.len(), 20 + 8 + 8 + 16 + 128 + 14 + 2 + 12);
}

#[test]
fn a_batch_of_mixed_sizes_seals_like_packets_one_by_one() {
    let (o, i) = sa_pair(
        EncAlg::AesCbc128,
        AuthAlg::HmacSha1_96,
        tunnel(false),
        false,
        false,
        1024,
    );
    let (a, b) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    let sizes: Vec<usize> = (0..70).map(|k| (k * 37) % 1400).collect();
    let inners: Vec<Vec<u8>> = sizes.iter().map(|&n| inner_v4(n)).collect();
    let mut frames: Vec<Vec<u8>> = inners.iter().map(|p| framed(p)).collect();
    let mut pkts = packet_bufs(&mut frames, &inners);
    encap_batch(sa, &mut pkts);
    let g = DropCounters::default();
    for (p, inner) in pkts.iter().zip(&inners) {
        p.verdict.unwrap();
        let (r, got) = decap_one(&b, p.data(), &g);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(&got, inner);
    }
    // Each outer IPv4 header its own identification, as a path that
    // fragments them needs (they carry DF only if the inner one does).
    let idents: std::collections::HashSet<u16> = pkts
        .iter()
        .map(|p| ipv4::Packet::new_checked(p.data()).unwrap().ident())
        .collect();
    assert_eq!(idents.len(), pkts.len());
    assert_eq!(
        SaCounters::read(&b.inbound(i.spi).unwrap().counters().packets),
        70
    );
}

#[test]
fn a_second_sa_to_the_same_peer_does_not_repeat_the_first_ones_outer_ids() {
    // Every SA counts from 1. A rekey's new SA (or a second tunnel to the
    // same peer) whose outer IDs followed the count would repeat the ones
    // the old SA has just used, and fragments of the two could be
    // reassembled together.
    let (o, i) = aes_sha1(tunnel(false), false);
    let ids = |spi: u32| -> std::collections::HashSet<u16> {
        let (mut o, mut i) = (o.clone(), i.clone());
        (o.spi, i.spi) = (spi, spi);
        let (a, _) = install(&o, &i);
        let sa = a.outbound(spi).unwrap();
        (0..1000)
            .map(|_| {
                let outer = encap_one(sa, &inner_v4(60)).unwrap();
                ipv4::Packet::new_checked(&outer[..]).unwrap().ident()
            })
            .collect()
    };
    let old = ids(o.spi);
    assert_eq!(old.len(), 1000, "distinct within the SA");
    for spi in [o.spi + 1, o.spi + 0x100, 0x0000_1001] {
        assert!(old.is_disjoint(&ids(spi)), "SPI {spi:#x}");
    }
}

#[test]
fn the_single_packet_path_encapsulates_like_the_batch_path() {
    // The pipeline's path for an SA with one packet in the batch: same
    // length, sequence number, counters and (for suites whose IV is the
    // sequence number) the same bytes as a batch of one; the peer opens it.
    for (enc, auth) in all_suites() {
        for (outer_v6, udp) in [(false, false), (false, true), (true, true)] {
            let (o, i) = sa_pair(enc, auth, tunnel(outer_v6), udp, false, 64);
            let (a, b) = install(&o, &i);
            let (a2, _) = install(&o, &i);
            let what = format!("{enc:?}/{auth:?} outer_v6={outer_v6} udp={udp}");
            let inner = inner_v4(77);
            let batched = encap_one(a2.outbound(o.spi).unwrap(), &inner).unwrap();
            let sa = a.outbound(o.spi).unwrap();
            let mut frame = framed(&inner);
            let mut p = PacketBuf::new(&mut frame, HEADROOM, inner.len());
            encap_single(sa, &mut p);
            assert_eq!(p.verdict, Ok(()), "{what}");
            let single = p.data().to_vec();
            assert_eq!(single.len(), batched.len(), "{what}");
            let deterministic = matches!(enc, EncAlg::Null) || enc.is_aead();
            if deterministic {
                assert_eq!(single, batched, "{what}");
            }
            assert_eq!(SaCounters::read(&sa.counters().packets), 1, "{what}");
            let g = DropCounters::default();
            let (r, got) = decap_one(&b, &single, &g);
            assert!(r.is_ok(), "{what}: {r:?}");
            assert_eq!(got, inner, "{what}");
        }
    }
    // A packet already refused is left alone, and one without headroom is
    // refused and counted on the SA, as in a batch.
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, _) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    let inner = inner_v4(40);
    let mut frame = framed(&inner);
    let mut p = PacketBuf::new(&mut frame, HEADROOM, inner.len());
    p.verdict = Err(DropReason::TtlExceeded);
    encap_single(sa, &mut p);
    assert_eq!(p.verdict, Err(DropReason::TtlExceeded));
    assert_eq!(SaCounters::read(&sa.counters().packets), 0);
    let mut frame = vec![0u8; inner.len() + 200];
    frame[10..10 + inner.len()].copy_from_slice(&inner);
    let mut p = PacketBuf::new(&mut frame, 10, inner.len());
    encap_single(sa, &mut p);
    assert_eq!(p.verdict, Err(DropReason::NoRoom));
    assert_eq!(sa.counters().drops.get(DropReason::NoRoom), 1);
}

/// What happens to a packet of the batch tests before it is received.
#[derive(Debug, Clone, Copy)]
enum Fate {
    Fresh,
    /// One bit flipped anywhere (header, SPI, payload, ICV).
    Flipped(usize),
    /// A copy of an earlier packet of the list (index modulo), as received.
    Copy(usize),
    /// Not ESP at all: clear traffic beside the tunnel.
    Clear,
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        5 => Just(Fate::Fresh),
        2 => any::<usize>().prop_map(Fate::Flipped),
        2 => any::<usize>().prop_map(Fate::Copy),
        1 => Just(Fate::Clear),
    ]
}

/// Three tunnels into one SADB: the seeds' CBC+SHA1 over IPv4 with ESN,
/// GCM in UDP over IPv6 in transport mode, and CBC+SHA1 in UDP over IPv6
/// in tunnel mode, so a batch meets both suites' `open_batch`, the ESN
/// inference, the transport rebuild and the NAT-T port note.
fn three_tunnels() -> (Sadb, Vec<SaParams>) {
    let suites = [
        (
            EncAlg::AesCbc128,
            AuthAlg::HmacSha1_96,
            tunnel(false),
            false,
            true,
        ),
        (
            EncAlg::AesGcm128(GcmIcv::B16),
            AuthAlg::None,
            EspMode::Transport,
            true,
            false,
        ),
        (
            EncAlg::AesCbc128,
            AuthAlg::HmacSha1_96,
            tunnel(true),
            true,
            false,
        ),
    ];
    let mut a = Sadb::new();
    let mut ins = Vec::new();
    for (k, (enc, auth, mode, udp, esn)) in suites.into_iter().enumerate() {
        let (mut o, mut i) = sa_pair(enc, auth, mode, udp, esn, 64);
        o.spi = 0x100 + k as u32;
        i.spi = o.spi;
        a.install(&o, 0).unwrap();
        ins.push(i);
    }
    (a, ins)
}

fn inbound_db(ins: &[SaParams]) -> Sadb {
    let mut b = Sadb::new();
    for i in ins {
        b.install(i, 0).unwrap();
    }
    b
}

/// The outer packets of a list of (tunnel, size, fate), sealed in order.
fn received(a: &Sadb, ins: &[SaParams], list: &[(usize, usize, Fate)]) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for &(tunnel, size, fate) in list {
        let params = &ins[tunnel % ins.len()];
        let inner = if params.mode == EspMode::Transport {
            udp_v6(V6_A, V6_B, 1000, 2000, &vec![7u8; size])
        } else {
            inner_v4(size)
        };
        let mut p = match fate {
            Fate::Clear => inner,
            Fate::Copy(k) if !out.is_empty() => out[k % out.len()].clone(),
            _ => encap_one(a.outbound(params.spi).unwrap(), &inner).unwrap(),
        };
        if let Fate::Flipped(at) = fate {
            let at = at % (p.len() * 8);
            p[at / 8] ^= 1 << (at % 8);
        }
        out.push(p);
    }
    out
}

/// The outcomes the batch may give packet `k` where one at a time gives
/// `single`: the same, or, for a packet an earlier one of its chunk (the
/// 32 frames `decap_batch_where` checks together) makes stale, by the same
/// SPI and a sequence number as high or higher, the other of the two drop
/// reasons that `decap_batch_where` documents may swap.
fn batch_may_give(
    packets: &[Vec<u8>],
    k: usize,
    single: Result<Decapped, DropReason>,
) -> Vec<Result<Decapped, DropReason>> {
    let swap = [DropReason::Replay, DropReason::IntegrityFailed];
    let stale = esp_spi_seq(&packets[k]).is_some_and(|(spi, seq)| {
        packets[k - k % 32..k]
            .iter()
            .filter_map(|p| esp_spi_seq(p))
            .any(|(s, q)| s == spi && q >= seq)
    });
    match single {
        Err(r) if stale && swap.contains(&r) => swap.iter().map(|&r| Err(r)).collect(),
        other => vec![other],
    }
}

/// Decapsulates `packets` as one batch (`decap_batch`): each one's outcome
/// and its bytes after, as `decap_one` gives them for a single packet. A
/// refused frame carries its outcome as its verdict.
fn decap_together<P: AsRef<[u8]>>(
    db: &Sadb,
    packets: &[P],
    g: &DropCounters,
) -> Vec<(Result<Decapped, DropReason>, Vec<u8>)> {
    let mut frames: Vec<Vec<u8>> = packets.iter().map(|p| framed(p.as_ref())).collect();
    let mut pkts = packet_bufs(&mut frames, packets);
    let mut out = vec![Ok(Decapped::NotEsp); pkts.len()];
    decap_batch(db, &mut pkts, &mut out, g);
    pkts.iter()
        .zip(out)
        .map(|(p, r)| {
            assert_eq!(p.verdict, r.map(|_| ()), "the verdict is the outcome");
            (r, p.data().to_vec())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The batch path (per-SA `open_batch`, replay pre-check of the whole
    /// chunk before any window update) delivers what decapsulating one
    /// packet at a time delivers, the same bytes, and counts the same;
    /// only the reason of a stale packet's drop may differ, as documented.
    #[test]
    fn a_batch_decapsulates_like_packets_one_at_a_time(
        list in proptest::collection::vec((0usize..3, 0usize..1400, fate()), 0..80),
    ) {
        let (a, ins) = three_tunnels();
        let packets = received(&a, &ins, &list);
        let (alone, batched) = (inbound_db(&ins), inbound_db(&ins));
        let (g1, g2) = (DropCounters::default(), DropCounters::default());
        let one_by_one: Vec<_> = packets.iter().map(|p| decap_one(&alone, p, &g1)).collect();

        let together = decap_together(&batched, &packets, &g2);
        for (k, ((r, got), (want, want_inner))) in together.iter().zip(&one_by_one).enumerate() {
            prop_assert!(batch_may_give(&packets, k, *want).contains(r), "packet {} ({:?}): {:?}, alone {:?}", k, list[k], r, want);
            if let Ok(Decapped::Inner { .. }) = r {
                prop_assert_eq!(got, want_inner, "packet {}", k);
            }
        }
        for reason in DropReason::ALL {
            prop_assert_eq!(g1.get(reason), g2.get(reason), "{:?}", reason);
        }
        for i in &ins {
            let (s1, s2) = (alone.inbound(i.spi).unwrap(), batched.inbound(i.spi).unwrap());
            let (c1, c2) = (s1.counters(), s2.counters());
            let read = |c: &SaCounters| {
                [&c.packets, &c.bytes, &c.verified].map(SaCounters::read)
            };
            prop_assert_eq!(read(c1), read(c2));
            let swap = [DropReason::Replay, DropReason::IntegrityFailed];
            for reason in DropReason::ALL.into_iter().filter(|r| !swap.contains(r)) {
                prop_assert_eq!(c1.drops.get(reason), c2.drops.get(reason), "{:?}", reason);
            }
            prop_assert_eq!(c1.drops.total(), c2.drops.total());
            prop_assert_eq!(s1.peer_port_seen(), s2.peer_port_seen());
        }
    }
}

#[test]
fn on_an_esn_sa_a_late_packet_behind_a_newer_one_in_its_batch_is_a_replay() {
    // Window 64, top 1000. One at a time, 1100 moves the top, and 1010 is
    // then inferred to lie past the 2^32 wrap (RFC 4303 Appendix A), so its
    // ICV fails. In a batch both are inferred against top 1000: 1010 is
    // authenticated, then refused by the window update. Dropped either way.
    let (o, i) = sa_pair(
        EncAlg::AesCbc128,
        AuthAlg::HmacSha1_96,
        tunnel(false),
        false,
        true,
        64,
    );
    let (a, alone) = install(&o, &i);
    let (_, batched) = install(&o, &i);
    let sa = a.outbound(o.spi).unwrap();
    let sealed: Vec<Vec<u8>> = (1..=1100)
        .map(|_| encap_one(sa, &inner_v4(40)).unwrap())
        .collect();
    let g = DropCounters::default();
    for p in &sealed[..1000] {
        assert!(decap_one(&alone, p, &g).0.is_ok());
        assert!(decap_one(&batched, p, &g).0.is_ok());
    }
    let (newer, late) = (&sealed[1099], &sealed[1009]);
    assert!(decap_one(&alone, newer, &g).0.is_ok());
    assert_eq!(
        decap_one(&alone, late, &g).0,
        Err(DropReason::IntegrityFailed)
    );
    let out: Vec<_> = decap_together(&batched, &[newer, late], &g)
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(matches!(out[0], Ok(Decapped::Inner { .. })), "{:?}", out[0]);
    assert_eq!(out[1], Err(DropReason::Replay));
    let c = batched.inbound(i.spi).unwrap().counters();
    assert_eq!(SaCounters::read(&c.packets), 1001);
    assert_eq!(c.drops.get(DropReason::Replay), 1);
}

#[test]
fn a_forged_copy_in_the_same_batch_fails_its_icv_and_the_original_passes() {
    // One at a time, the copy would meet a window that already holds its
    // sequence number and fail the replay pre-check; in a batch the window
    // moves after the ICVs, so it fails its ICV instead. Dropped either way.
    let (a, ins) = three_tunnels();
    let good = encap_one(a.outbound(ins[0].spi).unwrap(), &inner_v4(300)).unwrap();
    let mut forged = good.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let b = inbound_db(&ins);
    let out: Vec<_> = decap_together(&b, &[good, forged], &DropCounters::default())
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(matches!(out[0], Ok(Decapped::Inner { .. })), "{:?}", out[0]);
    assert_eq!(out[1], Err(DropReason::IntegrityFailed));
    let c = b.inbound(ins[0].spi).unwrap().counters();
    assert_eq!(c.drops.get(DropReason::IntegrityFailed), 1);
    assert_eq!(SaCounters::read(&c.packets), 1);
}

#[test]
fn a_batch_leaves_frames_already_refused_alone() {
    let (a, ins) = three_tunnels();
    let good = encap_one(a.outbound(ins[0].spi).unwrap(), &inner_v4(64)).unwrap();
    let b = inbound_db(&ins);
    let mut frame = framed(&good);
    let mut pkts = [PacketBuf::new(&mut frame, HEADROOM, good.len())];
    pkts[0].verdict = Err(DropReason::TtlExceeded);
    let mut out = [Ok(Decapped::NotEsp)];
    decap_batch(&b, &mut pkts, &mut out, &DropCounters::default());
    assert_eq!(out[0], Err(DropReason::TtlExceeded));
    let c = b.inbound(ins[0].spi).unwrap().counters();
    assert_eq!(SaCounters::read(&c.packets), 0);
    assert_eq!(c.drops.total(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_the_decap_path(bytes in proptest::collection::vec(any::<u8>(), 0..300), v6 in any::<bool>()) {
        let (o, i) = aes_sha1(tunnel(v6), false);
        let (_, b) = install(&o, &i);
        let g = DropCounters::default();
        let _ = decap_one(&b, &bytes, &g);
    }

    #[test]
    fn any_corruption_of_a_valid_packet_is_dropped_and_counted(
        suite in 0usize..28,
        udp in any::<bool>(),
        v6 in any::<bool>(),
        size in 0usize..600,
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4),
        truncate in proptest::option::of(any::<usize>()),
    ) {
        let suites = all_suites();
        let (enc, auth) = suites[suite % suites.len()];
        let (o, i) = sa_pair(enc, auth, tunnel(v6), udp, false, 64);
        let (a, b) = install(&o, &i);
        let mut outer = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(size)).unwrap();
        // Corrupt only the protected part (SPI onwards); header damage is
        // a different path covered above.
        let esp_off = if v6 { 40 } else { 20 } + if udp { 8 } else { 0 };
        // One non-zero flip per position, so flips never cancel out.
        let mut touched = std::collections::BTreeSet::new();
        for (pos, x) in &flips {
            let at = esp_off + pos % (outer.len() - esp_off);
            if touched.insert(at) {
                outer[at] ^= x;
            }
        }
        if let Some(t) = truncate {
            let new_len = esp_off + t % (outer.len() - esp_off);
            outer.truncate(new_len);
            // Keep the IP length consistent so the ESP path sees the cut.
            if v6 {
                let pl = (new_len - 40) as u16;
                outer[4..6].copy_from_slice(&pl.to_be_bytes());
            } else {
                let mut ip = ipv4::Packet::new_unchecked(&mut outer[..]);
                ip.set_total_len(new_len as u16);
                ip.fill_checksum();
            }
            if udp {
                let ul = (new_len - esp_off + 8) as u16;
                let at = esp_off - 8 + 4;
                outer[at..at + 2].copy_from_slice(&ul.to_be_bytes());
            }
        }
        let g = DropCounters::default();
        let (r, _) = decap_one(&b, &outer, &g);
        prop_assert!(r.is_err() || matches!(r, Ok(Decapped::Ike)), "corrupted packet accepted: {r:?}");
        if let Err(reason) = r {
            let sa = b.inbound(i.spi).unwrap();
            let counted = g.get(reason) + sa.counters().drops.get(reason);
            prop_assert_eq!(counted, 1, "{:?} not counted", reason);
        }
    }
}

#[test]
fn outer_ipv4_header_with_a_bad_checksum_is_dropped_and_counted() {
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, b) = install(&o, &i);
    let mut outer = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(10)).unwrap();
    outer[8] ^= 0x01; // TTL changed without fixing the checksum
    let g = DropCounters::default();
    assert_eq!(decap_one(&b, &outer, &g).0, Err(DropReason::BadIpChecksum));
    assert_eq!(g.get(DropReason::BadIpChecksum), 1);
}

#[test]
fn fragmented_esp_is_counted_as_such() {
    let (o, i) = aes_sha1(tunnel(false), false);
    let (a, b) = install(&o, &i);
    let mut outer = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(10)).unwrap();
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut outer[..]);
        ip.set_more_frags(true);
        ip.fill_checksum();
    }
    let g = DropCounters::default();
    assert_eq!(decap_one(&b, &outer, &g).0, Err(DropReason::OuterFragment));
    assert_eq!(g.get(DropReason::OuterFragment), 1);
}

#[test]
fn esp_in_udp_whose_udp_length_is_not_the_ip_payloads_is_refused() {
    let (o, i) = aes_sha1(tunnel(false), true);
    let (a, b) = install(&o, &i);
    let outer = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(10)).unwrap();
    let g = DropCounters::default();
    let udp_len = u16::from_be_bytes([outer[24], outer[25]]);
    let mut short = outer.clone();
    short[24..26].copy_from_slice(&(udp_len - 16).to_be_bytes());
    assert_eq!(decap_one(&b, &short, &g).0, Err(DropReason::Malformed));
    assert!(decap_one(&b, &outer, &g).0.is_ok(), "the packet as sent");
}

#[test]
fn encapsulated_len_is_exact_and_max_inner_len_fits_the_mtu() {
    for (enc, auth) in all_suites() {
        let (o, i) = sa_pair(enc, auth, tunnel(false), true, false, 64);
        let (a, _) = install(&o, &i);
        let sa = a.outbound(o.spi).unwrap();
        for n in [0usize, 1, 17, 100, 1372] {
            let inner = inner_v4(n);
            let outer = encap_one(sa, &inner).unwrap();
            assert_eq!(
                encapsulated_len(sa, inner.len()),
                outer.len(),
                "{enc:?}/{auth:?} {n}"
            );
        }
        for mtu in [1280usize, 1400, 1500] {
            let max = max_inner_len(sa, mtu);
            assert!(encapsulated_len(sa, max) <= mtu, "{enc:?} {mtu}");
            let align = sa.suite().block_align();
            assert!(
                encapsulated_len(sa, max + align) > mtu,
                "{enc:?} {mtu}: not the largest"
            );
        }
    }
}

#[test]
fn esp_in_udp_over_ipv6_needs_a_right_nonzero_udp_checksum() {
    let (o, i) = aes_sha1(tunnel(true), true);
    let (a, b) = install(&o, &i);
    let (sa, isa) = (a.outbound(o.spi).unwrap(), b.inbound(i.spi).unwrap());
    let g = DropCounters::default();
    // Outer IPv6 (40 bytes), then UDP: source port at 40, checksum at 46.
    let damaged = |damage: &dyn Fn(&mut Vec<u8>)| {
        let mut p = encap_one(sa, &inner_v4(100)).unwrap();
        damage(&mut p);
        p
    };
    let zero = damaged(&|p| p[46..48].copy_from_slice(&[0, 0]));
    let port_changed = damaged(&|p| p[40..42].copy_from_slice(&40_061u16.to_be_bytes()));
    let bit_flipped = damaged(&|p| {
        let last = p.len() - 1;
        p[last] ^= 0x10;
    });
    for p in [&zero, &port_changed, &bit_flipped] {
        assert_eq!(decap_one(&b, p, &g).0, Err(DropReason::BadUdpChecksum));
    }
    assert_eq!(g.get(DropReason::BadUdpChecksum), 3);
    assert_eq!(
        SaCounters::read(&isa.counters().verified),
        0,
        "refused before the ICV"
    );
    assert_eq!(isa.peer_port_seen(), 0, "no port taken from them");
    // As sent, it passes and its port counts.
    let good = encap_one(sa, &inner_v4(100)).unwrap();
    assert!(matches!(
        decap_one(&b, &good, &g).0,
        Ok(Decapped::Inner { .. })
    ));
    assert_eq!(isa.peer_port_seen(), 4500);
    // Over IPv4 a zero UDP checksum stays allowed (RFC 3948 §2.1).
    let (o, i) = aes_sha1(tunnel(false), true);
    let (a, b) = install(&o, &i);
    let v4 = encap_one(a.outbound(o.spi).unwrap(), &inner_v4(100)).unwrap();
    assert_eq!(&v4[26..28], &[0, 0]);
    assert!(matches!(
        decap_one(&b, &v4, &g).0,
        Ok(Decapped::Inner { .. })
    ));
}

/// `inner` (IPv4 or IPv6, DSCP AF41) with ECN codepoint `ecn_bits`.
fn with_ecn(mut inner: Vec<u8>, ecn_bits: u8) -> Vec<u8> {
    let tos = 0x88 | ecn_bits;
    if inner[0] >> 4 == 4 {
        let mut ip = ipv4::Packet::new_unchecked(&mut inner[..]);
        ip.set_dscp_ecn(tos);
        ip.fill_checksum();
    } else {
        crate::wire::ipv6::Packet::new_unchecked(&mut inner[..]).set_traffic_class(tos);
    }
    inner
}

/// The DSCP/ECN byte (IPv4) or Traffic Class (IPv6) of `packet`.
fn tos_of(packet: &[u8]) -> u8 {
    if packet[0] >> 4 == 4 {
        ipv4::Packet::new_unchecked(packet).dscp_ecn()
    } else {
        crate::wire::ipv6::Packet::new_unchecked(packet).traffic_class()
    }
}

#[test]
fn outer_congestion_marks_reach_the_inner_packet_as_rfc_6040_figure_4_says() {
    use crate::wire::ecn::{CE, ECT0, ECT1, NOT_ECT};
    // RFC 6040 §4.2, Figure 4: the arriving inner codepoint, then what
    // leaves for each arriving outer one (Not-ECT, ECT(0), ECT(1), CE);
    // `None`: dropped.
    let outers = [NOT_ECT, ECT0, ECT1, CE];
    let figure_4 = [
        (NOT_ECT, [Some(NOT_ECT), Some(NOT_ECT), Some(NOT_ECT), None]),
        (ECT0, [Some(ECT0), Some(ECT0), Some(ECT1), Some(CE)]),
        (ECT1, [Some(ECT1), Some(ECT1), Some(ECT1), Some(CE)]),
        (CE, [Some(CE), Some(CE), Some(CE), Some(CE)]),
    ];
    for outer_v6 in [false, true] {
        let (o, i) = aes_sha1(tunnel(outer_v6), false);
        let (a, b) = install(&o, &i);
        let (sa, isa) = (a.outbound(o.spi).unwrap(), b.inbound(i.spi).unwrap());
        let mut dropped = 0;
        for inner_v6_packet in [false, true] {
            for (inner_ecn, row) in figure_4 {
                for (outer_ecn, expected) in outers.into_iter().zip(row) {
                    let base = if inner_v6_packet {
                        inner_v6(60)
                    } else {
                        inner_v4(60)
                    };
                    let inner = with_ecn(base, inner_ecn);
                    let mut outer = encap_one(sa, &inner).unwrap();
                    // Marked on the path (the ICV does not cover the
                    // outer header).
                    let tos = (tos_of(&outer) & !0b11) | outer_ecn;
                    if outer_v6 {
                        crate::wire::ipv6::Packet::new_unchecked(&mut outer[..])
                            .set_traffic_class(tos);
                    } else {
                        let mut ip = ipv4::Packet::new_unchecked(&mut outer[..]);
                        ip.set_dscp_ecn(tos);
                        ip.fill_checksum();
                    }
                    let what = format!(
                        "outer_v6={outer_v6} inner_v6={inner_v6_packet} \
                         inner={inner_ecn:02b} outer={outer_ecn:02b}"
                    );
                    let (r, got) = decap_one(&b, &outer, &DropCounters::default());
                    let Some(leaves) = expected else {
                        assert_eq!(r, Err(DropReason::EcnCeNotEct), "{what}");
                        dropped += 1;
                        continue;
                    };
                    assert!(matches!(r, Ok(Decapped::Inner { .. })), "{what}: {r:?}");
                    assert_eq!(tos_of(&got), 0x88 | leaves, "{what}: DSCP kept");
                    if !inner_v6_packet {
                        let ip = ipv4::Packet::new_checked(&got[..]).unwrap();
                        assert!(ip.verify_checksum(), "{what}");
                    }
                    let hl = if inner_v6_packet { 40 } else { 20 };
                    assert_eq!(&got[hl..], &inner[hl..], "{what}: payload unchanged");
                }
            }
        }
        assert_eq!(dropped, 2, "one per inner family");
        assert_eq!(isa.counters().drops.get(DropReason::EcnCeNotEct), 2);
    }
}
