//! The IKEv1 engine (`control::ikev1::Engine`) as a responder on hostile
//! input: a sequence of datagrams (each prefixed by a length byte) from a
//! peer it has a key for, with timers run in between. Nothing may panic,
//! and nothing unauthenticated may ever install an SA pair.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use control::config::model::SecretBytes;
use control::ike::crypto::DhGroup;
use control::ikev1::{
    Engine, EspTransform, Ikev1Policy, IpsecLifetime, IsakmpProposal, MapEntry, Output,
    PresharedKey,
};
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{PolicyTag, PortRange, TrafficSelector};
use libfuzzer_sys::fuzz_target;

fn responder() -> Engine {
    let any = TrafficSelector {
        src: "0.0.0.0/0".parse().unwrap(),
        dst: "0.0.0.0/0".parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    Engine::new(Ikev1Policy {
        isakmp: vec![IsakmpProposal {
            priority: 10,
            cipher: control::config::ike::IkeCipher::AesCbc(128),
            hash: control::config::ike::IkeHash::Sha1,
            group: DhGroup::Modp1024,
            lifetime: 86_400,
        }],
        keys: vec![PresharedKey {
            peer: "0.0.0.0/0".parse().unwrap(),
            key: SecretBytes::new(b"fuzz".to_vec()),
        }],
        maps: vec![MapEntry {
            tag: PolicyTag { map: 0, seq: 10 },
            map: "VPN".into(),
            seq: 10,
            dynamic: Some(("DYN".into(), 10)),
            peers: Vec::new(),
            discover: false,
            local: "198.18.1.1".parse().unwrap(),
            transforms: vec![EspTransform {
                name: "T".into(),
                enc: EncAlg::AesCbc128,
                auth: AuthAlg::HmacSha1_96,
                tunnel: true,
            }],
            selectors: vec![any],
            pfs: None,
            lifetime: IpsecLifetime::default(),
            replay_window: 64,
        }],
        ..Ikev1Policy::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let mut engine = responder();
    let local: SocketAddr = "198.18.1.1:500".parse().unwrap();
    let remote: SocketAddr = "198.18.0.1:500".parse().unwrap();
    let mut now = Instant::now();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        let (datagram, after) = tail.split_at(n);
        engine.handle_datagram(now, local, remote, datagram);
        now += Duration::from_secs(3);
        if engine.poll_timeout().is_some_and(|t| t <= now) {
            engine.handle_timeout(now);
        }
        while let Some(o) = engine.poll_output() {
            assert!(
                !matches!(o, Output::Install { .. } | Output::InstallInbound(_)),
                "an SA was installed from fuzzed input"
            );
        }
        rest = after;
    }
});
