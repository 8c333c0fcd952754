//! IKEv1: `crypto isakmp policy|key|keepalive|nat keepalive`, the
//! `ipsec-isakmp` crypto map entries and the dynamic maps they reference,
//! compiled into the [`Ikev1Policy`] the engine negotiates with. The SPD
//! rules of these entries protect with no SA yet: their first packet is
//! dropped and raises an acquire, as in IOS.

use std::net::IpAddr;

use dataplane::spd::PolicyTag;

use super::super::error::{ErrorKind, Span, Spanned};
use super::super::ike::{IkeCipher, IkeHash, IsakmpMapEntry, KeyPeer, SaLifetime};
use super::super::model::{AclAction, Interface, TransformMode};
use super::super::resolve::{local_address_for, ResolvedInterface};
use super::cascade::{acl_lines, AclLine};
use super::Cx;
use crate::ike::crypto::DhGroup;
use crate::ikev1::policy::{
    Dpd, EspTransform, IpsecLifetime, IsakmpProposal, MapEntry, PresharedKey,
    DEFAULT_ISAKMP_LIFETIME,
};
use crate::ikev1::Ikev1Policy;

/// One compiled `ipsec-isakmp` entry: its SPD lines (none for a dynamic
/// map entry without `match address`: it protects what peers negotiate)
/// and what the engine needs.
pub(super) struct IsakmpEntry {
    pub(super) acl_lines: Vec<AclLine>,
    pub(super) entry: MapEntry,
    /// `set ikev2-profile`: negotiated with IKEv2 instead of IKEv1.
    pub(super) ikev2_profile: Option<Spanned<String>>,
}

/// Where an entry is written and what it runs on.
pub(super) struct EntrySite<'a> {
    /// How errors name it (`crypto map M 10`, `crypto dynamic-map D 10`).
    pub(super) id: String,
    pub(super) span: Span,
    pub(super) iface: &'a Interface,
    pub(super) resolved: &'a ResolvedInterface,
    pub(super) tag: PolicyTag,
    /// The crypto map and sequence it stands at.
    pub(super) map: &'a str,
    pub(super) seq: u32,
    /// The dynamic map's name and sequence, for a dynamic entry.
    pub(super) dynamic: Option<(String, u32)>,
    /// `discover` on the crypto map entry that references the dynamic
    /// map (Tunnel Endpoint Discovery).
    pub(super) discover: bool,
}

/// IOS defaults of a `crypto isakmp policy` that leaves a line out.
const DEFAULT_CIPHER: IkeCipher = IkeCipher::Des;
const DEFAULT_HASH: IkeHash = IkeHash::Sha1;
const DEFAULT_GROUP: u16 = 1;
/// IOS's default DPD retry interval.
const DEFAULT_DPD_RETRY: u32 = 2;

impl<'c> Cx<'c> {
    /// The global IKEv1 settings: policies, keys, keepalives. Map entries
    /// are added by [`Cx::isakmp_entry`].
    pub(super) fn ikev1_globals(&mut self) -> Ikev1Policy {
        let ike = &self.cfg.ike;
        let mut policy = Ikev1Policy::default();
        let mut policies: Vec<_> = ike.isakmp_policies.iter().collect();
        policies.sort_by_key(|p| p.priority);
        for p in policies {
            if !p.pre_share {
                self.warn(
                    p.span,
                    format!(
                        "crypto isakmp policy {} authenticates with RSA signatures (no \
                         \"authentication pre-share\"), which espada does not support: it is never \
                         offered nor accepted",
                        p.priority
                    ),
                );
                continue;
            }
            let id = p.group.unwrap_or(DEFAULT_GROUP);
            let Some(group) = DhGroup::from_id(id) else {
                self.error(
                    ErrorKind::NotSupportedYet,
                    p.span,
                    &id.to_string(),
                    format!(
                        "crypto isakmp policy {}: Diffie-Hellman group {id} is not supported yet \
                         (1, 2, 5, 14, 19, 20 are)",
                        p.priority
                    ),
                );
                continue;
            };
            policy.isakmp.push(IsakmpProposal {
                priority: p.priority,
                cipher: p.encryption.unwrap_or(DEFAULT_CIPHER),
                hash: p.hash.unwrap_or(DEFAULT_HASH),
                group,
                lifetime: p.lifetime.unwrap_or(DEFAULT_ISAKMP_LIFETIME),
            });
        }
        for k in &ike.isakmp_keys {
            match &k.peer {
                KeyPeer::Address(prefix) => policy.keys.push(PresharedKey {
                    peer: *prefix,
                    key: k.key.clone(),
                }),
                KeyPeer::Hostname(h) => self.error(
                    ErrorKind::NotSupportedYet,
                    k.span,
                    h,
                    "crypto isakmp key ... hostname is not supported yet: espada identifies \
                     peers by address (crypto isakmp key KEY address A [MASK])",
                ),
            }
        }
        if let Some(id) = &ike.isakmp_identity {
            if id.value != "address" {
                self.error(
                    ErrorKind::NotSupportedYet,
                    id.span,
                    &id.value,
                    format!(
                        "crypto isakmp identity {} is not supported yet: espada sends its address \
                         (crypto isakmp identity address)",
                        id.value
                    ),
                );
            }
        }
        policy.dpd = ike.isakmp_keepalive.as_ref().map(|k| Dpd {
            interval: k.value.interval,
            retry: k.value.retry.unwrap_or(DEFAULT_DPD_RETRY),
            periodic: k.value.periodic,
        });
        policy.nat_keepalive = ike.isakmp_nat_keepalive.as_ref().map(|k| k.value);
        policy
    }

    /// Checks one `ipsec-isakmp` entry (or one dynamic-map entry standing
    /// in for it); `None` after reporting what is wrong.
    pub(super) fn isakmp_entry(
        &mut self,
        i: &IsakmpMapEntry,
        at: EntrySite<'_>,
    ) -> Option<IsakmpEntry> {
        let EntrySite {
            id,
            span,
            iface,
            resolved,
            tag,
            map,
            seq,
            dynamic,
            discover,
        } = at;
        let id = id.as_str();
        let mut ok = true;
        if let Some(p) = &i.isakmp_profile {
            ok = false;
            self.error(
                ErrorKind::NotSupportedYet,
                p.span,
                "set isakmp-profile",
                format!("{id}: set isakmp-profile is not supported yet"),
            );
        }
        if discover && dynamic.is_none() {
            // `discover` is only parsed after `dynamic NAME`; a static
            // entry has its peers already.
            ok = false;
            self.error(
                ErrorKind::InvalidValue,
                span,
                "discover",
                format!("{id}: discover needs a dynamic map (crypto map NAME SEQ ipsec-isakmp dynamic D discover)"),
            );
        }
        if let (true, Some(p)) = (discover, &i.ikev2_profile) {
            ok = false;
            self.error(
                ErrorKind::NotSupportedYet,
                p.span,
                "set ikev2-profile",
                format!(
                    "{id}: Tunnel Endpoint Discovery (discover) with IKEv2 is not supported yet \
                     (IKEv1 only)"
                ),
            );
        }
        if dynamic.is_none() && i.peers.is_empty() {
            ok = false;
            self.error(
                ErrorKind::Missing,
                span,
                map,
                format!("{id} has no \"set peer\""),
            );
        }
        let mut transforms = Vec::new();
        for name in &i.transform_sets {
            match self.cfg.transform_set(&name.value) {
                Some(ts) => transforms.push(EspTransform {
                    name: ts.name.clone(),
                    enc: ts.enc,
                    auth: ts.auth,
                    tunnel: ts.mode == TransformMode::Tunnel,
                }),
                None => {
                    ok = false;
                    self.error(
                        ErrorKind::Undefined,
                        name.span,
                        &name.value,
                        format!("transform set {} is not defined", name.value),
                    );
                }
            }
        }
        if i.transform_sets.is_empty() {
            ok = false;
            self.error(
                ErrorKind::Missing,
                span,
                map,
                format!("{id} has no \"set transform-set\""),
            );
        }
        let lines = match &i.match_address {
            Some(name) => match self.cfg.acl(&name.value) {
                Some(acl) => acl_lines(acl),
                None => {
                    ok = false;
                    self.error(
                        ErrorKind::Undefined,
                        name.span,
                        &name.value,
                        format!("access list {} is not defined", name.value),
                    );
                    Vec::new()
                }
            },
            None if dynamic.is_some() && !discover => Vec::new(),
            None if discover => {
                // The probe carries the proxy identities of the ACL, and
                // the acquires that trigger it come from its SPD lines.
                ok = false;
                self.error(
                    ErrorKind::Missing,
                    span,
                    map,
                    format!(
                        "{id} has no \"match address\": Tunnel Endpoint Discovery (discover) \
                         needs the crypto ACL to know which traffic to probe for"
                    ),
                );
                Vec::new()
            }
            None => {
                ok = false;
                self.error(
                    ErrorKind::Missing,
                    span,
                    map,
                    format!("{id} has no \"match address\""),
                );
                Vec::new()
            }
        };
        let pfs = match i.pfs {
            None => None,
            Some(g) => {
                match DhGroup::from_id(g) {
                    Some(g) => Some(g),
                    None => {
                        ok = false;
                        self.error(
                        ErrorKind::NotSupportedYet,
                        span,
                        &g.to_string(),
                        format!("{id}: set pfs group{g} is not supported yet (1, 2, 5, 14, 19, 20 are)"),
                    );
                        None
                    }
                }
            }
        };
        let want: IpAddr = i
            .peers
            .first()
            .map_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), |p| p.value);
        let local = local_address_for(&resolved.addrs, want).or_else(|| {
            // A dynamic entry answers peers of either family.
            dynamic.as_ref()?;
            local_address_for(&resolved.addrs, IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
        });
        let Some(local) = local else {
            let fam = if want.is_ipv6() { "IPv6" } else { "IPv4" };
            self.error(
                ErrorKind::Environment,
                span,
                &iface.name,
                format!(
                    "interface {} has no {fam} address to reach {want} from",
                    iface.name
                ),
            );
            return None;
        };
        if !ok {
            return None;
        }
        let selectors = lines
            .iter()
            .filter(|(a, _, _)| *a == AclAction::Permit)
            .map(|(_, s, _)| *s)
            .collect();
        Some(IsakmpEntry {
            acl_lines: lines,
            entry: MapEntry {
                tag,
                map: map.to_string(),
                seq,
                dynamic,
                discover,
                peers: i.peers.iter().map(|p| p.value).collect(),
                local,
                transforms,
                selectors,
                pfs,
                lifetime: self.ipsec_lifetime(&i.lifetime),
                replay_window: 64,
            },
            ikev2_profile: i.ikev2_profile.clone(),
        })
    }

    /// An entry's lifetime over the global one over IOS's defaults.
    pub(super) fn ipsec_lifetime(&self, entry: &SaLifetime) -> IpsecLifetime {
        let global = &self.cfg.ike.sa_lifetime;
        let d = IpsecLifetime::default();
        IpsecLifetime {
            seconds: entry.seconds.or(global.seconds).unwrap_or(d.seconds),
            kilobytes: entry.kilobytes.or(global.kilobytes).unwrap_or(d.kilobytes),
        }
    }
}
