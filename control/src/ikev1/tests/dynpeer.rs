//! Dynamic peers (seed 003): a spoke whose outside address changes (a
//! DHCP re-lease) follows it, and the hub's dynamic-map entry replaces the
//! spoke's stale SAs when it comes back from the new address, with and
//! without a NAT between them.

use super::*;

const FLOW: (&str, &str) = ("198.19.1.10", "198.19.2.10");

/// The hub: seed 003's router, a dynamic-map entry and a wildcard key.
fn hub() -> Ikev1Policy {
    let mut b = policy(&B4, "espada-lab-psk");
    b.keys[0].peer = "0.0.0.0/0".parse().unwrap();
    b.maps[0].peers.clear();
    b.maps[0].dynamic = Some(("DYN".into(), 10));
    b.maps[0].selectors.clear();
    b
}

/// The spoke with its outside address `local`.
fn spoke(local: &str) -> Ikev1Policy {
    let mut a = policy(&A4, "espada-lab-psk");
    a.maps[0].local = local.parse().unwrap();
    a
}

/// The outbound SAs still installed on one side (installs minus deletes).
fn live(seen: &Seen) -> Vec<&SaParams> {
    crate::ike::test_pairs::live_outbound(&seen.installs, &seen.deletes)
}

/// The spoke's outside address changes from A4's to `new`: the daemon
/// gives the engine the recompiled policy and the address that went.
fn relocate_spoke(net: &mut Net, new: &str) -> (usize, usize) {
    let old = net.a_addr.ip();
    net.a.set_policy(spoke(new));
    net.a_addr = SocketAddr::new(new.parse().unwrap(), 500);
    let sent = net.sent;
    let gone = net.a.local_address_gone(net.now, old);
    net.pump();
    assert_eq!(net.sent, sent, "nothing can be sent from a lost address");
    gone
}

#[test]
fn a_spoke_whose_address_changes_drops_its_sas_and_negotiates_from_the_new_one() {
    let mut net = Net::new(spoke(A4.local), hub());
    net.acquire_a(FLOW);
    let (a_in, a_out) = (net.seen_a.installs[0].2.spi, net.seen_a.installs[0].3.spi);
    assert_eq!(relocate_spoke(&mut net, "198.18.0.2"), (1, 1));
    assert_eq!(net.seen_a.deletes, vec![(a_in, a_out)]);
    assert!(net.a.isakmp_sas(net.now).is_empty());
    assert_eq!(net.a.pairs().count(), 0);
    assert_eq!(net.a.stats().local_addresses_lost, 1);
    assert!(
        net.seen_a
            .logs
            .iter()
            .any(|l| l.contains("local address 198.18.0.1 is gone")),
        "{:#?}",
        net.seen_a.logs
    );
    // The next packet negotiates from the new address.
    net.acquire_a(FLOW);
    assert_eq!(net.seen_a.installs.len(), 2, "{:#?}", net.seen_a.logs);
    let new: IpAddr = "198.18.0.2".parse().unwrap();
    assert_eq!(
        net.seen_a.installs[1].3.mode,
        EspMode::Tunnel {
            local: new,
            remote: B4.local.parse().unwrap()
        }
    );
    assert_eq!(net.a.isakmp_sas(net.now)[0].local, new);
}

#[test]
fn the_hub_replaces_the_sas_of_a_spoke_back_from_a_new_address() {
    let mut net = Net::new(spoke(A4.local), hub());
    net.acquire_a(FLOW);
    let (b_in, b_out) = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    relocate_spoke(&mut net, "198.18.0.2");
    // The hub heard nothing: it still holds the stale pair.
    assert_eq!(net.b.pairs().count(), 1);
    net.acquire_a(FLOW);
    assert_eq!(net.seen_b.installs.len(), 2, "{:#?}", net.seen_b.logs);
    // The stale pair went the moment the new one came in; its ISAKMP SA,
    // left without pairs, too.
    assert_eq!(net.seen_b.deletes, vec![(b_in, b_out)]);
    let new: IpAddr = "198.18.0.2".parse().unwrap();
    let pairs: Vec<_> = net.b.pairs().collect();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].peer, new);
    let sas = net.b.isakmp_sas(net.now);
    assert_eq!(sas.len(), 1, "{sas:?}");
    assert_eq!(sas[0].remote, new);
    assert_eq!(net.b.stats().stale_pairs_replaced, 1);
    assert!(net.seen_b.logs.iter().any(|l| l.contains(
        "dynamic peer 198.18.0.2:500 replaces 198.18.0.1:500 for the same proxy identities"
    )));
    // Nothing the hub still has sends to the old address.
    for o in live(&net.seen_b) {
        assert_eq!(
            o.mode,
            EspMode::Tunnel {
                local: B4.local.parse().unwrap(),
                remote: new
            }
        );
    }
    // And traffic keeps flowing: a rekey from the spoke supersedes, it
    // does not replace (same address and port).
    let out = net.seen_a.installs[1].3.spi;
    net.a.sa_expired(net.now, Direction::Outbound, out, false);
    net.pump();
    assert_eq!(net.seen_b.installs.len(), 3);
    assert_eq!(net.seen_b.deletes.len(), 1);
    assert_eq!(net.b.stats().stale_pairs_replaced, 1);
}

#[test]
fn behind_a_nat_the_hub_replaces_the_sas_of_the_old_mapping() {
    let mut net = Net::new(spoke(A4.local), hub());
    net.nat = true;
    net.acquire_a(FLOW);
    assert_eq!(net.seen_b.installs.len(), 1, "{:#?}", net.seen_b.logs);
    let (b_in, b_out) = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    assert_eq!(
        net.seen_b.installs[0].3.udp_encap.map(|u| u.dst_port),
        Some(5500)
    );
    // The spoke moves behind the same NAT; the NAT maps it to new ports.
    relocate_spoke(&mut net, "198.18.0.2");
    net.nat_shift = 2000;
    net.acquire_a(FLOW);
    assert_eq!(net.seen_a.installs.len(), 2, "{:#?}", net.seen_a.logs);
    assert_eq!(net.seen_b.installs.len(), 2, "{:#?}", net.seen_b.logs);
    assert_mirrored(&net.seen_a.installs[1], &net.seen_b.installs[1]);
    assert_eq!(net.seen_b.deletes, vec![(b_in, b_out)]);
    let sas = net.b.isakmp_sas(net.now);
    assert_eq!(sas.len(), 1, "{sas:?}");
    assert_eq!(sas[0].remote, NAT_ADDR.parse::<IpAddr>().unwrap());
    assert_eq!(net.b.endpoints(sas[0].remote).map(|e| e.2), Some(6500));
    assert_eq!(net.b.pairs().count(), 1);
    let live = live(&net.seen_b);
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].udp_encap.map(|u| u.dst_port), Some(6500));
    assert_eq!(net.b.stats().stale_pairs_replaced, 1);
}

#[test]
fn initial_contact_only_when_nothing_is_held_with_the_peer() {
    // A new ISAKMP SA while the pair is still in use (the old one was
    // cleared, then the pair is rekeyed): no INITIAL-CONTACT, so the peer
    // keeps the pair in use until it expires.
    let mut net = Net::v4();
    net.acquire_a(FLOW);
    net.a.clear_isakmp(net.now);
    net.pump();
    assert!(net.b.isakmp_sas(net.now).is_empty());
    let out = net.seen_a.installs[0].3.spi;
    net.a.sa_expired(net.now, Direction::Outbound, out, false);
    net.pump();
    assert_eq!(net.a.stats().phase1_established, 2);
    assert_eq!(net.seen_b.installs.len(), 2, "{:#?}", net.seen_b.logs);
    assert!(net.seen_b.deletes.is_empty(), "{:#?}", net.seen_b.logs);
    assert_eq!(net.b.pairs().count(), 2);
    // A restarted peer holds nothing: it says so, and the old pairs go
    // (a_restarted_peer_s_initial_contact_removes_its_old_sas).
    net.a = Engine::new(policy(&A4, "espada-lab-psk"));
    net.acquire_a(FLOW);
    assert_eq!(net.seen_b.deletes.len(), 2, "{:#?}", net.seen_b.logs);
    assert_eq!(net.b.pairs().count(), 1);
}
