//! IKEv2 compilation: seed 002's two routers, crypto maps with
//! `set ikev2-profile`, IOS's default proposal, and every refusal at its
//! line.

use std::net::IpAddr;

use super::super::{compile, Compiled, ConfigAddresses, ConfigError, ErrorKind};
use super::parse_ok;
use crate::ike::crypto::{DhGroup, Prf};
use crate::ikev2::policy::{IkeId, RemoteIdMatch};
use crate::ikev2::{IkeEncr, IkeInteg};

const R1: &str = include_str!("../../../../deploy/configs/seeds/002-router1.conf");
const R2: &str = include_str!("../../../../deploy/configs/seeds/002-router2.conf");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn compile_ok(src: &str) -> Compiled {
    let cfg = parse_ok(src);
    match compile(&cfg, &ConfigAddresses(&cfg)) {
        Ok(c) => c,
        Err(e) => panic!("did not compile:\n{}", super::super::render_errors(&e)),
    }
}

fn compile_errs(src: &str) -> Vec<ConfigError> {
    let cfg = parse_ok(src);
    match compile(&cfg, &ConfigAddresses(&cfg)) {
        Ok(_) => panic!("compiled, errors expected:\n{src}"),
        Err(e) => e,
    }
}

/// Fails unless `errs` are exactly (line, kind, message prefix).
fn assert_errs(errs: &[ConfigError], want: &[(u32, ErrorKind, &str)]) {
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.span.line, e.kind, e.message.as_str()))
        .collect();
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((l, k, m), (wl, wk, wm)) in got.iter().zip(want) {
        assert_eq!((l, k), (wl, wk), "{m}");
        assert!(m.contains(wm), "{m:?} should contain {wm:?}");
    }
}

#[test]
fn seed_002_router1_compiles_its_vti_into_the_ikev2_policy() {
    let c = compile_ok(R1);
    assert!(c.ikev1.maps.is_empty(), "nothing is left to IKEv1");
    let p = &c.ikev2;
    assert_eq!(p.proposals.len(), 1);
    let prop = &p.proposals[0];
    assert_eq!(prop.name, "PHASE1-prop");
    assert_eq!(prop.encr, [IkeEncr::TripleDes, IkeEncr::AesCbc(128)]);
    assert_eq!(prop.integ, [IkeInteg::Sha1_96]);
    assert_eq!(prop.prf, [Prf::HmacSha1], "the integrity's hash is the PRF");
    assert_eq!(prop.groups, [DhGroup::Modp1024]);
    assert_eq!(p.profiles.len(), 1);
    assert_eq!(p.entry_profiles, [0]);
    let prof = &p.profiles[0];
    assert_eq!(prof.lifetime, 120);
    assert!(prof.dpd.is_none());
    assert_eq!(
        prof.match_remote,
        [RemoteIdMatch::Address("0.0.0.0/32".parse().unwrap())]
    );
    let peer = prof
        .peer_by_address(ip("198.18.1.1"))
        .expect("keyring peer");
    assert_eq!(peer.name, "peer1");
    assert_eq!(peer.local_key.expose(), b"cisco");
    assert_eq!(peer.remote_key.expose(), b"cisco");
    assert_eq!(p.maps.len(), 1);
    let e = &p.maps[0];
    assert_eq!(e.map, "Tunnel0-head-0");
    assert_eq!(e.peers, [ip("198.18.1.1")]);
    assert_eq!(e.local, ip("198.18.0.1"));
    assert_eq!(e.transforms[0].name, "TS");
    // The VTI's routes protect with the entry's tag.
    assert!(!c.spd.is_empty());
}

#[test]
fn seed_002_router2_without_a_policy_takes_the_default_proposal_as_ios() {
    let c = compile_ok(R2);
    let p = &c.ikev2;
    assert_eq!(p.proposals.len(), 1);
    let d = &p.proposals[0];
    assert_eq!(d.name, "default");
    // The seed's responder answers AES-CBC to an offer of 3DES first:
    // AES-CBC-128 comes before 3DES in the default proposal.
    let aes = d.encr.iter().position(|e| *e == IkeEncr::AesCbc(128));
    let tdes = d.encr.iter().position(|e| *e == IkeEncr::TripleDes);
    assert!(aes < tdes, "{:?}", d.encr);
    assert!(d.integ.contains(&IkeInteg::Sha1_96));
    assert!(d.groups.contains(&DhGroup::Modp1024));
    assert!(c
        .warnings
        .iter()
        .any(|w| w.span.line == 4 && w.message.contains("PHASE1-prop is not used")));
    assert_eq!(p.maps[0].peers, [ip("198.18.0.1")]);
}

const MAP: &str = "\
interface a-wan
 ip address 198.18.0.1 255.255.255.0
 crypto map VPN
interface a-lan
 ip address 198.19.1.1 255.255.255.0
access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255
crypto ipsec transform-set GCM esp-gcm 128
crypto ikev2 proposal P-GCM
 encryption aes-gcm-128
 prf sha256
 group 19
crypto ikev2 proposal P-CBC
 encryption aes-cbc-256
 integrity sha256
 group 14
crypto ikev2 policy POL
 proposal P-GCM
 proposal P-CBC
crypto ikev2 keyring KR
 peer far
  address 198.18.1.1
  pre-shared-key local here-key
  pre-shared-key remote there-key
crypto ikev2 profile PROF
 match identity remote address 198.18.1.1 255.255.255.255
 authentication local pre-share
 authentication remote pre-share
 keyring local KR
 dpd 10 3 on-demand
crypto ikev2 cookie-challenge 8
crypto ikev2 nat keepalive 20
crypto map VPN 10 ipsec-isakmp
 set peer 198.18.1.1
 set transform-set GCM
 set ikev2-profile PROF
 set pfs group19
 match address 101
";

#[test]
fn a_crypto_map_with_an_ikev2_profile_compiles_asymmetric_keys_gcm_and_dpd() {
    let c = compile_ok(MAP);
    assert!(c.ikev1.maps.is_empty());
    let p = &c.ikev2;
    let names: Vec<_> = p.proposals.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["P-GCM", "P-CBC"], "policy order");
    assert_eq!(p.proposals[0].encr, [IkeEncr::AesGcm16(128)]);
    assert!(p.proposals[0].integ.is_empty(), "AEAD has no integrity");
    assert_eq!(p.proposals[0].prf, [Prf::HmacSha256]);
    assert_eq!(p.proposals[0].groups, [DhGroup::Ecp256]);
    let prof = &p.profiles[0];
    let k = prof.peer_by_address(ip("198.18.1.1")).unwrap();
    assert_eq!(k.local_key.expose(), b"here-key");
    assert_eq!(k.remote_key.expose(), b"there-key");
    let dpd = prof.dpd.unwrap();
    assert_eq!((dpd.interval, dpd.retry, dpd.periodic), (10, 3, false));
    assert_eq!(prof.lifetime, 86_400, "IOS's default IKEv2 SA lifetime");
    assert_eq!(p.cookie_threshold, 8);
    assert_eq!(p.nat_keepalive, Some(20));
    let e = &p.maps[0];
    assert_eq!((e.map.as_str(), e.seq), ("VPN", 10));
    assert_eq!(e.pfs, Some(DhGroup::Ecp256));
    assert_eq!(e.selectors.len(), 1);
}

#[test]
fn ikev2_mistakes_are_reported_at_their_lines() {
    // Undefined profile, keyring and proposal.
    let src = MAP
        .replace(" set ikev2-profile PROF", " set ikev2-profile NOPE")
        .replace("\n proposal P-CBC\n", "\n proposal P-NONE\n");
    assert_errs(
        &compile_errs(&src),
        &[
            (
                18,
                ErrorKind::Undefined,
                "crypto ikev2 proposal P-NONE is not defined",
            ),
            (
                35,
                ErrorKind::Undefined,
                "crypto ikev2 profile NOPE is not defined",
            ),
        ],
    );
    let src = MAP.replace(" keyring local KR", " keyring local KX");
    assert_errs(
        &compile_errs(&src),
        &[
            (
                28,
                ErrorKind::Undefined,
                "crypto ikev2 keyring KX is not defined",
            ),
            (
                32,
                ErrorKind::Missing,
                "no crypto ikev2 keyring peer has an address matching 198.18.1.1",
            ),
        ],
    );
    // A CBC proposal without integrity; MD5; an unsupported group.
    let src = MAP
        .replace(" integrity sha256\n", "")
        .replace(" group 19\n", " group 24\n");
    assert_errs(
        &compile_errs(&src),
        &[
            (
                8,
                ErrorKind::NotSupportedYet,
                "group 24 is not supported yet",
            ),
            (12, ErrorKind::Missing, "has no \"integrity\""),
        ],
    );
    let src = MAP.replace(" integrity sha256", " integrity md5");
    assert_errs(
        &compile_errs(&src),
        &[(
            12,
            ErrorKind::NotSupportedYet,
            "MD5 is not supported for IKEv2",
        )],
    );
    // A keyring peer with one key only; a profile without its match and
    // authentication lines.
    let src = MAP
        .replace("  pre-shared-key remote there-key\n", "")
        .replace(
            " match identity remote address 198.18.1.1 255.255.255.255\n",
            "",
        )
        .replace(" authentication remote pre-share\n", "");
    let errs = compile_errs(&src);
    assert!(errs.iter().any(|e| e.span.line == 20
        && e.kind == ErrorKind::Missing
        && e.message.contains("no pre-shared key for both directions")));
    assert!(errs
        .iter()
        .any(|e| e.message.contains("match identity remote address")));
    assert!(errs
        .iter()
        .any(|e| e.message.contains("authentication remote pre-share")));
    // A keyring peer with neither address nor identity.
    let src = MAP.replace("  address 198.18.1.1\n", "  hostname far\n");
    let errs = compile_errs(&src);
    assert!(errs.iter().any(|e| e.span.line == 20
        && e.kind == ErrorKind::NotSupportedYet
        && e.message
            .contains("has neither \"address A [MASK]\" nor \"identity ...\"")));
}

#[test]
fn des_is_refused_in_an_ikev2_proposal_at_its_column() {
    let errs = super::parse_errs("crypto ikev2 proposal X\n encryption aes-cbc-128 des\n");
    assert_eq!((errs[0].span.line, errs[0].span.col), (2, 25));
    assert_eq!(errs[0].kind, ErrorKind::NotSupportedYet);
    assert!(errs[0].message.contains("DES is not supported for IKEv2"));
}

/// Two profiles on one map, FQDN identities, IKEv2 policies per local
/// address.
const PROFILES: &str = "\
interface a-wan
 ip address 198.18.0.1 255.255.255.0
 ipv6 address 2001:db8::1/64
 crypto map VPN
interface a-lan
 ip address 198.19.1.1 255.255.255.0
access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255
access-list 102 permit ip 198.19.1.0 0.0.0.255 198.19.3.0 0.0.0.255
crypto ipsec transform-set TS esp-aes 256 esp-sha256-hmac
crypto ikev2 proposal P1
 encryption aes-cbc-256
 integrity sha256
 group 14
crypto ikev2 proposal P2
 encryption aes-cbc-128
 integrity sha1
 group 14
crypto ikev2 policy LOCAL
 match address local 198.18.0.1
 match address local 2001:db8::1
 proposal P1
crypto ikev2 policy ANY
 proposal P2
crypto ikev2 keyring KB
 peer b
  address 198.18.1.1
  identity fqdn gw-b.espada.lab
  pre-shared-key kb
crypto ikev2 keyring KC
 peer c
  address 198.18.2.1 255.255.255.0
  identity email vpn@c.example
  pre-shared-key kc
 peer d
  identity key-id 12ab
  pre-shared-key kd
crypto ikev2 profile PB
 match identity remote fqdn gw-b.espada.lab
 match identity remote fqdn domain b.espada.lab
 identity local fqdn gw-a.espada.lab
 authentication local pre-share
 authentication remote pre-share
 keyring local KB
 lifetime 3600
crypto ikev2 profile PC
 match identity remote email vpn@c.example
 match identity remote email domain c.example
 match identity remote address 198.18.2.0 255.255.255.0
 match identity remote key-id 12ab
 identity local email vpn@a.example
 authentication local pre-share
 authentication remote pre-share
 keyring local KC
 dpd 10 2 periodic
crypto map VPN 10 ipsec-isakmp
 set peer 198.18.1.1
 set transform-set TS
 set ikev2-profile PB
 match address 101
crypto map VPN 20 ipsec-isakmp
 set peer 198.18.2.1
 set transform-set TS
 set ikev2-profile PC
 match address 102
";

#[test]
fn profiles_identities_and_local_policies_compile_per_entry() {
    let c = compile_ok(PROFILES);
    let p = &c.ikev2;
    let props: Vec<_> = p
        .proposals
        .iter()
        .map(|x| (x.name.as_str(), x.local.clone()))
        .collect();
    assert_eq!(
        props,
        [
            ("P1", vec![ip("198.18.0.1"), ip("2001:db8::1")]),
            ("P2", vec![])
        ]
    );
    let on =
        |a: &str| -> Vec<String> { p.proposals_for(ip(a)).into_iter().map(|x| x.name).collect() };
    assert_eq!(on("198.18.0.1"), ["P1", "P2"]);
    assert_eq!(on("2001:db8::1"), ["P1", "P2"]);
    assert_eq!(on("198.18.0.9"), ["P2"]);
    assert_eq!(p.entry_profiles, [0, 1]);
    let (pb, pc) = (&p.profiles[0], &p.profiles[1]);
    assert_eq!((pb.name.as_str(), pb.lifetime, pb.dpd), ("PB", 3600, None));
    assert_eq!(
        pb.match_remote,
        [
            RemoteIdMatch::Fqdn("gw-b.espada.lab".into()),
            RemoteIdMatch::FqdnDomain("b.espada.lab".into())
        ]
    );
    assert_eq!(pb.local_id, Some(IkeId::Fqdn("gw-a.espada.lab".into())));
    assert_eq!(pb.keyring.len(), 1, "only its own keyring");
    assert_eq!(
        pb.keyring[0].identity,
        Some(IkeId::Fqdn("gw-b.espada.lab".into()))
    );
    assert_eq!(pc.lifetime, 86_400);
    assert_eq!(
        pc.dpd.map(|d| (d.interval, d.retry, d.periodic)),
        Some((10, 2, true))
    );
    assert_eq!(pc.local_id, Some(IkeId::Email("vpn@a.example".into())));
    assert_eq!(
        pc.match_remote,
        [
            RemoteIdMatch::Email("vpn@c.example".into()),
            RemoteIdMatch::EmailDomain("c.example".into()),
            RemoteIdMatch::Address("198.18.2.0/24".parse().unwrap()),
            RemoteIdMatch::KeyId(b"12ab".to_vec()),
        ]
    );
    assert_eq!(
        pc.keyring[0].identity,
        Some(IkeId::Email("vpn@c.example".into()))
    );
    assert_eq!(pc.keyring[1].identity, Some(IkeId::KeyId(b"12ab".to_vec())));
    assert!(pc.keyring[1].address.is_none());
    assert_eq!(pc.keyring[1].local_key.expose(), b"kd");
    // `identity local address` is our address (the default).
    let src = PROFILES.replace(
        " identity local fqdn gw-a.espada.lab",
        " identity local address",
    );
    assert_eq!(compile_ok(&src).ikev2.profiles[0].local_id, None);
    let src = PROFILES.replace(
        " identity local fqdn gw-a.espada.lab",
        " identity local address 192.0.2.1",
    );
    assert_eq!(
        compile_ok(&src).ikev2.profiles[0].local_id,
        Some(IkeId::Address(ip("192.0.2.1")))
    );
}

#[test]
fn profile_and_identity_mistakes_are_reported_at_their_lines() {
    // The static peer of entry 20 has no key in PC's keyring by address
    // (KB's does not count).
    let src = PROFILES.replace("  address 198.18.2.1 255.255.255.0\n", "");
    assert_errs(
        &compile_errs(&src),
        &[(
            59,
            ErrorKind::Missing,
            "no crypto ikev2 keyring peer has an address matching 198.18.2.1",
        )],
    );
    // Undefined proposal in a policy with match address local.
    let src = PROFILES.replace("\n proposal P1\n", "\n proposal P9\n");
    assert_errs(
        &compile_errs(&src),
        &[(
            21,
            ErrorKind::Undefined,
            "crypto ikev2 proposal P9 is not defined",
        )],
    );
    for (from, to, line, kind, msg) in [
        (
            " match address local 198.18.0.1",
            " match address local 198.18.0",
            19,
            ErrorKind::Syntax,
            "",
        ),
        (
            " match address local 198.18.0.1",
            " match fvrf any",
            19,
            ErrorKind::NotSupportedYet,
            "no VRFs",
        ),
        (
            " match identity remote fqdn gw-b.espada.lab",
            " match identity remote fqdn gw..b",
            38,
            ErrorKind::InvalidValue,
            "not a domain name",
        ),
        (
            " match identity remote email vpn@c.example",
            " match identity remote email vpn",
            46,
            ErrorKind::InvalidValue,
            "not an e-mail address",
        ),
        (
            " identity local fqdn gw-a.espada.lab",
            " identity local dn",
            40,
            ErrorKind::NotSupportedYet,
            "certificates",
        ),
        (
            "  identity fqdn gw-b.espada.lab",
            "  identity fqdn",
            27,
            ErrorKind::Syntax,
            "",
        ),
        (
            "  identity email vpn@c.example",
            "  identity email c.example",
            32,
            ErrorKind::InvalidValue,
            "not an e-mail address",
        ),
    ] {
        let src = PROFILES.replace(from, to);
        assert_ne!(src, PROFILES, "{from}");
        let errs = super::parse_errs(&src);
        assert_eq!(errs.len(), 1, "{to}: {errs:#?}");
        assert_eq!(
            (errs[0].span.line, errs[0].kind),
            (line, kind),
            "{to}: {errs:#?}"
        );
        assert!(errs[0].message.contains(msg), "{:?}", errs[0].message);
    }
}

#[test]
fn the_strongswan_lab_config_compiles_with_its_ipv6_identity_match() {
    let c = compile_ok(include_str!(
        "../../../../deploy/configs/lab-ikev2-gw-a.conf"
    ));
    assert_eq!(
        c.ikev2.profiles[0].match_remote,
        [
            RemoteIdMatch::Address("198.18.1.1/32".parse().unwrap()),
            RemoteIdMatch::Address("fd00:2::1/128".parse().unwrap()),
        ]
    );
}

#[test]
fn the_ikev2_hub_and_spoke_lab_configs_compile_to_a_dynamic_entry_without_an_acl() {
    let hub = compile_ok(include_str!(
        "../../../../deploy/configs/lab-ikev2-dyn-gw-a.conf"
    ));
    let e = &hub.ikev2.maps[0];
    assert_eq!(e.dynamic, Some(("DYN".to_string(), 10)));
    assert!(e.peers.is_empty() && e.selectors.is_empty());
    assert_eq!(
        hub.ikev2.profiles[0].keyring[0].address,
        Some("0.0.0.0/0".parse().unwrap())
    );
    assert!(hub.ikev2.profiles[0].dpd.is_some_and(|d| d.periodic));
    let spoke = compile_ok(include_str!(
        "../../../../deploy/configs/lab-ikev2-dyn-gw-b.conf"
    ));
    let e = &spoke.ikev2.maps[0];
    assert_eq!(e.dynamic, None);
    assert_eq!(e.peers, ["198.18.0.1".parse::<std::net::IpAddr>().unwrap()]);
    assert_eq!(e.selectors.len(), 1);
}
