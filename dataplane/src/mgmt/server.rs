//! The control socket's server loop: accepts the control process (or
//! several, e.g. `espada show` beside the daemon), answers their requests
//! through [`Mgmt`], and broadcasts events to every connection that said
//! Hello. One `poll(2)` over the listener and the connections; no thread
//! per client, nothing here touches the packet path.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::api::{ConnError, ControlConn, ControlListener, Event, Message, Payload};

use super::staging::ListStaging;
use super::Mgmt;

/// One connected client.
struct Client {
    conn: ControlConn,
    /// Said Hello with our version: gets events.
    ready: bool,
    /// Its SPD or NAT list sent in parts, until the last part.
    staging: ListStaging,
}

/// The listening socket and its clients.
pub struct Server {
    listener: ControlListener,
    clients: Vec<Client>,
    /// Clients refused or dropped after an error (logged by the caller).
    pub errors: Vec<String>,
}

impl Server {
    pub fn new(listener: ControlListener) -> Server {
        Server {
            listener,
            clients: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Waits up to `timeout` for a connection or a request and serves
    /// whatever is ready.
    pub fn poll_once(&mut self, mgmt: &mut Mgmt, now: u64, timeout: Duration) {
        let mut fds = Vec::with_capacity(1 + self.clients.len());
        fds.push(pollfd(self.listener.as_fd().as_raw_fd()));
        for c in &self.clients {
            fds.push(pollfd(c.conn.as_fd().as_raw_fd()));
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of pollfd of the length passed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if n <= 0 {
            return;
        }
        let mut dead = Vec::new();
        for (i, fd) in fds.iter().enumerate().skip(1) {
            if fd.revents == 0 {
                continue;
            }
            if !self.serve_client(i - 1, mgmt, now) {
                dead.push(i - 1);
            }
        }
        for i in dead.into_iter().rev() {
            self.clients.swap_remove(i);
        }
        if fds[0].revents & libc::POLLIN != 0 {
            match self.listener.accept() {
                Ok(mut conn) => {
                    // A client that stops reading must not stall us: bound
                    // each receive (poll said one is ready anyway).
                    let _ = conn.set_recv_timeout(Some(Duration::from_millis(100)));
                    self.clients.push(Client {
                        conn,
                        ready: false,
                        staging: ListStaging::default(),
                    });
                }
                Err(e) => self.errors.push(format!("control socket: {e}")),
            }
        }
    }

    /// Handles one ready message; false when the client is gone.
    fn serve_client(&mut self, i: usize, mgmt: &mut Mgmt, now: u64) -> bool {
        let elsewhere: usize = (self.clients.iter().enumerate())
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| c.staging.staged())
            .sum();
        let client = &mut self.clients[i];
        let msg = match client.conn.recv() {
            Ok(m) => m,
            Err(ConnError::Timeout) => return true,
            Err(ConnError::Closed) => return false,
            Err(e) => {
                if let Some(reply) = e.error_reply() {
                    return client.conn.send(&reply).is_ok();
                }
                self.errors.push(format!("control client: {e}"));
                return false;
            }
        };
        let replies = match msg.payload {
            Payload::Request(req) => match client.staging.join(req, elsewhere) {
                Err(held) => vec![Message::reply(msg.request_id, held.reply())],
                Ok(req) => {
                    let hello = matches!(req, crate::api::Request::Hello { .. });
                    let replies = mgmt.handle(msg.request_id, req, now);
                    if hello {
                        client.ready = replies.iter().any(|r| {
                            matches!(
                                r.payload,
                                Payload::Reply(crate::api::Reply::HelloAck { .. })
                            )
                        });
                    }
                    replies
                }
            },
            Payload::Reply(_) | Payload::Event(_) => vec![Message::reply(
                msg.request_id,
                crate::api::Reply::Error {
                    code: crate::api::ErrorCode::Unexpected,
                    message: "the dataplane takes requests only".into(),
                },
            )],
        };
        replies.iter().all(|r| client.conn.send(r).is_ok())
    }

    /// Sends events to every client that said Hello; a client that cannot
    /// take them is dropped.
    pub fn broadcast(&mut self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        self.clients.retain(|c| {
            !c.ready
                || events
                    .iter()
                    .all(|e| c.conn.send(&Message::event(e.clone())).is_ok())
        });
    }
}

fn pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}
