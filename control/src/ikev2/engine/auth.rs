//! IKE_AUTH with pre-shared keys (RFC 7296 §1.2, §2.15) and the first
//! CHILD_SA: identities, AUTH with the local key and verification with
//! the remote key, the ESP proposal and traffic selectors, and the
//! installs (the responder's inbound SA before its reply).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use dataplane::api::{Direction, Lifetime, SaKeys, SaParams, UdpEncap};
use dataplane::spd::TrafficSelector;

use crate::ike::crypto::v2::{self as kdf, ChildSaKeys};
use crate::ike::wire::ident::Identity;
use crate::ike::wire::ikev2::{
    AuthMethod, Authentication, ExchangeType, Notify, NotifyType, Payload, PayloadBody,
};
use crate::installer::InstallMode;

use super::super::policy::{show_identity, EspTransform, MapEntry};
use super::super::{proposal, selectors};
use super::{find_notify, Child, Engine, IkeSa, PairInfo, Request, State, CHILD_LIMIT};

/// The ID payload after its generic header, as AUTH signs it.
fn id_body(body: &PayloadBody) -> Vec<u8> {
    let mut v = Vec::new();
    // Encoding an ID payload built from an address cannot fail.
    let _ = body.encode_body(&mut v);
    v
}

#[derive(Default)]
struct AuthPayloads<'a> {
    id: Option<&'a PayloadBody>,
    auth: Option<&'a Authentication>,
    sa: Option<&'a crate::ike::wire::ikev2::SecurityAssociation>,
    tsi: Option<&'a [crate::ike::wire::ikev2::TrafficSelector]>,
    tsr: Option<&'a [crate::ike::wire::ikev2::TrafficSelector]>,
}

fn collect(payloads: &[Payload]) -> AuthPayloads<'_> {
    let mut a = AuthPayloads::default();
    for p in payloads {
        match &p.body {
            // A request may carry the IDr the initiator wants to reach
            // after its IDi (RFC 7296 §2.15; strongSwan sends it): IDi wins,
            // whatever the order. A response carries IDr only.
            b @ PayloadBody::IdInitiator(_) => a.id = Some(b),
            b @ PayloadBody::IdResponder(_) => {
                a.id.get_or_insert(b);
            }
            PayloadBody::Auth(x) => a.auth = Some(x),
            PayloadBody::Sa(x) => a.sa = Some(x),
            PayloadBody::TsInitiator(x) => a.tsi = Some(x),
            PayloadBody::TsResponder(x) => a.tsr = Some(x),
            _ => {}
        }
    }
    a
}

/// The two SAs of a pair: (inbound, outbound), carrying `proxy` (the
/// narrowed traffic selectors).
/// `exchange_initiator`: whether this side started the exchange that
/// made the pair (its "i" keys protect what it sends).
pub(super) fn pair_params(
    e: &MapEntry,
    t: &EspTransform,
    s: &IkeSa,
    (spi_in, spi_out): (u32, u32),
    keys: &ChildSaKeys,
    exchange_initiator: bool,
    proxy: TrafficSelector,
) -> (SaParams, SaParams) {
    let (in_keys, out_keys) = if exchange_initiator {
        ((&keys.encr_r, &keys.integ_r), (&keys.encr_i, &keys.integ_i))
    } else {
        ((&keys.encr_i, &keys.integ_i), (&keys.encr_r, &keys.integ_r))
    };
    let secs = e.lifetime.seconds;
    let kb = e.lifetime.kilobytes;
    let lifetime = Lifetime {
        soft_seconds: Some(crate::ike::lifetime::soft_seconds(secs, s.initiator)),
        hard_seconds: Some(secs),
        soft_kilobytes: Some((kb / 10 * 8).max(1)),
        hard_kilobytes: Some(kb),
    };
    let inbound = SaParams {
        spi: spi_in,
        direction: Direction::Inbound,
        enc: t.enc,
        auth: t.auth,
        keys: SaKeys {
            enc: in_keys.0.to_vec(),
            auth: in_keys.1.to_vec(),
        },
        mode: e.esp_mode(t, s.remote.ip()),
        udp_encap: s.nat.then_some(UdpEncap {
            src_port: s.local.port(),
            dst_port: s.remote.port(),
        }),
        esn: false,
        replay_window: e.replay_window,
        lifetime,
        selectors: vec![proxy],
    };
    let outbound = SaParams {
        spi: spi_out,
        direction: Direction::Outbound,
        keys: SaKeys {
            enc: out_keys.0.to_vec(),
            auth: out_keys.1.to_vec(),
        },
        replay_window: 0,
        ..inbound.clone()
    };
    (inbound, outbound)
}

/// KEYMAT for a pair: the IKE_SA_INIT nonces for the first CHILD_SA,
/// the CREATE_CHILD_SA exchange's (and its g^ir with PFS) for others.
pub(super) fn child_keys(
    s: &IkeSa,
    t: &EspTransform,
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
) -> Option<ChildSaKeys> {
    let keys = s.keys.as_ref()?;
    ChildSaKeys::derive(
        s.prf(),
        &keys.sk_d,
        g_ir,
        ni,
        nr,
        t.enc.key_len(),
        t.auth.key_len(),
    )
    .ok()
}

impl Engine {
    /// Initiator: IKE_AUTH with IDi, AUTH, the CHILD_SA's SA, TSi, TSr.
    pub(super) fn send_auth(&mut self, now: Instant, k: [u8; 8]) {
        let Some(s) = self.sas.get(&k) else {
            return;
        };
        let profile = s.profile.and_then(|p| self.policy.profile(p));
        let Some((profile, peer)) =
            profile.and_then(|p| Some((p, p.peer_by_address(s.remote.ip())?)))
        else {
            self.stats.no_preshared_key += 1;
            self.fail_init(now, k);
            return;
        };
        let (Some(keys), Some(pending)) = (s.keys.as_ref(), s.pending.as_ref()) else {
            return;
        };
        let e = &self.policy.maps[pending.entry];
        let local_id = profile.local_identity(s.local.ip());
        let id = PayloadBody::IdInitiator(local_id.clone());
        let signed = kdf::auth_signed_octets(s.prf(), &s.init_i, &s.nr, &keys.sk_pi, &id_body(&id));
        let auth = kdf::psk_auth(s.prf(), peer.local_key.expose(), &signed);
        let first_contact = !self.sas_with(s.remote.ip()).iter().any(|o| {
            self.sas
                .get(o)
                .is_some_and(|o| o.state == State::Established && o.remote.ip() == s.remote.ip())
        });
        #[cfg(test)]
        let first_contact = first_contact && !self.no_initial_contact;
        let mut payloads: Vec<Payload> = vec![id.into()];
        if first_contact {
            payloads.push(
                PayloadBody::Notify(Notify::new(NotifyType::INITIAL_CONTACT, Vec::new())).into(),
            );
        }
        payloads.push(
            PayloadBody::Auth(Authentication {
                method: AuthMethod::SHARED_KEY_MIC,
                data: auth,
            })
            .into(),
        );
        if e.transforms.first().is_some_and(|t| !t.tunnel) {
            payloads.push(
                PayloadBody::Notify(Notify::new(NotifyType::USE_TRANSPORT_MODE, Vec::new())).into(),
            );
        }
        let (tsi, tsr) = selectors::propose(&pending.selector);
        payloads.push(
            PayloadBody::Sa(proposal::esp_sa_payload(
                &e.transforms,
                pending.spi_in,
                None,
            ))
            .into(),
        );
        payloads.push(PayloadBody::TsInitiator(tsi).into());
        payloads.push(PayloadBody::TsResponder(tsr).into());
        if let Some(s) = self.sas.get_mut(&k) {
            s.state = State::AuthSent;
            s.local_id = Some(local_id);
        }
        self.send_request(now, k, ExchangeType::IKE_AUTH, payloads, Request::Auth);
    }

    /// Responder: checks the initiator's AUTH, answers with ours and the
    /// CHILD_SA (or why there is none).
    pub(super) fn respond_auth(
        &mut self,
        now: Instant,
        k: [u8; 8],
        local: SocketAddr,
        remote: SocketAddr,
        payloads: &[Payload],
    ) {
        let a = collect(payloads);
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        // The initiator moves to port 4500 when it detected a NAT.
        let before = s.remote.ip();
        s.local = local;
        s.remote = remote;
        if before != remote.ip() {
            self.index.sa_removed(before, k);
            self.index.sa_added(remote.ip(), k);
        }
        let (Some(id @ PayloadBody::IdInitiator(idi)), Some(auth)) = (a.id, a.auth) else {
            self.stats.malformed += 1;
            self.auth_failed(k, "no IDi or AUTH");
            return;
        };
        let Some(pi) = self.choose_profile(local.ip(), idi) else {
            self.stats.no_matching_profile += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):Choosing IKE profile: none matches remote identity {} of {remote}",
                show_identity(idi)
            ));
            self.auth_failed(k, "no matching IKEv2 profile");
            return;
        };
        let profile = &self.policy.profiles[pi];
        let by_id = profile
            .keyring
            .iter()
            .any(|p| p.identity.as_ref().is_some_and(|x| x.matches(idi)));
        let log = format!(
            "IKEv2:(SESSION ID = 0):Choosing IKE profile {}; getting preshared key by {}",
            profile.name,
            if by_id {
                format!("identity {}", show_identity(idi))
            } else {
                format!("address {}", remote.ip())
            }
        );
        let Some(peer) = profile.peer_for(Some(idi), remote.ip()) else {
            self.stats.no_preshared_key += 1;
            self.auth_failed(k, "no keyring peer");
            return;
        };
        let local_id = profile.local_identity(local.ip());
        let (local_key, remote_key) = (peer.local_key.clone(), peer.remote_key.clone());
        self.log(log);
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let Some(keys) = s.keys.as_ref() else {
            return;
        };
        let signed = kdf::auth_signed_octets(s.prf(), &s.init_i, &s.nr, &keys.sk_pi, &id_body(id));
        if auth.method != AuthMethod::SHARED_KEY_MIC
            || !kdf::verify_psk_auth(s.prf(), remote_key.expose(), &signed, &auth.data)
        {
            self.auth_failed(k, "AUTH payload does not verify with the remote key");
            return;
        }
        let idr = PayloadBody::IdResponder(local_id.clone());
        let signed =
            kdf::auth_signed_octets(s.prf(), &s.init_r, &s.ni, &keys.sk_pr, &id_body(&idr));
        let our_auth = kdf::psk_auth(s.prf(), local_key.expose(), &signed);
        s.profile = Some(pi);
        s.local_id = Some(local_id);
        s.remote_id = Some(idi.clone());
        if s.state == State::HalfOpen {
            self.half_open.left(s.admitted_from(), s.cookied);
        }
        s.state = State::Established;
        s.last_heard = now;
        self.stats.ike_established += 1;
        self.arm_established(now, k);
        self.log(format!(
            "IKEv2:(SESSION ID = 0):{remote} authenticated: IKE SA READY"
        ));
        if find_notify(payloads, NotifyType::INITIAL_CONTACT).is_some() {
            let old: Vec<[u8; 8]> = self
                .sas_with(remote.ip())
                .into_iter()
                // RFC 7296 §2.4: the peer's *identity* starts over; other
                // peers behind the same address (a NAT) keep their SAs.
                .filter(|o| {
                    *o != k
                        && self.sas.get(o).is_some_and(|x| {
                            x.state == State::Established
                                && x.remote.ip() == remote.ip()
                                && x.remote_id.as_ref() == Some(idi)
                        })
                })
                .collect();
            for o in old {
                self.stats.initial_contact_deletes += 1;
                self.remove_sa(o);
            }
        }
        let mut reply: Vec<Payload> = vec![
            idr.into(),
            PayloadBody::Auth(Authentication {
                method: AuthMethod::SHARED_KEY_MIC,
                data: our_auth,
            })
            .into(),
        ];
        let mut install = None;
        if let (Some(sa), Some(tsi), Some(tsr)) = (a.sa, a.tsi, a.tsr) {
            {
                let chosen = self
                    .choose_child(remote.ip(), Some(pi), sa, tsi, tsr, false)
                    .and_then(|x| {
                        self.below_child_limit(remote.ip(), false, x.0, x.4)
                            .map(|()| x)
                    });
                match chosen {
                    Ok((entry, set, number, spi_out, proxy, rtsi, rtsr)) => {
                        let spi_in = self.alloc_spi();
                        let t = &self.policy.maps[entry].transforms[set];
                        reply.push(
                            PayloadBody::Sa(proposal::esp_choice_payload(t, number, spi_in, None))
                                .into(),
                        );
                        if !t.tunnel {
                            reply.push(
                                PayloadBody::Notify(Notify::new(
                                    NotifyType::USE_TRANSPORT_MODE,
                                    Vec::new(),
                                ))
                                .into(),
                            );
                        }
                        reply.push(PayloadBody::TsInitiator(rtsi).into());
                        reply.push(PayloadBody::TsResponder(rtsr).into());
                        install = Some((entry, set, spi_in, spi_out, proxy));
                    }
                    Err(n) => {
                        self.count_child_refusal(remote.ip(), n);
                        reply.push(PayloadBody::Notify(Notify::new(n, Vec::new())).into())
                    }
                }
            }
        }
        let pair = install.and_then(|(entry, set, spi_in, spi_out, proxy)| {
            let s = self.sas.get(&k)?;
            let e = &self.policy.maps[entry];
            let t = &e.transforms[set];
            let keys = child_keys(s, t, None, &s.ni, &s.nr)?;
            let (inb, outb) = pair_params(e, t, s, (spi_in, spi_out), &keys, false, proxy);
            Some((e.tag, proxy, inb, outb))
        });
        if let Some((_, _, inb, _)) = &pair {
            self.out
                .push_back(super::Output::InstallInbound(Box::new(inb.clone())));
        }
        self.respond(k, ExchangeType::IKE_AUTH, 1, reply);
        if let Some((tag, proxy, inb, outb)) = pair {
            self.finish_install(k, tag, proxy, inb, outb, InstallMode::PREINSTALLED);
        }
    }

    /// `Err(NO_ADDITIONAL_SAS)` when `peer` holds, over all its IKE SAs,
    /// [`CHILD_LIMIT`] CHILD_SAs (rekeyed ones not yet deleted count), or
    /// twice that for a `rekey` or for a replacement: a CHILD_SA for
    /// `proxy` of map entry `entry` when the peer holds exactly one for it
    /// (make-before-break reauthentication re-creates each CHILD_SA on
    /// the new IKE SA before the old one goes).
    pub(super) fn below_child_limit(
        &self,
        peer: IpAddr,
        rekey: bool,
        entry: usize,
        proxy: TrafficSelector,
    ) -> Result<(), NotifyType> {
        let of_peer = |home: &[u8; 8]| self.sas.get(home).is_some_and(|s| s.remote.ip() == peer);
        let held: usize = self
            .index
            .sas_of(peer)
            .iter()
            .filter_map(|k| self.sas.get(k))
            .map(|s| s.children.len())
            .sum();
        let replacement = || {
            let tag = self.policy.maps[entry].tag;
            self.index
                .with_proxy(tag, proxy)
                .iter()
                .filter(|(_, home)| of_peer(home))
                .count()
                == 1
        };
        let ceiling = if rekey || replacement() {
            2 * CHILD_LIMIT
        } else {
            CHILD_LIMIT
        };
        if held >= ceiling {
            Err(NotifyType::NO_ADDITIONAL_SAS)
        } else {
            Ok(())
        }
    }

    /// Counts (and for the limit, logs) a CHILD_SA refused with `n`.
    pub(super) fn count_child_refusal(&mut self, peer: IpAddr, n: NotifyType) {
        if n == NotifyType::TS_UNACCEPTABLE {
            self.stats.ts_unacceptable += 1;
        } else if n == NotifyType::NO_ADDITIONAL_SAS {
            self.stats.child_limit += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):{peer} holds {CHILD_LIMIT} CHILD_SAs: a new one is refused with NO_ADDITIONAL_SAS"
            ));
        } else {
            self.stats.no_proposal_chosen += 1;
        }
    }

    /// The map entry, transform set and selectors for the initiator's
    /// CHILD_SA, or the error notify.
    #[allow(clippy::type_complexity)]
    pub(super) fn choose_child(
        &self,
        peer: IpAddr,
        profile: Option<usize>,
        sa: &crate::ike::wire::ikev2::SecurityAssociation,
        tsi: &[crate::ike::wire::ikev2::TrafficSelector],
        tsr: &[crate::ike::wire::ikev2::TrafficSelector],
        create: bool,
    ) -> Result<
        (
            usize,
            usize,
            u8,
            u32,
            TrafficSelector,
            Vec<crate::ike::wire::ikev2::TrafficSelector>,
            Vec<crate::ike::wire::ikev2::TrafficSelector>,
        ),
        NotifyType,
    > {
        let mut transform_matched = false;
        for (i, e) in self.policy.maps.iter().enumerate() {
            if !(e.peers.is_empty() || e.peers.contains(&peer))
                || profile.is_some_and(|p| self.policy.entry_profile(i) != p)
            {
                continue;
            }
            let Some((set, number, spi_out)) =
                proposal::select_esp(&e.transforms, sa, create.then_some(e.pfs))
            else {
                continue;
            };
            transform_matched = true;
            // A dynamic entry without `match address` takes the traffic
            // the peer proposes, as in IKEv1 (seed 003's hub has none).
            let any;
            let ours = if e.selectors.is_empty() && e.dynamic.is_some() {
                any = selectors::any();
                &any[..]
            } else {
                &e.selectors[..]
            };
            if let Some((proxy, rtsi, rtsr)) = selectors::narrow(ours, tsi, tsr) {
                #[cfg(test)]
                let rtsr = if self.answer_two_tsr {
                    [rtsr.clone(), rtsr].concat()
                } else {
                    rtsr
                };
                return Ok((i, set, number, spi_out, proxy, rtsi, rtsr));
            }
        }
        Err(if transform_matched {
            NotifyType::TS_UNACCEPTABLE
        } else {
            NotifyType::NO_PROPOSAL_CHOSEN
        })
    }

    pub(super) fn finish_install(
        &mut self,
        k: [u8; 8],
        tag: dataplane::spd::PolicyTag,
        proxy: TrafficSelector,
        inbound: SaParams,
        outbound: SaParams,
        mode: InstallMode,
    ) {
        // A pair negotiated on an IKE SA that was rekeyed meanwhile
        // belongs to the new SA.
        let k = self.home(k);
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        let (local, remote) = (s.local.ip(), s.remote);
        let info = PairInfo {
            tag,
            proxy,
            local: s.local.ip(),
            peer: s.remote.ip(),
            inbound_spi: inbound.spi,
            outbound_spi: outbound.spi,
        };
        self.index.child_added(&info, k);
        s.children.push(Child {
            info,
            rekeying: false,
            rekey_retry_at: None,
            replaced: false,
            replaces: None,
        });
        self.stats.child_established += 1;
        self.log(format!(
            "IKEv2:(SESSION ID = 0):CHILD_SA installed: inbound SPI 0x{:08X}, outbound SPI 0x{:08X}",
            inbound.spi, outbound.spi
        ));
        self.out.push_back(super::Output::Install {
            tag,
            proxy,
            inbound: Box::new(inbound),
            outbound: Box::new(outbound),
            inbound_ready: mode.inbound_ready,
            keep_sending_on: mode.keep_sending_on,
        });
        let dynamic = self
            .policy
            .maps
            .iter()
            .any(|e| e.tag == tag && e.dynamic.is_some());
        if dynamic {
            self.replace_stale(k, tag, proxy, local, remote);
        }
    }

    /// A peer of dynamic-map entry `tag` negotiated `proxy` from `remote`
    /// (on IKE SA `k`): the pairs for the same entry and proxy negotiated
    /// from another address or port belong to the same peer before its
    /// address (or its NAT's mapping) changed. They are deleted at once,
    /// so the dataplane never sends to the stale address, and so are the
    /// established IKE SAs without a CHILD_SA at that endpoint once
    /// nothing is held there. The stale peer is not told: it is usually
    /// unreachable. As IKEv1's
    /// dynamic entries do (seed 003); INITIAL_CONTACT alone would not do
    /// it, since it covers only the peer's address of now.
    fn replace_stale(
        &mut self,
        k: [u8; 8],
        tag: dataplane::spd::PolicyTag,
        proxy: TrafficSelector,
        local: IpAddr,
        remote: SocketAddr,
    ) {
        let mut gone: Vec<(SocketAddr, PairInfo)> = Vec::new();
        for (spi_in, o) in self.index.with_proxy(tag, proxy) {
            let Some(s) = self.sas.get_mut(&o) else {
                continue;
            };
            if o == k || s.remote == remote || s.local.ip() != local {
                continue;
            }
            let Some(i) = s.children.iter().position(|c| {
                c.info.inbound_spi == spi_in && c.info.tag == tag && c.info.proxy == proxy
            }) else {
                continue;
            };
            let c = s.children.remove(i);
            gone.push((s.remote, c.info));
        }
        for (_, info) in &gone {
            self.index.child_removed(info.inbound_spi);
        }
        debug_assert!(
            !self.sas.iter().any(|(o, s)| *o != k
                && s.remote != remote
                && s.local.ip() == local
                && s.children
                    .iter()
                    .any(|c| c.info.tag == tag && c.info.proxy == proxy)),
            "the index lost a stale CHILD_SA"
        );
        let endpoints: Vec<SocketAddr> = gone.iter().map(|(at, _)| *at).collect();
        for (from, info) in gone {
            self.stats.stale_pairs_replaced += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):dynamic peer {}:{} replaces {}:{} for the same proxy identities: deleting CHILD_SA pair 0x{:08X}/0x{:08X}",
                remote.ip(),
                remote.port(),
                from.ip(),
                from.port(),
                info.inbound_spi,
                info.outbound_spi
            ));
            self.out.push_back(super::Output::Delete {
                inbound_spi: info.inbound_spi,
                outbound_spi: info.outbound_spi,
            });
        }
        // Once nothing is left with a stale endpoint, its established IKE
        // SAs without a CHILD_SA go (as IKEv1's ISAKMP SAs do), also one
        // emptied by an earlier replacement while other pairs were still
        // held there; other proxies of the peer there keep theirs, and IKE
        // SAs still negotiating (or creating a CHILD_SA) are not touched.
        let at_endpoint = |at: &SocketAddr| {
            self.sas_with(at.ip())
                .into_iter()
                .filter_map(|o| Some((o, self.sas.get(&o)?)))
                .filter(|(_, s)| s.remote == *at && s.local.ip() == local)
                .collect::<Vec<_>>()
        };
        let mut endpoints = endpoints;
        endpoints.sort_unstable();
        endpoints.dedup();
        let mut stale: Vec<[u8; 8]> = Vec::new();
        for at in &endpoints {
            let there = at_endpoint(at);
            if there.iter().any(|(_, s)| !s.children.is_empty()) {
                continue;
            }
            stale.extend(
                there
                    .iter()
                    .filter(|(_, s)| {
                        s.state == State::Established && s.pending.is_none() && s.creating.is_none()
                    })
                    .map(|(o, _)| *o),
            );
        }
        for o in stale {
            self.remove_sa(o);
        }
    }

    /// Responder: the profile for a peer that sent `idi` to `local`: the
    /// first, among the profiles of the entries on `local`, whose `match
    /// identity remote` matches (IOS "Choosing IKE profile").
    fn choose_profile(&self, local: IpAddr, idi: &Identity) -> Option<usize> {
        self.policy
            .profiles_on(local)
            .into_iter()
            .find(|&i| self.policy.profiles[i].matches_remote(idi))
    }

    /// Responder: AUTHENTICATION_FAILED sent, the IKE SA forgotten.
    fn auth_failed(&mut self, k: [u8; 8], why: &str) {
        self.stats.auth_failed += 1;
        let peer = self.sas.get(&k).map(|s| s.remote);
        self.log(format!(
            "IKEv2:(SESSION ID = 0):Authentication of {peer:?} failed: {why}"
        ));
        let n = Notify::new(NotifyType::AUTHENTICATION_FAILED, Vec::new());
        self.respond(
            k,
            ExchangeType::IKE_AUTH,
            1,
            vec![PayloadBody::Notify(n).into()],
        );
        self.remove_sa(k);
    }

    /// Initiator: the responder's IKE_AUTH answer.
    pub(super) fn handle_auth_response(&mut self, now: Instant, k: [u8; 8], payloads: &[Payload]) {
        let Some(s) = self.sas.get_mut(&k) else {
            return;
        };
        s.flight = None;
        let remote = s.remote;
        if find_notify(payloads, NotifyType::AUTHENTICATION_FAILED).is_some() {
            self.stats.auth_failed += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):{remote} answered AUTHENTICATION_FAILED"
            ));
            self.fail_init(now, k);
            return;
        }
        let a = collect(payloads);
        let (Some(id @ PayloadBody::IdResponder(idr)), Some(auth)) = (a.id, a.auth) else {
            self.stats.malformed += 1;
            self.fail_init(now, k);
            return;
        };
        let Some(profile) = s.profile.and_then(|p| self.policy.profile(p)) else {
            self.fail_init(now, k);
            return;
        };
        if !profile.matches_remote(idr) {
            // IOS checks the responder's identity against the profile too.
            self.stats.no_matching_profile += 1;
            self.stats.auth_failed += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):Identity {} of {remote} does not match IKE profile {}",
                show_identity(idr),
                profile.name
            ));
            self.fail_init(now, k);
            return;
        }
        let Some(peer) = profile.peer_by_address(remote.ip()) else {
            self.fail_init(now, k);
            return;
        };
        let Some(keys) = s.keys.as_ref() else {
            return;
        };
        let signed = kdf::auth_signed_octets(s.prf(), &s.init_r, &s.ni, &keys.sk_pr, &id_body(id));
        if auth.method != AuthMethod::SHARED_KEY_MIC
            || !kdf::verify_psk_auth(s.prf(), peer.remote_key.expose(), &signed, &auth.data)
        {
            self.stats.auth_failed += 1;
            self.log(format!(
                "IKEv2:(SESSION ID = 0):AUTH of {remote} does not verify with the remote key"
            ));
            // The responder thinks the IKE SA is up: tell it (RFC 7296
            // §2.21.2), once, inside the IKE SA, then forget it.
            let n = Notify::new(NotifyType::AUTHENTICATION_FAILED, Vec::new());
            self.send_oneshot(
                k,
                ExchangeType::INFORMATIONAL,
                vec![PayloadBody::Notify(n).into()],
            );
            self.fail_init(now, k);
            return;
        }
        s.remote_id = Some(idr.clone());
        s.state = State::Established;
        s.last_heard = now;
        let pending = s.pending.take();
        self.stats.ike_established += 1;
        self.arm_established(now, k);
        self.log(format!(
            "IKEv2:(SESSION ID = 0):{remote} authenticated: IKE SA READY"
        ));
        let Some(pending) = pending else {
            return;
        };
        let Some(s) = self.sas.get(&k) else {
            return;
        };
        let e = &self.policy.maps[pending.entry];
        // The peer answered with a CHILD_SA: it has installed the pair.
        let peer_installed = a.sa.is_some() && a.tsi.is_some() && a.tsr.is_some();
        let accepted = match (a.sa, a.tsi, a.tsr) {
            (Some(sa), Some(tsi), Some(tsr)) => proposal::accept_esp(&e.transforms, sa, None)
                .and_then(|(set, spi_out)| {
                    selectors::accept(&pending.selector, tsi, tsr).map(|p| (set, spi_out, p))
                })
                .ok_or(NotifyType::NO_PROPOSAL_CHOSEN),
            _ => Err(
                if find_notify(payloads, NotifyType::TS_UNACCEPTABLE).is_some() {
                    NotifyType::TS_UNACCEPTABLE
                } else {
                    NotifyType::NO_PROPOSAL_CHOSEN
                },
            ),
        };
        match accepted {
            Ok((set, spi_out, proxy)) => {
                let t = &e.transforms[set];
                let Some(keys) = child_keys(s, t, None, &s.ni, &s.nr) else {
                    return;
                };
                let (inb, outb) =
                    pair_params(e, t, s, (pending.spi_in, spi_out), &keys, true, proxy);
                let tag = e.tag;
                self.finish_install(k, tag, proxy, inb, outb, InstallMode::default());
            }
            Err(n) => {
                if n == NotifyType::TS_UNACCEPTABLE {
                    self.stats.ts_unacceptable += 1;
                } else {
                    self.stats.no_proposal_chosen += 1;
                }
                let tag = e.tag;
                self.hold_down.push((tag, now + super::HOLD_DOWN));
                self.log(format!(
                    "IKEv2:(SESSION ID = 0):No CHILD_SA with {remote}: {n:?}"
                ));
                if peer_installed {
                    // Not ours: the peer must not keep sending on it.
                    self.request(now, k, Request::DeleteChild(vec![pending.spi_in]));
                }
            }
        }
        self.send_next_request(now, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn an_ike_auth_request_with_idr_after_idi_is_read_by_its_idi() {
        let idi = PayloadBody::IdInitiator(Identity::Ipv4(Ipv4Addr::new(198, 18, 1, 1)));
        let idr = PayloadBody::IdResponder(Identity::Ipv4(Ipv4Addr::new(198, 18, 0, 1)));
        // strongSwan's order: IDi N(INITIAL_CONTACT) IDr AUTH ...
        let payloads: Vec<Payload> = vec![idi.clone().into(), idr.clone().into()];
        assert_eq!(collect(&payloads).id, Some(&idi));
        let payloads: Vec<Payload> = vec![idr.clone().into(), idi.clone().into()];
        assert_eq!(collect(&payloads).id, Some(&idi));
        // A response: IDr alone.
        let payloads: Vec<Payload> = vec![idr.clone().into()];
        assert_eq!(collect(&payloads).id, Some(&idr));
    }
}
