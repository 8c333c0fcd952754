//! Every IOS config in the five seeds (`deploy/configs/seeds/`, interface
//! names and addresses changed for the lab) parses into the model and
//! compiles: 001 (IKEv1 over a VTI), 002 (IKEv2 over a VTI), 003 (IKEv1,
//! dynamic map) and 004 (IKEv1, dynamic map with Tunnel Endpoint
//! Discovery). Should one stop compiling, the test says exactly how: only
//! with "not supported yet" at the items listed per file.

use super::super::ike::TunnelMode;
use super::super::model::{CryptoMapKind, NatSelector};
use super::super::{
    compile, Config, ConfigAddresses, ErrorKind, InterfaceResolver, ResolvedInterface,
};
use super::parse_ok;

macro_rules! seed {
    ($f:literal) => {
        (
            $f,
            include_str!(concat!("../../../../deploy/configs/seeds/", $f)),
        )
    };
}

const SEEDS: [(&str, &str); 7] = [
    seed!("001-r2.conf"),
    seed!("001-r3.conf"),
    seed!("002-router1.conf"),
    seed!("002-router2.conf"),
    seed!("003-router.conf"),
    seed!("004-daphne.conf"),
    seed!("004-fred.conf"),
];

/// (line, what) of every "not supported yet" error, per file.
fn not_supported(name: &str) -> Vec<(u32, &'static str)> {
    match name {
        "001-r2.conf" | "001-r3.conf" => vec![],
        // IKEv1 over a VTI (001), IKEv2 over a VTI (002): compile.
        "002-router1.conf" | "002-router2.conf" => vec![],
        "003-router.conf" => vec![],
        // TED (discover) compiles to IKEv1 entries that probe for their
        // peer.
        _ => vec![],
    }
}

/// The config's own interfaces, then the lab's: seed 001's configs name
/// their tunnel source (a-wan, b-wan) without an interface block of their
/// own, as the seed shows only the tunnel.
fn seed_kernel(cfg: &Config) -> impl Fn(&str) -> Option<ResolvedInterface> + '_ {
    move |name: &str| {
        ConfigAddresses(cfg).resolve(name).or_else(|| {
            let addrs: &[&str] = match name {
                "a-wan" => &["198.18.0.1", "fd00:1::1"],
                "b-wan" => &["198.18.1.1", "fd00:2::1"],
                _ => return None,
            };
            Some(ResolvedInterface {
                ifindex: 100,
                addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            })
        })
    }
}

#[test]
fn every_seed_config_compiles_or_fails_only_on_what_is_not_supported_yet() {
    for (name, text) in SEEDS {
        let cfg = parse_ok(text);
        let want = not_supported(name);
        let errors = match compile(&cfg, &seed_kernel(&cfg)) {
            Ok(_) if want.is_empty() => continue,
            Ok(_) => panic!("{name} compiled, but {want:?} should not"),
            Err(e) => e,
        };
        let got: Vec<(u32, String)> = errors
            .iter()
            .map(|e| {
                assert_eq!(e.kind, ErrorKind::NotSupportedYet, "{name}: {e}");
                assert!(e.message.contains("not supported yet"), "{name}: {e}");
                (e.span.line, e.message.clone())
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: {got:?}");
        for ((line, msg), (wline, wmsg)) in got.iter().zip(&want) {
            assert_eq!(line, wline, "{name}: {msg}");
            assert!(
                msg.starts_with(wmsg),
                "{name} line {line}: {msg:?} should start with {wmsg:?}"
            );
        }
    }
}

#[test]
fn seed_001_vtis_compile_to_any_to_any_ikev1_entries_facing_each_other() {
    for (conf, wan, local, peer) in [
        (SEEDS[0].1, "a-wan", "fd00:1::1", "fd00:2::1"),
        (SEEDS[1].1, "b-wan", "fd00:2::1", "fd00:1::1"),
    ] {
        let cfg = parse_ok(conf);
        let c = compile(&cfg, &seed_kernel(&cfg)).unwrap();
        let [e] = &c.ikev1.maps[..] else {
            panic!("{:?}", c.ikev1.maps)
        };
        assert_eq!(e.map, "Tunnel23-head-0");
        assert_eq!(e.local, local.parse::<std::net::IpAddr>().unwrap());
        assert_eq!(e.peers, [peer.parse::<std::net::IpAddr>().unwrap()]);
        // `mode transport` in TRA: still tunnel mode, as the seed's debug
        // shows.
        assert!(e.transforms.iter().all(|t| t.tunnel));
        assert_eq!(e.selectors.len(), 1);
        assert_eq!(e.selectors[0].src.to_string(), "::/0");
        assert_eq!(e.selectors[0].dst.to_string(), "::/0");
        // No route into the tunnel and only a link-local IPv6 address (the
        // IPv4 one is not of the tunnel's family): it protects only the
        // router's own link-local traffic through it, the seed's `ping
        // FE80::23:3` over Tunnel23.
        let rules: Vec<String> = c
            .spd
            .iter()
            .map(|r| format!("{} -> {}", r.selector.src, r.selector.dst))
            .collect();
        assert_eq!(rules, ["fe80::/10 -> fe80::/10"]);
        let [t] = &c.tunnels[..] else {
            panic!("{:?}", c.tunnels)
        };
        assert_eq!(
            (t.name.as_str(), t.ipv6, t.routes.len()),
            ("Tunnel23", true, 0)
        );
        assert!(t.addrs.iter().all(|(a, len)| a.is_ipv6() && *len == 64));
        assert_eq!(
            c.outside.as_deref(),
            Some(wan),
            "the tunnel source is outside"
        );
    }
}

#[test]
fn seed_001_vti_parses_its_tunnel_and_transport_mode() {
    let cfg = parse_ok(SEEDS[0].1);
    let t = &cfg.interface("Tunnel23").unwrap().tunnel;
    assert_eq!(t.mode.as_ref().unwrap().value, TunnelMode::IpsecIpv6);
    assert_eq!(
        t.destination.as_ref().unwrap().value,
        "fd00:2::1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(t.protection.as_ref().unwrap().value, "PRO");
    let ts = cfg.transform_set("TRA").unwrap();
    assert_eq!(ts.mode, super::super::model::TransformMode::Transport);
    assert_eq!(cfg.ike.ipsec_profiles[0].transform_sets[0].value, "TRA");
}

#[test]
fn seed_002_keyring_peer_hostname_stays_in_the_peer_block() {
    // `hostname host1` inside `peer peer1` is the peer's, not the router's.
    let cfg = parse_ok(SEEDS[2].1);
    assert!(cfg.hostname.is_none());
    let peer = &cfg.ike.ikev2_keyrings[0].peers[0];
    assert_eq!(peer.hostname.as_deref(), Some("host1"));
    assert!(peer.psk_local.is_some() && peer.psk_remote.is_some());
    assert_eq!(cfg.ike.ikev2_profiles[0].lifetime, Some(120));
    assert_eq!(cfg.ike.ikev2_proposals[0].encryption.len(), 2);
}

#[test]
fn seed_003_router_keeps_its_nat_and_dynamic_map() {
    let cfg = parse_ok(SEEDS[4].1);
    assert_eq!(cfg.hostname.as_ref().unwrap().value, "Router");
    assert!(matches!(&cfg.nat[0].selector, NatSelector::List(a) if a.value == "100"));
    assert_eq!(cfg.acl("100").unwrap().entries.len(), 2);
    let CryptoMapKind::Isakmp(e) = &cfg.crypto_maps[0].kind else {
        panic!()
    };
    assert_eq!(e.dynamic.as_ref().unwrap().value, "DYN");
    assert_eq!(cfg.interfaces.iter().filter(|i| i.shutdown).count(), 4);
    // DES warns; housekeeping warns once per line.
    assert!(cfg.warnings.iter().any(|w| w.message.contains("56-bit")));
}

#[test]
fn seed_004_ted_map_has_discover() {
    for (_, text) in &SEEDS[5..] {
        let cfg = parse_ok(text);
        let CryptoMapKind::Isakmp(e) = &cfg.crypto_maps[0].kind else {
            panic!()
        };
        assert!(e.discover);
        assert_eq!(
            cfg.ike.dynamic_maps[0]
                .entry
                .match_address
                .as_ref()
                .unwrap()
                .value,
            "101"
        );
        assert!(cfg.has_secrets);
        // The enable password is redacted wherever it is shown.
        assert!(cfg
            .warnings
            .iter()
            .all(|w| !w.source_line.contains("enable password cisco")));
    }
}

#[test]
fn seed_004_compiles_to_a_discovering_dynamic_entry() {
    use dataplane::spd::{PortRange, TrafficSelector};
    let sel = |s: &str, d: &str| TrafficSelector {
        src: s.parse().unwrap(),
        dst: d.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    for (i, (local, lan, remote_lan)) in [
        ("198.18.0.1", "198.19.1.0/24", "198.19.2.0/24"),
        ("198.18.1.1", "198.19.2.0/24", "198.19.1.0/24"),
    ]
    .into_iter()
    .enumerate()
    {
        let (name, text) = SEEDS[5 + i];
        let cfg = parse_ok(text);
        let c = compile(&cfg, &seed_kernel(&cfg)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let [e] = c.ikev1.maps.as_slice() else {
            panic!("{name}: {:?}", c.ikev1.maps)
        };
        assert!(e.discover, "{name}");
        assert!(e.peers.is_empty(), "{name}");
        assert_eq!(e.dynamic, Some(("ted-map".to_string(), 10)), "{name}");
        assert_eq!(
            e.local,
            local.parse::<std::net::IpAddr>().unwrap(),
            "{name}"
        );
        assert_eq!(e.selectors, [sel(lan, remote_lan)], "{name}");
        // The ACL protects: an acquire for the LAN-to-LAN flow triggers
        // the probe.
        assert!(
            c.spd.iter().any(|r| r.selector == sel(lan, remote_lan)
                && matches!(
                    r.action,
                    dataplane::spd::PolicyAction::Protect { sa: None, .. }
                )),
            "{name}: {:?}",
            c.spd
        );
        // The wildcard key authenticates whichever peer answers.
        assert!(c.ikev1.key_for("203.0.113.9".parse().unwrap()).is_some());
    }
}

#[test]
fn discover_without_match_address_is_an_error_at_the_dynamic_map() {
    let text = SEEDS[5].1.replace("match address 101\n", "");
    let cfg = parse_ok(&text);
    let errors = compile(&cfg, &seed_kernel(&cfg)).unwrap_err();
    assert!(
        errors.iter().any(|e| e.kind == ErrorKind::Missing
            && e.message
                .contains("crypto dynamic-map ted-map 10 has no \"match address\"")
            && e.message.contains("discover")),
        "{errors:?}"
    );
}

#[test]
fn discover_with_an_ikev2_profile_is_not_supported_yet() {
    let text = SEEDS[5].1.replace(
        "match address 101\n",
        "match address 101\nset ikev2-profile P\n",
    );
    let cfg = parse_ok(&text);
    let errors = compile(&cfg, &seed_kernel(&cfg)).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.kind == ErrorKind::NotSupportedYet
                && e.message.contains("discover) with IKEv2")),
        "{errors:?}"
    );
}

/// The config without its IKE items: what this build can run of it.
fn without_ike(mut cfg: Config) -> Config {
    cfg.ike = Default::default();
    cfg.crypto_maps
        .retain(|e| matches!(e.kind, CryptoMapKind::Manual(_)));
    let maps: Vec<String> = cfg.crypto_maps.iter().map(|e| e.name.clone()).collect();
    for i in &mut cfg.interfaces {
        i.tunnel = Default::default();
        if i.crypto_map
            .as_ref()
            .is_some_and(|m| !maps.contains(&m.value))
        {
            i.crypto_map = None;
        }
    }
    cfg
}

#[test]
fn every_seed_config_compiles_once_its_ike_items_are_taken_out() {
    for (name, text) in SEEDS {
        let cfg = without_ike(parse_ok(text));
        let c = compile(&cfg, &ConfigAddresses(&cfg)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(c.sas.is_empty() && c.spd.is_empty(), "{name}");
    }
}

#[test]
fn seed_003_nat_exempts_the_vpn_and_translates_the_rest() {
    use dataplane::api::{NatAction, NatRule};
    use dataplane::spd::{PortRange, TrafficSelector};
    let cfg = without_ike(parse_ok(SEEDS[4].1));
    let c = compile(&cfg, &ConfigAddresses(&cfg)).unwrap();
    let sel = |s: &str, d: &str| TrafficSelector {
        src: s.parse().unwrap(),
        dst: d.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    assert_eq!(
        c.nat,
        [
            NatRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24"),
                action: NatAction::Exempt,
            },
            NatRule {
                selector: sel("198.19.1.0/24", "0.0.0.0/0"),
                // a-wan is the config's first interface (ConfigAddresses
                // numbers them from 1).
                action: NatAction::Pat {
                    outside_ifindex: 1,
                    outside_addr: "198.18.0.1".parse().unwrap(),
                },
            },
        ]
    );
}
