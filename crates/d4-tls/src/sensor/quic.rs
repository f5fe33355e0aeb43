//! The sensor's QUIC side: the Initial decoder ([`crate::quic::QuicInitials`]) keyed by the
//! client's 4-tuple, plus what each connection waits for, until its session goes out.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::SensorStats;
use crate::fingerprint::Transport;
use crate::hello::{parse_client_hello, parse_server_hello, ClientHello, ServerHello};
use crate::quic::{Direction, QuicHello, QuicInitials, QuicLimits};
use crate::session::Session;

/// A QUIC connection's key: (client, server) as the client's first Initial showed them.
type QuicKey = (SocketAddr, SocketAddr);

/// A QUIC connection as the sensor follows it, until its session goes out.
struct QuicConn {
    /// Capture time of its first and last datagrams (ns).
    first_ns: u64,
    last_ns: u64,
    /// The client's original Destination Connection ID (what its keys come from).
    dcid: Vec<u8>,
    /// The ClientHello, once complete, and when it completed.
    client_hello: Option<(u64, ClientHello)>,
    /// The server's ServerHello, if it completed first (the client's Initial was lost and
    /// retransmitted after the server answered).
    server_hello: Option<ServerHello>,
}

/// QUIC connections: the Initial decoder plus what each connection is waiting for. A session
/// goes out when both hellos are there, or [`QUIC_WAIT_NS`] of capture time after the
/// ClientHello without the ServerHello. After that a small marker (the connection's original
/// DCID) makes its later datagrams, retransmitted Initials included, cheap to skip, while a
/// new connection on the same addresses and ports (another DCID) is followed again. A
/// connection or marker without a datagram for [`QUIC_IDLE_NS`] is forgotten.
pub(super) struct QuicSessions {
    pub(super) tracker: QuicInitials<QuicKey>,
    conns: HashMap<QuicKey, QuicConn>,
    /// Connections whose session went out: last datagram time and original DCID.
    closed: HashMap<QuicKey, (u64, Vec<u8>)>,
    max_conns: usize,
}

/// How long a QUIC session waits for the server's Initial after the ClientHello.
const QUIC_WAIT_NS: u64 = 3_000_000_000;
/// A QUIC connection (or its marker) without a datagram for this long is forgotten.
const QUIC_IDLE_NS: u64 = 60_000_000_000;

/// The Destination Connection ID of a datagram's first (long-header) packet.
fn first_dcid(datagram: &[u8]) -> Option<Vec<u8>> {
    match crate::quic::packet::parse_long_header(datagram) {
        Ok(Some(h)) => Some(h.dcid.to_vec()),
        _ => None,
    }
}

impl QuicSessions {
    pub(super) fn new(max_connections: usize) -> QuicSessions {
        QuicSessions {
            tracker: QuicInitials::new(QuicLimits {
                max_connections: max_connections.max(1),
                ..QuicLimits::default()
            }),
            conns: HashMap::new(),
            closed: HashMap::new(),
            max_conns: max_connections.max(1),
        }
    }

    pub(super) fn datagram(
        &mut self,
        ts_ns: u64,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
        stats: &mut SensorStats,
        out: &mut Vec<Session>,
    ) {
        // the client's first Initial creates the connection; the server answers on the
        // reverse 4-tuple
        let reverse = (dst, src);
        let (key, dir) = if self.conns.contains_key(&reverse) || self.closed.contains_key(&reverse)
        {
            (reverse, Direction::ToClient)
        } else {
            ((src, dst), Direction::ToServer)
        };
        if let Some((last, dcid)) = self.closed.get_mut(&key) {
            let new_connection = dir == Direction::ToServer
                && crate::quic::starts_with_initial_v1(payload)
                && first_dcid(payload).is_some_and(|d| d != *dcid);
            if !new_connection {
                *last = ts_ns;
                stats.quic_after_session += 1;
                return;
            }
            // the same addresses and ports, another connection: follow it
            self.closed.remove(&key);
        }
        if let Some(c) = self.conns.get_mut(&key) {
            c.last_ns = ts_ns;
        }
        let fed = self.tracker.feed(&key, dir, payload);
        if !self.conns.contains_key(&key) {
            if !self.tracker.contains(&key) {
                return; // not an Initial that opens a connection (counted by the tracker)
            }
            if self.conns.len() >= self.max_conns {
                stats.quic_pending_refused += 1;
                self.tracker.remove(&key);
                return;
            }
            self.conns.insert(
                key,
                QuicConn {
                    first_ns: ts_ns,
                    last_ns: ts_ns,
                    dcid: first_dcid(payload).unwrap_or_default(),
                    client_hello: None,
                    server_hello: None,
                },
            );
        }
        let Ok(Some(hello)) = fed else {
            return; // nothing complete yet, or an error the tracker counted
        };
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        match hello {
            QuicHello::Client(msg) => match msg.get(4..).and_then(|b| parse_client_hello(b).ok()) {
                Some(ch) => c.client_hello = Some((ts_ns, ch)),
                None => {
                    stats.quic_bad_hellos += 1;
                    self.close(key);
                    return;
                }
            },
            QuicHello::Server(msg) => match msg.get(4..).and_then(|b| parse_server_hello(b).ok()) {
                Some(sh) => c.server_hello = Some(sh),
                None => stats.quic_bad_hellos += 1,
            },
        }
        if c.client_hello.is_some() && c.server_hello.is_some() {
            self.emit(key, stats, out);
        }
    }

    /// The session goes out (with the ServerHello if it came); a marker stays.
    fn emit(&mut self, key: QuicKey, stats: &mut SensorStats, out: &mut Vec<Session>) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        let Some((_, ch)) = c.client_hello.take() else {
            return;
        };
        let sh = c.server_hello.take();
        if sh.is_none() {
            stats.quic_without_server_hello += 1;
        }
        out.push(quic_session(key, c.first_ns, ch, sh));
        self.close(key);
    }

    /// Forgets a connection's state, keeping a marker (when there is room for one).
    fn close(&mut self, key: QuicKey) {
        self.tracker.remove(&key);
        if let Some(c) = self.conns.remove(&key) {
            if self.closed.len() < self.max_conns {
                self.closed.insert(key, (c.last_ns, c.dcid));
            }
        }
    }

    /// Sessions that waited long enough for a ServerHello go out without one; idle
    /// connections and markers are forgotten.
    pub(super) fn expire(&mut self, now_ns: u64, stats: &mut SensorStats, out: &mut Vec<Session>) {
        let mut due: Vec<(u64, QuicKey)> = self
            .conns
            .iter()
            .filter_map(|(k, c)| match &c.client_hello {
                Some((ts, _)) if now_ns.saturating_sub(*ts) >= QUIC_WAIT_NS => {
                    Some((c.first_ns, *k))
                }
                _ => None,
            })
            .collect();
        // oldest first: records come out in capture order
        due.sort();
        for (_, key) in due {
            self.emit(key, stats, out);
        }
        let tracker = &mut self.tracker;
        self.conns.retain(|k, c| {
            let keep = now_ns.saturating_sub(c.last_ns) < QUIC_IDLE_NS;
            if !keep {
                tracker.remove(k);
            }
            keep
        });
        self.closed
            .retain(|_, (last, _)| now_ns.saturating_sub(*last) < QUIC_IDLE_NS);
    }
}

fn quic_session(key: QuicKey, ts_ns: u64, ch: ClientHello, sh: Option<ServerHello>) -> Session {
    Session {
        client: key.0,
        server: key.1,
        ts_ns,
        transport: Transport::Quic,
        version: sh.as_ref().map(|h| h.version()),
        client_hello: Some(ch),
        server_hello: sh,
        certificates: Vec::new(),
        // QUIC certificates are always encrypted: the ClientHello is what there is to learn
        complete: true,
    }
}
