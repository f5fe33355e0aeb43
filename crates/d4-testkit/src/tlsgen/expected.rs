//! What a TLS fingerprinting sensor must report for a [`Transcript`], computed from its raw
//! bytes by a second, deliberately simple implementation of `../shared/TLS.md` §2 (JA3,
//! JA3S) and §4 (JA4, `JA4_r`): the first ClientHello and ServerHello handshake messages
//! (wherever they sit in the records), the server's Certificate message when it is sent in
//! clear (TLS 1.2 and older; TLS 1.3 encrypts it, so the certificate lists are empty).
//! Signature algorithms enter JA4 in wire order with GREASE values removed.

use md5::{Digest as _, Md5};
use sha1::Sha1;
use sha2::Sha256;

use super::hello::{
    is_grease, u16s, ClientHelloMsg, Rd, ServerHelloMsg, EXT_ALPN, EXT_GROUPS, EXT_POINT_FORMATS,
    EXT_SIG_ALGS, EXT_SNI, EXT_SUPPORTED_VERSIONS,
};
use super::Transcript;

/// The expected fingerprints and facts of one transcript (`""` / empty when not seen).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub ja3: String,
    pub ja3_digest: String,
    pub ja3s: String,
    pub ja3s_digest: String,
    pub ja4: String,
    pub ja4_r: String,
    /// The client's SNI host name.
    pub sni: Option<String>,
    /// The ALPN protocols the client offered, in order.
    pub alpn: Vec<Vec<u8>>,
    /// The ALPN protocol the server selected (in clear only before TLS 1.3).
    pub server_alpn: Option<Vec<u8>>,
    /// The negotiated version (`supported_versions` of the ServerHello, else its
    /// legacy_version); 0 without a ServerHello.
    pub version: u16,
    /// SHA-1 of each certificate DER as sent, lowercase hex (empty for TLS 1.3).
    pub cert_sha1: Vec<String>,
    /// SHA-256 of each certificate DER as sent, lowercase hex (empty for TLS 1.3).
    pub cert_sha256: Vec<String>,
}

/// MD5 of a string, lowercase hex (the JA3 digest).
pub fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// The first 12 hex digits of the SHA-256 of `s` (a JA4 part), `000000000000` for `""`.
pub fn ja4_hash_part(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    hex::encode(Sha256::digest(s.as_bytes()))[..12].to_string()
}

/// The handshake messages `(type, body)` carried by the leading handshake records of a
/// stream (up to the first ChangeCipherSpec or encrypted record); a message may span records
/// and a record may hold several messages.
pub(crate) fn handshake_messages(stream: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut hs = Vec::new();
    let mut r = Rd(stream);
    while let (Ok(ct), Ok(_), Ok(body)) = (r.u8(), r.u16(), r.vec16()) {
        if ct != 22 {
            break;
        }
        hs.extend_from_slice(body);
    }
    let mut msgs = Vec::new();
    let mut r = Rd(&hs);
    while let (Ok(t), Ok(n)) = (r.u8(), r.u24()) {
        match r.take(n) {
            Ok(body) => msgs.push((t, body.to_vec())),
            Err(_) => break,
        }
    }
    msgs
}

fn join<T: ToString>(v: impl IntoIterator<Item = T>, sep: &str) -> String {
    v.into_iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

fn no_grease(v: &[u16]) -> Vec<u16> {
    v.iter().copied().filter(|x| !is_grease(*x)).collect()
}

fn ja3(ch: &ClientHelloMsg) -> String {
    let exts: Vec<u16> = ch.extensions.iter().map(|(t, _)| *t).collect();
    let groups = ch
        .ext(EXT_GROUPS)
        .map(|b| u16s(b.get(2..).unwrap_or_default()))
        .unwrap_or_default();
    let formats = ch
        .ext(EXT_POINT_FORMATS)
        .map(|b| b.get(1..).unwrap_or_default().to_vec())
        .unwrap_or_default();
    format!(
        "{},{},{},{},{}",
        ch.legacy_version,
        join(no_grease(&ch.ciphers), "-"),
        join(no_grease(&exts), "-"),
        join(no_grease(&groups), "-"),
        join(formats, "-")
    )
}

fn ja3s(sh: &ServerHelloMsg) -> String {
    let exts: Vec<u16> = sh.extensions.iter().map(|(t, _)| *t).collect();
    format!(
        "{},{},{}",
        sh.legacy_version,
        sh.cipher,
        join(no_grease(&exts), "-")
    )
}

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The protocols of an ALPN extension body.
fn alpn_list(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = Rd(body.get(2..).unwrap_or_default());
    while let Ok(p) = r.vec8() {
        out.push(p.to_vec());
    }
    out
}

fn alpn_chars(first: Option<&Vec<u8>>) -> String {
    let Some(p) = first.filter(|p| !p.is_empty()) else {
        return "00".into();
    };
    let (f, l) = (p[0], p[p.len() - 1]);
    if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
        format!("{}{}", f as char, l as char)
    } else {
        let (fh, lh) = (format!("{f:02x}"), format!("{l:02x}"));
        format!("{}{}", &fh[..1], &lh[1..])
    }
}

/// JA4 and `JA4_r` of a ClientHello; `transport` is `t` (TCP) or `q` (QUIC).
fn ja4(ch: &ClientHelloMsg, transport: char) -> (String, String) {
    let version = match ch.ext(EXT_SUPPORTED_VERSIONS) {
        Some(b) => no_grease(&u16s(b.get(1..).unwrap_or_default()))
            .into_iter()
            .max()
            .unwrap_or(0),
        None => ch.legacy_version,
    };
    let ciphers = no_grease(&ch.ciphers);
    let exts = no_grease(&ch.extensions.iter().map(|(t, _)| *t).collect::<Vec<_>>());
    let alpn = ch.ext(EXT_ALPN).map(alpn_list).unwrap_or_default();
    let a = format!(
        "{transport}{}{}{:02}{:02}{}",
        version_code(version),
        if ch.ext(EXT_SNI).is_some() { 'd' } else { 'i' },
        ciphers.len().min(99),
        exts.len().min(99),
        alpn_chars(alpn.first())
    );
    let mut cs: Vec<String> = ciphers.iter().map(|c| format!("{c:04x}")).collect();
    cs.sort();
    let b_raw = cs.join(",");
    let mut es: Vec<String> = exts
        .iter()
        .filter(|e| **e != EXT_SNI && **e != EXT_ALPN)
        .map(|e| format!("{e:04x}"))
        .collect();
    es.sort();
    let sigs = ch
        .ext(EXT_SIG_ALGS)
        .map(|b| no_grease(&u16s(b.get(2..).unwrap_or_default())))
        .unwrap_or_default();
    let mut c_raw = es.join(",");
    if !sigs.is_empty() {
        c_raw.push('_');
        c_raw.push_str(&join(sigs.iter().map(|s| format!("{s:04x}")), ","));
    }
    let c_hash = if es.is_empty() {
        "000000000000".to_string()
    } else {
        ja4_hash_part(&c_raw)
    };
    (
        format!("{a}_{}_{c_hash}", ja4_hash_part(&b_raw)),
        format!("{a}_{b_raw}_{c_raw}"),
    )
}

fn sni(ch: &ClientHelloMsg) -> Option<String> {
    let body = ch.ext(EXT_SNI)?;
    let mut r = Rd(body);
    let mut list = Rd(r.vec16().ok()?);
    while let (Ok(kind), Ok(name)) = (list.u8(), list.vec16()) {
        if kind == 0 {
            return Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    None
}

fn certificates(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut r = Rd(body);
    let Ok(n) = r.u24() else { return out };
    let Ok(list) = r.take(n) else { return out };
    let mut l = Rd(list);
    while let Ok(n) = l.u24() {
        match l.take(n) {
            Ok(c) => out.push(c.to_vec()),
            Err(_) => break,
        }
    }
    out
}

fn client_side(e: &mut Expected, ch: &ClientHelloMsg, transport: char) {
    e.ja3 = ja3(ch);
    e.ja3_digest = md5_hex(&e.ja3);
    (e.ja4, e.ja4_r) = ja4(ch, transport);
    e.sni = sni(ch);
    e.alpn = ch.ext(EXT_ALPN).map(alpn_list).unwrap_or_default();
}

/// Client-side expectations (JA3, JA4 with `q`, `JA4_r`, SNI, ALPN) of a ClientHello carried
/// by QUIC: `message` is the handshake message (type, length, body) as the CRYPTO frames
/// carry it. The server-side fields stay empty.
pub fn expected_quic(message: &[u8]) -> Result<Expected, String> {
    let mut r = Rd(message);
    if r.u8()? != 1 {
        return Err("not a ClientHello".into());
    }
    let n = r.u24()?;
    let ch = ClientHelloMsg::parse(r.take(n)?)?;
    let mut e = Expected::default();
    client_side(&mut e, &ch, 'q');
    Ok(e)
}

/// Expectations from the two byte streams of a connection.
pub fn expected_from_streams(client: &[u8], server: &[u8]) -> Result<Expected, String> {
    let mut e = Expected::default();
    let ch = handshake_messages(client)
        .into_iter()
        .find(|(t, _)| *t == 1)
        .map(|(_, b)| ClientHelloMsg::parse(&b))
        .transpose()?;
    if let Some(ch) = ch {
        client_side(&mut e, &ch, 't');
    }
    let msgs = handshake_messages(server);
    if let Some((_, body)) = msgs.iter().find(|(t, _)| *t == 2) {
        let sh = ServerHelloMsg::parse(body)?;
        e.ja3s = ja3s(&sh);
        e.ja3s_digest = md5_hex(&e.ja3s);
        e.version = sh
            .extensions
            .iter()
            .find(|(t, _)| *t == EXT_SUPPORTED_VERSIONS)
            .and_then(|(_, b)| u16s(b).first().copied())
            .unwrap_or(sh.legacy_version);
        e.server_alpn = sh
            .extensions
            .iter()
            .find(|(t, _)| *t == EXT_ALPN)
            .and_then(|(_, b)| alpn_list(b).into_iter().next());
    }
    if let Some((_, body)) = msgs.iter().find(|(t, _)| *t == 11) {
        for der in certificates(body) {
            e.cert_sha1.push(hex::encode(Sha1::digest(&der)));
            e.cert_sha256.push(hex::encode(Sha256::digest(&der)));
        }
    }
    Ok(e)
}

/// Expectations for a transcript. Panics when its hellos do not parse (test support).
pub fn expected(t: &Transcript) -> Expected {
    match expected_from_streams(&t.stream(true), &t.stream(false)) {
        Ok(e) => e,
        Err(err) => panic!("transcript does not parse: {err}"),
    }
}
