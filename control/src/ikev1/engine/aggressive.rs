//! Aggressive Mode with pre-shared keys (RFC 2409 §5.4): three messages,
//! identities in the clear, one DH group fixed by the initiator's KE.
//!
//! ```text
//! AM1 I→R  HDR, SA, KE, Ni, IDii, VID
//! AM2 R→I  HDR, SA, KE, Nr, IDir, HASH_R, VID [, NAT-D, NAT-D]
//! AM3 I→R  HDR*, HASH_I [, NAT-D, NAT-D]
//! ```
//!
//! AM3 is sent encrypted (as IOS and strongSwan do); a clear one is
//! accepted too, as RFC 2409's text has it.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::main_mode::{detect_nat, nat_d_payloads};
use super::*;

impl Engine {
    /// Starts Aggressive Mode with `peer` (AM1): only the policies of the
    /// first policy's DH group can be offered, since KE goes with them.
    pub(super) fn start_aggressive_mode(&mut self, now: Instant, local: IpAddr, peer: IpAddr) {
        let Some(psk) = self
            .policy
            .key_for(peer)
            .map(|k| Zeroizing::new(k.key.expose().to_vec()))
        else {
            self.stats.no_preshared_key += 1;
            self.log(format!("ISAKMP:(0):No pre-shared key with {peer}!"));
            self.fail_pending(now, local, peer);
            return;
        };
        let Some(group) = self.policy.isakmp.first().map(|p| p.group) else {
            return;
        };
        let offer: Vec<_> = self
            .policy
            .isakmp
            .iter()
            .filter(|p| p.group == group)
            .copied()
            .collect();
        let Ok(dh) = group.generate() else { return };
        let sa = Payload::Sa(proposal::phase1_offer(&offer));
        let sai_b = body(&sa);
        let ni = random_vec(NONCE_LEN);
        let id = Payload::Identification(phase1_id(local));
        let header = Header {
            initiator_cookie: random(),
            responder_cookie: [0; 8],
            version: Header::VERSION,
            exchange: ExchangeType::AGGRESSIVE,
            flags: Flags::default(),
            message_id: 0,
        };
        let payloads = vec![
            sa,
            Payload::KeyExchange(dh.public_value().to_vec()),
            Payload::Nonce(ni.clone()),
            id.clone(),
            Payload::VendorId(KnownVendor::Dpd.id().to_vec()),
            natt_vid(UdpEncapStyle::Rfc3947),
            natt_vid(UdpEncapStyle::Draft),
        ];
        let Ok(data) = Message::new(header.clone(), payloads).encode() else {
            return;
        };
        let conn_id = self.alloc_conn_id();
        let port = self.ike_port;
        self.push_p1(Phase1 {
            conn_id,
            initiator: true,
            local: SocketAddr::new(local, port),
            remote: SocketAddr::new(peer, port),
            cky_i: header.initiator_cookie,
            cky_r: [0; 8],
            state: P1State::AmI1,
            sai_b,
            psk,
            g_xi: dh.public_value().to_vec(),
            dh: Some(dh),
            ni_b: ni,
            flight: Some(Flight::new(now, data.clone())),
            reply: data.clone(),
            aggressive_id: body(&id),
            ..Phase1::blank(now)
        });
        self.log(format!(
            "ISAKMP:({conn_id}):beginning Aggressive Mode exchange with {peer}"
        ));
        self.send(
            SocketAddr::new(local, port),
            SocketAddr::new(peer, port),
            data,
        );
    }

    pub(super) fn aggressive_mode(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> Result<(), Drop> {
        let i = match self.phase1_step(
            now,
            "Aggressive Mode",
            "a second, different AM1 for a known cookie",
            remote,
            data,
            msg,
        )? {
            Phase1Step::First => return self.am1(now, local, remote, data, msg),
            Phase1Step::Next(i) => i,
            Phase1Step::Handled => return Ok(()),
        };
        match self.p1[i].state {
            P1State::AmI1 => self.am2(now, i, data, msg),
            P1State::AmR2 => self.am3(now, i, local, remote, msg),
            _ => Err(Drop::Unexpected("Aggressive Mode message out of place")),
        }
    }

    fn am1(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> Result<(), Drop> {
        let Body::Payloads(payloads) = &msg.body else {
            return Err(Drop::Malformed("encrypted AM1".into()));
        };
        let Some(Payload::Sa(offer)) = payloads.iter().find(|p| matches!(p, Payload::Sa(_))) else {
            return Err(Drop::Malformed("AM1 without an SA payload".into()));
        };
        let Some(Payload::KeyExchange(ke)) = payloads
            .iter()
            .find(|p| matches!(p, Payload::KeyExchange(_)))
        else {
            return Err(Drop::Malformed("AM1 without a KE payload".into()));
        };
        let first = payloads[0].payload_type();
        let raw = raw_bodies(first, &data[28..]);
        let raw_of = |t: PayloadType| {
            raw.iter()
                .find(|(ty, _)| *ty == t.0)
                .map(|(_, b)| b.to_vec())
                .unwrap_or_default()
        };
        let (sai_b, idii_b) = (raw_of(PayloadType::SA), raw_of(PayloadType::IDENTIFICATION));
        if idii_b.is_empty() {
            return Err(Drop::Malformed("AM1 without an ID payload".into()));
        }
        let Some(psk) = self
            .policy
            .key_for(remote.ip())
            .map(|k| Zeroizing::new(k.key.expose().to_vec()))
        else {
            self.stats.no_preshared_key += 1;
            self.log(format!(
                "ISAKMP:(0):No pre-shared key with {}!",
                remote.ip()
            ));
            return Ok(());
        };
        // Only our policies of the group the initiator's KE is in.
        let usable: Vec<_> = self
            .policy
            .isakmp
            .iter()
            .filter(|p| p.group.public_value_len() == ke.len())
            .copied()
            .collect();
        let Some((picked, choice)) = proposal::choose_phase1(offer, &usable) else {
            self.stats.no_proposal_chosen += 1;
            self.log(format!(
                "ISAKMP:(0):atts are not acceptable. Next payload is 0\nISAKMP:(0):no offers accepted! (Aggressive Mode from {})",
                remote.ip()
            ));
            let cookies = (msg.header.initiator_cookie, [0; 8]);
            self.send_clear_notify(local, remote, cookies, NotifyType::NO_PROPOSAL_CHOSEN);
            return Ok(());
        };
        let number = offer
            .proposals
            .iter()
            .find(|p| p.protocol == ProtocolId::ISAKMP)
            .map_or(1, |p| p.number);
        let conn_id = self.alloc_conn_id();
        let cky_r: [u8; 8] = random();
        let i = self.push_p1(Phase1 {
            conn_id,
            initiator: false,
            local,
            remote,
            cky_i: msg.header.initiator_cookie,
            cky_r,
            state: P1State::AmR2,
            choice: Some(choice),
            prf: prf_of(choice.hash),
            sai_b,
            psk,
            answered: data.to_vec(),
            reply: Vec::new(),
            peer_dpd: payloads.iter().any(|p| {
                matches!(p, Payload::VendorId(v) if KnownVendor::identify(v) == Some(KnownVendor::Dpd))
            }),
            natt: natt_announced(payloads),
            aggressive_id: idii_b,
            ..Phase1::blank(now)
        });
        if let Err(e) = self.key_exchange(i, payloads) {
            self.remove_p1(i);
            return Err(e);
        }
        self.log_nat_found(i);
        // Only a first message we answer (its KE valid) takes a
        // half-open place.
        if self.half_open() > HALF_OPEN_LIMIT {
            self.evict_oldest_half_open(now, Some(i));
        }
        let p = &mut self.p1[i];
        let id = Payload::Identification(phase1_id(local.ip()));
        let idir_b = body(&id);
        let t = p.transcript();
        let hash = kdf::hash_r(
            p.prf,
            &p.keys.as_ref().expect("derived by key_exchange").skeyid,
            &t,
            &idir_b,
        );
        let reply_sa = crate::ike::wire::ikev1::SecurityAssociation {
            proposals: vec![crate::ike::wire::ikev1::Proposal {
                number,
                protocol: ProtocolId::ISAKMP,
                spi: Vec::new(),
                transforms: vec![picked],
            }],
        };
        let mut am2 = vec![
            Payload::Sa(reply_sa),
            Payload::KeyExchange(p.g_xr.clone()),
            Payload::Nonce(p.nr_b.clone()),
            id,
            Payload::Hash(hash),
            Payload::VendorId(KnownVendor::Dpd.id().to_vec()),
        ];
        am2.extend(p.natt.map(natt_vid));
        am2.extend(nat_d_payloads(p));
        let header = Header {
            responder_cookie: cky_r,
            flags: Flags::default(),
            ..msg.header.clone()
        };
        let out = Message::new(header, am2)
            .encode()
            .map_err(|e| Drop::Malformed(e.to_string()))?;
        p.flight = Some(Flight::new(now, out.clone()));
        p.reply = out.clone();
        self.log(format!(
            "ISAKMP:({conn_id}):atts are acceptable.\nISAKMP:({conn_id}):Old State = IKE_READY  New State = IKE_R_AM2"
        ));
        self.send(local, remote, out);
        Ok(())
    }

    fn am2(&mut self, now: Instant, i: RowId, data: &[u8], msg: &Message) -> Result<(), Drop> {
        let Body::Payloads(payloads) = &msg.body else {
            return Err(Drop::Malformed("encrypted AM2".into()));
        };
        if let Some(n) = payloads.iter().find_map(|p| match p {
            Payload::Notification(n) => Some(n.notify_type),
            _ => None,
        }) {
            return self.phase1_refused(now, i, n);
        }
        // Nothing in AM2 is authentic until HASH_R verifies: what it set
        // is taken back if it does not, and the exchange waits on for the
        // responder's real AM2 (AM1 is sent again until the limit). A
        // forged AM2 (its cookies seen on the path) would otherwise end it.
        let sent = Am2Undo::of(&self.p1[i]);
        if let Err(d) = self.am2_verify(i, data, msg, payloads) {
            sent.restore(&mut self.p1[i]);
            return Err(d);
        }
        self.log_nat_found(i);
        let contact = self.initial_contact_notice(i);
        let nat_t_port = self.nat_t_port;
        let p = &mut self.p1[i];
        let t = p.transcript();
        let skeyid = &p.keys.as_ref().expect("derived by key_exchange").skeyid;
        let hash_i = kdf::hash_i(p.prf, skeyid, &t, &p.aggressive_id);
        // NAT-D of AM3 names the addresses as they were before the move.
        let nat_d = nat_d_payloads(p);
        if p.nat_detected {
            p.local.set_port(nat_t_port);
            p.remote.set_port(nat_t_port);
        }
        let header = Header {
            flags: Flags::ENCRYPTION,
            ..msg.header.clone()
        };
        let mut am3 = vec![Payload::Hash(hash_i)];
        am3.extend(nat_d);
        am3.extend(contact);
        let cipher = p.cipher.as_ref().ok_or(Drop::Unexpected("no keys"))?;
        let out = seal(cipher, &mut p.iv, header, &am3)?;
        p.flight = None;
        p.answered = data.to_vec();
        p.reply = out.clone();
        let (l, r) = (p.local, p.remote);
        self.send(l, r, out);
        let id = phase1_id(r.ip());
        self.established(now, i, &id);
        Ok(())
    }

    /// Takes AM2's SA choice, KE and nonce into row `i` and checks its
    /// HASH_R; `Err` leaves the row half-changed, for [`Am2Undo`].
    fn am2_verify(
        &mut self,
        i: RowId,
        data: &[u8],
        msg: &Message,
        payloads: &[Payload],
    ) -> Result<(), Drop> {
        let Some(Payload::Sa(reply)) = payloads.iter().find(|p| matches!(p, Payload::Sa(_))) else {
            return Err(Drop::Malformed("AM2 without an SA payload".into()));
        };
        let group = self.p1[i].dh.as_ref().map(|d| d.group());
        let choice =
            proposal::accept_phase1(reply, &self.policy.isakmp).filter(|c| Some(c.group) == group);
        let Some(choice) = choice else {
            return Err(Drop::Unexpected(
                "AM2 chose no proposal of ours (forged?); waiting for another",
            ));
        };
        let hash_r = payloads.iter().find_map(|p| match p {
            Payload::Hash(h) => Some(h.clone()),
            _ => None,
        });
        let Some(hash_r) = hash_r else {
            return Err(Drop::Malformed("AM2 without HASH_R".into()));
        };
        let first = payloads[0].payload_type();
        let idir_b = raw_bodies(first, &data[28..])
            .into_iter()
            .find(|(t, _)| *t == PayloadType::IDENTIFICATION.0)
            .map(|(_, b)| b.to_vec())
            .unwrap_or_default();
        {
            let p = &mut self.p1[i];
            p.cky_r = msg.header.responder_cookie;
            p.choice = Some(choice);
            p.prf = prf_of(choice.hash);
            p.natt = natt_announced(payloads);
            p.peer_dpd = payloads.iter().any(|x| {
                matches!(x, Payload::VendorId(v) if KnownVendor::identify(v) == Some(KnownVendor::Dpd))
            });
        }
        self.key_exchange(i, payloads)?;
        let p = &self.p1[i];
        let skeyid = &p.keys.as_ref().expect("derived by key_exchange").skeyid;
        let expected = kdf::hash_r(p.prf, skeyid, &p.transcript(), &idir_b);
        if !bool::from(expected.ct_eq(&hash_r)) {
            return Err(Drop::Hash("HASH_R"));
        }
        Ok(())
    }

    fn am3(
        &mut self,
        now: Instant,
        i: RowId,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
    ) -> Result<(), Drop> {
        let p = &self.p1[i];
        let (payloads, next_iv) = match &msg.body {
            Body::Payloads(pl) => (pl.clone(), None),
            Body::Encrypted { .. } => {
                let cipher = p.cipher.as_ref().ok_or(Drop::Unexpected("no keys"))?;
                let opened = open(cipher, &p.iv, msg)?;
                (opened.payloads, Some(opened.next_iv))
            }
        };
        let Some(hash_i) = payloads.iter().find_map(|x| match x {
            Payload::Hash(h) => Some(h.clone()),
            _ => None,
        }) else {
            return Err(Drop::Malformed("AM3 without HASH_I".into()));
        };
        let t = p.transcript();
        let skeyid = &p.keys.as_ref().ok_or(Drop::Unexpected("no keys"))?.skeyid;
        let expected = kdf::hash_i(p.prf, skeyid, &t, &p.aggressive_id);
        if !bool::from(expected.ct_eq(&hash_i)) {
            // Dropped and counted, the exchange kept (see Main Mode's
            // MM5): AM2 is sent again until the retransmission limit.
            return Err(Drop::Hash("HASH_I"));
        }
        let p = &mut self.p1[i];
        let protected = next_iv.is_some();
        if let Some(iv) = next_iv {
            p.iv = iv;
        }
        detect_nat(p, &payloads);
        if local.port() != p.local.port() {
            // The initiator found a NAT in AM2 and moved to the NAT-T port.
            p.local = local;
            p.remote = remote;
            p.nat_detected = p.natt.is_some();
        }
        p.flight = None;
        // A restarted initiator's INITIAL-CONTACT (RFC 2407 §4.6.3.3) goes
        // in AM3 as it goes in MM5; believed only encrypted, as HASH_I
        // does not cover it.
        let contact = protected
            && payloads.iter().any(|x| {
            matches!(x, Payload::Notification(n) if n.notify_type == NotifyType::INITIAL_CONTACT)
        });
        if contact {
            self.initial_contact(now, i);
        }
        let id = phase1_id(remote.ip());
        self.established(now, i, &id);
        Ok(())
    }
}

/// What an initiator's row held when it sent AM1, of all that AM2 sets.
struct Am2Undo {
    cky_r: [u8; 8],
    choice: Option<Phase1Choice>,
    prf: Prf,
    natt: Option<UdpEncapStyle>,
    peer_dpd: bool,
    nat_detected: bool,
    behind_nat: bool,
}

impl Am2Undo {
    fn of(p: &Phase1) -> Am2Undo {
        Am2Undo {
            cky_r: p.cky_r,
            choice: p.choice,
            prf: p.prf,
            natt: p.natt,
            peer_dpd: p.peer_dpd,
            nat_detected: p.nat_detected,
            behind_nat: p.behind_nat,
        }
    }

    /// Puts the row back as AM1 left it: no responder cookie, keys or
    /// responder's KE and nonce (AM1 sets none of them).
    fn restore(self, p: &mut Phase1) {
        p.cky_r = self.cky_r;
        p.choice = self.choice;
        p.prf = self.prf;
        p.natt = self.natt;
        p.peer_dpd = self.peer_dpd;
        p.nat_detected = self.nat_detected;
        p.behind_nat = self.behind_nat;
        p.g_xr.clear();
        p.nr_b.clear();
        p.keys = None;
        p.cipher = None;
        p.iv.clear();
    }
}
