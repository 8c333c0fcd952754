//! ISAKMP/IKEv1 decoding (`ike::wire::ikev1`) on hostile datagrams: nothing
//! may panic, and whatever decodes must re-encode to exactly the bytes it
//! came from (the codec is lossless). The first input byte selects a mode,
//! so the fuzzer spends its time past the header as well:
//!
//! - 0: the rest is a datagram;
//! - 1: the rest behind a valid version-1 header (first payload type,
//!   exchange type and flags from its first three bytes, E flag included);
//! - 2: the rest as decrypted plaintext, walked from the payload type in
//!   its first byte, padding allowed after the last payload.
#![no_main]

use control::ike::wire::ikev1::{decode_decrypted, encode_payloads, Message, PayloadType};
use libfuzzer_sys::fuzz_target;

fn check_datagram(datagram: &[u8]) {
    let Ok(message) = Message::decode(datagram) else {
        return;
    };
    let length = u32::from_be_bytes([datagram[24], datagram[25], datagram[26], datagram[27]]);
    let again = message.encode().expect("a decoded message encodes");
    assert_eq!(again, &datagram[..length as usize], "round trip changed it");
}

fn behind_header(rest: &[u8]) {
    let [first, exchange, flags, body @ ..] = rest else {
        return;
    };
    let mut d = Vec::with_capacity(28 + body.len());
    d.extend_from_slice(&[0x11; 8]);
    d.extend_from_slice(&[0x22; 8]);
    d.extend_from_slice(&[*first, 0x10, *exchange, *flags, 0, 0, 0, 1]);
    d.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
    d.extend_from_slice(body);
    check_datagram(&d);
}

fn decrypted(rest: &[u8]) {
    let Some((&first, plaintext)) = rest.split_first() else {
        return;
    };
    let Ok(d) = decode_decrypted(PayloadType(first), plaintext) else {
        return;
    };
    let (first_out, chain) = encode_payloads(&d.payloads).expect("decoded payloads encode");
    assert_eq!(chain, &plaintext[..plaintext.len() - d.padding]);
    if !d.payloads.is_empty() {
        assert_eq!(first_out, PayloadType(first));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_datagram(rest),
        1 => behind_header(rest),
        _ => decrypted(rest),
    }
});
