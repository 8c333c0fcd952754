//! Path MTU discovery for the ESP we send (RFC 4301 §6.1.2 and §8.2,
//! RFC 1191, RFC 8201): a router on the way to the peer that cannot pass
//! an ESP packet with DF set (IPv4) or any IPv6 packet answers with
//! "fragmentation needed" / "packet too big", quoting the start of it. The
//! XDP program hands such ICMP about our ESP (or UDP-encapsulated ESP,
//! source port 4500) to us; its SPI names the outbound SA, whose packets
//! are then held to that MTU: a packet that would no longer fit gets
//! "fragmentation needed" / "packet too big" back to its inside sender,
//! or is fragmented before encryption, as for the outside link's MTU.
//!
//! The ICMP error is not authenticated. It is believed only when what it
//! quotes is a packet this SA could have sent: from our tunnel address
//! to the SA's peer, with its SPI and a sequence number already used; its
//! MTU is taken no lower than 576 (IPv4) or 1 280 (IPv6), and never
//! raises what was learned. A forged one can at worst do what the router
//! could, for [`PATH_MTU_AGE_SECS`](crate::sa::PATH_MTU_AGE_SECS).

use std::net::IpAddr;

use crate::counters::DropReason;
use crate::sa::Sadb;
use crate::wire::{icmpv4, icmpv6, ip_proto, ipv4, ipv6, natt};

/// The lowest path MTU believed: RFC 791's datagram every host takes
/// (Linux's `min_pmtu` is 552), and IPv6's minimum link MTU (RFC 8200 §5).
const MIN_PATH_MTU_V4: u16 = 576;
const MIN_PATH_MTU_V6: u16 = 1280;

/// How far behind the SA's last sequence number a quoted packet may be:
/// what a second of traffic at 4 Mpps puts in flight.
const SENT_WINDOW: u32 = 1 << 22;

/// What an ICMP error to the gateway says about our ESP: the SA (by SPI),
/// the tunnel it was quoted on and the MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooBig {
    pub spi: u32,
    /// The quoted packet's low 32 bits of sequence number.
    pub seq: u32,
    pub from: IpAddr,
    pub to: IpAddr,
    /// The quoted packet's own length: what did not fit.
    pub len: u32,
    pub mtu: u16,
}

/// Whether `packet` (an IP packet to one of our addresses) is an ICMP
/// "fragmentation needed" or ICMPv6 "packet too big", its checksum right,
/// about ESP we sent (plain, or in UDP from port 4500), and what it says.
/// `None`: it is not (it may still be PAT's).
pub fn parse(packet: &[u8]) -> Option<TooBig> {
    match packet.first()? >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(packet).ok()?;
            if ip.protocol() != ip_proto::ICMP || ip.more_frags() || ip.frag_offset() != 0 {
                return None;
            }
            let icmp = packet.get(ip.header_len()..usize::from(ip.total_len()))?;
            // Type 3 (destination unreachable), code 4 (fragmentation
            // needed), the next-hop MTU in bytes 6-7 (RFC 1191 §4).
            if icmp.get(..2)? != [3, 4]
                || !icmpv4::Packet::new_checked(icmp).ok()?.verify_checksum()
            {
                return None;
            }
            let mtu = u16::from_be_bytes([*icmp.get(6)?, *icmp.get(7)?]);
            quoted(icmp.get(8..)?, mtu)
        }
        6 => {
            let ip = ipv6::Packet::new_checked(packet).ok()?;
            if ip.next_header() != ip_proto::ICMPV6 {
                return None;
            }
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            let icmp = packet.get(ipv6::HEADER_LEN..end)?;
            // Type 2 (packet too big), code 0, the MTU in bytes 4-7.
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if icmp.get(..2)? != [2, 0]
                || !icmpv6::Packet::new_checked(icmp)
                    .ok()?
                    .verify_checksum(&src, &dst)
            {
                return None;
            }
            let mtu = u32::from_be_bytes(icmp.get(4..8)?.try_into().ok()?);
            quoted(icmp.get(8..)?, u16::try_from(mtu).unwrap_or(u16::MAX))
        }
        _ => None,
    }
}

/// The quoted packet: its addresses, and the SPI and sequence number of
/// the ESP (or ESP in UDP from port 4500) it carried.
fn quoted(q: &[u8], mtu: u16) -> Option<TooBig> {
    let (from, to, proto, upper, len) = match q.first()? >> 4 {
        4 => {
            let ihl = usize::from(q.first()? & 0x0f) * 4;
            if ihl < ipv4::HEADER_LEN {
                return None;
            }
            let addr = |at: usize| -> Option<IpAddr> {
                let b: [u8; 4] = q.get(at..at + 4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            let len = u32::from(u16::from_be_bytes([*q.get(2)?, *q.get(3)?]));
            (addr(12)?, addr(16)?, *q.get(9)?, q.get(ihl..)?, len)
        }
        6 => {
            let addr = |at: usize| -> Option<IpAddr> {
                let b: [u8; 16] = q.get(at..at + 16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            let len = 40 + u32::from(u16::from_be_bytes([*q.get(4)?, *q.get(5)?]));
            (
                addr(8)?,
                addr(24)?,
                *q.get(6)?,
                q.get(ipv6::HEADER_LEN..)?,
                len,
            )
        }
        _ => return None,
    };
    let esp = match proto {
        ip_proto::ESP => upper,
        ip_proto::UDP if upper.get(..2)? == natt::PORT.to_be_bytes() => upper.get(8..)?,
        _ => return None,
    };
    let spi = u32::from_be_bytes(esp.get(..4)?.try_into().ok()?);
    let seq = u32::from_be_bytes(esp.get(4..8)?.try_into().ok()?);
    (spi != 0).then_some(TooBig {
        spi,
        seq,
        from,
        to,
        len,
        mtu,
    })
}

/// Applies `m` to its SA if it is believable; returns the reason it is
/// counted under ([`DropReason::PathMtuLearned`] when applied).
/// `link_mtu`: the MTU of the route to the peer now (an ICMP error can
/// only lower what that allows).
pub fn learn(sadb: &Sadb, m: &TooBig, link_mtu: Option<u16>, now_secs: u64) -> DropReason {
    let Some(sa) = sadb.outbound(m.spi) else {
        return DropReason::PathMtuRefused;
    };
    let tunnel = matches!(sa.mode(), crate::api::EspMode::Tunnel { local, remote }
        if local == m.from && remote == m.to);
    // Sent lately: the quoted number is among the last SENT_WINDOW the
    // SA used (modulo 2^32, for ESN), and the packet was larger than the
    // MTU said (RFC 5927 §4.1's checks of the quoted packet).
    let last = sa.last_seq() as u32;
    let sent = m.seq != 0 && last.wrapping_sub(m.seq) < SENT_WINDOW;
    if !tunnel || !sent || u32::from(m.mtu) >= m.len {
        return DropReason::PathMtuRefused;
    }
    let floor = if m.to.is_ipv6() {
        MIN_PATH_MTU_V6
    } else {
        MIN_PATH_MTU_V4
    };
    // RFC 1191 §5's routers that say 0: not believed (we do not guess
    // plateaus).
    if m.mtu == 0 {
        return DropReason::PathMtuRefused;
    }
    let mtu = m.mtu.max(floor);
    let current = sa.path_mtu(now_secs).or(link_mtu);
    if current.is_some_and(|c| mtu > c) {
        // Nothing it says lowers what we send.
        return DropReason::PathMtuRefused;
    }
    sa.set_path_mtu(mtu, now_secs);
    DropReason::PathMtuLearned
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// An ICMPv6 packet too big from `router` to `to` about `quoted`.
    fn too_big_v6(router: Ipv6Addr, to: Ipv6Addr, mtu: u32, quoted: &[u8]) -> Vec<u8> {
        let mut icmp = vec![2, 0, 0, 0];
        icmp.extend_from_slice(&mtu.to_be_bytes());
        icmp.extend_from_slice(quoted);
        icmpv6::Packet::new_unchecked(&mut icmp[..]).fill_checksum(&router, &to);
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        p.extend_from_slice(&[ip_proto::ICMPV6, 64]);
        p.extend_from_slice(&router.octets());
        p.extend_from_slice(&to.octets());
        p.extend_from_slice(&icmp);
        p
    }

    /// The start of an IPv6 packet from `src` to `dst` of protocol
    /// `proto`, followed by `upper`.
    fn v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, upper: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&1400u16.to_be_bytes());
        p.extend_from_slice(&[proto, 64]);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(upper);
        p
    }

    #[test]
    fn packet_too_big_names_the_esp_it_quotes() {
        let (router, me, peer): (Ipv6Addr, Ipv6Addr, Ipv6Addr) = (
            "fd00:1::fe".parse().unwrap(),
            "fd00:1::1".parse().unwrap(),
            "fd00:2::1".parse().unwrap(),
        );
        let esp = [0, 0, 0x10, 0, 0, 0, 0, 7, 0xaa, 0xbb];
        let p = too_big_v6(router, me, 1300, &v6(me, peer, ip_proto::ESP, &esp));
        assert_eq!(
            parse(&p),
            Some(TooBig {
                spi: 0x1000,
                seq: 7,
                from: me.into(),
                to: peer.into(),
                len: 1440,
                mtu: 1300
            })
        );
        // NAT-T from port 4500: the SPI after the UDP header.
        let mut udp = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
        udp.extend_from_slice(&esp);
        let p = too_big_v6(router, me, 1300, &v6(me, peer, ip_proto::UDP, &udp));
        assert_eq!(parse(&p).map(|m| (m.spi, m.seq)), Some((0x1000, 7)));
        // Not ours to read: UDP from port 500, TCP, a wrong checksum, a
        // quoted packet cut before the SPI, another ICMPv6 type.
        udp[..2].copy_from_slice(&500u16.to_be_bytes());
        for q in [
            v6(me, peer, ip_proto::UDP, &udp),
            v6(me, peer, ip_proto::TCP, &esp),
            v6(me, peer, ip_proto::ESP, &esp[..6]),
        ] {
            assert_eq!(parse(&too_big_v6(router, me, 1300, &q)), None);
        }
        let mut p = too_big_v6(router, me, 1300, &v6(me, peer, ip_proto::ESP, &esp));
        *p.last_mut().unwrap() ^= 1;
        assert_eq!(parse(&p), None, "checksum");
        let mut p = too_big_v6(router, me, 1300, &v6(me, peer, ip_proto::ESP, &esp));
        p[40] = 1;
        assert_eq!(parse(&p), None, "destination unreachable");
    }

    proptest::proptest! {
        /// Whatever the bytes, parsing stops short of a panic.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700)) {
            let _ = parse(&bytes);
        }
    }
}
