//! `d4-tls`: sans-IO TLS fingerprinting for `d4 tls` (bytes in, values out: no files,
//! sockets, clocks or threads; every parser of untrusted bytes is fuzzed).
//!
//! - [`record`]: the TLS record layer and handshake-message reassembly (several messages in
//!   one record, one message across records, SSLv3 to TLS 1.3).
//! - [`hello`]: ClientHello, ServerHello and Certificate message parsing.
//! - [`fingerprint`]: JA3, JA3S, JA4 (client, `t` and `q`) and `JA4_r`.
//! - [`flow`]: one TCP connection's TLS state: who is the client, when the handshake is
//!   complete, what was learnt.
//! - [`cert`]: certificate facts (hashes, names, key, validity) with x509-parser.
//! - [`gojson`]: certificates as Go's `x509.Certificate` JSON, the reference record format.
//! - [`tlsh`]: the reference sensor's TLSH field.
//! - [`quic`]: QUIC v1 Initial packets: decryption and CRYPTO-frame reassembly.
//! - [`sensor`]: the whole pipeline over captured frames: TCP reassembly, TLS flows, QUIC
//!   Initials, one [`session::Session`] per TLS session.
//! - [`session`]: a session's JSON record (the reference's fields, then ours).

pub mod cert;
pub mod fingerprint;
pub mod flow;
pub mod gojson;
pub mod hello;
pub mod quic;
pub mod record;
pub mod sensor;
pub mod session;
pub mod tlsh;
