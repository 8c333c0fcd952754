//! IKE_SA_INIT (RFC 7296 §1.2) on both sides: proposals, key exchange,
//! nonces, NAT detection (§2.23), INVALID_KE_PAYLOAD (§1.3) and cookies
//! (§2.6).

use std::net::SocketAddr;
use std::time::Instant;

use dataplane::spd::TrafficSelector;

use crate::ike::crypto::v2::{self as kdf, IkeSaKeys, KeyLengths};
use crate::ike::wire::ikev2::{
    ExchangeType, Flags, Header, KeyExchange, Message, Notify, NotifyType, PayloadBody,
};

use super::super::crypt::{encr_key_len, integ_key_len, SkKeys};
use super::super::proposal::{self, IkeSelectError};
use super::half_open::PER_ADDRESS_LIMIT;
use super::{
    find_notify, nat_hash, random, Engine, Flight, IkeSa, PendingChild, Request, State,
    HALF_OPEN_LIMIT, MAX_INIT_RESTARTS, NONCE_LEN, RETRANSMIT_BASE,
};

impl Engine {
    pub(super) fn initiate(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        entry: usize,
        selector: TrafficSelector,
    ) {
        let Some(group) = self
            .policy
            .proposals_for(local.ip())
            .first()
            .and_then(|p| p.groups.first())
            .copied()
        else {
            self.stats.no_proposal_chosen += 1;
            return;
        };
        let spi_i = random::<8>();
        let s = IkeSa {
            ni: random::<NONCE_LEN>().to_vec(),
            next_mid: 1,
            pending: Some(PendingChild {
                entry,
                selector,
                spi_in: self.alloc_spi(),
            }),
            profile: Some(self.policy.entry_profile(entry)),
            ..IkeSa::blank(
                self.tunnel_id(),
                spi_i,
                [0; 8],
                true,
                local,
                remote,
                State::InitSent,
                group,
                now,
            )
        };
        self.insert_sa(spi_i, s);
        self.log(format!(
            "IKEv2:(SESSION ID = 0):Initiating IKE_SA_INIT to {remote}, group {}",
            group.id()
        ));
        self.send_init(now, spi_i);
    }

    /// (Re)builds and sends the initiator's IKE_SA_INIT with the current
    /// group and cookie.
    fn send_init(&mut self, now: Instant, k: [u8; 8]) {
        let Some(local) = self.sas.get(&k).map(|s| s.local.ip()) else {
            return;
        };
        let proposals = self.policy.proposals_for(local);
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if s.dh.as_ref().is_none_or(|d| d.group() != s.group) {
            match s.group.generate() {
                Ok(d) => s.dh = Some(d),
                Err(_) => return,
            }
        }
        let dh = s.dh.as_ref().expect("generated above");
        let mut payloads: Vec<PayloadBody> = Vec::new();
        if let Some(c) = &s.cookie {
            payloads.push(PayloadBody::Notify(Notify::new(
                NotifyType::COOKIE,
                c.clone(),
            )));
        }
        payloads.push(PayloadBody::Sa(proposal::ike_sa_payload(&proposals, &[])));
        payloads.push(PayloadBody::KeyExchange(KeyExchange {
            group: s.group.id(),
            data: dh.public_value().to_vec(),
        }));
        payloads.push(PayloadBody::Nonce(s.ni.clone()));
        payloads.push(PayloadBody::Notify(Notify::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            nat_hash(&s.spi_i, &[0; 8], s.local),
        )));
        payloads.push(PayloadBody::Notify(Notify::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_hash(&s.spi_i, &[0; 8], s.remote),
        )));
        let header = s.header(ExchangeType::IKE_SA_INIT, false, 0);
        let Ok(data) = Message::new(header, payloads).encode() else {
            return;
        };
        s.init_i = data.clone();
        s.flight = Some(Flight {
            message_id: 0,
            data: data.clone(),
            attempts: 0,
            next_at: now + RETRANSMIT_BASE,
            kind: Request::Init,
        });
        let (l, r) = (s.local, s.remote);
        self.send(l, r, data);
    }

    /// A stateless answer to an IKE_SA_INIT (COOKIE or an error notify).
    fn answer_init_with(&mut self, local: SocketAddr, remote: SocketAddr, h: &Header, n: Notify) {
        let header = Header {
            initiator_spi: h.initiator_spi,
            responder_spi: [0; 8],
            version: Header::VERSION,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags::RESPONSE,
            message_id: 0,
        };
        if let Ok(data) = Message::new(header, [PayloadBody::Notify(n)]).encode() {
            self.send(local, remote, data);
        }
    }

    pub(super) fn respond_init(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) {
        let h = &msg.header;
        if let Some(k) = self.by_peer_spi.get(&(remote, h.initiator_spi)) {
            // Our IKE_SA_INIT response (message 0) again; once the SA has
            // answered more, the peer has had it.
            let last = self.sas.get(k).and_then(|s| s.last_response.clone());
            if let Some((0, resp)) = last {
                self.stats.duplicates += 1;
                self.send(local, remote, resp);
            }
            return;
        }
        let mut sa = None;
        let mut ke = None;
        let mut ni = None;
        let mut nat_src = Vec::new();
        let mut nat_dst = None;
        for p in &msg.payloads {
            match &p.body {
                PayloadBody::Sa(x) => sa = Some(x),
                PayloadBody::KeyExchange(x) => ke = Some(x),
                PayloadBody::Nonce(x) => ni = Some(x),
                PayloadBody::Notify(n) if n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP => {
                    nat_src.push(n.data.clone())
                }
                PayloadBody::Notify(n)
                    if n.notify_type == NotifyType::NAT_DETECTION_DESTINATION_IP =>
                {
                    nat_dst = Some(n.data.clone())
                }
                _ => {}
            }
        }
        let (Some(sa), Some(ke), Some(ni)) = (sa, ke, ni) else {
            self.stats.malformed += 1;
            return;
        };
        if !(16..=256).contains(&ni.len()) {
            self.stats.malformed += 1;
            return;
        }
        let half_open = self.half_open();
        let mut cookied = false;
        if half_open >= self.policy.cookie_threshold {
            let spi_i = &h.initiator_spi;
            let got = find_notify(&msg.payloads, NotifyType::COOKIE);
            if !got.is_some_and(|c| self.half_open.cookie_valid(now, &c.data, ni, remote, spi_i)) {
                self.stats.cookies_sent += 1;
                let cookie = self.half_open.cookie(now, ni, remote, spi_i);
                self.answer_init_with(local, remote, h, Notify::new(NotifyType::COOKIE, cookie));
                return;
            }
            // A sender that receives at its address: it gets its share.
            if self.half_open.cookied_from(remote.ip()) >= PER_ADDRESS_LIMIT {
                self.stats.half_open_per_address += 1;
                return;
            }
            cookied = true;
        }

        let ours = self.policy.proposals_for(local.ip());
        let (choice, number) = match proposal::select_ike(&ours, sa, ke.group) {
            Ok(c) => c,
            Err(IkeSelectError::NoProposal) => {
                self.stats.no_proposal_chosen += 1;
                self.log(format!(
                    "IKEv2:(SESSION ID = 0):No proposal from {remote} is acceptable"
                ));
                let n = Notify::new(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
                self.answer_init_with(local, remote, h, n);
                return;
            }
            Err(IkeSelectError::InvalidKe(g)) => {
                self.stats.invalid_ke_sent += 1;
                self.answer_init_with(local, remote, h, Notify::invalid_ke(g.id()));
                return;
            }
        };
        let Ok(dh) = choice.group.generate() else {
            return;
        };
        let Ok(g_ir) = dh.shared_secret(&ke.data) else {
            self.stats.bad_key_exchange += 1;
            return;
        };
        let spi_r = random::<8>();
        let spi_i = h.initiator_spi;
        let nr = random::<NONCE_LEN>().to_vec();
        // NAT: the peer's source hash names the address it sent from; the
        // destination hash the address it sent to (§2.23).
        let peer_natted =
            !nat_src.is_empty() && !nat_src.contains(&nat_hash(&spi_i, &[0; 8], remote));
        let us_natted = nat_dst
            .as_ref()
            .is_some_and(|d| *d != nat_hash(&spi_i, &[0; 8], local));
        let payloads = vec![
            PayloadBody::Sa(proposal::ike_choice_payload(&choice, number, &[])),
            PayloadBody::KeyExchange(KeyExchange {
                group: choice.group.id(),
                data: dh.public_value().to_vec(),
            }),
            PayloadBody::Nonce(nr.clone()),
            PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                nat_hash(&spi_i, &spi_r, local),
            )),
            PayloadBody::Notify(Notify::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_hash(&spi_i, &spi_r, remote),
            )),
        ];
        let header = Header {
            initiator_spi: spi_i,
            responder_spi: spi_r,
            version: Header::VERSION,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags::RESPONSE,
            message_id: 0,
        };
        let Ok(resp) = Message::new(header, payloads).encode() else {
            return;
        };
        let Some((keys, tx, rx)) = derive(&choice, ni, &nr, &g_ir, &spi_i, &spi_r, false) else {
            return;
        };
        let len = message_len(data);
        let s = IkeSa {
            choice: Some(choice),
            ni: ni.clone(),
            nr,
            init_i: data[..len].to_vec(),
            init_r: resp.clone(),
            keys: Some(keys),
            tx: Some(tx),
            rx: Some(rx),
            nat: peer_natted || us_natted,
            peer_mid: 1,
            last_response: Some((0, resp.clone())),
            behind_nat: us_natted,
            init_from: Some(remote),
            cookied,
            ..IkeSa::blank(
                self.tunnel_id(),
                spi_i,
                spi_r,
                false,
                local,
                remote,
                State::HalfOpen,
                choice.group,
                now,
            )
        };
        if self.half_open() >= HALF_OPEN_LIMIT {
            // The oldest makes room: a real peer's IKE_AUTH follows its
            // IKE_SA_INIT within a round trip.
            let sas = &self.sas;
            let live = |k: &[u8; 8]| sas.get(k).is_some_and(|s| s.state == State::HalfOpen);
            if let Some(k) = self.half_open.oldest(live) {
                self.remove_sa(k);
                self.stats.half_open_limit += 1;
            }
        }
        self.insert_sa(spi_r, s);
        let sas = &self.sas;
        let live = |k: &[u8; 8]| sas.get(k).is_some_and(|s| s.state == State::HalfOpen);
        self.half_open.admitted(spi_r, remote.ip(), cookied, live);
        self.by_peer_spi.insert((remote, spi_i), spi_r);
        self.send(local, remote, resp);
    }

    pub(super) fn handle_init_response(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) {
        let k = msg.header.initiator_spi;
        let Some(s) = self.sas.get_mut(&k) else {
            self.stats.unknown_spi += 1;
            return;
        };
        if !s.initiator || s.state != State::InitSent || s.remote != remote {
            self.stats.unexpected_message += 1;
            return;
        }
        let p = &msg.payloads;
        if let Some(c) = find_notify(p, NotifyType::COOKIE) {
            if c.data.is_empty() || c.data.len() > 64 || s.cookie.as_ref() == Some(&c.data) {
                self.stats.malformed += 1;
                return;
            }
            if s.init_restarts >= MAX_INIT_RESTARTS {
                self.stats.malformed += 1;
                self.fail_init(now, k);
                return;
            }
            s.init_restarts += 1;
            s.cookie = Some(c.data.clone());
            self.stats.cookie_retries += 1;
            self.send_init(now, k);
            return;
        }
        if let Some(n) = find_notify(p, NotifyType::INVALID_KE_PAYLOAD) {
            self.stats.invalid_ke_received += 1;
            let offered = self
                .policy
                .proposals_for(s.local.ip())
                .iter()
                .flat_map(|p| p.groups.iter())
                .copied()
                .find(|g| Some(g.id()) == n.accepted_group());
            match offered {
                Some(g) if g != s.group && s.init_restarts < MAX_INIT_RESTARTS => {
                    s.init_restarts += 1;
                    s.group = g;
                    self.log(format!(
                        "IKEv2:(SESSION ID = 0):INVALID_KE_PAYLOAD from {remote}: retrying with group {}",
                        g.id()
                    ));
                    self.send_init(now, k);
                }
                _ => self.fail_init(now, k),
            }
            return;
        }
        if let Some(n) = p.iter().find_map(|x| match &x.body {
            PayloadBody::Notify(n) if n.notify_type.is_error() => Some(n.notify_type),
            _ => None,
        }) {
            if n == NotifyType::NO_PROPOSAL_CHOSEN {
                self.stats.no_proposal_chosen += 1;
            }
            self.log(format!(
                "IKEv2:(SESSION ID = 0):{remote} refused IKE_SA_INIT: {n:?}"
            ));
            self.fail_init(now, k);
            return;
        }
        let mut sa = None;
        let mut ke = None;
        let mut nr = None;
        for x in p {
            match &x.body {
                PayloadBody::Sa(v) => sa = Some(v),
                PayloadBody::KeyExchange(v) => ke = Some(v),
                PayloadBody::Nonce(v) => nr = Some(v),
                _ => {}
            }
        }
        let (Some(sa), Some(ke), Some(nr)) = (sa, ke, nr) else {
            self.stats.malformed += 1;
            return;
        };
        // An answer we cannot take is not given up on: it is not
        // protected, so it may be an attacker's, sent ahead of the real
        // one. The request stays in flight; a peer that really answers so
        // is given up on when the retransmissions run out.
        let Some(choice) = proposal::accept_ike(&self.policy.proposals_for(s.local.ip()), sa)
        else {
            self.stats.no_proposal_chosen += 1;
            return;
        };
        let spi_r = msg.header.responder_spi;
        if choice.group != s.group || ke.group != s.group.id() || spi_r == [0; 8] {
            self.stats.bad_key_exchange += 1;
            return;
        }
        let Some(Ok(g_ir)) = s.dh.as_ref().map(|d| d.shared_secret(&ke.data)) else {
            self.stats.bad_key_exchange += 1;
            return;
        };
        let Some((keys, tx, rx)) = derive(&choice, &s.ni, nr, &g_ir, &s.spi_i, &spi_r, true) else {
            self.fail_init(now, k);
            return;
        };
        let src_ok = super::notifies(p)
            .filter(|n| n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP)
            .map(|n| n.data == nat_hash(&s.spi_i, &spi_r, s.remote))
            .reduce(|a, b| a || b);
        let dst_ok = find_notify(p, NotifyType::NAT_DETECTION_DESTINATION_IP)
            .map(|n| n.data == nat_hash(&s.spi_i, &spi_r, s.local));
        s.nat = src_ok == Some(false) || dst_ok == Some(false);
        // The responder's destination hash is of the address it saw us
        // from: a mismatch means a NAT in front of us.
        s.behind_nat = dst_ok == Some(false);
        let raw = data[..message_len(data)].to_vec();
        s.spi_r = spi_r;
        s.nr = nr.clone();
        s.choice = Some(choice);
        s.keys = Some(keys);
        s.tx = Some(tx);
        s.rx = Some(rx);
        s.init_r = raw;
        s.flight = None;
        s.dh = None;
        if s.nat {
            s.local.set_port(self.nat_t_port);
            s.remote.set_port(self.nat_t_port);
        }
        self.send_auth(now, k);
    }

    /// The IKE_SA_INIT failed for good: forget the SA, hold the entry off.
    pub(super) fn fail_init(&mut self, now: Instant, k: [u8; 8]) {
        self.fail_initiator_hold(now, k);
        self.remove_sa(k);
    }
}

/// SKEYSEED and the SK_* keys; returns the keys and the (tx, rx)
/// Encrypted-payload keys of this side.
fn derive(
    c: &super::IkeChoice,
    ni: &[u8],
    nr: &[u8],
    g_ir: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    initiator: bool,
) -> Option<(IkeSaKeys, SkKeys, SkKeys)> {
    let seed = kdf::skeyseed(c.prf, ni, nr, g_ir);
    derive_from_seed(c, &seed, ni, nr, spi_i, spi_r, initiator)
}

/// The SK_* keys from SKEYSEED (§2.14; §2.18 for a rekeyed IKE SA,
/// whose SKEYSEED comes from the old SA's SK_d) and this side's (tx, rx)
/// Encrypted-payload keys.
pub(super) fn derive_from_seed(
    c: &super::IkeChoice,
    seed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: &[u8; 8],
    spi_r: &[u8; 8],
    initiator: bool,
) -> Option<(IkeSaKeys, SkKeys, SkKeys)> {
    let lengths = KeyLengths {
        integ: c.integ.map_or(0, integ_key_len),
        encr: encr_key_len(c.encr),
    };
    let keys = IkeSaKeys::derive(c.prf, seed, ni, nr, spi_i, spi_r, lengths).ok()?;
    let i = SkKeys {
        encr: c.encr,
        integ: c.integ,
        ek: keys.sk_ei.clone(),
        ak: keys.sk_ai.clone(),
    };
    let r = SkKeys {
        encr: c.encr,
        integ: c.integ,
        ek: keys.sk_er.clone(),
        ak: keys.sk_ar.clone(),
    };
    Some(if initiator {
        (keys, i, r)
    } else {
        (keys, r, i)
    })
}

/// The header's Length, bounded by the datagram (decode checked it).
fn message_len(data: &[u8]) -> usize {
    data.get(24..28)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .and_then(|l| usize::try_from(l).ok())
        .unwrap_or(data.len())
        .min(data.len())
}
