//! Fuzz the pcap / pcapng / gzip reader with the analyzer behind it: never panic, never
//! hang, whatever the file says about its record lengths.
#![no_main]

use d4_pibs::{for_each_record, Analyzer, DetectConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut an = Analyzer::new(DetectConfig::default());
    let _ = for_each_record(data, |rec| {
        let _ = an.process(rec);
        Ok(())
    });
});
