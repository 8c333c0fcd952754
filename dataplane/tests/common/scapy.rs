//! Runs one of the tests' scapy scripts (the independent decoder): a JSON
//! array on its stdin, a JSON array back on its stdout. Included with
//! `#[path = ...] mod scapy;` by the scapy cross-checks of the dataplane
//! and control crates' integration tests and by `espada-bench`'s unit
//! tests (three crates, one file: no test-support crate needed for one
//! function). The script is the including crate's `tests/SCRIPT`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Runs `tests/SCRIPT` with Debian's python3 (or `$ESPADA_PYTHON`); fails
/// the test, naming the script, if scapy is missing or the script fails.
pub fn run(script: &str, input: &Value) -> Vec<Value> {
    let python = std::env::var("ESPADA_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let path = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(&python)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {python}: {e} (deploy/setup.sh installs python3-scapy)")
        });
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.to_string().as_bytes())
        .expect("writing to the scapy script");
    let out = child
        .wait_with_output()
        .expect("waiting for the scapy script");
    assert!(
        out.status.success(),
        "{script} failed (is python3-scapy installed? deploy/setup.sh installs it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("{script} output is not a JSON array: {e}"))
}
