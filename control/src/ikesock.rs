//! The daemon's IKE sockets: UDP 500 and 4500 on each local address the
//! crypto maps use. One socket per (address, port), so every datagram
//! arrives already knowing which of our addresses it was sent to, and
//! every answer leaves from the address the peer knows us by.
//!
//! On 4500 (RFC 3948 §2.2) an IKE message follows a four-byte zero
//! non-ESP marker, a lone 0xFF byte is a NAT keepalive, and anything else
//! is UDP-encapsulated ESP. The dataplane's XDP program takes the ESP
//! before the kernel sees it, so what reaches this socket is IKE and
//! keepalives, and ESP that came in IP fragments (a later fragment has no
//! port to tell it from IKE's, so the kernel takes and reassembles them):
//! that ESP goes back to the dataplane ([`Received::Esp`]). The marker is
//! stripped on receive and added on send here, and the engine only ever
//! sees IKE messages.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

/// IKE's port (RFC 2408 §2.5.2, RFC 7296 §2).
pub const IKE_PORT: u16 = 500;
/// IKE and UDP-encapsulated ESP after NAT traversal (RFC 3947, 3948).
pub const NAT_T_PORT: u16 = 4500;

/// Largest IKE datagram accepted (fragmented IKE stays far below; a
/// bigger one is truncated by the kernel and dropped as malformed).
const MAX_DATAGRAM: usize = 65_535;

const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// What one socket received that the engine needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// An IKE message (marker stripped).
    Ike(&'a [u8]),
    /// A NAT keepalive (RFC 3948 §2.3): nothing to do but note the peer
    /// is alive.
    Keepalive,
    /// UDP-encapsulated ESP (a non-zero SPI where the marker would be,
    /// and at least a sequence number after it), for the dataplane.
    Esp(&'a [u8]),
    /// A datagram too short to be anything: counted and dropped.
    Other,
}

/// Splits what arrived on a socket into IKE, keepalive or other.
pub fn classify(nat_t: bool, data: &[u8]) -> Received<'_> {
    if !nat_t {
        return Received::Ike(data);
    }
    match data {
        [0xff] => Received::Keepalive,
        [0, 0, 0, 0, rest @ ..] if !rest.is_empty() => Received::Ike(rest),
        [0, 0, 0, 0, ..] => Received::Other,
        [_, _, _, _, _, _, _, _, ..] => Received::Esp(data),
        _ => Received::Other,
    }
}

struct Sock {
    local: SocketAddr,
    nat_t: bool,
    socket: UdpSocket,
}

/// Every IKE socket of the daemon.
pub struct IkeSockets {
    socks: Vec<Sock>,
    ike_port: u16,
    nat_t_port: u16,
    buf: Box<[u8]>,
    /// Datagrams on 4500 that were neither IKE, keepalives nor ESP.
    pub dropped: u64,
}

impl IkeSockets {
    /// Binds `ike_port` and `nat_t_port` on each address, non-blocking.
    /// Tests pass port 0 for kernel-chosen ports.
    pub fn bind(locals: &[IpAddr], ike_port: u16, nat_t_port: u16) -> io::Result<IkeSockets> {
        let mut socks = Vec::new();
        for &addr in locals {
            socks.extend(Self::bind_one(addr, ike_port, nat_t_port)?);
        }
        Ok(IkeSockets {
            socks,
            ike_port,
            nat_t_port,
            buf: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            dropped: 0,
        })
    }

    /// The IKE and NAT-T sockets of one address.
    fn bind_one(addr: IpAddr, ike_port: u16, nat_t_port: u16) -> io::Result<[Sock; 2]> {
        let one = |port: u16, nat_t: bool| -> io::Result<Sock> {
            let socket = UdpSocket::bind(SocketAddr::new(addr, port)).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("binding IKE socket {}: {e}", SocketAddr::new(addr, port)),
                )
            })?;
            socket.set_nonblocking(true)?;
            Ok(Sock {
                local: socket.local_addr()?,
                nat_t,
                socket,
            })
        };
        Ok([one(ike_port, false)?, one(nat_t_port, true)?])
    }

    /// Follows a change of the local addresses (a DHCP re-lease): the
    /// sockets of addresses no longer in `locals` are closed, those of
    /// new ones bound; the others stay as they are. An address that
    /// cannot be bound is reported, and the others are still served.
    pub fn rebind(&mut self, locals: &[IpAddr]) -> io::Result<()> {
        self.socks.retain(|s| locals.contains(&s.local.ip()));
        let mut failed = Ok(());
        for &addr in locals {
            if self.socks.iter().any(|s| s.local.ip() == addr) {
                continue;
            }
            match Self::bind_one(addr, self.ike_port, self.nat_t_port) {
                Ok(two) => self.socks.extend(two),
                Err(e) => failed = Err(e),
            }
        }
        failed
    }

    /// The bound addresses and whether each is the NAT-T port.
    pub fn locals(&self) -> impl Iterator<Item = (SocketAddr, bool)> + '_ {
        self.socks.iter().map(|s| (s.local, s.nat_t))
    }

    /// File descriptors to poll for input.
    pub fn fds(&self) -> Vec<RawFd> {
        self.socks.iter().map(|s| s.socket.as_raw_fd()).collect()
    }

    /// Reads everything waiting on every socket, handing each IKE message
    /// to `ike(local, remote, message)`, each keepalive to
    /// `keepalive(local, remote)` and each ESP datagram to `esp(local,
    /// remote, esp)`. Returns how many datagrams were read.
    pub fn drain(
        &mut self,
        mut ike: impl FnMut(SocketAddr, SocketAddr, &[u8]),
        mut keepalive: impl FnMut(SocketAddr, SocketAddr),
        mut esp: impl FnMut(SocketAddr, SocketAddr, &[u8]),
    ) -> usize {
        let mut n = 0;
        for s in &self.socks {
            // Bounded so one flooded socket cannot starve the others.
            for _ in 0..256 {
                let Ok((len, remote)) = s.socket.recv_from(&mut self.buf) else {
                    break;
                };
                n += 1;
                match classify(s.nat_t, &self.buf[..len]) {
                    Received::Ike(m) => ike(s.local, remote, m),
                    Received::Keepalive => keepalive(s.local, remote),
                    Received::Esp(e) => esp(s.local, remote, e),
                    Received::Other => self.dropped += 1,
                }
            }
        }
        n
    }

    /// Sends an IKE message from `local` (one of the bound addresses) to
    /// `remote`, adding the non-ESP marker on the NAT-T port.
    pub fn send(&self, local: SocketAddr, remote: SocketAddr, message: &[u8]) -> io::Result<()> {
        let s = self.find(local)?;
        if s.nat_t {
            let mut framed = Vec::with_capacity(4 + message.len());
            framed.extend_from_slice(&NON_ESP_MARKER);
            framed.extend_from_slice(message);
            s.socket.send_to(&framed, remote)?;
        } else {
            s.socket.send_to(message, remote)?;
        }
        Ok(())
    }

    /// Sends a NAT keepalive (a lone 0xFF, RFC 3948 §2.3) from the NAT-T
    /// socket of `local`.
    pub fn send_keepalive(&self, local: SocketAddr, remote: SocketAddr) -> io::Result<()> {
        self.find(local)?.socket.send_to(&[0xff], remote)?;
        Ok(())
    }

    fn find(&self, local: SocketAddr) -> io::Result<&Sock> {
        self.socks.iter().find(|s| s.local == local).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("no IKE socket bound to {local}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nat_t_port_strips_the_marker_and_tells_keepalives_from_esp() {
        assert_eq!(
            classify(false, &[0, 0, 0, 0, 1]),
            Received::Ike(&[0, 0, 0, 0, 1])
        );
        assert_eq!(classify(true, &[0, 0, 0, 0, 1, 2]), Received::Ike(&[1, 2]));
        assert_eq!(classify(true, &[0xff]), Received::Keepalive);
        // ESP: a non-zero SPI where the marker would be, and a sequence
        // number.
        let esp = [0, 0, 1, 0, 9, 9, 9, 9];
        assert_eq!(classify(true, &esp), Received::Esp(&esp));
        assert_eq!(classify(true, &esp[..7]), Received::Other);
        assert_eq!(classify(false, &esp), Received::Ike(&esp), "not on 500");
        assert_eq!(classify(true, &[0, 0, 0, 0]), Received::Other);
        assert_eq!(classify(true, &[]), Received::Other);
    }

    #[test]
    fn messages_cross_both_ports_with_the_marker_handled() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let a = IkeSockets::bind(&[lo], 0, 0).unwrap();
        let mut b = IkeSockets::bind(&[lo], 0, 0).unwrap();
        let a_socks: Vec<_> = a.locals().collect();
        let b_socks: Vec<_> = b.locals().collect();
        for ((from, _), (to, _)) in a_socks.iter().zip(&b_socks) {
            a.send(*from, *to, b"hello ike").unwrap();
        }
        a.send_keepalive(a_socks[1].0, b_socks[1].0).unwrap();
        let mut got = Vec::new();
        let mut alive = 0;
        let t0 = std::time::Instant::now();
        while got.len() < 2 || alive < 1 {
            assert!(t0.elapsed() < std::time::Duration::from_secs(2), "{got:?}");
            b.drain(
                |local, remote, m| got.push((local, remote, m.to_vec())),
                |_, _| alive += 1,
                |_, _, _| panic!("no ESP was sent"),
            );
        }
        got.sort();
        let mut want = vec![
            (b_socks[0].0, a_socks[0].0, b"hello ike".to_vec()),
            (b_socks[1].0, a_socks[1].0, b"hello ike".to_vec()),
        ];
        want.sort();
        assert_eq!(got, want);
        assert!(a.send(b_socks[0].0, a_socks[0].0, b"x").is_err());
    }

    #[test]
    fn rebinding_closes_the_sockets_of_lost_addresses_and_opens_new_ones() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo2: IpAddr = "127.0.0.2".parse().unwrap();
        let mut s = IkeSockets::bind(&[lo], 0, 0).unwrap();
        let kept: Vec<_> = s.locals().collect();
        s.rebind(&[lo, lo2]).unwrap();
        let now: Vec<_> = s.locals().collect();
        assert_eq!(now.len(), 4);
        assert_eq!(&now[..2], &kept[..], "the sockets of a kept address stay");
        assert!(now[2..].iter().all(|(a, _)| a.ip() == lo2));
        s.rebind(&[lo2]).unwrap();
        assert!(s.locals().all(|(a, _)| a.ip() == lo2));
        assert_eq!(s.fds().len(), 2);
        // An address this machine does not have is an error; the rest stay.
        assert!(s.rebind(&[lo2, "192.0.2.1".parse().unwrap()]).is_err());
        assert_eq!(s.fds().len(), 2);
    }
}
