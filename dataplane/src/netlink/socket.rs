//! `NETLINK_ROUTE` sockets on libc: [`RtNetlink`] for requests (dumps and
//! the neighbour resolution trigger; blocking with a timeout) and
//! [`RtEvents`] for the multicast change notifications (non-blocking, to
//! poll from the management thread's loop). Two sockets, so that
//! acknowledgements and dump replies never interleave with notifications.
//!
//! Only datagrams from the kernel (source port id 0) are read; others are
//! dropped unread.

use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use thiserror::Error;

use super::wire::{
    decode, dump_request, flags, group, messages, resolve_request, Decoded, Dump, KernelEvent,
    ParseError,
};

/// Why a netlink operation failed.
#[derive(Debug, Error)]
pub enum NetlinkError {
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    #[error("undecodable netlink message: {0}")]
    Parse(#[from] ParseError),
    #[error("the kernel refused {op}: {}", io::Error::from_raw_os_error(*errno))]
    Kernel { op: &'static str, errno: i32 },
    /// The socket's receive buffer overflowed (`ENOBUFS`): notifications
    /// were lost, and the mirror must be rebuilt from a dump.
    #[error("netlink notifications were lost (receive buffer overrun)")]
    Overrun,
    #[error("dump interrupted by concurrent changes {0} times in a row")]
    DumpInterrupted(u32),
    #[error("no answer from the kernel within {0:?}")]
    Timeout(Duration),
    #[error("netlink datagram of {0} bytes exceeds the receive buffer")]
    Truncated(usize),
}

/// Large enough for any datagram the kernel builds (dump chunks are at
/// most 32 KiB).
const RECV_BUF: usize = 64 * 1024;
/// Room for bursts of notifications (a whole routing table arriving).
const SOCKET_RCVBUF: libc::c_int = 4 << 20;
/// How long a request waits for the kernel's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Dumps restarted after `NLM_F_DUMP_INTR` before giving up.
const DUMP_TRIES: u32 = 5;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: `v` points to a live value of the size passed, which is the
    // type the kernel reads for this option.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

#[derive(Debug)]
struct NlSocket {
    fd: OwnedFd,
    /// Our port id, assigned by the kernel at bind.
    port: u32,
}

impl NlSocket {
    fn open(groups: &[u32], nonblocking: bool) -> io::Result<NlSocket> {
        let mut ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
        if nonblocking {
            ty |= libc::SOCK_NONBLOCK;
        }
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = cvt(unsafe { libc::socket(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE) })?;
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all zeroes is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let mut len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: `addr` is a valid sockaddr_nl of `len` bytes (port 0:
        // the kernel assigns one).
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                len,
            )
        })?;
        // SAFETY: getsockname writes at most `len` bytes into `addr`.
        cvt(unsafe {
            libc::getsockname(
                fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            )
        })?;
        // Root (CAP_NET_ADMIN) may go past net.core.rmem_max; else the
        // plain option, which the kernel caps.
        if setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &SOCKET_RCVBUF,
        )
        .is_err()
        {
            setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &SOCKET_RCVBUF,
            )?;
        }
        for g in groups {
            setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_ADD_MEMBERSHIP,
                g,
            )?;
        }
        Ok(NlSocket {
            fd,
            port: addr.nl_pid,
        })
    }

    fn set_timeout(&self, t: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: t.as_secs() as libc::time_t,
            tv_usec: t.subsec_micros() as libc::suseconds_t,
        };
        setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv,
        )
    }

    fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: as in `open`.
        let mut to: libc::sockaddr_nl = unsafe { mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: `buf` is valid for its length; `to` is a valid
            // sockaddr_nl addressing the kernel (port 0).
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    0,
                    (&to as *const libc::sockaddr_nl).cast(),
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// One datagram from the kernel into `buf`; its full length is
    /// returned (`MSG_TRUNC`), larger than `buf` if it did not fit.
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: as in `open`.
            let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
            let mut len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: `buf` is writable for its length; `from` can hold
            // `len` bytes.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if from.nl_pid == 0 {
                return Ok(n as usize);
            }
        }
    }
}

/// A request socket: dumps the kernel's tables and asks for neighbour
/// resolution.
#[derive(Debug)]
pub struct RtNetlink {
    sock: NlSocket,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl RtNetlink {
    /// Opens a request socket in the calling thread's network namespace.
    pub fn open() -> Result<RtNetlink, NetlinkError> {
        let sock = NlSocket::open(&[], false)?;
        sock.set_timeout(REQUEST_TIMEOUT)?;
        Ok(RtNetlink {
            sock,
            seq: 0,
            tx: Vec::with_capacity(256),
            rx: vec![0; RECV_BUF],
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn recv(&mut self) -> Result<usize, NetlinkError> {
        match self.sock.recv(&mut self.rx) {
            Ok(n) if n > self.rx.len() => Err(NetlinkError::Truncated(n)),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                Err(NetlinkError::Timeout(REQUEST_TIMEOUT))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Err(NetlinkError::Overrun),
            Err(e) => Err(e.into()),
        }
    }

    /// Dumps one table. Restarts when the kernel says the table changed
    /// during the dump (`NLM_F_DUMP_INTR`), so the result is consistent.
    pub fn dump(&mut self, what: Dump) -> Result<Vec<KernelEvent>, NetlinkError> {
        let mut out = Vec::new();
        for _ in 0..DUMP_TRIES {
            if self.dump_once(what, &mut out)? {
                return Ok(out);
            }
        }
        Err(NetlinkError::DumpInterrupted(DUMP_TRIES))
    }

    /// Links, addresses, routes and neighbours, in that order (the order
    /// [`super::Mirror::snapshot`] needs: links before what refers to them).
    pub fn dump_all(&mut self) -> Result<Vec<KernelEvent>, NetlinkError> {
        let mut all = Vec::new();
        for what in [Dump::Links, Dump::Addresses, Dump::Routes, Dump::Neighbours] {
            all.append(&mut self.dump(what)?);
        }
        Ok(all)
    }

    /// Returns false if the dump was interrupted.
    fn dump_once(&mut self, what: Dump, out: &mut Vec<KernelEvent>) -> Result<bool, NetlinkError> {
        out.clear();
        let seq = self.next_seq();
        dump_request(&mut self.tx, what, seq);
        self.sock.send(&self.tx)?;
        let port = self.sock.port;
        let mut interrupted = false;
        loop {
            let n = self.recv()?;
            for m in messages(&self.rx[..n]) {
                let m = m?;
                if m.seq != seq || m.pid != port {
                    continue;
                }
                interrupted |= m.flags & flags::DUMP_INTR != 0;
                match decode(&m)? {
                    Decoded::Event(e) => out.push(e),
                    Decoded::Done => return Ok(!interrupted),
                    Decoded::Error(errno) => {
                        return Err(NetlinkError::Kernel {
                            op: "a dump",
                            errno,
                        })
                    }
                    Decoded::Overrun => return Err(NetlinkError::Overrun),
                    Decoded::Ack | Decoded::Ignored => {}
                }
            }
        }
    }

    /// Makes the kernel resolve `addr` on `ifindex` (ARP for IPv4,
    /// Neighbour Solicitation for IPv6) as if a packet were waiting for
    /// it, without sending any packet: see [`super::wire::resolve_request`].
    /// The answer arrives as a neighbour notification on [`RtEvents`].
    pub fn resolve_neighbour(&mut self, ifindex: u32, addr: IpAddr) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        resolve_request(&mut self.tx, seq, ifindex, addr);
        self.sock.send(&self.tx)?;
        self.wait_ack(seq, "neighbour resolution (RTM_NEWNEIGH, NTF_USE)")
    }

    fn wait_ack(&mut self, seq: u32, op: &'static str) -> Result<(), NetlinkError> {
        let port = self.sock.port;
        loop {
            let n = self.recv()?;
            for m in messages(&self.rx[..n]) {
                let m = m?;
                if m.seq != seq || m.pid != port {
                    continue;
                }
                match decode(&m)? {
                    Decoded::Ack => return Ok(()),
                    Decoded::Error(errno) => return Err(NetlinkError::Kernel { op, errno }),
                    _ => {}
                }
            }
        }
    }
}

impl AsFd for RtNetlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }
}

/// A subscription to link, address, route and neighbour notifications of
/// both families.
#[derive(Debug)]
pub struct RtEvents {
    sock: NlSocket,
    rx: Vec<u8>,
}

impl RtEvents {
    /// Subscribes in the calling thread's network namespace.
    pub fn subscribe() -> Result<RtEvents, NetlinkError> {
        Ok(RtEvents {
            sock: NlSocket::open(&group::ALL, true)?,
            rx: vec![0; RECV_BUF],
        })
    }

    /// Waits up to `timeout` for notifications; true if some are ready.
    pub fn wait(&self, timeout: Duration) -> Result<bool, NetlinkError> {
        let mut p = libc::pollfd {
            fd: self.sock.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        loop {
            // SAFETY: one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, ms) };
            if r >= 0 {
                return Ok(r > 0);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e.into());
            }
        }
    }

    /// Appends every notification queued now to `out`, without blocking;
    /// returns how many. An error means notifications may have been lost
    /// ([`NetlinkError::Overrun`], or a message that did not parse): the
    /// caller rebuilds its mirror from a dump.
    pub fn drain(&mut self, out: &mut Vec<KernelEvent>) -> Result<usize, NetlinkError> {
        let mut got = 0;
        loop {
            let n = match self.sock.recv(&mut self.rx) {
                Ok(n) if n > self.rx.len() => return Err(NetlinkError::Truncated(n)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(got),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Err(NetlinkError::Overrun)
                }
                Err(e) => return Err(e.into()),
            };
            for m in messages(&self.rx[..n]) {
                match decode(&m?)? {
                    Decoded::Event(e) => {
                        out.push(e);
                        got += 1;
                    }
                    Decoded::Overrun => return Err(NetlinkError::Overrun),
                    _ => {}
                }
            }
        }
    }
}

impl AsFd for RtEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }
}
