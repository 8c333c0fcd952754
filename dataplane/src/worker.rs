//! The poll-mode worker: one thread, pinned to a core, owning one AF_XDP
//! socket per interface on one shared UMEM. Each turn it recycles
//! transmitted frames, keeps the fill rings topped up, and for every port
//! takes a batch, runs the pipeline over it and queues each frame on the
//! port it leaves by (a frame received on the LAN leaves on the WAN with no
//! copy: both sockets share the UMEM). No locks, no allocation and at most
//! one syscall per batch (the TX kick, only when the kernel asks for it).
//!
//! A packet the pipeline fragments ([`Action::Fragment`]) becomes several
//! frames: the worker lends it frames from its free list for the
//! fragments and queues them where the packet was, so order is kept.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::counters::DropReason;
use crate::esp::PacketBuf;
use crate::handoff::Handoff;
use crate::io::xsk::{Desc, Umem, XskSocket, FRAME_SIZE, UMEM_HEADROOM, XDP_PACKET_HEADROOM};
use crate::pipeline::{
    fragment_frames, process_batch, Action, FragmentJob, PipelineCounters, Tables, MAX_BATCH,
    MAX_FRAGMENTS,
};
use crate::update::TableUpdate;

/// Frames taken from an RX ring per pass.
pub const RX_BATCH: usize = 64;
const _: () = assert!(RX_BATCH <= MAX_BATCH);
/// At most this many ports per worker (LAN and WAN, plus room).
pub const MAX_PORTS: usize = 4;
/// Where a packet the worker writes itself (a fragment) starts in its
/// frame: where the kernel puts received ones, so encapsulation finds the
/// same headroom.
const FRESH_FRAME_START: usize = (XDP_PACKET_HEADROOM + UMEM_HEADROOM) as usize;
/// Free frames the fill rings never get: what fragments and handed-over
/// frames are written into. Without them every frame could sit in the
/// fill rings (four ports of the default 2 048-slot rings take all 8 192
/// frames), and a packet to fragment or a frame handed over would find
/// none. At most a quarter of the worker's frames, so that a small UMEM
/// still receives.
const FRAME_RESERVE: usize = 2 * RX_BATCH;

/// What an idle worker does: spin (benchmarks) or sleep a little longer
/// each idle turn, up to a bound (labs, so a core is not pinned at 100%).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdlePolicy {
    BusyPoll,
    Backoff { max_sleep: Duration },
}

/// Counters the I/O layer adds to the pipeline's.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub pipeline: PipelineCounters,
    /// TX ring full: the frame was dropped.
    pub tx_ring_full: AtomicU64,
    /// Frames the pipeline meant for the kernel; with AF_XDP they cannot be
    /// handed back (the XDP program passes those before they get here).
    pub to_kernel_dropped: AtomicU64,
    /// Transmit to an interface this worker has no socket on.
    pub no_port: AtomicU64,
    /// Table updates applied.
    pub updates: AtomicU64,
    /// PAT return traffic copied to the worker holding its translation.
    pub handed_off: AtomicU64,
    /// Frames other workers handed to this one.
    pub handed_in: AtomicU64,
}

impl WorkerCounters {
    /// Frames taken off this worker's RX rings. The pipeline counts every
    /// frame it runs, and a frame handed over runs twice, once on the
    /// worker that received it and once on the one it was handed to.
    pub fn received(&self) -> u64 {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        r(&self.pipeline.rx).saturating_sub(r(&self.handed_in))
    }

    /// Frames put on a TX ring. The pipeline counts the frames it meant
    /// to send, some of which then found the ring full or no socket on
    /// their port.
    pub fn transmitted(&self) -> u64 {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        r(&self.pipeline.tx)
            .saturating_sub(r(&self.tx_ring_full))
            .saturating_sub(r(&self.no_port))
    }
}

/// One worker's sockets, memory and free frames.
pub struct Worker {
    // Sockets before the UMEM: they must be closed before it is unmapped.
    ports: Vec<XskSocket>,
    umem: Umem,
    /// Frames on no ring, by their first byte's UMEM address.
    free: Vec<u64>,
    /// How many of `free` the fill rings leave ([`FRAME_RESERVE`]).
    reserve: usize,
    /// The way in from the other workers (PAT return traffic) and the
    /// management thread (ESP the control process hands over), and out
    /// to the other workers; `None` when the worker stands alone (tests).
    handoff: Option<Handoff>,
}

impl Worker {
    /// Takes ownership of the UMEM and the sockets bound on it; all frames
    /// start on the free list.
    pub fn new(umem: Umem, ports: Vec<XskSocket>) -> Worker {
        let free: Vec<u64> = umem.frame_addrs().collect();
        let reserve = FRAME_RESERVE.min(free.len() / 4);
        Worker {
            ports,
            umem,
            free,
            reserve,
            handoff: None,
        }
    }

    /// Connects the worker to the others (its end of [`Handoff::mesh`]).
    pub fn with_handoff(mut self, handoff: Handoff) -> Worker {
        self.handoff = Some(handoff);
        self
    }

    pub fn ports(&self) -> &[XskSocket] {
        &self.ports
    }

    /// Runs until `stop` is set, applying the management thread's table
    /// updates between batches (so an SA install is visible within one
    /// batch interval).
    pub fn run(
        &mut self,
        tables: &mut Tables,
        updates: &Receiver<TableUpdate>,
        counters: &WorkerCounters,
        idle: IdlePolicy,
        stop: &AtomicBool,
    ) {
        let mut sleep = Duration::from_micros(1);
        while !stop.load(Ordering::Relaxed) {
            // An SA the tables let go of is dropped here, between batches;
            // it is freed only if no other worker still holds it.
            while let Ok(u) = updates.try_recv() {
                drop(u.apply(tables));
                counters.updates.fetch_add(1, Ordering::Relaxed);
            }
            if self.turn(tables, counters) > 0 {
                sleep = Duration::from_micros(1);
            } else if let IdlePolicy::Backoff { max_sleep } = idle {
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(max_sleep);
            }
        }
    }

    /// One pass over every port; returns how many frames were received
    /// plus those still waiting to be transmitted (non-zero: stay awake).
    pub fn turn(&mut self, tables: &mut Tables, counters: &WorkerCounters) -> usize {
        let pending = self.recycle() as usize;
        let mut received = 0;
        for p in 0..self.ports.len() {
            received += self.poll_port(p, tables, counters);
        }
        received + self.poll_handoff(tables, counters) + pending
    }

    /// Completed transmissions back to the free list; fill rings topped up;
    /// transmit rings the kernel has not drained kicked again. Returns the
    /// frames still waiting to be sent (the worker must not doze then).
    fn recycle(&mut self) -> u32 {
        let mut pending = 0;
        for port in &self.ports {
            let p = port.tx_pending();
            if p > 0 {
                port.kick_tx();
                pending += p;
            }
        }
        let mut done = [0u64; RX_BATCH];
        let frame_mask = !(u64::from(FRAME_SIZE) - 1);
        for port in &mut self.ports {
            loop {
                let n = port.completed(&mut done);
                // A completion names where the frame's packet started, not
                // the frame: the free list holds frames, and what takes
                // one from it (a fragment, a handed-over frame) writes at
                // its own offset and sends from frame + offset.
                self.free.extend(done[..n].iter().map(|&a| a & frame_mask));
                if n < done.len() {
                    break;
                }
            }
        }
        for port in &mut self.ports {
            let spare = self.free.len().saturating_sub(self.reserve);
            let want = (port.fill_free() as usize).min(spare);
            if want > 0 {
                let from = self.free.len() - want;
                let taken = port.fill(&self.free[from..]);
                self.free.truncate(self.free.len() - taken);
            }
        }
        pending
    }

    fn poll_port(&mut self, p: usize, tables: &mut Tables, counters: &WorkerCounters) -> usize {
        let mut descs = [Desc {
            addr: 0,
            len: 0,
            options: 0,
        }; RX_BATCH];
        let n = self.ports[p].recv(&mut descs);
        if n > 0 {
            self.process(self.ports[p].ifindex, &descs[..n], tables, counters);
        }
        n
    }

    /// Frames other workers handed over, copied into free frames of ours
    /// and run through the pipeline in runs of one ingress interface.
    fn poll_handoff(&mut self, tables: &mut Tables, counters: &WorkerCounters) -> usize {
        let Some(handoff) = self.handoff.take() else {
            return 0;
        };
        let mut descs = [Desc {
            addr: 0,
            len: 0,
            options: 0,
        }; RX_BATCH];
        let mut ifindexes = [0u32; RX_BATCH];
        let mut n = 0;
        while n < RX_BATCH && !self.free.is_empty() {
            let (free, umem) = (&mut self.free, &self.umem);
            let got = handoff.recv(|ifindex, bytes| {
                let Some(addr) = free.pop() else { return };
                // SAFETY: a frame on the free list is on no ring and in no
                // other slice; it leaves the list here and comes back
                // through TX completion or the drop path of `queue`.
                let chunk = unsafe { umem.chunk_mut(addr) };
                match chunk
                    .and_then(|c| c.get_mut(FRESH_FRAME_START..FRESH_FRAME_START + bytes.len()))
                {
                    Some(dst) => {
                        dst.copy_from_slice(bytes);
                        descs[n] = Desc {
                            addr: addr + FRESH_FRAME_START as u64,
                            len: bytes.len() as u32,
                            options: 0,
                        };
                        ifindexes[n] = ifindex;
                        n += 1;
                    }
                    None => free.push(addr),
                }
            });
            if !got {
                break;
            }
        }
        self.handoff = Some(handoff);
        counters.handed_in.fetch_add(n as u64, Ordering::Relaxed);
        let mut first = 0;
        while first < n {
            let ifindex = ifindexes[first];
            let run = ifindexes[first..n]
                .iter()
                .take_while(|&&i| i == ifindex)
                .count();
            self.process(ifindex, &descs[first..first + run], tables, counters);
            first += run;
        }
        n
    }

    /// Runs the pipeline over frames received on `rx_ifindex` and queues
    /// each where its action says.
    fn process(
        &mut self,
        rx_ifindex: u32,
        descs: &[Desc],
        tables: &mut Tables,
        counters: &WorkerCounters,
    ) {
        let n = descs.len().min(RX_BATCH);
        let frame_mask = !(u64::from(FRAME_SIZE) - 1);
        let mut frames: [PacketBuf<'_>; RX_BATCH] =
            std::array::from_fn(|_| PacketBuf::new(&mut [], 0, 0));
        let mut bases = [0u64; RX_BATCH];
        for (i, d) in descs[..n].iter().enumerate() {
            bases[i] = d.addr & frame_mask;
            // SAFETY: the kernel handed this chunk to us on the RX ring; each
            // RX descriptor names a distinct chunk, so the slices do not alias.
            match unsafe { self.umem.chunk_mut(d.addr) } {
                Some(chunk) => {
                    frames[i] = PacketBuf::new(chunk, (d.addr - bases[i]) as usize, d.len as usize)
                }
                None => frames[i].verdict = Err(crate::counters::DropReason::Malformed),
            }
        }
        let mut actions = [Action::ToKernel; RX_BATCH];
        process_batch(
            tables,
            rx_ifindex,
            &mut frames[..n],
            &mut actions[..n],
            &counters.pipeline,
        );

        let mut tx = TxQueues::default();
        for i in 0..n {
            match actions[i] {
                Action::Fragment(job) => {
                    self.fragment(job, &mut frames[i], bases[i], tables, counters, &mut tx)
                }
                Action::Handoff { worker } => {
                    let sent = self
                        .handoff
                        .as_ref()
                        .is_some_and(|h| h.send(worker, rx_ifindex, frames[i].data()));
                    if sent {
                        counters.handed_off.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.pipeline.drops.inc(DropReason::HandoffFull);
                    }
                    self.free.push(bases[i]);
                }
                Action::ToTunnel { ifindex } => {
                    let taken = tables
                        .tunnels
                        .device(ifindex)
                        .is_some_and(|d| d.deliver(frames[i].data()));
                    if !taken {
                        counters.pipeline.drops.inc(DropReason::TunnelInterfaceFull);
                    }
                    self.free.push(bases[i]);
                }
                action => self.queue(&mut tx, action, bases[i], &frames[i], counters),
            }
        }
        for q in 0..MAX_PORTS {
            self.flush(&mut tx, q, counters);
        }
    }

    /// Puts a frame on the TX queue of the port its action names, or back
    /// on the free list.
    fn queue(
        &mut self,
        tx: &mut TxQueues,
        action: Action,
        base: u64,
        f: &PacketBuf<'_>,
        counters: &WorkerCounters,
    ) {
        let out = match action {
            Action::Transmit { ifindex } => self.ports.iter().position(|s| s.ifindex == ifindex),
            Action::ToKernel => {
                counters.to_kernel_dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
            Action::Drop(_)
            | Action::Fragment(_)
            | Action::Handoff { .. }
            | Action::ToTunnel { .. } => None,
        };
        match out {
            Some(q) if q < MAX_PORTS => {
                if tx.len[q] == RX_BATCH {
                    self.flush(tx, q, counters);
                }
                tx.descs[q][tx.len[q]] = Desc {
                    addr: base + f.start as u64,
                    len: f.len as u32,
                    options: 0,
                };
                tx.len[q] += 1;
            }
            other => {
                if other.is_some() || matches!(action, Action::Transmit { .. }) {
                    counters.no_port.fetch_add(1, Ordering::Relaxed);
                }
                self.free.push(base);
            }
        }
    }

    /// Sends a port's queued frames; what the TX ring has no room for is
    /// dropped back to the free list.
    fn flush(&mut self, tx: &mut TxQueues, q: usize, counters: &WorkerCounters) {
        let len = std::mem::take(&mut tx.len[q]);
        let Some(port) = self.ports.get_mut(q).filter(|_| len > 0) else {
            return;
        };
        let sent = port.send(&tx.descs[q][..len]);
        let frame_mask = !(u64::from(FRAME_SIZE) - 1);
        for d in &tx.descs[q][sent..len] {
            counters.tx_ring_full.fetch_add(1, Ordering::Relaxed);
            self.free.push(d.addr & frame_mask);
        }
        port.kick_tx();
    }

    /// Lends free frames to the pipeline's fragment pass for one packet
    /// and queues the fragments in its place; frames it did not use go
    /// back to the free list.
    fn fragment(
        &mut self,
        job: FragmentJob,
        frame: &mut PacketBuf<'_>,
        base: u64,
        tables: &Tables,
        counters: &WorkerCounters,
        tx: &mut TxQueues,
    ) {
        let mut addrs = [0u64; MAX_FRAGMENTS];
        let mut bufs: [PacketBuf<'_>; MAX_FRAGMENTS] =
            std::array::from_fn(|_| PacketBuf::new(&mut [], 0, 0));
        addrs[0] = base;
        bufs[0] = PacketBuf::new(&mut *frame.frame, frame.start, frame.len);
        let mut lent = 1;
        while lent < job.count().min(MAX_FRAGMENTS) {
            let Some(addr) = self.free.pop() else { break };
            // SAFETY: a frame on the free list is on no ring and in no
            // other slice; it leaves the list here and returns below or
            // through TX completion.
            let Some(chunk) = (unsafe { self.umem.chunk_mut(addr) }) else {
                self.free.push(addr);
                break;
            };
            addrs[lent] = addr;
            bufs[lent] = PacketBuf::new(chunk, FRESH_FRAME_START, 0);
            lent += 1;
        }
        let mut actions = [Action::ToKernel; MAX_FRAGMENTS];
        let used = fragment_frames(
            tables,
            job,
            &mut bufs[..lent],
            &mut actions[..lent],
            &counters.pipeline,
        );
        for j in 0..lent {
            if j < used {
                self.queue(tx, actions[j], addrs[j], &bufs[j], counters);
            } else {
                self.free.push(addrs[j]);
            }
        }
    }
}

/// Descriptors waiting for each port's TX ring, sent when a queue fills
/// (fragments can outnumber the received frames) and at the end of a batch.
struct TxQueues {
    descs: [[Desc; RX_BATCH]; MAX_PORTS],
    len: [usize; MAX_PORTS],
}

impl Default for TxQueues {
    fn default() -> Self {
        TxQueues {
            descs: [[Desc {
                addr: 0,
                len: 0,
                options: 0,
            }; RX_BATCH]; MAX_PORTS],
            len: [0; MAX_PORTS],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handed_over_and_refused_frames_are_not_counted_as_on_the_wire() {
        let c = WorkerCounters::default();
        // 10 frames in: 3 handed in by another worker (run again here), 7
        // off the ring. 8 meant for the wire: 2 refused by a full ring, 1
        // for a port without a socket.
        c.pipeline.rx.store(10, Ordering::Relaxed);
        c.handed_in.store(3, Ordering::Relaxed);
        c.pipeline.tx.store(8, Ordering::Relaxed);
        c.tx_ring_full.store(2, Ordering::Relaxed);
        c.no_port.store(1, Ordering::Relaxed);
        assert_eq!((c.received(), c.transmitted()), (7, 5));
    }
}
