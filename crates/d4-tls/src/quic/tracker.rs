//! [`QuicInitials`]: the Initial packets of many QUIC connections, keyed by the caller (its UDP
//! 4-tuple, say), turned into the client's ClientHello and the server's ServerHello.
//!
//! The caller says which way each datagram went ([`Direction`]). A connection is created by a
//! client Initial that authenticates with the keys of its own Destination Connection ID (the
//! original DCID); server Initials and the client's later Initials (sent to the server's chosen
//! connection ID) are decrypted with those keys. After a Retry, the client's next Initial fails
//! with the old keys but opens with its own new DCID: the connection starts again from it.
//!
//! A caller that does not know which end is the client can feed the first Initial datagram of
//! a flow as [`Direction::ToServer`]: only a client Initial authenticates with the client keys
//! of its own DCID (a server Initial fails with [`QuicError::AuthFailed`] and creates nothing).
//! Call [`super::starts_with_initial_v1`] before building the connection key to keep the
//! per-datagram cost of non-QUIC traffic to a few comparisons.
//!
//! Bounded: at most [`QuicLimits::max_connections`] connections, each CRYPTO stream at most
//! [`QuicLimits::crypto_limit`] bytes, all streams together at most
//! [`QuicLimits::max_total_bytes`]. Every refusal is counted in [`QuicCounters`]. A finished
//! connection keeps only its keys until the caller [`QuicInitials::remove`]s it.

use std::collections::HashMap;
use std::hash::Hash;

use super::frames::{frames, Frame};
use super::keys::{open_initial, InitialKeys, InitialSecrets};
use super::packet::{coalesced, starts_with_initial_v1, LongHeader, PacketType};
use super::stream::{CryptoStream, DEFAULT_CRYPTO_LIMIT};
use super::QuicError;

/// Which way a datagram went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the client (towards the server).
    ToServer,
    /// Sent by the server (towards the client).
    ToClient,
}

/// The bounds of a [`QuicInitials`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuicLimits {
    /// Connections tracked at once; a new one beyond is refused (counted).
    pub max_connections: usize,
    /// Bytes of one direction's CRYPTO stream.
    pub crypto_limit: usize,
    /// Bytes buffered in all CRYPTO streams together.
    pub max_total_bytes: usize,
}

impl Default for QuicLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            crypto_limit: DEFAULT_CRYPTO_LIMIT,
            max_total_bytes: 16 << 20,
        }
    }
}

/// What a [`QuicInitials`] saw and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuicCounters {
    /// Datagrams fed.
    pub datagrams: u64,
    /// Datagrams refused by the cheap test (not starting with a v1 Initial).
    pub not_initial: u64,
    /// Initial packets decrypted.
    pub initials: u64,
    /// Other long-header packets coalesced after an Initial (skipped, never decrypted).
    pub skipped_packets: u64,
    /// Initial packets whose AEAD tag failed.
    pub auth_failures: u64,
    /// Malformed headers or frames, forbidden frames, reserved bits.
    pub malformed: u64,
    /// Server Initials on a connection whose client Initial was never seen.
    pub no_keys: u64,
    /// CRYPTO frames (or parts) dropped: stream or total byte limit, fragmentation.
    pub crypto_dropped: u64,
    /// New connections refused because the table was full.
    pub connections_refused: u64,
    /// Connections whose first CRYPTO message cannot be used (not a hello, or too large).
    pub unusable_streams: u64,
    /// ClientHello messages completed.
    pub client_hellos: u64,
    /// ServerHello messages completed.
    pub server_hellos: u64,
}

/// A completed hello handshake message (4-byte header included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuicHello {
    /// The client's ClientHello.
    Client(Vec<u8>),
    /// The server's ServerHello.
    Server(Vec<u8>),
}

#[derive(Debug)]
struct Side {
    stream: CryptoStream,
    largest_pn: Option<u64>,
    done: bool,
}

impl Side {
    fn new(limit: usize) -> Self {
        Self {
            stream: CryptoStream::new(limit),
            largest_pn: None,
            done: false,
        }
    }
}

#[derive(Debug)]
struct Conn {
    original_dcid: Vec<u8>,
    client_keys: InitialKeys,
    server_keys: InitialKeys,
    client: Side,
    server: Side,
}

/// Per-connection Initial decryption and CRYPTO reassembly. `K` is the caller's connection key.
#[derive(Debug)]
pub struct QuicInitials<K> {
    conns: HashMap<K, Conn>,
    limits: QuicLimits,
    counters: QuicCounters,
    total_bytes: usize,
    scratch: Vec<u8>,
}

impl<K: Hash + Eq + Clone> QuicInitials<K> {
    /// An empty tracker with these bounds.
    pub fn new(limits: QuicLimits) -> Self {
        Self {
            conns: HashMap::new(),
            limits,
            counters: QuicCounters::default(),
            total_bytes: 0,
            scratch: Vec::new(),
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> QuicCounters {
        self.counters
    }

    /// Connections tracked.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// True when no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Bytes buffered in all CRYPTO streams.
    pub fn buffered_bytes(&self) -> usize {
        self.total_bytes
    }

    /// True when `conn` is tracked (its client Initial was seen).
    pub fn contains(&self, conn: &K) -> bool {
        self.conns.contains_key(conn)
    }

    /// Forgets a connection (flow end or idle expiry: the caller owns time).
    pub fn remove(&mut self, conn: &K) -> bool {
        match self.conns.remove(conn) {
            Some(c) => {
                self.total_bytes = self
                    .total_bytes
                    .saturating_sub(c.client.stream.buffered() + c.server.stream.buffered());
                true
            }
            None => false,
        }
    }

    /// Feeds one UDP datagram of connection `conn`, sent in direction `dir`.
    ///
    /// Returns the ClientHello (from the client's Initials) or the ServerHello (from the
    /// server's) in the call that completes it, once per connection. A datagram that does not
    /// start with a QUIC v1 Initial costs a few comparisons and returns `Ok(None)`. Errors are
    /// counted and returned, and end the walk over the datagram's packets; the packets before
    /// the failing one are used, and a hello they completed is returned rather than the error.
    pub fn feed(
        &mut self,
        conn: &K,
        dir: Direction,
        datagram: &[u8],
    ) -> Result<Option<QuicHello>, QuicError> {
        self.counters.datagrams += 1;
        if !starts_with_initial_v1(datagram) {
            self.counters.not_initial += 1;
            return Ok(None);
        }
        let mut error = None;
        for packet in coalesced(datagram) {
            let header = match packet {
                Ok(h) => h,
                Err(e) => {
                    self.counters.malformed += 1;
                    error = Some(e);
                    break;
                }
            };
            if header.packet_type != PacketType::Initial {
                self.counters.skipped_packets += 1;
                continue;
            }
            if let Err(e) = self.initial(conn, dir, &header) {
                match e {
                    QuicError::AuthFailed => self.counters.auth_failures += 1,
                    QuicError::NoKeys => self.counters.no_keys += 1,
                    QuicError::TooManyConnections => self.counters.connections_refused += 1,
                    _ => self.counters.malformed += 1,
                }
                error = Some(e);
                break;
            }
        }
        match (self.finish(conn, dir), error) {
            (Some(hello), _) => Ok(Some(hello)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    /// Decrypts one Initial and files its CRYPTO frames.
    fn initial(
        &mut self,
        conn: &K,
        dir: Direction,
        header: &LongHeader<'_>,
    ) -> Result<(), QuicError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self.open(conn, dir, header, &mut scratch);
        let result = result.and_then(|()| self.file_frames(conn, dir, &scratch));
        self.scratch = scratch;
        result
    }

    /// Decrypts into `out`, creating (or restarting, after a Retry) the connection for a
    /// client Initial that authenticates with its own DCID.
    fn open(
        &mut self,
        conn: &K,
        dir: Direction,
        header: &LongHeader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), QuicError> {
        if let Some(c) = self.conns.get_mut(conn) {
            let (keys, side) = match dir {
                Direction::ToServer => (&c.client_keys, &mut c.client),
                Direction::ToClient => (&c.server_keys, &mut c.server),
            };
            if side.done {
                // Nothing more to learn from this direction: skip the decryption.
                out.clear();
                return Ok(());
            }
            match open_initial(header, keys, side.largest_pn, out) {
                Ok(pn) => {
                    side.largest_pn = Some(side.largest_pn.map_or(pn, |l| l.max(pn)));
                    return Ok(());
                }
                Err(QuicError::AuthFailed)
                    if dir == Direction::ToServer && header.dcid != c.original_dcid.as_slice() => {}
                Err(e) => return Err(e),
            }
        } else if dir == Direction::ToClient {
            return Err(QuicError::NoKeys);
        }
        // A first client Initial (or the first after a Retry): keyed by its own DCID.
        let secrets = InitialSecrets::new(header.dcid)?;
        let pn = open_initial(header, &secrets.client, None, out)?;
        if self.remove(conn) {
            // Restarted after a Retry: the table keeps its size.
        } else if self.conns.len() >= self.limits.max_connections {
            return Err(QuicError::TooManyConnections);
        }
        let mut client = Side::new(self.limits.crypto_limit);
        client.largest_pn = Some(pn);
        self.conns.insert(
            conn.clone(),
            Conn {
                original_dcid: header.dcid.to_vec(),
                client_keys: secrets.client,
                server_keys: secrets.server,
                client,
                server: Side::new(self.limits.crypto_limit),
            },
        );
        Ok(())
    }

    /// Checks every frame of a decrypted payload, then files its CRYPTO data.
    fn file_frames(&mut self, conn: &K, dir: Direction, payload: &[u8]) -> Result<(), QuicError> {
        let Some(c) = self.conns.get_mut(conn) else {
            return Ok(());
        };
        let side = match dir {
            Direction::ToServer => &mut c.client,
            Direction::ToClient => &mut c.server,
        };
        if side.done {
            return Ok(());
        }
        self.counters.initials += 1;
        if payload.is_empty() {
            return Err(QuicError::EmptyPayload);
        }
        // The whole packet is refused if any frame is (RFC 9000 §12.4).
        for frame in frames(payload) {
            frame?;
        }
        for frame in frames(payload).flatten() {
            let Frame::Crypto { offset, data } = frame else {
                continue;
            };
            let before = side.stream.buffered();
            let end = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .saturating_add(data.len())
                .min(side.stream.limit());
            let growth = end.saturating_sub(before);
            if self.total_bytes + growth > self.limits.max_total_bytes {
                self.counters.crypto_dropped += 1;
                continue;
            }
            if side.stream.insert(offset, data).is_err() {
                self.counters.crypto_dropped += 1;
            }
            self.total_bytes += side.stream.buffered().saturating_sub(before);
        }
        Ok(())
    }

    /// Hands out a hello completed by the last datagram, or gives up on a stream that cannot
    /// hold one, and frees the stream's buffer either way.
    fn finish(&mut self, conn: &K, dir: Direction) -> Option<QuicHello> {
        let c = self.conns.get_mut(conn)?;
        let (side, wanted) = match dir {
            Direction::ToServer => (&mut c.client, super::stream::CLIENT_HELLO),
            Direction::ToClient => (&mut c.server, super::stream::SERVER_HELLO),
        };
        if side.done {
            return None;
        }
        let (ty, _) = side.stream.first_message_header()?;
        let hello = if ty != wanted || side.stream.first_message_too_large() {
            self.counters.unusable_streams += 1;
            None
        } else {
            let (_, message) = side.stream.first_message()?;
            Some(message.to_vec())
        };
        side.done = true;
        self.total_bytes = self.total_bytes.saturating_sub(side.stream.buffered());
        side.stream = CryptoStream::new(0);
        hello.map(|m| match dir {
            Direction::ToServer => {
                self.counters.client_hellos += 1;
                QuicHello::Client(m)
            }
            Direction::ToClient => {
                self.counters.server_hellos += 1;
                QuicHello::Server(m)
            }
        })
    }
}
