//! The informational exchange (RFC 2409 §5.7): deletes, notifications and
//! dead peer detection (RFC 3706), protected by HASH(1) once the ISAKMP SA
//! exists.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::*;

impl Engine {
    pub(super) fn informational(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        msg: &Message,
    ) -> Result<(), Drop> {
        let Some(i) = self.find_p1(&msg.header, remote) else {
            self.stats.unknown_cookies += 1;
            return Ok(());
        };
        if let Body::Payloads(payloads) = &msg.body {
            // Unprotected: only believed while Main Mode is still running
            // (a refusal of our proposal), and only logged otherwise.
            for p in payloads {
                if let Payload::Notification(n) = p {
                    let t = n.notify_type;
                    self.log(format!(
                        "ISAKMP: unprotected notification {} from {}",
                        t.name().unwrap_or("unknown"),
                        remote.ip()
                    ));
                    if self.p1[i].state != P1State::Established && t.0 < 8192 {
                        return self.phase1_refused(now, i, t);
                    }
                    self.stats.notifies_received += 1;
                }
            }
            return Ok(());
        }
        let p = &self.p1[i];
        if p.state != P1State::Established {
            return Err(Drop::Unexpected(
                "protected informational before Main Mode finished",
            ));
        }
        let (Some(cipher), Some(keys)) = (p.cipher.as_ref(), p.keys.as_ref()) else {
            return Err(Drop::Unexpected("no keys"));
        };
        let iv = kdf::phase2_iv(p.prf, &p.iv, msg.header.message_id, cipher.block_len());
        let opened = open(cipher, &iv, msg)?;
        let Some(hash) = opened.first_hash() else {
            return Err(Drop::Malformed("informational without HASH(1)".into()));
        };
        let expected = kdf::qm_hash1(
            p.prf,
            &keys.skeyid_a,
            msg.header.message_id,
            opened.after_first(),
        );
        if !bool::from(expected.ct_eq(hash)) {
            return Err(Drop::Hash("informational HASH(1)"));
        }
        // Authentic, not fresh (a replay verifies too): only the DPD
        // notifications below count as signs of life.
        for payload in opened.payloads.into_iter().skip(1) {
            match payload {
                Payload::Notification(n) => self.notification(now, (local, remote), i, n),
                Payload::Delete(d) => {
                    self.stats.deletes_received += 1;
                    if d.protocol == ProtocolId::ISAKMP {
                        // The SPI of an ISAKMP SA is its two cookies (RFC
                        // 2408 §3.15): the one named goes, which need not
                        // be the one the DELETE came over.
                        let mut named: Vec<RowId> = if d.spis.is_empty() {
                            vec![i]
                        } else {
                            d.spis
                                .iter()
                                .filter_map(|spi| self.isakmp_named(spi, i, remote))
                                .collect()
                        };
                        // A DELETE may name an SA twice.
                        named.sort_unstable();
                        named.dedup();
                        // The SA the DELETE came over goes last: the
                        // rest of the message needs it.
                        let this_one = named.contains(&i);
                        named.retain(|&j| j != i);
                        named.extend(this_one.then_some(i));
                        for j in named {
                            let c = self.p1[j].conn_id;
                            self.log(format!(
                                "ISAKMP:({c}):received DELETE for the ISAKMP SA from {}",
                                remote.ip()
                            ));
                            self.delete_isakmp(now, j, false);
                        }
                        if this_one {
                            return Ok(());
                        }
                        continue;
                    }
                    if d.protocol == ProtocolId::IPSEC_ESP {
                        let owner = (self.p1[i].cky_i, self.p1[i].cky_r);
                        for spi in &d.spis {
                            let Ok(spi) = <[u8; 4]>::try_from(spi.as_slice()) else {
                                continue;
                            };
                            self.peer_deleted(u32::from_be_bytes(spi), remote, owner);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The ISAKMP SA whose cookies are `spi`, if it is `i` (the one the
    /// DELETE came over) or another with the same endpoint `remote`
    /// (address and port: another client behind the same NAT sees our
    /// cookies on the wire).
    fn isakmp_named(&self, spi: &[u8], i: RowId, remote: SocketAddr) -> Option<RowId> {
        let (ci, cr) = spi.split_at_checked(8)?;
        let (ci, cr): ([u8; 8], [u8; 8]) = (ci.try_into().ok()?, cr.try_into().ok()?);
        let j = self.p1.find(&P1Key::Cookie(ci), |p| p.cky_r == cr)?;
        (j == i || self.p1[j].remote == remote).then_some(j)
    }

    /// The peer at `remote` deleted its inbound SA `spi` (our outbound
    /// one) in a DELETE protected by the ISAKMP SA with cookies `owner`.
    /// Only a pair of that endpoint (address and port: another client
    /// behind the same NAT sees our SPIs on the wire) or of that ISAKMP
    /// SA goes.
    fn peer_deleted(&mut self, spi: u32, remote: SocketAddr, owner: ([u8; 8], [u8; 8])) {
        let Some(k) = self.pairs.find(&PairKey::Outbound(spi), |p| {
            p.info.peer == remote.ip() && (p.remote == remote || p.owner == owner)
        }) else {
            return;
        };
        let Some(p) = self.pairs.remove(k) else {
            return;
        };
        self.log(format!(
            "ISAKMP: received DELETE for SPI {spi:#010x} from {}\nIPSEC(delete_sa): deleting SA pair {:#010x}/{:#010x}",
            remote.ip(),
            p.info.inbound_spi,
            p.info.outbound_spi
        ));
        self.out.push_back(Output::Delete {
            inbound_spi: p.info.inbound_spi,
            outbound_spi: p.info.outbound_spi,
        });
    }

    /// A notification in a protected informational from `from` (local,
    /// remote) under ISAKMP SA `i`.
    fn notification(
        &mut self,
        now: Instant,
        from: (SocketAddr, SocketAddr),
        i: RowId,
        n: Notification,
    ) {
        self.stats.notifies_received += 1;
        let conn = self.p1[i].conn_id;
        let (local, remote) = from;
        match n.notify_type {
            NotifyType::R_U_THERE => {
                let Some(seq) = n.dpd_sequence() else { return };
                // HASH(1) proves it authentic, not fresh: a replayed
                // R-U-THERE verifies too. Only a higher sequence number
                // (RFC 3706 §7) may move the SA to a new NAT mapping,
                // before the ACK is sent.
                let p = &mut self.p1[i];
                if p.peer_dpd_seq.is_none_or(|last| seq > last) {
                    p.peer_dpd_seq = Some(seq);
                    p.last_heard = now;
                    self.follow_mapping(i, local, remote, "IKE");
                }
                let ack = Notification {
                    doi: 1,
                    protocol: ProtocolId::ISAKMP,
                    spi: self.p1[i].cookies(),
                    notify_type: NotifyType::R_U_THERE_ACK,
                    data: seq.to_be_bytes().to_vec(),
                };
                self.log(format!(
                    "ISAKMP:({conn}):DPD/R_U_THERE received, sequence {seq}: acknowledging"
                ));
                self.send_informational(now, i, Payload::Notification(ack));
            }
            NotifyType::R_U_THERE_ACK => {
                let Some(seq) = n.dpd_sequence() else { return };
                let interval = self.policy.dpd.map_or(10, |d| d.interval);
                let p = &mut self.p1[i];
                if p.dpd_pending.is_some_and(|d| d.seq == seq) {
                    p.dpd_pending = None;
                    p.last_heard = now;
                    p.next_dpd = Some(now + Duration::from_secs(u64::from(interval)));
                    // The answer to our pending R-U-THERE: fresh.
                    self.follow_mapping(i, local, remote, "IKE");
                }
            }
            t if t.0 < 8192 => {
                // An error about one of our Quick Modes: fail those still
                // waiting (the SPI, when given, is the proposal's).
                let spi = <[u8; 4]>::try_from(n.spi.as_slice())
                    .ok()
                    .map(u32::from_be_bytes);
                let (ci, cr) = (self.p1[i].cky_i, self.p1[i].cky_r);
                let failed = self.qm.remove_with(&QmKey::Isakmp(ci, cr), |q| {
                    q.initiator && q.state == QmState::SentQm1 && spi.is_none_or(|s| s == q.spi_in)
                });
                for q in failed.into_iter().rev() {
                    self.hold_off(now, q.entry, q.proxy, true);
                }
                self.log(format!(
                    "ISAKMP:({conn}):peer refused: {}",
                    t.name().unwrap_or("unknown error")
                ));
            }
            t => self.log(format!(
                "ISAKMP:({conn}):notification {} received",
                t.name().unwrap_or("unknown status")
            )),
        }
    }
}
