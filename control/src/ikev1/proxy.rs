//! Quick Mode proxy identities (RFC 2407 §4.6.2) and the SPD's traffic
//! selectors: what IOS calls the local and remote "ident" of an IPsec SA.
//!
//! IOS sends a single host as ID_IPV4_ADDR / ID_IPV6_ADDR and a subnet as
//! ID_*_ADDR_SUBNET; a range is accepted when it is exactly a prefix. The
//! protocol and port come from the ACL line (0 for any).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::spd::{IpPrefix, PortRange, TrafficSelector};

use crate::ike::wire::ident::Identity;
use crate::ike::wire::ikev1::Identification;

/// One side of a proxy: a prefix, a protocol and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxySide {
    pub prefix: IpPrefix,
    pub proto: Option<u8>,
    pub ports: PortRange,
}

/// The ID payload for one side of `sel` (`local` picks the source side).
pub fn identification(sel: &TrafficSelector, local: bool) -> Identification {
    let (prefix, ports) = if local {
        (sel.src, sel.src_ports)
    } else {
        (sel.dst, sel.dst_ports)
    };
    let port = if ports == PortRange::ANY { 0 } else { ports.lo };
    let full = if prefix.is_ipv6() { 128 } else { 32 };
    let identity = match (prefix.addr(), prefix.prefix_len() == full) {
        (IpAddr::V4(a), true) => Identity::Ipv4(a),
        (IpAddr::V6(a), true) => Identity::Ipv6(a),
        (IpAddr::V4(a), false) => Identity::Ipv4Subnet {
            addr: a,
            mask: Ipv4Addr::from(mask_v4(prefix.prefix_len())),
        },
        (IpAddr::V6(a), false) => Identity::Ipv6Subnet {
            addr: a,
            mask: Ipv6Addr::from(mask_v6(prefix.prefix_len())),
        },
    };
    Identification {
        protocol: sel.proto.unwrap_or(0),
        port,
        identity,
    }
}

/// One side of a proxy from an ID payload; `None` for identities that are
/// no address set a selector can hold (names, key IDs, ranges that are
/// not prefixes, masks that are not contiguous).
pub fn side(id: &Identification) -> Option<ProxySide> {
    let prefix = match id.identity {
        Identity::Ipv4(a) => IpPrefix::host(IpAddr::V4(a)),
        Identity::Ipv6(a) => IpPrefix::host(IpAddr::V6(a)),
        Identity::Ipv4Subnet { addr, mask } => IpPrefix::new(
            IpAddr::V4(addr),
            contiguous(u128::from(u32::from(mask)) << 96)?,
        )?,
        Identity::Ipv6Subnet { addr, mask } => {
            IpPrefix::new(IpAddr::V6(addr), contiguous(u128::from(mask))?)?
        }
        Identity::Ipv4Range { start, end } => {
            range_prefix(u128::from(u32::from(start)), u128::from(u32::from(end)), 32)
                .and_then(|len| IpPrefix::new(IpAddr::V4(start), len))?
        }
        Identity::Ipv6Range { start, end } => range_prefix(u128::from(start), u128::from(end), 128)
            .and_then(|len| IpPrefix::new(IpAddr::V6(start), len))?,
        _ => return None,
    };
    Some(ProxySide {
        prefix,
        proto: (id.protocol != 0).then_some(id.protocol),
        ports: if id.port == 0 {
            PortRange::ANY
        } else {
            PortRange {
                lo: id.port,
                hi: id.port,
            }
        },
    })
}

/// The selector local → remote from the two sides; `None` when the
/// families or protocols disagree.
pub fn selector(local: &ProxySide, remote: &ProxySide) -> Option<TrafficSelector> {
    if local.prefix.is_ipv6() != remote.prefix.is_ipv6() {
        return None;
    }
    let proto = match (local.proto, remote.proto) {
        (a, b) if a == b => a,
        (None, b) => b,
        (a, None) => a,
        _ => return None,
    };
    Some(TrafficSelector {
        src: local.prefix,
        dst: remote.prefix,
        proto,
        src_ports: local.ports,
        dst_ports: remote.ports,
    })
}

/// The prefix length of a contiguous mask in the top bits of a u128
/// (IPv4 masks shifted up by 96).
fn contiguous(mask: u128) -> Option<u8> {
    let len = mask.leading_ones();
    (mask.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

fn range_prefix(start: u128, end: u128, bits: u32) -> Option<u8> {
    let span = end.checked_sub(start)?.checked_add(1);
    let len = match span {
        None => 0, // the whole IPv6 space
        Some(n) if n.is_power_of_two() => bits - n.trailing_zeros(),
        Some(_) => return None,
    };
    let host_bits = bits - len;
    let aligned = host_bits == 128 || start & ((1u128 << host_bits) - 1) == 0;
    aligned.then_some(len as u8)
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str, d: &str) -> TrafficSelector {
        TrafficSelector {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        }
    }

    #[test]
    fn ios_sends_subnets_and_hosts_and_reads_them_back() {
        for (s, d) in [
            ("198.19.2.0/24", "198.19.1.0/24"),
            ("198.19.2.10/32", "0.0.0.0/0"),
            ("fd00:b::/64", "fd00:a::1/128"),
        ] {
            let t = sel(s, d);
            let l = identification(&t, true);
            let r = identification(&t, false);
            assert_eq!(selector(&side(&l).unwrap(), &side(&r).unwrap()), Some(t));
        }
        let l = identification(&sel("198.19.2.10/32", "198.19.1.0/24"), true);
        assert_eq!(l.identity, Identity::Ipv4("198.19.2.10".parse().unwrap()));
        let r = identification(&sel("198.19.2.10/32", "198.19.1.0/24"), false);
        assert_eq!(
            r.identity,
            Identity::Ipv4Subnet {
                addr: "198.19.1.0".parse().unwrap(),
                mask: "255.255.255.0".parse().unwrap()
            }
        );
    }

    #[test]
    fn ranges_become_prefixes_only_when_they_are_one() {
        let id = |start: &str, end: &str| Identification {
            protocol: 0,
            port: 0,
            identity: Identity::Ipv4Range {
                start: start.parse().unwrap(),
                end: end.parse().unwrap(),
            },
        };
        assert_eq!(
            side(&id("198.19.1.0", "198.19.1.255")).unwrap().prefix,
            "198.19.1.0/24".parse().unwrap()
        );
        assert_eq!(
            side(&id("0.0.0.0", "255.255.255.255"))
                .unwrap()
                .prefix
                .prefix_len(),
            0
        );
        assert!(side(&id("198.19.1.1", "198.19.1.4")).is_none());
        assert!(side(&id("198.19.1.9", "198.19.1.2")).is_none());
        let bad_mask = Identification {
            protocol: 0,
            port: 0,
            identity: Identity::Ipv4Subnet {
                addr: "198.19.1.0".parse().unwrap(),
                mask: "255.0.255.0".parse().unwrap(),
            },
        };
        assert!(side(&bad_mask).is_none());
        let v6all = Identification {
            protocol: 0,
            port: 0,
            identity: Identity::Ipv6Range {
                start: "::".parse().unwrap(),
                end: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".parse().unwrap(),
            },
        };
        assert_eq!(side(&v6all).unwrap().prefix.prefix_len(), 0);
    }

    #[test]
    fn protocol_and_port_carry_over() {
        let mut t = sel("198.19.2.0/24", "198.19.1.5/32");
        t.proto = Some(6);
        t.dst_ports = PortRange { lo: 443, hi: 443 };
        let l = identification(&t, true);
        let r = identification(&t, false);
        assert_eq!((l.protocol, l.port, r.protocol, r.port), (6, 0, 6, 443));
        assert_eq!(selector(&side(&l).unwrap(), &side(&r).unwrap()), Some(t));
        let mut udp = r.clone();
        udp.protocol = 17;
        assert_eq!(selector(&side(&l).unwrap(), &side(&udp).unwrap()), None);
    }
}
