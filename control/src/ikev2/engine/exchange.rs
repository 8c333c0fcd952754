//! Sending in an IKE SA: encrypted responses (kept for repeated
//! requests), requests with the next Message ID (one in flight, the rest
//! queued), and one-shot requests.

use std::time::{Duration, Instant};

use crate::ike::wire::ikev2::{Delete, ExchangeType, Payload, PayloadBody, ProtocolId};

use super::{Engine, Flight, Request, RETRANSMIT_BASE};

impl Engine {
    /// Sends (and keeps, for repeats) an encrypted response.
    pub(super) fn respond(
        &mut self,
        k: [u8; 8],
        exchange: ExchangeType,
        mid: u32,
        payloads: Vec<Payload>,
    ) {
        #[cfg(test)]
        let exchange = self.answer_as.unwrap_or(exchange);
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let header = s.header(exchange, true, mid);
        let Some(data) = s.tx.as_ref().and_then(|tx| tx.seal(header, &payloads)) else {
            return;
        };
        s.peer_mid = mid.wrapping_add(1);
        s.last_response = Some((mid, data.clone()));
        let (l, r) = (s.local, s.remote);
        self.send(l, r, data);
    }

    /// Queues a request; it goes out at once when none is in flight.
    pub(super) fn request(&mut self, now: Instant, k: [u8; 8], req: Request) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        s.queue.push_back(req);
        self.send_next_request(now, k);
    }

    pub(super) fn send_next_request(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        if s.flight.is_some() {
            return;
        }
        let Some(req) = s.queue.pop_front() else {
            return;
        };
        let payloads: Vec<Payload> = match &req {
            Request::Liveness => Vec::new(),
            Request::DeleteChild(spis) => {
                vec![PayloadBody::Delete(Delete {
                    protocol: ProtocolId::ESP,
                    spi_size: 4,
                    spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
                })
                .into()]
            }
            Request::DeleteIke => vec![PayloadBody::Delete(Delete {
                protocol: ProtocolId::IKE,
                spi_size: 0,
                spis: Vec::new(),
            })
            .into()],
            Request::CreateChild {
                entry,
                selector,
                old_in,
            } => {
                let (entry, selector, old_in) = (*entry, *selector, *old_in);
                self.send_create_child(now, k, entry, selector, old_in);
                return;
            }
            Request::RekeyIke(group) => {
                let group = *group;
                self.send_rekey_ike(now, k, group);
                return;
            }
            Request::Init | Request::Auth => return,
        };
        self.send_request(now, k, ExchangeType::INFORMATIONAL, payloads, req);
    }

    /// Sends a request that expects no care for its answer (the IKE SA
    /// is being forgotten): no flight, no retransmission.
    pub(super) fn send_oneshot(
        &mut self,
        k: [u8; 8],
        exchange: ExchangeType,
        payloads: Vec<Payload>,
    ) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let header = s.header(exchange, false, s.next_mid);
        let Some(data) = s.tx.as_ref().and_then(|tx| tx.seal(header, &payloads)) else {
            return;
        };
        s.next_mid = s.next_mid.wrapping_add(1);
        let (l, r) = (s.local, s.remote);
        self.send(l, r, data);
    }

    /// Encrypts and sends a request with the next Message ID.
    pub(super) fn send_request(
        &mut self,
        now: Instant,
        k: [u8; 8],
        exchange: ExchangeType,
        payloads: Vec<Payload>,
        kind: Request,
    ) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let mid = s.next_mid;
        let header = s.header(exchange, false, mid);
        let Some(data) = s.tx.as_ref().and_then(|tx| tx.seal(header, &payloads)) else {
            return;
        };
        s.next_mid = mid.wrapping_add(1);
        // A liveness check is repeated every DPD `retry` seconds.
        let wait = match (&kind, self.policy.dpd_of(s.profile)) {
            (Request::Liveness, Some(d)) => Duration::from_secs(u64::from(d.retry.max(1))),
            _ => RETRANSMIT_BASE,
        };
        s.flight = Some(Flight {
            message_id: mid,
            data: data.clone(),
            attempts: 0,
            next_at: now + wait,
            kind,
        });
        let (l, r) = (s.local, s.remote);
        self.send(l, r, data);
    }
}
