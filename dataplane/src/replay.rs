//! RFC 6479 anti-replay window, filled by the replay work.
