//! The binary encoding of control-socket messages
//! (`docs/control-protocol.md` is the reference; this file follows it).
//!
//! One datagram is one message: a 16-byte header, then the body.
//!
//! ```text
//!  0      4         6         8            12          16
//!  +------+---------+---------+------------+-----------+--------
//!  | ESPD | version | type    | request_id | body_len  | body ...
//!  +------+---------+---------+------------+-----------+--------
//! ```
//!
//! All integers are big-endian; strings and key material are a u16 length
//! then the bytes; vectors are a u32 count then the elements; enums are an
//! explicit one-byte (or two-byte) tag. The encoding is written by hand,
//! one [`Codec`] impl per type (the rustls pattern), and is canonical:
//! decoding is strict, so any datagram that decodes re-encodes to a
//! message that decodes to the same value.
//!
//! Decoding never panics and never allocates more than the datagram can
//! justify: a vector's declared count is checked against the bytes left
//! before anything is reserved.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;
use zeroize::Zeroizing;

use super::messages::{
    DropCounts, ErrorCode, Event, ListPart, Message, Payload, Reply, Request, SaCounts,
    TunnelInterface, MAX_INJECTED_ESP_LEN, MAX_TED_PROBE_LEN,
};
use super::{Direction, EspMode, Lifetime, NatAction, NatRule, SaKeys, SaParams, UdpEncap};
use crate::counters::DropReason;
use crate::crypto::{AuthAlg, EncAlg};
use crate::nat::{NatDrop, NatStats};
use crate::spd::{FlowKey, IpPrefix, PolicyAction, PolicyTag, PortRange, SpdRule, TrafficSelector};

/// `"ESPD"`: the first four bytes of every message.
pub const MAGIC: [u8; 4] = *b"ESPD";
/// The protocol version this build speaks; see the versioning rule in
/// `docs/control-protocol.md`.
pub const PROTOCOL_VERSION: u16 = 1;
/// Header bytes before the body.
pub const HEADER_LEN: usize = 16;
/// The largest datagram, header included, either side sends or accepts.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;

/// The longest encoded [`SpdRule`]: IPv6 prefixes (18 bytes each), a
/// protocol, two port ranges, and protect with an SPI and a policy tag.
pub const SPD_RULE_MAX_LEN: usize = 60;
/// The longest encoded [`NatRule`]: the same selector, then PAT to an
/// interface and an IPv6 address.
pub const NAT_RULE_MAX_LEN: usize = 68;

/// Message type codes: requests `0x00xx`, replies `0x01xx`, events `0x02xx`.
pub mod msg_type {
    pub const HELLO: u16 = 0x0001;
    pub const ADD_SA: u16 = 0x0002;
    pub const UPDATE_SA: u16 = 0x0003;
    pub const DELETE_SA: u16 = 0x0004;
    pub const LOAD_SPD: u16 = 0x0005;
    pub const LOAD_NAT: u16 = 0x0006;
    pub const GET_COUNTERS: u16 = 0x0007;
    pub const PING: u16 = 0x0008;
    pub const GET_NAT_STATS: u16 = 0x0009;
    pub const SET_PEER_PORT: u16 = 0x000a;
    pub const INJECT_ESP: u16 = 0x000b;
    pub const SET_TUNNEL_INTERFACES: u16 = 0x000c;

    pub const HELLO_ACK: u16 = 0x0101;
    pub const ACK: u16 = 0x0102;
    pub const ERROR: u16 = 0x0103;
    pub const COUNTERS: u16 = 0x0104;
    pub const NAT_STATS: u16 = 0x0105;

    pub const ACQUIRE: u16 = 0x0201;
    pub const SOFT_EXPIRE: u16 = 0x0202;
    pub const HARD_EXPIRE: u16 = 0x0203;
    pub const REPLAY_FAILURE: u16 = 0x0204;
    pub const INTEGRITY_FAILURE: u16 = 0x0205;
    pub const IDLE: u16 = 0x0206;
    pub const TED_PROBE: u16 = 0x0207;
}

/// Why a datagram is not a valid message. Offsets count from the start of
/// the body (byte 16 of the datagram).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("datagram of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    ShortHeader { len: usize },
    #[error("bad magic {found:02x?}, expected \"ESPD\"")]
    BadMagic { found: [u8; 4] },
    #[error(
        "control protocol version {version} is not supported: \
         this side speaks version {PROTOCOL_VERSION}"
    )]
    UnsupportedVersion { version: u16 },
    #[error("datagram of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte maximum")]
    TooLarge { len: usize },
    #[error("header declares a {declared}-byte body but the datagram carries {actual}")]
    BodyLength { declared: u32, actual: usize },
    #[error("unknown message type {msg_type:#06x}")]
    UnknownType { msg_type: u16 },
    #[error("{msg}: truncated {what} at offset {offset}: needs {need} bytes, {left} left")]
    Truncated {
        msg: &'static str,
        what: &'static str,
        offset: usize,
        need: usize,
        left: usize,
    },
    #[error("{msg}: {left} trailing bytes after the body at offset {offset}")]
    TrailingBytes {
        msg: &'static str,
        offset: usize,
        left: usize,
    },
    #[error("{msg}: unknown {what} code {code} at offset {offset}")]
    UnknownCode {
        msg: &'static str,
        what: &'static str,
        code: u32,
        offset: usize,
    },
    #[error(
        "{msg}: {what} count {count} at offset {offset} needs at least {need} bytes, \
         only {left} left"
    )]
    CountTooLarge {
        msg: &'static str,
        what: &'static str,
        count: u32,
        offset: usize,
        need: u64,
        left: usize,
    },
    #[error("{msg}: {which} key for {alg} is {got} bytes, expected {expected}")]
    KeyLength {
        msg: &'static str,
        which: &'static str,
        alg: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("{msg}: invalid {what} at offset {offset}: {why}")]
    Invalid {
        msg: &'static str,
        what: &'static str,
        offset: usize,
        why: &'static str,
    },
}

impl DecodeError {
    /// The [`ErrorCode`] the dataplane answers this error with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
            _ => ErrorCode::Malformed,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message would exceed [`MAX_MESSAGE_LEN`]. Requests are never
    /// split (an SPD or NAT list must load atomically): the caller has to
    /// send fewer rules. `Counters` replies are split by their sender.
    #[error("{msg} message of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte maximum")]
    TooLarge { msg: &'static str, len: usize },
    /// A string or key longer than its u16 length prefix can say.
    #[error("{msg}: {what} of {len} bytes is longer than 65535")]
    FieldTooLong {
        msg: &'static str,
        what: &'static str,
        len: usize,
    },
}

/// The fixed header, as read from a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub msg_type: u16,
    pub request_id: u32,
    pub body_len: u32,
}

impl Header {
    /// Reads the header: length and magic only, so that a receiver can
    /// learn the `request_id` (and version) of a message it cannot decode
    /// and answer it.
    pub fn parse(datagram: &[u8]) -> Result<Header, DecodeError> {
        let Some(h) = datagram.first_chunk::<HEADER_LEN>() else {
            return Err(DecodeError::ShortHeader {
                len: datagram.len(),
            });
        };
        let [m0, m1, m2, m3, v0, v1, t0, t1, r0, r1, r2, r3, l0, l1, l2, l3] = *h;
        if [m0, m1, m2, m3] != MAGIC {
            return Err(DecodeError::BadMagic {
                found: [m0, m1, m2, m3],
            });
        }
        Ok(Header {
            version: u16::from_be_bytes([v0, v1]),
            msg_type: u16::from_be_bytes([t0, t1]),
            request_id: u32::from_be_bytes([r0, r1, r2, r3]),
            body_len: u32::from_be_bytes([l0, l1, l2, l3]),
        })
    }
}

/// Encodes a message into one datagram. The buffer is zeroized when
/// dropped, since an `AddSa` carries keys; it is allocated at its final
/// capacity up front so that no key bytes are left behind by a reallocation.
pub fn encode(msg: &Message) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
    let name = msg.name();
    let mut w = Writer::new(name);
    w.put(&MAGIC);
    w.u16(PROTOCOL_VERSION);
    w.u16(type_of(&msg.payload));
    w.u32(msg.request_id);
    w.u32(0); // body_len, patched below
    encode_body(&msg.payload, &mut w);
    let mut buf = w.finish()?;
    let body_len = (buf.len() - HEADER_LEN) as u32; // ≤ MAX_MESSAGE_LEN: fits
    buf[12..HEADER_LEN].copy_from_slice(&body_len.to_be_bytes());
    Ok(buf)
}

/// Decodes one datagram, strictly: see [`DecodeError`] for every way a
/// datagram can be refused.
pub fn decode(datagram: &[u8]) -> Result<Message, DecodeError> {
    if datagram.len() > MAX_MESSAGE_LEN {
        return Err(DecodeError::TooLarge {
            len: datagram.len(),
        });
    }
    let header = Header::parse(datagram)?;
    if header.version != PROTOCOL_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            version: header.version,
        });
    }
    let body = &datagram[HEADER_LEN..];
    if usize::try_from(header.body_len).ok() != Some(body.len()) {
        return Err(DecodeError::BodyLength {
            declared: header.body_len,
            actual: body.len(),
        });
    }
    let name = type_name(header.msg_type).ok_or(DecodeError::UnknownType {
        msg_type: header.msg_type,
    })?;
    let mut r = Reader::new(name, body);
    let payload = decode_body(header.msg_type, &mut r)?;
    r.finish()?;
    Ok(Message {
        request_id: header.request_id,
        payload,
    })
}

fn type_of(p: &Payload) -> u16 {
    use msg_type::*;
    match p {
        Payload::Request(r) => match r {
            Request::Hello { .. } => HELLO,
            Request::AddSa(_) => ADD_SA,
            Request::UpdateSa { .. } => UPDATE_SA,
            Request::DeleteSa { .. } => DELETE_SA,
            Request::SetPeerPort { .. } => SET_PEER_PORT,
            Request::LoadSpd { .. } => LOAD_SPD,
            Request::LoadNat { .. } => LOAD_NAT,
            Request::GetCounters { .. } => GET_COUNTERS,
            Request::Ping => PING,
            Request::GetNatStats => GET_NAT_STATS,
            Request::InjectEsp { .. } => INJECT_ESP,
            Request::SetTunnelInterfaces { .. } => SET_TUNNEL_INTERFACES,
        },
        Payload::Reply(r) => match r {
            Reply::HelloAck { .. } => HELLO_ACK,
            Reply::Ack => ACK,
            Reply::Error { .. } => ERROR,
            Reply::Counters { .. } => COUNTERS,
            Reply::NatStats(_) => NAT_STATS,
        },
        Payload::Event(e) => match e {
            Event::Acquire { .. } => ACQUIRE,
            Event::SoftExpire { .. } => SOFT_EXPIRE,
            Event::HardExpire { .. } => HARD_EXPIRE,
            Event::ReplayFailure { .. } => REPLAY_FAILURE,
            Event::IntegrityFailure { .. } => INTEGRITY_FAILURE,
            Event::Idle { .. } => IDLE,
            Event::TedProbe { .. } => TED_PROBE,
        },
    }
}

fn type_name(t: u16) -> Option<&'static str> {
    use msg_type::*;
    Some(match t {
        HELLO => "Hello",
        ADD_SA => "AddSa",
        UPDATE_SA => "UpdateSa",
        DELETE_SA => "DeleteSa",
        SET_PEER_PORT => "SetPeerPort",
        INJECT_ESP => "InjectEsp",
        SET_TUNNEL_INTERFACES => "SetTunnelInterfaces",
        LOAD_SPD => "LoadSpd",
        LOAD_NAT => "LoadNat",
        GET_COUNTERS => "GetCounters",
        PING => "Ping",
        GET_NAT_STATS => "GetNatStats",
        NAT_STATS => "NatStats",
        HELLO_ACK => "HelloAck",
        ACK => "Ack",
        ERROR => "Error",
        COUNTERS => "Counters",
        ACQUIRE => "Acquire",
        SOFT_EXPIRE => "SoftExpire",
        HARD_EXPIRE => "HardExpire",
        REPLAY_FAILURE => "ReplayFailure",
        INTEGRITY_FAILURE => "IntegrityFailure",
        IDLE => "Idle",
        TED_PROBE => "TedProbe",
        _ => return None,
    })
}

fn encode_body(p: &Payload, w: &mut Writer) {
    match p {
        Payload::Request(r) => match r {
            Request::Hello { version } => w.u16(*version),
            Request::AddSa(sa) => sa.encode(w),
            Request::UpdateSa {
                direction,
                spi,
                lifetime,
            } => {
                direction.encode(w);
                w.u32(*spi);
                lifetime.encode(w);
            }
            Request::DeleteSa { direction, spi } => {
                direction.encode(w);
                w.u32(*spi);
            }
            Request::SetPeerPort { spi, port } => {
                w.u32(*spi);
                w.u16(*port);
            }
            Request::LoadSpd { part, rules } => {
                part.encode(w);
                w.vec(rules);
            }
            Request::LoadNat { part, rules } => {
                part.encode(w);
                w.vec(rules);
            }
            Request::GetCounters { spi } => spi.encode(w),
            Request::Ping | Request::GetNatStats => {}
            Request::InjectEsp { from, to, esp } => {
                from.ip().encode(w);
                w.u16(from.port());
                to.ip().encode(w);
                w.u16(to.port());
                if esp.len() > MAX_INJECTED_ESP_LEN {
                    w.error.get_or_insert(EncodeError::FieldTooLong {
                        msg: w.msg,
                        what: "injected ESP",
                        len: esp.len(),
                    });
                }
                w.bytes16("injected ESP", esp);
            }
            Request::SetTunnelInterfaces { tunnels } => w.vec(tunnels),
        },
        Payload::Reply(r) => match r {
            Reply::HelloAck {
                version,
                dataplane_version,
            } => {
                w.u16(*version);
                w.string("dataplane version", dataplane_version);
            }
            Reply::Ack => {}
            Reply::Error { code, message } => {
                code.encode(w);
                w.string("error message", message);
            }
            Reply::Counters {
                sas,
                global_drops,
                more,
            } => {
                more.encode(w);
                global_drops.encode(w);
                w.vec(sas);
            }
            Reply::NatStats(stats) => stats.encode(w),
        },
        Payload::Event(e) => match e {
            Event::Acquire { tag, flow } => {
                tag.encode(w);
                flow.encode(w);
            }
            Event::SoftExpire { spi, direction } | Event::HardExpire { spi, direction } => {
                w.u32(*spi);
                direction.encode(w);
            }
            Event::ReplayFailure { spi, count } | Event::IntegrityFailure { spi, count } => {
                w.u32(*spi);
                w.u64(*count);
            }
            Event::Idle { spi, last_used } => {
                w.u32(*spi);
                w.u64(*last_used);
            }
            Event::TedProbe {
                from,
                original_dst,
                data,
            } => {
                from.ip().encode(w);
                w.u16(from.port());
                original_dst.encode(w);
                if data.len() > MAX_TED_PROBE_LEN {
                    w.error.get_or_insert(EncodeError::FieldTooLong {
                        msg: w.msg,
                        what: "TED probe",
                        len: data.len(),
                    });
                }
                w.bytes16("TED probe", data);
            }
        },
    }
}

fn decode_body(t: u16, r: &mut Reader<'_>) -> Result<Payload, DecodeError> {
    use msg_type::*;
    let req = Payload::Request;
    let rep = Payload::Reply;
    let ev = Payload::Event;
    Ok(match t {
        HELLO => req(Request::Hello {
            version: r.u16("version")?,
        }),
        ADD_SA => req(Request::AddSa(Box::new(SaParams::decode(r)?))),
        UPDATE_SA => req(Request::UpdateSa {
            direction: Direction::decode(r)?,
            spi: r.u32("spi")?,
            lifetime: Lifetime::decode(r)?,
        }),
        DELETE_SA => req(Request::DeleteSa {
            direction: Direction::decode(r)?,
            spi: r.u32("spi")?,
        }),
        SET_PEER_PORT => req(Request::SetPeerPort {
            spi: r.u32("spi")?,
            port: r.u16("port")?,
        }),
        LOAD_SPD => req(Request::LoadSpd {
            part: ListPart::decode(r)?,
            rules: r.vec("SPD rule")?,
        }),
        LOAD_NAT => req(Request::LoadNat {
            part: ListPart::decode(r)?,
            rules: r.vec("NAT rule")?,
        }),
        GET_COUNTERS => req(Request::GetCounters {
            spi: Option::<u32>::decode(r)?,
        }),
        PING => req(Request::Ping),
        GET_NAT_STATS => req(Request::GetNatStats),
        INJECT_ESP => {
            let from = SocketAddr::new(IpAddr::decode(r)?, r.u16("source port")?);
            let to = SocketAddr::new(IpAddr::decode(r)?, r.u16("destination port")?);
            let at = r.pos;
            let esp = r.bytes16("injected ESP")?;
            if esp.len() > MAX_INJECTED_ESP_LEN {
                return Err(r.invalid("injected ESP", at, "longer than 3700 bytes"));
            }
            req(Request::InjectEsp {
                from,
                to,
                esp: esp.to_vec(),
            })
        }
        SET_TUNNEL_INTERFACES => {
            let tunnels: Vec<TunnelInterface> = r.vec("tunnel interface")?;
            req(Request::SetTunnelInterfaces { tunnels })
        }
        NAT_STATS => rep(Reply::NatStats(NatStats::decode(r)?)),
        HELLO_ACK => rep(Reply::HelloAck {
            version: r.u16("version")?,
            dataplane_version: r.string("dataplane version")?,
        }),
        ACK => rep(Reply::Ack),
        ERROR => rep(Reply::Error {
            code: ErrorCode::decode(r)?,
            message: r.string("error message")?,
        }),
        COUNTERS => rep(Reply::Counters {
            more: bool::decode(r)?,
            global_drops: DropCounts::decode(r)?,
            sas: r.vec("SA counters")?,
        }),
        ACQUIRE => ev(Event::Acquire {
            tag: PolicyTag::decode(r)?,
            flow: FlowKey::decode(r)?,
        }),
        SOFT_EXPIRE => ev(Event::SoftExpire {
            spi: r.u32("spi")?,
            direction: Direction::decode(r)?,
        }),
        HARD_EXPIRE => ev(Event::HardExpire {
            spi: r.u32("spi")?,
            direction: Direction::decode(r)?,
        }),
        REPLAY_FAILURE => ev(Event::ReplayFailure {
            spi: r.u32("spi")?,
            count: r.u64("count")?,
        }),
        INTEGRITY_FAILURE => ev(Event::IntegrityFailure {
            spi: r.u32("spi")?,
            count: r.u64("count")?,
        }),
        IDLE => ev(Event::Idle {
            spi: r.u32("spi")?,
            last_used: r.u64("last_used")?,
        }),
        TED_PROBE => {
            let from = SocketAddr::new(IpAddr::decode(r)?, r.u16("source port")?);
            let original_dst = IpAddr::decode(r)?;
            let at = r.pos;
            let data = r.bytes16("TED probe")?;
            if data.len() > MAX_TED_PROBE_LEN {
                return Err(r.invalid("TED probe", at, "longer than 1500 bytes"));
            }
            ev(Event::TedProbe {
                from,
                original_dst,
                data: data.to_vec(),
            })
        }
        _ => return Err(DecodeError::UnknownType { msg_type: t }),
    })
}

/// Appends to a zeroizing buffer of fixed capacity; past
/// [`MAX_MESSAGE_LEN`] it only counts, and [`finish`](Writer::finish)
/// reports the size the message would have had.
struct Writer {
    msg: &'static str,
    buf: Zeroizing<Vec<u8>>,
    len: usize,
    error: Option<EncodeError>,
}

impl Writer {
    fn new(msg: &'static str) -> Writer {
        Writer {
            msg,
            buf: Zeroizing::new(Vec::with_capacity(MAX_MESSAGE_LEN)),
            len: 0,
            error: None,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.len += bytes.len();
        if self.len <= MAX_MESSAGE_LEN {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }

    /// A u16 length, then the bytes.
    fn bytes16(&mut self, what: &'static str, v: &[u8]) {
        match u16::try_from(v.len()) {
            Ok(n) => {
                self.u16(n);
                self.put(v);
            }
            Err(_) => {
                self.error.get_or_insert(EncodeError::FieldTooLong {
                    msg: self.msg,
                    what,
                    len: v.len(),
                });
            }
        }
    }

    fn string(&mut self, what: &'static str, s: &str) {
        self.bytes16(what, s.as_bytes());
    }

    /// A u32 count, then the elements.
    fn vec<T: Codec>(&mut self, v: &[T]) {
        // More than u32::MAX elements cannot fit in a message anyway; the
        // saturated count is never sent because the size check fails.
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        for x in v {
            x.encode(self);
        }
    }

    fn finish(self) -> Result<Zeroizing<Vec<u8>>, EncodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.len > MAX_MESSAGE_LEN {
            return Err(EncodeError::TooLarge {
                msg: self.msg,
                len: self.len,
            });
        }
        Ok(self.buf)
    }
}

/// A cursor over a message body; every read is bounds-checked and names
/// what it was reading in its error.
struct Reader<'a> {
    msg: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(msg: &'static str, buf: &'a [u8]) -> Reader<'a> {
        Reader { msg, buf, pos: 0 }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let Some(bytes) = self.buf.get(self.pos..).and_then(|rest| rest.get(..n)) else {
            return Err(DecodeError::Truncated {
                msg: self.msg,
                what,
                offset: self.pos,
                need: n,
                left: self.left(),
            });
        };
        self.pos += n;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(what, N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array(what)?))
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A one-byte enum tag, with the offset it was read at for errors.
    fn tag(&mut self, what: &'static str) -> Result<(u8, usize), DecodeError> {
        let at = self.pos;
        Ok((self.u8(what)?, at))
    }

    fn unknown(&self, what: &'static str, code: u32, offset: usize) -> DecodeError {
        DecodeError::UnknownCode {
            msg: self.msg,
            what,
            code,
            offset,
        }
    }

    fn invalid(&self, what: &'static str, offset: usize, why: &'static str) -> DecodeError {
        DecodeError::Invalid {
            msg: self.msg,
            what,
            offset,
            why,
        }
    }

    fn bytes16(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.u16(what)?;
        self.take(what, usize::from(n))
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let at = self.pos;
        let bytes = self.bytes16(what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.invalid(what, at, "not UTF-8")),
        }
    }

    /// A u32 count then the elements. The count is checked against the
    /// bytes left (each element takes at least `T::MIN_LEN`) before any
    /// memory is reserved, so a hostile count cannot make us allocate.
    fn vec<T: Codec>(&mut self, what: &'static str) -> Result<Vec<T>, DecodeError> {
        let at = self.pos;
        let count = self.u32(what)?;
        let need = u64::from(count) * T::MIN_LEN as u64;
        if need > self.left() as u64 {
            return Err(DecodeError::CountTooLarge {
                msg: self.msg,
                what,
                count,
                offset: at,
                need,
                left: self.left(),
            });
        }
        let mut out = Vec::with_capacity(count as usize);
        for _ in 0..count {
            out.push(T::decode(self)?);
        }
        Ok(out)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.left() {
            0 => Ok(()),
            left => Err(DecodeError::TrailingBytes {
                msg: self.msg,
                offset: self.pos,
                left,
            }),
        }
    }
}

/// A type with a wire form (the rustls `Codec` pattern).
trait Codec: Sized {
    /// The fewest bytes any value of the type encodes to: bounds vector
    /// counts before allocation.
    const MIN_LEN: usize;
    fn encode(&self, w: &mut Writer);
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

impl Codec for u32 {
    const MIN_LEN: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.u32(*self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
        r.u32("u32")
    }
}

impl Codec for u64 {
    const MIN_LEN: usize = 8;
    fn encode(&self, w: &mut Writer) {
        w.u64(*self);
    }
    fn decode(r: &mut Reader<'_>) -> Result<u64, DecodeError> {
        r.u64("u64")
    }
}

/// One byte, 0 or 1; anything else is refused (the encoding is canonical).
impl Codec for bool {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        w.u8(u8::from(*self));
    }
    fn decode(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
        match r.tag("boolean")? {
            (0, _) => Ok(false),
            (1, _) => Ok(true),
            (c, at) => Err(r.unknown("boolean", c.into(), at)),
        }
    }
}

/// A presence byte (0 absent, 1 present) then the value.
impl<T: Codec> Codec for Option<T> {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        match self {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Option<T>, DecodeError> {
        match r.tag("option tag")? {
            (0, _) => Ok(None),
            (1, _) => Ok(Some(T::decode(r)?)),
            (c, at) => Err(r.unknown("option tag", c.into(), at)),
        }
    }
}

/// Family byte (4 or 6) then 4 or 16 address bytes.
impl Codec for IpAddr {
    const MIN_LEN: usize = 5;
    fn encode(&self, w: &mut Writer) {
        match self {
            IpAddr::V4(a) => {
                w.u8(4);
                w.put(&a.octets());
            }
            IpAddr::V6(a) => {
                w.u8(6);
                w.put(&a.octets());
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<IpAddr, DecodeError> {
        match r.tag("address family")? {
            (4, _) => Ok(IpAddr::V4(Ipv4Addr::from(r.array::<4>("IPv4 address")?))),
            (6, _) => Ok(IpAddr::V6(Ipv6Addr::from(r.array::<16>("IPv6 address")?))),
            (c, at) => Err(r.unknown("address family", c.into(), at)),
        }
    }
}

/// Address then prefix length; host bits must be zero (canonical form).
impl Codec for IpPrefix {
    const MIN_LEN: usize = IpAddr::MIN_LEN + 1;
    fn encode(&self, w: &mut Writer) {
        self.addr().encode(w);
        w.u8(self.prefix_len());
    }
    fn decode(r: &mut Reader<'_>) -> Result<IpPrefix, DecodeError> {
        let at = r.pos;
        let addr = IpAddr::decode(r)?;
        let len = r.u8("prefix length")?;
        match IpPrefix::new(addr, len) {
            None => Err(r.invalid("prefix", at, "length longer than the address")),
            Some(p) if p.addr() != addr => Err(r.invalid("prefix", at, "host bits set")),
            Some(p) => Ok(p),
        }
    }
}

/// `lo` then `hi`, inclusive; `lo > hi` is refused.
impl Codec for PortRange {
    const MIN_LEN: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.u16(self.lo);
        w.u16(self.hi);
    }
    fn decode(r: &mut Reader<'_>) -> Result<PortRange, DecodeError> {
        let at = r.pos;
        let lo = r.u16("port range")?;
        let hi = r.u16("port range")?;
        if lo > hi {
            return Err(r.invalid("port range", at, "low port above high port"));
        }
        Ok(PortRange { lo, hi })
    }
}

/// Source prefix, destination prefix, protocol (option of u8), source
/// ports, destination ports.
impl Codec for TrafficSelector {
    const MIN_LEN: usize = 2 * IpPrefix::MIN_LEN + 1 + 2 * PortRange::MIN_LEN;
    fn encode(&self, w: &mut Writer) {
        self.src.encode(w);
        self.dst.encode(w);
        match self.proto {
            None => w.u8(0),
            Some(p) => {
                w.u8(1);
                w.u8(p);
            }
        }
        self.src_ports.encode(w);
        self.dst_ports.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<TrafficSelector, DecodeError> {
        let src = IpPrefix::decode(r)?;
        let dst = IpPrefix::decode(r)?;
        let proto = match r.tag("protocol tag")? {
            (0, _) => None,
            (1, _) => Some(r.u8("protocol")?),
            (c, at) => return Err(r.unknown("protocol tag", c.into(), at)),
        };
        Ok(TrafficSelector {
            src,
            dst,
            proto,
            src_ports: PortRange::decode(r)?,
            dst_ports: PortRange::decode(r)?,
        })
    }
}

impl Codec for TunnelInterface {
    /// The name's length, the tag, the MTU.
    const MIN_LEN: usize = 2 + 8 + 2;
    fn encode(&self, w: &mut Writer) {
        w.string("tunnel interface name", &self.name);
        self.tag.encode(w);
        w.u16(self.mtu);
    }
    fn decode(r: &mut Reader<'_>) -> Result<TunnelInterface, DecodeError> {
        let at = r.pos;
        let name = r.string("tunnel interface name")?;
        if !crate::tunif::valid_name(&name) {
            return Err(r.invalid(
                "tunnel interface name",
                at,
                "not a Linux interface name (1 to 15 bytes, no '/', ':' or white space)",
            ));
        }
        Ok(TunnelInterface {
            name,
            tag: PolicyTag::decode(r)?,
            mtu: r.u16("tunnel interface MTU")?,
        })
    }
}

impl Codec for PolicyTag {
    const MIN_LEN: usize = 8;
    fn encode(&self, w: &mut Writer) {
        w.u32(self.map);
        w.u32(self.seq);
    }
    fn decode(r: &mut Reader<'_>) -> Result<PolicyTag, DecodeError> {
        Ok(PolicyTag {
            map: r.u32("crypto map id")?,
            seq: r.u32("crypto map sequence")?,
        })
    }
}

/// Tag 0 bypass, 1 discard, 2 protect (then option of SPI, policy tag).
impl Codec for PolicyAction {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        match self {
            PolicyAction::Bypass => w.u8(0),
            PolicyAction::Discard => w.u8(1),
            PolicyAction::Protect { sa, map } => {
                w.u8(2);
                sa.encode(w);
                map.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<PolicyAction, DecodeError> {
        match r.tag("policy action")? {
            (0, _) => Ok(PolicyAction::Bypass),
            (1, _) => Ok(PolicyAction::Discard),
            (2, _) => Ok(PolicyAction::Protect {
                sa: Option::<u32>::decode(r)?,
                map: PolicyTag::decode(r)?,
            }),
            (c, at) => Err(r.unknown("policy action", c.into(), at)),
        }
    }
}

impl Codec for SpdRule {
    const MIN_LEN: usize = TrafficSelector::MIN_LEN + PolicyAction::MIN_LEN;
    fn encode(&self, w: &mut Writer) {
        self.selector.encode(w);
        self.action.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<SpdRule, DecodeError> {
        Ok(SpdRule {
            selector: TrafficSelector::decode(r)?,
            action: PolicyAction::decode(r)?,
        })
    }
}

/// `offset u32 | more bool`.
impl Codec for ListPart {
    const MIN_LEN: usize = 5;
    fn encode(&self, w: &mut Writer) {
        w.u32(self.offset);
        self.more.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<ListPart, DecodeError> {
        Ok(ListPart {
            offset: r.u32("list offset")?,
            more: bool::decode(r)?,
        })
    }
}

/// Tag 0 exempt, 1 PAT (then interface index u32, outside address).
impl Codec for NatAction {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        match self {
            NatAction::Exempt => w.u8(0),
            NatAction::Pat {
                outside_ifindex,
                outside_addr,
            } => {
                w.u8(1);
                w.u32(*outside_ifindex);
                outside_addr.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<NatAction, DecodeError> {
        match r.tag("NAT action")? {
            (0, _) => Ok(NatAction::Exempt),
            (1, _) => Ok(NatAction::Pat {
                outside_ifindex: r.u32("outside interface index")?,
                outside_addr: IpAddr::decode(r)?,
            }),
            (c, at) => Err(r.unknown("NAT action", c.into(), at)),
        }
    }
}

impl Codec for NatRule {
    const MIN_LEN: usize = TrafficSelector::MIN_LEN + NatAction::MIN_LEN;
    fn encode(&self, w: &mut Writer) {
        self.selector.encode(w);
        self.action.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<NatRule, DecodeError> {
        Ok(NatRule {
            selector: TrafficSelector::decode(r)?,
            action: NatAction::decode(r)?,
        })
    }
}

/// 0 inbound, 1 outbound.
impl Codec for Direction {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        w.u8(match self {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        });
    }
    fn decode(r: &mut Reader<'_>) -> Result<Direction, DecodeError> {
        match r.tag("direction")? {
            (0, _) => Ok(Direction::Inbound),
            (1, _) => Ok(Direction::Outbound),
            (c, at) => Err(r.unknown("direction", c.into(), at)),
        }
    }
}

/// Soft seconds, hard seconds, soft kilobytes, hard kilobytes: each an
/// option of u64.
impl Codec for Lifetime {
    const MIN_LEN: usize = 4;
    fn encode(&self, w: &mut Writer) {
        self.soft_seconds.encode(w);
        self.hard_seconds.encode(w);
        self.soft_kilobytes.encode(w);
        self.hard_kilobytes.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Lifetime, DecodeError> {
        Ok(Lifetime {
            soft_seconds: Option::decode(r)?,
            hard_seconds: Option::decode(r)?,
            soft_kilobytes: Option::decode(r)?,
            hard_kilobytes: Option::decode(r)?,
        })
    }
}

/// Tag 0 transport, 1 tunnel (then local and remote addresses).
impl Codec for EspMode {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        match self {
            EspMode::Transport => w.u8(0),
            EspMode::Tunnel { local, remote } => {
                w.u8(1);
                local.encode(w);
                remote.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<EspMode, DecodeError> {
        match r.tag("ESP mode")? {
            (0, _) => Ok(EspMode::Transport),
            (1, _) => Ok(EspMode::Tunnel {
                local: IpAddr::decode(r)?,
                remote: IpAddr::decode(r)?,
            }),
            (c, at) => Err(r.unknown("ESP mode", c.into(), at)),
        }
    }
}

impl Codec for UdpEncap {
    const MIN_LEN: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.u16(self.src_port);
        w.u16(self.dst_port);
    }
    fn decode(r: &mut Reader<'_>) -> Result<UdpEncap, DecodeError> {
        Ok(UdpEncap {
            src_port: r.u16("UDP source port")?,
            dst_port: r.u16("UDP destination port")?,
        })
    }
}

impl Codec for EncAlg {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        w.u8(self.code());
    }
    fn decode(r: &mut Reader<'_>) -> Result<EncAlg, DecodeError> {
        let (c, at) = r.tag("encryption algorithm")?;
        EncAlg::from_code(c).ok_or_else(|| r.unknown("encryption algorithm", c.into(), at))
    }
}

impl Codec for AuthAlg {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        w.u8(self.code());
    }
    fn decode(r: &mut Reader<'_>) -> Result<AuthAlg, DecodeError> {
        let (c, at) = r.tag("integrity algorithm")?;
        AuthAlg::from_code(c).ok_or_else(|| r.unknown("integrity algorithm", c.into(), at))
    }
}

/// `spi u32 | direction | enc | auth | esn bool | replay_window u32 | mode
/// | option udp_encap | lifetime | selectors (u32 count + each) | enc key
/// (u16 len + bytes) | auth key`.
/// Key lengths must be exactly what the algorithms take; the decoded keys
/// live in a zeroize-on-drop [`SaKeys`] from the moment they are copied.
impl Codec for SaParams {
    const MIN_LEN: usize = 4 + 1 + 1 + 1 + 1 + 4 + 1 + 1 + 4 + 4 + 2 + 2;
    fn encode(&self, w: &mut Writer) {
        w.u32(self.spi);
        self.direction.encode(w);
        self.enc.encode(w);
        self.auth.encode(w);
        self.esn.encode(w);
        w.u32(self.replay_window);
        self.mode.encode(w);
        self.udp_encap.encode(w);
        self.lifetime.encode(w);
        w.vec(&self.selectors);
        w.bytes16("encryption key", &self.keys.enc);
        w.bytes16("integrity key", &self.keys.auth);
    }
    fn decode(r: &mut Reader<'_>) -> Result<SaParams, DecodeError> {
        let spi = r.u32("spi")?;
        let direction = Direction::decode(r)?;
        let enc = EncAlg::decode(r)?;
        let auth = AuthAlg::decode(r)?;
        let esn = bool::decode(r)?;
        let replay_window = r.u32("replay window")?;
        let mode = EspMode::decode(r)?;
        let udp_encap = Option::<UdpEncap>::decode(r)?;
        let lifetime = Lifetime::decode(r)?;
        let selectors = r.vec("traffic selector")?;
        let mut keys = SaKeys {
            enc: Vec::new(),
            auth: Vec::new(),
        };
        keys.enc = key(r, "encryption", enc.ios_name(), enc.key_len())?;
        keys.auth = key(r, "integrity", auth.ios_name(), auth.key_len())?;
        Ok(SaParams {
            spi,
            direction,
            enc,
            auth,
            keys,
            mode,
            udp_encap,
            esn,
            replay_window,
            lifetime,
            selectors,
        })
    }
}

/// Reads one length-prefixed key and checks its length against the
/// algorithm before copying it out of the (zeroized) receive buffer.
fn key(
    r: &mut Reader<'_>,
    which: &'static str,
    alg: &'static str,
    expected: usize,
) -> Result<Vec<u8>, DecodeError> {
    let bytes = r.bytes16(which)?;
    if bytes.len() != expected {
        return Err(DecodeError::KeyLength {
            msg: r.msg,
            which,
            alg,
            got: bytes.len(),
            expected,
        });
    }
    Ok(bytes.to_vec())
}

/// Source, destination, protocol u8, source port, destination port.
impl Codec for FlowKey {
    const MIN_LEN: usize = 2 * IpAddr::MIN_LEN + 1 + 2 + 2;
    fn encode(&self, w: &mut Writer) {
        self.src.encode(w);
        self.dst.encode(w);
        w.u8(self.proto);
        w.u16(self.src_port);
        w.u16(self.dst_port);
    }
    fn decode(r: &mut Reader<'_>) -> Result<FlowKey, DecodeError> {
        Ok(FlowKey {
            src: IpAddr::decode(r)?,
            dst: IpAddr::decode(r)?,
            proto: r.u8("protocol")?,
            src_port: r.u16("source port")?,
            dst_port: r.u16("destination port")?,
        })
    }
}

impl Codec for ErrorCode {
    const MIN_LEN: usize = 2;
    fn encode(&self, w: &mut Writer) {
        w.u16(self.code());
    }
    fn decode(r: &mut Reader<'_>) -> Result<ErrorCode, DecodeError> {
        let at = r.pos;
        let c = r.u16("error code")?;
        ErrorCode::from_code(c).ok_or_else(|| r.unknown("error code", c.into(), at))
    }
}

/// `active | created | expired | hits out | hits in | exempted | no rule`
/// (u64 each), then a u8 count of per-reason drop counters (u64 each, in
/// `NatDrop::ALL` order; reasons a newer peer added are refused).
impl Codec for NatStats {
    const MIN_LEN: usize = 7 * 8 + 1;
    fn encode(&self, w: &mut Writer) {
        for v in [
            self.active_translations,
            self.translations_created,
            self.expired_translations,
            self.hits_outbound,
            self.hits_inbound,
            self.exempted,
            self.no_rule,
        ] {
            w.u64(v);
        }
        // COUNT < 256.
        w.u8(self.drops.len() as u8);
        for d in self.drops {
            w.u64(d);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<NatStats, DecodeError> {
        let mut s = NatStats {
            active_translations: r.u64("active translations")?,
            translations_created: r.u64("translations created")?,
            expired_translations: r.u64("expired translations")?,
            hits_outbound: r.u64("outbound hits")?,
            hits_inbound: r.u64("inbound hits")?,
            exempted: r.u64("exempted")?,
            no_rule: r.u64("no rule")?,
            drops: [0; NatDrop::COUNT],
        };
        let (n, at) = r.tag("NAT drop count")?;
        if usize::from(n) > NatDrop::COUNT {
            return Err(r.invalid("NAT statistics", at, "more drop counters than reasons"));
        }
        for d in s.drops.iter_mut().take(usize::from(n)) {
            *d = r.u64("NAT drops")?;
        }
        Ok(s)
    }
}

/// A u8 count of entries, each `reason code u8 | count u64`, codes strictly
/// increasing. Only non-zero counters are sent: most are zero.
impl Codec for DropCounts {
    const MIN_LEN: usize = 1;
    fn encode(&self, w: &mut Writer) {
        // COUNT < 256: the number of reasons fits the u8 count.
        w.u8(self.nonzero().count() as u8);
        for (reason, n) in self.nonzero() {
            w.u8(reason.code());
            w.u64(n);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<DropCounts, DecodeError> {
        let (n, at) = r.tag("drop counter count")?;
        if usize::from(n) > DropReason::COUNT {
            return Err(r.invalid("drop counters", at, "more entries than drop reasons"));
        }
        let mut out = DropCounts::default();
        let mut last: Option<u8> = None;
        for _ in 0..n {
            let (c, at) = r.tag("drop reason")?;
            let reason =
                DropReason::from_code(c).ok_or_else(|| r.unknown("drop reason", c.into(), at))?;
            if last.is_some_and(|l| c <= l) {
                return Err(r.invalid("drop counters", at, "reason codes not increasing"));
            }
            last = Some(c);
            out.set(reason, r.u64("drop count")?);
        }
        Ok(out)
    }
}

/// `spi u32 | direction | encaps | encrypt | digest | decaps | decrypt |
/// verify | bytes | last_used (u64 each) | peer_port u16 | path_mtu u16 |
/// drops`.
impl Codec for SaCounts {
    const MIN_LEN: usize = 4 + 1 + 8 * 8 + 2 + 2 + DropCounts::MIN_LEN;
    fn encode(&self, w: &mut Writer) {
        w.u32(self.spi);
        self.direction.encode(w);
        for v in [
            self.encaps,
            self.encrypt,
            self.digest,
            self.decaps,
            self.decrypt,
            self.verify,
            self.bytes,
            self.last_used,
        ] {
            w.u64(v);
        }
        w.u16(self.peer_port);
        w.u16(self.path_mtu);
        self.drops.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> Result<SaCounts, DecodeError> {
        Ok(SaCounts {
            spi: r.u32("spi")?,
            direction: Direction::decode(r)?,
            encaps: r.u64("encaps")?,
            encrypt: r.u64("encrypt")?,
            digest: r.u64("digest")?,
            decaps: r.u64("decaps")?,
            decrypt: r.u64("decrypt")?,
            verify: r.u64("verify")?,
            bytes: r.u64("bytes")?,
            last_used: r.u64("last_used")?,
            peer_port: r.u16("peer port")?,
            path_mtu: r.u16("path mtu")?,
            drops: DropCounts::decode(r)?,
        })
    }
}
