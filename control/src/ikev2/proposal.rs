//! SA payloads: the IKE proposals this gateway sends and accepts, and the
//! ESP proposals of a map entry's transform sets, with IOS semantics (the
//! responder walks its own proposals in order and takes the first the
//! peer also offers).

use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};

use crate::ike::crypto::{DhGroup, Prf};
use crate::ike::wire::attribute::Attribute;
use crate::ike::wire::ikev2::iana;
use crate::ike::wire::ikev2::{
    Proposal, ProtocolId, SecurityAssociation, Transform, TransformType,
};

use super::policy::{EspTransform, IkeEncr, IkeInteg, Ikev2Proposal};

/// The IKE SA suite both sides settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeChoice {
    pub encr: IkeEncr,
    pub integ: Option<IkeInteg>,
    pub prf: Prf,
    pub group: DhGroup,
}

/// Why no IKE suite was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeSelectError {
    NoProposal,
    /// A suite matches, but the KE payload is of another group: answer
    /// INVALID_KE_PAYLOAD naming this one.
    InvalidKe(DhGroup),
}

fn encr_transform(e: IkeEncr) -> Transform {
    let (id, bits) = match e {
        IkeEncr::TripleDes => (iana::encr::TRIPLE_DES, None),
        IkeEncr::AesCbc(b) => (iana::encr::AES_CBC, Some(b)),
        IkeEncr::AesGcm16(b) => (iana::encr::AES_GCM_16, Some(b)),
    };
    let mut t = Transform::new(TransformType::ENCR, id);
    if let Some(b) = bits {
        t.attributes.push(Attribute::basic(iana::KEY_LENGTH, b));
    }
    t
}

fn integ_id(i: IkeInteg) -> u16 {
    match i {
        IkeInteg::Sha1_96 => iana::integ::HMAC_SHA1_96,
        IkeInteg::Sha256_128 => iana::integ::HMAC_SHA2_256_128,
        IkeInteg::Sha384_192 => iana::integ::HMAC_SHA2_384_192,
        IkeInteg::Sha512_256 => iana::integ::HMAC_SHA2_512_256,
    }
}

fn is_aead(e: IkeEncr) -> bool {
    matches!(e, IkeEncr::AesGcm16(_))
}

fn has(p: &Proposal, t: &Transform) -> bool {
    p.transforms.iter().any(|x| {
        x.transform_type == t.transform_type
            && x.transform_id == t.transform_id
            && x.key_length() == t.key_length()
    })
}

fn has_id(p: &Proposal, tt: TransformType, id: u16) -> bool {
    p.transforms
        .iter()
        .any(|x| x.transform_type == tt && x.transform_id == id)
}

fn count(p: &Proposal, tt: TransformType) -> usize {
    p.transforms
        .iter()
        .filter(|x| x.transform_type == tt && x.transform_id != 0)
        .count()
}

/// The IKE SA payload for `proposals` (AEAD and non-AEAD ciphers of one
/// IOS proposal go into separate wire proposals, RFC 7296 §3.3). With
/// `only` the single group is the one offered (after INVALID_KE_PAYLOAD).
pub fn ike_sa_payload(proposals: &[Ikev2Proposal], spi: &[u8]) -> SecurityAssociation {
    let mut out = Vec::new();
    for p in proposals {
        for aead in [false, true] {
            let encrs: Vec<_> = p.encr.iter().filter(|e| is_aead(**e) == aead).collect();
            if encrs.is_empty() || (!aead && p.integ.is_empty()) {
                continue;
            }
            let mut transforms: Vec<Transform> =
                encrs.iter().map(|e| encr_transform(**e)).collect();
            for prf in prfs(p) {
                transforms.push(Transform::new(TransformType::PRF, prf.ikev2_prf_id()));
            }
            if !aead {
                for i in &p.integ {
                    transforms.push(Transform::new(TransformType::INTEG, integ_id(*i)));
                }
            }
            for g in &p.groups {
                transforms.push(Transform::new(TransformType::DH, g.id()));
            }
            out.push(Proposal {
                number: u8::try_from(out.len() + 1).unwrap_or(u8::MAX),
                protocol: ProtocolId::IKE,
                spi: spi.to_vec(),
                transforms,
            });
        }
    }
    SecurityAssociation { proposals: out }
}

/// The prfs of a proposal: configured, else those of its integrity
/// algorithms (IOS), else SHA-256.
fn prfs(p: &Ikev2Proposal) -> Vec<Prf> {
    if !p.prf.is_empty() {
        return p.prf.clone();
    }
    let mut v: Vec<Prf> = p
        .integ
        .iter()
        .map(|i| super::crypt::integ_prf(*i))
        .collect();
    v.dedup();
    if v.is_empty() {
        v.push(Prf::HmacSha256);
    }
    v
}

/// The SA payload answering with one choice.
pub fn ike_choice_payload(c: &IkeChoice, number: u8, spi: &[u8]) -> SecurityAssociation {
    let mut transforms = vec![
        encr_transform(c.encr),
        Transform::new(TransformType::PRF, c.prf.ikev2_prf_id()),
    ];
    if let Some(i) = c.integ {
        transforms.push(Transform::new(TransformType::INTEG, integ_id(i)));
    }
    transforms.push(Transform::new(TransformType::DH, c.group.id()));
    SecurityAssociation {
        proposals: vec![Proposal {
            number,
            protocol: ProtocolId::IKE,
            spi: spi.to_vec(),
            transforms,
        }],
    }
}

/// Responder: the first of our proposals (in order) that one of the
/// peer's proposals allows, given the peer's KE group. Returns the choice
/// and the peer's proposal number.
pub fn select_ike(
    ours: &[Ikev2Proposal],
    peer: &SecurityAssociation,
    ke_group: u16,
) -> Result<(IkeChoice, u8), IkeSelectError> {
    let mut fallback = None;
    for p in ours {
        for pp in peer
            .proposals
            .iter()
            .filter(|pp| pp.protocol == ProtocolId::IKE)
        {
            let Some(choice) = match_one(p, pp, ke_group) else {
                continue;
            };
            if choice.group.id() == ke_group {
                return Ok((choice, pp.number));
            }
            fallback.get_or_insert(choice.group);
        }
    }
    Err(fallback.map_or(IkeSelectError::NoProposal, IkeSelectError::InvalidKe))
}

fn match_one(p: &Ikev2Proposal, pp: &Proposal, ke_group: u16) -> Option<IkeChoice> {
    let encr = *p.encr.iter().find(|e| has(pp, &encr_transform(**e)))?;
    let integ = if is_aead(encr) {
        if count(pp, TransformType::INTEG) > 0 {
            return None;
        }
        None
    } else {
        Some(
            *p.integ
                .iter()
                .find(|i| has_id(pp, TransformType::INTEG, integ_id(**i)))?,
        )
    };
    let prf = prfs(p)
        .into_iter()
        .find(|f| has_id(pp, TransformType::PRF, f.ikev2_prf_id()))?;
    let groups: Vec<DhGroup> = p
        .groups
        .iter()
        .copied()
        .filter(|g| has_id(pp, TransformType::DH, g.id()))
        .collect();
    let group = groups
        .iter()
        .copied()
        .find(|g| g.id() == ke_group)
        .or(groups.first().copied())?;
    Some(IkeChoice {
        encr,
        integ,
        prf,
        group,
    })
}

/// Initiator: the responder's single-proposal answer, checked against
/// what was offered.
pub fn accept_ike(ours: &[Ikev2Proposal], answer: &SecurityAssociation) -> Option<IkeChoice> {
    let [pp] = answer.proposals.as_slice() else {
        return None;
    };
    if count(pp, TransformType::ENCR) != 1
        || count(pp, TransformType::PRF) != 1
        || count(pp, TransformType::DH) != 1
        || count(pp, TransformType::INTEG) > 1
    {
        return None;
    }
    let g = pp
        .transforms
        .iter()
        .find(|t| t.transform_type == TransformType::DH)?
        .transform_id;
    ours.iter().find_map(|p| match_one(p, pp, g))
}

// ---- ESP ----

fn esp_encr(enc: EncAlg) -> Option<Transform> {
    let (id, bits) = match enc {
        EncAlg::TripleDesCbc => (iana::encr::TRIPLE_DES, None),
        EncAlg::AesCbc128 => (iana::encr::AES_CBC, Some(128)),
        EncAlg::AesCbc192 => (iana::encr::AES_CBC, Some(192)),
        EncAlg::AesCbc256 => (iana::encr::AES_CBC, Some(256)),
        EncAlg::AesGcm128(icv) | EncAlg::AesGcm256(icv) => {
            let id = match icv {
                GcmIcv::B8 => iana::encr::AES_GCM_8,
                GcmIcv::B12 => iana::encr::AES_GCM_12,
                GcmIcv::B16 => iana::encr::AES_GCM_16,
            };
            let bits = if matches!(enc, EncAlg::AesGcm128(_)) {
                128
            } else {
                256
            };
            (id, Some(bits))
        }
        EncAlg::Null => (iana::encr::NULL, None),
        EncAlg::DesCbc => (iana::encr::DES, None),
    };
    let mut t = Transform::new(TransformType::ENCR, id);
    if let Some(b) = bits {
        t.attributes.push(Attribute::basic(iana::KEY_LENGTH, b));
    }
    Some(t)
}

fn esp_integ(auth: AuthAlg) -> Option<u16> {
    Some(match auth {
        AuthAlg::None => return None,
        AuthAlg::HmacMd5_96 => iana::integ::HMAC_MD5_96,
        AuthAlg::HmacSha1_96 => iana::integ::HMAC_SHA1_96,
        AuthAlg::HmacSha256_128 => iana::integ::HMAC_SHA2_256_128,
        AuthAlg::HmacSha384_192 => iana::integ::HMAC_SHA2_384_192,
        AuthAlg::HmacSha512_256 => iana::integ::HMAC_SHA2_512_256,
    })
}

fn esp_transforms(t: &EspTransform, pfs: Option<DhGroup>) -> Vec<Transform> {
    let mut v: Vec<Transform> = esp_encr(t.enc).into_iter().collect();
    if let Some(id) = esp_integ(t.auth) {
        v.push(Transform::new(TransformType::INTEG, id));
    }
    if let Some(g) = pfs {
        v.push(Transform::new(TransformType::DH, g.id()));
    }
    v.push(Transform::new(TransformType::ESN, iana::esn::NO));
    v
}

/// The ESP SA payload offering each transform set, with our inbound SPI.
pub fn esp_sa_payload(
    sets: &[EspTransform],
    spi: u32,
    pfs: Option<DhGroup>,
) -> SecurityAssociation {
    SecurityAssociation {
        proposals: sets
            .iter()
            .enumerate()
            .map(|(i, t)| Proposal {
                number: u8::try_from(i + 1).unwrap_or(u8::MAX),
                protocol: ProtocolId::ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: esp_transforms(t, pfs),
            })
            .collect(),
    }
}

/// The answer with one transform set.
pub fn esp_choice_payload(
    t: &EspTransform,
    number: u8,
    spi: u32,
    pfs: Option<DhGroup>,
) -> SecurityAssociation {
    SecurityAssociation {
        proposals: vec![Proposal {
            number,
            protocol: ProtocolId::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: esp_transforms(t, pfs),
        }],
    }
}

/// `dh`: `None` ignores DH transforms (IKE_AUTH, RFC 7296 §1.2); else
/// the PFS group required (`Some(None)`: none may be offered but NONE).
fn esp_matches(t: &EspTransform, pp: &Proposal, dh: Option<Option<DhGroup>>) -> bool {
    let Some(e) = esp_encr(t.enc) else {
        return false;
    };
    if pp.protocol != ProtocolId::ESP || pp.spi.len() != 4 || !has(pp, &e) {
        return false;
    }
    let integ_ok = match esp_integ(t.auth) {
        Some(id) => has_id(pp, TransformType::INTEG, id),
        None => count(pp, TransformType::INTEG) == 0,
    };
    let esn_ok =
        count(pp, TransformType::ESN) == 0 || has_id(pp, TransformType::ESN, iana::esn::NO);
    let dh_ok = match dh {
        None => true,
        Some(None) => count(pp, TransformType::DH) == 0,
        Some(Some(g)) => has_id(pp, TransformType::DH, g.id()),
    };
    integ_ok && esn_ok && dh_ok
}

/// Responder: our first transform set (in order) one of the peer's
/// proposals offers: (set index, peer proposal number, peer SPI).
pub fn select_esp(
    ours: &[EspTransform],
    peer: &SecurityAssociation,
    dh: Option<Option<DhGroup>>,
) -> Option<(usize, u8, u32)> {
    ours.iter().enumerate().find_map(|(i, t)| {
        peer.proposals
            .iter()
            .find(|pp| esp_matches(t, pp, dh))
            .map(|pp| (i, pp.number, spi_u32(&pp.spi)))
    })
}

/// Initiator: which of our sets the single answer names, and its SPI.
pub fn accept_esp(
    ours: &[EspTransform],
    answer: &SecurityAssociation,
    dh: Option<Option<DhGroup>>,
) -> Option<(usize, u32)> {
    let [pp] = answer.proposals.as_slice() else {
        return None;
    };
    ours.iter()
        .position(|t| esp_matches(t, pp, dh))
        .map(|i| (i, spi_u32(&pp.spi)))
}

fn spi_u32(spi: &[u8]) -> u32 {
    spi.try_into().map(u32::from_be_bytes).unwrap_or(0)
}
