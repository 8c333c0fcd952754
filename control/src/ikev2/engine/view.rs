//! What `show crypto ikev2 sa [detailed]` prints of one IKE SA, in the
//! layout of seed 002's IOS output.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::super::policy::{show_identity, IkeEncr, IkeInteg};
use super::{Engine, State};

/// One IKE SA as `show crypto ikev2 sa` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ikev2SaView {
    pub tunnel_id: u32,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `READY` once authenticated, `IN-NEG` before.
    pub status: &'static str,
    /// `3DES`, `AES-CBC`, `AES-GCM` (empty while not negotiated).
    pub encr: &'static str,
    pub keysize: Option<u16>,
    /// `SHA96`, `SHA256`, `SHA384`, `SHA512`, `None` with AES-GCM.
    pub hash: &'static str,
    pub dh_group: Option<u16>,
    pub lifetime: u32,
    pub active_secs: u64,
    pub local_spi: [u8; 8],
    pub remote_spi: [u8; 8],
    pub local_next_msg_id: u32,
    pub remote_next_msg_id: u32,
    /// (interval, retry) of DPD, zeros when off.
    pub dpd: (u32, u32),
    pub nat_t: bool,
    pub initiator: bool,
    /// The identities of IKE_AUTH as IOS prints them (addresses until
    /// IKE_AUTH is done).
    pub local_id: String,
    pub remote_id: String,
}

fn hex(spi: &[u8; 8]) -> String {
    spi.iter().map(|b| format!("{b:02X}")).collect()
}

impl Ikev2SaView {
    /// The lines IOS prints for this SA (after the table header).
    pub fn lines(&self, detailed: bool) -> Vec<String> {
        let mut v = vec![format!(
            "{} {}/{} {}/{} none/none {}",
            self.tunnel_id,
            self.local.ip(),
            self.local.port(),
            self.remote.ip(),
            self.remote.port(),
            self.status
        )];
        let encr = match self.keysize {
            Some(k) => format!("Encr: {}, keysize: {k},", self.encr),
            None => format!("Encr: {},", self.encr),
        };
        v.push(format!(
            "{encr} Hash: {}, DH Grp:{}, Auth sign: PSK, Auth verify: PSK",
            self.hash,
            self.dh_group.unwrap_or(0)
        ));
        v.push(format!(
            "Life/Active Time: {}/{} sec",
            self.lifetime, self.active_secs
        ));
        if !detailed {
            return v;
        }
        v.push(format!(
            "Status Description: {}",
            if self.status == "READY" {
                "Negotiation done"
            } else {
                "Negotiation in progress"
            }
        ));
        v.push(format!(
            "Local spi: {} Remote spi: {}",
            hex(&self.local_spi),
            hex(&self.remote_spi)
        ));
        v.push(format!("Local id: {}", self.local_id));
        v.push(format!("Remote id: {}", self.remote_id));
        v.push(format!(
            "Local next msg id: {} Remote next msg id: {}",
            self.local_next_msg_id, self.remote_next_msg_id
        ));
        v.push("Local window: 1 Remote window: 1".into());
        v.push(format!(
            "DPD configured for {} seconds, retry {}",
            self.dpd.0, self.dpd.1
        ));
        v.push(if self.nat_t {
            "NAT-T is detected outside".into()
        } else {
            "NAT-T is not detected".into()
        });
        v.push(format!(
            "Initiator of SA : {}",
            if self.initiator { "Yes" } else { "No" }
        ));
        v
    }
}

impl Engine {
    /// The CHILD_SAs of each IKE SA, by tunnel id (for `show crypto
    /// ikev2 session`: several IKE SAs with one peer each have their
    /// own), in one walk however many SAs a hub has.
    pub fn children_by_tunnel(&self) -> HashMap<u32, Vec<crate::ikev1::PairInfo>> {
        let mut by_tunnel: HashMap<u32, Vec<crate::ikev1::PairInfo>> = HashMap::new();
        for s in self.sas.values() {
            by_tunnel
                .entry(s.id)
                .or_default()
                .extend(s.children.iter().map(|c| c.info.clone()));
        }
        by_tunnel
    }

    /// Every IKE SA, by tunnel id.
    pub fn ikev2_sas(&self, now: Instant) -> Vec<Ikev2SaView> {
        let mut v: Vec<Ikev2SaView> = self
            .sas
            .values()
            .map(|s| {
                let (encr, keysize) = match s.choice.map(|c| c.encr) {
                    Some(IkeEncr::TripleDes) => ("3DES", None),
                    Some(IkeEncr::AesCbc(b)) => ("AES-CBC", Some(b)),
                    Some(IkeEncr::AesGcm16(b)) => ("AES-GCM", Some(b)),
                    None => ("", None),
                };
                let hash = match s.choice.map(|c| c.integ) {
                    Some(Some(IkeInteg::Sha1_96)) => "SHA96",
                    Some(Some(IkeInteg::Sha256_128)) => "SHA256",
                    Some(Some(IkeInteg::Sha384_192)) => "SHA384",
                    Some(Some(IkeInteg::Sha512_256)) => "SHA512",
                    Some(None) => "None",
                    None => "",
                };
                let (local_spi, remote_spi) = if s.initiator {
                    (s.spi_i, s.spi_r)
                } else {
                    (s.spi_r, s.spi_i)
                };
                Ikev2SaView {
                    tunnel_id: s.id,
                    local: s.local,
                    remote: s.remote,
                    status: if s.state == State::Established {
                        "READY"
                    } else {
                        "IN-NEG"
                    },
                    encr,
                    keysize,
                    hash,
                    dh_group: s.choice.map(|c| c.group.id()),
                    lifetime: self.policy.lifetime_of(s.profile),
                    active_secs: now.saturating_duration_since(s.created).as_secs(),
                    local_spi,
                    remote_spi,
                    local_next_msg_id: s.next_mid,
                    remote_next_msg_id: s.peer_mid,
                    dpd: self
                        .policy
                        .dpd_of(s.profile)
                        .map_or((0, 0), |d| (d.interval, d.retry)),
                    nat_t: s.nat,
                    initiator: s.initiator,
                    local_id: s
                        .local_id
                        .as_ref()
                        .map_or_else(|| s.local.ip().to_string(), show_identity),
                    remote_id: s
                        .remote_id
                        .as_ref()
                        .map_or_else(|| s.remote.ip().to_string(), show_identity),
                }
            })
            .collect();
        v.sort_by_key(|x| x.tunnel_id);
        v
    }
}
