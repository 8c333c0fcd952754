//! The kernel side of virtual tunnel interfaces. The dataplane creates a
//! TUN device per VTI (`Request::SetTunnelInterfaces`); here it gets what
//! IOS's `interface TunnelN` has: its addresses, its static routes, and
//! no IPv6 autoconfiguration of its own (the kernel would otherwise send
//! router solicitations and invent a link-local address into the tunnel).
//! With that, the gateway's own traffic to the tunnel's routes and to the
//! peer's tunnel address goes through the tunnel (seed 001:
//! `ping FE80::23:3` over Tunnel23).
//!
//! Configured with iproute2's `ip` (a Debian base package): one command
//! per address and route, at start and when the dataplane is reconnected,
//! never per packet.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use dataplane::api::{Request, TunnelInterface};

use crate::config::compile::vti::TunnelInterfaceSpec;
use crate::dpclient::{DataplaneClient, DpError};

/// Why a tunnel interface could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TunnelIfError {
    #[error("the dataplane refused the tunnel interfaces: {0}")]
    Dataplane(#[from] DpError),
    #[error("interface {name}: `{command}` failed: {why}")]
    Command {
        name: String,
        command: String,
        why: String,
    },
    #[error("interface {name}: writing {path}: {why}")]
    Sysctl {
        name: String,
        path: String,
        why: std::io::Error,
    },
}

/// Has the dataplane make the VTIs' devices (removing any it made before
/// that the config no longer has), then configures each.
pub fn install(
    dp: &mut DataplaneClient,
    specs: &[TunnelInterfaceSpec],
) -> Result<(), TunnelIfError> {
    let tunnels = specs
        .iter()
        .map(|s| TunnelInterface {
            name: s.name.clone(),
            tag: s.tag,
            mtu: s.mtu,
        })
        .collect();
    dp.expect_ack(
        "SetTunnelInterfaces",
        Request::SetTunnelInterfaces { tunnels },
    )?;
    for s in specs {
        configure(s)?;
    }
    Ok(())
}

/// The commands that give one device its configuration, in order: no
/// IPv6 autoconfiguration first (before the link is up), then addresses,
/// the link up, and the routes (which need it up). Each is idempotent
/// (`replace`), so a reconnected dataplane's kept devices take them again.
pub fn commands(s: &TunnelInterfaceSpec) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for (addr, len) in &s.addrs {
        let a = format!("{addr}/{len}");
        match addr {
            IpAddr::V4(_) => out.push(words(&["-4", "addr", "replace", &a, "dev", &s.name])),
            // No duplicate address detection: the other end of a tunnel
            // is the peer, which never answers a neighbour solicitation.
            IpAddr::V6(_) => out.push(words(&[
                "-6", "addr", "replace", &a, "dev", &s.name, "nodad",
            ])),
        }
    }
    out.push(words(&["link", "set", "dev", &s.name, "up"]));
    for r in &s.routes {
        let fam = if r.addr().is_ipv6() { "-6" } else { "-4" };
        let p = format!("{}/{}", r.addr(), r.prefix_len());
        out.push(words(&[fam, "route", "replace", &p, "dev", &s.name]));
    }
    out
}

/// The IPv6 settings written before the device comes up, so that the
/// kernel sends nothing of its own into the tunnel: no address of its
/// invention (`addr_gen_mode` 1), no router advertisements taken, no
/// router solicitations, and host behaviour on the device (`forwarding`
/// 0: it joins no all-routers groups, so it sends no MLD reports for
/// them; forwarding through the gateway is the dataplane's, not the
/// kernel's). An IPv4 tunnel has no IPv6 at all.
fn ipv6_sysctls(s: &TunnelInterfaceSpec) -> Vec<(&'static str, &'static str)> {
    if s.ipv6 {
        vec![
            ("addr_gen_mode", "1"),
            ("accept_ra", "0"),
            ("router_solicitations", "0"),
            ("forwarding", "0"),
        ]
    } else {
        vec![("disable_ipv6", "1")]
    }
}

/// The IPv4 settings of an IPv4 tunnel: the "fragmentation needed" the
/// dataplane writes into the device for the gateway's own packets comes
/// from the tunnel's own address, which the kernel takes for a martian
/// unless `accept_local` is set.
const IPV4_SYSCTLS: [(&str, &str); 1] = [("accept_local", "1")];

/// Writes `settings` into the device's directory under `conf`
/// (`/proc/sys/net/ipv6/conf`, ...).
fn write_sysctls(
    s: &TunnelInterfaceSpec,
    conf: &Path,
    settings: &[(&str, &str)],
) -> Result<(), TunnelIfError> {
    for (key, value) in settings {
        let path = conf.join(&s.name).join(key);
        std::fs::write(&path, value).map_err(|why| TunnelIfError::Sysctl {
            name: s.name.clone(),
            path: path.display().to_string(),
            why,
        })?;
    }
    Ok(())
}

fn configure(s: &TunnelInterfaceSpec) -> Result<(), TunnelIfError> {
    let ipv6 = Path::new("/proc/sys/net/ipv6/conf");
    // IPv6 disabled in this kernel: nothing to keep quiet.
    if ipv6.join(&s.name).is_dir() {
        write_sysctls(s, ipv6, &ipv6_sysctls(s))?;
    }
    if !s.ipv6 {
        write_sysctls(s, Path::new("/proc/sys/net/ipv4/conf"), &IPV4_SYSCTLS)?;
    }
    for args in commands(s) {
        let command = format!("ip {}", args.join(" "));
        let out = Command::new("ip").args(&args).output();
        let why = match out {
            Ok(o) if o.status.success() => continue,
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("{e} (is iproute2 installed?)"),
        };
        return Err(TunnelIfError::Command {
            name: s.name.clone(),
            command,
            why,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::spd::{IpPrefix, PolicyTag};

    #[test]
    fn a_vti_gets_its_addresses_then_the_link_then_its_routes() {
        let s = TunnelInterfaceSpec {
            name: "Tunnel23".into(),
            tag: PolicyTag { map: 0, seq: 65536 },
            mtu: 1380,
            ipv6: true,
            addrs: vec![("fe80::23:2".parse().unwrap(), 64)],
            routes: vec![IpPrefix::new("fd00:b::".parse().unwrap(), 64).unwrap()],
        };
        let got: Vec<String> = commands(&s).iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            got,
            [
                "-6 addr replace fe80::23:2/64 dev Tunnel23 nodad",
                "link set dev Tunnel23 up",
                "-6 route replace fd00:b::/64 dev Tunnel23",
            ]
        );
        let v4 = TunnelInterfaceSpec {
            name: "Tunnel24".into(),
            ipv6: false,
            addrs: vec![("198.18.24.2".parse().unwrap(), 24)],
            routes: vec![IpPrefix::new("198.19.2.0".parse().unwrap(), 24).unwrap()],
            ..s
        };
        let got: Vec<String> = commands(&v4).iter().map(|c| c.join(" ")).collect();
        assert_eq!(
            got,
            [
                "-4 addr replace 198.18.24.2/24 dev Tunnel24",
                "link set dev Tunnel24 up",
                "-4 route replace 198.19.2.0/24 dev Tunnel24",
            ]
        );
    }
}
