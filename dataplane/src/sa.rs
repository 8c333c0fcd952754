//! SADB, filled by the SA work.
