//! Ethernet II frames (IEEE 802.3 clause 3.2.6 "Length/Type" as a type) with an
//! optional IEEE 802.1Q VLAN tag, or an 802.1ad QinQ pair (S-tag `0x88a8`
//! outside a C-tag `0x8100`).
//!
//! The gateway's ports may be trunks, so [`Frame::ethertype`] is the type of
//! the payload after any tags, and [`Frame::payload`] starts after them: the
//! rest of the packet path never has to know whether the frame was tagged.

use core::fmt;

use super::{be16, put16, Error, Result};

/// EtherType values (IEEE "EtherType" registry) the gateway looks at.
pub mod ethertype {
    /// Internet Protocol version 4.
    pub const IPV4: u16 = 0x0800;
    /// Address Resolution Protocol (RFC 826); passed to the kernel.
    pub const ARP: u16 = 0x0806;
    /// IEEE 802.1Q customer VLAN tag (C-tag).
    pub const VLAN: u16 = 0x8100;
    /// Internet Protocol version 6.
    pub const IPV6: u16 = 0x86dd;
    /// IEEE 802.1ad service VLAN tag (S-tag), the outer tag of QinQ.
    pub const QINQ: u16 = 0x88a8;
}

/// A 48-bit IEEE MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Group (multicast or broadcast) addresses have the I/G bit set; the
    /// dataplane hands such frames to the kernel instead of forwarding them.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The raw six bytes in transmission order.
    pub fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

mod field {
    use core::ops::Range;

    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// EtherType, or a TPID when the frame is tagged.
    pub const ETHERTYPE: usize = 12;
    /// Length of a tag: TPID already counted above, TCI (2) plus the next EtherType/TPID (2).
    pub const TAG_LEN: usize = 4;
    /// Tag control information of the first tag (PCP 3 bits, DEI 1, VID 12).
    pub const OUTER_TCI: usize = 14;
    /// TPID or EtherType after the first tag.
    pub const OUTER_NEXT: usize = 16;
    /// TCI of the second (C-)tag of a QinQ frame.
    pub const INNER_TCI: usize = 18;
    /// EtherType after the second tag.
    pub const INNER_NEXT: usize = 20;
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;

/// Mask of the VLAN identifier in a TCI.
const VID_MASK: u16 = 0x0fff;

fn is_tpid(value: u16) -> bool {
    value == ethertype::VLAN || value == ethertype::QINQ
}

/// A zero-copy view over an Ethernet II frame, with up to two VLAN tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps a buffer without checking it. Getters may panic if the buffer is
    /// shorter than [`Frame::header_len`]; use [`Frame::new_checked`] for
    /// anything received.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wraps a buffer after checking it holds the whole header including
    /// every tag it announces, so every getter is then infallible.
    pub fn new_checked(buffer: T) -> Result<Frame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the header and the tags it announces.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        if data.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if data.len() < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Number of VLAN tags (0, 1 or 2), read from the TPIDs. Needs 14 bytes;
    /// reads a second TPID only if the buffer holds it, so it is safe to
    /// call from `check_len`.
    fn tag_count(&self) -> usize {
        let data = self.buffer.as_ref();
        if !is_tpid(be16(data, field::ETHERTYPE)) {
            return 0;
        }
        match data.get(field::OUTER_NEXT..field::OUTER_NEXT + 2) {
            Some(next) if u16::from_be_bytes([next[0], next[1]]) == ethertype::VLAN => 2,
            _ => 1,
        }
    }

    /// Header length including VLAN tags: 14, 18 or 22 bytes.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.tag_count() * field::TAG_LEN
    }

    /// Destination MAC address.
    pub fn dst_addr(&self) -> EthernetAddress {
        let mut addr = [0u8; 6];
        addr.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        EthernetAddress(addr)
    }

    /// Source MAC address.
    pub fn src_addr(&self) -> EthernetAddress {
        let mut addr = [0u8; 6];
        addr.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        EthernetAddress(addr)
    }

    /// EtherType of the payload, after any VLAN tags.
    pub fn ethertype(&self) -> u16 {
        let data = self.buffer.as_ref();
        match self.tag_count() {
            0 => be16(data, field::ETHERTYPE),
            1 => be16(data, field::OUTER_NEXT),
            _ => be16(data, field::INNER_NEXT),
        }
    }

    /// The TPID of the outer tag (`0x8100` or `0x88a8`), if tagged.
    pub fn outer_tpid(&self) -> Option<u16> {
        (self.tag_count() > 0).then(|| be16(self.buffer.as_ref(), field::ETHERTYPE))
    }

    /// VLAN ID of the outer tag: the only tag of an 802.1Q frame, the S-tag of
    /// a QinQ frame. This is what selects the gateway's sub-interface.
    pub fn vlan_id(&self) -> Option<u16> {
        (self.tag_count() > 0).then(|| be16(self.buffer.as_ref(), field::OUTER_TCI) & VID_MASK)
    }

    /// Priority code point (802.1p) of the outer tag, kept on re-tagging.
    pub fn vlan_pcp(&self) -> Option<u8> {
        (self.tag_count() > 0).then(|| (self.buffer.as_ref()[field::OUTER_TCI] >> 5) & 0x07)
    }

    /// VLAN ID of the inner C-tag of a QinQ frame.
    pub fn inner_vlan_id(&self) -> Option<u16> {
        (self.tag_count() > 1).then(|| be16(self.buffer.as_ref(), field::INNER_TCI) & VID_MASK)
    }

    /// Everything after the header and tags (may include Ethernet padding).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType after the existing tags (the tag layout is kept).
    pub fn set_ethertype(&mut self, value: u16) {
        let at = match self.tag_count() {
            0 => field::ETHERTYPE,
            1 => field::OUTER_NEXT,
            _ => field::INNER_NEXT,
        };
        put16(self.buffer.as_mut(), at, value);
    }

    /// Mutable payload after the header and tags.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

/// The meaning of an Ethernet header: addresses, EtherType and VLAN IDs.
///
/// The PCP/DEI bits are not kept; [`Repr::emit`] writes them as zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source MAC address.
    pub src_addr: EthernetAddress,
    /// Destination MAC address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload (after tags).
    pub ethertype: u16,
    /// Outer (802.1Q, or QinQ S-tag) VLAN ID.
    pub vlan_id: Option<u16>,
    /// QinQ inner C-tag VLAN ID; only emitted when `vlan_id` is set.
    pub inner_vlan_id: Option<u16>,
}

impl Repr {
    /// Reads the header of a checked frame.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &Frame<&T>) -> Result<Repr> {
        frame.check_len()?;
        Ok(Repr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
            vlan_id: frame.vlan_id(),
            inner_vlan_id: frame.inner_vlan_id(),
        })
    }

    /// Header length this Repr emits: 14, 18 or 22 bytes.
    pub fn header_len(&self) -> usize {
        match (self.vlan_id, self.inner_vlan_id) {
            (None, _) => HEADER_LEN,
            (Some(_), None) => HEADER_LEN + field::TAG_LEN,
            (Some(_), Some(_)) => HEADER_LEN + 2 * field::TAG_LEN,
        }
    }

    /// Same as [`Repr::header_len`]: the payload is written by the caller.
    pub fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header (and tags) into the first [`Repr::header_len`]
    /// bytes; a single tag uses TPID `0x8100`, a pair `0x88a8` + `0x8100`.
    /// The buffer must hold at least `header_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, frame: &mut Frame<&mut T>) {
        let data = frame.buffer.as_mut();
        data[field::DESTINATION].copy_from_slice(&self.dst_addr.0);
        data[field::SOURCE].copy_from_slice(&self.src_addr.0);
        match (self.vlan_id, self.inner_vlan_id) {
            (None, _) => put16(data, field::ETHERTYPE, self.ethertype),
            (Some(vid), None) => {
                put16(data, field::ETHERTYPE, ethertype::VLAN);
                put16(data, field::OUTER_TCI, vid & VID_MASK);
                put16(data, field::OUTER_NEXT, self.ethertype);
            }
            (Some(outer), Some(inner)) => {
                put16(data, field::ETHERTYPE, ethertype::QINQ);
                put16(data, field::OUTER_TCI, outer & VID_MASK);
                put16(data, field::OUTER_NEXT, ethertype::VLAN);
                put16(data, field::INNER_TCI, inner & VID_MASK);
                put16(data, field::INNER_NEXT, self.ethertype);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const UNTAGGED_ARP: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, 0x00,
        0x01,
    ];

    const DOT1Q_IPV4_VLAN_100: [u8; 20] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x81, 0x00, 0xa0,
        0x64, 0x08, 0x00, 0x45, 0x00,
    ];

    const QINQ_IPV6: [u8; 24] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x88, 0xa8, 0x00,
        0x0a, 0x81, 0x00, 0x00, 0x14, 0x86, 0xdd, 0x60, 0x00,
    ];

    #[test]
    fn untagged_frame_reads_addresses_and_ethertype() {
        let frame = Frame::new_checked(&UNTAGGED_ARP[..]).unwrap();
        assert!(frame.dst_addr().is_broadcast());
        assert_eq!(frame.src_addr().to_string(), "52:54:00:12:34:56");
        assert_eq!(frame.ethertype(), ethertype::ARP);
        assert_eq!(frame.vlan_id(), None);
        assert_eq!(frame.header_len(), 14);
        assert_eq!(frame.payload(), &[0x00, 0x01]);
    }

    #[test]
    fn dot1q_frame_reports_inner_ethertype_and_vlan() {
        let frame = Frame::new_checked(&DOT1Q_IPV4_VLAN_100[..]).unwrap();
        assert_eq!(frame.ethertype(), ethertype::IPV4);
        assert_eq!(frame.vlan_id(), Some(100));
        assert_eq!(frame.vlan_pcp(), Some(5));
        assert_eq!(frame.inner_vlan_id(), None);
        assert_eq!(frame.header_len(), 18);
        assert_eq!(frame.payload(), &[0x45, 0x00]);
    }

    #[test]
    fn qinq_frame_reports_both_vlans() {
        let frame = Frame::new_checked(&QINQ_IPV6[..]).unwrap();
        assert_eq!(frame.outer_tpid(), Some(ethertype::QINQ));
        assert_eq!(frame.ethertype(), ethertype::IPV6);
        assert_eq!(frame.vlan_id(), Some(10));
        assert_eq!(frame.inner_vlan_id(), Some(20));
        assert_eq!(frame.header_len(), 22);
        assert_eq!(frame.payload(), &[0x60, 0x00]);
    }

    #[test]
    fn frame_cut_inside_its_vlan_tag_is_truncated() {
        assert_eq!(
            Frame::new_checked(&DOT1Q_IPV4_VLAN_100[..17]),
            Err(Error::Truncated)
        );
        assert_eq!(Frame::new_checked(&QINQ_IPV6[..21]), Err(Error::Truncated));
        assert_eq!(
            Frame::new_checked(&UNTAGGED_ARP[..13]),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn repr_round_trips_untagged_dot1q_and_qinq() {
        for bytes in [&UNTAGGED_ARP[..], &DOT1Q_IPV4_VLAN_100[..], &QINQ_IPV6[..]] {
            let repr = Repr::parse(&Frame::new_checked(bytes).unwrap()).unwrap();
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Frame::new_unchecked(&mut out[..]));
            let again = Repr::parse(&Frame::new_checked(&out[..]).unwrap()).unwrap();
            assert_eq!(again, repr);
        }
    }

    #[test]
    fn setters_rewrite_addresses_and_inner_ethertype() {
        let mut bytes = DOT1Q_IPV4_VLAN_100;
        let mut frame = Frame::new_checked(&mut bytes[..]).unwrap();
        frame.set_dst_addr(EthernetAddress([1, 2, 3, 4, 5, 6]));
        frame.set_src_addr(EthernetAddress([7, 8, 9, 10, 11, 12]));
        frame.set_ethertype(ethertype::IPV6);
        frame.payload_mut()[0] = 0x60;
        assert_eq!(frame.dst_addr(), EthernetAddress([1, 2, 3, 4, 5, 6]));
        assert_eq!(frame.src_addr(), EthernetAddress([7, 8, 9, 10, 11, 12]));
        assert_eq!(frame.ethertype(), ethertype::IPV6);
        assert_eq!(frame.vlan_id(), Some(100));
        assert_eq!(frame.payload()[0], 0x60);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = Frame::new_checked(&bytes[..]) {
                let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
                let _ = (frame.vlan_id(), frame.vlan_pcp(), frame.inner_vlan_id(), frame.outer_tpid());
                prop_assert!(frame.header_len() + frame.payload().len() == bytes.len());
                let _ = Repr::parse(&frame);
            }
        }
    }
}
