//! Tunnel interfaces: one Linux TUN device per virtual tunnel interface
//! (`interface TunnelN`), so that the gateway's own traffic can use the
//! tunnel as it does on IOS. Seeds 000/001 check their VTI with
//! `ping FE80::23:3` from the router itself, over `Tunnel23`.
//!
//! What the kernel routes into the device is read by a thread of its own
//! and handed to a worker as a frame received on the device's ifindex;
//! the pipeline encrypts every such packet with the tunnel's crypto map
//! entry (route-based: whatever the kernel routed into `TunnelN` is that
//! tunnel's, link-local destinations included). Decrypted packets for
//! the gateway's own addresses whose answer would go back through a
//! tunnel are written into that tunnel's device, where the kernel
//! receives them as arriving on `TunnelN`.
//!
//! Only the gateway's own traffic takes this way: forwarded traffic never
//! touches a device. A write to a TUN device is one syscall per packet,
//! made by the worker; the kernel's own stack costs more per packet than
//! that anyway.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::counters::DropReason;
use crate::handoff::{HandoffSender, HANDOFF_FRAME};
use crate::spd::PolicyTag;
use crate::wire::ethernet;
use crate::worker::WorkerCounters;

/// Linux's limit on an interface name, without the terminating NUL.
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// The largest MTU a tunnel interface takes: a packet the kernel sends
/// into it must fit, with its Ethernet header, the frame a worker copies
/// it into (a 4 KiB UMEM frame less its headroom).
pub const MAX_MTU: u16 = 3000;

/// How often a reader looks at its stop flag while no packet comes.
const READER_POLL: Duration = Duration::from_millis(100);

/// Packets a reader takes per wake-up before it looks at its flag again.
const READ_BURST: usize = 64;

/// How long a reader waits for worker 0 to make room before it drops a
/// packet. While it waits it reads nothing, so the device's own queue
/// fills and the kernel's senders (TCP) slow down, as on a slow link.
const HANDOFF_PATIENCE: Duration = Duration::from_millis(5);

/// Why a tunnel interface could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error(
        "tunnel interface name {0:?}: 1 to {MAX_NAME_LEN} bytes, no '/', ':' or white space \
         (Linux interface names)"
    )]
    BadName(String),
    #[error("/dev/net/tun: {0} (is the tun module loaded, and are we root?)")]
    Open(io::Error),
    #[error(
        "tunnel interface {0}: cannot create its TUN device: {1} (an interface of that name \
         that is not a TUN device, or one another process holds?)"
    )]
    Create(String, io::Error),
    #[error("tunnel interface {0}: cannot set MTU {1}: {2}")]
    Mtu(String, u16, io::Error),
}

/// One TUN device, open for as long as this value lives (the kernel
/// removes a non-persistent device when its last descriptor closes).
#[derive(Debug)]
pub struct TunDevice {
    name: String,
    ifindex: u32,
    fd: OwnedFd,
}

impl TunDevice {
    /// Creates the device `name` (IFF_TUN, no packet information header:
    /// every read and write is one bare IP packet), non-blocking, with
    /// this MTU. The device is left down, without addresses: the control
    /// process configures it.
    pub fn create(name: &str, mtu: u16) -> Result<TunDevice, TunError> {
        if !valid_name(name) {
            return Err(TunError::BadName(name.to_string()));
        }
        // SAFETY: a plain open(2) of a NUL-terminated path.
        let raw = unsafe {
            libc::open(
                c"/dev/net/tun".as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(TunError::Open(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = ifreq_named(name);
        req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
        // SAFETY: TUNSETIFF reads (and may write back the name into) the
        // ifreq we pass, which lives across the call.
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } < 0 {
            return Err(TunError::Create(
                name.to_string(),
                io::Error::last_os_error(),
            ));
        }
        let cname = std::ffi::CString::new(name).map_err(|_| TunError::BadName(name.into()))?;
        // SAFETY: a NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(TunError::Create(
                name.to_string(),
                io::Error::last_os_error(),
            ));
        }
        let dev = TunDevice {
            name: name.to_string(),
            ifindex,
            fd,
        };
        dev.set_mtu(mtu)?;
        Ok(dev)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A device for tests that need no kernel: `/dev/null` stands in for
    /// the TUN device (it takes every write and gives no packet).
    #[doc(hidden)]
    pub fn stand_in(name: &str, ifindex: u32) -> io::Result<TunDevice> {
        Ok(TunDevice {
            name: name.to_string(),
            ifindex,
            fd: OwnedFd::from(std::fs::OpenOptions::new().write(true).open("/dev/null")?),
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sets the device's MTU: what the kernel's own packets into the
    /// tunnel may be before it fragments them or learns a smaller path.
    pub fn set_mtu(&self, mtu: u16) -> Result<(), TunError> {
        let err = |e| TunError::Mtu(self.name.clone(), mtu, e);
        // SAFETY: a plain socket(2), closed by the OwnedFd.
        let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a descriptor we just opened and own.
        let sock = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut req = ifreq_named(&self.name);
        req.ifr_ifru.ifru_mtu = libc::c_int::from(mtu);
        // SAFETY: SIOCSIFMTU reads the ifreq we pass.
        if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &mut req) } < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Hands one IP packet to the kernel as received on this device.
    /// Never blocks; `false` when the kernel did not take it whole (the
    /// device is down, or its queue is full).
    pub fn deliver(&self, packet: &[u8]) -> bool {
        // SAFETY: write(2) reads `packet.len()` bytes from a live slice.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        usize::try_from(n).is_ok_and(|n| n == packet.len())
    }

    /// One packet the kernel routed into the device, if one waits.
    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: read(2) writes at most `buf.len()` bytes into a live slice.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Waits up to `timeout` for a packet to read.
    fn wait(&self, timeout: Duration) {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll(2) on one pollfd that lives across the call.
        unsafe { libc::poll(&mut p, 1, ms) };
    }
}

/// Linux interface names: 1 to 15 bytes, no '/', ':' or white space.
pub fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

fn ifreq_named(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.bytes().take(MAX_NAME_LEN)) {
        *d = s as libc::c_char;
    }
    req
}

/// One tunnel interface as the workers see it: its device and the crypto
/// map entry every packet through it belongs to.
#[derive(Debug, Clone)]
pub struct TunnelPort {
    pub device: Arc<TunDevice>,
    pub tag: PolicyTag,
}

/// The tunnel interfaces, as each worker holds them (replaced whole by the
/// management thread). A handful at most: looked up by a linear scan.
#[derive(Debug, Clone, Default)]
pub struct TunnelPorts {
    ports: Vec<TunnelPort>,
}

impl TunnelPorts {
    pub fn new(ports: Vec<TunnelPort>) -> TunnelPorts {
        TunnelPorts { ports }
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// The crypto map entry of the tunnel interface with this ifindex.
    pub fn tag_of(&self, ifindex: u32) -> Option<PolicyTag> {
        self.ports
            .iter()
            .find(|p| p.device.ifindex == ifindex)
            .map(|p| p.tag)
    }

    /// The ifindex of the tunnel interface of this crypto map entry.
    pub fn ifindex_of(&self, tag: PolicyTag) -> Option<u32> {
        self.ports
            .iter()
            .find(|p| p.tag == tag)
            .map(|p| p.device.ifindex)
    }

    pub fn device(&self, ifindex: u32) -> Option<&TunDevice> {
        self.ports
            .iter()
            .find(|p| p.device.ifindex == ifindex)
            .map(|p| &*p.device)
    }

    pub fn iter(&self) -> impl Iterator<Item = &TunnelPort> {
        self.ports.iter()
    }
}

/// The thread that reads one device: every packet becomes an Ethernet
/// frame (zero addresses; only its type is read) handed to worker 0 as
/// received on the device. Stops, and is joined, when dropped.
pub struct TunReader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TunReader {
    /// Starts reading `device`. A frame worker 0 has no room for within
    /// [`HANDOFF_PATIENCE`] is dropped and counted in `drops` (worker 0's
    /// counters) as [`DropReason::HandoffFull`].
    pub fn spawn(
        device: Arc<TunDevice>,
        to: HandoffSender,
        drops: Arc<WorkerCounters>,
    ) -> io::Result<TunReader> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(format!("tun {}", device.name))
            .spawn(move || read_loop(&device, &to, &drops, &flag))?;
        Ok(TunReader {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TunReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_loop(device: &TunDevice, to: &HandoffSender, counters: &WorkerCounters, stop: &AtomicBool) {
    let hl = ethernet::HEADER_LEN;
    let mut buf = vec![0u8; HANDOFF_FRAME];
    const _: () = assert!(ethernet::HEADER_LEN + MAX_MTU as usize + 256 <= HANDOFF_FRAME);
    // A packet longer than a frame holds is read whole here (a TUN read
    // truncates, it does not split) and dropped.
    let mut spill = vec![0u8; usize::from(u16::MAX) + 1];
    while !stop.load(Ordering::Relaxed) {
        device.wait(READER_POLL);
        for _ in 0..READ_BURST {
            let n = match device.read(&mut spill) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    // The device is gone (`ip link del`) or broken: poll
                    // says readable at once from now on, so wait here
                    // rather than spin until the reader is stopped.
                    std::thread::sleep(READER_POLL);
                    break;
                }
            };
            let ethertype = match spill[..n].first().map(|b| b >> 4) {
                Some(4) => ethernet::ethertype::IPV4,
                Some(6) => ethernet::ethertype::IPV6,
                _ => {
                    counters.pipeline.drops.inc(DropReason::Malformed);
                    continue;
                }
            };
            if n > usize::from(MAX_MTU) {
                counters.pipeline.drops.inc(DropReason::TooBig);
                continue;
            }
            buf[..12].fill(0);
            buf[12..hl].copy_from_slice(&ethertype.to_be_bytes());
            buf[hl..hl + n].copy_from_slice(&spill[..n]);
            if !send_patiently(to, device.ifindex, &buf[..hl + n]) {
                counters.pipeline.drops.inc(DropReason::HandoffFull);
            }
        }
    }
}

/// Hands a frame to worker 0, waiting up to [`HANDOFF_PATIENCE`] for room.
fn send_patiently(to: &HandoffSender, ifindex: u32, frame: &[u8]) -> bool {
    let give_up = std::time::Instant::now() + HANDOFF_PATIENCE;
    loop {
        if to.send(0, ifindex, frame) {
            return true;
        }
        if std::time::Instant::now() >= give_up {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_what_linux_takes() {
        for good in ["Tunnel23", "Tunnel0", "t", "a-b_c.d", "Tunnel123456789"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "",
            "Tunnel1234567890",
            "a/b",
            "a b",
            "a:1",
            ".",
            "..",
            "a\0b",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn ports_are_found_by_ifindex_and_by_entry() {
        let dev = Arc::new(TunDevice::stand_in("Tunnel23", 42).unwrap());
        let tag = PolicyTag { map: 3, seq: 65536 };
        let ports = TunnelPorts::new(vec![TunnelPort { device: dev, tag }]);
        assert_eq!(ports.tag_of(42), Some(tag));
        assert_eq!(ports.tag_of(41), None);
        assert_eq!(ports.ifindex_of(tag), Some(42));
        assert_eq!(ports.ifindex_of(PolicyTag { map: 3, seq: 1 }), None);
        assert_eq!(ports.device(42).map(TunDevice::name), Some("Tunnel23"));
    }
}
