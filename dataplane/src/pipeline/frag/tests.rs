//! Fragment sizes, offsets, flags, checksums and the option copy rules of
//! RFC 791 §3.2, refragmenting fragments, refusal of malformed input, and
//! (proptest) that the fragments always reassemble to the original.

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::crypto::{AuthAlg, EncAlg, GcmIcv};
use crate::esp::encapsulated_len;
use crate::sa::Sadb;
use crate::testkit::{sa_pair, tunnel};
use crate::wire::ip_proto;

/// Record Route (type 7: not copied), 7 bytes with room for one address.
const RECORD_ROUTE: [u8; 7] = [7, 7, 4, 0, 0, 0, 0];
/// Loose Source Route (type 0x83: copied), one address.
const LOOSE_SOURCE_ROUTE: [u8; 7] = [0x83, 7, 4, 198, 19, 9, 9];
/// Basic Security (type 0x82: copied), RFC 1108 minimum length 3.
const SECURITY: [u8; 3] = [0x82, 3, 0xab];

/// An IPv4/UDP-numbered packet with `options` (padded with EOL to 32
/// bits), `payload_len` bytes counting up, and the given flags.
fn packet(options: &[u8], payload_len: usize, df: bool, mf: bool, offset: u16) -> Vec<u8> {
    let opt_len = options.len().div_ceil(4) * 4;
    let hl = ipv4::HEADER_LEN + opt_len;
    let mut buf = vec![0u8; hl + payload_len];
    ipv4::Repr {
        src_addr: Ipv4Addr::new(198, 19, 1, 10),
        dst_addr: Ipv4Addr::new(198, 19, 2, 10),
        protocol: ip_proto::UDP,
        payload_len,
        ttl: 63,
        dscp_ecn: 0x28,
        ident: 0xbeef,
        dont_frag: df,
    }
    .emit(&mut ipv4::Packet::new_unchecked(&mut buf[..]));
    buf[ipv4::HEADER_LEN..ipv4::HEADER_LEN + options.len()].copy_from_slice(options);
    for (i, b) in buf[hl..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let mut ip = ipv4::Packet::new_unchecked(&mut buf[..]);
    ip.set_header_len(hl);
    ip.set_total_len((hl + payload_len) as u16);
    ip.set_more_frags(mf);
    ip.set_frag_offset(offset);
    ip.fill_checksum();
    buf
}

/// Fragments `p` into fresh 2 KiB buffers; returns each fragment's bytes.
fn split(p: &[u8], max_ip_len: usize) -> Result<Vec<Vec<u8>>, FragError> {
    let mut bufs = vec![vec![0u8; 2048]; MAX_FRAGMENTS];
    let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
    let plan = fragment_ipv4(p, max_ip_len, &mut out)?;
    Ok((0..plan.count())
        .map(|i| bufs[i][..plan.fragment_len(i).unwrap()].to_vec())
        .collect())
}

/// What a receiver's reassembly sees: (offset, MF, data) per fragment,
/// after checking each header.
fn pieces(frags: &[Vec<u8>]) -> Vec<(usize, bool, Vec<u8>)> {
    frags
        .iter()
        .map(|f| {
            let ip = ipv4::Packet::new_checked(&f[..]).unwrap();
            assert!(ip.verify_checksum(), "header checksum");
            assert_eq!(usize::from(ip.total_len()), f.len(), "total length");
            assert!(!ip.dont_frag());
            (
                usize::from(ip.frag_offset()),
                ip.more_frags(),
                ip.payload().to_vec(),
            )
        })
        .collect()
}

/// Reassembles fragments (in any order) that must tile the payload of
/// `original` exactly; returns the data, the first offset and the last MF.
fn reassemble(frags: &[Vec<u8>]) -> (Vec<u8>, usize, bool) {
    let mut ps = pieces(frags);
    ps.sort_by_key(|p| p.0);
    let start = ps[0].0;
    let mut data = Vec::new();
    for (i, (offset, more, bytes)) in ps.iter().enumerate() {
        assert_eq!(*offset, start + data.len(), "fragments tile without gaps");
        if i + 1 < ps.len() {
            assert!(more, "every fragment but the last has MF");
            assert_eq!(bytes.len() % 8, 0, "non-last data is in 8-byte units");
        }
        data.extend_from_slice(bytes);
    }
    (data, start, ps.last().unwrap().1)
}

fn header_fields(p: &[u8]) -> (u8, u16, u8, u8, Ipv4Addr, Ipv4Addr) {
    let ip = ipv4::Packet::new_checked(p).unwrap();
    (
        ip.dscp_ecn(),
        ip.ident(),
        ip.ttl(),
        ip.protocol(),
        ip.src_addr(),
        ip.dst_addr(),
    )
}

#[test]
fn a_1500_byte_packet_splits_into_two_fragments_at_8_byte_boundaries() {
    let p = packet(&[], 1480, false, false, 0);
    let frags = split(&p, 1438).unwrap();
    assert_eq!(frags.len(), 2);
    assert_eq!(fragments_needed(&p, 1438), Ok(2));
    // 1438 - 20 = 1418, rounded down to 1416 bytes of data.
    assert_eq!(frags[0].len(), 20 + 1416);
    assert_eq!(frags[1].len(), 20 + 64);
    let ps = pieces(&frags);
    assert_eq!((ps[0].0, ps[0].1), (0, true));
    assert_eq!((ps[1].0, ps[1].1), (1416, false));
    for f in &frags {
        assert_eq!(header_fields(f), header_fields(&p), "fixed fields copied");
    }
    assert_eq!(reassemble(&frags).0, &p[20..]);
}

#[test]
fn small_mtus_give_many_fragments_each_within_the_limit() {
    let p = packet(&[], 1480, false, false, 0);
    for max in [68, 100, 576, 1000, 1280] {
        let frags = split(&p, max).unwrap();
        assert_eq!(
            frags.len(),
            1480usize.div_ceil((max - 20) / 8 * 8),
            "max {max}"
        );
        assert!(frags.iter().all(|f| f.len() <= max), "max {max}");
        assert_eq!(reassemble(&frags), (p[20..].to_vec(), 0, false));
    }
}

#[test]
fn a_packet_that_fits_is_one_fragment_identical_to_itself_even_with_df() {
    for df in [false, true] {
        let p = packet(&RECORD_ROUTE, 100, df, false, 0);
        assert_eq!(split(&p, p.len()).unwrap(), vec![p.clone()]);
        assert_eq!(fragments_needed(&p, 1500), Ok(1));
    }
}

#[test]
fn dont_fragment_is_refused_when_splitting_is_needed() {
    let p = packet(&[], 1480, true, false, 0);
    assert_eq!(split(&p, 1400), Err(FragError::DontFragment));
    assert_eq!(FragError::DontFragment.drop_reason(), DropReason::TooBig);
}

#[test]
fn only_copied_options_follow_into_later_fragments() {
    // NOP, Record Route (not copied), LSRR (copied), Security (copied):
    // 1 + 7 + 7 + 3 = 18 option bytes, 20 with padding.
    let mut opts = vec![1];
    opts.extend_from_slice(&RECORD_ROUTE);
    opts.extend_from_slice(&LOOSE_SOURCE_ROUTE);
    opts.extend_from_slice(&SECURITY);
    let p = packet(&opts, 1000, false, false, 0);
    assert_eq!(ipv4::Packet::new_checked(&p[..]).unwrap().header_len(), 40);
    let frags = split(&p, 400).unwrap();
    // The first fragment has the whole original header.
    let first = ipv4::Packet::new_checked(&frags[0][..]).unwrap();
    assert_eq!(first.options(), &p[20..40]);
    // Later ones: LSRR and Security only, 10 bytes padded to 12 with EOL.
    let mut copied = LOOSE_SOURCE_ROUTE.to_vec();
    copied.extend_from_slice(&SECURITY);
    copied.extend_from_slice(&[0, 0]);
    for f in &frags[1..] {
        let ip = ipv4::Packet::new_checked(&f[..]).unwrap();
        assert_eq!(ip.header_len(), 32);
        assert_eq!(ip.options(), &copied[..]);
    }
    // 400 - 40 = 360 bytes in the first, 400 - 32 = 368 in the others.
    assert_eq!(pieces(&frags)[1].2.len(), 368);
    assert_eq!(pieces(&frags)[0].2.len(), 360);
    assert_eq!(reassemble(&frags).0, &p[40..]);
}

#[test]
fn options_without_the_copied_flag_leave_later_fragments_with_a_bare_header() {
    let p = packet(&RECORD_ROUTE, 600, false, false, 0);
    let frags = split(&p, 300).unwrap();
    assert_eq!(
        ipv4::Packet::new_checked(&frags[0][..])
            .unwrap()
            .header_len(),
        28
    );
    for f in &frags[1..] {
        assert_eq!(ipv4::Packet::new_checked(&f[..]).unwrap().header_len(), 20);
    }
    assert_eq!(reassemble(&frags).0, &p[28..]);
}

#[test]
fn a_middle_fragment_splits_into_pieces_that_keep_its_offset_and_mf() {
    let p = packet(&[], 1480, false, true, 1480);
    let frags = split(&p, 600).unwrap();
    let (data, start, last_more) = reassemble(&frags);
    assert_eq!((start, last_more), (1480, true), "offsets add, MF kept");
    assert_eq!(data, &p[20..]);
}

#[test]
fn a_last_fragment_splits_into_pieces_whose_last_has_no_mf() {
    let p = packet(&[], 1001, false, false, 2960);
    let frags = split(&p, 500).unwrap();
    let (data, start, last_more) = reassemble(&frags);
    assert_eq!((start, last_more), (2960, false));
    assert_eq!(data, &p[20..]);
}

#[test]
fn a_header_that_leaves_no_room_for_data_is_refused() {
    let p = packet(&LOOSE_SOURCE_ROUTE, 200, false, false, 0);
    assert_eq!(split(&p, 28 + 7), Err(FragError::HeaderTooLarge));
    assert_eq!(split(&p, 28 + 8).map(|f| f.len()), Ok(25));
}

#[test]
fn too_few_or_too_small_buffers_are_refused() {
    let p = packet(&[], 1480, false, false, 0);
    let mut a = [0u8; 1500];
    let mut b = [0u8; 1500];
    assert_eq!(
        fragment_ipv4(&p, 576, &mut [&mut a[..], &mut b[..]]),
        Err(FragError::TooManyFragments { needed: 3 })
    );
    let mut small = [0u8; 100];
    assert_eq!(
        fragment_ipv4(&p, 1000, &mut [&mut a[..], &mut small[..]]),
        Err(FragError::BufferTooSmall)
    );
}

#[test]
fn malformed_packets_are_refused_with_their_reason() {
    let good = packet(&[], 1480, false, false, 0);
    let refused = |p: &[u8]| FragmentPlan::new(p, 576).unwrap_err();
    assert!(matches!(refused(&good[..19]), FragError::Malformed(_)));
    assert!(matches!(refused(&good[..1000]), FragError::Malformed(_)));
    let mut bad_sum = good.clone();
    bad_sum[8] ^= 1;
    assert_eq!(refused(&bad_sum), FragError::BadChecksum);
    assert_eq!(
        FragError::BadChecksum.drop_reason(),
        DropReason::BadIpChecksum
    );
    // An option whose length runs past the header, one with length 1.
    for opt in [[0x83u8, 9, 4, 0], [0x83, 1, 0, 0]] {
        let p = packet(&opt, 1000, false, false, 0);
        assert!(matches!(refused(&p), FragError::Malformed(_)), "{opt:?}");
    }
    // A non-last fragment whose data is not in 8-byte units.
    assert!(matches!(
        refused(&packet(&[], 1001, false, true, 0)),
        FragError::Malformed(_)
    ));
    // A fragment that would end past 65535 bytes.
    assert!(matches!(
        refused(&packet(&[], 1000, false, false, 65000)),
        FragError::Malformed(_)
    ));
    assert!(matches!(
        FragmentPlan::new(&crate::testkit::inner_v6(100), 576),
        Err(FragError::Malformed(_))
    ));
}

#[test]
fn cutting_in_place_gives_the_same_first_fragment_as_writing_it() {
    let p = packet(&LOOSE_SOURCE_ROUTE, 1300, false, false, 0);
    let plan = FragmentPlan::new(&p, 700).unwrap();
    let mut written = [0u8; 700];
    let n = plan.write(&p, 0, &mut written).unwrap();
    let mut in_place = p.clone();
    assert_eq!(plan.cut_to_first(&mut in_place), Ok(n));
    assert_eq!(&in_place[..n], &written[..n]);
    assert!(plan.write(&p, plan.count(), &mut written).is_err());
    assert_eq!(plan.fragment_len(plan.count()), None);
}

/// For every suite, tunnel family and NAT-T: fragments cut to the inner
/// MTU encapsulate to packets that fit the outer MTU.
#[test]
fn fragments_cut_to_the_inner_mtu_fit_the_link_once_encapsulated() {
    let p = packet(&[], 1480, false, false, 0);
    let suites = [
        (EncAlg::AesCbc128, AuthAlg::HmacSha1_96),
        (EncAlg::TripleDesCbc, AuthAlg::HmacSha512_256),
        (EncAlg::AesGcm256(GcmIcv::B16), AuthAlg::None),
        (EncAlg::Null, AuthAlg::HmacMd5_96),
    ];
    for (enc, auth) in suites {
        for (v6, natt) in [(false, false), (false, true), (true, false), (true, true)] {
            let (out, _) = sa_pair(enc, auth, tunnel(v6), natt, false, 64);
            let mut db = Sadb::new();
            db.install(&out, 0).unwrap();
            let sa = db.outbound(out.spi).unwrap();
            for mtu in [576, 1280, 1500] {
                let inner = inner_mtu(sa, mtu);
                let frags = split(&p, inner).unwrap();
                for f in &frags {
                    assert!(
                        encapsulated_len(sa, f.len()) <= mtu,
                        "{enc:?} v6 {v6} {mtu}"
                    );
                }
            }
        }
    }
}

fn arb_options() -> impl Strategy<Value = Vec<u8>> {
    let one = prop_oneof![
        Just(vec![1u8]),
        Just(RECORD_ROUTE.to_vec()),
        Just(LOOSE_SOURCE_ROUTE.to_vec()),
        Just(SECURITY.to_vec()),
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(kind, body)| {
            let mut o = vec![kind.max(2), body.len() as u8 + 2];
            o.extend_from_slice(&body);
            o
        }),
    ];
    proptest::collection::vec(one, 0..5)
        .prop_map(|v| v.concat())
        .prop_filter("options fit in 40 bytes", |o| o.len() <= 40)
}

proptest! {
    #[test]
    fn fragments_always_reassemble_to_the_original(
        options in arb_options(),
        payload_len in 0usize..4000,
        units in 0u16..400,
        mf in any::<bool>(),
        max_ip_len in 68usize..2000,
    ) {
        let payload_len = if mf { payload_len / 8 * 8 } else { payload_len };
        let offset = units * 8;
        let p = packet(&options, payload_len, false, mf, offset);
        let hl = ipv4::Packet::new_checked(&p[..]).unwrap().header_len();
        let plan = match FragmentPlan::new(&p, max_ip_len) {
            Err(FragError::HeaderTooLarge) => {
                prop_assert!(max_ip_len < hl + 8);
                return Ok(());
            }
            other => other.unwrap(),
        };
        let mut bufs = vec![vec![0u8; 2048]; plan.count()];
        let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        prop_assert_eq!(fragment_ipv4(&p, max_ip_len, &mut out), Ok(plan));
        let frags: Vec<Vec<u8>> = (0..plan.count())
            .map(|i| bufs[i][..plan.fragment_len(i).unwrap()].to_vec())
            .collect();
        prop_assert!(frags.iter().all(|f| f.len() <= max_ip_len));
        let (data, start, last_more) = reassemble(&frags);
        prop_assert_eq!(&data[..], &p[hl..]);
        prop_assert_eq!(start, usize::from(offset));
        prop_assert_eq!(last_more, mf);
        prop_assert_eq!(&frags[0][..hl], {
            let mut h = p[..hl].to_vec();
            let mut ip = ipv4::Packet::new_unchecked(&mut h[..]);
            ip.set_total_len(frags[0].len() as u16);
            ip.set_more_frags(plan.count() > 1 || mf);
            ip.fill_checksum();
            h
        }, "fragment 0 carries the original header");
        for f in &frags {
            prop_assert_eq!(header_fields(f), header_fields(&p));
        }
        for f in &frags[1..] {
            // Later fragments: copied options only, then EOL padding.
            let opts = ipv4::Packet::new_checked(&f[..]).unwrap().options().to_vec();
            let mut at = 0;
            while at < opts.len() && opts[at] != 0 {
                prop_assert!(opts[at] & 0x80 != 0, "option {:#x} not copied", opts[at]);
                at += usize::from(opts[at + 1]);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
        fix_up in any::<bool>(),
        max_ip_len in 0usize..400,
        out_len in 0usize..400,
    ) {
        if fix_up && bytes.len() >= 20 {
            // Get past new_checked so option parsing and splitting run.
            let total = bytes.len() as u16;
            let mut ip = ipv4::Packet::new_unchecked(&mut bytes[..]);
            ip.set_version(4);
            ip.set_total_len(total);
            ip.set_dont_frag(false);
            if ip.header_len() < 20 {
                ip.set_header_len(20);
            }
            ip.fill_checksum();
        }
        let mut bufs = vec![vec![0u8; out_len]; 8];
        let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
        let _ = fragment_ipv4(&bytes, max_ip_len, &mut out);
        if let Ok(plan) = FragmentPlan::new(&bytes, max_ip_len) {
            let mut copy = bytes.clone();
            let _ = plan.cut_to_first(&mut copy);
            let _ = plan.write(&bytes, plan.count() + 1, &mut copy);
        }
    }
}
