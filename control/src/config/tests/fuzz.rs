//! Property tests: no input makes the parser or the compiler panic, and
//! every error points inside the text.

use proptest::prelude::*;

use super::super::{compile, parse, ConfigAddresses};

/// Words of the grammar, and values of the right and wrong shapes.
const WORDS: &[&str] = &[
    "crypto",
    "map",
    "M",
    "10",
    "ipsec-manual",
    "ipsec-isakmp",
    "dynamic",
    "discover",
    "set",
    "peer",
    "transform-set",
    "T",
    "match",
    "address",
    "101",
    "session-key",
    "inbound",
    "outbound",
    "esp",
    "ah",
    "256",
    "4096",
    "cipher",
    "authenticator",
    "00112233445566778899aabbccddeeff",
    "0011223344556677889900112233445566778899",
    "zz",
    "ipsec",
    "esp-aes",
    "esp-gcm",
    "esp-des",
    "esp-sha-hmac",
    "esp-null",
    "128",
    "192",
    "mode",
    "tunnel",
    "transport",
    "access-list",
    "permit",
    "deny",
    "ip",
    "tcp",
    "udp",
    "icmp",
    "any",
    "host",
    "198.19.1.0",
    "0.0.0.255",
    "0.255.0.255",
    "eq",
    "lt",
    "gt",
    "range",
    "neq",
    "22",
    "65535",
    "0",
    "interface",
    "a-wan",
    "Ethernet0/0",
    "ip",
    "address",
    "255.255.255.0",
    "ipv6",
    "fd00:a::/64",
    "fd00:1::1/64",
    "nat",
    "inside",
    "outside",
    "source",
    "list",
    "route-map",
    "overload",
    "shutdown",
    "no",
    "description",
    "hostname",
    "route",
    "isakmp",
    "policy",
    "key",
    "ikev2",
    "keyring",
    "profile",
    "pre-shared-key",
    "local",
    "remote",
    "proposal",
    "encryption",
    "group",
    "2",
    "lifetime",
    "exit",
    "end",
    "!",
    "remark",
    "standard",
    "extended",
    "access-list",
    "sequence",
    "198.18.1.1",
    "fe80::1",
    "link-local",
    "secondary",
    "dhcp",
    "version",
    "line",
    "vty",
    "login",
    "東京",
];

fn line() -> impl Strategy<Value = String> {
    (
        0..3usize,
        prop::collection::vec(prop::sample::select(WORDS), 0..10),
    )
        .prop_map(|(indent, words)| format!("{}{}", " ".repeat(indent), words.join(" ")))
}

fn kernel(name: &str) -> Option<super::super::ResolvedInterface> {
    (name == "a-wan").then(|| super::super::ResolvedInterface {
        ifindex: 3,
        addrs: vec!["198.18.0.1".parse().unwrap(), "fd00:1::1".parse().unwrap()],
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_lines_of_grammar_tokens_never_panic(lines in prop::collection::vec(line(), 0..30)) {
        let src = lines.join("\n");
        let n = lines.len().max(1) as u32;
        match parse(&src) {
            Ok(cfg) => {
                let _ = compile(&cfg, &ConfigAddresses(&cfg));
                if let Err(errors) = compile(&cfg, &kernel) {
                    for e in errors {
                        prop_assert!(e.span.line <= n, "{e}");
                        let _ = e.to_string();
                    }
                }
            }
            Err(errors) => {
                prop_assert!(!errors.is_empty());
                for e in errors {
                    prop_assert!(e.span.line >= 1 && e.span.line <= n, "{e}");
                    prop_assert!(e.span.col >= 1);
                    let _ = e.to_string();
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_never_panics(src in ".{0,400}") {
        if let Ok(cfg) = parse(&src) {
            let _ = compile(&cfg, &ConfigAddresses(&cfg));
        }
    }
}

const LAB: &str = include_str!("../../../../deploy/configs/lab-gw-a.conf");

/// One edit to a token of the lab config: delete it, replace it with a
/// grammar word, or duplicate it.
fn mutate(src: &str, edits: &[(usize, usize, u8, usize)]) -> String {
    let mut lines: Vec<Vec<String>> = src
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    for &(li, ti, op, w) in edits {
        let n = lines.len();
        let line = &mut lines[li % n];
        if line.is_empty() {
            continue;
        }
        let t = ti % line.len();
        match op % 3 {
            0 => {
                line.remove(t);
            }
            1 => line[t] = WORDS[w % WORDS.len()].to_string(),
            _ => {
                let dup = line[t].clone();
                line.insert(t, dup);
            }
        }
    }
    lines
        .iter()
        .map(|l| l.join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Near-valid configs reach the compiler's checks, not just the parser's.
    #[test]
    fn mutated_lab_configs_never_panic(edits in prop::collection::vec((0..100usize, 0..20usize, 0..3u8, 0..200usize), 1..4)) {
        let src = mutate(LAB, &edits);
        if let Ok(cfg) = parse(&src) {
            if let Ok(c) = compile(&cfg, &kernel) {
                prop_assert_eq!(c.sas.len(), 2 * c.entries.len());
            }
        }
    }
}
