//! Fuzz the passivedns CSV line parser: any bytes give an observation or a typed error,
//! never a panic; parsed names carry no trailing dot and no upper case.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|&b| b == b'\n') {
        if let Ok(obs) = d4_pdns::parse_line(line) {
            assert!(obs.rrname == "." || !obs.rrname.ends_with('.'));
            assert!(!obs.rrname.chars().any(|c| c.is_ascii_uppercase()));
        }
    }
});
