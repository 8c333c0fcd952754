//! The control-socket decoder (`api::decode`) on hostile datagrams: nothing
//! may panic, and a datagram that decodes must re-encode to a message that
//! decodes to the same value (the encoding is canonical and lossless).
//! The first input byte selects a mode: raw bytes, or the rest placed
//! behind a valid version-1 header of a chosen message type, so the fuzzer
//! spends its time in the body decoders rather than on the magic.
#![no_main]

use dataplane::api::wire::{HEADER_LEN, MAGIC};
use dataplane::api::{decode, encode, PROTOCOL_VERSION};
use libfuzzer_sys::fuzz_target;

fn check(datagram: &[u8]) {
    if let Ok(msg) = decode(datagram) {
        let again = encode(&msg).expect("a decoded message encodes");
        assert_eq!(decode(&again).as_ref(), Ok(&msg), "round trip changed it");
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
    // Types 0x0001-0x000f, 0x0101-0x010f, 0x0201-0x020f (TedProbe is 0x0207;
    // the rest of each range is unknown).
    let msg_type = (u16::from(mode & 0x30) << 4) | u16::from(mode & 0x0f);
    let mut d = Vec::with_capacity(HEADER_LEN + rest.len());
    d.extend_from_slice(&MAGIC);
    d.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    d.extend_from_slice(&msg_type.to_be_bytes());
    d.extend_from_slice(&1u32.to_be_bytes());
    d.extend_from_slice(&(rest.len() as u32).to_be_bytes());
    d.extend_from_slice(rest);
    check(&d);
});
