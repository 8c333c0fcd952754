//! Diagnostics: every error names its line and column and the offending
//! token, several are reported at once, and key material never appears.

use super::super::ErrorKind;
use super::parse_errs;

/// (line, column, kind) of each error, and the first error's message.
fn at(src: &str) -> (Vec<(u32, u32, ErrorKind)>, String) {
    let e = parse_errs(src);
    let first = e[0].message.clone();
    (
        e.iter()
            .map(|e| (e.span.line, e.span.col, e.kind))
            .collect(),
        first,
    )
}

#[test]
fn an_unknown_transform_is_named_with_the_list_of_transforms() {
    let src = "hostname gw\n\n\n\n\n\n\n\n\n\n\ncrypto ipsec transform-set AES esp-aes-256 esp-sha-hmac\n";
    let e = parse_errs(src);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].span.line, e[0].span.col), (12, 32));
    assert_eq!(e[0].token, "esp-aes-256");
    assert_eq!(
        e[0].message,
        "unknown transform \"esp-aes-256\" (write \"esp-aes 256\"); expected one of esp-des, \
         esp-3des, esp-aes [128|192|256], esp-gcm [128|256], esp-null, esp-md5-hmac, \
         esp-sha-hmac, esp-sha256-hmac, esp-sha384-hmac, esp-sha512-hmac; the lines of its block \
         are skipped"
    );
    let shown = e[0].to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[0].starts_with("line 12, column 32: unknown transform"));
    assert_eq!(
        lines[1],
        " 12 | crypto ipsec transform-set AES esp-aes-256 esp-sha-hmac"
    );
    assert_eq!(lines[2], "    |                                ^^^^^^^^^^^");
}

#[test]
fn an_unknown_command_is_an_error_at_its_column_with_a_caret_under_it() {
    let e = parse_errs("hostname x\nfrobnicate all the things\n");
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].span.line, e[0].span.col, e[0].kind),
        (2, 1, ErrorKind::UnknownCommand)
    );
    let shown = e[0].to_string();
    assert!(
        shown.starts_with("line 2, column 1: unknown command \"frobnicate\""),
        "{shown}"
    );
    assert!(
        shown.ends_with("\n 2 | frobnicate all the things\n   | ^^^^^^^^^^"),
        "{shown}"
    );
}

#[test]
fn several_errors_are_reported_in_one_pass() {
    let (e, _) = at(
        "hostname\nfoo bar\naccess-list 101 permit ip any\ninterface a-wan\n ip address 1.2.3.4\n",
    );
    assert_eq!(
        e,
        [
            (1, 10, ErrorKind::Syntax),
            (2, 1, ErrorKind::UnknownCommand),
            (3, 31, ErrorKind::Syntax),
            (5, 21, ErrorKind::Syntax),
        ]
    );
    // In line order, a bad line inside a block included.
    let (e, _) = at("bogus one\ninterface x\n wibble\ncrypto ipsec transform-set T esp-foo\n");
    let lines: Vec<u32> = e.iter().map(|(l, _, _)| *l).collect();
    assert_eq!(lines, [1, 3, 4]);
}

#[test]
fn a_non_contiguous_wildcard_is_refused_with_an_explanation() {
    let (e, msg) = at("access-list 101 permit ip 10.0.0.0 0.0.255.0 any\n");
    assert_eq!(e, [(1, 36, ErrorKind::InvalidValue)]);
    assert!(msg.contains("not contiguous"), "{msg}");
    let (_, msg) = at("access-list 101 permit ip 10.0.0.0 255.255.255.0 any\n");
    assert!(msg.contains("did you mean 0.0.0.255?"), "{msg}");
}

#[test]
fn neq_ports_are_refused_as_not_supported_yet() {
    let (e, msg) = at("access-list 101 permit tcp any any neq 80\n");
    assert_eq!(e, [(1, 36, ErrorKind::NotSupportedYet)]);
    assert!(msg.contains("\"lt\" and \"gt\""), "{msg}");
}

#[test]
fn access_list_numbers_outside_the_ip_ranges_are_refused() {
    let (e, msg) = at("access-list 200 permit ip any any\n");
    assert_eq!(e, [(1, 13, ErrorKind::InvalidValue)]);
    assert!(msg.contains("100-199"), "{msg}");
}

#[test]
fn a_standard_acl_line_with_a_protocol_names_what_it_found() {
    let (e, msg) = at("access-list 42 permit ip any any\n");
    assert_eq!(e, [(1, 23, ErrorKind::Syntax)]);
    assert!(msg.contains("found \"ip\""), "{msg}");
}

#[test]
fn reserved_spis_are_refused_with_the_rfc_that_reserves_them() {
    let (e, msg) = at("crypto map M 10 ipsec-manual\n set session-key inbound esp 255 cipher 00\n");
    assert_eq!(e, [(2, 30, ErrorKind::InvalidValue)]);
    assert!(
        msg.contains("reserved") && msg.contains("RFC 4303"),
        "{msg}"
    );
}

#[test]
fn icmp_types_and_unknown_protocols_are_named() {
    let (e, _) = at("access-list 101 permit icmp any any echo\n");
    assert_eq!(e, [(1, 37, ErrorKind::NotSupportedYet)]);
    let (e, msg) = at("access-list 101 permit foo any any\n");
    assert_eq!(e, [(1, 24, ErrorKind::Syntax)]);
    assert!(msg.contains("unknown protocol \"foo\""), "{msg}");
}

#[test]
fn ios_interface_names_are_refused_with_a_hint() {
    let (e, msg) = at("interface Ethernet0/0\n ip address 198.18.0.1 255.255.255.0\n");
    // One error: the block's lines are skipped, not reported one by one.
    assert_eq!(e, [(1, 11, ErrorKind::InvalidValue)]);
    assert!(msg.contains("eth0"), "{msg}");
    assert!(msg.ends_with("the lines of its block are skipped"), "{msg}");
}

#[test]
fn manual_map_mistakes_point_at_the_token() {
    let src = "crypto map M 10 ipsec-manual\n\
               \x20set peer 198.18.1.1\n\
               \x20set peer 198.18.1.2\n\
               \x20set transform-set A B\n\
               \x20set session-key inbound esp 255 cipher 00\n\
               \x20set session-key outbound ah 300 0011\n\
               \x20set session-key outbound esp 300 cipher 0g\n\
               \x20set pfs group2\n\
               \x20set peeer 1.1.1.1\n\
               \x20set peer gw-b.example\n";
    let (e, _) = at(src);
    assert_eq!(
        e,
        [
            (3, 11, ErrorKind::Duplicate),
            (4, 22, ErrorKind::InvalidValue),
            (5, 30, ErrorKind::InvalidValue),
            (6, 27, ErrorKind::NotSupportedYet),
            (7, 42, ErrorKind::Syntax),
            (8, 6, ErrorKind::InvalidValue),
            (9, 6, ErrorKind::Syntax),
            (10, 11, ErrorKind::NotSupportedYet),
        ]
    );
}

#[test]
fn transform_set_combinations_that_espada_refuses_are_explained() {
    let (e, msg) = at("crypto ipsec transform-set G esp-gcm esp-sha-hmac\n");
    assert_eq!(e, [(1, 38, ErrorKind::InvalidValue)]);
    assert!(msg.contains("authenticates by itself"));
    let (e, msg) = at("crypto ipsec transform-set A esp-aes\n");
    assert_eq!(e, [(1, 30, ErrorKind::InvalidValue)]);
    assert!(msg.contains("needs an integrity transform"));
    let (e, _) = at("crypto ipsec transform-set A ah-sha-hmac esp-aes\n");
    assert_eq!(e, [(1, 30, ErrorKind::NotSupportedYet)]);
    let (e, _) = at("crypto ipsec transform-set A esp-aes 512 esp-sha-hmac\n");
    assert_eq!(e, [(1, 38, ErrorKind::InvalidValue)]);
    let (e, _) = at("crypto ipsec transform-set A esp-aes esp-3des esp-sha-hmac\n");
    assert_eq!(e, [(1, 38, ErrorKind::Syntax)]);
    let (e, _) = at("crypto ipsec transform-set A esp-aes esp-sha-hmac\ncrypto ipsec transform-set A esp-aes esp-sha-hmac\n");
    assert_eq!(e, [(2, 28, ErrorKind::Duplicate)]);
}

#[test]
fn keys_never_appear_in_errors() {
    let src = "crypto map M 10 ipsec-manual\n set session-key inbound esp 300 cipher 00112233 authenticator 44556677 extra\n";
    let e = parse_errs(src);
    let shown = super::super::render_errors(&e);
    assert!(
        !shown.contains("00112233") && !shown.contains("44556677"),
        "{shown}"
    );
    assert!(
        shown.contains("cipher ******** authenticator ********"),
        "{shown}"
    );
    // A malformed key is pointed at, but shown as stars.
    let e = parse_errs(
        "crypto map M 10 ipsec-manual\n set session-key inbound esp 300 cipher 0011223x\n",
    );
    assert_eq!(e[0].token, "********");
    assert!(!e[0].to_string().contains("0011223x"));
}

#[test]
fn text_after_end_and_stray_exit_are_errors() {
    let (e, _) = at("end\nhostname x\n");
    assert_eq!(e, [(2, 1, ErrorKind::Syntax)]);
    let (e, _) = at("exit\n");
    assert_eq!(e, [(1, 1, ErrorKind::Syntax)]);
}

#[test]
fn an_unknown_command_after_a_block_names_the_block_and_asa_syntax_gets_a_hint() {
    let (_, msg) = at("interface a-wan\n nameif outside\n");
    assert!(msg.contains("interface (config-if) block above"), "{msg}");
    assert!(msg.contains("ASA/PIX"), "{msg}");
}

#[test]
fn unsupported_nat_forms_say_what_is_supported() {
    let (e, msg) = at("ip nat inside source list 1 interface a-wan\n");
    assert_eq!(e, [(1, 45, ErrorKind::NotSupportedYet)]);
    assert!(msg.contains("overload"));
    let (e, _) = at("ip nat inside source static 10.0.0.1 198.18.0.5\n");
    assert_eq!(e, [(1, 22, ErrorKind::NotSupportedYet)]);
    let (e, _) = at("ip nat inside source list 1 pool P overload\n");
    assert_eq!(e, [(1, 29, ErrorKind::NotSupportedYet)]);
}

#[test]
fn a_crypto_map_line_without_a_sequence_number_outside_an_interface_is_explained() {
    let (e, msg) = at("crypto map LAB\n");
    assert_eq!(e, [(1, 16, ErrorKind::Syntax)]);
    assert!(msg.contains("belongs under an interface"), "{msg}");
}
