//! Test inputs for TLS fingerprinting (issue 17): real TLS handshakes made in memory by
//! rustls and by OpenSSL, what their fingerprints must be, and TCP captures of them.
//!
//! * [`handshake`]: both endpoints of one stack driven through in-memory pipes until the
//!   handshake completes and a few application bytes flow; every write is recorded in
//!   order ([`Transcript`]). With [`HandshakeSpec::grease`] the ClientHello in the
//!   transcript is rewritten to carry GREASE values (neither stack sends them).
//! * [`expected`]: JA3, JA3S, JA4, `JA4_r`, SNI, ALPN and certificate hashes computed from
//!   the transcript's raw bytes by a second, deliberately simple implementation (it does not
//!   use `d4-tls`), per `../shared/TLS.md` §2 and §4.
//! * [`tcp_frames`], [`pcap_file`], [`pcapng_file`]: a transcript as Ethernet frames of one
//!   TCP connection (IPv4/IPv6, VLAN, random segment sizes, reordering, retransmissions,
//!   overlaps, capture starting mid-flow), and capture files of them; [`tcp_streams`] reads
//!   such frames back.
//! * [`mixed_capture`] / [`write_mixed_pcap`]: a large deterministic capture of mixed traffic
//!   with a share of TLS handshakes, for `d4 bench tls`.
//! * [`quic_initials`]: QUIC v1 client Initial packets carrying a real (rustls) ClientHello,
//!   [`expected_quic`] their JA4 (`q`), [`udp_frames`] the datagrams as frames.
//! * [`reframe_first_flight`]: the same handshake with its first flight in other records
//!   (several messages in one record, one message across records).

mod capture;
mod certs;
mod drive_openssl;
mod drive_rustls;
mod expected;
pub mod hello;
mod mixed;
mod pcap;
mod quic;
mod reframe;
mod rng;

pub use capture::{tcp_frames, CaptureSpec};
pub use expected::{
    expected, expected_from_streams, expected_quic, ja4_hash_part, md5_hex, Expected,
};
pub use mixed::{mixed_capture, mixed_transcripts, write_mixed_pcap, MixedCapture, MIXED_LINKTYPE};
pub use pcap::{pcap_file, pcapng_file, tcp_streams, LINKTYPE_ETHERNET};
pub use quic::{
    protect_client_initial, quic_client_hello, quic_initials, udp_frames, QuicInitials, QuicSpec,
};
pub use reframe::reframe_first_flight;

/// The TLS implementation both endpoints of a handshake use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stack {
    /// rustls 0.23 with ring: TLS 1.2 and 1.3.
    Rustls,
    /// OpenSSL 3 through the `openssl` crate: TLS 1.0 to 1.3.
    OpenSsl,
}

/// The protocol version both endpoints are limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl Version {
    /// The version's wire value (`0x0301` for TLS 1.0 ... `0x0304` for TLS 1.3).
    pub fn wire(self) -> u16 {
        match self {
            Version::Tls10 => 0x0301,
            Version::Tls11 => 0x0302,
            Version::Tls12 => 0x0303,
            Version::Tls13 => 0x0304,
        }
    }
}

/// The server's key type (the CA of a chain has the same type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Rsa2048,
    EcdsaP256,
}

/// What handshake to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeSpec {
    pub stack: Stack,
    pub version: Version,
    pub key: KeyKind,
    /// The leaf is signed by a generated CA and the server sends both; else the leaf is
    /// self-signed and sent alone.
    pub chain: bool,
    /// The server name the client sends (none: no SNI extension).
    pub sni: Option<String>,
    /// The ALPN protocols the client offers (the server accepts the same list, so it picks
    /// the first).
    pub alpn: Vec<Vec<u8>>,
    /// Rewrite the ClientHello in the transcript to carry GREASE values ([`hello::greased`]).
    pub grease: bool,
}

impl HandshakeSpec {
    /// A plain spec: no chain, no SNI, no ALPN, no GREASE.
    pub fn new(stack: Stack, version: Version, key: KeyKind) -> Self {
        HandshakeSpec {
            stack,
            version,
            key,
            chain: false,
            sni: None,
            alpn: Vec::new(),
            grease: false,
        }
    }
}

/// One connection's bytes as both endpoints wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    /// Every write in order: `(from_client, bytes)`.
    pub writes: Vec<(bool, Vec<u8>)>,
    /// The certificates as the server sends them, leaf first (DER).
    pub cert_chain_der: Vec<Vec<u8>>,
    /// The TLS record holding the ClientHello, exactly as it appears in `writes`.
    pub client_hello_record: Vec<u8>,
}

impl Transcript {
    /// All bytes one side sent, in order.
    pub fn stream(&self, from_client: bool) -> Vec<u8> {
        self.writes
            .iter()
            .filter(|(c, _)| *c == from_client)
            .flat_map(|(_, b)| b.iter().copied())
            .collect()
    }
}

/// The application bytes the client sends once the handshake is done.
pub const APP_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: d4.test\r\n\r\n";
/// The application bytes the server answers with.
pub const APP_RESPONSE: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

/// Makes one real handshake in memory. `Err` when the stack does not support the spec
/// (rustls and TLS 1.0/1.1) or the handshake fails.
pub fn handshake(spec: &HandshakeSpec) -> Result<Transcript, String> {
    let names: Vec<String> = match &spec.sni {
        Some(n) => vec![n.clone(), "localhost".to_string()],
        None => vec!["localhost".to_string()],
    };
    let creds = certs::server_credentials(spec.key, spec.chain, &names)?;
    let writes = match spec.stack {
        Stack::Rustls => drive_rustls::run(spec, &creds)?,
        Stack::OpenSsl => drive_openssl::run(spec, &creds)?,
    };
    finish(spec, writes, creds.chain_der)
}

/// Finds the ClientHello record, applies the GREASE rewrite when asked.
fn finish(
    spec: &HandshakeSpec,
    mut writes: Vec<(bool, Vec<u8>)>,
    cert_chain_der: Vec<Vec<u8>>,
) -> Result<Transcript, String> {
    let first = match writes.first_mut() {
        Some((true, b)) => b,
        _ => return Err("the transcript does not start with a client write".into()),
    };
    if first.len() < 5 || first[0] != 22 {
        return Err("the first client write is not a handshake record".into());
    }
    let rec_len = 5 + usize::from(u16::from_be_bytes([first[3], first[4]]));
    if first.len() < rec_len {
        return Err("the ClientHello record is split across writes".into());
    }
    let mut record = first[..rec_len].to_vec();
    if spec.grease {
        record = hello::greased(&record)?;
        let rest = first[rec_len..].to_vec();
        *first = record.clone();
        first.extend_from_slice(&rest);
    }
    Ok(Transcript {
        writes,
        cert_chain_der,
        client_hello_record: record,
    })
}
