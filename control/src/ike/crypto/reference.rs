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
