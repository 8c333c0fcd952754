//! The PAT state of one worker: a slab of translation entries allocated
//! once, and two open-addressing hash indexes over it, one per direction.
//! Nothing here allocates after [`NatTable::new`].
//!
//! - outbound index: (protocol, inside address, inside port, remote
//!   address, remote port) → entry;
//! - inbound index: (protocol, outside address, outside port, remote
//!   address, remote port) → entry.
//!
//! Mappings are address-and-port dependent (RFC 4787 §4.1), like IOS
//! extended PAT entries and Linux masquerading: an outside port is unique
//! per remote end, not globally, so one outside address carries many more
//! flows than it has ports. The inside port is kept when it is free and in
//! range (IOS port preservation), otherwise the search starts at a keyed
//! hash of the flow and walks the range.
//!
//! Both indexes use linear probing at a load of at most one half, with
//! backward-shift deletion (no tombstones, so probe lengths never
//! degrade), and a keyed SipHash (`RandomState`) so remote hosts cannot
//! choose flows that collide.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::sync::Arc;

use thiserror::Error;

use super::counters::{NatCounters, NatDrop};
use crate::wire::ip_proto;

/// Largest table [`NatTable::new`] accepts (entries per worker): entry
/// numbers fit 24 bits and each index stays within 32 Mi slots (256 MiB).
pub const MAX_CAPACITY: usize = 1 << 24;

/// How many outside ports one new translation may try before giving up
/// with [`NatDrop::NoPortsLeft`]. Bounds the per-packet work when a range
/// is nearly full; a worker range no larger than this is searched
/// completely.
pub const MAX_PORT_PROBES: usize = 1024;

/// Expired entries examined when the table is full, before a new
/// translation is refused.
const RECLAIM_ON_FULL: usize = 64;

/// Ports a PAT range may not contain: the well-known ports and NAT-T,
/// which belong to the gateway itself (IKE on 500 and 4500, SSH, ...);
/// return traffic to them must reach the kernel, not a translation.
const NATT_PORT: u16 = 4500;
const FIRST_PAT_PORT: u16 = 1024;

/// Translation timeouts in seconds, after the last packet in either
/// direction. The defaults are IOS's `ip nat translation` defaults where
/// IOS has one (UDP 300 s, TCP 86400 s, ICMP 60 s); half-open and closing
/// TCP connections get 240 s (twice the maximum segment lifetime, like a
/// TIME-WAIT), enough for a slow handshake or a lingering FIN exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatTimeouts {
    /// `ip nat translation udp-timeout`.
    pub udp: u64,
    /// `ip nat translation tcp-timeout`: an established connection.
    pub tcp_established: u64,
    /// Before the handshake completes, and after a FIN or RST
    /// (`syn-timeout` / `finrst-timeout`).
    pub tcp_transitory: u64,
    /// `ip nat translation icmp-timeout`: echo identifiers.
    pub icmp: u64,
}

impl Default for NatTimeouts {
    fn default() -> Self {
        NatTimeouts {
            udp: 300,
            tcp_established: 86_400,
            tcp_transitory: 240,
            icmp: 60,
        }
    }
}

/// Why a NAT table or port plan cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NatConfigError {
    #[error("NAT table capacity must be between 1 and {max} entries")]
    Capacity { max: usize },
    #[error("empty PAT port range")]
    EmptyRange,
    #[error("PAT port range {lo}-{hi} includes port {port}, which the gateway itself uses")]
    ReservedPort { lo: u16, hi: u16, port: u16 },
    #[error("{ports} PAT ports cannot be shared among {workers} workers")]
    TooFewPorts { ports: usize, workers: usize },
}

fn check_range(range: &RangeInclusive<u16>) -> Result<(u16, u16), NatConfigError> {
    let (lo, hi) = (*range.start(), *range.end());
    if lo > hi {
        return Err(NatConfigError::EmptyRange);
    }
    let reserved = if lo < FIRST_PAT_PORT {
        Some(lo)
    } else if range.contains(&NATT_PORT) {
        Some(NATT_PORT)
    } else {
        None
    };
    match reserved {
        Some(port) => Err(NatConfigError::ReservedPort { lo, hi, port }),
        None => Ok((lo, hi)),
    }
}

/// How the gateway's PAT port range is shared among workers: each worker
/// gets one contiguous slice, so the outside port of return traffic names
/// the worker that holds its translation. Traffic arriving at another
/// worker (RSS hashes flows, not ports) is handed to [`PortPlan::owner_of`]
/// through the worker queues; or the NIC can steer it there directly with
/// one n-tuple rule per slice (`ethtool -N … dst-port P m MASK action Q`),
/// which is why slices should be aligned powers of two where possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortPlan {
    lo: u16,
    hi: u16,
    workers: usize,
    per_worker: usize,
}

impl PortPlan {
    /// Splits `range` evenly among `workers`; the last worker also takes
    /// the remainder.
    pub fn new(range: RangeInclusive<u16>, workers: usize) -> Result<PortPlan, NatConfigError> {
        let (lo, hi) = check_range(&range)?;
        let ports = usize::from(hi - lo) + 1;
        if workers == 0 || ports < workers {
            return Err(NatConfigError::TooFewPorts { ports, workers });
        }
        Ok(PortPlan {
            lo,
            hi,
            workers,
            per_worker: ports / workers,
        })
    }

    /// The slice of worker `worker`, for its [`NatTable::new`].
    pub fn range_of(&self, worker: usize) -> Option<RangeInclusive<u16>> {
        if worker >= self.workers {
            return None;
        }
        let first = usize::from(self.lo) + worker * self.per_worker;
        let last = if worker + 1 == self.workers {
            usize::from(self.hi)
        } else {
            first + self.per_worker - 1
        };
        Some(first as u16..=last as u16)
    }

    /// The worker whose slice holds `port`; `None` outside the PAT range
    /// (the traffic is the kernel's).
    pub fn owner_of(&self, port: u16) -> Option<usize> {
        if !(self.lo..=self.hi).contains(&port) {
            return None;
        }
        Some((usize::from(port - self.lo) / self.per_worker).min(self.workers - 1))
    }
}

/// One end of a flow as an index key: (protocol, our-side address and
/// port, remote address and port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Key {
    pub proto: u8,
    pub local: Ipv4Addr,
    pub local_port: u16,
    pub remote: Ipv4Addr,
    pub remote_port: u16,
}

/// Where a TCP connection is, as far as its timeout goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum TcpState {
    /// Handshake not complete (or picked up mid-stream, not yet answered).
    #[default]
    Opening,
    Established,
    /// A FIN or RST was seen.
    Closing,
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// The direction a packet of a translation travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    Out,
    In,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    live: bool,
    proto: u8,
    tcp: TcpState,
    /// A packet came back from the remote end.
    replied: bool,
    inside: Ipv4Addr,
    inside_port: u16,
    outside: Ipv4Addr,
    outside_port: u16,
    remote: Ipv4Addr,
    remote_port: u16,
    outside_ifindex: u32,
    /// Hashes of the two keys, kept for deletion and backward shifts.
    out_hash: u32,
    in_hash: u32,
    /// Dataplane seconds at which the entry expires.
    expires: u64,
    /// Free-list link while not live.
    next_free: u32,
}

impl Default for Entry {
    fn default() -> Entry {
        Entry {
            live: false,
            proto: 0,
            tcp: TcpState::Opening,
            replied: false,
            inside: Ipv4Addr::UNSPECIFIED,
            inside_port: 0,
            outside: Ipv4Addr::UNSPECIFIED,
            outside_port: 0,
            remote: Ipv4Addr::UNSPECIFIED,
            remote_port: 0,
            outside_ifindex: 0,
            out_hash: 0,
            in_hash: 0,
            expires: 0,
            next_free: NO_ENTRY,
        }
    }
}

impl Entry {
    fn out_key(&self) -> Key {
        Key {
            proto: self.proto,
            local: self.inside,
            local_port: self.inside_port,
            remote: self.remote,
            remote_port: self.remote_port,
        }
    }

    fn in_key(&self) -> Key {
        Key {
            proto: self.proto,
            local: self.outside,
            local_port: self.outside_port,
            remote: self.remote,
            remote_port: self.remote_port,
        }
    }

    fn expired(&self, now: u64) -> bool {
        now >= self.expires
    }
}

/// The address and port a translation maps to, as the packet path needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mapping {
    pub inside: Ipv4Addr,
    pub inside_port: u16,
    pub outside: Ipv4Addr,
    pub outside_port: u16,
    pub outside_ifindex: u32,
}

/// One translation, for `show ip nat translations` and tests. For ICMP
/// the ports are the echo identifier (inside and outside) and 0 (remote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub proto: u8,
    /// IOS "Inside local".
    pub inside: SocketAddrV4,
    /// IOS "Inside global".
    pub outside: SocketAddrV4,
    /// IOS "Outside local" / "Outside global" (the same: no outside NAT).
    pub remote: SocketAddrV4,
    pub outside_ifindex: u32,
    /// Dataplane second at which it expires unless traffic refreshes it.
    pub expires_at: u64,
}

const EMPTY: u64 = u64::MAX;
const NO_ENTRY: u32 = u32::MAX;

/// A linear-probing hash index of entry numbers. Each slot holds the
/// key's 32-bit hash (high half) and the entry number (low half), so most
/// mismatches are rejected without touching the entry.
#[derive(Debug)]
struct Index {
    slots: Box<[u64]>,
    mask: usize,
}

impl Index {
    /// An index for up to `capacity` entries at a load of at most 1/2.
    fn new(capacity: usize) -> Index {
        let size = (capacity * 2).next_power_of_two().max(8);
        Index {
            slots: vec![EMPTY; size].into_boxed_slice(),
            mask: size - 1,
        }
    }

    fn home(&self, hash: u32) -> usize {
        hash as usize & self.mask
    }

    /// The slot whose entry `is_it` accepts, among those with `hash`.
    /// Terminates: the load is at most 1/2, so an empty slot exists.
    fn find(&self, hash: u32, mut is_it: impl FnMut(u32) -> bool) -> Option<usize> {
        let mut i = self.home(hash);
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return None;
            }
            if (slot >> 32) as u32 == hash && is_it(slot as u32) {
                return Some(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    fn insert(&mut self, hash: u32, entry: u32) {
        let mut i = self.home(hash);
        while self.slots[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.slots[i] = (u64::from(hash) << 32) | u64::from(entry);
    }

    /// Empties slot `hole` and shifts later members of its probe run back
    /// so every key stays reachable from its home slot.
    fn remove(&mut self, mut hole: usize) {
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let slot = self.slots[j];
            if slot == EMPTY {
                break;
            }
            let home = self.home((slot >> 32) as u32);
            // The key at j may fill the hole if the hole lies on its probe
            // path, i.e. between its home and j (cyclically).
            if j.wrapping_sub(home) & self.mask >= j.wrapping_sub(hole) & self.mask {
                self.slots[hole] = slot;
                hole = j;
            }
        }
        self.slots[hole] = EMPTY;
    }

    /// Removes the slot holding `entry` under `hash`, if any.
    fn remove_entry(&mut self, hash: u32, entry: u32) {
        if let Some(slot) = self.find(hash, |e| e == entry) {
            self.remove(slot);
        }
    }

    fn clear(&mut self) {
        self.slots.fill(EMPTY);
    }
}

/// One worker's PAT translations: fixed capacity, allocated once, never
/// shared. Give each worker its own table over its own slice of the port
/// range ([`PortPlan::range_of`]): the outside port of return traffic then
/// names the one table that can translate it back, and no lock or atomic
/// read-modify-write is needed per packet. The packet operations
/// (`translate_outbound`, `translate_inbound`) are in the `nat` module.
#[derive(Debug)]
pub struct NatTable {
    entries: Box<[Entry]>,
    free: u32,
    out_index: Index,
    in_index: Index,
    hasher: RandomState,
    lo: u16,
    hi: u16,
    timeouts: NatTimeouts,
    /// Where the next [`NatTable::sweep`] resumes.
    cursor: usize,
    active: usize,
    counters: Arc<NatCounters>,
}

impl NatTable {
    /// A table of `capacity` translations whose outside ports (and echo
    /// identifiers) come from `port_range`, this worker's slice. The range
    /// must lie in 1024–65535 and leave out 4500: the gateway's own
    /// services (IKE, NAT-T, SSH) must keep receiving their traffic. Keep it
    /// clear of the kernel's `net.ipv4.ip_local_port_range` too (Linux
    /// default 32768–60999), or the gateway's own outgoing connections may
    /// meet translated flows on the same port.
    pub fn new(
        capacity: usize,
        port_range: RangeInclusive<u16>,
    ) -> Result<NatTable, NatConfigError> {
        if capacity == 0 || capacity > MAX_CAPACITY {
            return Err(NatConfigError::Capacity { max: MAX_CAPACITY });
        }
        let (lo, hi) = check_range(&port_range)?;
        let mut entries = vec![Entry::default(); capacity].into_boxed_slice();
        for (i, e) in entries.iter_mut().enumerate() {
            e.next_free = if i + 1 < capacity {
                (i + 1) as u32
            } else {
                NO_ENTRY
            };
        }
        Ok(NatTable {
            entries,
            free: 0,
            out_index: Index::new(capacity),
            in_index: Index::new(capacity),
            hasher: RandomState::new(),
            lo,
            hi,
            timeouts: NatTimeouts::default(),
            cursor: 0,
            active: 0,
            counters: Arc::new(NatCounters::default()),
        })
    }

    /// Replaces the timeouts (`ip nat translation …-timeout`); entries
    /// already made keep their expiry until their next packet.
    pub fn with_timeouts(mut self, timeouts: NatTimeouts) -> NatTable {
        self.timeouts = timeouts;
        self
    }

    pub fn timeouts(&self) -> NatTimeouts {
        self.timeouts
    }

    /// This table's outside ports.
    pub fn port_range(&self) -> RangeInclusive<u16> {
        self.lo..=self.hi
    }

    pub(super) fn owns_port(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// Live translations (expired ones not yet reclaimed included).
    pub fn active(&self) -> usize {
        self.active
    }

    /// The counters, to hand a clone of the `Arc` to the thread that
    /// reports them.
    pub fn counters(&self) -> &Arc<NatCounters> {
        &self.counters
    }

    /// The live translations, in table order.
    pub fn translations(&self) -> impl Iterator<Item = Translation> + '_ {
        self.entries.iter().filter(|e| e.live).map(|e| Translation {
            proto: e.proto,
            inside: SocketAddrV4::new(e.inside, e.inside_port),
            outside: SocketAddrV4::new(e.outside, e.outside_port),
            remote: SocketAddrV4::new(e.remote, e.remote_port),
            outside_ifindex: e.outside_ifindex,
            expires_at: e.expires,
        })
    }

    /// Removes every translation (`clear ip nat translation *`). Walks the
    /// whole table: for the management path, not between batches.
    pub fn clear(&mut self) {
        let capacity = self.entries.len();
        for (i, e) in self.entries.iter_mut().enumerate() {
            *e = Entry {
                next_free: if i + 1 < capacity {
                    (i + 1) as u32
                } else {
                    NO_ENTRY
                },
                ..Entry::default()
            };
        }
        self.free = 0;
        self.out_index.clear();
        self.in_index.clear();
        self.cursor = 0;
        self.active = 0;
        self.counters.set_active(0);
    }

    /// Reclaims expired translations among the next `max_entries` slots
    /// (round robin), so a worker can spread the cleanup over its idle
    /// moments between batches at a bounded cost. Returns how many were
    /// reclaimed. Lookups also reclaim the expired entries they meet.
    pub fn sweep(&mut self, now: u64, max_entries: usize) -> usize {
        let n = self.entries.len();
        let mut reclaimed = 0;
        for _ in 0..max_entries.min(n) {
            let i = self.cursor;
            self.cursor = if i + 1 == n { 0 } else { i + 1 };
            let e = &self.entries[i];
            if e.live && e.expired(now) {
                self.release(i as u32);
                reclaimed += 1;
            }
        }
        self.counters.expired(reclaimed as u64);
        reclaimed
    }

    fn hash(&self, key: &Key) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    /// The live entry for an outbound key; an expired one is reclaimed
    /// and not returned.
    pub(super) fn find_out(&mut self, key: &Key, now: u64) -> Option<u32> {
        let hash = self.hash(key);
        let entries = &self.entries;
        let slot = self
            .out_index
            .find(hash, |e| entries[e as usize].out_key() == *key)?;
        let idx = self.out_index.slots[slot] as u32;
        self.unless_expired(idx, now)
    }

    /// The live entry for an inbound key; an expired one is reclaimed.
    pub(super) fn find_in(&mut self, key: &Key, now: u64) -> Option<u32> {
        let hash = self.hash(key);
        let entries = &self.entries;
        let slot = self
            .in_index
            .find(hash, |e| entries[e as usize].in_key() == *key)?;
        let idx = self.in_index.slots[slot] as u32;
        self.unless_expired(idx, now)
    }

    fn unless_expired(&mut self, idx: u32, now: u64) -> Option<u32> {
        if self.entries[idx as usize].expired(now) {
            self.release(idx);
            self.counters.expired(1);
            return None;
        }
        Some(idx)
    }

    pub(super) fn mapping(&self, idx: u32) -> Mapping {
        let e = &self.entries[idx as usize];
        Mapping {
            inside: e.inside,
            inside_port: e.inside_port,
            outside: e.outside,
            outside_port: e.outside_port,
            outside_ifindex: e.outside_ifindex,
        }
    }

    /// Makes a translation for the outbound flow `key` on `outside_addr`
    /// of interface `outside_ifindex`.
    pub(super) fn create(
        &mut self,
        key: &Key,
        outside_addr: Ipv4Addr,
        outside_ifindex: u32,
        now: u64,
    ) -> Result<u32, NatDrop> {
        if self.free == NO_ENTRY {
            self.sweep(now, RECLAIM_ON_FULL);
            if self.free == NO_ENTRY {
                return Err(NatDrop::TableFull);
            }
        }
        let port = self
            .allocate_port(key, outside_addr, now)
            .ok_or(NatDrop::NoPortsLeft)?;
        let idx = self.free;
        let e = &mut self.entries[idx as usize];
        self.free = e.next_free;
        *e = Entry {
            live: true,
            proto: key.proto,
            tcp: TcpState::Opening,
            replied: false,
            inside: key.local,
            inside_port: key.local_port,
            outside: outside_addr,
            outside_port: port,
            remote: key.remote,
            remote_port: key.remote_port,
            outside_ifindex,
            out_hash: 0,
            in_hash: 0,
            expires: now,
            next_free: NO_ENTRY,
        };
        let (out_key, in_key) = (e.out_key(), e.in_key());
        let (out_hash, in_hash) = (self.hash(&out_key), self.hash(&in_key));
        let e = &mut self.entries[idx as usize];
        e.out_hash = out_hash;
        e.in_hash = in_hash;
        self.out_index.insert(out_hash, idx);
        self.in_index.insert(in_hash, idx);
        self.active += 1;
        self.counters.set_active(self.active);
        self.counters.created();
        Ok(idx)
    }

    /// An outside port free for this remote end: the inside port if it is
    /// in range (port preservation), else a search from a keyed hash of
    /// the flow, at most [`MAX_PORT_PROBES`] ports.
    fn allocate_port(&mut self, key: &Key, outside_addr: Ipv4Addr, now: u64) -> Option<u16> {
        let (lo, span) = (usize::from(self.lo), usize::from(self.hi - self.lo) + 1);
        let start = if self.owns_port(key.local_port) {
            usize::from(key.local_port) - lo
        } else {
            self.hash(key) as usize % span
        };
        for step in 0..span.min(MAX_PORT_PROBES) {
            let port = (lo + (start + step) % span) as u16;
            let candidate = Key {
                local: outside_addr,
                local_port: port,
                ..*key
            };
            // An expired holder is reclaimed by the lookup and frees the port.
            if self.find_in(&candidate, now).is_none() {
                return Some(port);
            }
        }
        None
    }

    /// Frees entry `idx` and removes it from both indexes.
    pub(super) fn release(&mut self, idx: u32) {
        let e = self.entries[idx as usize];
        if !e.live {
            return;
        }
        self.out_index.remove_entry(e.out_hash, idx);
        self.in_index.remove_entry(e.in_hash, idx);
        self.entries[idx as usize] = Entry {
            next_free: self.free,
            ..Entry::default()
        };
        self.free = idx;
        self.active -= 1;
        self.counters.set_active(self.active);
    }

    /// Records a packet of the translation: TCP state from its flags, and
    /// the new expiry.
    pub(super) fn refresh(&mut self, idx: u32, dir: Dir, tcp_flags: u8, now: u64) {
        let timeouts = self.timeouts;
        let e = &mut self.entries[idx as usize];
        let timeout = match e.proto {
            ip_proto::TCP => {
                e.tcp = next_tcp_state(e.tcp, &mut e.replied, dir, tcp_flags);
                match e.tcp {
                    TcpState::Established => timeouts.tcp_established,
                    TcpState::Opening | TcpState::Closing => timeouts.tcp_transitory,
                }
            }
            ip_proto::UDP => timeouts.udp,
            _ => timeouts.icmp,
        };
        e.expires = now.saturating_add(timeout);
    }
}

/// Just enough TCP tracking to pick a timeout: established once packets
/// have gone both ways and one carries neither SYN, FIN nor RST (the
/// handshake's final ACK); closing after any FIN or RST; a new SYN from
/// the inside reopens a closing entry (port reuse after TIME-WAIT).
fn next_tcp_state(state: TcpState, replied: &mut bool, dir: Dir, flags: u8) -> TcpState {
    if dir == Dir::In {
        *replied = true;
    }
    if flags & (TCP_FIN | TCP_RST) != 0 {
        return TcpState::Closing;
    }
    match state {
        TcpState::Closing if dir == Dir::Out && flags & (TCP_SYN | TCP_ACK) == TCP_SYN => {
            *replied = false;
            TcpState::Opening
        }
        TcpState::Closing => TcpState::Closing,
        _ if *replied && flags & TCP_SYN == 0 => TcpState::Established,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_shift_deletion_keeps_every_other_key_reachable() {
        let mut index = Index::new(8);
        // Many keys on the same few homes, wrapping around the end.
        let hashes: Vec<u32> = (0..8).map(|i| [14, 15, 15, 0, 14, 1, 15, 0][i]).collect();
        for (e, &h) in hashes.iter().enumerate() {
            index.insert(h, e as u32);
        }
        for gone in 0..hashes.len() {
            let mut trial = Index::new(8);
            for (e, &h) in hashes.iter().enumerate() {
                trial.insert(h, e as u32);
            }
            trial.remove_entry(hashes[gone], gone as u32);
            for (e, &h) in hashes.iter().enumerate() {
                let found = trial.find(h, |x| x == e as u32).is_some();
                assert_eq!(found, e != gone, "entry {e} after removing {gone}");
            }
        }
    }

    #[test]
    fn port_plan_gives_each_worker_a_disjoint_slice_and_finds_the_owner() {
        let plan = PortPlan::new(4501..=65535, 3).unwrap();
        let slices: Vec<_> = (0..3).map(|w| plan.range_of(w).unwrap()).collect();
        assert_eq!(*slices[0].start(), 4501);
        assert_eq!(*slices[2].end(), 65535);
        for w in 0..2 {
            assert_eq!(*slices[w].end() + 1, *slices[w + 1].start());
        }
        for (w, s) in slices.iter().enumerate() {
            assert_eq!(plan.owner_of(*s.start()), Some(w));
            assert_eq!(plan.owner_of(*s.end()), Some(w));
        }
        assert_eq!(plan.range_of(3), None);
        assert_eq!(plan.owner_of(500), None);
    }

    #[test]
    fn port_ranges_touching_the_gateways_own_ports_are_refused() {
        assert!(matches!(
            NatTable::new(16, 500..=2000),
            Err(NatConfigError::ReservedPort { port: 500, .. })
        ));
        assert!(matches!(
            NatTable::new(16, 4000..=5000),
            Err(NatConfigError::ReservedPort { port: 4500, .. })
        ));
        #[allow(clippy::reversed_empty_ranges)]
        let empty = 2000..=1999;
        assert_eq!(
            NatTable::new(16, empty).unwrap_err(),
            NatConfigError::EmptyRange
        );
        assert!(matches!(
            NatTable::new(0, 5000..=6000),
            Err(NatConfigError::Capacity { .. })
        ));
        assert!(matches!(
            PortPlan::new(5000..=5001, 3),
            Err(NatConfigError::TooFewPorts {
                ports: 2,
                workers: 3
            })
        ));
    }

    #[test]
    fn tcp_state_follows_the_handshake_and_the_close() {
        let mut replied = false;
        let mut s = TcpState::Opening;
        s = next_tcp_state(s, &mut replied, Dir::Out, TCP_SYN);
        assert_eq!(s, TcpState::Opening);
        s = next_tcp_state(s, &mut replied, Dir::In, TCP_SYN | TCP_ACK);
        assert_eq!(s, TcpState::Opening);
        s = next_tcp_state(s, &mut replied, Dir::Out, TCP_ACK);
        assert_eq!(s, TcpState::Established);
        s = next_tcp_state(s, &mut replied, Dir::In, TCP_FIN | TCP_ACK);
        assert_eq!(s, TcpState::Closing);
        s = next_tcp_state(s, &mut replied, Dir::Out, TCP_ACK);
        assert_eq!(s, TcpState::Closing);
        s = next_tcp_state(s, &mut replied, Dir::Out, TCP_SYN);
        assert_eq!(s, TcpState::Opening);
        assert!(!replied);
    }
}
