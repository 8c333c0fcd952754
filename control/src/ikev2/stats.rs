//! The IKEv2 engine's counters (`show crypto ikev2 stats`).

/// Counters for every way an exchange can fail or a message be dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub sent: u64,
    pub retransmitted: u64,
    pub duplicates: u64,
    pub malformed: u64,
    pub unknown_spi: u64,
    pub unexpected_message: u64,
    pub integrity_failed: u64,
    pub no_preshared_key: u64,
    pub no_proposal_chosen: u64,
    pub invalid_ke_sent: u64,
    pub invalid_ke_received: u64,
    pub bad_key_exchange: u64,
    pub auth_failed: u64,
    /// IKE_AUTH whose peer identity no `crypto ikev2 profile` matches.
    pub no_matching_profile: u64,
    pub ts_unacceptable: u64,
    /// CHILD_SAs refused (NO_ADDITIONAL_SAS) because their peer's address
    /// holds as many as it may.
    pub child_limit: u64,
    pub cookies_sent: u64,
    pub cookie_retries: u64,
    /// Half-open IKE SAs removed at the limit (4 096) for a new one: the
    /// oldest goes.
    pub half_open_limit: u64,
    /// IKE_SA_INITs refused: their address, returning cookies, holds as
    /// many half-open SAs as one address may.
    pub half_open_per_address: u64,
    pub retransmit_limit: u64,
    pub dead_peers: u64,
    pub ike_established: u64,
    pub child_established: u64,
    pub deletes_received: u64,
    pub liveness_sent: u64,
    pub liveness_answered: u64,
    /// IKE SAs rekeyed (either side starting it), simultaneous ones once
    /// per exchange.
    pub ike_rekeyed: u64,
    /// IKE SAs deleted at their lifetime because every rekey failed.
    pub ike_expired: u64,
    /// CHILD_SA rekeys of ours that failed (the peer refused, or its
    /// answer was not acceptable), each tried again.
    pub child_rekeys_failed: u64,
    /// CHILD_SA rekeys that crossed one of the peer's for the same pair
    /// (RFC 7296 §2.8.1), counted when ours completes: the pair made
    /// with the lowest nonce is deleted by its maker.
    pub child_rekey_collisions: u64,
    /// CHILD_SA pairs the dataplane refused (an outbound SPI another
    /// pair has, or no room): deleted, or when not answered yet, answered
    /// with TEMPORARY_FAILURE.
    pub dataplane_refused: u64,
    /// Local addresses that went with IKE SAs bound to them.
    pub local_addresses_lost: u64,
    /// Other IKE SAs with a peer deleted on its INITIAL_CONTACT.
    pub initial_contact_deletes: u64,
    /// CHILD_SA pairs of a dynamic-map entry deleted because the same
    /// proxy identities were negotiated from another peer address or port.
    pub stale_pairs_replaced: u64,
}

impl Stats {
    /// `name value` lines, in a stable order.
    pub fn lines(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("packets received", self.received),
            ("packets sent", self.sent),
            ("retransmissions", self.retransmitted),
            ("duplicate requests answered", self.duplicates),
            ("malformed packets dropped", self.malformed),
            ("unknown SPIs dropped", self.unknown_spi),
            ("unexpected messages dropped", self.unexpected_message),
            ("integrity check failures", self.integrity_failed),
            ("no pre-shared key for peer", self.no_preshared_key),
            ("no proposal chosen", self.no_proposal_chosen),
            ("INVALID_KE_PAYLOAD sent", self.invalid_ke_sent),
            ("INVALID_KE_PAYLOAD received", self.invalid_ke_received),
            ("bad key exchange values", self.bad_key_exchange),
            ("authentication failures", self.auth_failed),
            ("no matching IKEv2 profile", self.no_matching_profile),
            ("traffic selectors unacceptable", self.ts_unacceptable),
            ("CHILD_SAs refused: peer at its limit", self.child_limit),
            ("cookies demanded", self.cookies_sent),
            ("IKE_SA_INIT repeated with a cookie", self.cookie_retries),
            (
                "half-open SAs dropped at the limit for a new one",
                self.half_open_limit,
            ),
            (
                "IKE_SA_INITs refused: address at its half-open limit",
                self.half_open_per_address,
            ),
            ("retransmission limit reached", self.retransmit_limit),
            ("peers declared dead", self.dead_peers),
            ("IKE SAs established", self.ike_established),
            ("CHILD_SAs established", self.child_established),
            ("deletes received", self.deletes_received),
            ("liveness checks sent", self.liveness_sent),
            ("liveness checks answered", self.liveness_answered),
            ("IKE SAs rekeyed", self.ike_rekeyed),
            ("IKE SAs expired without a rekey", self.ike_expired),
            ("CHILD_SA rekeys failed (retried)", self.child_rekeys_failed),
            (
                "CHILD_SA rekeys crossing the peer's",
                self.child_rekey_collisions,
            ),
            (
                "CHILD_SA pairs the dataplane refused",
                self.dataplane_refused,
            ),
            (
                "local addresses lost with IKE SAs",
                self.local_addresses_lost,
            ),
            (
                "IKE SAs deleted on INITIAL_CONTACT",
                self.initial_contact_deletes,
            ),
            (
                "CHILD_SA pairs replaced by a peer at a new address",
                self.stale_pairs_replaced,
            ),
        ]
    }
}
