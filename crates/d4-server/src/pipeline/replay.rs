//! Replay at start: the journals a previous run left are handed, frame by frame, to fresh
//! handlers, each frame's HMAC checked again with the key a live session would use.

use std::collections::HashMap;
use std::sync::Arc;

use d4_proto::{Frame, HmacKey};
use uuid::Uuid;

use super::{HandlerFactory, StreamHandler};
use crate::journal::Replayed;

/// The HMAC keys a replay checks journaled frames with: the sensor's own key when it has
/// one, else the default key (the same choice as a live session).
pub struct ReplayKeys {
    default: HmacKey,
    keys: HashMap<Uuid, Vec<u8>>,
    prepared: HashMap<Uuid, HmacKey>,
}

impl ReplayKeys {
    /// `keys`: the sensors' own keys (sensors without one are left out).
    pub fn new(default_key: &[u8], keys: impl IntoIterator<Item = (Uuid, Vec<u8>)>) -> Self {
        ReplayKeys {
            default: HmacKey::new(default_key),
            keys: keys.into_iter().collect(),
            prepared: HashMap::new(),
        }
    }

    /// Whether the frame's HMAC verifies with its sensor's key.
    pub fn verify(&mut self, frame: &Frame) -> bool {
        let uuid = frame.header.uuid;
        match self.keys.get(&uuid) {
            Some(k) => self
                .prepared
                .entry(uuid)
                .or_insert_with(|| HmacKey::new(k))
                .verify(frame),
            None => self.default.verify(frame),
        }
    }
}

/// Replays the journals left by a previous run through fresh handlers, checking each frame's
/// HMAC with `keys` first. Returns the number of frames replayed.
pub fn replay_leftovers(
    dir: &std::path::Path,
    handlers: &dyn HandlerFactory,
    keys: &mut ReplayKeys,
) -> std::io::Result<u64> {
    let mut total = 0;
    for left in crate::journal::recover(dir)? {
        let mut handler: Option<Box<dyn StreamHandler>> = None;
        let mut err: Option<String> = None;
        let meta = left.meta_frames.clone();
        if !left.meta_verifies(|f| keys.verify(f)) {
            let session = left.session;
            let kept = left.quarantine()?;
            tracing::error!(
                %session,
                kept = %kept.display(),
                "a journaled meta header (type 2) failed its HMAC check: the session was \
                 not replayed and its journal was kept"
            );
            continue;
        }
        let files = left.files()?;
        let log: Arc<dyn d4_worker::FileLog> = Arc::new(files.clone());
        let end = left.replay_with(
            &files,
            |f| keys.verify(f),
            |seq, f| {
                if err.is_some() {
                    return Ok(Replayed::default());
                }
                if let Some(s) = handler.as_mut() {
                    // the previous frame was acknowledged (replay_with does it)
                    s.acked();
                }
                if handler.is_none() {
                    let ctx: &[Frame] = if f.header.d4_type == d4_proto::types::EXTENDED {
                        &meta
                    } else {
                        &[]
                    };
                    match handlers.open(
                        f.header.uuid,
                        f.header.d4_type,
                        left.session,
                        ctx,
                        log.clone(),
                    ) {
                        Ok(s) => handler = Some(s),
                        Err(e) => {
                            err = Some(e);
                            return Ok(Replayed::default());
                        }
                    }
                }
                if let Some(s) = handler.as_mut() {
                    if let Err(e) = s.handle(seq, &f).and_then(|_| s.flush()) {
                        err = Some(e);
                    }
                }
                Ok(match (&handler, &err) {
                    (Some(s), None) => Replayed {
                        file: s.open_file().map(|(p, l)| (p.to_path_buf(), l)),
                        carry: s.carry(),
                    },
                    (Some(s), Some(_)) => Replayed {
                        file: s.open_file().map(|(p, l)| (p.to_path_buf(), l)),
                        carry: 0,
                    },
                    _ => Replayed::default(),
                })
            },
        )?;
        let n = end.frames;
        if let Some(s) = handler.as_mut() {
            s.acked();
            if let Err(e) = s.flush().and_then(|_| s.close()) {
                err.get_or_insert(e);
            }
        }
        match err {
            Some(e) => {
                tracing::warn!(session = %left.session, error = %e, "replay of a journal failed")
            }
            None => tracing::info!(session = %left.session, frames = n, "journal replayed"),
        }
        total += n;
        // The key may have been recorded by the crashed run even when nothing was pushed
        // during the replay.
        handlers.retire(left.session);
        match end.refused {
            None => left.finish()?,
            Some(seq) => {
                let session = left.session;
                let kept = left.quarantine()?;
                tracing::error!(
                    %session,
                    frame = seq,
                    replayed = n,
                    kept = %kept.display(),
                    "a journaled frame failed its HMAC check or could not be decoded, with \
                     more written after it (the journal was altered on disk, or the \
                     sensor's key changed since): the replay of this session stopped there \
                     and its journal was kept"
                );
            }
        }
        // The journal is gone (or set aside, never replayed again): the last files can be
        // gzipped and queued.
        if let Some(s) = handler.as_mut() {
            s.acked();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use d4_proto::{Decoder, Encoder};

    /// The replay checks a frame with its sensor's own key when the sensor has one, and
    /// with the default key otherwise, as a live session does.
    #[test]
    fn replay_keys_choose_like_a_session() {
        let own = Uuid::new_v4();
        let other = Uuid::new_v4();
        let frame = |uuid, key: &[u8]| {
            let enc = Encoder::new(uuid, key, 3);
            let mut b = Bytes::from(enc.encode(1, b"x\n").unwrap());
            Decoder::new().decode(&mut b).unwrap().unwrap()
        };
        let mut keys = ReplayKeys::new(b"default", [(own, b"own key".to_vec())]);
        assert!(keys.verify(&frame(own, b"own key")));
        assert!(!keys.verify(&frame(own, b"default")));
        assert!(keys.verify(&frame(other, b"default")));
        assert!(!keys.verify(&frame(other, b"own key")));
        // the prepared key is reused
        assert!(keys.verify(&frame(own, b"own key")));
    }
}
