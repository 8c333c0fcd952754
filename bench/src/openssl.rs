//! The baseline: OpenSSL's own single-core figures (`openssl speed -evp`),
//! measured in the same run as Espada's so a noisy, shared machine affects
//! both alike. Results are bytes per second for one algorithm at one size.

use std::collections::HashMap;
use std::process::Command;

use anyhow::{bail, Context, Result};
use dataplane::crypto::{AuthAlg, EncAlg};

/// `openssl speed` names of the cipher and of the hash behind the HMAC.
pub fn cipher_name(enc: EncAlg) -> Option<&'static str> {
    match enc {
        EncAlg::Null => None,
        EncAlg::DesCbc => Some("des-cbc"),
        EncAlg::TripleDesCbc => Some("des-ede3-cbc"),
        EncAlg::AesCbc128 => Some("aes-128-cbc"),
        EncAlg::AesCbc192 => Some("aes-192-cbc"),
        EncAlg::AesCbc256 => Some("aes-256-cbc"),
        EncAlg::AesGcm128(_) => Some("aes-128-gcm"),
        EncAlg::AesGcm256(_) => Some("aes-256-gcm"),
    }
}

pub fn hash_name(auth: AuthAlg) -> Option<&'static str> {
    match auth {
        AuthAlg::None => None,
        AuthAlg::HmacMd5_96 => Some("md5"),
        AuthAlg::HmacSha1_96 => Some("sha1"),
        AuthAlg::HmacSha256_128 => Some("sha256"),
        AuthAlg::HmacSha384_192 => Some("sha384"),
        AuthAlg::HmacSha512_256 => Some("sha512"),
    }
}

/// What was asked of `openssl speed`: algorithm, byte count, decrypt or not.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Probe {
    pub alg: &'static str,
    pub bytes: usize,
    pub decrypt: bool,
}

/// Runs and remembers `openssl speed` probes.
#[derive(Default)]
pub struct Baseline {
    seconds: u32,
    cache: HashMap<Probe, Option<f64>>,
}

impl Baseline {
    pub fn new(seconds: u32) -> Baseline {
        Baseline {
            seconds: seconds.max(1),
            cache: HashMap::new(),
        }
    }

    /// Bytes per second, or `None` when this OpenSSL does not offer the
    /// algorithm (single DES needs the legacy provider, which may be absent).
    pub fn rate(&mut self, probe: Probe) -> Option<f64> {
        if let Some(r) = self.cache.get(&probe) {
            return *r;
        }
        let r = run_speed(&probe, self.seconds).ok();
        self.cache.insert(probe, r);
        r
    }

    /// OpenSSL's single-core limit for an ESP suite at one size: the cipher
    /// and the MAC run one after the other, so the limit is
    /// 1 / (1/cipher + 1/mac). AES-GCM is one pass.
    pub fn suite_limit(
        &mut self,
        enc: EncAlg,
        auth: AuthAlg,
        bytes: usize,
        decrypt: bool,
    ) -> Option<f64> {
        // CBC needs whole blocks; measure the size the ESP payload pads to.
        let bytes = bytes.div_ceil(16) * 16;
        let cipher = match cipher_name(enc) {
            Some(alg) => Some(self.rate(Probe {
                alg,
                bytes,
                decrypt,
            })?),
            None => None,
        };
        let mac = match hash_name(auth) {
            Some(alg) => Some(self.rate(Probe {
                alg,
                bytes,
                decrypt: false,
            })?),
            None => None,
        };
        match (cipher, mac) {
            (Some(c), Some(m)) => Some(1.0 / (1.0 / c + 1.0 / m)),
            (Some(c), None) => Some(c),
            (None, Some(m)) => Some(m),
            (None, None) => None,
        }
    }
}

fn run_speed(probe: &Probe, seconds: u32) -> Result<f64> {
    let mut cmd = Command::new("openssl");
    cmd.arg("speed")
        .arg("-mr")
        .arg("-seconds")
        .arg(seconds.to_string());
    cmd.arg("-bytes").arg(probe.bytes.to_string());
    if probe.decrypt {
        cmd.arg("-decrypt");
    }
    if probe.alg == "des-cbc" {
        cmd.args(["-provider", "legacy", "-provider", "default"]);
    }
    cmd.arg("-evp").arg(probe.alg);
    let out = cmd
        .output()
        .context("running openssl speed (apt-get install openssl)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Machine-readable result line: "+F:<n>:<ALG>:<bytes per second>".
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("+F:") {
            if let Some(v) = rest.rsplit(':').next() {
                let rate: f64 = v.trim().parse().context("openssl speed result")?;
                if rate > 0.0 {
                    return Ok(rate);
                }
            }
        }
    }
    bail!("openssl speed gave no figure for {}", probe.alg)
}
