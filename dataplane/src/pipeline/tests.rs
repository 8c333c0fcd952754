//! Two gateways in memory: frames from a host behind gateway A leave A as
//! ESP toward the WAN router, arrive at B and leave B toward the host
//! behind it; plus every way a frame can be refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;
use crate::api::{Direction, EspMode, Lifetime, SaParams};
use crate::counters::SaCounters;
use crate::crypto::{AuthAlg, EncAlg};
use crate::esp::{encapsulated_len, inbound_sa_of};
use crate::route::{Interface, Route};
use crate::spd::{IpPrefix, PolicyTag, PortRange, SpdRule, TrafficSelector};
use crate::testkit::{framed, inner_v4, inner_v6, keys, packet_bufs, FRAME, HEADROOM};
use crate::wire::ethernet::EthernetAddress;

const LAN_IF: u32 = 1;
const WAN_IF: u32 = 2;
const TAG: PolicyTag = PolicyTag { map: 1, seq: 10 };

fn mac(b: u8) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, b])
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Gateway `A` (side 1) or `B` (side 2) of the lab: LAN 198.19.S.0/24 and
/// fd00:S::/64 on if 1, WAN 198.18.(S-1).1 on if 2 via router .254.
fn gateway(side: u8, out_spi: u32, in_spi: u32) -> Tables {
    gateway_with(side, out_spi, in_spi, None)
}

/// [`gateway`] with its pair UDP-encapsulated (NAT-T) or not.
fn gateway_with(
    side: u8,
    out_spi: u32,
    in_spi: u32,
    udp_encap: Option<crate::api::UdpEncap>,
) -> Tables {
    let other = 3 - side;
    let wan_me: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, side - 1, 1));
    let wan_peer: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, other - 1, 1));
    let router: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, side - 1, 254));
    let mut t = Tables::default();
    t.fib.add_interface(Interface {
        ifindex: LAN_IF,
        mac: mac(side * 16 + 1),
        mtu: 1500,
        role: PortRole::Inside,
    });
    t.fib.add_interface(Interface {
        ifindex: WAN_IF,
        mac: mac(side * 16 + 2),
        mtu: 1500,
        role: PortRole::Outside,
    });
    let lan4: IpPrefix = format!("198.19.{side}.0/24").parse().unwrap();
    let lan6: IpPrefix = format!("fd00:{side}::/64").parse().unwrap();
    t.fib.add_route(Route {
        prefix: lan4,
        ifindex: LAN_IF,
        gateway: None,
    });
    t.fib.add_route(Route {
        prefix: lan6,
        ifindex: LAN_IF,
        gateway: None,
    });
    t.fib.add_route(Route {
        prefix: IpPrefix::new(router, 24).unwrap(),
        ifindex: WAN_IF,
        gateway: None,
    });
    t.fib.add_route(Route {
        prefix: IpPrefix::any_v4(),
        ifindex: WAN_IF,
        gateway: Some(router),
    });
    t.fib.set_neighbour(WAN_IF, router, mac(0xfe));
    t.fib.set_neighbour(
        LAN_IF,
        IpAddr::V4(Ipv4Addr::new(198, 19, side, 10)),
        mac(side * 16 + 10),
    );
    t.fib.set_neighbour(
        LAN_IF,
        format!("fd00:{side}::10").parse().unwrap(),
        mac(side * 16 + 10),
    );
    let lan_me = IpAddr::V4(Ipv4Addr::new(198, 19, side, 1));
    t.local = vec![wan_me, lan_me];
    t.iface_addrs = vec![
        (LAN_IF, lan_me),
        (LAN_IF, format!("fd00:{side}::1").parse().unwrap()),
        (WAN_IF, wan_me),
    ];
    let remote4: IpPrefix = format!("198.19.{other}.0/24").parse().unwrap();
    let remote6: IpPrefix = format!("fd00:{other}::/64").parse().unwrap();
    let protect = PolicyAction::Protect {
        sa: Some(out_spi),
        map: TAG,
    };
    let any = |src, dst| TrafficSelector {
        src,
        dst,
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    t.spd = Spd::new(vec![
        // An IOS-style deny (bypass) for one host before the permit.
        SpdRule {
            selector: any(lan4, format!("198.19.{other}.99/32").parse().unwrap()),
            action: PolicyAction::Bypass,
        },
        SpdRule {
            selector: any(lan4, remote4),
            action: protect,
        },
        SpdRule {
            selector: any(lan6, remote6),
            action: protect,
        },
    ]);
    let (enc, auth) = (EncAlg::AesCbc128, AuthAlg::HmacSha1_96);
    let sa = |spi, direction, local, remote| SaParams {
        spi,
        direction,
        enc,
        auth,
        keys: keys(enc, auth),
        mode: EspMode::Tunnel { local, remote },
        udp_encap,
        esn: false,
        replay_window: 64,
        lifetime: Lifetime::default(),
        selectors: vec![any(lan4, remote4), any(lan6, remote6)],
    };
    t.sadb
        .install(&sa(out_spi, Direction::Outbound, wan_me, wan_peer), 0)
        .unwrap();
    t.sadb
        .install(&sa(in_spi, Direction::Inbound, wan_me, wan_peer), 0)
        .unwrap();
    t
}

fn eth_frame(
    dst: EthernetAddress,
    src: EthernetAddress,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0u8; ethernet::HEADER_LEN];
    p[0..6].copy_from_slice(&dst.0);
    p[6..12].copy_from_slice(&src.0);
    p[12..14].copy_from_slice(&ethertype.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// A frame from the host behind side `side` to `dst` (rewrites the inner
/// packet's destination).
fn host_frame(side: u8, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let mut p = inner_v4(40);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(Ipv4Addr::new(198, 19, side, 10));
        ip.set_dst_addr(dst);
        ip.set_ttl(ttl);
        ip.fill_checksum();
    }
    eth_frame(
        mac(side * 16 + 1),
        mac(side * 16 + 10),
        ethernet::ethertype::IPV4,
        &p,
    )
}

/// Runs one frame through a gateway; returns the action and the frame out.
fn run(t: &mut Tables, ifindex: u32, frame: &[u8], c: &PipelineCounters) -> (Action, Vec<u8>) {
    let mut buf = framed(frame);
    let mut frames = [PacketBuf::new(&mut buf, HEADROOM, frame.len())];
    let mut actions = [Action::ToKernel];
    process_batch(t, ifindex, &mut frames, &mut actions, c);
    (actions[0], frames[0].data().to_vec())
}

#[test]
fn a_frame_crosses_both_gateways_as_esp_and_arrives_with_its_ttl_decremented() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let sent = host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64);
    let (act, wire) = run(&mut a, LAN_IF, &sent, &ca);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let eth = ethernet::Frame::new_checked(&wire[..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (mac(0xfe), mac(0x12)));
    let outer = ipv4::Packet::new_checked(&wire[14..]).unwrap();
    assert_eq!(outer.protocol(), ip_proto::ESP);
    assert_eq!(
        (outer.src_addr(), outer.dst_addr()),
        (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 1))
    );

    // The WAN router forwards it to B's outside interface.
    let at_b = eth_frame(mac(0x22), mac(0xfe), ethernet::ethertype::IPV4, &wire[14..]);
    let (act, delivered) = run(&mut b, WAN_IF, &at_b, &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    let eth = ethernet::Frame::new_checked(&delivered[..]).unwrap();
    assert_eq!((eth.dst_addr(), eth.src_addr()), (mac(0x2a), mac(0x21)));
    let got = ipv4::Packet::new_checked(&delivered[14..]).unwrap();
    assert_eq!(got.ttl(), 62, "each gateway decrements the inner TTL once");
    assert!(got.verify_checksum());
    assert_eq!(&delivered[14 + 20..], &sent[14 + 20..], "payload unchanged");
    assert_eq!(ca.encapsulated.load(Ordering::Relaxed), 1);
    assert_eq!(cb.decapsulated.load(Ordering::Relaxed), 1);
    assert_eq!(ca.drops.total() + cb.drops.total(), 0);
}

#[test]
fn a_batch_of_one_tunnels_esp_is_delivered_in_order_with_replays_and_forgeries_refused() {
    // B receives 40 packets of one SA in one batch, with a replayed copy,
    // a forged copy of a later one, and a frame for the kernel among them:
    // the path that opens an SA's packets in one batched call (16 hash
    // lanes for HMAC-SHA1) still gives every one its own verdict.
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let sent: Vec<Vec<u8>> = (0..40)
        .map(|i| host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64 + i))
        .collect();
    let esp: Vec<Vec<u8>> = run_like_worker(&mut a, LAN_IF, &sent, &ca)
        .into_iter()
        .map(|(act, wire)| {
            assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
            at_b_outside(&wire[14..])
        })
        .collect();
    let mut forged = esp[30].clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x80;
    let to_kernel = at_b_outside(&crate::testkit::udp_v4(
        Ipv4Addr::new(198, 18, 0, 1),
        Ipv4Addr::new(198, 18, 1, 1),
        500,
        500,
        &crate::testkit::isakmp_v1(40),
    ));
    let mut received = esp.clone();
    received.insert(10, esp[3].clone());
    received.insert(20, forged);
    received.insert(25, to_kernel);
    let out = run_like_worker(&mut b, WAN_IF, &received, &cb);
    assert_eq!(out[10].0, Action::Drop(DropReason::Replay));
    assert_eq!(out[20].0, Action::Drop(DropReason::IntegrityFailed));
    assert_eq!(out[25].0, Action::ToKernel);
    let delivered: Vec<&Vec<u8>> = out
        .iter()
        .enumerate()
        .filter(|(k, _)| ![10, 20, 25].contains(k))
        .map(|(_, (act, frame))| {
            assert_eq!(*act, Action::Transmit { ifindex: LAN_IF });
            frame
        })
        .collect();
    assert_eq!(delivered.len(), 40);
    for (got, sent) in delivered.iter().zip(&sent) {
        assert_eq!(&got[14 + 20..], &sent[14 + 20..], "payload unchanged");
        assert_eq!(got[14 + 8], sent[14 + 8] - 2, "in order (by TTL)");
    }
    assert_eq!(cb.decapsulated.load(Ordering::Relaxed), 40);
    let sa = b.sadb.inbound(0x1000).unwrap();
    assert_eq!(sa.counters().drops.get(DropReason::Replay), 1);
    assert_eq!(sa.counters().drops.get(DropReason::IntegrityFailed), 1);
}

#[test]
fn ipv6_inner_traffic_is_protected_by_its_own_rule() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let c = PipelineCounters::default();
    let mut p = inner_v6(30);
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr("fd00:1::10".parse().unwrap());
        ip.set_dst_addr("fd00:2::10".parse().unwrap());
    }
    let sent = eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV6, &p);
    let (act, wire) = run(&mut a, LAN_IF, &sent, &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let at_b = eth_frame(mac(0x22), mac(0xfe), ethernet::ethertype::IPV4, &wire[14..]);
    let (act, delivered) = run(&mut b, WAN_IF, &at_b, &c);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(
        ipv6::Packet::new_checked(&delivered[14..])
            .unwrap()
            .hop_limit(),
        61
    );
    assert_eq!(&delivered[14 + 40..], &p[40..]);
}

#[test]
fn ethernet_padding_is_neither_encrypted_nor_delivered() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    // A 30-byte IP packet (44-byte frame) as a NIC hands it over: padded
    // to Ethernet's 60-byte minimum. With its ESP trailer it fills two
    // AES blocks; with the pad it would take three.
    let mut p = inner_v4(2);
    assert_eq!(p.len(), 30);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(Ipv4Addr::new(198, 19, 1, 10));
        ip.set_dst_addr(Ipv4Addr::new(198, 19, 2, 10));
        ip.fill_checksum();
    }
    let exact = eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV4, &p);
    let mut padded = exact.clone();
    padded.resize(60, 0xee);
    let (act, wire_exact) = run(&mut gateway(1, 0x1000, 0x2000), LAN_IF, &exact, &ca);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let (act, wire) = run(&mut a, LAN_IF, &padded, &ca);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    assert_eq!(wire.len(), wire_exact.len(), "the pad is not encrypted");
    let at_b = eth_frame(mac(0x22), mac(0xfe), ethernet::ethertype::IPV4, &wire[14..]);
    let mut at_b_padded = at_b.clone();
    at_b_padded.extend_from_slice(&[0xee; 6]);
    let (act, delivered) = run(&mut b, WAN_IF, &at_b_padded, &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(delivered.len(), exact.len(), "nor delivered");
    assert_eq!(&delivered[14 + 20..], &exact[14 + 20..]);
    assert_eq!(ca.drops.total() + cb.drops.total(), 0);
}

#[test]
fn a_later_fragment_of_a_port_specific_protected_flow_is_encrypted_too() {
    let mut a = gateway(1, 0x1000, 0x2000);
    // permit udp 198.19.1.0/24 198.19.2.0/24 eq 5000 alone.
    a.spd = Spd::new(vec![SpdRule {
        selector: TrafficSelector {
            src: "198.19.1.0/24".parse().unwrap(),
            dst: "198.19.2.0/24".parse().unwrap(),
            proto: Some(ip_proto::UDP),
            src_ports: PortRange::ANY,
            dst_ports: PortRange::single(5000),
        },
        action: PolicyAction::Protect {
            sa: Some(0x1000),
            map: TAG,
        },
    }]);
    let c = PipelineCounters::default();
    let fragment = |offset: u16, dport: u16| {
        let mut p = inner_v4(64);
        {
            let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
            ip.set_src_addr(Ipv4Addr::new(198, 19, 1, 10));
            ip.set_dst_addr(Ipv4Addr::new(198, 19, 2, 10));
            ip.set_more_frags(offset == 0);
            ip.set_frag_offset(offset);
            ip.fill_checksum();
        }
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV4, &p)
    };
    let proto_out = |frame: &[u8]| ipv4::Packet::new_checked(&frame[14..]).unwrap().protocol();
    let (act, first) = run(&mut a, LAN_IF, &fragment(0, 5000), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    assert_eq!(proto_out(&first), ip_proto::ESP);
    // A later fragment carries no ports (its first bytes are data, here
    // 0x1388 = 5000 or not): the rule's addresses and protocol decide.
    for data in [5000, 80] {
        let (act, later) = run(&mut a, LAN_IF, &fragment(1480, data), &c);
        assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
        assert_eq!(proto_out(&later), ip_proto::ESP, "not in the clear");
    }
    assert_eq!(c.encapsulated.load(Ordering::Relaxed), 3);
    assert_eq!(c.bypassed.load(Ordering::Relaxed), 0);
    // A first fragment to another port is no business of the rule.
    let (_, other) = run(&mut a, LAN_IF, &fragment(0, 80), &c);
    assert_eq!(proto_out(&other), ip_proto::UDP);
}

#[test]
fn decrypted_traffic_outside_the_pairs_selectors_is_dropped_and_counted() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    // B (the peer) sends whatever it likes through the pair: its SPD
    // protects everything with the SA A decrypts.
    b.spd = Spd::new(vec![SpdRule {
        selector: TrafficSelector {
            src: IpPrefix::any_v4(),
            dst: IpPrefix::any_v4(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect {
            sa: Some(0x2000),
            map: TAG,
        },
    }]);
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let through = |b: &mut Tables, a: &mut Tables, p: &[u8]| {
        let frame = eth_frame(mac(0x21), mac(0x2a), ethernet::ethertype::IPV4, p);
        let (act, wire) = run(b, LAN_IF, &frame, &cb);
        assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
        let at_a = eth_frame(mac(0x12), mac(0xfe), ethernet::ethertype::IPV4, &wire[14..]);
        run(a, WAN_IF, &at_a, &ca).0
    };
    let (b_host, a_host) = (Ipv4Addr::new(198, 19, 2, 10), Ipv4Addr::new(198, 19, 1, 10));
    let elsewhere = Ipv4Addr::new(198, 19, 3, 5);
    assert_eq!(
        through(&mut b, &mut a, &udp_v4(b_host, a_host)),
        Action::Transmit { ifindex: LAN_IF }
    );
    // To a network that is not behind A (out of A's outside port in the
    // clear, were it delivered), and from an address not behind B.
    for (src, dst) in [(b_host, elsewhere), (elsewhere, a_host)] {
        assert_eq!(
            through(&mut b, &mut a, &udp_v4(src, dst)),
            Action::Drop(DropReason::InvalidIdentity),
            "{src} -> {dst}"
        );
    }
    // An ICMP error from a router behind B that is outside the selectors
    // is judged by the packet it quotes (RFC 4301 §6.2): about A's
    // traffic through the pair, delivered; about other traffic, not.
    let router = Ipv4Addr::new(198, 19, 9, 1);
    assert_eq!(
        through(
            &mut b,
            &mut a,
            &time_exceeded(router, a_host, &udp_v4(a_host, b_host))
        ),
        Action::Transmit { ifindex: LAN_IF }
    );
    assert_eq!(
        through(
            &mut b,
            &mut a,
            &time_exceeded(router, a_host, &udp_v4(a_host, elsewhere))
        ),
        Action::Drop(DropReason::InvalidIdentity)
    );
    // Nor may an error quoting our traffic go anywhere but to its sender.
    assert_eq!(
        through(
            &mut b,
            &mut a,
            &time_exceeded(router, elsewhere, &udp_v4(a_host, b_host))
        ),
        Action::Drop(DropReason::InvalidIdentity)
    );
    let sa = a.sadb.inbound(0x2000).unwrap();
    assert_eq!(sa.counters().drops.get(DropReason::InvalidIdentity), 4);
    assert_eq!(ca.decapsulated.load(Ordering::Relaxed), 2);
}

/// A 48-byte UDP packet from `src` to `dst`.
fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = inner_v4(20);
    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
    ip.set_src_addr(src);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    p
}

/// ICMP time exceeded from `src` to `dst` quoting the first 28 bytes of
/// `about`.
fn time_exceeded(src: Ipv4Addr, dst: Ipv4Addr, about: &[u8]) -> Vec<u8> {
    let mut p = udp_v4(src, dst);
    p.truncate(20);
    p.extend_from_slice(&[11, 0, 0, 0, 0, 0, 0, 0]);
    p.extend_from_slice(&about[..28]);
    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
    ip.set_protocol(ip_proto::ICMP);
    ip.set_total_len(56);
    ip.fill_checksum();
    p
}

#[test]
fn arp_and_traffic_to_the_gateway_go_to_the_kernel_untouched() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let arp = eth_frame(EthernetAddress([0xff; 6]), mac(0x1a), 0x0806, &[0u8; 28]);
    assert_eq!(
        run(&mut a, LAN_IF, &arp, &c),
        (Action::ToKernel, arp.clone())
    );
    let to_gw = host_frame(1, Ipv4Addr::new(198, 19, 1, 1), 64);
    assert_eq!(
        run(&mut a, LAN_IF, &to_gw, &c),
        (Action::ToKernel, to_gw.clone())
    );
    assert_eq!(c.to_kernel.load(Ordering::Relaxed), 2);
}

#[test]
fn a_deny_line_before_the_permit_forwards_that_host_in_the_clear() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let (act, out) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 2, 99), 64),
        &c,
    );
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    assert_eq!(
        ipv4::Packet::new_checked(&out[14..]).unwrap().protocol(),
        ip_proto::UDP
    );
    assert_eq!(c.bypassed.load(Ordering::Relaxed), 1);
}

#[test]
fn every_refusal_is_an_action_with_its_counter() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    // TTL 1 cannot be forwarded: the sender gets time exceeded instead.
    let (act, _) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 1),
        &c,
    );
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    // A truncated frame.
    let (act, _) = run(&mut a, LAN_IF, &[0u8; 9], &c);
    assert_eq!(act, Action::Drop(DropReason::Malformed));
    // ESP for an SA we do not have.
    let mut bogus = inner_v4(40);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut bogus[..]);
        ip.set_protocol(ip_proto::ESP);
        ip.set_dst_addr(Ipv4Addr::new(198, 18, 0, 1));
        ip.fill_checksum();
    }
    let frame = eth_frame(mac(0x12), mac(0xfe), ethernet::ethertype::IPV4, &bogus);
    assert_eq!(
        run(&mut a, WAN_IF, &frame, &c).0,
        Action::Drop(DropReason::NoSa)
    );
    // No SA negotiated yet for the rule: IOS drops the first packet, and
    // the management thread hears of it (acquire) so IKE can start.
    a.spd.set_sa(1, None);
    let (acq_tx, acq_rx) = crossbeam_channel::bounded(4);
    a.acquire = Some(acq_tx);
    let (act, _) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64),
        &c,
    );
    assert_eq!(act, Action::Drop(DropReason::NoOutboundSa));
    let acq = acq_rx.try_recv().expect("an acquire was raised");
    assert_eq!(acq.flow.dst, ip("198.19.2.10"));
    assert!(matches!(
        a.spd.rules()[1].action,
        PolicyAction::Protect { map, .. } if map == acq.tag
    ));
    // A destination with no route, one with no neighbour yet.
    a.fib.remove_route(&IpPrefix::any_v4());
    let (act, _) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 7, 7), 64),
        &c,
    );
    assert_eq!(act, Action::Drop(DropReason::NoRoute));
    a.fib.remove_neighbour(LAN_IF, ip("198.19.1.10"));
    let frame = eth_frame(mac(0x11), mac(0x1b), ethernet::ethertype::IPV4, &{
        let mut p = inner_v4(10);
        let mut ipk = ipv4::Packet::new_unchecked(&mut p[..]);
        ipk.set_src_addr(Ipv4Addr::new(198, 19, 1, 20));
        ipk.set_dst_addr(Ipv4Addr::new(198, 19, 1, 10));
        ipk.fill_checksum();
        p
    });
    let (tx, rx) = crossbeam_channel::bounded(4);
    a.resolve = Some(tx);
    assert_eq!(
        run(&mut a, LAN_IF, &frame, &c).0,
        Action::Drop(DropReason::NoNeighbour)
    );
    // The miss is not silent: the management thread is asked to resolve it.
    assert_eq!(
        rx.try_recv(),
        Ok(NeighbourRequest {
            ifindex: LAN_IF,
            addr: ip("198.19.1.10")
        })
    );
    for r in [
        DropReason::TtlExceeded,
        DropReason::Malformed,
        DropReason::NoSa,
        DropReason::NoOutboundSa,
        DropReason::NoRoute,
        DropReason::NoNeighbour,
    ] {
        assert_eq!(c.drops.get(r), 1, "{r:?}");
    }
}

#[test]
fn a_mixed_batch_keeps_each_frames_fate_and_order() {
    let mut a = gateway(1, 0x1000, 0x2000);
    // A second SA for a second remote network.
    a.sadb.install(&sa_like(0x3000), 0).unwrap();
    let mut rules = a.spd.rules().to_vec();
    rules.push(SpdRule {
        selector: TrafficSelector {
            src: "198.19.1.0/24".parse().unwrap(),
            dst: "198.19.3.0/24".parse().unwrap(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect {
            sa: Some(0x3000),
            map: PolicyTag { map: 1, seq: 20 },
        },
    });
    a.spd = Spd::new(rules);
    let c = PipelineCounters::default();
    let dsts = [(2, 10), (3, 10), (2, 99), (2, 11), (3, 11), (4, 1)];
    let sent: Vec<Vec<u8>> = dsts
        .iter()
        .map(|&(n, h)| host_frame(1, Ipv4Addr::new(198, 19, n, h), 64))
        .collect();
    let mut bufs: Vec<Vec<u8>> = sent.iter().map(|f| framed(f)).collect();
    let mut frames = packet_bufs(&mut bufs, &sent);
    let mut actions = vec![Action::ToKernel; frames.len()];
    process_batch(&mut a, LAN_IF, &mut frames, &mut actions, &c);
    assert!(
        actions
            .iter()
            .all(|x| *x == Action::Transmit { ifindex: WAN_IF }),
        "{actions:?}"
    );
    let spi_of = |f: &PacketBuf<'_>| {
        let d = f.data();
        (d[14 + 9] == ip_proto::ESP).then(|| u32::from_be_bytes([d[34], d[35], d[36], d[37]]))
    };
    let spis: Vec<Option<u32>> = frames.iter().map(spi_of).collect();
    assert_eq!(
        spis,
        vec![
            Some(0x1000),
            Some(0x3000),
            None,
            Some(0x1000),
            Some(0x3000),
            None
        ]
    );
    assert_eq!(c.encapsulated.load(Ordering::Relaxed), 4);
    assert_eq!(c.bypassed.load(Ordering::Relaxed), 2);
}

fn sa_like(spi: u32) -> SaParams {
    let (enc, auth) = (EncAlg::AesGcm128(crate::crypto::GcmIcv::B16), AuthAlg::None);
    SaParams {
        spi,
        direction: Direction::Outbound,
        enc,
        auth,
        keys: keys(enc, auth),
        mode: EspMode::Tunnel {
            local: ip("198.18.0.1"),
            remote: ip("198.18.2.1"),
        },
        udp_encap: None,
        esn: false,
        replay_window: 0,
        lifetime: Lifetime::default(),
        selectors: Vec::new(),
    }
}

fn sized_host_frame(n: usize, df: bool) -> Vec<u8> {
    let mut p = inner_v4(n - 28);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(Ipv4Addr::new(198, 19, 1, 10));
        ip.set_dst_addr(Ipv4Addr::new(198, 19, 2, 10));
        ip.set_dont_frag(df);
        ip.fill_checksum();
    }
    eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV4, &p)
}

/// Parses an ICMPv4 error frame sent back to host A; returns (type, code,
/// rest of header, quoted bytes).
/// Sends a `size`-byte DF packet from the inside that SA 0x1000 cannot
/// carry within `mtu`: it must come back as "fragmentation needed" with
/// the largest inner MTU whose ESP fits `mtu`, which is returned.
fn frag_needed_inner_mtu(a: &mut Tables, c: &PipelineCounters, size: usize, mtu: usize) -> usize {
    let (act, back) = run(a, LAN_IF, &sized_host_frame(size, true), c);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    let (ty, code, rest, _) = icmp_back(&back);
    assert_eq!((ty, code), (3, 4));
    let inner = (rest & 0xffff) as usize;
    let sa = a.sadb.outbound(0x1000).unwrap();
    assert!(
        encapsulated_len(sa, inner) <= mtu && encapsulated_len(sa, inner + 16) > mtu,
        "inner mtu {inner} for {mtu}"
    );
    inner
}

fn icmp_back(frame: &[u8]) -> (u8, u8, u32, Vec<u8>) {
    let eth = ethernet::Frame::new_checked(frame).unwrap();
    assert_eq!(eth.dst_addr(), mac(0x1a), "back to the sender's MAC");
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (Ipv4Addr::new(198, 19, 1, 1), Ipv4Addr::new(198, 19, 1, 10))
    );
    assert_eq!(ip.protocol(), ip_proto::ICMP);
    let icmp = crate::wire::icmpv4::Packet::new_checked(&frame[34..]).unwrap();
    assert!(icmp.verify_checksum(), "ICMP checksum");
    (
        icmp.msg_type(),
        icmp.code(),
        icmp.rest_of_header(),
        icmp.payload().to_vec(),
    )
}

#[test]
fn ttl_expiry_sends_time_exceeded_quoting_the_packet() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let sent = host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 1);
    let (act, back) = run(&mut a, LAN_IF, &sent, &c);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    let (ty, code, _, quote) = icmp_back(&back);
    assert_eq!((ty, code), (11, 0));
    assert_eq!(
        &quote[..28],
        &sent[14..42],
        "original header + 8 bytes quoted"
    );
    assert_eq!(c.icmp_sent.load(Ordering::Relaxed), 1);
    assert_eq!(c.drops.get(DropReason::TtlExceeded), 1);
}

#[test]
fn a_packet_too_big_for_the_tunnel_gets_fragmentation_needed_with_the_inner_mtu() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let mtu = frag_needed_inner_mtu(&mut a, &c, 1480, 1500);
    // A packet of exactly that size goes through.
    let (act, _) = run(&mut a, LAN_IF, &sized_host_frame(mtu, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    // Without DF it is fragmented instead (tests below follow it further).
    let (act, _) = run(&mut a, LAN_IF, &sized_host_frame(1480, false), &c);
    assert!(
        matches!(act, Action::Fragment(job) if job.count() == 2),
        "{act:?}"
    );
    assert_eq!(c.drops.get(DropReason::TooBig), 1);
}

#[test]
fn icmp_errors_are_rate_limited_and_the_budget_comes_back() {
    let mut a = gateway(1, 0x1000, 0x2000);
    // One error a second, two at once: the pipeline refills the budget
    // itself, from the clock, when it is asked for an error.
    let c = PipelineCounters {
        icmp: IcmpLimiter::new(1, 2),
        ..Default::default()
    };
    let acts: Vec<Action> = (0..4)
        .map(|_| {
            run(
                &mut a,
                LAN_IF,
                &host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 1),
                &c,
            )
            .0
        })
        .collect();
    assert_eq!(acts[..2], [Action::Transmit { ifindex: LAN_IF }; 2]);
    assert_eq!(acts[2..], [Action::Drop(DropReason::TtlExceeded); 2]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (act, _) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 1),
        &c,
    );
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
}

#[test]
fn no_icmp_error_is_sent_about_an_icmp_error() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let (_, back) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 1),
        &c,
    );
    // Send the error itself, with TTL 1, toward the other LAN.
    let mut err = back[14..].to_vec();
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut err[..]);
        ip.set_src_addr(Ipv4Addr::new(198, 19, 1, 10));
        ip.set_dst_addr(Ipv4Addr::new(198, 19, 2, 10));
        ip.set_ttl(1);
        ip.fill_checksum();
    }
    let frame = eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV4, &err);
    assert_eq!(
        run(&mut a, LAN_IF, &frame, &c).0,
        Action::Drop(DropReason::TtlExceeded)
    );
}

#[test]
fn ipv6_hop_limit_expiry_sends_icmpv6_time_exceeded() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let mut p = inner_v6(30);
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr("fd00:1::10".parse().unwrap());
        ip.set_dst_addr("fd00:2::10".parse().unwrap());
        ip.set_hop_limit(1);
    }
    let frame = eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV6, &p);
    let (act, back) = run(&mut a, LAN_IF, &frame, &c);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    let ip = ipv6::Packet::new_checked(&back[14..]).unwrap();
    assert_eq!(
        ip.dst_addr(),
        "fd00:1::10".parse::<std::net::Ipv6Addr>().unwrap()
    );
    let icmp = crate::wire::icmpv6::Packet::new_checked(&back[54..]).unwrap();
    assert_eq!(icmp.msg_type(), 3);
    assert!(icmp.verify_checksum(&ip.src_addr(), &ip.dst_addr()));
}

/// Runs frames through a gateway the way the worker does: the pipeline
/// over the batch, then, for each frame it fragments, fresh frames lent to
/// `fragment_frames`. Returns every frame out, fragments in their packet's
/// place.
fn run_like_worker(
    t: &mut Tables,
    ifindex: u32,
    sent: &[Vec<u8>],
    c: &PipelineCounters,
) -> Vec<(Action, Vec<u8>)> {
    let mut bufs: Vec<Vec<u8>> = sent.iter().map(|f| framed(f)).collect();
    let mut frames = packet_bufs(&mut bufs, sent);
    let mut actions = vec![Action::ToKernel; frames.len()];
    process_batch(t, ifindex, &mut frames, &mut actions, c);
    let mut out = Vec::new();
    for (f, a) in frames.iter_mut().zip(&actions) {
        let Action::Fragment(job) = *a else {
            out.push((*a, f.data().to_vec()));
            continue;
        };
        let mut spare = vec![vec![0u8; FRAME]; job.count() - 1];
        let mut pieces = vec![PacketBuf::new(&mut *f.frame, f.start, f.len)];
        pieces.extend(spare.iter_mut().map(|b| PacketBuf::new(b, HEADROOM, 0)));
        let mut acts = vec![Action::ToKernel; pieces.len()];
        assert_eq!(
            fragment_frames(t, job, &mut pieces, &mut acts, c),
            job.count()
        );
        out.extend(
            acts.iter()
                .zip(&pieces)
                .map(|(a, p)| (*a, p.data().to_vec())),
        );
    }
    out
}

/// A host frame of `n` IP bytes from 198.19.1.10 to `dst`.
fn sized_frame_to(n: usize, df: bool, dst: Ipv4Addr) -> Vec<u8> {
    let mut f = sized_host_frame(n, df);
    let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
    ip.set_dst_addr(dst);
    ip.fill_checksum();
    f
}

fn set_mtu(t: &mut Tables, ifindex: u32, mtu: u16) {
    let mut iface = t.fib.interface(ifindex).unwrap().clone();
    iface.mtu = mtu;
    t.fib.add_interface(iface);
}

/// Reassembles IPv4 fragments as the destination host would and checks
/// each header on the way; returns the header fields of the first and the
/// whole payload.
fn reassemble(frags: &[Vec<u8>]) -> (ipv4::Repr, Vec<u8>) {
    let mut pieces: Vec<(u16, bool, Vec<u8>)> = frags
        .iter()
        .map(|f| {
            let ip = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert!(ip.verify_checksum());
            (ip.frag_offset(), ip.more_frags(), ip.payload().to_vec())
        })
        .collect();
    pieces.sort_by_key(|p| p.0);
    let mut data = Vec::new();
    for (i, (offset, more, bytes)) in pieces.iter().enumerate() {
        assert_eq!(usize::from(*offset), data.len(), "no gap, no overlap");
        assert_eq!(*more, i + 1 < pieces.len(), "MF on all but the last");
        data.extend_from_slice(bytes);
    }
    let first = frags
        .iter()
        .find(|f| ipv4::Packet::new_checked(&f[..]).unwrap().frag_offset() == 0)
        .unwrap();
    let repr = ipv4::Repr::parse(&ipv4::Packet::new_checked(&first[..]).unwrap()).unwrap();
    (repr, data)
}

#[test]
fn a_1500_byte_packet_without_df_crosses_the_tunnel_as_two_esp_packets_that_reassemble() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let sent = sized_host_frame(1500, false);
    let out = run_like_worker(&mut a, LAN_IF, std::slice::from_ref(&sent), &ca);
    assert_eq!(out.len(), 2, "fragmented before encryption into two");
    let mut inner = Vec::new();
    for (act, wire) in &out {
        assert_eq!(*act, Action::Transmit { ifindex: WAN_IF });
        let outer = ipv4::Packet::new_checked(&wire[14..]).unwrap();
        assert!(wire.len() - 14 <= 1500, "each ESP packet fits the WAN");
        assert_eq!(outer.protocol(), ip_proto::ESP);
        assert!(!outer.is_fragment(), "no outer fragmentation");
        let at_b = eth_frame(mac(0x22), mac(0xfe), ethernet::ethertype::IPV4, &wire[14..]);
        let (act, delivered) = run(&mut b, WAN_IF, &at_b, &cb);
        assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
        inner.push(delivered[14..].to_vec());
    }
    // B forwards the two inner fragments; the host reassembles them.
    let (repr, data) = reassemble(&inner);
    assert_eq!(&data[..], &sent[14 + 20..], "payload arrives whole");
    // Sent with TTL 63, decremented once by each gateway.
    assert_eq!((repr.ident, repr.ttl, repr.dscp_ecn), (7, 61, 0xb8));
    assert_eq!(ca.fragmented.load(Ordering::Relaxed), 1);
    assert_eq!(ca.fragments.load(Ordering::Relaxed), 2);
    assert_eq!(ca.encapsulated.load(Ordering::Relaxed), 2);
    assert_eq!(ca.tx.load(Ordering::Relaxed), 2);
    assert_eq!(cb.decapsulated.load(Ordering::Relaxed), 2);
    assert_eq!(ca.drops.total() + cb.drops.total(), 0);
    let sa = a.sadb.outbound(0x1000).unwrap();
    assert_eq!(SaCounters::read(&sa.counters().packets), 2);
}

#[test]
fn with_df_the_oversized_packet_still_gets_fragmentation_needed_and_no_fragments() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let out = run_like_worker(&mut a, LAN_IF, &[sized_host_frame(1500, true)], &c);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Action::Transmit { ifindex: LAN_IF });
    let (ty, code, rest, _) = icmp_back(&out[0].1);
    assert_eq!((ty, code), (3, 4));
    let sa = a.sadb.outbound(0x1000).unwrap();
    assert_eq!(rest & 0xffff, inner_mtu(sa, 1500) as u32);
    assert_eq!(c.fragments.load(Ordering::Relaxed), 0);
}

#[test]
fn fragments_keep_their_packets_place_in_a_mixed_batch() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let small = host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64);
    let batch = [
        small.clone(),
        sized_host_frame(1500, false),
        sized_frame_to(1500, false, Ipv4Addr::new(198, 19, 2, 99)),
        small,
    ];
    let out = run_like_worker(&mut a, LAN_IF, &batch, &c);
    let kinds: Vec<(usize, u8)> = out
        .iter()
        .map(|(act, f)| {
            assert_eq!(*act, Action::Transmit { ifindex: WAN_IF });
            (f.len() - 14, f[14 + 9])
        })
        .collect();
    let esp_len = |n| encapsulated_len(a.sadb.outbound(0x1000).unwrap(), n);
    assert_eq!(
        kinds,
        vec![
            (esp_len(68), ip_proto::ESP),
            (esp_len(1436), ip_proto::ESP),
            (esp_len(84), ip_proto::ESP),
            // The bypassed one fits the WAN's 1500 as it is.
            (1500, ip_proto::UDP),
            (esp_len(68), ip_proto::ESP),
        ]
    );
}

#[test]
fn bypass_traffic_larger_than_the_next_link_is_fragmented_without_df() {
    let mut a = gateway(1, 0x1000, 0x2000);
    set_mtu(&mut a, WAN_IF, 1400);
    let c = PipelineCounters::default();
    let sent = sized_frame_to(1500, false, Ipv4Addr::new(198, 19, 2, 99));
    let out = run_like_worker(&mut a, LAN_IF, std::slice::from_ref(&sent), &c);
    assert_eq!(out.len(), 2);
    for (act, f) in &out {
        assert_eq!(*act, Action::Transmit { ifindex: WAN_IF });
        assert!(f.len() - 14 <= 1400);
        assert_eq!(&f[..6], &mac(0xfe).0, "to the WAN router");
    }
    let frags: Vec<Vec<u8>> = out.iter().map(|(_, f)| f[14..].to_vec()).collect();
    let (repr, data) = reassemble(&frags);
    assert_eq!(&data[..], &sent[14 + 20..]);
    assert_eq!((repr.protocol, repr.ttl), (ip_proto::UDP, 62));
    assert_eq!(c.bypassed.load(Ordering::Relaxed), 2);
    assert_eq!(c.fragments.load(Ordering::Relaxed), 2);
    // With DF the sender learns the link's MTU instead.
    let out = run_like_worker(
        &mut a,
        LAN_IF,
        &[sized_frame_to(1500, true, Ipv4Addr::new(198, 19, 2, 99))],
        &c,
    );
    assert_eq!(out.len(), 1);
    let (ty, code, rest, _) = icmp_back(&out[0].1);
    assert_eq!((ty, code, rest & 0xffff), (3, 4, 1400));
}

#[test]
fn decapsulated_traffic_larger_than_the_inside_link_is_fragmented_without_df() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    set_mtu(&mut b, LAN_IF, 1000);
    let c = PipelineCounters::default();
    let out = run_like_worker(&mut a, LAN_IF, &[sized_host_frame(1400, false)], &c);
    assert_eq!(out.len(), 1, "fits the tunnel");
    let at_b = eth_frame(
        mac(0x22),
        mac(0xfe),
        ethernet::ethertype::IPV4,
        &out[0].1[14..],
    );
    let delivered = run_like_worker(&mut b, WAN_IF, &[at_b], &c);
    assert_eq!(delivered.len(), 2);
    let frags: Vec<Vec<u8>> = delivered
        .iter()
        .map(|(act, f)| {
            assert_eq!(*act, Action::Transmit { ifindex: LAN_IF });
            assert!(f.len() - 14 <= 1000);
            f[14..].to_vec()
        })
        .collect();
    let sent = sized_host_frame(1400, false);
    assert_eq!(reassemble(&frags).1, &sent[14 + 20..]);
}

#[test]
fn too_few_free_frames_drop_the_packet_and_count_it() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let sent = sized_host_frame(1500, false);
    let mut buf = framed(&sent);
    let mut frames = [PacketBuf::new(&mut buf, HEADROOM, sent.len())];
    let mut actions = [Action::ToKernel];
    process_batch(&mut a, LAN_IF, &mut frames, &mut actions, &c);
    let Action::Fragment(job) = actions[0] else {
        panic!("{:?}", actions[0]);
    };
    // The worker's free list is empty: only the frame itself.
    assert_eq!(fragment_frames(&a, job, &mut frames, &mut actions, &c), 1);
    assert_eq!(actions[0], Action::Drop(DropReason::NoFreeFrame));
    assert_eq!(c.drops.get(DropReason::NoFreeFrame), 1);
    assert_eq!(c.fragments.load(Ordering::Relaxed), 0);
    assert_eq!(fragment_frames(&a, job, &mut [], &mut [], &c), 0);
}

#[test]
fn fresh_frames_without_room_for_a_fragment_leave_the_packet_dropped_not_cut() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let sent = sized_host_frame(1500, false);
    let mut buf = framed(&sent);
    let mut tiny = vec![0u8; HEADROOM + 40];
    let mut frames = [
        PacketBuf::new(&mut buf, HEADROOM, sent.len()),
        PacketBuf::new(&mut tiny, HEADROOM, 0),
    ];
    let mut actions = [Action::ToKernel; 2];
    process_batch(&mut a, LAN_IF, &mut frames[..1], &mut actions[..1], &c);
    let Action::Fragment(job) = actions[0] else {
        panic!("{:?}", actions[0]);
    };
    assert_eq!(fragment_frames(&a, job, &mut frames, &mut actions, &c), 1);
    assert_eq!(actions[0], Action::Drop(DropReason::NoRoom));
    assert_eq!(frames[0].len, 1500, "the packet was not cut");
}

#[test]
fn an_ipv6_packet_too_big_for_the_tunnel_gets_packet_too_big_never_fragments() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let mut p = inner_v6(1500 - 48);
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr("fd00:1::10".parse().unwrap());
        ip.set_dst_addr("fd00:2::10".parse().unwrap());
    }
    let frame = eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV6, &p);
    let out = run_like_worker(&mut a, LAN_IF, &[frame], &c);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, Action::Transmit { ifindex: LAN_IF });
    let back = &out[0].1;
    let icmp = crate::wire::icmpv6::Packet::new_checked(&back[54..]).unwrap();
    let sa = a.sadb.outbound(0x1000).unwrap();
    assert_eq!(
        (icmp.msg_type(), icmp.rest_of_header()),
        (2, inner_mtu(sa, 1500) as u32)
    );
    assert_eq!(c.fragments.load(Ordering::Relaxed), 0);
}

// ---- Port address translation (seed 003) ----

const INTERNET: Ipv4Addr = Ipv4Addr::new(198, 18, 5, 200);
const WAN_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// Gateway A with seed 003's NAT: the tunnel's traffic exempt, everything
/// else from the LAN translated to the WAN address; worker `worker` of
/// `workers`, whose slices split 61000-61999.
fn pat_gateway(worker: usize, workers: usize) -> Tables {
    let mut t = gateway(1, 0x100, 0x200);
    let plan = crate::nat::PortPlan::new(61000..=61999, workers).unwrap();
    let mut pat = PatState::new(plan, worker, 64).unwrap();
    let lan4: IpPrefix = "198.19.1.0/24".parse().unwrap();
    let sel = |dst: &str| TrafficSelector {
        src: lan4,
        dst: dst.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    pat.rules = crate::nat::NatRules::compile(&[
        crate::api::NatRule {
            selector: sel("198.19.2.0/24"),
            action: crate::api::NatAction::Exempt,
        },
        crate::api::NatRule {
            selector: sel("0.0.0.0/0"),
            action: crate::api::NatAction::Pat {
                outside_ifindex: WAN_IF,
                outside_addr: IpAddr::V4(WAN_A),
            },
        },
    ])
    .unwrap();
    t.pat = Some(pat);
    t
}

/// UDP (ports 1234 → 5678) from the host behind A to `dst`.
fn lan_udp(dst: Ipv4Addr, n: usize, df: bool) -> Vec<u8> {
    let mut p = inner_v4(n);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(Ipv4Addr::new(198, 19, 1, 10));
        ip.set_dst_addr(dst);
        ip.set_dont_frag(df);
        ip.fill_checksum();
    }
    eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV4, &p)
}

/// The reply from the internet host to `port` on A's WAN address.
fn wan_reply(port: u16) -> Vec<u8> {
    let mut p = inner_v4(16);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(INTERNET);
        ip.set_dst_addr(WAN_A);
        ip.fill_checksum();
    }
    p[20..22].copy_from_slice(&5678u16.to_be_bytes());
    p[22..24].copy_from_slice(&port.to_be_bytes());
    eth_frame(mac(0x12), mac(0xfe), ethernet::ethertype::IPV4, &p)
}

fn ports_of(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u16, u16) {
    let ip = ipv4::Packet::new_checked(&frame[14..]).unwrap();
    assert!(ip.verify_checksum(), "IPv4 header checksum after NAT");
    let l4 = &frame[14 + ip.header_len()..];
    (
        ip.src_addr(),
        ip.dst_addr(),
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    )
}

#[test]
fn pat_translates_internet_traffic_and_its_replies_but_never_the_tunnel() {
    let mut a = pat_gateway(0, 1);
    let c = PipelineCounters::default();

    let (act, wire) = run(&mut a, LAN_IF, &lan_udp(INTERNET, 16, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let (src, dst, sport, dport) = ports_of(&wire);
    assert_eq!((src, dst, dport), (WAN_A, INTERNET, 5678));
    assert!(
        (61000..=61999).contains(&sport),
        "port {sport} from the range"
    );
    assert_eq!(c.bypassed.load(Ordering::Relaxed), 1);

    let (act, back) = run(&mut a, WAN_IF, &wan_reply(sport), &c);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(
        ports_of(&back),
        (INTERNET, Ipv4Addr::new(198, 19, 1, 10), 5678, 1234)
    );
    assert_eq!(&back[0..6], &mac(0x1a).0, "to the host's MAC");
    let ip = ipv4::Packet::new_checked(&back[14..]).unwrap();
    assert_eq!(ip.ttl(), 62, "forwarded: TTL decremented");

    // A reply to a port no translation holds is dropped and counted.
    let (act, _) = run(&mut a, WAN_IF, &wan_reply(sport + 1), &c);
    assert_eq!(act, Action::Drop(DropReason::Nat));
    assert_eq!(c.drops.get(DropReason::Nat), 1);
    // Below the range it is the kernel's (the XDP program would not even
    // have sent it here).
    let (act, _) = run(&mut a, WAN_IF, &wan_reply(22), &c);
    assert_eq!(act, Action::ToKernel);

    // Crypto first: tunnel traffic keeps its inside source inside ESP.
    let (act, wire) = run(
        &mut a,
        LAN_IF,
        &lan_udp(Ipv4Addr::new(198, 19, 2, 10), 16, true),
        &c,
    );
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let outer = ipv4::Packet::new_checked(&wire[14..]).unwrap();
    assert_eq!(outer.protocol(), ip_proto::ESP);
    let stats = a.pat.as_ref().unwrap().table.counters().snapshot();
    assert_eq!(stats.hits(), 2, "one translation each way");
}

#[test]
fn pat_without_rules_forwards_untouched() {
    let mut a = pat_gateway(0, 1);
    a.pat.as_mut().unwrap().rules = crate::nat::NatRules::default();
    let c = PipelineCounters::default();
    let (act, wire) = run(&mut a, LAN_IF, &lan_udp(INTERNET, 16, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    assert_eq!(
        ports_of(&wire),
        (Ipv4Addr::new(198, 19, 1, 10), INTERNET, 1234, 5678)
    );
}

#[test]
fn return_traffic_for_another_workers_port_is_handed_to_it_whole() {
    // Worker 0 of 2 owns 61000-61499; 61700 belongs to worker 1.
    let mut a = pat_gateway(0, 2);
    let c = PipelineCounters::default();
    let reply = wan_reply(61700);
    let (act, frame) = run(&mut a, WAN_IF, &reply, &c);
    assert_eq!(act, Action::Handoff { worker: 1 });
    assert_eq!(frame, reply, "the whole frame, link layer included");

    // Worker 1, holding the translation, takes it from there.
    let mut b = pat_gateway(1, 2);
    let (act, wire) = run(&mut b, LAN_IF, &lan_udp(INTERNET, 16, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let (_, _, sport, _) = ports_of(&wire);
    assert!((61500..=61999).contains(&sport));
    let (act, _) = run(&mut a, WAN_IF, &wan_reply(sport), &c);
    assert_eq!(act, Action::Handoff { worker: 1 });
    let (act, back) = run(&mut b, WAN_IF, &wan_reply(sport), &c);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(ports_of(&back).3, 1234);
}

#[test]
fn a_packet_too_big_is_translated_then_fragmented_and_df_gets_an_untranslated_error() {
    let mut a = pat_gateway(0, 1);
    let c = PipelineCounters::default();
    a.fib.add_interface(Interface {
        ifindex: WAN_IF,
        mac: mac(0x12),
        mtu: 600,
        role: PortRole::Outside,
    });
    // DF: the sender hears about the MTU, quoting its own packet.
    let (act, back) = run(&mut a, LAN_IF, &lan_udp(INTERNET, 1000, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    let (kind, _, _, quoted) = icmp_back(&back);
    assert_eq!(kind, 3);
    assert_eq!(
        &quoted[12..16],
        &[198, 19, 1, 10],
        "quotes the inside source"
    );

    // No DF: translated, then split; every fragment carries WAN_A.
    let sent = lan_udp(INTERNET, 1000, false);
    let mut buf = framed(&sent);
    let mut frames = [PacketBuf::new(&mut buf, HEADROOM, sent.len())];
    let mut actions = [Action::ToKernel];
    process_batch(&mut a, LAN_IF, &mut frames, &mut actions, &c);
    let Action::Fragment(job) = actions[0] else {
        panic!("expected fragmentation, got {:?}", actions[0]);
    };
    let mut spare: Vec<Vec<u8>> = (1..job.count()).map(|_| vec![0u8; FRAME]).collect();
    let mut bufs = vec![PacketBuf::new(
        &mut *frames[0].frame,
        frames[0].start,
        frames[0].len,
    )];
    bufs.extend(spare.iter_mut().map(|b| PacketBuf::new(b, HEADROOM, 0)));
    let mut acts = vec![Action::ToKernel; bufs.len()];
    assert_eq!(
        fragment_frames(&a, job, &mut bufs, &mut acts, &c),
        job.count()
    );
    for (f, act) in bufs.iter().zip(&acts) {
        assert_eq!(*act, Action::Transmit { ifindex: WAN_IF });
        let ip = ipv4::Packet::new_checked(&f.data()[14..]).unwrap();
        assert_eq!(ip.src_addr(), WAN_A);
        assert!(ip.verify_checksum());
    }
}

// ---- Tunnel Endpoint Discovery: probes caught in transit ----

/// A frame on B's outside: from the WAN router, `packet` inside.
fn at_b_outside(packet: &[u8]) -> Vec<u8> {
    let ethertype = if packet[0] >> 4 == 6 {
        ethernet::ethertype::IPV6
    } else {
        ethernet::ethertype::IPV4
    };
    eth_frame(mac(0x22), mac(0xfe), ethertype, packet)
}

/// A TED probe from the host behind A (198.19.1.10) to the host behind B.
fn probe_v4(extra: usize) -> Vec<u8> {
    probe_v4_from(Ipv4Addr::new(198, 19, 1, 10), extra)
}

/// The same probe from another source.
fn probe_v4_from(src: Ipv4Addr, extra: usize) -> Vec<u8> {
    crate::testkit::udp_v4(
        src,
        Ipv4Addr::new(198, 19, 2, 10),
        500,
        500,
        &crate::testkit::isakmp_v1(extra),
    )
}

fn with_ted(t: &mut Tables, cap: usize) -> crossbeam_channel::Receiver<TedProbeRequest> {
    let (tx, rx) = crossbeam_channel::bounded(cap);
    t.ted = Some(tx);
    rx
}

#[test]
fn a_ted_probe_in_transit_goes_to_the_control_process_not_to_the_host() {
    let mut b = gateway(2, 0x2000, 0x1000);
    let probes = with_ted(&mut b, 8);
    let c = PipelineCounters::default();
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&probe_v4(60)), &c);
    assert_eq!(act, Action::Drop(DropReason::TedProbeDelivered));
    let p = probes.try_recv().expect("the probe was handed on");
    assert_eq!(p.from, "198.19.1.10:500".parse().unwrap());
    assert_eq!(p.original_dst, ip("198.19.2.10"));
    assert_eq!(p.payload(), &crate::testkit::isakmp_v1(60)[..]);
    assert_eq!(
        p.event(),
        Event::TedProbe {
            from: "198.19.1.10:500".parse().unwrap(),
            original_dst: ip("198.19.2.10"),
            data: crate::testkit::isakmp_v1(60),
        }
    );
    assert_eq!(c.drops.get(DropReason::TedProbeDelivered), 1);
    assert_eq!(c.drops.get(DropReason::TedProbeRateLimited), 0);
    assert_eq!(c.tx.load(Ordering::Relaxed), 0, "not forwarded");

    // IPv6, from an ephemeral port, through a hop-by-hop header.
    let mut v6 = crate::testkit::udp_v6(
        "fd00:1::10".parse().unwrap(),
        "fd00:2::10".parse().unwrap(),
        40123,
        500,
        &crate::testkit::isakmp_v1(0),
    );
    let hbh = [ip_proto::UDP, 0, 1, 4, 0, 0, 0, 0];
    v6[6] = 0; // next header: hop-by-hop options
    let plen = u16::from_be_bytes([v6[4], v6[5]]) + 8;
    v6[4..6].copy_from_slice(&plen.to_be_bytes());
    v6.splice(40..40, hbh);
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&v6), &c);
    assert_eq!(act, Action::Drop(DropReason::TedProbeDelivered));
    let p = probes.try_recv().expect("the IPv6 probe was handed on");
    assert_eq!(p.from, "[fd00:1::10]:40123".parse().unwrap());
    assert_eq!(p.original_dst, ip("fd00:2::10"));
    assert_eq!(p.payload(), &crate::testkit::isakmp_v1(0)[..]);

    // The largest payload a probe may have, and one byte more.
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&probe_v4(1500 - 28)), &c);
    assert_eq!(act, Action::Drop(DropReason::TedProbeDelivered));
    assert_eq!(probes.try_recv().unwrap().payload().len(), 1500);
    let mut big = probe_v4(1500 - 28 + 1);
    big[ipv4::HEADER_LEN + 8 + 17] = 0x10;
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&big), &c);
    assert_eq!(act, Action::ToKernel);
    assert!(probes.try_recv().is_err());
}

#[test]
fn transit_udp_500_that_is_not_ikev1_follows_the_transit_path() {
    let mut b = gateway(2, 0x2000, 0x1000);
    let probes = with_ted(&mut b, 8);
    let c = PipelineCounters::default();
    let src = Ipv4Addr::new(198, 19, 1, 10);
    let dst = Ipv4Addr::new(198, 19, 2, 10);
    let mut v2 = crate::testkit::isakmp_v1(40);
    v2[17] = 0x20;
    let mut main_mode = crate::testkit::isakmp_v1(40);
    main_mode[18] = 2;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("IKEv2", crate::testkit::udp_v4(src, dst, 500, 500, &v2)),
        (
            "IKEv1 Main Mode",
            crate::testkit::udp_v4(src, dst, 500, 500, &main_mode),
        ),
        (
            "27 bytes",
            crate::testkit::udp_v4(src, dst, 500, 500, &crate::testkit::isakmp_v1(0)[..27]),
        ),
        (
            "another port",
            crate::testkit::udp_v4(src, dst, 500, 4500, &crate::testkit::isakmp_v1(4)),
        ),
        ("DNS", crate::testkit::udp_v4(src, dst, 5353, 53, &[7; 40])),
    ];
    for (what, packet) in cases {
        let frame = at_b_outside(&packet);
        assert_eq!(
            run(&mut b, WAN_IF, &frame, &c),
            (Action::ToKernel, frame.clone()),
            "{what}"
        );
    }
    // A first fragment is never a probe (its fellows cannot be told apart).
    let mut frag = probe_v4(40);
    {
        let mut ipk = ipv4::Packet::new_unchecked(&mut frag[..]);
        ipk.set_more_frags(true);
        ipk.fill_checksum();
    }
    assert_eq!(
        run(&mut b, WAN_IF, &at_b_outside(&frag), &c).0,
        Action::ToKernel
    );
    // IKE to the gateway itself is the kernel's IKE daemon's.
    let to_gw = crate::testkit::udp_v4(
        src,
        Ipv4Addr::new(198, 18, 1, 1),
        500,
        500,
        &crate::testkit::isakmp_v1(40),
    );
    assert_eq!(
        run(&mut b, WAN_IF, &at_b_outside(&to_gw), &c).0,
        Action::ToKernel
    );
    assert!(probes.try_recv().is_err());
    assert_eq!(c.drops.total(), 0);
}

#[test]
fn ted_probes_are_rate_limited_per_worker_and_counted() {
    let mut b = gateway(2, 0x2000, 0x1000);
    let probes = with_ted(&mut b, 64);
    let c = PipelineCounters::default();
    let n = TED_PROBES_PER_SEC as usize + 3;
    // One batch: one clock reading, so one second's budget; each probe
    // from another gateway (distinct source buckets).
    let frames_in: Vec<Vec<u8>> = (0..n)
        .map(|i| at_b_outside(&probe_v4_from(distinct_source(i), 20)))
        .collect();
    let mut bufs: Vec<Vec<u8>> = frames_in.iter().map(|f| framed(f)).collect();
    let mut frames = packet_bufs(&mut bufs, &frames_in);
    let mut actions = vec![Action::ToKernel; n];
    process_batch(&mut b, WAN_IF, &mut frames, &mut actions, &c);
    let delivered = TED_PROBES_PER_SEC as usize;
    assert!(actions[..delivered]
        .iter()
        .all(|a| *a == Action::Drop(DropReason::TedProbeDelivered)));
    assert!(actions[delivered..]
        .iter()
        .all(|a| *a == Action::Drop(DropReason::TedProbeRateLimited)));
    assert_eq!(probes.try_iter().count(), delivered);
    assert_eq!(c.drops.get(DropReason::TedProbeDelivered), delivered as u64);
    assert_eq!(c.drops.get(DropReason::TedProbeRateLimited), 3);

    // The budget is per second of the dataplane clock.
    let l = TedLimiter::default();
    assert!((0..TED_PROBES_PER_SEC as usize)
        .all(|i| l.admit(7, distinct_source(i).into()) == TedAdmit::Yes));
    assert_eq!(
        l.admit(7, distinct_source(TED_PROBES_PER_SEC as usize).into()),
        TedAdmit::OverTotal
    );
    assert_eq!(l.admit(8, distinct_source(0).into()), TedAdmit::Yes);
}

/// The `i`th of the addresses 198.18.x.1 whose source buckets all
/// differ (found by walking the addresses, not assumed).
fn distinct_source(i: usize) -> Ipv4Addr {
    let mut buckets = Vec::new();
    for x in 0..=255u8 {
        let a = Ipv4Addr::new(198, 18, x, 1);
        let b = ted_source_bucket(a.into());
        if !buckets.contains(&b) {
            buckets.push(b);
            if buckets.len() > i {
                return a;
            }
        }
    }
    panic!("fewer than {} distinct source buckets in 198.18.x.1", i + 1);
}

#[test]
fn one_source_gets_only_its_share_of_the_probe_budget() {
    let mut b = gateway(2, 0x2000, 0x1000);
    let probes = with_ted(&mut b, 64);
    let c = PipelineCounters::default();
    // Two sources known to fall in different buckets of the limiter.
    let (flooder, another) = (distinct_source(0), distinct_source(1));
    let flood = at_b_outside(&probe_v4_from(flooder, 20));
    let other = at_b_outside(&probe_v4_from(another, 20));
    let n = TED_PROBES_PER_SOURCE_PER_SEC as usize + 6;
    // One batch (one second): the flooder's probes, then another's.
    let frames_in: Vec<&Vec<u8>> = std::iter::repeat_n(&flood, n).chain([&other]).collect();
    let mut bufs: Vec<Vec<u8>> = frames_in.iter().map(|f| framed(f)).collect();
    let mut frames = packet_bufs(&mut bufs, &frames_in);
    let mut actions = vec![Action::ToKernel; n + 1];
    process_batch(&mut b, WAN_IF, &mut frames, &mut actions, &c);
    let share = TED_PROBES_PER_SOURCE_PER_SEC as usize;
    assert!(actions[..share]
        .iter()
        .all(|a| *a == Action::Drop(DropReason::TedProbeDelivered)));
    assert!(actions[share..n]
        .iter()
        .all(|a| *a == Action::Drop(DropReason::TedProbeSourceLimited)));
    assert_eq!(actions[n], Action::Drop(DropReason::TedProbeDelivered));
    let delivered: Vec<_> = probes.try_iter().collect();
    assert_eq!(delivered.len(), share + 1);
    assert_eq!(
        delivered.last().map(|d| d.from),
        Some(SocketAddr::new(another.into(), 500))
    );
    assert_eq!(c.drops.get(DropReason::TedProbeSourceLimited), 6);
    assert_eq!(c.drops.get(DropReason::TedProbeRateLimited), 0);
    assert_eq!(
        DropReason::TedProbeSourceLimited.name(),
        "ted-probe-source-limited"
    );
}

#[test]
fn a_ted_probe_with_nowhere_to_go_is_dropped_as_rate_limited() {
    let mut b = gateway(2, 0x2000, 0x1000);
    let c = PipelineCounters::default();
    let frame = at_b_outside(&probe_v4(20));
    // No channel at all.
    assert_eq!(
        run(&mut b, WAN_IF, &frame, &c).0,
        Action::Drop(DropReason::TedProbeRateLimited)
    );
    // A full queue: the management thread is behind.
    let probes = with_ted(&mut b, 1);
    assert_eq!(
        run(&mut b, WAN_IF, &frame, &c).0,
        Action::Drop(DropReason::TedProbeDelivered)
    );
    assert_eq!(
        run(&mut b, WAN_IF, &frame, &c).0,
        Action::Drop(DropReason::TedProbeRateLimited)
    );
    assert_eq!(probes.try_iter().count(), 1);
    assert_eq!(c.drops.get(DropReason::TedProbeRateLimited), 2);
}

#[test]
fn the_prefetch_pass_finds_an_esp_frames_sa_and_sequence_number() {
    let (mut a, b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let ca = PipelineCounters::default();
    let sent = host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64);
    let mut seqs = Vec::new();
    for _ in 0..2 {
        let (act, wire) = run(&mut a, LAN_IF, &sent, &ca);
        assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
        let (sa, seq) = inbound_sa_of(&b.sadb, &wire[14..]).expect("B's inbound SA");
        assert_eq!(sa.spi(), 0x1000);
        seqs.push(seq);
    }
    assert_eq!(seqs, [1, 2]);
    // Not ESP, or an SPI B does not hold: nothing.
    assert!(inbound_sa_of(&b.sadb, &sent[14..]).is_none());
    let (_, wire) = run(&mut a, LAN_IF, &sent, &ca);
    assert!(inbound_sa_of(&a.sadb, &wire[14..]).is_none());
}

#[test]
fn the_spd_prefetch_reads_the_destination_of_ipv4_and_ipv6_frames_and_nothing_else() {
    let eth = |ethertype: u16, packet: &[u8]| {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(packet);
        f
    };
    assert_eq!(
        frame_dst(&eth(0x0800, &inner_v4(4))),
        Some(IpAddr::V4(Ipv4Addr::new(198, 19, 2, 2)))
    );
    assert_eq!(
        frame_dst(&eth(0x86dd, &inner_v6(4))),
        Some("fd00:2::2".parse().unwrap())
    );
    // Truncated headers, another IP version, a runt frame: no address.
    assert_eq!(frame_dst(&eth(0x0800, &inner_v4(4)[..19])), None);
    assert_eq!(frame_dst(&eth(0x86dd, &inner_v6(4)[..39])), None);
    assert_eq!(frame_dst(&eth(0x0800, &[0x50; 40])), None);
    assert_eq!(frame_dst(&[0u8; 10]), None);
}

proptest::proptest! {
    /// An SPI that occurs twice in a batch is never taken for one alone
    /// (that would split its SA's packets); SPIs handed out in sequence,
    /// as a batch of many SAs holds them, all count as alone.
    #[test]
    fn spi_counts_never_call_a_repeated_spi_alone(
        spis in proptest::collection::vec(proptest::prelude::any::<u32>(), 0..256),
        first in proptest::prelude::any::<u32>(),
    ) {
        let mut batch = spis.clone();
        batch.extend(spis.iter().step_by(3));
        let counts = SpiCounts::new(batch.iter().copied());
        for spi in &batch {
            if batch.iter().filter(|s| *s == spi).count() > 1 {
                proptest::prop_assert!(counts.maybe_shared(*spi));
            }
        }
        let run: Vec<u32> = (0..64).map(|k| first.wrapping_add(k)).collect();
        let counts = SpiCounts::new(run.iter().copied());
        proptest::prop_assert!(run.iter().all(|&spi| !counts.maybe_shared(spi)));
    }
}

/// ESP that a router on the path cut into fragments, by our own
/// fragmenter (cross-checked against scapy): the fragments, each framed
/// as B's outside port receives it.
fn esp_fragments_at_b(
    a: &mut Tables,
    ca: &PipelineCounters,
    inner_len: usize,
) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut inner = inner_v4(inner_len);
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut inner[..]);
        ip.set_src_addr(Ipv4Addr::new(198, 19, 1, 10));
        ip.set_dst_addr(Ipv4Addr::new(198, 19, 2, 10));
        ip.set_dont_frag(false);
        ip.fill_checksum();
    }
    let sent = eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV4, &inner);
    let (act, wire) = run(a, LAN_IF, &sent, ca);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let frames = crate::testkit::fragments_v4(&wire[14..], 576)
        .iter()
        .map(|f| at_b_outside(f))
        .collect();
    (sent, frames)
}

#[test]
fn esp_cut_into_fragments_on_the_path_is_reassembled_and_decrypted() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    // In one batch, the last fragment first.
    let (sent, mut frags) = esp_fragments_at_b(&mut a, &ca, 1300);
    assert_eq!(frags.len(), 3);
    frags.rotate_right(1);
    let out = run_like_worker(&mut b, WAN_IF, &frags, &cb);
    let queued = Action::Drop(DropReason::FragmentQueued);
    assert_eq!((out[0].0, out[1].0), (queued, queued));
    assert_eq!(out[2].0, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(&out[2].1[14 + 20..], &sent[14 + 20..], "payload unchanged");
    // One fragment per batch, as they may come.
    let (sent, frags) = esp_fragments_at_b(&mut a, &ca, 1000);
    assert_eq!(frags.len(), 2);
    let mut last = None;
    for f in &frags {
        last = Some(run(&mut b, WAN_IF, f, &cb));
    }
    let (act, delivered) = last.expect("fragments");
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(&delivered[14 + 20..], &sent[14 + 20..]);
    assert_eq!(cb.reassembled.load(Ordering::Relaxed), 2);
    assert_eq!(cb.decapsulated.load(Ordering::Relaxed), 2);
    assert_eq!(cb.drops.get(DropReason::FragmentQueued), 2 + 1);
    assert_eq!(cb.drops.total(), 3, "nothing else dropped");
}

/// Fragmented NAT-T ESP reaches the dataplane through the control
/// process (the kernel reassembled it, `crate::inject` frames its UDP
/// payload again): the rebuilt frame is decapsulated as the whole one is.
#[test]
fn nat_t_esp_rebuilt_from_its_udp_payload_is_decapsulated_like_the_original() {
    let encap = Some(crate::api::UdpEncap {
        src_port: 4500,
        dst_port: 4500,
    });
    let mut a = gateway_with(1, 0x1000, 0x2000, encap);
    let mut b = gateway_with(2, 0x2000, 0x1000, encap);
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let mut payloads = Vec::new();
    for _ in 0..2 {
        let sent = host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64);
        let (act, wire) = run(&mut a, LAN_IF, &sent, &ca);
        assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
        payloads.push((sent, wire));
    }
    // The first as it came on the wire, whole.
    let (sent, wire) = &payloads[0];
    let (act, out) = run(&mut b, WAN_IF, &at_b_outside(&wire[14..]), &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(&out[14 + 20..], &sent[14 + 20..]);
    // The second as the control process hands it over: its UDP payload.
    let (sent, wire) = &payloads[1];
    let ip = ipv4::Packet::new_checked(&wire[14..]).unwrap();
    assert_eq!(ip.protocol(), ip_proto::UDP);
    let udp = &wire[14 + 20..];
    assert_eq!(&udp[..4], &[0x11, 0x94, 0x11, 0x94], "4500 -> 4500");
    let from = SocketAddr::new(IpAddr::V4(ip.src_addr()), 4500);
    let to = SocketAddr::new(IpAddr::V4(ip.dst_addr()), 4500);
    let mut frame = vec![0; crate::inject::MAX_FRAME];
    let len = crate::inject::esp_in_udp_frame(from, to, &udp[8..], &mut frame).unwrap();
    let (act, out) = run(&mut b, WAN_IF, &frame[..len], &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    assert_eq!(&out[14 + 20..], &sent[14 + 20..]);
    assert_eq!(cb.decapsulated.load(Ordering::Relaxed), 2);
    assert_eq!(cb.drops.total(), 0);
    // Replayed, it is refused as any replay is.
    let (act, _) = run(&mut b, WAN_IF, &frame[..len], &cb);
    assert_eq!(act, Action::Drop(DropReason::Replay));
}

// ---- Headers a router must check, frames it must not take ----

/// `frame` with its IPv4 TTL changed and the header checksum left as it
/// was: damaged on the way.
fn with_bad_ip_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    frame[14 + 8] ^= 0x01;
    assert!(!ipv4::Packet::new_checked(&frame[14..])
        .unwrap()
        .verify_checksum());
    frame
}

#[test]
fn an_inside_ipv4_header_with_a_bad_checksum_is_neither_encrypted_nor_forwarded() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let (tx, acquires) = crossbeam_channel::bounded(4);
    a.acquire = Some(tx);
    let c = PipelineCounters::default();
    // Protected (to the remote LAN), bypassed by the deny line, and
    // matching no rule (the Internet, in the clear).
    for dst in [
        Ipv4Addr::new(198, 19, 2, 10),
        Ipv4Addr::new(198, 19, 2, 99),
        Ipv4Addr::new(203, 0, 113, 7),
    ] {
        let good = host_frame(1, dst, 64);
        assert!(matches!(
            run(&mut gateway(1, 0x1000, 0x2000), LAN_IF, &good, &c).0,
            Action::Transmit { .. }
        ));
        let (act, _) = run(&mut a, LAN_IF, &with_bad_ip_checksum(good), &c);
        assert_eq!(act, Action::Drop(DropReason::BadIpChecksum), "to {dst}");
    }
    assert_eq!(c.drops.get(DropReason::BadIpChecksum), 3);
    assert_eq!(
        c.encapsulated.load(Ordering::Relaxed),
        1,
        "the good one only"
    );
    assert_eq!(c.bypassed.load(Ordering::Relaxed), 2, "the good ones only");
    // Nor does a damaged packet of a protected flow with no SA start IKE.
    a.spd = Spd::new(vec![SpdRule {
        selector: TrafficSelector {
            src: "198.19.1.0/24".parse().unwrap(),
            dst: "198.19.2.0/24".parse().unwrap(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect { sa: None, map: TAG },
    }]);
    let bad = with_bad_ip_checksum(host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64));
    assert_eq!(
        run(&mut a, LAN_IF, &bad, &c).0,
        Action::Drop(DropReason::BadIpChecksum)
    );
    assert!(
        acquires.try_recv().is_err(),
        "no acquire for a damaged packet"
    );
}

#[test]
fn a_decrypted_ipv4_packet_with_a_bad_header_checksum_is_not_forwarded() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    // A's inside is where the damage happened: A's own check would stop
    // it, so the peer is one that encrypts whatever it is given.
    let damaged = with_bad_ip_checksum(host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64));
    let sa = a.sadb.outbound(0x1000).unwrap();
    let esp = crate::testkit::encap_one(sa, &damaged[14..]).unwrap();
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&esp), &cb);
    assert_eq!(act, Action::Drop(DropReason::BadIpChecksum));
    let inbound = b.sadb.inbound(0x1000).unwrap();
    assert_eq!(inbound.counters().drops.get(DropReason::BadIpChecksum), 1);
    // The same packet undamaged crosses.
    let good = host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64);
    let (act, wire) = run(&mut a, LAN_IF, &good, &ca);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&wire[14..]), &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
}

/// `frame` with one 802.1Q tag (VLAN `vid`) after its MAC addresses.
fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&ethernet::ethertype::VLAN.to_be_bytes());
    f.extend_from_slice(&vid.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

#[test]
fn vlan_tagged_frames_are_dropped_not_forwarded_untagged() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    // From a host on VLAN 42 of the inside: protected, and in the clear.
    for dst in [Ipv4Addr::new(198, 19, 2, 10), Ipv4Addr::new(203, 0, 113, 7)] {
        let frame = tagged(&host_frame(1, dst, 64), 42);
        let (act, _) = run(&mut a, LAN_IF, &frame, &ca);
        assert_eq!(act, Action::Drop(DropReason::VlanTagged), "to {dst}");
    }
    assert_eq!(ca.encapsulated.load(Ordering::Relaxed), 0);
    assert_eq!(ca.drops.get(DropReason::VlanTagged), 2);
    // ESP to B's outside address, on VLAN 7, whole or in fragments.
    let (act, wire) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64),
        &ca,
    );
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let esp = tagged(&at_b_outside(&wire[14..]), 7);
    assert_eq!(
        run(&mut b, WAN_IF, &esp, &cb).0,
        Action::Drop(DropReason::VlanTagged)
    );
    let (_, frags) = esp_fragments_at_b(&mut a, &ca, 1000);
    for f in &frags {
        assert_eq!(
            run(&mut b, WAN_IF, &tagged(f, 7), &cb).0,
            Action::Drop(DropReason::VlanTagged),
            "not queued for reassembly"
        );
    }
    assert_eq!(cb.drops.get(DropReason::VlanTagged), 1 + frags.len() as u64);
    assert_eq!(cb.decapsulated.load(Ordering::Relaxed), 0);
    assert_eq!(cb.reassembled.load(Ordering::Relaxed), 0);
    // The same ESP untagged is B's.
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&wire[14..]), &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
}

#[test]
fn a_ping_through_the_tunnel_to_the_peer_gateways_inside_address_is_dropped_as_for_gateway() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let (tx, resolve) = crossbeam_channel::bounded(4);
    b.resolve = Some(tx);
    // 198.19.2.1 is B's own inside address, inside A's crypto ACL.
    let sent = host_frame(1, Ipv4Addr::new(198, 19, 2, 1), 64);
    let (act, wire) = run(&mut a, LAN_IF, &sent, &ca);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&wire[14..]), &cb);
    assert_eq!(act, Action::Drop(DropReason::ForGateway));
    assert_eq!(cb.decapsulated.load(Ordering::Relaxed), 1);
    assert_eq!(cb.drops.get(DropReason::ForGateway), 1);
    assert_eq!(cb.drops.get(DropReason::NoNeighbour), 0);
    assert!(
        resolve.try_recv().is_err(),
        "no neighbour request for our own address"
    );
    // A host next to it is still reached.
    let (act, wire) = run(
        &mut a,
        LAN_IF,
        &host_frame(1, Ipv4Addr::new(198, 19, 2, 10), 64),
        &ca,
    );
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let (act, _) = run(&mut b, WAN_IF, &at_b_outside(&wire[14..]), &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
}

/// An ICMP "fragmentation needed" as a Linux router sends it: from
/// `router` to `to`, quoting up to 548 bytes of `quoted` (an IP packet),
/// in a frame to side 1's WAN MAC.
fn frag_needed(router: Ipv4Addr, to: Ipv4Addr, mtu: u16, quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![3, 4, 0, 0, 0, 0];
    icmp.extend_from_slice(&mtu.to_be_bytes());
    icmp.extend_from_slice(&quoted[..quoted.len().min(548)]);
    crate::wire::icmpv4::Packet::new_unchecked(&mut icmp[..]).fill_checksum();
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = ip_proto::ICMP;
    p[12..16].copy_from_slice(&router.octets());
    p[16..20].copy_from_slice(&to.octets());
    p.extend_from_slice(&icmp);
    ipv4::Packet::new_unchecked(&mut p[..]).fill_checksum();
    eth_frame(mac(0x12), mac(0xfe), ethernet::ethertype::IPV4, &p)
}

/// A router on the way to the peer whose link is smaller than ours says
/// so about our ESP (DF set, copied from the inner packet): the SA keeps
/// to that MTU from then on, so the inside sender gets "fragmentation
/// needed" with an inner MTU that fits it, instead of its packets
/// vanishing on the path (RFC 4301 §8.2, RFC 1191).
#[test]
fn fragmentation_needed_about_our_esp_lowers_the_sas_path_mtu() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let (act, wire) = run(&mut a, LAN_IF, &sized_host_frame(1400, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let esp = wire[14..].to_vec();
    let (router, me) = (Ipv4Addr::new(198, 18, 0, 254), Ipv4Addr::new(198, 18, 0, 1));
    let now = clock::now_secs();
    // Not believed: another SPI, a sequence number not sent yet, another
    // tunnel, a checksum that does not add up, an MTU of 0.
    let mut other_spi = esp.clone();
    other_spi[20..24].copy_from_slice(&0x1001u32.to_be_bytes());
    let mut ahead = esp.clone();
    ahead[24..28].copy_from_slice(&1000u32.to_be_bytes());
    let mut elsewhere = esp.clone();
    elsewhere[16..20].copy_from_slice(&[198, 18, 9, 9]);
    let mut bad_sum = frag_needed(router, me, 1200, &esp);
    bad_sum[14 + 20 + 9] ^= 1;
    for f in [
        frag_needed(router, me, 1200, &other_spi),
        frag_needed(router, me, 1200, &ahead),
        frag_needed(router, me, 1200, &elsewhere),
        frag_needed(router, me, 0, &esp),
    ] {
        let (act, _) = run(&mut a, WAN_IF, &f, &c);
        assert_eq!(act, Action::Drop(DropReason::PathMtuRefused));
    }
    let (act, _) = run(&mut a, WAN_IF, &bad_sum, &c);
    assert_ne!(
        act,
        Action::Drop(DropReason::PathMtuLearned),
        "bad checksum"
    );
    assert_eq!(a.sadb.outbound(0x1000).unwrap().path_mtu(now), None);
    // Believed: the SA now keeps to 1200.
    let (act, _) = run(&mut a, WAN_IF, &frag_needed(router, me, 1200, &esp), &c);
    assert_eq!(act, Action::Drop(DropReason::PathMtuLearned));
    assert!(!DropReason::PathMtuLearned.is_loss());
    let sa = a.sadb.outbound(0x1000).unwrap();
    assert_eq!(sa.path_mtu(now), Some(1200));
    let mtu = frag_needed_inner_mtu(&mut a, &c, 1400, 1200);
    let (act, _) = run(&mut a, LAN_IF, &sized_host_frame(mtu, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    // Without DF: fragmented before encryption to fit the path.
    let (act, _) = run(&mut a, LAN_IF, &sized_host_frame(1400, false), &c);
    assert!(matches!(act, Action::Fragment(_)), "{act:?}");
    // A larger MTU never raises it; a tiny one is taken as 576.
    let (act, _) = run(&mut a, WAN_IF, &frag_needed(router, me, 1400, &esp), &c);
    assert_eq!(act, Action::Drop(DropReason::PathMtuRefused));
    let (act, _) = run(&mut a, WAN_IF, &frag_needed(router, me, 68, &esp), &c);
    assert_eq!(act, Action::Drop(DropReason::PathMtuLearned));
    let sa = a.sadb.outbound(0x1000).unwrap();
    assert_eq!(sa.path_mtu(now), Some(576));
    // It ages out: the link's MTU is tried again.
    assert_eq!(sa.path_mtu(now + crate::sa::PATH_MTU_AGE_SECS + 16), None);
    assert_eq!(sa.path_mtu(now), None, "forgotten for good");
}

/// The same for UDP-encapsulated ESP (NAT-T): the router quotes the UDP
/// header from port 4500, then the SPI.
#[test]
fn fragmentation_needed_about_our_nat_t_esp_lowers_the_sas_path_mtu() {
    let encap = crate::api::UdpEncap {
        src_port: 4500,
        dst_port: 4500,
    };
    let mut a = gateway_with(1, 0x1000, 0x2000, Some(encap));
    let c = PipelineCounters::default();
    let (act, wire) = run(&mut a, LAN_IF, &sized_host_frame(1400, true), &c);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let (router, me) = (Ipv4Addr::new(198, 18, 0, 254), Ipv4Addr::new(198, 18, 0, 1));
    let f = frag_needed(router, me, 1280, &wire[14..]);
    let (act, _) = run(&mut a, WAN_IF, &f, &c);
    assert_eq!(act, Action::Drop(DropReason::PathMtuLearned));
    let sa = a.sadb.outbound(0x1000).unwrap();
    assert_eq!(sa.path_mtu(clock::now_secs()), Some(1280));
    // Only the UDP header quoted (an old router's 8 bytes): no SPI, not
    // believed.
    let f = frag_needed(router, me, 1200, &wire[14..14 + 28]);
    let (act, _) = run(&mut a, WAN_IF, &f, &c);
    assert_ne!(act, Action::Drop(DropReason::PathMtuLearned));
    assert_eq!(
        a.sadb.outbound(0x1000).unwrap().path_mtu(clock::now_secs()),
        Some(1280)
    );
}

const TUN_IF: u32 = 9;

/// The host behind B answers A's own inside address (198.19.1.1): B
/// encrypts it; returns the ESP as it reaches A's outside.
fn answer_to_a(b: &mut Tables, cb: &PipelineCounters) -> Vec<u8> {
    let (act, wire) = run(
        b,
        LAN_IF,
        &host_frame(2, Ipv4Addr::new(198, 19, 1, 1), 64),
        cb,
    );
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    eth_frame(mac(0x12), mac(0xfe), ethernet::ethertype::IPV4, &wire[14..])
}

/// Gives `t` a tunnel interface (a stand-in device) for crypto map entry
/// `tag`, holding `addr`.
fn with_tunnel(t: &mut Tables, tag: PolicyTag, addr: IpAddr) {
    let device = std::sync::Arc::new(crate::tunif::TunDevice::stand_in("Tunnel1", TUN_IF).unwrap());
    t.tunnels = TunnelPorts::new(vec![crate::tunif::TunnelPort { device, tag }]);
    t.iface_addrs.push((TUN_IF, addr));
    t.local.push(addr);
}

/// What the kernel sends into a tunnel interface, as the reader frames it:
/// a zeroed Ethernet header, then the packet from `src` to `dst`.
fn from_kernel(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8) -> Vec<u8> {
    let mut f = host_frame(1, dst, ttl);
    f[..12].fill(0);
    let mut ip = ipv4::Packet::new_unchecked(&mut f[14..]);
    ip.set_src_addr(src);
    ip.fill_checksum();
    f
}

/// Seeds 000/001: the gateway's own traffic through a VTI. What the
/// kernel routes into the tunnel interface is encrypted with the
/// interface's entry (its TTL untouched: the gateway is its source), and
/// the answer, decrypted, goes back into that interface, because the SPD
/// would protect the kernel's answer to it with that same entry.
#[test]
fn the_gateways_own_traffic_goes_through_its_tunnel_interface_both_ways() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    with_tunnel(&mut a, TAG, IpAddr::V4(Ipv4Addr::new(198, 18, 101, 1)));
    let (me, host) = (Ipv4Addr::new(198, 19, 1, 1), Ipv4Addr::new(198, 19, 2, 10));
    let (act, wire) = run(&mut a, TUN_IF, &from_kernel(me, host, 64), &ca);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    assert_eq!(ca.encapsulated.load(Ordering::Relaxed), 1);
    let (act, out) = run(&mut b, WAN_IF, &at_b_outside(&wire[14..]), &cb);
    assert_eq!(act, Action::Transmit { ifindex: LAN_IF });
    let ip = ipv4::Packet::new_checked(&out[14..]).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr(), ip.ttl()), (me, host, 63));
    // The host answers the gateway: B encrypts, A hands it to the kernel.
    let answer = host_frame(2, me, 64);
    let (act, wire) = run(&mut b, LAN_IF, &answer, &cb);
    assert_eq!(act, Action::Transmit { ifindex: WAN_IF });
    let mut back = wire[14..].to_vec();
    back = eth_frame(mac(0x12), mac(0xfe), ethernet::ethertype::IPV4, &back);
    let (act, packet) = run(&mut a, WAN_IF, &back, &ca);
    assert_eq!(act, Action::ToTunnel { ifindex: TUN_IF });
    let ip = ipv4::Packet::new_checked(&packet[..]).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (Ipv4Addr::new(198, 19, 2, 10), me)
    );
    assert!(ip.verify_checksum());
    assert_eq!(ca.drops.get(DropReason::ForGateway), 0);
}

/// Delivered only where the answer would go back through the tunnel: an
/// interface of another entry, or none, leaves the packet dropped as
/// `for-gateway` (handed to the kernel, its answer would leave in the
/// clear).
#[test]
fn a_decrypted_packet_for_the_gateway_whose_answer_no_tunnel_carries_is_dropped() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let other = PolicyTag { map: 7, seq: 65536 };
    with_tunnel(&mut a, other, IpAddr::V4(Ipv4Addr::new(198, 18, 101, 1)));
    let back = answer_to_a(&mut b, &cb);
    let (act, _) = run(&mut a, WAN_IF, &back, &ca);
    assert_eq!(act, Action::Drop(DropReason::ForGateway));
    assert_eq!(ca.drops.get(DropReason::ForGateway), 1);
}

/// What the kernel sends into a tunnel interface that the tunnel cannot
/// carry: multicast (its MLD reports, not a loss), an entry without SPD
/// rules, an entry not negotiated yet (acquire, as for inside traffic,
/// with the interface's entry and the packet's flow), a damaged header.
#[test]
fn what_a_tunnel_interface_cannot_carry_is_dropped_and_counted() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    with_tunnel(&mut a, TAG, IpAddr::V4(Ipv4Addr::new(198, 18, 101, 1)));
    let me = Ipv4Addr::new(198, 19, 1, 1);
    let (act, _) = run(
        &mut a,
        TUN_IF,
        &from_kernel(me, Ipv4Addr::new(224, 0, 0, 22), 1),
        &c,
    );
    assert_eq!(act, Action::Drop(DropReason::TunnelMulticast));
    assert!(!DropReason::TunnelMulticast.is_loss());
    let mut bad = from_kernel(me, Ipv4Addr::new(198, 19, 2, 10), 64);
    bad[14 + 10] ^= 0xff;
    assert_eq!(
        run(&mut a, TUN_IF, &bad, &c).0,
        Action::Drop(DropReason::BadIpChecksum)
    );
    // Not negotiated yet: the rules of the entry have no SA.
    let (tx, acquires) = crossbeam_channel::bounded(4);
    a.acquire = Some(tx);
    let rules: Vec<SpdRule> = a
        .spd
        .rules()
        .iter()
        .map(|r| match r.action {
            PolicyAction::Protect { map, .. } => SpdRule {
                action: PolicyAction::Protect { sa: None, map },
                ..*r
            },
            _ => *r,
        })
        .collect();
    a.spd = Spd::new(rules);
    // Any destination the kernel routed into the interface is the
    // tunnel's, even one outside the entry's rules.
    let elsewhere = Ipv4Addr::new(198, 18, 101, 2);
    let (act, _) = run(&mut a, TUN_IF, &from_kernel(me, elsewhere, 64), &c);
    assert_eq!(act, Action::Drop(DropReason::NoOutboundSa));
    let acq = acquires.try_recv().unwrap();
    assert_eq!(acq.tag, TAG);
    assert_eq!(
        (acq.flow.src, acq.flow.dst),
        (IpAddr::V4(me), IpAddr::V4(elsewhere))
    );
    // An entry with no rule at all.
    a.spd = Spd::new(Vec::new());
    let (act, _) = run(&mut a, TUN_IF, &from_kernel(me, elsewhere, 64), &c);
    assert_eq!(act, Action::Drop(DropReason::TunnelNoPolicy));
    assert_eq!(c.drops.get(DropReason::TunnelNoPolicy), 1);
    assert_eq!(c.encapsulated.load(Ordering::Relaxed), 0);
}

/// Link-local to link-local (`ping FE80::23:3` over Tunnel23): delivered
/// to the one tunnel interface holding the destination, whatever the
/// SPD says; the same address on two interfaces is ambiguous.
#[test]
fn link_local_traffic_goes_to_the_tunnel_interface_holding_the_address() {
    let mut t = gateway(1, 0x1000, 0x2000);
    let mine: IpAddr = "fe80::23:2".parse().unwrap();
    with_tunnel(&mut t, TAG, mine);
    let mut p = inner_v6(16);
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr("fe80::23:3".parse().unwrap());
        ip.set_dst_addr("fe80::23:2".parse().unwrap());
    }
    assert_eq!(tunnel_for_gateway(&t, &p, mine), Some((TUN_IF, TAG)));
    // From a global address, the SPD decides (no rule for fd00:9::/64).
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr("fd00:9::1".parse().unwrap());
    }
    assert_eq!(tunnel_for_gateway(&t, &p, mine), None);
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr("fe80::23:3".parse().unwrap());
    }
    t.iface_addrs.push((LAN_IF, mine));
    assert_eq!(
        tunnel_for_gateway(&t, &p, mine),
        Some((TUN_IF, TAG)),
        "a LAN is not a tunnel"
    );
    t.iface_addrs.push((TUN_IF + 1, mine));
    let mut ports: Vec<crate::tunif::TunnelPort> = t.tunnels.iter().cloned().collect();
    ports.push(crate::tunif::TunnelPort {
        device: std::sync::Arc::new(
            crate::tunif::TunDevice::stand_in("Tunnel2", TUN_IF + 1).unwrap(),
        ),
        tag: PolicyTag { map: 5, seq: 65536 },
    });
    t.tunnels = TunnelPorts::new(ports);
    assert_eq!(tunnel_for_gateway(&t, &p, mine), None, "on two tunnels");
}

/// The kernel's own DF packet too big for the tunnel: the "fragmentation
/// needed" goes back into the tunnel interface, so the kernel learns the
/// MTU as a host behind an inside interface would.
#[test]
fn the_kernels_packet_too_big_for_the_tunnel_gets_fragmentation_needed_through_the_interface() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let c = PipelineCounters::default();
    let tunnel_addr = Ipv4Addr::new(198, 18, 101, 1);
    with_tunnel(&mut a, TAG, IpAddr::V4(tunnel_addr));
    let mut f = sized_host_frame(1480, true);
    f[..12].fill(0);
    let (act, back) = run(&mut a, TUN_IF, &f, &c);
    assert_eq!(act, Action::ToTunnel { ifindex: TUN_IF });
    let ip = ipv4::Packet::new_checked(&back[..]).unwrap();
    assert_eq!(ip.src_addr(), tunnel_addr);
    assert_eq!(ip.dst_addr(), Ipv4Addr::new(198, 19, 1, 10));
    assert_eq!((back[20], back[21]), (3, 4), "fragmentation needed");
    assert_eq!(c.encapsulated.load(Ordering::Relaxed), 0);
}

/// A VTI's SAs take any inner source, so a packet is delivered into a
/// tunnel interface only if that interface's own peer sent it: here the
/// SPD gives the answer to a VTI whose SA goes to another peer, and the
/// packet decrypted from side 2 stays `for-gateway`.
#[test]
fn another_peers_packet_is_not_delivered_into_a_tunnel_interface() {
    let (mut a, mut b) = (gateway(1, 0x1000, 0x2000), gateway(2, 0x2000, 0x1000));
    let (ca, cb) = (PipelineCounters::default(), PipelineCounters::default());
    let vti = PolicyTag { map: 7, seq: 65536 };
    let (enc, auth) = (EncAlg::AesCbc128, AuthAlg::HmacSha1_96);
    let elsewhere = SaParams {
        spi: 0x3000,
        direction: Direction::Outbound,
        enc,
        auth,
        keys: keys(enc, auth),
        mode: EspMode::Tunnel {
            local: IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)),
            remote: IpAddr::V4(Ipv4Addr::new(198, 18, 5, 1)),
        },
        udp_encap: None,
        esn: false,
        replay_window: 64,
        lifetime: Lifetime::default(),
        selectors: Vec::new(),
    };
    a.sadb.install(&elsewhere, 0).unwrap();
    let mut rules = vec![SpdRule {
        selector: TrafficSelector {
            src: IpPrefix::any_v4(),
            dst: "198.19.2.0/24".parse().unwrap(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect {
            sa: Some(0x3000),
            map: vti,
        },
    }];
    rules.extend_from_slice(a.spd.rules());
    a.spd = Spd::new(rules);
    with_tunnel(&mut a, vti, IpAddr::V4(Ipv4Addr::new(198, 18, 101, 1)));
    let back = answer_to_a(&mut b, &cb);
    let (act, _) = run(&mut a, WAN_IF, &back, &ca);
    assert_eq!(act, Action::Drop(DropReason::ForGateway));
    // The same packet through the VTI of the peer that sent it is taken.
    with_tunnel(&mut a, TAG, IpAddr::V4(Ipv4Addr::new(198, 18, 101, 1)));
    let back = answer_to_a(&mut b, &cb);
    a.spd = Spd::new(a.spd.rules()[1..].to_vec());
    assert_eq!(
        run(&mut a, WAN_IF, &back, &ca).0,
        Action::ToTunnel { ifindex: TUN_IF }
    );
}

/// RFC 4291 §2.5.6: nothing link-local is forwarded from the inside, nor
/// put into a tunnel (a VTI's fe80::/10 rule is for the gateway's own).
#[test]
fn link_local_traffic_from_the_inside_is_not_forwarded_or_encrypted() {
    let mut a = gateway(1, 0x1000, 0x2000);
    let ll: IpPrefix = "fe80::/10".parse().unwrap();
    let mut rules = vec![SpdRule {
        selector: TrafficSelector {
            src: ll,
            dst: ll,
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect {
            sa: Some(0x1000),
            map: TAG,
        },
    }];
    rules.extend_from_slice(a.spd.rules());
    a.spd = Spd::new(rules);
    let c = PipelineCounters::default();
    for (src, dst) in [
        ("fe80::10", "fe80::23:3"),
        ("fd00:1::10", "fe80::1"),
        ("fe80::10", "fd00:2::10"),
    ] {
        let mut p = inner_v6(16);
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(src.parse().unwrap());
        ip.set_dst_addr(dst.parse().unwrap());
        let f = eth_frame(mac(0x11), mac(0x1a), ethernet::ethertype::IPV6, &p);
        assert_eq!(
            run(&mut a, LAN_IF, &f, &c).0,
            Action::Drop(DropReason::NoRoute),
            "{src} -> {dst}"
        );
    }
    assert_eq!(c.encapsulated.load(Ordering::Relaxed), 0);
}
