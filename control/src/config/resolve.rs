//! How `compile` learns about interfaces: names are Linux netdev names and
//! the kernel owns their indexes and addresses, so compilation asks an
//! [`InterfaceResolver`] rather than trusting the config's `ip address`
//! lines.
//!
//! The choice: the kernel is authoritative. A config's `ip address` lines
//! are only checked against what the resolver reports (a mismatch is a
//! warning naming both), which keeps the seeds' configs meaningful without
//! letting a stale line pick a tunnel endpoint the machine does not have.
//! [`ConfigAddresses`] is the resolver for offline checks
//! (`espada config check`): it answers from the config's own lines.

use std::net::IpAddr;

use super::model::Config;

/// What the kernel knows about one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedInterface {
    /// Kernel interface index (`if_nametoindex`).
    pub ifindex: u32,
    /// Its addresses, primary first (the order `ip addr` shows).
    pub addrs: Vec<IpAddr>,
}

/// Looks interfaces up by name. Implemented for closures, so tests and the
/// daemon can pass `|name| ...` directly.
pub trait InterfaceResolver {
    /// `None`: no such interface on this machine.
    fn resolve(&self, name: &str) -> Option<ResolvedInterface>;
}

impl<F> InterfaceResolver for F
where
    F: Fn(&str) -> Option<ResolvedInterface>,
{
    fn resolve(&self, name: &str) -> Option<ResolvedInterface> {
        self(name)
    }
}

/// Answers from the config's own `interface` blocks: their `ip address`
/// and `ipv6 address` lines, with interface indexes numbered from 1 in
/// file order. For validating a config away from the machine it will run
/// on; the daemon resolves against the kernel.
#[derive(Debug, Clone, Copy)]
pub struct ConfigAddresses<'c>(pub &'c Config);

impl InterfaceResolver for ConfigAddresses<'_> {
    fn resolve(&self, name: &str) -> Option<ResolvedInterface> {
        let (i, iface) = self
            .0
            .interfaces
            .iter()
            .enumerate()
            .find(|(_, i)| i.name == name)?;
        let mut addrs: Vec<IpAddr> = iface.ipv4.iter().map(|a| IpAddr::V4(a.value.0)).collect();
        addrs.extend(iface.ipv6.iter().map(|a| IpAddr::V6(a.value.addr)));
        Some(ResolvedInterface {
            ifindex: i as u32 + 1,
            addrs,
        })
    }
}

/// The local tunnel endpoint for `peer`: the interface's first address of
/// the peer's family, skipping IPv6 link-local addresses unless the peer is
/// link-local too.
pub fn local_address_for(addrs: &[IpAddr], peer: IpAddr) -> Option<IpAddr> {
    let link_local = dataplane::spd::is_link_local;
    addrs
        .iter()
        .copied()
        .filter(|a| a.is_ipv6() == peer.is_ipv6())
        .find(|a| link_local(a) == link_local(&peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_address_matches_the_peer_family_and_skips_link_local() {
        let addrs: Vec<IpAddr> = ["fe80::1", "198.18.0.1", "fd00:1::1"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            local_address_for(&addrs, "198.18.1.1".parse().unwrap()),
            Some("198.18.0.1".parse().unwrap())
        );
        assert_eq!(
            local_address_for(&addrs, "fd00:2::1".parse().unwrap()),
            Some("fd00:1::1".parse().unwrap())
        );
        assert_eq!(
            local_address_for(&addrs, "fe80::2".parse().unwrap()),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(
            local_address_for(&addrs[..1], "198.18.1.1".parse().unwrap()),
            None
        );
    }
}
