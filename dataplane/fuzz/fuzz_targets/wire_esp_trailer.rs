//! ESP header and decrypted-trailer parsing: the padding check must never
//! panic, and whatever it accepts must be what write_padding would write.
#![no_main]

use dataplane::wire::esp::{parse_trailer, write_padding, Packet, Repr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        let _ = (p.spi(), p.seq(), p.payload(), p.header(), Repr::parse(&p));
    }
    if let Ok((payload_len, trailer)) = parse_trailer(data) {
        let pad_len = usize::from(trailer.pad_len);
        assert_eq!(payload_len + pad_len + 2, data.len());
        let mut expected = vec![0u8; pad_len + 2];
        write_padding(&mut expected, pad_len, trailer.next_header);
        assert_eq!(&data[payload_len..], &expected[..]);
    }
});
