//! The pipeline's NAT stages (seed 003's `ip nat inside source list …
//! overload`): where in a frame's way [`crate::nat`] is asked, and what
//! its verdicts become.
//!
//! - **Outbound**: a packet from the inside that no crypto map protects
//!   (the SPD said bypass, or nothing matched) is translated once its
//!   route is known (the egress interface picks the rule) and it is known
//!   to fit or to be fragmentable, just before its Ethernet header is
//!   written. Packets the SPD protects never get here: crypto first.
//! - **Inbound**: a packet the XDP program steered to us on the outside
//!   that is not ESP is return traffic of a translation (the program only
//!   redirects the PAT range). Translated, it is routed like any inside
//!   bound packet; another worker's port is handed to that worker (each
//!   worker owns one slice of the range, [`PortPlan`]); anything else is
//!   the kernel's.

use crate::counters::DropReason;
use crate::esp::PacketBuf;
use crate::nat::{NatConfigError, NatRules, NatTable, NatVerdict, PortPlan, Untranslated};

use super::{Action, Stage};

/// One worker's NAT state: the rules every worker shares (a copy each,
/// replaced whole on configuration change), its own translation table
/// over its own slice of the port range, and the plan that says which
/// worker owns any other port.
#[derive(Debug)]
pub struct PatState {
    pub rules: NatRules,
    pub table: NatTable,
    pub plan: PortPlan,
    /// This worker's index in `plan`.
    pub worker: usize,
}

impl PatState {
    /// A worker's state with no rules yet (nothing is translated until
    /// the control process loads some) and a table of `capacity`
    /// translations over the worker's slice of the plan.
    pub fn new(plan: PortPlan, worker: usize, capacity: usize) -> Result<PatState, NatConfigError> {
        let range = plan.range_of(worker).ok_or(NatConfigError::TooFewPorts {
            ports: 0,
            workers: worker + 1,
        })?;
        Ok(PatState {
            rules: NatRules::default(),
            table: NatTable::new(capacity, range)?,
            plan,
            worker,
        })
    }

    /// Outbound translation of the IP packet in `f`, leaving through
    /// `egress_ifindex`. `Err`: drop it (counted here and by NAT).
    pub(super) fn outbound(
        &mut self,
        f: &mut PacketBuf<'_>,
        egress_ifindex: u32,
        now: u64,
    ) -> Result<(), DropReason> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let end = f.start.saturating_add(f.len);
        let Some(packet) = f.frame.get_mut(f.start..end) else {
            return Err(DropReason::Malformed);
        };
        match self
            .table
            .translate_outbound(&self.rules, packet, egress_ifindex, now)
        {
            NatVerdict::Translated | NatVerdict::Untranslated(_) => Ok(()),
            NatVerdict::Drop(_) => Err(DropReason::Nat),
        }
    }

    /// Inbound: what becomes of a non-ESP packet for one of our addresses
    /// that arrived on the outside `ingress_ifindex`. `link_len` is the
    /// length of the link-layer header in front of the packet, given back
    /// to the frame when it is handed to another worker whole.
    pub(super) fn inbound(
        &mut self,
        f: &mut PacketBuf<'_>,
        ingress_ifindex: u32,
        link_len: usize,
        now: u64,
    ) -> Stage {
        let end = f.start.saturating_add(f.len);
        let Some(packet) = f.frame.get_mut(f.start..end) else {
            return Stage::Done(Action::Drop(DropReason::Malformed));
        };
        match self
            .table
            .translate_inbound(&self.rules, packet, ingress_ifindex, now)
        {
            NatVerdict::Translated => Stage::Forward { bypass: true },
            NatVerdict::Untranslated(Untranslated::OutOfRange { port }) => {
                match self.plan.owner_of(port) {
                    Some(worker) if worker != self.worker && link_len <= f.start => {
                        f.start -= link_len;
                        f.len += link_len;
                        Stage::Done(Action::Handoff { worker })
                    }
                    _ => Stage::Done(Action::ToKernel),
                }
            }
            NatVerdict::Untranslated(_) => Stage::Done(Action::ToKernel),
            NatVerdict::Drop(_) => Stage::Done(Action::Drop(DropReason::Nat)),
        }
    }
}
