//! From a parsed config to what the dataplane installs: SAs from the
//! session keys, SPD rules from the crypto-map ACLs in map order, NAT rules
//! from `ip nat inside source`. Every cross-reference is checked here, with
//! the line of the command that makes it.

use std::collections::HashSet;
use std::net::IpAddr;

use dataplane::api::{EspMode, Lifetime, NatAction, NatRule, SaKeys, SaParams};
use dataplane::crypto::AuthAlg;
use dataplane::spd::{IpPrefix, PolicyAction, PolicyTag, SpdRule};

use super::error::{ConfigError, Warning};
use super::model::{Config, CryptoMapEntry, NameRef};
use crate::daemon::{Deployment, MapEntry};
use crate::show::Ident;

/// What compile needs from the machine: interface names are Linux netdev
/// names, and their index and addresses come from the kernel.
pub trait InterfaceResolver {
    fn ifindex(&self, name: &str) -> Option<u32>;
    fn addrs(&self, name: &str) -> Vec<IpAddr>;
    fn mtu(&self, _name: &str) -> Option<u16> {
        None
    }
}

/// Resolves nothing: `espada config check` on a machine that does not
/// have the config's interfaces uses the config's own addresses.
pub struct ConfigOnly;

impl InterfaceResolver for ConfigOnly {
    fn ifindex(&self, _: &str) -> Option<u32> {
        None
    }
    fn addrs(&self, _: &str) -> Vec<IpAddr> {
        Vec::new()
    }
}

fn err(line: usize, col: usize, message: impl Into<String>) -> ConfigError {
    ConfigError {
        line,
        column: col,
        message: message.into(),
        source_line: String::new(),
        width: 1,
    }
}

fn at(r: &NameRef, message: impl Into<String>) -> ConfigError {
    ConfigError {
        line: r.line,
        column: r.col,
        message: message.into(),
        source_line: String::new(),
        width: r.name.chars().count(),
    }
}

/// Small stable ids for crypto map names in policy tags (the dataplane
/// deals in numbers; names are ours).
fn map_ids(cfg: &Config) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in &cfg.crypto_maps {
        if !names.contains(&m.name) {
            names.push(m.name.clone());
        }
    }
    names
}

/// Compiles a parsed config. `resolver` supplies what the kernel knows;
/// the config's own `ip address` lines fill in when it knows nothing.
pub fn compile(
    cfg: &Config,
    resolver: &dyn InterfaceResolver,
) -> Result<(Deployment, Vec<Warning>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut d = Deployment::default();
    let ids = map_ids(cfg);

    // Entries in IOS order: by map (first appearance), then sequence.
    let mut entries: Vec<&CryptoMapEntry> = cfg.crypto_maps.iter().collect();
    entries.sort_by_key(|e| (ids.iter().position(|n| *n == e.name), e.seq));

    let mut spis = HashSet::new();
    for e in entries {
        match compile_entry(cfg, e, resolver, &ids, &mut spis) {
            Ok((entry, rules)) => {
                d.spd.extend(rules);
                d.entries.push(entry);
            }
            Err(mut es) => errors.append(&mut es),
        }
    }

    for i in &cfg.interfaces {
        if let Some(m) = &i.crypto_map {
            if !cfg.crypto_maps.iter().any(|e| e.name == m.name) {
                errors.push(at(m, format!("crypto map {} is not defined", m.name)));
            }
            if !d.outside.contains(&i.name) {
                d.outside.push(i.name.clone());
            }
        } else if !i.shutdown && !i.nat_outside {
            d.inside.push(i.name.clone());
        }
    }
    for name in &ids {
        if !cfg
            .interfaces
            .iter()
            .any(|i| i.crypto_map.as_ref().is_some_and(|m| &m.name == name))
        {
            let line = cfg
                .crypto_maps
                .iter()
                .find(|e| &e.name == name)
                .map_or(0, |e| e.line);
            warnings.push(Warning {
                line,
                message: format!(
                    "crypto map {name} is applied to no interface: it protects nothing"
                ),
            });
        }
    }
    if d.outside.len() > 1 {
        errors.push(err(
            0,
            0,
            format!(
                "crypto maps on {} interfaces ({}): this build serves one outside interface",
                d.outside.len(),
                d.outside.join(", ")
            ),
        ));
    }

    for n in &cfg.nat {
        let Some(acl) = cfg.acl(&n.acl.name) else {
            errors.push(at(
                &n.acl,
                format!("access list {} is not defined", n.acl.name),
            ));
            continue;
        };
        let Some(iface) = cfg.interface(&n.interface.name) else {
            errors.push(at(
                &n.interface,
                format!("interface {} is not configured", n.interface.name),
            ));
            continue;
        };
        let ifindex = resolver.ifindex(&iface.name).unwrap_or(0);
        let Some(outside_addr) = addr_of(cfg, resolver, &iface.name, false) else {
            errors.push(at(
                &n.interface,
                format!(
                    "interface {} has no IPv4 address to translate to",
                    iface.name
                ),
            ));
            continue;
        };
        for a in &acl.entries {
            d.nat.push(NatRule {
                selector: a.selector,
                action: if a.permit {
                    NatAction::Pat {
                        outside_ifindex: ifindex,
                        outside_addr,
                    }
                } else {
                    NatAction::Exempt
                },
            });
        }
    }

    if errors.is_empty() {
        Ok((d, warnings))
    } else {
        Err(errors)
    }
}

/// The interface's address of one family: the kernel's first, else the
/// config's `ip address` / `ipv6 address`.
fn addr_of(cfg: &Config, r: &dyn InterfaceResolver, name: &str, v6: bool) -> Option<IpAddr> {
    r.addrs(name)
        .into_iter()
        .filter(|a| a.is_ipv6() == v6)
        .find(|a| !matches!(a, IpAddr::V6(x) if (x.segments()[0] & 0xffc0) == 0xfe80))
        .or_else(|| {
            cfg.interface(name)?
                .addrs
                .iter()
                .map(|(a, _)| *a)
                .find(|a| a.is_ipv6() == v6)
        })
}

fn ident(p: IpPrefix, proto: Option<u8>) -> Ident {
    Ident {
        prefix: p,
        proto: proto.unwrap_or(0),
        port: 0,
    }
}

fn compile_entry(
    cfg: &Config,
    e: &CryptoMapEntry,
    resolver: &dyn InterfaceResolver,
    ids: &[String],
    spis: &mut HashSet<(u32, bool)>,
) -> Result<(MapEntry, Vec<SpdRule>), Vec<ConfigError>> {
    let mut errors = Vec::new();
    let what = format!("crypto map {} {}", e.name, e.seq);
    let Some((peer, _)) = e.peer else {
        return Err(vec![err(e.line, 1, format!("{what} has no `set peer`"))]);
    };
    let Some(ts_ref) = &e.transform_set else {
        return Err(vec![err(
            e.line,
            1,
            format!("{what} has no `set transform-set`"),
        )]);
    };
    let Some(ts) = cfg.transform_set(&ts_ref.name) else {
        return Err(vec![at(
            ts_ref,
            format!("transform set {} is not defined", ts_ref.name),
        )]);
    };
    let Some(acl_ref) = &e.acl else {
        return Err(vec![err(
            e.line,
            1,
            format!("{what} has no `match address`"),
        )]);
    };
    let Some(acl) = cfg.acl(&acl_ref.name) else {
        return Err(vec![at(
            acl_ref,
            format!("access list {} is not defined", acl_ref.name),
        )]);
    };
    if acl.entries.is_empty() {
        errors.push(at(acl_ref, format!("access list {} is empty", acl.name)));
    }
    let iface = cfg
        .interfaces
        .iter()
        .find(|i| i.crypto_map.as_ref().is_some_and(|m| m.name == e.name));
    let iface_name = iface.map_or_else(|| "(none)".to_string(), |i| i.name.clone());
    let local = match iface.and_then(|i| addr_of(cfg, resolver, &i.name, peer.is_ipv6())) {
        Some(a) => a,
        None if iface.is_none() => {
            // Not applied anywhere (warned about): any address of the
            // peer's family keeps the SA well-formed.
            if peer.is_ipv6() {
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
            } else {
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
            }
        }
        None => {
            return Err(vec![err(
                e.line,
                1,
                format!(
                    "{what}: interface {iface_name} has no {} address to reach peer {peer} from",
                    if peer.is_ipv6() { "IPv6" } else { "IPv4" }
                ),
            )])
        }
    };
    let mode = if ts.tunnel {
        EspMode::Tunnel {
            local,
            remote: peer,
        }
    } else {
        EspMode::Transport
    };
    let algs = ts.algs;
    let mut inbound = Vec::new();
    let mut outbound = Vec::new();
    for k in &e.keys {
        let dir_in = k.direction == dataplane::api::Direction::Inbound;
        let enc_len = algs.enc.key_len();
        let auth_len = algs.auth.key_len();
        if k.cipher.len() != enc_len {
            errors.push(err(
                k.line,
                1,
                format!(
                    "{what}: SPI {}: {} needs a {enc_len}-byte cipher key ({} hex digits), got {} bytes",
                    k.spi,
                    algs.enc.ios_name(),
                    enc_len * 2,
                    k.cipher.len()
                ),
            ));
            continue;
        }
        if k.authenticator.len() != auth_len {
            let msg = if algs.auth == AuthAlg::None {
                format!("{what}: SPI {}: transform set {} has no integrity transform, so no authenticator key", k.spi, ts.name)
            } else {
                format!(
                    "{what}: SPI {}: {} needs a {auth_len}-byte authenticator key ({} hex digits), got {} bytes",
                    k.spi,
                    algs.auth.ios_name(),
                    auth_len * 2,
                    k.authenticator.len()
                )
            };
            errors.push(err(k.line, 1, msg));
            continue;
        }
        if !spis.insert((k.spi, dir_in)) {
            errors.push(err(
                k.line,
                1,
                format!(
                    "{} SPI {} is used twice",
                    if dir_in { "inbound" } else { "outbound" },
                    k.spi
                ),
            ));
            continue;
        }
        let sa = SaParams {
            spi: k.spi,
            direction: k.direction,
            enc: algs.enc,
            auth: algs.auth,
            keys: SaKeys {
                enc: k.cipher.to_vec(),
                auth: k.authenticator.to_vec(),
            },
            mode,
            udp_encap: None,
            esn: false,
            // IOS: manually keyed SAs have no anti-replay (the sender's
            // sequence restarts whenever it does).
            replay_window: 0,
            lifetime: Lifetime::default(),
        };
        if dir_in {
            inbound.push(sa);
        } else {
            outbound.push(sa);
        }
    }
    let key_errors = !errors.is_empty();
    if outbound.len() > 1 || inbound.len() > 1 {
        errors.push(err(
            e.line,
            1,
            format!("{what}: one inbound and one outbound ESP session key at most"),
        ));
    }
    if outbound.is_empty() && !key_errors {
        errors.push(err(
            e.line,
            1,
            format!("{what} has no `set session-key outbound esp ...`"),
        ));
    }
    if inbound.is_empty() && !key_errors {
        errors.push(err(
            e.line,
            1,
            format!("{what} has no `set session-key inbound esp ...`"),
        ));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let tag = PolicyTag {
        map: ids.iter().position(|n| *n == e.name).unwrap_or(0) as u32,
        seq: e.seq,
    };
    let out_spi = outbound.first().map(|s| s.spi);
    let rules: Vec<SpdRule> = acl
        .entries
        .iter()
        .map(|a| SpdRule {
            selector: a.selector,
            action: if a.permit {
                PolicyAction::Protect {
                    sa: out_spi,
                    map: tag,
                }
            } else {
                PolicyAction::Bypass
            },
        })
        .collect();
    let first = acl
        .entries
        .iter()
        .find(|a| a.permit)
        .or(acl.entries.first());
    let (li, ri) = match first {
        Some(a) => (
            ident(a.selector.src, a.selector.proto),
            ident(a.selector.dst, a.selector.proto),
        ),
        None => (
            ident(IpPrefix::any_v4(), None),
            ident(IpPrefix::any_v4(), None),
        ),
    };
    Ok((
        MapEntry {
            interface: iface_name.clone(),
            map_name: e.name.clone(),
            seq: e.seq,
            local_addr: local,
            peer,
            local_ident: li,
            remote_ident: ri,
            inbound,
            outbound,
            path_mtu: iface.and_then(|i| resolver.mtu(&i.name)).unwrap_or(1500),
        },
        rules,
    ))
}
