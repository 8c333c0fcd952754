//! Inbound ESP processing (RFC 4303 §3.4): find the ESP header (directly
//! in IP or in RFC 3948 UDP), look the SA up by SPI, pre-check replay,
//! verify the ICV, only then update the replay window, decrypt, check the
//! padding and hand back the inner packet. Every refusal is counted, on the
//! SA when one was found, otherwise on the caller's global counters.

use std::net::IpAddr;
use std::ops::Range;

use super::{ip_version, PacketBuf};
use crate::api::EspMode;
use crate::counters::{DropCounters, DropReason, SaCounters};
use crate::crypto::{CryptoError, EspSuite, OpenJob};
use crate::sa::{InboundSa, Sadb};
use crate::wire::natt::{self, NattPayload};
use crate::wire::{ecn, esp, ip_proto, ipv4, ipv6, udp};

/// The UDP port RFC 3948 assigns to UDP-encapsulated ESP.
pub const NATT_PORT: u16 = 4500;

/// What a received packet turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decapped {
    /// Decrypted: `start`/`len` of the [`PacketBuf`] now cover the inner IP
    /// packet (tunnel mode) or the rebuilt IP packet (transport mode).
    Inner { spi: u32, inner_version: u8 },
    /// UDP/4500 with the non-ESP marker: IKE, for the control process.
    Ike,
    /// RFC 3948 NAT-keepalive (one 0xFF byte): nothing to do.
    NattKeepalive,
    /// Not ESP at all (another protocol or port): not ours to judge.
    NotEsp,
}

/// Where ESP starts inside the outer packet and what surrounds it.
struct Located {
    /// Offset of the ESP header from the packet start.
    esp_off: usize,
    /// End of the ESP packet (the IP length, trailing link padding cut).
    esp_end: usize,
    /// The outer source: only the tunnel's peer may report a new port.
    src: IpAddr,
    dst: IpAddr,
    /// Transport mode needs the header that stays: its length, and for
    /// IPv6 the offset of the Next Header byte that pointed at ESP.
    ip_header_len: usize,
    nh_offset: usize,
    /// ESP in UDP (RFC 3948): the sender's source port.
    udp_src: Option<u16>,
    /// The outer header's ECN field, for the inner packet (RFC 6040).
    ecn: u8,
}

/// How many frames [`decap_batch_where`] checks before their SA's suite
/// opens them together: two passes of sixteen hash lanes.
const OPEN_CHUNK: usize = 32;

/// Decapsulates a batch; `out[i]` receives the outcome of `pkts[i]`.
pub fn decap_batch(
    sadb: &Sadb,
    pkts: &mut [PacketBuf<'_>],
    out: &mut [Result<Decapped, DropReason>],
    global: &DropCounters,
) {
    decap_batch_where(sadb, pkts, |_| true, out, global);
}

/// Decapsulates the frames `selected` picks (by index), each SA's packets
/// opened in one [`EspSuite::open_batch`](crate::crypto::EspSuite::open_batch)
/// call, so a suite that verifies ICVs side by side can. `out[i]` receives
/// the outcome of each picked `pkts[i]`; a failed one also gets it as its
/// verdict. Every packet passes the same checks, in the same order, as
/// through [`decap`]: the replay pre-check before the ICV, the window
/// update after it; what is delivered is the same. What differs is that a
/// chunk is checked against the window as it stood before any of its
/// packets moved it, so a packet that an earlier one of the same chunk
/// makes stale is verified (and decrypted, when its ICV passes) before the
/// window update refuses it. Its drop reason may therefore differ: a
/// forged copy of an earlier packet fails its ICV instead of the replay
/// pre-check, and on an ESN SA a late packet whose high sequence half one
/// at a time would be inferred past the wrap fails the update as a replay
/// instead of its ICV.
pub fn decap_batch_where(
    sadb: &Sadb,
    pkts: &mut [PacketBuf<'_>],
    selected: impl Fn(usize) -> bool,
    out: &mut [Result<Decapped, DropReason>],
    global: &DropCounters,
) {
    let n = pkts.len().min(out.len());
    for (base, (chunk, out)) in pkts[..n]
        .chunks_mut(OPEN_CHUNK)
        .zip(out[..n].chunks_mut(OPEN_CHUNK))
        .enumerate()
    {
        let first = base * OPEN_CHUNK;
        decap_chunk(sadb, chunk, |i| selected(first + i), out, global);
    }
}

fn decap_chunk(
    sadb: &Sadb,
    chunk: &mut [PacketBuf<'_>],
    selected: impl Fn(usize) -> bool,
    out: &mut [Result<Decapped, DropReason>],
    global: &DropCounters,
) {
    let mut checked: [Option<Checked<'_>>; OPEN_CHUNK] = std::array::from_fn(|_| None);
    for (i, (p, o)) in chunk.iter_mut().zip(out.iter_mut()).enumerate() {
        if !selected(i) {
            continue;
        }
        *o = match p.verdict {
            Err(reason) => Err(reason),
            Ok(()) => match check(sadb, p, global) {
                Ok(Ok(c)) => {
                    checked[i] = Some(c);
                    continue;
                }
                Ok(Err(other)) => Ok(other),
                Err(reason) => Err(reason),
            },
        };
    }
    let opened = open_per_sa(chunk, &checked);
    for (i, (p, o)) in chunk.iter_mut().zip(out.iter_mut()).enumerate() {
        if let Some(c) = &checked[i] {
            *o = finish(c, p, opened[i]);
        }
        if selected(i) {
            if let Err(reason) = *o {
                p.verdict = Err(reason);
            }
        }
    }
}

/// Opens the checked frames of a chunk, one `open_batch` call per SA;
/// the result of each, by index.
fn open_per_sa(
    chunk: &mut [PacketBuf<'_>],
    checked: &[Option<Checked<'_>>; OPEN_CHUNK],
) -> [Result<(), CryptoError>; OPEN_CHUNK] {
    let mut results = [Err(CryptoError::BadLength); OPEN_CHUNK];
    let mut done = [false; OPEN_CHUNK];
    for first in 0..chunk.len().min(OPEN_CHUNK) {
        let Some(sa) = checked[first]
            .as_ref()
            .filter(|_| !done[first])
            .map(|c| c.sa)
        else {
            continue;
        };
        let mut jobs: [OpenJob<'_>; OPEN_CHUNK] = std::array::from_fn(|_| OpenJob {
            esp: &mut [],
            seq_hi: None,
            result: Ok(()),
        });
        let mut index = [0usize; OPEN_CHUNK];
        let mut n = 0;
        for (i, p) in chunk.iter_mut().enumerate().skip(first) {
            let Some(c) = checked[i].as_ref() else {
                continue;
            };
            if done[i] || !std::ptr::eq(c.sa, sa) {
                continue;
            }
            done[i] = true;
            jobs[n] = OpenJob {
                esp: &mut p.frame[c.esp.clone()],
                seq_hi: c.seq_hi(),
                result: Ok(()),
            };
            index[n] = i;
            n += 1;
        }
        sa.suite().open_batch(&mut jobs[..n]);
        for (job, &i) in jobs[..n].iter().zip(&index) {
            results[i] = job.result;
        }
    }
    results
}

/// Decapsulates packets of *different* SAs together: the frames at
/// `picked` (indices ascending, at most [`ACROSS`](super::ACROSS); their
/// SAs' suites of one concrete type, which callers check). What [`decap`]
/// does for each, with one
/// [`EspSuite::open_across`](crate::crypto::EspSuite::open_across) call
/// that checks their ICVs side by side, a key per lane: a hub's batch has
/// one packet per SA. Returns the outcome of each picked frame, in order.
pub fn decap_across(
    sadb: &Sadb,
    frames: &mut [PacketBuf<'_>],
    picked: &[usize],
    global: &DropCounters,
) -> [Result<Decapped, DropReason>; super::ACROSS] {
    const N: usize = super::ACROSS;
    let picked = &picked[..picked.len().min(N)];
    debug_assert!(picked.windows(2).all(|w| w[0] < w[1]), "indices ascending");
    let mut out = [Err(DropReason::Malformed); N];
    let mut pkts: [Option<&mut PacketBuf<'_>>; N] = std::array::from_fn(|_| None);
    let mut k = 0;
    for (i, f) in frames.iter_mut().enumerate() {
        if picked.get(k) == Some(&i) {
            pkts[k] = Some(f);
            k += 1;
        }
    }
    let mut checked: [Option<Checked<'_>>; N] = std::array::from_fn(|_| None);
    for ((p, c), o) in pkts.iter().zip(checked.iter_mut()).zip(out.iter_mut()) {
        let Some(p) = p else {
            continue;
        };
        match check(sadb, p, global) {
            Ok(Ok(ok)) => *c = Some(ok),
            Ok(Err(other)) => *o = Ok(other),
            Err(reason) => *o = Err(reason),
        }
    }
    let mut suites: [Option<&dyn EspSuite>; N] = [None; N];
    let mut jobs: [OpenJob<'_>; N] = std::array::from_fn(|_| OpenJob {
        esp: &mut [],
        seq_hi: None,
        result: Ok(()),
    });
    let mut index = [0usize; N];
    let mut n = 0;
    for (i, (p, c)) in pkts.iter_mut().zip(&checked).enumerate() {
        let (Some(p), Some(c)) = (p, c) else {
            continue;
        };
        jobs[n] = OpenJob {
            esp: &mut p.frame[c.esp.clone()],
            seq_hi: c.seq_hi(),
            result: Ok(()),
        };
        suites[n] = Some(c.sa.suite());
        index[n] = i;
        n += 1;
    }
    let Some(first) = suites[0] else {
        return out;
    };
    let suites: [&dyn EspSuite; N] = std::array::from_fn(|j| suites[j].unwrap_or(first));
    first.open_across(&suites[..n], &mut jobs[..n]);
    let opened: [Result<(), CryptoError>; N] = std::array::from_fn(|j| jobs[j].result);
    for j in 0..n {
        let i = index[j];
        if let (Some(p), Some(c)) = (&mut pkts[i], &checked[i]) {
            out[i] = finish(c, p, opened[j]);
        }
    }
    out
}

/// Decapsulates one packet, counting any drop.
pub fn decap(
    sadb: &Sadb,
    p: &mut PacketBuf<'_>,
    global: &DropCounters,
) -> Result<Decapped, DropReason> {
    let c = match check(sadb, p, global)? {
        Ok(c) => c,
        Err(other) => return Ok(other),
    };
    let opened = c.sa.suite().open(&mut p.frame[c.esp.clone()], c.seq_hi());
    finish(&c, p, opened)
}

/// A packet that passed every check that comes before its ICV, with what
/// the steps after it need. Small on purpose: it is moved through two
/// `Result`s per packet, and the addresses of [`Located`] are not needed
/// after the checks.
struct Checked<'s> {
    sa: &'s InboundSa,
    /// The ESP packet's place in the frame.
    esp: Range<usize>,
    /// The full sequence number (the high half inferred with ESN).
    seq: u64,
    /// Where the outer header's parts are, for a transport-mode rebuild.
    outer: OuterHeader,
    /// ESP in UDP from the tunnel's own peer address: its source port,
    /// which may move the SA to the port a NAT gave the peer.
    peer_port: Option<u16>,
}

/// The outer IP header as transport mode puts it back in front of the
/// payload.
#[derive(Clone, Copy)]
struct OuterHeader {
    v6: bool,
    len: usize,
    /// IPv6: the offset of the Next Header byte that pointed at ESP.
    nh_offset: usize,
    /// Its ECN field, which tunnel mode passes on to the inner packet.
    ecn: u8,
}

impl Checked<'_> {
    /// The high sequence half the ICV covers, on an ESN SA.
    fn seq_hi(&self) -> Option<u32> {
        self.sa.esn().then_some((self.seq >> 32) as u32)
    }
}

/// Everything before the ICV: where ESP is, its SA, the destination, the
/// replay pre-check and the minimum length. Counts any drop (on the SA
/// once there is one).
#[inline(always)]
fn check<'s>(
    sadb: &'s Sadb,
    p: &PacketBuf<'_>,
    global: &DropCounters,
) -> Result<Result<Checked<'s>, Decapped>, DropReason> {
    let located = match locate(p.data()) {
        Ok(Ok(l)) => l,
        Ok(Err(other)) => return Ok(Err(other)),
        Err(reason) => {
            global.inc(reason);
            return Err(reason);
        }
    };
    if !udp_checksum_ok(p.data(), &located) {
        global.inc(DropReason::BadUdpChecksum);
        return Err(DropReason::BadUdpChecksum);
    }
    let esp_bytes = &p.data()[located.esp_off..located.esp_end];
    let hdr = match esp::Packet::new_checked(esp_bytes) {
        Ok(h) => h,
        Err(_) => {
            global.inc(DropReason::Malformed);
            return Err(DropReason::Malformed);
        }
    };
    let (spi, seq_lo) = (hdr.spi(), hdr.seq());
    let Some(sa) = sadb.inbound(spi) else {
        global.inc(DropReason::NoSa);
        return Err(DropReason::NoSa);
    };
    let checked = check_with_sa(sa, p, located, seq_lo);
    if let Err(reason) = checked {
        sa.counters().drops.inc(reason);
    }
    checked.map(Ok)
}

/// The SPI and sequence number (low 32 bits) of an ESP packet, without
/// checking anything beyond what finding them needs: the pipeline's
/// prefetch passes, before the batch is decapsulated.
pub fn esp_spi_seq(packet: &[u8]) -> Option<(u32, u32)> {
    let l = locate(packet).ok()?.ok()?;
    let hdr = esp::Packet::new_checked(packet.get(l.esp_off..l.esp_end)?).ok()?;
    Some((hdr.spi(), hdr.seq()))
}

/// The inbound SA of an ESP packet and its sequence number (low 32 bits),
/// as [`esp_spi_seq`] finds them.
pub fn inbound_sa_of<'a>(sadb: &'a Sadb, packet: &[u8]) -> Option<(&'a InboundSa, u32)> {
    let (spi, seq) = esp_spi_seq(packet)?;
    sadb.inbound(spi).map(|sa| (&**sa, seq))
}

/// The UDP checksum of ESP in UDP. Over IPv6 it must be right and not
/// zero (RFC 8200 §8.1; RFC 6935 relaxes that only for tunnels that ask
/// for it, which RFC 3948 does not), and it is checked before the SA is
/// looked up: a damaged datagram must not reach the ICV, nor its source
/// port the SA's record of the peer's port. Over IPv4 a receiver may
/// ignore it (RFC 3948 §2.1), as the outer header's own checksum and the
/// ICV cover what matters. Not in [`locate`], which the prefetch pass
/// runs too: the sum is taken once per packet.
fn udp_checksum_ok(packet: &[u8], at: &Located) -> bool {
    let (IpAddr::V6(src), IpAddr::V6(dst)) = (at.src, at.dst) else {
        return true;
    };
    if at.udp_src.is_none() {
        return true;
    }
    packet
        .get(at.ip_header_len..at.esp_end)
        .and_then(|datagram| udp::Packet::new_checked(datagram).ok())
        .is_some_and(|u| u.verify_checksum_v6(&src, &dst))
}

/// Finds the ESP header, or says what else the packet is.
fn locate(packet: &[u8]) -> Result<Result<Located, Decapped>, DropReason> {
    let (ip_len, proto, upper_off, (src, dst), nh_offset, outer_ecn) = match ip_version(packet) {
        Some(4) => {
            let ip = ipv4::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
            if ip.protocol() != ip_proto::ESP && ip.protocol() != ip_proto::UDP {
                return Ok(Err(Decapped::NotEsp));
            }
            // RFC 4303 §3.4.1 has fragments reassembled before ESP,
            // which the pipeline does for ESP to us; one that gets here
            // anyway is counted as what it is.
            if ip.is_fragment() {
                return Err(DropReason::OuterFragment);
            }
            if !ip.verify_checksum() {
                return Err(DropReason::BadIpChecksum);
            }
            let hl = ip.header_len();
            (
                usize::from(ip.total_len()),
                ip.protocol(),
                hl,
                (IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr())),
                0,
                ip.dscp_ecn() & ecn::MASK,
            )
        }
        Some(6) => {
            let ip = ipv6::Packet::new_checked(packet).map_err(|_| DropReason::Malformed)?;
            let walk = ip.walk_ext_headers().map_err(|_| DropReason::Malformed)?;
            if walk.upper_proto != ip_proto::ESP && walk.upper_proto != ip_proto::UDP {
                return Ok(Err(Decapped::NotEsp));
            }
            if walk.fragment.is_some() {
                return Err(DropReason::OuterFragment);
            }
            let len = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            // ESP must follow the unfragmentable part directly for the
            // transport-mode rebuild; anything else is not ours.
            if walk.upper_offset != walk.unfragmentable_len {
                return Err(DropReason::Malformed);
            }
            let (off, nh) = (walk.upper_offset, walk.unfragmentable_nh_offset);
            let addrs = (IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr()));
            let outer_ecn = ip.traffic_class() & ecn::MASK;
            (len, walk.upper_proto, off, addrs, nh, outer_ecn)
        }
        _ => return Err(DropReason::Malformed),
    };
    let packet = packet.get(..ip_len).ok_or(DropReason::Malformed)?;
    let mut udp_src = None;
    let esp_off = match proto {
        ip_proto::ESP => upper_off,
        _ => {
            let u = udp::Packet::new_checked(&packet[upper_off..])
                .map_err(|_| DropReason::Malformed)?;
            if u.dst_port() != NATT_PORT {
                return Ok(Err(Decapped::NotEsp));
            }
            // ESP runs to the end of the IP packet: a UDP length that
            // says otherwise is a damaged or crafted datagram.
            if usize::from(u.len()) != packet.len() - upper_off {
                return Err(DropReason::Malformed);
            }
            udp_src = Some(u.src_port());
            match natt::classify(u.payload()) {
                NattPayload::Esp(_) => upper_off + udp::HEADER_LEN,
                NattPayload::Ike(_) => return Ok(Err(Decapped::Ike)),
                NattPayload::Keepalive => return Ok(Err(Decapped::NattKeepalive)),
                NattPayload::Invalid => return Err(DropReason::Malformed),
            }
        }
    };
    Ok(Ok(Located {
        esp_off,
        esp_end: packet.len(),
        src,
        dst,
        ip_header_len: upper_off,
        nh_offset,
        udp_src,
        ecn: outer_ecn,
    }))
}

#[inline(always)]
fn check_with_sa<'s>(
    sa: &'s InboundSa,
    p: &PacketBuf<'_>,
    at: Located,
    seq_lo: u32,
) -> Result<Checked<'s>, DropReason> {
    if sa.local_addr().is_some_and(|local| local != at.dst) {
        return Err(DropReason::WrongDestination);
    }
    let replay = sa.replay();
    let seq_hi = match (sa.esn(), replay) {
        (true, Some(w)) => w.infer_seq_hi(seq_lo),
        _ => 0,
    };
    let seq = u64::from(seq_hi) << 32 | u64::from(seq_lo);
    if let Some(w) = replay {
        w.check(seq).map_err(|_| DropReason::Replay)?;
    }
    let (iv_len, icv_len) = (sa.shape().iv_len(), sa.shape().icv_len());
    if at.esp_end - at.esp_off < esp::HEADER_LEN + iv_len + icv_len + 2 {
        return Err(DropReason::Malformed);
    }
    let esp = p.start + at.esp_off..p.start + at.esp_end;
    let outer = OuterHeader {
        v6: at.dst.is_ipv6(),
        len: at.ip_header_len,
        nh_offset: at.nh_offset,
        ecn: at.ecn,
    };
    let peer_port = at.udp_src.filter(|_| sa.remote_addr() == Some(at.src));
    Ok(Checked {
        sa,
        esp,
        seq,
        outer,
        peer_port,
    })
}

/// Everything after the suite opened the packet (verified its ICV, then
/// decrypted it): the replay window, the ESP trailer, the inner packet,
/// the counters. Counts any drop on the SA.
#[inline(always)]
fn finish(
    c: &Checked<'_>,
    p: &mut PacketBuf<'_>,
    opened: Result<(), CryptoError>,
) -> Result<Decapped, DropReason> {
    let result = finish_opened(c, p, opened);
    if let Err(reason) = result {
        c.sa.counters().drops.inc(reason);
    }
    result
}

#[inline(always)]
fn finish_opened(
    checked: &Checked<'_>,
    p: &mut PacketBuf<'_>,
    opened: Result<(), CryptoError>,
) -> Result<Decapped, DropReason> {
    let (sa, seq) = (checked.sa, checked.seq);
    opened.map_err(|e| match e {
        CryptoError::IntegrityFailed => DropReason::IntegrityFailed,
        _ => DropReason::BadCipherLength,
    })?;
    // RFC 4303 §3.4.3: the window moves only for authenticated packets.
    let replay = sa.replay();
    if let Some(w) = replay {
        w.check_and_update(seq).map_err(|_| DropReason::Replay)?;
    }
    let c = sa.counters();
    SaCounters::add(&c.verified, 1);

    let (iv_len, icv_len) = (sa.shape().iv_len(), sa.shape().icv_len());
    let pt_start = checked.esp.start + esp::HEADER_LEN + iv_len;
    let pt_end = checked.esp.end - icv_len;
    let (payload_len, trailer) =
        esp::parse_trailer(&p.frame[pt_start..pt_end]).map_err(|e| match e {
            crate::wire::Error::BadPadding => DropReason::BadPadding,
            _ => DropReason::Malformed,
        })?;
    if trailer.next_header == ip_proto::NO_NEXT_HEADER {
        return Err(DropReason::DummyPacket);
    }
    let inner_version = match sa.mode() {
        EspMode::Tunnel { .. } => {
            let inner = &mut p.frame[pt_start..pt_start + payload_len];
            let (version, len) = inner_packet(inner, trailer.next_header)?;
            let inner = inner.get_mut(..len).ok_or(DropReason::Malformed)?;
            decapsulate_ecn(inner, checked.outer.ecn)?;
            p.start = pt_start;
            p.len = len;
            version
        }
        EspMode::Transport => {
            rebuild_transport(p, checked.outer, pt_start, payload_len, trailer.next_header)
        }
    };
    if sa
        .inner_policy()
        .is_some_and(|policy| !policy.admits_packet(p.data()))
    {
        return Err(DropReason::InvalidIdentity);
    }
    SaCounters::add(&c.packets, 1);
    SaCounters::add(&c.bytes, payload_len as u64);
    // Only from the tunnel's own peer address, and only where the replay
    // window proves the packet fresh (RFC 7296 §2.23).
    if let (Some(port), Some(_)) = (checked.peer_port, replay) {
        sa.note_peer_port(port, seq);
    }
    c.last_used.store(
        crate::clock::now_secs(),
        std::sync::atomic::Ordering::Relaxed,
    );
    Ok(Decapped::Inner {
        spi: sa.spi(),
        inner_version,
    })
}

/// Validates the inner packet of tunnel mode; returns its version and its
/// own length (TFC padding, RFC 4303 §2.4, may follow it). An IPv4 header
/// must sum right: the ICV proves only that the peer sent it so, and a
/// router checks what it forwards (RFC 1812 §5.2.2), where the TTL
/// decrement's incremental update would keep a wrong sum wrong.
fn inner_packet(inner: &[u8], next_header: u8) -> Result<(u8, usize), DropReason> {
    match (next_header, ip_version(inner)) {
        (ip_proto::IPV4, Some(4)) => {
            let ip = ipv4::Packet::new_checked(inner).map_err(|_| DropReason::Malformed)?;
            if !ip.verify_checksum() {
                return Err(DropReason::BadIpChecksum);
            }
            Ok((4, usize::from(ip.total_len())))
        }
        (ip_proto::IPV6, Some(6)) => {
            let ip = ipv6::Packet::new_checked(inner).map_err(|_| DropReason::Malformed)?;
            Ok((6, ipv6::HEADER_LEN + usize::from(ip.payload_len())))
        }
        (ip_proto::IPV4 | ip_proto::IPV6, _) => Err(DropReason::Malformed),
        _ => Err(DropReason::BadNextHeader),
    }
}

/// Decapsulation of the ECN field (RFC 6040 §4.2, which updates RFC 4301
/// §5.1.2.1): congestion the outer header met on the path is passed on to
/// the inner packet. Outer CE makes an ECN-capable inner packet CE and
/// drops one that is not ECN-capable (it could not carry the mark); an
/// outer ECT(1) over an inner ECT(0) becomes ECT(1); anything else leaves
/// the inner packet as it is. `inner` is the checked inner packet.
fn decapsulate_ecn(inner: &mut [u8], outer: u8) -> Result<(), DropReason> {
    let v6 = ip_version(inner) == Some(6);
    let inner_ecn = if v6 {
        ipv6::Packet::new_unchecked(&*inner).traffic_class() & ecn::MASK
    } else {
        ipv4::Packet::new_unchecked(&*inner).dscp_ecn() & ecn::MASK
    };
    let to = match (outer, inner_ecn) {
        (ecn::CE, ecn::NOT_ECT) => return Err(DropReason::EcnCeNotEct),
        (ecn::CE, ecn::ECT0 | ecn::ECT1) => ecn::CE,
        (ecn::ECT1, ecn::ECT0) => ecn::ECT1,
        _ => return Ok(()),
    };
    if v6 {
        let mut ip = ipv6::Packet::new_unchecked(inner);
        let tc = ip.traffic_class();
        ip.set_traffic_class((tc & !ecn::MASK) | to);
    } else {
        ipv4::Packet::new_unchecked(inner).set_ecn_incremental(to);
    }
    Ok(())
}

/// Transport mode: the original IP header moves back to sit in front of
/// the decrypted payload, with its protocol and length restored.
fn rebuild_transport(
    p: &mut PacketBuf<'_>,
    outer: OuterHeader,
    pt_start: usize,
    payload_len: usize,
    next_header: u8,
) -> u8 {
    let hl = outer.len;
    let new_start = pt_start - hl;
    p.frame.copy_within(p.start..p.start + hl, new_start);
    let total = hl + payload_len;
    let buf = &mut p.frame[new_start..new_start + total];
    let version = if outer.v6 {
        buf[outer.nh_offset] = next_header;
        let mut ip = ipv6::Packet::new_unchecked(&mut buf[..]);
        ip.set_payload_len((total - ipv6::HEADER_LEN) as u16);
        6
    } else {
        let mut ip = ipv4::Packet::new_unchecked(&mut buf[..]);
        ip.set_protocol(next_header);
        ip.set_total_len(total as u16);
        ip.fill_checksum();
        4
    };
    p.start = new_start;
    p.len = total;
    version
}
