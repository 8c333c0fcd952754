//! The IKEv2 engine: IKE_SA_INIT, IKE_AUTH with pre-shared keys and the
//! first CHILD_SA, INFORMATIONAL (deletes, liveness checks),
//! CREATE_CHILD_SA (CHILD_SAs and IKE SA rekeys), as a sans-IO
//! state machine in the shape of [`crate::ikev1::Engine`]: datagrams,
//! acquires, expiries and the clock in; [`Output`]s (the same type as
//! IKEv1's, so one driver carries out both) out.
//!
//! Each IKE SA is one [`IkeSa`], keyed by this side's SPI. Every request
//! sent waits in a [`Flight`] (window size 1) and is retransmitted with
//! back-off; the last response sent is kept and sent again when the
//! peer repeats its request.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use dataplane::api::Direction;
use dataplane::spd::{FlowKey, PolicyTag, TrafficSelector};
use sha2::{Digest, Sha256};

use crate::ike::crypto::v2::IkeSaKeys;
use crate::ike::crypto::{random, DhGroup, DhPrivate, Prf};
use crate::ike::spi::{SpiAllocator, SpiSpace};
use crate::ike::wire::ident::Identity;
use crate::ike::wire::ikev2::{
    ExchangeType, Flags, Header, Message, Notify, NotifyType, Payload, PayloadBody,
};

use super::crypt::SkKeys;
use super::policy::Ikev2Policy;
use super::proposal::IkeChoice;

pub use super::stats::Stats;
pub use crate::ikev1::engine::{Output, PairInfo};

mod auth;
mod child;
mod exchange;
mod half_open;
mod index;
mod info;
mod init;
mod rekey;
mod view;

pub use view::Ikev2SaView;

/// Retransmissions of a request before the exchange (or the peer) is
/// given up.
const MAX_RETRANSMITS: u32 = 5;
const RETRANSMIT_BASE: Duration = Duration::from_secs(1);
const RETRANSMIT_CAP: Duration = Duration::from_secs(8);
/// How long a responder's half-open IKE SA waits for IKE_AUTH.
const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Half-open IKE SAs kept at most, cookies or not.
const HALF_OPEN_LIMIT: usize = 4096;
/// CHILD_SAs one peer address may hold over all its IKE SAs: an
/// authenticated peer could otherwise ask for pair after pair, each for
/// other traffic selectors, until the dataplane's SA table is full.
/// Rekeys, and a pair for selectors the peer already holds, go through.
/// Generous for many clients of a dynamic entry behind one NAT.
const CHILD_LIMIT: usize = 1024;
/// Times an initiator starts IKE_SA_INIT again for a COOKIE or an
/// INVALID_KE_PAYLOAD (RFC 7296 §2.6 and §1.3 need one each, a rotated
/// cookie one more): neither is protected, so an attacker on the path
/// alternating them must not keep the exchange going for ever.
const MAX_INIT_RESTARTS: u8 = 4;
/// After a failed negotiation, acquires for the same entry wait this long.
const HOLD_DOWN: Duration = Duration::from_secs(2);
const NONCE_LEN: usize = 32;
/// The NAT-T port (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// A request sent that waits for its response.
#[derive(Debug, Clone)]
struct Flight {
    message_id: u32,
    data: Vec<u8>,
    attempts: u32,
    next_at: Instant,
    kind: Request,
}

/// What a request in flight (or queued) is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Init,
    Auth,
    Liveness,
    /// Deletes these inbound CHILD_SA SPIs of ours.
    DeleteChild(Vec<u32>),
    DeleteIke,
    /// Rekeys the IKE SA (CREATE_CHILD_SA), offering a KE of this group.
    RekeyIke(DhGroup),
    /// A new CHILD_SA for a map entry, rekeying `old_in` if given.
    CreateChild {
        entry: usize,
        selector: TrafficSelector,
        old_in: Option<u32>,
    },
}

/// Our CREATE_CHILD_SA request in flight.
struct Creating {
    entry: usize,
    selector: TrafficSelector,
    old_in: Option<u32>,
    spi_in: u32,
    ni: Vec<u8>,
    dh: Option<DhPrivate>,
    /// The peer rekeyed `old_in` too while this request was out (RFC
    /// 7296 §2.8.1): what its answer is weighed against. Kept here, not
    /// on the old pair, which the peer may delete before our answer
    /// comes.
    crossed_by: Option<CrossingRekey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Initiator: IKE_SA_INIT sent.
    InitSent,
    /// Initiator: IKE_AUTH sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    HalfOpen,
    Established,
}

/// The CHILD_SA the initiator asks for in IKE_AUTH.
#[derive(Debug, Clone)]
struct PendingChild {
    entry: usize,
    selector: TrafficSelector,
    spi_in: u32,
}

/// An installed CHILD_SA pair.
#[derive(Debug, Clone)]
struct Child {
    info: PairInfo,
    /// A rekey of this pair was started.
    rekeying: bool,
    /// Our rekey was refused: when to try again
    /// ([`rekey::REKEY_RETRY`] later; the pair carries the traffic
    /// meanwhile, and without another try would run into its hard
    /// lifetime).
    rekey_retry_at: Option<Instant>,
    /// The peer rekeyed this pair: its DELETE of it retires it
    /// ([`Output::Retire`]).
    replaced: bool,
    /// The peer's rekey of this inbound SPI's pair made this one.
    replaces: Option<u32>,
}

impl Child {
    /// Our rekey of it is not under way; it is tried [`rekey::REKEY_RETRY`]
    /// from `now` (a pair the peer replaced meanwhile is not rekeyed).
    fn rekey_later(&mut self, now: Instant) {
        self.rekeying = false;
        self.rekey_retry_at = Some(now + rekey::REKEY_RETRY);
    }
}

/// The peer's rekey of a pair we were rekeying too.
#[derive(Debug, Clone)]
struct CrossingRekey {
    /// Inbound SPI of the pair the peer's rekey made.
    new_in: u32,
    /// The lower of that exchange's two nonces.
    low_nonce: Vec<u8>,
}

struct IkeSa {
    /// `Tunnel-id` of `show crypto ikev2 sa`.
    id: u32,
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    initiator: bool,
    local: SocketAddr,
    remote: SocketAddr,
    state: State,
    created: Instant,
    /// Initiator: the group of the KE being offered.
    group: DhGroup,
    dh: Option<DhPrivate>,
    choice: Option<IkeChoice>,
    ni: Vec<u8>,
    nr: Vec<u8>,
    /// Both IKE_SA_INIT messages as sent (the AUTH payloads sign them).
    init_i: Vec<u8>,
    init_r: Vec<u8>,
    cookie: Option<Vec<u8>>,
    /// Initiator: IKE_SA_INITs started again for a COOKIE or an
    /// INVALID_KE_PAYLOAD ([`MAX_INIT_RESTARTS`]).
    init_restarts: u8,
    keys: Option<IkeSaKeys>,
    tx: Option<SkKeys>,
    rx: Option<SkKeys>,
    nat: bool,
    /// Message ID of our next request.
    next_mid: u32,
    /// Message ID of the peer's next request.
    peer_mid: u32,
    flight: Option<Flight>,
    queue: VecDeque<Request>,
    /// The last response sent, for a repeated request.
    last_response: Option<(u32, Vec<u8>)>,
    /// SHA-256 of the request `last_response` answers: only that request
    /// again, byte for byte, is answered to a new address (the peer's NAT
    /// mapped it anew, RFC 7296 §2.11). A repeat is recognised before it
    /// is decrypted, so anything else that names the SPIs and Message ID
    /// is answered to the SA's address, never reflected elsewhere.
    request_digest: [u8; 32],
    pending: Option<PendingChild>,
    creating: Option<Creating>,
    children: Vec<Child>,
    /// IKE or (on-demand DPD) ESP last heard from the peer.
    last_heard: Instant,
    /// When this side rekeys the IKE SA (None while a rekey runs).
    rekey_at: Option<Instant>,
    /// The lifetime plus a grace period: an SA whose rekeys all failed
    /// is deleted then rather than kept forever.
    expires_at: Option<Instant>,
    /// Our IKE SA rekey request in flight.
    rekey: Option<rekey::IkeRekey>,
    /// We answered the peer's rekey of this SA: (the new SA, the lowest
    /// nonce of that exchange), for collisions (§2.8.1).
    peer_rekeyed: Option<([u8; 8], Vec<u8>)>,
    /// This SA was rekeyed: the SA its CHILD_SAs moved to.
    successor: Option<[u8; 8]>,
    /// This SA was made by the peer's rekey of that one.
    predecessor: Option<[u8; 8]>,
    /// A rekeyed SA is forgotten silently then, if the peer never
    /// deleted it.
    retire_at: Option<Instant>,
    /// Responder: where the IKE_SA_INIT came from, its key in
    /// `by_peer_spi` (with `spi_i`), so the entry goes with the SA.
    init_from: Option<SocketAddr>,
    /// Responder: admitted half-open with a valid cookie (counted for
    /// its address, [`half_open::PER_ADDRESS_LIMIT`]).
    cookied: bool,
    /// Our own NAT_DETECTION_SOURCE_IP did not match: we are behind a NAT.
    behind_nat: bool,
    next_keepalive: Option<Instant>,
    /// The `crypto ikev2 profile` (index in the policy's `profiles`):
    /// the entry's as initiator, the one the peer's IDi chose as
    /// responder (None until IKE_AUTH). Lifetime and DPD come from it.
    profile: Option<usize>,
    /// The identities of IKE_AUTH (IDi/IDr), for the view.
    local_id: Option<Identity>,
    remote_id: Option<Identity>,
}

impl IkeSa {
    /// Responder: the address its IKE_SA_INIT came from, which its
    /// half-open count is kept under (IKE_AUTH may come from another).
    fn admitted_from(&self) -> IpAddr {
        self.init_from.map_or(self.remote.ip(), |a| a.ip())
    }

    /// An SA with nothing negotiated yet: no keys, nonces, flights,
    /// children or timers. Each way an SA is born (our IKE_SA_INIT, the
    /// peer's, a rekey) sets what it knows on top of this.
    #[allow(clippy::too_many_arguments)]
    fn blank(
        id: u32,
        spi_i: [u8; 8],
        spi_r: [u8; 8],
        initiator: bool,
        local: SocketAddr,
        remote: SocketAddr,
        state: State,
        group: DhGroup,
        now: Instant,
    ) -> IkeSa {
        IkeSa {
            id,
            spi_i,
            spi_r,
            initiator,
            local,
            remote,
            state,
            created: now,
            group,
            dh: None,
            choice: None,
            ni: Vec::new(),
            nr: Vec::new(),
            init_i: Vec::new(),
            init_r: Vec::new(),
            cookie: None,
            init_restarts: 0,
            keys: None,
            tx: None,
            rx: None,
            nat: false,
            next_mid: 0,
            peer_mid: 0,
            flight: None,
            queue: VecDeque::new(),
            last_response: None,
            request_digest: [0; 32],
            pending: None,
            creating: None,
            children: Vec::new(),
            last_heard: now,
            rekey_at: None,
            expires_at: None,
            rekey: None,
            peer_rekeyed: None,
            successor: None,
            predecessor: None,
            retire_at: None,
            init_from: None,
            cookied: false,
            behind_nat: false,
            next_keepalive: None,
            profile: None,
            local_id: None,
            remote_id: None,
        }
    }

    /// Established and not replaced by a rekey: new exchanges go here.
    fn usable(&self) -> bool {
        self.state == State::Established && self.successor.is_none() && self.retire_at.is_none()
    }

    fn prf(&self) -> Prf {
        self.choice.map_or(Prf::HmacSha256, |c| c.prf)
    }

    fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> Header {
        let mut flags = 0;
        if self.initiator {
            flags |= Flags::INITIATOR.0;
        }
        if response {
            flags |= Flags::RESPONSE.0;
        }
        Header {
            initiator_spi: self.spi_i,
            responder_spi: self.spi_r,
            version: Header::VERSION,
            exchange,
            flags: Flags(flags),
            message_id,
        }
    }
}

/// The IKEv2 engine.
pub struct Engine {
    policy: Ikev2Policy,
    sas: HashMap<[u8; 8], IkeSa>,
    /// Responder: (peer, peer's SPI) → our SPI, to answer a repeated
    /// IKE_SA_INIT from the same half-open SA.
    by_peer_spi: HashMap<(SocketAddr, [u8; 8]), [u8; 8]>,
    out: VecDeque<Output>,
    stats: Stats,
    hold_down: Vec<(PolicyTag, Instant)>,
    ike_port: u16,
    nat_t_port: u16,
    next_tunnel_id: u32,
    /// SAs in `State::HalfOpen` ([`Engine::half_open`]) and cookies.
    half_open: half_open::HalfOpen,
    spis: SpiAllocator,
    /// The SAs by peer, SPI and proxy.
    index: index::SaIndex,
    /// Outputs the driver has taken ([`Engine::poll_output`]).
    outputs_taken: u64,
    /// What waits for a new pair's install to be carried out.
    awaiting_install: Vec<AfterInstall>,
    /// Tests: never send INITIAL_CONTACT, as a peer reauthenticating
    /// make-before-break does not (its old IKE SA is still up).
    #[cfg(test)]
    pub(crate) no_initial_contact: bool,
    /// Answers every CHILD_SA with a second TSr, as a strongSwan
    /// responder with two `leftsubnet`s does (tests).
    #[cfg(test)]
    pub(crate) answer_two_tsr: bool,
    /// Answers every request as this exchange type (tests).
    #[cfg(test)]
    pub(crate) answer_as: Option<ExchangeType>,
}

/// What waits for the install of a new pair (inbound SPI `new_in`,
/// negotiated over IKE SA `k`) to be carried out. The driver takes the
/// outputs in order, and an install the dataplane refuses calls
/// [`Engine::pair_refused`] before the driver takes the next output; so
/// once the driver has taken every output queued up to `after`, the
/// Install among them, the new pair is either installed or gone.
struct AfterInstall {
    /// [`Engine::outputs_taken`] once the install is taken.
    after: u64,
    k: [u8; 8],
    new_in: u32,
    then: AfterThen,
}

enum AfterThen {
    /// Our rekey of CHILD_SA `old_in` (answered at `at`). Installed: the
    /// old pair is retired (make-before-break). Gone: the old pair stays
    /// in use and its rekey is tried again, rather than both going and
    /// the traffic waiting for a fresh negotiation.
    RetireOld { old_in: u32, at: Instant },
    /// Our answer to the peer's CREATE_CHILD_SA `mid` (a rekey of
    /// `old_in`, if any). The peer uses the pair (and, for a rekey,
    /// deletes the old one) once it has our answer. Installed: the
    /// answer. Gone: TEMPORARY_FAILURE (RFC 7296 §2.25), and the peer
    /// keeps what it has and tries again later.
    Answer {
        mid: u32,
        old_in: Option<u32>,
        payloads: Vec<Payload>,
    },
}

/// NAT_DETECTION_*_IP data = SHA-1(SPIi | SPIr | IP | Port) (§2.23).
fn nat_hash(spi_i: &[u8; 8], spi_r: &[u8; 8], addr: SocketAddr) -> Vec<u8> {
    let ip = match addr.ip() {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    Prf::HmacSha1.hash(&[spi_i, spi_r, &ip, &addr.port().to_be_bytes()])
}

fn notifies(payloads: &[Payload]) -> impl Iterator<Item = &Notify> {
    payloads.iter().filter_map(|p| match &p.body {
        PayloadBody::Notify(n) => Some(n),
        _ => None,
    })
}

/// Whether a response of exchange type `exchange` answers request `kind`.
fn answers(exchange: ExchangeType, kind: &Request) -> bool {
    match kind {
        Request::Init => exchange == ExchangeType::IKE_SA_INIT,
        Request::Auth => exchange == ExchangeType::IKE_AUTH,
        Request::Liveness | Request::DeleteChild(_) | Request::DeleteIke => {
            exchange == ExchangeType::INFORMATIONAL
        }
        Request::RekeyIke(_) | Request::CreateChild { .. } => {
            exchange == ExchangeType::CREATE_CHILD_SA
        }
    }
}

fn find_notify(payloads: &[Payload], t: NotifyType) -> Option<&Notify> {
    notifies(payloads).find(|n| n.notify_type == t)
}

impl Engine {
    pub fn new(policy: Ikev2Policy) -> Engine {
        Engine {
            policy,
            sas: HashMap::new(),
            by_peer_spi: HashMap::new(),
            out: VecDeque::new(),
            outputs_taken: 0,
            awaiting_install: Vec::new(),
            stats: Stats::default(),
            hold_down: Vec::new(),
            ike_port: 500,
            nat_t_port: NAT_T_PORT,
            next_tunnel_id: 1,
            half_open: half_open::HalfOpen::default(),
            spis: SpiAllocator::new(SpiSpace::Ikev2),
            index: index::SaIndex::default(),
            #[cfg(test)]
            no_initial_contact: false,
            #[cfg(test)]
            answer_two_tsr: false,
            #[cfg(test)]
            answer_as: None,
        }
    }

    /// A fresh inbound SPI: from IKEv2's half of the space (the IKEv1
    /// engine has the other), held by none of our CHILD_SAs or requests
    /// in flight.
    fn alloc_spi(&self) -> u32 {
        self.spis.alloc(|| {
            let mut in_use = Vec::new();
            for s in self.sas.values() {
                in_use.extend(s.children.iter().map(|c| c.info.inbound_spi));
                in_use.extend(s.pending.as_ref().map(|p| p.spi_in));
                in_use.extend(s.creating.as_ref().map(|c| c.spi_in));
            }
            in_use
        })
    }

    /// Responder SAs waiting for IKE_AUTH (tests).
    #[cfg(test)]
    pub(crate) fn half_open_sas(&self) -> usize {
        self.half_open()
    }

    /// Half-open SAs `ip` holds by returning cookies (tests).
    #[cfg(test)]
    pub(crate) fn cookied_half_open_from(&self, ip: IpAddr) -> usize {
        self.half_open.cookied_from(ip)
    }

    /// How many answered IKE_SA_INITs are remembered (tests).
    #[cfg(test)]
    pub(crate) fn answered_inits(&self) -> usize {
        self.by_peer_spi.len()
    }

    /// The next inbound SPI [`Engine::alloc_spi`] hands out (tests).
    #[cfg(test)]
    pub(crate) fn force_next_spi(&mut self, spi: u32) {
        self.spis.force_next(spi);
    }

    /// The UDP ports the driver's sockets listen on (500/4500 unless
    /// changed for tests).
    pub fn set_ports(&mut self, ike: u16, nat_t: u16) {
        self.ike_port = ike;
        self.nat_t_port = nat_t;
    }

    /// A new configuration (the outside address changed): established
    /// SAs stay, new negotiations use it.
    pub fn set_policy(&mut self, policy: Ikev2Policy) {
        self.policy = policy;
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.run_after_installs();
        let o = self.out.pop_front();
        self.outputs_taken += u64::from(o.is_some());
        o
    }

    /// Retires CHILD_SA `old_in`, which our rekey replaced with `new_in`,
    /// once `new_in` is installed ([`AfterThen::RetireOld`]).
    pub(super) fn retire_after_install(
        &mut self,
        at: Instant,
        k: [u8; 8],
        old_in: u32,
        new_in: u32,
    ) {
        self.after_install(k, new_in, AfterThen::RetireOld { old_in, at });
    }

    /// Does `then` once the driver has taken every output queued so far,
    /// the install of pair `new_in` among them ([`AfterInstall`]).
    fn after_install(&mut self, k: [u8; 8], new_in: u32, then: AfterThen) {
        self.awaiting_install.push(AfterInstall {
            after: self.outputs_taken + self.out.len() as u64,
            k,
            new_in,
            then,
        });
    }

    /// Does what waited for installs the driver has now taken.
    fn run_after_installs(&mut self) {
        if self.awaiting_install.is_empty() {
            return;
        }
        let taken = self.outputs_taken;
        let due: Vec<AfterInstall> = self
            .awaiting_install
            .extract_if(.., |w| w.after <= taken)
            .collect();
        for w in due {
            let installed = self.sa_of_child(Direction::Inbound, w.new_in).is_some();
            match w.then {
                AfterThen::RetireOld { old_in, at } => {
                    self.retire_rekeyed(at, w.k, old_in, w.new_in, installed)
                }
                AfterThen::Answer {
                    mid,
                    old_in,
                    payloads,
                } => self.release_answer(w.k, mid, w.new_in, old_in, payloads, installed),
            }
        }
    }

    /// Sends our answer to CREATE_CHILD_SA `mid`: the answer if its pair
    /// went in, TEMPORARY_FAILURE if not.
    fn release_answer(
        &mut self,
        k: [u8; 8],
        mid: u32,
        new_in: u32,
        old_in: Option<u32>,
        payloads: Vec<Payload>,
        installed: bool,
    ) {
        if !self.sas.contains_key(&k) {
            // Its IKE SA went meanwhile: nobody to answer.
            return;
        }
        // The answer goes where it was held, right behind the pair's
        // install: ahead of anything queued since (a DELETE of this IKE
        // SA, say, after an IKE SA rekey it won).
        let queued = self.out.len();
        if installed {
            if let Some(old_in) = old_in {
                self.mark_replaced(k, old_in, new_in);
            }
            self.respond(k, ExchangeType::CREATE_CHILD_SA, mid, payloads);
        } else {
            self.log(format!(
                "IKEv2:(SESSION ID = 0):the CHILD_SA with inbound SPI 0x{new_in:08X} did not go \
                 in; answering TEMPORARY_FAILURE"
            ));
            let n = Notify::new(NotifyType::TEMPORARY_FAILURE, Vec::new());
            self.respond(
                k,
                ExchangeType::CREATE_CHILD_SA,
                mid,
                vec![PayloadBody::Notify(n).into()],
            );
        }
        let answer: Vec<Output> = self.out.drain(queued..).collect();
        for o in answer.into_iter().rev() {
            self.out.push_front(o);
        }
    }

    /// The peer rekeyed CHILD_SA `old_in` into `new_in`: its DELETE
    /// retires it, and we do not rekey it meanwhile (unless the peer
    /// deletes the new one instead: [`Engine::unmark_replaced`]).
    fn mark_replaced(&mut self, k: [u8; 8], old_in: u32, new_in: u32) {
        let home = self.home(k);
        let Some(h) = self.sas.get_mut(&home) else {
            return;
        };
        for c in h.children.iter_mut() {
            if c.info.inbound_spi == old_in {
                c.replaced = true;
            } else if c.info.inbound_spi == new_in {
                c.replaces = Some(old_in);
            }
        }
    }

    /// The pair a peer's rekey made is gone: the pair it was to replace
    /// is ours to rekey again.
    pub(super) fn unmark_replaced(&mut self, k: [u8; 8], old_in: u32) {
        if let Some(c) = self.child_mut(k, old_in) {
            c.replaced = false;
        }
    }

    /// Holds our answer to CREATE_CHILD_SA `mid` until the driver has
    /// taken every output queued so far, the new pair's install among
    /// them ([`AfterThen::Answer`]). The request counts as answered already: a
    /// retransmission of it meanwhile is dropped (the answer follows
    /// within the same pass of the driver).
    pub(super) fn hold_answer(
        &mut self,
        k: [u8; 8],
        mid: u32,
        spi_in: u32,
        old_in: Option<u32>,
        payloads: Vec<Payload>,
    ) {
        if let Some(s) = self.sas.get_mut(&k) {
            s.peer_mid = mid.wrapping_add(1);
        }
        let then = AfterThen::Answer {
            mid,
            old_in,
            payloads,
        };
        self.after_install(k, spi_in, then);
    }

    /// Whether our own rekey of pair `old_in` completed and the pair
    /// goes once the new one is in ([`AfterThen::RetireOld`]).
    fn retiring_after_install(&self, old_in: u32) -> bool {
        self.awaiting_install
            .iter()
            .any(|w| matches!(w.then, AfterThen::RetireOld { old_in: o, .. } if o == old_in))
    }

    /// Whether our answer to the peer's rekey of pair `old_in` is held
    /// for its new pair's install ([`AfterThen::Answer`]): the pair is
    /// the peer's rekey's, though not marked replaced yet.
    fn peer_rekey_held(&self, old_in: u32) -> bool {
        self.awaiting_install
            .iter()
            .any(|w| matches!(w.then, AfterThen::Answer { old_in: Some(o), .. } if o == old_in))
    }

    /// The answers held for their pair's install: (the request's IKE SA,
    /// its Message ID, the pair's inbound SPI).
    fn held_answers(&self) -> impl Iterator<Item = ([u8; 8], u32, u32)> + '_ {
        self.awaiting_install.iter().filter_map(|w| match w.then {
            AfterThen::Answer { mid, .. } => Some((w.k, mid, w.new_in)),
            AfterThen::RetireOld { .. } => None,
        })
    }

    /// Our rekey of `old_in` into `new_in` went in (the old pair is
    /// retired), or did not (it stays, and the rekey is tried again).
    fn retire_rekeyed(
        &mut self,
        at: Instant,
        k: [u8; 8],
        old_in: u32,
        new_in: u32,
        installed: bool,
    ) {
        if installed {
            self.delete_child_local(at, k, old_in, true);
        } else if self.sa_of_child(Direction::Inbound, old_in).is_some() {
            // Refused: the old pair stays. (Neither there: their IKE SA
            // went meanwhile, and nothing is left to keep.)
            self.log(format!(
                "IKEv2:(SESSION ID = 0):the rekeyed CHILD_SA (inbound SPI 0x{new_in:08X}) did not \
                 go in; keeping inbound SPI 0x{old_in:08X}"
            ));
            self.child_rekey_failed(at, k, old_in);
        }
    }

    /// The installed pairs.
    pub fn pairs(&self) -> impl Iterator<Item = &PairInfo> {
        self.sas
            .values()
            .flat_map(|s| s.children.iter().map(|c| &c.info))
    }

    /// Established IKE SAs: (local, remote, NAT detected).
    pub fn ike_sas(&self) -> Vec<(SocketAddr, SocketAddr, bool)> {
        self.sas
            .values()
            .filter(|s| s.state == State::Established)
            .map(|s| (s.local, s.remote, s.nat))
            .collect()
    }

    /// The IKE SA keys held, for the tests' cross-checks.
    #[cfg(test)]
    pub(crate) fn ike_keys(&self) -> Vec<&IkeSaKeys> {
        self.sas.values().filter_map(|s| s.keys.as_ref()).collect()
    }

    #[cfg(test)]
    pub(crate) fn policy_for_tests(&self) -> &Ikev2Policy {
        &self.policy
    }

    /// Tests: change what the engine accepts from now on.
    #[cfg(test)]
    pub(crate) fn policy_mut_for_tests(&mut self) -> &mut Ikev2Policy {
        &mut self.policy
    }

    /// Every IKE SA's (SPIi, SPIr, keys), for the tests' decoding of
    /// messages on the wire.
    #[cfg(test)]
    pub(crate) fn ike_keys_by_spis(&self) -> Vec<([u8; 8], [u8; 8], &IkeSaKeys)> {
        self.sas
            .values()
            .filter_map(|s| Some((s.spi_i, s.spi_r, s.keys.as_ref()?)))
            .collect()
    }

    fn log(&mut self, line: String) {
        self.out.push_back(Output::Log(line));
    }

    fn send(&mut self, local: SocketAddr, remote: SocketAddr, data: Vec<u8>) {
        self.stats.sent += 1;
        self.out.push_back(Output::Send {
            local,
            remote,
            data,
        });
    }

    fn tunnel_id(&mut self) -> u32 {
        let id = self.next_tunnel_id;
        self.next_tunnel_id = id.wrapping_add(1).max(1);
        id
    }

    /// Responder SAs waiting for IKE_AUTH: counted as they come and go,
    /// since every IKE_SA_INIT asks (a walk would cost a hub per SA held).
    fn half_open(&self) -> usize {
        debug_assert_eq!(
            self.half_open.count(),
            self.sas
                .values()
                .filter(|s| s.state == State::HalfOpen)
                .count()
        );
        self.half_open.count()
    }

    /// The dataplane found no SA for `flow` of entry `tag`: start an IKE
    /// SA with the entry's first peer (unless one is already under way).
    pub fn acquire(&mut self, now: Instant, tag: PolicyTag, flow: FlowKey) {
        let Some(e) = self.policy.maps.iter().find(|e| e.tag == tag) else {
            return;
        };
        let Some(selector) = e.selectors.iter().find(|s| s.matches(&flow)).copied() else {
            return;
        };
        self.start_entry(now, tag, selector);
    }

    /// Brings map entry `tag` up without a flow (IOS does that for a
    /// VTI's ipsec profile at start): an IKE SA with its first peer, or a
    /// CHILD_SA on the one already up, for its first selector. Does
    /// nothing when the entry is up or being negotiated.
    pub fn initiate_entry(&mut self, now: Instant, tag: PolicyTag) {
        let Some(selector) = self
            .policy
            .maps
            .iter()
            .find(|e| e.tag == tag)
            .and_then(|e| e.selectors.first())
            .copied()
        else {
            return;
        };
        self.start_entry(now, tag, selector);
    }

    /// Negotiates `selector` of entry `tag` unless held down or busy.
    fn start_entry(&mut self, now: Instant, tag: PolicyTag, selector: TrafficSelector) {
        self.hold_down.retain(|h| h.1 > now);
        if self.hold_down.iter().any(|h| h.0 == tag) {
            return;
        }
        let Some(entry) = self.policy.maps.iter().position(|e| e.tag == tag) else {
            return;
        };
        let e = &self.policy.maps[entry];
        let Some(&peer) = e.peers.first() else {
            return;
        };
        let with_peer = self.sas_with(peer);
        let busy = with_peer.iter().filter_map(|k| self.sas.get(k)).any(|s| {
            s.remote.ip() == peer
                && (s.pending.as_ref().is_some_and(|p| p.entry == entry)
                    || s.creating.as_ref().is_some_and(|c| c.entry == entry)
                    || s.queue
                        .iter()
                        .any(|r| matches!(r, Request::CreateChild { entry: x, .. } if *x == entry))
                    || s.children.iter().any(|c| c.info.tag == tag))
        });
        if busy {
            return;
        }
        // An IKE SA with the peer is up: a new CHILD_SA on it.
        if let Some(k) = with_peer
            .iter()
            .find(|k| {
                self.sas
                    .get(*k)
                    .is_some_and(|s| s.usable() && s.remote.ip() == peer)
            })
            .copied()
        {
            self.request(
                now,
                k,
                Request::CreateChild {
                    entry,
                    selector,
                    old_in: None,
                },
            );
            return;
        }
        if !self
            .policy
            .has_key_for(self.policy.entry_profile(entry), peer)
        {
            self.stats.no_preshared_key += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):No pre-shared key for peer {peer}"
            ));
            return;
        }
        let local = SocketAddr::new(e.local, self.ike_port);
        let remote = SocketAddr::new(peer, self.ike_port);
        self.initiate(now, local, remote, entry, selector);
    }

    /// A CHILD_SA's lifetime ran out in the dataplane (`spi` inbound or
    /// outbound). A soft expiry starts a CREATE_CHILD_SA rekey
    /// (make-before-break); a hard one deletes the pair and tells the peer.
    pub fn sa_expired(&mut self, now: Instant, direction: Direction, spi: u32, hard: bool) {
        let Some(k) = self.sa_of_child(direction, spi) else {
            return;
        };
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let Some(c) = s.children.iter_mut().find(|c| c.info.spi(direction) == spi) else {
            return;
        };
        let spi_in = c.info.inbound_spi;
        if hard {
            self.delete_child_local(now, k, spi_in, false);
            return;
        }
        self.rekey_child(now, k, spi_in);
    }

    /// Starts a CREATE_CHILD_SA rekey of CHILD_SA `spi_in` of IKE SA `k`,
    /// unless one is under way.
    fn rekey_child(&mut self, now: Instant, k: [u8; 8], spi_in: u32) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let established = s.state == State::Established;
        let Some(c) = s.children.iter_mut().find(|c| c.info.inbound_spi == spi_in) else {
            return;
        };
        // A pair the peer rekeyed already goes with its DELETE.
        if c.rekeying || c.replaced || !established {
            return;
        }
        c.rekeying = true;
        c.rekey_retry_at = None;
        let (tag, selector) = (c.info.tag, c.info.proxy);
        let Some(entry) = self.policy.maps.iter().position(|e| e.tag == tag) else {
            return;
        };
        self.log(format!(
            "IKEv2:(SESSION ID = 0):Rekeying CHILD_SA with inbound SPI 0x{spi_in:08X}"
        ));
        self.request(
            now,
            k,
            Request::CreateChild {
                entry,
                selector,
                old_in: Some(spi_in),
            },
        );
    }

    /// CHILD_SA `spi_in` of IKE SA `k`, or of the one it moved to with
    /// an IKE SA rekey.
    fn child(&self, k: [u8; 8], spi_in: u32) -> Option<&Child> {
        let k = self.sa_of_child(Direction::Inbound, spi_in).unwrap_or(k);
        self.sas
            .get(&k)?
            .children
            .iter()
            .find(|c| c.info.inbound_spi == spi_in)
    }

    /// [`Engine::child`], to change.
    fn child_mut(&mut self, k: [u8; 8], spi_in: u32) -> Option<&mut Child> {
        let k = self.sa_of_child(Direction::Inbound, spi_in).unwrap_or(k);
        self.sas
            .get_mut(&k)?
            .children
            .iter_mut()
            .find(|c| c.info.inbound_spi == spi_in)
    }

    /// The IKE SA of the CHILD_SA whose SA in `direction` has `spi`.
    fn sa_of_child(&self, direction: Direction, spi: u32) -> Option<[u8; 8]> {
        let found = self
            .index
            .homes_of(direction, spi)
            .into_iter()
            .map(|(_, k)| k)
            .find(|k| {
                self.sas
                    .get(k)
                    .is_some_and(|s| s.children.iter().any(|c| c.info.spi(direction) == spi))
            });
        debug_assert!(
            found.is_some()
                || !self
                    .sas
                    .values()
                    .any(|s| s.children.iter().any(|c| c.info.spi(direction) == spi)),
            "the index lost a CHILD_SA"
        );
        found
    }

    /// Tests: the index holds exactly the SAs and CHILD_SAs there are.
    #[cfg(test)]
    pub(crate) fn check_index(&self) {
        let (mut children, mut sas) = (self.index.dump_children(), self.index.dump_sas());
        let mut want_children: Vec<(u32, [u8; 8])> = self
            .sas
            .iter()
            .flat_map(|(k, s)| s.children.iter().map(move |c| (c.info.inbound_spi, *k)))
            .collect();
        let mut want_sas: Vec<(IpAddr, [u8; 8])> =
            self.sas.iter().map(|(k, s)| (s.remote.ip(), *k)).collect();
        for v in [&mut children, &mut want_children] {
            v.sort_unstable();
        }
        sas.sort_unstable();
        want_sas.sort_unstable();
        assert_eq!(children, want_children, "CHILD_SAs indexed");
        assert_eq!(sas, want_sas, "IKE SAs indexed by peer");
    }

    /// Adds an IKE SA (every one goes in through here).
    fn insert_sa(&mut self, k: [u8; 8], s: IkeSa) {
        let peer = s.remote.ip();
        if let Some(old) = self.sas.insert(k, s) {
            // Our SPIs are random and checked, so not expected.
            self.index.sa_removed(old.remote.ip(), k);
        }
        self.index.sa_added(peer, k);
    }

    /// The IKE SAs with `peer`'s address.
    fn sas_with(&self, peer: IpAddr) -> Vec<[u8; 8]> {
        let found = self.index.sas_of(peer);
        debug_assert_eq!(
            found.iter().filter(|k| self.sas.contains_key(*k)).count(),
            self.sas.values().filter(|s| s.remote.ip() == peer).count(),
            "the index lost an IKE SA"
        );
        found
    }

    /// The driver could not install the CHILD_SA with inbound SPI
    /// `inbound_spi` (the dataplane refused it: another peer's SA has the
    /// same outbound SPI). It is deleted, and the peer told, so that it
    /// negotiates again with other SPIs; one whose CREATE_CHILD_SA we have
    /// not answered yet is dropped here only, and answered
    /// TEMPORARY_FAILURE ([`AfterThen::Answer`]).
    pub fn pair_refused(&mut self, now: Instant, inbound_spi: u32) {
        let Some(k) = self.sa_of_child(Direction::Inbound, inbound_spi) else {
            return;
        };
        self.stats.dataplane_refused += 1;
        self.log(format!(
            "IKEv2:the dataplane refused CHILD_SA with inbound SPI 0x{inbound_spi:08X}; deleting it"
        ));
        if self.held_answers().any(|(_, _, n)| n == inbound_spi) {
            // Not answered yet: the peer never hears of it.
            self.drop_child(k, inbound_spi);
            return;
        }
        self.delete_child_local(now, k, inbound_spi, false);
    }

    /// `clear crypto ikev2 sa`: every IKE SA deleted, peers told.
    pub fn clear(&mut self, now: Instant) {
        let keys: Vec<_> = self.sas.keys().copied().collect();
        for k in keys {
            self.delete_ike_local(now, k);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.values().filter_map(|s| self.sa_deadline(s)).min()
    }

    /// ESP from `peer` arrived: with on-demand DPD it proves the peer
    /// alive as IKE does, so no liveness check goes out while traffic
    /// flows (periodic DPD checks regardless, as IOS does). One call for
    /// every peer heard from walks the IKE SAs once.
    pub fn esp_received(&mut self, now: Instant, peers: &HashSet<IpAddr>) {
        if peers.is_empty() {
            return;
        }
        for &peer in peers {
            for k in self.sas_with(peer) {
                let policy = &self.policy;
                let Some(s) = self.sas.get_mut(&k) else {
                    continue;
                };
                if s.state != State::Established
                    || policy.dpd_of(s.profile).is_none_or(|d| d.periodic)
                {
                    continue;
                }
                s.last_heard = s.last_heard.max(now);
            }
        }
    }

    /// Authenticated ESP of the CHILD_SA with `inbound_spi` came from
    /// `port` of its peer (the dataplane's `SaCounts::peer_port`): a port
    /// other than its IKE SA's, through a NAT, is the peer's NAT mapping
    /// it anew (RFC 7296 §2.23: any packet whose integrity protection
    /// validates); follow it as for an IKE message.
    pub fn esp_from_port(&mut self, inbound_spi: u32, port: u16) {
        let found = self
            .sa_of_child(Direction::Inbound, inbound_spi)
            .and_then(|k| Some((k, self.sas.get(&k)?)))
            .and_then(|(k, s)| (s.state == State::Established).then_some((k, s.local, s.remote)));
        let Some((k, local, remote)) = found else {
            return;
        };
        if port != 0 && port != remote.port() {
            self.follow_nat_mapping(k, local, SocketAddr::new(remote.ip(), port), "ESP");
        }
    }

    /// When the liveness check of an idle established SA is due.
    fn liveness_at(&self, s: &IkeSa) -> Option<Instant> {
        if !s.usable() || s.flight.is_some() {
            return None;
        }
        let d = self.policy.dpd_of(s.profile)?;
        Some(s.last_heard + Duration::from_secs(u64::from(d.interval.max(1))))
    }

    fn sa_deadline(&self, s: &IkeSa) -> Option<Instant> {
        let half_open = (s.state == State::HalfOpen).then_some(s.created + HALF_OPEN_TIMEOUT);
        let usable = s.usable();
        [
            s.flight.as_ref().map(|f| f.next_at),
            half_open,
            self.liveness_at(s),
            s.rekey_at.filter(|_| usable),
            s.expires_at.filter(|_| usable),
            s.next_keepalive.filter(|_| usable),
            s.retire_at,
            s.children
                .iter()
                .filter_map(|c| c.rekey_retry_at)
                .min()
                .filter(|_| usable),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<[u8; 8]> = self
            .sas
            .iter()
            .filter(|(_, s)| self.sa_deadline(s).is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for k in due {
            self.sa_timeout(now, k);
        }
    }

    /// Every timer of one IKE SA that is due.
    fn sa_timeout(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get(&k) else {
            return;
        };
        if s.retire_at.is_some_and(|t| t <= now) {
            // Rekeyed, and the peer never deleted it: its CHILD_SAs live
            // on in the successor, so it goes without a word.
            self.remove_sa(k);
            return;
        }
        if s.state == State::HalfOpen && s.created + HALF_OPEN_TIMEOUT <= now {
            self.remove_sa(k);
            return;
        }
        if s.usable() && s.expires_at.is_some_and(|t| t <= now) {
            self.expire(now, k);
            return;
        }
        if s.flight.as_ref().is_some_and(|f| f.next_at <= now) && !self.retransmit(now, k) {
            return;
        }
        self.run_keepalive(now, k);
        self.run_ike_rekey(now, k);
        self.retry_child_rekeys(now, k);
        let Some(s) = self.sas.get(&k) else {
            return;
        };
        if self.liveness_at(s).is_some_and(|t| t <= now) {
            self.stats.liveness_sent += 1;
            self.request(now, k, Request::Liveness);
        }
    }

    /// Sends the request in flight again, or gives the SA up after
    /// [`MAX_RETRANSMITS`]; false when the SA is gone. Liveness checks
    /// are repeated every DPD `retry` seconds, the rest with back-off.
    fn retransmit(&mut self, now: Instant, k: [u8; 8]) -> bool {
        let retry = self
            .sas
            .get(&k)
            .and_then(|s| self.policy.dpd_of(s.profile))
            .map(|d| d.retry.max(1));
        let Some(s) = self.sas.get_mut(&k) else {
            return false;
        };
        let Some(f) = &mut s.flight else {
            return true;
        };
        if f.attempts >= MAX_RETRANSMITS {
            let kind = f.kind.clone();
            self.stats.retransmit_limit += 1;
            if s.state == State::Established && s.successor.is_none() {
                self.stats.dead_peers += 1;
                let peer = s.remote.ip();
                self.log(format!(
                    "IKEv2:(SESSION ID = 0):Peer {peer} did not answer ({kind:?}): deleting the IKE SA"
                ));
                self.remove_predecessors(k);
            }
            self.fail_initiator_hold(now, k);
            self.remove_sa(k);
            return false;
        }
        f.attempts += 1;
        let wait = match (&f.kind, retry) {
            (Request::Liveness, Some(r)) => Duration::from_secs(u64::from(r)),
            _ => (RETRANSMIT_BASE * 2u32.pow(f.attempts)).min(RETRANSMIT_CAP),
        };
        f.next_at = now + wait;
        let (local, remote, data) = (s.local, s.remote, f.data.clone());
        self.stats.retransmitted += 1;
        self.send(local, remote, data);
        true
    }

    /// The SAs that IKE SA `k` replaced and that still wait for the
    /// peer's Delete: a dead peer never sends it, and they would stay
    /// READY in `show` until they retire.
    /// They are with the same peer: a rekey keeps the address.
    fn remove_predecessors(&mut self, k: [u8; 8]) {
        let Some(peer) = self.sas.get(&k).map(|s| s.remote.ip()) else {
            return;
        };
        let mut next = vec![k];
        while let Some(n) = next.pop() {
            let old: Vec<[u8; 8]> = self
                .sas_with(peer)
                .into_iter()
                .filter(|o| self.sas.get(o).is_some_and(|s| s.successor == Some(n)))
                .collect();
            for o in old {
                self.remove_sa(o);
                next.push(o);
            }
        }
    }

    fn fail_initiator_hold(&mut self, now: Instant, k: [u8; 8]) {
        if let Some(p) = self.sas.get(&k).and_then(|s| s.pending.as_ref()) {
            let tag = self.policy.maps[p.entry].tag;
            self.hold_down.push((tag, now + HOLD_DOWN));
        }
    }

    /// Our address `addr` went (a DHCP re-lease): the IKE SAs bound to it
    /// and their CHILD_SAs can never be used again and go at once,
    /// without a Delete (nothing can be sent from that address); SAs on
    /// other addresses stay. Returns how many IKE SAs went.
    pub fn local_address_gone(&mut self, addr: IpAddr) -> usize {
        let gone: Vec<[u8; 8]> = self
            .sas
            .iter()
            .filter(|(_, s)| s.local.ip() == addr)
            .map(|(k, _)| *k)
            .collect();
        for &k in &gone {
            self.remove_sa(k);
        }
        if !gone.is_empty() {
            self.stats.local_addresses_lost += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):Local address {addr} is gone: deleted {} IKE SA(s) bound to it",
                gone.len()
            ));
        }
        gone.len()
    }

    /// Forgets an IKE SA and removes its CHILD_SAs from the dataplane.
    fn remove_sa(&mut self, k: [u8; 8]) {
        let Some(s) = self.sas.remove(&k) else {
            return;
        };
        self.index.sa_removed(s.remote.ip(), k);
        if s.state == State::HalfOpen {
            self.half_open.left(s.admitted_from(), s.cookied);
        }
        // Directly, not by a walk of the map: a hub removes thousands.
        if let Some(from) = s.init_from {
            if self.by_peer_spi.get(&(from, s.spi_i)) == Some(&k) {
                self.by_peer_spi.remove(&(from, s.spi_i));
            }
        }
        for c in s.children {
            self.index.child_removed(c.info.inbound_spi);
            self.out.push_back(Output::Delete {
                inbound_spi: c.info.inbound_spi,
                outbound_spi: c.info.outbound_spi,
            });
        }
    }

    /// RFC 7296 §2.23: an authenticated message of an IKE SA through a NAT
    /// in front of the peer came from another port of the peer's address:
    /// its NAT mapped it anew (a reboot, a timeout). The IKE SA and its
    /// CHILD_SAs' ESP follow to the new port. A host behind the NAT itself
    /// does not (§2.23: SHOULD NOT).
    fn follow_nat_mapping(&mut self, k: [u8; 8], local: SocketAddr, remote: SocketAddr, via: &str) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if !s.nat
            || s.behind_nat
            || local.port() != self.nat_t_port
            || local.ip() != s.local.ip()
            || remote.ip() != s.remote.ip()
            || remote.port() == s.remote.port()
        {
            return;
        }
        let (old, id) = (s.remote.port(), s.id);
        s.remote = remote;
        s.local = local;
        let spis: Vec<u32> = s.children.iter().map(|c| c.info.outbound_spi).collect();
        for &outbound_spi in &spis {
            self.out.push_back(Output::PeerPort {
                outbound_spi,
                port: remote.port(),
            });
        }
        self.log(format!(
            "IKEv2:(SESSION ID = {id}):peer {}'s NAT mapping moved from port {old} to {} ({via}): IKE SA and {} CHILD_SA(s) follow",
            remote.ip(),
            remote.port(),
            spis.len()
        ));
    }

    /// One datagram from `remote` to our `local`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        let Ok(msg) = Message::decode(data) else {
            self.stats.malformed += 1;
            return;
        };
        let h = &msg.header;
        if h.version >> 4 != 2 {
            self.stats.malformed += 1;
            return;
        }
        let response = h.flags.contains(Flags::RESPONSE);
        let from_initiator = h.flags.contains(Flags::INITIATOR);
        if h.exchange == ExchangeType::IKE_SA_INIT {
            if !response && from_initiator && h.responder_spi == [0; 8] && h.message_id == 0 {
                self.respond_init(now, local, remote, data, &msg);
            } else if response && !from_initiator && h.message_id == 0 {
                self.handle_init_response(now, remote, data, &msg);
            } else {
                self.stats.unexpected_message += 1;
            }
            return;
        }
        let ours = if from_initiator {
            h.responder_spi
        } else {
            h.initiator_spi
        };
        let Some(s) = self.sas.get(&ours) else {
            self.stats.unknown_spi += 1;
            return;
        };
        if s.spi_i != h.initiator_spi || s.spi_r != h.responder_spi || s.initiator == from_initiator
        {
            self.stats.unknown_spi += 1;
            return;
        }
        if !response {
            // A repeated request: answer from the stored response, before
            // any decryption (RFC 7296 §2.1).
            if h.message_id.wrapping_add(1) == s.peer_mid {
                if let Some((mid, resp)) = &s.last_response {
                    if *mid == h.message_id {
                        // To where the request came from (§2.11): a NAT
                        // may have mapped the peer anew since.
                        let same = Sha256::digest(data)[..] == s.request_digest;
                        let (l, r) = if same {
                            (local, remote)
                        } else {
                            (s.local, s.remote)
                        };
                        let d = resp.clone();
                        self.stats.duplicates += 1;
                        self.send(l, r, d);
                        return;
                    }
                }
                if self
                    .held_answers()
                    .any(|(k, mid, _)| k == ours && mid == h.message_id)
                {
                    // Its answer is held for its pair's install and goes
                    // out in this pass of the driver.
                    self.stats.duplicates += 1;
                    return;
                }
            }
            if h.message_id != s.peer_mid {
                self.stats.unexpected_message += 1;
                return;
            }
        } else if s
            .flight
            .as_ref()
            .is_none_or(|f| f.message_id != h.message_id)
        {
            self.stats.unexpected_message += 1;
            return;
        }
        let Some(payloads) = s.rx.as_ref().and_then(|rx| rx.open(data, &msg)) else {
            self.stats.integrity_failed += 1;
            return;
        };
        let exchange = h.exchange;
        let mid = h.message_id;
        let Some(s) = self.sas.get_mut(&ours) else {
            return;
        };
        s.last_heard = now;
        if !response {
            s.request_digest = Sha256::digest(data).into();
        }
        if s.state == State::Established {
            self.follow_nat_mapping(ours, local, remote, "IKE");
        }
        let Some(s) = self.sas.get(&ours) else {
            return;
        };
        if response
            && !s
                .flight
                .as_ref()
                .is_some_and(|f| answers(exchange, &f.kind))
        {
            // The right message ID, but not an answer to what we asked:
            // the request stays in flight (retransmitted, then given up).
            self.stats.unexpected_message += 1;
            return;
        }
        match (exchange, response) {
            (ExchangeType::IKE_AUTH, false) if s.state == State::HalfOpen => {
                self.respond_auth(now, ours, local, remote, &payloads)
            }
            (ExchangeType::IKE_AUTH, true) if s.state == State::AuthSent => {
                self.handle_auth_response(now, ours, &payloads)
            }
            (ExchangeType::INFORMATIONAL, false) if s.state == State::Established => {
                self.respond_info(now, ours, mid, &payloads)
            }
            (ExchangeType::INFORMATIONAL, true) if s.state == State::Established => {
                self.handle_info_response(now, ours)
            }
            (ExchangeType::CREATE_CHILD_SA, false) if s.state == State::Established => {
                if rekey::is_ike_rekey(&payloads) {
                    self.respond_rekey_ike(now, ours, mid, &payloads)
                } else {
                    self.respond_create_child(now, ours, mid, &payloads)
                }
            }
            (ExchangeType::CREATE_CHILD_SA, true) if s.state == State::Established => {
                if s.flight
                    .as_ref()
                    .is_some_and(|f| matches!(f.kind, Request::RekeyIke(_)))
                {
                    self.handle_rekey_ike_response(now, ours, &payloads)
                } else {
                    self.handle_create_child_response(now, ours, &payloads)
                }
            }
            _ => self.stats.unexpected_message += 1,
        }
    }
}
