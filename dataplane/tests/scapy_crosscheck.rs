//! Cross-checks Espada's ESP against an independent implementation: scapy's
//! `SecurityAssociation` (with the `cryptography` library for the two
//! things scapy 2.5 lacks, see `scapy_esp.py`). For every suite scapy has,
//! tunnel mode in all four family pairings and transport mode for IPv4 and
//! IPv6, with and without RFC 3948 UDP encapsulation and with ESN:
//! packets Espada builds must decrypt in scapy to the original, and packets
//! scapy builds must decrypt in Espada to the original.
//!
//! This test needs Debian's python3-scapy (`deploy/setup.sh` installs it)
//! and fails, rather than skips, without it.

#[path = "common/scapy.rs"]
mod scapy;

use dataplane::api::EspMode;
use dataplane::counters::DropCounters;
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::esp::Decapped;
use dataplane::sa::Sadb;
use dataplane::testkit::{all_suites, decap_one, encap_one, inner_v4, inner_v6, sa_pair, tunnel};
use serde_json::{json, Value};

const PACKETS_PER_DIRECTION: u64 = 3;

fn scapy_names(enc: EncAlg, auth: AuthAlg) -> (&'static str, &'static str, usize) {
    let e = match enc {
        EncAlg::Null => "NULL",
        EncAlg::DesCbc => "DES",
        EncAlg::TripleDesCbc => "3DES",
        EncAlg::AesCbc128 | EncAlg::AesCbc192 | EncAlg::AesCbc256 => "AES-CBC",
        EncAlg::AesGcm128(_) | EncAlg::AesGcm256(_) => "AES-GCM",
    };
    let a = match auth {
        AuthAlg::None => "NULL",
        AuthAlg::HmacMd5_96 => "HMAC-MD5-96",
        AuthAlg::HmacSha1_96 => "HMAC-SHA1-96",
        AuthAlg::HmacSha256_128 => "SHA2-256-128",
        AuthAlg::HmacSha384_192 => "SHA2-384-192",
        AuthAlg::HmacSha512_256 => "SHA2-512-256",
    };
    (e, a, enc.icv_len())
}

/// One SA configuration and the traffic for both directions.
struct Case {
    id: String,
    enc: EncAlg,
    auth: AuthAlg,
    mode: EspMode,
    outer_v6: bool,
    inner_v6: bool,
    natt: bool,
    esn: bool,
}

impl Case {
    fn first_seq(&self) -> u64 {
        // ESN cases straddle the 2^32 boundary so the high bits matter.
        if self.esn {
            (1 << 32) - 2
        } else {
            1
        }
    }

    fn inner(&self, k: u64) -> Vec<u8> {
        let n = [0usize, 61, 1300][(k % 3) as usize];
        if self.inner_v6 {
            inner_v6(n)
        } else {
            inner_v4(n)
        }
    }
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for (enc, auth) in all_suites() {
        let mut push = |mode: EspMode, outer_v6: bool, inner_v6: bool, natt: bool, esn: bool| {
            v.push(Case {
                id: format!(
                    "{enc:?}/{auth:?}/{}/outer-v{}/inner-v{}{}{}",
                    if matches!(mode, EspMode::Transport) {
                        "transport"
                    } else {
                        "tunnel"
                    },
                    if outer_v6 { 6 } else { 4 },
                    if inner_v6 { 6 } else { 4 },
                    if natt { "/natt" } else { "" },
                    if esn { "/esn" } else { "" }
                ),
                enc,
                auth,
                mode,
                outer_v6,
                inner_v6,
                natt,
                esn,
            })
        };
        for natt in [false, true] {
            for outer_v6 in [false, true] {
                for inner_v6 in [false, true] {
                    push(tunnel(outer_v6), outer_v6, inner_v6, natt, false);
                }
                push(EspMode::Transport, outer_v6, outer_v6, natt, false);
            }
        }
        push(tunnel(false), false, false, false, true);
        push(tunnel(true), true, false, true, true);
    }
    v
}

fn run_scapy(input: &Value) -> Vec<Value> {
    scapy::run("scapy_esp.py", input)
}

#[test]
fn espada_and_scapy_decrypt_each_others_esp_for_every_suite_mode_family_and_encapsulation() {
    let cases = cases();
    let mut inputs = Vec::new();
    let mut receivers = Vec::new();
    for case in &cases {
        let (out, inb) = sa_pair(case.enc, case.auth, case.mode, case.natt, case.esn, 64);
        let mut a = Sadb::new();
        a.install(&out, 0).unwrap();
        let mut b = Sadb::new();
        b.install(&inb, 0).unwrap();
        let sa = a.outbound(out.spi).unwrap();
        sa.set_last_seq(case.first_seq() - 1);
        let mut espada_packets = Vec::new();
        for k in 0..PACKETS_PER_DIRECTION {
            let outer = encap_one(sa, &case.inner(k))
                .unwrap_or_else(|r| panic!("{}: encap {r:?}", case.id));
            espada_packets.push(json!({"seq": case.first_seq() + k, "outer": hex::encode(outer)}));
        }
        if case.esn {
            // Move the receiver's window next to the boundary, as ~2^32
            // packets of traffic would have: decap one packet of our own.
            let primer = a.outbound(out.spi).unwrap();
            primer.set_last_seq(case.first_seq() - 3);
            let p = encap_one(primer, &case.inner(0)).unwrap();
            let (r, _) = decap_one(&b, &p, &DropCounters::default());
            assert!(r.is_ok(), "{}: priming {r:?}", case.id);
        }
        let inner_for_scapy: Vec<Value> = (0..PACKETS_PER_DIRECTION)
            .map(|k| json!({"seq": case.first_seq() + k, "inner": hex::encode(case.inner(k + 1))}))
            .collect();
        let (e, au, icv) = scapy_names(case.enc, case.auth);
        let (local, remote) = if case.outer_v6 {
            ("fd00::1", "fd00::2")
        } else {
            ("198.18.0.1", "198.18.0.2")
        };
        inputs.push(json!({
            "id": case.id,
            "enc": e, "enc_key": hex::encode(&out.keys.enc),
            "auth": au, "auth_key": hex::encode(&out.keys.auth), "icv": icv,
            "spi": out.spi,
            "mode": if matches!(case.mode, EspMode::Transport) { "transport" } else { "tunnel" },
            "outer_v6": case.outer_v6, "local": local, "remote": remote,
            "natt": case.natt, "esn": case.esn,
            "espada_packets": espada_packets,
            "inner_for_scapy": inner_for_scapy,
        }));
        receivers.push((b, inb.spi));
    }

    let results = run_scapy(&Value::Array(inputs));
    assert_eq!(results.len(), cases.len());
    let mut failures = Vec::new();
    for ((case, result), (b, spi)) in cases.iter().zip(&results).zip(&receivers) {
        assert_eq!(result["id"], case.id.as_str());
        for (k, got) in result["decrypted"].as_array().unwrap().iter().enumerate() {
            let want = hex::encode(case.inner(k as u64));
            if got.as_str() != Some(want.as_str()) {
                failures.push(format!(
                    "{}: scapy decrypted Espada packet {k} to {got}",
                    case.id
                ));
            }
        }
        let global = DropCounters::default();
        for (k, outer) in result["encrypted"].as_array().unwrap().iter().enumerate() {
            let Some(Ok(outer)) = outer.as_str().map(hex::decode) else {
                failures.push(format!(
                    "{}: scapy could not encrypt packet {k}: {outer}",
                    case.id
                ));
                continue;
            };
            let (r, inner) = decap_one(b, &outer, &global);
            let want = case.inner(k as u64 + 1);
            if !matches!(r, Ok(Decapped::Inner { .. })) || inner != want {
                failures.push(format!(
                    "{}: Espada could not decrypt scapy packet {k}: {r:?}",
                    case.id
                ));
            }
        }
        let sa = b.inbound(*spi).unwrap();
        if sa.counters().drops.total() != 0 || global.total() != 0 {
            failures.push(format!("{}: drops counted on valid traffic", case.id));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures across {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!(
        "scapy cross-check: {} cases, {} packets each way",
        cases.len(),
        PACKETS_PER_DIRECTION
    );
}
