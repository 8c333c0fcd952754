//! What a parsed config says, with the line (and column) of each part so
//! the compile step can point at mistakes that only show across commands
//! (an ACL that is never defined, a map on no interface).

use std::fmt;
use std::net::IpAddr;

use dataplane::api::Direction;
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::TrafficSelector;
use zeroize::Zeroizing;

/// A name used somewhere, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameRef {
    pub name: String,
    pub line: usize,
    pub col: usize,
}

/// A whole config.
#[derive(Debug, Default)]
pub struct Config {
    pub hostname: Option<String>,
    pub acls: Vec<Acl>,
    pub transform_sets: Vec<TransformSet>,
    pub crypto_maps: Vec<CryptoMapEntry>,
    pub interfaces: Vec<InterfaceConfig>,
    pub nat: Vec<NatSource>,
    /// `ip route` / `ipv6 route` lines: kept for `show running-config`,
    /// but the kernel's routing table is what forwards.
    pub routes: Vec<(usize, String)>,
}

impl Config {
    pub fn acl(&self, name: &str) -> Option<&Acl> {
        self.acls.iter().find(|a| a.name == name)
    }
    pub fn transform_set(&self, name: &str) -> Option<&TransformSet> {
        self.transform_sets.iter().find(|t| t.name == name)
    }
    pub fn interface(&self, name: &str) -> Option<&InterfaceConfig> {
        self.interfaces.iter().find(|i| i.name == name)
    }
}

/// A numbered or named access list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub name: String,
    pub line: usize,
    pub ipv6: bool,
    pub entries: Vec<AclEntry>,
}

/// One `permit` or `deny` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclEntry {
    pub line: usize,
    pub permit: bool,
    pub selector: TrafficSelector,
}

/// `crypto ipsec transform-set NAME ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransformSetAlgs {
    pub enc: EncAlg,
    pub auth: AuthAlg,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSet {
    pub name: String,
    pub line: usize,
    pub algs: TransformSetAlgs,
    /// `mode tunnel` (the default) or `mode transport`.
    pub tunnel: bool,
}

/// `set session-key inbound|outbound esp SPI cipher HEX [authenticator HEX]`.
pub struct SessionKey {
    pub line: usize,
    pub direction: Direction,
    pub spi: u32,
    pub cipher: Zeroizing<Vec<u8>>,
    pub authenticator: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKey")
            .field("line", &self.line)
            .field("direction", &self.direction)
            .field("spi", &self.spi)
            .field("cipher", &format_args!("<{} bytes>", self.cipher.len()))
            .field(
                "authenticator",
                &format_args!("<{} bytes>", self.authenticator.len()),
            )
            .finish()
    }
}

/// `crypto map NAME SEQ ipsec-manual` and its sub-commands.
#[derive(Debug)]
pub struct CryptoMapEntry {
    pub name: String,
    pub seq: u32,
    pub line: usize,
    pub peer: Option<(IpAddr, usize)>,
    pub transform_set: Option<NameRef>,
    pub acl: Option<NameRef>,
    pub keys: Vec<SessionKey>,
}

/// `interface NAME` and its sub-commands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceConfig {
    pub name: String,
    pub line: usize,
    /// Addresses with their prefix lengths.
    pub addrs: Vec<(IpAddr, u8)>,
    pub crypto_map: Option<NameRef>,
    pub nat_inside: bool,
    pub nat_outside: bool,
    pub shutdown: bool,
    pub description: Option<String>,
}

/// `ip nat inside source list ACL interface IF overload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatSource {
    pub line: usize,
    pub acl: NameRef,
    pub interface: NameRef,
}
