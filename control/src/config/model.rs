//! The typed form of a parsed config: what the file says, in IOS terms,
//! with the position of everything a later check may need to point at.
//!
//! The model keeps IOS's own structure (ACLs, transform sets, crypto map
//! entries, interfaces) rather than what the dataplane needs; `compile`
//! turns it into SAs and rules once interfaces are resolved. Cross
//! references are names (`Spanned<String>`), checked by `compile`, so a
//! file can use a name before it defines it, as IOS configs often do.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::spd::{IpPrefix, PortRange};
use zeroize::Zeroizing;

use super::error::{Span, Spanned, Warning};
use super::ike::IkeConfig;

/// A whole config file.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub hostname: Option<Spanned<String>>,
    /// Every ACL, numbered (`access-list 101 ...`, named by its number) and
    /// named (`ip access-list extended NAME`, `ipv6 access-list NAME`), in
    /// order of first appearance.
    pub acls: Vec<Acl>,
    pub transform_sets: Vec<TransformSet>,
    /// Crypto map entries in file order; `compile` orders them by map and
    /// sequence number as IOS evaluates them.
    pub crypto_maps: Vec<CryptoMapEntry>,
    pub interfaces: Vec<Interface>,
    /// `ip nat inside source ... overload` statements, in file order.
    pub nat: Vec<NatInsideSource>,
    pub route_maps: Vec<RouteMapEntry>,
    /// `ip route` / `ipv6 route`: kept for `show` and for checks, never
    /// installed (the kernel's routing table is authoritative).
    pub routes: Vec<StaticRoute>,
    /// IKE configuration (parsed only; the IKE issues give it meaning).
    pub ike: IkeConfig,
    /// Warnings found while parsing (ignored platform commands, DES).
    pub warnings: Vec<Warning>,
    /// Whether the file holds key material (session keys, pre-shared keys,
    /// passwords): such a file must not be readable by others.
    pub has_secrets: bool,
    /// The file's lines with key material masked, for diagnostics that
    /// `compile` reports long after parsing.
    pub(crate) lines: Vec<String>,
}

impl Config {
    pub fn acl(&self, name: &str) -> Option<&Acl> {
        self.acls.iter().find(|a| a.name == name)
    }

    pub fn transform_set(&self, name: &str) -> Option<&TransformSet> {
        self.transform_sets.iter().find(|t| t.name == name)
    }

    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// The redacted text of line `n` (1-based), for diagnostics.
    pub fn source_line(&self, n: u32) -> &str {
        self.lines
            .get((n as usize).wrapping_sub(1))
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// Permit or deny, on an ACL line or a route-map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclAction {
    Permit,
    Deny,
}

/// Which syntax an ACL's lines use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclKind {
    /// Source address only (1-99, 1300-1999, `ip access-list standard`).
    Standard,
    /// Protocol, source, destination and ports (100-199, 2000-2699,
    /// `ip access-list extended`).
    Extended,
    /// `ipv6 access-list NAME`: always extended, prefixes as `P/L`.
    Ipv6,
}

impl AclKind {
    pub fn describe(self) -> &'static str {
        match self {
            AclKind::Standard => "standard",
            AclKind::Extended => "extended",
            AclKind::Ipv6 => "IPv6",
        }
    }
}

/// One access list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    pub name: String,
    pub kind: AclKind,
    /// Where the ACL first appears.
    pub span: Span,
    pub entries: Vec<AclEntry>,
}

/// One permit/deny line of an ACL. Standard ACL lines match any
/// destination, protocol and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclEntry {
    pub span: Span,
    pub action: AclAction,
    /// IP protocol number; `None` for `ip` / `ipv6` (every protocol).
    pub protocol: Option<u8>,
    pub src: IpPrefix,
    pub src_ports: PortRange,
    pub dst: IpPrefix,
    pub dst_ports: PortRange,
}

/// ESP encapsulation mode of a transform set (`mode tunnel|transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransformMode {
    #[default]
    Tunnel,
    Transport,
}

/// `crypto ipsec transform-set NAME ENC [AUTH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformSet {
    pub name: String,
    pub span: Span,
    pub enc: EncAlg,
    pub auth: AuthAlg,
    pub mode: TransformMode,
}

impl TransformSet {
    /// The transforms as IOS prints them (`esp-aes esp-sha-hmac`).
    pub fn ios_transforms(&self) -> String {
        match self.auth {
            AuthAlg::None => self.enc.ios_name().to_string(),
            a => format!("{} {}", self.enc.ios_name(), a.ios_name()),
        }
    }
}

/// Key material from the config: zeroized on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> SecretBytes {
        SecretBytes(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

/// `set session-key inbound|outbound esp SPI cipher HEX [authenticator HEX]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub span: Span,
    pub spi: Spanned<u32>,
    /// Encryption key; for AES-GCM the key followed by its 4-byte salt
    /// (RFC 4106 §8.1). `None` when the line has no `cipher` (esp-null).
    pub cipher: Option<Spanned<SecretBytes>>,
    pub authenticator: Option<Spanned<SecretBytes>>,
}

/// `crypto map NAME SEQ ipsec-manual` and its sub-commands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManualEntry {
    pub peer: Option<Spanned<IpAddr>>,
    pub transform_set: Option<Spanned<String>>,
    pub match_address: Option<Spanned<String>>,
    pub inbound: Option<SessionKey>,
    pub outbound: Option<SessionKey>,
}

/// What kind of crypto map entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoMapKind {
    /// Keys from the config (`ipsec-manual`): compiled to SAs now.
    Manual(ManualEntry),
    /// Keys from IKE (`ipsec-isakmp`, optionally `dynamic NAME
    /// [discover]`): compiled into the IKEv1 (or IKEv2) policy.
    Isakmp(super::ike::IsakmpMapEntry),
}

/// One `crypto map NAME SEQ ...` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoMapEntry {
    pub name: String,
    pub seq: u32,
    pub span: Span,
    pub description: Option<String>,
    pub kind: CryptoMapKind,
}

/// Which side of the NAT an interface is on (`ip nat inside|outside`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatSide {
    Inside,
    Outside,
}

/// `ipv6 address P/L [link-local]` (a link-local address is written
/// without a length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6IfAddr {
    pub addr: Ipv6Addr,
    pub len: u8,
    pub link_local: bool,
}

/// `interface NAME` and its sub-commands. The name is a Linux netdev name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub span: Span,
    pub description: Option<String>,
    /// `ip address A M [secondary]`: address and prefix length.
    pub ipv4: Vec<Spanned<(Ipv4Addr, u8)>>,
    /// `ip address dhcp`: the kernel's DHCP client owns the address.
    pub ipv4_dhcp: bool,
    pub ipv6: Vec<Spanned<Ipv6IfAddr>>,
    pub crypto_map: Option<Spanned<String>>,
    pub nat: Option<Spanned<NatSide>>,
    pub shutdown: bool,
    /// `tunnel ...` commands of a virtual tunnel interface (parsed only).
    pub tunnel: super::ike::TunnelConfig,
}

impl Interface {
    pub fn new(name: String, span: Span) -> Interface {
        Interface {
            name,
            span,
            description: None,
            ipv4: Vec::new(),
            ipv4_dhcp: false,
            ipv6: Vec::new(),
            crypto_map: None,
            nat: None,
            shutdown: false,
            tunnel: Default::default(),
        }
    }
}

/// What selects the flows of an `ip nat inside source` statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatSelector {
    /// `list ACL`.
    List(Spanned<String>),
    /// `route-map NAME`.
    RouteMap(Spanned<String>),
}

/// `ip nat inside source list|route-map X interface IF overload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatInsideSource {
    pub span: Span,
    pub selector: NatSelector,
    pub interface: Spanned<String>,
}

/// `route-map NAME permit|deny SEQ` with its `match ip address` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMapEntry {
    pub name: String,
    pub action: AclAction,
    pub seq: u32,
    pub span: Span,
    pub match_acls: Vec<Spanned<String>>,
}

/// Where a static route points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    NextHop(IpAddr),
    Interface(String),
}

/// `ip route P M TARGET [DISTANCE]` or `ipv6 route P/L TARGET [DISTANCE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticRoute {
    pub span: Span,
    pub prefix: IpPrefix,
    pub target: RouteTarget,
    pub distance: Option<u8>,
}
