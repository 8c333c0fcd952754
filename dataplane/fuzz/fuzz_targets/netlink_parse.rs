//! The rtnetlink parser (`netlink::wire`) on hostile datagrams: nothing may
//! panic, every event that decodes re-encodes (as the kernel would send
//! it) to a message that decodes to the same event, and the events, fed
//! to a `Mirror` and its updates applied to a worker's tables, panic
//! nowhere either. The first input byte selects a mode: raw bytes, or the
//! rest behind a valid header of a chosen message type, so the fuzzer
//! spends its time in the body and attribute decoders.
#![no_main]

use dataplane::netlink::wire::{build, decode, messages, Decoded, NLMSG_HDRLEN};
use dataplane::netlink::Mirror;
use dataplane::pipeline::Tables;
use dataplane::route::PortRole;
use libfuzzer_sys::fuzz_target;

const TYPES: [u16; 16] = [1, 2, 3, 4, 16, 17, 20, 21, 24, 25, 28, 29, 30, 18, 22, 26];

fn check(datagram: &[u8]) {
    let mut mirror = Mirror::new([("eth0", PortRole::Inside), ("eth1", PortRole::Outside)]);
    let mut tables = Tables::default();
    let mut updates = Vec::new();
    for m in messages(datagram) {
        let Ok(m) = m else { break };
        let Ok(Decoded::Event(ev)) = decode(&m) else {
            continue;
        };
        let mut again = Vec::new();
        build::event(&mut again, &ev, 1);
        let m2 = messages(&again)
            .next()
            .expect("one message")
            .expect("a built message parses");
        assert_eq!(decode(&m2), Ok(Decoded::Event(ev.clone())), "round trip changed it");
        mirror.update(ev, &mut updates);
    }
    for u in &updates {
        u.apply(&mut tables);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 0x80 == 0 {
        check(rest);
        return;
    }
    let kind = TYPES[usize::from(mode & 0x0f)];
    let flags = if mode & 0x10 != 0 { 0x100u16 } else { 0 };
    let len = (NLMSG_HDRLEN + rest.len()) as u32;
    let mut d = Vec::with_capacity(len as usize);
    d.extend_from_slice(&len.to_ne_bytes());
    d.extend_from_slice(&kind.to_ne_bytes());
    d.extend_from_slice(&flags.to_ne_bytes());
    d.extend_from_slice(&1u32.to_ne_bytes());
    d.extend_from_slice(&0u32.to_ne_bytes());
    d.extend_from_slice(rest);
    check(&d);
});
