//! IKEv2 decoding (`ike::wire::ikev2`) on hostile datagrams: nothing may
//! panic, and whatever decodes must re-encode to exactly the bytes it came
//! from. The first input byte selects a mode:
//!
//! - 0: the rest is a datagram;
//! - 1: the rest behind a valid version-2 header (first payload type,
//!   exchange type and flags from its first three bytes);
//! - 2: the rest as the decrypted contents of an SK payload: padding and
//!   Pad Length stripped (`sk::unpad`), then the inner chain from the
//!   payload type in its first byte; and the same bytes as SK data split
//!   and located for IV and ICV lengths from the next two bytes.
#![no_main]

use control::ike::wire::ikev2::{
    decode_payloads, encode_payloads, sk, Encrypted, Message, Notify, PayloadType,
};
use libfuzzer_sys::fuzz_target;

fn check_datagram(datagram: &[u8]) {
    let message = match Message::decode(datagram) {
        Ok(m) => m,
        Err(e) => {
            let _ = Notify::for_error(&e);
            return;
        }
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
    d.extend_from_slice(&[*first, 0x20, *exchange, *flags, 0, 0, 0, 1]);
    d.extend_from_slice(&((28 + body.len()) as u32).to_be_bytes());
    d.extend_from_slice(body);
    check_datagram(&d);
}

fn inner(rest: &[u8]) {
    let [first, iv_len, icv_len, plaintext @ ..] = rest else {
        return;
    };
    let sk = Encrypted {
        first_payload: PayloadType(*first),
        data: plaintext.to_vec(),
    };
    if let Ok(parts) = sk.parts(usize::from(*iv_len), usize::from(*icv_len)) {
        assert_eq!(
            parts.iv.len() + parts.ciphertext.len() + parts.icv.len(),
            plaintext.len()
        );
    }
    let _ = sk.layout(
        plaintext.len() + 32,
        usize::from(*iv_len),
        usize::from(*icv_len),
    );
    for chain in [Some(plaintext), sk::unpad(plaintext).ok()]
        .into_iter()
        .flatten()
    {
        if let Ok(payloads) = decode_payloads(PayloadType(*first), chain) {
            let (first_out, again) = encode_payloads(&payloads).expect("decoded payloads encode");
            assert_eq!(again, chain);
            if !payloads.is_empty() {
                assert_eq!(first_out, PayloadType(*first));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_datagram(rest),
        1 => behind_header(rest),
        _ => inner(rest),
    }
});
