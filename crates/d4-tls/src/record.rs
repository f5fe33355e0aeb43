//! The TLS record layer of one direction of a connection, and handshake-message reassembly.
//!
//! [`RecordReader`] takes the bytes one peer sent, in chunks of any size, and reports what
//! they hold through a callback: every complete handshake message (type and body), however
//! the records cut it (several messages in one record, one message across several records,
//! zero-length records), and the other record types (ChangeCipherSpec, Alert,
//! ApplicationData, Heartbeat) as they start. Record versions SSLv3 to TLS 1.3 (`0x0300` to
//! `0x0304`) are accepted.
//!
//! Only the handshake messages are buffered, and only up to [`RecordConfig::max_message`]
//! (plus the 4-byte header): the bodies of other records are skipped as they stream by.
//! A first byte that cannot start a TLS record ends the direction as [`RecordError::NotTls`]
//! at once, before anything is buffered.
//!
//! An SSLv2-compatible ClientHello (first byte with the high bit set, then a 15-bit length
//! and message type 1) is reported as [`Event::Sslv2ClientHello`] and skipped, without being
//! parsed or fingerprinted; TLS records that follow it are read as usual.
//!
//! After a ChangeCipherSpec (TLS 1.2 and earlier) the peer's handshake records are
//! encrypted: the caller says so by answering [`Control::Encrypted`], and later handshake
//! records are reported as [`Event::EncryptedHandshake`] without being parsed.

use thiserror::Error;

/// Content type of a ChangeCipherSpec record.
pub const CHANGE_CIPHER_SPEC: u8 = 20;
/// Content type of an Alert record.
pub const ALERT: u8 = 21;
/// Content type of a Handshake record.
pub const HANDSHAKE: u8 = 22;
/// Content type of an ApplicationData record.
pub const APPLICATION_DATA: u8 = 23;
/// Content type of a Heartbeat record.
pub const HEARTBEAT: u8 = 24;

/// The largest record fragment TLS allows (2^14 plus the 2048 bytes of expansion TLS 1.2
/// permits for ciphertext).
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// Limits of one direction's reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordConfig {
    /// Largest handshake message body accepted (bytes); a larger declared length is an error.
    pub max_message: usize,
    /// Most bytes buffered for handshake reassembly at any time; more is an error.
    pub max_buffered: usize,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            max_message: 64 * 1024,
            max_buffered: 64 * 1024 + 4,
        }
    }
}

/// Why a direction stopped being read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The first byte(s) cannot start a TLS record (nothing was buffered).
    #[error("not TLS: first bytes {0:02x?} do not start a TLS record")]
    NotTls(Vec<u8>),
    /// A later record header is not a TLS record header.
    #[error("bad record header: content type {content_type}, version {version:#06x}")]
    BadHeader {
        /// The header's content type byte.
        content_type: u8,
        /// The header's version.
        version: u16,
    },
    /// A record longer than TLS allows.
    #[error("record of {0} bytes is longer than TLS allows")]
    RecordTooLong(usize),
    /// A handshake message declares a body longer than the configured limit.
    #[error("handshake message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Declared body length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// Handshake reassembly would buffer more than the configured limit.
    #[error("handshake reassembly would buffer more than {0} bytes")]
    BufferFull(usize),
}

/// What a direction's bytes hold, reported as it is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete handshake message.
    Handshake {
        /// Handshake message type (1 ClientHello, 2 ServerHello, 11 Certificate...).
        msg_type: u8,
        /// The message body (without its 4-byte header).
        body: &'a [u8],
    },
    /// A ChangeCipherSpec record starts.
    ChangeCipherSpec,
    /// An Alert record starts (its content is not read: it may be encrypted).
    Alert,
    /// An ApplicationData record starts.
    ApplicationData,
    /// A Heartbeat record starts.
    Heartbeat,
    /// A handshake record after [`Control::Encrypted`]: skipped.
    EncryptedHandshake,
    /// An SSLv2-compatible ClientHello (skipped, not parsed).
    Sslv2ClientHello,
}

/// The caller's answer to an [`Event`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// From now on this direction's handshake records are encrypted: do not parse them.
    Encrypted,
    /// Stop reading this direction: later bytes are ignored.
    Stop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a record header (5 bytes, or 3 for an SSLv2 hello at the start).
    Header,
    /// Inside a record body: `left` bytes remain.
    Body { content_type: u8, left: usize },
    /// Skipping the rest of an SSLv2-compatible hello.
    Sslv2 { left: usize },
    /// Stopped: by the caller, or after an error (kept in `error`).
    Done,
}

/// The record reader of one direction (see the module documentation).
#[derive(Debug, Clone)]
pub struct RecordReader {
    cfg: RecordConfig,
    state: State,
    header: [u8; 5],
    header_len: u8,
    /// Nothing seen yet: the first bytes decide whether this is TLS at all.
    first: bool,
    encrypted: bool,
    /// Handshake bytes not yet forming a whole message.
    hs: Vec<u8>,
    error: Option<RecordError>,
}

impl RecordReader {
    /// A reader with the given limits (`max_buffered` is at least the 4 bytes of a message
    /// header).
    pub fn new(cfg: RecordConfig) -> Self {
        Self {
            cfg: RecordConfig {
                max_buffered: cfg.max_buffered.max(4),
                ..cfg
            },
            state: State::Header,
            header: [0; 5],
            header_len: 0,
            first: true,
            encrypted: false,
            hs: Vec::new(),
            error: None,
        }
    }

    /// True once the reader stopped (by [`Control::Stop`] or an error).
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The error that stopped the reader, if any.
    pub fn error(&self) -> Option<&RecordError> {
        self.error.as_ref()
    }

    /// Bytes currently buffered for handshake reassembly.
    pub fn buffered(&self) -> usize {
        self.hs.len()
    }

    /// Marks later handshake records as encrypted (same as answering [`Control::Encrypted`]).
    pub fn set_encrypted(&mut self) {
        self.encrypted = true;
        self.hs = Vec::new();
    }

    /// Reads `bytes`, calling `on_event` for what they complete. Returns the error that
    /// stopped the reader (now or earlier); `Ok` when the reader wants more or was stopped by
    /// the caller.
    pub fn feed<F>(&mut self, mut bytes: &[u8], mut on_event: F) -> Result<(), RecordError>
    where
        F: FnMut(Event<'_>) -> Control,
    {
        while !bytes.is_empty() {
            match self.state {
                State::Done => break,
                State::Header => {
                    let Some(rest) = self.take_header(bytes)? else {
                        break;
                    };
                    bytes = rest;
                    let event = if matches!(self.state, State::Sslv2 { .. }) {
                        Some(Event::Sslv2ClientHello)
                    } else {
                        self.start_record()
                    };
                    if let Some(e) = event {
                        if self.apply(on_event(e)) {
                            break;
                        }
                    }
                }
                State::Sslv2 { left } => {
                    let n = left.min(bytes.len());
                    bytes = &bytes[n..];
                    self.state = if n == left {
                        State::Header
                    } else {
                        State::Sslv2 { left: left - n }
                    };
                }
                State::Body { content_type, left } => {
                    let n = left.min(bytes.len());
                    let (chunk, rest) = bytes.split_at(n);
                    bytes = rest;
                    self.state = if n == left {
                        State::Header
                    } else {
                        State::Body {
                            content_type,
                            left: left - n,
                        }
                    };
                    if content_type == HANDSHAKE && !self.encrypted {
                        self.handshake_bytes(chunk, &mut on_event)?;
                    }
                }
            }
        }
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Applies the caller's answer; true when reading must stop.
    fn apply(&mut self, c: Control) -> bool {
        match c {
            Control::Continue => false,
            Control::Encrypted => {
                self.set_encrypted();
                false
            }
            Control::Stop => {
                self.stop();
                true
            }
        }
    }

    fn stop(&mut self) {
        self.state = State::Done;
        self.hs = Vec::new();
    }

    fn fail(&mut self, e: RecordError) -> RecordError {
        self.stop();
        self.error = Some(e.clone());
        e
    }

    /// Collects header bytes; returns the unread rest once the header is complete.
    fn take_header<'b>(&mut self, bytes: &'b [u8]) -> Result<Option<&'b [u8]>, RecordError> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let at = usize::from(self.header_len);
            self.header[at] = b;
            self.header_len += 1;
            i += 1;
            if self.first {
                self.check_first(at)?;
                if self.header[0] & 0x80 != 0 && self.header_len == 3 {
                    // SSLv2-compatible ClientHello: 15-bit length covers everything after
                    // the 2 length bytes, including the message type byte just read.
                    let len =
                        (usize::from(self.header[0] & 0x7f) << 8) | usize::from(self.header[1]);
                    self.first = false;
                    self.header_len = 0;
                    self.state = State::Sslv2 { left: len - 1 };
                    return Ok(Some(&bytes[i..]));
                }
            }
            if self.header_len == 5 {
                return Ok(Some(&bytes[i..]));
            }
        }
        Ok(None)
    }

    /// Checks header byte `at` of the very first record: anything implausible is not TLS.
    fn check_first(&mut self, at: usize) -> Result<(), RecordError> {
        let h = &self.header;
        let ok = if h[0] & 0x80 != 0 {
            match at {
                // The 15-bit length must leave room for the fixed part of the hello.
                1 => ((usize::from(h[0] & 0x7f) << 8) | usize::from(h[1])) >= 9,
                2 => h[2] == 1,
                _ => true,
            }
        } else {
            match at {
                0 => (CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&h[0]),
                1 => h[1] == 3,
                2 => h[2] <= 4,
                _ => true,
            }
        };
        if ok {
            Ok(())
        } else {
            let seen = h[..=at].to_vec();
            Err(self.fail(RecordError::NotTls(seen)))
        }
    }

    /// A full 5-byte header was read: checks it and enters the body. Returns the event to
    /// report for a non-handshake record.
    fn start_record(&mut self) -> Option<Event<'static>> {
        self.header_len = 0;
        self.first = false;
        let [content_type, major, minor, hi, lo] = self.header;
        let version = u16::from_be_bytes([major, minor]);
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        if !(CHANGE_CIPHER_SPEC..=HEARTBEAT).contains(&content_type) || major != 3 || minor > 4 {
            self.fail(RecordError::BadHeader {
                content_type,
                version,
            });
            return None;
        }
        if len > MAX_RECORD_LEN {
            self.fail(RecordError::RecordTooLong(len));
            return None;
        }
        self.state = if len == 0 {
            State::Header
        } else {
            State::Body {
                content_type,
                left: len,
            }
        };
        match content_type {
            CHANGE_CIPHER_SPEC => Some(Event::ChangeCipherSpec),
            ALERT => Some(Event::Alert),
            APPLICATION_DATA => Some(Event::ApplicationData),
            HEARTBEAT => Some(Event::Heartbeat),
            _ if self.encrypted => Some(Event::EncryptedHandshake),
            _ => None,
        }
    }

    /// Appends a handshake fragment and reports every message it completes.
    fn handshake_bytes<F>(&mut self, chunk: &[u8], on_event: &mut F) -> Result<(), RecordError>
    where
        F: FnMut(Event<'_>) -> Control,
    {
        // Fast path: nothing buffered, report whole messages straight from `chunk`.
        let mut data = chunk;
        if self.hs.is_empty() {
            loop {
                match self.message_len(data)? {
                    Some(total) if total <= data.len() => {
                        let (msg, rest) = data.split_at(total);
                        data = rest;
                        let c = on_event(Event::Handshake {
                            msg_type: msg[0],
                            body: &msg[4..],
                        });
                        if self.apply(c) || self.encrypted {
                            return Ok(());
                        }
                    }
                    _ => break,
                }
            }
            if data.is_empty() {
                return Ok(());
            }
        }
        while !data.is_empty() {
            // Take at most what completes the current message (or its header).
            let want = match self.buffered_len()? {
                Some(total) => total - self.hs.len(),
                None => 4 - self.hs.len(),
            };
            let n = want.min(data.len());
            if self.hs.len() + n > self.cfg.max_buffered {
                return Err(self.fail(RecordError::BufferFull(self.cfg.max_buffered)));
            }
            self.hs.extend_from_slice(&data[..n]);
            data = &data[n..];
            if let Some(total) = self.buffered_len()? {
                if self.hs.len() == total {
                    let msg = std::mem::take(&mut self.hs);
                    let c = on_event(Event::Handshake {
                        msg_type: msg[0],
                        body: &msg[4..],
                    });
                    // Reuse the allocation for the next message.
                    self.hs = msg;
                    self.hs.clear();
                    if self.apply(c) || self.encrypted {
                        return Ok(());
                    }
                    // Whole messages left in `data` need no copy.
                    while let Some(total) = self.message_len(data)? {
                        if total > data.len() {
                            break;
                        }
                        let (msg, rest) = data.split_at(total);
                        data = rest;
                        let c = on_event(Event::Handshake {
                            msg_type: msg[0],
                            body: &msg[4..],
                        });
                        if self.apply(c) || self.encrypted {
                            return Ok(());
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The total length (header included) of the message starting `data`, once its 4-byte
    /// header is there; an error (stopping the reader) when it exceeds a limit.
    fn message_len(&mut self, data: &[u8]) -> Result<Option<usize>, RecordError> {
        message_len(data, &self.cfg).map_err(|e| self.fail(e))
    }

    /// [`Self::message_len`] of the buffered bytes.
    fn buffered_len(&mut self) -> Result<Option<usize>, RecordError> {
        message_len(&self.hs, &self.cfg).map_err(|e| self.fail(e))
    }
}

/// The total length (header included) of the handshake message starting `data`, once its
/// 4-byte header is there. A body over `max_message`, or a message that could not be
/// buffered whole within `max_buffered`, is an error as soon as the header is seen, whether
/// or not this message would in fact need buffering: how the bytes were cut into feeds
/// never changes the outcome.
fn message_len(data: &[u8], cfg: &RecordConfig) -> Result<Option<usize>, RecordError> {
    let [_, a, b, c, ..] = *data else {
        return Ok(None);
    };
    let len = (usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c);
    if len > cfg.max_message {
        return Err(RecordError::MessageTooLarge {
            len,
            max: cfg.max_message,
        });
    }
    if len + 4 > cfg.max_buffered {
        return Err(RecordError::BufferFull(cfg.max_buffered));
    }
    Ok(Some(len + 4))
}

#[cfg(test)]
mod tests;
