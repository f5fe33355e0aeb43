//! The ingester's unit tests: batching, bad and long lines, idempotency, queue entries and
//! certificate bytes. Expected values come from the tests' own inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::testsuite::data::{certs, record_line, Rec};
use crate::EmbeddedStore;

const JA3: &str = "771,4865-4866,0-10-11,29-23,0";
const JA3S: &str = "771,4865,43-51";

fn store(dir: &tempfile::TempDir) -> Arc<EmbeddedStore> {
    Arc::new(EmbeddedStore::open(&dir.path().join("pssl.redb")).unwrap())
}

/// A record without certificates: one item (its session); `i` makes it distinct.
fn session_line(i: u32) -> String {
    let ts = format!("2024-03-01T10:00:{:02}Z", i % 60);
    let client = format!("10.0.0.{}", 1 + i / 60);
    record_line(&Rec {
        ts: &ts,
        client: Some((&client, 40000)),
        server: Some(("192.0.2.1", 443)),
        ja3: JA3,
        ja3s: JA3S,
        ..Rec::default()
    })
}

fn lines(n: u32) -> String {
    (0..n).map(|i| session_line(i) + "\n").collect()
}

fn ingester(store: &Arc<EmbeddedStore>, opts: IngestOptions) -> Ingester {
    Ingester::new(store.clone(), opts)
}

#[test]
fn batches_end_on_items_or_age() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let text = lines(10);
    let one_line = session_line(0).len() + 1;
    let run = |opts: IngestOptions| {
        let mut ing = ingester(&store, opts);
        // A buffer of one line: it runs dry after every line, as a slow feed does.
        let r = io::BufReader::with_capacity(one_line, text.as_bytes());
        ing.read(r).unwrap();
        let before_flush = ing.stats().commits;
        ing.flush().unwrap();
        (before_flush, ing.stats().clone())
    };
    let (c, s) = run(IngestOptions::default());
    assert_eq!(c, 0, "nothing full, nothing old");
    assert_eq!((s.commits, s.records_ok, s.new_sessions), (1, 10, 10));
    // 10 sessions, 4 per batch: full at 4 and 8, the last 2 at the flush
    let (c, s) = run(IngestOptions {
        batch_items: 4,
        ..IngestOptions::default()
    });
    assert_eq!((c, s.commits), (2, 3));
    assert_eq!((s.new_sessions, s.known_sessions), (0, 10), "stored before");
    // every batch is old as soon as the reader runs dry: one commit per line
    let (c, _) = run(IngestOptions {
        max_batch_age: Duration::ZERO,
        ..IngestOptions::default()
    });
    assert_eq!(c, 10);
}

#[test]
fn certificates_count_as_items() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let c = certs();
    // a, a2 share a key: 3 certificates, 2 keys (CA, a), 1 session = 6 items
    let line = record_line(&Rec {
        ts: "2024-03-01T10:00:00Z",
        server: Some(("192.0.2.1", 443)),
        ja3: JA3,
        chain: vec![&c.a, &c.ca],
        ..Rec::default()
    });
    let line2 = record_line(&Rec {
        ts: "2024-03-01T10:00:00Z",
        server: Some(("192.0.2.2", 443)),
        ja3: JA3,
        chain: vec![&c.a2, &c.ca],
        ..Rec::default()
    });
    let mut ing = ingester(
        &store,
        IngestOptions {
            batch_items: 6,
            ..IngestOptions::default()
        },
    );
    ing.line(line.as_bytes()).unwrap();
    assert_eq!(ing.stats().commits, 0, "2 certificates, 2 keys, 1 session");
    ing.line(line2.as_bytes()).unwrap();
    assert_eq!(ing.stats().commits, 1);
    ing.flush().unwrap();
    let s = ing.stats();
    assert_eq!((s.new_certificates, s.new_keys, s.new_sessions), (3, 2, 2));
    assert!(store.certificate(&c.a2.sha1).unwrap().is_some());
}

#[test]
fn bad_lines_are_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let mut ing = ingester(&store, IngestOptions::default());
    let bad_port = format!(
        r#"{{"JA3Digest":"{}","ServerPort":"70000"}}"#,
        "a".repeat(32)
    );
    let text = format!(
        "{}\nnot json\n\n{{}}\n{}\n[1]\n{}\n",
        session_line(1),
        bad_port,
        session_line(2)
    );
    ing.read(text.as_bytes()).unwrap();
    ing.flush().unwrap();
    let s = ing.stats();
    assert_eq!((s.records_ok, s.records_bad), (2, 4));
    let want: BTreeMap<&str, u64> = [("json", 2), ("empty", 1), ("field", 1)].into();
    assert_eq!(s.bad_by_reason, want);
    assert_eq!(s.new_sessions, 2);
}

#[test]
fn long_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let good = session_line(3);
    let mut ing = ingester(
        &store,
        IngestOptions {
            max_line: good.len(),
            ..IngestOptions::default()
        },
    );
    // the long line is a valid record too: only its length rejects it
    let long = format!("{}{}", &good[..good.len() - 1], r#","x":"y"}"#);
    let text = format!("{long}\n{good}\n{long}");
    // a small buffer: the long line arrives in many pieces
    ing.read(io::BufReader::with_capacity(16, text.as_bytes()))
        .unwrap();
    ing.flush().unwrap();
    let s = ing.stats();
    assert_eq!((s.records_ok, s.records_bad), (1, 2));
    assert_eq!(s.bad_by_reason.get("too_long"), Some(&2));
    assert_eq!(s.new_sessions, 1);
}

#[test]
fn same_input_twice_stores_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let c = certs();
    let mut text = lines(5);
    for (i, leaf) in [&c.a, &c.a2, &c.b].into_iter().enumerate() {
        let ip = format!("198.51.100.{i}");
        text.push_str(&record_line(&Rec {
            ts: "2024-03-02T00:00:00Z",
            client: Some(("10.1.1.1", 50000)),
            server: Some((&ip, 443)),
            ja3: JA3,
            sni: "a.example.test",
            chain: vec![leaf, &c.ca],
            ..Rec::default()
        }));
        text.push('\n');
    }
    let run = || {
        let mut ing = ingester(&store, IngestOptions::default());
        ing.read(text.as_bytes()).unwrap();
        ing.flush().unwrap();
        ing.stats().clone()
    };
    let first = run();
    assert_eq!(
        (first.new_certificates, first.new_keys, first.new_sessions),
        (4, 3, 8)
    );
    let info = store.info().unwrap();
    let view = store.certificate(&c.ca.sha1).unwrap().unwrap();
    assert_eq!(view.hits, 3);
    let second = run();
    assert_eq!(
        (
            second.new_certificates,
            second.new_keys,
            second.new_sessions,
            second.known_sessions
        ),
        (0, 0, 0, 8)
    );
    assert_eq!(store.info().unwrap(), info);
    assert_eq!(store.certificate(&c.ca.sha1).unwrap().unwrap(), view);
}

#[test]
fn queue_entries_are_paths_or_lines() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let mut ing = ingester(&store, IngestOptions::default());
    let file = dir.path().join("r.json");
    std::fs::write(&file, session_line(7) + "\n").unwrap();
    ing.queue_entry(file.to_str().unwrap().as_bytes()).unwrap();
    ing.queue_entry(dir.path().join("gone.json").to_str().unwrap().as_bytes())
        .unwrap();
    ing.queue_entry(session_line(8).as_bytes()).unwrap();
    ing.queue_entry(b"\xff\xfe").unwrap();
    ing.flush().unwrap();
    let s = ing.stats();
    assert_eq!((s.files_read, s.files_missing), (1, 2));
    assert_eq!((s.records_ok, s.new_sessions), (2, 2));
}

#[test]
fn certificate_bytes_pem_der_and_junk() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let c = certs();
    let mut ing = ingester(&store, IngestOptions::default());
    ing.certificate_bytes("two.pem", format!("{}{}", c.a.pem(), c.ca.pem()).as_bytes())
        .unwrap();
    ing.certificate_bytes("b.der", &c.b.der).unwrap();
    ing.certificate_bytes("a-again.der", &c.a.der).unwrap();
    ing.certificate_bytes("junk", b"\x30\x82\x00\x01junk")
        .unwrap();
    ing.flush().unwrap();
    let s = ing.stats();
    assert_eq!((s.files_read, s.certificates_read), (4, 4));
    assert_eq!(s.certificate_files_bad, 1);
    assert_eq!((s.new_certificates, s.new_keys), (3, 3));
    let v = store.certificate(&c.b.sha256).unwrap().unwrap();
    assert_eq!(v.certificate.sha1, c.b.sha1);
    assert_eq!(v.key.unwrap().spki_sha256, c.b.spki_sha256);
}

/// A paced source (stdin of a slow feed): one line, then nothing for a while
/// (`WouldBlock` every 100 ms), then the end. The batch is committed while the source is
/// quiet, not only at its end.
struct Quiet {
    line: Option<Vec<u8>>,
    quiet_calls: u32,
    store: Arc<EmbeddedStore>,
    sessions_seen_before_eof: Arc<std::sync::Mutex<Option<u64>>>,
}

impl io::Read for Quiet {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(l) = self.line.take() {
            out[..l.len()].copy_from_slice(&l);
            return Ok(l.len());
        }
        if self.quiet_calls > 0 {
            self.quiet_calls -= 1;
            std::thread::sleep(std::time::Duration::from_millis(100));
            return Err(io::ErrorKind::WouldBlock.into());
        }
        *self.sessions_seen_before_eof.lock().unwrap() = Some(self.store.info().unwrap().sessions);
        Ok(0)
    }
}

#[test]
fn a_quiet_feed_commits_its_old_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let src = Quiet {
        line: Some((session_line(1) + "\n").into_bytes()),
        quiet_calls: 10,
        store: store.clone(),
        sessions_seen_before_eof: seen.clone(),
    };
    let mut ing = ingester(
        &store,
        IngestOptions {
            max_batch_age: std::time::Duration::from_millis(300),
            ..IngestOptions::default()
        },
    );
    ing.read(io::BufReader::new(src)).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        Some(1),
        "committed during the quiet second, before the end of input"
    );
    assert_eq!(ing.stats().commits, 1);
}

#[test]
fn queue_entries_that_are_not_regular_files_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let mut ing = ingester(&store, IngestOptions::default());
    let folder = dir.path().display().to_string();
    ing.queue_entry(folder.as_bytes()).unwrap();
    ing.queue_entry(b"/nonexistent/record.json").unwrap();
    assert_eq!(ing.stats().files_missing, 2);
    assert_eq!(ing.stats().files_read, 0);
}
