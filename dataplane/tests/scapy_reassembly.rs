//! Cross-checks Espada's reassembly of fragmented ESP against an
//! independent fragmenter: scapy's `fragment()` (IPv4) and `fragment6()`
//! (IPv6) cut ESP packets of several sizes for several fragment sizes;
//! whatever order the fragments come in, Espada must put each datagram
//! back to exactly the packet scapy built before cutting it.
//!
//! Like the other scapy cross-checks this needs Debian's python3-scapy
//! (`deploy/setup.sh` installs it) and fails, rather than skips, without it.

#[path = "common/scapy.rs"]
mod scapy;

use std::net::IpAddr;

use dataplane::counters::DropCounters;
use dataplane::reassembly::{Fed, Reassembly, MAX_PIECES};
use serde_json::{json, Value};

fn local() -> Vec<IpAddr> {
    vec!["198.18.0.1".parse().unwrap(), "fd00:1::1".parse().unwrap()]
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex")).expect("hex")
}

#[test]
fn espada_reassembles_scapys_fragments_to_the_original_packet() {
    let mut cases = Vec::new();
    for (v6, esp_len, fragsize) in [
        (false, 100, 64),
        (false, 1400, 552),
        (false, 1400, 256),
        (false, 3000, 1480),
        (false, 3700, 1000),
        (true, 200, 96),
        (true, 1400, 600),
        (true, 1400, 1280),
        (true, 3000, 1280),
        (true, 3700, 1000),
    ] {
        cases.push(json!({
            "id": format!("{}/esp {esp_len}/fragsize {fragsize}", if v6 { "IPv6" } else { "IPv4" }),
            "v6": v6,
            "esp_len": esp_len,
            "fragsize": fragsize,
        }));
    }
    let results = scapy::run("scapy_frag_esp.py", &Value::Array(cases.clone()));
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    let mut fragments_fed = 0;
    for r in &results {
        let id = r["id"].as_str().expect("id");
        let packet = hex_of(&r["packet"]);
        let frags: Vec<Vec<u8>> = r["fragments"]
            .as_array()
            .expect("fragments")
            .iter()
            .map(hex_of)
            .collect();
        assert!(
            (2..=MAX_PIECES).contains(&frags.len()),
            "{id}: {} fragments",
            frags.len()
        );
        let n = frags.len();
        let orders: [Vec<usize>; 3] = [
            (0..n).collect(),
            (0..n).rev().collect(),
            (0..n).map(|i| (i + 1) % n).collect(),
        ];
        for order in orders {
            let mut r = Reassembly::default();
            let drops = DropCounters::default();
            let mut whole = None;
            for &i in &order {
                let f = &frags[i];
                // As a worker holds it: a 4 KiB frame, the IP packet after
                // 256 bytes of headroom and a 14-byte Ethernet header.
                let mut frame = vec![0u8; 4096];
                frame[270..270 + f.len()].copy_from_slice(f);
                fragments_fed += 1;
                match r.feed(&mut frame, 270, f.len(), &local(), 0, &drops) {
                    Fed::Complete(len) => whole = Some(frame[270..270 + len].to_vec()),
                    Fed::Queued => {}
                    other => failures.push(format!("{id} {order:?}: fragment {i}: {other:?}")),
                }
            }
            if whole.as_deref() != Some(&packet[..]) {
                failures.push(format!(
                    "{id} {order:?}: got {}, want {}",
                    whole.map_or("nothing".into(), hex::encode),
                    hex::encode(&packet)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "scapy reassembly cross-check: {} datagrams, {fragments_fed} fragments fed",
        results.len() * 3
    );
}
