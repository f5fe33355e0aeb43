//! Fuzz certificate reading (`d4_tls::cert::parse`), the Go `x509.Certificate` JSON
//! (`d4_tls::gojson::certificate_json`) and the TLSH field on arbitrary bytes: nothing may
//! panic; a certificate that parses also encodes, its JSON is a valid object holding
//! `CertHash`, `Raw` and `IsCA`; the TLSH digest, when there is one, is 70 lowercase hex
//! digits.
#![no_main]

use std::collections::HashMap;

use d4_tls::{cert, gojson, tlsh};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;

fuzz_target!(|data: &[u8]| {
    let info = cert::parse(data);
    let json = gojson::certificate_json(data);
    assert_eq!(info.is_ok(), json.is_ok());
    if let (Ok(info), Ok(json)) = (info, json) {
        // Big integers exceed f64: read the object with its values left raw.
        let v: HashMap<String, Box<RawValue>> =
            serde_json::from_str(json.get()).expect("valid JSON object");
        assert_eq!(v["CertHash"].get(), format!("\"{}\"", info.sha1));
        assert!(v.contains_key("Raw") && v.contains_key("IsCA"));
        let input = tlsh::reference_input("771,4865,0,29,0", "771,4865,43", &[info]);
        if let Some(d) = tlsh::digest(input.as_bytes()) {
            assert_eq!(d.len(), 70);
        }
    }
    if let Some(d) = tlsh::digest(data) {
        assert_eq!(d.len(), 70);
        assert!(d
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
});
