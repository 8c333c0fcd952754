//! INFORMATIONAL exchanges (RFC 7296 §1.4): deletes of CHILD_SAs and of
//! the IKE SA, liveness checks (empty requests) both ways.

use std::time::Instant;

use crate::ike::wire::ikev2::{Delete, ExchangeType, NotifyType, Payload, PayloadBody, ProtocolId};

use super::{Engine, Output, Request};

impl Engine {
    /// A request from the peer: deletes carried out and answered, an
    /// empty request (liveness) answered empty.
    pub(super) fn respond_info(
        &mut self,
        now: Instant,
        k: [u8; 8],
        mid: u32,
        payloads: &[Payload],
    ) {
        let _ = now;
        if payloads.iter().any(|p| {
            matches!(&p.body, PayloadBody::Notify(n) if n.notify_type == NotifyType::AUTHENTICATION_FAILED)
        }) {
            // The initiator did not accept our AUTH (§2.21.2).
            self.stats.auth_failed += 1;
            let peer = self.sas.get(&k).map(|s| s.remote);
            self.log(format!(
                "IKEv2:(SESSION ID = 0):{peer:?} refused our AUTH: deleting the IKE SA"
            ));
            self.respond(k, ExchangeType::INFORMATIONAL, mid, Vec::new());
            self.remove_sa(k);
            return;
        }
        let mut reply_spis = Vec::new();
        let mut unmark = Vec::new();
        let mut delete_ike = false;
        let mut any = false;
        for p in payloads {
            let PayloadBody::Delete(d) = &p.body else {
                continue;
            };
            any = true;
            self.stats.deletes_received += 1;
            if d.protocol == ProtocolId::IKE {
                delete_ike = true;
                continue;
            }
            if d.protocol != ProtocolId::ESP {
                continue;
            }
            // After a rekey the pairs live in the new IKE SA.
            let home = self.home(k);
            let Some(s) = self.sas.get_mut(&home) else {
                return;
            };
            for spi in &d.spis {
                let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else {
                    continue;
                };
                let out_spi = u32::from_be_bytes(b);
                if let Some(i) = s
                    .children
                    .iter()
                    .position(|c| c.info.outbound_spi == out_spi)
                {
                    let c = s.children.remove(i);
                    self.index.child_removed(c.info.inbound_spi);
                    reply_spis.push(c.info.inbound_spi);
                    if let Some(old_in) = c.replaces {
                        // It deleted its rekey's pair, not the old one.
                        unmark.push(old_in);
                    }
                    // The peer's packets on a pair it rekeyed may still
                    // be on their way.
                    self.out.push_back(removal(
                        c.replaced,
                        c.info.inbound_spi,
                        c.info.outbound_spi,
                    ));
                }
            }
        }
        for old_in in unmark {
            self.unmark_replaced(k, old_in);
        }
        if !any {
            self.stats.liveness_answered += 1;
        }
        let reply: Vec<Payload> = if delete_ike || reply_spis.is_empty() {
            Vec::new()
        } else {
            vec![PayloadBody::Delete(Delete {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: reply_spis
                    .iter()
                    .map(|s| s.to_be_bytes().to_vec())
                    .collect(),
            })
            .into()]
        };
        self.respond(k, ExchangeType::INFORMATIONAL, mid, reply);
        if delete_ike {
            let peer = self.sas.get(&k).map(|s| s.remote);
            self.log(format!(
                "IKEv2:(SESSION ID = 0):{peer:?} deleted the IKE SA"
            ));
            self.give_back_children(k);
            self.remove_sa(k);
        }
    }

    /// The answer to our request.
    pub(super) fn handle_info_response(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let Some(f) = s.flight.take() else {
            return;
        };
        if f.kind == Request::DeleteIke {
            self.remove_sa(k);
            return;
        }
        self.send_next_request(now, k);
    }

    /// Deletes one CHILD_SA here and tells the peer; a rekeyed one
    /// (`retire`) keeps its inbound SA a little longer, for the peer's
    /// packets sent on it before our DELETE reached it.
    pub(super) fn delete_child_local(
        &mut self,
        now: Instant,
        k: [u8; 8],
        spi_in: u32,
        retire: bool,
    ) {
        let Some((k, inbound_spi, outbound_spi)) = self.take_child(k, spi_in) else {
            return;
        };
        self.out
            .push_back(removal(retire, inbound_spi, outbound_spi));
        self.request(now, k, Request::DeleteChild(vec![spi_in]));
    }

    /// Deletes one CHILD_SA here only (the peer does not know of it).
    pub(super) fn drop_child(&mut self, k: [u8; 8], spi_in: u32) {
        if let Some((_, inbound_spi, outbound_spi)) = self.take_child(k, spi_in) {
            self.out.push_back(Output::Delete {
                inbound_spi,
                outbound_spi,
            });
        }
    }

    /// Takes CHILD_SA `spi_in` out of its IKE SA (`k`, or the one it moved
    /// to with a rekey): that SA and the pair's SPIs.
    fn take_child(&mut self, k: [u8; 8], spi_in: u32) -> Option<([u8; 8], u32, u32)> {
        let k = self
            .sa_of_child(dataplane::api::Direction::Inbound, spi_in)
            .unwrap_or(k);
        let s = self.sas.get_mut(&k)?;
        let i = s
            .children
            .iter()
            .position(|c| c.info.inbound_spi == spi_in)?;
        let c = s.children.remove(i);
        self.index.child_removed(c.info.inbound_spi);
        Some((k, c.info.inbound_spi, c.info.outbound_spi))
    }

    /// Deletes an IKE SA with its CHILD_SAs: the pairs go at once, the SA
    /// itself when the peer answered (or gave up on).
    pub(super) fn delete_ike_local(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if s.state != super::State::Established {
            self.remove_sa(k);
            return;
        }
        for c in std::mem::take(&mut s.children) {
            self.index.child_removed(c.info.inbound_spi);
            self.out.push_back(Output::Delete {
                inbound_spi: c.info.inbound_spi,
                outbound_spi: c.info.outbound_spi,
            });
        }
        // The delete goes before anything queued.
        s.queue.clear();
        self.request(now, k, Request::DeleteIke);
    }
}

/// The output that removes a pair: retired (its inbound SA kept a while)
/// when a rekey replaced it, deleted otherwise.
fn removal(retire: bool, inbound_spi: u32, outbound_spi: u32) -> Output {
    if retire {
        Output::Retire {
            inbound_spi,
            outbound_spi,
        }
    } else {
        Output::Delete {
            inbound_spi,
            outbound_spi,
        }
    }
}
