//! The IOS commands, one function per command family. Every word is
//! checked; anything unknown or unsupported is an error at its column,
//! never skipped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::api::Direction;
use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};
use dataplane::spd::{IpPrefix, PortRange, TrafficSelector};
use zeroize::Zeroizing;

use super::error::{ConfigError, Warning};
use super::lexer::{blocks, lines, Block, Line, Word};
use super::model::*;

/// Parses a whole config; returns it with warnings, or every error found.
pub fn parse(src: &str) -> Result<(Config, Vec<Warning>), Vec<ConfigError>> {
    let mut p = Parser {
        cfg: Config::default(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    for b in blocks(lines(src)) {
        if b.head.indented {
            p.err_at(
                &b.head,
                0,
                "indented line with no command above it to belong to",
            );
            continue;
        }
        if let Err(e) = p.block(&b) {
            p.errors.push(e);
        }
    }
    if p.errors.is_empty() {
        Ok((p.cfg, p.warnings))
    } else {
        Err(p.errors)
    }
}

type R<T> = Result<T, ConfigError>;

struct Parser {
    cfg: Config,
    errors: Vec<ConfigError>,
    warnings: Vec<Warning>,
}

fn error(line: &Line<'_>, word: Option<&Word<'_>>, msg: impl Into<String>) -> ConfigError {
    let (col, width) = match word {
        Some(w) => (w.col, w.text.chars().count()),
        None => (line.text.chars().count() + 1, 1),
    };
    ConfigError {
        line: line.no,
        column: col,
        message: msg.into(),
        source_line: line.text.to_string(),
        width,
    }
}

/// Cursor over a line's words.
struct Words<'l, 'a> {
    line: &'l Line<'a>,
    at: usize,
}

impl<'l, 'a> Words<'l, 'a> {
    fn new(line: &'l Line<'a>, at: usize) -> Self {
        Words { line, at }
    }
    fn peek(&self) -> Option<&'l Word<'a>> {
        self.line.words.get(self.at)
    }
    fn next(&mut self, what: &str) -> R<&'l Word<'a>> {
        match self.line.words.get(self.at) {
            Some(w) => {
                self.at += 1;
                Ok(w)
            }
            None => Err(error(
                self.line,
                None,
                format!("incomplete command: {what} expected"),
            )),
        }
    }
    fn keyword(&mut self, options: &[&str]) -> R<&'l Word<'a>> {
        let w = self.next(&options.join(" or "))?;
        if options.iter().any(|o| w.text.eq_ignore_ascii_case(o)) {
            Ok(w)
        } else {
            Err(self.err(
                w,
                format!("expected {}, found {:?}", options.join(" or "), w.text),
            ))
        }
    }
    fn end(&self) -> R<()> {
        match self.peek() {
            None => Ok(()),
            Some(w) => Err(self.err(
                w,
                format!("unexpected {:?} at the end of the command", w.text),
            )),
        }
    }
    fn err(&self, w: &Word<'_>, msg: impl Into<String>) -> ConfigError {
        error(self.line, Some(w), msg)
    }
    fn name_ref(&mut self, what: &str) -> R<NameRef> {
        let w = self.next(what)?;
        Ok(NameRef {
            name: w.text.to_string(),
            line: self.line.no,
            col: w.col,
        })
    }
    fn number<T: std::str::FromStr>(&mut self, what: &str) -> R<(T, &'l Word<'a>)> {
        let w = self.next(what)?;
        match w.text.parse() {
            Ok(v) => Ok((v, w)),
            Err(_) => Err(self.err(w, format!("{what} expected, found {:?}", w.text))),
        }
    }
    fn ipv4(&mut self, what: &str) -> R<Ipv4Addr> {
        let w = self.next(what)?;
        w.text
            .parse()
            .map_err(|_| self.err(w, format!("{what}: {:?} is not an IPv4 address", w.text)))
    }
}

/// IOS wildcard mask → prefix length; only contiguous wildcards map to a
/// prefix (a selector in the SPD).
fn wildcard_len(wild: Ipv4Addr) -> Option<u8> {
    let w = u32::from(wild);
    (w.wrapping_add(1) & w == 0).then(|| 32 - (w.count_ones() as u8))
}

fn netmask_len(mask: Ipv4Addr) -> Option<u8> {
    wildcard_len(Ipv4Addr::from(!u32::from(mask)))
}

const TRANSFORMS: &str = "esp-des, esp-3des, esp-aes [128|192|256], esp-gcm [128|256], \
esp-null, esp-md5-hmac, esp-sha-hmac, esp-sha256-hmac, esp-sha384-hmac, esp-sha512-hmac";

const IKE_LATER: &str = "is IKE configuration, which this build does not support yet \
(it arrives with the IKEv1/IKEv2 issues); use `crypto map NAME SEQ ipsec-manual` with \
`set session-key`";

impl Parser {
    fn err_at(&mut self, line: &Line<'_>, word: usize, msg: impl Into<String>) {
        let e = error(line, line.words.get(word), msg);
        self.errors.push(e);
    }

    fn block(&mut self, b: &Block<'_>) -> R<()> {
        let h = &b.head;
        let w: Vec<&str> = h.words.iter().map(|w| w.text).collect();
        match w.as_slice() {
            ["hostname", ..] => {
                let mut c = Words::new(h, 1);
                self.cfg.hostname = Some(c.next("host name")?.text.to_string());
                c.end()?;
                self.no_body(b)
            }
            ["end"] => self.no_body(b),
            ["access-list", ..] => {
                self.numbered_acl(h)?;
                self.no_body(b)
            }
            ["ip", "access-list", kind, ..] if *kind == "extended" || *kind == "standard" => {
                self.named_acl(b, *kind == "standard", false)
            }
            ["ipv6", "access-list", ..] => self.named_acl(b, false, true),
            ["crypto", "ipsec", "transform-set", ..] => self.transform_set(b),
            ["crypto", "map", _, _, "ipsec-manual", ..] => self.crypto_map(b),
            ["crypto", "map", ..]
            | ["crypto", "isakmp", ..]
            | ["crypto", "ikev2", ..]
            | ["crypto", "dynamic-map", ..]
            | ["crypto", "keyring", ..]
            | ["crypto", "ipsec", "profile", ..]
            | ["route-map", ..] => Err(error(
                h,
                h.words.first(),
                format!("`{}` {IKE_LATER}", w[..w.len().min(3)].join(" ")),
            )),
            ["interface", ..] => self.interface(b),
            ["ip", "nat", "inside", "source", ..] => {
                self.nat(h)?;
                self.no_body(b)
            }
            ["ip", "route", ..] | ["ipv6", "route", ..] => {
                self.cfg.routes.push((h.no, h.text.trim().to_string()));
                self.warnings.push(Warning {
                    line: h.no,
                    message: "routes come from the kernel's table (`ip route`); this line is kept but not applied".into(),
                });
                self.no_body(b)
            }
            _ => Err(error(
                h,
                h.words.first(),
                format!("unknown or unsupported command {:?}", h.text.trim()),
            )),
        }
    }

    fn no_body(&mut self, b: &Block<'_>) -> R<()> {
        match b.body.first() {
            None => Ok(()),
            Some(l) => Err(error(
                l,
                l.words.first(),
                format!("`{}` takes no indented sub-commands", b.head.words[0].text),
            )),
        }
    }

    fn acl_mut(&mut self, name: &str, line: usize, ipv6: bool) -> &mut Acl {
        if let Some(i) = self.cfg.acls.iter().position(|a| a.name == name) {
            return &mut self.cfg.acls[i];
        }
        self.cfg.acls.push(Acl {
            name: name.to_string(),
            line,
            ipv6,
            entries: Vec::new(),
        });
        self.cfg.acls.last_mut().expect("just pushed")
    }

    /// `access-list N permit|deny ...`: 1-99 and 1300-1999 standard,
    /// 100-199 and 2000-2699 extended.
    fn numbered_acl(&mut self, l: &Line<'_>) -> R<()> {
        let mut c = Words::new(l, 1);
        let (n, nw): (u32, _) = c.number("access list number")?;
        let standard = matches!(n, 1..=99 | 1300..=1999);
        let extended = matches!(n, 100..=199 | 2000..=2699);
        if !standard && !extended {
            return Err(c.err(
                nw,
                "access list number must be 1-99 or 1300-1999 (standard) or 100-199 or 2000-2699 (extended)",
            ));
        }
        if c.peek().is_some_and(|w| w.text == "remark") {
            return Ok(());
        }
        let entry = acl_entry(&mut c, standard, false)?;
        self.acl_mut(&n.to_string(), l.no, false)
            .entries
            .push(entry);
        Ok(())
    }

    fn named_acl(&mut self, b: &Block<'_>, standard: bool, ipv6: bool) -> R<()> {
        let mut c = Words::new(&b.head, if ipv6 { 2 } else { 3 });
        let name = c.next("access list name")?.text.to_string();
        c.end()?;
        self.acl_mut(&name, b.head.no, ipv6);
        for l in &b.body {
            let mut c = Words::new(l, 0);
            if c.peek().is_some_and(|w| w.text == "sequence") {
                c.next("sequence")?;
                c.number::<u32>("sequence number")?;
            }
            if c.peek().is_some_and(|w| w.text == "remark") {
                continue;
            }
            match acl_entry(&mut c, standard, ipv6) {
                Ok(e) => self.acl_mut(&name, b.head.no, ipv6).entries.push(e),
                Err(e) => self.errors.push(e),
            }
        }
        Ok(())
    }

    fn transform_set(&mut self, b: &Block<'_>) -> R<()> {
        let mut c = Words::new(&b.head, 3);
        let name = c.next("transform set name")?.text.to_string();
        let mut enc = None;
        let mut auth = AuthAlg::None;
        while let Some(w) = c.peek() {
            c.at += 1;
            let bits = |c: &mut Words<'_, '_>| -> Option<u32> {
                let v = c.peek().and_then(|w| w.text.parse().ok());
                if v.is_some() {
                    c.at += 1;
                }
                v
            };
            let alg = match w.text {
                "esp-des" => Some(EncAlg::DesCbc),
                "esp-3des" => Some(EncAlg::TripleDesCbc),
                "esp-null" => Some(EncAlg::Null),
                "esp-aes" => Some(match bits(&mut c) {
                    None | Some(128) => EncAlg::AesCbc128,
                    Some(192) => EncAlg::AesCbc192,
                    Some(256) => EncAlg::AesCbc256,
                    Some(n) => {
                        return Err(c.err(w, format!("esp-aes takes 128, 192 or 256 bits, not {n}")))
                    }
                }),
                "esp-gcm" => Some(match bits(&mut c) {
                    None | Some(128) => EncAlg::AesGcm128(GcmIcv::B16),
                    Some(256) => EncAlg::AesGcm256(GcmIcv::B16),
                    Some(n) => {
                        return Err(c.err(w, format!("esp-gcm takes 128 or 256 bits, not {n}")))
                    }
                }),
                _ => None,
            };
            if let Some(a) = alg {
                if enc.is_some() {
                    return Err(c.err(w, "a transform set has one encryption transform"));
                }
                enc = Some(a);
                continue;
            }
            let a = match w.text {
                "esp-md5-hmac" => AuthAlg::HmacMd5_96,
                "esp-sha-hmac" => AuthAlg::HmacSha1_96,
                "esp-sha256-hmac" => AuthAlg::HmacSha256_128,
                "esp-sha384-hmac" => AuthAlg::HmacSha384_192,
                "esp-sha512-hmac" => AuthAlg::HmacSha512_256,
                "ah-md5-hmac" | "ah-sha-hmac" | "ah-sha256-hmac" | "comp-lzs" => {
                    return Err(c.err(
                        w,
                        format!("{} is not supported: Espada does ESP only", w.text),
                    ))
                }
                other => {
                    return Err(c.err(
                        w,
                        format!("unknown transform {other:?}; expected one of {TRANSFORMS}"),
                    ))
                }
            };
            if auth != AuthAlg::None {
                return Err(c.err(w, "a transform set has one integrity transform"));
            }
            auth = a;
        }
        let Some(enc) = enc else {
            return Err(error(
                &b.head,
                None,
                format!("the transform set needs an encryption transform ({TRANSFORMS})"),
            ));
        };
        let gcm = matches!(enc, EncAlg::AesGcm128(_) | EncAlg::AesGcm256(_));
        if gcm && auth != AuthAlg::None {
            return Err(error(
                &b.head,
                None,
                "esp-gcm authenticates by itself: drop the -hmac transform",
            ));
        }
        if !gcm && auth == AuthAlg::None {
            self.warnings.push(Warning {
                line: b.head.no,
                message: format!("transform set {name} has no integrity transform: packets are not authenticated"),
            });
        }
        if enc.is_insecure() {
            self.warnings.push(Warning {
                line: b.head.no,
                message: format!(
                    "transform set {name} uses {}, which is insecure (legacy only)",
                    enc.ios_name()
                ),
            });
        }
        let mut tunnel = true;
        for l in &b.body {
            let mut c = Words::new(l, 0);
            c.keyword(&["mode"])?;
            tunnel = c.keyword(&["tunnel", "transport"])?.text == "tunnel";
            c.end()?;
        }
        if self.cfg.transform_set(&name).is_some() {
            return Err(error(
                &b.head,
                b.head.words.get(3),
                format!("transform set {name} is defined twice"),
            ));
        }
        self.cfg.transform_sets.push(TransformSet {
            name,
            line: b.head.no,
            algs: TransformSetAlgs { enc, auth },
            tunnel,
        });
        Ok(())
    }

    fn crypto_map(&mut self, b: &Block<'_>) -> R<()> {
        let mut c = Words::new(&b.head, 2);
        let name = c.next("crypto map name")?.text.to_string();
        let (seq, sw): (u32, _) = c.number("sequence number")?;
        if !(1..=65535).contains(&seq) {
            return Err(c.err(sw, "sequence number must be 1-65535"));
        }
        c.keyword(&["ipsec-manual"])?;
        c.end()?;
        if self
            .cfg
            .crypto_maps
            .iter()
            .any(|m| m.name == name && m.seq == seq)
        {
            return Err(c.err(sw, format!("crypto map {name} {seq} is defined twice")));
        }
        let mut e = CryptoMapEntry {
            name,
            seq,
            line: b.head.no,
            peer: None,
            transform_set: None,
            acl: None,
            keys: Vec::new(),
        };
        for l in &b.body {
            if let Err(err) = crypto_map_line(&mut e, l) {
                self.errors.push(err);
            }
        }
        self.cfg.crypto_maps.push(e);
        Ok(())
    }

    fn interface(&mut self, b: &Block<'_>) -> R<()> {
        let mut c = Words::new(&b.head, 1);
        let name = c.next("interface name")?.text.to_string();
        c.end()?;
        if self.cfg.interface(&name).is_some() {
            return Err(error(
                &b.head,
                b.head.words.get(1),
                format!("interface {name} is configured twice"),
            ));
        }
        let mut i = InterfaceConfig {
            name,
            line: b.head.no,
            ..InterfaceConfig::default()
        };
        for l in &b.body {
            if let Err(e) = interface_line(&mut i, l) {
                self.errors.push(e);
            }
        }
        self.cfg.interfaces.push(i);
        Ok(())
    }

    /// `ip nat inside source list ACL interface IF overload`.
    fn nat(&mut self, l: &Line<'_>) -> R<()> {
        let mut c = Words::new(l, 4);
        let kind = c.keyword(&["list", "route-map", "static"])?;
        if kind.text != "list" {
            return Err(c.err(kind, format!("`ip nat inside source {}` is not supported yet; use `list ACL interface IF overload`", kind.text)));
        }
        let acl = c.name_ref("access list")?;
        let kw = c.keyword(&["interface", "pool"])?;
        if kw.text == "pool" {
            return Err(c.err(
                kw,
                "NAT pools are not supported: use `interface IF overload` (PAT)",
            ));
        }
        let interface = c.name_ref("interface")?;
        match c.peek() {
            Some(w) if w.text == "overload" => c.at += 1,
            _ => return Err(error(l, c.peek(), "only PAT is supported: add `overload`")),
        }
        c.end()?;
        self.cfg.nat.push(NatSource {
            line: l.no,
            acl,
            interface,
        });
        Ok(())
    }
}

fn crypto_map_line(e: &mut CryptoMapEntry, l: &Line<'_>) -> R<()> {
    let mut c = Words::new(l, 0);
    let first = c.next("a crypto map sub-command")?;
    match first.text {
        "description" => return Ok(()),
        "match" => {
            c.keyword(&["address"])?;
            e.acl = Some(c.name_ref("access list")?);
        }
        "set" => {
            let what = c.keyword(&["peer", "transform-set", "session-key", "pfs", "security-association"])?;
            match what.text {
                "peer" => {
                    let w = c.next("peer address")?;
                    let a: IpAddr = w
                        .text
                        .parse()
                        .map_err(|_| c.err(w, format!("{:?} is not an IP address (peers are addresses in ipsec-manual maps)", w.text)))?;
                    if e.peer.is_some() {
                        return Err(c.err(w, "an ipsec-manual crypto map entry has exactly one peer"));
                    }
                    e.peer = Some((a, l.no));
                }
                "transform-set" => {
                    e.transform_set = Some(c.name_ref("transform set")?);
                    if let Some(w) = c.peek() {
                        return Err(c.err(w, "an ipsec-manual entry takes exactly one transform set"));
                    }
                }
                "session-key" => e.keys.push(session_key(&mut c, l)?),
                _ => return Err(c.err(what, format!("`set {}` belongs to IKE-negotiated maps ({IKE_LATER})", what.text))),
            }
        }
        other => {
            return Err(c.err(first, format!("unknown crypto map sub-command {other:?}; expected set peer, set transform-set, set session-key, match address")))
        }
    }
    c.end()
}

fn hex(c: &mut Words<'_, '_>, what: &str) -> R<Zeroizing<Vec<u8>>> {
    let w = c.next(what)?;
    let t = w.text;
    if t.len() % 2 != 0 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(c.err(w, format!("{what} must be an even number of hex digits")));
    }
    let bytes = (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&t[i..i + 2], 16).unwrap_or(0))
        .collect();
    Ok(Zeroizing::new(bytes))
}

fn session_key(c: &mut Words<'_, '_>, l: &Line<'_>) -> R<SessionKey> {
    let dir = c.keyword(&["inbound", "outbound"])?;
    let proto = c.keyword(&["esp", "ah"])?;
    if proto.text == "ah" {
        return Err(c.err(proto, "AH is not supported: Espada does ESP only"));
    }
    let (spi, sw): (u32, _) = c.number("SPI")?;
    if spi < 256 {
        return Err(c.err(sw, "SPIs 0-255 are reserved (RFC 4303): use 256 or more"));
    }
    let mut cipher = Zeroizing::new(Vec::new());
    let mut authenticator = Zeroizing::new(Vec::new());
    while let Some(w) = c.peek() {
        match w.text {
            "cipher" => {
                c.at += 1;
                cipher = hex(c, "cipher key")?;
            }
            "authenticator" => {
                c.at += 1;
                authenticator = hex(c, "authenticator key")?;
            }
            other => {
                return Err(c.err(
                    w,
                    format!("expected cipher or authenticator, found {other:?}"),
                ))
            }
        }
    }
    Ok(SessionKey {
        line: l.no,
        direction: if dir.text == "inbound" {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        spi,
        cipher,
        authenticator,
    })
}

fn interface_line(i: &mut InterfaceConfig, l: &Line<'_>) -> R<()> {
    let mut c = Words::new(l, 0);
    let w: Vec<&str> = l.words.iter().map(|w| w.text).collect();
    match w.as_slice() {
        ["description", ..] => {
            i.description = Some(w[1..].join(" "));
            return Ok(());
        }
        ["shutdown"] => i.shutdown = true,
        ["no", "shutdown"] => i.shutdown = false,
        ["ip", "address", ..] => {
            c.at = 2;
            let a = c.ipv4("address")?;
            let mw = c.peek();
            let m = c.ipv4("netmask")?;
            let len = netmask_len(m)
                .ok_or_else(|| error(l, mw, format!("{m} is not a contiguous netmask")))?;
            i.addrs.push((IpAddr::V4(a), len));
            if let Some(w) = c.peek() {
                return Err(c.err(w, "secondary and DHCP addresses are not supported here: the kernel's addresses are used"));
            }
        }
        ["ipv6", "address", ..] => {
            c.at = 2;
            let pw = c.next("IPv6 prefix")?;
            let p = pw
                .text
                .split_once('/')
                .and_then(|(a, l)| Some((a.parse::<Ipv6Addr>().ok()?, l.parse::<u8>().ok()?)))
                .filter(|(_, l)| *l <= 128)
                .ok_or_else(|| c.err(pw, format!("{:?} is not an IPv6 address/length", pw.text)))?;
            i.addrs.push((IpAddr::V6(p.0), p.1));
        }
        ["ipv6", "enable"] => {}
        ["crypto", "map", ..] | ["ipv6", "crypto", "map", ..] => {
            c.at = if w[0] == "ipv6" { 3 } else { 2 };
            let m = c.name_ref("crypto map name")?;
            if i.crypto_map.as_ref().is_some_and(|old| old.name != m.name) {
                return Err(error(
                    l,
                    l.words.get(c.at - 1),
                    "an interface carries one crypto map",
                ));
            }
            i.crypto_map = Some(m);
        }
        ["ip", "nat", "inside"] => i.nat_inside = true,
        ["ip", "nat", "outside"] => i.nat_outside = true,
        ["tunnel", ..] => {
            return Err(error(
                l,
                l.words.first(),
                format!("tunnel interfaces (VTI) {IKE_LATER}"),
            ))
        }
        _ => {
            return Err(error(
                l,
                l.words.first(),
                format!(
                    "unknown or unsupported interface command {:?}",
                    l.text.trim()
                ),
            ))
        }
    }
    c.at = l.words.len();
    c.end()
}

fn v6_prefix(s: &str) -> Option<IpPrefix> {
    let (a, len) = s.split_once('/')?;
    let a: Ipv6Addr = a.parse().ok()?;
    IpPrefix::new(IpAddr::V6(a), len.parse().ok()?)
}

/// `permit|deny` and the rest of an ACL line.
fn acl_entry(c: &mut Words<'_, '_>, standard: bool, ipv6: bool) -> R<AclEntry> {
    let line = c.line.no;
    let action = c.keyword(&["permit", "deny"])?;
    let permit = action.text == "permit";
    if standard {
        let src = address(c, false)?;
        c.end()?;
        return Ok(AclEntry {
            line,
            permit,
            selector: TrafficSelector {
                src,
                dst: IpPrefix::any_v4(),
                proto: None,
                src_ports: PortRange::ANY,
                dst_ports: PortRange::ANY,
            },
        });
    }
    let pw = c.next("protocol")?;
    let proto = match pw.text {
        "ip" if !ipv6 => None,
        "ipv6" if ipv6 => None,
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" if !ipv6 => Some(1),
        "icmp" if ipv6 => Some(58),
        "esp" => Some(50),
        "ahp" => Some(51),
        "gre" => Some(47),
        n => Some(n.parse::<u8>().map_err(|_| {
            c.err(pw, format!("unknown protocol {n:?}; expected {} tcp udp icmp esp ahp gre or a number 0-255", if ipv6 { "ipv6" } else { "ip" }))
        })?),
    };
    let ports_ok = matches!(proto, Some(6) | Some(17));
    let src = address(c, ipv6)?;
    let src_ports = if ports_ok { ports(c)? } else { PortRange::ANY };
    let dst = address(c, ipv6)?;
    let dst_ports = if ports_ok { ports(c)? } else { PortRange::ANY };
    // IOS options that do not change what matches.
    while let Some(w) = c.peek() {
        match w.text {
            "log" | "log-input" => c.at += 1,
            "echo" | "echo-reply" if proto == Some(1) || proto == Some(58) => {
                return Err(c.err(w, "ICMP type matching is not supported in crypto ACLs"))
            }
            _ => break,
        }
    }
    c.end()?;
    Ok(AclEntry {
        line,
        permit,
        selector: TrafficSelector {
            src,
            dst,
            proto,
            src_ports,
            dst_ports,
        },
    })
}

fn address(c: &mut Words<'_, '_>, ipv6: bool) -> R<IpPrefix> {
    let w = c.next("address (any, host A, A WILDCARD)")?;
    if w.text == "any" {
        return Ok(if ipv6 {
            IpPrefix::any_v6()
        } else {
            IpPrefix::any_v4()
        });
    }
    if w.text == "host" {
        let aw = c.next("host address")?;
        let a: IpAddr = aw
            .text
            .parse()
            .map_err(|_| c.err(aw, format!("{:?} is not an address", aw.text)))?;
        if a.is_ipv6() != ipv6 {
            return Err(c.err(aw, "address family does not match the access list"));
        }
        return Ok(IpPrefix::host(a));
    }
    if ipv6 {
        return v6_prefix(w.text).ok_or_else(|| {
            c.err(
                w,
                format!("{:?} is not an IPv6 prefix (P/L, host A or any)", w.text),
            )
        });
    }
    let a: Ipv4Addr = w.text.parse().map_err(|_| {
        c.err(
            w,
            format!("expected any, host A or A WILDCARD, found {:?}", w.text),
        )
    })?;
    // Standard ACLs allow a bare address (a host).
    let wild = match c.peek().and_then(|x| x.text.parse::<Ipv4Addr>().ok()) {
        Some(m) => {
            let ww = c.next("wildcard")?;
            let len = wildcard_len(m).ok_or_else(|| {
                c.err(ww, format!("wildcard {m} is not contiguous: only prefix-shaped wildcards (0.0.0.255, ...) map to traffic selectors"))
            })?;
            Some((len, ww))
        }
        None => None,
    };
    let len = wild.map_or(32, |(l, _)| l);
    let p = IpPrefix::new(IpAddr::V4(a), len).ok_or_else(|| c.err(w, "bad prefix"))?;
    if p.addr() != IpAddr::V4(a) {
        return Err(c.err(
            w,
            format!(
                "{a} has bits set outside the wildcard: did you mean {}?",
                p.addr()
            ),
        ));
    }
    Ok(p)
}

fn ports(c: &mut Words<'_, '_>) -> R<PortRange> {
    let Some(w) = c.peek() else {
        return Ok(PortRange::ANY);
    };
    let op = w.text;
    if !matches!(op, "eq" | "lt" | "gt" | "range" | "neq") {
        return Ok(PortRange::ANY);
    }
    c.at += 1;
    let port = |c: &mut Words<'_, '_>| -> R<u16> {
        let pw = c.next("port")?;
        port_number(pw.text).ok_or_else(|| {
            c.err(
                pw,
                format!("{:?} is not a port number or known port name", pw.text),
            )
        })
    };
    let r = match op {
        "eq" => {
            let p = port(c)?;
            PortRange { lo: p, hi: p }
        }
        "lt" => PortRange {
            lo: 0,
            hi: port(c)?.saturating_sub(1),
        },
        "gt" => PortRange {
            lo: port(c)?.saturating_add(1),
            hi: u16::MAX,
        },
        "range" => {
            let lo = port(c)?;
            let hi = port(c)?;
            if hi < lo {
                return Err(error(
                    c.line,
                    c.line.words.get(c.at - 1),
                    "port range is backwards",
                ));
            }
            PortRange { lo, hi }
        }
        _ => {
            return Err(c.err(
                w,
                "`neq` cannot be expressed as a traffic selector range; use two lines",
            ))
        }
    };
    Ok(r)
}

fn port_number(s: &str) -> Option<u16> {
    s.parse().ok().or(match s {
        "www" | "http" => Some(80),
        "https" => Some(443),
        "telnet" => Some(23),
        "ssh" | "22" => Some(22),
        "domain" => Some(53),
        "isakmp" => Some(500),
        "non500-isakmp" => Some(4500),
        "ntp" => Some(123),
        "snmp" => Some(161),
        "ftp" => Some(21),
        "smtp" => Some(25),
        _ => None,
    })
}
