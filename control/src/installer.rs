//! Carries out the IKE engines' SA outputs against the dataplane: pairs
//! installed and bound to their crypto-map rules, deleted pairs unbound
//! and removed, peers' NAT ports followed, everything again after a
//! dataplane restart. The rules that keep a hub of many peers correct
//! and linear in time:
//! - a pair goes in whole or not at all: inbound first (so the peer's
//!   first packet never arrives before its SA), then outbound; a refused
//!   outbound SA takes its inbound one out again;
//! - no SPD rule ever names an SA the dataplane lacks: a deleted pair's
//!   SAs go only after the SPD that no longer names them is loaded;
//! - a burst of installs or deletes (a hub's peers coming up or all gone
//!   at once) shares one SPD load, at [`Installer::settle`];
//! - an outbound SPI is the peer's choice and may be another peer's SA's:
//!   such a pair is refused (the caller's engine deletes it and the peer
//!   negotiates again), and a delete removes an outbound SA only with the
//!   installed pair of both its SPIs;
//! - a rekey loses no packet: a pair the rekey replaced keeps its inbound
//!   SA [`RETIRE_GRACE`] after the pair goes ([`Installer::retire`]),
//!   and a responder's new pair takes the flows only when the pair it
//!   replaces goes, or after [`STANDBY_LIMIT`] ([`InstallMode`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use dataplane::api::{Direction, ErrorCode, Request, SaParams};
use dataplane::spd::{PolicyTag, SpdRule, TrafficSelector};

use crate::dpclient::{DataplaneClient, DpError};
use crate::installed::{Installed, InstalledPairs};
use crate::spdbind::SpdBinder;

/// How long a rekeyed pair's inbound SA outlives the pair. The peer
/// sends on the old pair until our DELETE reaches it (or, when it
/// rekeyed, until it has installed the new one); packets it sent before
/// are still on their way. strongSwan's `delete_rekeyed_delay` is 5 s too.
pub const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// Retired inbound SAs kept at most, over all peers: a peer that rekeys
/// as fast as it can (each rekey retiring a pair, uncounted by the
/// engines' per-peer limits once deleted) could otherwise fill the
/// dataplane's SA table within one grace. Beyond it the oldest goes at
/// once; it only loses packets that were already late.
pub const RETIRING_LIMIT: usize = 4096;

/// How long a responder's rekeyed pair waits at most for the pair it
/// replaces to go before taking its flows anyway. The initiator has the
/// new pair once our answer reached it; a lost DELETE must not keep the
/// old pair in use until it expires.
pub const STANDBY_LIMIT: Duration = Duration::from_secs(5);

/// How a negotiated pair goes in ([`Installer::install`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallMode {
    /// Its inbound SA went in already ([`Installer::install_inbound`]).
    pub inbound_ready: bool,
    /// The outbound SA whose flows stay on it until its pair goes, or
    /// [`STANDBY_LIMIT`]: the peer cannot decrypt the new pair yet. If
    /// it carries none, the SA that carries the entry's flows inside the
    /// proxy (if any) keeps them as long.
    pub keep_sending_on: Option<u32>,
}

impl InstallMode {
    /// A responder's pair whose inbound SA went in before its answer.
    pub const PREINSTALLED: InstallMode = InstallMode {
        inbound_ready: true,
        keep_sending_on: None,
    };
}

/// A pair installed, not yet bound: the pair it replaces carries its
/// flows meanwhile.
#[derive(Debug, Clone, Copy)]
struct Standby {
    tag: PolicyTag,
    proxy: TrafficSelector,
    outbound_spi: u32,
    replaces: u32,
    until: Instant,
}

/// The negotiated pairs in the dataplane and the SPD that names them.
pub struct Installer {
    spd: SpdBinder,
    pairs: InstalledPairs,
    /// The SPD changed since the last load.
    spd_changed: bool,
    /// SAs of deleted pairs still in the dataplane, until the next
    /// [`Installer::settle`] (a set: a new pair may reuse one's SPI).
    doomed: HashSet<(Direction, u32)>,
    /// Inbound SAs of retired pairs by when they go ([`RETIRE_GRACE`]),
    /// in that order (the grace is a constant); an entry counts only while
    /// `retiring_spis` has its SPI with the same time (a new pair may
    /// reuse the SPI meanwhile).
    retiring: VecDeque<(Instant, u32)>,
    retiring_spis: HashMap<u32, Instant>,
    /// Pairs waiting to take the flows of the pair they replace, by
    /// their limit. A handful: only a peer's rekeys whose DELETE has not
    /// come yet (milliseconds, normally).
    standby: VecDeque<Standby>,
    /// Inbound SAs installed ahead of their pair, until the pair is
    /// installed, refused or deleted.
    ahead: HashSet<u32>,
    /// Inbound SPIs of the pairs the dataplane refused, until the engine
    /// deletes them: their deletes must not reach the dataplane, where
    /// the SPIs may name another SA.
    refused: HashSet<u32>,
    /// Dataplane requests that failed, for `show crypto isakmp stats`.
    pub failures: u64,
    /// Retired inbound SAs removed before their grace was up
    /// ([`RETIRING_LIMIT`]), for `show crypto isakmp stats`.
    pub retired_early: u64,
}

impl Installer {
    pub fn new(spd: SpdBinder) -> Installer {
        Installer {
            spd,
            pairs: InstalledPairs::default(),
            spd_changed: false,
            doomed: HashSet::new(),
            retiring: VecDeque::new(),
            retiring_spis: HashMap::new(),
            standby: VecDeque::new(),
            ahead: HashSet::new(),
            refused: HashSet::new(),
            failures: 0,
            retired_early: 0,
        }
    }

    /// The installed pairs, in install order.
    pub fn pairs(&self) -> &InstalledPairs {
        &self.pairs
    }

    /// Whether the dataplane should have an inbound SA of this SPI: a
    /// pair's, one installed ahead of its pair, or a rekeyed pair's in its
    /// grace. ESP for any other SPI is not worth a dataplane request.
    pub fn has_inbound(&self, spi: u32) -> bool {
        self.pairs.has_inbound(spi)
            || self.ahead.contains(&spi)
            || self.retiring_spis.contains_key(&spi)
    }

    /// New compiled rules (the config recompiled); the bindings stay and
    /// the SPD is loaded at the next [`Installer::settle`].
    pub fn set_base(&mut self, base: Vec<SpdRule>) {
        self.spd.set_base(base);
        self.spd_changed = true;
    }

    /// An inbound SA installed ahead of its pair (an IKEv1 responder, at
    /// Quick Mode's second message).
    pub fn install_inbound(&mut self, dp: &mut DataplaneClient, sa: &SaParams) {
        if self.reuses_doomed(Direction::Inbound, sa.spi) {
            self.apply(dp);
        }
        match dp.expect_ack("AddSa", Request::AddSa(Box::new(sa.clone()))) {
            Ok(()) => {
                self.refused.remove(&sa.spi);
                self.ahead.insert(sa.spi);
            }
            Err(e) => {
                self.failures += 1;
                eprintln!("espada: installing inbound SA {:#010x}: {e}", sa.spi);
                // Its pair is refused when the engine completes it.
                self.refused.insert(sa.spi);
            }
        }
    }

    /// Installs a negotiated pair and binds it to the entry's rules
    /// inside `proxy` (loaded at the next [`Installer::settle`]). `Err`
    /// says why it was refused: nothing of it stays in the dataplane, and
    /// the caller's engine must delete it ([`crate::ikev1::Engine::pair_refused`]).
    pub fn install(
        &mut self,
        dp: &mut DataplaneClient,
        tag: PolicyTag,
        proxy: TrafficSelector,
        inbound: &SaParams,
        outbound: &SaParams,
        mode: InstallMode,
    ) -> Result<(), String> {
        let inbound_ready = mode.inbound_ready;
        self.ahead.remove(&inbound.spi);
        // The SAs of a deleted pair whose SPI this one reuses go first
        // (the others wait, so a burst of installs shares one SPD load).
        if (!inbound_ready && self.reuses_doomed(Direction::Inbound, inbound.spi))
            || self.reuses_doomed(Direction::Outbound, outbound.spi)
        {
            self.apply(dp);
        }
        let refused = if inbound_ready && self.refused.contains(&inbound.spi) {
            Some("its inbound SA was refused".to_string())
        } else if self.pairs.has_outbound(outbound.spi) {
            // Another pair's, whose delete has not come yet (its SA may
            // have expired in the dataplane already).
            if inbound_ready {
                delete_sa(dp, Direction::Inbound, inbound.spi);
            }
            Some(format!(
                "outbound SPI {:#010x} is another pair's",
                outbound.spi
            ))
        } else {
            add_pair(dp, inbound, outbound, inbound_ready)
                .err()
                .map(|e| e.to_string())
        };
        if let Some(why) = refused {
            self.failures += 1;
            eprintln!(
                "espada: installing SA pair {:#010x}/{:#010x}: {why}; deleting it",
                inbound.spi, outbound.spi
            );
            self.refused.insert(inbound.spi);
            return Err(why);
        }
        self.refused.remove(&inbound.spi);
        // The pair it replaces, or if that carries no flows, the one
        // that does (another pair rekeyed at the same time as it).
        let waits_for = mode.keep_sending_on.and_then(|old| {
            Some(old)
                .filter(|&o| self.spd.is_bound(o))
                .or_else(|| self.spd.bound_to(tag, proxy))
        });
        match waits_for {
            Some(replaces) => self.standby.push_back(Standby {
                tag,
                proxy,
                outbound_spi: outbound.spi,
                replaces,
                until: Instant::now() + STANDBY_LIMIT,
            }),
            None => {
                self.spd.bind(tag, proxy, outbound.spi);
                self.spd_changed = true;
            }
        }
        let fresh = self.pairs.insert(Installed {
            tag,
            proxy,
            inbound: inbound.clone(),
            outbound: outbound.clone(),
            installed_at: Instant::now(),
        });
        debug_assert!(fresh, "outbound SPIs checked above");
        Ok(())
    }

    /// A pair the engine deleted (`outbound_spi` 0: an inbound SA
    /// installed ahead of a pair that never completed). Its SAs leave the
    /// dataplane at the next [`Installer::settle`].
    pub fn delete(&mut self, inbound_spi: u32, outbound_spi: u32) {
        if self.remove(inbound_spi, outbound_spi) {
            self.doom(Direction::Inbound, inbound_spi);
        }
    }

    /// A pair a rekey replaced: as [`Installer::delete`], but its inbound
    /// SA stays [`RETIRE_GRACE`] for the peer's packets still on their way.
    pub fn retire(&mut self, inbound_spi: u32, outbound_spi: u32) {
        if self.remove(inbound_spi, outbound_spi) && inbound_spi != 0 {
            let at = Instant::now() + RETIRE_GRACE;
            self.retiring.push_back((at, inbound_spi));
            self.retiring_spis.insert(inbound_spi, at);
            while self.retiring_spis.len() > RETIRING_LIMIT {
                let Some((at, spi)) = self.retiring.pop_front() else {
                    break;
                };
                if self.retiring_spis.get(&spi) == Some(&at) {
                    self.retiring_spis.remove(&spi);
                    self.doom(Direction::Inbound, spi);
                    self.retired_early += 1;
                }
            }
        }
    }

    /// Takes a pair out of the SPD and dooms its outbound SA; whether its
    /// inbound SA is to go too (false: the pair was refused, never in).
    fn remove(&mut self, inbound_spi: u32, outbound_spi: u32) -> bool {
        self.ahead.remove(&inbound_spi);
        if self.refused.remove(&inbound_spi) {
            // Never installed: its SPIs may be another SA's.
            return false;
        }
        // The outbound SA only if it is this pair's: its SPI, the peer's
        // choice, may be another pair's by now (this one expired in the
        // dataplane, that one installed). An inbound SPI is ours.
        if self.pairs.remove(inbound_spi, outbound_spi) {
            // A pair waiting for this one takes its flows now; one that
            // goes while waiting is forgotten.
            self.promote(|s| s.replaces == outbound_spi);
            self.standby.retain(|s| s.outbound_spi != outbound_spi);
            self.spd_changed |= self.spd.unbind(outbound_spi);
            self.doom(Direction::Outbound, outbound_spi);
        }
        true
    }

    /// Binds the waiting pairs `due` picks, if the pair each waits for
    /// still carries the flows; if not, another pair took them since (our
    /// own rekey's, when both sides rekeyed at once) and keeps them: the
    /// waiting pair stays installed, unbound, and its peer deletes it.
    fn promote(&mut self, due: impl Fn(&Standby) -> bool) {
        let spd = &mut self.spd;
        let mut changed = false;
        self.standby.retain(|s| {
            if !due(s) {
                return true;
            }
            if spd.is_bound(s.replaces) {
                spd.bind(s.tag, s.proxy, s.outbound_spi);
                changed = true;
            }
            false
        });
        self.spd_changed |= changed;
    }

    /// Whether SA `spi` of a gone pair is still in the dataplane; a
    /// retired inbound SA is doomed now.
    fn reuses_doomed(&mut self, direction: Direction, spi: u32) -> bool {
        if direction == Direction::Inbound && self.retiring_spis.remove(&spi).is_some() {
            self.doom(direction, spi);
        }
        self.doomed.contains(&(direction, spi))
    }

    /// When [`Installer::settle`] next has a retired inbound SA to remove
    /// or a waiting pair to bind.
    pub fn next_deadline(&self) -> Option<Instant> {
        let retiring = self.retiring.front().map(|&(t, _)| t);
        let standby = self.standby.front().map(|s| s.until);
        retiring.into_iter().chain(standby).min()
    }

    /// The peer's NAT moved it: the outbound SA sends to `port` now.
    pub fn peer_port(&mut self, dp: &mut DataplaneClient, outbound_spi: u32, port: u16) {
        let req = Request::SetPeerPort {
            spi: outbound_spi,
            port,
        };
        match dp.expect_ack("SetPeerPort", req) {
            Ok(()) => {}
            // Expired in the dataplane before we heard of it.
            Err(DpError::Refused {
                code: ErrorCode::UnknownSa,
                ..
            }) => {}
            Err(e) => {
                self.failures += 1;
                eprintln!("espada: moving SA {outbound_spi:#010x} to peer port {port}: {e}");
            }
        }
        // Kept either way: a reinstall after a dataplane restart then
        // goes to where the peer is now.
        if let Some(p) = self.pairs.by_outbound_mut(outbound_spi) {
            if let Some(u) = p.outbound.udp_encap.as_mut() {
                u.dst_port = port;
            }
        }
    }

    /// Binds the waiting pairs whose limit passed by `now`, loads the SPD
    /// if it changed, then removes the deleted pairs' SAs (after the
    /// load, so no rule names a missing SA) and the retired inbound SAs
    /// whose grace passed.
    pub fn settle(&mut self, dp: &mut DataplaneClient, now: Instant) {
        self.promote(|s| s.until <= now);
        while let Some(&(at, spi)) = self.retiring.front().filter(|(t, _)| *t <= now) {
            self.retiring.pop_front();
            if self.retiring_spis.get(&spi) == Some(&at) {
                self.retiring_spis.remove(&spi);
                self.doomed.insert((Direction::Inbound, spi));
            }
        }
        self.apply(dp);
    }

    /// Loads the SPD if it changed, then removes the doomed SAs.
    fn apply(&mut self, dp: &mut DataplaneClient) {
        if std::mem::take(&mut self.spd_changed) {
            self.load_spd(dp);
        }
        for (direction, spi) in std::mem::take(&mut self.doomed) {
            delete_sa(dp, direction, spi);
        }
    }

    /// Loads the SPD now.
    pub fn load_spd(&mut self, dp: &mut DataplaneClient) {
        self.spd_changed = false;
        if let Err(e) = dp.load_spd(&self.spd.rules()) {
            self.failures += 1;
            eprintln!("espada: loading the SPD: {e}");
        }
    }

    /// After a reconnect to the dataplane: every pair's SAs and the bound
    /// SPD again. A dataplane that restarted has none of them; one that
    /// kept running (only the connection dropped) has them already, which
    /// is fine, and gets the bound SPD back over the config's (which the
    /// daemon loaded first). Returns how many SAs were added; an error
    /// is the first SA that failed, the SPD loaded all the same.
    pub fn reinstall(&mut self, dp: &mut DataplaneClient) -> Result<usize, DpError> {
        let mut added = 0;
        let mut failed = None;
        for p in self.pairs.iter() {
            for sa in [&p.inbound, &p.outbound] {
                match dp.expect_ack("AddSa", Request::AddSa(Box::new(sa.clone()))) {
                    Ok(()) => added += 1,
                    Err(DpError::Refused {
                        code: ErrorCode::DuplicateSa,
                        ..
                    }) => {}
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
        }
        dp.load_spd(&self.spd.rules())?;
        match failed {
            Some(e) => Err(e),
            None => Ok(added),
        }
    }

    fn doom(&mut self, direction: Direction, spi: u32) {
        if spi != 0 {
            self.doomed.insert((direction, spi));
        }
    }
}

/// Installs a pair, inbound first (unless `inbound_ready`: installed
/// before). If the outbound SA is refused the inbound one is taken out
/// again.
fn add_pair(
    dp: &mut DataplaneClient,
    inbound: &SaParams,
    outbound: &SaParams,
    inbound_ready: bool,
) -> Result<(), DpError> {
    if !inbound_ready {
        dp.expect_ack("AddSa", Request::AddSa(Box::new(inbound.clone())))?;
    }
    let added = dp.expect_ack("AddSa", Request::AddSa(Box::new(outbound.clone())));
    if added.is_err() {
        delete_sa(dp, Direction::Inbound, inbound.spi);
    }
    added
}

/// Removes an SA from the dataplane; one gone already (expired, the
/// dataplane restarted) is fine.
fn delete_sa(dp: &mut DataplaneClient, direction: Direction, spi: u32) {
    let _ = dp.expect_ack("DeleteSa", Request::DeleteSa { direction, spi });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use dataplane::crypto::{AuthAlg, EncAlg};
    use dataplane::spd::{PolicyAction, PortRange};
    use dataplane::testkit;

    use super::*;
    use crate::dpclient::test_dataplane::TestDataplane;

    /// The SAs the dataplane holds: (outbound?, SPI).
    fn sas(d: &mut TestDataplane) -> BTreeSet<(bool, u32)> {
        let c = d.dp.counters(None).unwrap();
        c.iter()
            .map(|c| (c.direction == Direction::Outbound, c.spi))
            .collect()
    }

    const DYN: PolicyTag = PolicyTag { map: 0, seq: 30 };

    /// A peer's pair: its LAN 10.0.`i`.0/24, our SPI `inbound`, its
    /// `outbound`.
    fn pair(i: u8, inbound: u32, outbound: u32) -> (TrafficSelector, SaParams, SaParams) {
        let (mut out, mut inb) = testkit::sa_pair(
            EncAlg::AesCbc128,
            AuthAlg::HmacSha1_96,
            testkit::tunnel(false),
            false,
            false,
            64,
        );
        (out.spi, inb.spi) = (outbound, inbound);
        let proxy = TrafficSelector {
            src: "198.18.0.0/24".parse().unwrap(),
            dst: format!("10.0.{i}.0/24").parse().unwrap(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        };
        (proxy, inb, out)
    }

    fn install(
        inst: &mut Installer,
        d: &mut TestDataplane,
        (proxy, inb, out): &(TrafficSelector, SaParams, SaParams),
    ) -> Result<(), String> {
        inst.install(&mut d.dp, DYN, *proxy, inb, out, InstallMode::default())
    }

    fn in_out(inbound: u32, outbound: u32) -> BTreeSet<(bool, u32)> {
        [(false, inbound), (true, outbound)].into()
    }

    #[test]
    fn a_burst_of_installs_and_one_of_deletes_each_cost_one_spd_load() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let pairs: Vec<_> = (0..3u8)
            .map(|i| pair(i, 0x100 + u32::from(i), 0x9000 + u32::from(i)))
            .collect();
        for p in &pairs {
            install(&mut inst, &mut d, p).unwrap();
        }
        assert_eq!(d.dp.sent("LoadSpd"), 0, "the load waits for the burst");
        inst.settle(&mut d.dp, Instant::now());
        assert_eq!(d.dp.sent("LoadSpd"), 1);
        assert_eq!(sas(&mut d).len(), 6);
        for (_, inb, out) in &pairs {
            inst.delete(inb.spi, out.spi);
        }
        assert_eq!(d.dp.sent("DeleteSa"), 0, "no SA goes before the SPD");
        assert_eq!(sas(&mut d).len(), 6);
        inst.settle(&mut d.dp, Instant::now());
        assert_eq!(d.dp.sent("LoadSpd"), 2);
        assert_eq!(d.dp.sent("DeleteSa"), 6);
        assert!(sas(&mut d).is_empty());
        assert!(inst.pairs().is_empty());
        assert!(d.stop().spd().is_empty());
    }

    #[test]
    fn a_new_pair_reusing_a_deleted_pairs_spi_waits_for_that_delete_only() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let a = pair(1, 0x100, 0x9000);
        install(&mut inst, &mut d, &a).unwrap();
        inst.settle(&mut d.dp, Instant::now());
        // A goes; another peer's pair comes with A's outbound SPI, which
        // the dataplane still holds until A's delete is carried out.
        inst.delete(0x100, 0x9000);
        let b = pair(2, 0x101, 0x9000);
        install(&mut inst, &mut d, &b).unwrap();
        assert_eq!(d.dp.sent("LoadSpd"), 2, "A unbound before its SAs went");
        let c = pair(3, 0x102, 0x9001);
        install(&mut inst, &mut d, &c).unwrap();
        assert_eq!(d.dp.sent("LoadSpd"), 2, "no SPI reused: no early load");
        inst.settle(&mut d.dp, Instant::now());
        let mut both = in_out(0x101, 0x9000);
        both.extend(in_out(0x102, 0x9001));
        assert_eq!(sas(&mut d), both);
        let spd = d.stop();
        let named: BTreeSet<Option<u32>> = spd
            .spd()
            .iter()
            .map(|r| match r.action {
                PolicyAction::Protect { sa, .. } => sa,
                _ => None,
            })
            .collect();
        assert_eq!(named, [Some(0x9000), Some(0x9001)].into());
    }

    /// The outbound SPI is the peer's choice: a pair that asks for one an
    /// installed pair holds is refused whole, and the engine's delete of
    /// it (after `pair_refused`) leaves the other pair alone, also when
    /// that pair's outbound SA already expired in the dataplane.
    #[test]
    fn a_pair_with_another_pairs_outbound_spi_is_refused_and_its_delete_harmless() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let a = pair(1, 0x100, 0x9000);
        install(&mut inst, &mut d, &a).unwrap();
        inst.settle(&mut d.dp, Instant::now());
        let b = pair(2, 0x101, 0x9000);
        assert!(install(&mut inst, &mut d, &b).is_err());
        inst.delete(0x101, 0x9000);
        inst.settle(&mut d.dp, Instant::now());
        assert_eq!(sas(&mut d), in_out(0x100, 0x9000));
        assert_eq!(inst.pairs().len(), 1);
        // A's outbound SA expires in the dataplane; A's delete has not
        // come yet. B again: still refused, else A's rules would name it.
        d.dp.expect_ack(
            "DeleteSa",
            Request::DeleteSa {
                direction: Direction::Outbound,
                spi: 0x9000,
            },
        )
        .unwrap();
        let b2 = pair(2, 0x102, 0x9000);
        assert!(install(&mut inst, &mut d, &b2).is_err());
        inst.delete(0x102, 0x9000);
        // A's delete now; then B's next try goes in.
        inst.delete(0x100, 0x9000);
        inst.settle(&mut d.dp, Instant::now());
        assert!(sas(&mut d).is_empty());
        let b3 = pair(2, 0x103, 0x9000);
        install(&mut inst, &mut d, &b3).unwrap();
        inst.settle(&mut d.dp, Instant::now());
        assert_eq!(sas(&mut d), in_out(0x103, 0x9000));
        d.stop();
    }

    /// An SA the dataplane holds that is not a negotiated pair's (a
    /// manual one, say): a pair colliding with it in either direction is
    /// refused whole, and deleting that pair never removes the other SA.
    #[test]
    fn a_pair_the_dataplane_refuses_leaves_nothing_and_deletes_nothing() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let (_, manual_in, manual_out) = pair(9, 0x500, 0x9500);
        for sa in [&manual_in, &manual_out] {
            d.dp.expect_ack("AddSa", Request::AddSa(Box::new(sa.clone())))
                .unwrap();
        }
        let manual = in_out(0x500, 0x9500);
        // The outbound SPI taken: the inbound SA added first goes again.
        let a = pair(1, 0x100, 0x9500);
        assert!(install(&mut inst, &mut d, &a).is_err());
        assert_eq!(sas(&mut d), manual);
        inst.delete(0x100, 0x9500);
        inst.settle(&mut d.dp, Instant::now());
        assert_eq!(sas(&mut d), manual);
        // The inbound SPI taken, installed ahead of its pair (an IKEv1
        // responder): refused then, and its pair when it completes.
        let (proxy, inb, out) = pair(2, 0x500, 0x9002);
        inst.install_inbound(&mut d.dp, &inb);
        assert!(inst
            .install(&mut d.dp, DYN, proxy, &inb, &out, InstallMode::PREINSTALLED)
            .is_err());
        inst.delete(0x500, 0x9002);
        inst.settle(&mut d.dp, Instant::now());
        assert_eq!(sas(&mut d), manual);
        assert!(inst.pairs().is_empty());
        // An inbound SA ahead of a pair that never completes goes alone.
        let (_, inb, _) = pair(3, 0x600, 0x9003);
        inst.install_inbound(&mut d.dp, &inb);
        inst.delete(0x600, 0);
        inst.settle(&mut d.dp, Instant::now());
        assert_eq!(sas(&mut d), manual);
        d.stop();
    }

    /// What the daemon may pass ESP on for (NAT-T ESP the kernel
    /// reassembled): the inbound SAs the dataplane should have, pairs',
    /// ahead of their pair, or retired within the grace; no other SPI.
    #[test]
    fn inbound_spis_are_known_while_the_dataplane_should_have_them() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let old = pair(1, 0x100, 0x9000);
        install(&mut inst, &mut d, &old).unwrap();
        assert!(inst.has_inbound(0x100));
        assert!(!inst.has_inbound(0x9000), "the peer's SPI");
        assert!(!inst.has_inbound(0x101));
        // Rekeyed: the old inbound SPI for its grace, then not.
        install(&mut inst, &mut d, &pair(1, 0x101, 0x9001)).unwrap();
        inst.retire(0x100, 0x9000);
        assert!(inst.has_inbound(0x100) && inst.has_inbound(0x101));
        let due = inst.next_deadline().expect("the retired SA's removal");
        inst.settle(&mut d.dp, due);
        assert!(!inst.has_inbound(0x100) && inst.has_inbound(0x101));
        // Ahead of its pair, then in it, then deleted.
        let (proxy, inb, out) = pair(2, 0x200, 0x9002);
        inst.install_inbound(&mut d.dp, &inb);
        assert!(inst.has_inbound(0x200));
        inst.install(&mut d.dp, DYN, proxy, &inb, &out, InstallMode::PREINSTALLED)
            .unwrap();
        assert!(inst.has_inbound(0x200));
        inst.delete(0x200, 0x9002);
        assert!(!inst.has_inbound(0x200));
        // Ahead of a pair that never completes.
        let (_, inb, _) = pair(3, 0x300, 0x9003);
        inst.install_inbound(&mut d.dp, &inb);
        assert!(inst.has_inbound(0x300));
        inst.delete(0x300, 0);
        assert!(!inst.has_inbound(0x300));
        // Refused by the dataplane (its SPI is another SA's).
        inst.settle(&mut d.dp, Instant::now());
        let (_, dup, _) = pair(4, 0x101, 0x9004);
        inst.install_inbound(&mut d.dp, &dup);
        inst.delete(0x101, 0);
        assert!(
            inst.has_inbound(0x101),
            "the pair's SA, not the refused one"
        );
        d.stop();
    }

    /// The outbound SAs the SPD the installer loads names.
    fn bound(inst: &Installer) -> BTreeSet<u32> {
        inst.spd
            .rules()
            .iter()
            .filter_map(|r| match r.action {
                PolicyAction::Protect { sa, .. } => sa,
                _ => None,
            })
            .collect()
    }

    /// A pair our rekey replaced (or the peer's, when its DELETE comes)
    /// leaves the SPD and loses its outbound SA at once; its inbound SA
    /// stays [`RETIRE_GRACE`] for the peer's packets on their way.
    #[test]
    fn a_retired_pair_keeps_its_inbound_sa_for_the_grace_only() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let old = pair(1, 0x100, 0x9000);
        install(&mut inst, &mut d, &old).unwrap();
        let new = pair(1, 0x101, 0x9001);
        install(&mut inst, &mut d, &new).unwrap();
        assert_eq!(inst.next_deadline(), None);
        inst.retire(0x100, 0x9000);
        let t0 = Instant::now();
        inst.settle(&mut d.dp, t0);
        assert_eq!(bound(&inst), [0x9001].into());
        let mut left = in_out(0x101, 0x9001);
        left.insert((false, 0x100));
        assert_eq!(sas(&mut d), left, "the old inbound SA stays");
        let due = inst.next_deadline().expect("the inbound SA's removal");
        assert!(due >= t0 + RETIRE_GRACE - Duration::from_millis(500));
        inst.settle(&mut d.dp, due - Duration::from_millis(1));
        assert_eq!(sas(&mut d).len(), 3, "not before the grace");
        inst.settle(&mut d.dp, due);
        assert_eq!(sas(&mut d), in_out(0x101, 0x9001));
        assert_eq!(inst.next_deadline(), None);
        d.stop();
    }

    /// A peer rekeying as fast as it can: beyond [`RETIRING_LIMIT`]
    /// retired inbound SAs the oldest go at the next settle, not after
    /// their grace, and the newest keep theirs.
    #[test]
    fn retired_inbound_sas_beyond_the_limit_go_at_once_oldest_first() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let extra = 3;
        let n = u32::try_from(RETIRING_LIMIT + extra).unwrap();
        let t0 = Instant::now();
        for k in 0..=n {
            install(&mut inst, &mut d, &pair(1, 0x1000 + k, 0x10_0000 + k)).unwrap();
            if k > 0 {
                inst.retire(0x1000 + k - 1, 0x10_0000 + k - 1);
            }
            if k % 512 == 0 {
                inst.settle(&mut d.dp, t0);
            }
        }
        inst.settle(&mut d.dp, t0);
        assert_eq!(inst.retired_early, u64::try_from(extra).unwrap());
        let held = sas(&mut d);
        let mut want = in_out(0x1000 + n, 0x10_0000 + n);
        want.extend((u32::try_from(extra).unwrap()..n).map(|k| (false, 0x1000 + k)));
        assert_eq!(held, want, "the {extra} oldest retired inbound SAs went");
        // However long the installs took, every grace is up by then.
        inst.settle(&mut d.dp, Instant::now() + RETIRE_GRACE * 2);
        assert_eq!(sas(&mut d), in_out(0x1000 + n, 0x10_0000 + n));
        d.stop();
    }

    /// A retired inbound SPI negotiated again within the grace (SPIs are
    /// random, so rarely): the old SA goes first, and the grace's end
    /// does not take the new one.
    #[test]
    fn a_new_pair_reusing_a_retired_inbound_spi_replaces_it_and_keeps_it() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        install(&mut inst, &mut d, &pair(1, 0x100, 0x9000)).unwrap();
        inst.retire(0x100, 0x9000);
        install(&mut inst, &mut d, &pair(2, 0x100, 0x9002)).unwrap();
        inst.settle(&mut d.dp, Instant::now() + RETIRE_GRACE * 2);
        assert_eq!(sas(&mut d), in_out(0x100, 0x9002));
        assert_eq!(inst.next_deadline(), None);
        d.stop();
    }

    /// A responder's rekeyed pair: its flows stay on the pair it
    /// replaces until that one goes (the initiator's DELETE), or until
    /// [`STANDBY_LIMIT`] if it never does; with nothing to wait for it
    /// takes them at once.
    #[test]
    fn a_pair_told_to_keep_sending_on_another_takes_its_flows_when_it_goes_or_at_the_limit() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let wait_for = |old| InstallMode {
            inbound_ready: false,
            keep_sending_on: Some(old),
        };
        let (proxy, a_in, a_out) = pair(1, 0x100, 0x9000);
        install(&mut inst, &mut d, &(proxy, a_in, a_out)).unwrap();
        let (_, b_in, b_out) = pair(1, 0x101, 0x9001);
        inst.install(&mut d.dp, DYN, proxy, &b_in, &b_out, wait_for(0x9000))
            .unwrap();
        let t0 = Instant::now();
        inst.settle(&mut d.dp, t0);
        assert_eq!(bound(&inst), [0x9000].into(), "still on the old pair");
        assert_eq!(sas(&mut d).len(), 4, "the new pair is in");
        assert_eq!(inst.pairs().len(), 2);
        // The initiator's DELETE of the old pair.
        inst.retire(0x100, 0x9000);
        inst.settle(&mut d.dp, t0);
        assert_eq!(bound(&inst), [0x9001].into());
        // The next rekey's initiator never deletes: the limit moves it.
        let (_, c_in, c_out) = pair(1, 0x102, 0x9002);
        inst.install(&mut d.dp, DYN, proxy, &c_in, &c_out, wait_for(0x9001))
            .unwrap();
        inst.settle(&mut d.dp, t0);
        assert_eq!(bound(&inst), [0x9001].into());
        let limit = Instant::now() + STANDBY_LIMIT;
        assert!(inst.next_deadline().is_some_and(|t| t <= limit));
        inst.settle(&mut d.dp, limit);
        assert_eq!(bound(&inst), [0x9002].into());
        // Waiting for a pair already gone, with no other pair carrying
        // the flows: bound now.
        inst.retire(0x101, 0x9001);
        inst.retire(0x102, 0x9002);
        let (_, e_in, e_out) = pair(1, 0x103, 0x9003);
        inst.install(&mut d.dp, DYN, proxy, &e_in, &e_out, wait_for(0x9001))
            .unwrap();
        inst.settle(&mut d.dp, limit);
        assert_eq!(bound(&inst), [0x9003].into());
        // A waiting pair deleted (its rekey undone) leaves the old bound.
        let (_, f_in, f_out) = pair(1, 0x104, 0x9004);
        inst.install(&mut d.dp, DYN, proxy, &f_in, &f_out, wait_for(0x9003))
            .unwrap();
        inst.delete(0x104, 0x9004);
        inst.settle(&mut d.dp, limit + STANDBY_LIMIT * 2);
        assert_eq!(bound(&inst), [0x9003].into());
        assert!(inst.standby.is_empty());
        d.stop();
    }

    /// Both sides rekey the same pair at once (RFC 7296 §2.8.1): the
    /// peer's new pair waits, ours is bound on the peer's answer, and the
    /// old one retires. The flows stay on ours, so the peer deleting its
    /// redundant pair (it had the lowest nonce) leaves them an SA.
    #[test]
    fn a_waiting_pair_never_takes_the_flows_from_a_newer_one() {
        let mut d = TestDataplane::start();
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let (proxy, x_in, x_out) = pair(1, 0x100, 0x9000);
        install(&mut inst, &mut d, &(proxy, x_in, x_out)).unwrap();
        let (_, peers_in, peers_out) = pair(1, 0x101, 0x9001);
        let waits = InstallMode {
            inbound_ready: false,
            keep_sending_on: Some(0x9000),
        };
        inst.install(&mut d.dp, DYN, proxy, &peers_in, &peers_out, waits)
            .unwrap();
        let ours = pair(1, 0x102, 0x9002);
        install(&mut inst, &mut d, &ours).unwrap();
        inst.retire(0x100, 0x9000);
        let t0 = Instant::now();
        inst.settle(&mut d.dp, t0);
        assert_eq!(bound(&inst), [0x9002].into());
        assert!(inst.standby.is_empty(), "nothing left to wait for");
        inst.delete(0x101, 0x9001);
        inst.settle(&mut d.dp, t0 + STANDBY_LIMIT * 2);
        assert_eq!(bound(&inst), [0x9002].into());
        // The same when the limit passes first.
        let (_, w_in, w_out) = pair(1, 0x103, 0x9003);
        let waits = InstallMode {
            inbound_ready: false,
            keep_sending_on: Some(0x9002),
        };
        inst.install(&mut d.dp, DYN, proxy, &w_in, &w_out, waits)
            .unwrap();
        install(&mut inst, &mut d, &pair(1, 0x104, 0x9004)).unwrap();
        inst.settle(&mut d.dp, Instant::now() + STANDBY_LIMIT);
        assert_eq!(bound(&inst), [0x9004].into());
        // The peer rekeys a pair that carries no flows (its side of a
        // collision): the new pair waits for the one that does.
        let (_, z_in, z_out) = pair(1, 0x105, 0x9005);
        let waits = InstallMode {
            inbound_ready: false,
            keep_sending_on: Some(0x9003),
        };
        inst.install(&mut d.dp, DYN, proxy, &z_in, &z_out, waits)
            .unwrap();
        let t1 = Instant::now();
        inst.settle(&mut d.dp, t1);
        assert_eq!(bound(&inst), [0x9004].into(), "not before the peer has it");
        inst.settle(&mut d.dp, t1 + STANDBY_LIMIT);
        assert_eq!(bound(&inst), [0x9005].into());
        d.stop();
    }

    /// The daemon reconnects to a dataplane that kept running, or to a
    /// new one: either way every pair and the bound SPD are back.
    #[test]
    fn a_reinstall_restores_pairs_and_spd_whether_the_dataplane_kept_them_or_not() {
        let mut inst = Installer::new(SpdBinder::new(Vec::new()));
        let mut d = TestDataplane::start();
        for i in 0..3u8 {
            let p = pair(i, 0x100 + u32::from(i), 0x9000 + u32::from(i));
            install(&mut inst, &mut d, &p).unwrap();
        }
        inst.settle(&mut d.dp, Instant::now());
        // Kept running: the config's SPD (empty here) went in first.
        d.dp.load_spd(&[]).unwrap();
        assert_eq!(inst.reinstall(&mut d.dp).unwrap(), 0);
        assert_eq!(sas(&mut d).len(), 6);
        assert_eq!(d.stop().spd().len(), 3);
        // A new dataplane.
        let mut d = TestDataplane::start();
        assert_eq!(inst.reinstall(&mut d.dp).unwrap(), 6);
        assert_eq!(sas(&mut d).len(), 6);
        assert_eq!(d.stop().spd().len(), 3);
    }
}
