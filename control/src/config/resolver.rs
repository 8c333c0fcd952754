//! Interface facts from the running kernel (the network namespace espada
//! runs in): index, addresses and MTU by netdev name.

use std::ffi::{CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::compile::InterfaceResolver;

/// Asks the kernel on every call; configs are compiled once at start.
pub struct KernelResolver;

impl InterfaceResolver for KernelResolver {
    fn ifindex(&self, name: &str) -> Option<u32> {
        let c = CString::new(name).ok()?;
        // SAFETY: a valid NUL-terminated string.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        (i != 0).then_some(i)
    }

    fn addrs(&self, name: &str) -> Vec<IpAddr> {
        let mut out = Vec::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list we free below.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return out;
        }
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let n = unsafe { CStr::from_ptr(ifa.ifa_name) };
            if n.to_bytes() != name.as_bytes() {
                continue;
            }
            // SAFETY: ifa_addr points at a sockaddr whose family says its
            // real type.
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    // SAFETY: family AF_INET: a sockaddr_in.
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        sin.sin_addr.s_addr,
                    ))));
                }
                libc::AF_INET6 => {
                    // SAFETY: family AF_INET6: a sockaddr_in6.
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                }
                _ => {}
            }
        }
        // SAFETY: freeing the list getifaddrs allocated, once.
        unsafe { libc::freeifaddrs(head) };
        out
    }

    fn mtu(&self, name: &str) -> Option<u16> {
        std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_an_index_and_an_address() {
        let r = KernelResolver;
        assert!(r.ifindex("lo").is_some());
        assert!(r.addrs("lo").contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert!(r.ifindex("no-such-if0").is_none());
    }
}
