//! CREATE_CHILD_SA (RFC 7296 §1.3.1, §1.3.3): new CHILD_SAs on an
//! established IKE SA and CHILD_SA rekeys on soft expiry, with PFS when
//! the entry has `set pfs`. Make-before-break: the new pair goes in
//! first; the rekeying side then deletes the old one. When both sides
//! rekey the same pair at once, the pair of the exchange with the lowest
//! nonce is deleted by its maker (RFC 7296 §2.8.1), as for IKE SAs.

use std::net::IpAddr;
use std::time::Instant;

use dataplane::api::Direction;
use dataplane::spd::TrafficSelector;

use crate::ike::crypto::DhGroup;
use crate::ike::wire::ikev2::{
    ExchangeType, KeyExchange, Notify, NotifyType, Payload, PayloadBody, ProtocolId,
};
use crate::installer::InstallMode;

use super::super::{proposal, selectors};
use super::auth::{child_keys, pair_params};
use super::rekey::{lowest, REKEY_RETRY};
use super::{find_notify, random, Creating, CrossingRekey, Engine, Output, Request, NONCE_LEN};

struct ChildPayloads<'a> {
    sa: Option<&'a crate::ike::wire::ikev2::SecurityAssociation>,
    nonce: Option<&'a Vec<u8>>,
    ke: Option<&'a KeyExchange>,
    tsi: Option<&'a [crate::ike::wire::ikev2::TrafficSelector]>,
    tsr: Option<&'a [crate::ike::wire::ikev2::TrafficSelector]>,
}

fn collect(payloads: &[Payload]) -> ChildPayloads<'_> {
    let mut c = ChildPayloads {
        sa: None,
        nonce: None,
        ke: None,
        tsi: None,
        tsr: None,
    };
    for p in payloads {
        match &p.body {
            PayloadBody::Sa(x) => c.sa = Some(x),
            PayloadBody::Nonce(x) => c.nonce = Some(x),
            PayloadBody::KeyExchange(x) => c.ke = Some(x),
            PayloadBody::TsInitiator(x) => c.tsi = Some(x),
            PayloadBody::TsResponder(x) => c.tsr = Some(x),
            _ => {}
        }
    }
    c
}

impl Engine {
    /// Sends a CREATE_CHILD_SA request for entry `entry`, rekeying the
    /// pair with inbound SPI `old_in` if given.
    pub(super) fn send_create_child(
        &mut self,
        now: Instant,
        k: [u8; 8],
        entry: usize,
        selector: TrafficSelector,
        old_in: Option<u32>,
    ) {
        if let Some(old) = old_in.filter(|&o| !self.ours_to_rekey(k, o)) {
            // Queued behind another request, and the peer rekeyed the
            // pair (or it went) meanwhile: nothing left to rekey. Should
            // the peer's rekey fail after all (its pair refused here) or
            // the peer delete its new pair instead, the old one is ours
            // to rekey again, a retry later (a replaced pair is not).
            if let Some(c) = self.child_mut(k, old) {
                c.rekey_later(now);
            }
            self.log(format!(
                "IKEv2:(SESSION ID = 0):CHILD_SA with inbound SPI 0x{old:08X} was rekeyed by \
                 the peer or deleted meanwhile: not rekeying it"
            ));
            self.send_next_request(now, k);
            return;
        }
        let Some(e) = self.policy.maps.get(entry) else {
            return;
        };
        let pfs = e.pfs;
        let dh = match pfs.map(DhGroup::generate) {
            Some(Ok(d)) => Some(d),
            Some(Err(_)) => return,
            None => None,
        };
        let spi_in = self.alloc_spi();
        let ni = random::<NONCE_LEN>().to_vec();
        let mut payloads: Vec<Payload> = Vec::new();
        if e.transforms.first().is_some_and(|t| !t.tunnel) {
            payloads.push(
                PayloadBody::Notify(Notify::new(NotifyType::USE_TRANSPORT_MODE, Vec::new())).into(),
            );
        }
        if let Some(old) = old_in {
            let mut n = Notify::new(NotifyType::REKEY_SA, Vec::new());
            n.protocol = ProtocolId::ESP;
            n.spi = old.to_be_bytes().to_vec();
            payloads.push(PayloadBody::Notify(n).into());
        }
        payloads.push(PayloadBody::Sa(proposal::esp_sa_payload(&e.transforms, spi_in, pfs)).into());
        payloads.push(PayloadBody::Nonce(ni.clone()).into());
        if let Some(d) = &dh {
            payloads.push(
                PayloadBody::KeyExchange(KeyExchange {
                    group: d.group().id(),
                    data: d.public_value().to_vec(),
                })
                .into(),
            );
        }
        let (tsi, tsr) = selectors::propose(&selector);
        payloads.push(PayloadBody::TsInitiator(tsi).into());
        payloads.push(PayloadBody::TsResponder(tsr).into());
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        s.creating = Some(Creating {
            entry,
            selector,
            old_in,
            spi_in,
            ni,
            dh,
            crossed_by: None,
        });
        self.send_request(
            now,
            k,
            ExchangeType::CREATE_CHILD_SA,
            payloads,
            Request::CreateChild {
                entry,
                selector,
                old_in,
            },
        );
    }

    /// Responder: a new or rekeyed CHILD_SA.
    pub(super) fn respond_create_child(
        &mut self,
        _now: Instant,
        k: [u8; 8],
        mid: u32,
        payloads: &[Payload],
    ) {
        let c = collect(payloads);
        let refuse = |e: &mut Engine, n: NotifyType, data: Vec<u8>| {
            let n = Notify::new(n, data);
            e.respond(
                k,
                ExchangeType::CREATE_CHILD_SA,
                mid,
                vec![PayloadBody::Notify(n).into()],
            );
        };
        let (Some(sa), Some(ni), Some(tsi), Some(tsr)) = (c.sa, c.nonce, c.tsi, c.tsr) else {
            // An IKE SA rekey (no TS) is not supported yet.
            self.stats.no_proposal_chosen += 1;
            refuse(self, NotifyType::NO_PROPOSAL_CHOSEN, Vec::new());
            return;
        };
        let Some(s) = self.sas.get(&k) else {
            return;
        };
        let remote = s.remote.ip();
        let old_out = find_notify(payloads, NotifyType::REKEY_SA)
            .and_then(|n| <[u8; 4]>::try_from(n.spi.as_slice()).ok())
            .map(u32::from_be_bytes);
        let old = match old_out {
            Some(spi) => match self
                .sas
                .get(&self.home(k))
                .and_then(|h| h.children.iter().find(|c| c.info.outbound_spi == spi))
            {
                Some(c) if self.retiring_after_install(c.info.inbound_spi) => {
                    // Our rekey of it completed first and it is about to
                    // go (§2.25): the peer takes the pair we made.
                    refuse(self, NotifyType::TEMPORARY_FAILURE, Vec::new());
                    return;
                }
                Some(c) => Some((c.info.inbound_spi, c.info.tag, c.info.proxy, c.replaced)),
                None => {
                    let mut n = Notify::new(NotifyType::CHILD_SA_NOT_FOUND, Vec::new());
                    n.protocol = ProtocolId::ESP;
                    n.spi = spi.to_be_bytes().to_vec();
                    self.respond(
                        k,
                        ExchangeType::CREATE_CHILD_SA,
                        mid,
                        vec![PayloadBody::Notify(n).into()],
                    );
                    return;
                }
            },
            None => None,
        };
        let profile = self.sas.get(&self.home(k)).and_then(|s| s.profile);
        // A rekey, of a pair not rekeyed already and for its own
        // selectors, may go over the limit (up to twice it): the pair it
        // replaces goes with the peer's DELETE.
        let old_meta = old;
        let old = old_meta.map(|(old_in, ..)| old_in);
        let chosen = self
            .choose_child(remote, profile, sa, tsi, tsr, true)
            .and_then(|x| {
                let rekey = old_meta.is_some_and(|(old_in, tag, proxy, replaced)| {
                    !replaced
                        && !self.peer_rekey_held(old_in)
                        && tag == self.policy.maps[x.0].tag
                        && proxy == x.4
                });
                self.below_child_limit(remote, rekey, x.0, x.4).map(|()| x)
            });
        let (entry, set, number, spi_out, proxy, rtsi, rtsr) = match chosen {
            Ok(x) => x,
            Err(n) => {
                self.count_child_refusal(remote, n);
                refuse(self, n, Vec::new());
                return;
            }
        };
        let e = &self.policy.maps[entry];
        let pfs = e.pfs;
        let (ke_reply, g_ir) = match (pfs, c.ke) {
            (None, _) => (None, None),
            (Some(g), Some(ke)) if ke.group == g.id() => {
                let Ok(d) = g.generate() else {
                    return;
                };
                let Ok(secret) = d.shared_secret(&ke.data) else {
                    self.stats.bad_key_exchange += 1;
                    refuse(self, NotifyType::INVALID_SYNTAX, Vec::new());
                    return;
                };
                (
                    Some(KeyExchange {
                        group: g.id(),
                        data: d.public_value().to_vec(),
                    }),
                    Some(secret),
                )
            }
            (Some(g), _) => {
                self.stats.invalid_ke_sent += 1;
                refuse(
                    self,
                    NotifyType::INVALID_KE_PAYLOAD,
                    g.id().to_be_bytes().to_vec(),
                );
                return;
            }
        };
        let nr = random::<NONCE_LEN>().to_vec();
        let spi_in = self.alloc_spi();
        let low_nonce = lowest(ni, &nr);
        let t = &e.transforms[set];
        let Some(keys) = child_keys(s, t, g_ir.as_deref().map(|v| &v[..]), ni, &nr) else {
            return;
        };
        let (inb, outb) = pair_params(e, t, s, (spi_in, spi_out), &keys, false, proxy);
        let tag = e.tag;
        let mut reply: Vec<Payload> = vec![
            PayloadBody::Sa(proposal::esp_choice_payload(t, number, spi_in, pfs)).into(),
            PayloadBody::Nonce(nr).into(),
        ];
        if let Some(ke) = ke_reply {
            reply.push(PayloadBody::KeyExchange(ke).into());
        }
        if !t.tunnel {
            reply.push(
                PayloadBody::Notify(Notify::new(NotifyType::USE_TRANSPORT_MODE, Vec::new())).into(),
            );
        }
        reply.push(PayloadBody::TsInitiator(rtsi).into());
        reply.push(PayloadBody::TsResponder(rtsr).into());
        if let Some(old_in) = old {
            self.note_crossing(remote, old_in, spi_in, low_nonce);
        }
        self.out
            .push_back(Output::InstallInbound(Box::new(inb.clone())));
        // A rekey: the initiator installs the new pair when our answer
        // arrives, then deletes the old one; until then (or
        // [`crate::installer::STANDBY_LIMIT`]) we keep sending on the
        // old pair, which it still decrypts (as strongSwan does).
        let mode = InstallMode {
            inbound_ready: true,
            keep_sending_on: old_out,
        };
        self.finish_install(k, tag, proxy, inb, outb, mode);
        self.hold_answer(k, mid, spi_in, old, reply);
    }

    /// Initiator: the answer to our CREATE_CHILD_SA.
    pub(super) fn handle_create_child_response(
        &mut self,
        now: Instant,
        k: [u8; 8],
        payloads: &[Payload],
    ) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        s.flight = None;
        let Some(cr) = s.creating.take() else {
            return;
        };
        let remote = s.remote;
        let e = &self.policy.maps[cr.entry];
        let tag = e.tag;
        if let Some(n) = payloads.iter().find_map(|p| match &p.body {
            PayloadBody::Notify(n) if n.notify_type.is_error() => Some(n.clone()),
            _ => None,
        }) {
            if let (NotifyType::CHILD_SA_NOT_FOUND, Some(old)) = (n.notify_type, cr.old_in) {
                // The peer no longer has the pair we rekey (RFC 7296
                // §2.25): ours goes without a DELETE, and a new one is
                // negotiated from scratch for the same selectors.
                self.log(format!(
                    "IKEv2:(SESSION ID = 0):{remote} has no CHILD_SA for inbound SPI 0x{old:08X}: deleting it here and creating a new one"
                ));
                self.drop_child(k, old);
                let home = self.home(k);
                self.request(
                    now,
                    home,
                    Request::CreateChild {
                        entry: cr.entry,
                        selector: cr.selector,
                        old_in: None,
                    },
                );
                self.send_next_request(now, k);
                return;
            }
            match n.notify_type {
                NotifyType::TS_UNACCEPTABLE => self.stats.ts_unacceptable += 1,
                NotifyType::NO_PROPOSAL_CHOSEN => self.stats.no_proposal_chosen += 1,
                NotifyType::INVALID_KE_PAYLOAD => self.stats.invalid_ke_received += 1,
                _ => {}
            }
            self.log(format!(
                "IKEv2:(SESSION ID = 0):{remote} refused CREATE_CHILD_SA: {:?}",
                n.notify_type
            ));
            self.hold_down.push((tag, now + super::HOLD_DOWN));
            if let Some(old) = cr.old_in {
                self.child_rekey_failed(now, k, old);
            }
            self.send_next_request(now, k);
            return;
        }
        let c = collect(payloads);
        let accepted = (|| {
            let (set, spi_out) = proposal::accept_esp(&e.transforms, c.sa?, Some(e.pfs))?;
            let proxy = selectors::accept(&cr.selector, c.tsi?, c.tsr?)?;
            let nr = c.nonce?;
            let g_ir = match (&cr.dh, c.ke) {
                (None, None) => None,
                (Some(d), Some(ke)) if ke.group == d.group().id() => {
                    Some(d.shared_secret(&ke.data).ok()?)
                }
                _ => return None,
            };
            Some((set, spi_out, proxy, nr.clone(), g_ir))
        })();
        let Some((set, spi_out, proxy, nr, g_ir)) = accepted else {
            self.stats.malformed += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):unacceptable CREATE_CHILD_SA answer from {remote}"
            ));
            if let Some(old) = cr.old_in {
                self.child_rekey_failed(now, k, old);
            }
            if c.sa.is_some() {
                // The peer installed a pair we refuse: it must not keep
                // sending on it (a DELETE of an SPI it does not know of
                // is harmless).
                let home = self.home(k);
                self.request(now, home, Request::DeleteChild(vec![cr.spi_in]));
            }
            self.send_next_request(now, k);
            return;
        };
        if let (Some(old), Some(crossing)) = (cr.old_in, cr.crossed_by) {
            if self.lost_crossing(now, old, crossing, &lowest(&cr.ni, &nr)) {
                // Ours is the redundant pair: never installed here, and
                // deleted at the peer, which installed it as the
                // responder. The peer, which won, deletes the old pair.
                let home = self.home(k);
                self.request(now, home, Request::DeleteChild(vec![cr.spi_in]));
                self.send_next_request(now, k);
                return;
            }
        }
        let Some(s) = self.sas.get(&k) else {
            return;
        };
        let e = &self.policy.maps[cr.entry];
        let t = &e.transforms[set];
        let Some(keys) = child_keys(s, t, g_ir.as_deref().map(|v| &v[..]), &cr.ni, &nr) else {
            return;
        };
        let (inb, outb) = pair_params(e, t, s, (cr.spi_in, spi_out), &keys, true, proxy);
        self.finish_install(k, tag, proxy, inb, outb, InstallMode::default());
        if let Some(old) = cr.old_in {
            // Make-before-break: the old pair goes once the new one is in
            // (its DELETE then queues behind any request sent below).
            self.retire_after_install(now, k, old, cr.spi_in);
        }
        self.send_next_request(now, k);
    }

    /// Whether pair `old_in` (of IKE SA `k`, or the one it moved to) is
    /// still ours to rekey: there, and neither replaced by the peer's
    /// rekey nor being replaced (our answer to it held for its install).
    fn ours_to_rekey(&self, k: [u8; 8], old_in: u32) -> bool {
        self.child(k, old_in).is_some_and(|c| !c.replaced) && !self.peer_rekey_held(old_in)
    }

    /// The peer at `peer` rekeys pair `old_in` into `new_in` (an exchange
    /// whose lower nonce is `low_nonce`): if our own rekey of it is out
    /// (on any IKE SA with the peer: one may have replaced another
    /// meanwhile), the two crossed (RFC 7296 §2.8.1), and its answer is
    /// weighed against this exchange ([`Engine::lost_crossing`]).
    fn note_crossing(&mut self, peer: IpAddr, old_in: u32, new_in: u32, low_nonce: Vec<u8>) {
        for k in self.sas_with(peer) {
            if let Some(c) = self
                .sas
                .get_mut(&k)
                .and_then(|s| s.creating.as_mut())
                .filter(|c| c.old_in == Some(old_in))
            {
                c.crossed_by = Some(CrossingRekey { new_in, low_nonce });
                return;
            }
        }
    }

    /// Our rekey of `old_in` completed with `our_low` as its lower nonce,
    /// and the peer's rekey of the same pair crossed it. If the peer's
    /// pair is still there, the exchange with the lowest of the four
    /// nonces made the redundant pair, which its maker deletes (§2.8.1):
    /// true when that is ours. When it is the peer's, its pair is marked
    /// replaced, so that we never rekey or send on it before the peer
    /// deletes it.
    fn lost_crossing(
        &mut self,
        now: Instant,
        old_in: u32,
        crossing: CrossingRekey,
        our_low: &[u8],
    ) -> bool {
        // The peer deleted its pair already: it lost, or gave it up.
        let Some(theirs_at) = self.sa_of_child(Direction::Inbound, crossing.new_in) else {
            return false;
        };
        self.stats.child_rekey_collisions += 1;
        let lost = our_low < crossing.low_nonce.as_slice();
        if lost {
            // The peer deletes the old pair. Should that never come and
            // the peer's pair be gone by then, it is rekeyed again (a
            // replaced pair is not).
            if let Some(c) = self.child_mut(theirs_at, old_in) {
                c.rekey_later(now);
            }
        } else if let Some(c) = self.child_mut(theirs_at, crossing.new_in) {
            c.replaced = true;
        }
        let outcome = if lost {
            "ours has the lowest nonce: deleting our new pair, keeping the peer's"
        } else {
            "the peer's has the lowest nonce: the peer deletes its new pair"
        };
        self.log(format!(
            "IKEv2:(SESSION ID = 0):CHILD_SA rekey collision on inbound SPI 0x{old_in:08X} \
             (the peer's new pair: 0x{:08X}): {outcome}",
            crossing.new_in
        ));
        lost
    }

    /// Our rekey of CHILD_SA `old_in`, asked over IKE SA `k`, failed: the
    /// pair stays in use and is rekeyed again [`REKEY_RETRY`] later (until
    /// it is, or its hard lifetime ends it).
    pub(super) fn child_rekey_failed(&mut self, now: Instant, k: [u8; 8], old_in: u32) {
        // An IKE SA rekeyed meanwhile took the CHILD_SA along (`child_mut`).
        let Some(c) = self.child_mut(k, old_in) else {
            return;
        };
        c.rekey_later(now);
        self.stats.child_rekeys_failed += 1;
        self.log(format!(
            "IKEv2:(SESSION ID = 0):CHILD_SA rekey of inbound SPI 0x{old_in:08X} failed, retrying in {} seconds",
            REKEY_RETRY.as_secs()
        ));
    }

    /// Starts the CHILD_SA rekeys of IKE SA `k` that
    /// [`Engine::child_rekey_failed`] scheduled for `now` or before.
    pub(super) fn retry_child_rekeys(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if !s.usable() {
            return;
        }
        let mut due = Vec::new();
        for c in &mut s.children {
            // Taken off first: a retry that cannot start now must not
            // leave a timer in the past.
            if c.rekey_retry_at.take_if(|t| *t <= now).is_some() {
                due.push(c.info.inbound_spi);
            }
        }
        for spi_in in due {
            self.rekey_child(now, k, spi_in);
        }
    }
}
