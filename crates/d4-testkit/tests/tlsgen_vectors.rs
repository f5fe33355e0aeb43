//! `expected()` against the vectors of `../shared/TLS.md` §2 (JA3, JA3S) and §4 (JA4,
//! `JA4_r`): hellos are built byte by byte from the vectors' lists, so the parsing, the
//! GREASE filtering, the formatting and the hashing are all checked.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use d4_testkit::tlsgen::hello::{
    ext_alpn, ext_point_formats, ext_sni, ext_supported_versions, ext_u16_list, ClientHelloMsg,
    ServerHelloMsg, EXT_GROUPS, EXT_SIG_ALGS,
};
use d4_testkit::tlsgen::{expected_from_streams, ja4_hash_part, md5_hex, Expected};

fn from_hello(ch: &ClientHelloMsg) -> Expected {
    expected_from_streams(&ch.to_record(0x0301), &[]).unwrap()
}

fn list(s: &str) -> Vec<u16> {
    s.split('-').map(|x| x.parse().unwrap()).collect()
}

fn hexlist(s: &str) -> Vec<u16> {
    s.split(',')
        .map(|x| u16::from_str_radix(x, 16).unwrap())
        .collect()
}

/// An extension with a body that does not matter for the fingerprints.
fn opaque(t: u16) -> (u16, Vec<u8>) {
    (t, vec![0])
}

#[test]
fn ja3_digests_of_the_vector_strings() {
    for (s, d) in [
        ("769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0", "ada70206e40642a3e4461f35503241d5"),
        ("769,4-5-10-9-100-98-3-6-19-18-99,,,", "de350869b8c85de67a350c8d186f11e6"),
        (
            "771,49199-49200-49195-49196-52392-52393-49171-49161-49172-49162-156-157-47-53-49170-10,5-10-11-13-65281-18,29-23-24-25,0",
            "c3a6cf0bf2e690ac8e1ecf6081f17a50",
        ),
        ("771,49200,65281-11", "0debd3853f330c574b05e0b6d882dc27"),
    ] {
        assert_eq!(md5_hex(s), d, "{s}");
    }
}

#[test]
fn ja3_vector_1_from_hello_bytes_with_and_without_trailing_grease() {
    let ciphers = list("47-53-5-10-49161-49162-49171-49172-50-56-19-4");
    let exts = vec![
        ext_sni("example.com"),
        ext_u16_list(EXT_GROUPS, &[23, 24, 25]),
        ext_point_formats(&[0]),
    ];
    let e = from_hello(&ClientHelloMsg::new(0x0301, ciphers.clone(), exts.clone()));
    assert_eq!(
        e.ja3,
        "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    );
    assert_eq!(e.ja3_digest, "ada70206e40642a3e4461f35503241d5");
    assert_eq!(e.sni.as_deref(), Some("example.com"));
    // GREASE last in every list (the reference sensor's trailing-separator bug) and first
    let mut gc = ciphers.clone();
    gc.push(0xfafa);
    gc.insert(0, 0x1a1a);
    let mut ge = vec![(0x0a0a, vec![])];
    ge.push(exts[0].clone());
    ge.push(ext_u16_list(EXT_GROUPS, &[23, 24, 25, 0x4a4a]));
    ge.push(exts[2].clone());
    ge.push((0xeaea, vec![0]));
    let g = from_hello(&ClientHelloMsg::new(0x0301, gc, ge));
    assert_eq!(g.ja3, e.ja3);
    assert_eq!(g.ja3_digest, "ada70206e40642a3e4461f35503241d5");
}

#[test]
fn ja3_vector_2_hello_without_extensions() {
    let mut ch = ClientHelloMsg::new(0x0301, list("4-5-10-9-100-98-3-6-19-18-99"), vec![]);
    let e = from_hello(&ch);
    assert_eq!(e.ja3, "769,4-5-10-9-100-98-3-6-19-18-99,,,");
    assert_eq!(e.ja3_digest, "de350869b8c85de67a350c8d186f11e6");
    // with no extensions block at all (the body simply ends)
    ch.extensions.clear();
    let mut rec = ch.to_record(0x0300);
    rec.truncate(rec.len() - 2);
    let len = (rec.len() - 5) as u16;
    rec[3..5].copy_from_slice(&len.to_be_bytes());
    rec[6..9].copy_from_slice(&(u32::from(len) - 4).to_be_bytes()[1..]);
    let e = expected_from_streams(&rec, &[]).unwrap();
    assert_eq!(e.ja3_digest, "de350869b8c85de67a350c8d186f11e6");
}

#[test]
fn ja3_vector_3_and_ja3s_of_the_reference_sensors_hellos() {
    let ciphers =
        list("49199-49200-49195-49196-52392-52393-49171-49161-49172-49162-156-157-47-53-49170-10");
    let exts = vec![
        opaque(5),
        ext_u16_list(EXT_GROUPS, &[29, 23, 24, 25]),
        ext_point_formats(&[0]),
        ext_u16_list(EXT_SIG_ALGS, &[0x0401]),
        opaque(65281),
        (18, vec![]),
    ];
    let ch = ClientHelloMsg::new(0x0303, ciphers, exts);
    let sh = ServerHelloMsg::new(0x0303, 49200, vec![opaque(65281), ext_point_formats(&[0])]);
    // the ServerHello shares its record with a Certificate message and the next ones
    let mut server = sh.to_record(0x0303);
    let cert = b"not a real certificate";
    let mut cert_msg = vec![
        11,
        0,
        0,
        (cert.len() + 6) as u8,
        0,
        0,
        (cert.len() + 3) as u8,
        0,
        0,
        cert.len() as u8,
    ];
    cert_msg.extend_from_slice(cert);
    server.extend_from_slice(&cert_msg);
    server.extend_from_slice(&[14, 0, 0, 0]);
    let len = (server.len() - 5) as u16;
    server[3..5].copy_from_slice(&len.to_be_bytes());
    let e = expected_from_streams(&ch.to_record(0x0301), &server).unwrap();
    assert_eq!(e.ja3_digest, "c3a6cf0bf2e690ac8e1ecf6081f17a50");
    assert_eq!(e.ja3s, "771,49200,65281-11");
    assert_eq!(e.ja3s_digest, "0debd3853f330c574b05e0b6d882dc27");
    assert_eq!(e.version, 0x0303);
    assert_eq!(e.cert_sha1, vec![sha1_hex(cert)]);
}

fn sha1_hex(b: &[u8]) -> String {
    use sha1::{Digest as _, Sha1};
    hex::encode(Sha1::digest(b))
}

#[test]
fn ja3s_hello_split_across_two_records() {
    let sh = ServerHelloMsg::new(0x0303, 49200, vec![opaque(65281), ext_point_formats(&[0])]);
    let whole = sh.to_record(0x0303);
    let msg = &whole[5..];
    let mut server = Vec::new();
    for part in [&msg[..10], &msg[10..]] {
        server.extend_from_slice(&[22, 3, 3]);
        server.extend_from_slice(&(part.len() as u16).to_be_bytes());
        server.extend_from_slice(part);
    }
    let e = expected_from_streams(&[], &server).unwrap();
    assert_eq!(e.ja3s_digest, "0debd3853f330c574b05e0b6d882dc27");
}

#[test]
fn ja4_hash_parts_of_the_vectors() {
    assert_eq!(
        ja4_hash_part("002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9"),
        "8daaf6152771"
    );
    assert_eq!(
        ja4_hash_part("0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"),
        "e5627efa2ab1"
    );
    assert_eq!(ja4_hash_part(""), "000000000000");
}

/// The t13d1516h2 hello of TLS.md §4 (ciphers and extensions in a scrambled wire order,
/// GREASE sprinkled in), with `alpn` as its ALPN value.
fn chrome_like(alpn: &[u8]) -> ClientHelloMsg {
    let mut ciphers = vec![0x5a5a];
    ciphers.extend(hexlist(
        "1301,1302,1303,c02b,c02f,c02c,c030,cca9,cca8,c013,c014,009c,009d,002f,0035",
    ));
    let mut exts = vec![(0x3a3a, vec![]), ext_sni("www.example.com")];
    for t in hexlist("0017,ff01,000a,000b,0023,0010,0005,000d,0012,0033,002d,002b,001b,4469,0015") {
        exts.push(match t {
            0x000a => ext_u16_list(EXT_GROUPS, &[0x8a8a, 0x001d, 0x0017, 0x0018]),
            0x000b => ext_point_formats(&[0]),
            0x0010 => ext_alpn(&[alpn, b"http/1.1"]),
            0x000d => ext_u16_list(
                EXT_SIG_ALGS,
                &hexlist("0403,0804,0401,0503,0805,0501,0806,0601"),
            ),
            0x002b => ext_supported_versions(&[0x7a7a, 0x0304, 0x0303]),
            t => opaque(t),
        });
    }
    exts.push((0xbaba, vec![0]));
    ClientHelloMsg::new(0x0303, ciphers, exts)
}

#[test]
fn ja4_full_vector_from_hello_bytes() {
    let e = from_hello(&chrome_like(b"h2"));
    assert_eq!(e.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(
        e.ja4_r,
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_\
         0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_\
         0403,0804,0401,0503,0805,0501,0806,0601"
    );
    assert_eq!(e.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
}

#[test]
fn ja4_non_alphanumeric_alpn_uses_hex_digits() {
    let e = from_hello(&chrome_like(&[0x9a, 0xb9]));
    assert_eq!(e.ja4, "t13d151699_8daaf6152771_e5627efa2ab1");
    let e = from_hello(&chrome_like(&[0xc3, 0x2a]));
    assert!(e.ja4.starts_with("t13d1516ca_"), "{}", e.ja4);
    let e = from_hello(&chrome_like(b"x"));
    assert!(e.ja4.starts_with("t13d1516xx_"), "{}", e.ja4);
}

#[test]
fn ja4_raw_vector_version_from_supported_versions() {
    let ciphers = hexlist(
        "1301,1302,1303,c02b,c02f,cca9,cca8,c02c,c030,c00a,c009,c013,c014,009c,009d,002f,0035",
    );
    let mut exts = vec![ext_sni("d4.example")];
    for t in hexlist("0017,ff01,000a,000b,0023,0010,0005,0022,0033,002b,000d,002d,001c,0015") {
        exts.push(match t {
            0x0010 => ext_alpn(&[b"h2"]),
            0x000d => ext_u16_list(
                EXT_SIG_ALGS,
                &hexlist("0403,0503,0603,0804,0805,0806,0401,0501,0601,0203,0201"),
            ),
            0x002b => ext_supported_versions(&[0x0304, 0x0303]),
            t => opaque(t),
        });
    }
    let e = from_hello(&ClientHelloMsg::new(0x0303, ciphers, exts));
    assert_eq!(
        e.ja4_r,
        "t13d1715h2_002f,0035,009c,009d,1301,1302,1303,c009,c00a,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_\
         0005,000a,000b,000d,0015,0017,001c,0022,0023,002b,002d,0033,ff01_\
         0403,0503,0603,0804,0805,0806,0401,0501,0601,0203,0201"
    );
    assert_eq!(e.ja4, "t13d1715h2_5b57614c22b0_3d5424432f57");
    assert_eq!(e.ja3.split(',').next(), Some("771"));
}

#[test]
fn ja4_tls10_hello_with_only_sni() {
    let ciphers: Vec<u16> = (1..=23).collect();
    let e = from_hello(&ClientHelloMsg::new(
        0x0301,
        ciphers,
        vec![ext_sni("old.example")],
    ));
    assert!(e.ja4.starts_with("t10d230100_"), "{}", e.ja4);
    assert!(e.ja4.ends_with("_000000000000"), "{}", e.ja4);
    let without_sni = from_hello(&ClientHelloMsg::new(0x0301, vec![0x002f], vec![]));
    assert_eq!(
        without_sni.ja4,
        format!("t10i010000_{}_000000000000", ja4_hash_part("002f"))
    );
}
