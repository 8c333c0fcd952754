//! IPv6 header parsing and the extension-header walk on arbitrary bytes,
//! with invariants on the offsets the ESP code will write to.
#![no_main]

use dataplane::wire::ipv6::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Also with version and Payload Length made consistent, so most inputs
    // reach the extension-header walk instead of failing new_checked.
    if data.len() >= 40 {
        let mut owned = data.to_vec();
        let payload_len = u16::try_from(owned.len() - 40).unwrap_or(u16::MAX);
        let mut p = Packet::new_unchecked(&mut owned[..]);
        p.set_version(6);
        p.set_payload_len(payload_len);
        check(&owned);
    }
});

fn check(data: &[u8]) {
    if let Ok(p) = Packet::new_checked_header(data) {
        let _ = (p.payload(), p.walk_ext_headers());
    }
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.version(),
        p.traffic_class(),
        p.flow_label(),
        p.payload_len(),
    );
    let _ = (
        p.next_header(),
        p.hop_limit(),
        p.src_addr(),
        p.dst_addr(),
        p.payload(),
    );
    if let Ok(walk) = p.walk_ext_headers() {
        assert!(walk.upper_offset <= data.len());
        assert!(walk.unfragmentable_len <= walk.upper_offset);
        assert!(walk.unfragmentable_nh_offset < walk.unfragmentable_len);
    }
    if let Ok(repr) = Repr::parse(&p) {
        let mut out = vec![0u8; 40];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        let again = Repr::parse(&Packet::new_checked_header(&out[..]).expect("emitted"));
        assert_eq!(again, Ok(repr));
    }
}
