//! A real PostgreSQL server for the tests of the PostgreSQL-backed code (d4-pssl's
//! `PostgresStore`), like [`crate::RedisServer`] for Redis: Debian's server binaries
//! (`/usr/lib/postgresql/<version>/bin`, newest first, or `$D4_PG_BIN`), a throw-away
//! cluster made with `initdb` in a temporary folder (trust authentication, superuser `d4`),
//! `postgres` on a free 127.0.0.1 port with its Unix socket in that folder, and one fresh
//! database per test ([`PostgresServer::database`]). `$D4_TEST_POSTGRES_URL` (a superuser's
//! `postgres://` URL) names an existing server instead; databases are then created on it.
//!
//! Running as root: PostgreSQL refuses to run as root, so the cluster folder (under `/tmp`,
//! which that user can reach, rather than `$TMPDIR`) is chowned to
//! the `postgres` system user (created by Debian's `postgresql-common`) and `initdb` and
//! `postgres` run as that user through `runuser -u postgres --`. As any other user they run
//! as that user directly.
//!
//! Lifetime: `postgres` runs under a small `sh` watchdog (its parent) whose stdin is a
//! pipe from the test process; when the pipe closes (the [`PostgresServer`] is dropped, or
//! the test process exits or dies, which is how the [`PostgresServer::shared`] server of a
//! test binary ends) the watchdog stops the server (fast shutdown) and removes the folder.
//! A missing binary is a panic with the package to install, never a skipped test.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::free_port;

/// A PostgreSQL server for a test run (see the module doc).
pub struct PostgresServer {
    /// The watchdog: closing its stdin stops the server.
    child: Option<(Child, ChildStdin)>,
    /// `postgres://d4@127.0.0.1:PORT/postgres`, or `$D4_TEST_POSTGRES_URL`.
    url: String,
    bin: PathBuf,
}

/// A database of its own for one test, dropped with it.
pub struct TestDatabase {
    url: String,
    name: String,
    admin_url: String,
    bin: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The folder of Debian's PostgreSQL server binaries (`$D4_PG_BIN` overrides), or a panic
/// saying what to install.
pub fn postgres_bin_dir() -> PathBuf {
    find_bin_dir()
        .filter(|d| d.join("initdb").is_file())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb, or \
             $D4_PG_BIN/initdb): install \
             them (`apt-get install -y postgresql`; ./ci.sh does this), set D4_PG_BIN to their \
             folder, or set D4_TEST_POSTGRES_URL to a superuser's URL of a running server"
            )
        })
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("D4_PG_BIN") {
        return Some(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `cmd args...` as the `postgres` user when we are root, else as ourselves.
fn as_server_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut c: Command, what: &str) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PostgresServer {
    /// One server for the whole test binary, started on first use (it stops when the
    /// process exits: see the module doc).
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(PostgresServer::start)
    }

    /// Starts a server of its own (or uses `$D4_TEST_POSTGRES_URL`). Panics with a clear
    /// message when neither is possible.
    pub fn start() -> PostgresServer {
        if let Ok(url) = std::env::var("D4_TEST_POSTGRES_URL") {
            // createdb/dropdb: the server's folder, or the client package's wrappers.
            let bin = find_bin_dir().unwrap_or_else(|| PathBuf::from("/usr/bin"));
            return PostgresServer {
                child: None,
                url,
                bin,
            };
        }
        let bin = postgres_bin_dir();
        let root = is_root();
        // As root the folder must be reachable by the `postgres` user: /tmp, not a private
        // $TMPDIR.
        let base = if root {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "d4-pg-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating the PostgreSQL test folder");
        if root {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:").arg(&dir);
                    c
                },
                "chown postgres: (is there a `postgres` system user? apt-get install postgresql)",
            );
        }
        let data = dir.join("data");
        run(
            {
                let mut c = as_server_user(root, &bin.join("initdb"));
                c.arg("-D")
                    .arg(&data)
                    .args([
                        "-U",
                        "d4",
                        "--auth=trust",
                        "--encoding=UTF8",
                        "--no-locale",
                        "--no-sync",
                    ])
                    .stdout(Stdio::piped());
                c
            },
            "initdb",
        );
        for _ in 0..5 {
            let port = free_port();
            // The watchdog: postgres in the background, then wait for stdin to close (our
            // drop or our death), then a fast shutdown and the folder's removal.
            let script = format!(
                "\"$0\" -D \"$1\" -p {port} -k \"$2\" -c listen_addresses=127.0.0.1 \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=200 >\"$2/log\" 2>&1 & pid=$!; \
                 cat >/dev/null; kill -INT $pid; wait $pid; rm -rf \"$2\""
            );
            let mut cmd = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--", "sh", "-c", &script]);
                c
            } else {
                let mut c = Command::new("sh");
                c.args(["-c", &script]);
                c
            };
            let mut child = cmd
                .arg(bin.join("postgres"))
                .arg(&data)
                .arg(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning postgres");
            let stdin = child.stdin.take().expect("piped stdin");
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let ok = Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                if ok {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return PostgresServer {
                    child: Some((child, stdin)),
                    url: format!("postgres://d4@127.0.0.1:{port}/postgres"),
                    bin,
                };
            }
            drop(stdin);
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            eprintln!("postgres did not come up on port {port}: {log}");
        }
        panic!("postgres did not come up on a loopback port (see the logs above)");
    }

    /// The server's maintenance database URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A new, empty database with a unique name (`d4test_<pid>_<n>`), dropped with the
    /// returned value.
    pub fn database(&self) -> TestDatabase {
        let name = format!(
            "d4test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = Command::new(self.bin.join("createdb"));
        c.arg(format!("--maintenance-db={}", self.url)).arg(&name);
        run(c, "createdb");
        TestDatabase {
            url: with_database(&self.url, &name),
            name,
            admin_url: self.url.clone(),
            bin: self.bin.clone(),
        }
    }
}

/// `url` with its database name replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}

impl TestDatabase {
    /// `postgres://...` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("dropdb"))
            .arg(format!("--maintenance-db={}", self.admin_url))
            .args(["--force", "--if-exists"])
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.child.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            with_database("postgres://d4@127.0.0.1:5432/postgres", "x"),
            "postgres://d4@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h:1/db?sslmode=disable", "y"),
            "postgres://u:p@h:1/y?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "z"), "postgres://h/z");
    }

    #[test]
    fn server_creates_databases() {
        let server = PostgresServer::start();
        let db = server.database();
        let out = Command::new(server.bin.join("psql"))
            .args([db.url(), "-At", "-c", "select current_database()"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), db.name());
    }
}
