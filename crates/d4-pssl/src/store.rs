//! The passive SSL store: the [`PsslStore`] trait every backend implements (embedded redb
//! in [`crate::embedded`], PostgreSQL elsewhere) and the values its queries answer with.
//!
//! Paging: every list answer takes a [`Page`] and returns a [`Paged`] whose `next` is an
//! opaque cursor (lowercase hex of the backend's position: for the embedded store, the last
//! key read). Items come in the backend's key order, and a cursor resumes strictly after
//! its item, so a walk sees every item present for the whole walk exactly once, even when
//! ingest goes on in between.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{Batch, Certificate, PublicKey, Session};

/// A store error.
#[derive(Debug, thiserror::Error)]
pub enum PsslError {
    #[error("the passive SSL database {path} is already open in another process")]
    Locked { path: String },
    #[error("{path} was written with another layout of the passive SSL store (found {found}, want {want})")]
    Layout { path: String, found: u64, want: u64 },
    #[error("database error: {0}")]
    Db(String),
    #[error("invalid {what}: {value:?}")]
    Invalid { what: &'static str, value: String },
    #[error("bad paging cursor")]
    Cursor,
    #[error("the query reads more than {0} stored entries: narrow it")]
    TooManyExamined(usize),
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
    /// A record file named by a queue entry could not be read for a reason that may pass
    /// (permissions, I/O, too many open files): the entry must not be acknowledged.
    #[error("cannot read record file {path}: {message}")]
    Io { path: String, message: String },
}

/// What one commit changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CommitStats {
    pub new_certificates: u64,
    pub new_keys: u64,
    pub new_sessions: u64,
    /// Sessions of the batch the store held already.
    pub known_sessions: u64,
}

/// One page of a list answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// Where the previous page ended (`Paged::next`), `None` for the first page.
    pub cursor: Option<String>,
    /// Items per page (0 is read as 1).
    pub limit: usize,
}

impl Page {
    pub fn first(limit: usize) -> Page {
        Page {
            cursor: None,
            limit,
        }
    }
    pub fn after(cursor: String, limit: usize) -> Page {
        Page {
            cursor: Some(cursor),
            limit,
        }
    }
}

/// Items and the cursor of the next page (`None`: this was the last page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

/// A value with the time it was first and last seen (Unix seconds) and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen<T> {
    pub value: T,
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

/// An address (with the port, for server links) seen with a certificate or fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpSeen {
    pub ip: IpAddr,
    /// The server port for certificate links; `None` for fingerprint links.
    pub port: Option<u16>,
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

/// A server address and the certificates it presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpCerts {
    pub ip: IpAddr,
    /// SHA-1s, each over all its ports, in SHA-1 order.
    pub certificates: Vec<Seen<String>>,
    /// Ports the certificates were seen on, ascending.
    pub ports: Vec<u16>,
}

/// A certificate with what the store knows about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertView {
    pub certificate: Certificate,
    pub key: Option<PublicKey>,
    /// First and last session time that carried it (`None` when only read from files).
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    /// Sessions that carried it.
    pub hits: u64,
    /// Positions in the chain it was sent at (0: leaf), ascending.
    pub chain_positions: Vec<u32>,
}

/// A fingerprint whose client (JA3, JA4) or server (JA3S) addresses are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fingerprint {
    Ja3(String),
    Ja3s(String),
    Ja4(String),
}

/// Which sessions to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionQuery {
    Ja3(String),
    Ja3s(String),
    Ja4(String),
    Sni(String),
    /// Sessions with this client or server address.
    Ip(IpAddr),
}

/// Counters for `/info`: distinct values stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Info {
    pub certificates: u64,
    pub keys: u64,
    pub sessions: u64,
    /// Server addresses that presented a certificate.
    pub ips: u64,
    pub ja3: u64,
    pub ja3s: u64,
    pub ja4: u64,
    pub sni: u64,
    /// (server IP, port, certificate) links.
    pub ip_certificate_links: u64,
}

/// How a weak key was found.
pub const HOW_CHECK: &str = "check";
/// Found by the batch GCD over the store's RSA moduli.
pub const HOW_BATCH_GCD: &str = "batch_gcd";

/// One weak-key finding on a stored public key (`d4_keys` check names, badkeys' meaning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeakKey {
    /// SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex.
    pub spki_sha256: String,
    /// The check (`fermat`, `roca`, `sharedprimes`...).
    pub check: String,
    /// The check's subtest, `None` when it has none.
    pub subtest: Option<String>,
    /// [`HOW_CHECK`] (per-key check at ingest) or [`HOW_BATCH_GCD`].
    pub how: String,
    /// Recovered prime factor and cofactor, lowercase hex.
    pub p: Option<String>,
    pub q: Option<String>,
    /// Recovered private exponent, lowercase hex.
    pub d: Option<String>,
    /// Other keys (SPKI SHA-256) sharing a prime with this one.
    pub partners: Vec<String>,
    /// When it was first found (Unix seconds).
    pub found: i64,
}

/// A passive SSL store backend.
pub trait PsslStore: Send + Sync {
    /// Idempotent: certificates by SHA-1 and keys by SPKI SHA-256 are stored once (DER kept
    /// once); a session is identified by a hash of its content ([`Session::id`]), so
    /// ingesting the same record twice changes nothing. Link first/last seen and counts
    /// grow only with new sessions. One durable transaction.
    fn commit(&self, batch: &Batch) -> Result<CommitStats, PsslError>;
    /// A certificate by SHA-1 or SHA-256 (hex, any case).
    fn certificate(&self, sha1_or_sha256: &str) -> Result<Option<CertView>, PsslError>;
    /// The (server address, port) pairs that presented a certificate, by address (IPv4
    /// before IPv6, as IPv4-mapped addresses sort) then port.
    fn certificate_ips(&self, sha1: &str, page: &Page) -> Result<Paged<IpSeen>, PsslError>;
    /// The server addresses inside a network and their certificates, in address order.
    fn ip_certificates(&self, net: ipnet::IpNet, page: &Page) -> Result<Paged<IpCerts>, PsslError>;
    /// The client (JA3, JA4) or server (JA3S) addresses seen with a fingerprint, by
    /// address (IPv4 first).
    fn fingerprint_ips(&self, fp: &Fingerprint, page: &Page) -> Result<Paged<IpSeen>, PsslError>;
    /// Sessions, oldest first (ties in a stable order).
    fn sessions(&self, by: &SessionQuery, page: &Page) -> Result<Paged<Session>, PsslError>;
    /// Sessions whose time is in `[from, until)` (Unix seconds): what was seen in a period
    /// (`d4 misp feed`). In the backend's order (embedded: by session id, a walk of every
    /// session, bounded like subject search and failing with
    /// [`PsslError::TooManyExamined`]; PostgreSQL: oldest first).
    fn sessions_between(
        &self,
        from: i64,
        until: i64,
        page: &Page,
    ) -> Result<Paged<Session>, PsslError>;
    /// Leaf certificates (SHA-1) seen with a server name (ASCII case-insensitive), by SHA-1.
    fn sni_certificates(&self, sni: &str, page: &Page) -> Result<Paged<Seen<String>>, PsslError>;
    /// Certificates (SHA-1) whose subject contains `text` (ASCII case-insensitive), in a
    /// stable order of the backend's choosing; may fail with [`PsslError::TooManyExamined`].
    fn subject_search(&self, text: &str, page: &Page) -> Result<Paged<String>, PsslError>;
    /// Certificates (SHA-1) holding a public key, by SHA-1.
    fn key_certificates(&self, spki_sha256: &str, page: &Page) -> Result<Paged<String>, PsslError>;
    fn info(&self) -> Result<Info, PsslError>;
    /// Records weak-key findings. Idempotent: a finding is identified by (SPKI, check,
    /// subtest, how); one recorded before keeps its values and first found time, and gains
    /// the partners (sorted, once each) and the factors it did not have.
    fn record_weak(&self, findings: &[WeakKey]) -> Result<(), PsslError>;
    /// Every finding, by SPKI SHA-256 (then check, subtest, how).
    fn weak_keys(&self, page: &Page) -> Result<Paged<WeakKey>, PsslError>;
    /// The findings on one key (SPKI SHA-256, hex any case), empty when it is clean.
    fn key_weakness(&self, spki_sha256: &str) -> Result<Vec<WeakKey>, PsslError>;
    /// The stored RSA keys as (SPKI SHA-256, modulus in decimal), by SPKI SHA-256.
    fn rsa_moduli(&self, page: &Page) -> Result<Paged<(String, String)>, PsslError>;
}

/// Lowercase hex of exactly `bytes` bytes, or [`PsslError::Invalid`].
pub fn parse_hex<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N], PsslError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s.trim(), &mut out).map_err(|_| PsslError::Invalid {
        what,
        value: s.to_string(),
    })?;
    Ok(out)
}
