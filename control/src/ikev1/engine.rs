//! The IKEv1 engine: Main Mode and Quick Mode with pre-shared keys, the
//! informational exchange (delete, notify, dead peer detection), as a
//! sans-IO state machine.
//!
//! Input: datagrams ([`Engine::handle_datagram`]), the dataplane's acquires
//! and expiries ([`Engine::acquire`], [`Engine::sa_expired`]), Tunnel
//! Endpoint Discovery probes the dataplane intercepted in transit
//! ([`Engine::handle_ted_probe`], see the `ted` module) and the clock
//! ([`Engine::handle_timeout`] when [`Engine::poll_timeout`] says). Output,
//! drained with [`Engine::poll_output`]: datagrams to send, SA pairs to
//! install or delete, and IOS-style debug lines. The engine never blocks,
//! never reads the clock and never touches a socket, so tests run two of
//! them against each other in memory with a fake clock.
//!
//! Each ISAKMP SA lives in one [`Phase1`], each Quick Mode exchange in one
//! [`QuickMode`] (by the ISAKMP SA's cookies and its Message ID), each
//! installed pair in one [`Pair`]. Every message sent that expects an
//! answer is a [`Flight`], retransmitted on a timer and on a duplicate of
//! the message it answered.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use dataplane::api::{Direction, Lifetime, SaKeys, SaParams};
use dataplane::spd::{FlowKey, IpPrefix, PolicyTag, TrafficSelector};
use zeroize::Zeroizing;

use crate::config::ike::IkeHash;
use crate::ike::crypto::v1::{self as kdf, KeymatInput, Phase1Keys, Phase1Transcript};
use crate::ike::crypto::{random, random_vec, DhGroup, DhPrivate, Prf};
use crate::ike::lifetime;
use crate::ike::spi::{SpiAllocator, SpiSpace};
use crate::ike::table::{Keyed, RowId, Table};
use crate::ike::wire::chain::Walker;
use crate::ike::wire::ident::Identity;
use crate::ike::wire::ikev1::{
    decode_decrypted, encode_payloads, Body, Delete, ExchangeType, Flags, Header, Identification,
    Message, Notification, NotifyType, Payload, PayloadType, ProtocolId,
};
use crate::ike::wire::vendor::KnownVendor;
use crate::show::IsakmpSaView;

use super::cipher::{self, IsakmpCipher};
use super::policy::Ikev1Policy;
use super::proposal::{self, Phase1Choice, Phase2Choice, UdpEncapStyle};
use super::proxy;

mod aggressive;
mod info;
mod main_mode;
mod quick_mode;
mod ted;

/// How many times a message is retransmitted before the exchange fails.
const MAX_RETRANSMITS: u32 = 5;
/// First retransmission interval; doubles up to [`RETRANSMIT_CAP`].
const RETRANSMIT_BASE: Duration = Duration::from_secs(1);
const RETRANSMIT_CAP: Duration = Duration::from_secs(8);
/// How long a finished Quick Mode is kept to answer a retransmitted
/// message of it.
const QM_LINGER: Duration = Duration::from_secs(30);
/// The peer's Quick Mode Message IDs an ISAKMP SA remembers
/// (`Phase1::peer_qm_ids`): a day of hourly rekeys of dozens of pairs.
const SEEN_QM_IDS: usize = 4096;
/// After a failed negotiation for a flow, acquires for it are ignored for
/// this long, so a misconfigured peer is not flooded.
const HOLD_DOWN: Duration = Duration::from_secs(2);
/// How long after a failed rekey of ours (refused, unanswered, or its
/// pair refused by the dataplane) it is tried again: the old pair still
/// carries the traffic, and without another try it would run into its
/// hard lifetime, and the traffic would wait for a new negotiation.
const REKEY_RETRY: Duration = Duration::from_secs(10);
/// SA pairs, with Quick Modes under way, one peer address may hold: an
/// authenticated peer could otherwise ask for pair after pair, each
/// with other proxy identities, until the dataplane's SA table is full.
/// A rekey of a pair it holds may go beyond ([`REKEY_CEILING`]). Generous for many
/// clients of a dynamic entry behind one NAT.
const PAIR_LIMIT: usize = 1024;
/// Superseded pairs kept per proxy and peer: the one a rekey just
/// replaced, and the one before it (crossing rekeys make two at once).
const KEPT_SUPERSEDED: usize = 2;
/// Pairs and Quick Modes a peer may hold when it starts a rekey: each of
/// [`PAIR_LIMIT`] proxies with its current pair, its superseded ones and
/// the rekey under way.
const REKEY_CEILING: usize = (1 + KEPT_SUPERSEDED + 1) * PAIR_LIMIT;
/// Half-open (responder, not yet authenticated) ISAKMP SAs kept at most.
const HALF_OPEN_LIMIT: usize = 256;
/// R-U-THERE retries before the peer is declared dead.
const DPD_RETRIES: u32 = 5;
/// Nonce length (IOS and strongSwan both use 32 octets... or 20; any
/// 8-256 is valid).
const NONCE_LEN: usize = 32;

/// What the engine asks its driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send `data` from `local` to `remote`.
    Send {
        local: SocketAddr,
        remote: SocketAddr,
        data: Vec<u8>,
    },
    /// Install a negotiated pair and point the entry's flows inside
    /// `proxy` (local → remote) at the outbound SA.
    Install {
        tag: PolicyTag,
        proxy: TrafficSelector,
        inbound: Box<SaParams>,
        outbound: Box<SaParams>,
        /// The inbound SA went in already ([`Output::InstallInbound`]).
        inbound_ready: bool,
        /// The outbound SA the pair replaces, when the flows must stay on
        /// it until it goes: an IKEv2 responder's rekeyed pair, whose
        /// initiator installs its new inbound SA only when our answer
        /// arrives, and deletes the old pair once it has.
        keep_sending_on: Option<u32>,
    },
    /// Install only this inbound SA: a responder's, when it sends QM2, so
    /// the initiator may use the pair as soon as it has sent QM3. Removed
    /// with `Delete { outbound_spi: 0, .. }` if Quick Mode then fails.
    InstallInbound(Box<SaParams>),
    /// Remove a pair (peer's delete, expiry, `clear crypto sa`, dead peer).
    Delete { inbound_spi: u32, outbound_spi: u32 },
    /// Remove a pair a rekey replaced: its outbound SA now, its inbound
    /// SA a little later, for the packets the peer sent on it before it
    /// moved to the new pair ([`crate::installer::RETIRE_GRACE`]).
    Retire { inbound_spi: u32, outbound_spi: u32 },
    /// The peer's NAT moved it to another UDP port (RFC 7296 §2.23, RFC
    /// 3947 §7: an authenticated, fresh IKE message or ESP came from
    /// there): the pair's outbound SA sends its ESP-in-UDP to `port` from
    /// now on.
    PeerPort { outbound_spi: u32, port: u16 },
    /// Send a NAT keepalive (RFC 3948 §2.3) from the NAT-T socket.
    Keepalive {
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A `debug crypto isakmp` line.
    Log(String),
}

/// Counters for every way an exchange can fail or a message be dropped
/// (`show crypto isakmp stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub sent: u64,
    pub retransmitted: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub unknown_cookies: u64,
    pub unsupported_exchange: u64,
    pub unexpected_message: u64,
    pub decrypt_failed: u64,
    pub hash_mismatch: u64,
    pub no_preshared_key: u64,
    pub no_proposal_chosen: u64,
    pub invalid_id: u64,
    pub invalid_key_exchange: u64,
    pub half_open_limit: u64,
    /// Quick Modes refused because their peer's address holds
    /// [`PAIR_LIMIT`] pairs and negotiations.
    pub pair_limit: u64,
    pub retransmit_limit: u64,
    pub dpd_dead: u64,
    pub phase1_established: u64,
    pub phase2_established: u64,
    pub deletes_received: u64,
    pub notifies_received: u64,
    /// Tunnel Endpoint Discovery: probes sent (first sends).
    pub ted_probes_sent: u64,
    /// Acquires dropped because a probe for the entry and destination
    /// was in flight (or too many were).
    pub ted_rate_limited: u64,
    /// Acquires dropped while their destination was held down after a
    /// probe got no answer.
    pub ted_held_down: u64,
    /// Probes given up after their last send.
    pub ted_probe_timeouts: u64,
    /// Other gateways' probes answered.
    pub ted_probes_answered: u64,
    /// Other gateways' probes not answered: over the answer rate limit.
    pub ted_answers_rate_limited: u64,
    /// Other gateways' probes not answered: their sender is over its
    /// share of the answer rate limit.
    pub ted_answers_source_limited: u64,
    /// Other gateways' probes no discover entry of ours covers.
    pub ted_probes_refused: u64,
    /// Responses that match no probe of ours (id, nonce, addresses).
    pub ted_responses_forged: u64,
    /// Responses whose proxies do not mirror the probed ones.
    pub ted_proxy_mismatch: u64,
    /// Peers discovered (IKE started with them).
    pub ted_peers_discovered: u64,
    /// Local addresses that went away (DHCP re-lease) with SAs bound to
    /// them, which were removed.
    pub local_addresses_lost: u64,
    /// SA pairs of a dynamic-map entry deleted because the same proxy
    /// identities were negotiated from another peer address or port.
    pub stale_pairs_replaced: u64,
    /// Rekeys of ours that failed and were scheduled again
    /// ([`REKEY_RETRY`]).
    pub rekeys_failed: u64,
}

impl Stats {
    /// `name value` lines, in a stable order.
    pub fn lines(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("packets received", self.received),
            ("packets sent", self.sent),
            ("retransmissions", self.retransmitted),
            ("duplicate requests answered", self.duplicates),
            ("malformed packets dropped", self.malformed),
            ("unknown cookies dropped", self.unknown_cookies),
            ("unsupported exchanges dropped", self.unsupported_exchange),
            ("unexpected messages dropped", self.unexpected_message),
            (
                "decryption failures (wrong pre-shared key?)",
                self.decrypt_failed,
            ),
            ("hash/authentication failures", self.hash_mismatch),
            ("no pre-shared key for peer", self.no_preshared_key),
            ("no proposal chosen", self.no_proposal_chosen),
            ("proxy identities refused", self.invalid_id),
            ("bad key exchange values", self.invalid_key_exchange),
            ("half-open limit: oldest dropped", self.half_open_limit),
            (
                "quick modes refused: peer at its SA pair limit",
                self.pair_limit,
            ),
            ("retransmission limit reached", self.retransmit_limit),
            ("peers declared dead (DPD)", self.dpd_dead),
            ("phase 1 SAs established", self.phase1_established),
            ("phase 2 SA pairs established", self.phase2_established),
            ("deletes received", self.deletes_received),
            ("notifications received", self.notifies_received),
            ("TED probes sent", self.ted_probes_sent),
            ("TED probes rate-limited", self.ted_rate_limited),
            ("TED acquires held down", self.ted_held_down),
            ("TED probes unanswered", self.ted_probe_timeouts),
            ("TED probes answered", self.ted_probes_answered),
            (
                "TED probes over the answer rate limit (dropped)",
                self.ted_answers_rate_limited,
            ),
            (
                "TED probes over the per-source answer limit (dropped)",
                self.ted_answers_source_limited,
            ),
            ("TED probes not ours (dropped)", self.ted_probes_refused),
            (
                "TED responses matching no probe (dropped)",
                self.ted_responses_forged,
            ),
            (
                "TED responses with mismatched proxies (dropped)",
                self.ted_proxy_mismatch,
            ),
            ("TED peers discovered", self.ted_peers_discovered),
            (
                "local addresses lost with SAs (SAs removed)",
                self.local_addresses_lost,
            ),
            (
                "SA pairs replaced by a peer at a new address",
                self.stale_pairs_replaced,
            ),
            ("phase 2 rekeys failed (retried)", self.rekeys_failed),
        ]
    }
}

/// One installed pair, as `show crypto ipsec sa` and rekeying need it.
#[derive(Debug, Clone)]
pub struct PairInfo {
    pub tag: PolicyTag,
    pub proxy: TrafficSelector,
    pub local: IpAddr,
    pub peer: IpAddr,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
}

impl PairInfo {
    /// The SPI of the pair's SA in `direction`.
    pub fn spi(&self, direction: Direction) -> u32 {
        match direction {
            Direction::Inbound => self.inbound_spi,
            Direction::Outbound => self.outbound_spi,
        }
    }
}

/// A message sent that waits for an answer.
#[derive(Debug, Clone)]
struct Flight {
    data: Vec<u8>,
    attempts: u32,
    next_at: Instant,
}

impl Flight {
    fn new(now: Instant, data: Vec<u8>) -> Flight {
        Flight {
            data,
            attempts: 0,
            next_at: now + RETRANSMIT_BASE,
        }
    }
}

/// Main Mode progress, named as IOS names the states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P1State {
    /// Initiator sent MM1 and waits for MM2.
    I1,
    /// Initiator sent MM3 and waits for MM4.
    I3,
    /// Initiator sent MM5 and waits for MM6.
    I5,
    /// Responder sent MM2 and waits for MM3.
    R2,
    /// Responder sent MM4 and waits for MM5.
    R4,
    /// Aggressive Mode initiator sent AM1 and waits for AM2.
    AmI1,
    /// Aggressive Mode responder sent AM2 and waits for AM3.
    AmR2,
    /// Authenticated: Quick Mode and informational exchanges may run.
    Established,
}

impl P1State {
    fn ios_name(self) -> &'static str {
        match self {
            P1State::I1 => "MM_NO_STATE",
            P1State::I3 | P1State::R2 => "MM_SA_SETUP",
            P1State::I5 | P1State::R4 => "MM_KEY_EXCH",
            P1State::AmI1 | P1State::AmR2 => "AG_INIT_EXCH",
            P1State::Established => "QM_IDLE",
        }
    }
}

/// One ISAKMP SA (negotiating or established).
struct Phase1 {
    conn_id: u32,
    initiator: bool,
    local: SocketAddr,
    remote: SocketAddr,
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    state: P1State,
    choice: Option<Phase1Choice>,
    prf: Prf,
    /// The initiator's SA payload body (both HASHes cover it).
    sai_b: Vec<u8>,
    psk: Zeroizing<Vec<u8>>,
    dh: Option<DhPrivate>,
    g_xi: Vec<u8>,
    g_xr: Vec<u8>,
    ni_b: Vec<u8>,
    nr_b: Vec<u8>,
    keys: Option<Phase1Keys>,
    cipher: Option<IsakmpCipher>,
    /// The CBC chain of Main Mode; after MM6, the last Phase 1 block.
    iv: Vec<u8>,
    flight: Option<Flight>,
    /// The last message received that we answered, and the answer: a
    /// duplicate of it gets the answer again.
    answered: Vec<u8>,
    reply: Vec<u8>,
    established_at: Option<Instant>,
    expires_at: Option<Instant>,
    peer_dpd: bool,
    /// The highest R-U-THERE sequence number the peer sent: only a higher
    /// one is fresh enough to follow a new NAT mapping (a replayed one
    /// verifies too).
    peer_dpd_seq: Option<u32>,
    /// The NAT traversal version both sides announced, if any.
    natt: Option<UdpEncapStyle>,
    /// NAT-D showed a NAT between us (either side): IKE moved to the NAT-T
    /// port and ESP is UDP-encapsulated.
    nat_detected: bool,
    /// We are the side behind the NAT: we send NAT keepalives.
    behind_nat: bool,
    next_keepalive: Option<Instant>,
    /// Aggressive Mode: the initiator's IDii body (HASH_I covers it).
    aggressive_id: Vec<u8>,
    last_heard: Instant,
    dpd_seq: u32,
    /// The R-U-THERE waiting for its ACK.
    dpd_pending: Option<DpdProbe>,
    next_dpd: Option<Instant>,
    /// Message IDs of the peer's authentic QM1s on this SA, newest last
    /// (at most [`SEEN_QM_IDS`]): a Quick Mode is forgotten
    /// [`QM_LINGER`] after it ends, and a QM1 captured and sent again
    /// after that would verify and be negotiated anew (a DH computation
    /// and an inbound SA installed per replay).
    peer_qm_ids: VecDeque<u32>,
}

/// An R-U-THERE of ours waiting for its ACK (RFC 3706 §5).
#[derive(Debug, Clone, Copy)]
struct DpdProbe {
    seq: u32,
    /// Retries sent so far.
    tries: u32,
    retry_at: Instant,
    /// When the first R-U-THERE of this sequence went out.
    since: Instant,
}

impl Phase1 {
    /// Counted by [`Engine::half_open`].
    fn is_half_open(&self) -> bool {
        !self.initiator && self.state != P1State::Established
    }

    fn matches(&self, h: &Header) -> bool {
        self.cky_i == h.initiator_cookie
            && (self.cky_r == h.responder_cookie
                || (self.initiator
                    && matches!(self.state, P1State::I1 | P1State::AmI1)
                    && self.cky_r == [0; 8]))
    }

    fn cookies(&self) -> Vec<u8> {
        [self.cky_i, self.cky_r].concat()
    }

    /// A record with nothing negotiated yet, for the constructors of each
    /// exchange to fill in (`Phase1 { .., ..Phase1::blank(now) }`).
    fn blank(now: Instant) -> Phase1 {
        let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
        Phase1 {
            conn_id: 0,
            initiator: false,
            local: nowhere,
            remote: nowhere,
            cky_i: [0; 8],
            cky_r: [0; 8],
            state: P1State::I1,
            choice: None,
            prf: Prf::HmacSha1,
            sai_b: Vec::new(),
            psk: Zeroizing::new(Vec::new()),
            dh: None,
            g_xi: Vec::new(),
            g_xr: Vec::new(),
            ni_b: Vec::new(),
            nr_b: Vec::new(),
            keys: None,
            cipher: None,
            iv: Vec::new(),
            flight: None,
            answered: Vec::new(),
            reply: Vec::new(),
            established_at: None,
            expires_at: None,
            peer_dpd: false,
            peer_dpd_seq: None,
            natt: None,
            nat_detected: false,
            behind_nat: false,
            next_keepalive: None,
            aggressive_id: Vec::new(),
            last_heard: now,
            dpd_seq: u32::from_be_bytes(random()) >> 1,
            dpd_pending: None,
            next_dpd: None,
            peer_qm_ids: VecDeque::new(),
        }
    }

    /// What HASH_I and HASH_R cover besides the identity.
    fn transcript(&self) -> Phase1Transcript<'_> {
        Phase1Transcript {
            g_xi: &self.g_xi,
            g_xr: &self.g_xr,
            cky_i: &self.cky_i,
            cky_r: &self.cky_r,
            sai_b: &self.sai_b,
        }
    }

    fn skeyid_a(&self) -> &[u8] {
        self.keys.as_ref().map_or(&[], |k| &k.skeyid_a)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QmState {
    /// Initiator sent QM1, waits for QM2.
    SentQm1,
    /// Responder sent QM2, waits for QM3.
    SentQm2,
    /// Finished; kept to answer retransmissions.
    Done,
}

/// One Quick Mode exchange.
struct QuickMode {
    cky_i: [u8; 8],
    cky_r: [u8; 8],
    msg_id: u32,
    initiator: bool,
    state: QmState,
    entry: usize,
    proxy: TrafficSelector,
    iv: Vec<u8>,
    spi_in: u32,
    spi_out: u32,
    ni_b: Vec<u8>,
    nr_b: Vec<u8>,
    dh: Option<DhPrivate>,
    g_qm_xy: Option<Zeroizing<Vec<u8>>>,
    choice: Option<Phase2Choice>,
    /// What the initiator proposed (its IDs are echoed by the responder).
    ids: Option<(Identification, Identification)>,
    flight: Option<Flight>,
    answered: Vec<u8>,
    reply: Vec<u8>,
    done_at: Option<Instant>,
}

/// An installed pair.
struct Pair {
    info: PairInfo,
    /// The peer's IKE address and port when the pair was negotiated (the
    /// NAT's port for a peer behind one): two peers behind one NAT, or
    /// one peer before and after its NAT mapping changed, differ here.
    remote: SocketAddr,
    entry: usize,
    /// A newer pair for the same entry and proxy replaced this one.
    superseded: bool,
    rekeying: bool,
    /// The inbound SPI of the pair this one superseded when it was
    /// installed: it takes over again if the dataplane refuses this one.
    replaces: Option<u32>,
    /// We initiated the Quick Mode that made it.
    ours: bool,
    /// The cookies of the ISAKMP SA that negotiated it: a NAT mapping
    /// that SA follows moves this pair too. Outlives that SA (then the
    /// pair follows only its own ESP).
    owner: ([u8; 8], [u8; 8]),
    /// A NAT in front of the peer (not of us) when it was negotiated:
    /// the pair may follow the peer's ESP to a new port.
    peer_natted: bool,
}

/// What an ISAKMP SA is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum P1Key {
    /// The peer's address: a message's source, a negotiation's or a
    /// delete's peer. A NAT mapping that moves changes the port only.
    Peer(IpAddr),
    /// The initiator's cookie (the responder's is not known to an
    /// initiator until MM2 or AM2).
    Cookie([u8; 8]),
}

impl Keyed for Phase1 {
    type Key = P1Key;
    fn keys(&self) -> impl IntoIterator<Item = P1Key> {
        [P1Key::Peer(self.remote.ip()), P1Key::Cookie(self.cky_i)]
    }
}

/// What a Quick Mode is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum QmKey {
    /// A message's exchange: the ISAKMP SA's cookies and the Message ID.
    Exchange([u8; 8], [u8; 8], u32),
    /// The Quick Modes under one ISAKMP SA.
    Isakmp([u8; 8], [u8; 8]),
    /// Message IDs in use (a new one must not be).
    MsgId(u32),
    /// The negotiations of one map entry and proxy.
    Proxy(usize, TrafficSelector),
}

impl Keyed for QuickMode {
    type Key = QmKey;
    fn keys(&self) -> impl IntoIterator<Item = QmKey> {
        [
            QmKey::Exchange(self.cky_i, self.cky_r, self.msg_id),
            QmKey::Isakmp(self.cky_i, self.cky_r),
            QmKey::MsgId(self.msg_id),
            QmKey::Proxy(self.entry, self.proxy),
        ]
    }
}

/// What a pair is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PairKey {
    Peer(IpAddr),
    Inbound(u32),
    Outbound(u32),
    /// The pairs of one map entry and proxy.
    Proxy(PolicyTag, TrafficSelector),
    /// The same by the entry's place in the policy the pair was
    /// negotiated under (a reload may have moved or removed the entry).
    Entry(usize, TrafficSelector),
    /// The pairs an ISAKMP SA negotiated.
    Owner([u8; 8], [u8; 8]),
}

impl Keyed for Pair {
    type Key = PairKey;
    fn keys(&self) -> impl IntoIterator<Item = PairKey> {
        [
            PairKey::Peer(self.info.peer),
            PairKey::Inbound(self.info.inbound_spi),
            PairKey::Outbound(self.info.outbound_spi),
            PairKey::Proxy(self.info.tag, self.info.proxy),
            PairKey::Entry(self.entry, self.info.proxy),
            PairKey::Owner(self.owner.0, self.owner.1),
        ]
    }
}

/// An acquire waiting for its ISAKMP SA.
struct Pending {
    entry: usize,
    proxy: TrafficSelector,
    local: IpAddr,
    peer: IpAddr,
}

/// The IKEv1 state machine for every peer.
pub struct Engine {
    policy: Ikev1Policy,
    /// ISAKMP SAs, found by the peer's address.
    p1: Table<Phase1>,
    /// Quick Modes, kept [`QM_LINGER`] after they finish.
    qm: Table<QuickMode>,
    pairs: Table<Pair>,
    /// Responder ISAKMP SAs not yet established ([`Engine::half_open`]).
    half_open_count: usize,
    /// Responder ISAKMP SAs by arrival (row, connection id), oldest
    /// first, so that at [`HALF_OPEN_LIMIT`] the oldest half-open one
    /// makes room ([`Engine::evict_oldest_half_open`]). Entries of SAs
    /// established or gone since are skipped there, and pruned when the
    /// queue passes four times the limit.
    half_open_order: VecDeque<(RowId, u32)>,
    pending: Vec<Pending>,
    hold_down: Vec<(PolicyTag, TrafficSelector, Instant)>,
    /// Pairs (by inbound SPI) whose failed rekey is to be tried again,
    /// and when.
    rekey_retries: Vec<(Instant, u32)>,
    /// TED probes in flight.
    probes: Vec<ted::Probe>,
    /// Destinations whose probe went unanswered, per entry, until when.
    ted_hold: Vec<(PolicyTag, IpAddr, Instant)>,
    /// Probes answered in the current one-second window.
    ted_answers: Option<ted::AnswerWindow>,
    out: VecDeque<Output>,
    next_conn_id: u32,
    stats: Stats,
    ike_port: u16,
    nat_t_port: u16,
    spis: SpiAllocator,
}

/// Where a Main or Aggressive Mode message goes ([`Engine::phase1_step`]).
enum Phase1Step {
    /// The initiator's first message of a new exchange.
    First,
    /// The next message of the exchange at this index.
    Next(RowId),
    /// Answered again (a duplicate) or dropped (unknown cookies).
    Handled,
}

/// Why an incoming message was dropped (counted, logged, no answer).
enum Drop {
    Malformed(String),
    Unexpected(&'static str),
    Decrypt,
    Hash(&'static str),
}

fn prf_of(h: IkeHash) -> Prf {
    match h {
        IkeHash::Md5 => Prf::HmacMd5,
        IkeHash::Sha1 => Prf::HmacSha1,
        IkeHash::Sha256 => Prf::HmacSha256,
        IkeHash::Sha384 => Prf::HmacSha384,
        IkeHash::Sha512 => Prf::HmacSha512,
    }
}

fn body(p: &Payload) -> Vec<u8> {
    let mut v = Vec::new();
    // Encoding a payload we built or decoded cannot fail for the kinds
    // the engine hashes (ID, SA); an empty body would only fail the hash.
    let _ = p.encode_body(&mut v);
    v
}

/// The raw bodies of a payload chain (for the hashes, which cover bytes
/// exactly as sent).
fn raw_bodies(first: PayloadType, data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut w = Walker::new(first.0, data);
    let mut out = Vec::new();
    while let Ok(Some(p)) = w.next_payload() {
        out.push((p.payload_type, p.body));
    }
    out
}

/// The NAT traversal version a peer's vendor IDs announce: RFC 3947 if
/// it names it, otherwise the drafts if it names one of them.
fn natt_announced(payloads: &[Payload]) -> Option<UdpEncapStyle> {
    let vids: Vec<KnownVendor> = payloads
        .iter()
        .filter_map(|p| match p {
            Payload::VendorId(v) => KnownVendor::identify(v),
            _ => None,
        })
        .collect();
    if vids.contains(&KnownVendor::NatTraversalRfc3947) {
        Some(UdpEncapStyle::Rfc3947)
    } else if vids.iter().any(|v| v.is_nat_traversal()) {
        Some(UdpEncapStyle::Draft)
    } else {
        None
    }
}

/// The vendor ID that announces `style`.
fn natt_vid(style: UdpEncapStyle) -> Payload {
    Payload::VendorId(
        match style {
            UdpEncapStyle::Rfc3947 => KnownVendor::NatTraversalRfc3947,
            UdpEncapStyle::Draft => KnownVendor::NatTraversalDraft02N,
        }
        .id()
        .to_vec(),
    )
}

/// NAT-D = HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash
/// (RFC 3947 §3.2).
fn nat_d(prf: Prf, cky_i: &[u8; 8], cky_r: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    prf.hash(&[cky_i, cky_r, &ip, &addr.port().to_be_bytes()])
}

fn phase1_id(local: IpAddr) -> Identification {
    Identification {
        protocol: 17,
        port: 500,
        identity: match local {
            IpAddr::V4(a) => Identity::Ipv4(a),
            IpAddr::V6(a) => Identity::Ipv6(a),
        },
    }
}

fn within(inner: &TrafficSelector, outer: &TrafficSelector) -> bool {
    crate::config::compile::intersect(inner, outer).as_ref() == Some(inner)
}

fn fmt_sel(t: &TrafficSelector) -> String {
    format!(
        "{}/{}/{}/{}",
        t.src.addr(),
        t.src.prefix_len(),
        t.proto.unwrap_or(0),
        if t.src_ports.lo == t.src_ports.hi {
            t.src_ports.lo
        } else {
            0
        }
    )
}

impl Engine {
    pub fn new(policy: Ikev1Policy) -> Engine {
        Engine {
            policy,
            p1: Table::new(),
            qm: Table::new(),
            pairs: Table::new(),
            half_open_count: 0,
            half_open_order: VecDeque::new(),
            pending: Vec::new(),
            hold_down: Vec::new(),
            rekey_retries: Vec::new(),
            probes: Vec::new(),
            ted_hold: Vec::new(),
            ted_answers: None,
            out: VecDeque::new(),
            next_conn_id: 1001,
            stats: Stats::default(),
            ike_port: 500,
            nat_t_port: 4500,
            spis: SpiAllocator::new(SpiSpace::Ikev1),
        }
    }

    /// The ports peers are reached on (500 and 4500; tests use others).
    pub fn set_ports(&mut self, ike: u16, nat_t: u16) {
        self.ike_port = ike;
        self.nat_t_port = nat_t;
    }

    /// A new configuration: established SAs stay, new negotiations use it.
    pub fn set_policy(&mut self, policy: Ikev1Policy) {
        self.policy = policy;
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn log(&mut self, line: String) {
        self.out.push_back(Output::Log(line));
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        self.stats.sent += 1;
        let sender = self
            .p1
            .with(&P1Key::Peer(remote.ip()))
            .find(|(_, p)| p.local == local && p.remote == remote);
        if let Some((_, p)) = sender {
            let line = format!(
                "ISAKMP:({}):sending packet to {} my_port {} peer_port {} ({}) {}",
                p.conn_id,
                remote.ip(),
                local.port(),
                remote.port(),
                if p.initiator { "I" } else { "R" },
                p.state.ios_name()
            );
            self.log(line);
        }
        self.out.push_back(Output::Send {
            local,
            remote,
            data,
        });
    }

    /// Adds an ISAKMP SA (every one goes in through here).
    fn push_p1(&mut self, p: Phase1) -> RowId {
        let (half_open, conn) = (p.is_half_open(), p.conn_id);
        self.half_open_count += usize::from(half_open);
        let i = self.p1.push(p);
        if half_open {
            self.half_open_order.push_back((i, conn));
            if self.half_open_order.len() > 4 * HALF_OPEN_LIMIT {
                let p1 = &self.p1;
                self.half_open_order.retain(|&(i, conn)| {
                    p1.get(i)
                        .is_some_and(|p| p.conn_id == conn && p.is_half_open())
                });
            }
        }
        i
    }

    /// Drops the oldest half-open responder SA other than `except`, for a
    /// first message (MM1, AM1) that finds [`HALF_OPEN_LIMIT`] of them
    /// waiting. Dropping the new message instead let anyone who sends
    /// first messages from spoofed addresses (each half-open SA lives
    /// ~30 s of retransmissions) keep every real peer out with ~9 packets
    /// a second; now a real peer's exchange, which takes well under a
    /// second, only needs its SA not to be the oldest of 256 that long.
    fn evict_oldest_half_open(&mut self, now: Instant, except: Option<RowId>) {
        self.stats.half_open_limit += 1;
        let mut kept = None;
        while let Some((i, conn)) = self.half_open_order.pop_front() {
            let waiting = self
                .p1
                .get(i)
                .is_some_and(|p| p.conn_id == conn && p.is_half_open());
            if !waiting {
                continue;
            }
            if Some(i) == except {
                kept = Some((i, conn));
                continue;
            }
            self.delete_isakmp(now, i, false);
            break;
        }
        if let Some(entry) = kept {
            self.half_open_order.push_front(entry);
        }
    }

    /// Removes an ISAKMP SA (every one goes out through here).
    fn remove_p1(&mut self, i: RowId) -> Option<Phase1> {
        let p = self.p1.remove(i)?;
        self.half_open_count -= usize::from(p.is_half_open());
        Some(p)
    }

    /// Responder ISAKMP SAs not established yet, which
    /// [`HALF_OPEN_LIMIT`] caps: counted as they come and go, since a hub
    /// holds many established ones and a first message must not walk
    /// them all.
    fn half_open(&self) -> usize {
        debug_assert_eq!(
            self.half_open_count,
            self.p1.iter().filter(|p| p.is_half_open()).count()
        );
        self.half_open_count
    }

    fn alloc_conn_id(&mut self) -> u32 {
        let id = self.next_conn_id;
        self.next_conn_id = self.next_conn_id.wrapping_add(1).max(1001);
        id
    }

    /// A fresh inbound SPI: from IKEv1's half of the space (the IKEv2
    /// engine has the other), held by none of our pairs or Quick Modes.
    fn alloc_spi(&self) -> u32 {
        self.spis.alloc(|| {
            let pairs = self.pairs.iter().map(|p| p.info.inbound_spi);
            pairs
                .chain(self.qm.iter().map(|q| q.spi_in))
                .collect::<Vec<_>>()
        })
    }

    /// The next inbound SPI [`Engine::alloc_spi`] hands out (tests).
    #[cfg(test)]
    pub(crate) fn force_next_spi(&mut self, spi: u32) {
        self.spis.force_next(spi);
    }

    // ----- acquires, expiry, clear -------------------------------------

    /// A packet for `flow` hit entry `tag` with no SA: negotiate one, as
    /// IOS does on the first packet.
    pub fn acquire(&mut self, now: Instant, tag: PolicyTag, flow: FlowKey) {
        let Some(entry) = self.entry_of(tag) else {
            return;
        };
        let e = &self.policy.maps[entry];
        let Some(proxy) = e.selectors.iter().find(|s| s.matches(&flow)).copied() else {
            return;
        };
        let peer = e
            .peers
            .iter()
            .find(|p| p.is_ipv4() == e.local.is_ipv4())
            .copied();
        let discover = e.discover;
        let local = e.local;
        self.hold_down.retain(|h| h.2 > now);
        if self.hold_down.iter().any(|h| h.0 == tag && h.1 == proxy) {
            return;
        }
        let Some(peer) = peer else {
            if discover {
                // Tunnel Endpoint Discovery: find the peer first.
                self.ted_acquire(now, entry, proxy, flow);
            }
            // Otherwise a dynamic entry: only peers start negotiations.
            return;
        };
        let busy = self
            .pairs
            .with(&PairKey::Proxy(tag, proxy))
            .any(|(_, p)| !p.superseded)
            || self
                .qm
                .with(&QmKey::Proxy(entry, proxy))
                .any(|(_, q)| q.state != QmState::Done)
            || self
                .pending
                .iter()
                .any(|p| p.entry == entry && p.proxy == proxy);
        if busy {
            return;
        }
        self.log(format!(
            "IPSEC(sa_request): ,\n  (key eng. msg.) OUTBOUND local= {}:0, remote= {}:0,\n    local_proxy= {},\n    remote_proxy= {}",
            local,
            peer,
            fmt_sel(&proxy),
            fmt_sel(&TrafficSelector { src: proxy.dst, src_ports: proxy.dst_ports, ..proxy })
        ));
        self.negotiate(now, entry, proxy, local, peer);
    }

    /// Starts Quick Mode over an established ISAKMP SA with `peer`, or
    /// Main Mode first.
    fn negotiate(
        &mut self,
        now: Instant,
        entry: usize,
        proxy: TrafficSelector,
        local: IpAddr,
        peer: IpAddr,
    ) {
        if let Some(i) = self.p1.find(&P1Key::Peer(peer), |p| {
            p.state == P1State::Established && p.local.ip() == local
        }) {
            self.start_quick_mode(now, i, entry, proxy);
            return;
        }
        self.pending.push(Pending {
            entry,
            proxy,
            local,
            peer,
        });
        let negotiating = self
            .p1
            .with(&P1Key::Peer(peer))
            .any(|(_, p)| p.initiator && p.local.ip() == local);
        if !negotiating {
            if self.policy.aggressive {
                self.start_aggressive_mode(now, local, peer);
            } else {
                self.start_main_mode(now, local, peer);
            }
        }
    }

    /// The dataplane says an SA passed its soft (rekey) or hard (delete)
    /// lifetime. The direction matters: an outbound SPI is the peer's
    /// choice and may equal the inbound SPI of another pair.
    pub fn sa_expired(&mut self, now: Instant, direction: Direction, spi: u32, hard: bool) {
        let key = match direction {
            Direction::Inbound => PairKey::Inbound(spi),
            Direction::Outbound => PairKey::Outbound(spi),
        };
        let Some(i) = self.pairs.find(&key, |_| true) else {
            return;
        };
        if hard {
            self.delete_pair(now, i, "lifetime expired, deleting SA pair (sa)");
            return;
        }
        let p = &self.pairs[i];
        if p.superseded || p.rekeying {
            return;
        }
        let Some(entry) = self.entry_of(p.info.tag) else {
            // The entry went with a reload: the pair lives out its lifetime.
            return;
        };
        let peer = p.info.peer;
        self.log(format!(
            "IPSEC(sa_request): rekeying {:#010x} with {peer} before it expires",
            spi
        ));
        self.start_rekey(now, i, entry);
    }

    /// Where the map entry `tag` is in the policy as it is now (a reload
    /// may have moved it since a pair or negotiation was made under it).
    fn entry_of(&self, tag: PolicyTag) -> Option<usize> {
        self.policy.maps.iter().position(|m| m.tag == tag)
    }

    /// Negotiates a successor for pair `i` under map entry `entry`.
    fn start_rekey(&mut self, now: Instant, i: RowId, entry: usize) {
        let p = &mut self.pairs[i];
        p.rekeying = true;
        let (proxy, local, peer) = (p.info.proxy, p.info.local, p.info.peer);
        self.negotiate(now, entry, proxy, local, peer);
    }

    /// The driver could not install the pair with inbound SPI
    /// `inbound_spi` (the dataplane refused it: another peer's SA has the
    /// same outbound SPI). It goes, and the peer is told, so that it
    /// negotiates again with other SPIs instead of sending into an SA we
    /// do not have. If it was to replace a pair, that pair is current
    /// again (the dataplane still uses it) and, if the replacement was our
    /// rekey, rekeyed again in [`REKEY_RETRY`] (a peer's rekey is the
    /// peer's to try again).
    pub fn pair_refused(&mut self, now: Instant, inbound_spi: u32) {
        let Some(i) = self.pairs.find(&PairKey::Inbound(inbound_spi), |_| true) else {
            return;
        };
        let (replaced, ours) = (self.pairs[i].replaces, self.pairs[i].ours);
        self.delete_pair(now, i, "the dataplane refused it, deleting SA pair");
        let Some(old) = replaced.and_then(|spi| self.pairs.find(&PairKey::Inbound(spi), |_| true))
        else {
            return;
        };
        self.pairs[old].superseded = false;
        if ours && self.pairs[old].rekeying {
            self.rekey_later(now, old);
        }
    }

    /// A negotiation of ours for `proxy` of map entry `entry` ended
    /// without a pair: a current pair it was to rekey is rekeyed again
    /// later ([`Engine::rekey_later`]).
    fn rekey_failed(&mut self, now: Instant, entry: usize, proxy: TrafficSelector) {
        // By tag when the entry is still there (a pair keeps the index it
        // was negotiated under, which a reload may have moved).
        let key = match self.policy.maps.get(entry) {
            Some(e) => PairKey::Proxy(e.tag, proxy),
            None => PairKey::Entry(entry, proxy),
        };
        for k in self.pairs.ids_with(&key) {
            if self.pairs[k].rekeying && !self.pairs[k].superseded {
                self.rekey_later(now, k);
            }
        }
    }

    /// Our rekey of pair `i` failed: it stays in use, and is rekeyed
    /// again in [`REKEY_RETRY`] (until it is, or its hard lifetime ends
    /// it).
    fn rekey_later(&mut self, now: Instant, i: RowId) {
        let p = &mut self.pairs[i];
        p.rekeying = false;
        let (spi, peer) = (p.info.inbound_spi, p.info.peer);
        self.rekey_retries.push((now + REKEY_RETRY, spi));
        self.stats.rekeys_failed += 1;
        self.log(format!(
            "IPSEC(sa_request): rekey of {spi:#010x} with {peer} failed, retrying in {} seconds",
            REKEY_RETRY.as_secs()
        ));
    }

    /// Starts the rekeys [`Engine::rekey_later`] scheduled for `now` or
    /// before, of the pairs still current and not being rekeyed.
    fn retry_rekeys(&mut self, now: Instant) {
        if !self.rekey_retries.iter().any(|r| r.0 <= now) {
            return;
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.rekey_retries)
            .into_iter()
            .partition(|r| r.0 <= now);
        self.rekey_retries = later;
        for (_, spi) in due {
            let Some(i) = self.pairs.find(&PairKey::Inbound(spi), |_| true) else {
                continue;
            };
            let p = &self.pairs[i];
            if p.superseded || p.rekeying {
                continue;
            }
            let (proxy, peer) = (p.info.proxy, p.info.peer);
            let Some(entry) = self.entry_of(p.info.tag) else {
                continue;
            };
            let under_way = self
                .qm
                .with(&QmKey::Proxy(entry, proxy))
                .any(|(_, q)| q.initiator && q.state != QmState::Done)
                || self
                    .pending
                    .iter()
                    .any(|p| p.entry == entry && p.proxy == proxy);
            if under_way {
                // A negotiation of ours for the proxy is the rekey: its
                // failure schedules the next try.
                self.pairs[i].rekeying = true;
                continue;
            }
            self.log(format!(
                "IPSEC(sa_request): rekeying {spi:#010x} with {peer} again"
            ));
            self.start_rekey(now, i, entry);
        }
    }

    /// Deletes pair `i` and tells its peer; `why` opens the log line.
    fn delete_pair(&mut self, now: Instant, i: RowId, why: &str) {
        let Some(p) = self.pairs.remove(i) else {
            return;
        };
        self.log(format!(
            "IPSEC(delete_sa): {why} sa_dest= {}, sa_spi= {:#010x}(inbound)/{:#010x}(outbound)",
            p.info.peer, p.info.inbound_spi, p.info.outbound_spi
        ));
        self.send_esp_delete(now, p.info.local, p.info.peer, &[p.info.inbound_spi]);
        self.out.push_back(Output::Delete {
            inbound_spi: p.info.inbound_spi,
            outbound_spi: p.info.outbound_spi,
        });
    }

    /// `clear crypto sa`: every pair deleted, the peers told.
    pub fn clear_sa(&mut self, now: Instant) {
        for p in self.pairs.take_all() {
            self.send_esp_delete(now, p.info.local, p.info.peer, &[p.info.inbound_spi]);
            self.out.push_back(Output::Delete {
                inbound_spi: p.info.inbound_spi,
                outbound_spi: p.info.outbound_spi,
            });
        }
        for q in self.qm.take_all() {
            self.drop_qm(now, q);
        }
        self.pending.clear();
        self.rekey_retries.clear();
        self.probes.clear();
        self.ted_hold.clear();
    }

    /// Sends a DELETE over every established ISAKMP SA naming `protocol`
    /// SA `spi`, whatever it is: what a confused or hostile peer may send.
    #[cfg(test)]
    pub fn send_delete(&mut self, now: Instant, protocol: ProtocolId, spi: Vec<u8>) {
        for i in self.p1.ids() {
            if self.p1[i].state == P1State::Established {
                let d = Delete {
                    doi: 1,
                    protocol,
                    spi_size: spi.len() as u8,
                    spis: vec![spi.clone()],
                };
                self.send_informational(now, i, Payload::Delete(d));
            }
        }
    }

    /// `clear crypto isakmp`: every ISAKMP SA deleted, the peers told;
    /// IPsec SAs stay (as in IOS).
    pub fn clear_isakmp(&mut self, now: Instant) {
        for i in self.p1.ids().into_iter().rev() {
            self.delete_isakmp(now, i, true);
        }
        for p in std::mem::take(&mut self.pending) {
            self.rekey_failed(now, p.entry, p.proxy);
        }
    }

    /// Our address `addr` is gone (the outside interface was re-leased a
    /// new one, or lost it): nothing bound to it can be used any more.
    /// Its ISAKMP SAs, Quick Modes, waiting acquires and SA pairs are
    /// removed without telling the peers (nothing can be sent from the
    /// address), so the next packet negotiates from the address the
    /// policy ([`Engine::set_policy`]) names now. Returns how many ISAKMP
    /// SAs and pairs went.
    pub fn local_address_gone(&mut self, now: Instant, addr: IpAddr) -> (usize, usize) {
        let mut isakmp = 0;
        for k in self.p1.ids().into_iter().rev() {
            if self.p1.get(k).is_some_and(|p| p.local.ip() == addr) {
                self.delete_isakmp(now, k, false);
                isakmp += 1;
            }
        }
        self.pending.retain(|p| p.local != addr);
        // Rare (an address lost), so a walk of every pair.
        let gone = self.pairs.remove_where(|p| p.info.local == addr);
        let pairs = gone.len();
        for p in gone {
            self.out.push_back(Output::Delete {
                inbound_spi: p.info.inbound_spi,
                outbound_spi: p.info.outbound_spi,
            });
        }
        if isakmp + pairs > 0 {
            self.stats.local_addresses_lost += 1;
            self.log(format!(
                "ISAKMP: local address {addr} is gone: deleted {isakmp} ISAKMP SA(s) and {pairs} SA pair(s) bound to it"
            ));
        }
        (isakmp, pairs)
    }

    /// A negotiation for `proxy` of map entry `entry` failed: acquires for
    /// it are ignored for [`HOLD_DOWN`], and if it was ours, a pair it was
    /// to rekey is tried again later ([`Engine::rekey_failed`]).
    fn hold_off(&mut self, now: Instant, entry: usize, proxy: TrafficSelector, ours: bool) {
        if let Some(e) = self.policy.maps.get(entry) {
            self.hold_down.push((e.tag, proxy, now + HOLD_DOWN));
        }
        if ours {
            self.rekey_failed(now, entry, proxy);
        }
    }

    /// Forgets a Quick Mode; a responder's inbound SA installed at QM2
    /// goes too if QM3 never came, and a pair our unfinished one was to
    /// rekey is rekeyed again later (its ISAKMP SA went, or it gave up).
    fn drop_qm(&mut self, now: Instant, q: QuickMode) {
        if !q.initiator && q.state == QmState::SentQm2 {
            self.out.push_back(Output::Delete {
                inbound_spi: q.spi_in,
                outbound_spi: 0,
            });
        }
        if q.initiator && q.state != QmState::Done {
            self.rekey_failed(now, q.entry, q.proxy);
        }
    }

    fn delete_isakmp(&mut self, now: Instant, i: RowId, notify: bool) {
        let Some(established) = self.p1.get(i).map(|p| p.state == P1State::Established) else {
            return;
        };
        if notify && established {
            let spi = self.p1[i].cookies();
            let d = Delete {
                doi: 1,
                protocol: ProtocolId::ISAKMP,
                spi_size: 16,
                spis: vec![spi],
            };
            self.send_informational(now, i, Payload::Delete(d));
        }
        let Some(p) = self.remove_p1(i) else {
            return;
        };
        self.log(format!(
            "ISAKMP:({}):deleting SA reason \"{}\" state ({}) {} (peer {})",
            p.conn_id,
            if notify {
                "No reason"
            } else {
                "Death by retransmission/peer"
            },
            if p.initiator { "I" } else { "R" },
            p.state.ios_name(),
            p.remote
        ));
        let (ci, cr) = (p.cky_i, p.cky_r);
        for q in self.qm.remove_with(&QmKey::Isakmp(ci, cr), |_| true) {
            self.drop_qm(now, q);
        }
    }

    // ----- show --------------------------------------------------------

    /// The ISAKMP SAs for `show crypto isakmp sa`.
    pub fn isakmp_sas(&self, now: Instant) -> Vec<IsakmpSaView> {
        self.p1
            .iter()
            .map(|p| {
                let (dst, src) = if p.initiator {
                    (p.remote.ip(), p.local.ip())
                } else {
                    (p.local.ip(), p.remote.ip())
                };
                let c = p.choice;
                IsakmpSaView {
                    conn_id: p.conn_id,
                    dst,
                    src,
                    local: p.local.ip(),
                    remote: p.remote.ip(),
                    state: p.state.ios_name(),
                    status: if p.state == P1State::Established {
                        "ACTIVE"
                    } else {
                        ""
                    },
                    encr: c.map_or(String::new(), |c| match c.cipher {
                        crate::config::ike::IkeCipher::Des => "des".into(),
                        crate::config::ike::IkeCipher::TripleDes => "3des".into(),
                        crate::config::ike::IkeCipher::AesCbc(128) => "aes".into(),
                        crate::config::ike::IkeCipher::AesCbc(b) => format!("aes:{b}"),
                    }),
                    hash: c.map_or(String::new(), |c| match c.hash {
                        IkeHash::Md5 => "md5".into(),
                        IkeHash::Sha1 => "sha".into(),
                        IkeHash::Sha256 => "sha256".into(),
                        IkeHash::Sha384 => "sha384".into(),
                        IkeHash::Sha512 => "sha512".into(),
                    }),
                    group: c.map(|c| c.group.id()),
                    lifetime_remaining: p
                        .expires_at
                        .map(|t| t.saturating_duration_since(now).as_secs()),
                    dpd: p.peer_dpd && self.policy.dpd.is_some(),
                    nat_t: p.nat_detected,
                }
            })
            .collect()
    }

    /// ESP arrived from `peer` (the driver watches the inbound SAs'
    /// counters). With `crypto isakmp keepalive ... on-demand` that is
    /// proof enough that the peer lives: R-U-THERE is only sent when
    /// neither IKE nor ESP came back for the interval, as IOS does.
    /// Periodic DPD ignores it. One call for every peer heard from (a
    /// hub's thousands) walks the ISAKMP SAs once.
    pub fn esp_received(&mut self, now: Instant, peers: &HashSet<IpAddr>) {
        if self.policy.dpd.is_some_and(|d| d.periodic) || peers.is_empty() {
            return;
        }
        for peer in peers {
            for i in self.p1.ids_with(&P1Key::Peer(*peer)) {
                let p = &mut self.p1[i];
                if p.state == P1State::Established {
                    p.last_heard = p.last_heard.max(now);
                }
            }
        }
    }

    /// Authenticated ESP of the pair with `inbound_spi` came from `port` of
    /// its peer (the dataplane's `SaCounts::peer_port`: past the ICV and
    /// the replay window, so neither forged nor replayed): if that is not
    /// the port the pair sends to and a NAT in front of the peer is
    /// between us, the NAT mapped the peer anew; follow it.
    pub fn esp_from_port(&mut self, inbound_spi: u32, port: u16) {
        let Some(k) = self.pairs.find(&PairKey::Inbound(inbound_spi), |_| true) else {
            return;
        };
        let x = &self.pairs[k];
        let old = x.remote;
        // Only through a NAT in front of the peer, not of us (RFC 3947 §7).
        if port == 0 || old.port() == port || !x.peer_natted {
            return;
        }
        let new = SocketAddr::new(old.ip(), port);
        let owner = self.p1.find(&P1Key::Peer(old.ip()), |p| {
            (p.cky_i, p.cky_r) == x.owner && p.state == P1State::Established && p.remote == old
        });
        if let Some(i) = owner {
            // Its ISAKMP SA follows, and with it every pair it negotiated.
            let local = self.p1[i].local;
            self.follow_mapping(i, local, new, "ESP");
            return;
        }
        // Its ISAKMP SA is gone (expired, deleted, rekeyed away) or already
        // elsewhere: the pair moves alone.
        self.pairs[k].remote = new;
        let outbound_spi = self.pairs[k].info.outbound_spi;
        self.out.push_back(Output::PeerPort { outbound_spi, port });
        self.log(format!(
            "ISAKMP: peer {}'s NAT mapping moved from port {} to {port} (ESP): IPsec SA {outbound_spi:#010x} follows",
            old.ip(),
            old.port(),
        ));
    }

    /// ISAKMP SA `i`, whose peer is behind a NAT, heard from `remote` (its
    /// address, another port) in a message that is both authenticated and
    /// fresh: the NAT mapped the peer anew (RFC 3947 §7, RFC 7296 §2.23).
    /// The SA moves there, and so do the pairs it negotiated (other pairs
    /// at the old endpoint, another peer's or an older ISAKMP SA's, follow
    /// their own ESP). Called before any answer is built, so the answer
    /// goes to the new port.
    pub(super) fn follow_mapping(
        &mut self,
        i: RowId,
        local: SocketAddr,
        remote: SocketAddr,
        via: &str,
    ) {
        let p = &self.p1[i];
        if !p.nat_detected
            || p.behind_nat
            || local.port() != self.nat_t_port
            || local.ip() != p.local.ip()
            || remote.ip() != p.remote.ip()
            || remote.port() == p.remote.port()
        {
            return;
        }
        let old = p.remote;
        let me = (p.cky_i, p.cky_r);
        let p = &mut self.p1[i];
        p.remote = remote;
        p.local = local;
        let conn = p.conn_id;
        let mut moved = 0;
        for k in self.pairs.ids_with(&PairKey::Owner(me.0, me.1)) {
            let x = &mut self.pairs[k];
            if x.remote != old {
                continue;
            }
            x.remote = remote;
            self.out.push_back(Output::PeerPort {
                outbound_spi: x.info.outbound_spi,
                port: remote.port(),
            });
            moved += 1;
        }
        self.log(format!(
            "ISAKMP:({conn}):peer {}'s NAT mapping moved from port {} to {} ({via}): ISAKMP SA and {moved} IPsec SA(s) follow",
            remote.ip(),
            old.port(),
            remote.port()
        ));
    }

    /// Tests: behave as if no peer had announced DPD.
    #[cfg(test)]
    pub(crate) fn forget_peer_dpd_for_tests(&mut self) {
        for p in self.p1.iter_mut() {
            p.peer_dpd = false;
        }
    }

    /// Our address and port and the peer's port of the established
    /// ISAKMP SA with `peer` (4500 after NAT-T), if any.
    pub fn endpoints(&self, peer: IpAddr) -> Option<(IpAddr, u16, u16)> {
        self.established_endpoints()
            .find(|(p, _)| *p == peer)
            .map(|(_, e)| e)
    }

    /// [`Engine::endpoints`] of every established ISAKMP SA, with its peer.
    pub fn established_endpoints(&self) -> impl Iterator<Item = (IpAddr, (IpAddr, u16, u16))> + '_ {
        self.p1
            .iter()
            .filter(|p| p.state == P1State::Established)
            .map(|p| {
                (
                    p.remote.ip(),
                    (p.local.ip(), p.local.port(), p.remote.port()),
                )
            })
    }

    /// The installed pairs.
    pub fn pairs(&self) -> impl Iterator<Item = &PairInfo> {
        self.pairs.iter().map(|p| &p.info)
    }

    // ----- timers ------------------------------------------------------

    /// When [`Engine::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let p1 = self.p1.iter().flat_map(|p| {
            [
                p.flight.as_ref().map(|f| f.next_at),
                p.expires_at,
                p.next_dpd,
                p.dpd_pending.map(|d| d.retry_at),
                p.next_keepalive,
            ]
        });
        let qm = self.qm.iter().flat_map(|q| {
            [
                q.flight.as_ref().map(|f| f.next_at),
                q.done_at.map(|t| t + QM_LINGER),
            ]
        });
        let ted = self.probes.iter().map(|p| Some(p.next_at));
        let retries = self.rekey_retries.iter().map(|r| Some(r.0));
        p1.chain(qm).chain(ted).chain(retries).flatten().min()
    }

    /// Runs everything due at `now`: retransmissions, ISAKMP SA expiry,
    /// dead peer detection, forgetting finished Quick Modes, rekeys to
    /// try again.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.ted_timers(now);
        self.retry_rekeys(now);
        // Phase 1 retransmissions and expiry.
        for i in self.p1.ids() {
            // Gone with an earlier one (a dead peer's other SAs).
            if !self.p1.contains(i) {
                continue;
            }
            if self.p1[i].expires_at.is_some_and(|t| t <= now) {
                self.delete_isakmp(now, i, true);
                continue;
            }
            if let Some(f) = &self.p1[i].flight {
                if f.next_at <= now {
                    if f.attempts >= MAX_RETRANSMITS {
                        self.stats.retransmit_limit += 1;
                        let (peer, local) = (self.p1[i].remote.ip(), self.p1[i].local.ip());
                        self.log(format!(
                            "ISAKMP:({}):peer does not answer: retransmission limit reached for {peer}",
                            self.p1[i].conn_id
                        ));
                        self.fail_pending(now, local, peer);
                        self.delete_isakmp(now, i, false);
                        continue;
                    }
                    self.retransmit_p1(now, i);
                }
            }
            self.run_dpd(now, i);
            self.run_keepalive(now, i);
            if self
                .p1
                .get(i)
                .is_some_and(|p| p.dpd_pending.is_some_and(|d| d.tries > DPD_RETRIES))
            {
                self.peer_dead(now, i);
            }
        }
        // Quick Mode retransmissions and clean-up.
        for i in self.qm.ids() {
            let Some(q) = self.qm.get(i) else {
                continue;
            };
            if q.done_at.is_some_and(|t| t + QM_LINGER <= now) {
                self.qm.remove(i);
                continue;
            }
            if let Some(f) = &q.flight {
                if f.next_at <= now && q.state != QmState::Done {
                    if f.attempts >= MAX_RETRANSMITS {
                        self.stats.retransmit_limit += 1;
                        let Some(q) = self.qm.remove(i) else {
                            continue;
                        };
                        self.hold_off(now, q.entry, q.proxy, q.initiator);
                        self.log(format!(
                            "ISAKMP: quick mode {:#x} got no answer: retransmission limit reached",
                            q.msg_id
                        ));
                        self.drop_qm(now, q);
                        continue;
                    }
                    let (ci, cr) = (q.cky_i, q.cky_r);
                    let Some(p) = self.p1.find(&P1Key::Cookie(ci), |p| p.cky_r == cr) else {
                        if let Some(q) = self.qm.remove(i) {
                            self.drop_qm(now, q);
                        }
                        continue;
                    };
                    let (local, remote) = (self.p1[p].local, self.p1[p].remote);
                    let f = self.qm[i].flight.as_mut().expect("checked above");
                    f.attempts += 1;
                    f.next_at = now + (RETRANSMIT_BASE * (1 << f.attempts)).min(RETRANSMIT_CAP);
                    let data = f.data.clone();
                    self.stats.retransmitted += 1;
                    self.send(local, remote, data);
                }
            }
        }
    }

    fn retransmit_p1(&mut self, now: Instant, i: RowId) {
        let p = &mut self.p1[i];
        let Some(f) = p.flight.as_mut() else { return };
        f.attempts += 1;
        f.next_at = now + (RETRANSMIT_BASE * (1 << f.attempts)).min(RETRANSMIT_CAP);
        let (local, remote, data) = (p.local, p.remote, f.data.clone());
        let line = format!(
            "ISAKMP:({}):retransmitting phase 1 {}...",
            p.conn_id,
            p.state.ios_name()
        );
        self.stats.retransmitted += 1;
        self.log(line);
        self.send(local, remote, data);
    }

    /// Behind a NAT, a keepalive every `crypto isakmp nat keepalive`
    /// seconds keeps the NAT's mapping for UDP 4500 alive.
    fn run_keepalive(&mut self, now: Instant, i: RowId) {
        let p = &mut self.p1[i];
        let (Some(at), Some(secs)) = (p.next_keepalive, self.policy.nat_keepalive) else {
            return;
        };
        if at > now {
            return;
        }
        p.next_keepalive = Some(now + Duration::from_secs(u64::from(secs.max(1))));
        let (local, remote) = (p.local, p.remote);
        self.out.push_back(Output::Keepalive { local, remote });
    }

    fn run_dpd(&mut self, now: Instant, i: RowId) {
        let Some(dpd) = self.policy.dpd else { return };
        let p = &mut self.p1[i];
        if p.state != P1State::Established {
            return;
        }
        if !p.peer_dpd {
            // The peer never said it does DPD (RFC 3706 §5.1): no
            // R-U-THERE, and no timer left behind to fire again.
            p.next_dpd = None;
            return;
        }
        let due = match p.dpd_pending {
            Some(d) => d.retry_at <= now,
            None => p.next_dpd.is_some_and(|t| t <= now),
        };
        if !due {
            return;
        }
        if p.dpd_pending.is_none()
            && now.saturating_duration_since(p.last_heard)
                < Duration::from_secs(u64::from(dpd.interval))
        {
            // Heard from the peer recently: it is alive.
            p.next_dpd = Some(p.last_heard + Duration::from_secs(u64::from(dpd.interval)));
            return;
        }
        let (seq, tries, since) = match p.dpd_pending {
            Some(d) => (d.seq, d.tries + 1, d.since),
            None => {
                p.dpd_seq = p.dpd_seq.wrapping_add(1);
                (p.dpd_seq, 0, now)
            }
        };
        p.dpd_pending = Some(DpdProbe {
            seq,
            tries,
            retry_at: now + Duration::from_secs(u64::from(dpd.retry.max(1))),
            since,
        });
        // The retries run on dpd_pending's clock until the ACK restarts
        // the interval.
        p.next_dpd = None;
        if tries > DPD_RETRIES {
            return;
        }
        let n = Notification {
            doi: 1,
            protocol: ProtocolId::ISAKMP,
            spi: p.cookies(),
            notify_type: NotifyType::R_U_THERE,
            data: seq.to_be_bytes().to_vec(),
        };
        let line = format!(
            "ISAKMP:({}):DPD/R_U_THERE sequence {seq} to {} (try {})",
            p.conn_id,
            p.remote,
            tries + 1
        );
        self.log(line);
        self.send_informational(now, i, Payload::Notification(n));
    }

    /// ISAKMP SA `i` got no answer to DPD.
    ///
    /// A peer may hold several ISAKMP SAs with us (it negotiated a new one
    /// to rekey a pair while an old one lingered, its Delete lost). If it
    /// gave a sign of life on another established one since our first
    /// unanswered R-U-THERE on this one, it is alive and has forgotten
    /// this SA: only this SA goes, and that SA's own DPD says whether the
    /// peer dies later. (An established SA's `last_heard` moves only on
    /// fresh, authenticated messages: an ACK to our R-U-THERE, a peer's
    /// R-U-THERE of a new sequence, a Quick Mode completed; a half-open
    /// SA proves nothing.) Otherwise it is dead, once: every ISAKMP SA and
    /// pair with it goes now, so no other SA of it waits out its own DPD
    /// to declare it dead again.
    fn peer_dead(&mut self, now: Instant, i: RowId) {
        let (local, remote, conn) = (self.p1[i].local.ip(), self.p1[i].remote, self.p1[i].conn_id);
        let unanswered_since = self.p1[i].dpd_pending.map_or(now, |d| d.since);
        let peer = remote.ip();
        let with_peer = |q: &Phase1| q.local.ip() == local && q.remote == remote;
        let alive_on = self
            .p1
            .with(&P1Key::Peer(peer))
            .map(|(_, q)| q)
            .find(|q| {
                q.conn_id != conn
                    && with_peer(q)
                    && q.state == P1State::Established
                    && q.last_heard > unanswered_since
            })
            .map(|q| q.conn_id);
        if let Some(other) = alive_on {
            self.log(format!(
                "ISAKMP:({conn}):peer {peer} does not answer DPD on this SA but does on ({other}): deleting this SA only"
            ));
            self.delete_isakmp(now, i, false);
            return;
        }
        self.stats.dpd_dead += 1;
        self.log(format!(
            "%CRYPTO-5-IKE_DPD: ISAKMP:({conn}):peer {peer} is dead: deleting its SAs"
        ));
        for j in self.p1.ids_with(&P1Key::Peer(peer)).into_iter().rev() {
            if self.p1.get(j).is_some_and(with_peer) {
                self.delete_isakmp(now, j, false);
            }
        }
        // The pairs negotiated with this endpoint: another peer behind the
        // same NAT (another port) keeps its own.
        let gone = self.pairs.remove_with(&PairKey::Peer(peer), |p| {
            p.remote == remote && p.info.local == local
        });
        for p in gone {
            self.out.push_back(Output::Delete {
                inbound_spi: p.info.inbound_spi,
                outbound_spi: p.info.outbound_spi,
            });
        }
    }

    fn fail_pending(&mut self, now: Instant, local: IpAddr, peer: IpAddr) {
        let (gone, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.peer == peer && p.local == local);
        self.pending = kept;
        for p in gone {
            self.hold_off(now, p.entry, p.proxy, true);
        }
    }

    // ----- input -------------------------------------------------------

    /// One datagram from `remote` to our `local` (IKE port or NAT-T port,
    /// the non-ESP marker already removed).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                self.log(format!("%CRYPTO-4-IKMP_BAD_MESSAGE: IKE message from {remote} failed its sanity check or is malformed: {e}"));
                return;
            }
        };
        if let Some(p) = self.find_p1(&msg.header, remote).map(|i| &self.p1[i]) {
            let line = format!(
                "ISAKMP ({}): received packet from {} dport {} sport {} Global ({}) {}",
                p.conn_id,
                remote.ip(),
                local.port(),
                remote.port(),
                if p.initiator { "I" } else { "R" },
                p.state.ios_name()
            );
            self.log(line);
        }
        let result = match msg.header.exchange {
            ExchangeType::MAIN_MODE => self.main_mode(now, local, remote, data, &msg),
            ExchangeType::AGGRESSIVE => self.aggressive_mode(now, local, remote, data, &msg),
            ExchangeType::QUICK_MODE => self.quick_mode(now, local, remote, data, &msg),
            ExchangeType::INFORMATIONAL => self.informational(now, local, remote, &msg),
            ExchangeType::ESPADA_TED => self.ted_datagram(now, local, remote, data),
            other => {
                self.stats.unsupported_exchange += 1;
                self.log(format!(
                    "ISAKMP: {} exchange from {remote} is not supported (Main Mode and Quick Mode only)",
                    other.name().unwrap_or("unknown")
                ));
                Ok(())
            }
        };
        if let Err(d) = result {
            match d {
                Drop::Malformed(why) => {
                    self.stats.malformed += 1;
                    self.log(format!("%CRYPTO-4-IKMP_BAD_MESSAGE: IKE message from {remote} failed its sanity check or is malformed: {why}"));
                }
                Drop::Unexpected(why) => {
                    self.stats.unexpected_message += 1;
                    self.log(format!("ISAKMP: dropping message from {remote}: {why}"));
                }
                Drop::Decrypt => {
                    self.stats.decrypt_failed += 1;
                    self.log(format!("%CRYPTO-4-IKMP_BAD_MESSAGE: IKE message from {remote} failed its sanity check or is malformed (probably a wrong pre-shared key)"));
                }
                Drop::Hash(what) => {
                    self.stats.hash_mismatch += 1;
                    self.log(format!(
                        "ISAKMP: {what} from {remote} does not verify (pre-shared key mismatch?)"
                    ));
                }
            }
        }
    }

    /// The checks every Main and Aggressive Mode message passes before its
    /// exchange's own: Message ID zero; an initiator's first message that
    /// is a retransmission answered again (a different one for the same
    /// cookie refused with `second_first`); a later message matched to
    /// its exchange by cookies (unknown cookies counted), a duplicate
    /// answered again, the peer heard from.
    fn phase1_step(
        &mut self,
        now: Instant,
        mode: &str,
        second_first: &'static str,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> Result<Phase1Step, Drop> {
        let h = &msg.header;
        if h.message_id != 0 {
            return Err(Drop::Malformed(format!(
                "{mode} message with a non-zero Message ID"
            )));
        }
        if h.responder_cookie == [0; 8] {
            let known = self.p1.find(&P1Key::Cookie(h.initiator_cookie), |p| {
                !p.initiator && p.remote == remote
            });
            return match known {
                Some(i) if self.duplicate_p1(i, data) => Ok(Phase1Step::Handled),
                Some(_) => Err(Drop::Unexpected(second_first)),
                None => Ok(Phase1Step::First),
            };
        }
        let Some(i) = self.find_p1(h, remote) else {
            self.stats.unknown_cookies += 1;
            self.log(format!(
                "ISAKMP: {mode} message from {remote} with unknown cookies"
            ));
            return Ok(Phase1Step::Handled);
        };
        if self.duplicate_p1(i, data) {
            return Ok(Phase1Step::Handled);
        }
        // Nothing here is authenticated yet: for an established SA (whose
        // Main Mode is refused next) it would be no sign of life at all.
        if self.p1[i].state != P1State::Established {
            self.p1[i].last_heard = now;
        }
        Ok(Phase1Step::Next(i))
    }

    fn find_p1(&self, h: &Header, remote: SocketAddr) -> Option<RowId> {
        self.p1.find(&P1Key::Cookie(h.initiator_cookie), |p| {
            p.matches(h) && p.remote.ip() == remote.ip()
        })
    }

    /// Resends the answer to a message received twice.
    fn duplicate_p1(&mut self, i: RowId, data: &[u8]) -> bool {
        let p = &self.p1[i];
        if p.answered.as_slice() != data {
            return false;
        }
        self.stats.duplicates += 1;
        let (l, r, d) = (p.local, p.remote, p.reply.clone());
        self.send(l, r, d);
        true
    }
}

/// Encrypts `payloads` under `header` (its E flag set) with the IV chain
/// `iv`, which then holds the last ciphertext block.
fn seal(
    cipher: &IsakmpCipher,
    iv: &mut Vec<u8>,
    header: Header,
    payloads: &[Payload],
) -> Result<Vec<u8>, Drop> {
    let (first, plain) = encode_payloads(payloads).map_err(|e| Drop::Malformed(e.to_string()))?;
    let plain = Zeroizing::new(plain);
    let ciphertext = cipher.encrypt(iv, &plain);
    let bl = cipher.block_len();
    *iv = ciphertext[ciphertext.len() - bl..].to_vec();
    Message {
        header: Header {
            flags: header.flags | Flags::ENCRYPTION,
            ..header
        },
        body: Body::Encrypted {
            first_payload: first,
            ciphertext,
        },
    }
    .encode()
    .map_err(|e| Drop::Malformed(e.to_string()))
}

/// A decrypted message.
struct Opened {
    plaintext: Zeroizing<Vec<u8>>,
    first: PayloadType,
    payloads: Vec<Payload>,
    padding: usize,
    /// The last ciphertext block: the next IV of the exchange.
    next_iv: Vec<u8>,
}

impl Opened {
    /// The bytes after the first payload (a HASH) and before the padding:
    /// what HASH(1), HASH(2) and the informational HASH cover.
    fn after_first(&self) -> &[u8] {
        let end = self.plaintext.len() - self.padding;
        match raw_bodies(self.first, &self.plaintext).first() {
            Some((_, b)) => self.plaintext.get(4 + b.len()..end).unwrap_or(&[]),
            None => &[],
        }
    }

    fn first_hash(&self) -> Option<&[u8]> {
        match self.payloads.first() {
            Some(Payload::Hash(h)) => Some(h),
            _ => None,
        }
    }
}

fn open(cipher: &IsakmpCipher, iv: &[u8], msg: &Message) -> Result<Opened, Drop> {
    let Body::Encrypted {
        first_payload,
        ciphertext,
    } = &msg.body
    else {
        return Err(Drop::Malformed(
            "a message that must be encrypted is not".into(),
        ));
    };
    let plaintext = cipher.decrypt(iv, ciphertext).map_err(|_| Drop::Decrypt)?;
    let d = decode_decrypted(*first_payload, &plaintext).map_err(|_| Drop::Decrypt)?;
    let bl = cipher.block_len();
    Ok(Opened {
        first: *first_payload,
        payloads: d.payloads,
        padding: d.padding,
        next_iv: ciphertext[ciphertext.len() - bl..].to_vec(),
        plaintext,
    })
}

impl Engine {
    /// An unencrypted notification (before keys exist: NO-PROPOSAL-CHOSEN
    /// in answer to MM1).
    fn send_clear_notify(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        (cky_i, cky_r): ([u8; 8], [u8; 8]),
        t: NotifyType,
    ) {
        let header = Header {
            initiator_cookie: cky_i,
            responder_cookie: cky_r,
            version: Header::VERSION,
            exchange: ExchangeType::INFORMATIONAL,
            flags: Flags::default(),
            message_id: 0,
        };
        let n = Notification {
            doi: 1,
            protocol: ProtocolId::ISAKMP,
            spi: [cky_i, cky_r].concat(),
            notify_type: t,
            data: Vec::new(),
        };
        if let Ok(data) = Message::new(header, vec![Payload::Notification(n)]).encode() {
            self.send(local, remote, data);
        }
    }

    /// A protected informational exchange (RFC 2409 §5.7) over ISAKMP SA
    /// `i`: HASH(1) then `payload`, with its own Message ID and IV.
    fn send_informational(&mut self, _now: Instant, i: RowId, payload: Payload) {
        let p = &self.p1[i];
        let (Some(cipher), Some(keys)) = (p.cipher.as_ref(), p.keys.as_ref()) else {
            return;
        };
        if p.state != P1State::Established {
            return;
        }
        let msg_id = u32::from_be_bytes(random()).max(1);
        let mut iv = kdf::phase2_iv(p.prf, &p.iv, msg_id, cipher.block_len());
        let Ok((_, after)) = encode_payloads(std::slice::from_ref(&payload)) else {
            return;
        };
        let hash = kdf::qm_hash1(p.prf, &keys.skeyid_a, msg_id, &after);
        let header = Header {
            initiator_cookie: p.cky_i,
            responder_cookie: p.cky_r,
            version: Header::VERSION,
            exchange: ExchangeType::INFORMATIONAL,
            flags: Flags::ENCRYPTION,
            message_id: msg_id,
        };
        if let Ok(data) = seal(cipher, &mut iv, header, &[Payload::Hash(hash), payload]) {
            let (l, r) = (p.local, p.remote);
            self.send(l, r, data);
        }
    }

    /// Tells `peer` we deleted our inbound SAs `spis`.
    fn send_esp_delete(&mut self, now: Instant, local: IpAddr, peer: IpAddr, spis: &[u32]) {
        let Some(i) = self.p1.find(&P1Key::Peer(peer), |p| {
            p.state == P1State::Established && p.local.ip() == local
        }) else {
            return;
        };
        let d = Delete {
            doi: 1,
            protocol: ProtocolId::IPSEC_ESP,
            spi_size: 4,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        };
        self.send_informational(now, i, Payload::Delete(d));
    }
}
