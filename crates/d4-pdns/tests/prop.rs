//! Property tests of the parser: it never panics, and a line built from valid parts parses
//! back to the normalized parts whatever the `||` inside a quoted TXT answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use d4_pdns::parse_line;
use proptest::prelude::*;

proptest! {
    #[test]
    fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn never_panics_on_field_soup(fields in proptest::collection::vec("[a-zA-Z0-9.:|\" \\\\-]{0,12}", 0..14)) {
        let _ = parse_line(fields.join("||").as_bytes());
    }

    #[test]
    fn txt_roundtrip(
        secs in 0u64..4_000_000_000,
        micros in 0u32..1_000_000,
        labels in proptest::collection::vec("[a-zA-Z0-9-]{1,10}", 1..5),
        txt in "[ -!#-~]{0,40}",
        count in 0u64..1_000_000,
    ) {
        let name = labels.join(".");
        let line = format!("{secs}.{micros:06}||10.0.0.1||10.0.0.2||IN||{name}.||TXT||\"{txt}\"||60||{count}");
        let o = parse_line(line.as_bytes()).unwrap();
        prop_assert_eq!(o.rrname, name.to_ascii_lowercase());
        prop_assert_eq!(o.rrtype, 16);
        prop_assert_eq!(o.rdata.as_ref(), format!("\"{txt}\""));
        prop_assert_eq!(o.count, count);
        prop_assert_eq!(o.time_ms, secs * 1000 + u64::from(micros) / 1000);
    }
}
