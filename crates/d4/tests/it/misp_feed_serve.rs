//! `d4 server --misp-feed-dir DIR --misp-feed-token-file FILE`: the feed's files served
//! read-only at `/misp/` with the feed's own token (raw, Bearer, Basic), byte-exact with
//! their content types; no listing, no other name, no path traversal, no symbolic link;
//! 401/404 as JSON; a feed directory without a token file refuses to start.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::server::*;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "misp-feed-token-7f3a";
const EVENT: &str = "5f1a9c3e-2b4d-4e6f-8a0b-1c2d3e4f5a6b";

/// One raw request line (the path sent as given, no normalization): (status, head, body).
async fn get(web: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String, Vec<u8>) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(web).await.unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        if let Some(a) = auth {
            req.push_str(&format!("Authorization: {a}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    };
    let raw = tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("request timed out");
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let status = head[9..12].parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[line_end + 2..line_end + 2 + n]);
        b = &b[line_end + 2 + n + 2..];
    }
}

fn content_type(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let low = l.to_ascii_lowercase();
            low.strip_prefix("content-type:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn json_error(status: u16, body: &[u8], want: u16) {
    assert_eq!(status, want, "{}", String::from_utf8_lossy(body));
    let v: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|_| panic!("JSON error body: {}", String::from_utf8_lossy(body)));
    assert!(v["error"].is_string(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_served_with_its_own_token_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let feed = dir.path().join("feed");
    std::fs::create_dir_all(&feed).unwrap();
    // The feed's files, with bytes a rewrite would change (no trailing newline, UTF-8).
    let manifest =
        format!("{{\"{EVENT}\": {{\"info\": \"d4 — pssl\", \"timestamp\": \"1700000000\"}}}}");
    let hashes = format!("0123456789abcdef0123456789abcdef,{EVENT}\n");
    let event: Vec<u8> =
        format!("{{\"Event\": {{\"uuid\": \"{EVENT}\", \"info\": \"é\"}}}}").into_bytes();
    std::fs::write(feed.join("manifest.json"), &manifest).unwrap();
    std::fs::write(feed.join("hashes.csv"), &hashes).unwrap();
    std::fs::write(feed.join(format!("{EVENT}.json")), &event).unwrap();
    // Things that must never be served.
    std::fs::write(feed.join("notes.txt"), "private notes").unwrap();
    std::fs::write(dir.path().join("outside.json"), "outside secret").unwrap();
    let linked = "0b0c0d0e-1111-4222-8333-444455556666";
    std::os::unix::fs::symlink(
        dir.path().join("outside.json"),
        feed.join(format!("{linked}.json")),
    )
    .unwrap();
    std::fs::create_dir(feed.join("11111111-2222-4333-8444-555555555555.json")).unwrap();
    let token_file = dir.path().join("feed-token");
    std::fs::write(&token_file, format!("# the MISP feed token\n{TOKEN}\n")).unwrap();

    let srv = ServerProc::start(
        &data,
        &[
            "--web-plain",
            "--misp-feed-dir",
            feed.to_str().unwrap(),
            "--misp-feed-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let web = web_addr(&srv.log_text(), "http");
    let bearer = format!("Bearer {TOKEN}");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("misp:{TOKEN}"))
    );

    // Byte-exact, with the token raw, as Bearer and as Basic password.
    for auth in [TOKEN, bearer.as_str(), basic.as_str()] {
        let (status, head, body) = get(web, "/misp/manifest.json", Some(auth)).await;
        assert_eq!(status, 200, "{auth}: {head}");
        assert_eq!(body, manifest.as_bytes());
        assert!(
            content_type(&head).starts_with("application/json"),
            "{head}"
        );
    }
    let (status, head, body) = get(web, "/misp/hashes.csv", Some(TOKEN)).await;
    assert_eq!((status, body.as_slice()), (200, hashes.as_bytes()));
    assert!(content_type(&head).starts_with("text/csv"), "{head}");
    let (status, head, body) = get(web, &format!("/misp/{EVENT}.json"), Some(TOKEN)).await;
    assert_eq!((status, body), (200, event));
    assert!(
        content_type(&head).starts_with("application/json"),
        "{head}"
    );

    let bad_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("misp:misp-feed-token-7f3b")
    );
    // Missing or wrong token: 401 JSON, before anything says whether a file exists.
    for auth in [
        None,
        Some("misp-feed-token-7f3"),
        Some("Bearer wrong"),
        Some(bad_basic.as_str()),
    ] {
        let (status, _, body) = get(web, "/misp/manifest.json", auth).await;
        json_error(status, &body, 401);
        assert!(!String::from_utf8_lossy(&body).contains("d4 — pssl"));
    }
    for path in ["/misp/nothing.json", "/misp/"] {
        let (status, _, body) = get(web, path, None).await;
        json_error(status, &body, 401);
    }
    // A web UI account's token is not the feed's: the admin password file's content
    // neither. (Only the feed token opens /misp/.)
    let admin_pw = std::fs::read_to_string(data.join("web-admin-password.txt")).unwrap();
    let (status, _, body) = get(web, "/misp/manifest.json", Some(admin_pw.trim())).await;
    json_error(status, &body, 401);

    // With the token: no listing, no other name, no traversal, no link, no directory.
    for path in [
        "/misp/",
        "/misp",
        "/misp/notes.txt",
        "/misp/..%2Foutside.json",
        "/misp/%2e%2e%2foutside.json",
        "/misp/%2E%2E/outside.json",
        "/misp/..%2f..%2fetc%2fpasswd",
        "/misp/%2fetc%2fpasswd",
        &format!("/misp/{linked}.json"),
        "/misp/11111111-2222-4333-8444-555555555555.json",
        &format!("/misp/{}.json", EVENT.replace('-', "")),
        "/misp/MANIFEST.JSON",
    ] {
        let (status, _, body) = get(web, path, Some(TOKEN)).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 404, "{path}: {text}");
        assert!(
            !text.contains("outside secret")
                && !text.contains("private notes")
                && !text.contains("root:")
                && !text.contains(EVENT),
            "{path}: {text}"
        );
        if path.starts_with("/misp/") && !path.contains("%2E%2E/") {
            json_error(status, &body, 404);
        }
    }
    // Raw `..` segments are not routed to the feed at all.
    for path in ["/misp/../outside.json", "/misp/../../etc/passwd"] {
        let (status, _, body) = get(web, path, Some(TOKEN)).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 404, "{path}: {text}");
        assert!(!text.contains("outside secret") && !text.contains("root:"));
    }
    // 7 wrong tokens so far; past 10 in a minute the IP gets 429, the right token too.
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(get(web, "/misp/manifest.json", Some("wrong")).await.0);
    }
    assert_eq!(
        codes,
        [401, 401, 401, 429],
        "the 11th wrong token is refused"
    );
    let (status, _, body) = get(web, "/misp/manifest.json", Some(TOKEN)).await;
    json_error(status, &body, 429);
    drop(srv);

    // A feed directory without a token file: the server refuses to start, naming the key.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_d4"))
        .args(["server", "--data-dir"])
        .arg(dir.path().join("data2"))
        .args(["--listen", "", "--plain-listen", "127.0.0.1:0"])
        .args(["--web-listen", "127.0.0.1:0", "--web-plain"])
        .arg("--misp-feed-dir")
        .arg(&feed)
        .env_remove("D4_MISP_FEED_TOKEN_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("misp_feed_token_file"), "{err}");
}
