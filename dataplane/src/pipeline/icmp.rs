//! ICMP errors a router owes the sender (RFC 792, RFC 1812 §4.3, RFC
//! 4443): time exceeded when the TTL runs out, fragmentation needed /
//! packet too big when a packet (or its ESP encapsulation) exceeds the
//! MTU. The error is built in place, in the frame of the packet it is
//! about: the headers go in the headroom, the quoted packet is already
//! where the ICMP payload belongs. Errors are rate limited and never sent
//! about ICMP errors, non-first fragments or non-unicast sources.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::esp::PacketBuf;
use crate::wire::{icmpv4, icmpv6, ip_proto, ipv4, ipv6};

/// Which error to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IcmpError {
    TimeExceeded,
    /// Fragmentation needed (IPv4, DF set) or packet too big (IPv6), with
    /// the MTU the sender must use.
    TooBig {
        mtu: u16,
    },
}

/// A token bucket per worker: RFC 1812 §4.3.2.8 asks routers to limit the
/// rate of ICMP errors they originate.
#[derive(Debug)]
pub struct IcmpLimiter {
    tokens: AtomicU32,
    last_ms: AtomicU64,
    per_sec: u32,
    burst: u32,
}

impl Default for IcmpLimiter {
    fn default() -> Self {
        IcmpLimiter::new(100, 50)
    }
}

impl IcmpLimiter {
    pub fn new(per_sec: u32, burst: u32) -> IcmpLimiter {
        IcmpLimiter {
            tokens: AtomicU32::new(burst),
            last_ms: AtomicU64::new(0),
            per_sec,
            burst,
        }
    }

    /// Adds the tokens earned since the last refill. Called by
    /// [`make_error`] with the time of each error it is asked for (a
    /// budget refilled by nobody would let a worker's first `burst` errors
    /// out and then none, PMTU discovery through the tunnel included);
    /// the fraction of a token not yet earned carries over.
    pub fn refill(&self, now_ms: u64) {
        let last = self.last_ms.load(Ordering::Relaxed);
        let earned = now_ms.saturating_sub(last) * u64::from(self.per_sec) / 1000;
        if earned == 0 {
            return;
        }
        let t = u64::from(self.tokens.load(Ordering::Relaxed)) + earned;
        let (tokens, last) = if t >= u64::from(self.burst) {
            (self.burst, now_ms)
        } else {
            // `earned` > 0, so `per_sec` > 0.
            (t as u32, last + earned * 1000 / u64::from(self.per_sec))
        };
        self.tokens.store(tokens, Ordering::Relaxed);
        self.last_ms.store(last, Ordering::Relaxed);
    }

    fn take(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(1))
            .is_ok()
    }
}

const V4_ERROR_LIMIT: usize = 576;
const V6_ERROR_LIMIT: usize = 1280;

fn unicast(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

/// Turns the packet in `f` into `error` about it, addressed back to its
/// source from `from`. Returns false (frame untouched) when no error may or
/// can be sent. `now_ms`: the limiter's clock ([`crate::clock::now_ms`]).
pub fn make_error(
    f: &mut PacketBuf<'_>,
    error: IcmpError,
    from: IpAddr,
    limiter: &IcmpLimiter,
    now_ms: u64,
) -> bool {
    limiter.refill(now_ms);
    if limiter.tokens.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let built = match from {
        IpAddr::V4(src) => v4_error(f, error, src),
        IpAddr::V6(src) => v6_error(f, error, src),
    };
    built && limiter.take()
}

fn v4_error(f: &mut PacketBuf<'_>, error: IcmpError, from: std::net::Ipv4Addr) -> bool {
    const HDRS: usize = ipv4::HEADER_LEN + icmpv4::HEADER_LEN;
    let packet = f.data();
    let Ok(ip) = ipv4::Packet::new_checked(packet) else {
        return false;
    };
    let to = ip.src_addr();
    if !unicast(&IpAddr::V4(to)) || ip.frag_offset() != 0 {
        return false;
    }
    if ip.protocol() == ip_proto::ICMP {
        let body = &packet[ip.header_len()..];
        if body.first().is_some_and(|t| {
            !matches!(
                *t,
                icmpv4::message::ECHO_REQUEST | icmpv4::message::ECHO_REPLY
            )
        }) {
            return false;
        }
    }
    let quote = icmpv4::quote_len(packet, V4_ERROR_LIMIT - HDRS).min(usize::from(ip.total_len()));
    if f.start < HDRS {
        return false;
    }
    let start = f.start - HDRS;
    let total = HDRS + quote;
    let buf = &mut f.frame[start..start + total];
    ipv4::Repr {
        src_addr: from,
        dst_addr: to,
        protocol: ip_proto::ICMP,
        payload_len: icmpv4::HEADER_LEN + quote,
        ttl: 64,
        // DSCP CS6: network control, as routers mark their own messages.
        dscp_ecn: 0xc0,
        ident: 0,
        dont_frag: false,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
    let mut icmp = icmpv4::Packet::new_unchecked(&mut buf[ipv4::HEADER_LEN..]);
    match error {
        IcmpError::TimeExceeded => {
            icmp.set_msg_type(icmpv4::message::TIME_EXCEEDED);
            icmp.set_code(icmpv4::time_exceeded::TTL);
            icmp.set_rest_of_header(0);
        }
        IcmpError::TooBig { mtu } => {
            icmp.set_msg_type(icmpv4::message::DST_UNREACHABLE);
            icmp.set_code(icmpv4::unreachable::FRAG_NEEDED);
            icmp.set_rest_of_header(0);
            icmp.set_next_hop_mtu(mtu);
        }
    }
    icmp.fill_checksum();
    f.start = start;
    f.len = total;
    true
}

fn v6_error(f: &mut PacketBuf<'_>, error: IcmpError, from: std::net::Ipv6Addr) -> bool {
    const HDRS: usize = ipv6::HEADER_LEN + icmpv6::HEADER_LEN;
    let packet = f.data();
    let Ok(ip) = ipv6::Packet::new_checked(packet) else {
        return false;
    };
    let to = ip.src_addr();
    let Ok(walk) = ip.walk_ext_headers() else {
        return false;
    };
    if !unicast(&IpAddr::V6(to)) || walk.fragment.is_some_and(|fr| fr.offset != 0) {
        return false;
    }
    if walk.upper_proto == ip_proto::ICMPV6
        && packet
            .get(walk.upper_offset)
            .is_some_and(|t| icmpv6::message::is_error(*t))
    {
        return false;
    }
    let quote = packet.len().min(V6_ERROR_LIMIT - HDRS);
    if f.start < HDRS {
        return false;
    }
    let start = f.start - HDRS;
    let total = HDRS + quote;
    let buf = &mut f.frame[start..start + total];
    ipv6::Repr {
        src_addr: from,
        dst_addr: to,
        next_header: ip_proto::ICMPV6,
        payload_len: icmpv6::HEADER_LEN + quote,
        hop_limit: 64,
        traffic_class: 0xc0,
        flow_label: 0,
    }
    .emit(&mut ipv6::Packet::new_unchecked(&mut buf[..]));
    let mut icmp = icmpv6::Packet::new_unchecked(&mut buf[ipv6::HEADER_LEN..]);
    match error {
        IcmpError::TimeExceeded => {
            icmp.set_msg_type(icmpv6::message::TIME_EXCEEDED);
            icmp.set_code(icmpv6::time_exceeded::HOP_LIMIT);
            icmp.set_rest_of_header(0);
        }
        IcmpError::TooBig { mtu } => {
            icmp.set_msg_type(icmpv6::message::PKT_TOO_BIG);
            icmp.set_code(0);
            icmp.set_rest_of_header(u32::from(mtu));
        }
    }
    icmp.fill_checksum(&from, &to);
    f.start = start;
    f.len = total;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(l: &IcmpLimiter) -> u32 {
        l.tokens.load(Ordering::Relaxed)
    }

    #[test]
    fn the_budget_refills_at_its_rate_up_to_its_burst() {
        let l = IcmpLimiter::new(100, 5);
        (0..5).for_each(|_| assert!(l.take()));
        assert!(!l.take());
        l.refill(1_000_000);
        assert_eq!(tokens(&l), 5, "capped at the burst");
        (0..5).for_each(|_| assert!(l.take()));
        l.refill(1_000_009);
        assert_eq!(tokens(&l), 0, "9 ms earn nothing at 100 a second");
        l.refill(1_000_015);
        assert_eq!(tokens(&l), 1);
        // The 5 ms beyond the first token count towards the next one.
        l.refill(1_000_025);
        assert_eq!(tokens(&l), 2);
        l.refill(1_000_020);
        assert_eq!(
            tokens(&l),
            2,
            "a clock that seems to step back adds nothing"
        );
    }
}
