//! The journal tap: how another consumer of accepted frames (the forwarding engine of
//! `d4-forward`) learns about the journal without slowing it down or changing what it
//! does. The pipeline of each session tells the tap when a segment file (and the `.meta`
//! file of a 2/254 session) is created, how far the segment is durable after each batch,
//! and when the session ends. A tap typically hard-links the new files into a folder of its
//! own: the journal keeps creating and removing its own names exactly as without a tap,
//! and the data stays on disk until the tap's consumer has read it.
//!
//! Calls are made from the session's pipeline thread, in order; they must be quick (a
//! link, a map update) and must never block on the network.

use std::path::Path;

use uuid::Uuid;

/// See the module documentation. Given to the server with `run_with_tap`.
pub trait JournalTap: Send + Sync {
    /// Segment `seg` of `session` was created at `path` (empty, about to be written).
    /// When it is created, every earlier segment of the session is complete.
    fn segment_created(&self, session: Uuid, seg: u64, path: &Path);
    /// The `.meta` file of `session` (its type-2 frames) was created at `path`.
    fn meta_created(&self, session: Uuid, path: &Path);
    /// Segment `seg` of `session` holds whole, verified frames up to byte `end` (written,
    /// and synced when the journal is synced). Bytes past `end` must not be read: the
    /// `O_DIRECT` writer rewrites the last partial block.
    fn synced(&self, session: Uuid, seg: u64, end: u64);
    /// The session ended: its last segment is complete (its journal names are removed
    /// right after this call).
    fn closed(&self, session: Uuid);
}
