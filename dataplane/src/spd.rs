//! Security policy database, filled by the SPD work.
