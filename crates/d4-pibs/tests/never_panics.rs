#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests: hostile bytes behind plausible headers and into the capture reader never
//! panic, and the detector accepts whatever the classifier returns (random bytes into the
//! classifier alone: `crates/d4-packet/tests/never_panics.rs`).

use d4_pibs::packet::{classify, LinkType};
use d4_pibs::synth::{eth_ip, ipv4, pcap_file, tcp_header};
use d4_pibs::{for_each_record, Analyzer, DetectConfig};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Random bytes behind plausible headers reach the deeper parsers.
    #[test]
    fn classify_random_ip_payloads(
        body in proptest::collection::vec(any::<u8>(), 0..120),
        v6 in any::<bool>(),
        proto in prop::sample::select(vec![1u8, 6, 17, 58, 0, 43, 44, 51, 60]),
        ihl in 0u8..16,
    ) {
        let mut ip = if v6 {
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(body.len() as u16).to_be_bytes());
            h[6] = proto;
            h
        } else {
            let mut h = vec![0u8; 20];
            h[0] = 0x40 | ihl;
            h[2..4].copy_from_slice(&((20 + body.len()) as u16).to_be_bytes());
            h[9] = proto;
            h
        };
        ip.extend_from_slice(&body);
        let mut an = Analyzer::new(DetectConfig::default());
        let frame = eth_ip(&ip);
        for cut in [frame.len(), frame.len() / 2, 20] {
            let cut = cut.min(frame.len());
            let p = classify(LinkType::Ethernet, &frame[..cut]);
            let _ = p;
        }
        let cap = pcap_file(1, &[(1, frame)]);
        for_each_record(&cap[..], |rec| { let _ = an.process(rec); Ok(()) }).unwrap();
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// A valid capture with random corruption: the reader returns, never panics.
    #[test]
    fn reader_on_corrupted_capture(flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..20), cut in 0usize..400, ng in any::<bool>()) {
        let frame = eth_ip(&ipv4([1,2,3,4].into(), [5,6,7,8].into(), 6, &[], &tcp_header(1, 2, 0x12)));
        let recs = vec![(1, frame.clone()), (2, frame.clone()), (3, frame)];
        let mut cap = if ng { d4_pibs::synth::pcapng_file(1, &recs) } else { pcap_file(1, &recs) };
        for (at, v) in flips {
            if let Some(b) = cap.get_mut(at) { *b = v; }
        }
        cap.truncate(cut.max(1));
        let mut an = Analyzer::new(DetectConfig::default());
        let _ = for_each_record(&cap[..], |rec| { let _ = an.process(rec); Ok(()) });
    }
}
