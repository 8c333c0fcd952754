//! Crypto maps: the `ipsec-manual` entries' checks, their SAs and the
//! stages of the SPD cascade, in the order IOS evaluates them.

use std::net::IpAddr;

use dataplane::api::{Direction, EspMode, Lifetime, SaKeys, SaParams};
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{IpPrefix, PolicyAction, PolicyTag, SpdRule, TrafficSelector};

use super::super::error::{ErrorKind, Spanned};
use super::super::ike::IsakmpMapEntry;
use super::super::model::{
    Acl, AclAction, AclKind, CryptoMapEntry, CryptoMapKind, Interface, ManualEntry, SessionKey,
    TransformMode, TransformSet,
};
use super::super::resolve::local_address_for;
use super::cascade::{acl_lines, any_v4, cascade, AclLine, Stage, MAX_RULES};
use super::isakmp::{EntrySite, IsakmpEntry};
use super::{CompiledEntry, Cx};
use crate::ikev1::MapEntry;

/// What the crypto maps compile to; see [`super::Compiled`].
pub(super) struct MapOutput {
    pub(super) sas: Vec<SaParams>,
    pub(super) spd: Vec<SpdRule>,
    pub(super) entries: Vec<CompiledEntry>,
    pub(super) map_names: Vec<String>,
    pub(super) outside: Option<String>,
    /// The `ipsec-isakmp` entries (and VTIs), in the order the map tries
    /// them, each with the IKEv2 profile that makes it an IKEv2 entry.
    pub(super) isakmp: Vec<IkeMapEntry>,
    /// The VTIs' TUN devices, in file order.
    pub(super) tunnels: Vec<super::vti::TunnelInterfaceSpec>,
}

/// One IKE-keyed entry: IKEv1 unless it names an IKEv2 profile
/// (`set ikev2-profile`, directly or through its IPsec profile).
pub(super) struct IkeMapEntry {
    pub(super) entry: MapEntry,
    pub(super) ikev2_profile: Option<Spanned<String>>,
}

struct DoneEntry {
    sas: Vec<SaParams>,
    acl_lines: Vec<AclLine>,
    entry: CompiledEntry,
}

impl<'c> Cx<'c> {
    /// Crypto maps in the order IOS evaluates them: maps in the order
    /// interfaces apply them, entries by sequence number.
    pub(super) fn crypto_maps(&mut self) -> MapOutput {
        let cfg = self.cfg;
        let mut applied: Vec<(&str, &Interface)> = Vec::new();
        for iface in &cfg.interfaces {
            let Some(map) = &iface.crypto_map else {
                continue;
            };
            if let Some((_, other)) = applied.iter().find(|(m, _)| *m == map.value) {
                let msg = format!(
                    "crypto map {} is already applied to interface {}; espada needs one \
                     interface (one local address) per map",
                    map.value, other.name
                );
                self.error(ErrorKind::Duplicate, map.span, &map.value, msg);
                continue;
            }
            if !cfg.crypto_maps.iter().any(|e| e.name == map.value) {
                self.error(
                    ErrorKind::Undefined,
                    map.span,
                    &map.value,
                    format!("crypto map {} is not defined", map.value),
                );
                continue;
            }
            if let Some((_, first)) = applied.first() {
                // The dataplane has one outside (ESP) interface.
                let msg = format!(
                    "crypto maps on two interfaces ({} and {}) are not supported yet: the \
                     dataplane serves one outside interface",
                    first.name, iface.name
                );
                self.error(ErrorKind::NotSupportedYet, map.span, &map.value, msg);
                continue;
            }
            applied.push((&map.value, iface));
        }
        // A map an interface names but that was refused above has its
        // error already; only a map no interface names is unapplied.
        let named = |map: &str| {
            cfg.interfaces
                .iter()
                .any(|i| i.crypto_map.as_ref().is_some_and(|m| m.value == map))
        };
        let mut unapplied: Vec<&str> = Vec::new();
        for e in &cfg.crypto_maps {
            if !named(&e.name) && !unapplied.contains(&e.name.as_str()) {
                unapplied.push(&e.name);
                if matches!(e.kind, CryptoMapKind::Manual(_)) {
                    self.error(
                        ErrorKind::Missing,
                        e.span,
                        &e.name,
                        format!(
                            "crypto map {} is applied to no interface; add \"crypto map {}\" under \
                             the outside interface",
                            e.name, e.name
                        ),
                    );
                }
            }
        }

        let mut sas = Vec::new();
        let mut entries = Vec::new();
        let mut stages: Vec<Stage<PolicyAction>> = Vec::new();
        let mut map_names = Vec::new();
        let mut isakmp = Vec::new();
        for (map_idx, (map, iface)) in applied.iter().enumerate() {
            map_names.push(map.to_string());
            let mut list: Vec<&CryptoMapEntry> =
                cfg.crypto_maps.iter().filter(|e| e.name == *map).collect();
            list.sort_by_key(|e| e.seq);
            for e in list {
                let tag = PolicyTag {
                    map: map_idx as u32,
                    seq: e.seq,
                };
                let m = match &e.kind {
                    CryptoMapKind::Manual(m) => m,
                    CryptoMapKind::Isakmp(i) => {
                        for done in self.isakmp_entries(e, i, iface, tag) {
                            if !done.acl_lines.is_empty() {
                                stages.push(Stage {
                                    lines: done.acl_lines,
                                    on_permit: PolicyAction::Protect { sa: None, map: tag },
                                });
                            }
                            isakmp.push(IkeMapEntry {
                                entry: done.entry,
                                ikev2_profile: done.ikev2_profile,
                            });
                        }
                        continue;
                    }
                };
                let Some(done) = self.manual_entry(e, m, iface, tag) else {
                    continue;
                };
                stages.push(Stage {
                    lines: done.acl_lines,
                    on_permit: PolicyAction::Protect {
                        sa: Some(done.entry.outbound_spi),
                        map: tag,
                    },
                });
                sas.extend(done.sas);
                entries.push(done.entry);
            }
        }
        let spd = match cascade(&stages, PolicyAction::Bypass) {
            Ok(rules) => rules
                .into_iter()
                .map(|(selector, action)| SpdRule { selector, action })
                .collect(),
            Err(()) => {
                let span = stages
                    .first()
                    .and_then(|s| s.lines.first())
                    .map(|l| l.2)
                    .unwrap_or_default();
                self.error(
                    ErrorKind::InvalidValue,
                    span,
                    "",
                    format!("the crypto ACLs compile to more than {MAX_RULES} rules; simplify the deny lines"),
                );
                Vec::new()
            }
        };
        MapOutput {
            sas,
            spd,
            entries,
            map_names,
            outside: applied.first().map(|(_, i)| i.name.clone()),
            isakmp,
            tunnels: Vec::new(),
        }
    }

    /// An `ipsec-isakmp` entry, or the entries of the dynamic map it
    /// references (in sequence order, sharing its tag).
    fn isakmp_entries(
        &mut self,
        e: &CryptoMapEntry,
        i: &'c IsakmpMapEntry,
        iface: &Interface,
        tag: PolicyTag,
    ) -> Vec<IsakmpEntry> {
        let map_span = iface
            .crypto_map
            .as_ref()
            .map(|c| c.span)
            .unwrap_or(iface.span);
        let Some(resolved) = self.resolve(&iface.name, map_span) else {
            return Vec::new();
        };
        let Some(dyn_name) = &i.dynamic else {
            let at = EntrySite {
                id: format!("crypto map {} {}", e.name, e.seq),
                span: e.span,
                iface,
                resolved: &resolved,
                tag,
                map: &e.name,
                seq: e.seq,
                dynamic: None,
                discover: i.discover,
            };
            return self.isakmp_entry(i, at).into_iter().collect();
        };
        let cfg = self.cfg;
        let mut dyns: Vec<_> = cfg
            .ike
            .dynamic_maps
            .iter()
            .filter(|d| d.name == dyn_name.value)
            .collect();
        if dyns.is_empty() {
            self.error(
                ErrorKind::Undefined,
                dyn_name.span,
                &dyn_name.value,
                format!("crypto dynamic-map {} is not defined", dyn_name.value),
            );
            return Vec::new();
        }
        dyns.sort_by_key(|d| d.seq);
        dyns.into_iter()
            .filter_map(|d| {
                let at = EntrySite {
                    id: format!("crypto dynamic-map {} {}", d.name, d.seq),
                    span: d.span,
                    iface,
                    resolved: &resolved,
                    tag,
                    map: &e.name,
                    seq: e.seq,
                    dynamic: Some((d.name.clone(), d.seq)),
                    discover: i.discover,
                };
                self.isakmp_entry(&d.entry, at)
            })
            .collect()
    }

    /// Checks one manual entry and builds its SAs; `None` after reporting
    /// what is wrong.
    fn manual_entry(
        &mut self,
        e: &CryptoMapEntry,
        m: &ManualEntry,
        iface: &Interface,
        tag: PolicyTag,
    ) -> Option<DoneEntry> {
        let id = format!("crypto map {} {}", e.name, e.seq);
        let ts = self.transform_set_of(e, m, &id);
        let acl = self.acl_of(e, m, &id);
        let peer = m.peer.as_ref().map(|p| p.value);
        if peer.is_none() {
            self.error(
                ErrorKind::Missing,
                e.span,
                &e.name,
                format!("{id} has no \"set peer\""),
            );
        }
        let mut missing_key = false;
        for (k, dir) in [(&m.inbound, "inbound"), (&m.outbound, "outbound")] {
            if k.is_none() {
                missing_key = true;
                self.error(
                    ErrorKind::Missing,
                    e.span,
                    &e.name,
                    format!("{id} has no \"set session-key {dir} esp ...\""),
                );
            }
        }
        if iface.shutdown {
            let span = iface
                .crypto_map
                .as_ref()
                .map(|c| c.span)
                .unwrap_or(iface.span);
            self.warn(
                span,
                format!(
                    "interface {} is shut down in the config, but espada leaves link state to the \
                     kernel: {id} is installed anyway",
                    iface.name
                ),
            );
        }
        let map_span = iface
            .crypto_map
            .as_ref()
            .map(|c| c.span)
            .unwrap_or(iface.span);
        let resolved = self.resolve(&iface.name, map_span);
        let (ts, acl, peer, resolved) = (ts?, acl?, peer?, resolved?);
        if missing_key {
            return None;
        }
        let (inb, outb) = (m.inbound.as_ref()?, m.outbound.as_ref()?);
        let keys_ok = self.check_keys(ts, inb, "inbound") & self.check_keys(ts, outb, "outbound");
        let Some(local) = local_address_for(&resolved.addrs, peer) else {
            let fam = if peer.is_ipv6() { "IPv6" } else { "IPv4" };
            self.error(
                ErrorKind::Environment,
                map_span,
                &iface.name,
                format!(
                    "interface {} has no {fam} address to reach peer {peer} from",
                    iface.name
                ),
            );
            return None;
        };
        if !keys_ok {
            return None;
        }
        self.check_acl_against_endpoints(acl, ts.mode, local, peer);
        let mode = match ts.mode {
            TransformMode::Tunnel => EspMode::Tunnel {
                local,
                remote: peer,
            },
            TransformMode::Transport => EspMode::Transport,
        };
        let acl_lines = acl_lines(acl);
        // What the peer may send through the pair: the lines that protect.
        let permitted: Vec<TrafficSelector> = acl_lines
            .iter()
            .filter(|(action, _, _)| *action == AclAction::Permit)
            .map(|(_, selector, _)| *selector)
            .collect();
        let sa = |k: &SessionKey, direction| SaParams {
            spi: k.spi.value,
            direction,
            enc: ts.enc,
            auth: ts.auth,
            keys: SaKeys {
                enc: k
                    .cipher
                    .as_ref()
                    .map(|c| c.value.expose().to_vec())
                    .unwrap_or_default(),
                auth: k
                    .authenticator
                    .as_ref()
                    .map(|c| c.value.expose().to_vec())
                    .unwrap_or_default(),
            },
            mode,
            udp_encap: None,
            esn: false,
            replay_window: 0,
            lifetime: Lifetime::default(),
            selectors: permitted.clone(),
        };
        // With no line to protect, the pair would carry no traffic of ours
        // and, having no selectors, admit whatever the peer decrypted
        // through it: no SAs, so its ESP is dropped as `no-sa`.
        let sas = if permitted.is_empty() {
            if !acl.entries.is_empty() {
                self.warn(
                    e.span,
                    format!(
                        "{id}: its access list has no permit line, so it protects nothing; its \
                         session keys are not installed"
                    ),
                );
            }
            Vec::new()
        } else {
            vec![sa(inb, Direction::Inbound), sa(outb, Direction::Outbound)]
        };
        let proxy = acl_lines
            .iter()
            .find(|(action, _, _)| *action == AclAction::Permit)
            .or(acl_lines.first())
            .map_or_else(any_v4, |(_, selector, _)| *selector);
        Some(DoneEntry {
            sas,
            acl_lines,
            entry: CompiledEntry {
                map: e.name.clone(),
                seq: e.seq,
                tag,
                interface: iface.name.clone(),
                ifindex: resolved.ifindex,
                local,
                peer,
                transform_set: ts.name.clone(),
                inbound_spi: inb.spi.value,
                outbound_spi: outb.spi.value,
                proxy,
            },
        })
    }

    /// Two classic mistakes, legal but seldom meant. In tunnel mode, a
    /// permit line that also matches traffic between the two endpoints
    /// (`permit ip any any`) protects the gateways' own packets (IKE, pings)
    /// too. In transport mode, a line matching anything but the endpoints'
    /// own traffic asks to protect forwarded packets, which transport mode
    /// cannot carry.
    fn check_acl_against_endpoints(
        &mut self,
        acl: &Acl,
        mode: TransformMode,
        local: IpAddr,
        peer: IpAddr,
    ) {
        for line in acl.entries.iter().filter(|l| l.action == AclAction::Permit) {
            let msg = match mode {
                TransformMode::Tunnel if line.src.contains(&local) && line.dst.contains(&peer) => format!(
                    "this line also matches traffic between the tunnel endpoints ({local} to {peer}), \
                     such as the gateways' own pings and IKE: it is protected too, as in IOS; \
                     match the protected networks instead"
                ),
                TransformMode::Transport
                    if line.src != IpPrefix::host(local) || line.dst != IpPrefix::host(peer) =>
                {
                    format!(
                        "transport mode carries only traffic between this gateway ({local}) and its \
                         peer ({peer}); this line matches more (write \"host {local} host {peer}\", \
                         or use tunnel mode)"
                    )
                }
                _ => continue,
            };
            self.warn(line.span, msg);
        }
    }

    fn transform_set_of(
        &mut self,
        e: &CryptoMapEntry,
        m: &ManualEntry,
        id: &str,
    ) -> Option<&'c TransformSet> {
        let cfg = self.cfg;
        let Some(name) = &m.transform_set else {
            self.error(
                ErrorKind::Missing,
                e.span,
                &e.name,
                format!("{id} has no \"set transform-set\""),
            );
            return None;
        };
        let ts = cfg.transform_set(&name.value);
        if ts.is_none() {
            self.error(
                ErrorKind::Undefined,
                name.span,
                &name.value,
                format!("transform set {} is not defined", name.value),
            );
        }
        ts
    }

    fn acl_of(&mut self, e: &CryptoMapEntry, m: &ManualEntry, id: &str) -> Option<&'c Acl> {
        let cfg = self.cfg;
        let Some(name) = &m.match_address else {
            self.error(
                ErrorKind::Missing,
                e.span,
                &e.name,
                format!("{id} has no \"match address\""),
            );
            return None;
        };
        let Some(acl) = cfg.acl(&name.value) else {
            self.error(
                ErrorKind::Undefined,
                name.span,
                &name.value,
                format!("access list {} is not defined", name.value),
            );
            return None;
        };
        if acl.kind == AclKind::Standard {
            self.error(
                ErrorKind::InvalidValue,
                name.span,
                &name.value,
                format!(
                    "access list {} is a standard list; a crypto map needs an extended one \
                     (protocol, source and destination)",
                    name.value
                ),
            );
            return None;
        }
        if acl.entries.is_empty() {
            self.warn(
                name.span,
                format!(
                    "access list {} is empty: {id} protects nothing; its session keys are not \
                     installed",
                    name.value
                ),
            );
        }
        Some(acl)
    }

    /// Key lengths against the transform set; reports and returns false on
    /// a mismatch.
    fn check_keys(&mut self, ts: &TransformSet, k: &SessionKey, dir: &str) -> bool {
        let mut ok = true;
        let enc_need = ts.enc.key_len();
        match (&k.cipher, ts.enc) {
            (None, EncAlg::Null) => {}
            (Some(c), EncAlg::Null) => {
                ok = false;
                self.error(
                    ErrorKind::InvalidValue,
                    c.span,
                    "",
                    format!(
                        "transform set {} uses esp-null: the {dir} key takes no cipher",
                        ts.name
                    ),
                );
            }
            (None, enc) => {
                ok = false;
                self.error(
                    ErrorKind::Missing,
                    k.span,
                    "",
                    format!(
                        "the {dir} session key needs \"cipher HEX\" for {}",
                        enc.ios_name()
                    ),
                );
            }
            (Some(c), enc) if c.value.len() != enc_need => {
                ok = false;
                let salt = if enc.is_aead() {
                    format!(
                        ": the {}-byte AES key followed by the 4-byte salt (RFC 4106 §8.1)",
                        enc_need - 4
                    )
                } else {
                    String::new()
                };
                self.error(
                    ErrorKind::InvalidValue,
                    c.span,
                    "",
                    format!(
                        "the {dir} cipher key is {} bytes; {} in transform set {} needs {enc_need} \
                         bytes ({} hex digits){salt}",
                        c.value.len(),
                        enc.ios_name(),
                        ts.name,
                        enc_need * 2
                    ),
                );
            }
            _ => {}
        }
        match (&k.authenticator, ts.auth) {
            (None, AuthAlg::None) => {}
            (Some(a), AuthAlg::None) => {
                ok = false;
                self.error(
                    ErrorKind::InvalidValue,
                    a.span,
                    "",
                    format!(
                        "{} authenticates by itself: the {dir} key takes no authenticator",
                        ts.enc.ios_name()
                    ),
                );
            }
            (None, auth) => {
                ok = false;
                self.error(
                    ErrorKind::Missing,
                    k.span,
                    "",
                    format!(
                        "the {dir} session key needs \"authenticator HEX\" for {}",
                        auth.ios_name()
                    ),
                );
            }
            (Some(a), auth) if a.value.len() != auth.key_len() => {
                ok = false;
                self.error(
                    ErrorKind::InvalidValue,
                    a.span,
                    "",
                    format!(
                        "the {dir} authenticator key is {} bytes; {} needs {} bytes ({} hex digits)",
                        a.value.len(),
                        auth.ios_name(),
                        auth.key_len(),
                        auth.key_len() * 2
                    ),
                );
            }
            _ => {}
        }
        ok
    }
}
