//! NAT exemption and port address translation (PAT, IOS `overload`), the
//! gateway's form of seed 003's
//!
//! ```text
//! ip nat inside source list 100 interface Ethernet0/0 overload
//! access-list 100 deny   ip 10.2.1.0 0.0.0.255 10.1.1.0 0.0.0.255
//! access-list 100 permit ip 10.2.1.0 0.0.0.255 any
//! ```
//!
//! Traffic the crypto map protects, or an exemption rule (an ACL `deny`
//! line) names, keeps its addresses; other traffic from the inside leaving
//! through the rule's outside interface gets that interface's address and
//! a port of ours (TCP, UDP; the identifier of an ICMP echo); return
//! traffic, and ICMP errors about translated packets in either direction,
//! are translated back (RFC 3022 §4, RFC 5508 §7 for ICMP). Addresses and
//! ports are rewritten in place and every covering checksum is patched
//! with RFC 1624's incremental update.
//!
//! - [`NatRules`] (`rules`): the ordered rule list, compiled once and shared.
//! - [`NatTable`] (`table`): one worker's translations, allocated up front.
//! - [`NatCounters`] / [`NatStats`] (`counters`): `show ip nat statistics`.
//!
//! # Contract with the pipeline
//!
//! - **Crypto first.** The caller never gives NAT a packet its SPD protects
//!   (exemption by crypto map): outbound, the SPD lookup on the untranslated
//!   packet comes first and only bypassed / unmatched packets reach
//!   [`NatTable::translate_outbound`]; inbound, packets decapsulated from
//!   ESP are never given to [`NatTable::translate_inbound`]. So crypto ACLs
//!   name inside addresses, as in seed 003. (IOS translates before crypto,
//!   which is why it needs the `deny` lines; they are honoured here as
//!   [`crate::api::NatAction::Exempt`] rules all the same.)
//! - **Outbound** — a packet that arrived on an inside interface, is not
//!   protected, and routes out of an outside interface: call once it is
//!   known to leave — after the route lookup (the egress interface picks
//!   the rule), the TTL decrement and the MTU check, so that any ICMP
//!   error the gateway sends about it quotes the inside view and goes to
//!   the inside host — and before the Ethernet header is written. Pass the
//!   IP packet (`&mut` bytes from the IP header on; link padding after
//!   Total Length is ignored) and the egress ifindex. `Translated` and
//!   `Untranslated(_)` are forwarded; `Drop(reason)` is dropped (already
//!   counted here; the pipeline may count it once more as a NAT drop).
//! - **Inbound** — a packet that arrived on an outside interface for one
//!   of our addresses and is neither ESP nor IKE / NAT-T (UDP 500/4500,
//!   which no PAT range may contain): call before handing it to the
//!   kernel. `Translated`: its destination is now the inside host; route
//!   and forward it (TTL decrement included). `Untranslated(NotOurs)`:
//!   go on as without NAT (to the kernel). `Untranslated(OutOfRange
//!   { port })`: another worker's translation if [`PortPlan::owner_of`]
//!   names one (hand it over), else the kernel's. `Drop`: drop.
//! - **Time** is the worker's monotonic clock in seconds (`now`), the
//!   same one for every call on a table.
//! - **Housekeeping**: call [`NatTable::sweep`] between batches with a
//!   small budget (e.g. 64) so expired entries are reclaimed without
//!   waiting for a lookup to meet them.
//! - **One table per worker**, each over its own [`PortPlan`] slice; the
//!   rules are shared (`&NatRules`, rebuilt on configuration change).
//!
//! # What is not translated
//!
//! - IPv6: IOS `ip nat inside source … overload` is IPv4 NAT, and NAT66
//!   overload defeats the point of IPv6; IPv6 packets come back
//!   `Untranslated(NotIpv4)` and PAT rules over IPv6 are refused at compile
//!   time. (NPTv6, RFC 6296, would be a separate, stateless feature.)
//! - IPv4 fragments needing translation are dropped and counted (IOS
//!   `ip virtual-reassembly` would reassemble them first; later fragments
//!   carry no ports to map). Inbound non-first fragments are left to the
//!   kernel, which also receives IKE's own fragments.
//! - Protocols without ports (GRE, ESP from an inside host, ...) matching
//!   a PAT rule: dropped as untranslatable, like IOS PAT without an ALG.
//! - No ALGs (FTP, SIP, ...): payloads are never inspected.

mod counters;
mod packet;
mod rules;
mod table;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use counters::{NatCounters, NatDrop, NatStats};
pub use rules::{NatRuleError, NatRules};
pub use table::{
    NatConfigError, NatTable, NatTimeouts, PortPlan, Translation, MAX_CAPACITY, MAX_PORT_PROBES,
};

use packet::{Header, Side, L4};
use rules::Decision;
use table::{Dir, Key};

use crate::spd::FlowKey;
use crate::wire::ip_proto;

/// What NAT did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatVerdict {
    /// Addresses and ports were rewritten in place; forward the packet.
    Translated,
    /// The packet was not touched; why says what to do with it.
    Untranslated(Untranslated),
    /// The packet must be dropped; counted under the reason.
    Drop(NatDrop),
}

/// Why a packet was left as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untranslated {
    /// Outbound: no rule matched; forward it with its own addresses.
    NoRule,
    /// Outbound: an exemption rule matched (typically VPN traffic).
    Exempt,
    /// Not an IPv4 packet: IPv6 is never translated.
    NotIpv4,
    /// Inbound: not return traffic of any translation (not for a PAT
    /// address, or something NAT never maps such as an echo request to
    /// the gateway, or an echo reply or ICMP error about the gateway's own
    /// traffic); carry on as if NAT did not exist.
    NotOurs,
    /// Inbound: for a PAT address, but the port (or echo identifier) is
    /// outside this table's range: another worker's translation, or the
    /// kernel's traffic; see [`PortPlan::owner_of`].
    OutOfRange { port: u16 },
}

impl NatTable {
    /// Translates a packet leaving the inside through `egress_ifindex`, if
    /// the first matching rule says PAT: its source becomes the rule's
    /// outside address and a port of this table's range, reusing the
    /// flow's translation or making one. An ICMP error an inside host
    /// sends about a packet that came in translated is translated back to
    /// the outside view. See the module docs for where to call it.
    pub fn translate_outbound(
        &mut self,
        rules: &NatRules,
        packet: &mut [u8],
        egress_ifindex: u32,
        now: u64,
    ) -> NatVerdict {
        let verdict = self.outbound(rules, packet, egress_ifindex, now);
        self.count(verdict, Dir::Out);
        verdict
    }

    /// Translates return traffic that arrived on `ingress_ifindex`: a
    /// packet for one of the rules' PAT addresses on that interface whose
    /// flow has a translation gets the inside address and port back; so
    /// does an ICMP error about a translated packet (its destination, and
    /// the quoted packet's source). See the module docs for where to call it.
    pub fn translate_inbound(
        &mut self,
        rules: &NatRules,
        packet: &mut [u8],
        ingress_ifindex: u32,
        now: u64,
    ) -> NatVerdict {
        let verdict = self.inbound(rules, packet, ingress_ifindex, now);
        self.count(verdict, Dir::In);
        verdict
    }

    fn count(&self, verdict: NatVerdict, dir: Dir) {
        let c = self.counters();
        match (verdict, dir) {
            (NatVerdict::Translated, Dir::Out) => c.hit_out(),
            (NatVerdict::Translated, Dir::In) => c.hit_in(),
            (NatVerdict::Untranslated(Untranslated::Exempt), _) => c.exempted(),
            (NatVerdict::Untranslated(Untranslated::NoRule), _) => c.no_rule(),
            (NatVerdict::Untranslated(_), _) => {}
            (NatVerdict::Drop(reason), _) => c.dropped(reason),
        }
    }

    fn outbound(
        &mut self,
        rules: &NatRules,
        packet: &mut [u8],
        egress_ifindex: u32,
        now: u64,
    ) -> NatVerdict {
        let h = match ipv4_header(packet) {
            Ok(h) => h,
            Err(verdict) => return verdict,
        };
        let (src_port, dst_port) = packet::acl_ports(packet, &h).unwrap_or((0, 0));
        let flow = FlowKey {
            src: IpAddr::V4(h.src),
            dst: IpAddr::V4(h.dst),
            proto: h.proto,
            src_port,
            dst_port,
        };
        let outside_addr = match rules.decide(&flow, egress_ifindex) {
            None => return NatVerdict::Untranslated(Untranslated::NoRule),
            Some(Decision::Exempt) => return NatVerdict::Untranslated(Untranslated::Exempt),
            Some(Decision::Pat { outside_addr }) => outside_addr,
        };
        if h.fragment {
            return NatVerdict::Drop(NatDrop::Fragment);
        }
        match packet::transport_of(packet, &h) {
            Err(_) => NatVerdict::Drop(NatDrop::Malformed),
            Ok(L4::Flow(t)) if t.has_src_port() => {
                let key = Key {
                    proto: t.proto,
                    local: h.src,
                    local_port: t.sport,
                    remote: h.dst,
                    remote_port: t.dport,
                };
                let idx = match self.find_out(&key, now) {
                    Some(idx) => {
                        let m = self.mapping(idx);
                        if m.outside == outside_addr && m.outside_ifindex == egress_ifindex {
                            idx
                        } else {
                            // The outside address changed (DHCP) or the flow
                            // now leaves elsewhere: the old mapping is useless.
                            self.release(idx);
                            match self.create(&key, outside_addr, egress_ifindex, now) {
                                Ok(idx) => idx,
                                Err(reason) => return NatVerdict::Drop(reason),
                            }
                        }
                    }
                    None => match self.create(&key, outside_addr, egress_ifindex, now) {
                        Ok(idx) => idx,
                        Err(reason) => return NatVerdict::Drop(reason),
                    },
                };
                let m = self.mapping(idx);
                packet::rewrite_flow(packet, &t, Side::Src, m.outside, m.outside_port);
                self.refresh(idx, Dir::Out, t.tcp_flags, now);
                NatVerdict::Translated
            }
            Ok(L4::Error { icmp_sum, quoted }) => {
                // The quoted packet came in translated: inside host (its
                // destination) and remote end (its source).
                if !quoted.t.has_dst_port() {
                    return NatVerdict::Drop(NatDrop::NoMapping);
                }
                let key = Key {
                    proto: quoted.t.proto,
                    local: quoted.dst,
                    local_port: quoted.t.dport,
                    remote: quoted.src,
                    remote_port: quoted.t.sport,
                };
                let Some(idx) = self.find_out(&key, now) else {
                    return NatVerdict::Drop(NatDrop::NoMapping);
                };
                let m = self.mapping(idx);
                packet::rewrite_error(
                    packet,
                    Side::Src,
                    m.outside,
                    icmp_sum,
                    &quoted,
                    Side::Dst,
                    m.outside,
                    m.outside_port,
                );
                NatVerdict::Translated
            }
            Ok(L4::Flow(_) | L4::Other) => NatVerdict::Drop(NatDrop::UntranslatableProtocol),
        }
    }

    fn inbound(
        &mut self,
        rules: &NatRules,
        packet: &mut [u8],
        ingress_ifindex: u32,
        now: u64,
    ) -> NatVerdict {
        let h = match ipv4_header(packet) {
            Ok(h) => h,
            Err(verdict) => return verdict,
        };
        if !rules.is_pat_address(ingress_ifindex, h.dst) {
            return NatVerdict::Untranslated(Untranslated::NotOurs);
        }
        if matches!(h.proto, ip_proto::TCP | ip_proto::UDP) {
            // Ports first: whatever is not in our range is not ours to judge.
            let Some((_, dst_port)) = packet::acl_ports(packet, &h) else {
                return NatVerdict::Untranslated(Untranslated::NotOurs);
            };
            if !self.owns_port(dst_port) {
                return NatVerdict::Untranslated(Untranslated::OutOfRange { port: dst_port });
            }
            if h.fragment {
                return NatVerdict::Drop(NatDrop::Fragment);
            }
        } else if h.proto != ip_proto::ICMP || h.fragment {
            return NatVerdict::Untranslated(Untranslated::NotOurs);
        }
        match packet::transport_of(packet, &h) {
            Err(_) => NatVerdict::Drop(NatDrop::Malformed),
            Ok(L4::Flow(t)) if t.has_dst_port() => {
                if !self.owns_port(t.dport) {
                    return NatVerdict::Untranslated(Untranslated::OutOfRange { port: t.dport });
                }
                let key = Key {
                    proto: t.proto,
                    local: h.dst,
                    local_port: t.dport,
                    remote: h.src,
                    remote_port: t.sport,
                };
                let Some(idx) = self.find_in(&key, now) else {
                    // The PAT range is reserved for translations, so a TCP
                    // or UDP miss is nobody's; an echo reply may answer the
                    // gateway's own ping, whose identifier we do not choose.
                    return if t.proto == ip_proto::ICMP {
                        NatVerdict::Untranslated(Untranslated::NotOurs)
                    } else {
                        NatVerdict::Drop(NatDrop::NoMapping)
                    };
                };
                let m = self.mapping(idx);
                packet::rewrite_flow(packet, &t, Side::Dst, m.inside, m.inside_port);
                self.refresh(idx, Dir::In, t.tcp_flags, now);
                NatVerdict::Translated
            }
            Ok(L4::Error { icmp_sum, quoted }) => {
                // The quoted packet is one we sent translated: our outside
                // address and port as its source.
                if quoted.src != h.dst || !quoted.t.has_src_port() {
                    return NatVerdict::Untranslated(Untranslated::NotOurs);
                }
                if !self.owns_port(quoted.t.sport) {
                    return NatVerdict::Untranslated(Untranslated::OutOfRange {
                        port: quoted.t.sport,
                    });
                }
                let key = Key {
                    proto: quoted.t.proto,
                    local: quoted.src,
                    local_port: quoted.t.sport,
                    remote: quoted.dst,
                    remote_port: quoted.t.dport,
                };
                // A miss may be about the gateway's own traffic: the kernel's.
                let Some(idx) = self.find_in(&key, now) else {
                    return NatVerdict::Untranslated(Untranslated::NotOurs);
                };
                let m = self.mapping(idx);
                packet::rewrite_error(
                    packet,
                    Side::Dst,
                    m.inside,
                    icmp_sum,
                    &quoted,
                    Side::Src,
                    m.inside,
                    m.inside_port,
                );
                NatVerdict::Translated
            }
            Ok(L4::Flow(_) | L4::Other) => NatVerdict::Untranslated(Untranslated::NotOurs),
        }
    }
}

/// The IPv4 header, or the verdict for a packet that has none.
fn ipv4_header(packet: &[u8]) -> Result<Header, NatVerdict> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => packet::header(packet).map_err(|_| NatVerdict::Drop(NatDrop::Malformed)),
        Some(6) => Err(NatVerdict::Untranslated(Untranslated::NotIpv4)),
        _ => Err(NatVerdict::Drop(NatDrop::Malformed)),
    }
}
