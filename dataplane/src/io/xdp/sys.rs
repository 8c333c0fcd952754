//! The few kernel calls the loader needs that aya does not offer:
//! `BPF_PROG_TEST_RUN`, program and link look-ups by id, `BPF_LINK_DETACH`,
//! and the rtnetlink `IFLA_XDP` query and detach that `bpf_xdp_query` /
//! `bpf_xdp_detach` make in libbpf. Each `bpf(2)` command gets its own
//! `#[repr(C)]` prefix of `union bpf_attr`: the kernel zero-extends a
//! shorter attribute, so only the fields a command reads are spelled out.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

// enum bpf_cmd (uapi/linux/bpf.h).
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `BPF_PROG_TYPE_XDP`.
pub const BPF_PROG_TYPE_XDP: u32 = 6;
/// `BPF_LINK_TYPE_XDP`.
const BPF_LINK_TYPE_XDP: u32 = 6;

// uapi/linux/if_link.h
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const IFLA_XDP_EXPECTED_FD: u16 = 8;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `XDP_FLAGS_*`: the attach mode of a program, and "replace only if the
/// attached program is the one named by `IFLA_XDP_EXPECTED_FD`".
pub const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
pub const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
pub const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
const XDP_FLAGS_REPLACE: u32 = 1 << 4;

fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, writable `#[repr(C)]` prefix of `union
    // bpf_attr` for `cmd`, and we pass its exact size; pointers inside it
    // (if any) are set by the caller to buffers that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut A).cast::<libc::c_void>(),
            size_of::<A>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned_fd(r: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us and nobody
    // else owns it.
    unsafe { OwnedFd::from_raw_fd(r as RawFd) }
}

/// `struct xdp_md`, the context a test run starts from.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// Runs an XDP program once over `frame` as if it arrived on
/// `ifindex`/`rx_queue` (which must exist in the caller's network
/// namespace); returns the program's return value.
pub fn prog_test_run(
    prog: BorrowedFd<'_>,
    frame: &[u8],
    ifindex: u32,
    rx_queue: u32,
) -> io::Result<u32> {
    let len =
        u32::try_from(frame.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let ctx = XdpMd {
        data_end: len,
        ingress_ifindex: ifindex,
        rx_queue_index: rx_queue,
        ..XdpMd::default()
    };
    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: len,
        data_in: frame.as_ptr() as u64,
        repeat: 1,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: &ctx as *const XdpMd as u64,
        ..TestRunAttr::default()
    };
    bpf(BPF_PROG_TEST_RUN, &mut attr)?;
    Ok(attr.retval)
}

#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
}

/// Deletes `key` from a map (aya's `XskMap` has no removal); an absent key
/// is not an error.
pub fn map_delete<K>(map: BorrowedFd<'_>, key: &K) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: (key as *const K) as u64,
    };
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// `prog_id` / `link_id`, `next_id`, `open_flags`: the same prefix serves
/// `*_GET_FD_BY_ID` and `*_GET_NEXT_ID`.
#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

#[repr(C)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info`, up to the name.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32,
    jited_prog_insns: u64,
    xlated_prog_insns: u64,
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; 16],
}

/// The head of `struct bpf_link_info`, with the `xdp` member of its union.
#[repr(C)]
#[derive(Default)]
struct LinkInfoHead {
    link_type: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    xdp_ifindex: u32,
    _pad2: u32,
}

fn obj_info<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let mut attr = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: size_of::<T>() as u32,
        info: (info as *mut T) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// A loaded program as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgInfo {
    pub prog_type: u32,
    pub name: String,
}

/// Opens a program by its id (it may have gone away meanwhile: ENOENT).
pub fn prog_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = IdAttr {
        id,
        ..IdAttr::default()
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned_fd)
}

pub fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    let mut info = ProgInfoHead::default();
    obj_info(fd, &mut info)?;
    let end = info.name.iter().position(|&b| b == 0).unwrap_or(16);
    Ok(ProgInfo {
        prog_type: info.prog_type,
        name: String::from_utf8_lossy(&info.name[..end]).into_owned(),
    })
}

/// Finds the XDP link that holds program `prog_id` on `ifindex` and
/// detaches it (`BPF_LINK_DETACH`), whoever holds the link's fd. Returns
/// whether one was found.
pub fn detach_xdp_link(ifindex: u32, prog_id: u32) -> io::Result<bool> {
    let mut start = 0;
    loop {
        let mut next = IdAttr {
            id: start,
            ..IdAttr::default()
        };
        match bpf(BPF_LINK_GET_NEXT_ID, &mut next) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        }
        start = next.next_id;
        let mut by_id = IdAttr {
            id: start,
            ..IdAttr::default()
        };
        let fd = match bpf(BPF_LINK_GET_FD_BY_ID, &mut by_id) {
            Ok(r) => owned_fd(r),
            // Released between the two calls.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let mut info = LinkInfoHead::default();
        obj_info(fd.as_fd(), &mut info)?;
        if info.link_type == BPF_LINK_TYPE_XDP
            && info.prog_id == prog_id
            && info.xdp_ifindex == ifindex
        {
            let mut detach = [fd.as_raw_fd() as u32];
            bpf(BPF_LINK_DETACH, &mut detach)?;
            return Ok(true);
        }
    }
}

/// The XDP programs attached to an interface, per mode (`XDP_FLAGS_*_MODE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpAttached {
    pub progs: Vec<(u32, u32)>,
}

/// A route-netlink socket for one request and its answer.
struct Rtnl {
    fd: OwnedFd,
}

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;

impl Rtnl {
    fn open() -> io::Result<Rtnl> {
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        Ok(Rtnl {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Sends one `ifinfomsg` request for `ifindex` with `attrs` and returns
    /// the reply's first message (type and payload after the netlink
    /// header); an `NLMSG_ERROR` carrying an errno becomes `Err`.
    fn request(
        &self,
        msg_type: u16,
        flags: u16,
        ifindex: u32,
        attrs: &[u8],
    ) -> io::Result<(u16, Vec<u8>)> {
        let len = NLMSG_HDRLEN + IFINFOMSG_LEN + attrs.len();
        let mut req = Vec::with_capacity(len);
        req.extend_from_slice(&(len as u32).to_ne_bytes());
        req.extend_from_slice(&msg_type.to_ne_bytes());
        req.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
        req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
                                                    // struct ifinfomsg: family, pad, type, index, flags, change
        req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        req.extend_from_slice(&(ifindex as i32).to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(attrs);

        // SAFETY: zeroed is a valid sockaddr_nl (all integers); pid 0 is the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sending our buffer to a valid address of the right size.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 32 * 1024];
        // SAFETY: receiving into our own buffer of that length.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let reply = &buf[..n as usize];
        let short = || io::Error::new(io::ErrorKind::InvalidData, "short netlink reply");
        let head = reply.get(..NLMSG_HDRLEN).ok_or_else(short)?;
        let msg_len = (u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize)
            .clamp(NLMSG_HDRLEN, reply.len());
        let kind = u16::from_ne_bytes([head[4], head[5]]);
        let body = &reply[NLMSG_HDRLEN..msg_len];
        if kind == libc::NLMSG_ERROR as u16 {
            let e = body.get(..4).ok_or_else(short)?;
            let errno = i32::from_ne_bytes([e[0], e[1], e[2], e[3]]);
            if errno != 0 {
                return Err(io::Error::from_raw_os_error(-errno));
            }
        }
        Ok((kind, body.to_vec()))
    }
}

/// Walks netlink attributes: (type without flags, payload).
fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, payload))
    })
}

fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// The XDP programs attached to `ifindex` in the caller's namespace
/// (libbpf's `bpf_xdp_query`).
pub fn xdp_query(ifindex: u32) -> io::Result<XdpAttached> {
    let (kind, body) = Rtnl::open()?.request(libc::RTM_GETLINK, 0, ifindex, &[])?;
    let mut found = XdpAttached::default();
    if kind != libc::RTM_NEWLINK || body.len() < IFINFOMSG_LEN {
        return Ok(found);
    }
    for (t, xdp) in attrs(&body[IFINFOMSG_LEN..]) {
        if t != IFLA_XDP {
            continue;
        }
        for (t, v) in attrs(xdp) {
            let mode = match t {
                IFLA_XDP_DRV_PROG_ID => XDP_FLAGS_DRV_MODE,
                IFLA_XDP_SKB_PROG_ID => XDP_FLAGS_SKB_MODE,
                IFLA_XDP_HW_PROG_ID => XDP_FLAGS_HW_MODE,
                _ => continue,
            };
            if let Ok(id) = <[u8; 4]>::try_from(v) {
                found.progs.push((mode, u32::from_ne_bytes(id)));
            }
        }
    }
    Ok(found)
}

/// Detaches the program attached through netlink in `mode` on `ifindex`,
/// only if it is still `expected` (so a program attached meanwhile by
/// someone else is left alone). A program held by a BPF link cannot be
/// detached this way: the kernel answers EBUSY.
pub fn xdp_detach_netlink(ifindex: u32, mode: u32, expected: BorrowedFd<'_>) -> io::Result<()> {
    let mut inner = Vec::new();
    attr(&mut inner, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
    attr(
        &mut inner,
        IFLA_XDP_FLAGS,
        &(mode | XDP_FLAGS_REPLACE).to_ne_bytes(),
    );
    attr(
        &mut inner,
        IFLA_XDP_EXPECTED_FD,
        &expected.as_raw_fd().to_ne_bytes(),
    );
    let mut outer = Vec::new();
    attr(&mut outer, IFLA_XDP | NLA_F_NESTED, &inner);
    Rtnl::open()?
        .request(libc::RTM_SETLINK, libc::NLM_F_ACK as u16, ifindex, &outer)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_walked_back() {
        let mut buf = Vec::new();
        attr(&mut buf, 7, &[1, 2, 3]);
        attr(&mut buf, 9 | NLA_F_NESTED, &[4, 5, 6, 7]);
        assert_eq!(buf.len(), 16);
        let got: Vec<_> = attrs(&buf).collect();
        assert_eq!(got, vec![(7, &[1u8, 2, 3][..]), (9, &[4u8, 5, 6, 7][..])]);
    }

    #[test]
    fn a_truncated_attribute_ends_the_walk() {
        let buf = [8u8, 0, 1, 0, 1, 2];
        assert_eq!(attrs(&buf).count(), 0);
    }

    #[test]
    fn attribute_prefixes_match_the_kernel_layout() {
        assert_eq!(size_of::<XdpMd>(), 24);
        assert_eq!(size_of::<TestRunAttr>(), 80);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_in), 48);
        assert_eq!(std::mem::offset_of!(ProgInfoHead, name), 64);
        assert_eq!(std::mem::offset_of!(LinkInfoHead, xdp_ifindex), 16);
    }
}
