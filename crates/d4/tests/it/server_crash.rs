//! Crash test: the real `d4 client` (file source, spool, TLS) streams numbered lines
//! (type 3) to the real `d4 server`, which dies twice in the middle of the stream:
//!
//! 1. by the test-only hook `D4_TEST_CRASH_AFTER_PUSH` (abort right after a queue push
//!    was committed and before the journal acknowledgement: the window where a replay
//!    would push a frame twice), then
//! 2. by `kill -9` 2.5 s after the restart (during the replay of the first run's
//!    journal, or while the client streams again).
//!
//! Before each restart the test reads the session journals on disk: every frame in them
//! was accepted by the server (journaled = acknowledged; D4 v1 has no application-level
//! acknowledgement the sensor could see). After the restarts the client must complete
//! (exit 0) and then: every journaled line is in the files and in the queue, no line
//! appears twice in either (zero tolerance), lines are in order, no line is torn, and
//! files and queue agree. Data the client wrote to the socket that the server had not
//! journaled yet is lost with the process (kernel socket buffers): the only lines allowed
//! missing form one run right after the last journaled line of each crash, and everything
//! after it (what the client sent after the restart) must be there.
//!
//! Lines are 21 to 140 bytes and the client's frames 4 KiB reads, so frames split lines:
//! the partial line a worker holds in memory at a crash is replayed whole. A line cut by
//! lost socket data is kept as its two pieces (at most two per crash).

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::server::*;
use d4_store::QueueKind;
use uuid::Uuid;

const N: usize = 40_000;

fn pad(i: usize) -> usize {
    (i * 37) % 120
}

/// Line `i`: 21 to 140 bytes, so that the client's 4 KiB frames split lines.
fn line(i: usize) -> String {
    format!("L{i:08} {} E{i:08}\n", "x".repeat(pad(i)))
}

/// The number of a whole line, `None` for a piece of one.
fn parse(l: &str) -> Option<usize> {
    let a: usize = l.get(1..9)?.parse().ok()?;
    let b: usize = l.get(l.len().checked_sub(8)?..)?.parse().ok()?;
    (a == b && l.len() == 20 + pad(a) && *l == line(a)[..l.len()]).then_some(a)
}

/// Whole lines in the session journals under `<data>/journal` (the payloads of each
/// journal in order; a piece at either end is not counted).
fn journaled(data: &Path) -> HashSet<usize> {
    let mut out = HashSet::new();
    for p in files(&data.join("journal")) {
        if !p.to_string_lossy().ends_with(".jnl") {
            continue;
        }
        let mut input = bytes::Bytes::from(std::fs::read(&p).unwrap());
        let mut dec = d4_proto::Decoder::with_max_payload(u32::MAX);
        let mut text = Vec::new();
        while let Ok(Some(f)) = dec.decode(&mut input) {
            text.extend_from_slice(&f.payload);
        }
        let text = String::from_utf8_lossy(&text);
        let mut pieces: Vec<&str> = text.split('\n').collect();
        pieces.pop(); // after the last newline
        out.extend(pieces.into_iter().filter_map(parse));
    }
    out
}

fn start(data: &Path, tls: &str, plain: &str, envs: &[(&str, &str)]) -> ServerProc {
    ServerProc::start_at(
        data,
        tls,
        plain,
        &["--mode", "shared-secret", "--allow-reference-key"],
        envs,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_journaled_and_duplicates_nothing() {
    let t0 = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let input = tmp.path().join("input.txt");
    // The input grows while the client follows it (about 300 KB/s), so that the client
    // is still streaming across the crashes and must reconnect.
    std::fs::write(&input, b"").unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&input)
                .unwrap();
            let text: String = (0..N).map(line).collect();
            // 997-byte writes: the client's reads end inside lines
            for chunk in text.as_bytes().chunks(997) {
                f.write_all(chunk).unwrap();
                std::thread::sleep(Duration::from_millis(3));
            }
        })
    };
    let tls = format!("127.0.0.1:{}", d4_testkit::free_port());
    let plain = format!("127.0.0.1:{}", d4_testkit::free_port());

    // Run 1: dies right after its 100th queue push commit, before the journal ack.
    let srv = start(&data, &tls, &plain, &[("D4_TEST_CRASH_AFTER_PUSH", "100")]);
    let store = srv.store().await;
    let q = create_queue(&store, QueueKind::Type(3), "crash", 1_000_000).await;
    drop(store);
    let u = Uuid::new_v4();
    let mut client = Command::new(env!("CARGO_BIN_EXE_d4"));
    client
        .args(["client", "--uuid", &u.to_string(), "--type", "3"])
        .arg("--key")
        .arg(std::str::from_utf8(KEY).unwrap())
        .arg("--source")
        .arg(&input)
        .args(["--destination", &tls, "--insecure", "--snaplen", "4096"])
        .args(["--follow", "--poll-ms", "20"])
        .arg("--spool-dir")
        .arg(tmp.path().join("spool"))
        .args(["--backoff-max", "1", "--connect-timeout", "2"])
        .args(["--drain-timeout", "600"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(tmp.path().join("client.log")).unwrap());
    let mut client = client.spawn().unwrap();
    let st = srv.wait_died(60);
    assert!(!st.success(), "the hook must abort the server: {st:?}");
    let j1 = journaled(&data);
    let max1 = j1.iter().copied().max().expect("frames were journaled");
    eprintln!("crash 1 (hook): {} lines journaled, up to {max1}", j1.len());

    // Run 2: kill -9 a few seconds after the start: during the replay of run 1's journal
    // (a commit per frame, slow in debug builds) or, if that was done, while the client
    // streams again.
    let mut run2 = Command::new(env!("CARGO_BIN_EXE_d4"));
    run2.arg("server")
        .arg("--data-dir")
        .arg(&data)
        .args([
            "--listen",
            &tls,
            "--plain-listen",
            &plain,
            "--mode",
            "shared-secret",
            "--allow-reference-key",
        ])
        .args(["--web-listen", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut run2 = run2.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    run2.kill().unwrap();
    run2.wait().unwrap();
    let j2 = journaled(&data);
    let max2 = j2.iter().copied().max().unwrap_or(max1);
    eprintln!(
        "crash 2 (kill -9): {} lines journaled, up to {max2}",
        j2.len()
    );

    // Run 3: replays; the client completes (SIGTERM once everything arrived: a followed
    // file has no end).
    let srv = start(&data, &tls, &plain, &[]);
    let store = srv.store().await;
    writer.join().unwrap();
    let end = wait_for(120, || {
        let store = store.clone();
        let q = q.uuid;
        async move {
            let s = store.queue_sample(q, 1).await.ok()?;
            (s.first().and_then(|e| parse(&e.text())) == Some(N - 1)).then_some(())
        }
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &client.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = client.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = client.kill();
            let _ = client.wait();
            panic!("the client did not complete");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        end.is_some() && status.success(),
        "client: {status:?}, last line queued: {end:?}, log:\n{}",
        std::fs::read_to_string(tmp.path().join("client.log")).unwrap_or_default()
    );
    // everything the client delivered is handled once the last line is queued
    let mut entries: Vec<usize> = Vec::new();
    let mut queue_pieces: Vec<String> = Vec::new();
    let t = Instant::now();
    let mut got_last = None;
    while t.elapsed() < Duration::from_secs(60) {
        let batch = store.pop_entries(q.uuid, 100_000).await.unwrap();
        for x in &batch {
            let l = x.text();
            match parse(&l) {
                Some(i) => entries.push(i),
                None => queue_pieces.push(l.into_owned()),
            }
        }
        if entries.last() == Some(&(N - 1)) {
            got_last = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        got_last.is_some(),
        "the last line never reached the queue ({} entries, last {:?}); client log:\n{}",
        entries.len(),
        entries.last(),
        std::fs::read_to_string(tmp.path().join("client.log")).unwrap_or_default()
    );
    drop(store);
    assert_eq!(srv.stop(), Some(0));

    // Queue: strictly increasing (in order, none twice).
    for w in entries.windows(2) {
        assert!(w[0] < w[1], "queue: {} then {}", w[0], w[1]);
    }
    // Files: in order within each file, none twice overall; pieces of lines only where
    // data was lost (see below).
    let root = data.join(u.simple().to_string()).join("3");
    let mut on_disk = Vec::new();
    let mut file_pieces = Vec::new();
    // The whole line after each empty line of a file.
    let mut after_empty = Vec::new();
    for p in files(&root) {
        let c = content(&p).unwrap();
        let mut nums = Vec::new();
        let mut empty_open = false;
        for l in String::from_utf8_lossy(&c).lines() {
            match parse(l) {
                Some(i) => {
                    if std::mem::take(&mut empty_open) {
                        after_empty.push(i);
                    }
                    nums.push(i)
                }
                None => {
                    empty_open = l.is_empty();
                    file_pieces.push(l.to_string())
                }
            }
        }
        for w in nums.windows(2) {
            assert!(w[0] < w[1], "{}: {} then {}", p.display(), w[0], w[1]);
        }
        on_disk.extend(nums);
    }
    let disk: HashSet<usize> = on_disk.iter().copied().collect();
    assert_eq!(disk.len(), on_disk.len(), "a line is twice in the files");
    let queued: HashSet<usize> = entries.iter().copied().collect();
    assert_eq!(disk, queued, "files and queue disagree");
    // A line cut by the loss of socket data at a crash shows up as its head (the end of
    // the replayed session) and its tail (the start of the next): at most 2 per crash.
    // The tail piece is empty when the lost bytes end right before a `\n`: the file then
    // holds an empty line, which the worker does not queue (empty lines never are).
    queue_pieces.sort();
    file_pieces.sort();
    let file_nonempty: Vec<&String> = file_pieces.iter().filter(|p| !p.is_empty()).collect();
    let queue_refs: Vec<&String> = queue_pieces.iter().collect();
    assert_eq!(
        queue_refs, file_nonempty,
        "files and queue disagree on pieces"
    );
    assert!(
        file_pieces.iter().filter(|p| p.is_empty()).count() <= 2,
        "empty lines in the files: {file_pieces:?}"
    );
    assert!(file_pieces.len() <= 4, "pieces of lines: {file_pieces:?}");
    // Every journaled line arrived.
    for (k, j) in [(1, &j1), (2, &j2)] {
        let lost: Vec<_> = j.iter().filter(|i| !disk.contains(i)).collect();
        assert!(lost.is_empty(), "crash {k}: journaled lines lost: {lost:?}");
    }
    // Missing lines: only right after a crash's last journaled line (unjournaled socket
    // data), and everything sent after the restart arrived.
    let missing: Vec<usize> = (0..N).filter(|i| !disk.contains(i)).collect();
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for &m in &missing {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == m => *end = m,
            _ => runs.push((m, m)),
        }
    }
    // (When the journal ended right before a line's `\n`, that line is not counted as
    // journaled but its replayed head is the whole line, so the run starts one later.)
    for (a, b) in &runs {
        let after = |m: usize| *a == m + 1 || (*a == m + 2 && disk.contains(&(m + 1)));
        assert!(
            after(max1) || after(max2),
            "lines {a}..={b} missing, not right after a crash (journaled up to {max1}, {max2})"
        );
    }
    // An empty line is the (empty) tail of a line cut by a loss: the next line follows a
    // missing run, or the last line journaled before a crash or the one after it (when the
    // loss was just the `\n` of that line, its head is a whole line without its end).
    for n in &after_empty {
        let prev = n.saturating_sub(1);
        let ok = !disk.contains(&prev) || [max1, max2].iter().any(|m| prev == *m || prev == m + 1);
        assert!(
            ok,
            "an empty line before line {n} is not at the edge of a loss ({runs:?})"
        );
    }
    // Each piece is the head of the first line or the tail of the last line of a run.
    for p in &file_pieces {
        let ok = runs.iter().any(|&(a, b)| {
            let (first, last) = (line(a), line(b));
            first.trim_end().starts_with(p.as_str()) || last.trim_end().ends_with(p.as_str())
        });
        assert!(ok, "piece {p:?} is not at the edge of a loss ({runs:?})");
    }
    eprintln!(
        "{} lines delivered once, {} lost in socket buffers at the crashes ({runs:?}), \
         pieces of cut lines {:?} (empty ones before {after_empty:?}), {:.1} s",
        disk.len(),
        missing.len(),
        file_pieces,
        t0.elapsed().as_secs_f64()
    );
}

/// A journal altered on disk after a crash (here a frame's payload zeroed: how a batch
/// that reached the disk only in part reads back after a power loss) is replayed up to
/// the altered frame and no further: the frames before it are delivered once, the
/// altered one and those after it never, the journal is kept under
/// `<data>/journal/unverified/`, the log says why, and the server runs on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journaled_frame_that_fails_its_hmac_is_not_replayed() {
    use tokio::io::AsyncWriteExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let any = "127.0.0.1:0";
    // Run 1 aborts right after its third queue push, before acknowledging it.
    let srv = start(&data, any, any, &[("D4_TEST_CRASH_AFTER_PUSH", "3")]);
    let store = srv.store().await;
    let q = create_queue(&store, QueueKind::Type(3), "replay check", 1000).await;
    drop(store);
    let u = Uuid::new_v4();
    let enc = d4_proto::Encoder::new(u, KEY, 3);
    let mut wire = Vec::new();
    for i in 0..20u64 {
        wire.extend(enc.encode(i, format!("line {i:02}\n").as_bytes()).unwrap());
    }
    let mut s = tokio::net::TcpStream::connect(srv.plain).await.unwrap();
    let _ = s.write_all(&wire).await; // the server may be gone before the end
    let st = srv.wait_died(60);
    assert!(!st.success(), "the hook must abort the server: {st:?}");
    drop(s);

    // The session's journal: zero the payload of its second-to-last frame.
    let jnl: Vec<_> = files(&data.join("journal"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".jnl"))
        .collect();
    assert_eq!(jnl.len(), 1, "one session journal: {jnl:?}");
    let mut raw = std::fs::read(&jnl[0]).unwrap();
    let mut ends = Vec::new();
    {
        let mut input = bytes::Bytes::from(raw.clone());
        let mut dec = d4_proto::Decoder::new();
        while let Ok(Some(_)) = dec.decode(&mut input) {
            ends.push(dec.bytes_consumed() as usize);
        }
    }
    assert!(
        ends.len() >= 6,
        "the frames were journaled before the abort: {ends:?}"
    );
    let bad = ends.len() - 2;
    raw[ends[bad - 1] + d4_proto::HEADER_LEN..ends[bad]].fill(0);
    std::fs::write(&jnl[0], &raw).unwrap();

    // Run 2 replays what was not acknowledged, up to the altered frame.
    let srv = start(&data, any, any, &[]);
    let log = srv.log_text();
    assert!(log.contains("failed its HMAC check"), "{log}");
    let kept = files(&data.join("journal").join("unverified"));
    assert!(
        kept.iter().any(|p| p.to_string_lossy().ends_with(".jnl")),
        "journal kept aside: {kept:?}"
    );
    assert!(
        files(&data.join("journal"))
            .iter()
            .all(|p| p.starts_with(data.join("journal").join("unverified"))),
        "nothing left to replay at the next start"
    );
    let want: Vec<String> = (0..bad).map(|i| format!("line {i:02}")).collect();
    let store = srv.store().await;
    let got: Vec<String> = store
        .queue_sample(q.uuid, 100)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|e| e.text().into_owned())
        .collect();
    assert_eq!(got, want, "each frame before the altered one pushed once");
    drop(store);
    assert_eq!(srv.stop(), Some(0));
    // every later start reminds the operator of the kept journal
    let srv = start(&data, any, any, &[]);
    assert!(
        srv.log_text().contains("are kept here, not replayed"),
        "{}",
        srv.log_text()
    );
    assert_eq!(srv.stop(), Some(0));
    let disk = String::from_utf8(sensor_bytes(&data, u, 3)).unwrap();
    let disk: Vec<&str> = disk.lines().collect();
    assert_eq!(disk, want, "each frame before the altered one written once");
}
