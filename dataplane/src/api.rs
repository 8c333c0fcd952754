//! The SA and policy definitions that the control process negotiates and the
//! dataplane installs: defined once here and shared by both (the control
//! socket protocol that carries them arrives with the dataplane issue).

use std::net::IpAddr;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::{AuthAlg, EncAlg};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}
