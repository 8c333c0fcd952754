//! IKEv1 numbers that travel inside SA payloads: transform IDs (RFC 2407
//! §4.4), phase 1 attributes (RFC 2409 Appendix A) and phase 2 attributes
//! (RFC 2407 §4.5), as kept in IANA's "Internet Key Exchange (IKE)
//! Attributes" and "ISAKMP" registries. Attributes carry raw numbers
//! ([`crate::ike::wire::attribute::Attribute`]); these constants name them.

/// Transform IDs, per protocol.
pub mod transform_id {
    /// ISAKMP protocol: the only transform, IKE itself (RFC 2407 §4.4.2).
    pub const KEY_IKE: u8 = 1;

    /// ESP DES with a 64-bit IV (RFC 2407 §4.4.4).
    pub const ESP_DES_IV64: u8 = 1;
    /// ESP DES-CBC (RFC 2405).
    pub const ESP_DES: u8 = 2;
    /// ESP 3DES-CBC (RFC 2451).
    pub const ESP_3DES: u8 = 3;
    /// ESP RC5.
    pub const ESP_RC5: u8 = 4;
    /// ESP IDEA.
    pub const ESP_IDEA: u8 = 5;
    /// ESP CAST-128.
    pub const ESP_CAST: u8 = 6;
    /// ESP Blowfish.
    pub const ESP_BLOWFISH: u8 = 7;
    /// ESP 3IDEA.
    pub const ESP_3IDEA: u8 = 8;
    /// ESP DES with a 32-bit IV.
    pub const ESP_DES_IV32: u8 = 9;
    /// ESP RC4.
    pub const ESP_RC4: u8 = 10;
    /// ESP without encryption (RFC 2410).
    pub const ESP_NULL: u8 = 11;
    /// ESP AES-CBC, key length attribute 128/192/256 (RFC 3602).
    pub const ESP_AES: u8 = 12;
    /// ESP AES-CTR (RFC 3686).
    pub const ESP_AES_CTR: u8 = 13;
    /// ESP AES-GCM with an 8-byte ICV (RFC 4106).
    pub const ESP_AES_GCM_8: u8 = 18;
    /// ESP AES-GCM with a 12-byte ICV (RFC 4106).
    pub const ESP_AES_GCM_12: u8 = 19;
    /// ESP AES-GCM with a 16-byte ICV (RFC 4106).
    pub const ESP_AES_GCM_16: u8 = 20;

    /// AH HMAC-MD5 (RFC 2403).
    pub const AH_MD5: u8 = 2;
    /// AH HMAC-SHA-1 (RFC 2404).
    pub const AH_SHA: u8 = 3;
    /// AH DES-MAC.
    pub const AH_DES: u8 = 4;
    /// AH HMAC-SHA-256 (RFC 4868).
    pub const AH_SHA2_256: u8 = 5;
    /// AH HMAC-SHA-384 (RFC 4868).
    pub const AH_SHA2_384: u8 = 6;
    /// AH HMAC-SHA-512 (RFC 4868).
    pub const AH_SHA2_512: u8 = 7;
}

/// Phase 1 (ISAKMP SA) attribute types and values, RFC 2409 Appendix A.
pub mod phase1 {
    /// Encryption algorithm (basic).
    pub const ENCRYPTION_ALGORITHM: u16 = 1;
    /// Hash algorithm (basic).
    pub const HASH_ALGORITHM: u16 = 2;
    /// Authentication method (basic).
    pub const AUTHENTICATION_METHOD: u16 = 3;
    /// Group description (basic).
    pub const GROUP_DESCRIPTION: u16 = 4;
    /// Group type (basic).
    pub const GROUP_TYPE: u16 = 5;
    /// Group prime / irreducible polynomial (variable).
    pub const GROUP_PRIME: u16 = 6;
    /// Group generator one (variable).
    pub const GROUP_GENERATOR_ONE: u16 = 7;
    /// Group generator two (variable).
    pub const GROUP_GENERATOR_TWO: u16 = 8;
    /// Group curve A (variable).
    pub const GROUP_CURVE_A: u16 = 9;
    /// Group curve B (variable).
    pub const GROUP_CURVE_B: u16 = 10;
    /// Life type (basic): what the next Life Duration counts.
    pub const LIFE_TYPE: u16 = 11;
    /// Life duration (variable; often a 4-byte TLV).
    pub const LIFE_DURATION: u16 = 12;
    /// PRF (basic; none defined).
    pub const PRF: u16 = 13;
    /// Key length in bits (basic), for variable-key ciphers such as AES.
    pub const KEY_LENGTH: u16 = 14;
    /// Field size (basic).
    pub const FIELD_SIZE: u16 = 15;
    /// Group order (variable).
    pub const GROUP_ORDER: u16 = 16;

    /// Encryption Algorithm values.
    pub mod encryption {
        /// DES-CBC.
        pub const DES_CBC: u16 = 1;
        /// IDEA-CBC.
        pub const IDEA_CBC: u16 = 2;
        /// Blowfish-CBC.
        pub const BLOWFISH_CBC: u16 = 3;
        /// RC5-R16-B64-CBC.
        pub const RC5_R16_B64_CBC: u16 = 4;
        /// 3DES-CBC.
        pub const TRIPLE_DES_CBC: u16 = 5;
        /// CAST-CBC.
        pub const CAST_CBC: u16 = 6;
        /// AES-CBC (RFC 3602), with Key Length.
        pub const AES_CBC: u16 = 7;
    }

    /// Hash Algorithm values.
    pub mod hash {
        /// MD5.
        pub const MD5: u16 = 1;
        /// SHA-1.
        pub const SHA: u16 = 2;
        /// Tiger.
        pub const TIGER: u16 = 3;
        /// SHA2-256 (RFC 4868).
        pub const SHA2_256: u16 = 4;
        /// SHA2-384.
        pub const SHA2_384: u16 = 5;
        /// SHA2-512.
        pub const SHA2_512: u16 = 6;
    }

    /// Authentication Method values.
    pub mod auth_method {
        /// Pre-shared key.
        pub const PRE_SHARED_KEY: u16 = 1;
        /// DSS signatures.
        pub const DSS_SIGNATURES: u16 = 2;
        /// RSA signatures.
        pub const RSA_SIGNATURES: u16 = 3;
        /// Encryption with RSA.
        pub const RSA_ENCRYPTION: u16 = 4;
        /// Revised encryption with RSA.
        pub const RSA_REVISED_ENCRYPTION: u16 = 5;
        /// XAUTH initiator with pre-shared key (draft-ietf-ipsec-isakmp-xauth).
        pub const XAUTH_INIT_PRESHARED: u16 = 65001;
        /// XAUTH responder with pre-shared key.
        pub const XAUTH_RESP_PRESHARED: u16 = 65002;
    }

    /// Group Description values (MODP groups of RFC 2409 §6, RFC 3526).
    pub mod group {
        /// 768-bit MODP (group 1).
        pub const MODP_768: u16 = 1;
        /// 1024-bit MODP (group 2).
        pub const MODP_1024: u16 = 2;
        /// 1536-bit MODP (group 5).
        pub const MODP_1536: u16 = 5;
        /// 2048-bit MODP (group 14).
        pub const MODP_2048: u16 = 14;
        /// 3072-bit MODP (group 15).
        pub const MODP_3072: u16 = 15;
        /// 4096-bit MODP (group 16).
        pub const MODP_4096: u16 = 16;
        /// 256-bit random ECP (group 19, RFC 5903).
        pub const ECP_256: u16 = 19;
        /// 384-bit random ECP (group 20).
        pub const ECP_384: u16 = 20;
    }

    /// Life Type values.
    pub mod life_type {
        /// Life Duration counts seconds.
        pub const SECONDS: u16 = 1;
        /// Life Duration counts kilobytes.
        pub const KILOBYTES: u16 = 2;
    }
}

/// Phase 2 (IPsec SA) attribute types and values, RFC 2407 §4.5.
pub mod phase2 {
    /// SA Life Type (basic).
    pub const SA_LIFE_TYPE: u16 = 1;
    /// SA Life Duration (variable; often a 4-byte TLV).
    pub const SA_LIFE_DURATION: u16 = 2;
    /// Group Description for PFS (basic).
    pub const GROUP_DESCRIPTION: u16 = 3;
    /// Encapsulation Mode (basic).
    pub const ENCAPSULATION_MODE: u16 = 4;
    /// Authentication Algorithm (basic).
    pub const AUTHENTICATION_ALGORITHM: u16 = 5;
    /// Key Length in bits (basic).
    pub const KEY_LENGTH: u16 = 6;
    /// Key Rounds (basic).
    pub const KEY_ROUNDS: u16 = 7;
    /// Compress Dictionary Size (basic).
    pub const COMPRESS_DICTIONARY_SIZE: u16 = 8;
    /// Compress Private Algorithm (variable).
    pub const COMPRESS_PRIVATE_ALGORITHM: u16 = 9;

    /// SA Life Type values.
    pub mod life_type {
        /// Seconds.
        pub const SECONDS: u16 = 1;
        /// Kilobytes.
        pub const KILOBYTES: u16 = 2;
    }

    /// Encapsulation Mode values.
    pub mod encapsulation_mode {
        /// Tunnel.
        pub const TUNNEL: u16 = 1;
        /// Transport.
        pub const TRANSPORT: u16 = 2;
        /// UDP-encapsulated tunnel (RFC 3947 §5.1).
        pub const UDP_TUNNEL: u16 = 3;
        /// UDP-encapsulated transport (RFC 3947 §5.1).
        pub const UDP_TRANSPORT: u16 = 4;
        /// UDP-encapsulated tunnel as the NAT-T drafts numbered it (Cisco
        /// and older peers negotiating draft-02/03 send this).
        pub const UDP_TUNNEL_DRAFT: u16 = 61443;
        /// UDP-encapsulated transport, draft numbering.
        pub const UDP_TRANSPORT_DRAFT: u16 = 61444;
    }

    /// Authentication Algorithm values.
    pub mod auth_algorithm {
        /// HMAC-MD5-96 (RFC 2403).
        pub const HMAC_MD5: u16 = 1;
        /// HMAC-SHA-1-96 (RFC 2404).
        pub const HMAC_SHA: u16 = 2;
        /// DES-MAC.
        pub const DES_MAC: u16 = 3;
        /// KPDK.
        pub const KPDK: u16 = 4;
        /// HMAC-SHA-256-128 (RFC 4868).
        pub const HMAC_SHA2_256: u16 = 5;
        /// HMAC-SHA-384-192.
        pub const HMAC_SHA2_384: u16 = 6;
        /// HMAC-SHA-512-256.
        pub const HMAC_SHA2_512: u16 = 7;
    }
}
