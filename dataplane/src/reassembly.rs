//! Reassembly of ESP that arrives as IP fragments (RFC 4303 §3.4.1: "if
//! required, reassembly is performed prior to IPsec processing").
//!
//! A peer, or a router on the path, fragments ESP that is larger than a
//! link: an IOS peer with `crypto ipsec fragmentation after-encryption`,
//! a Linux one whose tunnel MTU is above the path's, any router on an IPv4
//! path without DF. The XDP program sends fragments of ESP (IP protocol
//! 50, IPv4 and IPv6) to the worker that receives the datagram's other
//! fragments: where a fragment goes depends only on its addresses and
//! protocol, which every fragment of a datagram carries (RSS hashes
//! fragments on their addresses). ESP in UDP that arrives fragmented is
//! the kernel's: its later fragments carry no port to tell it from IKE.
//!
//! Each worker keeps [`SLOTS`] datagrams under reassembly, each in a
//! buffer of its own allocated with the first fragment the worker ever
//! sees (so a gateway whose peers never fragment pays nothing). A fragment
//! is copied into its datagram's buffer and its frame is free again; the
//! fragment that completes the datagram receives the whole of it, in
//! place, and goes on through the pipeline as any ESP packet. What can go
//! wrong is bounded and counted:
//! - a datagram not complete after [`TIMEOUT_SECS`], or whose slot a new
//!   datagram needed while all were taken (the oldest goes), is given up
//!   (`esp-reassembly-timeout`);
//! - fragments that overlap (RFC 5722 for IPv6; a sign of an attack on
//!   IPv4 too), lengths that contradict each other, more than
//!   [`MAX_PIECES`] fragments or a datagram larger than [`MAX_DATA`] or
//!   than the frame end the datagram (`esp-reassembly-failed`, counted
//!   for the fragment that failed it and each one of it that comes
//!   later, until its time is up). An exact duplicate of a fragment
//!   already held is absorbed.
//!
//! A fragment that cannot be part of any datagram (empty, beyond
//! [`MAX_DATA`], or not the last and not a multiple of 8 bytes) is
//! dropped before it may take a slot, so junk cannot push datagrams out
//! for free; an IPv6 atomic fragment (RFC 6946) takes none either, its
//! Fragment header only taken out. IPv6 is taken with the Fragment header
//! right after the per-hop headers and ESP right after it.

use std::net::IpAddr;

use crate::counters::{DropCounters, DropReason};
use crate::wire::{ip_proto, ipv4, ipv6};

/// Datagrams under reassembly per worker.
pub const SLOTS: usize = 32;
/// Seconds a datagram may take to arrive whole (IOS's virtual reassembly
/// waits 3 s).
pub const TIMEOUT_SECS: u64 = 3;
/// Fragments per datagram: an ESP packet of a 1500-byte inner packet
/// fragmented onto 576-byte links is 3.
pub const MAX_PIECES: usize = 16;
/// Bytes after the fragment headers: a UMEM frame holds at most ~3.8 KB
/// of packet anyway.
pub const MAX_DATA: usize = 4096;
/// The first fragment's header: IPv4's with options (60 bytes), IPv6's
/// with a Hop-by-Hop or Routing header.
const MAX_HEADER: usize = 128;

/// What identifies a datagram's fragments (RFC 791, RFC 8200 §4.5); the
/// protocol is always ESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    ident: u32,
}

/// One fragment, as read from its packet.
#[derive(Debug, Clone, Copy)]
struct Piece {
    key: Key,
    /// Where its data goes in the datagram's data, and how much.
    offset: usize,
    len: usize,
    /// Where its data starts in the packet.
    data_at: usize,
    more: bool,
    /// The bytes before the fragmentable part: the IPv4 header, or the
    /// IPv6 header and its per-hop extension headers.
    header_len: usize,
    /// IPv6: where the Next Header that names the Fragment header is, and
    /// what the Fragment header says comes after it (what that Next
    /// Header names once the datagram is whole).
    v6_nh: Option<(usize, u8)>,
}

impl Piece {
    /// Whether the fragment can be part of a datagram at all: checked
    /// before it may take a slot (and push out another datagram).
    fn plausible(&self) -> bool {
        let end = self.offset + self.len;
        // All but the last fragment carry a multiple of 8 bytes (RFC 791,
        // RFC 8200 §4.5).
        end <= MAX_DATA && self.len > 0 && (!self.more || self.len.is_multiple_of(8))
    }

    /// An IPv6 "atomic fragment" (RFC 6946): offset 0, no more to come.
    fn atomic(&self) -> bool {
        self.offset == 0 && !self.more
    }
}

/// Whether `packet` is a fragment of ESP, and if so the fragment;
/// `Err` for one that cannot be part of a valid datagram.
fn piece_of(packet: &[u8]) -> Option<Result<Piece, DropReason>> {
    match packet.first()? >> 4 {
        4 => {
            // The common case, not a fragment of ESP, decided on three
            // bytes: the protocol, and MF or an offset.
            let flags_offset = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]);
            if *packet.get(9)? != ip_proto::ESP || flags_offset & 0x3fff == 0 {
                return None;
            }
            let ip = ipv4::Packet::new_checked(packet).ok()?;
            if !ip.verify_checksum() {
                return Some(Err(DropReason::BadIpChecksum));
            }
            let hl = ip.header_len();
            let total = usize::from(ip.total_len());
            Some(Ok(Piece {
                key: Key {
                    src: IpAddr::V4(ip.src_addr()),
                    dst: IpAddr::V4(ip.dst_addr()),
                    ident: u32::from(ip.ident()),
                },
                offset: usize::from(ip.frag_offset()),
                len: total.saturating_sub(hl),
                data_at: hl,
                more: ip.more_frags(),
                header_len: hl,
                v6_nh: None,
            }))
        }
        6 => {
            // The common case, not a fragment, decided on one byte.
            let first_nh = *packet.get(6)?;
            if !matches!(
                first_nh,
                ip_proto::HOP_BY_HOP | ip_proto::ROUTING | ip_proto::FRAGMENT
            ) {
                return None;
            }
            let ip = ipv6::Packet::new_checked(packet).ok()?;
            let walk = ip.walk_ext_headers().ok()?;
            let frag = walk.fragment?;
            // The Fragment header must follow the per-hop part directly
            // (RFC 8200 §4.5); anything else is left to decapsulation,
            // which counts it as `esp-fragment`.
            let header_len = walk.unfragmentable_len;
            if packet.get(walk.unfragmentable_nh_offset) != Some(&ip_proto::FRAGMENT) {
                return None;
            }
            // ESP right after the Fragment header, in every fragment (a
            // later one's walk stops at its Fragment header): a
            // Destination Options header between them is not taken.
            if packet.get(header_len) != Some(&ip_proto::ESP) {
                return None;
            }
            let data_at = header_len + 8;
            let end = ipv6::HEADER_LEN + usize::from(ip.payload_len());
            Some(Ok(Piece {
                key: Key {
                    src: IpAddr::V6(ip.src_addr()),
                    dst: IpAddr::V6(ip.dst_addr()),
                    ident: frag.ident,
                },
                offset: usize::from(frag.offset),
                len: end.saturating_sub(data_at),
                data_at,
                more: frag.more,
                header_len,
                v6_nh: Some((walk.unfragmentable_nh_offset, *packet.get(header_len)?)),
            }))
        }
        _ => None,
    }
}

/// A datagram under reassembly.
struct Slot {
    key: Option<Key>,
    started: u64,
    header: [u8; MAX_HEADER],
    /// 0 until the first fragment came.
    header_len: usize,
    v6_nh: Option<(usize, u8)>,
    /// The datagram failed: its later fragments are dropped as it was,
    /// until the slot is needed or its time is up.
    failed: bool,
    /// The data's length, once the last fragment came.
    total: Option<usize>,
    /// `[start, end)` of the data held, in arrival order.
    pieces: [(u16, u16); MAX_PIECES],
    count: usize,
    data: Box<[u8; MAX_DATA]>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            key: None,
            started: 0,
            header: [0; MAX_HEADER],
            header_len: 0,
            v6_nh: None,
            failed: false,
            total: None,
            pieces: [(0, 0); MAX_PIECES],
            count: 0,
            data: Box::new([0; MAX_DATA]),
        }
    }

    fn start(&mut self, key: Key, now: u64) {
        self.key = Some(key);
        self.started = now;
        self.header_len = 0;
        self.v6_nh = None;
        self.failed = false;
        self.total = None;
        self.count = 0;
    }

    fn held(&self) -> usize {
        self.pieces[..self.count]
            .iter()
            .map(|(s, e)| usize::from(e - s))
            .sum()
    }
}

/// What became of a fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fed {
    /// Not a fragment of ESP: the pipeline takes it as it is.
    NotFragment,
    /// Held (or an exact duplicate of a fragment held): the frame is free.
    Queued,
    /// The datagram is whole: it now fills the frame from the fragment's
    /// IP header on, this many bytes long.
    Complete(usize),
    /// The fragment, or its whole datagram, is dropped (counted).
    Dropped(DropReason),
}

/// One worker's datagrams under reassembly.
#[derive(Default)]
pub struct Reassembly {
    /// Empty until the first fragment.
    slots: Vec<Slot>,
}

impl std::fmt::Debug for Reassembly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let busy = self.slots.iter().filter(|s| s.key.is_some()).count();
        write!(
            f,
            "Reassembly {{ {busy} of {} slots busy }}",
            self.slots.len()
        )
    }
}

impl Reassembly {
    /// Takes the IP packet at `frame[at..at + len]` if it is a fragment of
    /// ESP to one of `local`. A datagram given up to make room or for its
    /// age is counted in `drops`; the fragment's own fate is returned (and
    /// counted by the caller).
    pub fn feed(
        &mut self,
        frame: &mut [u8],
        at: usize,
        len: usize,
        local: &[IpAddr],
        now: u64,
        drops: &DropCounters,
    ) -> Fed {
        let Some(packet) = at.checked_add(len).and_then(|end| frame.get(at..end)) else {
            return Fed::NotFragment;
        };
        let piece = match piece_of(packet) {
            None => return Fed::NotFragment,
            Some(Err(reason)) => return Fed::Dropped(reason),
            Some(Ok(p)) if !local.contains(&p.key.dst) => return Fed::NotFragment,
            Some(Ok(p)) => p,
        };
        if !piece.plausible() {
            // It takes no slot; a datagram under way that it claims to
            // belong to fails with it.
            if let Some(slot) = self.slots.iter_mut().find(|s| s.key == Some(piece.key)) {
                slot.failed = true;
            }
            return Fed::Dropped(DropReason::ReassemblyFailed);
        }
        if piece.atomic() {
            // Whole already: the Fragment header is only taken out.
            return match unwrap_atomic(&piece, frame, at) {
                Some(n) => Fed::Complete(n),
                None => Fed::Dropped(DropReason::Malformed),
            };
        }
        if self.slots.is_empty() {
            // Once per worker, with its first fragment.
            self.slots = (0..SLOTS).map(|_| Slot::new()).collect();
        }
        let i = self.slot_for(piece.key, now, drops);
        let slot = &mut self.slots[i];
        if slot.failed {
            return Fed::Dropped(DropReason::ReassemblyFailed);
        }
        match add(slot, &piece, packet) {
            Ok(false) => Fed::Queued,
            Ok(true) => {
                let whole = write_whole(slot, frame, at);
                slot.key = None;
                match whole {
                    Some(n) => Fed::Complete(n),
                    None => Fed::Dropped(DropReason::ReassemblyFailed),
                }
            }
            Err(reason) => {
                if reason == DropReason::ReassemblyFailed {
                    slot.failed = true;
                }
                Fed::Dropped(reason)
            }
        }
    }

    /// The slot of datagram `key`: its own, or a free one, or the oldest
    /// one's, whose datagram is given up. Datagrams past their time are
    /// given up first (counted then: a worker looks when a fragment
    /// comes).
    fn slot_for(&mut self, key: Key, now: u64, drops: &DropCounters) -> usize {
        for s in &mut self.slots {
            if s.key.is_some() && now.saturating_sub(s.started) > TIMEOUT_SECS {
                if !s.failed {
                    drops.inc(DropReason::ReassemblyTimeout);
                }
                s.key = None;
            }
        }
        if let Some(i) = self.slots.iter().position(|s| s.key == Some(key)) {
            return i;
        }
        let i = self
            .slots
            .iter()
            .position(|s| s.key.is_none())
            .or_else(|| self.slots.iter().position(|s| s.failed))
            .unwrap_or_else(|| {
                (0..self.slots.len())
                    .min_by_key(|&i| self.slots[i].started)
                    .unwrap_or(0)
            });
        if self.slots[i].key.is_some() && !self.slots[i].failed {
            drops.inc(DropReason::ReassemblyTimeout);
        }
        self.slots[i].start(key, now);
        i
    }
}

/// Adds `p` (of `packet`) to `slot`: whether the datagram is now whole.
/// `Err(ReassemblyFailed)` ends the datagram.
fn add(slot: &mut Slot, p: &Piece, packet: &[u8]) -> Result<bool, DropReason> {
    let failed = Err(DropReason::ReassemblyFailed);
    let end = p.offset + p.len;
    let (start, stop) = (p.offset as u16, end as u16);
    for &(s, e) in &slot.pieces[..slot.count] {
        if (s, e) == (start, stop) {
            // An exact duplicate adds nothing (nor does its MF say
            // anything new).
            return Ok(false);
        }
        if start < e && s < stop {
            return failed;
        }
    }
    match slot.total {
        Some(total) if end > total || (!p.more && end != total) => return failed,
        None if !p.more
            && slot.pieces[..slot.count]
                .iter()
                .any(|&(_, e)| usize::from(e) > end) =>
        {
            return failed
        }
        _ => {}
    }
    if slot.count == MAX_PIECES {
        return failed;
    }
    let data = packet
        .get(p.data_at..p.data_at + p.len)
        .ok_or(DropReason::Malformed)?;
    let header = packet.get(..p.header_len).ok_or(DropReason::Malformed)?;
    if p.offset == 0 {
        if header.len() > MAX_HEADER {
            return failed;
        }
        slot.header[..header.len()].copy_from_slice(header);
        slot.header_len = header.len();
        slot.v6_nh = p.v6_nh;
    }
    if !p.more {
        slot.total = Some(end);
    }
    slot.data[p.offset..end].copy_from_slice(data);
    slot.pieces[slot.count] = (start, stop);
    slot.count += 1;
    Ok(slot.header_len > 0 && slot.total == Some(slot.held()))
}

/// An atomic fragment (RFC 6946) made the packet it is: its Fragment
/// header taken out, in place; its length.
fn unwrap_atomic(p: &Piece, frame: &mut [u8], at: usize) -> Option<usize> {
    let (nh_at, nh) = p.v6_nh?;
    let packet = frame.get_mut(at..at.checked_add(p.data_at + p.len)?)?;
    packet.copy_within(p.data_at..p.data_at + p.len, p.header_len);
    let len = p.header_len + p.len;
    *packet.get_mut(nh_at)? = nh;
    let mut ip = ipv6::Packet::new_unchecked(&mut packet[..]);
    ip.set_payload_len(u16::try_from(len - ipv6::HEADER_LEN).ok()?);
    Some(len)
}

/// Writes `slot`'s whole datagram into `frame` from `at`, its header made
/// that of an unfragmented packet; its length, or `None` if the frame is
/// too small.
fn write_whole(slot: &Slot, frame: &mut [u8], at: usize) -> Option<usize> {
    let (hl, total) = (slot.header_len, slot.total?);
    let len = hl + total;
    let out = frame.get_mut(at..at.checked_add(len)?)?;
    out[..hl].copy_from_slice(&slot.header[..hl]);
    out[hl..].copy_from_slice(&slot.data[..total]);
    match slot.v6_nh {
        None => {
            let mut ip = ipv4::Packet::new_unchecked(&mut out[..]);
            ip.set_total_len(u16::try_from(len).ok()?);
            ip.set_more_frags(false);
            ip.set_frag_offset(0);
            ip.fill_checksum();
        }
        Some((nh_at, nh)) => {
            *out.get_mut(nh_at)? = nh;
            let mut ip = ipv6::Packet::new_unchecked(&mut out[..]);
            ip.set_payload_len(u16::try_from(len - ipv6::HEADER_LEN).ok()?);
        }
    }
    Some(len)
}

#[cfg(test)]
mod tests;
