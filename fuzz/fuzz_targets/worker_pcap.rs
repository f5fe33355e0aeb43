//! Fuzz the type-1 worker's pcap stream tracker: arbitrary bytes in arbitrary chunks must
//! give record boundaries or a typed error, never a panic, and never consume more than given.
#![no_main]

use d4_worker::pcap::PcapTracker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let step = usize::from(data[0]) + 1;
    let mut t = PcapTracker::new(65_536);
    for chunk in data[1..].chunks(step) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match t.advance(rest) {
                Ok(s) => {
                    assert!(s.consumed <= rest.len());
                    if s.consumed == 0 {
                        break;
                    }
                    rest = &rest[s.consumed..];
                }
                Err(_) => return,
            }
        }
    }
});
