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
    let mut link: Option<Link> = None;
    let mut window: VecDeque<(Instant, usize, u64)> = VecDeque::new();
    let mut skip = 0u64;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let c = &ctx.counters;
    let now = d4_store::now;
    let save = |s: &SentState| {
        if let Err(e) = state::save(&path, s, false) {
            tracing::warn!(error = %e, "forwarding: could not save sent.json");
        }
    };
    let lost = |link: &mut Option<Link>,
                window: &mut VecDeque<_>,
                skip: &mut u64,
                resend: &mut u64,
                sent: &SentState| {
        if link.take().is_some() {
            c.connected.fetch_sub(1, Relaxed);
        }
        window.clear();
        *skip = 0;
        *resend = sent.unconfirmed;
    };
    while !ctx.stop.load(Relaxed) {
        if link.as_ref().is_some_and(|l| l.peer_closed()) {
            c.error("the partner closed the connection".into(), now());
            lost(&mut link, &mut window, &mut skip, &mut resend, &sent);
        }
        while let Some(&(t, len, frames)) = window.front() {
            if t.elapsed() < CONFIRM {
                break;
            }
            if let Err(e) = stream.spool().consume(len) {
                tracing::error!(rule = %ctx.rule, error = %e, "forwarding: spool consume failed");
            }
            window.pop_front();
            skip -= len as u64;
            sent.consumed += frames;
            sent.consumed_bytes += len as u64;
            sent.unconfirmed = sent.unconfirmed.saturating_sub(frames);
            c.consumed.fetch_add(frames, Relaxed);
            save(&sent);
        }
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
        if link.is_none() {
            let Some(prologue) = stream.prologue(&ctx.tags, ctx.org) else {
                sleep(&ctx.stop, Duration::from_millis(50));
                continue;
            };
            match ctx.dialer.connect() {
                Ok(mut l) => {
                    let (n, p) = count_frames(&prologue);
                    sent.frames += n;
                    sent.bytes += p;
                    c.frames.fetch_add(n, Relaxed);
                    c.bytes.fetch_add(p, Relaxed);
                    save(&sent);
                    if let Err(e) = write_batch(&mut l, &prologue) {
                        c.error(format!("writing to the partner: {e}"), now());
                        sleep(&ctx.stop, backoff.next_delay());
                        continue;
                    }
                    backoff.reset();
                    c.connected.fetch_add(1, Relaxed);
                    tracing::info!(rule = %ctx.rule, d4_type = stream.d4_type, "forwarding: connected to the partner");
                    link = Some(l);
                }
                Err(e) => {
                    c.error(format!("connecting to the partner: {e}"), now());
                    tracing::debug!(rule = %ctx.rule, error = %e, "forwarding: connect failed");
                    sleep(&ctx.stop, backoff.next_delay());
                    continue;
                }
            }
        }
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
        let Some(l) = link.as_mut() else { continue };
        match write_batch(l, &batch) {
            Ok(()) => {
                window.push_back((Instant::now(), batch.len(), n));
                skip += batch.len() as u64;
            }
            Err(e) => {
                c.error(format!("writing to the partner: {e}"), now());
                tracing::info!(rule = %ctx.rule, error = %e, "forwarding: connection lost, unconfirmed frames are sent again");
                lost(&mut link, &mut window, &mut skip, &mut resend, &sent);
                sleep(&ctx.stop, backoff.next_delay());
            }
        }
    }
    if link.is_some() {
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
