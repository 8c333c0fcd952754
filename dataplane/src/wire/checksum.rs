//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums are kept as 16-bit ones-complement values, not inverted, so partial
//! sums over a pseudo-header and a payload can be [`combine`]d; the caller
//! inverts (`!sum`) when writing a checksum field. A correct packet sums to
//! `0xffff` over all of its covered bytes including the checksum field.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a wide accumulator into a 16-bit ones-complement sum (end-around carry).
#[inline]
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Ones-complement addition of two 16-bit values.
#[inline]
fn add(a: u16, b: u16) -> u16 {
    fold(u64::from(a) + u64::from(b))
}

/// Ones-complement sum of `bytes` as big-endian 16-bit words, an odd last
/// byte padded with zero (RFC 1071 §4.1). Not inverted.
///
/// Words are summed four bytes at a time into a 64-bit accumulator: the
/// ones-complement sum is associative, so folding the wide sum at the end
/// gives the same result with a quarter of the additions.
pub fn data(bytes: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut chunks = bytes.chunks_exact(4);
    for chunk in &mut chunks {
        sum += u64::from(u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for pair in &mut rest {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    fold(sum)
}

/// Ones-complement sum of partial sums, e.g. a pseudo-header and a payload
/// summed separately (so a payload in two buffers needs no copy).
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header that UDP, TCP (RFC 768, RFC 9293) cover:
/// source, destination, protocol and upper-layer length.
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, proto: u8, len: u32) -> u16 {
    let mut sum = u64::from(u32::from(*src)) + u64::from(u32::from(*dst));
    sum += u64::from(proto) + u64::from(len);
    fold(sum)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1) that UDP and ICMPv6 cover:
/// source, destination, 32-bit upper-layer length and next header.
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, proto: u8, len: u32) -> u16 {
    let sum = u64::from(data(&src.octets())) + u64::from(data(&dst.octets()));
    fold(sum + u64::from(proto) + u64::from(len))
}

/// Incremental checksum update when one 16-bit word changes from `old_word`
/// to `new_word` (RFC 1624 eqn. 3: `HC' = ~(~HC + ~m + m')`).
///
/// Used on the forwarding path (TTL decrement, NAT-T port rewrite) so a
/// header is not summed again; eqn. 3 rather than eqn. 2 of RFC 1141 because
/// it never produces the `-0` (`0x0000` vs `0xffff`) discrepancy that RFC
/// 1624 §3 describes.
pub fn update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    !add(add(!old_checksum, !old_word), new_word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward RFC 1071 reference: one 16-bit word at a time.
    fn reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn known_ipv4_header_sums_to_its_checksum() {
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(data(&header), 0xffff);
        header[10] = 0;
        header[11] = 0;
        assert_eq!(!data(&header), 0xb861);
    }

    #[test]
    fn odd_length_pads_the_last_byte_with_zero() {
        assert_eq!(data(&[0x01]), 0x0100);
        assert_eq!(data(&[0x00, 0x01, 0xf2]), 0xf201);
    }

    #[test]
    fn combine_of_split_sums_equals_sum_of_whole() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        assert_eq!(
            combine(&[data(&bytes[..100]), data(&bytes[100..])]),
            data(&bytes)
        );
    }

    #[test]
    fn pseudo_header_v4_matches_summing_its_bytes() {
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(10, 1, 2, 3);
        let bytes = [192, 168, 0, 1, 10, 1, 2, 3, 0, 17, 0x01, 0x02];
        assert_eq!(pseudo_header_v4(&src, &dst, 17, 0x0102), data(&bytes));
    }

    #[test]
    fn pseudo_header_v6_matches_summing_its_bytes() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "fe80::1234:5678".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&src.octets());
        bytes.extend_from_slice(&dst.octets());
        bytes.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(pseudo_header_v6(&src, &dst, 58, 0x0001_0203), data(&bytes));
    }

    proptest! {
        #[test]
        fn wide_sum_equals_word_by_word_reference(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(data(&bytes), reference(&bytes));
        }

        #[test]
        fn incremental_ttl_decrement_equals_full_recompute(
            mut header in proptest::array::uniform20(any::<u8>()),
            ttl in 1u8..=255,
        ) {
            header[0] = 0x45;
            header[8] = ttl;
            header[10] = 0;
            header[11] = 0;
            let checksum = !data(&header);
            let old_word = u16::from_be_bytes([header[8], header[9]]);
            header[8] = ttl - 1;
            let new_word = u16::from_be_bytes([header[8], header[9]]);
            let full = !data(&header);
            prop_assert_eq!(update(checksum, old_word, new_word), full);
        }

        #[test]
        fn incremental_update_of_any_word_keeps_the_packet_valid(
            mut bytes in proptest::collection::vec(any::<u8>(), 4..64),
            word_index in any::<proptest::sample::Index>(),
            new_word in any::<u16>(),
        ) {
            // Reserve the first word as checksum field, make the rest sum to it.
            bytes[0] = 0;
            bytes[1] = 0;
            let checksum = !data(&bytes);
            bytes[..2].copy_from_slice(&checksum.to_be_bytes());
            let words = bytes.len() / 2;
            let at = 2 * (1 + word_index.index(words - 1));
            let old_word = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            bytes[at..at + 2].copy_from_slice(&new_word.to_be_bytes());
            let updated = update(checksum, old_word, new_word);
            bytes[..2].copy_from_slice(&updated.to_be_bytes());
            prop_assert_eq!(data(&bytes), 0xffff);
        }
    }
}
