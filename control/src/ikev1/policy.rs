//! What the IKEv1 engine negotiates with, already checked and resolved by
//! `config::compile`: the ISAKMP policies in priority order, the
//! pre-shared keys by peer, and one [`MapEntry`] per `ipsec-isakmp` crypto
//! map entry (static, or a dynamic-map entry any peer may match). The
//! engine never sees the config text, spans or names it does not report.

use std::net::IpAddr;

use dataplane::api::EspMode;
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{IpPrefix, PolicyTag, TrafficSelector};

use crate::config::ike::{IkeCipher, IkeHash};
use crate::config::model::SecretBytes;
use crate::ike::crypto::DhGroup;

/// IOS's default ISAKMP SA lifetime (one day).
pub const DEFAULT_ISAKMP_LIFETIME: u32 = 86_400;
/// IOS's default IPsec SA lifetimes (one hour, 4 608 000 kilobytes).
pub const DEFAULT_IPSEC_SECONDS: u64 = 3_600;
pub const DEFAULT_IPSEC_KILOBYTES: u64 = 4_608_000;

/// Everything the engine negotiates with.
#[derive(Debug, Clone, Default)]
pub struct Ikev1Policy {
    /// `crypto isakmp policy N`, lowest N first (IOS tries them in that
    /// order as responder and proposes them in that order as initiator).
    pub isakmp: Vec<IsakmpProposal>,
    /// `crypto isakmp key KEY address ...`.
    pub keys: Vec<PresharedKey>,
    /// `crypto isakmp keepalive SECS RETRY [periodic|on-demand]`.
    pub dpd: Option<Dpd>,
    /// `crypto isakmp nat keepalive SECS`.
    pub nat_keepalive: Option<u32>,
    /// `ipsec-isakmp` crypto map entries, in the order the map tries them
    /// (sequence number order; dynamic-map entries at their place in the
    /// map that references them).
    pub maps: Vec<MapEntry>,
    /// Initiate with Aggressive Mode instead of Main Mode (one DH group:
    /// the first policy's). Espada always answers both.
    pub aggressive: bool,
}

/// One `crypto isakmp policy`, with IOS defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsakmpProposal {
    pub priority: u32,
    pub cipher: IkeCipher,
    pub hash: IkeHash,
    pub group: DhGroup,
    /// Seconds.
    pub lifetime: u32,
}

/// A pre-shared key for every peer inside `peer` (`0.0.0.0/0` and `::/0`
/// are the wildcard keys). The longest matching prefix wins.
#[derive(Debug, Clone)]
pub struct PresharedKey {
    pub peer: IpPrefix,
    pub key: SecretBytes,
}

/// Dead peer detection settings (RFC 3706).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dpd {
    /// Seconds between R-U-THERE when the peer is idle (`keepalive SECS`).
    pub interval: u32,
    /// Seconds between retries once one went unanswered (IOS default 2).
    pub retry: u32,
    /// `periodic`: send on schedule; otherwise `on-demand` (only when
    /// there is outbound traffic but nothing came back).
    pub periodic: bool,
}

/// One IPsec transform set of a map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspTransform {
    pub name: String,
    pub enc: EncAlg,
    pub auth: AuthAlg,
    /// Tunnel or transport (`mode tunnel|transport`); the tunnel endpoints
    /// are filled in when the SA is installed.
    pub tunnel: bool,
}

/// IPsec SA lifetimes, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpsecLifetime {
    pub seconds: u64,
    pub kilobytes: u64,
}

impl Default for IpsecLifetime {
    fn default() -> IpsecLifetime {
        IpsecLifetime {
            seconds: DEFAULT_IPSEC_SECONDS,
            kilobytes: DEFAULT_IPSEC_KILOBYTES,
        }
    }
}

/// One `crypto map NAME SEQ ipsec-isakmp` entry (or the dynamic-map entry
/// it stands for), or the IKEv1 entry of a VTI (`interface TunnelN` with
/// `tunnel protection ipsec profile`, named `TunnelN-head-0` as in IOS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    /// The tag the dataplane's SPD rules of this entry carry (acquires
    /// name it).
    pub tag: PolicyTag,
    pub map: String,
    pub seq: u32,
    /// The dynamic map's name and sequence when this entry comes from
    /// `crypto dynamic-map` (then `peers` is empty: any peer matches).
    pub dynamic: Option<(String, u32)>,
    /// `set peer`, in order (the first is tried first as initiator).
    pub peers: Vec<IpAddr>,
    /// `crypto map NAME SEQ ipsec-isakmp dynamic D discover`: a dynamic
    /// entry that, as initiator, finds its peer with a Tunnel Endpoint
    /// Discovery probe sent towards the acquired flow's destination, and
    /// answers the probes of other gateways for its `match address`.
    pub discover: bool,
    /// The outside interface's address this map runs on (IKE source, ESP
    /// tunnel source).
    pub local: IpAddr,
    /// `set transform-set`, in order.
    pub transforms: Vec<EspTransform>,
    /// The permit lines of `match address`, as (local, remote) selectors:
    /// the proxy identities this entry protects. As initiator the first
    /// one covering the acquired flow is proposed; as responder a proposal
    /// is accepted when it lies inside one of them.
    pub selectors: Vec<TrafficSelector>,
    /// `set pfs groupN`.
    pub pfs: Option<DhGroup>,
    pub lifetime: IpsecLifetime,
    /// `set security-association replay window` is not parsed yet: IOS's
    /// default 64 applies.
    pub replay_window: u32,
}

impl MapEntry {
    /// The ESP mode for an SA of this entry towards `peer`.
    pub fn esp_mode(&self, t: &EspTransform, peer: IpAddr) -> EspMode {
        if t.tunnel {
            EspMode::Tunnel {
                local: self.local,
                remote: peer,
            }
        } else {
            EspMode::Transport
        }
    }
}

impl Ikev1Policy {
    /// The key for `peer`: the longest matching prefix.
    pub fn key_for(&self, peer: IpAddr) -> Option<&PresharedKey> {
        self.keys
            .iter()
            .filter(|k| k.peer.contains(&peer))
            .max_by_key(|k| k.peer.prefix_len())
    }
}
