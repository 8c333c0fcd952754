use super::*;
use crate::netlink::wire::OperState;
use crate::route::{FibMiss, NextHop, REJECT_IFINDEX};

fn mac(b: u8) -> EthernetAddress {
    EthernetAddress([2, 0, 0, 0, 0, b])
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn link(ifindex: u32, name: &str, mtu: u32) -> KernelEvent {
    KernelEvent::Link(Link {
        ifindex,
        name: name.into(),
        mac: Some(mac(ifindex as u8)),
        mtu,
        admin_up: true,
        oper: OperState::Up,
    })
}

fn down(ifindex: u32, name: &str, mtu: u32) -> KernelEvent {
    KernelEvent::Link(Link {
        ifindex,
        name: name.into(),
        mac: Some(mac(ifindex as u8)),
        mtu,
        admin_up: false,
        oper: OperState::Down,
    })
}

fn addr(ifindex: u32, a: &str) -> IfAddr {
    IfAddr {
        ifindex,
        addr: ip(a),
        prefix_len: 24,
    }
}

fn kroute(prefix: &str, ifindex: u32, gw: Option<&str>, metric: u32) -> KernelRoute {
    KernelRoute {
        route: Route {
            prefix: prefix.parse().unwrap(),
            ifindex,
            gateway: gw.map(ip),
        },
        metric,
    }
}

fn add(r: KernelRoute) -> KernelEvent {
    KernelEvent::Route {
        route: r,
        replace: false,
    }
}

fn neigh(ifindex: u32, a: &str, m: u8) -> KernelEvent {
    KernelEvent::Neighbour(Neighbour {
        ifindex,
        addr: ip(a),
        mac: mac(m),
    })
}

/// A host with lo (1), the served lan0 (2) and wan0 (3), and mgmt0 (4)
/// which the dataplane does not serve.
fn dump() -> Vec<KernelEvent> {
    vec![
        KernelEvent::Link(Link {
            ifindex: 1,
            name: "lo".into(),
            mac: None,
            mtu: 65536,
            admin_up: true,
            oper: OperState::Unknown,
        }),
        link(2, "lan0", 1500),
        link(3, "wan0", 9000),
        link(4, "mgmt0", 1500),
        KernelEvent::Addr(addr(1, "127.0.0.1")),
        KernelEvent::Addr(addr(2, "fe80::2")),
        KernelEvent::Addr(addr(2, "198.19.1.1")),
        KernelEvent::Addr(addr(2, "fd00:1::1")),
        KernelEvent::Addr(addr(3, "198.18.0.2")),
        KernelEvent::Addr(addr(4, "198.18.99.1")),
        add(kroute("198.19.1.0/24", 2, None, 0)),
        add(kroute("198.18.0.0/24", 3, None, 0)),
        add(kroute("0.0.0.0/0", 3, Some("198.18.0.1"), 0)),
        add(kroute("198.18.99.0/24", 4, None, 0)),
        add(kroute("fd00:1::/64", 2, None, 256)),
        neigh(3, "198.18.0.1", 0xfe),
        neigh(4, "198.18.99.7", 0x77),
    ]
}

fn mirror() -> Mirror {
    Mirror::new([("lan0", PortRole::Inside), ("wan0", PortRole::Outside)])
}

fn loaded() -> (Mirror, Tables) {
    let mut m = mirror();
    let mut t = Tables::default();
    m.snapshot(dump()).unwrap().install(&mut t);
    (m, t)
}

fn feed(m: &mut Mirror, t: &mut Tables, evs: Vec<KernelEvent>) -> Vec<FibUpdate> {
    let mut out = Vec::new();
    for e in evs {
        m.update(e, &mut out);
    }
    for u in &out {
        u.apply(t);
    }
    out
}

#[test]
fn a_snapshot_serves_only_the_named_ethernet_interfaces_in_their_roles() {
    let (_, t) = loaded();
    let mut served: Vec<_> = t.fib.interfaces().cloned().collect();
    served.sort_by_key(|i| i.ifindex);
    assert_eq!(
        served,
        vec![
            Interface {
                ifindex: 2,
                mac: mac(2),
                mtu: 1500,
                role: PortRole::Inside
            },
            Interface {
                ifindex: 3,
                mac: mac(3),
                mtu: 9000,
                role: PortRole::Outside
            },
        ]
    );
    assert_eq!(
        t.fib.resolve(&ip("198.18.50.50")),
        Ok(NextHop {
            ifindex: 3,
            src_mac: mac(3),
            dst_mac: mac(0xfe),
            mtu: 9000
        })
    );
    // The neighbour on the unserved interface is not mirrored.
    assert_eq!(t.fib.neighbours().count(), 1);
}

#[test]
fn a_route_via_an_unserved_interface_is_kept_so_it_is_not_forwarded_elsewhere() {
    let (_, t) = loaded();
    assert_eq!(t.fib.route(&ip("198.18.99.7")).unwrap().ifindex, 4);
    assert_eq!(t.fib.resolve(&ip("198.18.99.7")), Err(FibMiss::NoRoute));
}

#[test]
fn every_address_is_local_and_addr_on_prefers_a_routable_one() {
    let (_, t) = loaded();
    for a in [
        "127.0.0.1",
        "198.19.1.1",
        "198.18.0.2",
        "198.18.99.1",
        "fe80::2",
    ] {
        assert!(t.local.contains(&ip(a)), "{a}");
    }
    assert_eq!(t.addr_on(2, true), Some(ip("fd00:1::1")));
    assert_eq!(t.addr_on(2, false), Some(ip("198.19.1.1")));
    assert_eq!(t.addr_on(3, true), None);
}

#[test]
fn a_missing_or_non_ethernet_interface_fails_the_snapshot() {
    let mut m = Mirror::new([("wan9", PortRole::Outside)]);
    assert!(matches!(
        m.snapshot(dump()),
        Err(MirrorError::NoSuchInterface(n)) if n == "wan9"
    ));
    let mut m = Mirror::new([("lo", PortRole::Inside)]);
    assert!(matches!(
        m.snapshot(dump()),
        Err(MirrorError::NotEthernet(n)) if n == "lo"
    ));
}

#[test]
fn the_lowest_metric_is_installed_and_the_next_takes_over_when_it_goes() {
    let (mut m, mut t) = loaded();
    let p = "198.19.7.0/24";
    let slow = kroute(p, 3, Some("198.18.0.1"), 200);
    let fast = kroute(p, 3, Some("198.18.0.9"), 100);
    feed(&mut m, &mut t, vec![add(slow)]);
    let out = feed(&mut m, &mut t, vec![add(fast)]);
    assert_eq!(out, vec![FibUpdate::Route(fast.route)]);
    // A worse route to the same prefix changes nothing.
    let out = feed(&mut m, &mut t, vec![add(kroute(p, 2, None, 300))]);
    assert!(out.is_empty());
    let out = feed(&mut m, &mut t, vec![KernelEvent::RouteGone(fast)]);
    assert_eq!(out, vec![FibUpdate::Route(slow.route)]);
    assert_eq!(
        t.fib.route(&ip("198.19.7.1")).unwrap().gateway,
        Some(ip("198.18.0.1"))
    );
    feed(
        &mut m,
        &mut t,
        vec![
            KernelEvent::RouteGone(slow),
            KernelEvent::RouteGone(kroute(p, 2, None, 300)),
        ],
    );
    assert_eq!(
        t.fib.route(&ip("198.19.7.1")).unwrap().prefix.prefix_len(),
        0
    );
}

#[test]
fn a_replace_takes_the_place_of_the_route_with_the_same_metric() {
    let (mut m, mut t) = loaded();
    let new = kroute("0.0.0.0/0", 3, Some("198.18.0.5"), 0);
    let out = feed(
        &mut m,
        &mut t,
        vec![KernelEvent::Route {
            route: new,
            replace: true,
        }],
    );
    assert_eq!(out, vec![FibUpdate::Route(new.route)]);
    // The replaced route is gone: deleting the new one leaves none.
    let out = feed(&mut m, &mut t, vec![KernelEvent::RouteGone(new)]);
    assert_eq!(out, vec![FibUpdate::RouteGone(IpPrefix::any_v4())]);
}

#[test]
fn a_reject_route_drops_what_a_shorter_route_would_forward() {
    let (mut m, mut t) = loaded();
    feed(
        &mut m,
        &mut t,
        vec![add(kroute("198.18.50.0/24", REJECT_IFINDEX, None, 0))],
    );
    assert_eq!(t.fib.resolve(&ip("198.18.50.50")), Err(FibMiss::NoRoute));
    assert!(t.fib.resolve(&ip("198.18.51.50")).is_ok());
}

#[test]
fn setting_a_link_down_withdraws_its_routes_and_neighbours_the_kernel_does_not_report() {
    let (mut m, mut t) = loaded();
    let out = feed(&mut m, &mut t, vec![down(3, "wan0", 9000)]);
    assert!(out.contains(&FibUpdate::RouteGone(IpPrefix::any_v4())));
    assert!(out.contains(&FibUpdate::NeighbourGone {
        ifindex: 3,
        addr: ip("198.18.0.1")
    }));
    assert!(t.fib.route(&ip("198.18.50.50")).is_none());
    // Still served: its addresses and its place in the tables remain.
    assert!(t.fib.interface(3).is_some());
    assert!(t.local.contains(&ip("198.18.0.2")));
    // Up again: the kernel re-announces connected routes itself.
    let out = feed(&mut m, &mut t, vec![link(3, "wan0", 9000)]);
    assert!(out.is_empty());
}

#[test]
fn a_deleted_link_takes_its_addresses_routes_and_neighbours() {
    let (mut m, mut t) = loaded();
    let out = feed(&mut m, &mut t, vec![KernelEvent::LinkGone { ifindex: 3 }]);
    assert!(out.contains(&FibUpdate::InterfaceGone { ifindex: 3 }));
    assert!(t.fib.interface(3).is_none());
    assert!(t.fib.route(&ip("198.18.0.1")).is_none());
    assert!(!t.local.contains(&ip("198.18.0.2")));
    assert_eq!(t.fib.neighbours().count(), 0);
    // Re-created under a new index, it is served again.
    let out = feed(&mut m, &mut t, vec![link(9, "wan0", 1500)]);
    assert_eq!(
        out,
        vec![FibUpdate::Interface(Interface {
            ifindex: 9,
            mac: mac(9),
            mtu: 1500,
            role: PortRole::Outside
        })]
    );
}

#[test]
fn a_renamed_interface_is_no_longer_served() {
    let (mut m, mut t) = loaded();
    let out = feed(&mut m, &mut t, vec![link(2, "lan-old", 1500)]);
    assert_eq!(out, vec![FibUpdate::InterfaceGone { ifindex: 2 }]);
    assert!(t.fib.interface(2).is_none());
    assert_eq!(m.served().count(), 1);
}

#[test]
fn an_mtu_change_updates_the_interface_and_large_mtus_are_capped() {
    let (mut m, mut t) = loaded();
    feed(&mut m, &mut t, vec![link(2, "lan0", 1400)]);
    assert_eq!(t.fib.interface(2).unwrap().mtu, 1400);
    feed(&mut m, &mut t, vec![link(2, "lan0", 70000)]);
    assert_eq!(t.fib.interface(2).unwrap().mtu, u16::MAX);
    // The same state again is no update.
    assert!(feed(&mut m, &mut t, vec![link(2, "lan0", 70000)]).is_empty());
}

#[test]
fn multicast_neighbours_the_kernel_makes_silently_are_not_mirrored() {
    let (mut m, mut t) = loaded();
    let before = t.fib.neighbours().count();
    let out = feed(
        &mut m,
        &mut t,
        vec![
            neigh(2, "ff02::16", 0x16),
            neigh(2, "ff02::1:ff8b:e55a", 0x5a),
            neigh(2, "224.0.0.22", 0x22),
            neigh(2, "255.255.255.255", 0xff),
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(t.fib.neighbours().count(), before);
}

#[test]
fn a_neighbour_confirmed_again_is_one_update_and_an_incomplete_one_is_gone() {
    let (mut m, mut t) = loaded();
    let out = feed(
        &mut m,
        &mut t,
        vec![
            neigh(2, "198.19.1.9", 9),
            neigh(2, "198.19.1.9", 9),
            neigh(2, "198.19.1.9", 9),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(t.fib.neighbour(2, ip("198.19.1.9")), Some(mac(9)));
    let out = feed(&mut m, &mut t, vec![neigh(2, "198.19.1.9", 10)]);
    assert_eq!(out.len(), 1);
    feed(
        &mut m,
        &mut t,
        vec![KernelEvent::NeighbourGone {
            ifindex: 2,
            addr: ip("198.19.1.9"),
        }],
    );
    assert_eq!(
        t.fib.resolve(&ip("198.19.1.9")),
        Err(FibMiss::NoNeighbour {
            ifindex: 2,
            addr: ip("198.19.1.9")
        })
    );
}

#[test]
fn an_address_on_two_interfaces_stays_local_until_both_are_gone() {
    let (mut m, mut t) = loaded();
    feed(
        &mut m,
        &mut t,
        vec![KernelEvent::Addr(addr(4, "198.18.0.2"))],
    );
    feed(
        &mut m,
        &mut t,
        vec![KernelEvent::AddrGone(addr(3, "198.18.0.2"))],
    );
    assert!(t.local.contains(&ip("198.18.0.2")));
    assert_eq!(t.addr_on(3, false), None);
    feed(
        &mut m,
        &mut t,
        vec![KernelEvent::AddrGone(addr(4, "198.18.0.2"))],
    );
    assert!(!t.local.contains(&ip("198.18.0.2")));
    assert_eq!(t.local.iter().filter(|a| a.is_ipv4()).count(), 3);
}

#[test]
fn updates_applied_twice_change_nothing_more() {
    let (mut m, mut t) = loaded();
    let out = feed(
        &mut m,
        &mut t,
        vec![
            KernelEvent::Addr(addr(2, "198.19.2.1")),
            add(kroute("198.19.2.0/24", 2, None, 0)),
            neigh(2, "198.19.2.7", 7),
        ],
    );
    let once = Snapshot {
        fib: t.fib.clone(),
        local: t.local.clone(),
        iface_addrs: t.iface_addrs.clone(),
    };
    for u in &out {
        u.apply(&mut t);
    }
    let twice = Snapshot {
        fib: t.fib.clone(),
        local: t.local.clone(),
        iface_addrs: t.iface_addrs.clone(),
    };
    assert_eq!(once, twice);
    assert_eq!(once.local.len(), t.local.len());
}

#[test]
fn a_reset_replaces_everything_mirrored() {
    let (_, mut t) = loaded();
    let mut other = Mirror::new([("mgmt0", PortRole::Inside)]);
    let s = other.snapshot(dump()).unwrap();
    FibUpdate::Reset(Box::new(s.clone())).apply(&mut t);
    assert_eq!(t.fib.interfaces().count(), 1);
    assert!(t.fib.interface(4).is_some());
    assert_eq!(t.fib.neighbour(4, ip("198.18.99.7")), Some(mac(0x77)));
}

#[test]
fn events_after_a_snapshot_match_a_snapshot_of_the_later_dump() {
    let (mut m, mut t) = loaded();
    let later = vec![
        KernelEvent::Addr(addr(2, "198.19.3.1")),
        add(kroute("198.19.3.0/24", 2, None, 0)),
        neigh(2, "198.19.3.3", 3),
        KernelEvent::RouteGone(kroute("198.18.99.0/24", 4, None, 0)),
        link(3, "wan0", 1400),
    ];
    feed(&mut m, &mut t, later.clone());
    let mut full = dump();
    full.retain(|e| *e != add(kroute("198.18.99.0/24", 4, None, 0)));
    full.extend(later);
    let fresh = mirror().snapshot(full).unwrap();
    let now = Snapshot {
        fib: t.fib.clone(),
        local: t.local.clone(),
        iface_addrs: t.iface_addrs.clone(),
    };
    assert_eq!(now, fresh);
}
