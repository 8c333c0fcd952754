//! Network namespaces for root-only integration tests: created per test,
//! deleted on drop (also when the test fails), entered by the calling
//! thread with setns(2). Addresses used inside come only from
//! 198.18.0.0/15 and fd00::/8.

#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// Fails the test unless running as root, or skips it when the operator
/// said so explicitly (ESPADA_SKIP_ROOT_TESTS=1); CI runs as root.
pub fn require_root() -> bool {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("ESPADA_SKIP_ROOT_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: needs root (ESPADA_SKIP_ROOT_TESTS=1)");
        return false;
    }
    panic!("this test needs root (network namespaces); run deploy/test.sh as root or set ESPADA_SKIP_ROOT_TESTS=1");
}

pub struct NetNs {
    pub name: String,
}

impl NetNs {
    pub fn new(tag: &str) -> NetNs {
        let name = format!("espada-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        sh(&format!("ip netns add {name}"));
        let ns = NetNs { name };
        ns.run("ip link set lo up");
        ns
    }

    /// Runs a shell command inside the namespace; panics with its output
    /// if it fails.
    pub fn run(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} sh -c '{}'", self.name, cmd))
    }

    /// Moves the calling thread into the namespace.
    pub fn enter(&self) {
        let f = File::open(format!("/var/run/netns/{}", self.name)).expect("netns file");
        // SAFETY: setns on a valid namespace fd affects only this thread.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
    }

    pub fn ifindex(&self, dev: &str) -> u32 {
        self.run(&format!("cat /sys/class/net/{dev}/ifindex"))
            .trim()
            .parse()
            .expect("ifindex")
    }

    pub fn mac(&self, dev: &str) -> [u8; 6] {
        let s = self.run(&format!("cat /sys/class/net/{dev}/address"));
        let mut mac = [0u8; 6];
        for (m, h) in mac.iter_mut().zip(s.trim().split(':')) {
            *m = u8::from_str_radix(h, 16).expect("mac");
        }
        mac
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
