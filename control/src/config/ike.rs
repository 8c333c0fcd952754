//! IKE configuration, parsed into the model only: `crypto isakmp ...`,
//! `crypto ikev2 proposal|policy|keyring|profile`, `crypto ipsec profile`,
//! `crypto dynamic-map`, `crypto map ... ipsec-isakmp` and the `tunnel`
//! commands of a virtual tunnel interface.
//!
//! The IKEv1 and IKEv2 issues give these meaning; until then `compile`
//! reports each use as "not supported yet" at its line, so a config never
//! looks as if it negotiated SAs that nothing negotiates. Parsing them now
//! means the seeds' configs are checked for typos today, and the IKE work
//! starts from a typed model.

use std::net::IpAddr;

use dataplane::spd::IpPrefix;

use super::cursor::{Cmd, PResult};
use super::error::{ErrorKind, Span, Spanned};
use super::model::SecretBytes;

/// Everything IKE-related the file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IkeConfig {
    pub isakmp_policies: Vec<IsakmpPolicy>,
    pub isakmp_keys: Vec<IsakmpKey>,
    pub isakmp_keepalive: Option<Spanned<Keepalive>>,
    pub isakmp_identity: Option<Spanned<String>>,
    pub ikev2_proposals: Vec<Ikev2Proposal>,
    pub ikev2_policies: Vec<Ikev2Policy>,
    pub ikev2_keyrings: Vec<Ikev2Keyring>,
    pub ikev2_profiles: Vec<Ikev2Profile>,
    pub ipsec_profiles: Vec<IpsecProfile>,
    pub dynamic_maps: Vec<DynamicMapEntry>,
    /// `crypto ipsec security-association lifetime seconds|kilobytes N`.
    pub sa_lifetime: SaLifetime,
}

impl IkeConfig {
    /// Every IKE item with where it is written, for "not supported yet".
    pub fn items(&self) -> Vec<(Span, String)> {
        let mut v = Vec::new();
        v.extend(
            self.isakmp_policies
                .iter()
                .map(|p| (p.span, format!("crypto isakmp policy {}", p.priority))),
        );
        v.extend(
            self.isakmp_keys
                .iter()
                .map(|k| (k.span, "crypto isakmp key".to_string())),
        );
        v.extend(
            self.isakmp_keepalive
                .iter()
                .map(|k| (k.span, "crypto isakmp keepalive".to_string())),
        );
        v.extend(
            self.isakmp_identity
                .iter()
                .map(|k| (k.span, "crypto isakmp identity".to_string())),
        );
        v.extend(
            self.ikev2_proposals
                .iter()
                .map(|p| (p.span, format!("crypto ikev2 proposal {}", p.name))),
        );
        v.extend(
            self.ikev2_policies
                .iter()
                .map(|p| (p.span, format!("crypto ikev2 policy {}", p.name))),
        );
        v.extend(
            self.ikev2_keyrings
                .iter()
                .map(|p| (p.span, format!("crypto ikev2 keyring {}", p.name))),
        );
        v.extend(
            self.ikev2_profiles
                .iter()
                .map(|p| (p.span, format!("crypto ikev2 profile {}", p.name))),
        );
        v.extend(
            self.ipsec_profiles
                .iter()
                .map(|p| (p.span, format!("crypto ipsec profile {}", p.name))),
        );
        v.extend(
            self.dynamic_maps
                .iter()
                .map(|d| (d.span, format!("crypto dynamic-map {} {}", d.name, d.seq))),
        );
        v.extend(
            self.sa_lifetime
                .span
                .iter()
                .map(|s| (*s, "crypto ipsec security-association lifetime".to_string())),
        );
        v.sort_by_key(|(s, _)| *s);
        v
    }
}

/// IKEv1/IKEv2 encryption algorithm.
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
    pub encryption: Vec<IkeCipher>,
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
}

/// One `peer NAME` block of a keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev2KeyringPeer {
    pub name: String,
    pub span: Span,
    pub address: Option<IpPrefix>,
    pub hostname: Option<String>,
    pub identity: Option<String>,
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
    /// `match identity remote address A [M]` / `fqdn NAME` / `email ...`.
    pub match_identity_remote: Vec<String>,
    pub auth_local: Option<String>,
    pub auth_remote: Vec<String>,
    pub keyring: Option<Spanned<String>>,
    pub lifetime: Option<u32>,
    pub dpd: Option<Keepalive>,
    pub identity_local: Option<String>,
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

/// The rest of `crypto map NAME SEQ ipsec-isakmp [dynamic D [discover]]`.
pub fn parse_isakmp_map_header(cmd: &mut Cmd<'_, '_>) -> PResult<IsakmpMapEntry> {
    let mut e = IsakmpMapEntry::default();
    if cmd.eat("dynamic") {
        e.dynamic = Some(cmd.name("dynamic map name")?);
        e.discover = cmd.eat("discover");
    }
    Ok(e)
}

fn cipher(cmd: &mut Cmd<'_, '_>, ikev2: bool) -> PResult<IkeCipher> {
    let opts: &[&'static str] = if ikev2 {
        &["des", "3des", "aes-cbc-128", "aes-cbc-192", "aes-cbc-256"]
    } else {
        &["des", "3des", "aes"]
    };
    Ok(match cmd.keyword(opts)? {
        "des" => IkeCipher::Des,
        "3des" => IkeCipher::TripleDes,
        "aes-cbc-128" => IkeCipher::AesCbc(128),
        "aes-cbc-192" => IkeCipher::AesCbc(192),
        "aes-cbc-256" => IkeCipher::AesCbc(256),
        _ => match cmd.peek().map(|t| t.text) {
            Some("192") => {
                cmd.pos += 1;
                IkeCipher::AesCbc(192)
            }
            Some("256") => {
                cmd.pos += 1;
                IkeCipher::AesCbc(256)
            }
            Some("128") => {
                cmd.pos += 1;
                IkeCipher::AesCbc(128)
            }
            _ => IkeCipher::AesCbc(128),
        },
    })
}

fn hash(cmd: &mut Cmd<'_, '_>, ikev2: bool) -> PResult<IkeHash> {
    let opts: &[&'static str] = if ikev2 {
        &["md5", "sha1", "sha256", "sha384", "sha512"]
    } else {
        &["md5", "sha", "sha256", "sha384", "sha512"]
    };
    Ok(match cmd.keyword(opts)? {
        "md5" => IkeHash::Md5,
        "sha" | "sha1" => IkeHash::Sha1,
        "sha256" => IkeHash::Sha256,
        "sha384" => IkeHash::Sha384,
        _ => IkeHash::Sha512,
    })
}

const DH_GROUPS: &[u64] = &[1, 2, 5, 14, 15, 16, 19, 20, 21, 24];

fn dh_group(cmd: &mut Cmd<'_, '_>) -> PResult<u16> {
    let g = cmd.number("Diffie-Hellman group", 1..=32)?;
    if !DH_GROUPS.contains(&g.value) {
        return Err(cmd.err_span(
            g.span,
            &g.value.to_string(),
            ErrorKind::InvalidValue,
            "unknown Diffie-Hellman group; expected one of 1, 2, 5, 14, 15, 16, 19, 20, 21, 24",
        ));
    }
    Ok(g.value as u16)
}

/// `crypto isakmp ...`; `crypto isakmp` consumed. Returns a mode to open.
pub fn parse_isakmp(cmd: &mut Cmd<'_, '_>, ike: &mut IkeConfig) -> PResult<Option<IkeMode>> {
    let span = cmd.line_span();
    match cmd.keyword(&[
        "policy",
        "key",
        "keepalive",
        "identity",
        "enable",
        "nat",
        "profile",
    ])? {
        "policy" => {
            let p = cmd.u32_in("policy priority", 1..=65535)?;
            cmd.end()?;
            if let Some(i) = ike
                .isakmp_policies
                .iter()
                .position(|x| x.priority == p.value)
            {
                return Ok(Some(IkeMode::IsakmpPolicy(i)));
            }
            ike.isakmp_policies.push(IsakmpPolicy {
                priority: p.value,
                span,
                encryption: None,
                hash: None,
                pre_share: false,
                group: None,
                lifetime: None,
            });
            Ok(Some(IkeMode::IsakmpPolicy(ike.isakmp_policies.len() - 1)))
        }
        "key" => {
            // `crypto isakmp key [0|6] KEY address|hostname ...`.
            if cmd.peek().is_some_and(|t| t.text == "6") {
                return Err(cmd.err_here(
                    ErrorKind::NotSupportedYet,
                    "type 6 (encrypted) keys are not supported yet; write the key in clear text in a file only root can read",
                ));
            }
            if cmd.peek().is_some_and(|t| t.text == "0") && cmd.line.tokens.len() > cmd.pos + 2 {
                cmd.pos += 1;
            }
            let key = cmd.word("pre-shared key")?;
            let key = SecretBytes::new(key.text.as_bytes().to_vec());
            let peer = match cmd.keyword(&["address", "hostname"])? {
                "address" => KeyPeer::Address(key_address(cmd)?),
                _ => KeyPeer::Hostname(cmd.name("peer host name")?.value),
            };
            let no_xauth = cmd.eat("no-xauth");
            cmd.end()?;
            ike.isakmp_keys.push(IsakmpKey {
                span,
                key,
                peer,
                no_xauth,
            });
            Ok(None)
        }
        "keepalive" => {
            let k = keepalive(cmd)?;
            ike.isakmp_keepalive = Some(Spanned::new(k, span));
            Ok(None)
        }
        "identity" => {
            let id = cmd.keyword(&["address", "hostname", "dn"])?;
            cmd.end()?;
            ike.isakmp_identity = Some(Spanned::new(id.to_string(), span));
            Ok(None)
        }
        kw => Err(cmd.err_span(
            span,
            kw,
            ErrorKind::NotSupportedYet,
            format!("crypto isakmp {kw} is not supported yet"),
        )),
    }
}

/// `A [MASK]` or `ipv6 P/L` after `address`.
fn key_address(cmd: &mut Cmd<'_, '_>) -> PResult<IpPrefix> {
    if cmd.eat("ipv6") {
        let t = cmd.word("IPv6 prefix")?;
        return t
            .text
            .parse::<IpPrefix>()
            .ok()
            .filter(IpPrefix::is_ipv6)
            .ok_or_else(|| {
                cmd.err_at(
                    &t,
                    ErrorKind::Syntax,
                    format!("expected an IPv6 prefix such as ::/0, found \"{}\"", t.text),
                )
            });
    }
    let a = cmd.ip("peer address")?;
    let len = match a.value {
        IpAddr::V4(_)
            if cmd
                .peek()
                .is_some_and(|t| t.text.parse::<std::net::Ipv4Addr>().is_ok()) =>
        {
            let m = cmd.ipv4("mask")?;
            let bits = u32::from(m.value);
            // 0.0.0.0 0.0.0.0 is "any"; otherwise a subnet mask.
            if bits.leading_ones() + bits.trailing_zeros() != 32 {
                return Err(cmd.err_span(
                    m.span,
                    &m.value.to_string(),
                    ErrorKind::InvalidValue,
                    "not a contiguous subnet mask",
                ));
            }
            bits.leading_ones() as u8
        }
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    Ok(IpPrefix::new(a.value, len).expect("length fits"))
}

fn keepalive(cmd: &mut Cmd<'_, '_>) -> PResult<Keepalive> {
    let interval = cmd.u32_in("keepalive interval (seconds)", 10..=3600)?.value;
    let retry = match cmd.peek() {
        Some(t) if t.text.bytes().all(|b| b.is_ascii_digit()) => {
            Some(cmd.u32_in("retry interval", 2..=60)?.value)
        }
        _ => None,
    };
    let periodic = match cmd.peek_kw().as_deref() {
        Some("periodic") => {
            cmd.pos += 1;
            true
        }
        Some("on-demand") => {
            cmd.pos += 1;
            false
        }
        _ => false,
    };
    cmd.end()?;
    Ok(Keepalive {
        interval,
        retry,
        periodic,
    })
}

/// One line inside an `crypto isakmp policy` block.
pub fn parse_isakmp_policy_line(cmd: &mut Cmd<'_, '_>, p: &mut IsakmpPolicy) -> PResult<()> {
    match cmd.keyword(&[
        "encryption",
        "encr",
        "hash",
        "authentication",
        "group",
        "lifetime",
    ])? {
        "encryption" | "encr" => p.encryption = Some(cipher(cmd, false)?),
        "hash" => p.hash = Some(hash(cmd, false)?),
        "authentication" => {
            if cmd.peek_kw().as_deref() != Some("pre-share") {
                return Err(cmd.err_here(
                    ErrorKind::NotSupportedYet,
                    "only \"authentication pre-share\" is supported (certificates are not)",
                ));
            }
            cmd.pos += 1;
            p.pre_share = true;
        }
        "group" => p.group = Some(dh_group(cmd)?),
        _ => p.lifetime = Some(cmd.u32_in("lifetime (seconds)", 60..=86400)?.value),
    }
    cmd.end()
}

/// `crypto ikev2 ...`; `crypto ikev2` consumed.
pub fn parse_ikev2(cmd: &mut Cmd<'_, '_>, ike: &mut IkeConfig) -> PResult<Option<IkeMode>> {
    let span = cmd.line_span();
    let what = cmd.keyword(&[
        "proposal",
        "policy",
        "keyring",
        "profile",
        "dpd",
        "nat",
        "cookie-challenge",
    ])?;
    if !matches!(what, "proposal" | "policy" | "keyring" | "profile") {
        return Err(cmd.err_span(
            span,
            what,
            ErrorKind::NotSupportedYet,
            format!("crypto ikev2 {what} is not supported yet"),
        ));
    }
    let name = cmd.name(&format!("{what} name"))?.value;
    cmd.end()?;
    macro_rules! open {
        ($list:expr, $mode:ident, $new:expr) => {{
            if let Some(i) = $list.iter().position(|x| x.name == name) {
                return Ok(Some(IkeMode::$mode(i)));
            }
            $list.push($new);
            Ok(Some(IkeMode::$mode($list.len() - 1)))
        }};
    }
    match what {
        "proposal" => open!(
            ike.ikev2_proposals,
            Ikev2Proposal,
            Ikev2Proposal {
                name: name.clone(),
                span,
                encryption: vec![],
                integrity: vec![],
                prf: vec![],
                groups: vec![]
            }
        ),
        "policy" => open!(
            ike.ikev2_policies,
            Ikev2Policy,
            Ikev2Policy {
                name: name.clone(),
                span,
                proposals: vec![]
            }
        ),
        "keyring" => open!(
            ike.ikev2_keyrings,
            Ikev2Keyring,
            Ikev2Keyring {
                name: name.clone(),
                span,
                peers: vec![]
            }
        ),
        _ => open!(
            ike.ikev2_profiles,
            Ikev2Profile,
            Ikev2Profile {
                name: name.clone(),
                span,
                ..Default::default()
            }
        ),
    }
}

/// One line inside an IKEv2 block; may open the keyring-peer sub-mode.
pub fn parse_ikev2_line(
    cmd: &mut Cmd<'_, '_>,
    ike: &mut IkeConfig,
    mode: IkeMode,
) -> PResult<Option<IkeMode>> {
    let span = cmd.line_span();
    match mode {
        IkeMode::Ikev2Proposal(i) => {
            let p = &mut ike.ikev2_proposals[i];
            match cmd.keyword(&["encryption", "integrity", "group", "prf"])? {
                "encryption" => loop {
                    p.encryption.push(cipher(cmd, true)?);
                    if cmd.at_end() {
                        break;
                    }
                },
                "group" => loop {
                    p.groups.push(dh_group(cmd)?);
                    if cmd.at_end() {
                        break;
                    }
                },
                kw => loop {
                    let h = hash(cmd, true)?;
                    if kw == "prf" {
                        p.prf.push(h)
                    } else {
                        p.integrity.push(h)
                    }
                    if cmd.at_end() {
                        break;
                    }
                },
            }
        }
        IkeMode::Ikev2Policy(i) => match cmd.keyword(&["proposal", "match"])? {
            "proposal" => ike.ikev2_policies[i]
                .proposals
                .push(cmd.name("proposal name")?),
            _ => {
                return Err(cmd.err_span(
                    span,
                    "match",
                    ErrorKind::NotSupportedYet,
                    "IKEv2 policy match clauses are not supported yet",
                ))
            }
        },
        IkeMode::Ikev2Keyring(i) => {
            cmd.keyword(&["peer"])?;
            let name = cmd.name("peer name")?.value;
            let ring = &mut ike.ikev2_keyrings[i];
            let j = match ring.peers.iter().position(|p| p.name == name) {
                Some(j) => j,
                None => {
                    ring.peers.push(Ikev2KeyringPeer {
                        name,
                        span,
                        address: None,
                        hostname: None,
                        identity: None,
                        psk: None,
                        psk_local: None,
                        psk_remote: None,
                    });
                    ring.peers.len() - 1
                }
            };
            cmd.end()?;
            return Ok(Some(IkeMode::Ikev2KeyringPeer(i, j)));
        }
        IkeMode::Ikev2KeyringPeer(i, j) => {
            let peer = &mut ike.ikev2_keyrings[i].peers[j];
            match cmd.keyword(&[
                "address",
                "hostname",
                "identity",
                "pre-shared-key",
                "description",
            ])? {
                "address" => peer.address = Some(key_address(cmd)?),
                "hostname" => peer.hostname = Some(cmd.name("host name")?.value),
                "identity" => {
                    cmd.word("identity type")?;
                    peer.identity = Some(cmd.line.rest_from(cmd.pos - 1).to_string());
                    cmd.pos = cmd.line.tokens.len();
                }
                "description" => cmd.pos = cmd.line.tokens.len(),
                _ => {
                    let which = match cmd.peek_kw().as_deref() {
                        Some("local") => 1,
                        Some("remote") => 2,
                        _ => 0,
                    };
                    if which != 0 {
                        cmd.pos += 1;
                    }
                    if cmd.peek().is_some_and(|t| t.text == "6") {
                        return Err(cmd.err_here(
                            ErrorKind::NotSupportedYet,
                            "type 6 (encrypted) keys are not supported yet",
                        ));
                    }
                    if cmd.peek().is_some_and(|t| t.text == "0")
                        && cmd.line.tokens.len() > cmd.pos + 1
                    {
                        cmd.pos += 1;
                    }
                    let key =
                        SecretBytes::new(cmd.word("pre-shared key")?.text.as_bytes().to_vec());
                    match which {
                        1 => peer.psk_local = Some(key),
                        2 => peer.psk_remote = Some(key),
                        _ => peer.psk = Some(key),
                    }
                }
            }
        }
        IkeMode::Ikev2Profile(i) => {
            let p = &mut ike.ikev2_profiles[i];
            match cmd.keyword(&[
                "match",
                "authentication",
                "keyring",
                "lifetime",
                "dpd",
                "identity",
                "description",
            ])? {
                "match" => {
                    cmd.keyword(&["identity"])?;
                    cmd.keyword(&["remote"])?;
                    cmd.keyword(&["address", "fqdn", "email", "key-id"])?;
                    p.match_identity_remote
                        .push(cmd.line.rest_from(cmd.pos - 1).to_string());
                    cmd.pos = cmd.line.tokens.len();
                }
                "authentication" => {
                    let side = cmd.keyword(&["local", "remote"])?;
                    let how = cmd.keyword(&["pre-share", "rsa-sig", "ecdsa-sig", "eap"])?;
                    if how != "pre-share" {
                        return Err(cmd.err_span(
                            span,
                            how,
                            ErrorKind::NotSupportedYet,
                            "only pre-shared key authentication is supported",
                        ));
                    }
                    if side == "local" {
                        p.auth_local = Some(how.to_string());
                    } else {
                        p.auth_remote.push(how.to_string());
                    }
                }
                "keyring" => {
                    cmd.keyword(&["local"])?;
                    p.keyring = Some(cmd.name("keyring name")?);
                }
                "lifetime" => {
                    p.lifetime = Some(cmd.u32_in("lifetime (seconds)", 120..=86400)?.value)
                }
                "dpd" => p.dpd = Some(keepalive(cmd)?),
                "identity" => {
                    cmd.keyword(&["local"])?;
                    p.identity_local = Some(cmd.line.rest_from(cmd.pos).to_string());
                    cmd.pos = cmd.line.tokens.len();
                }
                _ => cmd.pos = cmd.line.tokens.len(),
            }
        }
        _ => {}
    }
    cmd.end()?;
    Ok(None)
}

/// `crypto ipsec profile NAME`; `crypto ipsec profile` consumed.
pub fn parse_ipsec_profile(cmd: &mut Cmd<'_, '_>, ike: &mut IkeConfig) -> PResult<IkeMode> {
    let span = cmd.line_span();
    let name = cmd.name("profile name")?.value;
    cmd.end()?;
    if let Some(i) = ike.ipsec_profiles.iter().position(|p| p.name == name) {
        return Ok(IkeMode::IpsecProfile(i));
    }
    ike.ipsec_profiles.push(IpsecProfile {
        name,
        span,
        ..Default::default()
    });
    Ok(IkeMode::IpsecProfile(ike.ipsec_profiles.len() - 1))
}

/// `crypto dynamic-map NAME SEQ`; `crypto dynamic-map` consumed.
pub fn parse_dynamic_map(cmd: &mut Cmd<'_, '_>, ike: &mut IkeConfig) -> PResult<IkeMode> {
    let span = cmd.line_span();
    let name = cmd.name("dynamic map name")?.value;
    let seq = cmd.u32_in("sequence number", 1..=65535)?.value;
    cmd.end()?;
    if let Some(i) = ike
        .dynamic_maps
        .iter()
        .position(|d| d.name == name && d.seq == seq)
    {
        return Ok(IkeMode::DynamicMap(i));
    }
    ike.dynamic_maps.push(DynamicMapEntry {
        name,
        seq,
        span,
        entry: IsakmpMapEntry::default(),
    });
    Ok(IkeMode::DynamicMap(ike.dynamic_maps.len() - 1))
}

/// `crypto ipsec security-association lifetime seconds|kilobytes N`.
pub fn parse_global_sa_lifetime(cmd: &mut Cmd<'_, '_>, ike: &mut IkeConfig) -> PResult<()> {
    let span = cmd.line_span();
    cmd.keyword(&["lifetime"])?;
    lifetime(cmd, &mut ike.sa_lifetime)?;
    ike.sa_lifetime.span = Some(span);
    cmd.end()
}

fn lifetime(cmd: &mut Cmd<'_, '_>, l: &mut SaLifetime) -> PResult<()> {
    match cmd.keyword(&["seconds", "kilobytes"])? {
        "seconds" => l.seconds = Some(cmd.number("seconds", 120..=2_592_000)?.value),
        _ => l.kilobytes = Some(cmd.number("kilobytes", 2560..=4_294_967_295)?.value),
    }
    Ok(())
}

/// A `set`/`match`/`reverse-route` line of an ipsec-isakmp map entry, a
/// dynamic map entry or (`set` only) an IPsec profile.
pub fn parse_isakmp_entry_line(
    cmd: &mut Cmd<'_, '_>,
    e: &mut IsakmpMapEntry,
    profile: bool,
) -> PResult<()> {
    let first = cmd.keyword(&["set", "match", "reverse-route", "description"])?;
    match first {
        "description" => {
            cmd.pos = cmd.line.tokens.len();
            return Ok(());
        }
        "reverse-route" => {
            e.reverse_route = true;
            cmd.eat("static");
            return cmd.end();
        }
        "match" if !profile => {
            cmd.keyword(&["address"])?;
            e.match_address = Some(cmd.name("access list name or number")?);
            return cmd.end();
        }
        "match" => {
            return Err(cmd.err_here(ErrorKind::Syntax, "an IPsec profile has no match address"))
        }
        _ => {}
    }
    match cmd.keyword(&[
        "peer",
        "transform-set",
        "pfs",
        "security-association",
        "isakmp-profile",
        "ikev2-profile",
    ])? {
        "peer" => {
            if profile {
                return Err(cmd.err_here(
                    ErrorKind::Syntax,
                    "an IPsec profile has no peer; the tunnel destination is the peer",
                ));
            }
            e.peers.push(cmd.ip("peer address")?);
        }
        "transform-set" => loop {
            e.transform_sets.push(cmd.name("transform set name")?);
            if cmd.at_end() {
                break;
            }
        },
        "pfs" => {
            let g = cmd.keyword(&[
                "group1", "group2", "group5", "group14", "group15", "group16", "group19",
                "group20", "group21", "group24",
            ])?;
            e.pfs = g.trim_start_matches("group").parse().ok();
        }
        "security-association" => {
            cmd.keyword(&["lifetime"])?;
            lifetime(cmd, &mut e.lifetime)?;
        }
        "isakmp-profile" => e.isakmp_profile = Some(cmd.name("ISAKMP profile name")?),
        _ => e.ikev2_profile = Some(cmd.name("IKEv2 profile name")?),
    }
    cmd.end()
}

/// An IPsec profile line: the isakmp-entry grammar without peers or ACLs.
pub fn parse_ipsec_profile_line(cmd: &mut Cmd<'_, '_>, p: &mut IpsecProfile) -> PResult<()> {
    let mut e = IsakmpMapEntry {
        transform_sets: std::mem::take(&mut p.transform_sets),
        ikev2_profile: p.ikev2_profile.take(),
        isakmp_profile: p.isakmp_profile.take(),
        pfs: p.pfs,
        lifetime: p.lifetime,
        ..Default::default()
    };
    let r = parse_isakmp_entry_line(cmd, &mut e, true);
    p.transform_sets = e.transform_sets;
    p.ikev2_profile = e.ikev2_profile;
    p.isakmp_profile = e.isakmp_profile;
    p.pfs = e.pfs;
    p.lifetime = e.lifetime;
    r
}

/// `tunnel source|destination|mode|protection ...` in an interface.
pub fn parse_tunnel_line(cmd: &mut Cmd<'_, '_>, t: &mut TunnelConfig) -> PResult<()> {
    let span = cmd.line_span();
    match cmd.keyword(&["source", "destination", "mode", "protection"])? {
        "source" => {
            t.source = Some(Spanned::new(
                cmd.name("source interface or address")?.value,
                span,
            ))
        }
        "destination" => {
            t.destination = Some(Spanned::new(cmd.ip("tunnel destination")?.value, span))
        }
        "mode" => {
            cmd.keyword(&["ipsec"])?;
            let m = match cmd.keyword(&["ipv4", "ipv6"])? {
                "ipv4" => TunnelMode::IpsecIpv4,
                _ => TunnelMode::IpsecIpv6,
            };
            t.mode = Some(Spanned::new(m, span));
        }
        _ => {
            cmd.keyword(&["ipsec"])?;
            cmd.keyword(&["profile"])?;
            t.protection = Some(cmd.name("IPsec profile name")?);
        }
    }
    cmd.end()
}
