//! ICMPv4 and ICMPv6 parsing. The first input byte picks the family; the
//! checksum is fixed before Repr::parse so the fuzzer explores message
//! types instead of stopping at the checksum check.
#![no_main]

use std::net::Ipv6Addr;

use dataplane::wire::{icmpv4, icmpv6};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&family, rest)) = data.split_first() else {
        return;
    };
    let _ = icmpv4::quote_len(rest, icmpv4::ERROR_LIMIT);
    let _ = icmpv6::quote_len(rest, icmpv6::MIN_MTU);
    let mut owned = rest.to_vec();
    if family & 1 == 0 {
        if let Ok(p) = icmpv4::Packet::new_checked(rest) {
            let _ = (
                p.msg_type(),
                p.code(),
                p.checksum(),
                p.rest_of_header(),
                p.payload(),
            );
            let _ = (p.echo_ident(), p.echo_seq_no(), p.next_hop_mtu());
            let _ = icmpv4::Repr::parse(&p);
        }
        let Ok(mut p) = icmpv4::Packet::new_checked(&mut owned[..]) else {
            return;
        };
        p.fill_checksum();
        let p = icmpv4::Packet::new_checked(&owned[..]).expect("checked above");
        if let Ok(repr) = icmpv4::Repr::parse(&p) {
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut icmpv4::Packet::new_unchecked(&mut out[..]));
            let again = icmpv4::Packet::new_checked(&out[..]).expect("emitted");
            assert_eq!(icmpv4::Repr::parse(&again), Ok(repr));
        }
    } else {
        let (src, dst) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
        if let Ok(p) = icmpv6::Packet::new_checked(rest) {
            let _ = (
                p.msg_type(),
                p.code(),
                p.checksum(),
                p.rest_of_header(),
                p.payload(),
            );
            let _ = (
                p.echo_ident(),
                p.echo_seq_no(),
                p.mtu(),
                p.is_neighbor_discovery(),
            );
            let _ = icmpv6::Repr::parse(&src, &dst, &p);
        }
        let Ok(mut p) = icmpv6::Packet::new_checked(&mut owned[..]) else {
            return;
        };
        p.fill_checksum(&src, &dst);
        let p = icmpv6::Packet::new_checked(&owned[..]).expect("checked above");
        if let Ok(repr) = icmpv6::Repr::parse(&src, &dst, &p) {
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&src, &dst, &mut icmpv6::Packet::new_unchecked(&mut out[..]));
            let again = icmpv6::Packet::new_checked(&out[..]).expect("emitted");
            assert_eq!(icmpv6::Repr::parse(&src, &dst, &again), Ok(repr));
        }
    }
});
