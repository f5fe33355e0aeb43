//! QUIC v1 client Initial packets carrying a real ClientHello: rustls (ring) in QUIC mode
//! writes the ClientHello, and rustls's QUIC initial keys (RFC 9001 §5: secrets from the
//! client's Destination Connection ID, AES-128-GCM payload protection, AES header
//! protection) protect the packets. The CRYPTO data can be spread over several Initial
//! packets (each its own datagram, padded to 1200 bytes) and sent out of order. A second
//! implementation beside `d4-tls`'s decoder, checked against RFC 9001 Appendix A.2.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite::TLS13_AES_128_GCM_SHA256, default_provider};
use rustls::quic::{self, Keys};
use rustls::{ClientConfig, RootCertStore, Side};
use rustls_pki_types::ServerName;

use super::capture::{ip_frame, udp, MAC_CLIENT, MAC_SERVER};

/// What QUIC Initial packets to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicSpec {
    /// The server name the client sends (none: no SNI extension).
    pub sni: Option<String>,
    /// The ALPN protocols the client offers (e.g. `h3`).
    pub alpn: Vec<Vec<u8>>,
    /// The client's Destination Connection ID (the initial keys come from it).
    pub dcid: Vec<u8>,
    /// The client's Source Connection ID.
    pub scid: Vec<u8>,
    /// Most CRYPTO bytes per packet (0: the whole ClientHello in one packet).
    pub crypto_per_packet: usize,
    /// Send the packets in reverse order (CRYPTO offsets out of order).
    pub reverse: bool,
    /// Rewrite the ClientHello with GREASE values ([`super::hello::greased`]).
    pub grease: bool,
}

impl QuicSpec {
    /// One packet, SNI `quic.example`, ALPN `h3`, fixed connection IDs.
    pub fn new() -> Self {
        QuicSpec {
            sni: Some("quic.example".into()),
            alpn: vec![b"h3".to_vec()],
            dcid: vec![0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08],
            scid: vec![0x51, 0xd4],
            crypto_per_packet: 0,
            reverse: false,
            grease: false,
        }
    }
}

impl Default for QuicSpec {
    fn default() -> Self {
        Self::new()
    }
}

/// The client's first flight: its ClientHello and the UDP payloads that carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicInitials {
    /// The ClientHello handshake message (type, length, body) the CRYPTO frames carry.
    pub client_hello: Vec<u8>,
    /// One protected Initial packet per datagram, in sending order.
    pub datagrams: Vec<Vec<u8>>,
}

/// A QUIC transport-parameters block (initial_max_data, initial_max_streams_bidi,
/// initial_source_connection_id).
fn transport_parameters(scid: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x04,
        0x04,
        0x80,
        0x10,
        0x00,
        0x00,
        0x08,
        0x01,
        0x10,
        0x0f,
        scid.len() as u8,
    ];
    p.extend_from_slice(scid);
    p
}

/// The ClientHello a rustls QUIC client sends (handshake message bytes).
pub fn quic_client_hello(spec: &QuicSpec) -> Result<Vec<u8>, String> {
    let mut config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("rustls QUIC client: {e}"))?
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = spec.alpn.clone();
    config.enable_sni = spec.sni.is_some();
    let name = spec.sni.clone().unwrap_or_else(|| "localhost".into());
    let name = ServerName::try_from(name).map_err(|e| format!("server name: {e}"))?;
    let mut conn = quic::ClientConnection::new(
        Arc::new(config),
        quic::Version::V1,
        name,
        transport_parameters(&spec.scid),
    )
    .map_err(|e| format!("rustls QUIC client: {e}"))?;
    let mut msg = Vec::new();
    conn.write_hs(&mut msg);
    if msg.first() != Some(&1) {
        return Err("rustls QUIC client wrote no ClientHello".into());
    }
    if spec.grease {
        let mut record = vec![22, 3, 1];
        record.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        record.extend_from_slice(&msg);
        msg = super::hello::greased(&record)?[5..].to_vec();
    }
    Ok(msg)
}

/// A QUIC variable-length integer.
fn varint(v: u64, out: &mut Vec<u8>) {
    match v {
        0..=63 => out.push(v as u8),
        64..=16383 => out.extend_from_slice(&(0x4000 | v as u16).to_be_bytes()),
        16384..=0x3fff_ffff => out.extend_from_slice(&(0x8000_0000 | v as u32).to_be_bytes()),
        _ => out.extend_from_slice(&(0xc000_0000_0000_0000 | v).to_be_bytes()),
    }
}

/// Protects one client Initial packet: `payload` is the plaintext frames (already padded),
/// `pn` the packet number (sent in 4 bytes). Returns the whole packet.
pub fn protect_client_initial(
    dcid: &[u8],
    scid: &[u8],
    pn: u32,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let suite = TLS13_AES_128_GCM_SHA256
        .tls13()
        .and_then(|s| s.quic_suite())
        .ok_or("no QUIC suite for TLS13_AES_128_GCM_SHA256")?;
    let keys: Keys = suite.keys(dcid, Side::Client, quic::Version::V1);
    let mut packet = vec![0xc3, 0, 0, 0, 1, dcid.len() as u8];
    packet.extend_from_slice(dcid);
    packet.push(scid.len() as u8);
    packet.extend_from_slice(scid);
    packet.push(0); // no token
    varint((4 + payload.len() + 16) as u64, &mut packet);
    let pn_offset = packet.len();
    packet.extend_from_slice(&pn.to_be_bytes());
    let mut body = payload.to_vec();
    let tag = keys
        .local
        .packet
        .encrypt_in_place(u64::from(pn), &packet, &mut body)
        .map_err(|e| format!("QUIC payload protection: {e}"))?;
    body.extend_from_slice(tag.as_ref());
    let sample = &body[..16]; // pn_offset + 4 is the start of the ciphertext
    let (first, rest) = packet.split_at_mut(1);
    keys.local
        .header
        .encrypt_in_place(
            sample,
            &mut first[0],
            &mut rest[pn_offset - 1..pn_offset + 3],
        )
        .map_err(|e| format!("QUIC header protection: {e}"))?;
    packet.extend_from_slice(&body);
    Ok(packet)
}

/// The client's Initial packets for `spec`.
pub fn quic_initials(spec: &QuicSpec) -> Result<QuicInitials, String> {
    let client_hello = quic_client_hello(spec)?;
    let per = if spec.crypto_per_packet == 0 {
        client_hello.len()
    } else {
        spec.crypto_per_packet
    };
    let header_len = 7 + spec.dcid.len() + spec.scid.len() + 2 + 4;
    let mut datagrams = Vec::new();
    for (i, chunk) in client_hello.chunks(per).enumerate() {
        let mut frames = vec![0x06];
        varint((i * per) as u64, &mut frames);
        varint(chunk.len() as u64, &mut frames);
        frames.extend_from_slice(chunk);
        let min = 1200usize.saturating_sub(header_len + 16);
        if frames.len() < min {
            frames.resize(min, 0); // PADDING frames
        }
        datagrams.push(protect_client_initial(
            &spec.dcid, &spec.scid, i as u32, &frames,
        )?);
    }
    if spec.reverse {
        datagrams.reverse();
    }
    Ok(QuicInitials {
        client_hello,
        datagrams,
    })
}

/// The datagrams as Ethernet frames from `client` to `server` (UDP, IPv4 or IPv6 by the
/// addresses; correct IPv4 and UDP checksums), 100 µs apart from `start_ts_us`.
pub fn udp_frames(
    datagrams: &[Vec<u8>],
    client: SocketAddr,
    server: SocketAddr,
    vlan: Option<u16>,
    start_ts_us: u64,
) -> Vec<(u64, Vec<u8>)> {
    let v6 = client.is_ipv6() || server.is_ipv6();
    datagrams
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let l4 = udp(client.port(), server.port(), d);
            let f = ip_frame(
                v6,
                vlan,
                MAC_CLIENT,
                MAC_SERVER,
                client.ip(),
                server.ip(),
                17,
                l4,
                Some(6),
                i as u16,
            );
            (start_ts_us + 100 * i as u64, f)
        })
        .collect()
}
