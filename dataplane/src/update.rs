//! Changes to a worker's tables, sent by the management thread over a
//! per-worker crossbeam queue and applied by the worker between batches.
//! The SAs inside are `Arc`s built once by the management thread: every
//! worker holds the same SA (one sequence number, one replay window, one
//! set of counters), and an SA removed from a worker's table is freed only
//! when the last holder lets go, so a delete never frees memory a worker
//! is still reading.

use std::sync::Arc;

use crate::api::Direction;
use crate::nat::NatRules;
use crate::netlink::FibUpdate;
use crate::pipeline::Tables;
use crate::sa::{InboundSa, OutboundSa, SaRef};
use crate::spd::Spd;
use crate::tunif::TunnelPorts;

/// One change to a worker's [`Tables`].
pub enum TableUpdate {
    AddInbound(Arc<InboundSa>),
    /// Adds or replaces the outbound SA with this SPI.
    AddOutbound(Arc<OutboundSa>),
    RemoveSa {
        direction: Direction,
        spi: u32,
    },
    /// The whole SPD, replaced at once (each worker gets its own copy).
    ReplaceSpd(Box<Spd>),
    /// A change to the kernel's links, addresses, routes or neighbours.
    Fib(FibUpdate),
    /// The NAT rule list, replaced at once; translations already made
    /// stay until they time out (as IOS keeps them).
    ReplaceNat(Box<NatRules>),
    /// The tunnel interfaces, replaced at once. A device left out closes
    /// when the last worker lets go of it.
    ReplaceTunnels(TunnelPorts),
}

impl TableUpdate {
    /// Applies the change; returns an SA the table let go of, so the worker
    /// can hand it back to the management thread instead of freeing it on
    /// the packet path.
    pub fn apply(self, t: &mut Tables) -> Option<SaRef> {
        match self {
            TableUpdate::AddInbound(sa) => {
                // The management thread checks duplicates before sending;
                // a duplicate here replaces nothing.
                let _ = t.sadb.insert_inbound(sa);
                None
            }
            TableUpdate::AddOutbound(sa) => t.sadb.insert_outbound(sa).map(SaRef::Outbound),
            TableUpdate::RemoveSa { direction, spi } => t.sadb.take(direction, spi),
            TableUpdate::ReplaceSpd(spd) => {
                t.spd = *spd;
                None
            }
            TableUpdate::Fib(u) => {
                u.apply(t);
                None
            }
            TableUpdate::ReplaceTunnels(ports) => {
                t.tunnels = ports;
                None
            }
            TableUpdate::ReplaceNat(rules) => {
                if let Some(pat) = t.pat.as_mut() {
                    pat.rules = *rules;
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[test]
    fn an_sa_added_then_removed_is_shared_then_handed_back() {
        let (out_params, in_params) = testkit::sa_pair(
            crate::crypto::EncAlg::AesGcm128(crate::crypto::GcmIcv::B16),
            crate::crypto::AuthAlg::None,
            testkit::tunnel(false),
            false,
            false,
            64,
        );
        let sa = Arc::new(InboundSa::new(&in_params, 0).unwrap());
        let mut t = Tables::default();
        assert!(TableUpdate::AddInbound(sa.clone()).apply(&mut t).is_none());
        assert!(Arc::ptr_eq(t.sadb.inbound(sa.spi()).unwrap(), &sa));
        let out = Arc::new(OutboundSa::new(&out_params, 0).unwrap());
        assert!(TableUpdate::AddOutbound(out.clone())
            .apply(&mut t)
            .is_none());
        let back = TableUpdate::RemoveSa {
            direction: Direction::Inbound,
            spi: sa.spi(),
        }
        .apply(&mut t)
        .expect("the removed SA comes back");
        assert_eq!(back.spi(), sa.spi());
        assert!(t.sadb.inbound(sa.spi()).is_none());
        assert!(t.sadb.outbound(out.spi()).is_some());
    }
}
