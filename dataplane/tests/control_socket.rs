//! The control socket end to end: a listener in a temporary directory, a
//! small dataplane loop around a real SADB on one side (the shape the
//! dataplane's mgmt thread will have), and a control-process client on the
//! other, talking over a real `SOCK_SEQPACKET` socket.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use dataplane::api::wire::{msg_type, MAGIC};
use dataplane::api::{
    ConnError, ControlConn, ControlListener, Direction, DropCounts, ErrorCode, EspMode, Lifetime,
    Message, Payload, Reply, Request, SaCounts, SaKeys, SaParams, MAX_MESSAGE_LEN,
    PROTOCOL_VERSION,
};
use dataplane::crypto::{AuthAlg, EncAlg};
use dataplane::sa::{SaError, Sadb};
use dataplane::testkit::{encap_one, inner_v4};

const DATAPLANE_VERSION: &str = "espada-dataplane test";

/// A dataplane's answer to one request. `sadb` is the live SADB; after an
/// outbound SA is installed one packet is encapsulated with it, so its
/// counters have something to show.
fn handle(sadb: &mut Sadb, request_id: u32, request: Request) -> Vec<Message> {
    let reply = |r| vec![Message::reply(request_id, r)];
    let error = |code, message: String| reply(Reply::Error { code, message });
    match request {
        Request::Hello { version } if version == PROTOCOL_VERSION => reply(Reply::HelloAck {
            version,
            dataplane_version: DATAPLANE_VERSION.into(),
        }),
        Request::Hello { version } => error(
            ErrorCode::UnsupportedVersion,
            format!("Hello for version {version}; this dataplane speaks {PROTOCOL_VERSION}"),
        ),
        Request::AddSa(sa) => match sadb.install(&sa, 0) {
            Ok(()) => {
                if let Some(out) = sadb.outbound(sa.spi) {
                    encap_one(out, &inner_v4(100)).expect("encapsulates");
                }
                reply(Reply::Ack)
            }
            Err(e @ SaError::DuplicateSpi(_)) => error(ErrorCode::DuplicateSa, e.to_string()),
            Err(e) => error(ErrorCode::InvalidSa, e.to_string()),
        },
        Request::DeleteSa { direction, spi } => match sadb.remove(direction, spi) {
            true => reply(Reply::Ack),
            false => error(ErrorCode::UnknownSa, format!("no SA 0x{spi:08x}")),
        },
        Request::GetCounters { spi } => {
            let wanted = |s: u32| spi.is_none_or(|w| w == s);
            let mut sas: Vec<SaCounts> = sadb
                .inbound_sas()
                .filter(|sa| wanted(sa.spi()))
                .map(|sa| {
                    SaCounts::snapshot(
                        sa.spi(),
                        Direction::Inbound,
                        sa.counters(),
                        sa.peer_port_seen(),
                    )
                })
                .collect();
            sas.extend(
                sadb.outbound_sas()
                    .filter(|sa| wanted(sa.spi()))
                    .map(|sa| SaCounts::snapshot(sa.spi(), Direction::Outbound, sa.counters(), 0)),
            );
            Reply::counters(request_id, &sas, DropCounts::default())
        }
        Request::GetNatStats => reply(Reply::NatStats(Default::default())),
        Request::Ping
        | Request::UpdateSa { .. }
        | Request::SetPeerPort { .. }
        | Request::LoadSpd { .. }
        | Request::LoadNat { .. }
        | Request::InjectEsp { .. }
        | Request::SetTunnelInterfaces { .. } => reply(Reply::Ack),
    }
}

/// Serves one connection until the client hangs up.
fn serve(listener: ControlListener) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut conn = listener.accept().expect("client accepted");
        let mut sadb = Sadb::new();
        loop {
            let out = match conn.recv() {
                Ok(Message {
                    request_id,
                    payload: Payload::Request(r),
                }) => handle(&mut sadb, request_id, r),
                Ok(m) => vec![Message::reply(
                    m.request_id,
                    Reply::Error {
                        code: ErrorCode::Unexpected,
                        message: format!("{} is not a request", m.name()),
                    },
                )],
                Err(ConnError::Closed) => return,
                Err(e) => vec![e.error_reply().expect("an error with an answer")],
            };
            for m in out {
                conn.send(&m).expect("reply sent");
            }
        }
    })
}

/// A listener in a fresh temporary directory, served by [`serve`], and a
/// connected client.
fn dataplane_and_client() -> (
    tempfile::TempDir,
    PathBuf,
    ControlConn,
    thread::JoinHandle<()>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dataplane.sock");
    let server = serve(ControlListener::bind(&path).expect("bound"));
    let mut client = ControlConn::connect(&path).expect("connected");
    client
        .set_recv_timeout(Some(Duration::from_secs(10)))
        .expect("timeout set");
    (dir, path, client, server)
}

fn ask(client: &mut ControlConn, request_id: u32, request: Request) -> Message {
    client
        .send(&Message::request(request_id, request))
        .expect("sent");
    client.recv().expect("answered")
}

fn outbound_sa(spi: u32) -> SaParams {
    SaParams {
        spi,
        direction: Direction::Outbound,
        enc: EncAlg::AesCbc128,
        auth: AuthAlg::HmacSha1_96,
        keys: SaKeys {
            enc: (0..16).collect(),
            auth: (100..120).collect(),
        },
        mode: EspMode::Tunnel {
            local: "198.18.0.1".parse().expect("literal"),
            remote: "198.18.0.2".parse().expect("literal"),
        },
        udp_encap: None,
        esn: false,
        replay_window: 0,
        lifetime: Lifetime::default(),
        selectors: Vec::new(),
    }
}

fn hang_up(client: ControlConn, server: thread::JoinHandle<()>) {
    drop(client);
    server.join().expect("dataplane loop ended cleanly");
}

#[test]
fn a_control_process_says_hello_installs_an_sa_and_reads_its_counters() {
    let (_dir, _path, mut client, server) = dataplane_and_client();

    let ack = ask(&mut client, 1, Request::Hello { version: 1 });
    assert_eq!(
        ack,
        Message::reply(
            1,
            Reply::HelloAck {
                version: PROTOCOL_VERSION,
                dataplane_version: DATAPLANE_VERSION.into()
            }
        )
    );

    let added = ask(
        &mut client,
        2,
        Request::AddSa(Box::new(outbound_sa(0x1001))),
    );
    assert_eq!(added, Message::reply(2, Reply::Ack));

    assert_eq!(
        ask(&mut client, 3, Request::Ping),
        Message::reply(3, Reply::Ack)
    );

    let counters = ask(&mut client, 4, Request::GetCounters { spi: Some(0x1001) });
    let Message {
        request_id: 4,
        payload: Payload::Reply(Reply::Counters { sas, more, .. }),
    } = counters
    else {
        panic!("expected Counters, got {counters:?}");
    };
    assert!(!more);
    assert_eq!(sas.len(), 1);
    assert_eq!(sas[0].spi, 0x1001);
    assert_eq!(sas[0].direction, Direction::Outbound);
    assert_eq!(sas[0].encaps, 1, "the packet the dataplane sent is counted");
    assert_eq!(sas[0].drops.total(), 0);

    let unknown = ask(
        &mut client,
        5,
        Request::DeleteSa {
            direction: Direction::Inbound,
            spi: 0x1001,
        },
    );
    assert!(matches!(
        unknown.payload,
        Payload::Reply(Reply::Error {
            code: ErrorCode::UnknownSa,
            ..
        })
    ));
    assert_eq!(unknown.request_id, 5);

    hang_up(client, server);
}

#[test]
fn the_socket_file_is_a_socket_only_its_owner_can_use() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dataplane.sock");
    let _listener = ControlListener::bind(&path).expect("bound");
    let meta = std::fs::symlink_metadata(&path).expect("socket file exists");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_version_2_hello_gets_a_clear_error_and_the_connection_stays_usable() {
    let (_dir, _path, mut client, server) = dataplane_and_client();

    // What a future control process would send: header version 2.
    let mut hello_v2 = MAGIC.to_vec();
    hello_v2.extend_from_slice(&2u16.to_be_bytes());
    hello_v2.extend_from_slice(&msg_type::HELLO.to_be_bytes());
    hello_v2.extend_from_slice(&77u32.to_be_bytes());
    hello_v2.extend_from_slice(&2u32.to_be_bytes());
    hello_v2.extend_from_slice(&2u16.to_be_bytes());
    client.send_datagram(&hello_v2).expect("sent");

    let reply = client.recv().expect("answered");
    assert_eq!(reply.request_id, 77);
    let Payload::Reply(Reply::Error { code, message }) = reply.payload else {
        panic!("expected an Error, got {reply:?}");
    };
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(
        message.contains("version 2") && message.contains("version 1"),
        "the message names both versions: {message}"
    );

    // A version-1 Hello in the body of a version-1 message works after it.
    let ack = ask(&mut client, 78, Request::Hello { version: 1 });
    assert!(matches!(
        ack.payload,
        Payload::Reply(Reply::HelloAck { .. })
    ));
    hang_up(client, server);
}

#[test]
fn an_sa_whose_key_does_not_fit_its_algorithm_is_refused_with_the_reason() {
    let (_dir, _path, mut client, server) = dataplane_and_client();
    // Encode a good AddSa, then shorten the integrity key by one byte
    // (length prefix and body length fixed up), as a buggy peer would.
    let good = Message::request(9, Request::AddSa(Box::new(outbound_sa(0x2002))));
    let mut bytes = dataplane::api::encode(&good).expect("encodes").to_vec();
    let key_len_at = bytes.len() - 20 - 2;
    bytes[key_len_at..key_len_at + 2].copy_from_slice(&19u16.to_be_bytes());
    bytes.pop();
    let body_len = (bytes.len() - 16) as u32;
    bytes[12..16].copy_from_slice(&body_len.to_be_bytes());
    client.send_datagram(&bytes).expect("sent");

    let reply = client.recv().expect("answered");
    assert_eq!(reply.request_id, 9);
    let Payload::Reply(Reply::Error { code, message }) = reply.payload else {
        panic!("expected an Error, got {reply:?}");
    };
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("integrity key"), "{message}");
    assert!(message.contains("19 bytes, expected 20"), "{message}");
    hang_up(client, server);
}

#[test]
fn a_datagram_over_64_kib_is_refused_and_the_connection_stays_usable() {
    let (_dir, _path, mut client, server) = dataplane_and_client();
    let huge = vec![0u8; MAX_MESSAGE_LEN + 100];
    client.send_datagram(&huge).expect("the kernel takes it");
    let reply = client.recv().expect("answered");
    let Payload::Reply(Reply::Error { code, message }) = reply.payload else {
        panic!("expected an Error, got {reply:?}");
    };
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(
        message.contains(&(MAX_MESSAGE_LEN + 100).to_string()),
        "{message}"
    );
    assert_eq!(
        ask(&mut client, 2, Request::Ping),
        Message::reply(2, Reply::Ack)
    );
    hang_up(client, server);
}

#[test]
fn recv_gives_up_after_its_timeout() {
    let (_dir, _path, mut client, server) = dataplane_and_client();
    let r = client.recv_timeout(Some(Duration::from_millis(50)));
    assert!(matches!(r, Err(ConnError::Timeout)), "{r:?}");
    hang_up(client, server);
}

/// A zero timeout does not wait: the kernel's smallest receive timeout
/// is a scheduler tick or two (4-8 ms at 250 Hz), which a loop polling
/// for events paid on every pass. 100 empty polls took over 400 ms so.
#[test]
fn a_zero_timeout_does_not_wait_and_a_message_waiting_is_still_read() {
    let (_dir, _path, mut client, server) = dataplane_and_client();
    let t0 = std::time::Instant::now();
    for _ in 0..100 {
        let r = client.recv_timeout(Some(Duration::ZERO));
        assert!(matches!(r, Err(ConnError::Timeout)), "{r:?}");
    }
    assert!(
        t0.elapsed() < Duration::from_millis(200),
        "{:?}",
        t0.elapsed()
    );
    // A request answered: the reply is there for a zero-timeout read.
    client.send(&Message::request(7, Request::Ping)).unwrap();
    let t1 = std::time::Instant::now();
    let reply = loop {
        match client.recv_timeout(Some(Duration::ZERO)) {
            Ok(m) => break m,
            Err(ConnError::Timeout) if t1.elapsed() < Duration::from_secs(10) => {
                std::thread::yield_now()
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(reply, Message::reply(7, Reply::Ack));
    // And a later timeout waits again.
    let r = client.recv_timeout(Some(Duration::from_millis(50)));
    assert!(matches!(r, Err(ConnError::Timeout)), "{r:?}");
    hang_up(client, server);
}

#[test]
fn a_peer_that_hangs_up_is_reported_as_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dataplane.sock");
    let listener = ControlListener::bind(&path).expect("bound");
    let client = ControlConn::connect(&path).expect("connected");
    let mut conn = listener.accept().expect("accepted");
    // SO_PEERCRED names the peer: this very process.
    assert_eq!(conn.peer_pid(), std::process::id() as i32);
    drop(client);
    assert!(matches!(conn.recv(), Err(ConnError::Closed)));
}

#[test]
fn binding_replaces_a_stale_socket_but_not_a_live_one_nor_a_plain_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dataplane.sock");
    let first = ControlListener::bind(&path).expect("bound");

    let live = ControlListener::bind(&path).expect_err("someone listens there");
    assert_eq!(live.kind(), std::io::ErrorKind::AddrInUse);

    drop(first); // the dataplane died; its socket file stays behind
    assert!(path.exists());
    let second = ControlListener::bind(&path).expect("stale socket replaced");
    let client = ControlConn::connect(second.path()).expect("the new listener answers");
    drop(client);

    let file = dir.path().join("not-a-socket");
    std::fs::write(&file, b"keep me").expect("written");
    let refused = ControlListener::bind(&file).expect_err("not a socket");
    assert_eq!(refused.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(&file).expect("still there"), b"keep me");
    assert!(Path::new(&file).exists());
}
