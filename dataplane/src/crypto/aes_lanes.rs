//! AES-CBC encryption of several packets at once, each under its own key:
//! the multi-buffer CBC of packets of *different* SAs.
//!
//! CBC encryption is serial inside a packet, so one packet alone runs at
//! the AES unit's latency, not its throughput (about a quarter of it
//! here). The `aes` crate pipelines eight blocks of *one* key, which is
//! how a batch of one SA's packets is encrypted ([`super::cbc`]); a hub's
//! traffic spread over many SAs gives each SA one packet per batch, and
//! encrypting those one by one cost 3x the per-packet time of one SA
//! (`espada-bench scale --suite aes128-sha1`). Here block `i` of up to
//! eight packets goes through the rounds together, each with its own
//! round keys, so the AES unit's pipeline stays full across SAs.
//!
//! The round keys are expanded here (FIPS-197 §5.2) because the `aes`
//! crate keeps its own private; they are secret and wiped on drop.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use zeroize::Zeroize;

use super::cbc::{Lane, LANES};

/// Most rounds (AES-256); sizes the schedule.
const MAX_ROUNDS: usize = 14;

/// An AES encryption key schedule: `rounds + 1` round keys.
#[derive(Clone)]
pub(crate) struct EncKeys {
    rk: [[u8; 16]; MAX_ROUNDS + 1],
    rounds: usize,
}

impl Drop for EncKeys {
    fn drop(&mut self) {
        self.rk.as_flattened_mut().zeroize();
    }
}

#[rustfmt::skip]
const SBOX: [u8; 256] = [
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
];

impl EncKeys {
    /// The schedule of a 16-, 24- or 32-byte key; `None` for another length.
    pub(crate) fn new(key: &[u8]) -> Option<EncKeys> {
        let nk = match key.len() {
            16 => 4,
            24 => 6,
            32 => 8,
            _ => return None,
        };
        let rounds = nk + 6;
        let total = 4 * (rounds + 1);
        let mut w = [[0u8; 4]; 4 * (MAX_ROUNDS + 1)];
        for (i, word) in key.chunks_exact(4).enumerate() {
            w[i].copy_from_slice(word);
        }
        let mut rcon = 1u8;
        for i in nk..total {
            let mut t = w[i - 1];
            if i % nk == 0 {
                t = [
                    SBOX[usize::from(t[1])] ^ rcon,
                    SBOX[usize::from(t[2])],
                    SBOX[usize::from(t[3])],
                    SBOX[usize::from(t[0])],
                ];
                rcon = (rcon << 1) ^ if rcon & 0x80 != 0 { 0x1b } else { 0 };
            } else if nk > 6 && i % nk == 4 {
                t = t.map(|b| SBOX[usize::from(b)]);
            }
            for b in 0..4 {
                w[i][b] = w[i - nk][b] ^ t[b];
            }
            t.zeroize();
        }
        // Filled in place, not built on the stack and moved in: no
        // unwiped copy of the schedule left behind here.
        let mut keys = EncKeys {
            rk: [[0u8; 16]; MAX_ROUNDS + 1],
            rounds,
        };
        for (r, k) in keys.rk.iter_mut().enumerate().take(rounds + 1) {
            for j in 0..4 {
                k[4 * j..4 * j + 4].copy_from_slice(&w[4 * r + j]);
            }
        }
        w.as_flattened_mut().zeroize();
        Some(keys)
    }

    /// Whether [`encrypt_lanes`] runs here (AES-NI).
    pub(crate) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("sse2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}

/// CBC-encrypts `lanes[i]` under `keys[i]` (at most [`LANES`] of each,
/// whole blocks; every schedule of the same key length), each lane's
/// chaining value left holding its last ciphertext block, as
/// [`super::cbc::encrypt_multi`] does for one key. Returns `false`, having
/// done nothing, where there is no AES-NI or the schedules' lengths differ.
pub(crate) fn encrypt_lanes(keys: &[&EncKeys], lanes: &mut [Lane<'_>]) -> bool {
    if keys.len() != lanes.len()
        || lanes.len() > LANES
        || keys.iter().any(|k| k.rounds != keys[0].rounds)
        || !EncKeys::available()
    {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AES-NI and SSE2 were detected just above.
        unsafe { encrypt_lanes_aesni(keys, lanes) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
unsafe fn encrypt_lanes_aesni(keys: &[&EncKeys], lanes: &mut [Lane<'_>]) {
    let n = lanes.len();
    let rounds = keys.first().map_or(0, |k| k.rounds);
    let longest = lanes.iter().map(|l| l.data.len() / 16).max().unwrap_or(0);
    let mut chain = [_mm_setzero_si128(); LANES];
    for (c, lane) in chain.iter_mut().zip(lanes.iter()) {
        // SAFETY: `chain` is MAX_BLOCK (16) bytes; unaligned load.
        *c = unsafe { _mm_loadu_si128(lane.chain.as_ptr().cast()) };
    }
    for block in 0..longest {
        let off = block * 16;
        let mut x = [_mm_setzero_si128(); LANES];
        let mut live = [false; LANES];
        for l in 0..n {
            if off + 16 <= lanes[l].data.len() {
                live[l] = true;
                // SAFETY: `off + 16` is within the lane's data (checked).
                let p = unsafe { _mm_loadu_si128(lanes[l].data.as_ptr().add(off).cast()) };
                x[l] = _mm_xor_si128(_mm_xor_si128(p, chain[l]), rk(keys[l], 0));
            }
        }
        // Round by round across the lanes: eight independent aesencs in a
        // row keep the unit's pipeline full. Dead lanes run on zeros.
        for r in 1..rounds {
            for l in 0..n {
                x[l] = _mm_aesenc_si128(x[l], rk(keys[l], r));
            }
        }
        for l in 0..n {
            x[l] = _mm_aesenclast_si128(x[l], rk(keys[l], rounds));
            if live[l] {
                chain[l] = x[l];
                // SAFETY: as for the load above.
                unsafe { _mm_storeu_si128(lanes[l].data.as_mut_ptr().add(off).cast(), x[l]) };
            }
        }
    }
    for (c, lane) in chain.iter().zip(lanes.iter_mut()) {
        // SAFETY: `chain` is 16 bytes.
        unsafe { _mm_storeu_si128(lane.chain.as_mut_ptr().cast(), *c) };
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn rk(keys: &EncKeys, r: usize) -> __m128i {
    // SAFETY: a round key is 16 bytes; unaligned load, SSE2 is baseline on
    // x86_64.
    unsafe { _mm_loadu_si128(keys.rk[r].as_ptr().cast()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cbc::{self, Aes128Cbc, Aes192Cbc, Aes256Cbc, CbcCipher};
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn the_schedules_match_fips197_appendix_a() {
        // A.1: the last round key of 2b7e1516...; A.2 and A.3 likewise.
        let k = EncKeys::new(&h("2b7e151628aed2a6abf7158809cf4f3c")).unwrap();
        assert_eq!(k.rounds, 10);
        assert_eq!(k.rk[10].to_vec(), h("d014f9a8c9ee2589e13f0cc8b6630ca6"));
        let k = EncKeys::new(&h("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b")).unwrap();
        assert_eq!(k.rounds, 12);
        assert_eq!(k.rk[12].to_vec(), h("e98ba06f448c773c8ecc720401002202"));
        let k = EncKeys::new(&h(
            "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
        ))
        .unwrap();
        assert_eq!(k.rounds, 14);
        assert_eq!(k.rk[14].to_vec(), h("fe4890d1e6188d0b046df344706c631e"));
        assert!(EncKeys::new(&[0; 20]).is_none());
    }

    #[test]
    fn one_lane_matches_rfc3602_case_2() {
        // RFC 3602 §4 case #2: two blocks.
        let k = EncKeys::new(&h("c286696d887c9aa0611bbb3e2025a45a")).unwrap();
        let mut data = h("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        let mut chain = [0u8; 16];
        chain.copy_from_slice(&h("562e17996d093d28ddb3ba695a2e6f58"));
        let mut lanes = [Lane {
            data: &mut data,
            chain,
        }];
        assert!(encrypt_lanes(&[&k], &mut lanes));
        assert_eq!(
            data,
            h("d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1")
        );
    }

    fn same_as_one_key_each<C: CbcCipher>(
        key_len: usize,
        packets: Vec<(Vec<u8>, [u8; 16], usize)>,
    ) {
        let keys: Vec<Vec<u8>> = packets
            .iter()
            .enumerate()
            .map(|(i, _)| (0..key_len).map(|j| (i * 31 + j * 7) as u8).collect())
            .collect();
        let schedules: Vec<EncKeys> = keys.iter().map(|k| EncKeys::new(k).unwrap()).collect();
        let mut ours: Vec<Vec<u8>> = packets
            .iter()
            .map(|(d, _, blocks)| d[..blocks * 16].to_vec())
            .collect();
        let mut lanes: Vec<Lane<'_>> = ours
            .iter_mut()
            .zip(&packets)
            .map(|(d, (_, iv, _))| Lane {
                data: d,
                chain: *iv,
            })
            .collect();
        let refs: Vec<&EncKeys> = schedules.iter().collect();
        assert!(encrypt_lanes(&refs, &mut lanes));
        let chains: Vec<[u8; 16]> = lanes.iter().map(|l| l.chain).collect();
        for (i, (d, iv, blocks)) in packets.iter().enumerate() {
            let mut want = d[..blocks * 16].to_vec();
            cbc::encrypt(&C::with_key(&keys[i]).unwrap(), iv, &mut want);
            assert_eq!(ours[i], want, "lane {i}");
            if *blocks > 0 {
                assert_eq!(
                    chains[i].to_vec(),
                    want[want.len() - 16..],
                    "lane {i} chain"
                );
            } else {
                assert_eq!(chains[i], *iv);
            }
        }
    }

    fn packets() -> impl Strategy<Value = Vec<(Vec<u8>, [u8; 16], usize)>> {
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 96),
                any::<[u8; 16]>(),
                0usize..=6,
            ),
            1..=LANES,
        )
    }

    proptest! {
        /// Packets of different lengths under different keys: each lane
        /// as the `aes` crate's CBC encrypts it alone.
        #[test]
        fn lanes_match_the_aes_crate_one_packet_at_a_time(p in packets()) {
            same_as_one_key_each::<Aes128Cbc>(16, p.clone());
            same_as_one_key_each::<Aes192Cbc>(24, p.clone());
            same_as_one_key_each::<Aes256Cbc>(32, p);
        }
    }

    #[test]
    fn mixed_key_lengths_are_refused_untouched() {
        let a = EncKeys::new(&[1; 16]).unwrap();
        let b = EncKeys::new(&[1; 32]).unwrap();
        let mut d1 = vec![0u8; 16];
        let mut d2 = vec![0u8; 16];
        let mut lanes = [
            Lane {
                data: &mut d1,
                chain: [0; 16],
            },
            Lane {
                data: &mut d2,
                chain: [0; 16],
            },
        ];
        assert!(!encrypt_lanes(&[&a, &b], &mut lanes));
        assert_eq!((d1, d2), (vec![0u8; 16], vec![0u8; 16]));
    }
}
