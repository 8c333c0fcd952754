//! IOS-style `show` output. Network engineers read these screens every day
//! (and their scripts parse them), so the layout follows IOS 12.4/15.x
//! `show crypto ipsec sa` line for line, as seed 003's router prints it.

use std::fmt::Write;
use std::net::IpAddr;

use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::IpPrefix;

/// One side's proxy identity as IOS prints it: `(addr/mask/prot/port)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ident {
    pub prefix: IpPrefix,
    pub proto: u8,
    pub port: u16,
}

impl Ident {
    fn render(&self) -> String {
        match self.prefix.addr() {
            IpAddr::V4(a) => {
                let len = u32::from(self.prefix.prefix_len());
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                let m = std::net::Ipv4Addr::from(mask);
                format!("({a}/{m}/{}/{})", self.proto, self.port)
            }
            IpAddr::V6(a) => format!(
                "({a}/{}/{}/{})",
                self.prefix.prefix_len(),
                self.proto,
                self.port
            ),
        }
    }
}

/// One ESP SA of a pair, with what `show` needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspSaView {
    pub spi: u32,
    pub enc: EncAlg,
    pub auth: AuthAlg,
    pub tunnel: bool,
    pub conn_id: u32,
    /// Remaining lifetime: kilobytes and seconds (`None`: no limit).
    pub remaining_kb: Option<u64>,
    pub remaining_secs: Option<u64>,
    pub replay_detection: bool,
}

/// One crypto-map entry's IPsec state: the SA pair and its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsecSaView {
    pub interface: String,
    pub map_tag: String,
    pub local_addr: IpAddr,
    pub local_ident: Ident,
    pub remote_ident: Ident,
    pub peer: IpAddr,
    pub peer_port: u16,
    pub encaps: u64,
    pub encrypt: u64,
    pub digest: u64,
    pub decaps: u64,
    pub decrypt: u64,
    pub verify: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub path_mtu: u16,
    pub inbound: Vec<EspSaView>,
    pub outbound: Vec<EspSaView>,
    /// Drop counters by name (beyond IOS's screen: Espada counts each
    /// reason), printed only when non-zero.
    pub drops: Vec<(&'static str, u64)>,
}

fn spi(s: u32) -> String {
    format!("0x{s:08X}({s})")
}

fn transform(enc: EncAlg, auth: AuthAlg) -> String {
    match auth {
        AuthAlg::None => format!("{} ,", enc.ios_name()),
        a => format!("{} {} ,", enc.ios_name(), a.ios_name()),
    }
}

fn lifetime(v: Option<u64>) -> String {
    v.map_or("unlimited".to_string(), |n| n.to_string())
}

fn esp_block(out: &mut String, sa: &EspSaView, map: &str) {
    let _ = writeln!(out, "   spi: {}", spi(sa.spi));
    let _ = writeln!(out, "     transform: {}", transform(sa.enc, sa.auth));
    let _ = writeln!(
        out,
        "     in use settings ={{{}, }}",
        if sa.tunnel { "Tunnel" } else { "Transport" }
    );
    let _ = writeln!(
        out,
        "     conn id: {}, flow_id: SW:{}, crypto map: {map}",
        sa.conn_id,
        sa.conn_id % 1000
    );
    let _ = writeln!(
        out,
        "     sa timing: remaining key lifetime (k/sec): ({}/{})",
        lifetime(sa.remaining_kb),
        lifetime(sa.remaining_secs)
    );
    let iv = sa.enc.iv_len();
    let _ = writeln!(out, "     IV size: {iv} bytes");
    let _ = writeln!(
        out,
        "     replay detection support: {}",
        if sa.replay_detection { "Y" } else { "N" }
    );
    let _ = writeln!(out, "     Status: ACTIVE");
}

/// `show crypto ipsec sa`, one block per interface and crypto-map entry.
pub fn crypto_ipsec_sa(views: &[IpsecSaView]) -> String {
    let mut out = String::new();
    for v in views {
        let _ = writeln!(out, "\ninterface: {}", v.interface);
        let _ = writeln!(
            out,
            "    Crypto map tag: {}, local addr {}\n",
            v.map_tag, v.local_addr
        );
        let _ = writeln!(out, "   protected vrf: (none)");
        let _ = writeln!(
            out,
            "   local  ident (addr/mask/prot/port): {}",
            v.local_ident.render()
        );
        let _ = writeln!(
            out,
            "   remote ident (addr/mask/prot/port): {}",
            v.remote_ident.render()
        );
        let _ = writeln!(out, "   current_peer {} port {}", v.peer, v.peer_port);
        let _ = writeln!(out, "     PERMIT, flags={{}}");
        let _ = writeln!(
            out,
            "    #pkts encaps: {}, #pkts encrypt: {}, #pkts digest: {}",
            v.encaps, v.encrypt, v.digest
        );
        let _ = writeln!(
            out,
            "    #pkts decaps: {}, #pkts decrypt: {}, #pkts verify: {}",
            v.decaps, v.decrypt, v.verify
        );
        let _ = writeln!(out, "    #pkts compressed: 0, #pkts decompressed: 0");
        let _ = writeln!(out, "    #pkts not compressed: 0, #pkts compr. failed: 0");
        let _ = writeln!(
            out,
            "    #pkts not decompressed: 0, #pkts decompress failed: 0"
        );
        let _ = writeln!(
            out,
            "    #send errors {}, #recv errors {}",
            v.send_errors, v.recv_errors
        );
        for (name, n) in v.drops.iter().filter(|(_, n)| *n > 0) {
            let _ = writeln!(out, "    #drops {name}: {n}");
        }
        let _ = writeln!(
            out,
            "\n     local crypto endpt.: {}, remote crypto endpt.: {}",
            v.local_addr, v.peer
        );
        let _ = writeln!(
            out,
            "     path mtu {}, ip mtu {}, ip mtu idb {}",
            v.path_mtu, v.path_mtu, v.interface
        );
        let current = v
            .outbound
            .last()
            .map_or("0x0(0)".to_string(), |s| spi(s.spi));
        let _ = writeln!(out, "     current outbound spi: {current}");
        let _ = writeln!(out, "\n     inbound esp sas:");
        for sa in &v.inbound {
            esp_block(&mut out, sa, &v.map_tag);
        }
        let _ = writeln!(
            out,
            "\n     inbound ah sas:\n\n     inbound pcp sas:\n\n     outbound esp sas:"
        );
        for sa in &v.outbound {
            esp_block(&mut out, sa, &v.map_tag);
        }
        let _ = writeln!(out, "\n     outbound ah sas:\n\n     outbound pcp sas:");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> IpsecSaView {
        let esp = |spi, conn_id| EspSaView {
            spi,
            enc: EncAlg::DesCbc,
            auth: AuthAlg::HmacMd5_96,
            tunnel: true,
            conn_id,
            remaining_kb: Some(4390267),
            remaining_secs: Some(3494),
            replay_detection: true,
        };
        IpsecSaView {
            interface: "eth0".into(),
            map_tag: "IPSEC".into(),
            local_addr: "198.18.1.1".parse().unwrap(),
            local_ident: Ident {
                prefix: "198.19.2.0/24".parse().unwrap(),
                proto: 0,
                port: 0,
            },
            remote_ident: Ident {
                prefix: "198.19.1.0/24".parse().unwrap(),
                proto: 0,
                port: 0,
            },
            peer: "198.18.0.1".parse().unwrap(),
            peer_port: 500,
            encaps: 10,
            encrypt: 10,
            digest: 10,
            decaps: 10,
            decrypt: 10,
            verify: 10,
            send_errors: 0,
            recv_errors: 0,
            path_mtu: 1500,
            inbound: vec![esp(0x537BC76F, 2001)],
            outbound: vec![esp(0x64D800CB, 2002)],
            drops: vec![("replay", 0), ("integrity-failed", 3)],
        }
    }

    #[test]
    fn the_screen_matches_the_lines_of_seed_003s_router() {
        let s = crypto_ipsec_sa(&[view()]);
        for line in [
            "interface: eth0",
            "    Crypto map tag: IPSEC, local addr 198.18.1.1",
            "   local  ident (addr/mask/prot/port): (198.19.2.0/255.255.255.0/0/0)",
            "   remote ident (addr/mask/prot/port): (198.19.1.0/255.255.255.0/0/0)",
            "   current_peer 198.18.0.1 port 500",
            "    #pkts encaps: 10, #pkts encrypt: 10, #pkts digest: 10",
            "    #pkts decaps: 10, #pkts decrypt: 10, #pkts verify: 10",
            "     current outbound spi: 0x64D800CB(1691877579)",
            "   spi: 0x537BC76F(1400620911)",
            "     transform: esp-des esp-md5-hmac ,",
            "     in use settings ={Tunnel, }",
            "     sa timing: remaining key lifetime (k/sec): (4390267/3494)",
            "     IV size: 8 bytes",
            "     replay detection support: Y",
            "     Status: ACTIVE",
        ] {
            assert!(
                s.lines().any(|l| l == line),
                "missing line {line:?} in\n{s}"
            );
        }
    }

    #[test]
    fn only_nonzero_drop_counters_are_shown() {
        let s = crypto_ipsec_sa(&[view()]);
        assert!(s.contains("#drops integrity-failed: 3"));
        assert!(!s.contains("#drops replay"));
    }

    #[test]
    fn ipv6_idents_print_prefix_lengths() {
        let mut v = view();
        v.local_ident.prefix = "fd00:b::/64".parse().unwrap();
        assert!(crypto_ipsec_sa(&[v]).contains("(fd00:b::/64/0/0)"));
    }
}

/// One ISAKMP SA as `show crypto isakmp sa` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsakmpSaView {
    pub conn_id: u32,
    /// The responder (IOS shows the SA from the initiator's side).
    pub dst: IpAddr,
    pub src: IpAddr,
    /// Our side and the peer's, for `detail`.
    pub local: IpAddr,
    pub remote: IpAddr,
    /// MM_NO_STATE ... QM_IDLE, AG_*.
    pub state: &'static str,
    /// `ACTIVE` once authenticated, else empty.
    pub status: &'static str,
    /// IOS's short names: `des`, `3des`, `aes`, `aes:256`...
    pub encr: String,
    /// `md5`, `sha`, `sha256`...
    pub hash: String,
    pub group: Option<u16>,
    pub lifetime_remaining: Option<u64>,
    pub dpd: bool,
    pub nat_t: bool,
}

/// `show crypto isakmp sa [detail]`, IPv4 SAs then IPv6 ones, as IOS.
pub fn crypto_isakmp_sa(sas: &[IsakmpSaView], detail: bool) -> String {
    let mut s = String::new();
    if detail {
        s.push_str(
            "Codes: C - IKE configuration mode, D - Dead Peer Detection\n       \
             K - Keepalives, N - NAT-traversal\n       \
             T - cTCP encapsulation, X - IKE Extended Authentication\n       \
             psk - Preshared key, rsig - RSA signature\n       \
             renc - RSA encryption\n",
        );
    }
    for (fam, v6) in [("IPv4", false), ("IPv6", true)] {
        let _ = writeln!(s, "{fam} Crypto ISAKMP SA");
        let mine = sas.iter().filter(|sa| sa.dst.is_ipv6() == v6);
        if detail {
            s.push_str(
                "\nC-id  Local           Remote          I-VRF  Status Encr Hash   Auth DH Lifetime Cap.\n\n",
            );
            for sa in mine {
                let life = sa.lifetime_remaining.map_or(String::new(), |t| {
                    format!("{:02}:{:02}:{:02}", t / 3600, t / 60 % 60, t % 60)
                });
                let cap = format!(
                    "{}{}",
                    if sa.dpd { "D" } else { "" },
                    if sa.nat_t { "N" } else { "" }
                );
                if v6 {
                    let _ = writeln!(
                        s,
                        "{:<5} Local {}\n      Remote {}\n                        {:<6} {:<4} {:<6} psk  {:<2} {:<8} {cap}",
                        sa.conn_id,
                        sa.local,
                        sa.remote,
                        sa.status,
                        sa.encr,
                        sa.hash,
                        sa.group.map_or(String::new(), |g| g.to_string()),
                        life
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "{:<5} {:<15} {:<15}        {:<6} {:<4} {:<6} psk  {:<2} {:<8} {cap}",
                        sa.conn_id,
                        sa.local.to_string(),
                        sa.remote.to_string(),
                        sa.status,
                        sa.encr,
                        sa.hash,
                        sa.group.map_or(String::new(), |g| g.to_string()),
                        life
                    );
                }
                let _ = writeln!(s, "       Engine-id:Conn-id =  SW:{}", sa.conn_id % 1000);
            }
        } else {
            s.push_str("dst             src             state          conn-id status\n");
            for sa in mine {
                if v6 {
                    let _ = writeln!(
                        s,
                        "{}\n{}\n                                {:<14} {:>7} {}",
                        sa.dst, sa.src, sa.state, sa.conn_id, sa.status
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "{:<15} {:<15} {:<14} {:>7} {}",
                        sa.dst.to_string(),
                        sa.src.to_string(),
                        sa.state,
                        sa.conn_id,
                        sa.status
                    );
                }
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod isakmp_tests {
    use super::*;

    fn sa(dst: &str, src: &str, state: &'static str) -> IsakmpSaView {
        IsakmpSaView {
            conn_id: 1001,
            dst: dst.parse().unwrap(),
            src: src.parse().unwrap(),
            local: src.parse().unwrap(),
            remote: dst.parse().unwrap(),
            state,
            status: "ACTIVE",
            encr: "aes".into(),
            hash: "sha256".into(),
            group: Some(14),
            lifetime_remaining: Some(86_390),
            dpd: true,
            nat_t: false,
        }
    }

    #[test]
    fn the_summary_has_the_ios_columns_per_family() {
        let out = crypto_isakmp_sa(
            &[
                sa("198.18.1.1", "198.18.0.1", "QM_IDLE"),
                sa("fd00:2::1", "fd00:1::1", "MM_KEY_EXCH"),
            ],
            false,
        );
        let want = "IPv4 Crypto ISAKMP SA\n\
                    dst             src             state          conn-id status\n\
                    198.18.1.1      198.18.0.1      QM_IDLE           1001 ACTIVE\n\
                    \n\
                    IPv6 Crypto ISAKMP SA\n\
                    dst             src             state          conn-id status\n\
                    fd00:2::1\n\
                    fd00:1::1\n                                \
                    MM_KEY_EXCH       1001 ACTIVE\n\n";
        assert_eq!(out, want);
    }

    #[test]
    fn detail_shows_algorithms_lifetime_and_capabilities() {
        let out = crypto_isakmp_sa(&[sa("198.18.1.1", "198.18.0.1", "QM_IDLE")], true);
        assert!(
            out.starts_with("Codes: C - IKE configuration mode"),
            "{out}"
        );
        assert!(
            out.contains("1001  198.18.0.1      198.18.1.1             ACTIVE aes  sha256 psk  14 23:59:50 D\n"),
            "{out}"
        );
        assert!(out.contains("Engine-id:Conn-id =  SW:1"), "{out}");
    }
}
