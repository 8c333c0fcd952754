//! Packets, keys and SA pairs for tests, fuzzing and benchmarks: one home
//! so the unit tests, the scapy cross-check and `espada-bench` build the
//! same traffic. Not part of the gateway's API.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::api::{Direction, EspMode, Lifetime, SaKeys, SaParams, UdpEncap};
use crate::counters::{DropCounters, DropReason};
use crate::crypto::{AuthAlg, EncAlg};
use crate::esp::{decap, encap_batch, Decapped, PacketBuf};
use crate::sa::{OutboundSa, Sadb};
use crate::wire::{ip_proto, ipv4, ipv6};

pub const HEADROOM: usize = 128;
pub const FRAME: usize = 2048;

pub const V4_A: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const V4_B: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const V6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
pub const V6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

/// An IPv4/UDP packet from 198.19.1.1 to 198.19.2.2 with `n` payload bytes.
pub fn inner_v4(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; ipv4::HEADER_LEN + 8 + n];
    let repr = ipv4::Repr {
        src_addr: Ipv4Addr::new(198, 19, 1, 1),
        dst_addr: Ipv4Addr::new(198, 19, 2, 2),
        protocol: ip_proto::UDP,
        payload_len: 8 + n,
        ttl: 63,
        dscp_ecn: 0xb8,
        ident: 7,
        dont_frag: true,
    };
    repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
    let udp = &mut buf[ipv4::HEADER_LEN..];
    udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5678u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    for (i, b) in udp[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    buf
}

/// An IPv6/UDP packet from fd00:1::1 to fd00:2::2 with `n` payload bytes.
pub fn inner_v6(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; ipv6::HEADER_LEN + 8 + n];
    let repr = ipv6::Repr {
        src_addr: Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1),
        dst_addr: Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2),
        next_header: ip_proto::UDP,
        payload_len: 8 + n,
        hop_limit: 63,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..]));
    let udp = &mut buf[ipv6::HEADER_LEN..];
    udp[0..2].copy_from_slice(&1234u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5678u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    for (i, b) in udp[8..].iter_mut().enumerate() {
        *b = (i * 3) as u8;
    }
    buf
}

pub fn keys(enc: EncAlg, auth: AuthAlg) -> SaKeys {
    SaKeys {
        enc: (0..enc.key_len()).map(|i| (i * 7 + 1) as u8).collect(),
        auth: (0..auth.key_len()).map(|i| (i * 5 + 3) as u8).collect(),
    }
}

/// A matching outbound (gateway A) and inbound (gateway B) SA pair.
pub fn sa_pair(
    enc: EncAlg,
    auth: AuthAlg,
    mode: EspMode,
    udp: bool,
    esn: bool,
    window: u32,
) -> (SaParams, SaParams) {
    let out = SaParams {
        spi: 0x1234_5678,
        direction: Direction::Outbound,
        enc,
        auth,
        keys: keys(enc, auth),
        mode,
        udp_encap: udp.then(UdpEncap::default),
        esn,
        replay_window: 0,
        lifetime: Lifetime::default(),
        selectors: Vec::new(),
    };
    let mut inb = out.clone();
    inb.direction = Direction::Inbound;
    inb.replay_window = window;
    inb.mode = match mode {
        EspMode::Tunnel { local, remote } => EspMode::Tunnel {
            local: remote,
            remote: local,
        },
        EspMode::Transport => EspMode::Transport,
    };
    (out, inb)
}

/// An IPv4/UDP packet (DF set, UDP checksum 0) carrying `payload`.
pub fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = inner_v4(payload.len());
    {
        let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
        ip.fill_checksum();
    }
    set_udp(&mut p[ipv4::HEADER_LEN..], sport, dport, payload);
    p
}

/// An IPv6/UDP packet (UDP checksum 0) carrying `payload`.
pub fn udp_v6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = inner_v6(payload.len());
    {
        let mut ip = ipv6::Packet::new_unchecked(&mut p[..]);
        ip.set_src_addr(src);
        ip.set_dst_addr(dst);
    }
    set_udp(&mut p[ipv6::HEADER_LEN..], sport, dport, payload);
    p
}

fn set_udp(udp: &mut [u8], sport: u16, dport: u16, payload: &[u8]) {
    udp[0..2].copy_from_slice(&sport.to_be_bytes());
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    udp[8..].copy_from_slice(payload);
}

/// An IKEv1 message as a TED probe starts: a 28-byte ISAKMP header
/// (version 0x10, Identity Protection, responder cookie zero) and `extra`
/// bytes standing for its payloads; the length field counts them all.
pub fn isakmp_v1(extra: usize) -> Vec<u8> {
    let mut m = vec![0u8; 28 + extra];
    m[..8].copy_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    m[16] = 1; // next payload: SA
    m[17] = 0x10; // version 1.0
    m[18] = 243; // Espada's TED exchange (private use)
    m[24..28].copy_from_slice(&((28 + extra) as u32).to_be_bytes());
    for (i, b) in m[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    m
}

/// A `FRAME`-byte buffer holding `packet` at `HEADROOM`, as a received
/// frame would.
pub fn framed(packet: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; FRAME];
    frame[HEADROOM..HEADROOM + packet.len()].copy_from_slice(packet);
    frame
}

/// The batch over `frames`, which [`framed`] built from `packets` in
/// order: one `PacketBuf` per frame, covering its packet.
pub fn packet_bufs<'a, P: AsRef<[u8]>>(
    frames: &'a mut [Vec<u8>],
    packets: &[P],
) -> Vec<PacketBuf<'a>> {
    frames
        .iter_mut()
        .zip(packets)
        .map(|(f, p)| PacketBuf::new(f, HEADROOM, p.as_ref().len()))
        .collect()
}

/// Copies `inner` into a frame with headroom and encapsulates it.
pub fn encap_one(sa: &OutboundSa, inner: &[u8]) -> Result<Vec<u8>, DropReason> {
    let mut frame = framed(inner);
    let mut pkts = [PacketBuf::new(&mut frame, HEADROOM, inner.len())];
    encap_batch(sa, &mut pkts);
    let p = &pkts[0];
    p.verdict?;
    Ok(p.data().to_vec())
}

/// Decapsulates an outer packet; returns the outcome and the inner bytes.
pub fn decap_one(
    db: &Sadb,
    outer: &[u8],
    global: &DropCounters,
) -> (Result<Decapped, DropReason>, Vec<u8>) {
    let mut frame = vec![0u8; FRAME.max(outer.len() + HEADROOM)];
    frame[HEADROOM..HEADROOM + outer.len()].copy_from_slice(outer);
    let mut p = PacketBuf::new(&mut frame, HEADROOM, outer.len());
    let r = decap(db, &mut p, global);
    let data = p.data().to_vec();
    (r, data)
}

/// Tunnel mode between the lab's two gateway addresses.
pub fn tunnel(v6: bool) -> EspMode {
    if v6 {
        EspMode::Tunnel {
            local: IpAddr::V6(V6_A),
            remote: IpAddr::V6(V6_B),
        }
    } else {
        EspMode::Tunnel {
            local: IpAddr::V4(V4_A),
            remote: IpAddr::V4(V4_B),
        }
    }
}

/// Every valid (encryption, integrity) pairing.
pub fn all_suites() -> Vec<(EncAlg, AuthAlg)> {
    let mut v = Vec::new();
    for enc in EncAlg::ALL {
        if enc.is_aead() {
            v.push((enc, AuthAlg::None));
        } else {
            for auth in AuthAlg::ALL {
                v.push((enc, auth));
            }
        }
    }
    v
}

/// `packet` (IPv4, DF clear) cut by the pipeline's fragmenter into
/// fragments of at most `max_ip_len` bytes, in order. Panics if it cannot
/// be cut (tests only).
pub fn fragments_v4(packet: &[u8], max_ip_len: usize) -> Vec<Vec<u8>> {
    use crate::pipeline::{fragment_ipv4, FragmentPlan};
    let plan = FragmentPlan::new(packet, max_ip_len).expect("fragmentable");
    let mut bufs = vec![vec![0u8; max_ip_len]; plan.count()];
    let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
    assert_eq!(fragment_ipv4(packet, max_ip_len, &mut out), Ok(plan));
    bufs.iter()
        .enumerate()
        .map(|(i, b)| b[..plan.fragment_len(i).expect("planned")].to_vec())
        .collect()
}
