//! Access lists: numbered (`access-list N ...`), named
//! (`ip access-list standard|extended NAME` blocks) and IPv6
//! (`ipv6 access-list NAME` blocks).
//!
//! Espada's policy and NAT tables match prefixes (RFC 4301 traffic
//! selectors), so an IOS wildcard mask must be contiguous (`0.0.0.255`) to
//! become one; a non-contiguous wildcard is an error that says so rather
//! than a silently different match.

use std::net::IpAddr;

use dataplane::spd::{IpPrefix, PortRange};

use super::cursor::{one_of, Cmd, PResult};
use super::error::{ErrorKind, Span, Warning};
use super::model::{Acl, AclAction, AclEntry, AclKind, Config};

/// Which kind a numbered ACL is, from its number (IOS ranges).
pub fn numbered_kind(n: u64) -> Option<AclKind> {
    match n {
        1..=99 | 1300..=1999 => Some(AclKind::Standard),
        100..=199 | 2000..=2699 => Some(AclKind::Extended),
        _ => None,
    }
}

/// `access-list N remark ...` / `access-list N permit|deny ...`; `access-list`
/// already consumed.
pub fn parse_numbered(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<()> {
    let start = cmd.here();
    let n = cmd.number("access list number", 1..=2699)?;
    let Some(kind) = numbered_kind(n.value) else {
        return Err(cmd.err_span(
            n.span,
            &n.value.to_string(),
            ErrorKind::InvalidValue,
            format!(
                "access list {} is neither a standard (1-99, 1300-1999) nor an extended \
                 (100-199, 2000-2699) IP access list",
                n.value
            ),
        ));
    };
    if cmd.eat("remark") {
        return Ok(());
    }
    let entry = parse_entry(cmd, kind, &mut cfg.warnings)?;
    let name = n.value.to_string();
    let idx = acl_index(cfg, &name, kind, start, cmd)?;
    cfg.acls[idx].entries.push(entry);
    Ok(())
}

/// Finds or creates ACL `name` of `kind`; an existing ACL of another kind
/// is an error (IOS refuses to mix them too).
pub fn acl_index(
    cfg: &mut Config,
    name: &str,
    kind: AclKind,
    span: Span,
    cmd: &Cmd<'_, '_>,
) -> PResult<usize> {
    if let Some(i) = cfg.acls.iter().position(|a| a.name == name) {
        let existing = cfg.acls[i].kind;
        if existing != kind {
            return Err(cmd.err_span(
                span,
                name,
                ErrorKind::Duplicate,
                format!(
                    "access list {name} is already a {} list (line {}); it cannot also be {}",
                    existing.describe(),
                    cfg.acls[i].span.line,
                    kind.describe()
                ),
            ));
        }
        return Ok(i);
    }
    cfg.acls.push(Acl {
        name: name.to_string(),
        kind,
        span,
        entries: Vec::new(),
    });
    Ok(cfg.acls.len() - 1)
}

/// A line inside a named ACL block: `[SEQ] permit|deny ...` or `remark`.
pub fn parse_block_line(cmd: &mut Cmd<'_, '_>, cfg: &mut Config, acl: usize) -> PResult<()> {
    let kind = cfg.acls[acl].kind;
    // IOS shows named ACL lines with sequence numbers (`10 permit ...`) and
    // IPv6 ones as `sequence 10 permit ...`; the file order is the order.
    if cmd.eat("sequence")
        || cmd
            .peek()
            .is_some_and(|t| t.text.bytes().all(|b| b.is_ascii_digit()))
    {
        cmd.number("sequence number", 1..=2_147_483_647)?;
    }
    if cmd.eat("remark") {
        return Ok(());
    }
    let entry = parse_entry(cmd, kind, &mut cfg.warnings)?;
    cfg.acls[acl].entries.push(entry);
    Ok(())
}

/// `permit|deny ...` of any ACL kind.
pub fn parse_entry(
    cmd: &mut Cmd<'_, '_>,
    kind: AclKind,
    warnings: &mut Vec<Warning>,
) -> PResult<AclEntry> {
    let span = cmd.line_span();
    let action = match cmd.keyword(&["permit", "deny"])? {
        "permit" => AclAction::Permit,
        _ => AclAction::Deny,
    };
    let entry = match kind {
        AclKind::Standard => {
            let src = v4_spec(cmd, true, warnings)?;
            AclEntry {
                span,
                action,
                protocol: None,
                src,
                src_ports: PortRange::ANY,
                dst: IpPrefix::any_v4(),
                dst_ports: PortRange::ANY,
            }
        }
        AclKind::Extended | AclKind::Ipv6 => {
            let v6 = kind == AclKind::Ipv6;
            let protocol = protocol(cmd, v6)?;
            let ports = matches!(protocol, Some(6) | Some(17) | Some(132));
            let src = addr_spec(cmd, v6, warnings)?;
            let src_ports = if ports {
                port_spec(cmd)?
            } else {
                PortRange::ANY
            };
            let dst = addr_spec(cmd, v6, warnings)?;
            let dst_ports = if ports {
                port_spec(cmd)?
            } else {
                PortRange::ANY
            };
            AclEntry {
                span,
                action,
                protocol,
                src,
                src_ports,
                dst,
                dst_ports,
            }
        }
    };
    trailing_options(cmd, entry.protocol, warnings)?;
    Ok(entry)
}

const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ipinip", 4),
    ("tcp", 6),
    ("udp", 17),
    ("gre", 47),
    ("esp", 50),
    ("ahp", 51),
    ("eigrp", 88),
    ("ospf", 89),
    ("nos", 94),
    ("pim", 103),
    ("pcp", 108),
    ("sctp", 132),
];

fn protocol(cmd: &mut Cmd<'_, '_>, v6: bool) -> PResult<Option<u8>> {
    let t = cmd.word("a protocol (ip, tcp, udp, icmp, esp, ... or a number)")?;
    let w = t.text.to_ascii_lowercase();
    let any = if v6 { "ipv6" } else { "ip" };
    if w == any {
        return Ok(None);
    }
    if v6 && w == "icmp" {
        return Ok(Some(58));
    }
    if let Some(&(_, p)) = PROTOCOLS.iter().find(|(n, _)| *n == w) {
        return Ok(Some(p));
    }
    if let Ok(p) = w.parse::<u8>() {
        return Ok(Some(p));
    }
    let mut names = vec![any];
    names.extend(PROTOCOLS.iter().map(|(n, _)| *n));
    Err(cmd.err_at(
        &t,
        ErrorKind::Syntax,
        format!(
            "unknown protocol \"{}\"; expected {} or a number 0-255",
            t.text,
            one_of(&names)
        ),
    ))
}

/// `any`, `host A`, or `A WILDCARD` (IPv4) / `P/L` (IPv6).
fn addr_spec(cmd: &mut Cmd<'_, '_>, v6: bool, warnings: &mut Vec<Warning>) -> PResult<IpPrefix> {
    if v6 {
        v6_spec(cmd)
    } else {
        v4_spec(cmd, false, warnings)
    }
}

fn v4_spec(
    cmd: &mut Cmd<'_, '_>,
    standard: bool,
    warnings: &mut Vec<Warning>,
) -> PResult<IpPrefix> {
    if cmd.eat("any") {
        return Ok(IpPrefix::any_v4());
    }
    if cmd.eat("host") {
        let a = cmd.ipv4("host address")?;
        return Ok(IpPrefix::host(IpAddr::V4(a.value)));
    }
    if cmd.peek().is_some_and(|t| t.text.contains('/')) {
        let t = cmd.word("address")?;
        return Err(cmd.err_at(
            &t,
            ErrorKind::Syntax,
            format!(
                "IPv4 access lists take an address and a wildcard mask (10.0.0.0 0.0.0.255), \
                 not \"{}\"",
                t.text
            ),
        ));
    }
    let a = cmd.ipv4("an address, \"host A\" or \"any\"")?;
    // A standard ACL line may give a bare address: a host.
    let no_wildcard = cmd
        .peek()
        .is_none_or(|t| t.text.parse::<std::net::Ipv4Addr>().is_err());
    if standard && no_wildcard {
        return Ok(IpPrefix::host(IpAddr::V4(a.value)));
    }
    let w = cmd.ipv4("wildcard mask")?;
    let bits = u32::from(w.value);
    if bits.count_ones() != bits.trailing_ones() {
        let hint = if bits.leading_ones() + bits.trailing_zeros() == 32 {
            let inv = std::net::Ipv4Addr::from(!bits);
            format!(" (IOS ACLs take wildcard masks, not subnet masks: did you mean {inv}?)")
        } else {
            String::new()
        };
        return Err(cmd.err_span(
            w.span,
            &w.value.to_string(),
            ErrorKind::InvalidValue,
            format!(
                "wildcard mask {} is not contiguous: espada matches address prefixes, so a \
                 wildcard must be zeros followed by ones, like 0.0.0.255 for a /24{hint}",
                w.value
            ),
        ));
    }
    let len = 32 - bits.trailing_ones() as u8;
    let p = IpPrefix::new(IpAddr::V4(a.value), len).expect("len <= 32");
    if p.addr() != IpAddr::V4(a.value) {
        warnings.push(Warning {
            span: a.span,
            message: format!(
                "{} has bits set outside wildcard {}; it matches {p}, as IOS does",
                a.value, w.value
            ),
            source_line: cmd.line.redacted.clone(),
        });
    }
    Ok(p)
}

fn v6_spec(cmd: &mut Cmd<'_, '_>) -> PResult<IpPrefix> {
    if cmd.eat("any") {
        return Ok(IpPrefix::any_v6());
    }
    if cmd.eat("host") {
        let a = cmd.ipv6("host address")?;
        return Ok(IpPrefix::host(IpAddr::V6(a.value)));
    }
    let t = cmd.word("a prefix (P/L), \"host A\" or \"any\"")?;
    let parsed = t
        .text
        .split_once('/')
        .and_then(|(a, _)| a.parse::<std::net::Ipv6Addr>().ok())
        .and_then(|_| t.text.parse::<IpPrefix>().ok());
    match parsed {
        Some(p) => Ok(p),
        None => Err(cmd.err_at(
            &t,
            ErrorKind::Syntax,
            format!(
                "expected an IPv6 prefix such as fd00:a::/64, \"host A\" or \"any\", found \"{}\"",
                t.text
            ),
        )),
    }
}

/// IOS port names accepted in `eq`/`lt`/`gt`/`range`, plus `http`,
/// `https` and `ssh`, which ASA and IOS XE accept.
const PORT_NAMES: &[(&str, u16)] = &[
    ("bgp", 179),
    ("bootpc", 68),
    ("bootps", 67),
    ("domain", 53),
    ("ftp", 21),
    ("ftp-data", 20),
    ("http", 80),
    ("https", 443),
    ("isakmp", 500),
    ("non500-isakmp", 4500),
    ("ntp", 123),
    ("pop3", 110),
    ("smtp", 25),
    ("snmp", 161),
    ("ssh", 22),
    ("syslog", 514),
    ("telnet", 23),
    ("tftp", 69),
    ("www", 80),
];

fn port(cmd: &mut Cmd<'_, '_>) -> PResult<u16> {
    let t = cmd.word("a port number or name")?;
    let w = t.text.to_ascii_lowercase();
    if let Ok(p) = w.parse::<u16>() {
        return Ok(p);
    }
    if let Some(&(_, p)) = PORT_NAMES.iter().find(|(n, _)| *n == w) {
        return Ok(p);
    }
    let names: Vec<&str> = PORT_NAMES.iter().map(|(n, _)| *n).collect();
    Err(cmd.err_at(
        &t,
        ErrorKind::Syntax,
        format!(
            "expected a port number 0-65535 or one of the names {}; found \"{}\"",
            names.join(", "),
            t.text
        ),
    ))
}

/// An optional port match after an address: `eq`, `lt`, `gt`, `range`.
fn port_spec(cmd: &mut Cmd<'_, '_>) -> PResult<PortRange> {
    let Some(op) = cmd.peek_kw() else {
        return Ok(PortRange::ANY);
    };
    let op_tok = cmd.peek().expect("peeked");
    match op.as_str() {
        "eq" => {
            cmd.pos += 1;
            Ok(PortRange::single(port(cmd)?))
        }
        "lt" => {
            cmd.pos += 1;
            let p = port(cmd)?;
            if p == 0 {
                return Err(cmd.err_at(&op_tok, ErrorKind::InvalidValue, "lt 0 matches no port"));
            }
            Ok(PortRange { lo: 0, hi: p - 1 })
        }
        "gt" => {
            cmd.pos += 1;
            let p = port(cmd)?;
            if p == u16::MAX {
                return Err(cmd.err_at(
                    &op_tok,
                    ErrorKind::InvalidValue,
                    "gt 65535 matches no port",
                ));
            }
            Ok(PortRange {
                lo: p + 1,
                hi: u16::MAX,
            })
        }
        "range" => {
            cmd.pos += 1;
            let lo = port(cmd)?;
            let hi = port(cmd)?;
            if lo > hi {
                return Err(cmd.err_at(
                    &op_tok,
                    ErrorKind::InvalidValue,
                    format!(
                        "port range {lo} {hi} is empty: the first port must not exceed the second"
                    ),
                ));
            }
            Ok(PortRange { lo, hi })
        }
        "neq" => Err(cmd.err_at(
            &op_tok,
            ErrorKind::NotSupportedYet,
            "\"neq\" port matches are not supported yet: a traffic selector is one port range; \
             write two lines with \"lt\" and \"gt\" instead",
        )),
        _ => Ok(PortRange::ANY),
    }
}

/// What may follow the destination: `log` is accepted with a warning;
/// match options Espada does not implement are refused by name.
fn trailing_options(
    cmd: &mut Cmd<'_, '_>,
    protocol: Option<u8>,
    warnings: &mut Vec<Warning>,
) -> PResult<()> {
    while let Some(t) = cmd.peek() {
        let w = t.text.to_ascii_lowercase();
        match w.as_str() {
            "log" | "log-input" => {
                warnings.push(Warning {
                    span: cmd.span_of(&t),
                    message: format!("\"{w}\" is ignored: espada does not log ACL matches"),
                    source_line: cmd.line.redacted.clone(),
                });
                cmd.pos += 1;
            }
            "established" | "fragments" | "tos" | "precedence" | "dscp" | "time-range"
            | "option" | "ttl" | "reflect" | "match-any" | "match-all" | "ack" | "syn" | "fin"
            | "psh" | "rst" | "urg" | "flow-label" | "routing" | "sequence" => {
                return Err(cmd.err_at(
                    &t,
                    ErrorKind::NotSupportedYet,
                    format!("the ACL match option \"{w}\" is not supported yet"),
                ))
            }
            _ if matches!(protocol, Some(1) | Some(58)) => {
                return Err(cmd.err_at(
                    &t,
                    ErrorKind::NotSupportedYet,
                    format!(
                        "ICMP message types (\"{}\") are not supported yet: a traffic selector \
                         matches the whole protocol",
                        t.text
                    ),
                ))
            }
            _ => {
                return Err(cmd.err_at(
                    &t,
                    ErrorKind::Syntax,
                    format!(
                        "unexpected \"{}\" after the destination; expected a port match \
                         (eq, lt, gt, range; tcp and udp only), log, or the end of the line",
                        t.text
                    ),
                ))
            }
        }
    }
    Ok(())
}
