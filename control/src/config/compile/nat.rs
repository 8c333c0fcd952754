//! NAT: `ip nat inside source list|route-map ... overload` into exemption
//! and PAT rules.

use std::net::IpAddr;

use dataplane::api::{NatAction, NatRule};

use super::super::error::{ErrorKind, Spanned};
use super::super::model::{AclAction, AclKind, NatSelector, NatSide};
use super::cascade::{acl_lines, any_v4, cascade, AclLine, Stage, MAX_RULES};
use super::Cx;

impl<'c> Cx<'c> {
    /// `ip nat inside source` statements, in file order.
    pub(super) fn nat(&mut self) -> Vec<NatRule> {
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
    fn nat_acl(&mut self, name: &Spanned<String>) -> Option<Vec<AclLine>> {
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
        Some(acl_lines(acl))
    }

    /// A route map's entries in sequence order: each is (its ACLs' lines,
    /// whether the entry permits). An entry without `match` matches all.
    fn nat_route_map(&mut self, name: &Spanned<String>) -> Option<Vec<(Vec<AclLine>, bool)>> {
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
                lines.push((AclAction::Permit, any_v4(), r.span));
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
