//! AF_XDP sockets on the kernel ABI: a frame queued from an arbitrary
//! offset inside its UMEM chunk (as encapsulation leaves it) is sent on a
//! veth and arrives intact on the peer; completions return the chunk.

mod common;

use std::time::{Duration, Instant};

use common::{require_root, NetNs};
use dataplane::io::xsk::{BindMode, Desc, Umem, XskSocket, FRAME_SIZE};

fn recv_raw(fd: i32, buf: &mut [u8], deadline: Instant) -> Option<usize> {
    while Instant::now() < deadline {
        // SAFETY: recv into a valid buffer on our own socket.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n > 0 {
            return Some(n as usize);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_frame_sent_from_the_middle_of_its_chunk_arrives_intact_on_the_peer() {
    if !require_root() {
        return;
    }
    let ns = NetNs::new("xsk");
    ns.run("ip link add xa type veth peer name xb && ip link set xa up && ip link set xb up");
    let (ia, ib) = (ns.ifindex("xa"), ns.ifindex("xb"));
    let peer_mac = ns.mac("xb");
    ns.enter();
    // A raw socket on the peer sees what arrives.
    // SAFETY: plain socket(2) call, checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        )
    };
    assert!(raw >= 0);
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: (libc::ETH_P_ALL as u16).to_be(),
        sll_ifindex: ib as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    // SAFETY: binding with a valid sockaddr_ll.
    let r = unsafe {
        libc::bind(
            raw,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(r, 0);

    let umem = Umem::new(256).unwrap();
    let mut sock = XskSocket::new(&umem, None, ia, 0, 256, BindMode::Copy).unwrap();
    // A second interface on the same UMEM (how a worker serves LAN and
    // WAN): the kernel takes the bind mode from the first socket.
    ns.run("ip link add xc type veth peer name xd && ip link set xc up && ip link set xd up");
    let second = XskSocket::new(&umem, Some(&sock), ns.ifindex("xc"), 0, 256, BindMode::Copy);
    assert!(second.is_ok(), "shared-UMEM bind: {:?}", second.err());
    // A frame for the peer with an experimental ethertype, at offset 300
    // of chunk 5.
    let mut frame = vec![0u8; 200];
    frame[..6].copy_from_slice(&peer_mac);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    for (i, b) in frame[14..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let addr = 5 * u64::from(FRAME_SIZE) + 300;
    // SAFETY: chunk 5 is ours: no ring has it.
    let chunk = unsafe { umem.chunk_mut(addr) }.unwrap();
    chunk[300..500].copy_from_slice(&frame);
    assert_eq!(
        sock.send(&[Desc {
            addr,
            len: 200,
            options: 0
        }]),
        1
    );
    sock.kick_tx();

    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut got = None;
    while let Some(n) = recv_raw(raw, &mut buf, deadline) {
        if buf[12..14] == [0x88, 0xb5] {
            got = Some(buf[..n].to_vec());
            break;
        }
    }
    assert_eq!(
        got.as_deref(),
        Some(&frame[..]),
        "frame did not arrive intact"
    );
    // The chunk comes back on the completion ring (its base or the address sent).
    let mut done = [0u64; 8];
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut n = 0;
    while n == 0 && Instant::now() < deadline {
        sock.kick_tx();
        n = sock.completed(&mut done);
    }
    assert_eq!(n, 1);
    assert_eq!(
        done[0] & !(u64::from(FRAME_SIZE) - 1),
        5 * u64::from(FRAME_SIZE)
    );
    // SAFETY: closing our own raw socket.
    unsafe { libc::close(raw) };
}
