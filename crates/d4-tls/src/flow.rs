//! The TLS state of one TCP connection, fed by its two directions.
//!
//! [`TlsFlow`] reads each direction with its own [`RecordReader`] and keeps what a
//! fingerprinting sensor needs: the ClientHello, the ServerHello, the server's certificates
//! and the negotiated version. The caller labels the two directions [`Peer::A`] and
//! [`Peer::B`] as it likes; the client is whoever sent the ClientHello (or, while no
//! ClientHello was seen, the peer of whoever sent a ServerHello), never "who spoke first".
//!
//! [`TlsFlow::feed`] answers with a [`Progress`]:
//! - `Complete` once the ClientHello is known (or the client's hello was SSLv2-compatible,
//!   which is not parsed) and the server will send no more certificates in clear: its
//!   Certificate message arrived, or TLS 1.3 was negotiated (certificates are encrypted), or
//!   the handshake was abbreviated (ServerHello, then ChangeCipherSpec or another message
//!   that comes after the certificates, without a Certificate), or either side sent an Alert.
//!   Further input is then ignored at the cost of a comparison.
//! - `NotTls` as soon as a peer's first bytes cannot start a TLS record (nothing is buffered);
//!   the flow stays `NotTls`.
//! - `Error` when a direction breaks a limit or a hello does not parse; the flow stops
//!   reading and keeps answering the same error, and what was learnt before stays available
//!   (a sensor can report it as partial).
//! - `NeedMore` otherwise.
//!
//! Messages of the wrong role are ignored: a ServerHello from the client, a second
//! ClientHello (after a HelloRetryRequest the first one is kept), server messages before its
//! ServerHello. A HelloRetryRequest fixes the roles but is not kept as the ServerHello.

use thiserror::Error;

use crate::hello::{
    parse_certificate, parse_client_hello, parse_server_hello, ClientHello, HelloError,
    ServerHello, CERTIFICATE, CLIENT_HELLO, SERVER_HELLO,
};
use crate::record::{Control, Event, RecordConfig, RecordError, RecordReader};

/// Handshake types a server sends only after its Certificate (or instead of one).
const AFTER_CERTIFICATE: [u8; 4] = [
    12, // ServerKeyExchange
    13, // CertificateRequest
    14, // ServerHelloDone
    20, // Finished
];

/// One of the two directions of a connection, as the caller labels them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The first label.
    A,
    /// The second label.
    B,
}

impl Peer {
    /// The other peer.
    pub fn other(self) -> Peer {
        match self {
            Peer::A => Peer::B,
            Peer::B => Peer::A,
        }
    }

    fn index(self) -> usize {
        match self {
            Peer::A => 0,
            Peer::B => 1,
        }
    }
}

/// Limits of one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowConfig {
    /// Largest handshake message body accepted, per direction (bytes).
    pub max_message: usize,
    /// Most bytes buffered for handshake reassembly per direction.
    pub max_buffered: usize,
}

impl Default for FlowConfig {
    fn default() -> Self {
        let r = RecordConfig::default();
        Self {
            max_message: r.max_message,
            max_buffered: r.max_buffered,
        }
    }
}

/// Why a flow stopped being read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TlsError {
    /// The record layer of one direction failed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A hello or Certificate message did not parse.
    #[error(transparent)]
    Hello(#[from] HelloError),
}

/// What a [`TlsFlow::feed`] call leaves the flow in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    NeedMore,
    /// Everything to learn in clear was learnt.
    Complete,
    /// A peer's first bytes are not TLS.
    NotTls,
    /// The flow stopped on this error.
    Error(TlsError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Open,
    Complete,
    NotTls,
    Failed(TlsError),
}

/// What the handshake taught so far.
#[derive(Debug, Default)]
struct Learnt {
    client: Option<Peer>,
    client_hello: Option<Box<ClientHello>>,
    sslv2_hello: bool,
    server_hello: Option<Box<ServerHello>>,
    certificates: Vec<Vec<u8>>,
    /// No more certificates will come in clear.
    server_done: bool,
    error: Option<HelloError>,
}

impl Learnt {
    fn is_client(&self, p: Peer) -> bool {
        self.client == Some(p)
    }

    fn is_server(&self, p: Peer) -> bool {
        self.client == Some(p.other())
    }

    fn tls13(&self) -> bool {
        self.server_hello
            .as_ref()
            .is_some_and(|h| is_tls13(h.version()))
    }

    /// Handles one event; once everything is learnt, stops the reader at once so that later
    /// bytes (however they were cut into feeds) are never looked at.
    fn on_event(&mut self, from: Peer, ev: Event<'_>) -> Control {
        let c = self.handle(from, ev);
        if self.server_done && self.client_done() {
            Control::Stop
        } else {
            c
        }
    }

    fn handle(&mut self, from: Peer, ev: Event<'_>) -> Control {
        match ev {
            Event::Handshake { msg_type, body } => self.on_message(from, msg_type, body),
            Event::Sslv2ClientHello => {
                if self.client.is_none() {
                    self.client = Some(from);
                    self.sslv2_hello = true;
                }
                Control::Continue
            }
            Event::ChangeCipherSpec => {
                if self.is_server(from) && self.server_hello.is_some() {
                    if !self.tls13() {
                        // Abbreviated handshake: no Certificate came before it.
                        self.server_done = true;
                    }
                    Control::Encrypted
                } else if self.is_client(from) && self.client_hello.is_some() {
                    Control::Encrypted
                } else {
                    Control::Continue
                }
            }
            Event::Alert => {
                self.server_done = true;
                Control::Continue
            }
            Event::ApplicationData => {
                if self.is_server(from) {
                    self.server_done = true;
                }
                Control::Continue
            }
            Event::Heartbeat | Event::EncryptedHandshake => Control::Continue,
        }
    }

    fn on_message(&mut self, from: Peer, msg_type: u8, body: &[u8]) -> Control {
        match msg_type {
            CLIENT_HELLO => {
                if self.is_server(from) || self.client_hello.is_some() {
                    return Control::Continue;
                }
                match parse_client_hello(body) {
                    Ok(h) => {
                        self.client = Some(from);
                        self.client_hello = Some(Box::new(h));
                        Control::Continue
                    }
                    Err(e) => self.fail(e),
                }
            }
            SERVER_HELLO => {
                if self.is_client(from) || self.server_hello.is_some() {
                    return Control::Continue;
                }
                match parse_server_hello(body) {
                    Ok(h) => {
                        self.client = Some(from.other());
                        if !h.is_hello_retry_request() {
                            self.server_done |= is_tls13(h.version());
                            self.server_hello = Some(Box::new(h));
                        }
                        Control::Continue
                    }
                    Err(e) => self.fail(e),
                }
            }
            _ if !self.is_server(from) || self.server_hello.is_none() || self.server_done => {
                Control::Continue
            }
            CERTIFICATE => match parse_certificate(body) {
                Ok(certs) => {
                    self.certificates = certs;
                    self.server_done = true;
                    Control::Continue
                }
                Err(e) => self.fail(e),
            },
            t if AFTER_CERTIFICATE.contains(&t) => {
                self.server_done = true;
                Control::Continue
            }
            _ => Control::Continue,
        }
    }

    fn fail(&mut self, e: HelloError) -> Control {
        self.error = Some(e);
        Control::Stop
    }

    fn client_done(&self) -> bool {
        self.client_hello.is_some() || self.sslv2_hello
    }
}

/// True for TLS 1.3 and its drafts (`0x7fxx`): the certificates are encrypted.
fn is_tls13(v: u16) -> bool {
    v == 0x0304 || v >> 8 == 0x7f
}

/// The TLS state of one TCP connection (see the module documentation).
#[derive(Debug)]
pub struct TlsFlow {
    readers: [RecordReader; 2],
    learnt: Learnt,
    state: State,
}

impl TlsFlow {
    /// A flow with the given limits.
    pub fn new(cfg: &FlowConfig) -> Self {
        let r = RecordReader::new(RecordConfig {
            max_message: cfg.max_message,
            max_buffered: cfg.max_buffered,
        });
        Self {
            readers: [r.clone(), r],
            learnt: Learnt::default(),
            state: State::Open,
        }
    }

    /// Bytes held for handshake reassembly (both directions): what this flow costs beyond
    /// its fixed size, for a caller that budgets many flows.
    pub fn buffered(&self) -> usize {
        self.readers[0].buffered() + self.readers[1].buffered()
    }

    /// Reads bytes `from` one peer (the next bytes of its direction, in order).
    pub fn feed(&mut self, from: Peer, bytes: &[u8]) -> Progress {
        match &self.state {
            State::Open => {}
            State::Complete => return Progress::Complete,
            State::NotTls => return Progress::NotTls,
            State::Failed(e) => return Progress::Error(e.clone()),
        }
        let learnt = &mut self.learnt;
        let result = self.readers[from.index()].feed(bytes, |ev| learnt.on_event(from, ev));
        let failure = match (result, learnt.error.take()) {
            (_, Some(e)) => Some(TlsError::Hello(e)),
            (Err(RecordError::NotTls(_)), None) => {
                self.state = State::NotTls;
                self.drop_buffers();
                return Progress::NotTls;
            }
            (Err(e), None) => Some(TlsError::Record(e)),
            (Ok(()), None) => None,
        };
        if let Some(e) = failure {
            self.state = State::Failed(e.clone());
            self.drop_buffers();
            return Progress::Error(e);
        }
        if self.learnt.server_done && self.learnt.client_done() {
            self.state = State::Complete;
            self.drop_buffers();
            return Progress::Complete;
        }
        Progress::NeedMore
    }

    /// Frees the reassembly buffers once nothing more will be read.
    fn drop_buffers(&mut self) {
        let cfg = RecordConfig {
            max_message: 0,
            max_buffered: 0,
        };
        self.readers = [RecordReader::new(cfg), RecordReader::new(cfg)];
    }

    /// Who sent the ClientHello (or the peer of whoever sent a ServerHello).
    pub fn client(&self) -> Option<Peer> {
        self.learnt.client
    }

    /// The ClientHello, once parsed (an SSLv2-compatible hello is not parsed).
    pub fn client_hello(&self) -> Option<&ClientHello> {
        self.learnt.client_hello.as_deref()
    }

    /// True when the client's hello was SSLv2-compatible (not parsed, not fingerprinted).
    pub fn sslv2_client_hello(&self) -> bool {
        self.learnt.sslv2_hello
    }

    /// The ServerHello (not a HelloRetryRequest), once parsed.
    pub fn server_hello(&self) -> Option<&ServerHello> {
        self.learnt.server_hello.as_deref()
    }

    /// The server's certificates (DER) in the order sent; empty when none was seen.
    pub fn certificates(&self) -> &[Vec<u8>] {
        &self.learnt.certificates
    }

    /// The negotiated version (the ServerHello's `supported_versions`, else its legacy one).
    pub fn version(&self) -> Option<u16> {
        self.learnt.server_hello.as_ref().map(|h| h.version())
    }

    /// True once [`Progress::Complete`] was reached.
    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// True once the flow stopped being read (complete, not TLS, or failed).
    pub fn is_finished(&self) -> bool {
        self.state != State::Open
    }
}

#[cfg(test)]
mod tests;
