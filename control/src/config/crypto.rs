//! `crypto ipsec transform-set` and `crypto map NAME SEQ ipsec-manual`
//! with its sub-commands (`set peer`, `set transform-set`, `match address`,
//! `set session-key`).
//!
//! Manual keying follows IOS's `set session-key` syntax. For AES-GCM, which
//! IOS only offers with IKE, Espada defines `cipher HEX` to carry the AES
//! key followed by its 4-byte salt (RFC 4106 §8.1: the salt is the last
//! four octets of the keying material), and `authenticator` is refused:
//! GCM authenticates by itself.

use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};

use super::cursor::{Cmd, PResult};
use super::error::{ErrorKind, Spanned, Warning};
use super::ike;
use super::model::{
    Config, CryptoMapEntry, CryptoMapKind, ManualEntry, SecretBytes, SessionKey, TransformMode,
    TransformSet,
};

/// The transforms Espada implements, as listed in error messages.
pub const TRANSFORMS: &str = "esp-des, esp-3des, esp-aes [128|192|256], esp-gcm [128|256], \
     esp-null, esp-md5-hmac, esp-sha-hmac, esp-sha256-hmac, esp-sha384-hmac, esp-sha512-hmac";

/// `crypto ipsec transform-set NAME T1 [T2]`; `crypto ipsec transform-set`
/// already consumed. Returns the new set's index (its mode block opens).
pub fn parse_transform_set(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<usize> {
    let name = cmd.name("transform set name")?;
    if let Some(prev) = cfg.transform_set(&name.value) {
        return Err(cmd.err_span(
            name.span,
            &name.value,
            ErrorKind::Duplicate,
            format!(
                "transform set {} is already defined on line {}",
                name.value, prev.span.line
            ),
        ));
    }
    let mut enc: Option<Spanned<EncAlg>> = None;
    let mut auth: Option<Spanned<AuthAlg>> = None;
    while let Some(t) = cmd.peek() {
        cmd.pos += 1;
        let span = cmd.span_of(&t);
        let w = t.text.to_ascii_lowercase();
        let e = match w.as_str() {
            "esp-des" => Some(EncAlg::DesCbc),
            "esp-3des" => Some(EncAlg::TripleDesCbc),
            "esp-null" => Some(EncAlg::Null),
            "esp-aes" => Some(match key_size(cmd, &[128, 192, 256])? {
                Some(192) => EncAlg::AesCbc192,
                Some(256) => EncAlg::AesCbc256,
                _ => EncAlg::AesCbc128,
            }),
            "esp-gcm" => Some(match key_size(cmd, &[128, 256])? {
                Some(256) => EncAlg::AesGcm256(GcmIcv::B16),
                _ => EncAlg::AesGcm128(GcmIcv::B16),
            }),
            _ => None,
        };
        let a = match w.as_str() {
            "esp-md5-hmac" => Some(AuthAlg::HmacMd5_96),
            "esp-sha-hmac" => Some(AuthAlg::HmacSha1_96),
            "esp-sha256-hmac" => Some(AuthAlg::HmacSha256_128),
            "esp-sha384-hmac" => Some(AuthAlg::HmacSha384_192),
            "esp-sha512-hmac" => Some(AuthAlg::HmacSha512_256),
            _ => None,
        };
        if let Some(e) = e {
            if let Some(prev) = &enc {
                return Err(cmd.err_at(
                    &t,
                    ErrorKind::Syntax,
                    format!(
                        "a transform set has one encryption transform; {} is already given at \
                         column {}",
                        prev.value.ios_name(),
                        prev.span.col
                    ),
                ));
            }
            enc = Some(Spanned::new(e, span));
        } else if let Some(a) = a {
            if auth.is_some() {
                return Err(cmd.err_at(
                    &t,
                    ErrorKind::Syntax,
                    "a transform set has one integrity transform",
                ));
            }
            auth = Some(Spanned::new(a, span));
        } else {
            return Err(unknown_transform(cmd, &t, &w));
        }
    }
    let Some(enc) = enc else {
        return Err(cmd.err_here(
            ErrorKind::Syntax,
            format!(
                "expected an ESP encryption transform (esp-null for integrity only); \
                 transforms: {TRANSFORMS}"
            ),
        ));
    };
    let auth_alg = auth.as_ref().map(|a| a.value).unwrap_or(AuthAlg::None);
    if let (true, Some(a)) = (enc.value.is_aead(), &auth) {
        return Err(cmd.err_span(
            a.span,
            a.value.ios_name(),
            ErrorKind::InvalidValue,
            "esp-gcm authenticates by itself and takes no integrity transform",
        ));
    }
    if !enc.value.is_aead() && auth.is_none() {
        return Err(cmd.err_span(
            enc.span,
            enc.value.ios_name(),
            ErrorKind::InvalidValue,
            format!(
                "{} needs an integrity transform (esp-sha-hmac, esp-sha256-hmac, ...): \
                 espada refuses ESP without integrity",
                enc.value.ios_name()
            ),
        ));
    }
    if enc.value.is_insecure() {
        let why = match enc.value {
            EncAlg::Null => "esp-null gives no confidentiality at all",
            _ => {
                "esp-des has a 56-bit key and can be broken by brute force; it is accepted \
                  only to interoperate with legacy peers"
            }
        };
        cfg.warnings.push(Warning {
            span: enc.span,
            message: format!("{why}; prefer esp-aes or esp-gcm"),
            source_line: cmd.line.redacted.clone(),
        });
    }
    cfg.transform_sets.push(TransformSet {
        name: name.value,
        span: cmd.line_span(),
        enc: enc.value,
        auth: auth_alg,
        mode: TransformMode::Tunnel,
    });
    Ok(cfg.transform_sets.len() - 1)
}

fn key_size(cmd: &mut Cmd<'_, '_>, sizes: &[u64]) -> PResult<Option<u64>> {
    let Some(t) = cmd.peek() else { return Ok(None) };
    let Ok(n) = t.text.parse::<u64>() else {
        return Ok(None);
    };
    if !sizes.contains(&n) {
        let list: Vec<String> = sizes.iter().map(u64::to_string).collect();
        return Err(cmd.err_at(
            &t,
            ErrorKind::InvalidValue,
            format!("key size {n} is not offered; expected {}", list.join(", ")),
        ));
    }
    cmd.pos += 1;
    Ok(Some(n))
}

fn unknown_transform(
    cmd: &Cmd<'_, '_>,
    t: &super::lexer::Token<'_>,
    w: &str,
) -> super::error::ConfigError {
    if w.starts_with("ah-") {
        return cmd.err_at(
            t,
            ErrorKind::NotSupportedYet,
            format!("{w}: AH is not supported; espada implements ESP only"),
        );
    }
    if matches!(w, "comp-lzs" | "esp-seal" | "esp-gmac") {
        return cmd.err_at(
            t,
            ErrorKind::NotSupportedYet,
            format!("transform {w} is not supported yet"),
        );
    }
    let hint = match w {
        "esp-aes-128" | "esp-aes128" => " (write \"esp-aes 128\")",
        "esp-aes-192" | "esp-aes192" => " (write \"esp-aes 192\")",
        "esp-aes-256" | "esp-aes256" => " (write \"esp-aes 256\")",
        "esp-gcm-128" | "esp-gcm128" => " (write \"esp-gcm 128\")",
        "esp-gcm-256" | "esp-gcm256" => " (write \"esp-gcm 256\")",
        "esp-sha1-hmac" => " (write \"esp-sha-hmac\")",
        _ => "",
    };
    cmd.err_at(
        t,
        ErrorKind::InvalidValue,
        format!(
            "unknown transform \"{}\"{hint}; expected one of {TRANSFORMS}",
            t.text
        ),
    )
}

/// `mode tunnel|transport [require]` inside a transform set.
pub fn parse_transform_mode(cmd: &mut Cmd<'_, '_>, ts: &mut TransformSet) -> PResult<()> {
    cmd.keyword(&["mode"])?;
    ts.mode = match cmd.keyword(&["tunnel", "transport"])? {
        "tunnel" => TransformMode::Tunnel,
        _ => {
            // `require`: never fall back to tunnel mode, which Espada does not
            // do anyway.
            cmd.eat("require");
            TransformMode::Transport
        }
    };
    cmd.end()
}

/// Global `crypto map NAME SEQ [ipsec-manual | ipsec-isakmp [dynamic D
/// [discover]]]`; `crypto map` already consumed. Returns the entry's index
/// (its block opens). Re-entering an existing entry of the same kind opens
/// it again, as IOS does.
pub fn parse_crypto_map(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<usize> {
    let name = cmd.name("crypto map name")?;
    if cmd.peek_kw().as_deref() == Some("local-address") {
        return Err(cmd.err_here(
            ErrorKind::NotSupportedYet,
            "crypto map local-address is not supported yet: the local address is the \
             address of the interface that carries the map",
        ));
    }
    if cmd.at_end() {
        return Err(cmd.err_here(
            ErrorKind::Syntax,
            format!(
                "expected a sequence number (crypto map {0} 10 ipsec-manual); \"crypto map {0}\" \
                 alone applies the map and belongs under an interface",
                name.value
            ),
        ));
    }
    let seq = cmd.u32_in("sequence number", 1..=65535)?;
    let kind_tok = cmd.peek();
    let kind = match cmd.peek_kw().as_deref() {
        Some("ipsec-manual") => {
            cmd.pos += 1;
            CryptoMapKind::Manual(ManualEntry::default())
        }
        Some("ipsec-isakmp") | None => {
            cmd.eat("ipsec-isakmp");
            CryptoMapKind::Isakmp(ike::parse_isakmp_map_header(cmd)?)
        }
        _ => return Err(cmd.expected(&["ipsec-manual", "ipsec-isakmp"])),
    };
    cmd.end()?;
    if let Some(i) = cfg
        .crypto_maps
        .iter()
        .position(|e| e.name == name.value && e.seq == seq.value)
    {
        let same =
            std::mem::discriminant(&cfg.crypto_maps[i].kind) == std::mem::discriminant(&kind);
        if same {
            return Ok(i);
        }
        let t = kind_tok.unwrap_or_else(|| cmd.line.tokens[cmd.pos - 1]);
        return Err(cmd.err_at(
            &t,
            ErrorKind::Duplicate,
            format!(
                "crypto map {} {} is already defined as another kind on line {}",
                name.value, seq.value, cfg.crypto_maps[i].span.line
            ),
        ));
    }
    cfg.crypto_maps.push(CryptoMapEntry {
        name: name.value,
        seq: seq.value,
        span: cmd.line_span(),
        description: None,
        kind,
    });
    Ok(cfg.crypto_maps.len() - 1)
}

const MANUAL_COMMANDS: &[&str] = &[
    "set peer",
    "set transform-set",
    "match address",
    "set session-key",
    "description",
];

/// One sub-command of an `ipsec-manual` entry.
pub fn parse_manual_line(
    cmd: &mut Cmd<'_, '_>,
    m: &mut ManualEntry,
    description: &mut Option<String>,
) -> PResult<()> {
    let first = cmd.word("a crypto map command")?;
    match first.text.to_ascii_lowercase().as_str() {
        "description" => {
            *description = Some(cmd.line.rest_from(cmd.pos).to_string());
            Ok(())
        }
        "match" => {
            cmd.keyword(&["address"])?;
            let acl = cmd.name("access list name or number")?;
            cmd.end()?;
            if let Some(prev) = &m.match_address {
                return Err(cmd.err_span(
                    acl.span,
                    &acl.value,
                    ErrorKind::Duplicate,
                    format!(
                        "this entry already matches access list {} (line {})",
                        prev.value, prev.span.line
                    ),
                ));
            }
            m.match_address = Some(acl);
            Ok(())
        }
        "set" => parse_manual_set(cmd, m),
        _ => Err(cmd.err_at(
            &first,
            ErrorKind::UnknownCommand,
            format!(
                "\"{}\" is not an ipsec-manual crypto map command; expected one of {}",
                first.text,
                MANUAL_COMMANDS.join(", ")
            ),
        )),
    }
}

fn parse_manual_set(cmd: &mut Cmd<'_, '_>, m: &mut ManualEntry) -> PResult<()> {
    let what = cmd.peek();
    match cmd.peek_kw().as_deref() {
        Some("peer") => {
            cmd.pos += 1;
            let t = cmd.peek();
            let peer = cmd.ip("peer address").map_err(|e| match t {
                Some(t) if is_host_name(t.text) => cmd.err_at(
                    &t,
                    ErrorKind::NotSupportedYet,
                    format!(
                        "peer host names are not resolved; give the address of {}",
                        t.text
                    ),
                ),
                _ => e,
            })?;
            cmd.end()?;
            if let Some(prev) = &m.peer {
                return Err(cmd.err_span(
                    peer.span,
                    &peer.value.to_string(),
                    ErrorKind::Duplicate,
                    format!(
                        "an ipsec-manual entry has exactly one peer; line {} already set {}",
                        prev.span.line, prev.value
                    ),
                ));
            }
            m.peer = Some(peer);
            Ok(())
        }
        Some("transform-set") => {
            cmd.pos += 1;
            let ts = cmd.name("transform set name")?;
            if let Some(t) = cmd.peek() {
                return Err(cmd.err_at(
                    &t,
                    ErrorKind::InvalidValue,
                    "an ipsec-manual entry uses exactly one transform set (there is no \
                     negotiation to choose among several)",
                ));
            }
            if let Some(prev) = &m.transform_set {
                return Err(cmd.err_span(
                    ts.span,
                    &ts.value,
                    ErrorKind::Duplicate,
                    format!(
                        "this entry already uses transform set {} (line {})",
                        prev.value, prev.span.line
                    ),
                ));
            }
            m.transform_set = Some(ts);
            Ok(())
        }
        Some("session-key") => {
            cmd.pos += 1;
            parse_session_key(cmd, m)
        }
        Some("security-association")
        | Some("pfs")
        | Some("isakmp-profile")
        | Some("ikev2-profile") => {
            let t = what.expect("peeked");
            Err(cmd.err_at(
                &t,
                ErrorKind::InvalidValue,
                format!(
                    "\"set {}\" belongs to ipsec-isakmp entries; manual SAs are neither \
                     negotiated nor rekeyed",
                    t.text
                ),
            ))
        }
        _ => Err(cmd.expected(&["peer", "transform-set", "session-key"])),
    }
}

/// A token that is not an address but looks like a DNS name.
fn is_host_name(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_err()
        && !s.contains(':')
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

/// `set session-key inbound|outbound esp SPI [cipher HEX] [authenticator HEX]`.
fn parse_session_key(cmd: &mut Cmd<'_, '_>, m: &mut ManualEntry) -> PResult<()> {
    let dir_tok = cmd.peek();
    let dir = cmd.keyword(&["inbound", "outbound"])?;
    if cmd.peek_kw().as_deref() == Some("ah") {
        return Err(cmd.err_here(
            ErrorKind::NotSupportedYet,
            "AH session keys are not supported; espada implements ESP only",
        ));
    }
    cmd.keyword(&["esp"])?;
    let spi = cmd.number("SPI", 0..=u64::from(u32::MAX))?;
    if spi.value < 256 {
        return Err(cmd.err_span(
            spi.span,
            &spi.value.to_string(),
            ErrorKind::InvalidValue,
            format!(
                "SPI {} is reserved: manual SPIs are 256..4294967295 (RFC 4303 §2.1 reserves \
                 1-255 for IANA)",
                spi.value
            ),
        ));
    }
    let mut key = SessionKey {
        span: cmd.line_span(),
        spi: Spanned::new(spi.value as u32, spi.span),
        cipher: None,
        authenticator: None,
    };
    while !cmd.at_end() {
        match cmd.keyword(&["cipher", "authenticator"])? {
            "cipher" if key.cipher.is_none() => key.cipher = Some(hex_key(cmd, "cipher key")?),
            "authenticator" if key.authenticator.is_none() => {
                key.authenticator = Some(hex_key(cmd, "authenticator key")?)
            }
            kw => {
                let t = cmd.line.tokens[cmd.pos - 1];
                return Err(cmd.err_at(&t, ErrorKind::Duplicate, format!("{kw} is given twice")));
            }
        }
    }
    let slot = if dir == "inbound" {
        &mut m.inbound
    } else {
        &mut m.outbound
    };
    if let Some(prev) = slot {
        let t = dir_tok.expect("keyword read");
        return Err(cmd.err_at(
            &t,
            ErrorKind::Duplicate,
            format!(
                "the {dir} session key is already set on line {}",
                prev.span.line
            ),
        ));
    }
    *slot = Some(key);
    Ok(())
}

/// A key as hex digits (an even number of them), held as zeroizing bytes.
fn hex_key(cmd: &mut Cmd<'_, '_>, what: &str) -> PResult<Spanned<SecretBytes>> {
    let t = cmd.word(what)?;
    let span = cmd.span_of(&t);
    let digits = t.text.strip_prefix("0x").unwrap_or(t.text);
    match decode_hex(digits) {
        Some(b) if !b.is_empty() => Ok(Spanned::new(SecretBytes::new(b), span)),
        _ => Err(cmd.err_at(
            &t,
            ErrorKind::Syntax,
            format!("the {what} must be hexadecimal digits, an even number of them"),
        )),
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::decode_hex;

    #[test]
    fn hex_keys_decode_and_refuse_odd_or_non_hex_text() {
        assert_eq!(decode_hex("00ffA5"), Some(vec![0, 0xff, 0xa5]));
        assert_eq!(decode_hex("abc"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
