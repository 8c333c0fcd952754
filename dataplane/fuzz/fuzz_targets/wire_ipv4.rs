//! IPv4 header parsing: getters, checksum, Repr (also after fixing the
//! checksum so parsing goes past the checksum check), TTL decrement and
//! emit/parse round trip.
#![no_main]

use dataplane::wire::ipv4::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check(data);
    // Also with version and Total Length made consistent, so most inputs
    // get past new_checked.
    if data.len() >= 20 {
        let mut owned = data.to_vec();
        let total_len = u16::try_from(owned.len()).unwrap_or(u16::MAX);
        let mut p = Packet::new_unchecked(&mut owned[..]);
        p.set_version(4);
        p.set_total_len(total_len);
        check(&owned);
    }
});

fn check(data: &[u8]) {
    if let Ok(p) = Packet::new_checked_header(data) {
        let _ = (p.options(), p.payload(), p.header(), p.verify_checksum());
    }
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.version(),
        p.header_len(),
        p.dscp_ecn(),
        p.total_len(),
        p.ident(),
    );
    let _ = (
        p.dont_frag(),
        p.more_frags(),
        p.frag_offset(),
        p.is_fragment(),
    );
    let _ = (
        p.ttl(),
        p.protocol(),
        p.checksum(),
        p.src_addr(),
        p.dst_addr(),
    );
    let _ = (p.options(), p.payload());
    let _ = Repr::parse(&p);

    let mut owned = data.to_vec();
    let mut p = Packet::new_checked(&mut owned[..]).expect("checked above");
    p.fill_checksum();
    p.decrement_ttl_incremental();
    assert!(p.verify_checksum());
    let p = Packet::new_checked(&owned[..]).expect("checked above");
    let repr = Repr::parse(&p).expect("valid checksum");
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(
        Repr::parse(&Packet::new_checked(&out[..]).expect("emitted")),
        Ok(repr)
    );
}
