//! ClientHello, ServerHello and Certificate handshake message parsing.
//!
//! Hand-written over a bounds-checked cursor: every length is checked against what is left,
//! and nothing panics on any input. The outer structure of a message must be well-formed (a
//! length that overruns is a [`HelloError`]); the body of a known extension that does not
//! decode leaves its decoded field empty while its raw bytes stay in
//! [`Extension::data`], so a fingerprint can still be taken. Bytes after the extensions
//! block are ignored. When an extension type appears twice, the first one is decoded.

use thiserror::Error;

/// Extension `server_name` (SNI).
pub const EXT_SERVER_NAME: u16 = 0;
/// Extension `supported_groups` (formerly `elliptic_curves`).
pub const EXT_SUPPORTED_GROUPS: u16 = 10;
/// Extension `ec_point_formats`.
pub const EXT_EC_POINT_FORMATS: u16 = 11;
/// Extension `signature_algorithms`.
pub const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
/// Extension `application_layer_protocol_negotiation` (ALPN).
pub const EXT_ALPN: u16 = 16;
/// Extension `supported_versions`.
pub const EXT_SUPPORTED_VERSIONS: u16 = 43;

/// Handshake type of a ClientHello.
pub const CLIENT_HELLO: u8 = 1;
/// Handshake type of a ServerHello.
pub const SERVER_HELLO: u8 = 2;
/// Handshake type of a Certificate message.
pub const CERTIFICATE: u8 = 11;

/// The `random` of a ServerHello that is really a TLS 1.3 HelloRetryRequest (RFC 8446 4.1.3).
pub const HELLO_RETRY_REQUEST_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// A hello or certificate message that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed {message}: {field} overruns the message")]
pub struct HelloError {
    /// Which message (`ClientHello`, `ServerHello`, `Certificate`).
    pub message: &'static str,
    /// The field whose length did not fit.
    pub field: &'static str,
}

/// One extension as sent: its type and raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    /// Extension type.
    pub typ: u16,
    /// Extension body, undecoded.
    pub data: Vec<u8>,
}

/// A parsed ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `legacy_version` (`client_version` before TLS 1.3).
    pub legacy_version: u16,
    /// The 32-byte random.
    pub random: [u8; 32],
    /// Legacy session id.
    pub session_id: Vec<u8>,
    /// Cipher suites in wire order (GREASE included).
    pub ciphers: Vec<u16>,
    /// Compression methods.
    pub compression: Vec<u8>,
    /// Extensions in wire order with their raw bodies (GREASE included).
    pub extensions: Vec<Extension>,
    /// The first `host_name` of the SNI extension (lossy UTF-8).
    pub server_name: Option<String>,
    /// `supported_groups` (extension 10) in wire order.
    pub supported_groups: Vec<u16>,
    /// `ec_point_formats` (extension 11) in wire order.
    pub ec_point_formats: Vec<u8>,
    /// `signature_algorithms` (extension 13) in wire order.
    pub signature_algorithms: Vec<u16>,
    /// ALPN protocol names (extension 16) in wire order.
    pub alpn: Vec<Vec<u8>>,
    /// `supported_versions` (extension 43) in wire order.
    pub supported_versions: Vec<u16>,
}

/// A parsed ServerHello (or HelloRetryRequest).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerHello {
    /// `legacy_version` (`server_version` before TLS 1.3).
    pub legacy_version: u16,
    /// The 32-byte random.
    pub random: [u8; 32],
    /// Legacy session id (echo).
    pub session_id: Vec<u8>,
    /// The selected cipher suite.
    pub cipher: u16,
    /// The selected compression method.
    pub compression: u8,
    /// Extensions in wire order with their raw bodies.
    pub extensions: Vec<Extension>,
    /// `selected_version` of the `supported_versions` extension (TLS 1.3).
    pub selected_version: Option<u16>,
    /// The protocol the ALPN extension selected.
    pub alpn: Option<Vec<u8>>,
}

impl ServerHello {
    /// The version this hello negotiates: `supported_versions` when present, else the
    /// legacy version.
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }

    /// True when this is a TLS 1.3 HelloRetryRequest (its random is the fixed value).
    pub fn is_hello_retry_request(&self) -> bool {
        self.random == HELLO_RETRY_REQUEST_RANDOM
    }
}

/// One entry of a TLS 1.3 Certificate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateEntry {
    /// The certificate (DER, or a raw public key).
    pub data: Vec<u8>,
    /// The entry's extensions block, undecoded.
    pub extensions: Vec<u8>,
}

/// A parsed TLS 1.3 Certificate message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Certificate13 {
    /// `certificate_request_context`.
    pub request_context: Vec<u8>,
    /// Entries in the order sent.
    pub entries: Vec<CertificateEntry>,
}

/// True for the RFC 8701 GREASE values (`0x0a0a`, `0x1a1a`, ... `0xfafa`).
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// A bounds-checked cursor over a message.
struct Cursor<'a> {
    data: &'a [u8],
    message: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(data: &'a [u8], message: &'static str) -> Self {
        Self { data, message }
    }

    fn err(&self, field: &'static str) -> HelloError {
        HelloError {
            message: self.message,
            field,
        }
    }

    fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], HelloError> {
        if n > self.data.len() {
            return Err(self.err(field));
        }
        let (a, b) = self.data.split_at(n);
        self.data = b;
        Ok(a)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, HelloError> {
        Ok(self.bytes(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, HelloError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self, field: &'static str) -> Result<usize, HelloError> {
        let b = self.bytes(3, field)?;
        Ok((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    /// A vector with a 1-byte length.
    fn vec8(&mut self, field: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u8(field)?;
        self.bytes(usize::from(n), field)
    }

    /// A vector with a 2-byte length.
    fn vec16(&mut self, field: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u16(field)?;
        self.bytes(usize::from(n), field)
    }

    /// A vector with a 3-byte length.
    fn vec24(&mut self, field: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u24(field)?;
        self.bytes(n, field)
    }

    fn random(&mut self) -> Result<[u8; 32], HelloError> {
        let mut r = [0; 32];
        r.copy_from_slice(self.bytes(32, "random")?);
        Ok(r)
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A list of u16 values (odd trailing byte: `None`).
fn u16_list(data: &[u8]) -> Option<Vec<u16>> {
    if data.len() % 2 != 0 {
        return None;
    }
    Some(
        data.chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect(),
    )
}

/// The extensions block (absent when the message ends first).
fn extensions(c: &mut Cursor<'_>) -> Result<Vec<Extension>, HelloError> {
    if c.is_empty() {
        return Ok(Vec::new());
    }
    let mut block = Cursor::new(c.vec16("extensions")?, c.message);
    let mut out = Vec::new();
    while !block.is_empty() {
        let typ = block.u16("extension type")?;
        let data = block.vec16("extension body")?.to_vec();
        out.push(Extension { typ, data });
    }
    Ok(out)
}

/// The first extension of type `typ`.
fn find(exts: &[Extension], typ: u16) -> Option<&[u8]> {
    exts.iter()
        .find(|e| e.typ == typ)
        .map(|e| e.data.as_slice())
}

/// A body holding one vector with a 2-byte length and nothing after it.
fn whole_vec16(data: &[u8]) -> Option<&[u8]> {
    let mut c = Cursor::new(data, "");
    let v = c.vec16("").ok()?;
    c.is_empty().then_some(v)
}

fn decode_sni(data: &[u8]) -> Option<String> {
    let mut list = Cursor::new(whole_vec16(data)?, "");
    while !list.is_empty() {
        let kind = list.u8("").ok()?;
        let name = list.vec16("").ok()?;
        if kind == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

fn decode_alpn(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut list = Cursor::new(whole_vec16(data)?, "");
    let mut out = Vec::new();
    while !list.is_empty() {
        out.push(list.vec8("").ok()?.to_vec());
    }
    Some(out)
}

/// Parses a ClientHello body (the handshake message without its 4-byte header).
pub fn parse_client_hello(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut c = Cursor::new(body, "ClientHello");
    let legacy_version = c.u16("legacy_version")?;
    let random = c.random()?;
    let session_id = c.vec8("session_id")?.to_vec();
    let ciphers = u16_list(c.vec16("cipher_suites")?).ok_or(c.err("cipher_suites"))?;
    let compression = c.vec8("compression_methods")?.to_vec();
    let extensions = extensions(&mut c)?;
    let mut h = ClientHello {
        legacy_version,
        random,
        session_id,
        ciphers,
        compression,
        ..ClientHello::default()
    };
    if let Some(d) = find(&extensions, EXT_SERVER_NAME) {
        h.server_name = decode_sni(d);
    }
    if let Some(d) = find(&extensions, EXT_SUPPORTED_GROUPS) {
        h.supported_groups = whole_vec16(d).and_then(u16_list).unwrap_or_default();
    }
    if let Some(d) = find(&extensions, EXT_EC_POINT_FORMATS) {
        let mut p = Cursor::new(d, "");
        if let Ok(v) = p.vec8("") {
            if p.is_empty() {
                h.ec_point_formats = v.to_vec();
            }
        }
    }
    if let Some(d) = find(&extensions, EXT_SIGNATURE_ALGORITHMS) {
        h.signature_algorithms = whole_vec16(d).and_then(u16_list).unwrap_or_default();
    }
    if let Some(d) = find(&extensions, EXT_ALPN) {
        h.alpn = decode_alpn(d).unwrap_or_default();
    }
    if let Some(d) = find(&extensions, EXT_SUPPORTED_VERSIONS) {
        let mut p = Cursor::new(d, "");
        if let Ok(v) = p.vec8("") {
            if p.is_empty() {
                h.supported_versions = u16_list(v).unwrap_or_default();
            }
        }
    }
    h.extensions = extensions;
    Ok(h)
}

/// Parses a ServerHello body (also a HelloRetryRequest, which has the same form).
pub fn parse_server_hello(body: &[u8]) -> Result<ServerHello, HelloError> {
    let mut c = Cursor::new(body, "ServerHello");
    let legacy_version = c.u16("legacy_version")?;
    let random = c.random()?;
    let session_id = c.vec8("session_id")?.to_vec();
    let cipher = c.u16("cipher_suite")?;
    let compression = c.u8("compression_method")?;
    let extensions = extensions(&mut c)?;
    let selected_version = find(&extensions, EXT_SUPPORTED_VERSIONS)
        .filter(|d| d.len() == 2)
        .map(|d| u16::from_be_bytes([d[0], d[1]]));
    let alpn = find(&extensions, EXT_ALPN)
        .and_then(decode_alpn)
        .and_then(|v| v.into_iter().next());
    Ok(ServerHello {
        legacy_version,
        random,
        session_id,
        cipher,
        compression,
        extensions,
        selected_version,
        alpn,
    })
}

/// Parses a TLS 1.2-and-earlier Certificate body: the DER certificates in the order sent.
pub fn parse_certificate(body: &[u8]) -> Result<Vec<Vec<u8>>, HelloError> {
    let mut c = Cursor::new(body, "Certificate");
    let mut list = Cursor::new(c.vec24("certificate_list")?, "Certificate");
    let mut out = Vec::new();
    while !list.is_empty() {
        out.push(list.vec24("certificate")?.to_vec());
    }
    Ok(out)
}

/// Parses a TLS 1.3 Certificate body (request context, entries with their extensions).
pub fn parse_certificate13(body: &[u8]) -> Result<Certificate13, HelloError> {
    let mut c = Cursor::new(body, "Certificate");
    let request_context = c.vec8("certificate_request_context")?.to_vec();
    let mut list = Cursor::new(c.vec24("certificate_list")?, "Certificate");
    let mut entries = Vec::new();
    while !list.is_empty() {
        let data = list.vec24("cert_data")?.to_vec();
        let extensions = list.vec16("extensions")?.to_vec();
        entries.push(CertificateEntry { data, extensions });
    }
    Ok(Certificate13 {
        request_context,
        entries,
    })
}

#[cfg(test)]
pub(crate) mod tests;
