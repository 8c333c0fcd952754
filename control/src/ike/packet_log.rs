//! `debug crypto ikev2 packet`: one IKEv2 datagram as IOS prints it — the
//! addresses, SPIs and message ID, the exchange and direction, and the
//! payload chain with each payload's next payload and length (what is
//! inside the Encrypted payload is not shown: it is not decrypted here,
//! and keys never reach a log).

use std::net::SocketAddr;

use super::wire::ikev2::{ExchangeType, Flags, Message, Payload, PayloadBody};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// The short name IOS gives a payload (`SA`, `KE`, `N`, `NOTIFY(...)`).
fn payload_name(p: &Payload) -> String {
    match &p.body {
        PayloadBody::Sa(_) => "SA".into(),
        PayloadBody::KeyExchange(_) => "KE".into(),
        PayloadBody::IdInitiator(_) => "IDi".into(),
        PayloadBody::IdResponder(_) => "IDr".into(),
        PayloadBody::Certificate(_) => "CERT".into(),
        PayloadBody::CertificateRequest(_) => "CERTREQ".into(),
        PayloadBody::Auth(_) => "AUTH".into(),
        PayloadBody::Nonce(_) => "N".into(),
        PayloadBody::Notify(n) => format!("NOTIFY({})", n.notify_type),
        PayloadBody::Delete(_) => "DELETE".into(),
        PayloadBody::VendorId(_) => "VID".into(),
        PayloadBody::TsInitiator(_) => "TSi".into(),
        PayloadBody::TsResponder(_) => "TSr".into(),
        PayloadBody::Encrypted(_) => "ENCR".into(),
        PayloadBody::Configuration(_) => "CFG".into(),
        PayloadBody::Eap(_) => "EAP".into(),
        PayloadBody::EncryptedFragment(_) => "SKF".into(),
        PayloadBody::Unknown { payload_type, .. } => format!("UNKNOWN({payload_type})"),
    }
}

/// The lines for `data` sent from `local` to `remote` (`sent`) or
/// received; one line saying why when it does not decode.
pub fn ikev2_packet_lines(
    sent: bool,
    local: SocketAddr,
    remote: SocketAddr,
    data: &[u8],
) -> Vec<String> {
    let head = if sent {
        format!("IKEv2:Sending Packet [To {remote}/From {local}/VRF i0:f0]")
    } else {
        format!("IKEv2:Received Packet [From {remote}/To {local}/VRF i0:f0]")
    };
    let msg = match Message::decode(data) {
        Ok(m) => m,
        Err(e) => {
            return vec![
                head,
                format!("IKEv2:Malformed packet ({} octets): {e}", data.len()),
            ]
        }
    };
    let h = &msg.header;
    let kind = if h.flags.contains(Flags::RESPONSE) {
        "RESPONSE"
    } else {
        "REQUEST"
    };
    let exchange = match h.exchange {
        ExchangeType::IKE_SA_INIT
        | ExchangeType::IKE_AUTH
        | ExchangeType::CREATE_CHILD_SA
        | ExchangeType::INFORMATIONAL => h.exchange.to_string(),
        other => format!("exchange {other}"),
    };
    let mut v = vec![
        head,
        format!(
            "Initiator SPI : {} - Responder SPI : {} Message id: {}",
            hex(&h.initiator_spi),
            hex(&h.responder_spi),
            h.message_id
        ),
        format!("IKEv2 {exchange} Exchange {kind} "),
        "Payload contents: ".into(),
    ];
    let names: Vec<String> = msg.payloads.iter().map(payload_name).collect();
    for (i, p) in msg.payloads.iter().enumerate() {
        let mut body = Vec::new();
        let len = match p.body.encode_body(&mut body) {
            Ok(()) => (body.len() + 4).to_string(),
            Err(_) => "?".into(),
        };
        let next = names.get(i + 1).map_or("NONE", |n| n.as_str());
        v.push(format!(
            " {} Next payload: {next}, reserved: 0x0, length: {len}",
            names[i]
        ));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::wire::ikev2::{Header, KeyExchange, Notify, NotifyType};

    #[test]
    fn an_ike_sa_init_request_lists_its_payloads_as_ios() {
        let header = Header {
            initiator_spi: [0xF0, 0x74, 0xD8, 0xBB, 0xD5, 0xA5, 0x9F, 0x0B],
            responder_spi: [0; 8],
            version: Header::VERSION,
            exchange: ExchangeType::IKE_SA_INIT,
            flags: Flags::INITIATOR,
            message_id: 0,
        };
        let msg = Message::new(
            header,
            [
                PayloadBody::KeyExchange(KeyExchange {
                    group: 2,
                    data: vec![7; 128],
                }),
                PayloadBody::Nonce(vec![1; 32]),
                PayloadBody::Notify(Notify::new(
                    NotifyType::NAT_DETECTION_SOURCE_IP,
                    vec![0; 20],
                )),
            ],
        );
        let data = msg.encode().unwrap();
        let lines = ikev2_packet_lines(
            true,
            "198.18.0.1:500".parse().unwrap(),
            "198.18.1.1:500".parse().unwrap(),
            &data,
        );
        assert_eq!(
            lines,
            [
                "IKEv2:Sending Packet [To 198.18.1.1:500/From 198.18.0.1:500/VRF i0:f0]",
                "Initiator SPI : F074D8BBD5A59F0B - Responder SPI : 0000000000000000 Message id: 0",
                "IKEv2 IKE_SA_INIT Exchange REQUEST ",
                "Payload contents: ",
                " KE Next payload: N, reserved: 0x0, length: 136",
                " N Next payload: NOTIFY(NAT_DETECTION_SOURCE_IP), reserved: 0x0, length: 36",
                " NOTIFY(NAT_DETECTION_SOURCE_IP) Next payload: NONE, reserved: 0x0, length: 28",
            ]
        );
        let bad = ikev2_packet_lines(
            false,
            "198.18.0.1:500".parse().unwrap(),
            "198.18.1.1:500".parse().unwrap(),
            &data[..20],
        );
        assert!(
            bad[1].starts_with("IKEv2:Malformed packet (20 octets)"),
            "{bad:?}"
        );
    }
}
