//! The IOS mode machine: which command family a line belongs to.
//!
//! IOS parses a config by *mode*, not by indentation: a command that opens
//! a block (`interface`, `crypto map ... ipsec-manual`, `ip access-list
//! extended`, ...) enters a sub-mode; each following line is tried in the
//! innermost open mode, then in its parents, and a line no sub-mode owns
//! leaves them all and runs in global mode. That is what happens when a
//! config is pasted into a router, and it is why the seeds' configs, whose
//! indentation was lost, still mean what they say. Espada does the same, so
//! indentation is optional and never changes the meaning; `exit` leaves one
//! mode explicitly and `end` ends the configuration.
//!
//! Errors are collected per line: a bad line is reported and parsing goes
//! on with the next one. When a block's opening line is bad, the lines of
//! its block are skipped (the opening line's error says so) instead of
//! each being reported as an unknown command.

use super::acl;
use super::crypto;
use super::cursor::{Cmd, PResult};
use super::error::{ConfigError, ErrorKind};
use super::ike::{self, IkeMode};
use super::interface;
use super::lexer::{lex, Line};
use super::misc;
use super::model::{AclKind, Config, CryptoMapKind};

/// A sub-mode (block) the parser is in. The index names the object the
/// block configures.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Interface(usize),
    CryptoMap(usize),
    TransformSet(usize),
    Acl(usize),
    RouteMap(usize),
    /// `line con 0` and friends: terminal settings, accepted with a warning.
    Line,
    Ike(IkeMode),
    /// A block whose opening line failed: its lines are skipped.
    Failed(Box<Mode>),
}

impl Mode {
    fn owns(&self, w: &[String]) -> bool {
        let first = w.first().map(String::as_str).unwrap_or("");
        match self {
            Mode::Interface(_) => interface::owns(w),
            Mode::CryptoMap(_) => {
                matches!(first, "set" | "match" | "description" | "reverse-route")
            }
            Mode::TransformSet(_) => first == "mode",
            Mode::Acl(_) => {
                matches!(first, "permit" | "deny" | "remark" | "sequence")
                    || (!first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
            }
            Mode::RouteMap(_) => matches!(first, "match" | "set" | "description"),
            Mode::Line => misc::line_mode_owns(w),
            Mode::Ike(m) => m.owns(w),
            Mode::Failed(m) => m.owns(w),
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Mode::Interface(_) => "interface (config-if)",
            Mode::CryptoMap(_) => "crypto map (config-crypto-map)",
            Mode::TransformSet(_) => "transform set (cfg-crypto-trans)",
            Mode::Acl(_) => "access list (config-ext-nacl)",
            Mode::RouteMap(_) => "route map (config-route-map)",
            Mode::Line => "line (config-line)",
            Mode::Ike(m) => m.describe(),
            Mode::Failed(m) => m.describe(),
        }
    }
}

/// Parses a whole config. Returns every error found (not only the first),
/// or the model with its warnings.
pub fn parse(src: &str) -> Result<Config, Vec<ConfigError>> {
    let lines = lex(src);
    let mut cfg = Config {
        lines: lines.iter().map(|l| l.redacted.clone()).collect(),
        has_secrets: lines.iter().any(Line::has_secret),
        ..Config::default()
    };
    let mut errors = Vec::new();
    let mut stack: Vec<Mode> = Vec::new();
    let mut end_line: Option<u32> = None;
    for line in lines.iter().filter(|l| !l.is_empty_or_comment()) {
        let mut cmd = Cmd::new(line);
        if let Some(n) = end_line {
            errors.push(cmd.err_here(
                ErrorKind::Syntax,
                format!("text after \"end\" (line {n}); the configuration ends there"),
            ));
            break;
        }
        let words = line.keywords();
        match words.as_slice() {
            [w] if w == "end" => {
                end_line = Some(line.number);
                continue;
            }
            [w] if w == "exit" => {
                if stack.pop().is_none() {
                    errors.push(cmd.err_here(ErrorKind::Syntax, "\"exit\" outside any block"));
                }
                continue;
            }
            _ => {}
        }
        let result = match stack.iter().rposition(|m| m.owns(&words)) {
            Some(i) => {
                stack.truncate(i + 1);
                let mode = stack[i].clone();
                in_mode(&mut cmd, &mut cfg, &mode)
            }
            None => {
                let left = stack.last().map(Mode::describe);
                if line.indent > 0 {
                    cfg.warnings.push(indent_warning(&cmd, left));
                }
                stack.clear();
                global(&mut cmd, &mut cfg, &words, left)
            }
        };
        match result {
            Ok(Some(m)) => stack.push(m),
            Ok(None) => {}
            Err(mut e) => {
                if let Some(m) = opener_mode(&words) {
                    if stack.is_empty() {
                        e.message.push_str("; the lines of its block are skipped");
                        stack.push(Mode::Failed(Box::new(m)));
                    }
                }
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(cfg)
    } else {
        Err(errors)
    }
}

/// An indented line that is not a sub-command of any open block: it runs
/// in global mode (and closes the blocks), as IOS would, but the
/// indentation says its author meant otherwise.
fn indent_warning(cmd: &Cmd<'_, '_>, left: Option<&str>) -> super::error::Warning {
    let message = match left {
        Some(mode) => format!(
            "indented like a sub-command, but this is not a command of the {mode} block \
             above: it runs in global mode and closes the block"
        ),
        None => "indented like a sub-command, but no block is open: it runs in global mode".into(),
    };
    super::error::Warning {
        span: cmd.line_span(),
        message,
        source_line: cmd.line.redacted.clone(),
    }
}

/// The mode a block-opening command would enter, for skipping its block
/// when the opening line is bad.
fn opener_mode(w: &[String]) -> Option<Mode> {
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    match (at(0), at(1), at(2)) {
        ("interface", _, _) => Some(Mode::Interface(0)),
        ("crypto", "map", _) if w.len() > 3 => Some(Mode::CryptoMap(0)),
        ("crypto", "ipsec", "transform-set") => Some(Mode::TransformSet(0)),
        ("crypto", "ipsec", "profile") => Some(Mode::Ike(IkeMode::IpsecProfile(0))),
        ("crypto", "dynamic-map", _) => Some(Mode::Ike(IkeMode::DynamicMap(0))),
        ("crypto", "isakmp", "policy") => Some(Mode::Ike(IkeMode::IsakmpPolicy(0))),
        ("crypto", "ikev2", "proposal") => Some(Mode::Ike(IkeMode::Ikev2Proposal(0))),
        ("crypto", "ikev2", "policy") => Some(Mode::Ike(IkeMode::Ikev2Policy(0))),
        ("crypto", "ikev2", "keyring") => Some(Mode::Ike(IkeMode::Ikev2Keyring(0))),
        ("crypto", "ikev2", "profile") => Some(Mode::Ike(IkeMode::Ikev2Profile(0))),
        ("ip", "access-list", _) | ("ipv6", "access-list", _) => Some(Mode::Acl(0)),
        ("route-map", _, _) => Some(Mode::RouteMap(0)),
        _ => None,
    }
}

/// A line owned by an open block.
fn in_mode(cmd: &mut Cmd<'_, '_>, cfg: &mut Config, mode: &Mode) -> PResult<Option<Mode>> {
    match *mode {
        Mode::Interface(i) => interface::parse_line(cmd, cfg, i).map(|_| None),
        Mode::CryptoMap(i) => {
            let entry = &mut cfg.crypto_maps[i];
            match &mut entry.kind {
                CryptoMapKind::Manual(m) => {
                    crypto::parse_manual_line(cmd, m, &mut entry.description)
                }
                CryptoMapKind::Isakmp(e) => ike::parse_isakmp_entry_line(cmd, e, false),
            }
            .map(|_| None)
        }
        Mode::TransformSet(i) => {
            crypto::parse_transform_mode(cmd, &mut cfg.transform_sets[i]).map(|_| None)
        }
        Mode::Acl(i) => acl::parse_block_line(cmd, cfg, i).map(|_| None),
        Mode::RouteMap(i) => misc::parse_route_map_line(cmd, &mut cfg.route_maps[i]).map(|_| None),
        Mode::Line | Mode::Failed(_) => Ok(None),
        Mode::Ike(m) => match m {
            IkeMode::IsakmpPolicy(i) => {
                ike::parse_isakmp_policy_line(cmd, &mut cfg.ike.isakmp_policies[i]).map(|_| None)
            }
            IkeMode::IpsecProfile(i) => {
                ike::parse_ipsec_profile_line(cmd, &mut cfg.ike.ipsec_profiles[i]).map(|_| None)
            }
            IkeMode::DynamicMap(i) => {
                ike::parse_isakmp_entry_line(cmd, &mut cfg.ike.dynamic_maps[i].entry, false)
                    .map(|_| None)
            }
            _ => ike::parse_ikev2_line(cmd, &mut cfg.ike, m).map(|o| o.map(Mode::Ike)),
        },
    }
}

const GLOBAL_COMMANDS: &str = "hostname, interface, access-list, ip access-list, \
     ipv6 access-list, crypto ipsec transform-set, crypto map, ip nat inside source, \
     route-map, ip route, ipv6 route, crypto isakmp, crypto ikev2, crypto ipsec profile, \
     crypto dynamic-map, end";

/// A line in global configuration mode. `left` names the block the line
/// just left, for the unknown-command message.
fn global(
    cmd: &mut Cmd<'_, '_>,
    cfg: &mut Config,
    w: &[String],
    left: Option<&str>,
) -> PResult<Option<Mode>> {
    if let Some(why) = misc::global_housekeeping(w) {
        cfg.warnings.push(misc::ignored(cmd, why));
        return Ok(None);
    }
    let first = cmd.word("a command")?;
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    match first.text.to_ascii_lowercase().as_str() {
        "hostname" => misc::parse_hostname(cmd, cfg).map(|_| None),
        "interface" => interface::parse_interface(cmd, cfg).map(|i| Some(Mode::Interface(i))),
        "access-list" => acl::parse_numbered(cmd, cfg).map(|_| None),
        "route-map" => misc::parse_route_map(cmd, cfg).map(|i| Some(Mode::RouteMap(i))),
        "line" => {
            cmd.keyword(&["con", "console", "aux", "vty"])?;
            cfg.warnings.push(misc::ignored(
                cmd,
                "espada has no terminal lines (its sub-commands are ignored too)",
            ));
            Ok(Some(Mode::Line))
        }
        "ip" => match cmd.keyword(&["access-list", "route", "nat"])? {
            "access-list" => named_acl(cmd, cfg, false),
            "route" => misc::parse_ip_route(cmd, cfg).map(|_| None),
            _ => misc::parse_ip_nat(cmd, cfg).map(|_| None),
        },
        "ipv6" => match cmd.keyword(&["access-list", "route"])? {
            "access-list" => named_acl(cmd, cfg, true),
            _ => misc::parse_ipv6_route(cmd, cfg).map(|_| None),
        },
        "crypto" => match cmd.keyword(&[
            "map",
            "ipsec",
            "isakmp",
            "ikev2",
            "dynamic-map",
            "key",
            "pki",
            "ca",
        ])? {
            "map" => crypto::parse_crypto_map(cmd, cfg).map(|i| Some(Mode::CryptoMap(i))),
            "ipsec" => match cmd.keyword(&[
                "transform-set",
                "profile",
                "security-association",
                "df-bit",
                "nat-transparency",
            ])? {
                "transform-set" => {
                    crypto::parse_transform_set(cmd, cfg).map(|i| Some(Mode::TransformSet(i)))
                }
                "profile" => {
                    ike::parse_ipsec_profile(cmd, &mut cfg.ike).map(|m| Some(Mode::Ike(m)))
                }
                "security-association" => {
                    ike::parse_global_sa_lifetime(cmd, &mut cfg.ike).map(|_| None)
                }
                kw => Err(cmd.err_at(
                    &cmd.line.tokens[2],
                    ErrorKind::NotSupportedYet,
                    format!("crypto ipsec {kw} is not supported yet"),
                )),
            },
            "isakmp" => ike::parse_isakmp(cmd, &mut cfg.ike).map(|o| o.map(Mode::Ike)),
            "ikev2" => ike::parse_ikev2(cmd, &mut cfg.ike).map(|o| o.map(Mode::Ike)),
            "dynamic-map" => ike::parse_dynamic_map(cmd, &mut cfg.ike).map(|m| Some(Mode::Ike(m))),
            kw => Err(cmd.err_at(
                &cmd.line.tokens[1],
                ErrorKind::NotSupportedYet,
                format!(
                    "crypto {kw} is not supported yet: espada authenticates peers with \
                     pre-shared keys only"
                ),
            )),
        },
        _ => {
            let mut msg = format!("unknown command \"{}\"", first.text);
            if let Some(mode) = left {
                msg.push_str(&format!(
                    " (it is not a command of the {mode} block above either)"
                ));
            }
            if at(0) == "tunnel-group" || at(0) == "nameif" || at(0) == "nat" {
                msg.push_str("; this looks like Cisco ASA/PIX syntax, which espada does not speak");
            }
            msg.push_str(&format!("; expected one of {GLOBAL_COMMANDS}"));
            Err(cmd.err_at(&first, ErrorKind::UnknownCommand, msg))
        }
    }
}

/// `ip access-list standard|extended NAME` / `ipv6 access-list NAME`.
fn named_acl(cmd: &mut Cmd<'_, '_>, cfg: &mut Config, v6: bool) -> PResult<Option<Mode>> {
    let kind = if v6 {
        AclKind::Ipv6
    } else {
        match cmd.peek_kw().as_deref() {
            Some("standard") => {
                cmd.pos += 1;
                AclKind::Standard
            }
            Some("extended") => {
                cmd.pos += 1;
                AclKind::Extended
            }
            Some("resequence") | Some("logging") | Some("log-update") | Some("role-based") => {
                return Err(cmd.err_here(
                    ErrorKind::NotSupportedYet,
                    "this ip access-list command is not supported yet",
                ))
            }
            _ => return Err(cmd.expected(&["standard", "extended"])),
        }
    };
    let span = cmd.line_span();
    let name = cmd.name("access list name")?;
    cmd.end()?;
    if !v6 {
        if let Some(k) = name.value.parse::<u64>().ok().and_then(acl::numbered_kind) {
            if k != kind {
                return Err(cmd.err_span(
                    name.span,
                    &name.value,
                    ErrorKind::InvalidValue,
                    format!(
                        "access list number {} is a {} list number",
                        name.value,
                        k.describe()
                    ),
                ));
            }
        }
    }
    acl::acl_index(cfg, &name.value, kind, span, cmd).map(|i| Some(Mode::Acl(i)))
}
