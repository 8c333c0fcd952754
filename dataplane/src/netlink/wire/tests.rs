use std::net::{Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

/// A message with a raw fixed header and attributes.
fn raw(kind: u16, nl_flags: u16, fixed: &[u8], attributes: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = Vec::new();
    header(&mut m, kind, nl_flags, 7);
    m.extend_from_slice(fixed);
    for (t, v) in attributes {
        attr(&mut m, *t, v);
    }
    finish(&mut m);
    m
}

fn one(datagram: &[u8]) -> Result<Decoded, ParseError> {
    let mut it = messages(datagram);
    let m = it.next().expect("a message")?;
    assert!(it.next().is_none());
    decode(&m)
}

fn event(datagram: &[u8]) -> KernelEvent {
    match one(datagram) {
        Ok(Decoded::Event(e)) => e,
        other => panic!("not an event: {other:?}"),
    }
}

fn rtmsg(family: u8, dst_len: u8, table: u8, rtype: u8) -> Vec<u8> {
    let mut b = vec![family, dst_len, 0, 0, table, 3, 0, rtype];
    b.extend_from_slice(&0u32.to_ne_bytes());
    b
}

fn ndmsg(family: u8, ifindex: u32, state: u16, ndm_flags: u8) -> Vec<u8> {
    let mut b = vec![family, 0, 0, 0];
    b.extend_from_slice(&ifindex.to_ne_bytes());
    b.extend_from_slice(&state.to_ne_bytes());
    b.extend_from_slice(&[ndm_flags, 1]);
    b
}

const GW: [u8; 4] = [198, 18, 0, 1];
const DST: [u8; 4] = [198, 19, 5, 0];

#[test]
fn a_unicast_main_table_route_decodes_with_gateway_and_metric() {
    let m = raw(
        msg::NEWROUTE,
        0,
        &rtmsg(AF_INET, 24, 254, rtn::UNICAST),
        &[
            (rta::TABLE, &254u32.to_ne_bytes()),
            (rta::DST, &DST),
            (rta::GATEWAY, &GW),
            (rta::OIF, &3u32.to_ne_bytes()),
            (rta::PRIORITY, &100u32.to_ne_bytes()),
        ],
    );
    assert_eq!(
        event(&m),
        KernelEvent::Route {
            route: KernelRoute {
                route: Route {
                    prefix: "198.19.5.0/24".parse().unwrap(),
                    ifindex: 3,
                    gateway: Some(IpAddr::V4(GW.into())),
                },
                metric: 100,
            },
            replace: false,
        }
    );
}

#[test]
fn local_broadcast_and_other_table_routes_are_ignored() {
    for (table, rtype) in [(255, 2), (255, 3), (254, 5), (254, 4), (254, 9), (100, 1)] {
        let m = raw(
            msg::NEWROUTE,
            0,
            &rtmsg(AF_INET, 24, table, rtype),
            &[(rta::DST, &DST), (rta::OIF, &3u32.to_ne_bytes())],
        );
        assert_eq!(one(&m), Ok(Decoded::Ignored), "table {table} type {rtype}");
    }
    // RTA_TABLE overrides rtm_table (tables above 255).
    let m = raw(
        msg::NEWROUTE,
        0,
        &rtmsg(AF_INET, 24, 254, rtn::UNICAST),
        &[
            (rta::TABLE, &1000u32.to_ne_bytes()),
            (rta::OIF, &3u32.to_ne_bytes()),
        ],
    );
    assert_eq!(one(&m), Ok(Decoded::Ignored));
}

#[test]
fn unreachable_blackhole_and_prohibit_routes_become_reject_routes() {
    for rtype in [rtn::BLACKHOLE, rtn::UNREACHABLE, rtn::PROHIBIT] {
        let m = raw(
            msg::NEWROUTE,
            0,
            &rtmsg(AF_INET6, 0, 254, rtype),
            &[(rta::OIF, &1u32.to_ne_bytes())],
        );
        let KernelEvent::Route { route, .. } = event(&m) else {
            panic!()
        };
        assert_eq!(route.route.ifindex, REJECT_IFINDEX);
        assert_eq!(route.route.prefix, IpPrefix::any_v6());
    }
}

#[test]
fn a_multipath_route_takes_its_first_hop() {
    let mut mp = Vec::new();
    for (ifindex, gw) in [(4u32, [198, 18, 0, 4]), (5, [198, 18, 0, 5])] {
        let mut hop = vec![0u8; RTNEXTHOP_LEN];
        attr(&mut hop, rta::GATEWAY, &gw);
        let len = hop.len() as u16;
        hop[0..2].copy_from_slice(&len.to_ne_bytes());
        hop[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        mp.extend_from_slice(&hop);
    }
    let m = raw(
        msg::NEWROUTE,
        flags::REPLACE,
        &rtmsg(AF_INET, 24, 254, rtn::UNICAST),
        &[(rta::DST, &DST), (rta::MULTIPATH, &mp)],
    );
    let KernelEvent::Route { route, replace } = event(&m) else {
        panic!()
    };
    assert!(replace);
    assert_eq!(route.route.ifindex, 4);
    assert_eq!(
        route.route.gateway,
        Some(IpAddr::V4([198, 18, 0, 4].into()))
    );
}

#[test]
fn an_ipv4_route_via_an_ipv6_gateway_keeps_the_v6_gateway() {
    let mut via = 10u16.to_ne_bytes().to_vec();
    via.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
    let m = raw(
        msg::NEWROUTE,
        0,
        &rtmsg(AF_INET, 0, 254, rtn::UNICAST),
        &[(rta::VIA, &via), (rta::OIF, &2u32.to_ne_bytes())],
    );
    let KernelEvent::Route { route, .. } = event(&m) else {
        panic!()
    };
    assert_eq!(route.route.gateway, Some("fd00::1".parse().unwrap()));
}

#[test]
fn a_route_without_a_device_is_ignored() {
    let m = raw(
        msg::NEWROUTE,
        0,
        &rtmsg(AF_INET, 24, 254, rtn::UNICAST),
        &[(rta::DST, &DST), (30, &7u32.to_ne_bytes())],
    );
    assert_eq!(one(&m), Ok(Decoded::Ignored));
}

#[test]
fn a_destination_of_the_wrong_size_is_an_error() {
    let m = raw(
        msg::NEWROUTE,
        0,
        &rtmsg(AF_INET, 24, 254, rtn::UNICAST),
        &[(rta::DST, &[1, 2, 3])],
    );
    assert!(matches!(
        one(&m),
        Err(ParseError::BadAttributeValue { kind: 1, .. })
    ));
    let m = raw(
        msg::NEWROUTE,
        0,
        &rtmsg(AF_INET, 33, 254, rtn::UNICAST),
        &[(rta::OIF, &1u32.to_ne_bytes())],
    );
    assert_eq!(one(&m), Err(ParseError::BadPrefixLength { len: 33 }));
}

#[test]
fn incomplete_and_failed_neighbours_are_absent_stale_and_permanent_usable() {
    let dst = [198, 18, 0, 9];
    let mac = [2, 0, 0, 0, 0, 9];
    for (state, usable) in [
        (nud::INCOMPLETE, false),
        (nud::FAILED, false),
        (nud::NONE, false),
        (nud::REACHABLE, true),
        (nud::STALE, true),
        (nud::DELAY, true),
        (nud::PROBE, true),
        (nud::PERMANENT, true),
        (nud::NOARP, true),
    ] {
        let m = raw(
            msg::NEWNEIGH,
            0,
            &ndmsg(AF_INET, 3, state, 0),
            &[(nda::DST, &dst), (nda::LLADDR, &mac)],
        );
        let expect = if usable {
            KernelEvent::Neighbour(Neighbour {
                ifindex: 3,
                addr: IpAddr::V4(dst.into()),
                mac: EthernetAddress(mac),
            })
        } else {
            KernelEvent::NeighbourGone {
                ifindex: 3,
                addr: IpAddr::V4(dst.into()),
            }
        };
        assert_eq!(event(&m), expect, "state {state:#x}");
    }
}

#[test]
fn proxy_and_bridge_entries_are_ignored() {
    let dst = [198, 18, 0, 9];
    let m = raw(
        msg::NEWNEIGH,
        0,
        &ndmsg(AF_INET, 3, nud::PERMANENT, nud::NTF_PROXY),
        &[(nda::DST, &dst)],
    );
    assert_eq!(one(&m), Ok(Decoded::Ignored));
    let m = raw(
        msg::NEWNEIGH,
        0,
        &ndmsg(7, 3, nud::PERMANENT, 0),
        &[(nda::LLADDR, &[2, 0, 0, 0, 0, 1])],
    );
    assert_eq!(one(&m), Ok(Decoded::Ignored));
    let mut ifi = vec![7u8, 0, 1, 0];
    ifi.extend_from_slice(&3u32.to_ne_bytes());
    ifi.extend_from_slice(&[0; 8]);
    assert_eq!(one(&raw(msg::DELLINK, 0, &ifi, &[])), Ok(Decoded::Ignored));
}

#[test]
fn a_link_without_a_name_is_an_error_and_a_loopback_has_no_mac() {
    let mut ifi = vec![0u8, 0];
    ifi.extend_from_slice(&772u16.to_ne_bytes());
    ifi.extend_from_slice(&1u32.to_ne_bytes());
    ifi.extend_from_slice(&1u32.to_ne_bytes());
    ifi.extend_from_slice(&0u32.to_ne_bytes());
    let m = raw(
        msg::NEWLINK,
        0,
        &ifi,
        &[(ifla::MTU, &65536u32.to_ne_bytes())],
    );
    assert!(matches!(
        one(&m),
        Err(ParseError::MissingAttribute { kind: 3, .. })
    ));
    let m = raw(
        msg::NEWLINK,
        0,
        &ifi,
        &[
            (ifla::IFNAME, b"lo\0"),
            (ifla::MTU, &65536u32.to_ne_bytes()),
            (ifla::ADDRESS, &[0; 6]),
        ],
    );
    let KernelEvent::Link(l) = event(&m) else {
        panic!()
    };
    assert_eq!((l.name.as_str(), l.mac, l.admin_up), ("lo", None, true));
}

#[test]
fn an_ipv4_address_is_the_local_one_not_the_peer() {
    let m = raw(
        msg::NEWADDR,
        0,
        &[AF_INET, 32, 0, 0, 5, 0, 0, 0],
        &[
            (ifa::ADDRESS, &[198, 18, 9, 2]),
            (ifa::LOCAL, &[198, 18, 9, 1]),
        ],
    );
    assert_eq!(
        event(&m),
        KernelEvent::Addr(IfAddr {
            ifindex: u32::from_ne_bytes([5, 0, 0, 0]),
            addr: IpAddr::V4([198, 18, 9, 1].into()),
            prefix_len: 32,
        })
    );
}

#[test]
fn acks_errors_and_done_are_told_apart() {
    let err = |e: i32| raw(msg::ERROR, 0, &e.to_ne_bytes(), &[]);
    assert_eq!(one(&err(0)), Ok(Decoded::Ack));
    assert_eq!(one(&err(-libc::EPERM)), Ok(Decoded::Error(libc::EPERM)));
    assert_eq!(one(&err(i32::MIN)), Ok(Decoded::Error(i32::MAX)));
    assert!(one(&raw(msg::ERROR, 0, &[0, 0], &[])).is_err());
    assert_eq!(
        one(&raw(msg::DONE, 0, &0i32.to_ne_bytes(), &[])),
        Ok(Decoded::Done)
    );
    assert_eq!(
        one(&raw(msg::DONE, 0, &(-libc::EBUSY).to_ne_bytes(), &[])),
        Ok(Decoded::Error(libc::EBUSY))
    );
    assert_eq!(one(&raw(msg::NOOP, 0, &[], &[])), Ok(Decoded::Ignored));
    assert_eq!(one(&raw(msg::OVERRUN, 0, &[], &[])), Ok(Decoded::Overrun));
}

#[test]
fn the_resolve_request_is_newneigh_with_ntf_use_and_create() {
    let mut b = Vec::new();
    resolve_request(&mut b, 9, 4, "198.18.0.9".parse().unwrap());
    let m = messages(&b).next().unwrap().unwrap();
    assert_eq!(m.kind, msg::NEWNEIGH);
    assert_eq!(
        m.flags,
        flags::REQUEST | flags::ACK | flags::CREATE | flags::REPLACE
    );
    assert_eq!(m.seq, 9);
    assert_eq!(b.len(), NLMSG_HDRLEN + NDMSG_LEN + 8);
    assert_eq!(
        &m.body[..11],
        &ndmsg(AF_INET, 4, nud::NONE, nud::NTF_USE)[..11]
    );
    assert_eq!(m.body[11], 0);
    let a: Vec<_> = attrs(&m.body[NDMSG_LEN..]).map(Result::unwrap).collect();
    assert_eq!(a, vec![(nda::DST, &[198u8, 18, 0, 9][..])]);

    resolve_request(&mut b, 10, 4, "fd00::9".parse().unwrap());
    assert_eq!(b.len(), NLMSG_HDRLEN + NDMSG_LEN + 20);
    assert_eq!(b[NLMSG_HDRLEN], AF_INET6);
}

#[test]
fn dump_requests_carry_the_family_neutral_header() {
    let mut b = Vec::new();
    for (what, kind, len) in [
        (Dump::Links, msg::GETLINK, IFINFOMSG_LEN),
        (Dump::Addresses, msg::GETADDR, IFADDRMSG_LEN),
        (Dump::Routes, msg::GETROUTE, RTMSG_LEN),
        (Dump::Neighbours, msg::GETNEIGH, NDMSG_LEN),
    ] {
        dump_request(&mut b, what, 3);
        let m = messages(&b).next().unwrap().unwrap();
        assert_eq!(
            (m.kind, m.flags, m.body.len()),
            (kind, flags::REQUEST | flags::DUMP, len)
        );
        assert!(m.body.iter().all(|&x| x == 0));
    }
}

#[test]
fn a_bad_message_length_stops_the_iteration() {
    let mut d = raw(msg::NOOP, 0, &[], &[]);
    d.extend_from_slice(&raw(msg::NOOP, 0, &[], &[]));
    d[0] = 200;
    let all: Vec<_> = messages(&d).collect();
    assert_eq!(all.len(), 1);
    assert!(matches!(
        all[0],
        Err(ParseError::BadMessageLength { len: 200, .. })
    ));
    let mut d = raw(msg::NOOP, 0, &[], &[]);
    d[0] = 15;
    assert!(matches!(messages(&d).next(), Some(Err(_))));
    assert!(matches!(
        messages(&[1, 2, 3]).next(),
        Some(Err(ParseError::TruncatedHeader { have: 3 }))
    ));
}

fn ip_strategy() -> impl Strategy<Value = IpAddr> + Clone {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn prefix_strategy() -> impl Strategy<Value = IpPrefix> + Clone {
    (ip_strategy(), any::<u8>()).prop_map(|(a, l)| {
        let max = if a.is_ipv4() { 33 } else { 129 };
        IpPrefix::new(a, l % max).unwrap()
    })
}

fn event_strategy() -> impl Strategy<Value = KernelEvent> {
    let link = (
        any::<u32>(),
        "[a-z][a-z0-9.-]{0,14}",
        proptest::option::of(any::<[u8; 6]>()),
        any::<u32>(),
        any::<bool>(),
        0u8..10,
    )
        .prop_map(|(ifindex, name, mac, mtu, admin_up, oper)| {
            KernelEvent::Link(Link {
                ifindex,
                name,
                mac: mac.map(EthernetAddress),
                mtu,
                admin_up,
                oper: OperState::from(oper),
            })
        });
    let ifaddr = (any::<u32>(), ip_strategy(), any::<u8>()).prop_map(|(ifindex, addr, l)| {
        let prefix_len = l % if addr.is_ipv4() { 33 } else { 129 };
        IfAddr {
            ifindex,
            addr,
            prefix_len,
        }
    });
    let route = (
        prefix_strategy(),
        any::<u32>(),
        proptest::option::of(ip_strategy()),
        any::<u32>(),
    )
        .prop_map(|(prefix, ifindex, gateway, metric)| KernelRoute {
            route: Route {
                prefix,
                ifindex,
                gateway: gateway.filter(|_| ifindex != REJECT_IFINDEX),
            },
            metric,
        });
    let neighbour = (any::<u32>(), ip_strategy(), any::<[u8; 6]>());
    prop_oneof![
        link,
        any::<u32>().prop_map(|ifindex| KernelEvent::LinkGone { ifindex }),
        ifaddr.clone().prop_map(KernelEvent::Addr),
        ifaddr.prop_map(KernelEvent::AddrGone),
        (route.clone(), any::<bool>())
            .prop_map(|(route, replace)| KernelEvent::Route { route, replace }),
        route.prop_map(KernelEvent::RouteGone),
        neighbour
            .clone()
            .prop_map(|(ifindex, addr, mac)| KernelEvent::Neighbour(Neighbour {
                ifindex,
                addr,
                mac: EthernetAddress(mac),
            })),
        neighbour.prop_map(|(ifindex, addr, _)| KernelEvent::NeighbourGone { ifindex, addr }),
    ]
}

fn parse_all(d: &[u8]) -> Vec<Result<Decoded, ParseError>> {
    messages(d).map(|m| m.and_then(|m| decode(&m))).collect()
}

proptest! {
    #[test]
    fn kernel_style_messages_decode_to_what_they_were_built_from(
        evs in proptest::collection::vec(event_strategy(), 1..8)
    ) {
        let mut d = Vec::new();
        for e in &evs {
            build::event(&mut d, e, 1);
        }
        build::done(&mut d, 1);
        let mut want: Vec<_> = evs.into_iter().map(|e| Ok(Decoded::Event(e))).collect();
        want.push(Ok(Decoded::Done));
        prop_assert_eq!(parse_all(&d), want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(d in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_all(&d);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        kind in prop_oneof![Just(2u16), Just(3), 16u16..=30],
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut d = Vec::new();
        header(&mut d, kind, 0, 1);
        d.extend_from_slice(&body);
        finish(&mut d);
        let _ = parse_all(&d);
    }

    #[test]
    fn a_truncated_datagram_is_an_error_never_a_panic(
        evs in proptest::collection::vec(event_strategy(), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut d = Vec::new();
        for e in &evs {
            build::event(&mut d, e, 1);
        }
        let at = cut.index(d.len());
        let parsed = parse_all(&d[..at]);
        // Cut inside a message: the last result is an error.
        let whole: usize = messages(&d).filter_map(Result::ok)
            .scan(0, |n, m| { *n += align4(NLMSG_HDRLEN + m.body.len()); Some(*n) })
            .filter(|&n| n == at).count();
        if at > 0 && whole == 0 {
            prop_assert!(parsed.last().is_some_and(Result::is_err));
        }
    }

    #[test]
    fn flipped_bytes_in_valid_messages_never_panic(
        evs in proptest::collection::vec(event_strategy(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut d = Vec::new();
        for e in &evs {
            build::event(&mut d, e, 1);
        }
        for (i, x) in flips {
            let i = i.index(d.len());
            d[i] ^= x;
        }
        let _ = parse_all(&d);
    }
}
