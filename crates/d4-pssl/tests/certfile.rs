//! Certificates from files: PEM with several blocks, DER, folders (recursive or not) and
//! `.tar.gz` archives; bad files are counted, never fatal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use d4_pssl::certfile::{parse_bytes, scan_path, CertFileStats};
use d4_pssl::testsuite::data::certs;

fn scan(path: &Path, recursive: bool) -> (CertFileStats, BTreeSet<String>) {
    let mut seen = BTreeSet::new();
    let stats = scan_path(path, recursive, &mut |c, k| {
        assert_eq!(c.spki_sha256, k.spki_sha256);
        seen.insert(c.sha1);
    })
    .unwrap();
    (stats, seen)
}

#[test]
fn pem_with_several_blocks_and_der() {
    let c = certs();
    let pem = format!(
        "subject=whatever\n{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
        c.a.pem(),
        c.ca.pem()
    );
    let got: Vec<String> = parse_bytes(pem.as_bytes())
        .into_iter()
        .map(|r| r.unwrap().0.sha1)
        .collect();
    assert_eq!(got, vec![c.a.sha1.clone(), c.ca.sha1.clone()]);
    let der = parse_bytes(&c.b.der);
    assert_eq!(der.len(), 1);
    assert_eq!(der[0].as_ref().unwrap().0.sha1, c.b.sha1);
    // A broken block is an error beside the good ones.
    let broken = format!(
        "{}-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        c.a.pem()
    );
    let r = parse_bytes(broken.as_bytes());
    assert_eq!((r.len(), r[0].is_ok(), r[1].is_err()), (2, true, true));
    assert!(
        parse_bytes(b"-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n")[0].is_err()
    );
    assert!(parse_bytes(b"garbage").iter().all(Result::is_err));
}

#[test]
fn folders_and_archives() {
    let c = certs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("a.pem"), c.a.pem()).unwrap();
    fs::write(root.join("junk.txt"), "not a certificate").unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    fs::write(root.join("sub/b.der"), &c.b.der).unwrap();
    // An archive of a PEM chain and a DER file, in the subfolder.
    let mut tar_gz = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut tar_gz, flate2::Compression::default());
        let mut t = tar::Builder::new(gz);
        for (name, bytes) in [
            (
                "certs/chain.pem",
                format!("{}{}", c.a2.pem(), c.ca.pem()).into_bytes(),
            ),
            ("certs/b.crt", c.b.der.clone()),
            ("certs/readme", b"hello".to_vec()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            t.append_data(&mut h, name, bytes.as_slice()).unwrap();
        }
        t.into_inner().unwrap().finish().unwrap();
    }
    fs::write(root.join("sub/certs.tar.gz"), &tar_gz).unwrap();

    let (st, seen) = scan(root, false);
    assert_eq!((st.files, st.certificates, st.bad), (2, 1, 1));
    assert_eq!(seen, BTreeSet::from([c.a.sha1.clone()]));
    assert_eq!(st.errors.len(), 1);
    assert!(st.errors[0].0.ends_with("junk.txt"));

    let (st, seen) = scan(root, true);
    // a.pem, junk.txt, sub/b.der, and the archive's three members.
    assert_eq!((st.files, st.certificates, st.bad), (6, 5, 2));
    let want: BTreeSet<String> = [&c.a, &c.b, &c.a2, &c.ca]
        .iter()
        .map(|x| x.sha1.clone())
        .collect();
    assert_eq!(seen, want);

    let (st, seen) = scan(&root.join("sub/certs.tar.gz"), false);
    assert_eq!((st.files, st.certificates, st.bad), (3, 3, 1));
    assert_eq!(seen.len(), 3);

    // A corrupt archive is one error.
    fs::write(root.join("bad.tgz"), b"\x1f\x8bnot gzip").unwrap();
    let (st, seen) = scan(&root.join("bad.tgz"), false);
    assert_eq!((st.certificates, st.bad, seen.len()), (0, 1, 0));
    assert!(scan_path(&root.join("missing"), false, &mut |_, _| {}).is_err());
}
