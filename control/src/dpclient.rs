//! The control process's side of the dataplane socket: connect (starting
//! the dataplane if nothing listens), say Hello, send requests and collect
//! their replies, keeping the events that arrive in between for the caller.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dataplane::api::{
    ConnError, ControlConn, DropCounts, ErrorCode, Event, Message, NatRule, Payload, Reply,
    Request, SaCounts, PROTOCOL_VERSION,
};
use dataplane::spd::SpdRule;
use thiserror::Error;

/// Where the dataplane listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/espada/dataplane.sock";

/// How long one request may take before the dataplane counts as wedged.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum DpError {
    #[error("dataplane socket {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: ConnError,
    },
    #[error("dataplane: {0}")]
    Conn(#[from] ConnError),
    #[error("dataplane refused {what}: {code:?}: {message}")]
    Refused {
        what: &'static str,
        code: ErrorCode,
        message: String,
    },
    #[error("dataplane answered {what} with an unexpected {got}")]
    Unexpected {
        what: &'static str,
        got: &'static str,
    },
}

/// One connection to the dataplane.
pub struct DataplaneClient {
    conn: ControlConn,
    next_id: u32,
    events: VecDeque<Event>,
    /// Requests sent, by kind (`"LoadSpd"`, `"AddSa"`, ...): what the
    /// control process asked of the dataplane, in messages.
    sent: BTreeMap<&'static str, u64>,
    /// `espada-dataplane x.y.z`, from the Hello exchange.
    pub dataplane_version: String,
}

impl DataplaneClient {
    /// Connects and says Hello.
    pub fn connect(path: &Path) -> Result<DataplaneClient, DpError> {
        let conn = ControlConn::connect(path).map_err(|source| DpError::Connect {
            path: path.to_owned(),
            source,
        })?;
        let mut c = DataplaneClient {
            conn,
            next_id: 1,
            events: VecDeque::new(),
            sent: BTreeMap::new(),
            dataplane_version: String::new(),
        };
        match c.request(
            "Hello",
            Request::Hello {
                version: PROTOCOL_VERSION,
            },
        )? {
            Reply::HelloAck {
                dataplane_version, ..
            } => c.dataplane_version = dataplane_version,
            other => return Err(unexpected("Hello", &other)),
        }
        Ok(c)
    }

    /// Connects, retrying until `deadline` (a dataplane that was just
    /// started needs a moment to bind its socket).
    pub fn connect_until(path: &Path, deadline: Instant) -> Result<DataplaneClient, DpError> {
        loop {
            match DataplaneClient::connect(path) {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Sends one request and waits for its reply (the first, for a split
    /// counters answer use [`counters`](Self::counters)).
    pub fn request(&mut self, what: &'static str, req: Request) -> Result<Reply, DpError> {
        *self.sent.entry(what).or_default() += 1;
        let id = self.send(req)?;
        self.reply_to(what, id)
    }

    /// How many `what` requests went out on this connection.
    pub fn sent(&self, what: &str) -> u64 {
        self.sent.get(what).copied().unwrap_or(0)
    }

    /// A request that must be acknowledged.
    pub fn expect_ack(&mut self, what: &'static str, req: Request) -> Result<(), DpError> {
        match self.request(what, req)? {
            Reply::Ack => Ok(()),
            other => Err(unexpected(what, &other)),
        }
    }

    /// Replaces the dataplane's SPD with `rules`, in as many messages as
    /// it takes (a hub's SPD grows with its peers); the dataplane swaps
    /// it in at the last, so a refusal half-way leaves the old one.
    pub fn load_spd(&mut self, rules: &[SpdRule]) -> Result<(), DpError> {
        for part in Request::load_spd(rules) {
            self.expect_ack("LoadSpd", part)?;
        }
        Ok(())
    }

    /// Replaces the NAT rule list, as [`Self::load_spd`].
    pub fn load_nat(&mut self, rules: &[NatRule]) -> Result<(), DpError> {
        for part in Request::load_nat(rules) {
            self.expect_ack("LoadNat", part)?;
        }
        Ok(())
    }

    /// Every SA's counters (or one SPI's), joined across split replies.
    pub fn counters(&mut self, spi: Option<u32>) -> Result<Vec<SaCounts>, DpError> {
        Ok(self.all_counters(spi)?.0)
    }

    /// SA counters and the drops that belong to no SA.
    pub fn all_counters(
        &mut self,
        spi: Option<u32>,
    ) -> Result<(Vec<SaCounts>, DropCounts), DpError> {
        let id = self.send(Request::GetCounters { spi })?;
        let mut all = Vec::new();
        loop {
            match self.reply_to("GetCounters", id)? {
                Reply::Counters {
                    sas,
                    more,
                    global_drops,
                } => {
                    all.extend(sas);
                    if !more {
                        return Ok((all, global_drops));
                    }
                }
                other => return Err(unexpected("GetCounters", &other)),
            }
        }
    }

    /// PAT totals over every worker (`show ip nat statistics`).
    pub fn nat_stats(&mut self) -> Result<dataplane::nat::NatStats, DpError> {
        match self.request("GetNatStats", Request::GetNatStats)? {
            Reply::NatStats(stats) => Ok(stats),
            other => Err(unexpected("GetNatStats", &other)),
        }
    }

    /// Events received so far, oldest first.
    pub fn take_events(&mut self) -> Vec<Event> {
        self.events.drain(..).collect()
    }

    /// Waits up to `timeout` for one event.
    /// The connection's descriptor, to poll for events.
    pub fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::{AsFd, AsRawFd};
        self.conn.as_fd().as_raw_fd()
    }

    /// Reads every event already waiting (without blocking) into the
    /// queue [`DataplaneClient::take_events`] empties. An error means the
    /// connection is gone.
    pub fn poll_events(&mut self) -> Result<(), DpError> {
        loop {
            match self.conn.recv_timeout(Some(Duration::ZERO)) {
                Ok(Message {
                    payload: Payload::Event(e),
                    ..
                }) => self.events.push_back(e),
                Ok(_) => {}
                Err(ConnError::Timeout) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Events read while waiting for a reply and not taken yet: the
    /// socket no longer shows them, so a loop that waits on it must not.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    pub fn wait_event(&mut self, timeout: Duration) -> Result<Option<Event>, DpError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        match self.conn.recv_timeout(Some(timeout)) {
            Ok(Message {
                payload: Payload::Event(e),
                ..
            }) => Ok(Some(e)),
            Ok(_) => Ok(None),
            Err(ConnError::Timeout) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn send(&mut self, req: Request) -> Result<u32, DpError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.conn.send(&Message::request(id, req))?;
        Ok(id)
    }

    fn reply_to(&mut self, what: &'static str, id: u32) -> Result<Reply, DpError> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ConnError::Timeout.into());
            }
            let msg = self.conn.recv_timeout(Some(left))?;
            match msg.payload {
                Payload::Event(e) => self.events.push_back(e),
                Payload::Reply(Reply::Error { code, message }) if msg.request_id == id => {
                    return Err(DpError::Refused {
                        what,
                        code,
                        message,
                    })
                }
                Payload::Reply(r) if msg.request_id == id => return Ok(r),
                // A late reply to an earlier, timed-out request.
                Payload::Reply(_) => {}
                Payload::Request(_) => {
                    return Err(DpError::Unexpected {
                        what,
                        got: "request",
                    })
                }
            }
        }
    }
}

fn unexpected(what: &'static str, r: &Reply) -> DpError {
    DpError::Unexpected {
        what,
        got: match r {
            Reply::HelloAck { .. } => "HelloAck",
            Reply::Ack => "Ack",
            Reply::Error { .. } => "Error",
            Reply::Counters { .. } => "Counters",
            Reply::NatStats(_) => "NatStats",
        },
    }
}

/// The dataplane's management thread behind a real socket in a temporary
/// directory, and a client of it: what the control process talks to,
/// without packets or workers (tests).
#[cfg(test)]
pub(crate) mod test_dataplane {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use dataplane::api::ControlListener;
    use dataplane::mgmt::server::Server;
    use dataplane::mgmt::Mgmt;

    use super::*;

    pub struct TestDataplane {
        pub dp: DataplaneClient,
        stop: Arc<AtomicBool>,
        server: JoinHandle<Mgmt>,
        _dir: tempfile::TempDir,
    }

    impl TestDataplane {
        pub fn start() -> TestDataplane {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("dp.sock");
            let listener = ControlListener::bind(&path).unwrap();
            let stop = Arc::new(AtomicBool::new(false));
            let stop2 = stop.clone();
            let server = std::thread::spawn(move || {
                let mut mgmt = Mgmt::new(Vec::new(), Vec::new());
                let mut s = Server::new(listener);
                while !stop2.load(Ordering::Relaxed) {
                    s.poll_once(&mut mgmt, 0, Duration::from_millis(20));
                }
                mgmt
            });
            let dp = DataplaneClient::connect_until(&path, Instant::now() + REPLY_TIMEOUT).unwrap();
            TestDataplane {
                dp,
                stop,
                server,
                _dir: dir,
            }
        }

        /// Stops the management thread and hands over its state.
        pub fn stop(self) -> Mgmt {
            self.stop.store(true, Ordering::Relaxed);
            self.server.join().unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use dataplane::spd::{IpPrefix, PolicyAction, PolicyTag, PortRange, TrafficSelector};

    use super::test_dataplane::TestDataplane;
    use super::*;

    /// A hub's per-peer rule: its LAN to peer `i`'s, IPv6 to make the
    /// rules as large as they get.
    fn peer_rule(i: u32) -> SpdRule {
        let lan = |n: u32| {
            let [a, b, c, d] = n.to_be_bytes();
            let addr: IpAddr = format!("fd00:{a:x}{b:02x}:{c:x}{d:02x}::").parse().unwrap();
            IpPrefix::new(addr, 64).unwrap()
        };
        SpdRule {
            selector: TrafficSelector {
                src: lan(0xffff_ffff),
                dst: lan(i),
                proto: Some(17),
                src_ports: PortRange::ANY,
                dst_ports: PortRange::single(4789),
            },
            action: PolicyAction::Protect {
                sa: Some(0x1000_0000 + i),
                map: PolicyTag { map: 1, seq: 10 },
            },
        }
    }

    #[test]
    fn an_spd_of_many_peers_reaches_a_real_dataplane_whole() {
        let mut d = TestDataplane::start();
        // 10 000 peers: over nine messages of the largest rules.
        let rules: Vec<SpdRule> = (0..10_000).map(peer_rule).collect();
        d.dp.load_spd(&rules).unwrap();
        // The next load replaces the list, never appends to it.
        let fewer = d.dp.load_spd(&rules[..5000]);
        let mgmt = d.stop();
        fewer.unwrap();
        assert_eq!(mgmt.spd(), &rules[..5000]);
    }
}
