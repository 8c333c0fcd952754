//! What the generator and the receiver ask the kernel before starting:
//! the interface, its addresses, the next hop's MAC, the link's speed and
//! queues. Every failure is one line that says what to do.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use dataplane::io::xdp::{ifindex_of, XdpError};
use dataplane::io::xsk::XskError;
use dataplane::netlink::{Dump, KernelEvent, RtNetlink};

/// AF_XDP sockets and XDP programs need root (CAP_NET_ADMIN, CAP_NET_RAW,
/// CAP_BPF); saying so up front beats an EPERM from the third syscall.
pub fn require_root(euid: u32) -> Result<()> {
    if euid != 0 {
        bail!("AF_XDP sockets need root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF): run it with sudo, inside the namespace (ip netns exec NS ...)");
    }
    Ok(())
}

pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The interface's index, or the error to show.
pub fn interface(name: &str) -> Result<u32> {
    ifindex_of(name).map_err(|e| match e {
        XdpError::UnknownInterface(_) => anyhow!(
            "no interface {name:?} in this network namespace: check `ip link` (or run inside the right namespace with ip netns exec NS)"
        ),
        other => anyhow!("interface {name:?}: {other}"),
    })
}

/// How an interface index reads in a message: `interface NAME`, or
/// `interface index N` when the index has no name (any more).
pub fn interface_name(ifindex: u32) -> String {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` holds IF_NAMESIZE bytes, as if_indextoname requires;
    // it writes a NUL-terminated name there or returns NULL.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return format!("interface index {ifindex}");
    }
    // SAFETY: on success `buf` holds a NUL-terminated string.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    format!("interface {}", name.to_string_lossy())
}

/// The link speed in Mbit/s, when the device knows one.
pub fn link_speed_mbps(dev: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/speed"))
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|&s| s > 0)
        .map(|s| s as u64)
}

/// How many `rx` or `tx` queues the device has.
pub fn queue_count(dev: &str, kind: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{dev}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{kind}-"))
                })
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// One line for an AF_XDP socket that would not open.
pub fn xsk_error(e: XskError, dev: &str, queue: u32) -> anyhow::Error {
    if let XskError::Os { source, what } = &e {
        match source.raw_os_error() {
            Some(libc::EBUSY) => {
                return anyhow!("queue {queue} of {dev} is in use by another AF_XDP socket (an Espada dataplane, gen or sink?): stop it, or use another interface")
            }
            Some(libc::EPERM) | Some(libc::EACCES) => {
                return anyhow!("{what} on {dev}: permission denied: run as root")
            }
            Some(libc::EINVAL) if *what == "bind AF_XDP socket" => {
                return anyhow!("cannot bind an AF_XDP socket to queue {queue} of {dev} (no such queue, or the device is down?): check `ip link show {dev}` and --queues")
            }
            _ => {}
        }
    }
    anyhow!("AF_XDP socket on {dev} queue {queue}: {e}")
}

pub struct Iface {
    pub mac: [u8; 6],
    pub mtu: u32,
    pub addrs: Vec<IpAddr>,
}

/// The interface's MAC, MTU and addresses.
pub fn iface_info(nl: &mut RtNetlink, dev: &str, ifindex: u32) -> Result<Iface> {
    let links = nl
        .dump(Dump::Links)
        .map_err(|e| anyhow!("reading interfaces (netlink): {e}"))?;
    let link = links
        .iter()
        .find_map(|ev| match ev {
            KernelEvent::Link(l) if l.ifindex == ifindex => Some(l.clone()),
            _ => None,
        })
        .ok_or_else(|| anyhow!("interface {dev:?} vanished while starting"))?;
    let Some(mac) = link.mac else {
        bail!("{dev} is not an Ethernet device (no MAC): AF_XDP frames here start with an Ethernet header");
    };
    let addrs = nl
        .dump(Dump::Addresses)
        .map_err(|e| anyhow!("reading addresses (netlink): {e}"))?
        .into_iter()
        .filter_map(|ev| match ev {
            KernelEvent::Addr(a) if a.ifindex == ifindex => Some(a.addr),
            _ => None,
        })
        .collect();
    Ok(Iface {
        mac: mac.0,
        mtu: link.mtu,
        addrs,
    })
}

/// The next hop toward `dst`: the longest matching route's gateway, or
/// `dst` itself on a connected network. The route must leave through
/// `ifindex`: the generator bypasses the kernel's routing.
pub fn next_hop(nl: &mut RtNetlink, dev: &str, ifindex: u32, dst: IpAddr) -> Result<IpAddr> {
    let routes = nl
        .dump(Dump::Routes)
        .map_err(|e| anyhow!("reading routes (netlink): {e}"))?;
    let best = routes
        .iter()
        .filter_map(|ev| match ev {
            KernelEvent::Route { route, .. } if route.route.prefix.contains(&dst) => Some(route),
            _ => None,
        })
        .max_by_key(|r| (r.route.prefix.prefix_len(), std::cmp::Reverse(r.metric)));
    let Some(best) = best else {
        bail!("no route to {dst}: add one, or give --dst-mac");
    };
    if best.route.ifindex != ifindex {
        bail!(
            "the route to {dst} leaves through {}, not {dev}: generate on that interface, or give --dst-mac",
            interface_name(best.route.ifindex)
        );
    }
    Ok(best.route.gateway.unwrap_or(dst))
}

fn neighbour(nl: &mut RtNetlink, ifindex: u32, addr: IpAddr) -> Result<Option<[u8; 6]>> {
    Ok(nl
        .dump(Dump::Neighbours)
        .map_err(|e| anyhow!("reading the neighbour table (netlink): {e}"))?
        .into_iter()
        .find_map(|ev| match ev {
            KernelEvent::Neighbour(n) if n.ifindex == ifindex && n.addr == addr => Some(n.mac.0),
            _ => None,
        }))
}

/// The MAC of `hop` on `ifindex` from the neighbour table, asking the
/// kernel to resolve it (ARP / ND) when it is missing, for up to 3 s.
pub fn resolve_mac(nl: &mut RtNetlink, dev: &str, ifindex: u32, hop: IpAddr) -> Result<[u8; 6]> {
    if let Some(mac) = neighbour(nl, ifindex, hop)? {
        return Ok(mac);
    }
    let _ = nl.resolve_neighbour(ifindex, hop);
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(mac) = neighbour(nl, ifindex, hop)? {
            return Ok(mac);
        }
    }
    bail!("no neighbour entry for {hop} on {dev} and it did not answer ARP/ND in 3 s: check that it is up (ping {hop}), or give --dst-mac")
}

pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        bail!("{s:?} is not a MAC address (02:00:00:00:00:01)");
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| anyhow!("{s:?} is not a MAC address (02:00:00:00:00:01)"))?;
    }
    Ok(mac)
}

pub fn parse_hex(what: &str, s: &str) -> Result<Vec<u8>> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        bail!("{what}: an even number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| anyhow!("{what}: not hexadecimal"))
        })
        .collect()
}

pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_root_is_one_line_that_says_to_use_sudo() {
        assert!(require_root(0).is_ok());
        let e = require_root(1000).unwrap_err().to_string();
        assert!(
            e.contains("need root") && e.contains("sudo") && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_interface_is_named_with_what_to_check() {
        let e = interface("espgen-nope0").unwrap_err().to_string();
        assert!(
            e.contains("\"espgen-nope0\"") && e.contains("ip link") && !e.contains('\n'),
            "{e}"
        );
        assert!(interface("lo").is_ok());
    }

    #[test]
    fn an_interface_index_is_named_in_messages() {
        let lo = interface("lo").unwrap();
        assert_eq!(interface_name(lo), "interface lo");
        // No interface has index 0.
        assert_eq!(interface_name(0), "interface index 0");
    }

    #[test]
    fn a_busy_queue_and_a_missing_queue_say_what_to_do() {
        let busy = XskError::Os {
            what: "bind AF_XDP socket",
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        };
        let e = xsk_error(busy, "veth0", 3).to_string();
        assert!(
            e.contains("queue 3 of veth0 is in use") && e.contains("stop it"),
            "{e}"
        );
        let inval = XskError::Os {
            what: "bind AF_XDP socket",
            source: std::io::Error::from_raw_os_error(libc::EINVAL),
        };
        assert!(xsk_error(inval, "veth0", 9)
            .to_string()
            .contains("--queues"));
    }

    #[test]
    fn macs_and_hex_keys_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01").unwrap(),
            [2, 0, 10, 255, 0, 1]
        );
        assert!(parse_mac("02:00:0a:ff:00").is_err());
        assert!(parse_mac("02:00:0a:ff:00:zz").is_err());
        assert_eq!(fmt_mac(&[2, 0, 10, 255, 0, 1]), "02:00:0a:ff:00:01");
        assert_eq!(parse_hex("k", "0x00ff10").unwrap(), [0, 255, 16]);
        assert!(parse_hex("k", "abc").is_err());
        assert!(parse_hex("k", "zz").is_err());
    }

    #[test]
    fn the_loopback_device_has_queues_and_no_speed() {
        assert!(queue_count("lo", "rx") >= 1);
        assert_eq!(link_speed_mbps("espgen-nope0"), None);
    }
}
