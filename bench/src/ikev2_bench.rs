//! `espada-bench ike --ikev2`: IKEv2 setups (IKE_SA_INIT + IKE_AUTH with
//! the first CHILD_SA) per second of one core on the responder side, for
//! each Diffie-Hellman group, against the Diffie-Hellman work alone
//! measured on the same core in the same run: the IKEv1 benchmark's
//! method ([`crate::ike_bench::measure_rig`]) with the IKEv2 engine.
//!
//! One responder [`Engine`] (a keyring peer 0.0.0.0/0 and a map entry
//! without peers, as a hub answering many sites has) negotiates with one
//! fresh initiator engine per setup, each from an address the responder
//! holds nothing for. Only the responder's part is timed, as for IKEv1:
//! its thread CPU time inside `handle_datagram` and the `poll_output`
//! drain for each datagram, and the timer walks the daemon makes at most
//! once per 100 ms. Every setup must take exactly two datagrams in and two out of
//! the responder, end with its `InstallInbound` + `Install` (inbound
//! ready) and the initiator's `Install`, and count one IKE SA and one
//! CHILD_SA established, or the run fails.
//!
//! Every `held` setups the responder is checked (it must hold exactly
//! `held` established IKE SAs and `held` pairs) and replaced by a new
//! engine, untimed: the IKEv2 engine's `clear` deletes its IKE SAs only
//! once the peers answer the INFORMATIONAL, and the initiators are gone.
//!
//! The baseline is the responder's unavoidable Diffie-Hellman work for one
//! IKE_SA_INIT: one key generation and one shared secret in the group.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use control::config::model::SecretBytes;
use control::ike::crypto::DhGroup;
use control::ikev2::policy::{Ikev2ProfileSettings, RemoteIdMatch};
use control::ikev2::{Engine, IkeEncr, IkeInteg, Ikev2Policy, Ikev2Proposal, KeyringPeer, Output};
use dataplane::spd::{FlowKey, IpPrefix, PortRange, TrafficSelector};
use hdrhistogram::Histogram;

use crate::ike_bench::{self, Measurement, Options, Progress, SetupRig};

/// The groups `--ikev2 --groups` accepts, by IANA number.
pub const GROUPS: [u16; 6] = [2, 5, 14, 19, 20, 31];
/// What `--ikev2` measures without `--groups`.
pub const DEFAULT_GROUPS: [u16; 2] = [14, 19];

pub const SUITE: &str =
    "IKE aes-cbc-256/sha256 (prf sha256), PSK, ESP aes128-sha1 tunnel, no PFS, keyring 0.0.0.0/0";

pub use crate::ike_bench::{map_entry, TAG};
const PSK: &[u8] = b"espada-bench-psk";
const RESPONDER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const RESPONDER_LAN: &str = "198.19.0.0/16";

pub fn parse_group(s: &str) -> Result<DhGroup> {
    match s.parse::<u16>().ok().and_then(DhGroup::from_id) {
        Some(g) if GROUPS.contains(&g.id()) => Ok(g),
        _ => bail!("group {s:?}: give 2, 5, 14, 19, 20 or 31 with --ikev2"),
    }
}

pub fn run(opts: &Options, mut progress: impl FnMut(&Progress)) -> Result<Vec<Measurement>> {
    if !(1..=ike_bench::MAX_HELD).contains(&opts.held) {
        bail!(
            "--held {}: give 1 to {} setups",
            opts.held,
            ike_bench::MAX_HELD
        );
    }
    let mut out = Vec::new();
    for &group in &opts.groups {
        let mut rig = Rig::new(group, group, opts.held);
        let m = ike_bench::measure_rig(group, opts, &mut rig, &mut progress)
            .with_context(|| format!("IKEv2 group {}", group.id()))?;
        out.push(m);
    }
    Ok(out)
}

pub fn sel(src: IpPrefix, dst: IpPrefix) -> TrafficSelector {
    TrafficSelector {
        src,
        dst,
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

/// The IKE proposal both sides use, in `group`.
pub fn proposal(group: DhGroup) -> Ikev2Proposal {
    Ikev2Proposal {
        name: "BENCH".into(),
        encr: vec![IkeEncr::AesCbc(256)],
        integ: vec![IkeInteg::Sha256_128],
        prf: Vec::new(),
        groups: vec![group],
        local: Vec::new(),
    }
}

/// One profile for any address identity, with one key for the peers in
/// `peer`.
fn profile(peer: IpPrefix, psk: &[u8]) -> Ikev2ProfileSettings {
    Ikev2ProfileSettings {
        name: "BENCH".into(),
        match_remote: vec![RemoteIdMatch::Address(IpPrefix::any_v4())],
        keyring: vec![KeyringPeer {
            name: "BENCH".into(),
            address: Some(peer),
            identity: None,
            local_key: SecretBytes::new(psk.to_vec()),
            remote_key: SecretBytes::new(psk.to_vec()),
        }],
        ..Ikev2ProfileSettings::default()
    }
}

/// A hub: any peer with the one key, any CHILD_SA inside `local_lan` ↔
/// anything.
pub fn responder_policy(
    group: DhGroup,
    local: IpAddr,
    local_lan: IpPrefix,
    psk: &[u8],
    cookie_threshold: usize,
) -> Ikev2Policy {
    Ikev2Policy {
        proposals: vec![proposal(group)],
        profiles: vec![profile(IpPrefix::any_v4(), psk)],
        maps: vec![map_entry(
            local,
            Vec::new(),
            vec![sel(local_lan, IpPrefix::any_v4())],
        )],
        cookie_threshold,
        ..Ikev2Policy::default()
    }
}

/// A site: `local` asks `peer` for `lan` ↔ `remote_lan`.
pub fn initiator_policy(
    group: DhGroup,
    local: IpAddr,
    peer: IpAddr,
    lan: IpPrefix,
    remote_lan: IpPrefix,
    psk: &[u8],
) -> Ikev2Policy {
    Ikev2Policy {
        proposals: vec![proposal(group)],
        profiles: vec![profile(IpPrefix::host(peer), psk)],
        maps: vec![map_entry(local, vec![peer], vec![sel(lan, remote_lan)])],
        ..Ikev2Policy::default()
    }
}

/// A flow inside `lan` ↔ `remote_lan` for `acquire`.
pub fn flow(lan: IpPrefix, remote_lan: IpPrefix) -> FlowKey {
    FlowKey {
        src: lan.addr(),
        dst: remote_lan.addr(),
        proto: 1,
        src_port: 0,
        dst_port: 0,
    }
}

/// Site `n`: IKE from 100.64.0.0 + n + 1, network 10.0.0.0 + n·256 / 24.
fn site(n: usize) -> (IpAddr, IpPrefix) {
    let n = u32::try_from(n).expect("held is at most 65 535");
    let ike = Ipv4Addr::from(u32::from(Ipv4Addr::new(100, 64, 0, 0)) + n + 1);
    let lan = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (n << 8));
    let lan = IpPrefix::new(lan.into(), 24).expect("a /24 of 10/8");
    (ike.into(), lan)
}

fn responder_lan() -> IpPrefix {
    RESPONDER_LAN.parse().expect("a prefix")
}

struct Rig {
    initiator_group: DhGroup,
    group: DhGroup,
    responder: Engine,
    now: Instant,
    held_limit: usize,
    held: usize,
    outs: Vec<Output>,
    timers: ike_bench::TimerWalks,
    logs: Vec<String>,
}

impl Rig {
    fn new(initiator_group: DhGroup, group: DhGroup, held_limit: usize) -> Rig {
        Rig {
            initiator_group,
            group,
            responder: Engine::new(Rig::policy(group)),
            now: Instant::now(),
            held_limit,
            held: 0,
            outs: Vec::with_capacity(16),
            timers: ike_bench::TimerWalks::default(),
            logs: Vec::new(),
        }
    }

    fn policy(group: DhGroup) -> Ikev2Policy {
        // No cookies: the benchmark's initiators come one at a time.
        responder_policy(group, RESPONDER.into(), responder_lan(), PSK, usize::MAX)
    }

    fn fail(&self, why: String) -> anyhow::Error {
        anyhow::anyhow!(
            "{why}\nresponder stats: {:?}\nlast debug lines:\n  {}",
            self.responder.stats(),
            self.logs.join("\n  ")
        )
    }
}

impl SetupRig for Rig {
    fn setup(&mut self, hist: &mut Histogram<u64>) -> Result<u64> {
        self.logs.clear();
        let n = self.held;
        let (peer_ip, lan) = site(n);
        let remote_lan = responder_lan();
        let mut init = Engine::new(initiator_policy(
            self.initiator_group,
            peer_ip,
            RESPONDER.into(),
            lan,
            remote_lan,
            PSK,
        ));
        let responder_addr = SocketAddr::new(RESPONDER.into(), 500);
        let before = self.responder.stats().clone();
        init.acquire(self.now, TAG, flow(lan, remote_lan));
        let mut logs = std::mem::take(&mut self.logs);
        let ran = ike_bench::exchange(
            &mut init,
            &mut self.responder,
            self.now,
            responder_addr,
            peer_ip,
            &mut self.outs,
            &mut self.timers,
            &mut |who, line| ike_bench::push_log(&mut logs, who, line),
        );
        self.logs = logs;
        let ike_bench::Exchange {
            cpu,
            r_in,
            r_out,
            r_installs,
            r_inbound,
            i_installs,
        } = ran.map_err(|why| self.fail(why))?;
        let after = self.responder.stats();
        let ike = after.ike_established - before.ike_established;
        let child = after.child_established - before.child_established;
        if (r_in, r_out, r_installs, r_inbound, i_installs, ike, child) != (2, 2, 1, 1, 1, 1, 1) {
            return Err(self.fail(format!(
                "IKEv2 group {} setup {n} with {peer_ip} did not complete: responder took {r_in} datagrams (2 expected), sent {r_out} (2), installed {r_installs} pair(s) and {r_inbound} inbound SA(s) (1, 1), established {ike} IKE SA(s) and {child} CHILD_SA(s) (1, 1); initiator installed {i_installs} (1)",
                self.group.id()
            )));
        }
        hist.record(cpu.max(1))?;
        self.held += 1;
        if self.held >= self.held_limit {
            SetupRig::forget(self)?;
        }
        Ok(cpu)
    }

    fn forget(&mut self) -> Result<()> {
        let sas = self.responder.ike_sas();
        let pairs = self.responder.pairs().count();
        if sas.len() != self.held || pairs != self.held {
            return Err(self.fail(format!(
                "the responder holds {} established IKE SAs and {pairs} pairs after {} setups",
                sas.len(),
                self.held
            )));
        }
        self.responder = Engine::new(Rig::policy(self.group));
        self.held = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_ikev2_setup_completes_and_the_responder_is_renewed() {
        let opts = Options {
            groups: vec![DhGroup::Ecp256, DhGroup::Modp2048],
            duration: Duration::from_secs(5),
            held: 3,
            max_setups: Some(7),
        };
        let mut reports = Vec::new();
        let ms = run(&opts, |p| reports.push((p.group, p.setups))).expect("the benchmark runs");
        assert_eq!((ms[0].group, ms[1].group), (19, 14));
        for m in &ms {
            assert_eq!(m.setups, 7, "group {}", m.group);
            assert!(m.setups_per_sec > 0.0 && m.ratio_to_dh > 0.0);
            assert_eq!(
                reports.iter().rfind(|r| r.0 == m.group),
                Some(&(m.group, 7))
            );
        }
    }

    #[test]
    fn an_ikev2_negotiation_that_does_not_complete_fails_the_run() {
        // Group 19 offered to a group-14 responder: INVALID_KE_PAYLOAD,
        // the initiator cannot switch (its proposal has only group 19).
        let mut rig = Rig::new(DhGroup::Ecp256, DhGroup::Modp2048, 10);
        let mut hist = Histogram::new(3).expect("histogram");
        let err = rig.setup(&mut hist).expect_err("the setup cannot complete");
        let text = format!("{err:#}");
        assert!(text.contains("did not complete"), "{text}");
    }

    #[test]
    fn ikev2_groups() {
        assert_eq!(parse_group("19").unwrap(), DhGroup::Ecp256);
        assert_eq!(parse_group("14").unwrap(), DhGroup::Modp2048);
        for bad in ["1", "7", "x", ""] {
            assert!(parse_group(bad).is_err(), "{bad}");
        }
    }
}
