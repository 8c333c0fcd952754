//! The control socket's transport: a Unix `SOCK_SEQPACKET` socket, so the
//! kernel keeps message boundaries (one datagram is one message, see
//! [`super::wire`]) and delivers them in order over a connection, and a
//! dead peer is seen as end of file.
//!
//! SA keys cross this socket, so it is guarded three ways: the socket file
//! is mode 0600 before it accepts anything, both ends check their peer's
//! uid (`SO_PEERCRED`: root or our own effective uid only), and every
//! buffer that held an encoded message is zeroized after use.
//!
//! I/O is blocking: the dataplane's mgmt thread and the control daemon's
//! dataplane task each own one connection. The standard library has no
//! `SOCK_SEQPACKET`, hence the `libc` calls.

use std::ffi::OsStr;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use super::messages::{ErrorCode, Message, Reply};
use super::wire::{self, DecodeError, EncodeError, Header, MAX_MESSAGE_LEN};

/// Why a send or receive on the control socket failed.
#[derive(Debug, Error)]
pub enum ConnError {
    #[error("control socket I/O: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection.
    #[error("control socket closed by the peer")]
    Closed,
    /// No message within the receive timeout.
    #[error("no message within the receive timeout")]
    Timeout,
    /// The datagram was longer than [`MAX_MESSAGE_LEN`]; the kernel
    /// discarded its tail, so it was dropped whole. The connection stays
    /// usable.
    #[error("datagram of {len} bytes exceeds the {MAX_MESSAGE_LEN}-byte maximum and was dropped")]
    Truncated { len: usize },
    /// The datagram arrived whole but is not a valid message.
    #[error("undecodable control message (request id {request_id:?}): {error}")]
    Decode {
        /// The header's `request_id`, when the header was readable.
        request_id: Option<u32>,
        #[source]
        error: DecodeError,
    },
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The peer runs as neither root nor our own user.
    #[error("control socket peer uid {uid} (pid {pid}) is neither root nor uid {ours}")]
    PeerNotAllowed { uid: u32, pid: i32, ours: u32 },
}

impl ConnError {
    /// The [`Reply::Error`] a receiver sends back for this error, when
    /// there is one to send: undecodable messages (wrong version included)
    /// and oversized datagrams. The connection stays usable after them.
    pub fn error_reply(&self) -> Option<Message> {
        match self {
            ConnError::Decode { request_id, error } => {
                Some(Message::decode_error_reply(*request_id, error))
            }
            ConnError::Truncated { .. } => Some(Message::reply(
                0,
                Reply::Error {
                    code: ErrorCode::TooLarge,
                    message: self.to_string(),
                },
            )),
            _ => None,
        }
    }
}

/// Who may talk on the control socket: root, or the user we run as.
pub fn peer_allowed(peer_uid: u32, our_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == our_uid
}

/// The dataplane's listening control socket.
#[derive(Debug)]
pub struct ControlListener {
    fd: OwnedFd,
    path: PathBuf,
}

impl ControlListener {
    /// Binds `path`, mode 0600. A stale socket file left by a dead
    /// dataplane is removed; a socket some process still listens on, or a
    /// path that is not a socket, is an error (never deleted).
    ///
    /// The mode is set between `bind` and `listen`: until `listen`, connects
    /// are refused, so nobody can connect while the file still has the
    /// umask's mode.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<ControlListener> {
        let path = path.as_ref();
        let addr = sockaddr(path)?;
        remove_stale(path, &addr)?;
        let fd = seqpacket_socket()?;
        // SAFETY: `addr` is a fully initialised sockaddr_un and the length
        // passed is the number of its bytes in use; `fd` is an open socket.
        cvt(unsafe { libc::bind(fd.as_raw_fd(), addr.as_ptr(), addr.len) })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        // SAFETY: plain call on a bound socket we own.
        cvt(unsafe { libc::listen(fd.as_raw_fd(), 8) })?;
        Ok(ControlListener {
            fd,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the control process. A peer that is neither root nor our
    /// user is disconnected and reported as [`ConnError::PeerNotAllowed`].
    pub fn accept(&self) -> Result<ControlConn, ConnError> {
        let fd = loop {
            // SAFETY: null address pointers ask for no peer address;
            // SOCK_CLOEXEC is a valid accept4 flag. On success the result is
            // a new descriptor that nothing else owns.
            let r = unsafe {
                libc::accept4(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_CLOEXEC,
                )
            };
            match cvt(r) {
                // SAFETY: `r` is a fresh descriptor returned by accept4.
                Ok(r) => break unsafe { OwnedFd::from_raw_fd(r) },
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        ControlConn::checked(fd)
    }
}

impl AsFd for ControlListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One end of a control connection: the control process's after
/// [`connect`](ControlConn::connect), the dataplane's after
/// [`ControlListener::accept`].
#[derive(Debug)]
pub struct ControlConn {
    fd: OwnedFd,
    /// Fixed receive buffer, one maximum message long; the bytes of each
    /// message are zeroized as soon as it is decoded.
    buf: Zeroizing<Vec<u8>>,
    peer_uid: u32,
    peer_pid: i32,
    /// A zero receive timeout: receives do not wait at all. The kernel
    /// keeps `SO_RCVTIMEO` in scheduler ticks, so the smallest timeout it
    /// can be given waits one to two ticks (4-8 ms at 250 Hz) for a
    /// message that is not there: a daemon looking for events on each
    /// pass of its loop lost that on every pass.
    dont_wait: bool,
}

impl ControlConn {
    /// Connects to the dataplane's socket at `path` and checks that the
    /// process listening there is root or our user.
    pub fn connect(path: impl AsRef<Path>) -> Result<ControlConn, ConnError> {
        let addr = sockaddr(path.as_ref())?;
        let fd = seqpacket_socket()?;
        connect_fd(&fd, &addr)?;
        ControlConn::checked(fd)
    }

    fn checked(fd: OwnedFd) -> Result<ControlConn, ConnError> {
        let cred = peer_cred(&fd)?;
        // SAFETY: geteuid cannot fail and has no preconditions.
        let ours = unsafe { libc::geteuid() };
        if !peer_allowed(cred.uid, ours) {
            return Err(ConnError::PeerNotAllowed {
                uid: cred.uid,
                pid: cred.pid,
                ours,
            });
        }
        Ok(ControlConn {
            fd,
            buf: Zeroizing::new(vec![0; MAX_MESSAGE_LEN]),
            peer_uid: cred.uid,
            peer_pid: cred.pid,
            dont_wait: false,
        })
    }

    pub fn peer_uid(&self) -> u32 {
        self.peer_uid
    }

    pub fn peer_pid(&self) -> i32 {
        self.peer_pid
    }

    /// Encodes and sends one message; the encoded bytes are zeroized
    /// afterwards.
    pub fn send(&self, msg: &Message) -> Result<(), ConnError> {
        let datagram = wire::encode(msg)?;
        self.send_datagram(&datagram)
    }

    /// Sends raw bytes as one datagram: for tools and tests that speak to
    /// a peer in another protocol version or probe its decoder.
    pub fn send_datagram(&self, datagram: &[u8]) -> Result<(), ConnError> {
        loop {
            // SAFETY: the pointer and length describe `datagram`, which
            // outlives the call; MSG_NOSIGNAL turns a dead peer into EPIPE
            // instead of SIGPIPE.
            let n = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    datagram.as_ptr().cast(),
                    datagram.len(),
                    libc::MSG_NOSIGNAL,
                )
            };
            match cvt_size(n) {
                Ok(n) if n == datagram.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("sent {n} of {} bytes", datagram.len()),
                    )
                    .into())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(ConnError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives and decodes one message, waiting at most the receive
    /// timeout (see [`set_recv_timeout`](Self::set_recv_timeout)).
    /// Oversized datagrams ([`ConnError::Truncated`]) and undecodable ones
    /// ([`ConnError::Decode`]) are errors after which the connection stays
    /// usable; [`ConnError::error_reply`] gives the answer to send back.
    pub fn recv(&mut self) -> Result<Message, ConnError> {
        let len = self.recv_datagram()?;
        let datagram = &self.buf[..len];
        let result = wire::decode(datagram).map_err(|error| ConnError::Decode {
            request_id: Header::parse(datagram).ok().map(|h| h.request_id),
            error,
        });
        self.buf[..len].zeroize();
        result
    }

    /// Sets the receive timeout to `timeout` (`None`: forever), then
    /// receives one message as [`recv`](Self::recv) does. The timeout stays
    /// set for later calls.
    pub fn recv_timeout(&mut self, timeout: Option<Duration>) -> Result<Message, ConnError> {
        self.set_recv_timeout(timeout)?;
        self.recv()
    }

    /// How long [`recv`](Self::recv) waits; `None` waits forever, zero
    /// not at all.
    pub fn set_recv_timeout(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.dont_wait = timeout == Some(Duration::ZERO);
        if self.dont_wait {
            return Ok(());
        }
        let tv = match timeout {
            // Under a microsecond: a zero timeval would mean "forever".
            Some(d) => libc::timeval {
                tv_sec: d.as_secs().try_into().unwrap_or(libc::time_t::MAX),
                tv_usec: match (d.as_secs(), d.subsec_micros()) {
                    (0, 0) => 1,
                    (_, us) => us.into(),
                },
            },
            None => libc::timeval {
                tv_sec: 0,
                tv_usec: 0,
            },
        };
        // SAFETY: `tv` is a valid timeval and its exact size is passed.
        cvt(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
        Ok(())
    }

    /// One datagram into `self.buf`; returns its length.
    fn recv_datagram(&mut self) -> Result<usize, ConnError> {
        loop {
            let mut iov = libc::iovec {
                iov_base: self.buf.as_mut_ptr().cast(),
                iov_len: self.buf.len(),
            };
            // SAFETY: an all-zero msghdr is valid (no name, no control data).
            let mut hdr: libc::msghdr = unsafe { mem::zeroed() };
            hdr.msg_iov = &mut iov;
            hdr.msg_iovlen = 1;
            // SAFETY: `hdr` points at one iovec covering `self.buf`, which
            // outlives the call. With MSG_TRUNC the kernel returns the
            // datagram's real length even when it did not fit.
            let flags = if self.dont_wait {
                libc::MSG_TRUNC | libc::MSG_DONTWAIT
            } else {
                libc::MSG_TRUNC
            };
            let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut hdr, flags) };
            match cvt_size(n) {
                Ok(0) => return Err(ConnError::Closed),
                Ok(n) if n > self.buf.len() || hdr.msg_flags & libc::MSG_TRUNC != 0 => {
                    self.buf[..].zeroize();
                    return Err(ConnError::Truncated { len: n });
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(ConnError::Timeout),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(ConnError::Closed)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for ControlConn {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A `sockaddr_un` and the length of its used part.
struct UnixAddr {
    addr: libc::sockaddr_un,
    len: libc::socklen_t,
}

impl UnixAddr {
    fn as_ptr(&self) -> *const libc::sockaddr {
        (&self.addr as *const libc::sockaddr_un).cast()
    }
}

fn sockaddr(path: &Path) -> io::Result<UnixAddr> {
    let bytes = OsStr::as_bytes(path.as_os_str());
    // SAFETY: an all-zero sockaddr_un is valid and NUL-terminates any path
    // shorter than sun_path.
    let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
    if bytes.contains(&0) || bytes.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "control socket path {} is longer than {} bytes or contains NUL",
                path.display(),
                addr.sun_path.len() - 1
            ),
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, &src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = src as libc::c_char;
    }
    let len = mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + 1;
    Ok(UnixAddr {
        addr,
        len: len as libc::socklen_t,
    })
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd =
        cvt(unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` is a fresh descriptor returned by socket(2).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn connect_fd(fd: &OwnedFd, addr: &UnixAddr) -> io::Result<()> {
    loop {
        // SAFETY: `addr` is an initialised sockaddr_un of length `addr.len`.
        match cvt(unsafe { libc::connect(fd.as_raw_fd(), addr.as_ptr(), addr.len) }) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes a socket file nobody listens on; refuses to touch a live
/// socket or anything that is not a socket.
fn remove_stale(path: &Path, addr: &UnixAddr) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    let probe = seqpacket_socket()?;
    match connect_fd(&probe, addr) {
        Ok(()) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("a dataplane is already listening on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}

fn peer_cred(fd: &OwnedFd) -> io::Result<libc::ucred> {
    // SAFETY: an all-zero ucred is valid.
    let mut cred: libc::ucred = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is writable for `len` bytes, the size SO_PEERCRED fills.
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    })?;
    Ok(cred)
}

fn cvt(r: libc::c_int) -> io::Result<RawFd> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_or_the_same_user_may_be_a_peer() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(1000, 0));
    }

    #[test]
    fn a_socket_path_longer_than_sun_path_is_refused() {
        let long = PathBuf::from(format!("/tmp/{}", "x".repeat(200)));
        let err = ControlListener::bind(&long).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
