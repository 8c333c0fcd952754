//! Cross-checks Espada's IPv4 fragmentation against an independent
//! reassembler: scapy's `defragment`. Packets with and without options
//! (copied and not copied), of several sizes, are fragmented for several
//! MTUs, and one fragment is fragmented again; scapy must find every
//! header checksum right and reassemble each set to exactly the original
//! packet.
//!
//! Like the ESP cross-check this needs Debian's python3-scapy
//! (`deploy/setup.sh` installs it) and fails, rather than skips, without it.

#[path = "common/scapy.rs"]
mod scapy;

use dataplane::testkit::{fragments_v4, inner_v4};
use dataplane::wire::ipv4;
use serde_json::{json, Value};

/// NOP; Record Route (not copied); Loose Source Route (copied); Basic
/// Security (copied): 18 bytes, padded to 20 with End of Option List.
const OPTIONS: [u8; 20] = [
    1, 7, 7, 4, 0, 0, 0, 0, 0x83, 7, 4, 198, 19, 9, 9, 0x82, 3, 0xab, 0, 0,
];

/// A UDP packet of `n` payload bytes without DF, with `options` (a
/// multiple of 4 bytes) after the fixed header.
fn packet(n: usize, options: &[u8]) -> Vec<u8> {
    let plain = inner_v4(n);
    let mut p = plain[..ipv4::HEADER_LEN].to_vec();
    p.extend_from_slice(options);
    p.extend_from_slice(&plain[ipv4::HEADER_LEN..]);
    let (hl, total) = (ipv4::HEADER_LEN + options.len(), p.len() as u16);
    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
    ip.set_header_len(hl);
    ip.set_total_len(total);
    ip.set_dont_frag(false);
    ip.fill_checksum();
    p
}

fn split(p: &[u8], max_ip_len: usize) -> Vec<Vec<u8>> {
    fragments_v4(p, max_ip_len)
}

struct Case {
    id: String,
    original: Vec<u8>,
    fragments: Vec<Vec<u8>>,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for options in [&[][..], &OPTIONS[..]] {
        for n in [0, 61, 1300, 1472, 3000] {
            for mtu in [68, 576, 1000, 1438, 1500] {
                let original = packet(n, options);
                let fragments = split(&original, mtu);
                assert!(fragments.iter().all(|f| f.len() <= mtu));
                v.push(Case {
                    id: format!("options {}/payload {n}/mtu {mtu}", options.len()),
                    original,
                    fragments,
                });
            }
        }
    }
    // A fragment fragmented again on a smaller link further on: its pieces
    // must fit between its neighbours.
    let original = packet(3000, &OPTIONS);
    let mut fragments = split(&original, 1500);
    let middle = fragments.remove(1);
    fragments.extend(split(&middle, 576));
    let last = fragments.remove(1);
    fragments.extend(split(&last, 300));
    v.push(Case {
        id: "refragmented middle and last fragments".into(),
        original,
        fragments,
    });
    v
}

fn run_scapy(input: &Value) -> Vec<Value> {
    scapy::run("scapy_defrag.py", input)
}

#[test]
fn scapy_reassembles_espadas_fragments_to_the_original_packet() {
    let cases = cases();
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "fragments": c.fragments.iter().map(hex::encode).collect::<Vec<_>>(),
            })
        })
        .collect();
    let results = run_scapy(&Value::Array(input));
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    for (case, result) in cases.iter().zip(&results) {
        assert_eq!(result["id"], case.id.as_str());
        if result["bad_checksums"] != json!([]) {
            failures.push(format!(
                "{}: scapy finds bad checksums in fragments {}",
                case.id, result["bad_checksums"]
            ));
        }
        let want = hex::encode(&case.original);
        if result["packets"] != json!([want]) {
            failures.push(format!(
                "{}: {} fragments reassembled by scapy to {}, want {want}",
                case.id,
                case.fragments.len(),
                result["packets"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures across {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let total: usize = cases.iter().map(|c| c.fragments.len()).sum();
    eprintln!(
        "scapy fragmentation cross-check: {} cases, {total} fragments",
        cases.len()
    );
}
