//! Where the engine's IKE SAs and CHILD_SAs are, by peer, SPI and proxy:
//! a hub holds one IKE SA or more per peer, and each expiry, delete,
//! INITIAL_CONTACT or dynamic peer's new pair that walked all of them made
//! its cost grow with the number of peers.
//!
//! Every place that adds, removes or moves an IKE SA or a CHILD_SA
//! updates the index; a missed update would make a lookup miss, so the
//! engine's tests compare the whole index with a walk of the SAs after
//! every step (`Engine::check_index`), and debug builds compare what
//! each lookup finds with a walk. What is found is checked against the
//! SA before use, so a stale entry is skipped, never acted on.

use std::collections::HashMap;
use std::net::IpAddr;

use dataplane::api::Direction;
use dataplane::spd::{PolicyTag, TrafficSelector};

use crate::ike::table::{Keyed, Table};
use crate::ikev1::PairInfo;

/// One CHILD_SA: its SPIs and proxy, and the IKE SA it lives in now.
#[derive(Debug)]
struct ChildRef {
    inbound: u32,
    outbound: u32,
    tag: PolicyTag,
    proxy: TrafficSelector,
    /// Moves with the CHILD_SA on an IKE SA rekey; not a key.
    home: [u8; 8],
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ChildKey {
    Inbound(u32),
    Outbound(u32),
    Proxy(PolicyTag, TrafficSelector),
}

impl Keyed for ChildRef {
    type Key = ChildKey;
    fn keys(&self) -> impl IntoIterator<Item = ChildKey> {
        [
            ChildKey::Inbound(self.inbound),
            ChildKey::Outbound(self.outbound),
            ChildKey::Proxy(self.tag, self.proxy),
        ]
    }
}

#[derive(Debug, Default)]
pub(super) struct SaIndex {
    /// IKE SAs by the peer's address (a NAT mapping that moves changes
    /// the port only).
    by_peer: HashMap<IpAddr, Vec<[u8; 8]>>,
    children: Table<ChildRef>,
}

impl SaIndex {
    pub(super) fn sa_added(&mut self, peer: IpAddr, k: [u8; 8]) {
        self.by_peer.entry(peer).or_default().push(k);
    }

    pub(super) fn sa_removed(&mut self, peer: IpAddr, k: [u8; 8]) {
        if let Some(v) = self.by_peer.get_mut(&peer) {
            v.retain(|x| *x != k);
            if v.is_empty() {
                self.by_peer.remove(&peer);
            }
        }
    }

    /// The IKE SAs with `peer`, oldest first.
    pub(super) fn sas_of(&self, peer: IpAddr) -> Vec<[u8; 8]> {
        self.by_peer.get(&peer).cloned().unwrap_or_default()
    }

    pub(super) fn child_added(&mut self, info: &PairInfo, home: [u8; 8]) {
        self.children.push(ChildRef {
            inbound: info.inbound_spi,
            outbound: info.outbound_spi,
            tag: info.tag,
            proxy: info.proxy,
            home,
        });
    }

    /// Forgets the CHILD_SA with `inbound_spi` (our SPIs are unique).
    pub(super) fn child_removed(&mut self, inbound_spi: u32) {
        for id in self.children.ids_with(&ChildKey::Inbound(inbound_spi)) {
            self.children.remove(id);
        }
    }

    pub(super) fn child_moved(&mut self, inbound_spi: u32, to: [u8; 8]) {
        for id in self.children.ids_with(&ChildKey::Inbound(inbound_spi)) {
            self.children[id].home = to;
        }
    }

    /// The IKE SAs said to hold a CHILD_SA whose SA in `direction` has
    /// `spi`, oldest CHILD_SA first (an outbound SPI is the peer's choice
    /// and may be another peer's too).
    pub(super) fn homes_of(&self, direction: Direction, spi: u32) -> Vec<(u32, [u8; 8])> {
        let key = match direction {
            Direction::Inbound => ChildKey::Inbound(spi),
            Direction::Outbound => ChildKey::Outbound(spi),
        };
        self.children
            .with(&key)
            .map(|(_, c)| (c.inbound, c.home))
            .collect()
    }

    /// (inbound SPI, IKE SA) of the CHILD_SAs for `proxy` of entry `tag`.
    pub(super) fn with_proxy(&self, tag: PolicyTag, proxy: TrafficSelector) -> Vec<(u32, [u8; 8])> {
        self.children
            .with(&ChildKey::Proxy(tag, proxy))
            .map(|(_, c)| (c.inbound, c.home))
            .collect()
    }

    /// Tests: (inbound SPI, IKE SA) of every CHILD_SA indexed.
    #[cfg(test)]
    pub(super) fn dump_children(&self) -> Vec<(u32, [u8; 8])> {
        self.children.iter().map(|c| (c.inbound, c.home)).collect()
    }

    /// Tests: every IKE SA indexed, with its peer.
    #[cfg(test)]
    pub(super) fn dump_sas(&self) -> Vec<(IpAddr, [u8; 8])> {
        self.by_peer
            .iter()
            .flat_map(|(p, v)| v.iter().map(move |k| (*p, *k)))
            .collect()
    }
}
