//! Zero-copy views over the packet formats the ESP gateway reads and writes.
//!
//! Modelled on smoltcp's `src/wire/`: every protocol lives in one file with two
//! types.
//!
//! - `Packet<T: AsRef<[u8]>>` (or `Frame<T>` for Ethernet) is a view over a
//!   buffer. `new_checked` validates the lengths once, after which every getter
//!   reads straight from the buffer without further checks that could fail;
//!   with `T: AsMut<[u8]>` setters write in place, so a header can be rewritten
//!   (TTL decrement, NAT-T port change) without copying the packet.
//! - `Repr` is the parsed, owned meaning of a header: `parse` reads it out of a
//!   checked packet, `emit` writes it into a buffer of `buffer_len()` bytes.
//!
//! Nothing here allocates and nothing panics on any input: a short or
//! malformed buffer is an [`Error`], so hostile traffic can only be dropped
//! and counted, never crash a worker. Field offsets are named constants in a
//! private `field` module per file so the layout reads like the RFC diagram.

pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod natt;
pub mod udp;

/// Why a buffer could not be read as (or written into) a packet format.
///
/// The variants are few on purpose: the dataplane only needs to know which
/// drop counter to bump, and `Malformed` carries a static reason for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header or the length a header field
    /// announces.
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value the format does not allow.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The ESP self-describing padding (RFC 4303 §2.4) is not 1, 2, 3, ...;
    /// kept distinct because it is the usual symptom of a wrong key or a
    /// tampered packet that passed no integrity check (encryption-only SAs).
    #[error("bad ESP padding")]
    BadPadding,
}

/// Result of every parse and emit in this module.
pub type Result<T> = core::result::Result<T, Error>;

/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers"), shared by
/// the IPv4 Protocol field and the IPv6 Next Header field.
pub mod ip_proto {
    /// IPv6 Hop-by-Hop Options (RFC 8200 §4.3).
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4 (RFC 792).
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP (RFC 2003); the inner packet of an IPv4 tunnel-mode SA.
    pub const IPV4: u8 = 4;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated (RFC 2473); the inner packet of an IPv6 tunnel-mode SA.
    pub const IPV6: u8 = 41;
    /// IPv6 Routing header (RFC 8200 §4.4).
    pub const ROUTING: u8 = 43;
    /// IPv6 Fragment header (RFC 8200 §4.5).
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload (RFC 4303).
    pub const ESP: u8 = 50;
    /// Authentication Header (RFC 4302).
    pub const AH: u8 = 51;
    /// ICMP for IPv6 (RFC 4443).
    pub const ICMPV6: u8 = 58;
    /// IPv6 No Next Header (RFC 8200 §4.7); also the ESP dummy-packet marker (RFC 4303 §2.6).
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 Destination Options (RFC 8200 §4.6).
    pub const DEST_OPTS: u8 = 60;
}

/// The ECN field (RFC 3168 §5): the low two bits of IPv4's DSCP/ECN byte
/// and of IPv6's Traffic Class.
pub mod ecn {
    /// Mask of the field in the byte.
    pub const MASK: u8 = 0b11;
    /// Not ECN-capable transport.
    pub const NOT_ECT: u8 = 0b00;
    /// ECN-capable transport, codepoint 1.
    pub const ECT1: u8 = 0b01;
    /// ECN-capable transport, codepoint 0.
    pub const ECT0: u8 = 0b10;
    /// Congestion experienced.
    pub const CE: u8 = 0b11;
}

/// Reads a big-endian `u16` at `at`; callers have checked the length.
#[inline]
fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Reads a big-endian `u32` at `at`; callers have checked the length.
#[inline]
fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Writes a big-endian `u16` at `at`; callers have checked the length.
#[inline]
fn put16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes a big-endian `u32` at `at`; callers have checked the length.
#[inline]
fn put32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}
