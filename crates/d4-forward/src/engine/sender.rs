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

use super::state::{self, SentState, Unpublished};
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
    /// Whether a batch on it was confirmed (it stayed up [`CONFIRM`] after a write): from
    /// then on what is written counts at once.
    confirmed: bool,
    /// Written on it before it was confirmed: counted once it is (see [`Series`]).
    pending: Unpublished,
}

/// Connections in a row that the partner closed before anything on them was confirmed.
///
/// What is written on a new connection is counted (as forwarded, and its resends as
/// duplicates) only once a batch on it is confirmed, so the counters only grow. When the
/// partner closes a new connection first, it may have kept what it read (a partner that
/// stops soon after the connection began: a stopping d4-rs server reads on until the
/// sender stops writing) or refused it (d4-core closes a sensor it does not accept:
/// unknown UUID, wrong key, type not accepted, UUID still active after its crash). That
/// connection's counts are held: counted when the next connection is confirmed, dropped
/// when the partner closes the next one early too ([`EARLY_CLOSES`]): then it refuses this
/// server, and nothing written on those connections counts.
#[derive(Default)]
struct Series {
    early: u32,
    held: Unpublished,
}

/// Early closes in a row from which the partner is taken as refusing this server.
const EARLY_CLOSES: u32 = 2;

/// Adds `u` to the published counts.
fn publish(c: &RuleCounters, sent: &mut SentState, u: &Unpublished, now: u64) {
    if u.is_empty() {
        return;
    }
    sent.publish(u, now);
    c.frames.fetch_add(u.frames, Relaxed);
    c.bytes.fetch_add(u.bytes, Relaxed);
    c.duplicates.fetch_add(u.duplicates, Relaxed);
    c.last_forward.fetch_max(now, Relaxed);
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
    let c = &ctx.counters;
    let now = d4_store::now;
    // What the previous run wrote on a connection it could not confirm: delivered (a stop
    // or kill while the partner was taking it), unless the partner was refusing this
    // server then.
    let before = std::mem::take(&mut sent.unpublished);
    if before.early == 0 {
        let at = sent.last_forward_time.unwrap_or_else(now);
        sent.publish(&before, at);
    }
    c.add_sent(&sent);
    // written before a restart, not confirmed: counted as duplicates when written again
    let mut resend = sent.unconfirmed;
    let mut conn: Option<Conn> = None;
    let mut series = Series::default();
    // Reset only once a connection carried a confirmed batch: a partner that accepts and
    // then closes at once (a refusal) is retried with growing delays, not in a loop.
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    // this sender's errors are forgotten once its connection works again
    static SENDERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let me = SENDERS.fetch_add(1, Relaxed);
    let err = |msg: String| c.error_from(me, msg, now());
    // Saves the published counts and, apart, what is not published yet.
    let save = |s: &SentState, series: &Series, pending: Option<&Unpublished>| {
        let mut out = *s;
        out.unpublished = series.held;
        if let Some(p) = pending {
            out.unpublished.add(p);
        }
        out.unpublished.early = series.early;
        if let Err(e) = state::save(&path, &out, false) {
            tracing::warn!(error = %e, "forwarding: could not save sent.json");
        }
    };
    // The connection is gone: its unconfirmed frames are written again on the next one.
    let lost = |conn: &mut Option<Conn>,
                resend: &mut u64,
                sent: &mut SentState,
                series: &mut Series,
                why: String| {
        let Some(k) = conn.take() else { return };
        c.connected.fetch_sub(1, Relaxed);
        if k.confirmed {
            err(why);
        } else {
            series.early += 1;
            if series.early < EARLY_CLOSES {
                series.held = k.pending;
                err(why);
            } else {
                series.held = Unpublished::default();
                err(format!(
                    "{why} before anything was confirmed, {} times in a row: the partner \
                     refuses this server? (check the rule's UUID and key there, and that it \
                     accepts the type)",
                    series.early
                ));
                if series.early == EARLY_CLOSES {
                    tracing::warn!(rule = %ctx.rule, d4_type = stream.d4_type, "forwarding: the partner closes every new connection at once (refused?); retrying with backoff, nothing of it counted as forwarded");
                } else {
                    tracing::debug!(rule = %ctx.rule, d4_type = stream.d4_type, closes = series.early, "forwarding: refused again");
                }
            }
        }
        // the held connection's first writes go again: duplicates if it is counted
        *resend = sent.unconfirmed + series.held.unconfirmed;
        save(sent, series, None);
    };
    while !ctx.stop.load(Relaxed) {
        if conn.as_ref().is_some_and(|k| k.link.peer_closed()) {
            lost(
                &mut conn,
                &mut resend,
                &mut sent,
                &mut series,
                "the partner closed the connection".into(),
            );
            sleep(&ctx.stop, backoff.next_delay());
            continue;
        }
        let mut confirmed_now = false;
        if let Some(k) = conn.as_mut() {
            while let Some(&(t, len, frames)) = k.window.front() {
                if t.elapsed() < CONFIRM {
                    break;
                }
                if !k.confirmed {
                    // the partner takes this connection: what it (and the connection held
                    // before it) carried counts now
                    k.confirmed = true;
                    let mut u = std::mem::take(&mut series.held);
                    u.add(&std::mem::take(&mut k.pending));
                    publish(c, &mut sent, &u, now());
                    series = Series::default();
                    backoff.reset();
                    c.clear_error_from(me);
                }
                if let Err(e) = stream.spool().consume(len) {
                    tracing::error!(rule = %ctx.rule, error = %e, "forwarding: spool consume failed");
                }
                k.window.pop_front();
                k.skip -= len as u64;
                sent.consumed += frames;
                sent.consumed_bytes += len as u64;
                sent.unconfirmed = sent.unconfirmed.saturating_sub(frames);
                c.consumed.fetch_add(frames, Relaxed);
                confirmed_now = true;
            }
        }
        if confirmed_now {
            save(&sent, &series, conn.as_ref().map(|k| &k.pending));
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
                    let (n, p) = count_frames(&prologue);
                    let pending = Unpublished {
                        frames: n,
                        bytes: p,
                        ..Default::default()
                    };
                    // (counted before the write: a kill during it counts what may be
                    // half written; see docs/forward.md)
                    save(&sent, &series, Some(&pending));
                    if let Err(e) = write_batch(&mut l, &prologue) {
                        save(&sent, &series, None);
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
                        pending,
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
        // resent frames are counted as unconfirmed once (they already were)
        let wrote = Unpublished {
            frames: n,
            bytes: p,
            duplicates: dups,
            unconfirmed: n - dups,
            early: 0,
        };
        if k.confirmed {
            publish(c, &mut sent, &wrote, now());
        } else {
            k.pending.add(&wrote);
        }
        save(&sent, &series, Some(&k.pending));
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
                    &mut series,
                    format!("writing to the partner: {e}"),
                );
                sleep(&ctx.stop, backoff.next_delay());
            }
        }
    }
    if conn.is_some() {
        c.connected.fetch_sub(1, Relaxed);
    }
    save(&sent, &series, conn.as_ref().map(|k| &k.pending));
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
