//! `d4 export` to each plain sink against a real receiver on loopback: stdout (with the
//! three `--newline` policies), TCP, UDP (an oversize entry counted, not sent), Unix
//! stream and datagram sockets (detected and forced), and a Redis-backed store. Every
//! entry arrives in order and the queue is drained.

use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener};

use super::export_util::*;

#[test]
fn stdout_with_each_newline_policy() {
    // entries with no line end, a closing LF, a closing CRLF, inner LF and CR, JSON
    let entries: Vec<&[u8]> = vec![
        b"plain line",
        b"closed by lf\n",
        b"closed by crlf\r\n",
        b"two\nlines",
        b"cr\rinside\n",
        br#"{"k":"v\"q\\"}"#,
    ];
    let expect: [(&str, &[u8]); 3] = [
        (
            "escape",
            b"plain line\nclosed by lf\nclosed by crlf\ntwo\\nlines\ncr\\rinside\n{\"k\":\"v\\\"q\\\\\"}\n",
        ),
        (
            "strip",
            b"plain line\nclosed by lf\nclosed by crlf\ntwo lines\ncr inside\n{\"k\":\"v\\\"q\\\\\"}\n",
        ),
        (
            "keep",
            b"plain line\nclosed by lf\nclosed by crlf\r\ntwo\nlines\ncr\rinside\n{\"k\":\"v\\\"q\\\\\"}\n",
        ),
    ];
    for (policy, want) in expect {
        let (dir, queue) = queue_with(entries.iter().map(|e| e.to_vec()).collect());
        let mut c = export(
            dir.path(),
            queue,
            "stdout",
            &["--until-empty", "--newline", policy],
        );
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(want),
            "--newline {policy}"
        );
        assert_eq!(queue_len(dir.path(), queue), 0);
    }
}

#[test]
fn tcp_every_entry_in_order() {
    const N: usize = 3000;
    let (dir, queue) = queue_of(N);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = format!("tcp://{}", l.local_addr().unwrap());
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        read_lines(s, &g, None);
    });
    let (out, _) = run_ok(export(dir.path(), queue, &to, &["--until-empty"]), 60);
    got.wait_distinct(N, 10);
    assert_eq!(check_delivery(&got.snapshot(), N, 0), 0);
    let s = summary(&out);
    assert_eq!(s["entries"], N as u64, "{s}");
    assert_eq!(s["batches"], N.div_ceil(100) as u64, "{s}");
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn udp_one_datagram_per_entry_oversize_counted() {
    const N: usize = 200;
    let mut entries: Vec<Vec<u8>> = (0..N).map(|i| entry(i).into_bytes()).collect();
    // one entry too large for a UDP datagram over IPv4 (65,507 bytes at most)
    entries.insert(100, vec![b'x'; 70_000]);
    let (dir, queue) = queue_with(entries);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&sock)
        .set_recv_buffer_size(4 << 20)
        .unwrap();
    let to = format!("udp://{}", sock.local_addr().unwrap());
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let c = g.open();
        let mut buf = vec![0u8; 70_000];
        while let Ok(n) = sock.recv(&mut buf) {
            g.push(c, String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    // paced so that the receiver keeps up (UDP drops what a full buffer cannot take)
    let (out, _) = run_ok(
        export(dir.path(), queue, &to, &["--until-empty", "--rate", "2000"]),
        60,
    );
    got.wait_distinct(N, 10);
    let conns = got.snapshot();
    assert!(
        conns[0].iter().all(|d| !d.ends_with('\n')),
        "a datagram is the entry alone"
    );
    assert_eq!(check_delivery(&conns, N, 0), 0);
    let s = summary(&out);
    assert_eq!(s["oversize"], 1, "{s}");
    assert_eq!(s["entries"], (N + 1) as u64, "{s}");
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn unix_stream_detected() {
    const N: usize = 500;
    let (dir, queue) = queue_of(N);
    let path = dir.path().join("recv.sock");
    let l = UnixListener::bind(&path).unwrap();
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        read_lines(s, &g, None);
    });
    let to = format!("unix://{}", path.display());
    run_ok(export(dir.path(), queue, &to, &["--until-empty"]), 60);
    got.wait_distinct(N, 10);
    assert_eq!(check_delivery(&got.snapshot(), N, 0), 0);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

fn unix_datagrams(query: &str) {
    const N: usize = 500;
    let (dir, queue) = queue_of(N);
    let path = dir.path().join("recv.dgram");
    let sock = UnixDatagram::bind(&path).unwrap();
    let got = Got::default();
    let g = got.clone();
    std::thread::spawn(move || {
        let c = g.open();
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = sock.recv(&mut buf) {
            g.push(c, String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let to = format!("unix://{}{query}", path.display());
    run_ok(export(dir.path(), queue, &to, &["--until-empty"]), 60);
    got.wait_distinct(N, 10);
    assert_eq!(check_delivery(&got.snapshot(), N, 0), 0);
    assert_eq!(queue_len(dir.path(), queue), 0);
}

#[test]
fn unix_datagram_detected() {
    unix_datagrams("");
}

#[test]
fn unix_datagram_forced() {
    unix_datagrams("?type=dgram");
}

/// The collector's store in Redis (`d4 server --redis`): the queue is reached with
/// `--redis`, as `d4 pibs --queue` does.
#[test]
fn stdout_from_a_redis_store() {
    let redis = d4_testkit::RedisServer::start();
    let url = redis.url_db(0);
    let dir = tempfile::tempdir().unwrap();
    let queue = uuid::Uuid::new_v4();
    let config = d4_store::StoreConfig {
        redis_url: Some(url.clone()),
        ..d4_store::StoreConfig::new(dir.path())
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = d4_store::open(&config).await.unwrap();
        store
            .create_queue(
                d4_store::QueueConfig {
                    uuid: queue,
                    kind: d4_store::QueueKind::Type(3),
                    description: "export on redis".into(),
                    max_size: 1000,
                    sensors: None,
                    groups: Vec::new(),
                },
                1,
            )
            .await
            .unwrap();
        let es = (0..250)
            .map(|i| d4_store::QueueEntry::new(entry(i)))
            .collect();
        store.push_entries(vec![queue], es, 2).await.unwrap();
    });
    let mut c = export(
        dir.path(),
        queue,
        "stdout",
        &["--redis", &url, "--until-empty", "--pop-max", "40"],
    );
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: String = (0..250).map(|i| entry(i) + "\n").collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    rt.block_on(async {
        let store = d4_store::open(&config).await.unwrap();
        assert_eq!(store.queue_len(queue).await.unwrap(), 0);
    });
}

#[test]
fn bad_flags_are_named() {
    let (dir, queue) = queue_of(1);
    let out = export(dir.path(), queue, "tls://127.0.0.1:1", &["--until-empty"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca"), "{err}");
    let out = export(dir.path(), queue, "tcp://127.0.0.1:1", &["--ca", "/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tls://"));
    let out = export(dir.path(), queue, "http://x:1", &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown sink scheme"));
    let other = uuid::Uuid::new_v4();
    let out = export(dir.path(), other, "stdout", &["--until-empty"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no analyzer queue"));
    // nothing was taken
    assert_eq!(queue_len(dir.path(), queue), 1);
}
