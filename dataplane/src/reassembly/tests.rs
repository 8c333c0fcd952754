//! Reassembly: every order of a datagram's fragments gives back exactly
//! the unfragmented packet (IPv4 cut by the pipeline's own fragmenter,
//! which is cross-checked against scapy; IPv6 cut here), and each way a
//! datagram can go wrong ends it and is counted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::testkit::fragments_v4;

const US4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
const US6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 1);

fn local() -> Vec<IpAddr> {
    vec![IpAddr::V4(US4), IpAddr::V6(US6)]
}

/// An ESP packet (IPv4, no DF) from the peer to us with `n` bytes after
/// the IP header, each byte telling its place.
fn esp_v4(n: usize, ident: u16) -> Vec<u8> {
    let mut p = vec![0u8; ipv4::HEADER_LEN + n];
    for (i, b) in p[ipv4::HEADER_LEN..].iter_mut().enumerate() {
        *b = (i * 7 + i / 251) as u8;
    }
    let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
    ip.set_version(4);
    ip.set_header_len(ipv4::HEADER_LEN);
    ip.set_total_len((ipv4::HEADER_LEN + n) as u16);
    ip.set_ident(ident);
    ip.set_ttl(64);
    ip.set_protocol(ip_proto::ESP);
    ip.set_src_addr(PEER4);
    ip.set_dst_addr(US4);
    ip.fill_checksum();
    p
}

fn split_v4(p: &[u8], max_ip_len: usize) -> Vec<Vec<u8>> {
    fragments_v4(p, max_ip_len)
}

/// An IPv4 fragment moved 8 bytes back, over its predecessor's end.
fn shifted_back(fragment: &[u8]) -> Vec<u8> {
    let mut f = fragment.to_vec();
    let mut ip = ipv4::Packet::new_unchecked(&mut f[..]);
    let off = ip.frag_offset();
    ip.set_frag_offset(off - 8);
    ip.fill_checksum();
    f
}

/// An IPv4 fragment with its last byte cut off (its length fixed).
fn one_byte_short(fragment: &[u8]) -> Vec<u8> {
    let mut f = fragment[..fragment.len() - 1].to_vec();
    let n = f.len() as u16;
    let mut ip = ipv4::Packet::new_unchecked(&mut f[..]);
    ip.set_total_len(n);
    ip.fill_checksum();
    f
}

/// An ESP packet over IPv6 with `n` bytes of ESP.
fn esp_v6(n: usize) -> Vec<u8> {
    let mut p = vec![0u8; ipv6::HEADER_LEN + n];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(n as u16).to_be_bytes());
    p[6] = ip_proto::ESP;
    p[7] = 64;
    p[8..24].copy_from_slice(&PEER6.octets());
    p[24..40].copy_from_slice(&US6.octets());
    for (i, b) in p[ipv6::HEADER_LEN..].iter_mut().enumerate() {
        *b = (i * 13 + i / 241) as u8;
    }
    p
}

/// `p` (IPv6, ESP after the fixed header) cut at `cuts` (data offsets,
/// multiples of 8), each piece with a Fragment header (RFC 8200 §4.5).
fn split_v6(p: &[u8], cuts: &[usize], ident: u32) -> Vec<Vec<u8>> {
    let data = &p[ipv6::HEADER_LEN..];
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < data.len()));
    bounds.push(data.len());
    bounds
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0], w[1]);
            let mut f = p[..ipv6::HEADER_LEN].to_vec();
            f[6] = ip_proto::FRAGMENT;
            f[4..6].copy_from_slice(&((8 + end - start) as u16).to_be_bytes());
            let more = u16::from(end < data.len());
            f.extend_from_slice(&[ip_proto::ESP, 0]);
            f.extend_from_slice(&((start as u16) | more).to_be_bytes());
            f.extend_from_slice(&ident.to_be_bytes());
            f.extend_from_slice(&data[start..end]);
            f
        })
        .collect()
}

/// Feeds `fragments` in order, each in a 4 KiB frame at offset 256 as a
/// worker has them; the frame that completes the datagram, with its
/// packet, and what each feed returned.
fn feed_all(
    r: &mut Reassembly,
    fragments: &[Vec<u8>],
    now: u64,
    drops: &DropCounters,
) -> (Vec<Fed>, Option<Vec<u8>>) {
    let mut fed = Vec::new();
    let mut whole = None;
    for f in fragments {
        let mut frame = vec![0u8; 4096];
        frame[256..256 + f.len()].copy_from_slice(f);
        let out = r.feed(&mut frame, 256, f.len(), &local(), now, drops);
        if let Fed::Complete(n) = out {
            whole = Some(frame[256..256 + n].to_vec());
        }
        fed.push(out);
    }
    (fed, whole)
}

#[test]
fn every_order_of_an_ipv4_datagram_s_fragments_gives_it_back() {
    let original = esp_v4(1400, 0x1234);
    let pieces = split_v4(&original, 576);
    assert_eq!(pieces.len(), 3);
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut r = Reassembly::default();
        let drops = DropCounters::default();
        let frags: Vec<Vec<u8>> = order.iter().map(|&i| pieces[i].clone()).collect();
        let (fed, whole) = feed_all(&mut r, &frags, 10, &drops);
        assert_eq!(fed[..2], [Fed::Queued, Fed::Queued], "{order:?}");
        assert_eq!(whole.as_deref(), Some(&original[..]), "{order:?}");
        assert_eq!(drops.total(), 0);
    }
}

#[test]
fn every_order_of_an_ipv6_datagram_s_fragments_gives_it_back() {
    let original = esp_v6(1400);
    let pieces = split_v6(&original, &[512, 1024], 0xabcd_0001);
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let mut r = Reassembly::default();
        let drops = DropCounters::default();
        let frags: Vec<Vec<u8>> = order.iter().map(|&i| pieces[i].clone()).collect();
        let (_, whole) = feed_all(&mut r, &frags, 10, &drops);
        assert_eq!(whole.as_deref(), Some(&original[..]), "{order:?}");
    }
}

#[test]
fn a_whole_packet_and_other_traffic_are_not_taken() {
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    let whole = esp_v4(1400, 1);
    let (fed, _) = feed_all(&mut r, &[whole], 0, &drops);
    assert_eq!(fed, [Fed::NotFragment]);
    // A fragment of UDP, and one of ESP to another address.
    let mut udp = split_v4(&esp_v4(1400, 2), 576)[0].clone();
    udp[9] = ip_proto::UDP;
    ipv4::Packet::new_unchecked(&mut udp[..]).fill_checksum();
    let mut transit = split_v4(&esp_v4(1400, 3), 576)[0].clone();
    transit[16..20].copy_from_slice(&[198, 19, 2, 10]);
    ipv4::Packet::new_unchecked(&mut transit[..]).fill_checksum();
    let (fed, _) = feed_all(&mut r, &[udp, transit], 0, &drops);
    assert_eq!(fed, [Fed::NotFragment, Fed::NotFragment]);
    assert!(r.slots.is_empty(), "nothing allocated without a fragment");
}

#[test]
fn a_duplicate_is_absorbed_and_an_overlap_ends_the_datagram() {
    let pieces = split_v4(&esp_v4(1400, 7), 576);
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    let frags = [
        pieces[0].clone(),
        pieces[0].clone(),
        pieces[1].clone(),
        pieces[2].clone(),
    ];
    let (fed, whole) = feed_all(&mut r, &frags, 0, &drops);
    assert_eq!(fed[1], Fed::Queued);
    assert!(whole.is_some());

    // The middle fragment again, its offset moved 8 bytes back.
    let overlapping = shifted_back(&pieces[1]);
    let (fed, whole) = feed_all(
        &mut r,
        &[pieces[0].clone(), overlapping, pieces[1].clone()],
        0,
        &drops,
    );
    assert_eq!(fed[1], Fed::Dropped(DropReason::ReassemblyFailed));
    assert_eq!(whole, None);
}

#[test]
fn contradicting_lengths_and_odd_sizes_end_the_datagram() {
    let pieces = split_v4(&esp_v4(1400, 9), 576);
    let drops = DropCounters::default();
    // A second last fragment that ends elsewhere.
    let mut early_end = pieces[1].clone();
    ipv4::Packet::new_unchecked(&mut early_end[..]).set_more_frags(false);
    ipv4::Packet::new_unchecked(&mut early_end[..]).fill_checksum();
    let mut r = Reassembly::default();
    let (fed, _) = feed_all(&mut r, &[pieces[2].clone(), early_end], 0, &drops);
    assert_eq!(fed[1], Fed::Dropped(DropReason::ReassemblyFailed));
    // A fragment with more to come whose length is not a multiple of 8.
    let (fed, _) = feed_all(&mut r, &[one_byte_short(&pieces[0])], 0, &drops);
    assert_eq!(fed, [Fed::Dropped(DropReason::ReassemblyFailed)]);
    // A bad header checksum.
    let mut bad = pieces[0].clone();
    bad[10] ^= 1;
    let (fed, _) = feed_all(&mut r, &[bad], 0, &drops);
    assert_eq!(fed, [Fed::Dropped(DropReason::BadIpChecksum)]);
}

#[test]
fn a_datagram_too_slow_or_pushed_out_is_given_up_and_counted() {
    let pieces = split_v4(&esp_v4(1400, 11), 576);
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    feed_all(&mut r, &pieces[..2], 100, &drops);
    // The last fragment, 4 s later: the datagram was given up.
    let (fed, whole) = feed_all(&mut r, &pieces[2..], 100 + TIMEOUT_SECS + 1, &drops);
    assert_eq!((fed[0], whole), (Fed::Queued, None));
    assert_eq!(drops.get(DropReason::ReassemblyTimeout), 1);

    // SLOTS datagrams under way, then one more: the oldest goes.
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    for k in 0..=SLOTS {
        let first = split_v4(&esp_v4(1400, 100 + k as u16), 576)[0].clone();
        feed_all(&mut r, &[first], k as u64 / 32, &drops);
    }
    assert_eq!(drops.get(DropReason::ReassemblyTimeout), 1);
    // The second still completes; the first was given up.
    let rest = |k: u16| split_v4(&esp_v4(1400, 100 + k), 576)[1..].to_vec();
    assert!(feed_all(&mut r, &rest(1), 2, &drops).1.is_some());
    assert_eq!(feed_all(&mut r, &rest(0), 2, &drops).1, None);
}

#[test]
fn a_datagram_larger_than_the_frame_is_dropped() {
    // 3 900 bytes of ESP: within MAX_DATA, but not in a frame whose
    // packet starts 256 bytes in.
    let pieces = split_v4(&esp_v4(3900, 13), 1400);
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    let (fed, whole) = feed_all(&mut r, &pieces, 0, &drops);
    assert_eq!(
        fed.last(),
        Some(&Fed::Dropped(DropReason::ReassemblyFailed))
    );
    assert_eq!(whole, None);
}

#[test]
fn an_ipv6_atomic_fragment_is_unwrapped_without_a_slot() {
    let original = esp_v6(300);
    let atomic = split_v6(&original, &[], 5);
    assert_eq!(atomic.len(), 1);
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    let (fed, whole) = feed_all(&mut r, &atomic, 0, &drops);
    assert_eq!(fed, [Fed::Complete(original.len())]);
    assert_eq!(whole.as_deref(), Some(&original[..]));
    assert!(r.slots.is_empty());
}

#[test]
fn a_fragment_that_says_last_again_adds_nothing() {
    // [8, 512) with more to come, then the same bytes claiming to be the
    // last: a duplicate, which must not cut the datagram short.
    let original = esp_v6(1400);
    let pieces = split_v6(&original, &[8, 512], 6);
    let mut last_again = pieces[1].clone();
    last_again[ipv6::HEADER_LEN + 3] &= !1;
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    let frags = [
        pieces[1].clone(),
        last_again,
        pieces[0].clone(),
        pieces[2].clone(),
    ];
    let (fed, whole) = feed_all(&mut r, &frags, 0, &drops);
    assert_eq!(fed[1], Fed::Queued);
    assert_eq!(whole.as_deref(), Some(&original[..]));
    // [0, 8) claiming to be the last is an atomic fragment (RFC 6946):
    // taken alone, the datagram under way untouched.
    let mut atomic = pieces[0].clone();
    atomic[ipv6::HEADER_LEN + 3] &= !1;
    let frags = [
        pieces[1].clone(),
        atomic,
        pieces[0].clone(),
        pieces[2].clone(),
    ];
    let (fed, whole) = feed_all(&mut r, &frags, 0, &drops);
    assert_eq!(fed[1], Fed::Complete(ipv6::HEADER_LEN + 8));
    assert_eq!(whole.as_deref(), Some(&original[..]));
}

#[test]
fn junk_fragments_take_no_slot_and_push_no_datagram_out() {
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    let firsts: Vec<Vec<u8>> = (0..SLOTS as u16)
        .map(|k| split_v4(&esp_v4(1400, 200 + k), 576)[0].clone())
        .collect();
    feed_all(&mut r, &firsts, 0, &drops);
    // 100 fragments of other datagrams, each odd-sized with more to come.
    for k in 0..100u16 {
        let odd = one_byte_short(&split_v4(&esp_v4(1400, 1000 + k), 576)[0]);
        let (fed, _) = feed_all(&mut r, &[odd], 0, &drops);
        assert_eq!(fed, [Fed::Dropped(DropReason::ReassemblyFailed)]);
    }
    assert_eq!(drops.get(DropReason::ReassemblyTimeout), 0);
    for k in 0..SLOTS as u16 {
        let rest = split_v4(&esp_v4(1400, 200 + k), 576)[1..].to_vec();
        assert!(
            feed_all(&mut r, &rest, 1, &drops).1.is_some(),
            "datagram {k}"
        );
    }
}

#[test]
fn a_failed_datagram_s_later_fragments_are_dropped_and_not_counted_as_a_timeout() {
    let pieces = split_v4(&esp_v4(1400, 21), 576);
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    assert_bad_second_fails_the_rest(&mut r, &drops, &pieces, shifted_back(&pieces[1]));
    // Its time passes: given up without a timeout counted, and the slot
    // free for a new datagram.
    let next = split_v4(&esp_v4(1400, 22), 576);
    assert!(feed_all(&mut r, &next, 10, &drops).1.is_some());
    assert_eq!(drops.get(DropReason::ReassemblyTimeout), 0);
}

#[test]
fn ipv6_options_between_the_fragment_header_and_esp_are_not_taken() {
    // Fragment header, then 8 bytes of Destination Options (PadN), then
    // ESP: well formed, but not taken; decapsulation counts it.
    let original = esp_v6(1400);
    let opts = [ip_proto::ESP, 0, 1, 4, 0, 0, 0, 0];
    let mut with_opts = original[..ipv6::HEADER_LEN].to_vec();
    with_opts[6] = ip_proto::DEST_OPTS;
    with_opts.extend_from_slice(&opts);
    with_opts.extend_from_slice(&original[ipv6::HEADER_LEN..]);
    let n = (with_opts.len() - ipv6::HEADER_LEN) as u16;
    with_opts[4..6].copy_from_slice(&n.to_be_bytes());
    let mut frags = split_v6(&with_opts, &[512], 8);
    for f in &mut frags {
        f[ipv6::HEADER_LEN] = ip_proto::DEST_OPTS;
    }
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    assert_eq!(
        feed_all(&mut r, &frags, 0, &drops).0,
        [Fed::NotFragment, Fed::NotFragment]
    );
}

#[test]
fn a_fragment_too_far_fails_the_datagram_it_claims() {
    let pieces = split_v4(&esp_v4(1400, 31), 576);
    let mut too_far = pieces[1].clone();
    let mut ip = ipv4::Packet::new_unchecked(&mut too_far[..]);
    ip.set_frag_offset(4096);
    ip.fill_checksum();
    let mut r = Reassembly::default();
    let drops = DropCounters::default();
    assert_bad_second_fails_the_rest(&mut r, &drops, &pieces, too_far);
}

/// Feeds a datagram's three `pieces` with `bad` second: it and every
/// later fragment are dropped as failed, and nothing comes whole.
fn assert_bad_second_fails_the_rest(
    r: &mut Reassembly,
    drops: &DropCounters,
    pieces: &[Vec<u8>],
    bad: Vec<u8>,
) {
    let frags = [pieces[0].clone(), bad, pieces[1].clone(), pieces[2].clone()];
    let (fed, whole) = feed_all(r, &frags, 0, drops);
    let failed = Fed::Dropped(DropReason::ReassemblyFailed);
    assert_eq!(fed[1..], [failed, failed, failed]);
    assert_eq!(whole, None);
}

proptest! {
    /// Any cut into fragments (multiples of 8), any order, with
    /// duplicates: the datagram comes back exactly, once.
    #[test]
    fn any_cut_and_order_gives_the_datagram_back(
        len in 64usize..2400,
        cuts in proptest::collection::vec(1usize..300, 1..8),
        order_seed in any::<u64>(),
        dup in any::<bool>(),
        v6 in any::<bool>(),
    ) {
        let original = if v6 { esp_v6(len) } else { esp_v4(len, 77) };
        // Cut points as data offsets, multiples of 8, increasing.
        let mut at = 0;
        let offsets: Vec<usize> = cuts.iter().map(|c| { at += c * 8; at }).collect();
        let mut frags = if v6 {
            split_v6(&original, &offsets, 77)
        } else {
            // The IPv4 pieces, cut by hand like the IPv6 ones.
            let data = &original[ipv4::HEADER_LEN..];
            let mut bounds = vec![0];
            bounds.extend(offsets.iter().copied().filter(|&c| c < data.len()));
            bounds.push(data.len());
            bounds.windows(2).map(|w| {
                let mut f = original[..ipv4::HEADER_LEN].to_vec();
                f.extend_from_slice(&data[w[0]..w[1]]);
                let n = f.len() as u16;
                let mut ip = ipv4::Packet::new_unchecked(&mut f[..]);
                ip.set_total_len(n);
                ip.set_frag_offset(w[0] as u16);
                ip.set_more_frags(w[1] < data.len());
                ip.fill_checksum();
                f
            }).collect()
        };
        prop_assume!(frags.len() > 1 && frags.len() <= MAX_PIECES);
        // A deterministic shuffle.
        let mut s = order_seed;
        for i in (1..frags.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            frags.swap(i, (s >> 33) as usize % (i + 1));
        }
        if dup {
            let again = frags[0].clone();
            frags.insert(1, again);
        }
        let mut r = Reassembly::default();
        let drops = DropCounters::default();
        let (fed, whole) = feed_all(&mut r, &frags, 0, &drops);
        prop_assert_eq!(whole.as_deref(), Some(&original[..]));
        prop_assert_eq!(fed.iter().filter(|f| matches!(f, Fed::Complete(_))).count(), 1);
        prop_assert_eq!(drops.total(), 0);
    }

    /// Arbitrary bytes never panic, and never come back larger than the
    /// frame.
    #[test]
    fn arbitrary_packets_never_panic(
        packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20),
    ) {
        let mut r = Reassembly::default();
        let drops = DropCounters::default();
        for mut p in packets {
            // Often a fragment of ESP to us, so the reassembly is reached.
            if p.len() >= 40 && p[0] >> 4 == 4 {
                p[0] = 0x45;
                p[9] = ip_proto::ESP;
                p[16..20].copy_from_slice(&US4.octets());
                let n = p.len() as u16;
                let mut ip = ipv4::Packet::new_unchecked(&mut p[..]);
                ip.set_total_len(n);
                ip.fill_checksum();
            }
            let mut frame = vec![0u8; 4096];
            frame[256..256 + p.len()].copy_from_slice(&p);
            if let Fed::Complete(n) = r.feed(&mut frame, 256, p.len(), &local(), 0, &drops) {
                prop_assert!(256 + n <= frame.len());
            }
        }
    }
}
