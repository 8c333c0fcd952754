//! ESP encapsulation and decapsulation (RFC 4303), filled by the ESP work.
