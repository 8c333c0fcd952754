//! Frames passed between workers. Each worker owns one slice of the PAT
//! port range ([`crate::nat::PortPlan`]), but the NIC (or veth) picks the
//! receive queue, hence the worker, by hashing flows, not ports: return
//! traffic of a translation may arrive at a worker that does not hold it.
//! That worker copies the frame to the owner, which runs it through its
//! own pipeline. The management thread uses the same way in for ESP the
//! control process hands over ([`crate::inject`]).
//!
//! Workers do not share UMEMs, so the frame is copied, into a buffer from
//! the owner's pool; the owner copies it into one of its frames and
//! returns the buffer. Inboxes and pools are bounded crossbeam queues
//! filled once at start: no allocation and no lock per frame. A full pool
//! or inbox drops the frame, and the caller counts it.

use crossbeam_channel::{bounded, Receiver, Sender};

/// Frames in flight towards one worker.
pub const HANDOFF_DEPTH: usize = 256;

/// Largest frame handed over (an AF_XDP frame holds no more).
pub const HANDOFF_FRAME: usize = 4096;

/// A frame on its way to another worker, with the interface it arrived on.
pub struct HandoffFrame {
    ifindex: u32,
    len: usize,
    bytes: Box<[u8]>,
}

/// The way into one worker: its inbox, and the pool its buffers come from.
#[derive(Clone)]
struct Lane {
    inbox: Sender<HandoffFrame>,
    pool: Receiver<HandoffFrame>,
}

/// One worker's end of the mesh.
pub struct Handoff {
    inbox: Receiver<HandoffFrame>,
    /// Where this worker returns the buffers it has emptied.
    pool: Sender<HandoffFrame>,
    lanes: Vec<Lane>,
}

impl Handoff {
    /// The ends for `workers` workers; element `w` belongs to worker `w`.
    /// Allocates every buffer now.
    pub fn mesh(workers: usize) -> Vec<Handoff> {
        let mut ends = Vec::with_capacity(workers);
        let mut lanes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (inbox_tx, inbox_rx) = bounded(HANDOFF_DEPTH);
            let (pool_tx, pool_rx) = bounded(HANDOFF_DEPTH);
            for _ in 0..HANDOFF_DEPTH {
                let empty = HandoffFrame {
                    ifindex: 0,
                    len: 0,
                    bytes: vec![0; HANDOFF_FRAME].into_boxed_slice(),
                };
                // Sized for exactly these buffers: never full here.
                let _ = pool_tx.try_send(empty);
            }
            lanes.push(Lane {
                inbox: inbox_tx,
                pool: pool_rx,
            });
            ends.push((inbox_rx, pool_tx));
        }
        ends.into_iter()
            .map(|(inbox, pool)| Handoff {
                inbox,
                pool,
                lanes: lanes.clone(),
            })
            .collect()
    }

    /// Copies `frame`, received on `ifindex`, to worker `to`. `false`: no
    /// such worker, the frame is too big, or that worker is behind (its
    /// pool is empty); the caller drops and counts the frame.
    pub fn send(&self, to: usize, ifindex: u32, frame: &[u8]) -> bool {
        send(&self.lanes, to, ifindex, frame)
    }

    /// A way into every worker for a thread that is none of them (the
    /// management thread's injected ESP).
    pub fn sender(&self) -> HandoffSender {
        HandoffSender {
            lanes: self.lanes.clone(),
        }
    }

    /// Gives the next frame handed to this worker to `take` (interface it
    /// arrived on, bytes) and recycles its buffer; `false` when none waits.
    pub fn recv(&self, take: impl FnOnce(u32, &[u8])) -> bool {
        let Ok(buf) = self.inbox.try_recv() else {
            return false;
        };
        take(buf.ifindex, &buf.bytes[..buf.len]);
        // The pool has room for every buffer it started with.
        let _ = self.pool.try_send(buf);
        true
    }
}

/// Sends frames to workers, as [`Handoff::send`], from outside them.
#[derive(Clone)]
pub struct HandoffSender {
    lanes: Vec<Lane>,
}

impl HandoffSender {
    /// See [`Handoff::send`].
    pub fn send(&self, to: usize, ifindex: u32, frame: &[u8]) -> bool {
        send(&self.lanes, to, ifindex, frame)
    }

    pub fn workers(&self) -> usize {
        self.lanes.len()
    }
}

fn send(lanes: &[Lane], to: usize, ifindex: u32, frame: &[u8]) -> bool {
    let Some(lane) = lanes.get(to) else {
        return false;
    };
    if frame.len() > HANDOFF_FRAME {
        return false;
    }
    let Ok(mut buf) = lane.pool.try_recv() else {
        return false;
    };
    buf.bytes[..frame.len()].copy_from_slice(frame);
    buf.len = frame.len();
    buf.ifindex = ifindex;
    // The inbox holds as many as the pool: a buffer out of the pool
    // always has room. Should it not, the buffer is lost to the pool,
    // which only shrinks it.
    lane.inbox.try_send(buf).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_reaches_the_worker_it_was_sent_to_and_its_buffer_returns() {
        let mesh = Handoff::mesh(3);
        assert!(mesh[0].send(2, 7, &[1, 2, 3]));
        assert!(!mesh[1].recv(|_, _| panic!("worker 1 got worker 2's frame")));
        let mut got = None;
        assert!(mesh[2].recv(|i, b| got = Some((i, b.to_vec()))));
        assert_eq!(got, Some((7, vec![1, 2, 3])));
        assert!(!mesh[2].recv(|_, _| {}));
        // Buffers come back: far more frames than the depth pass one by one.
        for n in 0..HANDOFF_DEPTH * 3 {
            assert!(mesh[1].send(0, 1, &[n as u8; 60]));
            assert!(mesh[0].recv(|_, b| assert_eq!(b, &[n as u8; 60])));
        }
    }

    #[test]
    fn a_worker_that_falls_behind_makes_senders_drop_not_block() {
        let mesh = Handoff::mesh(2);
        for _ in 0..HANDOFF_DEPTH {
            assert!(mesh[0].send(1, 1, &[0; 64]));
        }
        assert!(!mesh[0].send(1, 1, &[0; 64]), "pool exhausted");
        assert!(!mesh[0].send(5, 1, &[0; 64]), "no such worker");
        assert!(!mesh[1].send(0, 1, &vec![0; HANDOFF_FRAME + 1]), "too big");
        let mut n = 0;
        while mesh[1].recv(|_, _| {}) {
            n += 1;
        }
        assert_eq!(n, HANDOFF_DEPTH);
        assert!(mesh[0].send(1, 1, &[0; 64]), "buffers returned");
    }
}
