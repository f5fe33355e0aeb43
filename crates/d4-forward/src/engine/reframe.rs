//! A rule edited while its spool holds frames: frames framed with the rule's previous UUID
//! or HMAC key would reach the partner under the old identity (refused there, or counted
//! for the wrong sensor). At the stream's opening its frames are framed again with the
//! rule's identity (same type, timestamp and payload, so the same sizes: the sender's
//! counters and unconfirmed frames stay valid).
//!
//! Each stream folder holds `identity` (`<uuid> <sha256 of the key, hex>`). The new spool
//! is built in `reframe-<stream>/` beside it, completed by its own `identity`, then swapped
//! in by two renames (the old folder becomes `old-<stream>/` and is removed). [`recover`]
//! finishes or forgets a swap a crash interrupted.

use std::io;
use std::path::{Path, PathBuf};

use d4_client::spool::Spool;
use d4_proto::{Encoder, Header, HEADER_LEN};
use sha2::Digest;
use uuid::Uuid;

const IDENTITY: &str = "identity";
/// Bytes read from the old spool at a time.
const CHUNK: usize = 1 << 20;

/// The identity line of a rule's UUID and key (the key itself is not written).
pub fn identity(uuid: Uuid, key: &[u8]) -> String {
    format!("{} {}\n", uuid, hex::encode(sha2::Sha256::digest(key)))
}

fn sibling(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let name = dir.file_name()?.to_str()?;
    Some(dir.with_file_name(format!("{prefix}{name}")))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Finishes the swaps a crash interrupted in a rule's folder: a complete `reframe-*`
/// whose stream folder is gone takes its place; leftovers are removed.
pub fn recover(rule_dir: &Path) {
    let Ok(rd) = std::fs::read_dir(rule_dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let path = e.path();
        if let Some(stream) = name.strip_prefix("reframe-") {
            let target = rule_dir.join(stream);
            if !target.exists() && path.join(IDENTITY).exists() {
                if let Err(e) = std::fs::rename(&path, &target) {
                    tracing::error!(dir = %path.display(), error = %e, "forwarding: could not finish re-framing a spool");
                }
                continue;
            }
            let _ = std::fs::remove_dir_all(&path);
        } else if name.starts_with("old-") {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Makes the spool in `dir` hold frames of `uuid` and `key`: frames of another identity
/// are framed again (the type and timestamp of each kept). Returns how many were.
pub fn ensure(dir: &Path, uuid: Uuid, key: &[u8]) -> io::Result<u64> {
    let want = identity(uuid, key);
    let id_path = dir.join(IDENTITY);
    let have = match std::fs::read_to_string(&id_path) {
        Ok(s) => Some(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    // a stream folder from before identities were kept holds the current identity's frames
    // unless the spool says otherwise: its frames are checked below all the same
    if have.as_deref() == Some(want.as_str()) {
        return Ok(0);
    }
    let mut old = Spool::open(dir, u64::MAX)?;
    if old.is_empty() {
        std::fs::write(&id_path, &want)?;
        return Ok(0);
    }
    let (Some(tmp), Some(gone)) = (sibling(dir, "reframe-"), sibling(dir, "old-")) else {
        return Err(io::Error::other("a stream folder without a name"));
    };
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    let mut new = Spool::open(&tmp, u64::MAX)?;
    let mut skip = 0u64;
    let mut changed = 0u64;
    // per (version, type) of the frames met
    let mut encoders: Vec<(u8, Encoder)> = Vec::new();
    loop {
        let b = old.peek_after(skip, CHUNK)?;
        if b.is_empty() {
            break;
        }
        skip += b.len() as u64;
        let mut out = Vec::with_capacity(b.len());
        let mut pos = 0usize;
        while let Some(h) = Header::from_prefix(&b[pos..]) {
            let end = pos + HEADER_LEN + h.size as usize;
            let Some(payload) = b.get(pos + HEADER_LEN..end) else {
                break;
            };
            if h.uuid == uuid && have.is_none() {
                // same UUID, key not on record: the frame is kept as it is
                out.extend_from_slice(&b[pos..end]);
            } else {
                let enc = match encoders
                    .iter()
                    .position(|(v, e)| *v == h.version && e.d4_type() == h.d4_type)
                {
                    Some(i) => &encoders[i].1,
                    None => {
                        let e = Encoder::new(uuid, key, h.d4_type).with_version(h.version);
                        encoders.push((h.version, e));
                        &encoders[encoders.len() - 1].1
                    }
                };
                enc.encode_into(h.timestamp, payload, &mut out)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                changed += 1;
            }
            pos = end;
        }
        new.push(&out)?;
    }
    if changed == 0 {
        drop(new);
        std::fs::remove_dir_all(&tmp)?;
        std::fs::write(&id_path, &want)?;
        return Ok(0);
    }
    new.sync()?;
    drop(new);
    for f in ["sent.json", "pcap-header"] {
        match std::fs::copy(dir.join(f), tmp.join(f)) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    // every file of the new folder on disk before `identity` marks it complete
    for e in std::fs::read_dir(&tmp)? {
        std::fs::File::open(e?.path())?.sync_all()?;
    }
    {
        let mut f = std::fs::File::create(tmp.join(IDENTITY))?;
        io::Write::write_all(&mut f, want.as_bytes())?;
        f.sync_all()?;
    }
    sync_dir(&tmp)?;
    drop(old);
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::rename(dir, &gone)?;
    std::fs::rename(&tmp, dir)?;
    sync_dir(parent)?;
    std::fs::remove_dir_all(&gone)?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(dir: &Path) -> Vec<(Header, Vec<u8>)> {
        let mut sp = Spool::open(dir, u64::MAX).unwrap();
        let b = sp.peek_after(0, 1 << 30).unwrap();
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(h) = Header::from_prefix(&b[pos..]) {
            let end = pos + HEADER_LEN + h.size as usize;
            out.push((h, b[pos + HEADER_LEN..end].to_vec()));
            pos = end;
        }
        out
    }

    #[test]
    fn frames_of_an_old_identity_are_framed_again_with_the_new_one() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("spool-8");
        let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
        {
            let mut sp = Spool::open(&dir, u64::MAX).unwrap();
            let enc = Encoder::new(u1, b"old key", 8);
            for i in 0..5u64 {
                sp.push(
                    &enc.encode(1_700_000_000 + i, format!("line {i}\n").as_bytes())
                        .unwrap(),
                )
                .unwrap();
            }
            // the first frame was confirmed already
            let first = sp.peek(1).unwrap();
            sp.consume(first.len()).unwrap();
            sp.sync().unwrap();
        }
        std::fs::write(dir.join(IDENTITY), identity(u1, b"old key")).unwrap();
        std::fs::write(dir.join("sent.json"), b"{\"frames\":4}").unwrap();
        let before = Spool::open(&dir, u64::MAX).unwrap().bytes();

        assert_eq!(ensure(&dir, u2, b"new key").unwrap(), 4);
        let got = payloads(&dir);
        assert_eq!(got.len(), 4, "the confirmed frame stays gone");
        let key = d4_proto::HmacKey::new(b"new key");
        for (i, (h, p)) in got.iter().enumerate() {
            assert_eq!(h.uuid, u2);
            assert_eq!(h.d4_type, 8);
            assert_eq!(h.timestamp, 1_700_000_001 + i as u64);
            assert_eq!(p, format!("line {}\n", i + 1).as_bytes());
            assert!(
                key.verify_raw(&h.to_bytes(), p),
                "frame {i} verifies with the new key"
            );
        }
        assert_eq!(Spool::open(&dir, u64::MAX).unwrap().bytes(), before);
        assert_eq!(
            std::fs::read(dir.join("sent.json")).unwrap(),
            b"{\"frames\":4}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(IDENTITY)).unwrap(),
            identity(u2, b"new key")
        );
        // the same identity again: nothing to do
        assert_eq!(ensure(&dir, u2, b"new key").unwrap(), 0);
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec!["spool-8".to_string()]);
    }

    #[test]
    fn a_swap_cut_by_a_crash_is_finished_at_the_next_start() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("spool-3");
        let u = Uuid::new_v4();
        {
            let mut sp = Spool::open(&dir, u64::MAX).unwrap();
            sp.push(
                &Encoder::new(Uuid::new_v4(), b"k", 3)
                    .encode(1, b"x\n")
                    .unwrap(),
            )
            .unwrap();
            sp.sync().unwrap();
        }
        assert_eq!(ensure(&dir, u, b"k2").unwrap(), 1);
        // as if the crash came between the two renames
        let tmp = d.path().join("reframe-spool-3");
        std::fs::rename(&dir, &tmp).unwrap();
        std::fs::create_dir(d.path().join("old-spool-3")).unwrap();
        // and an unfinished one of another stream
        std::fs::create_dir(d.path().join("reframe-spool-1")).unwrap();
        recover(d.path());
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names, vec!["spool-3".to_string()]);
        let got = payloads(&dir);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.uuid, u);
    }

    #[test]
    fn a_stream_from_before_identities_keeps_frames_of_the_same_uuid() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("spool-1");
        let u = Uuid::new_v4();
        let f = Encoder::new(u, b"k", 1).encode(5, b"abc").unwrap();
        {
            let mut sp = Spool::open(&dir, u64::MAX).unwrap();
            sp.push(&f).unwrap();
            sp.sync().unwrap();
        }
        assert_eq!(ensure(&dir, u, b"k").unwrap(), 0);
        let mut sp = Spool::open(&dir, u64::MAX).unwrap();
        assert_eq!(sp.peek_after(0, 1 << 20).unwrap(), f);
        assert!(dir.join(IDENTITY).exists());
    }
}
