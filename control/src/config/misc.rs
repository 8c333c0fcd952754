//! Global commands outside the crypto families: `hostname`, `ip route`,
//! `ipv6 route`, `ip nat inside source`, `route-map`, and the platform
//! housekeeping that `show running-config` prints on every IOS router
//! (`version`, `service ...`, `line vty ...`, `duplex auto`).
//!
//! Housekeeping has no meaning for Espada, but refusing it would make the
//! seeds' running configs unusable; each such line is accepted with a
//! warning that names it, so nothing is ignored silently. The list is
//! explicit: anything not on it is an unknown command.

use std::net::IpAddr;

use dataplane::spd::IpPrefix;

use super::cursor::{Cmd, PResult};
use super::error::{ErrorKind, Spanned, Warning};
use super::model::{
    AclAction, Config, NatInsideSource, NatSelector, RouteMapEntry, RouteTarget, StaticRoute,
};

/// A warning that line `cmd` is accepted but has no effect, and why.
pub fn ignored(cmd: &Cmd<'_, '_>, why: &str) -> Warning {
    let words: Vec<String> = cmd
        .line
        .tokens
        .iter()
        .take(3)
        .map(|t| {
            if t.secret {
                "*".repeat(t.text.chars().count())
            } else {
                t.text.to_string()
            }
        })
        .collect();
    Warning {
        span: cmd.line_span(),
        message: format!("\"{}\" is ignored: {why}", words.join(" ")),
        source_line: cmd.line.redacted.clone(),
    }
}

/// Global platform commands that mean nothing to Espada, with the reason
/// shown in the warning. `w` is the lower-cased line.
pub fn global_housekeeping(w: &[String]) -> Option<&'static str> {
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    let platform = "a router platform setting with no meaning for espada";
    match (at(0), at(1), at(2)) {
        ("version", _, _) | ("boot-start-marker", _, _) | ("boot-end-marker", _, _) => {
            Some(platform)
        }
        ("boot", "system", _) | ("memory-size", _, _) | ("resource", "policy", _) => Some(platform),
        ("service", _, _) | ("no", "service", _) => Some(platform),
        ("enable", "password" | "secret", _) => {
            Some("espada has no enable mode; its CLI runs with the caller's Unix permissions")
        }
        ("aaa", _, _) | ("no", "aaa", _) => Some("espada has no AAA"),
        ("ip", "cef", _) | ("ip", "classless", _) | ("ip", "subnet-zero", _) => Some(platform),
        ("no", "ip", "domain-lookup" | "domain" | "http" | "cef" | "classless") => Some(platform),
        ("ip", "http", _) | ("ip", "domain-name" | "domain" | "name-server", _) => Some(platform),
        ("ipv6", "unicast-routing", _) | ("ipv6", "cef", _) => {
            Some("forwarding is the kernel's and the dataplane's, always on for IPv6")
        }
        ("control-plane", _, _) | ("names", _, _) => Some(platform),
        ("building", "configuration...", _) | ("current", "configuration", _) => {
            Some("a show running-config header")
        }
        _ => None,
    }
}

/// Interface sub-commands that mean nothing to Espada (link settings the
/// kernel owns, IOS switching features).
pub fn interface_housekeeping(w: &[String]) -> Option<&'static str> {
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    let link = "link settings belong to the kernel (ethtool, ip link)";
    match (at(0), at(1), at(2)) {
        (
            "duplex" | "speed" | "half-duplex" | "full-duplex" | "negotiation" | "bandwidth",
            _,
            _,
        ) => Some(link),
        ("load-interval" | "keepalive" | "mtu", _, _) | ("ip", "mtu", _) => Some(link),
        (
            "ip",
            "virtual-reassembly" | "route-cache" | "mroute-cache" | "redirects" | "unreachables"
            | "proxy-arp",
            _,
        ) => Some("an IOS switching feature with no meaning for espada"),
        ("no", "ip", "address") => Some("an interface without addresses needs no command"),
        (
            "no",
            "ip",
            "route-cache" | "mroute-cache" | "redirects" | "unreachables" | "proxy-arp"
            | "directed-broadcast",
        ) => Some("an IOS switching feature with no meaning for espada"),
        ("no", "fair-queue" | "keepalive" | "cdp" | "mop" | "negotiation", _) => Some(link),
        _ => None,
    }
}

/// Sub-commands of `line con|aux|vty`: the router's terminal lines.
pub fn line_mode_owns(w: &[String]) -> bool {
    matches!(
        w.first().map(String::as_str),
        Some(
            "login"
                | "password"
                | "exec-timeout"
                | "logging"
                | "transport"
                | "stopbits"
                | "privilege"
                | "session-timeout"
                | "access-class"
                | "exec"
        )
    )
}

/// `hostname NAME`; `hostname` already consumed.
pub fn parse_hostname(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<()> {
    let name = cmd.name("host name")?;
    cmd.end()?;
    cfg.hostname = Some(name);
    Ok(())
}

/// `ip route P M NEXTHOP|IF [NEXTHOP] [DISTANCE]`; `ip route` consumed.
pub fn parse_ip_route(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<()> {
    let span = cmd.line_span();
    let a = cmd.ipv4("destination prefix")?;
    let len = cmd.netmask("destination mask")?;
    let prefix = IpPrefix::new(IpAddr::V4(a.value), len.value).expect("mask length <= 32");
    let target = route_target(cmd, false)?;
    finish_route(cmd, cfg, span, prefix, target)
}

/// `ipv6 route P/L NEXTHOP|IF [NEXTHOP] [DISTANCE]`; `ipv6 route` consumed.
pub fn parse_ipv6_route(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<()> {
    let span = cmd.line_span();
    let t = cmd.word("destination prefix (P/L)")?;
    let prefix = t
        .text
        .parse::<IpPrefix>()
        .ok()
        .filter(|p| p.is_ipv6() && t.text.contains('/'))
        .ok_or_else(|| {
            cmd.err_at(
                &t,
                ErrorKind::Syntax,
                format!(
                    "expected an IPv6 prefix such as fd00:b::/64, found \"{}\"",
                    t.text
                ),
            )
        })?;
    let target = route_target(cmd, true)?;
    finish_route(cmd, cfg, span, prefix, target)
}

fn route_target(cmd: &mut Cmd<'_, '_>, v6: bool) -> PResult<RouteTarget> {
    let t = cmd.word("next hop address or interface")?;
    match t.text.parse::<IpAddr>() {
        Ok(a) if a.is_ipv6() == v6 => Ok(RouteTarget::NextHop(a)),
        Ok(_) => Err(cmd.err_at(
            &t,
            ErrorKind::InvalidValue,
            "the next hop is of the other address family",
        )),
        Err(_) => {
            // `IF NEXTHOP`: the next hop through that interface.
            if cmd.peek().is_some_and(|n| n.text.parse::<IpAddr>().is_ok()) {
                cmd.pos += 1;
            }
            Ok(RouteTarget::Interface(t.text.to_string()))
        }
    }
}

fn finish_route(
    cmd: &mut Cmd<'_, '_>,
    cfg: &mut Config,
    span: super::error::Span,
    prefix: IpPrefix,
    target: RouteTarget,
) -> PResult<()> {
    let distance = match cmd.peek() {
        Some(t) if t.text.bytes().all(|b| b.is_ascii_digit()) => {
            Some(cmd.u32_in("distance", 1..=255)?.value as u8)
        }
        _ => None,
    };
    cmd.end()?;
    cfg.warnings.push(Warning {
        span,
        message: format!(
            "route to {prefix} is recorded but not installed: the kernel's routing table is \
             authoritative (add it with \"ip route\" on the host)"
        ),
        source_line: cmd.line.redacted.clone(),
    });
    cfg.routes.push(StaticRoute {
        span,
        prefix,
        target,
        distance,
    });
    Ok(())
}

/// `ip nat inside source list ACL|route-map RM interface IF overload`;
/// `ip nat` consumed.
pub fn parse_ip_nat(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<()> {
    let span = cmd.line_span();
    match cmd.peek_kw().as_deref() {
        Some("inside") => cmd.pos += 1,
        Some("outside") | Some("pool") | Some("translation") | Some("static") => {
            return Err(cmd.err_here(
                ErrorKind::NotSupportedYet,
                "only \"ip nat inside source ... interface IF overload\" (PAT to the outside \
                 interface's address) is supported yet",
            ))
        }
        _ => return Err(cmd.expected(&["inside"])),
    }
    cmd.keyword(&["source"])?;
    if cmd.peek_kw().as_deref() == Some("static") {
        return Err(cmd.err_here(
            ErrorKind::NotSupportedYet,
            "static NAT is not supported yet",
        ));
    }
    let selector = match cmd.keyword(&["list", "route-map"])? {
        "list" => NatSelector::List(cmd.name("access list name or number")?),
        _ => NatSelector::RouteMap(cmd.name("route map name")?),
    };
    if cmd.peek_kw().as_deref() == Some("pool") {
        return Err(cmd.err_here(
            ErrorKind::NotSupportedYet,
            "NAT pools are not supported yet; translate to the outside interface's address \
             (\"interface IF overload\")",
        ));
    }
    cmd.keyword(&["interface"])?;
    let interface = cmd.name("outside interface name")?;
    super::interface::check_ifname(cmd, &interface)?;
    if !cmd.eat("overload") {
        return Err(cmd.err_here(
            ErrorKind::NotSupportedYet,
            "only PAT (\"overload\") is supported yet: without it IOS would translate one \
             inside host at a time",
        ));
    }
    cmd.end()?;
    cfg.nat.push(NatInsideSource {
        span,
        selector,
        interface,
    });
    Ok(())
}

/// `route-map NAME [permit|deny] [SEQ]`; `route-map` consumed. IOS's
/// defaults are `permit` and 10. Returns the entry's index.
pub fn parse_route_map(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<usize> {
    let name = cmd.name("route map name")?;
    let action = match cmd.peek_kw().as_deref() {
        Some("permit") => {
            cmd.pos += 1;
            AclAction::Permit
        }
        Some("deny") => {
            cmd.pos += 1;
            AclAction::Deny
        }
        _ => AclAction::Permit,
    };
    let seq = if cmd.at_end() {
        Spanned::new(10, cmd.here())
    } else {
        cmd.u32_in("sequence number", 0..=65535)?
    };
    cmd.end()?;
    if let Some(i) = cfg
        .route_maps
        .iter()
        .position(|r| r.name == name.value && r.seq == seq.value)
    {
        cfg.route_maps[i].action = action;
        return Ok(i);
    }
    cfg.route_maps.push(RouteMapEntry {
        name: name.value,
        action,
        seq: seq.value,
        span: cmd.line_span(),
        match_acls: Vec::new(),
    });
    Ok(cfg.route_maps.len() - 1)
}

/// `match ip address ACL...` (or `description`) inside a route map.
pub fn parse_route_map_line(cmd: &mut Cmd<'_, '_>, entry: &mut RouteMapEntry) -> PResult<()> {
    let first = cmd.word("a route-map command")?;
    match first.text.to_ascii_lowercase().as_str() {
        "description" => Ok(()),
        "match" => {
            if cmd.peek_kw().as_deref() != Some("ip") {
                return Err(cmd.err_here(
                    ErrorKind::NotSupportedYet,
                    "only \"match ip address ACL\" is supported yet in route maps",
                ));
            }
            cmd.pos += 1;
            cmd.keyword(&["address"])?;
            if cmd.peek_kw().as_deref() == Some("prefix-list") {
                return Err(cmd.err_here(
                    ErrorKind::NotSupportedYet,
                    "prefix lists are not supported yet",
                ));
            }
            entry
                .match_acls
                .push(cmd.name("access list name or number")?);
            while !cmd.at_end() {
                entry
                    .match_acls
                    .push(cmd.name("access list name or number")?);
            }
            Ok(())
        }
        "set" => Err(cmd.err_at(
            &first,
            ErrorKind::NotSupportedYet,
            "route-map \"set\" clauses are not supported yet; route maps select NAT traffic only",
        )),
        _ => Err(cmd.err_at(
            &first,
            ErrorKind::UnknownCommand,
            format!(
                "\"{}\" is not a route-map command; expected match ip address or description",
                first.text
            ),
        )),
    }
}
