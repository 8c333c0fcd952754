//! Virtual tunnel interfaces, as an equivalent route-based SPD plus a
//! Linux TUN device of the same name for the gateway's own traffic. Each
//! `interface TunnelN` with
//! `tunnel mode ipsec ipv4|ipv6`, `tunnel source`, `tunnel destination`
//! and `tunnel protection ipsec profile P` becomes
//!
//! - one IKEv1 [`MapEntry`] named as IOS names it (`TunnelN-head-0`), with
//!   its own [`PolicyTag`]: the destination as peer, the source
//!   interface's address of the tunnel's family as local end, the
//!   profile's transform sets (always tunnel mode: IOS ignores
//!   `mode transport` on a VTI), its PFS group and lifetimes, and one
//!   selector, any to any of the tunnel's family (the proxies IOS
//!   negotiates for a VTI: `0.0.0.0/0` or `::/0`, all protocols);
//! - SPD rules protecting, with that tag, what IOS would route into the
//!   tunnel: every static route whose target is the tunnel interface
//!   (`ip route P M TunnelN`, `ipv6 route P/L TunnelN`) and the tunnel's
//!   own connected subnets (its `ip address` / global `ipv6 address`
//!   lines of the tunnel's family), from any source.
//!
//! - a [`TunnelInterfaceSpec`]: the TUN device the dataplane creates
//!   (`dataplane::tunif`), with the tunnel's addresses of its family
//!   (link-local included) and its routes, which the control process
//!   gives the kernel, so that the gateway's own traffic (seed 001's
//!   `ping FE80::23:3`) goes through the tunnel as on IOS.
//!
//! Routes to a tunnel are explicit, so these rules go before the crypto
//! maps' rules, longest destination prefix first (the routing table's
//! longest match).
//!
//! The tunnel source interface is the dataplane's outside interface, as a
//! crypto map interface is; one outside interface for all.

use std::net::IpAddr;

use dataplane::spd::{IpPrefix, PolicyAction, PolicyTag, PortRange, SpdRule, TrafficSelector};

use super::super::error::{ErrorKind, Span, Spanned};
use super::super::ike::TunnelMode;
use super::super::model::{Interface, RouteTarget};
use super::super::resolve::local_address_for;
use super::crypto_map::{IkeMapEntry, MapOutput};
use super::Cx;
use crate::ike::crypto::DhGroup;
use crate::ikev1::policy::{EspTransform, MapEntry};

/// The sequence number IOS shows for a VTI's crypto map
/// (`Crypto Map "Tunnel0-head-0" 65536 ipsec-isakmp`).
pub const VTI_SEQ: u32 = 65_536;

/// The tunnel interface's MTU over an IPv4 outside: 1500 less the largest
/// ESP overhead Espada adds (IPv4 header, UDP for NAT-T, ESP header, a
/// 16-byte IV, 17 bytes of padding and trailer, a 16-byte ICV: 85),
/// rounded down. The gateway's own packets larger than that are
/// fragmented by its kernel or refused with "packet too big".
pub const VTI_MTU_V4: u16 = 1400;
/// The same over an IPv6 outside (20 bytes more of outer header).
pub const VTI_MTU_V6: u16 = 1380;

/// What the kernel side of one VTI is: the dataplane's TUN device and
/// what the control process configures on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelInterfaceSpec {
    /// The interface's name, as in the configuration (`Tunnel23`).
    pub name: String,
    /// Its crypto map entry (`Tunnel23-head-0`).
    pub tag: PolicyTag,
    pub mtu: u16,
    /// `tunnel mode ipsec ipv6`: it carries IPv6 (else IPv4) only.
    pub ipv6: bool,
    /// Its addresses of the tunnel's family, with prefix lengths; an IPv6
    /// link-local one as /64.
    pub addrs: Vec<(IpAddr, u8)>,
    /// The static routes into it (`ipv6 route fd00:b::/64 Tunnel23`).
    pub routes: Vec<IpPrefix>,
}

/// IOS's name of the crypto map it builds for tunnel interface `name`.
pub fn vti_map_name(name: &str) -> String {
    format!("{name}-head-0")
}

/// Any to any of one family, all protocols.
fn any_any(v6: bool) -> TrafficSelector {
    let any = if v6 {
        IpPrefix::any_v6()
    } else {
        IpPrefix::any_v4()
    };
    TrafficSelector {
        src: any,
        dst: any,
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    }
}

/// fe80::/10.
fn link_local_prefix() -> IpPrefix {
    IpPrefix::new(
        IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0)),
        10,
    )
    .unwrap_or_else(IpPrefix::any_v6)
}

/// A tunnel's addresses of its own family: the kernel routes only that
/// family into it (an IPv4 address on an IPv6 tunnel would route IPv4 into
/// an SA whose selectors refuse it).
fn tunnel_addrs(iface: &Interface, v6: bool) -> Vec<(IpAddr, u8)> {
    if v6 {
        iface
            .ipv6
            .iter()
            .map(|a| (IpAddr::V6(a.value.addr), a.value.len))
            .collect()
    } else {
        iface
            .ipv4
            .iter()
            .map(|a| (IpAddr::V4(a.value.0), a.value.1))
            .collect()
    }
}

impl<'c> Cx<'c> {
    /// Compiles every tunnel interface into `out`: entries after the crypto
    /// maps' (tags numbered after theirs), rules before theirs.
    pub(super) fn vtis(&mut self, out: &mut MapOutput) {
        let cfg = self.cfg;
        let mut rules: Vec<SpdRule> = Vec::new();
        let mut outside: Option<(String, String)> = out
            .outside
            .as_ref()
            .map(|o| (o.clone(), "a crypto map".to_string()));
        for iface in cfg.interfaces.iter().filter(|i| i.tunnel.is_configured()) {
            let Some((entry, ikev2_profile, source_if, span)) =
                self.vti_entry(iface, out.map_names.len())
            else {
                continue;
            };
            match &outside {
                Some((o, _)) if *o == source_if => {}
                Some((o, what)) => {
                    let msg = format!(
                        "interface {}: tunnel source {source_if} is not the outside interface \
                         {o} (of {what}); VTIs and crypto maps on two interfaces are not \
                         supported yet: the dataplane serves one outside interface",
                        iface.name
                    );
                    self.error(ErrorKind::NotSupportedYet, span, &source_if, msg);
                    continue;
                }
                None => outside = Some((source_if, format!("interface {}", iface.name))),
            }
            let v6 = entry.local.is_ipv6();
            if !dataplane::tunif::valid_name(&iface.name) {
                let msg = format!(
                    "interface {}: a tunnel interface becomes a Linux interface of that name, \
                     which must be 1 to {} bytes without '/', ':' or white space",
                    iface.name,
                    dataplane::tunif::MAX_NAME_LEN
                );
                self.error(ErrorKind::InvalidValue, iface.span, &iface.name, msg);
                continue;
            }
            let routes = self.kernel_routes(iface, v6, &out.isakmp);
            out.tunnels.push(TunnelInterfaceSpec {
                name: iface.name.clone(),
                tag: entry.tag,
                mtu: if v6 { VTI_MTU_V6 } else { VTI_MTU_V4 },
                ipv6: v6,
                addrs: tunnel_addrs(iface, v6),
                routes,
            });
            for dst in self.vti_destinations(iface, v6) {
                rules.push(SpdRule {
                    selector: TrafficSelector { dst, ..any_any(v6) },
                    action: PolicyAction::Protect {
                        sa: None,
                        map: entry.tag,
                    },
                });
            }
            // Link-local to link-local over the tunnel (seed 001's `ping
            // FE80::23:3`, with no other address or route on Tunnel23):
            // a rule of the entry's own, so that its SAs are negotiated
            // and bound for what the kernel sends into the interface.
            // Forwarded traffic never matches it: a router forwards
            // nothing link-local.
            if v6
                && iface
                    .ipv6
                    .iter()
                    .any(|a| a.value.addr.is_unicast_link_local())
            {
                let ll = link_local_prefix();
                rules.push(SpdRule {
                    selector: TrafficSelector {
                        src: ll,
                        dst: ll,
                        ..any_any(true)
                    },
                    action: PolicyAction::Protect {
                        sa: None,
                        map: entry.tag,
                    },
                });
            }
            out.map_names.push(entry.map.clone());
            out.isakmp.push(IkeMapEntry {
                entry,
                ikev2_profile,
            });
        }
        // Longest match first, as the routing table would pick; stable, so
        // equal lengths keep file order.
        rules.sort_by_key(|r| std::cmp::Reverse(r.selector.dst.prefix_len()));
        rules.append(&mut out.spd);
        out.spd = rules;
        out.outside = outside.map(|(o, _)| o);
    }

    /// Checks one tunnel interface and builds its entry; also returns the
    /// source interface's name and the span to report it at. `None` after
    /// reporting what is wrong.
    #[allow(clippy::type_complexity)]
    fn vti_entry(
        &mut self,
        iface: &Interface,
        map_idx: usize,
    ) -> Option<(MapEntry, Option<Spanned<String>>, String, Span)> {
        let cfg = self.cfg;
        let t = &iface.tunnel;
        let name = &iface.name;
        let mut ok = true;
        if let Some(m) = &iface.crypto_map {
            ok = false;
            self.error(
                ErrorKind::NotSupportedYet,
                m.span,
                &m.value,
                format!("interface {name}: a crypto map on a tunnel interface is not supported"),
            );
        }
        let mode = match &t.mode {
            Some(m) => Some(m.value),
            None => {
                ok = false;
                self.error(
                    ErrorKind::NotSupportedYet,
                    iface.span,
                    name,
                    format!(
                        "interface {name} has no \"tunnel mode ipsec ipv4|ipv6\": IOS's default, \
                         tunnel mode gre ip (GRE over IPsec), is not supported yet"
                    ),
                );
                None
            }
        };
        let v6 = mode == Some(TunnelMode::IpsecIpv6);
        let family = if v6 { "IPv6" } else { "IPv4" };
        let missing = |cx: &mut Self, what: &str| {
            cx.error(
                ErrorKind::Missing,
                iface.span,
                name,
                format!("interface {name} has no \"{what}\""),
            );
        };
        if t.source.is_none() {
            ok = false;
            missing(self, "tunnel source INTERFACE|ADDRESS");
        }
        if t.destination.is_none() {
            ok = false;
            missing(self, "tunnel destination ADDRESS");
        }
        if t.protection.is_none() {
            ok = false;
            missing(self, "tunnel protection ipsec profile NAME");
        }
        if let (Some(d), Some(_)) = (&t.destination, mode) {
            if d.value.is_ipv6() != v6 {
                ok = false;
                let mode = if v6 { "ipv6" } else { "ipv4" };
                self.error(
                    ErrorKind::InvalidValue,
                    d.span,
                    &d.value.to_string(),
                    format!(
                        "interface {name}: tunnel destination {} is not an {family} address, but \
                         the tunnel is \"tunnel mode ipsec {mode}\"",
                        d.value
                    ),
                );
            }
        }
        // The profile.
        let mut transforms = Vec::new();
        let mut pfs = None;
        let mut lifetime = None;
        let mut ikev2_profile = None;
        if let Some(p) = &t.protection {
            match cfg.ike.ipsec_profiles.iter().find(|x| x.name == p.value) {
                None => {
                    ok = false;
                    self.error(
                        ErrorKind::Undefined,
                        p.span,
                        &p.value,
                        format!("crypto ipsec profile {} is not defined", p.value),
                    );
                }
                // Reported by `ike_not_supported` at the profile's line.
                Some(prof) if prof.isakmp_profile.is_some() => {
                    ok = false;
                }
                Some(prof) => {
                    ikev2_profile = prof.ikev2_profile.clone();
                    if prof.transform_sets.is_empty() {
                        ok = false;
                        self.error(
                            ErrorKind::Missing,
                            prof.span,
                            &prof.name,
                            format!(
                                "crypto ipsec profile {} has no \"set transform-set\" (used by \
                                 interface {name})",
                                prof.name
                            ),
                        );
                    }
                    for ts in &prof.transform_sets {
                        match cfg.transform_set(&ts.value) {
                            // IOS ignores `mode transport` on a VTI.
                            Some(s) => transforms.push(EspTransform {
                                name: s.name.clone(),
                                enc: s.enc,
                                auth: s.auth,
                                tunnel: true,
                            }),
                            None => {
                                ok = false;
                                self.error(
                                    ErrorKind::Undefined,
                                    ts.span,
                                    &ts.value,
                                    format!("transform set {} is not defined", ts.value),
                                );
                            }
                        }
                    }
                    if let Some(g) = prof.pfs {
                        match DhGroup::from_id(g) {
                            Some(g) => pfs = Some(g),
                            None => {
                                ok = false;
                                self.error(
                                    ErrorKind::NotSupportedYet,
                                    prof.span,
                                    &g.to_string(),
                                    format!(
                                        "crypto ipsec profile {}: set pfs group{g} is not \
                                         supported yet (1, 2, 5, 14, 19, 20 are)",
                                        prof.name
                                    ),
                                );
                            }
                        }
                    }
                    lifetime = Some(self.ipsec_lifetime(&prof.lifetime));
                }
            }
        }
        // The source: an interface (the usual form) or one of its addresses.
        let src = t.source.as_ref()?;
        let (source_if, resolved, fixed) = match src.value.parse::<IpAddr>() {
            Ok(a) => {
                let found = cfg
                    .interfaces
                    .iter()
                    .filter(|i| !i.tunnel.is_configured())
                    .find_map(|i| {
                        let r = self.resolver.resolve(&i.name)?;
                        r.addrs.contains(&a).then(|| (i.name.clone(), r))
                    });
                let Some((n, r)) = found else {
                    self.error(
                        ErrorKind::Environment,
                        src.span,
                        &src.value,
                        format!(
                            "interface {name}: tunnel source {a} is the address of no configured \
                             interface; name the interface instead (tunnel source IF)"
                        ),
                    );
                    return None;
                };
                let r = self.resolve(&n, src.span).unwrap_or(r);
                (n, r, Some(a))
            }
            Err(_) => {
                if cfg
                    .interface(&src.value)
                    .is_some_and(|i| i.tunnel.is_configured())
                {
                    self.error(
                        ErrorKind::InvalidValue,
                        src.span,
                        &src.value,
                        format!(
                            "interface {name}: tunnel source {} is a tunnel interface; name the \
                             physical (outside) interface",
                            src.value
                        ),
                    );
                    return None;
                }
                let r = self.resolve(&src.value, src.span)?;
                (src.value.clone(), r, None)
            }
        };
        if !ok || mode.is_none() {
            return None;
        }
        let dest = t.destination.as_ref()?;
        let peer = dest.value;
        let local = match fixed {
            Some(a) if a.is_ipv6() == v6 => Some(a),
            Some(_) => None,
            None => local_address_for(&resolved.addrs, peer),
        };
        let Some(local) = local else {
            self.error(
                ErrorKind::Environment,
                src.span,
                &source_if,
                format!(
                    "interface {name}: tunnel source {} has no {family} address to reach {peer} \
                     from",
                    src.value
                ),
            );
            return None;
        };
        let entry = MapEntry {
            tag: PolicyTag {
                map: map_idx as u32,
                seq: VTI_SEQ,
            },
            map: vti_map_name(name),
            seq: VTI_SEQ,
            dynamic: None,
            peers: vec![peer],
            discover: false,
            local,
            transforms,
            selectors: vec![any_any(v6)],
            pfs,
            lifetime: lifetime?,
            replay_window: 64,
        };
        Some((entry, ikev2_profile, source_if, src.span))
    }

    /// The routes into the tunnel that the kernel gets (for the gateway's
    /// own traffic): all of the tunnel's family but those that hold an IKE
    /// peer (a tunnel destination, a crypto map's peer). Through the
    /// tunnel, the gateway's IKE and ESP to that peer would go into a
    /// tunnel to it (`ip route 0.0.0.0 0.0.0.0 Tunnel0`); such a route still
    /// selects what the tunnel protects, with a warning at its line.
    fn kernel_routes(
        &mut self,
        iface: &Interface,
        v6: bool,
        entries: &[IkeMapEntry],
    ) -> Vec<IpPrefix> {
        let cfg = self.cfg;
        let peers: Vec<IpAddr> = cfg
            .interfaces
            .iter()
            .filter_map(|i| i.tunnel.destination.as_ref().map(|d| d.value))
            .chain(entries.iter().flat_map(|e| e.entry.peers.iter().copied()))
            .collect();
        let mut routes = Vec::new();
        for r in &cfg.routes {
            if !matches!(&r.target, RouteTarget::Interface(t) if *t == iface.name)
                || r.prefix.is_ipv6() != v6
            {
                continue;
            }
            match peers.iter().find(|p| r.prefix.contains(p)) {
                Some(peer) => self.warn(
                    r.span,
                    format!(
                        "the kernel does not get this route into {}: {} holds the IKE peer \
                         {peer}, whose IKE and ESP would then go into the tunnel (it still \
                         selects what the tunnel protects)",
                        iface.name, r.prefix
                    ),
                ),
                None => routes.push(r.prefix),
            }
        }
        routes
    }

    /// What IOS routes into the tunnel: its static routes, then its
    /// connected subnets of the tunnel's family. A route of the other family
    /// is an error at its line.
    fn vti_destinations(&mut self, iface: &Interface, v6: bool) -> Vec<IpPrefix> {
        let cfg = self.cfg;
        let mut dsts = Vec::new();
        for r in &cfg.routes {
            if !matches!(&r.target, RouteTarget::Interface(t) if *t == iface.name) {
                continue;
            }
            if r.prefix.is_ipv6() != v6 {
                let (fam, mode) = if v6 {
                    ("IPv6", "ipv6")
                } else {
                    ("IPv4", "ipv4")
                };
                self.error(
                    ErrorKind::InvalidValue,
                    r.span,
                    &iface.name,
                    format!(
                        "interface {} carries {fam} only (tunnel mode ipsec {mode}); this route \
                         cannot use it",
                        iface.name
                    ),
                );
                continue;
            }
            dsts.push(r.prefix);
            // The route does something here: it selects what the tunnel
            // protects. Drop the parser's "recorded but not installed".
            self.warnings
                .retain(|w| !(w.span == r.span && w.message.starts_with("route to ")));
        }
        let connected: Vec<IpPrefix> = if v6 {
            iface
                .ipv6
                .iter()
                .filter(|a| !a.value.link_local && !a.value.addr.is_unicast_link_local())
                .filter_map(|a| IpPrefix::new(IpAddr::V6(a.value.addr), a.value.len))
                .collect()
        } else {
            iface
                .ipv4
                .iter()
                .filter_map(|a| IpPrefix::new(IpAddr::V4(a.value.0), a.value.1))
                .collect()
        };
        for p in connected {
            if !dsts.contains(&p) {
                dsts.push(p);
            }
        }
        dsts
    }
}
