//! The NAT the engines' in-memory tests put in front of peer A (both IKE
//! versions): A's ports appear at [`NAT_ADDR`] shifted by the test's
//! current shift, and a reboot of the NAT is a new shift.

use std::net::{IpAddr, SocketAddr};

/// The NAT's outside address, as peer B sees A.
pub const NAT_ADDR: &str = "198.18.0.99";

/// Where A's datagram from `a` appears to come from.
pub fn nat_out(a: SocketAddr, shift: u16) -> SocketAddr {
    SocketAddr::new(NAT_ADDR.parse().expect("a valid literal"), a.port() + shift)
}

/// Where the NAT sends a datagram for its port `a`: A's port it maps
/// there now, or nowhere (`None`) for a port of a mapping it forgot.
pub fn nat_in(a: SocketAddr, real: IpAddr, shift: u16) -> Option<SocketAddr> {
    let port = a.port().checked_sub(shift)?;
    [500, 4500]
        .contains(&port)
        .then(|| SocketAddr::new(real, port))
}
