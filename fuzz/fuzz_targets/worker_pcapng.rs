//! Fuzz the type-5 worker's pcapng stream tracker: arbitrary bytes in arbitrary chunks
//! must give block heads and body bytes or a typed error, never a panic; it never consumes
//! more than given, and once it failed it keeps failing.
#![no_main]

use d4_worker::pcapng::PcapngTracker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let step = usize::from(data[0]) + 1;
    let max_block = 64 + u32::from(data[1]) * 256;
    let mut t = PcapngTracker::new(max_block, 4096);
    for chunk in data[2..].chunks(step) {
        let mut rest = chunk;
        while !rest.is_empty() {
            match t.advance(rest) {
                Ok(s) => {
                    assert!(s.consumed <= rest.len());
                    assert!(t.preamble().len() <= 4096);
                    if s.consumed == 0 {
                        break;
                    }
                    rest = &rest[s.consumed..];
                }
                Err(e) => {
                    assert_eq!(t.advance(b"more"), Err(e));
                    return;
                }
            }
        }
    }
});
