//! The messages of the control socket: requests from the control process
//! (`espada`) to the dataplane, the dataplane's replies, and the events it
//! raises on its own (expiry, acquire, replay and integrity failures, idle
//! time for DPD). Their byte layout lives in [`super::wire`] and in
//! `docs/control-protocol.md`.
//!
//! Every message travels with a `request_id` in its header. A request gets
//! exactly one reply with the same `request_id` (a large `Counters` answer
//! may be split over several replies, all but the last with `more` set);
//! events are unsolicited and carry `request_id` 0. A rule list too long
//! for one message goes as several requests ([`Request::load_spd`]), each
//! acknowledged, none in force before the last.

use std::net::{IpAddr, SocketAddr};

use subtle::ConstantTimeEq;

use super::{Direction, Lifetime, NatRule, SaParams};
use crate::counters::{DropCounters, DropReason, SaCounters};
use crate::nat::NatStats;
use crate::spd::{FlowKey, PolicyTag, SpdRule};

/// One datagram on the control socket.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Chosen by the sender of a request, echoed by its reply; 0 for events.
    pub request_id: u32,
    pub payload: Payload,
}

/// What a message is: a request, a reply to one, or an event.
// A `Counters` reply holds one count per drop reason inline, which makes
// replies larger than the other variants; messages cross the control
// socket, never the packet path, so the size costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Request(Request),
    Reply(Reply),
    Event(Event),
}

/// Control process → dataplane.
#[derive(Debug, Clone)]
pub enum Request {
    /// First message on a connection: the protocol version the control
    /// process speaks. Answered by [`Reply::HelloAck`], or by
    /// [`Reply::Error`] with [`ErrorCode::UnsupportedVersion`].
    Hello {
        version: u16,
    },
    /// Install an SA, keys included (the keys cross the socket, which is
    /// why it is mode 0600 and checks its peer's uid).
    AddSa(Box<SaParams>),
    /// Change the lifetime of an installed SA (IOS responder-lifetime, or
    /// a rekey that extends the old SA's grace period).
    UpdateSa {
        direction: Direction,
        spi: u32,
        lifetime: Lifetime,
    },
    DeleteSa {
        direction: Direction,
        spi: u32,
    },
    /// Send an outbound UDP-encapsulated SA's ESP to this port of its peer
    /// from now on: the peer's NAT changed its mapping (an authenticated
    /// IKE message or ESP came from a new port, RFC 7296 §2.23, RFC 3947 §7).
    SetPeerPort {
        spi: u32,
        port: u16,
    },
    /// Replace the whole SPD atomically with these rules, in crypto-map
    /// order. A hub's SPD grows with its peers past one message, so a
    /// list may come in parts ([`Request::load_spd`]); the dataplane
    /// stages them per connection and swaps the table in only at the last,
    /// so a half-loaded SPD is never in force.
    LoadSpd {
        part: ListPart,
        rules: Vec<SpdRule>,
    },
    /// Replace the NAT rule list atomically (in parts, as `LoadSpd`).
    LoadNat {
        part: ListPart,
        rules: Vec<NatRule>,
    },
    /// Port address translation totals over every worker: IOS `show ip
    /// nat statistics`. Answered by [`Reply::NatStats`].
    GetNatStats,
    /// Counters of the SAs with this SPI (both directions), or of every SA.
    GetCounters {
        spi: Option<u32>,
    },
    /// Liveness check; answered by [`Reply::Ack`].
    Ping,
    /// UDP-encapsulated ESP (RFC 3948) that reached the control process's
    /// NAT-T socket instead of the dataplane: it came in IP fragments,
    /// which the XDP program cannot tell from IKE's and leaves to the
    /// kernel, and the kernel reassembled it. `esp` is the UDP payload
    /// (SPI first, at most [`MAX_INJECTED_ESP_LEN`] bytes), `from` the
    /// peer's address and port, `to` ours. The dataplane decapsulates it
    /// as if it had arrived whole on its outside interface.
    InjectEsp {
        from: SocketAddr,
        to: SocketAddr,
        esp: Vec<u8>,
    },
    /// The tunnel interfaces (IOS `interface TunnelN`) that the gateway's
    /// own traffic may use, each a TUN device the dataplane creates and
    /// keeps ([`crate::tunif`]); the whole list every time. Devices not in
    /// it are removed; those already there keep their addresses. Answered
    /// once every device exists, so the control process can then give
    /// them their addresses and routes.
    SetTunnelInterfaces {
        tunnels: Vec<TunnelInterface>,
    },
}

/// One tunnel interface of [`Request::SetTunnelInterfaces`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInterface {
    /// The Linux interface name (the configuration's, `Tunnel23`).
    pub name: String,
    /// The crypto map entry every packet the kernel sends into the
    /// interface is encrypted with (`Tunnel23-head-0`).
    pub tag: PolicyTag,
    /// The interface's MTU: the largest packet of the gateway's own that
    /// the tunnel carries without fragmenting it.
    pub mtu: u16,
}

/// Where one `LoadSpd` / `LoadNat` message sits in the list it loads.
///
/// The offset lets the receiver check that no part was lost or repeated
/// (a part at offset 0 always starts a new list, so a load abandoned
/// half-way never leaks into the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListPart {
    /// Index in the whole list of this message's first rule.
    pub offset: u32,
    /// More parts follow; the list is not in force until the last.
    pub more: bool,
}

impl ListPart {
    /// A list sent in one message.
    pub const WHOLE: ListPart = ListPart {
        offset: 0,
        more: false,
    };
}

/// Splits a rule list into parts that each fit one message. Always at
/// least one part, so an empty list still replaces the one in force.
fn list_parts<T: Clone>(rules: &[T], per_message: usize) -> Vec<(ListPart, Vec<T>)> {
    let mut chunks: Vec<&[T]> = rules.chunks(per_message.max(1)).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    let last = chunks.len() - 1;
    let mut offset = 0u32;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let part = ListPart {
                offset,
                more: i != last,
            };
            // A list of 4 billion rules cannot be built in memory, let
            // alone staged (`MAX_LIST_RULES`): saturating is never reached.
            offset = offset.saturating_add(u32::try_from(chunk.len()).unwrap_or(u32::MAX));
            (part, chunk.to_vec())
        })
        .collect()
}

impl Request {
    /// The most rules one list (SPD or NAT) may hold, and the most the
    /// dataplane holds staged for lists in the making over all its
    /// connections (64 bytes a rule in memory: 64 MiB), far above any
    /// crypto-map configuration.
    pub const MAX_LIST_RULES: usize = 1 << 20;

    /// SPD rules per `LoadSpd` message: the largest rule (IPv6, protect,
    /// with an SA) times this fits [`super::MAX_MESSAGE_LEN`] with the
    /// header and the part's fields.
    pub const SPD_RULES_PER_MESSAGE: usize =
        (super::MAX_MESSAGE_LEN - 64) / super::wire::SPD_RULE_MAX_LEN;

    /// NAT rules per `LoadNat` message, as for the SPD.
    pub const NAT_RULES_PER_MESSAGE: usize =
        (super::MAX_MESSAGE_LEN - 64) / super::wire::NAT_RULE_MAX_LEN;

    /// The `LoadSpd` requests that replace the SPD with `rules`, in order:
    /// each to be acknowledged before the next is sent.
    pub fn load_spd(rules: &[SpdRule]) -> Vec<Request> {
        list_parts(rules, Self::SPD_RULES_PER_MESSAGE)
            .into_iter()
            .map(|(part, rules)| Request::LoadSpd { part, rules })
            .collect()
    }

    /// The `LoadNat` requests that replace the NAT rules, as [`Self::load_spd`].
    pub fn load_nat(rules: &[NatRule]) -> Vec<Request> {
        list_parts(rules, Self::NAT_RULES_PER_MESSAGE)
            .into_iter()
            .map(|(part, rules)| Request::LoadNat { part, rules })
            .collect()
    }
}

/// Dataplane → control process, answering the request with the same
/// `request_id`.
// `Counters` holds the global drop counts inline (one per reason): larger
// than the other variants, but replies never cross the packet path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    HelloAck {
        /// The protocol version the dataplane speaks (equal to the Hello's).
        version: u16,
        /// The dataplane build, e.g. `espada-dataplane 0.1.0`, for logs
        /// and `show version`.
        dataplane_version: String,
    },
    /// The request was carried out.
    Ack,
    /// The request was refused or could not be decoded.
    Error { code: ErrorCode, message: String },
    /// Answer to [`Request::GetNatStats`].
    NatStats(NatStats),
    /// Answer to [`Request::GetCounters`].
    Counters {
        sas: Vec<SaCounts>,
        /// Drops not attributable to one SA (no SA for the SPI, malformed
        /// packets, policy discards).
        global_drops: DropCounts,
        /// More `Counters` replies with the same `request_id` follow: an
        /// answer for many SAs is split to fit [`super::MAX_MESSAGE_LEN`].
        more: bool,
    },
}

/// Dataplane → control process, unsolicited (`request_id` 0).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Traffic matched a protect rule whose SA is not negotiated yet; the
    /// packet was dropped (as IOS does) and IKE should negotiate one.
    Acquire { tag: PolicyTag, flow: FlowKey },
    /// The SA passed its soft lifetime: rekey it.
    SoftExpire { spi: u32, direction: Direction },
    /// The SA passed its hard lifetime and no longer passes traffic.
    HardExpire { spi: u32, direction: Direction },
    /// `count` replayed packets on this inbound SA since the last such event.
    ReplayFailure { spi: u32, count: u64 },
    /// `count` packets whose ICV failed on this inbound SA since the last
    /// such event.
    IntegrityFailure { spi: u32, count: u64 },
    /// No traffic on this SA since `last_used` (seconds, dataplane clock):
    /// the control process may start DPD.
    Idle { spi: u32, last_used: u64 },
    /// A Tunnel Endpoint Discovery probe caught in transit on an outside
    /// interface: an IKEv1 datagram to UDP 500 of a host behind this
    /// gateway (`original_dst`), not of the gateway itself. It was not
    /// forwarded; IKE answers it from the gateway's own address. `from`
    /// is the probe's source address and port, `data` the UDP payload
    /// (the ISAKMP message, at most [`MAX_TED_PROBE_LEN`] bytes).
    TedProbe {
        from: SocketAddr,
        original_dst: IpAddr,
        data: Vec<u8>,
    },
}

/// The largest UDP payload a [`Event::TedProbe`] carries; longer transit
/// IKE is not taken for a probe.
pub const MAX_TED_PROBE_LEN: usize = 1500;

/// The largest ESP a [`Request::InjectEsp`] carries: with its Ethernet,
/// IPv6 and UDP headers it fills a dataplane frame after the headroom
/// encapsulation needs. The dataplane reassembles plain ESP up to the
/// same size.
pub const MAX_INJECTED_ESP_LEN: usize = 3700;

/// Why the dataplane refused a request. Stable codes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The message could not be decoded (the text says what and where).
    Malformed,
    /// The peer speaks another protocol version.
    UnsupportedVersion,
    /// A datagram longer than [`super::MAX_MESSAGE_LEN`].
    TooLarge,
    /// No SA with that SPI and direction.
    UnknownSa,
    /// An SA with that SPI and direction is already installed.
    DuplicateSa,
    /// The SA parameters were refused (suite combination, keys, mode).
    InvalidSa,
    /// A valid message that makes no sense here (a reply sent as a
    /// request, a request before `Hello`).
    Unexpected,
    /// The dataplane failed to carry out a valid request.
    Internal,
    /// A rule list (SPD or NAT) the dataplane cannot use, e.g. PAT over
    /// IPv6; the one in force is kept.
    InvalidRules,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::Malformed,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooLarge,
        ErrorCode::UnknownSa,
        ErrorCode::DuplicateSa,
        ErrorCode::InvalidSa,
        ErrorCode::Unexpected,
        ErrorCode::Internal,
        ErrorCode::InvalidRules,
    ];

    /// Stable wire code; never renumber, only append.
    pub const fn code(self) -> u16 {
        match self {
            ErrorCode::Malformed => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::TooLarge => 3,
            ErrorCode::UnknownSa => 4,
            ErrorCode::DuplicateSa => 5,
            ErrorCode::InvalidSa => 6,
            ErrorCode::Unexpected => 7,
            ErrorCode::Internal => 8,
            ErrorCode::InvalidRules => 9,
        }
    }

    pub fn from_code(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// A snapshot of one SA's counters: IOS `show crypto ipsec sa`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaCounts {
    pub spi: u32,
    pub direction: Direction,
    pub encaps: u64,
    pub encrypt: u64,
    pub digest: u64,
    pub decaps: u64,
    pub decrypt: u64,
    pub verify: u64,
    pub bytes: u64,
    /// Seconds (dataplane clock) of the last packet.
    pub last_used: u64,
    /// Inbound ESP in UDP: the source port of the last authenticated
    /// packet (0: none). A port other than the negotiated one means the
    /// peer's NAT mapped it anew; the control process follows it.
    pub peer_port: u16,
    /// Outbound: the path MTU to the peer that ICMP taught, in force now
    /// (0: none; the route's MTU applies).
    pub path_mtu: u16,
    pub drops: DropCounts,
}

impl SaCounts {
    /// Reads the live counters of one SA (`peer_port`: see the field),
    /// spelling them out as IOS does (see [`SaCounters`]).
    pub fn snapshot(spi: u32, direction: Direction, c: &SaCounters, peer_port: u16) -> SaCounts {
        let packets = SaCounters::read(&c.packets);
        let (sealed, delivered, verified) = match direction {
            Direction::Outbound => (packets, 0, 0),
            Direction::Inbound => (0, packets, SaCounters::read(&c.verified)),
        };
        SaCounts {
            spi,
            direction,
            encaps: sealed,
            encrypt: sealed,
            digest: sealed,
            decaps: delivered,
            decrypt: verified,
            verify: verified,
            bytes: SaCounters::read(&c.bytes),
            last_used: SaCounters::read(&c.last_used),
            peer_port,
            path_mtu: 0,
            drops: DropCounts::snapshot(&c.drops),
        }
    }
}

/// One count per [`DropReason`], indexed by the reason's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropCounts(pub [u64; DropReason::COUNT]);

// By hand: the standard library derives `Default` for arrays of at most
// 32 elements.
impl Default for DropCounts {
    fn default() -> DropCounts {
        DropCounts([0; DropReason::COUNT])
    }
}

impl DropCounts {
    pub fn snapshot(c: &DropCounters) -> DropCounts {
        DropCounts(DropReason::ALL.map(|r| c.get(r)))
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[usize::from(reason.code())]
    }

    pub fn set(&mut self, reason: DropReason, n: u64) {
        self.0[usize::from(reason.code())] = n;
    }

    /// The reasons with a non-zero count, with their counts.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r, self.get(r)))
            .filter(|&(_, n)| n != 0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

impl Reply {
    /// How many [`SaCounts`] one `Counters` reply carries at most: the
    /// worst case (every drop counter non-zero) still fits
    /// [`super::MAX_MESSAGE_LEN`], with room for the header and the global
    /// drops. Derived from the drop-reason count so new reasons cannot
    /// overflow a reply.
    pub const SAS_PER_COUNTERS: usize = {
        let drops_max = 1 + DropReason::COUNT * 9;
        let sa_max = 4 + 1 + 8 * 8 + 2 + 2 + drops_max;
        (super::MAX_MESSAGE_LEN - 64 - drops_max) / sa_max
    };

    /// The `Counters` replies answering one `GetCounters`: the SAs split
    /// into messages that fit, every one but the last with `more` set, the
    /// global drops in each. Always at least one message.
    pub fn counters(request_id: u32, sas: &[SaCounts], global_drops: DropCounts) -> Vec<Message> {
        let mut chunks: Vec<&[SaCounts]> = sas.chunks(Self::SAS_PER_COUNTERS).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| {
                Message::reply(
                    request_id,
                    Reply::Counters {
                        sas: chunk.to_vec(),
                        global_drops,
                        more: i != last,
                    },
                )
            })
            .collect()
    }
}

impl Message {
    pub fn request(request_id: u32, request: Request) -> Message {
        Message {
            request_id,
            payload: Payload::Request(request),
        }
    }

    pub fn reply(request_id: u32, reply: Reply) -> Message {
        Message {
            request_id,
            payload: Payload::Reply(reply),
        }
    }

    pub fn event(event: Event) -> Message {
        Message {
            request_id: 0,
            payload: Payload::Event(event),
        }
    }

    /// The [`Reply::Error`] that answers a datagram which did not decode:
    /// `request_id` is the one its header carried, if it had a readable
    /// header. A peer speaking another version gets
    /// [`ErrorCode::UnsupportedVersion`] with a message naming both versions.
    pub fn decode_error_reply(request_id: Option<u32>, err: &super::DecodeError) -> Message {
        Message::reply(
            request_id.unwrap_or(0),
            Reply::Error {
                code: err.error_code(),
                message: err.to_string(),
            },
        )
    }

    /// The message's name as in `docs/control-protocol.md`, for logs.
    pub fn name(&self) -> &'static str {
        match &self.payload {
            Payload::Request(r) => match r {
                Request::Hello { .. } => "Hello",
                Request::AddSa(_) => "AddSa",
                Request::UpdateSa { .. } => "UpdateSa",
                Request::DeleteSa { .. } => "DeleteSa",
                Request::SetPeerPort { .. } => "SetPeerPort",
                Request::LoadSpd { .. } => "LoadSpd",
                Request::LoadNat { .. } => "LoadNat",
                Request::GetCounters { .. } => "GetCounters",
                Request::GetNatStats => "GetNatStats",
                Request::Ping => "Ping",
                Request::InjectEsp { .. } => "InjectEsp",
                Request::SetTunnelInterfaces { .. } => "SetTunnelInterfaces",
            },
            Payload::Reply(r) => match r {
                Reply::HelloAck { .. } => "HelloAck",
                Reply::Ack => "Ack",
                Reply::Error { .. } => "Error",
                Reply::Counters { .. } => "Counters",
                Reply::NatStats(_) => "NatStats",
            },
            Payload::Event(e) => match e {
                Event::Acquire { .. } => "Acquire",
                Event::SoftExpire { .. } => "SoftExpire",
                Event::HardExpire { .. } => "HardExpire",
                Event::ReplayFailure { .. } => "ReplayFailure",
                Event::IntegrityFailure { .. } => "IntegrityFailure",
                Event::Idle { .. } => "Idle",
                Event::TedProbe { .. } => "TedProbe",
            },
        }
    }
}

/// Field-by-field equality; written out because [`SaParams`] (whose keys
/// must not be compared or printed casually) has no `PartialEq`. Keys are
/// compared in constant time.
impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        use Request::*;
        match (self, other) {
            (Hello { version: a }, Hello { version: b }) => a == b,
            (AddSa(a), AddSa(b)) => sa_params_eq(a, b),
            (
                UpdateSa {
                    direction: d1,
                    spi: s1,
                    lifetime: l1,
                },
                UpdateSa {
                    direction: d2,
                    spi: s2,
                    lifetime: l2,
                },
            ) => d1 == d2 && s1 == s2 && l1 == l2,
            (
                DeleteSa {
                    direction: d1,
                    spi: s1,
                },
                DeleteSa {
                    direction: d2,
                    spi: s2,
                },
            ) => d1 == d2 && s1 == s2,
            (SetPeerPort { spi: s1, port: p1 }, SetPeerPort { spi: s2, port: p2 }) => {
                s1 == s2 && p1 == p2
            }
            (LoadSpd { part: p, rules: a }, LoadSpd { part: q, rules: b }) => p == q && a == b,
            (LoadNat { part: p, rules: a }, LoadNat { part: q, rules: b }) => p == q && a == b,
            (GetCounters { spi: a }, GetCounters { spi: b }) => a == b,
            (
                InjectEsp {
                    from: f1,
                    to: t1,
                    esp: e1,
                },
                InjectEsp {
                    from: f2,
                    to: t2,
                    esp: e2,
                },
            ) => f1 == f2 && t1 == t2 && e1 == e2,
            (SetTunnelInterfaces { tunnels: a }, SetTunnelInterfaces { tunnels: b }) => a == b,
            (Ping, Ping) | (GetNatStats, GetNatStats) => true,
            _ => false,
        }
    }
}

/// Destructures every field so that a field added to [`SaParams`] fails to
/// compile here until it is compared.
fn sa_params_eq(a: &SaParams, b: &SaParams) -> bool {
    let SaParams {
        spi,
        direction,
        enc,
        auth,
        keys,
        mode,
        udp_encap,
        esn,
        replay_window,
        lifetime,
        selectors,
    } = a;
    *spi == b.spi
        && *direction == b.direction
        && *enc == b.enc
        && *auth == b.auth
        && bool::from(keys.enc.ct_eq(&b.keys.enc))
        && bool::from(keys.auth.ct_eq(&b.keys.auth))
        && *mode == b.mode
        && *udp_encap == b.udp_encap
        && *esn == b.esn
        && *replay_window == b.replay_window
        && *lifetime == b.lifetime
        && *selectors == b.selectors
}
