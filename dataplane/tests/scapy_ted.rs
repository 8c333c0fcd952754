//! Cross-checks the pipeline's Tunnel Endpoint Discovery interception
//! against an independent builder: scapy (`scapy_ted.py`) builds IKEv1
//! probes (ISAKMP header, SA, ID and vendor ID payloads) and look-alikes
//! (IKEv2, a truncated header, DNS on port 500) in transit to a host
//! behind the gateway, over IPv4 and IPv6, and says what it reads in each;
//! the gateway's pipeline must hand on exactly the IKEv1 ones, with the
//! source address and port, original destination and UDP payload scapy
//! read, and leave the others on the transit path.
//!
//! This test needs Debian's python3-scapy (`deploy/setup.sh` installs it)
//! and fails, rather than skips, without it.

#[path = "common/scapy.rs"]
mod scapy;

use std::net::{IpAddr, SocketAddr};

use dataplane::counters::DropReason;
use dataplane::esp::PacketBuf;
use dataplane::pipeline::{process_batch, Action, PipelineCounters, Tables};
use dataplane::route::{Interface, PortRole};
use dataplane::testkit::{framed, HEADROOM};
use dataplane::wire::ethernet::EthernetAddress;
use serde_json::{json, Value};

const LAN_IF: u32 = 1;
const WAN_IF: u32 = 2;

/// Gateway B of seed 004 in miniature: outside 198.18.1.1 / fd00:ff::1.
fn gateway() -> Tables {
    let mut t = Tables::default();
    for (ifindex, role) in [(LAN_IF, PortRole::Inside), (WAN_IF, PortRole::Outside)] {
        t.fib.add_interface(Interface {
            ifindex,
            mac: EthernetAddress([2, 0, 0, 0, 0, 0x20 + ifindex as u8]),
            mtu: 1500,
            role,
        });
    }
    t.local = vec!["198.18.1.1".parse().unwrap(), "fd00:ff::1".parse().unwrap()];
    t
}

#[test]
fn scapy_built_ted_probes_are_handed_on_and_look_alikes_are_not() {
    let mut specs = Vec::new();
    for (family, src, dst) in [
        (4, "198.19.1.10", "198.19.2.10"),
        (6, "fd00:1::10", "fd00:2::10"),
    ] {
        for (kind, sport) in [
            ("probe", 500),
            ("probe", 41000),
            ("ikev2", 500),
            ("main-mode", 500),
            ("short", 500),
            ("dns", 5353),
        ] {
            specs.push(json!({
                "family": family, "src": src, "dst": dst,
                "sport": sport, "dport": 500, "kind": kind,
            }));
        }
    }
    let built = scapy::run("scapy_ted.py", &Value::Array(specs.clone()));
    assert_eq!(built.len(), specs.len());

    let mut t = gateway();
    let (tx, rx) = crossbeam_channel::bounded(64);
    t.ted = Some(tx);
    let c = PipelineCounters::default();
    let mut probes = 0;
    for (spec, b) in specs.iter().zip(&built) {
        let frame = hex::decode(b["hex"].as_str().unwrap()).unwrap();
        let mut buf = framed(&frame);
        let mut frames = [PacketBuf::new(&mut buf, HEADROOM, frame.len())];
        let mut actions = [Action::ToKernel];
        process_batch(&mut t, WAN_IF, &mut frames, &mut actions, &c);
        if b["ted"] == true {
            probes += 1;
            assert_eq!(
                actions[0],
                Action::Drop(DropReason::TedProbeDelivered),
                "{spec}"
            );
            let p = rx.try_recv().expect("the probe was handed on");
            let src: IpAddr = b["src"].as_str().unwrap().parse().unwrap();
            let sport = b["sport"].as_u64().unwrap() as u16;
            assert_eq!(p.from, SocketAddr::new(src, sport), "{spec}");
            assert_eq!(
                p.original_dst,
                b["dst"].as_str().unwrap().parse::<IpAddr>().unwrap(),
                "{spec}"
            );
            assert_eq!(hex::encode(p.payload()), b["payload"], "{spec}");
        } else {
            assert_eq!(actions[0], Action::ToKernel, "{spec}");
            assert!(rx.try_recv().is_err(), "{spec}");
        }
    }
    assert_eq!(probes, 4, "scapy built two probes per family");
    assert_eq!(c.drops.get(DropReason::TedProbeDelivered), 4);
    assert_eq!(c.drops.get(DropReason::TedProbeRateLimited), 0);
}
