//! ClientHello and ServerHello messages as plain structs: parsed from and written to bytes,
//! the GREASE rewrite of a ClientHello record ([`greased`]), and extension builders for
//! tests that need a hello with exact contents (e.g. the lists of `../shared/TLS.md`).
//! Deliberately simple and separate from `d4-tls`: it is the second implementation the
//! fingerprints are checked against.

/// Extension types used here.
pub const EXT_SNI: u16 = 0;
pub const EXT_GROUPS: u16 = 10;
pub const EXT_POINT_FORMATS: u16 = 11;
pub const EXT_SIG_ALGS: u16 = 13;
pub const EXT_ALPN: u16 = 16;
pub const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// True for the RFC 8701 GREASE values (`0x0a0a`, `0x1a1a`, ... `0xfafa`).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A byte reader that fails instead of panicking.
pub(crate) struct Rd<'a>(pub(crate) &'a [u8]);

impl<'a> Rd<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("truncated: need {n} bytes, have {}", self.0.len()));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u24(&mut self) -> Result<usize, String> {
        let b = self.take(3)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    pub(crate) fn vec8(&mut self) -> Result<&'a [u8], String> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    pub(crate) fn vec16(&mut self) -> Result<&'a [u8], String> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A list of u16 values from bytes (pairs).
pub(crate) fn u16s(b: &[u8]) -> Vec<u16> {
    b.chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect()
}

fn put16(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u16).to_be_bytes());
}

fn put24(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
}

fn parse_extensions(r: &mut Rd<'_>) -> Result<Vec<(u16, Vec<u8>)>, String> {
    let mut exts = Vec::new();
    if r.is_empty() {
        return Ok(exts); // no extensions block at all (old hellos)
    }
    let mut e = Rd(r.vec16()?);
    while !e.is_empty() {
        let t = e.u16()?;
        exts.push((t, e.vec16()?.to_vec()));
    }
    Ok(exts)
}

fn put_extensions(out: &mut Vec<u8>, exts: &[(u16, Vec<u8>)]) {
    let mut body = Vec::new();
    for (t, d) in exts {
        put16(&mut body, usize::from(*t));
        put16(&mut body, d.len());
        body.extend_from_slice(d);
    }
    put16(out, body.len());
    out.extend_from_slice(&body);
}

/// A handshake record (content type 22) holding one message.
fn record(record_version: u16, msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![22];
    out.extend_from_slice(&record_version.to_be_bytes());
    put16(&mut out, body.len() + 4);
    out.push(msg_type);
    put24(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A ClientHello's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHelloMsg {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub ciphers: Vec<u16>,
    pub compression: Vec<u8>,
    /// `(type, body)` in wire order.
    pub extensions: Vec<(u16, Vec<u8>)>,
}

impl ClientHelloMsg {
    /// A hello with the given version, ciphers and extensions (zero random, no session id).
    pub fn new(legacy_version: u16, ciphers: Vec<u16>, extensions: Vec<(u16, Vec<u8>)>) -> Self {
        ClientHelloMsg {
            legacy_version,
            random: [7; 32],
            session_id: Vec::new(),
            ciphers,
            compression: vec![0],
            extensions,
        }
    }

    /// Parses the body of a ClientHello handshake message (after its 4-byte header).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut r = Rd(body);
        let legacy_version = r.u16()?;
        let mut random = [0u8; 32];
        random.copy_from_slice(r.take(32)?);
        let session_id = r.vec8()?.to_vec();
        let ciphers = u16s(r.vec16()?);
        let compression = r.vec8()?.to_vec();
        let extensions = parse_extensions(&mut r)?;
        Ok(ClientHelloMsg {
            legacy_version,
            random,
            session_id,
            ciphers,
            compression,
            extensions,
        })
    }

    /// The message body (without the handshake header).
    pub fn body(&self) -> Vec<u8> {
        let mut out = self.legacy_version.to_be_bytes().to_vec();
        out.extend_from_slice(&self.random);
        out.push(self.session_id.len() as u8);
        out.extend_from_slice(&self.session_id);
        put16(&mut out, self.ciphers.len() * 2);
        for c in &self.ciphers {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out.push(self.compression.len() as u8);
        out.extend_from_slice(&self.compression);
        put_extensions(&mut out, &self.extensions);
        out
    }

    /// The message in one handshake record.
    pub fn to_record(&self, record_version: u16) -> Vec<u8> {
        record(record_version, 1, &self.body())
    }

    /// The body of the first extension of type `t`.
    pub fn ext(&self, t: u16) -> Option<&[u8]> {
        self.extensions
            .iter()
            .find(|(et, _)| *et == t)
            .map(|(_, d)| d.as_slice())
    }
}

/// A ServerHello's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHelloMsg {
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id: Vec<u8>,
    pub cipher: u16,
    pub compression: u8,
    pub extensions: Vec<(u16, Vec<u8>)>,
}

impl ServerHelloMsg {
    /// A hello with the given version, cipher and extensions.
    pub fn new(legacy_version: u16, cipher: u16, extensions: Vec<(u16, Vec<u8>)>) -> Self {
        ServerHelloMsg {
            legacy_version,
            random: [9; 32],
            session_id: Vec::new(),
            cipher,
            compression: 0,
            extensions,
        }
    }

    /// Parses the body of a ServerHello handshake message.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut r = Rd(body);
        let legacy_version = r.u16()?;
        let mut random = [0u8; 32];
        random.copy_from_slice(r.take(32)?);
        let session_id = r.vec8()?.to_vec();
        let cipher = r.u16()?;
        let compression = r.u8()?;
        let extensions = parse_extensions(&mut r)?;
        Ok(ServerHelloMsg {
            legacy_version,
            random,
            session_id,
            cipher,
            compression,
            extensions,
        })
    }

    /// The message body (without the handshake header).
    pub fn body(&self) -> Vec<u8> {
        let mut out = self.legacy_version.to_be_bytes().to_vec();
        out.extend_from_slice(&self.random);
        out.push(self.session_id.len() as u8);
        out.extend_from_slice(&self.session_id);
        out.extend_from_slice(&self.cipher.to_be_bytes());
        out.push(self.compression);
        put_extensions(&mut out, &self.extensions);
        out
    }

    /// The message in one handshake record.
    pub fn to_record(&self, record_version: u16) -> Vec<u8> {
        record(record_version, 2, &self.body())
    }
}

/// The `server_name` extension body for one host name.
pub fn ext_sni(name: &str) -> (u16, Vec<u8>) {
    let mut list = vec![0u8];
    put16(&mut list, name.len());
    list.extend_from_slice(name.as_bytes());
    let mut body = Vec::new();
    put16(&mut body, list.len());
    body.extend_from_slice(&list);
    (EXT_SNI, body)
}

/// The ALPN extension body for a list of protocols.
pub fn ext_alpn(protocols: &[&[u8]]) -> (u16, Vec<u8>) {
    let mut list = Vec::new();
    for p in protocols {
        list.push(p.len() as u8);
        list.extend_from_slice(p);
    }
    let mut body = Vec::new();
    put16(&mut body, list.len());
    body.extend_from_slice(&list);
    (EXT_ALPN, body)
}

/// An extension whose body is a u16-length-prefixed list of u16 (groups, signature algorithms).
pub fn ext_u16_list(t: u16, values: &[u16]) -> (u16, Vec<u8>) {
    let mut body = Vec::new();
    put16(&mut body, values.len() * 2);
    for v in values {
        body.extend_from_slice(&v.to_be_bytes());
    }
    (t, body)
}

/// The ClientHello `supported_versions` extension (u8-length-prefixed list of u16).
pub fn ext_supported_versions(values: &[u16]) -> (u16, Vec<u8>) {
    let mut body = vec![(values.len() * 2) as u8];
    for v in values {
        body.extend_from_slice(&v.to_be_bytes());
    }
    (EXT_SUPPORTED_VERSIONS, body)
}

/// The `ec_point_formats` extension.
pub fn ext_point_formats(values: &[u8]) -> (u16, Vec<u8>) {
    let mut body = vec![values.len() as u8];
    body.extend_from_slice(values);
    (EXT_POINT_FORMATS, body)
}

/// GREASE values the rewrite inserts.
pub const GREASE_CIPHER_FIRST: u16 = 0x0a0a;
pub const GREASE_CIPHER_LAST: u16 = 0xfafa;
pub const GREASE_EXT_FIRST: u16 = 0x1a1a;
pub const GREASE_EXT_LAST: u16 = 0xdada;
pub const GREASE_GROUP: u16 = 0x2a2a;
pub const GREASE_VERSION: u16 = 0x3a3a;

/// Rewrites a ClientHello record (one record holding exactly the ClientHello) the way a
/// browser would send it: GREASE first and last in the cipher list, an empty GREASE
/// extension first and last, GREASE first in `supported_groups` and `supported_versions`
/// (when present). Every length field is recomputed.
pub fn greased(record_bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut r = Rd(record_bytes);
    if r.u8()? != 22 {
        return Err("not a handshake record".into());
    }
    let record_version = r.u16()?;
    let mut hs = Rd(r.vec16()?);
    if hs.u8()? != 1 {
        return Err("not a ClientHello".into());
    }
    let n = hs.u24()?;
    let mut ch = ClientHelloMsg::parse(hs.take(n)?)?;
    ch.ciphers.insert(0, GREASE_CIPHER_FIRST);
    ch.ciphers.push(GREASE_CIPHER_LAST);
    for (t, body) in ch.extensions.iter_mut() {
        match *t {
            EXT_GROUPS => {
                let mut v = u16s(body.get(2..).unwrap_or_default());
                v.insert(0, GREASE_GROUP);
                *body = ext_u16_list(EXT_GROUPS, &v).1;
            }
            EXT_SUPPORTED_VERSIONS => {
                let mut v = u16s(body.get(1..).unwrap_or_default());
                v.insert(0, GREASE_VERSION);
                *body = ext_supported_versions(&v).1;
            }
            _ => {}
        }
    }
    ch.extensions.insert(0, (GREASE_EXT_FIRST, Vec::new()));
    ch.extensions.push((GREASE_EXT_LAST, Vec::new()));
    Ok(ch.to_record(record_version))
}
