//! SA payloads of both phases: what Espada proposes from the config, and
//! which of a peer's proposals it accepts (RFC 2409 §5, Appendix A;
//! RFC 2407 §4.5).
//!
//! Phase 1 as IOS does it: one proposal, one transform per `crypto isakmp
//! policy` in priority order; as responder the first of our policies (in
//! priority order) that one of the peer's transforms matches wins, and the
//! peer's transform is returned unchanged. The lifetime is not a reason to
//! refuse: the shorter of the two applies.
//!
//! Phase 2: one ESP proposal carrying our inbound SPI, one transform per
//! transform set of the map entry.

use dataplane::crypto::{AuthAlg, EncAlg, GcmIcv};

use crate::config::ike::{IkeCipher, IkeHash};
use crate::ike::crypto::DhGroup;
use crate::ike::wire::attribute::{find, Attribute};
use crate::ike::wire::ikev1::iana::{phase1, phase2, transform_id};
use crate::ike::wire::ikev1::{Proposal, ProtocolId, SecurityAssociation, Transform};

use super::policy::{EspTransform, IpsecLifetime, IsakmpProposal};

/// The negotiated phase 1 algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase1Choice {
    pub cipher: IkeCipher,
    pub hash: IkeHash,
    pub group: DhGroup,
    pub lifetime: u32,
}

/// IKEv1's hash attribute value of a hash.
pub fn hash_id(h: IkeHash) -> u16 {
    match h {
        IkeHash::Md5 => phase1::hash::MD5,
        IkeHash::Sha1 => phase1::hash::SHA,
        IkeHash::Sha256 => phase1::hash::SHA2_256,
        IkeHash::Sha384 => phase1::hash::SHA2_384,
        IkeHash::Sha512 => phase1::hash::SHA2_512,
    }
}

fn hash_from_id(id: u64) -> Option<IkeHash> {
    [
        IkeHash::Md5,
        IkeHash::Sha1,
        IkeHash::Sha256,
        IkeHash::Sha384,
        IkeHash::Sha512,
    ]
    .into_iter()
    .find(|&h| u64::from(hash_id(h)) == id)
}

fn life_attr(attr_type: u16, value: u64) -> Attribute {
    match u16::try_from(value) {
        Ok(v) => Attribute::basic(attr_type, v),
        Err(_) => {
            let v = u32::try_from(value).unwrap_or(u32::MAX);
            Attribute::variable(attr_type, v.to_be_bytes().to_vec())
        }
    }
}

/// The phase 1 SA payload proposing every policy.
pub fn phase1_offer(policies: &[IsakmpProposal]) -> SecurityAssociation {
    let transforms = policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut attributes = Vec::new();
            let (enc, key_bits) = match p.cipher {
                IkeCipher::Des => (phase1::encryption::DES_CBC, None),
                IkeCipher::TripleDes => (phase1::encryption::TRIPLE_DES_CBC, None),
                IkeCipher::AesCbc(bits) => (phase1::encryption::AES_CBC, Some(bits)),
            };
            attributes.push(Attribute::basic(phase1::ENCRYPTION_ALGORITHM, enc));
            if let Some(bits) = key_bits {
                attributes.push(Attribute::basic(phase1::KEY_LENGTH, bits));
            }
            attributes.push(Attribute::basic(phase1::HASH_ALGORITHM, hash_id(p.hash)));
            attributes.push(Attribute::basic(
                phase1::AUTHENTICATION_METHOD,
                phase1::auth_method::PRE_SHARED_KEY,
            ));
            attributes.push(Attribute::basic(phase1::GROUP_DESCRIPTION, p.group.id()));
            attributes.push(Attribute::basic(
                phase1::LIFE_TYPE,
                phase1::life_type::SECONDS,
            ));
            attributes.push(life_attr(phase1::LIFE_DURATION, u64::from(p.lifetime)));
            Transform {
                number: (i + 1).min(255) as u8,
                transform_id: transform_id::KEY_IKE,
                attributes,
            }
        })
        .collect();
    SecurityAssociation {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ISAKMP,
            spi: Vec::new(),
            transforms,
        }],
    }
}

/// What a phase 1 transform asks for; `None` for anything Espada does not
/// do (other auth methods, unknown algorithms, explicit group parameters).
pub fn read_phase1(t: &Transform) -> Option<Phase1Choice> {
    if t.transform_id != transform_id::KEY_IKE {
        return None;
    }
    let get = |ty| find(&t.attributes, ty).and_then(Attribute::as_u64);
    if get(phase1::AUTHENTICATION_METHOD)? != u64::from(phase1::auth_method::PRE_SHARED_KEY) {
        return None;
    }
    if find(&t.attributes, phase1::GROUP_PRIME).is_some() || get(phase1::PRF).is_some() {
        return None;
    }
    let cipher = match u16::try_from(get(phase1::ENCRYPTION_ALGORITHM)?).ok()? {
        phase1::encryption::DES_CBC => IkeCipher::Des,
        phase1::encryption::TRIPLE_DES_CBC => IkeCipher::TripleDes,
        phase1::encryption::AES_CBC => match get(phase1::KEY_LENGTH)? {
            bits @ (128 | 192 | 256) => IkeCipher::AesCbc(bits as u16),
            _ => return None,
        },
        _ => return None,
    };
    let hash = hash_from_id(get(phase1::HASH_ALGORITHM)?)?;
    let group = DhGroup::from_id(u16::try_from(get(phase1::GROUP_DESCRIPTION)?).ok()?)?;
    let lifetime = match get(phase1::LIFE_TYPE) {
        Some(t) if t == u64::from(phase1::life_type::SECONDS) => {
            get(phase1::LIFE_DURATION).map_or(u32::MAX, |s| u32::try_from(s).unwrap_or(u32::MAX))
        }
        _ => u32::MAX,
    };
    Some(Phase1Choice {
        cipher,
        hash,
        group,
        lifetime,
    })
}

/// As responder: the peer's transform to return and what it agrees on,
/// trying our policies in priority order.
pub fn choose_phase1(
    offer: &SecurityAssociation,
    policies: &[IsakmpProposal],
) -> Option<(Transform, Phase1Choice)> {
    let p = offer
        .proposals
        .iter()
        .find(|p| p.protocol == ProtocolId::ISAKMP)?;
    for ours in policies {
        for t in &p.transforms {
            let Some(c) = read_phase1(t) else { continue };
            if c.cipher == ours.cipher
                && c.hash == ours.hash
                && c.group == ours.group
                && u64::from(c.lifetime) >= MIN_LIFETIME_SECONDS
            {
                let lifetime = c.lifetime.min(ours.lifetime).max(1);
                return Some((t.clone(), Phase1Choice { lifetime, ..c }));
            }
        }
    }
    None
}

/// As initiator: the responder's choice, if it is one we offered.
pub fn accept_phase1(
    reply: &SecurityAssociation,
    policies: &[IsakmpProposal],
) -> Option<Phase1Choice> {
    let [p] = reply.proposals.as_slice() else {
        return None;
    };
    let [t] = p.transforms.as_slice() else {
        return None;
    };
    let c = read_phase1(t)?;
    let ours = policies
        .iter()
        .find(|o| o.cipher == c.cipher && o.hash == c.hash && o.group == c.group)?;
    if u64::from(c.lifetime) < MIN_LIFETIME_SECONDS {
        return None;
    }
    Some(Phase1Choice {
        lifetime: c.lifetime.min(ours.lifetime).max(1),
        ..c
    })
}

/// The negotiated phase 2 transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase2Choice {
    pub enc: EncAlg,
    pub auth: AuthAlg,
    pub tunnel: bool,
    /// UDP-encapsulated (NAT traversal, RFC 3947 or its drafts).
    pub udp: bool,
    pub pfs: Option<DhGroup>,
    pub lifetime: IpsecLifetime,
}

/// How Quick Mode names UDP encapsulation: RFC 3947's values or the
/// drafts' (61443/61444), whichever NAT-T version Main Mode agreed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpEncapStyle {
    Rfc3947,
    Draft,
}

fn encapsulation_mode(tunnel: bool, udp: Option<UdpEncapStyle>) -> u16 {
    use phase2::encapsulation_mode as m;
    match (tunnel, udp) {
        (true, None) => m::TUNNEL,
        (false, None) => m::TRANSPORT,
        (true, Some(UdpEncapStyle::Rfc3947)) => m::UDP_TUNNEL,
        (false, Some(UdpEncapStyle::Rfc3947)) => m::UDP_TRANSPORT,
        (true, Some(UdpEncapStyle::Draft)) => m::UDP_TUNNEL_DRAFT,
        (false, Some(UdpEncapStyle::Draft)) => m::UDP_TRANSPORT_DRAFT,
    }
}

fn esp_ids(enc: EncAlg) -> (u8, Option<u16>) {
    match enc {
        EncAlg::Null => (transform_id::ESP_NULL, None),
        EncAlg::DesCbc => (transform_id::ESP_DES, None),
        EncAlg::TripleDesCbc => (transform_id::ESP_3DES, None),
        EncAlg::AesCbc128 => (transform_id::ESP_AES, Some(128)),
        EncAlg::AesCbc192 => (transform_id::ESP_AES, Some(192)),
        EncAlg::AesCbc256 => (transform_id::ESP_AES, Some(256)),
        EncAlg::AesGcm128(icv) | EncAlg::AesGcm256(icv) => {
            let id = match icv {
                GcmIcv::B8 => transform_id::ESP_AES_GCM_8,
                GcmIcv::B12 => transform_id::ESP_AES_GCM_12,
                GcmIcv::B16 => transform_id::ESP_AES_GCM_16,
            };
            let bits = if matches!(enc, EncAlg::AesGcm128(_)) {
                128
            } else {
                256
            };
            (id, Some(bits))
        }
    }
}

fn auth_id(a: AuthAlg) -> Option<u16> {
    match a {
        AuthAlg::None => None,
        AuthAlg::HmacMd5_96 => Some(phase2::auth_algorithm::HMAC_MD5),
        AuthAlg::HmacSha1_96 => Some(phase2::auth_algorithm::HMAC_SHA),
        AuthAlg::HmacSha256_128 => Some(phase2::auth_algorithm::HMAC_SHA2_256),
        AuthAlg::HmacSha384_192 => Some(phase2::auth_algorithm::HMAC_SHA2_384),
        AuthAlg::HmacSha512_256 => Some(phase2::auth_algorithm::HMAC_SHA2_512),
    }
}

fn esp_transform(
    number: u8,
    t: &EspTransform,
    pfs: Option<DhGroup>,
    life: IpsecLifetime,
    udp: Option<UdpEncapStyle>,
) -> Transform {
    let (id, bits) = esp_ids(t.enc);
    let mut attributes = vec![
        Attribute::basic(phase2::SA_LIFE_TYPE, phase2::life_type::SECONDS),
        life_attr(phase2::SA_LIFE_DURATION, life.seconds),
        Attribute::basic(phase2::SA_LIFE_TYPE, phase2::life_type::KILOBYTES),
        life_attr(phase2::SA_LIFE_DURATION, life.kilobytes),
    ];
    if let Some(g) = pfs {
        attributes.push(Attribute::basic(phase2::GROUP_DESCRIPTION, g.id()));
    }
    attributes.push(Attribute::basic(
        phase2::ENCAPSULATION_MODE,
        encapsulation_mode(t.tunnel, udp),
    ));
    if let Some(a) = auth_id(t.auth) {
        attributes.push(Attribute::basic(phase2::AUTHENTICATION_ALGORITHM, a));
    }
    if let Some(bits) = bits {
        attributes.push(Attribute::basic(phase2::KEY_LENGTH, bits));
    }
    Transform {
        number,
        transform_id: id,
        attributes,
    }
}

/// The phase 2 SA payload: one ESP proposal with our inbound SPI and one
/// transform per transform set; `udp` when Main Mode found a NAT.
pub fn phase2_offer(
    spi: u32,
    transforms: &[EspTransform],
    pfs: Option<DhGroup>,
    life: IpsecLifetime,
    udp: Option<UdpEncapStyle>,
) -> SecurityAssociation {
    SecurityAssociation {
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::IPSEC_ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: transforms
                .iter()
                .enumerate()
                .map(|(i, t)| esp_transform((i + 1).min(255) as u8, t, pfs, life, udp))
                .collect(),
        }],
    }
}

/// The phase 2 SA payload answering with one transform (ours, filled
/// from the agreed choice) and our inbound SPI.
pub fn phase2_answer(number: u8, spi: u32, picked: &Transform) -> SecurityAssociation {
    SecurityAssociation {
        proposals: vec![Proposal {
            number,
            protocol: ProtocolId::IPSEC_ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms: vec![picked.clone()],
        }],
    }
}

/// What an ESP transform asks for; `None` for what Espada does not do.
pub fn read_phase2(t: &Transform) -> Option<Phase2Choice> {
    let get = |ty| find(&t.attributes, ty).and_then(Attribute::as_u64);
    let bits = get(phase2::KEY_LENGTH);
    let enc = match (t.transform_id, bits) {
        (transform_id::ESP_NULL, None) => EncAlg::Null,
        (transform_id::ESP_DES, None) => EncAlg::DesCbc,
        (transform_id::ESP_3DES, None) => EncAlg::TripleDesCbc,
        (transform_id::ESP_AES, Some(128)) => EncAlg::AesCbc128,
        (transform_id::ESP_AES, Some(192)) => EncAlg::AesCbc192,
        (transform_id::ESP_AES, Some(256)) => EncAlg::AesCbc256,
        (
            id @ (transform_id::ESP_AES_GCM_8
            | transform_id::ESP_AES_GCM_12
            | transform_id::ESP_AES_GCM_16),
            Some(b @ (128 | 256)),
        ) => {
            let icv = match id {
                transform_id::ESP_AES_GCM_8 => GcmIcv::B8,
                transform_id::ESP_AES_GCM_12 => GcmIcv::B12,
                _ => GcmIcv::B16,
            };
            if b == 128 {
                EncAlg::AesGcm128(icv)
            } else {
                EncAlg::AesGcm256(icv)
            }
        }
        _ => return None,
    };
    let auth = match get(phase2::AUTHENTICATION_ALGORITHM).map(|v| v as u16) {
        None => AuthAlg::None,
        Some(phase2::auth_algorithm::HMAC_MD5) => AuthAlg::HmacMd5_96,
        Some(phase2::auth_algorithm::HMAC_SHA) => AuthAlg::HmacSha1_96,
        Some(phase2::auth_algorithm::HMAC_SHA2_256) => AuthAlg::HmacSha256_128,
        Some(phase2::auth_algorithm::HMAC_SHA2_384) => AuthAlg::HmacSha384_192,
        Some(phase2::auth_algorithm::HMAC_SHA2_512) => AuthAlg::HmacSha512_256,
        Some(_) => return None,
    };
    if enc.is_aead() != (auth == AuthAlg::None) {
        return None;
    }
    let (tunnel, udp) = {
        use phase2::encapsulation_mode as m;
        match get(phase2::ENCAPSULATION_MODE).map(|v| v as u16) {
            None | Some(m::TUNNEL) => (true, false),
            Some(m::TRANSPORT) => (false, false),
            Some(m::UDP_TUNNEL | m::UDP_TUNNEL_DRAFT) => (true, true),
            Some(m::UDP_TRANSPORT | m::UDP_TRANSPORT_DRAFT) => (false, true),
            Some(_) => return None,
        }
    };
    let pfs = match get(phase2::GROUP_DESCRIPTION) {
        None => None,
        Some(g) => Some(DhGroup::from_id(u16::try_from(g).ok()?)?),
    };
    let lifetime = read_lifetime(&t.attributes)?;
    Some(Phase2Choice {
        enc,
        auth,
        tunnel,
        udp,
        pfs,
        lifetime,
    })
}

/// The SA Life Type / SA Life Duration pairs of a transform or of a
/// RESPONDER-LIFETIME notification, in order (RFC 2407 §4.5); a kind
/// not given is unlimited. `None` when a duration has no type before it.
pub fn read_lifetime(attributes: &[Attribute]) -> Option<IpsecLifetime> {
    let mut lifetime = IpsecLifetime {
        seconds: u64::MAX,
        kilobytes: u64::MAX,
    };
    let mut kind = None;
    for a in attributes {
        match a.attr_type {
            phase2::SA_LIFE_TYPE => kind = a.as_u64(),
            phase2::SA_LIFE_DURATION => match kind.map(|k| k as u16) {
                Some(phase2::life_type::SECONDS) => lifetime.seconds = a.as_u64()?,
                Some(phase2::life_type::KILOBYTES) => lifetime.kilobytes = a.as_u64()?,
                _ => return None,
            },
            _ => {}
        }
    }
    Some(lifetime)
}

/// The shortest SA lifetime in seconds taken from a peer: below it the
/// SA would expire before either side could rekey it (the responder
/// rekeys at 95%, in whole seconds). Shorter proposals are refused, not
/// lengthened (the peer would expire the SA on its own schedule).
pub const MIN_LIFETIME_SECONDS: u64 = 10;

/// The shorter of two lifetimes, kind by kind. Never longer than either:
/// a floor would leave the peer expiring the SA before us (RFC 2407
/// §4.5.4 lets the responder only shorten). A meaningless 0 counts as 1.
pub fn shorter(a: IpsecLifetime, b: IpsecLifetime) -> IpsecLifetime {
    IpsecLifetime {
        seconds: a.seconds.min(b.seconds).max(1),
        kilobytes: a.kilobytes.min(b.kilobytes).max(1),
    }
}

/// As responder: the first of our transform sets (in `set transform-set`
/// order) that one of the peer's ESP transforms matches, with `pfs` the
/// group the peer's KE uses (if any) and `want_pfs` ours. Returns the
/// proposal number, the peer's SPI, the transform to return and the
/// agreed choice.
pub fn choose_phase2(
    offer: &SecurityAssociation,
    ours: &[EspTransform],
    want_pfs: Option<DhGroup>,
    life: IpsecLifetime,
) -> Option<(u8, u32, Transform, Phase2Choice)> {
    for mine in ours {
        for p in &offer.proposals {
            if p.protocol != ProtocolId::IPSEC_ESP {
                continue;
            }
            let Ok(spi) = <[u8; 4]>::try_from(p.spi.as_slice()) else {
                continue;
            };
            for t in &p.transforms {
                let Some(c) = read_phase2(t) else { continue };
                if c.enc != mine.enc || c.auth != mine.auth || c.tunnel != mine.tunnel {
                    continue;
                }
                if want_pfs.is_some() && c.pfs != want_pfs {
                    continue;
                }
                if c.lifetime.seconds < MIN_LIFETIME_SECONDS {
                    continue;
                }
                let lifetime = shorter(c.lifetime, life);
                return Some((
                    p.number,
                    u32::from_be_bytes(spi),
                    t.clone(),
                    Phase2Choice { lifetime, ..c },
                ));
            }
        }
    }
    None
}

/// As initiator: the responder's answer, if it is one of ours. Returns
/// the responder's SPI and the choice.
pub fn accept_phase2(
    reply: &SecurityAssociation,
    ours: &[EspTransform],
    pfs: Option<DhGroup>,
    life: IpsecLifetime,
) -> Option<(u32, Phase2Choice)> {
    let [p] = reply.proposals.as_slice() else {
        return None;
    };
    let [t] = p.transforms.as_slice() else {
        return None;
    };
    let spi = u32::from_be_bytes(<[u8; 4]>::try_from(p.spi.as_slice()).ok()?);
    let c = read_phase2(t)?;
    ours.iter()
        .find(|m| m.enc == c.enc && m.auth == c.auth && m.tunnel == c.tunnel)?;
    if c.pfs != pfs || c.lifetime.seconds < MIN_LIFETIME_SECONDS {
        return None;
    }
    Some((
        spi,
        Phase2Choice {
            lifetime: shorter(c.lifetime, life),
            ..c
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies() -> Vec<IsakmpProposal> {
        vec![
            IsakmpProposal {
                priority: 10,
                cipher: IkeCipher::AesCbc(256),
                hash: IkeHash::Sha256,
                group: DhGroup::Modp2048,
                lifetime: 86_400,
            },
            IsakmpProposal {
                priority: 20,
                cipher: IkeCipher::TripleDes,
                hash: IkeHash::Sha1,
                group: DhGroup::Modp1024,
                lifetime: 3_600,
            },
        ]
    }

    #[test]
    fn phase1_offer_is_read_back_and_chosen_in_our_priority_order() {
        let offer = phase1_offer(&policies());
        let t = &offer.proposals[0].transforms;
        assert_eq!(t.len(), 2);
        assert_eq!(read_phase1(&t[0]).unwrap().cipher, IkeCipher::AesCbc(256));
        assert_eq!(read_phase1(&t[0]).unwrap().lifetime, 86_400);
        // A responder that only has the second policy picks it.
        let (picked, c) = choose_phase1(&offer, &policies()[1..]).unwrap();
        assert_eq!(picked, t[1]);
        assert_eq!(c.group, DhGroup::Modp1024);
        let reply = SecurityAssociation {
            proposals: vec![Proposal {
                transforms: vec![picked],
                ..offer.proposals[0].clone()
            }],
        };
        assert_eq!(accept_phase1(&reply, &policies()), Some(c));
        // Nothing in common.
        let mut other = policies()[1];
        other.group = DhGroup::Modp1536;
        assert!(choose_phase1(&offer, &[other]).is_none());
        // An answer with two transforms is not an answer.
        assert!(accept_phase1(&offer, &policies()).is_none());
    }

    #[test]
    fn phase2_offer_is_chosen_and_accepted_with_the_shorter_lifetime() {
        let ts = vec![
            EspTransform {
                name: "GCM".into(),
                enc: EncAlg::AesGcm256(GcmIcv::B16),
                auth: AuthAlg::None,
                tunnel: true,
            },
            EspTransform {
                name: "LAB".into(),
                enc: EncAlg::AesCbc128,
                auth: AuthAlg::HmacSha1_96,
                tunnel: true,
            },
        ];
        let life = IpsecLifetime::default();
        let offer = phase2_offer(0x1234_5678, &ts, Some(DhGroup::Modp2048), life, None);
        let short = IpsecLifetime {
            seconds: 1200,
            kilobytes: 100_000,
        };
        let (num, spi, picked, c) =
            choose_phase2(&offer, &ts[1..], Some(DhGroup::Modp2048), short).unwrap();
        assert_eq!((num, spi), (1, 0x1234_5678));
        assert_eq!(
            (c.enc, c.auth, c.lifetime),
            (EncAlg::AesCbc128, AuthAlg::HmacSha1_96, short)
        );
        let answer = phase2_answer(num, 0xaabb_ccdd, &picked);
        let (rspi, c2) = accept_phase2(&answer, &ts, Some(DhGroup::Modp2048), life).unwrap();
        assert_eq!(rspi, 0xaabb_ccdd);
        assert_eq!(c2.enc, EncAlg::AesCbc128);
        // PFS demanded but not offered.
        let no_pfs = phase2_offer(1, &ts, None, life, None);
        // NAT traversal: the UDP tunnel modes read back as tunnel + udp.
        for style in [UdpEncapStyle::Rfc3947, UdpEncapStyle::Draft] {
            let o = phase2_offer(1, &ts, None, life, Some(style));
            let c = read_phase2(&o.proposals[0].transforms[1]).unwrap();
            assert!(c.tunnel && c.udp);
        }
        assert!(choose_phase2(&no_pfs, &ts, Some(DhGroup::Modp2048), life).is_none());
        assert!(choose_phase2(&no_pfs, &ts, None, life).is_some());
        // A peer's lifetime below IOS's least (120 s, 2560 KB) is used as
        // it is: raising it would leave the two sides expiring the SA at
        // different times.
        let tiny = IpsecLifetime {
            seconds: 30,
            kilobytes: 1000,
        };
        let offer = phase2_offer(7, &ts, None, tiny, None);
        let (.., c) = choose_phase2(&offer, &ts, None, life).unwrap();
        assert_eq!(c.lifetime, tiny);
        // One too short to rekey in time is refused.
        let absurd = IpsecLifetime {
            seconds: MIN_LIFETIME_SECONDS - 1,
            ..tiny
        };
        let offer = phase2_offer(7, &ts, None, absurd, None);
        assert!(choose_phase2(&offer, &ts, None, life).is_none());
    }
}
