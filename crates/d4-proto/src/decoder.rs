use bytes::{Buf, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::frame::Frame;
use crate::header::{Header, HEADER_LEN, PROTOCOL_VERSION};

/// Default maximum payload size, as in the reference server.
pub const DEFAULT_MAX_PAYLOAD: u32 = 1_000_000;

/// First allocation for a payload that arrives in pieces (or its declared size if smaller).
const FIRST_PAYLOAD_ALLOC: usize = 64 * 1024;

/// A streaming D4 decoder: push chunks of any size, get whole frames out.
///
/// * One frame split over many chunks and many frames in one chunk both work; every input
///   byte is looked at once (linear time).
/// * It holds at most one header plus one payload of at most `max_payload` bytes: a
///   declared size over the limit is an error as soon as the header is complete, before
///   any payload byte is buffered, and the payload buffer grows with the bytes that arrive
///   (from 64 KiB, doubling), not to the declared size at once.
/// * A frame whose bytes arrive in one chunk is handed out without copying (its payload
///   is a slice of the chunk).
/// * It does not check HMACs: the key depends on the sensor, which is the caller's
///   business (see [`crate::HmacKey`]); [`Decoder::pending_header`] shows the header
///   before its payload has arrived.
/// * Errors are fatal: after one, every call returns [`DecodeError::Failed`].
#[derive(Debug)]
pub struct Decoder {
    max_payload: u32,
    head: [u8; HEADER_LEN],
    head_len: usize,
    current: Option<Header>,
    payload: BytesMut,
    failed: Option<DecodeError>,
    consumed: u64,
    frame_start: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

/// Where the decoder takes bytes from: a `Bytes` (zero-copy) or a plain slice (copied).
trait Input {
    fn remaining(&self) -> usize;
    fn chunk(&self) -> &[u8];
    fn skip(&mut self, n: usize);
    fn take(&mut self, n: usize) -> Bytes;
}

impl Input for Bytes {
    fn remaining(&self) -> usize {
        self.len()
    }
    fn chunk(&self) -> &[u8] {
        self
    }
    fn skip(&mut self, n: usize) {
        self.advance(n)
    }
    fn take(&mut self, n: usize) -> Bytes {
        self.split_to(n)
    }
}

impl Input for &[u8] {
    fn remaining(&self) -> usize {
        self.len()
    }
    fn chunk(&self) -> &[u8] {
        self
    }
    fn skip(&mut self, n: usize) {
        *self = &self[n..];
    }
    fn take(&mut self, n: usize) -> Bytes {
        let b = Bytes::copy_from_slice(&self[..n]);
        *self = &self[n..];
        b
    }
}

impl Decoder {
    /// A decoder with the default payload limit (1,000,000 bytes).
    pub fn new() -> Decoder {
        Decoder::with_max_payload(DEFAULT_MAX_PAYLOAD)
    }

    /// A decoder refusing payloads over `max_payload` bytes.
    pub fn with_max_payload(max_payload: u32) -> Decoder {
        Decoder {
            max_payload,
            head: [0; HEADER_LEN],
            head_len: 0,
            current: None,
            payload: BytesMut::new(),
            failed: None,
            consumed: 0,
            frame_start: 0,
        }
    }

    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// The header of the frame whose payload is still arriving, if any.
    pub fn pending_header(&self) -> Option<&Header> {
        self.current.as_ref()
    }

    /// Bytes of an incomplete frame held by the decoder.
    pub fn buffered(&self) -> usize {
        match self.current {
            Some(_) => HEADER_LEN + self.payload.len(),
            None => self.head_len,
        }
    }

    /// Memory held for an incomplete frame: the header, and the payload buffer's capacity
    /// (64 KiB or twice the payload bytes received, never more than the declared size).
    pub fn held(&self) -> usize {
        match self.current {
            Some(_) => HEADER_LEN + self.payload.capacity(),
            None => self.head_len,
        }
    }

    /// Total bytes taken from the input so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    /// Stream offset where the frame being decoded (or the one that failed) starts.
    pub fn frame_offset(&self) -> u64 {
        self.frame_start
    }

    /// Whether the decoder has failed and refuses more input.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// Takes from `input` the bytes of at most one frame. Returns the frame when it is
    /// complete, `None` when `input` was used up without completing one (its bytes are
    /// kept for the next call). Zero-copy for frames that lie whole inside `input`.
    pub fn decode(&mut self, input: &mut Bytes) -> Result<Option<Frame>, DecodeError> {
        self.decode_from(input)
    }

    /// As [`Decoder::decode`], from a slice (the payload is copied).
    pub fn decode_slice(&mut self, input: &mut &[u8]) -> Result<Option<Frame>, DecodeError> {
        self.decode_from(input)
    }

    /// Iterates over the frames completed by `input`, taking its bytes as it goes. The
    /// iteration ends when `input` is used up or after the first error. Bytes not yet
    /// taken when the iterator is dropped stay in `input`.
    pub fn frames<'a>(&'a mut self, input: &'a mut Bytes) -> Frames<'a> {
        Frames {
            decoder: self,
            input,
            done: false,
        }
    }

    /// Call at end of stream: an error when it ended inside a frame.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.current {
            Some(h) => Err(DecodeError::Truncated {
                buffered: HEADER_LEN + self.payload.len(),
                expected: HEADER_LEN + h.size as usize,
            }),
            None if self.head_len > 0 => Err(DecodeError::Truncated {
                buffered: self.head_len,
                expected: HEADER_LEN,
            }),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: DecodeError) -> DecodeError {
        self.failed = Some(e.clone());
        e
    }

    fn decode_from<I: Input>(&mut self, input: &mut I) -> Result<Option<Frame>, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(DecodeError::Failed(Box::new(e.clone())));
        }
        let header = match self.current {
            Some(h) => h,
            None => {
                let n = (HEADER_LEN - self.head_len).min(input.remaining());
                self.head[self.head_len..self.head_len + n].copy_from_slice(&input.chunk()[..n]);
                input.skip(n);
                self.head_len += n;
                self.consumed += n as u64;
                if self.head_len < HEADER_LEN {
                    return Ok(None);
                }
                let h = Header::parse(&self.head);
                self.head_len = 0;
                if h.version != PROTOCOL_VERSION {
                    return Err(self.fail(DecodeError::UnsupportedVersion {
                        found: h.version,
                        expected: PROTOCOL_VERSION,
                    }));
                }
                if h.size > self.max_payload {
                    return Err(self.fail(DecodeError::SizeOverLimit {
                        declared: h.size,
                        max: self.max_payload,
                    }));
                }
                self.current = Some(h);
                h
            }
        };
        let size = header.size as usize;
        let payload = if self.payload.is_empty() && input.remaining() >= size {
            self.consumed += size as u64;
            input.take(size)
        } else {
            let n = (size - self.payload.len()).min(input.remaining());
            // Grow with what arrives (from 64 KiB, doubling, never past the declared size):
            // a peer that declares a big payload and stalls holds about what it sent.
            let want = self.payload.len() + n;
            if self.payload.capacity() < want {
                let grown = (self.payload.capacity() * 2)
                    .max(FIRST_PAYLOAD_ALLOC)
                    .clamp(want, size);
                self.payload.reserve(grown - self.payload.len());
            }
            self.payload.extend_from_slice(&input.chunk()[..n]);
            input.skip(n);
            self.consumed += n as u64;
            if self.payload.len() < size {
                return Ok(None);
            }
            self.payload.split().freeze()
        };
        self.current = None;
        self.frame_start = self.consumed;
        Ok(Some(Frame::new(header, payload)))
    }
}

/// Iterator returned by [`Decoder::frames`].
pub struct Frames<'a> {
    decoder: &'a mut Decoder,
    input: &'a mut Bytes,
    done: bool,
}

impl Iterator for Frames<'_> {
    type Item = Result<Frame, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.decoder.decode(self.input) {
            Ok(Some(f)) => Some(Ok(f)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encoder;
    use uuid::Uuid;

    fn stream(sizes: &[usize]) -> Vec<u8> {
        let enc = Encoder::new(Uuid::from_bytes([1; 16]), b"k", 3);
        let mut out = Vec::new();
        for (i, &s) in sizes.iter().enumerate() {
            enc.encode_into(i as u64, &vec![i as u8; s], &mut out)
                .unwrap();
        }
        out
    }

    #[test]
    fn a_declared_payload_is_not_allocated_before_it_arrives() {
        let wire = stream(&[900_000]);
        let mut d = Decoder::new();
        let mut head = Bytes::copy_from_slice(&wire[..HEADER_LEN + 100]);
        assert!(d.decode(&mut head).unwrap().is_none());
        assert!(
            d.held() <= HEADER_LEN + 64 * 1024,
            "held {} for 100 bytes",
            d.held()
        );
        let mut sent = HEADER_LEN + 100;
        for step in [1_000, 10_000, 100_000, 300_000] {
            let mut more = Bytes::copy_from_slice(&wire[sent..sent + step]);
            sent += step;
            assert!(d.decode(&mut more).unwrap().is_none());
            let got = sent - HEADER_LEN;
            let bound = HEADER_LEN + (2 * got).max(64 * 1024);
            assert!(d.held() <= bound, "held {} for {got}", d.held());
        }
        let mut rest = Bytes::copy_from_slice(&wire[sent..]);
        let f = d.decode(&mut rest).unwrap().unwrap();
        assert_eq!(f.payload.len(), 900_000);
        assert!(f.payload.iter().all(|b| *b == 0));
        assert_eq!(d.held(), 0);
    }

    #[test]
    fn byte_at_a_time_and_offsets() {
        let wire = stream(&[0, 5, 100]);
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in &wire {
            let mut one = Bytes::copy_from_slice(&[*b]);
            while let Some(f) = d.decode(&mut one).unwrap() {
                got.push(f);
            }
            assert!(one.is_empty());
        }
        assert_eq!(got.len(), 3);
        assert_eq!(d.bytes_consumed(), wire.len() as u64);
        assert_eq!(d.frame_offset(), wire.len() as u64);
        assert_eq!(got[2].payload.len(), 100);
        d.finish().unwrap();
    }

    #[test]
    fn oversize_fails_before_payload_and_stays_failed() {
        let enc = Encoder::new(Uuid::from_bytes([1; 16]), b"k", 1);
        let wire = enc.encode(0, &[0u8; 11]).unwrap();
        let mut d = Decoder::with_max_payload(10);
        let mut input = Bytes::copy_from_slice(&wire[..HEADER_LEN]);
        let err = d.decode(&mut input).unwrap_err();
        assert_eq!(
            err,
            DecodeError::SizeOverLimit {
                declared: 11,
                max: 10
            }
        );
        assert_eq!(d.buffered(), 0);
        let mut more = Bytes::from_static(b"x");
        assert!(matches!(d.decode(&mut more), Err(DecodeError::Failed(_))));
        assert_eq!(d.frame_offset(), 0);
    }

    #[test]
    fn truncation_reported_by_finish() {
        let wire = stream(&[3, 100]);
        let mut d = Decoder::new();
        let mut input = Bytes::copy_from_slice(&wire[..wire.len() - 60]);
        let frames: Vec<_> = d.frames(&mut input).collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(
            d.finish(),
            Err(DecodeError::Truncated {
                buffered: 102,
                expected: 162
            })
        );
        assert_eq!(d.pending_header().map(|h| h.size), Some(100));
    }

    #[test]
    fn bad_version_is_an_error() {
        let mut wire = stream(&[1]);
        wire[0] = 2;
        let mut d = Decoder::new();
        let mut s: &[u8] = &wire;
        assert_eq!(
            d.decode_slice(&mut s),
            Err(DecodeError::UnsupportedVersion {
                found: 2,
                expected: 1
            })
        );
    }
}
