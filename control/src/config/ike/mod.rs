//! IKE configuration, parsed into the model only: `crypto isakmp ...`,
//! `crypto ikev2 proposal|policy|keyring|profile`, `crypto ipsec profile`,
//! `crypto dynamic-map`, `crypto map ... ipsec-isakmp` and the `tunnel`
//! commands of a virtual tunnel interface.
//!
//! `config::compile` gives them meaning (the IKEv1 and IKEv2 policies the
//! engines negotiate with); what it cannot honour yet is reported as "not
//! supported yet" at its line, so a config never looks as if it
//! negotiated SAs that nothing negotiates.

mod parse;

use std::net::IpAddr;

use dataplane::spd::IpPrefix;

use super::error::{Span, Spanned};
use super::model::SecretBytes;
pub use crate::ikev2::policy::{IkeId, RemoteIdMatch};
pub use crate::ikev2::IkeEncr;

pub use parse::{
    parse_dynamic_map, parse_global_sa_lifetime, parse_ikev2, parse_ikev2_line,
    parse_ipsec_profile, parse_ipsec_profile_line, parse_isakmp, parse_isakmp_entry_line,
    parse_isakmp_map_header, parse_isakmp_policy_line, parse_tunnel_line,
};

/// Everything IKE-related the file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IkeConfig {
    pub isakmp_policies: Vec<IsakmpPolicy>,
    pub isakmp_keys: Vec<IsakmpKey>,
    pub isakmp_keepalive: Option<Spanned<Keepalive>>,
    /// `crypto isakmp nat keepalive SECS`.
    pub isakmp_nat_keepalive: Option<Spanned<u32>>,
    pub isakmp_identity: Option<Spanned<String>>,
    pub ikev2_proposals: Vec<Ikev2Proposal>,
    pub ikev2_policies: Vec<Ikev2Policy>,
    pub ikev2_keyrings: Vec<Ikev2Keyring>,
    pub ikev2_profiles: Vec<Ikev2Profile>,
    /// `crypto ikev2 dpd ...`: for profiles without their own `dpd`.
    pub ikev2_dpd: Option<Spanned<Keepalive>>,
    /// `crypto ikev2 nat keepalive SECS`.
    pub ikev2_nat_keepalive: Option<Spanned<u32>>,
    /// `crypto ikev2 cookie-challenge N`.
    pub ikev2_cookie_challenge: Option<Spanned<u32>>,
    pub ipsec_profiles: Vec<IpsecProfile>,
    pub dynamic_maps: Vec<DynamicMapEntry>,
    /// `crypto ipsec security-association lifetime seconds|kilobytes N`.
    pub sa_lifetime: SaLifetime,
}

impl IkeConfig {
    /// The IKE items this build parses but does not negotiate yet (IPsec
    /// profiles' `set isakmp-profile`), with where they are written, for
    /// "not supported yet".
    pub fn unsupported_items(&self) -> Vec<(Span, String)> {
        let mut v: Vec<(Span, String)> = self
            .ipsec_profiles
            .iter()
            .filter_map(|p| {
                let s = p.isakmp_profile.as_ref()?;
                Some((
                    s.span,
                    format!("crypto ipsec profile {}: set isakmp-profile", p.name),
                ))
            })
            .collect();
        v.sort_by_key(|(s, _)| *s);
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeCipher {
    Des,
    TripleDes,
    /// AES-CBC with the key size in bits.
    AesCbc(u16),
}

/// IKE hash / integrity / PRF algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeHash {
    Md5,
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

/// `crypto isakmp policy N` (IKEv1 phase 1 proposal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsakmpPolicy {
    pub priority: u32,
    pub span: Span,
    pub encryption: Option<IkeCipher>,
    pub hash: Option<IkeHash>,
    /// `authentication pre-share` (the only method Espada will offer).
    pub pre_share: bool,
    pub group: Option<u16>,
    pub lifetime: Option<u32>,
}

/// Whom a pre-shared key is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPeer {
    /// `address A [MASK]` / `address ipv6 P/L`; `0.0.0.0 0.0.0.0` is any.
    Address(IpPrefix),
    Hostname(String),
}

/// `crypto isakmp key KEY address A [M] [no-xauth]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsakmpKey {
    pub span: Span,
    pub key: SecretBytes,
    pub peer: KeyPeer,
    pub no_xauth: bool,
}

/// `crypto isakmp keepalive SECONDS [RETRY] [periodic|on-demand]` (DPD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: u32,
    pub retry: Option<u32>,
    pub periodic: bool,
}

/// `crypto ikev2 proposal NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev2Proposal {
    pub name: String,
    pub span: Span,
    pub encryption: Vec<IkeEncr>,
    pub integrity: Vec<IkeHash>,
    pub prf: Vec<IkeHash>,
    pub groups: Vec<u16>,
}

/// `crypto ikev2 policy NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev2Policy {
    pub name: String,
    pub span: Span,
    pub proposals: Vec<Spanned<String>>,
    /// `match address local A` (several allowed): the local addresses
    /// the policy applies to; none is every address.
    pub match_local: Vec<Spanned<IpAddr>>,
}

/// One `peer NAME` block of a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev2KeyringPeer {
    pub name: String,
    pub span: Span,
    pub address: Option<IpPrefix>,
    pub hostname: Option<String>,
    /// `identity address|fqdn|email|key-id ...`: the IKE identity the
    /// responder finds this peer's keys by.
    pub identity: Option<IkeId>,
    /// `pre-shared-key KEY` (both directions).
    pub psk: Option<SecretBytes>,
    pub psk_local: Option<SecretBytes>,
    pub psk_remote: Option<SecretBytes>,
}

/// `crypto ikev2 keyring NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev2Keyring {
    pub name: String,
    pub span: Span,
    pub peers: Vec<Ikev2KeyringPeer>,
}

/// `crypto ikev2 profile NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ikev2Profile {
    pub name: String,
    pub span: Span,
    /// `match identity remote address A [M]` / `fqdn [domain] NAME` /
    /// `email [domain] X` / `key-id X`.
    pub match_identity_remote: Vec<Spanned<RemoteIdMatch>>,
    pub auth_local: Option<String>,
    pub auth_remote: Vec<String>,
    pub keyring: Option<Spanned<String>>,
    pub lifetime: Option<u32>,
    pub dpd: Option<Keepalive>,
    /// `identity local address|fqdn|email|key-id`; `Some(None)` is
    /// `identity local address` without an address (ours, the default).
    pub identity_local: Option<Spanned<Option<IkeId>>>,
}

/// `crypto ipsec profile NAME` (for `tunnel protection`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpsecProfile {
    pub name: String,
    pub span: Span,
    pub transform_sets: Vec<Spanned<String>>,
    pub ikev2_profile: Option<Spanned<String>>,
    pub isakmp_profile: Option<Spanned<String>>,
    pub pfs: Option<u16>,
    pub lifetime: SaLifetime,
}

/// SA lifetime settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SaLifetime {
    pub seconds: Option<u64>,
    pub kilobytes: Option<u64>,
    /// Where the global form was written, if it was.
    pub span: Option<Span>,
}

/// The IKE part of `crypto map NAME SEQ ipsec-isakmp ...` and of
/// `crypto dynamic-map NAME SEQ`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IsakmpMapEntry {
    /// `ipsec-isakmp dynamic NAME`.
    pub dynamic: Option<Spanned<String>>,
    /// `discover`: tunnel endpoint discovery (seed 004).
    pub discover: bool,
    pub peers: Vec<Spanned<IpAddr>>,
    pub transform_sets: Vec<Spanned<String>>,
    pub match_address: Option<Spanned<String>>,
    pub pfs: Option<u16>,
    pub lifetime: SaLifetime,
    pub isakmp_profile: Option<Spanned<String>>,
    pub ikev2_profile: Option<Spanned<String>>,
    pub reverse_route: bool,
}

/// `crypto dynamic-map NAME SEQ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicMapEntry {
    pub name: String,
    pub seq: u32,
    pub span: Span,
    pub entry: IsakmpMapEntry,
}

/// `tunnel mode ipsec ipv4|ipv6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelMode {
    IpsecIpv4,
    IpsecIpv6,
}

/// The `tunnel ...` commands of a virtual tunnel interface (seeds 000-002).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunnelConfig {
    /// An interface name or an address, as written.
    pub source: Option<Spanned<String>>,
    pub destination: Option<Spanned<IpAddr>>,
    pub mode: Option<Spanned<TunnelMode>>,
    pub protection: Option<Spanned<String>>,
}

impl TunnelConfig {
    pub fn is_configured(&self) -> bool {
        self.source.is_some()
            || self.destination.is_some()
            || self.mode.is_some()
            || self.protection.is_some()
    }

    /// The first tunnel line, for diagnostics.
    pub fn span(&self) -> Option<Span> {
        [
            self.source.as_ref().map(|s| s.span),
            self.destination.as_ref().map(|s| s.span),
            self.mode.as_ref().map(|s| s.span),
            self.protection.as_ref().map(|s| s.span),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The IKE sub-modes (blocks) the parser can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeMode {
    IsakmpPolicy(usize),
    Ikev2Proposal(usize),
    Ikev2Policy(usize),
    Ikev2Keyring(usize),
    Ikev2KeyringPeer(usize, usize),
    Ikev2Profile(usize),
    IpsecProfile(usize),
    DynamicMap(usize),
}

impl IkeMode {
    /// The IOS prompt name of the mode, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            IkeMode::IsakmpPolicy(_) => "ISAKMP policy (config-isakmp)",
            IkeMode::Ikev2Proposal(_) => "IKEv2 proposal (config-ikev2-proposal)",
            IkeMode::Ikev2Policy(_) => "IKEv2 policy (config-ikev2-policy)",
            IkeMode::Ikev2Keyring(_) => "IKEv2 keyring (config-ikev2-keyring)",
            IkeMode::Ikev2KeyringPeer(..) => "IKEv2 keyring peer (config-ikev2-keyring-peer)",
            IkeMode::Ikev2Profile(_) => "IKEv2 profile (config-ikev2-profile)",
            IkeMode::IpsecProfile(_) => "IPsec profile (ipsec-profile)",
            IkeMode::DynamicMap(_) => "dynamic crypto map (config-crypto-map)",
        }
    }

    /// Whether the mode owns a command starting with these (lower-case)
    /// words.
    pub fn owns(self, w: &[String]) -> bool {
        let first = w.first().map(String::as_str).unwrap_or("");
        let cmds: &[&str] = match self {
            IkeMode::IsakmpPolicy(_) => &[
                "encryption",
                "encr",
                "hash",
                "authentication",
                "group",
                "lifetime",
            ],
            IkeMode::Ikev2Proposal(_) => &["encryption", "integrity", "group", "prf"],
            IkeMode::Ikev2Policy(_) => &["proposal", "match"],
            IkeMode::Ikev2Keyring(_) => &["peer"],
            IkeMode::Ikev2KeyringPeer(..) => &[
                "address",
                "hostname",
                "identity",
                "pre-shared-key",
                "description",
            ],
            IkeMode::Ikev2Profile(_) => &[
                "match",
                "authentication",
                "keyring",
                "lifetime",
                "dpd",
                "identity",
                "description",
            ],
            IkeMode::IpsecProfile(_) | IkeMode::DynamicMap(_) => {
                &["set", "match", "reverse-route", "description"]
            }
        };
        cmds.contains(&first)
    }
}
