//! Ethernet II / 802.1Q / QinQ frame parsing: every getter and Repr on
//! arbitrary bytes, and emit of a parsed Repr re-parses to the same Repr.
#![no_main]

use dataplane::wire::ethernet::{Frame, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::new_checked(data) else {
        return;
    };
    let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype());
    let _ = (
        frame.vlan_id(),
        frame.vlan_pcp(),
        frame.inner_vlan_id(),
        frame.outer_tpid(),
    );
    assert_eq!(frame.header_len() + frame.payload().len(), data.len());
    if let Ok(repr) = Repr::parse(&frame) {
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Frame::new_unchecked(&mut out[..]));
        let again = Repr::parse(&Frame::new_checked(&out[..]).expect("emitted frame"))
            .expect("emitted repr");
        assert_eq!(again.ethertype, repr.ethertype);
        assert_eq!(again.vlan_id, repr.vlan_id);
    }
});
