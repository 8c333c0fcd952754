//! UDP-encapsulated ESP that the control process hands over
//! ([`crate::api::Request::InjectEsp`]). It came in IP fragments: the XDP
//! program cannot tell a later fragment of NAT-T ESP from one of IKE (no
//! port in it), so the kernel reassembled the datagram and delivered it to
//! the control process's NAT-T socket. Here it becomes the frame the
//! outside interface would have delivered had it come whole, and a worker
//! decapsulates it as any other.

use std::net::{IpAddr, SocketAddr};

use crate::api::MAX_INJECTED_ESP_LEN;
use crate::handoff::HANDOFF_FRAME;
use crate::wire::ethernet::{self, EthernetAddress};
use crate::wire::{ip_proto, ipv4, ipv6, udp};

/// TTL or hop limit of the rebuilt header: the reassembled datagram's own
/// is not kept by the socket, and nothing after decapsulation reads it.
const TTL: u8 = 64;

/// The longest frame [`esp_in_udp_frame`] writes.
pub const MAX_FRAME: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + udp::HEADER_LEN + MAX_INJECTED_ESP_LEN;
const _: () = assert!(MAX_FRAME <= HANDOFF_FRAME);

/// Why ESP cannot be handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InjectError {
    #[error("the source and destination are of different IP versions")]
    MixedFamilies,
    #[error("{0} bytes of ESP: at least 8 (SPI and sequence number) and at most 3700")]
    Length(usize),
    #[error("a zero SPI: that is IKE after its non-ESP marker, not ESP")]
    ZeroSpi,
}

/// Writes into `out` (at least [`MAX_FRAME`] bytes) an Ethernet frame
/// carrying `esp` in UDP from `from` to `to`, as it would have arrived on
/// the outside interface, and returns its length. The MAC addresses are
/// zero: nothing after the receive path reads them. The UDP checksum is
/// zero over IPv4 (RFC 3948 §2.1) and computed over IPv6.
pub fn esp_in_udp_frame(
    from: SocketAddr,
    to: SocketAddr,
    esp: &[u8],
    out: &mut [u8],
) -> Result<usize, InjectError> {
    if !(8..=MAX_INJECTED_ESP_LEN).contains(&esp.len()) {
        return Err(InjectError::Length(esp.len()));
    }
    if esp[..4] == [0; 4] {
        return Err(InjectError::ZeroSpi);
    }
    let (ethertype, ip_len) = match (from.ip(), to.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (ethernet::ethertype::IPV4, ipv4::HEADER_LEN),
        (IpAddr::V6(_), IpAddr::V6(_)) => (ethernet::ethertype::IPV6, ipv6::HEADER_LEN),
        _ => return Err(InjectError::MixedFamilies),
    };
    let eth_len = ethernet::HEADER_LEN;
    let udp_at = eth_len + ip_len;
    let total = udp_at + udp::HEADER_LEN + esp.len();
    let out = &mut out[..total];
    ethernet::Repr {
        src_addr: EthernetAddress([0; 6]),
        dst_addr: EthernetAddress([0; 6]),
        ethertype,
        vlan_id: None,
        inner_vlan_id: None,
    }
    .emit(&mut ethernet::Frame::new_unchecked(&mut out[..eth_len]));
    out[udp_at + udp::HEADER_LEN..].copy_from_slice(esp);
    let udp_repr = udp::Repr {
        src_port: from.port(),
        dst_port: to.port(),
        payload_len: esp.len(),
    };
    udp_repr.emit(&mut udp::Packet::new_unchecked(&mut out[udp_at..]));
    match (from.ip(), to.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => ipv4::Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: ip_proto::UDP,
            payload_len: udp_repr.buffer_len(),
            ttl: TTL,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        }
        .emit(&mut ipv4::Packet::new_unchecked(&mut out[eth_len..udp_at])),
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            ipv6::Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: ip_proto::UDP,
                payload_len: udp_repr.buffer_len(),
                hop_limit: TTL,
                traffic_class: 0,
                flow_label: 0,
            }
            .emit(&mut ipv6::Packet::new_unchecked(&mut out[eth_len..udp_at]));
            udp::Packet::new_unchecked(&mut out[udp_at..]).fill_checksum_v6(&src, &dst);
        }
        _ => return Err(InjectError::MixedFamilies),
    }
    Ok(total)
}

/// The worker of `n` that takes the ESP of SA `esp[..4]` from `from`:
/// the same for every packet of the SA. FNV-1a over the peer's address
/// and port and the SPI, its bits mixed (FNV-1a's low bit is only the
/// parity of its input's low bits).
pub fn worker_of(from: SocketAddr, esp: &[u8], n: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    match from.ip() {
        IpAddr::V4(a) => eat(&a.octets()),
        IpAddr::V6(a) => eat(&a.octets()),
    }
    eat(&from.port().to_be_bytes());
    eat(esp.get(..4).unwrap_or(esp));
    // MurmurHash3's fmix64.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    usize::try_from(h % n.max(1) as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::Frame;

    fn frame(from: &str, to: &str, esp: &[u8]) -> Result<Vec<u8>, InjectError> {
        let mut out = vec![0xee; MAX_FRAME];
        let len = esp_in_udp_frame(from.parse().unwrap(), to.parse().unwrap(), esp, &mut out)?;
        out.truncate(len);
        Ok(out)
    }

    fn esp(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_add(1)).collect()
    }

    #[test]
    fn ipv4_esp_comes_out_as_the_outside_would_have_delivered_it() {
        let e = esp(100);
        let f = frame("198.18.0.9:4501", "198.18.1.1:4500", &e).unwrap();
        let eth = Frame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.ethertype(), ethernet::ethertype::IPV4);
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        let repr = ipv4::Repr::parse(&ip).unwrap();
        assert_eq!(repr.src_addr.to_string(), "198.18.0.9");
        assert_eq!(repr.dst_addr.to_string(), "198.18.1.1");
        assert_eq!(repr.protocol, ip_proto::UDP);
        assert!(!ip.is_fragment());
        assert_eq!(usize::from(ip.total_len()), 20 + 8 + e.len());
        let udp = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((udp.src_port(), udp.dst_port()), (4501, 4500));
        assert_eq!(udp.checksum(), 0, "none over IPv4 (RFC 3948)");
        assert_eq!(&udp.into_inner()[8..], &e[..]);
        assert_eq!(f.len(), 14 + 20 + 8 + e.len());
    }

    #[test]
    fn ipv6_esp_gets_a_udp_checksum_that_verifies() {
        let e = esp(MAX_INJECTED_ESP_LEN);
        let f = frame("[fd00:1::9]:4500", "[fd00:2::1]:4500", &e).unwrap();
        assert_eq!(f.len(), MAX_FRAME);
        assert_eq!(
            Frame::new_checked(&f[..]).unwrap().ethertype(),
            ethernet::ethertype::IPV6
        );
        let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
        let repr = ipv6::Repr::parse(&ip).unwrap();
        assert_eq!(repr.next_header, ip_proto::UDP);
        assert_eq!(repr.payload_len, 8 + e.len());
        let udp = udp::Packet::new_checked(&f[14 + 40..]).unwrap();
        assert!(udp.verify_checksum_v6(&repr.src_addr, &repr.dst_addr));
        assert_ne!(udp.checksum(), 0);
        assert_eq!(&f[14 + 40 + 8..], &e[..]);
    }

    #[test]
    fn one_sas_packets_go_to_one_worker_and_sas_spread_over_them() {
        let from: SocketAddr = "198.18.0.254:40001".parse().unwrap();
        let mut seen = [0usize; 4];
        for spi in 1..=400u32 {
            let mut e = esp(64);
            e[..4].copy_from_slice(&spi.to_be_bytes());
            let w = worker_of(from, &e, 4);
            e[8..].fill(0x33);
            assert_eq!(worker_of(from, &e, 4), w, "not by the packet's bytes");
            seen[w] += 1;
        }
        assert!(seen.iter().all(|&k| k > 50), "{seen:?}");
        assert_eq!(worker_of(from, &esp(64), 1), 0);
    }

    #[test]
    fn what_is_not_esp_is_refused() {
        let e = esp(64);
        assert_eq!(
            frame("198.18.0.9:4500", "[fd00::1]:4500", &e),
            Err(InjectError::MixedFamilies)
        );
        assert_eq!(
            frame("198.18.0.9:4500", "198.18.1.1:4500", &e[..7]),
            Err(InjectError::Length(7))
        );
        assert_eq!(
            frame("198.18.0.9:4500", "198.18.1.1:4500", &esp(3701)),
            Err(InjectError::Length(3701))
        );
        let mut ike = e.clone();
        ike[..4].fill(0);
        assert_eq!(
            frame("198.18.0.9:4500", "198.18.1.1:4500", &ike),
            Err(InjectError::ZeroSpi)
        );
    }
}
