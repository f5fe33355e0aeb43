//! `d4 client` sources beyond stdin/file: folder (base64, JSON, daily), Redis list; and the
//! C client compatibility check on the `c_client_stdin.d4` vector.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::client::*;
use base64::Engine;
use bytes::Bytes;
use d4_proto::Decoder;

fn b64(b: &[u8]) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .encode(b)
        .into_bytes()
}

fn folder_client(srv: &TestServer, dir: &std::path::Path, extra: &[&str]) -> std::process::Child {
    let mut c = client(srv, &dir.join("spool"));
    c.args(["--type", "3", "--source", "folder", "--folder"])
        .arg(dir.join("watched"))
        .args(extra)
        .stdin(Stdio::null());
    c.spawn().unwrap()
}

#[test]
fn folder_base64_recursive() {
    let srv = TestServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("watched");
    std::fs::create_dir(&w).unwrap();
    let mut child = folder_client(&srv, dir.path(), &[]);
    std::thread::sleep(Duration::from_millis(800)); // the watch is set up
    let f1 = data(10_000, 11);
    std::fs::write(w.join("a.bin"), &f1).unwrap();
    let mut expected = [b64(&f1), b"\n".to_vec()].concat();
    let n = expected.len();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= n));
    // a sub-folder created later is watched too; a file moved in counts as new
    std::fs::create_dir(w.join("sub")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let f2 = data(3000, 12);
    let tmp = dir.path().join("f2.tmp");
    std::fs::write(&tmp, &f2).unwrap();
    std::fs::rename(&tmp, w.join("sub/b.bin")).unwrap();
    expected.extend_from_slice(&b64(&f2));
    expected.push(b'\n');
    let n = expected.len();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= n));
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.bad_hmac, 0);
    assert_eq!(seen.data(), expected);
    // one frame sequence per file, then a frame holding just the newline
    let frames = seen.frames();
    assert!(frames.iter().filter(|f| &f.payload[..] == b"\n").count() == 2);
    assert!(frames.iter().all(|f| f.payload.len() <= 4096));
}

#[test]
fn folder_json_daily() {
    let srv = TestServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("watched");
    std::fs::create_dir(&w).unwrap();
    let mut child = folder_client(&srv, dir.path(), &["--json", "--daily"]);
    // the client creates today's YYYYMMDD folder
    let deadline = Instant::now() + Duration::from_secs(20);
    let day = loop {
        let found = std::fs::read_dir(&w)
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                n.len() == 8 && n.bytes().all(|b| b.is_ascii_digit())
            });
        if let Some(e) = found {
            break e.path();
        }
        assert!(Instant::now() < deadline, "no daily folder created");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(800));
    std::fs::write(w.join("ignored.json"), b"{\"not\":\"daily\"}").unwrap();
    let doc = br#"{"query":"example.org","rrtype":"A","answer":"192.0.2.1"}"#;
    std::fs::write(day.join("x.json"), doc).unwrap();
    let expected = [doc.to_vec(), b"\n".to_vec()].concat();
    let n = expected.len();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= n));
    std::thread::sleep(Duration::from_millis(300));
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    assert_eq!(srv.seen.lock().unwrap().data(), expected);
}

fn redis_cmd(s: &mut TcpStream, r: &mut BufReader<TcpStream>, args: &[&[u8]]) {
    s.write_all(&d4_client::redis::encode_command(args))
        .unwrap();
    let reply = d4_client::redis::read_reply(r).unwrap();
    assert!(
        !matches!(reply, d4_client::redis::Reply::Error(_)),
        "{reply:?}"
    );
}

#[test]
fn redis_list_items_are_lines() {
    let redis = d4_testkit::RedisServer::start();
    let srv = TestServer::start(false);
    let dir = tempfile::tempdir().unwrap();
    let mut s = TcpStream::connect(redis.host_port()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    redis_cmd(&mut s, &mut r, &[b"SELECT", b"2"]);
    let long = vec![b'x'; 10_000]; // longer than snaplen: split, never truncated
    let items: Vec<Vec<u8>> = vec![b"first line".to_vec(), long, b"last".to_vec()];
    for it in &items[..2] {
        redis_cmd(&mut s, &mut r, &[b"RPUSH", b"d4q", it]);
    }
    let mut c = client(&srv, &dir.path().join("spool"));
    c.args([
        "--type",
        "3",
        "--source",
        "d4server",
        "--redis-queue",
        "d4q",
        "--redis-d4",
    ])
    .arg(format!("{}/2", redis.host_port()))
    .stdin(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    redis_cmd(&mut s, &mut r, &[b"RPUSH", b"d4q", &items[2]]);
    let mut expected = Vec::new();
    for it in &items {
        expected.extend_from_slice(it);
        expected.push(b'\n');
    }
    let n = expected.len();
    assert!(srv.wait_for(Duration::from_secs(20), |s| s.data_len() >= n));
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.bad_hmac, 0);
    assert_eq!(seen.data(), expected);
    assert!(seen.frames().iter().all(|f| f.payload.len() <= 4096));
}

#[test]
fn matches_the_c_client_on_its_sample_config() {
    let vec_bytes = d4_testkit::vector_bytes("c_client_stdin.d4");
    let manifest = d4_testkit::manifest();
    let case = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["file"] == "c_client_stdin.d4")
        .unwrap();
    let key = case["key"].as_str().unwrap();
    let uuid = case["frames"][0]["uuid"].as_str().unwrap();
    let mut dec = Decoder::new();
    let mut input = Bytes::from(vec_bytes);
    let c_frames: Vec<_> = dec.frames(&mut input).map(|f| f.unwrap()).collect();
    let payload: Vec<u8> = c_frames.iter().flat_map(|f| f.payload.to_vec()).collect();

    // the C client's sample configuration: stdin -> stdout, type 1, snaplen 4096
    let conf = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("uuid", format!("{uuid}\n")),
        ("key", format!("{key}\n")),
        ("type", "1\n".into()),
        ("version", "1\n".into()),
        ("snaplen", "4096\n".into()),
        ("source", "stdin\n".into()),
        ("destination", "stdout\n".into()),
    ] {
        std::fs::write(conf.path().join(name), value).unwrap();
    }
    // same chunking: a regular file on stdin gives full 4096-byte reads, as the C client got
    let inp = conf.path().join("input.bin");
    std::fs::write(&inp, &payload).unwrap();
    let out = d4()
        .args(["client", "-c"])
        .arg(conf.path())
        .stdin(std::fs::File::open(&inp).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut ours_in = Bytes::from(out.stdout);
    let mut dec = Decoder::new();
    let ours: Vec<_> = dec.frames(&mut ours_in).map(|f| f.unwrap()).collect();
    // the C client ends with an empty frame (its read of 0 bytes at EOF); we do not
    let c_cmp: Vec<_> = c_frames.iter().filter(|f| !f.payload.is_empty()).collect();
    assert_eq!(c_frames.last().unwrap().payload.len(), 0);
    assert_eq!(ours.len(), c_cmp.len());
    let hk = d4_proto::HmacKey::new(key.as_bytes());
    for (o, c) in ours.iter().zip(c_cmp) {
        let (ob, cb) = (o.to_bytes(), c.to_bytes());
        // header: version, type, uuid [0..18], timestamp [18..26], hmac [26..58], size [58..62]
        assert_eq!(ob[..18], cb[..18]);
        assert_eq!(ob[58..], cb[58..], "size and payload equal");
        assert!(hk.verify(o));
    }
}
