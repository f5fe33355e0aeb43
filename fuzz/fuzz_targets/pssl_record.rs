//! Fuzz what `d4 pssl ingest` reads from sensors and files: a `ja3-jl` line
//! (`d4_pssl::parse_record`, through the ingester's certificate cache and without it), a
//! certificate file (`d4_pssl::certfile::parse_bytes`: PEM blocks or DER) and the format
//! sniffer. Nothing may panic; the cached and uncached parses agree; a parsed record's
//! session names only certificates its batch holds.
#![no_main]

use d4_pssl::{certfile, parse_record, parse_record_cached, sniff, CertCache};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let plain = parse_record(data);
    let mut cache = CertCache::new(8);
    let cached = parse_record_cached(data, &mut cache);
    // twice through the cache: the second read comes from it
    let again = parse_record_cached(data, &mut cache);
    assert_eq!(plain.is_ok(), cached.is_ok());
    if let (Ok(a), Ok(b), Ok(c)) = (&plain, &cached, &again) {
        assert_eq!(a, b);
        assert_eq!(b, c);
        for s in &a.batch.sessions {
            for sha1 in &s.chain {
                assert!(a.batch.certificates.iter().any(|c| &c.sha1 == sha1));
            }
        }
    }
    for (cert, key) in certfile::parse_bytes(data).into_iter().flatten() {
        assert_eq!(cert.spki_sha256, key.spki_sha256);
        assert_eq!(cert.sha1.len(), 40);
    }
    let _ = sniff::sniff(data);
});
