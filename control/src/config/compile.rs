//! From the IOS model to what the dataplane installs: SAs from
//! `ipsec-manual` crypto map entries, SPD rules from their ACLs, NAT rules
//! from `ip nat inside source`.
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

use std::collections::HashMap;
use std::net::IpAddr;

use dataplane::api::{Direction, EspMode, Lifetime, NatAction, NatRule, SaKeys, SaParams};
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{IpPrefix, PolicyAction, PolicyTag, PortRange, SpdRule, TrafficSelector};

use super::error::{ConfigError, ErrorKind, Span, Warning};
use super::model::{
    Acl, AclAction, AclKind, Config, CryptoMapEntry, CryptoMapKind, ManualEntry, NatSelector,
    NatSide, SessionKey, TransformMode, TransformSet,
};
use super::resolve::{local_address_for, InterfaceResolver, ResolvedInterface};

/// Upper bound on compiled rules: the deny cascade multiplies rules, and a
/// pathological config must fail with a message, not exhaust memory.
const MAX_RULES: usize = 65_536;

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
    /// Parse and compile warnings, in line order.
    pub warnings: Vec<Warning>,
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
    let out = cx.crypto_maps();
    let nat = cx.nat();
    cx.warnings.sort_by_key(|w| w.span);
    if !cx.errors.is_empty() {
        cx.errors.sort_by_key(|e| e.span);
        return Err(cx.errors);
    }
    let (sas, spd, entries, map_names) = out;
    Ok(Compiled {
        sas,
        spd,
        nat,
        entries,
        map_names,
        warnings: cx.warnings,
    })
}

struct Cx<'c> {
    cfg: &'c Config,
    resolver: &'c dyn InterfaceResolver,
    errors: Vec<ConfigError>,
    warnings: Vec<Warning>,
    resolved: HashMap<String, Option<ResolvedInterface>>,
}

type MapOutput = (Vec<SaParams>, Vec<SpdRule>, Vec<CompiledEntry>, Vec<String>);

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

    /// IKE items are parsed into the model but nothing negotiates them yet:
    /// say so at each one rather than start a gateway that never
    /// protects their traffic.
    fn ike_not_supported(&mut self) {
        let why = "is not supported yet: IKE arrives with the IKEv1/IKEv2 issues; in this build \
                   use crypto map ... ipsec-manual with set session-key";
        for (span, what) in self.cfg.ike.items() {
            self.error(
                ErrorKind::NotSupportedYet,
                span,
                &what,
                format!("{what} {why}"),
            );
        }
        for e in &self.cfg.crypto_maps {
            if let CryptoMapKind::Isakmp(i) = &e.kind {
                let what = match &i.dynamic {
                    Some(d) => format!(
                        "crypto map {} {} ipsec-isakmp dynamic {}{}",
                        e.name,
                        e.seq,
                        d.value,
                        if i.discover { " discover" } else { "" }
                    ),
                    None => format!("crypto map {} {} ipsec-isakmp", e.name, e.seq),
                };
                self.error(
                    ErrorKind::NotSupportedYet,
                    e.span,
                    &what,
                    format!("{what} {why}"),
                );
            }
        }
        for i in &self.cfg.interfaces {
            if let Some(span) = i.tunnel.span() {
                self.error(
                    ErrorKind::NotSupportedYet,
                    span,
                    "tunnel",
                    format!(
                        "interface {}: tunnel interfaces (VTI, tunnel protection) are not supported yet; \
                         use a crypto map on the outside interface",
                        i.name
                    ),
                );
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

    /// Crypto maps in the order IOS evaluates them: maps in the order
    /// interfaces apply them, entries by sequence number.
    fn crypto_maps(&mut self) -> MapOutput {
        let cfg = self.cfg;
        let mut applied: Vec<(&str, &super::model::Interface)> = Vec::new();
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
            applied.push((&map.value, iface));
        }
        let mut unapplied: Vec<&str> = Vec::new();
        for e in &cfg.crypto_maps {
            if !applied.iter().any(|(m, _)| *m == e.name) && !unapplied.contains(&e.name.as_str()) {
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
        for (map_idx, (map, iface)) in applied.iter().enumerate() {
            map_names.push(map.to_string());
            let mut list: Vec<&CryptoMapEntry> =
                cfg.crypto_maps.iter().filter(|e| e.name == *map).collect();
            list.sort_by_key(|e| e.seq);
            for e in list {
                let CryptoMapKind::Manual(m) = &e.kind else {
                    continue;
                };
                let tag = PolicyTag {
                    map: map_idx as u32,
                    seq: e.seq,
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
        (sas, spd, entries, map_names)
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

    /// Checks one manual entry and builds its SAs; `None` after reporting
    /// what is wrong.
    fn manual_entry(
        &mut self,
        e: &CryptoMapEntry,
        m: &ManualEntry,
        iface: &super::model::Interface,
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
        };
        let acl_lines = acl
            .entries
            .iter()
            .map(|l| {
                (
                    l.action,
                    TrafficSelector {
                        src: l.src,
                        dst: l.dst,
                        proto: l.protocol,
                        src_ports: l.src_ports,
                        dst_ports: l.dst_ports,
                    },
                    l.span,
                )
            })
            .collect();
        Some(DoneEntry {
            sas: vec![sa(inb, Direction::Inbound), sa(outb, Direction::Outbound)],
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
                format!("access list {} is empty: {id} protects nothing", name.value),
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

    /// `ip nat inside source` statements, in file order.
    fn nat(&mut self) -> Vec<NatRule> {
        let cfg = self.cfg;
        let mut rules = Vec::new();
        if !cfg.nat.is_empty()
            && !cfg
                .interfaces
                .iter()
                .any(|i| matches!(&i.nat, Some(n) if n.value == NatSide::Inside))
        {
            self.warn(cfg.nat[0].span, "no interface is marked \"ip nat inside\"");
        }
        for n in &cfg.nat {
            let out = &n.interface;
            if !matches!(cfg.interface(&out.value).and_then(|i| i.nat.as_ref()), Some(s) if s.value == NatSide::Outside)
            {
                self.warn(
                    out.span,
                    format!("interface {} is not marked \"ip nat outside\"", out.value),
                );
            }
            let resolved = self.resolve(&out.value, out.span);
            let stages = match &n.selector {
                NatSelector::List(acl) => self.nat_acl(acl).map(|lines| vec![(lines, true)]),
                NatSelector::RouteMap(rm) => self.nat_route_map(rm),
            };
            let (Some(stages), Some(resolved)) = (stages, resolved) else {
                continue;
            };
            let Some(outside_addr) = resolved.addrs.iter().copied().find(IpAddr::is_ipv4) else {
                self.error(
                    ErrorKind::Environment,
                    out.span,
                    &out.value,
                    format!(
                        "interface {} has no IPv4 address to translate to",
                        out.value
                    ),
                );
                continue;
            };
            let pat = NatAction::Pat {
                outside_ifindex: resolved.ifindex,
                outside_addr,
            };
            let stages: Vec<Stage<NatAction>> = stages
                .into_iter()
                .map(|(lines, permit)| Stage {
                    lines,
                    on_permit: if permit { pat } else { NatAction::Exempt },
                })
                .collect();
            match cascade(&stages, NatAction::Exempt) {
                Ok(r) => rules.extend(
                    r.into_iter()
                        .map(|(selector, action)| NatRule { selector, action }),
                ),
                Err(()) => self.error(
                    ErrorKind::InvalidValue,
                    n.span,
                    "",
                    format!("this NAT statement compiles to more than {MAX_RULES} rules"),
                ),
            }
        }
        rules
    }

    /// An ACL's lines for NAT: IPv4 only.
    fn nat_acl(&mut self, name: &super::error::Spanned<String>) -> Option<Vec<AclLine>> {
        let cfg = self.cfg;
        let Some(acl) = cfg.acl(&name.value) else {
            self.error(
                ErrorKind::Undefined,
                name.span,
                &name.value,
                format!("access list {} is not defined", name.value),
            );
            return None;
        };
        if acl.kind == AclKind::Ipv6 {
            self.error(
                ErrorKind::InvalidValue,
                name.span,
                &name.value,
                "NAT (PAT to the outside address) applies to IPv4 only; this is an IPv6 access list",
            );
            return None;
        }
        Some(
            acl.entries
                .iter()
                .map(|l| {
                    (
                        l.action,
                        TrafficSelector {
                            src: l.src,
                            dst: l.dst,
                            proto: l.protocol,
                            src_ports: l.src_ports,
                            dst_ports: l.dst_ports,
                        },
                        l.span,
                    )
                })
                .collect(),
        )
    }

    /// A route map's entries in sequence order: each is (its ACLs' lines,
    /// whether the entry permits). An entry without `match` matches all.
    fn nat_route_map(
        &mut self,
        name: &super::error::Spanned<String>,
    ) -> Option<Vec<(Vec<AclLine>, bool)>> {
        let cfg = self.cfg;
        let mut entries: Vec<_> = cfg
            .route_maps
            .iter()
            .filter(|r| r.name == name.value)
            .collect();
        if entries.is_empty() {
            self.error(
                ErrorKind::Undefined,
                name.span,
                &name.value,
                format!("route map {} is not defined", name.value),
            );
            return None;
        }
        entries.sort_by_key(|r| r.seq);
        let mut out = Vec::new();
        let mut ok = true;
        for r in entries {
            let mut lines = Vec::new();
            if r.match_acls.is_empty() {
                let any = TrafficSelector {
                    src: IpPrefix::any_v4(),
                    dst: IpPrefix::any_v4(),
                    proto: None,
                    src_ports: PortRange::ANY,
                    dst_ports: PortRange::ANY,
                };
                lines.push((AclAction::Permit, any, r.span));
            }
            for acl in &r.match_acls {
                match self.nat_acl(acl) {
                    Some(l) => lines.extend(l),
                    None => ok = false,
                }
            }
            out.push((lines, r.action == AclAction::Permit));
        }
        ok.then_some(out)
    }
}

type AclLine = (AclAction, TrafficSelector, Span);

struct DoneEntry {
    sas: Vec<SaParams>,
    acl_lines: Vec<AclLine>,
    entry: CompiledEntry,
}

/// One entry of an IOS first-match chain: its ACL lines and what a permit
/// line does.
struct Stage<A> {
    lines: Vec<AclLine>,
    on_permit: A,
}

/// Flattens a chain of entries into a first-match rule list with the IOS
/// meaning of `deny` ("not this entry; try the next"), as the module doc
/// describes. `deny_action` is what a deny line finally does when no later
/// entry takes the traffic.
fn cascade<A: Copy>(stages: &[Stage<A>], deny_action: A) -> Result<Vec<(TrafficSelector, A)>, ()> {
    let mut suffix: Vec<(TrafficSelector, A)> = Vec::new();
    for stage in stages.iter().rev() {
        let mut rules = Vec::new();
        for (action, sel, _) in &stage.lines {
            match action {
                AclAction::Permit => rules.push((*sel, stage.on_permit)),
                AclAction::Deny => {
                    rules.extend(
                        suffix
                            .iter()
                            .filter_map(|(s, a)| intersect(s, sel).map(|i| (i, *a))),
                    );
                    rules.push((*sel, deny_action));
                }
            }
            if rules.len() + suffix.len() > MAX_RULES {
                return Err(());
            }
        }
        rules.extend(suffix);
        suffix = rules;
    }
    Ok(suffix)
}

/// The flows both selectors match, if any.
pub fn intersect(a: &TrafficSelector, b: &TrafficSelector) -> Option<TrafficSelector> {
    let proto = match (a.proto, b.proto) {
        (None, p) | (p, None) => p,
        (Some(p), Some(q)) if p == q => Some(p),
        _ => return None,
    };
    Some(TrafficSelector {
        src: prefix_intersect(&a.src, &b.src)?,
        dst: prefix_intersect(&a.dst, &b.dst)?,
        proto,
        src_ports: ports_intersect(a.src_ports, b.src_ports)?,
        dst_ports: ports_intersect(a.dst_ports, b.dst_ports)?,
    })
}

/// Two prefixes overlap only if one contains the other; the overlap is the
/// longer one.
fn prefix_intersect(a: &IpPrefix, b: &IpPrefix) -> Option<IpPrefix> {
    if a.prefix_len() <= b.prefix_len() && a.contains(&b.addr()) {
        Some(*b)
    } else if b.prefix_len() <= a.prefix_len() && b.contains(&a.addr()) {
        Some(*a)
    } else {
        None
    }
}

fn ports_intersect(a: PortRange, b: PortRange) -> Option<PortRange> {
    let lo = a.lo.max(b.lo);
    let hi = a.hi.min(b.hi);
    (lo <= hi).then_some(PortRange { lo, hi })
}
