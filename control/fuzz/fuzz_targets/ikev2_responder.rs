//! The IKEv2 engine (`control::ikev2::Engine`) as a responder on hostile
//! input. The input is a list of operations on a real exchange between
//! an initiator engine and the responder: deliver the initiator's next
//! datagram as it is or mutated (bit flips, truncation, a repeat), inject
//! an arbitrary datagram, deliver the responder's answers, or let time
//! pass (retransmissions, DPD, IKE SA and CHILD_SA rekeys with a short
//! lifetime). Nothing may panic; arbitrary datagrams alone must never
//! install an SA pair.
#![no_main]

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use control::config::model::SecretBytes;
use control::ike::crypto::DhGroup;
use control::ikev2::policy::{Dpd, EspTransform, IpsecLifetime, MapEntry};
use control::ikev2::policy::{Ikev2ProfileSettings, RemoteIdMatch};
use control::ikev2::{Engine, IkeEncr, IkeInteg, Ikev2Policy, Ikev2Proposal, KeyringPeer, Output};
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{PolicyTag, PortRange, TrafficSelector};
use libfuzzer_sys::fuzz_target;

const TAG: PolicyTag = PolicyTag { map: 0, seq: 10 };
const INITIATOR: &str = "198.18.0.1";
const RESPONDER: &str = "198.18.1.1";

fn sel(src: &str, dst: &str) -> TrafficSelector {
    TrafficSelector {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

/// A fast group keeps the fuzzer's executions per second up.
fn policy(local: &str, peer: Option<&str>, selector: TrafficSelector) -> Ikev2Policy {
    Ikev2Policy {
        proposals: vec![Ikev2Proposal {
            name: "P".into(),
            encr: vec![IkeEncr::AesCbc(128)],
            integ: vec![IkeInteg::Sha256_128],
            prf: Vec::new(),
            groups: vec![DhGroup::Curve25519],
            local: Vec::new(),
        }],
        profiles: vec![Ikev2ProfileSettings {
            name: "PR".into(),
            match_remote: vec![RemoteIdMatch::Address("0.0.0.0/0".parse().unwrap())],
            local_id: None,
            keyring: vec![KeyringPeer {
                name: "K".into(),
                address: Some("0.0.0.0/0".parse().unwrap()),
                identity: None,
                local_key: SecretBytes::new(b"fuzz".to_vec()),
                remote_key: SecretBytes::new(b"fuzz".to_vec()),
            }],
            lifetime: 60,
            dpd: Some(Dpd {
                interval: 10,
                retry: 2,
                periodic: false,
            }),
        }],
        maps: vec![MapEntry {
            tag: TAG,
            map: "VPN".into(),
            seq: 10,
            dynamic: peer.is_none().then(|| ("DYN".into(), 10)),
            peers: peer.map(|p| p.parse().unwrap()).into_iter().collect(),
            discover: false,
            local: local.parse().unwrap(),
            transforms: vec![EspTransform {
                name: "T".into(),
                enc: EncAlg::AesCbc128,
                auth: AuthAlg::HmacSha1_96,
                tunnel: true,
            }],
            selectors: vec![selector],
            pfs: Some(DhGroup::Curve25519),
            lifetime: IpsecLifetime {
                seconds: 30,
                ..IpsecLifetime::default()
            },
            replay_window: 64,
        }],
        nat_keepalive: Some(20),
        ..Ikev2Policy::default()
    }
}

type Datagram = (SocketAddr, SocketAddr, Vec<u8>);

/// Takes an engine's outputs: datagrams into `wire`; installs counted.
fn drain(e: &mut Engine, wire: &mut VecDeque<Datagram>, installs: &mut usize) {
    while let Some(o) = e.poll_output() {
        match o {
            Output::Send {
                local,
                remote,
                data,
            } => {
                if wire.len() < 64 {
                    wire.push_back((local, remote, data));
                }
            }
            Output::Install { .. } | Output::InstallInbound(_) => *installs += 1,
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut initiator = Engine::new(policy(
        INITIATOR,
        Some(RESPONDER),
        sel("198.19.1.0/24", "198.19.2.0/24"),
    ));
    let mut responder = Engine::new(policy(RESPONDER, None, sel("0.0.0.0/0", "0.0.0.0/0")));
    let mut now = Instant::now();
    initiator.initiate_entry(now, TAG);
    let mut to_r: VecDeque<Datagram> = VecDeque::new();
    let mut to_i: VecDeque<Datagram> = VecDeque::new();
    let (mut installs_i, mut installs_r) = (0, 0);
    // Set once a real datagram of the initiator was delivered: from then
    // on installs are legitimate.
    let mut authentic = false;
    drain(&mut initiator, &mut to_r, &mut installs_i);
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let arg = |rest: &mut &[u8]| -> u8 {
            let Some((&b, t)) = rest.split_first() else {
                return 0;
            };
            *rest = t;
            b
        };
        match op % 6 {
            // The initiator's next datagram, untouched.
            0 => {
                if let Some((l, r, d)) = to_r.pop_front() {
                    authentic = true;
                    responder.handle_datagram(now, r, l, &d);
                }
            }
            // Mutated: flip a byte, or truncate.
            1 => {
                if let Some((l, r, mut d)) = to_r.front().cloned() {
                    let at = usize::from(arg(&mut rest)) * 2 % d.len().max(1);
                    let x = arg(&mut rest);
                    if x == 0 {
                        d.truncate(at);
                    } else if let Some(b) = d.get_mut(at) {
                        *b ^= x;
                    }
                    responder.handle_datagram(now, r, l, &d);
                }
            }
            // Arbitrary bytes, from the peer's address or another one.
            2 => {
                let n = usize::from(arg(&mut rest)).min(rest.len());
                let (d, after) = rest.split_at(n);
                rest = after;
                let from: SocketAddr = if n % 2 == 0 {
                    "198.18.0.1:500".parse().unwrap()
                } else {
                    "203.0.113.7:4500".parse().unwrap()
                };
                responder.handle_datagram(now, "198.18.1.1:500".parse().unwrap(), from, d);
            }
            // The responder's answers to the initiator.
            3 => {
                while let Some((l, r, d)) = to_i.pop_front() {
                    initiator.handle_datagram(now, r, l, &d);
                }
            }
            // A repeat of the last datagram the initiator sent.
            4 => {
                if let Some((l, r, d)) = to_r.back().cloned() {
                    authentic = true;
                    responder.handle_datagram(now, r, l, &d);
                }
            }
            // Time passes: retransmissions, DPD, rekeys, keepalives.
            _ => {
                now += Duration::from_secs(u64::from(arg(&mut rest) % 64));
                for e in [&mut initiator, &mut responder] {
                    if e.poll_timeout().is_some_and(|t| t <= now) {
                        e.handle_timeout(now);
                    }
                }
                let heard = HashSet::from([INITIATOR.parse::<IpAddr>().unwrap()]);
                responder.esp_received(now, &heard);
            }
        }
        drain(&mut initiator, &mut to_r, &mut installs_i);
        drain(&mut responder, &mut to_i, &mut installs_r);
        assert!(
            authentic || installs_r == 0,
            "the responder installed an SA from forged input"
        );
    }
});
