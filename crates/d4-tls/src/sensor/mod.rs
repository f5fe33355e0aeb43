//! The TLS sensor over captured frames, sans-IO: frames in (capture time, link type,
//! bytes), [`Session`]s out. TCP goes through [`d4_packet::reassembly`] and one
//! [`TlsFlow`] per connection; UDP datagrams that look like QUIC v1 Initials go through
//! [`crate::quic`]. Every flow whose first bytes are not TLS is dropped at once (the
//! reassembler is told to ignore it), so the state held is for TLS handshakes in progress
//! only, within the configured limits.
//!
//! A session is emitted once: when the server's certificates are complete (or known not to
//! come in clear), else when the flow ends (FIN/RST, idle, eviction, end of capture, a gap
//! in its bytes, a parse error) if a hello was seen, marked `complete: false`.

use std::collections::HashMap;
use std::net::SocketAddr;

use d4_packet::reassembly::{self, EndReason, FlowId, FlowKey, Reassembler, Side};
use d4_packet::{decode, LinkType, Transport as Wire};
use serde::Serialize;

use crate::fingerprint::Transport;
use crate::flow::{FlowConfig, Peer, Progress, TlsFlow};
use crate::quic::QuicCounters;
use crate::session::Session;

mod quic;
use quic::QuicSessions;

/// Limits and switches of the sensor.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    pub reassembly: reassembly::Config,
    pub flow: FlowConfig,
    /// Look at UDP datagrams for QUIC v1 Initials.
    pub quic: bool,
    /// Most QUIC connections whose Initial CRYPTO data is being reassembled.
    pub max_quic_connections: usize,
    /// Most bytes held by all TLS flows for handshake reassembly (a message cut across
    /// segments waits here); a flow that would pass it is given up (reported partial).
    pub max_tls_buffer: usize,
}

impl Default for SensorConfig {
    fn default() -> Self {
        SensorConfig {
            reassembly: reassembly::Config::default(),
            flow: FlowConfig::default(),
            quic: true,
            max_quic_connections: 100_000,
            max_tls_buffer: 64 << 20,
        }
    }
}

/// Counters: every frame is counted once under `packets`, and every drop under a reason.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SensorStats {
    pub packets: u64,
    pub tcp_segments: u64,
    pub udp_datagrams: u64,
    /// Frames that are neither TCP nor UDP, or could not be decoded, by reason.
    pub skipped: std::collections::BTreeMap<String, u64>,
    /// TCP flows whose first bytes were TLS.
    pub tls_flows: u64,
    /// TCP flows dropped because their first bytes were not TLS.
    pub not_tls_flows: u64,
    pub sessions: u64,
    pub sessions_complete: u64,
    pub sessions_partial: u64,
    pub certificates: u64,
    /// TLS flows given up: a parse error or a limit of the TLS layer.
    pub tls_errors: u64,
    /// TLS flows that lost bytes (a reassembly gap) before the handshake was complete.
    pub tls_gaps: u64,
    /// TLS flows that ended without any hello (nothing to report).
    pub flows_without_hello: u64,
    /// TLS flows given up because all TLS flows together held `max_tls_buffer` bytes.
    pub tls_buffer_limit: u64,
    /// Bytes held by all TLS flows for handshake reassembly now.
    pub tls_buffered: u64,
    /// QUIC sessions emitted without the server's Initial (its ServerHello never came).
    pub quic_without_server_hello: u64,
    /// QUIC hellos that did not parse as a ClientHello/ServerHello.
    pub quic_bad_hellos: u64,
    /// QUIC connections not followed because `max_quic_connections` were followed already.
    pub quic_pending_refused: u64,
    /// Datagrams of a QUIC connection whose session already went out (skipped).
    pub quic_after_session: u64,
    /// The QUIC Initial decoder's counters ([`crate::quic::QuicCounters`]).
    pub quic: serde_json::Value,
    /// The TCP reassembler's counters ([`reassembly::Stats`]).
    pub reassembly: serde_json::Value,
}

/// `{"field": value, ...}` of a plain counters struct.
macro_rules! counters_json {
    ($s:expr; $($f:ident),* $(,)?) => {
        serde_json::json!({ $(stringify!($f): $s.$f),* })
    };
}

fn reassembly_json(s: &reassembly::Stats) -> serde_json::Value {
    counters_json!(s; segments, segments_no_flow, segments_ignored, flows_created,
        flows_ignored, flows_ended_fin, flows_ended_rst, flows_ended_idle, flows_ended_evicted,
        flows_ended_finished, bytes_delivered, bytes_retransmitted, bytes_overlap,
        bytes_ignored, gaps, bytes_gap, flows_reused, drop_flow_limit, drop_flow_buffer,
        drop_total_buffer)
}

fn quic_json(c: &QuicCounters) -> serde_json::Value {
    counters_json!(c; datagrams, not_initial, initials, skipped_packets, auth_failures,
        malformed, no_keys, crypto_dropped, connections_refused, unusable_streams,
        client_hellos, server_hellos)
}

struct FlowState {
    tls: TlsFlow,
    /// What `tls` held after its last feed (counted in `Feed::tls_buffered`).
    buffered: usize,
    key: FlowKey,
    /// Capture time (ns) of the first data byte of each side (`Side::Lo`, `Side::Hi`).
    first_data_ns: [Option<u64>; 2],
}

fn side_index(s: Side) -> usize {
    match s {
        Side::Lo => 0,
        Side::Hi => 1,
    }
}

fn peer(s: Side) -> Peer {
    match s {
        Side::Lo => Peer::A,
        Side::Hi => Peer::B,
    }
}

fn addr(e: &reassembly::Endpoint) -> SocketAddr {
    SocketAddr::new(e.ip, e.port)
}

/// The sensor: one per capture.
pub struct Sensor {
    cfg: SensorConfig,
    reasm: Reassembler,
    flows: HashMap<FlowId, FlowState>,
    quic: QuicSessions,
    stats: SensorStats,
    /// Flows the TLS layer is done with; the reassembler is told after each packet.
    done: Vec<FlowId>,
    /// Capture time of the last idle check (µs).
    last_expire_us: u64,
    /// Capture time of the latest packet (ns).
    last_ts_ns: u64,
    /// Bytes held by all TLS flows for handshake reassembly.
    tls_buffered: usize,
}

/// The reassembler's sink: bytes to the TLS flows, sessions out.
struct Feed<'a> {
    cfg: &'a FlowConfig,
    max_tls_buffer: usize,
    /// Bytes held by all TLS flows (kept across calls in the sensor).
    tls_buffered: &'a mut usize,
    flows: &'a mut HashMap<FlowId, FlowState>,
    stats: &'a mut SensorStats,
    done: &'a mut Vec<FlowId>,
    out: &'a mut Vec<Session>,
    now_ns: u64,
}

impl Feed<'_> {
    /// Removes a flow's state (its buffered bytes leave the budget).
    fn take(&mut self, id: FlowId) -> Option<FlowState> {
        let st = self.flows.remove(&id)?;
        *self.tls_buffered = self.tls_buffered.saturating_sub(st.buffered);
        Some(st)
    }

    fn emit(&mut self, st: FlowState, complete: bool) {
        match session_of(&st, complete) {
            Some(s) => {
                self.stats.sessions += 1;
                if complete {
                    self.stats.sessions_complete += 1;
                } else {
                    self.stats.sessions_partial += 1;
                }
                self.stats.certificates += s.certificates.len() as u64;
                self.out.push(s);
            }
            None => self.stats.flows_without_hello += 1,
        }
    }
}

/// The session of a flow, if a hello was seen. The client is whoever sent the
/// ClientHello; without one, whoever did not send the ServerHello.
fn session_of(st: &FlowState, complete: bool) -> Option<Session> {
    let tls = &st.tls;
    // `client()` is also known from a ServerHello alone (its peer)
    let client_peer = tls.client()?;
    let server_peer = client_peer.other();
    if tls.client_hello().is_none() && tls.server_hello().is_none() {
        return None;
    }
    let ep = |p: Peer| match p {
        Peer::A => (addr(&st.key.lo), st.first_data_ns[0]),
        Peer::B => (addr(&st.key.hi), st.first_data_ns[1]),
    };
    let (client, client_ts) = ep(client_peer);
    let (server, server_ts) = ep(server_peer);
    Some(Session {
        client,
        server,
        ts_ns: client_ts.or(server_ts).unwrap_or(0),
        transport: Transport::Tcp,
        client_hello: tls.client_hello().cloned(),
        server_hello: tls.server_hello().cloned(),
        certificates: tls.certificates().to_vec(),
        version: tls.version(),
        complete,
    })
}

impl reassembly::Sink for Feed<'_> {
    fn data(&mut self, id: FlowId, key: &FlowKey, side: Side, ts_us: u64, bytes: &[u8]) {
        // a flow given up earlier in this same reassembler call (gap, completion, error):
        // the bytes that follow are not a new flow
        if self.done.contains(&id) {
            return;
        }
        let st = self.flows.entry(id).or_insert_with(|| FlowState {
            tls: TlsFlow::new(self.cfg),
            buffered: 0,
            key: *key,
            first_data_ns: [None, None],
        });
        let was_tls = st.first_data_ns.iter().any(Option::is_some);
        // the capture time of the segment that carried these bytes: the current packet's
        // (with its full precision) for in-order data, the reassembler's for data it held
        let ts_ns = if ts_us == self.now_ns / 1000 || ts_us == 0 {
            self.now_ns
        } else {
            ts_us.saturating_mul(1000)
        };
        st.first_data_ns[side_index(side)].get_or_insert(ts_ns);
        let progress = st.tls.feed(peer(side), bytes);
        let now = st.tls.buffered();
        *self.tls_buffered = self.tls_buffered.saturating_sub(st.buffered) + now;
        st.buffered = now;
        if !was_tls && !matches!(progress, Progress::NotTls) {
            self.stats.tls_flows += 1;
        }
        match progress {
            Progress::NeedMore if *self.tls_buffered > self.max_tls_buffer => {
                self.stats.tls_buffer_limit += 1;
                if let Some(st) = self.take(id) {
                    self.emit(st, false);
                }
                self.done.push(id);
            }
            Progress::NeedMore => {}
            Progress::NotTls => {
                if was_tls {
                    // the other side spoke TLS first; this side does not: give up
                    self.stats.tls_errors += 1;
                } else {
                    self.stats.not_tls_flows += 1;
                }
                if let Some(st) = self.take(id) {
                    if was_tls {
                        self.emit(st, false);
                    }
                }
                self.done.push(id);
            }
            Progress::Complete => {
                if let Some(st) = self.take(id) {
                    self.emit(st, true);
                }
                self.done.push(id);
            }
            Progress::Error(_) => {
                self.stats.tls_errors += 1;
                if let Some(st) = self.take(id) {
                    self.emit(st, false);
                }
                self.done.push(id);
            }
        }
    }

    fn gap(&mut self, id: FlowId, _key: &FlowKey, _side: Side, _len: u64) {
        // TLS cannot resume after lost bytes: report what was seen and stop
        if let Some(st) = self.take(id) {
            self.stats.tls_gaps += 1;
            self.emit(st, false);
            self.done.push(id);
        }
    }

    fn end(&mut self, id: FlowId, _key: &FlowKey, _reason: EndReason) {
        if let Some(st) = self.take(id) {
            self.emit(st, false);
        }
    }
}

impl Sensor {
    pub fn new(cfg: SensorConfig) -> Sensor {
        Sensor {
            reasm: Reassembler::new(cfg.reassembly),
            quic: QuicSessions::new(cfg.max_quic_connections),
            flows: HashMap::new(),
            stats: SensorStats::default(),
            done: Vec::new(),
            last_expire_us: 0,
            last_ts_ns: 0,
            tls_buffered: 0,
            cfg,
        }
    }

    /// One captured frame: `ts_ns` is its capture time (ns since the epoch).
    pub fn packet(&mut self, ts_ns: u64, link: LinkType, frame: &[u8], out: &mut Vec<Session>) {
        self.stats.packets += 1;
        self.last_ts_ns = self.last_ts_ns.max(ts_ns);
        let ts_us = ts_ns / 1000;
        match decode(link, frame) {
            Wire::Tcp(seg) => {
                self.stats.tcp_segments += 1;
                self.tcp(out, ts_ns, |reasm, feed| reasm.push(ts_us, &seg, feed));
            }
            Wire::Udp(d) => {
                self.stats.udp_datagrams += 1;
                if self.cfg.quic {
                    let src = SocketAddr::new(d.src, d.sport);
                    let dst = SocketAddr::new(d.dst, d.dport);
                    let before = out.len();
                    self.quic
                        .datagram(ts_ns, src, dst, d.payload, &mut self.stats, out);
                    self.count_new(before, out);
                }
            }
            Wire::Skip(reason) => {
                *self.stats.skipped.entry(format!("{reason:?}")).or_default() += 1;
            }
        }
        self.advance(ts_ns, out);
    }

    /// Capture time moved on to `now_ns`: flows idle for longer than the timeout end (at
    /// most once per second of capture time, so this is cheap per packet).
    pub fn advance(&mut self, now_ns: u64, out: &mut Vec<Session>) {
        let now_us = now_ns / 1000;
        if now_us < self.last_expire_us {
            // time went backwards (files out of order, a bogus timestamp before): start
            // counting from here, so idle expiry never stops for the rest of the capture
            self.last_expire_us = now_us;
        }
        if now_us < self.last_expire_us.saturating_add(1_000_000) {
            return;
        }
        self.last_expire_us = now_us;
        self.tcp(out, now_ns, |reasm, feed| reasm.expire(now_us, feed));
        let before = out.len();
        self.quic.expire(now_ns, &mut self.stats, out);
        self.count_new(before, out);
    }

    /// Counts the QUIC sessions appended to `out` since `before`.
    fn count_new(&mut self, before: usize, out: &[Session]) {
        for s in &out[before..] {
            self.stats.sessions += 1;
            self.stats.sessions_complete += 1;
            self.stats.certificates += s.certificates.len() as u64;
        }
    }

    /// End of the capture: every open flow ends (partial sessions are emitted).
    pub fn finish(&mut self, out: &mut Vec<Session>) {
        let before = out.len();
        self.quic.expire(u64::MAX, &mut self.stats, out);
        self.count_new(before, out);
        let last = self.last_ts_ns;
        self.tcp(out, last, |reasm, feed| {
            reasm.finish(feed);
            // flows the reassembler no longer knew (should be none) still report
            let rest: Vec<FlowId> = feed.flows.keys().copied().collect();
            for id in rest {
                if let Some(st) = feed.take(id) {
                    feed.emit(st, false);
                }
            }
        });
    }

    /// Runs `f` on the reassembler with the TLS flows as its sink, then tells the
    /// reassembler which flows the TLS layer is done with (it cannot be told from inside
    /// its own callbacks).
    fn tcp(
        &mut self,
        out: &mut Vec<Session>,
        now_ns: u64,
        f: impl FnOnce(&mut Reassembler, &mut Feed<'_>),
    ) {
        let mut feed = Feed {
            cfg: &self.cfg.flow,
            max_tls_buffer: self.cfg.max_tls_buffer,
            tls_buffered: &mut self.tls_buffered,
            flows: &mut self.flows,
            stats: &mut self.stats,
            done: &mut self.done,
            out,
            now_ns,
        };
        f(&mut self.reasm, &mut feed);
        for id in self.done.drain(..) {
            self.reasm.ignore(id);
        }
    }

    pub fn stats(&self) -> SensorStats {
        let mut s = self.stats.clone();
        s.tls_buffered = self.tls_buffered as u64;
        s.reassembly = reassembly_json(&self.reasm.stats());
        s.quic = quic_json(&self.quic.tracker.counters());
        s
    }

    /// TLS flows in progress (held state).
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }
}
