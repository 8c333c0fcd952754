//! Compilation: exact SAs, SPD and NAT rules, and every cross-reference
//! check with the line and column it reports.

use std::net::IpAddr;

use dataplane::api::{Direction, EspMode, Lifetime, NatAction, NatRule, SaParams};
use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};
use dataplane::spd::{IpPrefix, PolicyAction, PolicyTag, PortRange, SpdRule, TrafficSelector};

use super::super::{compile, Compiled, ConfigAddresses, ConfigError, ErrorKind, ResolvedInterface};
use super::parse_ok;

const LAB_A: &str = include_str!("../../../../deploy/configs/lab-gw-a.conf");
const LAB_B: &str = include_str!("../../../../deploy/configs/lab-gw-b.conf");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// gw_a as the kernel of `deploy/lab.sh` shows it.
fn kernel_a(name: &str) -> Option<ResolvedInterface> {
    match name {
        "a-lan" => Some(ResolvedInterface {
            ifindex: 2,
            addrs: vec![ip("198.19.1.1"), ip("fe80::a:1"), ip("fd00:a::1")],
        }),
        "a-wan" => Some(ResolvedInterface {
            ifindex: 3,
            addrs: vec![ip("198.18.0.1"), ip("fe80::1"), ip("fd00:1::1")],
        }),
        _ => None,
    }
}

fn compile_ok(src: &str) -> Compiled {
    let cfg = parse_ok(src);
    match compile(&cfg, &kernel_a) {
        Ok(c) => c,
        Err(e) => panic!("did not compile:\n{}", super::super::render_errors(&e)),
    }
}

fn compile_errs(src: &str) -> Vec<ConfigError> {
    let cfg = parse_ok(src);
    match compile(&cfg, &kernel_a) {
        Ok(_) => panic!("compiled, errors expected"),
        Err(e) => e,
    }
}

fn where_(e: &[ConfigError]) -> Vec<(u32, u32, ErrorKind)> {
    e.iter()
        .map(|e| (e.span.line, e.span.col, e.kind))
        .collect()
}

/// SaParams has no PartialEq (its keys are secret); compare field by field.
fn assert_sa(
    sa: &SaParams,
    (spi, dir): (u32, Direction),
    (enc, auth): (EncAlg, AuthAlg),
    (k, a): (&str, &str),
    mode: EspMode,
) {
    assert_eq!(
        (sa.spi, sa.direction, sa.enc, sa.auth),
        (spi, dir, enc, auth)
    );
    assert_eq!(sa.keys.enc, hex(k), "cipher key of SPI {spi}");
    assert_eq!(sa.keys.auth, hex(a), "authenticator of SPI {spi}");
    assert_eq!(sa.mode, mode);
    assert_eq!((sa.udp_encap, sa.esn, sa.replay_window), (None, false, 0));
    assert_eq!(sa.lifetime, Lifetime::default());
}

fn sel(src: &str, dst: &str) -> TrafficSelector {
    TrafficSelector {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

fn protect(spi: u32, seq: u32) -> PolicyAction {
    PolicyAction::Protect {
        sa: Some(spi),
        map: PolicyTag { map: 0, seq },
    }
}

#[test]
fn the_lab_config_of_gateway_a_compiles_to_exact_sas_and_rules() {
    let c = compile_ok(LAB_A);
    let v4 = EspMode::Tunnel {
        local: ip("198.18.0.1"),
        remote: ip("198.18.1.1"),
    };
    let cbc_sha = (EncAlg::AesCbc128, AuthAlg::HmacSha1_96);
    assert_eq!(c.sas.len(), 4);
    assert_sa(
        &c.sas[0],
        (4097, Direction::Inbound),
        cbc_sha,
        (
            "2b7e151628aed2a6abf7158809cf4f3c",
            "6c6d6e6f707172737475767778797a7b7c7d7e7f",
        ),
        v4,
    );
    assert_sa(
        &c.sas[1],
        (4096, Direction::Outbound),
        cbc_sha,
        (
            "000102030405060708090a0b0c0d0e0f",
            "101112131415161718191a1b1c1d1e1f20212223",
        ),
        v4,
    );
    // IPv6 LAN traffic rides the same IPv4 tunnel endpoints.
    assert_sa(
        &c.sas[2],
        (6145, Direction::Inbound),
        cbc_sha,
        (
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
            "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3",
        ),
        v4,
    );
    assert_sa(
        &c.sas[3],
        (6144, Direction::Outbound),
        cbc_sha,
        (
            "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf",
            "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3",
        ),
        v4,
    );
    assert_eq!(
        c.spd,
        [
            SpdRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24"),
                action: protect(4096, 10),
            },
            SpdRule {
                selector: sel("fd00:a::/64", "fd00:b::/64"),
                action: protect(6144, 20),
            },
        ]
    );
    // NAT: the VPN traffic is exempt first, the rest of the LAN is PAT'd
    // to a-wan's address (seed 003's NAT exemption).
    assert_eq!(
        c.nat,
        [
            NatRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24"),
                action: NatAction::Exempt,
            },
            NatRule {
                selector: sel("198.19.1.0/24", "0.0.0.0/0"),
                action: pat(),
            },
        ]
    );
    assert_eq!(c.map_names, ["VPN"]);
    assert_eq!(c.outside.as_deref(), Some("a-wan"));
    assert_eq!(c.inside, ["a-lan"]);
    let e = &c.entries[1];
    assert_eq!(
        (e.seq, e.interface.as_str(), e.ifindex, e.local, e.peer),
        (20, "a-wan", 3, ip("198.18.0.1"), ip("198.18.1.1"))
    );
    assert_eq!((e.inbound_spi, e.outbound_spi), (6145, 6144));
    assert_eq!(e.proxy, sel("fd00:a::/64", "fd00:b::/64"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Keys stay out of Debug output, compiled or parsed.
    assert!(!format!("{c:?}").contains("2b7e"));
    assert!(!format!("{:?}", parse_ok(LAB_A)).contains("2b7e"));
}

#[test]
fn gcm_keys_with_their_salt_compile_to_an_ipv6_tunnel() {
    let src = "crypto ipsec transform-set AES128-GCM esp-gcm 128
               ipv6 access-list LAB-V6
 permit ipv6 fd00:a::/64 fd00:b::/64
               crypto map LAB 20 ipsec-manual
 set peer fd00:2::1
 set transform-set AES128-GCM
 match address LAB-V6
               \x20set session-key inbound esp 6144 cipher 356868b1ea91fa7ccb5182307e269a5e978f9a72
               \x20set session-key outbound esp 6145 cipher 33339fb5c1dc3c2c81f4cf8001fb75f2ee2cb27b
               interface a-wan
 crypto map LAB
";
    let c = compile_ok(src);
    let v6 = EspMode::Tunnel {
        local: ip("fd00:1::1"),
        remote: ip("fd00:2::1"),
    };
    let gcm = (EncAlg::AesGcm128(GcmIcv::B16), AuthAlg::None);
    assert_sa(
        &c.sas[0],
        (6144, Direction::Inbound),
        gcm,
        ("356868b1ea91fa7ccb5182307e269a5e978f9a72", ""),
        v6,
    );
    assert_sa(
        &c.sas[1],
        (6145, Direction::Outbound),
        gcm,
        ("33339fb5c1dc3c2c81f4cf8001fb75f2ee2cb27b", ""),
        v6,
    );
    assert_eq!(c.spd[0].action, protect(6145, 20));
    // a-lan is not in this config, so the dataplane has no inside yet.
    assert!(c.inside.is_empty());
}

#[test]
fn the_two_lab_gateways_are_mirror_images() {
    let a = compile_ok(LAB_A);
    let cfg = parse_ok(LAB_B);
    let b = compile(&cfg, &ConfigAddresses(&cfg)).unwrap();
    for sa in &a.sas {
        let twin = b
            .sas
            .iter()
            .find(|s| s.spi == sa.spi && s.direction != sa.direction)
            .unwrap();
        assert_eq!((twin.enc, twin.auth), (sa.enc, sa.auth));
        assert_eq!(twin.keys.enc, sa.keys.enc);
        assert_eq!(twin.keys.auth, sa.keys.auth);
        let (
            EspMode::Tunnel { local, remote },
            EspMode::Tunnel {
                local: l2,
                remote: r2,
            },
        ) = (sa.mode, twin.mode)
        else {
            panic!("tunnel mode")
        };
        assert_eq!((local, remote), (r2, l2));
    }
    assert_eq!(b.spd[0].selector, sel("198.19.2.0/24", "198.19.1.0/24"));
}

const MANUAL: &str = "\
crypto ipsec transform-set T esp-aes esp-sha-hmac
crypto map M 10 ipsec-manual
 set peer 198.18.1.1
 set transform-set T
 match address 101
 set session-key inbound esp 1000 cipher 00112233445566778899aabbccddeeff authenticator 00112233445566778899aabbccddeeff00112233
 set session-key outbound esp 1001 cipher 00112233445566778899aabbccddeeff authenticator 00112233445566778899aabbccddeeff00112233
crypto map M 20 ipsec-manual
 set peer 198.18.7.1
 set transform-set T
 match address 102
 set session-key inbound esp 2000 cipher 00112233445566778899aabbccddeeff authenticator 00112233445566778899aabbccddeeff00112233
 set session-key outbound esp 2001 cipher 00112233445566778899aabbccddeeff authenticator 00112233445566778899aabbccddeeff00112233
interface a-wan
 crypto map M
";

#[test]
fn a_deny_line_falls_through_to_later_map_entries_as_in_ios() {
    let src = format!(
        "{MANUAL}access-list 101 deny ip host 198.19.1.5 any\n\
         access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255\n\
         access-list 102 permit ip 198.19.1.0 0.0.0.255 198.19.3.0 0.0.0.255\n"
    );
    let c = compile_ok(&src);
    assert_eq!(
        c.spd,
        [
            // 198.19.1.5 is denied by entry 10, so entry 20 still protects
            // its traffic to 198.19.3.0/24 ...
            SpdRule {
                selector: sel("198.19.1.5/32", "198.19.3.0/24"),
                action: protect(2001, 20),
            },
            // ... and the rest of its traffic goes in the clear.
            SpdRule {
                selector: sel("198.19.1.5/32", "0.0.0.0/0"),
                action: PolicyAction::Bypass,
            },
            SpdRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24"),
                action: protect(1001, 10),
            },
            SpdRule {
                selector: sel("198.19.1.0/24", "198.19.3.0/24"),
                action: protect(2001, 20),
            },
        ]
    );
}

#[test]
fn a_manual_entry_with_nothing_to_protect_installs_no_keys() {
    // Entry 10's list only denies: its pair would carry none of our
    // traffic and, without selectors, would admit anything the peer
    // decrypted through it. Entry 20 is whole.
    let src = format!(
        "{MANUAL}access-list 101 deny ip host 198.19.1.5 any\n\
         access-list 102 permit ip 198.19.1.0 0.0.0.255 198.19.3.0 0.0.0.255\n"
    );
    let c = compile_ok(&src);
    let spis: Vec<u32> = c.sas.iter().map(|sa| sa.spi).collect();
    assert_eq!(spis, [2000, 2001]);
    assert!(c
        .sas
        .iter()
        .all(|sa| sa.selectors == [sel("198.19.1.0/24", "198.19.3.0/24")]));
    // The deny line still sends the rest of that host's traffic in the
    // clear.
    assert!(c.spd.contains(&SpdRule {
        selector: sel("198.19.1.5/32", "0.0.0.0/0"),
        action: PolicyAction::Bypass,
    }));
    let warned: Vec<_> = c
        .warnings
        .iter()
        .map(|w| (w.span.line, w.message.as_str()))
        .collect();
    assert!(
        warned
            .iter()
            .any(|(line, m)| *line == 2 && m.contains("no permit line")),
        "{warned:?}"
    );
}

#[test]
fn entries_are_ordered_by_sequence_number_not_file_order() {
    let src = MANUAL.replace("crypto map M 10", "crypto map M 30")
        + "access-list 101 permit ip any any\naccess-list 102 permit tcp any any eq 80\n";
    let c = compile_ok(&src);
    let seqs: Vec<u32> = c.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [20, 30]);
    assert_eq!(c.spd[0].action, protect(2001, 20));
    assert_eq!(c.spd[0].selector.proto, Some(6));
    assert_eq!(c.spd[0].selector.dst_ports, PortRange::single(80));
}

const NAT: &str = "\
interface a-wan
 ip nat outside
interface a-lan
 ip nat inside
access-list 100 deny ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255
access-list 100 permit ip 198.19.1.0 0.0.0.255 any
";

fn pat() -> NatAction {
    NatAction::Pat {
        outside_ifindex: 3,
        outside_addr: ip("198.18.0.1"),
    }
}

#[test]
fn nat_acl_deny_lines_exempt_and_permit_lines_translate() {
    let c = compile_ok(&format!(
        "{NAT}ip nat inside source list 100 interface a-wan overload\n"
    ));
    assert_eq!(
        c.nat,
        [
            NatRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24"),
                action: NatAction::Exempt,
            },
            NatRule {
                selector: sel("198.19.1.0/24", "0.0.0.0/0"),
                action: pat(),
            },
        ]
    );
    assert!(c.sas.is_empty() && c.spd.is_empty());
}

#[test]
fn nat_route_maps_compile_entry_by_entry() {
    let src = format!(
        "{NAT}access-list 105 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255\n\
         access-list 110 permit ip 198.19.1.0 0.0.0.255 any\n\
         route-map R permit 10\n match ip address 110\n\
         route-map R deny 5\n match ip address 105\n\
         ip nat inside source route-map R interface a-wan overload\n"
    );
    let c = compile_ok(&src);
    assert_eq!(
        c.nat,
        [
            NatRule {
                selector: sel("198.19.1.0/24", "198.19.2.0/24"),
                action: NatAction::Exempt,
            },
            NatRule {
                selector: sel("198.19.1.0/24", "0.0.0.0/0"),
                action: pat(),
            },
        ]
    );
}

#[test]
fn missing_parts_of_a_manual_entry_are_each_reported_at_the_entry() {
    let src =
        "crypto map M 10 ipsec-manual\n set transform-set T\ninterface a-wan\n crypto map M\n";
    let e = compile_errs(src);
    let msgs: Vec<&str> = e.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        msgs,
        [
            "crypto map M 10 has no \"match address\"",
            "crypto map M 10 has no \"set peer\"",
            "crypto map M 10 has no \"set session-key inbound esp ...\"",
            "crypto map M 10 has no \"set session-key outbound esp ...\"",
            "transform set T is not defined",
        ]
    );
    assert_eq!(where_(&e)[4], (2, 20, ErrorKind::Undefined));
}

#[test]
fn undefined_acls_maps_and_unapplied_maps_are_errors() {
    let e = compile_errs(&MANUAL.replace("crypto map M\n", "crypto map N\n"));
    assert_eq!(
        where_(&e),
        [(2, 1, ErrorKind::Missing), (15, 13, ErrorKind::Undefined),]
    );
    assert!(e[0].message.contains("applied to no interface"));
    let e = compile_errs(MANUAL);
    assert_eq!(
        where_(&e),
        [
            (5, 16, ErrorKind::Undefined),
            (11, 16, ErrorKind::Undefined)
        ]
    );
    assert_eq!(e[0].message, "access list 101 is not defined");
    assert_eq!(e[0].source_line, " match address 101");
}

#[test]
fn crypto_maps_on_two_interfaces_are_not_supported_yet() {
    // The dataplane serves one outside interface.
    let src =
        format!("{MANUAL}access-list 101 permit ip any any\naccess-list 102 permit ip any any\n")
            .replace(
                "crypto map M 20 ipsec-manual",
                "crypto map N 20 ipsec-manual",
            )
            + "interface a-lan\n crypto map N\n";
    let e = compile_errs(&src);
    assert_eq!(where_(&e), [(19, 13, ErrorKind::NotSupportedYet)]);
    assert!(
        e[0].message
            .starts_with("crypto maps on two interfaces (a-wan and a-lan)"),
        "{}",
        e[0].message
    );
}

#[test]
fn inside_interfaces_are_every_other_live_one_and_must_exist() {
    let src = format!(
        "{MANUAL}access-list 101 permit ip any any\naccess-list 102 permit ip any any\n\
         interface a-lan\n ip nat inside\n\
         interface a-dmz\n shutdown\n\
         interface a-up\n ip nat outside\n"
    );
    let cfg = parse_ok(&src);
    // gw_a's kernel has a-lan and a-wan only; shut and NAT-outside
    // interfaces are not the dataplane's, so they need not exist.
    let c = compile(&cfg, &kernel_a).unwrap();
    assert_eq!(c.outside.as_deref(), Some("a-wan"));
    assert_eq!(c.inside, ["a-lan"]);
    let e = compile(&cfg, &|n: &str| {
        if n == "a-lan" {
            None
        } else {
            kernel_a(n)
        }
    })
    .unwrap_err();
    assert_eq!(where_(&e), [(18, 1, ErrorKind::Environment)]);
    assert_eq!(
        e[0].message,
        "interface a-lan does not exist on this machine"
    );
}

#[test]
fn a_standard_acl_cannot_select_crypto_traffic() {
    let src = MANUAL.replace("match address 101", "match address S")
        + "ip access-list standard S\n permit any\naccess-list 102 permit ip any any\n";
    let e = compile_errs(&src);
    assert_eq!(where_(&e), [(5, 16, ErrorKind::InvalidValue)]);
}

#[test]
fn key_lengths_are_checked_against_the_transform_set() {
    let src = format!("{MANUAL}access-list 101 permit ip any any\naccess-list 102 permit ip any any\n")
        .replacen("cipher 00112233445566778899aabbccddeeff authenticator", "cipher 0011223344556677 authenticator", 1)
        .replacen("authenticator 00112233445566778899aabbccddeeff00112233\n set session-key outbound esp 1001", "authenticator 0011\n set session-key outbound esp 1001", 1);
    let e = compile_errs(&src);
    assert_eq!(
        where_(&e),
        [
            (6, 42, ErrorKind::InvalidValue),
            (6, 73, ErrorKind::InvalidValue)
        ]
    );
    assert_eq!(
        e[0].message,
        "the inbound cipher key is 8 bytes; esp-aes in transform set T needs 16 bytes (32 hex digits)"
    );
    assert_eq!(
        e[1].message,
        "the inbound authenticator key is 2 bytes; esp-sha-hmac needs 20 bytes (40 hex digits)"
    );
}

#[test]
fn gcm_keys_include_the_salt_and_take_no_authenticator() {
    let src = "crypto ipsec transform-set G esp-gcm 256\n\
               access-list 101 permit ip any any\n\
               crypto map M 10 ipsec-manual\n set peer 198.18.1.1\n set transform-set G\n match address 101\n\
               \x20set session-key inbound esp 1000 cipher 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n\
               \x20set session-key outbound esp 1001 cipher 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00112233 authenticator 00\n\
               interface a-wan\n crypto map M\n";
    let e = compile_errs(src);
    assert_eq!(
        where_(&e),
        [
            (7, 42, ErrorKind::InvalidValue),
            (8, 130, ErrorKind::InvalidValue)
        ]
    );
    assert!(
        e[0].message
            .contains("the 32-byte AES key followed by the 4-byte salt"),
        "{}",
        e[0].message
    );
}

#[test]
fn duplicate_spis_are_refused_per_direction() {
    let src =
        format!("{MANUAL}access-list 101 permit ip any any\naccess-list 102 permit ip any any\n")
            .replace("inbound esp 2000", "inbound esp 1000")
            .replace("outbound esp 2001", "outbound esp 1001");
    let e = compile_errs(&src);
    assert_eq!(
        where_(&e),
        [
            (12, 30, ErrorKind::Duplicate),
            (13, 31, ErrorKind::Duplicate)
        ]
    );
    assert_eq!(
        e[0].message,
        "inbound SPI 1000 is already used on line 6; each inbound SA needs its own SPI"
    );
}

#[test]
fn interfaces_the_kernel_does_not_have_or_without_an_address_are_reported() {
    let base =
        format!("{MANUAL}access-list 101 permit ip any any\naccess-list 102 permit ip any any\n");
    let cfg = parse_ok(&base);
    let e = compile(&cfg, &|_: &str| None).unwrap_err();
    assert_eq!(where_(&e), [(15, 13, ErrorKind::Environment)]);
    assert_eq!(
        e[0].message,
        "interface a-wan does not exist on this machine"
    );
    let v6_only = |_: &str| {
        Some(ResolvedInterface {
            ifindex: 7,
            addrs: vec![ip("fd00:1::1")],
        })
    };
    let e = compile(&cfg, &v6_only).unwrap_err();
    assert!(e[0]
        .message
        .starts_with("interface a-wan has no IPv4 address to reach peer 198.18.1.1"));
}

#[test]
fn config_addresses_the_kernel_lacks_are_warned_about_and_the_kernels_are_used() {
    let src = format!(
        "{MANUAL}access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255\n\
         access-list 102 permit ip 198.19.1.0 0.0.0.255 198.19.3.0 0.0.0.255\n\
         interface a-wan\n ip address 198.18.0.9 255.255.255.0\n"
    );
    let c = compile_ok(&src);
    assert_eq!(c.entries[0].local, ip("198.18.0.1"));
    assert_eq!(c.warnings.len(), 1);
    assert_eq!((c.warnings[0].span.line, c.warnings[0].span.col), (19, 13));
    assert!(c.warnings[0].message.contains("does not have 198.18.0.9"));
}

#[test]
fn transport_mode_transform_sets_give_transport_sas() {
    let src =
        format!("{MANUAL}access-list 101 permit ip any any\naccess-list 102 permit ip any any\n")
            .replace(
                "crypto ipsec transform-set T esp-aes esp-sha-hmac\n",
                "crypto ipsec transform-set T esp-aes esp-sha-hmac\n mode transport\n",
            );
    let c = compile_ok(&src);
    assert!(c.sas.iter().all(|s| s.mode == EspMode::Transport));
}

const ISAKMP: &str = "\
crypto isakmp policy 20
 encryption aes 256
 hash sha256
 authentication pre-share
 group 14
crypto isakmp policy 10
 encr 3des
 authentication pre-share
 group 2
 lifetime 3600
crypto isakmp policy 30
 hash md5
crypto isakmp key s3cret address 198.18.1.1
crypto isakmp key wild address 0.0.0.0 0.0.0.0
crypto isakmp keepalive 10 3 periodic
crypto isakmp nat keepalive 20
crypto ipsec security-association lifetime seconds 1800
crypto ipsec transform-set T esp-aes esp-sha-hmac
crypto ipsec transform-set U esp-3des esp-md5-hmac
access-list 101 deny ip host 198.19.1.5 any
access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255
crypto dynamic-map DYN 10
 set transform-set U
crypto map M 10 ipsec-isakmp
 set peer 198.18.1.1
 set transform-set T U
 match address 101
 set pfs group14
 set security-association lifetime kilobytes 10000
crypto map M 20 ipsec-isakmp dynamic DYN
interface a-wan
 crypto map M
";

#[test]
fn isakmp_policies_keys_and_map_entries_compile_for_the_ikev1_engine() {
    use crate::config::ike::{IkeCipher, IkeHash};
    use crate::ike::crypto::DhGroup;
    let c = compile_ok(ISAKMP);
    let p = &c.ikev1;
    // Policies in priority order with IOS defaults; 30 (RSA signatures)
    // is left out with a warning.
    let got: Vec<_> = p
        .isakmp
        .iter()
        .map(|x| (x.priority, x.cipher, x.hash, x.group, x.lifetime))
        .collect();
    assert_eq!(
        got,
        [
            (
                10,
                IkeCipher::TripleDes,
                IkeHash::Sha1,
                DhGroup::from_id(2).unwrap(),
                3600
            ),
            (
                20,
                IkeCipher::AesCbc(256),
                IkeHash::Sha256,
                DhGroup::from_id(14).unwrap(),
                86_400
            ),
        ]
    );
    assert!(c
        .warnings
        .iter()
        .any(|w| w.span.line == 11 && w.message.contains("RSA")));
    assert_eq!(p.key_for(ip("198.18.1.1")).unwrap().key.expose(), b"s3cret");
    assert_eq!(p.key_for(ip("198.18.9.9")).unwrap().key.expose(), b"wild");
    let dpd = p.dpd.unwrap();
    assert_eq!((dpd.interval, dpd.retry, dpd.periodic), (10, 3, true));
    assert_eq!(p.nat_keepalive, Some(20));

    let [st, dy] = &p.maps[..] else {
        panic!("{:?}", p.maps)
    };
    assert_eq!(
        (st.map.as_str(), st.seq, st.dynamic.clone()),
        ("M", 10, None)
    );
    assert_eq!(st.peers, [ip("198.18.1.1")]);
    assert_eq!(st.local, ip("198.18.0.1"));
    let ts: Vec<_> = st
        .transforms
        .iter()
        .map(|t| (t.name.as_str(), t.enc, t.auth, t.tunnel))
        .collect();
    assert_eq!(
        ts,
        [
            ("T", EncAlg::AesCbc128, AuthAlg::HmacSha1_96, true),
            ("U", EncAlg::TripleDesCbc, AuthAlg::HmacMd5_96, true)
        ]
    );
    assert_eq!(st.selectors, [sel("198.19.1.0/24", "198.19.2.0/24")]);
    assert_eq!(st.pfs, DhGroup::from_id(14));
    assert_eq!((st.lifetime.seconds, st.lifetime.kilobytes), (1800, 10_000));
    assert_eq!(dy.dynamic, Some(("DYN".to_string(), 10)));
    assert!(dy.peers.is_empty() && dy.selectors.is_empty());
    assert_eq!(
        (dy.lifetime.seconds, dy.lifetime.kilobytes),
        (1800, 4_608_000)
    );

    // The SPD: the deny line bypasses, the permit line protects with no
    // SA yet (the first packet raises an acquire).
    let tag = PolicyTag { map: 0, seq: 10 };
    let actions: Vec<_> = c.spd.iter().map(|r| r.action).collect();
    assert_eq!(
        actions,
        [
            PolicyAction::Bypass,
            PolicyAction::Protect { sa: None, map: tag }
        ]
    );
    assert!(c.sas.is_empty() && c.entries.is_empty());
}

#[test]
fn ipsec_isakmp_entries_need_a_policy_a_key_and_defined_names() {
    let e = compile_errs(
        "crypto map M 10 ipsec-isakmp\n set peer 198.18.1.1\n set transform-set NOPE\n match address 199\ncrypto map M 20 ipsec-isakmp dynamic NODYN\ninterface a-wan\n crypto map M\n",
    );
    let msgs: Vec<_> = e
        .iter()
        .map(|e| (e.span.line, e.kind, e.message.as_str()))
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.0 == 3 && m.1 == ErrorKind::Undefined && m.2.contains("transform set NOPE")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.0 == 4 && m.1 == ErrorKind::Undefined && m.2.contains("access list 199")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.0 == 5 && m.1 == ErrorKind::Undefined && m.2.contains("NODYN")),
        "{msgs:?}"
    );

    let e = compile_errs(
        "crypto ipsec transform-set T esp-aes esp-sha-hmac\naccess-list 101 permit ip any any\ncrypto map M 10 ipsec-isakmp\n set peer 198.18.1.1\n set transform-set T\n match address 101\ninterface a-wan\n crypto map M\n",
    );
    let msgs: Vec<_> = e
        .iter()
        .map(|e| (e.span.line, e.kind, e.message.as_str()))
        .collect();
    assert!(
        msgs.iter()
            .any(|m| m.0 == 3 && m.2.contains("no crypto isakmp policy")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.0 == 3 && m.2.contains("no crypto isakmp key for peer 198.18.1.1")),
        "{msgs:?}"
    );
}

#[test]
fn intersections_of_selectors_follow_prefixes_protocols_and_ports() {
    use super::super::compile::intersect;
    let a = TrafficSelector {
        proto: Some(6),
        dst_ports: PortRange { lo: 1, hi: 100 },
        ..sel("10.0.0.0/8", "0.0.0.0/0")
    };
    let b = TrafficSelector {
        dst_ports: PortRange { lo: 50, hi: 200 },
        ..sel("10.1.0.0/16", "192.168.0.0/16")
    };
    let i = intersect(&a, &b).unwrap();
    assert_eq!(i.src, "10.1.0.0/16".parse::<IpPrefix>().unwrap());
    assert_eq!(i.dst, "192.168.0.0/16".parse::<IpPrefix>().unwrap());
    assert_eq!(
        (i.proto, i.dst_ports),
        (Some(6), PortRange { lo: 50, hi: 100 })
    );
    assert!(intersect(&a, &sel("11.0.0.0/8", "0.0.0.0/0")).is_none());
    assert!(intersect(
        &a,
        &TrafficSelector {
            proto: Some(17),
            ..b
        }
    )
    .is_none());
    assert!(intersect(&sel("::/0", "::/0"), &sel("0.0.0.0/0", "0.0.0.0/0")).is_none());
}

#[test]
fn acl_lines_that_match_the_endpoints_own_traffic_or_exceed_transport_mode_warn() {
    let src = format!("{MANUAL}access-list 101 permit ip any any\naccess-list 102 permit ip 198.19.1.0 0.0.0.255 any\n");
    let c = compile_ok(&src);
    let lines: Vec<u32> = c.warnings.iter().map(|w| w.span.line).collect();
    assert_eq!(lines, [16]);
    assert!(
        c.warnings[0].message.contains("198.18.0.1 to 198.18.1.1"),
        "{}",
        c.warnings[0].message
    );
    let transport = src.replace(
        "crypto ipsec transform-set T esp-aes esp-sha-hmac\n",
        "crypto ipsec transform-set T esp-aes esp-sha-hmac\n mode transport\n",
    ) + "access-list 103 permit ip host 198.18.0.1 host 198.18.7.1\n";
    let c = compile_ok(&transport.replace("match address 102", "match address 103"));
    let lines: Vec<u32> = c.warnings.iter().map(|w| w.span.line).collect();
    assert_eq!(lines, [17], "{:?}", c.warnings);
    assert!(c.warnings[0]
        .message
        .starts_with("transport mode carries only"));
}

#[test]
fn a_deny_cascade_that_would_explode_is_refused_with_a_message() {
    // 300 deny lines ahead of an entry with 300 overlapping permits would
    // need about 90 000 rules.
    let mut src = MANUAL.to_string();
    for i in 0..300 {
        src.push_str(&format!(
            "access-list 101 deny ip host 10.0.{}.{} any\n",
            i / 250,
            i % 250
        ));
        src.push_str(&format!(
            "access-list 102 permit ip any host 10.1.{}.{}\n",
            i / 250,
            i % 250
        ));
    }
    let e = compile_errs(&src);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.contains("more than 65536 rules"),
        "{}",
        e[0].message
    );
}

// ----- VTIs (interface TunnelN, tunnel protection ipsec profile) -----

/// Seed 001's VTI on gw_a of the lab, with routes into the tunnel, a
/// global address on the tunnel and profile settings.
const VTI6: &str = "\
crypto isakmp policy 10
 authentication pre-share
crypto isakmp key cisco address ipv6 ::/0
crypto ipsec transform-set TRA esp-aes esp-sha-hmac
 mode transport
crypto ipsec profile PRO
 set transform-set TRA
 set pfs group14
 set security-association lifetime seconds 1800
interface a-lan
 ipv6 address fd00:a::1/64
interface a-wan
 ipv6 address fd00:1::1/64
interface Tunnel23
 ipv6 address fd00:23::1/64
 ipv6 address FE80::23:2 link-local
 tunnel source a-wan
 tunnel mode ipsec ipv6
 tunnel destination fd00:2::1
 tunnel protection ipsec profile PRO
ipv6 route fd00:b::/64 Tunnel23
ipv6 route fd00:b:1::/48 Tunnel23
ipv6 route fd00:c::/64 fd00:1::fe
";

fn protect_any_to(dst: &str, tag: PolicyTag) -> SpdRule {
    let any = if dst.contains(':') {
        "::/0"
    } else {
        "0.0.0.0/0"
    };
    SpdRule {
        selector: sel(any, dst),
        action: PolicyAction::Protect { sa: None, map: tag },
    }
}

#[test]
fn a_vti_compiles_to_an_ikev1_entry_and_route_based_spd_rules() {
    use crate::ike::crypto::DhGroup;
    use crate::ikev1::policy::{EspTransform, IpsecLifetime, MapEntry};
    let c = compile_ok(VTI6);
    let tag = PolicyTag {
        map: 0,
        seq: 65_536,
    };
    assert_eq!(
        c.ikev1.maps,
        [MapEntry {
            tag,
            map: "Tunnel23-head-0".into(),
            seq: 65_536,
            dynamic: None,
            peers: vec![ip("fd00:2::1")],
            discover: false,
            local: ip("fd00:1::1"),
            // `mode transport` is ignored on a VTI, as IOS does.
            transforms: vec![EspTransform {
                name: "TRA".into(),
                enc: EncAlg::AesCbc128,
                auth: AuthAlg::HmacSha1_96,
                tunnel: true,
            }],
            selectors: vec![sel("::/0", "::/0")],
            pfs: DhGroup::from_id(14),
            lifetime: IpsecLifetime {
                seconds: 1800,
                kilobytes: 4_608_000
            },
            replay_window: 64,
        }]
    );
    // Longest prefix first; the connected /64 after the routed /64 (file
    // order), the link-local address as link-local to link-local, the
    // next-hop route not at all.
    let ll = SpdRule {
        selector: sel("fe80::/10", "fe80::/10"),
        ..protect_any_to("fe80::/10", tag)
    };
    assert_eq!(
        c.spd,
        [
            protect_any_to("fd00:b::/64", tag),
            protect_any_to("fd00:23::/64", tag),
            protect_any_to("fd00:b:1::/48", tag),
            ll,
        ]
    );
    assert_eq!(c.map_names, ["Tunnel23-head-0"]);
    assert_eq!(c.outside.as_deref(), Some("a-wan"));
    assert_eq!(c.inside, ["a-lan"]);
    assert!(c.sas.is_empty() && c.entries.is_empty());
    // Routes into the tunnel are used, so only the next-hop route keeps
    // its "not installed" warning.
    let routes: Vec<u32> = c
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("route to "))
        .map(|w| w.span.line)
        .collect();
    assert_eq!(routes, [23]);
    // The TUN device for the gateway's own traffic: the tunnel's
    // addresses (link-local as /64) and its routes, not the next hop's.
    let prefix = |s: &str| s.parse::<IpPrefix>().unwrap();
    assert_eq!(
        c.tunnels,
        [crate::config::compile::vti::TunnelInterfaceSpec {
            name: "Tunnel23".into(),
            tag,
            mtu: crate::config::compile::vti::VTI_MTU_V6,
            ipv6: true,
            addrs: vec![(ip("fd00:23::1"), 64), (ip("fe80::23:2"), 64)],
            routes: vec![prefix("fd00:b::/64"), prefix("fd00:b:1::/48")],
        }]
    );
}

#[test]
fn an_ipv4_vti_by_source_address_goes_before_the_crypto_map_on_the_same_interface() {
    let src = format!(
        "{ISAKMP}crypto ipsec profile P4\n set transform-set U T\n\
         interface Tunnel0\n ip address 198.18.16.101 255.255.255.0\n tunnel source 198.18.0.1\n\
         tunnel mode ipsec ipv4\n tunnel destination 198.18.1.1\n tunnel protection ipsec profile P4\n\
         ip route 198.19.2.1 255.255.255.255 Tunnel0\n"
    );
    let c = compile_ok(&src);
    let vti = PolicyTag {
        map: 1,
        seq: 65_536,
    };
    let e = c.ikev1.maps.iter().find(|m| m.tag == vti).unwrap();
    assert_eq!(
        (e.local, e.peers.as_slice()),
        (ip("198.18.0.1"), &[ip("198.18.1.1")][..])
    );
    assert_eq!(e.selectors, [sel("0.0.0.0/0", "0.0.0.0/0")]);
    let names: Vec<_> = e
        .transforms
        .iter()
        .map(|t| (t.name.as_str(), t.tunnel))
        .collect();
    assert_eq!(names, [("U", true), ("T", true)]);
    // Global lifetime (1800 s) and no PFS: the profile sets neither.
    assert_eq!((e.lifetime.seconds, e.pfs), (1800, None));
    assert_eq!(c.map_names, ["M", "Tunnel0-head-0"]);
    assert_eq!(c.outside.as_deref(), Some("a-wan"));
    assert_eq!(
        &c.spd[..2],
        [
            protect_any_to("198.19.2.1/32", vti),
            protect_any_to("198.18.16.0/24", vti),
        ]
    );
    assert_eq!(c.spd[2].action, PolicyAction::Bypass, "then crypto map M");
    assert_eq!(c.spd.len(), 4);
}

/// (line, kind, message start) of every error of `src`.
fn vti_errs(src: &str) -> Vec<(u32, ErrorKind, String)> {
    compile_errs(src)
        .into_iter()
        .map(|e| (e.span.line, e.kind, e.message))
        .collect()
}

fn assert_only(got: &[(u32, ErrorKind, String)], want: &[(u32, ErrorKind, &str)]) {
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.0, g.1), (w.0, w.1), "{g:?}");
        assert!(g.2.contains(w.2), "{:?} should contain {:?}", g.2, w.2);
    }
}

const VTI_BASE: &str = "\
crypto isakmp policy 10
 authentication pre-share
crypto isakmp key cisco address 0.0.0.0 0.0.0.0
crypto ipsec transform-set T esp-aes esp-sha-hmac
crypto ipsec profile P
 set transform-set T
crypto ipsec profile EMPTY
crypto ipsec profile V2
 set transform-set T
 set pfs group2
interface a-lan
";

#[test]
fn vti_errors_are_reported_at_their_line() {
    use ErrorKind::*;
    let with = |tunnel: &str| format!("{VTI_BASE}interface Tunnel1\n{tunnel}");
    // Line 12 is `interface Tunnel1`, its sub-commands follow.
    assert_only(
        &vti_errs(&with(" tunnel mode ipsec ipv4\n")),
        &[
            (12, Missing, "has no \"tunnel source"),
            (12, Missing, "has no \"tunnel destination"),
            (12, Missing, "has no \"tunnel protection ipsec profile"),
        ],
    );
    let full = |mode: &str, dest: &str, prof: &str| {
        with(&format!(
            "{mode} tunnel source a-wan\n tunnel destination {dest}\n tunnel protection ipsec profile {prof}\n"
        ))
    };
    assert_only(
        &vti_errs(&full("", "198.18.1.1", "P")),
        &[(12, NotSupportedYet, "tunnel mode gre ip")],
    );
    let v4 = " tunnel mode ipsec ipv4\n";
    assert_only(
        &vti_errs(&full(v4, "198.18.1.1", "NOPE")),
        &[(16, Undefined, "crypto ipsec profile NOPE is not defined")],
    );
    assert_only(
        &vti_errs(&full(v4, "198.18.1.1", "EMPTY")),
        &[(
            7,
            Missing,
            "crypto ipsec profile EMPTY has no \"set transform-set\"",
        )],
    );
    assert_only(
        &vti_errs(&full(v4, "fd00:2::1", "P")),
        &[(
            15,
            InvalidValue,
            "tunnel destination fd00:2::1 is not an IPv4 address",
        )],
    );
    assert_only(
        &vti_errs(&full(" tunnel mode ipsec ipv6\n", "198.18.1.1", "P")),
        &[(15, InvalidValue, "is not an IPv6 address")],
    );
    // An undefined IKEv2 profile is reported where the profile names it.
    assert_only(
        &vti_errs(&full(v4, "198.18.1.1", "V2").replace(" set pfs group2", " set ikev2-profile X")),
        &[(10, Undefined, "crypto ikev2 profile X is not defined")],
    );
    // A route of the other family.
    assert_only(
        &vti_errs(&format!(
            "{}ipv6 route fd00:b::/64 Tunnel1\n",
            full(v4, "198.18.1.1", "P")
        )),
        &[(17, InvalidValue, "carries IPv4 only")],
    );
    // An undefined transform set in the profile; a source that is not here.
    assert_only(
        &vti_errs(&format!(
            "crypto ipsec profile Q\n set transform-set NOPE\n{}",
            full(v4, "198.18.1.1", "Q").replace("tunnel source a-wan", "tunnel source eth9")
        )),
        &[
            (2, Undefined, "transform set NOPE is not defined"),
            (16, Environment, "interface eth9 does not exist"),
        ],
    );
}

#[test]
fn vtis_share_the_one_outside_interface_and_need_a_key() {
    use ErrorKind::*;
    // Two VTIs with different sources: the second is refused.
    let src = format!(
        "{VTI_BASE}interface Tunnel1\n tunnel mode ipsec ipv4\n tunnel source a-wan\n\
         tunnel destination 198.18.1.1\n tunnel protection ipsec profile P\n\
         interface Tunnel2\n tunnel mode ipsec ipv4\n tunnel source a-lan\n\
         tunnel destination 198.18.9.1\n tunnel protection ipsec profile P\n"
    );
    assert_only(
        &vti_errs(&src),
        &[(
            19,
            NotSupportedYet,
            "tunnel source a-lan is not the outside interface a-wan",
        )],
    );
    // A VTI whose source is not the crypto map's interface.
    let src = format!(
        "{ISAKMP}crypto ipsec profile P\n set transform-set T\ninterface Tunnel1\n\
         tunnel mode ipsec ipv4\n tunnel source a-lan\n tunnel destination 198.18.1.1\n\
         tunnel protection ipsec profile P\n"
    );
    assert_only(
        &vti_errs(&src),
        &[(37, NotSupportedYet, "(of a crypto map)")],
    );
    // No key for the destination: reported at the protection line.
    let src = VTI_BASE.replace("address 0.0.0.0 0.0.0.0", "address 198.18.9.9")
        + "interface Tunnel1\n tunnel mode ipsec ipv4\n tunnel source a-wan\n tunnel destination 198.18.1.1\n tunnel protection ipsec profile P\n";
    assert_only(
        &vti_errs(&src),
        &[(
            16,
            Missing,
            "interface Tunnel1: no crypto isakmp key for peer 198.18.1.1",
        )],
    );
}

#[test]
fn the_lab_vti_configs_compile_to_two_vtis_each() {
    let b_kernel = |name: &str| match name {
        "b-lan" => Some(ResolvedInterface {
            ifindex: 2,
            addrs: vec![ip("198.19.2.1"), ip("fd00:b::1")],
        }),
        "b-wan" => Some(ResolvedInterface {
            ifindex: 3,
            addrs: vec![ip("198.18.1.1"), ip("fd00:2::1")],
        }),
        _ => None,
    };
    for (conf, kernel, dsts) in [
        (
            include_str!("../../../../deploy/configs/lab-vti-gw-a.conf"),
            &kernel_a as &dyn super::super::InterfaceResolver,
            [
                "fd00:b::/64",
                "198.19.2.0/24",
                "198.18.24.0/24",
                "fe80::/10",
            ],
        ),
        (
            include_str!("../../../../deploy/configs/lab-vti-gw-b.conf"),
            &b_kernel,
            [
                "fd00:a::/64",
                "198.19.1.0/24",
                "198.18.24.0/24",
                "fe80::/10",
            ],
        ),
    ] {
        let cfg = parse_ok(conf);
        let c = compile(&cfg, kernel).unwrap_or_else(|e| panic!("{e:?}"));
        let names: Vec<_> = c.ikev1.maps.iter().map(|m| m.map.as_str()).collect();
        assert_eq!(names, ["Tunnel23-head-0", "Tunnel24-head-0"]);
        let got: Vec<String> = c.spd.iter().map(|r| r.selector.dst.to_string()).collect();
        assert_eq!(got, dsts);
        assert_eq!(c.inside.len(), 1);
    }
}

/// `ipv6 route ::/0 Tunnel23` selects what the tunnel protects, but the
/// kernel does not get it: the gateway's own IKE and ESP to the tunnel's
/// destination would go into the tunnel.
#[test]
fn a_vti_route_that_holds_an_ike_peer_is_kept_from_the_kernel() {
    let src = format!("{VTI6}ipv6 route ::/0 Tunnel23\n");
    let c = compile_ok(&src);
    assert!(c.spd.iter().any(|r| r.selector.dst.to_string() == "::/0"));
    let routes: Vec<String> = c.tunnels[0]
        .routes
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(routes, ["fd00:b::/64", "fd00:b:1::/48"]);
    let w: Vec<&str> = c
        .warnings
        .iter()
        .filter(|w| w.message.contains("holds the IKE peer fd00:2::1"))
        .map(|w| w.message.as_str())
        .collect();
    assert_eq!(w.len(), 1, "{:?}", c.warnings);
}
