//! Both endpoints of an OpenSSL connection in one thread over in-memory pipes (no sockets):
//! every `write` an endpoint makes is recorded and queued for the other, a read of an empty
//! queue is `WouldBlock`. TLS 1.0 to 1.3 (older versions need `@SECLEVEL=0`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;

use openssl::pkey::PKey;
use openssl::ssl::{
    AlpnError, ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslStream, SslVerifyMode,
    SslVersion,
};
use openssl::x509::X509;

use super::certs::Credentials;
use super::{HandshakeSpec, Version, APP_REQUEST, APP_RESPONSE};

type Writes = Vec<(bool, Vec<u8>)>;
type Queue = Rc<RefCell<VecDeque<u8>>>;

/// One endpoint's side of the pipe pair.
struct End {
    from_client: bool,
    rx: Queue,
    tx: Queue,
    log: Rc<RefCell<Writes>>,
}

impl Read for End {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut rx = self.rx.borrow_mut();
        if rx.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(rx.len());
        for (dst, src) in buf.iter_mut().zip(rx.drain(..n)) {
            *dst = src;
        }
        Ok(n)
    }
}

impl Write for End {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.borrow_mut().extend(buf.iter().copied());
        self.log.borrow_mut().push((self.from_client, buf.to_vec()));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn ssl_version(v: Version) -> SslVersion {
    match v {
        Version::Tls10 => SslVersion::TLS1,
        Version::Tls11 => SslVersion::TLS1_1,
        Version::Tls12 => SslVersion::TLS1_2,
        Version::Tls13 => SslVersion::TLS1_3,
    }
}

fn common(b: &mut SslContextBuilder, v: Version) -> Result<(), openssl::error::ErrorStack> {
    b.set_cipher_list("DEFAULT:@SECLEVEL=0")?;
    b.set_min_proto_version(Some(ssl_version(v)))?;
    b.set_max_proto_version(Some(ssl_version(v)))?;
    Ok(())
}

/// ALPN protocols in the wire form (each prefixed by its length).
fn alpn_wire(alpn: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in alpn {
        out.push(p.len() as u8);
        out.extend_from_slice(p);
    }
    out
}

fn contexts(spec: &HandshakeSpec, creds: &Credentials) -> Result<(SslContext, SslContext), String> {
    let e = |what: &str| {
        let what = what.to_string();
        move |err: openssl::error::ErrorStack| format!("OpenSSL {what}: {err}")
    };
    let mut c = SslContextBuilder::new(SslMethod::tls_client()).map_err(e("client"))?;
    common(&mut c, spec.version).map_err(e("client"))?;
    c.set_verify(SslVerifyMode::NONE);
    if !spec.alpn.is_empty() {
        c.set_alpn_protos(&alpn_wire(&spec.alpn))
            .map_err(e("ALPN"))?;
    }
    let mut s = SslContextBuilder::new(SslMethod::tls_server()).map_err(e("server"))?;
    common(&mut s, spec.version).map_err(e("server"))?;
    let mut chain = creds.chain_der.iter();
    let leaf = chain.next().ok_or("no leaf certificate")?;
    let leaf = X509::from_der(leaf).map_err(e("leaf"))?;
    s.set_certificate(&leaf).map_err(e("leaf"))?;
    for extra in chain {
        s.add_extra_chain_cert(X509::from_der(extra).map_err(e("chain"))?)
            .map_err(e("chain"))?;
    }
    let key = PKey::private_key_from_pkcs8(&creds.key_pkcs8).map_err(e("key"))?;
    s.set_private_key(&key).map_err(e("key"))?;
    s.check_private_key().map_err(e("key"))?;
    if !spec.alpn.is_empty() {
        let ours = spec.alpn.clone();
        s.set_alpn_select_callback(move |_, client| select_alpn(&ours, client));
    }
    Ok((c.build(), s.build()))
}

/// The first of our protocols the client offers (a slice of the client's list).
fn select_alpn<'a>(ours: &[Vec<u8>], client: &'a [u8]) -> Result<&'a [u8], AlpnError> {
    for p in ours {
        let mut rest = client;
        while let Some((&n, tail)) = rest.split_first() {
            let n = usize::from(n).min(tail.len());
            if tail[..n] == p[..] {
                return Ok(&tail[..n]);
            }
            rest = &tail[n..];
        }
    }
    Err(AlpnError::NOACK)
}

fn would_block(e: &openssl::ssl::Error) -> bool {
    e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE
}

/// Reads what is there (`WouldBlock` ends it).
fn read_some(s: &mut SslStream<End>, out: &mut Vec<u8>) -> Result<(), String> {
    let mut buf = [0u8; 4096];
    loop {
        match s.ssl_read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) => return Err(format!("OpenSSL read: {e}")),
        }
    }
}

/// Runs one OpenSSL handshake and a request/response; returns the writes.
pub(crate) fn run(spec: &HandshakeSpec, creds: &Credentials) -> Result<Writes, String> {
    let (cctx, sctx) = contexts(spec, creds)?;
    let log = Rc::new(RefCell::new(Vec::new()));
    let to_server: Queue = Rc::default();
    let to_client: Queue = Rc::default();
    let cend = End {
        from_client: true,
        rx: to_client.clone(),
        tx: to_server.clone(),
        log: log.clone(),
    };
    let send = End {
        from_client: false,
        rx: to_server,
        tx: to_client,
        log: log.clone(),
    };
    let mut cssl = Ssl::new(&cctx).map_err(|e| format!("OpenSSL client: {e}"))?;
    if let Some(name) = &spec.sni {
        cssl.set_hostname(name)
            .map_err(|e| format!("OpenSSL SNI: {e}"))?;
    }
    cssl.set_connect_state();
    let mut sssl = Ssl::new(&sctx).map_err(|e| format!("OpenSSL server: {e}"))?;
    sssl.set_accept_state();
    let mut client = SslStream::new(cssl, cend).map_err(|e| format!("OpenSSL client: {e}"))?;
    let mut server = SslStream::new(sssl, send).map_err(|e| format!("OpenSSL server: {e}"))?;
    let (mut c_done, mut s_done) = (false, false);
    for _ in 0..32 {
        if !c_done {
            match client.do_handshake() {
                Ok(()) => c_done = true,
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(format!("OpenSSL client handshake: {e}")),
            }
        }
        if !s_done {
            match server.do_handshake() {
                Ok(()) => s_done = true,
                Err(e) if would_block(&e) => {}
                Err(e) => return Err(format!("OpenSSL server handshake: {e}")),
            }
        }
        if c_done && s_done {
            break;
        }
    }
    if !(c_done && s_done) {
        return Err("OpenSSL: the handshake did not complete".into());
    }
    client
        .ssl_write(APP_REQUEST)
        .map_err(|e| format!("OpenSSL write: {e}"))?;
    let mut got = Vec::new();
    read_some(&mut server, &mut got)?;
    if got != APP_REQUEST {
        return Err("OpenSSL: the request did not arrive".into());
    }
    server
        .ssl_write(APP_RESPONSE)
        .map_err(|e| format!("OpenSSL write: {e}"))?;
    let mut got = Vec::new();
    read_some(&mut client, &mut got)?;
    if got != APP_RESPONSE {
        return Err("OpenSSL: the response did not arrive".into());
    }
    drop((client, server));
    let writes = log.borrow().clone();
    Ok(writes)
}
