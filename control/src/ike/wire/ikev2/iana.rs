//! IKEv2 transform IDs and attribute types (RFC 7296 §3.3.2, §3.3.5, as
//! kept in IANA's "Internet Key Exchange Version 2 (IKEv2) Parameters"),
//! for the transforms Espada negotiates and their neighbours.

/// Transform attribute: key length in bits (basic), for AES.
pub const KEY_LENGTH: u16 = 14;

/// Transform type 1, encryption algorithm.
pub mod encr {
    /// DES-CBC (RFC 2405).
    pub const DES: u16 = 2;
    /// 3DES-CBC (RFC 2451).
    pub const TRIPLE_DES: u16 = 3;
    /// NULL (ESP only, RFC 2410).
    pub const NULL: u16 = 11;
    /// AES-CBC with a key length attribute (RFC 3602).
    pub const AES_CBC: u16 = 12;
    /// AES-CTR (RFC 5930).
    pub const AES_CTR: u16 = 13;
    /// AES-GCM with an 8-byte ICV (RFC 5282).
    pub const AES_GCM_8: u16 = 18;
    /// AES-GCM with a 12-byte ICV (RFC 5282).
    pub const AES_GCM_12: u16 = 19;
    /// AES-GCM with a 16-byte ICV (RFC 5282).
    pub const AES_GCM_16: u16 = 20;
    /// ChaCha20-Poly1305 (RFC 7634).
    pub const CHACHA20_POLY1305: u16 = 28;
}

/// Transform type 2, pseudorandom function.
pub mod prf {
    /// HMAC-MD5 (RFC 2104).
    pub const HMAC_MD5: u16 = 1;
    /// HMAC-SHA1.
    pub const HMAC_SHA1: u16 = 2;
    /// AES128-XCBC (RFC 4434).
    pub const AES128_XCBC: u16 = 4;
    /// HMAC-SHA2-256 (RFC 4868).
    pub const HMAC_SHA2_256: u16 = 5;
    /// HMAC-SHA2-384.
    pub const HMAC_SHA2_384: u16 = 6;
    /// HMAC-SHA2-512.
    pub const HMAC_SHA2_512: u16 = 7;
}

/// Transform type 3, integrity algorithm.
pub mod integ {
    /// None (with AEAD ciphers).
    pub const NONE: u16 = 0;
    /// HMAC-MD5-96 (RFC 2403).
    pub const HMAC_MD5_96: u16 = 1;
    /// HMAC-SHA1-96 (RFC 2404).
    pub const HMAC_SHA1_96: u16 = 2;
    /// AES-XCBC-96 (RFC 3566).
    pub const AES_XCBC_96: u16 = 5;
    /// HMAC-SHA2-256-128 (RFC 4868).
    pub const HMAC_SHA2_256_128: u16 = 12;
    /// HMAC-SHA2-384-192.
    pub const HMAC_SHA2_384_192: u16 = 13;
    /// HMAC-SHA2-512-256.
    pub const HMAC_SHA2_512_256: u16 = 14;
}

/// Transform type 4, Diffie-Hellman group (RFC 7296 §3.3.2, RFC 3526,
/// RFC 5903, RFC 8031).
pub mod dh {
    /// None (CREATE_CHILD_SA without PFS).
    pub const NONE: u16 = 0;
    /// 768-bit MODP.
    pub const MODP_768: u16 = 1;
    /// 1024-bit MODP.
    pub const MODP_1024: u16 = 2;
    /// 1536-bit MODP.
    pub const MODP_1536: u16 = 5;
    /// 2048-bit MODP.
    pub const MODP_2048: u16 = 14;
    /// 3072-bit MODP.
    pub const MODP_3072: u16 = 15;
    /// 4096-bit MODP.
    pub const MODP_4096: u16 = 16;
    /// 256-bit random ECP.
    pub const ECP_256: u16 = 19;
    /// 384-bit random ECP.
    pub const ECP_384: u16 = 20;
    /// Curve25519.
    pub const CURVE25519: u16 = 31;
}

/// Transform type 5, extended sequence numbers.
pub mod esn {
    /// No extended sequence numbers.
    pub const NO: u16 = 0;
    /// Extended sequence numbers.
    pub const YES: u16 = 1;
}
