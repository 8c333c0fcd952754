//! Identification data: who a peer says it is (IKEv1 phase 1 ID, RFC 2407
//! §4.6.2), which traffic a phase 2 SA is for (IKEv1 client IDs with
//! subnets and ranges), and IKEv2 IDi/IDr (RFC 7296 §3.5). The ID type
//! numbers coincide where both versions have them (1, 2, 3, 5, 11); the
//! subnet and range types (4, 6, 7, 8) exist only in IKEv1.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{Error, Result};

open_enum! {
    /// ID Type (RFC 2407 §4.6.2.1; RFC 7296 §3.5).
    pub struct IdType(u8) {
        /// A single IPv4 address.
        IPV4_ADDR = 1,
        /// A fully-qualified domain name.
        FQDN = 2,
        /// user@fqdn (IKEv2: ID_RFC822_ADDR).
        USER_FQDN = 3,
        /// IPv4 address and mask (IKEv1 only).
        IPV4_ADDR_SUBNET = 4,
        /// A single IPv6 address.
        IPV6_ADDR = 5,
        /// IPv6 address and mask (IKEv1 only).
        IPV6_ADDR_SUBNET = 6,
        /// First and last IPv4 address (IKEv1 only).
        IPV4_ADDR_RANGE = 7,
        /// First and last IPv6 address (IKEv1 only).
        IPV6_ADDR_RANGE = 8,
        /// A DER-encoded X.500 distinguished name.
        DER_ASN1_DN = 9,
        /// A DER-encoded X.509 GeneralName.
        DER_ASN1_GN = 10,
        /// An opaque key identifier.
        KEY_ID = 11,
    }
}

/// Which version's ID types are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdSpace {
    V1,
    V2,
}

/// Identification data, typed where the type says how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR.
    Ipv4(Ipv4Addr),
    /// ID_FQDN (bytes as sent: no check that they are a valid name).
    Fqdn(Vec<u8>),
    /// ID_USER_FQDN / ID_RFC822_ADDR.
    UserFqdn(Vec<u8>),
    /// ID_IPV4_ADDR_SUBNET (IKEv1).
    Ipv4Subnet {
        /// Address.
        addr: Ipv4Addr,
        /// Mask, as sent (not checked to be contiguous).
        mask: Ipv4Addr,
    },
    /// ID_IPV6_ADDR.
    Ipv6(Ipv6Addr),
    /// ID_IPV6_ADDR_SUBNET (IKEv1).
    Ipv6Subnet {
        /// Address.
        addr: Ipv6Addr,
        /// Mask, as sent.
        mask: Ipv6Addr,
    },
    /// ID_IPV4_ADDR_RANGE (IKEv1).
    Ipv4Range {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// ID_IPV6_ADDR_RANGE (IKEv1).
    Ipv6Range {
        /// First address.
        start: Ipv6Addr,
        /// Last address.
        end: Ipv6Addr,
    },
    /// ID_KEY_ID.
    KeyId(Vec<u8>),
    /// Any other type, data kept as sent (DER names, FC names, ...).
    Other {
        /// ID type.
        id_type: IdType,
        /// Identification data.
        data: Vec<u8>,
    },
}

fn v4(bytes: &[u8]) -> Ipv4Addr {
    let mut a = [0u8; 4];
    a.copy_from_slice(bytes);
    Ipv4Addr::from(a)
}

fn v6(bytes: &[u8]) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(bytes);
    Ipv6Addr::from(a)
}

impl Identity {
    /// Whether a version decodes this ID type into a typed variant.
    fn is_typed(space: IdSpace, id_type: IdType) -> bool {
        match space {
            IdSpace::V1 => matches!(id_type.0, 1..=8 | 11),
            IdSpace::V2 => matches!(id_type.0, 1 | 2 | 3 | 5 | 11),
        }
    }

    /// Reads identification data of a type; fixed-size types must be
    /// exactly their size.
    pub(crate) fn decode(space: IdSpace, id_type: IdType, data: &[u8]) -> Result<Identity> {
        if !Identity::is_typed(space, id_type) {
            return Ok(Identity::Other {
                id_type,
                data: data.to_vec(),
            });
        }
        let expected = match id_type {
            IdType::IPV4_ADDR => Some(4),
            IdType::IPV4_ADDR_SUBNET | IdType::IPV4_ADDR_RANGE => Some(8),
            IdType::IPV6_ADDR => Some(16),
            IdType::IPV6_ADDR_SUBNET | IdType::IPV6_ADDR_RANGE => Some(32),
            _ => None,
        };
        if expected.is_some_and(|n| n != data.len()) {
            return Err(Error::IdLength {
                id_type: id_type.0,
                length: data.len(),
            });
        }
        Ok(match id_type {
            IdType::IPV4_ADDR => Identity::Ipv4(v4(data)),
            IdType::IPV4_ADDR_SUBNET => Identity::Ipv4Subnet {
                addr: v4(&data[..4]),
                mask: v4(&data[4..]),
            },
            IdType::IPV4_ADDR_RANGE => Identity::Ipv4Range {
                start: v4(&data[..4]),
                end: v4(&data[4..]),
            },
            IdType::IPV6_ADDR => Identity::Ipv6(v6(data)),
            IdType::IPV6_ADDR_SUBNET => Identity::Ipv6Subnet {
                addr: v6(&data[..16]),
                mask: v6(&data[16..]),
            },
            IdType::IPV6_ADDR_RANGE => Identity::Ipv6Range {
                start: v6(&data[..16]),
                end: v6(&data[16..]),
            },
            IdType::FQDN => Identity::Fqdn(data.to_vec()),
            IdType::USER_FQDN => Identity::UserFqdn(data.to_vec()),
            _ => Identity::KeyId(data.to_vec()),
        })
    }

    /// The ID type this identity is sent as.
    pub fn id_type(&self) -> IdType {
        match self {
            Identity::Ipv4(_) => IdType::IPV4_ADDR,
            Identity::Fqdn(_) => IdType::FQDN,
            Identity::UserFqdn(_) => IdType::USER_FQDN,
            Identity::Ipv4Subnet { .. } => IdType::IPV4_ADDR_SUBNET,
            Identity::Ipv6(_) => IdType::IPV6_ADDR,
            Identity::Ipv6Subnet { .. } => IdType::IPV6_ADDR_SUBNET,
            Identity::Ipv4Range { .. } => IdType::IPV4_ADDR_RANGE,
            Identity::Ipv6Range { .. } => IdType::IPV6_ADDR_RANGE,
            Identity::KeyId(_) => IdType::KEY_ID,
            Identity::Other { id_type, .. } => *id_type,
        }
    }

    /// Appends the identification data. Refuses what the version cannot
    /// carry (an IKEv1 subnet in IKEv2) and an `Other` of a type the
    /// decoder would read as typed, so that every encoding decodes back
    /// to the same value.
    pub(crate) fn encode(&self, space: IdSpace, payload: u8, out: &mut Vec<u8>) -> Result<()> {
        let typed = Identity::is_typed(space, self.id_type());
        if typed == matches!(self, Identity::Other { .. }) {
            return Err(Error::Malformed {
                payload,
                reason: "identity type not carried as this variant in this IKE version",
            });
        }
        match self {
            Identity::Ipv4(a) => out.extend_from_slice(&a.octets()),
            Identity::Ipv6(a) => out.extend_from_slice(&a.octets()),
            Identity::Ipv4Subnet { addr: a, mask: b }
            | Identity::Ipv4Range { start: a, end: b } => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&b.octets());
            }
            Identity::Ipv6Subnet { addr: a, mask: b }
            | Identity::Ipv6Range { start: a, end: b } => {
                out.extend_from_slice(&a.octets());
                out.extend_from_slice(&b.octets());
            }
            Identity::Fqdn(d)
            | Identity::UserFqdn(d)
            | Identity::KeyId(d)
            | Identity::Other { data: d, .. } => out.extend_from_slice(d),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_types_must_be_exactly_their_size() {
        for (ty, size) in [(1u8, 4usize), (4, 8), (5, 16), (6, 32), (7, 8), (8, 32)] {
            for len in [0, size - 1, size + 1] {
                assert_eq!(
                    Identity::decode(IdSpace::V1, IdType(ty), &vec![0; len]),
                    Err(Error::IdLength {
                        id_type: ty,
                        length: len
                    }),
                    "type {ty} with {len} bytes"
                );
            }
            assert!(Identity::decode(IdSpace::V1, IdType(ty), &vec![0; size]).is_ok());
        }
    }

    #[test]
    fn subnets_read_address_then_mask() {
        let id = Identity::decode(
            IdSpace::V1,
            IdType::IPV4_ADDR_SUBNET,
            &[198, 18, 1, 0, 255, 255, 255, 0],
        )
        .unwrap();
        assert_eq!(
            id,
            Identity::Ipv4Subnet {
                addr: Ipv4Addr::new(198, 18, 1, 0),
                mask: Ipv4Addr::new(255, 255, 255, 0)
            }
        );
    }

    #[test]
    fn ikev2_has_no_subnet_types() {
        let id = Identity::decode(IdSpace::V2, IdType(4), &[1, 2, 3]).unwrap();
        assert_eq!(
            id,
            Identity::Other {
                id_type: IdType(4),
                data: vec![1, 2, 3]
            }
        );
        let subnet = Identity::Ipv4Subnet {
            addr: Ipv4Addr::UNSPECIFIED,
            mask: Ipv4Addr::UNSPECIFIED,
        };
        assert!(subnet.encode(IdSpace::V2, 35, &mut Vec::new()).is_err());
        assert!(subnet.encode(IdSpace::V1, 5, &mut Vec::new()).is_ok());
    }

    #[test]
    fn other_with_a_typed_id_type_is_not_encoded() {
        let other = Identity::Other {
            id_type: IdType::IPV4_ADDR,
            data: vec![1, 2, 3, 4],
        };
        assert!(other.encode(IdSpace::V1, 5, &mut Vec::new()).is_err());
    }
}
