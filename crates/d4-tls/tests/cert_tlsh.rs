//! The reference's TLSH field: its input string (JA3 + JA3S + Go-quoted issuer and subject
//! of each certificate, `-` `,` `"` removed) and the digest (TLSH 128 buckets / 1-byte
//! checksum, 70 lowercase hex digits, no `T1`, as `github.com/glaslos/tlsh` v0.2.0 prints).
//!
//! Digests are checked against published vectors and against a second implementation
//! written here from the algorithm as glaslos/tlsh v0.2.0 computes it (its own floating-point
//! length code instead of the table TLSH 4 uses), over many inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use d4_tls::cert;
use d4_tls::tlsh::{digest, field, reference_input};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    PKCS_ECDSA_P256_SHA256,
};

/// Published vector of the reference C++ TLSH (py-tlsh, default 128 buckets / 1-byte
/// checksum), from facebook/ThreatExchange `python-threatexchange`, TLSH signal unit test
/// (`test_tlsh_from_string`); it also expects no hash for "too short".
const FB_INPUT: &str = "A minimum string length must be 256 bytes! That's so much text this \
                        means it's not super useful for finding short text!";
const FB_HASH: &str = "T1DFB092A1724AC2C0D3CA48452291EA04A5B75EB903A6E7577A54118FFA8148E98F9426";

/// Published in the `tlsh2` 1.1.0 documentation (`Tlsh::hash`).
const LOREM_INPUT: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit";
const LOREM_HASH: &str = "T12D900249414E0BD59A46503F3ADA802AE50825242B2590561CF690599112214C051556";

fn go_form(t1: &str) -> String {
    t1.trim_start_matches("T1").to_ascii_lowercase()
}

#[test]
fn published_vectors() {
    assert_eq!(digest(FB_INPUT.as_bytes()), Some(go_form(FB_HASH)));
    assert_eq!(digest(LOREM_INPUT.as_bytes()), Some(go_form(LOREM_HASH)));
    assert_eq!(go_tlsh(FB_INPUT.as_bytes()), go_form(FB_HASH));
    assert_eq!(go_tlsh(LOREM_INPUT.as_bytes()), go_form(LOREM_HASH));
    assert_eq!(digest(b"too short"), None);
    assert_eq!(digest(b""), None);
    // 60 bytes of one value: enough length, no variety.
    assert_eq!(digest(&[b'a'; 60]), None);
}

// ---- a second implementation: the TLSH algorithm as glaslos/tlsh v0.2.0 computes it ------

/// TLSH's Pearson permutation (the `v_table` of the TLSH reference implementation).
const V: [u8; 256] = [
    1, 87, 49, 12, 176, 178, 102, 166, 121, 193, 6, 84, 249, 230, 44, 163, 14, 197, 213, 181, 161,
    85, 218, 80, 64, 239, 24, 226, 236, 142, 38, 200, 110, 177, 104, 103, 141, 253, 255, 50, 77,
    101, 81, 18, 45, 96, 31, 222, 25, 107, 190, 70, 86, 237, 240, 34, 72, 242, 20, 214, 244, 227,
    149, 235, 97, 234, 57, 22, 60, 250, 82, 175, 208, 5, 127, 199, 111, 62, 135, 248, 174, 169,
    211, 58, 66, 154, 106, 195, 245, 171, 17, 187, 182, 179, 0, 243, 132, 56, 148, 75, 128, 133,
    158, 100, 130, 126, 91, 13, 153, 246, 216, 219, 119, 68, 223, 78, 83, 88, 201, 99, 122, 11, 92,
    32, 136, 114, 52, 10, 138, 30, 48, 183, 156, 35, 61, 26, 143, 74, 251, 94, 129, 162, 63, 152,
    170, 7, 115, 167, 241, 206, 3, 150, 55, 59, 151, 220, 90, 53, 23, 131, 125, 173, 15, 238, 79,
    95, 89, 16, 105, 137, 225, 224, 217, 160, 37, 123, 118, 73, 2, 157, 46, 116, 9, 145, 134, 228,
    207, 212, 202, 215, 69, 229, 27, 188, 67, 124, 168, 252, 42, 4, 29, 108, 21, 247, 19, 205, 39,
    203, 233, 40, 186, 147, 198, 192, 155, 33, 164, 191, 98, 204, 165, 180, 117, 76, 140, 36, 210,
    172, 41, 54, 159, 8, 185, 232, 113, 196, 231, 47, 146, 120, 51, 65, 28, 144, 254, 221, 93, 189,
    194, 139, 112, 43, 71, 109, 184, 209,
];

fn pearson(salt: u8, a: u8, b: u8, c: u8) -> u8 {
    let mut h = V[usize::from(salt)];
    h = V[usize::from(h ^ a)];
    h = V[usize::from(h ^ b)];
    V[usize::from(h ^ c)]
}

/// glaslos' length code: floating-point logarithms in three ranges.
fn l_value(len: usize) -> u8 {
    let l = (len as f64).ln();
    let v = if len <= 656 {
        (l / 0.405_465_1).floor()
    } else if len <= 3199 {
        (l / 0.262_364_26 - 8.727_77).floor()
    } else {
        (l / 0.095_310_18 - 62.547_2).floor()
    };
    ((v as u32) % 255) as u8
}

fn swap(b: u8) -> u8 {
    b.rotate_left(4)
}

fn go_tlsh(data: &[u8]) -> String {
    let mut buckets = [0u32; 256];
    let mut checksum = 0u8;
    for i in 4..data.len() {
        let (c0, c1, c2, c3, c4) = (data[i], data[i - 1], data[i - 2], data[i - 3], data[i - 4]);
        checksum = pearson(0, c0, c1, checksum);
        for (salt, a, b) in [
            (2, c1, c2),
            (3, c1, c3),
            (5, c2, c3),
            (7, c2, c4),
            (11, c1, c4),
            (13, c3, c4),
        ] {
            buckets[usize::from(pearson(salt, c0, a, b))] += 1;
        }
    }
    let mut sorted = buckets[..128].to_vec();
    sorted.sort_unstable();
    let (q1, q2, q3) = (sorted[31], sorted[63], sorted[95]);
    let q1r = ((q1 as f32 * 100.0 / q3 as f32) as u32 % 16) as u8;
    let q2r = ((q2 as f32 * 100.0 / q3 as f32) as u32 % 16) as u8;
    let mut code = [0u8; 32];
    for i in 0..32 {
        let mut h = 0u8;
        for j in 0..4 {
            let k = buckets[4 * i + j];
            let v = if q3 < k {
                3
            } else if q2 < k {
                2
            } else if q1 < k {
                1
            } else {
                0
            };
            h |= v << (2 * j);
        }
        code[31 - i] = h;
    }
    let mut out = vec![swap(checksum), swap(l_value(data.len())), (q1r << 4) | q2r];
    out.extend_from_slice(&code);
    hex::encode(out)
}

/// Deterministic pseudo-random text shaped like the reference's input: JA3-like digits and
/// name fragments.
fn sample(seed: u64, len: usize) -> Vec<u8> {
    const PIECES: [&str; 12] = [
        "771",
        "4865",
        "49195",
        "CN=",
        "O=",
        "C=",
        "LU",
        "Let's Encrypt",
        "example",
        "R3",
        "\\\\",
        "0",
    ];
    let mut x = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let p = PIECES[(x >> 33) as usize % PIECES.len()];
        out.extend_from_slice(p.as_bytes());
        out.push(b'0' + ((x >> 20) % 10) as u8);
    }
    out.truncate(len);
    out
}

#[test]
fn digest_matches_the_go_algorithm() {
    let mut compared = 0;
    let mut lens: Vec<usize> = (50..400).step_by(7).collect();
    lens.extend([
        655, 656, 657, 658, 1000, 2048, 3198, 3199, 3200, 3201, 5000, 20_000,
    ]);
    for (i, len) in lens.iter().enumerate() {
        for seed in 0..3u64 {
            let data = sample(seed * 1000 + i as u64, *len);
            if let Some(d) = digest(&data) {
                assert_eq!(d, go_tlsh(&data), "len {len} seed {seed}");
                assert_eq!(d.len(), 70);
                compared += 1;
            }
        }
    }
    assert!(compared > 100, "only {compared} inputs had a digest");
}

// ---- the reference input ---------------------------------------------------------------

fn chain() -> (Vec<u8>, Vec<u8>) {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name = rcgen::DistinguishedName::new();
    ca.distinguished_name.push(DnType::CountryName, "LU");
    ca.distinguished_name
        .push(DnType::OrganizationName, "CIRCL");
    ca.distinguished_name.push(DnType::CommonName, "Test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.not_before = date_time_ymd(2020, 1, 1);
    ca.not_after = date_time_ymd(2040, 1, 1);
    let ca_der = ca.self_signed(&ca_key).unwrap().der().to_vec();

    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf = CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.distinguished_name.push(DnType::CountryName, "LU");
    leaf.distinguished_name
        .push(DnType::OrganizationName, "Org; x");
    leaf.distinguished_name
        .push(DnType::CommonName, "#lead, a+b \"q\" <x>; y\\z trail-end ");
    let issuer = Issuer::from_params(&ca, &ca_key);
    let leaf_der = leaf.signed_by(&key, &issuer).unwrap().der().to_vec();
    (leaf_der, ca_der)
}

#[test]
fn reference_input_by_hand() {
    let (leaf, ca) = chain();
    let certs = [cert::parse(&leaf).unwrap(), cert::parse(&ca).unwrap()];
    let ja3 = "771,4865-4866,0-23-65281,29-23,0";
    let ja3s = "771,4865,43-51";
    let ca_name = "CN=Test CAO=CIRCLC=LU";
    // Go: CN=\#lead\, a\+b \"q\" \<x\>\; y\\z trail-end\ ,O=Org\; x,C=LU
    // %q doubles each backslash and escapes each quote; then - , " are removed.
    let leaf_subject = r#"CN=\\#lead\\ a\\+b \\\q\\\ \\<x\\>\\; y\\\\z trailend\\ O=Org\\; xC=LU"#;
    let expected = format!(
        "771486548660236528129230{}{ca_name}{leaf_subject}{ca_name}{ca_name}",
        "77148654351"
    );
    let input = reference_input(ja3, ja3s, &certs);
    assert_eq!(input, expected);
    assert_eq!(field(ja3, ja3s, &certs), go_tlsh(expected.as_bytes()));
    // No certificates and short hellos: too short for TLSH, the field is empty.
    assert_eq!(field("771,,,,", "771,4865,", &[]), "");
}
