//! Demultiplexing of UDP port 4500 (RFC 3948 §2): the same port carries
//! UDP-encapsulated ESP, IKE messages behind a four-byte zero Non-ESP
//! Marker, and one-byte NAT-keepalives.
//!
//! ESP is told apart from IKE because an SPI of zero is reserved (RFC 4303
//! §2.1), so a payload starting with four zero bytes cannot be ESP.

/// The UDP port for NAT traversal (RFC 3948 §2).
pub const PORT: u16 = 4500;

/// The UDP port for IKE without NAT traversal (RFC 7296 §2).
pub const IKE_PORT: u16 = 500;

/// The Non-ESP Marker before IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// The single byte of a NAT-keepalive (RFC 3948 §2.3).
pub const KEEPALIVE: u8 = 0xff;

/// What a UDP/4500 payload carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NattPayload<'a> {
    /// An ESP packet starting at its SPI (RFC 3948 §2.1): goes to the
    /// dataplane's decapsulation.
    Esp(&'a [u8]),
    /// An IKE message, after the Non-ESP Marker: goes to the control process.
    Ike(&'a [u8]),
    /// A NAT-keepalive: dropped after refreshing NAT state.
    Keepalive,
    /// Anything else: dropped and counted.
    Invalid,
}

/// Classifies a UDP/4500 payload. ESP needs at least SPI and sequence number
/// (8 bytes) and a non-zero SPI; a payload shorter than 4 bytes other than
/// the keepalive byte is `Invalid`.
pub fn classify(udp_payload: &[u8]) -> NattPayload<'_> {
    match udp_payload {
        [KEEPALIVE] => NattPayload::Keepalive,
        [0, 0, 0, 0, ike @ ..] => NattPayload::Ike(ike),
        esp if esp.len() >= super::esp::HEADER_LEN => NattPayload::Esp(esp),
        _ => NattPayload::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn single_ff_byte_is_a_keepalive() {
        assert_eq!(classify(&[0xff]), NattPayload::Keepalive);
    }

    #[test]
    fn non_esp_marker_introduces_ike() {
        let payload = [0, 0, 0, 0, 0x11, 0x22];
        assert_eq!(classify(&payload), NattPayload::Ike(&[0x11, 0x22]));
    }

    #[test]
    fn non_zero_spi_with_eight_bytes_is_esp() {
        let payload = [0, 0, 0x10, 0x01, 0, 0, 0, 1];
        assert_eq!(classify(&payload), NattPayload::Esp(&payload));
    }

    #[test]
    fn short_or_odd_payloads_are_invalid() {
        assert_eq!(classify(&[]), NattPayload::Invalid);
        assert_eq!(classify(&[0x00]), NattPayload::Invalid);
        assert_eq!(classify(&[0xff, 0xff]), NattPayload::Invalid);
        assert_eq!(classify(&[0, 0, 0]), NattPayload::Invalid);
        assert_eq!(classify(&[1, 2, 3, 4, 5, 6, 7]), NattPayload::Invalid);
    }

    proptest! {
        #[test]
        fn classify_never_panics_and_esp_never_has_spi_zero(
            bytes in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            if let NattPayload::Esp(esp) = classify(&bytes) {
                prop_assert!(esp.len() >= 8);
                prop_assert!(esp[..4] != [0, 0, 0, 0]);
            }
        }
    }
}
