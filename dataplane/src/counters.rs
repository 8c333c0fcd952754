//! Per-SA and global counters. Names follow IOS (`show crypto ipsec sa`:
//! `#pkts encaps/encrypt/digest`, `#pkts decaps/decrypt/verify`), plus one
//! counter per drop reason so every lost packet is accounted for.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was dropped. One counter each; the `name` is what `show`
/// prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// Inbound ESP with an SPI no installed SA has.
    NoSa,
    /// Sequence number already seen or left of the window.
    Replay,
    /// ICV did not verify.
    IntegrityFailed,
    /// Padding bytes not 1, 2, 3, ... or pad length past the payload.
    BadPadding,
    /// Truncated or inconsistent headers, bad lengths.
    Malformed,
    /// Ciphertext not a multiple of the cipher block.
    BadCipherLength,
    /// TFC dummy packet (next header 59): dropped by design, RFC 4303 §2.6.
    DummyPacket,
    /// Inner next header not IPv4/IPv6 in tunnel mode.
    BadNextHeader,
    /// The SA has passed its hard lifetime (seconds or kilobytes).
    Expired,
    /// The 32-bit (or 64-bit) sequence number space is exhausted; the SA
    /// must be rekeyed (RFC 4303 §3.3.3).
    SeqOverflow,
    /// Not enough room in the buffer for the ESP overhead.
    NoRoom,
    /// The packet arrived for a destination the SA is not for.
    WrongDestination,
    /// Matched a discard rule in the SPD.
    PolicyDiscard,
    /// Matched a protect rule whose SA is not there yet (acquire sent).
    NoOutboundSa,
    /// IPv4 header checksum wrong: damaged on the wire.
    BadIpChecksum,
    /// No route to the destination.
    NoRoute,
    /// Route known, next hop's link-layer address not yet: resolution asked.
    NoNeighbour,
    /// TTL or hop limit would reach zero.
    TtlExceeded,
    /// Larger than the outgoing interface's MTU.
    TooBig,
    /// Had to be fragmented, but the worker had too few free frames for
    /// the fragments.
    NoFreeFrame,
    /// Port address translation refused the packet (no free port, no
    /// translation for return traffic, a fragment or a protocol PAT cannot
    /// map); `show ip nat statistics` has the detail.
    Nat,
    /// Return traffic of another worker's translation that could not be
    /// handed to it (its queue was full).
    HandoffFull,
    /// Not a loss: a Tunnel Endpoint Discovery probe (transit IKEv1 to a
    /// host behind us) taken out of the forwarding path and handed to the
    /// control process as `Event::TedProbe`. Counted here because, for
    /// the packet path, the frame ends like a drop.
    TedProbeDelivered,
    /// A TED probe over the worker's per-second budget, or one the
    /// management queue had no room for: not forwarded, not delivered.
    TedProbeRateLimited,
    /// A TED probe over its source's share of that budget.
    TedProbeSourceLimited,
    /// Decrypted, authentic, but not traffic of its SA: no selector of the
    /// pair (proxy identities, traffic selectors) takes it (RFC 4301 §5.2;
    /// IOS counts these as `#pkts invalid identity (recv)`).
    InvalidIdentity,
    /// ESP (or ESP in UDP) that reached decapsulation as an IP fragment:
    /// RFC 4303 §3.4.1 wants it reassembled first, which the pipeline does
    /// before ([`crate::reassembly`]) for ESP to the gateway; what is left
    /// is not for it.
    OuterFragment,
    /// Not a loss: a fragment of ESP copied into its datagram's
    /// reassembly buffer ([`crate::reassembly`]). Counted here because,
    /// for the packet path, the frame ends like a drop.
    FragmentQueued,
    /// A datagram of ESP fragments given up: not whole within its time,
    /// or its slot taken for a newer one.
    ReassemblyTimeout,
    /// A datagram of ESP fragments dropped: overlapping fragments,
    /// lengths that contradict each other, too many fragments, or too
    /// large for a frame.
    ReassemblyFailed,
    /// UDP-encapsulated ESP over IPv6 whose UDP checksum is wrong or zero
    /// (RFC 8200 §8.1: a zero UDP checksum over IPv6 is discarded; RFC
    /// 3948 ESP in UDP is not one of the tunnels RFC 6935 exempts).
    BadUdpChecksum,
    /// Decrypted tunnel packet whose outer header says congestion
    /// experienced (CE) but whose inner packet is not ECN-capable: the
    /// mark cannot be passed on, so RFC 6040 §4.2 drops the packet.
    EcnCeNotEct,
    /// An 802.1Q or 802.1ad tagged frame: Espada has no VLAN
    /// configuration, so it neither forwards nor decrypts tagged traffic.
    VlanTagged,
    /// Decrypted, authentic, and addressed to one of the gateway's own
    /// addresses, but not delivered: no tunnel interface would carry the
    /// gateway's answer back through the tunnel ([`crate::tunif`]), so
    /// handing it to the kernel would have the answer leave in the clear.
    ForGateway,
    /// Not a loss: an ICMP "fragmentation needed" / "packet too big"
    /// about ESP we sent, whose MTU its outbound SA now keeps to
    /// ([`crate::pipeline`]'s path MTU discovery).
    PathMtuLearned,
    /// Such an ICMP error not believed: it names no outbound SA of ours,
    /// quotes a packet that SA did not send lately or that was no larger
    /// than the MTU it says, says MTU 0, or would raise the MTU.
    PathMtuRefused,
    /// A decrypted packet for the gateway that the kernel did not take
    /// from its tunnel interface ([`crate::tunif`]): the device is down
    /// or its queue is full. (What the kernel sends into the device and
    /// worker 0 has no room for is counted as `handoff-full`.)
    TunnelInterfaceFull,
    /// A packet the kernel sent into a tunnel interface whose crypto map
    /// entry has no SPD rule (it protects no route, so nothing is ever
    /// negotiated for it).
    TunnelNoPolicy,
    /// Not a loss: multicast the kernel sent into a tunnel interface (its
    /// MLD reports when the device comes up, IGMP): Espada carries no
    /// multicast, and the peer would only drop it.
    TunnelMulticast,
}

impl DropReason {
    pub const COUNT: usize = 39;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NoSa,
        DropReason::Replay,
        DropReason::IntegrityFailed,
        DropReason::BadPadding,
        DropReason::Malformed,
        DropReason::BadCipherLength,
        DropReason::DummyPacket,
        DropReason::BadNextHeader,
        DropReason::Expired,
        DropReason::SeqOverflow,
        DropReason::NoRoom,
        DropReason::WrongDestination,
        DropReason::PolicyDiscard,
        DropReason::NoOutboundSa,
        DropReason::BadIpChecksum,
        DropReason::NoRoute,
        DropReason::NoNeighbour,
        DropReason::TtlExceeded,
        DropReason::TooBig,
        DropReason::NoFreeFrame,
        DropReason::Nat,
        DropReason::HandoffFull,
        DropReason::TedProbeDelivered,
        DropReason::TedProbeRateLimited,
        DropReason::TedProbeSourceLimited,
        DropReason::InvalidIdentity,
        DropReason::OuterFragment,
        DropReason::FragmentQueued,
        DropReason::ReassemblyTimeout,
        DropReason::ReassemblyFailed,
        DropReason::BadUdpChecksum,
        DropReason::EcnCeNotEct,
        DropReason::VlanTagged,
        DropReason::ForGateway,
        DropReason::PathMtuLearned,
        DropReason::PathMtuRefused,
        DropReason::TunnelInterfaceFull,
        DropReason::TunnelNoPolicy,
        DropReason::TunnelMulticast,
    ];

    /// Whether a frame ended this way was lost: all but a TED probe
    /// delivered to IKE, a fragment kept for its datagram, an ICMP
    /// error that taught a path MTU and the kernel's multicast kept out of
    /// a tunnel.
    pub const fn is_loss(self) -> bool {
        !matches!(
            self,
            DropReason::TedProbeDelivered
                | DropReason::FragmentQueued
                | DropReason::PathMtuLearned
                | DropReason::TunnelMulticast
        )
    }

    /// Stable one-byte code of the reason on the control socket: its
    /// position in [`ALL`](Self::ALL). New reasons are only ever appended.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The reason with this [`code`](Self::code), if any.
    pub fn from_code(code: u8) -> Option<DropReason> {
        DropReason::ALL.get(usize::from(code)).copied()
    }

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NoSa => "no-sa",
            DropReason::Replay => "replay",
            DropReason::IntegrityFailed => "integrity-failed",
            DropReason::BadPadding => "bad-padding",
            DropReason::Malformed => "malformed",
            DropReason::BadCipherLength => "bad-cipher-length",
            DropReason::DummyPacket => "tfc-dummy",
            DropReason::BadNextHeader => "bad-next-header",
            DropReason::Expired => "sa-expired",
            DropReason::SeqOverflow => "seq-overflow",
            DropReason::NoRoom => "no-headroom",
            DropReason::WrongDestination => "wrong-destination",
            DropReason::PolicyDiscard => "policy-discard",
            DropReason::NoOutboundSa => "no-outbound-sa",
            DropReason::BadIpChecksum => "bad-ip-checksum",
            DropReason::NoRoute => "no-route",
            DropReason::NoNeighbour => "no-neighbour",
            DropReason::TtlExceeded => "ttl-exceeded",
            DropReason::TooBig => "too-big",
            DropReason::NoFreeFrame => "no-free-frame",
            DropReason::Nat => "nat",
            DropReason::HandoffFull => "handoff-full",
            DropReason::TedProbeDelivered => "ted-probes-delivered",
            DropReason::TedProbeRateLimited => "ted-probe-rate-limited",
            DropReason::TedProbeSourceLimited => "ted-probe-source-limited",
            DropReason::InvalidIdentity => "invalid-identity",
            DropReason::OuterFragment => "esp-fragment",
            DropReason::FragmentQueued => "esp-fragment-queued",
            DropReason::ReassemblyTimeout => "esp-reassembly-timeout",
            DropReason::ReassemblyFailed => "esp-reassembly-failed",
            DropReason::BadUdpChecksum => "bad-udp-checksum",
            DropReason::EcnCeNotEct => "ecn-ce-not-ect",
            DropReason::VlanTagged => "vlan-tagged",
            DropReason::ForGateway => "for-gateway",
            DropReason::PathMtuLearned => "pmtu-learned",
            DropReason::PathMtuRefused => "pmtu-refused",
            DropReason::TunnelInterfaceFull => "tunnel-interface-full",
            DropReason::TunnelNoPolicy => "tunnel-no-policy",
            DropReason::TunnelMulticast => "tunnel-multicast",
        }
    }
}

/// One drop counter per reason. Relaxed atomics: counters are statistics,
/// they order nothing.
#[derive(Debug)]
pub struct DropCounters([AtomicU64; DropReason::COUNT]);

// By hand: the standard library derives `Default` for arrays of at most
// 32 elements.
impl Default for DropCounters {
    fn default() -> DropCounters {
        DropCounters(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl DropCounters {
    pub fn inc(&self, reason: DropReason) {
        self.0[reason as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason as usize].load(Ordering::Relaxed)
    }
    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The frames that were lost: [`total`](Self::total) less the
    /// reasons that only end a frame's way like a drop (a TED probe handed
    /// to IKE, a fragment kept for its datagram).
    pub fn losses(&self) -> u64 {
        DropReason::ALL
            .into_iter()
            .filter(|r| r.is_loss())
            .map(|r| self.get(r))
            .sum()
    }
}

/// The packet counters of one SA, from which the IOS `show crypto ipsec
/// sa` counters are derived (`api::SaCounts::snapshot`).
///
/// IOS's "encaps", "encrypt" and "digest" always count the same packets
/// here (a packet is sealed whole or dropped), so an outbound SA keeps one
/// counter for the three; "decrypt" and "verify" likewise (the ICV and the
/// replay check passed), and "decaps" the packets delivered after the
/// trailer. Every counter costs a locked add per packet and, with many
/// SAs, its share of a cache-line miss.
///
/// In declaration order (`repr(C)`): the counters every packet updates
/// first, the drop counters (rare) after, so an SA's per-packet state
/// stays in few lines (see `sa::SaCore`).
#[derive(Debug, Default)]
#[repr(C)]
pub struct SaCounters {
    /// Outbound: packets encapsulated (IOS encaps, encrypt, digest).
    /// Inbound: packets delivered (IOS decaps).
    pub packets: AtomicU64,
    /// Inbound: packets that passed the ICV and the replay check (IOS
    /// decrypt, verify), some of which the trailer may still refuse.
    /// Outbound: unused (0).
    pub verified: AtomicU64,
    /// Bytes of inner packets protected or recovered, for kilobyte lifetimes.
    pub bytes: AtomicU64,
    /// Seconds (dataplane clock) of the last packet, for DPD idle time.
    pub last_used: AtomicU64,
    pub drops: DropCounters,
}

impl SaCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drop_reason_has_its_own_counter_and_name() {
        let c = DropCounters::default();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
            for _ in 0..=i {
                c.inc(*r);
            }
        }
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(c.get(*r), i as u64 + 1);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
