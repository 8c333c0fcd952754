//! IKE SA rekey (RFC 7296 §1.3.2, §2.18) in both roles, with the
//! simultaneous-rekey rule of §2.8.1, and the per-SA timers that come
//! with an established IKE SA: its rekey point and NAT keepalives.
//!
//! A rekey is a CREATE_CHILD_SA with SA (protocol IKE, the new 8-octet
//! SPI), Ni and KEi, answered with SA, Nr and KEr. The new SA's keys come
//! from SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr); its Message IDs
//! start at 0; the CHILD_SAs move to it as they are (nothing changes in
//! the dataplane) and the rekey's initiator deletes the old SA under the
//! old SA's keys. Only the side that made the IKE SA rekeys early
//! (85-95% of the lifetime, jittered); the other one only when the
//! lifetime ran out without a rekey, so IOS and strongSwan peers rarely
//! collide. When they do, both exchanges complete and the one with the
//! lowest of the four nonces is deleted by whoever started it.

use std::time::{Duration, Instant};

use crate::ike::crypto::v2 as kdf;
use crate::ike::crypto::{random, DhGroup, DhPrivate};
use crate::ike::wire::ikev2::{
    ExchangeType, KeyExchange, Notify, NotifyType, Payload, PayloadBody, ProtocolId,
    SecurityAssociation,
};

use super::super::proposal::{self, IkeChoice, IkeSelectError};
use super::init::derive_from_seed;
use super::{find_notify, Engine, IkeSa, Output, Request, State, NONCE_LEN};

/// A failed IKE SA or CHILD_SA rekey is tried again after this long.
pub(super) const REKEY_RETRY: Duration = Duration::from_secs(10);
/// How long past its lifetime an IKE SA whose rekeys keep failing stays
/// (at least; a tenth of the lifetime when that is longer), so a peer
/// that answers but refuses every rekey does not keep it forever.
const EXPIRY_GRACE: Duration = Duration::from_secs(30);
/// A rekeyed SA the peer should delete is forgotten after this long
/// (longer than the peer's retransmissions of its Delete).
const RETIRE_AFTER: Duration = Duration::from_secs(60);
/// The IKE SA's initiator rekeys at 850‰ plus up to this many ‰ of
/// the lifetime.
const REKEY_BASE_PERMILLE: u64 = 850;
const REKEY_JITTER_PERMILLE: u16 = 100;

/// Our IKE SA rekey request in flight.
pub(super) struct IkeRekey {
    spi: [u8; 8],
    ni: Vec<u8>,
    dh: DhPrivate,
}

/// The payloads of an IKE SA rekey exchange.
struct RekeyPayloads<'a> {
    sa: Option<&'a SecurityAssociation>,
    nonce: Option<&'a Vec<u8>>,
    ke: Option<&'a KeyExchange>,
}

fn collect(payloads: &[Payload]) -> RekeyPayloads<'_> {
    let mut r = RekeyPayloads {
        sa: None,
        nonce: None,
        ke: None,
    };
    for p in payloads {
        match &p.body {
            PayloadBody::Sa(x) => r.sa = Some(x),
            PayloadBody::Nonce(x) => r.nonce = Some(x),
            PayloadBody::KeyExchange(x) => r.ke = Some(x),
            _ => {}
        }
    }
    r
}

/// A CREATE_CHILD_SA request rekeys the IKE SA when its SA payload
/// proposes protocol IKE and it has no traffic selectors (§1.3.2).
pub(super) fn is_ike_rekey(payloads: &[Payload]) -> bool {
    let mut ike = false;
    for p in payloads {
        match &p.body {
            PayloadBody::TsInitiator(_) | PayloadBody::TsResponder(_) => return false,
            PayloadBody::Sa(sa) => {
                ike = sa.proposals.iter().any(|x| x.protocol == ProtocolId::IKE);
            }
            _ => {}
        }
    }
    ike
}

/// The new SPI of the peer's IKE proposal: 8 octets, not zero.
fn ike_spi(sa: &SecurityAssociation, number: Option<u8>) -> Option<[u8; 8]> {
    let p = sa
        .proposals
        .iter()
        .find(|p| p.protocol == ProtocolId::IKE && number.is_none_or(|n| n == p.number))?;
    let spi = <[u8; 8]>::try_from(p.spi.as_slice()).ok()?;
    (spi != [0; 8]).then_some(spi)
}

fn valid_nonce(n: &[u8]) -> bool {
    (16..=256).contains(&n.len())
}

/// The lower of an exchange's two nonces, for §2.8.1.
pub(super) fn lowest(ni: &[u8], nr: &[u8]) -> Vec<u8> {
    ni.min(nr).to_vec()
}

/// What a new IKE SA made by a rekey is built from.
struct NewSa {
    spi_i: [u8; 8],
    spi_r: [u8; 8],
    initiator: bool,
    choice: IkeChoice,
    ni: Vec<u8>,
    nr: Vec<u8>,
    g_ir: zeroize::Zeroizing<Vec<u8>>,
}

impl Engine {
    /// The IKE SA is up: its rekey point and, behind a NAT, keepalives.
    pub(super) fn arm_established(&mut self, now: Instant, k: [u8; 8]) {
        let profile = self.sas.get(&k).and_then(|s| s.profile);
        let lifetime = u64::from(self.policy.lifetime_of(profile).max(1));
        let keepalive = self.policy.nat_keepalive;
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let permille = if s.initiator {
            let jitter = u16::from_be_bytes(random()) % REKEY_JITTER_PERMILLE;
            REKEY_BASE_PERMILLE + u64::from(jitter)
        } else {
            1000
        };
        s.rekey_at = Some(now + Duration::from_millis(lifetime * permille));
        let lifetime = Duration::from_secs(lifetime);
        s.expires_at = Some(now + lifetime + EXPIRY_GRACE.max(lifetime / 10));
        s.next_keepalive = keepalive
            .filter(|_| s.behind_nat)
            .map(|secs| now + Duration::from_secs(u64::from(secs.max(1))));
    }

    /// Behind a NAT, an empty keepalive every `nat_keepalive` seconds
    /// keeps the NAT's mapping for UDP 4500 (RFC 3948 §2.3).
    pub(super) fn run_keepalive(&mut self, now: Instant, k: [u8; 8]) {
        let Some(secs) = self.policy.nat_keepalive else {
            return;
        };
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if !s.usable() || s.next_keepalive.is_none_or(|t| t > now) {
            return;
        }
        s.next_keepalive = Some(now + Duration::from_secs(u64::from(secs.max(1))));
        let (local, remote) = (s.local, s.remote);
        self.out.push_back(Output::Keepalive { local, remote });
    }

    /// The rekey point passed: rekey, unless a rekey already happened or
    /// runs.
    pub(super) fn run_ike_rekey(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if !s.usable() || s.rekey_at.is_none_or(|t| t > now) || s.peer_rekeyed.is_some() {
            return;
        }
        self.start_ike_rekey(now, k);
    }

    fn start_ike_rekey(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let Some(group) = s.choice.map(|c| c.group) else {
            return;
        };
        s.rekey_at = None;
        let remote = s.remote;
        self.log(format!(
            "IKEv2:(SESSION ID = 0):Rekeying the IKE SA with {remote}"
        ));
        self.request(now, k, Request::RekeyIke(group));
    }

    /// Tests: rekey every established IKE SA now (a collision when both
    /// engines do it before either hears the other), with a KE of
    /// `group` if given (as a peer with other preferences would).
    #[cfg(test)]
    pub(crate) fn rekey_ike_sas_now(&mut self, now: Instant, group: Option<DhGroup>) {
        let keys: Vec<[u8; 8]> = self
            .sas
            .iter()
            .filter(|(_, s)| s.usable() && s.rekey.is_none())
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            match group {
                Some(g) => {
                    if let Some(s) = self.sas.get_mut(&k) {
                        s.rekey_at = None;
                    }
                    self.request(now, k, Request::RekeyIke(g));
                }
                None => self.start_ike_rekey(now, k),
            }
        }
    }

    /// Sends our rekey request: our proposals with a new SPI, a nonce and
    /// a KE of `group` (the current SA's, or the one the peer asked for).
    pub(super) fn send_rekey_ike(&mut self, now: Instant, k: [u8; 8], group: DhGroup) {
        let Ok(dh) = group.generate() else {
            self.rekey_failed(now, k, "no DH key pair");
            return;
        };
        let spi = random::<8>();
        let ni = random::<NONCE_LEN>().to_vec();
        let Some(local) = self.sas.get(&k).map(|s| s.local.ip()) else {
            return;
        };
        let ours = self.policy.proposals_for(local);
        let payloads: Vec<Payload> = vec![
            PayloadBody::Sa(proposal::ike_sa_payload(&ours, &spi)).into(),
            PayloadBody::Nonce(ni.clone()).into(),
            PayloadBody::KeyExchange(KeyExchange {
                group: group.id(),
                data: dh.public_value().to_vec(),
            })
            .into(),
        ];
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if !s.usable() {
            // Rekeyed by the peer meanwhile: what is queued goes on.
            self.send_next_request(now, k);
            return;
        }
        s.rekey = Some(IkeRekey { spi, ni, dh });
        self.send_request(
            now,
            k,
            ExchangeType::CREATE_CHILD_SA,
            payloads,
            Request::RekeyIke(group),
        );
    }

    /// Refuses the peer's CREATE_CHILD_SA with one notify.
    fn refuse(&mut self, k: [u8; 8], mid: u32, n: NotifyType, data: Vec<u8>) {
        let n = Notify::new(n, data);
        self.respond(
            k,
            ExchangeType::CREATE_CHILD_SA,
            mid,
            vec![PayloadBody::Notify(n).into()],
        );
    }

    /// Responder: the peer rekeys IKE SA `k`.
    pub(super) fn respond_rekey_ike(
        &mut self,
        now: Instant,
        k: [u8; 8],
        mid: u32,
        payloads: &[Payload],
    ) {
        let Some(s) = self.sas.get(&k) else {
            return;
        };
        if !s.usable() || s.peer_rekeyed.is_some() {
            // Already rekeyed (or being deleted): §2.25.
            self.refuse(k, mid, NotifyType::TEMPORARY_FAILURE, Vec::new());
            return;
        }
        let p = collect(payloads);
        let (Some(sa), Some(ni), Some(ke)) = (p.sa, p.nonce, p.ke) else {
            self.stats.malformed += 1;
            self.refuse(k, mid, NotifyType::INVALID_SYNTAX, Vec::new());
            return;
        };
        let ours = self.policy.proposals_for(s.local.ip());
        let (choice, number) = match proposal::select_ike(&ours, sa, ke.group) {
            Ok(c) => c,
            Err(IkeSelectError::NoProposal) => {
                self.stats.no_proposal_chosen += 1;
                self.refuse(k, mid, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
                return;
            }
            Err(IkeSelectError::InvalidKe(g)) => {
                self.stats.invalid_ke_sent += 1;
                self.refuse(
                    k,
                    mid,
                    NotifyType::INVALID_KE_PAYLOAD,
                    g.id().to_be_bytes().to_vec(),
                );
                return;
            }
        };
        let (Some(spi_i), true) = (ike_spi(sa, Some(number)), valid_nonce(ni)) else {
            self.stats.malformed += 1;
            self.refuse(k, mid, NotifyType::INVALID_SYNTAX, Vec::new());
            return;
        };
        let Ok(dh) = choice.group.generate() else {
            return;
        };
        let Ok(g_ir) = dh.shared_secret(&ke.data) else {
            self.stats.bad_key_exchange += 1;
            self.refuse(k, mid, NotifyType::INVALID_SYNTAX, Vec::new());
            return;
        };
        let spi_r = random::<8>();
        let nr = random::<NONCE_LEN>().to_vec();
        let reply: Vec<Payload> = vec![
            PayloadBody::Sa(proposal::ike_choice_payload(&choice, number, &spi_r)).into(),
            PayloadBody::Nonce(nr.clone()).into(),
            PayloadBody::KeyExchange(KeyExchange {
                group: choice.group.id(),
                data: dh.public_value().to_vec(),
            })
            .into(),
        ];
        let low = lowest(ni, &nr);
        let new = NewSa {
            spi_i,
            spi_r,
            initiator: false,
            choice,
            ni: ni.clone(),
            nr,
            g_ir,
        };
        let Some(n) = self.make_rekeyed_sa(now, k, new) else {
            return;
        };
        self.respond(k, ExchangeType::CREATE_CHILD_SA, mid, reply);
        if let Some(s) = self.sas.get_mut(&n) {
            s.predecessor = Some(k);
        }
        // The pairs move now; with our own rekey in flight that is only
        // provisional until both exchanges are done (§2.8.1).
        self.move_children(k, n);
        let Some(old) = self.sas.get_mut(&k) else {
            return;
        };
        old.peer_rekeyed = Some((n, low));
        if old.rekey.is_none() {
            old.successor = Some(n);
            old.retire_at = Some(now + RETIRE_AFTER);
            self.move_queue(k, n);
        }
        self.log_rekeyed(k, n);
    }

    /// Initiator: the answer to our rekey of IKE SA `k`.
    pub(super) fn handle_rekey_ike_response(
        &mut self,
        now: Instant,
        k: [u8; 8],
        payloads: &[Payload],
    ) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        s.flight = None;
        let Some(ours) = s.rekey.take() else {
            return;
        };
        let remote = s.remote;
        let local = s.local.ip();
        if let Some(n) = find_notify(payloads, NotifyType::INVALID_KE_PAYLOAD) {
            self.stats.invalid_ke_received += 1;
            let asked = n.accepted_group();
            let g = self
                .policy
                .proposals_for(local)
                .iter()
                .flat_map(|p| p.groups.iter())
                .copied()
                .find(|g| Some(g.id()) == asked);
            match g {
                Some(g) if g != ours.dh.group() => {
                    self.log(format!(
                        "IKEv2:(SESSION ID = 0):INVALID_KE_PAYLOAD from {remote} at IKE SA rekey: retrying with group {}",
                        g.id()
                    ));
                    self.request(now, k, Request::RekeyIke(g));
                }
                _ => self.rekey_failed(now, k, "INVALID_KE_PAYLOAD"),
            }
            return;
        }
        if let Some(n) = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
            _ => None,
        }) {
            if n == NotifyType::NO_PROPOSAL_CHOSEN {
                self.stats.no_proposal_chosen += 1;
            }
            self.rekey_failed(now, k, &format!("{n:?}"));
            return;
        }
        let p = collect(payloads);
        let accepted = (|| {
            let sa = p.sa?;
            let choice = proposal::accept_ike(&self.policy.proposals_for(local), sa)?;
            let spi_r = ike_spi(sa, None)?;
            let (nr, ke) = (p.nonce?, p.ke?);
            if !valid_nonce(nr) || choice.group != ours.dh.group() || ke.group != choice.group.id()
            {
                return None;
            }
            let g_ir = ours.dh.shared_secret(&ke.data).ok()?;
            Some((choice, spi_r, nr.clone(), g_ir))
        })();
        let Some((choice, spi_r, nr, g_ir)) = accepted else {
            self.stats.malformed += 1;
            self.rekey_failed(now, k, "unacceptable answer");
            return;
        };
        let low = lowest(&ours.ni, &nr);
        let new = NewSa {
            spi_i: ours.spi,
            spi_r,
            initiator: true,
            choice,
            ni: ours.ni,
            nr,
            g_ir,
        };
        let Some(m) = self.make_rekeyed_sa(now, k, new) else {
            return;
        };
        self.log_rekeyed(k, m);
        let collision = self.sas.get(&k).and_then(|s| s.peer_rekeyed.clone());
        match collision {
            None => self.won(now, k, m, None),
            Some((n, peer_low)) if peer_low < low => self.won(now, k, m, Some(n)),
            Some((n, _)) => self.lost(now, k, m, n),
        }
    }

    /// Our rekey of `k` made `m`, which survives: the pairs (and queued
    /// requests) move to it, and we delete the old SA. The peer deletes
    /// its redundant `loser`, if any; if it never does, it is forgotten.
    fn won(&mut self, now: Instant, k: [u8; 8], m: [u8; 8], loser: Option<[u8; 8]>) {
        if let Some(n) = loser {
            self.move_children(n, m);
            if let Some(x) = self.sas.get_mut(&n) {
                x.successor = Some(m);
                x.retire_at = Some(now + RETIRE_AFTER);
            }
        }
        self.move_children(k, m);
        self.move_queue(k, m);
        let Some(old) = self.sas.get_mut(&k) else {
            return;
        };
        old.successor = Some(m);
        old.queue.clear();
        self.request(now, k, Request::DeleteIke);
        self.send_next_request(now, m);
    }

    /// Simultaneous rekey, and ours `m` holds the lowest nonce: we delete
    /// it; the pairs stay with the peer's `n`, whose initiator (the peer)
    /// deletes the old SA `k`.
    fn lost(&mut self, now: Instant, k: [u8; 8], m: [u8; 8], n: [u8; 8]) {
        self.log(
            "IKEv2:(SESSION ID = 0):Simultaneous IKE SA rekey: ours has the lowest nonce, deleting it"
                .to_string(),
        );
        self.move_children(k, n);
        self.move_queue(k, n);
        if let Some(old) = self.sas.get_mut(&k) {
            old.successor = Some(n);
            old.retire_at = Some(now + RETIRE_AFTER);
        }
        if let Some(x) = self.sas.get_mut(&m) {
            x.successor = Some(n);
        }
        self.request(now, m, Request::DeleteIke);
        self.send_next_request(now, n);
    }

    /// The lifetime and its grace passed without a rekey: delete the SA
    /// and its CHILD_SAs (the next packet or the VTI keeper starts anew).
    pub(super) fn expire(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        // Once: the SA lives on until the peer answers the delete.
        s.expires_at = None;
        s.rekey_at = None;
        let remote = s.remote;
        self.stats.ike_expired += 1;
        self.log(format!(
            "IKEv2:(SESSION ID = 0):IKE SA with {remote} expired without a rekey: deleting it"
        ));
        self.delete_ike_local(now, k);
    }

    /// Our rekey was refused: unless the peer rekeyed meanwhile, try
    /// again a little later (the old SA keeps working).
    fn rekey_failed(&mut self, now: Instant, k: [u8; 8], why: &str) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let remote = s.remote;
        if let Some((n, _)) = s.peer_rekeyed {
            // The peer's rekey stands alone: its initiator deletes `k`.
            s.successor = Some(n);
            s.retire_at = Some(now + RETIRE_AFTER);
            self.move_queue(k, n);
            self.send_next_request(now, n);
        } else {
            s.rekey_at = Some(now + REKEY_RETRY);
            self.send_next_request(now, k);
        }
        self.log(format!(
            "IKEv2:(SESSION ID = 0):IKE SA rekey with {remote} failed: {why}"
        ));
    }

    /// Builds the new IKE SA from old SA `k` and the rekey exchange, with
    /// SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) (§2.18); returns
    /// its key (our SPI).
    fn make_rekeyed_sa(&mut self, now: Instant, k: [u8; 8], n: NewSa) -> Option<[u8; 8]> {
        let old = self.sas.get(&k)?;
        let seed = kdf::rekey_skeyseed(old.prf(), &old.keys.as_ref()?.sk_d, &n.g_ir, &n.ni, &n.nr);
        let (keys, tx, rx) = derive_from_seed(
            &n.choice,
            &seed,
            &n.ni,
            &n.nr,
            &n.spi_i,
            &n.spi_r,
            n.initiator,
        )?;
        let ours = if n.initiator { n.spi_i } else { n.spi_r };
        // Keepalives go on at their own pace across the rekey.
        let keepalive = old.next_keepalive;
        if self.sas.contains_key(&ours) {
            return None;
        }
        let s = IkeSa {
            choice: Some(n.choice),
            ni: n.ni,
            nr: n.nr,
            keys: Some(keys),
            tx: Some(tx),
            rx: Some(rx),
            nat: old.nat,
            behind_nat: old.behind_nat,
            profile: old.profile,
            local_id: old.local_id.clone(),
            remote_id: old.remote_id.clone(),
            ..IkeSa::blank(
                self.next_tunnel_id,
                n.spi_i,
                n.spi_r,
                n.initiator,
                old.local,
                old.remote,
                State::Established,
                n.choice.group,
                now,
            )
        };
        self.tunnel_id();
        self.insert_sa(ours, s);
        self.stats.ike_rekeyed += 1;
        self.arm_established(now, ours);
        if let Some(s) = self.sas.get_mut(&ours) {
            if s.next_keepalive.is_some() && keepalive.is_some() {
                s.next_keepalive = keepalive;
            }
        }
        Some(ours)
    }

    fn log_rekeyed(&mut self, k: [u8; 8], n: [u8; 8]) {
        let spis = |s: &IkeSa| format!("{}/{}", hex(&s.spi_i), hex(&s.spi_r));
        let (Some(old), Some(new)) = (self.sas.get(&k), self.sas.get(&n)) else {
            return;
        };
        let line = format!(
            "IKEv2:(SESSION ID = 0):IKE SA {} with {} rekeyed: new SPIs {}",
            spis(old),
            old.remote,
            spis(new)
        );
        self.log(line);
    }

    /// Moves the CHILD_SAs of IKE SA `from` to `to`: bookkeeping only,
    /// the pairs in the dataplane stay as they are.
    fn move_children(&mut self, from: [u8; 8], to: [u8; 8]) {
        if from == to || !self.sas.contains_key(&to) {
            return;
        }
        let Some(f) = self.sas.get_mut(&from) else {
            return;
        };
        let children = std::mem::take(&mut f.children);
        for c in &children {
            self.index.child_moved(c.info.inbound_spi, to);
        }
        if let Some(t) = self.sas.get_mut(&to) {
            t.children.extend(children);
        }
    }

    /// Requests queued on the old SA go out on the new one.
    fn move_queue(&mut self, from: [u8; 8], to: [u8; 8]) {
        let Some(f) = self.sas.get_mut(&from) else {
            return;
        };
        let queued: Vec<Request> = f
            .queue
            .drain(..)
            .filter(|r| !matches!(r, Request::DeleteIke | Request::RekeyIke(_)))
            .collect();
        if let Some(t) = self.sas.get_mut(&to) {
            t.queue.extend(queued);
        }
    }

    /// The peer deletes IKE SA `k`, made by its rekey of an SA whose own
    /// rekey by us is still in flight: `k` lost the collision, so its
    /// provisional CHILD_SAs go back to the old SA (and on to ours when
    /// our answer comes) instead of out of the dataplane.
    pub(super) fn give_back_children(&mut self, k: [u8; 8]) {
        let Some(p) = self.sas.get(&k).and_then(|s| s.predecessor) else {
            return;
        };
        let Some(old) = self.sas.get_mut(&p) else {
            return;
        };
        if old.rekey.is_none() || old.peer_rekeyed.as_ref().is_none_or(|x| x.0 != k) {
            return;
        }
        old.peer_rekeyed = None;
        self.move_children(k, p);
    }

    /// Where IKE SA `k`'s CHILD_SAs live: `k`, or the SA that replaced
    /// it by a rekey (and so on).
    pub(super) fn home(&self, mut k: [u8; 8]) -> [u8; 8] {
        for _ in 0..8 {
            match self.sas.get(&k).and_then(|s| s.successor) {
                Some(n) if self.sas.contains_key(&n) => k = n,
                _ => break,
            }
        }
        k
    }
}

fn hex(spi: &[u8; 8]) -> String {
    spi.iter().map(|b| format!("{b:02X}")).collect()
}
