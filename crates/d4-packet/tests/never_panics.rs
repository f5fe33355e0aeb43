#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: hostile bytes into the classifier never panic, whatever the link type.

use d4_packet::{classify, LinkType};
use proptest::prelude::*;

const LINKS: [u32; 10] = [0, 1, 12, 101, 108, 113, 228, 229, 276, 147];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn classify_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), li in 0usize..LINKS.len()) {
        let _ = classify(LinkType::from_pcap(LINKS[li]), &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Hostile bytes into `decode`: no panic, and a payload is always inside the frame.
    #[test]
    fn decode_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), li in 0usize..LINKS.len()) {
        let frame = &bytes[..];
        let inside = |p: &[u8]| {
            let (f, q) = (frame.as_ptr_range(), p.as_ptr_range());
            p.is_empty() || (f.start <= q.start && q.end <= f.end)
        };
        match d4_packet::decode(LinkType::from_pcap(LINKS[li]), frame) {
            d4_packet::Transport::Tcp(s) => prop_assert!(inside(s.payload)),
            d4_packet::Transport::Udp(d) => prop_assert!(inside(d.payload)),
            d4_packet::Transport::Skip(_) => {}
        }
    }
}
