//! Outbound ESP processing (RFC 4303 §3.3): build headers and trailer
//! around the packet in place, seal the batch, fix what depends on the
//! ciphertext (the IPv6 UDP checksum), count.

use std::net::IpAddr;
use std::ops::Range;

use super::{ip_version, PacketBuf, OUTER_TTL};
use crate::api::EspMode;
use crate::counters::{DropReason, SaCounters};
use crate::crypto::{CryptoError, EspSuite, SealJob};
use crate::sa::OutboundSa;
use crate::wire::{esp, ip_proto, ipv4, ipv6, udp};

/// How many packets go to the suite in one `seal_batch` call: enough for
/// multi-buffer CBC (8 lanes) several times over, small enough for the stack.
const SEAL_CHUNK: usize = 32;

/// Bytes encapsulation adds in front of the packet and, at most, behind it
/// for this SA. The dataplane reserves this head- and tailroom in frames and
/// uses it for the MTU check.
pub fn encap_overhead(sa: &OutboundSa) -> (usize, usize) {
    let shape = sa.shape();
    let udp = if sa.udp_encap().is_some() {
        udp::HEADER_LEN
    } else {
        0
    };
    let outer = match sa.mode() {
        EspMode::Tunnel {
            local: IpAddr::V4(_),
            ..
        } => ipv4::HEADER_LEN,
        EspMode::Tunnel {
            local: IpAddr::V6(_),
            ..
        } => ipv6::HEADER_LEN,
        EspMode::Transport => 0,
    };
    let front = outer + udp + esp::HEADER_LEN + shape.iv_len();
    let back = shape.block_align() - 1 + 2 + shape.icv_len();
    (front, back)
}

/// Length of the packet encapsulation makes of an inner packet of
/// `inner_len` bytes (exact in tunnel mode; in transport mode the padding
/// may differ by less than one cipher block).
pub fn encapsulated_len(sa: &OutboundSa, inner_len: usize) -> usize {
    let (front, _) = encap_overhead(sa);
    let shape = sa.shape();
    inner_len + front + esp::pad_len_for(inner_len, shape.block_align()) + 2 + shape.icv_len()
}

/// The largest inner packet whose encapsulation fits `mtu`: the MTU to
/// announce in "fragmentation needed" / "packet too big".
pub fn max_inner_len(sa: &OutboundSa, mtu: usize) -> usize {
    let (front, _) = encap_overhead(sa);
    let shape = sa.shape();
    let align = shape.block_align().max(4);
    let room = mtu.saturating_sub(front + shape.icv_len());
    (room / align * align).saturating_sub(2)
}

/// Encapsulates a batch of packets with one SA. Packets whose verdict is
/// already an error are skipped; on success a packet's `start`/`len` cover
/// the outer packet.
pub fn encap_batch(sa: &OutboundSa, pkts: &mut [PacketBuf<'_>]) {
    encap_batch_where(sa, pkts, |_| true);
}

/// Encapsulates the packets of a mixed batch for which `want(index)` is
/// true, leaving the others untouched: the worker's batch holds packets for
/// several SAs and must not be reordered.
pub fn encap_batch_where(
    sa: &OutboundSa,
    pkts: &mut [PacketBuf<'_>],
    want: impl Fn(usize) -> bool,
) {
    for (c, chunk) in pkts.chunks_mut(SEAL_CHUNK).enumerate() {
        let mut ranges: [Range<usize>; SEAL_CHUNK] = std::array::from_fn(|_| 0..0);
        let mut seqs = [0u64; SEAL_CHUNK];
        let mut prepared = [false; SEAL_CHUNK];
        for (i, p) in chunk.iter_mut().enumerate() {
            if p.verdict.is_err() || !want(c * SEAL_CHUNK + i) {
                continue;
            }
            match prepare(sa, p) {
                Ok((range, seq)) => {
                    ranges[i] = range;
                    seqs[i] = seq;
                    prepared[i] = true;
                }
                Err(reason) => {
                    p.verdict = Err(reason);
                    sa.counters().drops.inc(reason);
                }
            }
        }
        // Traffic over many SAs leaves most chunks with nothing for this
        // one: no seal call, no pass over the chunk.
        if !prepared.contains(&true) {
            continue;
        }
        seal_chunk(sa, chunk, &ranges, &seqs, &prepared);
        for (i, p) in chunk.iter_mut().enumerate() {
            if prepared[i] && p.verdict.is_ok() {
                finish(sa, p, ranges[i].len());
            }
        }
    }
}

/// Encapsulates one packet: what [`encap_batch_where`] does for a packet
/// that is its SA's only one in the batch (the usual case when traffic is
/// spread over many SAs), without setting up and scanning the chunk's
/// 32-entry job arrays for a single job.
pub fn encap_single(sa: &OutboundSa, p: &mut PacketBuf<'_>) {
    if p.verdict.is_err() {
        return;
    }
    let (range, seq) = match prepare(sa, p) {
        Ok(prepared) => prepared,
        Err(reason) => {
            p.verdict = Err(reason);
            sa.counters().drops.inc(reason);
            return;
        }
    };
    let esp_len = range.len();
    // `prepare` checked the range against the frame; a miss is refused
    // rather than sent in the clear.
    let result = match p.frame.get_mut(range) {
        Some(esp) => {
            let mut job = [SealJob {
                esp,
                seq,
                result: Ok(()),
            }];
            sa.suite().seal_batch(&mut job);
            job[0].result
        }
        None => Err(CryptoError::BadLength),
    };
    match result {
        Ok(()) => finish(sa, p, esp_len),
        Err(_) => {
            p.verdict = Err(DropReason::BadCipherLength);
            sa.counters().drops.inc(DropReason::BadCipherLength);
        }
    }
}

/// Most packets [`encap_across`] takes: the MAC's lanes (16) hold them
/// all, the CBC lanes (8) twice.
pub const ACROSS: usize = 16;

/// Encapsulates packets of *different* SAs together: `frames[i]` with
/// SA `sa` for each `(i, sa)` of `picked` (indices ascending, at most
/// [`ACROSS`]; every SA's suite of one concrete type, which callers check
/// with `crypto::same_suite_type`). What [`encap_single`] does for each,
/// with one [`EspSuite::seal_across`](crate::crypto::EspSuite::seal_across)
/// call that encrypts and hashes them side by side, a key per lane: a
/// hub's batch has one packet per SA, and one at a time CBC and HMAC-SHA1
/// run at their latency instead of their throughput.
pub fn encap_across(frames: &mut [PacketBuf<'_>], picked: &[(usize, &OutboundSa)]) {
    let picked = &picked[..picked.len().min(ACROSS)];
    debug_assert!(
        picked.windows(2).all(|w| w[0].0 < w[1].0),
        "indices ascending"
    );
    let mut pkts: [Option<&mut PacketBuf<'_>>; ACROSS] = std::array::from_fn(|_| None);
    let mut k = 0;
    for (i, f) in frames.iter_mut().enumerate() {
        if picked.get(k).is_some_and(|(at, _)| *at == i) {
            pkts[k] = Some(f);
            k += 1;
        }
    }
    let mut prepared: [Option<(Range<usize>, u64)>; ACROSS] = std::array::from_fn(|_| None);
    for ((p, (_, sa)), slot) in pkts.iter_mut().zip(picked).zip(prepared.iter_mut()) {
        let Some(p) = p else {
            continue;
        };
        if p.verdict.is_err() {
            continue;
        }
        match prepare(sa, p) {
            Ok(ok) => *slot = Some(ok),
            Err(reason) => {
                p.verdict = Err(reason);
                sa.counters().drops.inc(reason);
            }
        }
    }
    let mut suites: [Option<&dyn EspSuite>; ACROSS] = [None; ACROSS];
    let mut jobs: [SealJob<'_>; ACROSS] = std::array::from_fn(|_| SealJob {
        esp: &mut [],
        seq: 0,
        result: Ok(()),
    });
    let mut index = [0usize; ACROSS];
    let mut n = 0;
    for (i, ((p, (_, sa)), slot)) in pkts.iter_mut().zip(picked).zip(&prepared).enumerate() {
        let (Some(p), Some((range, seq))) = (p, slot) else {
            continue;
        };
        // `prepare` checked the range against the frame; a miss is
        // refused rather than sent in the clear, as in `encap_single`.
        let Some(esp) = p.frame.get_mut(range.clone()) else {
            p.verdict = Err(DropReason::BadCipherLength);
            sa.counters().drops.inc(DropReason::BadCipherLength);
            continue;
        };
        jobs[n] = SealJob {
            esp,
            seq: *seq,
            result: Ok(()),
        };
        suites[n] = Some(sa.suite());
        index[n] = i;
        n += 1;
    }
    let Some(first) = suites[0] else {
        return;
    };
    let suites: [&dyn EspSuite; ACROSS] = std::array::from_fn(|j| suites[j].unwrap_or(first));
    first.seal_across(&suites[..n], &mut jobs[..n]);
    let results: [Result<(), CryptoError>; ACROSS] = std::array::from_fn(|j| jobs[j].result);
    for j in 0..n {
        let i = index[j];
        let (Some(p), (_, sa)) = (&mut pkts[i], &picked[i]) else {
            continue;
        };
        let esp_len = prepared[i].as_ref().map_or(0, |(r, _)| r.len());
        match results[j] {
            Ok(()) => finish(sa, p, esp_len),
            Err(_) => {
                p.verdict = Err(DropReason::BadCipherLength);
                sa.counters().drops.inc(DropReason::BadCipherLength);
            }
        }
    }
}

fn seal_chunk(
    sa: &OutboundSa,
    chunk: &mut [PacketBuf<'_>],
    ranges: &[Range<usize>],
    seqs: &[u64],
    prepared: &[bool],
) {
    let mut jobs: [SealJob<'_>; SEAL_CHUNK] = std::array::from_fn(|_| SealJob {
        esp: &mut [],
        seq: 0,
        result: Ok(()),
    });
    let mut index = [0usize; SEAL_CHUNK];
    let mut n = 0;
    for (i, p) in chunk.iter_mut().enumerate() {
        if !prepared[i] {
            continue;
        }
        // `prepare` checked the range against the frame.
        if let Some(esp) = p.frame.get_mut(ranges[i].clone()) {
            jobs[n] = SealJob {
                esp,
                seq: seqs[i],
                result: Ok(()),
            };
            index[n] = i;
            n += 1;
        }
    }
    sa.suite().seal_batch(&mut jobs[..n]);
    let results: [Result<(), _>; SEAL_CHUNK] = std::array::from_fn(|j| jobs[j].result);
    for j in 0..n {
        if results[j].is_err() {
            chunk[index[j]].verdict = Err(DropReason::BadCipherLength);
            sa.counters().drops.inc(DropReason::BadCipherLength);
        }
    }
}

/// Writes the outer headers, ESP header and trailer; returns the range of
/// the ESP packet in the frame and the sequence number it carries.
fn prepare(sa: &OutboundSa, p: &mut PacketBuf<'_>) -> Result<(Range<usize>, u64), DropReason> {
    let shape = sa.shape();
    let (iv_len, icv_len, align) = (shape.iv_len(), shape.icv_len(), shape.block_align());
    let udp_len = if sa.udp_encap().is_some() {
        udp::HEADER_LEN
    } else {
        0
    };
    let packet = p.data();
    let version = ip_version(packet).ok_or(DropReason::Malformed)?;

    // What is protected (`payload`) and what stays in front of ESP (`kept`).
    let plan = match sa.mode() {
        EspMode::Tunnel { local, remote } => tunnel_plan(packet, version, local, remote)?,
        EspMode::Transport => transport_plan(packet, version)?,
    };
    let payload_start = p.start + plan.kept_len;
    let payload_len = p.len - plan.kept_len;
    let pad_len = esp::pad_len_for(payload_len, align);
    let trailer_start = payload_start + payload_len;
    let end = trailer_start + pad_len + 2 + icv_len;
    let insert = plan.outer_len + udp_len + esp::HEADER_LEN + iv_len;
    let max_len = if plan.outer_v6 {
        usize::from(u16::MAX) + ipv6::HEADER_LEN
    } else {
        usize::from(u16::MAX)
    };
    if p.start < insert || end > p.frame.len() || end - (p.start - insert) > max_len {
        return Err(DropReason::NoRoom);
    }
    let seq = sa.next_seq().ok_or(DropReason::SeqOverflow)?;

    esp::write_padding(
        &mut p.frame[trailer_start..trailer_start + pad_len + 2],
        pad_len,
        plan.next_header,
    );
    let new_start = p.start - insert;
    // Transport mode: slide the kept IP header to the front, payload stays.
    if plan.kept_len > 0 {
        p.frame.copy_within(p.start..payload_start, new_start);
    }
    let ip_end = new_start + plan.outer_len + plan.kept_len;
    let esp_start = ip_end + udp_len;
    let total_len = end - new_start;

    write_ip_header(sa, p.frame, new_start, &plan, total_len, udp_len, seq)?;
    if let Some(encap) = sa.udp_encap() {
        let mut u = udp::Packet::new_unchecked(&mut p.frame[ip_end..end]);
        udp::Repr {
            src_port: encap.src_port,
            dst_port: encap.dst_port,
            payload_len: end - esp_start,
        }
        .emit(&mut u);
        // RFC 3948 §2.1: IPv4 senders SHOULD send a zero checksum; IPv6
        // needs a real one, computed after sealing (`finish`).
        u.set_checksum(0);
    }
    let mut e = esp::Packet::new_unchecked(&mut p.frame[esp_start..end]);
    e.set_spi(sa.spi());
    e.set_seq(seq as u32);

    p.start = new_start;
    p.len = total_len;
    SaCounters::add(&sa.counters().bytes, payload_len as u64);
    Ok((esp_start..end, seq))
}

/// After sealing: the IPv6 UDP checksum covers the ciphertext; then count.
fn finish(sa: &OutboundSa, p: &mut PacketBuf<'_>, esp_len: usize) {
    if sa.udp_encap().is_some() && ip_version(p.data()) == Some(6) {
        let pkt = &mut p.frame[p.start..p.start + p.len];
        let udp_start = p.len - esp_len - udp::HEADER_LEN;
        let (src, dst) = {
            let ip = ipv6::Packet::new_unchecked(&pkt[..]);
            (ip.src_addr(), ip.dst_addr())
        };
        udp::Packet::new_unchecked(&mut pkt[udp_start..]).fill_checksum_v6(&src, &dst);
    }
    let c = sa.counters();
    SaCounters::add(&c.packets, 1);
    c.last_used.store(
        crate::clock::now_secs(),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// How one packet is laid out around ESP.
struct Plan {
    /// Outer header we add (tunnel mode), 0 in transport mode.
    outer_len: usize,
    /// Bytes of the original packet that stay in front of ESP (the IP
    /// header in transport mode), 0 in tunnel mode.
    kept_len: usize,
    /// Next header written in the ESP trailer.
    next_header: u8,
    /// Outer family and the values copied from the inner header.
    outer_v6: bool,
    tos: u8,
    dont_frag: bool,
    /// Transport mode, IPv6: where the Next Header that must become ESP is.
    nh_offset: usize,
}

fn tunnel_plan(
    packet: &[u8],
    version: u8,
    local: IpAddr,
    remote: IpAddr,
) -> Result<Plan, DropReason> {
    // Endpoints of different families are a configuration error the
    // control plane refuses; never encapsulate half-right.
    if local.is_ipv6() != remote.is_ipv6() {
        return Err(DropReason::Malformed);
    }
    let (next_header, tos, dont_frag) = match version {
        4 => {
            let ip = ipv4::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
            (ip_proto::IPV4, ip.dscp_ecn(), ip.dont_frag())
        }
        6 => {
            let ip = ipv6::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
            (ip_proto::IPV6, ip.traffic_class(), true)
        }
        _ => return Err(DropReason::Malformed),
    };
    let outer_v6 = local.is_ipv6();
    Ok(Plan {
        outer_len: if outer_v6 {
            ipv6::HEADER_LEN
        } else {
            ipv4::HEADER_LEN
        },
        kept_len: 0,
        next_header,
        outer_v6,
        tos,
        dont_frag,
        nh_offset: 0,
    })
}

fn transport_plan(packet: &[u8], version: u8) -> Result<Plan, DropReason> {
    match version {
        4 => {
            let ip = ipv4::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
            // ESP is applied before fragmentation (RFC 4303 §3.3.4).
            if ip.is_fragment() {
                return Err(DropReason::Malformed);
            }
            Ok(Plan {
                outer_len: 0,
                kept_len: ip.header_len(),
                next_header: ip.protocol(),
                outer_v6: false,
                tos: ip.dscp_ecn(),
                dont_frag: ip.dont_frag(),
                nh_offset: 0,
            })
        }
        6 => {
            let ip = ipv6::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
            let walk = ip.walk_ext_headers().map_err(|_| DropReason::Malformed)?;
            if walk.fragment.is_some() {
                return Err(DropReason::Malformed);
            }
            let next_header = *packet
                .get(walk.unfragmentable_nh_offset)
                .ok_or(DropReason::Malformed)?;
            Ok(Plan {
                outer_len: 0,
                kept_len: walk.unfragmentable_len,
                next_header,
                outer_v6: true,
                tos: ip.traffic_class(),
                dont_frag: true,
                nh_offset: walk.unfragmentable_nh_offset,
            })
        }
        _ => Err(DropReason::Malformed),
    }
}

/// The outer IPv4 identification of the packet with sequence number `seq`,
/// for reassembly of outer packets fragmented on the path (RFC 6864:
/// unique per source, destination and protocol for datagrams that may be
/// fragmented, which ours are when the inner packet lacks DF). Taken from
/// the sequence number, not a counter bumped as headers are written (a
/// batch's packets get their headers before any is counted), so IDs are
/// distinct within 65 536 packets of an SA. Every SA counts from 1, so
/// each starts from a point of the ID space its SPI picks, the
/// multiplication spreading even neighbouring SPIs far apart: otherwise a
/// new SA toward the same peer (a rekey, a second tunnel) would repeat, in
/// step, the IDs the older one has just used. Two SAs can still meet, as
/// any 16-bit ID must at these rates.
fn outer_ident(spi: u32, seq: u64) -> u16 {
    let start = (spi.wrapping_mul(0x9E37_79B9) >> 16) as u16;
    start.wrapping_add(seq as u16)
}

/// Writes the outer header (tunnel) or rewrites the kept one (transport).
fn write_ip_header(
    sa: &OutboundSa,
    frame: &mut [u8],
    start: usize,
    plan: &Plan,
    total_len: usize,
    udp_len: usize,
    seq: u64,
) -> Result<(), DropReason> {
    let protocol = if udp_len > 0 {
        ip_proto::UDP
    } else {
        ip_proto::ESP
    };
    let buf = &mut frame[start..start + total_len];
    match (sa.mode(), plan.outer_v6) {
        (
            EspMode::Tunnel {
                local: IpAddr::V4(src),
                remote: IpAddr::V4(dst),
            },
            false,
        ) => {
            let repr = ipv4::Repr {
                src_addr: src,
                dst_addr: dst,
                protocol,
                payload_len: total_len - ipv4::HEADER_LEN,
                ttl: OUTER_TTL,
                // RFC 6040 normal mode: copy DSCP and ECN to the outer header.
                dscp_ecn: plan.tos,
                ident: outer_ident(sa.spi(), seq),
                // RFC 4301 §8.1: copy DF from the inner header.
                dont_frag: plan.dont_frag,
            };
            repr.emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
        }
        (
            EspMode::Tunnel {
                local: IpAddr::V6(src),
                remote: IpAddr::V6(dst),
            },
            true,
        ) => {
            let repr = ipv6::Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: protocol,
                payload_len: total_len - ipv6::HEADER_LEN,
                hop_limit: OUTER_TTL,
                traffic_class: plan.tos,
                flow_label: 0,
            };
            repr.emit(&mut ipv6::Packet::new_unchecked(&mut buf[..]));
        }
        (EspMode::Transport, false) => {
            let mut ip = ipv4::Packet::new_unchecked(&mut buf[..]);
            ip.set_protocol(protocol);
            ip.set_total_len(total_len as u16);
            ip.fill_checksum();
        }
        (EspMode::Transport, true) => {
            buf[plan.nh_offset] = protocol;
            let mut ip = ipv6::Packet::new_unchecked(&mut buf[..]);
            ip.set_payload_len((total_len - ipv6::HEADER_LEN) as u16);
        }
        // `tunnel_plan` refused endpoints of mixed families.
        _ => return Err(DropReason::Malformed),
    }
    Ok(())
}
