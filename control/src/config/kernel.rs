//! The kernel's interfaces as an [`InterfaceResolver`]: names, indexes and
//! addresses read once with `getifaddrs(3)` and `if_nametoindex(3)`.
//!
//! A snapshot, not a live view: a config is compiled against the machine
//! as it is at that moment; `espada run` takes a new snapshot and
//! recompiles when rtnetlink says an address changed (`addrwatch`).

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::resolve::{InterfaceResolver, ResolvedInterface};

/// Every interface of this network namespace, with its addresses in the
/// order the kernel lists them.
#[derive(Debug, Clone, Default)]
pub struct KernelInterfaces {
    by_name: HashMap<String, ResolvedInterface>,
}

impl KernelInterfaces {
    /// Reads the interfaces now.
    pub fn snapshot() -> io::Result<KernelInterfaces> {
        let mut by_name: HashMap<String, ResolvedInterface> = HashMap::new();
        let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
        // SAFETY: getifaddrs fills `head` with a list we free below.
        if unsafe { libc::getifaddrs(&mut head) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cur = head;
        while !cur.is_null() {
            // SAFETY: `cur` is a node of the list getifaddrs returned, valid
            // until freeifaddrs; its name is a NUL-terminated string.
            let ifa = unsafe { &*cur };
            cur = ifa.ifa_next;
            if ifa.ifa_name.is_null() {
                continue;
            }
            let cname = unsafe { CStr::from_ptr(ifa.ifa_name) };
            let Ok(name) = cname.to_str() else { continue };
            if !by_name.contains_key(name) {
                // SAFETY: a NUL-terminated name.
                let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
                if ifindex == 0 {
                    continue;
                }
                by_name.insert(
                    name.to_string(),
                    ResolvedInterface {
                        ifindex,
                        addrs: Vec::new(),
                    },
                );
            }
            // SAFETY: a non-null ifa_addr points to a sockaddr whose family
            // says which sockaddr_* it is.
            let addr = unsafe { sockaddr_ip(ifa.ifa_addr) };
            if let (Some(a), Some(entry)) = (addr, by_name.get_mut(name)) {
                entry.addrs.push(a);
            }
        }
        // SAFETY: frees the list getifaddrs allocated, exactly once.
        unsafe { libc::freeifaddrs(head) };
        Ok(KernelInterfaces { by_name })
    }
}

impl KernelInterfaces {
    /// Every address of every interface.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.by_name
            .values()
            .flat_map(|i| i.addrs.iter().copied())
            .collect()
    }
}

/// The IP address in a sockaddr, if it holds one.
///
/// # Safety
/// `sa` is null or points to a valid sockaddr of the size its family implies.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

impl InterfaceResolver for KernelInterfaces {
    fn resolve(&self, name: &str) -> Option<ResolvedInterface> {
        self.by_name.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_interface_resolves_with_its_address() {
        let k = KernelInterfaces::snapshot().unwrap();
        let lo = k.resolve("lo").expect("every namespace has lo");
        assert!(lo.ifindex >= 1);
        assert!(
            lo.addrs.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{lo:?}"
        );
        assert!(k.resolve("no-such-if0").is_none());
        assert!(k.addresses().contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
