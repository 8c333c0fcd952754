//! One group of tests per command family: what each command puts in the
//! model.

use std::net::IpAddr;

use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};
use dataplane::spd::{IpPrefix, PortRange};

use super::super::model::{
    AclAction, AclKind, CryptoMapKind, NatSelector, NatSide, RouteTarget, TransformMode,
};
use super::parse_ok;

fn p(s: &str) -> IpPrefix {
    s.parse().unwrap()
}

#[test]
fn numbered_extended_acl_lines_append_in_order_with_wildcards_as_prefixes() {
    let c = parse_ok(
        "access-list 101 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255\n\
         access-list 101 remark lab traffic\n\
         access-list 101 deny tcp host 198.19.1.5 any eq 22\n\
         access-list 2001 permit udp any range 1000 2000 10.0.0.0 0.255.255.255 gt 1023\n",
    );
    assert_eq!(c.acls.len(), 2);
    let a = c.acl("101").unwrap();
    assert_eq!(a.kind, AclKind::Extended);
    assert_eq!(a.entries.len(), 2);
    let e = &a.entries[0];
    assert_eq!((e.action, e.protocol), (AclAction::Permit, None));
    assert_eq!((e.src, e.dst), (p("198.19.1.0/24"), p("198.19.2.0/24")));
    let e = &a.entries[1];
    assert_eq!((e.action, e.protocol), (AclAction::Deny, Some(6)));
    assert_eq!(e.src, p("198.19.1.5/32"));
    assert_eq!(e.dst, IpPrefix::any_v4());
    assert_eq!(e.dst_ports, PortRange::single(22));
    assert_eq!(e.span.line, 3);
    let e = &c.acl("2001").unwrap().entries[0];
    assert_eq!(e.protocol, Some(17));
    assert_eq!(e.src_ports, PortRange { lo: 1000, hi: 2000 });
    assert_eq!(e.dst, p("10.0.0.0/8"));
    assert_eq!(
        e.dst_ports,
        PortRange {
            lo: 1024,
            hi: 65535
        }
    );
}

#[test]
fn protocol_names_numbers_and_port_names_map_to_numbers() {
    let c = parse_ok(
        "access-list 150 permit esp any any\n\
         access-list 150 permit ahp any any\n\
         access-list 150 permit gre any any\n\
         access-list 150 permit 132 any any\n\
         access-list 150 permit tcp any any lt www\n\
         access-list 150 permit udp any eq isakmp any eq non500-isakmp\n\
         access-list 150 permit icmp any any\n",
    );
    let e = &c.acl("150").unwrap().entries;
    let protos: Vec<Option<u8>> = e.iter().map(|e| e.protocol).collect();
    assert_eq!(
        protos,
        [
            Some(50),
            Some(51),
            Some(47),
            Some(132),
            Some(6),
            Some(17),
            Some(1)
        ]
    );
    assert_eq!(e[4].dst_ports, PortRange { lo: 0, hi: 79 });
    assert_eq!(e[5].src_ports, PortRange::single(500));
    assert_eq!(e[5].dst_ports, PortRange::single(4500));
    // The ASA / IOS XE names too.
    let c = parse_ok(
        "access-list 150 permit tcp any eq http any eq https\n\
         access-list 150 permit tcp any any eq ssh\n",
    );
    let e = &c.acl("150").unwrap().entries;
    assert_eq!(
        (e[0].src_ports, e[0].dst_ports, e[1].dst_ports),
        (
            PortRange::single(80),
            PortRange::single(443),
            PortRange::single(22)
        )
    );
}

#[test]
fn bang_and_hash_lines_are_comments() {
    let c = parse_ok("! IOS comment\n# shell-style comment\n  # indented\nhostname gw\n");
    assert_eq!(c.hostname.unwrap().value, "gw");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn standard_acls_match_a_source_only() {
    let c = parse_ok(
        "access-list 10 permit 198.19.1.0 0.0.0.255\n\
         access-list 10 deny host 198.19.1.9\n\
         access-list 10 permit 198.19.1.7\n\
         access-list 10 deny any\n",
    );
    let a = c.acl("10").unwrap();
    assert_eq!(a.kind, AclKind::Standard);
    let srcs: Vec<IpPrefix> = a.entries.iter().map(|e| e.src).collect();
    assert_eq!(
        srcs,
        [
            p("198.19.1.0/24"),
            p("198.19.1.9/32"),
            p("198.19.1.7/32"),
            IpPrefix::any_v4()
        ]
    );
    assert!(a
        .entries
        .iter()
        .all(|e| e.dst == IpPrefix::any_v4() && e.protocol.is_none()));
}

#[test]
fn named_acl_blocks_take_sequence_numbers_and_remarks() {
    let c = parse_ok(
        "ip access-list extended VPN\n\
         \x20remark the LANs\n\
         \x2010 permit ip 198.19.1.0 0.0.0.255 198.19.2.0 0.0.0.255\n\
         \x2020 deny ip any any\n\
         ip access-list standard INSIDE\n\
         \x20permit 198.19.1.0 0.0.0.255\n",
    );
    assert_eq!(c.acl("VPN").unwrap().entries.len(), 2);
    assert_eq!(c.acl("VPN").unwrap().entries[1].action, AclAction::Deny);
    assert_eq!(c.acl("INSIDE").unwrap().kind, AclKind::Standard);
}

#[test]
fn ipv6_acls_take_prefixes_and_icmp_means_icmpv6() {
    let c = parse_ok(
        "ipv6 access-list V6\n\
         \x20permit ipv6 fd00:a::/64 fd00:b::/64\n\
         \x20sequence 20 permit icmp any host fd00:b::10\n\
         \x20permit tcp fd00:a::/64 any eq 443\n",
    );
    let a = c.acl("V6").unwrap();
    assert_eq!(a.kind, AclKind::Ipv6);
    assert_eq!(
        (a.entries[0].src, a.entries[0].dst),
        (p("fd00:a::/64"), p("fd00:b::/64"))
    );
    assert_eq!(a.entries[1].protocol, Some(58));
    assert_eq!(a.entries[1].dst, p("fd00:b::10/128"));
    assert_eq!(a.entries[2].dst_ports, PortRange::single(443));
}

#[test]
fn host_bits_outside_the_wildcard_are_masked_with_a_warning() {
    let c = parse_ok("access-list 101 permit ip 198.19.1.7 0.0.0.255 any\n");
    assert_eq!(c.acl("101").unwrap().entries[0].src, p("198.19.1.0/24"));
    assert_eq!(c.warnings.len(), 1);
    assert_eq!((c.warnings[0].span.line, c.warnings[0].span.col), (1, 27));
}

#[test]
fn transform_sets_map_ios_names_to_algorithms() {
    let c = parse_ok(
        "crypto ipsec transform-set A esp-aes esp-sha-hmac\n\
         crypto ipsec transform-set B esp-aes 256 esp-sha512-hmac\n\
         \x20mode transport\n\
         crypto ipsec transform-set C esp-gcm 256\n\
         crypto ipsec transform-set D esp-3des esp-md5-hmac\n\
         crypto ipsec transform-set E esp-null esp-sha256-hmac\n\
         crypto ipsec transform-set F esp-sha384-hmac esp-aes 192\n\
         crypto ipsec transform-set G esp-gcm\n",
    );
    let ts = |n: &str| c.transform_set(n).unwrap();
    assert_eq!(
        (ts("A").enc, ts("A").auth, ts("A").mode),
        (
            EncAlg::AesCbc128,
            AuthAlg::HmacSha1_96,
            TransformMode::Tunnel
        )
    );
    assert_eq!(
        (ts("B").enc, ts("B").auth, ts("B").mode),
        (
            EncAlg::AesCbc256,
            AuthAlg::HmacSha512_256,
            TransformMode::Transport
        )
    );
    assert_eq!(
        (ts("C").enc, ts("C").auth),
        (EncAlg::AesGcm256(GcmIcv::B16), AuthAlg::None)
    );
    assert_eq!(
        (ts("D").enc, ts("D").auth),
        (EncAlg::TripleDesCbc, AuthAlg::HmacMd5_96)
    );
    assert_eq!(
        (ts("E").enc, ts("E").auth),
        (EncAlg::Null, AuthAlg::HmacSha256_128)
    );
    assert_eq!(
        (ts("F").enc, ts("F").auth),
        (EncAlg::AesCbc192, AuthAlg::HmacSha384_192)
    );
    assert_eq!(ts("G").enc, EncAlg::AesGcm128(GcmIcv::B16));
    assert_eq!(ts("A").ios_transforms(), "esp-aes esp-sha-hmac");
    // esp-null warns: no confidentiality.
    assert_eq!(c.warnings.len(), 1);
    assert_eq!(c.warnings[0].span.line, 6);
}

#[test]
fn des_transform_sets_parse_with_a_warning_at_the_transform() {
    let c = parse_ok("crypto ipsec transform-set T esp-des esp-md5-hmac\n");
    assert_eq!(c.transform_set("T").unwrap().enc, EncAlg::DesCbc);
    assert_eq!((c.warnings[0].span.line, c.warnings[0].span.col), (1, 30));
    assert!(c.warnings[0].message.contains("56-bit"));
}

#[test]
fn manual_crypto_map_entries_hold_peer_set_acl_and_keys() {
    let c = parse_ok(
        "crypto map LAB 10 ipsec-manual\n\
         \x20description to gw-b\n\
         \x20set peer 198.18.1.1\n\
         \x20set transform-set T\n\
         \x20match address 101\n\
         \x20set session-key inbound esp 256 cipher 00112233445566778899aabbccddeeff authenticator 0011223344556677889900112233445566778899\n\
         \x20set session-key outbound esp 0x1000 cipher ffeeddccbbaa99887766554433221100\n",
    );
    let e = &c.crypto_maps[0];
    assert_eq!((e.name.as_str(), e.seq), ("LAB", 10));
    assert_eq!(e.description.as_deref(), Some("to gw-b"));
    let CryptoMapKind::Manual(m) = &e.kind else {
        panic!("manual")
    };
    assert_eq!(
        m.peer.as_ref().unwrap().value,
        "198.18.1.1".parse::<IpAddr>().unwrap()
    );
    assert_eq!(m.transform_set.as_ref().unwrap().value, "T");
    assert_eq!(m.match_address.as_ref().unwrap().value, "101");
    let inb = m.inbound.as_ref().unwrap();
    assert_eq!(inb.spi.value, 256);
    assert_eq!(
        inb.cipher.as_ref().unwrap().value.expose()[..2],
        [0x00, 0x11]
    );
    assert_eq!(inb.authenticator.as_ref().unwrap().value.len(), 20);
    let out = m.outbound.as_ref().unwrap();
    assert_eq!(out.spi.value, 4096);
    assert!(out.authenticator.is_none());
    assert!(c.has_secrets);
}

#[test]
fn reentering_a_crypto_map_entry_continues_it_as_ios_does() {
    let c = parse_ok(
        "crypto map M 10 ipsec-manual\n set peer 198.18.1.1\n\
         crypto map M 10 ipsec-manual\n set transform-set T\n",
    );
    assert_eq!(c.crypto_maps.len(), 1);
    let CryptoMapKind::Manual(m) = &c.crypto_maps[0].kind else {
        panic!()
    };
    assert!(m.peer.is_some() && m.transform_set.is_some());
}

#[test]
fn interfaces_hold_addresses_crypto_map_nat_side_and_state() {
    let c = parse_ok(
        "interface a-wan\n\
         \x20description WAN 東京\n\
         \x20ip address 198.18.0.1 255.255.255.0\n\
         \x20ip address 198.18.9.1 255.255.255.252 secondary\n\
         \x20ipv6 address fd00:1::1/64\n\
         \x20ipv6 address FE80::1 link-local\n\
         \x20ip nat outside\n\
         \x20crypto map LAB\n\
         \x20shutdown\n\
         \x20no shutdown\n\
         interface a-lan\n\
         \x20ip address dhcp\n\
         \x20ip nat inside\n",
    );
    let i = c.interface("a-wan").unwrap();
    assert_eq!(i.description.as_deref(), Some("WAN 東京"));
    let v4: Vec<(String, u8)> = i
        .ipv4
        .iter()
        .map(|a| (a.value.0.to_string(), a.value.1))
        .collect();
    assert_eq!(
        v4,
        [
            ("198.18.0.1".to_string(), 24),
            ("198.18.9.1".to_string(), 30)
        ]
    );
    assert_eq!(i.ipv6.len(), 2);
    assert!(!i.ipv6[0].value.link_local && i.ipv6[1].value.link_local);
    assert_eq!(i.nat.as_ref().unwrap().value, NatSide::Outside);
    assert_eq!(i.crypto_map.as_ref().unwrap().value, "LAB");
    assert!(!i.shutdown);
    let lan = c.interface("a-lan").unwrap();
    assert!(lan.ipv4_dhcp);
    assert_eq!(lan.nat.as_ref().unwrap().value, NatSide::Inside);
}

#[test]
fn unindented_sub_commands_belong_to_the_open_block_as_when_pasted_into_ios() {
    // The seeds lost their indentation; IOS modes still give them meaning.
    let c = parse_ok(
        "interface a-wan\n\
         ip address 198.18.0.1 255.255.255.0\n\
         crypto map LAB\n\
         crypto map LAB 10 ipsec-manual\n\
         set peer 198.18.1.1\n\
         hostname gw-a\n\
         ip route 0.0.0.0 0.0.0.0 198.18.0.254\n",
    );
    assert_eq!(
        c.interface("a-wan")
            .unwrap()
            .crypto_map
            .as_ref()
            .unwrap()
            .value,
        "LAB"
    );
    assert_eq!(c.crypto_maps.len(), 1);
    assert_eq!(c.hostname.as_ref().unwrap().value, "gw-a");
    assert_eq!(c.routes.len(), 1);
}

#[test]
fn exit_leaves_a_block_and_end_ends_the_configuration() {
    // After exit, `description` is no longer an interface command.
    let e = super::parse_errs("interface a-wan\n exit\ndescription x\n");
    assert_eq!((e[0].span.line, e[0].span.col), (3, 1));
    assert!(e[0].message.starts_with("unknown command \"description\""));
    let c = parse_ok("hostname a\nend\n\n! trailing comment\n");
    assert_eq!(c.hostname.unwrap().value, "a");
}

#[test]
fn nat_statements_and_route_maps_parse_into_the_model() {
    let c = parse_ok(
        "ip nat inside source list 100 interface a-wan overload\n\
         ip nat inside source route-map NONAT interface a-wan overload\n\
         route-map NONAT permit 10\n\
         \x20match ip address 100 101\n\
         route-map NONAT deny 20\n\
         route-map OTHER\n",
    );
    assert_eq!(c.nat.len(), 2);
    assert!(matches!(&c.nat[0].selector, NatSelector::List(a) if a.value == "100"));
    assert!(matches!(&c.nat[1].selector, NatSelector::RouteMap(r) if r.value == "NONAT"));
    assert_eq!(c.nat[1].interface.value, "a-wan");
    let acls: Vec<&str> = c.route_maps[0]
        .match_acls
        .iter()
        .map(|a| a.value.as_str())
        .collect();
    assert_eq!(acls, ["100", "101"]);
    assert_eq!(
        (c.route_maps[1].action, c.route_maps[1].seq),
        (AclAction::Deny, 20)
    );
    assert_eq!(
        (c.route_maps[2].action, c.route_maps[2].seq),
        (AclAction::Permit, 10)
    );
}

#[test]
fn static_routes_are_recorded_with_a_warning_that_the_kernel_decides() {
    let c = parse_ok(
        "ip route 198.19.2.0 255.255.255.0 198.18.0.254 5\n\
         ip route 198.19.3.1 255.255.255.255 Tunnel0\n\
         ipv6 route fd00:b::/64 fd00:1::fe\n",
    );
    assert_eq!(c.routes.len(), 3);
    assert_eq!(c.routes[0].prefix, p("198.19.2.0/24"));
    assert_eq!(c.routes[0].distance, Some(5));
    assert_eq!(c.routes[1].target, RouteTarget::Interface("Tunnel0".into()));
    assert_eq!(
        c.routes[2].target,
        RouteTarget::NextHop("fd00:1::fe".parse().unwrap())
    );
    assert_eq!(c.warnings.len(), 3);
    assert!(c.warnings[0].message.contains("not installed"));
}

#[test]
fn platform_housekeeping_is_accepted_with_one_warning_per_line() {
    let c = parse_ok(
        "version 12.4\nservice timestamps debug datetime msec\nno aaa new-model\nip cef\n\
         enable secret 5 $1$abc\ninterface a-lan\n duplex auto\n speed auto\n no ip address\n\
         line vty 0 4\n login\n password cisco\n",
    );
    assert_eq!(c.warnings.len(), 9);
    // The password never reaches a warning.
    assert!(c
        .warnings
        .iter()
        .all(|w| !w.message.contains("cisco") && !w.source_line.contains("cisco")));
    assert!(c.warnings.iter().all(|w| !w.message.contains("$1$abc")));
}

#[test]
fn ike_commands_parse_into_the_model() {
    let c = parse_ok(
        "crypto isakmp policy 10\n encryption aes 256\n hash sha\n authentication pre-share\n group 14\n lifetime 3600\n\
         crypto isakmp key s3cret address 198.18.1.1 no-xauth\n\
         crypto isakmp keepalive 10 3 periodic\n\
         crypto ikev2 keyring KR\n peer p\n  address 198.18.1.1\n  pre-shared-key local a\n  pre-shared-key remote b\n\
         crypto map M 10 ipsec-isakmp\n set peer 198.18.1.1\n set transform-set A B\n match address 101\n set pfs group14\n\
         crypto map D 10 ipsec-isakmp dynamic DYN discover\n",
    );
    let p0 = &c.ike.isakmp_policies[0];
    assert_eq!(p0.priority, 10);
    assert_eq!(
        p0.encryption,
        Some(super::super::ike::IkeCipher::AesCbc(256))
    );
    assert_eq!(
        (p0.group, p0.lifetime, p0.pre_share),
        (Some(14), Some(3600), true)
    );
    assert!(c.ike.isakmp_keys[0].no_xauth);
    assert_eq!(c.ike.isakmp_keys[0].key.expose(), b"s3cret");
    assert_eq!(
        c.ike.isakmp_keepalive.as_ref().unwrap().value.retry,
        Some(3)
    );
    let peer = &c.ike.ikev2_keyrings[0].peers[0];
    assert_eq!(peer.psk_local.as_ref().unwrap().expose(), b"a");
    assert_eq!(peer.psk_remote.as_ref().unwrap().expose(), b"b");
    let CryptoMapKind::Isakmp(e) = &c.crypto_maps[0].kind else {
        panic!()
    };
    assert_eq!(e.transform_sets.len(), 2);
    assert_eq!(e.pfs, Some(14));
    let CryptoMapKind::Isakmp(d) = &c.crypto_maps[1].kind else {
        panic!()
    };
    assert_eq!(d.dynamic.as_ref().unwrap().value, "DYN");
    assert!(d.discover);
    // Debug output never shows a key.
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn an_indented_line_that_leaves_its_block_is_warned_about() {
    let c = parse_ok("interface a-wan\n ip address 198.18.0.1 255.255.255.0\n hostname gw\n  ip route 0.0.0.0 0.0.0.0 198.18.0.254\n");
    // The hostname still applies (IOS semantics), with a warning.
    assert_eq!(c.hostname.as_ref().unwrap().value, "gw");
    let w: Vec<(u32, bool)> = c
        .warnings
        .iter()
        .map(|w| {
            (
                w.span.line,
                w.message.starts_with("indented like a sub-command"),
            )
        })
        .collect();
    assert_eq!(w, [(3, true), (4, true), (4, false)]);
    assert!(c.warnings[0]
        .message
        .contains("interface (config-if) block"));
}

#[test]
fn an_isakmp_key_may_carry_the_type_0_marker_or_be_the_digit_0() {
    let c = parse_ok(
        "crypto isakmp key 0 secret address 198.18.1.1\ncrypto isakmp key 0 address 198.18.1.2\n",
    );
    assert_eq!(c.ike.isakmp_keys[0].key.expose(), b"secret");
    assert_eq!(c.ike.isakmp_keys[1].key.expose(), b"0");
}
