//! What the IKEv2 engine negotiates with, as `config::compile` resolves
//! it: `crypto ikev2 proposal`s in IOS order with the local addresses
//! their policy matches, the `crypto ikev2 profile`s (whom each is for,
//! our identity, the keyring's peers — local and remote pre-shared keys
//! may differ, seed 002 — the IKE SA lifetime and DPD) and the crypto
//! map entries (shared with IKEv1) with the profile of each.

use std::net::IpAddr;

use dataplane::spd::IpPrefix;

use crate::config::model::SecretBytes;
use crate::ike::crypto::{DhGroup, Prf};
use crate::ike::wire::ident::Identity;

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
    /// `match address local` of the `crypto ikev2 policy` that names it:
    /// the local addresses it is used on; empty is every address.
    pub local: Vec<IpAddr>,
}

/// Who a keyring peer is by its IKE identity (`identity address|fqdn|
/// email|key-id` in a keyring peer), or what a profile's `identity local`
/// sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeId {
    Address(IpAddr),
    /// Compared case-insensitively (DNS names are).
    Fqdn(String),
    /// `user@domain` (ID_RFC822_ADDR).
    Email(String),
    KeyId(Vec<u8>),
}

impl IkeId {
    /// Whether the peer's ID payload names this identity.
    pub fn matches(&self, id: &Identity) -> bool {
        match (self, id) {
            (IkeId::Address(a), Identity::Ipv4(b)) => *a == IpAddr::V4(*b),
            (IkeId::Address(a), Identity::Ipv6(b)) => *a == IpAddr::V6(*b),
            (IkeId::Fqdn(a), Identity::Fqdn(b)) => a.as_bytes().eq_ignore_ascii_case(b),
            (IkeId::Email(a), Identity::UserFqdn(b)) => a.as_bytes().eq_ignore_ascii_case(b),
            (IkeId::KeyId(a), Identity::KeyId(b)) => a == b,
            _ => false,
        }
    }

    /// The ID payload data for this identity.
    pub fn identity(&self) -> Identity {
        match self {
            IkeId::Address(a) => address_identity(*a),
            IkeId::Fqdn(n) => Identity::Fqdn(n.as_bytes().to_vec()),
            IkeId::Email(n) => Identity::UserFqdn(n.as_bytes().to_vec()),
            IkeId::KeyId(k) => Identity::KeyId(k.clone()),
        }
    }
}

/// ID_IPV4_ADDR / ID_IPV6_ADDR of an address.
pub fn address_identity(a: IpAddr) -> Identity {
    match a {
        IpAddr::V4(x) => Identity::Ipv4(x),
        IpAddr::V6(x) => Identity::Ipv6(x),
    }
}

/// An identity as `show crypto ikev2 sa detailed` prints it.
pub fn show_identity(id: &Identity) -> String {
    match id {
        Identity::Ipv4(a) => a.to_string(),
        Identity::Ipv6(a) => a.to_string(),
        // Peer-chosen bytes: printable ASCII as is, the rest escaped, so
        // an identity cannot write control sequences to a terminal or log.
        Identity::Fqdn(n) | Identity::UserFqdn(n) => n.escape_ascii().to_string(),
        Identity::KeyId(k) => k.iter().map(|b| format!("{b:02x}")).collect(),
        other => format!("{other:?}"),
    }
}

/// One `match identity remote ...` of a profile: which peers (by the
/// identity they send in IDi/IDr) the profile is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteIdMatch {
    /// `address A [MASK]` / `address ipv6 P/L`: an address identity in
    /// the prefix. `address 0.0.0.0` is any address identity, of either
    /// family (seed 002).
    Address(IpPrefix),
    /// `fqdn NAME`: exactly this name, case-insensitively.
    Fqdn(String),
    /// `fqdn domain D`: names ending in `D` (as a whole label).
    FqdnDomain(String),
    /// `email X`: exactly this address.
    Email(String),
    /// `email domain D`: addresses at `D`.
    EmailDomain(String),
    /// `key-id X`.
    KeyId(Vec<u8>),
}

/// Whether `name` is `domain` or ends in `.domain` (case-insensitively).
fn in_domain(name: &[u8], domain: &str, sep: u8) -> bool {
    let d = domain.trim_start_matches(['.', '@']).as_bytes();
    if name.eq_ignore_ascii_case(d) && sep == b'.' {
        return true;
    }
    name.len() > d.len()
        && name[name.len() - d.len()..].eq_ignore_ascii_case(d)
        && (name[name.len() - d.len() - 1] == sep || name[name.len() - d.len() - 1] == b'.')
}

impl RemoteIdMatch {
    pub fn matches(&self, id: &Identity) -> bool {
        let addr = match id {
            Identity::Ipv4(a) => Some(IpAddr::V4(*a)),
            Identity::Ipv6(a) => Some(IpAddr::V6(*a)),
            _ => None,
        };
        match (self, id) {
            (RemoteIdMatch::Address(p), _) => addr.is_some_and(|a| {
                p.prefix_len() == 0 || p.addr().is_unspecified() || p.contains(&a)
            }),
            (RemoteIdMatch::Fqdn(n), Identity::Fqdn(b)) => n.as_bytes().eq_ignore_ascii_case(b),
            (RemoteIdMatch::FqdnDomain(d), Identity::Fqdn(b)) => in_domain(b, d, b'.'),
            (RemoteIdMatch::Email(n), Identity::UserFqdn(b)) => {
                n.as_bytes().eq_ignore_ascii_case(b)
            }
            (RemoteIdMatch::EmailDomain(d), Identity::UserFqdn(b)) => in_domain(b, d, b'@'),
            (RemoteIdMatch::KeyId(k), Identity::KeyId(b)) => k == b,
            _ => false,
        }
    }
}

/// One `peer` of `crypto ikev2 keyring`.
#[derive(Debug, Clone)]
pub struct KeyringPeer {
    pub name: String,
    /// `address A [MASK]`: found by the peer's address.
    pub address: Option<IpPrefix>,
    /// `identity ...`: found by the identity the peer sends (responder).
    pub identity: Option<IkeId>,
    /// `pre-shared-key local`: what this gateway signs with.
    pub local_key: SecretBytes,
    /// `pre-shared-key remote`: what the peer signs with.
    pub remote_key: SecretBytes,
}

/// One `crypto ikev2 profile` as the engine applies it: whom it is for,
/// who we say we are, the keys, the IKE SA lifetime and DPD.
#[derive(Debug, Clone)]
pub struct Ikev2ProfileSettings {
    pub name: String,
    pub match_remote: Vec<RemoteIdMatch>,
    /// `identity local ...`; `None` is our address (`identity local
    /// address`, the default).
    pub local_id: Option<IkeId>,
    pub keyring: Vec<KeyringPeer>,
    /// IKE SA lifetime in seconds (`lifetime`).
    pub lifetime: u32,
    /// `dpd INTERVAL RETRY periodic|on-demand` (or `crypto ikev2 dpd`).
    pub dpd: Option<Dpd>,
}

impl Default for Ikev2ProfileSettings {
    fn default() -> Ikev2ProfileSettings {
        Ikev2ProfileSettings {
            name: String::new(),
            match_remote: Vec::new(),
            local_id: None,
            keyring: Vec::new(),
            lifetime: DEFAULT_IKEV2_LIFETIME,
            dpd: None,
        }
    }
}

impl Ikev2ProfileSettings {
    /// The keyring peer for `addr` (initiator, IOS "Getting preshared key
    /// by address"): the longest matching prefix.
    pub fn peer_by_address(&self, addr: IpAddr) -> Option<&KeyringPeer> {
        self.keyring
            .iter()
            .filter_map(|k| Some((k, k.address?)))
            .filter(|(_, a)| a.contains(&addr))
            .max_by_key(|(_, a)| a.prefix_len())
            .map(|(k, _)| k)
    }

    /// The keyring peer for a peer that sent `id` from `addr`: the one
    /// whose `identity` is `id`, else by address (IOS's responder order).
    pub fn peer_for(&self, id: Option<&Identity>, addr: IpAddr) -> Option<&KeyringPeer> {
        id.and_then(|id| {
            self.keyring
                .iter()
                .find(|k| k.identity.as_ref().is_some_and(|x| x.matches(id)))
        })
        .or_else(|| self.peer_by_address(addr))
    }

    /// Whether the peer's identity is one this profile is for.
    pub fn matches_remote(&self, id: &Identity) -> bool {
        self.match_remote.iter().any(|m| m.matches(id))
    }

    /// The identity we send with this profile from `local`.
    pub fn local_identity(&self, local: IpAddr) -> Identity {
        self.local_id
            .as_ref()
            .map_or_else(|| address_identity(local), IkeId::identity)
    }
}

/// Everything the engine negotiates with.
#[derive(Debug, Clone)]
pub struct Ikev2Policy {
    /// Proposals in IOS order, each with the local addresses its
    /// `crypto ikev2 policy` matches (see [`Ikev2Policy::proposals_for`]).
    pub proposals: Vec<Ikev2Proposal>,
    /// The `crypto ikev2 profile`s the entries name.
    pub profiles: Vec<Ikev2ProfileSettings>,
    /// Crypto map / ipsec profile entries.
    pub maps: Vec<MapEntry>,
    /// The index in `profiles` of each entry of `maps` (parallel; the
    /// mapping lives here because [`MapEntry`] is IKEv1's too). An entry
    /// past its end uses profile 0.
    pub entry_profiles: Vec<usize>,
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
            profiles: Vec::new(),
            maps: Vec::new(),
            entry_profiles: Vec::new(),
            cookie_threshold: DEFAULT_COOKIE_THRESHOLD,
            nat_keepalive: None,
        }
    }
}

impl Ikev2Policy {
    /// The index of the profile of map entry `entry`.
    pub fn entry_profile(&self, entry: usize) -> usize {
        self.entry_profiles.get(entry).copied().unwrap_or(0)
    }

    /// The profile at `i`, if there is one.
    pub fn profile(&self, i: usize) -> Option<&Ikev2ProfileSettings> {
        self.profiles.get(i)
    }

    /// The proposals offered and accepted on local address `local`: those
    /// of policies with `match address local` naming it first, then those
    /// of policies matching any local address, in file order (IOS).
    pub fn proposals_for(&self, local: IpAddr) -> Vec<Ikev2Proposal> {
        let explicit = self.proposals.iter().filter(|p| p.local.contains(&local));
        let any = self.proposals.iter().filter(|p| p.local.is_empty());
        let mut out: Vec<Ikev2Proposal> = Vec::new();
        for p in explicit.chain(any) {
            if !out.iter().any(|x| x.name == p.name) {
                out.push(p.clone());
            }
        }
        out
    }

    /// The profiles of entries on local address `local`, in order, once
    /// each: the candidates for a responder's IKE SA there.
    pub fn profiles_on(&self, local: IpAddr) -> Vec<usize> {
        let mut out: Vec<usize> = Vec::new();
        for (i, e) in self.maps.iter().enumerate() {
            let p = self.entry_profile(i);
            if e.local == local && p < self.profiles.len() && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// The DPD setting of an IKE SA with this profile (none without one).
    pub fn dpd_of(&self, profile: Option<usize>) -> Option<Dpd> {
        profile.and_then(|p| self.profile(p)).and_then(|p| p.dpd)
    }

    /// The IKE SA lifetime with this profile (IOS's default without one).
    pub fn lifetime_of(&self, profile: Option<usize>) -> u32 {
        profile
            .and_then(|p| self.profile(p))
            .map_or(DEFAULT_IKEV2_LIFETIME, |p| p.lifetime)
    }

    /// Whether profile `profile` has a key for static peer `addr` (by
    /// address, as the initiator looks keys up).
    pub fn has_key_for(&self, profile: usize, addr: IpAddr) -> bool {
        self.profile(profile)
            .is_some_and(|p| p.peer_by_address(addr).is_some())
    }
}
