//! Fuzz the meta-header assembler: arbitrary type-2 payload pieces (split at 0xFF bytes)
//! must give a checked header or a typed error, never a panic, within the bound.
#![no_main]

use d4_proto::meta::{valid_ext_type, MetaHeaderBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut b = MetaHeaderBuilder::with_max(4096);
    for piece in data.split(|&c| c == 0xFF) {
        if b.push(piece).is_err() {
            assert!(b.len() <= 4096);
            return;
        }
    }
    if let Ok(m) = b.finish() {
        assert!(valid_ext_type(m.ext_type()));
        assert_eq!(m.get_str("type"), Some(m.ext_type()));
    }
});
