//! Dynamic peers over IKEv2: the hub's dynamic-map entry replaces a
//! spoke's stale CHILD_SAs when the spoke comes back from a new address,
//! as IKEv1's do (seed 003); pairs of other proxies and rekeys stay.

use super::*;

/// The hub: a dynamic-map entry, a wildcard keyring peer, and a policy
/// for any of 198.19.0.0/16 behind the spokes.
fn hub() -> Ikev2Policy {
    let mut b = policy(&B4, "k", "k");
    b.profiles[0].keyring[0].address = Some("0.0.0.0/0".parse().unwrap());
    b.maps[0].peers.clear();
    b.maps[0].dynamic = Some(("DYN".into(), 10));
    b.maps[0].selectors = vec![sel(B4.lan, "198.19.0.0/16")];
    b
}

/// The spoke at outside address `local` with LAN `lan`.
fn spoke(local: &str, lan: &'static str) -> Ikev2Policy {
    let mut a = policy(&A4, "k", "k");
    a.maps[0].local = local.parse().unwrap();
    a.maps[0].selectors = vec![sel(lan, A4.remote_lan)];
    a
}

/// The spoke's outside address changes to `new` (and its LAN to `lan`):
/// it drops what it held, without a word from the lost address.
fn relocate_spoke(net: &mut Net, new: &str, lan: &'static str) {
    relocate_spoke_with(net, new, spoke(new, lan));
}

/// The same with the spoke's whole policy at its new address.
fn relocate_spoke_with(net: &mut Net, new: &str, policy: Ikev2Policy) {
    let old = net.a_addr.ip();
    net.a.set_policy(policy);
    net.a_addr = SocketAddr::new(new.parse().unwrap(), 500);
    let sent = net.sent;
    assert_eq!(net.a.local_address_gone(old), 1);
    net.pump();
    assert_eq!(net.sent, sent, "nothing can be sent from a lost address");
}

/// The outbound SAs still installed on one side (installs minus deletes).
fn live(seen: &Seen) -> Vec<&SaParams> {
    crate::ike::test_pairs::live_outbound(&seen.installs, &seen.deletes)
}

#[test]
fn the_hub_replaces_the_child_sas_of_a_spoke_back_from_a_new_address() {
    let mut net = Net::new(spoke(A4.local, A4.lan), hub());
    net.acquire_from("198.19.1.10");
    established(&net);
    let b_old = (net.seen_b.installs[0].2.spi, net.seen_b.installs[0].3.spi);
    relocate_spoke(&mut net, "198.18.0.2", A4.lan);
    let mark = net.wire.len();
    net.acquire_from("198.19.1.10");
    assert_eq!(net.seen_b.installs.len(), 2, "{:#?}", net.seen_b.logs);
    assert_mirrored(&net.seen_a.installs[1], &net.seen_b.installs[1]);
    // The old pair and its IKE SA went the moment the new pair was in;
    // INITIAL_CONTACT from the new address alone would not have done it.
    assert_eq!(net.seen_b.deletes, vec![b_old]);
    assert_eq!(net.b.stats().stale_pairs_replaced, 1);
    assert_eq!(net.b.stats().initial_contact_deletes, 0);
    let sas = net.b.ike_sas();
    assert_eq!(sas.len(), 1);
    assert_eq!(sas[0].1, net.a_addr);
    assert_eq!(net.b.pairs().count(), 1);
    let out = live(&net.seen_b);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].mode,
        EspMode::Tunnel {
            local: B4.local.parse().unwrap(),
            remote: "198.18.0.2".parse().unwrap()
        }
    );
    assert!(
        net.seen_b
            .logs
            .iter()
            .any(|l| l.contains("dynamic peer 198.18.0.2:500 replaces 198.18.0.1:500")),
        "{:#?}",
        net.seen_b.logs
    );
    // The stale peer is not told: nothing went to its old address.
    let old: IpAddr = A4.local.parse().unwrap();
    assert!(net.wire[mark..]
        .iter()
        .all(|(from_a, _, to, _)| *from_a || to.ip() != old));
    // The rest of the hub's view agrees.
    let view = net.b.ikev2_sas(net.now);
    assert_eq!(view.len(), 1);
}

#[test]
fn other_proxy_identities_from_a_new_address_and_rekeys_replace_nothing() {
    let mut net = Net::new(spoke(A4.local, A4.lan), hub());
    net.acquire_from("198.19.1.10");
    // An IKE SA rekey (the CHILD_SA moves to the new IKE SA), then a
    // CHILD_SA rekey on it, from the same endpoint: nothing is replaced.
    net.a.rekey_ike_sas_now(net.now, None);
    net.pump();
    let a_in = net.seen_a.installs[0].2.spi;
    net.a.sa_expired(net.now, Direction::Inbound, a_in, false);
    net.pump();
    assert_eq!(net.seen_b.installs.len(), 2, "{:#?}", net.seen_b.logs);
    assert_eq!(net.b.pairs().count(), 1);
    assert_eq!(net.b.stats().stale_pairs_replaced, 0);
    // Another spoke's LAN (or the same spoke's new one) from another
    // address: a different proxy, both pairs stay.
    relocate_spoke(&mut net, "198.18.0.2", "198.19.3.0/24");
    let deletes = net.seen_b.deletes.len();
    net.acquire_from("198.19.3.10");
    assert_eq!(net.seen_b.installs.len(), 3, "{:#?}", net.seen_b.logs);
    assert_eq!(net.seen_b.deletes.len(), deletes);
    assert_eq!(net.b.pairs().count(), 2);
    assert_eq!(net.b.ike_sas().len(), 2);
    assert_eq!(net.b.stats().stale_pairs_replaced, 0);
}

#[test]
fn a_static_entry_keeps_a_pair_from_another_address() {
    // Not a dynamic map: two peers of one static entry may carry the same
    // proxy (IOS tries them in order); nothing is replaced.
    let mut b = hub();
    b.maps[0].dynamic = None;
    b.maps[0].peers = vec![A4.local.parse().unwrap(), "198.18.0.2".parse().unwrap()];
    let mut net = Net::new(spoke(A4.local, A4.lan), b);
    net.acquire_from("198.19.1.10");
    relocate_spoke(&mut net, "198.18.0.2", A4.lan);
    net.acquire_from("198.19.1.10");
    assert_eq!(net.seen_b.installs.len(), 2, "{:#?}", net.seen_b.logs);
    assert!(net.seen_b.deletes.is_empty());
    assert_eq!(net.b.stats().stale_pairs_replaced, 0);
}

#[test]
fn an_ike_sa_with_pairs_of_other_proxies_stays_until_its_last_is_replaced() {
    // The spoke protects two LANs, two entries: two CHILD_SAs on one IKE
    // SA at the hub.
    const TAG2: PolicyTag = PolicyTag { map: 1, seq: 20 };
    let two_lans = |local: &str| {
        let mut a = spoke(local, A4.lan);
        let mut e = a.maps[0].clone();
        e.tag = TAG2;
        e.seq = 20;
        e.selectors = vec![sel("198.19.3.0/24", A4.remote_lan)];
        a.maps.push(e);
        a
    };
    let mut net = Net::new(two_lans(A4.local), hub());
    net.acquire_from("198.19.1.10");
    net.acquire_for(TAG2, "198.19.3.10");
    assert_eq!((net.b.ike_sas().len(), net.b.pairs().count()), (1, 2));
    // Back from .2, the spoke's first LAN alone: its old pair goes, the
    // old IKE SA stays for the second LAN's pair, still in use there.
    relocate_spoke_with(&mut net, "198.18.0.2", two_lans("198.18.0.2"));
    net.acquire_from("198.19.1.10");
    assert_eq!(net.b.stats().stale_pairs_replaced, 1);
    assert_eq!((net.b.ike_sas().len(), net.b.pairs().count()), (2, 2));
    // The second LAN from .2 too: the last old pair goes, and the old IKE
    // SA with it.
    net.acquire_for(TAG2, "198.19.3.10");
    assert_eq!(net.b.stats().stale_pairs_replaced, 2);
    let sas = net.b.ike_sas();
    assert_eq!(
        (sas.len(), net.b.pairs().count()),
        (1, 2),
        "{:#?}",
        net.seen_b.logs
    );
    assert_eq!(sas[0].1, net.a_addr);
}

#[test]
fn a_dynamic_entry_without_a_crypto_acl_takes_the_spokes_proposal() {
    // Seed 003's hub has no `match address` in its dynamic map: the
    // CHILD_SA protects what the spoke proposes, IPv4 or IPv6.
    let mut b = hub();
    b.maps[0].selectors.clear();
    let mut net = Net::new(spoke(A4.local, A4.lan), b);
    net.acquire_from("198.19.1.10");
    established(&net);
    let (_, proxy, _, _) = &net.seen_b.installs[0];
    assert_eq!(
        *proxy,
        sel(B4.lan, A4.lan),
        "the spoke's proposal, mirrored"
    );
    assert_mirrored(&net.seen_a.installs[0], &net.seen_b.installs[0]);
    // A static entry with no selectors takes nothing (the config compiler
    // refuses one, but the engine must not read it as "any").
    let mut b = policy(&B4, "k", "k");
    b.maps[0].selectors.clear();
    let mut net = Net::new(spoke(A4.local, A4.lan), b);
    net.acquire_from("198.19.1.10");
    assert!(net.seen_b.installs.is_empty());
    assert_eq!(net.b.stats().ts_unacceptable, 1);
}
