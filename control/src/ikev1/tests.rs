//! Two engines against each other in memory, with a fake clock and a
//! network that can lose, duplicate or corrupt messages.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use dataplane::api::{Direction, EspMode, SaParams};
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{FlowKey, PolicyTag, PortRange, TrafficSelector};
use proptest::prelude::*;

use super::*;
use crate::config::ike::{IkeCipher, IkeHash};
use crate::config::model::SecretBytes;
use crate::ike::crypto::DhGroup;
use crate::ike::test_nat::{nat_in, nat_out, NAT_ADDR};
use crate::ike::wire::ikev1::ProtocolId;
use crate::ike::wire::ikev1::{ExchangeType, Message};

mod dynpeer;

const TAG: PolicyTag = PolicyTag { map: 1, seq: 10 };

fn sel(src: &str, dst: &str) -> TrafficSelector {
    TrafficSelector {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

struct Side {
    local: &'static str,
    peer: &'static str,
    lan: &'static str,
    remote_lan: &'static str,
}

const A4: Side = Side {
    local: "198.18.0.1",
    peer: "198.18.1.1",
    lan: "198.19.1.0/24",
    remote_lan: "198.19.2.0/24",
};
const B4: Side = Side {
    local: "198.18.1.1",
    peer: "198.18.0.1",
    lan: "198.19.2.0/24",
    remote_lan: "198.19.1.0/24",
};
const A6: Side = Side {
    local: "fd00:1::1",
    peer: "fd00:2::1",
    lan: "fd00:a::/64",
    remote_lan: "fd00:b::/64",
};
const B6: Side = Side {
    local: "fd00:2::1",
    peer: "fd00:1::1",
    lan: "fd00:b::/64",
    remote_lan: "fd00:a::/64",
};

fn proposal(cipher: IkeCipher, hash: IkeHash, group: DhGroup) -> IsakmpProposal {
    IsakmpProposal {
        priority: 10,
        cipher,
        hash,
        group,
        lifetime: 86_400,
    }
}

fn policy(s: &Side, psk: &str) -> Ikev1Policy {
    Ikev1Policy {
        isakmp: vec![proposal(
            IkeCipher::AesCbc(256),
            IkeHash::Sha256,
            DhGroup::Modp2048,
        )],
        keys: vec![PresharedKey {
            peer: format!("{}/{}", s.peer, if s.peer.contains(':') { 128 } else { 32 })
                .parse()
                .unwrap(),
            key: SecretBytes::new(psk.as_bytes().to_vec()),
        }],
        dpd: None,
        nat_keepalive: None,
        aggressive: false,
        maps: vec![MapEntry {
            tag: TAG,
            map: "VPN".into(),
            seq: 10,
            dynamic: None,
            peers: vec![s.peer.parse().unwrap()],
            discover: false,
            local: s.local.parse().unwrap(),
            transforms: vec![EspTransform {
                name: "LAB".into(),
                enc: EncAlg::AesCbc128,
                auth: AuthAlg::HmacSha1_96,
                tunnel: true,
            }],
            selectors: vec![sel(s.lan, s.remote_lan)],
            pfs: None,
            lifetime: IpsecLifetime::default(),
            replay_window: 64,
        }],
    }
}

/// Decides, for message number n (counting both sides) from A (true)
/// or B, whether the network loses it.
type LossModel = Box<dyn FnMut(usize, bool, &[u8]) -> bool>;

/// What one engine did, besides sending.
#[derive(Default)]
struct Seen {
    installs: Vec<(PolicyTag, TrafficSelector, SaParams, SaParams)>,
    deletes: Vec<(u32, u32)>,
    logs: Vec<String>,
    preinstalled: Vec<u32>,
    /// (outbound SPI, new peer port) of every [`Output::PeerPort`].
    peer_ports: Vec<(u32, u16)>,
}

struct Net {
    a: Engine,
    b: Engine,
    a_addr: SocketAddr,
    b_addr: SocketAddr,
    now: Instant,
    seen_a: Seen,
    seen_b: Seen,
    /// Messages sent so far (by both), numbered from 0.
    sent: usize,
    /// Decides, for message number n from A (true) or B, whether it is lost.
    lose: LossModel,
    /// Every datagram that crossed, for the fuzz tests.
    wire: Vec<(bool, Vec<u8>)>,
    /// A NAT in front of A: B sees A's packets from 198.18.0.99 and the
    /// port + `nat_shift`.
    nat: bool,
    /// 1000 unless a test changes the NAT's mapping.
    nat_shift: u16,
}

impl Net {
    fn new(a: Ikev1Policy, b: Ikev1Policy) -> Net {
        let a_addr = SocketAddr::new(a.maps[0].local, 500);
        let b_addr = SocketAddr::new(b.maps[0].local, 500);
        Net {
            a: Engine::new(a),
            b: Engine::new(b),
            a_addr,
            b_addr,
            now: Instant::now(),
            seen_a: Seen::default(),
            seen_b: Seen::default(),
            sent: 0,
            lose: Box::new(|_, _, _| false),
            wire: Vec::new(),
            nat: false,
            nat_shift: 1000,
        }
    }

    fn v4() -> Net {
        Net::new(policy(&A4, "espada-lab-psk"), policy(&B4, "espada-lab-psk"))
    }

    /// Delivers everything until both engines are quiet.
    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut moved = false;
            for from_a in [true, false] {
                let (src, dst, seen) = if from_a {
                    (&mut self.a, &mut self.b, &mut self.seen_a)
                } else {
                    (&mut self.b, &mut self.a, &mut self.seen_b)
                };
                let mut sends = Vec::new();
                while let Some(o) = src.poll_output() {
                    moved = true;
                    match o {
                        Output::Send {
                            local,
                            remote,
                            data,
                        } => sends.push((local, remote, data)),
                        Output::Install {
                            tag,
                            proxy,
                            inbound,
                            outbound,
                            inbound_ready,
                            keep_sending_on,
                        } => {
                            assert_eq!(
                                inbound_ready,
                                seen.preinstalled.contains(&inbound.spi),
                                "a responder's inbound SA goes in at QM2, an initiator's with the pair"
                            );
                            assert_eq!(
                                (&inbound.selectors, &outbound.selectors),
                                (&vec![proxy], &vec![proxy]),
                                "the pair carries the traffic it was negotiated for"
                            );
                            assert_eq!(keep_sending_on, None, "QM3 came: the peer has the pair");
                            seen.installs.push((tag, proxy, *inbound, *outbound))
                        }
                        Output::InstallInbound(sa) => {
                            // Before QM2 leaves: strongSwan sends on the
                            // new SA as soon as it has QM2.
                            assert!(
                                sends.is_empty(),
                                "a responder's inbound SA goes in before QM2 is sent"
                            );
                            seen.preinstalled.push(sa.spi)
                        }
                        Output::Delete {
                            inbound_spi,
                            outbound_spi,
                        } => seen.deletes.push((inbound_spi, outbound_spi)),
                        Output::Retire { .. } => {
                            panic!("IKEv1 keeps a rekeyed pair until it expires")
                        }
                        Output::Log(l) => seen.logs.push(l),
                        Output::PeerPort { outbound_spi, port } => {
                            seen.peer_ports.push((outbound_spi, port))
                        }
                        Output::Keepalive { .. } => {}
                    }
                }
                for (local, remote, data) in sends {
                    let n = self.sent;
                    self.sent += 1;
                    self.wire.push((from_a, data.clone()));
                    if (self.lose)(n, from_a, &data) {
                        continue;
                    }
                    match (self.nat, from_a) {
                        (false, _) => dst.handle_datagram(self.now, remote, local, &data),
                        (true, true) => dst.handle_datagram(
                            self.now,
                            remote,
                            nat_out(local, self.nat_shift),
                            &data,
                        ),
                        (true, false) => {
                            // A stale mapping: the NAT drops it.
                            if let Some(to) = nat_in(remote, self.a_addr.ip(), self.nat_shift) {
                                dst.handle_datagram(self.now, to, local, &data)
                            }
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the engines never went quiet");
    }

    /// Advances the clock by `secs`, one second at a time, running timers.
    fn run_for(&mut self, secs: u64) {
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            for e in [&mut self.a, &mut self.b] {
                if e.poll_timeout().is_some_and(|t| t <= self.now) {
                    e.handle_timeout(self.now);
                    // Whatever was due is done: a timer left in the past
                    // would spin the daemon's loop.
                    assert!(
                        e.poll_timeout().is_none_or(|t| t > self.now),
                        "a timer is still due after handle_timeout"
                    );
                }
            }
            self.pump();
        }
    }

    fn acquire_a(&mut self, flow: (&str, &str)) {
        self.a.acquire(self.now, TAG, ping(flow.0, flow.1));
        self.pump();
    }

    /// A's first QM1 (exchange type 32 at byte 18), captured off the wire.
    fn first_qm1_from_a(&self) -> Vec<u8> {
        self.wire
            .iter()
            .find(|(from_a, d)| *from_a && d.get(18) == Some(&32))
            .map(|(_, d)| d.clone())
            .expect("A sent a QM1")
    }
}

/// An ICMP flow from `src` to `dst`: what the tests' acquires carry.
fn ping(src: &str, dst: &str) -> FlowKey {
    FlowKey {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: 1,
        src_port: 0,
        dst_port: 0,
    }
}

fn assert_mirrored(
    a: &(PolicyTag, TrafficSelector, SaParams, SaParams),
    b: &(PolicyTag, TrafficSelector, SaParams, SaParams),
) {
    let (_, pa, ain, aout) = a;
    let (_, pb, bin, bout) = b;
    assert_eq!(aout.spi, bin.spi);
    assert_eq!(ain.spi, bout.spi);
    assert_ne!(ain.spi, aout.spi);
    assert_eq!(aout.keys.enc, bin.keys.enc);
    assert_eq!(aout.keys.auth, bin.keys.auth);
    assert_eq!(ain.keys.enc, bout.keys.enc);
    assert_ne!(
        ain.keys.enc, aout.keys.enc,
        "each direction has its own keys"
    );
    assert_eq!(pa.src, pb.dst);
    assert_eq!(pa.dst, pb.src);
    assert_eq!(ain.keys.enc.len(), ain.enc.key_len());
    assert_eq!(ain.keys.auth.len(), ain.auth.key_len());
}

#[test]
fn main_mode_and_quick_mode_install_mirrored_pairs() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_a.installs.len(), 1, "{:#?}", net.seen_a.logs);
    assert_eq!(net.seen_b.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
    let (tag, proxy, inb, out) = &net.seen_a.installs[0];
    assert_eq!(*tag, TAG);
    assert_eq!(*proxy, sel("198.19.1.0/24", "198.19.2.0/24"));
    assert_eq!(
        (inb.enc, inb.auth),
        (EncAlg::AesCbc128, AuthAlg::HmacSha1_96)
    );
    assert_eq!(
        out.mode,
        EspMode::Tunnel {
            local: "198.18.0.1".parse().unwrap(),
            remote: "198.18.1.1".parse().unwrap()
        }
    );
    assert_eq!(inb.replay_window, 64);
    assert_eq!(inb.lifetime.hard_seconds, Some(3600));
    assert_eq!(inb.lifetime.hard_kilobytes, Some(4_608_000));
    assert!(inb.lifetime.soft_seconds < inb.lifetime.hard_seconds);
    // The initiator rekeys at 85-90% of the lifetime (spread), the
    // responder at 95%.
    let initiator_soft = inb.lifetime.soft_seconds.unwrap_or(0);
    assert!((3060..=3240).contains(&initiator_soft), "{initiator_soft}");
    assert_eq!(net.seen_b.installs[0].2.lifetime.soft_seconds, Some(3420));
    // Main Mode took six messages, Quick Mode three.
    assert_eq!(net.sent, 9);
    for (e, initiator) in [(&net.a, true), (&net.b, false)] {
        let sas = e.isakmp_sas(net.now);
        assert_eq!(sas.len(), 1);
        assert_eq!(sas[0].state, "QM_IDLE");
        assert_eq!(sas[0].status, "ACTIVE");
        assert_eq!(sas[0].encr, "aes:256");
        assert_eq!(sas[0].hash, "sha256");
        assert_eq!(sas[0].group, Some(14));
        // IOS shows dst = responder, src = initiator on both sides.
        assert_eq!(
            sas[0].dst,
            "198.18.1.1".parse::<IpAddr>().unwrap(),
            "initiator {initiator}"
        );
        assert_eq!(e.stats().phase1_established, 1);
        assert_eq!(e.stats().phase2_established, 1);
        assert_eq!(e.pairs().count(), 1);
    }
    // A second packet of the flow while the pair exists starts nothing.
    let before = net.sent;
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.sent, before);
}

#[test]
fn ipv6_3des_sha1_group2_and_pfs_negotiate_too() {
    let mut a = policy(&A6, "espada-lab-psk6");
    let mut b = policy(&B6, "espada-lab-psk6");
    for p in [&mut a, &mut b] {
        p.isakmp.insert(
            0,
            proposal(IkeCipher::TripleDes, IkeHash::Sha1, DhGroup::Modp1024),
        );
        p.maps[0].pfs = Some(DhGroup::Modp1536);
        p.maps[0].transforms[0].enc = EncAlg::TripleDesCbc;
        p.maps[0].transforms[0].auth = AuthAlg::HmacSha256_128;
    }
    // B prefers group 14 but A's first offer (3DES/group 2) is also one of
    // B's: B picks in its own priority order.
    b.isakmp.swap(0, 1);
    let mut net = Net::new(a, b);
    net.a.acquire(
        net.now,
        TAG,
        FlowKey {
            src: "fd00:a::10".parse().unwrap(),
            dst: "fd00:b::10".parse().unwrap(),
            proto: 58,
            src_port: 0,
            dst_port: 0,
        },
    );
    net.pump();
    assert_eq!(net.seen_a.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_eq!(net.seen_b.installs.len(), 1);
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
    assert_eq!(net.seen_a.installs[0].2.enc, EncAlg::TripleDesCbc);
    assert_eq!(net.a.isakmp_sas(net.now)[0].group, Some(14));
    assert_eq!(net.seen_a.installs[0].1, sel("fd00:a::/64", "fd00:b::/64"));
}

#[test]
fn a_wrong_preshared_key_fails_and_is_counted() {
    let mut net = Net::new(policy(&A4, "espada-lab-psk"), policy(&B4, "not-the-same"));
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.run_for(60);
    assert!(net.seen_a.installs.is_empty() && net.seen_b.installs.is_empty());
    let b = net.b.stats();
    assert!(b.decrypt_failed + b.hash_mismatch >= 1, "{b:?}");
    assert_eq!(net.a.stats().retransmit_limit, 1);
    assert!(net.a.isakmp_sas(net.now).is_empty());
    assert!(net
        .seen_b
        .logs
        .iter()
        .any(|l| l.contains("IKMP_BAD_MESSAGE") || l.contains("does not verify")));
}

#[test]
fn a_refused_qm1_sent_again_is_refused_again_not_taken_for_a_replay() {
    let mut b = policy(&B4, "espada-lab-psk");
    b.maps[0].transforms[0].enc = EncAlg::TripleDesCbc;
    let mut net = Net::new(policy(&A4, "espada-lab-psk"), b);
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.b.stats().no_proposal_chosen, 1);
    let qm1 = net.first_qm1_from_a();
    // Its notify lost, A sends the same QM1 again.
    net.b.handle_datagram(net.now, net.b_addr, net.a_addr, &qm1);
    net.pump();
    assert_eq!(net.b.stats().no_proposal_chosen, 2);
    assert!(net.seen_b.installs.is_empty());
}

#[test]
fn no_common_isakmp_policy_is_refused_with_a_notification() {
    let mut b = policy(&B4, "espada-lab-psk");
    b.isakmp[0].group = DhGroup::Modp1536;
    let mut net = Net::new(policy(&A4, "espada-lab-psk"), b);
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.b.stats().no_proposal_chosen, 1);
    assert_eq!(net.a.stats().notifies_received, 1);
    assert!(net.a.isakmp_sas(net.now).is_empty(), "A gave up at once");
    assert!(net.seen_a.installs.is_empty());
}

#[test]
fn a_proxy_outside_the_responders_acl_is_refused() {
    let mut b = policy(&B4, "espada-lab-psk");
    b.maps[0].selectors = vec![sel("198.19.2.0/25", "198.19.1.0/24")];
    let mut net = Net::new(policy(&A4, "espada-lab-psk"), b);
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.b.stats().invalid_id, 1);
    assert!(net.seen_a.installs.is_empty() && net.seen_b.installs.is_empty());
    // A heard the refusal and stopped retransmitting.
    let sent = net.sent;
    net.run_for(20);
    assert_eq!(net.sent, sent);
    assert!(net
        .seen_b
        .logs
        .iter()
        .any(|l| l.contains("proxy identities not supported")));
}

#[test]
fn a_narrower_proposal_inside_the_acl_is_accepted() {
    let mut a = policy(&A4, "espada-lab-psk");
    a.maps[0].selectors = vec![sel("198.19.1.10/32", "198.19.2.0/25")];
    let mut net = Net::new(a, policy(&B4, "espada-lab-psk"));
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_b.installs.len(), 1);
    assert_eq!(
        net.seen_b.installs[0].1,
        sel("198.19.2.0/25", "198.19.1.10/32")
    );
}

#[test]
fn a_dynamic_entry_answers_any_peer_with_a_wildcard_key() {
    let mut b = policy(&B4, "espada-lab-psk");
    b.keys[0].peer = "0.0.0.0/0".parse().unwrap();
    b.maps[0].peers.clear();
    b.maps[0].dynamic = Some(("DYN".into(), 10));
    b.maps[0].selectors.clear();
    let mut net = Net::new(policy(&A4, "espada-lab-psk"), b);
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_b.installs.len(), 1);
    assert_eq!(
        net.seen_b.installs[0].1,
        sel("198.19.2.0/24", "198.19.1.0/24")
    );
    // A dynamic entry never starts a negotiation itself.
    let sent = net.sent;
    net.b
        .acquire(net.now, TAG, ping("198.19.2.10", "198.19.1.99"));
    net.pump();
    assert_eq!(net.sent, sent);
}

#[test]
fn lost_messages_are_retransmitted_and_duplicates_answered() {
    // Lose MM3 (A's second message), MM6 (B's third) and the QM2 that
    // follows B's repeated MM6 (B's fifth), once each.
    let mut net = Net::v4();
    let (mut from_a_n, mut from_b_n) = (0, 0);
    net.lose = Box::new(move |_, from_a, _| {
        let n = if from_a { &mut from_a_n } else { &mut from_b_n };
        *n += 1;
        matches!((from_a, *n), (true, 2) | (false, 3) | (false, 5))
    });
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.run_for(30);
    assert_eq!(net.seen_a.installs.len(), 1, "{:#?}", net.seen_a.logs);
    assert_eq!(net.seen_b.installs.len(), 1);
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
    let retransmitted = net.a.stats().retransmitted + net.b.stats().retransmitted;
    assert!(
        retransmitted >= 3,
        "{:?} {:?}",
        net.a.stats(),
        net.b.stats()
    );
    assert!(net.b.stats().duplicates >= 1, "{:?}", net.b.stats());
}

/// Main Mode's encrypted messages (MM5 from A, MM6 from B) are lost and a
/// copy with a flipped byte arrives in their place, as from someone who
/// saw the cookies on the wire: each side drops the forgery and carries
/// on, and the retransmissions finish Main Mode.
#[test]
fn a_forged_mm5_or_mm6_is_dropped_and_main_mode_goes_on() {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    let mut net = Net::v4();
    // Lost: A's first MM5, and B's MM6 while `block_b` is set.
    // (from A, datagram) of each side's first encrypted Main Mode message.
    type Held = Rc<RefCell<Vec<(bool, Vec<u8>)>>>;
    let held: Held = Rc::default();
    let block_b = Rc::new(Cell::new(true));
    let (keep, blocking) = (held.clone(), block_b.clone());
    net.lose = Box::new(move |_, from_a, d| {
        let encrypted_mm = d.get(18) == Some(&2) && d.get(19).is_some_and(|f| f & 1 != 0);
        let mut held = keep.borrow_mut();
        if !encrypted_mm {
            return false;
        }
        let first = !held.iter().any(|(a, _)| *a == from_a);
        if first {
            held.push((from_a, d.to_vec()));
        }
        if from_a {
            first
        } else {
            blocking.get()
        }
    });
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    // The second cipher block after the 28-byte header: inside HASH.
    let forge = |d: &[u8]| {
        let mut d = d.to_vec();
        d[28 + 16] ^= 0x55;
        d
    };
    // B gets a forged MM5 and keeps the exchange.
    let mm5 = held.borrow()[0].1.clone();
    net.b
        .handle_datagram(net.now, net.b_addr, net.a_addr, &forge(&mm5));
    net.pump();
    let failed = |s: &Stats| s.decrypt_failed + s.hash_mismatch + s.malformed;
    assert_eq!(failed(net.b.stats()), 1);
    assert_eq!(net.b.stats().phase1_established, 0);
    // A's MM5 comes again and B answers; its MM6 is lost.
    net.run_for(1);
    assert_eq!(net.b.stats().phase1_established, 1);
    assert_eq!(net.a.stats().phase1_established, 0);
    // A gets a forged MM6 and waits for the real one.
    let mm6 = held.borrow()[1].1.clone();
    net.a
        .handle_datagram(net.now, net.a_addr, net.b_addr, &forge(&mm6));
    net.pump();
    assert_eq!(failed(net.a.stats()), 1);
    block_b.set(false);
    net.run_for(10);
    assert_eq!(net.seen_a.installs.len(), 1, "{:#?}", net.seen_a.logs);
    assert_eq!(net.seen_b.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
}

#[test]
fn clear_crypto_sa_deletes_both_sides() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let (ain, aout) = (net.seen_a.installs[0].2.spi, net.seen_a.installs[0].3.spi);
    net.a.clear_sa(net.now);
    net.pump();
    assert_eq!(net.seen_a.deletes, vec![(ain, aout)]);
    assert_eq!(net.seen_b.deletes, vec![(aout, ain)]);
    assert_eq!(net.b.pairs().count(), 0);
    // The ISAKMP SA stays; the next packet negotiates a new pair over it.
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_a.installs.len(), 2);
    assert_eq!(net.a.stats().phase1_established, 1);
    // clear crypto isakmp removes the ISAKMP SA on both sides.
    net.a.clear_isakmp(net.now);
    net.pump();
    assert!(net.a.isakmp_sas(net.now).is_empty());
    assert!(net.b.isakmp_sas(net.now).is_empty());
    assert_eq!(net.b.pairs().count(), 1, "IPsec SAs outlive the ISAKMP SA");
}

#[test]
fn a_delete_goes_only_for_the_isakmp_sa_or_pair_it_names() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let (ain, aout) = (net.seen_a.installs[0].2.spi, net.seen_a.installs[0].3.spi);
    // An ISAKMP SA that does not exist, named over the one that does.
    net.a
        .send_delete(net.now, ProtocolId::ISAKMP, vec![0x5a; 16]);
    net.pump();
    assert_eq!(
        net.b.isakmp_sas(net.now).len(),
        1,
        "not the SA it came over"
    );
    // An ESP SPI that is not the peer's.
    net.a.send_delete(
        net.now,
        ProtocolId::IPSEC_ESP,
        0x0bad_0bad_u32.to_be_bytes().to_vec(),
    );
    net.pump();
    assert!(net.seen_b.deletes.is_empty());
    // Its own ones.
    net.a
        .send_delete(net.now, ProtocolId::IPSEC_ESP, ain.to_be_bytes().to_vec());
    net.pump();
    assert_eq!(net.seen_b.deletes, vec![(aout, ain)]);
    let isakmp = net.b.isakmp_sas(net.now);
    assert_eq!(isakmp.len(), 1);
    net.a.clear_isakmp(net.now);
    net.pump();
    assert!(
        net.b.isakmp_sas(net.now).is_empty(),
        "the SA that names itself goes"
    );
}

#[test]
fn a_flood_of_spoofed_first_messages_does_not_keep_a_real_peer_out() {
    for aggressive in [false, true] {
        spoofed_first_messages_then_the_real_one(aggressive);
    }
}

/// 256 spoofed MM1s (or AM1s) fill B's half-open places, then A's real
/// one comes: the oldest spoofed one makes room.
fn spoofed_first_messages_then_the_real_one(aggressive: bool) {
    let mut a = policy(&A4, "espada-lab-psk");
    a.aggressive = aggressive;
    let mut net = Net::new(a, policy(&B4, "espada-lab-psk"));
    net.a
        .acquire(net.now, TAG, ping("198.19.1.10", "198.19.2.10"));
    let (local, remote, data) = std::iter::from_fn(|| net.a.poll_output())
        .find_map(|o| match o {
            Output::Send {
                local,
                remote,
                data,
            } => Some((local, remote, data)),
            _ => None,
        })
        .expect("A sends its first message");
    assert_eq!(data[18], if aggressive { 4 } else { 2 });
    // 256 first messages from A's address (other ports, other cookies)
    // that nobody will ever answer: every half-open place taken.
    for k in 0..256u16 {
        let mut spoofed = data.clone();
        spoofed[..2].copy_from_slice(&k.to_be_bytes());
        spoofed[2] ^= 0x5a;
        let from = SocketAddr::new(local.ip(), 20000 + k);
        net.b.handle_datagram(net.now, remote, from, &spoofed);
    }
    while net.b.poll_output().is_some() {}
    assert_eq!(net.b.isakmp_sas(net.now).len(), 256);
    // The real one still gets its ISAKMP SA and the pair.
    net.b.handle_datagram(net.now, remote, local, &data);
    net.pump();
    assert_eq!(net.a.stats().phase1_established, 1);
    assert_eq!(net.seen_a.installs.len(), 1);
    assert_eq!(net.b.stats().half_open_limit, 1);
}

#[test]
fn a_quick_mode_sent_again_after_it_was_forgotten_is_not_negotiated_again() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_b.preinstalled.len(), 1);
    let qm1 = net.first_qm1_from_a();
    net.run_for(40);
    net.b.handle_datagram(net.now, net.b_addr, net.a_addr, &qm1);
    net.pump();
    assert_eq!(
        net.seen_b.preinstalled.len(),
        1,
        "no inbound SA for the replay"
    );
    assert_eq!(net.seen_b.installs.len(), 1);
}

#[test]
fn soft_expiry_rekeys_and_hard_expiry_deletes() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let old_in = net.seen_a.installs[0].2.spi;
    let old_out = net.seen_a.installs[0].3.spi;
    net.a
        .sa_expired(net.now, Direction::Outbound, old_out, false);
    net.pump();
    assert_eq!(net.seen_a.installs.len(), 2);
    assert_eq!(net.seen_b.installs.len(), 2);
    assert_mirrored(&net.seen_a.installs[1], &net.seen_b.installs[1]);
    // A second soft expiry of the replaced pair does nothing.
    let sent = net.sent;
    net.a.sa_expired(net.now, Direction::Inbound, old_in, false);
    net.pump();
    assert_eq!(net.sent, sent);
    net.a.sa_expired(net.now, Direction::Inbound, old_in, true);
    net.pump();
    assert_eq!(net.seen_a.deletes, vec![(old_in, old_out)]);
    assert_eq!(net.seen_b.deletes, vec![(old_out, old_in)]);
    assert_eq!(net.a.pairs().count(), 1);
}

/// Host `n` of A's LAN (198.19.16.1 on), in A's ACL of
/// [`proxy_per_host`].
fn host(n: usize) -> String {
    format!("198.19.{}.{}", 16 + n / 250, 1 + n % 250)
}

/// A with an ACL line (a proxy, so a pair) per host of its LAN, `hosts`
/// of them, and B with an ACL that takes them all.
fn proxy_per_host(hosts: usize) -> (Ikev1Policy, Ikev1Policy) {
    let mut a = policy(&A4, "espada-lab-psk");
    a.maps[0].selectors = (0..hosts)
        .map(|n| sel(&format!("{}/32", host(n)), "198.19.2.0/24"))
        .collect();
    let mut b = policy(&B4, "espada-lab-psk");
    b.maps[0].selectors = vec![sel("198.19.2.0/24", "198.19.0.0/16")];
    (a, b)
}

#[test]
fn a_peer_gets_at_most_its_pair_limit_and_its_rekeys_still_go_through() {
    // A asks for a pair per host of its LAN, B's ACL takes them all.
    const HOSTS: usize = 1030;
    let (a, b) = proxy_per_host(HOSTS);
    let mut net = Net::new(a, b);
    for n in 0..HOSTS {
        net.acquire_a((&host(n), "198.19.2.10"));
    }
    assert_eq!(net.seen_b.installs.len(), 1024);
    assert_eq!(net.b.stats().pair_limit, (HOSTS - 1024) as u64);
    assert!(net
        .seen_b
        .logs
        .iter()
        .any(|l| l.contains("holds 1024 SA pairs and negotiations")));
    // At the limit, a pair B holds is rekeyed all the same.
    let (_, _, _, out) = &net.seen_a.installs[0];
    net.a
        .sa_expired(net.now, Direction::Outbound, out.spi, false);
    net.pump();
    assert_eq!(net.seen_b.installs.len(), 1025);
    assert_eq!(net.b.stats().pair_limit, (HOSTS - 1024) as u64);
    // And again and again: each rekey deletes the pair superseded two
    // rekeys before, so pairs do not pile up however often it comes.
    let first = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    for n in 0..3 {
        let (_, _, _, out) = net.seen_a.installs.last().expect("the rekey");
        net.a
            .sa_expired(net.now, Direction::Outbound, out.spi, false);
        net.pump();
        assert_eq!(net.seen_b.installs.len(), 1026 + n);
    }
    assert_eq!(net.b.stats().pair_limit, (HOSTS - 1024) as u64);
    assert!(
        net.seen_b.deletes.contains(&first),
        "{:?}",
        net.seen_b.deletes
    );
    assert_eq!(net.b.pairs().count(), 1024 + 2);
}

/// A peer at its limit of 1 024 proxies rekeys every pair, three rounds
/// in a row: each proxy ends with its current pair and two superseded
/// ones, and no rekey is refused.
#[test]
fn a_peer_at_its_pair_limit_rekeys_every_pair_again_and_again() {
    const HOSTS: usize = 1024;
    let (a, b) = proxy_per_host(HOSTS);
    let mut net = Net::new(a, b);
    for n in 0..HOSTS {
        net.acquire_a((&host(n), "198.19.2.10"));
    }
    assert_eq!(net.b.pairs().count(), HOSTS);
    for round in 1..=3 {
        let current: Vec<u32> = net.seen_a.installs[net.seen_a.installs.len() - HOSTS..]
            .iter()
            .map(|(_, _, _, out)| out.spi)
            .collect();
        for spi in current {
            net.a.sa_expired(net.now, Direction::Outbound, spi, false);
            net.pump();
        }
        assert_eq!(
            net.seen_b.installs.len(),
            HOSTS * (round + 1),
            "round {round}"
        );
        assert_eq!(net.b.stats().pair_limit, 0, "round {round}");
    }
    assert_eq!(net.b.pairs().count(), 3 * HOSTS);
    assert_eq!(net.seen_b.deletes.len(), HOSTS, "the first pairs went");
}

/// The peer picks our outbound SPIs, so a new pair's outbound SPI can be
/// the inbound SPI of another pair (by chance at a hub's scale, or chosen
/// by a peer that saw it on the wire): an expiry names its direction and
/// touches only its own pair.
#[test]
fn an_expiry_reaches_only_the_pair_whose_sa_in_that_direction_has_the_spi() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let (x, y) = (net.seen_a.installs[0].2.spi, net.seen_a.installs[0].3.spi);
    // B answers the rekey with A's first inbound SPI as its own.
    net.b.force_next_spi(x);
    net.a.sa_expired(net.now, Direction::Outbound, y, false);
    net.pump();
    let z = net.seen_a.installs[1].2.spi;
    assert_eq!(net.seen_a.installs[1].3.spi, x);
    assert_eq!(net.a.pairs().count(), 2, "the old pair lives on to expire");
    net.a.sa_expired(net.now, Direction::Outbound, x, true);
    net.pump();
    assert_eq!(net.seen_a.deletes, vec![(z, x)]);
    net.a.sa_expired(net.now, Direction::Inbound, x, true);
    net.pump();
    assert_eq!(net.seen_a.deletes, vec![(z, x), (x, y)]);
}

#[test]
fn a_pair_the_dataplane_refused_is_deleted_on_both_sides() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let (ain, aout) = (net.seen_a.installs[0].2.spi, net.seen_a.installs[0].3.spi);
    net.a.pair_refused(net.now, ain);
    net.pump();
    assert_eq!(net.seen_a.deletes, vec![(ain, aout)]);
    assert_eq!(net.seen_b.deletes, vec![(aout, ain)]);
    assert_eq!((net.a.pairs().count(), net.b.pairs().count()), (0, 0));
    // The next packet negotiates a new pair.
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_a.installs.len(), 2);
}

/// A and B with a pair up, B's answers lost from here on, and A's rekey
/// of the pair started.
fn rekey_into_silence() -> Net {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let old_out = net.seen_a.installs[0].3.spi;
    net.lose = Box::new(|_, from_a, _| !from_a);
    net.a
        .sa_expired(net.now, Direction::Outbound, old_out, false);
    net.pump();
    net
}

/// A rekey that gets no answer gives up like any Quick Mode, but the old
/// pair (still carrying the traffic) is rekeyed again 10 s later, and
/// again, until the peer answers, instead of running into its hard
/// lifetime.
#[test]
fn an_unanswered_rekey_is_tried_again_until_the_peer_answers() {
    let mut net = rekey_into_silence();
    // Five retransmissions (2 + 4 + 8 + 8 + 8 s), the Quick Mode given
    // up, and the next try 10 s later.
    net.run_for(50);
    assert_eq!(net.a.stats().rekeys_failed, 1, "{:#?}", net.seen_a.logs);
    assert!(net
        .seen_a
        .logs
        .iter()
        .any(|l| l.contains("failed, retrying in 10 seconds")));
    assert!(net.seen_a.logs.iter().any(|l| l.contains("again")));
    assert_eq!(net.seen_a.installs.len(), 1);
    assert!(net.seen_a.deletes.is_empty(), "the old pair stays");
    net.lose = Box::new(|_, _, _| false);
    net.run_for(40);
    assert_eq!(net.seen_a.installs.len(), 2);
    let b_last = net.seen_b.installs.last().expect("B installed the pair");
    assert_mirrored(&net.seen_a.installs[1], b_last);
    // Rekeyed: nothing is tried again.
    let (failed, sent) = (net.a.stats().rekeys_failed, net.sent);
    net.run_for(30);
    assert_eq!((net.a.stats().rekeys_failed, net.sent), (failed, sent));
    assert_eq!(net.seen_a.installs.len(), 2);
}

/// Our rekey's pair refused by the dataplane (its outbound SPI taken):
/// the pair it was to replace is current again, and is rekeyed again
/// 10 s later.
#[test]
fn a_rekey_the_dataplane_refused_gives_the_old_pair_back_and_is_tried_again() {
    let mut net = Net::v4();
    let flow = ("198.19.1.10", "198.19.2.10");
    net.acquire_a(flow);
    let (old_in, old_out) = (net.seen_a.installs[0].2.spi, net.seen_a.installs[0].3.spi);
    net.a
        .sa_expired(net.now, Direction::Outbound, old_out, false);
    net.pump();
    assert_eq!(net.seen_a.installs.len(), 2);
    let (new_in, new_out) = (net.seen_a.installs[1].2.spi, net.seen_a.installs[1].3.spi);
    net.a.pair_refused(net.now, new_in);
    net.pump();
    assert_eq!(net.seen_a.deletes, vec![(new_in, new_out)]);
    assert_eq!(net.seen_b.deletes, vec![(new_out, new_in)]);
    assert_eq!(net.a.stats().rekeys_failed, 1);
    // The old pair is the entry's current one again: a packet for its
    // proxy negotiates nothing.
    let sent = net.sent;
    net.acquire_a(flow);
    assert_eq!(net.sent, sent);
    net.run_for(9);
    assert_eq!(net.seen_a.installs.len(), 2, "not before 10 s");
    net.run_for(2);
    assert_eq!(net.seen_a.installs.len(), 3);
    let b_last = net.seen_b.installs.last().expect("B installed the pair");
    assert_mirrored(&net.seen_a.installs[2], b_last);
    // The old pair goes at its hard lifetime; the new one stays.
    net.a.sa_expired(net.now, Direction::Inbound, old_in, true);
    net.pump();
    assert_eq!(net.a.pairs().count(), 1);
    assert_eq!(
        net.a.pairs().next().map(|p| p.inbound_spi),
        Some(net.seen_a.installs[2].2.spi)
    );
}

/// Our rekey's Quick Mode dropped with its ISAKMP SA (`clear crypto
/// isakmp`, a peer's delete, its lifetime) is a failed rekey too: tried
/// again 10 s later, over a new ISAKMP SA.
#[test]
fn a_rekey_whose_isakmp_sa_goes_is_tried_again() {
    let mut net = rekey_into_silence();
    net.run_for(2);
    net.a.clear_isakmp(net.now);
    net.pump();
    assert_eq!(net.a.stats().rekeys_failed, 1, "{:#?}", net.seen_a.logs);
    net.lose = Box::new(|_, _, _| false);
    net.run_for(12);
    assert_eq!(net.a.stats().phase1_established, 2);
    assert_eq!(net.seen_a.installs.len(), 2);
    let b_last = net.seen_b.installs.last().expect("B installed the pair");
    assert_mirrored(&net.seen_a.installs[1], b_last);
}

/// A pair from the peer's rekey that our dataplane refused gives the old
/// pair back too, but trying again is the peer's business: nothing is
/// scheduled here.
#[test]
fn a_peer_rekey_the_dataplane_refused_gives_the_old_pair_back_without_a_retry() {
    let mut net = Net::v4();
    let flow = ("198.19.1.10", "198.19.2.10");
    net.acquire_a(flow);
    let b_out = net.seen_b.installs[0].3.spi;
    net.b.sa_expired(net.now, Direction::Outbound, b_out, false);
    net.pump();
    assert_eq!(net.seen_a.installs.len(), 2);
    let new_in = net.seen_a.installs[1].2.spi;
    net.a.pair_refused(net.now, new_in);
    net.pump();
    assert_eq!(net.a.stats().rekeys_failed, 0);
    assert_eq!(net.a.pairs().count(), 1);
    // Current again: a packet for its proxy negotiates nothing, and no
    // timer of A's starts anything.
    let sent = net.sent;
    net.acquire_a(flow);
    net.lose = Box::new(|_, from_a, _| from_a);
    net.run_for(30);
    assert_eq!(net.seen_a.installs.len(), 2);
    assert!(
        net.wire[sent..].iter().all(|(from_a, _)| !from_a),
        "A sent nothing"
    );
}

/// A and B with `crypto isakmp keepalive 10 2 periodic`.
fn periodic_dpd_net() -> Net {
    let dpd = Dpd {
        interval: 10,
        retry: 2,
        periodic: true,
    };
    let mut a = policy(&A4, "espada-lab-psk");
    let mut b = policy(&B4, "espada-lab-psk");
    a.dpd = Some(dpd);
    b.dpd = Some(dpd);
    Net::new(a, b)
}

#[test]
fn dead_peer_detection_keeps_live_peers_and_removes_dead_ones() {
    let mut net = periodic_dpd_net();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.run_for(35);
    assert!(net.seen_a.logs.iter().any(|l| l.contains("R_U_THERE")));
    assert!(net.seen_a.deletes.is_empty() && net.seen_b.deletes.is_empty());
    assert!(net.a.isakmp_sas(net.now)[0].dpd);
    // B goes silent.
    net.lose = Box::new(|_, from_a, _| !from_a);
    net.run_for(40);
    assert_eq!(net.a.stats().dpd_dead, 1, "{:#?}", net.seen_a.logs);
    assert_eq!(net.seen_a.deletes.len(), 1);
    assert!(net.a.pairs().next().is_none());
    assert!(net.a.isakmp_sas(net.now).is_empty());
}

#[test]
fn a_missing_key_is_refused_before_sending() {
    let mut a = policy(&A4, "x");
    a.keys.clear();
    let mut net = Net::new(a, policy(&B4, "x"));
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.sent, 0);
    assert_eq!(net.a.stats().no_preshared_key, 1);
}

/// Every message of a full negotiation, as B saw them, for mutation.
fn recorded_exchange() -> Vec<(bool, Vec<u8>)> {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.wire
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random bytes and corrupted real messages never panic an engine,
    /// fresh or mid-negotiation, and never install anything.
    #[test]
    fn corrupted_messages_are_dropped_without_harm(
        which in 0usize..9,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        truncate in proptest::option::of(any::<usize>()),
        junk in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let wire = recorded_exchange();
        let mut net = Net::v4();
        net.acquire_a(("198.19.1.10", "198.19.2.10"));
        let (from_a, mut msg) = wire[which % wire.len()].clone();
        for (at, x) in flips {
            let i = at % msg.len();
            msg[i] ^= x | 1;
        }
        if let Some(t) = truncate {
            msg.truncate(t % (msg.len() + 1));
        }
        let before_a = net.seen_a.installs.len();
        let (dst, src_addr, dst_addr) = if from_a {
            (&mut net.b, net.a_addr, net.b_addr)
        } else {
            (&mut net.a, net.b_addr, net.a_addr)
        };
        dst.handle_datagram(net.now, dst_addr, src_addr, &msg);
        dst.handle_datagram(net.now, dst_addr, src_addr, &junk);
        let mut fresh = Engine::new(policy(&B4, "espada-lab-psk"));
        fresh.handle_datagram(net.now, net.b_addr, net.a_addr, &msg);
        fresh.handle_datagram(net.now, net.b_addr, net.a_addr, &junk);
        net.pump();
        net.run_for(3);
        prop_assert!(net.seen_a.installs.len() <= before_a + 1);
        while let Some(o) = fresh.poll_output() {
            let installed = matches!(o, Output::Install { .. });
            prop_assert!(!installed);
        }
    }
}

#[test]
fn a_restarted_peer_s_initial_contact_removes_its_old_sas() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let (old_b_in, old_b_out) = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    // A restarts: a fresh engine with no memory of the SAs.
    net.a = Engine::new(policy(&A4, "espada-lab-psk"));
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_b.deletes, vec![(old_b_in, old_b_out)]);
    assert_eq!(net.b.isakmp_sas(net.now).len(), 1);
    assert_eq!(net.b.pairs().count(), 1);
    assert_eq!(net.seen_b.installs.len(), 2);
}

#[test]
fn a_restarted_aggressive_mode_peer_s_initial_contact_removes_its_old_sas() {
    let aggressive = || {
        let mut a = policy(&A4, "espada-lab-psk");
        a.aggressive = true;
        a
    };
    let mut net = Net::new(aggressive(), policy(&B4, "espada-lab-psk"));
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let (old_b_in, old_b_out) = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    // A restarts: a fresh engine with no memory of the SAs, whose AM3
    // says so.
    net.a = Engine::new(aggressive());
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_b.deletes, vec![(old_b_in, old_b_out)]);
    assert_eq!(net.b.isakmp_sas(net.now).len(), 1);
    assert_eq!(net.b.pairs().count(), 1);
    assert_eq!(net.seen_b.installs.len(), 2);
}

/// B's policy for an A whose packets reach it from the simulated NAT.
fn b_seeing_a_behind_nat() -> Ikev1Policy {
    let mut b = policy(&B4, "espada-lab-psk");
    b.keys[0].peer = format!("{NAT_ADDR}/32").parse().unwrap();
    b.maps[0].peers = vec![NAT_ADDR.parse().unwrap()];
    b
}

/// A (with `a`'s policy) behind the simulated NAT, B in front, and the
/// pair A's first packet negotiates.
fn through_nat(a: Ikev1Policy) -> Net {
    let mut net = Net::new(a, b_seeing_a_behind_nat());
    net.nat = true;
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net
}

#[test]
fn a_nat_between_the_peers_moves_ike_to_4500_and_encapsulates_esp() {
    let mut a = policy(&A4, "espada-lab-psk");
    a.nat_keepalive = Some(20);
    let mut net = through_nat(a);
    assert_eq!(net.seen_a.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_eq!(net.seen_b.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
    let a_out = &net.seen_a.installs[0].3;
    let b_out = &net.seen_b.installs[0].3;
    assert_eq!(
        a_out.udp_encap,
        Some(dataplane::api::UdpEncap {
            src_port: 4500,
            dst_port: 4500
        })
    );
    // B answers the NAT's port for A's 4500.
    assert_eq!(
        b_out.udp_encap,
        Some(dataplane::api::UdpEncap {
            src_port: 4500,
            dst_port: 5500
        })
    );
    assert_eq!(
        b_out.mode,
        EspMode::Tunnel {
            local: "198.18.1.1".parse().unwrap(),
            remote: NAT_ADDR.parse().unwrap()
        }
    );
    assert!(net.a.isakmp_sas(net.now)[0].nat_t && net.b.isakmp_sas(net.now)[0].nat_t);
    // The encrypted Main Mode messages and everything after went to 4500.
    assert!(net
        .seen_a
        .logs
        .iter()
        .any(|l| l.contains("we are behind a NAT")));
    assert!(net
        .seen_b
        .logs
        .iter()
        .any(|l| l.contains("the peer is behind a NAT")));
    // A, behind the NAT, keeps the mapping alive; B does not.
    let mut keepalives = 0;
    for _ in 0..45 {
        net.now += Duration::from_secs(1);
        for (e, is_a) in [(&mut net.a, true), (&mut net.b, false)] {
            if e.poll_timeout().is_some_and(|t| t <= net.now) {
                e.handle_timeout(net.now);
            }
            while let Some(o) = e.poll_output() {
                if let Output::Keepalive { local, .. } = o {
                    assert!(is_a);
                    assert_eq!(local.port(), 4500);
                    keepalives += 1;
                }
            }
        }
    }
    assert_eq!(keepalives, 2);
}

#[test]
fn a_new_nat_mapping_moves_the_isakmp_sa_and_the_outbound_esp_to_the_new_port() {
    let dpd = Dpd {
        interval: 10,
        retry: 2,
        periodic: true,
    };
    // Only A runs DPD, so A's informationals are its R-U-THEREs (B still
    // answers them: it announced DPD).
    let mut a = policy(&A4, "espada-lab-psk");
    a.dpd = Some(dpd);
    let mut net = through_nat(a);
    let b_out = net.seen_b.installs[0].3.clone();
    assert_eq!(b_out.udp_encap.map(|u| u.dst_port), Some(5500));
    // A's first R-U-THERE, answered; kept for a replay below.
    net.run_for(12);
    let informational = |d: &Vec<u8>| d.get(18) == Some(&5);
    let rut = net
        .wire
        .iter()
        .rev()
        .find(|(from_a, d)| *from_a && informational(d))
        .map(|(_, d)| d.clone())
        .expect("A sent an R-U-THERE");
    // The NAT reboots: A's 4500 now leaves from 6500. A replay of that
    // R-U-THERE from the new port verifies (HASH(1)) but is not fresh (its
    // sequence number is not higher): B stays.
    net.nat_shift = 2000;
    let b_local: SocketAddr = "198.18.1.1:4500".parse().unwrap();
    let from_new: SocketAddr = format!("{NAT_ADDR}:6500").parse().unwrap();
    net.b.handle_datagram(net.now, b_local, from_new, &rut);
    net.pump();
    assert!(net.seen_b.peer_ports.is_empty(), "{:#?}", net.seen_b.logs);
    // A's next DPD R-U-THERE (authenticated, fresh) shows B the new
    // mapping; B's ACK goes there (the NAT drops what goes to 5500).
    net.run_for(25);
    assert_eq!(
        net.seen_b.peer_ports,
        vec![(b_out.spi, 6500)],
        "{:#?}",
        net.seen_b.logs
    );
    assert!(net
        .seen_b
        .logs
        .iter()
        .any(|l| l.contains("NAT mapping moved from port 5500 to 6500")));
    assert!(net.seen_a.peer_ports.is_empty(), "A's peer did not move");
    // B answers the new port, so DPD keeps the peers alive: nothing deleted.
    assert!(net.seen_a.deletes.is_empty() && net.seen_b.deletes.is_empty());
    assert_eq!(net.b.pairs().count(), 1);
}

#[test]
fn authenticated_esp_from_a_new_port_moves_the_pair_without_waiting_for_ike() {
    let mut net = through_nat(policy(&A4, "espada-lab-psk"));
    let (b_in, b_out) = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    // The dataplane reports ESP of the pair from the port B sends to
    // already, or from nowhere yet: nothing moves.
    net.b.esp_from_port(b_in, 5500);
    net.b.esp_from_port(b_in, 0);
    // An SPI of no pair: nothing either.
    net.b.esp_from_port(b_in ^ 1, 6500);
    // A is the side behind the NAT: its view of B never moves (RFC 3947
    // §7, RFC 7296 §2.23), whatever port its dataplane reports.
    let a_in = net.seen_a.installs[0].2.spi;
    net.a.esp_from_port(a_in, 9999);
    net.pump();
    assert!(net.seen_b.peer_ports.is_empty());
    assert!(net.seen_a.peer_ports.is_empty());
    // From 6500: B's ISAKMP SA and the pair's outbound SA follow.
    esp_moves_b_to_6500(&mut net, b_in, b_out, "moved from port 5500 to 6500 (ESP)");
}

/// The NAT maps A anew (port 6500) and B's dataplane reports the pair's
/// ESP from there: B's outbound SA follows once, logging `log`, and the
/// same report a second later moves nothing more.
fn esp_moves_b_to_6500(net: &mut Net, b_in: u32, b_out: u32, log: &str) {
    net.nat_shift = 2000;
    net.b.esp_from_port(b_in, 6500);
    net.pump();
    assert_eq!(net.seen_b.peer_ports, vec![(b_out, 6500)]);
    assert!(
        net.seen_b.logs.iter().any(|l| l.contains(log)),
        "{:#?}",
        net.seen_b.logs
    );
    net.b.esp_from_port(b_in, 6500);
    net.pump();
    assert_eq!(net.seen_b.peer_ports.len(), 1);
}

#[test]
fn a_pair_whose_isakmp_sa_is_gone_follows_its_esp_alone() {
    let mut net = through_nat(policy(&A4, "espada-lab-psk"));
    let (b_in, b_out) = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    // `clear crypto isakmp` on B: the IPsec SAs stay (as in IOS).
    net.b.clear_isakmp(net.now);
    net.pump();
    assert!(net.b.isakmp_sas(net.now).is_empty());
    assert_eq!(net.b.pairs().count(), 1);
    esp_moves_b_to_6500(
        &mut net,
        b_in,
        b_out,
        &format!("to 6500 (ESP): IPsec SA {b_out:#010x} follows"),
    );
}

#[test]
fn esp_from_another_port_moves_nothing_without_a_nat() {
    let mut net = Net::v4();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let b_in = net.seen_b.installs[0].2.spi;
    net.b.esp_from_port(b_in, 6500);
    net.pump();
    assert!(net.seen_b.peer_ports.is_empty());
}

#[test]
fn a_responder_s_early_inbound_sa_goes_if_qm3_never_comes() {
    let mut net = Net::v4();
    // A's fifth message is QM3: lose it and everything after.
    let mut from_a_n = 0;
    net.lose = Box::new(move |_, from_a, _| {
        if from_a {
            from_a_n += 1;
        }
        from_a && from_a_n >= 5
    });
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_b.preinstalled.len(), 1);
    assert!(net.seen_b.installs.is_empty());
    net.run_for(60);
    assert_eq!(net.seen_b.deletes, vec![(net.seen_b.preinstalled[0], 0)]);
    assert!(net.seen_b.installs.is_empty());
}

#[test]
fn a_responder_with_a_shorter_lifetime_says_so_and_both_use_it() {
    let mut b = policy(&B4, "espada-lab-psk");
    b.maps[0].lifetime = IpsecLifetime {
        seconds: 1200,
        kilobytes: 4_608_000,
    };
    let mut net = Net::new(policy(&A4, "espada-lab-psk"), b);
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_a.installs[0].2.lifetime.hard_seconds, Some(1200));
    assert_eq!(net.seen_b.installs[0].2.lifetime.hard_seconds, Some(1200));
    assert_eq!(
        net.seen_a.installs[0].2.lifetime.hard_kilobytes,
        Some(4_608_000)
    );
}

#[test]
fn aggressive_mode_negotiates_in_three_messages_and_quick_mode_follows() {
    let mut a = policy(&A4, "espada-lab-psk");
    a.aggressive = true;
    // A second policy of another group cannot be offered with AM's one KE.
    a.isakmp.push(proposal(
        IkeCipher::TripleDes,
        IkeHash::Sha1,
        DhGroup::Modp1024,
    ));
    let mut net = Net::new(a, policy(&B4, "espada-lab-psk"));
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.seen_a.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_eq!(net.seen_b.installs.len(), 1);
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
    assert_eq!(net.sent, 6, "3 Aggressive Mode + 3 Quick Mode messages");
    assert_eq!(net.b.isakmp_sas(net.now)[0].state, "QM_IDLE");
    // The exchange really was Aggressive Mode (type 4) on the wire.
    assert_eq!(net.wire[0].1[18], 4);
}

#[test]
fn aggressive_mode_through_a_nat_and_with_a_wrong_key() {
    let mut a = policy(&A4, "espada-lab-psk");
    a.aggressive = true;
    let net = through_nat(a.clone());
    assert_eq!(net.seen_b.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_eq!(
        net.seen_b.installs[0].3.udp_encap.map(|u| u.dst_port),
        Some(5500)
    );
    assert!(net.b.isakmp_sas(net.now)[0].nat_t);

    let mut b = b_seeing_a_behind_nat();
    b.keys[0].key = SecretBytes::new(b"wrong".to_vec());
    let mut net = Net::new(a, b);
    net.nat = true;
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.run_for(60);
    assert!(net.seen_a.installs.is_empty() && net.seen_b.installs.is_empty());
    // A checks HASH_R first; each AM2 B sends again fails it too, until
    // A gives up at its retransmission limit.
    assert!(net.a.stats().hash_mismatch >= 2, "{:?}", net.a.stats());
    assert_eq!(net.b.stats().hash_mismatch, 0);
    assert!(net.a.isakmp_sas(net.now).is_empty(), "A gave up");
    // NAT-D of an AM2 that does not verify is not believed, nor logged.
    assert!(
        !net.seen_a.logs.iter().any(|l| l.contains("NAT found")),
        "{:#?}",
        net.seen_a.logs
    );
}

/// B's AM2 is lost, and three forgeries of it arrive in its place, as
/// from someone who saw AM1's cookie on the wire: one with another
/// responder cookie, one with a changed KE, one choosing a proposal A
/// never offered. A drops each, keeps waiting, and AM1's retransmission
/// brings the real AM2.
#[test]
fn a_forged_am2_is_dropped_and_aggressive_mode_goes_on() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut a = policy(&A4, "espada-lab-psk");
    a.aggressive = true;
    let mut net = Net::new(a, policy(&B4, "espada-lab-psk"));
    let held: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let keep = held.clone();
    net.lose = Box::new(move |_, from_a, d| {
        let am2 = !from_a && d.get(18) == Some(&4);
        let mut held = keep.borrow_mut();
        let first = am2 && held.is_empty();
        if first {
            held.push(d.to_vec());
        }
        first
    });
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    assert_eq!(net.a.stats().phase1_established, 0);
    let am2 = held.borrow()[0].clone();
    // The body of the first payload of `kind` (its generic header walked).
    let body_of = |d: &[u8], kind: u8| {
        let (mut next, mut at) = (d[16], 28);
        while next != kind {
            next = d[at];
            at += usize::from(u16::from_be_bytes([d[at + 2], d[at + 3]]));
        }
        at + 4
    };
    let mut other_cookie = am2.clone();
    other_cookie[8] ^= 0x01;
    let mut other_ke = am2.clone();
    other_ke[body_of(&am2, 4) + 7] ^= 0x01;
    let mut other_sa = am2.clone();
    // The SA's first transform's first attribute: the cipher, changed.
    let sa = body_of(&am2, 1);
    let attr = sa + 8 + 8 + 8;
    assert_eq!(u16::from_be_bytes([am2[attr], am2[attr + 1]]), 0x8001);
    other_sa[attr + 3] ^= 0x04;
    for forged in [&other_cookie, &other_ke, &other_sa] {
        net.a
            .handle_datagram(net.now, net.a_addr, net.b_addr, forged);
        net.pump();
        assert_eq!(net.a.stats().phase1_established, 0);
    }
    let s = net.a.stats();
    assert_eq!((s.hash_mismatch, s.unexpected_message), (2, 1), "{s:?}");
    assert!(net.seen_a.installs.is_empty());
    net.run_for(10);
    assert_eq!(
        net.a.stats().phase1_established,
        1,
        "{:#?}",
        net.seen_a.logs
    );
    assert_eq!(net.seen_a.installs.len(), 1, "{:#?}", net.seen_a.logs);
    assert_eq!(net.seen_b.installs.len(), 1, "{:#?}", net.seen_b.logs);
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
}

#[test]
fn on_demand_dpd_stays_quiet_while_esp_arrives() {
    let dpd = Dpd {
        interval: 10,
        retry: 2,
        periodic: false,
    };
    let mut a = policy(&A4, "espada-lab-psk");
    a.dpd = Some(dpd);
    let mut net = Net::new(a, policy(&B4, "espada-lab-psk"));
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    let peer: IpAddr = "198.18.1.1".parse().unwrap();
    for _ in 0..30 {
        net.a.esp_received(net.now, &[peer].into());
        net.run_for(1);
    }
    assert!(!net.seen_a.logs.iter().any(|l| l.contains("R_U_THERE")));
    // No ESP any more: the next interval brings an R-U-THERE.
    net.run_for(12);
    assert!(net.seen_a.logs.iter().any(|l| l.contains("R_U_THERE")));
    assert!(net.seen_a.deletes.is_empty(), "B answers it");
}

#[test]
fn dpd_with_a_peer_that_never_announced_it_leaves_no_timer_behind() {
    let dpd = Dpd {
        interval: 10,
        retry: 2,
        periodic: true,
    };
    let mut a = policy(&A4, "espada-lab-psk");
    a.dpd = Some(dpd);
    let mut net = Net::new(a, policy(&B4, "espada-lab-psk"));
    // As if B's Main Mode messages had carried no DPD vendor ID.
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.a.forget_peer_dpd_for_tests();
    net.run_for(30);
    assert!(!net.seen_a.logs.iter().any(|l| l.contains("R_U_THERE")));
}

// ----- Tunnel Endpoint Discovery (seed 004) -----------------------------

use crate::ike::wire::ikev1::TedMessage;

/// One TED gateway: its outside address and the LAN behind it.
struct Gw {
    engine: Engine,
    outside: IpAddr,
    lan: dataplane::spd::IpPrefix,
    seen: Seen,
}

/// Gateways on one outside network, each with a LAN behind it. A
/// datagram to a gateway's outside address goes to its engine; one to a
/// host in a gateway's LAN is, if it is a TED message, intercepted by
/// that gateway's dataplane and handed to `handle_ted_probe` (what the
/// XDP half does); anything else is lost.
struct TedNet {
    gws: Vec<Gw>,
    now: Instant,
    /// Datagrams that reached no gateway (to, data).
    lost: Vec<(SocketAddr, Vec<u8>)>,
    sent: usize,
}

/// A discover entry as seed 004 compiles it: dynamic, no peers, the
/// wildcard key, `match address` from `lan` to `remote`.
fn ted_policy(outside: &str, lan: &str, remote: &str) -> Ikev1Policy {
    let mut p = policy(&A4, "abc123");
    p.keys = vec![PresharedKey {
        peer: "0.0.0.0/0".parse().unwrap(),
        key: SecretBytes::new(b"abc123".to_vec()),
    }];
    let m = &mut p.maps[0];
    m.map = "tedtag".into();
    m.dynamic = Some(("ted-map".into(), 10));
    m.peers = Vec::new();
    m.discover = true;
    m.local = outside.parse().unwrap();
    m.selectors = vec![sel(lan, remote)];
    p
}

impl TedNet {
    /// (outside, lan, what the ACL protects towards) per gateway.
    fn new(gws: &[(&str, &str, &str)]) -> TedNet {
        TedNet {
            gws: gws
                .iter()
                .map(|(o, l, r)| Gw {
                    engine: Engine::new(ted_policy(o, l, r)),
                    outside: o.parse().unwrap(),
                    lan: l.parse().unwrap(),
                    seen: Seen::default(),
                })
                .collect(),
            now: Instant::now(),
            lost: Vec::new(),
            sent: 0,
        }
    }

    /// Seed 004: Daphne (13.13.13.0/24 behind 11.11.11.1) and Fred
    /// (12.12.12.0/24 behind 11.11.11.2).
    fn seed() -> TedNet {
        TedNet::new(&[
            ("11.11.11.1", "13.13.13.0/24", "12.12.12.0/24"),
            ("11.11.11.2", "12.12.12.0/24", "13.13.13.0/24"),
        ])
    }

    fn pump(&mut self) {
        for _ in 0..1000 {
            let mut sends = Vec::new();
            for (i, g) in self.gws.iter_mut().enumerate() {
                while let Some(o) = g.engine.poll_output() {
                    match o {
                        Output::Send {
                            local,
                            remote,
                            data,
                        } => sends.push((i, local, remote, data)),
                        Output::Install {
                            tag,
                            proxy,
                            inbound,
                            outbound,
                            ..
                        } => g.seen.installs.push((tag, proxy, *inbound, *outbound)),
                        Output::InstallInbound(sa) => g.seen.preinstalled.push(sa.spi),
                        Output::Delete {
                            inbound_spi,
                            outbound_spi,
                        } => g.seen.deletes.push((inbound_spi, outbound_spi)),
                        Output::Retire { .. } => {
                            panic!("IKEv1 keeps a rekeyed pair until it expires")
                        }
                        Output::Log(l) => g.seen.logs.push(l),
                        Output::PeerPort { outbound_spi, port } => {
                            g.seen.peer_ports.push((outbound_spi, port))
                        }
                        Output::Keepalive { .. } => {}
                    }
                }
            }
            if sends.is_empty() {
                return;
            }
            for (from, local, remote, data) in sends {
                self.sent += 1;
                assert_eq!(
                    local.ip(),
                    self.gws[from].outside,
                    "sent from the outside address"
                );
                let now = self.now;
                if let Some(g) = self.gws.iter_mut().find(|g| g.outside == remote.ip()) {
                    g.engine.handle_datagram(now, remote, local, &data);
                } else if let Some(g) = self.gws.iter_mut().find(|g| g.lan.contains(&remote.ip())) {
                    if TedMessage::is_ted(&data) && remote.port() == 500 {
                        let outside = g.outside;
                        g.engine
                            .handle_ted_probe(now, outside, local, remote.ip(), &data);
                    } else {
                        self.lost.push((remote, data));
                    }
                } else {
                    self.lost.push((remote, data));
                }
            }
        }
        panic!("the gateways never went quiet");
    }

    fn acquire(&mut self, gw: usize, src: &str, dst: &str) {
        let now = self.now;
        self.gws[gw].engine.acquire(now, TAG, ping(src, dst));
    }

    fn run_for(&mut self, secs: u64) {
        for _ in 0..secs {
            self.now += Duration::from_secs(1);
            for g in &mut self.gws {
                if g.engine.poll_timeout().is_some_and(|t| t <= self.now) {
                    g.engine.handle_timeout(self.now);
                    assert!(g.engine.poll_timeout().is_none_or(|t| t > self.now));
                }
            }
            self.pump();
        }
    }

    fn logs(&self, gw: usize) -> String {
        self.gws[gw].seen.logs.join("\n")
    }
}

#[test]
fn ted_discovers_the_peer_then_main_mode_and_quick_mode_install_mirrored_pairs() {
    let mut net = TedNet::seed();
    // 13.13.13.14 pings 12.12.12.13, as in the seed.
    net.acquire(0, "13.13.13.14", "12.12.12.13");
    net.pump();
    let (d, f) = (&net.gws[0], &net.gws[1]);
    assert_eq!(d.seen.installs.len(), 1, "{}", net.logs(0));
    assert_eq!(f.seen.installs.len(), 1, "{}", net.logs(1));
    assert_mirrored(&d.seen.installs[0], &f.seen.installs[0]);
    assert_eq!(d.seen.installs[0].1, sel("13.13.13.0/24", "12.12.12.0/24"));
    assert_eq!(
        d.seen.installs[0].3.mode,
        EspMode::Tunnel {
            local: "11.11.11.1".parse().unwrap(),
            remote: "11.11.11.2".parse().unwrap()
        }
    );
    // Probe + response, Main Mode's six, Quick Mode's three.
    assert_eq!(net.sent, 11);
    assert!(net.lost.is_empty());
    let (ds, fs) = (d.engine.stats().clone(), f.engine.stats().clone());
    assert_eq!((ds.ted_probes_sent, ds.ted_peers_discovered), (1, 1));
    assert_eq!(fs.ted_probes_answered, 1);
    assert_eq!((ds.phase2_established, fs.phase2_established), (1, 1));
    let dl = net.logs(0);
    for words in [
        "IPSEC(tunnel discover request)",
        "GOT A PEER DISCOVERY MESSAGE FROM THE SA MANAGER!!!",
        "beginning peer discovery exchange",
        "sending packet to 12.12.12.13",
        "PEER_DISCOVERY (TED probe)",
        "received response to my peer discovery probe!",
        "ted negotiated proxies: 0 13.13.13.0/24:0, 12.12.12.0/24:0",
        "initiating IKE to 11.11.11.2 in response to probe.",
    ] {
        assert!(dl.contains(words), "{words}: {dl}");
    }
    let fl = net.logs(1);
    for words in [
        "responding to peer discovery probe!",
        "peer's address is 11.11.11.1",
        "peer can handle TED V3: changing source to 11.11.11.1 and dest to 11.11.11.2",
        "sending packet to 11.11.11.1 my_port 500 peer_port 500 (R) PEER_DISCOVERY",
    ] {
        assert!(fl.contains(words), "{words}: {fl}");
    }
    // More packets of the LAN-to-LAN traffic start nothing.
    let before = net.sent;
    net.acquire(0, "13.13.13.20", "12.12.12.99");
    net.pump();
    assert_eq!(net.sent, before);
    // Stats lines name the new counters.
    assert!(ds
        .lines()
        .iter()
        .any(|(n, v)| *n == "TED peers discovered" && *v == 1));
}

#[test]
fn ted_with_aggressive_mode_when_the_policy_says_so() {
    let mut net = TedNet::seed();
    for g in &mut net.gws {
        let mut p = ted_policy(
            &g.outside.to_string(),
            &g.lan.to_string(),
            if g.outside.to_string() == "11.11.11.1" {
                "12.12.12.0/24"
            } else {
                "13.13.13.0/24"
            },
        );
        p.aggressive = true;
        g.engine.set_policy(p);
    }
    net.acquire(1, "12.12.12.13", "13.13.13.14");
    net.pump();
    assert_eq!(net.gws[0].seen.installs.len(), 1, "{}", net.logs(1));
    assert_mirrored(&net.gws[1].seen.installs[0], &net.gws[0].seen.installs[0]);
    // Probe + response, Aggressive Mode's three, Quick Mode's three.
    assert_eq!(net.sent, 8);
}

#[test]
fn a_probe_nobody_answers_backs_off_gives_up_and_holds_down() {
    let mut net = TedNet::new(&[("11.11.11.1", "13.13.13.0/24", "0.0.0.0/0")]);
    net.acquire(0, "13.13.13.14", "203.0.113.7");
    net.pump();
    assert_eq!(net.lost.len(), 1);
    // Sent again after 1 s and 2 s more; given up 4 s after the third.
    let mut sends_at = vec![0];
    for t in 1..=7 {
        let before = net.lost.len();
        net.run_for(1);
        if net.lost.len() > before {
            sends_at.push(t);
        }
    }
    assert_eq!(sends_at, [0, 1, 3]);
    assert!(net.lost.iter().all(
        |(to, d)| to.ip() == "203.0.113.7".parse::<IpAddr>().unwrap()
            && TedMessage::decode(d).unwrap().is_probe()
    ));
    let s = net.gws[0].engine.stats();
    assert_eq!(s.ted_probes_sent, 1);
    assert_eq!(s.retransmitted, 2);
    assert_eq!(s.ted_probe_timeouts, 1);
    assert!(
        net.gws[0].engine.poll_timeout().is_none(),
        "nothing left to time"
    );
    assert!(net.logs(0).contains("got no answer after 3 sends"));
    // Held down: a new acquire for it is dropped and counted...
    net.acquire(0, "13.13.13.14", "203.0.113.7");
    net.pump();
    assert_eq!(net.lost.len(), 3);
    assert_eq!(net.gws[0].engine.stats().ted_held_down, 1);
    // ...but another destination is probed at once...
    net.acquire(0, "13.13.13.14", "203.0.113.8");
    net.pump();
    assert_eq!(net.lost.len(), 4);
    // ...and after the hold-down the first one again.
    net.run_for(10);
    let before = net.lost.len();
    net.acquire(0, "13.13.13.14", "203.0.113.7");
    net.pump();
    assert_eq!(net.lost.len(), before + 1);
    assert_eq!(net.gws[0].engine.stats().ted_probes_sent, 3);
}

#[test]
fn many_acquires_make_one_probe_in_flight() {
    let mut net = TedNet::seed();
    for i in 0..20 {
        net.acquire(0, "13.13.13.14", "12.12.12.13");
        // Other hosts' packets to the same destination too.
        net.acquire(0, &format!("13.13.13.{}", 30 + i), "12.12.12.13");
    }
    let s = net.gws[0].engine.stats();
    assert_eq!(s.ted_probes_sent, 1);
    assert_eq!(s.ted_rate_limited, 39);
    net.pump();
    assert_eq!(net.gws[1].engine.stats().ted_probes_answered, 1);
    assert_eq!(net.gws[0].seen.installs.len(), 1);
    assert_eq!(net.gws[1].seen.installs.len(), 1);
    // One tunnel, one ISAKMP SA each.
    assert_eq!(net.gws[0].engine.isakmp_sas(net.now).len(), 1);
}

#[test]
fn a_forged_probe_answer_is_ignored() {
    let mut net = TedNet::new(&[("11.11.11.1", "13.13.13.0/24", "12.12.12.0/24")]);
    net.acquire(0, "13.13.13.14", "12.12.12.13");
    net.pump();
    let probe = TedMessage::decode(&net.lost[0].1).unwrap();
    let answer = |m: &TedMessage| m.encode().unwrap();
    let good = TedMessage {
        responder_cookie: [7; 8],
        gateway: "11.11.11.66".parse().unwrap(),
        local_proxy: probe.remote_proxy.clone(),
        remote_proxy: probe.local_proxy.clone(),
        ..probe.clone()
    };
    let us: SocketAddr = "11.11.11.1:500".parse().unwrap();
    let attacker: SocketAddr = "11.11.11.66:500".parse().unwrap();
    let now = net.now;
    let e = &mut net.gws[0].engine;
    // A guessed probe id, a guessed nonce, an answer naming another
    // gateway than its sender, proxies that do not mirror ours.
    e.handle_datagram(
        now,
        us,
        attacker,
        &answer(&TedMessage {
            probe_id: [0x55; 8],
            ..good.clone()
        }),
    );
    e.handle_datagram(
        now,
        us,
        attacker,
        &answer(&TedMessage {
            nonce: vec![0; 16],
            ..good.clone()
        }),
    );
    e.handle_datagram(now, us, "11.11.11.67:500".parse().unwrap(), &answer(&good));
    assert_eq!(e.stats().ted_responses_forged, 3);
    e.handle_datagram(
        now,
        us,
        attacker,
        &answer(&TedMessage {
            local_proxy: proxy::identification(&sel("10.0.0.0/8", "13.13.13.0/24"), true),
            ..good.clone()
        }),
    );
    assert_eq!(e.stats().ted_proxy_mismatch, 1);
    assert_eq!(e.stats().ted_peers_discovered, 0);
    assert!(e.isakmp_sas(now).is_empty(), "no IKE with a forger");
    net.pump();
    assert_eq!(net.lost.len(), 1, "nothing sent but the probe");
    assert!(net.logs(0).contains("matches no probe of ours: ignored"));
    // A malformed one is counted as such.
    let before = net.gws[0].engine.stats().malformed;
    let mut bad = answer(&good);
    bad.truncate(40);
    let l = bad.len() as u32;
    bad[24..28].copy_from_slice(&l.to_be_bytes());
    net.gws[0].engine.handle_datagram(now, us, attacker, &bad);
    assert_eq!(net.gws[0].engine.stats().malformed, before + 1);
}

#[test]
fn a_probe_no_discover_entry_covers_is_dropped_and_counted() {
    // C protects 198.19.3.0/24 only towards 198.19.2.0/24: A's probe for
    // a host behind C is not C's to answer.
    let mut net = TedNet::new(&[
        ("198.18.0.1", "198.19.1.0/24", "198.19.0.0/16"),
        ("198.18.0.3", "198.19.3.0/24", "198.19.2.0/24"),
    ]);
    net.acquire(0, "198.19.1.10", "198.19.3.10");
    net.pump();
    let c = net.gws[1].engine.stats();
    assert_eq!(c.ted_probes_refused, 1);
    assert_eq!(c.ted_probes_answered, 0);
    assert!(net
        .logs(1)
        .contains("no discover entry on 198.18.0.3 protects it"));
    // A gives up in time.
    net.run_for(8);
    assert_eq!(net.gws[0].engine.stats().ted_probe_timeouts, 1);
    assert!(net.gws[0].seen.installs.is_empty());
}

#[test]
fn ted_between_every_pair_of_three_gateways() {
    let mut net = TedNet::new(&[
        ("198.18.0.1", "198.19.1.0/24", "198.19.0.0/16"),
        ("198.18.0.2", "198.19.2.0/24", "198.19.0.0/16"),
        ("198.18.0.3", "198.19.3.0/24", "198.19.0.0/16"),
    ]);
    for (i, j) in [(0, 1), (1, 2), (2, 0)] {
        net.acquire(
            i,
            &format!("198.19.{}.10", i + 1),
            &format!("198.19.{}.20", j + 1),
        );
        net.pump();
    }
    for (i, g) in net.gws.iter().enumerate() {
        assert_eq!(g.seen.installs.len(), 2, "gateway {i}: {}", net.logs(i));
        assert_eq!(g.engine.isakmp_sas(net.now).len(), 2);
        let s = g.engine.stats();
        assert_eq!((s.ted_peers_discovered, s.ted_probes_answered), (1, 1));
    }
    // Each pair's SAs mirror each other, for the two LANs only (the
    // proxy is narrowed from the /16 ACL to what the peer protects).
    for (i, j) in [(0usize, 1usize), (1, 2), (2, 0)] {
        let want = sel(
            &format!("198.19.{}.0/24", i + 1),
            &format!("198.19.{}.0/24", j + 1),
        );
        let a = net.gws[i]
            .seen
            .installs
            .iter()
            .find(|x| x.1 == want)
            .unwrap();
        let b = net.gws[j]
            .seen
            .installs
            .iter()
            .find(|x| x.1.src == want.dst && x.1.dst == want.src)
            .unwrap();
        assert_mirrored(a, b);
        assert_eq!(
            a.3.mode,
            EspMode::Tunnel {
                local: net.gws[i].outside,
                remote: net.gws[j].outside
            }
        );
    }
    // The reverse directions need no probe any more.
    let before = net.sent;
    net.acquire(1, "198.19.2.20", "198.19.1.10");
    net.pump();
    assert_eq!(net.sent, before);
}

/// Daphne's probe (seed 004) for 13.13.13.0/24 -> 12.12.12.0/24, naming
/// 11.11.11.1 as the prober.
fn daphne_probe() -> Vec<u8> {
    TedMessage {
        probe_id: [1; 8],
        responder_cookie: [0; 8],
        nonce: vec![2; 16],
        gateway: "11.11.11.1".parse().unwrap(),
        local_proxy: proxy::identification(&sel("13.13.13.0/24", "12.12.12.0/24"), true),
        remote_proxy: proxy::identification(&sel("13.13.13.0/24", "12.12.12.0/24"), false),
    }
    .encode()
    .unwrap()
}

#[test]
fn a_probe_naming_another_gateway_than_its_sender_is_not_answered() {
    let mut net = TedNet::seed();
    // Names 11.11.11.1 as the prober, but comes from 11.11.11.66: an
    // answer would go to a third party.
    let probe = daphne_probe();
    let (now, fred) = (net.now, &mut net.gws[1]);
    fred.engine.handle_ted_probe(
        now,
        fred.outside,
        "11.11.11.66:500".parse().unwrap(),
        "12.12.12.13".parse().unwrap(),
        &probe,
    );
    let s = fred.engine.stats();
    assert_eq!((s.ted_probes_answered, s.ted_probes_refused), (0, 1));
    let mut sent = 0;
    while let Some(o) = fred.engine.poll_output() {
        sent += usize::from(matches!(o, crate::ikev1::Output::Send { .. }));
    }
    assert_eq!(sent, 0, "nothing is sent for a forged probe");
}

/// A probe like Daphne's for 13.13.13.0/24 -> 12.12.12.0/24, from and
/// naming the prober `gateway`.
fn probe_from(gateway: &str, id: u8) -> Vec<u8> {
    TedMessage {
        probe_id: [id.max(1); 8],
        gateway: gateway.parse().unwrap(),
        ..TedMessage::decode(&daphne_probe()).unwrap()
    }
    .encode()
    .unwrap()
}

/// `n` probes from `gateway` reach Fred at `now`, for host 12.12.12.13.
fn probe_fred(net: &mut TedNet, now: Instant, gateway: &str, n: u8) {
    let fred = &mut net.gws[1];
    for i in 0..n {
        fred.engine.handle_ted_probe(
            now,
            fred.outside,
            SocketAddr::new(gateway.parse().unwrap(), 500),
            "12.12.12.13".parse().unwrap(),
            &probe_from(gateway, i),
        );
    }
}

#[test]
fn probe_answers_are_rate_limited() {
    let mut net = TedNet::seed();
    let now = net.now;
    // Ten gateways probe ten times each within one second: 64 answers in
    // all, at most 16 to any one of them.
    for g in 1..=10 {
        probe_fred(&mut net, now, &format!("11.11.11.{g}"), 10);
    }
    let s = net.gws[1].engine.stats().clone();
    assert_eq!(
        (
            s.ted_probes_answered,
            s.ted_answers_rate_limited,
            s.ted_answers_source_limited
        ),
        (64, 36, 0)
    );
    let mut answered_to = std::collections::HashMap::new();
    while let Some(o) = net.gws[1].engine.poll_output() {
        if let Output::Send { remote, .. } = o {
            *answered_to.entry(remote.ip()).or_insert(0) += 1;
        }
    }
    assert_eq!(answered_to.values().sum::<u32>(), 64);
    assert!(answered_to.values().all(|&n| n <= 10));
    // The next second has room again.
    probe_fred(&mut net, now + Duration::from_secs(1), "11.11.11.1", 1);
    assert_eq!(net.gws[1].engine.stats().ted_probes_answered, 65);
}

#[test]
fn one_source_cannot_use_the_whole_answer_rate() {
    let mut net = TedNet::seed();
    let now = net.now;
    // One gateway floods 100 probes: 16 are answered, the rest dropped
    // and counted as over its share...
    probe_fred(&mut net, now, "11.11.11.1", 100);
    let s = net.gws[1].engine.stats().clone();
    assert_eq!(
        (
            s.ted_probes_answered,
            s.ted_answers_source_limited,
            s.ted_answers_rate_limited
        ),
        (16, 84, 0)
    );
    let logs: Vec<String> = std::iter::from_fn(|| net.gws[1].engine.poll_output())
        .filter_map(|o| match o {
            Output::Log(l) => Some(l),
            _ => None,
        })
        .collect();
    let over: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains("over 16 answers a second"))
        .collect();
    assert_eq!(
        over,
        ["ISAKMP: peer discovery probe from 11.11.11.1: over 16 answers a second to it: dropped (more this second are counted only)"],
        "one line for 84 drops"
    );
    // ...while another gateway's probe in the same second is answered.
    probe_fred(&mut net, now, "11.11.11.7", 1);
    let sends: Vec<SocketAddr> = std::iter::from_fn(|| net.gws[1].engine.poll_output())
        .filter_map(|o| match o {
            Output::Send { remote, .. } => Some(remote),
            _ => None,
        })
        .collect();
    assert_eq!(sends.last(), Some(&"11.11.11.7:500".parse().unwrap()));
    assert_eq!(net.gws[1].engine.stats().ted_probes_answered, 17);
    // A second later the flooder's share is back.
    probe_fred(&mut net, now + Duration::from_secs(1), "11.11.11.1", 1);
    assert_eq!(net.gws[1].engine.stats().ted_probes_answered, 18);
    let s = net.gws[1].engine.stats();
    assert!(s
        .lines()
        .iter()
        .any(|(n, v)| *n == "TED probes over the per-source answer limit (dropped)" && *v == 84));
}

proptest! {
    #[test]
    fn arbitrary_ted_bytes_never_panic_the_engine(
        body in prop::collection::vec(any::<u8>(), 0..200),
        mutate in any::<bool>(),
    ) {
        let mut net = TedNet::seed();
        net.acquire(0, "13.13.13.14", "12.12.12.13");
        // A TED header in front of arbitrary payloads, or arbitrary bytes.
        let mut data = if mutate {
            let mut d = vec![0u8; 28];
            d[0] = 1;
            d[16] = body.first().copied().unwrap_or(13);
            d[17] = 0x10;
            d[18] = 243;
            d.extend_from_slice(&body);
            let l = d.len() as u32;
            d[24..28].copy_from_slice(&l.to_be_bytes());
            d
        } else {
            body.clone()
        };
        let now = net.now;
        for g in &mut net.gws {
            let o = g.outside;
            g.engine.handle_ted_probe(now, o, "11.11.11.9:500".parse().unwrap(), "12.12.12.13".parse().unwrap(), &data);
            g.engine.handle_datagram(now, SocketAddr::new(o, 500), "11.11.11.9:500".parse().unwrap(), &data);
        }
        data.truncate(data.len() / 2);
        net.gws[0].engine.handle_datagram(now, "11.11.11.1:500".parse().unwrap(), "11.11.11.2:500".parse().unwrap(), &data);
    }
}

#[test]
fn a_discovered_peer_with_another_key_fails_and_is_held_down_before_probing_again() {
    let mut net = TedNet::seed();
    let mut p = ted_policy("11.11.11.2", "12.12.12.0/24", "13.13.13.0/24");
    p.keys[0].key = SecretBytes::new(b"not-abc123".to_vec());
    net.gws[1].engine.set_policy(p);
    net.acquire(0, "13.13.13.14", "12.12.12.13");
    net.pump();
    assert_eq!(net.gws[0].engine.stats().ted_peers_discovered, 1);
    // Main Mode runs into the wrong key and gives up.
    let mut t = 0;
    while net.gws[0].engine.stats().retransmit_limit == 0 {
        net.run_for(1);
        t += 1;
        assert!(t < 120, "{}", net.logs(0));
    }
    assert!(net.gws[0].seen.installs.is_empty());
    // Right after, the flow is held down: no new probe...
    net.acquire(0, "13.13.13.14", "12.12.12.13");
    net.pump();
    assert_eq!(net.gws[0].engine.stats().ted_probes_sent, 1);
    // ...and once the hold-down passed, the next packet probes again.
    net.run_for(3);
    net.acquire(0, "13.13.13.14", "12.12.12.13");
    net.pump();
    assert_eq!(net.gws[0].engine.stats().ted_probes_sent, 2);
}

/// A and B with periodic DPD, one pair up, and two ISAKMP SAs at A: B
/// cleared its first one and A never got the Delete, then B negotiated a
/// new one to rekey the pair (still up, so without INITIAL-CONTACT).
fn two_isakmp_sas_at_a() -> Net {
    let mut net = periodic_dpd_net();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.lose = Box::new(|_, from_a, _| !from_a);
    net.b.clear_isakmp(net.now);
    net.pump();
    net.lose = Box::new(|_, _, _| false);
    // B's pair nears its lifetime: B rekeys it, over a new ISAKMP SA.
    let b_out = net.seen_b.installs[0].3.spi;
    net.b.sa_expired(net.now, Direction::Outbound, b_out, false);
    net.pump();
    assert_eq!(net.a.isakmp_sas(net.now).len(), 2, "{:#?}", net.seen_a.logs);
    assert_eq!(net.b.isakmp_sas(net.now).len(), 1);
    net
}

#[test]
fn an_isakmp_sa_the_peer_forgot_goes_alone_while_the_peer_answers_on_another() {
    let mut net = two_isakmp_sas_at_a();
    let pairs = net.a.pairs().count();
    let deletes = net.seen_a.deletes.len();
    net.run_for(60);
    assert_eq!(net.a.isakmp_sas(net.now).len(), 1, "the forgotten SA went");
    assert_eq!(net.a.stats().dpd_dead, 0, "{:#?}", net.seen_a.logs);
    assert_eq!(net.a.pairs().count(), pairs, "the pairs stay");
    assert_eq!(net.seen_a.deletes.len(), deletes);
}

#[test]
fn a_dead_peer_takes_every_isakmp_sa_it_had_with_us_and_counts_once() {
    let mut net = two_isakmp_sas_at_a();
    // B goes silent.
    net.lose = Box::new(|_, from_a, _| !from_a);
    net.run_for(60);
    assert!(
        net.a.isakmp_sas(net.now).is_empty(),
        "{:#?}",
        net.a.isakmp_sas(net.now)
    );
    assert!(net.a.pairs().next().is_none());
    assert_eq!(net.a.stats().dpd_dead, 1, "one peer died once");
    let dead = net
        .seen_a
        .logs
        .iter()
        .filter(|l| l.contains("is dead"))
        .count();
    assert_eq!(dead, 1, "{:#?}", net.seen_a.logs);
}

#[test]
fn a_main_mode_from_a_dead_peer_s_address_does_not_keep_it_alive() {
    let mut net = periodic_dpd_net();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    // B goes silent; 15 s later an MM1 arrives from its address (spoofed,
    // or a stray): a half-open SA at A that has heard "from B" lately.
    net.lose = Box::new(|_, from_a, _| !from_a);
    net.run_for(15);
    let mut stray = Engine::new(policy(&B4, "espada-lab-psk"));
    stray.acquire(net.now, TAG, ping("198.19.2.10", "198.19.1.10"));
    let mm1 = std::iter::from_fn(|| stray.poll_output())
        .find_map(|o| match o {
            Output::Send { data, .. } => Some(data),
            _ => None,
        })
        .expect("an MM1");
    net.a.handle_datagram(net.now, net.a_addr, net.b_addr, &mm1);
    net.pump();
    assert_eq!(net.a.isakmp_sas(net.now).len(), 2);
    net.run_for(45);
    assert_eq!(net.a.stats().dpd_dead, 1, "{:#?}", net.seen_a.logs);
    assert!(net.a.pairs().next().is_none(), "the dead peer's pairs went");
}

#[test]
fn replayed_messages_of_a_dead_peer_do_not_keep_it_alive() {
    let mut net = periodic_dpd_net();
    net.acquire_a(("198.19.1.10", "198.19.2.10"));
    net.run_for(25);
    // What B sent so far: its last informational (an R-U-THERE-ACK or its
    // own R-U-THERE) and its last Main Mode message, authentic both.
    let last_from_b = |exchange: ExchangeType| {
        net.wire
            .iter()
            .rev()
            .find(|(from_a, d)| {
                !from_a && Message::decode(d).is_ok_and(|m| m.header.exchange == exchange)
            })
            .map(|(_, d)| d.clone())
            .expect("B sent one")
    };
    let (info, mm) = (
        last_from_b(ExchangeType::INFORMATIONAL),
        last_from_b(ExchangeType::MAIN_MODE),
    );
    // B dies; an attacker replays both at A every 5 s.
    net.lose = Box::new(|_, from_a, _| !from_a);
    for _ in 0..12 {
        net.a
            .handle_datagram(net.now, net.a_addr, net.b_addr, &info);
        net.a.handle_datagram(net.now, net.a_addr, net.b_addr, &mm);
        net.run_for(5);
    }
    assert_eq!(net.a.stats().dpd_dead, 1, "{:#?}", net.seen_a.logs);
    assert!(net.a.pairs().next().is_none());
}
