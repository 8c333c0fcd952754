//! The kernel's address notifications (rtnetlink `RTM_NEWADDR` /
//! `RTM_DELADDR`, through the dataplane crate's parser), so `espada run`
//! follows the outside interface's address when it changes (`ip address
//! dhcp`: the kernel's DHCP client re-leases it; seed 003's spoke).
//!
//! Only *whether* an address changed matters here: the daemon then takes
//! a fresh [`KernelInterfaces`](crate::config::KernelInterfaces) snapshot
//! and recompiles, so a lost or garbled notification costs nothing but a
//! look.

use std::os::fd::{AsFd, AsRawFd, RawFd};

use dataplane::netlink::{KernelEvent, NetlinkError, RtEvents};

/// A subscription to the kernel's notifications.
pub struct AddrWatch {
    events: RtEvents,
    buf: Vec<KernelEvent>,
}

impl AddrWatch {
    /// Subscribes in this process's network namespace.
    pub fn subscribe() -> Result<AddrWatch, NetlinkError> {
        Ok(AddrWatch {
            events: RtEvents::subscribe()?,
            buf: Vec::new(),
        })
    }

    /// The socket to poll.
    pub fn fd(&self) -> RawFd {
        self.events.as_fd().as_raw_fd()
    }

    /// Reads every queued notification without blocking; true when an
    /// address came or went (or notifications were lost, so one may
    /// have). Routes, links and neighbours are read and forgotten.
    pub fn changed(&mut self) -> bool {
        let lost = self.events.drain(&mut self.buf).is_err();
        let changed = lost || self.buf.iter().any(is_address_change);
        self.buf.clear();
        changed
    }
}

/// Whether `e` adds or removes an address.
pub fn is_address_change(e: &KernelEvent) -> bool {
    matches!(e, KernelEvent::Addr(_) | KernelEvent::AddrGone(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::netlink::IfAddr;

    #[test]
    fn only_address_notifications_count() {
        let a = IfAddr {
            ifindex: 3,
            addr: "198.18.1.2".parse().unwrap(),
            prefix_len: 24,
        };
        assert!(is_address_change(&KernelEvent::Addr(a)));
        assert!(is_address_change(&KernelEvent::AddrGone(a)));
        assert!(!is_address_change(&KernelEvent::LinkGone { ifindex: 3 }));
    }
}
