//! Test support: runs the independent Python reference
//! (`control/tests/ike_crypto_reference.py`, written from the RFC text
//! with Python's `hmac`, `hashlib` and integers) and makes random inputs.
//! A missing python3 fails the test instead of skipping it: a cross-check
//! that silently does not run checks nothing.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::prf::Prf;

/// Sends `requests` (a JSON array) to the reference and returns its
/// answers, one per request.
pub fn run(requests: &[Value]) -> Vec<Value> {
    let python = std::env::var("ESPADA_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ike_crypto_reference.py");
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (the IKE crypto reference needs it): {e}"));
    let input = Value::Array(requests.to_vec()).to_string();
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.as_bytes())
        .expect("writing to the reference");
    let out = child.wait_with_output().expect("waiting for the reference");
    assert!(
        out.status.success(),
        "ike_crypto_reference.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> =
        serde_json::from_slice(&out.stdout).expect("the reference answers a JSON array");
    assert_eq!(answers.len(), requests.len(), "one answer per request");
    answers
}

/// Runs `requests` and asserts that each answer equals ours, naming the
/// first request that differs (rather than printing two long arrays).
pub fn check(requests: &[Value], ours: &[Value]) {
    assert_eq!(
        requests.len(),
        ours.len(),
        "one expected answer per request"
    );
    let answers = run(requests);
    for (i, ((request, theirs), ours)) in requests.iter().zip(&answers).zip(ours).enumerate() {
        assert!(
            theirs == ours,
            "request {i} ({}) differs from the Python reference\n request: {request}\n python: {theirs}\n    rust: {ours}",
            request["op"]
        );
    }
}

/// The reference's name for the hash under a prf.
pub fn alg(prf: Prf) -> &'static str {
    match prf {
        Prf::HmacMd5 => "md5",
        Prf::HmacSha1 => "sha1",
        Prf::HmacSha256 => "sha256",
        Prf::HmacSha384 => "sha384",
        Prf::HmacSha512 => "sha512",
    }
}

pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    getrandom::getrandom(&mut out).expect("OS RNG");
    out
}

/// A random number in `0..n`; modulo bias does not matter for test inputs.
pub fn random_below(n: usize) -> usize {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).expect("OS RNG");
    (u64::from_le_bytes(b) % n as u64) as usize
}

pub fn random_array<const N: usize>() -> [u8; N] {
    let mut out = [0; N];
    getrandom::getrandom(&mut out).expect("OS RNG");
    out
}

/// Hex of each byte string, as the reference answers lists of keys.
pub fn hex_list(items: &[&[u8]]) -> Value {
    Value::Array(items.iter().map(|i| Value::from(hex::encode(i))).collect())
}

/// A reader for NIST CAVS response files: `[...]` section headers and
/// `name = value` lines, one blank-line-separated block per vector.
pub mod cavs {
    use std::collections::BTreeMap;

    pub struct Vector {
        /// The hash of the section, e.g. "SHA-256".
        pub hash: String,
        fields: BTreeMap<String, String>,
    }

    impl Vector {
        pub fn get(&self, name: &str) -> &str {
            self.fields
                .get(name)
                .unwrap_or_else(|| panic!("vector has no {name}"))
        }

        pub fn hex(&self, name: &str) -> Vec<u8> {
            hex::decode(self.get(name)).expect("vector field is hex")
        }
    }

    pub fn parse(text: &str) -> Vec<Vector> {
        let mut out: Vec<Vector> = Vec::new();
        let mut hash = String::new();
        let mut in_vector = false;
        for line in text.lines().map(str::trim) {
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                if header.starts_with("SHA-") {
                    hash = header.to_string();
                }
                in_vector = false;
            } else if line.is_empty() || line.starts_with('#') {
                in_vector = false;
            } else if let Some((name, value)) = line.split_once(" = ") {
                if !in_vector {
                    out.push(Vector {
                        hash: hash.clone(),
                        fields: BTreeMap::new(),
                    });
                    in_vector = true;
                }
                if let Some(v) = out.last_mut() {
                    v.fields.insert(name.to_string(), value.to_string());
                }
            }
        }
        out
    }
}
