//! badkeys' blocklist (`blocklist.dat`): a sorted array of 16-byte records, each the first
//! 15 bytes of SHA-256 of a key's number (RSA n, EC x, DSA/DH y, raw Edwards/Montgomery
//! key bytes; big-endian without leading zero bytes) followed by one byte naming the list.
//! `badkeysdata.json` beside it maps list ids to names (`{"blocklists": [{"id", "name"}]}`).
//!
//! badkeys memory-maps the file. Mapping needs `unsafe` (the file can change under the
//! map), which this workspace denies; the lookup here is the same binary search done with
//! positioned reads (`read_exact_at`) of single records, and the OS page cache does the
//! caching: about 22 reads of 16 bytes per key on the 60 MB real file.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{Check, CheckError, Finding};

const RECORD: u64 = 16;

/// An open blocklist file.
#[derive(Debug)]
pub struct Blocklist {
    file: File,
    records: u64,
    names: HashMap<u8, String>,
}

impl Blocklist {
    /// Opens `path` and reads the list names from `badkeysdata.json` in the same folder,
    /// if there is one.
    pub fn open(path: &Path) -> Result<Self, CheckError> {
        let io = |source| CheckError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        if size % RECORD != 0 {
            return Err(CheckError::BlocklistFormat {
                path: path.to_path_buf(),
                size,
            });
        }
        let meta = path.with_file_name("badkeysdata.json");
        let names = match std::fs::read(&meta) {
            Ok(bytes) => parse_names(&bytes).map_err(|reason| CheckError::BlocklistNames {
                path: meta.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => return Err(CheckError::Io { path: meta, source }),
        };
        Ok(Blocklist {
            file,
            records: size / RECORD,
            names,
        })
    }

    pub fn len(&self) -> u64 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The finding for a key's number if its hash is listed.
    pub fn lookup(&self, value: &[u8]) -> std::io::Result<Option<Finding>> {
        let digest = Sha256::digest(value);
        let key = &digest[..15];
        let (mut lo, mut hi) = (0u64, self.records);
        let mut rec = [0u8; RECORD as usize];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            self.file.read_exact_at(&mut rec, mid * RECORD)?;
            match rec[..15].cmp(key) {
                std::cmp::Ordering::Equal => {
                    let id = rec[15];
                    let mut f = Finding::new(Check::Blocklist);
                    f.subtest = Some(
                        self.names
                            .get(&id)
                            .cloned()
                            .unwrap_or_else(|| format!("id{id}")),
                    );
                    f.blid = Some(id);
                    f.lookup = Some(hex::encode(&key[..8]));
                    return Ok(Some(f));
                }
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        Ok(None)
    }
}

fn parse_names(bytes: &[u8]) -> Result<HashMap<u8, String>, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let lists = v
        .get("blocklists")
        .and_then(|l| l.as_array())
        .ok_or("no blocklists array")?;
    let mut out = HashMap::new();
    for l in lists {
        let id = l
            .get("id")
            .and_then(|i| i.as_u64())
            .and_then(|i| u8::try_from(i).ok())
            .ok_or("a list without a byte id")?;
        let name = l
            .get("name")
            .and_then(|n| n.as_str())
            .ok_or("a list without a name")?;
        out.insert(id, name.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_listed_hashes_and_names_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        // three records for the numbers 1, 2, 3 (bytes [1], [2], [3]), sorted by hash
        let mut recs: Vec<[u8; 16]> = (1u8..=3)
            .map(|v| {
                let d = Sha256::digest([v]);
                let mut r = [0u8; 16];
                r[..15].copy_from_slice(&d[..15]);
                r[15] = v + 10;
                r
            })
            .collect();
        recs.sort();
        let path = dir.join("blocklist.dat");
        std::fs::write(&path, recs.concat()).unwrap();
        std::fs::write(
            dir.join("badkeysdata.json"),
            br#"{"blocklists": [{"id": 12, "name": "two"}]}"#,
        )
        .unwrap();
        let bl = Blocklist::open(&path).unwrap();
        assert_eq!(bl.len(), 3);
        let two = bl.lookup(&[2]).unwrap().unwrap();
        assert_eq!((two.subtest.as_deref(), two.blid), (Some("two"), Some(12)));
        let three = bl.lookup(&[3]).unwrap().unwrap();
        assert_eq!(three.subtest.as_deref(), Some("id13"));
        assert!(bl.lookup(&[4]).unwrap().is_none());
        std::fs::write(&path, [0u8; 17]).unwrap();
        assert!(matches!(
            Blocklist::open(&path),
            Err(CheckError::BlocklistFormat { .. })
        ));
    }
}
