//! Seed 003's router in memory: inside LAN 198.19.2.0/24 (the seed's
//! 10.2.1.0/24), the VPN peer's LAN 198.19.1.0/24 (10.1.1.0/24), outside
//! address 198.18.1.1 on interface 2 (192.168.1.2 on Ethernet0/0), and
//! ACL 100: deny inside → VPN LAN (exempt), permit inside → any (PAT).
//! Every translated packet's checksums are recomputed from scratch with
//! `wire` and compared with the incrementally patched ones.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};

use proptest::prelude::*;

use super::*;
use crate::api::{NatAction, NatRule};
use crate::spd::{PortRange, TrafficSelector};
use crate::wire::{checksum, icmpv4, ip_proto, ipv4, ipv6, udp};

const IN_IF: u32 = 1;
const OUT_IF: u32 = 2;
const OTHER_OUT_IF: u32 = 3;
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 10);
const HOST2: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 11);
const VPN_HOST: Ipv4Addr = Ipv4Addr::new(198, 19, 1, 5);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 99, 7);
const ROUTER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 254);
const RANGE: std::ops::RangeInclusive<u16> = 20_000..=20_999;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

fn selector(src: &str, dst: &str) -> TrafficSelector {
    TrafficSelector {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

fn pat(outside_ifindex: u32, outside: Ipv4Addr) -> NatAction {
    NatAction::Pat {
        outside_ifindex,
        outside_addr: IpAddr::V4(outside),
    }
}

/// `access-list 100 deny ip 10.2.1.0 0.0.0.255 10.1.1.0 0.0.0.255`,
/// `access-list 100 permit ip 10.2.1.0 0.0.0.255 any`.
fn seed_rules() -> NatRules {
    NatRules::compile(&[
        NatRule {
            selector: selector("198.19.2.0/24", "198.19.1.0/24"),
            action: NatAction::Exempt,
        },
        NatRule {
            selector: selector("198.19.2.0/24", "0.0.0.0/0"),
            action: pat(OUT_IF, OUTSIDE),
        },
    ])
    .unwrap()
}

fn table() -> NatTable {
    NatTable::new(64, RANGE).unwrap()
}

fn sa(addr: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(addr, port)
}

// ---- packet builders -------------------------------------------------

fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, body: &[u8]) -> Vec<u8> {
    let repr = ipv4::Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: body.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 0x4242,
        dont_frag: true,
    };
    let mut bytes = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut bytes[..]));
    bytes[ipv4::HEADER_LEN..].copy_from_slice(body);
    bytes
}

fn udp_packet(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8], with_sum: bool) -> Vec<u8> {
    let repr = udp::Repr {
        src_port: src.port(),
        dst_port: dst.port(),
        payload_len: payload.len(),
    };
    let mut body = vec![0u8; repr.buffer_len()];
    repr.emit(&mut udp::Packet::new_unchecked(&mut body[..]));
    body[udp::HEADER_LEN..].copy_from_slice(payload);
    if with_sum {
        udp::Packet::new_unchecked(&mut body[..]).fill_checksum_v4(src.ip(), dst.ip());
    }
    ip_packet(*src.ip(), *dst.ip(), ip_proto::UDP, &body)
}

fn tcp_sum(src: &Ipv4Addr, dst: &Ipv4Addr, segment: &[u8]) -> u16 {
    checksum::combine(&[
        checksum::pseudo_header_v4(src, dst, ip_proto::TCP, segment.len() as u32),
        checksum::data(segment),
    ])
}

fn tcp_packet(src: SocketAddrV4, dst: SocketAddrV4, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&src.port().to_be_bytes());
    seg[2..4].copy_from_slice(&dst.port().to_be_bytes());
    seg[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&64240u16.to_be_bytes());
    seg.extend_from_slice(payload);
    let sum = !tcp_sum(src.ip(), dst.ip(), &seg);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
    ip_packet(*src.ip(), *dst.ip(), ip_proto::TCP, &seg)
}

fn echo_packet(src: Ipv4Addr, dst: Ipv4Addr, request: bool, ident: u16, data: &[u8]) -> Vec<u8> {
    let repr = if request {
        icmpv4::Repr::EchoRequest {
            ident,
            seq_no: 1,
            data,
        }
    } else {
        icmpv4::Repr::EchoReply {
            ident,
            seq_no: 1,
            data,
        }
    };
    let mut body = vec![0u8; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut body[..]));
    ip_packet(src, dst, ip_proto::ICMP, &body)
}

/// An ICMP error from `from` to `to` quoting `invoking` (whole or cut).
fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, msg_type: u8, code: u8, invoking: &[u8]) -> Vec<u8> {
    let repr = match msg_type {
        icmpv4::message::TIME_EXCEEDED => icmpv4::Repr::TimeExceeded {
            code,
            data: invoking,
        },
        _ => icmpv4::Repr::DstUnreachable {
            code,
            next_hop_mtu: 0,
            data: invoking,
        },
    };
    let mut body = vec![0u8; repr.buffer_len()];
    repr.emit(&mut icmpv4::Packet::new_unchecked(&mut body[..]));
    ip_packet(from, to, ip_proto::ICMP, &body)
}

/// The reply a remote end would send to `packet` (addresses and ports
/// swapped; echo requests answered).
fn reply_to(packet: &[u8], flags: u8) -> Vec<u8> {
    let t = tuple(packet);
    match t.proto {
        ip_proto::UDP => udp_packet(sa(t.dst, t.dport), sa(t.src, t.sport), b"answer", true),
        ip_proto::TCP => tcp_packet(sa(t.dst, t.dport), sa(t.src, t.sport), flags, b""),
        _ => echo_packet(t.dst, t.src, false, t.sport, b"pong"),
    }
}

// ---- packet readers --------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tuple {
    proto: u8,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
}

/// Addresses and ports; for an echo the identifier is the requester's
/// port. Reads quotes too (cut short, Total Length larger than the bytes).
fn tuple(p: &[u8]) -> Tuple {
    let ip = ipv4::Packet::new_checked_header(p).unwrap();
    let l4 = ip.payload();
    let word = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    let (sport, dport) = match (ip.protocol(), l4[0]) {
        (ip_proto::TCP | ip_proto::UDP, _) => (word(0), word(2)),
        (ip_proto::ICMP, icmpv4::message::ECHO_REQUEST) => (word(4), 0),
        (ip_proto::ICMP, icmpv4::message::ECHO_REPLY) => (0, word(4)),
        _ => (0, 0),
    };
    Tuple {
        proto: ip.protocol(),
        src: ip.src_addr(),
        sport,
        dst: ip.dst_addr(),
        dport,
    }
}

/// The packet an ICMP error quotes.
fn quoted(p: &[u8]) -> &[u8] {
    let ip = ipv4::Packet::new_checked(p).unwrap();
    let start = ip.header_len() + icmpv4::HEADER_LEN;
    &p[start..usize::from(ip.total_len())]
}

/// Recomputes every checksum of `p` from scratch with `wire` and asserts
/// the packet already held exactly those values (UDP zero stays zero).
/// For an ICMP error, the quoted IP header is checked too, and so is the
/// quoted transport checksum when the quote is the whole packet.
fn assert_checksums_as_recomputed(p: &[u8]) {
    let mut fresh = p.to_vec();
    let mut ip = ipv4::Packet::new_checked(&mut fresh[..]).unwrap();
    ip.fill_checksum();
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let hl = ip.header_len();
    let end = usize::from(ip.total_len());
    recompute_l4(&mut fresh[hl..end], &src, &dst, proto);
    if proto == ip_proto::ICMP && is_error(fresh[hl]) {
        let q = hl + icmpv4::HEADER_LEN;
        let mut inner = ipv4::Packet::new_checked_header(&mut fresh[q..end]).unwrap();
        inner.fill_checksum();
        let (isrc, idst, iproto) = (inner.src_addr(), inner.dst_addr(), inner.protocol());
        let (ihl, itotal) = (inner.header_len(), usize::from(inner.total_len()));
        if q + itotal == end {
            recompute_l4(&mut fresh[q + ihl..end], &isrc, &idst, iproto);
        }
        icmpv4::Packet::new_unchecked(&mut fresh[hl..end]).fill_checksum();
    }
    assert_eq!(
        hex::encode(p),
        hex::encode(&fresh),
        "checksums differ from a recompute"
    );
}

fn is_error(msg_type: u8) -> bool {
    matches!(
        msg_type,
        icmpv4::message::DST_UNREACHABLE
            | icmpv4::message::TIME_EXCEEDED
            | icmpv4::message::PARAM_PROBLEM
    )
}

fn recompute_l4(seg: &mut [u8], src: &Ipv4Addr, dst: &Ipv4Addr, proto: u8) {
    match proto {
        ip_proto::UDP => {
            let mut u = udp::Packet::new_checked(&mut seg[..]).unwrap();
            if u.checksum() != 0 {
                u.fill_checksum_v4(src, dst);
            }
        }
        ip_proto::TCP => {
            seg[16..18].fill(0);
            let sum = !tcp_sum(src, dst, seg);
            seg[16..18].copy_from_slice(&sum.to_be_bytes());
        }
        ip_proto::ICMP => icmpv4::Packet::new_unchecked(&mut seg[..]).fill_checksum(),
        _ => {}
    }
}

fn out(t: &mut NatTable, p: &mut [u8], now: u64) -> NatVerdict {
    t.translate_outbound(&seed_rules(), p, OUT_IF, now)
}

fn back(t: &mut NatTable, p: &mut [u8], now: u64) -> NatVerdict {
    t.translate_inbound(&seed_rules(), p, OUT_IF, now)
}

fn stats(t: &NatTable) -> NatStats {
    t.counters().snapshot()
}

// ---- one flow per protocol -------------------------------------------

#[test]
fn udp_leaves_with_the_outside_address_and_its_reply_returns_to_the_inside_host() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 5353), sa(SERVER, 53), b"query", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    let x = tuple(&p);
    assert_eq!((x.src, x.dst, x.dport), (OUTSIDE, SERVER, 53));
    assert!(RANGE.contains(&x.sport));
    assert_checksums_as_recomputed(&p);

    let mut r = reply_to(&p, 0);
    assert_eq!(back(&mut t, &mut r, 1), NatVerdict::Translated);
    let y = tuple(&r);
    assert_eq!((y.src, y.sport, y.dst, y.dport), (SERVER, 53, HOST, 5353));
    assert_checksums_as_recomputed(&r);

    // The second packet of the flow reuses the translation.
    let mut p2 = udp_packet(sa(HOST, 5353), sa(SERVER, 53), b"again", true);
    assert_eq!(out(&mut t, &mut p2, 2), NatVerdict::Translated);
    assert_eq!(tuple(&p2).sport, x.sport);
    let s = stats(&t);
    assert_eq!(
        (
            s.translations_created,
            s.active_translations,
            s.hits_outbound,
            s.hits_inbound
        ),
        (1, 1, 2, 1)
    );
    assert_eq!(s.hits(), 3);
}

#[test]
fn tcp_handshake_is_translated_both_ways_and_then_gets_the_established_timeout() {
    let mut t = table();
    let (host, server) = (sa(HOST, 40_000), sa(SERVER, 443));
    let mut syn = tcp_packet(host, server, TCP_SYN, b"");
    assert_eq!(out(&mut t, &mut syn, 10), NatVerdict::Translated);
    assert_checksums_as_recomputed(&syn);
    let outside_port = tuple(&syn).sport;
    let expires = |t: &NatTable| t.translations().next().unwrap().expires_at;
    assert_eq!(expires(&t), 10 + 240);

    let mut syn_ack = reply_to(&syn, TCP_SYN | TCP_ACK);
    assert_eq!(back(&mut t, &mut syn_ack, 11), NatVerdict::Translated);
    assert_checksums_as_recomputed(&syn_ack);
    assert_eq!(tuple(&syn_ack).dst, HOST);
    assert_eq!(tuple(&syn_ack).dport, 40_000);
    assert_eq!(expires(&t), 11 + 240);

    let mut ack = tcp_packet(host, server, TCP_ACK, b"GET / HTTP/1.1\r\n");
    assert_eq!(out(&mut t, &mut ack, 12), NatVerdict::Translated);
    assert_checksums_as_recomputed(&ack);
    assert_eq!(tuple(&ack).sport, outside_port);
    assert_eq!(expires(&t), 12 + 86_400);

    let mut fin = tcp_packet(host, server, TCP_FIN | TCP_ACK, b"");
    assert_eq!(out(&mut t, &mut fin, 13), NatVerdict::Translated);
    assert_eq!(expires(&t), 13 + 240);
}

#[test]
fn icmp_echo_identifier_is_translated_like_a_port_and_the_reply_returns() {
    let mut t = table();
    let mut ping = echo_packet(HOST, SERVER, true, 0x0777, b"abcdefgh");
    assert_eq!(out(&mut t, &mut ping, 0), NatVerdict::Translated);
    let x = tuple(&ping);
    assert_eq!((x.src, x.dst), (OUTSIDE, SERVER));
    assert!(RANGE.contains(&x.sport), "identifier {} in range", x.sport);
    assert_checksums_as_recomputed(&ping);
    assert_eq!(t.translations().next().unwrap().expires_at, 60);

    let mut pong = reply_to(&ping, 0);
    assert_eq!(back(&mut t, &mut pong, 1), NatVerdict::Translated);
    assert_checksums_as_recomputed(&pong);
    let y = tuple(&pong);
    assert_eq!((y.src, y.dst, y.dport), (SERVER, HOST, 0x0777));
}

#[test]
fn an_all_zero_echo_reply_gets_the_checksum_that_verifies() {
    // Found by the nat_translate fuzz target: ident 0, seq 0, no data. The
    // reply back to the host sums to +0, where RFC 1624 eqn. 3 gives -0
    // (0x0000); only 0xffff verifies.
    let mut t = table();
    let mut ping = echo_packet(HOST, SERVER, true, 0, b"");
    ping[26..28].fill(0); // seq 0
    icmpv4::Packet::new_unchecked(&mut ping[20..]).fill_checksum();
    assert_eq!(out(&mut t, &mut ping, 0), NatVerdict::Translated);
    let mut pong = echo_packet(SERVER, OUTSIDE, false, tuple(&ping).sport, b"");
    pong[26..28].fill(0);
    icmpv4::Packet::new_unchecked(&mut pong[20..]).fill_checksum();
    assert_eq!(back(&mut t, &mut pong, 1), NatVerdict::Translated);
    assert_eq!(&pong[20..], &[0, 0, 0xff, 0xff, 0, 0, 0, 0]);
    assert_checksums_as_recomputed(&pong);
}

#[test]
fn udp_without_a_checksum_keeps_a_zero_checksum_both_ways() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 1000), sa(SERVER, 69), b"tftp", false);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    assert_eq!(&p[26..28], &[0, 0]);
    assert!(ipv4::Packet::new_checked(&p[..]).unwrap().verify_checksum());
    let mut r = udp_packet(sa(SERVER, 69), sa(OUTSIDE, tuple(&p).sport), b"data", false);
    assert_eq!(back(&mut t, &mut r, 0), NatVerdict::Translated);
    assert_eq!(&r[26..28], &[0, 0]);
    assert_checksums_as_recomputed(&r);
}

#[test]
fn inside_port_is_kept_when_it_is_free_and_in_range() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 20_500), sa(SERVER, 53), b"q", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    assert_eq!(tuple(&p).sport, 20_500);
    // Another host with the same port to the same server needs another one.
    let mut q = udp_packet(sa(HOST2, 20_500), sa(SERVER, 53), b"q", true);
    assert_eq!(out(&mut t, &mut q, 0), NatVerdict::Translated);
    assert_ne!(tuple(&q).sport, 20_500);
    // ... but to another server the same outside port is free again.
    let mut r = udp_packet(sa(HOST2, 20_500), sa(ROUTER, 53), b"q", true);
    assert_eq!(out(&mut t, &mut r, 0), NatVerdict::Translated);
    assert_eq!(tuple(&r).sport, 20_500);
}

// ---- rules -----------------------------------------------------------

#[test]
fn vpn_traffic_named_by_an_exemption_rule_is_not_translated() {
    let mut t = table();
    let original = udp_packet(
        sa(HOST, 5000),
        sa(VPN_HOST, 5001),
        b"to the peer's LAN",
        true,
    );
    let mut p = original.clone();
    assert_eq!(
        out(&mut t, &mut p, 0),
        NatVerdict::Untranslated(Untranslated::Exempt)
    );
    assert_eq!(p, original);
    assert_eq!(stats(&t).exempted, 1);
    assert_eq!(t.active(), 0);
}

#[test]
fn traffic_no_rule_matches_is_not_translated() {
    let mut t = table();
    // From a network ACL 100 does not name.
    let original = udp_packet(
        sa(Ipv4Addr::new(198, 19, 7, 1), 5000),
        sa(SERVER, 53),
        b"",
        true,
    );
    let mut p = original.clone();
    assert_eq!(
        out(&mut t, &mut p, 0),
        NatVerdict::Untranslated(Untranslated::NoRule)
    );
    assert_eq!(p, original);
    assert_eq!(stats(&t).no_rule, 1);
    // An empty rule list translates nothing either.
    let none = NatRules::compile(&[]).unwrap();
    assert!(none.is_empty());
    let mut p = udp_packet(sa(HOST, 5000), sa(SERVER, 53), b"", true);
    assert_eq!(
        t.translate_outbound(&none, &mut p, OUT_IF, 0),
        NatVerdict::Untranslated(Untranslated::NoRule)
    );
}

#[test]
fn first_matching_rule_wins_and_a_pat_rule_only_applies_on_its_own_interface() {
    let rules = NatRules::compile(&[
        NatRule {
            selector: selector("198.19.2.0/24", "0.0.0.0/0"),
            action: pat(OTHER_OUT_IF, Ipv4Addr::new(198, 18, 50, 1)),
        },
        NatRule {
            selector: selector("198.19.2.10/32", "0.0.0.0/0"),
            action: NatAction::Exempt,
        },
        NatRule {
            selector: selector("198.19.2.0/24", "0.0.0.0/0"),
            action: pat(OUT_IF, OUTSIDE),
        },
    ])
    .unwrap();
    let mut t = table();
    let flow = crate::pipeline::flow_key(&udp_packet(sa(HOST2, 1), sa(SERVER, 2), b"", true));
    assert_eq!(
        rules.lookup(&flow.unwrap(), OUT_IF),
        Some(pat(OUT_IF, OUTSIDE))
    );
    // Out of interface 2, host .10 hits the exemption before the PAT rule.
    let mut p = udp_packet(sa(HOST, 5000), sa(SERVER, 53), b"", true);
    assert_eq!(
        t.translate_outbound(&rules, &mut p, OUT_IF, 0),
        NatVerdict::Untranslated(Untranslated::Exempt)
    );
    // Out of interface 3 the first rule applies, with its own address.
    assert_eq!(
        t.translate_outbound(&rules, &mut p, OTHER_OUT_IF, 0),
        NatVerdict::Translated
    );
    assert_eq!(tuple(&p).src, Ipv4Addr::new(198, 18, 50, 1));
    // Out of an interface no PAT rule names, nothing matches.
    let mut q = udp_packet(sa(HOST2, 5000), sa(SERVER, 53), b"", true);
    assert_eq!(
        t.translate_outbound(&rules, &mut q, 9, 0),
        NatVerdict::Untranslated(Untranslated::NoRule)
    );
}

#[test]
fn rules_with_ports_and_protocols_match_like_acl_lines() {
    let mut dns_only = selector("198.19.2.0/24", "0.0.0.0/0");
    dns_only.proto = Some(ip_proto::UDP);
    dns_only.dst_ports = PortRange::single(53);
    let rules = NatRules::compile(&[NatRule {
        selector: dns_only,
        action: pat(OUT_IF, OUTSIDE),
    }])
    .unwrap();
    let mut t = table();
    let mut dns = udp_packet(sa(HOST, 5000), sa(SERVER, 53), b"", true);
    let mut ntp = udp_packet(sa(HOST, 5000), sa(SERVER, 123), b"", true);
    let mut ping = echo_packet(HOST, SERVER, true, 1, b"");
    assert_eq!(
        t.translate_outbound(&rules, &mut dns, OUT_IF, 0),
        NatVerdict::Translated
    );
    for p in [&mut ntp, &mut ping] {
        assert_eq!(
            t.translate_outbound(&rules, p, OUT_IF, 0),
            NatVerdict::Untranslated(Untranslated::NoRule)
        );
    }
}

#[test]
fn ipv6_is_never_translated_and_ipv6_pat_rules_are_refused() {
    let mut t = table();
    let original = crate::testkit::inner_v6(10);
    let mut p = original.clone();
    assert_eq!(
        out(&mut t, &mut p, 0),
        NatVerdict::Untranslated(Untranslated::NotIpv4)
    );
    assert_eq!(
        back(&mut t, &mut p, 0),
        NatVerdict::Untranslated(Untranslated::NotIpv4)
    );
    assert_eq!(p, original);
    assert_eq!(ipv6::Packet::new_checked(&p[..]).unwrap().hop_limit(), 63);

    let v6_pat = NatRule {
        selector: selector("fd00:2::/64", "::/0"),
        action: NatAction::Pat {
            outside_ifindex: OUT_IF,
            outside_addr: "fd00::1".parse().unwrap(),
        },
    };
    assert_eq!(
        NatRules::compile(&[v6_pat]).unwrap_err(),
        NatRuleError::Ipv6Pat { index: 0 }
    );
    let v6_exempt = NatRule {
        selector: selector("fd00:2::/64", "fd00:1::/64"),
        action: NatAction::Exempt,
    };
    assert!(NatRules::compile(&[v6_exempt]).unwrap().is_empty());
}

// ---- time ------------------------------------------------------------

#[test]
fn udp_translation_expires_after_300_s_and_its_port_goes_to_the_next_flow() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 20_100), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut p, 1000), NatVerdict::Translated);
    assert_eq!(tuple(&p).sport, 20_100);
    // Alive at 1299: the reply comes back.
    let mut r = reply_to(&p, 0);
    assert_eq!(back(&mut t, &mut r, 1299), NatVerdict::Translated);
    // The reply refreshed it: gone at 1599, not before.
    let mut late = reply_to(&p, 0);
    assert_eq!(
        back(&mut t, &mut late, 1599),
        NatVerdict::Drop(NatDrop::NoMapping)
    );
    assert_eq!(stats(&t).expired_translations, 1);
    assert_eq!(t.active(), 0);
    // Another host now gets the port the first one had.
    let mut q = udp_packet(sa(HOST2, 20_100), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut q, 1600), NatVerdict::Translated);
    assert_eq!(tuple(&q).sport, 20_100);
}

#[test]
fn an_expired_holder_of_a_port_is_reclaimed_when_a_new_flow_wants_it() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 20_100), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    let mut q = udp_packet(sa(HOST2, 20_100), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut q, 300), NatVerdict::Translated);
    assert_eq!(tuple(&q).sport, 20_100);
    assert_eq!(t.active(), 1);
    assert_eq!(stats(&t).expired_translations, 1);
}

#[test]
fn configured_timeouts_replace_the_defaults() {
    let timeouts = NatTimeouts {
        udp: 30,
        tcp_established: 3600,
        tcp_transitory: 20,
        icmp: 2,
    };
    let mut t = table().with_timeouts(timeouts);
    assert_eq!(t.timeouts(), timeouts);
    let mut ping = echo_packet(HOST, SERVER, true, 9, b"");
    assert_eq!(out(&mut t, &mut ping, 100), NatVerdict::Translated);
    let mut udp = udp_packet(sa(HOST, 9), sa(SERVER, 9), b"", true);
    assert_eq!(out(&mut t, &mut udp, 100), NatVerdict::Translated);
    let mut expiries: Vec<u64> = t.translations().map(|x| x.expires_at).collect();
    expiries.sort();
    assert_eq!(expiries, [102, 130]);
}

#[test]
fn sweep_reclaims_expired_entries_within_its_budget() {
    let mut t = NatTable::new(8, RANGE).unwrap();
    for i in 0..8 {
        let mut p = udp_packet(sa(HOST, 1000 + i), sa(SERVER, 53), b"", true);
        assert_eq!(out(&mut t, &mut p, u64::from(i)), NatVerdict::Translated);
    }
    assert_eq!(t.active(), 8);
    // At 304 the entries made at 0..=4 have expired.
    assert_eq!(t.sweep(304, 3), 3);
    assert_eq!(t.sweep(304, 3), 2);
    assert_eq!(t.sweep(304, 100), 0);
    assert_eq!(t.active(), 3);
    assert_eq!(stats(&t).expired_translations, 5);
    assert_eq!(stats(&t).active_translations, 3);
}

// ---- limits ----------------------------------------------------------

#[test]
fn a_full_table_drops_new_flows_and_counts_them_until_an_entry_expires() {
    let mut t = NatTable::new(4, RANGE).unwrap();
    for i in 0..4 {
        let mut p = udp_packet(sa(HOST, 1000 + i), sa(SERVER, 53), b"", true);
        assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    }
    let mut extra = udp_packet(sa(HOST, 2000), sa(SERVER, 53), b"", true);
    let original = extra.clone();
    assert_eq!(
        out(&mut t, &mut extra, 10),
        NatVerdict::Drop(NatDrop::TableFull)
    );
    assert_eq!(extra, original, "a dropped packet is not modified");
    assert_eq!(stats(&t).dropped(NatDrop::TableFull), 1);
    // Existing flows still pass.
    let mut old = udp_packet(sa(HOST, 1000), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut old, 10), NatVerdict::Translated);
    // Once the others expire, the table makes room by itself.
    assert_eq!(out(&mut t, &mut extra, 300), NatVerdict::Translated);
}

#[test]
fn exhausted_ports_drop_new_flows_to_the_same_remote_end_only() {
    let mut t = NatTable::new(64, 30_000..=30_003).unwrap();
    for i in 0..4 {
        let mut p = tcp_packet(sa(HOST, 1000 + i), sa(SERVER, 443), TCP_SYN, b"");
        assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    }
    let mut fifth = tcp_packet(sa(HOST, 2000), sa(SERVER, 443), TCP_SYN, b"");
    assert_eq!(
        out(&mut t, &mut fifth, 0),
        NatVerdict::Drop(NatDrop::NoPortsLeft)
    );
    assert_eq!(stats(&t).dropped(NatDrop::NoPortsLeft), 1);
    // Ports are per remote end: another server (or port) still has all four.
    let mut elsewhere = tcp_packet(sa(HOST, 2000), sa(SERVER, 80), TCP_SYN, b"");
    assert_eq!(out(&mut t, &mut elsewhere, 0), NatVerdict::Translated);
    // And UDP has its own port space.
    let mut dns = udp_packet(sa(HOST, 2000), sa(SERVER, 443), b"", true);
    assert_eq!(out(&mut t, &mut dns, 0), NatVerdict::Translated);
}

// ---- inbound that is not return traffic -------------------------------

#[test]
fn inbound_tcp_or_udp_without_a_translation_is_dropped_and_counted() {
    let mut t = table();
    let mut probe = tcp_packet(sa(SERVER, 4444), sa(OUTSIDE, 20_001), TCP_SYN, b"");
    assert_eq!(
        back(&mut t, &mut probe, 0),
        NatVerdict::Drop(NatDrop::NoMapping)
    );
    // A translation to one server does not open the port to another.
    let mut p = udp_packet(sa(HOST, 20_002), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    let mut spoof = udp_packet(sa(ROUTER, 53), sa(OUTSIDE, 20_002), b"", true);
    assert_eq!(
        back(&mut t, &mut spoof, 0),
        NatVerdict::Drop(NatDrop::NoMapping)
    );
    assert_eq!(stats(&t).dropped(NatDrop::NoMapping), 2);
}

#[test]
fn inbound_for_other_addresses_ports_or_interfaces_is_left_alone() {
    let mut t = table();
    let cases = [
        // Transit traffic, not for a PAT address.
        (
            udp_packet(sa(SERVER, 53), sa(HOST, 20_001), b"", true),
            OUT_IF,
            Untranslated::NotOurs,
        ),
        // IKE to the gateway itself.
        (
            udp_packet(sa(SERVER, 500), sa(OUTSIDE, 500), b"", true),
            OUT_IF,
            Untranslated::OutOfRange { port: 500 },
        ),
        // Another worker's port.
        (
            udp_packet(sa(SERVER, 53), sa(OUTSIDE, 40_000), b"", true),
            OUT_IF,
            Untranslated::OutOfRange { port: 40_000 },
        ),
        // The PAT address, but on an interface it is not PAT's on.
        (
            udp_packet(sa(SERVER, 53), sa(OUTSIDE, 20_001), b"", true),
            IN_IF,
            Untranslated::NotOurs,
        ),
        // Someone pinging the gateway.
        (
            echo_packet(SERVER, OUTSIDE, true, 20_001, b""),
            OUT_IF,
            Untranslated::NotOurs,
        ),
        // The reply to the gateway's own ping.
        (
            echo_packet(SERVER, OUTSIDE, false, 20_001, b""),
            OUT_IF,
            Untranslated::NotOurs,
        ),
        // ESP: the pipeline's decap handles it, NAT never maps it.
        (
            ip_packet(SERVER, OUTSIDE, ip_proto::ESP, &[0; 16]),
            OUT_IF,
            Untranslated::NotOurs,
        ),
    ];
    for (packet, ifindex, why) in cases {
        let mut p = packet.clone();
        assert_eq!(
            t.translate_inbound(&seed_rules(), &mut p, ifindex, 0),
            NatVerdict::Untranslated(why)
        );
        assert_eq!(p, packet);
    }
    assert_eq!(stats(&t).total_drops(), 0);
}

// ---- ICMP errors -------------------------------------------------------

#[test]
fn port_unreachable_from_the_remote_is_translated_back_to_the_inside_host() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 5353), sa(SERVER, 53), b"query", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    let mut err = icmp_error(SERVER, OUTSIDE, icmpv4::message::DST_UNREACHABLE, 3, &p);
    assert_eq!(back(&mut t, &mut err, 1), NatVerdict::Translated);
    assert_checksums_as_recomputed(&err);
    assert_eq!(tuple(&err).dst, HOST);
    let q = tuple(quoted(&err));
    assert_eq!((q.src, q.sport, q.dst, q.dport), (HOST, 5353, SERVER, 53));
    // The quote is now exactly what the host sent.
    assert_eq!(
        quoted(&err),
        &udp_packet(sa(HOST, 5353), sa(SERVER, 53), b"query", true)[..]
    );
    assert_eq!(stats(&t).hits_inbound, 1);
}

#[test]
fn time_exceeded_from_a_router_about_tcp_is_translated_whether_the_quote_is_long_or_short() {
    let mut t = table();
    let mut syn = tcp_packet(sa(HOST, 40_000), sa(SERVER, 443), TCP_SYN, b"");
    assert_eq!(out(&mut t, &mut syn, 0), NatVerdict::Translated);
    // RFC 792 quotes: the header and 8 bytes, without the TCP checksum;
    // RFC 1812 routers quote more, checksum included.
    for quote_len in [28, syn.len()] {
        let mut err = icmp_error(
            ROUTER,
            OUTSIDE,
            icmpv4::message::TIME_EXCEEDED,
            0,
            &syn[..quote_len],
        );
        assert_eq!(
            back(&mut t, &mut err, 1),
            NatVerdict::Translated,
            "quote {quote_len}"
        );
        assert_checksums_as_recomputed(&err);
        assert_eq!(tuple(&err).src, ROUTER);
        assert_eq!(tuple(&err).dst, HOST);
        let q = tuple(quoted(&err));
        assert_eq!(
            (q.src, q.sport, q.dst, q.dport),
            (HOST, 40_000, SERVER, 443)
        );
    }
}

#[test]
fn an_error_about_a_ping_gets_the_inside_identifier_back() {
    let mut t = table();
    let mut ping = echo_packet(HOST, SERVER, true, 0x0777, b"abcdefgh");
    assert_eq!(out(&mut t, &mut ping, 0), NatVerdict::Translated);
    let mut err = icmp_error(ROUTER, OUTSIDE, icmpv4::message::DST_UNREACHABLE, 1, &ping);
    assert_eq!(back(&mut t, &mut err, 1), NatVerdict::Translated);
    assert_checksums_as_recomputed(&err);
    assert_eq!(
        quoted(&err),
        &echo_packet(HOST, SERVER, true, 0x0777, b"abcdefgh")[..]
    );
}

#[test]
fn an_inside_hosts_error_about_returned_traffic_leaves_in_the_outside_view() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 5353), sa(SERVER, 53), b"query", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    let outside_port = tuple(&p).sport;
    let mut r = reply_to(&p, 0);
    assert_eq!(back(&mut t, &mut r, 1), NatVerdict::Translated);
    // The host has closed its socket: port unreachable about the reply.
    let mut err = icmp_error(HOST, SERVER, icmpv4::message::DST_UNREACHABLE, 3, &r);
    assert_eq!(out(&mut t, &mut err, 2), NatVerdict::Translated);
    assert_checksums_as_recomputed(&err);
    assert_eq!(tuple(&err).src, OUTSIDE);
    let q = tuple(quoted(&err));
    assert_eq!(
        (q.src, q.sport, q.dst, q.dport),
        (SERVER, 53, OUTSIDE, outside_port)
    );
    // Without a translation behind it, such an error cannot leave.
    let stray = udp_packet(sa(SERVER, 53), sa(HOST2, 9999), b"", true);
    let mut err = icmp_error(HOST2, SERVER, icmpv4::message::DST_UNREACHABLE, 3, &stray);
    assert_eq!(
        out(&mut t, &mut err, 2),
        NatVerdict::Drop(NatDrop::NoMapping)
    );
}

#[test]
fn errors_about_flows_nat_does_not_know_go_to_the_kernel() {
    let mut t = table();
    // About a packet the gateway itself sent (in range, no translation).
    let own = udp_packet(sa(OUTSIDE, 20_005), sa(SERVER, 53), b"", true);
    let mut err = icmp_error(SERVER, OUTSIDE, icmpv4::message::DST_UNREACHABLE, 3, &own);
    assert_eq!(
        back(&mut t, &mut err, 0),
        NatVerdict::Untranslated(Untranslated::NotOurs)
    );
    // About IKE.
    let ike = udp_packet(sa(OUTSIDE, 500), sa(SERVER, 500), b"", true);
    let mut err = icmp_error(SERVER, OUTSIDE, icmpv4::message::DST_UNREACHABLE, 3, &ike);
    assert_eq!(
        back(&mut t, &mut err, 0),
        NatVerdict::Untranslated(Untranslated::OutOfRange { port: 500 })
    );
    // Quoting a packet from somebody else.
    let other = udp_packet(sa(ROUTER, 20_005), sa(SERVER, 53), b"", true);
    let mut err = icmp_error(SERVER, OUTSIDE, icmpv4::message::DST_UNREACHABLE, 3, &other);
    assert_eq!(
        back(&mut t, &mut err, 0),
        NatVerdict::Untranslated(Untranslated::NotOurs)
    );
}

// ---- everything else ----------------------------------------------------

#[test]
fn a_changed_outside_address_gives_the_flow_a_new_translation() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 5000), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    // DHCP gave the outside interface a new address; control recompiled.
    let renewed = Ipv4Addr::new(198, 18, 1, 77);
    let rules = NatRules::compile(&[NatRule {
        selector: selector("198.19.2.0/24", "0.0.0.0/0"),
        action: pat(OUT_IF, renewed),
    }])
    .unwrap();
    let mut p = udp_packet(sa(HOST, 5000), sa(SERVER, 53), b"", true);
    assert_eq!(
        t.translate_outbound(&rules, &mut p, OUT_IF, 1),
        NatVerdict::Translated
    );
    assert_eq!(tuple(&p).src, renewed);
    assert_eq!(t.active(), 1);
    assert_eq!(t.translations().next().unwrap().outside.ip(), &renewed);
}

#[test]
fn fragments_that_need_translation_are_dropped_and_counted() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 5000), sa(SERVER, 53), &[7; 64], true);
    let mut ip = ipv4::Packet::new_checked(&mut p[..]).unwrap();
    ip.set_dont_frag(false);
    ip.set_more_frags(true);
    ip.fill_checksum();
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Drop(NatDrop::Fragment));
    // Exempt fragments pass: exemption does not need the ports.
    let mut v = udp_packet(sa(HOST, 5000), sa(VPN_HOST, 53), &[7; 64], true);
    let mut ip = ipv4::Packet::new_checked(&mut v[..]).unwrap();
    ip.set_frag_offset(1480);
    ip.fill_checksum();
    assert_eq!(
        out(&mut t, &mut v, 0),
        NatVerdict::Untranslated(Untranslated::Exempt)
    );
    assert_eq!(stats(&t).dropped(NatDrop::Fragment), 1);
}

#[test]
fn protocols_without_ports_are_untranslatable_under_a_pat_rule() {
    let mut t = table();
    let mut gre = ip_packet(HOST, SERVER, 47, &[0; 8]);
    assert_eq!(
        out(&mut t, &mut gre, 0),
        NatVerdict::Drop(NatDrop::UntranslatableProtocol)
    );
    // An echo reply from the inside answers nobody NAT knows.
    let mut pong = echo_packet(HOST, SERVER, false, 1, b"");
    assert_eq!(
        out(&mut t, &mut pong, 0),
        NatVerdict::Drop(NatDrop::UntranslatableProtocol)
    );
    assert_eq!(stats(&t).dropped(NatDrop::UntranslatableProtocol), 2);
}

#[test]
fn truncated_transport_headers_are_malformed() {
    let mut t = table();
    // A TCP header cut to 12 bytes (Total Length agrees).
    let tcp = tcp_packet(sa(HOST, 5000), sa(SERVER, 80), TCP_SYN, b"");
    let mut short = ip_packet(HOST, SERVER, ip_proto::TCP, &tcp[20..32]);
    assert_eq!(
        out(&mut t, &mut short, 0),
        NatVerdict::Drop(NatDrop::Malformed)
    );
    let mut short_in = ip_packet(SERVER, OUTSIDE, ip_proto::UDP, &[0x00, 0x35, 0x4e, 0x21]);
    assert_eq!(
        back(&mut t, &mut short_in, 0),
        NatVerdict::Drop(NatDrop::Malformed)
    );
    // Not IP at all.
    assert_eq!(
        out(&mut t, &mut [], 0),
        NatVerdict::Drop(NatDrop::Malformed)
    );
    assert_eq!(
        out(&mut t, &mut [0x45, 0, 0], 0),
        NatVerdict::Drop(NatDrop::Malformed)
    );
    assert_eq!(stats(&t).dropped(NatDrop::Malformed), 4);
}

#[test]
fn link_padding_after_the_packet_is_neither_read_nor_changed() {
    let mut t = table();
    let mut p = udp_packet(sa(HOST, 5000), sa(SERVER, 53), b"", true);
    let len = p.len();
    p.extend_from_slice(&[0xee; 18]);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    assert_checksums_as_recomputed(&p[..len]);
    assert_eq!(&p[len..], &[0xee; 18]);
}

#[test]
fn clear_removes_every_translation() {
    let mut t = table();
    for i in 0..5 {
        let mut p = udp_packet(sa(HOST, 1000 + i), sa(SERVER, 53), b"", true);
        assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    }
    let mut p = udp_packet(sa(HOST, 1000), sa(SERVER, 53), b"", true);
    assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    let mut r = reply_to(&p, 0);
    t.clear();
    assert_eq!(t.active(), 0);
    assert_eq!(t.translations().count(), 0);
    assert_eq!(
        back(&mut t, &mut r, 0),
        NatVerdict::Drop(NatDrop::NoMapping)
    );
    // And the table is whole again: all 64 entries can be used.
    for i in 0..64 {
        let mut p = udp_packet(sa(HOST, 3000 + i), sa(SERVER, 53), b"", true);
        assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
    }
}

#[test]
fn counters_have_distinct_names_and_snapshots_add_up_across_workers() {
    let mut names: Vec<_> = NatDrop::ALL.iter().map(|d| d.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), NatDrop::COUNT);
    for (i, d) in NatDrop::ALL.iter().enumerate() {
        assert_eq!(*d as usize, i);
    }
    let plan = PortPlan::new(20_000..=20_999, 2).unwrap();
    let mut workers: Vec<NatTable> = (0..2)
        .map(|w| NatTable::new(16, plan.range_of(w).unwrap()).unwrap())
        .collect();
    for (w, t) in workers.iter_mut().enumerate() {
        let mut p = udp_packet(sa(HOST, 1000 + w as u16), sa(SERVER, 53), b"", true);
        assert_eq!(out(t, &mut p, 0), NatVerdict::Translated);
        assert_eq!(plan.owner_of(tuple(&p).sport), Some(w));
    }
    let mut total = NatStats::default();
    for t in &workers {
        total.merge(&stats(t));
    }
    assert_eq!(total.active_translations, 2);
    assert_eq!(total.hits_outbound, 2);
}

// ---- properties ----------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tcp(u8),
    Udp { with_sum: bool },
    Echo,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        any::<u8>().prop_map(|flags| Kind::Tcp(flags & !0x07)),
        any::<bool>().prop_map(|with_sum| Kind::Udp { with_sum }),
        Just(Kind::Echo),
    ]
}

fn build(kind: Kind, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    match kind {
        Kind::Tcp(flags) => tcp_packet(src, dst, flags, payload),
        Kind::Udp { with_sum } => udp_packet(src, dst, payload, with_sum),
        Kind::Echo => echo_packet(*src.ip(), *dst.ip(), true, src.port(), payload),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic_either_way(
        bytes in proptest::collection::vec(any::<u8>(), 0..120),
        v4 in any::<bool>(),
        fix_len in any::<bool>(),
        proto in prop_oneof![Just(1u8), Just(6u8), Just(17u8), any::<u8>()],
        towards_us in any::<bool>(),
    ) {
        let mut t = NatTable::new(4, RANGE).unwrap();
        // Some state to hit: a translation or two.
        let mut seed = udp_packet(sa(HOST, 20_000), sa(SERVER, 53), b"", true);
        out(&mut t, &mut seed, 0);
        let mut bytes = bytes;
        if v4 && bytes.len() >= 20 {
            bytes[0] = 0x45;
            bytes[9] = proto;
            if fix_len {
                let len = bytes.len() as u16;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
                bytes[6] &= 0x40;
                bytes[7] = 0;
            }
            if towards_us {
                bytes[16..20].copy_from_slice(&OUTSIDE.octets());
            } else {
                bytes[12..16].copy_from_slice(&HOST.octets());
            }
        }
        let mut a = bytes.clone();
        let _ = out(&mut t, &mut a, 1);
        let mut b = bytes.clone();
        let _ = back(&mut t, &mut b, 1);
        prop_assert_eq!(a.len(), bytes.len());
        let _ = t.sweep(1000, 10);
    }

    #[test]
    fn out_then_back_restores_the_original_tuple_with_valid_checksums(
        kind in kind(),
        host in 1u8..=254,
        sport in any::<u16>(),
        remote in any::<u32>().prop_filter("not the VPN LAN", |r| Ipv4Addr::from(*r).octets()[..3] != [198, 19, 1]),
        dport in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut t = table();
        let inside = sa(Ipv4Addr::new(198, 19, 2, host), sport);
        let remote = sa(Ipv4Addr::from(remote), if matches!(kind, Kind::Echo) { 0 } else { dport });
        let original = build(kind, inside, remote, &payload);
        let before = tuple(&original);

        let mut p = original.clone();
        prop_assert_eq!(out(&mut t, &mut p, 0), NatVerdict::Translated);
        assert_checksums_as_recomputed(&p);
        let x = tuple(&p);
        prop_assert_eq!((x.src, x.dst, x.dport), (OUTSIDE, before.dst, before.dport));
        prop_assert!(RANGE.contains(&x.sport));

        let mut r = reply_to(&p, TCP_ACK);
        prop_assert_eq!(back(&mut t, &mut r, 1), NatVerdict::Translated);
        assert_checksums_as_recomputed(&r);
        let y = tuple(&r);
        prop_assert_eq!((y.src, y.sport, y.dst, y.dport),
                        (before.dst, before.dport, before.src, before.sport));

        // An ICMP error about the translated packet finds the host too, and
        // its quote becomes, byte for byte, the packet the host sent.
        let mut err = icmp_error(ROUTER, OUTSIDE, icmpv4::message::TIME_EXCEEDED, 0, &p);
        prop_assert_eq!(back(&mut t, &mut err, 2), NatVerdict::Translated);
        assert_checksums_as_recomputed(&err);
        prop_assert_eq!(quoted(&err), &original[..]);
    }
}
