//! What the IKEv2 engine negotiates with, as `config::compile` will
//! resolve it: `crypto ikev2 proposal`s in IOS order, the keyring's peers
//! (local and remote pre-shared keys may differ, seed 002), the IKE SA
//! lifetime, DPD and the crypto map entries (shared with IKEv1).

use std::net::IpAddr;

use dataplane::spd::IpPrefix;

use crate::config::model::SecretBytes;
use crate::ike::crypto::{DhGroup, Prf};

pub use crate::ikev1::policy::{Dpd, EspTransform, IpsecLifetime, MapEntry};

/// IOS's default IKEv2 SA lifetime (one day).
pub const DEFAULT_IKEV2_LIFETIME: u32 = 86_400;
/// Half-open IKE SAs above which the responder demands cookies.
pub const DEFAULT_COOKIE_THRESHOLD: usize = 16;

/// IKE SA encryption (`encryption` in `crypto ikev2 proposal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeEncr {
    TripleDes,
    /// AES-CBC with a 128, 192 or 256-bit key.
    AesCbc(u16),
    /// AES-GCM with a 16-octet ICV and a 128 or 256-bit key.
    AesGcm16(u16),
}

/// IKE SA integrity (`integrity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeInteg {
    Sha1_96,
    Sha256_128,
    Sha384_192,
    Sha512_256,
}

/// One `crypto ikev2 proposal`: every combination of its lists is
/// acceptable; the lists are in configuration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev2Proposal {
    pub name: String,
    pub encr: Vec<IkeEncr>,
    /// Empty with AEAD ciphers only.
    pub integ: Vec<IkeInteg>,
    /// `prf`; IOS takes the integrity's hash when none is configured.
    pub prf: Vec<Prf>,
    pub groups: Vec<DhGroup>,
}

/// One `peer` of `crypto ikev2 keyring`.
#[derive(Debug, Clone)]
pub struct KeyringPeer {
    pub name: String,
    /// `address A [MASK]`.
    pub address: IpPrefix,
    /// `pre-shared-key local`: what this gateway signs with.
    pub local_key: SecretBytes,
    /// `pre-shared-key remote`: what the peer signs with.
    pub remote_key: SecretBytes,
}

/// Everything the engine negotiates with.
#[derive(Debug, Clone)]
pub struct Ikev2Policy {
    /// Proposals in IOS order (the policy's, then the default).
    pub proposals: Vec<Ikev2Proposal>,
    pub keyring: Vec<KeyringPeer>,
    /// IKE SA lifetime in seconds (`lifetime` of the profile).
    pub lifetime: u32,
    /// `dpd INTERVAL RETRY periodic|on-demand`.
    pub dpd: Option<Dpd>,
    /// Crypto map / ipsec profile entries.
    pub maps: Vec<MapEntry>,
    /// Half-open IKE SAs above which cookies are demanded (RFC 7296 §2.6).
    pub cookie_threshold: usize,
    /// `crypto isakmp nat keepalive SECS`: behind a NAT, a NAT-keepalive
    /// this often keeps the NAT's UDP 4500 mapping. Off unless configured
    /// (IOS).
    pub nat_keepalive: Option<u32>,
}

impl Default for Ikev2Policy {
    fn default() -> Ikev2Policy {
        Ikev2Policy {
            proposals: Vec::new(),
            keyring: Vec::new(),
            lifetime: DEFAULT_IKEV2_LIFETIME,
            dpd: None,
            maps: Vec::new(),
            cookie_threshold: DEFAULT_COOKIE_THRESHOLD,
            nat_keepalive: None,
        }
    }
}

impl Ikev2Policy {
    /// The keyring peer for `addr`: the longest matching prefix.
    pub fn peer_for(&self, addr: IpAddr) -> Option<&KeyringPeer> {
        self.keyring
            .iter()
            .filter(|k| k.address.contains(&addr))
            .max_by_key(|k| k.address.prefix_len())
    }
}
