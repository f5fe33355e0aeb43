//! Every handshake the two stacks support completes in memory, and what `expected()` reads
//! from the bytes agrees with what the handshake was asked for (SNI, ALPN, version,
//! certificates as generated), with GREASE removed from the fingerprints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use d4_testkit::tlsgen::hello::{is_grease, ClientHelloMsg, EXT_GROUPS, EXT_SUPPORTED_VERSIONS};
use d4_testkit::tlsgen::{expected, handshake, HandshakeSpec, KeyKind, Stack, Transcript, Version};
use sha1::{Digest as _, Sha1};
use sha2::Sha256;

fn all_specs() -> Vec<HandshakeSpec> {
    let mut out = Vec::new();
    for stack in [Stack::Rustls, Stack::OpenSsl] {
        for version in [
            Version::Tls10,
            Version::Tls11,
            Version::Tls12,
            Version::Tls13,
        ] {
            if stack == Stack::Rustls && matches!(version, Version::Tls10 | Version::Tls11) {
                continue;
            }
            for key in [KeyKind::Rsa2048, KeyKind::EcdsaP256] {
                for chain in [false, true] {
                    for named in [false, true] {
                        for grease in [false, true] {
                            let mut s = HandshakeSpec::new(stack, version, key);
                            s.chain = chain;
                            s.grease = grease;
                            if named {
                                s.sni = Some("tls.d4.example".into());
                                s.alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                            }
                            out.push(s);
                        }
                    }
                }
            }
        }
    }
    out
}

fn client_hello(t: &Transcript) -> ClientHelloMsg {
    let r = &t.client_hello_record;
    assert_eq!(r[0], 22);
    assert_eq!(r[5], 1, "not a ClientHello");
    ClientHelloMsg::parse(&r[9..]).unwrap()
}

#[test]
fn rustls_refuses_tls10_and_tls11() {
    for v in [Version::Tls10, Version::Tls11] {
        assert!(handshake(&HandshakeSpec::new(Stack::Rustls, v, KeyKind::EcdsaP256)).is_err());
    }
}

#[test]
fn every_supported_combination_completes_and_matches_its_spec() {
    for spec in all_specs() {
        let t = handshake(&spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        let e = expected(&t);
        let what = format!("{spec:?}");
        // the transcript: client first, ClientHello record at its start, both sides wrote
        assert!(t.writes[0].0, "{what}");
        assert!(t.writes[0].1.starts_with(&t.client_hello_record), "{what}");
        assert!(t.writes.iter().any(|(c, _)| !c), "{what}");
        assert_eq!(
            t.cert_chain_der.len(),
            if spec.chain { 2 } else { 1 },
            "{what}"
        );
        // negotiated version, SNI, ALPN
        assert_eq!(e.version, spec.version.wire(), "{what}");
        assert_eq!(e.sni, spec.sni, "{what}");
        assert_eq!(e.alpn, spec.alpn, "{what}");
        if spec.version != Version::Tls13 {
            assert_eq!(e.server_alpn, spec.alpn.first().cloned(), "{what}");
        }
        // certificates: in clear before TLS 1.3, hashes of what was generated
        if spec.version == Version::Tls13 {
            assert!(e.cert_sha1.is_empty() && e.cert_sha256.is_empty(), "{what}");
        } else {
            let sha1: Vec<String> = t
                .cert_chain_der
                .iter()
                .map(|c| hex::encode(Sha1::digest(c)))
                .collect();
            let sha256: Vec<String> = t
                .cert_chain_der
                .iter()
                .map(|c| hex::encode(Sha256::digest(c)))
                .collect();
            assert_eq!(e.cert_sha1, sha1, "{what}");
            assert_eq!(e.cert_sha256, sha256, "{what}");
        }
        // fingerprints: shape and consistency with the hello
        let ch = client_hello(&t);
        let ver = match spec.version {
            Version::Tls10 => "10",
            Version::Tls11 => "11",
            Version::Tls12 => "12",
            Version::Tls13 => "13",
        };
        let alpn = if spec.alpn.is_empty() { "00" } else { "h2" };
        let sni = if spec.sni.is_some() { 'd' } else { 'i' };
        assert!(
            e.ja4.starts_with(&format!("t{ver}{sni}")),
            "{what}: {}",
            e.ja4
        );
        assert_eq!(&e.ja4[8..10], alpn, "{what}: {}", e.ja4);
        assert_eq!(e.ja4.len(), 36, "{what}: {}", e.ja4);
        assert!(e.ja4_r.starts_with(&e.ja4[..10]), "{what}");
        assert!(
            e.ja3.starts_with(&format!("{},", ch.legacy_version)),
            "{what}: {}",
            e.ja3
        );
        assert_eq!(e.ja3_digest.len(), 32);
        assert!(
            e.ja3s
                .starts_with(&format!("{},", spec.version.wire().min(0x0303))),
            "{what}: {}",
            e.ja3s
        );
        assert_eq!(e.ja3s_digest.len(), 32);
        for field in e.ja3.split(',') {
            assert!(
                !field.starts_with('-') && !field.ends_with('-') && !field.contains("--"),
                "{what}: {}",
                e.ja3
            );
        }
        for grease in ["2570", "64250", "6682", "56026", "10794", "14906"] {
            assert!(
                !e.ja3.split([',', '-']).any(|x| x == grease),
                "{what}: GREASE left in {}",
                e.ja3
            );
        }
        // GREASE: in the hello when asked, never otherwise
        let greasy = ch.ciphers.iter().any(|c| is_grease(*c));
        assert_eq!(greasy, spec.grease, "{what}");
        if spec.grease {
            assert_eq!(ch.ciphers.first(), Some(&0x0a0a));
            assert_eq!(ch.ciphers.last(), Some(&0xfafa));
            assert!(is_grease(ch.extensions.first().unwrap().0));
            assert!(is_grease(ch.extensions.last().unwrap().0));
            let groups = ch.ext(EXT_GROUPS).unwrap();
            assert!(
                is_grease(u16::from_be_bytes([groups[2], groups[3]])),
                "{what}"
            );
            if let Some(v) = ch.ext(EXT_SUPPORTED_VERSIONS) {
                assert!(is_grease(u16::from_be_bytes([v[1], v[2]])), "{what}");
            }
        }
    }
}

fn sorted_extensions(ja3: &str) -> String {
    let mut f: Vec<String> = ja3.split(',').map(String::from).collect();
    let mut e: Vec<u32> = f[2].split('-').map(|x| x.parse().unwrap()).collect();
    e.sort();
    f[2] = e
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("-");
    f.join(",")
}

#[test]
fn grease_changes_the_bytes_but_not_the_fingerprints() {
    for stack in [Stack::Rustls, Stack::OpenSsl] {
        for version in [Version::Tls12, Version::Tls13] {
            let mut spec = HandshakeSpec::new(stack, version, KeyKind::EcdsaP256);
            spec.sni = Some("grease.example".into());
            spec.alpn = vec![b"h2".to_vec()];
            let plain = expected(&handshake(&spec).unwrap());
            spec.grease = true;
            let t = handshake(&spec).unwrap();
            let greased = expected(&t);
            // rustls shuffles its extensions per connection: compare JA3 with them sorted
            assert_eq!(
                sorted_extensions(&plain.ja3),
                sorted_extensions(&greased.ja3),
                "{spec:?}"
            );
            if stack == Stack::OpenSsl {
                assert_eq!(plain.ja3, greased.ja3, "{spec:?}");
            }
            assert_eq!(plain.ja4, greased.ja4, "{spec:?}");
            assert_eq!(plain.ja4_r, greased.ja4_r, "{spec:?}");
            assert_eq!(plain.ja3s, greased.ja3s, "{spec:?}");
        }
    }
}

/// The record types and lengths at the start of a write.
fn records(w: &[u8]) -> Vec<(u8, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 5 <= w.len() {
        let n = usize::from(u16::from_be_bytes([w[i + 3], w[i + 4]]));
        out.push((w[i], n));
        i += 5 + n;
    }
    assert_eq!(i, w.len(), "write ends inside a record");
    out
}

#[test]
fn reframed_first_flights_keep_every_expectation() {
    use d4_testkit::tlsgen::reframe_first_flight;
    for stack in [Stack::Rustls, Stack::OpenSsl] {
        for version in [Version::Tls12, Version::Tls13] {
            let mut spec = HandshakeSpec::new(stack, version, KeyKind::Rsa2048);
            spec.chain = true;
            spec.sni = Some("reframe.example".into());
            spec.grease = stack == Stack::OpenSsl;
            let t = handshake(&spec).unwrap();
            let want = expected(&t);
            for from_client in [true, false] {
                for max in [16384, 1, 37, 500] {
                    let r = reframe_first_flight(&t, from_client, max);
                    let what = format!("{spec:?} client={from_client} max={max}");
                    assert_eq!(expected(&r), want, "{what}");
                    // the other side is untouched; the re-framed side sends the same messages
                    assert_eq!(r.stream(!from_client), t.stream(!from_client), "{what}");
                    let first = r.writes.iter().find(|(c, _)| *c == from_client).unwrap();
                    let recs = records(&first.1);
                    let hs: Vec<_> = recs.iter().take_while(|(ty, _)| *ty == 22).collect();
                    assert!(hs.iter().all(|(_, n)| *n <= max), "{what}");
                    if max == 16384 {
                        assert_eq!(hs.len(), 1, "{what}: one record for the whole flight");
                    }
                    if from_client {
                        assert!(first.1.starts_with(&r.client_hello_record), "{what}");
                        assert_eq!(
                            r.client_hello_record.len(),
                            t.client_hello_record.len() + 5 * (hs.len() - 1),
                            "{what}"
                        );
                    }
                }
            }
        }
    }
}
