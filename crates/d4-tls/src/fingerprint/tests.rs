//! Every JA3/JA3S/JA4 vector of `../shared/TLS.md` §2 and §4 (the inputs rebuilt as wire
//! hellos from the lists the vectors name), and GREASE in every position of every list.

use super::*;
use crate::hello::tests::{
    client_hello_body, ext_alpn, ext_points, ext_sni, ext_u16_list, ext_versions,
    server_hello_body, Ext,
};
use crate::hello::{
    parse_client_hello, parse_server_hello, EXT_SIGNATURE_ALGORITHMS, EXT_SUPPORTED_GROUPS,
};

fn hello(version: u16, ciphers: &[u16], exts: &[Ext]) -> ClientHello {
    parse_client_hello(&client_hello_body(version, ciphers, Some(exts))).unwrap()
}

fn plain(typ: u16) -> Ext {
    (typ, vec![])
}

#[test]
fn md5_vectors() {
    for (s, d) in [
        (
            "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0",
            "ada70206e40642a3e4461f35503241d5",
        ),
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
fn ja3_vector_1() {
    let h = hello(
        769,
        &[47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
        &[
            ext_sni("a.example"),
            ext_u16_list(EXT_SUPPORTED_GROUPS, &[23, 24, 25]),
            ext_points(&[0]),
        ],
    );
    let s = ja3(&h);
    assert_eq!(
        s,
        "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    );
    assert_eq!(md5_hex(&s), "ada70206e40642a3e4461f35503241d5");
}

#[test]
fn ja3_vector_2_without_extensions() {
    let body = client_hello_body(769, &[4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99], None);
    let h = parse_client_hello(&body).unwrap();
    let s = ja3(&h);
    assert_eq!(s, "769,4-5-10-9-100-98-3-6-19-18-99,,,");
    assert_eq!(md5_hex(&s), "de350869b8c85de67a350c8d186f11e6");
}

/// The reference sensor's own test ClientHello, with GREASE added first, inside and last in
/// every list: the digest must not change (the reference's trailing `-` bug).
#[test]
fn ja3_vector_3_with_grease_everywhere() {
    let ciphers = [
        49199, 49200, 49195, 49196, 52392, 52393, 49171, 49161, 49172, 49162, 156, 157, 47, 53,
        49170, 10,
    ];
    let exts = |grease: bool| {
        let g = |v: u16| if grease { vec![plain(v)] } else { vec![] };
        let mut e = g(0x0a0a);
        e.push(plain(5));
        e.push(ext_u16_list(
            EXT_SUPPORTED_GROUPS,
            &if grease {
                vec![0x1a1a, 29, 23, 0x2a2a, 24, 25, 0xfafa]
            } else {
                vec![29, 23, 24, 25]
            },
        ));
        e.extend(g(0x3a3a));
        e.push(ext_points(&[0]));
        e.push(ext_u16_list(EXT_SIGNATURE_ALGORITHMS, &[0x0401]));
        e.push(plain(65281));
        e.push(plain(18));
        e.extend(g(0xeaea));
        e
    };
    let want = "771,49199-49200-49195-49196-52392-52393-49171-49161-49172-49162-156-157-47-53-49170-10,5-10-11-13-65281-18,29-23-24-25,0";
    let clean = hello(771, &ciphers, &exts(false));
    assert_eq!(ja3(&clean), want);
    let mut greasy_ciphers = vec![0x5a5a];
    greasy_ciphers.extend(&ciphers[..8]);
    greasy_ciphers.push(0x6a6a);
    greasy_ciphers.extend(&ciphers[8..]);
    greasy_ciphers.push(0x7a7a);
    let greasy = hello(771, &greasy_ciphers, &exts(true));
    assert_eq!(ja3(&greasy), want);
    assert_eq!(md5_hex(&ja3(&greasy)), "c3a6cf0bf2e690ac8e1ecf6081f17a50");
}

#[test]
fn ja3s_vector() {
    let h = parse_server_hello(&server_hello_body(771, 49200, &[plain(65281), plain(11)])).unwrap();
    assert_eq!(ja3s(&h), "771,49200,65281-11");
    assert_eq!(md5_hex(&ja3s(&h)), "0debd3853f330c574b05e0b6d882dc27");
    // GREASE at the end of the server's extensions: no trailing separator.
    let h = parse_server_hello(&server_hello_body(
        771,
        49200,
        &[plain(0x0a0a), plain(65281), plain(11), plain(0xdada)],
    ))
    .unwrap();
    assert_eq!(ja3s(&h), "771,49200,65281-11");
}

const SIGS_1: [u16; 8] = [
    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
];

/// The TLS 1.3 hello of the §4 b and c vectors (15 ciphers, 16 extensions with SNI and ALPN),
/// in a wire order other than sorted, with GREASE.
fn chrome_like(alpn: &[u8]) -> ClientHello {
    let ciphers = [
        0x8a8a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let exts = vec![
        plain(0x9a9a),
        plain(0x001b),
        plain(0x0017),
        plain(0xff01),
        ext_alpn(&[alpn, b"http/1.1"]),
        ext_u16_list(EXT_SIGNATURE_ALGORITHMS, &SIGS_1),
        ext_versions(&[0xbaba, 0x0304, 0x0303]),
        plain(0x0005),
        plain(0x0023),
        plain(0x0033),
        ext_sni("clientservices.example"),
        plain(0x0012),
        ext_points(&[0]),
        ext_u16_list(EXT_SUPPORTED_GROUPS, &[0xcaca, 29, 23, 24]),
        plain(0x4469),
        plain(0x002d),
        plain(0x0015),
        plain(0xdada),
    ];
    hello(0x0303, &ciphers, &exts)
}

#[test]
fn ja4_vectors_b_and_c() {
    let h = chrome_like(b"h2");
    assert_eq!(
        ja4_r(&h, Transport::Tcp),
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
    );
    assert_eq!(
        ja4(&h, Transport::Tcp),
        "t13d1516h2_8daaf6152771_e5627efa2ab1"
    );
}

#[test]
fn ja4_alpn_hex_rule() {
    let h = chrome_like(&[0x9a, 0xb9]);
    assert_eq!(
        ja4(&h, Transport::Tcp),
        "t13d151699_8daaf6152771_e5627efa2ab1"
    );
    let h = chrome_like(&[0xc3, 0x2a]);
    assert!(ja4(&h, Transport::Tcp).starts_with("t13d1516ca_"));
    // One alphanumeric end is not enough.
    let h = chrome_like(b"h/");
    assert!(ja4(&h, Transport::Tcp).starts_with("t13d15166f_"));
    // A one-byte value gives its character twice.
    let h = chrome_like(b"x");
    assert!(ja4(&h, Transport::Tcp).starts_with("t13d1516xx_"));
}

#[test]
fn ja4_raw_vector_version_from_supported_versions() {
    let ciphers = [
        0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009,
        0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let sigs = [
        0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201,
    ];
    let exts = vec![
        ext_sni("www.example.net"),
        plain(0x0017),
        plain(0xff01),
        ext_u16_list(EXT_SUPPORTED_GROUPS, &[29, 23]),
        ext_points(&[0]),
        plain(0x0023),
        ext_alpn(&[b"h2", b"http/1.1"]),
        plain(0x0005),
        plain(0x0022),
        plain(0x0033),
        ext_versions(&[0x0304, 0x0303]),
        ext_u16_list(EXT_SIGNATURE_ALGORITHMS, &sigs),
        plain(0x002d),
        plain(0x001c),
        plain(0x0015),
    ];
    let h = hello(0x0303, &ciphers, &exts);
    assert_eq!(
        ja4_r(&h, Transport::Tcp),
        "t13d1715h2_002f,0035,009c,009d,1301,1302,1303,c009,c00a,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0015,0017,001c,0022,0023,002b,002d,0033,ff01_0403,0503,0603,0804,0805,0806,0401,0501,0601,0203,0201"
    );
    assert_eq!(
        ja4(&h, Transport::Tcp),
        "t13d1715h2_5b57614c22b0_3d5424432f57"
    );
}

#[test]
fn ja4_tls10_sni_only() {
    let ciphers = [
        0x0039, 0x0038, 0x0035, 0x0016, 0x0013, 0x000a, 0x0033, 0x0032, 0x002f, 0x009a, 0x0099,
        0x0096, 0x0005, 0x0004, 0x0015, 0x0012, 0x0009, 0x0014, 0x0011, 0x0008, 0x0006, 0x0003,
        0x00ff,
    ];
    let h = hello(0x0301, &ciphers, &[ext_sni("www.example.com")]);
    assert_eq!(
        ja4(&h, Transport::Tcp),
        "t10d230100_6a57a6f57151_000000000000"
    );
    assert_eq!(
        ja4_r(&h, Transport::Tcp),
        "t10d230100_0003,0004,0005,0006,0008,0009,000a,0011,0012,0013,0014,0015,0016,002f,0032,0033,0035,0038,0039,0096,0099,009a,00ff_"
    );
}

#[test]
fn ja4_quic_vector() {
    let exts = vec![
        ext_u16_list(EXT_SUPPORTED_GROUPS, &[29, 23, 24]),
        plain(0x0039),
        ext_sni("cloudflare-quic.example"),
        ext_alpn(&[b"h3"]),
        plain(0x001b),
        plain(0x002d),
        plain(0x4469),
        ext_versions(&[0x0304]),
        plain(0x0033),
        ext_u16_list(
            EXT_SIGNATURE_ALGORITHMS,
            &[
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601, 0x0201,
            ],
        ),
    ];
    let h = hello(0x0303, &[0x1301, 0x1302, 0x1303], &exts);
    assert_eq!(
        ja4(&h, Transport::Quic),
        "q13d0310h3_55b375c5d22e_cd85d2d88918"
    );
}

#[test]
fn ja4_empty_cases_and_caps() {
    // No ciphers, no extensions at all.
    let body = client_hello_body(0x0303, &[], None);
    let h = parse_client_hello(&body).unwrap();
    assert_eq!(
        ja4(&h, Transport::Tcp),
        "t12i000000_000000000000_000000000000"
    );
    assert_eq!(ja4_r(&h, Transport::Tcp), "t12i000000__");
    // Only GREASE: counted as nothing.
    let h = hello(0x0302, &[0x0a0a], &[plain(0x0a0a)]);
    assert_eq!(
        ja4(&h, Transport::Tcp),
        "t11i000000_000000000000_000000000000"
    );
    // Only ALPN: counted in part a, absent from part c.
    let h = hello(0x0300, &[4], &[ext_alpn(&[b"http/1.1"])]);
    assert!(
        ja4(&h, Transport::Tcp).starts_with("ts3i0101h1_"),
        "{}",
        ja4(&h, Transport::Tcp)
    );
    assert!(ja4(&h, Transport::Tcp).ends_with("_000000000000"));
    // Extensions without signature algorithms: no `_` part.
    let h = hello(0x0303, &[4], &[plain(0x0017), plain(0x0005)]);
    assert_eq!(ja4_r(&h, Transport::Tcp), "t12i010200_0004_0005,0017");
    // Caps at 99.
    let many: Vec<u16> = (1..=150).collect();
    let exts: Vec<Ext> = (0x0100..0x0100 + 120).map(plain).collect();
    let h = hello(0x0303, &many, &exts);
    assert!(ja4(&h, Transport::Tcp).starts_with("t12i9999"));
    // Unknown versions.
    let h = hello(0x0305, &[4], &[]);
    assert!(ja4(&h, Transport::Tcp).starts_with("t00i0100"));
    let h = hello(0x0303, &[4], &[ext_versions(&[0x0302, 0x0a0a, 0x0301])]);
    assert!(ja4(&h, Transport::Tcp).starts_with("t11i0101"));
}
