//! The web UI in a real headless browser: Debian's `chromium` driven through Debian's
//! `chromedriver` (WebDriver, `fantoccini`), against the real `d4 server` (registration
//! mode, plain D4 listener, plain-HTTP web listener on loopback, fresh data dir).
//!
//! Covers: first login as `admin` with the password from the data-dir file, the forced
//! password change (file removed, old password refused, new one works), an API token from
//! the account page, a pending sensor (the reference registration API, as a sensor's
//! installer does it), approving it on the registration page, creating a type-3 analyzer
//! queue restricted to a sensor group through the form, a real `d4 client` streaming known
//! lines, the sensor shown connected on the sensors page and the lines in the queue's
//! sample. Screenshots go to `<target>/screenshots/*.png`.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages `chromium` and
//! `chromium-driver`, installed by `./ci.sh`); nothing is downloaded at test time. Missing
//! binaries make the test FAIL, never skip.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::server::*;
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Bound of every single browser command (navigation, find, click...).
const STEP: Duration = Duration::from_secs(20);

/// `chromedriver` in its own process group (chromium and its helpers are its children);
/// the whole group is killed on drop, also when the test fails.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
    profile: PathBuf,
}

impl Driver {
    fn start() -> Driver {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: the browser tests need the Debian packages `chromium chromium-driver` \
                 (apt-get install -y chromium chromium-driver; ./ci.sh installs them when run as root)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).unwrap();
        let log = dir.path().join("chromedriver.log");
        let port = d4_testkit::free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().expect("spawning chromedriver");
        let mut d = Driver {
            child,
            port,
            log,
            _dir: dir,
            profile,
        };
        let t = Instant::now();
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return d;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                panic!("chromedriver exited at start ({st}): {}", d.log_text());
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on port {port} within 20 s: {}",
                d.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = s.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    async fn browser(&self) -> Client {
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", self.profile.display()),
                    "--window-size=1280,900",
                ],
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{}", self.port);
        let fut = builder.connect(&url);
        match tokio::time::timeout(Duration::from_secs(60), fut).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("no browser session: {e}\n{}", self.log_text()),
            Err(_) => panic!("no browser session within 60 s\n{}", self.log_text()),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- chromedriver log (tail) ----\n{}", self.log_text());
        }
        // The group: chromedriver, chromium and chromium's helpers.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process killed on drop (the `d4 client`).
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bounds one browser command.
async fn step<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("browser: {what}: {e}"),
        Err(_) => panic!("browser: {what}: no answer within {STEP:?}"),
    }
}

async fn goto(b: &Client, url: &str) {
    step(&format!("open {url}"), b.goto(url)).await;
}

async fn fill(b: &Client, css: &str, text: &str) {
    let e = step(&format!("find {css}"), b.find(Locator::Css(css))).await;
    step(&format!("clear {css}"), e.clear()).await;
    step(&format!("type into {css}"), e.send_keys(text)).await;
}

async fn click(b: &Client, loc: Locator<'_>) {
    let e = step(&format!("find {loc:?}"), b.find(loc)).await;
    step(&format!("click {loc:?}"), e.click()).await;
}

async fn path_of(b: &Client) -> String {
    step("current url", b.current_url())
        .await
        .path()
        .to_string()
}

/// Waits (bounded) until the browser shows a page whose path satisfies `ok`.
async fn wait_path(b: &Client, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        let p = path_of(b).await;
        if ok(&p) {
            return p;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "browser stayed on {p}, expected {what}: {}",
            body_text(b).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The visible text of the element `loc`, retried (bounded) while a navigation replaces
/// the page under our feet (stale element) or the element is not there yet.
async fn text_of(b: &Client, loc: Locator<'_>) -> String {
    let t = Instant::now();
    loop {
        let r = tokio::time::timeout(STEP, async {
            let e = b.find(loc).await?;
            e.text().await
        })
        .await;
        match r {
            Ok(Ok(text)) => return text,
            Ok(Err(_)) if t.elapsed() < STEP => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => panic!("browser: text of {loc:?}: {e}"),
            Err(_) => panic!("browser: text of {loc:?}: no answer within {STEP:?}"),
        }
    }
}

/// The visible text of the page.
async fn body_text(b: &Client) -> String {
    text_of(b, Locator::Css("body")).await
}

/// Reloads the page (every 300 ms, at most `secs`) until `ok(text)`.
async fn poll_page(b: &Client, secs: u64, ok: impl Fn(&str) -> bool) -> Option<String> {
    let t = Instant::now();
    loop {
        let text = body_text(b).await;
        if ok(&text) {
            return Some(text);
        }
        if t.elapsed() > Duration::from_secs(secs) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        step("reload", b.refresh()).await;
    }
}

fn screenshot_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t), // an absolute value replaces root
        None => root.join("target"),
    };
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(b: &Client, name: &str) {
    let png = step(&format!("screenshot {name}"), b.screenshot()).await;
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let p = screenshot_dir().join(name);
    std::fs::write(&p, png).unwrap();
    eprintln!("screenshot: {}", p.display());
}

/// Logs in through the form; returns the path the browser lands on.
async fn login(b: &Client, base: &str, user: &str, password: &str) -> String {
    goto(b, &format!("{base}/login")).await;
    fill(b, "input[name=user]", user).await;
    fill(b, "input[name=password]", password).await;
    click(b, Locator::Css("form[action='/login'] button[type=submit]")).await;
    wait_path(b, "to leave the login page", |p| p != "/login").await
}

/// The reference registration API, as a sensor's installer calls it (not a UI step).
async fn api_register(web: SocketAddr, token: &str, uuid: Uuid, key: &str) -> (u16, String) {
    let body = format!(
        "{{\"uuid\":\"{}\",\"hmac_key\":\"{key}\"}}",
        uuid.hyphenated()
    );
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(web).await.unwrap();
        let req = format!(
            "POST /api/v1/add/sensor/register HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Authorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
        (status, body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .expect("registration request timed out")
}

/// Lines the sensor streams; the last one checks that the queue page escapes entries.
const LINES: [&str; 3] = [
    "browser-test line one: sshd[42]: accepted",
    "browser-test line two: kernel: eth0 up",
    "browser-test line three <b>not bold</b> & co",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_approves_a_sensor_and_sees_its_lines_in_a_group_queue() {
    let driver = Driver::start();
    let dir = tempfile::tempdir().unwrap();
    let srv = ServerProc::start(dir.path(), &["--web-plain"]);
    let web_line = wait_for(10, || {
        let log = srv.log_text();
        async move {
            log.lines()
                .find_map(|l| l.strip_prefix("d4-web-ready http://").map(str::to_string))
        }
    })
    .await
    .unwrap_or_else(|| panic!("no d4-web-ready line: {}", srv.log_text()));
    let web: SocketAddr = web_line.trim().parse().unwrap();
    let base = format!("http://{web}");
    let pw_file = dir.path().join("web-admin-password.txt");
    let first = std::fs::read_to_string(&pw_file).unwrap();
    let first = first.trim().to_string();

    let b = driver.browser().await;

    // First login: straight to the forced password change.
    goto(&b, &format!("{base}/")).await;
    assert_eq!(path_of(&b).await, "/login", "the dashboard needs a login");
    screenshot(&b, "login.png").await;
    assert_eq!(login(&b, &base, "admin", &first).await, "/password");
    screenshot(&b, "password.png").await;
    goto(&b, &format!("{base}/sensors")).await;
    assert_eq!(
        path_of(&b).await,
        "/password",
        "nothing else is reachable before the change"
    );
    let new_pw = "browser-test new admin password";
    fill(&b, "input[name=current]", &first).await;
    fill(&b, "input[name=new]", new_pw).await;
    fill(&b, "input[name=repeat]", new_pw).await;
    click(
        &b,
        Locator::Css("form[action='/password'] button[type=submit]"),
    )
    .await;
    wait_path(&b, "the dashboard", |p| p == "/").await;
    assert!(body_text(&b).await.contains("Password changed."));
    assert!(
        !pw_file.exists(),
        "the first-start password file is removed"
    );

    // Log out; the old password is refused, the new one works.
    click(&b, Locator::XPath("//nav//button[text()='Log out']")).await;
    wait_path(&b, "the login page", |p| p == "/login").await;
    goto(&b, &format!("{base}/login")).await;
    fill(&b, "input[name=user]", "admin").await;
    fill(&b, "input[name=password]", &first).await;
    click(
        &b,
        Locator::Css("form[action='/login'] button[type=submit]"),
    )
    .await;
    let t = Instant::now();
    while !body_text(&b)
        .await
        .to_lowercase()
        .contains("wrong user name or password")
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "old password: no error shown: {}",
            body_text(&b).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(path_of(&b).await, "/login");
    assert_eq!(login(&b, &base, "admin", new_pw).await, "/");

    // An API token from the account page (shown once).
    goto(&b, &format!("{base}/account")).await;
    click(&b, Locator::XPath("//button[text()='Create my API token']")).await;
    let token = text_of(&b, Locator::Css(".secret"))
        .await
        .trim()
        .to_string();
    assert_eq!(token.len(), 64, "{token:?}");

    // A sensor registers itself: pending.
    let sensor = Uuid::new_v4();
    let id = sensor.simple().to_string();
    let key = "browser-test sensor key";
    let (st, body) = api_register(web, &token, sensor, key).await;
    assert_eq!(
        (st, body.as_str()),
        (200, &*format!("{{\"uuid\":\"{id}\"}}"))
    );

    // Approve it on the registration page.
    goto(&b, &format!("{base}/registration")).await;
    let pending_row =
        format!("//h2[text()='Pending']/following-sibling::table[1]//tr[.//code[text()='{id}']]");
    text_of(&b, Locator::XPath(&pending_row)).await;
    screenshot(&b, "registration.png").await;
    click(
        &b,
        Locator::XPath(&format!("{pending_row}//button[text()='Approve']")),
    )
    .await;
    wait_path(&b, "back to the registration page", |p| {
        p == "/registration"
    })
    .await;
    let text = body_text(&b).await;
    assert!(text.contains("Sensor approved."), "{text}");
    let registered_row = format!(
        "//h2[text()='Registered']/following-sibling::table[1]//tr[.//code[text()='{id}']]"
    );
    text_of(&b, Locator::XPath(&registered_row)).await;

    // A type-3 queue for a group holding this sensor, through the form.
    goto(&b, &format!("{base}/queues")).await;
    fill(&b, "form[action='/queues'] input[name=kind]", "3").await;
    fill(
        &b,
        "form[action='/queues'] input[name=description]",
        "browser test: syslog of the group",
    )
    .await;
    fill(&b, "form[action='/queues'] input[name=max_size]", "100").await;
    fill(
        &b,
        "form[action='/queues'] textarea[name=sensors]",
        &sensor.hyphenated().to_string(),
    )
    .await;
    click(
        &b,
        Locator::Css("form[action='/queues'] button[type=submit]"),
    )
    .await;
    let qpath = wait_path(&b, "the new queue's page", |p| {
        p.starts_with("/queues/") && p.len() == "/queues/".len() + 32
    })
    .await;
    let text = body_text(&b).await;
    assert!(text.contains("created"), "{text}");
    assert!(text.contains(&id), "the group names the sensor: {text}");

    // A real sensor streams the known lines and stays connected (stdin open).
    let spool = tempfile::tempdir().unwrap();
    let mut client = Killed(
        Command::new(env!("CARGO_BIN_EXE_d4"))
            .args(["client", "--uuid", &sensor.hyphenated().to_string()])
            .args(["--key", key, "--no-tls", "--type", "3", "--destination"])
            .arg(srv.plain.to_string())
            .arg("--spool-dir")
            .arg(spool.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning d4 client"),
    );
    {
        let stdin = client.0.stdin.as_mut().unwrap();
        for l in LINES {
            writeln!(stdin, "{l}").unwrap();
        }
        stdin.flush().unwrap();
    }

    // The sensors page shows it connected.
    goto(&b, &format!("{base}/sensors")).await;
    let row = format!("//tr[.//code[text()='{id}']]");
    let t = Instant::now();
    loop {
        let text = text_of(&b, Locator::XPath(&row)).await;
        // connected, and the first frame counted (stats are flushed every 100 ms)
        if text.contains("connected")
            && text.contains("approved")
            && !text.contains("0 frames, 0 B")
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sensor never shown connected: {text}\n{}",
            srv.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        step("reload", b.refresh()).await;
    }
    screenshot(&b, "sensors.png").await;

    // The queue's sample holds the lines, escaped (shown as text, not markup).
    goto(&b, &format!("{base}{qpath}")).await;
    let seen = poll_page(&b, 20, |t| LINES.iter().all(|l| t.contains(l))).await;
    assert!(
        seen.is_some(),
        "lines missing from the queue sample: {}\n{}",
        body_text(&b).await,
        srv.log_text()
    );
    let bold = step("find <b>", b.find_all(Locator::Css("main b"))).await;
    assert!(bold.is_empty(), "an entry was rendered as markup");
    screenshot(&b, "queue.png").await;

    // The sensor's page and the dashboard.
    goto(&b, &format!("{base}/sensors/{id}")).await;
    let text = poll_page(&b, 10, |t| t.contains("approved")).await;
    assert!(text.is_some(), "{}", body_text(&b).await);
    screenshot(&b, "sensor.png").await;
    step(
        "scroll",
        b.execute("window.scrollTo(0, document.body.scrollHeight)", vec![]),
    )
    .await;
    screenshot(&b, "sensor-bottom.png").await;
    goto(&b, &format!("{base}/")).await;
    let text = poll_page(&b, 10, |t| t.contains("1 connected now")).await;
    assert!(text.is_some(), "dashboard: {}", body_text(&b).await);
    screenshot(&b, "dashboard.png").await;

    // End: the sensor closes its input and exits; the browser session closes.
    drop(client.0.stdin.take());
    let t = Instant::now();
    while client.0.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "d4 client did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tokio::time::timeout(STEP, b.close()).await;
    drop(driver);
    srv.stop();
}
