//! ESP cipher and integrity suites behind one trait ([`EspSuite`]) with a
//! batched API, so the worker hands a whole vector of packets to the crypto
//! stage and a suite may process several packets at once (multi-buffer
//! AES-CBC: CBC encryption is serial within a packet, not across packets).
//!
//! Algorithms and key lengths follow RFC 4303 §3.2, RFC 3602 (AES-CBC),
//! RFC 2451 (3DES-CBC), RFC 2405 (DES-CBC), RFC 4106 (AES-GCM for ESP),
//! RFC 2403/2404 (HMAC-MD5-96/SHA1-96) and RFC 4868 (HMAC-SHA2).
//!
//! Every suite owns its keys and wipes them on drop where the library
//! holding them allows: raw keys, salts, the `aes`/`des` key schedules and
//! GHASH keys are zeroized, OpenSSL wipes its cipher contexts when they are
//! freed and the OpenSSL-backed HMAC states are wiped on drop; ring's
//! AES-GCM key schedule and the pre-keyed RustCrypto HMAC states (SHA-1,
//! SHA-256) offer no zeroization and are freed without wiping.

mod aes_lanes;
mod cbc;
mod gcm;
mod integrity;
mod ivgen;
mod sha1_mb;
mod suite;

pub use ivgen::{prime_thread_ivs, IvGenerator};
pub use suite::new_suite;

use std::any::Any;

use thiserror::Error;

/// Why a crypto operation refused a packet. Each maps to a drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum CryptoError {
    /// The ICV (HMAC or GCM tag) did not verify: forged or corrupted packet.
    #[error("integrity check failed")]
    IntegrityFailed,
    /// The ciphertext is not a whole number of cipher blocks, or too short
    /// to hold the IV and ICV.
    #[error("ciphertext length is not valid for the cipher")]
    BadLength,
    /// The key material given for the SA has the wrong length.
    #[error("key length {got} bytes, expected {expected}")]
    BadKeyLength { got: usize, expected: usize },
    /// The suite combination is not allowed (e.g. NULL encryption with no
    /// integrity, or an AEAD with a separate integrity algorithm).
    #[error("invalid suite: {0}")]
    InvalidSuite(&'static str),
}

/// Length of the AES-GCM ICV (RFC 4106 §6 allows 8, 12 and 16 octets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GcmIcv {
    B8,
    B12,
    B16,
}

// `len` is the ICV's byte count, never zero; an `is_empty` would be noise.
#[allow(clippy::len_without_is_empty)]
impl GcmIcv {
    pub const fn len(self) -> usize {
        match self {
            GcmIcv::B8 => 8,
            GcmIcv::B12 => 12,
            GcmIcv::B16 => 16,
        }
    }
}

/// ESP encryption algorithm (IANA IKEv2 Transform Type 1 names in comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncAlg {
    /// ENCR_NULL (RFC 2410): integrity only; for tests and labs.
    Null,
    /// ENCR_DES (RFC 2405): legacy, 56-bit key; accepted for seeds 003/004.
    DesCbc,
    /// ENCR_3DES (RFC 2451).
    TripleDesCbc,
    /// ENCR_AES_CBC (RFC 3602) with a 128-bit key.
    AesCbc128,
    AesCbc192,
    AesCbc256,
    /// ENCR_AES_GCM_{8,12,16} (RFC 4106) with a 128-bit key.
    AesGcm128(GcmIcv),
    AesGcm256(GcmIcv),
}

impl EncAlg {
    pub const ALL: [EncAlg; 12] = [
        EncAlg::Null,
        EncAlg::DesCbc,
        EncAlg::TripleDesCbc,
        EncAlg::AesCbc128,
        EncAlg::AesCbc192,
        EncAlg::AesCbc256,
        EncAlg::AesGcm128(GcmIcv::B8),
        EncAlg::AesGcm128(GcmIcv::B12),
        EncAlg::AesGcm128(GcmIcv::B16),
        EncAlg::AesGcm256(GcmIcv::B8),
        EncAlg::AesGcm256(GcmIcv::B12),
        EncAlg::AesGcm256(GcmIcv::B16),
    ];

    /// Key material length in bytes. For GCM this includes the 4-byte salt
    /// that RFC 4106 §8.1 appends to the AES key.
    pub const fn key_len(self) -> usize {
        match self {
            EncAlg::Null => 0,
            EncAlg::DesCbc => 8,
            EncAlg::TripleDesCbc => 24,
            EncAlg::AesCbc128 => 16,
            EncAlg::AesCbc192 => 24,
            EncAlg::AesCbc256 => 32,
            EncAlg::AesGcm128(_) => 20,
            EncAlg::AesGcm256(_) => 36,
        }
    }

    /// Bytes of IV carried in every ESP packet.
    pub const fn iv_len(self) -> usize {
        match self {
            EncAlg::Null => 0,
            EncAlg::DesCbc | EncAlg::TripleDesCbc => 8,
            EncAlg::AesCbc128 | EncAlg::AesCbc192 | EncAlg::AesCbc256 => 16,
            EncAlg::AesGcm128(_) | EncAlg::AesGcm256(_) => 8,
        }
    }

    /// The payload (plaintext + padding + trailer) must be a multiple of
    /// this; RFC 4303 §2.4 requires at least 4-byte alignment.
    pub const fn block_align(self) -> usize {
        match self {
            EncAlg::Null | EncAlg::AesGcm128(_) | EncAlg::AesGcm256(_) => 4,
            EncAlg::DesCbc | EncAlg::TripleDesCbc => 8,
            EncAlg::AesCbc128 | EncAlg::AesCbc192 | EncAlg::AesCbc256 => 16,
        }
    }

    /// AEAD suites carry their own ICV and take no integrity algorithm.
    pub const fn icv_len(self) -> usize {
        match self {
            EncAlg::AesGcm128(icv) | EncAlg::AesGcm256(icv) => icv.len(),
            _ => 0,
        }
    }

    pub const fn is_aead(self) -> bool {
        matches!(self, EncAlg::AesGcm128(_) | EncAlg::AesGcm256(_))
    }

    /// DES (56-bit key) and NULL encryption give no confidentiality worth the
    /// name; configuration warns when they are chosen.
    pub const fn is_insecure(self) -> bool {
        matches!(self, EncAlg::DesCbc | EncAlg::Null)
    }

    /// Stable one-byte code of the algorithm on the control socket
    /// (`docs/control-protocol.md`); never renumber, only append.
    pub const fn code(self) -> u8 {
        match self {
            EncAlg::Null => 0,
            EncAlg::DesCbc => 1,
            EncAlg::TripleDesCbc => 2,
            EncAlg::AesCbc128 => 3,
            EncAlg::AesCbc192 => 4,
            EncAlg::AesCbc256 => 5,
            EncAlg::AesGcm128(GcmIcv::B8) => 6,
            EncAlg::AesGcm128(GcmIcv::B12) => 7,
            EncAlg::AesGcm128(GcmIcv::B16) => 8,
            EncAlg::AesGcm256(GcmIcv::B8) => 9,
            EncAlg::AesGcm256(GcmIcv::B12) => 10,
            EncAlg::AesGcm256(GcmIcv::B16) => 11,
        }
    }

    /// The algorithm with this [`code`](Self::code), if any.
    pub fn from_code(code: u8) -> Option<EncAlg> {
        EncAlg::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The transform name as IOS prints it (`show crypto ipsec sa`).
    pub const fn ios_name(self) -> &'static str {
        match self {
            EncAlg::Null => "esp-null",
            EncAlg::DesCbc => "esp-des",
            EncAlg::TripleDesCbc => "esp-3des",
            EncAlg::AesCbc128 => "esp-aes",
            EncAlg::AesCbc192 => "esp-aes 192",
            EncAlg::AesCbc256 => "esp-aes 256",
            EncAlg::AesGcm128(GcmIcv::B8) => "esp-gcm 128 (icv 8)",
            EncAlg::AesGcm128(GcmIcv::B12) => "esp-gcm 128 (icv 12)",
            EncAlg::AesGcm128(GcmIcv::B16) => "esp-gcm",
            EncAlg::AesGcm256(GcmIcv::B8) => "esp-gcm 256 (icv 8)",
            EncAlg::AesGcm256(GcmIcv::B12) => "esp-gcm 256 (icv 12)",
            EncAlg::AesGcm256(GcmIcv::B16) => "esp-gcm 256",
        }
    }
}

/// ESP integrity algorithm (IANA IKEv2 Transform Type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthAlg {
    /// No separate integrity: only valid with an AEAD cipher.
    None,
    /// AUTH_HMAC_MD5_96 (RFC 2403).
    HmacMd5_96,
    /// AUTH_HMAC_SHA1_96 (RFC 2404).
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (RFC 4868).
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (RFC 4868).
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (RFC 4868).
    HmacSha512_256,
}

impl AuthAlg {
    pub const ALL: [AuthAlg; 5] = [
        AuthAlg::HmacMd5_96,
        AuthAlg::HmacSha1_96,
        AuthAlg::HmacSha256_128,
        AuthAlg::HmacSha384_192,
        AuthAlg::HmacSha512_256,
    ];

    pub const fn key_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5_96 => 16,
            AuthAlg::HmacSha1_96 => 20,
            AuthAlg::HmacSha256_128 => 32,
            AuthAlg::HmacSha384_192 => 48,
            AuthAlg::HmacSha512_256 => 64,
        }
    }

    /// Truncated ICV length carried in the packet.
    pub const fn icv_len(self) -> usize {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5_96 | AuthAlg::HmacSha1_96 => 12,
            AuthAlg::HmacSha256_128 => 16,
            AuthAlg::HmacSha384_192 => 24,
            AuthAlg::HmacSha512_256 => 32,
        }
    }

    /// Stable one-byte code of the algorithm on the control socket
    /// (`docs/control-protocol.md`); never renumber, only append.
    pub const fn code(self) -> u8 {
        match self {
            AuthAlg::None => 0,
            AuthAlg::HmacMd5_96 => 1,
            AuthAlg::HmacSha1_96 => 2,
            AuthAlg::HmacSha256_128 => 3,
            AuthAlg::HmacSha384_192 => 4,
            AuthAlg::HmacSha512_256 => 5,
        }
    }

    /// The algorithm with this [`code`](Self::code), if any (`None` the
    /// algorithm has code 0).
    pub fn from_code(code: u8) -> Option<AuthAlg> {
        if code == AuthAlg::None.code() {
            return Some(AuthAlg::None);
        }
        AuthAlg::ALL.into_iter().find(|a| a.code() == code)
    }

    pub const fn ios_name(self) -> &'static str {
        match self {
            AuthAlg::None => "(none)",
            AuthAlg::HmacMd5_96 => "esp-md5-hmac",
            AuthAlg::HmacSha1_96 => "esp-sha-hmac",
            AuthAlg::HmacSha256_128 => "esp-sha256-hmac",
            AuthAlg::HmacSha384_192 => "esp-sha384-hmac",
            AuthAlg::HmacSha512_256 => "esp-sha512-hmac",
        }
    }
}

/// One packet for [`EspSuite::seal_batch`].
///
/// `esp` spans the whole ESP packet: SPI and sequence number (already
/// written), `iv_len` bytes of IV space (the suite writes the IV), the
/// plaintext payload with its padding and ESP trailer (already built), and
/// `icv_len` bytes at the end where the suite writes the ICV.
pub struct SealJob<'a> {
    pub esp: &'a mut [u8],
    /// Full 64-bit sequence number: its low half is in the header, its high
    /// half enters the ICV when ESN is on, and GCM's IV is made of it (CBC
    /// draws its IV from the sealing thread's stream instead).
    pub seq: u64,
    pub result: Result<(), CryptoError>,
}

/// One packet for [`EspSuite::open_batch`]; `esp` spans SPI to ICV. On
/// success the payload between IV and ICV has been decrypted in place.
pub struct OpenJob<'a> {
    pub esp: &'a mut [u8],
    /// High 32 bits of the sequence number (RFC 4303 Appendix A) when the SA
    /// uses ESN; they are authenticated but not transmitted.
    pub seq_hi: Option<u32>,
    pub result: Result<(), CryptoError>,
}

/// A keyed ESP transform: encryption plus integrity, or an AEAD.
///
/// Implementations are immutable after construction (keys, key schedules),
/// so one suite is shared by every worker handling the SA.
/// `Any` so that [`EspSuite::seal_across`] can reach the state of other
/// SAs' suites of its own type.
pub trait EspSuite: Any + Send + Sync {
    fn enc_alg(&self) -> EncAlg;
    fn auth_alg(&self) -> AuthAlg;
    /// Whether the high sequence bits enter the ICV (RFC 4303 §2.2.1).
    fn esn(&self) -> bool;

    fn iv_len(&self) -> usize {
        self.enc_alg().iv_len()
    }
    fn block_align(&self) -> usize {
        self.enc_alg().block_align()
    }
    fn icv_len(&self) -> usize {
        self.enc_alg().icv_len() + self.auth_alg().icv_len()
    }

    /// Where in `self` the state a packet reads lies, as (offset from
    /// `self`'s address, length): what the pipeline prefetches for a batch
    /// when SAs are many and each suite is a cache miss. The default is
    /// all of it; a suite holding key schedules for a path it does not
    /// take narrows it.
    fn hot_bytes(&self) -> (usize, usize) {
        (0, std::mem::size_of_val(self))
    }

    /// Writes the IV, encrypts the payload and writes the ICV, in place.
    fn seal(&self, esp: &mut [u8], seq: u64) -> Result<(), CryptoError>;

    /// Verifies the ICV, then decrypts the payload in place. Nothing is
    /// decrypted when the ICV fails.
    fn open(&self, esp: &mut [u8], seq_hi: Option<u32>) -> Result<(), CryptoError>;

    /// Seals a batch. The default is one packet after another; suites that
    /// can interleave packets (multi-buffer CBC) override it.
    fn seal_batch(&self, jobs: &mut [SealJob<'_>]) {
        for job in jobs {
            job.result = self.seal(job.esp, job.seq);
        }
    }

    /// Opens a batch: each job's ICV checked before any of it is decrypted,
    /// as `open` does. The default is one packet after another; suites
    /// whose MAC hashes packets side by side (CBC and NULL with HMAC-SHA1)
    /// verify the whole batch first.
    fn open_batch(&self, jobs: &mut [OpenJob<'_>]) {
        for job in jobs {
            job.result = self.open(job.esp, job.seq_hi);
        }
    }

    /// Whether [`EspSuite::seal_across`] and [`EspSuite::open_across`]
    /// take packets of different SAs side by side (a key per lane), so
    /// that a batch whose packets each have an SA of their own (a hub's
    /// traffic) is worth handing over together.
    fn lanes_across(&self) -> bool {
        false
    }

    /// Seals `jobs[i]` with `suites[i]`: packets of different SAs whose
    /// suites are all of this one's concrete type (callers check). The
    /// default seals one after another.
    fn seal_across(&self, suites: &[&dyn EspSuite], jobs: &mut [SealJob<'_>]) {
        let jobs = unmatched_fail(suites.len(), jobs, |j| &mut j.result);
        for (s, job) in suites.iter().zip(jobs.iter_mut()) {
            s.seal_batch(std::slice::from_mut(job));
        }
    }

    /// Opens `jobs[i]` with `suites[i]`, as [`EspSuite::seal_across`]
    /// seals; each ICV still checked before any of its packet is
    /// decrypted.
    fn open_across(&self, suites: &[&dyn EspSuite], jobs: &mut [OpenJob<'_>]) {
        let jobs = unmatched_fail(suites.len(), jobs, |j| &mut j.result);
        for (s, job) in suites.iter().zip(jobs.iter_mut()) {
            s.open_batch(std::slice::from_mut(job));
        }
    }
}

/// The jobs that have a suite (the first `suites`); any beyond fail (a
/// caller's mistake: never sealed or opened, never taken for done).
pub(crate) fn unmatched_fail<J>(
    suites: usize,
    jobs: &mut [J],
    result: impl Fn(&mut J) -> &mut Result<(), CryptoError>,
) -> &mut [J] {
    let n = suites.min(jobs.len());
    for j in &mut jobs[n..] {
        *result(j) = Err(CryptoError::InvalidSuite("no suite for the job"));
    }
    &mut jobs[..n]
}

/// Whether two suites are of one concrete type: what
/// [`EspSuite::seal_across`] takes together.
pub fn same_suite_type(a: &dyn EspSuite, b: &dyn EspSuite) -> bool {
    let (a, b): (&dyn Any, &dyn Any) = (a, b);
    a.type_id() == b.type_id()
}

/// Offsets inside an ESP packet shared by all suites.
pub(crate) const ESP_HEADER_LEN: usize = 8;
