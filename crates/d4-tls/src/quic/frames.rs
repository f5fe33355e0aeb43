//! The frames of a decrypted Initial payload (RFC 9000 §12.4, §19): PADDING, PING, ACK (with
//! or without ECN counts), CRYPTO and CONNECTION_CLOSE of type 0x1c. Any other frame type is
//! not allowed in an Initial packet and ends the walk with an error.
//!
//! Frame types must use the shortest encoding (RFC 9000 §12.4), so every allowed type is one
//! byte; a first byte of 0x40 or more is an error as well.

use super::{read_varint, QuicError};

/// One frame of an Initial packet, borrowing the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A run of PADDING bytes (consecutive padding is reported once, with its length).
    Padding(usize),
    /// PING.
    Ping,
    /// ACK (0x02) or ACK with ECN counts (0x03), skipped.
    Ack,
    /// CRYPTO: `data` belongs at `offset` of the Initial CRYPTO stream.
    Crypto {
        /// Offset of `data` in the stream.
        offset: u64,
        /// The frame's bytes.
        data: &'a [u8],
    },
    /// CONNECTION_CLOSE carrying a QUIC transport error (0x1c).
    ConnectionClose {
        /// The transport error code.
        error_code: u64,
        /// The frame type that caused the error.
        frame_type: u64,
        /// The reason phrase (bytes as sent, meant to be UTF-8).
        reason: &'a [u8],
    },
}

/// The frames of `payload`, in order. The walk stops after the first error (yielded once).
pub fn frames(payload: &[u8]) -> Frames<'_> {
    Frames {
        buf: payload,
        pos: 0,
        failed: false,
    }
}

/// Iterator returned by [`frames`].
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    fn frame(&mut self, ty: u8) -> Result<Frame<'a>, QuicError> {
        let buf = self.buf;
        let pos = &mut self.pos;
        match ty {
            0x00 => {
                let start = *pos - 1;
                let run = buf[*pos..].iter().take_while(|&&b| b == 0).count();
                *pos += run;
                Ok(Frame::Padding(*pos - start))
            }
            0x01 => Ok(Frame::Ping),
            0x02 | 0x03 => {
                let _largest = read_varint(buf, pos)?;
                let _delay = read_varint(buf, pos)?;
                let ranges = read_varint(buf, pos)?;
                let _first = read_varint(buf, pos)?;
                // Each further range takes at least two bytes: a bogus count runs out of bytes
                // (and fails) within buf.len() / 2 iterations.
                for _ in 0..ranges {
                    read_varint(buf, pos)?;
                    read_varint(buf, pos)?;
                }
                if ty == 0x03 {
                    for _ in 0..3 {
                        read_varint(buf, pos)?;
                    }
                }
                Ok(Frame::Ack)
            }
            0x06 => {
                let offset = read_varint(buf, pos)?;
                let len = read_varint(buf, pos)?;
                let data = take(buf, pos, len)?;
                if offset.saturating_add(len) > (1 << 62) - 1 {
                    return Err(QuicError::CryptoLimit);
                }
                Ok(Frame::Crypto { offset, data })
            }
            0x1c => {
                let error_code = read_varint(buf, pos)?;
                let frame_type = read_varint(buf, pos)?;
                let len = read_varint(buf, pos)?;
                let reason = take(buf, pos, len)?;
                Ok(Frame::ConnectionClose {
                    error_code,
                    frame_type,
                    reason,
                })
            }
            other => Err(QuicError::UnexpectedFrame(other)),
        }
    }
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8], QuicError> {
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .ok_or(QuicError::Truncated)?;
    let bytes = buf.get(*pos..end).ok_or(QuicError::Truncated)?;
    *pos = end;
    Ok(bytes)
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, QuicError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let ty = *self.buf.get(self.pos)?;
        self.pos += 1;
        let item = self.frame(ty);
        if item.is_err() {
            self.failed = true;
        }
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_frame_and_the_rest_refused() {
        let payload = [
            0x01, // PING
            0x02, 0x05, 0x00, 0x01, 0x00, 0x01, 0x02, // ACK, one extra range
            0x03, 0x05, 0x00, 0x00, 0x00, 0x07, 0x08, 0x09, // ACK_ECN
            0x06, 0x00, 0x02, 0xaa, 0xbb, // CRYPTO offset 0 len 2
            0x06, 0x40, 0x10, 0x01, 0xcc, // CRYPTO offset 16 len 1
            0x1c, 0x0a, 0x06, 0x02, b'n', b'o', // CONNECTION_CLOSE
            0x00, 0x00, 0x00, // PADDING
        ];
        let got: Vec<_> = frames(&payload).collect();
        assert_eq!(
            got,
            vec![
                Ok(Frame::Ping),
                Ok(Frame::Ack),
                Ok(Frame::Ack),
                Ok(Frame::Crypto {
                    offset: 0,
                    data: &[0xaa, 0xbb]
                }),
                Ok(Frame::Crypto {
                    offset: 16,
                    data: &[0xcc]
                }),
                Ok(Frame::ConnectionClose {
                    error_code: 10,
                    frame_type: 6,
                    reason: b"no"
                }),
                Ok(Frame::Padding(3)),
            ]
        );
        // STREAM (0x08), HANDSHAKE_DONE (0x1e), CONNECTION_CLOSE 0x1d, a two-byte PING.
        for bad in [0x08u8, 0x1e, 0x1d, 0x40] {
            let payload = [0x01, bad, 0x01];
            let got: Vec<_> = frames(&payload).collect();
            assert_eq!(
                got,
                vec![Ok(Frame::Ping), Err(QuicError::UnexpectedFrame(bad))]
            );
        }
        // Truncated CRYPTO data, ACK with a huge range count.
        assert_eq!(
            frames(&[0x06, 0x00, 0x05, 1]).collect::<Vec<_>>(),
            vec![Err(QuicError::Truncated)]
        );
        assert_eq!(
            frames(&[0x02, 0, 0, 0xbf, 0xff, 0xff, 0xff, 0, 1, 1]).collect::<Vec<_>>(),
            vec![Err(QuicError::Truncated)]
        );
    }
}
