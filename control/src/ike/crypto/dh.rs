//! The Diffie-Hellman groups IKE negotiates, with their values encoded
//! exactly as the KE payload carries them.
//!
//! - MODP groups 1 and 2 (RFC 2409 §6.1, §6.2) and 5 and 14 (RFC 3526
//!   §2, §3), generator 2. Public values and g^xy are big-endian and
//!   zero-padded to the length of the prime (RFC 7296 §3.4, and §2.14 for
//!   g^ir: a dropped leading zero octet is a classic one-in-256 interop
//!   failure).
//! - ECP groups 19 (P-256) and 20 (P-384), RFC 5903: the public value is
//!   x | y, each coordinate padded to the field size, with no SEC1 0x04
//!   prefix (§7); the shared secret is the x coordinate alone.
//! - Curve25519, group 31 (RFC 8031): 32-octet u coordinates as in
//!   RFC 7748; an all-zero shared secret is refused (§2).
//!
//! Peer public values are checked before use (RFC 6989: 1 < y < p-1 for
//! MODP, the point on the curve for ECP) and every failure is a
//! [`DhError`]; nothing here panics on what a peer sends. The arithmetic
//! is the system libcrypto's, with the private exponent or scalar marked
//! constant-time.

use std::cmp::Ordering;
use std::fmt;

use openssl::bn::{BigNum, BigNumContext, BigNumContextRef, BigNumRef};
use openssl::derive::Deriver;
use openssl::ec::{EcGroup, EcPoint};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use thiserror::Error;
use zeroize::Zeroizing;

/// A Diffie-Hellman group by its IANA number (IKEv1 group description
/// attribute, IKEv2 transform type 4 ID: the same registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// Group 1, 768-bit MODP: broken by today's standards; only for peers
    /// configured with `group 1` (seed 003).
    Modp768,
    /// Group 2, 1024-bit MODP: weak; still the IOS default in old configs.
    Modp1024,
    /// Group 5, 1536-bit MODP.
    Modp1536,
    /// Group 14, 2048-bit MODP.
    Modp2048,
    /// Group 19, 256-bit random ECP (NIST P-256).
    Ecp256,
    /// Group 20, 384-bit random ECP (NIST P-384).
    Ecp384,
    /// Group 31, Curve25519.
    Curve25519,
}

/// Why a key exchange value could not be made or used.
#[derive(Debug, Error)]
pub enum DhError {
    #[error("the {group} public value must be {expected} octets, not {got}")]
    PublicValueLength {
        group: DhGroup,
        expected: usize,
        got: usize,
    },
    #[error("the {group} public value is not in 2..=p-2 (RFC 6989)")]
    PublicValueOutOfRange { group: DhGroup },
    #[error("the {group} public value is not a point on the curve")]
    PointNotOnCurve { group: DhGroup },
    #[error("the {group} shared secret is all zeros: the peer sent a low-order point")]
    ZeroSharedSecret { group: DhGroup },
    #[error("not a valid {group} private key")]
    InvalidPrivateKey { group: DhGroup },
    #[error("the OS random number generator failed: {0}")]
    Rng(getrandom::Error),
    #[error("libcrypto failed: {0}")]
    Crypto(#[from] ErrorStack),
}

/// How a group computes, and how long its values are.
enum Kind {
    Modp { prime: &'static str, len: usize },
    Ecp { curve: Nid, coordinate_len: usize },
    X25519,
}

impl DhGroup {
    /// Every supported group, strongest last.
    pub const ALL: [DhGroup; 7] = [
        DhGroup::Modp768,
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Curve25519,
    ];

    /// The group for an IANA group number, `None` if unsupported.
    pub fn from_id(id: u16) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.id() == id)
    }

    /// The IANA group number.
    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp768 => 1,
            DhGroup::Modp1024 => 2,
            DhGroup::Modp1536 => 5,
            DhGroup::Modp2048 => 14,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }

    /// Length of the public value in the KE payload.
    pub fn public_value_len(self) -> usize {
        match self.kind() {
            Kind::Modp { len, .. } => len,
            Kind::Ecp { coordinate_len, .. } => 2 * coordinate_len,
            Kind::X25519 => 32,
        }
    }

    /// Length of the shared secret (g^xy / g^ir).
    pub fn shared_secret_len(self) -> usize {
        match self.kind() {
            Kind::Modp { len, .. } => len,
            Kind::Ecp { coordinate_len, .. } => coordinate_len,
            Kind::X25519 => 32,
        }
    }

    /// A fresh private key from the OS RNG, with its public value.
    pub fn generate(self) -> Result<DhPrivate, DhError> {
        let len = match self.kind() {
            Kind::Modp { len, .. } => len,
            Kind::Ecp { coordinate_len, .. } => coordinate_len,
            Kind::X25519 => 32,
        };
        // Rejection sampling: a candidate outside the valid range is
        // drawn again. For the MODP groups clearing the top bit keeps the
        // exponent below p (whose top 64 bits are ones); for P-256/P-384 a
        // candidate at or above the order is about 2^-32 likely.
        for _ in 0..64 {
            let mut bytes = Zeroizing::new(vec![0u8; len]);
            getrandom::getrandom(&mut bytes).map_err(DhError::Rng)?;
            if let Kind::Modp { .. } = self.kind() {
                bytes[0] &= 0x7f;
            }
            match self.private_from_bytes(&bytes) {
                Err(DhError::InvalidPrivateKey { .. }) => continue,
                result => return result,
            }
        }
        Err(DhError::InvalidPrivateKey { group: self })
    }

    /// A private key from given bytes: the big-endian MODP exponent
    /// (2 ≤ x ≤ p-2), the big-endian ECP scalar (1 ≤ d < n, exactly the
    /// coordinate length), or the 32-octet X25519 scalar. For known-answer
    /// tests and reproducible exchanges; use [`DhGroup::generate`] for
    /// real ones.
    pub fn private_from_bytes(self, bytes: &[u8]) -> Result<DhPrivate, DhError> {
        let invalid = DhError::InvalidPrivateKey { group: self };
        let mut ctx = BigNumContext::new()?;
        let (secret, public) = match self.kind() {
            Kind::Modp { prime, len } => {
                if bytes.is_empty() || bytes.len() > len {
                    return Err(invalid);
                }
                let p = parse_prime(prime)?;
                let x = SecretBn::from_slice(bytes)?;
                if !in_open_range(&x.0, &p)? {
                    return Err(invalid);
                }
                let two = BigNum::from_u32(2)?;
                let mut y = BigNum::new()?;
                y.mod_exp(&two, &x.0, &p, &mut ctx)?;
                (Secret::Modp(x), y.to_vec_padded(len_i32(len))?)
            }
            Kind::Ecp {
                curve,
                coordinate_len,
            } => {
                if bytes.len() != coordinate_len {
                    return Err(invalid);
                }
                let group = EcGroup::from_curve_name(curve)?;
                let mut order = BigNum::new()?;
                group.order(&mut order, &mut ctx)?;
                let d = SecretBn::from_slice(bytes)?;
                if d.0.num_bits() == 0 || d.0.ucmp(&order) != Ordering::Less {
                    return Err(invalid);
                }
                let mut point = EcPoint::new(&group)?;
                point.mul_generator2(&group, &d.0, &mut ctx)?;
                let public = encode_point(&group, &point, coordinate_len, &mut ctx)?;
                (Secret::Ecp(d), public)
            }
            Kind::X25519 => {
                if bytes.len() != 32 {
                    return Err(invalid);
                }
                let key = PKey::private_key_from_raw_bytes(bytes, Id::X25519)?;
                let public = key.raw_public_key()?;
                (Secret::X25519(key), public)
            }
        };
        Ok(DhPrivate {
            group: self,
            secret,
            public,
        })
    }

    fn kind(self) -> Kind {
        match self {
            DhGroup::Modp768 => Kind::Modp {
                prime: MODP_768,
                len: 96,
            },
            DhGroup::Modp1024 => Kind::Modp {
                prime: MODP_1024,
                len: 128,
            },
            DhGroup::Modp1536 => Kind::Modp {
                prime: MODP_1536,
                len: 192,
            },
            DhGroup::Modp2048 => Kind::Modp {
                prime: MODP_2048,
                len: 256,
            },
            DhGroup::Ecp256 => Kind::Ecp {
                curve: Nid::X9_62_PRIME256V1,
                coordinate_len: 32,
            },
            DhGroup::Ecp384 => Kind::Ecp {
                curve: Nid::SECP384R1,
                coordinate_len: 48,
            },
            DhGroup::Curve25519 => Kind::X25519,
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            DhGroup::Modp768 => "768-bit MODP",
            DhGroup::Modp1024 => "1024-bit MODP",
            DhGroup::Modp1536 => "1536-bit MODP",
            DhGroup::Modp2048 => "2048-bit MODP",
            DhGroup::Ecp256 => "256-bit ECP",
            DhGroup::Ecp384 => "384-bit ECP",
            DhGroup::Curve25519 => "Curve25519",
        };
        write!(f, "group {} ({name})", self.id())
    }
}

/// Our half of one key exchange: the private key (wiped when dropped,
/// never printed) and the public value for the KE payload.
pub struct DhPrivate {
    group: DhGroup,
    secret: Secret,
    public: Vec<u8>,
}

enum Secret {
    Modp(SecretBn),
    Ecp(SecretBn),
    /// libcrypto keeps the scalar and cleanses it when the key is freed.
    X25519(PKey<Private>),
}

impl DhPrivate {
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value, encoded as the KE payload carries it.
    pub fn public_value(&self) -> &[u8] {
        &self.public
    }

    /// The shared secret with the peer's KE payload value: g^xy (MODP,
    /// padded to the prime's length), the x coordinate (ECP), or the
    /// X25519 output. The peer's value is validated first.
    pub fn shared_secret(&self, peer_public: &[u8]) -> Result<Zeroizing<Vec<u8>>, DhError> {
        let group = self.group;
        let expected = group.public_value_len();
        if peer_public.len() != expected {
            return Err(DhError::PublicValueLength {
                group,
                expected,
                got: peer_public.len(),
            });
        }
        match (&self.secret, group.kind()) {
            (Secret::Modp(x), Kind::Modp { prime, len }) => {
                modp_shared(group, x, prime, len, peer_public)
            }
            (
                Secret::Ecp(d),
                Kind::Ecp {
                    curve,
                    coordinate_len,
                },
            ) => ecp_shared(group, d, curve, coordinate_len, peer_public),
            (Secret::X25519(key), Kind::X25519) => x25519_shared(group, key, peer_public),
            // A DhPrivate is only ever built with the secret of its group.
            _ => Err(DhError::InvalidPrivateKey { group }),
        }
    }
}

impl fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhPrivate")
            .field("group", &self.group)
            .field("public_len", &self.public.len())
            .field("private", &"<redacted>")
            .finish()
    }
}

fn modp_shared(
    group: DhGroup,
    x: &SecretBn,
    prime: &str,
    len: usize,
    peer_public: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DhError> {
    let p = parse_prime(prime)?;
    let y = BigNum::from_slice(peer_public)?;
    if !in_open_range(&y, &p)? {
        return Err(DhError::PublicValueOutOfRange { group });
    }
    let mut ctx = BigNumContext::new()?;
    let mut z = SecretBn(BigNum::new()?);
    z.0.mod_exp(&y, &x.0, &p, &mut ctx)?;
    Ok(Zeroizing::new(z.0.to_vec_padded(len_i32(len))?))
}

fn ecp_shared(
    group: DhGroup,
    d: &SecretBn,
    curve: Nid,
    coordinate_len: usize,
    peer_public: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DhError> {
    let not_on_curve = || DhError::PointNotOnCurve { group };
    let mut ctx = BigNumContext::new()?;
    let ec = EcGroup::from_curve_name(curve)?;
    let (mut p, mut a, mut b) = (BigNum::new()?, BigNum::new()?, BigNum::new()?);
    ec.components_gfp(&mut p, &mut a, &mut b, &mut ctx)?;
    let (x_bytes, y_bytes) = peer_public.split_at(coordinate_len);
    let x = BigNum::from_slice(x_bytes)?;
    let y = BigNum::from_slice(y_bytes)?;
    // A coordinate at or above p would be reduced silently: refuse the
    // non-canonical encoding rather than accept an alias of a valid point.
    if x.ucmp(&p) != Ordering::Less || y.ucmp(&p) != Ordering::Less {
        return Err(not_on_curve());
    }
    if !on_curve(&x, &y, &p, &a, &b, &mut ctx)? {
        return Err(not_on_curve());
    }
    let mut peer = EcPoint::new(&ec)?;
    peer.set_affine_coordinates_gfp(&ec, &x, &y, &mut ctx)?;
    let mut shared = EcPoint::new(&ec)?;
    shared.mul2(&ec, &peer, &d.0, &mut ctx)?;
    // P-256 and P-384 have cofactor 1, so a point on the curve times a
    // valid scalar is never the point at infinity; checked all the same.
    if shared.is_infinity(&ec) {
        return Err(not_on_curve());
    }
    let mut sx = SecretBn(BigNum::new()?);
    let mut sy = SecretBn(BigNum::new()?);
    shared.affine_coordinates(&ec, &mut sx.0, &mut sy.0, &mut ctx)?;
    Ok(Zeroizing::new(sx.0.to_vec_padded(len_i32(coordinate_len))?))
}

fn x25519_shared(
    group: DhGroup,
    key: &PKey<Private>,
    peer_public: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DhError> {
    let peer = PKey::public_key_from_raw_bytes(peer_public, Id::X25519)?;
    let mut deriver = Deriver::new(key)?;
    deriver.set_peer(&peer)?;
    // libcrypto itself refuses to derive an all-zero X25519 output, and
    // with a 32-octet peer value that is the only way derivation fails.
    let shared = match deriver.derive_to_vec() {
        Ok(shared) => Zeroizing::new(shared),
        Err(_) => return Err(DhError::ZeroSharedSecret { group }),
    };
    if shared.iter().all(|&b| b == 0) {
        return Err(DhError::ZeroSharedSecret { group });
    }
    Ok(shared)
}

/// y² = x³ + ax + b (mod p).
fn on_curve(
    x: &BigNumRef,
    y: &BigNumRef,
    p: &BigNumRef,
    a: &BigNumRef,
    b: &BigNumRef,
    ctx: &mut BigNumContextRef,
) -> Result<bool, ErrorStack> {
    let mut lhs = BigNum::new()?;
    lhs.mod_sqr(y, p, ctx)?;
    let mut x2 = BigNum::new()?;
    x2.mod_sqr(x, p, ctx)?;
    let mut x3 = BigNum::new()?;
    x3.mod_mul(&x2, x, p, ctx)?;
    let mut ax = BigNum::new()?;
    ax.mod_mul(a, x, p, ctx)?;
    let mut sum = BigNum::new()?;
    sum.mod_add(&x3, &ax, p, ctx)?;
    let mut rhs = BigNum::new()?;
    rhs.mod_add(&sum, b, p, ctx)?;
    Ok(lhs.ucmp(&rhs) == Ordering::Equal)
}

/// 1 < v < p-1: excludes 0, 1 and p-1, the values that would force the
/// shared secret into a subgroup of order 1 or 2 (RFC 6989 §2.1).
fn in_open_range(v: &BigNumRef, p: &BigNumRef) -> Result<bool, ErrorStack> {
    let one = BigNum::from_u32(1)?;
    let mut p_minus_1 = BigNum::new()?;
    p_minus_1.checked_sub(p, &one)?;
    Ok(v.ucmp(&one) == Ordering::Greater && v.ucmp(&p_minus_1) == Ordering::Less)
}

/// x | y, each padded to the coordinate length (RFC 5903 §7).
fn encode_point(
    group: &EcGroup,
    point: &EcPoint,
    coordinate_len: usize,
    ctx: &mut BigNumContext,
) -> Result<Vec<u8>, ErrorStack> {
    let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
    point.affine_coordinates(group, &mut x, &mut y, ctx)?;
    let mut out = x.to_vec_padded(len_i32(coordinate_len))?;
    out.extend_from_slice(&y.to_vec_padded(len_i32(coordinate_len))?);
    Ok(out)
}

fn parse_prime(hex: &str) -> Result<BigNum, ErrorStack> {
    let digits: String = hex.split_whitespace().collect();
    BigNum::from_hex_str(&digits)
}

/// Group value lengths are at most 256 octets; the cast cannot truncate.
fn len_i32(len: usize) -> i32 {
    len as i32
}

/// A secret big number, wiped (`BN_clear`) when dropped, and marked so that
/// libcrypto uses its constant-time paths with it.
struct SecretBn(BigNum);

impl SecretBn {
    fn from_slice(bytes: &[u8]) -> Result<SecretBn, ErrorStack> {
        let mut n = SecretBn(BigNum::from_slice(bytes)?);
        n.0.set_const_time();
        Ok(n)
    }
}

impl Drop for SecretBn {
    fn drop(&mut self) {
        self.0.clear();
    }
}

// The primes, as printed in RFC 2409 §6.1/§6.2 and RFC 3526 §2/§3 (each is
// 2^n - 2^(n-64) - 1 + 2^64 * { [2^(n-130) pi] + c }; the tests rebuild
// them from that formula in Python and compare with libcrypto's copies).

const MODP_768: &str = "
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A63A3620 FFFFFFFF FFFFFFFF";

const MODP_1024: &str = "
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE65381 FFFFFFFF FFFFFFFF";

const MODP_1536: &str = "
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA237327 FFFFFFFF FFFFFFFF";

const MODP_2048: &str = "
    FFFFFFFF FFFFFFFF C90FDAA2 2168C234 C4C6628B 80DC1CD1 29024E08 8A67CC74
    020BBEA6 3B139B22 514A0879 8E3404DD EF9519B3 CD3A431B 302B0A6D F25F1437
    4FE1356D 6D51C245 E485B576 625E7EC6 F44C42E9 A637ED6B 0BFF5CB6 F406B7ED
    EE386BFB 5A899FA5 AE9F2411 7C4B1FE6 49286651 ECE45B3D C2007CB8 A163BF05
    98DA4836 1C55D39A 69163FA8 FD24CF5F 83655D23 DCA3AD96 1C62F356 208552BB
    9ED52907 7096966D 670C354E 4ABC9804 F1746C08 CA18217C 32905E46 2E36CE3B
    E39E772C 180E8603 9B2783A2 EC07A28F B5C55DF0 6F4C52C9 DE2BCBF6 95581718
    3995497C EA956AE5 15D22618 98FA0510 15728E5A 8AACAA68 FFFFFFFF FFFFFFFF";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::crypto::reference;
    use serde_json::{json, Value};

    fn unhex(s: &str) -> Vec<u8> {
        let digits: String = s.split_whitespace().collect();
        hex::decode(digits).expect("test vector is hex")
    }

    const MODP: [DhGroup; 4] = [
        DhGroup::Modp768,
        DhGroup::Modp1024,
        DhGroup::Modp1536,
        DhGroup::Modp2048,
    ];

    #[test]
    fn group_numbers_are_the_iana_ones() {
        let ids: Vec<u16> = DhGroup::ALL.iter().map(|g| g.id()).collect();
        assert_eq!(ids, [1, 2, 5, 14, 19, 20, 31]);
        for g in DhGroup::ALL {
            assert_eq!(DhGroup::from_id(g.id()), Some(g));
        }
        for unsupported in [0, 3, 4, 15, 21, 24, 32] {
            assert_eq!(DhGroup::from_id(unsupported), None);
        }
        assert_eq!(DhGroup::Modp2048.to_string(), "group 14 (2048-bit MODP)");
    }

    #[test]
    fn modp_primes_match_libcrypto_copies_of_the_rfc_primes() {
        let theirs = [
            BigNum::get_rfc2409_prime_768(),
            BigNum::get_rfc2409_prime_1024(),
            BigNum::get_rfc3526_prime_1536(),
            BigNum::get_rfc3526_prime_2048(),
        ];
        for (group, theirs) in MODP.into_iter().zip(theirs) {
            let Kind::Modp { prime, len } = group.kind() else {
                panic!("{group} is MODP");
            };
            let ours = parse_prime(prime).expect("hex");
            assert_eq!(ours, theirs.expect("libcrypto prime"), "{group}");
            assert_eq!(ours.num_bytes() as usize, len, "{group}");
        }
    }

    /// The primes rebuilt from the RFCs' formula in Python, g^x and g^xy
    /// from Python's `pow`, against ours, for both sides of an exchange.
    #[test]
    fn modp_values_match_python_pow_on_both_sides() {
        let mut requests = Vec::new();
        let mut expected: Vec<Value> = Vec::new();
        for group in MODP {
            let Kind::Modp { prime, len } = group.kind() else {
                panic!("{group} is MODP");
            };
            requests.push(json!({"op": "modp_prime", "group": group.id()}));
            let p = parse_prime(prime).expect("hex");
            expected.push(hex::encode(p.to_vec_padded(len as i32).expect("fits")).into());
            // One fixed pair of private keys and two random ones per group.
            let fixed_a = vec![0x5a; len / 2];
            let fixed_b = [vec![0x01], vec![0xc3; len - 2]].concat();
            let mut pairs = vec![(fixed_a, fixed_b)];
            for _ in 0..2 {
                let mut a = reference::random_bytes(len);
                let mut b = reference::random_bytes(len);
                a[0] &= 0x7f;
                b[0] &= 0x7f;
                pairs.push((a, b));
            }
            for (a, b) in pairs {
                let alice = group.private_from_bytes(&a).expect("valid exponent");
                let bob = group.private_from_bytes(&b).expect("valid exponent");
                for (me, mine, peer) in [(&alice, &a, &bob), (&bob, &b, &alice)] {
                    requests.push(
                        json!({"op": "modp_public", "group": group.id(), "x": hex::encode(mine)}),
                    );
                    expected.push(hex::encode(me.public_value()).into());
                    requests.push(json!({
                        "op": "modp_shared", "group": group.id(),
                        "x": hex::encode(mine), "y": hex::encode(peer.public_value()),
                    }));
                    let shared = me.shared_secret(peer.public_value()).expect("valid");
                    expected.push(hex::encode(&*shared).into());
                }
                assert_eq!(
                    alice.shared_secret(bob.public_value()).expect("valid"),
                    bob.shared_secret(alice.public_value()).expect("valid"),
                );
            }
        }
        reference::check(&requests, &expected);
    }

    /// One in 256 public values and secrets starts with a zero octet; the
    /// KE payload and g^xy keep it (RFC 7296 §3.4 and §2.14).
    #[test]
    fn modp_values_with_leading_zero_octets_keep_their_full_length() {
        let group = DhGroup::Modp768;
        let alice = group.private_from_bytes(&[0x42; 48]).expect("valid");
        let mut found_public = None;
        let mut found_shared = None;
        for i in 2u32..20_000 {
            let x = i.to_be_bytes();
            let bob = group.private_from_bytes(&x).expect("valid");
            assert_eq!(bob.public_value().len(), 96);
            if found_public.is_none() && bob.public_value()[0] == 0 {
                found_public = Some(x);
            }
            let shared = alice.shared_secret(bob.public_value()).expect("valid");
            assert_eq!(shared.len(), 96);
            if found_shared.is_none() && shared[0] == 0 {
                found_shared = Some((x, bob.public_value().to_vec()));
            }
            if found_public.is_some() && found_shared.is_some() {
                break;
            }
        }
        let x = found_public.expect("a public value with a leading zero octet");
        let (y, bob_public) = found_shared.expect("a shared secret with a leading zero octet");
        let requests = [
            json!({"op": "modp_public", "group": 1, "x": hex::encode(x)}),
            json!({"op": "modp_shared", "group": 1, "x": hex::encode([0x42; 48]), "y": hex::encode(&bob_public)}),
        ];
        let bob = group.private_from_bytes(&y).expect("valid");
        let expected = vec![
            Value::from(hex::encode(
                group.private_from_bytes(&x).expect("valid").public_value(),
            )),
            Value::from(hex::encode(
                &*alice.shared_secret(bob.public_value()).expect("valid"),
            )),
        ];
        reference::check(&requests, &expected);
    }

    #[test]
    fn modp_peer_values_outside_two_to_p_minus_two_are_refused() {
        for group in MODP {
            let me = group.generate().expect("generate");
            let len = group.public_value_len();
            let Kind::Modp { prime, .. } = group.kind() else {
                panic!("{group} is MODP");
            };
            let p = parse_prime(prime).expect("hex");
            let mut p_minus_1 = BigNum::new().expect("bn");
            p_minus_1
                .checked_sub(&p, &BigNum::from_u32(1).expect("bn"))
                .expect("sub");
            let pad = |n: &BigNumRef| n.to_vec_padded(len as i32).expect("fits");
            let zero = vec![0u8; len];
            let one = [vec![0u8; len - 1], vec![1]].concat();
            let ff = vec![0xff; len];
            for bad in [zero, one, pad(&p_minus_1), pad(&p), ff] {
                assert!(
                    matches!(
                        me.shared_secret(&bad),
                        Err(DhError::PublicValueOutOfRange { group: g }) if g == group
                    ),
                    "{group}"
                );
            }
            let two = [vec![0u8; len - 1], vec![2]].concat();
            assert!(me.shared_secret(&two).is_ok());
        }
    }

    #[test]
    fn peer_values_of_the_wrong_length_are_refused_in_every_group() {
        for group in DhGroup::ALL {
            let me = group.generate().expect("generate");
            let len = group.public_value_len();
            assert_eq!(me.public_value().len(), len);
            for bad_len in [0, 1, len - 1, len + 1] {
                let bad = vec![0x11; bad_len];
                match me.shared_secret(&bad) {
                    Err(DhError::PublicValueLength {
                        group: g,
                        expected,
                        got,
                    }) => assert_eq!((g, expected, got), (group, len, bad_len)),
                    other => panic!("{group}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn generated_keys_agree_in_every_group() {
        for group in DhGroup::ALL {
            let a = group.generate().expect("generate");
            let b = group.generate().expect("generate");
            assert_ne!(a.public_value(), b.public_value(), "{group}");
            let ab = a.shared_secret(b.public_value()).expect("valid");
            let ba = b.shared_secret(a.public_value()).expect("valid");
            assert_eq!(ab, ba, "{group}");
            assert_eq!(ab.len(), group.shared_secret_len(), "{group}");
        }
    }

    /// RFC 5903 §8.1: i, g^i, r, g^r and g^ir for the 256-bit random ECP
    /// group; the KE payload is x | y and the shared secret is g^ir's x.
    #[test]
    fn ecp_256_matches_rfc_5903_section_8_1() {
        let i = unhex("C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433");
        let gi = unhex(
            "DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180
             5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3",
        );
        let r = unhex("C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53");
        let gr = unhex(
            "D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63
             56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB",
        );
        let gir_x =
            unhex("D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE");
        check_ecdh(DhGroup::Ecp256, &i, &gi, &r, &gr, &gir_x);
    }

    /// RFC 5903 §8.2, the 384-bit random ECP group.
    #[test]
    fn ecp_384_matches_rfc_5903_section_8_2() {
        let i = unhex(
            "099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655
             E35B5380 41E649EE 3FAEF896 783AB194",
        );
        let gi = unhex(
            "667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6
             DE3AC808 ACB4BDB4 C88732AE E95F41AA 9482ED1F C0EEB9CA FC498462 5CCFC23F
             65032149 E0E144AD A0241815 35A0F38E EB9FCFF3 C2C947DA E69B4C63 4573A81C",
        );
        let r = unhex(
            "41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942
             E0308312 916B8ED2 960E4BD5 5A7448FC",
        );
        let gr = unhex(
            "E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D
             0D1AC43A 0336DEF9 6FDA41D0 774A3571 DCFBEC7A ACF31964 72169E83 8430367F
             66EEBE3C 6E70C416 DD5F0C68 759DD1FF F83FA401 42209DFF 5EAAD96D B9E6386C",
        );
        let gir_x = unhex(
            "11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4
             D6031355 69B9E9D0 9CF5D4A2 70F59746",
        );
        check_ecdh(DhGroup::Ecp384, &i, &gi, &r, &gr, &gir_x);
    }

    /// RFC 7748 §6.1: Alice's and Bob's keys and their shared secret.
    #[test]
    fn curve25519_matches_rfc_7748_section_6_1() {
        let a = unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let ka = unhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let b = unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let kb = unhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let k = unhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
        check_ecdh(DhGroup::Curve25519, &a, &ka, &b, &kb, &k);
    }

    fn check_ecdh(group: DhGroup, i: &[u8], gi: &[u8], r: &[u8], gr: &[u8], shared: &[u8]) {
        let init = group.private_from_bytes(i).expect("valid private key");
        let resp = group.private_from_bytes(r).expect("valid private key");
        assert_eq!(hex::encode(init.public_value()), hex::encode(gi));
        assert_eq!(hex::encode(resp.public_value()), hex::encode(gr));
        assert_eq!(
            hex::encode(&*init.shared_secret(gr).expect("valid")),
            hex::encode(shared)
        );
        assert_eq!(
            hex::encode(&*resp.shared_secret(gi).expect("valid")),
            hex::encode(shared)
        );
    }

    #[test]
    fn ecp_points_off_the_curve_or_with_oversized_coordinates_are_refused() {
        for group in [DhGroup::Ecp256, DhGroup::Ecp384] {
            let me = group.generate().expect("generate");
            let peer = group.generate().expect("generate");
            let n = group.shared_secret_len();
            let mut off = peer.public_value().to_vec();
            off[2 * n - 1] ^= 1;
            // x = p (an alias of x = 0) and the all-ones encodings.
            let Kind::Ecp { curve, .. } = group.kind() else {
                panic!("{group} is ECP");
            };
            let ec = EcGroup::from_curve_name(curve).expect("curve");
            let mut ctx = BigNumContext::new().expect("ctx");
            let (mut p, mut a, mut b) = (
                BigNum::new().unwrap(),
                BigNum::new().unwrap(),
                BigNum::new().unwrap(),
            );
            ec.components_gfp(&mut p, &mut a, &mut b, &mut ctx)
                .expect("components");
            let mut x_is_p = p.to_vec_padded(n as i32).expect("fits");
            x_is_p.extend_from_slice(&peer.public_value()[n..]);
            let zeros = vec![0u8; 2 * n];
            let ones = vec![0xff; 2 * n];
            for bad in [off, x_is_p, zeros, ones] {
                assert!(
                    matches!(
                        me.shared_secret(&bad),
                        Err(DhError::PointNotOnCurve { group: g }) if g == group
                    ),
                    "{group}"
                );
            }
            assert!(me.shared_secret(peer.public_value()).is_ok());
        }
    }

    /// u = 0 and u = 1 are low-order points: X25519 with them is all zeros,
    /// which RFC 8031 §2 requires us to refuse.
    #[test]
    fn curve25519_low_order_points_are_refused() {
        let me = DhGroup::Curve25519.generate().expect("generate");
        let mut one = [0u8; 32];
        one[0] = 1;
        for bad in [[0u8; 32], one] {
            assert!(matches!(
                me.shared_secret(&bad),
                Err(DhError::ZeroSharedSecret {
                    group: DhGroup::Curve25519
                })
            ));
        }
    }

    #[test]
    fn invalid_private_keys_are_refused() {
        let cases: [(DhGroup, Vec<u8>); 8] = [
            (DhGroup::Modp1024, vec![]),
            (DhGroup::Modp1024, vec![1]),
            (DhGroup::Modp1024, vec![0xff; 128]),
            (DhGroup::Modp1024, vec![1; 129]),
            (DhGroup::Ecp256, vec![0; 32]),
            (DhGroup::Ecp256, vec![0xff; 32]),
            (DhGroup::Ecp256, vec![1; 31]),
            (DhGroup::Curve25519, vec![1; 31]),
        ];
        for (group, bytes) in cases {
            assert!(
                matches!(
                    group.private_from_bytes(&bytes),
                    Err(DhError::InvalidPrivateKey { group: g }) if g == group
                ),
                "{group} {}",
                bytes.len()
            );
        }
    }

    #[test]
    fn debug_output_shows_no_private_key() {
        let private = [0xa7u8; 32];
        let key = DhGroup::Ecp256.private_from_bytes(&private).expect("valid");
        let shown = format!("{key:?}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(
            !shown.contains("a7a7") && !shown.contains("167, 167"),
            "{shown}"
        );
    }
}
