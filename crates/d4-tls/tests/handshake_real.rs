//! Real handshakes made in memory by rustls (TLS 1.2 and 1.3) and OpenSSL (TLS 1.0 to 1.3),
//! with RSA and ECDSA certificate chains from rcgen, SNI and ALPN: the bytes each side wrote
//! are fed to `TlsFlow` in both orders and in random chunks. The expected JA3/JA3S/JA4 come
//! from a small parser of the raw hello bytes written here, independent of the crate, and
//! from what the test configured (SNI, ALPN, versions, certificates).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

use d4_tls::fingerprint::{ja3, ja3s, ja4, ja4_r, md5_hex, Transport};
use d4_tls::flow::{FlowConfig, Peer, Progress, TlsFlow};
use md5::{Digest as _, Md5};
use sha2::Sha256;

const HOST: &str = "server.test";

// ---------------------------------------------------------------- certificates

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ecdsa,
}

/// A leaf and its CA (DER, in the order the server sends them) and the leaf's PKCS#8 key.
struct Chain {
    certs: Vec<Vec<u8>>,
    key_pkcs8: Vec<u8>,
}

fn make_chain(kind: KeyKind) -> Chain {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
    };
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "d4 test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = match kind {
        KeyKind::Ecdsa => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
        KeyKind::Rsa => {
            // ring cannot generate RSA keys: OpenSSL does, rcgen signs with it.
            let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
            let der = openssl::pkey::PKey::from_rsa(rsa)
                .unwrap()
                .private_key_to_pkcs8()
                .unwrap();
            KeyPair::from_pkcs8_der_and_sign_algo(&der.into(), &PKCS_RSA_SHA256).unwrap()
        }
    };
    let mut leaf_params = CertificateParams::new(vec![HOST.to_string()]).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, HOST);
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    Chain {
        certs: vec![leaf.der().to_vec(), ca.der().to_vec()],
        key_pkcs8: leaf_key.serialize_der(),
    }
}

// ---------------------------------------------------------------- transcripts

/// What each side wrote during a handshake.
struct Transcript {
    client: Vec<u8>,
    server: Vec<u8>,
}

fn rustls_handshake(version: u16, chain: &Chain) -> Transcript {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    let v: &'static rustls::SupportedProtocolVersion = match version {
        0x0304 => &rustls::version::TLS13,
        _ => &rustls::version::TLS12,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = chain
        .certs
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key_pkcs8.clone()));
    let mut scfg = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[v])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .unwrap();
    scfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut roots = RootCertStore::empty();
    roots.add(certs[1].clone()).unwrap();
    let mut ccfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[v])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    ccfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = ServerName::try_from(HOST).unwrap();
    let mut client = ClientConnection::new(Arc::new(ccfg), name).unwrap();
    let mut server = ServerConnection::new(Arc::new(scfg)).unwrap();
    let mut t = Transcript {
        client: Vec::new(),
        server: Vec::new(),
    };
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).unwrap();
        }
        t.client.extend(&buf);
        let mut rd = &buf[..];
        while !rd.is_empty() {
            server.read_tls(&mut rd).unwrap();
            server.process_new_packets().unwrap();
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).unwrap();
        }
        t.server.extend(&buf);
        let mut rd = &buf[..];
        while !rd.is_empty() {
            client.read_tls(&mut rd).unwrap();
            client.process_new_packets().unwrap();
        }
        if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
            break;
        }
    }
    assert!(!client.is_handshaking() && !server.is_handshaking());
    assert_eq!(client.alpn_protocol(), Some(&b"h2"[..]));
    t
}

/// One end of an in-memory duplex pipe that logs what it writes.
#[derive(Debug)]
struct End {
    rx: Rc<RefCell<VecDeque<u8>>>,
    tx: Rc<RefCell<VecDeque<u8>>>,
    log: Rc<RefCell<Vec<u8>>>,
}

impl Read for End {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut q = self.rx.borrow_mut();
        if q.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(q.len());
        for (b, v) in buf.iter_mut().zip(q.drain(..n)) {
            *b = v;
        }
        Ok(n)
    }
}

impl Write for End {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.borrow_mut().extend(buf);
        self.log.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn openssl_handshake(version: u16, chain: &Chain) -> Transcript {
    use openssl::pkey::PKey;
    use openssl::ssl::{
        select_next_proto, AlpnError, HandshakeError, MidHandshakeSslStream, Ssl, SslContext,
        SslMethod, SslStream, SslVerifyMode, SslVersion,
    };
    use openssl::x509::X509;
    let v = match version {
        0x0301 => SslVersion::TLS1,
        0x0302 => SslVersion::TLS1_1,
        0x0303 => SslVersion::TLS1_2,
        _ => SslVersion::TLS1_3,
    };
    let mut cb = SslContext::builder(SslMethod::tls_client()).unwrap();
    cb.set_min_proto_version(Some(v)).unwrap();
    cb.set_max_proto_version(Some(v)).unwrap();
    cb.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
    cb.set_alpn_protos(b"\x02h2\x08http/1.1").unwrap();
    cb.set_verify(SslVerifyMode::NONE);
    let cctx = cb.build();
    let mut sb = SslContext::builder(SslMethod::tls_server()).unwrap();
    sb.set_min_proto_version(Some(v)).unwrap();
    sb.set_max_proto_version(Some(v)).unwrap();
    sb.set_cipher_list("DEFAULT:@SECLEVEL=0").unwrap();
    sb.set_certificate(&X509::from_der(&chain.certs[0]).unwrap())
        .unwrap();
    sb.add_extra_chain_cert(X509::from_der(&chain.certs[1]).unwrap())
        .unwrap();
    sb.set_private_key(&PKey::private_key_from_pkcs8(&chain.key_pkcs8).unwrap())
        .unwrap();
    sb.set_alpn_select_callback(|_, client| {
        select_next_proto(b"\x02h2\x08http/1.1", client).ok_or(AlpnError::NOACK)
    });
    let sctx = sb.build();

    let c2s = Rc::new(RefCell::new(VecDeque::new()));
    let s2c = Rc::new(RefCell::new(VecDeque::new()));
    let clog = Rc::new(RefCell::new(Vec::new()));
    let slog = Rc::new(RefCell::new(Vec::new()));
    let cend = End {
        rx: s2c.clone(),
        tx: c2s.clone(),
        log: clog.clone(),
    };
    let send = End {
        rx: c2s,
        tx: s2c,
        log: slog.clone(),
    };
    enum Side {
        Mid(MidHandshakeSslStream<End>),
        Done(SslStream<End>),
    }
    fn step(r: Result<SslStream<End>, HandshakeError<End>>) -> Side {
        match r {
            Ok(s) => Side::Done(s),
            Err(HandshakeError::WouldBlock(m)) => Side::Mid(m),
            Err(e) => panic!("OpenSSL handshake failed: {e}"),
        }
    }
    let mut cssl = Ssl::new(&cctx).unwrap();
    cssl.set_hostname(HOST).unwrap();
    let mut c = step(cssl.connect(cend));
    let mut s = step(Ssl::new(&sctx).unwrap().accept(send));
    for _ in 0..20 {
        if let Side::Mid(m) = c {
            c = step(m.handshake());
        }
        if let Side::Mid(m) = s {
            s = step(m.handshake());
        }
        if matches!((&c, &s), (Side::Done(_), Side::Done(_))) {
            break;
        }
    }
    let (Side::Done(c), Side::Done(_)) = (c, s) else {
        panic!("OpenSSL handshake did not finish");
    };
    assert_eq!(c.ssl().selected_alpn_protocol(), Some(&b"h2"[..]));
    let client = clog.borrow().clone();
    let server = slog.borrow().clone();
    Transcript { client, server }
}

// ---------------------------------------------------------------- independent parser

fn grease(v: u16) -> bool {
    v >> 8 == v & 0xff && v & 0x0f == 0x0a
}

/// The first handshake message in a direction's bytes, reassembled from its records.
fn first_message(bytes: &[u8]) -> (u8, Vec<u8>) {
    let mut hs = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let len = usize::from(u16::from_be_bytes([bytes[at + 3], bytes[at + 4]]));
        if bytes[at] == 22 {
            hs.extend_from_slice(&bytes[at + 5..at + 5 + len]);
        }
        at += 5 + len;
        if hs.len() >= 4 {
            let mlen = (usize::from(hs[1]) << 16) | (usize::from(hs[2]) << 8) | usize::from(hs[3]);
            if hs.len() >= 4 + mlen {
                return (hs[0], hs[4..4 + mlen].to_vec());
            }
        }
    }
    panic!("no complete handshake message");
}

struct Rd<'a>(&'a [u8]);
impl<'a> Rd<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn n8(&mut self) -> usize {
        usize::from(self.take(1)[0])
    }
    fn n16(&mut self) -> usize {
        let b = self.take(2);
        usize::from(b[0]) << 8 | usize::from(b[1])
    }
    fn u16s(data: &[u8]) -> Vec<u16> {
        data.chunks(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    }
}

#[derive(Default, Debug)]
struct Raw {
    version: u16,
    ciphers: Vec<u16>,
    exts: Vec<u16>,
    groups: Vec<u16>,
    points: Vec<u8>,
    sigs: Vec<u16>,
    alpn: Vec<Vec<u8>>,
    versions: Vec<u16>,
    sni: Option<String>,
}

fn raw_client_hello(body: &[u8]) -> Raw {
    let mut r = Rd(body);
    let mut h = Raw {
        version: r.n16() as u16,
        ..Raw::default()
    };
    r.take(32);
    let n = r.n8();
    r.take(n);
    let n = r.n16();
    h.ciphers = Rd::u16s(r.take(n));
    let n = r.n8();
    r.take(n);
    let n = r.n16();
    let mut e = Rd(r.take(n));
    while !e.0.is_empty() {
        let typ = e.n16() as u16;
        let n = e.n16();
        let mut d = Rd(e.take(n));
        h.exts.push(typ);
        match typ {
            0 => {
                d.take(2 + 1);
                let n = d.n16();
                h.sni = Some(String::from_utf8(d.take(n).to_vec()).unwrap());
            }
            10 | 13 => {
                let n = d.n16();
                let l = Rd::u16s(d.take(n));
                if typ == 10 {
                    h.groups = l;
                } else {
                    h.sigs = l;
                }
            }
            11 => {
                let n = d.n8();
                h.points = d.take(n).to_vec();
            }
            16 => {
                let n = d.n16();
                let mut l = Rd(d.take(n));
                while !l.0.is_empty() {
                    let n = l.n8();
                    h.alpn.push(l.take(n).to_vec());
                }
            }
            43 => {
                let n = d.n8();
                h.versions = Rd::u16s(d.take(n));
            }
            _ => {}
        }
    }
    h
}

fn dash<T: ToString>(v: impl Iterator<Item = T>) -> String {
    v.map(|x| x.to_string()).collect::<Vec<_>>().join("-")
}

fn expected_ja3(h: &Raw) -> String {
    format!(
        "{},{},{},{},{}",
        h.version,
        dash(h.ciphers.iter().filter(|v| !grease(**v))),
        dash(h.exts.iter().filter(|v| !grease(**v))),
        dash(h.groups.iter().filter(|v| !grease(**v))),
        dash(h.points.iter()),
    )
}

fn expected_ja3s(body: &[u8]) -> String {
    let mut r = Rd(body);
    let version = r.n16();
    r.take(32);
    let n = r.n8();
    r.take(n);
    let cipher = r.n16();
    r.take(1);
    let n = r.n16();
    let mut e = Rd(r.take(n));
    let mut exts = Vec::new();
    while !e.0.is_empty() {
        exts.push(e.n16());
        let n = e.n16();
        e.take(n);
    }
    format!("{version},{cipher},{}", dash(exts.iter()))
}

fn sha12(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..12]
        .to_string()
}

/// (JA4, JA4_r) computed here from the raw lists.
fn expected_ja4(h: &Raw) -> (String, String) {
    let v = h
        .versions
        .iter()
        .filter(|v| !grease(**v))
        .max()
        .copied()
        .unwrap_or(h.version);
    let ver = match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        _ => "00",
    };
    let mut ciphers: Vec<String> = h
        .ciphers
        .iter()
        .filter(|v| !grease(**v))
        .map(|v| format!("{v:04x}"))
        .collect();
    let exts: Vec<u16> = h.exts.iter().copied().filter(|v| !grease(*v)).collect();
    let alpn = match h.alpn.first() {
        Some(a) => format!("{}{}", a[0] as char, a[a.len() - 1] as char),
        None => "00".into(),
    };
    let a = format!(
        "t{ver}{}{:02}{:02}{alpn}",
        if h.sni.is_some() { 'd' } else { 'i' },
        ciphers.len().min(99),
        exts.len().min(99)
    );
    ciphers.sort();
    let mut e: Vec<String> = exts
        .iter()
        .filter(|v| **v != 0 && **v != 16)
        .map(|v| format!("{v:04x}"))
        .collect();
    e.sort();
    let mut c = e.join(",");
    if !h.sigs.is_empty() {
        let s: Vec<String> = h.sigs.iter().map(|v| format!("{v:04x}")).collect();
        c = format!("{c}_{}", s.join(","));
    }
    let b = ciphers.join(",");
    let ja4 = format!("{a}_{}_{}", sha12(&b), sha12(&c));
    (ja4, format!("{a}_{b}_{c}"))
}

// ---------------------------------------------------------------- checks

/// A deterministic generator of chunk sizes.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, max: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        1 + (self.0 >> 33) as usize % max
    }
}

/// Feeds the transcript in the given way and returns the flow and the last progress.
fn feed(t: &Transcript, server_first: bool, seed: u64, client_label: Peer) -> TlsFlow {
    let mut f = TlsFlow::new(&FlowConfig::default());
    let server_label = client_label.other();
    let mut rng = Lcg(seed);
    let mut last = Progress::NeedMore;
    if server_first {
        for c in t.server.chunks(rng.next(700)) {
            last = f.feed(server_label, c);
        }
        assert_eq!(last, Progress::NeedMore, "complete without the ClientHello");
        assert_eq!(
            f.client(),
            Some(client_label),
            "client from the ServerHello"
        );
        for c in t.client.chunks(rng.next(700)) {
            last = f.feed(client_label, c);
        }
    } else {
        // Interleaved, random chunk sizes.
        let (mut ci, mut si) = (0, 0);
        while ci < t.client.len() || si < t.server.len() {
            let n = rng.next(300);
            let end = (ci + n).min(t.client.len());
            f.feed(client_label, &t.client[ci..end]);
            ci = end;
            let n = rng.next(300);
            let end = (si + n).min(t.server.len());
            f.feed(server_label, &t.server[si..end]);
            si = end;
        }
        // Complete is sticky: an empty feed reports the state.
        last = f.feed(server_label, &[]);
    }
    assert_eq!(last, Progress::Complete);
    f
}

/// With `D4_TLS_FUZZ_SEEDS=DIR`, writes the transcript as a `tls_handshake` fuzz seed
/// (limit selector 3, then the two directions as alternating segments of up to 300 bytes).
fn write_seed(t: &Transcript, what: &str) {
    let Some(dir) = std::env::var_os("D4_TLS_FUZZ_SEEDS") else {
        return;
    };
    let mut seed = vec![3u8];
    let (mut c, mut s) = (t.client.chunks(300), t.server.chunks(300));
    loop {
        let (a, b) = (c.next(), s.next());
        if a.is_none() && b.is_none() {
            break;
        }
        for (dir, part) in [(0u8, a), (1, b)] {
            if let Some(p) = part {
                seed.push(dir | ((p.len() & 0x7f) << 1) as u8);
                seed.push((p.len() >> 7) as u8);
                seed.extend_from_slice(p);
            }
        }
    }
    let name: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    std::fs::write(std::path::Path::new(&dir).join(name), seed).unwrap();
}

fn check(t: &Transcript, version: u16, chain: &Chain, what: &str) {
    write_seed(t, what);
    let (typ, ch) = first_message(&t.client);
    assert_eq!(typ, 1, "{what}: client starts with a ClientHello");
    let raw = raw_client_hello(&ch);
    let (typ, sh) = first_message(&t.server);
    assert_eq!(typ, 2, "{what}: server starts with a ServerHello");
    let want_ja3 = expected_ja3(&raw);
    let want_ja3_digest = Md5::digest(want_ja3.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let want_ja3s = expected_ja3s(&sh);
    let (want_ja4, want_ja4_r) = expected_ja4(&raw);
    // What the test configured, independently of any parser.
    let ver = match version {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        _ => "10",
    };
    assert!(
        want_ja4.starts_with(&format!("t{ver}d")),
        "{what}: {want_ja4}"
    );
    assert!(want_ja4[..10].ends_with("h2"), "{what}: {want_ja4}");
    for (i, (server_first, label)) in [
        (true, Peer::B),
        (false, Peer::A),
        (true, Peer::A),
        (false, Peer::B),
    ]
    .into_iter()
    .enumerate()
    {
        let f = feed(t, server_first, 7 + i as u64, label);
        let what = format!("{what} (server first: {server_first}, client {label:?})");
        assert_eq!(f.client(), Some(label), "{what}");
        assert_eq!(f.version(), Some(version), "{what}");
        let h = f.client_hello().unwrap();
        assert_eq!(h.server_name.as_deref(), Some(HOST), "{what}");
        assert_eq!(
            h.alpn.first().map(Vec::as_slice),
            Some(&b"h2"[..]),
            "{what}"
        );
        let s = f.server_hello().unwrap();
        // TLS 1.3 sends the server's ALPN in the encrypted EncryptedExtensions.
        let server_alpn = (version != 0x0304).then_some(&b"h2"[..]);
        assert_eq!(s.alpn.as_deref(), server_alpn, "{what}");
        assert_eq!(ja3(h), want_ja3, "{what}");
        assert_eq!(md5_hex(&ja3(h)), want_ja3_digest, "{what}");
        assert_eq!(ja3s(s), want_ja3s, "{what}");
        assert_eq!(ja4(h, Transport::Tcp), want_ja4, "{what}");
        assert_eq!(ja4_r(h, Transport::Tcp), want_ja4_r, "{what}");
        if version == 0x0304 {
            // Encrypted: none in clear.
            assert!(f.certificates().is_empty(), "{what}");
        } else {
            assert_eq!(f.certificates(), &chain.certs[..], "{what}");
        }
    }
}

#[test]
fn rustls_tls12_and_tls13_rsa_and_ecdsa() {
    for kind in [KeyKind::Rsa, KeyKind::Ecdsa] {
        let chain = make_chain(kind);
        for version in [0x0303, 0x0304] {
            let t = rustls_handshake(version, &chain);
            check(
                &t,
                version,
                &chain,
                &format!("rustls {version:#06x} {kind:?}"),
            );
        }
    }
}

#[test]
fn openssl_tls10_to_tls13_rsa_and_ecdsa() {
    for kind in [KeyKind::Rsa, KeyKind::Ecdsa] {
        let chain = make_chain(kind);
        for version in [0x0301, 0x0302, 0x0303, 0x0304] {
            let t = openssl_handshake(version, &chain);
            check(
                &t,
                version,
                &chain,
                &format!("OpenSSL {version:#06x} {kind:?}"),
            );
        }
    }
}

#[test]
fn truncated_transcripts_never_complete_falsely() {
    // Every prefix of the server's bytes: never Complete before the Certificate is whole.
    let chain = make_chain(KeyKind::Ecdsa);
    let t = rustls_handshake(0x0303, &chain);
    let mut cut_complete = None;
    for cut in 0..=t.server.len() {
        let mut f = TlsFlow::new(&FlowConfig::default());
        f.feed(Peer::A, &t.client);
        let p = f.feed(Peer::B, &t.server[..cut]);
        if p == Progress::Complete {
            assert_eq!(f.certificates(), &chain.certs[..]);
            cut_complete.get_or_insert(cut);
        } else {
            assert_eq!(p, Progress::NeedMore, "cut {cut}");
        }
    }
    assert!(cut_complete.is_some());
}
