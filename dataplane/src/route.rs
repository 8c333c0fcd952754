//! Forwarding information: interfaces, routes and neighbours, as the
//! dataplane's copy of the kernel's tables (kept current by
//! [`crate::netlink`]). Lookup is longest-prefix match per family and
//! allocates nothing.

use std::collections::HashMap;
use std::net::IpAddr;

// Every packet looks up its next hop's interface and neighbour: a fast
// hash (SipHash was ~6% of a packet's CPU), seeded per process since
// neighbours are learnt from the network.
use foldhash::fast::RandomState;

use crate::spd::IpPrefix;
use crate::wire::ethernet::EthernetAddress;

/// Which side of the gateway an interface is on: ESP arrives and leaves on
/// the outside, clear traffic on the inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRole {
    Inside,
    Outside,
}

/// One interface the dataplane forwards on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub mac: EthernetAddress,
    /// IP MTU: the largest IP packet the interface carries.
    pub mtu: u16,
    pub role: PortRole,
}

/// The `ifindex` of a reject route: the kernel's blackhole, unreachable
/// and prohibit routes. No interface has index 0, so [`Fib::resolve`]
/// answers [`FibMiss::NoRoute`] for what they cover, as the kernel would
/// drop it, instead of falling through to a shorter prefix.
pub const REJECT_IFINDEX: u32 = 0;

/// A route: packets to `prefix` leave on `ifindex`, to `gateway` if set,
/// else to the destination itself (on-link). An `ifindex` of
/// [`REJECT_IFINDEX`] drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpPrefix,
    pub ifindex: u32,
    pub gateway: Option<IpAddr>,
}

/// Where a packet goes next, fully resolved to link-layer addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub ifindex: u32,
    pub src_mac: EthernetAddress,
    pub dst_mac: EthernetAddress,
    pub mtu: u16,
}

/// Why a destination could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FibMiss {
    NoRoute,
    /// Route found but the next hop's link-layer address is unknown: the
    /// caller asks the kernel to resolve it and counts the packet.
    NoNeighbour {
        ifindex: u32,
        addr: IpAddr,
    },
}

/// Interfaces, routes and neighbours.
#[derive(Debug, Clone, Default)]
pub struct Fib {
    interfaces: HashMap<u32, Interface, RandomState>,
    /// Kept sorted by prefix length, longest first, so the first match is
    /// the longest.
    v4: Vec<Route>,
    v6: Vec<Route>,
    neighbours: HashMap<(u32, IpAddr), EthernetAddress, RandomState>,
}

impl Fib {
    pub fn new() -> Fib {
        Fib::default()
    }

    pub fn add_interface(&mut self, iface: Interface) {
        self.interfaces.insert(iface.ifindex, iface);
    }

    pub fn interface(&self, ifindex: u32) -> Option<&Interface> {
        self.interfaces.get(&ifindex)
    }

    /// Removes an interface and its neighbours (the kernel flushes them
    /// with the link). Routes through it stay until they are removed
    /// themselves and meanwhile resolve to [`FibMiss::NoRoute`].
    pub fn remove_interface(&mut self, ifindex: u32) {
        self.interfaces.remove(&ifindex);
        self.neighbours.retain(|(i, _), _| *i != ifindex);
    }

    /// Every interface, in no particular order.
    pub fn interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.interfaces.values()
    }

    /// Every route: IPv4 then IPv6, each longest prefix first.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.v4.iter().chain(self.v6.iter())
    }

    /// The link-layer address of a neighbour, if known.
    pub fn neighbour(&self, ifindex: u32, addr: IpAddr) -> Option<EthernetAddress> {
        self.neighbours.get(&(ifindex, addr)).copied()
    }

    /// Every neighbour as (ifindex, address, MAC), in no particular order.
    pub fn neighbours(&self) -> impl Iterator<Item = (u32, IpAddr, EthernetAddress)> + '_ {
        self.neighbours.iter().map(|(&(i, a), &m)| (i, a, m))
    }

    /// Adds or replaces the route for `route.prefix`.
    pub fn add_route(&mut self, route: Route) {
        let table = if route.prefix.is_ipv6() {
            &mut self.v6
        } else {
            &mut self.v4
        };
        table.retain(|r| r.prefix != route.prefix);
        let at = table.partition_point(|r| r.prefix.prefix_len() >= route.prefix.prefix_len());
        table.insert(at, route);
    }

    pub fn remove_route(&mut self, prefix: &IpPrefix) {
        self.v4.retain(|r| r.prefix != *prefix);
        self.v6.retain(|r| r.prefix != *prefix);
    }

    pub fn set_neighbour(&mut self, ifindex: u32, addr: IpAddr, mac: EthernetAddress) {
        self.neighbours.insert((ifindex, addr), mac);
    }

    pub fn remove_neighbour(&mut self, ifindex: u32, addr: IpAddr) {
        self.neighbours.remove(&(ifindex, addr));
    }

    /// Longest-prefix match.
    pub fn route(&self, dst: &IpAddr) -> Option<&Route> {
        let table = if dst.is_ipv6() { &self.v6 } else { &self.v4 };
        table.iter().find(|r| r.prefix.contains(dst))
    }

    /// Route and neighbour for `dst`.
    pub fn resolve(&self, dst: &IpAddr) -> Result<NextHop, FibMiss> {
        let route = self.route(dst).ok_or(FibMiss::NoRoute)?;
        let iface = self
            .interfaces
            .get(&route.ifindex)
            .ok_or(FibMiss::NoRoute)?;
        let hop = route.gateway.unwrap_or(*dst);
        let dst_mac =
            self.neighbours
                .get(&(route.ifindex, hop))
                .copied()
                .ok_or(FibMiss::NoNeighbour {
                    ifindex: route.ifindex,
                    addr: hop,
                })?;
        Ok(NextHop {
            ifindex: route.ifindex,
            src_mac: iface.mac,
            dst_mac,
            mtu: iface.mtu,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(b: u8) -> EthernetAddress {
        EthernetAddress([2, 0, 0, 0, 0, b])
    }

    fn fib() -> Fib {
        let mut f = Fib::new();
        f.add_interface(Interface {
            ifindex: 1,
            mac: mac(1),
            mtu: 1500,
            role: PortRole::Inside,
        });
        f.add_interface(Interface {
            ifindex: 2,
            mac: mac(2),
            mtu: 1400,
            role: PortRole::Outside,
        });
        f.add_route(Route {
            prefix: "198.19.1.0/24".parse().unwrap(),
            ifindex: 1,
            gateway: None,
        });
        f.add_route(Route {
            prefix: "0.0.0.0/0".parse().unwrap(),
            ifindex: 2,
            gateway: Some("198.18.0.254".parse().unwrap()),
        });
        f.add_route(Route {
            prefix: "198.19.1.128/25".parse().unwrap(),
            ifindex: 2,
            gateway: Some("198.18.0.9".parse().unwrap()),
        });
        f.add_route(Route {
            prefix: "fd00:a::/64".parse().unwrap(),
            ifindex: 1,
            gateway: None,
        });
        f
    }

    #[test]
    fn the_longest_prefix_wins_whatever_the_insertion_order() {
        let f = fib();
        assert_eq!(
            f.route(&"198.19.1.200".parse().unwrap())
                .unwrap()
                .prefix
                .prefix_len(),
            25
        );
        assert_eq!(
            f.route(&"198.19.1.20".parse().unwrap())
                .unwrap()
                .prefix
                .prefix_len(),
            24
        );
        assert_eq!(
            f.route(&"198.18.5.5".parse().unwrap())
                .unwrap()
                .prefix
                .prefix_len(),
            0
        );
        assert!(f.route(&"fd00:b::1".parse().unwrap()).is_none());
    }

    #[test]
    fn resolve_needs_a_neighbour_for_the_gateway_or_the_on_link_host() {
        let mut f = fib();
        let dst: IpAddr = "198.18.7.7".parse().unwrap();
        let gw: IpAddr = "198.18.0.254".parse().unwrap();
        assert_eq!(
            f.resolve(&dst),
            Err(FibMiss::NoNeighbour {
                ifindex: 2,
                addr: gw
            })
        );
        f.set_neighbour(2, gw, mac(0xfe));
        assert_eq!(
            f.resolve(&dst),
            Ok(NextHop {
                ifindex: 2,
                src_mac: mac(2),
                dst_mac: mac(0xfe),
                mtu: 1400
            })
        );
        let host: IpAddr = "198.19.1.10".parse().unwrap();
        f.set_neighbour(1, host, mac(0x10));
        assert_eq!(f.resolve(&host).unwrap().dst_mac, mac(0x10));
        assert_eq!(
            f.resolve(&"fd00:c::1".parse().unwrap()),
            Err(FibMiss::NoRoute)
        );
    }

    #[test]
    fn a_reject_route_hides_the_shorter_prefixes_under_it() {
        let mut f = fib();
        f.add_route(Route {
            prefix: "198.18.7.0/24".parse().unwrap(),
            ifindex: REJECT_IFINDEX,
            gateway: None,
        });
        f.set_neighbour(2, "198.18.0.254".parse().unwrap(), mac(0xfe));
        assert_eq!(
            f.resolve(&"198.18.7.7".parse().unwrap()),
            Err(FibMiss::NoRoute)
        );
        assert!(f.resolve(&"198.18.8.8".parse().unwrap()).is_ok());
    }

    #[test]
    fn a_removed_interface_takes_its_neighbours_along() {
        let mut f = fib();
        let host: IpAddr = "198.19.1.10".parse().unwrap();
        f.set_neighbour(1, host, mac(0x10));
        f.set_neighbour(2, "198.18.0.254".parse().unwrap(), mac(0xfe));
        f.remove_interface(1);
        assert!(f.interface(1).is_none());
        assert_eq!(f.neighbour(1, host), None);
        assert_eq!(f.neighbours().count(), 1);
        assert_eq!(f.resolve(&host), Err(FibMiss::NoRoute));
        assert_eq!(f.interfaces().count(), 1);
        assert_eq!(f.routes().count(), 4);
    }

    #[test]
    fn a_replaced_route_takes_the_old_ones_place() {
        let mut f = fib();
        f.add_route(Route {
            prefix: "198.19.1.0/24".parse().unwrap(),
            ifindex: 2,
            gateway: None,
        });
        assert_eq!(f.route(&"198.19.1.20".parse().unwrap()).unwrap().ifindex, 2);
        f.remove_route(&"198.19.1.0/24".parse().unwrap());
        assert_eq!(
            f.route(&"198.19.1.20".parse().unwrap())
                .unwrap()
                .prefix
                .prefix_len(),
            0
        );
    }
}
