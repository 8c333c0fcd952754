//! The generator's frames and the receiver's parser.
//!
//! Every generated packet is an IPv4 or IPv6 packet carrying UDP or a TCP
//! header (no handshake: "TCP-like", for paths that treat the protocols
//! differently) whose payload starts with a probe header:
//!
//! ```text
//! 0      4   6   8              16             24
//! +------+---+---+--------------+--------------+----------------
//! |magic |run|flo|   sequence   |   tx time    |  filler bytes
//! +------+---+---+--------------+--------------+----------------
//!  "ESPG" u16 u16      u64          u64, ns of CLOCK_MONOTONIC
//! ```
//!
//! all big-endian. A flow is one source port (`BASE_SPORT + flow`); its
//! sequence numbers count from 0. The run id tells one generator run from
//! another: packets of an earlier run still queued in the path (an RFC
//! 2544 trial after a lossy one) are not counted as this run's. Frames are built once ([`Template`]);
//! per packet only the source port, the probe fields and the checksum are
//! written ([`Template::stamp`]), the checksum from a sum precomputed over
//! everything else.
//!
//! Sizes are IP packet lengths (what an MTU limits, as in `espada-bench
//! crypto`): 64 to 1500 bytes, the Ethernet frame adds 14.

use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use dataplane::wire::checksum;

/// "ESPG".
pub const MAGIC: u32 = 0x4553_5047;
/// The probe header's length.
pub const PROBE_LEN: usize = 24;
/// Flow `f` is sent from UDP/TCP port `BASE_SPORT + f`.
pub const BASE_SPORT: u16 = 10_000;
/// Flows per run: the source ports `BASE_SPORT..BASE_SPORT + MAX_FLOWS`.
pub const MAX_FLOWS: u32 = 50_000;
/// The largest IP packet: a 1500-byte MTU.
pub const MAX_IP_LEN: usize = 1500;
/// The smallest size asked for; the headers may need more ([`min_ip_len`]).
pub const MIN_SIZE: usize = 64;
pub const ETH_LEN: usize = 14;
/// Per frame on the wire besides what AF_XDP sees: FCS (4), preamble and
/// start delimiter (8), inter-frame gap (12).
pub const WIRE_OVERHEAD: usize = 24;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ESP: u8 = 50;
/// ESP-in-UDP's port (RFC 3948): UDP to it is ESP or IKE, not a probe.
pub const NATT_PORT: u16 = 4500;

/// The transport header the flows use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
}

impl Proto {
    pub fn parse(s: &str) -> Result<Proto> {
        match s {
            "udp" => Ok(Proto::Udp),
            "tcp" => Ok(Proto::Tcp),
            other => bail!("--proto {other:?}: udp or tcp"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
        }
    }

    fn header_len(self) -> usize {
        match self {
            Proto::Udp => 8,
            Proto::Tcp => 20,
        }
    }

    fn number(self) -> u8 {
        match self {
            Proto::Udp => IPPROTO_UDP,
            Proto::Tcp => IPPROTO_TCP,
        }
    }
}

/// The smallest IP packet that holds the headers and the probe.
pub fn min_ip_len(v6: bool, proto: Proto) -> usize {
    (if v6 { 40 } else { 20 }) + proto.header_len() + PROBE_LEN
}

/// Simple IMIX by IP packet size: 7 × 64, 4 × 576, 1 × 1400 bytes (1400 so
/// an ESP packet of it still fits a 1500-byte MTU), interleaved. The same
/// mix as `espada-bench crypto`; a 64 below [`min_ip_len`] becomes that.
pub const IMIX: [usize; 12] = [64, 576, 64, 64, 1400, 64, 576, 64, 64, 576, 64, 576];

/// A size point: one size, or the IMIX mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Fixed(usize),
    Imix,
}

impl Size {
    pub fn parse(s: &str) -> Result<Size> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Size::Imix);
        }
        match s.parse::<usize>() {
            Ok(n) if (MIN_SIZE..=MAX_IP_LEN).contains(&n) => Ok(Size::Fixed(n)),
            _ => bail!("--size {s:?}: give an IP packet size from {MIN_SIZE} to {MAX_IP_LEN} bytes, or imix"),
        }
    }

    /// A comma-separated list (`64,512,imix`), blanks and empty items
    /// skipped; errors name `flag`.
    pub fn parse_list(list: &str, flag: &str) -> Result<Vec<Size>> {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| Size::parse(s).map_err(|e| anyhow!("{flag}: {e}")))
            .collect()
    }

    pub fn label(self) -> String {
        match self {
            Size::Fixed(n) => n.to_string(),
            Size::Imix => "imix".into(),
        }
    }

    /// The sizes to build, in the order frames cycle through them: frame
    /// `k` of the UMEM holds `pattern[k % pattern.len()]`. Errors when a
    /// fixed size cannot hold the headers.
    pub fn pattern(self, v6: bool, proto: Proto) -> Result<Vec<usize>> {
        let min = min_ip_len(v6, proto);
        match self {
            Size::Fixed(n) if n < min => bail!(
                "--size {n} cannot hold IPv{}/{} and the {PROBE_LEN}-byte probe header: give {min} or more",
                if v6 { 6 } else { 4 },
                proto.name().to_uppercase()
            ),
            Size::Fixed(n) => Ok(vec![n]),
            Size::Imix => Ok(IMIX.iter().map(|&n| n.max(min)).collect()),
        }
    }
}

/// Mean IP packet length of a pattern.
pub fn mean_len(pattern: &[usize]) -> f64 {
    pattern.iter().sum::<usize>() as f64 / pattern.len().max(1) as f64
}

/// What every packet of a run shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowSpec {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub proto: Proto,
    pub dst_port: u16,
}

/// One pre-built frame of one size: Ethernet + IP + UDP/TCP + probe +
/// filler, with the per-packet fields zero.
#[derive(Debug, Clone)]
pub struct Template {
    pub bytes: Vec<u8>,
    l4_off: usize,
    csum_off: usize,
    probe_off: usize,
    /// One's complement sum (unfolded) of the pseudo-header and the whole
    /// transport segment with the per-packet fields zero.
    base_sum: u32,
    udp: bool,
}

fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

impl Template {
    /// Builds the frame for an IP packet of `ip_len` bytes.
    pub fn build(spec: &FlowSpec, ip_len: usize) -> Result<Template> {
        let v6 = spec.src.is_ipv6();
        if spec.dst.is_ipv6() != v6 {
            bail!("--src and --dst must be of one family");
        }
        if ip_len < min_ip_len(v6, spec.proto) || ip_len > MAX_IP_LEN {
            bail!("IP packet size {ip_len} out of range");
        }
        let mut f = vec![0u8; ETH_LEN + ip_len];
        f[0..6].copy_from_slice(&spec.dst_mac);
        f[6..12].copy_from_slice(&spec.src_mac);
        let ip_hl = if v6 { 40 } else { 20 };
        let l4_off = ETH_LEN + ip_hl;
        let l4_len = ip_len - ip_hl;
        let proto = spec.proto.number();
        let pseudo = match (spec.src, spec.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
                let ip = &mut f[ETH_LEN..l4_off];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
                ip[6] = 0x40; // DF: sizes are chosen to fit the path
                ip[8] = 64;
                ip[9] = proto;
                ip[12..16].copy_from_slice(&s.octets());
                ip[16..20].copy_from_slice(&d.octets());
                let c = checksum::data(ip);
                ip[10..12].copy_from_slice(&(!c).to_be_bytes());
                checksum::pseudo_header_v4(&s, &d, proto, l4_len as u32)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
                let ip = &mut f[ETH_LEN..l4_off];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                ip[6] = proto;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&s.octets());
                ip[24..40].copy_from_slice(&d.octets());
                checksum::pseudo_header_v6(&s, &d, proto, l4_len as u32)
            }
            _ => bail!("--src and --dst must be of one family"),
        };
        let l4 = &mut f[l4_off..];
        l4[2..4].copy_from_slice(&spec.dst_port.to_be_bytes());
        let (csum_rel, hl) = match spec.proto {
            Proto::Udp => {
                l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                (6, 8)
            }
            Proto::Tcp => {
                l4[4..8].copy_from_slice(&1u32.to_be_bytes()); // sequence
                l4[8..12].copy_from_slice(&1u32.to_be_bytes()); // acknowledgement
                l4[12] = 5 << 4;
                l4[13] = 0x18; // PSH, ACK
                l4[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
                (16, 20)
            }
        };
        l4[hl..hl + 4].copy_from_slice(&MAGIC.to_be_bytes());
        for (i, b) in l4[hl + PROBE_LEN..].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(7).wrapping_add(1);
        }
        // `checksum::data` returns the folded sum (not complemented);
        // combining it with the pseudo-header's sum keeps it a sum.
        let base = u32::from(checksum::combine(&[pseudo, checksum::data(l4)]));
        Ok(Template {
            bytes: f,
            l4_off,
            csum_off: l4_off + csum_rel,
            probe_off: l4_off + hl,
            base_sum: base,
            udp: spec.proto == Proto::Udp,
        })
    }

    /// Frame length (Ethernet header + IP packet).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Writes the per-packet fields into `frame`, a copy of `bytes`:
    /// source port, run and flow, sequence number, transmit time and the
    /// transport checksum. `flow` is below [`MAX_FLOWS`].
    #[inline]
    pub fn stamp(&self, frame: &mut [u8], run: u16, flow: u32, seq: u64, tx_ns: u64) {
        let sport = BASE_SPORT.wrapping_add(flow as u16);
        let p = self.probe_off;
        let ids = (u32::from(run) << 16) | (flow & 0xffff);
        frame[self.l4_off..self.l4_off + 2].copy_from_slice(&sport.to_be_bytes());
        frame[p + 4..p + 8].copy_from_slice(&ids.to_be_bytes());
        frame[p + 8..p + 16].copy_from_slice(&seq.to_be_bytes());
        frame[p + 16..p + 24].copy_from_slice(&tx_ns.to_be_bytes());
        let words = |v: u64| (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
        let s = u64::from(self.base_sum)
            + u64::from(sport)
            + words(u64::from(ids))
            + words(seq)
            + words(tx_ns);
        let mut c = !fold(s);
        if c == 0 && self.udp {
            c = 0xffff; // RFC 768: 0 means "no checksum"
        }
        frame[self.csum_off..self.csum_off + 2].copy_from_slice(&c.to_be_bytes());
    }
}

/// A probe read back from a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The generator run that sent it.
    pub run: u16,
    pub flow: u32,
    pub seq: u64,
    pub tx_ns: u64,
}

/// What the receiver made of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Probe(Probe),
    /// ESP (IP protocol 50, or UDP/4500 that is not IKE): counted by SPI.
    Esp {
        spi: u32,
    },
    Other,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

/// Classifies a received Ethernet frame. Untrusted input: any bytes give
/// an answer, never a panic; lengths are taken from the IP header, not the
/// frame (Ethernet pads short frames), and a header claiming more than the
/// frame holds makes the packet `Other`.
pub fn classify(frame: &[u8]) -> Received {
    classify_inner(frame).unwrap_or(Received::Other)
}

fn classify_inner(frame: &[u8]) -> Option<Received> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETH_LEN..)?;
    let (proto, l4) = match ethertype {
        0x0800 => {
            let ver_ihl = *ip.first()?;
            let hl = usize::from(ver_ihl & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            if ver_ihl >> 4 != 4 || hl < 20 || total < hl || total > ip.len() {
                return None;
            }
            // Fragments: only whole packets carry a probe.
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            if frag & 0x3fff != 0 {
                return None;
            }
            (*ip.get(9)?, ip.get(hl..total)?)
        }
        0x86dd => {
            if *ip.first()? >> 4 != 6 {
                return None;
            }
            let plen = usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            (*ip.get(6)?, ip.get(40..40 + plen)?)
        }
        _ => return None,
    };
    let payload = match proto {
        IPPROTO_ESP => return Some(Received::Esp { spi: be32(l4, 0)? }),
        IPPROTO_UDP => {
            let len = usize::from(u16::from_be_bytes([*l4.get(4)?, *l4.get(5)?]));
            let dport = u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]);
            let payload = l4.get(8..len.max(8).min(l4.len()))?;
            if dport == NATT_PORT {
                // RFC 3948: a zero first word is IKE, one 0xff byte a keepalive.
                return match be32(payload, 0) {
                    Some(spi) if spi != 0 && payload.len() >= 8 => Some(Received::Esp { spi }),
                    _ => None,
                };
            }
            payload
        }
        IPPROTO_TCP => {
            let off = usize::from(*l4.get(12)? >> 4) * 4;
            if off < 20 {
                return None;
            }
            l4.get(off..)?
        }
        _ => return None,
    };
    if be32(payload, 0)? != MAGIC {
        return None;
    }
    let ids = be32(payload, 4)?;
    Some(Received::Probe(Probe {
        run: (ids >> 16) as u16,
        flow: ids & 0xffff,
        seq: be64(payload, 8)?,
        tx_ns: be64(payload, 16)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(v6: bool, proto: Proto) -> FlowSpec {
        let (src, dst): (IpAddr, IpAddr) = if v6 {
            ("fd00:a::10".parse().unwrap(), "fd00:b::10".parse().unwrap())
        } else {
            (
                "198.19.1.10".parse().unwrap(),
                "198.19.2.10".parse().unwrap(),
            )
        };
        FlowSpec {
            src,
            dst,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            proto,
            dst_port: 9000,
        }
    }

    /// Recomputes the transport checksum from scratch (with the field as
    /// sent included: the result must be 0 for a correct checksum).
    fn verify(frame: &[u8], v6: bool) -> bool {
        let ip = &frame[ETH_LEN..];
        let (pseudo, l4) = if v6 {
            let s: [u8; 16] = ip[8..24].try_into().unwrap();
            let d: [u8; 16] = ip[24..40].try_into().unwrap();
            let l4 = &ip[40..];
            (
                checksum::pseudo_header_v6(&s.into(), &d.into(), ip[6], l4.len() as u32),
                l4,
            )
        } else {
            let s: [u8; 4] = ip[12..16].try_into().unwrap();
            let d: [u8; 4] = ip[16..20].try_into().unwrap();
            let l4 = &ip[20..];
            (
                checksum::pseudo_header_v4(&s.into(), &d.into(), ip[9], l4.len() as u32),
                l4,
            )
        };
        checksum::combine(&[pseudo, checksum::data(l4)]) == 0xffff
    }

    #[test]
    fn stamped_frames_carry_valid_checksums_and_parse_back() {
        for v6 in [false, true] {
            for proto in [Proto::Udp, Proto::Tcp] {
                let s = spec(v6, proto);
                for len in [
                    min_ip_len(v6, proto),
                    64.max(min_ip_len(v6, proto)),
                    577,
                    1500,
                ] {
                    let t = Template::build(&s, len).unwrap();
                    assert_eq!(t.len(), ETH_LEN + len);
                    for (run, flow, seq, ts) in [
                        (0u16, 0u32, 0u64, 0u64),
                        (u16::MAX, 49_999, u64::MAX, u64::MAX),
                        (0x8001, 7, 0x0123_4567_89ab_cdef, 1_000_000_007),
                    ] {
                        let mut f = t.bytes.clone();
                        t.stamp(&mut f, run, flow, seq, ts);
                        assert!(verify(&f, v6), "v6={v6} {proto:?} len {len} flow {flow}");
                        assert_eq!(
                            classify(&f),
                            Received::Probe(Probe {
                                run,
                                flow,
                                seq,
                                tx_ns: ts
                            })
                        );
                        let sport = u16::from_be_bytes([f[t.l4_off], f[t.l4_off + 1]]);
                        assert_eq!(sport, BASE_SPORT + flow as u16);
                    }
                }
            }
        }
    }

    /// scapy (the independent reader, `bench/tests/scapy_gen_frames.py`)
    /// reads the stamped frames as built and finds every checksum right.
    /// Needs Debian's python3-scapy (deploy/setup.sh installs it) and fails,
    /// rather than skips, without it.
    #[test]
    fn scapy_reads_the_stamped_frames_and_agrees_with_their_checksums() {
        let mut frames = Vec::new();
        let mut want = Vec::new();
        for v6 in [false, true] {
            for proto in [Proto::Udp, Proto::Tcp] {
                let s = spec(v6, proto);
                for len in [min_ip_len(v6, proto), 101, 576, 1400, 1500] {
                    let t = Template::build(&s, len).unwrap();
                    for (run, flow, seq, ts) in [
                        (0u16, 0u32, 0u64, 1u64),
                        (u16::MAX, 49_999, u64::MAX, 0x8000_0000_0000_0001),
                        (0x1234, 12, 0xffff, 0xffff_0000),
                    ] {
                        let mut f = t.bytes.clone();
                        t.stamp(&mut f, run, flow, seq, ts);
                        frames.push(f.iter().map(|b| format!("{b:02x}")).collect::<String>());
                        want.push((v6, proto, len, run, flow, seq, ts, s));
                    }
                }
            }
        }
        let got = crate::scapy::run("scapy_gen_frames.py", &serde_json::json!(frames));
        assert_eq!(got.len(), want.len());
        for (g, (v6, proto, len, run, flow, seq, ts, s)) in got.iter().zip(want) {
            let what = format!("v6={v6} {proto:?} len {len} flow {flow}: {g}");
            assert_eq!(g["family"], if v6 { 6 } else { 4 }, "{what}");
            assert_eq!(g["src"], s.src.to_string(), "{what}");
            assert_eq!(g["dst"], s.dst.to_string(), "{what}");
            assert_eq!(g["ip_len"], len, "{what}");
            assert_eq!(g["len"], len + ETH_LEN, "{what}");
            assert_eq!(g["proto"], proto.name(), "{what}");
            assert_eq!(g["sport"], BASE_SPORT + flow as u16, "{what}");
            assert_eq!(g["dport"], 9000, "{what}");
            assert_eq!(g["l4_checksum_ok"], true, "{what}");
            if !v6 {
                assert_eq!(g["ip_checksum_ok"], true, "{what}");
                assert_eq!(g["df"], true, "{what}");
            }
            if proto == Proto::Udp {
                assert_eq!(g["udp_len"], len - if v6 { 40 } else { 20 }, "{what}");
            }
            assert_eq!(g["magic"], MAGIC, "{what}");
            assert_eq!(g["run"], run, "{what}");
            assert_eq!(g["flow"], flow, "{what}");
            assert_eq!(g["seq"], seq.to_string(), "{what}");
            assert_eq!(g["tx_ns"], ts.to_string(), "{what}");
        }
    }

    #[test]
    fn the_ipv4_header_checksum_is_valid_and_lengths_match() {
        let t = Template::build(&spec(false, Proto::Udp), 100).unwrap();
        let ip = &t.bytes[ETH_LEN..];
        assert_eq!(checksum::data(&ip[..20]), 0xffff);
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]), 100);
        assert_eq!(u16::from_be_bytes([ip[24], ip[25]]), 80);
    }

    #[test]
    fn sizes_too_small_for_the_headers_are_refused_with_the_minimum() {
        assert_eq!(min_ip_len(false, Proto::Udp), 52);
        assert_eq!(min_ip_len(true, Proto::Tcp), 84);
        let e = Size::Fixed(64)
            .pattern(true, Proto::Udp)
            .unwrap_err()
            .to_string();
        assert!(e.contains("give 72 or more"), "{e}");
        assert!(Size::parse("63").is_err());
        assert!(Size::parse("1501").is_err());
        assert_eq!(Size::parse("IMIX").unwrap(), Size::Imix);
        assert_eq!(Size::parse("1500").unwrap(), Size::Fixed(1500));
    }

    #[test]
    fn imix_is_seven_small_four_medium_one_large_interleaved() {
        let p = Size::Imix.pattern(false, Proto::Udp).unwrap();
        let count = |n| p.iter().filter(|&&x| x == n).count();
        assert_eq!((count(64), count(576), count(1400)), (7, 4, 1));
        assert!((mean_len(&p) - 346.0).abs() < 1e-9);
        // No run of more than two equal sizes: the mix is interleaved.
        assert!(p.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])));
        // IPv6/TCP cannot go below 84: the small packets grow to that.
        let p6 = Size::Imix.pattern(true, Proto::Tcp).unwrap();
        assert_eq!(p6.iter().filter(|&&x| x == 84).count(), 7);
    }

    #[test]
    fn the_parser_counts_esp_by_spi_and_ignores_ike_and_foreign_payloads() {
        let mut esp = vec![0u8; ETH_LEN + 20 + 16];
        esp[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        esp[14] = 0x45;
        esp[16..18].copy_from_slice(&36u16.to_be_bytes());
        esp[23] = IPPROTO_ESP;
        esp[34..38].copy_from_slice(&0x1000u32.to_be_bytes());
        assert_eq!(classify(&esp), Received::Esp { spi: 0x1000 });
        // Truncated: the IP length claims more than the frame holds.
        assert_eq!(classify(&esp[..40]), Received::Other);

        let t = Template::build(&spec(false, Proto::Udp), 100).unwrap();
        let mut f = t.bytes.clone();
        t.stamp(&mut f, 0, 1, 2, 3);
        f[t.probe_off] ^= 1; // not our magic
        assert_eq!(classify(&f), Received::Other);
        // UDP/4500 with the non-ESP marker is IKE, not ESP.
        let mut natt = t.bytes.clone();
        natt[t.l4_off + 2..t.l4_off + 4].copy_from_slice(&NATT_PORT.to_be_bytes());
        natt[t.probe_off..t.probe_off + 4].fill(0);
        assert_eq!(classify(&natt), Received::Other);
        natt[t.probe_off + 3] = 9;
        assert_eq!(classify(&natt), Received::Esp { spi: 9 });
    }
}

#[cfg(test)]
pub(crate) use tests::spec as test_spec;

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Untrusted input: any bytes classify without a panic.
        #[test]
        fn any_bytes_classify_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = classify(&bytes);
        }

        /// A frame cut short of what its IP header claims is not a
        /// probe; bytes changed only in the filler change nothing.
        #[test]
        fn truncated_frames_are_refused_and_filler_is_ignored(
            v6 in any::<bool>(),
            len in 72usize..300,
            cut in 0usize..314,
            flips in proptest::collection::vec((0usize..300, any::<u8>()), 0..8),
        ) {
            let t = Template::build(&tests::spec(v6, Proto::Udp), len).unwrap();
            let mut f = t.bytes.clone();
            t.stamp(&mut f, 5, 3, 99, 12345);
            let want = Received::Probe(Probe { run: 5, flow: 3, seq: 99, tx_ns: 12345 });
            if cut < f.len() {
                prop_assert_eq!(classify(&f[..cut]), Received::Other);
            }
            let filler = t.probe_off + PROBE_LEN;
            for (at, v) in flips {
                if let Some(b) = f.get_mut(filler + at) {
                    *b = v;
                }
            }
            prop_assert_eq!(classify(&f), want);
        }
    }
}
