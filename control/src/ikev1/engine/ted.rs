//! Tunnel Endpoint Discovery (seed 004): a `discover` entry has no peer;
//! the first packet of a flow its ACL protects makes the engine send a
//! TED probe towards the flow's destination host, the gateway in front of
//! that host intercepts it (its dataplane hands it to
//! [`Engine::handle_ted_probe`]) and answers with its own address, and
//! the prober then runs Main Mode (or Aggressive Mode) and Quick Mode with
//! it, authenticated by the wildcard key. The probe format is Espada's
//! own ([`crate::ike::wire::ikev1::ted`]): Espada gateways discover each
//! other, IOS gateways are not claimed to.
//!
//! ```text
//! prober P                        (host H behind responder R)
//!   acquire(flow X→H) ── probe P:500 → H:500 ──▶ R's dataplane intercepts
//!                     ◀── response R:500 → P:500 ── handle_ted_probe
//!   handle_datagram(response) → Main Mode with R, Quick Mode for the
//!   probed proxy narrowed to what R's ACL mirrors
//! ```
//!
//! One probe per entry and destination host is in flight at a time (more
//! acquires are counted and dropped); it is sent again after 1 and 2
//! seconds, and given up 4 seconds after the third send, after which the
//! destination is held down for [`TED_HOLD_DOWN`]. A response is accepted
//! only from the address it names, with the probe's id and nonce, and
//! with proxies that mirror the probed ones; anything else is counted and
//! dropped. Answers to other gateways' probes are capped at
//! [`TED_ANSWERS_PER_SECOND`], and at [`TED_ANSWERS_PER_SOURCE`] for one
//! sender: a probe is unauthenticated and names the address the answer
//! goes to.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use dataplane::spd::{FlowKey, PolicyTag, TrafficSelector};
use subtle::ConstantTimeEq;

use crate::ike::wire::ikev1::ted::TED_NONCE_LEN;
use crate::ike::wire::ikev1::TedMessage;

use super::*;

/// Sends of one probe: the first, then again after 1 s and 2 s; the last
/// waits 4 s for its answer.
const TED_SENDS: u32 = 3;
/// After a probe got no answer, acquires for its destination are dropped
/// for this long.
pub(super) const TED_HOLD_DOWN: Duration = Duration::from_secs(10);
/// Probes in flight at most (each entry and destination host has one).
const TED_PROBE_LIMIT: usize = 1024;
/// Probes answered per second at most: an answer goes to the address the
/// (unauthenticated) probe names, so a forger could aim answers at a third
/// party; they are no larger than the probe, and this caps their rate.
const TED_ANSWERS_PER_SECOND: u32 = 64;
/// Probes answered per second for one sender at most, so that one source
/// (a forger, or a gateway probing a whole LAN host by host) cannot use
/// up [`TED_ANSWERS_PER_SECOND`] and starve the other gateways. An
/// honest prober sends one probe per destination host and stops at the
/// first answer, so this is ample.
const TED_ANSWERS_PER_SOURCE: u32 = 16;

/// The answers of the current one-second window: in all and per sender
/// (at most [`TED_ANSWERS_PER_SECOND`] senders, since only answers count).
pub(super) struct AnswerWindow {
    start: Instant,
    total: u32,
    per_source: Vec<(IpAddr, u32)>,
}

impl AnswerWindow {
    /// Whether one more answer to `source` fits the window starting no
    /// earlier than one second before `now`; counts it if so.
    fn admit(window: &mut Option<AnswerWindow>, now: Instant, source: IpAddr) -> Admit {
        let w = match window {
            Some(w) if now.saturating_duration_since(w.start) < Duration::from_secs(1) => w,
            _ => window.insert(AnswerWindow {
                start: now,
                total: 0,
                per_source: Vec::new(),
            }),
        };
        if w.total >= TED_ANSWERS_PER_SECOND {
            return Admit::OverTotal;
        }
        let i = match w.per_source.iter().position(|s| s.0 == source) {
            Some(i) => i,
            None => {
                w.per_source.push((source, 0));
                w.per_source.len() - 1
            }
        };
        let count = &mut w.per_source[i].1;
        if *count >= TED_ANSWERS_PER_SOURCE {
            // Counting on past the limit tells the first drop of the
            // window (logged) from the rest (counted only).
            let first = *count == TED_ANSWERS_PER_SOURCE;
            *count = count.saturating_add(1);
            return Admit::OverSource { first };
        }
        w.per_source[i].1 += 1;
        w.total += 1;
        Admit::Yes
    }
}

enum Admit {
    Yes,
    OverTotal,
    /// `first`: the source's first probe over its share this window.
    OverSource {
        first: bool,
    },
}

/// A probe sent, waiting for its answer.
pub(super) struct Probe {
    entry: usize,
    tag: PolicyTag,
    /// The crypto ACL line that covered the flow (as IOS, the probe
    /// carries the ACL's proxies, not the single flow's).
    proxy: TrafficSelector,
    /// The flow's destination host the probe went to.
    dst: IpAddr,
    local: IpAddr,
    id: [u8; 8],
    nonce: Vec<u8>,
    data: Vec<u8>,
    sends: u32,
    pub(super) next_at: Instant,
}

fn mirror(t: &TrafficSelector) -> TrafficSelector {
    TrafficSelector {
        src: t.dst,
        dst: t.src,
        proto: t.proto,
        src_ports: t.dst_ports,
        dst_ports: t.src_ports,
    }
}

fn fmt_prefix(p: &IpPrefix) -> String {
    format!("{}/{}", p.addr(), p.prefix_len())
}

/// The selector (sender's local → sender's remote) a TED message carries.
fn carried(m: &TedMessage) -> Option<TrafficSelector> {
    let l = proxy::side(&m.local_proxy)?;
    let r = proxy::side(&m.remote_proxy)?;
    proxy::selector(&l, &r)
}

impl Engine {
    /// An acquire for a `discover` entry: probe for the peer in front of
    /// `flow.dst`, unless a pair, a negotiation or a probe already covers
    /// it.
    pub(super) fn ted_acquire(
        &mut self,
        now: Instant,
        entry: usize,
        proxy: TrafficSelector,
        flow: FlowKey,
    ) {
        let e = &self.policy.maps[entry];
        let (tag, local) = (e.tag, e.local);
        if flow.dst.is_ipv4() != local.is_ipv4() {
            return;
        }
        let busy =
            self.pairs
                .iter()
                .any(|p| p.info.tag == tag && !p.superseded && p.info.proxy.matches(&flow))
                || self.qm.iter().any(|q| {
                    q.entry == entry && q.proxy.matches(&flow) && q.state != QmState::Done
                })
                || self
                    .pending
                    .iter()
                    .any(|p| p.entry == entry && p.proxy.matches(&flow));
        if busy {
            return;
        }
        // A negotiation with a discovered peer failed for (a part of) the
        // line: the ordinary hold-down, on the narrowed proxy.
        if self
            .hold_down
            .iter()
            .any(|h| h.0 == tag && h.1.matches(&flow))
        {
            return;
        }
        self.ted_hold.retain(|h| h.2 > now);
        if self.ted_hold.iter().any(|h| h.0 == tag && h.1 == flow.dst) {
            self.stats.ted_held_down += 1;
            return;
        }
        if self
            .probes
            .iter()
            .any(|p| p.entry == entry && p.dst == flow.dst)
        {
            self.stats.ted_rate_limited += 1;
            return;
        }
        if self.probes.len() >= TED_PROBE_LIMIT {
            self.stats.ted_rate_limited += 1;
            self.log(format!(
                "ISAKMP: {TED_PROBE_LIMIT} peer discovery probes in flight: not probing for {}",
                flow.dst
            ));
            return;
        }
        let id = loop {
            let id: [u8; 8] = random();
            if id != [0; 8] && !self.probes.iter().any(|p| p.id == id) {
                break id;
            }
        };
        let nonce = random_vec(TED_NONCE_LEN);
        let m = TedMessage {
            probe_id: id,
            responder_cookie: [0; 8],
            nonce: nonce.clone(),
            gateway: local,
            local_proxy: proxy::identification(&proxy, true),
            remote_proxy: proxy::identification(&proxy, false),
        };
        let Ok(data) = m.encode() else { return };
        self.log(format!(
            "IPSEC(tunnel discover request): ,\n  (key eng. msg.) INBOUND local= {}, remote= {},\n    local_proxy= {},\n    remote_proxy= {}/{}/0/0 (type=1),\n    dest={}",
            flow.src,
            flow.dst,
            fmt_sel(&proxy),
            local,
            if local.is_ipv4() { 32 } else { 128 },
            local
        ));
        self.log(format!(
            "ISAKMP: GOT A PEER DISCOVERY MESSAGE FROM THE SA MANAGER!!!\nsrc = {} to {}\nproxy source is {} and my address (not used now) is {}",
            flow.src,
            flow.dst,
            fmt_prefix(&proxy.src),
            local
        ));
        self.log("ISAKMP: beginning peer discovery exchange".into());
        self.probes.push(Probe {
            entry,
            tag,
            proxy,
            dst: flow.dst,
            local,
            id,
            nonce,
            data: data.clone(),
            sends: 1,
            next_at: now + Duration::from_secs(1),
        });
        self.stats.ted_probes_sent += 1;
        self.send_probe(local, flow.dst, data, false);
    }

    fn send_probe(&mut self, local: IpAddr, dst: IpAddr, data: Vec<u8>, again: bool) {
        self.stats.sent += 1;
        self.log(format!(
            "ISAKMP: {}sending packet to {dst} my_port {} peer_port {} (I) PEER_DISCOVERY (TED probe)",
            if again { "re" } else { "" },
            self.ike_port,
            self.ike_port
        ));
        self.out.push_back(Output::Send {
            local: SocketAddr::new(local, self.ike_port),
            remote: SocketAddr::new(dst, self.ike_port),
            data,
        });
    }

    /// Probe retransmissions and give-ups due at `now`.
    pub(super) fn ted_timers(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.probes.len() {
            if self.probes[i].next_at > now {
                i += 1;
                continue;
            }
            if self.probes[i].sends >= TED_SENDS {
                let p = self.probes.remove(i);
                self.stats.ted_probe_timeouts += 1;
                self.ted_hold.push((p.tag, p.dst, now + TED_HOLD_DOWN));
                self.log(format!(
                    "ISAKMP: peer discovery probe for {} got no answer after {} sends: giving up, holding {} down for {} s",
                    p.dst,
                    p.sends,
                    p.dst,
                    TED_HOLD_DOWN.as_secs()
                ));
                continue;
            }
            let p = &mut self.probes[i];
            p.next_at = now + Duration::from_secs(1 << p.sends);
            p.sends += 1;
            let (local, dst, data) = (p.local, p.dst, p.data.clone());
            self.stats.retransmitted += 1;
            self.send_probe(local, dst, data, true);
            i += 1;
        }
    }

    /// A TED probe the dataplane intercepted in transit: a UDP 500
    /// datagram from `from` to `original_dst`, an address that is not
    /// ours (a host behind us), received on the interface whose address
    /// is `local_outside`. If a `discover` entry on `local_outside`
    /// protects `original_dst` and mirrors the probe's proxies, the
    /// prober is answered (from `local_outside`, to the gateway address
    /// the probe names) with our address and the proxies we protect;
    /// otherwise the probe is dropped and counted.
    pub fn handle_ted_probe(
        &mut self,
        now: Instant,
        local_outside: IpAddr,
        from: SocketAddr,
        original_dst: IpAddr,
        data: &[u8],
    ) {
        self.stats.received += 1;
        self.ted_probe(now, local_outside, from, original_dst, data);
    }

    fn ted_probe(
        &mut self,
        now: Instant,
        local_outside: IpAddr,
        from: SocketAddr,
        original_dst: IpAddr,
        data: &[u8],
    ) {
        let m = match TedMessage::decode(data) {
            Ok(m) => m,
            Err(e) => {
                self.stats.malformed += 1;
                self.log(format!(
                    "%CRYPTO-4-IKMP_BAD_MESSAGE: peer discovery probe from {from} to {original_dst} is malformed: {e}"
                ));
                return;
            }
        };
        self.log(format!(
            "ISAKMP (0:0): received packet from {} dport {} sport {} (N) NEW SA (peer discovery probe for {original_dst})",
            from.ip(),
            self.ike_port,
            from.port()
        ));
        if !m.is_probe() {
            self.stats.unexpected_message += 1;
            self.log(format!(
                "ISAKMP: dropping a peer discovery response from {from} to {original_dst} seen in transit"
            ));
            return;
        }
        let Some(theirs) = carried(&m) else {
            self.stats.invalid_id += 1;
            self.log(format!(
                "ISAKMP: peer discovery probe from {from}: its proxies are not address prefixes of one family"
            ));
            return;
        };
        let want = mirror(&theirs);
        let found = self.policy.maps.iter().find_map(|e| {
            if !e.discover || e.local != local_outside {
                return None;
            }
            e.selectors.iter().find_map(|s| {
                crate::config::compile::intersect(&want, s)
                    .filter(|x| x.src.contains(&original_dst))
            })
        });
        let Some(ours) = found else {
            self.stats.ted_probes_refused += 1;
            self.log(format!(
                "ISAKMP: peer discovery probe from {} for {original_dst} ({} to {}): no discover entry on {local_outside} protects it: dropped",
                m.gateway,
                fmt_prefix(&theirs.src),
                fmt_prefix(&theirs.dst)
            ));
            return;
        };
        if m.gateway.is_ipv4() != local_outside.is_ipv4() {
            self.stats.ted_probes_refused += 1;
            return;
        }
        // The answer goes to the gateway the probe names: only when that
        // is who sent it (TED works without NAT only), so a forged probe
        // cannot aim our answers at a third party.
        if m.gateway != from.ip() {
            self.stats.ted_probes_refused += 1;
            self.log(format!(
                "ISAKMP: peer discovery probe from {from} names gateway {}: not its sender, dropped",
                m.gateway
            ));
            return;
        }
        if self.policy.key_for(m.gateway).is_none() {
            self.stats.no_preshared_key += 1;
            self.log(format!(
                "ISAKMP: peer discovery probe from {}: no pre-shared key for it: not answering",
                m.gateway
            ));
            return;
        }
        match AnswerWindow::admit(&mut self.ted_answers, now, m.gateway) {
            Admit::Yes => {}
            Admit::OverTotal => {
                self.stats.ted_answers_rate_limited += 1;
                return;
            }
            Admit::OverSource { first } => {
                self.stats.ted_answers_source_limited += 1;
                // Once a window per source: a prober must not fill the log.
                if first {
                    self.log(format!(
                        "ISAKMP: peer discovery probe from {}: over {TED_ANSWERS_PER_SOURCE} answers a second to it: dropped (more this second are counted only)",
                        m.gateway
                    ));
                }
                return;
            }
        }
        let cookie = loop {
            let c: [u8; 8] = random();
            if c != [0; 8] {
                break c;
            }
        };
        let r = TedMessage {
            probe_id: m.probe_id,
            responder_cookie: cookie,
            nonce: m.nonce.clone(),
            gateway: local_outside,
            local_proxy: proxy::identification(&ours, true),
            remote_proxy: proxy::identification(&ours, false),
        };
        let Ok(out) = r.encode() else { return };
        self.log(format!(
            "ISAKMP: responding to peer discovery probe!\npeer's address is {}\nsrc (him) {} to dst (me) {}\nISAKMP: peer can handle TED V3: changing source to {} and dest to {}",
            m.gateway,
            fmt_prefix(&theirs.src),
            fmt_prefix(&theirs.dst),
            m.gateway,
            local_outside
        ));
        self.log(format!(
            "ISAKMP: sending packet to {} my_port {} peer_port {} (R) PEER_DISCOVERY",
            m.gateway, self.ike_port, self.ike_port
        ));
        self.stats.ted_probes_answered += 1;
        self.stats.sent += 1;
        self.out.push_back(Output::Send {
            local: SocketAddr::new(local_outside, self.ike_port),
            remote: SocketAddr::new(m.gateway, self.ike_port),
            data: out,
        });
    }

    /// A TED message that came to one of our own addresses
    /// ([`Engine::handle_datagram`]): the answer to one of our probes, or
    /// a probe sent straight at us (as if intercepted for `local`).
    pub(super) fn ted_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Result<(), Drop> {
        let m = TedMessage::decode(data).map_err(|e| Drop::Malformed(e.to_string()))?;
        if m.is_probe() {
            self.ted_probe(now, local.ip(), remote, local.ip(), data);
            return Ok(());
        }
        self.log(format!(
            "ISAKMP: received packet from {} dport {} sport {} (I) PEER_DISCOVERY",
            remote.ip(),
            local.port(),
            remote.port()
        ));
        let Some(i) = self.probes.iter().position(|p| {
            p.id == m.probe_id
                && bool::from(p.nonce.ct_eq(&m.nonce))
                && p.local == local.ip()
                && m.gateway == remote.ip()
        }) else {
            self.stats.ted_responses_forged += 1;
            self.log(format!(
                "ISAKMP: peer discovery response from {remote} (naming {}) matches no probe of ours: ignored",
                m.gateway
            ));
            return Ok(());
        };
        let p = &self.probes[i];
        let negotiated = carried(&m).and_then(|theirs| {
            crate::config::compile::intersect(&p.proxy, &mirror(&theirs))
                .filter(|x| x.dst.contains(&p.dst))
        });
        let Some(negotiated) = negotiated else {
            self.stats.ted_proxy_mismatch += 1;
            self.log(format!(
                "ISAKMP: peer discovery response from {remote}: its proxies do not mirror ours ({}): ignored",
                fmt_sel(&p.proxy)
            ));
            return Ok(());
        };
        let p = self.probes.remove(i);
        if self.policy.maps.get(p.entry).map(|e| e.tag) != Some(p.tag) {
            // The configuration changed under the probe.
            return Ok(());
        }
        let peer = m.gateway;
        self.stats.ted_peers_discovered += 1;
        self.log(format!(
            "ISAKMP: processing vendor id payload\nISAKMP: speaking to another Espada box!\nISAKMP: received response to my peer discovery probe!\nISAKMP: ted negotiated proxies: 0 {}:{}, {}:{}",
            fmt_prefix(&negotiated.src),
            negotiated.src_ports.lo,
            fmt_prefix(&negotiated.dst),
            negotiated.dst_ports.lo
        ));
        self.log(format!(
            "ISAKMP: initiating IKE to {peer} in response to probe."
        ));
        self.negotiate(now, p.entry, negotiated, p.local, peer);
        Ok(())
    }
}
