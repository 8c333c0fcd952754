//! The SA and policy definitions that the control process negotiates and the
//! dataplane installs, defined once here and shared by both, and the
//! control-socket protocol that carries them between the two processes
//! (`docs/control-protocol.md`):
//!
//! - [`messages`]: what crosses the socket ([`Message`], [`Request`],
//!   [`Reply`], [`Event`]).
//! - [`wire`]: the strict, hand-written binary encoding (header, bodies,
//!   [`DecodeError`]); pure, no I/O, fuzzed.
//! - [`socket`]: the Unix SEQPACKET transport ([`ControlListener`],
//!   [`ControlConn`]): one datagram is one message.

pub mod messages;
pub mod socket;
pub mod wire;

#[cfg(test)]
mod tests;

pub use messages::{
    DropCounts, ErrorCode, Event, ListPart, Message, Payload, Reply, Request, SaCounts,
    TunnelInterface, MAX_INJECTED_ESP_LEN, MAX_TED_PROBE_LEN,
};
pub use socket::{ConnError, ControlConn, ControlListener};
pub use wire::{decode, encode, DecodeError, EncodeError, MAX_MESSAGE_LEN, PROTOCOL_VERSION};

use std::net::IpAddr;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{AuthAlg, EncAlg};
use crate::spd::TrafficSelector;

/// Key material of one SA. Zeroized on drop and never printed: `Debug`
/// shows lengths only.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SaKeys {
    /// Encryption key; for AES-GCM the 4-byte salt follows the key (RFC 4106 §8.1).
    pub enc: Vec<u8>,
    pub auth: Vec<u8>,
}

impl std::fmt::Debug for SaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SaKeys {{ enc: <{} bytes>, auth: <{} bytes> }}",
            self.enc.len(),
            self.auth.len()
        )
    }
}

/// ESP mode (RFC 4301 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspMode {
    /// The whole inner IP packet is protected; the outer header carries the
    /// tunnel endpoints. Inner and outer families may differ.
    Tunnel { local: IpAddr, remote: IpAddr },
    /// Only the upper-layer payload is protected; the IP header stays.
    Transport,
}

/// RFC 3948 UDP encapsulation of ESP (NAT traversal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpEncap {
    pub src_port: u16,
    pub dst_port: u16,
}

impl Default for UdpEncap {
    fn default() -> Self {
        UdpEncap {
            src_port: 4500,
            dst_port: 4500,
        }
    }
}

/// SA lifetime limits (RFC 4301 §4.4.2.1): soft triggers a rekey, hard
/// deletes the SA. `None` means no limit of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifetime {
    pub soft_seconds: Option<u64>,
    pub hard_seconds: Option<u64>,
    pub soft_kilobytes: Option<u64>,
    pub hard_kilobytes: Option<u64>,
}

/// Direction of an SA relative to this gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

/// Everything the dataplane needs to run one ESP SA.
#[derive(Debug, Clone)]
pub struct SaParams {
    pub spi: u32,
    pub direction: Direction,
    pub enc: EncAlg,
    pub auth: AuthAlg,
    pub keys: SaKeys,
    pub mode: EspMode,
    pub udp_encap: Option<UdpEncap>,
    /// Extended (64-bit) sequence numbers, RFC 4303 §2.2.1.
    pub esn: bool,
    /// Anti-replay window in packets (inbound only); 0 disables the check.
    pub replay_window: u32,
    pub lifetime: Lifetime,
    /// The traffic the pair carries, as the outbound SPD reads it (source:
    /// this gateway's side): the negotiated proxy identities or traffic
    /// selectors, or a manual map's `permit` lines. An inbound SA delivers
    /// only decrypted packets one of them takes, read from the peer's side
    /// ([`crate::spd::InnerPolicy`]); empty: any packet.
    pub selectors: Vec<TrafficSelector>,
}

/// One line of the NAT rule list: the dataplane's form of IOS
/// `ip nat inside source list ACL interface IF overload` (seed 003). The
/// list is ordered like the ACL and the first rule whose selector matches a
/// packet leaving the inside decides; a packet no rule matches is forwarded
/// untranslated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRule {
    pub selector: TrafficSelector,
    pub action: NatAction,
}

/// What a [`NatRule`] does to the flows it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatAction {
    /// NAT exemption (an ACL `deny` line): the flow keeps its addresses,
    /// typically site-to-site traffic that the SPD then protects.
    Exempt,
    /// Port address translation (`overload`, an ACL `permit` line): the
    /// source becomes `outside_addr` with a port the dataplane allocates,
    /// on the interface with kernel index `outside_ifindex`.
    Pat {
        outside_ifindex: u32,
        outside_addr: IpAddr,
    },
}
