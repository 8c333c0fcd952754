//! From the IOS model to what the dataplane installs: SAs from
//! `ipsec-manual` crypto map entries, SPD rules from their ACLs, NAT rules
//! from `ip nat inside source`, and the interfaces it runs on (the one
//! carrying the crypto map outside, the other live ones inside).
//!
//! ACL semantics follow IOS. In a crypto ACL, `permit` means "protect with
//! this entry" and `deny` means "not with this entry": the packet goes on
//! to the next entry of the map (and is sent in the clear only when no
//! entry protects it). The dataplane's SPD is a flat first-match list, so a
//! deny line D of entry k compiles to the later entries' rules narrowed to
//! D (their intersection with D), followed by D itself as *bypass*; when no
//! later entry overlaps D this is just the bypass rule. The same cascade
//! compiles NAT route maps (`deny` lines of an entry's ACL fall through to
//! the next entry) and NAT ACLs (a `deny` line is a NAT exemption).
//!
//! Manual SAs never expire (IOS shows no lifetime for them) and run without
//! anti-replay (IOS shows "replay detection support: N"): with no IKE to
//! reset the sequence numbers, a peer that restarts would start again at 1
//! and be locked out by our window.
//!
//! - this module: [`compile`], [`Compiled`], the shared checks (interfaces,
//!   SPIs, IKE items) and the dataplane's inside interfaces;
//! - `crypto_map`: the `ipsec-manual` entries, their SAs and key checks;
//! - `nat`: `ip nat inside source` statements;
//! - `cascade`: flattening IOS deny semantics into first-match lists.

mod cascade;
mod crypto_map;
mod ikev2;
mod isakmp;
mod nat;
pub(crate) mod vti;

use std::collections::HashMap;
use std::net::IpAddr;

use dataplane::api::{NatRule, SaParams};
use dataplane::spd::{PolicyTag, SpdRule, TrafficSelector};

use super::error::{ConfigError, ErrorKind, Span, Warning};
use super::model::{Config, CryptoMapKind, NatSide};
use super::resolve::{InterfaceResolver, ResolvedInterface};
use crate::ikev1::Ikev1Policy;
use crate::ikev2::Ikev2Policy;

pub use cascade::intersect;
pub use vti::{vti_map_name, VTI_SEQ};

/// What the dataplane needs from a config, plus what `show` and the CLI
/// report about it.
#[derive(Debug, Clone, Default)]
pub struct Compiled {
    /// Two SAs (inbound, outbound) per `ipsec-manual` entry, in map order.
    pub sas: Vec<SaParams>,
    /// The crypto-map policy, first match wins.
    pub spd: Vec<SpdRule>,
    /// NAT exemption and PAT rules, first match wins.
    pub nat: Vec<NatRule>,
    /// One line per crypto map entry, in the order the SPD uses them.
    pub entries: Vec<CompiledEntry>,
    /// Crypto map names, indexed by [`PolicyTag::map`].
    pub map_names: Vec<String>,
    /// The interface that carries the crypto map: the dataplane's outside
    /// (ESP) interface; `None` when no crypto map is applied. One at most:
    /// the dataplane serves one outside interface.
    pub outside: Option<String>,
    /// The interfaces the dataplane forwards clear traffic on: every
    /// configured interface without a crypto map that is neither shut down,
    /// `ip nat outside` nor a tunnel interface, in file order.
    pub inside: Vec<String>,
    /// Parse and compile warnings, in line order.
    pub warnings: Vec<Warning>,
    /// What IKEv1 negotiates: ISAKMP policies, keys, and the
    /// `ipsec-isakmp` crypto map entries (empty when there are none).
    pub ikev1: Ikev1Policy,
    /// What IKEv2 negotiates: proposals, keyrings, profile settings and
    /// the entries that name an IKEv2 profile (empty when there are none).
    pub ikev2: Ikev2Policy,
    /// The VTIs' TUN devices, for the gateway's own traffic.
    pub tunnels: Vec<vti::TunnelInterfaceSpec>,
}

/// One compiled crypto map entry: its identity and where its SAs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledEntry {
    pub map: String,
    pub seq: u32,
    pub tag: PolicyTag,
    pub interface: String,
    pub ifindex: u32,
    pub local: IpAddr,
    pub peer: IpAddr,
    pub transform_set: String,
    pub inbound_spi: u32,
    pub outbound_spi: u32,
    /// The proxy identities `show crypto ipsec sa` prints as `local ident`
    /// (source) and `remote ident` (destination): the first permit line of
    /// the entry's ACL (its first line if none permits; any IPv4 if it is
    /// empty).
    pub proxy: TrafficSelector,
}

/// Checks every cross reference and compiles `cfg`, resolving interfaces
/// through `resolver`. Returns every error found, not only the first.
pub fn compile(
    cfg: &Config,
    resolver: &dyn InterfaceResolver,
) -> Result<Compiled, Vec<ConfigError>> {
    let mut cx = Cx {
        cfg,
        resolver,
        errors: Vec::new(),
        warnings: cfg.warnings.clone(),
        resolved: HashMap::new(),
    };
    cx.ike_not_supported();
    cx.spi_uniqueness();
    let mut ikev1 = cx.ikev1_globals();
    let mut out = cx.crypto_maps();
    cx.vtis(&mut out);
    let mut v2_entries = Vec::new();
    for e in std::mem::take(&mut out.isakmp) {
        match e.ikev2_profile {
            Some(p) => v2_entries.push((e.entry, p)),
            None => ikev1.maps.push(e.entry),
        }
    }
    cx.ikev1_complete(&ikev1);
    let ikev2 = cx.ikev2(v2_entries);
    let inside = cx.inside_interfaces(out.outside.as_deref());
    let nat = cx.nat();
    cx.warnings.sort_by_key(|w| w.span);
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| e.span);
        return Err(cx.errors);
    }
    Ok(Compiled {
        sas: out.sas,
        spd: out.spd,
        nat,
        entries: out.entries,
        map_names: out.map_names,
        outside: out.outside,
        inside,
        warnings: cx.warnings,
        ikev1,
        ikev2,
        tunnels: out.tunnels,
    })
}

struct Cx<'c> {
    cfg: &'c Config,
    resolver: &'c dyn InterfaceResolver,
    errors: Vec<ConfigError>,
    warnings: Vec<Warning>,
    resolved: HashMap<String, Option<ResolvedInterface>>,
}

impl<'c> Cx<'c> {
    fn error(&mut self, kind: ErrorKind, span: Span, token: &str, msg: impl Into<String>) {
        self.errors.push(ConfigError {
            kind,
            span,
            token: token.to_string(),
            message: msg.into(),
            source_line: self.cfg.source_line(span.line).to_string(),
        });
    }

    fn warn(&mut self, span: Span, msg: impl Into<String>) {
        self.warnings.push(Warning {
            span,
            message: msg.into(),
            source_line: self.cfg.source_line(span.line).to_string(),
        });
    }

    /// IKE items parsed into the model that nothing negotiates yet: say
    /// so at each one rather than start a gateway that never protects
    /// their traffic.
    fn ike_not_supported(&mut self) {
        for (span, what) in self.cfg.ike.unsupported_items() {
            let why = "is not supported yet: ISAKMP profiles arrive later; the global crypto \
                       isakmp policies and keys apply";
            self.error(
                ErrorKind::NotSupportedYet,
                span,
                &what,
                format!("{what} {why}"),
            );
        }
    }

    /// Where an entry is written and how messages name it: a crypto map
    /// entry, or the tunnel interface a VTI entry comes from.
    fn entry_site(&self, e: &crate::ikev1::MapEntry) -> (Span, String) {
        let cfg = self.cfg;
        if let Some(c) = cfg
            .crypto_maps
            .iter()
            .find(|c| c.name == e.map && c.seq == e.seq)
        {
            return (c.span, format!("crypto map {} {}", e.map, e.seq));
        }
        cfg.interfaces
            .iter()
            .find(|i| e.seq == VTI_SEQ && vti_map_name(&i.name) == e.map)
            .map(|i| {
                let span = i.tunnel.protection.as_ref().map_or(i.span, |p| p.span);
                (span, format!("interface {}", i.name))
            })
            .unwrap_or_default()
    }

    /// A config with `ipsec-isakmp` entries needs something to negotiate
    /// with: a pre-shared-key policy and a key for each static peer.
    fn ikev1_complete(&mut self, p: &Ikev1Policy) {
        let Some(first) = p.maps.first() else {
            return;
        };
        let (span, id) = self.entry_site(first);
        if p.isakmp.is_empty() {
            self.error(
                ErrorKind::Missing,
                span,
                &first.map,
                format!(
                    "{id} uses IKE, but no crypto isakmp policy has \"authentication pre-share\""
                ),
            );
        }
        for e in &p.maps {
            let (span, id) = self.entry_site(e);
            for peer in &e.peers {
                if p.key_for(*peer).is_none() {
                    self.error(
                        ErrorKind::Missing,
                        span,
                        &peer.to_string(),
                        format!("{id}: no crypto isakmp key for peer {peer}"),
                    );
                }
            }
        }
    }

    /// The kernel's view of `name`, asked once; an unknown interface is
    /// reported at `span`.
    fn resolve(&mut self, name: &str, span: Span) -> Option<ResolvedInterface> {
        if !self.resolved.contains_key(name) {
            let r = self.resolver.resolve(name);
            if r.is_none() {
                self.error(
                    ErrorKind::Environment,
                    span,
                    name,
                    format!("interface {name} does not exist on this machine"),
                );
            } else if let Some(r) = &r {
                self.check_config_addresses(name, r);
            }
            self.resolved.insert(name.to_string(), r);
        }
        self.resolved.get(name).cloned().flatten()
    }

    /// The config's `ip address` lines against the kernel's addresses.
    fn check_config_addresses(&mut self, name: &str, r: &ResolvedInterface) {
        let Some(iface) = self.cfg.interface(name) else {
            return;
        };
        let mut mismatches = Vec::new();
        for a in &iface.ipv4 {
            if !r.addrs.contains(&IpAddr::V4(a.value.0)) {
                mismatches.push((a.span, IpAddr::V4(a.value.0)));
            }
        }
        for a in &iface.ipv6 {
            if !r.addrs.contains(&IpAddr::V6(a.value.addr)) {
                mismatches.push((a.span, IpAddr::V6(a.value.addr)));
            }
        }
        for (span, a) in mismatches {
            let have: Vec<String> = r.addrs.iter().map(IpAddr::to_string).collect();
            self.warn(
                span,
                format!(
                    "interface {name} does not have {a} (it has {}); the kernel's addresses are used",
                    if have.is_empty() { "none".to_string() } else { have.join(", ") }
                ),
            );
        }
    }

    /// The dataplane's inside interfaces (see [`Compiled::inside`]), each
    /// resolved so that one the kernel lacks is reported here rather than
    /// when the dataplane fails to start.
    fn inside_interfaces(&mut self, outside: Option<&str>) -> Vec<String> {
        let mut inside = Vec::new();
        for i in &self.cfg.interfaces {
            let nat_outside = matches!(&i.nat, Some(n) if n.value == NatSide::Outside);
            if i.crypto_map.is_some()
                || i.shutdown
                || nat_outside
                || i.tunnel.span().is_some()
                || Some(i.name.as_str()) == outside
            {
                continue;
            }
            if self.resolve(&i.name, i.span).is_some() {
                inside.push(i.name.clone());
            }
        }
        inside
    }

    /// Manual SPIs must be unique per direction: the dataplane finds an
    /// inbound SA by its SPI, and the SPD names outbound SAs by theirs.
    /// Checked over every manual entry, in file order.
    fn spi_uniqueness(&mut self) {
        let mut seen: HashMap<(bool, u32), Span> = HashMap::new();
        for e in &self.cfg.crypto_maps {
            let CryptoMapKind::Manual(m) = &e.kind else {
                continue;
            };
            for (key, inbound) in [(&m.inbound, true), (&m.outbound, false)] {
                let Some(k) = key else { continue };
                let Some(prev) = seen.insert((inbound, k.spi.value), k.spi.span) else {
                    continue;
                };
                let dir = if inbound { "inbound" } else { "outbound" };
                self.error(
                    ErrorKind::Duplicate,
                    k.spi.span,
                    &k.spi.value.to_string(),
                    format!(
                        "{dir} SPI {} is already used on line {}; each {dir} SA needs its own SPI",
                        k.spi.value, prev.line
                    ),
                );
            }
        }
    }
}
