//! The XDP steering program, run by the kernel: every rule is checked with
//! `BPF_PROG_TEST_RUN` on a crafted frame (the verdict and the rule's
//! counter), with real AF_XDP sockets in the XSKMAP so a redirect really
//! finds its socket; and the loader attaches, detaches and cleans up after
//! a crashed dataplane on veths in a test namespace.
//!
//! Root only (namespaces, BPF); addresses from 198.18.0.0/15 and fd00::/8.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use common::{require_root, sh, NetNs};
use dataplane::io::xdp::{
    object_bytes, AttachMode, EspSteering, SteerRule, XdpAction, XdpError, XdpMode, XdpSteer,
    PROGRAM_NAME,
};
use dataplane::io::xsk::{BindMode, Umem, XskSocket};
use dataplane::route::PortRole;

// ---- Addresses ----

const WAN_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const WAN_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const LAN_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const LAN_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
const HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
const HOST_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 10);
const REMOTE_V4: Ipv4Addr = Ipv4Addr::new(198, 19, 2, 2);
const REMOTE_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 2);

const GW_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const BROADCAST: [u8; 6] = [0xff; 6];

const ESP: u8 = 50;
const UDP: u8 = 17;
const TCP: u8 = 6;
const ICMP: u8 = 1;
const ICMPV6: u8 = 58;

// ---- Frame builders ----

fn eth_hdr(dst: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// An Ethernet frame, padded to the 60-byte minimum as a NIC delivers it.
fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = eth_hdr(dst, ethertype);
    f.extend_from_slice(payload);
    f.resize(f.len().max(60), 0);
    f
}

/// The same with one 802.1Q tag (VLAN 42).
fn eth_vlan(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = eth_hdr(dst, 0x8100);
    f.extend_from_slice(&42u16.to_be_bytes());
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f.resize(f.len().max(64), 0);
    f
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 with `options` (a multiple of four bytes) and the flags/fragment
/// offset field `frag`.
fn ipv4_full(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    options: &[u8],
    frag: u16,
    payload: &[u8],
) -> Vec<u8> {
    let hl = 20 + options.len();
    let mut p = vec![0x40 | (hl / 4) as u8, 0];
    p.extend_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(options);
    let c = checksum(&p);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_full(src, dst, proto, &[], 0x4000, payload)
}

/// IPv6; `next` names the first header in `payload`.
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// An IPv6 hop-by-hop or destination options header (8 bytes, PadN).
fn ext_opts(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next, 0, 1, 4, 0, 0, 0, 0];
    h.extend_from_slice(rest);
    h
}

/// An IPv6 fragment header at `offset` (8-byte units) with M = `more`.
fn ext_frag(next: u8, offset: u16, more: bool, rest: &[u8]) -> Vec<u8> {
    let mut h = vec![next, 0];
    h.extend_from_slice(&(offset << 3 | u16::from(more)).to_be_bytes());
    h.extend_from_slice(&0xabcd_0001u32.to_be_bytes());
    h.extend_from_slice(rest);
    h
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// An ESP packet: SPI, sequence number and 32 bytes standing for IV,
/// ciphertext and ICV.
fn esp(spi: u32) -> Vec<u8> {
    let mut e = spi.to_be_bytes().to_vec();
    e.extend_from_slice(&1u32.to_be_bytes());
    e.extend((0..32u8).map(|i| i.wrapping_mul(37)));
    e
}

/// An IKE message behind the non-ESP marker (RFC 3948 §2.2).
fn ike_marked() -> Vec<u8> {
    let mut m = vec![0, 0, 0, 0];
    m.extend_from_slice(&[0x11; 28]);
    m
}

fn ipv4_frame(dst_mac: [u8; 6], src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    eth(dst_mac, 0x0800, &ipv4(src, dst, proto, l4))
}

fn ipv6_frame(dst_mac: [u8; 6], src: Ipv6Addr, dst: Ipv6Addr, next: u8, l4: &[u8]) -> Vec<u8> {
    eth(dst_mac, 0x86dd, &ipv6(src, dst, next, l4))
}

/// An ARP request for `target`.
fn arp(target: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&PEER_MAC);
    a.extend_from_slice(&PEER_V4.octets());
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target.octets());
    eth(BROADCAST, 0x0806, &a)
}

/// A neighbour solicitation for `target`, to its solicited-node group.
fn neighbour_solicitation(src: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    let mac = [0x33, 0x33, 0xff, t[13], t[14], t[15]];
    ipv6_frame(mac, src, group, ICMPV6, &icmp)
}

// ---- The lab: a namespace with veths, the program loaded, real sockets ----

struct Lab {
    // Drop order matters: the program and sockets go before the UMEM
    // they use, and everything before the namespace is deleted.
    steer: XdpSteer,
    socks: Vec<XskSocket>,
    _umems: [Umem; 2],
    wan: u32,
    lan: u32,
    /// Inside interface with a role but no socket registered.
    spare: u32,
    /// No role at all.
    other: u32,
    ns: NetNs,
}

impl Lab {
    fn new(tag: &str) -> Option<Lab> {
        if !require_root() {
            return None;
        }
        let ns = NetNs::new(tag);
        for (a, b) in [
            ("wan0", "wan1"),
            ("lan0", "lan1"),
            ("spr0", "spr1"),
            ("oth0", "oth1"),
        ] {
            ns.run(&format!(
                "ip link add {a} type veth peer name {b} && ip link set {a} up && ip link set {b} up"
            ));
        }
        let (wan, lan, spare, other) = (
            ns.ifindex("wan0"),
            ns.ifindex("lan0"),
            ns.ifindex("spr0"),
            ns.ifindex("oth0"),
        );
        ns.enter();

        let mut steer = XdpSteer::load().expect("load the steering program");
        assert_eq!(steer.set_interface(wan, PortRole::Outside).expect("wan"), 0);
        assert_eq!(steer.set_interface(lan, PortRole::Inside).expect("lan"), 1);
        assert_eq!(
            steer.set_interface(spare, PortRole::Inside).expect("spare"),
            2
        );
        for a in [
            IpAddr::V4(WAN_V4),
            IpAddr::V6(WAN_V6),
            IpAddr::V4(LAN_V4),
            IpAddr::V6(LAN_V6),
        ] {
            steer.add_local(a).expect("add local");
        }
        // One UMEM per socket: the program only needs bound sockets to
        // redirect to, and a socket sharing a UMEM may not pass bind flags.
        let umems = [Umem::new(64).expect("umem"), Umem::new(64).expect("umem")];
        let wan_sock =
            XskSocket::new(&umems[0], None, wan, 0, 64, BindMode::Copy).expect("wan xsk");
        let lan_sock =
            XskSocket::new(&umems[1], None, lan, 0, 64, BindMode::Copy).expect("lan xsk");
        steer
            .register_xsk(wan, 0, wan_sock.fd())
            .expect("register wan");
        steer
            .register_xsk(lan, 0, lan_sock.fd())
            .expect("register lan");
        Some(Lab {
            steer,
            socks: vec![wan_sock, lan_sock],
            _umems: umems,
            wan,
            lan,
            spare,
            other,
            ns,
        })
    }

    /// Runs `frame` as received on queue 0 of `ifindex` and checks both the
    /// verdict and that exactly the expected rules counted it.
    fn expect(
        &self,
        what: &str,
        ifindex: u32,
        frame: &[u8],
        action: XdpAction,
        rules: &[SteerRule],
    ) {
        let before = self.steer.counters().expect("counters");
        let got = self
            .steer
            .test_run(frame, ifindex, 0)
            .unwrap_or_else(|e| panic!("{what}: test run failed: {e}"));
        let after = self.steer.counters().expect("counters");
        assert_eq!(got, action, "{what}: verdict");
        for rule in SteerRule::ALL {
            let want = u64::from(rules.contains(&rule));
            assert_eq!(
                after.get(rule) - before.get(rule),
                want,
                "{what}: counter {}",
                rule.name()
            );
        }
    }
}

use SteerRule as R;
use XdpAction::{Pass, Redirect};

#[test]
fn outside_esp_to_the_gateway_goes_to_the_dataplane_in_every_encapsulation() {
    let Some(lab) = Lab::new("xdp-out-esp") else {
        return;
    };
    let w = lab.wan;
    lab.expect(
        "ESP over IPv4",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, ESP, &esp(0x1000)),
        Redirect,
        &[R::Esp],
    );
    lab.expect(
        "ESP over IPv6",
        w,
        &ipv6_frame(GW_MAC, PEER_V6, WAN_V6, ESP, &esp(0x1001)),
        Redirect,
        &[R::Esp],
    );
    lab.expect(
        "ESP over IPv6 behind hop-by-hop and destination options",
        w,
        &ipv6_frame(
            GW_MAC,
            PEER_V6,
            WAN_V6,
            0,
            &ext_opts(60, &ext_opts(ESP, &esp(0x1002))),
        ),
        Redirect,
        &[R::Esp],
    );
    lab.expect(
        "ESP in a VLAN-tagged frame",
        w,
        &eth_vlan(GW_MAC, 0x0800, &ipv4(PEER_V4, WAN_V4, ESP, &esp(0x1003))),
        Redirect,
        &[R::Esp],
    );
    lab.expect(
        "UDP-encapsulated ESP (non-zero SPI on 4500)",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, UDP, &udp(4500, 4500, &esp(0x1004))),
        Redirect,
        &[R::NattEsp],
    );
    lab.expect(
        "UDP-encapsulated ESP from a NATed source port, over IPv6",
        w,
        &ipv6_frame(
            GW_MAC,
            PEER_V6,
            WAN_V6,
            UDP,
            &udp(61000, 4500, &esp(0x1005)),
        ),
        Redirect,
        &[R::NattEsp],
    );
    // IHL 6: a router-alert-sized option before the UDP header.
    lab.expect(
        "UDP-encapsulated ESP behind IPv4 options",
        w,
        &eth(
            GW_MAC,
            0x0800,
            &ipv4_full(
                PEER_V4,
                WAN_V4,
                UDP,
                &[0x94, 0x04, 0, 0],
                0,
                &udp(4500, 4500, &esp(0x1006)),
            ),
        ),
        Redirect,
        &[R::NattEsp],
    );
}

#[test]
fn outside_control_traffic_and_transit_go_to_the_kernel() {
    let Some(lab) = Lab::new("xdp-out-pass") else {
        return;
    };
    let w = lab.wan;
    lab.expect(
        "ESP to an address that is not the gateway's",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, REMOTE_V4, ESP, &esp(0x2000)),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "IPv6 ESP to an address that is not the gateway's",
        w,
        &ipv6_frame(GW_MAC, PEER_V6, REMOTE_V6, ESP, &esp(0x2001)),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "IKE on UDP 500",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, UDP, &udp(500, 500, &[0x22; 28])),
        Pass,
        &[R::Ike],
    );
    lab.expect(
        "IKE on UDP 4500 behind the non-ESP marker",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            WAN_V4,
            UDP,
            &udp(4500, 4500, &ike_marked()),
        ),
        Pass,
        &[R::Ike],
    );
    lab.expect(
        "IKE on UDP 4500 over IPv6",
        w,
        &ipv6_frame(
            GW_MAC,
            PEER_V6,
            WAN_V6,
            UDP,
            &udp(4500, 4500, &ike_marked()),
        ),
        Pass,
        &[R::Ike],
    );
    // 43 bytes on the wire, padded to 60: only the UDP length tells.
    lab.expect(
        "NAT-keepalive",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, UDP, &udp(4500, 4500, &[0xff])),
        Pass,
        &[R::NattKeepalive],
    );
    lab.expect(
        "a UDP/4500 payload too short for an ESP header",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            WAN_V4,
            UDP,
            &udp(4500, 4500, &[1, 2, 3, 4, 5]),
        ),
        Pass,
        &[R::Local],
    );
    lab.expect("ARP", w, &arp(WAN_V4), Pass, &[R::Arp]);
    lab.expect(
        "a neighbour solicitation",
        w,
        &neighbour_solicitation(PEER_V6, WAN_V6),
        Pass,
        &[R::NeighbourDiscovery],
    );
    lab.expect(
        "SSH to the gateway",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, TCP, &[0u8; 20]),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "ping to the gateway",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, ICMP, &[8, 0, 0, 0, 0, 1, 0, 1]),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "clear transit traffic",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, REMOTE_V4, UDP, &udp(1234, 80, &[0; 16])),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "an LLDP frame",
        w,
        &eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], 0x88cc, &[0; 32]),
        Pass,
        &[R::OtherEthertype],
    );
}

/// An IKEv1 (ISAKMP) header, 28 bytes, plus `extra` payload bytes: a TED
/// probe as far as the steering program looks (version byte 0x10).
fn isakmp_v1(extra: usize) -> Vec<u8> {
    let mut m = vec![0u8; 28 + extra];
    m[..8].copy_from_slice(&[0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);
    m[16] = 1; // next payload: SA
    m[17] = 0x10; // version 1.0
    m[18] = 243; // Espada's TED exchange (private use)
    m[24..28].copy_from_slice(&((28 + extra) as u32).to_be_bytes());
    m
}

#[test]
fn transit_ike_to_a_host_behind_us_is_a_ted_probe_for_the_dataplane() {
    let Some(lab) = Lab::new("xdp-ted") else {
        return;
    };
    let w = lab.wan;
    lab.expect(
        "a TED probe (IKEv1 to UDP 500 of a host behind us)",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            REMOTE_V4,
            UDP,
            &udp(500, 500, &isakmp_v1(40)),
        ),
        Redirect,
        &[R::Ted],
    );
    lab.expect(
        "a TED probe over IPv6",
        w,
        &ipv6_frame(
            GW_MAC,
            PEER_V6,
            REMOTE_V6,
            UDP,
            &udp(500, 500, &isakmp_v1(40)),
        ),
        Redirect,
        &[R::Ted],
    );
    lab.expect(
        "a TED probe from an ephemeral source port",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            REMOTE_V4,
            UDP,
            &udp(40000, 500, &isakmp_v1(0)),
        ),
        Redirect,
        &[R::Ted],
    );
    lab.expect(
        "IKEv1 to the gateway's own address stays with the kernel",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, UDP, &udp(500, 500, &isakmp_v1(40))),
        Pass,
        &[R::Ike],
    );
    lab.expect(
        "IKEv1 to the gateway's own IPv6 address stays with the kernel",
        w,
        &ipv6_frame(GW_MAC, PEER_V6, WAN_V6, UDP, &udp(500, 500, &isakmp_v1(40))),
        Pass,
        &[R::Ike],
    );
    let mut main_mode = isakmp_v1(40);
    main_mode[18] = 2;
    lab.expect(
        "transit IKEv1 Main Mode on UDP 500 (not a TED probe)",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, REMOTE_V4, UDP, &udp(500, 500, &main_mode)),
        Pass,
        &[R::Transit],
    );
    let mut v2 = isakmp_v1(40);
    v2[17] = 0x20;
    lab.expect(
        "transit IKEv2 on UDP 500",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, REMOTE_V4, UDP, &udp(500, 500, &v2)),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "transit UDP 500 too short for an ISAKMP header",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            REMOTE_V4,
            UDP,
            &udp(500, 500, &isakmp_v1(0)[..27]),
        ),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "the longest TED probe the dataplane takes (1500 bytes)",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            REMOTE_V4,
            UDP,
            &udp(500, 500, &isakmp_v1(1500 - 28)),
        ),
        Redirect,
        &[R::Ted],
    );
    lab.expect(
        "transit IKEv1 longer than a TED probe may be (jumbo frame)",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            REMOTE_V4,
            UDP,
            &udp(500, 500, &isakmp_v1(1501 - 28)),
        ),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "transit UDP from port 500 to another port",
        w,
        &ipv4_frame(
            GW_MAC,
            PEER_V4,
            REMOTE_V4,
            UDP,
            &udp(500, 501, &isakmp_v1(40)),
        ),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "other transit UDP",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, REMOTE_V4, UDP, &udp(1234, 53, &[0; 40])),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "transit UDP 4500",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, REMOTE_V4, UDP, &udp(4500, 4500, &esp(7))),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "transit TCP to port 500",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, REMOTE_V4, TCP, &tcp(1234, 500)),
        Pass,
        &[R::Transit],
    );
    // Where a fragment goes may not depend on its ports.
    let first = ipv6(
        PEER_V6,
        REMOTE_V6,
        44,
        &ext_frag(UDP, 0, true, &udp(500, 500, &isakmp_v1(40))),
    );
    lab.expect(
        "the first fragment of a transit IKEv1 datagram",
        w,
        &eth(GW_MAC, 0x86dd, &first),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "a TED-shaped datagram arriving on the inside is routed as usual",
        lab.lan,
        &ipv4_frame(
            GW_MAC,
            HOST_V4,
            REMOTE_V4,
            UDP,
            &udp(500, 500, &isakmp_v1(40)),
        ),
        Redirect,
        &[R::Inside],
    );
}

#[test]
fn fragments_follow_their_protocol_not_their_position() {
    let Some(lab) = Lab::new("xdp-frag") else {
        return;
    };
    let w = lab.wan;
    let ip4 = |proto, frag, l4: &[u8]| {
        eth(
            GW_MAC,
            0x0800,
            &ipv4_full(PEER_V4, WAN_V4, proto, &[], frag, l4),
        )
    };
    lab.expect(
        "the first fragment of ESP",
        w,
        &ip4(ESP, 0x2000, &esp(0x3000)),
        Redirect,
        &[R::Esp],
    );
    lab.expect(
        "a later fragment of ESP",
        w,
        &ip4(ESP, 0x0010, &[0x55; 40]),
        Redirect,
        &[R::Esp],
    );
    lab.expect(
        "the first fragment of UDP-encapsulated ESP",
        w,
        &ip4(UDP, 0x2000, &udp(4500, 4500, &esp(0x3001))),
        Pass,
        &[R::LocalFragment],
    );
    lab.expect(
        "a later fragment of UDP to the gateway",
        w,
        &ip4(UDP, 0x0010, &[0x66; 40]),
        Pass,
        &[R::LocalFragment],
    );
    lab.expect(
        "an IPv6 fragment of ESP",
        w,
        &ipv6_frame(
            GW_MAC,
            PEER_V6,
            WAN_V6,
            44,
            &ext_frag(ESP, 0, true, &esp(0x3002)),
        ),
        Redirect,
        &[R::Esp],
    );
    lab.expect(
        "a later IPv6 fragment of UDP",
        w,
        &ipv6_frame(
            GW_MAC,
            PEER_V6,
            WAN_V6,
            44,
            &ext_frag(UDP, 16, false, &[0x77; 40]),
        ),
        Pass,
        &[R::LocalFragment],
    );
    lab.expect(
        "an inside fragment in transit",
        lab.lan,
        &eth(
            GW_MAC,
            0x0800,
            &ipv4_full(HOST_V4, REMOTE_V4, UDP, &[], 0x0010, &[0x88; 40]),
        ),
        Redirect,
        &[R::Inside],
    );
}

#[test]
fn truncated_and_malformed_frames_are_passed_without_harm() {
    let Some(lab) = Lab::new("xdp-trunc") else {
        return;
    };
    let good = ipv4_frame(GW_MAC, PEER_V4, WAN_V4, UDP, &udp(4500, 4500, &esp(0x4000)));
    let good6 = ipv6_frame(
        GW_MAC,
        PEER_V6,
        WAN_V6,
        0,
        &ext_opts(UDP, &udp(4500, 4500, &esp(0x4001))),
    );
    // Cut inside the link or network layer: malformed on either side.
    let network: Vec<(&str, Vec<u8>)> = vec![
        ("an Ethernet header alone", good[..14].to_vec()),
        ("half an IPv4 header", good[..14 + 10].to_vec()),
        ("half an IPv6 header", good6[..14 + 20].to_vec()),
        (
            "IPv6 cut inside an extension header",
            good6[..14 + 40 + 1].to_vec(),
        ),
        (
            "a VLAN tag cut in half",
            eth_hdr(GW_MAC, 0x8100).into_iter().chain([0, 42]).collect(),
        ),
        ("an IPv4 header length below 20", {
            let mut f = good.clone();
            f[14] = 0x44;
            f
        }),
        ("an IPv4 header length beyond the frame", {
            let mut f = good[..14 + 24].to_vec();
            f[14] = 0x4f;
            f
        }),
        ("version 6 in an IPv4 ethertype", {
            let mut f = good.clone();
            f[14] = 0x65;
            f
        }),
        ("version 4 in an IPv6 ethertype", {
            let mut f = good6.clone();
            f[14] = 0x45;
            f
        }),
    ];
    for (what, frame) in &network {
        lab.expect(what, lab.wan, frame, Pass, &[R::Malformed]);
        lab.expect(what, lab.lan, frame, Pass, &[R::Malformed]);
    }
    // Cut inside UDP: only the outside reads that far; the inside sees a
    // packet for the gateway (these are addressed to its WAN address).
    let transport: Vec<(&str, Vec<u8>)> = vec![
        (
            "an IPv4 header without its UDP header",
            good[..14 + 20 + 4].to_vec(),
        ),
        ("UDP with part of the SPI", good[..14 + 20 + 8 + 2].to_vec()),
        (
            "IPv6 cut before the UDP header ends",
            good6[..14 + 40 + 8 + 4].to_vec(),
        ),
        ("a UDP length beyond the frame", {
            let mut f = good.clone();
            f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&900u16.to_be_bytes());
            f
        }),
        ("a UDP length below its header", {
            let mut f = good.clone();
            f[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&4u16.to_be_bytes());
            f
        }),
    ];
    for (what, frame) in &transport {
        lab.expect(what, lab.wan, frame, Pass, &[R::Malformed]);
        lab.expect(what, lab.lan, frame, Pass, &[R::Local]);
    }
    // Shorter than an Ethernet header: the kernel refuses to run it (no
    // driver delivers such a frame either).
    assert!(lab.steer.test_run(&good[..10], lab.wan, 0).is_err());
}

#[test]
fn inside_transit_goes_to_the_dataplane_and_the_rest_to_the_kernel() {
    let Some(lab) = Lab::new("xdp-in") else {
        return;
    };
    let l = lab.lan;
    lab.expect(
        "IPv4 transit",
        l,
        &ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, UDP, &udp(1234, 80, &[1; 32])),
        Redirect,
        &[R::Inside],
    );
    lab.expect(
        "IPv6 transit",
        l,
        &ipv6_frame(GW_MAC, HOST_V6, REMOTE_V6, TCP, &[0; 20]),
        Redirect,
        &[R::Inside],
    );
    lab.expect(
        "VLAN-tagged IPv6 transit",
        l,
        &eth_vlan(GW_MAC, 0x86dd, &ipv6(HOST_V6, REMOTE_V6, TCP, &[0; 20])),
        Redirect,
        &[R::Inside],
    );
    lab.expect(
        "ESP from an inside host to a remote peer (transit)",
        l,
        &ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, ESP, &esp(0x5000)),
        Redirect,
        &[R::Inside],
    );
    lab.expect(
        "ping to the gateway's inside address",
        l,
        &ipv4_frame(GW_MAC, HOST_V4, LAN_V4, ICMP, &[8, 0, 0, 0, 0, 1, 0, 1]),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "SSH to the gateway's inside IPv6 address",
        l,
        &ipv6_frame(GW_MAC, HOST_V6, LAN_V6, TCP, &[0; 20]),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "IKE to the gateway's outside address, sent from inside",
        l,
        &ipv4_frame(GW_MAC, HOST_V4, WAN_V4, UDP, &udp(500, 500, &[0; 28])),
        Pass,
        &[R::Local],
    );
    lab.expect("ARP", l, &arp(LAN_V4), Pass, &[R::Arp]);
    lab.expect(
        "a neighbour solicitation",
        l,
        &neighbour_solicitation(HOST_V6, LAN_V6),
        Pass,
        &[R::NeighbourDiscovery],
    );
    lab.expect(
        "a DHCP discover (limited broadcast)",
        l,
        &ipv4_frame(
            BROADCAST,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            UDP,
            &udp(68, 67, &[0; 40]),
        ),
        Pass,
        &[R::LinkScope],
    );
    lab.expect(
        "a subnet-directed broadcast on the broadcast MAC",
        l,
        &ipv4_frame(
            BROADCAST,
            HOST_V4,
            Ipv4Addr::new(198, 18, 1, 255),
            UDP,
            &udp(137, 137, &[0; 40]),
        ),
        Pass,
        &[R::LinkScope],
    );
    lab.expect(
        "OSPF hello to 224.0.0.5",
        l,
        &ipv4_frame(
            [0x01, 0, 0x5e, 0, 0, 5],
            HOST_V4,
            Ipv4Addr::new(224, 0, 0, 5),
            89,
            &[0; 40],
        ),
        Pass,
        &[R::LinkScope],
    );
    lab.expect(
        "IPv6 all-nodes multicast",
        l,
        &ipv6_frame(
            [0x33, 0x33, 0, 0, 0, 1],
            HOST_V6,
            "ff02::1".parse().unwrap_or(Ipv6Addr::LOCALHOST),
            UDP,
            &udp(1, 2, &[0; 8]),
        ),
        Pass,
        &[R::LinkScope],
    );
    lab.expect(
        "IPv6 link-local unicast to another host's MAC",
        l,
        &ipv6_frame(
            GW_MAC,
            "fe80::10".parse().unwrap_or(Ipv6Addr::LOCALHOST),
            "fe80::20".parse().unwrap_or(Ipv6Addr::LOCALHOST),
            TCP,
            &[0; 20],
        ),
        Pass,
        &[R::LinkScope],
    );
    lab.expect(
        "an IPv4 link-local destination",
        l,
        &ipv4_frame(
            GW_MAC,
            HOST_V4,
            Ipv4Addr::new(169, 254, 1, 1),
            TCP,
            &[0; 20],
        ),
        Pass,
        &[R::LinkScope],
    );
    lab.expect(
        "an LLDP frame",
        l,
        &eth([0x01, 0x80, 0xc2, 0, 0, 0x0e], 0x88cc, &[0; 32]),
        Pass,
        &[R::OtherEthertype],
    );
}

#[test]
fn an_unconfigured_interface_passes_everything() {
    let Some(lab) = Lab::new("xdp-unconf") else {
        return;
    };
    for (what, frame) in [
        (
            "ESP to the gateway",
            ipv4_frame(GW_MAC, PEER_V4, WAN_V4, ESP, &esp(0x6000)),
        ),
        (
            "transit",
            ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, TCP, &[0; 20]),
        ),
        ("ARP", arp(WAN_V4)),
    ] {
        lab.expect(what, lab.other, &frame, Pass, &[R::Unconfigured]);
    }
}

#[test]
fn each_interface_redirects_to_its_own_socket_and_passes_without_one() {
    let Some(mut lab) = Lab::new("xdp-slots") else {
        return;
    };
    let esp_in = ipv4_frame(GW_MAC, PEER_V4, WAN_V4, ESP, &esp(0x7000));
    let transit = ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, UDP, &udp(1, 2, &[0; 16]));
    // The spare inside interface has a slot but no socket: its queue 0 is
    // not the LAN's queue 0.
    lab.expect(
        "transit on an inside interface without a socket",
        lab.spare,
        &transit,
        Pass,
        &[R::Inside, R::NoSocket],
    );
    // Taking the LAN's socket out leaves the WAN's in place.
    let (wan, lan) = (lab.wan, lab.lan);
    lab.steer.unregister_xsk(lan, 0).expect("unregister");
    lab.expect(
        "LAN transit, socket gone",
        lan,
        &transit,
        Pass,
        &[R::Inside, R::NoSocket],
    );
    lab.expect("WAN ESP, socket kept", wan, &esp_in, Redirect, &[R::Esp]);
    // Registering it again brings the redirect back.
    let fd = lab.socks[1].fd();
    lab.steer.register_xsk(lan, 0, fd).expect("register");
    lab.expect(
        "LAN transit, socket back",
        lan,
        &transit,
        Redirect,
        &[R::Inside],
    );
    // A queue the XSKMAP has no room for is refused up front.
    assert!(lab.steer.register_xsk(lan, 64, fd).is_err());
    // An interface without a role cannot get a socket.
    assert!(lab.steer.register_xsk(lab.other, 0, fd).is_err());
}

#[test]
fn the_rules_change_with_the_maps() {
    let Some(mut lab) = Lab::new("xdp-maps") else {
        return;
    };
    let (wan, lan) = (lab.wan, lab.lan);
    let natt = ipv4_frame(GW_MAC, PEER_V4, WAN_V4, UDP, &udp(4500, 4500, &esp(0x8000)));
    let esp_in = ipv4_frame(GW_MAC, PEER_V4, WAN_V4, ESP, &esp(0x8001));
    // NAT transparency off: UDP/4500 is the kernel's, ESP is still ours.
    let slot = lab
        .steer
        .set_interface_with(
            wan,
            PortRole::Outside,
            EspSteering {
                esp: true,
                udp_encapsulated: false,
            },
        )
        .expect("reconfigure");
    assert_eq!(slot, 0, "reconfiguring keeps the slot");
    lab.expect("NAT-T ESP with NAT-T off", wan, &natt, Pass, &[R::Local]);
    lab.expect("ESP with NAT-T off", wan, &esp_in, Redirect, &[R::Esp]);
    // ESP off, NAT-T on: the other way round.
    lab.steer
        .set_interface_with(
            wan,
            PortRole::Outside,
            EspSteering {
                esp: false,
                udp_encapsulated: true,
            },
        )
        .expect("reconfigure");
    lab.expect("ESP with ESP off", wan, &esp_in, Pass, &[R::Local]);
    lab.expect(
        "NAT-T ESP with ESP off",
        wan,
        &natt,
        Redirect,
        &[R::NattEsp],
    );
    lab.steer
        .set_interface(wan, PortRole::Outside)
        .expect("back");
    lab.expect(
        "NAT-T ESP with NAT-T on",
        wan,
        &natt,
        Redirect,
        &[R::NattEsp],
    );

    // An address the gateway no longer has is transit.
    assert!(lab.steer.remove_local(IpAddr::V4(WAN_V4)).expect("remove"));
    assert!(!lab.steer.remove_local(IpAddr::V4(WAN_V4)).expect("again"));
    lab.expect(
        "ESP to a removed address",
        wan,
        &esp_in,
        Pass,
        &[R::Transit],
    );
    lab.steer.add_local(IpAddr::V4(WAN_V4)).expect("add");
    lab.expect(
        "ESP to the re-added address",
        wan,
        &esp_in,
        Redirect,
        &[R::Esp],
    );

    // The same interface turned inside: ESP to the gateway is local there.
    lab.steer
        .set_interface(wan, PortRole::Inside)
        .expect("inside");
    lab.expect(
        "ESP to the gateway on an inside port",
        wan,
        &esp_in,
        Pass,
        &[R::Local],
    );

    // Without a role the interface passes everything, and its slot is free.
    assert!(lab.steer.remove_interface(lan).expect("remove lan"));
    let transit = ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, TCP, &[0; 20]);
    lab.expect(
        "transit on a removed interface",
        lan,
        &transit,
        Pass,
        &[R::Unconfigured],
    );
    assert_eq!(
        lab.steer
            .set_interface(lab.other, PortRole::Inside)
            .expect("other"),
        1
    );
    lab.expect(
        "transit on the slot's new owner, whose sockets are not registered",
        lab.other,
        &transit,
        Pass,
        &[R::Inside, R::NoSocket],
    );
}

#[test]
fn a_queue_beyond_the_xskmap_is_passed_and_counted() {
    let Some(lab) = Lab::new("xdp-queues") else {
        return;
    };
    // A veth with more rx queues than the XSKMAP has room for per slot.
    lab.ns.run("ip link add big0 numrxqueues 80 type veth peer name big1 numrxqueues 80 && ip link set big0 up");
    let big = lab.ns.ifindex("big0");
    let mut steer = XdpSteer::load().expect("load");
    steer.set_interface(big, PortRole::Inside).expect("big");
    let transit = ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, TCP, &[0; 20]);
    let before = steer.counters().expect("counters");
    assert_eq!(steer.test_run(&transit, big, 70).expect("run"), Pass);
    assert_eq!(steer.test_run(&transit, big, 3).expect("run"), Pass);
    let after = steer.counters().expect("counters");
    assert_eq!(after.get(R::BadQueue) - before.get(R::BadQueue), 1);
    assert_eq!(after.get(R::NoSocket) - before.get(R::NoSocket), 1);
    assert_eq!(after.get(R::Inside) - before.get(R::Inside), 2);
}

#[test]
fn a_capture_interface_takes_tcp_udp_and_esp_and_leaves_the_rest_to_the_kernel() {
    let Some(lab) = Lab::new("xdp-capture") else {
        return;
    };
    // espada-bench sink's role, on an interface of its own program.
    lab.ns
        .run("ip link add cap0 type veth peer name cap1 && ip link set cap0 up");
    let cap = lab.ns.ifindex("cap0");
    let mut steer = XdpSteer::load().expect("load");
    steer.set_capture(cap).expect("capture");
    let umem = Umem::new(64).expect("umem");
    let sock = XskSocket::new(&umem, None, cap, 0, 64, BindMode::Copy).expect("xsk");
    steer.register_xsk(cap, 0, sock.fd()).expect("register");
    let cases: [(&str, Vec<u8>, XdpAction, SteerRule); 9] = [
        (
            "UDP over IPv4",
            ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, UDP, &udp(10000, 9000, &[1; 24])),
            Redirect,
            R::Capture,
        ),
        (
            "TCP over IPv4",
            ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, TCP, &tcp(10000, 9000)),
            Redirect,
            R::Capture,
        ),
        (
            "ESP over IPv4",
            ipv4_frame(GW_MAC, PEER_V4, WAN_V4, ESP, &esp(0x1000)),
            Redirect,
            R::Capture,
        ),
        (
            "UDP over IPv6",
            ipv6_frame(GW_MAC, HOST_V6, REMOTE_V6, UDP, &udp(10000, 9000, &[1; 24])),
            Redirect,
            R::Capture,
        ),
        (
            "ESP over IPv6",
            ipv6_frame(GW_MAC, PEER_V6, WAN_V6, ESP, &esp(0x1001)),
            Redirect,
            R::Capture,
        ),
        (
            "ICMP echo",
            ipv4_frame(GW_MAC, HOST_V4, REMOTE_V4, ICMP, &icmp_echo(8, 7)),
            Pass,
            R::Local,
        ),
        ("ARP", arp(HOST_V4), Pass, R::Arp),
        (
            "neighbour solicitation",
            neighbour_solicitation(HOST_V6, REMOTE_V6),
            Pass,
            R::NeighbourDiscovery,
        ),
        (
            "UDP to the broadcast MAC",
            ipv4_frame(BROADCAST, HOST_V4, REMOTE_V4, UDP, &udp(1, 2, &[0; 4])),
            Pass,
            R::LinkScope,
        ),
    ];
    for (what, frame, action, rule) in cases {
        let before = steer.counters().expect("counters");
        assert_eq!(
            steer.test_run(&frame, cap, 0).expect("run"),
            action,
            "{what}"
        );
        let after = steer.counters().expect("counters");
        for r in SteerRule::ALL {
            let want = u64::from(r == rule);
            assert_eq!(
                after.get(r) - before.get(r),
                want,
                "{what}: counter {}",
                r.name()
            );
        }
    }
}

/// A TCP header with these ports (SYN-ACK), 20 bytes.
fn tcp(sport: u16, dport: u16) -> Vec<u8> {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x12, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

/// An ICMP echo (type 8) or echo reply (type 0) with this identifier.
fn icmp_echo(kind: u8, ident: u16) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&[0x5a; 16]);
    m
}

/// An ICMP error (`kind`: 3 unreachable, 11 time exceeded) quoting the
/// header and first eight bytes of `quoted` (an IPv4 packet), RFC 792.
fn icmp_error(kind: u8, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0, 0, 0, 0, 0];
    let hl = usize::from(quoted[0] & 0x0f) * 4;
    m.extend_from_slice(&quoted[..quoted.len().min(hl + 8)]);
    m
}

#[test]
fn pat_return_traffic_in_the_range_goes_to_the_dataplane() {
    let Some(mut lab) = Lab::new("xdp-pat") else {
        return;
    };
    let w = lab.wan;
    let server = Ipv4Addr::new(198, 18, 0, 254);
    let tcp_in = ipv4_frame(GW_MAC, server, WAN_V4, TCP, &tcp(80, 61010));
    lab.expect(
        "no PAT range: TCP to the gateway",
        w,
        &tcp_in,
        Pass,
        &[R::Local],
    );

    assert!(matches!(
        lab.steer.set_pat_range(w, Some(4000..=5000)),
        Err(XdpError::PatRange(4000, 5000))
    ));
    assert!(matches!(
        lab.steer.set_pat_range(lab.other, Some(61001..=65535)),
        Err(XdpError::NotConfigured(_))
    ));
    lab.steer
        .set_pat_range(w, Some(61001..=65535))
        .expect("PAT range");
    lab.expect("TCP to a PAT port", w, &tcp_in, Redirect, &[R::Pat]);
    lab.expect(
        "UDP to a PAT port",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, UDP, &udp(53, 65535, &[1; 12])),
        Redirect,
        &[R::Pat],
    );
    lab.expect(
        "TCP below the range (a service of the gateway)",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, TCP, &tcp(40000, 22)),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "TCP to a PAT port of another host (transit)",
        w,
        &ipv4_frame(GW_MAC, server, REMOTE_V4, TCP, &tcp(80, 61010)),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "IKE still goes to the kernel",
        w,
        &ipv4_frame(GW_MAC, PEER_V4, WAN_V4, UDP, &udp(500, 500, &[0x22; 28])),
        Pass,
        &[R::Ike],
    );
    lab.expect(
        "echo reply with an identifier in the range",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, ICMP, &icmp_echo(0, 61001)),
        Redirect,
        &[R::Pat],
    );
    lab.expect(
        "echo reply with an identifier outside it (the gateway's own ping)",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, ICMP, &icmp_echo(0, 1234)),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "echo request to the gateway",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, ICMP, &icmp_echo(8, 61001)),
        Pass,
        &[R::Local],
    );
    let sent_udp = ipv4(WAN_V4, server, UDP, &udp(61500, 53, &[1; 12]));
    lab.expect(
        "port unreachable about a translated UDP datagram",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, ICMP, &icmp_error(3, &sent_udp)),
        Redirect,
        &[R::Pat],
    );
    let sent_tcp = ipv4_full(WAN_V4, server, TCP, &[1, 1, 1, 1], 0x4000, &tcp(62000, 80));
    lab.expect(
        "fragmentation needed about a translated TCP segment with IP options",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, ICMP, &icmp_error(3, &sent_tcp)),
        Redirect,
        &[R::Pat],
    );
    let sent_echo = ipv4(WAN_V4, server, ICMP, &icmp_echo(8, 63000));
    lab.expect(
        "time exceeded about a translated echo request",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, ICMP, &icmp_error(11, &sent_echo)),
        Redirect,
        &[R::Pat],
    );
    let own = ipv4(WAN_V4, server, TCP, &tcp(40000, 80));
    lab.expect(
        "an error about the gateway's own connection",
        w,
        &ipv4_frame(GW_MAC, server, WAN_V4, ICMP, &icmp_error(3, &own)),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "an error quoting a truncated header",
        w,
        &ipv4_frame(
            GW_MAC,
            server,
            WAN_V4,
            ICMP,
            &icmp_error(3, &sent_udp[..12]),
        ),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "a first fragment to a PAT port goes to the kernel with its siblings",
        w,
        &eth(
            GW_MAC,
            0x0800,
            &ipv4_full(server, WAN_V4, UDP, &[], 0x2000, &udp(53, 61010, &[0; 16])),
        ),
        Pass,
        &[R::LocalFragment],
    );
    lab.expect(
        "IPv6 is never translated",
        w,
        &ipv6_frame(GW_MAC, PEER_V6, WAN_V6, TCP, &tcp(80, 61010)),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "the inside is not affected",
        lab.lan,
        &ipv4_frame(GW_MAC, HOST_V4, LAN_V4, TCP, &tcp(80, 61010)),
        Pass,
        &[R::Local],
    );
    lab.steer.set_pat_range(w, None).expect("PAT off");
    lab.expect("PAT range removed", w, &tcp_in, Pass, &[R::Local]);
}

/// An ICMP fragmentation needed (type 3, code 4, RFC 1191) with a next-hop
/// MTU of 1400, quoting the header and first eight bytes of `quoted` (an
/// IPv4 packet).
fn frag_needed(quoted: &[u8]) -> Vec<u8> {
    frag_needed_quoting(quoted, 16)
}

/// [`frag_needed`] quoting `after` bytes past the quoted IP header
/// (RFC 792's routers quote 8, RFC 1812's as many as fit; Linux does).
fn frag_needed_quoting(quoted: &[u8], after: usize) -> Vec<u8> {
    let mut m = vec![3, 4, 0, 0, 0, 0];
    m.extend_from_slice(&1400u16.to_be_bytes());
    let hl = usize::from(quoted[0] & 0x0f) * 4;
    m.extend_from_slice(&quoted[..quoted.len().min(hl + after)]);
    m
}

/// An ICMPv6 message of `kind` (2: packet too big, MTU 1280; 1:
/// destination unreachable) quoting all of `quoted` (an IPv6 packet), as
/// RFC 4443 asks while it fits in 1280 bytes.
fn icmpv6_error(kind: u8, quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![kind, 0, 0, 0];
    m.extend_from_slice(&1280u32.to_be_bytes());
    m.extend_from_slice(quoted);
    m
}

#[test]
fn icmp_too_big_about_our_esp_goes_to_the_dataplane_for_path_mtu_discovery() {
    let Some(mut lab) = Lab::new("xdp-pmtu") else {
        return;
    };
    let w = lab.wan;
    let router = Ipv4Addr::new(198, 18, 0, 254);
    let router6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xfe);

    // IPv4: fragmentation needed, to the gateway, from a router on the way.
    let to_gw = |quoted: &[u8]| ipv4_frame(GW_MAC, router, WAN_V4, ICMP, &frag_needed(quoted));
    let our_esp = ipv4(WAN_V4, PEER_V4, ESP, &esp(0x9000));
    let our_natt = ipv4(WAN_V4, PEER_V4, UDP, &udp(4500, 4500, &esp(0x9001)));
    lab.expect(
        "frag needed quoting ESP we sent",
        w,
        &to_gw(&our_esp),
        Redirect,
        &[R::Pmtu],
    );
    lab.expect(
        "frag needed quoting NAT-T ESP we sent (source port 4500)",
        w,
        &to_gw(&our_natt),
        Redirect,
        &[R::Pmtu],
    );
    lab.expect(
        "frag needed quoting NAT-T ESP to a NATed peer port",
        w,
        &to_gw(&ipv4(WAN_V4, PEER_V4, UDP, &udp(4500, 61000, &esp(0x9002)))),
        Redirect,
        &[R::Pmtu],
    );
    lab.expect(
        "frag needed quoting ESP sent from the inside address",
        w,
        &to_gw(&ipv4(LAN_V4, PEER_V4, ESP, &esp(0x9003))),
        Redirect,
        &[R::Pmtu],
    );
    // IHL 6 outside and IHL 7 in the quote: the ports are found after the
    // quoted options.
    let natt_opts = ipv4_full(
        WAN_V4,
        PEER_V4,
        UDP,
        &[1, 1, 1, 1, 1, 1, 1, 0],
        0x4000,
        &udp(4500, 4500, &esp(0x9004)),
    );
    lab.expect(
        "frag needed with IP options, quoting NAT-T ESP with IP options",
        w,
        &eth(
            GW_MAC,
            0x0800,
            &ipv4_full(
                router,
                WAN_V4,
                ICMP,
                &[0x94, 0x04, 0, 0],
                0x4000,
                &frag_needed(&natt_opts),
            ),
        ),
        Redirect,
        &[R::Pmtu],
    );
    lab.expect(
        "frag needed quoting the first fragment of ESP we sent",
        w,
        &to_gw(&ipv4_full(WAN_V4, PEER_V4, ESP, &[], 0x2000, &esp(0x9005))),
        Redirect,
        &[R::Pmtu],
    );

    // Everything else stays with the kernel, as before.
    let server = Ipv4Addr::new(198, 18, 0, 200);
    for (what, quoted) in [
        ("TCP", ipv4(WAN_V4, server, TCP, &tcp(40000, 80))),
        (
            "IKE (UDP source port 500)",
            ipv4(WAN_V4, PEER_V4, UDP, &udp(500, 500, &[0x22; 28])),
        ),
        (
            "UDP to port 4500 from another port",
            ipv4(WAN_V4, PEER_V4, UDP, &udp(61000, 4500, &esp(0x9006))),
        ),
        (
            "ESP from another source",
            ipv4(PEER_V4, REMOTE_V4, ESP, &esp(0x9007)),
        ),
        (
            "UDP/4500 from another source",
            ipv4(PEER_V4, REMOTE_V4, UDP, &udp(4500, 4500, &esp(0x9008))),
        ),
        (
            "a later fragment of UDP we sent",
            ipv4_full(
                WAN_V4,
                PEER_V4,
                UDP,
                &[],
                0x0010,
                &udp(4500, 4500, &esp(0x9009)),
            ),
        ),
        ("a truncated header", our_esp[..12].to_vec()),
        (
            "IKE we sent from port 4500 (the non-ESP marker, no SPI)",
            ipv4(WAN_V4, PEER_V4, UDP, &udp(4500, 4500, &[0; 32])),
        ),
    ] {
        lab.expect(
            &format!("frag needed quoting {what}"),
            w,
            &to_gw(&quoted),
            Pass,
            &[R::Local],
        );
    }
    lab.expect(
        "frag needed quoting only the UDP header of NAT-T ESP we sent (no SPI)",
        w,
        &ipv4_frame(
            GW_MAC,
            router,
            WAN_V4,
            ICMP,
            &frag_needed_quoting(&our_natt, 8),
        ),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "host unreachable (code 1) quoting ESP we sent",
        w,
        &ipv4_frame(GW_MAC, router, WAN_V4, ICMP, &{
            let mut m = frag_needed(&our_esp);
            m[1] = 1;
            m
        }),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "time exceeded quoting ESP we sent",
        w,
        &ipv4_frame(GW_MAC, router, WAN_V4, ICMP, &icmp_error(11, &our_esp)),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "frag needed quoting our ESP, addressed to another host",
        w,
        &ipv4_frame(GW_MAC, router, REMOTE_V4, ICMP, &frag_needed(&our_esp)),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "frag needed quoting our ESP, itself a first fragment",
        w,
        &eth(
            GW_MAC,
            0x0800,
            &ipv4_full(router, WAN_V4, ICMP, &[], 0x2000, &frag_needed(&our_esp)),
        ),
        Pass,
        &[R::LocalFragment],
    );
    lab.expect(
        "frag needed quoting our ESP, itself a later fragment",
        w,
        &eth(
            GW_MAC,
            0x0800,
            &ipv4_full(router, WAN_V4, ICMP, &[], 0x0010, &frag_needed(&our_esp)),
        ),
        Pass,
        &[R::LocalFragment],
    );

    // IPv6: packet too big.
    let our_esp6 = ipv6(WAN_V6, PEER_V6, ESP, &esp(0x9100));
    let ptb6 =
        |quoted: &[u8]| ipv6_frame(GW_MAC, router6, WAN_V6, ICMPV6, &icmpv6_error(2, quoted));
    lab.expect(
        "packet too big quoting ESP we sent",
        w,
        &ptb6(&our_esp6),
        Redirect,
        &[R::Pmtu],
    );
    lab.expect(
        "packet too big quoting NAT-T ESP we sent",
        w,
        &ptb6(&ipv6(WAN_V6, PEER_V6, UDP, &udp(4500, 4500, &esp(0x9101)))),
        Redirect,
        &[R::Pmtu],
    );
    lab.expect(
        "packet too big behind a hop-by-hop header, quoting ESP we sent",
        w,
        &ipv6_frame(
            GW_MAC,
            router6,
            WAN_V6,
            0,
            &ext_opts(ICMPV6, &icmpv6_error(2, &our_esp6)),
        ),
        Redirect,
        &[R::Pmtu],
    );
    for (what, quoted) in [
        ("TCP", ipv6(WAN_V6, PEER_V6, TCP, &tcp(40000, 80))),
        (
            "IKE (UDP source port 500)",
            ipv6(WAN_V6, PEER_V6, UDP, &udp(500, 500, &[0x22; 28])),
        ),
        (
            "ESP from another source",
            ipv6(PEER_V6, REMOTE_V6, ESP, &esp(0x9102)),
        ),
        (
            "ESP behind a destination options header",
            ipv6(WAN_V6, PEER_V6, 60, &ext_opts(ESP, &esp(0x9103))),
        ),
        (
            "a fragment of ESP (extension headers are not walked)",
            ipv6(WAN_V6, PEER_V6, 44, &ext_frag(ESP, 0, true, &esp(0x9104))),
        ),
    ] {
        lab.expect(
            &format!("packet too big quoting {what}"),
            w,
            &ptb6(&quoted),
            Pass,
            &[R::Local],
        );
    }
    lab.expect(
        "destination unreachable (ICMPv6 type 1) quoting ESP we sent",
        w,
        &ipv6_frame(GW_MAC, router6, WAN_V6, ICMPV6, &icmpv6_error(1, &our_esp6)),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "packet too big quoting our ESP, addressed to another host",
        w,
        &ipv6_frame(
            GW_MAC,
            router6,
            REMOTE_V6,
            ICMPV6,
            &icmpv6_error(2, &our_esp6),
        ),
        Pass,
        &[R::Transit],
    );
    lab.expect(
        "packet too big quoting our ESP, itself a fragment",
        w,
        &ipv6_frame(
            GW_MAC,
            router6,
            WAN_V6,
            44,
            &ext_frag(ICMPV6, 0, true, &icmpv6_error(2, &our_esp6)),
        ),
        Pass,
        &[R::LocalFragment],
    );

    // The inside is not affected: the same frames are local there.
    let l = lab.lan;
    lab.expect(
        "frag needed about our ESP on the inside",
        l,
        &to_gw(&our_esp),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "frag needed about our NAT-T ESP on the inside",
        l,
        &to_gw(&our_natt),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "packet too big about our ESP on the inside",
        l,
        &ptb6(&our_esp6),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "frag needed to the inside address on the inside",
        l,
        &ipv4_frame(GW_MAC, HOST_V4, LAN_V4, ICMP, &frag_needed(&our_esp)),
        Pass,
        &[R::Local],
    );

    // Like the ESP itself: ESP steering off leaves errors about ESP with
    // the kernel, NAT-T off those about UDP/4500.
    lab.steer
        .set_interface_with(
            w,
            PortRole::Outside,
            EspSteering {
                esp: false,
                udp_encapsulated: true,
            },
        )
        .expect("ESP off");
    lab.expect(
        "frag needed about ESP, ESP off",
        w,
        &to_gw(&our_esp),
        Pass,
        &[R::Local],
    );
    lab.expect(
        "frag needed about NAT-T ESP, ESP off",
        w,
        &to_gw(&our_natt),
        Redirect,
        &[R::Pmtu],
    );
    lab.steer
        .set_interface_with(
            w,
            PortRole::Outside,
            EspSteering {
                esp: true,
                udp_encapsulated: false,
            },
        )
        .expect("NAT-T off");
    lab.expect(
        "frag needed about ESP, NAT-T off",
        w,
        &to_gw(&our_esp),
        Redirect,
        &[R::Pmtu],
    );
    lab.expect(
        "frag needed about NAT-T ESP, NAT-T off",
        w,
        &to_gw(&our_natt),
        Pass,
        &[R::Local],
    );
}

// ---- Attaching, detaching, crash recovery ----

fn ours_attached(ifindex: u32) -> usize {
    XdpSteer::attached_programs(ifindex)
        .expect("query")
        .iter()
        .filter(|(_, name)| name == PROGRAM_NAME)
        .count()
}

/// Waits until nothing of ours is attached to `ifindex`. Closing a link's
/// last fd detaches it, but a child that another test thread is forking
/// holds copies of our fds until it execs, so the close can lag a moment.
fn settles_detached(ifindex: u32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while ours_attached(ifindex) != 0 {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    true
}

fn veth_lab(tag: &str) -> Option<(NetNs, u32, u32)> {
    if !require_root() {
        return None;
    }
    let ns = NetNs::new(tag);
    ns.run("ip link add xa type veth peer name xb && ip link set xa up && ip link set xb up");
    let (xa, xb) = (ns.ifindex("xa"), ns.ifindex("xb"));
    ns.enter();
    Some((ns, xa, xb))
}

#[test]
fn attaches_natively_where_the_driver_can_generically_elsewhere_and_detaches_on_drop() {
    let Some((ns, xa, xb)) = veth_lab("xdp-attach") else {
        return;
    };
    let lo = ns.ifindex("lo");
    {
        let mut steer = XdpSteer::load().expect("load");
        // veth has native XDP; loopback does not, so it falls back.
        assert!(steer.attach_with(lo, AttachMode::Native).is_err());
        assert_eq!(steer.attach(xa).expect("attach xa"), XdpMode::Native);
        assert_eq!(steer.attach(lo).expect("attach lo"), XdpMode::Generic);
        assert_eq!(
            steer
                .attach_with(xb, AttachMode::Generic)
                .expect("attach xb"),
            XdpMode::Generic
        );
        assert!(matches!(
            steer.attach(xa),
            Err(XdpError::AlreadyAttached(i)) if i == xa
        ));
        let mut got: Vec<_> = steer.attachments().collect();
        got.sort_by_key(|a| a.0);
        let mut want = vec![
            (xa, XdpMode::Native),
            (lo, XdpMode::Generic),
            (xb, XdpMode::Generic),
        ];
        want.sort_by_key(|a| a.0);
        assert_eq!(got, want);
        for i in [xa, xb, lo] {
            assert_eq!(ours_attached(i), 1, "attached to {i}");
        }
        // One program, one set of maps, on every interface.
        let ids: Vec<u32> = [xa, xb, lo]
            .iter()
            .flat_map(|&i| XdpSteer::attached_programs(i).expect("query"))
            .map(|(id, _)| id)
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");

        assert!(steer.detach(xb).expect("detach xb"));
        assert!(!steer.detach(xb).expect("detach xb again"));
        assert!(settles_detached(xb));
    }
    for i in [xa, xb, lo] {
        assert!(settles_detached(i), "left attached to {i} after drop");
    }
    let (i, mode) = XdpSteer::load()
        .expect("load")
        .attach_by_name("xa")
        .expect("attach by name");
    assert_eq!((i, mode), (xa, XdpMode::Native));
    assert!(XdpSteer::load()
        .expect("load")
        .attach_by_name("nope0")
        .is_err());
}

#[test]
fn a_leaked_attachment_is_found_and_detached_at_the_next_start() {
    let Some((_ns, xa, xb)) = veth_lab("xdp-stale") else {
        return;
    };
    // A dataplane that never got to clean up: its link stays alive.
    let mut old = XdpSteer::load().expect("load");
    assert_eq!(old.attach(xa).expect("attach"), XdpMode::Native);
    assert_eq!(
        old.attach_with(xb, AttachMode::Generic).expect("attach"),
        XdpMode::Generic
    );
    std::mem::forget(old);
    assert_eq!(ours_attached(xa), 1);

    // The next start cannot attach over it, and says so in native mode
    // rather than failing over to generic...
    let mut new = XdpSteer::load().expect("load");
    assert!(matches!(
        new.attach(xa),
        Err(XdpError::Attach {
            mode: XdpMode::Native,
            ..
        })
    ));
    // ...until it cleans up.
    assert_eq!(XdpSteer::detach_stale(xa).expect("stale xa"), 1);
    assert_eq!(XdpSteer::detach_stale(xb).expect("stale xb"), 1);
    assert_eq!(ours_attached(xa), 0);
    assert_eq!(ours_attached(xb), 0);
    assert_eq!(XdpSteer::detach_stale(xa).expect("nothing left"), 0);
    assert_eq!(new.attach(xa).expect("attach"), XdpMode::Native);
}

/// An older dataplane (or an operator) attached the program through
/// netlink, which outlives any process; a foreign program beside it is
/// left alone.
#[test]
fn a_program_attached_through_netlink_is_detached_and_foreign_ones_are_kept() {
    let Some((ns, xa, xb)) = veth_lab("xdp-nl") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = dir.path().join("xdp_steer.o");
    std::fs::write(&ours, object_bytes()).expect("write object");
    let foreign_c = dir.path().join("foreign.c");
    std::fs::write(
        &foreign_c,
        "__attribute__((section(\"xdp\"), used)) int other_prog(void *ctx) { return 2; }\n\
         char _license[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .expect("write foreign");
    let foreign = dir.path().join("foreign.o");
    let clang = Command::new("clang")
        .args(["-O2", "-target", "bpf", "-c"])
        .arg(&foreign_c)
        .arg("-o")
        .arg(&foreign)
        .status()
        .expect("clang");
    assert!(clang.success());

    ns.run(&format!(
        "ip link set dev xa xdpdrv obj {} sec xdp",
        ours.display()
    ));
    ns.run(&format!(
        "ip link set dev xb xdpgeneric obj {} sec xdp",
        ours.display()
    ));
    assert_eq!(ours_attached(xa), 1);
    assert_eq!(ours_attached(xb), 1);
    assert_eq!(XdpSteer::detach_stale(xa).expect("stale xa"), 1);
    assert_eq!(XdpSteer::detach_stale(xb).expect("stale xb"), 1);
    assert!(XdpSteer::attached_programs(xa).expect("query").is_empty());
    assert!(XdpSteer::attached_programs(xb).expect("query").is_empty());

    ns.run(&format!(
        "ip link set dev xa xdpgeneric obj {} sec xdp",
        foreign.display()
    ));
    assert_eq!(XdpSteer::detach_stale(xa).expect("foreign"), 0);
    let left = XdpSteer::attached_programs(xa).expect("query");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, "other_prog");
    sh(&format!(
        "ip netns exec {} ip link set dev xa xdpgeneric off",
        ns.name
    ));
}

/// A dataplane killed outright (panic = "abort", SIGKILL, OOM): its links
/// close with its fds and the kernel detaches the program by itself.
#[test]
fn a_crashed_dataplane_leaves_nothing_attached() {
    let Some((ns, xa, _)) = veth_lab("xdp-crash") else {
        return;
    };
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "crash_helper_attaches_then_aborts",
            "--ignored",
            "--nocapture",
        ])
        .env("ESPADA_XDP_CRASH_NETNS", &ns.name)
        .output()
        .expect("run helper");
    assert!(!out.status.success(), "the helper should have aborted");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("attached"),
        "helper output: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(settles_detached(xa));
    assert_eq!(XdpSteer::detach_stale(xa).expect("stale"), 0);
}

/// Run by `a_crashed_dataplane_leaves_nothing_attached` in a child
/// process; does nothing when run on its own.
#[test]
#[ignore]
fn crash_helper_attaches_then_aborts() {
    let Ok(name) = std::env::var("ESPADA_XDP_CRASH_NETNS") else {
        return;
    };
    // Not ours to delete, even if this helper fails.
    let ns = std::mem::ManuallyDrop::new(NetNs { name });
    ns.enter();
    let ifindex = dataplane::io::xdp::ifindex_of("xa").expect("xa");
    let mut steer = XdpSteer::load().expect("load");
    steer.attach(ifindex).expect("attach");
    println!("attached");
    std::process::abort();
}

// ---- The whole chain, with real frames ----

/// Sends `frame` out of `ifindex` through an AF_PACKET socket.
fn send_raw(ifindex: u32, frame: &[u8]) {
    // SAFETY: plain socket(2), checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(fd >= 0, "AF_PACKET socket");
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: 0,
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0; 8],
    };
    // SAFETY: sending our buffer to a valid sockaddr_ll of the right size.
    let n = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(
        n,
        frame.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
    // SAFETY: closing our own socket.
    unsafe { libc::close(fd) };
}

#[test]
fn esp_sent_to_the_gateway_arrives_on_its_af_xdp_socket_and_ike_does_not() {
    let Some((ns, xa, xb)) = veth_lab("xdp-e2e") else {
        return;
    };
    let gw_mac = ns.mac("xa");
    let mut steer = XdpSteer::load().expect("load");
    steer.set_interface(xa, PortRole::Outside).expect("role");
    steer.add_local(IpAddr::V4(WAN_V4)).expect("local");
    let umem = Umem::new(64).expect("umem");
    let mut sock = XskSocket::new(&umem, None, xa, 0, 64, BindMode::Copy).expect("xsk");
    let addrs: Vec<u64> = umem.frame_addrs().collect();
    assert_eq!(sock.fill(&addrs), addrs.len());
    steer.register_xsk(xa, 0, sock.fd()).expect("register");
    assert_eq!(steer.attach(xa).expect("attach"), XdpMode::Native);

    let ike = ipv4_frame(gw_mac, PEER_V4, WAN_V4, UDP, &udp(500, 500, &[0x22; 28]));
    let esp_frame = ipv4_frame(gw_mac, PEER_V4, WAN_V4, ESP, &esp(0x9000));
    send_raw(xb, &ike);
    send_raw(xb, &esp_frame);

    let mut descs = [dataplane::io::xsk::Desc {
        addr: 0,
        len: 0,
        options: 0,
    }; 8];
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while got.is_empty() && std::time::Instant::now() < deadline {
        let n = sock.recv(&mut descs);
        for d in &descs[..n] {
            // SAFETY: the chunk came off the RX ring and is ours until we
            // give it back; no other slice of it exists.
            let chunk = unsafe { umem.chunk_mut(d.addr) }.expect("chunk");
            let off = (d.addr % u64::from(dataplane::io::xsk::FRAME_SIZE)) as usize;
            got.push(chunk[off..off + d.len as usize].to_vec());
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        got,
        vec![esp_frame],
        "only the ESP frame reaches the socket"
    );
    let c = steer.counters().expect("counters");
    assert_eq!(c.get(R::Esp), 1);
    assert_eq!(c.get(R::Ike), 1);
}
