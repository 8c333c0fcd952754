//! Quick Mode (RFC 2409 §5.5): one IPsec SA pair per exchange, under the
//! ISAKMP SA's protection.
//!
//! ```text
//! QM1 I→R  HDR*, HASH(1), SA, Ni [, KE] [, IDci, IDcr]
//! QM2 R→I  HDR*, HASH(2), SA, Nr [, KE] [, IDci, IDcr]
//! QM3 I→R  HDR*, HASH(3)
//! ```
//!
//! As responder, the proposal is matched against the crypto map entries
//! of the ISAKMP SA's local address in order: the peer must be one of the
//! entry's peers (any peer for a dynamic-map entry), the proposed proxy
//! must lie inside one of the entry's `match address` lines (mirrored),
//! and one of its transform sets must be offered. The pair is installed
//! when QM3 arrives (responder) or is sent (initiator).

use std::time::Instant;

use subtle::ConstantTimeEq;

use super::*;

impl Engine {
    /// Starts Quick Mode for `proxy` of map entry `entry` over ISAKMP SA
    /// `i` (established).
    pub(super) fn start_quick_mode(
        &mut self,
        now: Instant,
        i: RowId,
        entry: usize,
        proxy: TrafficSelector,
    ) {
        let Some(e) = self.policy.maps.get(entry).cloned() else {
            return;
        };
        let dh = match e.pfs.map(DhGroup::generate) {
            Some(Ok(d)) => Some(d),
            Some(Err(_)) => return,
            None => None,
        };
        let spi_in = self.alloc_spi();
        let msg_id = loop {
            let id = u32::from_be_bytes(random());
            if id != 0 && self.qm.with(&QmKey::MsgId(id)).next().is_none() {
                break id;
            }
        };
        let ni = random_vec(NONCE_LEN);
        let p = &self.p1[i];
        let udp = if p.nat_detected { p.natt } else { None };
        let Some(cipher) = p.cipher.as_ref() else {
            return;
        };
        let mut iv = kdf::phase2_iv(p.prf, &p.iv, msg_id, cipher.block_len());
        let idci = proxy::identification(&proxy, true);
        let idcr = proxy::identification(&proxy, false);
        let mut after = vec![
            Payload::Sa(proposal::phase2_offer(
                spi_in,
                &e.transforms,
                e.pfs,
                e.lifetime,
                udp,
            )),
            Payload::Nonce(ni.clone()),
        ];
        if let Some(d) = &dh {
            after.push(Payload::KeyExchange(d.public_value().to_vec()));
        }
        after.push(Payload::Identification(idci.clone()));
        after.push(Payload::Identification(idcr.clone()));
        let Ok((_, after_bytes)) = encode_payloads(&after) else {
            return;
        };
        let hash = kdf::qm_hash1(p.prf, p.skeyid_a(), msg_id, &after_bytes);
        let header = Header {
            initiator_cookie: p.cky_i,
            responder_cookie: p.cky_r,
            version: Header::VERSION,
            exchange: ExchangeType::QUICK_MODE,
            flags: Flags::ENCRYPTION,
            message_id: msg_id,
        };
        let mut payloads = vec![Payload::Hash(hash)];
        payloads.extend(after);
        let Ok(data) = seal(cipher, &mut iv, header, &payloads) else {
            return;
        };
        let (l, r, c) = (p.local, p.remote, p.conn_id);
        self.qm.push(QuickMode {
            cky_i: p.cky_i,
            cky_r: p.cky_r,
            msg_id,
            initiator: true,
            state: QmState::SentQm1,
            entry,
            proxy,
            iv,
            spi_in,
            spi_out: 0,
            ni_b: ni,
            nr_b: Vec::new(),
            dh,
            g_qm_xy: None,
            choice: None,
            ids: Some((idci, idcr)),
            flight: Some(Flight::new(now, data.clone())),
            answered: Vec::new(),
            reply: data.clone(),
            done_at: None,
        });
        self.log(format!(
            "ISAKMP:({c}):beginning Quick Mode exchange, M-ID of {msg_id}\nISAKMP:({c}):Old State = IKE_QM_READY  New State = IKE_QM_I_QM1"
        ));
        self.send(l, r, data);
    }

    pub(super) fn quick_mode(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
        msg: &Message,
    ) -> Result<(), Drop> {
        let h = &msg.header;
        let Some(i) = self.find_p1(h, remote) else {
            self.stats.unknown_cookies += 1;
            return Ok(());
        };
        if self.p1[i].state != P1State::Established {
            return Err(Drop::Unexpected("Quick Mode before Main Mode finished"));
        }
        if h.message_id == 0 {
            return Err(Drop::Malformed("Quick Mode with Message ID 0".into()));
        }
        let exchange = QmKey::Exchange(h.initiator_cookie, h.responder_cookie, h.message_id);
        let Some(k) = self.qm.find(&exchange, |_| true) else {
            return self.qm1(now, Arrival { i, local, remote }, data, msg);
        };
        if self.qm[k].answered.as_slice() == data {
            // Answered where it came from, which is where its sender is
            // (a new NAT mapping, if any, is followed only on fresh
            // messages: a duplicate is not one).
            self.stats.duplicates += 1;
            let d = self.qm[k].reply.clone();
            self.send(local, remote, d);
            return Ok(());
        }
        match (self.qm[k].initiator, self.qm[k].state) {
            (true, QmState::SentQm1) => self.qm2(now, Arrival { i, local, remote }, k, data, msg),
            (false, QmState::SentQm2) => self.qm3(now, Arrival { i, local, remote }, k, msg),
            _ => Err(Drop::Unexpected(
                "Quick Mode message after the exchange finished",
            )),
        }
    }

    fn qm1(&mut self, now: Instant, at: Arrival, data: &[u8], msg: &Message) -> Result<(), Drop> {
        let i = at.i;
        let msg_id = msg.header.message_id;
        let p = &self.p1[i];
        let cipher = p.cipher.as_ref().ok_or(Drop::Unexpected("no keys"))?;
        let iv = kdf::phase2_iv(p.prf, &p.iv, msg_id, cipher.block_len());
        let opened = open(cipher, &iv, msg)?;
        let hash = opened
            .first_hash()
            .ok_or_else(|| Drop::Malformed("QM1 does not start with HASH(1)".into()))?;
        let expected = kdf::qm_hash1(p.prf, p.skeyid_a(), msg_id, opened.after_first());
        if !bool::from(expected.ct_eq(hash)) {
            return Err(Drop::Hash("QM1 HASH(1)"));
        }
        // Authentic, not fresh (a replayed QM1 verifies too): the peer
        // counts as heard from at its QM3, which answers our nonce, and a
        // Message ID this SA has seen is a replay (RFC 2409 §5.5 has each
        // Quick Mode take a new one).
        if p.peer_qm_ids.contains(&msg_id) {
            return Err(Drop::Unexpected(
                "a QM1 with a Message ID this ISAKMP SA has seen",
            ));
        }
        let (local, peer, conn) = (p.local, p.remote, p.conn_id);
        let mut sa = None;
        let mut nonce = None;
        let mut ke = None;
        let mut ids = Vec::new();
        for x in &opened.payloads[1..] {
            match x {
                Payload::Sa(s) => sa = Some(s.clone()),
                Payload::Nonce(n) => nonce = Some(n.clone()),
                Payload::KeyExchange(k) => ke = Some(k.clone()),
                Payload::Identification(id) => ids.push(id.clone()),
                _ => {}
            }
        }
        let (Some(sa), Some(ni)) = (sa, nonce) else {
            return Err(Drop::Malformed("QM1 without SA or nonce".into()));
        };
        if !(8..=256).contains(&ni.len()) {
            return Err(Drop::Malformed(format!("nonce of {} octets", ni.len())));
        }
        let (idci, idcr) = match ids.as_slice() {
            [] => (
                proxy::identification(&host_pair(peer.ip(), local.ip()), true),
                proxy::identification(&host_pair(peer.ip(), local.ip()), false),
            ),
            [ci, cr] => (ci.clone(), cr.clone()),
            _ => return Err(Drop::Malformed("QM1 with one or more than two IDs".into())),
        };
        let sel = match (proxy::side(&idci), proxy::side(&idcr)) {
            (Some(ci), Some(cr)) => proxy::selector(&cr, &ci),
            _ => None,
        };
        let Some(sel) = sel else {
            self.stats.invalid_id += 1;
            self.log(format!("IPSEC(validate_proposal_request): proxy identities from {} are not addresses we can protect", peer.ip()));
            self.send_qm_notify(now, i, &sa, NotifyType::INVALID_ID_INFORMATION);
            return Ok(());
        };
        // The entries whose peer and proxy fit, in map order.
        let candidates: Vec<usize> = (0..self.policy.maps.len())
            .filter(|&k| {
                let e = &self.policy.maps[k];
                e.local == local.ip()
                    && (e.peers.contains(&peer.ip()) || (e.peers.is_empty() && e.dynamic.is_some()))
                    && ((e.selectors.is_empty() && e.dynamic.is_some())
                        || e.selectors.iter().any(|s| within(&sel, s)))
            })
            .collect();
        if candidates.is_empty() {
            self.stats.invalid_id += 1;
            self.log(format!(
                "IPSEC(validate_transform_proposal): proxy identities not supported\nISAKMP:({conn}):IPSec policy invalidated proposal with error 32 (local {} remote {} from {})",
                fmt_sel(&sel),
                fmt_sel(&TrafficSelector { src: sel.dst, src_ports: sel.dst_ports, ..sel }),
                peer.ip()
            ));
            self.send_qm_notify(now, i, &sa, NotifyType::INVALID_ID_INFORMATION);
            return Ok(());
        }
        let picked = candidates.iter().find_map(|&k| {
            let e = &self.policy.maps[k];
            let pfs = e.pfs;
            proposal::choose_phase2(&sa, &e.transforms, pfs, e.lifetime).map(|c| (k, c))
        });
        let Some((entry, (number, spi_out, transform, choice))) = picked else {
            self.stats.no_proposal_chosen += 1;
            self.log(format!(
                "IPSEC(validate_proposal_request): no transform set of the matching map entries is offered by {}\nISAKMP:({conn}):IPSec policy invalidated proposal with error 256",
                peer.ip()
            ));
            self.send_qm_notify(now, i, &sa, NotifyType::NO_PROPOSAL_CHOSEN);
            return Ok(());
        };
        if self.at_pair_limit(peer.ip(), entry, sel) {
            self.stats.pair_limit += 1;
            self.log(format!(
                "IPSEC(validate_proposal_request): {} holds {PAIR_LIMIT} SA pairs and negotiations: a new pair for {} is refused",
                peer.ip(),
                fmt_sel(&sel),
            ));
            self.send_qm_notify(now, i, &sa, NotifyType::NO_PROPOSAL_CHOSEN);
            return Ok(());
        }
        let (dh, g_qm_xy) = match (choice.pfs, ke) {
            (Some(g), Some(ke)) => {
                let d = g
                    .generate()
                    .map_err(|e| Drop::Malformed(format!("DH: {e}")))?;
                match d.shared_secret(&ke) {
                    Ok(s) => (Some(d), Some(s)),
                    Err(_) => {
                        self.stats.invalid_key_exchange += 1;
                        return Err(Drop::Malformed("QM1 KE is not a valid public value".into()));
                    }
                }
            }
            (None, None) => (None, None),
            _ => {
                self.stats.no_proposal_chosen += 1;
                self.send_qm_notify(now, i, &sa, NotifyType::NO_PROPOSAL_CHOSEN);
                return Ok(());
            }
        };
        let spi_in = self.alloc_spi();
        let nr = random_vec(NONCE_LEN);
        let mut after = vec![
            Payload::Sa(proposal::phase2_answer(number, spi_in, &transform)),
            Payload::Nonce(nr.clone()),
        ];
        if let Some(d) = &dh {
            after.push(Payload::KeyExchange(d.public_value().to_vec()));
        }
        if !ids.is_empty() {
            after.push(Payload::Identification(idci.clone()));
            after.push(Payload::Identification(idcr.clone()));
        }
        if let Some(n) = responder_lifetime(&transform, &choice, &sa) {
            after.push(Payload::Notification(n));
        }
        let p = &self.p1[i];
        let (_, after_bytes) =
            encode_payloads(&after).map_err(|e| Drop::Malformed(e.to_string()))?;
        let hash = kdf::qm_hash2(p.prf, p.skeyid_a(), msg_id, &ni, &after_bytes);
        let mut payloads = vec![Payload::Hash(hash)];
        payloads.extend(after);
        let header = Header {
            flags: Flags::ENCRYPTION,
            ..msg.header.clone()
        };
        let mut iv = opened.next_iv.clone();
        let cipher = p.cipher.as_ref().ok_or(Drop::Unexpected("no keys"))?;
        let out = seal(cipher, &mut iv, header, &payloads)?;
        self.log(format!(
            "ISAKMP:({conn}):Checking IPSec proposal {number}\nISAKMP:({conn}):atts are acceptable.\nIPSEC(validate_proposal_request): proposal part #1,\n  (key eng. msg.) INBOUND local= {}:0, remote= {}:0,\n    local_proxy= {},\n    remote_proxy= {},\n    protocol= ESP, transform= {} {}\nISAKMP:({conn}):Old State = IKE_QM_READY  New State = IKE_QM_R_QM2",
            local.ip(),
            peer.ip(),
            fmt_sel(&sel),
            fmt_sel(&TrafficSelector { src: sel.dst, src_ports: sel.dst_ports, ..sel }),
            choice.enc.ios_name(),
            choice.auth.ios_name(),
        ));
        let k = self.qm.push(QuickMode {
            cky_i: msg.header.initiator_cookie,
            cky_r: msg.header.responder_cookie,
            msg_id,
            initiator: false,
            state: QmState::SentQm2,
            entry,
            proxy: sel,
            iv,
            spi_in,
            spi_out,
            ni_b: ni,
            nr_b: nr,
            dh,
            g_qm_xy,
            choice: Some(choice),
            ids: Some((idci, idcr)),
            flight: Some(Flight::new(now, out.clone())),
            answered: data.to_vec(),
            reply: out.clone(),
            done_at: None,
        });
        // Remembered once answered: a QM1 we refused (its notify lost)
        // may come again and is refused again, not taken for a replay.
        let ids_seen = &mut self.p1[i].peer_qm_ids;
        if ids_seen.len() == SEEN_QM_IDS {
            ids_seen.pop_front();
        }
        ids_seen.push_back(msg_id);
        // The inbound SA before QM2 leaves (outputs are carried out in
        // order): see `preinstall_inbound`.
        self.preinstall_inbound(i, k);
        // To where QM1 came from: after a NAT's new mapping that is the
        // peer's new port, which QM1 (replayable) does not move us to but
        // QM3 will.
        self.send(at.local, at.remote, out);
        Ok(())
    }

    fn qm2(
        &mut self,
        now: Instant,
        at: Arrival,
        k: RowId,
        data: &[u8],
        msg: &Message,
    ) -> Result<(), Drop> {
        let i = at.i;
        let p = &self.p1[i];
        let q = &self.qm[k];
        let cipher = p.cipher.as_ref().ok_or(Drop::Unexpected("no keys"))?;
        let opened = open(cipher, &q.iv, msg)?;
        let hash = opened
            .first_hash()
            .ok_or_else(|| Drop::Malformed("QM2 does not start with HASH(2)".into()))?;
        let expected = kdf::qm_hash2(p.prf, p.skeyid_a(), q.msg_id, &q.ni_b, opened.after_first());
        if !bool::from(expected.ct_eq(hash)) {
            return Err(Drop::Hash("QM2 HASH(2)"));
        }
        let e = self
            .policy
            .maps
            .get(q.entry)
            .cloned()
            .ok_or(Drop::Unexpected("map entry gone"))?;
        let mut sa = None;
        let mut nonce = None;
        let mut ke = None;
        let mut ids = Vec::new();
        let mut responder_life = None;
        for x in &opened.payloads[1..] {
            match x {
                Payload::Sa(s) => sa = Some(s.clone()),
                Payload::Nonce(n) => nonce = Some(n.clone()),
                Payload::KeyExchange(v) => ke = Some(v.clone()),
                Payload::Identification(id) => ids.push(id.clone()),
                Payload::Notification(n) if n.notify_type == NotifyType::RESPONDER_LIFETIME => {
                    responder_life = n.attributes().ok();
                }
                _ => {}
            }
        }
        let (Some(sa), Some(nr)) = (sa, nonce) else {
            return Err(Drop::Malformed("QM2 without SA or nonce".into()));
        };
        if !(8..=256).contains(&nr.len()) {
            return Err(Drop::Malformed(format!("nonce of {} octets", nr.len())));
        }
        if let ([ci, cr], Some((mci, mcr))) = (ids.as_slice(), &q.ids) {
            if proxy::side(ci) != proxy::side(mci) || proxy::side(cr) != proxy::side(mcr) {
                self.stats.invalid_id += 1;
                self.fail_qm(now, k, "the responder changed the proxy identities");
                return Ok(());
            }
        }
        let Some((spi_out, mut choice)) =
            proposal::accept_phase2(&sa, &e.transforms, e.pfs, e.lifetime)
        else {
            self.stats.no_proposal_chosen += 1;
            self.fail_qm(now, k, "the responder chose a transform we did not offer");
            return Ok(());
        };
        if let Some(life) = responder_life.as_deref().and_then(proposal::read_lifetime) {
            if life.seconds < proposal::MIN_LIFETIME_SECONDS {
                self.stats.no_proposal_chosen += 1;
                self.fail_qm(
                    now,
                    k,
                    "the responder's lifetime is too short to rekey in time",
                );
                return Ok(());
            }
            choice.lifetime = proposal::shorter(choice.lifetime, life);
        }
        let g_qm_xy = match (&q.dh, ke) {
            (Some(d), Some(ke)) => match d.shared_secret(&ke) {
                Ok(s) => Some(s),
                Err(_) => {
                    self.stats.invalid_key_exchange += 1;
                    self.fail_qm(now, k, "QM2 KE is not a valid public value");
                    return Ok(());
                }
            },
            (None, None) => None,
            _ => {
                self.stats.no_proposal_chosen += 1;
                self.fail_qm(now, k, "PFS mismatch");
                return Ok(());
            }
        };
        let hash3 = kdf::qm_hash3(p.prf, p.skeyid_a(), q.msg_id, &q.ni_b, &nr);
        let header = Header {
            flags: Flags::ENCRYPTION,
            ..msg.header.clone()
        };
        let mut iv = opened.next_iv.clone();
        let out = seal(cipher, &mut iv, header, &[Payload::Hash(hash3)])?;
        self.p1[i].last_heard = now;
        let q = &mut self.qm[k];
        q.iv = iv;
        q.nr_b = nr;
        q.spi_out = spi_out;
        q.choice = Some(choice);
        q.g_qm_xy = g_qm_xy;
        q.dh = None;
        q.state = QmState::Done;
        q.done_at = Some(now);
        q.flight = None;
        q.answered = data.to_vec();
        q.reply = out.clone();
        // Authentic and fresh (HASH(2) covers our nonce): a new NAT
        // mapping shows here; QM3 and the new pair go to it.
        self.follow_mapping(i, at.local, at.remote, "IKE");
        let (l, r) = (self.p1[i].local, self.p1[i].remote);
        self.send(l, r, out);
        self.install(now, i, k);
        Ok(())
    }

    fn qm3(&mut self, now: Instant, at: Arrival, k: RowId, msg: &Message) -> Result<(), Drop> {
        let i = at.i;
        let p = &self.p1[i];
        let q = &self.qm[k];
        let cipher = p.cipher.as_ref().ok_or(Drop::Unexpected("no keys"))?;
        let opened = open(cipher, &q.iv, msg)?;
        let hash = opened
            .first_hash()
            .ok_or_else(|| Drop::Malformed("QM3 without HASH(3)".into()))?;
        let expected = kdf::qm_hash3(p.prf, p.skeyid_a(), q.msg_id, &q.ni_b, &q.nr_b);
        if !bool::from(expected.ct_eq(hash)) {
            return Err(Drop::Hash("QM3 HASH(3)"));
        }
        // Authentic and fresh (HASH(3) covers both nonces).
        self.follow_mapping(i, at.local, at.remote, "IKE");
        self.p1[i].last_heard = now;
        let q = &mut self.qm[k];
        q.state = QmState::Done;
        q.done_at = Some(now);
        q.flight = None;
        q.dh = None;
        self.install(now, i, k);
        Ok(())
    }

    fn fail_qm(&mut self, now: Instant, k: RowId, why: &str) {
        let Some(q) = self.qm.remove(k) else {
            return;
        };
        self.hold_off(now, q.entry, q.proxy, q.initiator);
        self.log(format!("ISAKMP: Quick Mode {:#x} failed: {why}", q.msg_id));
    }

    /// Refuses a Quick Mode proposal with a protected notification naming
    /// the proposal's SPI.
    fn send_qm_notify(
        &mut self,
        now: Instant,
        i: RowId,
        sa: &crate::ike::wire::ikev1::SecurityAssociation,
        t: NotifyType,
    ) {
        let spi = sa
            .proposals
            .first()
            .map(|p| p.spi.clone())
            .unwrap_or_default();
        let n = Notification {
            doi: 1,
            protocol: ProtocolId::IPSEC_ESP,
            spi,
            notify_type: t,
            data: Vec::new(),
        };
        self.send_informational(now, i, Payload::Notification(n));
    }

    /// The pair's SA parameters, keys derived (RFC 2409 §5.5 KEYMAT).
    fn pair_params(&self, i: RowId, k: RowId) -> Option<(SaParams, SaParams, PairInfo)> {
        let p = &self.p1[i];
        let q = &self.qm[k];
        let (Some(choice), Some(keys)) = (q.choice, p.keys.as_ref()) else {
            return None;
        };
        let e = self.policy.maps.get(q.entry)?;
        let enc_len = choice.enc.key_len();
        let len = enc_len + choice.auth.key_len();
        let sa_keys = |spi: u32| {
            let spi_b = spi.to_be_bytes();
            let km = kdf::keymat(
                p.prf,
                &keys.skeyid_d,
                &KeymatInput {
                    g_qm_xy: q.g_qm_xy.as_deref().map(|v| v.as_slice()),
                    protocol: ProtocolId::IPSEC_ESP.0,
                    spi: &spi_b,
                    ni_b: &q.ni_b,
                    nr_b: &q.nr_b,
                },
                len,
            );
            SaKeys {
                enc: km[..enc_len].to_vec(),
                auth: km[enc_len..].to_vec(),
            }
        };
        let mode = if choice.tunnel {
            dataplane::api::EspMode::Tunnel {
                local: p.local.ip(),
                remote: p.remote.ip(),
            }
        } else {
            dataplane::api::EspMode::Transport
        };
        // The initiator rekeys first, the responder only if the initiator
        // did not: seconds at 85-90% (spread, `ike::lifetime`) / 95%,
        // kilobytes at 80% / 90% (volume is checked once a second by the
        // dataplane, so it needs the wider margin to rekey before the hard
        // limit at high rates).
        let lifetime = {
            let secs = choice.lifetime.seconds;
            let kb = choice.lifetime.kilobytes;
            let (k_num, k_den) = if q.initiator { (8, 10) } else { (9, 10) };
            Lifetime {
                soft_seconds: Some(lifetime::soft_seconds(secs, q.initiator)),
                hard_seconds: Some(secs),
                soft_kilobytes: Some((kb / k_den * k_num).max(1)),
                hard_kilobytes: Some(kb),
            }
        };
        let inbound = SaParams {
            spi: q.spi_in,
            direction: Direction::Inbound,
            enc: choice.enc,
            auth: choice.auth,
            keys: sa_keys(q.spi_in),
            mode,
            udp_encap: (choice.udp || p.nat_detected).then(|| dataplane::api::UdpEncap {
                src_port: p.local.port(),
                dst_port: p.remote.port(),
            }),
            esn: false,
            replay_window: e.replay_window,
            lifetime,
            selectors: vec![q.proxy],
        };
        let outbound = SaParams {
            spi: q.spi_out,
            direction: Direction::Outbound,
            keys: sa_keys(q.spi_out),
            replay_window: 0,
            ..inbound.clone()
        };
        let info = PairInfo {
            tag: e.tag,
            proxy: q.proxy,
            local: p.local.ip(),
            peer: p.remote.ip(),
            inbound_spi: q.spi_in,
            outbound_spi: q.spi_out,
        };
        Some((inbound, outbound, info))
    }

    /// Responder, before sending QM2: the inbound SA goes in first. An
    /// initiator may send on the new SA as soon as it has QM2, before
    /// QM3: strongSwan installs both SAs and moves its traffic to the new
    /// one while processing QM2 (`quick_mode.c`, `process_i`). Installed
    /// after QM2 left, a packet that raced the install was lost (one ping
    /// in thousands across strongSwan's rekeys in `lab_swan_ikev1`).
    fn preinstall_inbound(&mut self, i: RowId, k: RowId) {
        if let Some((inbound, _, _)) = self.pair_params(i, k) {
            self.out
                .push_back(Output::InstallInbound(Box::new(inbound)));
        }
    }

    /// Whether a new pair for `proxy` of map entry `entry` would take
    /// `peer` over its limit. Every pair it holds counts, superseded ones
    /// too (they stay in the dataplane until they expire or are deleted,
    /// at most [`KEPT_SUPERSEDED`] per proxy), and every Quick Mode under
    /// way with it. [`PAIR_LIMIT`] for a new pair. A rekey is one only
    /// when the peer holds a current pair for `proxy` and no Quick Mode
    /// is under way for it (so concurrent QM1s for one proxy are not all
    /// rekeys); a proxy then holds at most its current pair,
    /// [`KEPT_SUPERSEDED`] superseded ones and the rekey under way, so
    /// [`REKEY_CEILING`] lets a peer that holds [`PAIR_LIMIT`] proxies
    /// rekey each of them as often as it likes, and no further.
    fn at_pair_limit(&self, peer: IpAddr, entry: usize, proxy: TrafficSelector) -> bool {
        let tag = self.policy.maps[entry].tag;
        let isakmp: Vec<([u8; 8], [u8; 8])> = self
            .p1
            .with(&P1Key::Peer(peer))
            .map(|(_, p)| (p.cky_i, p.cky_r))
            .collect();
        let under_way = |q: &QuickMode| q.done_at.is_none() && isakmp.contains(&(q.cky_i, q.cky_r));
        let held = self.pairs.with(&PairKey::Peer(peer)).count()
            + isakmp
                .iter()
                .map(|&(i, r)| {
                    self.qm
                        .with(&QmKey::Isakmp(i, r))
                        .filter(|(_, q)| q.done_at.is_none())
                        .count()
                })
                .sum::<usize>();
        let current = self
            .pairs
            .with(&PairKey::Proxy(tag, proxy))
            .any(|(_, x)| x.info.peer == peer && !x.superseded);
        let rekey = current
            && !self
                .qm
                .with(&QmKey::Proxy(entry, proxy))
                .any(|(_, q)| under_way(q));
        held >= if rekey { REKEY_CEILING } else { PAIR_LIMIT }
    }

    /// Derives the pair's keys and hands it to the driver.
    fn install(&mut self, now: Instant, i: RowId, k: RowId) {
        let Some((inbound, outbound, info)) = self.pair_params(i, k) else {
            return;
        };
        let q = &self.qm[k];
        let (Some(choice), entry, conn, ours) =
            (q.choice, q.entry, self.p1[i].conn_id, q.initiator)
        else {
            return;
        };
        let remote = self.p1[i].remote;
        // By the peer's address, not its port: a static peer whose NAT
        // mapping changed must not rekey its old pair too (a dynamic
        // entry's old pair from another endpoint is deleted just below).
        let mut replaces = None;
        let mut superseded_before: Vec<RowId> = Vec::new();
        for old in self.pairs.ids_with(&PairKey::Proxy(info.tag, info.proxy)) {
            let x = &mut self.pairs[old];
            if x.info.peer == info.peer {
                if x.superseded {
                    superseded_before.push(old);
                } else {
                    replaces = Some(x.info.inbound_spi);
                }
                x.superseded = true;
            }
        }
        // A superseded pair stays for packets still on their way (until
        // it expires, or the peer deletes it); the two newest are plenty:
        // the one this pair replaces and the one before. Older ones go, so
        // rekey after rekey (kilobyte lifetimes, or a peer that asks again
        // and again) does not pile pairs up. Never one that was current.
        // This pair's predecessor becomes one of the kept; the oldest of
        // the others go.
        let surplus = superseded_before
            .len()
            .saturating_sub(KEPT_SUPERSEDED.saturating_sub(1));
        for old in superseded_before.into_iter().take(surplus) {
            self.delete_pair(now, old, "superseded twice since, deleting SA pair (sa)");
        }
        self.stats.phase2_established += 1;
        self.log(format!(
            "IPSEC(create_sa): sa created,\n  (sa) sa_dest= {}, sa_proto= 50,\n    sa_spi= {:#010x}({}),\n    sa_trans= {} {} , sa_conn_id= {conn}\nIPSEC(create_sa): sa created,\n  (sa) sa_dest= {}, sa_proto= 50,\n    sa_spi= {:#010x}({}),\n    sa_trans= {} {} , sa_conn_id= {conn}",
            info.local, info.inbound_spi, info.inbound_spi, choice.enc.ios_name(), choice.auth.ios_name(),
            info.peer, info.outbound_spi, info.outbound_spi, choice.enc.ios_name(), choice.auth.ios_name(),
        ));
        self.out.push_back(Output::Install {
            tag: info.tag,
            proxy: info.proxy,
            inbound: Box::new(inbound),
            outbound: Box::new(outbound),
            // A responder's inbound SA went in at QM2.
            inbound_ready: !ours,
            // Its initiator uses the pair once it sent QM3, with its
            // inbound SA in since QM2.
            keep_sending_on: None,
        });
        let dynamic = self
            .policy
            .maps
            .get(entry)
            .is_some_and(|e| e.dynamic.is_some());
        let (tag, proxy, local) = (info.tag, info.proxy, info.local);
        let p = &self.p1[i];
        let (owner, peer_natted) = ((p.cky_i, p.cky_r), p.nat_detected && !p.behind_nat);
        self.pairs.push(Pair {
            info,
            remote,
            entry,
            superseded: false,
            rekeying: false,
            replaces,
            ours,
            owner,
            peer_natted,
        });
        if dynamic {
            self.replace_stale(now, tag, proxy, local, remote);
        }
    }

    /// A peer of dynamic-map entry `tag` negotiated `proxy` from `remote`:
    /// the pairs for the same entry and proxy negotiated from another
    /// address or port belong to the same peer before its address (or its
    /// NAT's mapping) changed. They are deleted at once, so the dataplane
    /// never sends to the stale address, and so is every ISAKMP SA with
    /// that stale endpoint that is left without pairs. The stale peer is
    /// not told: it is usually unreachable, and it may share its address
    /// with the new one (behind the same NAT).
    fn replace_stale(
        &mut self,
        now: Instant,
        tag: PolicyTag,
        proxy: TrafficSelector,
        local: IpAddr,
        remote: SocketAddr,
    ) {
        let stale = self.pairs.remove_with(&PairKey::Proxy(tag, proxy), |x| {
            x.info.local == local && x.remote != remote
        });
        let mut endpoints: Vec<SocketAddr> = Vec::new();
        for x in stale {
            self.stats.stale_pairs_replaced += 1;
            self.log(format!(
                "IPSEC(delete_sa): dynamic peer {}:{} replaces {}:{} for the same proxy identities: deleting SA pair {:#010x}/{:#010x}",
                remote.ip(),
                remote.port(),
                x.remote.ip(),
                x.remote.port(),
                x.info.inbound_spi,
                x.info.outbound_spi
            ));
            self.out.push_back(Output::Delete {
                inbound_spi: x.info.inbound_spi,
                outbound_spi: x.info.outbound_spi,
            });
            if !endpoints.contains(&x.remote) {
                endpoints.push(x.remote);
            }
        }
        for r in endpoints {
            if self
                .pairs
                .with(&PairKey::Peer(r.ip()))
                .any(|(_, x)| x.remote == r && x.info.local == local)
            {
                continue;
            }
            for k in self.p1.ids_with(&P1Key::Peer(r.ip())).into_iter().rev() {
                if self
                    .p1
                    .get(k)
                    .is_some_and(|p| p.remote == r && p.local.ip() == local)
                {
                    self.delete_isakmp(now, k, false);
                }
            }
        }
    }
}

/// The ISAKMP SA a Quick Mode message came under and its datagram's
/// endpoints (a NAT may have moved the peer's port).
#[derive(Clone, Copy)]
struct Arrival {
    i: RowId,
    local: SocketAddr,
    remote: SocketAddr,
}

/// RESPONDER-LIFETIME (RFC 2407 §4.6.3.1) when we agreed to a shorter
/// lifetime than the initiator proposed, so both sides expire together.
fn responder_lifetime(
    proposed: &crate::ike::wire::ikev1::Transform,
    agreed: &Phase2Choice,
    sa: &crate::ike::wire::ikev1::SecurityAssociation,
) -> Option<Notification> {
    use crate::ike::wire::attribute::Attribute;
    use crate::ike::wire::ikev1::iana::phase2;
    let theirs = proposal::read_phase2(proposed)?.lifetime;
    let mut attrs = Vec::new();
    for (kind, ours, their) in [
        (
            phase2::life_type::SECONDS,
            agreed.lifetime.seconds,
            theirs.seconds,
        ),
        (
            phase2::life_type::KILOBYTES,
            agreed.lifetime.kilobytes,
            theirs.kilobytes,
        ),
    ] {
        if ours < their {
            attrs.push(Attribute::basic(phase2::SA_LIFE_TYPE, kind));
            let v = u32::try_from(ours).unwrap_or(u32::MAX);
            attrs.push(Attribute::variable(
                phase2::SA_LIFE_DURATION,
                v.to_be_bytes().to_vec(),
            ));
        }
    }
    if attrs.is_empty() {
        return None;
    }
    let mut data = Vec::new();
    crate::ike::wire::attribute::encode_list(&attrs, &mut data).ok()?;
    Some(Notification {
        doi: 1,
        protocol: ProtocolId::IPSEC_ESP,
        spi: sa
            .proposals
            .first()
            .map(|p| p.spi.clone())
            .unwrap_or_default(),
        notify_type: NotifyType::RESPONDER_LIFETIME,
        data,
    })
}

/// The proxy when Quick Mode carries no IDs: the two IKE addresses.
fn host_pair(peer: IpAddr, local: IpAddr) -> TrafficSelector {
    TrafficSelector {
        src: IpPrefix::host(peer),
        dst: IpPrefix::host(local),
        proto: None,
        src_ports: dataplane::spd::PortRange::ANY,
        dst_ports: dataplane::spd::PortRange::ANY,
    }
}
