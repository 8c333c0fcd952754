//! The netlink mirror against a real kernel, inside network namespaces the
//! tests create and delete (veth pairs, addresses from 198.18.0.0/15 and
//! fd00::/8, no route out): the snapshot shows the links, addresses and
//! routes; changes made with `ip` arrive as updates within a bounded wait
//! and leave the followed tables equal to a fresh dump; the resolution
//! trigger makes the kernel send ARP / Neighbour Solicitation and the
//! answer lands in the tables. The netlink sockets are opened after the
//! test thread entered its namespace.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{require_root, sh, NetNs};
use dataplane::netlink::{
    Dump, FibUpdate, KernelEvent, Mirror, NetlinkError, ResolveLimiter, RtEvents, RtNetlink,
    Snapshot,
};
use dataplane::pipeline::Tables;
use dataplane::route::{FibMiss, Interface, PortRole, REJECT_IFINDEX};
use dataplane::spd::IpPrefix;
use dataplane::wire::ethernet::EthernetAddress;

/// How long a change may take to show up.
const BOUND: Duration = Duration::from_secs(3);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn prefix(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

/// The management thread's loop, run until `done(tables)` holds.
struct Follower {
    events: RtEvents,
    nl: RtNetlink,
    mirror: Mirror,
    tables: Tables,
    seen: Vec<FibUpdate>,
}

impl Follower {
    fn start(served: &[(&str, PortRole)]) -> Follower {
        let events = RtEvents::subscribe().expect("subscribe");
        let mut nl = RtNetlink::open().expect("netlink");
        let mut mirror = Mirror::new(served.iter().map(|(n, r)| (n.to_string(), *r)));
        let mut tables = Tables::default();
        mirror.load(&mut nl).expect("snapshot").install(&mut tables);
        Follower {
            events,
            nl,
            mirror,
            tables,
            seen: Vec::new(),
        }
    }

    fn until(&mut self, what: &str, done: impl Fn(&Tables) -> bool) -> Duration {
        let t0 = Instant::now();
        while !done(&self.tables) {
            assert!(
                t0.elapsed() < BOUND,
                "{what}: not seen within {BOUND:?}; updates: {:#?}",
                self.seen
            );
            self.events.wait(Duration::from_millis(50)).unwrap();
            let mut out = Vec::new();
            self.mirror
                .follow(&mut self.events, &mut self.nl, &mut out)
                .unwrap();
            for u in &out {
                u.apply(&mut self.tables);
            }
            self.seen.extend(out);
        }
        t0.elapsed()
    }

    fn now(&self) -> Snapshot {
        Snapshot {
            fib: self.tables.fib.clone(),
            local: self.tables.local.clone(),
            iface_addrs: self.tables.iface_addrs.clone(),
        }
    }
}

fn mac(b: [u8; 6]) -> EthernetAddress {
    EthernetAddress(b)
}

#[test]
fn the_snapshot_shows_the_veth_links_addresses_and_routes() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("nlsnap");
    ns.run(
        "ip link add ni type veth peer name np && ip link add nw type veth peer name nv && \
         ip link set ni mtu 1400 && ip link set np mtu 1400 && \
         for d in ni np nw nv; do ip link set $d up; done && \
         ip addr add 198.18.1.1/24 dev ni && ip addr add fd00:1::1/64 dev ni nodad && \
         ip addr add 198.19.1.1/24 dev nw && \
         ip route add 198.19.200.0/24 via 198.19.1.2 dev nw metric 10 && \
         ip -6 route add fd00:200::/64 via fd00:1::2 dev ni && \
         ip route add blackhole 198.18.66.0/24",
    );
    let (ni, nw) = (ns.ifindex("ni"), ns.ifindex("nw"));
    let (ni_mac, nw_mac) = (mac(ns.mac("ni")), mac(ns.mac("nw")));
    ns.enter();
    let mut nl = RtNetlink::open().unwrap();
    let mut mirror = Mirror::new([("ni", PortRole::Inside), ("nw", PortRole::Outside)]);
    let s = mirror.load(&mut nl).unwrap();

    let mut ifaces: Vec<Interface> = s.fib.interfaces().cloned().collect();
    ifaces.sort_by_key(|i| i.ifindex);
    let mut want = vec![
        Interface {
            ifindex: ni,
            mac: ni_mac,
            mtu: 1400,
            role: PortRole::Inside,
        },
        Interface {
            ifindex: nw,
            mac: nw_mac,
            mtu: 1500,
            role: PortRole::Outside,
        },
    ];
    want.sort_by_key(|i| i.ifindex);
    assert_eq!(ifaces, want);

    let route = |p: &str| {
        s.fib
            .routes()
            .find(|r| r.prefix == prefix(p))
            .copied()
            .unwrap_or_else(|| panic!("no route {p}: {:?}", s.fib.routes().collect::<Vec<_>>()))
    };
    assert_eq!(
        (
            route("198.18.1.0/24").ifindex,
            route("198.18.1.0/24").gateway
        ),
        (ni, None)
    );
    assert_eq!(route("198.19.1.0/24").ifindex, nw);
    assert_eq!(route("198.19.200.0/24").gateway, Some(ip("198.19.1.2")));
    assert_eq!(route("198.19.200.0/24").ifindex, nw);
    assert_eq!(route("fd00:1::/64").ifindex, ni);
    assert_eq!(route("fd00:200::/64").gateway, Some(ip("fd00:1::2")));
    assert_eq!(route("198.18.66.0/24").ifindex, REJECT_IFINDEX);
    // Local and broadcast routes live in the local table: not mirrored.
    assert!(s.fib.routes().all(|r| r.prefix != prefix("198.18.1.1/32")));
    assert!(s.fib.routes().all(|r| r.prefix != prefix("ff00::/8")));

    for a in ["198.18.1.1", "fd00:1::1", "198.19.1.1", "127.0.0.1", "::1"] {
        assert!(s.local.contains(&ip(a)), "{a} not local: {:?}", s.local);
    }
    let mut t = Tables::default();
    s.install(&mut t);
    assert_eq!(t.addr_on(ni, true), Some(ip("fd00:1::1")));
    assert_eq!(t.addr_on(nw, false), Some(ip("198.19.1.1")));
    assert_eq!(
        t.fib.resolve(&ip("198.19.200.9")),
        Err(FibMiss::NoNeighbour {
            ifindex: nw,
            addr: ip("198.19.1.2")
        })
    );

    // A served name that is not there fails the snapshot.
    let mut m = Mirror::new([("nx", PortRole::Inside)]);
    assert!(m.load(&mut nl).is_err());
}

#[test]
fn added_and_deleted_routes_and_neighbours_arrive_within_a_bounded_wait() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("nlev");
    ns.run(
        "ip link add ni type veth peer name np && ip link set ni up && ip link set np up && \
         ip addr add 198.18.1.1/24 dev ni && ip addr add fd00:1::1/64 dev ni nodad",
    );
    let ni = ns.ifindex("ni");
    ns.enter();
    let mut f = Follower::start(&[("ni", PortRole::Inside)]);
    let gw_mac = mac([2, 0, 0, 0, 0, 2]);
    let (dst4, dst6) = (ip("198.19.77.7"), ip("fd00:77::7"));
    assert_eq!(f.tables.fib.resolve(&dst4), Err(FibMiss::NoRoute));

    ns.run("ip route add 198.19.77.0/24 via 198.18.1.2 dev ni");
    ns.run("ip -6 route add fd00:77::/64 via fd00:1::2 dev ni");
    let took = f.until("routes added", |t| {
        t.fib
            .route(&dst4)
            .is_some_and(|r| r.prefix.prefix_len() == 24)
            && t.fib
                .route(&dst6)
                .is_some_and(|r| r.prefix.prefix_len() == 64)
    });
    eprintln!("routes added seen after {took:?}");
    assert_eq!(
        f.tables.fib.resolve(&dst4),
        Err(FibMiss::NoNeighbour {
            ifindex: ni,
            addr: ip("198.18.1.2")
        })
    );

    ns.run("ip neigh add 198.18.1.2 lladdr 02:00:00:00:00:02 dev ni nud permanent");
    ns.run("ip -6 neigh add fd00:1::2 lladdr 02:00:00:00:00:02 dev ni nud permanent");
    f.until("neighbours added", |t| {
        t.fib.resolve(&dst4).is_ok_and(|h| h.dst_mac == gw_mac)
            && t.fib.resolve(&dst6).is_ok_and(|h| h.dst_mac == gw_mac)
    });
    assert!(f.seen.contains(&FibUpdate::Neighbour {
        ifindex: ni,
        addr: ip("198.18.1.2"),
        mac: gw_mac
    }));

    ns.run("ip neigh del 198.18.1.2 dev ni && ip -6 neigh del fd00:1::2 dev ni");
    f.until("neighbours deleted", |t| {
        matches!(t.fib.resolve(&dst4), Err(FibMiss::NoNeighbour { .. }))
            && matches!(t.fib.resolve(&dst6), Err(FibMiss::NoNeighbour { .. }))
    });
    ns.run("ip route del 198.19.77.0/24 && ip -6 route del fd00:77::/64");
    f.until("routes deleted", |t| {
        t.fib.route(&dst4).is_none() && t.fib.route(&dst6).is_none()
    });
    assert!(f
        .seen
        .contains(&FibUpdate::RouteGone(prefix("198.19.77.0/24"))));
    assert!(f
        .seen
        .contains(&FibUpdate::RouteGone(prefix("fd00:77::/64"))));
}

#[test]
fn after_link_and_address_changes_the_followed_tables_equal_a_fresh_dump() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("nlconv");
    ns.run(
        "ip link add ni type veth peer name np && ip link add nw type veth peer name nv && \
         for d in ni np nw nv; do ip link set $d up; done && \
         ip addr add 198.18.1.1/24 dev ni && ip addr add fd00:1::1/64 dev ni nodad && \
         ip addr add 198.19.1.1/24 dev nw && ip route add default via 198.19.1.2 && \
         ip route add 198.19.50.0/24 via 198.18.1.2 metric 20",
    );
    let nw = ns.ifindex("nw");
    ns.enter();
    let served = [("ni", PortRole::Inside), ("nw", PortRole::Outside)];
    let mut f = Follower::start(&served);
    assert!(f.tables.fib.route(&ip("198.18.200.1")).is_some());

    // The kernel drops the IPv4 routes via `nw` without a word.
    ns.run(
        "ip link set nw down && ip link set ni mtu 1300 && \
         ip addr add 198.18.9.1/24 dev ni && ip addr del 198.18.1.1/24 dev ni && \
         ip route add 198.19.50.0/24 via 198.18.9.2 metric 10 && \
         ip route replace 198.19.50.0/24 via 198.18.9.3 metric 10 && \
         ip link add nz type veth peer name ny && ip link set nz name nx",
    );
    // The kernel may still be changing things of its own (IPv6 link-local
    // addresses, router solicitations), so each look compares with a dump
    // taken at that moment.
    let nl = std::cell::RefCell::new(RtNetlink::open().unwrap());
    f.until("convergence with a fresh dump", |t| {
        let fresh = Mirror::new(served).load(&mut nl.borrow_mut()).unwrap();
        Snapshot {
            fib: t.fib.clone(),
            local: t.local.clone(),
            iface_addrs: t.iface_addrs.clone(),
        } == fresh
    });
    let t = &f.now();
    assert!(
        t.fib.route(&ip("198.18.200.1")).is_none(),
        "default route via a down link"
    );
    assert_eq!(t.fib.interface(ns.ifindex("ni")).unwrap().mtu, 1300);
    assert!(t.fib.interface(nw).is_some());
    assert_eq!(
        t.fib.route(&ip("198.19.50.1")).unwrap().gateway,
        Some(ip("198.18.9.3"))
    );
    assert!(!t.local.contains(&ip("198.18.1.1")));
}

/// Frames seen on a device, both directions (AF_PACKET, ETH_P_ALL).
struct Capture(i32);

impl Capture {
    fn on(ifindex: u32) -> Capture {
        // SAFETY: plain socket(2) call, checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        };
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        let sll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
            sll_ifindex: ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 0,
            sll_addr: [0; 8],
        };
        // SAFETY: binding our socket with a valid sockaddr_ll.
        let r = unsafe {
            libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(r, 0);
        Capture(fd)
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: recv into a valid buffer on our own socket.
            let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                return all;
            }
            all.push(buf[..n as usize].to_vec());
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor we opened.
        unsafe { libc::close(self.0) };
    }
}

fn ethertype(f: &[u8]) -> u16 {
    u16::from_be_bytes([f[12], f[13]])
}

fn is_arp_request_for(f: &[u8], target: [u8; 4]) -> bool {
    f.len() >= 42 && ethertype(f) == 0x0806 && f[20..22] == [0, 1] && f[38..42] == target
}

fn is_neighbour_solicitation_for(f: &[u8], target: &[u8; 16]) -> bool {
    f.len() >= 78
        && ethertype(f) == 0x86dd
        && f[20] == 58
        && f[54] == 135
        && f[62..78] == target[..]
}

/// IPv4 or IPv6 frames carrying anything but ICMPv6 (ND, MLD): data.
fn is_data(f: &[u8]) -> bool {
    match ethertype(f) {
        0x0800 => true,
        0x86dd => !matches!(f.get(20), Some(58) | Some(0)),
        _ => false,
    }
}

#[test]
fn the_resolve_trigger_sends_arp_and_nd_and_the_answers_fill_the_tables() {
    if !require_root() {
        return;
    }
    let gw = NetNs::new("nlresgw");
    let peer = NetNs::new("nlrespeer");
    sh(&format!(
        "ip link add rg netns {} type veth peer name rp netns {}",
        gw.name, peer.name
    ));
    // No DAD on the link-local addresses either: while they are
    // tentative the kernel answers no solicitation, and ND would wait for
    // its retransmissions (about 2 s) instead of answering at once.
    gw.run(
        "sysctl -qw net.ipv6.conf.rg.accept_dad=0 && ip link set rg up && \
         ip addr add 198.18.2.1/24 dev rg && ip addr add fd00:2::1/64 dev rg nodad",
    );
    peer.run(
        "sysctl -qw net.ipv6.conf.rp.accept_dad=0 && ip link set rp up && \
         ip addr add 198.18.2.2/24 dev rp && ip addr add fd00:2::2/64 dev rp nodad",
    );
    let rg = gw.ifindex("rg");
    let (rg_mac, rp_mac) = (gw.mac("rg"), mac(peer.mac("rp")));
    gw.enter();
    let capture = Capture::on(rg);
    let mut f = Follower::start(&[("rg", PortRole::Outside)]);
    let mut limiter = ResolveLimiter::default();
    let now = Instant::now();

    for (addr, what) in [(ip("198.18.2.2"), "ARP"), (ip("fd00:2::2"), "ND")] {
        let Err(FibMiss::NoNeighbour { ifindex, addr: hop }) = f.tables.fib.resolve(&addr) else {
            panic!("{addr} should lack a neighbour");
        };
        assert_eq!((ifindex, hop), (rg, addr));
        assert!(limiter.allow(ifindex, hop, now));
        f.nl.resolve_neighbour(ifindex, hop).unwrap();
        // The flood that follows asks no more.
        assert!(!limiter.allow(ifindex, hop, now + Duration::from_millis(10)));
        let took = f.until(&format!("{what} answer"), |t| {
            t.fib.resolve(&addr).is_ok_and(|h| h.dst_mac == rp_mac)
        });
        eprintln!("{what}: {addr} resolved {took:?} after the trigger");
    }

    let frames = capture.frames();
    let ours: Vec<&Vec<u8>> = frames.iter().filter(|f| f[6..12] == rg_mac).collect();
    assert!(
        ours.iter().any(|f| is_arp_request_for(f, [198, 18, 2, 2])),
        "no ARP request among {} frames",
        ours.len()
    );
    let target6 = ip("fd00:2::2");
    let IpAddr::V6(t6) = target6 else {
        unreachable!()
    };
    assert!(
        ours.iter()
            .any(|f| is_neighbour_solicitation_for(f, &t6.octets())),
        "no Neighbour Solicitation among {} frames",
        ours.len()
    );
    assert!(!ours.iter().any(|f| is_data(f)), "a data packet was sent");

    // The kernel's own table has the entries too.
    let neighbours = f.nl.dump(Dump::Neighbours).unwrap();
    for a in ["198.18.2.2", "fd00:2::2"] {
        assert!(
            neighbours.iter().any(|e| matches!(e,
                KernelEvent::Neighbour(n) if n.addr == ip(a) && n.mac == rp_mac)),
            "{a} not in the kernel's table: {neighbours:?}"
        );
    }

    // A dynamic entry the kernel ages and re-confirms, not a static one.
    for a in ["198.18.2.2", "fd00:2::2"] {
        let shown = gw.run(&format!("ip neigh show {a} dev rg"));
        assert!(shown.contains("REACHABLE"), "{shown}");
    }

    // Nobody answers for .99: the request is sent, the entry never usable.
    f.nl.resolve_neighbour(rg, ip("198.18.2.99")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(capture
        .frames()
        .iter()
        .any(|f| f[6..12] == rg_mac && is_arp_request_for(f, [198, 18, 2, 99])));
    f.until("nothing for .99", |_| true);
    assert_eq!(f.tables.fib.neighbour(rg, ip("198.18.2.99")), None);

    // An interface that does not exist is the kernel's error, not a panic.
    assert!(matches!(
        f.nl.resolve_neighbour(999_999, ip("198.18.2.2")),
        Err(NetlinkError::Kernel { errno, .. }) if errno == libc::ENODEV
    ));
}
