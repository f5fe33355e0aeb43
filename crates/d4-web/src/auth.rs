//! Authentication: argon2 passwords, random secrets, web sessions (kept in the store so they
//! survive a restart), API tokens (stored hashed), the login lockout per (user, IP), role checks and
//! the first-start admin account.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use d4_store::{hash_secret, now, Role, Store, User, WebLogin};

use crate::{WebError, WebState};

/// Name of the first-start admin password file, in the data dir.
pub const ADMIN_PASSWORD_FILE: &str = "web-admin-password.txt";
/// Name of the first-start admin account.
pub const FIRST_ADMIN: &str = "admin";
/// Session cookie name.
pub const SESSION_COOKIE: &str = "d4_session";
/// Pre-login CSRF cookie name (double submit on the login form).
pub const LOGIN_CSRF_COOKIE: &str = "d4_login_csrf";
/// Minimum password length.
pub const MIN_PASSWORD_LEN: usize = 10;

/// 64 hex digits of OS randomness (two UUIDv4 = 244 random bits).
pub fn random_token() -> String {
    let a = uuid::Uuid::new_v4();
    let b = uuid::Uuid::new_v4();
    format!("{}{}", a.simple(), b.simple())
}

/// A new random session epoch ([`d4_store::User::session_epoch`]): never 0 (the value of
/// records written before epochs existed).
pub fn new_epoch() -> u64 {
    let b = uuid::Uuid::new_v4();
    let (hi, _) = b.as_u64_pair();
    hi.max(1)
}

/// A random password of 20 letters and digits.
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::new();
    while out.len() < 20 {
        for b in uuid::Uuid::new_v4().as_bytes() {
            // 57 symbols: reject bytes >= 228 (4 * 57) to avoid bias.
            if *b < 228 && out.len() < 20 {
                out.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
            }
        }
    }
    out
}

/// argon2id PHC string of a password (blocking: call from `spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, WebError> {
    let salt = SaltString::encode_b64(uuid::Uuid::new_v4().as_bytes())
        .map_err(|e| WebError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| WebError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string (blocking).
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Largest argon2 memory a stored hash may ask for (blocks of 1 KiB): 256 MiB.
const MAX_ARGON2_BLOCKS: usize = 256 * 1024;

/// [`verify_password`] with caller-provided argon2 memory (grown as needed, kept).
pub fn verify_password_in(password: &str, phc: &str, memory: &mut Vec<argon2::Block>) -> bool {
    use argon2::{Algorithm, Params, Version};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version {
        Some(v) => match Version::try_from(v) {
            Ok(v) => v,
            Err(_) => return false,
        },
        None => Version::default(),
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let blocks = params.m_cost() as usize;
    if blocks > MAX_ARGON2_BLOCKS {
        return false;
    }
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params);
    if argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..blocks])
        .is_err()
    {
        return false;
    }
    crate::ct_eq_bytes(&out, expected.as_bytes())
}

pub(crate) async fn hash_password_async(password: String) -> Result<String, WebError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| WebError::Hash(e.to_string()))?
}

pub(crate) async fn verify_password_async(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false)
}

/// Login password checks run on a fixed set of threads (`max_login_checks` of them), not
/// on tokio's blocking pool: argon2 takes ~19 MiB per check and the allocator keeps what a
/// thread freed for that thread's next use, so a fixed set bounds the memory for good
/// (hundreds of blocking threads each keeping 19 MiB did not).
pub(crate) struct Checkers {
    tx: std::sync::mpsc::Sender<CheckJob>,
}

type CheckJob = (String, String, tokio::sync::oneshot::Sender<bool>);

impl Checkers {
    pub(crate) fn new(threads: usize) -> Checkers {
        let (tx, rx) = std::sync::mpsc::channel::<CheckJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("d4-web-pw-{i}"))
                .spawn(move || {
                    // This thread's argon2 memory, allocated once and reused: the allocator
                    // did not reuse freed 19 MiB blocks well (RSS grew ~15 MiB per check).
                    let mut memory = Vec::new();
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        let Ok((password, phc, reply)) = job else {
                            return; // the web state is gone
                        };
                        let _ = reply.send(verify_password_in(&password, &phc, &mut memory));
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "web: cannot start a password check thread");
            }
        }
        Checkers { tx }
    }

    /// Whether `password` matches `phc`, checked on one of the threads.
    pub(crate) async fn verify(&self, password: String, phc: String) -> bool {
        let (reply, answer) = tokio::sync::oneshot::channel();
        if self.tx.send((password, phc, reply)).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}

/// A dummy hash verified for unknown user names, so timing does not tell which exist.
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// Password rules: at least [`MIN_PASSWORD_LEN`] characters, at most 1024.
pub fn check_password_rules(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if n > 1024 {
        return Err("the password is too long (at most 1024 characters)".into());
    }
    Ok(())
}

/// On first start (no user at all), create the `admin` account with a random password,
/// print it once on stderr and write it to `<data>/web-admin-password.txt` (mode 0600).
/// The change is required at first login; the file is removed then. Returns the password
/// when an account was created.
pub async fn ensure_admin(state: &WebState) -> Result<Option<String>, WebError> {
    let store = state.store();
    if !store.list_users().await?.is_empty() {
        return Ok(None);
    }
    let password = random_password();
    let hash = hash_password_async(password.clone()).await?;
    store
        .create_user(User {
            name: FIRST_ADMIN.into(),
            role: Role::Admin,
            password_hash: hash,
            must_change_password: true,
            api_token_hash: None,
            created: now(),
            session_epoch: new_epoch(),
        })
        .await?;
    let path = state.config().data_dir.join(ADMIN_PASSWORD_FILE);
    write_secret_file(&path, &format!("{password}\n"))?;
    eprintln!(
        "d4 web: first start: created user \"{FIRST_ADMIN}\" with password {password} \
         (also in {}; change it at first login)",
        path.display()
    );
    tracing::warn!(file = %path.display(), "web: created the first admin account");
    Ok(Some(password))
}

fn write_secret_file(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        d4_store::private::create_private_dir(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(content.as_bytes())
}

/// Remove the first-start password file (after the admin changed the password).
pub(crate) fn remove_admin_password_file(state: &WebState) {
    let path = state.config().data_dir.join(ADMIN_PASSWORD_FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => {
            tracing::info!(file = %path.display(), "web: removed the first admin password file")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(file = %path.display(), error = %e, "web: cannot remove file"),
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Any logged-in user (own account, password).
    Any,
    /// Register sensors: sensor_register, user, admin.
    Register,
    /// Read the UI / API: user, admin.
    Read,
    /// Change anything: admin.
    Admin,
}

/// Whether `role` satisfies `need`.
pub fn allowed(role: Role, need: Need) -> bool {
    match need {
        Need::Any | Need::Register => true,
        Need::Read => matches!(role, Role::Admin | Role::User),
        Need::Admin => role == Role::Admin,
    }
}

/// A logged-in browser user.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    pub csrf: String,
    pub session_hash: String,
}

/// The viewer of a request carrying a valid session cookie.
pub(crate) async fn viewer(state: &WebState, headers: &HeaderMap) -> Option<Viewer> {
    let id = crate::cookie(headers, SESSION_COOKIE)?;
    if id.len() != 64 {
        return None;
    }
    let hash = hash_secret(&id);
    let store = state.store();
    let session = store.get_web_login(hash.clone(), now()).await.ok()??;
    let user = store.get_user(session.user.clone()).await.ok()??;
    if session.epoch != user.session_epoch {
        // Ended by a password or role change (or the user was re-created): gone for good.
        let _ = store.delete_web_login(hash).await;
        return None;
    }
    Some(Viewer {
        user,
        csrf: session.csrf_token,
        session_hash: hash,
    })
}

/// Create a session for `user`; returns the `Set-Cookie` value.
pub(crate) async fn start_session(state: &WebState, user: &User) -> Result<String, WebError> {
    let id = random_token();
    let t = now();
    let ttl = state.config().session_ttl_secs;
    state
        .store()
        .create_web_login(WebLogin {
            id_hash: hash_secret(&id),
            user: user.name.clone(),
            csrf_token: random_token(),
            created: t,
            expires: t + ttl,
            epoch: user.session_epoch,
        })
        .await?;
    Ok(session_cookie(state, &id, ttl))
}

pub(crate) fn session_cookie(state: &WebState, value: &str, max_age: u64) -> String {
    let secure = if state.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    )
}

pub(crate) fn login_csrf_cookie(state: &WebState, value: &str) -> String {
    let secure = if state.config().secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{LOGIN_CSRF_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600{secure}"
    )
}

/// The user of an API request (`Authorization: <token>` or `Bearer <token>`).
pub(crate) async fn token_user(
    store: &dyn Store,
    headers: &HeaderMap,
) -> Result<Option<User>, d4_store::StoreError> {
    let Some(value) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    let value = value.trim();
    let token = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    if token.is_empty() || token.len() > 256 {
        return Ok(None);
    }
    store.user_by_token_hash(hash_secret(token)).await
}

/// Login attempts per (user name, client IP): every attempt is counted *before* its
/// password is verified (concurrent attempts cannot overtake the count) and a success
/// clears the count; once `max` attempts failed (or are in flight) within the window,
/// every login of that user from that IP is refused for the window (even with the right
/// password). Keyed on the pair, so neither a stranger elsewhere nor a neighbour behind the
/// same proxy can lock a user out.
#[derive(Debug)]
pub struct Lockout {
    max: u32,
    window: Duration,
    entries: HashMap<(String, IpAddr), LockEntry>,
}

#[derive(Debug, Clone, Copy)]
struct LockEntry {
    attempts: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Bound on the number of tracked (user, IP) pairs.
const LOCKOUT_MAX_ENTRIES: usize = 100_000;

/// Longest user name kept as a lockout key (longer names are cut: they do not exist).
const LOCKOUT_NAME_MAX: usize = 64;

fn lock_key(user: &str, ip: IpAddr) -> (String, IpAddr) {
    (user.chars().take(LOCKOUT_NAME_MAX).collect(), ip)
}

impl Lockout {
    pub fn new(max: u32, secs: u64) -> Lockout {
        Lockout {
            max: max.max(1),
            window: Duration::from_secs(secs),
            entries: HashMap::new(),
        }
    }

    /// Seconds left when `user` is locked out from `ip`.
    pub fn locked(&mut self, user: &str, ip: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let key = lock_key(user, ip);
        let entry = self.entries.get(&key)?;
        match entry.locked_until {
            Some(until) if until > now => Some((until - now).as_secs().max(1)),
            Some(_) => {
                self.entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Counts an attempt before its password is checked: `Err(seconds)` when the pair is
    /// locked (or this attempt would pass the limit: it locks it).
    pub fn begin(&mut self, user: &str, ip: IpAddr) -> Result<(), u64> {
        if let Some(secs) = self.locked(user, ip) {
            return Err(secs);
        }
        let now = Instant::now();
        if self.entries.len() >= LOCKOUT_MAX_ENTRIES {
            let window = self.window;
            self.entries.retain(|_, e| match e.locked_until {
                Some(u) => u > now,
                None => now.duration_since(e.first) < window,
            });
            if self.entries.len() >= LOCKOUT_MAX_ENTRIES {
                self.entries.clear();
            }
        }
        let entry = self.entries.entry(lock_key(user, ip)).or_insert(LockEntry {
            attempts: 0,
            first: now,
            locked_until: None,
        });
        if now.duration_since(entry.first) >= self.window {
            *entry = LockEntry {
                attempts: 0,
                first: now,
                locked_until: None,
            };
        }
        if entry.attempts >= self.max {
            entry.locked_until = Some(now + self.window);
            return Err(self.window.as_secs().max(1));
        }
        entry.attempts += 1;
        Ok(())
    }

    /// The attempt counted by [`Lockout::begin`] failed; returns whether the pair is
    /// locked now.
    pub fn failure(&mut self, user: &str, ip: IpAddr) -> bool {
        let now = Instant::now();
        let window = self.window;
        match self.entries.get_mut(&lock_key(user, ip)) {
            Some(e) if e.attempts >= self.max => {
                e.locked_until = Some(now + window);
                true
            }
            _ => false,
        }
    }

    /// The attempt counted by [`Lockout::begin`] checked no password (server busy).
    pub fn cancel(&mut self, user: &str, ip: IpAddr) {
        if let Some(e) = self.entries.get_mut(&lock_key(user, ip)) {
            if e.locked_until.is_none() {
                e.attempts = e.attempts.saturating_sub(1);
            }
        }
    }

    /// A successful login clears the pair's count.
    pub fn success(&mut self, user: &str, ip: IpAddr) {
        self.entries.remove(&lock_key(user, ip));
    }
}

/// A `next` target after login: only local absolute paths (no scheme, no `//host`, no
/// backslashes, no control characters); anything else becomes `/`.
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control())
        && next.len() <= 1024;
    if ok {
        next.to_string()
    } else {
        "/".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_local_only() {
        assert_eq!(safe_next("/sensors?x=1"), "/sensors?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/\tevil",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn lockout_after_max_failures_per_user_and_ip() {
        let mut l = Lockout::new(5, 300);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..4 {
            assert!(l.begin("admin", a).is_ok());
            assert!(!l.failure("admin", a));
        }
        assert!(l.locked("admin", a).is_none());
        assert!(l.begin("admin", a).is_ok());
        assert!(l.failure("admin", a));
        assert!(l.locked("admin", a).unwrap() > 290);
        assert!(l.begin("admin", a).is_err());
        assert!(l.locked("admin", b).is_none());
        assert!(l.locked("alice", a).is_none());
        l.success("admin", b);
        assert!(l.locked("admin", a).is_some());
    }

    #[test]
    fn concurrent_attempts_are_counted_before_verification() {
        let mut l = Lockout::new(5, 300);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        // 40 attempts arrive before any verification ends: only 5 go through.
        let passed = (0..40).filter(|_| l.begin("admin", a).is_ok()).count();
        assert_eq!(passed, 5);
        assert!(l.locked("admin", a).is_some());
        // A cancelled attempt (server busy) gives its count back.
        let mut l = Lockout::new(2, 300);
        assert!(l.begin("u", a).is_ok());
        l.cancel("u", a);
        assert!(l.begin("u", a).is_ok());
        assert!(l.begin("u", a).is_ok());
        assert!(l.begin("u", a).is_err());
    }

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a phc"));
        let mut mem = Vec::new();
        assert!(verify_password_in("correct horse battery", &h, &mut mem));
        assert!(!verify_password_in("wrong", &h, &mut mem));
        assert!(!verify_password_in("x", "not a phc", &mut mem));
        assert_eq!(mem.len(), 19 * 1024);
        let p = random_password();
        assert_eq!(p.len(), 20);
        assert_ne!(p, random_password());
        assert_eq!(random_token().len(), 64);
    }
}
