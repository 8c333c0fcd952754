//! Vendor IDs this gateway sends or recognises (RFC 2408 §3.16, RFC 7296
//! §3.12), by name. The bytes were checked against strongSwan
//! (`src/libcharon/sa/ikev1/tasks/isakmp_vendor.c`,
//! `sa/ikev2/tasks/ike_vendor.c`) and libreswan (`programs/pluto/vendor.c`);
//! the MD5-derived ones are recomputed in the tests below.
//!
//! Cisco IOS logs these as "vendor ID is DPD", "vendor ID is Unity",
//! "vendor ID is XAUTH", "speaking to another IOS box!" (the Cisco IOS
//! prefix) and, for IKEv2, "CISCO-DELETE-REASON" (seeds 000-003).

/// How received bytes are matched against a known ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The whole vendor ID equals the bytes.
    Exact,
    /// The vendor ID starts with the bytes (versions or capabilities follow).
    Prefix,
}

/// A vendor ID known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KnownVendor {
    /// Dead Peer Detection, RFC 3706 §3 (version 1.0 in the last two bytes).
    Dpd,
    /// NAT traversal, RFC 3947: MD5("RFC 3947").
    NatTraversalRfc3947,
    /// MD5("draft-ietf-ipsec-nat-t-ike-03").
    NatTraversalDraft03,
    /// MD5("draft-ietf-ipsec-nat-t-ike-02").
    NatTraversalDraft02,
    /// MD5("draft-ietf-ipsec-nat-t-ike-02\n"): the hash printed in the
    /// draft included the newline, and peers send both.
    NatTraversalDraft02N,
    /// Cisco Unity: MD5("CISCO-UNITY") with the last two bytes replaced by
    /// the version 1.0.
    CiscoUnity,
    /// XAUTH: the first 8 bytes of MD5("draft-ietf-ipsra-isakmp-xauth-06.txt").
    Xauth,
    /// Cisco IOS: a 4-byte prefix, the rest varies per device and session.
    CiscoIos,
    /// Proprietary IKEv1 fragmentation (Cisco, Windows): MD5("FRAGMENTATION"),
    /// optionally followed by 4 capability bytes.
    Fragmentation,
    /// strongSwan: MD5("strongSwan").
    StrongSwan,
    /// Cisco IKEv2 "CISCO-DELETE-REASON" (ASCII): delete notifications
    /// carry a reason.
    CiscoDeleteReason,
    /// Cisco IKEv2 "CISCO-DYNAMIC-ROUTE" (ASCII).
    CiscoDynamicRoute,
    /// Cisco IKEv2 "FLEXVPN-SUPPORTED" (ASCII).
    CiscoFlexVpnSupported,
    /// Cisco IKEv2 copyright string (ASCII).
    CiscoCopyright,
}

use KnownVendor::*;

impl KnownVendor {
    /// Every known vendor ID, in matching order.
    pub const ALL: [KnownVendor; 14] = [
        Dpd,
        NatTraversalRfc3947,
        NatTraversalDraft03,
        NatTraversalDraft02,
        NatTraversalDraft02N,
        CiscoUnity,
        Xauth,
        CiscoIos,
        Fragmentation,
        StrongSwan,
        CiscoDeleteReason,
        CiscoDynamicRoute,
        CiscoFlexVpnSupported,
        CiscoCopyright,
    ];

    fn entry(self) -> (&'static [u8], Match) {
        match self {
            Dpd => (
                b"\xaf\xca\xd7\x13\x68\xa1\xf1\xc9\x6b\x86\x96\xfc\x77\x57\x01\x00",
                Match::Exact,
            ),
            NatTraversalRfc3947 => (
                b"\x4a\x13\x1c\x81\x07\x03\x58\x45\x5c\x57\x28\xf2\x0e\x95\x45\x2f",
                Match::Exact,
            ),
            NatTraversalDraft03 => (
                b"\x7d\x94\x19\xa6\x53\x10\xca\x6f\x2c\x17\x9d\x92\x15\x52\x9d\x56",
                Match::Exact,
            ),
            NatTraversalDraft02 => (
                b"\xcd\x60\x46\x43\x35\xdf\x21\xf8\x7c\xfd\xb2\xfc\x68\xb6\xa4\x48",
                Match::Exact,
            ),
            NatTraversalDraft02N => (
                b"\x90\xcb\x80\x91\x3e\xbb\x69\x6e\x08\x63\x81\xb5\xec\x42\x7b\x1f",
                Match::Exact,
            ),
            CiscoUnity => (
                b"\x12\xf5\xf2\x8c\x45\x71\x68\xa9\x70\x2d\x9f\xe2\x74\xcc\x01\x00",
                Match::Exact,
            ),
            Xauth => (b"\x09\x00\x26\x89\xdf\xd6\xb7\x12", Match::Exact),
            CiscoIos => (b"\x3e\x98\x40\x48", Match::Prefix),
            Fragmentation => (
                b"\x40\x48\xb7\xd5\x6e\xbc\xe8\x85\x25\xe7\xde\x7f\x00\xd6\xc2\xd3",
                Match::Prefix,
            ),
            StrongSwan => (
                b"\x88\x2f\xe5\x6d\x6f\xd2\x0d\xbc\x22\x51\x61\x3b\x2e\xbe\x5b\xeb",
                Match::Exact,
            ),
            CiscoDeleteReason => (b"CISCO-DELETE-REASON", Match::Exact),
            CiscoDynamicRoute => (b"CISCO-DYNAMIC-ROUTE", Match::Exact),
            CiscoFlexVpnSupported => (b"FLEXVPN-SUPPORTED", Match::Exact),
            CiscoCopyright => (
                b"CISCO(COPYRIGHT)&Copyright (c) 2009 Cisco Systems, Inc.",
                Match::Exact,
            ),
        }
    }

    /// The bytes to send (for prefix matches: the prefix only; Cisco IOS
    /// appends device-specific bytes, which Espada does not imitate).
    pub fn id(self) -> &'static [u8] {
        self.entry().0
    }

    /// A short name for logs, in the words IOS debug output uses.
    pub fn name(self) -> &'static str {
        match self {
            Dpd => "DPD",
            NatTraversalRfc3947 => "RFC 3947",
            NatTraversalDraft03 => "draft-ietf-ipsec-nat-t-ike-03",
            NatTraversalDraft02 => "draft-ietf-ipsec-nat-t-ike-02",
            NatTraversalDraft02N => "draft-ietf-ipsec-nat-t-ike-02\\n",
            CiscoUnity => "Unity",
            Xauth => "XAUTH",
            CiscoIos => "Cisco IOS",
            Fragmentation => "FRAGMENTATION",
            StrongSwan => "strongSwan",
            CiscoDeleteReason => "CISCO-DELETE-REASON",
            CiscoDynamicRoute => "CISCO-DYNAMIC-ROUTE",
            CiscoFlexVpnSupported => "FLEXVPN-SUPPORTED",
            CiscoCopyright => "CISCO(COPYRIGHT)",
        }
    }

    /// Which known vendor ID received bytes are, if any.
    pub fn identify(data: &[u8]) -> Option<KnownVendor> {
        KnownVendor::ALL.into_iter().find(|v| match v.entry() {
            (id, Match::Exact) => data == id,
            (id, Match::Prefix) => data.starts_with(id),
        })
    }

    /// Whether this vendor ID announces a NAT traversal version (RFC or
    /// one of the drafts that use UDP 4500 and payload types 130/131).
    pub fn is_nat_traversal(self) -> bool {
        matches!(
            self,
            NatTraversalRfc3947 | NatTraversalDraft03 | NatTraversalDraft02 | NatTraversalDraft02N
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::{Digest, Md5};

    fn md5(s: &[u8]) -> [u8; 16] {
        Md5::digest(s).into()
    }

    #[test]
    fn md5_derived_ids_match_their_definitions() {
        assert_eq!(NatTraversalRfc3947.id(), md5(b"RFC 3947"));
        assert_eq!(
            NatTraversalDraft03.id(),
            md5(b"draft-ietf-ipsec-nat-t-ike-03")
        );
        assert_eq!(
            NatTraversalDraft02.id(),
            md5(b"draft-ietf-ipsec-nat-t-ike-02")
        );
        assert_eq!(
            NatTraversalDraft02N.id(),
            md5(b"draft-ietf-ipsec-nat-t-ike-02\n")
        );
        assert_eq!(StrongSwan.id(), md5(b"strongSwan"));
        assert_eq!(Fragmentation.id(), md5(b"FRAGMENTATION"));
        assert_eq!(
            Xauth.id(),
            &md5(b"draft-ietf-ipsra-isakmp-xauth-06.txt")[..8]
        );
        let unity = md5(b"CISCO-UNITY");
        assert_eq!(&CiscoUnity.id()[..14], &unity[..14]);
        assert_eq!(&CiscoUnity.id()[14..], [1, 0]);
    }

    #[test]
    fn rfc_3706_dpd_and_the_brief_s_bytes_agree() {
        assert_eq!(hex::encode(Dpd.id()), "afcad71368a1f1c96b8696fc77570100");
        assert_eq!(
            hex::encode(NatTraversalRfc3947.id()),
            "4a131c81070358455c5728f20e95452f"
        );
        assert_eq!(
            hex::encode(CiscoUnity.id()),
            "12f5f28c457168a9702d9fe274cc0100"
        );
        assert_eq!(hex::encode(Xauth.id()), "09002689dfd6b712");
    }

    #[test]
    fn every_known_id_identifies_as_itself() {
        for v in KnownVendor::ALL {
            assert_eq!(KnownVendor::identify(v.id()), Some(v), "{}", v.name());
        }
    }

    #[test]
    fn prefixes_match_longer_ids_and_exact_ones_do_not() {
        let ios = hex::decode("3e984048101e66cc659fd002b0ed3655").unwrap();
        assert_eq!(KnownVendor::identify(&ios), Some(CiscoIos));
        let mut frag = Fragmentation.id().to_vec();
        frag.extend_from_slice(&[0x80, 0, 0, 0]);
        assert_eq!(KnownVendor::identify(&frag), Some(Fragmentation));
        let mut dpd = Dpd.id().to_vec();
        dpd.push(0);
        assert_eq!(KnownVendor::identify(&dpd), None);
        assert_eq!(KnownVendor::identify(&Dpd.id()[..15]), None);
        assert_eq!(KnownVendor::identify(b""), None);
    }
}
