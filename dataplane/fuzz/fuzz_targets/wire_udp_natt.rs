//! UDP datagram parsing and RFC 3948 classification of its payload, as the
//! dataplane does for every packet to port 4500.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use dataplane::wire::esp;
use dataplane::wire::natt::{classify, NattPayload};
use dataplane::wire::udp::{Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The raw input is also a candidate UDP payload.
    check_natt(data);
    let Ok(p) = Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.src_port(),
        p.dst_port(),
        p.len(),
        p.checksum(),
        p.is_empty(),
    );
    let _ = p.verify_checksum_v4(&Ipv4Addr::LOCALHOST, &Ipv4Addr::BROADCAST);
    let _ = p.verify_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::UNSPECIFIED);
    let _ = Repr::parse(&p);
    check_natt(p.payload());

    let mut owned = data.to_vec();
    let mut p = Packet::new_checked(&mut owned[..]).expect("checked above");
    p.fill_checksum_v4(&Ipv4Addr::LOCALHOST, &Ipv4Addr::BROADCAST);
    assert!(p.verify_checksum_v4(&Ipv4Addr::LOCALHOST, &Ipv4Addr::BROADCAST));
    p.fill_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::UNSPECIFIED);
    assert!(p.verify_checksum_v6(&Ipv6Addr::LOCALHOST, &Ipv6Addr::UNSPECIFIED));
});

fn check_natt(payload: &[u8]) {
    match classify(payload) {
        NattPayload::Esp(bytes) => {
            let p = esp::Packet::new_checked(bytes).expect("classified as ESP");
            assert_ne!(p.spi(), 0);
            let _ = (p.seq(), p.payload());
        }
        NattPayload::Ike(bytes) => assert_eq!(bytes.len() + 4, payload.len()),
        NattPayload::Keepalive => assert_eq!(payload, [0xff]),
        NattPayload::Invalid => {}
    }
}
