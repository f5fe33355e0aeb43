//! Fuzz the backscatter classifier and detector: the input is a sequence of frames
//! (`[link selector, time step, length, bytes...]*`); classification must never panic and
//! the detector (with tiny caps, to exercise expiry and eviction) must stay within them.
#![no_main]

use d4_packet::{classify, LinkType};
use d4_pibs::{DetectConfig, Detector};
use libfuzzer_sys::fuzz_target;

const LINKS: [u32; 10] = [0, 1, 12, 101, 108, 113, 228, 229, 276, 147];

fuzz_target!(|data: &[u8]| {
    let mut det = Detector::new(DetectConfig {
        window_secs: 10,
        max_initiators: 8,
        max_flows: 8,
    });
    let mut now = 0u64;
    let mut rest = data;
    while rest.len() >= 3 {
        let link = LinkType::from_pcap(LINKS[usize::from(rest[0]) % LINKS.len()]);
        now += u64::from(rest[1] % 16);
        let len = usize::from(rest[2]).min(rest.len() - 3);
        let frame = &rest[3..3 + len];
        rest = &rest[3 + len..];
        let pkt = classify(link, frame);
        let _ = det.observe(now, &pkt);
        let (initiators, flows) = det.state_len();
        assert!(initiators <= 8 && flows <= 8);
    }
});
