//! The sensor's configuration: the C and Go clients' configuration directory (one value per
//! file) merged with command-line overrides, checked once into a [`Settings`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use uuid::Uuid;

use crate::dest::Destination;
use crate::error::ConfigError;

/// Default bytes per read (the reference clients' default).
pub const DEFAULT_SNAPLEN: usize = 4096;
/// Largest snaplen accepted: the collector's default payload limit.
pub const MAX_SNAPLEN: usize = 1_000_000;
/// Default spool size bound.
pub const DEFAULT_SPOOL_MAX: u64 = 1 << 30;
/// Default bound on waiting for the collector to confirm the end of the stream.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Removes ONE trailing `\n` and then ONE trailing `\r` (the reference clients' rule, which
/// also handles `\r\n`).
pub fn trim_value(raw: &[u8]) -> &[u8] {
    let mut v = raw;
    if let Some(rest) = v.strip_suffix(b"\n") {
        v = rest;
    }
    if let Some(rest) = v.strip_suffix(b"\r") {
        v = rest;
    }
    v
}

/// Parses a uuid in the dashed, 32-hex, `{...}` or `urn:uuid:` form (surrounding blanks ignored).
pub fn parse_uuid(s: &str) -> Result<Uuid, ConfigError> {
    let t = s.trim();
    Uuid::try_parse(t).map_err(|_| ConfigError::BadUuid(t.to_string()))
}

/// Values read from a configuration directory; each one is optional.
#[derive(Debug, Default, Clone)]
pub struct ConfigDir {
    pub dir: Option<PathBuf>,
    pub uuid: Option<String>,
    pub key: Option<Vec<u8>>,
    pub d4_type: Option<String>,
    pub version: Option<String>,
    pub snaplen: Option<String>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub metaheader: Option<Vec<u8>>,
    pub folder: Option<String>,
    pub redis_d4: Option<String>,
    pub redis_queue: Option<String>,
    pub root_ca: Option<PathBuf>,
}

fn read_opt(dir: &Path, name: &str) -> Result<Option<Vec<u8>>, ConfigError> {
    let p = dir.join(name);
    match std::fs::read(&p) {
        Ok(raw) => Ok(Some(trim_value(&raw).to_vec())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Read(p, e)),
    }
}

fn read_str(dir: &Path, name: &str) -> Result<Option<String>, ConfigError> {
    match read_opt(dir, name)? {
        None => Ok(None),
        Some(v) => String::from_utf8(v)
            .map(Some)
            .map_err(|_| ConfigError::NotUtf8(dir.join(name))),
    }
}

impl ConfigDir {
    /// Reads every known file of `dir`; missing files are `None`.
    pub fn load(dir: &Path) -> Result<ConfigDir, ConfigError> {
        if !dir.is_dir() {
            return Err(ConfigError::NoConfigDir(dir.to_path_buf()));
        }
        let root_ca = dir.join("rootCA.crt");
        Ok(ConfigDir {
            dir: Some(dir.to_path_buf()),
            uuid: read_str(dir, "uuid")?,
            key: read_opt(dir, "key")?,
            d4_type: read_str(dir, "type")?,
            version: read_str(dir, "version")?,
            snaplen: read_str(dir, "snaplen")?,
            source: read_str(dir, "source")?,
            destination: read_str(dir, "destination")?,
            metaheader: read_opt(dir, "metaheader.json")?,
            folder: read_str(dir, "folder")?,
            redis_d4: read_str(dir, "redis_d4")?,
            redis_queue: read_str(dir, "redis_queue")?,
            root_ca: root_ca.is_file().then_some(root_ca),
        })
    }
}

/// Command-line values; each one, when set, wins over the configuration directory.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub uuid: Option<String>,
    pub key: Option<String>,
    pub key_file: Option<PathBuf>,
    pub d4_type: Option<String>,
    pub version: Option<u8>,
    pub source: Option<String>,
    pub destination: Option<String>,
    pub snaplen: Option<usize>,
    pub metaheader: Option<PathBuf>,
    /// The meta header itself (JSON), for programs that embed the client (`d4 tls` sends
    /// `{"type":"ja3-jl"}`); wins over `metaheader` and the config dir's file.
    pub metaheader_json: Option<Vec<u8>>,
    pub ca: Option<PathBuf>,
    pub insecure: bool,
    pub no_tls: bool,
    pub follow: bool,
    pub json: bool,
    pub daily: bool,
    pub spool_dir: Option<PathBuf>,
    pub spool_max: Option<u64>,
    pub folder: Option<PathBuf>,
    pub redis_d4: Option<String>,
    pub redis_queue: Option<String>,
    pub connect_timeout: Option<Duration>,
    pub backoff_max: Option<Duration>,
    pub poll: Option<Duration>,
    pub close_timeout: Option<Duration>,
}

/// Where the data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Stdin,
    /// A file, read to its end (or followed like `tail -f`).
    File(PathBuf),
    /// New files under a folder (recursively).
    Folder {
        dir: PathBuf,
        /// Send raw bytes (JSON files) instead of base64.
        json: bool,
        /// Watch `dir/YYYYMMDD` folders (created by the client).
        daily: bool,
    },
    /// A Redis list: each item is one line.
    Redis {
        host_port: String,
        db: u32,
        queue: String,
    },
}

/// The checked, effective configuration of one `d4 client` run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub uuid: Uuid,
    pub key: Vec<u8>,
    pub d4_type: u8,
    pub version: u8,
    pub snaplen: usize,
    pub source: SourceKind,
    pub follow: bool,
    pub destination: Destination,
    /// Raw meta header (JSON) for types 2/254.
    pub metaheader: Option<Vec<u8>>,
    pub ca: Option<PathBuf>,
    pub insecure: bool,
    pub tls: bool,
    pub spool_dir: PathBuf,
    pub spool_max: u64,
    pub connect_timeout: Duration,
    pub backoff_max: Duration,
    pub poll: Duration,
    /// At the end, how long to wait for the collector to confirm it read everything (its
    /// end of the connection) after our `close_notify` and half-close.
    pub close_timeout: Duration,
}

impl Settings {
    /// Merges the config dir (if any) with the overrides and checks everything. A missing
    /// uuid is generated (v4) and, when there is a config dir, saved to its `uuid` file.
    pub fn resolve(conf: &ConfigDir, o: &Overrides) -> Result<Settings, ConfigError> {
        // uuid (generated at the end, once everything else is valid)
        let uuid_given = match o.uuid.as_deref().or(conf.uuid.as_deref()) {
            Some(s) if !s.trim().is_empty() => Some(parse_uuid(s)?),
            _ => None,
        };
        // key
        let key = if let Some(k) = &o.key {
            k.as_bytes().to_vec()
        } else if let Some(p) = &o.key_file {
            let raw = std::fs::read(p).map_err(|e| ConfigError::Read(p.clone(), e))?;
            trim_value(&raw).to_vec()
        } else if let Some(k) = &conf.key {
            k.clone()
        } else {
            return Err(ConfigError::MissingKey);
        };
        if key.is_empty() {
            return Err(ConfigError::MissingKey);
        }
        // type
        let type_s = o
            .d4_type
            .as_deref()
            .or(conf.d4_type.as_deref())
            .unwrap_or("1");
        let d4_type = d4_proto::types::parse(type_s.trim())
            .ok_or_else(|| ConfigError::BadType(type_s.to_string()))?;
        if d4_type == 0 {
            return Err(ConfigError::BadType(type_s.to_string()));
        }
        // version
        let version = match (o.version, conf.version.as_deref()) {
            (Some(v), _) => v,
            (None, Some(s)) => s
                .trim()
                .parse::<u8>()
                .map_err(|_| ConfigError::BadVersion(s.to_string()))?,
            (None, None) => d4_proto::PROTOCOL_VERSION,
        };
        if version != d4_proto::PROTOCOL_VERSION {
            return Err(ConfigError::BadVersion(version.to_string()));
        }
        // snaplen
        let snaplen = match (o.snaplen, conf.snaplen.as_deref()) {
            (Some(n), _) => n,
            (None, Some(s)) => s
                .trim()
                .parse::<usize>()
                .map_err(|_| ConfigError::BadSnaplen(s.to_string()))?,
            (None, None) => DEFAULT_SNAPLEN,
        };
        if snaplen == 0 || snaplen > MAX_SNAPLEN {
            return Err(ConfigError::BadSnaplen(snaplen.to_string()));
        }
        // meta header
        let metaheader = if let Some(m) = &o.metaheader_json {
            Some(m.clone())
        } else if let Some(p) = &o.metaheader {
            let raw = std::fs::read(p).map_err(|e| ConfigError::Read(p.clone(), e))?;
            Some(trim_value(&raw).to_vec())
        } else {
            conf.metaheader.clone()
        };
        if d4_type == d4_proto::types::META_HEADER || d4_type == d4_proto::types::EXTENDED {
            let Some(m) = &metaheader else {
                return Err(ConfigError::MissingMetaHeader);
            };
            d4_proto::MetaHeader::parse(m)
                .map_err(|e| ConfigError::BadMetaHeader(e.to_string()))?;
        }
        // source
        let src = o
            .source
            .as_deref()
            .or(conf.source.as_deref())
            .unwrap_or("stdin")
            .trim()
            .to_string();
        let source = match src.as_str() {
            "stdin" | "-" => SourceKind::Stdin,
            "folder" => {
                let dir = o
                    .folder
                    .clone()
                    .or_else(|| conf.folder.as_deref().map(PathBuf::from))
                    .ok_or(ConfigError::MissingFolder)?;
                if !dir.is_dir() {
                    return Err(ConfigError::NoFolder(dir));
                }
                SourceKind::Folder {
                    dir,
                    json: o.json,
                    daily: o.daily,
                }
            }
            "d4server" | "redis" => {
                let rd = o
                    .redis_d4
                    .as_deref()
                    .or(conf.redis_d4.as_deref())
                    .ok_or(ConfigError::MissingRedis)?;
                let queue = o
                    .redis_queue
                    .as_deref()
                    .or(conf.redis_queue.as_deref())
                    .ok_or(ConfigError::MissingRedis)?
                    .to_string();
                let (host_port, db) = parse_redis_d4(rd)?;
                SourceKind::Redis {
                    host_port,
                    db,
                    queue,
                }
            }
            other => {
                let p = other.strip_prefix("file:").unwrap_or(other);
                let path = PathBuf::from(p);
                if other.starts_with("file:") || path.is_absolute() || path.exists() {
                    if !path.is_file() {
                        return Err(ConfigError::NoSourceFile(path));
                    }
                    SourceKind::File(path)
                } else {
                    return Err(ConfigError::UnknownSource(other.to_string()));
                }
            }
        };
        if o.follow && !matches!(source, SourceKind::File(_)) {
            return Err(ConfigError::FollowNeedsFile);
        }
        // destination
        let dst = o
            .destination
            .as_deref()
            .or(conf.destination.as_deref())
            .unwrap_or("stdout");
        let destination = Destination::parse(dst)?;
        let ca = o.ca.clone().or_else(|| conf.root_ca.clone());
        if let Some(p) = &ca {
            if let Err(e) = std::fs::File::open(p) {
                return Err(ConfigError::Read(p.clone(), e));
            }
        }
        let uuid = match uuid_given {
            Some(u) => u,
            None => {
                let u = Uuid::new_v4();
                if let Some(dir) = &conf.dir {
                    let p = dir.join("uuid");
                    std::fs::write(&p, format!("{}\n", u.hyphenated()))
                        .map_err(|e| ConfigError::Write(p.clone(), e))?;
                    tracing::info!(uuid = %u, file = %p.display(), "generated a new sensor uuid and saved it");
                } else {
                    tracing::warn!(uuid = %u, "no uuid given: generated one for this run only (use -c DIR to keep it)");
                }
                u
            }
        };
        let spool_dir = match (&o.spool_dir, &conf.dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.join("spool"),
            (None, None) => default_spool_dir(&uuid),
        };
        Ok(Settings {
            uuid,
            key,
            d4_type,
            version,
            snaplen,
            source,
            follow: o.follow,
            destination,
            metaheader,
            ca,
            insecure: o.insecure,
            tls: !o.no_tls,
            spool_dir,
            spool_max: o.spool_max.unwrap_or(DEFAULT_SPOOL_MAX),
            connect_timeout: o.connect_timeout.unwrap_or(Duration::from_secs(10)),
            backoff_max: o.backoff_max.unwrap_or(Duration::from_secs(30)),
            poll: o.poll.unwrap_or(Duration::from_millis(200)),
            close_timeout: o.close_timeout.unwrap_or(DEFAULT_CLOSE_TIMEOUT),
        })
    }

    /// True when the data frames are type 254 preceded by a type-2 meta header.
    pub fn uses_meta_header(&self) -> bool {
        self.d4_type == d4_proto::types::META_HEADER || self.d4_type == d4_proto::types::EXTENDED
    }
}

/// `$XDG_STATE_HOME/d4/spool/<uuid>` (or `~/.local/state/...`, or the temp dir).
fn default_spool_dir(uuid: &Uuid) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("d4/spool").join(uuid.simple().to_string())
}

/// `host:port/db` (db optional, default 0).
pub fn parse_redis_d4(s: &str) -> Result<(String, u32), ConfigError> {
    let s = s.trim().trim_start_matches("redis://");
    let (hp, db) = match s.rsplit_once('/') {
        Some((hp, db)) if !db.is_empty() => (
            hp,
            db.parse::<u32>()
                .map_err(|_| ConfigError::BadRedis(s.to_string()))?,
        ),
        Some((hp, _)) => (hp, 0),
        None => (s, 0),
    };
    if hp.is_empty() || !hp.contains(':') {
        return Err(ConfigError::BadRedis(s.to_string()));
    }
    Ok((hp.to_string(), db))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_one_newline_and_cr() {
        assert_eq!(trim_value(b"abc\r\n"), b"abc");
        assert_eq!(trim_value(b"abc\n\n"), b"abc\n");
        assert_eq!(trim_value(b"abc\r"), b"abc");
        assert_eq!(trim_value(b"abc"), b"abc");
        assert_eq!(trim_value(b"key \n"), b"key ");
    }

    #[test]
    fn uuid_forms() {
        let u = Uuid::parse_str("3b9cd0e3-a4c2-4d7a-9d8a-0d6c9c2f1a11").unwrap();
        for s in [
            "3b9cd0e3-a4c2-4d7a-9d8a-0d6c9c2f1a11",
            "3b9cd0e3a4c24d7a9d8a0d6c9c2f1a11",
            "{3b9cd0e3-a4c2-4d7a-9d8a-0d6c9c2f1a11}",
            "urn:uuid:3b9cd0e3-a4c2-4d7a-9d8a-0d6c9c2f1a11",
            " 3B9CD0E3-A4C2-4D7A-9D8A-0D6C9C2F1A11 ",
        ] {
            assert_eq!(parse_uuid(s).unwrap(), u, "{s}");
        }
        assert!(parse_uuid("not-a-uuid").is_err());
    }

    #[test]
    fn redis_d4() {
        assert_eq!(
            parse_redis_d4("127.0.0.1:6379/2").unwrap(),
            ("127.0.0.1:6379".into(), 2)
        );
        assert_eq!(
            parse_redis_d4("localhost:6380").unwrap(),
            ("localhost:6380".into(), 0)
        );
        assert!(parse_redis_d4("localhost").is_err());
        assert!(parse_redis_d4("h:1/x").is_err());
    }

    fn base() -> Overrides {
        Overrides {
            key: Some("k".into()),
            ..Default::default()
        }
    }

    #[test]
    fn missing_uuid_is_generated_and_saved() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("uuid"), "\n").unwrap();
        std::fs::write(d.path().join("key"), "secret\n").unwrap();
        let c = ConfigDir::load(d.path()).unwrap();
        let s = Settings::resolve(&c, &Overrides::default()).unwrap();
        let saved = std::fs::read_to_string(d.path().join("uuid")).unwrap();
        assert_eq!(saved, format!("{}\n", s.uuid.hyphenated()));
        assert_eq!(s.key, b"secret");
        let again =
            Settings::resolve(&ConfigDir::load(d.path()).unwrap(), &Overrides::default()).unwrap();
        assert_eq!(again.uuid, s.uuid);
    }

    #[test]
    fn errors() {
        let c = ConfigDir::default();
        assert!(matches!(
            Settings::resolve(&c, &Overrides::default()),
            Err(ConfigError::MissingKey)
        ));
        let mut o = base();
        o.source = Some("bogus".into());
        assert!(matches!(
            Settings::resolve(&c, &o),
            Err(ConfigError::UnknownSource(_))
        ));
        let mut o = base();
        o.destination = Some("nohostport".into());
        assert!(matches!(
            Settings::resolve(&c, &o),
            Err(ConfigError::BadDestination(_))
        ));
        let mut o = base();
        o.ca = Some("/nonexistent/ca.pem".into());
        assert!(matches!(
            Settings::resolve(&c, &o),
            Err(ConfigError::Read(..))
        ));
        let mut o = base();
        o.d4_type = Some("254".into());
        assert!(matches!(
            Settings::resolve(&c, &o),
            Err(ConfigError::MissingMetaHeader)
        ));
        let mut o = base();
        o.snaplen = Some(0);
        assert!(matches!(
            Settings::resolve(&c, &o),
            Err(ConfigError::BadSnaplen(_))
        ));
    }
}
