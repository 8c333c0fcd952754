//! `interface NAME` and its sub-commands: addresses, the crypto map it
//! carries, its NAT side, and its shutdown state.
//!
//! Interface names are Linux netdev names (`eth0`, `a-wan`), so an IOS
//! name such as `Ethernet0/0` is refused with a hint: the seeds' configs run
//! with their interface names changed, not guessed.

use super::cursor::{Cmd, PResult};
use super::error::{ErrorKind, Spanned, Warning};
use super::ike;
use super::misc;
use super::model::{Config, Interface, Ipv6IfAddr, NatSide};

/// Linux's IFNAMSIZ less the terminating NUL.
const IFNAME_MAX: usize = 15;

/// `interface NAME`; `interface` already consumed. Returns the index of
/// the interface (re-entering an interface continues its block).
pub fn parse_interface(cmd: &mut Cmd<'_, '_>, cfg: &mut Config) -> PResult<usize> {
    let name = cmd.name("interface name")?;
    check_ifname(cmd, &name)?;
    cmd.end()?;
    if let Some(i) = cfg.interfaces.iter().position(|i| i.name == name.value) {
        return Ok(i);
    }
    cfg.interfaces
        .push(Interface::new(name.value, cmd.line_span()));
    Ok(cfg.interfaces.len() - 1)
}

/// Refuses names the kernel would refuse, with a hint for IOS names.
pub fn check_ifname(cmd: &Cmd<'_, '_>, name: &Spanned<String>) -> PResult<()> {
    let n = &name.value;
    let bad = n.len() > IFNAME_MAX
        || n.contains('/')
        || n.contains(':')
        || n == "."
        || n == ".."
        || n.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        return Err(cmd.err_span(
            name.span,
            n,
            ErrorKind::InvalidValue,
            format!(
                "\"{n}\" is not a Linux interface name (at most {IFNAME_MAX} characters, no '/' \
                 or ':'): espada names interfaces as the kernel does, e.g. eth0 for an IOS \
                 Ethernet0/0"
            ),
        ));
    }
    Ok(())
}

const INTERFACE_COMMANDS: &str = "description, ip address, ipv6 address, crypto map, \
     ip nat inside|outside, shutdown, no shutdown, tunnel";

/// Whether interface mode owns this command (else it leaves the mode, as
/// IOS does when a pasted line is not an interface command).
pub fn owns(w: &[String]) -> bool {
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    match at(0) {
        "description" | "shutdown" | "tunnel" => true,
        "crypto" => at(1) == "map" && w.len() == 3,
        "ip" => match at(1) {
            "address" => true,
            "nat" => w.len() == 3 && matches!(at(2), "inside" | "outside"),
            _ => misc::interface_housekeeping(w).is_some(),
        },
        "ipv6" => matches!(at(1), "address" | "enable") || (at(1) == "crypto" && at(2) == "map"),
        "no" => at(1) == "shutdown" || misc::interface_housekeeping(w).is_some(),
        _ => misc::interface_housekeeping(w).is_some(),
    }
}

/// One interface sub-command.
pub fn parse_line(cmd: &mut Cmd<'_, '_>, cfg: &mut Config, idx: usize) -> PResult<()> {
    let words = cmd.line.keywords();
    if let Some(what) = misc::interface_housekeeping(&words) {
        cfg.warnings.push(misc::ignored(cmd, what));
        return Ok(());
    }
    let first = cmd.word("an interface command")?;
    let iface = &mut cfg.interfaces[idx];
    match first.text.to_ascii_lowercase().as_str() {
        "description" => {
            iface.description = Some(cmd.line.rest_from(cmd.pos).to_string());
            Ok(())
        }
        "shutdown" => {
            cmd.end()?;
            iface.shutdown = true;
            Ok(())
        }
        "no" => {
            cmd.keyword(&["shutdown"])?;
            cmd.end()?;
            iface.shutdown = false;
            Ok(())
        }
        "crypto" => {
            cmd.keyword(&["map"])?;
            set_crypto_map(cmd, iface)
        }
        "tunnel" => ike::parse_tunnel_line(cmd, &mut iface.tunnel),
        "ip" => match cmd.keyword(&["address", "nat"])? {
            "address" => ipv4_address(cmd, iface, &mut cfg.warnings),
            _ => {
                let side = cmd.keyword(&["inside", "outside"])?;
                let span = cmd.line_span();
                iface.nat = Some(Spanned::new(
                    if side == "inside" {
                        NatSide::Inside
                    } else {
                        NatSide::Outside
                    },
                    span,
                ));
                cmd.end()
            }
        },
        "ipv6" => match cmd.keyword(&["address", "enable", "crypto"])? {
            "address" => ipv6_address(cmd, iface),
            "enable" => {
                cmd.end()?;
                cfg.warnings.push(misc::ignored(
                    cmd,
                    "the kernel gives every IPv6 interface its link-local address",
                ));
                Ok(())
            }
            _ => {
                cmd.keyword(&["map"])?;
                set_crypto_map(cmd, iface)
            }
        },
        _ => Err(cmd.err_at(
            &first,
            ErrorKind::UnknownCommand,
            format!(
                "\"{}\" is not an interface command; expected one of {INTERFACE_COMMANDS}",
                first.text
            ),
        )),
    }
}

/// `crypto map NAME` / `ipv6 crypto map NAME`: one map per interface; its
/// entries may protect IPv4 and IPv6 traffic alike.
fn set_crypto_map(cmd: &mut Cmd<'_, '_>, iface: &mut Interface) -> PResult<()> {
    let map = cmd.name("crypto map name")?;
    cmd.end()?;
    if let Some(prev) = &iface.crypto_map {
        if prev.value != map.value {
            return Err(cmd.err_span(
                map.span,
                &map.value,
                ErrorKind::Duplicate,
                format!(
                    "interface {} already carries crypto map {} (line {}); an interface \
                     carries one map, whose entries may cover IPv4 and IPv6",
                    iface.name, prev.value, prev.span.line
                ),
            ));
        }
    }
    iface.crypto_map = Some(map);
    Ok(())
}

/// `ip address A M [secondary]` or `ip address dhcp`.
fn ipv4_address(
    cmd: &mut Cmd<'_, '_>,
    iface: &mut Interface,
    warnings: &mut Vec<Warning>,
) -> PResult<()> {
    if cmd.eat("dhcp") {
        cmd.end()?;
        iface.ipv4_dhcp = true;
        return Ok(());
    }
    let a = cmd.ipv4("interface address")?;
    let len = cmd.netmask("subnet mask")?;
    let secondary = cmd.eat("secondary");
    cmd.end()?;
    if !secondary && !iface.ipv4.is_empty() {
        warnings.push(Warning {
            span: a.span,
            message: format!(
                "interface {} already has a primary address; IOS would replace it, espada \
                 keeps both (write \"secondary\" to say so)",
                iface.name
            ),
            source_line: cmd.line.redacted.clone(),
        });
    }
    iface.ipv4.push(Spanned::new((a.value, len.value), a.span));
    Ok(())
}

/// `ipv6 address P/L` or `ipv6 address A link-local`.
fn ipv6_address(cmd: &mut Cmd<'_, '_>, iface: &mut Interface) -> PResult<()> {
    let t = cmd.word("an IPv6 address with its prefix length (fd00:1::1/64)")?;
    let span = cmd.span_of(&t);
    if cmd.eat("link-local") {
        cmd.end()?;
        let addr = t.text.parse().map_err(|_| {
            cmd.err_at(
                &t,
                ErrorKind::Syntax,
                format!("\"{}\" is not an IPv6 address", t.text),
            )
        })?;
        iface.ipv6.push(Spanned::new(
            Ipv6IfAddr {
                addr,
                len: 64,
                link_local: true,
            },
            span,
        ));
        return Ok(());
    }
    if matches!(t.text.to_ascii_lowercase().as_str(), "autoconfig" | "dhcp") {
        return Err(cmd.err_at(
            &t,
            ErrorKind::NotSupportedYet,
            format!("ipv6 address {} is not supported yet; give the address, the kernel's own configuration applies anyway", t.text),
        ));
    }
    let parsed = t.text.split_once('/').and_then(|(a, l)| {
        let a: std::net::Ipv6Addr = a.parse().ok()?;
        let l: u8 = l.parse().ok().filter(|l| *l <= 128)?;
        Some((a, l))
    });
    let Some((addr, len)) = parsed else {
        return Err(cmd.err_at(
            &t,
            ErrorKind::Syntax,
            format!(
                "expected an IPv6 address with its prefix length (fd00:1::1/64) or \
                 \"ADDRESS link-local\", found \"{}\"",
                t.text
            ),
        ));
    };
    let eui64 = cmd.eat("eui-64");
    if eui64 {
        return Err(cmd.err_here(
            ErrorKind::NotSupportedYet,
            "eui-64 addresses are not supported yet",
        ));
    }
    cmd.end()?;
    iface.ipv6.push(Spanned::new(
        Ipv6IfAddr {
            addr,
            len,
            link_local: addr.is_unicast_link_local(),
        },
        span,
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::owns;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn interface_mode_owns_its_commands_and_leaves_global_ones() {
        assert!(owns(&w("ip address 198.18.0.1 255.255.255.0")));
        assert!(owns(&w("crypto map LAB")));
        assert!(owns(&w("ip nat outside")));
        assert!(owns(&w("duplex auto")));
        assert!(!owns(&w("crypto map LAB 10 ipsec-manual")));
        assert!(!owns(&w(
            "ip nat inside source list 100 interface eth0 overload"
        )));
        assert!(!owns(&w("ip route 0.0.0.0 0.0.0.0 198.18.0.254")));
        assert!(!owns(&w("hostname gw")));
        assert!(!owns(&w("no service password-encryption")));
    }
}
