//! The IKE commands' parsers, one per command or block line; they fill the
//! model in the parent module.

use std::net::IpAddr;

use dataplane::spd::IpPrefix;

use super::super::cursor::{Cmd, PResult};
use super::super::error::{ErrorKind, Spanned};
use super::super::model::SecretBytes;
use super::{
    DynamicMapEntry, IkeCipher, IkeConfig, IkeEncr, IkeHash, IkeId, IkeMode, Ikev2Keyring,
    Ikev2KeyringPeer, Ikev2Policy, Ikev2Profile, Ikev2Proposal, IpsecProfile, IsakmpKey,
    IsakmpMapEntry, IsakmpPolicy, Keepalive, KeyPeer, RemoteIdMatch, SaLifetime, TunnelConfig,
    TunnelMode,
};

/// The rest of `crypto map NAME SEQ ipsec-isakmp [dynamic D [discover]]`.
pub fn parse_isakmp_map_header(cmd: &mut Cmd<'_, '_>) -> PResult<IsakmpMapEntry> {
    let mut e = IsakmpMapEntry::default();
    if cmd.eat("dynamic") {
        e.dynamic = Some(cmd.name("dynamic map name")?);
        e.discover = cmd.eat("discover");
    }
    Ok(e)
}

/// One `encryption` word of `crypto ikev2 proposal`.
fn ikev2_cipher(cmd: &mut Cmd<'_, '_>) -> PResult<IkeEncr> {
    let at = cmd.pos;
    Ok(
        match cmd.keyword(&[
            "des",
            "3des",
            "aes-cbc-128",
            "aes-cbc-192",
            "aes-cbc-256",
            "aes-gcm-128",
            "aes-gcm-256",
        ])? {
            "3des" => IkeEncr::TripleDes,
            "aes-cbc-128" => IkeEncr::AesCbc(128),
            "aes-cbc-192" => IkeEncr::AesCbc(192),
            "aes-cbc-256" => IkeEncr::AesCbc(256),
            "aes-gcm-128" => IkeEncr::AesGcm16(128),
            "aes-gcm-256" => IkeEncr::AesGcm16(256),
            _ => {
                cmd.pos = at;
                return Err(cmd.err_here(
                    ErrorKind::NotSupportedYet,
                    "DES is not supported for IKEv2 (RFC 8247 forbids it); use aes-cbc-128 or \
                     stronger",
                ));
            }
        },
    )
}

fn cipher(cmd: &mut Cmd<'_, '_>) -> PResult<IkeCipher> {
    Ok(match cmd.keyword(&["des", "3des", "aes"])? {
        "des" => IkeCipher::Des,
        "3des" => IkeCipher::TripleDes,
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

const DH_GROUPS: &[u64] = &[1, 2, 5, 14, 15, 16, 19, 20, 21, 24, 31];

fn dh_group(cmd: &mut Cmd<'_, '_>) -> PResult<u16> {
    let g = cmd.number("Diffie-Hellman group", 1..=32)?;
    if !DH_GROUPS.contains(&g.value) {
        return Err(cmd.err_span(
            g.span,
            &g.value.to_string(),
            ErrorKind::InvalidValue,
            "unknown Diffie-Hellman group; expected one of 1, 2, 5, 14, 15, 16, 19, 20, 21, 24, 31",
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
            let after_next = cmd
                .line
                .tokens
                .get(cmd.pos + 2)
                .map(|t| t.text.to_ascii_lowercase());
            if cmd.peek().is_some_and(|t| t.text == "0")
                && matches!(after_next.as_deref(), Some("address" | "hostname"))
            {
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
        "nat" => {
            // `crypto isakmp nat keepalive SECS` (RFC 3948 §2.3).
            cmd.keyword(&["keepalive"])?;
            let secs = cmd
                .u32_in("NAT keepalive interval (seconds)", 5..=3600)?
                .value;
            cmd.end()?;
            ike.isakmp_nat_keepalive = Some(Spanned::new(secs, span));
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
        "encryption" | "encr" => p.encryption = Some(cipher(cmd)?),
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
    match what {
        "dpd" => {
            // `crypto ikev2 dpd INTERVAL RETRY on-demand|periodic`: for
            // profiles that set none.
            let k = keepalive(cmd)?;
            ike.ikev2_dpd = Some(Spanned::new(k, span));
            return Ok(None);
        }
        "nat" => {
            cmd.keyword(&["keepalive"])?;
            let secs = cmd
                .u32_in("NAT keepalive interval (seconds)", 5..=3600)?
                .value;
            cmd.end()?;
            ike.ikev2_nat_keepalive = Some(Spanned::new(secs, span));
            return Ok(None);
        }
        "cookie-challenge" => {
            // Half-open IKE SAs above which a COOKIE is demanded.
            let n = cmd
                .u32_in("half-open IKE SAs before a cookie challenge", 1..=1000)?
                .value;
            cmd.end()?;
            ike.ikev2_cookie_challenge = Some(Spanned::new(n, span));
            return Ok(None);
        }
        _ => {}
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
                proposals: vec![],
                match_local: vec![]
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
                    p.encryption.push(ikev2_cipher(cmd)?);
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
                // `match address local A`; `match vrf` / `match fvrf` are
                // not for Espada (no VRFs).
                let what = cmd.keyword(&["address", "fvrf", "vrf"])?;
                if what != "address" {
                    return Err(cmd.err_span(
                        span,
                        what,
                        ErrorKind::NotSupportedYet,
                        format!("IKEv2 policy match {what} is not supported (espada has no VRFs)"),
                    ));
                }
                cmd.keyword(&["local"])?;
                let a = cmd.ip("local address")?;
                ike.ikev2_policies[i].match_local.push(a);
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
                // Without `address_optional` an identity is always read.
                "identity" => peer.identity = ike_id(cmd, false)?,
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
                    let m = remote_id_match(cmd)?;
                    p.match_identity_remote.push(Spanned::new(m, span));
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
                    p.identity_local = Some(Spanned::new(ike_id(cmd, true)?, span));
                }
                _ => cmd.pos = cmd.line.tokens.len(),
            }
        }
        _ => {}
    }
    cmd.end()?;
    Ok(None)
}

/// `address A|fqdn NAME|email X|key-id X` of a keyring peer's `identity`
/// or a profile's `identity local`; with `address_optional` (identity
/// local) `address` alone is `None`: our own address.
fn ike_id(cmd: &mut Cmd<'_, '_>, address_optional: bool) -> PResult<Option<IkeId>> {
    let at = cmd.pos;
    let kw = cmd.keyword(&["address", "fqdn", "email", "key-id", "dn"])?;
    Ok(Some(match kw {
        "address" if address_optional && cmd.at_end() => return Ok(None),
        "address" => IkeId::Address(cmd.ip("identity address")?.value),
        "fqdn" => IkeId::Fqdn(fqdn(cmd)?),
        "email" => IkeId::Email(email(cmd)?),
        "key-id" => IkeId::KeyId(cmd.word("key id")?.text.as_bytes().to_vec()),
        _ => {
            cmd.pos = at;
            return Err(cmd.err_here(
                ErrorKind::NotSupportedYet,
                "identity dn needs certificates, which are not supported",
            ));
        }
    }))
}

/// A host name: letters, digits, '-', '.', '_' (no empty label).
fn fqdn(cmd: &mut Cmd<'_, '_>) -> PResult<String> {
    let t = cmd.word("fully-qualified domain name")?;
    let ok = t.text.len() <= 253
        && t.text.trim_end_matches('.').split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !ok {
        return Err(cmd.err_at(
            &t,
            ErrorKind::InvalidValue,
            format!("\"{}\" is not a domain name", t.text),
        ));
    }
    Ok(t.text.to_string())
}

/// `user@domain`.
fn email(cmd: &mut Cmd<'_, '_>) -> PResult<String> {
    let t = cmd.word("e-mail address")?;
    match t.text.split_once('@') {
        Some((u, d)) if !u.is_empty() && !d.is_empty() && !d.contains('@') => {
            Ok(t.text.to_string())
        }
        _ => Err(cmd.err_at(
            &t,
            ErrorKind::InvalidValue,
            format!("\"{}\" is not an e-mail address (user@domain)", t.text),
        )),
    }
}

/// What follows `match identity remote`.
fn remote_id_match(cmd: &mut Cmd<'_, '_>) -> PResult<RemoteIdMatch> {
    Ok(
        match cmd.keyword(&["address", "fqdn", "email", "key-id"])? {
            // `address P/L` as well as IOS's `address A [MASK]` /
            // `address ipv6 P/L` (the lab's configs write IPv6 prefixes
            // that way).
            "address" => match cmd.peek().filter(|t| t.text.contains('/')) {
                Some(t) => {
                    let p = t.text.parse::<IpPrefix>().map_err(|_| {
                        cmd.err_at(
                            &t,
                            ErrorKind::Syntax,
                            format!(
                                "expected an address prefix such as fd00::/64, found \"{}\"",
                                t.text
                            ),
                        )
                    })?;
                    cmd.pos += 1;
                    RemoteIdMatch::Address(p)
                }
                None => RemoteIdMatch::Address(key_address(cmd)?),
            },
            "fqdn" if cmd.eat("domain") => RemoteIdMatch::FqdnDomain(fqdn(cmd)?),
            "fqdn" => RemoteIdMatch::Fqdn(fqdn(cmd)?),
            "email" if cmd.eat("domain") => RemoteIdMatch::EmailDomain(fqdn(cmd)?),
            "email" => RemoteIdMatch::Email(email(cmd)?),
            _ => RemoteIdMatch::KeyId(cmd.word("key id")?.text.as_bytes().to_vec()),
        },
    )
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
