//! `espada-bench crypto`: ESP encapsulation and decapsulation throughput of
//! one core for each suite and packet size, through the same batched code
//! the workers run (`esp::encap_batch` / `esp::decap_batch`), with per-batch
//! latency percentiles, each result set against OpenSSL's single-core limit
//! measured in the same run.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use dataplane::counters::{DropCounters, DropReason};
use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};
use dataplane::esp::{decap_batch, encap_batch, PacketBuf};
use dataplane::sa::Sadb;
use dataplane::testkit::{
    encap_one, framed, inner_v4, packet_bufs, sa_pair, tunnel, FRAME, HEADROOM,
};
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::openssl::Baseline;

/// Simple IMIX by inner IP packet size: 7 × 64, 4 × 576, 1 × 1400 bytes
/// (1400 so the ESP packet still fits a 1500-byte MTU).
const IMIX: [usize; 12] = [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1400];

/// A packet size point: one size, or the IMIX mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeSpec {
    Fixed(usize),
    Imix,
}

impl SizeSpec {
    pub fn parse(s: &str) -> Result<SizeSpec> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(SizeSpec::Imix);
        }
        match s.parse::<usize>() {
            Ok(n) if (28..=1500).contains(&n) => Ok(SizeSpec::Fixed(n)),
            _ => bail!("size {s:?}: give an inner IP packet size from 28 to 1500 bytes, or imix"),
        }
    }

    fn sizes(self) -> Vec<usize> {
        match self {
            SizeSpec::Fixed(n) => vec![n],
            SizeSpec::Imix => IMIX.to_vec(),
        }
    }

    fn label(self) -> String {
        match self {
            SizeSpec::Fixed(n) => n.to_string(),
            SizeSpec::Imix => "imix".into(),
        }
    }
}

/// A suite named as strongSwan names ESP proposals (`aes128-sha1`,
/// `aes128gcm16`, `3des-md5`, `null-sha256`).
pub fn parse_suite(s: &str) -> Result<(EncAlg, AuthAlg)> {
    let (enc, auth) = match s.split_once('-') {
        Some((e, a)) => (e, Some(a)),
        None => (s, None),
    };
    let enc = match enc {
        "null" => EncAlg::Null,
        "des" => EncAlg::DesCbc,
        "3des" => EncAlg::TripleDesCbc,
        "aes128" => EncAlg::AesCbc128,
        "aes192" => EncAlg::AesCbc192,
        "aes256" => EncAlg::AesCbc256,
        "aes128gcm8" => EncAlg::AesGcm128(GcmIcv::B8),
        "aes128gcm12" => EncAlg::AesGcm128(GcmIcv::B12),
        "aes128gcm16" => EncAlg::AesGcm128(GcmIcv::B16),
        "aes256gcm8" => EncAlg::AesGcm256(GcmIcv::B8),
        "aes256gcm12" => EncAlg::AesGcm256(GcmIcv::B12),
        "aes256gcm16" => EncAlg::AesGcm256(GcmIcv::B16),
        other => bail!("unknown cipher {other:?} in suite {s:?} (null, des, 3des, aes128/192/256, aes128gcm16, ...)"),
    };
    let auth = match auth {
        None if enc.is_aead() => AuthAlg::None,
        None => bail!("suite {s:?} needs an integrity algorithm, e.g. {s}-sha1"),
        Some(_) if enc.is_aead() => {
            bail!("suite {s:?}: AES-GCM takes no separate integrity algorithm")
        }
        Some("md5") => AuthAlg::HmacMd5_96,
        Some("sha1") => AuthAlg::HmacSha1_96,
        Some("sha256") => AuthAlg::HmacSha256_128,
        Some("sha384") => AuthAlg::HmacSha384_192,
        Some("sha512") => AuthAlg::HmacSha512_256,
        Some(other) => {
            bail!("unknown integrity {other:?} in suite {s:?} (md5, sha1, sha256, sha384, sha512)")
        }
    };
    Ok((enc, auth))
}

/// Every valid suite name, for `--suites all`.
pub fn all_suite_names() -> Vec<String> {
    let encs = ["null", "des", "3des", "aes128", "aes192", "aes256"];
    let auths = ["md5", "sha1", "sha256", "sha384", "sha512"];
    let mut v: Vec<String> = encs
        .iter()
        .flat_map(|e| auths.iter().map(move |a| format!("{e}-{a}")))
        .collect();
    for g in ["aes128gcm", "aes256gcm"] {
        for icv in [8, 12, 16] {
            v.push(format!("{g}{icv}"));
        }
    }
    v
}

pub struct Options {
    pub suites: Vec<String>,
    pub sizes: Vec<SizeSpec>,
    pub batch: usize,
    pub duration: Duration,
    pub openssl_seconds: u32,
    pub openssl: bool,
}

#[derive(Debug, Serialize)]
pub struct Measurement {
    pub suite: String,
    pub direction: &'static str,
    pub size: String,
    pub packets: u64,
    pub seconds: f64,
    pub mpps: f64,
    pub gbps: f64,
    pub batch_p50_us: f64,
    pub batch_p99_us: f64,
    pub batch_p999_us: f64,
    /// OpenSSL's single-core limit for the same cipher + MAC at this size.
    pub openssl_gbps: Option<f64>,
    pub ratio_to_openssl: Option<f64>,
}

/// Most packets in a batch (`--batch`).
pub const MAX_BATCH: usize = 256;

pub fn run(opts: &Options, mut progress: impl FnMut(&Measurement)) -> Result<Vec<Measurement>> {
    if !(1..=MAX_BATCH).contains(&opts.batch) {
        bail!("--batch {}: give 1 to {MAX_BATCH} packets", opts.batch);
    }
    let mut baseline = Baseline::new(opts.openssl_seconds);
    let mut out = Vec::new();
    for name in &opts.suites {
        let (enc, auth) = parse_suite(name)?;
        for &size in &opts.sizes {
            for direction in ["encap", "decap"] {
                let mut m = if direction == "encap" {
                    measure_encap(enc, auth, size, opts)?
                } else {
                    measure_decap(enc, auth, size, opts)?
                };
                m.suite = name.clone();
                if opts.openssl {
                    let sizes = size.sizes();
                    // Weighted by bytes, as the packets share the time.
                    let mut secs_per_byte = 0.0;
                    let mut total = 0.0;
                    let mut ok = true;
                    for s in &sizes {
                        match baseline.suite_limit(enc, auth, *s, direction == "decap") {
                            Some(rate) => {
                                secs_per_byte += *s as f64 / rate;
                                total += *s as f64;
                            }
                            None => ok = false,
                        }
                    }
                    if ok && secs_per_byte > 0.0 {
                        let gbps = total / secs_per_byte * 8.0 / 1e9;
                        m.openssl_gbps = Some(gbps);
                        m.ratio_to_openssl = Some(m.gbps / gbps);
                    }
                }
                progress(&m);
                out.push(m);
            }
        }
    }
    Ok(out)
}

struct Timer {
    hist: Histogram<u64>,
    packets: u64,
    bytes: u64,
    start: Instant,
}

impl Timer {
    fn new() -> Result<Timer> {
        Ok(Timer {
            hist: Histogram::new(3)?,
            packets: 0,
            bytes: 0,
            start: Instant::now(),
        })
    }

    fn finish(self, direction: &'static str, size: SizeSpec) -> Measurement {
        let seconds = self.start.elapsed().as_secs_f64();
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        Measurement {
            suite: String::new(),
            direction,
            size: size.label(),
            packets: self.packets,
            seconds,
            mpps: self.packets as f64 / seconds / 1e6,
            gbps: self.bytes as f64 * 8.0 / seconds / 1e9,
            batch_p50_us: q(0.5),
            batch_p99_us: q(0.99),
            batch_p999_us: q(0.999),
            openssl_gbps: None,
            ratio_to_openssl: None,
        }
    }
}

fn measure_encap(
    enc: EncAlg,
    auth: AuthAlg,
    size: SizeSpec,
    opts: &Options,
) -> Result<Measurement> {
    let (out, _) = sa_pair(enc, auth, tunnel(false), false, false, 0);
    let mut db = Sadb::new();
    db.install(&out, 0)?;
    let Some(sa) = db.outbound(out.spi) else {
        bail!("SA not installed")
    };
    let sizes = size.sizes();
    let inners: Vec<Vec<u8>> = (0..opts.batch)
        .map(|i| inner_v4(sizes[i % sizes.len()] - 28))
        .collect();
    let mut frames: Vec<Vec<u8>> = inners.iter().map(|p| framed(p)).collect();
    let batch_bytes: u64 = inners.iter().map(|p| p.len() as u64).sum();
    let mut timer = Timer::new()?;
    while timer.start.elapsed() < opts.duration {
        // Encryption overwrote last round's inner header; restore only the
        // header (the payload's content does not change the work).
        for (f, p) in frames.iter_mut().zip(&inners) {
            f[HEADROOM..HEADROOM + 28].copy_from_slice(&p[..28]);
        }
        let mut pkts = packet_bufs(&mut frames, &inners);
        let t = Instant::now();
        encap_batch(sa, &mut pkts);
        let failed = pkts.iter().any(|p| p.verdict.is_err());
        timer.hist.record(t.elapsed().as_nanos() as u64)?;
        if failed {
            bail!("encapsulation failed during the benchmark");
        }
        timer.packets += opts.batch as u64;
        timer.bytes += batch_bytes;
    }
    Ok(timer.finish("encap", size))
}

fn measure_decap(
    enc: EncAlg,
    auth: AuthAlg,
    size: SizeSpec,
    opts: &Options,
) -> Result<Measurement> {
    // Window 0: the same packets are decrypted again and again, which the
    // replay check would rightly refuse. Its cost is a few atomics per packet.
    let (out, inb) = sa_pair(enc, auth, tunnel(false), false, false, 0);
    let (mut a, mut b) = (Sadb::new(), Sadb::new());
    a.install(&out, 0)?;
    b.install(&inb, 0)?;
    let Some(osa) = a.outbound(out.spi) else {
        bail!("SA not installed")
    };
    let sizes = size.sizes();
    let mut pool = Vec::with_capacity(opts.batch);
    let mut batch_bytes = 0u64;
    for i in 0..opts.batch {
        let inner = inner_v4(sizes[i % sizes.len()] - 28);
        batch_bytes += inner.len() as u64;
        pool.push(encap_one(osa, &inner).map_err(|r| anyhow::anyhow!("encap: {r:?}"))?);
    }
    let mut frames: Vec<Vec<u8>> = (0..opts.batch).map(|_| vec![0u8; FRAME]).collect();
    let global = DropCounters::default();
    let mut out = vec![Err(DropReason::Malformed); opts.batch];
    let mut timer = Timer::new()?;
    while timer.start.elapsed() < opts.duration {
        // A received frame is fresh each time: the copy stands for the
        // receive. Like the encap side's header restore, it counts in the
        // rate (wall time) but not in the batch latency.
        let mut pkts: Vec<PacketBuf<'_>> = frames
            .iter_mut()
            .zip(&pool)
            .map(|(f, p)| {
                f[HEADROOM..HEADROOM + p.len()].copy_from_slice(p);
                PacketBuf::new(f, HEADROOM, p.len())
            })
            .collect();
        let t = Instant::now();
        decap_batch(&b, &mut pkts, &mut out, &global);
        let failed = out.iter().any(|r| r.is_err());
        timer.hist.record(t.elapsed().as_nanos() as u64)?;
        if failed {
            bail!("decapsulation failed during the benchmark");
        }
        timer.packets += opts.batch as u64;
        timer.bytes += batch_bytes;
    }
    Ok(timer.finish("decap", size))
}
