use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver};

use super::server::Server;
use super::*;
use crate::api::{ControlConn, ControlListener, Lifetime, Payload, UdpEncap};
use crate::crypto::{AuthAlg, EncAlg};
use crate::pipeline::{AcquireRequest, Tables};
use crate::spd::{IpPrefix, PolicyAction, PolicyTag, PortRange, TrafficSelector};
use crate::testkit;

fn mgmt(workers: usize) -> (Mgmt, Vec<Receiver<TableUpdate>>, Vec<Tables>) {
    let (tx, rx): (Vec<_>, Vec<_>) = (0..workers).map(|_| bounded(64)).unzip();
    let counters = (0..workers)
        .map(|_| Arc::new(WorkerCounters::default()))
        .collect();
    let tables = (0..workers).map(|_| Tables::default()).collect();
    (Mgmt::new(tx, counters), rx, tables)
}

/// What each worker does between batches.
fn drain(rx: &[Receiver<TableUpdate>], tables: &mut [Tables]) {
    for (r, t) in rx.iter().zip(tables.iter_mut()) {
        while let Ok(u) = r.try_recv() {
            u.apply(t);
        }
    }
}

fn pair() -> (SaParams, SaParams) {
    testkit::sa_pair(
        EncAlg::AesCbc128,
        AuthAlg::HmacSha1_96,
        testkit::tunnel(false),
        false,
        false,
        64,
    )
}

fn reply(msgs: Vec<Message>) -> Reply {
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    match msgs.into_iter().next().map(|m| m.payload) {
        Some(Payload::Reply(r)) => r,
        other => panic!("not a reply: {other:?}"),
    }
}

#[test]
fn hello_with_our_version_is_acknowledged_and_another_version_refused() {
    let (mut m, _, _) = mgmt(1);
    let ok = reply(m.handle(
        1,
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
        0,
    ));
    assert!(matches!(ok, Reply::HelloAck { version, .. } if version == PROTOCOL_VERSION));
    let bad = reply(m.handle(
        2,
        Request::Hello {
            version: PROTOCOL_VERSION + 1,
        },
        0,
    ));
    assert!(matches!(
        bad,
        Reply::Error {
            code: ErrorCode::UnsupportedVersion,
            ..
        }
    ));
}

#[test]
fn an_installed_sa_reaches_every_worker_as_the_same_shared_sa() {
    let (mut m, rx, mut tables) = mgmt(2);
    let (out, inb) = pair();
    assert_eq!(
        reply(m.handle(1, Request::AddSa(Box::new(inb.clone())), 0)),
        Reply::Ack
    );
    assert_eq!(
        reply(m.handle(2, Request::AddSa(Box::new(out.clone())), 0)),
        Reply::Ack
    );
    drain(&rx, &mut tables);
    let a = tables[0].sadb.inbound(inb.spi).expect("worker 0 has it");
    let b = tables[1].sadb.inbound(inb.spi).expect("worker 1 has it");
    assert!(Arc::ptr_eq(a, b), "one SA, one replay window, shared");
    assert!(tables[1].sadb.outbound(out.spi).is_some());

    // A duplicate SPI in either direction and a bad key are refused,
    // nothing sent: an outbound SA of another peer with the same SPI must
    // not take over the flows the SPD gives the first.
    for dup in [&inb, &out] {
        let mut other_peer = dup.clone();
        other_peer.keys.enc[0] ^= 1;
        let dup = reply(m.handle(3, Request::AddSa(Box::new(other_peer)), 0));
        assert!(matches!(
            dup,
            Reply::Error {
                code: ErrorCode::DuplicateSa,
                ..
            }
        ));
    }
    let mut bad = inb.clone();
    bad.spi += 1;
    bad.keys.enc.truncate(3);
    let bad = reply(m.handle(4, Request::AddSa(Box::new(bad)), 0));
    assert!(matches!(
        bad,
        Reply::Error {
            code: ErrorCode::InvalidSa,
            ..
        }
    ));
    assert!(rx.iter().all(|r| r.is_empty()));

    // Delete reaches every worker; a second delete is an unknown SA.
    let del = Request::DeleteSa {
        direction: Direction::Inbound,
        spi: inb.spi,
    };
    assert_eq!(reply(m.handle(5, del.clone(), 0)), Reply::Ack);
    drain(&rx, &mut tables);
    assert!(tables.iter().all(|t| t.sadb.inbound(inb.spi).is_none()));
    let again = reply(m.handle(6, del, 0));
    assert!(matches!(
        again,
        Reply::Error {
            code: ErrorCode::UnknownSa,
            ..
        }
    ));
}

#[test]
fn a_new_peer_port_reaches_the_workers_sa_and_is_refused_for_plain_esp() {
    let (mut m, rx, mut tables) = mgmt(2);
    let (mut out, _) = pair();
    out.udp_encap = Some(UdpEncap::default());
    let (mut plain, _) = pair();
    plain.spi = out.spi + 1;
    for sa in [&out, &plain] {
        assert_eq!(
            reply(m.handle(1, Request::AddSa(Box::new(sa.clone())), 0)),
            Reply::Ack
        );
    }
    drain(&rx, &mut tables);
    let set = |spi, port| Request::SetPeerPort { spi, port };
    assert_eq!(reply(m.handle(2, set(out.spi, 61_234), 0)), Reply::Ack);
    // The workers hold the same SA: no table update needed.
    assert!(rx.iter().all(|r| r.is_empty()));
    for t in &tables {
        let u = t.sadb.outbound(out.spi).unwrap().udp_encap().unwrap();
        assert_eq!((u.src_port, u.dst_port), (4500, 61_234));
    }
    let code = |r| match r {
        Reply::Error { code, .. } => code,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        code(reply(m.handle(3, set(plain.spi, 1), 0))),
        ErrorCode::InvalidSa
    );
    assert!(tables[0]
        .sadb
        .outbound(plain.spi)
        .unwrap()
        .udp_encap()
        .is_none());
    assert_eq!(
        code(reply(m.handle(4, set(0xdead, 1), 0))),
        ErrorCode::UnknownSa
    );
    assert_eq!(
        code(reply(m.handle(5, set(out.spi, 0), 0))),
        ErrorCode::InvalidSa
    );
}

#[test]
fn a_loaded_spd_replaces_every_workers_spd() {
    let (mut m, rx, mut tables) = mgmt(2);
    let rule = SpdRule {
        selector: TrafficSelector {
            src: "198.19.1.0/24".parse::<IpPrefix>().unwrap(),
            dst: "198.19.2.0/24".parse::<IpPrefix>().unwrap(),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect {
            sa: Some(0x1234_5678),
            map: PolicyTag { map: 1, seq: 10 },
        },
    };
    let r = reply(m.handle(
        1,
        Request::LoadSpd {
            part: ListPart::WHOLE,
            rules: vec![rule],
        },
        0,
    ));
    assert_eq!(r, Reply::Ack);
    drain(&rx, &mut tables);
    for t in &tables {
        assert_eq!(t.spd.rules(), &[rule]);
    }
}

#[test]
fn a_loaded_nat_list_reaches_every_worker_and_an_ipv6_pat_rule_is_refused() {
    let (mut m, rx, mut tables) = mgmt(2);
    let plan = crate::nat::PortPlan::new(61000..=61999, 2).unwrap();
    for (w, t) in tables.iter_mut().enumerate() {
        t.pat = Some(crate::pipeline::PatState::new(plan, w, 16).unwrap());
    }
    let selector = |src: &str| TrafficSelector {
        src: src.parse::<IpPrefix>().unwrap(),
        dst: "0.0.0.0/0".parse::<IpPrefix>().unwrap(),
        proto: None,
        src_ports: PortRange::ANY,
        dst_ports: PortRange::ANY,
    };
    let pat = |src: &str, addr: &str| NatRule {
        selector: selector(src),
        action: NatAction::Pat {
            outside_ifindex: 7,
            outside_addr: addr.parse().unwrap(),
        },
    };
    let generation = m.nat_generation();
    let r = reply(m.handle(
        1,
        Request::LoadNat {
            part: ListPart::WHOLE,
            rules: vec![pat("198.19.1.0/24", "198.18.0.1")],
        },
        0,
    ));
    assert_eq!(r, Reply::Ack);
    assert_ne!(m.nat_generation(), generation);
    assert_eq!(m.pat_interfaces(), vec![7]);
    drain(&rx, &mut tables);
    for t in &tables {
        assert_eq!(t.pat.as_ref().unwrap().rules.len(), 1);
    }

    let generation = m.nat_generation();
    let r = reply(m.handle(
        2,
        Request::LoadNat {
            part: ListPart::WHOLE,
            rules: vec![pat("fd00:a::/64", "fd00:1::1")],
        },
        0,
    ));
    assert!(
        matches!(r, Reply::Error { code: ErrorCode::InvalidRules, ref message } if message.contains("IPv4 only")),
        "{r:?}"
    );
    assert_eq!(m.nat_generation(), generation, "the list in force stays");
    assert_eq!(m.nat().len(), 1);
}

#[test]
fn counters_answer_for_every_sa_or_one_spi() {
    let (mut m, _rx, _) = mgmt(1);
    let (out, inb) = pair();
    m.handle(1, Request::AddSa(Box::new(inb.clone())), 0);
    m.handle(2, Request::AddSa(Box::new(out.clone())), 0);
    let all = m.handle(3, Request::GetCounters { spi: None }, 0);
    let Some(Payload::Reply(Reply::Counters { sas, more, .. })) =
        all.into_iter().next().map(|m| m.payload)
    else {
        panic!("no counters");
    };
    assert!(!more);
    assert_eq!(sas.len(), 2);
    let none = m.handle(4, Request::GetCounters { spi: Some(7) }, 0);
    assert!(matches!(
        none[0].payload,
        Payload::Reply(Reply::Counters { ref sas, .. }) if sas.is_empty()
    ));
}

#[test]
fn lifetimes_raise_soft_once_then_hard_which_removes_the_sa_everywhere() {
    let (mut m, rx, mut tables) = mgmt(2);
    let (_, mut inb) = pair();
    inb.lifetime = Lifetime {
        soft_seconds: Some(100),
        hard_seconds: Some(120),
        ..Lifetime::default()
    };
    m.set_idle_secs(1_000);
    m.handle(1, Request::AddSa(Box::new(inb.clone())), 1000);
    drain(&rx, &mut tables);
    assert!(m.tick(1050).is_empty());
    let soft = Event::SoftExpire {
        spi: inb.spi,
        direction: Direction::Inbound,
    };
    assert_eq!(m.tick(1100), vec![soft]);
    assert!(m.tick(1101).is_empty(), "soft is raised once");
    // A responder-lifetime style update pushes the limits out.
    let upd = Request::UpdateSa {
        direction: Direction::Inbound,
        spi: inb.spi,
        lifetime: Lifetime {
            soft_seconds: Some(200),
            hard_seconds: Some(220),
            ..Lifetime::default()
        },
    };
    assert_eq!(reply(m.handle(2, upd, 1101)), Reply::Ack);
    assert!(m.tick(1150).is_empty());
    assert_eq!(
        m.tick(1220),
        vec![Event::HardExpire {
            spi: inb.spi,
            direction: Direction::Inbound
        }]
    );
    assert_eq!(m.sa_count(), 0);
    drain(&rx, &mut tables);
    assert!(tables.iter().all(|t| t.sadb.inbound(inb.spi).is_none()));
}

/// A kilobyte limit is looked at once a tick, so the soft one is raised
/// a tick early when the SA's last tick's bytes would take it past: a
/// busy SA then has a tick to rekey before its hard limit.
#[test]
fn a_kilobyte_soft_limit_the_next_tick_would_pass_is_raised_now() {
    let (mut m, rx, mut tables) = mgmt(1);
    let (_, mut inb) = pair();
    inb.lifetime = Lifetime {
        soft_kilobytes: Some(100),
        hard_kilobytes: Some(120),
        ..Lifetime::default()
    };
    m.set_idle_secs(1_000);
    m.handle(1, Request::AddSa(Box::new(inb.clone())), 0);
    drain(&rx, &mut tables);
    let sa = tables[0].sadb.inbound(inb.spi).unwrap().clone();
    let carry = |kb: u64| SaCounters::add(&sa.counters().bytes, kb * 1024);
    carry(30);
    assert!(m.tick(1).is_empty(), "30 KB, 30 a tick: 60 by the next");
    carry(30);
    assert!(m.tick(2).is_empty(), "60 KB, 30 a tick: 90 by the next");
    carry(30);
    let soft = Event::SoftExpire {
        spi: inb.spi,
        direction: Direction::Inbound,
    };
    assert_eq!(m.tick(3), vec![soft], "90 KB, 30 a tick: 120 by the next");
    carry(30);
    assert_eq!(
        m.tick(4),
        vec![Event::HardExpire {
            spi: inb.spi,
            direction: Direction::Inbound
        }]
    );
}

#[test]
fn replay_and_integrity_failures_are_reported_as_deltas_and_idle_once() {
    let (mut m, rx, mut tables) = mgmt(1);
    let (_, inb) = pair();
    m.set_idle_secs(10);
    m.handle(1, Request::AddSa(Box::new(inb.clone())), 0);
    drain(&rx, &mut tables);
    let sa = tables[0].sadb.inbound(inb.spi).unwrap().clone();
    for _ in 0..3 {
        sa.counters().drops.inc(DropReason::Replay);
    }
    sa.counters().drops.inc(DropReason::IntegrityFailed);
    let ev = m.tick(1);
    assert!(ev.contains(&Event::ReplayFailure {
        spi: inb.spi,
        count: 3
    }));
    assert!(ev.contains(&Event::IntegrityFailure {
        spi: inb.spi,
        count: 1
    }));
    assert!(m.tick(2).is_empty(), "nothing new, nothing said");
    sa.counters().drops.inc(DropReason::Replay);
    assert_eq!(
        m.tick(3),
        vec![Event::ReplayFailure {
            spi: inb.spi,
            count: 1
        }]
    );
    let idle = Event::Idle {
        spi: inb.spi,
        last_used: 0,
    };
    assert_eq!(m.tick(10), vec![idle]);
    assert!(m.tick(11).is_empty(), "idle is said once per quiet spell");
    sa.counters()
        .last_used
        .store(15, std::sync::atomic::Ordering::Relaxed);
    assert!(m.tick(20).is_empty());
    assert_eq!(
        m.tick(25),
        vec![Event::Idle {
            spi: inb.spi,
            last_used: 15
        }]
    );
}

#[test]
fn the_server_answers_over_the_socket_and_broadcasts_events_to_hello_clients() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dp.sock");
    let listener = ControlListener::bind(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (mut m, _rx, _) = mgmt(1);
    let (_, inb) = pair();
    let stop2 = stop.clone();
    let server = std::thread::spawn(move || {
        let mut s = Server::new(listener);
        let mut sent = false;
        while !stop2.load(Ordering::Relaxed) {
            s.poll_once(&mut m, 0, Duration::from_millis(20));
            if m.sa_count() == 1 && !sent {
                s.broadcast(&[Event::SoftExpire {
                    spi: 0x4242,
                    direction: Direction::Inbound,
                }]);
                sent = true;
            }
        }
    });
    let mut c = ControlConn::connect(&path).unwrap();
    c.set_recv_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send(&Message::request(
        1,
        Request::Hello {
            version: PROTOCOL_VERSION,
        },
    ))
    .unwrap();
    assert!(matches!(
        c.recv().unwrap().payload,
        Payload::Reply(Reply::HelloAck { .. })
    ));
    c.send(&Message::request(2, Request::AddSa(Box::new(inb))))
        .unwrap();
    let ack = c.recv().unwrap();
    assert_eq!(ack.request_id, 2);
    assert_eq!(ack.payload, Payload::Reply(Reply::Ack));
    let ev = c.recv().unwrap();
    assert_eq!(
        ev.payload,
        Payload::Event(Event::SoftExpire {
            spi: 0x4242,
            direction: Direction::Inbound
        })
    );
    // A second client works beside the first.
    let mut c2 = ControlConn::connect(&path).unwrap();
    c2.set_recv_timeout(Some(Duration::from_secs(5))).unwrap();
    c2.send(&Message::request(9, Request::Ping)).unwrap();
    assert_eq!(c2.recv().unwrap().payload, Payload::Reply(Reply::Ack));
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}

#[test]
fn acquires_are_raised_once_a_second_per_map_entry_and_address_pair() {
    let (mut m, _, _) = mgmt(1);
    let flow = crate::spd::FlowKey {
        src: "198.19.1.10".parse().unwrap(),
        dst: "198.19.2.10".parse().unwrap(),
        proto: 1,
        src_port: 0,
        dst_port: 0,
    };
    let req = AcquireRequest {
        tag: PolicyTag { map: 0, seq: 10 },
        flow,
    };
    assert_eq!(
        m.acquire(req, 5),
        Some(Event::Acquire { tag: req.tag, flow })
    );
    assert_eq!(m.acquire(req, 5), None, "the same second: one acquire");
    let mut other = req;
    other.flow.dst = "198.19.2.11".parse().unwrap();
    assert!(
        m.acquire(other, 5).is_some(),
        "another destination gets its own"
    );
    assert!(m.acquire(req, 6).is_some(), "a second later: again");
}

fn numbered_rule(i: u32) -> SpdRule {
    SpdRule {
        selector: TrafficSelector {
            src: "198.19.1.0/24".parse::<IpPrefix>().unwrap(),
            dst: IpPrefix::host(IpAddr::V4(std::net::Ipv4Addr::from(0xc613_0000 | i))),
            proto: None,
            src_ports: PortRange::ANY,
            dst_ports: PortRange::ANY,
        },
        action: PolicyAction::Protect {
            sa: Some(0x1000 + i),
            map: PolicyTag { map: 1, seq: i },
        },
    }
}

fn part(offset: u32, more: bool) -> ListPart {
    ListPart { offset, more }
}

fn load_spd(part: ListPart, rules: Vec<SpdRule>) -> Request {
    Request::LoadSpd { part, rules }
}

#[test]
fn list_parts_are_staged_until_the_last_and_the_whole_list_comes_out() {
    let mut st = staging::ListStaging::default();
    let rules: Vec<SpdRule> = (0..5).map(numbered_rule).collect();
    assert_eq!(
        st.join(load_spd(part(0, true), rules[..2].to_vec()), 0),
        Err(staging::Held::Staged)
    );
    assert_eq!(
        st.join(load_spd(part(2, true), rules[2..4].to_vec()), 0),
        Err(staging::Held::Staged)
    );
    // Another request in between passes through and changes nothing.
    assert_eq!(st.join(Request::Ping, 0), Ok(Request::Ping));
    assert_eq!(
        st.join(load_spd(part(4, false), rules[4..].to_vec()), 0),
        Ok(load_spd(ListPart::WHOLE, rules.clone()))
    );
    // A whole list in one message passes as it is.
    assert_eq!(
        st.join(load_spd(ListPart::WHOLE, rules[..1].to_vec()), 0),
        Ok(load_spd(ListPart::WHOLE, rules[..1].to_vec()))
    );
}

#[test]
fn a_missing_part_discards_the_list_and_offset_zero_starts_afresh() {
    let mut st = staging::ListStaging::default();
    let rules: Vec<SpdRule> = (0..6).map(numbered_rule).collect();
    assert_eq!(
        st.join(load_spd(part(0, true), rules[..2].to_vec()), 0),
        Err(staging::Held::Staged)
    );
    // The part at 2 was lost: the one at 4 is refused and the list dropped.
    let r = st.join(load_spd(part(4, false), rules[4..].to_vec()), 0);
    assert!(
        matches!(&r, Err(staging::Held::Refused { code: ErrorCode::Unexpected, message })
            if message.contains("part at rule 4, but 2 rules were staged")),
        "{r:?}"
    );
    // Nothing of it survives: a part at 2 now is out of sequence too.
    assert!(matches!(
        st.join(load_spd(part(2, false), rules[2..4].to_vec()), 0),
        Err(staging::Held::Refused {
            code: ErrorCode::Unexpected,
            ..
        })
    ));
    // A load abandoned half-way does not leak into the next one.
    assert_eq!(
        st.join(load_spd(part(0, true), rules[..3].to_vec()), 0),
        Err(staging::Held::Staged)
    );
    assert_eq!(
        st.join(load_spd(part(0, true), rules[3..5].to_vec()), 0),
        Err(staging::Held::Staged)
    );
    assert_eq!(
        st.join(load_spd(part(2, false), rules[5..].to_vec()), 0),
        Ok(load_spd(ListPart::WHOLE, rules[3..].to_vec()))
    );
    // SPD and NAT lists are staged apart.
    assert_eq!(
        st.join(load_spd(part(0, true), rules[..1].to_vec()), 0),
        Err(staging::Held::Staged)
    );
    assert_eq!(
        st.join(
            Request::LoadNat {
                part: ListPart::WHOLE,
                rules: vec![],
            },
            0,
        ),
        Ok(Request::LoadNat {
            part: ListPart::WHOLE,
            rules: vec![],
        })
    );
    assert_eq!(
        st.join(load_spd(part(1, false), rules[1..2].to_vec()), 0),
        Ok(load_spd(ListPart::WHOLE, rules[..2].to_vec()))
    );
}

#[test]
fn a_list_longer_than_the_bound_is_refused() {
    let mut st = staging::ListStaging::default();
    let max = Request::MAX_LIST_RULES;
    assert_eq!(
        st.join(load_spd(part(0, true), vec![numbered_rule(0); max]), 0),
        Err(staging::Held::Staged)
    );
    let r = st.join(load_spd(part(max as u32, false), vec![numbered_rule(1)]), 0);
    assert!(
        matches!(&r, Err(staging::Held::Refused { code: ErrorCode::TooLarge, message })
            if message.contains("may hold 1048576 rules in all")),
        "{r:?}"
    );
}

#[test]
fn lists_in_the_making_share_one_bound_over_every_connection() {
    let max = Request::MAX_LIST_RULES;
    let mut first = staging::ListStaging::default();
    assert_eq!(
        first.join(load_spd(part(0, true), vec![numbered_rule(0); max - 10]), 0),
        Err(staging::Held::Staged)
    );
    let mut second = staging::ListStaging::default();
    let r = second.join(
        load_spd(part(0, true), vec![numbered_rule(1); 20]),
        first.staged(),
    );
    assert!(
        matches!(&r, Err(staging::Held::Refused { code: ErrorCode::TooLarge, message })
            if message.contains("take 20 of the 10 left")),
        "{r:?}"
    );
    assert_eq!(second.staged(), 0);
    // Within what is left, it stages.
    assert_eq!(
        second.join(
            load_spd(part(0, true), vec![numbered_rule(1); 10]),
            first.staged()
        ),
        Err(staging::Held::Staged)
    );
}

#[test]
fn the_tables_refuse_a_part_that_was_not_joined() {
    let (mut m, _, _) = mgmt(1);
    let r = reply(m.handle(1, load_spd(part(0, true), vec![numbered_rule(0)]), 0));
    assert!(
        matches!(
            r,
            Reply::Error {
                code: ErrorCode::Unexpected,
                ..
            }
        ),
        "{r:?}"
    );
    assert!(m.spd().is_empty());
}

#[test]
fn an_spd_in_parts_over_the_socket_is_in_force_only_after_its_last_part() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.sock");
    let listener = ControlListener::bind(&path).unwrap();
    let (mut m, rx, mut tables) = mgmt(1);
    let mut s = Server::new(listener);
    let mut c = ControlConn::connect(&path).unwrap();
    c.set_recv_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut other = ControlConn::connect(&path).unwrap();
    other
        .set_recv_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut id = 0;
    let mut ask = |conn: &mut ControlConn, s: &mut Server, m: &mut Mgmt, req: Request| {
        id += 1;
        conn.send(&Message::request(id, req)).unwrap();
        // Accept pending connections, then serve the request.
        for _ in 0..3 {
            s.poll_once(m, 0, Duration::from_millis(20));
        }
        let r = conn.recv().unwrap();
        assert_eq!(r.request_id, id);
        match r.payload {
            Payload::Reply(r) => r,
            p => panic!("not a reply: {p:?}"),
        }
    };
    // 4 000 rules: more than one message holds.
    let rules: Vec<SpdRule> = (0..4000).map(numbered_rule).collect();
    let parts = Request::load_spd(&rules);
    assert!(parts.len() > 2, "{} parts", parts.len());
    let last = parts.len() - 1;
    for (i, p) in parts.into_iter().enumerate() {
        assert_eq!(ask(&mut c, &mut s, &mut m, p), Reply::Ack);
        if i == 0 {
            // Another client loads a whole list while the first is half
            // way: each connection stages its own.
            let one = load_spd(ListPart::WHOLE, vec![numbered_rule(9999)]);
            assert_eq!(ask(&mut other, &mut s, &mut m, one), Reply::Ack);
        }
        if i < last {
            assert!(m.spd().len() <= 1, "part {i}: nothing new in force yet");
        }
    }
    assert_eq!(m.spd(), &rules[..]);
    drain(&rx, &mut tables);
    assert_eq!(tables[0].spd.rules(), &rules[..]);
    // The first half of a list from a client that then leaves changes nothing.
    let parts = Request::load_spd(&rules[..2000]);
    assert_eq!(
        ask(&mut other, &mut s, &mut m, parts[0].clone()),
        Reply::Ack
    );
    drop(other);
    for _ in 0..3 {
        s.poll_once(&mut m, 0, Duration::from_millis(20));
    }
    assert_eq!(s.clients(), 1);
    assert_eq!(m.spd().len(), 4000);
}

/// ESP the control process hands over goes, as a frame on the outside
/// interface, to the worker its SA hashes to, every packet of it; the
/// next worker takes it when that one is behind, and only when all are is
/// it refused.
#[test]
fn injected_esp_reaches_its_sas_worker_as_a_frame_on_the_outside() {
    use crate::handoff::{Handoff, HANDOFF_DEPTH};
    let (mut m, _, _) = mgmt(2);
    let from: std::net::SocketAddr = "198.18.0.9:4500".parse().unwrap();
    let inject = |m: &mut Mgmt, spi: u8, seq: u8| {
        let mut esp = vec![spi; 40];
        esp[4..8].copy_from_slice(&[0, 0, 0, seq]);
        reply(m.handle(
            9,
            Request::InjectEsp {
                from,
                to: "198.18.1.1:4500".parse().unwrap(),
                esp,
            },
            0,
        ))
    };
    assert!(matches!(
        inject(&mut m, 1, 1),
        Reply::Error {
            code: ErrorCode::Unexpected,
            ..
        }
    ));
    let mesh = Handoff::mesh(2);
    m.set_injector(Injector::new(mesh[0].sender(), 7));
    let take = |w: usize| {
        let mut got = None;
        mesh[w].recv(|ifindex, f| got = Some((ifindex, f.to_vec())));
        got
    };
    // Two SAs that hash to different workers.
    let worker = |spi: u8| crate::inject::worker_of(from, &[spi; 8], 2);
    let a = 1;
    let b = (2..=255).find(|&s| worker(s) != worker(a)).unwrap();
    let (wa, wb) = (worker(a), worker(b));
    for seq in 1..=3 {
        assert_eq!(inject(&mut m, a, seq), Reply::Ack);
        assert_eq!(inject(&mut m, b, seq), Reply::Ack);
    }
    for (w, spi) in [(wa, a), (wb, b)] {
        for seq in 1..=3 {
            let (ifindex, f) = take(w).expect("the SA's worker has it");
            assert_eq!(ifindex, 7);
            assert_eq!(f.len(), 14 + 20 + 8 + 40);
            assert_eq!((f[14 + 28], f[14 + 28 + 7]), (spi, seq), "in order");
        }
        assert!(take(w).is_none());
    }
    // A's worker behind: A's packets go to the other one.
    while mesh[wb].send(wa, 1, &[0; 64]) {}
    for seq in 4..=6 {
        assert_eq!(inject(&mut m, a, seq), Reply::Ack);
    }
    let mut to_other = 0;
    while take(wb).is_some() {
        to_other += 1;
    }
    assert_eq!(to_other, 3);
    // Both behind: refused, and nothing is lost from the queues.
    while mesh[wa].send(wb, 1, &[0; 64]) {}
    assert!(matches!(
        inject(&mut m, a, 7),
        Reply::Error {
            code: ErrorCode::Internal,
            ..
        }
    ));
    // Not ESP: refused with the reason.
    let Reply::Error { code, message } = reply(m.handle(
        10,
        Request::InjectEsp {
            from: "198.18.0.9:4500".parse().unwrap(),
            to: "198.18.1.1:4500".parse().unwrap(),
            esp: vec![0; 40],
        },
        0,
    )) else {
        panic!("IKE accepted as ESP");
    };
    assert_eq!(code, ErrorCode::Malformed);
    assert!(message.contains("zero SPI"), "{message}");
    let mut queued = 0;
    while take(wa).is_some() {
        queued += 1;
    }
    assert_eq!(queued, HANDOFF_DEPTH);
}

/// A tunnel interface list is refused whole, before any device is made,
/// when two entries share a name or a crypto map entry or an MTU is below
/// IPv4's minimum; an empty list is taken (and sent to every worker).
/// (Making devices needs a network namespace: `deploy/tests/lab_vti.sh`.)
#[test]
fn a_tunnel_interface_list_that_contradicts_itself_is_refused_whole() {
    let (mut m, rx, _) = mgmt(2);
    let tag = PolicyTag { map: 1, seq: 65536 };
    let t = |name: &str, tag, mtu| TunnelInterface {
        name: name.into(),
        tag,
        mtu,
    };
    let other = PolicyTag { map: 2, seq: 65536 };
    for (list, want) in [
        (
            vec![t("Tunnel1", tag, 1400), t("Tunnel1", other, 1400)],
            "Tunnel1 is listed twice",
        ),
        (
            vec![t("Tunnel1", tag, 1400), t("Tunnel2", tag, 1400)],
            "Tunnel1 and Tunnel2 name the same crypto map entry",
        ),
        (vec![t("Tunnel1", tag, 67)], "MTU 67 is not within 68"),
        (vec![t("Tunnel1", tag, 3001)], "MTU 3001 is not within 68"),
    ] {
        let reply = m.handle(1, Request::SetTunnelInterfaces { tunnels: list }, 0);
        match &reply[0].payload {
            Payload::Reply(Reply::Error { code, message }) => {
                assert_eq!(*code, ErrorCode::InvalidRules);
                assert!(message.contains(want), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(rx.iter().all(|r| r.try_recv().is_err()), "no worker told");
    assert_eq!(m.tunnels().count(), 0);
    let reply = m.handle(2, Request::SetTunnelInterfaces { tunnels: vec![] }, 0);
    assert!(matches!(reply[0].payload, Payload::Reply(Reply::Ack)));
    for r in &rx {
        assert!(matches!(r.try_recv(), Ok(TableUpdate::ReplaceTunnels(p)) if p.is_empty()));
    }
}
