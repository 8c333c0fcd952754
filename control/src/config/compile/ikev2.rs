//! IKEv2: `crypto ikev2 proposal|policy|keyring|profile` and the global
//! `crypto ikev2 dpd|nat keepalive|cookie-challenge`, compiled into the
//! [`Ikev2Policy`] the IKEv2 engine negotiates with. The entries come from
//! crypto maps and IPsec profiles (VTIs) that say `set ikev2-profile`.
//!
//! IOS semantics kept:
//! - proposals are offered and accepted through `crypto ikev2 policy`s, in
//!   file order; with no policy at all IOS's default policy applies, whose
//!   default proposal is AES-CBC-256/192/128 or 3DES, SHA-512/384/256/1
//!   and group 5 or 2 (seed 002's responder has no policy and answers
//!   AES-CBC);
//! - a proposal without `prf` uses its integrity algorithms as PRFs;
//! - a keyring peer's `pre-shared-key KEY` is both keys; `local` / `remote`
//!   set one each (they may differ, seed 002);
//! - a `crypto ikev2 policy` with `match address local A` applies to IKE
//!   SAs on those local addresses only, one without to every address; on
//!   an address the explicitly matching policies' proposals come first;
//! - each entry keeps its own profile (keyring, identities, lifetime,
//!   DPD): the initiator uses its entry's, the responder the first
//!   profile of an entry on that address whose `match identity remote`
//!   matches the peer's IDi.

use std::net::IpAddr;

use super::super::error::{ErrorKind, Spanned};
use super::super::ike::{IkeHash, Ikev2Profile, Keepalive};
use super::Cx;
use crate::ike::crypto::{DhGroup, Prf};
use crate::ikev1::policy::{Dpd, MapEntry};
use crate::ikev2::policy::Ikev2ProfileSettings;
use crate::ikev2::policy::{DEFAULT_COOKIE_THRESHOLD, DEFAULT_IKEV2_LIFETIME};
use crate::ikev2::{IkeEncr, IkeInteg, Ikev2Policy, Ikev2Proposal, KeyringPeer};

/// IOS's retry interval when `dpd` gives none.
const DEFAULT_DPD_RETRY: u32 = 2;

/// IOS's default IKEv2 proposal (without MD5, which IKEv2 here does not
/// do).
fn default_proposal() -> Ikev2Proposal {
    let integ = vec![
        IkeInteg::Sha512_256,
        IkeInteg::Sha384_192,
        IkeInteg::Sha256_128,
        IkeInteg::Sha1_96,
    ];
    Ikev2Proposal {
        name: "default".to_string(),
        encr: vec![
            IkeEncr::AesCbc(256),
            IkeEncr::AesCbc(192),
            IkeEncr::AesCbc(128),
            IkeEncr::TripleDes,
        ],
        prf: integ.iter().map(|&i| prf_of_integ(i)).collect(),
        integ,
        groups: vec![DhGroup::Modp1536, DhGroup::Modp1024],
        local: Vec::new(),
    }
}

fn prf_of_integ(i: IkeInteg) -> Prf {
    match i {
        IkeInteg::Sha1_96 => Prf::HmacSha1,
        IkeInteg::Sha256_128 => Prf::HmacSha256,
        IkeInteg::Sha384_192 => Prf::HmacSha384,
        IkeInteg::Sha512_256 => Prf::HmacSha512,
    }
}

fn integ_of(h: IkeHash) -> Option<IkeInteg> {
    Some(match h {
        IkeHash::Md5 => return None,
        IkeHash::Sha1 => IkeInteg::Sha1_96,
        IkeHash::Sha256 => IkeInteg::Sha256_128,
        IkeHash::Sha384 => IkeInteg::Sha384_192,
        IkeHash::Sha512 => IkeInteg::Sha512_256,
    })
}

fn prf_of(h: IkeHash) -> Option<Prf> {
    integ_of(h).map(prf_of_integ)
}

impl<'c> Cx<'c> {
    /// The IKEv2 policy for `entries` (each with the profile it names).
    /// Empty (no maps) when there are none; nothing global is checked then,
    /// as IOS ignores unused IKEv2 blocks.
    pub(super) fn ikev2(&mut self, entries: Vec<(MapEntry, Spanned<String>)>) -> Ikev2Policy {
        let ike = &self.cfg.ike;
        let mut policy = Ikev2Policy {
            cookie_threshold: ike
                .ikev2_cookie_challenge
                .as_ref()
                .map_or(DEFAULT_COOKIE_THRESHOLD, |c| c.value as usize),
            nat_keepalive: ike.ikev2_nat_keepalive.as_ref().map(|k| k.value),
            ..Ikev2Policy::default()
        };
        if entries.is_empty() {
            return policy;
        }
        policy.proposals = self.ikev2_proposals();
        let mut profiles: Vec<&'c Ikev2Profile> = Vec::new();
        for (entry, name) in entries {
            let Some(p) = self
                .cfg
                .ike
                .ikev2_profiles
                .iter()
                .find(|p| p.name == name.value)
            else {
                self.error(
                    ErrorKind::Undefined,
                    name.span,
                    &name.value,
                    format!("crypto ikev2 profile {} is not defined", name.value),
                );
                continue;
            };
            let i = match profiles.iter().position(|q| q.name == p.name) {
                Some(i) => i,
                None => {
                    profiles.push(p);
                    profiles.len() - 1
                }
            };
            policy.maps.push(entry);
            policy.entry_profiles.push(i);
        }
        for p in profiles {
            let settings = self.ikev2_profile(p);
            policy.profiles.push(settings);
        }
        self.ikev2_complete(&policy);
        policy
    }

    /// The proposals in IOS order: each policy's in file order, or the
    /// default proposal when no policy is configured.
    fn ikev2_proposals(&mut self) -> Vec<Ikev2Proposal> {
        let ike = &self.cfg.ike;
        if ike.ikev2_policies.is_empty() {
            for p in &ike.ikev2_proposals {
                self.warn(
                    p.span,
                    format!(
                        "crypto ikev2 proposal {} is not used: no crypto ikev2 policy names it, \
                         so IOS's default policy and default proposal apply",
                        p.name
                    ),
                );
            }
            return vec![default_proposal()];
        }
        // Each proposal is compiled once (its errors reported once); a
        // policy adds a copy carrying its `match address local`s.
        let mut compiled: Vec<(String, Option<Ikev2Proposal>)> = Vec::new();
        let mut out: Vec<Ikev2Proposal> = Vec::new();
        for pol in &ike.ikev2_policies {
            if pol.proposals.is_empty() {
                self.error(
                    ErrorKind::Missing,
                    pol.span,
                    &pol.name,
                    format!("crypto ikev2 policy {} has no \"proposal\"", pol.name),
                );
            }
            let local: Vec<IpAddr> = pol.match_local.iter().map(|a| a.value).collect();
            for name in &pol.proposals {
                let Some(p) = ike.ikev2_proposals.iter().find(|p| p.name == name.value) else {
                    self.error(
                        ErrorKind::Undefined,
                        name.span,
                        &name.value,
                        format!("crypto ikev2 proposal {} is not defined", name.value),
                    );
                    continue;
                };
                let c = match compiled.iter().find(|(n, _)| *n == p.name) {
                    Some((_, c)) => c.clone(),
                    None => {
                        let c = self.ikev2_proposal(p);
                        compiled.push((p.name.clone(), c.clone()));
                        c
                    }
                };
                let Some(mut c) = c else {
                    continue;
                };
                if out.iter().any(|x| x.name == c.name && x.local == local) {
                    continue;
                }
                c.local = local.clone();
                out.push(c);
            }
        }
        for p in &ike.ikev2_proposals {
            if !ike
                .ikev2_policies
                .iter()
                .any(|pol| pol.proposals.iter().any(|n| n.value == p.name))
            {
                self.warn(
                    p.span,
                    format!(
                        "crypto ikev2 proposal {} is not used: no crypto ikev2 policy names it",
                        p.name
                    ),
                );
            }
        }
        out
    }

    fn ikev2_proposal(&mut self, p: &super::super::ike::Ikev2Proposal) -> Option<Ikev2Proposal> {
        let id = format!("crypto ikev2 proposal {}", p.name);
        let mut ok = true;
        let mut missing = |cx: &mut Self, what: &str| {
            ok = false;
            cx.error(
                ErrorKind::Missing,
                p.span,
                &p.name,
                format!("{id} has no \"{what}\""),
            );
        };
        if p.encryption.is_empty() {
            missing(self, "encryption");
        }
        if p.groups.is_empty() {
            missing(self, "group");
        }
        let aead = p
            .encryption
            .iter()
            .filter(|e| matches!(e, IkeEncr::AesGcm16(_)))
            .count();
        if aead != 0 && aead != p.encryption.len() {
            missing(
                self,
                "AES-GCM in a proposal of its own (AEAD and CBC ciphers do not mix)",
            );
        }
        let cbc = aead == 0 && !p.encryption.is_empty();
        if cbc && p.integrity.is_empty() {
            missing(self, "integrity");
        }
        if !cbc && aead != 0 && p.prf.is_empty() {
            missing(
                self,
                "prf (an AES-GCM proposal has no integrity to take it from)",
            );
        }
        if p.integrity.contains(&IkeHash::Md5) || p.prf.contains(&IkeHash::Md5) {
            ok = false;
            self.error(
                ErrorKind::NotSupportedYet,
                p.span,
                "md5",
                format!("{id}: MD5 is not supported for IKEv2 (RFC 8247); use sha1 or stronger"),
            );
        }
        let mut groups = Vec::new();
        for &g in &p.groups {
            match DhGroup::from_id(g) {
                Some(g) => groups.push(g),
                None => {
                    ok = false;
                    self.error(
                        ErrorKind::NotSupportedYet,
                        p.span,
                        &g.to_string(),
                        format!("{id}: group {g} is not supported yet (2, 5, 14, 19, 20, 31 are)"),
                    );
                }
            }
        }
        if !ok {
            return None;
        }
        let integ: Vec<IkeInteg> = if cbc {
            p.integrity.iter().filter_map(|&h| integ_of(h)).collect()
        } else {
            Vec::new()
        };
        let prf: Vec<Prf> = if p.prf.is_empty() {
            integ.iter().map(|&i| prf_of_integ(i)).collect()
        } else {
            p.prf.iter().filter_map(|&h| prf_of(h)).collect()
        };
        Some(Ikev2Proposal {
            name: p.name.clone(),
            encr: p.encryption.clone(),
            integ,
            prf,
            groups,
            local: Vec::new(),
        })
    }

    /// Checks one profile and compiles it with its keyring's peers.
    fn ikev2_profile(&mut self, p: &Ikev2Profile) -> Ikev2ProfileSettings {
        let id = format!("crypto ikev2 profile {}", p.name);
        let missing = |cx: &mut Self, what: &str| {
            cx.error(
                ErrorKind::Missing,
                p.span,
                &p.name,
                format!("{id} has no \"{what}\""),
            );
        };
        if p.match_identity_remote.is_empty() {
            missing(
                self,
                "match identity remote address A [MASK] | fqdn [domain] NAME | email [domain] X",
            );
        }
        if p.auth_local.is_none() {
            missing(self, "authentication local pre-share");
        }
        if p.auth_remote.is_empty() {
            missing(self, "authentication remote pre-share");
        }
        let mut keyring = Vec::new();
        match &p.keyring {
            None => missing(self, "keyring local NAME"),
            Some(name) => self.ikev2_keyring(name, &mut keyring),
        }
        let dpd = p
            .dpd
            .or(self.cfg.ike.ikev2_dpd.as_ref().map(|d| d.value))
            .map(|k: Keepalive| Dpd {
                interval: k.interval,
                retry: k.retry.unwrap_or(DEFAULT_DPD_RETRY),
                periodic: k.periodic,
            });
        Ikev2ProfileSettings {
            name: p.name.clone(),
            match_remote: p
                .match_identity_remote
                .iter()
                .map(|m| m.value.clone())
                .collect(),
            local_id: p.identity_local.as_ref().and_then(|l| l.value.clone()),
            keyring,
            lifetime: p.lifetime.unwrap_or(DEFAULT_IKEV2_LIFETIME),
            dpd,
        }
    }

    /// Adds keyring `name`'s peers to `out`.
    fn ikev2_keyring(&mut self, name: &Spanned<String>, out: &mut Vec<KeyringPeer>) {
        let Some(ring) = self
            .cfg
            .ike
            .ikev2_keyrings
            .iter()
            .find(|k| k.name == name.value)
        else {
            self.error(
                ErrorKind::Undefined,
                name.span,
                &name.value,
                format!("crypto ikev2 keyring {} is not defined", name.value),
            );
            return;
        };
        for peer in &ring.peers {
            let id = format!("crypto ikev2 keyring {} peer {}", ring.name, peer.name);
            if peer.address.is_none() && peer.identity.is_none() {
                self.error(
                    ErrorKind::NotSupportedYet,
                    peer.span,
                    &peer.name,
                    format!(
                        "{id} has neither \"address A [MASK]\" nor \"identity ...\": espada finds \
                         a peer's keys by its address or identity (hostname alone is not \
                         supported yet)"
                    ),
                );
                continue;
            }
            let local = peer.psk_local.clone().or_else(|| peer.psk.clone());
            let remote = peer.psk_remote.clone().or_else(|| peer.psk.clone());
            let (Some(local_key), Some(remote_key)) = (local, remote) else {
                self.error(
                    ErrorKind::Missing,
                    peer.span,
                    &peer.name,
                    format!(
                        "{id} has no pre-shared key for both directions (pre-shared-key KEY, or \
                         pre-shared-key local KEY and pre-shared-key remote KEY)"
                    ),
                );
                continue;
            };
            out.push(KeyringPeer {
                name: peer.name.clone(),
                address: peer.address,
                identity: peer.identity.clone(),
                local_key,
                remote_key,
            });
        }
    }

    /// Every static peer of an IKEv2 entry needs keys in its profile's
    /// keyring, found by address (as the initiator looks them up).
    fn ikev2_complete(&mut self, p: &Ikev2Policy) {
        for (i, e) in p.maps.iter().enumerate() {
            let profile = p.entry_profile(i);
            for &peer in &e.peers {
                if !p.has_key_for(profile, peer) {
                    let (span, id) = self.entry_site(e);
                    self.error(
                        ErrorKind::Missing,
                        span,
                        &peer.to_string(),
                        format!(
                            "{id}: no crypto ikev2 keyring peer has an address matching {peer}"
                        ),
                    );
                }
            }
        }
    }
}
