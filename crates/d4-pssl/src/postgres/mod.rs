//! The PostgreSQL passive SSL store ([`PostgresStore`]): the reference analyzer's tables
//! (analyzer-d4-passivessl: `public_key`, `certificate`, `"sessionRecord"`, `ja3`,
//! `fuzzy_hash` and their link tables, `reference.sql`) plus d4's own `d4_` tables for what
//! they lack (`schema.sql`: certificate DER and facts, session extras and identity), so a
//! database either program created can be read and written by both.
//!
//! * Hashes are the ASCII bytes of lowercase hex in `bytea` columns, as the reference writes
//!   them, in its tables and ours.
//! * Links (IP ⇄ certificate, fingerprint ⇄ IP, SNI ⇄ leaf) and their first seen, last seen
//!   and counts are aggregated at query time from the session rows (indexed), not kept in
//!   tables of their own: the reference analyzer writing into the same database then shows
//!   up in every answer, and a database it filled alone is read as is.
//! * A session d4 stores has a `d4_session` row keyed by its identity
//!   ([`crate::model::Session::id`]): a known session is skipped, so a commit is idempotent.
//!   Sessions the reference wrote have no such row: their JA3S, JA4, SNI and ALPN are unknown
//!   and their chain is the link table's certificates in SHA-1 order.
//! * Chain positions of d4's sessions are kept per certificate (`d4_chain_position`, a bit
//!   per position); the reference's sessions have none.
//! * The reference declares the `"sessionRecord"` addresses, ports and `hash_ja3` NOT NULL;
//!   d4 stores partial records, so opening a database drops those constraints (its analyzer
//!   always fills them). Certificate paths (NOT NULL there) are written as `''`.
//! * Text never holds U+0000 (PostgreSQL refuses it): it is written as U+FFFD.
//! * Addresses are `inet`, IPv4-mapped IPv6 addresses stored as IPv4; an IPv6 network that
//!   covers `::ffff:0:0/96` also matches those IPv4 addresses (as in the embedded store).
//! * Paging cursors are the lowercase hex of the last item's position as text (address and
//!   port, time and row id, SHA-1), resumed strictly after it.
//!
//! Threads: the `postgres` client is synchronous and runs its own small tokio runtime, so
//! it must never be called from a tokio runtime thread: async callers go through
//! `tokio::task::spawn_blocking`. One connection behind a mutex (queries are serialised);
//! commits also take a transaction-scoped advisory lock, so several writers (processes) of
//! one database do not race on the idempotency check.
//!
//! Costs: a link answer reads the sessions of its key (a certificate view counts every
//! session that carried the certificate; a CIDR page reads every session of the addresses
//! it returns); [`Info`](crate::store::Info) counts whole tables; subject search scans the
//! `certificate` table. A commit is a few statements per session (≈1,000 sessions/s on a
//! loopback server with fsync off, release build).
//!
//! The code: this module connects and creates the schema; `commit` the write side, `read`
//! the queries.

use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

use ::postgres::{Client, NoTls};

use crate::store::PsslError;

mod commit;
mod period;
mod read;
mod weak;

/// The reference analyzer's tables (TLS.md §6), created when missing.
pub const REFERENCE_SQL: &str = include_str!("reference.sql");
/// d4's own tables and indexes, created when missing.
pub const SCHEMA_SQL: &str = include_str!("schema.sql");

/// The layout of the `d4_` tables, kept in `d4_meta`.
pub const LAYOUT: u64 = 1;

/// The advisory lock key of schema creation and commits ("d4pssl").
const LOCK_KEY: i64 = 0x6434_7073_736c;

pub(crate) fn dberr(e: ::postgres::Error) -> PsslError {
    match e.as_db_error() {
        Some(db) => PsslError::Db(db.to_string()),
        None => PsslError::Db(e.to_string()),
    }
}

/// The store on a PostgreSQL database.
pub struct PostgresStore {
    url: String,
    client: Mutex<Client>,
}

/// `url` without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &url[..s], &url[at..]),
        _ => url.to_string(),
    }
}

fn connect(url: &str) -> Result<Client, PsslError> {
    Client::connect(url, NoTls).map_err(|e| {
        PsslError::Db(format!(
            "cannot connect to {}: {}",
            redact(url),
            dberr(e).to_string().trim_start_matches("database error: ")
        ))
    })
}

impl PostgresStore {
    /// Connects (a `postgres://` URL or a `key=value` connection string), creates the tables
    /// that are missing, and checks the `d4_` layout. Must not be called from a tokio
    /// runtime thread (see the module doc).
    pub fn open(url: &str) -> Result<PostgresStore, PsslError> {
        let mut client = connect(url)?;
        let mut tx = client.transaction().map_err(dberr)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .map_err(dberr)?;
        tx.batch_execute(REFERENCE_SQL).map_err(dberr)?;
        tx.batch_execute(SCHEMA_SQL).map_err(dberr)?;
        let found: Option<i64> = tx
            .query_opt("SELECT value FROM d4_meta WHERE name = 'layout'", &[])
            .map_err(dberr)?
            .map(|r| r.get(0));
        match found {
            None => {
                tx.execute(
                    "INSERT INTO d4_meta (name, value) VALUES ('layout', $1)",
                    &[&(LAYOUT as i64)],
                )
                .map_err(dberr)?;
            }
            Some(v) if v == LAYOUT as i64 => {}
            Some(v) => {
                return Err(PsslError::Layout {
                    path: redact(url),
                    found: v as u64,
                    want: LAYOUT,
                })
            }
        }
        tx.commit().map_err(dberr)?;
        Ok(PostgresStore {
            url: url.to_string(),
            client: Mutex::new(client),
        })
    }

    /// The connection, reconnected when the server closed it.
    fn client(&self) -> Result<MutexGuard<'_, Client>, PsslError> {
        let mut c = self
            .client
            .lock()
            .map_err(|_| PsslError::Db("a previous query panicked".into()))?;
        if c.is_closed() {
            *c = connect(&self.url)?;
        }
        Ok(c)
    }
}

/// The stored form of an address: IPv4-mapped IPv6 as IPv4.
pub(crate) fn canon_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Text as PostgreSQL can hold it: `text` refuses U+0000 (a certificate subject or SNI can
/// carry one), so it is stored as U+FFFD. Queries go through the same mapping.
pub(crate) fn pg_text(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// Lowercase hex of exactly `N` bytes, as the ASCII bytes the hash columns hold.
pub(crate) fn hex_key<const N: usize>(what: &'static str, s: &str) -> Result<Vec<u8>, PsslError> {
    crate::store::parse_hex::<N>(what, s)?;
    Ok(s.trim().to_ascii_lowercase().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://…@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn mapped_addresses_are_ipv4() {
        let ip: IpAddr = "::ffff:192.0.2.1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(canon_ip(ip), IpAddr::from([192, 0, 2, 1]));
        let v6: IpAddr = "2001:db8::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(canon_ip(v6), v6);
    }
}
