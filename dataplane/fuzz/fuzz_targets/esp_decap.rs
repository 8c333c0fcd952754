//! The whole inbound ESP path (`esp::decap`) on hostile packets: a valid
//! packet of a random suite, mode and encapsulation is XORed with the fuzz
//! input. Nothing may panic, and a packet may only be accepted if what it
//! decrypts to is exactly what was sent: no forgery gets through.
#![no_main]

use dataplane::api::EspMode;
use dataplane::counters::DropCounters;
use dataplane::esp::Decapped;
use dataplane::sa::Sadb;
use dataplane::testkit::{all_suites, decap_one, encap_one, inner_v4, inner_v6, sa_pair, tunnel};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mask)) = data.split_first() else {
        return;
    };
    let suites = all_suites();
    let (enc, auth) = suites[usize::from(sel) % suites.len()];
    let mode = match sel >> 6 {
        0 => tunnel(false),
        1 => tunnel(true),
        _ => EspMode::Transport,
    };
    let natt = sel & 0x20 != 0;
    let inner_is_v6 = match mode {
        EspMode::Transport => sel >> 6 == 3,
        _ => sel & 0x10 != 0,
    };
    let (out, inb) = sa_pair(enc, auth, mode, natt, false, 64);
    let (mut a, mut b) = (Sadb::new(), Sadb::new());
    a.install(&out, 0).expect("outbound SA");
    b.install(&inb, 0).expect("inbound SA");
    let inner = if inner_is_v6 {
        inner_v6(mask.len() % 200)
    } else {
        inner_v4(mask.len() % 200)
    };
    let mut packet = encap_one(a.outbound(out.spi).expect("installed"), &inner).expect("encap");
    // The mask may also cut the packet short or extend it.
    if mask.len() > packet.len() + 8 {
        packet.resize(mask.len() - 8, 0);
    }
    for (p, m) in packet.iter_mut().zip(mask) {
        *p ^= m;
    }
    let global = DropCounters::default();
    let (result, got) = decap_one(&b, &packet, &global);
    if let Ok(Decapped::Inner { .. }) = result {
        // Transport mode leaves the IP header unprotected (a router may
        // change its TTL); what ESP protects is everything after it.
        let protected_from = match mode {
            EspMode::Transport if inner_is_v6 => 40,
            EspMode::Transport => 20,
            _ => 0,
        };
        assert_eq!(
            got.get(protected_from..),
            inner.get(protected_from..),
            "a modified packet decrypted to something else"
        );
    }
});
