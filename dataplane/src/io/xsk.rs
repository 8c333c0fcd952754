//! AF_XDP sockets over one shared UMEM, on the kernel ABI directly
//! (`linux/if_xdp.h` through `libc`).
//!
//! Why not a wrapper crate: ESP encapsulation writes the outer headers in
//! the frame's headroom, so a transmitted packet starts earlier in its
//! frame than it was received. The kernel allows any start inside a chunk
//! (aligned mode checks only that the packet stays within its chunk), but
//! xsk-rs fixes a frame's data start, which would cost a copy per packet.
//!
//! Layout: the UMEM is `frames` chunks of `FRAME_SIZE` bytes. The kernel
//! writes received packets at chunk base + `XDP_PACKET_HEADROOM` (256) +
//! our UMEM headroom, which leaves room for the ESP, UDP, IP and Ethernet
//! headers encapsulation prepends. Every chunk is owned by exactly one of:
//! the worker's free list, a fill ring, an RX ring, a TX ring, a completion
//! ring; the worker moves addresses between them, never copies frames.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use thiserror::Error;

/// Bytes per UMEM chunk: one page, the usual aligned-mode size.
pub const FRAME_SIZE: u32 = 4096;
/// Where the kernel starts a received packet in its chunk, before our own
/// headroom (`XDP_PACKET_HEADROOM` in `linux/bpf.h`).
pub const XDP_PACKET_HEADROOM: u32 = 256;
/// Extra headroom we ask for in front of every received packet, on top of
/// the kernel's 256: encapsulation needs up to 14 + 40 + 8 + 8 + 16 bytes.
pub const UMEM_HEADROOM: u32 = 0;

/// Why an AF_XDP socket could not be set up.
#[derive(Debug, Error)]
pub enum XskError {
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        source: io::Error,
    },
    #[error("ring size {0} is not a power of two between 64 and 65536")]
    RingSize(u32),
    #[error("UMEM of {0} frames is too small or too large")]
    UmemSize(u32),
}

fn os(what: &'static str) -> XskError {
    XskError::Os {
        what,
        source: io::Error::last_os_error(),
    }
}

/// The packet memory shared by all sockets of a worker.
pub struct Umem {
    area: NonNull<u8>,
    len: usize,
    frames: u32,
}

// SAFETY: the UMEM is plain memory; which chunk may be touched by whom is
// governed by ring ownership (see the module doc), not by the type.
unsafe impl Send for Umem {}

impl Umem {
    /// Maps `frames` chunks of zeroed memory.
    pub fn new(frames: u32) -> Result<Umem, XskError> {
        if !(64..=1 << 20).contains(&frames) {
            return Err(XskError::UmemSize(frames));
        }
        let len = frames as usize * FRAME_SIZE as usize;
        // SAFETY: anonymous private mapping, no file; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os("mmap UMEM"));
        }
        let area = NonNull::new(p.cast::<u8>()).ok_or_else(|| os("mmap UMEM"))?;
        Ok(Umem { area, len, frames })
    }

    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Chunk base addresses (UMEM offsets) of every frame.
    pub fn frame_addrs(&self) -> impl Iterator<Item = u64> {
        (0..u64::from(self.frames)).map(|i| i * u64::from(FRAME_SIZE))
    }

    /// The chunk containing UMEM offset `addr`, as a mutable slice.
    ///
    /// # Safety
    /// The caller must own the chunk (it came off an RX ring or the free
    /// list and has not been given to a ring since) and must not hold
    /// another slice of the same chunk.
    pub unsafe fn chunk_mut<'a>(&self, addr: u64) -> Option<&'a mut [u8]> {
        let base = (addr & !(u64::from(FRAME_SIZE) - 1)) as usize;
        if base + FRAME_SIZE as usize > self.len {
            return None;
        }
        // SAFETY: in bounds (checked), and exclusive by the caller's promise.
        Some(unsafe {
            std::slice::from_raw_parts_mut(self.area.as_ptr().add(base), FRAME_SIZE as usize)
        })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `new` mapped; sockets using it hold
        // a reference through the worker, which drops them first.
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.len) };
    }
}

/// One mmap'd ring: producer and consumer indices shared with the kernel.
struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    mask: u32,
    size: u32,
    map: NonNull<libc::c_void>,
    map_len: usize,
}

impl<T: Copy> Ring<T> {
    /// Maps a ring of `size` entries at page offset `pgoff` of `fd`.
    fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
    ) -> Result<Ring<T>, XskError> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: mapping the ring the kernel created for this socket at
        // the offset it names; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(os("mmap ring"));
        }
        let base = p.cast::<u8>();
        // SAFETY: the kernel's offsets lie inside the mapping it sized.
        let at = |o: u64| unsafe { NonNull::new_unchecked(base.add(o as usize)) };
        Ok(Ring {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            flags: at(off.flags).cast(),
            descs: at(off.desc).cast(),
            mask: size - 1,
            size,
            // SAFETY: checked against MAP_FAILED above, never null.
            map: unsafe { NonNull::new_unchecked(p) },
            map_len,
        })
    }

    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, aligned by the kernel.
        unsafe { self.producer.as_ref() }
    }

    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { self.consumer.as_ref() }
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Consumer side: takes up to `out.len()` entries.
    fn consume(&mut self, out: &mut [T]) -> usize {
        let cons = self.cons().load(Ordering::Relaxed);
        let prod = self.prod().load(Ordering::Acquire);
        let n = (prod.wrapping_sub(cons) as usize).min(out.len());
        for (i, slot) in out[..n].iter_mut().enumerate() {
            let idx = cons.wrapping_add(i as u32) & self.mask;
            // SAFETY: idx <= mask < size entries of the mapped array.
            *slot = unsafe { self.descs.as_ptr().add(idx as usize).read() };
        }
        self.cons()
            .store(cons.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Producer side: appends as many of `items` as fit; returns how many.
    fn produce(&mut self, items: &[T]) -> usize {
        let prod = self.prod().load(Ordering::Relaxed);
        let cons = self.cons().load(Ordering::Acquire);
        let free = self.size - prod.wrapping_sub(cons);
        let n = items.len().min(free as usize);
        for (i, item) in items[..n].iter().enumerate() {
            let idx = prod.wrapping_add(i as u32) & self.mask;
            // SAFETY: idx within the mapped array; the kernel does not read
            // these entries until the producer index moves past them.
            unsafe { self.descs.as_ptr().add(idx as usize).write(*item) };
        }
        self.prod()
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Entries a producer could still add.
    fn free(&self) -> u32 {
        self.size
            - self
                .prod()
                .load(Ordering::Relaxed)
                .wrapping_sub(self.cons().load(Ordering::Acquire))
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping what `map` mapped.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}

/// A received or to-be-sent packet: UMEM offset of its first byte and its
/// length (`struct xdp_desc`).
pub type Desc = libc::xdp_desc;

/// How the socket binds (`XDP_COPY` forces copy mode, which veth and
/// generic XDP need; zero-copy is tried otherwise by the kernel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    Copy,
    Auto,
}

/// One AF_XDP socket: RX and TX rings plus its own fill and completion
/// rings on the shared UMEM.
pub struct XskSocket {
    fd: OwnedFd,
    rx: Ring<Desc>,
    tx: Ring<Desc>,
    fill: Ring<u64>,
    comp: Ring<u64>,
    pub ifindex: u32,
    pub queue: u32,
}

// SAFETY: the rings are only touched through `&mut self` by the owning
// worker; the kernel side synchronises through the atomics.
unsafe impl Send for XskSocket {}

fn setsockopt<T>(
    fd: RawFd,
    opt: libc::c_int,
    value: &T,
    what: &'static str,
) -> Result<(), XskError> {
    // SAFETY: `value` is a valid T of the size we pass.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os(what));
    }
    Ok(())
}

impl XskSocket {
    /// Creates a socket on `ifindex`/`queue`. The first socket of a UMEM
    /// registers it (`first == None`); later ones share it by naming the
    /// first socket's fd.
    pub fn new(
        umem: &Umem,
        first: Option<&XskSocket>,
        ifindex: u32,
        queue: u32,
        ring_size: u32,
        mode: BindMode,
    ) -> Result<XskSocket, XskError> {
        if !ring_size.is_power_of_two() || !(64..=65536).contains(&ring_size) {
            return Err(XskError::RingSize(ring_size));
        }
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os("socket(AF_XDP)"));
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let f = fd.as_raw_fd();
        if first.is_none() {
            let reg = libc::xdp_umem_reg {
                addr: umem.area.as_ptr() as u64,
                len: umem.len as u64,
                chunk_size: FRAME_SIZE,
                headroom: UMEM_HEADROOM,
                flags: 0,
                tx_metadata_len: 0,
            };
            setsockopt(f, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        }
        // Every socket gets its own fill and completion ring (a shared UMEM
        // across devices needs them per socket).
        setsockopt(
            f,
            libc::XDP_UMEM_FILL_RING,
            &ring_size,
            "XDP_UMEM_FILL_RING",
        )?;
        setsockopt(
            f,
            libc::XDP_UMEM_COMPLETION_RING,
            &ring_size,
            "XDP_UMEM_COMPLETION_RING",
        )?;
        setsockopt(f, libc::XDP_RX_RING, &ring_size, "XDP_RX_RING")?;
        setsockopt(f, libc::XDP_TX_RING, &ring_size, "XDP_TX_RING")?;

        // SAFETY: zeroed is a valid xdp_mmap_offsets (plain integers).
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: out-pointers to a properly sized struct and its length.
        let r = unsafe {
            libc::getsockopt(
                f,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(os("XDP_MMAP_OFFSETS"));
        }
        let rx = Ring::map(f, &off.rx, ring_size, libc::XDP_PGOFF_RX_RING as u64)?;
        let tx = Ring::map(f, &off.tx, ring_size, libc::XDP_PGOFF_TX_RING as u64)?;
        let fill = Ring::map(f, &off.fr, ring_size, libc::XDP_UMEM_PGOFF_FILL_RING)?;
        let comp = Ring::map(f, &off.cr, ring_size, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?;

        // A socket sharing another's UMEM must bind with XDP_SHARED_UMEM
        // alone: the kernel refuses copy/zero-copy/need-wakeup flags there
        // (EINVAL) and takes them from the first socket.
        let (flags, shared_fd) = match first {
            Some(first) => (libc::XDP_SHARED_UMEM, first.fd.as_raw_fd() as u32),
            None if mode == BindMode::Copy => (libc::XDP_USE_NEED_WAKEUP | libc::XDP_COPY, 0),
            None => (libc::XDP_USE_NEED_WAKEUP, 0),
        };
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        // SAFETY: a valid sockaddr_xdp and its size.
        let r = unsafe {
            libc::bind(
                f,
                (&sa as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(os("bind AF_XDP socket"));
        }
        Ok(XskSocket {
            fd,
            rx,
            tx,
            fill,
            comp,
            ifindex,
            queue,
        })
    }

    /// The socket's fd, for the XDP program's XSKMAP.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Takes received packets.
    pub fn recv(&mut self, out: &mut [Desc]) -> usize {
        self.rx.consume(out)
    }

    /// Queues packets for transmission; returns how many fit.
    pub fn send(&mut self, descs: &[Desc]) -> usize {
        self.tx.produce(descs)
    }

    /// Tells the kernel to transmit, when it asked to be told (one syscall
    /// per batch at most, none while the kernel is already polling).
    pub fn kick_tx(&self) {
        if self.tx.needs_wakeup() {
            // SAFETY: an empty non-blocking send to our own socket.
            unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
        }
    }

    /// Frames queued for transmission that the kernel has not taken yet.
    /// In copy mode the kernel sends at most 32 per wakeup, so a worker
    /// keeps kicking while this is non-zero.
    pub fn tx_pending(&self) -> u32 {
        self.tx.size - self.tx.free()
    }

    /// Gives free chunks to the kernel for receiving; returns how many it took.
    pub fn fill(&mut self, addrs: &[u64]) -> usize {
        let n = self.fill.produce(addrs);
        if n > 0 && self.fill.needs_wakeup() {
            // SAFETY: an empty non-blocking recv wakes the driver's RX.
            unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
        n
    }

    /// Room left in the fill ring.
    pub fn fill_free(&self) -> u32 {
        self.fill.free()
    }

    /// Chunks whose transmission finished.
    pub fn completed(&mut self, out: &mut [u64]) -> usize {
        self.comp.consume(out)
    }
}
