//! IPv4 fragmentation (`pipeline::fragment_ipv4`): no panic on any packet
//! and MTU, and whatever is split gives fragments that each fit the MTU,
//! carry valid headers and tile the original payload exactly. The first two
//! bytes are the MTU, the rest the packet (also tried with version, Total
//! Length, DF and checksum fixed up so most inputs reach the splitting).
#![no_main]

use dataplane::pipeline::{fragment_ipv4, FragmentPlan};
use dataplane::wire::ipv4::Packet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mtu, packet)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max_ip_len = usize::from(u16::from_be_bytes(*mtu));
    check(packet, max_ip_len);
    if packet.len() >= 20 {
        let mut owned = packet.to_vec();
        let total_len = u16::try_from(owned.len()).unwrap_or(u16::MAX);
        let mut p = Packet::new_unchecked(&mut owned[..]);
        p.set_version(4);
        p.set_total_len(total_len);
        p.set_dont_frag(false);
        p.fill_checksum();
        check(&owned, max_ip_len);
    }
});

fn check(packet: &[u8], max_ip_len: usize) {
    let Ok(plan) = FragmentPlan::new(packet, max_ip_len) else {
        return;
    };
    let mut bufs: Vec<Vec<u8>> = (0..plan.count())
        .map(|i| vec![0u8; plan.fragment_len(i).expect("within the plan")])
        .collect();
    let mut out: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
    assert_eq!(fragment_ipv4(packet, max_ip_len, &mut out), Ok(plan));
    let original = Packet::new_checked(packet).expect("planned");
    let mut data = Vec::new();
    for (i, f) in bufs.iter().enumerate() {
        let ip = Packet::new_checked(&f[..]).expect("a fragment is a packet");
        assert!(ip.verify_checksum());
        assert!(plan.count() == 1 || f.len() <= max_ip_len);
        assert_eq!(
            usize::from(ip.frag_offset()),
            usize::from(original.frag_offset()) + data.len()
        );
        let last = i + 1 == plan.count();
        assert_eq!(ip.more_frags(), !last || original.more_frags());
        data.extend_from_slice(ip.payload());
    }
    assert_eq!(&data[..], original.payload());
}
