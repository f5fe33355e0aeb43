//! The suite's scenario: five sessions written as `ja3-jl` lines (ours and the reference
//! sensor's), parsed with [`crate::record::parse_record`] into one batch, and what every
//! query must answer for them, worked out by hand from the lines below.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::data::{certs, record_line, reference_line, Certs, Rec};
use crate::model::{Batch, BatchBuilder};
use crate::record::parse_record;

/// JA3 strings (raw); the records carry their MD5 too.
pub const JA3_1: &str = "771,4865-4866-4867,0-10-11-13-43,29-23-24,0";
pub const JA3_2: &str = "769,47-53-5-10,0-10-11,23-24-25,0";
pub const JA3S_1: &str = "771,4865,43-51";
pub const JA4_X: &str = "t13d1516h2_8daaf6152771_e5627efa2ab1";
pub const JA4_Y: &str = "t12d0403ht_5b57614c22b0_3d5424432f57";

/// MD5 of a string, lowercase hex (computed by the suite, not by the code under test).
pub fn md5_hex(s: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(s.as_bytes()))
}

/// The scenario's certificates, lines and the batch they parse into.
pub struct Scenario {
    pub certs: Certs,
    pub lines: Vec<String>,
}

impl Scenario {
    /// The sessions (`S1`..`S5` in the checks):
    /// - S1 T0, 192.0.2.10:50000 → 198.51.100.7:443, JA3_1, JA3S_1, JA4_X, SNI a.example.test, chain `[a, ca]`
    /// - S2 T0+3600 (written with a +01:00 offset), 192.0.2.11:50001 → 198.51.100.7:443, same fingerprints and chain
    /// - S3 T0+7200, `[2001:db8:1::5]:40000` → `[2001:db8:2::1]:8443`, JA3_2, JA4_Y, SNI b.example.test, chain `[b]`
    /// - S4 T0+10, the reference's record: 192.0.2.10:50002 → 198.51.100.9:443, JA3_1, chain `[a2]`
    /// - S5 T0+20, a partial record: JA3_2 only
    pub fn new() -> Scenario {
        let certs = certs();
        let c = &certs;
        let lines = vec![
            record_line(&Rec {
                ts: "2024-01-01T00:00:00.25Z",
                client: Some(("192.0.2.10", 50000)),
                server: Some(("198.51.100.7", 443)),
                ja3: JA3_1,
                ja3s: JA3S_1,
                ja4: JA4_X,
                sni: "a.example.test",
                chain: vec![&c.a, &c.ca],
            }),
            record_line(&Rec {
                ts: "2024-01-01T02:00:00.999999999+01:00",
                client: Some(("192.0.2.11", 50001)),
                server: Some(("198.51.100.7", 443)),
                ja3: JA3_1,
                ja3s: JA3S_1,
                ja4: JA4_X,
                sni: "a.example.test",
                chain: vec![&c.a, &c.ca],
            }),
            record_line(&Rec {
                ts: "2024-01-01T02:00:00Z",
                client: Some(("2001:db8:1::5", 40000)),
                server: Some(("2001:db8:2::1", 8443)),
                ja3: JA3_2,
                ja4: JA4_Y,
                sni: "b.example.test",
                chain: vec![&c.b],
                ..Rec::default()
            }),
            reference_line(&Rec {
                ts: "2024-01-01T00:00:10.123456789Z",
                client: Some(("192.0.2.10", 50002)),
                server: Some(("198.51.100.9", 443)),
                ja3: JA3_1,
                chain: vec![&c.a2],
                ..Rec::default()
            }),
            record_line(&Rec {
                ts: "2024-01-01T00:00:20Z",
                ja3: JA3_2,
                ..Rec::default()
            }),
        ];
        Scenario { certs, lines }
    }

    /// The batch of lines `which` (indexes into [`Scenario::lines`]).
    pub fn batch_of(&self, which: &[usize]) -> Batch {
        let mut b = BatchBuilder::new();
        for i in which {
            let p = parse_record(self.lines[*i].as_bytes()).expect("scenario line parses");
            assert_eq!(p.bad_certificates, 0);
            b.extend(p.batch);
        }
        b.build()
    }

    /// Every session's batch.
    pub fn batch(&self) -> Batch {
        self.batch_of(&[0, 1, 2, 3, 4])
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario::new()
    }
}

/// Five sessions of one JA3 of their own, clients 10.0.0.1-5,
/// servers 203.0.113.1-5:443, each with certificate `a`, at T0+1..T0+5: answers of five
/// items for the paging checks.
pub fn five(c: &Certs) -> (String, Batch) {
    let ja3 = "771,49195-49199,0-23-65281,29-23,0";
    let mut b = BatchBuilder::new();
    for i in 1..=5u8 {
        let ts = format!("2024-01-01T00:00:0{i}Z");
        let client = format!("10.0.0.{i}");
        let server = format!("203.0.113.{i}");
        let line = record_line(&Rec {
            ts: &ts,
            client: Some((&client, 40000 + u16::from(i))),
            server: Some((&server, 443)),
            ja3,
            sni: "five.example.test",
            chain: vec![&c.a],
            ..Rec::default()
        });
        b.extend(parse_record(line.as_bytes()).expect("paging line").batch);
    }
    (md5_hex(ja3), b.build())
}
