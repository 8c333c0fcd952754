//! Zero-copy packet views, filled by the wire work.
