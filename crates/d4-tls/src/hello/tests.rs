//! Unit tests of the hello and Certificate parsers, and the wire builders the other unit
//! tests of the crate share.

use super::*;

pub(crate) type Ext = (u16, Vec<u8>);

fn len16(v: &mut Vec<u8>, data: &[u8]) {
    v.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
    v.extend_from_slice(data);
}

fn len24(v: &mut Vec<u8>, data: &[u8]) {
    v.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes()[1..]);
    v.extend_from_slice(data);
}

fn u16s(values: &[u16]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_be_bytes()).collect()
}

/// A TLS record.
pub(crate) fn rec(content_type: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![content_type];
    v.extend_from_slice(&version.to_be_bytes());
    len16(&mut v, payload);
    v
}

/// A handshake message.
pub(crate) fn msg(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![msg_type];
    len24(&mut v, body);
    v
}

pub(crate) fn ext_sni(host: &str) -> Ext {
    let mut entry = vec![0];
    len16(&mut entry, host.as_bytes());
    let mut v = Vec::new();
    len16(&mut v, &entry);
    (EXT_SERVER_NAME, v)
}

pub(crate) fn ext_u16_list(typ: u16, values: &[u16]) -> Ext {
    let mut v = Vec::new();
    len16(&mut v, &u16s(values));
    (typ, v)
}

pub(crate) fn ext_points(values: &[u8]) -> Ext {
    let mut v = vec![u8::try_from(values.len()).unwrap()];
    v.extend_from_slice(values);
    (EXT_EC_POINT_FORMATS, v)
}

pub(crate) fn ext_alpn(protocols: &[&[u8]]) -> Ext {
    let mut list = Vec::new();
    for p in protocols {
        list.push(u8::try_from(p.len()).unwrap());
        list.extend_from_slice(p);
    }
    let mut v = Vec::new();
    len16(&mut v, &list);
    (EXT_ALPN, v)
}

pub(crate) fn ext_versions(values: &[u16]) -> Ext {
    let b = u16s(values);
    let mut v = vec![u8::try_from(b.len()).unwrap()];
    v.extend(b);
    (EXT_SUPPORTED_VERSIONS, v)
}

/// A ClientHello body; `exts: None` leaves the extensions block out entirely.
pub(crate) fn client_hello_body(version: u16, ciphers: &[u16], exts: Option<&[Ext]>) -> Vec<u8> {
    let mut v = version.to_be_bytes().to_vec();
    v.extend([0x11; 32]);
    v.push(32);
    v.extend([0x22; 32]);
    len16(&mut v, &u16s(ciphers));
    v.extend([1, 0]);
    if let Some(exts) = exts {
        let mut block = Vec::new();
        for (t, d) in exts {
            block.extend(t.to_be_bytes());
            len16(&mut block, d);
        }
        len16(&mut v, &block);
    }
    v
}

/// A ServerHello body.
pub(crate) fn server_hello_body(version: u16, cipher: u16, exts: &[Ext]) -> Vec<u8> {
    let mut v = version.to_be_bytes().to_vec();
    v.extend([0x33; 32]);
    v.push(0);
    v.extend(cipher.to_be_bytes());
    v.push(0);
    let mut block = Vec::new();
    for (t, d) in exts {
        block.extend(t.to_be_bytes());
        len16(&mut block, d);
    }
    len16(&mut v, &block);
    v
}

/// A TLS 1.2 Certificate body.
pub(crate) fn certificate_body(certs: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for c in certs {
        len24(&mut list, c);
    }
    let mut v = Vec::new();
    len24(&mut v, &list);
    v
}

#[test]
fn grease_values() {
    let grease: Vec<u16> = (0..16).map(|i| 0x0a0a + i * 0x1010).collect();
    assert_eq!(grease.first(), Some(&0x0a0a));
    assert_eq!(grease.last(), Some(&0xfafa));
    for v in 0..=u16::MAX {
        assert_eq!(is_grease(v), grease.contains(&v), "{v:#06x}");
    }
}

#[test]
fn client_hello_fields() {
    let exts = vec![
        (0x1a1a, vec![]),
        ext_sni("example.org"),
        ext_u16_list(EXT_SUPPORTED_GROUPS, &[0x2a2a, 29, 23]),
        ext_points(&[0, 1]),
        ext_u16_list(EXT_SIGNATURE_ALGORITHMS, &[0x0403, 0x0804]),
        ext_alpn(&[b"h2", b"http/1.1"]),
        ext_versions(&[0x3a3a, 0x0304, 0x0303]),
        (0xff01, vec![0]),
    ];
    let body = client_hello_body(0x0303, &[0x4a4a, 0x1301, 0xc02f], Some(&exts));
    let h = parse_client_hello(&body).unwrap();
    assert_eq!(h.legacy_version, 0x0303);
    assert_eq!(h.random, [0x11; 32]);
    assert_eq!(h.session_id, vec![0x22; 32]);
    assert_eq!(h.ciphers, vec![0x4a4a, 0x1301, 0xc02f]);
    assert_eq!(h.compression, vec![0]);
    let types: Vec<u16> = h.extensions.iter().map(|e| e.typ).collect();
    assert_eq!(types, vec![0x1a1a, 0, 10, 11, 13, 16, 43, 0xff01]);
    assert_eq!(h.extensions[7].data, vec![0]);
    assert_eq!(h.server_name.as_deref(), Some("example.org"));
    assert_eq!(h.supported_groups, vec![0x2a2a, 29, 23]);
    assert_eq!(h.ec_point_formats, vec![0, 1]);
    assert_eq!(h.signature_algorithms, vec![0x0403, 0x0804]);
    assert_eq!(h.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(h.supported_versions, vec![0x3a3a, 0x0304, 0x0303]);
}

#[test]
fn client_hello_without_extensions_block() {
    let body = client_hello_body(0x0301, &[4, 5], None);
    let h = parse_client_hello(&body).unwrap();
    assert!(h.extensions.is_empty());
    assert_eq!(h.ciphers, vec![4, 5]);
    assert_eq!(h.server_name, None);
}

#[test]
fn bad_extension_bodies_keep_the_raw_bytes() {
    let exts = vec![
        (EXT_SERVER_NAME, vec![0, 9, 0]),
        (EXT_SUPPORTED_GROUPS, vec![0, 3, 0, 29, 0]),
        (EXT_ALPN, vec![0, 3, 5, b'h', b'2']),
    ];
    let body = client_hello_body(0x0303, &[1], Some(&exts));
    let h = parse_client_hello(&body).unwrap();
    assert_eq!(h.extensions.len(), 3);
    assert_eq!(h.server_name, None);
    assert!(h.supported_groups.is_empty());
    assert!(h.alpn.is_empty());
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let exts = vec![ext_sni("a.example"), ext_alpn(&[b"h2"])];
    let body = client_hello_body(0x0303, &[0x1301, 0x1302], Some(&exts));
    assert!(parse_client_hello(&body).is_ok());
    // The extensions block may be absent, so only cuts inside it or before it fail.
    let fixed = 2 + 32 + 1 + 32 + 2 + 4 + 2;
    for cut in 0..body.len() {
        let r = parse_client_hello(&body[..cut]);
        if cut == fixed {
            assert!(r.is_ok(), "{cut}");
        } else {
            assert!(r.is_err(), "{cut}");
        }
    }
    let sh = server_hello_body(0x0303, 0xc02f, &[(0xff01, vec![0])]);
    assert!(parse_server_hello(&sh).is_ok());
    for cut in 0..sh.len() {
        let r = parse_server_hello(&sh[..cut]);
        assert_eq!(r.is_ok(), cut == 2 + 32 + 1 + 2 + 1, "{cut}");
    }
    let cert = certificate_body(&[b"abc", b"defg"]);
    for cut in 0..cert.len() {
        assert!(parse_certificate(&cert[..cut]).is_err(), "{cut}");
    }
}

#[test]
fn odd_cipher_list_is_an_error() {
    let mut body = client_hello_body(0x0303, &[], None);
    let at = 2 + 32 + 1 + 32;
    body[at + 1] = 1;
    body.insert(at + 2, 0x13);
    assert_eq!(
        parse_client_hello(&body),
        Err(HelloError {
            message: "ClientHello",
            field: "cipher_suites"
        })
    );
}

#[test]
fn server_hello_fields() {
    let exts = vec![
        (0xff01, vec![0]),
        (EXT_SUPPORTED_VERSIONS, vec![0x03, 0x04]),
        ext_alpn(&[b"h2"]),
    ];
    let body = server_hello_body(0x0303, 0x1301, &exts);
    let h = parse_server_hello(&body).unwrap();
    assert_eq!(h.legacy_version, 0x0303);
    assert_eq!(h.cipher, 0x1301);
    assert_eq!(h.compression, 0);
    assert_eq!(h.selected_version, Some(0x0304));
    assert_eq!(h.version(), 0x0304);
    assert_eq!(h.alpn.as_deref(), Some(&b"h2"[..]));
    assert!(!h.is_hello_retry_request());
    let types: Vec<u16> = h.extensions.iter().map(|e| e.typ).collect();
    assert_eq!(types, vec![0xff01, 43, 16]);
    let mut hrr = body.clone();
    hrr[2..34].copy_from_slice(&HELLO_RETRY_REQUEST_RANDOM);
    assert!(parse_server_hello(&hrr).unwrap().is_hello_retry_request());
}

#[test]
fn certificate_lists() {
    let body = certificate_body(&[b"first", b"second", b""]);
    assert_eq!(
        parse_certificate(&body).unwrap(),
        vec![b"first".to_vec(), b"second".to_vec(), vec![]]
    );
    assert_eq!(
        parse_certificate(&certificate_body(&[])).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    // TLS 1.3 form: context, then (cert, extensions) entries.
    let mut list = Vec::new();
    len24(&mut list, b"leaf");
    len16(&mut list, &[0, 5, 0, 0]);
    len24(&mut list, b"ca");
    len16(&mut list, &[]);
    let mut body = vec![2, 7, 7];
    len24(&mut body, &list);
    let c = parse_certificate13(&body).unwrap();
    assert_eq!(c.request_context, vec![7, 7]);
    assert_eq!(
        c.entries,
        vec![
            CertificateEntry {
                data: b"leaf".to_vec(),
                extensions: vec![0, 5, 0, 0]
            },
            CertificateEntry {
                data: b"ca".to_vec(),
                extensions: vec![]
            },
        ]
    );
    for cut in 0..body.len() {
        assert!(parse_certificate13(&body[..cut]).is_err(), "{cut}");
    }
}
