//! ESP encapsulation and decapsulation (RFC 4303) on packets that sit in a
//! frame buffer with head- and tailroom (an AF_XDP UMEM frame in the
//! dataplane, a `Vec` in tests), so encapsulation only writes the new
//! headers in front of the packet and the trailer behind it: no copy of the
//! payload.
//!
//! - Tunnel mode for IPv4-in-IPv4, IPv6-in-IPv6, IPv4-in-IPv6 and
//!   IPv6-in-IPv4 (RFC 4303 §3.1.2); transport mode for IPv4 and IPv6
//!   (§3.1.1, ESP after the unfragmentable part of an IPv6 packet).
//! - RFC 3948 UDP encapsulation on port 4500, with the non-ESP marker (IKE)
//!   and NAT-keepalives told apart from ESP on receive.
//! - Padding built and checked per §2.4, TFC dummy packets (next header 59)
//!   dropped (§2.6), 32-bit and extended sequence numbers (§2.2.1, App. A).
//!
//! Both directions work on batches: encapsulation prepares every packet,
//! hands the batch to the suite (which may encrypt several packets at once),
//! then finishes them. Every refused packet gets a [`DropReason`] that is
//! also counted.

mod decap;
mod encap;

pub use decap::{
    decap, decap_across, decap_batch, decap_batch_where, esp_spi_seq, inbound_sa_of, Decapped,
};
pub use encap::{
    encap_across, encap_batch, encap_batch_where, encap_overhead, encap_single, encapsulated_len,
    max_inner_len, ACROSS,
};

use crate::counters::DropReason;

/// A packet inside a larger frame: `frame[start..start + len]` is the IP
/// packet; the bytes before `start` are headroom, after it tailroom.
pub struct PacketBuf<'a> {
    pub frame: &'a mut [u8],
    pub start: usize,
    pub len: usize,
    /// Set by each stage; a packet that failed one stage is skipped by the
    /// next ones and its reason has been counted.
    pub verdict: Result<(), DropReason>,
}

impl<'a> PacketBuf<'a> {
    pub fn new(frame: &'a mut [u8], start: usize, len: usize) -> PacketBuf<'a> {
        PacketBuf {
            frame,
            start,
            len,
            verdict: Ok(()),
        }
    }

    /// The packet bytes, or an empty slice if `start`/`len` lie outside the
    /// frame (never a panic).
    pub fn data(&self) -> &[u8] {
        self.frame
            .get(self.start..self.start.saturating_add(self.len))
            .unwrap_or(&[])
    }
}

/// IP version of the first byte of a packet.
pub(crate) fn ip_version(packet: &[u8]) -> Option<u8> {
    packet.first().map(|b| b >> 4)
}

/// The TTL / hop limit for outer headers we originate (RFC 1700 default).
pub(crate) const OUTER_TTL: u8 = 64;

#[cfg(test)]
mod tests;
