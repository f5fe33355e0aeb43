//! `d4 pssl serve` through the real binary, queried by PyPSSL from PyPI (the CIRCL client
//! MISP and Cortex use): an IP, a /24, `query_cert`, `fetch_cert` (dates parsed into
//! datetimes by the client), unknown values; with `auth_token` and with `basic_auth`; a
//! wrong token gets a JSON error. The store is filled through the library with the
//! d4-pssl suite's generated certificates; expected values come from those inputs.

use std::process::{Child, Command, Stdio};

use d4_pssl::testsuite::scenario::Scenario;
use d4_pssl::EmbeddedStore;
use serde_json::{json, Value};

const D4: &str = env!("CARGO_BIN_EXE_d4");

struct Served {
    child: Child,
    port: u16,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &std::path::Path, extra: &[&str]) -> Served {
    let (child, port) = d4_testkit::http::spawn_listening("d4 pssl serve", |port| {
        Command::new(D4)
            .args(["pssl", "--data-dir"])
            .arg(data)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    });
    Served { child, port }
}

const PY: &str = r#"
import datetime, json, sys
from pypssl import PyPSSL
url, token, user, password, sha1, unknown = sys.argv[1:7]
out = {}
for name, p in [("token", PyPSSL(url, auth_token=token)),
                ("basic", PyPSSL(url, basic_auth=(user, password)))]:
    r = {}
    r["ip"] = p.query("198.51.100.7")
    r["cidr"] = p.query("198.51.100.0/24")
    r["unknown_ip"] = p.query("192.0.2.99")
    r["cquery"] = p.query_cert(sha1)
    r["cquery_unknown"] = p.query_cert(unknown)
    f = p.fetch_cert(sha1)
    info = f["info"]
    r["datetimes"] = (isinstance(info["not_before"], datetime.datetime)
                      and isinstance(info["not_after"], datetime.datetime))
    r["not_before"] = info["not_before"].isoformat()
    r["not_after"] = info["not_after"].isoformat()
    r["cfetch"] = {k: info[k] for k in ("subject", "issuer", "keylength", "fingerprint")}
    r["pem"] = f["pem"]
    r["cfetch_unknown"] = p.fetch_cert(unknown)
    out[name] = r
out["wrong"] = PyPSSL(url, auth_token="not-the-token").query("198.51.100.7")
out["none"] = PyPSSL(url).query_cert(sha1)
print(json.dumps(out))
"#;

#[test]
fn pypssl_queries_d4_pssl_serve() {
    let py = d4_testkit::python_with("pypssl", "pypssl", "pypssl-venv");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let sc = Scenario::new();
    {
        let store = EmbeddedStore::open(&data.join("pssl.redb")).unwrap();
        store.commit(&sc.batch()).unwrap();
    }
    let c = &sc.certs;
    let s = serve(&data, &["--token", "t0k3n", "--basic", "misp:pa:ss"]);
    let url = format!("http://127.0.0.1:{}/", s.port);
    let unknown = "0123456789abcdef0123456789abcdef01234567";
    let out = Command::new(&py)
        .args(["-c", PY, &url, "t0k3n", "misp", "pa:ss", &c.a.sha1, unknown])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pypssl script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // as CIRCL's service prints names (OpenSSL's one-line form)
    let subject = |cn: &str| format!("C=LU, O=d4-rs pssl tests, CN={cn}");
    let mut at7 = vec![c.a.sha1.clone(), c.ca.sha1.clone()];
    at7.sort();
    for auth in ["token", "basic"] {
        let r = &v[auth];
        let ip = &r["ip"]["198.51.100.7"];
        assert_eq!(ip["certificates"], json!(at7), "{auth}");
        assert_eq!(
            ip["subjects"][&c.a.sha1]["values"][0],
            subject("a.example.test"),
            "{auth}"
        );
        assert_eq!(r["ip"].as_object().unwrap().len(), 1, "{auth}");
        let cidr = r["cidr"].as_object().unwrap();
        let mut keys: Vec<&str> = cidr.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, vec!["198.51.100.7", "198.51.100.9"], "{auth}");
        assert_eq!(cidr["198.51.100.9"]["certificates"], json!([c.a2.sha1]));
        assert_eq!(
            cidr["198.51.100.9"]["subjects"][&c.a2.sha1]["values"][0],
            subject("a2.example.test")
        );
        assert_eq!(r["unknown_ip"], json!({}), "{auth}");
        assert_eq!(r["cquery"]["certificate"], c.a.sha1);
        assert_eq!(r["cquery"]["seen"], json!(["198.51.100.7"]), "{auth}");
        assert_eq!(r["cquery"]["hits"], 2, "{auth}");
        assert_eq!(r["cquery_unknown"]["seen"], json!([]));
        assert_eq!(r["cquery_unknown"]["hits"], 0);
        assert_eq!(r["datetimes"], true, "{auth}");
        assert_eq!(r["not_before"], "2024-01-01T00:00:00+00:00");
        assert_eq!(r["not_after"], "2034-01-01T00:00:00+00:00");
        assert_eq!(
            r["cfetch"],
            json!({
                "subject": subject("a.example.test"),
                "issuer": subject("d4 pssl test CA"),
                "keylength": 256,
                "fingerprint": c.a.sha1.to_uppercase(),
            }),
            "{auth}"
        );
        assert_eq!(r["pem"], c.a.pem());
        assert_eq!(
            r["cfetch_unknown"],
            json!({"error": "certificate not found"})
        );
    }
    assert_eq!(v["wrong"], json!({"error": "authentication required"}));
    assert_eq!(v["none"], json!({"error": "authentication required"}));

    // SIGTERM: the server drains and exits 0.
    let mut s = s;
    let killed = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
