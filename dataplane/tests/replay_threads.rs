//! The anti-replay window shared by several worker threads without a lock:
//! every sequence number is delivered to every thread (as if the network
//! duplicated each packet four times and spread the copies over the
//! workers), with reordering kept inside the window. Exactly one copy of
//! each number must be accepted: never a duplicate, never a fresh packet
//! refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use dataplane::replay::ReplayWindow;

const THREADS: usize = 4;

/// A deterministic shuffle inside chunks of `chunk` numbers, different per
/// thread, so reordering never spans more than `chunk` positions.
fn delivery_order(first: u64, count: u64, chunk: u64, salt: u64) -> Vec<u64> {
    let mut order: Vec<u64> = (first..first + count).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    for block in order.chunks_mut(chunk as usize) {
        for i in (1..block.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            block.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
    order
}

fn run_round(window: u32, first: u64, count: u64, round: u64) {
    let w = Arc::new(ReplayWindow::new(window).unwrap());
    // One flag per number: how many times it was accepted.
    let accepted: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let barrier = Arc::new(Barrier::new(THREADS));
    let chunk = u64::from(window / 2);
    let handles: Vec<_> = (0..THREADS as u64)
        .map(|t| {
            let (w, accepted, barrier) = (w.clone(), accepted.clone(), barrier.clone());
            thread::spawn(move || {
                let order = delivery_order(first, count, chunk, round * 31 + t);
                barrier.wait();
                for seq in order {
                    if w.check(seq).is_ok() && w.check_and_update(seq).is_ok() {
                        accepted[(seq - first) as usize].fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut duplicates = 0;
    let mut refused = 0;
    for a in accepted.iter() {
        match a.load(Ordering::Relaxed) {
            1 => {}
            0 => refused += 1,
            _ => duplicates += 1,
        }
    }
    assert_eq!(
        duplicates, 0,
        "window {window} round {round}: duplicates accepted"
    );
    // All threads shuffle within the same chunks of window/2, so whoever
    // delivers a number first has delivered nothing beyond the end of that
    // number's chunk, and no thread has: the number is inside the window.
    assert_eq!(
        refused, 0,
        "window {window} round {round}: fresh packets refused"
    );
}

#[test]
fn four_threads_on_one_window_accept_every_number_exactly_once() {
    for round in 0..6 {
        run_round(64, 1, 20_000, round);
        run_round(4096, 1, 200_000, round);
    }
}

#[test]
fn four_threads_across_the_32_bit_boundary_accept_every_number_exactly_once() {
    for round in 0..4 {
        run_round(1024, (1 << 32) - 50_000, 100_000, round);
    }
}
