use std::net::IpAddr;

use dataplane::api::{Direction, EspMode, NatAction};
use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};
use dataplane::spd::{PolicyAction, PortRange};
use proptest::prelude::*;

use super::*;

const LAB_A: &str = include_str!("../../../deploy/configs/lab-gw-a.conf");
const LAB_B: &str = include_str!("../../../deploy/configs/lab-gw-b.conf");

fn errors(src: &str) -> Vec<ConfigError> {
    match check(src, &ConfigOnly) {
        Ok(_) => panic!("expected errors for:\n{src}"),
        Err(ConfigErrors(e)) => e,
    }
}

fn one_error(src: &str) -> ConfigError {
    let e = errors(src);
    assert_eq!(e.len(), 1, "{e:?}");
    e.into_iter().next().unwrap()
}

#[test]
fn the_lab_configs_compile_to_mirrored_sas_an_spd_and_nat_rules() {
    let a = check(LAB_A, &ConfigOnly).unwrap_or_else(|e| panic!("{e}"));
    let b = check(LAB_B, &ConfigOnly).unwrap_or_else(|e| panic!("{e}"));
    let da = &a.deployment;
    assert_eq!(da.outside, vec!["a-wan"]);
    assert_eq!(da.inside, vec!["a-lan"]);
    assert_eq!(da.entries.len(), 2);
    let e = &da.entries[0];
    assert_eq!(
        (e.map_name.as_str(), e.seq, e.interface.as_str()),
        ("VPN", 10, "a-wan")
    );
    let out = &e.outbound[0];
    assert_eq!(out.spi, 4096);
    assert_eq!(out.direction, Direction::Outbound);
    assert_eq!(
        (out.enc, out.auth),
        (EncAlg::AesCbc128, AuthAlg::HmacSha1_96)
    );
    assert_eq!(
        out.mode,
        EspMode::Tunnel {
            local: "198.18.0.1".parse().unwrap(),
            remote: "198.18.1.1".parse().unwrap()
        }
    );
    // gw_a's outbound SA is gw_b's inbound one, keys included.
    let b_in = &b.deployment.entries[0].inbound[0];
    assert_eq!(b_in.spi, out.spi);
    assert_eq!(b_in.keys.enc, out.keys.enc);
    assert_eq!(b_in.keys.auth, out.keys.auth);
    // SPD: one protect rule per map entry, IPv4 then IPv6, map order.
    assert_eq!(da.spd.len(), 2);
    assert!(matches!(
        da.spd[0].action,
        PolicyAction::Protect { sa: Some(4096), .. }
    ));
    assert!(matches!(
        da.spd[1].action,
        PolicyAction::Protect { sa: Some(6144), .. }
    ));
    assert!(da.spd[1].selector.src.is_ipv6());
    // NAT: VPN traffic exempt first, the rest PAT'd to a-wan's address.
    assert_eq!(da.nat.len(), 2);
    assert_eq!(da.nat[0].action, NatAction::Exempt);
    assert!(matches!(
        da.nat[1].action,
        NatAction::Pat { outside_addr, .. } if outside_addr == "198.18.0.1".parse::<IpAddr>().unwrap()
    ));
    assert_eq!(a.acl_rules, 4);
}

#[test]
fn unknown_commands_are_errors_at_their_column_with_a_caret() {
    let e = one_error("hostname x\nfrobnicate all the things\n");
    assert_eq!((e.line, e.column), (2, 1));
    let shown = e.to_string();
    assert!(
        shown.contains("line 2, column 1: unknown or unsupported command"),
        "{shown}"
    );
    assert!(
        shown.contains("\n  frobnicate all the things\n  ^^^^^^^^^^"),
        "{shown}"
    );
}

#[test]
fn a_bad_transform_names_the_ones_that_exist() {
    let e = one_error("crypto ipsec transform-set T esp-aes-256 esp-sha-hmac\n");
    assert_eq!((e.line, e.column), (1, 30));
    assert!(
        e.message.contains("unknown transform \"esp-aes-256\""),
        "{}",
        e.message
    );
    assert!(e.message.contains("esp-aes [128|192|256]"), "{}", e.message);
}

#[test]
fn transform_sets_map_to_suites() {
    let src = "crypto ipsec transform-set G esp-gcm 256\ncrypto ipsec transform-set D esp-3des esp-md5-hmac\n mode transport\n";
    let (cfg, w) = parse(src).unwrap();
    assert!(w.is_empty(), "{w:?}");
    let g = cfg.transform_set("G").unwrap();
    assert_eq!(g.algs.enc, EncAlg::AesGcm256(GcmIcv::B16));
    assert_eq!(g.algs.auth, AuthAlg::None);
    let d = cfg.transform_set("D").unwrap();
    assert!(!d.tunnel);
    assert_eq!(d.algs.auth, AuthAlg::HmacMd5_96);
    let e = one_error("crypto ipsec transform-set G esp-gcm esp-sha-hmac\n");
    assert!(e.message.contains("esp-gcm authenticates by itself"));
}

#[test]
fn des_is_accepted_with_a_warning() {
    let (_, w) = parse("crypto ipsec transform-set OLD esp-des esp-md5-hmac\n").unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("insecure"), "{w:?}");
    assert_eq!(w[0].line, 1);
}

#[test]
fn acl_lines_become_selectors_and_bad_wildcards_are_refused() {
    let (cfg, _) = parse(
        "access-list 150 permit tcp 198.19.1.0 0.0.0.255 eq 80 host 198.19.2.7 range 1000 2000\n\
         ip access-list extended NAMED\n permit udp any any eq isakmp\n deny ip any any\n",
    )
    .unwrap();
    let a = &cfg.acl("150").unwrap().entries[0];
    assert_eq!(a.selector.proto, Some(6));
    assert_eq!(a.selector.src.to_string(), "198.19.1.0/24");
    assert_eq!(a.selector.src_ports, PortRange::single(80));
    assert_eq!(a.selector.dst.to_string(), "198.19.2.7/32");
    assert_eq!(a.selector.dst_ports, PortRange { lo: 1000, hi: 2000 });
    let n = cfg.acl("NAMED").unwrap();
    assert_eq!(n.entries.len(), 2);
    assert!(!n.entries[1].permit);
    assert_eq!(n.entries[0].selector.dst_ports, PortRange::single(500));

    let e = one_error("access-list 101 permit ip 10.0.0.0 0.255.0.255 any\n");
    assert_eq!((e.line, e.column), (1, 36));
    assert!(e.message.contains("not contiguous"), "{}", e.message);
    let e = one_error("access-list 101 permit ip 198.19.1.7 0.0.0.255 any\n");
    assert!(
        e.message.contains("did you mean 198.19.1.0"),
        "{}",
        e.message
    );
    let e = one_error("access-list 101 permit tcp any neq 22 any\n");
    assert!(e.message.contains("neq"), "{}", e.message);
    let e = one_error("access-list 42 permit ip any any\n");
    assert!(e.message.contains("found \"ip\""), "{}", e.message);
}

#[test]
fn cross_references_are_checked_with_the_line_that_makes_them() {
    let base = "crypto ipsec transform-set T esp-aes esp-sha-hmac\n\
                access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255\n";
    let keys = " set session-key inbound esp 300 cipher 000102030405060708090a0b0c0d0e0f authenticator 101112131415161718191a1b1c1d1e1f20212223\n \
                set session-key outbound esp 301 cipher 000102030405060708090a0b0c0d0e0f authenticator 101112131415161718191a1b1c1d1e1f20212223\n";
    let iface = "interface wan0\n ip address 198.18.0.1 255.255.255.0\n crypto map M\n";
    // Undefined ACL.
    let src = format!("{base}crypto map M 10 ipsec-manual\n set peer 198.18.1.1\n set transform-set T\n match address 199\n{keys}{iface}");
    let e = one_error(&src);
    assert_eq!((e.line, e.column), (6, 16));
    assert!(e.message.contains("access list 199 is not defined"));
    assert_eq!(e.source_line, " match address 199");
    // Short key.
    let src = format!(
        "{base}crypto map M 10 ipsec-manual\n set peer 198.18.1.1\n set transform-set T\n match address 101\n{}{iface}",
        keys.replacen("cipher 000102030405060708090a0b0c0d0e0f", "cipher 0001", 1)
    );
    let e = one_error(&src);
    assert_eq!(e.line, 7);
    assert!(e.message.contains("16-byte cipher key"), "{}", e.message);
    // Undefined map on an interface.
    let src = format!("{base}interface wan0\n crypto map NOPE\n");
    let e = errors(&src);
    assert!(
        e.iter()
            .any(|e| e.line == 4 && e.message.contains("crypto map NOPE is not defined")),
        "{e:?}"
    );
    // Missing peer.
    let src = format!("{base}crypto map M 10 ipsec-manual\n set transform-set T\n match address 101\n{keys}{iface}");
    let e = one_error(&src);
    assert!(e.message.contains("has no `set peer`"), "{}", e.message);
    // Reserved SPI.
    let e = one_error("crypto map M 10 ipsec-manual\n set session-key inbound esp 255 cipher 00\n");
    assert!(e.message.contains("reserved"), "{}", e.message);
}

#[test]
fn ike_commands_say_they_are_not_supported_yet_instead_of_being_ignored() {
    for (src, col) in [
        ("crypto isakmp policy 10\n encr aes\n", 1),
        ("crypto map VPN 10 ipsec-isakmp\n set peer 1.2.3.4\n", 1),
        ("crypto ikev2 keyring K\n", 1),
        ("interface Tunnel0\n tunnel mode ipsec ipv4\n", 2),
    ] {
        let e = one_error(src);
        assert!(
            e.message.contains("not support yet") || e.message.contains("does not support yet"),
            "{}",
            e.message
        );
        assert_eq!(e.column, col, "{src}");
    }
}

#[test]
fn several_errors_are_reported_together_in_line_order() {
    let e = errors("bogus one\ninterface x\n wibble\ncrypto ipsec transform-set T esp-foo\n");
    let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 3, 4]);
}

#[test]
fn session_keys_are_not_printed_by_debug() {
    let (cfg, _) = parse(LAB_A).unwrap();
    let shown = format!("{cfg:?}");
    assert!(!shown.contains("2b7e1516"), "{shown}");
    assert!(!shown.to_lowercase().contains("43, 126, 21"), "{shown}");
    assert!(shown.contains("<16 bytes>"));
}

#[test]
fn world_readable_key_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gw.conf");
    std::fs::write(&p, LAB_A).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = load(&p, &ConfigOnly).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(load(&p, &ConfigOnly).is_ok());
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("crypto".to_string()),
        Just("map".into()),
        Just("ipsec-manual".into()),
        Just("set".into()),
        Just("session-key".into()),
        Just("inbound".into()),
        Just("esp".into()),
        Just("cipher".into()),
        Just("access-list".into()),
        Just("permit".into()),
        Just("ip".into()),
        Just("any".into()),
        Just("host".into()),
        Just("interface".into()),
        Just("eq".into()),
        Just("range".into()),
        Just("transform-set".into()),
        Just("esp-aes".into()),
        Just("!".into()),
        "[0-9]{1,6}",
        "[0-9a-f]{0,12}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}",
        "fd00:[0-9a-f]{0,4}::/[0-9]{1,3}",
        "\\PC{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// Any text, built from the grammar's own words or not, gives a config
    /// or errors: never a panic, and every error points into the text.
    #[test]
    fn arbitrary_configs_never_panic(lines in prop::collection::vec(
        (any::<bool>(), prop::collection::vec(token(), 0..8)), 0..12)) {
        let src: String = lines
            .iter()
            .map(|(indent, words)| format!("{}{}\n", if *indent { " " } else { "" }, words.join(" ")))
            .collect();
        if let Err(ConfigErrors(errs)) = check(&src, &ConfigOnly) {
            let n = src.lines().count();
            for e in errs {
                prop_assert!(e.line <= n.max(1), "{e:?}");
            }
        }
    }
}
