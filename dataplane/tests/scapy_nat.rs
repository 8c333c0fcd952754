//! Cross-checks `dataplane::nat` against an independent decoder: scapy
//! (`scapy_nat.py`) builds the inside hosts' packets, the remote ends'
//! replies and the routers' ICMP errors; Espada translates them; scapy then
//! reads the results and verifies every checksum with its own code (IP,
//! TCP/UDP over the pseudo-header, ICMP, and the IP header and transport
//! checksum of the packet an ICMP error quotes).
//!
//! Seed 003's router: inside 198.19.2.0/24, the VPN peer's LAN
//! 198.19.1.0/24 exempt, everything else PATed to 198.18.1.1.
//!
//! This test needs Debian's python3-scapy (`deploy/setup.sh` installs it)
//! and fails, rather than skips, without it.

#[path = "common/scapy.rs"]
mod scapy;

use std::net::{IpAddr, Ipv4Addr};

use dataplane::api::{NatAction, NatRule};
use dataplane::nat::{NatRules, NatTable, NatVerdict};
use dataplane::spd::{PortRange, TrafficSelector};
use serde_json::{json, Value};

const OUT_IF: u32 = 2;
const OUTSIDE: &str = "198.18.1.1";
const HOST: &str = "198.19.2.10";
const SERVER: &str = "198.18.99.7";
const ROUTER: &str = "198.18.1.254";
const PORTS: std::ops::RangeInclusive<u16> = 20_000..=20_999;

fn rules() -> NatRules {
    let selector = |dst: &str| TrafficSelector {
        src: "198.19.2.0/24".parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    NatRules::compile(&[
        NatRule {
            selector: selector("198.19.1.0/24"),
            action: NatAction::Exempt,
        },
        NatRule {
            selector: selector("0.0.0.0/0"),
            action: NatAction::Pat {
                outside_ifindex: OUT_IF,
                outside_addr: IpAddr::V4(OUTSIDE.parse::<Ipv4Addr>().unwrap()),
            },
        },
    ])
    .unwrap()
}

fn run_scapy(ops: &[Value]) -> Vec<Value> {
    scapy::run("scapy_nat.py", &Value::Array(ops.to_vec()))
}

fn bytes_of(result: &Value) -> Vec<u8> {
    hex::decode(result["hex"].as_str().expect("a built packet")).unwrap()
}

fn check_op(packet: &[u8]) -> Value {
    json!({ "check": hex::encode(packet) })
}

/// Scapy found every checksum of the packet (and of its quote) valid.
fn assert_valid(what: &str, c: &Value) {
    assert_eq!(c["ip_ok"], true, "{what}: IP checksum per scapy: {c}");
    assert!(
        c["l4_ok"] == true || c["l4_ok"] == "none",
        "{what}: transport checksum per scapy: {c}"
    );
    assert_eq!(
        c["rebuilt_equal"], true,
        "{what}: scapy rebuilds other checksums: {c}"
    );
    if let Some(q) = c.get("quoted") {
        assert_eq!(
            q["ip_ok"], true,
            "{what}: quoted IP checksum per scapy: {c}"
        );
        if q["complete"] == true {
            assert!(
                q["l4_ok"] == true || q["l4_ok"] == "none",
                "{what}: quoted transport checksum per scapy: {c}"
            );
        }
    }
}

/// The inside host's port or echo identifier, as scapy reads it.
fn port_of(c: &Value, field: &str) -> u64 {
    c.get(field)
        .or_else(|| c.get("id"))
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {field} in {c}"))
}

struct Flow {
    name: &'static str,
    spec: Value,
    inside_port: u64,
    tcp: bool,
}

fn flows() -> Vec<Flow> {
    let udp = |sport: u16, payload: &str, checksum: bool| {
        json!({"kind": "udp", "src": HOST, "dst": SERVER, "sport": sport, "dport": 53,
               "payload": hex::encode(payload), "checksum": checksum})
    };
    vec![
        Flow {
            name: "udp",
            spec: udp(5353, "query", true),
            inside_port: 5353,
            tcp: false,
        },
        Flow {
            name: "udp, odd length",
            spec: udp(5354, "odd", true),
            inside_port: 5354,
            tcp: false,
        },
        Flow {
            name: "udp without checksum, port kept",
            spec: udp(20_500, "tftp", false),
            inside_port: 20_500,
            tcp: false,
        },
        Flow {
            name: "tcp syn with options",
            spec: json!({"kind": "tcp", "src": HOST, "dst": SERVER, "sport": 40_000,
                         "dport": 443, "flags": "S", "options": true}),
            inside_port: 40_000,
            tcp: true,
        },
        Flow {
            name: "tcp data",
            spec: json!({"kind": "tcp", "src": HOST, "dst": SERVER, "sport": 40_001,
                         "dport": 80, "flags": "PA",
                         "payload": hex::encode("GET / HTTP/1.1\r\n\r\n")}),
            inside_port: 40_001,
            tcp: true,
        },
        Flow {
            name: "icmp echo",
            spec: json!({"kind": "echo", "src": HOST, "dst": SERVER, "type": 8,
                         "id": 0x0777, "seq": 1, "payload": hex::encode("abcdefgh")}),
            inside_port: 0x0777,
            tcp: false,
        },
    ]
}

#[test]
fn scapy_reads_nat_translations_both_ways_with_every_checksum_valid() {
    let rules = rules();
    let mut nat = NatTable::new(64, PORTS).unwrap();
    let flows = flows();

    // Round 1: scapy builds what the inside hosts send.
    let built = run_scapy(
        &flows
            .iter()
            .map(|f| json!({ "build": f.spec }))
            .collect::<Vec<_>>(),
    );
    let originals: Vec<Vec<u8>> = built.iter().map(bytes_of).collect();
    let mut outbound = originals.clone();
    for (f, p) in flows.iter().zip(outbound.iter_mut()) {
        let v = nat.translate_outbound(&rules, p, OUT_IF, 0);
        assert_eq!(v, NatVerdict::Translated, "{}", f.name);
    }

    // Round 2: scapy reads the translated packets, answers them, and has
    // a router report each one (whole quote; RFC 792's 28 bytes for TCP).
    let mut ops: Vec<Value> = outbound.iter().map(|p| check_op(p)).collect();
    let mut errors = Vec::new();
    for (i, (f, p)) in flows.iter().zip(&outbound).enumerate() {
        ops.push(json!({"build": {"kind": "reply", "packet": hex::encode(p)}}));
        let mut quotes = vec![p.len()];
        if f.tcp {
            quotes.push(28);
        }
        for len in quotes {
            ops.push(
                json!({"build": {"kind": "error", "src": ROUTER, "dst": OUTSIDE,
                                      "type": 11, "code": 0, "quote": hex::encode(&p[..len])}}),
            );
            errors.push((i, len));
        }
    }
    let results = run_scapy(&ops);
    let (checks, built) = results.split_at(flows.len());
    for (f, c) in flows.iter().zip(checks) {
        assert_valid(f.name, c);
        assert_eq!(c["src"], OUTSIDE, "{}: {c}", f.name);
        assert_eq!(c["dst"], SERVER, "{}: {c}", f.name);
        let port = port_of(c, "sport") as u16;
        assert!(PORTS.contains(&port), "{}: outside port {port}", f.name);
    }
    assert_eq!(port_of(&checks[2], "sport"), 20_500, "port preservation");
    assert_eq!(checks[2]["l4_ok"], "none", "a zero UDP checksum stays zero");

    let mut replies = Vec::new();
    let mut reports = Vec::new();
    let mut next = built.iter();
    for f in &flows {
        let mut reply = bytes_of(next.next().unwrap());
        let v = nat.translate_inbound(&rules, &mut reply, OUT_IF, 1);
        assert_eq!(v, NatVerdict::Translated, "{}: reply", f.name);
        replies.push(reply);
        let n = if f.tcp { 2 } else { 1 };
        for _ in 0..n {
            let mut report = bytes_of(next.next().unwrap());
            let v = nat.translate_inbound(&rules, &mut report, OUT_IF, 1);
            assert_eq!(v, NatVerdict::Translated, "{}: ICMP error", f.name);
            reports.push(report);
        }
    }
    // A whole quote is now, byte for byte, what the host sent.
    for ((i, len), report) in errors.iter().zip(&reports) {
        let quote = &report[28..];
        if *len == outbound[*i].len() {
            assert_eq!(quote, &originals[*i][..], "{}: quote", flows[*i].name);
        }
    }

    // Round 3: scapy reads what the inside hosts receive; the first host,
    // its socket closed, reports the reply as port unreachable.
    let mut ops: Vec<Value> = replies
        .iter()
        .chain(&reports)
        .map(|p| check_op(p))
        .collect();
    ops.push(
        json!({"build": {"kind": "error", "src": HOST, "dst": SERVER, "type": 3,
                              "code": 3, "quote": hex::encode(&replies[0])}}),
    );
    let results = run_scapy(&ops);
    for (f, c) in flows.iter().zip(&results[..flows.len()]) {
        assert_valid(f.name, c);
        assert_eq!(c["src"], SERVER, "{}: {c}", f.name);
        assert_eq!(c["dst"], HOST, "{}: {c}", f.name);
        assert_eq!(port_of(c, "dport"), f.inside_port, "{}: {c}", f.name);
    }
    for ((i, len), c) in errors
        .iter()
        .zip(&results[flows.len()..flows.len() + errors.len()])
    {
        let what = format!("{}: ICMP error quoting {len} bytes", flows[*i].name);
        assert_valid(&what, c);
        assert_eq!(
            (&c["src"], &c["dst"]),
            (&json!(ROUTER), &json!(HOST)),
            "{what}: {c}"
        );
        let q = &c["quoted"];
        assert_eq!(
            (&q["src"], &q["src_bytes"]),
            (&json!(HOST), &json!(HOST)),
            "{what}: {q}"
        );
        assert_eq!(q["dst"], SERVER, "{what}: {q}");
        assert_eq!(port_of(q, "sport"), flows[*i].inside_port, "{what}: {q}");
    }

    // The host's port unreachable leaves in the outside view.
    let mut unreachable = bytes_of(results.last().unwrap());
    let v = nat.translate_outbound(&rules, &mut unreachable, OUT_IF, 2);
    assert_eq!(v, NatVerdict::Translated);
    let c = &run_scapy(&[check_op(&unreachable)])[0];
    assert_valid("outbound port unreachable", c);
    assert_eq!(
        (&c["src"], &c["dst"]),
        (&json!(OUTSIDE), &json!(SERVER)),
        "{c}"
    );
    let q = &c["quoted"];
    assert_eq!(
        (&q["src"], &q["dst"]),
        (&json!(SERVER), &json!(OUTSIDE)),
        "{q}"
    );
    assert_eq!(port_of(q, "dport"), port_of(&checks[0], "sport"), "{q}");

    let stats = nat.counters().snapshot();
    assert_eq!(stats.total_drops(), 0);
    assert_eq!(stats.translations_created, flows.len() as u64);
    eprintln!(
        "scapy NAT cross-check: {} flows, {} ICMP errors, {} hits",
        flows.len(),
        errors.len() + 1,
        stats.hits()
    );
}
