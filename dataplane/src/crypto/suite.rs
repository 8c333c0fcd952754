//! Builds the keyed suite for an SA from its algorithms and keys, and holds
//! the encrypt-then-MAC suites of RFC 4303 §3.2.1 (CBC + HMAC) and NULL
//! encryption with HMAC (RFC 2410).
//!
//! Each suite is generic over its block cipher and MAC, so the packet path
//! is monomorphised per combination: the only dynamic dispatch is the one
//! `dyn EspSuite` call per packet (or per batch).
//!
//! Integrity is always checked before decryption (RFC 4303 §3.4.4.1): a
//! forged packet costs one MAC and never reaches the cipher. ESN SAs
//! authenticate the high sequence half after the payload (RFC 4303 §2.2.1).

use super::cbc::{
    self, Aes128Cbc, Aes192Cbc, Aes256Cbc, CbcCipher, DesCbc, Lane, TripleDesCbc, LANES, MAX_BLOCK,
};
use super::gcm::GcmSuite;
use super::integrity::{
    HmacMd5_96, HmacSha1_96, HmacSha256_128, HmacSha384_192, HmacSha512_256, Integrity, MacInput,
    MAX_ICV, MB_LANES,
};
use super::ivgen::fresh_ivs;
use super::{
    unmatched_fail, AuthAlg, CryptoError, EncAlg, EspSuite, OpenJob, SealJob, ESP_HEADER_LEN,
};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Creates the suite for one SA. `enc_key` includes the GCM salt.
///
/// Refuses combinations ESP must not offer: no integrity at all (NULL or
/// CBC without a MAC, RFC 4303 §3.2 and RFC 8221 §5), and an AEAD with a
/// separate MAC (RFC 4106 §8.3). Key lengths must match the algorithms
/// exactly, since a short key from a broken negotiation must not be padded.
pub fn new_suite(
    enc: EncAlg,
    enc_key: &[u8],
    auth: AuthAlg,
    auth_key: &[u8],
    esn: bool,
) -> Result<Box<dyn EspSuite>, CryptoError> {
    if enc.is_aead() {
        if auth != AuthAlg::None {
            return Err(CryptoError::InvalidSuite(
                "an AEAD cipher takes no separate integrity algorithm",
            ));
        }
        return match enc {
            EncAlg::AesGcm128(icv) => Ok(Box::new(GcmSuite::<aes::Aes128Enc>::new(
                enc_key, icv, esn,
            )?)),
            EncAlg::AesGcm256(icv) => Ok(Box::new(GcmSuite::<aes::Aes256Enc>::new(
                enc_key, icv, esn,
            )?)),
            _ => Err(CryptoError::InvalidSuite("unknown AEAD")),
        };
    }
    if auth == AuthAlg::None {
        return Err(CryptoError::InvalidSuite(
            "ESP without integrity is not offered",
        ));
    }
    match enc {
        EncAlg::Null if !enc_key.is_empty() => Err(CryptoError::BadKeyLength {
            got: enc_key.len(),
            expected: 0,
        }),
        EncAlg::Null => with_mac(auth, auth_key, NullBuild { esn }),
        EncAlg::DesCbc => cbc_with::<DesCbc>(enc_key, auth, auth_key, esn),
        EncAlg::TripleDesCbc => cbc_with::<TripleDesCbc>(enc_key, auth, auth_key, esn),
        EncAlg::AesCbc128 => cbc_with::<Aes128Cbc>(enc_key, auth, auth_key, esn),
        EncAlg::AesCbc192 => cbc_with::<Aes192Cbc>(enc_key, auth, auth_key, esn),
        EncAlg::AesCbc256 => cbc_with::<Aes256Cbc>(enc_key, auth, auth_key, esn),
        EncAlg::AesGcm128(_) | EncAlg::AesGcm256(_) => {
            Err(CryptoError::InvalidSuite("unreachable"))
        }
    }
}

fn keyed<I: Integrity>(key: &[u8]) -> Result<I, CryptoError> {
    let expected = I::ALG.key_len();
    if key.len() != expected {
        return Err(CryptoError::BadKeyLength {
            got: key.len(),
            expected,
        });
    }
    Ok(I::with_key(key))
}

/// A suite constructor generic over the MAC type, so the choice of MAC
/// (a runtime value) becomes a type parameter in one place.
trait MacBuild {
    fn build<I: Integrity>(self, mac: I) -> Result<Box<dyn EspSuite>, CryptoError>;
}

/// Keys the MAC for `auth` and hands it to `build` as a concrete type.
fn with_mac<B: MacBuild>(
    auth: AuthAlg,
    key: &[u8],
    build: B,
) -> Result<Box<dyn EspSuite>, CryptoError> {
    match auth {
        AuthAlg::HmacMd5_96 => build.build(keyed::<HmacMd5_96>(key)?),
        AuthAlg::HmacSha1_96 => build.build(keyed::<HmacSha1_96>(key)?),
        AuthAlg::HmacSha256_128 => build.build(keyed::<HmacSha256_128>(key)?),
        AuthAlg::HmacSha384_192 => build.build(keyed::<HmacSha384_192>(key)?),
        AuthAlg::HmacSha512_256 => build.build(keyed::<HmacSha512_256>(key)?),
        AuthAlg::None => Err(CryptoError::InvalidSuite(
            "ESP without integrity is not offered",
        )),
    }
}

struct NullBuild {
    esn: bool,
}

impl MacBuild for NullBuild {
    fn build<I: Integrity>(self, mac: I) -> Result<Box<dyn EspSuite>, CryptoError> {
        Ok(Box::new(NullSuite { mac, esn: self.esn }))
    }
}

struct CbcBuild<C: CbcCipher> {
    cipher: C,
    esn: bool,
}

impl<C: CbcCipher> MacBuild for CbcBuild<C> {
    fn build<I: Integrity>(self, mac: I) -> Result<Box<dyn EspSuite>, CryptoError> {
        Ok(Box::new(CbcSuite {
            cipher: self.cipher,
            mac,
            esn: self.esn,
        }))
    }
}

fn cbc_with<C: CbcCipher>(
    enc_key: &[u8],
    auth: AuthAlg,
    auth_key: &[u8],
    esn: bool,
) -> Result<Box<dyn EspSuite>, CryptoError> {
    let cipher = C::with_key(enc_key)?;
    with_mac(auth, auth_key, CbcBuild { cipher, esn })
}

/// The high sequence half as the ICV trailer: 4 bytes with ESN, none without.
fn trailer(esn: bool, seq_hi: u32) -> ([u8; 4], usize) {
    (seq_hi.to_be_bytes(), if esn { 4 } else { 0 })
}

/// Resolves the `seq_hi` handed to `open`: required for an ESN SA (without
/// it the ICV cannot be checked), ignored otherwise since a non-ESN SA
/// authenticates only the transmitted 32 bits.
fn open_trailer(esn: bool, seq_hi: Option<u32>) -> Result<([u8; 4], usize), CryptoError> {
    match (esn, seq_hi) {
        (true, Some(hi)) => Ok(trailer(true, hi)),
        (true, None) => Err(CryptoError::InvalidSuite("ESN SA opened without seq_hi")),
        (false, _) => Ok(trailer(false, 0)),
    }
}

/// Checks the packet shape shared by every non-AEAD suite and returns the
/// length of the authenticated part (header, IV and payload).
fn check_layout(
    len: usize,
    iv_len: usize,
    icv_len: usize,
    align: usize,
) -> Result<usize, CryptoError> {
    let payload = len
        .checked_sub(ESP_HEADER_LEN + iv_len + icv_len)
        .ok_or(CryptoError::BadLength)?;
    if payload == 0 || payload % align != 0 {
        return Err(CryptoError::BadLength);
    }
    Ok(len - icv_len)
}

/// Encrypt-then-MAC with a CBC cipher: ESP's classic suites. The IVs come
/// from the sealing thread's stream (`ivgen`), not from the SA: every
/// packet sealed draws exactly one, in the order of its jobs, so a batch
/// and the same packets one by one draw the same IVs from the same stream.
pub(crate) struct CbcSuite<C: CbcCipher, I: Integrity> {
    cipher: C,
    mac: I,
    esn: bool,
}

impl<C: CbcCipher, I: Integrity> CbcSuite<C, I> {
    #[cfg(test)]
    pub(crate) fn for_test(enc_key: &[u8], auth_key: &[u8], esn: bool) -> Self {
        Self {
            cipher: C::with_key(enc_key).unwrap(),
            mac: I::with_key(auth_key),
            esn,
        }
    }

    /// Seals with a caller-chosen IV: `seal` passes the thread's next IV,
    /// known-answer tests the RFC's.
    pub(crate) fn seal_with_iv(
        &self,
        esp: &mut [u8],
        seq: u64,
        iv: &[u8],
    ) -> Result<(), CryptoError> {
        let b = C::BLOCK;
        let auth_len = check_layout(esp.len(), b, I::ICV_LEN, b)?;
        let (authed, icv) = esp.split_at_mut(auth_len);
        let (head, payload) = authed.split_at_mut(ESP_HEADER_LEN + b);
        head[ESP_HEADER_LEN..].copy_from_slice(&iv[..b]);
        cbc::encrypt(&self.cipher, &iv[..b], payload);
        let (t, n) = trailer(self.esn, (seq >> 32) as u32);
        self.mac.compute(authed, &t[..n], icv);
        Ok(())
    }
}

impl<C: CbcCipher, I: Integrity> EspSuite for CbcSuite<C, I> {
    fn enc_alg(&self) -> EncAlg {
        C::ALG
    }

    fn auth_alg(&self) -> AuthAlg {
        I::ALG
    }

    fn esn(&self) -> bool {
        self.esn
    }

    fn seal(&self, esp: &mut [u8], seq: u64) -> Result<(), CryptoError> {
        // The shape first: a packet refused draws no IV, as in a batch.
        let b = C::BLOCK;
        check_layout(esp.len(), b, I::ICV_LEN, b)?;
        let mut iv = [[0u8; MAX_BLOCK]];
        fresh_ivs(&mut iv)?;
        self.seal_with_iv(esp, seq, &iv[0])
    }

    fn open(&self, esp: &mut [u8], seq_hi: Option<u32>) -> Result<(), CryptoError> {
        let b = C::BLOCK;
        let (t, n) = open_trailer(self.esn, seq_hi)?;
        let auth_len = check_layout(esp.len(), b, I::ICV_LEN, b)?;
        let (authed, icv) = esp.split_at_mut(auth_len);
        if !self.mac.verify(authed, &t[..n], icv) {
            return Err(CryptoError::IntegrityFailed);
        }
        let (head, payload) = authed.split_at_mut(ESP_HEADER_LEN + b);
        cbc::decrypt(&self.cipher, &head[ESP_HEADER_LEN..], payload);
        Ok(())
    }

    /// Multi-buffer: 8 packets' IVs from the thread's stream (computed 64
    /// at a time), then the 8 packets'
    /// CBC encryption in one `cbc_encrypt_lanes` call (interleaved so each
    /// step is one pipelined block-cipher call for AES; packet after packet
    /// on OpenSSL for 3DES/DES), then the MACs. Stack scratch only.
    fn seal_batch(&self, jobs: &mut [SealJob<'_>]) {
        for group in jobs.chunks_mut(LANES) {
            let (mut lanes, _, k) = Self::iv_lanes(group);
            cbc::encrypt_multi(&self.cipher, &mut lanes[..k]);
        }
        mac_batch(&self.mac, self.esn, jobs);
    }

    /// All the chunk's ICVs first, side by side where the MAC can hash
    /// packets in lanes, then the decryption of those that passed: each
    /// packet is still verified before any of it is decrypted.
    fn open_batch(&self, jobs: &mut [OpenJob<'_>]) {
        let b = C::BLOCK;
        for chunk in jobs.chunks_mut(MB_LANES) {
            verify_chunk(&self.mac, self.esn, chunk, b, b);
            for job in chunk.iter_mut().filter(|j| j.result.is_ok()) {
                let auth_len = job.esp.len() - I::ICV_LEN;
                let (head, payload) = job.esp[..auth_len].split_at_mut(ESP_HEADER_LEN + b);
                cbc::decrypt(&self.cipher, &head[ESP_HEADER_LEN..], payload);
            }
        }
    }

    fn lanes_across(&self) -> bool {
        true
    }

    /// As `seal_batch`, each packet with its own SA's cipher and MAC: the
    /// CBC lanes and the MAC lanes each take a key per lane.
    fn seal_across(&self, suites: &[&dyn EspSuite], jobs: &mut [SealJob<'_>]) {
        let b = C::BLOCK;
        let jobs = unmatched_fail(suites.len(), jobs, |j| &mut j.result);
        for (ss, group) in suites.chunks(MB_LANES).zip(jobs.chunks_mut(MB_LANES)) {
            let Some(peers) = Self::peers(self, ss) else {
                for (s, job) in ss.iter().zip(group.iter_mut()) {
                    s.seal_batch(std::slice::from_mut(job));
                }
                continue;
            };
            let peers = &peers[..group.len()];
            for (pg, jg) in peers.chunks(LANES).zip(group.chunks_mut(LANES)) {
                let (mut lanes, at, k) = Self::iv_lanes(jg);
                let ciphers: [&C; LANES] = std::array::from_fn(|m| {
                    if m < k {
                        &pg[at[m]].cipher
                    } else {
                        &self.cipher
                    }
                });
                if !C::cbc_encrypt_lanes_keyed(&ciphers[..k], &mut lanes[..k]) {
                    for (c, lane) in ciphers.iter().zip(lanes.iter_mut()).take(k) {
                        cbc::encrypt(*c, &lane.chain[..b], lane.data);
                    }
                }
            }
            let keys = self.mac_keys(peers);
            mac_keyed(&keys[..group.len()], group);
        }
    }

    /// As `open_batch`, each packet with its own SA's MAC and cipher:
    /// the ICVs side by side, a key per lane, then the decryption of
    /// those that passed.
    fn open_across(&self, suites: &[&dyn EspSuite], jobs: &mut [OpenJob<'_>]) {
        let b = C::BLOCK;
        let jobs = unmatched_fail(suites.len(), jobs, |j| &mut j.result);
        for (ss, group) in suites.chunks(MB_LANES).zip(jobs.chunks_mut(MB_LANES)) {
            let Some(peers) = Self::peers(self, ss) else {
                for (s, job) in ss.iter().zip(group.iter_mut()) {
                    s.open_batch(std::slice::from_mut(job));
                }
                continue;
            };
            let peers = &peers[..group.len()];
            let keys = self.mac_keys(peers);
            verify_keyed(&keys[..group.len()], group, b, b);
            for (p, job) in peers.iter().zip(group.iter_mut()) {
                if job.result.is_ok() {
                    let auth_len = job.esp.len() - I::ICV_LEN;
                    let (head, payload) = job.esp[..auth_len].split_at_mut(ESP_HEADER_LEN + b);
                    cbc::decrypt(&p.cipher, &head[ESP_HEADER_LEN..], payload);
                }
            }
        }
    }
}

impl<C: CbcCipher, I: Integrity> CbcSuite<C, I> {
    /// The CBC lanes of up to [`LANES`] jobs to seal: each job's shape
    /// checked (a refused job gets its error, the others `Ok`), then one IV
    /// from the thread's stream per accepted job, in job order, written
    /// into its packet and its lane's chain. Returns the lanes, the index
    /// of each lane's job and how many lanes; none if the stream gave no
    /// IVs (the accepted jobs then carry that error).
    fn iv_lanes<'a>(jobs: &'a mut [SealJob<'_>]) -> ([Lane<'a>; LANES], [usize; LANES], usize) {
        debug_assert!(jobs.len() <= LANES);
        let b = C::BLOCK;
        for job in jobs.iter_mut() {
            job.result = check_layout(job.esp.len(), b, I::ICV_LEN, b).map(|_| ());
        }
        let mut lanes: [Lane<'a>; LANES] = Default::default();
        let mut at = [0usize; LANES];
        let n = jobs.iter().filter(|j| j.result.is_ok()).count();
        let mut ivs = [[0u8; MAX_BLOCK]; LANES];
        if let Err(e) = fresh_ivs(&mut ivs[..n]) {
            for job in jobs.iter_mut().filter(|j| j.result.is_ok()) {
                job.result = Err(e);
            }
            return (lanes, at, 0);
        }
        let mut k = 0;
        for (i, job) in jobs.iter_mut().enumerate() {
            if job.result.is_err() {
                continue;
            }
            let auth_len = job.esp.len() - I::ICV_LEN;
            let (head, payload) = job.esp[..auth_len].split_at_mut(ESP_HEADER_LEN + b);
            head[ESP_HEADER_LEN..].copy_from_slice(&ivs[k][..b]);
            lanes[k] = Lane {
                data: payload,
                chain: ivs[k],
            };
            at[k] = i;
            k += 1;
        }
        (lanes, at, k)
    }

    /// Each peer's MAC and ESN flag, for [`mac_keyed`] and
    /// [`verify_keyed`] (the first `peers.len()` entries).
    fn mac_keys<'s>(&'s self, peers: &[&'s Self]) -> [(&'s I, bool); MB_LANES] {
        std::array::from_fn(|i| {
            let p = peers.get(i).copied().unwrap_or(self);
            (&p.mac, p.esn)
        })
    }

    /// `suites` (at most [`MB_LANES`]) as this type; `None` if one is not.
    fn peers<'s>(&'s self, suites: &[&'s dyn EspSuite]) -> Option<[&'s Self; MB_LANES]> {
        let mut peers = [self; MB_LANES];
        if suites.len() > MB_LANES {
            return None;
        }
        for (p, s) in peers.iter_mut().zip(suites) {
            let any: &dyn std::any::Any = *s;
            *p = any.downcast_ref::<Self>()?;
        }
        Some(peers)
    }
}

/// The ICVs of the jobs whose result is `Ok` (encrypted, or laid out for
/// NULL encryption), as many at once as the MAC can hash side by side.
fn mac_batch<I: Integrity>(mac: &I, esn: bool, jobs: &mut [SealJob<'_>]) {
    for chunk in jobs.chunks_mut(MB_LANES) {
        mac_keyed(&[(mac, esn); MB_LANES][..chunk.len()], chunk);
    }
}

/// [`mac_batch`] of up to [`MB_LANES`] jobs, each with its own SA's MAC
/// and ESN flag: `keys[i]` for `jobs[i]`.
fn mac_keyed<I: Integrity>(keys: &[(&I, bool)], jobs: &mut [SealJob<'_>]) {
    let Some(&(first, _)) = keys.first() else {
        return;
    };
    let mut trailers = [([0u8; 4], 0usize); MB_LANES];
    for ((t, job), (_, esn)) in trailers.iter_mut().zip(jobs.iter()).zip(keys) {
        *t = trailer(*esn, (job.seq >> 32) as u32);
    }
    let mut inputs: [MacInput<'_>; MB_LANES] = std::array::from_fn(|_| MacInput {
        data: &[],
        trailer: &[],
    });
    let mut macs = [first; MB_LANES];
    let mut icvs: [&mut [u8]; MB_LANES] = Default::default();
    let mut n = 0;
    for ((job, (t, tn)), (mac, _)) in jobs.iter_mut().zip(trailers.iter()).zip(keys) {
        if job.result.is_err() {
            continue;
        }
        let auth_len = job.esp.len() - I::ICV_LEN;
        let (authed, icv) = job.esp.split_at_mut(auth_len);
        inputs[n] = MacInput {
            data: authed,
            trailer: &t[..*tn],
        };
        macs[n] = mac;
        icvs[n] = icv;
        n += 1;
    }
    let mut out = [[0u8; MAX_ICV]; MB_LANES];
    if I::compute_many_keyed(&macs[..n], &inputs[..n], &mut out[..n]) {
        for (icv, o) in icvs.iter_mut().zip(&out).take(n) {
            icv.copy_from_slice(&o[..I::ICV_LEN]);
        }
    } else {
        for ((icv, input), mac) in icvs.iter_mut().zip(&inputs).zip(&macs).take(n) {
            mac.compute(input.data, input.trailer, icv);
        }
    }
}

/// Checks the ICVs of up to [`MB_LANES`] packets: `result` becomes `Ok`
/// for each packet whose ICV matches and the error otherwise (bad shape,
/// ESN without `seq_hi`, integrity). The MAC hashes them side by side when
/// it can ([`Integrity::compute_many_keyed`]), one at a time when not.
fn verify_chunk<I: Integrity>(
    mac: &I,
    esn: bool,
    chunk: &mut [OpenJob<'_>],
    iv_len: usize,
    align: usize,
) {
    let n = chunk.len().min(MB_LANES);
    verify_keyed(&[(mac, esn); MB_LANES][..n], chunk, iv_len, align);
}

/// [`verify_chunk`] with each packet's own SA's MAC and ESN flag:
/// `keys[i]` for `chunk[i]` (at most [`MB_LANES`]).
fn verify_keyed<I: Integrity>(
    keys: &[(&I, bool)],
    chunk: &mut [OpenJob<'_>],
    iv_len: usize,
    align: usize,
) {
    let Some(&(first, _)) = keys.first() else {
        return;
    };
    let mut trailers = [([0u8; 4], 0usize); MB_LANES];
    let mut auth_lens = [0usize; MB_LANES];
    let mut shaped = [false; MB_LANES];
    for (i, (job, (_, esn))) in chunk.iter_mut().zip(keys).enumerate() {
        let checked = open_trailer(*esn, job.seq_hi)
            .and_then(|t| Ok((t, check_layout(job.esp.len(), iv_len, I::ICV_LEN, align)?)));
        match checked {
            Ok((t, auth_len)) => {
                trailers[i] = t;
                auth_lens[i] = auth_len;
                shaped[i] = true;
            }
            Err(e) => job.result = Err(e),
        }
    }
    let mut matched = [false; MB_LANES];
    {
        let mut inputs: [MacInput<'_>; MB_LANES] = std::array::from_fn(|_| MacInput {
            data: &[],
            trailer: &[],
        });
        let mut macs = [first; MB_LANES];
        let mut icvs: [&[u8]; MB_LANES] = [&[]; MB_LANES];
        let mut at = [0usize; MB_LANES];
        let mut n = 0;
        for (i, (job, (mac, _))) in chunk.iter().zip(keys).enumerate() {
            if !shaped[i] {
                continue;
            }
            macs[n] = mac;
            let (authed, icv) = job.esp.split_at(auth_lens[i]);
            let (t, tn) = &trailers[i];
            inputs[n] = MacInput {
                data: authed,
                trailer: &t[..*tn],
            };
            icvs[n] = icv;
            at[n] = i;
            n += 1;
        }
        let mut out = [[0u8; MAX_ICV]; MB_LANES];
        if I::compute_many_keyed(&macs[..n], &inputs[..n], &mut out[..n]) {
            for k in 0..n {
                matched[at[k]] = bool::from(out[k][..I::ICV_LEN].ct_eq(icvs[k]));
            }
        } else {
            for k in 0..n {
                matched[at[k]] = macs[k].verify(inputs[k].data, inputs[k].trailer, icvs[k]);
            }
        }
        // For a forgery these are the ICVs its bytes needed.
        out.as_flattened_mut().zeroize();
    }
    for (i, job) in chunk.iter_mut().enumerate().take(keys.len()) {
        if shaped[i] {
            job.result = if matched[i] {
                Ok(())
            } else {
                Err(CryptoError::IntegrityFailed)
            };
        }
    }
}

/// ENCR_NULL (RFC 2410) with an HMAC: integrity only, no IV, payload in
/// clear; for labs and debugging, and always paired with a MAC.
pub(crate) struct NullSuite<I: Integrity> {
    mac: I,
    esn: bool,
}

impl<I: Integrity> EspSuite for NullSuite<I> {
    fn enc_alg(&self) -> EncAlg {
        EncAlg::Null
    }

    fn auth_alg(&self) -> AuthAlg {
        I::ALG
    }

    fn esn(&self) -> bool {
        self.esn
    }

    fn seal(&self, esp: &mut [u8], seq: u64) -> Result<(), CryptoError> {
        let auth_len = check_layout(esp.len(), 0, I::ICV_LEN, 4)?;
        let (authed, icv) = esp.split_at_mut(auth_len);
        let (t, n) = trailer(self.esn, (seq >> 32) as u32);
        self.mac.compute(authed, &t[..n], icv);
        Ok(())
    }

    fn open(&self, esp: &mut [u8], seq_hi: Option<u32>) -> Result<(), CryptoError> {
        let (t, n) = open_trailer(self.esn, seq_hi)?;
        let auth_len = check_layout(esp.len(), 0, I::ICV_LEN, 4)?;
        let (authed, icv) = esp.split_at_mut(auth_len);
        if self.mac.verify(authed, &t[..n], icv) {
            Ok(())
        } else {
            Err(CryptoError::IntegrityFailed)
        }
    }

    fn seal_batch(&self, jobs: &mut [SealJob<'_>]) {
        for job in jobs.iter_mut() {
            job.result = check_layout(job.esp.len(), 0, I::ICV_LEN, 4).map(|_| ());
        }
        mac_batch(&self.mac, self.esn, jobs);
    }

    fn open_batch(&self, jobs: &mut [OpenJob<'_>]) {
        for chunk in jobs.chunks_mut(MB_LANES) {
            verify_chunk(&self.mac, self.esn, chunk, 0, 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GcmIcv, OpenJob};
    use super::*;
    use proptest::prelude::*;

    const SPI: [u8; 4] = [0x11, 0x22, 0x33, 0x44];

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn key(len: usize, salt: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(7) ^ salt).collect()
    }

    /// Every valid (enc, auth) pair: AEADs with no MAC, everything else with
    /// each HMAC.
    fn combinations() -> Vec<(EncAlg, AuthAlg)> {
        let mut out = Vec::new();
        for enc in EncAlg::ALL {
            if enc.is_aead() {
                out.push((enc, AuthAlg::None));
            } else {
                for auth in AuthAlg::ALL {
                    out.push((enc, auth));
                }
            }
        }
        out
    }

    fn build(enc: EncAlg, auth: AuthAlg, esn: bool) -> Box<dyn EspSuite> {
        new_suite(
            enc,
            &key(enc.key_len(), 0x5a),
            auth,
            &key(auth.key_len(), 0xc3),
            esn,
        )
        .unwrap()
    }

    /// An unsealed packet: SPI, low sequence bits, IV space, `blocks` units
    /// of payload (each `block_align` bytes), ICV space.
    fn packet(s: &dyn EspSuite, seq: u64, blocks: usize, fill: u8) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&SPI);
        p.extend_from_slice(&(seq as u32).to_be_bytes());
        p.resize(p.len() + s.iv_len(), 0);
        p.extend((0..blocks * s.block_align()).map(|i| fill.wrapping_add(i as u8)));
        p.resize(p.len() + s.icv_len(), 0);
        p
    }

    fn payload<'a>(s: &dyn EspSuite, p: &'a [u8]) -> &'a [u8] {
        &p[8 + s.iv_len()..p.len() - s.icv_len()]
    }

    fn name(enc: EncAlg, auth: AuthAlg, esn: bool) -> String {
        format!("{} {} esn={esn}", enc.ios_name(), auth.ios_name())
    }

    #[test]
    fn every_valid_combination_seals_and_opens_with_and_without_esn() {
        for (enc, auth) in combinations() {
            for esn in [false, true] {
                let s = build(enc, auth, esn);
                assert_eq!(s.enc_alg(), enc);
                assert_eq!(s.auth_alg(), auth);
                assert_eq!(s.esn(), esn);
                assert_eq!(s.icv_len(), enc.icv_len() + auth.icv_len());
                for blocks in [1, 2, 3, 7, 8, 9, 33, 90] {
                    let seq = 0x0000_0007_0000_0000 | blocks as u64;
                    let plain = packet(&*s, seq, blocks, blocks as u8);
                    let mut p = plain.clone();
                    s.seal(&mut p, seq).unwrap();
                    assert_eq!(p[..8], plain[..8], "header untouched");
                    if enc != EncAlg::Null {
                        assert_ne!(
                            payload(&*s, &p),
                            payload(&*s, &plain),
                            "{}",
                            name(enc, auth, esn)
                        );
                    }
                    s.open(&mut p, esn.then_some((seq >> 32) as u32)).unwrap();
                    assert_eq!(
                        payload(&*s, &p),
                        payload(&*s, &plain),
                        "{}",
                        name(enc, auth, esn)
                    );
                }
            }
        }
    }

    /// After a failed open the packet must hold no plaintext: unchanged for
    /// suites that verify before decrypting; for GCM with a 16-byte ICV,
    /// opened by ring (decryption and GHASH interleaved), the payload may
    /// instead be all zeros, since ring wipes it on a tag mismatch.
    fn assert_not_decrypted(s: &dyn EspSuite, after: &[u8], before: &[u8], what: &str) {
        let (body, icv) = (after.len() - s.icv_len(), s.icv_len());
        assert_eq!(after[..8 + s.iv_len()], before[..8 + s.iv_len()], "{what}");
        assert_eq!(after[body..], before[body..], "{what}: icv {icv}");
        let got = payload(s, after);
        if s.enc_alg().icv_len() == 16 {
            assert!(
                got == payload(s, before) || got.iter().all(|&b| b == 0),
                "{what}"
            );
        } else {
            assert_eq!(got, payload(s, before), "{what}");
        }
    }

    #[test]
    fn flipping_any_single_bit_fails_integrity_and_leaves_the_payload_undecrypted() {
        for (enc, auth) in combinations() {
            for esn in [false, true] {
                let s = build(enc, auth, esn);
                let seq = 0x0000_0001_0000_0042;
                let plain = packet(&*s, seq, 3, 9);
                let mut sealed = plain.clone();
                s.seal(&mut sealed, seq).unwrap();
                let hi = esn.then_some(1);
                for bit in 0..sealed.len() * 8 {
                    let mut p = sealed.clone();
                    p[bit / 8] ^= 1 << (bit % 8);
                    let flipped = p.clone();
                    assert_eq!(
                        s.open(&mut p, hi),
                        Err(CryptoError::IntegrityFailed),
                        "{} bit {bit}",
                        name(enc, auth, esn)
                    );
                    assert_not_decrypted(
                        &*s,
                        &p,
                        &flipped,
                        &format!("{} bit {bit}", name(enc, auth, esn)),
                    );
                }
            }
        }
    }

    #[test]
    fn a_wrong_or_missing_seq_hi_fails_on_esn_sas_and_is_ignored_otherwise() {
        for (enc, auth) in combinations() {
            let seq = 0x0000_0005_0000_0010;
            let s = build(enc, auth, true);
            let mut sealed = packet(&*s, seq, 2, 1);
            s.seal(&mut sealed, seq).unwrap();
            for wrong in [0, 4, 6, 0x8000_0005] {
                let mut p = sealed.clone();
                assert_eq!(
                    s.open(&mut p, Some(wrong)),
                    Err(CryptoError::IntegrityFailed)
                );
                assert_not_decrypted(&*s, &p, &sealed, &name(enc, auth, true));
            }
            let mut p = sealed.clone();
            assert!(matches!(
                s.open(&mut p, None),
                Err(CryptoError::InvalidSuite(_))
            ));
            assert_eq!(p, sealed);
            assert!(s.open(&mut p, Some(5)).is_ok());

            let s = build(enc, auth, false);
            let mut sealed = packet(&*s, seq, 2, 1);
            s.seal(&mut sealed, seq).unwrap();
            let mut p = sealed.clone();
            assert!(
                s.open(&mut p, Some(12345)).is_ok(),
                "{}",
                name(enc, auth, false)
            );
        }
    }

    #[test]
    fn suites_without_integrity_or_with_two_are_refused() {
        for enc in EncAlg::ALL {
            let k = key(enc.key_len(), 1);
            if enc.is_aead() {
                for auth in AuthAlg::ALL {
                    let r = new_suite(enc, &k, auth, &key(auth.key_len(), 2), false);
                    assert!(matches!(r, Err(CryptoError::InvalidSuite(_))));
                }
            } else {
                let r = new_suite(enc, &k, AuthAlg::None, &[], false);
                assert!(matches!(r, Err(CryptoError::InvalidSuite(_))), "{enc:?}");
            }
        }
    }

    #[test]
    fn keys_of_the_wrong_length_are_refused_with_the_expected_length() {
        for (enc, auth) in combinations() {
            let ak = key(auth.key_len(), 2);
            for len in [enc.key_len() + 1, enc.key_len().saturating_sub(1)] {
                if len == enc.key_len() {
                    continue;
                }
                let r = new_suite(enc, &key(len, 1), auth, &ak, false);
                assert_eq!(
                    r.err(),
                    Some(CryptoError::BadKeyLength {
                        got: len,
                        expected: enc.key_len()
                    }),
                    "{enc:?}"
                );
            }
            if auth != AuthAlg::None {
                let ek = key(enc.key_len(), 1);
                for len in [auth.key_len() + 1, auth.key_len() - 1, 0] {
                    let r = new_suite(enc, &ek, auth, &key(len, 2), false);
                    assert_eq!(
                        r.err(),
                        Some(CryptoError::BadKeyLength {
                            got: len,
                            expected: auth.key_len()
                        })
                    );
                }
            }
        }
    }

    #[test]
    fn short_empty_or_misaligned_packets_are_bad_length_for_seal_and_open() {
        for (enc, auth) in combinations() {
            let s = build(enc, auth, false);
            let min = 8 + s.iv_len() + s.icv_len();
            let mut bad = vec![0, 1, 7, 8, min - 1, min];
            bad.extend((1..s.block_align()).map(|r| min + s.block_align() + r));
            for len in bad {
                let mut p = vec![0u8; len];
                assert_eq!(
                    s.seal(&mut p, 1),
                    Err(CryptoError::BadLength),
                    "{enc:?} {len}"
                );
                assert_eq!(
                    s.open(&mut p, None),
                    Err(CryptoError::BadLength),
                    "{enc:?} {len}"
                );
            }
        }
    }

    #[test]
    fn null_encryption_leaves_the_payload_in_clear_and_authenticates_it() {
        let s = build(EncAlg::Null, AuthAlg::HmacSha256_128, false);
        assert_eq!((s.iv_len(), s.block_align()), (0, 4));
        let plain = packet(&*s, 3, 5, 0x30);
        let mut p = plain.clone();
        s.seal(&mut p, 3).unwrap();
        assert_eq!(p[..p.len() - 16], plain[..plain.len() - 16]);
        let mut icv = [0u8; 16];
        HmacSha256_128::with_key(&key(32, 0xc3)).compute(&plain[..plain.len() - 16], &[], &mut icv);
        assert_eq!(p[p.len() - 16..], icv);
    }

    /// RFC 3602 §4 cases 5-8 are ESP packets (SPI, seq, IV, ciphertext) with
    /// no ICV; sealed here with an extra HMAC, every byte before the ICV must
    /// match the RFC's packet.
    #[test]
    fn aes_cbc_esp_packets_match_rfc3602_cases_5_to_8() {
        let cases = [
            (
                "90d382b410eeba7ad938c46cec1a82bf",
                "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
                1u8,
                "0000432100000001e96e8c08ab465763fd098d45dd3ff893f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874aa269add047ad2d5913ac19b7cfbad4a6",
            ),
            (
                "90d382b410eeba7ad938c46cec1a82bf",
                "0800b5e8a80a0500a69c083d0b660e00777777777777777777777777",
                1,
                "000043210000000869d08df7d203329db093fc4924e5bd80f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75",
            ),
            (
                "0123456789abcdef0123456789abcdef",
                "45000054090400004001f988c0a87b03c0a87bc808009f76a90a0100b49c083d02a2040008090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
                4,
                "0000876500000002f4e765244f6407adf13dc1380f673f37773b5241a4c449225e4f3ce5ed611b0c237ca96cf74a93013c1b0ea1a0cf70f8e4ecaec78ac53aad7a0f022b859243c647752e94a859352b8a4d4d2decd136e5c177f132ad3fbfb2201ac9904c74ee0a109e0ca1e4dfe9d5a100b842f1c22f0d",
            ),
            (
                "0123456789abcdef0123456789abcdef",
                "45000044090c00004001f990c0a87b03c0a87bc80800d63caa0a0200c69c083da3de0300ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
                4,
                "000087650000000585d47224b5f3dd5d2101d4ea8dffab2215b92683819596a8047232cc00f7048fe45318e11f8a0f62ede3c3fc61203bb50f980a08c9843fd3a1b06d5c07ff9639b7eb7dfb3512e5de435e7207ed971ef3d2726d9b5ef6affc6d17a0decbb13892",
            ),
        ];
        for (k, data, next_header, want) in cases {
            let want = h(want);
            let suite = CbcSuite::<Aes128Cbc, HmacSha1_96>::for_test(&h(k), &[9; 20], false);
            // RFC 4303 §2.4 trailer: monotonic padding 1, 2, 3, ... then
            // pad length and next header.
            let mut plain = h(data);
            let pad = (16 - (plain.len() + 2) % 16) % 16;
            plain.extend(1..=pad as u8);
            plain.extend([pad as u8, next_header]);
            let mut esp = want[..8].to_vec();
            esp.extend([0; 16]);
            esp.extend(&plain);
            esp.extend([0; 12]);
            let seq = u64::from(u32::from_be_bytes(want[4..8].try_into().unwrap()));
            suite.seal_with_iv(&mut esp, seq, &want[8..24]).unwrap();
            assert_eq!(hex::encode(&esp[..want.len()]), hex::encode(&want));
            assert_eq!(esp.len(), want.len() + 12);
            suite.open(&mut esp, None).unwrap();
            assert_eq!(esp[24..esp.len() - 12], plain[..]);
        }
    }

    fn batch_equals_one_by_one(
        enc: EncAlg,
        auth: AuthAlg,
        esn: bool,
        shapes: &[(usize, u64, bool)],
    ) {
        let s = build(enc, auth, esn);
        let make = |&(blocks, seq, misalign): &(usize, u64, bool)| {
            let mut p = packet(&*s, seq, blocks, seq as u8);
            if misalign {
                p.push(0);
            }
            p
        };
        // Both ways draw their IVs from the same stream, from its start.
        crate::crypto::ivgen::reset_stream_for_test(3);
        let mut alone: Vec<Vec<u8>> = shapes.iter().map(make).collect();
        let alone_results: Vec<_> = alone
            .iter_mut()
            .zip(shapes)
            .map(|(p, &(_, seq, _))| s.seal(p, seq))
            .collect();
        crate::crypto::ivgen::reset_stream_for_test(3);
        let mut batched: Vec<Vec<u8>> = shapes.iter().map(make).collect();
        let mut jobs: Vec<SealJob<'_>> = batched
            .iter_mut()
            .zip(shapes)
            .map(|(esp, &(_, seq, _))| SealJob {
                esp,
                seq,
                result: Err(CryptoError::BadLength),
            })
            .collect();
        s.seal_batch(&mut jobs);
        let batch_results: Vec<_> = jobs.iter().map(|j| j.result).collect();
        drop(jobs);
        assert_eq!(batch_results, alone_results, "{}", name(enc, auth, esn));
        assert_eq!(batched, alone, "{}", name(enc, auth, esn));

        // And the batch opens, in a batch, to the original payloads.
        let originals: Vec<Vec<u8>> = shapes.iter().map(make).collect();
        let mut jobs: Vec<OpenJob<'_>> = batched
            .iter_mut()
            .zip(shapes)
            .map(|(esp, &(_, seq, _))| OpenJob {
                esp,
                seq_hi: esn.then_some((seq >> 32) as u32),
                result: Err(CryptoError::BadLength),
            })
            .collect();
        s.open_batch(&mut jobs);
        for ((job, orig), want) in jobs.iter().zip(&originals).zip(&batch_results) {
            assert_eq!(job.result.is_ok(), want.is_ok());
            if want.is_ok() {
                assert_eq!(payload(&*s, job.esp), payload(&*s, orig));
            }
        }
    }

    /// What is done to a sealed packet before it is opened.
    #[derive(Debug, Clone, Copy)]
    enum Harm {
        None,
        /// One bit flipped, at this position modulo the length.
        Flip(usize),
        /// Opened with the wrong high sequence half (ESN SAs only care).
        WrongSeqHi,
        /// Cut short by this many bytes.
        Cut(usize),
    }

    fn harm() -> impl Strategy<Value = Harm> {
        prop_oneof![
            3 => Just(Harm::None),
            2 => any::<usize>().prop_map(Harm::Flip),
            1 => Just(Harm::WrongSeqHi),
            1 => (1usize..40).prop_map(Harm::Cut),
        ]
    }

    /// `open_batch` against `open` on each packet: the same verdicts and
    /// the same bytes afterwards, so a packet whose ICV fails is left
    /// undecrypted in the batch exactly as alone.
    fn batch_open_equals_one_by_one(
        enc: EncAlg,
        auth: AuthAlg,
        esn: bool,
        p: &[(usize, u64, Harm)],
    ) {
        let s = build(enc, auth, esn);
        let mut sealed: Vec<(Vec<u8>, Option<u32>)> = p
            .iter()
            .map(|&(blocks, seq, harm)| {
                let mut pkt = packet(&*s, seq, blocks, seq as u8);
                s.seal(&mut pkt, seq).unwrap();
                let mut hi = (seq >> 32) as u32;
                match harm {
                    Harm::None => {}
                    Harm::Flip(at) => {
                        let at = at % pkt.len();
                        pkt[at] ^= 1 << (at % 8);
                    }
                    Harm::WrongSeqHi => hi = hi.wrapping_add(1),
                    Harm::Cut(n) => pkt.truncate(pkt.len().saturating_sub(n)),
                }
                (pkt, esn.then_some(hi))
            })
            .collect();
        let mut alone = sealed.clone();
        let alone_results: Vec<_> = alone.iter_mut().map(|(p, hi)| s.open(p, *hi)).collect();
        let mut jobs: Vec<OpenJob<'_>> = sealed
            .iter_mut()
            .map(|(esp, hi)| OpenJob {
                esp,
                seq_hi: *hi,
                result: Ok(()),
            })
            .collect();
        s.open_batch(&mut jobs);
        let batch_results: Vec<_> = jobs.iter().map(|j| j.result).collect();
        drop(jobs);
        let what = name(enc, auth, esn);
        assert_eq!(batch_results, alone_results, "{what}");
        assert_eq!(sealed, alone, "{what}");
    }

    /// `seal_across` and `open_across` against each SA's suite alone:
    /// every job has its own suite (own keys, ESN or not), as a hub's
    /// batch does, packet `i` of algorithms `algs[i % algs.len()]`; the
    /// same bytes and verdicts. Packets of `(blocks, seq, esn, harm,
    /// misalign)`: no block or a stray byte makes a shape sealing refuses.
    fn across_equals_alone(algs: &[(EncAlg, AuthAlg)], p: &[(usize, u64, bool, Harm, bool)]) {
        // Each SA its own keys: a lane that used another's would differ.
        let suites: Vec<Box<dyn EspSuite>> = p
            .iter()
            .enumerate()
            .map(|(i, &(_, _, esn, _, _))| {
                let (enc, auth) = algs[i % algs.len()];
                let (ke, ka) = (key(enc.key_len(), i as u8), key(auth.key_len(), !(i as u8)));
                new_suite(enc, &ke, auth, &ka, esn).unwrap()
            })
            .collect();
        let refs: Vec<&dyn EspSuite> = suites.iter().map(|s| &**s).collect();
        let what = algs
            .iter()
            .map(|&(enc, auth)| name(enc, auth, false))
            .collect::<Vec<_>>()
            .join(" / ");
        if let Some(s) = suites.first() {
            // The CBC suites take a key per lane; GCM and NULL do not.
            assert_eq!(s.lanes_across(), algs[0].0.block_align() > 4, "{what}");
        }
        let make = |i: usize| {
            let mut pkt = packet(refs[i], p[i].1, p[i].0, i as u8);
            if p[i].4 {
                pkt.push(0);
            }
            pkt
        };
        // Both ways draw their IVs from the same stream, from its start.
        crate::crypto::ivgen::reset_stream_for_test(5);
        let mut alone: Vec<Vec<u8>> = (0..p.len()).map(make).collect();
        let alone_results: Vec<_> = alone
            .iter_mut()
            .enumerate()
            .map(|(i, pkt)| refs[i].seal(pkt, p[i].1))
            .collect();
        crate::crypto::ivgen::reset_stream_for_test(5);
        let mut across: Vec<Vec<u8>> = (0..p.len()).map(make).collect();
        let mut jobs: Vec<SealJob<'_>> = across
            .iter_mut()
            .enumerate()
            .map(|(i, esp)| SealJob {
                esp,
                seq: p[i].1,
                result: Err(CryptoError::BadLength),
            })
            .collect();
        if let Some(first) = refs.first() {
            first.seal_across(&refs, &mut jobs);
        }
        let results: Vec<_> = jobs.iter().map(|j| j.result).collect();
        drop(jobs);
        assert_eq!(results, alone_results, "{what}");
        assert_eq!(across, alone, "{what}");
        // Harmed copies, opened across and alone.
        let mut his = Vec::new();
        for (i, pkt) in across.iter_mut().enumerate() {
            let (_, seq, esn, harm, _) = p[i];
            let mut hi = (seq >> 32) as u32;
            match harm {
                Harm::None => {}
                Harm::Flip(at) => {
                    let at = at % pkt.len();
                    pkt[at] ^= 1 << (at % 8);
                }
                Harm::WrongSeqHi => hi = hi.wrapping_add(1),
                Harm::Cut(n) => pkt.truncate(pkt.len().saturating_sub(n)),
            }
            his.push(esn.then_some(hi));
        }
        let mut alone = across.clone();
        let alone_results: Vec<_> = alone
            .iter_mut()
            .enumerate()
            .map(|(i, pkt)| refs[i].open(pkt, his[i]))
            .collect();
        let mut jobs: Vec<OpenJob<'_>> = across
            .iter_mut()
            .enumerate()
            .map(|(i, esp)| OpenJob {
                esp,
                seq_hi: his[i],
                result: Ok(()),
            })
            .collect();
        if let Some(first) = refs.first() {
            first.open_across(&refs, &mut jobs);
        }
        let results: Vec<_> = jobs.iter().map(|j| j.result).collect();
        drop(jobs);
        assert_eq!(results, alone_results, "{what}");
        assert_eq!(across, alone, "{what}");
    }

    #[test]
    fn jobs_without_a_suite_fail_never_pass_as_done() {
        for (enc, auth) in combinations() {
            let s = build(enc, auth, false);
            let mut a = packet(&*s, 1, 2, 1);
            let mut b = packet(&*s, 2, 2, 2);
            let mut jobs = [
                SealJob {
                    esp: &mut a,
                    seq: 1,
                    result: Ok(()),
                },
                SealJob {
                    esp: &mut b,
                    seq: 2,
                    result: Ok(()),
                },
            ];
            s.seal_across(&[&*s], &mut jobs);
            assert!(jobs[0].result.is_ok(), "{}", name(enc, auth, false));
            assert!(jobs[1].result.is_err(), "{}", name(enc, auth, false));
            let mut opens = [
                OpenJob {
                    esp: &mut a,
                    seq_hi: None,
                    result: Ok(()),
                },
                OpenJob {
                    esp: &mut b,
                    seq_hi: None,
                    result: Ok(()),
                },
            ];
            s.open_across(&[&*s], &mut opens);
            assert!(opens[0].result.is_ok(), "{}", name(enc, auth, false));
            assert!(opens[1].result.is_err(), "{}", name(enc, auth, false));
        }
    }

    fn shapes() -> impl Strategy<Value = Vec<(usize, u64, bool)>> {
        prop::collection::vec((0usize..40, any::<u64>(), prop::bool::weighted(0.1)), 0..20)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn seal_batch_gives_the_same_bytes_as_sealing_one_by_one(shapes in shapes()) {
            for (enc, auth) in combinations() {
                for esn in [false, true] {
                    batch_equals_one_by_one(enc, auth, esn, &shapes);
                }
            }
        }

        #[test]
        fn open_batch_gives_the_same_verdicts_and_bytes_as_opening_one_by_one(
            p in prop::collection::vec((1usize..40, any::<u64>(), harm()), 0..40),
        ) {
            for (enc, auth) in combinations() {
                for esn in [false, true] {
                    batch_open_equals_one_by_one(enc, auth, esn, &p);
                }
            }
        }

        #[test]
        fn seal_and_open_across_sas_give_what_each_sa_gives_alone(
            p in prop::collection::vec(
                (0usize..40, any::<u64>(), any::<bool>(), harm(), prop::bool::weighted(0.1)),
                0..40,
            ),
        ) {
            for (enc, auth) in combinations() {
                across_equals_alone(&[(enc, auth)], &p);
            }
            // Suites of other types among the CBC ones: those are sealed
            // one by one, and every packet still draws its IV in turn.
            across_equals_alone(
                &[
                    (EncAlg::AesCbc128, AuthAlg::HmacSha1_96),
                    (EncAlg::AesCbc256, AuthAlg::HmacSha256_128),
                    (EncAlg::TripleDesCbc, AuthAlg::HmacSha1_96),
                ],
                &p,
            );
        }

        #[test]
        fn open_never_panics_on_arbitrary_bytes_of_arbitrary_length(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            seq_hi in any::<Option<u32>>(),
        ) {
            for (enc, auth) in combinations() {
                for esn in [false, true] {
                    let s = build(enc, auth, esn);
                    let mut p = bytes.clone();
                    let r = s.open(&mut p, seq_hi);
                    prop_assert!(r.is_err());
                    let mut p = bytes.clone();
                    let _ = s.seal(&mut p, 7);
                }
            }
        }
    }

    fn time<F: FnMut()>(label: &str, bytes: usize, mut f: F) -> f64 {
        let iters = 20_000u32;
        for _ in 0..iters / 10 {
            f();
        }
        let t = std::time::Instant::now();
        for _ in 0..iters {
            f();
        }
        let ns = t.elapsed().as_nanos() as f64 / f64::from(iters);
        println!(
            "{label:<44} {ns:9.1} ns  {:6.0} MB/s",
            bytes as f64 * 1e3 / ns
        );
        ns
    }

    /// Run with `cargo test --release -p dataplane --lib cbc_batch_timing -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand in release"]
    fn cbc_batch_timing_for_eight_1400_byte_packets() {
        for enc in [EncAlg::AesCbc128, EncAlg::AesCbc256, EncAlg::TripleDesCbc] {
            for auth in [AuthAlg::HmacSha1_96, AuthAlg::HmacSha256_128] {
                let s = build(enc, auth, false);
                let blocks = 1400 / s.block_align();
                let mut pkts: Vec<Vec<u8>> = (0..8).map(|i| packet(&*s, i, blocks, 1)).collect();
                let bytes = 8 * blocks * s.block_align();
                let label = format!("{} + {}", enc.ios_name(), auth.ios_name());
                let one = time(&format!("{label}: 8x seal"), bytes, || {
                    for (i, p) in pkts.iter_mut().enumerate() {
                        s.seal(p, i as u64).unwrap();
                    }
                });
                let batch = time(&format!("{label}: seal_batch(8)"), bytes, || {
                    let mut jobs: [SealJob<'_>; 8] = {
                        let mut it = pkts.iter_mut();
                        core::array::from_fn(|i| SealJob {
                            esp: it.next().unwrap(),
                            seq: i as u64,
                            result: Ok(()),
                        })
                    };
                    s.seal_batch(&mut jobs);
                });
                println!("    speedup {:.2}x", one / batch);
            }
        }
        // The cipher alone, without HMAC, shows the interleaving gain.
        let c = Aes128Cbc::with_key(&[1; 16]).unwrap();
        let mut bufs = vec![vec![0u8; 1408]; 8];
        let one = time("aes-128-cbc encrypt only: 8x serial", 8 * 1408, || {
            for b in bufs.iter_mut() {
                cbc::encrypt(&c, &[0; 16], b);
            }
        });
        let multi = time(
            "aes-128-cbc encrypt only: encrypt_multi(8)",
            8 * 1408,
            || {
                let mut lanes: Vec<Lane<'_>> = bufs
                    .iter_mut()
                    .map(|b| Lane {
                        data: b,
                        chain: [0; 16],
                    })
                    .collect();
                cbc::encrypt_multi(&c, &mut lanes);
            },
        );
        println!("    speedup {:.2}x", one / multi);
        let dec = time("aes-128-cbc decrypt only: 8x", 8 * 1408, || {
            for b in bufs.iter_mut() {
                cbc::decrypt(&c, &[0; 16], b);
            }
        });
        let _ = dec;
        let _ = GcmIcv::B16;
    }
}
