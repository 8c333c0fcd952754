//! NAT counters, named for IOS `show ip nat statistics` ("Total active
//! translations", "Hits", "Misses", "Expired translations") plus one
//! counter per drop reason, so every packet NAT refuses is accounted for.
//!
//! NAT drops stay here rather than in [`crate::counters::DropReason`]: the
//! pipeline counts one generic NAT drop at most, the detail lives with the
//! module that knows it.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why NAT refused a packet. The `name` is what `show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum NatDrop {
    /// No free translation entry, even after reclaiming expired ones.
    TableFull,
    /// Every outside port of this worker's range is taken for this
    /// remote end (within the probe budget, see `NatTable`).
    NoPortsLeft,
    /// Matched a PAT rule but has nothing to translate a port on: a
    /// protocol other than TCP, UDP and ICMP echo (GRE, ESP, SCTP, ...),
    /// an ICMP type other than echo request and errors, or an echo reply
    /// leaving the inside.
    UntranslatableProtocol,
    /// An IPv4 fragment of a flow that needs translation: without
    /// reassembly the later fragments carry no ports to map.
    Fragment,
    /// Headers too short or inconsistent to translate.
    Malformed,
    /// Return traffic to an outside port, or an ICMP error about a flow,
    /// with no translation entry.
    NoMapping,
}

impl NatDrop {
    pub const COUNT: usize = 6;
    pub const ALL: [NatDrop; Self::COUNT] = [
        NatDrop::TableFull,
        NatDrop::NoPortsLeft,
        NatDrop::UntranslatableProtocol,
        NatDrop::Fragment,
        NatDrop::Malformed,
        NatDrop::NoMapping,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            NatDrop::TableFull => "table-full",
            NatDrop::NoPortsLeft => "no-ports-left",
            NatDrop::UntranslatableProtocol => "untranslatable-protocol",
            NatDrop::Fragment => "fragment",
            NatDrop::Malformed => "malformed",
            NatDrop::NoMapping => "no-mapping",
        }
    }
}

/// One worker's NAT counters. Written only by the worker that owns the
/// `NatTable` (through `&mut`), read at any time by whoever holds the
/// `Arc` (the management thread answering `show ip nat statistics`):
/// relaxed atomics, incremented with a load and a store because there is
/// a single writer, which spares the locked read-modify-write per packet.
#[derive(Debug, Default)]
pub struct NatCounters {
    created: AtomicU64,
    expired: AtomicU64,
    active: AtomicU64,
    hits_out: AtomicU64,
    hits_in: AtomicU64,
    exempted: AtomicU64,
    no_rule: AtomicU64,
    drops: [AtomicU64; NatDrop::COUNT],
}

/// Single-writer increment (see [`NatCounters`]).
fn add(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

impl NatCounters {
    pub(super) fn created(&self) {
        add(&self.created, 1);
    }
    pub(super) fn expired(&self, n: u64) {
        add(&self.expired, n);
    }
    pub(super) fn set_active(&self, n: usize) {
        self.active.store(n as u64, Ordering::Relaxed);
    }
    pub(super) fn hit_out(&self) {
        add(&self.hits_out, 1);
    }
    pub(super) fn hit_in(&self) {
        add(&self.hits_in, 1);
    }
    pub(super) fn exempted(&self) {
        add(&self.exempted, 1);
    }
    pub(super) fn no_rule(&self) {
        add(&self.no_rule, 1);
    }
    pub(super) fn dropped(&self, reason: NatDrop) {
        add(&self.drops[reason as usize], 1);
    }

    /// A consistent-enough copy for display (each counter is read once;
    /// they are statistics and order nothing).
    pub fn snapshot(&self) -> NatStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NatStats {
            active_translations: read(&self.active),
            translations_created: read(&self.created),
            expired_translations: read(&self.expired),
            hits_outbound: read(&self.hits_out),
            hits_inbound: read(&self.hits_in),
            exempted: read(&self.exempted),
            no_rule: read(&self.no_rule),
            drops: std::array::from_fn(|i| read(&self.drops[i])),
        }
    }
}

/// A snapshot of NAT counters; add the snapshots of all workers for the
/// gateway's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatStats {
    /// IOS "Total active translations".
    pub active_translations: u64,
    /// Translations created; IOS "Misses" (a packet that found no entry
    /// and made one).
    pub translations_created: u64,
    /// IOS "Expired translations": reclaimed after their timeout.
    pub expired_translations: u64,
    /// Packets translated inside to outside (IOS "Hits" is both directions).
    pub hits_outbound: u64,
    /// Packets translated back, outside to inside.
    pub hits_inbound: u64,
    /// Packets an exemption rule left untranslated (the ACL `deny` lines).
    pub exempted: u64,
    /// Packets no rule matched, forwarded untranslated.
    pub no_rule: u64,
    /// Drops, indexed by `NatDrop as usize`; see [`NatStats::dropped`].
    pub drops: [u64; NatDrop::COUNT],
}

impl NatStats {
    /// IOS "Hits": translated packets, both directions.
    pub fn hits(&self) -> u64 {
        self.hits_outbound + self.hits_inbound
    }

    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: NatDrop) -> u64 {
        self.drops[reason as usize]
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds another worker's snapshot into this one.
    pub fn merge(&mut self, other: &NatStats) {
        self.active_translations += other.active_translations;
        self.translations_created += other.translations_created;
        self.expired_translations += other.expired_translations;
        self.hits_outbound += other.hits_outbound;
        self.hits_inbound += other.hits_inbound;
        self.exempted += other.exempted;
        self.no_rule += other.no_rule;
        for (d, o) in self.drops.iter_mut().zip(other.drops) {
            *d += o;
        }
    }
}
