//! One sender per outbound stream (rule, type[, extended type]): connects to the partner,
//! writes the stream's prologue on every new connection (type 1: the pcap global header;
//! 254: the type-2 meta header), then the spool's frames in order.
//!
//! D4 has no acknowledgement. A batch written to the socket is kept in the spool for
//! [`CONFIRM`] more, while the connection stays up: when the partner closes or the
//! connection fails before that, every unconfirmed frame is written again on the next
//! connection (at least once; counted as duplicates). A restart resends the unconfirmed
//! frames of the previous run the same way.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use d4_client::backoff::Backoff;
use d4_client::spool::Spool;
use d4_client::Framer;
use d4_proto::HEADER_LEN;

use super::state::{self, SentState};
use super::stats::RuleCounters;
use super::tls::{Dialer, Link};

/// How long a written batch stays in the spool, the connection up, before it counts as
/// delivered.
pub const CONFIRM: Duration = Duration::from_secs(2);
/// Bytes written per batch.
const BATCH: usize = 256 * 1024;

/// One outbound stream: its spool (fed by the rule's reader) and what its prologue needs.
pub struct Stream {
    pub dir: PathBuf,
    pub d4_type: u8,
    pub ext: Option<String>,
    pub framer: Framer,
    pub spool: Mutex<Spool>,
    /// Type 1: the pcap global header (known once an input's header was seen; kept in
    /// the stream folder as `pcap-header`).
    pub pcap_header: Mutex<Option<[u8; 24]>>,
}

impl Stream {
    pub fn spool(&self) -> std::sync::MutexGuard<'_, Spool> {
        self.spool.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_pcap_header(&self, h: [u8; 24]) {
        let mut g = self.pcap_header.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none() {
            if let Err(e) = std::fs::write(self.dir.join("pcap-header"), h) {
                tracing::warn!(error = %e, "forwarding: could not keep the pcap header");
            }
            *g = Some(h);
        }
    }

    fn header(&self) -> Option<[u8; 24]> {
        *self.pcap_header.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The frames every new connection starts with (`None`: not known yet, wait).
    pub fn prologue(&self, tags: &[String], org: Option<uuid::Uuid>) -> Option<Vec<u8>> {
        match self.d4_type {
            d4_proto::types::PCAP => {
                let h = self.header()?;
                self.framer.frame(&h).ok()
            }
            d4_proto::types::EXTENDED => {
                let mut meta = serde_json::json!({
                    "type": self.ext.clone().unwrap_or_default(),
                    "encoding": "utf-8",
                    "tags": tags,
                });
                if let Some(o) = org {
                    meta["misp:org"] = serde_json::Value::String(o.to_string());
                }
                self.framer.meta_frames(meta.to_string().as_bytes()).ok()
            }
            _ => Some(Vec::new()),
        }
    }
}

/// Frames and payload bytes in a run of whole frames.
pub fn count_frames(b: &[u8]) -> (u64, u64) {
    let (mut pos, mut n, mut payload) = (0usize, 0u64, 0u64);
    while let Some(h) = d4_proto::Header::from_prefix(&b[pos..]) {
        let len = HEADER_LEN + h.size as usize;
        if pos + len > b.len() {
            break;
        }
        pos += len;
        n += 1;
        payload += u64::from(h.size);
    }
    (n, payload)
}

pub struct SenderCtx {
    pub dialer: Arc<Dialer>,
    pub tags: Vec<String>,
    pub org: Option<uuid::Uuid>,
    pub counters: Arc<RuleCounters>,
    pub stop: Arc<AtomicBool>,
    pub rule: String,
}

fn write_batch(link: &mut Link, b: &[u8]) -> std::io::Result<()> {
    if link.tls {
        for r in d4_client::wire::cuts(b.len(), d4_client::wire::TLS_RECORD_MAX) {
            link.stream.write_all(&b[r])?;
            link.stream.flush()?;
        }
        Ok(())
    } else {
        link.stream.write_all(b)?;
        link.stream.flush()
    }
}

/// One connection to the partner and what was written on it.
struct Conn {
    link: Link,
    /// Batches written and not confirmed yet: (when, bytes, frames).
    window: VecDeque<(Instant, usize, u64)>,
    /// Spool bytes written on this connection and not confirmed (where the next batch
    /// starts in the spool).
    skip: u64,
    /// Whether a batch on it was confirmed (it stayed up [`CONFIRM`] after a write).
    confirmed: bool,
    /// The counts before this connection (see [`EARLY_CLOSES`]).
    before: SentState,
}

/// Connections in a row that the partner closed before a batch on them was confirmed, from
/// which on the partner is taken as refusing this server (d4-core closes a sensor it does
/// not accept: unknown UUID, wrong key, type not accepted): what was written on all of
/// them is not counted as forwarded. One such close alone is not a refusal: a partner
/// that stops soon after a connection started may have read (and kept) what it got, and
/// a stopping d4-rs server reads on until the sender stops writing, so that connection's
/// frames count, and their resends count as duplicates, as with any connection lost.
const EARLY_CLOSES: u32 = 2;

/// The counters of `sent` rolled back to `before` (a refused connection).
fn uncount(c: &RuleCounters, sent: &mut SentState, before: &SentState) {
    c.frames
        .fetch_sub(sent.frames.saturating_sub(before.frames), Relaxed);
    c.bytes
        .fetch_sub(sent.bytes.saturating_sub(before.bytes), Relaxed);
    c.duplicates
        .fetch_sub(sent.duplicates.saturating_sub(before.duplicates), Relaxed);
    sent.frames = before.frames;
    sent.bytes = before.bytes;
    sent.duplicates = before.duplicates;
    sent.unconfirmed = before.unconfirmed;
}

/// Runs the sender of one stream until `stop`.
pub fn run(ctx: SenderCtx, stream: Arc<Stream>) {
    let path = stream.dir.join("sent.json");
    let mut sent: SentState = match state::load(&path) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(rule = %ctx.rule, error = %e, "forwarding: unreadable sent.json, counting from 0");
            SentState::default()
        }
    };
    ctx.counters.add_sent(&sent);
    // written before a restart, not confirmed: counted as duplicates when written again
    let mut resend = sent.unconfirmed;
    let mut conn: Option<Conn> = None;
    // Reset only once a connection carried a confirmed batch: a partner that accepts and
    // then closes at once (a refusal) is retried with growing delays, not in a loop.
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let c = &ctx.counters;
    let now = d4_store::now;
    // this sender's errors are forgotten once its connection works again
    static SENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let me = SENDERS.fetch_add(1, Relaxed);
    let err = |msg: String| c.error_from(me, msg, now());
    let save = |s: &SentState| {
        if let Err(e) = state::save(&path, s, false) {
            tracing::warn!(error = %e, "forwarding: could not save sent.json");
        }
    };
    // Connections in a row closed before anything on them was confirmed, and the counts
    // before the first of them.
    let mut early = (0u32, None::<SentState>);
    // The connection is gone: its unconfirmed frames are written again on the next one.
    let lost = |conn: &mut Option<Conn>,
                resend: &mut u64,
                sent: &mut SentState,
                early: &mut (u32, Option<SentState>),
                why: String| {
        let Some(k) = conn.take() else { return };
        c.connected.fetch_sub(1, Relaxed);
        if k.confirmed {
            err(why);
        } else {
            early.0 += 1;
            let first = *early.1.get_or_insert(k.before);
            if early.0 >= EARLY_CLOSES {
                uncount(c, sent, &first);
                save(sent);
                err(format!(
                    "{why} before anything was confirmed, {} times in a row: the \
                         partner refuses this server? (check the rule's UUID and key there, \
                         and that it accepts the type)",
                    early.0
                ));
                tracing::warn!(rule = %ctx.rule, d4_type = stream.d4_type, closes = early.0, "forwarding: the partner closes every new connection at once (refused?); retrying later");
            } else {
                err(why);
            }
        }
        *resend = sent.unconfirmed;
    };
    while !ctx.stop.load(Relaxed) {
        if conn.as_ref().is_some_and(|k| k.link.peer_closed()) {
            lost(
                &mut conn,
                &mut resend,
                &mut sent,
                &mut early,
                "the partner closed the connection".into(),
            );
            sleep(&ctx.stop, backoff.next_delay());
            continue;
        }
        if let Some(k) = conn.as_mut() {
            while let Some(&(t, len, frames)) = k.window.front() {
                if t.elapsed() < CONFIRM {
                    break;
                }
                if let Err(e) = stream.spool().consume(len) {
                    tracing::error!(rule = %ctx.rule, error = %e, "forwarding: spool consume failed");
                }
                k.window.pop_front();
                k.skip -= len as u64;
                if !k.confirmed {
                    c.clear_error_from(me);
                }
                k.confirmed = true;
                early = (0, None);
                backoff.reset();
                sent.consumed += frames;
                sent.consumed_bytes += len as u64;
                sent.unconfirmed = sent.unconfirmed.saturating_sub(frames);
                c.consumed.fetch_add(frames, Relaxed);
                save(&sent);
            }
        }
        let skip = conn.as_ref().map_or(0, |k| k.skip);
        let batch = match stream.spool().peek_after(skip, BATCH) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(rule = %ctx.rule, error = %e, "forwarding: spool read failed");
                sleep(&ctx.stop, Duration::from_secs(1));
                continue;
            }
        };
        if batch.is_empty() {
            sleep(&ctx.stop, Duration::from_millis(20));
            continue;
        }
        if conn.is_none() {
            let Some(prologue) = stream.prologue(&ctx.tags, ctx.org) else {
                sleep(&ctx.stop, Duration::from_millis(50));
                continue;
            };
            match ctx.dialer.connect() {
                Ok(mut l) => {
                    let before = sent;
                    let (n, p) = count_frames(&prologue);
                    sent.frames += n;
                    sent.bytes += p;
                    c.frames.fetch_add(n, Relaxed);
                    c.bytes.fetch_add(p, Relaxed);
                    save(&sent);
                    if let Err(e) = write_batch(&mut l, &prologue) {
                        uncount(c, &mut sent, &before);
                        save(&sent);
                        err(format!("writing to the partner: {e}"));
                        sleep(&ctx.stop, backoff.next_delay());
                        continue;
                    }
                    c.connected.fetch_add(1, Relaxed);
                    tracing::info!(rule = %ctx.rule, d4_type = stream.d4_type, "forwarding: connected to the partner");
                    conn = Some(Conn {
                        link: l,
                        window: VecDeque::new(),
                        skip: 0,
                        confirmed: false,
                        before,
                    });
                }
                Err(e) => {
                    err(format!("connecting to the partner: {e}"));
                    tracing::debug!(rule = %ctx.rule, error = %e, "forwarding: connect failed");
                    sleep(&ctx.stop, backoff.next_delay());
                    continue;
                }
            }
        }
        let Some(k) = conn.as_mut() else { continue };
        let (n, p) = count_frames(&batch);
        let dups = n.min(resend);
        resend -= dups;
        sent.frames += n;
        sent.bytes += p;
        sent.duplicates += dups;
        // resent frames are counted as unconfirmed once (they already were)
        sent.unconfirmed += n - dups;
        sent.last_forward_time = Some(now());
        c.frames.fetch_add(n, Relaxed);
        c.bytes.fetch_add(p, Relaxed);
        c.duplicates.fetch_add(dups, Relaxed);
        c.last_forward.store(now(), Relaxed);
        save(&sent);
        match write_batch(&mut k.link, &batch) {
            Ok(()) => {
                k.window.push_back((Instant::now(), batch.len(), n));
                k.skip += batch.len() as u64;
            }
            Err(e) => {
                tracing::info!(rule = %ctx.rule, error = %e, "forwarding: connection lost, unconfirmed frames are sent again");
                lost(
                    &mut conn,
                    &mut resend,
                    &mut sent,
                    &mut early,
                    format!("writing to the partner: {e}"),
                );
                sleep(&ctx.stop, backoff.next_delay());
            }
        }
    }
    if conn.is_some() {
        c.connected.fetch_sub(1, Relaxed);
    }
    if let Err(e) = stream.spool().sync() {
        tracing::warn!(error = %e, "forwarding: spool sync at stop failed");
    }
}

/// Sleeps up to `d`, waking early on `stop`.
pub fn sleep(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_frames() {
        let enc = d4_proto::Encoder::new(uuid::Uuid::nil(), b"k", 3);
        let mut b = enc.encode(1, b"abc").unwrap();
        b.extend(enc.encode(1, b"de").unwrap());
        assert_eq!(count_frames(&b), (2, 5));
        assert_eq!(count_frames(&b[..70]), (1, 3));
        assert_eq!(count_frames(&[]), (0, 0));
    }
}
