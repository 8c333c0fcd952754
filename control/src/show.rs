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
    /// The lowest path MTU ICMP taught an outbound SA of the entry, else
    /// the interface's MTU.
    pub path_mtu: u16,
    /// The interface's MTU.
    pub ip_mtu: u16,
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
            v.path_mtu, v.ip_mtu, v.interface
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
            ip_mtu: 1500,
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

/// One row of `show crypto engine connections active`: an established
/// ISAKMP or IKEv2 SA, or one ESP SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConnView {
    /// The ISAKMP SA's conn-id, the IKEv2 SA's Tunnel-id, or the ESP
    /// SA's (`show crypto ipsec sa`'s `conn id`).
    pub id: u32,
    /// Interface and local address of an ESP SA; an IKE SA has none
    /// (IOS prints `<none>`, as seed 004 shows).
    pub interface: Option<String>,
    pub addr: Option<IpAddr>,
    /// IOS's engine name, e.g. `HMAC_MD5+DES_56_CB`.
    pub algorithm: String,
    /// Packets encrypted (outbound SA) and decrypted (inbound SA).
    pub encrypt: u64,
    pub decrypt: u64,
}

/// IOS's crypto-engine name of an ESP transform: the HMAC, then the
/// cipher (`HMAC_MD5+DES_56_CB` as in seed 004, `HMAC_SHA+3DES_56_C`).
pub fn esp_engine_algorithm(enc: EncAlg, auth: AuthAlg) -> String {
    let mac = match auth {
        AuthAlg::None => None,
        AuthAlg::HmacMd5_96 => Some("HMAC_MD5"),
        AuthAlg::HmacSha1_96 => Some("HMAC_SHA"),
        AuthAlg::HmacSha256_128 => Some("HMAC_SHA256"),
        AuthAlg::HmacSha384_192 => Some("HMAC_SHA384"),
        AuthAlg::HmacSha512_256 => Some("HMAC_SHA512"),
    };
    let cipher = match enc {
        EncAlg::Null => "NULL",
        EncAlg::DesCbc => "DES_56_CB",
        EncAlg::TripleDesCbc => "3DES_56_C",
        EncAlg::AesCbc128 => "AES_128_CB",
        EncAlg::AesCbc192 => "AES_192_CB",
        EncAlg::AesCbc256 => "AES_256_CB",
        EncAlg::AesGcm128(_) => "AES_GCM_128",
        EncAlg::AesGcm256(_) => "AES_GCM_256",
    };
    mac.map_or_else(|| cipher.to_string(), |m| format!("{m}+{cipher}"))
}

/// The same name for an ISAKMP SA, from `show crypto isakmp sa detail`'s
/// short names (`sha`, `des`, `aes:256`).
pub fn ike_engine_algorithm(encr: &str, hash: &str) -> String {
    let mac = match hash {
        "md5" => "HMAC_MD5".to_string(),
        "sha" => "HMAC_SHA".to_string(),
        h => format!("HMAC_{}", h.to_uppercase()),
    };
    let cipher = match encr {
        "des" => "DES_56_CB".to_string(),
        "3des" => "3DES_56_C".to_string(),
        "aes" => "AES_128_CB".to_string(),
        e => match e.strip_prefix("aes:") {
            Some(bits) => format!("AES_{bits}_CB"),
            None => e.to_uppercase(),
        },
    };
    format!("{mac}+{cipher}")
}

/// The same name for an IKEv2 SA, from `show crypto ikev2 sa`'s words
/// (`AES-CBC` with its key size, `SHA96`; AES-GCM has no HMAC).
pub fn ikev2_engine_algorithm(encr: &str, keysize: Option<u16>, hash: &str) -> String {
    let bits = keysize.unwrap_or(128);
    let cipher = match encr {
        "3DES" => "3DES_56_C".to_string(),
        "AES-CBC" => format!("AES_{bits}_CB"),
        "AES-GCM" => format!("AES_GCM_{bits}"),
        e => e.to_uppercase(),
    };
    match hash {
        "None" | "" => cipher,
        "SHA96" => format!("HMAC_SHA+{cipher}"),
        h => format!("HMAC_{h}+{cipher}"),
    }
}

/// `show crypto engine connections active`, seed 004's layout: one row
/// per active connection (IKE SAs, then ESP SAs), by id.
pub fn crypto_engine_connections(rows: &[EngineConnView]) -> String {
    let mut rows: Vec<&EngineConnView> = rows.iter().collect();
    rows.sort_by_key(|r| r.id);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\n{:>5} {:<20} {:<15} {:<5} {:<20} {:>8} {:>8}",
        "ID", "Interface", "IP-Address", "State", "Algorithm", "Encrypt", "Decrypt"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{:>5} {:<20} {:<15} {:<5} {:<20} {:>8} {:>8}",
            r.id,
            r.interface.as_deref().unwrap_or("<none>"),
            r.addr.map_or("<none>".to_string(), |a| a.to_string()),
            "set",
            r.algorithm,
            r.encrypt,
            r.decrypt
        );
    }
    s
}

#[cfg(test)]
mod engine_tests {
    use super::*;

    #[test]
    fn engine_names_follow_ios() {
        assert_eq!(
            esp_engine_algorithm(EncAlg::DesCbc, AuthAlg::HmacMd5_96),
            "HMAC_MD5+DES_56_CB"
        );
        assert_eq!(
            esp_engine_algorithm(EncAlg::AesCbc256, AuthAlg::HmacSha1_96),
            "HMAC_SHA+AES_256_CB"
        );
        assert_eq!(
            esp_engine_algorithm(
                EncAlg::AesGcm128(dataplane::crypto::GcmIcv::B16),
                AuthAlg::None
            ),
            "AES_GCM_128"
        );
        assert_eq!(ike_engine_algorithm("des", "sha"), "HMAC_SHA+DES_56_CB");
        assert_eq!(
            ike_engine_algorithm("aes:256", "sha256"),
            "HMAC_SHA256+AES_256_CB"
        );
        assert_eq!(ike_engine_algorithm("3des", "md5"), "HMAC_MD5+3DES_56_C");
        assert_eq!(
            ikev2_engine_algorithm("AES-CBC", Some(256), "SHA256"),
            "HMAC_SHA256+AES_256_CB"
        );
        assert_eq!(
            ikev2_engine_algorithm("AES-CBC", Some(128), "SHA96"),
            "HMAC_SHA+AES_128_CB"
        );
        assert_eq!(
            ikev2_engine_algorithm("AES-GCM", Some(128), "None"),
            "AES_GCM_128"
        );
    }

    #[test]
    fn rows_are_sorted_by_id_and_an_isakmp_sa_has_no_interface() {
        let esp = |id, encrypt, decrypt| EngineConnView {
            id,
            interface: Some("FastEthernet0/0".into()),
            addr: Some("11.11.11.1".parse().unwrap()),
            algorithm: "HMAC_MD5+DES_56_CB".into(),
            encrypt,
            decrypt,
        };
        let ike = EngineConnView {
            id: 2,
            interface: None,
            addr: None,
            algorithm: "HMAC_SHA+DES_56_CB".into(),
            encrypt: 0,
            decrypt: 0,
        };
        let s = crypto_engine_connections(&[esp(2001, 9, 0), esp(2000, 0, 9), ike]);
        let lines: Vec<&str> = s.lines().collect();
        // Seed 004's screen, in columns.
        assert_eq!(
            lines,
            [
                "",
                "   ID Interface            IP-Address      State Algorithm             Encrypt  Decrypt",
                "    2 <none>               <none>          set   HMAC_SHA+DES_56_CB          0        0",
                " 2000 FastEthernet0/0      11.11.11.1      set   HMAC_MD5+DES_56_CB          0        9",
                " 2001 FastEthernet0/0      11.11.11.1      set   HMAC_MD5+DES_56_CB          9        0",
            ]
        );
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

/// One crypto map entry as `show crypto map` prints it.
#[derive(Debug, Clone)]
pub struct CryptoMapView {
    pub map: String,
    pub seq: u32,
    /// `Some((name, seq))` for an entry standing for a dynamic map.
    pub dynamic: Option<(String, u32)>,
    /// `dynamic D discover`: the peer is found with TED.
    pub discover: bool,
    pub peers: Vec<IpAddr>,
    pub current_peer: Option<IpAddr>,
    /// `permit` lines as (source, destination, protocol) prefixes.
    pub selectors: Vec<(String, String, Option<u8>)>,
    pub lifetime_seconds: u64,
    pub lifetime_kilobytes: u64,
    pub pfs: Option<u16>,
    /// Transform set name and its transforms (`esp-aes esp-sha-hmac`).
    pub transforms: Vec<(String, String)>,
    pub interface: String,
}

/// `show crypto map`, in IOS's layout.
pub fn crypto_map(entries: &[CryptoMapView]) -> String {
    let mut s = String::new();
    for e in entries {
        match &e.dynamic {
            Some((name, seq)) => {
                let _ = writeln!(
                    s,
                    "Crypto Map \"{}\" {} ipsec-isakmp\n\tDynamic map template tag: {name} {seq}",
                    e.map, e.seq
                );
                if e.discover {
                    let _ = writeln!(s, "\tDiscover enabled");
                }
            }
            None => {
                let _ = writeln!(s, "Crypto Map \"{}\" {} ipsec-isakmp", e.map, e.seq);
            }
        }
        for p in &e.peers {
            let _ = writeln!(s, "\tPeer = {p}");
        }
        let _ = writeln!(s, "\tExtended IP access list");
        for (src, dst, proto) in &e.selectors {
            let proto = match proto {
                None => "ip".to_string(),
                Some(1) => "icmp".into(),
                Some(6) => "tcp".into(),
                Some(17) => "udp".into(),
                Some(p) => p.to_string(),
            };
            let _ = writeln!(s, "\t    access-list permit {proto} {src} {dst}");
        }
        if let Some(p) = e.current_peer {
            let _ = writeln!(s, "\tCurrent peer: {p}");
        }
        let _ = writeln!(
            s,
            "\tSecurity association lifetime: {} kilobytes/{} seconds",
            e.lifetime_kilobytes, e.lifetime_seconds
        );
        let _ = writeln!(
            s,
            "\tResponder-Only (Y/N): {}",
            if e.dynamic.is_some() && !e.discover {
                "Y"
            } else {
                "N"
            }
        );
        match e.pfs {
            Some(g) => {
                let _ = writeln!(s, "\tPFS (Y/N): Y\n\tDH group:  group{g}");
            }
            None => {
                let _ = writeln!(s, "\tPFS (Y/N): N");
            }
        }
        let sets: Vec<String> = e
            .transforms
            .iter()
            .map(|(name, t)| format!("\t\t{name}:  {{ {t} }} ,"))
            .collect();
        let _ = writeln!(s, "\tTransform sets={{ \n{} \n\t}}", sets.join("\n"));
        let _ = writeln!(
            s,
            "\tInterfaces using crypto map {}:\n\t\t{}\n",
            e.map, e.interface
        );
    }
    s
}

/// One peer's session as `show crypto session` prints it.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub interface: String,
    pub peer: IpAddr,
    pub peer_port: u16,
    pub local: IpAddr,
    pub local_port: u16,
    /// `IKEv1` or `IKEv2`.
    pub version: &'static str,
    /// IKE SA state: `Active` (IKEv1) or `READY` (IKEv2) once established.
    pub ike: Option<&'static str>,
    pub ike_conn_id: Option<u32>,
    /// (flow text, active SA count, encaps, decaps).
    pub flows: Vec<(String, usize, u64, u64)>,
}

/// `show crypto session [detail]`.
pub fn crypto_session(sessions: &[SessionView], detail: bool) -> String {
    let mut s = String::from("Crypto session current status\n\n");
    if detail {
        s.push_str(
            "Code: C - IKE Configuration mode, D - Dead Peer Detection     \n\
             K - Keepalives, N - NAT-traversal, T - cTCP encapsulation     \n\
             X - IKE Extended Authentication, F - IKE Fragmentation\n\n",
        );
    }
    for v in sessions {
        // IOS: UP-ACTIVE (IKE and IPsec up), UP-IDLE (IKE up, no IPsec
        // SA), UP-NO-IKE (IPsec SAs without their ISAKMP SA), DOWN.
        let status = match (v.ike.is_some(), v.flows.iter().any(|f| f.1 > 0)) {
            (true, true) => "UP-ACTIVE",
            (true, false) => "UP-IDLE",
            (false, true) => "UP-NO-IKE",
            (false, false) => "DOWN",
        };
        let _ = writeln!(
            s,
            "Interface: {}\nSession status: {status}\nPeer: {} port {}",
            v.interface, v.peer, v.peer_port
        );
        if let Some(state) = v.ike {
            let _ = writeln!(
                s,
                "  {} SA: local {}/{} remote {}/{} {state}",
                v.version, v.local, v.local_port, v.peer, v.peer_port
            );
            if detail {
                if let Some(c) = v.ike_conn_id {
                    let _ = writeln!(s, "      Capabilities:(none) connid:{c} ");
                }
            }
        }
        for (flow, active, encaps, decaps) in &v.flows {
            let _ = writeln!(
                s,
                "  IPSEC FLOW: {flow}\n        Active SAs: {active}, origin: crypto map"
            );
            if detail {
                let _ = writeln!(
                    s,
                    "        Inbound:  #pkts dec'ed {decaps}\n        Outbound: #pkts enc'ed {encaps}"
                );
            }
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod session_map_tests {
    use super::*;

    #[test]
    fn crypto_map_lists_peers_acl_lifetime_pfs_and_transform_sets() {
        let v = CryptoMapView {
            map: "VPN".into(),
            seq: 10,
            dynamic: None,
            discover: false,
            peers: vec!["198.18.1.1".parse().unwrap()],
            current_peer: Some("198.18.1.1".parse().unwrap()),
            selectors: vec![("198.19.1.0/24".into(), "198.19.2.0/24".into(), None)],
            lifetime_seconds: 3600,
            lifetime_kilobytes: 4_608_000,
            pfs: Some(14),
            transforms: vec![("LAB".into(), "esp-aes esp-sha-hmac".into())],
            interface: "a-wan".into(),
        };
        let s = crypto_map(&[v]);
        for want in [
            "Crypto Map \"VPN\" 10 ipsec-isakmp",
            "\tPeer = 198.18.1.1",
            "access-list permit ip 198.19.1.0/24 198.19.2.0/24",
            "Current peer: 198.18.1.1",
            "Security association lifetime: 4608000 kilobytes/3600 seconds",
            "PFS (Y/N): Y",
            "group14",
            "LAB:  { esp-aes esp-sha-hmac }",
            "Interfaces using crypto map VPN:\n\t\ta-wan",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
    }

    #[test]
    fn a_ted_entry_shows_discover_enabled_and_its_discovered_peer() {
        let v = CryptoMapView {
            map: "tedtag".into(),
            seq: 10,
            dynamic: Some(("ted-map".into(), 10)),
            discover: true,
            peers: vec![],
            current_peer: Some("11.11.11.2".parse().unwrap()),
            selectors: vec![("13.13.13.0/24".into(), "12.12.12.0/24".into(), None)],
            lifetime_seconds: 3600,
            lifetime_kilobytes: 4_608_000,
            pfs: None,
            transforms: vec![("ted-transforms".into(), "esp-des esp-md5-hmac".into())],
            interface: "FastEthernet0/0".into(),
        };
        let s = crypto_map(&[v]);
        for want in [
            "Crypto Map \"tedtag\" 10 ipsec-isakmp\n\tDynamic map template tag: ted-map 10\n\tDiscover enabled\n",
            "access-list permit ip 13.13.13.0/24 12.12.12.0/24",
            "Current peer: 11.11.11.2",
            "Responder-Only (Y/N): N",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
    }

    #[test]
    fn crypto_session_status_follows_ike_and_ipsec() {
        let up = SessionView {
            interface: "a-wan".into(),
            peer: "198.18.1.1".parse().unwrap(),
            peer_port: 4500,
            local: "198.18.0.1".parse().unwrap(),
            local_port: 4500,
            version: "IKEv1",
            ike: Some("Active"),
            ike_conn_id: Some(1001),
            flows: vec![("permit ip 198.19.1.0/24 198.19.2.0/24".into(), 2, 7, 5)],
        };
        let s = crypto_session(std::slice::from_ref(&up), true);
        assert!(s.contains("Session status: UP-ACTIVE"));
        assert!(s.contains("Peer: 198.18.1.1 port 4500"));
        assert!(s.contains("IKEv1 SA: local 198.18.0.1/4500 remote 198.18.1.1/4500 Active"));
        assert!(s.contains("Active SAs: 2, origin: crypto map"));
        assert!(s.contains("#pkts dec'ed 5") && s.contains("#pkts enc'ed 7"));
        let no_ipsec = SessionView {
            flows: vec![],
            ..up.clone()
        };
        assert!(crypto_session(&[no_ipsec], false).contains("UP-IDLE"));
        let no_ike = SessionView { ike: None, ..up };
        assert!(crypto_session(&[no_ike], false).contains("UP-NO-IKE"));
    }
}

/// `show crypto ikev2 sa [detailed]`: IPv4 SAs then IPv6 ones, in the
/// layout of seed 002.
pub fn crypto_ikev2_sa(sas: &[crate::ikev2::Ikev2SaView], detailed: bool) -> String {
    let mut s = String::new();
    for (fam, v6) in [("IPv4", false), ("IPv6", true)] {
        let _ = writeln!(
            s,
            " {fam} Crypto IKEv2  SA \n\nTunnel-id Local                 Remote                fvrf/ivrf            Status "
        );
        for sa in sas.iter().filter(|sa| sa.remote.is_ipv6() == v6) {
            for (i, line) in sa.lines(detailed).iter().enumerate() {
                if i == 0 {
                    let _ = writeln!(s, "{}", ikev2_row(sa));
                } else {
                    let _ = writeln!(s, "      {line}");
                }
            }
            s.push('\n');
        }
        s.push('\n');
    }
    s
}

/// The table row of one IKEv2 SA, columns as IOS aligns them.
fn ikev2_row(sa: &crate::ikev2::Ikev2SaView) -> String {
    format!(
        "{:<9} {:<21} {:<21} {:<20} {}",
        sa.tunnel_id,
        format!("{}/{}", sa.local.ip(), sa.local.port()),
        format!("{}/{}", sa.remote.ip(), sa.remote.port()),
        "none/none",
        sa.status
    )
}

/// One IKE SA and its CHILD_SAs, for `show crypto ikev2 session`.
#[derive(Debug, Clone)]
pub struct Ikev2SessionView {
    pub sa: crate::ikev2::Ikev2SaView,
    pub children: Vec<crate::ikev1::PairInfo>,
}

/// `show crypto ikev2 session [detailed]`.
pub fn crypto_ikev2_session(sessions: &[Ikev2SessionView], detailed: bool) -> String {
    let mut s = String::new();
    for (fam, v6) in [("IPv4", false), ("IPv6", true)] {
        let _ = writeln!(s, " {fam} Crypto IKEv2 Session \n");
        // Session ids count every session, IPv4 and IPv6 alike.
        for (i, v) in sessions
            .iter()
            .enumerate()
            .filter(|(_, v)| v.sa.remote.is_ipv6() == v6)
        {
            let status = match (v.sa.status == "READY", v.children.is_empty()) {
                (true, false) => "UP-ACTIVE",
                (true, true) => "UP-IDLE",
                (false, _) => "UP-NEGOTIATING",
            };
            let _ = writeln!(
                s,
                "Session-id:{}, Status:{status}, IKE count:1, CHILD count:{}\n",
                i + 1,
                v.children.len()
            );
            let _ = writeln!(
                s,
                "Tunnel-id Local                 Remote                fvrf/ivrf            Status \n{}",
                ikev2_row(&v.sa)
            );
            for line in v.sa.lines(detailed).iter().skip(1) {
                let _ = writeln!(s, "      {line}");
            }
            for c in &v.children {
                let p = &c.proxy;
                let _ = writeln!(
                    s,
                    "Child sa: local selector  {}\n          remote selector {}\n          ESP spi in/out: 0x{:x}/0x{:x}  ",
                    selector_range(&p.src, p.src_ports),
                    selector_range(&p.dst, p.dst_ports),
                    c.inbound_spi,
                    c.outbound_spi
                );
            }
            s.push('\n');
        }
    }
    s
}

/// A traffic selector as IOS prints it: `198.19.1.0/0 - 198.19.1.255/65535`
/// (first address/low port - last address/high port).
fn selector_range(p: &dataplane::spd::IpPrefix, ports: dataplane::spd::PortRange) -> String {
    let (first, last) = match p.addr() {
        IpAddr::V4(a) => {
            let host = u32::MAX.checked_shr(u32::from(p.prefix_len())).unwrap_or(0);
            let first = u32::from(a) & !host;
            (
                IpAddr::from(std::net::Ipv4Addr::from(first)),
                IpAddr::from(std::net::Ipv4Addr::from(first | host)),
            )
        }
        IpAddr::V6(a) => {
            let host = u128::MAX
                .checked_shr(u32::from(p.prefix_len()))
                .unwrap_or(0);
            let first = u128::from(a) & !host;
            (
                IpAddr::from(std::net::Ipv6Addr::from(first)),
                IpAddr::from(std::net::Ipv6Addr::from(first | host)),
            )
        }
    };
    format!("{first}/{} - {last}/{}", ports.lo, ports.hi)
}

#[cfg(test)]
mod ikev2_show_tests {
    use super::*;

    fn view() -> crate::ikev2::Ikev2SaView {
        crate::ikev2::Ikev2SaView {
            tunnel_id: 1,
            local: "198.18.0.1:500".parse().unwrap(),
            remote: "198.18.1.1:500".parse().unwrap(),
            status: "READY",
            encr: "AES-CBC",
            keysize: Some(128),
            hash: "SHA96",
            dh_group: Some(2),
            lifetime: 120,
            active_secs: 10,
            local_spi: [0xE5, 0x8F, 0x92, 0x51, 0x07, 0xF8, 0xB7, 0x3F],
            remote_spi: [0xAF, 0xD0, 0x98, 0xF4, 0x14, 0x78, 0x69, 0xDA],
            local_next_msg_id: 2,
            remote_next_msg_id: 0,
            dpd: (0, 0),
            nat_t: false,
            initiator: true,
            local_id: "198.18.0.1".into(),
            remote_id: "198.18.1.1".into(),
        }
    }

    #[test]
    fn ikev2_sa_detailed_reads_as_seed_002() {
        let s = crypto_ikev2_sa(&[view()], true);
        for want in [
            "IPv4 Crypto IKEv2  SA",
            "Tunnel-id Local                 Remote                fvrf/ivrf            Status",
            "1         198.18.0.1/500        198.18.1.1/500        none/none            READY",
            "Encr: AES-CBC, keysize: 128, Hash: SHA96, DH Grp:2, Auth sign: PSK, Auth verify: PSK",
            "Life/Active Time: 120/10 sec",
            "Local spi: E58F925107F8B73F Remote spi: AFD098F4147869DA",
            "Local id: 198.18.0.1",
            "Remote id: 198.18.1.1",
            "Local next msg id: 2 Remote next msg id: 0",
        ] {
            assert!(s.contains(want), "{want:?} missing from\n{s}");
        }
        // The IPv4 SA is not listed again under IPv6.
        assert_eq!(s.matches("198.18.1.1/500").count(), 1);
    }

    #[test]
    fn ikev2_session_counts_children_and_prints_their_spis() {
        let child = crate::ikev1::PairInfo {
            tag: dataplane::spd::PolicyTag { map: 0, seq: 10 },
            proxy: dataplane::spd::TrafficSelector {
                src: IpPrefix::new("198.19.1.0".parse().unwrap(), 24).unwrap(),
                dst: IpPrefix::new("198.19.2.0".parse().unwrap(), 24).unwrap(),
                proto: None,
                src_ports: dataplane::spd::PortRange::ANY,
                dst_ports: dataplane::spd::PortRange::ANY,
            },
            local: "198.18.0.1".parse().unwrap(),
            peer: "198.18.1.1".parse().unwrap(),
            inbound_spi: 0x1a2b3c4d,
            outbound_spi: 0x5e6f7081,
        };
        let up = Ikev2SessionView {
            sa: view(),
            children: vec![child],
        };
        let s = crypto_ikev2_session(std::slice::from_ref(&up), false);
        assert!(
            s.contains("Session-id:1, Status:UP-ACTIVE, IKE count:1, CHILD count:1"),
            "{s}"
        );
        assert!(
            s.contains("local selector  198.19.1.0/0 - 198.19.1.255/65535"),
            "{s}"
        );
        assert!(s.contains("ESP spi in/out: 0x1a2b3c4d/0x5e6f7081"), "{s}");
        let idle = Ikev2SessionView {
            children: vec![],
            ..up
        };
        assert!(crypto_ikev2_session(&[idle], false)
            .contains("Status:UP-IDLE, IKE count:1, CHILD count:0"));
    }

    #[test]
    fn selectors_print_as_ios_ranges() {
        let p = |s: &str, l| dataplane::spd::IpPrefix::new(s.parse().unwrap(), l).unwrap();
        let any = dataplane::spd::PortRange::ANY;
        assert_eq!(
            selector_range(&p("198.19.1.0", 24), any),
            "198.19.1.0/0 - 198.19.1.255/65535"
        );
        assert_eq!(
            selector_range(&p("0.0.0.0", 0), any),
            "0.0.0.0/0 - 255.255.255.255/65535"
        );
        assert_eq!(
            selector_range(
                &p("fd00:a::", 64),
                dataplane::spd::PortRange { lo: 80, hi: 80 }
            ),
            "fd00:a::/80 - fd00:a::ffff:ffff:ffff:ffff/80"
        );
    }
}
