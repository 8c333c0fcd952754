//! NAT on arbitrary packets, both ways, against a table that already holds
//! translations (seed 003's rules: 198.19.2.0/24 PATed to 198.18.1.1,
//! 198.19.1.0/24 exempt; a tiny port range so exhaustion and reuse happen).
//!
//! The first input byte steers: bit 0 makes the packet a well-formed IPv4
//! packet from the inside (version, lengths, fragment fields, source and
//! every checksum fixed up), bit 1 points it at the outside address instead,
//! bits 2-7 advance the clock. Checked: no panic; the buffer length and
//! the bytes after Total Length never change; a packet that had valid
//! checksums still has them after translation (incremental updates agree
//! with the data); and the answer to a translated TCP, UDP or echo packet
//! comes back to exactly the inside host and port that sent it.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use dataplane::api::{NatAction, NatRule};
use dataplane::nat::{NatRules, NatTable, NatVerdict};
use dataplane::spd::{PortRange, TrafficSelector};
use dataplane::wire::{checksum, icmpv4, ip_proto, ipv4, udp};
use libfuzzer_sys::fuzz_target;

const OUT_IF: u32 = 2;
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);

fn rules() -> &'static NatRules {
    static RULES: OnceLock<NatRules> = OnceLock::new();
    RULES.get_or_init(compile_rules)
}

fn compile_rules() -> NatRules {
    let selector = |src: &str, dst: &str| TrafficSelector {
        src: src.parse().expect("prefix"),
        dst: dst.parse().expect("prefix"),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    NatRules::compile(&[
        NatRule {
            selector: selector("198.19.2.0/24", "198.19.1.0/24"),
            action: NatAction::Exempt,
        },
        NatRule {
            selector: selector("198.19.2.0/24", "0.0.0.0/0"),
            action: NatAction::Pat {
                outside_ifindex: OUT_IF,
                outside_addr: IpAddr::V4(OUTSIDE),
            },
        },
    ])
    .expect("valid rules")
}

fn tcp_sum(src: &Ipv4Addr, dst: &Ipv4Addr, seg: &[u8]) -> u16 {
    checksum::combine(&[
        checksum::pseudo_header_v4(src, dst, ip_proto::TCP, seg.len() as u32),
        checksum::data(seg),
    ])
}

/// Makes `p` a well-formed IPv4 packet with valid checksums (as far as
/// its length allows).
fn fix_up(p: &mut [u8], towards_outside: bool) {
    if p.len() < ipv4::HEADER_LEN {
        return;
    }
    p[0] = 0x45;
    let len = p.len().min(u16::MAX as usize) as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[6] &= 0x40; // no MF, offset 0
    p[7] = 0;
    if towards_outside {
        p[16..20].copy_from_slice(&OUTSIDE.octets());
    } else {
        p[12] = 198;
        p[13] = 19;
        p[14] = 2;
    }
    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
    ip.fill_checksum();
    let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
    let seg = &mut p[ipv4::HEADER_LEN..usize::from(len)];
    match proto {
        ip_proto::TCP if seg.len() >= 20 => {
            seg[16..18].fill(0);
            let sum = !tcp_sum(&src, &dst, seg);
            seg[16..18].copy_from_slice(&sum.to_be_bytes());
        }
        ip_proto::UDP if seg.len() >= udp::HEADER_LEN => {
            let ulen = seg.len() as u16;
            seg[4..6].copy_from_slice(&ulen.to_be_bytes());
            if seg[6..8] != [0, 0] {
                udp::Packet::new_unchecked(&mut seg[..]).fill_checksum_v4(&src, &dst);
            }
        }
        ip_proto::ICMP if seg.len() >= icmpv4::HEADER_LEN => {
            icmpv4::Packet::new_unchecked(&mut seg[..]).fill_checksum();
        }
        _ => {}
    }
}

/// Whether every checksum of a well-formed packet verifies.
fn checksums_valid(p: &[u8]) -> bool {
    let Ok(ip) = ipv4::Packet::new_checked(p) else {
        return false;
    };
    if !ip.verify_checksum() {
        return false;
    }
    let (src, dst, seg) = (ip.src_addr(), ip.dst_addr(), ip.payload());
    match ip.protocol() {
        ip_proto::TCP if seg.len() >= 20 => tcp_sum(&src, &dst, seg) == 0xffff,
        ip_proto::UDP if seg.len() >= udp::HEADER_LEN => {
            udp::Packet::new_checked(seg).is_ok_and(|u| u.verify_checksum_v4(&src, &dst))
        }
        ip_proto::ICMP if seg.len() >= icmpv4::HEADER_LEN => {
            icmpv4::Packet::new_unchecked(seg).verify_checksum()
        }
        _ => true,
    }
}

/// (source, source port or echo id) of a TCP/UDP packet or echo request.
fn source(p: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let ip = ipv4::Packet::new_checked(p).ok()?;
    let seg = ip.payload();
    match (ip.protocol(), seg) {
        (ip_proto::TCP, [a, b, ..]) if seg.len() >= 20 => {
            Some((ip.src_addr(), u16::from_be_bytes([*a, *b])))
        }
        (ip_proto::UDP, [a, b, ..]) if seg.len() >= 8 => {
            Some((ip.src_addr(), u16::from_be_bytes([*a, *b])))
        }
        (ip_proto::ICMP, [8, 0, _, _, a, b, ..]) => {
            Some((ip.src_addr(), u16::from_be_bytes([*a, *b])))
        }
        _ => None,
    }
}

/// Turns a translated packet into the remote end's answer in place:
/// addresses and ports swapped (which keeps every checksum), an echo
/// request turned into a reply. Returns where the answer's destination
/// port (or identifier) sits.
fn answer(p: &mut [u8]) -> Option<usize> {
    let hl = ipv4::Packet::new_checked(&p[..]).ok()?.header_len();
    let (a, b) = p.split_at_mut(16);
    a[12..16].swap_with_slice(&mut b[..4]);
    match p[9] {
        ip_proto::TCP | ip_proto::UDP => {
            let (s, d) = p[hl..].split_at_mut(2);
            s.swap_with_slice(&mut d[..2]);
            Some(hl + 2)
        }
        _ => {
            p[hl] = icmpv4::message::ECHO_REPLY;
            let sum = u16::from_be_bytes([p[hl + 2], p[hl + 3]]);
            let sum = checksum::update(sum, 0x0800, 0x0000);
            p[hl + 2..hl + 4].copy_from_slice(&sum.to_be_bytes());
            Some(hl + 4)
        }
    }
}

/// A UDP packet from inside host `host` and `port` to a DNS server.
fn seed_packet(host: u8, port: u16) -> [u8; 28] {
    let mut p = [0u8; 28];
    let ip = ipv4::Repr {
        src_addr: Ipv4Addr::new(198, 19, 2, host),
        dst_addr: Ipv4Addr::new(198, 18, 99, 7),
        protocol: ip_proto::UDP,
        payload_len: udp::HEADER_LEN,
        ttl: 64,
        dscp_ecn: 0,
        ident: 0,
        dont_frag: true,
    };
    ip.emit(&mut ipv4::Packet::new_unchecked(&mut p[..]));
    let udp = udp::Repr {
        src_port: port,
        dst_port: 53,
        payload_len: 0,
    };
    udp.emit(&mut udp::Packet::new_unchecked(&mut p[ipv4::HEADER_LEN..]));
    p
}

fuzz_target!(|data: &[u8]| {
    let Some((&steer, rest)) = data.split_first() else {
        return;
    };
    let rules = rules();
    let mut nat = NatTable::new(8, 20_000..=20_007).expect("valid table");
    // Existing state: a few translations to find, reuse or collide with.
    for (host, port) in [(10, 20_001), (11, 7), (10, 20_002)] {
        let _ = nat.translate_outbound(rules, &mut seed_packet(host, port), OUT_IF, 0);
    }
    let now = u64::from(steer >> 2) * 60;
    let mut packet = rest.to_vec();
    let fixed = steer & 1 != 0;
    if fixed {
        fix_up(&mut packet, steer & 2 != 0);
    }
    let valid_before = fixed && checksums_valid(&packet);
    let end = ipv4::Packet::new_checked(&packet[..])
        .map_or(packet.len(), |ip| usize::from(ip.total_len()));

    let mut inbound = packet.clone();
    let v = nat.translate_inbound(rules, &mut inbound, OUT_IF, now);
    assert_eq!(inbound.len(), packet.len());
    assert_eq!(inbound[end..], packet[end..]);
    if v == NatVerdict::Translated && valid_before {
        assert!(
            checksums_valid(&inbound),
            "inbound translation broke a checksum"
        );
    }

    let mut outbound = packet.clone();
    let v = nat.translate_outbound(rules, &mut outbound, OUT_IF, now);
    assert_eq!(outbound.len(), packet.len());
    assert_eq!(outbound[end..], packet[end..]);
    if v != NatVerdict::Translated {
        return;
    }
    if valid_before {
        assert!(
            checksums_valid(&outbound),
            "outbound translation broke a checksum"
        );
    }
    // The answer finds its way back to the sender.
    let Some(sender) = source(&packet) else {
        return;
    };
    let Some(port_at) = answer(&mut outbound) else {
        return;
    };
    let v = nat.translate_inbound(rules, &mut outbound, OUT_IF, now);
    assert_eq!(
        v,
        NatVerdict::Translated,
        "the answer to a translated packet"
    );
    let ip = ipv4::Packet::new_checked(&outbound[..]).expect("still IPv4");
    let port = u16::from_be_bytes([outbound[port_at], outbound[port_at + 1]]);
    assert_eq!((ip.dst_addr(), port), sender);
    if valid_before {
        assert!(
            checksums_valid(&outbound),
            "answer translation broke a checksum"
        );
    }
});
