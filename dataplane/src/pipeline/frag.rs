//! IPv4 fragmentation (RFC 791 §2.3 and §3.2, RFC 1812 §5.2.6) for the two
//! places a gateway must split a packet:
//!
//! - **Before encryption.** An inner IPv4 packet without DF whose ESP
//!   encapsulation would exceed the outside MTU is split into inner
//!   fragments, each encapsulated on its own, so every ESP packet fits and
//!   no outer fragment is ever sent. The peer gateway decrypts whole ESP
//!   packets and forwards the inner fragments; only the destination host
//!   reassembles. This is IOS's default `crypto ipsec fragmentation
//!   before-encryption` and the "fragmentation of the inner packet" of
//!   RFC 4459; RFC 4301 §7 lets a tunnel-mode SA carry fragments, and the
//!   SA is the one the whole packet matched, so the SPD is not consulted
//!   per fragment. Transport mode protects whole datagrams only (RFC 4303
//!   §3.3.4), so the pipeline fragments for tunnel-mode SAs only.
//! - **Forwarding in the clear** (SPD bypass, decapsulated traffic) onto a
//!   link whose MTU the packet exceeds.
//!
//! With DF set the packet is not split: the pipeline answers with ICMP
//! "fragmentation needed" instead. IPv6 is never fragmented here: only the
//! source fragments IPv6 (RFC 8200 §4.5, §5), so a router answers a
//! too-big IPv6 packet with ICMPv6 Packet Too Big (RFC 4443 §3.2), which
//! the pipeline already does for both paths.
//!
//! Everything here is pure: it reads one packet and writes fragments into
//! buffers the caller provides (in the dataplane, fresh UMEM frames), with
//! no allocation and no panic on any input.

use crate::counters::DropReason;
use crate::esp::max_inner_len;
use crate::sa::OutboundSa;
use crate::wire::ipv4;

/// Most fragments one packet may become in the pipeline; a packet needing
/// more (a tiny MTU) is dropped as too big. A 4 KiB frame split for a
/// 576-byte link needs 8; the bound keeps the worker's per-packet arrays
/// on the stack.
pub const MAX_FRAGMENTS: usize = 64;

/// Largest IPv4 header: IHL is 4 bits of 32-bit words.
const MAX_HEADER_LEN: usize = 60;
/// Largest IPv4 datagram: Total Length is 16 bits.
const MAX_DATAGRAM: usize = 65535;
/// Fragment data is counted in 8-byte units (the Fragment Offset field).
const UNIT: usize = 8;
/// Option type bit saying the option goes into every fragment (RFC 791
/// §3.1, "copied flag").
const OPT_COPIED: u8 = 0x80;
/// End of Option List: what follows is padding.
const OPT_EOL: u8 = 0;
/// No Operation: a one-byte filler, not copied.
const OPT_NOP: u8 = 1;

/// Why a packet was not fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FragError {
    /// Don't Fragment is set: the sender must get "fragmentation needed".
    #[error("packet too big and Don't Fragment set")]
    DontFragment,
    /// The header every fragment carries leaves no room for 8 bytes of data
    /// within the MTU.
    #[error("header too large for the MTU")]
    HeaderTooLarge,
    /// More fragments needed than output buffers were given.
    #[error("{needed} fragments needed, fewer buffers given")]
    TooManyFragments { needed: usize },
    /// An output buffer is shorter than its fragment.
    #[error("output buffer too small for its fragment")]
    BufferTooSmall,
    /// The header checksum is wrong: splitting would give a damaged header
    /// fresh, valid checksums.
    #[error("bad IPv4 header checksum")]
    BadChecksum,
    /// Not a consistent IPv4 packet (lengths, options, offsets).
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

impl FragError {
    /// The counter a packet refused for this reason is dropped under.
    pub fn drop_reason(self) -> DropReason {
        match self {
            FragError::DontFragment
            | FragError::HeaderTooLarge
            | FragError::TooManyFragments { .. } => DropReason::TooBig,
            FragError::BufferTooSmall => DropReason::NoRoom,
            FragError::BadChecksum => DropReason::BadIpChecksum,
            FragError::Malformed(_) => DropReason::Malformed,
        }
    }
}

/// How one packet splits for one MTU: how many fragments, which bytes go
/// into each and the header of the fragments after the first. Holds no
/// reference to the packet, so the caller can write fragments 1.. out of
/// the packet and then cut the packet itself down to fragment 0 in place
/// ([`FragmentPlan::cut_to_first`]): one frame fewer and one copy fewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentPlan {
    count: usize,
    /// Header of the packet, and so of fragment 0 (all options).
    first_header_len: usize,
    /// Header of fragments 1..: the fixed part and the copied options,
    /// padded to 32 bits.
    rest_header: [u8; MAX_HEADER_LEN],
    rest_header_len: usize,
    payload_len: usize,
    /// Data bytes per fragment (multiples of 8 except in the last).
    first_data: usize,
    rest_data: usize,
    /// The packet's own fragment offset, in bytes: refragmenting a fragment
    /// places the pieces relative to it.
    base_offset: usize,
    /// The packet's own MF: the last piece of a non-last fragment keeps it.
    last_more: bool,
}

impl FragmentPlan {
    /// Plans the split of `packet` into fragments of at most `max_ip_len`
    /// bytes each (IP header included). A packet that fits is one
    /// "fragment", itself, whatever its DF bit.
    pub fn new(packet: &[u8], max_ip_len: usize) -> Result<FragmentPlan, FragError> {
        let ip = ipv4::Packet::new_checked(packet)
            .map_err(|_| FragError::Malformed("not a complete IPv4 packet"))?;
        if !ip.verify_checksum() {
            return Err(FragError::BadChecksum);
        }
        let first_header_len = ip.header_len();
        let total = usize::from(ip.total_len());
        let payload_len = total - first_header_len;
        let base_offset = usize::from(ip.frag_offset());
        let last_more = ip.more_frags();
        if last_more && payload_len % UNIT != 0 {
            return Err(FragError::Malformed(
                "non-last fragment not a multiple of 8",
            ));
        }
        if base_offset + payload_len > MAX_DATAGRAM - ipv4::HEADER_LEN {
            return Err(FragError::Malformed(
                "fragment ends past the largest datagram",
            ));
        }
        let mut plan = FragmentPlan {
            count: 1,
            first_header_len,
            rest_header: [0; MAX_HEADER_LEN],
            rest_header_len: first_header_len,
            payload_len,
            first_data: payload_len,
            rest_data: payload_len,
            base_offset,
            last_more,
        };
        let max = max_ip_len.min(MAX_DATAGRAM);
        if total <= max {
            return Ok(plan);
        }
        if ip.dont_frag() {
            return Err(FragError::DontFragment);
        }
        if max < first_header_len + UNIT {
            return Err(FragError::HeaderTooLarge);
        }
        plan.rest_header_len = copied_header(ip.header(), &mut plan.rest_header)?;
        // Both at least 8: the rest header is never longer than the first.
        plan.first_data = (max - first_header_len) / UNIT * UNIT;
        plan.rest_data = (max - plan.rest_header_len) / UNIT * UNIT;
        plan.count = 1 + (payload_len - plan.first_data).div_ceil(plan.rest_data);
        Ok(plan)
    }

    /// Number of fragments (1 when the packet fits as it is).
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of fragment `index`, header included; `None` past the last.
    pub fn fragment_len(&self, index: usize) -> Option<usize> {
        let (_, len) = self.data_range(index)?;
        Some(self.header_len(index) + len)
    }

    /// Writes fragment `index` of `packet` (the packet the plan was made
    /// for) to the start of `out`; returns its length.
    pub fn write(&self, packet: &[u8], index: usize, out: &mut [u8]) -> Result<usize, FragError> {
        let (offset, len) = self
            .data_range(index)
            .ok_or(FragError::Malformed("fragment index past the plan"))?;
        let header = if index == 0 {
            packet
                .get(..self.first_header_len)
                .ok_or(FragError::Malformed("packet shorter than planned"))?
        } else {
            &self.rest_header[..self.rest_header_len]
        };
        let from = self.first_header_len + offset;
        let data = packet
            .get(from..from + len)
            .ok_or(FragError::Malformed("packet shorter than planned"))?;
        let total = header.len() + len;
        let out = out.get_mut(..total).ok_or(FragError::BufferTooSmall)?;
        out[..header.len()].copy_from_slice(header);
        out[header.len()..].copy_from_slice(data);
        self.finish_header(out, index, offset);
        Ok(total)
    }

    /// Turns `packet` itself into fragment 0 by rewriting its header in
    /// place (the data already sits behind it); returns its new length.
    /// Call it after writing the other fragments, which are read from the
    /// bytes this cuts off.
    pub fn cut_to_first(&self, packet: &mut [u8]) -> Result<usize, FragError> {
        let total = self
            .fragment_len(0)
            .ok_or(FragError::Malformed("empty plan"))?;
        let first = packet
            .get_mut(..total)
            .ok_or(FragError::Malformed("packet shorter than planned"))?;
        self.finish_header(first, 0, 0);
        Ok(total)
    }

    fn header_len(&self, index: usize) -> usize {
        if index == 0 {
            self.first_header_len
        } else {
            self.rest_header_len
        }
    }

    /// Offset and length of fragment `index`'s data within the payload.
    fn data_range(&self, index: usize) -> Option<(usize, usize)> {
        if index >= self.count {
            return None;
        }
        let (offset, size) = if index == 0 {
            (0, self.first_data)
        } else {
            (
                self.first_data + (index - 1) * self.rest_data,
                self.rest_data,
            )
        };
        Some((offset, size.min(self.payload_len.saturating_sub(offset))))
    }

    /// Total Length, MF, Fragment Offset and checksum of one fragment
    /// whose header and data are in `out`.
    fn finish_header(&self, out: &mut [u8], index: usize, data_offset: usize) {
        let total = out.len();
        let mut ip = ipv4::Packet::new_unchecked(out);
        // Bounded by MAX_DATAGRAM in `new`.
        ip.set_total_len(total as u16);
        ip.set_more_frags(index + 1 < self.count || self.last_more);
        ip.set_frag_offset((self.base_offset + data_offset) as u16);
        ip.fill_checksum();
    }
}

/// Builds the header of fragments after the first into `out`: the fixed
/// header and only the options with the copied flag, padded with End of
/// Option List to a multiple of 4 (RFC 791 §3.2). Returns its length.
fn copied_header(header: &[u8], out: &mut [u8; MAX_HEADER_LEN]) -> Result<usize, FragError> {
    let fixed = header
        .get(..ipv4::HEADER_LEN)
        .ok_or(FragError::Malformed("short IPv4 header"))?;
    out[..ipv4::HEADER_LEN].copy_from_slice(fixed);
    let options = header.get(ipv4::HEADER_LEN..).unwrap_or(&[]);
    let mut len = ipv4::HEADER_LEN;
    let mut at = 0;
    while let Some(&kind) = options.get(at) {
        match kind {
            OPT_EOL => break,
            OPT_NOP => at += 1,
            _ => {
                let opt_len = usize::from(
                    *options
                        .get(at + 1)
                        .ok_or(FragError::Malformed("IPv4 option without a length"))?,
                );
                let opt = options
                    .get(at..at + opt_len)
                    .filter(|_| opt_len >= 2)
                    .ok_or(FragError::Malformed("IPv4 option length out of bounds"))?;
                if kind & OPT_COPIED != 0 {
                    // Never overflows: copied options are a subset of at
                    // most 40 option bytes.
                    out[len..len + opt_len].copy_from_slice(opt);
                    len += opt_len;
                }
                at += opt_len;
            }
        }
    }
    let padded = len.div_ceil(4) * 4;
    out[len..padded].fill(OPT_EOL);
    ipv4::Packet::new_unchecked(&mut out[..]).set_header_len(padded);
    Ok(padded)
}

/// Writes the fragments of `packet`, each at most `max_ip_len` bytes, to
/// the starts of `out[0]`, `out[1]`, ...; the plan says how many there are
/// and how long each is. A packet that fits is copied whole into `out[0]`.
pub fn fragment_ipv4(
    packet: &[u8],
    max_ip_len: usize,
    out: &mut [&mut [u8]],
) -> Result<FragmentPlan, FragError> {
    let plan = FragmentPlan::new(packet, max_ip_len)?;
    if out.len() < plan.count() {
        return Err(FragError::TooManyFragments {
            needed: plan.count(),
        });
    }
    for (index, buf) in out.iter_mut().take(plan.count()).enumerate() {
        plan.write(packet, index, buf)?;
    }
    Ok(plan)
}

/// How many fragments `packet` becomes at `max_ip_len` (1 if it fits).
pub fn fragments_needed(packet: &[u8], max_ip_len: usize) -> Result<usize, FragError> {
    FragmentPlan::new(packet, max_ip_len).map(|plan| plan.count())
}

/// The largest inner packet an SA can carry over a link of `outer_mtu`:
/// both the MTU announced in "fragmentation needed" and the size inner
/// fragments are cut to, so each ESP packet fits the link exactly.
pub fn inner_mtu(sa: &OutboundSa, outer_mtu: usize) -> usize {
    max_inner_len(sa, outer_mtu).min(usize::from(u16::MAX))
}

#[cfg(test)]
mod tests;
