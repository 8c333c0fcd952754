//! Main Mode with pre-shared keys (RFC 2409 §5, §5.4): six messages, the
//! last two encrypted.
//!
//! ```text
//! MM1 I→R  HDR, SA, VID            MM2 R→I  HDR, SA, VID
//! MM3 I→R  HDR, KE, Ni             MM4 R→I  HDR, KE, Nr
//! MM5 I→R  HDR*, IDii, HASH_I, N   MM6 R→I  HDR*, IDir, HASH_R
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::*;

impl Engine {
    /// Starts Main Mode with `peer` as initiator (MM1).
    pub(super) fn start_main_mode(&mut self, now: Instant, local: IpAddr, peer: IpAddr) {
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
        let sa = Payload::Sa(proposal::phase1_offer(&self.policy.isakmp));
        let sai_b = body(&sa);
        let header = Header {
            initiator_cookie: random(),
            responder_cookie: [0; 8],
            version: Header::VERSION,
            exchange: ExchangeType::MAIN_MODE,
            flags: Flags::default(),
            message_id: 0,
        };
        let payloads = vec![
            sa,
            Payload::VendorId(KnownVendor::Dpd.id().to_vec()),
            natt_vid(UdpEncapStyle::Rfc3947),
            Payload::VendorId(KnownVendor::NatTraversalDraft03.id().to_vec()),
            natt_vid(UdpEncapStyle::Draft),
        ];
        let Ok(data) = Message::new(header.clone(), payloads).encode() else {
            return;
        };
        let conn_id = self.alloc_conn_id();
        let port = self.ike_port;
        let p = Phase1 {
            conn_id,
            initiator: true,
            local: SocketAddr::new(local, port),
            remote: SocketAddr::new(peer, port),
            cky_i: header.initiator_cookie,
            cky_r: [0; 8],
            state: P1State::I1,
            sai_b,
            psk,
            flight: Some(Flight::new(now, data.clone())),
            reply: data.clone(),
            ..Phase1::blank(now)
        };
        self.log(format!(
            "ISAKMP:({conn_id}):beginning Main Mode exchange with {peer}"
        ));
        let (l, r) = (p.local, p.remote);
        self.push_p1(p);
        self.send(l, r, data);
    }

    pub(super) fn main_mode(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> Result<(), Drop> {
        let i = match self.phase1_step(
            now,
            "Main Mode",
            "a second, different MM1 for a known cookie",
            remote,
            data,
            msg,
        )? {
            Phase1Step::First => return self.mm1(now, local, remote, data, msg),
            Phase1Step::Next(i) => i,
            Phase1Step::Handled => return Ok(()),
        };
        match self.p1[i].state {
            P1State::I1 => self.mm2(now, i, data, msg),
            P1State::R2 => self.mm3(now, i, data, msg),
            P1State::I3 => self.mm4(now, i, data, msg),
            P1State::R4 => self.mm5(now, i, local, remote, data, msg),
            P1State::I5 => self.mm6(now, i, msg),
            P1State::Established | P1State::AmI1 | P1State::AmR2 => Err(Drop::Unexpected(
                "Main Mode message for an established or Aggressive Mode SA",
            )),
        }
    }

    fn mm1(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> Result<(), Drop> {
        let Body::Payloads(payloads) = &msg.body else {
            return Err(Drop::Malformed("encrypted MM1".into()));
        };
        let Some(Payload::Sa(offer)) = payloads.iter().find(|p| matches!(p, Payload::Sa(_))) else {
            return Err(Drop::Malformed("MM1 without an SA payload".into()));
        };
        let first = payloads[0].payload_type();
        let sai_b = raw_bodies(first, &data[28..])
            .into_iter()
            .find(|(t, _)| *t == PayloadType::SA.0)
            .map(|(_, b)| b.to_vec())
            .unwrap_or_default();
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
        let Some((picked, choice)) = proposal::choose_phase1(offer, &self.policy.isakmp) else {
            self.stats.no_proposal_chosen += 1;
            self.log(format!(
                "ISAKMP:(0):atts are not acceptable. Next payload is 0\nISAKMP:(0):no offers accepted! (peer {})",
                remote.ip()
            ));
            self.send_clear_notify(
                local,
                remote,
                h_cookies(&msg.header, [0; 8]),
                NotifyType::NO_PROPOSAL_CHOSEN,
            );
            return Ok(());
        };
        let peer_dpd = payloads.iter().any(|p| {
            matches!(p, Payload::VendorId(v) if KnownVendor::identify(v) == Some(KnownVendor::Dpd))
        });
        let cky_r: [u8; 8] = random();
        let number = offer
            .proposals
            .iter()
            .find(|p| p.protocol == ProtocolId::ISAKMP)
            .map_or(1, |p| p.number);
        let reply_sa = crate::ike::wire::ikev1::SecurityAssociation {
            proposals: vec![crate::ike::wire::ikev1::Proposal {
                number,
                protocol: ProtocolId::ISAKMP,
                spi: Vec::new(),
                transforms: vec![picked],
            }],
        };
        let header = Header {
            responder_cookie: cky_r,
            flags: Flags::default(),
            ..msg.header.clone()
        };
        let natt = natt_announced(payloads);
        let mut reply = vec![
            Payload::Sa(reply_sa),
            Payload::VendorId(KnownVendor::Dpd.id().to_vec()),
        ];
        reply.extend(natt.map(natt_vid));
        let out = Message::new(header, reply)
            .encode()
            .map_err(|e| Drop::Malformed(e.to_string()))?;
        // Only a first message we answer takes a half-open place.
        if self.half_open() >= HALF_OPEN_LIMIT {
            self.evict_oldest_half_open(now, None);
        }
        let conn_id = self.alloc_conn_id();
        self.log(format!(
            "ISAKMP:(0):found peer pre-shared key matching {}\nISAKMP:({conn_id}):atts are acceptable. Next payload is 0\nISAKMP:({conn_id}):Old State = IKE_READY  New State = IKE_R_MM2",
            remote.ip()
        ));
        self.push_p1(Phase1 {
            conn_id,
            initiator: false,
            local,
            remote,
            cky_i: msg.header.initiator_cookie,
            cky_r,
            state: P1State::R2,
            choice: Some(choice),
            prf: prf_of(choice.hash),
            sai_b,
            psk,
            flight: Some(Flight::new(now, out.clone())),
            answered: data.to_vec(),
            reply: out.clone(),
            peer_dpd,
            natt,
            ..Phase1::blank(now)
        });
        self.send(local, remote, out);
        Ok(())
    }

    fn mm2(&mut self, now: Instant, i: RowId, data: &[u8], msg: &Message) -> Result<(), Drop> {
        let Body::Payloads(payloads) = &msg.body else {
            return Err(Drop::Malformed("encrypted MM2".into()));
        };
        if let Some(n) = payloads.iter().find_map(|p| match p {
            Payload::Notification(n) => Some(n),
            _ => None,
        }) {
            let t = n.notify_type;
            return self.phase1_refused(now, i, t);
        }
        let Some(Payload::Sa(reply)) = payloads.iter().find(|p| matches!(p, Payload::Sa(_))) else {
            return Err(Drop::Malformed("MM2 without an SA payload".into()));
        };
        let Some(choice) = proposal::accept_phase1(reply, &self.policy.isakmp) else {
            self.stats.no_proposal_chosen += 1;
            let (local, peer) = (self.p1[i].local.ip(), self.p1[i].remote.ip());
            self.log(format!("ISAKMP: {peer} chose a transform we did not offer"));
            self.fail_pending(now, local, peer);
            self.delete_isakmp(now, i, false);
            return Ok(());
        };
        let dh = choice
            .group
            .generate()
            .map_err(|e| Drop::Malformed(format!("DH: {e}")))?;
        let ni = random_vec(NONCE_LEN);
        let p = &mut self.p1[i];
        p.peer_dpd = payloads.iter().any(|x| {
            matches!(x, Payload::VendorId(v) if KnownVendor::identify(v) == Some(KnownVendor::Dpd))
        });
        p.natt = natt_announced(payloads);
        p.cky_r = msg.header.responder_cookie;
        p.choice = Some(choice);
        p.prf = prf_of(choice.hash);
        p.g_xi = dh.public_value().to_vec();
        p.dh = Some(dh);
        p.ni_b = ni.clone();
        let header = Header {
            flags: Flags::default(),
            ..msg.header.clone()
        };
        let mut mm3 = vec![Payload::KeyExchange(p.g_xi.clone()), Payload::Nonce(ni)];
        mm3.extend(nat_d_payloads(p));
        let out = Message::new(header, mm3)
            .encode()
            .map_err(|e| Drop::Malformed(e.to_string()))?;
        p.state = P1State::I3;
        p.flight = Some(Flight::new(now, out.clone()));
        p.answered = data.to_vec();
        p.reply = out.clone();
        let (l, r, c) = (p.local, p.remote, p.conn_id);
        self.log(format!("ISAKMP:({c}):atts are acceptable.\nISAKMP:({c}):Old State = IKE_I_MM2  New State = IKE_I_MM3"));
        self.send(l, r, out);
        Ok(())
    }

    /// KE and nonce of the peer: the shared secret, the keys, the IV.
    pub(super) fn key_exchange(&mut self, i: RowId, payloads: &[Payload]) -> Result<(), Drop> {
        let ke = payloads.iter().find_map(|p| match p {
            Payload::KeyExchange(v) => Some(v.clone()),
            _ => None,
        });
        let nonce = payloads.iter().find_map(|p| match p {
            Payload::Nonce(v) => Some(v.clone()),
            _ => None,
        });
        let (Some(ke), Some(nonce)) = (ke, nonce) else {
            return Err(Drop::Malformed("KE or nonce payload missing".into()));
        };
        if !(8..=256).contains(&nonce.len()) {
            return Err(Drop::Malformed(format!("nonce of {} octets", nonce.len())));
        }
        let p = &mut self.p1[i];
        let Some(choice) = p.choice else {
            return Err(Drop::Unexpected("key exchange before the SA was agreed"));
        };
        if p.initiator {
            p.g_xr = ke;
            p.nr_b = nonce;
        } else {
            let dh = choice
                .group
                .generate()
                .map_err(|e| Drop::Malformed(format!("DH: {e}")))?;
            p.g_xi = ke;
            p.ni_b = nonce;
            p.g_xr = dh.public_value().to_vec();
            p.nr_b = random_vec(NONCE_LEN);
            p.dh = Some(dh);
        }
        let peer_value = if p.initiator { &p.g_xr } else { &p.g_xi };
        let shared = match p.dh.as_ref().map(|d| d.shared_secret(peer_value)) {
            Some(Ok(s)) => s,
            _ => {
                self.stats.invalid_key_exchange += 1;
                return Err(Drop::Malformed(
                    "the peer's DH public value is not valid".into(),
                ));
            }
        };
        let keys =
            Phase1Keys::derive_psk(p.prf, &p.psk, &p.ni_b, &p.nr_b, &shared, &p.cky_i, &p.cky_r);
        let enc = kdf::encryption_key(p.prf, &keys.skeyid_e, cipher::key_len(choice.cipher));
        p.cipher = Some(
            IsakmpCipher::new(choice.cipher, enc).map_err(|e| Drop::Malformed(e.to_string()))?,
        );
        p.iv = kdf::phase1_iv(p.prf, &p.g_xi, &p.g_xr, cipher::block_len(choice.cipher));
        p.keys = Some(keys);
        detect_nat(p, payloads);
        Ok(())
    }

    /// Logs what NAT-D found, once the message that carried it is
    /// believed (an AM2 only after its HASH_R).
    pub(super) fn log_nat_found(&mut self, i: RowId) {
        let p = &self.p1[i];
        if p.nat_detected {
            let (c, behind) = (p.conn_id, p.behind_nat);
            self.log(format!(
                "ISAKMP:({c}):NAT found, {} behind a NAT: moving to port {} and UDP-encapsulated ESP",
                if behind { "we are" } else { "the peer is" },
                self.nat_t_port
            ));
        }
    }

    fn mm3(&mut self, now: Instant, i: RowId, data: &[u8], msg: &Message) -> Result<(), Drop> {
        let Body::Payloads(payloads) = &msg.body else {
            return Err(Drop::Malformed("encrypted MM3".into()));
        };
        self.key_exchange(i, payloads)?;
        self.log_nat_found(i);
        let p = &mut self.p1[i];
        let header = Header {
            flags: Flags::default(),
            ..msg.header.clone()
        };
        let mut mm4 = vec![
            Payload::KeyExchange(p.g_xr.clone()),
            Payload::Nonce(p.nr_b.clone()),
        ];
        mm4.extend(nat_d_payloads(p));
        let out = Message::new(header, mm4)
            .encode()
            .map_err(|e| Drop::Malformed(e.to_string()))?;
        p.state = P1State::R4;
        p.flight = Some(Flight::new(now, out.clone()));
        p.answered = data.to_vec();
        p.reply = out.clone();
        let (l, r, c) = (p.local, p.remote, p.conn_id);
        self.log(format!("ISAKMP:({c}):SKEYID state generated\nISAKMP:({c}):Old State = IKE_R_MM3  New State = IKE_R_MM4"));
        self.send(l, r, out);
        Ok(())
    }

    fn mm4(&mut self, now: Instant, i: RowId, data: &[u8], msg: &Message) -> Result<(), Drop> {
        let Body::Payloads(payloads) = &msg.body else {
            return Err(Drop::Malformed("encrypted MM4".into()));
        };
        self.key_exchange(i, payloads)?;
        self.log_nat_found(i);
        let nat_t_port = self.nat_t_port;
        let p = &mut self.p1[i];
        if p.nat_detected {
            p.local.set_port(nat_t_port);
            p.remote.set_port(nat_t_port);
        }
        let id = Payload::Identification(phase1_id(p.local.ip()));
        let idii_b = body(&id);
        let t = p.transcript();
        let hash = kdf::hash_i(
            p.prf,
            &p.keys.as_ref().expect("derived above").skeyid,
            &t,
            &idii_b,
        );
        let header = Header {
            flags: Flags::ENCRYPTION,
            ..msg.header.clone()
        };
        let mut payloads = vec![id, Payload::Hash(hash)];
        payloads.extend(self.initial_contact_notice(i));
        let p = &mut self.p1[i];
        let out = seal(
            p.cipher.as_ref().expect("derived above"),
            &mut p.iv,
            header,
            &payloads,
        )?;
        p.state = P1State::I5;
        p.flight = Some(Flight::new(now, out.clone()));
        p.answered = data.to_vec();
        p.reply = out.clone();
        let (l, r, c) = (p.local, p.remote, p.conn_id);
        self.log(format!("ISAKMP:({c}):SKEYID state generated\nISAKMP:({c}):Old State = IKE_I_MM4  New State = IKE_I_MM5"));
        self.send(l, r, out);
        Ok(())
    }

    /// Decrypts MM5/MM6 and checks the peer's HASH over its identity.
    /// Returns the peer's identity and whether it sent INITIAL-CONTACT.
    fn verify_peer_hash(
        &mut self,
        i: RowId,
        msg: &Message,
    ) -> Result<(Identification, bool), Drop> {
        let p = &self.p1[i];
        let cipher = p.cipher.as_ref().ok_or(Drop::Unexpected("no keys yet"))?;
        let opened = open(cipher, &p.iv, msg)?;
        let id = opened.payloads.iter().find_map(|x| match x {
            Payload::Identification(id) => Some(id.clone()),
            _ => None,
        });
        let hash = opened.payloads.iter().find_map(|x| match x {
            Payload::Hash(h) => Some(h.clone()),
            _ => None,
        });
        let (Some(id), Some(hash)) = (id, hash) else {
            return Err(Drop::Decrypt);
        };
        let id_b = raw_bodies(opened.first, &opened.plaintext)
            .into_iter()
            .find(|(t, _)| *t == PayloadType::IDENTIFICATION.0)
            .map(|(_, b)| b.to_vec())
            .unwrap_or_default();
        let t = p.transcript();
        let skeyid = &p
            .keys
            .as_ref()
            .ok_or(Drop::Unexpected("no keys yet"))?
            .skeyid;
        let expected = if p.initiator {
            kdf::hash_r(p.prf, skeyid, &t, &id_b)
        } else {
            kdf::hash_i(p.prf, skeyid, &t, &id_b)
        };
        if !bool::from(expected.ct_eq(&hash)) {
            return Err(Drop::Hash(if p.initiator { "HASH_R" } else { "HASH_I" }));
        }
        let contact = opened.payloads.iter().any(|x| {
            matches!(x, Payload::Notification(n) if n.notify_type == NotifyType::INITIAL_CONTACT)
        });
        self.p1[i].iv = opened.next_iv;
        Ok((id, contact))
    }

    fn mm5(
        &mut self,
        now: Instant,
        i: RowId,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> Result<(), Drop> {
        // A message that does not decrypt or verify is dropped and
        // counted, and the exchange goes on: it may be forged (the cookies
        // are on the wire) or corrupted, and the peer retransmits. A wrong
        // key fails every retransmission, and the retransmission limit
        // ends the exchange, as in IOS.
        let (id, contact) = self.verify_peer_hash(i, msg)?;
        let p = &mut self.p1[i];
        if local.port() != p.local.port() {
            // The initiator moved to the NAT-T port (or its NAT did).
            p.local = local;
            p.remote = remote;
        }
        if contact {
            self.initial_contact(now, i);
        }
        let p = self
            .p1
            .get_mut(i)
            .ok_or(Drop::Unexpected("ISAKMP SA gone"))?;
        let my_id = Payload::Identification(phase1_id(p.local.ip()));
        let idir_b = body(&my_id);
        let t = p.transcript();
        let hash = kdf::hash_r(
            p.prf,
            &p.keys.as_ref().expect("verified").skeyid,
            &t,
            &idir_b,
        );
        let header = Header {
            flags: Flags::ENCRYPTION,
            ..msg.header.clone()
        };
        let out = seal(
            p.cipher.as_ref().expect("verified"),
            &mut p.iv,
            header,
            &[my_id, Payload::Hash(hash)],
        )?;
        p.answered = data.to_vec();
        p.reply = out.clone();
        p.flight = None;
        let (l, r) = (p.local, p.remote);
        self.send(l, r, out);
        self.established(now, i, &id);
        Ok(())
    }

    fn mm6(&mut self, now: Instant, i: RowId, msg: &Message) -> Result<(), Drop> {
        // As in MM5: dropped, and our MM5 is sent again until the limit.
        let (id, _) = self.verify_peer_hash(i, msg)?;
        self.p1[i].flight = None;
        self.established(now, i, &id);
        Ok(())
    }

    pub(super) fn established(&mut self, now: Instant, i: RowId, peer_id: &Identification) {
        self.stats.phase1_established += 1;
        let dpd = self.policy.dpd;
        self.half_open_count -= usize::from(self.p1[i].is_half_open());
        let p = &mut self.p1[i];
        p.state = P1State::Established;
        p.established_at = Some(now);
        let life = p.choice.map_or(86_400, |c| c.lifetime);
        p.expires_at = Some(now + Duration::from_secs(u64::from(life)));
        p.last_heard = now;
        p.next_dpd = dpd.map(|d| now + Duration::from_secs(u64::from(d.interval)));
        p.dh = None;
        if p.behind_nat {
            p.next_keepalive = self
                .policy
                .nat_keepalive
                .map(|s| now + Duration::from_secs(u64::from(s.max(1))));
        }
        let (c, local, peer, initiator) = (p.conn_id, p.local.ip(), p.remote.ip(), p.initiator);
        self.log(format!(
            "ISAKMP:({c}):peer matches *none* of the profiles\nISAKMP:({c}):SA authentication status:\n\tauthenticated\nISAKMP:({c}):SA has been authenticated with {peer} (peer ID {:?})\nISAKMP:({c}):Old State = IKE_{}_MM{}  New State = IKE_P1_COMPLETE",
            peer_id.identity,
            if initiator { "I" } else { "R" },
            if initiator { 6 } else { 5 }
        ));
        let (mine, rest): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|x| x.local == local && x.peer == peer);
        self.pending = rest;
        for x in mine {
            self.start_quick_mode(now, i, x.entry, x.proxy);
        }
    }

    /// The peer says it has no other state with us (it restarted):
    /// every other ISAKMP SA and every pair with it goes (RFC 2407
    /// §4.6.3.3), so traffic moves to what it negotiates now.
    ///
    /// Behind a NAT the peer is its address *and port*, as IOS has it
    /// ("bring down existing phase 1 and 2 SA's with local L remote R
    /// remote port P"): another peer behind the same NAT keeps its SAs.
    /// INITIAL-CONTACT (RFC 2407 §4.6.3.3) for the initiator's last
    /// Phase 1 message (MM5, AM3) of ISAKMP SA `i`, only when we hold
    /// nothing with this peer, as IOS does: after a restart or an address
    /// change, not when a new ISAKMP SA replaces one whose IPsec SAs are
    /// still in use (the peer would delete them).
    pub(super) fn initial_contact_notice(&self, i: RowId) -> Option<Payload> {
        let p = &self.p1[i];
        let (local, peer, cookies) = (p.local.ip(), p.remote.ip(), (p.cky_i, p.cky_r));
        let known = self.p1.with(&P1Key::Peer(peer)).any(|(_, q)| {
            q.state == P1State::Established
                && q.local.ip() == local
                && (q.cky_i, q.cky_r) != cookies
        }) || self
            .pairs
            .with(&PairKey::Peer(peer))
            .any(|(_, x)| x.info.local == local);
        (!known).then(|| {
            Payload::Notification(Notification {
                doi: 1,
                protocol: ProtocolId::ISAKMP,
                spi: p.cookies(),
                notify_type: NotifyType::INITIAL_CONTACT,
                data: Vec::new(),
            })
        })
    }

    pub(super) fn initial_contact(&mut self, now: Instant, keep: RowId) {
        let (local, remote) = (self.p1[keep].local.ip(), self.p1[keep].remote);
        let peer = remote.ip();
        let nat = self.p1[keep].nat_detected;
        let same = move |r: SocketAddr| r.ip() == peer && (!nat || r.port() == remote.port());
        let (ci, cr) = (self.p1[keep].cky_i, self.p1[keep].cky_r);
        let stale: Vec<RowId> = self
            .p1
            .with(&P1Key::Peer(peer))
            .filter(|(_, p)| {
                p.local.ip() == local && same(p.remote) && !(p.cky_i == ci && p.cky_r == cr)
            })
            .map(|(k, _)| k)
            .rev()
            .collect();
        for k in stale {
            self.delete_isakmp(now, k, false);
        }
        let gone = self.pairs.remove_with(&PairKey::Peer(peer), |p| {
            same(p.remote) && p.info.local == local
        });
        if !gone.is_empty() {
            self.log(format!(
                "ISAKMP: INITIAL-CONTACT from {peer}: deleting {} old SA pair(s)",
                gone.len()
            ));
        }
        for p in gone {
            self.out.push_back(Output::Delete {
                inbound_spi: p.info.inbound_spi,
                outbound_spi: p.info.outbound_spi,
            });
        }
    }

    /// The responder refused Main Mode (a clear notification instead of
    /// MM2).
    pub(super) fn phase1_refused(
        &mut self,
        now: Instant,
        i: RowId,
        t: NotifyType,
    ) -> Result<(), Drop> {
        self.stats.notifies_received += 1;
        let (local, peer) = (self.p1[i].local.ip(), self.p1[i].remote.ip());
        self.log(format!(
            "ISAKMP: {peer} refused Main Mode: {}",
            t.name().unwrap_or("unknown notification")
        ));
        self.fail_pending(now, local, peer);
        self.delete_isakmp(now, i, false);
        Ok(())
    }
}

/// NAT-D payloads for MM3/MM4: the peer's address and port as we send
/// to them, then ours (RFC 3947 §3.2); none without NAT-T.
pub(super) fn nat_d_payloads(p: &Phase1) -> Vec<Payload> {
    let Some(style) = p.natt else {
        return Vec::new();
    };
    [p.remote, p.local]
        .into_iter()
        .map(|a| {
            let h = nat_d(p.prf, &p.cky_i, &p.cky_r, a);
            match style {
                UdpEncapStyle::Rfc3947 => Payload::NatD(h),
                UdpEncapStyle::Draft => Payload::NatDDraft(h),
            }
        })
        .collect()
}

/// Compares the peer's NAT-D payloads with the addresses the message
/// really travelled between (RFC 3947 §3.2): the first names us as the
/// peer saw us, the others the peer as it sent.
pub(super) fn detect_nat(p: &mut Phase1, payloads: &[Payload]) {
    if p.natt.is_none() {
        return;
    }
    let ds: Vec<&[u8]> = payloads
        .iter()
        .filter_map(|x| match x {
            Payload::NatD(h) | Payload::NatDDraft(h) => Some(h.as_slice()),
            _ => None,
        })
        .collect();
    let Some((first, rest)) = ds.split_first() else {
        return;
    };
    let me = nat_d(p.prf, &p.cky_i, &p.cky_r, p.local);
    let them = nat_d(p.prf, &p.cky_i, &p.cky_r, p.remote);
    p.behind_nat = *first != me.as_slice();
    let peer_behind = !rest.contains(&them.as_slice());
    p.nat_detected = p.behind_nat || peer_behind;
}

fn h_cookies(h: &Header, cky_r: [u8; 8]) -> ([u8; 8], [u8; 8]) {
    (h.initiator_cookie, cky_r)
}
