//! Per-packet IVs without a per-packet syscall.
/// Placeholder, filled by the crypto work.
pub struct IvGenerator;
