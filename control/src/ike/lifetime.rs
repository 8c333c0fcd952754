//! When our side of a pair asks for its rekey, in seconds: before the
//! peer would, and not at the same moment as every other pair.
//!
//! The initiator of the exchange that made a pair rekeys it, the
//! responder only if the initiator did not. A hub whose peers all came up
//! together (after its restart, or theirs) would otherwise get every
//! rekey in the same second a lifetime later, with every retransmission
//! that overload brings; spread over a twentieth of the lifetime they
//! arrive at the rate they first came up at or less (strongSwan spreads
//! its rekeys the same way, by `rand_time`).

use crate::ike::crypto::random;

/// The initiator's soft lifetime: 85-90% of `hard`, at random.
/// The responder's: 95%, after any initiator's.
pub fn soft_seconds(hard: u64, initiator: bool) -> u64 {
    let permille = if initiator {
        850 + u64::from(u16::from_be_bytes(random()) % 51)
    } else {
        950
    };
    (hard.saturating_mul(permille) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initiators_spread_over_85_to_90_percent_responders_after_them() {
        let draws: Vec<u64> = (0..200).map(|_| soft_seconds(3600, true)).collect();
        assert!(draws.iter().all(|s| (3060..=3240).contains(s)), "{draws:?}");
        // 200 draws over 51 steps: a spread, not one moment.
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 20, "{distinct:?}");
        assert!(draws.iter().any(|s| *s <= 3080) && draws.iter().any(|s| *s >= 3220));
        assert_eq!(soft_seconds(3600, false), 3420);
        // The shortest lifetimes IOS takes still rekey in time, and never
        // at zero.
        assert!((102..=108).contains(&soft_seconds(120, true)));
        assert_eq!(soft_seconds(120, false), 114);
        assert_eq!(soft_seconds(1, true), 1);
    }
}
